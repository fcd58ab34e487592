/*
 * Tests of the chunk store (chunkserver/store): block CRCs in the
 * protocol's layout, partial writes, holes, versions, create / delete /
 * truncate, the start-up scan, corruption of data and headers, power cuts
 * over many seeds (fsio_sim_crash), ENOSPC and EIO, a differential run
 * against an in-memory model, injected write failures, and threads on a
 * real directory.  Randomized tests print their seeds; DFS_TEST_SEED=N
 * replays one, DFS_TEST_SEEDS=A-B runs a longer soak, and
 * DFS_TEST_FILTER=pattern runs the matching tests only.  Log
 * lines go to /dev/null unless DFS_TEST_VERBOSE is set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkserver/chunkfile.h"
#include "chunkserver/store.h"
#include "common/crc32c.h"
#include "common/dfs_error.h"
#include "common/fsio.h"
#include "common/log.h"
#include "common/wire.h"

#define B        ((uint64_t)STORE_BLOCK_SIZE)
#define CAP      (UINT64_C(1) << 20)          /* chunk size in most tests */
#define NB       (CAP / B)
#define DIR      "/data"
#define CLUSTER  UINT64_C(0xc1c1c1c1)

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

static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *x, uint64_t n)
{
    return n ? rng_next(x) % n : 0;
}

/* Seeds first..last, or $DFS_TEST_SEEDS ("A-B", a longer soak), or just
 * $DFS_TEST_SEED when set. */
static void seed_range(const char *test, uint64_t *first, uint64_t *last)
{
    const char *env = getenv("DFS_TEST_SEEDS");
    unsigned long long a, b;
    if (env && sscanf(env, "%llu-%llu", &a, &b) == 2) {
        *first = a;
        *last = b;
    }
    env = getenv("DFS_TEST_SEED");
    if (env)
        *first = *last = strtoull(env, NULL, 0);
    print_message("%s: seeds %" PRIu64 "-%" PRIu64
                  " (DFS_TEST_SEED=N replays one)\n", test, *first, *last);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rng_next(&seed);
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
}

/* The CRCs of data[0..len) at chunk offset off in the DATA layout, by a
 * loop independent of the store's. */
static uint32_t *piece_crcs(uint64_t off, const uint8_t *data, size_t len)
{
    uint32_t *v = calloc(len / B + 2, sizeof(*v));
    assert_non_null(v);
    size_t i = 0;
    for (uint64_t pos = off; pos < off + len; i++) {
        uint64_t cell_end = (pos / B + 1) * B;
        uint64_t stop = cell_end < off + len ? cell_end : off + len;
        v[i] = crc32c(0, data + (pos - off), (size_t)(stop - pos));
        pos = stop;
    }
    return v;
}

static struct store *open_store_p(struct fsio *fs, uint64_t cap,
                                  uint64_t reserved)
{
    struct store_params p = { .chunk_size = cap, .reserved_bytes = reserved,
                              .cluster_id = CLUSTER };
    struct store *s = NULL;
    char err[256];
    int rc = store_open(fs, DIR, &p, &s, err, sizeof(err));
    if (rc != 0)
        print_error("store_open: %s (%s)\n", dfs_strerror(rc), err);
    CHECK(rc == 0);
    return s;
}

static struct store *open_store(struct fsio *fs)
{
    return open_store_p(fs, CAP, 0);
}

static struct fsio *new_sim(void)
{
    struct fsio *fs = fsio_sim_new();
    assert_non_null(fs);
    return fs;
}

/* Writes with CRCs computed by the test. */
static int put(struct store *s, uint64_t id, uint32_t ver, uint64_t off,
               const uint8_t *data, size_t len, unsigned flags)
{
    uint32_t *crcs = piece_crcs(off, data, len);
    int rc = store_write(s, id, ver, off, data, len, crcs, flags);
    free(crcs);
    return rc;
}

/* Reads [off, off+len) and checks it equals want[0..n) with the CRCs the
 * protocol's layout gives for it. */
static void expect_read(struct store *s, uint64_t id, uint64_t off,
                        size_t len, const uint8_t *want, size_t n)
{
    uint8_t *buf = malloc(len + 1);
    uint32_t *crcs = calloc(store_nblocks(off, len) + 1, sizeof(*crcs));
    assert_non_null(buf);
    assert_non_null(crcs);
    ssize_t got = store_read(s, id, 0, off, len, buf, crcs);
    CHECK(got == (ssize_t)n);
    CHECK(n == 0 || memcmp(buf, want, n) == 0);
    uint32_t *exp = piece_crcs(off, want, n);
    for (uint32_t i = 0; i < store_nblocks(off, n); i++)
        CHECK(crcs[i] == exp[i]);
    free(exp);
    free(crcs);
    free(buf);
}

static void chunk_file(uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, DIR "/%02x/%016" PRIx64 ".chunk",
             (unsigned)(id & 0xff), id);
}

/* Overwrites n bytes at file offset off of chunk id's file, behind the
 * store's back (bit rot). */
static void poke_file(struct fsio *fs, uint64_t id, uint64_t off,
                      const void *p, size_t n)
{
    char path[256];
    chunk_file(id, path, sizeof(path));
    int fd = fsio_open(fs, path, O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, p, n, (off_t)off), (ssize_t)n);
    assert_int_equal(fsio_fdatasync(fs, fd), 0);
    fsio_close(fs, fd);
}

static void flip_file_byte(struct fsio *fs, uint64_t id, uint64_t off)
{
    char path[256];
    chunk_file(id, path, sizeof(path));
    int fd = fsio_open(fs, path, O_RDONLY, 0);
    assert_true(fd >= 0);
    uint8_t c = 0;
    assert_int_equal(fsio_pread(fs, fd, &c, 1, (off_t)off), 1);
    fsio_close(fs, fd);
    c ^= 0x5a;
    poke_file(fs, id, off, &c, 1);
}

static bool in_bad_list(struct store *s, uint64_t id)
{
    uint64_t *ids;
    size_t n;
    store_take_bad(s, &ids, &n);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found |= ids[i] == id;
    free(ids);
    return found;
}

/* ======================================================================== */
/* identity and open                                                        */
/* ======================================================================== */

static void test_identity(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    assert_int_equal(store_cluster_id(s), CLUSTER);
    assert_int_equal(store_server_id(s), 0);
    assert_int_equal(store_set_identity(s, CLUSTER, 7), 0);
    assert_int_equal(store_set_identity(s, CLUSTER + 1, 7),
                     -DFS_ECLUSTER);
    store_close(s);

    /* Survives a power cut: written atomically and durably. */
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    struct store_params p = { .chunk_size = CAP, .cluster_id = CLUSTER + 1 };
    char err[256];
    assert_int_equal(store_open(fs, DIR, &p, &s, err, sizeof(err)),
                     -DFS_ECLUSTER);
    assert_non_null(strstr(err, "belongs to cluster"));
    p.cluster_id = 0;               /* not known yet: take the directory's */
    assert_int_equal(store_open(fs, DIR, &p, &s, err, sizeof(err)), 0);
    assert_int_equal(store_cluster_id(s), CLUSTER);
    assert_int_equal(store_server_id(s), 7);
    store_close(s);

    /* A damaged identity file is refused, not guessed at. */
    int fd = fsio_open(fs, DIR "/dfs-store.id", O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, "X", 1, 20), 1);
    fsio_close(fs, fd);
    assert_int_equal(store_open(fs, DIR, &p, &s, err, sizeof(err)),
                     -DFS_ECORRUPT);
    assert_non_null(strstr(err, "dfs-store.id"));

    /* Invalid chunk size. */
    p.chunk_size = 1000;
    assert_int_equal(store_open(fs, "/other", &p, &s, err, sizeof(err)),
                     -DFS_ECONF);
    fsio_free(fs);
}

static void test_fresh_adopts(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store_params p = { .chunk_size = CAP };
    struct store *s;
    assert_int_equal(store_open(fs, DIR, &p, &s, NULL, 0), 0);
    assert_int_equal(store_cluster_id(s), 0);
    store_close(s);
    p.cluster_id = CLUSTER;         /* a directory without a cluster adopts */
    assert_int_equal(store_open(fs, DIR, &p, &s, NULL, 0), 0);
    assert_int_equal(store_cluster_id(s), CLUSTER);
    store_close(s);
    p.cluster_id = CLUSTER + 5;
    assert_int_equal(store_open(fs, DIR, &p, &s, NULL, 0), -DFS_ECLUSTER);
    fsio_free(fs);
}

/* ======================================================================== */
/* blocks, CRCs, holes, versions                                            */
/* ======================================================================== */

