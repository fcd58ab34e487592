#!/bin/bash
# Failover during a copy into a dfs mount (run by tests/posix/run.sh last,
# since it kills and restarts servers of the suite's cluster).
#
#   failover.sh MNT BIN_DIR WORK_DIR CLUSTER_DIR
#
# cp copies a 96 MiB file into the mount, reading it from a FIFO that a
# feeder fills in three parts: after the first part the leader master is
# killed, after the second one chunkserver, so both die while cp is in the
# middle of its copy whatever the machine's speed.  cp must succeed and the
# file compare equal (the mount's operations wait for the new leader and
# write around the dead chunkserver); both servers are restarted after.
# Prints `ok   failover_copy` or `FAIL failover_copy: why`, and last
# `failover: N passed, M failed`.
set -u

[ $# -eq 4 ] || { echo "usage: failover.sh MNT BIN_DIR WORK_DIR CLUSTER_DIR" >&2; exit 2; }
mnt=$1 bin=$2 work=$3/failover cluster=$4
part_mib=32                         # three parts of this many MiB

fail() {
    echo "FAIL failover_copy: $*"
    echo "failover: 0 passed, 1 failed"
    exit 1
}

mkdir -p "$work" || fail "cannot make $work"
src=$work/src fifo=$work/fifo dst=$mnt/failover.bin
head -c $((3 * part_mib * 1024 * 1024)) /dev/urandom >"$src" || fail "no source file"
mkfifo "$fifo" || fail "mkfifo failed"

cp "$fifo" "$dst" 2>"$work/cp.err" &
cp_pid=$!
# Restarts whatever this script stopped, even on a failure.
restart() {
    "$bin/dfs-cluster" start all -d "$cluster" >>"$work/cluster.log" 2>&1
}
trap 'restart; kill "$cp_pid" 2>/dev/null' EXIT

# part N of the source into the FIFO (held open on fd 3 between parts, so
# that cp sees one stream); dd returns once cp has read all but the pipe's
# buffer of it, i.e. cp is writing that part into the mount.
feed() {
    dd if="$src" bs=1M skip=$((($1 - 1) * part_mib)) count=$part_mib \
        iflag=fullblock status=none >&3 || fail "feeding part $1 to cp failed"
}

exec 3>"$fifo"
feed 1
"$bin/dfs-cluster" kill master leader -d "$cluster" >>"$work/cluster.log" 2>&1 ||
    fail "could not kill the leader master: $(tail -n 2 "$work/cluster.log")"
feed 2
"$bin/dfs-cluster" kill chunkserver 1 -d "$cluster" >>"$work/cluster.log" 2>&1 ||
    fail "could not kill chunkserver 1: $(tail -n 2 "$work/cluster.log")"
feed 3
exec 3>&-

wait "$cp_pid"
rc=$?
[ $rc -eq 0 ] || fail "cp exited $rc: $(tail -n 3 "$work/cp.err")"
cmp "$src" "$dst" >"$work/cmp.out" 2>&1 ||
    fail "the copy differs from its source: $(head -n 1 "$work/cmp.out")"
restart || fail "the killed servers did not restart: $(tail -n 3 "$work/cluster.log")"
# Read back once more with the servers back: still the same bytes.
cmp "$src" "$dst" >"$work/cmp.out" 2>&1 ||
    fail "after the restart the copy differs: $(head -n 1 "$work/cmp.out")"
rm -f "$dst" "$src"
trap - EXIT
echo "ok   failover_copy"
echo "failover: 1 passed, 0 failed"
