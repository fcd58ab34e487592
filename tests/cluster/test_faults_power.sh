#!/usr/bin/env bash
# Fault scenario 6 (issue 9): the whole cluster stopped at once with SIGKILL
# and restarted, while a workload (faultload) runs across the cut; then every
# acknowledged byte is verified.  Two variants on one cluster:
#
#   6a power cut: every master and chunkserver runs in the power-cut mode
#      of fsio (DFS_FSIO_POWERCUT=1, docs/DURABILITY.md §6), where the disk
#      holds only what was made durable, so the kill loses every write and
#      change of name not yet fsynced, as a real power cut may;
#   6b plain: the same servers in normal mode, SIGKILL only (the page cache
#      survives); the data of 6a is verified again afterwards.
#
#   FAULT_SEED=N      reproduce: both variants use seed N
#   FAULT_WORK_S=S    seconds of workload before each cut (default 6)
set -u
. "$(dirname "$0")/lib.sh"
WORK_S=${FAULT_WORK_S:-6}
NCS=3
LOAD_PID=""
[ -x "$FL" ] || { echo "FAIL test_faults_power: $FL is not built"; exit 1; }

stop_everything() {
    if [ -n "$LOAD_PID" ]; then
        kill -TERM "$LOAD_PID" 2>/dev/null
        sleep 1
        kill -KILL "$LOAD_PID" 2>/dev/null
        wait "$LOAD_PID" 2>/dev/null
    fi
    cleanup
}
trap stop_everything EXIT

new_seed() {
    if [ -n "${FAULT_SEED:-}" ]; then echo "$FAULT_SEED"; else echo $(((RANDOM << 15) | RANDOM)); fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# verify_lossless NAME SEED: verify (lib.sh), and nothing may be lost.
verify_lossless() {
    verify "$1" "$2"
    [ "$LOSTB" = 0 ] && [ "$VLOST" = 0 ] || fail "/$1 lost data (seed $2)"
}

# ---- the cut -------------------------------------------------------------------
# Every master and chunkserver killed in one kill(1) call.
cut_all() {
    local pids
    pids=$(server_pids all)
    [ "$(echo "$pids" | wc -w)" = $((3 + NCS)) ] || fail "expected $((3 + NCS)) servers, have pids: $pids"
    # shellcheck disable=SC2086
    kill_servers $pids
}

# Restarts every server; sets RESTART_MS (start until serving).
restart_all() {
    local t0
    t0=$(now_ms)
    "$CLUSTER" start all -d "$DIR" >"$DIR/start.out" 2>&1 || { cat "$DIR/start.out"; fail "restart failed"; }
    wait_serving "$NCS" 60
    RESTART_MS=$(($(now_ms) - t0))
}

# fsck clean (every chunk at its goal again); sets FSCK_S.
fsck_clean() {
    local t0=$SECONDS
    wait_fsck_clean 60 || fail "fsck not clean 60 s after the restart"
    FSCK_S=$((SECONDS - t0))
}

# How many times each server's log announced the power-cut mode.
warned() {
    local n=0 f
    for f in "$DIR"/master-*/master.log "$DIR"/chunkserver-*/chunkserver.log; do
        grep -q "POWER-CUT TEST MODE" "$f" && n=$((n + $(grep -c "POWER-CUT TEST MODE" "$f")))
    done
    echo "$n"
}

# scenario NAME LABEL: workload across one cut of the whole cluster.
scenario() {
    local name=$1 label=$2 seed
    seed=$(new_seed)
    step "$label: workload /$name seed $seed for $WORK_S s, then SIGKILL every server"
    load_start "$name" "$seed"
    sleep "$WORK_S"
    running "$LOAD_PID" || { load_stop; fail "workload /$name ended early"; }
    cut_all
    restart_all
    sleep 3     # the workload retries its cut operation and goes on
    load_stop
    verify_lossless "$name" "$seed"
    fsck_clean
    echo "  test_faults_power: scenario $label seed $seed: bytes verified $VBYTES in $VFILES files," \
         "bytes lost $LOSTB, uncertain $VUNC; restart $RESTART_MS ms (leader and $NCS chunkservers up)," \
         "fsck clean after ${FSCK_S} s; workload: $LOAD_FIGS"
}

# ---- 6a: power cut -----------------------------------------------------------
export DFS_FSIO_POWERCUT=1
cluster_up -c "$NCS"
[ "$(warned)" = $((3 + NCS)) ] || fail "not every server runs in power-cut mode"
scenario power "6a (power cut)"
[ "$(warned)" = $((2 * (3 + NCS))) ] || fail "not every server restarted in power-cut mode"

# ---- 6b: plain SIGKILL, the servers in normal mode ----------------------------
unset DFS_FSIO_POWERCUT
cut_all             # one more power cut, to restart in normal mode
restart_all
[ "$(warned)" = $((2 * (3 + NCS))) ] || fail "a server still runs in power-cut mode"
scenario plain "6b (SIGKILL)"
verify_lossless power "${FAULT_SEED:-see 6a}"
step "6a's data verified again after two more whole-cluster kills: $VBYTES bytes in $VFILES files, lost $LOSTB"
echo "PASS test_faults_power"