/* What store_read returns is exactly a DATA section as wire builds it. */
static void test_crc_layout_matches_wire(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t *data = malloc(CAP);
    fill(data, CAP, 1);
    assert_int_equal(store_create(s, 1, 1), 0);
    assert_int_equal(put(s, 1, 1, 0, data, 3 * B + 100, 0), 0);

    static const uint64_t ranges[][2] = {
        { 0, 3 * B + 100 }, { 10, 5 }, { B - 1, 2 }, { 7, 2 * B + 50 },
        { 3 * B, 100 }, { 2 * B + 9, B + 91 },
    };
    for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
        uint64_t off = ranges[r][0], len = ranges[r][1];
        uint8_t *buf = malloc(len);
        uint32_t crcs[8];
        assert_int_equal(store_read(s, 1, 1, off, len, buf, crcs),
                         (ssize_t)len);
        struct wire_writer w;
        wire_writer_init(&w);
        wire_put_blocks(&w, off, data + off, len);
        struct wire_reader rd;
        wire_reader_init(&rd, w.buf, w.len);
        struct wire_blocks wb;
        assert_int_equal(wire_get_blocks(&rd, &wb, UINT32_MAX), 0);
        assert_int_equal(wb.nblocks, store_nblocks(off, len));
        for (uint32_t i = 0; i < wb.nblocks; i++)
            assert_int_equal(crcs[i], wire_blocks_crc(&wb, i));
        assert_memory_equal(buf, wb.data, len);
        wire_writer_release(&w);
        free(buf);
    }
    free(data);
    store_close(s);
    fsio_free(fs);
}

/* A write whose CRC does not match is refused whole. */
static void test_bad_incoming_crc(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t data[3 * 65536];
    fill(data, sizeof(data), 2);
    assert_int_equal(store_create(s, 9, 1), 0);
    assert_int_equal(put(s, 9, 1, 0, data, B, STORE_SYNC), 0);

    uint8_t other[sizeof(data)];
    fill(other, sizeof(other), 3);
    uint32_t *crcs = piece_crcs(B / 2, other, 2 * B);
    crcs[2] ^= 1;                   /* the last piece arrived damaged */
    assert_int_equal(store_write(s, 9, 1, B / 2, other, 2 * B, crcs, 0),
                     -DFS_ECORRUPT);
    free(crcs);
    uint32_t ver;
    uint64_t len;
    assert_int_equal(store_stat(s, 9, &ver, &len), 0);
    assert_int_equal(len, B);
    expect_read(s, 9, 0, B, data, B);
    assert_false(in_bad_list(s, 9));   /* the stored chunk is fine */
    store_close(s);
    fsio_free(fs);
}

/* Partial writes at odd offsets and lengths across block boundaries,
 * compared with a flat model, before and after a reopen. */
static void test_partial_writes(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t *model = calloc(1, CAP), *data = malloc(CAP);
    uint64_t len = 0;
    assert_int_equal(store_create(s, 0x1234, 3), 0);
    static const uint64_t w[][2] = {
        { 100, 200000 }, { 65535, 2 }, { 3 * B - 1, B + 2 }, { 1, 1 },
        { 0, B }, { 7 * B + 3, 5 }, { 5 * B, 2 * B + 3 }, { 9, 4 * B },
        { 2 * B + 7, 3 },
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        fill(data, (size_t)w[i][1], 100 + i);
        assert_int_equal(put(s, 0x1234, 3, w[i][0], data, (size_t)w[i][1],
                             0), 0);
        memcpy(model + w[i][0], data, (size_t)w[i][1]);
        if (w[i][0] + w[i][1] > len)
            len = w[i][0] + w[i][1];
        expect_read(s, 0x1234, 0, CAP, model, (size_t)len);
    }
    expect_read(s, 0x1234, B - 3, 7, model + B - 3, 7);
    expect_read(s, 0x1234, len - 10, 100, model + len - 10, 10);
    expect_read(s, 0x1234, len, 100, NULL, 0);
    assert_int_equal(store_sync(s, 0x1234), 0);
    assert_int_equal(store_verify(s, 0x1234, 3), 0);
    store_close(s);
    s = open_store(fs);
    expect_read(s, 0x1234, 0, CAP, model, (size_t)len);
    free(model);
    free(data);
    store_close(s);
    fsio_free(fs);
}

/* The chunk's bytes sit at the documented data offset, and every full
 * block's CRC in the documented array (docs/CHUNKS.md). */
static void test_file_layout(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t data[2 * 65536 + 10];
    fill(data, sizeof(data), 4);
    assert_int_equal(store_create(s, 0xab, 1), 0);
    assert_int_equal(put(s, 0xab, 1, 0, data, sizeof(data), STORE_SYNC), 0);
    assert_int_equal(chunkfile_data_off(CAP), 12288);
    char path[256];
    chunk_file(0xab, path, sizeof(path));
    assert_non_null(strstr(path, "/ab/00000000000000ab.chunk"));
    int fd = fsio_open(fs, path, O_RDONLY, 0);
    assert_true(fd >= 0);
    uint8_t buf[sizeof(data)];
    assert_int_equal(fsio_pread(fs, fd, buf, sizeof(buf), 12288),
                     (ssize_t)sizeof(buf));
    assert_memory_equal(buf, data, sizeof(data));
    uint8_t crc[4];
    assert_int_equal(fsio_pread(fs, fd, crc, 4, CHUNKFILE_CRC_OFF + 4), 4);
    uint32_t c = crc[0] | crc[1] << 8 | crc[2] << 16 | (uint32_t)crc[3] << 24;
    assert_int_equal(c, crc32c(0, data + B, B));
    struct chunkfile_hdr h;
    bool damaged, interrupted;
    assert_int_equal(chunkfile_load(fs, fd, &h, &damaged, &interrupted), 1);
    assert_false(damaged);
    assert_false(interrupted);      /* appends never mark */
    assert_int_equal(h.length, sizeof(data));
    assert_int_equal(h.tail_crc, crc32c(0, data + 2 * B, 10));
    fsio_close(fs, fd);
    store_close(s);
    fsio_free(fs);
}

static void test_holes(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t *model = calloc(1, CAP), data[300];
    fill(data, sizeof(data), 5);
    assert_int_equal(store_create(s, 5, 1), 0);
    /* A write far past the end: the gap reads as zeros. */
    assert_int_equal(put(s, 5, 1, 5 * B + 10, data, 300, 0), 0);
    memcpy(model + 5 * B + 10, data, 300);
    expect_read(s, 5, 0, CAP, model, 5 * B + 310);
    /* Into the gap, then past the end again from mid-block. */
    assert_int_equal(put(s, 5, 1, 2 * B + 5, data, 100, 0), 0);
    memcpy(model + 2 * B + 5, data, 100);
    assert_int_equal(put(s, 5, 1, 6 * B + 100, data, 10, STORE_SYNC), 0);
    memcpy(model + 6 * B + 100, data, 10);
    expect_read(s, 5, 0, CAP, model, 6 * B + 110);
    /* Growing by truncate reads zeros, and is durable. */
    assert_int_equal(store_truncate(s, 5, 1, 9 * B + 1), 0);
    expect_read(s, 5, 0, CAP, model, 9 * B + 1);
    store_close(s);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    s = open_store(fs);
    expect_read(s, 5, 0, CAP, model, 9 * B + 1);
    assert_int_equal(store_verify(s, 5, 0), 0);
    free(model);
    store_close(s);
    fsio_free(fs);
}

static void test_versions(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t data[100], buf[100];
    fill(data, sizeof(data), 6);
    assert_int_equal(store_create(s, 77, 0), -EINVAL);
    assert_int_equal(store_create(s, 77, 4), 0);
    assert_int_equal(store_create(s, 77, 5), -EEXIST);
    assert_int_equal(put(s, 77, 3, 0, data, 100, 0), -DFS_ESTALE_VER);
    assert_int_equal(put(s, 77, 4, 0, data, 100, 0), 0);
    assert_int_equal(store_read(s, 77, 3, 0, 100, buf, NULL),
                     -DFS_ESTALE_VER);
    assert_int_equal(store_read(s, 77, 0, 0, 100, buf, NULL), 100);
    assert_int_equal(store_set_version(s, 77, 0), -EINVAL);
    assert_int_equal(store_set_version(s, 77, 5), 0);
    assert_int_equal(put(s, 77, 4, 0, data, 100, 0), -DFS_ESTALE_VER);
    assert_int_equal(store_truncate(s, 77, 4, 0), -DFS_ESTALE_VER);
    assert_int_equal(store_verify(s, 77, 4), -DFS_ESTALE_VER);
    assert_int_equal(store_read(s, 77, 5, 0, 100, buf, NULL), 100);
    store_close(s);
    /* The version change was durable, and took the write with it. */
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 2), 0);
    s = open_store(fs);
    uint32_t ver;
    uint64_t len;
    assert_int_equal(store_stat(s, 77, &ver, &len), 0);
    assert_int_equal(ver, 5);
    assert_int_equal(len, 100);
    expect_read(s, 77, 0, 100, data, 100);
    assert_int_equal(store_read(s, 78, 0, 0, 1, buf, NULL), -ENOENT);
    assert_int_equal(put(s, 78, 1, 0, data, 1, 0), -ENOENT);
    store_close(s);
    fsio_free(fs);
}

