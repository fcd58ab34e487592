/*
 * Tests of fsio: POSIX behaviour of both backends (the same checks run on
 * each, plus a random differential run of the two side by side), the
 * simulator's durability model under power cuts, fault injection and
 * capacity.  Randomized tests print their seeds; FSIO_SEED=N replays one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsio.h"

static const enum fsio_crash all_policies[] = {
    FSIO_CRASH_KEEP_ALL, FSIO_CRASH_DROP_ALL, FSIO_CRASH_KEEP_RANDOM,
    FSIO_CRASH_TEAR,
};

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

static struct fsio *new_sim(void)
{
    struct fsio *fs = fsio_sim_new();
    assert_non_null(fs);
    return fs;
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

/* ======================================================================== */
/* POSIX behaviour, on both backends                                        */
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

static void test_sim_posix_behaviour(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    check_file_calls(fs, "");
    check_name_calls(fs, "");
    check_whole_files(fs, "");
    assert_int_equal(fsio_sim_open_files(fs), 0);
    fsio_free(fs);
}

static void test_sim_paths(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    char longname[NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(fsio_mkdir(fs, "d", 0755), 0);  /* relative: from / */
    put_file(fs, "//d/./f", "x", 1, false);
    assert_true(file_is(fs, "/d/f", "x", 1));
    assert_int_equal(fsio_open(fs, "/d/../d/f", O_RDONLY, 0), -EINVAL);
    assert_int_equal(fsio_open(fs, longname, O_RDWR | O_CREAT, 0644),
                     -ENAMETOOLONG);
    assert_int_equal(fsio_open(fs, "/", O_RDONLY, 0), -EISDIR);
    assert_int_equal(fsio_mkdir(fs, "/", 0755), -EEXIST);
    assert_int_equal(fsio_rmdir(fs, "/"), -EBUSY);
    assert_int_equal(fsio_unlink(fs, "/"), -EBUSY);
    assert_int_equal(fsio_rename(fs, "/", "/x"), -EBUSY);
    assert_int_equal(fsio_rename(fs, "/d/f", "/"), -EBUSY);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    fsio_free(fs);
}

static char real_root[64];

static int real_setup(void **state)
{
    (void)state;
    strcpy(real_root, "/tmp/dfs-test-fsio-XXXXXX");
    return mkdtemp(real_root) ? 0 : -1;
}

static int real_teardown(void **state)
{
    (void)state;
    return rmdir(real_root);    /* fails when a test left files behind */
}

static void test_real_posix_behaviour(void **state)
{
    (void)state;
    struct fsio *fs = fsio_real_new();
    assert_non_null(fs);
    check_file_calls(fs, real_root);
    check_name_calls(fs, real_root);
    check_whole_files(fs, real_root);
    fsio_free(fs);
}

static void test_real_has_no_simulator(void **state)
{
    (void)state;
    struct fsio *fs = fsio_real_new();
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), -EINVAL);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 1, EIO), -EINVAL);
    assert_int_equal(fsio_sim_fail_always(fs, FSIO_OP_WRITE, EIO), -EINVAL);
    assert_int_equal(fsio_sim_set_capacity(fs, 10), -EINVAL);
    assert_int_equal(fsio_sim_pending(fs), 0);
    assert_int_equal(fsio_sim_open_files(fs), 0);
    assert_int_equal(fsio_sim_used(fs), 0);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_OPEN), 0);
    fsio_free(fs);
    fsio_free(NULL);
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
    assert_int_equal(fsio_list_dir(d->fs, d->root[0] ? d->root : "/",
                                   remove_entry, d), 0);
}

static void test_differential_real_vs_sim(void **state)
{
    (void)state;
    uint64_t first = 1, last = 20;
    seed_range("differential", &first, &last);
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        struct diff_side real = { fsio_real_new(), real_root, { 0 } };
        struct diff_side sim = { new_sim(), "", { 0 } };
        memset(real.fds, -1, sizeof(real.fds));
        memset(sim.fds, -1, sizeof(sim.fds));
        uint64_t x = cur_seed;
        for (int step = 0; step < 400; step++) {
            uint64_t r = rng_next(&x);
            char out_real[256], out_sim[256];
            long rc_real = diff_op(&real, r, out_real, sizeof(out_real));
            long rc_sim = diff_op(&sim, r, out_sim, sizeof(out_sim));
            if (rc_real != rc_sim || strcmp(out_real, out_sim) != 0)
                print_error("step %d: %s: real %ld \"%s\", sim %ld \"%s\"\n",
                            step, op_names[r % 13], rc_real, out_real, rc_sim,
                            out_sim);
            CHECK(rc_real == rc_sim);
            CHECK(strcmp(out_real, out_sim) == 0);
        }
        diff_cleanup(&real);
        diff_cleanup(&sim);
        fsio_free(real.fs);
        fsio_free(sim.fs);
    }
}

/* Appends "path:size:sum;" for every entry under path, recursively, in
 * order; returns the total of the file sizes. */
static uint64_t tree_dump(struct fsio *fs, const char *path, char *out,
                          size_t outlen);

struct dump_walk {
    struct fsio *fs;
    const char *dir;
    char *out;
    size_t outlen;
    uint64_t total;
};

