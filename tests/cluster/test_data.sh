#!/usr/bin/env bash
# File data through dfsput/dfsget on a real cluster: round trips at the
# sizes around block and chunk edges, trees, stdin/stdout, a chunkserver
# killed in the middle of a put, scattered writes over several chunks of
# one handle across a chunkserver loss, local reads beside reads through
# the chunkservers, and bad input with clear errors.
set -u
. "$(dirname "$0")/lib.sh"
# Chunks of 1 MiB, so that every file of more than a MiB spans chunks.
MiB=$((1 << 20)); CHUNK=$MiB
cluster_up -m 3 -c 3 --chunk-size $CHUNK
W=$DIR/work
mkdir -p "$W"
[ "$(master_field "${DFS_MASTERS%%,*}" chunk_size)" = $CHUNK ] || fail "the cluster does not say its chunk size"

step "round trips at block and chunk edges"
# The large one first: its first batch opens the chains' connections.
for size in $((3 * CHUNK + 1)) 0 1 65535 65536 65537 $((CHUNK - 1)) $((CHUNK)) $((CHUNK + 1)); do
    head -c "$size" /dev/urandom > "$W/in.$size"
    "$BIN/dfsput" "$W/in.$size" "/f.$size" || fail "dfsput of $size bytes"
    "$BIN/dfsget" "/f.$size" "$W/out.$size" || fail "dfsget of $size bytes"
    cmp -s "$W/in.$size" "$W/out.$size" || fail "$size bytes differ after a round trip"
    DFS_LOCAL_READS=0 "$BIN/dfsget" -f "/f.$size" "$W/out.$size" || fail "dfsget of $size bytes through TCP"
    cmp -s "$W/in.$size" "$W/out.$size" || fail "$size bytes differ after a round trip through TCP"
    got=$("$BIN/dfsadmin" stat --json "/f.$size" | python3 -c "import json,sys; print(json.load(sys.stdin)['size'])")
    [ "$got" = "$size" ] || fail "stat says $got bytes, not $size"
    rm -f "$W/in.$size" "$W/out.$size"
done

# Nothing failed inside the chains: a healthy cluster never needed to drop
# a replica (a replacement would hide it from the checks above).
grep -h "failed at cs" "$DIR"/chunkserver-*/chunkserver.log && fail "a write failed inside a healthy chain"
"$BIN/dfsadmin" fsck / >/dev/null || fail "fsck is not clean after the round trips"

step "a device or FIFO as the destination is written into, not replaced"
# As cp does: a temporary file renamed over it would replace the device.
mknod "$W/null" c 1 3
"$BIN/dfsget" -f /f.$((CHUNK + 1)) "$W/null" || fail "dfsget into a device"
[ -c "$W/null" ] || fail "dfsget replaced a device with a file"
mkfifo "$W/fifo"
cat "$W/fifo" > "$W/fifo.out" & reader=$!
"$BIN/dfsget" -f /f.$((3 * CHUNK + 1)) "$W/fifo" || fail "dfsget into a FIFO"
wait $reader
[ -p "$W/fifo" ] || fail "dfsget replaced a FIFO with a file"
[ "$(stat -c %s "$W/fifo.out")" = $((3 * CHUNK + 1)) ] || fail "the FIFO's reader got $(stat -c %s "$W/fifo.out") bytes"
rm -f "$W/null" "$W/fifo" "$W/fifo.out"

step "stdin and stdout"
head -c 3000000 /dev/urandom > "$W/pipe"
"$BIN/dfsput" - /piped < "$W/pipe" || fail "dfsput from stdin"
"$BIN/dfsget" /piped - | cmp -s - "$W/pipe" || fail "dfsget to stdout differs"

step "local reads: replicas on this host are read in place, not through TCP"
# The chunkservers count the bytes they serve (read_bytes_total): local
# reads add nothing to it; with DFS_LOCAL_READS=0 the same get goes
# through the chunkservers and adds the whole file.
read_bytes() { curl -sf "${DFS_HTTP}api/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['read_bytes_total'])"; }
head -c $((3 * MiB + 5)) /dev/urandom > "$W/loc"
"$BIN/dfsput" "$W/loc" /loc || fail "dfsput /loc"
sleep 2.5        # a heartbeat from every chunkserver: the count is current
rb0=$(read_bytes)
for i in 1 2; do
    "$BIN/dfsget" -f /loc "$W/loc.out" && cmp -s "$W/loc" "$W/loc.out" || fail "local get $i"
