#!/usr/bin/env bash
# Chunkservers with two data directories each: new chunks spread over
# both; then one directory's disk dies under a running server (an ext4 on
# a loop device, shut down with EXT4_IOC_SHUTDOWN, so every call on it
# returns EIO from then on).  The server fails that directory alone,
# reports its chunks lost and serves on from the other; the master copies
# the lost replicas again: fsck is clean, every file reads back, and every
# chunk that lived there has three healthy replicas elsewhere.  Files
# still being written into chunks of the dead directory go on without
# that server, which refuses to create those chunks anew (they would read
# as zeros where the lost data was).  When its last directory dies as
# well, the server stops, saying why.
# Needs root (loop devices, mount); skips otherwise.
set -u
. "$(dirname "$0")/lib.sh"

skip() { echo "SKIP: $(basename "$0" .sh): $*"; rm -rf "$DIR"; trap - EXIT; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root: needs loop devices and mount"
for c in losetup mkfs.ext4 mount umount; do
    command -v "$c" >/dev/null || skip "no $c"
done

CS1=$DIR/chunkserver-1
LOOPS=()
disks_cleanup() {
    "$CLUSTER" down -d "$DIR" >/dev/null 2>&1
    for d in "$CS1/data1" "$CS1/data2"; do
        mountpoint -q "$d" && { umount "$d" 2>/dev/null || umount -l "$d"; }
    done
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
    cleanup
}
trap disks_cleanup EXIT

# Chunkserver 1's two directories: two equal ext4 file systems, so
# placement by free space alternates between them (the other servers'
# directories share one file system, which alternates too).
step "chunkserver 1 gets two ext4 disks on loop devices"
mkdir -p "$CS1/data1" "$CS1/data2"
for i in 1 2; do
    truncate -s 256M "$DIR/disk$i.img"
    l=$(losetup -f --show "$DIR/disk$i.img" 2>&1) || skip "losetup: $l"
    LOOPS+=("$l")
    mkfs.ext4 -q -F "$l" || fail "mkfs.ext4 $l"
    mount "$l" "$CS1/data$i" || fail "mount $l"
done

# Three servers and the default goal of three: every chunk has a replica
# on chunkserver 1, however small its disks are beside the others.
cluster_up -m 1 -c 3 --data-dirs 2
grep -q "data_dir = .*data1,.*data2" "$CS1/chunkserver.conf" \
    || fail "dfs-cluster did not give chunkserver 1 two directories"

# The file system mounted at $1 dies: every call on it fails with EIO.
shutdown_disk() {
    python3 - "$1" <<'PY' || fail "EXT4_IOC_SHUTDOWN on $1"
import fcntl, os, struct, sys
EXT4_IOC_SHUTDOWN = 0x8004587D        # _IOR('X', 125, __u32)
NOLOGFLUSH = 2
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", NOLOGFLUSH))
os.close(fd)
PY
}

W=$DIR/work
mkdir -p "$W"
step "writing 16 files"
for i in $(seq 1 16); do
    head -c $((100000 + i * 37000)) /dev/urandom > "$W/f$i"
    "$BIN/dfsput" "$W/f$i" "/f$i" || fail "dfsput f$i"
done
wait_fsck_clean 60 || fail "fsck not clean after the writes"

chunks_in() { find "$1" -name '*.chunk' 2>/dev/null | wc -l; }
step "chunk files are spread over both directories of every server"
for cs in "$DIR"/chunkserver-*; do
    a=$(chunks_in "$cs/data1"); b=$(chunks_in "$cs/data2")
    echo "    $(basename "$cs"): data1 $a, data2 $b chunks"
    [ "$a" -gt 0 ] && [ "$b" -gt 0 ] || fail "$(basename "$cs") did not use both directories"
done

# Streams left open across the failure: each gets 2 MiB now and 1 MiB
# once the directory has failed, all in the first session of its chunk
# (every write with prev_version 0).  One at a time, so each new chunk
# is placed after the previous one's bytes count: they alternate.
NS=4
SPIDS=()
SFDS=()
stream_lost=""
step "$NS files start streaming in (2 of 3 MiB each)"
chunk_files() { find "$CS1/data1" "$CS1/data2" -name '*.chunk' 2>/dev/null | sort; }
for s in $(seq 1 $NS); do
    head -c $((3 << 20)) /dev/urandom > "$W/s$s"
    mkfifo "$W/s$s.fifo"
    old=$(chunk_files)
    "$BIN/dfsput" - "/s$s" < "$W/s$s.fifo" > "$W/s$s.out" 2>&1 &
    SPIDS+=($!)
    exec {fd}>"$W/s$s.fifo"
    SFDS+=("$fd")
    head -c $((2 << 20)) "$W/s$s" >&"$fd"
    deadline=$((SECONDS + 30))
    until new=$(comm -13 <(echo "$old") <(chunk_files) | head -1) && [ -n "$new" ] \
          && [ "$(stat -c %s "$new")" -ge $((1 << 20)) ]; do
        [ $SECONDS -lt $deadline ] || fail "stream s$s reached no chunk of chunkserver 1"
        sleep 0.2
    done
    echo "    s$s: chunk ${new#"$CS1"/}"
    case $new in "$CS1"/data2/*) stream_lost+=" $(basename "$new" .chunk)";; esac
done
[ -n "$stream_lost" ] || fail "no stream's chunk went to chunkserver 1's data2"
lost_ids=$(find "$CS1/data2" -name '*.chunk' -printf '%f\n' | sed 's/\.chunk$//' | sort)
before1=$(chunks_in "$CS1/data1")

step "chunkserver 1's data2 disk dies (EIO on every call)"
shutdown_disk "$CS1/data2"
cat "$CS1/data2/dfs-store.id" >/dev/null 2>&1 && fail "the shut-down disk still answers"

deadline=$((SECONDS + 30))
until grep -q "data directory $CS1/data2 failed" "$CS1/chunkserver.log"; do
    [ $SECONDS -lt $deadline ] || fail "chunkserver 1 did not notice its dead directory"
    sleep 0.5
done
grep "data directory $CS1/data2 failed" "$CS1/chunkserver.log" | sed 's/^/    /'

step "the streams go on: chunkserver 1 refuses to create their lost chunks anew"
for s in $(seq 1 $NS); do
    fd=${SFDS[$((s - 1))]}
    tail -c +$(((2 << 20) + 1)) "$W/s$s" >&"$fd"
    exec {fd}>&-
done
for s in $(seq 1 $NS); do
    wait "${SPIDS[$((s - 1))]}" || { cat "$W/s$s.out"; fail "dfsput of stream s$s failed"; }
done
for id in $stream_lost; do
    grep -q "chunk $id was lost with failed data directory $CS1/data2" \
        "$CS1/chunkserver.log" \
        || fail "chunkserver 1 did not refuse to create lost chunk $id anew"
done
echo "    refused:$stream_lost"

step "the master copies the lost replicas again; fsck is clean"
healthy_copies() {
    find "$DIR"/chunkserver-*/data1 "$DIR"/chunkserver-[2-9]/data2 \
         -name "$1.chunk" 2>/dev/null | wc -l
}
deadline=$((SECONDS + 120))
for id in $lost_ids; do
    until [ "$(healthy_copies "$id")" -eq 3 ]; do
        [ $SECONDS -lt $deadline ] \
            || fail "chunk $id has $(healthy_copies "$id") replicas on healthy directories, not 3"
        sleep 1
    done
