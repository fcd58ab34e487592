#!/usr/bin/env bash
# Runs every tests/cluster/test_*.sh (each starts and stops its own cluster
# on 127.0.0.1) and ends with one "N passed, M failed" line.
cd "$(dirname "$0")" || exit 1
passed=0; failed=0
for t in test_*.sh; do
    echo "cluster: $t"
    if timeout 600 bash "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "cluster: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
