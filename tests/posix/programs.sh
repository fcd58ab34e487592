#!/bin/bash
# Real programs on a dfs mount (run by tests/posix/run.sh after checks.py):
# tar extract + compare, git init/add/commit/fsck/gc, make of a small C
# project, sqlite3 with integrity_check, rsync, editor-style saves.
#
#   programs.sh MNT BIN_DIR WORK_DIR
#
# One line per check, as checks.py prints them (`ok   name`, `FAIL name:
# why`, `SKIP name: why`), last `programs: N passed, M failed`; exit 1 when
# a check failed.  A program that is not installed is a SKIP with the reason,
# never a silent pass.  Everything runs under MNT/programs and WORK/programs.
set -u

[ $# -eq 3 ] || { echo "usage: programs.sh MNT BIN_DIR WORK_DIR" >&2; exit 2; }
mnt=$1                  # BIN_DIR ($2): the calling convention of checks.py
work=$3/programs
root=$(cd "$(dirname "$0")/../.." && pwd)
top=$mnt/programs
passed=0 failed=0 skipped=0

mkdir -p "$work" "$top" || { echo "programs: cannot make $work or $top"; exit 1; }
log=$work/last.log

# check NAME FUNCTION: runs FUNCTION with its output in $log; a non-zero
# status fails the check with the last lines of that output, 77 skips it
# with the reason the function put in $work/skip.
check() {
    local name=$1 rc
    rm -f "$work/skip"
    "$2" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $name"
    elif [ $rc -eq 77 ]; then
        skipped=$((skipped + 1))
        echo "SKIP $name: $(cat "$work/skip" 2>/dev/null)"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $(tail -n 5 "$log" | tr '\n' '|' | cut -c1-600)"
    fi
}

skip() {
    echo "$*" >"$work/skip"
    exit 77
}

need() {
    command -v "$1" >/dev/null 2>&1 ||
        skip "$1 is not installed (tools/install-deps.sh should install it)"
}

# ---- tar: the dfs source tree extracted into the mount and compared -----------

t_tar_tree() (
    set -e
    need tar
    # A snapshot of the sources: other builds may change the tree meanwhile.
    tar -C "$root" -cf "$work/src.tar" --exclude=build --exclude=.git \
        --exclude=run --exclude=mnt --exclude=bin .
    mkdir "$work/src" "$top/src"
    tar -C "$work/src" -xf "$work/src.tar"
    tar -C "$top/src" -xf "$work/src.tar"
    diff -r "$work/src" "$top/src"
    # Archived back from the mount: the same members, the same bytes.
    tar -C "$top/src" -cf "$work/back.tar" .
    mkdir "$work/back"
    tar -C "$work/back" -xf "$work/back.tar"
    diff -r "$work/src" "$work/back"
    [ "$(find "$top/src" | wc -l)" -eq "$(find "$work/src" | wc -l)" ]
)

# ---- git ---------------------------------------------------------------------

t_git() (
    set -e
    need git
    [ -d "$work/src" ] || skip "needs the tree of tar_tree"
    local repo=$top/repo
    mkdir "$repo"
    cd "$repo"
    export GIT_CONFIG_NOSYSTEM=1 HOME=$work GIT_AUTHOR_NAME=dfs \
        GIT_AUTHOR_EMAIL=dfs@localhost GIT_COMMITTER_NAME=dfs \
        GIT_COMMITTER_EMAIL=dfs@localhost
    git init -q -b main .
    cp -r "$work/src/common" "$work/src/docs" .
    git add -A
    git commit -q -m "first"
    echo "a change" >>docs/MOUNT.md
    git mv docs/MOUNT.md docs/MOUNT-moved.md
    git commit -q -am "second"
    git fsck --full --strict
    [ "$(git rev-list --count HEAD)" = 2 ]
    git gc -q --aggressive      # packs: mmap, renames, fsyncs
    git fsck --full --strict
    git status --porcelain | (! grep .)
    # A clone from the mount repository into it, checked out and compared.
    git clone -q "$repo" "$top/clone"
    diff -r -x .git "$repo" "$top/clone"
)

# ---- make of a small C project ---------------------------------------------------

t_make() (
    set -e
    need make
    need cc
    local d=$top/cproj
    mkdir "$d"
    cd "$d"
    cat >sum.h <<'EOF'
int sum(int n);
EOF
    cat >sum.c <<'EOF'
#include "sum.h"
int sum(int n) { int s = 0; for (int i = 1; i <= n; i++) s += i; return s; }
EOF
    cat >main.c <<'EOF'
#include <stdio.h>
#include "sum.h"
int main(void) { printf("%d\n", sum(100)); return 0; }
EOF
    printf 'prog: main.o sum.o\n\tcc -o $@ main.o sum.o\n%%.o: %%.c sum.h\n\tcc -O2 -c $<\nclean:\n\trm -f prog *.o\n' >Makefile
    make -s
    [ "$(./prog)" = 5050 ]
    # Incremental: only what changed is rebuilt (mtimes through the mount).
    sleep 1
    sed -i 's/s += i/s += 2 * i/' sum.c
    local out
    out=$(make)
    echo "$out" | grep -q "sum.c"
    echo "$out" | (! grep -q "main.c")
    [ "$(./prog)" = 10100 ]
    make -s clean
    [ ! -e prog ] && [ ! -e main.o ]
)

# ---- sqlite3 -------------------------------------------------------------------------

sqlite_run() {
    local db=$1 mode=$2
    sqlite3 "$db" <<EOF
PRAGMA journal_mode=$mode;
CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB);
CREATE INDEX t_v ON t (v);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
INSERT INTO t (v, b) SELECT hex(randomblob(16)), randomblob(300) FROM c;
COMMIT;
DELETE FROM t WHERE id % 3 = 0;
UPDATE t SET v = 'x' || v WHERE id % 5 = 0;
VACUUM;
EOF
    [ "$(sqlite3 "$db" 'PRAGMA integrity_check;')" = ok ] || return 1
    [ "$(sqlite3 "$db" 'SELECT count(*) FROM t;')" = 13334 ] || return 1
}

