#!/usr/bin/env python3
"""POSIX checks of a dfs mount (run by tests/posix/run.sh).

usage: checks.py MNT BIN_DIR WORK_DIR [--seed N]

Runs every check against the mounted directory MNT with the os module (and
a few coreutils/tar commands), prints one line per check, and last
`posix: N passed, M failed` (skipped checks are listed, not counted).
Exits 1 when any check failed.  The checks that need the file-data path
first probe it once (create, write, read back); when the probe fails they
fail with its reason.
"""
import ctypes
import errno
import fcntl
import os
import random
import shutil
import stat
import subprocess
import sys
import tarfile
import time

MNT, BIN, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
SEED = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv \
    else random.SystemRandom().randrange(1 << 31)

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2

results = {"pass": 0, "fail": 0, "skip": 0}
NOBODY = 65534


class Skip(Exception):
    pass


def p(*parts):
    return os.path.join(MNT, *parts)


def check(fn):
    name = fn.__name__.removeprefix("t_")
    try:
        fn()
    except Skip as s:
        results["skip"] += 1
        print("SKIP %s: %s" % (name, s), flush=True)
        return
    except Exception as e:   # a failed check, whatever raised it
        results["fail"] += 1
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
        return
    results["pass"] += 1
    print("ok   %s" % name, flush=True)


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        if e.errno != code:
            raise AssertionError("%s%r: errno %s, want %s" % (
                fn.__name__, args, errno.errorcode.get(e.errno), errno.errorcode[code]))
        return
    raise AssertionError("%s%r succeeded, want %s" % (fn.__name__, args,
                                                      errno.errorcode[code]))


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def mkfile(path, mode=0o644):
    """An empty regular file made without open(): MKNOD through FUSE."""
    os.mknod(path, stat.S_IFREG | mode)


def renameat2(a, b, flags):
    rc = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, atime, mtime):
    """atime/mtime: (sec, nsec) or UTIME_NOW / UTIME_OMIT."""
    ts = (Timespec * 2)()
    for i, t in enumerate((atime, mtime)):
        ts[i] = Timespec(0, t) if isinstance(t, int) else Timespec(*t)
    if libc.utimensat(AT_FDCWD, path.encode(), ts, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def as_nobody(*cmd):
    """Runs cmd as uid/gid 65534 with no supplementary groups."""
    return subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                           "--clear-groups", *cmd], capture_output=True, text=True,
                          timeout=30, cwd="/")


# ---- namespace -------------------------------------------------------------

def t_mkdir_rmdir():
    d = p("d1")
    os.mkdir(d, 0o755)
    st = os.stat(d)
    assert stat.S_ISDIR(st.st_mode), "not a directory"
    eq(stat.S_IMODE(st.st_mode), 0o755, "mode")
    expect_errno(errno.EEXIST, os.mkdir, d)
    mkfile(os.path.join(d, "f"))
    expect_errno(errno.ENOTEMPTY, os.rmdir, d)
    expect_errno(errno.ENOTDIR, os.rmdir, os.path.join(d, "f"))
    os.unlink(os.path.join(d, "f"))
    os.rmdir(d)
    expect_errno(errno.ENOENT, os.stat, d)
    expect_errno(errno.ENOENT, os.rmdir, d)
    expect_errno(errno.ENOENT, os.mkdir, p("nope", "x"))
    expect_errno(errno.ENAMETOOLONG, os.mkdir, p("n" * 256))


def t_mknod_stat_unlink():
    f = p("f1")
    mkfile(f, 0o640)
    st = os.stat(f)
    assert stat.S_ISREG(st.st_mode), "not a regular file"
    eq(stat.S_IMODE(st.st_mode), 0o640, "mode")
    eq((st.st_size, st.st_nlink, st.st_uid, st.st_gid), (0, 1, 0, 0),
       "size, nlink, uid, gid")
    eq(os.lstat(f).st_ino, st.st_ino, "inode of lstat")
    expect_errno(errno.EEXIST, mkfile, f)
    expect_errno(errno.ENOTDIR, os.stat, os.path.join(f, "x"))
    os.unlink(f)
    expect_errno(errno.ENOENT, os.stat, f)
    expect_errno(errno.ENOENT, os.unlink, f)
    os.mkdir(p("d2"))
    expect_errno(errno.EISDIR, os.unlink, p("d2"))
    os.rmdir(p("d2"))


def t_rename():
    os.mkdir(p("r"))
    os.mkdir(p("r", "sub"))
    a, b = p("r", "a"), p("r", "b")
    mkfile(a)
    mkfile(b)
    ino_a = os.stat(a).st_ino
    os.rename(a, b)                       # over an existing file
    expect_errno(errno.ENOENT, os.stat, a)
    eq(os.stat(b).st_ino, ino_a, "inode after rename over a file")
    os.rename(b, p("r", "sub", "c"))      # into another directory
    eq(os.stat(p("r", "sub", "c")).st_ino, ino_a, "inode after move")
    eq(sorted(os.listdir(p("r"))), ["sub"], "source directory")
    os.rename(p("r", "sub", "c"), p("r", "sub", "c"))   # onto itself: no-op
    os.mkdir(p("r", "e"))
    os.rename(p("r", "sub"), p("r", "e"))  # a directory over an empty one
    eq(os.listdir(p("r", "e")), ["c"], "moved directory")
    os.mkdir(p("r", "full"))
    mkfile(p("r", "full", "x"))
    expect_errno(errno.ENOTEMPTY, os.rename, p("r", "e"), p("r", "full"))
    expect_errno(errno.EISDIR, os.rename, p("r", "e", "c"), p("r", "full"))
    expect_errno(errno.ENOTDIR, os.rename, p("r", "full"), p("r", "e", "c"))
    expect_errno(errno.EINVAL, os.rename, p("r", "e"), p("r", "e", "in"))
    expect_errno(errno.ENOENT, os.rename, p("r", "missing"), p("r", "y"))


