/*
 * Tests of the power-cut backend (fsio_cut_new, common/fsio_cut.c): the
 * POSIX behaviour the other backends share (the contract checks of
 * test_fsio.c, a random differential run against the real backend), and
 * its durability: after a "power cut" (fsio_free, or a child process
 * killed with SIGKILL) the real directory holds exactly what the model
 * of docs/DURABILITY.md made durable.  For files this is compared with the
 * simulator's DROP_ALL outcome under the same random operations.
 * Randomized tests print their seeds; FSIO_SEED=N replays one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsio.h"

/* Seed of the randomized case running, printed by CHECK on failure. */
static uint64_t cur_seed;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            print_error("%s:%d: seed %" PRIu64 ": %s\n", __FILE__,          \
                        __LINE__, cur_seed, #cond);                         \
            fail();                                                         \
        }                                                                   \
    } while (0)

/* Seeds first..last, or just $FSIO_SEED when set. */
static void seed_range(const char *test, uint64_t *first, uint64_t *last)
{
    const char *env = getenv("FSIO_SEED");
    if (env) {
        *first = *last = strtoull(env, NULL, 0);
    }
    print_message("%s: seeds %" PRIu64 "-%" PRIu64
                  " (FSIO_SEED=N replays one)\n", test, *first, *last);
}

static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* root + "/" + rel in one of a few rotating buffers. */
static const char *P(const char *root, const char *rel)
{
    static char bufs[8][512];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", root, rel);
    return b;
}

static struct fsio *new_cut(void)
{
    struct fsio *fs = fsio_cut_new();
    assert_non_null(fs);
    return fs;
}

/* The power cut: everything not durable is dropped with the handle. */
static struct fsio *power_cut(struct fsio *fs)
{
    fsio_free(fs);
    return new_cut();
}

/* Creates or replaces path with data; syncs the data when sync is set. */
static void put_file(struct fsio *fs, const char *path, const void *data,
                     size_t len, bool sync)
{
    int fd = fsio_open(fs, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, data, len, 0), (ssize_t)len);
    if (sync)
        assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_close(fs, fd), 0);
}

/* Whether path holds exactly data. */
static bool file_is(struct fsio *fs, const char *path, const void *data,
                    size_t len)
{
    void *got;
    size_t n;
    if (fsio_read_file(fs, path, 1 << 20, &got, &n) < 0)
        return false;
    bool same = n == len && memcmp(got, data, len) == 0;
    free(got);
    return same;
}

static bool exists(struct fsio *fs, const char *path)
{
    struct fsio_stat st;
    return fsio_stat(fs, path, &st) == 0;
}

/* What the disk holds, read with the plain POSIX calls. */
static bool disk_is(const char *path, const char *data)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    return n == (ssize_t)strlen(data) && memcmp(buf, data, (size_t)n) == 0;
}

static bool disk_has(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A fresh scratch directory for each test, on tmpfs when there is one
 * (the backend fsyncs for real). */
static char scratch[64];

static int scratch_setup(void **state)
{
    (void)state;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof(scratch), "%s/dfs-test-fsio-cut-XXXXXX", base);
    return mkdtemp(scratch) ? 0 : -1;
}

static int scratch_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

/* ======================================================================== */
/* POSIX behaviour: the contract checks of test_fsio.c                      */
/* ======================================================================== */

static void check_file_calls(struct fsio *fs, const char *root)
{
    const char *f = P(root, "f");
    char buf[64];
    uint64_t size;

    assert_int_equal(fsio_open(fs, f, O_RDWR, 0), -ENOENT);
    assert_int_equal(fsio_open(fs, f, O_RDWR | O_CREAT | O_APPEND, 0644),
                     -EINVAL);
    assert_int_equal(fsio_open(fs, f, O_RDONLY | O_TRUNC, 0), -EINVAL);
    assert_int_equal(fsio_open(fs, f, O_RDWR | O_EXCL, 0), -EINVAL);
    assert_int_equal(fsio_open(fs, f, 3, 0), -EINVAL);

    int fd = fsio_open(fs, f, O_RDWR | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fsio_open(fs, f, O_RDWR | O_CREAT | O_EXCL, 0644),
                     -EEXIST);
    assert_int_equal(fsio_pwrite(fs, fd, "hello", 5, 0), 5);
    assert_int_equal(fsio_pwrite(fs, fd, "world", 5, 10), 5);
    assert_int_equal(fsio_pwrite(fs, fd, "", 0, 100), 0);
    assert_int_equal(fsio_size(fs, fd, &size), 0);
    assert_int_equal(size, 15);
    assert_int_equal(fsio_pread(fs, fd, buf, sizeof(buf), 0), 15);
    assert_memory_equal(buf, "hello\0\0\0\0\0world", 15);
    assert_int_equal(fsio_pread(fs, fd, buf, 10, 12), 3);
    assert_memory_equal(buf, "rld", 3);
    assert_int_equal(fsio_pread(fs, fd, buf, 10, 100), 0);
    assert_int_equal(fsio_pwrite(fs, fd, "x", 1, -1), -EINVAL);
    assert_int_equal(fsio_pread(fs, fd, buf, 1, -1), -EINVAL);

    assert_int_equal(fsio_ftruncate(fs, fd, 3), 0);
    assert_int_equal(fsio_ftruncate(fs, fd, 6), 0);
    assert_int_equal(fsio_pread(fs, fd, buf, sizeof(buf), 0), 6);
    assert_memory_equal(buf, "hel\0\0\0", 6);
    assert_int_equal(fsio_ftruncate(fs, fd, UINT64_MAX), -EINVAL);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_fsync(fs, fd), 0);
    assert_int_equal(fsio_close(fs, fd), 0);

    assert_int_equal(fsio_close(fs, fd), -EBADF);
    assert_int_equal(fsio_pwrite(fs, fd, "x", 1, 0), -EBADF);
    assert_int_equal(fsio_pread(fs, fd, buf, 1, 0), -EBADF);
    assert_int_equal(fsio_fdatasync(fs, fd), -EBADF);
    assert_int_equal(fsio_size(fs, fd, &size), -EBADF);
    assert_int_equal(fsio_ftruncate(fs, fd, 0), -EBADF);
    assert_int_equal(fsio_close(fs, -1), -EBADF);

    fd = fsio_open(fs, f, O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, "x", 1, 0), -EBADF);
    assert_int_equal(fsio_ftruncate(fs, fd, 0), -EINVAL);
    assert_int_equal(fsio_close(fs, fd), 0);
    fd = fsio_open(fs, f, O_WRONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pread(fs, fd, buf, 1, 0), -EBADF);
    assert_int_equal(fsio_close(fs, fd), 0);
    fd = fsio_open(fs, f, O_WRONLY | O_TRUNC, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_size(fs, fd, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(fsio_close(fs, fd), 0);

    struct fsio_stat st;
    assert_int_equal(fsio_stat(fs, f, &st), 0);
    assert_false(st.is_dir);
    assert_int_equal(fsio_stat(fs, root[0] ? root : "/", &st), 0);
    assert_true(st.is_dir);
    assert_int_equal(st.size, 0);
    assert_int_equal(fsio_stat(fs, P(root, "nope"), &st), -ENOENT);
    assert_int_equal(fsio_stat(fs, P(root, "f/x"), &st), -ENOTDIR);
    assert_int_equal(fsio_open(fs, P(root, "f/x"), O_RDONLY, 0), -ENOTDIR);
    assert_int_equal(fsio_mkdir(fs, P(root, "dir"), 0755), 0);
    assert_int_equal(fsio_open(fs, P(root, "dir"), O_RDONLY, 0), -EISDIR);
    assert_int_equal(fsio_open(fs, P(root, "dir"), O_RDWR, 0), -EISDIR);
    assert_int_equal(fsio_rmdir(fs, P(root, "dir")), 0);
    assert_int_equal(fsio_unlink(fs, f), 0);
}

static int collect(const char *name, void *arg)
{
    char *out = arg;
    strcat(out, name);
    strcat(out, ",");
    return 0;
}

static int stop_at_b(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "b") == 0 ? 42 : 0;
}

