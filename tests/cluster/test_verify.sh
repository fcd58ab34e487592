#!/usr/bin/env bash
# dfsadmin fsck --verify: every chunkserver re-reads its replicas of the
# chunks under PATH.  Clean, it exits 0; a byte flipped on disk in a replica
# nobody reads is reported at once (the bad replica counted corrupt, fsck
# exits 1) and the master replaces it; a chunkserver that does not answer
# leaves its replicas "unverified" instead of hanging fsck; a leadership
# change during a verify sends the client to the new leader.
set -u
. "$(dirname "$0")/lib.sh"
cluster_up -m 3 -c 4
# One value of the JSON document on stdin, by a Python expression on d.
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# The leader's dfs_corrupt_replicas_total (the status document's copy).
corrupt_total() {
    "$BIN/dfsadmin" status --json | field "d['corrupt_replicas_total']"
}

# Three files of one 24 MB chunk each: the scrubber (4 MB/s, a 5 s rest
# between passes) takes each replica in one go every ~15-20 s, so it
# rarely re-reads a replica in the second between a flip and the verify.
for i in 1 2 3; do
    head -c 24000000 /dev/urandom > "$DIR/f$i"
    "$BIN/dfsput" "$DIR/f$i" "/f$i" || fail "put f$i"
done
wait_fsck_clean 60 || fail "not clean after the writes"

step "fsck --verify on a clean cluster exits 0, every replica verified"
# The chunkservers asked are those holding the 9 replicas: 3 or 4, as the
# master placed them.
holders=$(for i in 1 2 3; do
    id=$("$BIN/dfsadmin" --json stat "/f$i" | field "d['chunks'][0]['id']")
    find "$DIR"/chunkserver-*/data -name "$id.chunk"
done | sed 's|.*/chunkserver-\([0-9]*\)/.*|\1|' | sort -u | wc -l)
out=$("$BIN/dfsadmin" --json fsck --verify /) || fail "fsck --verify of a clean cluster failed: $out"
v=$(echo "$out" | field "d['chunks'], d['corrupt'], d['verify']['verified'], d['verify']['bad'], d['verify']['unverified'], d['verify']['chunkservers']")
[ "$v" = "3 0 9 0 0 $holders" ] || fail "clean verify: chunks corrupt verified bad unverified servers = $v (replicas on $holders)"
"$BIN/dfsadmin" fsck --verify /f2 >"$DIR/verify.out" 2>&1 || fail "fsck --verify /f2: $(cat "$DIR/verify.out")"
grep -q "3 replicas re-read on 3 chunkservers: 3 good, 0 bad, 0 not verified" "$DIR/verify.out" ||
    fail "fsck --verify /f2 printed: $(cat "$DIR/verify.out")"

# The chunk file of /fN on some chunkserver.
replica_of() {
    local id
    id=$("$BIN/dfsadmin" --json stat "/f$1" | field "d['chunks'][0]['id']")
    find "$DIR"/chunkserver-*/data -name "$id.chunk" | head -n 1
}
flip() {
    python3 - "$1" <<'PY'
import sys
# Data starts after two header slots and the CRC array (12288 bytes for a
# 64 MiB chunk); byte 20000000 of the chunk is read by nobody here.
with open(sys.argv[1], "r+b") as f:
    f.seek(12288 + 20000000)
    b = f.read(1)
    f.seek(12288 + 20000000)
    f.write(bytes([b[0] ^ 0xFF]))
PY
}