def t_renameat2():
    if not hasattr(libc, "renameat2"):
        raise Skip("libc has no renameat2")
    os.mkdir(p("r2"))
    a, b = p("r2", "a"), p("r2", "b")
    mkfile(a)
    mkfile(b)
    ia, ib = os.stat(a).st_ino, os.stat(b).st_ino
    expect_errno(errno.EEXIST, renameat2, a, b, RENAME_NOREPLACE)
    eq((os.stat(a).st_ino, os.stat(b).st_ino), (ia, ib), "after refused NOREPLACE")
    renameat2(a, b, RENAME_EXCHANGE)
    eq((os.stat(a).st_ino, os.stat(b).st_ino), (ib, ia), "after EXCHANGE")
    renameat2(a, p("r2", "c"), RENAME_NOREPLACE)
    eq(os.stat(p("r2", "c")).st_ino, ib, "after NOREPLACE to a free name")
    expect_errno(errno.ENOENT, renameat2, a, b, RENAME_EXCHANGE)
    expect_errno(errno.EINVAL, renameat2, b, p("r2", "c"),
                 RENAME_NOREPLACE | RENAME_EXCHANGE)


def t_link_counts():
    os.mkdir(p("l"))
    f, g = p("l", "f"), p("l", "g")
    mkfile(f)
    os.link(f, g)
    sf, sg = os.stat(f), os.stat(g)
    eq(sf.st_ino, sg.st_ino, "inode of the link")
    eq((sf.st_nlink, sg.st_nlink), (2, 2), "nlink after link")
    expect_errno(errno.EEXIST, os.link, f, g)
    os.mkdir(p("l", "sub"))
    expect_errno(errno.EPERM, os.link, p("l", "sub"), p("l", "dirlink"))
    os.unlink(f)
    eq(os.stat(g).st_nlink, 1, "nlink after unlink")
    eq(os.stat(p("l")).st_nlink, 3, "directory nlink with one subdirectory")
    os.mkdir(p("l", "sub2"))
    eq(os.stat(p("l")).st_nlink, 4, "directory nlink with two")
    os.rmdir(p("l", "sub2"))
    eq(os.stat(p("l")).st_nlink, 3, "directory nlink after rmdir")


def t_symlink_readlink():
    os.mkdir(p("s"))
    mkfile(p("s", "target"), 0o600)
    os.symlink("target", p("s", "l"))
    eq(os.readlink(p("s", "l")), "target", "readlink")
    st = os.lstat(p("s", "l"))
    assert stat.S_ISLNK(st.st_mode), "lstat: not a symlink"
    eq(st.st_size, len("target"), "symlink size")
    eq(os.stat(p("s", "l")).st_ino, os.stat(p("s", "target")).st_ino, "followed")
    long_target = "/".join(["x" * 200] * 15)
    os.symlink(long_target, p("s", "long"))
    eq(os.readlink(p("s", "long")), long_target, "long readlink")
    os.symlink("nowhere", p("s", "dangling"))
    expect_errno(errno.ENOENT, os.stat, p("s", "dangling"))
    expect_errno(errno.EINVAL, os.readlink, p("s", "target"))
    expect_errno(errno.EEXIST, os.symlink, "x", p("s", "l"))


def t_chmod_chown():
    f = p("own")
    mkfile(f, 0o644)
    os.chmod(f, 0o4751)
    eq(stat.S_IMODE(os.stat(f).st_mode), 0o4751, "mode after chmod")
    os.chmod(f, 0o600)
    os.chown(f, 1234, 5678)
    st = os.stat(f)
    eq((st.st_uid, st.st_gid), (1234, 5678), "owner after chown")
    os.chown(f, -1, 42)
    st = os.stat(f)
    eq((st.st_uid, st.st_gid), (1234, 42), "owner after chgrp only")
    eq(stat.S_IMODE(st.st_mode), 0o600, "mode kept by chown")
    os.symlink("own", p("own-l"))
    os.chown(p("own-l"), 7, 8, follow_symlinks=False)
    eq((os.lstat(p("own-l")).st_uid, os.stat(f).st_uid), (7, 1234), "lchown")


def t_utime():
    f = p("times")
    mkfile(f)
    os.utime(f, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(f)
    eq((st.st_atime_ns, st.st_mtime_ns), (1_000_000_123, 2_000_000_456), "utime ns")
    utimensat(f, UTIME_OMIT, (3, 5))
    st = os.stat(f)
    eq((st.st_atime_ns, st.st_mtime_ns), (1_000_000_123, 3_000_000_005),
       "UTIME_OMIT atime")
    before = time.time_ns()
    utimensat(f, (4, 0), UTIME_NOW)
    st = os.stat(f)
    eq(st.st_atime_ns, 4_000_000_000, "atime beside UTIME_NOW")
    if st.st_mtime_ns < before - 2_000_000_000:
        raise AssertionError("UTIME_NOW left mtime at %d" % st.st_mtime_ns)
    os.utime(f)
    assert os.stat(f).st_atime_ns > 4_000_000_000, "utime(NULL) kept old atime"


def t_utime_after_write():
    """tar and cp -p set the times through the descriptor they wrote with,
    before closing it: committing the writes at close must not move the
    mtime they set.  Read through a second mount, which has not cached the
    attributes the first one's SETATTR answered."""
    need("write")
    f = p("times-written")
    f2 = os.path.join(mnt2(), "times-written")
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"x" * 5000)
        os.utime(fd, ns=(1_000_000_000, 1_700_000_000_000_000_000))
        os.write(fd, b"y")          # moves mtime: the utime after it counts
        os.utime(fd, ns=(1_000_000_000, 1_600_000_000_000_000_000))
    finally:
        os.close(fd)
    st = os.stat(f2)
    eq((st.st_size, st.st_mtime_ns), (5001, 1_600_000_000_000_000_000),
       "size and mtime set through the descriptor before close")
    # The mtime alone (atime UTIME_OMIT, as tar sets it), then UTIME_NOW,
    # each while the file holds unwritten data.
    g = p("times-written-2")
    g2 = os.path.join(mnt2(), "times-written-2")
    with open(g, "wb") as fh:
        fh.write(b"x" * 7000)
        fh.flush()
        utimensat(g, UTIME_OMIT, (1_500_000_000, 7))
        st = os.stat(g2)
        eq((st.st_size, st.st_mtime_ns), (7000, 1_500_000_000_000_000_007),
           "mtime alone set while written (seen before close)")
        fh.write(b"y")
    with open(g, "ab") as fh:
        fh.write(b"z")
        before = time.time_ns()
        utimensat(g, UTIME_OMIT, UTIME_NOW)
    with open(g2, "rb") as fh:
        st = os.fstat(fh.fileno())
    eq(st.st_size, 7002, "size after the UTIME_NOW")
    assert st.st_mtime_ns >= before - 2_000_000_000, \
        "UTIME_NOW while written left mtime at %d" % st.st_mtime_ns
    with open(f, "ab") as fh:
        fh.write(b"z")
    with open(f2, "rb") as fh:      # close-to-open: fresh attributes
        assert os.fstat(fh.fileno()).st_mtime_ns > 1_700_000_000_000_000_000, \
            "a write after the utime left the old mtime"