done
echo "    the $(echo "$lost_ids" | wc -w) chunks of the dead directory have 3 healthy replicas again"
grep -q "deleting corrupt replica" "$DIR/master-1/master.log" \
    || fail "the master never dropped chunkserver 1's lost replicas"
wait_fsck_clean 60 || fail "fsck not clean after the directory failed"
"$CLUSTER" status -d "$DIR" | grep "^chunkserver 1 .*running" >/dev/null \
    || { "$CLUSTER" status -d "$DIR"; fail "chunkserver 1 is not running any more"; }

step "every file reads back; chunkserver 1 serves on from data1"
for f in $(seq -f f%g 1 16) $(seq -f s%g 1 $NS); do
    "$BIN/dfsget" -f "/$f" "$W/out" || fail "dfsget $f"
    cmp -s "$W/$f" "$W/out" || fail "$f differs"
done
for i in $(seq 17 24); do
    head -c 150000 /dev/urandom > "$W/f$i"
    "$BIN/dfsput" "$W/f$i" "/f$i" || fail "dfsput f$i after the failure"
    "$BIN/dfsget" -f "/f$i" "$W/out" || fail "dfsget f$i"
    cmp -s "$W/f$i" "$W/out" || fail "f$i differs"
done
after1=$(chunks_in "$CS1/data1")
[ "$after1" -gt "$before1" ] || fail "chunkserver 1 took no new chunk in data1 ($before1 -> $after1)"
wait_fsck_clean 60 || fail "fsck not clean at the end"

step "its last directory dies too: chunkserver 1 stops, saying why"
shutdown_disk "$CS1/data1"
deadline=$((SECONDS + 30))
until "$CLUSTER" status -d "$DIR" | grep "^chunkserver 1 .*stopped" >/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "chunkserver 1 still runs without a data directory"
    sleep 0.5
done
grep -q "was the last data directory; nothing left" "$CS1/chunkserver.log" \
    && grep -q "every data directory failed" "$CS1/chunkserver.log" \
    || fail "chunkserver 1 stopped without saying why"
for i in 1 5 9; do
    "$BIN/dfsget" -f "/f$i" "$W/out" && cmp -s "$W/f$i" "$W/out" \
        || fail "f$i unreadable with chunkserver 1 gone"
done
echo "test_datadirs: 1 passed, 0 failed"
