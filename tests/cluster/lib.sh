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
# index and a digest of that state, the same on all; prints the digest.
wait_converged() {
    local deadline=$((SECONDS + ${1:-30})) last=""
    while [ $SECONDS -lt $deadline ]; do
        local seen="" ok=1
        for m in ${DFS_MASTERS//,/ }; do
            local v
            v=$("$BIN/dfsadmin" -M "$m" status --json --no-follow 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("%s-%d" % (d["digest"], d["applied_index"]) if d["digest_index"] == d["applied_index"] else "")
') && [ -n "$v" ] || { ok=0; break; }
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

# ---- servers killed and restarted ------------------------------------------

# server_pids masters|chunkservers|all: the pids cluster.json records.
server_pids() {
    python3 -c 'import json, sys
st = json.load(open(sys.argv[1]))
kinds = ["masters", "chunkservers"] if sys.argv[2] == "all" else [sys.argv[2]]
print(" ".join(str(m["pid"]) for k in kinds for m in st[k] if m.get("pid")))' \
        "$DIR/cluster.json" "$1"
}

# running PID: alive and not a zombie.
running() {
    [ -e "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# kill_servers PID...: SIGKILL in one kill(1) call (all at the same
# moment), then waits until every one is gone.
kill_servers() {
    local p deadline=$((SECONDS + 10))
    kill -KILL "$@" || fail "kill -KILL $*"
    for p in "$@"; do
        while running "$p"; do
            [ $SECONDS -lt $deadline ] || fail "pid $p survived SIGKILL"
            sleep 0.05
        done
    done
}

# serving N: a leader answers and N chunkservers are registered up.
serving() {
    "$BIN/dfsadmin" status --json 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin)
up = sum(1 for c in d.get("chunkservers", []) if c.get("state") == "up")
sys.exit(0 if up == int(sys.argv[1]) else 1)' "$1"
}

# wait_serving N [S]: serving N within S seconds (default 60), or fail.
wait_serving() {
    local deadline=$((SECONDS + ${2:-60}))
    until serving "$1"; do
        [ $SECONDS -lt $deadline ] || fail "not $1 chunkservers up after ${2:-60} s"
        sleep 0.1
    done
}

# ---- the fault suite's workload (tests/cluster/faultload, docs/FAULTS.md) ----
FL=$TOOLS/faultload

# load_start NAME SEED [ARGS]: faultload under /NAME in the background (ARGS:
# --dir MNT for the mount), until load_stop.
load_start() {
    local name=$1 seed=$2
    shift 2
    "$FL" run --record "$DIR/$name.rec" --seed "$seed" --seconds 900 --prefix "/$name" "$@" \
        >"$DIR/$name.out" 2>"$DIR/$name.err" &
    LOAD_PID=$!
    LOAD_NAME=$name
}

# Stops the workload; its figures go to LOAD_FIGS.
load_stop() {
    kill -TERM "$LOAD_PID" 2>/dev/null
    wait "$LOAD_PID"
    local rc=$?
    LOAD_PID=""
    LOAD_FIGS=$(sed -n 's/^faultload: //p' "$DIR/$LOAD_NAME.out")
    # operations that took long or were retried: what a stall was
    grep -E ': slow, |: done after ' "$DIR/$LOAD_NAME.err" | head -n 5 | sed 's/^/    /'
    [ $rc = 0 ] || { cat "$DIR/$LOAD_NAME.out"; tail -n 20 "$DIR/$LOAD_NAME.err"; fail "workload /$LOAD_NAME failed (rc $rc)"; }
    grep -q "ops done" "$DIR/$LOAD_NAME.out" || fail "workload /$LOAD_NAME printed no figures"
}

# verify NAME SEED: every acknowledged byte of /NAME; sets VFILES VBYTES VLOST
# VUNC LOSTB (the callers judge the losses, to print their figures first).
verify() {
    "$FL" verify --record "$DIR/$1.rec" >"$DIR/$1.verify" 2>&1
    local rc=$? line
    line=$(grep '^verified ' "$DIR/$1.verify")
    read -r VFILES VBYTES VLOST VUNC <<<"$(echo "$line" | sed 's/verified \([0-9]*\) files, \([0-9]*\) bytes, lost \([0-9]*\), uncertain \([0-9]*\)/\1 \2 \3 \4/')"
    LOSTB=$(sed -n 's/^faultload: \([0-9]*\) bytes lost.*/\1/p' "$DIR/$1.verify")
    LOSTB=${LOSTB:-0}
    if [ $rc != 0 ] || [ -z "$line" ]; then
        cat "$DIR/$1.verify"
        fail "verification of /$1 failed (seed $2)"
    fi
}
