#!/usr/bin/env bash
# The fault suite, short version (issue 9, scenarios 1, 2, 3, 4 and 8): a
# workload (faultload) writes, overwrites, appends, truncates, renames and
# deletes files while the cluster is broken on purpose, records every
# acknowledged result, and the verifier then checks every acknowledged byte
# and the namespace.  Each scenario prints its seed and its figures.
#
#   FAULT_SEED=N          reproduce: every scenario uses seed N
#   FAULT_LEADER_KILLS=K  leader kills in scenario 1 (default 5; soak 20)
#   FAULT_WORK_S=S        seconds of workload per phase (default 6)
#   FAULT_ONLY="1 4"      run only these scenarios
set -u
. "$(dirname "$0")/lib.sh"
KILLS=${FAULT_LEADER_KILLS:-5}
WORK_S=${FAULT_WORK_S:-6}
ONLY=${FAULT_ONLY:-"4 1 2 3 8"}
LOAD_PID=""
[ -x "$FL" ] || { echo "FAIL test_faults: $FL is not built"; exit 1; }

# Stops a workload left running, then the cluster (lib.sh's cleanup).
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

# ---- cluster inspection (python, on the cluster folder's cluster.json) ----
cat > "$DIR/faults.py" <<'PY'
"""Helpers of test_faults.sh: leader kills and pauses with the failover
time, stale replicas on disk, bytes flipped in chunk files."""
import glob, json, os, random, signal, subprocess, sys, time, urllib.request

D = os.environ["DIR"]
BIN = os.environ["BIN"]

def state():
    with open(os.path.join(D, "cluster.json")) as f:
        return json.load(f)

def alive(pid):
    try:
        os.kill(pid, 0)
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] not in ("Z", "T")
    except (OSError, TypeError):
        return False

def status_of(m, timeout=0.5):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/api/status" % m["http"],
                                    timeout=timeout) as r:
            return json.load(r)
    except Exception:
        return None

def leaders(skip=()):
    """Ids of running masters (not in skip) that say they lead."""
    out = []
    for m in state()["masters"]:
        if m["id"] in skip or not alive(m.get("pid")):
            continue
        s = status_of(m)
        if s and s.get("role") == "leader":
            out.append((m["id"], s.get("term", 0)))
    return out

