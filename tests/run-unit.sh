#!/bin/sh
# Runs each cmocka binary given, and ends with one "N passed, M failed"
# line counting binaries.  Usage: run-unit.sh LABEL BIN...
label=$1; shift
passed=0; failed=0; failures=""
for t in "$@"; do
    if "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failures="$failures $(basename "$t")"
    fi
done
[ -n "$failures" ] && echo "unit ($label): failing:$failures"
echo "unit ($label): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