done
sleep 2.5
rb1=$(read_bytes)
[ $((rb1 - rb0)) -lt $MiB ] || fail "local gets moved $((rb1 - rb0)) bytes through the chunkservers"
DFS_LOCAL_READS=0 "$BIN/dfsget" -f /loc "$W/loc.out" && cmp -s "$W/loc" "$W/loc.out" || fail "get through TCP"
deadline=$((SECONDS + 10))
until [ $(($(read_bytes) - rb1)) -ge $((3 * MiB)) ]; do
    [ $SECONDS -lt $deadline ] || fail "a get with local reads off did not go through the chunkservers"
    sleep 0.5
done
rm -f "$W/loc" "$W/loc.out"

step "random reads hop between five chunks without locating them again"
# Every handle keeps the chunks it located, with their local replicas:
# 3,000 reads at random offsets over five chunks ask the masters for
# locations a handful of times, not at every hop.
locates() {
    python3 - "$DIR/cluster.json" <<'PY'
import json, sys, urllib.request
n = 0
for m in json.load(open(sys.argv[1]))["masters"]:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % m["http"], timeout=5).read().decode()
    except OSError:
        continue
    for line in text.splitlines():
        if line.startswith('dfs_client_ops_total{op="chunk_locations"}'):
            n += int(float(line.split()[-1]))
print(n)
PY
}
l0=$(locates)
"$TOOLS/scatter" /hops 7 5 300 > "$W/hops.out" 2>&1 || fail "random reads over five chunks: $(cat "$W/hops.out")"
l1=$(locates)
[ $((l1 - l0)) -lt 50 ] || fail "3,000 random reads located chunks $((l1 - l0)) times"

step "a recursive tree"
mkdir -p "$W/tree/a/b" "$W/tree/c"
for i in 1 2 3; do head -c $((i * 70000)) /dev/urandom > "$W/tree/a/b/f$i"; done
echo hello > "$W/tree/c/hello"
"$BIN/dfsput" -r "$W/tree" / || fail "dfsput -r"
"$BIN/dfsget" -r /tree "$W/tree.out" || fail "dfsget -r"
diff -r "$W/tree" "$W/tree.out" >/dev/null || fail "the tree differs after a round trip"

step "kill -9 of a chunkserver in the middle of a put"
head -c $((200 * MiB)) /dev/urandom > "$W/big"
"$BIN/dfsput" "$W/big" /big & put=$!
sleep 1
"$CLUSTER" kill chunkserver 2 -d "$DIR" >/dev/null || fail "kill"
wait $put || fail "the put did not survive the loss of a chunkserver"
"$BIN/dfsget" /big "$W/big.out" || fail "dfsget after the loss"
cmp -s "$W/big" "$W/big.out" || fail "data differs after a chunkserver loss"
rm -f "$W/big" "$W/big.out"
"$BIN/dfsadmin" fsck / >/dev/null && fail "fsck is clean with a chunkserver down"
"$CLUSTER" start chunkserver 2 -d "$DIR" >/dev/null
step "the restarted chunkserver's stale replicas go, fsck comes back clean"
wait_fsck_clean 90 || fail "fsck not clean after the chunkserver came back"

step "kill -9 of the leader master in the middle of a put"
head -c $((100 * MiB)) /dev/urandom > "$W/big2"
"$BIN/dfsput" "$W/big2" /big2 & put=$!
sleep 1
"$CLUSTER" kill master leader -d "$DIR" >/dev/null || fail "kill leader"
if ! wait $put; then
    echo "  test_data: the put failed across the failover; retrying it"
    "$BIN/dfsput" -f "$W/big2" /big2 || fail "the retried put failed"
fi
"$BIN/dfsget" -f /big2 "$W/big2.out" || fail "dfsget after the failover"
cmp -s "$W/big2" "$W/big2.out" || fail "data differs after a leader failover"
"$CLUSTER" start all -d "$DIR" >/dev/null
wait_fsck_clean 90 || fail "fsck not clean after the leader failover"
rm -f "$W/big2" "$W/big2.out"