static void check_name_calls(struct fsio *fs, const char *root)
{
    char list[256] = "";
    assert_int_equal(fsio_mkdir(fs, P(root, "d"), 0755), 0);
    assert_int_equal(fsio_mkdir(fs, P(root, "d"), 0755), -EEXIST);
    assert_int_equal(fsio_mkdir(fs, P(root, "no/x"), 0755), -ENOENT);
    put_file(fs, P(root, "d/c"), "C", 1, false);
    put_file(fs, P(root, "d/a"), "A", 1, false);
    put_file(fs, P(root, "d/b"), "B", 1, false);
    assert_int_equal(fsio_mkdir(fs, P(root, "d/a/x"), 0755), -ENOTDIR);

    assert_int_equal(fsio_list_dir(fs, P(root, "d"), collect, list), 0);
    assert_string_equal(list, "a,b,c,");
    assert_int_equal(fsio_list_dir(fs, P(root, "d"), stop_at_b, NULL), 42);
    assert_int_equal(fsio_list_dir(fs, P(root, "no"), collect, list), -ENOENT);
    assert_int_equal(fsio_list_dir(fs, P(root, "d/a"), collect, list),
                     -ENOTDIR);

    assert_int_equal(fsio_rmdir(fs, P(root, "d")), -ENOTEMPTY);
    assert_int_equal(fsio_rmdir(fs, P(root, "d/a")), -ENOTDIR);
    assert_int_equal(fsio_rmdir(fs, P(root, "no")), -ENOENT);
    assert_int_equal(fsio_unlink(fs, P(root, "d")), -EISDIR);
    assert_int_equal(fsio_unlink(fs, P(root, "no")), -ENOENT);

    assert_int_equal(fsio_mkdir(fs, P(root, "e"), 0755), 0);
    assert_int_equal(fsio_rename(fs, P(root, "no"), P(root, "x")), -ENOENT);
    assert_int_equal(fsio_rename(fs, P(root, "d/a"), P(root, "e")), -EISDIR);
    assert_int_equal(fsio_rename(fs, P(root, "e"), P(root, "d/a")), -ENOTDIR);
    assert_int_equal(fsio_rename(fs, P(root, "e"), P(root, "d")), -ENOTEMPTY);
    assert_int_equal(fsio_rename(fs, P(root, "d"), P(root, "d/sub")), -EINVAL);
    assert_int_equal(fsio_rename(fs, P(root, "d/a"), P(root, "no/x")), -ENOENT);
    assert_int_equal(fsio_rename(fs, P(root, "d/a"), P(root, "d/a")), 0);
    assert_int_equal(fsio_rename(fs, P(root, "d/a"), P(root, "d/z")), 0);
    assert_int_equal(fsio_rename(fs, P(root, "d/b"), P(root, "d/c")), 0);
    assert_true(file_is(fs, P(root, "d/c"), "B", 1));
    assert_true(file_is(fs, P(root, "d/z"), "A", 1));
    assert_false(exists(fs, P(root, "d/a")));
    assert_int_equal(fsio_rename(fs, P(root, "d/z"), P(root, "e/z")), 0);
    list[0] = '\0';
    assert_int_equal(fsio_list_dir(fs, P(root, "d"), collect, list), 0);
    assert_string_equal(list, "c,");

    assert_int_equal(fsio_fsync_dir(fs, P(root, "d")), 0);
    assert_int_equal(fsio_fsync_dir(fs, P(root, "d/c")), -ENOTDIR);
    assert_int_equal(fsio_fsync_dir(fs, P(root, "no")), -ENOENT);

    /* An unlinked file stays readable through an fd opened before. */
    int fd = fsio_open(fs, P(root, "d/c"), O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_unlink(fs, P(root, "d/c")), 0);
    char b = 0;
    assert_int_equal(fsio_pread(fs, fd, &b, 1, 0), 1);
    assert_int_equal(b, 'B');
    assert_int_equal(fsio_close(fs, fd), 0);

    uint64_t total = 0, avail = UINT64_MAX;
    assert_int_equal(fsio_space(fs, P(root, "d"), &total, &avail), 0);
    assert_true(total > 0 && avail <= total);
    assert_int_equal(fsio_space(fs, P(root, "no"), &total, &avail), -ENOENT);

    assert_int_equal(fsio_unlink(fs, P(root, "e/z")), 0);
    assert_int_equal(fsio_rmdir(fs, P(root, "e")), 0);
    assert_int_equal(fsio_rmdir(fs, P(root, "d")), 0);
}

