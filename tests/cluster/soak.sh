#!/usr/bin/env bash
# soak.sh SECONDS: the fault suite in a loop.  Runs every
# tests/cluster/test_faults*.sh again and again, each run with a new seed
# (FAULT_SEED) and the longer soak settings, and stops by itself once
# SECONDS have passed (a run is not started when the last run of the same
# script would not fit in the time left).  Ends with the pass/fail count,
# the figures summed over every scenario line, and the failing seeds with
# the command that reproduces each.  The logs of failed runs, with their
# cluster folders, stay under run/soak/.
set -u
cd "$(dirname "$0")" || exit 2
TOP=$(cd ../.. && pwd)
S=${1:-}
case "$S" in ''|*[!0-9]*) echo "usage: soak.sh SECONDS" >&2; exit 2;; esac

export FAULT_LEADER_KILLS=${FAULT_LEADER_KILLS:-20}
export FAULT_WORK_S=${FAULT_WORK_S:-15}
LOGS=$TOP/run/soak/$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOGS"
start=$SECONDS
end=$((SECONDS + S))
runs=0; passed=0; failed=0; failures=""
scenarios=0; failovers=0; verified=0; lost=0
declare -A last_took

# Sums the figures of one run's scenario lines into the totals.
add_figures() {
    local line n
    while IFS= read -r line; do
        scenarios=$((scenarios + 1))
        n=$(echo "$line" | sed -n 's/.*failovers \([0-9]*\).*/\1/p'); failovers=$((failovers + ${n:-0}))
        n=$(echo "$line" | sed -n 's/.*bytes verified \([0-9]*\).*/\1/p'); verified=$((verified + ${n:-0}))
        n=$(echo "$line" | sed -n 's/.*bytes lost \([0-9]*\).*/\1/p'); lost=$((lost + ${n:-0}))
    done < <(grep -E "scenario .*bytes verified [0-9]+" "$1")
}

echo "soak: the fault suite for $S s (FAULT_LEADER_KILLS=$FAULT_LEADER_KILLS FAULT_WORK_S=$FAULT_WORK_S), logs in $LOGS"
while [ $SECONDS -lt $end ]; do
    started_one=0
    for t in test_faults*.sh; do
        left=$((end - SECONDS))
        need=${last_took[$t]:-60}
        [ "$left" -ge "$need" ] || continue
        seed=$(((RANDOM << 15) | RANDOM))
        log="$LOGS/${t%.sh}-$seed.log"
        t0=$SECONDS
        KEEP=1 FAULT_SEED=$seed timeout $((left + 600)) bash "$t" >"$log" 2>&1
        rc=$?
        last_took[$t]=$((SECONDS - t0))
        runs=$((runs + 1)); started_one=1
        add_figures "$log"
        kept=$(sed -n 's/^kept //p' "$log" | tail -n 1)
        if [ $rc = 0 ]; then
            passed=$((passed + 1))
            [ -n "$kept" ] && rm -rf "$kept"
            rm -f "$log"
            echo "soak: $t seed $seed passed in ${last_took[$t]} s"
        else
            failed=$((failed + 1))
            failures="$failures $t:$seed"
            echo "soak: $t seed $seed FAILED (rc $rc) in ${last_took[$t]} s: $(grep -m1 '^FAIL' "$log")"
            echo "      log $log${kept:+, cluster folder $kept}"
        fi
    done
    [ $started_one = 1 ] || break
done

echo "soak: $runs runs in $((SECONDS - start)) s: $passed passed, $failed failed;" \
     "$scenarios scenarios, $failovers leader failovers, $verified bytes verified, $lost bytes lost"
for f in $failures; do
    echo "soak: failing seed: FAULT_SEED=${f#*:} FAULT_LEADER_KILLS=$FAULT_LEADER_KILLS" \
         "FAULT_WORK_S=$FAULT_WORK_S bash tests/cluster/${f%%:*}"
done
[ -z "$(ls -A "$LOGS")" ] && rmdir "$LOGS"
[ "$failed" -eq 0 ]