static int dump_entry(const char *name, void *arg)
{
    struct dump_walk *w = arg;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    w->total += tree_dump(w->fs, path, w->out, w->outlen);
    return 0;
}

static uint64_t tree_dump(struct fsio *fs, const char *path, char *out,
                          size_t outlen)
{
    struct fsio_stat st;
    size_t used = strlen(out);
    assert_int_equal(fsio_stat(fs, path[0] ? path : "/", &st), 0);
    if (st.is_dir) {
        struct dump_walk w = { fs, path, out, outlen, 0 };
        snprintf(out + used, outlen - used, "%s/;", path);
        assert_int_equal(fsio_list_dir(fs, path[0] ? path : "/", dump_entry,
                                       &w), 0);
        return w.total;
    }
    void *data;
    size_t len;
    unsigned sum = 0;
    assert_int_equal(fsio_read_file(fs, path, 1 << 20, &data, &len), 0);
    for (size_t i = 0; i < len; i++)
        sum = sum * 31 + ((unsigned char *)data)[i];
    free(data);
    snprintf(out + used, outlen - used, "%s:%zu:%x;", path, len, sum);
    return len;
}

/*
 * Random operations, directory syncs and power cuts on the simulator.
 * After a crash that keeps everything the tree is exactly what the process
 * saw; after any crash the tree is walkable and its sizes add up to the
 * space the simulator counts (its reference counts held up).
 */
static void test_random_ops_with_crashes(void **state)
{
    (void)state;
    static const char *const dirs[] = { "/", "/d", "/e", "/d/e" };
    static char before[16384], after[16384];
    uint64_t first = 1, last = 200;
    seed_range("random crashes", &first, &last);
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        struct diff_side d = { new_sim(), "", { 0 } };
        memset(d.fds, -1, sizeof(d.fds));
        uint64_t x = cur_seed;
        for (int step = 0; step < 300; step++) {
            uint64_t r = rng_next(&x);
            char out[256];
            if (r % 16 == 0) {
                fsio_fsync_dir(d.fs, dirs[(r >> 8) % 4]);
                continue;
            }
            if (r % 32 != 1) {
                diff_op(&d, r >> 5, out, sizeof(out));
                continue;
            }
            enum fsio_crash policy = all_policies[(r >> 8) % 4];
            before[0] = after[0] = '\0';
            tree_dump(d.fs, "", before, sizeof(before));
            CHECK(fsio_sim_crash(d.fs, policy, r) == 0);
            memset(d.fds, -1, sizeof(d.fds));
            CHECK(fsio_sim_pending(d.fs) == 0);
            CHECK(tree_dump(d.fs, "", after, sizeof(after)) ==
                  fsio_sim_used(d.fs));
            if (policy == FSIO_CRASH_KEEP_ALL)
                CHECK(strcmp(before, after) == 0);
        }
        fsio_free(d.fs);
    }
}

/* ======================================================================== */
/* the durability model                                                     */
/* ======================================================================== */

/* A durable /d/f holding data. */
static void make_durable_file(struct fsio *fs, const void *data, size_t len)
{
    assert_int_equal(fsio_mkdir(fs, "/d", 0755), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    put_file(fs, "/d/f", data, len, true);
    assert_int_equal(fsio_fsync_dir(fs, "/d"), 0);
    assert_int_equal(fsio_sim_pending(fs), 0);
}

static void test_synced_write_survives_every_crash(void **state)
{
    (void)state;
    uint64_t first = 1, last = 100;
    seed_range("synced write", &first, &last);
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        for (size_t p = 0; p < 4; p++) {
            struct fsio *fs = new_sim();
            uint64_t x = cur_seed;
            size_t len = 1 + rng_next(&x) % 5000;
            char *data = malloc(len);
            for (size_t i = 0; i < len; i++)
                data[i] = (char)rng_next(&x);
            make_durable_file(fs, "old", 3);
            int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
            CHECK(fd >= 0);
            CHECK(fsio_pwrite(fs, fd, data, len, 0) == (ssize_t)len);
            CHECK(fsio_ftruncate(fs, fd, len) == 0);
            CHECK(fsio_fdatasync(fs, fd) == 0);
            CHECK(fsio_sim_pending(fs) == 0);
            CHECK(fsio_sim_crash(fs, all_policies[p], cur_seed) == 0);
            CHECK(file_is(fs, "/d/f", data, len));
            free(data);
            fsio_free(fs);
        }
    }
}

enum outcome { VANISHED, KEPT, TORN };