def t_mkfifo():
    os.mkfifo(p("fifo"), 0o620)
    st = os.stat(p("fifo"))
    assert stat.S_ISFIFO(st.st_mode), "not a FIFO"
    eq(stat.S_IMODE(st.st_mode), 0o620, "FIFO mode")
    os.unlink(p("fifo"))


def t_readdir_2000():
    d = p("big")
    os.mkdir(d)
    names = ["entry-%04d-%s" % (i, "x" * (i % 40)) for i in range(2000)]
    for n in names:
        mkfile(os.path.join(d, n))
    seen = os.listdir(d)
    eq(len(seen), len(names), "entries listed")
    eq(sorted(seen), sorted(names), "names listed")
    with os.scandir(d) as it:
        kinds = {e.name: e.is_file(follow_symlinks=False) for e in it}
    eq(len(kinds), 2000, "scandir entries")
    assert all(kinds.values()), "scandir: d_type not regular"
    # rm -rf shape: unlink while listing; each entry seen exactly once.
    removed = []
    with os.scandir(d) as it:
        for e in it:
            os.unlink(e.path)
            removed.append(e.name)
    eq(len(removed), 2000, "entries seen while removing")
    eq(len(set(removed)), 2000, "distinct entries seen while removing")
    eq(os.listdir(d), [], "left after removing")
    os.rmdir(d)


def t_parallel():
    """Many requests at once (multithreaded loop, one libdfs session)."""
    import threading
    d = p("par")
    os.mkdir(d)
    errors = []

    def worker(w):
        try:
            for i in range(40):
                name = os.path.join(d, "w%d-%d" % (w, i))
                (os.mkdir if i % 2 else mkfile)(name)
                os.stat(name)
                if i % 10 == 0:
                    os.listdir(d)
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq(errors, [], "errors of the workers")
    eq(len(os.listdir(d)), 320, "entries made in parallel")
    eq(os.stat(d).st_nlink, 2 + 160, "directory nlink")


def t_ls_la():
    os.mkdir(p("ls"))
    mkfile(p("ls", "plain"), 0o640)
    os.mkdir(p("ls", "dir"))
    os.symlink("plain", p("ls", "link"))
    os.mkfifo(p("ls", "pipe"))
    out = subprocess.run(["ls", "-la", "--time-style=+%s", p("ls")],
                         capture_output=True, text=True, timeout=30)
    eq(out.returncode, 0, "ls -la exit status (%s)" % out.stderr.strip())
    lines = {l.split()[-1] if "->" not in l else l.split()[-3]: l
             for l in out.stdout.splitlines()[1:]}
    for name, first in (("plain", "-rw-r-----"), ("dir", "d"), ("link", "l"),
                        ("pipe", "p"), (".", "d"), ("..", "d")):
        assert name in lines, "ls -la misses %s:\n%s" % (name, out.stdout)
        assert lines[name].startswith(first), "ls -la %s: %s" % (name, lines[name])
    assert "plain" in lines["link"], "symlink target not shown"


def t_statfs():
    v = os.statvfs(MNT)
    eq(v.f_namemax, 255, "f_namemax")
    assert v.f_bsize > 0, "f_bsize 0"


