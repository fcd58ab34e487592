#!/usr/bin/env bash
# Three masters behave as one namespace that survives the loss of any one:
# create files, kill -9 the leader, a new leader serves them all; the killed
# master catches up; a full stop and start keeps the same state; root
# squash follows the masters' config.
set -u
. "$(dirname "$0")/lib.sh"
N=${DFS_TEST_FILES:-10000}

cluster_up -m 3
step "creating $N files through the leader"
"$TOOLS/nsload" create data "$N" 16 || fail "create"
digest1=$(wait_converged 30) || fail "masters did not converge after the creates"

step "kill -9 of the leader"
t0=$(date +%s%N)
"$CLUSTER" kill master leader -d "$DIR" >/dev/null || fail "kill"
"$BIN/dfsadmin" mkdir /after-failover || fail "no mutation through a new leader"
t1=$(date +%s%N)
step "first mutation through the new leader after $(( (t1 - t0) / 1000000 )) ms"
"$TOOLS/nsload" check data "$N" || fail "files lost across the failover"

step "restart the killed master; it catches up"
"$CLUSTER" start all -d "$DIR" >/dev/null || fail "restart"
digest2=$(wait_converged 30) || fail "the restarted master did not catch up"
[ "$digest1" != "$digest2" ] || fail "digest did not change after a mutation"

step "stop all three and start them again"
"$CLUSTER" down -d "$DIR" >/dev/null
"$CLUSTER" up -d "$DIR" >/dev/null 2>&1 || fail "restart of the whole cluster"
digest3=$(wait_converged 30) || fail "masters did not converge after the restart"
# The restart itself commits entries (sessions), so compare the namespace.
"$TOOLS/nsload" check data "$N" || fail "files lost across a full restart"
"$BIN/dfsadmin" stat /after-failover >/dev/null || fail "directory lost across a full restart"

step "root squash set in the masters' config is taken up by the next leader"
"$CLUSTER" down -d "$DIR" >/dev/null
"$CLUSTER" up -d "$DIR" --master-conf root_squash=true >/dev/null 2>&1 || fail "restart with root_squash"
out=$("$BIN/dfsadmin" mkdir /squashed 2>&1) && fail "root was not squashed: it made /squashed"
echo "$out" | grep -q "Permission denied" || fail "a squashed root's mkdir in /: $out"
"$CLUSTER" kill master leader -d "$DIR" >/dev/null || fail "kill"
out=$("$BIN/dfsadmin" mkdir /squashed 2>&1) && fail "the next leader dropped root squash"
"$CLUSTER" down -d "$DIR" >/dev/null
"$CLUSTER" up -d "$DIR" --master-conf root_squash=false >/dev/null 2>&1 || fail "restart without root_squash"
"$BIN/dfsadmin" mkdir /unsquashed || fail "root still squashed with root_squash=false"
echo "test_masters: 1 passed, 0 failed"
