/*
 * Tests of the probe thread of the data directories (chunkserver/csprobe):
 * a probe asked for runs and fails a directory whose identity file is
 * gone; a probe stuck in a disk call (the identity file replaced by a
 * FIFO nobody writes: open() blocks as on a disk that does not answer)
 * does not hold csprobe_free beyond its wait, which reports it abandoned;
 * the abandoned thread, once its call returns, finishes the probe and
 * ends by itself.  Real directories under /dev/shm (or /tmp), one data
 * directory each.  Log lines go to /dev/null unless DFS_TEST_VERBOSE is
 * set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chunkserver/csprobe.h"
#include "chunkserver/storeid.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/fsio.h"
#include "common/log.h"

#define CHUNK (UINT64_C(1) << 20)
#define DEADLINE_MS 30000           /* for what must happen, not how fast */

struct rig {
    char dir[256];
    char id_path[PATH_MAX];
    struct fsio *fs;
    struct vols *v;
    atomic_uint fails;
};

static void on_fail(void *arg, const char *dir, size_t left)
{
    (void)dir;
    (void)left;
    struct rig *r = arg;
    atomic_fetch_add(&r->fails, 1);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void rig_open(struct rig *r)
{
    memset(r, 0, sizeof(*r));
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(r->dir, sizeof(r->dir), "%s/test_csprobe.XXXXXX", base);
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->id_path, sizeof(r->id_path), "%s/%s", r->dir, STOREID_NAME);
    r->fs = fsio_real_new();
    assert_non_null(r->fs);
    struct vols_dir d = { r->dir, r->fs };
    struct vols_params p = {
        .store = { .chunk_size = CHUNK },
        .on_fail = on_fail,
        .fail_arg = r,
    };
    char err[256];
    assert_int_equal(vols_open(&d, 1, &p, &r->v, err, sizeof(err)), 0);
    assert_int_equal(vols_set_identity(r->v, UINT64_C(0xc5), 7), 0);
    assert_int_equal(access(r->id_path, R_OK), 0);
}

static void rig_close(struct rig *r)
{
    vols_close(r->v);
    fsio_free(r->fs);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    assert_int_equal(system(cmd), 0);
}

static bool wait_fails(struct rig *r, unsigned n)
{
    for (unsigned t = 0; t < DEADLINE_MS; t += 10) {
        if (atomic_load(&r->fails) >= n)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* The threads of this process other than the caller, and whether one of
 * them is blocked in syscall nr (from /proc/self/task/TID/syscall). */
static size_t other_threads(long nr, bool *in_nr)
{
    DIR *dp = opendir("/proc/self/task");
    assert_non_null(dp);
    size_t n = 0;
    *in_nr = false;
    long self = syscall(SYS_gettid);
    for (struct dirent *e; (e = readdir(dp));) {
        long tid = strtol(e->d_name, NULL, 10);
        if (tid <= 0 || tid == self)
            continue;
        n++;
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%ld/syscall", tid);
        FILE *f = fopen(path, "r");
        long at = -1;
        if (f && fscanf(f, "%ld", &at) == 1 && at == nr)
            *in_nr = true;
        if (f)
            fclose(f);
    }
    closedir(dp);
    return n;
}

/* A probe asked for runs: the identity file gone, the directory fails;
 * the thread then stops at once. */
static void test_probe_runs(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    struct csprobe *p;
    assert_int_equal(csprobe_new(r.v, &p), 0);
    csprobe_kick(p);
    csprobe_kick(p);                /* at most one more: harmless */
    assert_int_equal(unlink(r.id_path), 0);
    csprobe_kick(p);
    assert_true(wait_fails(&r, 1));
    assert_true(vols_dir_failed(r.v, 0));
    assert_true(csprobe_free(p, 5000));
    bool in;
    assert_int_equal(other_threads(-1, &in), 0);
    assert_int_equal(atomic_load(&r.fails), 1);
    rig_close(&r);
}

/* A probe stuck in open() is left behind after the wait: csprobe_free
 * returns false without waiting for it.  Once the call returns the thread
 * finishes the probe (the file read empty: the directory fails) and ends
 * by itself; only then are the directories freed. */
static void test_probe_stuck(void **state)
{
    (void)state;
    struct rig r;
    rig_open(&r);
    assert_int_equal(unlink(r.id_path), 0);
    assert_int_equal(mkfifo(r.id_path, 0600), 0);
    struct csprobe *p;
    assert_int_equal(csprobe_new(r.v, &p), 0);
    csprobe_kick(p);
    bool in = false;
    for (unsigned t = 0; !in && t < DEADLINE_MS; t += 10) {
        other_threads(SYS_openat, &in);
        if (!in)
            sleep_ms(10);
    }
    if (!in) {
        print_message("no thread seen in openat (no /proc syscall?): "
                      "skipped\n");
        int fd = open(r.id_path, O_WRONLY | O_NONBLOCK);
        if (fd >= 0)
            close(fd);
        csprobe_free(p, DEADLINE_MS);
        rig_close(&r);
        skip();
    }
    assert_false(csprobe_free(p, 200));
    assert_int_equal(atomic_load(&r.fails), 0);
    /* The disk answers again: the writer's open wakes the probe, whose
     * read finds nothing once the writer is gone. */
    int fd = open(r.id_path, O_WRONLY);
    assert_true(fd >= 0);
    close(fd);
    assert_true(wait_fails(&r, 1));
    size_t left = 1;
    for (unsigned t = 0; left && t < DEADLINE_MS; t += 10) {
        left = other_threads(-1, &in);
        if (left)
            sleep_ms(10);
    }
    assert_int_equal(left, 0);
    rig_close(&r);
}

int main(void)
{
    if (!getenv("DFS_TEST_VERBOSE"))
        log_init("test_csprobe", LOG_ERROR, "/dev/null");
    if (getenv("DFS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("DFS_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_runs),
        cmocka_unit_test(test_probe_stuck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