/* Over seeds: durable 100 x 'A', then 150 x 'B' written at 0, not synced. */
static void unsynced_outcomes(enum fsio_crash policy, unsigned seen[3])
{
    char old[100], new[150];
    memset(old, 'A', sizeof(old));
    memset(new, 'B', sizeof(new));
    uint64_t first = 1, last = 200;
    seed_range("unsynced write", &first, &last);
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        struct fsio *fs = new_sim();
        make_durable_file(fs, old, sizeof(old));
        int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
        CHECK(fsio_pwrite(fs, fd, new, sizeof(new), 0) == sizeof(new));
        CHECK(fsio_sim_pending(fs) == 1);
        CHECK(fsio_sim_crash(fs, policy, cur_seed) == 0);
        enum outcome o = file_is(fs, "/d/f", old, sizeof(old)) ? VANISHED
                       : file_is(fs, "/d/f", new, sizeof(new)) ? KEPT : TORN;
        seen[o]++;
        if (o == TORN) {    /* a prefix of the new data, then not beyond it */
            void *got;
            size_t n;
            CHECK(fsio_read_file(fs, "/d/f", 1000, &got, &n) == 0);
            CHECK(n >= 100 && n <= 150);
            CHECK(((char *)got)[0] == 'B' || ((char *)got)[0] == 'A');
            free(got);
        }
        fsio_free(fs);
    }
    print_message("policy %d: vanished %u, kept %u, torn %u\n", policy,
                  seen[VANISHED], seen[KEPT], seen[TORN]);
}

static void test_unsynced_write_outcomes(void **state)
{
    (void)state;
    unsigned drop[3] = { 0 }, keep[3] = { 0 }, rnd[3] = { 0 }, tear[3] = { 0 };
    unsynced_outcomes(FSIO_CRASH_DROP_ALL, drop);
    unsynced_outcomes(FSIO_CRASH_KEEP_ALL, keep);
    unsynced_outcomes(FSIO_CRASH_KEEP_RANDOM, rnd);
    unsynced_outcomes(FSIO_CRASH_TEAR, tear);
    assert_true(drop[KEPT] == 0 && drop[TORN] == 0);
    assert_true(keep[VANISHED] == 0 && keep[TORN] == 0);
    assert_true(rnd[VANISHED] > 0 && rnd[KEPT] > 0 && rnd[TORN] == 0);
    assert_true(tear[VANISHED] > 0 && tear[KEPT] > 0 && tear[TORN] > 0);
}

/* A torn write may leave the file extended with zeros or with junk. */
static void test_torn_write_tails(void **state)
{
    (void)state;
    unsigned zeros = 0, junk = 0, short_tail = 0;
    char new[64];
    memset(new, 'B', sizeof(new));
    for (cur_seed = 1; cur_seed <= 300; cur_seed++) {
        struct fsio *fs = new_sim();
        make_durable_file(fs, "", 0);
        int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
        CHECK(fsio_pwrite(fs, fd, new, sizeof(new), 0) == sizeof(new));
        CHECK(fsio_sim_crash(fs, FSIO_CRASH_TEAR, cur_seed) == 0);
        void *got;
        size_t n, b = 0;
        CHECK(fsio_read_file(fs, "/d/f", 1000, &got, &n) == 0);
        const unsigned char *g = got;
        while (b < n && g[b] == 'B')
            b++;
        bool all_zero = true;
        for (size_t i = b; i < n; i++)
            all_zero = all_zero && g[i] == 0;
        if (n == sizeof(new) && b < n)
            *(all_zero ? &zeros : &junk) += 1;
        else if (n > 0 && n < sizeof(new))
            short_tail += b == n;
        free(got);
        fsio_free(fs);
    }
    print_message("torn tails: zeros %u, junk %u, cut short %u\n", zeros, junk,
                  short_tail);
    assert_true(zeros > 0 && junk > 0 && short_tail > 0);
}

static void test_create_needs_dir_sync(void **state)
{
    (void)state;
    unsigned gone = 0, there = 0;
    for (cur_seed = 1; cur_seed <= 100; cur_seed++) {
        struct fsio *fs = new_sim();
        put_file(fs, "/f", "data", 4, true);    /* data synced, name not */
        CHECK(fsio_sim_pending(fs) == 1);
        CHECK(fsio_sim_crash(fs, FSIO_CRASH_KEEP_RANDOM, cur_seed) == 0);
        if (exists(fs, "/f")) {
            CHECK(file_is(fs, "/f", "data", 4));
            there++;
        } else {
            gone++;
        }
        fsio_free(fs);
    }
    assert_true(gone > 0 && there > 0);

    struct fsio *fs = new_sim();
    put_file(fs, "/f", "data", 4, true);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_false(exists(fs, "/f"));
    /* The name synced and the data not: an empty file. */
    put_file(fs, "/f", "data", 4, false);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(file_is(fs, "/f", "", 0));
    fsio_free(fs);
}