static void check_whole_files(struct fsio *fs, const char *root)
{
    void *data;
    size_t len;
    assert_int_equal(fsio_write_file_atomic(fs, root[0] ? root : "/", "v",
                                            "one", 3), 0);
    assert_int_equal(fsio_read_file(fs, P(root, "v"), 100, &data, &len), 0);
    assert_int_equal(len, 3);
    assert_string_equal(data, "one");   /* NUL-terminated */
    free(data);
    assert_int_equal(fsio_write_file_atomic(fs, root[0] ? root : "/", "v",
                                            "second", 6), 0);
    assert_true(file_is(fs, P(root, "v"), "second", 6));
    assert_int_equal(fsio_read_file(fs, P(root, "v"), 5, &data, &len),
                     -EFBIG);
    assert_int_equal(fsio_read_file(fs, P(root, "none"), 5, &data, &len),
                     -ENOENT);
    assert_int_equal(fsio_write_file_atomic(fs, root, "a/b", "x", 1), -EINVAL);
    assert_int_equal(fsio_write_file_atomic(fs, root, "", "x", 1), -EINVAL);
    assert_int_equal(fsio_write_file_atomic(fs, P(root, "nodir"), "v", "x", 1),
                     -ENOENT);
    char list[256] = "";
    assert_int_equal(fsio_list_dir(fs, root[0] ? root : "/", collect, list), 0);
    assert_string_equal(list, "v,");    /* no temp file left behind */
    assert_int_equal(fsio_unlink(fs, P(root, "v")), 0);
}

/* ---- the two backends side by side -------------------------------------- */

#define DIFF_SLOTS 6

struct diff_side {
    struct fsio *fs;
    const char *root;
    int fds[DIFF_SLOTS];
};

static const char *const diff_names[] = {
    "a", "b", "d", "e", "d/a", "d/b", "d/e", "e/a", "d/e/a",
};
#define NNAMES (sizeof(diff_names) / sizeof(diff_names[0]))

/* One random operation on one side; the result is a number and, for
 * reads and lists, text in out. */
static long diff_op(struct diff_side *d, uint64_t r, char *out, size_t outlen)
{
    static const int open_flags[] = {
        O_RDONLY, O_RDWR, O_WRONLY | O_CREAT, O_RDWR | O_CREAT | O_EXCL,
        O_RDWR | O_CREAT | O_TRUNC,
    };
    unsigned slot = (unsigned)(r >> 8) % DIFF_SLOTS;
    const char *a = P(d->root, diff_names[(r >> 16) % NNAMES]);
    const char *b = P(d->root, diff_names[(r >> 24) % NNAMES]);
    uint64_t off = (r >> 32) % 48, len = (r >> 40) % 24;
    char data[32];
    int fd = d->fds[slot];
    long rc;
    out[0] = '\0';
    memset(data, 'a' + (int)(r >> 48) % 26, sizeof(data));
    switch (r % 13) {
    case 0:
        if (fd >= 0)
            fsio_close(d->fs, fd);
        rc = fsio_open(d->fs, a, open_flags[(r >> 56) % 5], 0644);
        d->fds[slot] = rc >= 0 ? (int)rc : -1;
        return rc >= 0 ? 0 : rc;
    case 1:
        rc = fd >= 0 ? fsio_close(d->fs, fd) : 0;
        d->fds[slot] = -1;
        return rc;
    case 2:
    case 3:
        return fd < 0 ? 0 : fsio_pwrite(d->fs, fd, data, len, (off_t)off);
    case 4:
        rc = fd < 0 ? 0 : fsio_pread(d->fs, fd, out, len, (off_t)off);
        for (long i = 0; i < rc; i++)
            out[i] = out[i] ? out[i] : '0';     /* text for strcmp */
        if (rc >= 0)
            out[rc] = '\0';
        return rc;
    case 5:
        return fd < 0 ? 0 : fsio_ftruncate(d->fs, fd, off);
    case 6:
        return fd < 0 ? 0 : fsio_fdatasync(d->fs, fd);
    case 7:
        return fsio_rename(d->fs, a, b);
    case 8:
        return fsio_unlink(d->fs, a);
    case 9:
        return fsio_mkdir(d->fs, a, 0755);
    case 10:
        return fsio_rmdir(d->fs, a);
    case 11: {
        struct fsio_stat st;
        rc = fsio_stat(d->fs, a, &st);
        return rc < 0 ? rc : st.is_dir ? -1000 : (long)st.size;
    }
    default:
        if (outlen < 256)
            return -1;
        return fsio_list_dir(d->fs, a, collect, out);
    }
}

static const char *const op_names[] = {
    "open", "close", "write", "write", "read", "truncate", "sync", "rename",
    "unlink", "mkdir", "rmdir", "stat", "list",
};

struct tree_walk {
    struct fsio *fs;
    const char *dir;
};

static int remove_tree(struct fsio *fs, const char *path);

