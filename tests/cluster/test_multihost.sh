#!/usr/bin/env bash
# The cluster spread over "hosts" that are network namespaces (netns.sh):
# three masters, three chunkservers and a client, each with its own address
# in 10.213.0.0/24, its own folder and its own copy of the key.  Files go in
# and out from the client through addresses that are not 127.0.0.1, every
# server listens only on its host's address, and every address the cluster
# hands out (leader hints, chunkserver addresses, status pages) is a host
# address.  Skipped with a printed reason where namespaces cannot be made.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"

netns_cluster_up 3
W=$DIR/work
mkdir -p "$W"

step "every server listens on its host's address only"
for h in m1 m2 m3 c1 c2 c3; do
    socks=$(ns_exec "$h" ss -Htln | awk '{print $4}')
    [ -n "$socks" ] || fail "$h listens on nothing"
    for s in $socks; do
        case $s in
            "$(ns_addr "$h")":*) ;;
            *) fail "$h listens on $s, not on its address $(ns_addr "$h")" ;;
        esac
    done
done

step "the cluster hands out host addresses, never loopback"
st=$("$CLBIN/dfsadmin" status --json) || fail "dfsadmin status from the client host"
echo "$st" | python3 -c "
import json, sys
d = json.load(sys.stdin)
addrs = [d['leader_address'], d['leader_http']]
addrs += [m['address'] for m in d['masters']] + [m['http'] for m in d['masters']]
addrs += [c['address'] for c in d['chunkservers']]
bad = [a for a in addrs if '10.213.0.' not in a]
if bad or len(d['chunkservers']) != 3:
    sys.exit('addresses not on the hosts: %s (of %s)' % (bad, addrs))
" || fail "status names a non-host address"

step "put and get from the client host, files spanning chunks"
MiB=$((1 << 20))
sizes="0 1 65537 $((3 * MiB + 5)) $((64 * MiB + 1))"
bytes=0
for size in $sizes; do
    head -c "$size" /dev/urandom > "$W/in.$size"
    "$CLBIN/dfsput" "$W/in.$size" "/f.$size" || fail "dfsput of $size bytes"
    bytes=$((bytes + size))
done
# Read back through each master alone: a follower's hint must lead the
# client to the leader's host address.
for m in m1 m2 m3; do
    for size in $sizes; do
        "$CLBIN/dfsget" -M "$(ns_addr $m):$NS_MASTER_PORT" -f "/f.$size" "$W/out.$size" \
            || fail "dfsget of $size bytes through $m"
        cmp -s "$W/in.$size" "$W/out.$size" || fail "$size bytes differ after a round trip through $m"
    done
done

step "the status page answers on the leader's host address"
url=$(echo "$st" | python3 -c "import json,sys; print(json.load(sys.stdin)['leader_http'])")
ns_exec cl curl -sf "${url}api/status" >/dev/null || fail "GET ${url}api/status from the client host"

step "fsck is clean and the masters agree"
BIN=$CLBIN wait_fsck_clean 60 || fail "fsck not clean"
BIN=$CLBIN wait_converged 30 >/dev/null || fail "masters did not converge"
step "$(wc -w <<<"$sizes") files, $bytes bytes, round trips through each of 3 masters from 10.213.0.100"
echo "test_multihost: 1 passed, 0 failed"