static void test_mkdir_needs_parent_sync(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    assert_int_equal(fsio_mkdir(fs, "/d", 0755), 0);
    put_file(fs, "/d/f", "x", 1, true);
    assert_int_equal(fsio_fsync_dir(fs, "/d"), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_false(exists(fs, "/d"));

    assert_int_equal(fsio_mkdir(fs, "/d", 0755), 0);
    put_file(fs, "/d/f", "x", 1, true);
    assert_int_equal(fsio_fsync_dir(fs, "/d"), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(file_is(fs, "/d/f", "x", 1));
    fsio_free(fs);
}

static void test_rename_without_dir_sync_may_be_undone(void **state)
{
    (void)state;
    unsigned undone = 0, done = 0;
    for (cur_seed = 1; cur_seed <= 100; cur_seed++) {
        struct fsio *fs = new_sim();
        put_file(fs, "/a", "old-a", 5, true);
        put_file(fs, "/b", "old-b", 5, true);
        CHECK(fsio_fsync_dir(fs, "/") == 0);
        CHECK(fsio_rename(fs, "/a", "/b") == 0);
        CHECK(fsio_sim_crash(fs, FSIO_CRASH_KEEP_RANDOM, cur_seed) == 0);
        /* Atomic: the old pair of names or the new one, nothing else. */
        if (exists(fs, "/a")) {
            CHECK(file_is(fs, "/a", "old-a", 5));
            CHECK(file_is(fs, "/b", "old-b", 5));
            undone++;
        } else {
            CHECK(file_is(fs, "/b", "old-a", 5));
            done++;
        }
        fsio_free(fs);
    }
    assert_true(undone > 0 && done > 0);

    struct fsio *fs = new_sim();
    put_file(fs, "/a", "old-a", 5, true);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    assert_int_equal(fsio_rename(fs, "/a", "/b"), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_false(exists(fs, "/a"));
    assert_true(file_is(fs, "/b", "old-a", 5));
    fsio_free(fs);
}

static void test_cross_dir_rename_is_atomic(void **state)
{
    (void)state;
    unsigned in_x = 0, in_y = 0;
    for (cur_seed = 1; cur_seed <= 100; cur_seed++) {
        struct fsio *fs = new_sim();
        CHECK(fsio_mkdir(fs, "/x", 0755) == 0);
        CHECK(fsio_mkdir(fs, "/y", 0755) == 0);
        CHECK(fsio_fsync_dir(fs, "/") == 0);
        put_file(fs, "/x/f", "f", 1, true);
        CHECK(fsio_fsync_dir(fs, "/x") == 0);
        CHECK(fsio_rename(fs, "/x/f", "/y/g") == 0);
        CHECK(fsio_sim_crash(fs, FSIO_CRASH_KEEP_RANDOM, cur_seed) == 0);
        CHECK(exists(fs, "/x/f") != exists(fs, "/y/g"));
        in_x += exists(fs, "/x/f");
        in_y += exists(fs, "/y/g");
        fsio_free(fs);
    }
    assert_true(in_x > 0 && in_y > 0);

    /* A sync of either directory commits the whole rename. */
    struct fsio *fs = new_sim();
    assert_int_equal(fsio_mkdir(fs, "/x", 0755), 0);
    assert_int_equal(fsio_mkdir(fs, "/y", 0755), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    put_file(fs, "/x/f", "f", 1, true);
    assert_int_equal(fsio_fsync_dir(fs, "/x"), 0);
    assert_int_equal(fsio_rename(fs, "/x/f", "/y/g"), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/y"), 0);
    assert_int_equal(fsio_sim_pending(fs), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_false(exists(fs, "/x/f"));
    assert_true(file_is(fs, "/y/g", "f", 1));
    fsio_free(fs);
}

/* A dir sync also commits the earlier ops the synced ones depend on. */
static void test_dir_sync_commits_dependencies(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    assert_int_equal(fsio_mkdir(fs, "/x", 0755), 0);
    assert_int_equal(fsio_mkdir(fs, "/y", 0755), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    put_file(fs, "/x/t", "t", 1, true);     /* create in x ... */
    put_file(fs, "/x/other", "o", 1, true);
    assert_int_equal(fsio_rename(fs, "/x/t", "/y/t"), 0); /* ... move to y */
    assert_int_equal(fsio_fsync_dir(fs, "/y"), 0);
    assert_int_equal(fsio_sim_pending(fs), 1);  /* /x/other is independent */
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(file_is(fs, "/y/t", "t", 1));
    assert_false(exists(fs, "/x/t"));
    assert_false(exists(fs, "/x/other"));
    fsio_free(fs);
}

/* A name passes through every point of its history: absent, one, two. */
static void test_name_history_points(void **state)
{
    (void)state;
    unsigned absent = 0, one = 0, two = 0;
    for (cur_seed = 1; cur_seed <= 200; cur_seed++) {
        struct fsio *fs = new_sim();
        put_file(fs, "/f", "one", 3, true);
        CHECK(fsio_unlink(fs, "/f") == 0);
        put_file(fs, "/f", "two", 3, true);
        CHECK(fsio_sim_crash(fs, FSIO_CRASH_KEEP_RANDOM, cur_seed) == 0);
        if (!exists(fs, "/f"))
            absent++;
        else if (file_is(fs, "/f", "one", 3))
            one++;
        else if (file_is(fs, "/f", "two", 3))
            two++;
        else
            CHECK(!"unexpected content");
        fsio_free(fs);
    }
    assert_true(absent > 0 && one > 0 && two > 0);
}

static void test_crash_closes_files(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    make_durable_file(fs, "abc", 3);
    int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
    int fd2 = fsio_open(fs, "/d/f", O_RDONLY, 0);
    assert_true(fd >= 0 && fd2 >= 0);
    assert_int_equal(fsio_sim_open_files(fs), 2);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_KEEP_ALL, 1), 0);
    assert_int_equal(fsio_sim_open_files(fs), 0);
    assert_int_equal(fsio_pwrite(fs, fd2, "x", 1, 0), -EBADF);
    assert_int_equal(fsio_close(fs, fd2), -EBADF);
    /* The restarted process reopens and goes on through the same fs. */
    fd = fsio_open(fs, "/d/f", O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, "de", 2, 3), 2);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 2), 0);
    assert_true(file_is(fs, "/d/f", "abcde", 5));
    fsio_free(fs);
}

/* Truncates are data ops: durable with a sync of the file, else undone. */
static void test_truncate_durability(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    make_durable_file(fs, "abcdef", 6);
    int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
    assert_int_equal(fsio_ftruncate(fs, fd, 2), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(file_is(fs, "/d/f", "abcdef", 6));
    fd = fsio_open(fs, "/d/f", O_RDWR, 0);
    assert_int_equal(fsio_ftruncate(fs, fd, 2), 0);
    assert_int_equal(fsio_fsync(fs, fd), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(file_is(fs, "/d/f", "ab", 2));
    /* O_TRUNC is a truncate too. */
    fd = fsio_open(fs, "/d/f", O_WRONLY | O_TRUNC, 0);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_true(file_is(fs, "/d/f", "", 0));
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(file_is(fs, "/d/f", "ab", 2));
    fsio_free(fs);
}

/*
 * Random writes, truncates and syncs on one file against two shadow
 * copies: what the process sees, and what was last synced.  A crash that
 * keeps all must give the first, one that drops all the second.
 */
static void test_random_ops_against_model(void **state)
{
    (void)state;
    enum { MAX = 4096 };
    static unsigned char seen[MAX], synced[MAX];
    uint64_t first = 1, last = 100;
    seed_range("model", &first, &last);
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        for (int keep = 0; keep < 2; keep++) {
            struct fsio *fs = new_sim();
            uint64_t x = cur_seed;
            size_t seen_len = 0, synced_len = 0;
            make_durable_file(fs, "", 0);
            int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
            for (int step = 0; step < 200; step++) {
                uint64_t r = rng_next(&x);
                size_t off = (r >> 8) % (MAX / 2), len = (r >> 24) % 300;
                if (r % 5 < 3) {
                    unsigned char buf[300];
                    memset(buf, (int)(r >> 40), len);
                    CHECK(fsio_pwrite(fs, fd, buf, len, (off_t)off) ==
                          (ssize_t)len);
                    if (len && off > seen_len)
                        memset(seen + seen_len, 0, off - seen_len);
                    memcpy(seen + off, buf, len);
                    if (len && off + len > seen_len)
                        seen_len = off + len;
                } else if (r % 5 == 3) {
                    CHECK(fsio_ftruncate(fs, fd, off) == 0);
                    if (off > seen_len)
                        memset(seen + seen_len, 0, off - seen_len);
                    seen_len = off;
                } else {
                    CHECK(fsio_fdatasync(fs, fd) == 0);
                    memcpy(synced, seen, seen_len);
                    synced_len = seen_len;
                }
            }
            CHECK(file_is(fs, "/d/f", seen, seen_len));
            CHECK(fsio_sim_crash(fs, keep ? FSIO_CRASH_KEEP_ALL
                                          : FSIO_CRASH_DROP_ALL,
                                 cur_seed) == 0);
            if (keep)
                CHECK(file_is(fs, "/d/f", seen, seen_len));
            else
                CHECK(file_is(fs, "/d/f", synced, synced_len));
            fsio_free(fs);
        }
    }
}

/* ---- write_file_atomic under power cuts --------------------------------- */

/* Replaces /d/f in place, with no temp file: what not to do. */
static int naive_replace(struct fsio *fs, const char *dir, const char *name,
                         const void *data, size_t len)
{
    (void)dir;
    (void)name;
    int fd = fsio_open(fs, "/d/f", O_WRONLY | O_TRUNC, 0);
    if (fd < 0)
        return fd;
    ssize_t n = fsio_pwrite(fs, fd, data, len, 0);
    int rc = n < 0 ? (int)n : fsio_fsync(fs, fd);
    fsio_close(fs, fd);
    return rc;
}

typedef int (*replace_fn)(struct fsio *fs, const char *dir, const char *name,
                          const void *data, size_t len);

/*
 * Durable old content, then a replace interrupted at one of its steps (the
 * armed op fails) or completed, then a power cut.  Counts what /d/f holds:
 * [0] old, [1] new, [2] anything else.
 */
static void replace_under_crash(replace_fn replace, unsigned counts[3])
{
    static const enum fsio_op stops[] = {
        FSIO_OP_OPEN, FSIO_OP_WRITE, FSIO_OP_SYNC, FSIO_OP_RENAME,
        FSIO_OP_SYNC_DIR, FSIO_OP_COUNT /* no failure */,
    };
    char old[300], new[100];
    memset(old, 'o', sizeof(old));
    memset(new, 'n', sizeof(new));
    for (cur_seed = 1; cur_seed <= 60; cur_seed++) {
        for (size_t s = 0; s < 6; s++) {
            for (size_t p = 0; p < 4; p++) {
                for (int grow = 0; grow < 2; grow++) {
                    const char *a = grow ? new : old, *b = grow ? old : new;
                    size_t alen = grow ? sizeof(new) : sizeof(old);
                    size_t blen = grow ? sizeof(old) : sizeof(new);
                    struct fsio *fs = new_sim();
                    make_durable_file(fs, a, alen);
                    if (stops[s] != FSIO_OP_COUNT)
                        CHECK(fsio_sim_fail(fs, stops[s], 1, EIO) == 0);
                    int rc = replace(fs, "/d", "f", b, blen);
                    CHECK((rc == 0) == (stops[s] == FSIO_OP_COUNT) ||
                          replace == naive_replace);
                    CHECK(fsio_sim_crash(fs, all_policies[p], cur_seed) == 0);
                    if (file_is(fs, "/d/f", a, alen))
                        counts[0]++;
                    else if (file_is(fs, "/d/f", b, blen))
                        counts[1]++;
                    else
                        counts[2]++;
                    if (rc == 0 && replace != naive_replace)
                        CHECK(file_is(fs, "/d/f", b, blen));
                    fsio_free(fs);
                }
            }
        }
    }
}

static void test_write_file_atomic_never_mixed(void **state)
{
    (void)state;
    unsigned counts[3] = { 0 };
    replace_under_crash(fsio_write_file_atomic, counts);
    print_message("atomic: old %u, new %u, other %u\n", counts[0], counts[1],
                  counts[2]);
    assert_int_equal(counts[2], 0);
    assert_true(counts[0] > 0 && counts[1] > 0);
}

/* The same checker catches an in-place rewrite: it bites. */
static void test_naive_replace_is_caught(void **state)
{
    (void)state;
    unsigned counts[3] = { 0 };
    replace_under_crash(naive_replace, counts);
    print_message("naive: old %u, new %u, other %u\n", counts[0], counts[1],
                  counts[2]);
    assert_true(counts[2] > 0);
}

/* Each failed step of write_file_atomic cleans up its temp file. */
static void test_write_file_atomic_error_paths(void **state)
{
    (void)state;
    static const enum fsio_op stops[] = {
        FSIO_OP_OPEN, FSIO_OP_WRITE, FSIO_OP_SYNC, FSIO_OP_RENAME,
    };
    for (size_t s = 0; s < 4; s++) {
        struct fsio *fs = new_sim();
        make_durable_file(fs, "old", 3);
        assert_int_equal(fsio_sim_fail(fs, stops[s], 1, ENOSPC), 0);
        assert_int_equal(fsio_write_file_atomic(fs, "/d", "f", "new", 3),
                         -ENOSPC);
        assert_true(file_is(fs, "/d/f", "old", 3));
        assert_false(exists(fs, "/d/.f.tmp"));
        assert_int_equal(fsio_sim_open_files(fs), 0);
        fsio_free(fs);
    }
    struct fsio *fs = new_sim();
    make_durable_file(fs, "old", 3);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_SYNC_DIR, 1, EIO), 0);
    assert_int_equal(fsio_write_file_atomic(fs, "/d", "f", "new", 3), -EIO);
    assert_true(file_is(fs, "/d/f", "new", 3));     /* visible, not durable */
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(file_is(fs, "/d/f", "old", 3));
    /* A leftover temp file from a crash is simply replaced. */
    put_file(fs, "/d/.f.tmp", "junk-junk", 9, true);
    assert_int_equal(fsio_write_file_atomic(fs, "/d", "f", "new", 3), 0);
    assert_true(file_is(fs, "/d/f", "new", 3));
    assert_false(exists(fs, "/d/.f.tmp"));
    fsio_free(fs);
}

/* ======================================================================== */
/* faults and capacity                                                      */
/* ======================================================================== */

static void test_fail_nth_write(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    make_durable_file(fs, "", 0);
    int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
    uint64_t before = fsio_sim_calls(fs, FSIO_OP_WRITE);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 3, EIO), 0);
    assert_int_equal(fsio_pwrite(fs, fd, "a", 1, 0), 1);
    assert_int_equal(fsio_pwrite(fs, fd, "b", 1, 1), 1);
    assert_int_equal(fsio_pwrite(fs, fd, "c", 1, 2), -EIO);
    assert_int_equal(fsio_pwrite(fs, fd, "d", 1, 2), 1);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_WRITE) - before, 4);
    /* The failed write changed nothing. */
    assert_true(file_is(fs, "/d/f", "abd", 3));

    /* Disarm before it fires. */
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 2, EIO), 0);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 0, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fsio_pwrite(fs, fd, "e", 1, 3), 1);

    /* A dead disk: every call fails until cleared. */
    assert_int_equal(fsio_sim_fail_always(fs, FSIO_OP_WRITE, EIO), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fsio_pwrite(fs, fd, "f", 1, 4), -EIO);
    assert_int_equal(fsio_sim_fail_always(fs, FSIO_OP_WRITE, 0), 0);
    assert_int_equal(fsio_pwrite(fs, fd, "f", 1, 4), 1);

    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 0, EIO), -EINVAL);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_COUNT, 1, EIO), -EINVAL);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 1, -EIO), -EINVAL);
    assert_int_equal(fsio_close(fs, fd), 0);
    fsio_free(fs);
}