static int remove_child(const char *name, void *arg)
{
    struct tree_walk *w = arg;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    return remove_tree(w->fs, path);
}

/* rm -r path through fsio (renames may have nested directories deeply). */
static int remove_tree(struct fsio *fs, const char *path)
{
    struct fsio_stat st;
    int rc = fsio_stat(fs, path, &st);
    if (rc < 0 || !st.is_dir)
        return rc < 0 ? rc : fsio_unlink(fs, path);
    struct tree_walk w = { fs, path };
    rc = fsio_list_dir(fs, path, remove_child, &w);
    return rc < 0 ? rc : fsio_rmdir(fs, path);
}

static int remove_entry(const char *name, void *arg)
{
    struct diff_side *d = arg;
    return remove_tree(d->fs, P(d->root, name));
}


static void diff_cleanup(struct diff_side *d)
{
    for (unsigned i = 0; i < DIFF_SLOTS; i++)
        if (d->fds[i] >= 0)
            fsio_close(d->fs, d->fds[i]);
    memset(d->fds, -1, sizeof(d->fds));
    assert_int_equal(fsio_list_dir(d->fs, d->root[0] ? d->root : "/",
                                   remove_entry, d), 0);
}

/* A new empty directory under the scratch one, made with plain mkdir. */
static const char *fresh_dir(const char *name)
{
    static char bufs[4][128];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", scratch, name);
    assert_int_equal(mkdir(b, 0755), 0);
    return b;
}

static void test_cut_posix_contract(void **state)
{
    (void)state;
    const char *dir = fresh_dir("contract");
    struct fsio *fs = new_cut();
    check_file_calls(fs, dir);
    check_name_calls(fs, dir);
    check_whole_files(fs, dir);
    /* Everything was removed again; once durable the disk agrees. */
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    fsio_free(fs);
    assert_int_equal(rmdir(dir), 0);
}

/* Same random calls on the real backend and on the power-cut one: same
 * answers, same bytes, same listings; the cut backend's directory syncs
 * (interleaved, invisible to the caller) change nothing of that. */
static void test_cut_vs_real_differential(void **state)
{
    (void)state;
    uint64_t first = 1, last = 30;
    seed_range("cut vs real", &first, &last);
    const char *rdir = fresh_dir("diff-real"), *cdir = fresh_dir("diff-cut");
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        struct diff_side real = { fsio_real_new(), rdir, { 0 } };
        struct diff_side cut = { new_cut(), cdir, { 0 } };
        memset(real.fds, -1, sizeof(real.fds));
        memset(cut.fds, -1, sizeof(cut.fds));
        uint64_t x = cur_seed;
        for (int step = 0; step < 400; step++) {
            uint64_t r = rng_next(&x);
            char out_real[256], out_cut[256];
            if (r % 17 == 0) {
                const char *d = diff_names[(r >> 8) % NNAMES];
                long a = fsio_fsync_dir(real.fs, P(rdir, d));
                long b = fsio_fsync_dir(cut.fs, P(cdir, d));
                CHECK(a == b);
                continue;
            }
            long rc_real = diff_op(&real, r, out_real, sizeof(out_real));
            long rc_cut = diff_op(&cut, r, out_cut, sizeof(out_cut));
            if (rc_real != rc_cut || strcmp(out_real, out_cut) != 0)
                print_error("step %d: %s: real %ld \"%s\", cut %ld \"%s\"\n",
                            step, op_names[r % 13], rc_real, out_real, rc_cut,
                            out_cut);
            CHECK(rc_real == rc_cut);
            CHECK(strcmp(out_real, out_cut) == 0);
        }
        diff_cleanup(&real);
        diff_cleanup(&cut);
        /* The removals made durable leave the real directory empty. */
        CHECK(fsio_fsync_dir(cut.fs, cdir) == 0);
        fsio_free(cut.fs);
        fsio_free(real.fs);
        CHECK(rmdir(cdir) == 0 && mkdir(cdir, 0755) == 0);
    }
    assert_int_equal(rmdir(rdir), 0);
    assert_int_equal(rmdir(cdir), 0);
}

/* ---- after a power cut: the same as the simulator's DROP_ALL ------------ */

/* Appends "rel:size:sum;" (files) or "rel/;" (directories) for rel and
 * everything under it, in order; paths are relative to top. */
static void tree_dump(struct fsio *fs, const char *top, const char *rel,
                      char *out, size_t outlen);

struct dump_walk {
    struct fsio *fs;
    const char *top, *rel;
    char *out;
    size_t outlen;
};

static int dump_entry(const char *name, void *arg)
{
    struct dump_walk *w = arg;
    char rel[512];
    snprintf(rel, sizeof(rel), "%s/%s", w->rel, name);
    tree_dump(w->fs, w->top, rel, w->out, w->outlen);
    return 0;
}

static void tree_dump(struct fsio *fs, const char *top, const char *rel,
                      char *out, size_t outlen)
{
    char path[512];
    struct fsio_stat st;
    size_t used = strlen(out);
    snprintf(path, sizeof(path), "%s%s", top, rel);
    if (!path[0])
        strcpy(path, "/");
    assert_int_equal(fsio_stat(fs, path, &st), 0);
    if (st.is_dir) {
        struct dump_walk w = { fs, top, rel, out, outlen };
        snprintf(out + used, outlen - used, "%s/;", rel);
        assert_int_equal(fsio_list_dir(fs, path, dump_entry, &w), 0);
        return;
    }
    void *data;
    size_t len;
    unsigned sum = 0;
    assert_int_equal(fsio_read_file(fs, path, 1 << 20, &data, &len), 0);
    for (size_t i = 0; i < len; i++)
        sum = sum * 31 + ((unsigned char *)data)[i];
    free(data);
    snprintf(out + used, outlen - used, "%s:%zu:%x;", rel, len, sum);
}

