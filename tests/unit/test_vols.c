/*
 * Tests of the data directories (chunkserver/vols): routing of chunk ids
 * to the directory holding them, placement by free space (and the
 * reserved space), ENOSPC only when every directory is full, identities
 * that must agree (a fresh directory adopts them), the better copy of a
 * chunk found twice, a directory that fails (its chunks listed lost, the
 * others serving on; their ids refused to a new chunk's first write),
 * the probe, reopening after power cuts, and threads
 * at work while a directory dies.  Each
 * directory lives on its own simulated disk (fsio_sim_new), so faults and
 * capacities are per directory.  DFS_TEST_FILTER=pattern runs the
 * matching tests only; log lines go to /dev/null unless DFS_TEST_VERBOSE
 * is set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkserver/chunkfile.h"
#include "chunkserver/storeid.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/fsio.h"
#include "common/log.h"

#define B        ((uint64_t)STORE_BLOCK_SIZE)
#define CAP      (UINT64_C(1) << 20)          /* chunk size */
#define NDIR     3
#define CLUSTER  UINT64_C(0xc1c1c1c1)

static const char *const PATHS[NDIR] = { "/d0", "/d1", "/d2" };

/* A server's directories, each on its own simulated disk. */
struct rig {
    struct fsio *fs[NDIR];
    struct vols *v;
    size_t n;
    uint64_t reserved;
    unsigned fails;                 /* on_fail calls */
    size_t last_left;
    char last_dir[64];
    char err[512];
};

static void on_fail(void *arg, const char *dir, size_t left)
{
    struct rig *r = arg;
    r->fails++;
    r->last_left = left;
    snprintf(r->last_dir, sizeof(r->last_dir), "%s", dir);
}

static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = rng_next(&seed);
        memcpy(p + i, &x, n - i < 8 ? n - i : 8);
    }
}

static void rig_init(struct rig *r, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        r->fs[i] = fsio_sim_new();
        assert_non_null(r->fs[i]);
    }
}

/* Opens directories first..first+n-1; returns vols_open's status. */
static int rig_open_some(struct rig *r, size_t first, size_t n,
                         uint64_t cluster)
{
    struct vols_dir dirs[NDIR];
    for (size_t i = 0; i < n; i++)
        dirs[i] = (struct vols_dir){ PATHS[first + i], r->fs[first + i] };
    struct vols_params p = {
        .store = { .chunk_size = CAP, .reserved_bytes = r->reserved,
                   .cluster_id = cluster },
        .on_fail = on_fail,
        .fail_arg = r,
    };
    r->v = NULL;
    int rc = vols_open(dirs, n, &p, &r->v, r->err, sizeof(r->err));
    if (rc < 0 && getenv("DFS_TEST_VERBOSE"))
        print_message("vols_open: %s\n", r->err);
    return rc;
}

static void rig_open(struct rig *r)
{
    int rc = rig_open_some(r, 0, r->n, 0);
    if (rc != 0)
        print_error("vols_open: %s (%s)\n", dfs_strerror(rc), r->err);
    assert_int_equal(rc, 0);
}

static void rig_free(struct rig *r)
{
    vols_close(r->v);
    r->v = NULL;
    for (size_t i = 0; i < r->n; i++)
        fsio_free(r->fs[i]);
}

static void chunk_file(size_t dir, uint64_t id, char *out, size_t len)
{
    char name[CHUNKFILE_NAME_MAX];
    chunkfile_name(id, name);
    snprintf(out, len, "%s/%s", PATHS[dir], name);
}

/* Whether directory dir's disk has chunk id's file. */
static bool has_file(struct rig *r, size_t dir, uint64_t id)
{
    char path[256];
    struct fsio_stat st;
    chunk_file(dir, id, path, sizeof(path));
    return fsio_stat(r->fs[dir], path, &st) == 0;
}

static void expect_data(struct vols *v, uint64_t id, const uint8_t *want,
                        size_t len)
{
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(vols_read(v, id, 0, 0, len + 1, buf, NULL),
                     (ssize_t)len);
    assert_memory_equal(buf, want, len);
    free(buf);
}

static int count_one(const struct store_info *info, void *arg)
{
    (void)info;
    (*(size_t *)arg)++;
    return 0;
}

static size_t list_count(struct vols *v)
{
    size_t n = 0;
    assert_int_equal(vols_list(v, count_one, &n), 0);
    return n;
}