/* Calls one op on a fresh fixture; returns its result. */
static int call_op(struct fsio *fs, enum fsio_op op, int fd)
{
    char b;
    switch (op) {
    case FSIO_OP_OPEN:
        return fsio_open(fs, "/d/f", O_RDONLY, 0);
    case FSIO_OP_READ:
        return (int)fsio_pread(fs, fd, &b, 1, 0);
    case FSIO_OP_WRITE:
        return (int)fsio_pwrite(fs, fd, "x", 1, 0);
    case FSIO_OP_TRUNCATE:
        return fsio_ftruncate(fs, fd, 0);
    case FSIO_OP_SYNC:
        return fsio_fsync(fs, fd);
    case FSIO_OP_SYNC_DIR:
        return fsio_fsync_dir(fs, "/d");
    case FSIO_OP_RENAME:
        return fsio_rename(fs, "/d/f", "/d/g");
    case FSIO_OP_UNLINK:
        return fsio_unlink(fs, "/d/f");
    case FSIO_OP_MKDIR:
        return fsio_mkdir(fs, "/d/sub", 0755);
    case FSIO_OP_RMDIR:
        return fsio_rmdir(fs, "/d");
    default:
        return -1;
    }
}

static void test_every_op_can_fail(void **state)
{
    (void)state;
    for (int op = 0; op < FSIO_OP_COUNT; op++) {
        struct fsio *fs = new_sim();
        make_durable_file(fs, "y", 1);
        int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
        assert_int_equal(fsio_sim_fail(fs, op, 1, EIO), 0);
        uint64_t calls = fsio_sim_calls(fs, op);
        assert_int_equal(call_op(fs, op, fd), -EIO);
        assert_int_equal(fsio_sim_calls(fs, op), calls + 1);
        /* and changed nothing */
        assert_true(file_is(fs, "/d/f", "y", 1));
        assert_int_equal(fsio_sim_pending(fs), 0);
        assert_false(exists(fs, "/d/g") || exists(fs, "/d/sub"));
        fsio_close(fs, fd);
        fsio_free(fs);
    }
}

