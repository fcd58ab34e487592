#!/usr/bin/env bash
# make bench: dfs beside a local directory on the same disk, in one run.
#
# Starts a local cluster (3 masters, 3 chunkservers) under run/bench and
# measures, each as the median of BENCH_RUNS runs:
#   - dfsput / dfsget of BENCH_MB MiB of random data, beside cp of the same
#     file on the same disk, and beside writing it three times (the disk
#     work three replicas cost); dfsget also to /dev/null (the work of
#     local_read, cat to /dev/null) and with DFS_LOCAL_READS=0;
#   - dfsput with a goal of one replica (a chain of one) beside three;
#   - namespace creates/s, stats/s (LOOKUP) and renames/s through libdfs
#     with 16 concurrent clients;
#   - leader failover: kill -9 of the leader to the first mutation through
#     the new leader;
#   - re-replication MiB/s after a chunkserver is lost (a fourth one takes
#     the copies);
#   - the mount-agnostic workloads of ../shared/bench/bench-mount.sh (seq,
#     tree, meta, fio 4 KiB random for FIO_RUNTIME s, default 5) on the dfs mount, on a local directory and on MooseFS
#     (its up.sh: three chunkservers, goal 3, same storage) — BENCH_MOUNT=0
#     skips them all, BENCH_MOOSEFS=0 only MooseFS;
#   - the module micro-benchmarks (CRC32C, the Raft log, the chunk store).
# Prints a table and writes it as JSON to run/bench/bench-<time>.json.
#
# Knobs: BENCH_MB (1024), BENCH_RUNS (3), BENCH_MOUNT_RUNS (BENCH_RUNS),
# BENCH_TMPFS=1 puts the cluster's data, MooseFS's and the local comparison
# on /dev/shm (software, not disk).
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
MB=${BENCH_MB:-1024}
RUNS=${BENCH_RUNS:-3}
OUT=$TOP/run/bench
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
if [ "${BENCH_TMPFS:-0}" = 1 ]; then BASE=/dev/shm/dfs-bench.$$; else BASE=$OUT/work.$$; fi
mkdir -p "$BASE"
CL=$BASE/cluster
MNT=$BASE/mnt
RESULTS=$OUT/results.$$
: > "$RESULTS"

