#!/bin/sh
# `make run` / `make stop`: start or stop the local cluster under ./run/.
# The cluster starter (bin/dfs-cluster) arrives with dfs-master.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x bin/dfs-cluster ]; then
    echo "make run: dfs-master and dfs-chunkserver are not built yet in this version;" >&2
    echo "          there is no cluster to start. See README.md, Status." >&2
    exit 1
fi
if [ "${1:-}" = stop ]; then
    exec bin/dfs-cluster down -d run/local
fi
exec bin/dfs-cluster up -d run/local -m 3 -c 3