static const char *const sync_dirs[] = { "", "d", "e" };
static const char *const file_names[] = { "a", "b", "d/a", "d/b", "e/a",
                                          "e/b" };
#define NFILES (sizeof(file_names) / sizeof(file_names[0]))

/* One random file operation in the fixed directories "", d and e. */
static long file_op(struct diff_side *d, uint64_t r, char *out)
{
    static const int open_flags[] = {
        O_RDONLY, O_RDWR, O_WRONLY | O_CREAT, O_RDWR | O_CREAT | O_EXCL,
        O_RDWR | O_CREAT | O_TRUNC,
    };
    unsigned slot = (unsigned)(r >> 8) % DIFF_SLOTS;
    const char *a = P(d->root, file_names[(r >> 16) % NFILES]);
    const char *b = P(d->root, file_names[(r >> 24) % NFILES]);
    uint64_t off = (r >> 32) % 48, len = (r >> 40) % 24;
    char data[32];
    int fd = d->fds[slot];
    long rc;
    out[0] = '\0';
    memset(data, 'a' + (int)(r >> 48) % 26, sizeof(data));
    switch (r % 11) {
    case 0:
        if (fd >= 0)
            fsio_close(d->fs, fd);
        rc = fsio_open(d->fs, a, open_flags[(r >> 56) % 5], 0644);
        d->fds[slot] = rc >= 0 ? (int)rc : -1;
        return rc >= 0 ? 0 : rc;
    case 1:
        rc = fd >= 0 ? fsio_close(d->fs, fd) : 0;
        d->fds[slot] = -1;
        return rc;
    case 2:
    case 3:
        return fd < 0 ? 0 : fsio_pwrite(d->fs, fd, data, len, (off_t)off);
    case 4:
        rc = fd < 0 ? 0 : fsio_pread(d->fs, fd, out, len, (off_t)off);
        for (long i = 0; i < rc; i++)
            out[i] = out[i] ? out[i] : '0';
        if (rc >= 0)
            out[rc] = '\0';
        return rc;
    case 5:
        return fd < 0 ? 0 : fsio_ftruncate(d->fs, fd, off);
    case 6:
        return fd < 0 ? 0 : fsio_fdatasync(d->fs, fd);
    case 7:
        return fsio_rename(d->fs, a, b);
    case 8:
        return fsio_unlink(d->fs, a);
    case 9:
        return fsio_fsync_dir(d->fs, P(d->root, sync_dirs[(r >> 16) % 3]));
    default:
        return fsio_list_dir(d->fs, P(d->root, sync_dirs[(r >> 16) % 3]),
                             collect, out);
    }
}

/* Runs ops on the cut backend over dir and on the simulator; at random
 * points cuts the power on both and compares what is left. */
static void test_cut_crash_vs_sim_files(void **state)
{
    (void)state;
    static char dump_sim[8192], dump_cut[8192];
    uint64_t first = 1, last = 60;
    unsigned crashes = 0, survivors = 0;
    seed_range("cut crash vs sim", &first, &last);
    const char *dir = fresh_dir("crash-files");
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        struct diff_side cut = { new_cut(), dir, { 0 } };
        struct diff_side sim = { fsio_sim_new(), "", { 0 } };
        memset(cut.fds, -1, sizeof(cut.fds));
        memset(sim.fds, -1, sizeof(sim.fds));
        for (int i = 1; i < 3; i++) {
            CHECK(fsio_mkdir(cut.fs, P(dir, sync_dirs[i]), 0755) == 0);
            CHECK(fsio_mkdir(sim.fs, P("", sync_dirs[i]), 0755) == 0);
        }
        CHECK(fsio_fsync_dir(cut.fs, dir) == 0);
        CHECK(fsio_fsync_dir(sim.fs, "/") == 0);
        uint64_t x = cur_seed;
        for (int step = 0; step < 300; step++) {
            uint64_t r = rng_next(&x);
            char out_cut[256], out_sim[256];
            if (r % 29 == 0 || step == 299) {
                cut.fs = power_cut(cut.fs);
                CHECK(fsio_sim_crash(sim.fs, FSIO_CRASH_DROP_ALL, r) == 0);
                memset(cut.fds, -1, sizeof(cut.fds));
                memset(sim.fds, -1, sizeof(sim.fds));
                dump_sim[0] = dump_cut[0] = '\0';
                tree_dump(sim.fs, "", "", dump_sim, sizeof(dump_sim));
                tree_dump(cut.fs, dir, "", dump_cut, sizeof(dump_cut));
                if (strcmp(dump_sim, dump_cut) != 0)
                    print_error("step %d: after the cut\n sim %s\n cut %s\n",
                                step, dump_sim, dump_cut);
                CHECK(strcmp(dump_sim, dump_cut) == 0);
                crashes++;
                survivors += strchr(dump_cut, ':') != NULL;
                continue;
            }
            long rc_cut = file_op(&cut, r >> 5, out_cut);
            long rc_sim = file_op(&sim, r >> 5, out_sim);
            CHECK(rc_cut == rc_sim);
            CHECK(strcmp(out_cut, out_sim) == 0);
        }
        fsio_free(sim.fs);
        fsio_free(cut.fs);
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", dir);
        CHECK(system(cmd) == 0);
    }
    print_message("cut crash vs sim: %u cuts, %u left files behind\n",
                  crashes, survivors);
    assert_true(survivors > 0);
}

/* fsync_dir of every directory in the tree, parents first. */
static void sync_tree(struct fsio *fs, const char *path);

static int sync_child(const char *name, void *arg)
{
    struct tree_walk *w = arg;
    char path[512];
    struct fsio_stat st;
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    if (fsio_stat(w->fs, path, &st) == 0 && st.is_dir)
        sync_tree(w->fs, path);
    return 0;
}