/* Free bytes the store would see on directory i (net of the reserve). */
static uint64_t avail_of(struct rig *r, size_t i)
{
    uint64_t total, avail;
    assert_int_equal(fsio_space(r->fs[i], PATHS[i], &total, &avail), 0);
    return avail > r->reserved ? avail - r->reserved : 0;
}

/* ======================================================================== */

/* Chunks are found in the directory that holds them, whatever the call;
 * equal directories share new chunks evenly; a reopen finds them all. */
static void test_routing(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    rig_open(&r);
    assert_int_equal(vols_count(r.v), 2);
    assert_int_equal(vols_healthy(r.v), 2);
    uint8_t data[3 * B + 17];
    int where[9];
    size_t per_dir[2] = { 0, 0 };
    for (uint64_t id = 1; id <= 8; id++) {
        fill(data, sizeof(data), id);
        assert_int_equal(vols_create(r.v, id, 1), 0);
        assert_int_equal(vols_write(r.v, id, 1, 0, data, sizeof(data), NULL,
                                    STORE_SYNC), 0);
        where[id] = vols_locate(r.v, id);
        assert_true(where[id] == 0 || where[id] == 1);
        per_dir[where[id]]++;
        assert_true(has_file(&r, (size_t)where[id], id));
        assert_false(has_file(&r, (size_t)(1 - where[id]), id));
    }
    /* Same free space: the directory with fewer chunk bytes wins. */
    assert_int_equal(per_dir[0], 4);
    assert_int_equal(per_dir[1], 4);
    assert_int_equal(vols_create(r.v, 5, 1), -EEXIST);
    for (uint64_t id = 1; id <= 8; id++) {
        fill(data, sizeof(data), id);
        expect_data(r.v, id, data, sizeof(data));
        uint32_t ver;
        uint64_t len;
        assert_int_equal(vols_stat(r.v, id, &ver, &len), 0);
        assert_int_equal(ver, 1);
        assert_int_equal(len, sizeof(data));
        assert_int_equal(vols_verify(r.v, id, 1), 0);
    }
    assert_int_equal(vols_set_version(r.v, 2, 4), 0);
    assert_int_equal(vols_truncate(r.v, 2, 4, 10), 0);
    assert_int_equal(vols_sync(r.v, 2), 0);
    assert_int_equal(list_count(r.v), 8);
    assert_int_equal(vols_delete(r.v, 3), 0);
    assert_int_equal(vols_locate(r.v, 3), -ENOENT);
    assert_false(has_file(&r, (size_t)where[3], 3));
    assert_int_equal(vols_delete(r.v, 3), -ENOENT);
    uint32_t ver;
    uint64_t len;
    assert_int_equal(vols_stat(r.v, 3, &ver, &len), -ENOENT);
    assert_int_equal(vols_read(r.v, 99, 0, 0, 1, data, NULL), -ENOENT);
    assert_int_equal(vols_write(r.v, 99, 1, 0, data, 1, NULL, 0), -ENOENT);

    vols_close(r.v);
    rig_open(&r);
    assert_int_equal(list_count(r.v), 7);
    for (uint64_t id = 1; id <= 8; id++)
        assert_int_equal(vols_locate(r.v, id), id == 3 ? -ENOENT : where[id]);
    assert_int_equal(vols_stat(r.v, 2, &ver, &len), 0);
    assert_int_equal(ver, 4);
    assert_int_equal(len, 10);
    rig_free(&r);
}

/* A new chunk goes where there is most free space (in chunk sizes); the
 * directory that filled first stops taking chunks; -ENOSPC comes only
 * when no directory can hold one more. */
