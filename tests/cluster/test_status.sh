#!/usr/bin/env bash
# The status page, /api/status and /metrics of a live cluster: the JSON
# agrees with dfsadmin, the metrics parse as Prometheus text, a follower's
# page points at the leader, a killed chunkserver shows down with its
# chunks under-replicated and healthy again after re-replication, and the
# page renders in headless Chromium with one row per chunkserver.
set -u
. "$(dirname "$0")/lib.sh"
cluster_up -m 3 -c 4
CHECK=$TOP/tests/cluster/check_metrics.py

status_json() { curl -sf "${DFS_HTTP}api/status"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

head -c 5000000 /dev/urandom > "$DIR/f"
"$BIN/dfsput" "$DIR/f" /f || fail "put"
sleep 6   # the page is republished every second, health recounted every 5 s

step "/api/status agrees with dfsadmin status --json"
api=$(status_json) || fail "GET /api/status"
adm=$("$BIN/dfsadmin" status --json) || fail "dfsadmin status --json"
for k in "d['role']" "d['leader']" "d['term']" "d['files']" "d['directories']" \
         "d['chunks']['total']" "len(d['masters'])" \
         "sorted((c['id'], c['state']) for c in d['chunkservers'])"; do
    a=$(echo "$api" | field "$k"); b=$(echo "$adm" | field "$k")
    [ "$a" = "$b" ] || fail "$k: /api/status says $a, dfsadmin says $b"
done
[ "$(echo "$api" | field "d['role']")" = leader ] || fail "DFS_HTTP is not the leader's page"
[ "$(echo "$api" | field "d['files']")" = 1 ] || fail "files is not 1"
[ "$(echo "$api" | field "len(d['chunkservers'])")" = 4 ] || fail "not 4 chunkservers"
[ "$(echo "$api" | field "d['chunks']['healthy']")" = 1 ] || fail "the chunk is not healthy: $api"

step "/metrics is valid Prometheus text"
python3 "$CHECK" "${DFS_HTTP}metrics" --promtool --require dfs_raft_term \
    --require dfs_raft_commit_index --require dfs_namespace_files --require dfs_chunks \
    --require dfs_chunkserver_up || fail "metrics"

step "unknown paths are 404, writes 405"
code=$(curl -s -o /dev/null -w '%{http_code}' "${DFS_HTTP}nope")
[ "$code" = 404 ] || fail "GET /nope answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${DFS_HTTP}api/status")
[ "$code" = 405 ] || fail "POST answered $code"

step "a follower's page says so and links to the leader"
leader_http=$(echo "$api" | field "d['leader_http']")
for h in $(echo "$api" | field "' '.join(m['http'] for m in d['masters'] if m['role'] != 'leader')"); do
    page=$(curl -sf "$h") || fail "GET $h"
    echo "$page" | grep -qi follower || fail "$h does not say it is a follower"
    echo "$page" | grep -q "$leader_http" || fail "$h does not link to $leader_http"
done

step "a killed chunkserver shows down, its chunk under-replicated, then healthy"
victim=$("$BIN/dfsadmin" status --json >/dev/null; curl -sf "${DFS_HTTP}api/status" | field "[c['id'] for c in d['chunkservers'] if c['chunks'] > 0][0]")
"$CLUSTER" kill chunkserver "$victim" -d "$DIR" >/dev/null || fail "kill"
deadline=$((SECONDS + 30)); seen=""
while [ $SECONDS -lt $deadline ]; do
    s=$(status_json | field "[c['state'] for c in d['chunkservers'] if c['id'] == $victim][0], d['chunks']['under_replicated']")
    case "$s" in "down 1") seen=1; break;; esac
    sleep 0.5
done
[ -n "$seen" ] || fail "chunkserver $victim not shown down with 1 chunk under-replicated: $s"
deadline=$((SECONDS + 60)); healed=""
while [ $SECONDS -lt $deadline ]; do
    s=$(status_json | field "d['chunks']['healthy'], d['chunks']['under_replicated']")
    [ "$s" = "1 0" ] && { healed=1; break; }
    sleep 1
done
[ -n "$healed" ] || fail "the chunk was not re-replicated: $s"
"$BIN/dfsget" /f "$DIR/f.out" && cmp -s "$DIR/f" "$DIR/f.out" || fail "data after re-replication"
status_json | field "[e['kind'] for e in d['events']]" | grep -q re-replication || fail "no re-replication event"

step "the page in headless Chromium"
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
    echo "  test_status: chromium not installed, browser check skipped"
else
    flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
           --disable-background-networking --disable-component-update --disable-sync"
    # shellcheck disable=SC2086
    timeout 60 "$CHROME" $flags --user-data-dir="$DIR/chrome" --dump-dom "$DFS_HTTP" \
        > "$DIR/page.html" 2>/dev/null || fail "chromium could not load the page"
    rows=$(grep -o 'class="cs"' "$DIR/page.html" | wc -l)
    [ "$rows" = 4 ] || fail "the chunkserver table has $rows rows, not 4"
    mkdir -p "$TOP/run"
    # shellcheck disable=SC2086
    timeout 60 "$CHROME" $flags --user-data-dir="$DIR/chrome" --window-size=1400,1100 \
        --screenshot="$TOP/run/status-page.png" "$DFS_HTTP" >/dev/null 2>&1 \
        || fail "no screenshot"
    [ -s "$TOP/run/status-page.png" ] || fail "empty screenshot"
    echo "  test_status: screenshot saved to run/status-page.png"
fi
echo "test_status: 1 passed, 0 failed"