static void test_create_delete_truncate(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t *data = malloc(CAP), *model = calloc(1, CAP);
    fill(data, CAP, 7);
    assert_int_equal(store_create(s, 3, 1), 0);
    assert_int_equal(put(s, 3, 1, 0, data, 4 * B + 7, 0), 0);
    memcpy(model, data, 4 * B + 7);
    assert_int_equal(put(s, 3, 1, CAP - 1, data, 2, 0), -EFBIG);
    assert_int_equal(store_truncate(s, 3, 1, CAP + 1), -EFBIG);

    /* Shrink to mid-block, then write after a gap and grow. */
    assert_int_equal(store_truncate(s, 3, 1, 2 * B + 33), 0);
    memset(model + 2 * B + 33, 0, CAP - 2 * B - 33);
    expect_read(s, 3, 0, CAP, model, 2 * B + 33);
    assert_int_equal(put(s, 3, 1, 3 * B, data, 10, 0), 0);
    memcpy(model + 3 * B, data, 10);
    expect_read(s, 3, 0, CAP, model, 3 * B + 10);
    assert_int_equal(store_truncate(s, 3, 1, 3 * B + 10), 0);   /* = sync */
    assert_int_equal(store_truncate(s, 3, 1, 0), 0);
    expect_read(s, 3, 0, CAP, NULL, 0);
    assert_int_equal(store_truncate(s, 3, 1, B), 0);
    memset(model, 0, CAP);
    expect_read(s, 3, 0, CAP, model, B);

    /* Delete: gone from the index and the disk, durably; the id can be
     * used again. */
    uint64_t total, used, avail;
    assert_int_equal(store_space(s, &total, &used, &avail), 0);
    assert_true(used >= chunkfile_data_off(CAP));
    assert_int_equal(store_delete(s, 3), 0);
    assert_int_equal(store_delete(s, 3), -ENOENT);
    uint32_t ver;
    uint64_t len;
    assert_int_equal(store_stat(s, 3, &ver, &len), -ENOENT);
    assert_int_equal(store_space(s, &total, &used, &avail), 0);
    assert_int_equal(used, 0);
    store_close(s);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 3), 0);
    s = open_store(fs);
    assert_int_equal(store_stat(s, 3, &ver, &len), -ENOENT);
    assert_int_equal(store_create(s, 3, 2), 0);
    assert_int_equal(store_stat(s, 3, &ver, &len), 0);
    assert_int_equal(ver, 2);
    assert_int_equal(len, 0);
    free(data);
    free(model);
    store_close(s);
    fsio_free(fs);
}

struct list_acc {
    size_t n;
    uint64_t ids[64];
    struct store_info info[64];
};

static int list_cb(const struct store_info *info, void *arg)
{
    struct list_acc *a = arg;
    if (a->n < 64) {
        a->ids[a->n] = info->id;
        a->info[a->n] = *info;
    }
    a->n++;
    return 0;
}

static const struct store_info *list_find(const struct list_acc *a,
                                          uint64_t id)
{
    for (size_t i = 0; i < a->n && i < 64; i++)
        if (a->ids[i] == id)
            return &a->info[i];
    return NULL;
}

/* The start-up scan finds every chunk, removes temporary files and
 * ignores strangers. */
static void test_scan(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t data[1000];
    fill(data, sizeof(data), 8);
    for (uint64_t i = 0; i < 40; i++) {
        uint64_t id = (i << 8) | (i % 3);   /* several per subdirectory */
        assert_int_equal(store_create(s, id, (uint32_t)i + 1), 0);
        assert_int_equal(put(s, id, (uint32_t)i + 1, 0, data, 10 + i,
                             STORE_SYNC), 0);
    }
    store_close(s);
    /* A create cut short, and a file that is not ours. */
    assert_int_equal(fsio_write_file_atomic(fs, DIR "/07",
                                            "tmp-0000000000000107", "x", 1),
                     0);
    assert_int_equal(fsio_write_file_atomic(fs, DIR "/07", "notes.txt", "x",
                                            1), 0);
    s = open_store(fs);
    struct list_acc a = { 0 };
    assert_int_equal(store_list(s, list_cb, &a), 0);
    assert_int_equal(a.n, 40);
    for (uint64_t i = 0; i < 40; i++) {
        const struct store_info *in = list_find(&a, (i << 8) | (i % 3));
        assert_non_null(in);
        assert_int_equal(in->version, i + 1);
        assert_int_equal(in->length, 10 + i);
        assert_false(in->corrupt);
    }
    struct fsio_stat st;
    assert_int_equal(fsio_stat(fs, DIR "/07/tmp-0000000000000107", &st),
                     -ENOENT);
    assert_int_equal(fsio_stat(fs, DIR "/07/notes.txt", &st), 0);
    store_close(s);
    fsio_free(fs);
}

static int count_cb(const struct store_info *info, void *arg)
{
    (void)info;
    ++*(size_t *)arg;
    return 0;
}

/* Enough chunks to make the index grow, then shrink by deletes. */
static void test_many_chunks(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    for (uint64_t id = 1; id <= 3000; id++)
        assert_int_equal(store_create(s, id * 7919, (uint32_t)id), 0);
    for (uint64_t id = 2; id <= 3000; id += 2)
        assert_int_equal(store_delete(s, id * 7919), 0);
    store_close(s);
    s = open_store(fs);
    size_t n = 0;
    assert_int_equal(store_list(s, count_cb, &n), 0);
    assert_int_equal(n, 1500);
    for (uint64_t id = 1; id <= 3000; id++) {
        uint32_t ver;
        uint64_t len;
        int rc = store_stat(s, id * 7919, &ver, &len);
        assert_int_equal(rc, id % 2 ? 0 : -ENOENT);
        assert_true(id % 2 == 0 || ver == id);
    }
    store_close(s);
    fsio_free(fs);
}

/* Chunk files stay open between calls up to max_open_files; beyond it
 * clean ones are closed, while a chunk with unsynced writes keeps its. */
static void test_open_files_bounded(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store_params p = { .chunk_size = CAP, .cluster_id = CLUSTER,
                              .max_open_files = 2 };
    struct store *s;
    assert_int_equal(store_open(fs, DIR, &p, &s, NULL, 0), 0);
    uint8_t data[3000], buf[3000];
    fill(data, sizeof(data), 23);
    for (uint64_t id = 1; id <= 6; id++) {
        assert_int_equal(store_create(s, id, 1), 0);
        assert_int_equal(put(s, id, 1, 0, data, 1000 + id, STORE_SYNC), 0);
        assert_true(fsio_sim_open_files(fs) <= 2);
    }
    for (uint64_t id = 1; id <= 4; id++)
        assert_int_equal(put(s, id, 1, 0, data + id, 500, 0), 0);
    assert_int_equal(fsio_sim_open_files(fs), 4);       /* all dirty */
    for (uint64_t id = 1; id <= 6; id++)
        assert_int_equal(store_read(s, id, 1, 0, 3000, buf, NULL),
                         (ssize_t)(1000 + id));
    assert_true(fsio_sim_open_files(fs) <= 5);
    for (uint64_t id = 1; id <= 4; id++) {
        assert_int_equal(store_sync(s, id), 0);
        expect_read(s, id, 0, 500, data + id, 500);
    }
    assert_true(fsio_sim_open_files(fs) <= 2);
    assert_int_equal(store_delete(s, 4), 0);
    store_close(s);
    assert_int_equal(fsio_sim_open_files(fs), 0);
    fsio_free(fs);
}

/* ======================================================================== */
/* corruption                                                               */
/* ======================================================================== */