static void test_placement_free_space(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    assert_int_equal(fsio_sim_set_capacity(r.fs[0], 2 * CAP + 4 * B), 0);
    assert_int_equal(fsio_sim_set_capacity(r.fs[1], 6 * CAP), 0);
    rig_open(&r);
    uint8_t *data = malloc(CAP);
    assert_non_null(data);
    fill(data, CAP, 5);
    size_t per_dir[2] = { 0, 0 };
    uint64_t id = 1;
    int rc;
    for (;; id++) {
        uint64_t u0 = avail_of(&r, 0) / CAP, u1 = avail_of(&r, 1) / CAP;
        rc = vols_create(r.v, id, 1);
        if (rc == -ENOSPC)
            break;
        assert_int_equal(rc, 0);
        int d = vols_locate(r.v, id);
        assert_true(d == 0 || d == 1);
        if (u0 != u1)
            assert_int_equal(d, u1 > u0 ? 1 : 0);
        if (u0 || u1)                   /* while a whole chunk fits */
            per_dir[d]++;
        rc = vols_write(r.v, id, 1, 0, data, 3 * CAP / 4, NULL, 0);
        assert_true(rc == 0 || rc == -ENOSPC);
        assert_true(id < 1000);
    }
    /* Both directories took whole chunks, the larger more; at the end
     * neither has room for one more chunk file's header. */
    assert_true(per_dir[0] >= 1);
    assert_true(per_dir[1] > per_dir[0]);
    assert_true(avail_of(&r, 0) < chunkfile_data_off(CAP));
    assert_true(avail_of(&r, 1) < chunkfile_data_off(CAP));
    assert_int_equal(vols_locate(r.v, id), -ENOENT);
    assert_int_equal(vols_create(r.v, id, 1), -ENOSPC);   /* not reserved */
    /* Deleting one makes room again, there. */
    int d = vols_locate(r.v, 1);
    assert_int_equal(vols_delete(r.v, 1), 0);
    assert_int_equal(vols_create(r.v, id, 1), 0);
    assert_int_equal(vols_locate(r.v, id), d);
    free(data);
    rig_free(&r);
}

/* The reserved space is left alone on every directory: placement counts
 * free space net of it, and -ENOSPC comes before any reserve is used. */
static void test_placement_reserved(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    r.reserved = 4 * B;
    assert_int_equal(fsio_sim_set_capacity(r.fs[0], r.reserved + 3 * B), 0);
    assert_int_equal(fsio_sim_set_capacity(r.fs[1],
                                           r.reserved + CAP + 2 * B), 0);
    rig_open(&r);
    uint8_t *data = malloc(CAP);
    assert_non_null(data);
    fill(data, CAP, 9);
    uint64_t total, used, avail;
    assert_int_equal(vols_space(r.v, &total, &used, &avail), 0);
    assert_int_equal(total, 2 * r.reserved + CAP + 5 * B);
    assert_int_equal(used, 0);
    /* d0 has less than a chunk free beyond its reserve, d1 more. */
    assert_int_equal(vols_create(r.v, 1, 1), 0);
    assert_int_equal(vols_locate(r.v, 1), 1);
    assert_int_equal(vols_write(r.v, 1, 1, 0, data, CAP / 2, NULL, 0), 0);
    /* Now both below a chunk: the emptier (in chunk bytes) wins. */
    assert_int_equal(vols_create(r.v, 2, 1), 0);
    assert_int_equal(vols_locate(r.v, 2), 0);
    uint64_t id = 3;
    while (vols_create(r.v, id, 1) == 0) {
        int rc = vols_write(r.v, id, 1, 0, data, B, NULL, 0);
        assert_true(rc == 0 || rc == -ENOSPC);
        id++;
        assert_true(id < 1000);
    }
    assert_int_equal(vols_create(r.v, id, 1), -ENOSPC);
    for (size_t i = 0; i < 2; i++) {
        uint64_t t, a;
        assert_int_equal(fsio_space(r.fs[i], PATHS[i], &t, &a), 0);
        assert_true(a >= r.reserved);                  /* reserve intact */
        assert_true(a - r.reserved < chunkfile_data_off(CAP));
    }
    assert_int_equal(vols_space(r.v, &total, &used, &avail), 0);
    assert_true(avail < 2 * chunkfile_data_off(CAP));
    free(data);
    rig_free(&r);
}

/* Every directory carries one identity: another cluster's or another
 * server's directory is refused untouched, naming it; a directory
 * without one adopts the server's. */