def current_leader(timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ls = leaders()
        if len(ls) >= 1:
            return max(ls, key=lambda x: x[1])
        time.sleep(0.05)
    sys.exit("no leader within %d s" % timeout)

def wait_new_leader(old, term, t0, timeout=30):
    """ms from t0 until a master other than old leads in a later term."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for lid, t in leaders(skip=(old,)):
            if t > term:
                return lid, (time.monotonic() - t0) * 1000
        time.sleep(0.02)
    sys.exit("no new leader within %d s of losing master %d" % (timeout, old))

def kill_leader():
    """kill -9 of the leader; prints its id and the failover time in ms."""
    lid, term = current_leader()
    m = [m for m in state()["masters"] if m["id"] == lid][0]
    os.kill(m["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    while alive(m["pid"]):
        time.sleep(0.01)
    new, ms = wait_new_leader(lid, term, t0)
    print(lid, new, int(ms))

def pause_leader(seconds):
    """SIGSTOP of the leader past the election timeout, then SIGCONT; it must
    come back as a follower of the new leader.  Prints the paused id, the
    failover ms and the ms from SIGCONT until it follows."""
    lid, term = current_leader()
    m = [m for m in state()["masters"] if m["id"] == lid][0]
    os.kill(m["pid"], signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        new, ms = wait_new_leader(lid, term, t0)
        while time.monotonic() - t0 < seconds:
            time.sleep(0.05)
    finally:
        os.kill(m["pid"], signal.SIGCONT)
    t1 = time.monotonic()
    deadline = time.time() + 30
    while time.time() < deadline:
        s = status_of(m, timeout=2)
        if s and s.get("role") == "follower" and s.get("leader") and s.get("leader") != lid:
            ls = leaders()
            if len(ls) == 1:
                print(lid, new, int(ms), int((time.monotonic() - t1) * 1000))
                return
        time.sleep(0.05)
    sys.exit("master %d did not rejoin as a follower within 30 s (its status: %s; leaders %s)"
             % (lid, s and s.get("role"), leaders()))

def admin(*args):
    r = subprocess.run([os.path.join(BIN, "dfsadmin")] + list(args),
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("dfsadmin %s: %s" % (" ".join(args), r.stderr.strip()))
    return json.loads(r.stdout)

def files_under(path):
    out = []
    for e in admin("ls", "--json", path):
        p = path.rstrip("/") + "/" + e["name"]
        if e["type"] == "directory":
            out += files_under(p)
        elif e["type"] == "file":
            out.append(p)
    return out

def chunks_of(paths):
    """{chunk id (hex): {"replicas": [...], "length": n}} of those files."""
    out = {}
    for p in paths:
        for c in admin("stat", "--json", p)["chunks"]:
            out[c["id"]] = c
    return out

def disk_replicas():
    """[(chunk id, chunkserver number, path)] of every chunk file on disk."""
    out = []
    for path in glob.glob(os.path.join(D, "chunkserver-*", "data", "**", "*.chunk"),
                          recursive=True):
        cs = int(path.split("chunkserver-")[1].split("/")[0])
        out.append((os.path.basename(path)[:16], cs, path))
    return out

def stale():
    """Chunk files on running chunkservers that the master does not list as
    a current replica of a live file (stale versions, deleted files)."""
    running = {c["id"] for c in state()["chunkservers"] if alive(c.get("pid"))}
    want = {(cid, cs) for cid, c in chunks_of(files_under("/")).items()
            for cs in c["replicas"]}
    bad = [p for cid, cs, p in disk_replicas() if cs in running and (cid, cs) not in want]
    print(len(bad))
    for p in bad[:10]:
        print("  stale replica still on disk: " + p, file=sys.stderr)

def pick_chunk(seed, prefix):
    """A chunk of a file under prefix (seeded): prints its id and replicas."""
    rnd = random.Random(seed)
    cs = [c for c in chunks_of(sorted(files_under(prefix))).values() if len(c["replicas"]) >= 3]
    if not cs:
        sys.exit("no chunk with three replicas under " + prefix)
    c = rnd.choice(sorted(cs, key=lambda c: c["id"]))
    print(c["id"], " ".join(str(r) for r in c["replicas"]))

def corrupt(seed, prefix, nchunks):
    """Flips bytes in one replica of each of nchunks chunks of files under
    prefix (never two replicas of one chunk: that would be a real loss) and
    remembers what it did in corrupted.json."""
    rnd = random.Random(seed)
    chunks = chunks_of(sorted(files_under(prefix)))
    on_disk = {}
    for cid, cs, path in disk_replicas():
        on_disk[(cid, cs)] = path
    cands = sorted(cid for cid, c in chunks.items() if c["length"] > 0 and len(c["replicas"]) >= 3)
    done = []
    for cid in rnd.sample(cands, min(nchunks, len(cands))):
        cs = rnd.choice(sorted(chunks[cid]["replicas"]))
        path = on_disk.get((cid, cs))
        if not path:
            continue
        size = os.path.getsize(path)
        if size <= 12288:
            continue
        flips = []
        with open(path, "r+b") as f:
            for _ in range(rnd.randint(1, 4)):
                off = rnd.randrange(12288, size)
                f.seek(off)
                b = f.read(1)[0]
                f.seek(off)
                f.write(bytes([b ^ (1 << rnd.randrange(8))]))
                flips.append((off, b))
        done.append({"chunk": cid, "cs": cs, "path": path, "flips": flips})
    with open(os.path.join(D, "corrupted.json"), "w") as f:
        json.dump(done, f)
    print(len(done))
    for d in done:
        print("  flipped %d byte(s) of chunk %s on chunkserver %d" % (len(d["flips"]), d["chunk"], d["cs"]),
              file=sys.stderr)

def repaired():
    """How many corrupted replicas the master reported (events) and how many
    are still bad on disk; prints "found N of M, still bad K"."""
    with open(os.path.join(D, "corrupted.json")) as f:
        done = json.load(f)
    seen_path = os.path.join(D, "corruption-events.json")
    seen = set(json.load(open(seen_path))) if os.path.exists(seen_path) else set()
    for m in state()["masters"]:
        if alive(m.get("pid")):
            s = status_of(m, timeout=2) or {}
            for e in s.get("events", []):
                if e.get("kind") == "corruption":
                    seen.add(e["text"])
    json.dump(sorted(seen), open(seen_path, "w"))
    found = bad = 0
    for d in done:
        if any(("chunk %s on chunkserver %d" % (d["chunk"], d["cs"])) in t for t in seen):
            found += 1
        if os.path.exists(d["path"]):
            with open(d["path"], "rb") as f:
                for off, b in d["flips"]:
                    f.seek(off)
                    got = f.read(1)
                    if got and got[0] != b:
                        bad += 1
                        break
    print("found %d of %d, still bad %d" % (found, len(done), bad))

cmd = sys.argv[1]
if cmd == "kill-leader":
    kill_leader()
elif cmd == "pause-leader":
    pause_leader(float(sys.argv[2]))
elif cmd == "stale":
    stale()
elif cmd == "pick-chunk":
    pick_chunk(int(sys.argv[2]), sys.argv[3])
elif cmd == "corrupt":
    corrupt(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
elif cmd == "repaired":
    repaired()
else:
    sys.exit("unknown command " + cmd)
PY
faults() { env DIR="$DIR" BIN="$BIN" python3 "$DIR/faults.py" "$@"; }

new_seed() {
    if [ -n "${FAULT_SEED:-}" ]; then echo "$FAULT_SEED"; else echo $(((RANDOM << 15) | RANDOM)); fi
}

# ---- the workload -----------------------------------------------------------

# median_max "MS MS ...": "median M ms, max X ms" ("-" without values).
median_max() {
    [ -n "$1" ] || { echo "median - ms, max - ms"; return; }
    echo "$1" | tr ' ' '\n' | sort -n | awk '{v[NR]=$1} END {
        m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
        printf "median %d ms, max %d ms", m, v[NR] }'
}

# figures N NAME FAILOVER_MS_LIST: the scenario's result line.
figures() {
    local n=0
    [ -n "$3" ] && n=$(echo "$3" | wc -w)
    echo "  test_faults: scenario $1 ($2) seed $SEED: failovers $n, failover $(median_max "$3");" \
         "bytes verified $VBYTES in $VFILES files, bytes lost $LOSTB, uncertain $VUNC; workload: $LOAD_FIGS"
    if [ "$LOSTB" != 0 ] || [ "$VLOST" != 0 ]; then fail "scenario $1 lost data (seed $SEED)"; fi
}

stale_clean() {
    local deadline=$((SECONDS + ${1:-60})) n
    while [ $SECONDS -lt $deadline ]; do
        n=$(faults stale 2>"$DIR/stale.out") && [ "$n" = 0 ] && return 0
        sleep 2
    done
    cat "$DIR/stale.out"
    return 1
}

wait_master_http() {   # the restarted master answers its status page
    local deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        "$BIN/dfsadmin" -M "$1" status --json --no-follow >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# start KIND N: dfs-cluster start, tried again for a few seconds (bin/ may be
# rewritten at that moment by a build running beside the test).
start() {
    local i
    for i in 1 2 3 4 5; do
        "$CLUSTER" start "$1" "$2" -d "$DIR" >"$DIR/start.out" 2>&1 && return 0
        sleep 1
    done
    cat "$DIR/start.out"
    return 1
}

master_addr() { echo "$DFS_MASTERS" | tr ',' '\n' | sed -n "${1}p"; }

# ---- scenarios ------------------------------------------------------------------

# 1: kill -9 of the leader, KILLS times, during the workload (through the
# mount: the same generator exercises dfs-mount's failover).
scenario_1() {
    SEED=$(new_seed)
    step "scenario 1: kill -9 of the leader master $KILLS times during a workload through the mount (seed $SEED)"
    load_start s1 "$SEED" --dir "$DIR/mnt"
    local times="" i out old new ms
    sleep 2
    for i in $(seq "$KILLS"); do
        out=$(faults kill-leader) || fail "leader kill $i: $out"
        read -r old new ms <<<"$out"
        times="$times $ms"
        step "  kill $i: master $old killed, master $new leads after $ms ms"
        start master "$old" || fail "restart master $old"
        wait_master_http "$(master_addr "$old")" || fail "master $old did not come back"
        sleep 1.5
    done
    sleep 1
    load_stop
    wait_converged 60 >/dev/null || fail "masters did not converge after the kills"
    verify s1 "$SEED"
    figures 1 "leader kill -9" "${times# }"
}

# 2: kill -9 of a chunkserver during writes, restarted later.
scenario_2() {
    SEED=$(new_seed)
    local cs=$((SEED % 4 + 1))
    step "scenario 2: kill -9 of chunkserver $cs during writes, restarted later (seed $SEED)"
    load_start s2 "$SEED"
    sleep 2
    "$CLUSTER" kill chunkserver "$cs" -d "$DIR" >/dev/null || fail "kill chunkserver $cs"
    sleep "$WORK_S"
    start chunkserver "$cs" || fail "restart chunkserver $cs"
    sleep 3
    load_stop
    local n
    n=$(faults stale 2>/dev/null)
    step "  chunkserver $cs back: ${n:-?} stale replicas on disk (to be removed, never served)"
    verify s2 "$SEED"
    wait_fsck_clean 120 || fail "fsck not clean after chunkserver $cs came back (seed $SEED)"
    stale_clean 90 || fail "stale replicas left on disk after chunkserver $cs came back (seed $SEED)"
    verify s2 "$SEED"
    figures 2 "chunkserver kill -9" ""
}

# 3: two of a chunk's three chunkservers killed; reads from the third.
scenario_3() {
    SEED=$(new_seed)
    step "scenario 3: two of a chunk's three chunkservers killed (seed $SEED)"
    load_start s3 "$SEED"
    sleep "$WORK_S"
    load_stop
    wait_fsck_clean 60 || fail "fsck not clean before scenario 3"
    local out chunk a b c
    out=$(faults pick-chunk "$SEED" /s3) || fail "pick a chunk: $out"
    read -r chunk a b c <<<"$out"
    step "  chunk $chunk on chunkservers $a $b $c: killing $a and $b"
    "$CLUSTER" kill chunkserver "$a" -d "$DIR" >/dev/null || fail "kill chunkserver $a"
    "$CLUSTER" kill chunkserver "$b" -d "$DIR" >/dev/null || fail "kill chunkserver $b"
    verify s3 "$SEED"
    step "  every file read back with two chunkservers down ($VBYTES bytes); writing on"
    local first=$LOAD_FIGS
    load_start s3b "$SEED"
    sleep "$WORK_S"
    load_stop
    LOAD_FIGS="$first; with two down: $LOAD_FIGS"
    start chunkserver "$a" || fail "restart chunkserver $a"
    start chunkserver "$b" || fail "restart chunkserver $b"
    wait_fsck_clean 120 || fail "fsck not clean after chunkservers $a and $b came back (seed $SEED)"
    stale_clean 90 || fail "stale replicas left after chunkservers $a and $b came back (seed $SEED)"
    verify s3b "$SEED"
    local b3=$VBYTES f3=$VFILES
    verify s3 "$SEED"
    VBYTES=$((VBYTES + b3)); VFILES=$((VFILES + f3))
    figures 3 "two of three replicas' servers killed" ""
}

# 4: bytes flipped in chunk files: reads stay right, the replicas get replaced.
scenario_4() {
    SEED=$(new_seed)
    step "scenario 4: random bytes flipped in random chunk files (seed $SEED)"
    load_start s4 "$SEED"
    sleep "$WORK_S"
    load_stop
    wait_fsck_clean 60 || fail "fsck not clean before scenario 4"
    local n out
    n=$(faults corrupt "$SEED" /s4 3 2>"$DIR/corrupt.out") || fail "corrupt: $n"
    sed 's/^/    /' "$DIR/corrupt.out"
    [ "$n" -gt 0 ] || fail "no chunk file to corrupt"
    verify s4 "$SEED"
    step "  every read returned the right data; waiting for the scrubber and the master"
    local deadline=$((SECONDS + 120))
    while [ $SECONDS -lt $deadline ]; do
        out=$(faults repaired) || fail "repaired: $out"
        case "$out" in "found $n of $n, still bad 0")
            "$BIN/dfsadmin" fsck / >/dev/null 2>&1 && break;;
        esac
        sleep 2
    done
    [ $SECONDS -lt $deadline ] || fail "corrupt replicas not all found and replaced within 120 s: $out (seed $SEED)"
    step "  $out corrupted replicas, all replaced; fsck clean"
    verify s4 "$SEED"
    figures 4 "bytes flipped in chunk files" ""
}

# 8: the leader paused with SIGSTOP past the election timeout, then resumed.
scenario_8() {
    SEED=$(new_seed)
    step "scenario 8: the leader paused with SIGSTOP for 3 s, then SIGCONT (seed $SEED)"
    load_start s8 "$SEED"
    sleep 2
    local out old new ms back
    out=$(faults pause-leader 3) || fail "pause: $out"
    read -r old new ms back <<<"$out"
    step "  master $old paused; master $new leads after $ms ms; $old follows again $back ms after SIGCONT"
    sleep 2
    load_stop
    wait_converged 60 >/dev/null || fail "masters did not converge after the pause (seed $SEED)"
    verify s8 "$SEED"
    figures 8 "leader SIGSTOP/SIGCONT" "$ms"
}

cluster_up -m 3 -c 4 --mount "$DIR/mnt"
for s in $ONLY; do
    "scenario_$s"
done
wait_fsck_clean 60 || fail "fsck not clean at the end"
echo "test_faults: 1 passed, 0 failed"