def t_fsyncdir():
    fd = os.open(MNT, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- extended attributes ----------------------------------------------------

def c_getxattr(path, name, size):
    """getxattr(2) with a buffer of size bytes: (length, value bytes)."""
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.getxattr(path.encode(), name.encode(), buf if size else None,
                      ctypes.c_size_t(size))
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return n, buf.raw[:n] if size else b""


def c_listxattr(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.listxattr(path.encode(), buf if size else None, ctypes.c_size_t(size))
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return n, buf.raw[:n] if size else b""


def xattr_cycle(path):
    """set/get/list/remove, size probing, ERANGE, ENODATA, CREATE/REPLACE."""
    expect_errno(errno.ENODATA, os.getxattr, path, "user.none")
    eq(os.listxattr(path), [], "a new inode's list")
    eq(c_listxattr(path, 0), (0, b""), "empty list probed")
    os.setxattr(path, "user.a", b"alpha")
    os.setxattr(path, "user.empty", b"")
    big = bytes(random.Random(SEED).randrange(256) for _ in range(65536))
    os.setxattr(path, "user.big", big)
    eq(os.getxattr(path, "user.a"), b"alpha", "user.a")
    eq(os.getxattr(path, "user.empty"), b"", "an empty value")
    eq(os.getxattr(path, "user.big"), big, "a 64 KiB value")
    eq(c_getxattr(path, "user.a", 0)[0], 5, "value size probed with size 0")
    eq(c_getxattr(path, "user.a", 5), (5, b"alpha"), "value in an exact buffer")
    expect_errno(errno.ERANGE, c_getxattr, path, "user.a", 4)
    expect_errno(errno.E2BIG, os.setxattr, path, "user.huge", b"x" * 65537)
    names = b"user.a\0user.big\0user.empty\0"
    n, _ = c_listxattr(path, 0)
    eq(n, len(names), "list size probed with size 0")
    n, got = c_listxattr(path, n)
    eq(sorted(got.split(b"\0")[:-1]), sorted(names.split(b"\0")[:-1]), "list")
    expect_errno(errno.ERANGE, c_listxattr, path, n - 1)
    expect_errno(errno.EEXIST, os.setxattr, path, "user.a", b"x", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, os.setxattr, path, "user.b", b"x", os.XATTR_REPLACE)
    os.setxattr(path, "user.a", b"replaced", os.XATTR_REPLACE)
    os.setxattr(path, "user.b", b"created", os.XATTR_CREATE)
    eq(os.getxattr(path, "user.a"), b"replaced", "after XATTR_REPLACE")
    eq(os.getxattr(path, "user.b"), b"created", "after XATTR_CREATE")
    ctime = os.stat(path).st_ctime_ns
    os.removexattr(path, "user.big")
    expect_errno(errno.ENODATA, os.getxattr, path, "user.big")
    expect_errno(errno.ENODATA, os.removexattr, path, "user.big")
    assert os.stat(path).st_ctime_ns >= ctime, "ctime went back"
    eq(sorted(os.listxattr(path)), ["user.a", "user.b", "user.empty"], "list after")


def t_xattr_file():
    mkfile(p("xa"))
    xattr_cycle(p("xa"))


def t_xattr_dir():
    os.mkdir(p("xd"))
    xattr_cycle(p("xd"))
    os.rmdir(p("xd"))   # attributes go with the inode


def t_xattr_namespaces():
    """user.* on files and directories, trusted.* and security.* for root;
    system.* (POSIX ACLs included) and unknown namespaces: EOPNOTSUPP."""
    mkfile(p("xn"), 0o644)
    os.setxattr(p("xn"), "trusted.t", b"1")
    os.setxattr(p("xn"), "security.s", b"2")
    eq(os.getxattr(p("xn"), "trusted.t"), b"1", "trusted.t")
    eq(os.getxattr(p("xn"), "security.s"), b"2", "security.s")
    expect_errno(errno.ENODATA, os.getxattr, p("xn"), "security.capability")
    os.removexattr(p("xn"), "security.s")
    # (the kernel parses an ACL value itself: a bad one is EINVAL before us)
    for name in ("system.posix_acl_access", "system.posix_acl_default"):
        expect_errno(errno.EOPNOTSUPP, os.getxattr, p("xn"), name)
    for name in ("system.other", "other.name"):
        expect_errno(errno.EOPNOTSUPP, os.setxattr, p("xn"), name, b"x")
    expect_errno(errno.EOPNOTSUPP, os.getxattr, p("xn"), "other.name")
    os.mkfifo(p("xfifo"))
    expect_errno(errno.EPERM, os.setxattr, p("xfifo"), "user.a", b"x")
    if shutil.which("setpriv"):
        os.setxattr(p("xn"), "user.mine", b"root's")
        r = as_nobody(sys.executable, "-c",
                      "import os,sys; os.setxattr(sys.argv[1], 'user.x', b'1')", p("xn"))
        assert r.returncode != 0 and "Permission denied" in r.stderr, \
            "user.* set by nobody on root's 0644 file: %r" % r.stderr
        r = as_nobody(sys.executable, "-c",
                      "import os,sys; print(os.getxattr(sys.argv[1], 'user.mine'))", p("xn"))
        eq((r.returncode, r.stdout.strip()), (0, "b\"root's\""), "user.* read by nobody")


def t_xattr_two_mounts():
    """What one mount sets, the other sees at once (no cache of values)."""
    m2 = mnt2()
    mkfile(p("x2"))
    os.setxattr(p("x2"), "user.k", b"one")
    eq(os.getxattr(os.path.join(m2, "x2"), "user.k"), b"one", "seen by mount 2")
    os.setxattr(os.path.join(m2, "x2"), "user.k", b"two")
    eq(os.getxattr(p("x2"), "user.k"), b"two", "changed by mount 2")
    os.removexattr(os.path.join(m2, "x2"), "user.k")
    expect_errno(errno.ENODATA, os.getxattr, p("x2"), "user.k")


# ---- advisory locks ---------------------------------------------------------

def mnt2():
    m2 = os.environ.get("POSIX_MNT2")
    assert m2 and os.path.ismount(m2), "no second mount (POSIX_MNT2; run.sh mounts it)"
    return m2


LOCKER = r"""
import errno, fcntl, os, signal, struct, sys, time
def out(*a):
    print(*a, flush=True)
path, op = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
if op in ("hold", "hold-read"):   # a write (read) lock on 0..99, then wait
    fcntl.lockf(fd, (fcntl.LOCK_EX if op == "hold" else fcntl.LOCK_SH)
                | fcntl.LOCK_NB, 100, 0)
    out("held", os.getpid())
    sys.stdin.readline()    # until told (or killed)
    os.close(fd)
    out("closed")
elif op == "try":           # one non-blocking try on bytes 50..59
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
        out("got")
    except OSError as e:
        out(errno.errorcode[e.errno])
elif op == "getlk":         # F_GETLK for a write lock on 0..9
    r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 10, 0))
    t, _, s, n, pid = struct.unpack("hhqqi", r)
    out("unlocked" if t == fcntl.F_UNLCK else "%s %d %d %d" % (
        "w" if t == fcntl.F_WRLCK else "r", s, n, pid))
elif op == "wait":          # F_SETLKW on 50..59
    out("waiting")
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 50)
    out("got")
elif op == "queue":         # F_SETLKW on 50..59, held 0.2 s: when, in ns
    out("waiting")
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 50)
    t0 = time.monotonic_ns()
    time.sleep(0.2)
    t1 = time.monotonic_ns()
    os.close(fd)
    out(t0, t1)
elif op in ("interrupt", "upgrade"):
    # F_SETLKW on 50..59 (upgrade: first a read lock on 0..99, then a write
    # lock on it), interrupted by SIGALRM after 1 s
    if op == "upgrade":
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 100, 0)
    def alarm(*a):
        raise InterruptedError(errno.EINTR, "alarm")
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(1)
    try:
        if op == "upgrade":
            fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX, 10, 50)
        out("got")
    except OSError as e:
        out(errno.errorcode[e.errno])
    signal.alarm(0)
    if op == "upgrade":
        sys.stdin.readline()    # keeps its read lock until told
elif op in ("flock", "flock-hold"):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out("got")
    except OSError as e:
        out(errno.errorcode[e.errno])
    if op == "flock-hold":
        sys.stdin.readline()
"""


class Locker:
    """A helper process running one LOCKER operation on path."""

    def __init__(self, path, op):
        self.p = subprocess.Popen([sys.executable, "-c", LOCKER, path, op],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

    def line(self):
        s = self.p.stdout.readline().strip()
        assert s, "locker died: %s" % self.p.stderr.read()[-300:]
        return s

    def finish(self, timeout=60):
        out, err = self.p.communicate("\n", timeout=timeout)
        return out.strip().split("\n")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=30)


def run_locker(path, op):
    l = Locker(path, op)
    try:
        return l.finish()
    finally:
        l.kill()


def lock_file(name):
    with open(p(name), "wb") as f:
        f.write(b"x" * 200)
    return p(name)


def t_lock_posix_conflict():
    """F_SETLK: another process gets EAGAIN; F_GETLK names the holder's pid;
    a range that does not overlap is free."""
    path = lock_file("lk1")
    h = Locker(path, "hold")
    try:
        held, pid = h.line().split()
        eq(held, "held", "holder")
        eq(run_locker(path, "try"), ["EAGAIN"], "F_SETLK on a held range")
        eq(run_locker(path, "getlk"), ["w 0 100 %s" % pid], "F_GETLK")
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 100)   # 100..109
            fcntl.lockf(fd, fcntl.LOCK_UN, 10, 100)
        finally:
            os.close(fd)
        eq(h.finish(), ["closed"], "holder")
        eq(run_locker(path, "try"), ["got"], "F_SETLK after the holder closed")
    finally:
        h.kill()


def t_lock_setlkw_waits():
    """F_SETLKW blocks until the holder releases, then gets the lock."""
    path = lock_file("lk2")
    h = Locker(path, "hold")
    w = None
    try:
        eq(h.line().split()[0], "held", "holder")
        w = Locker(path, "wait")
        eq(w.line(), "waiting", "waiter")
        time.sleep(1)
        assert w.p.poll() is None, "F_SETLKW returned while the lock was held"
        eq(h.finish(), ["closed"], "holder")
        eq(w.finish(), ["got"], "waiter after the release")
    finally:
        h.kill()
        if w:
            w.kill()


def t_lock_setlkw_interrupted():
    """A signal ends F_SETLKW with EINTR, and the lock is not taken."""
    path = lock_file("lk3")
    h = Locker(path, "hold")
    try:
        eq(h.line().split()[0], "held", "holder")
        eq(run_locker(path, "interrupt"), ["EINTR"], "interrupted F_SETLKW")
        eq(h.finish(), ["closed"], "holder")
        eq(run_locker(path, "try"), ["got"], "the range is free after the interrupt")
    finally:
        h.kill()


def t_lock_upgrade_interrupted():
    """An interrupted upgrade (read lock held, F_SETLKW for a write lock)
    ends with EINTR and keeps the read lock, as POSIX says."""
    path = lock_file("lk3u")
    other = Locker(path, "hold-read")
    up = None
    try:
        eq(other.line().split()[0], "held", "other reader")
        up = Locker(path, "upgrade")
        eq(up.line(), "EINTR", "interrupted upgrade")
        eq(other.finish(), ["closed"], "other reader")
        eq(run_locker(path, "try"), ["EAGAIN"], "the read lock is still held")
        up.finish()
        eq(run_locker(path, "try"), ["got"], "free once the upgrader closed")
    finally:
        other.kill()
        if up:
            up.kill()


def t_lock_many_waiters():
    """Sixteen processes wait (F_SETLKW) for one held range: once it is
    free each gets it in turn, never two at once, none left waiting.  Each
    waiter holds a mount thread while it waits: more of them than libfuse's
    default of ten workers."""
    path = lock_file("lk3m")
    h = Locker(path, "hold")
    waiters = []
    try:
        eq(h.line().split()[0], "held", "holder")
        for _ in range(16):
            waiters.append(Locker(path, "queue"))
            eq(waiters[-1].line(), "waiting", "waiter")
        time.sleep(1)
        eq(h.finish(), ["closed"], "holder")
        spans = sorted(tuple(map(int, w.finish(timeout=60)[-1].split()))
                       for w in waiters)
        eq(len(spans), 16, "every waiter got the lock")
        for a, b in zip(spans, spans[1:]):
            assert a[1] <= b[0], "two holders at once: %s %s" % (a, b)
    finally:
        h.kill()
        for w in waiters:
            w.kill()


def t_lock_holder_killed():
    """kill -9 of the holder releases its locks (its descriptors close)."""
    path = lock_file("lk4")
    h = Locker(path, "hold")
    try:
        eq(h.line().split()[0], "held", "holder")
        eq(run_locker(path, "try"), ["EAGAIN"], "while held")
    finally:
        h.kill()
    eq(run_locker(path, "try"), ["got"], "after kill -9 of the holder")


def t_lock_close_releases():
    """Closing any descriptor of the file drops the process's POSIX locks."""
    path = lock_file("lk5")
    fd1 = os.open(path, os.O_RDWR)
    fd2 = os.open(path, os.O_RDONLY)
    try:
        fcntl.lockf(fd1, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)
        eq(run_locker(path, "try"), ["EAGAIN"], "while held")
        os.close(fd2)
        fd2 = -1
        eq(run_locker(path, "try"), ["got"], "after closing another descriptor")
    finally:
        os.close(fd1)
        if fd2 >= 0:
            os.close(fd2)


def t_lock_flock():
    """flock: LOCK_EX|LOCK_NB conflicts between two open files; gone at close."""
    path = lock_file("lk6")
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        eq(run_locker(path, "flock"), ["EAGAIN"], "flock of another process")
        fd2 = os.open(path, os.O_RDONLY)   # another open file, same process
        try:
            expect_errno(errno.EAGAIN, fcntl.flock, fd2, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd2)
        # flock and POSIX locks do not conflict (as on Linux)
        eq(run_locker(path, "try"), ["got"], "POSIX lock beside a flock")
        fcntl.flock(fd, fcntl.LOCK_UN)
        eq(run_locker(path, "flock"), ["got"], "flock after LOCK_UN")
        # the kernel sends a closed file's flock release in the background:
        # a flock right after another process's last close must still get it
        for i in range(20):
            eq(run_locker(path, "flock"), ["got"], "flock %d after LOCK_UN" % i)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    eq(run_locker(path, "flock"), ["got"], "flock after the holder's close")


def t_lock_two_mounts():
    """Locks live in the masters: two mounts see each other's locks."""
    m2 = mnt2()
    path = lock_file("lk7")
    other = os.path.join(m2, "lk7")
    h = Locker(path, "hold")
    w = None
    try:
        held, pid = h.line().split()
        eq(held, "held", "holder on mount 1")
        eq(run_locker(other, "try"), ["EAGAIN"], "F_SETLK through mount 2")
        got = run_locker(other, "getlk")[0].split()
        eq(got[:3], ["w", "0", "100"], "F_GETLK through mount 2")
        w = Locker(other, "wait")
        eq(w.line(), "waiting", "waiter on mount 2")
        eq(h.finish(), ["closed"], "holder")
        eq(w.finish(), ["got"], "waiter on mount 2 after the release")
    finally:
        h.kill()
        if w:
            w.kill()
    f = Locker(path, "flock-hold")
    try:
        eq(f.line(), "got", "flock on mount 1")
        eq(run_locker(other, "flock"), ["EAGAIN"], "flock through mount 2")
        f.finish()
    finally:
        f.kill()
    # The kernel sends a flock's release to mount 1 in the background after
    # the close, so mount 2 may ask before it lands: allow it a few seconds.
    deadline = time.monotonic() + 5
    while run_locker(other, "flock") != ["got"]:
        assert time.monotonic() < deadline, "flock through mount 2 after close"
        time.sleep(0.05)


def t_permissions_nobody():
    if not shutil.which("setpriv"):
        raise Skip("setpriv is not installed")
    os.mkdir(p("priv"), 0o755)
    os.mkdir(p("pub"), 0o777)
    os.mkdir(p("secret"), 0o700)
    mkfile(p("priv", "rootfile"), 0o644)
    r = as_nobody("mkdir", p("priv", "x"))
    assert r.returncode != 0 and "Permission denied" in r.stderr, \
        "mkdir in a 0755 root directory: %r" % (r.stderr,)
    r = as_nobody("ls", p("secret"))
    assert r.returncode != 0 and "Permission denied" in r.stderr, \
        "ls of a 0700 root directory: %r" % (r.stderr,)
    r = as_nobody("chmod", "777", p("priv", "rootfile"))
    assert r.returncode != 0, "chmod of root's file as nobody succeeded"
    r = as_nobody("rm", "-f", p("priv", "rootfile"))
    assert r.returncode != 0 and os.path.exists(p("priv", "rootfile")), \
        "unlink in a 0755 root directory succeeded"
    r = as_nobody("ls", p("priv"))
    eq((r.returncode, r.stdout.split()), (0, ["rootfile"]), "ls as nobody")
    # What nobody makes is nobody's (the caller's uid/gid, not the mount's).
    for cmd, name in ((["mkdir", p("pub", "nd")], "nd"),
                      (["mkfifo", p("pub", "nf")], "nf"),
                      (["ln", "-s", "nd", p("pub", "nl")], "nl")):
        r = as_nobody(*cmd)
        eq(r.returncode, 0, "%s as nobody (%s)" % (cmd[0], r.stderr.strip()))
        st = os.lstat(p("pub", name))
        eq((st.st_uid, st.st_gid), (NOBODY, NOBODY), "owner of %s" % name)
    r = as_nobody("chmod", "700", p("pub", "nd"))
    eq(r.returncode, 0, "chmod of its own directory (%s)" % r.stderr.strip())
    eq(stat.S_IMODE(os.stat(p("pub", "nd")).st_mode), 0o700, "mode set by nobody")
    # setgid directories hand their group down, also to nobody's files.
    os.mkdir(p("sgid"), 0o777)
    os.chown(p("sgid"), 0, 4242)
    os.chmod(p("sgid"), 0o2777)
    r = as_nobody("mkdir", p("sgid", "d"))
    eq(r.returncode, 0, "mkdir in setgid directory (%s)" % r.stderr.strip())
    st = os.stat(p("sgid", "d"))
    eq((st.st_uid, st.st_gid), (NOBODY, 4242), "owner in a setgid directory")
    assert st.st_mode & stat.S_ISGID, "setgid not inherited by a subdirectory"


def t_bad_mounts():
    """A wrong key or no master: a clear error, a non-zero exit, no mount."""
    mnt2 = os.path.join(WORK, "mnt-bad")
    os.makedirs(mnt2, exist_ok=True)
    bad_key = os.path.join(WORK, "bad.key")
    with open(os.open(bad_key, os.O_CREAT | os.O_WRONLY, 0o600), "w") as f:
        f.write("0" * 64 + "\n")
    env = dict(os.environ)
    cases = (("wrong key", ["-k", bad_key]),
             ("no master", ["-M", "127.0.0.1:1"]))
    for what, extra in cases:
        r = subprocess.run([os.path.join(BIN, "dfs-mount"), mnt2, *extra],
                           capture_output=True, text=True, timeout=90, env=env)
        assert r.returncode != 0, "%s: dfs-mount exited 0" % what
        assert "dfs-mount:" in r.stderr, "%s: no message (%r)" % (what, r.stderr)
        assert not os.path.ismount(mnt2), "%s: left a mount" % what
    r = subprocess.run([os.path.join(BIN, "dfs-mount")], capture_output=True,
                       text=True, timeout=30)
    eq(r.returncode, 2, "exit status of a usage error")


def t_mount_helper():
    """mount.dfs, as mount(8) runs it: fstab-only options dropped."""
    helper = os.path.join(BIN, "mount.dfs")
    if not os.access(helper, os.X_OK):
        raise Skip("%s is not built" % helper)
    mnt2 = os.path.join(WORK, "mnt-helper")
    os.makedirs(mnt2, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DFS_MASTERS", "DFS_KEY_FILE")}
    opts = "defaults,_netdev,noatime,keyfile=%s,attr_timeout=0.5" % \
        os.environ["DFS_KEY_FILE"]
    r = subprocess.run([helper, os.environ["DFS_MASTERS"], mnt2, "-o", opts],
                       capture_output=True, text=True, timeout=90, env=env)
    eq(r.returncode, 0, "mount.dfs exit status (%s)" % r.stderr.strip())
    try:
        assert os.path.ismount(mnt2), "mount.dfs left no mount"
        mkfile(p("via-helper"))
        assert "via-helper" in os.listdir(mnt2), "second mount misses a name"
    finally:
        subprocess.run(["fusermount3", "-u", mnt2], timeout=30)
    assert not os.path.ismount(mnt2), "fusermount3 -u left the mount"


# ---- the data path ---------------------------------------------------------

DATA = {"open": None, "write": None}


def probe_data():
    """Decides whether open(O_CREAT) and write work through this mount."""
    try:
        fd = os.open(p("probe"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    except OSError as e:
        if e.errno in (errno.EIO, errno.ENOSYS):
            DATA["open"] = "open(O_CREAT) fails with %s" % errno.errorcode[e.errno]
            DATA["write"] = DATA["open"]
            return
        raise
    DATA["open"] = ""
    try:
        os.write(fd, b"x")
        os.close(fd)
        fd = -1
        with open(p("probe"), "rb") as f:
            if f.read() != b"x":
                raise OSError(errno.EIO, "read back differs")
        DATA["write"] = ""
    except OSError as e:
        DATA["write"] = "the first write/read fails with %s" % \
            errno.errorcode.get(e.errno, e.errno)
    finally:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def need(kind):
    if DATA[kind] is None:
        probe_data()
    if DATA[kind]:
        raise AssertionError(DATA[kind])


def t_create_open():
    need("open")
    f = p("c1")
    fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
    os.close(fd)
    st = os.stat(f)
    eq((stat.S_IMODE(st.st_mode), st.st_size), (0o640, 0), "mode, size")
    expect_errno(errno.EEXIST, os.open, f, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    fd = os.open(f, os.O_RDONLY)
    eq(os.read(fd, 10), b"", "read of an empty file")
    os.close(fd)
    expect_errno(errno.EISDIR, os.open, MNT, os.O_WRONLY)
    os.unlink(f)


def local_tree(root):
    os.makedirs(os.path.join(root, "a", "b", "c"))
    os.makedirs(os.path.join(root, "empty"))
    for i in range(20):
        open(os.path.join(root, "a", "f%d" % i), "w").close()
        open(os.path.join(root, "a", "b", "g%d" % i), "w").close()
    os.symlink("../a/f1", os.path.join(root, "empty", "link"))


def listing(root):
    out = []
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirs + files:
            st = os.lstat(os.path.join(dirpath, n))
            # A directory's size is the local file system's business.
            size = None if stat.S_ISDIR(st.st_mode) else st.st_size
            out.append((os.path.join(rel, n), stat.S_IFMT(st.st_mode), size))
    return sorted(out)


def t_tar_empty_tree():
    need("open")
    src = os.path.join(WORK, "tree")
    local_tree(src)
    tarball = os.path.join(WORK, "tree.tar")
    with tarfile.open(tarball, "w") as t:
        t.add(src, arcname="tree")
    os.mkdir(p("tar"))
    r = subprocess.run(["tar", "xf", tarball, "-C", p("tar")], capture_output=True,
                       text=True, timeout=60)
    eq(r.returncode, 0, "tar x exit status (%s)" % r.stderr.strip())
    eq(listing(p("tar", "tree")), listing(src), "tree listed back")
    r = subprocess.run(["tar", "cf", os.path.join(WORK, "back.tar"), "-C", p("tar"),
                        "tree"], capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, "tar c from the mount (%s)" % r.stderr.strip())
    with tarfile.open(os.path.join(WORK, "back.tar")) as t:
        names = sorted(m.name for m in t.getmembers())
    with tarfile.open(tarball) as t:
        want = sorted(m.name for m in t.getmembers())
    eq(names, want, "members of the tar made from the mount")


def t_data_roundtrip():
    need("write")
    rnd = random.Random(SEED)
    for size in (1, 4095, 65536, 65537, (1 << 20) + 3, 3 * (1 << 20) + 17):
        data = rnd.randbytes(size)
        f = p("data-%d" % size)
        with open(f, "wb") as fh:
            fh.write(data)
        eq(os.stat(f).st_size, size, "size after close")
        with open(f, "rb") as fh:
            got = fh.read()
        assert got == data, "content of %d bytes differs (seed %d)" % (size, SEED)
        with open(f, "rb") as fh:
            fh.seek(size // 2)
            eq(fh.read(100), data[size // 2:size // 2 + 100], "read at an offset")
        os.unlink(f)


def resident_pages(path):
    """Pages of path in the page cache (fincore opens the file: an open)."""
    r = subprocess.run(["fincore", "--raw", "--noheadings", "--output", "PAGES", path],
                       capture_output=True, text=True)
    assert r.returncode == 0, "fincore %s: %s" % (path, r.stderr.strip())
    return int(r.stdout.split()[0])


def t_data_two_mounts():
    """Close-to-open between mounts: an open after the other mount's close
    reads what it wrote, at once, whatever the caches hold; an open of an
    unchanged file keeps the page cache (keep_cache)."""
    need("write")
    if not shutil.which("fincore"):
        raise Skip("fincore (util-linux) is not installed")
    m2 = mnt2()
    rnd = random.Random(SEED + 2)
    a, b = rnd.randbytes(3 << 20), rnd.randbytes(3 << 20)
    f, f2 = p("c2o"), os.path.join(m2, "c2o")
    with open(f, "wb") as fh:
        fh.write(a)
    with open(f2, "rb") as fh:
        assert fh.read() == a, "mount 2 reads what mount 1 closed"
    assert resident_pages(f2) > 0, "an open of an unchanged file emptied its cache"
    with open(f2, "rb") as fh:
        assert fh.read() == a, "mount 2 reads its cache"
    with open(f, "r+b") as fh:      # same size: only mtime and ctime change
        fh.write(b)
    with open(f2, "rb") as fh:
        assert fh.read() == b, "mount 2 after mount 1 overwrote the file (seed %d)" % SEED
    with open(f, "ab") as fh:       # larger than mount 2's cached attributes say
        fh.write(a[:12345])
    with open(f2, "rb") as fh:
        got = fh.read()
    eq(len(got), len(b) + 12345, "length read by mount 2 after mount 1 appended")
    assert got == b + a[:12345], "mount 2 after mount 1 appended (seed %d)" % SEED
    with open(f2, "r+b") as fh:     # and the other way round
        fh.seek(100)
        fh.write(b"mount two")
    with open(f, "rb") as fh:
        fh.seek(100)
        eq(fh.read(9), b"mount two", "mount 1 after mount 2 wrote")
    os.unlink(f)


def t_data_append():
    need("write")
    f = p("grow")
    with open(f, "wb") as fh:
        fh.write(b"hello ")
        os.fsync(fh.fileno())
    with open(f, "ab") as fh:
        fh.write(b"world")
    with open(f, "rb") as fh:
        eq(fh.read(), b"hello world", "after append")
    with open(f, "ab") as fh:
        fh.write(b"!")
    eq(os.stat(f).st_size, 12, "size after a second append")


def t_data_fallocate():
    """fallocate: mode 0 extends the size (zeros), KEEP_SIZE keeps it,
    punching a hole is EOPNOTSUPP; a read-only descriptor is EBADF."""
    p = os.path.join(MNT, "falloc")
    with open(p, "wb") as f:
        f.write(b"x" * 1000)
    fd = os.open(p, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, 300000)
        eq(os.fstat(fd).st_size, 300000, "size after fallocate")
        eq(os.pread(fd, 10, 299990), b"\0" * 10, "the extension reads as zeros")
        eq(os.pread(fd, 4, 0), b"xxxx", "the data before stays")
        keep, punch = 0x01, 0x02
        if libc.fallocate(fd, keep, ctypes.c_long(0), ctypes.c_long(10 << 20)) != 0:
            raise OSError(ctypes.get_errno(), "fallocate KEEP_SIZE")
        eq(os.fstat(fd).st_size, 300000, "size after KEEP_SIZE")
        rc = libc.fallocate(fd, punch | keep, ctypes.c_long(0), ctypes.c_long(4096))
        eq((rc, ctypes.get_errno()), (-1, errno.EOPNOTSUPP), "punching a hole")
    finally:
        os.close(fd)
    fd = os.open(p, os.O_RDONLY)
    try:
        expect_errno(errno.EBADF, os.posix_fallocate, fd, 0, 400000)
    finally:
        os.close(fd)
    os.unlink(p)


def t_data_truncate():
    need("write")
    f = p("shrink")
    with open(f, "wb") as fh:
        fh.write(b"hello world")
    os.truncate(f, 5)
    with open(f, "rb") as fh:
        eq(fh.read(), b"hello", "after truncate")
    os.truncate(f, 8)
    with open(f, "rb") as fh:
        eq(fh.read(), b"hello\0\0\0", "after extending truncate")
    with open(f, "r+b") as fh:
        fh.truncate(2)
        fh.seek(0)
        fh.write(b"HE")
    with open(f, "rb") as fh:
        eq(fh.read(), b"HE", "after ftruncate and write")
    with open(f, "wb") as fh:           # O_TRUNC
        fh.write(b"new")
    with open(f, "rb") as fh:
        eq(fh.read(), b"new", "after O_TRUNC")


def t_data_unlinked_open_file():
    need("write")
    f = p("orphan")
    with open(f, "wb") as fh:
        fh.write(b"still here")
    with open(f, "rb") as fh:
        os.unlink(f)
        eq(fh.read(), b"still here", "read after unlink")
    expect_errno(errno.ENOENT, os.stat, f)


def settled_inodes():
    """The inodes in use once the count holds still for 0.3 s (at most 5 s)."""
    last, since = os.statvfs(MNT).f_files, time.monotonic()
    deadline = since + 5
    while time.monotonic() - since < 0.3 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = os.statvfs(MNT).f_files
        if now != last:
            last, since = now, time.monotonic()
    return last


def t_data_released_files_are_freed():
    """Every close's RELEASE reaches the masters (the mount sends them in
    batches): files unlinked after their last close, or closed after their
    unlink, are freed, and the inode count (f_files) drops back."""
    need("write")
    before = settled_inodes()           # the checks before may still release
    names = [p("released%d" % i) for i in range(20)]
    for name in names:
        with open(name, "wb") as fh:
            fh.write(b"x" * 100)
    handles = [open(name, "rb") for name in names]
    for name in names[:10]:
        os.unlink(name)                 # still open: orphans until closed
    for fh in handles:
        fh.close()
    for name in names[10:]:
        os.unlink(name)
    deadline = time.monotonic() + 10
    while os.statvfs(MNT).f_files != before and time.monotonic() < deadline:
        time.sleep(0.05)
    eq(os.statvfs(MNT).f_files, before, "inodes in use after the unlinks and closes")


def t_data_tar_files():
    need("write")
    rnd = random.Random(SEED + 1)
    src = os.path.join(WORK, "dtree")
    os.makedirs(os.path.join(src, "x", "y"))
    for i in range(30):
        with open(os.path.join(src, "x" if i % 2 else "x/y", "f%d" % i), "wb") as fh:
            fh.write(rnd.randbytes(rnd.randrange(0, 200000)))
    tarball = os.path.join(WORK, "dtree.tar")
    with tarfile.open(tarball, "w") as t:
        t.add(src, arcname="dtree")
    os.mkdir(p("dtar"))
    r = subprocess.run(["tar", "xf", tarball, "-C", p("dtar")], capture_output=True,
                       text=True, timeout=60)
    eq(r.returncode, 0, "tar x exit status (%s)" % r.stderr.strip())
    eq(listing(p("dtar", "dtree")), listing(src), "tree with data listed back")
    r = subprocess.run(["diff", "-r", src, p("dtar", "dtree")], capture_output=True,
                       text=True, timeout=60)
    eq(r.returncode, 0, "diff -r (seed %d): %s" % (SEED, r.stdout[:300]))
    # Contents, modes, owners and mtimes as the archive holds them.
    r = subprocess.run(["tar", "--compare", "-f", tarball, "-C", p("dtar")],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, "tar --compare: %s" % (r.stdout + r.stderr)[:300])


def t_mount_alive():
    """The daemon is still serving (no crash, no strict-mode abort)."""
    assert os.path.ismount(MNT), "no longer mounted"
    os.listdir(MNT)


CHECKS = [
    # the namespace
    t_mkdir_rmdir, t_mknod_stat_unlink, t_rename, t_renameat2, t_link_counts,
    t_symlink_readlink, t_chmod_chown, t_utime, t_utime_after_write, t_mkfifo,
    t_readdir_2000, t_parallel, t_ls_la, t_statfs, t_fsyncdir,
    t_permissions_nobody, t_bad_mounts, t_mount_helper,
    # extended attributes and locks
    t_xattr_file, t_xattr_dir, t_xattr_namespaces, t_xattr_two_mounts,
    t_lock_posix_conflict, t_lock_setlkw_waits, t_lock_setlkw_interrupted,
    t_lock_upgrade_interrupted, t_lock_many_waiters, t_lock_holder_killed, t_lock_close_releases, t_lock_flock, t_lock_two_mounts,
    # the data path
    t_create_open, t_tar_empty_tree, t_data_roundtrip, t_data_append,
    t_data_two_mounts, t_data_truncate, t_data_fallocate, t_data_unlinked_open_file,
    t_data_released_files_are_freed, t_data_tar_files,
    t_mount_alive,
]


def main():
    os.umask(0)
    print("posix: seed %d (replay: --seed %d)" % (SEED, SEED), flush=True)
    only = os.environ.get("POSIX_ONLY")
    for fn in CHECKS:
        if not only or fn.__name__.removeprefix("t_") in only.split(","):
            check(fn)
    log = os.environ.get("POSIX_MOUNT_LOG")
    if results["fail"] and log and os.path.exists(log):
        with open(log, errors="replace") as f:
            tail = f.readlines()[-20:]
        print("posix: last lines of the mount log %s:" % log)
        sys.stdout.writelines(tail)
    if results["skip"]:
        print("posix: %d skipped (reasons above)" % results["skip"], flush=True)
    print("posix: %d passed, %d failed" % (results["pass"], results["fail"]),
          flush=True)
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