static void test_corrupt_data(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t *data = malloc(5 * B), buf[65536];
    fill(data, 5 * B, 9);
    assert_int_equal(store_create(s, 42, 1), 0);
    assert_int_equal(put(s, 42, 1, 0, data, 5 * B - 5, STORE_SYNC), 0);
    uint64_t doff = chunkfile_data_off(CAP);
    flip_file_byte(fs, 42, doff + 2 * B + 1234);

    assert_int_equal(store_read(s, 42, 0, 2 * B + 5, 10, buf, NULL),
                     -DFS_ECORRUPT);
    assert_true(in_bad_list(s, 42));
    assert_false(in_bad_list(s, 42));       /* handed over once */
    expect_read(s, 42, B, B, data + B, B);
    expect_read(s, 42, 3 * B, 2 * B, data + 3 * B, 2 * B - 5);
    assert_int_equal(store_read(s, 42, 0, 0, 5 * B, data, NULL),
                     -DFS_ECORRUPT);
    assert_int_equal(store_verify(s, 42, 1), -DFS_ECORRUPT);
    struct list_acc a = { 0 };
    assert_int_equal(store_list(s, list_cb, &a), 0);
    assert_true(list_find(&a, 42)->corrupt);
    /* A partial write into the bad block must not launder it, whether it
     * misses the damaged byte or covers it (store.c, plan_overwrite). */
    memset(buf, 7, 16);
    assert_int_equal(put(s, 42, 1, 2 * B + 10, buf, 5, 0), 0);
    assert_int_equal(store_read(s, 42, 0, 2 * B + 10, 5, buf, NULL),
                     -DFS_ECORRUPT);
    memset(buf, 7, 16);
    assert_int_equal(put(s, 42, 1, 2 * B + 1230, buf, 10, 0), 0);
    assert_int_equal(store_read(s, 42, 0, 2 * B, 10, buf, NULL),
                     -DFS_ECORRUPT);
    /* Corrupt last (partial) block: its CRC lives in the header. */
    flip_file_byte(fs, 42, doff + 4 * B + 3);
    assert_int_equal(store_read(s, 42, 0, 4 * B, 10, buf, NULL),
                     -DFS_ECORRUPT);
    /* A damaged CRC entry fails its block as well. */
    flip_file_byte(fs, 42, CHUNKFILE_CRC_OFF + 4 * 1);
    assert_int_equal(store_read(s, 42, 0, B, 1, buf, NULL), -DFS_ECORRUPT);
    expect_read(s, 42, 0, B, data, B);
    /* Rewriting a whole bad block replaces it. */
    fill(data + 2 * B, B, 99);
    assert_int_equal(put(s, 42, 1, 2 * B, data + 2 * B, B, 0), 0);
    expect_read(s, 42, 2 * B, B, data + 2 * B, B);
    free(data);
    store_close(s);
    fsio_free(fs);
}