cleanup() {
    bin/dfs-cluster down -d "$CL" >/dev/null 2>&1 || true
    rm -rf "$BASE" "$RESULTS"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
record() { echo "$1 $2 $3" >> "$RESULTS"; printf '  %-34s %12s %s\n' "$1" "$2" "$3"; }
rate() { python3 -c "print(round($1 / ($3 - $2), 1))"; }
# timed FILE CMD...: runs CMD, appends its rate over $MB MiB to FILE.
timed() {
    local out=$1 t0 t1; shift
    t0=$(now); "$@"; t1=$(now)
    rate "$MB" "$t0" "$t1" >> "$out"
}
drop_caches() { echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

echo "bench: cluster under $BASE (3 masters, 4 chunkservers), $MB MiB files, medians of $RUNS"
bin/dfs-cluster up -d "$CL" -m 3 -c 4 --mount "$MNT" >/dev/null
# shellcheck disable=SC1091
. "$CL/cluster.env"
export DFS_MASTERS DFS_KEY_FILE

SRC=$BASE/src
head -c $((MB << 20)) /dev/urandom > "$SRC"
sync

echo "bench: local disk"
copy_once() { cp "$SRC" "$BASE/copy"; sync "$BASE/copy"; }
copy_three() { for k in 1 2 3; do cp "$SRC" "$BASE/copy$k"; done; sync; }
read_to_devnull() { cat "$SRC" > /dev/null; }
for i in $(seq "$RUNS"); do
    timed "$BASE/cp" copy_once
    timed "$BASE/cp3" copy_three
    rm -f "$BASE"/copy*
    drop_caches
    timed "$BASE/read" read_to_devnull
done
record local_cp_write "$(median < "$BASE/cp")" MiB/s
record local_three_copies_write "$(median < "$BASE/cp3")" MiB/s
record local_read "$(median < "$BASE/read")" MiB/s

echo "bench: dfsput / dfsget"
get_to_devnull() { bin/dfsget /bench.dat - > /dev/null; }
for i in $(seq "$RUNS"); do
    timed "$BASE/put" bin/dfsput -f "$SRC" /bench.dat
    drop_caches
    timed "$BASE/get" bin/dfsget -f /bench.dat "$BASE/got"
    cmp -s "$SRC" "$BASE/got" || { echo "bench: dfsget returned other bytes" >&2; exit 1; }
    rm -f "$BASE/got"
    # The same read without the local file's writing, as local_read does
    # it, and the same get with the replicas read through TCP.
    drop_caches
    timed "$BASE/get_null" get_to_devnull
    drop_caches
    timed "$BASE/get_tcp" env DFS_LOCAL_READS=0 bin/dfsget -f /bench.dat "$BASE/got"
    rm -f "$BASE/got"
done
record dfsput "$(median < "$BASE/put")" MiB/s
record dfsget "$(median < "$BASE/get")" MiB/s
record dfsget_to_devnull "$(median < "$BASE/get_null")" MiB/s
record dfsget_no_local_reads "$(median < "$BASE/get_tcp")" MiB/s

echo "bench: a chain of one chunkserver beside the chain of three"
for i in $(seq "$RUNS"); do
    timed "$BASE/put1" bin/dfsput -f -R 1 "$SRC" /bench1.dat
done
record dfsput_one_replica "$(median < "$BASE/put1")" MiB/s
bin/dfsadmin rm /bench1.dat >/dev/null
rm -f "$SRC"

echo "bench: namespace"
for i in $(seq "$RUNS"); do
    for op in create stat rename; do
        build/tests/cluster/nsload "$op" "meta$i" 5000 16 |
            sed -n "s/.*: \([0-9]*\) ${op}s\/s/\1/p" >> "$BASE/${op}s"
    done
done
for op in create stat rename; do
    record "meta_${op}s_16_clients" "$(median < "$BASE/${op}s")" ops/s
done

echo "bench: leader failover"
for i in $(seq "$RUNS"); do
    t0=$(now)
    bin/dfs-cluster kill master leader -d "$CL" >/dev/null
    bin/dfsadmin mkdir "/failover$i" >/dev/null
    t1=$(now)
    python3 -c "print(round($t1 - $t0, 3))" >> "$BASE/failover"
    bin/dfs-cluster start all -d "$CL" >/dev/null
    sleep 3
done
record failover "$(median < "$BASE/failover")" s

echo "bench: re-replication after a chunkserver loss"
# The last failover's leader must see every chunkserver and be out of its
# safe mode (10 s) so that the figure is the copy rate alone.
until curl -sf "${DFS_HTTP}api/status" 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['role'] == 'leader' and sum(c['state'] == 'up' for c in d['chunkservers']) == 4 else 1)"; do
    # DFS_HTTP may name a master that no longer leads: follow the leader.
    DFS_HTTP=$(bin/dfsadmin status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['leader_http'])")
    sleep 0.5
done
sleep 11
victim=$(curl -sf "${DFS_HTTP}api/status" | python3 -c "import json,sys; d=json.load(sys.stdin); print(max(d['chunkservers'], key=lambda c: c['bytes_used'])['id'])")
bytes=$(curl -sf "${DFS_HTTP}api/status" | python3 -c "import json,sys; d=json.load(sys.stdin); print([c['bytes_used'] for c in d['chunkservers'] if c['id'] == $victim][0])")
t0=$(now)
bin/dfs-cluster kill chunkserver "$victim" -d "$CL" >/dev/null
until curl -sf "${DFS_HTTP}api/status" | python3 -c "import json,sys; d=json.load(sys.stdin); c=d['chunks']; sys.exit(0 if c['under_replicated'] == 0 and c['missing'] == 0 and c['rereplicating'] == 0 and any(x['state'] == 'down' for x in d['chunkservers']) else 1)"; do
    sleep 0.5
done
t1=$(now)
record rereplication "$(python3 -c "print(round($bytes / 1048576 / ($t1 - $t0), 1))")" MiB/s

# bench-mount.sh on DIR, BENCH_MOUNT_RUNS times, medians into OUT_FILE.
kit_runs() {
    local dir=$1 out=$2 runs=()
    for i in $(seq "${BENCH_MOUNT_RUNS:-$RUNS}"); do
        BENCH_ONLY="seq tree meta fio" FIO_RUNTIME=${FIO_RUNTIME:-5} \
            "$KIT" "$dir" 256 > "$out.$i" 2>/dev/null || true
        runs+=("$out.$i")
    done
    "$KITDIR/median.sh" "${runs[@]}" > "$out"
}

# MooseFS with three chunkservers and goal 3, on the same storage as dfs
# (../shared/bench/moosefs); skipped with the reason when it cannot start.
moosefs_runs() {
    local mfs=$KITDIR/moosefs
    if ! command -v mfsmaster >/dev/null; then
        apt-get install -y moosefs-master moosefs-chunkserver moosefs-client \
            moosefs-cli moosefs-cgi moosefs-cgiserv >/dev/null 2>&1 ||
            { echo "  MooseFS is not installed and could not be: skipped"; return 1; }
    fi
    export MFS_STATE=$BASE/moosefs.state
    local tmp=$BASE
    [ "${BENCH_TMPFS:-0}" = 1 ] && tmp=/dev/shm
    if ! TMPDIR=$tmp "$mfs/up.sh" > "$BASE/moosefs.up" 2>&1; then
        echo "  MooseFS did not start: skipped (see below)"; tail -n 5 "$BASE/moosefs.up"
        "$mfs/down.sh" >/dev/null 2>&1 || true
        return 1
    fi
    # shellcheck disable=SC1090
    local mnt; mnt=$(. "$MFS_STATE"; echo "$MNT")
    kit_runs "$mnt" "$BASE/moosefs.txt"
    "$mfs/down.sh" >/dev/null 2>&1 || true
}

MOUNT_FIGURES="seq_write seq_read tree_extract_files tree_read_files tree_rm_files meta_create meta_stat meta_rename meta_unlink fio_randread_4k fio_randwrite_4k"
if [ "${BENCH_MOUNT:-1}" = 1 ]; then
    echo "bench: mount workloads (../shared/bench/bench-mount.sh seq tree meta fio), medians of ${BENCH_MOUNT_RUNS:-$RUNS}"
    command -v fio >/dev/null || apt-get install -y fio >/dev/null 2>&1 ||
        echo "  fio is not installed and could not be: the 4 KiB random figures are skipped"
    KITDIR=$TOP/../shared/bench
    KIT=$KITDIR/bench-mount.sh
    if [ -x "$KIT" ]; then
        mkdir -p "$BASE/localdir"
        kit_runs "$MNT" "$BASE/mount.txt"
        kit_runs "$BASE/localdir" "$BASE/local.txt"
        mfs=0
        if [ "${BENCH_MOOSEFS:-1}" = 1 ] && moosefs_runs; then mfs=1; fi
        for f in $MOUNT_FIGURES; do
            u=$(awk -v k=$f '$1 == k {print $3}' "$BASE/local.txt")
            record "mount_$f" "$(awk -v k=$f '$1 == k {print $2}' "$BASE/mount.txt")" "${u:-?}"
            record "localdir_$f" "$(awk -v k=$f '$1 == k {print $2}' "$BASE/local.txt")" "${u:-?}"
            if [ $mfs = 1 ]; then
                record "moosefs_$f" "$(awk -v k=$f '$1 == k {print $2}' "$BASE/moosefs.txt")" "${u:-?}"
            fi
        done
    else
        echo "  ../shared/bench/bench-mount.sh not found, skipped"
    fi
fi

echo "bench: module micro-benchmarks"
make --no-print-directory bench-micro 2>&1 | sed 's/^/  /' | tail -n 40

python3 - "$RESULTS" "$OUT/bench-$STAMP.json" "$MB" "${BENCH_TMPFS:-0}" <<'EOF'
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
figures = {r[0]: {"value": (float(r[1]) if r[1].replace('.', '', 1).isdigit() else r[1]),
                  "unit": r[2]} for r in rows}
def ratio(a, b):
    try:
        return round(figures[a]["value"] / figures[b]["value"], 2)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
ratios = {
    "dfsput_vs_three_copies": ratio("dfsput", "local_three_copies_write"),
    "dfsget_vs_local_read": ratio("dfsget", "local_read"),
    "dfsget_to_devnull_vs_local_read": ratio("dfsget_to_devnull", "local_read"),
    "dfsget_no_local_reads_vs_local_read": ratio("dfsget_no_local_reads", "local_read"),
    "dfsput_three_vs_one_replica": ratio("dfsput", "dfsput_one_replica"),
}
for k in [r[0][len("mount_"):] for r in rows if r[0].startswith("mount_")]:
    ratios["mount_%s_vs_local" % k] = ratio("mount_" + k, "localdir_" + k)
    if "moosefs_" + k in figures:
        ratios["mount_%s_vs_moosefs" % k] = ratio("mount_" + k, "moosefs_" + k)
doc = {"size_mib": int(sys.argv[3]), "tmpfs": sys.argv[4] == "1",
       "figures": figures, "ratios": ratios}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
print("bench: ratios")
for k, v in ratios.items():
    print("  %-40s %s" % (k, v))
print("bench: written to " + sys.argv[2])
EOF
