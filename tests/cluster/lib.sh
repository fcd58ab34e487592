# Shared helpers of the multi-process tests (sourced, not run).
# Each test starts its own cluster under a fresh folder on 127.0.0.1 and
# stops it on exit, whatever happened.

TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$TOP/bin
TOOLS=$TOP/build/tests/cluster
DIR=$(mktemp -d "${TMPDIR:-/tmp}/dfs-test.XXXXXX")
CLUSTER="$BIN/dfs-cluster"

cleanup() {
    "$CLUSTER" down -d "$DIR" >/dev/null 2>&1
    if [ -n "${KEEP:-}" ]; then
        echo "kept $DIR"
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT

fail() {
    echo "FAIL $(basename "$0"): $*"
    echo "--- logs in $DIR:"
    tail -n 20 "$DIR"/*/*.log 2>/dev/null
    exit 1
}

step() { echo "  $(basename "$0" .sh): $*"; }

cluster_up() {
    "$CLUSTER" up -d "$DIR" "$@" >"$DIR/up.out" 2>&1 || { cat "$DIR/up.out"; fail "cluster did not start"; }
    # shellcheck disable=SC1091
    . "$DIR/cluster.env"
    export DFS_MASTERS DFS_KEY_FILE DFS_HTTP
}

# The value of a top-level field of one master's status document.
master_field() {
    "$BIN/dfsadmin" -M "$1" status --json --no-follow | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}

# Waits until every master listed in DFS_MASTERS reports the same applied
# index and digest; prints the digest.
wait_converged() {
    local deadline=$((SECONDS + ${1:-30})) last=""
    while [ $SECONDS -lt $deadline ]; do
        local seen="" ok=1
        for m in ${DFS_MASTERS//,/ }; do
            local v
            v=$(master_field "$m" digest 2>/dev/null)-$(master_field "$m" applied_index 2>/dev/null) || { ok=0; break; }
            if [ -z "$seen" ]; then seen=$v; elif [ "$seen" != "$v" ]; then ok=0; fi
        done
        if [ $ok = 1 ] && [ -n "$seen" ]; then echo "${seen%-*}"; return 0; fi
        sleep 0.2
    done
    return 1
}

# Waits until dfsadmin fsck is clean (every chunk at its goal): 0, or 1
# after the timeout with fsck's last report printed.
wait_fsck_clean() {
    local deadline=$((SECONDS + ${1:-60}))
    while [ $SECONDS -lt $deadline ]; do
        "$BIN/dfsadmin" fsck / >"$DIR/fsck.out" 2>&1 && return 0
        sleep 1
    done
    cat "$DIR/fsck.out"
    return 1
}
