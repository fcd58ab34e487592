#!/usr/bin/env bash
# Fault scenario 7: a network partition isolating the leader, made with
# network namespaces (netns.sh: each master, chunkserver and the client is a
# host on a private switch).  While a workload writes from the client host,
# the leader's switch port goes down:
#   - the majority elects a new leader (timed);
#   - the old leader steps down (check-quorum) and acknowledges no write sent
#     to it alone, neither just after the cut nor once it stepped down;
#   - a write from the client gets through the majority;
# then the port comes back up: every master reports the same applied index
# and digest, the refused writes are nowhere, and every byte the workload
# saw acknowledged reads back.  Skipped with a printed reason where
# namespaces cannot be made.
#   SEED=N     workload seed (default random; printed, replays the workload)
#   LOAD_S=N   workload seconds (default 30)
#   PART_S=N   seconds the leader stays cut off (default 10)
#   LOADER=dfsput  the plain dfsput workload even when faultload is built
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns.sh"
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
LOAD_S=${LOAD_S:-30}
PART_S=${PART_S:-10}
REC=$DIR/record

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The workload when faultload is not built: new files of random size and
# seeded content, each recorded (path, size, sha256) once dfsput returned 0.
# A put that failed is not acknowledged and not recorded.
simple_load() {
    local end=$((SECONDS + LOAD_S)) i=0 size f=$DIR/load.tmp
    "$CLBIN/dfsadmin" mkdir -p /load || return 1
    RANDOM=$SEED
    while [ $SECONDS -lt $end ]; do
        i=$((i + 1))
        size=$(((RANDOM * 32768 + RANDOM) % (3 << 20)))
        python3 -c "import random,sys; sys.stdout.buffer.write(random.Random($SEED * 1000003 + $i).randbytes($size))" > "$f"
        if "$CLBIN/dfsput" "$f" "/load/f$i" 2>>"$DIR/load.err"; then
            echo "/load/f$i $size $(sha256sum < "$f" | cut -d' ' -f1)" >> "$REC"
        fi
    done
}

# Reads back every recorded file; prints "files bytes_verified bytes_lost".
simple_verify() {
    local path size sum got files=0 ok=0 lost=0
    while read -r path size sum; do
        files=$((files + 1))
        got=$("$CLBIN/dfsget" "$path" - 2>>"$DIR/verify.err" | sha256sum | cut -d' ' -f1)
        if [ "$got" = "$sum" ]; then
            ok=$((ok + size))
        else
            lost=$((lost + size))
            echo "  LOST: $path ($size bytes, sha256 $sum, read $got)" >&2
        fi
    done < "$REC"
    echo "$files $ok $lost"
}

# A mkdir sent only to master HOST, from inside its host (the only place
# that reaches it while it is cut off); its exit code, 124 on a timeout.
write_to_only() {
    ns_exec "$1" timeout "$3" "$BIN/dfsadmin" -M "$(ns_addr "$1"):$NS_MASTER_PORT" \
        -k "$DIR/$1/cluster.key" mkdir "$2" >"$DIR/write-${2#/}.out" 2>&1
}

absent() {
    local out
    out=$("$CLBIN/dfsadmin" stat "$1" 2>&1) && return 1
    echo "$out" | grep -qi "no such file" || fail "stat $1 after the heal: $out"
}

netns_cluster_up 3
step "seed $SEED (replay with SEED=$SEED), workload $LOAD_S s, leader cut off for $PART_S s"

: > "$REC"
if [ -x "$CLBIN/faultload" ] && [ "${LOADER:-}" != dfsput ]; then
    LOADER=faultload
    "$CLBIN/faultload" run --record "$REC" --seed "$SEED" --seconds "$LOAD_S" \
        --prefix /load >"$DIR/load.out" 2>&1 &
else
    LOADER=dfsput
    simple_load >"$DIR/load.out" 2>&1 &
fi
load=$!
step "workload: $LOADER from $(ns_addr cl)"
sleep 4

L=$(netns_wait_leader 30) || fail "no leader before the partition"
read -r _ T _ <<<"$(netns_master_view "$L")"
[ -n "$T" ] || fail "the leader $L does not answer"
OTHERS=$(for m in $NS_MASTERS_HOSTS; do [ "$m" = "$L" ] || echo "$m"; done)

step "cutting off the leader $L ($(ns_addr "$L")), term $T"
t_cut=$(now_ms)
netns_cut "$L"
# Sent at once, while the old leader may still believe it leads: it can
# append the entry but never commit it, so it must not acknowledge it.
write_to_only "$L" /refused-1 10 & w1=$!
# The client lists every master: its first write goes through the majority.
( "$CLBIN/dfsadmin" mkdir /during-partition >"$DIR/during.out" 2>&1 && now_ms >"$DIR/during.ms" ) & wmaj=$!

new_ms=""; down_ms=""; NEW=""; NEWTERM=""
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ] && { [ -z "$new_ms" ] || [ -z "$down_ms" ]; }; do
    if [ -z "$down_ms" ]; then
        read -r role _ _ <<<"$(netns_master_view "$L")"
        [ -n "$role" ] && [ "$role" != leader ] && down_ms=$(($(now_ms) - t_cut))
    fi
    if [ -z "$new_ms" ]; then
        for m in $OTHERS; do
            read -r role term _ <<<"$(netns_master_view "$m")"
            if [ "$role" = leader ] && [ "$term" -gt "$T" ]; then
                new_ms=$(($(now_ms) - t_cut)); NEW=$m; NEWTERM=$term
            fi
        done
    fi