static void sync_tree(struct fsio *fs, const char *path)
{
    struct tree_walk w = { fs, path };
    const char *p = path[0] ? path : "/";
    CHECK(fsio_fsync_dir(fs, p) == 0);
    CHECK(fsio_list_dir(fs, p, sync_child, &w) == 0);
}

/*
 * As above with directories made, removed and renamed too.  The two
 * backends commit directory operations differently (a barrier here, see
 * fsio_cut.c), so every directory is synced before and after each
 * operation that may change one; the file operations between stay
 * pending and must come out of the cut the same on both.
 */
static void test_cut_crash_vs_sim_dirs(void **state)
{
    (void)state;
    static char dump_sim[16384], dump_cut[16384];
    uint64_t first = 1, last = 60;
    unsigned crashes = 0, dirs_left = 0;
    seed_range("cut crash vs sim, directories", &first, &last);
    const char *dir = fresh_dir("crash-dirs");
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        struct diff_side cut = { new_cut(), dir, { 0 } };
        struct diff_side sim = { fsio_sim_new(), "", { 0 } };
        memset(cut.fds, -1, sizeof(cut.fds));
        memset(sim.fds, -1, sizeof(sim.fds));
        uint64_t x = cur_seed;
        for (int step = 0; step < 300; step++) {
            uint64_t r = rng_next(&x);
            char out_cut[256], out_sim[256];
            if (r % 31 == 0 || step == 299) {
                cut.fs = power_cut(cut.fs);
                CHECK(fsio_sim_crash(sim.fs, FSIO_CRASH_DROP_ALL, r) == 0);
                memset(cut.fds, -1, sizeof(cut.fds));
                memset(sim.fds, -1, sizeof(sim.fds));
                dump_sim[0] = dump_cut[0] = '\0';
                tree_dump(sim.fs, "", "", dump_sim, sizeof(dump_sim));
                tree_dump(cut.fs, dir, "", dump_cut, sizeof(dump_cut));
                if (strcmp(dump_sim, dump_cut) != 0)
                    print_error("step %d: after the cut\n sim %s\n cut %s\n",
                                step, dump_sim, dump_cut);
                CHECK(strcmp(dump_sim, dump_cut) == 0);
                crashes++;
                dirs_left += strstr(dump_cut, "/;/") != NULL;
                continue;
            }
            unsigned kind = (unsigned)((r >> 5) % 13);
            bool dir_op = kind == 7 || kind == 9 || kind == 10;
            if (dir_op) {
                sync_tree(cut.fs, dir);
                sync_tree(sim.fs, "");
            }
            long rc_cut = diff_op(&cut, r >> 5, out_cut, sizeof(out_cut));
            long rc_sim = diff_op(&sim, r >> 5, out_sim, sizeof(out_sim));
            CHECK(rc_cut == rc_sim);
            CHECK(strcmp(out_cut, out_sim) == 0);
            if (dir_op) {
                sync_tree(cut.fs, dir);
                sync_tree(sim.fs, "");
            }
        }
        fsio_free(sim.fs);
        fsio_free(cut.fs);
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", dir);
        CHECK(system(cmd) == 0);
    }
    print_message("cut crash vs sim, directories: %u cuts, %u left "
                  "directories behind\n", crashes, dirs_left);
    assert_true(dirs_left > 0);
}

/* ======================================================================== */
/* the durability rules, one by one                                         */
/* ======================================================================== */

/* While the process runs, the disk already holds only what is durable. */
static void test_disk_holds_only_durable(void **state)
{
    (void)state;
    const char *dir = fresh_dir("durable");
    struct fsio *fs = new_cut();
    put_file(fs, P(dir, "f"), "old", 3, true);
    assert_false(disk_has(P(dir, "f")));            /* name not synced */
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    assert_true(disk_is(P(dir, "f"), "old"));

    int fd = fsio_open(fs, P(dir, "f"), O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, "NEW!", 4, 0), 4);
    assert_true(file_is(fs, P(dir, "f"), "NEW!", 4));  /* the process sees */
    assert_true(disk_is(P(dir, "f"), "old"));          /* the disk does not */
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_true(disk_is(P(dir, "f"), "NEW!"));
    assert_int_equal(fsio_ftruncate(fs, fd, 2), 0);
    assert_int_equal(fsio_pwrite(fs, fd, "x", 1, 5), 1);
    char buf[16];
    assert_int_equal(fsio_pread(fs, fd, buf, sizeof(buf), 0), 6);
    assert_memory_equal(buf, "NE\0\0\0x", 6);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_true(disk_is(P(dir, "f"), "NEW!"));

    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "f"), "NEW!", 4));
    fsio_free(fs);
}

static void test_create_needs_dir_sync(void **state)
{
    (void)state;
    const char *dir = fresh_dir("create");
    struct fsio *fs = new_cut();
    put_file(fs, P(dir, "f"), "data", 4, true);     /* data synced, name not */
    fs = power_cut(fs);
    assert_false(exists(fs, P(dir, "f")));
    /* The name synced and the data not: an empty file. */
    put_file(fs, P(dir, "f"), "data", 4, false);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "f"), "", 0));
    /* Both: the file and its bytes. */
    put_file(fs, P(dir, "g"), "data", 4, true);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "g"), "data", 4));
    fsio_free(fs);
}

static void test_rename_needs_dir_sync(void **state)
{
    (void)state;
    const char *dir = fresh_dir("rename");
    struct fsio *fs = new_cut();
    put_file(fs, P(dir, "a"), "old-a", 5, true);
    put_file(fs, P(dir, "b"), "old-b", 5, true);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    assert_int_equal(fsio_rename(fs, P(dir, "a"), P(dir, "b")), 0);
    assert_false(exists(fs, P(dir, "a")));
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "a"), "old-a", 5));  /* undone */
    assert_true(file_is(fs, P(dir, "b"), "old-b", 5));

    assert_int_equal(fsio_rename(fs, P(dir, "a"), P(dir, "b")), 0);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    fs = power_cut(fs);
    assert_false(exists(fs, P(dir, "a")));
    assert_true(file_is(fs, P(dir, "b"), "old-a", 5));

    /* Unlink too: undone without the directory sync. */
    assert_int_equal(fsio_unlink(fs, P(dir, "b")), 0);
    fs = power_cut(fs);
    assert_true(exists(fs, P(dir, "b")));
    assert_int_equal(fsio_unlink(fs, P(dir, "b")), 0);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    fs = power_cut(fs);
    assert_false(exists(fs, P(dir, "b")));
    fsio_free(fs);
}