/* A cut chunk file: blocks past the cut fail, blocks before read. */
static void test_truncated_file(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t *data = malloc(4 * B), buf[16];
    fill(data, 4 * B, 10);
    assert_int_equal(store_create(s, 0x500, 1), 0);
    assert_int_equal(put(s, 0x500, 1, 0, data, 4 * B, STORE_SYNC), 0);
    store_close(s);
    char path[256];
    chunk_file(0x500, path, sizeof(path));
    int fd = fsio_open(fs, path, O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(fsio_ftruncate(fs, fd, chunkfile_data_off(CAP) +
                                            2 * B + 100), 0);
    fsio_close(fs, fd);
    s = open_store(fs);
    expect_read(s, 0x500, 0, 2 * B, data, 2 * B);
    assert_int_equal(store_read(s, 0x500, 0, 2 * B + 200, 16, buf, NULL),
                     -DFS_ECORRUPT);
    assert_int_equal(store_read(s, 0x500, 0, 3 * B, 16, buf, NULL),
                     -DFS_ECORRUPT);
    /* A file cut inside its header has no valid header at all. */
    assert_int_equal(store_create(s, 0x600, 1), 0);
    store_close(s);
    chunk_file(0x600, path, sizeof(path));
    fd = fsio_open(fs, path, O_RDWR, 0);
    assert_int_equal(fsio_ftruncate(fs, fd, 30), 0);
    fsio_close(fs, fd);
    s = open_store(fs);
    assert_true(in_bad_list(s, 0x600));
    free(data);
    store_close(s);
    fsio_free(fs);
}

static void test_corrupt_header(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t data[500], buf[500];
    fill(data, sizeof(data), 11);
    /* Slot 0 (create, v1), slot 1 (sync, v1 len 500), slot 0 (v2). */
    assert_int_equal(store_create(s, 0x21, 1), 0);
    assert_int_equal(put(s, 0x21, 1, 0, data, 500, STORE_SYNC), 0);
    assert_int_equal(store_set_version(s, 0x21, 2), 0);
    assert_int_equal(store_create(s, 0x22, 1), 0);
    assert_int_equal(put(s, 0x22, 1, 0, data, 500, STORE_SYNC), 0);
    store_close(s);

    /* The newest slot damaged: the previous one stands in (an older
     * version, which the master will treat as stale). */
    flip_file_byte(fs, 0x21, chunkfile_slot_off(0) + 35);
    /* Both slots damaged: the chunk is reported. */
    flip_file_byte(fs, 0x22, chunkfile_slot_off(0) + 10);
    flip_file_byte(fs, 0x22, chunkfile_slot_off(1) + 50);
    s = open_store(fs);
    uint32_t ver;
    uint64_t len;
    assert_int_equal(store_stat(s, 0x21, &ver, &len), 0);
    assert_int_equal(ver, 1);
    assert_int_equal(len, 500);
    expect_read(s, 0x21, 0, 500, data, 500);
    /* The next commit rewrites the damaged slot. */
    assert_int_equal(store_set_version(s, 0x21, 3), 0);

    uint64_t *ids;
    size_t nbad;
    store_take_bad(s, &ids, &nbad);
    assert_int_equal(nbad, 1);          /* 0x22, and not 0x21 */
    assert_int_equal(ids[0], 0x22);
    free(ids);
    struct list_acc a = { 0 };
    assert_int_equal(store_list(s, list_cb, &a), 0);
    assert_int_equal(a.n, 2);
    assert_true(list_find(&a, 0x22)->corrupt);
    assert_int_equal(list_find(&a, 0x22)->version, 0);
    assert_int_equal(store_stat(s, 0x22, &ver, &len), -DFS_ECORRUPT);
    assert_int_equal(store_read(s, 0x22, 0, 0, 10, buf, NULL),
                     -DFS_ECORRUPT);
    assert_int_equal(put(s, 0x22, 1, 0, data, 10, 0), -DFS_ECORRUPT);
    assert_int_equal(store_verify(s, 0x22, 0), -DFS_ECORRUPT);
    assert_int_equal(store_create(s, 0x22, 1), -EEXIST);
    assert_int_equal(store_delete(s, 0x22), 0);
    assert_int_equal(store_create(s, 0x22, 1), 0);
    store_close(s);

    s = open_store(fs);
    assert_int_equal(store_stat(s, 0x21, &ver, &len), 0);
    assert_int_equal(ver, 3);
    assert_false(in_bad_list(s, 0x21));
    /* A header naming another chunk is not trusted either. */
    char from[256], to[256];
    chunk_file(0x21, from, sizeof(from));
    chunk_file(0x121, to, sizeof(to));
    store_close(s);
    assert_int_equal(fsio_rename(fs, from, to), 0);
    s = open_store(fs);
    assert_true(in_bad_list(s, 0x121));
    assert_int_equal(store_stat(s, 0x21, &ver, &len), -ENOENT);
    store_close(s);
    fsio_free(fs);
}

/* ======================================================================== */
/* power cuts                                                               */
/* ======================================================================== */

#define CRASH_CHUNKS 3
#define MAX_SNAPS    64

/*
 * The model of one chunk across a power cut.  dur is the state of the last
 * commit.  A block whose durable bytes an unsynced write overwrote is
 * "at risk": after the cut each of its bytes may read as in dur or as in
 * any state the block passed through since (snaps) — an unacknowledged
 * write may land in part — and, where a disk tears writes, a byte an
 * unsynced write covered (touched) may be junk.  But the block never
 * fails: its committed bytes are kept (the overwrite marker).  Every other
 * block must read exactly as dur.
 */
struct cmodel {
    bool exists;
    uint32_t version;
    uint8_t cur[CAP], dur[CAP];
    uint64_t cur_len, dur_len;
    bool risk[NB];
    bool touched[CAP];
    uint8_t *snaps[NB][MAX_SNAPS];
    int nsnap[NB];
};

static void cmodel_commit(struct cmodel *m)
{
    /* Bytes past a length are zeros in cur and unused in dur. */
    memcpy(m->dur, m->cur, (size_t)(m->cur_len));
    m->dur_len = m->cur_len;
    memset(m->touched, 0, sizeof(m->touched));
    for (uint64_t b = 0; b < NB; b++) {
        m->risk[b] = false;
        for (int i = 0; i < m->nsnap[b]; i++)
            free(m->snaps[b][i]);
        m->nsnap[b] = 0;
    }
}

static void cmodel_write(struct cmodel *m, uint64_t off, const uint8_t *p,
                         size_t len)
{
    memcpy(m->cur + off, p, len);
    memset(m->touched + off, 1, len);
    if (off + len > m->cur_len)
        m->cur_len = off + len;
    for (uint64_t b = off / B; b <= (off + len - 1) / B; b++) {
        if (b * B < m->dur_len && off < m->dur_len)
            m->risk[b] = true;      /* overwrote durable bytes of b */
        if (!m->risk[b] || m->nsnap[b] == MAX_SNAPS)
            continue;
        m->snaps[b][m->nsnap[b]] = malloc(B);
        memcpy(m->snaps[b][m->nsnap[b]++], m->cur + b * B, B);
    }
}

/* Whether byte i of block b may read as c after a cut that tore writes
 * (torn) or not. */
static bool cmodel_byte_ok(const struct cmodel *m, uint64_t b, size_t i,
                           uint8_t c, bool torn)
{
    if (m->dur[b * B + i] == c || (torn && m->touched[b * B + i]))
        return true;
    for (int k = 0; k < m->nsnap[b]; k++)
        if (m->snaps[b][k][i] == c)
            return true;
    return false;
}

/* Whether the store's chunk is a state the model allows after a cut;
 * prints the first difference. */
static bool cmodel_check(struct store *s, uint64_t id, const struct cmodel *m,
                         bool torn)
{
    uint32_t ver;
    uint64_t len;
    int rc = store_stat(s, id, &ver, &len);
    if (!m->exists) {
        if (rc != -ENOENT)
            print_error("chunk %" PRIx64 ": deleted, stat %d\n", id, rc);
        return rc == -ENOENT;
    }
    if (rc != 0 || ver != m->version || len != m->dur_len) {
        print_error("chunk %" PRIx64 ": stat %d version %u/%u length %"
                    PRIu64 "/%" PRIu64 "\n", id, rc, ver, m->version, len,
                    m->dur_len);
        return false;
    }
    uint8_t buf[65536];
    for (uint64_t b = 0; b * B < m->dur_len; b++) {
        size_t n = (size_t)(m->dur_len - b * B < B ? m->dur_len - b * B : B);
        ssize_t got = store_read(s, id, 0, b * B, n, buf, NULL);
        bool ok = got == (ssize_t)n;
        for (size_t i = 0; ok && i < n; i++)
            ok = cmodel_byte_ok(m, b, i, buf[i], torn);
        if (!ok) {
            print_error("chunk %" PRIx64 " block %" PRIu64 ": read %zd, "
                        "at risk %d, %d states\n", id, b, got, m->risk[b],
                        m->nsnap[b]);
            return false;
        }
    }
    return true;
}

static void cmodel_free(struct cmodel *m)
{
    cmodel_commit(m);
    free(m);
}

/*
 * One random operation on a random chunk, reflected in the model.  It
 * returns 0, or -EIO once the write fault armed by crash_round fires: the
 * store is then failed, the call may have done any prefix of its disk
 * writes, and the model counts it as not acknowledged.
 */
static int crash_op(struct store *s, struct cmodel **m, uint64_t *rng)
{
    uint64_t c = rng_below(rng, CRASH_CHUNKS), id = 0x700 + c;
    struct cmodel *cm = m[c];
    uint64_t r = rng_below(rng, 100);
    int rc;
    if (!cm->exists) {
        rc = store_create(s, id, 1);
        if (rc == 0) {
            memset(cm->cur, 0, (size_t)cm->cur_len);
            cm->cur_len = 0;
            cm->version = 1;
            cm->exists = true;
            cmodel_commit(cm);
        }
    } else if (r < 70) {
        static uint8_t data[3 * 65536];
        uint64_t off = rng_below(rng, 2) ? cm->cur_len : rng_below(rng, CAP);
        if (off >= CAP)
            off = CAP - 1;
        uint64_t len = 1 + rng_below(rng, 3 * B);
        if (off + len > CAP)
            len = CAP - off;
        fill(data, (size_t)len, rng_next(rng));
        bool sync = rng_below(rng, 5) == 0;
        rc = put(s, id, cm->version, off, data, (size_t)len,
                 sync ? STORE_SYNC : 0);
        cmodel_write(cm, off, data, (size_t)len);
        if (sync && rc == 0)
            cmodel_commit(cm);
    } else if (r < 80) {
        rc = store_sync(s, id);
        if (rc == 0)
            cmodel_commit(cm);
    } else if (r < 87) {
        uint64_t len = rng_below(rng, CAP + 1);
        rc = store_truncate(s, id, cm->version, len);
        if (rc == 0) {
            if (len < cm->cur_len)
                memset(cm->cur + len, 0, (size_t)(cm->cur_len - len));
            cm->cur_len = len;
            cmodel_commit(cm);
        }
    } else if (r < 94) {
        rc = store_set_version(s, id, cm->version + 1);
        if (rc == 0) {
            cm->version++;
            cmodel_commit(cm);
        }
    } else {
        rc = store_delete(s, id);
        cm->exists = rc != 0;
    }
    CHECK(rc == 0 || rc == -EIO);
    return rc;
}

/* After the check: the model takes what the chunk now holds, blocks that
 * failed are written again from the durable state, and all is synced. */
static void crash_adopt(struct store *s, uint64_t id, struct cmodel *m)
{
    if (!m->exists)
        return;
    uint8_t buf[65536];
    memset(m->cur + m->dur_len, 0, (size_t)(m->cur_len > m->dur_len
                                            ? m->cur_len - m->dur_len : 0));
    m->cur_len = m->dur_len;
    for (uint64_t b = 0; b * B < m->dur_len; b++) {
        size_t n = (size_t)(m->dur_len - b * B < B ? m->dur_len - b * B : B);
        if (store_read(s, id, 0, b * B, n, buf, NULL) == (ssize_t)n) {
            memcpy(m->cur + b * B, buf, n);
            continue;
        }
        memcpy(m->cur + b * B, m->dur + b * B, n);
        CHECK(put(s, id, m->version, b * B, m->dur + b * B, n, 0) == 0);
    }
    CHECK(store_sync(s, id) == 0);
    cmodel_commit(m);
}

/* One seed: rounds of random operations, each ended by a power cut
 * (sometimes just before a random disk write, armed as a failing write)
 * and a check of every chunk.  m holds CRASH_CHUNKS models, reset here. */
static void crash_round(enum fsio_crash policy, uint64_t seed,
                        struct cmodel **m)
{
    cur_seed = seed;
    uint64_t rng = seed * 4 + (uint64_t)policy;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    for (int c = 0; c < CRASH_CHUNKS; c++) {
        memset(m[c]->cur, 0, (size_t)m[c]->cur_len);
        m[c]->cur_len = 0;
        cmodel_commit(m[c]);
        m[c]->exists = false;
    }
    for (int round = 0; round < 3; round++) {
        if (rng_below(&rng, 2))
            CHECK(fsio_sim_fail(fs, FSIO_OP_WRITE,
                                1 + (unsigned)rng_below(&rng, 40), EIO) == 0);
        int nops = 5 + (int)rng_below(&rng, 30);
        for (int i = 0; i < nops && crash_op(s, m, &rng) == 0; i++)
            ;
        store_close(s);
        CHECK(fsio_sim_crash(fs, policy, rng_next(&rng)) == 0);
        CHECK(fsio_sim_fail(fs, FSIO_OP_WRITE, 0, 0) == 0);
        s = open_store(fs);
        for (int c = 0; c < CRASH_CHUNKS; c++) {
            CHECK(cmodel_check(s, 0x700 + (uint64_t)c, m[c],
                              policy == FSIO_CRASH_TEAR));
            crash_adopt(s, 0x700 + (uint64_t)c, m[c]);
        }
    }
    store_close(s);
    fsio_free(fs);
}

static void test_power_cuts(void **state)
{
    (void)state;
    static const enum fsio_crash policies[] = {
        FSIO_CRASH_KEEP_ALL, FSIO_CRASH_DROP_ALL, FSIO_CRASH_KEEP_RANDOM,
        FSIO_CRASH_TEAR,
    };
    struct cmodel *m[CRASH_CHUNKS];
    for (int c = 0; c < CRASH_CHUNKS; c++) {
        m[c] = calloc(1, sizeof(*m[c]));
        assert_non_null(m[c]);
    }
    uint64_t first = 1, last = 60;
    seed_range("power_cuts", &first, &last);
    for (uint64_t seed = first; seed <= last; seed++)
        for (size_t p = 0; p < 4; p++)
            crash_round(policies[p], seed, m);
    for (int c = 0; c < CRASH_CHUNKS; c++)
        cmodel_free(m[c]);
}

/* The checker bites: a store that returned bytes nobody wrote, with a CRC
 * to match, is caught. */
static void test_crash_checker_bites(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    struct cmodel *m = calloc(1, sizeof(*m));
    uint8_t data[100];
    fill(data, sizeof(data), 12);
    assert_int_equal(store_create(s, 0x700, 1), 0);
    m->exists = true;
    m->version = 1;
    assert_int_equal(put(s, 0x700, 1, 0, data, 100, STORE_SYNC), 0);
    cmodel_write(m, 0, data, 100);
    cmodel_commit(m);
    assert_true(cmodel_check(s, 0x700, m, false));
    /* Plant: other bytes and a header whose tail CRC matches them. */
    data[7] ^= 1;
    poke_file(fs, 0x700, chunkfile_data_off(CAP), data, 100);
    struct chunkfile_hdr h = { .id = 0x700, .seq = 9, .capacity = CAP,
                               .length = 100, .version = 1,
                               .tail_crc = crc32c(0, data, 100) };
    uint8_t slot[CHUNKFILE_SLOT_BYTES];
    chunkfile_encode(&h, slot);
    poke_file(fs, 0x700, 0, slot, sizeof(slot));
    store_close(s);
    s = open_store(fs);
    assert_false(cmodel_check(s, 0x700, m, true));
    cmodel_free(m);
    store_close(s);
    fsio_free(fs);
}

/* Whether chunk id's file says an overwrite was interrupted. */
static bool file_interrupted(struct fsio *fs, uint64_t id)
{
    char path[256];
    chunk_file(id, path, sizeof(path));
    int fd = fsio_open(fs, path, O_RDONLY, 0);
    assert_true(fd >= 0);
    struct chunkfile_hdr h;
    bool damaged, interrupted = false;
    assert_true(chunkfile_load(fs, fd, &h, &damaged, &interrupted) >= 0);
    fsio_close(fs, fd);
    return interrupted;
}

/*
 * A process killed between an overwrite's data and its CRC (page cache
 * kept): the block's data is new, its CRC old.  Every replica may be
 * stopped in the same place (a whole cluster killed), so the block must
 * come back readable with its committed bytes, not as corrupt.
 */
static void test_interrupted_overwrite(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint64_t len = 2 * B + 500;
    uint8_t *data = malloc(len), patch[1000];
    fill(data, len, 21);
    fill(patch, sizeof(patch), 22);
    assert_int_equal(store_create(s, 0x31, 1), 0);
    assert_int_equal(put(s, 0x31, 1, 0, data, len, STORE_SYNC), 0);
    assert_false(file_interrupted(fs, 0x31));
    uint8_t old_crc[4];
    char path[256];
    chunk_file(0x31, path, sizeof(path));
    int fd = fsio_open(fs, path, O_RDONLY, 0);
    assert_int_equal(fsio_pread(fs, fd, old_crc, 4, CHUNKFILE_CRC_OFF + 4), 4);
    fsio_close(fs, fd);

    /* A full block whose new CRC never landed, and the partial last
     * block, whose CRC lives in the header until the next commit. */
    assert_int_equal(put(s, 0x31, 1, B + 100, patch, sizeof(patch), 0), 0);
    assert_int_equal(put(s, 0x31, 1, 2 * B + 10, patch, 20, 0), 0);
    assert_true(file_interrupted(fs, 0x31));
    poke_file(fs, 0x31, CHUNKFILE_CRC_OFF + 4, old_crc, 4);
    store_close(s);

    s = open_store(fs);
    assert_false(in_bad_list(s, 0x31));
    memcpy(data + B + 100, patch, sizeof(patch));
    memcpy(data + 2 * B + 10, patch, 20);
    expect_read(s, 0x31, 0, (size_t)len, data, (size_t)len);
    assert_int_equal(store_verify(s, 0x31, 1), 0);
    assert_false(file_interrupted(fs, 0x31));   /* retired by a commit */

    /* Rot in a chunk with no overwrite in flight is still rot. */
    flip_file_byte(fs, 0x31, chunkfile_data_off(CAP) + 7);
    store_close(s);
    s = open_store(fs);
    assert_int_equal(store_verify(s, 0x31, 1), -DFS_ECORRUPT);
    free(data);
    store_close(s);
    fsio_free(fs);
}

/* An append after a sync never risks the synced bytes of the shared last
 * block, whatever the cut does. */
static void test_append_keeps_synced_tail(void **state)
{
    (void)state;
    uint64_t first = 1, last = 200;
    seed_range("append_keeps_synced_tail", &first, &last);
    uint8_t a[1000], b2[3 * 65536], buf[1000];
    fill(a, sizeof(a), 13);
    fill(b2, sizeof(b2), 14);
    for (uint64_t seed = first; seed <= last; seed++) {
        cur_seed = seed;
        struct fsio *fs = new_sim();
        struct store *s = open_store(fs);
        CHECK(store_create(s, 1, 1) == 0);
        CHECK(put(s, 1, 1, 0, a, 1000, STORE_SYNC) == 0);
        CHECK(put(s, 1, 1, 1000, b2, sizeof(b2), 0) == 0);
        CHECK(put(s, 1, 1, 1000 + sizeof(b2), b2, 5000, 0) == 0);
        store_close(s);
        CHECK(fsio_sim_crash(fs, FSIO_CRASH_TEAR, seed) == 0);
        s = open_store(fs);
        CHECK(store_read(s, 1, 1, 0, 1000, buf, NULL) == 1000);
        CHECK(memcmp(buf, a, 1000) == 0);
        store_close(s);
        fsio_free(fs);
    }
}

/* ======================================================================== */
/* full disk and failing disk                                               */
/* ======================================================================== */

/* A commit makes the data durable before it writes the header: a header
 * describing data that could still be lost would be a lie after a cut. */
static void test_commit_syncs_data_first(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t data[1000], buf[1000];
    fill(data, sizeof(data), 22);
    assert_int_equal(store_create(s, 1, 1), 0);
    assert_int_equal(put(s, 1, 1, 0, data, 600, STORE_SYNC), 0);
    assert_int_equal(put(s, 1, 1, 600, data + 600, 400, 0), 0);
    uint64_t syncs = fsio_sim_calls(fs, FSIO_OP_SYNC);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 1, EIO), 0);
    assert_int_equal(store_sync(s, 1), -EIO);   /* the header write */
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC), syncs + 1);
    store_close(s);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_TEAR, 1), 0);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 0, 0), 0);
    s = open_store(fs);
    assert_int_equal(store_read(s, 1, 1, 0, 1000, buf, NULL), 600);
    assert_memory_equal(buf, data, 600);
    store_close(s);
    fsio_free(fs);
}