/* After a failed fsync the unsynced writes are gone for good (fsyncgate):
 * the next fsync succeeds without them. */
static void test_failed_sync_loses_writes(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    make_durable_file(fs, "AAAA", 4);
    int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
    assert_int_equal(fsio_pwrite(fs, fd, "BBBB", 4, 0), 4);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_SYNC, 1, EIO), 0);
    assert_int_equal(fsio_fdatasync(fs, fd), -EIO);
    assert_int_equal(fsio_sim_pending(fs), 1);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_sim_pending(fs), 0);
    assert_true(file_is(fs, "/d/f", "BBBB", 4));   /* still in the cache */
    assert_int_equal(fsio_pwrite(fs, fd, "C", 1, 4), 1);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_KEEP_ALL, 1), 0);
    assert_true(file_is(fs, "/d/f", "AAAAC", 5));
    fsio_free(fs);
}

static void test_capacity_gives_enospc(void **state)
{
    (void)state;
    char buf[100];
    memset(buf, 'x', sizeof(buf));
    struct fsio *fs = new_sim();
    assert_int_equal(fsio_sim_set_capacity(fs, 100), 0);
    assert_int_equal(fsio_mkdir(fs, "/d", 0755), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    int fd = fsio_open(fs, "/d/f", O_RDWR | O_CREAT, 0644);
    assert_int_equal(fsio_pwrite(fs, fd, buf, 60, 0), 60);
    assert_int_equal(fsio_pwrite(fs, fd, buf, 60, 60), -ENOSPC);
    uint64_t size, total, avail;
    assert_int_equal(fsio_size(fs, fd, &size), 0);
    assert_int_equal(size, 100);    /* the prefix that fitted */
    assert_int_equal(fsio_sim_used(fs), 100);
    assert_int_equal(fsio_space(fs, "/", &total, &avail), 0);
    assert_int_equal(total, 100);
    assert_int_equal(avail, 0);
    assert_int_equal(fsio_pwrite(fs, fd, "yy", 2, 10), 2); /* overwrite fits */
    assert_int_equal(fsio_pwrite(fs, fd, "z", 1, 200), -ENOSPC);
    assert_int_equal(fsio_ftruncate(fs, fd, 101), -ENOSPC);
    assert_int_equal(fsio_ftruncate(fs, fd, 50), 0);
    assert_int_equal(fsio_sim_used(fs), 50);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/d"), 0);

    int fd2 = fsio_open(fs, "/d/g", O_RDWR | O_CREAT, 0644);
    assert_int_equal(fsio_pwrite(fs, fd2, buf, 60, 0), -ENOSPC);
    assert_int_equal(fsio_sim_used(fs), 100);
    assert_int_equal(fsio_close(fs, fd2), 0);
    assert_int_equal(fsio_unlink(fs, "/d/g"), 0);
    assert_int_equal(fsio_sim_used(fs), 50);

    /* An unlinked file's space is free at once, though the unlink is not
     * durable; after the crash brings the file back, it counts again. */
    assert_int_equal(fsio_unlink(fs, "/d/f"), 0);
    assert_int_equal(fsio_sim_used(fs), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_true(exists(fs, "/d/f"));
    assert_int_equal(fsio_sim_used(fs), 50);
    fsio_free(fs);
}

/* An open fd keeps an unlinked file (and its space) until it is closed. */
static void test_unlinked_open_file(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    make_durable_file(fs, "12345", 5);
    int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
    assert_int_equal(fsio_unlink(fs, "/d/f"), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/d"), 0);
    assert_int_equal(fsio_sim_used(fs), 5);
    assert_int_equal(fsio_pwrite(fs, fd, "67", 2, 5), 2);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    char buf[8];
    assert_int_equal(fsio_pread(fs, fd, buf, sizeof(buf), 0), 7);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_int_equal(fsio_sim_used(fs), 0);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_KEEP_ALL, 1), 0);
    assert_false(exists(fs, "/d/f"));
    fsio_free(fs);
}

static void test_pending_and_calls(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    int fd = fsio_open(fs, "/f", O_RDWR | O_CREAT, 0644);
    assert_int_equal(fsio_sim_pending(fs), 1);      /* the create */
    assert_int_equal(fsio_pwrite(fs, fd, "a", 1, 0), 1);
    assert_int_equal(fsio_pwrite(fs, fd, "b", 1, 1), 1);
    assert_int_equal(fsio_sim_pending(fs), 3);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    assert_int_equal(fsio_sim_pending(fs), 1);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    assert_int_equal(fsio_sim_pending(fs), 0);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_OPEN), 1);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_WRITE), 2);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC), 1);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC_DIR), 1);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_COUNT), 0);
    assert_int_equal(fsio_pwrite(fs, fd, "c", 1, 2), 1);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_KEEP_RANDOM, 7), 0);
    assert_int_equal(fsio_sim_pending(fs), 0);
    fsio_free(fs);
}