static void test_identity(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 3);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(fsio_mkdir(r.fs[i], PATHS[i], 0755), 0);
    struct storeid a = { CLUSTER, 7 }, b = { CLUSTER + 1, 7 };
    assert_int_equal(storeid_write(r.fs[0], PATHS[0], &a), 0);
    assert_int_equal(storeid_write(r.fs[1], PATHS[1], &b), 0);
    assert_int_equal(rig_open_some(&r, 0, 2, 0), -DFS_ECLUSTER);
    assert_non_null(strstr(r.err, "/d1 belongs to cluster"));
    assert_non_null(strstr(r.err, "/d0"));
    struct fsio_stat st;
    assert_int_equal(fsio_stat(r.fs[0], "/d0/00", &st), -ENOENT);
    assert_int_equal(fsio_stat(r.fs[1], "/d1/00", &st), -ENOENT);

    b = (struct storeid){ CLUSTER, 8 };         /* another server's */
    assert_int_equal(storeid_write(r.fs[1], PATHS[1], &b), 0);
    assert_int_equal(rig_open_some(&r, 0, 2, 0), -DFS_ECLUSTER);
    assert_non_null(strstr(r.err, "chunkserver 8"));
    assert_non_null(strstr(r.err, "chunkserver 7"));
    assert_int_equal(fsio_stat(r.fs[1], "/d1/00", &st), -ENOENT);

    /* The cluster the server expects decides too. */
    assert_int_equal(rig_open_some(&r, 0, 1, CLUSTER + 5), -DFS_ECLUSTER);
    assert_non_null(strstr(r.err, "/d0 belongs to cluster"));

    /* d1 knows the cluster but no server yet, d2 is new: both adopt. */
    b = (struct storeid){ CLUSTER, 0 };
    assert_int_equal(storeid_write(r.fs[1], PATHS[1], &b), 0);
    assert_int_equal(rig_open_some(&r, 0, 3, 0), 0);
    assert_true(vols_cluster_id(r.v) == CLUSTER);
    assert_int_equal(vols_server_id(r.v), 7);
    for (size_t i = 0; i < 3; i++) {
        struct storeid got;
        assert_int_equal(storeid_read(r.fs[i], PATHS[i], &got), 0);
        assert_true(got.cluster_id == CLUSTER);
        assert_int_equal(got.server_id, 7);
    }
    /* Registration changes the server id everywhere; never the cluster. */
    assert_int_equal(vols_set_identity(r.v, CLUSTER, 9), 0);
    assert_int_equal(vols_server_id(r.v), 9);
    assert_int_equal(vols_set_identity(r.v, CLUSTER + 1, 9), -DFS_ECLUSTER);
    vols_close(r.v);
    for (size_t i = 0; i < 3; i++) {
        struct storeid got;
        assert_int_equal(storeid_read(r.fs[i], PATHS[i], &got), 0);
        assert_int_equal(got.server_id, 9);
    }
    assert_int_equal(rig_open_some(&r, 0, 3, 0), 0);
    assert_int_equal(vols_server_id(r.v), 9);
    vols_close(r.v);
    r.v = NULL;

    /* Bad lists of directories. */
    struct vols_dir twice[2] = { { "/d0", r.fs[0] }, { "/d0", r.fs[0] } };
    struct vols_params p = { .store = { .chunk_size = CAP } };
    struct vols *v = NULL;
    assert_int_equal(vols_open(twice, 2, &p, &v, r.err, sizeof(r.err)),
                     -DFS_ECONF);
    assert_non_null(strstr(r.err, "listed twice"));
    assert_int_equal(vols_open(twice, 0, &p, &v, r.err, sizeof(r.err)),
                     -DFS_ECONF);
    assert_null(v);
    rig_free(&r);
}

/* A chunk found in two directories keeps one copy: the sound one, then
 * the higher version, then the longer, then the earlier directory. */
static void test_duplicates(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    uint8_t a[2 * B], b[3 * B];
    fill(a, sizeof(a), 1);
    fill(b, sizeof(b), 2);
    struct { uint64_t id; uint32_t ver[2]; size_t len[2]; int keep; } c[] = {
        { 5, { 1, 3 }, { sizeof(a), sizeof(a) }, 1 },   /* higher version */
        { 6, { 2, 2 }, { B, 3 * B }, 1 },               /* longer */
        { 7, { 2, 2 }, { B, B }, 0 },                   /* the earlier dir */
        { 8, { 5, 1 }, { B, B }, 1 },                   /* d0's is corrupt */
        { 9, { 4, 2 }, { B, B }, 0 },                   /* higher version */
    };
    const size_t nc = sizeof(c) / sizeof(c[0]);
    for (size_t d = 0; d < 2; d++) {
        assert_int_equal(rig_open_some(&r, d, 1, 0), 0);
        for (size_t k = 0; k < nc; k++) {
            assert_int_equal(vols_create(r.v, c[k].id, c[k].ver[d]), 0);
            assert_int_equal(vols_write(r.v, c[k].id, c[k].ver[d], 0,
                                        d ? b : a, c[k].len[d], NULL,
                                        STORE_SYNC), 0);
        }
        vols_close(r.v);
    }
    /* Both header slots of d0's chunk 8 destroyed. */
    char path[256];
    chunk_file(0, 8, path, sizeof(path));
    int fd = fsio_open(r.fs[0], path, O_RDWR, 0);
    assert_true(fd >= 0);
    uint8_t junk[8192];
    memset(junk, 0xab, sizeof(junk));
    assert_int_equal(fsio_pwrite(r.fs[0], fd, junk, sizeof(junk), 0),
                     (ssize_t)sizeof(junk));
    assert_int_equal(fsio_close(r.fs[0], fd), 0);

    rig_open(&r);
    assert_int_equal(list_count(r.v), nc);
    for (size_t k = 0; k < nc; k++) {
        int keep = c[k].keep;
        assert_int_equal(vols_locate(r.v, c[k].id), keep);
        assert_true(has_file(&r, (size_t)keep, c[k].id));
        assert_false(has_file(&r, (size_t)(1 - keep), c[k].id));
        uint32_t ver;
        uint64_t len;
        assert_int_equal(vols_stat(r.v, c[k].id, &ver, &len), 0);
        assert_int_equal(ver, c[k].ver[keep]);
        expect_data(r.v, c[k].id, keep ? b : a, c[k].len[keep]);
    }
    rig_free(&r);
}

