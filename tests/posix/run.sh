#!/bin/sh
# POSIX suite of dfs-mount: starts its own cluster under a mktemp folder,
# mounts it (twice: the second mount, another client of the same cluster,
# is for the checks between two mounts), runs tests/posix/checks.py against
# the first mount, then fsx, programs.sh and failover.sh (below), then
# unmounts and stops the cluster on every exit path.
# Last line: `posix: N passed, M failed`.
# Skips (exit 0, with the reason) only when FUSE mounts are impossible here.
#   POSIX_ONLY=name,name   run only those checks     POSIX_SEED=N  replay a seed
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-$root/bin}

skip() {
    echo "posix: skipped: $*"
    exit 0
}
fail() {
    echo "posix: $*"
    echo "posix: 0 passed, 1 failed"
    exit 1
}

[ -c /dev/fuse ] || skip "/dev/fuse is missing"
[ "$(id -u)" = 0 ] || command -v fusermount3 >/dev/null ||
    skip "not root and no fusermount3: FUSE mounts are impossible"
for p in dfs-master dfs-chunkserver dfs-cluster dfs-mount; do
    [ -x "$bin/$p" ] || fail "$bin/$p is missing (run make first)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/dfs-posix.XXXXXX") || fail "mktemp failed"
# The permission checks run as nobody, who must reach the mount point.
chmod 0755 "$work"
cluster=$work/cluster
mnt=$work/mnt
mnt2=$work/mnt2

cleanup() {
    # A mount whose daemon died fails `mountpoint`; /proc/mounts still has it.
    for m in "$mnt" "$mnt2"; do
        if grep -q " $m fuse" /proc/mounts 2>/dev/null; then
            fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null ||
                umount -l "$m" 2>/dev/null
        fi
    done
    "$bin/dfs-cluster" down -d "$cluster" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$mnt" "$mnt2"
"$bin/dfs-cluster" up -d "$cluster" >"$work/up.log" 2>&1 || {
    cat "$work/up.log"
    fail "the cluster did not start"
}
# shellcheck disable=SC1091
. "$cluster/cluster.env"
export DFS_MASTERS DFS_KEY_FILE

if ! "$bin/dfs-mount" "$mnt" -o "log=$work/mount.log,loglevel=info,strict" \
        2>"$work/mount.err"; then
    if grep -qiE "not permitted|permission denied|fusermount" "$work/mount.err"; then
        skip "FUSE mounts are impossible here: $(tail -n 1 "$work/mount.err")"
    fi
    cat "$work/mount.err"
    fail "dfs-mount failed"
fi

if ! "$bin/dfs-mount" "$mnt2" -o "log=$work/mount2.log,loglevel=info,strict" \
        2>"$work/mount2.err"; then
    cat "$work/mount2.err"
    fail "the second dfs-mount failed"
fi

seed=${POSIX_SEED:+--seed $POSIX_SEED}
# shellcheck disable=SC2086
POSIX_MOUNT_LOG=$work/mount.log POSIX_MNT2=$mnt2 python3 "$root/tests/posix/checks.py" \
    "$mnt" "$bin" "$work" $seed | tee "$work/checks.out"

# Then, on the same mount: the random-operation exerciser (through one
# open per file, then through three), the real programs, and last the copy
# that survives a killed leader and chunkserver.  Their checks add to the
# counts of checks.py (its own summary line is the one before).
#   POSIX_FSX_OPS=N  operations of each fsx run   POSIX_FSX_SEED=N  replay one
passed=$(sed -n 's/^posix: \([0-9]*\) passed, [0-9]* failed$/\1/p' "$work/checks.out")
failed=$(sed -n 's/^posix: [0-9]* passed, \([0-9]*\) failed$/\1/p' "$work/checks.out")
[ -n "$passed" ] || { passed=0; failed=1; echo "FAIL checks.py: no summary line"; }
wanted() { [ -z "${POSIX_ONLY:-}" ] || echo ",$POSIX_ONLY," | grep -q ",$1,"; }
counted() {       # counted OUTFILE: adds the last `x: N passed, M failed` line
    n=$(sed -n 's/^[a-z]*: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$1" | tail -n 1)
    [ -n "$n" ] || n="0 1"
    passed=$((passed + ${n% *})) failed=$((failed + ${n#* }))
}
fsx=${BUILD:-$root/build}/tests/posix/fsx
fsx_seed=${POSIX_FSX_SEED:+-S $POSIX_FSX_SEED}
for mode in one_fd shared; do
    wanted fsx || break
    flag=; [ $mode = one_fd ] && flag=-1
    mkdir -p "$mnt/fsx_$mode"
    # shellcheck disable=SC2086
    if "$fsx" -q $flag -N "${POSIX_FSX_OPS:-4000}" $fsx_seed "$mnt/fsx_$mode/a" \
            "$mnt/fsx_$mode/b" >"$work/fsx.out" 2>&1; then
        echo "ok   fsx_$mode: $(tail -n 1 "$work/fsx.out")"
        passed=$((passed + 1))
    else
        echo "FAIL fsx_$mode:"
        cat "$work/fsx.out"
        failed=$((failed + 1))
    fi
done
if wanted programs; then
    "$root/tests/posix/programs.sh" "$mnt" "$bin" "$work" | tee "$work/programs.out"
    counted "$work/programs.out"
fi
if wanted failover; then
    "$root/tests/posix/failover.sh" "$mnt" "$bin" "$work" "$cluster" |
        tee "$work/failover.out"
    counted "$work/failover.out"
fi
echo "posix: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