/* Crash outcomes depend only on the state and the seed. */
static void test_crash_is_deterministic(void **state)
{
    (void)state;
    char big[2000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)i;
    void *got[2];
    size_t len[2];
    for (int run = 0; run < 2; run++) {
        struct fsio *fs = new_sim();
        make_durable_file(fs, "", 0);
        int fd = fsio_open(fs, "/d/f", O_RDWR, 0);
        for (int i = 0; i < 20; i++)
            assert_int_equal(fsio_pwrite(fs, fd, big + i * 100, 100,
                                         i * 100), 100);
        assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_TEAR, 1234), 0);
        assert_int_equal(fsio_read_file(fs, "/d/f", 1 << 20, &got[run],
                                        &len[run]), 0);
        fsio_free(fs);
    }
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(got[0], got[1], len[0]);
    free(got[0]);
    free(got[1]);
}

struct writer {
    struct fsio *fs;
    char path[16];
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    int fd = fsio_open(w->fs, w->path, O_RDWR | O_CREAT, 0644);
    for (int i = 0; fd >= 0 && i < 2000; i++) {
        unsigned v = (unsigned)i;
        if (fsio_pwrite(w->fs, fd, &v, sizeof(v), (off_t)i * 4) != 4)
            break;
        if (i % 100 == 0)
            fsio_fdatasync(w->fs, fd);
    }
    fsio_close(w->fs, fd);
    return NULL;
}