/* Chunks 1..n written and synced; where[id] records their directory. */
static void populate(struct rig *r, uint64_t n, int *where, size_t *len)
{
    uint8_t data[2 * B + 100];
    for (uint64_t id = 1; id <= n; id++) {
        len[id] = B + 7 * id;
        fill(data, len[id], id);
        assert_int_equal(vols_create(r->v, id, 2), 0);
        assert_int_equal(vols_write(r->v, id, 2, 0, data, len[id], NULL,
                                    STORE_SYNC), 0);
        where[id] = vols_locate(r->v, id);
        assert_true(where[id] >= 0);
    }
}

/* A directory whose disk returns EIO fails alone: its chunks are listed
 * lost (once) and leave every answer; the others keep serving and take
 * the new chunks; with the last one gone nothing can be stored. */
static void test_failed_dir(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    rig_open(&r);
    enum { N = 10 };
    int where[N + 1];
    size_t len[N + 1];
    populate(&r, N, where, len);
    size_t n1 = 0;
    uint64_t a_chunk1 = 0, a_chunk0 = 0;
    for (uint64_t id = 1; id <= N; id++) {
        n1 += where[id] == 1;
        if (where[id] == 1 && !a_chunk1)
            a_chunk1 = id;
        if (where[id] == 0 && !a_chunk0)
            a_chunk0 = id;
    }
    assert_true(n1 > 0 && n1 < N);
    /* d0 gets a finite disk, so the unlimited d1 would win any placement
     * if it were still considered. */
    assert_int_equal(fsio_sim_set_capacity(r.fs[0], 64 * CAP), 0);

    assert_int_equal(fsio_sim_fail_always(r.fs[1], FSIO_OP_READ, EIO), 0);
    uint8_t buf[4 * B];
    assert_int_equal(vols_read(r.v, a_chunk1, 0, 0, sizeof(buf), buf, NULL),
                     -EIO);
    assert_true(vols_dir_failed(r.v, 1));
    assert_false(vols_dir_failed(r.v, 0));
    assert_int_equal(r.fails, 1);
    assert_int_equal(r.last_left, 1);
    assert_string_equal(r.last_dir, "/d1");
    assert_int_equal(vols_healthy(r.v), 1);

    struct store_info *lost;
    size_t nlost;
    vols_take_lost(r.v, &lost, &nlost);
    assert_int_equal(nlost, n1);
    for (size_t k = 0; k < nlost; k++) {
        assert_true(lost[k].id >= 1 && lost[k].id <= N);
        assert_int_equal(where[lost[k].id], 1);
        assert_int_equal(lost[k].version, 2);
        assert_int_equal(lost[k].length, len[lost[k].id]);
        assert_true(lost[k].corrupt);
        for (size_t j = 0; j < k; j++)
            assert_true(lost[j].id != lost[k].id);
    }
    free(lost);
    vols_take_lost(r.v, &lost, &nlost);          /* each reported once */
    assert_int_equal(nlost, 0);
    assert_null(lost);

    /* d1's chunks are gone from every answer; d0's are all there. */
    assert_int_equal(list_count(r.v), N - n1);
    uint8_t data[2 * B + 100];
    for (uint64_t id = 1; id <= N; id++) {
        uint32_t ver;
        uint64_t l;
        if (where[id] == 1) {
            assert_int_equal(vols_stat(r.v, id, &ver, &l), -ENOENT);
            assert_int_equal(vols_locate(r.v, id), -ENOENT);
            continue;
        }
        fill(data, len[id], id);
        expect_data(r.v, id, data, len[id]);
        assert_int_equal(vols_verify(r.v, id, 2), 0);
    }
    uint64_t *bad;
    size_t nbad;
    vols_take_bad(r.v, &bad, &nbad);
    assert_int_equal(nbad, 0);
    /* New chunks, a lost one re-replicated here included, go to d0. */
    for (uint64_t id = 100; id < 104; id++) {
        assert_int_equal(vols_create(r.v, id, 1), 0);
        assert_int_equal(vols_locate(r.v, id), 0);
    }
    assert_int_equal(vols_create(r.v, a_chunk1, 2), 0);
    assert_int_equal(vols_locate(r.v, a_chunk1), 0);
    uint64_t total, used, avail;
    assert_int_equal(vols_space(r.v, &total, &used, &avail), 0);
    assert_int_equal(total, 64 * CAP);            /* d0 alone */
    /* The disk coming back does not bring the directory back. */
    assert_int_equal(fsio_sim_fail_always(r.fs[1], FSIO_OP_READ, 0), 0);
    assert_true(vols_dir_failed(r.v, 1));
    assert_int_equal(vols_check(r.v), 1);
    assert_int_equal(r.fails, 1);

    /* The last directory fails: nothing can be stored any more. */
    assert_int_equal(fsio_sim_fail_always(r.fs[0], FSIO_OP_WRITE, EIO), 0);
    assert_int_equal(vols_write(r.v, a_chunk0, 2, 0, data, 10, NULL,
                                STORE_SYNC), -EIO);
    assert_int_equal(r.fails, 2);
    assert_int_equal(r.last_left, 0);
    assert_int_equal(vols_healthy(r.v), 0);
    assert_int_equal(vols_create(r.v, 200, 1), -EIO);
    assert_int_equal(vols_space(r.v, &total, &used, &avail), -EIO);
    assert_int_equal(list_count(r.v), 0);
    vols_take_lost(r.v, &lost, &nlost);
    assert_int_equal(nlost, N - n1 + 5);
    free(lost);
    rig_free(&r);
}

