#!/usr/bin/env bash
# Fault scenario 5 (issue 9): a chunkserver's disk fills up.  Chunkserver 3
# of three runs on a size-limited tmpfs (mount -t tmpfs, so root only; the
# test is skipped otherwise) and files are written until its disk is full
# many times over.  Then:
#   - every write either was acknowledged or failed cleanly with ENOSPC
#     (none hangs); acknowledged files went to the servers with room;
#   - every acknowledged byte reads back, and what chunkserver 3 stored
#     before it filled is served by it alone (the other two stopped);
#   - the status shows chunkserver 3 up and full; fsck finds no chunk
#     corrupt or missing.
#
#   FAULT_DISK_MB=N   size of the tmpfs (default 40)
#   FAULT_FILES=N     files of 4 MiB written to fill it (default 25)
set -u
. "$(dirname "$0")/lib.sh"
DISK_MB=${FAULT_DISK_MB:-40}
NFILES=${FAULT_FILES:-25}
BEFORE=4            # files written while chunkserver 3 still has room
FILE_MB=4
TMPFS=""

if [ "$(id -u)" != 0 ]; then
    echo "SKIP test_faults_disk: mounting a size-limited tmpfs needs root"
    trap - EXIT
    rm -rf "$DIR"
    exit 0
fi

# The cluster first (it holds the tmpfs busy), then the tmpfs, then the folder.
stop_everything() {
    "$CLUSTER" down -d "$DIR" >/dev/null 2>&1
    if [ -n "$TMPFS" ] && mountpoint -q "$TMPFS"; then
        umount "$TMPFS" || umount -l "$TMPFS"
    fi
    cleanup
}
trap stop_everything EXIT

# put I: writes file I (random, FILE_MB MiB); sets PUT_RC.
put() {
    head -c $((FILE_MB << 20)) /dev/urandom >"$DIR/src/$1"
    timeout 120 "$BIN/dfsput" "$DIR/src/$1" "/fill/$1" >"$DIR/put.$1" 2>&1
    PUT_RC=$?
}

# check_files LIST: every file of LIST reads back byte for byte; sets CHECKED_BYTES.
check_files() {
    local i
    CHECKED_BYTES=0
    for i in $1; do
        rm -f "$DIR/got"
        timeout 120 "$BIN/dfsget" "/fill/$i" "$DIR/got" >"$DIR/get.$i" 2>&1 ||
            { cat "$DIR/get.$i"; fail "acknowledged file /fill/$i cannot be read"; }
        cmp -s "$DIR/got" "$DIR/src/$i" || fail "acknowledged file /fill/$i reads back different bytes"
        CHECKED_BYTES=$((CHECKED_BYTES + $(stat -c %s "$DIR/got")))
    done
}

# ---- chunkserver 3 moves onto a tmpfs of DISK_MB MiB -------------------------
cluster_up -c 3
step "chunkserver 3 restarted on a ${DISK_MB} MiB tmpfs"
"$CLUSTER" kill -d "$DIR" chunkserver 3 >/dev/null || fail "cannot stop chunkserver 3"
CS3=$DIR/chunkserver-3
mv "$CS3/data" "$CS3/data.disk"
mkdir "$CS3/data"
mount -t tmpfs -o size=${DISK_MB}m tmpfs "$CS3/data" || fail "mount -t tmpfs failed"
TMPFS=$CS3/data
cp -a "$CS3/data.disk/." "$CS3/data/"    # its identity file and chunk folders
rm -rf "$CS3/data.disk"
"$CLUSTER" start -d "$DIR" chunkserver 3 >/dev/null || fail "cannot restart chunkserver 3"
wait_serving 3

