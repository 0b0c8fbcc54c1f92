#!/usr/bin/env bash
# Reproduces the channel benchmarks of docs/benchmarks-channel.md, all against the real
# release-built `channel-server` over loopback:
#   1. verified, durable appends per second (benches/appends.rs)
#   2. signed "no updates" answers per second vs a hello-world axum route (benches/updates.rs)
#   3. memory while serving a 1 GiB archive to 50 clients (benches/archive_memory.rs)
#
# Usage: channel-server/benches/run.sh [appends|updates|archive ...]   (default: all three)
# Needs wrk and curl (apt-get install -y wrk curl). Temporary data (up to ~2 GiB for the archive)
# goes to $BENCH_DIR (default: the system temp folder) and is removed by each benchmark.
# The output is also written to $BENCH_LOG (default: bench-channel-<date>.log in the current folder).
set -euo pipefail

cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
log="${BENCH_LOG:-bench-channel-$(date +%Y%m%d-%H%M%S).log}"
which=("$@")
[ ${#which[@]} -eq 0 ] && which=(appends updates archive)

for tool in wrk curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool is missing: apt-get update && apt-get install -y $tool" >&2
        exit 1
    fi
done

{
    echo "# channel benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "nproc: $(nproc); $(lscpu | grep -m1 'Model name' | tr -s ' ')"
    echo "uptime: $(uptime)"
} | tee "$log"

# One profile for everything: `bench` (= release: fat LTO, one codegen unit) builds the server
# binary, the hello example and the benchmarks into $CARGO_TARGET_DIR/release.
cargo build --profile bench -p channel-server --bin channel-server --example hello
cargo bench -p channel-server --bench appends --bench updates --bench archive_memory --no-run

for w in "${which[@]}"; do
    echo | tee -a "$log"
    echo "uptime before $w: $(uptime)" | tee -a "$log"
    case "$w" in
        appends) cargo bench -q -p channel-server --bench appends -- --entries 30000 --clients 8,32,64 --raw-clients 64 --writer-tasks 64,1024 ;;
        updates) cargo bench -q -p channel-server --bench updates -- --rounds 3 --duration 10 --connections 64 ;;
        archive) cargo bench -q -p channel-server --bench archive_memory -- --mib 1024 --clients 50 ;;
        *) echo "unknown benchmark $w (appends, updates, archive)" >&2; exit 2 ;;
    esac 2>&1 | tee -a "$log"
    echo "uptime after $w: $(uptime)" | tee -a "$log"
done
echo "written to $log"