/*
 * The ids of a failed directory stay lost: the first write session of a
 * chunk that lived there (a create with vols_create_new, as a CS_WRITE
 * with prev_version 0 makes) is refused with -EIO and places nothing,
 * where it would have re-created the chunk holding zeros before the write.
 * A new id is created, even by a write past its start (a hole, as a
 * seeking writer makes); a re-replication (vols_create) of a lost id is
 * taken, and the id stays lost after the copy is deleted again.
 */
static void test_lost_ids(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    rig_open(&r);
    enum { N = 10 };
    int where[N + 1];
    size_t len[N + 1];
    populate(&r, N, where, len);
    uint64_t on1 = 0;
    for (uint64_t id = 1; id <= N; id++) {
        assert_false(vols_lost(r.v, id));
        if (where[id] == 1 && !on1)
            on1 = id;
    }
    assert_true(on1 != 0);
    /* Before the failure a new session's create of a held id is EEXIST. */
    assert_int_equal(vols_create_new(r.v, on1, 3), -EEXIST);

    assert_int_equal(fsio_sim_fail_always(r.fs[1], FSIO_OP_READ, EIO), 0);
    uint8_t buf[4 * B];
    assert_int_equal(vols_read(r.v, on1, 0, 0, B, buf, NULL), -EIO);
    assert_true(vols_dir_failed(r.v, 1));
    assert_int_equal(fsio_sim_fail_always(r.fs[1], FSIO_OP_READ, 0), 0);

    uint32_t ver;
    uint64_t l;
    for (uint64_t id = 1; id <= N; id++) {
        if (where[id] == 1) {
            assert_true(vols_lost(r.v, id));
            assert_int_equal(vols_stat(r.v, id, &ver, &l), -ENOENT);
            assert_int_equal(vols_create_new(r.v, id, 2), -EIO);
            assert_int_equal(vols_locate(r.v, id), -ENOENT);
            assert_false(has_file(&r, 0, id));
            assert_int_equal(vols_write(r.v, id, 2, len[id], buf, B, NULL,
                                        0), -ENOENT);
        } else {
            assert_false(vols_lost(r.v, id));
            assert_int_equal(vols_create_new(r.v, id, 3), -EEXIST);
        }
    }
    struct store_info *lost;
    size_t nlost;
    vols_take_lost(r.v, &lost, &nlost);          /* refusals add nothing */
    size_t n1 = 0;
    for (uint64_t id = 1; id <= N; id++)
        n1 += where[id] == 1;
    assert_int_equal(nlost, n1);
    free(lost);

    /* A new chunk whose first write starts at 2 blocks: a hole, then the
     * data. */
    const uint64_t fresh = 500;
    assert_false(vols_lost(r.v, fresh));
    assert_int_equal(vols_create_new(r.v, fresh, 1), 0);
    assert_int_equal(vols_locate(r.v, fresh), 0);
    uint8_t want[3 * B];
    memset(want, 0, 2 * B);
    fill(want + 2 * B, B, 77);
    assert_int_equal(vols_write(r.v, fresh, 1, 2 * B, want + 2 * B, B, NULL,
                                STORE_SYNC), 0);
    expect_data(r.v, fresh, want, sizeof(want));

    /* Re-replication copies the whole chunk: taken, into d0. */
    assert_int_equal(vols_create(r.v, on1, 2), 0);
    assert_int_equal(vols_locate(r.v, on1), 0);
    assert_int_equal(vols_create_new(r.v, on1, 3), -EEXIST);
    assert_int_equal(vols_delete(r.v, on1), 0);
    assert_true(vols_lost(r.v, on1));
    assert_int_equal(vols_create_new(r.v, on1, 3), -EIO);
    assert_false(has_file(&r, 0, on1));
    vols_take_lost(r.v, &lost, &nlost);
    assert_int_equal(nlost, 0);
    free(lost);
    rig_free(&r);
}