# ---- fill it -----------------------------------------------------------------
mkdir -p "$DIR/src"
"$BIN/dfsadmin" mkdir -p /fill >/dev/null || fail "mkdir /fill"
ACKED="" ENOSPC=0
for i in $(seq 1 "$NFILES"); do
    put "$i"
    if [ "$PUT_RC" = 0 ]; then
        ACKED="$ACKED $i"
    elif [ "$PUT_RC" = 124 ]; then
        fail "dfsput of file $i hung (no answer in 120 s)"
    elif grep -qi "no space" "$DIR/put.$i"; then
        ENOSPC=$((ENOSPC + 1))
    else
        cat "$DIR/put.$i"
        fail "dfsput of file $i failed, and not with ENOSPC"
    fi
    [ "$i" = "$BEFORE" ] && FIRST="$ACKED"
done
[ "$(echo "$FIRST" | wc -w)" = "$BEFORE" ] || fail "a write failed while chunkserver 3 still had room"
kill -0 "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["chunkservers"][2]["pid"])' "$DIR/cluster.json")" ||
    fail "chunkserver 3 exited when its disk filled"
read -r AVAIL_KB <<<"$(df -k --output=avail "$TMPFS" | tail -1)"
[ "$AVAIL_KB" -lt 2048 ] || fail "the tmpfs never filled: $AVAIL_KB KiB free"
REFUSED=$(grep -c "more bytes refused" "$CS3/chunkserver.log")

# ---- the status shows it up and full -----------------------------------------
sleep 2     # a heartbeat with the new figures
"$BIN/dfsadmin" status --json >"$DIR/status.json" || fail "no status"
CS3_FIG=$(python3 - "$DIR/status.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cs = [c for c in d["chunkservers"] if c["id"] == 3]
if not cs:
    sys.exit("chunkserver 3 is not in the status")
c = cs[0]
if c["state"] != "up":
    sys.exit("chunkserver 3 is %s, not up" % c["state"])
if not any(a["code"] == "chunkserver_disk_full" for a in d.get("alarms", [])):
    sys.exit("no chunkserver_disk_full alarm: %s" % d.get("alarms"))
print("%d of %d MiB used, %d chunks" % (c["bytes_used"] >> 20, c["bytes_total"] >> 20, c["chunks"]))
PY
) || fail "status: $CS3_FIG"
step "chunkserver 3 full: $CS3_FIG; ${AVAIL_KB} KiB free on its disk; $REFUSED writes refused by it"

# ---- every acknowledged byte, then chunkserver 3 alone -------------------------
check_files "$ACKED"
VERIFIED=$CHECKED_BYTES
"$CLUSTER" kill -d "$DIR" chunkserver 1 >/dev/null
"$CLUSTER" kill -d "$DIR" chunkserver 2 >/dev/null
check_files "$FIRST"
ALONE=$CHECKED_BYTES
"$CLUSTER" start -d "$DIR" chunkserver 1 >/dev/null
"$CLUSTER" start -d "$DIR" chunkserver 2 >/dev/null
wait_serving 3

# ---- nothing damaged -----------------------------------------------------------
"$BIN/dfsadmin" fsck / >"$DIR/fsck.out" 2>&1
SUMMARY=$(grep -E '^/: [0-9]+ chunks' "$DIR/fsck.out")
read -r MISSING CORRUPT <<<"$(echo "$SUMMARY" | sed -n 's/.* \([0-9]*\) missing, \([0-9]*\) corrupt.*/\1 \2/p')"
[ -n "$SUMMARY" ] || { cat "$DIR/fsck.out"; fail "no fsck summary"; }
[ "$MISSING" = 0 ] && [ "$CORRUPT" = 0 ] || { cat "$DIR/fsck.out"; fail "fsck: $SUMMARY"; }
check_files "$ACKED"

NACK=$(echo "$ACKED" | wc -w)
echo "  test_faults_disk: scenario 5 (disk full): $NACK of $NFILES writes acknowledged, $ENOSPC failed with ENOSPC;" \
     "bytes verified $VERIFIED, bytes lost 0; $ALONE bytes read from the full chunkserver alone; fsck: ${SUMMARY#/: }"
echo "PASS test_faults_disk"