static void test_enospc_capacity(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t *data = malloc(CAP), *other = malloc(CAP);
    fill(data, CAP, 15);
    fill(other, CAP, 16);
    assert_int_equal(store_create(s, 1, 1), 0);
    assert_int_equal(put(s, 1, 1, 0, data, 3 * B + 11, STORE_SYNC), 0);
    uint64_t used = fsio_sim_used(fs);
    assert_int_equal(fsio_sim_set_capacity(fs, used + 2 * B), 0);

    /* Overwrite the tail and extend past the capacity: refused whole. */
    assert_int_equal(put(s, 1, 1, 2 * B + 5, other, 4 * B, 0), -ENOSPC);
    assert_int_equal(fsio_sim_used(fs), used);
    expect_read(s, 1, 0, CAP, data, 3 * B + 11);
    assert_false(in_bad_list(s, 1));
    assert_int_equal(store_create(s, 2, 1), 0);
    assert_int_equal(store_create(s, 3, 1), 0);
    assert_int_equal(store_create(s, 4, 1), 0);
    uint64_t n = 0;
    int rc;
    while ((rc = store_create(s, 10 + n, 1)) == 0)
        n++;
    assert_int_equal(rc, -ENOSPC);
    /* What fits still goes in, and everything reads back. */
    assert_int_equal(put(s, 1, 1, 3 * B + 11, other, 100, STORE_SYNC), 0);
    memcpy(data + 3 * B + 11, other, 100);
    expect_read(s, 1, 0, CAP, data, 3 * B + 111);
    assert_int_equal(store_verify(s, 1, 1), 0);
    store_close(s);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_TEAR, 5), 0);
    s = open_store(fs);
    expect_read(s, 1, 0, CAP, data, 3 * B + 111);
    free(data);
    free(other);
    store_close(s);
    fsio_free(fs);
}

