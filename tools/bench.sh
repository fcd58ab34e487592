#!/bin/sh
# `make bench`: the benchmark of DESIGN §5.  Until the cluster exists it runs
# the module micro-benchmarks only, and says so.
set -eu
cd "$(dirname "$0")/.."
echo "bench: no cluster yet; running module micro-benchmarks (make bench-micro)"
exec make --no-print-directory bench-micro
