#!/usr/bin/env bash
# Runs every fuzz target in turn (or the ones named), one at a time on one
# core, for SECONDS each (default 600), and prints a summary table.
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++
# compiler for libFuzzer. The toolchain is stable: RUSTC_BOOTSTRAP=1 lets
# cargo fuzz pass the nightly-only flags it needs (-Zsanitizer=address).
# FUZZ_SANITIZER=none builds without AddressSanitizer.
#
# Each target starts from fuzz/seeds/<target>/ (committed) and
# fuzz/corpus/<target>/ (kept between runs, ignored by git); new inputs go
# to the corpus, crashes to fuzz/artifacts/<target>/, the libFuzzer output
# to fuzz/logs/<target>.log (ignored by git). See docs/reliability.md.
set -uo pipefail
cd "$(dirname "$0")/.."

secs="${1:-600}"
shift || true
export RUSTC_BOOTSTRAP=1
# The hop and chain code runs on rayon: keep each target on one core.
export RAYON_NUM_THREADS=1
sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build "${sanitizer[@]}" || exit 2
mkdir -p fuzz/logs

summary=()
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    log="fuzz/logs/$t.log"
    echo "== $t: ${secs}s (log: $log)"
    cargo fuzz run "${sanitizer[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    done_line=$(grep -a 'DONE' "$log" | tail -n 1)
    execs=$(grep -a 'stat::number_of_executed_units' "$log" | tail -n 1 | awk '{print $2}')
    rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$done_line")
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    crashes=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
    if [ "$rc" -ne 0 ]; then
        status=1
    fi
    summary+=("$(printf '%-18s %6s %12s %8s %7s %8s %4s' "$t" "$secs" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes" "$rc")")
    echo "   ${done_line:-no DONE line: see $log}"
done

printf '\n%-18s %6s %12s %8s %7s %8s %4s\n' target seconds executions exec/s corpus crashes rc
printf '%s\n' "${summary[@]}"
exit "$status"
