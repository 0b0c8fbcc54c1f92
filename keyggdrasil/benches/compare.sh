#!/usr/bin/env bash
# Runs the keyggdrasil core benchmarks and the reference implementations in one go, and prints
# ours vs reference against the performance goals:
#
#   file digest + sign throughput   >= 1.5 x b2sum's throughput (same 256 MiB file, warm cache)
#   Argon2i moderate (t=6, 128 MiB) <= 1.2 x libsodium's time (PyNaCl)
#   Ed25519 batch verification      >= 1.8 x faster per signature than verify_strict one by one
#   peak RSS signing 256 MiB        about equal to signing 16 MiB (within 10 %)
#
# Two kinds of figures:
#   wall  criterion medians for ours; references timed before AND after the criterion run
#         (median of all runs), so both sample the same stretch of machine load.
#   cpu   user + system CPU time of one whole run, best of several interleaved runs
#         (sign_file vs b2sum, derive_moderate vs libsodium). On a busy machine this is the
#         steadier figure: it does not count time spent waiting for a CPU.
#
# Usage (from anywhere in the repository):
#   CARGO_TARGET_DIR=... keyggdrasil/benches/compare.sh
# Needs: cargo, b2sum (coreutils), python3 with PyNaCl, GNU time at /usr/bin/time.
# Environment: REF_RUNS (wall runs per reference, before and after criterion; default 5),
#   CPU_RUNS (interleaved CPU-time runs; default 5), KEEP_BENCH_DIR=1 keeps the test files.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
ref_runs=${REF_RUNS:-5}
cpu_runs=${CPU_RUNS:-5}
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
echo "== build (bench profile, release examples)"
cargo bench -p keyggdrasil --bench core --no-run 2>&1 | tail -n 2
cargo build --release -p keyggdrasil --example sign_file --example derive_moderate 2>&1 | tail -n 1
sign_file=$target/release/examples/sign_file
derive_moderate=$target/release/examples/derive_moderate

work=$(mktemp -d "${TMPDIR:-/tmp}/kg-bench.XXXXXX")
if [[ -z ${KEEP_BENCH_DIR:-} ]]; then trap 'rm -rf "$work"' EXIT; fi
big=$work/archive-256MiB.bin
small=$work/archive-16MiB.bin
head -c $((256 * 1024 * 1024)) /dev/urandom >"$big"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$small"
cat "$big" "$small" >/dev/null # warm the page cache

# libsodium Argon2i moderate via PyNaCl: prints "wall cpu" seconds per run, and the public key
# of the derived seed on stderr (checked against ours below).
sodium() {
    python3 - "$1" <<'EOF'
import resource, sys, time
import nacl.pwhash, nacl.signing
runs = int(sys.argv[1])
pw, salt = b"correct horse battery staple", bytes([7] * 16)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
for _ in range(runs):
    c0, t0 = cpu(), time.perf_counter()
    seed = nacl.pwhash.argon2i.kdf(32, pw, salt, opslimit=6, memlimit=128 * 1024 * 1024)
    print(f"{time.perf_counter() - t0:.6f} {cpu() - c0:.6f}")
print(nacl.signing.SigningKey(seed).verify_key.encode().hex(), file=sys.stderr)
EOF
}

# Wall-clock reference runs; appends to b2sum_wall (seconds) and sodium_wall / sodium_cpu.
b2sum_wall=() sodium_wall=() sodium_cpu=()
references() {
    echo "== references, pass $1: b2sum x$ref_runs, libsodium x$ref_runs (load $(load))"
    b2sum "$big" >/dev/null # warm-up
    local t0 t1 wall cpu
    for _ in $(seq "$ref_runs"); do
        t0=$(date +%s%N)
        b2sum "$big" >/dev/null
        t1=$(date +%s%N)
        b2sum_wall+=("$(((t1 - t0) / 1000))e-6")
    done
    while read -r wall cpu; do
        sodium_wall+=("$wall") sodium_cpu+=("$cpu")
    done < <(sodium "$ref_runs" 2>"$work/sodium-pk")
    echo "b2sum wall (s): ${b2sum_wall[*]}"
    echo "libsodium wall (s): ${sodium_wall[*]}"
}

references 1
load_ref1=$(load)

echo "== cargo bench -p keyggdrasil --bench core (load $(load))"
KG_BENCH_FILE=$big cargo bench -p keyggdrasil --bench core 2>&1 |
    grep -Ev '^\s*$|^Benchmarking .*: (Warming up|Collecting|Analyzing)' || true
load_criterion=$(load)

references 2
load_ref2=$(load)

# CPU time, interleaved: "user sys maxrss_kib" per run.
cpu_of() { /usr/bin/time -f '%U %S %M' "$@" 2>&1 >/dev/null | tail -n 1; }
echo "== CPU time, $cpu_runs interleaved runs (load $(load))"
sign_cpu=() b2sum_cpu=() derive_cpu=() rss_small=() rss_big=()
for _ in $(seq "$cpu_runs"); do
    read -r u s m < <(cpu_of "$sign_file" "$big")
    sign_cpu+=("$u+$s") rss_big+=("$m")
    read -r u s _ < <(cpu_of b2sum "$big")
    b2sum_cpu+=("$u+$s")
    read -r u s m < <(cpu_of "$sign_file" "$small")
    rss_small+=("$m")
done
for _ in $(seq 3); do
    read -r u s _ < <(cpu_of "$derive_moderate")
    derive_cpu+=("$u+$s")
    read -r _ c < <(sodium 1 2>/dev/null)
    sodium_cpu+=("$c")