step "every chunkserver killed while a put holds acknowledged, unsynced data"
# A chunkserver acknowledges a write once it is in its page cache; one
# that restarts drops what it had not synced.  The client must send the
# chain everything since its last sync again, or the file's committed
# length would cover bytes no replica has.
head -c $((3 * MiB)) /dev/urandom > "$W/part1"
head -c $((2 * MiB + 77)) /dev/urandom > "$W/part2"
mkfifo "$W/fifo"
"$BIN/dfsput" - /unsynced < "$W/fifo" & put=$!
exec 3>"$W/fifo"
cat "$W/part1" >&3
sleep 2             # the chain acknowledges it, nobody syncs yet
# shellcheck disable=SC2046
kill_servers $(server_pids chunkservers)
"$CLUSTER" start all -d "$DIR" >/dev/null || fail "restart of the chunkservers"
wait_serving 3 30
cat "$W/part2" >&3
exec 3>&-
wait $put || fail "the put did not survive a restart of every chunkserver"
cat "$W/part1" "$W/part2" > "$W/whole"
"$BIN/dfsget" -f /unsynced "$W/unsynced.out" || fail "dfsget after the restart"
cmp -s "$W/whole" "$W/unsynced.out" || fail "acknowledged bytes lost to a restart of every chunkserver"
rm -f "$W/part1" "$W/part2" "$W/whole" "$W/unsynced.out" "$W/fifo"

step "each chunkserver in turn restarted under an open put: no replica at the committed version has a hole"
# A restarted server comes back at the session's version without what it
# had not synced, while the chain head keeps its connection.  It must
# refuse to go on at that version (the client then repairs the chain and
# sends again what it holds): a replica with a hole would pass every CRC
# check.  So every copy on disk at the committed version must hold the
# file's bytes.  One of the three rounds restarts the head (the stream
# breaks); the others restart a member behind it.
committed_copies_match() {  # committed_copies_match DFS_PATH LOCAL_FILE
    "$BIN/dfsadmin" stat --json "$1" | python3 -c '
import glob, json, struct, sys
st, want, top = json.load(sys.stdin), open(sys.argv[2], "rb").read(), sys.argv[1]
CHUNK, DATA_OFF = int(sys.argv[3]), 12288
for c in st["chunks"]:
    part = want[c["index"] * CHUNK:][:c["length"]]
    cid = int(c["id"], 16)
    for f in glob.glob("%s/chunkserver-*/data/%02x/%016x.chunk" % (top, cid & 0xff, cid)):
        raw = open(f, "rb").read()
        slots = [raw[o:o + 64] for o in (0, 4096) if raw[o:o + 4] == b"DFSC"]
        seq, version = max((struct.unpack_from("<Q", h, 16)[0],
                            struct.unpack_from("<I", h, 40)[0]) for h in slots)
        if version == c["version"] and raw[DATA_OFF:DATA_OFF + len(part)] != part:
            sys.exit("%s: at the committed version %d, other bytes" % (f, version))
' "$DIR" "$2" "$CHUNK"
}
head -c $((MiB + 5)) /dev/urandom > "$W/part2"
for victim in 1 2 3; do
    head -c $((3 * MiB)) /dev/urandom > "$W/part1"
    mkfifo "$W/fifo"
    "$BIN/dfsput" - "/restarted$victim" < "$W/fifo" & put=$!
    exec 3>"$W/fifo"
    cat "$W/part1" >&3
    sleep 2
    # shellcheck disable=SC2046
    kill_servers $(server_pids chunkservers | cut -d' ' -f$victim)
    "$CLUSTER" start all -d "$DIR" >/dev/null || fail "restart of chunkserver $victim"
    wait_serving 3 30
    cat "$W/part2" >&3
    exec 3>&-
    wait $put || fail "the put did not survive a restart of chunkserver $victim"
    rm -f "$W/fifo"
    cat "$W/part1" "$W/part2" > "$W/whole"
    "$BIN/dfsget" -f "/restarted$victim" "$W/got" || fail "dfsget after the restart"
    cmp -s "$W/whole" "$W/got" || fail "other bytes after a restart of chunkserver $victim"
    # A server left out of the repaired chain gets the chunk back by
    # re-replication, which creates the file at the committed version and
    # then fills it: only once no copy is due is every file on disk at
    # that version a finished replica.
    wait_fsck_clean 90 || fail "fsck not clean after the restart of chunkserver $victim"
    committed_copies_match "/restarted$victim" "$W/whole" ||
        fail "a replica at the committed version lacks bytes after a restart of chunkserver $victim"
done
wait_fsck_clean 90 || fail "fsck not clean after the restarts"
rm -f "$W/part1" "$W/part2" "$W/whole" "$W/got"