step "a flipped byte is found by fsck --verify, not by a read"
before=$(corrupt_total)
found=""
for i in 1 2 3; do
    chunk=$(replica_of "$i")
    [ -n "$chunk" ] || fail "no chunk file of /f$i on disk"
    flip "$chunk"
    out=$("$BIN/dfsadmin" --json fsck --verify /); rc=$?
    v=$(echo "$out" | field "d['corrupt'], d['verify']['bad']") || fail "fsck --verify output: $out"
    if [ "$v" = "1 1" ]; then
        [ $rc = 1 ] || fail "fsck --verify found a bad replica and exited $rc"
        found=$i
        break
    fi
    # The scrubber may re-read that replica in the same second: then its
    # report comes first (an event without "fsck --verify") and verify does
    # not re-read a replica known corrupt.  Try another file's replica.
    id=$(basename "$chunk" .chunk)
    "$BIN/dfsadmin" status --json |
        field "any('$id' in e['text'] and 'verify' not in e['text'] for e in d['events'] if e['kind'] == 'corruption')" |
        grep -q True || fail "fsck --verify missed the flipped byte in $chunk: corrupt, bad = $v ($out)"
    step "the scrubber found /f$i's replica first; again with /f$((i + 1))"
    wait_fsck_clean 60 || fail "not repaired after the scrubber found /f$i's replica"
done
[ -n "$found" ] || fail "the scrubber beat fsck --verify three times"
after=$(corrupt_total)
[ "$after" = $((before + 1)) ] ||
    fail "dfs_corrupt_replicas_total went from $before to $after, not by one"

step "the master replaces the bad replica; plain fsck becomes clean"
wait_fsck_clean 60 || fail "fsck not clean after the verify found the bad replica"
[ "$(corrupt_total)" = "$after" ] || fail "the chunkserver's own report counted the replica again"
"$BIN/dfsget" -f "/f$found" "$DIR/out" && cmp -s "$DIR/f$found" "$DIR/out" || fail "data of /f$found after the repair"
"$BIN/dfsadmin" fsck --verify / >"$DIR/verify.out" 2>&1 || fail "fsck --verify after the repair: $(cat "$DIR/verify.out")"

step "a chunkserver that does not answer leaves its replicas unverified"
# One that holds a replica: with four of them, the master's placement and
# the repair above may have left one with none.
holder=$(replica_of 2 | sed 's|.*/chunkserver-\([0-9]*\)/.*|\1|')
[ -n "$holder" ] || fail "no chunkserver holds a replica of /f2"
pid=$(python3 -c "import json,sys; print([c for c in json.load(open(sys.argv[1]))['chunkservers'] if c['id'] == int(sys.argv[2])][0]['pid'])" "$DIR/cluster.json" "$holder")
kill -STOP "$pid"
start=$SECONDS
# (Its exit code says whether chunks are healthy: that depends on whether
# the master saw the server's heartbeats stop meanwhile.)
out=$("$BIN/dfsadmin" --json fsck --verify /)
kill -CONT "$pid"
v=$(echo "$out" | field "d['verify']['unverified'] > 0, d['verify']['bad']") || fail "fsck --verify output: $out"
[ "$v" = "True 0" ] || fail "with chunkserver $holder stopped: unverified > 0, bad = $v ($out)"
step "  answered after $((SECONDS - start)) s"
wait_fsck_clean 90 || fail "not clean once chunkserver $holder runs again"

step "a leadership change during a verify: the new leader answers"
kill -STOP "$pid"
"$BIN/dfsadmin" --json fsck --verify / >"$DIR/verify.out" 2>"$DIR/verify.err" &
bg=$!
sleep 2
leader=$("$BIN/dfsadmin" status --json | field "d['leader']")
other=$("$BIN/dfsadmin" masters --json | field "[m['id'] for m in d['masters'] if m['id'] != $leader][0]")
"$BIN/dfsadmin" masters transfer-leader "$other" >/dev/null || { kill -CONT "$pid"; fail "transfer-leader $other"; }
wait "$bg"
kill -CONT "$pid"
grep -q "leadership lost" "$DIR/master-$leader/master.log" ||
    fail "master $leader did not give up its verify when it lost leadership"
field "d['verify']['chunkservers'] >= 3" <"$DIR/verify.out" | grep -q True ||
    fail "verify after the leader change: $(cat "$DIR/verify.out" "$DIR/verify.err")"
wait_fsck_clean 90 || fail "not clean at the end"
echo "test_verify: 1 passed, 0 failed"