/* A sync of one directory commits the rename that moved a file out of
 * the other, and the create it depends on; an independent one stays. */
static void test_dir_sync_commits_dependencies(void **state)
{
    (void)state;
    const char *dir = fresh_dir("deps");
    struct fsio *fs = new_cut();
    assert_int_equal(fsio_mkdir(fs, P(dir, "x"), 0755), 0);
    assert_int_equal(fsio_mkdir(fs, P(dir, "y"), 0755), 0);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    put_file(fs, P(dir, "x/t"), "t", 1, true);
    put_file(fs, P(dir, "x/other"), "o", 1, true);
    assert_int_equal(fsio_rename(fs, P(dir, "x/t"), P(dir, "y/t")), 0);
    assert_int_equal(fsio_fsync_dir(fs, P(dir, "y")), 0);
    assert_true(disk_is(P(dir, "y/t"), "t"));
    assert_false(disk_has(P(dir, "x/t")));
    assert_false(disk_has(P(dir, "x/other")));
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "y/t"), "t", 1));
    assert_false(exists(fs, P(dir, "x/other")));
    fsio_free(fs);
}

/* A directory: mkdir durable with its parent's sync, or with any later
 * operation that is committed (the barrier), never partly. */
static void test_directories(void **state)
{
    (void)state;
    const char *dir = fresh_dir("dirs");
    struct fsio *fs = new_cut();
    assert_int_equal(fsio_mkdir(fs, P(dir, "d"), 0755), 0);
    assert_int_equal(fsio_fsync_dir(fs, P(dir, "d")), 0);  /* not its name */
    fs = power_cut(fs);
    assert_false(exists(fs, P(dir, "d")));

    assert_int_equal(fsio_mkdir(fs, P(dir, "d"), 0755), 0);
    put_file(fs, P(dir, "d/f"), "x", 1, true);
    assert_int_equal(fsio_fsync_dir(fs, P(dir, "d")), 0);
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "d/f"), "x", 1));

    /* A renamed directory takes its files along, when durable. */
    assert_int_equal(fsio_rename(fs, P(dir, "d"), P(dir, "e")), 0);
    assert_true(file_is(fs, P(dir, "e/f"), "x", 1));
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "d/f"), "x", 1));
    assert_int_equal(fsio_rename(fs, P(dir, "d"), P(dir, "e")), 0);
    put_file(fs, P(dir, "e/g"), "y", 1, true);  /* new file in the moved dir */
    assert_int_equal(fsio_fsync_dir(fs, P(dir, "e")), 0);
    fs = power_cut(fs);
    assert_false(exists(fs, P(dir, "d")));
    assert_true(file_is(fs, P(dir, "e/f"), "x", 1));
    assert_true(file_is(fs, P(dir, "e/g"), "y", 1));

    assert_int_equal(fsio_unlink(fs, P(dir, "e/f")), 0);
    assert_int_equal(fsio_unlink(fs, P(dir, "e/g")), 0);
    assert_int_equal(fsio_rmdir(fs, P(dir, "e")), 0);
    assert_true(disk_has(P(dir, "e/f")));
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    assert_false(disk_has(P(dir, "e")));
    fsio_free(fs);
}

/* Files already on disk are found, read and changed like new ones. */
static void test_existing_files(void **state)
{
    (void)state;
    const char *dir = fresh_dir("existing");
    struct fsio *real = fsio_real_new();
    assert_int_equal(fsio_mkdir(real, P(dir, "sub"), 0755), 0);
    put_file(real, P(dir, "sub/f"), "abcdef", 6, true);
    put_file(real, P(dir, "g"), "g", 1, true);
    fsio_free(real);

    struct fsio *fs = new_cut();
    char list[256] = "";
    assert_int_equal(fsio_list_dir(fs, dir, collect, list), 0);
    assert_string_equal(list, "g,sub,");
    assert_true(file_is(fs, P(dir, "sub/f"), "abcdef", 6));
    int fd = fsio_open(fs, P(dir, "sub/f"), O_WRONLY | O_TRUNC, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_true(file_is(fs, P(dir, "sub/f"), "", 0));
    assert_int_equal(fsio_unlink(fs, P(dir, "g")), 0);
    list[0] = '\0';
    assert_int_equal(fsio_list_dir(fs, dir, collect, list), 0);
    assert_string_equal(list, "sub,");
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "sub/f"), "abcdef", 6));
    assert_true(file_is(fs, P(dir, "g"), "g", 1));
    /* A file made behind the backend's back, in a directory it has not
     * changed, is seen; relative paths and ".." are resolved. */
    assert_true(disk_has(P(dir, "g")));
    put_file(fs, P(dir, "sub/../g"), "G", 1, true);
    assert_int_equal(fsio_fsync_dir(fs, P(dir, "sub/..")), 0);
    assert_true(disk_is(P(dir, "g"), "G"));
    /* A directory made with a plain mkdir after the backend changed its
     * parent is seen too; a name whose unlink is queued stays gone. */
    assert_int_equal(fsio_unlink(fs, P(dir, "g")), 0);
    assert_int_equal(mkdir(P(dir, "outside"), 0755), 0);
    assert_true(exists(fs, P(dir, "outside")));
    assert_false(exists(fs, P(dir, "g")));
    list[0] = '\0';
    assert_int_equal(fsio_list_dir(fs, dir, collect, list), 0);
    assert_string_equal(list, "outside,sub,");
    fsio_free(fs);
}

