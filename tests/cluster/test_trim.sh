#!/usr/bin/env bash
# A truncate's trim survives a whole-cluster crash: a file's last chunk is
# cut short while every chunkserver is frozen (SIGSTOP), so none of them
# carries out the leader's trim orders; then every master and chunkserver
# is killed (SIGKILL) and restarted.  Every replica then reports the
# version from before the cut, below the committed one: the new leader must
# trim them (the chunk's trim_from, master/mrepl.c), not leave the chunk
# missing or delete them.  The file must read back as exactly its first
# 1 MiB + 123 bytes, and fsck must come back clean.
set -u
. "$(dirname "$0")/lib.sh"
NCS=3
MiB=$((1 << 20))
SIZE=$((3 * MiB + 7))
CUT=$((MiB + 123))
[ -x "$TOOLS/nsload" ] || { echo "FAIL test_trim: $TOOLS/nsload is not built"; exit 1; }

# A frozen chunkserver would hold the stop up: thaw them first.
thaw_and_cleanup() {
    # shellcheck disable=SC2046
    kill -CONT $(server_pids chunkservers 2>/dev/null) 2>/dev/null
    cleanup
}
trap thaw_and_cleanup EXIT

cluster_up -m 3 -c "$NCS"
W=$DIR/work
mkdir -p "$W"

step "a file of $SIZE bytes on $NCS replicas"
head -c "$SIZE" /dev/urandom >"$W/orig"
head -c "$CUT" "$W/orig" >"$W/want"
"$BIN/dfsput" "$W/orig" /t || fail "dfsput"
wait_fsck_clean 30 || fail "fsck not clean after the put"

step "every chunkserver frozen, the file cut to $CUT bytes"
cs_pids=$(server_pids chunkservers)
[ "$(echo "$cs_pids" | wc -w)" = "$NCS" ] || fail "expected $NCS chunkservers, have pids: $cs_pids"
# shellcheck disable=SC2086
kill -STOP $cs_pids || fail "kill -STOP $cs_pids"
# The leader still counts them up for a few seconds (no heartbeat missed
# yet): the cut commits and its trim orders wait, unread, in their sockets.
"$TOOLS/nsload" truncate /t "$CUT" >"$W/truncate.out" 2>&1 ||
    { cat "$W/truncate.out"; fail "truncate"; }

step "fsck says the cut chunk awaits its trim, not that it is missing"
"$BIN/dfsadmin" fsck --json /t >"$W/fsck.json" && fail "fsck exited 0 with a trim pending"
python3 - "$W/fsck.json" <<'PY' || fail "fsck: $(cat "$W/fsck.json")"
import json, sys
f = json.load(open(sys.argv[1]))
states = [p["state"] for p in f["problems"]]
assert "awaiting trim" in states and "missing" not in states, states
assert f["missing"] == 0 and f["under_replicated"] >= 1, f
PY

step "every master and chunkserver killed, then restarted"
# shellcheck disable=SC2046
kill_servers $(server_pids all)
t0=$SECONDS
"$CLUSTER" start all -d "$DIR" >"$DIR/start.out" 2>&1 || { cat "$DIR/start.out"; fail "restart"; }
wait_serving "$NCS" 30

step "the replicas are trimmed: the file reads back cut"
# Safe mode (10 s) and a scan (2 s) come first; each read waits a while
# for replicas at the chunk's version by itself.
deadline=$((t0 + 40))
until timeout 20 "$BIN/dfsget" /t "$W/got" >"$W/get.out" 2>&1 && cmp -s "$W/want" "$W/got"; do
    [ $SECONDS -lt $deadline ] || { cat "$W/get.out"; fail "the file did not read back as its first $CUT bytes"; }
    sleep 1
done
read_s=$((SECONDS - t0))
size=$("$BIN/dfsadmin" stat --json /t | python3 -c "import json,sys; print(json.load(sys.stdin)['size'])")
[ "$size" = "$CUT" ] || fail "stat says $size bytes, not $CUT"
wait_fsck_clean 20 || fail "fsck not clean after the trims"
grep -h "deleting stale replica" "$DIR"/master-*/master.log && fail "a replica awaiting its trim was deleted"
echo "  test_trim: file read back cut ${read_s} s after the restart, fsck clean"
echo "PASS test_trim"
