#!/usr/bin/env bash
# Runs the keyggdrasil core benchmarks and the reference implementations in one go, and prints
# ours vs reference against the performance goals:
#
#   file digest + sign throughput   >= 1.5 x b2sum's throughput (same 256 MiB file, warm cache)
#   Argon2i moderate (t=6, 128 MiB) <= 1.2 x libsodium's time (PyNaCl)
#   Ed25519 batch verification      >= 1.8 x faster per signature than verify_strict one by one
#   peak RSS signing 256 MiB        about equal to signing 16 MiB (within 10 %)
#
# Usage (from anywhere in the repository):
#   CARGO_TARGET_DIR=... keyggdrasil/benches/compare.sh
# Needs: cargo, b2sum (coreutils), python3 with PyNaCl, GNU time at /usr/bin/time.
# Environment: B2SUM_RUNS (default 5), SODIUM_RUNS (default 5), KEEP_BENCH_DIR=1 keeps the files.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
b2sum_runs=${B2SUM_RUNS:-5}
sodium_runs=${SODIUM_RUNS:-5}
cd "$root"

for tool in cargo b2sum python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found" >&2; exit 1; }
done
python3 -c 'import nacl.pwhash' 2>/dev/null || { echo "compare.sh: PyNaCl not importable" >&2; exit 1; }

load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "== machine"
echo "nproc: $(nproc)"
lscpu | sed -n 's/^Model name:[[:space:]]*/cpu: /p'
grep -qw avx2 /proc/cpuinfo && echo "avx2: yes" || echo "avx2: no"
echo "load average at start: $(load)"

# Build everything first so no compilation overlaps a measurement.
echo "== build (bench profile and release example)"
cargo bench -p keyggdrasil --bench core --no-run 2>&1 | tail -n 2
cargo build --release -p keyggdrasil --example sign_file 2>&1 | tail -n 1
sign_file=$target/release/examples/sign_file

work=$(mktemp -d "${TMPDIR:-/tmp}/kg-bench.XXXXXX")
if [[ -z ${KEEP_BENCH_DIR:-} ]]; then trap 'rm -rf "$work"' EXIT; fi
big=$work/archive-256MiB.bin
small=$work/archive-16MiB.bin
head -c $((256 * 1024 * 1024)) /dev/urandom >"$big"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$small"
cat "$big" "$small" >/dev/null # warm the page cache

# ---- reference 1: b2sum (BLAKE2b-512, unkeyed) on the same file
echo "== b2sum, $b2sum_runs runs on 256 MiB (load $(load))"
b2sum "$big" >/dev/null # warm-up
b2sum_times=()
for _ in $(seq "$b2sum_runs"); do
    t0=$(date +%s%N)
    b2sum "$big" >/dev/null
    t1=$(date +%s%N)
    b2sum_times+=("$(((t1 - t0) / 1000))") # microseconds
done
echo "b2sum times (us): ${b2sum_times[*]}"
load_b2sum=$(load)

# ---- reference 2: libsodium Argon2i moderate through PyNaCl
echo "== libsodium argon2i moderate, $sodium_runs runs (load $(load))"
sodium_times=$(
    python3 - "$sodium_runs" <<'EOF'
import sys, time
import nacl.pwhash
runs = int(sys.argv[1])
pw, salt = b"correct horse battery staple", bytes([7] * 16)
out = []
for _ in range(runs):
    t0 = time.perf_counter()
    nacl.pwhash.argon2i.kdf(32, pw, salt, opslimit=6, memlimit=128 * 1024 * 1024)
    out.append(time.perf_counter() - t0)
print(" ".join(f"{t:.6f}" for t in out))
EOF
)
echo "libsodium times (s): $sodium_times"
load_sodium=$(load)

# ---- ours: criterion, reading the same 256 MiB file
echo "== cargo bench -p keyggdrasil --bench core (load $(load))"
KG_BENCH_FILE=$big cargo bench -p keyggdrasil --bench core 2>&1 |
    grep -Ev '^\s*$|^Benchmarking .*: (Warming up|Collecting|Analyzing)' || true
load_criterion=$(load)

# ---- memory: peak RSS signing 16 MiB vs 256 MiB
echo "== peak RSS of sign_file (load $(load))"
rss() {
    /usr/bin/time -v "$sign_file" "$1" 2>&1 >/dev/null |
        sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p'
}
rss_small=$(rss "$small")
rss_big=$(rss "$big")
echo "16 MiB: $rss_small KiB, 256 MiB: $rss_big KiB"
load_end=$(load)

# ---- table
python3 - "$target/criterion" "${b2sum_times[*]}" "$sodium_times" "$rss_small" "$rss_big" \
    "$load_b2sum" "$load_sodium" "$load_criterion" "$load_end" <<'EOF'
import json, os, statistics, sys
crit, b2, na, rss_s, rss_b, l_b2, l_na, l_cr, l_end = sys.argv[1:]
MIB = 1024 * 1024
SIZE = 256 * MIB

def est(path):
    with open(os.path.join(crit, path, "new", "estimates.json")) as f:
        e = json.load(f)
    return e["median"]["point_estimate"] * 1e-9  # seconds

b2 = [int(x) * 1e-6 for x in b2.split()]
na = [float(x) for x in na.split()]
b2_best, b2_med = min(b2), statistics.median(b2)
na_med = statistics.median(na)
sign, verify, both = (est(f"filesig_256MiB/{n}") for n in ("sign", "verify", "digest_both"))
argon = est("argon2i/moderate")
each = est("ed25519_256/verify_strict_each") / 256
batch = est("ed25519_256/verify_batch") / 256
rss_s, rss_b = int(rss_s), int(rss_b)

mibs = lambda t: SIZE / MIB / t
rows = []
def row(what, ours, ref, ratio, goal, ok):
    rows.append((what, ours, ref, f"{ratio:.2f}x", goal, "met" if ok else "MISSED"))

r_sign = mibs(sign) / mibs(b2_best)
row("digest+sign 256 MiB", f"{mibs(sign):.0f} MiB/s", f"b2sum {mibs(b2_best):.0f} MiB/s (best)",
    r_sign, ">= 1.50x", r_sign >= 1.5)
r_argon = argon / na_med
row("Argon2i moderate", f"{argon:.3f} s", f"libsodium {na_med:.3f} s (median)",
    r_argon, "<= 1.20x", r_argon <= 1.2)
r_batch = each / batch
row("Ed25519 per signature", f"batch {batch * 1e6:.1f} us", f"one by one {each * 1e6:.1f} us",
    r_batch, ">= 1.80x", r_batch >= 1.8)
r_rss = rss_b / rss_s
row("peak RSS sign_file", f"256 MiB: {rss_b} KiB", f"16 MiB: {rss_s} KiB",
    r_rss, "<= 1.10x", r_rss <= 1.1)

w = [max(len(str(r[i])) for r in rows + [("what", "ours", "reference", "ratio", "goal", "")])
     for i in range(6)]
print()
print("== results (criterion medians)")
for r in [("what", "ours", "reference", "ratio", "goal", "")] + rows:
    print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
print()
print(f"also: verify 256 MiB {mibs(verify):.0f} MiB/s, digest_both 256 MiB {mibs(both):.0f} MiB/s, "
      f"b2sum median {mibs(b2_med):.0f} MiB/s, libsodium best {min(na):.3f} s")
print(f"load average (1/5/15 min): after b2sum {l_b2}; after libsodium {l_na}; "
      f"after criterion {l_cr}; at end {l_end}")
EOF