step "a chunkserver registered at an address nobody can reach"
# Every chain includes it (goal 3 on 3 servers): a put must go on without
# it, whether it heads the chain or sits in the middle.
conf=$DIR/chunkserver-3/chunkserver.conf
"$CLUSTER" kill chunkserver 3 -d "$DIR" >/dev/null || fail "kill"
{ cat "$conf"; echo "advertise = 127.0.0.1:1"; } > "$conf.unreachable"
"$BIN/dfs-chunkserver" -c "$conf.unreachable" 2>>"$DIR/chunkserver-3/stderr.log" & cs3=$!
deadline=$((SECONDS + 30))
until "$BIN/dfsadmin" status --json | grep -q '"127.0.0.1:1"'; do
    [ $SECONDS -lt $deadline ] || fail "chunkserver 3 did not register at 127.0.0.1:1"
    sleep 0.5
done
head -c $((3 * MiB)) /dev/urandom > "$W/unreach"
for i in 1 2 3 4 5 6; do
    "$BIN/dfsput" "$W/unreach" "/unreach$i" || fail "put $i with an unreachable chunkserver"
    "$BIN/dfsget" "/unreach$i" "$W/unreach.out" || fail "get $i"
    cmp -s "$W/unreach" "$W/unreach.out" || fail "data $i differs"
    rm -f "$W/unreach.out"
done
kill -9 $cs3; wait $cs3 2>/dev/null
"$CLUSTER" start chunkserver 3 -d "$DIR" >/dev/null
wait_fsck_clean 90 || fail "fsck not clean once chunkserver 3 is reachable again"

step "scattered writes over five chunks, a chunkserver killed while four hold unsynced writes"
# One handle writes up to four chunks at once, each under its own lease and
# chain (docs/LIBDFS.md); a fifth makes it commit the least recent one.
# Killing a member of every chain then makes each repair on its own.
seed=${SCATTER_SEED:-$RANDOM}
echo "  test_data:   seed $seed (SCATTER_SEED=$seed replays it)"
"$TOOLS/scatter" /scatter "$seed" $((5 * CHUNK / MiB)) 6000 3500 > "$W/scatter.out" 2>&1 & sc=$!
deadline=$((SECONDS + 120))
until grep -q paused "$W/scatter.out"; do
    kill -0 $sc 2>/dev/null || break
    [ $SECONDS -lt $deadline ] || fail "scatter did not reach its pause"
    sleep 0.2
done
"$CLUSTER" kill chunkserver 1 -d "$DIR" >/dev/null || fail "kill"
wait $sc || fail "scattered writes across a chunkserver loss (seed $seed): $(cat "$W/scatter.out")"
"$CLUSTER" start chunkserver 1 -d "$DIR" >/dev/null
wait_fsck_clean 90 || fail "fsck not clean after the scattered writes"

step "two clients write two chunks of one file in opposite orders"
# Each asks for the lease the other holds: the one refused releases what it
# holds, or both would wait out their timeout (tests/cluster/leasecross.c).
"$TOOLS/leasecross" /crossed || fail "two writers crossing over two chunks"

step "bad input gets a clear message and exit code"
out=$("$BIN/dfsput" "$W/nonexistent" /x 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "No such file" || fail "missing local file: rc=$rc: $out"
out=$("$BIN/dfsput" "$W/pipe" /piped 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "exists" || fail "existing destination: rc=$rc: $out"
"$BIN/dfsput" -f "$W/tree/c/hello" /piped || fail "overwrite with -f"
[ "$("$BIN/dfsget" /piped -)" = hello ] || fail "-f did not replace the content"
out=$("$BIN/dfsget" /piped "$W/pipe" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "exists" || fail "existing local file: rc=$rc: $out"
out=$("$BIN/dfsput" -M 127.0.0.1:1 "$W/pipe" /y 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "cannot reach" || fail "unreachable masters: rc=$rc: $out"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$W/wrong.key"; echo >> "$W/wrong.key"; chmod 600 "$W/wrong.key"
out=$("$BIN/dfsput" -k "$W/wrong.key" "$W/pipe" /y 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -qi "key" || fail "wrong key: rc=$rc: $out"
out=$("$BIN/dfsput" 2>&1); rc=$?
[ $rc = 2 ] || fail "usage error: rc=$rc"
"$BIN/dfsadmin" stat /y >/dev/null 2>&1 && fail "a failed put left /y behind"
echo "test_data: 1 passed, 0 failed"