done
ours_pk=$("$derive_moderate")
sodium_pk=$(cat "$work/sodium-pk")
if [[ $ours_pk != "$sodium_pk" ]]; then
    echo "compare.sh: derived keys differ (ours $ours_pk, libsodium $sodium_pk)" >&2
    exit 1
fi
echo "derived public key equals libsodium's: $ours_pk"
echo "sign_file 256 MiB cpu (s): ${sign_cpu[*]}; b2sum cpu (s): ${b2sum_cpu[*]}"
echo "derive_moderate cpu (s): ${derive_cpu[*]}; libsodium cpu (s): ${sodium_cpu[*]}"
echo "peak RSS sign_file (KiB): 16 MiB: ${rss_small[*]}; 256 MiB: ${rss_big[*]}"
load_end=$(load)

# ---- table
python3 - "$target/criterion" "${b2sum_wall[*]}" "${sodium_wall[*]}" "${sign_cpu[*]}" \
    "${b2sum_cpu[*]}" "${derive_cpu[*]}" "${sodium_cpu[*]}" "${rss_small[*]}" "${rss_big[*]}" \
    "$load_ref1 | $load_criterion | $load_ref2 | $load_end" <<'EOF'
import json, os, statistics, sys
crit = sys.argv[1]
nums = lambda s: [eval(x) for x in s.split()]  # "0.53+0.04" -> 0.57
b2_wall, na_wall, sign_cpu, b2_cpu, der_cpu, na_cpu, rss_s, rss_b = map(nums, sys.argv[2:10])
loads = sys.argv[10]
MIB = 1024 * 1024
SIZE = 256 * MIB

def crit_median(path):
    with open(os.path.join(crit, path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"] * 1e-9

def crit_best(path):
    with open(os.path.join(crit, path, "new", "sample.json")) as f:
        s = json.load(f)
    return min(t / i for t, i in zip(s["times"], s["iters"])) * 1e-9

mibs = lambda t: SIZE / MIB / t
med = statistics.median
rows = []
def row(what, ours, ref, ratio, goal, ok):
    rows.append((what, ours, ref, f"{ratio:.2f}x", goal, "met" if ok else "MISSED"))

sign_m, sign_b = crit_median("filesig_256MiB/sign"), crit_best("filesig_256MiB/sign")
r = mibs(sign_m) / mibs(med(b2_wall))
row("digest+sign, wall median", f"{mibs(sign_m):.0f} MiB/s", f"b2sum {mibs(med(b2_wall)):.0f} MiB/s",
    r, ">= 1.50x", r >= 1.5)
r = mibs(sign_b) / mibs(min(b2_wall))
row("digest+sign, wall best", f"{mibs(sign_b):.0f} MiB/s", f"b2sum {mibs(min(b2_wall)):.0f} MiB/s",
    r, ">= 1.50x", r >= 1.5)
r = mibs(min(sign_cpu)) / mibs(min(b2_cpu))
row("digest+sign, CPU best", f"{mibs(min(sign_cpu)):.0f} MiB/s", f"b2sum {mibs(min(b2_cpu)):.0f} MiB/s",
    r, ">= 1.50x", r >= 1.5)

ar_m, ar_b = crit_median("argon2i/moderate"), crit_best("argon2i/moderate")
r = ar_m / med(na_wall)
row("Argon2i moderate, wall median", f"{ar_m:.3f} s", f"libsodium {med(na_wall):.3f} s", r,
    "<= 1.20x", r <= 1.2)
r = ar_b / min(na_wall)
row("Argon2i moderate, wall best", f"{ar_b:.3f} s", f"libsodium {min(na_wall):.3f} s", r,
    "<= 1.20x", r <= 1.2)
r = min(der_cpu) / min(na_cpu)
row("Argon2i moderate, CPU best", f"{min(der_cpu):.3f} s", f"libsodium {min(na_cpu):.3f} s", r,
    "<= 1.20x", r <= 1.2)

each = crit_median("ed25519_256/verify_strict_each") / 256
batch = crit_median("ed25519_256/verify_batch") / 256
r = each / batch
row("Ed25519 per signature, median", f"batch {batch * 1e6:.1f} us", f"one by one {each * 1e6:.1f} us",
    r, ">= 1.80x", r >= 1.8)
each_b = crit_best("ed25519_256/verify_strict_each") / 256
batch_b = crit_best("ed25519_256/verify_batch") / 256
r = each_b / batch_b
row("Ed25519 per signature, best", f"batch {batch_b * 1e6:.1f} us", f"one by one {each_b * 1e6:.1f} us",
    r, ">= 1.80x", r >= 1.8)

r = max(rss_b) / max(rss_s)
row("peak RSS sign_file (max)", f"256 MiB: {max(rss_b)} KiB", f"16 MiB: {max(rss_s)} KiB", r,
    "<= 1.10x", r <= 1.1)

head = ("what", "ours", "reference", "ratio", "goal", "")
w = [max(len(str(x[i])) for x in rows + [head]) for i in range(6)]
print()
print("== results")
for x in [head] + rows:
    print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(x)).rstrip())
print()
verify_m = crit_median("filesig_256MiB/verify")
both_m = crit_median("filesig_256MiB/digest_both")
print(f"also (wall medians): verify 256 MiB {mibs(verify_m):.0f} MiB/s, "
      f"digest_both 256 MiB {mibs(both_m):.0f} MiB/s")
print(f"load average (1/5/15 min) after references 1 | after criterion | after references 2 | "
      f"at end: {loads}")
EOF
