#!/usr/bin/env bash
# Fuzzes every reader of untrusted bytes (FuzzTargets) with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 60 s each, every target
#
# Builds `obscura-fuzz` with -sanitize=fuzzer,address (linked by lld: gold fails on it) into .build-fuzz (a separate build: about
# 10 minutes the first time on 2 cores), then runs each target from the committed seeds in
# Fuzz/corpus/TARGET, growing a working corpus in .build-fuzz/corpus/TARGET. Prints one line per
# target: executions, corpus size, crashes. A crashing input is saved as
# .build-fuzz/crashes/TARGET-*; commit it to Fuzz/corpus/TARGET once fixed, so that
# `swift test` (CorpusReplayTests) replays it for good. Exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(tfhe-inputs tfhe-evaluation-key tfhe-secret-key tfhe-result simd-upload simd-keys simd-result model-file onnx)
fi

swift build -c release --product obscura-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DOBSCURA_FUZZ -Xswiftc -use-ld=lld >&2
binary=.build-fuzz/release/obscura-fuzz
mkdir -p .build-fuzz/crashes .build-fuzz/logs

crashed=0
for target in "${targets[@]}"; do
    [ -d "Fuzz/corpus/$target" ] || { echo "no seeds for $target in Fuzz/corpus" >&2; exit 2; }
    work=.build-fuzz/corpus/$target
    mkdir -p "$work"
    log=.build-fuzz/logs/$target.log
    status=0
    OBSCURA_FUZZ_TARGET=$target "$binary" "$work" "Fuzz/corpus/$target" \
        -max_total_time="$seconds" -max_len=20000 -timeout=20 -rss_limit_mb=4096 \
        -artifact_prefix=".build-fuzz/crashes/$target-" -print_final_stats=1 >"$log" 2>&1 || status=$?
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    corpus=$(find "$work" -type f | wc -l)
    crashes=$(find .build-fuzz/crashes -name "$target-*" -type f | wc -l)
    echo "$target: ${executions} executions in ${seconds} s, corpus ${corpus}, crashes ${crashes} (exit ${status}, log ${log})"
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then crashed=1; fi
done
exit $crashed
