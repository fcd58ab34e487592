#!/bin/sh
# `make run` / `make stop`: start or stop the local cluster under ./run/local
# (3 masters, 3 chunkservers on 127.0.0.1) with its mount at ./mnt.
set -eu
cd "$(dirname "$0")/.."
DIR=run/local
if [ "${1:-}" = stop ]; then
    if [ ! -f "$DIR/cluster.json" ]; then
        echo "make stop: no cluster in $DIR"
        exit 0
    fi
    exec bin/dfs-cluster down -d "$DIR"
fi
if [ -f "$DIR/cluster.json" ] && bin/dfs-cluster status -d "$DIR" 2>/dev/null | grep -q running; then
    echo "make run: the cluster in $DIR is already up:"
    bin/dfs-cluster status -d "$DIR"
    echo "stop it with: make stop"
    exit 0
fi
bin/dfs-cluster up -d "$DIR" -m 3 -c 3 --mount mnt
. "$DIR/cluster.env"
cat <<EOT

Try this:
  . $DIR/cluster.env; export DFS_MASTERS DFS_KEY_FILE
  bin/dfsput README.md /
  bin/dfsadmin ls /
  ls -l mnt/
  cp -r docs mnt/ && diff -r docs mnt/docs
  bin/dfsget /README.md /tmp/README.copy
  bin/dfsadmin status
  status page: $DFS_HTTP
Stop with: make stop
EOT
