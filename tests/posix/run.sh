#!/bin/sh
# POSIX suite of dfs-mount: starts its own cluster under a mktemp folder,
# mounts it, runs tests/posix/checks.py against the mount, then unmounts and
# stops the cluster on every exit path.  Last line: `posix: N passed, M failed`.
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

cleanup() {
    # A mount whose daemon died fails `mountpoint`; /proc/mounts still has it.
    if grep -q " $mnt fuse" /proc/mounts 2>/dev/null; then
        fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null ||
            umount -l "$mnt" 2>/dev/null
    fi
    "$bin/dfs-cluster" down -d "$cluster" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$mnt"
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

seed=${POSIX_SEED:+--seed $POSIX_SEED}
# shellcheck disable=SC2086
POSIX_MOUNT_LOG=$work/mount.log python3 "$root/tests/posix/checks.py" \
    "$mnt" "$bin" "$work" $seed