static void test_enospc_reserved(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    assert_int_equal(fsio_sim_set_capacity(fs, 64 * B), 0);
    struct store *s = open_store_p(fs, 4 * CAP, 40 * B);
    uint64_t total, used, avail;
    assert_int_equal(store_space(s, &total, &used, &avail), 0);
    assert_int_equal(total, 64 * B);
    assert_int_equal(used, 0);
    assert_true(avail <= 24 * B);
    uint8_t *data = malloc(CAP);
    fill(data, CAP, 17);
    assert_int_equal(store_create(s, 1, 1), 0);
    assert_int_equal(put(s, 1, 1, 0, data, 10 * B, STORE_SYNC), 0);
    /* Still under the capacity, but into the reserve. */
    assert_int_equal(put(s, 1, 1, 10 * B, data, 14 * B, 0), -ENOSPC);
    assert_int_equal(store_space(s, &total, &used, &avail), 0);
    assert_true(avail < 14 * B);
    assert_int_equal(used, chunkfile_data_off(4 * CAP) + 10 * B);
    expect_read(s, 1, 0, CAP, data, 10 * B);
    /* Overwrites in place take no space and pass. */
    assert_int_equal(put(s, 1, 1, 0, data + B, 10 * B, STORE_SYNC), 0);
    expect_read(s, 1, 0, 10 * B, data + B, 10 * B);
    free(data);
    store_close(s);
    fsio_free(fs);
}

/* EIO from the disk fails the store; every later call says so. */
static void test_eio_fails_store(void **state)
{
    (void)state;
    static const enum fsio_op ops[] = { FSIO_OP_WRITE, FSIO_OP_SYNC,
                                        FSIO_OP_READ };
    uint8_t data[1000], buf[1000];
    fill(data, sizeof(data), 18);
    for (size_t i = 0; i < 3; i++) {
        struct fsio *fs = new_sim();
        struct store *s = open_store(fs);
        assert_int_equal(store_create(s, 1, 1), 0);
        assert_int_equal(store_create(s, 2, 1), 0);
        assert_int_equal(put(s, 1, 1, 0, data, 1000, STORE_SYNC), 0);
        assert_int_equal(fsio_sim_fail(fs, ops[i], 1, EIO), 0);
        int rc = ops[i] == FSIO_OP_READ
                     ? (int)store_read(s, 1, 0, 0, 10, buf, NULL)
                     : put(s, 1, 1, 100, data, 500, STORE_SYNC);
        assert_int_equal(rc, -EIO);
        assert_true(store_failed(s));
        assert_int_equal(store_read(s, 2, 0, 0, 1, buf, NULL), -EIO);
        assert_int_equal(put(s, 2, 1, 0, data, 1, 0), -EIO);
        assert_int_equal(store_create(s, 3, 1), -EIO);
        assert_int_equal(store_sync(s, 1), -EIO);
        uint64_t t, u, a;
        assert_int_equal(store_space(s, &t, &u, &a), -EIO);
        /* The report of every chunk lost can still be made. */
        struct list_acc acc = { 0 };
        assert_int_equal(store_list(s, list_cb, &acc), 0);
        assert_int_equal(acc.n, 2);
        store_close(s);
        fsio_free(fs);
    }
}

/* A sync that fails otherwise (ENOSPC from writeback) loses the chunk's
 * unsynced writes: the chunk is reported, the store carries on. */
static void test_sync_failure_flags_chunk(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct store *s = open_store(fs);
    uint8_t data[1000];
    fill(data, sizeof(data), 19);
    assert_int_equal(store_create(s, 1, 1), 0);
    assert_int_equal(store_create(s, 2, 1), 0);
    assert_int_equal(put(s, 1, 1, 0, data, 1000, 0), 0);
    assert_int_equal(fsio_sim_fail(fs, FSIO_OP_SYNC, 1, ENOSPC), 0);
    assert_int_equal(store_sync(s, 1), -ENOSPC);
    assert_false(store_failed(s));
    assert_true(in_bad_list(s, 1));
    assert_int_equal(put(s, 2, 1, 0, data, 1000, STORE_SYNC), 0);
    expect_read(s, 2, 0, 1000, data, 1000);
    store_close(s);
    fsio_free(fs);
}

/*
 * Fail the nth disk write of a fixed workload, for every n it reaches: the
 * call returns the error and leaves the chunk as it was, or flags it
 * corrupt and then every block reads as before, as after, or fails its
 * CRC (never other bytes); nothing leaks.
 */
static void test_nth_write_fails(void **state)
{
    (void)state;
    uint8_t *data = malloc(CAP), *before = calloc(1, CAP),
            *after = calloc(1, CAP), *buf = malloc(CAP);
    fill(data, CAP, 20);
    for (unsigned nth = 1;; nth++) {
        cur_seed = nth;
        struct fsio *fs = new_sim();
        struct store *s = open_store(fs);
        memset(before, 0, CAP);
        memset(after, 0, CAP);
        uint64_t len_before = 0, len_after = 0;
        CHECK(fsio_sim_fail(fs, FSIO_OP_WRITE, nth, nth % 2 ? ENOSPC : EFBIG)
              == 0);
        static const uint64_t w[][2] = {
            { 0, 3 * B + 5 }, { 100, 10 }, { 3 * B, B + 7 }, { 2 * B, 9 },
            { 6 * B + 1, B }, { 5, 7 * B },
        };
        int rc = store_create(s, 1, 1);
        size_t i;
        for (i = 0; rc == 0 && i < sizeof(w) / sizeof(w[0]); i++) {
            memcpy(before, after, CAP);
            len_before = len_after;
            memcpy(after + w[i][0], data + i * 100, (size_t)w[i][1]);
            if (w[i][0] + w[i][1] > len_after)
                len_after = w[i][0] + w[i][1];
            rc = put(s, 1, 1, w[i][0], data + i * 100, (size_t)w[i][1],
                     i % 2 ? STORE_SYNC : 0);
        }
        bool done = rc == 0;
        if (!done && i > 0) {
            CHECK(rc == -ENOSPC || rc == -EFBIG);
            /* Unless the store flagged the chunk, it is exactly as it
             * was; a flagged one may have failed blocks, never others'
             * bytes. */
            bool flagged = in_bad_list(s, 1);
            uint32_t ver;
            uint64_t len;
            CHECK(store_stat(s, 1, &ver, &len) == 0);
            CHECK(len == len_before || (flagged && len == len_after));
            for (uint64_t b = 0; b * B < len; b++) {
                size_t n = (size_t)(len - b * B < B ? len - b * B : B);
                ssize_t got = store_read(s, 1, 0, b * B, n, buf, NULL);
                bool before_ok = got == (ssize_t)n &&
                                 memcmp(buf, before + b * B, n) == 0;
                CHECK(before_ok || (flagged && (got == -DFS_ECORRUPT ||
                      (got == (ssize_t)n &&
                       memcmp(buf, after + b * B, n) == 0))));
            }
        }
        store_close(s);
        fsio_free(fs);
        if (done)
            break;
    }
    free(data);
    free(before);
    free(after);
    free(buf);
}

/* ======================================================================== */
/* differential                                                             */
/* ======================================================================== */

struct dmodel {
    uint8_t data[CAP];
    uint64_t len;
    uint32_t version;
};

/* Compares chunk id with the model over a random range; returns whether
 * they agree. */
static bool diff_check(struct store *s, uint64_t id, const struct dmodel *m,
                       uint64_t off, size_t len)
{
    static uint8_t buf[CAP];
    static uint32_t crcs[NB + 2];
    ssize_t got = store_read(s, id, m->version, off, len, buf, crcs);
    size_t want = off >= m->len ? 0
                : (size_t)(m->len - off < len ? m->len - off : len);
    if (got != (ssize_t)want || memcmp(buf, m->data + off, want) != 0)
        return false;
    uint32_t *exp = piece_crcs(off, m->data + off, want);
    bool ok = true;
    for (uint32_t i = 0; i < store_nblocks(off, want); i++)
        ok &= crcs[i] == exp[i];
    free(exp);
    return ok;
}