static void test_sim_threads(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct writer w[2] = { { fs, "/t0" }, { fs, "/t1" } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        void *data;
        size_t len;
        assert_int_equal(fsio_read_file(fs, w[i].path, 1 << 20, &data, &len),
                         0);
        assert_int_equal(len, 8000);
        for (unsigned k = 0; k < 2000; k++)
            assert_int_equal(((unsigned *)data)[k], k);
        free(data);
    }
    fsio_free(fs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_posix_behaviour),
        cmocka_unit_test(test_sim_paths),
        cmocka_unit_test(test_real_posix_behaviour),
        cmocka_unit_test(test_real_has_no_simulator),
        cmocka_unit_test(test_differential_real_vs_sim),
        cmocka_unit_test(test_random_ops_with_crashes),
        cmocka_unit_test(test_synced_write_survives_every_crash),
        cmocka_unit_test(test_unsynced_write_outcomes),
        cmocka_unit_test(test_torn_write_tails),
        cmocka_unit_test(test_create_needs_dir_sync),
        cmocka_unit_test(test_mkdir_needs_parent_sync),
        cmocka_unit_test(test_rename_without_dir_sync_may_be_undone),
        cmocka_unit_test(test_cross_dir_rename_is_atomic),
        cmocka_unit_test(test_dir_sync_commits_dependencies),
        cmocka_unit_test(test_name_history_points),
        cmocka_unit_test(test_crash_closes_files),
        cmocka_unit_test(test_truncate_durability),
        cmocka_unit_test(test_random_ops_against_model),
        cmocka_unit_test(test_write_file_atomic_never_mixed),
        cmocka_unit_test(test_naive_replace_is_caught),
        cmocka_unit_test(test_write_file_atomic_error_paths),
        cmocka_unit_test(test_fail_nth_write),
        cmocka_unit_test(test_every_op_can_fail),
        cmocka_unit_test(test_failed_sync_loses_writes),
        cmocka_unit_test(test_capacity_gives_enospc),
        cmocka_unit_test(test_unlinked_open_file),
        cmocka_unit_test(test_pending_and_calls),
        cmocka_unit_test(test_crash_is_deterministic),
        cmocka_unit_test(test_sim_threads),
    };
    return cmocka_run_group_tests_name("fsio", tests, real_setup,
                                       real_teardown);
}