/* A directory nobody writes to is found failed by the probe. */
static void test_probe(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    rig_open(&r);
    enum { N = 6 };
    int where[N + 1];
    size_t len[N + 1];
    populate(&r, N, where, len);
    assert_int_equal(vols_check(r.v), 2);
    assert_int_equal(r.fails, 0);
    assert_int_equal(fsio_sim_fail_always(r.fs[0], FSIO_OP_OPEN, EIO), 0);
    assert_int_equal(vols_check(r.v), 1);
    assert_true(vols_dir_failed(r.v, 0));
    assert_int_equal(r.fails, 1);
    assert_string_equal(r.last_dir, "/d0");
    struct store_info *lost;
    size_t nlost, n0 = 0;
    vols_take_lost(r.v, &lost, &nlost);
    for (uint64_t id = 1; id <= N; id++)
        n0 += where[id] == 0;
    assert_int_equal(nlost, n0);
    for (size_t k = 0; k < nlost; k++) {
        assert_int_equal(where[lost[k].id], 0);
        assert_true(vols_lost(r.v, lost[k].id));
        assert_int_equal(vols_create_new(r.v, lost[k].id, 2), -EIO);
    }
    free(lost);
    assert_int_equal(list_count(r.v), N - n0);
    rig_free(&r);
}

/* Power cuts: after a reopen every chunk is in the directory it was
 * created in, once, and every synced write reads back. */
