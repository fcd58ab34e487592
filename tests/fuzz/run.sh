#!/bin/sh
# Builds every libFuzzer target tests/fuzz/fuzz_*.c with clang and runs each
# for SECONDS (default 20) on the corpus in tests/fuzz/corpus/<name>/.
# Skips with a printed reason when clang or its fuzzer runtime is missing.
set -u
secs=${1:-20}
cd "$(dirname "$0")/../.." || exit 1
targets=$(ls tests/fuzz/fuzz_*.c 2>/dev/null)
if [ -z "$targets" ]; then
    echo "fuzz: no targets yet, skipped"
    exit 0
fi
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not installed, skipped"
    exit 0
fi
out=build/fuzz
mkdir -p "$out"
status=0
for t in $targets; do
    name=$(basename "$t" .c)
    # Each target lists the common sources it needs on a "// fuzz-sources:" line.
    srcs=$(sed -n 's|^// fuzz-sources: *||p' "$t")
    if ! clang -std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined \
        -o "$out/$name" "$t" $srcs -lssl -lcrypto -lz -pthread; then
        echo "fuzz: $name: clang cannot build fuzzers here, skipped"
        continue
    fi
    corpus=tests/fuzz/corpus/$name
    work=$out/$name.corpus
    mkdir -p "$work"
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if "$out/$name" -max_total_time="$secs" -print_final_stats=0 "$work" \
        >"$out/$name.log" 2>&1; then
        echo "fuzz: $name: ran ${secs}s, no crash"
    else
        echo "fuzz: $name: FAILED, see $out/$name.log"
        tail -n 30 "$out/$name.log"
        status=1
    fi
done
exit $status