/* An open file stays readable and writable after its unlink is durable. */
static void test_unlinked_open_file(void **state)
{
    (void)state;
    const char *dir = fresh_dir("unlinked");
    struct fsio *fs = new_cut();
    put_file(fs, P(dir, "f"), "abc", 3, true);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    int fd = fsio_open(fs, P(dir, "f"), O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, "d", 1, 3), 1);
    assert_int_equal(fsio_unlink(fs, P(dir, "f")), 0);
    assert_int_equal(fsio_fsync_dir(fs, dir), 0);
    assert_false(disk_has(P(dir, "f")));
    char buf[8];
    assert_int_equal(fsio_pread(fs, fd, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "abcd", 4);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_false(exists(fs, P(dir, "f")));
    fsio_free(fs);
}

static void test_write_file_atomic_is_durable(void **state)
{
    (void)state;
    const char *dir = fresh_dir("atomic");
    struct fsio *fs = new_cut();
    assert_int_equal(fsio_write_file_atomic(fs, dir, "v", "one", 3), 0);
    assert_true(disk_is(P(dir, "v"), "one"));
    assert_false(disk_has(P(dir, ".v.tmp")));
    fs = power_cut(fs);
    assert_int_equal(fsio_write_file_atomic(fs, dir, "v", "two", 3), 0);
    fs = power_cut(fs);
    assert_true(file_is(fs, P(dir, "v"), "two", 3));
    fsio_free(fs);
}

/* The real thing: a child process killed with SIGKILL. */
static void child_work(const char *dir, int ready_fd)
{
    struct fsio *fs = fsio_cut_new();
    int fd = fs ? fsio_open(fs, P(dir, "kept"), O_RDWR, 0) : -1;
    bool ok = fd >= 0 && fsio_pwrite(fs, fd, "new!", 4, 0) == 4 &&
              fsio_ftruncate(fs, fd, 10) == 0;
    int fd2 = fsio_open(fs, P(dir, "synced"), O_RDWR | O_CREAT, 0644);
    ok = ok && fd2 >= 0 && fsio_pwrite(fs, fd2, "S", 1, 0) == 1 &&
         fsio_fdatasync(fs, fd2) == 0 && fsio_fsync_dir(fs, dir) == 0 &&
         fsio_pwrite(fs, fd2, "more", 4, 1) == 4;
    int fd3 = fsio_open(fs, P(dir, "nodirsync"), O_RDWR | O_CREAT, 0644);
    ok = ok && fd3 >= 0 && fsio_pwrite(fs, fd3, "N", 1, 0) == 1 &&
         fsio_fdatasync(fs, fd3) == 0;
    ok = ok && fsio_rename(fs, P(dir, "renamed"), P(dir, "moved")) == 0;
    if (!ok)
        _exit(2);
    if (write(ready_fd, "k", 1) != 1)
        _exit(3);
    for (;;)
        pause();
}

static void test_sigkill_loses_what_is_not_durable(void **state)
{
    (void)state;
    const char *dir = fresh_dir("sigkill");
    struct fsio *real = fsio_real_new();
    put_file(real, P(dir, "kept"), "old", 3, true);
    put_file(real, P(dir, "renamed"), "r", 1, true);
    fsio_free(real);

    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        child_work(dir, pipefd[1]);
    }
    close(pipefd[1]);
    char c = 0;
    ssize_t n = read(pipefd[0], &c, 1);
    close(pipefd[0]);
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(n, 1);     /* the child got through its work */
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    assert_true(disk_is(P(dir, "kept"), "old"));
    assert_true(disk_is(P(dir, "synced"), "S"));
    assert_false(disk_has(P(dir, "nodirsync")));
    assert_true(disk_is(P(dir, "renamed"), "r"));
    assert_false(disk_has(P(dir, "moved")));
}

static void test_from_env(void **state)
{
    (void)state;
    const char *dir = fresh_dir("env");
    const char *values[] = { NULL, "0", "", "1" };
    for (int i = 0; i < 4; i++) {
        if (values[i])
            setenv(FSIO_POWERCUT_ENV, values[i], 1);
        else
            unsetenv(FSIO_POWERCUT_ENV);
        struct fsio *fs = fsio_from_env();
        assert_non_null(fs);
        const char *path = P(dir, values[i] ? "set" : "unset");
        put_file(fs, path, "x", 1, false);
        /* Only the real backend leaves an unsynced file on the disk. */
        assert_int_equal(disk_has(path), i < 3);
        assert_int_equal(fsio_unlink(fs, path), 0);
        assert_int_equal(fsio_fsync_dir(fs, dir), 0);
        fsio_free(fs);
    }
    unsetenv(FSIO_POWERCUT_ENV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_posix_contract),
        cmocka_unit_test(test_cut_vs_real_differential),
        cmocka_unit_test(test_cut_crash_vs_sim_files),
        cmocka_unit_test(test_cut_crash_vs_sim_dirs),
        cmocka_unit_test(test_disk_holds_only_durable),
        cmocka_unit_test(test_create_needs_dir_sync),
        cmocka_unit_test(test_rename_needs_dir_sync),
        cmocka_unit_test(test_dir_sync_commits_dependencies),
        cmocka_unit_test(test_directories),
        cmocka_unit_test(test_existing_files),
        cmocka_unit_test(test_unlinked_open_file),
        cmocka_unit_test(test_write_file_atomic_is_durable),
        cmocka_unit_test(test_sigkill_loses_what_is_not_durable),
        cmocka_unit_test(test_from_env),
    };
    return cmocka_run_group_tests_name("fsio_cut", tests, scratch_setup,
                                       scratch_teardown);
}
