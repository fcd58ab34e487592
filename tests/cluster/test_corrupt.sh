#!/usr/bin/env bash
# A byte flipped in a chunk file on disk: reads still return the right
# data, the chunkserver's scrubber finds the bad replica and tells the
# master, which deletes it and makes a new copy elsewhere.
set -u
. "$(dirname "$0")/lib.sh"
cluster_up -m 3 -c 4
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

head -c 3000000 /dev/urandom > "$DIR/f"
"$BIN/dfsput" "$DIR/f" /f || fail "put"
chunk=$(find "$DIR"/chunkserver-*/data -name '*.chunk' | head -n 1)
[ -n "$chunk" ] || fail "no chunk file on disk"
step "flipping a byte of $(basename "$chunk") in $(echo "$chunk" | sed 's|.*/\(chunkserver-[0-9]*\)/.*|\1|')"
# Data starts after the header block; flip one byte well inside block 0.
python3 - "$chunk" <<'PY'
import sys
path = sys.argv[1]
with open(path, "r+b") as f:
    f.seek(12288 + 1000)
    b = f.read(1)
    f.seek(12288 + 1000)
    f.write(bytes([b[0] ^ 0xFF]))
PY

step "every read still returns the right data"
for i in 1 2 3 4 5; do
    "$BIN/dfsget" -f /f "$DIR/f.out" || fail "dfsget $i"
    cmp -s "$DIR/f" "$DIR/f.out" || fail "dfsget $i returned other bytes"
done

step "the corrupt replica is found, deleted and replaced"
# Every replica on disk holds the original byte again (the bad one was
# deleted; its replacement may land on any server, that one included).
disk_good() {
    python3 - "$DIR/f" $(find "$DIR"/chunkserver-*/data -name '*.chunk') <<'PY'
import sys
want = open(sys.argv[1], "rb").read()[1000]
files = sys.argv[2:]
ok = len(files) == 3
for path in files:
    with open(path, "rb") as f:
        f.seek(12288 + 1000)
        ok = ok and f.read(1)[0] == want
print("yes" if ok else "no:%d" % len(files))
PY
}
deadline=$((SECONDS + 60)); ok=""
while [ $SECONDS -lt $deadline ]; do
    s=$(curl -sf "${DFS_HTTP}api/status" | field "d['chunks']['healthy'], d['chunks']['corrupt'], d['chunks']['under_replicated'], any(e['kind'] == 'corruption' for e in d['events'])")
    g=$(disk_good)
    [ "$s" = "1 0 0 True" ] && [ "$g" = yes ] && { ok=1; break; }
    sleep 1
done
[ -n "$ok" ] || fail "not repaired within 60 s: healthy, corrupt, under, event = $s; three good replicas on disk: $g"
"$BIN/dfsget" -f /f "$DIR/f.out" && cmp -s "$DIR/f" "$DIR/f.out" || fail "data after the repair"
"$BIN/dfsadmin" fsck / || fail "fsck is not clean after the repair"
echo "test_corrupt: 1 passed, 0 failed"