t_sqlite() (
    set -e
    need sqlite3
    sqlite_run "$top/delete.db" DELETE
    sqlite_run "$top/wal.db" WAL     # the -shm file is a shared mapping
)

# ---- rsync ----------------------------------------------------------------------------

t_rsync() (
    set -e
    need rsync
    [ -d "$work/src" ] || skip "needs the tree of tar_tree"
    rsync -a "$work/src/" "$top/rsync/"
    diff -r "$work/src" "$top/rsync"
    # A second run changes one file in place (rsync's temp file + rename).
    echo more >>"$work/src/README.md"
    rsync -a --checksum "$work/src/" "$top/rsync/"
    diff -r "$work/src" "$top/rsync"
    rsync -a --inplace --checksum "$top/rsync/" "$work/rsync-back/"
    diff -r "$work/src" "$work/rsync-back"
)

# ---- an editor's save: temp file, fsync, rename over the original --------------------

t_editor_save() (
    set -e
    local f=$top/notes.txt
    printf 'line 1\nline 2\n' >"$f"
    local ino
    ino=$(stat -c %i "$f")
    # What vim/emacs/gedit do: write a temp file, fsync it, rename over.
    python3 - "$f" <<'EOF'
import os, sys
f = sys.argv[1]
tmp = f + ".swp~"
with open(tmp, "w") as fh:
    fh.write("line 1\nline 2 edited\nline 3\n")
    fh.flush()
    os.fsync(fh.fileno())
os.rename(tmp, f)
d = os.open(os.path.dirname(f), os.O_RDONLY)
os.fsync(d)
os.close(d)
EOF
    [ "$(cat "$f")" = "$(printf 'line 1\nline 2 edited\nline 3')" ]
    [ "$(stat -c %i "$f")" != "$ino" ]
    [ ! -e "$f.swp~" ]
    # sed -i: the same through a temp file in the directory.
    sed -i 's/edited/sed/' "$f"
    grep -qx "line 2 sed" "$f"
    # The backup style: rename the original away, write anew, drop it.
    mv "$f" "$f~"
    printf 'fresh\n' >"$f"
    rm "$f~"
    [ "$(cat "$f")" = fresh ]
    [ ! -e "$f~" ] && [ ! -e "$f.swp~" ]
)

check tar_tree t_tar_tree
check git t_git
check make t_make
check sqlite3 t_sqlite
check rsync t_rsync
check editor_save t_editor_save

[ $skipped -gt 0 ] && echo "programs: $skipped skipped (reasons above)"
echo "programs: $passed passed, $failed failed"
[ $failed -eq 0 ]