static void diff_op(struct store *s, uint64_t id, struct dmodel *m,
                    uint64_t *rng)
{
    static uint8_t data[CAP];
    uint64_t r = rng_below(rng, 100);
    if (r < 55) {
        uint64_t off = rng_below(rng, 3) == 0 ? m->len : rng_below(rng, CAP);
        off = off >= CAP ? CAP - 1 : off;
        uint64_t len = rng_below(rng, 4) == 0 ? 1 + rng_below(rng, 16)
                                              : 1 + rng_below(rng, 5 * B);
        len = off + len > CAP ? CAP - off : len;
        fill(data, (size_t)len, rng_next(rng));
        unsigned flags = rng_below(rng, 6) == 0 ? STORE_SYNC : 0;
        bool own_crcs = rng_below(rng, 2);
        uint32_t *crcs = own_crcs ? piece_crcs(off, data, len) : NULL;
        CHECK(store_write(s, id, m->version, off, data, (size_t)len, crcs,
                          flags) == 0);
        free(crcs);
        memcpy(m->data + off, data, (size_t)len);
        m->len = off + len > m->len ? off + len : m->len;
    } else if (r < 65) {
        uint64_t len = rng_below(rng, 2) ? rng_below(rng, m->len + 1)
                                         : rng_below(rng, CAP + 1);
        CHECK(store_truncate(s, id, m->version, len) == 0);
        if (len < m->len)
            memset(m->data + len, 0, (size_t)(m->len - len));
        m->len = len;
    } else if (r < 68) {
        CHECK(store_set_version(s, id, ++m->version) == 0);
    } else {
        uint64_t off = rng_below(rng, CAP + B);
        CHECK(diff_check(s, id, m, off, (size_t)rng_below(rng, 3 * B + 2)));
    }
}

static void test_differential(void **state)
{
    (void)state;
    uint64_t first = 1, last = 40;
    seed_range("differential", &first, &last);
    struct dmodel *m = calloc(2, sizeof(*m));
    assert_non_null(m);
    for (uint64_t seed = first; seed <= last; seed++) {
        cur_seed = seed;
        uint64_t rng = seed;
        struct fsio *fs = new_sim();
        struct store *s = open_store(fs);
        memset(m, 0, 2 * sizeof(*m));
        for (uint64_t c = 0; c < 2; c++) {
            m[c].version = 1;
            CHECK(store_create(s, 0x900 + c, 1) == 0);
        }
        for (int i = 0; i < 300; i++) {
            uint64_t c = rng_below(&rng, 2);
            diff_op(s, 0x900 + c, &m[c], &rng);
            if (rng_below(&rng, 60) == 0) {     /* a clean restart */
                CHECK(store_sync(s, 0x900) == 0 && store_sync(s, 0x901) == 0);
                store_close(s);
                s = open_store(fs);
            }
        }
        for (uint64_t c = 0; c < 2; c++) {
            CHECK(diff_check(s, 0x900 + c, &m[c], 0, CAP));
            CHECK(store_verify(s, 0x900 + c, 0) == 0);
        }
        /* The checker bites: one byte off in the model is seen. */
        if (m[0].len > 0) {
            m[0].data[m[0].len / 2] ^= 1;
            CHECK(!diff_check(s, 0x900, &m[0], 0, CAP));
        }
        store_close(s);
        fsio_free(fs);
    }
    free(m);
}

/* ======================================================================== */
/* real directory, threads                                                  */
/* ======================================================================== */

struct tctx {
    struct store *s;
    uint64_t id;
    uint64_t seed;
    int rc;
};

/* Each thread fills its own chunk, then reads it and the shared chunk. */
static void *thread_main(void *arg)
{
    struct tctx *t = arg;
    uint8_t *data = malloc(CAP), *buf = malloc(CAP);
    fill(data, CAP, t->seed);
    t->rc = store_create(t->s, t->id, 1);
    for (uint64_t off = 0; t->rc == 0 && off < CAP; off += 3 * B + 17) {
        size_t n = (size_t)(off + 3 * B + 17 > CAP ? CAP - off
                                                   : 3 * B + 17);
        t->rc = store_write(t->s, t->id, 1, off, data + off, n, NULL,
                            off % 2 ? STORE_SYNC : 0);
        ssize_t got = store_read(t->s, 0x5ea, 1, off % (CAP / 2), 2 * B,
                                 buf, NULL);
        if (t->rc == 0 && got != (ssize_t)(2 * B))
            t->rc = got < 0 ? (int)got : -EIO;
    }
    if (t->rc == 0)
        t->rc = store_sync(t->s, t->id);
    if (t->rc == 0 && (store_read(t->s, t->id, 1, 0, CAP, buf, NULL) !=
                       (ssize_t)CAP || memcmp(buf, data, CAP) != 0))
        t->rc = -EBADMSG;
    free(data);
    free(buf);
    return NULL;
}

static void test_real_dir_threads(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    char root[512], dir[600], cmd[700];
    snprintf(root, sizeof(root), "%s/test_store.XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/data", root);
    struct fsio *fs = fsio_real_new();
    /* Fewer open files than chunks: descriptors are closed and reopened
     * under the threads' feet. */
    struct store_params p = { .chunk_size = CAP, .cluster_id = CLUSTER,
                              .max_open_files = 2 };
    struct store *s;
    char err[256];
    assert_int_equal(store_open(fs, dir, &p, &s, err, sizeof(err)), 0);
    uint8_t *shared = malloc(CAP);
    fill(shared, CAP, 21);
    assert_int_equal(store_create(s, 0x5ea, 1), 0);
    assert_int_equal(store_write(s, 0x5ea, 1, 0, shared, CAP, NULL,
                                 STORE_SYNC), 0);
    enum { NT = 4 };
    pthread_t th[NT];
    struct tctx t[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = (struct tctx){ s, 0x100 + (uint64_t)i, 30 + (uint64_t)i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &t[i]),
                         0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].rc, 0);
    }
    store_close(s);

    /* Reopen from the real files; rot one byte of the shared chunk. */
    char path[700];
    snprintf(path, sizeof(path), "%s/ea/00000000000005ea.chunk", dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c = 0;
    assert_int_equal(pread(fd, &c, 1, (off_t)chunkfile_data_off(CAP) + 5),
                     1);
    c ^= 0xff;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)chunkfile_data_off(CAP) + 5),
                     1);
    close(fd);
    assert_int_equal(store_open(fs, dir, &p, &s, err, sizeof(err)), 0);
    struct list_acc a = { 0 };
    assert_int_equal(store_list(s, list_cb, &a), 0);
    assert_int_equal(a.n, NT + 1);
    uint8_t *buf = malloc(CAP);
    assert_int_equal(store_read(s, 0x5ea, 1, 0, B, buf, NULL),
                     -DFS_ECORRUPT);
    assert_int_equal(store_read(s, 0x5ea, 1, B, CAP - B, buf, NULL),
                     (ssize_t)(CAP - B));
    assert_memory_equal(buf, shared + B, CAP - B);
    for (int i = 0; i < NT; i++)
        assert_int_equal(store_verify(s, 0x100 + (uint64_t)i, 1), 0);
    uint64_t total, used, avail;
    assert_int_equal(store_space(s, &total, &used, &avail), 0);
    assert_int_equal(used, (NT + 1) * (chunkfile_data_off(CAP) + CAP));
    assert_true(total > 0);
    store_close(s);
    fsio_free(fs);
    free(buf);
    free(shared);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    if (!getenv("DFS_TEST_VERBOSE"))
        log_init("test_store", LOG_ERROR, "/dev/null");
    if (getenv("DFS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("DFS_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_fresh_adopts),
        cmocka_unit_test(test_crc_layout_matches_wire),
        cmocka_unit_test(test_bad_incoming_crc),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_file_layout),
        cmocka_unit_test(test_holes),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_create_delete_truncate),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_many_chunks),
        cmocka_unit_test(test_open_files_bounded),
        cmocka_unit_test(test_corrupt_data),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_corrupt_header),
        cmocka_unit_test(test_power_cuts),
        cmocka_unit_test(test_crash_checker_bites),
        cmocka_unit_test(test_interrupted_overwrite),
        cmocka_unit_test(test_append_keeps_synced_tail),
        cmocka_unit_test(test_commit_syncs_data_first),
        cmocka_unit_test(test_enospc_capacity),
        cmocka_unit_test(test_enospc_reserved),
        cmocka_unit_test(test_eio_fails_store),
        cmocka_unit_test(test_sync_failure_flags_chunk),
        cmocka_unit_test(test_nth_write_fails),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_real_dir_threads),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