static void test_power_cuts(void **state)
{
    (void)state;
    enum { N = 8 };
    static const enum fsio_crash policy[] = {
        FSIO_CRASH_DROP_ALL, FSIO_CRASH_KEEP_RANDOM, FSIO_CRASH_TEAR,
    };
    for (uint64_t seed = 1; seed <= 24; seed++) {
        struct rig r;
        rig_init(&r, 2);
        rig_open(&r);
        int where[N + 1];
        size_t len[N + 1];
        populate(&r, N, where, len);
        /* Unsynced work after the synced writes: appends, a create
         * whose file holds nothing synced, a version bump that is. */
        uint8_t junk[B];
        fill(junk, sizeof(junk), seed);
        for (uint64_t id = 1; id <= N; id += 2)
            assert_int_equal(vols_write(r.v, id, 2, len[id], junk,
                                        sizeof(junk), NULL, 0), 0);
        assert_int_equal(vols_create(r.v, N + 1, 1), 0);
        int where_new = vols_locate(r.v, N + 1);
        vols_close(r.v);
        for (size_t i = 0; i < 2; i++)
            assert_int_equal(fsio_sim_crash(r.fs[i], policy[seed % 3],
                                            seed * 2 + i), 0);
        rig_open(&r);
        assert_int_equal(list_count(r.v), N + 1);
        assert_int_equal(vols_locate(r.v, N + 1), where_new);
        uint8_t data[2 * B + 100];
        for (uint64_t id = 1; id <= N; id++) {
            assert_int_equal(vols_locate(r.v, id), where[id]);
            assert_true(has_file(&r, (size_t)where[id], id));
            assert_false(has_file(&r, (size_t)(1 - where[id]), id));
            uint32_t ver;
            uint64_t l;
            assert_int_equal(vols_stat(r.v, id, &ver, &l), 0);
            assert_int_equal(ver, 2);
            assert_true(l >= len[id]);
            fill(data, len[id], id);
            uint8_t *buf = malloc(l);
            assert_non_null(buf);
            assert_int_equal(vols_read(r.v, id, 2, 0, l, buf, NULL),
                             (ssize_t)l);
            assert_memory_equal(buf, data, len[id]);
            free(buf);
            assert_int_equal(vols_verify(r.v, id, 2), 0);
        }
        rig_free(&r);
    }
}

struct worker {
    struct rig *r;
    uint64_t base;                  /* this thread's chunk ids: base + k */
    unsigned done;                  /* rounds completed */
    unsigned bad;                   /* wrong bytes read: must stay 0 */
};

/* Creates, writes, reads back and deletes its own chunks, round after
 * round; errors from a failed directory are expected, wrong data never. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t data[B + 33], buf[B + 64];
    for (unsigned round = 0; round < 60; round++) {
        for (uint64_t k = 0; k < 4; k++) {
            uint64_t id = w->base + k;
            fill(data, sizeof(data), id * 1000 + round);
            int rc = vols_create(w->r->v, id, 1);
            if (rc == 0)
                rc = vols_write(w->r->v, id, 1, 0, data, sizeof(data), NULL,
                                STORE_SYNC);
            if (rc == 0) {
                ssize_t n = vols_read(w->r->v, id, 1, 0, sizeof(buf), buf,
                                      NULL);
                if (n >= 0 && (n != (ssize_t)sizeof(data) ||
                               memcmp(buf, data, sizeof(data)) != 0))
                    w->bad++;
            }
            vols_delete(w->r->v, id);
        }
        __atomic_add_fetch(&w->done, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Threads at work on both directories while one of them dies: each
 * thread's data reads back right whenever it reads back at all, the
 * directory fails once, and the survivor serves alone at the end. */
static void test_threads(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 2);
    rig_open(&r);
    enum { T = 4 };
    struct worker w[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){ &r, 1000 * (uint64_t)(i + 1), 0, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]),
                         0);
    }
    while (__atomic_load_n(&w[0].done, __ATOMIC_RELAXED) < 10)
        sched_yield();
    for (int op = 0; op < FSIO_OP_COUNT; op++)
        assert_int_equal(fsio_sim_fail_always(r.fs[1], (enum fsio_op)op,
                                              EIO), 0);
    vols_check(r.v);
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
        assert_int_equal(w[i].done, 60);
    }
    assert_true(vols_dir_failed(r.v, 1));
    assert_false(vols_dir_failed(r.v, 0));
    assert_int_equal(r.fails, 1);
    struct store_info *lost;
    size_t nlost;
    vols_take_lost(r.v, &lost, &nlost);
    for (size_t k = 0; k < nlost; k++)
        for (size_t j = 0; j < k; j++)
            assert_true(lost[j].id != lost[k].id);
    free(lost);
    uint8_t data[100];
    fill(data, sizeof(data), 3);
    assert_int_equal(vols_create(r.v, 7, 1), 0);
    assert_int_equal(vols_locate(r.v, 7), 0);
    assert_int_equal(vols_write(r.v, 7, 1, 0, data, sizeof(data), NULL,
                                STORE_SYNC), 0);
    expect_data(r.v, 7, data, sizeof(data));
    rig_free(&r);
}

int main(void)
{
    if (!getenv("DFS_TEST_VERBOSE"))
        log_init("test_vols", LOG_ERROR, "/dev/null");
    if (getenv("DFS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("DFS_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_placement_free_space),
        cmocka_unit_test(test_placement_reserved),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_failed_dir),
        cmocka_unit_test(test_lost_ids),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_power_cuts),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("vols", tests, NULL, NULL);
}