done
[ -n "$new_ms" ] || fail "the majority elected no leader within 30 s of the cut"
[ -n "$down_ms" ] || fail "the old leader $L still says it leads 30 s after the cut (no check-quorum)"
step "new leader $NEW (term $NEWTERM) after $new_ms ms; $L stepped down after $down_ms ms"

# Once stepped down it knows no leader to name: a write sent to it alone
# gets NOT_LEADER and nowhere to go, and must stay unacknowledged too.
write_to_only "$L" /refused-2 5; rc2=$?
wait $w1; rc1=$?
[ $rc1 != 0 ] && [ $rc2 != 0 ] \
    || fail "the cut-off leader acknowledged a write (exit codes $rc1, $rc2): $(cat "$DIR"/write-refused-*.out)"
# How each was refused: 124 is no answer before the timeout (the request
# waits, unacknowledged), anything else an error the master sent back.
how() { [ "$1" = 124 ] && echo "no answer" || echo "exit $1: $(head -c 100 "$DIR/write-$2.out")"; }
refused="2 of 2 (just after the cut: $(how $rc1 refused-1); stepped down: $(how $rc2 refused-2))"

wait $wmaj || fail "no write through the majority during the partition: $(cat "$DIR/during.out")"
first_ms=$(($(cat "$DIR/during.ms") - t_cut))

left=$((PART_S * 1000 - ($(now_ms) - t_cut)))
[ $left -gt 0 ] && sleep "$((left / 1000)).$(printf %03d $((left % 1000)))"
# No split brain at the moment of healing: the cut-off master still follows.
read -r role oldterm _ <<<"$(netns_master_view "$L")"
[ "$role" != leader ] || fail "the cut-off master $L leads again before the heal"
netns_heal "$L"
part_ms=$(($(now_ms) - t_cut))
step "healed after $part_ms ms ($L at term $oldterm while cut off)"

wait $load || fail "the workload failed: $(tail -n 5 "$DIR/load.out")"
digest=$(BIN=$CLBIN wait_converged 60) || fail "masters did not converge to one history after the heal"

# One leader, named by all three; the old one follows.
views=$(for m in $NS_MASTERS_HOSTS; do echo "$m $(netns_master_view "$m")"; done)
leaders=$(echo "$views" | awk '$2 == "leader"' | wc -l)
named=$(echo "$views" | awk '{print $4}' | sort -u | wc -l)
[ "$leaders" = 1 ] && [ "$named" = 1 ] || fail "not one leader after the heal: $views"
echo "$views" | grep -q "^$L follower " || fail "the old leader does not follow after the heal: $views"
term_after=$(echo "$views" | awk '$2 == "leader" {print $3}')

absent /refused-1 || fail "/refused-1, never acknowledged by the cut-off leader, exists after the heal"
absent /refused-2 || fail "/refused-2, refused by the cut-off leader, exists after the heal"
"$CLBIN/dfsadmin" stat /during-partition >/dev/null || fail "/during-partition, acknowledged by the majority, is lost"

step "verifying the workload's acknowledged data"
if [ "$LOADER" = faultload ]; then
    "$CLBIN/faultload" verify --record "$REC" >"$DIR/verify.out" 2>&1 \
        || { cat "$DIR/verify.out"; fail "faultload verify (seed $SEED)"; }
    grep "^faultload: .* ops done" "$DIR/load.out" | sed 's/^/    /'
    sed 's/^/    /' "$DIR/verify.out"
    # "verified N files, B bytes, lost L, uncertain U"; bytes lost are
    # only named when some are ("faultload: X bytes lost, ...").
    read -r files verified <<<"$(sed -n 's/^verified \([0-9]*\) files, \([0-9]*\) bytes.*/\1 \2/p' "$DIR/verify.out")"
    lost=$(sed -n 's/^faultload: \([0-9]*\) bytes lost.*/\1/p' "$DIR/verify.out")
    [ -n "$verified" ] || fail "cannot read faultload verify's figures"
else
    read -r files verified lost <<<"$(simple_verify)"
fi
[ "${lost:-0}" = 0 ] || fail "$lost acknowledged bytes lost (seed $SEED)"
[ "$verified" != 0 ] || fail "the workload had nothing acknowledged to verify (seed $SEED)"
BIN=$CLBIN wait_fsck_clean 90 || fail "fsck not clean after the heal"

echo "  test_faults_net: figures (seed $SEED):"
echo "    partition                       $part_ms ms, leader $L cut off at term $T"
echo "    time to new leader              $new_ms ms ($NEW, term $NEWTERM; term $term_after after the heal)"
echo "    old leader stepped down after   $down_ms ms"
echo "    first write through majority    $first_ms ms after the cut"
echo "    writes refused by old leader    $refused"
echo "    one history after the heal      digest $digest on all 3 masters"
echo "    files verified                  $files"
echo "    bytes verified                  $verified"
echo "    bytes lost                      ${lost:-0}"
echo "test_faults_net: 1 passed, 0 failed"
