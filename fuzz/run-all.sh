#!/usr/bin/env bash
# Runs fuzz targets one after the other for a set time each and prints one summary line per
# target (docs/fuzzing.md, "Running all targets").
#
#   fuzz/run-all.sh SECONDS_PER_TARGET [target...]
#
# With no target names, every target of `cargo fuzz list` runs. Each target's working corpus is
# $FUZZ_CORPUS_DIR/<target> (default /work/fuzz-corpus/<target>), outside the repository; the
# committed seeds in fuzz/corpus/<target> are read as a second corpus folder and never written.
# The corpus is kept between runs, so a second run goes on from the first.
#
# Environment:
#   FUZZ_CORPUS_DIR  where the working corpora and logs go (default /work/fuzz-corpus)
#   FUZZ_RUNS        also stop a target after this many executions (libFuzzer -runs)
#   FUZZ_NICE        niceness of the fuzzer (default 5: builds on the same machine go first)
#   FUZZ_EXTRA       more libFuzzer flags for every target
#   FUZZ_TARGET_DIR  the build folder (default fuzz/target)
#
# Sanitizers: targets whose code is all safe Rust run without AddressSanitizer (several times
# faster; debug assertions and overflow checks stay on). `delta` reaches zstd's C code and keeps
# ASan; its build goes to its own target folder so that the two builds do not undo each other.
# A crash is written to fuzz/artifacts/<target>/ as usual and counted in the summary.
set -uo pipefail

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS_PER_TARGET [target...]" >&2
    exit 2
fi
secs=$1
shift
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
corpus_root=${FUZZ_CORPUS_DIR:-/work/fuzz-corpus}
nice_level=${FUZZ_NICE:-5}
cd "$root" || exit 1

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")
fi

# Per target: sanitizer and extra libFuzzer flags.
sanitizer_of() {
    case "$1" in
        delta) echo address ;;
        *) echo none ;;
    esac
}
flags_of() {
    case "$1" in
        # Whole zip archives: the seeds are up to a few KiB, extraction limits are 1 MiB.
        archive) echo "-max_len=65536" ;;
        *) echo "" ;;
    esac
}
target_dir_of() {
    local base=${FUZZ_TARGET_DIR:-$fuzz_dir/target}
    if [ "$(sanitizer_of "$1")" = none ]; then
        echo "$base"
    else
        echo "$base/asan"
    fi
}

mkdir -p "$corpus_root/logs"
summary=()
status=0
for t in "${targets[@]}"; do
    san=$(sanitizer_of "$t")
    tdir=$(target_dir_of "$t")
    work="$corpus_root/$t"
    log="$corpus_root/logs/$t.log"
    mkdir -p "$work" "$fuzz_dir/artifacts/$t"
    seeds=()
    [ -d "$fuzz_dir/corpus/$t" ] && seeds=("$fuzz_dir/corpus/$t")
    runs=()
    [ -n "${FUZZ_RUNS:-}" ] && runs=("-runs=$FUZZ_RUNS")
    before=$(find "$fuzz_dir/artifacts/$t" -type f | wc -l)
    echo "== $t: ${secs}s, sanitizer $san, corpus $work, log $log" >&2
    # shellcheck disable=SC2046 # the flags are words
    nice -n "$nice_level" cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" --sanitizer "$san" \
        --target-dir "$tdir" "$t" "$work" "${seeds[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=30 \
        "${runs[@]}" $(flags_of "$t") ${FUZZ_EXTRA:-} >"$log" 2>&1
    rc=$?
    after=$(find "$fuzz_dir/artifacts/$t" -type f | wc -l)
    stat() { grep -o "^stat::$1: *[0-9.]*" "$log" | tail -1 | awk '{print $2}'; }
    execs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    # The last status line (`#N DONE cov: C ft: F corp: U/S ...`, or the last pulse).
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    # libFuzzer's own count: inputs in the corpus and their total size.
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    findings=$((after - before))
    [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ] && findings="exit $rc, see log"
    [ "$rc" -ne 0 ] && status=1
    line=$(printf '%-10s %6ss  execs %12s  exec/s %8s  cov %6s  ft %7s  corpus %14s  findings %s' \
        "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$findings")
    echo "$line"
    summary+=("$line")
done
echo "== summary" >&2
printf '%s\n' "${summary[@]}"
exit "$status"
