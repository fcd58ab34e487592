/*
 * Tests of raftlog, on the fsio simulator (and one round trip on a real
 * directory): round trips across segment rolls, truncation, compaction,
 * snapshots, hard state; every truncation and byte flip of the last entry;
 * flips in earlier records; corruption that must be an error; faults; and
 * random power cuts against a model.  Randomized tests print their seeds;
 * DFS_TEST_SEED=N replays one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/fsio.h"
#include "common/log.h"
#include "master/raftlog.h"

#define D "/r"              /* the log's directory in the simulator */
#define SMALL_SEG 512       /* a segment size that rolls every few entries */
#define MAX_BATCH 8

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

/* Seeds first..last, or just $DFS_TEST_SEED when set. */
static void seed_range(const char *test, uint64_t *first, uint64_t *last)
{
    const char *env = getenv("DFS_TEST_SEED");
    if (env)
        *first = *last = strtoull(env, NULL, 0);
    print_message("%s: seeds %" PRIu64 "-%" PRIu64
                  " (DFS_TEST_SEED=N replays one)\n", test, *first, *last);
}

static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t *x, uint64_t n)
{
    return n ? rng_next(x) % n : 0;
}

/* ------------------------------------------------------------------------ */
/* entries as a function of (index, term, salt), and a model of the log      */
/* ------------------------------------------------------------------------ */

static void fill_data(uint8_t *buf, size_t len, uint64_t index, uint64_t term,
                      uint64_t salt)
{
    uint64_t x = salt * UINT64_C(1000003) ^ index << 20 ^ term, v = 0;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            v = rng_next(&x);
        buf[i] = (uint8_t)(v >> (8 * (i % 8)));
    }
}

/* An entry of the model: its data is fill_data(len, index, term, salt). */
struct ment {
    uint64_t term, salt;
    uint32_t type, len;
};

struct model {
    struct ment *v;         /* v[i]: the entry at index i */
    size_t cap;
    uint64_t last, last_term;
    uint64_t durable;       /* reported durable */
    bool has_snap;
    struct raft_snapshot_meta snap;
    uint64_t snap_salt;
    uint32_t snap_len;
    struct raftlog_hard_state hs;
};

static void model_free(struct model *m)
{
    free(m->v);
    memset(m, 0, sizeof(*m));
}

static void model_copy(struct model *dst, const struct model *src)
{
    free(dst->v);
    *dst = *src;
    dst->v = calloc(src->cap ? src->cap : 1, sizeof(*dst->v));
    assert_non_null(dst->v);
    if (src->cap)
        memcpy(dst->v, src->v, src->cap * sizeof(*src->v));
}

static void model_put(struct model *m, uint64_t index, struct ment e)
{
    if (index >= m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap <= index)
            cap *= 2;
        m->v = realloc(m->v, cap * sizeof(*m->v));
        assert_non_null(m->v);
        memset(m->v + m->cap, 0, (cap - m->cap) * sizeof(*m->v));
        m->cap = cap;
    }
    m->v[index] = e;
}

static uint64_t snap_index(const struct model *m)
{
    return m->has_snap ? m->snap.index : 0;
}

static uint64_t model_term(const struct model *m, uint64_t index)
{
    if (index == snap_index(m))
        return m->has_snap ? m->snap.term : 0;
    return m->v[index].term;
}

/* Whether e is the model's entry at e->index. */
static bool model_has(const struct model *m, const struct raft_entry *e)
{
    if (e->index == 0 || e->index > m->last || e->index <= snap_index(m))
        return false;
    const struct ment *me = &m->v[e->index];
    if (me->term != e->term || me->type != e->type || me->len != e->len)
        return false;
    uint8_t *want = malloc(me->len + 1);
    assert_non_null(want);
    fill_data(want, me->len, e->index, me->term, me->salt);
    bool same = me->len == 0 || memcmp(want, e->data, me->len) == 0;
    free(want);
    return same;
}

static void members_of(uint64_t salt, struct raft_members *mb)
{
    memset(mb, 0, sizeof(*mb));
    mb->n = 1 + (uint32_t)(salt % 5);
    for (uint32_t i = 0; i < mb->n; i++) {
        mb->servers[i].id = salt % 1000 + i + 1;
        mb->servers[i].role = i % 4 == 3 ? RAFT_LEARNER : RAFT_VOTER;
    }
}

static bool meta_equal(const struct raft_snapshot_meta *a,
                       const struct raft_snapshot_meta *b)
{
    if (a->index != b->index || a->term != b->term ||
        a->members.n != b->members.n)
        return false;
    for (uint32_t i = 0; i < a->members.n; i++)
        if (a->members.servers[i].id != b->members.servers[i].id ||
            a->members.servers[i].role != b->members.servers[i].role)
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* collecting recovered entries                                             */
/* ------------------------------------------------------------------------ */

struct got {
    struct raft_entry *v;
    size_t n, cap;
};

static int got_add(const struct raft_entry *e, void *arg)
{
    struct got *g = arg;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->v = realloc(g->v, g->cap * sizeof(*g->v));
        assert_non_null(g->v);
    }
    struct raft_entry *c = &g->v[g->n++];
    *c = *e;
    c->data = NULL;
    if (e->len) {
        c->data = malloc(e->len);
        assert_non_null(c->data);
        memcpy(c->data, e->data, e->len);
    }
    return 0;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].data);
    free(g->v);
    memset(g, 0, sizeof(*g));
}

/* ------------------------------------------------------------------------ */
/* driving a log                                                            */
/* ------------------------------------------------------------------------ */

static struct fsio *new_sim(void)
{
    struct fsio *fs = fsio_sim_new();
    assert_non_null(fs);
    assert_int_equal(fsio_mkdir(fs, D, 0755), 0);
    assert_int_equal(fsio_fsync_dir(fs, "/"), 0);
    return fs;
}

/* Opens the log with segment size seg, collecting entries into g. */
static int open_log(struct fsio *fs, uint64_t seg, struct got *g,
                    struct raftlog_recovery *rec, struct raftlog **log)
{
    struct raftlog_options opt = { .segment_size = seg };
    if (g)
        got_free(g);
    return raftlog_open(fs, D, &opt, g ? got_add : NULL, g, rec, log);
}

/* Appends the model entries first..first+n-1 (already in m) to log. */
static int append_from_model(struct raftlog *log, const struct model *m,
                             uint64_t first, size_t n)
{
    struct raft_entry ents[MAX_BATCH];
    assert_true(n <= MAX_BATCH);
    for (size_t i = 0; i < n; i++) {
        const struct ment *me = &m->v[first + i];
        ents[i] = (struct raft_entry){ .index = first + i, .term = me->term,
                                       .type = me->type, .len = me->len };
        ents[i].data = me->len ? malloc(me->len) : NULL;
        fill_data(ents[i].data, me->len, first + i, me->term, me->salt);
    }
    int rc = raftlog_append(log, ents, n);
    for (size_t i = 0; i < n; i++)
        free(ents[i].data);
    return rc;
}

/* Adds n entries of term to the model (lengths from x, up to maxlen) and
 * appends them; asserts success. */
static void add_entries(struct raftlog *log, struct model *m, size_t n,
                        uint64_t term, uint32_t maxlen, uint64_t *x)
{
    while (n) {
        size_t k = n < MAX_BATCH ? n : MAX_BATCH;
        for (size_t i = 0; i < k; i++) {
            struct ment e = { .term = term, .salt = rng_next(x),
                              .type = 1 + (uint32_t)rnd(x, 3),
                              .len = (uint32_t)rnd(x, maxlen + 1) };
            model_put(m, m->last + 1 + i, e);
        }
        CHECK(append_from_model(log, m, m->last + 1, k) == 0);
        m->last += k;
        m->last_term = term;
        n -= k;
    }
}

/* Adds one entry of exactly len bytes to the model and appends it. */
static void add_one(struct raftlog *log, struct model *m, uint64_t term,
                    uint32_t len, uint64_t *x)
{
    struct ment e = { .term = term, .salt = rng_next(x), .type = 1,
                      .len = len };
    model_put(m, m->last + 1, e);
    CHECK(append_from_model(log, m, m->last + 1, 1) == 0);
    m->last++;
    m->last_term = term;
}

/* g holds exactly the model's entries from..to. */
static void check_got(const struct got *g, const struct model *m,
                      uint64_t from, uint64_t to)
{
    CHECK(g->n == to + 1 - from);
    for (size_t i = 0; i < g->n; i++) {
        CHECK(g->v[i].index == from + i);
        CHECK(model_has(m, &g->v[i]));
    }
}

static int count_segment(const char *name, void *arg)
{
    if (strncmp(name, "log-", 4) == 0)
        (*(int *)arg)++;
    return 0;
}

static int count_segments(struct fsio *fs)
{
    int n = 0;
    assert_int_equal(fsio_list_dir(fs, D, count_segment, &n), 0);
    return n;
}

/* Whole-file access for tests that damage files on purpose. */
static void file_get(struct fsio *fs, const char *path, uint8_t **buf,
                     size_t *len)
{
    void *p;
    assert_int_equal(fsio_read_file(fs, path, 1u << 30, &p, len), 0);
    *buf = p;
}

static void file_put(struct fsio *fs, const char *path, const void *buf,
                     size_t len)
{
    int fd = fsio_open(fs, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fsio_pwrite(fs, fd, buf, len, 0), (ssize_t)len);
    assert_int_equal(fsio_fsync(fs, fd), 0);
    assert_int_equal(fsio_close(fs, fd), 0);
    assert_int_equal(fsio_fsync_dir(fs, D), 0);
}

static void seg_file(uint64_t first, char *out, size_t cap)
{
    snprintf(out, cap, D "/log-%020" PRIu64, first);
}

/* Opens, checks the log holds exactly the model's 1..last (after its
 * snapshot), closes. */
static void reopen_check(struct fsio *fs, uint64_t seg, const struct model *m)
{
    struct got g = { 0 };
    struct raftlog_recovery rec;
    struct raftlog *log;
    int rc = open_log(fs, seg, &g, &rec, &log);
    if (rc)
        print_error("open: %s\n", rec.error);
    CHECK(rc == 0);
    check_got(&g, m, snap_index(m) + 1, m->last);
    CHECK(raftlog_last_index(log) == m->last);
    CHECK(raftlog_durable_index(log) == m->last);
    raftlog_close(log);
    got_free(&g);
    CHECK(fsio_sim_open_files(fs) == 0);
}

/* ------------------------------------------------------------------------ */
/* round trips                                                              */
/* ------------------------------------------------------------------------ */

static void test_open_empty_and_bad_calls(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct raftlog *log;
    struct raftlog_recovery rec;
    assert_int_equal(open_log(fs, 0, NULL, &rec, &log), 0);
    assert_false(rec.has_snapshot);
    assert_int_equal(rec.first_index, 1);
    assert_int_equal(rec.last_index, 0);
    assert_int_equal(rec.hs.term + rec.hs.vote + rec.hs.commit, 0);
    assert_int_equal(raftlog_first_index(log), 1);
    assert_int_equal(raftlog_last_index(log), 0);

    /* Nothing pending: a sync costs no system call. */
    uint64_t syncs = fsio_sim_calls(fs, FSIO_OP_SYNC);
    uint64_t dsyncs = fsio_sim_calls(fs, FSIO_OP_SYNC_DIR);
    assert_int_equal(raftlog_sync(log), 0);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC), syncs);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC_DIR), dsyncs);

    uint8_t byte = 7;
    struct raft_entry e = { .index = 1, .term = 1, .type = 1, .len = 1,
                            .data = &byte };
    e.index = 2;
    assert_int_equal(raftlog_append(log, &e, 1), -EINVAL);
    e.index = 1;
    e.term = 0;
    assert_int_equal(raftlog_append(log, &e, 1), -EINVAL);
    e.term = 1;
    e.data = NULL;
    assert_int_equal(raftlog_append(log, &e, 1), -EINVAL);
    e.data = &byte;
    e.len = RAFTLOG_MAX_ENTRY + 1;
    assert_int_equal(raftlog_append(log, &e, 1), -DFS_ETOOBIG);
    e.len = 1;
    struct raft_entry two[2] = { e, e };
    two[0].term = 2;
    two[1].index = 2;
    assert_int_equal(raftlog_append(log, two, 2), -EINVAL);  /* term back */
    assert_int_equal(raftlog_append(log, &e, 0), 0);
    assert_int_equal(raftlog_last_index(log), 0);
    assert_int_equal(raftlog_truncate(log, 1), 0);          /* no-op */
    assert_int_equal(raftlog_truncate(log, 2), -EINVAL);
    assert_int_equal(raftlog_compact(log, 1), -EINVAL);
    assert_int_equal(raftlog_read(log, 1, 1, got_add, NULL), -EINVAL);
    void *data;
    size_t len;
    assert_int_equal(raftlog_snapshot_load(log, NULL, &data, &len), -ENOENT);
    struct raft_snapshot_meta meta = { .index = 1, .term = 1 };
    meta.members.n = RAFT_MAX_SERVERS + 1;
    assert_int_equal(raftlog_snapshot_install(log, &meta, NULL, 0), -EINVAL);
    raftlog_close(log);
    raftlog_close(NULL);

    rec.error[0] = 0;
    log = (struct raftlog *)&rec;
    assert_int_equal(raftlog_open(fs, "/missing", NULL, NULL, NULL, &rec,
                                  &log), -ENOENT);
    assert_null(log);
    assert_non_null(strstr(rec.error, "/missing"));
    struct raftlog_options tiny = { .segment_size = 10 };
    assert_int_equal(raftlog_open(fs, D, &tiny, NULL, NULL, NULL, &log),
                     -EINVAL);
    assert_int_equal(fsio_sim_open_files(fs), 0);
    fsio_free(fs);
}

static void test_roundtrip_rolls_group_commit(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct raftlog *log;
    struct model m = { 0 };
    uint64_t x = 1;
    assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);

    /* Group commit: three batches, one sync = one fdatasync, plus one
     * directory sync for the new segment's name. */
    uint64_t s0 = fsio_sim_calls(fs, FSIO_OP_SYNC);
    uint64_t d0 = fsio_sim_calls(fs, FSIO_OP_SYNC_DIR);
    for (int i = 0; i < 3; i++)
        add_entries(log, &m, 2, 1, 20, &x);
    assert_int_equal(raftlog_durable_index(log), 0);
    assert_int_equal(raftlog_sync(log), 0);
    assert_int_equal(raftlog_durable_index(log), 6);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC), s0 + 1);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC_DIR), d0 + 1);
    assert_int_equal(raftlog_sync(log), 0);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC), s0 + 1);
    add_entries(log, &m, 1, 1, 20, &x);
    assert_int_equal(raftlog_sync(log), 0);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC), s0 + 2);
    assert_int_equal(fsio_sim_calls(fs, FSIO_OP_SYNC_DIR), d0 + 1);

    /* Many rolls, and an entry bigger than a segment, alone in its own. */
    add_entries(log, &m, 150, 2, 100, &x);
    int before = count_segments(fs);
    add_one(log, &m, 3, 3 * SMALL_SEG, &x);
    add_one(log, &m, 3, 10, &x);
    assert_int_equal(raftlog_sync(log), 0);
    assert_true(count_segments(fs) >= before + 2);
    assert_true(before > 10);
    assert_int_equal(raftlog_last_term(log), 3);

    /* Read back in random ranges (the seek hint makes runs resume). */
    struct got g = { 0 };
    for (int i = 0; i < 50; i++) {
        uint64_t from = 1 + rnd(&x, m.last), to = from + rnd(&x, 20);
        if (to > m.last)
            to = m.last;
        got_free(&g);
        assert_int_equal(raftlog_read(log, from, to, got_add, &g), 0);
        check_got(&g, &m, from, to);
    }
    for (uint64_t from = 1; from <= m.last; from += 7) {
        uint64_t to = from + 6 > m.last ? m.last : from + 6;
        got_free(&g);
        assert_int_equal(raftlog_read(log, from, to, got_add, &g), 0);
        check_got(&g, &m, from, to);
    }
    got_free(&g);
    assert_int_equal(raftlog_read(log, 3, 2, got_add, &g), -EINVAL);
    assert_int_equal(raftlog_read(log, 1, m.last + 1, got_add, &g), -EINVAL);
    raftlog_close(log);

    reopen_check(fs, SMALL_SEG, &m);
    reopen_check(fs, 0, &m);    /* another segment size reads the same */
    model_free(&m);
    fsio_free(fs);
}

/* The first index of the last segment, from the directory listing. */
static int last_seg_name(const char *name, void *arg)
{
    if (strncmp(name, "log-", 4) == 0)
        *(uint64_t *)arg = strtoull(name + 4, NULL, 10);
    return 0;
}

static uint64_t last_segment_first(struct fsio *fs)
{
    uint64_t first = 0;
    assert_int_equal(fsio_list_dir(fs, D, last_seg_name, &first), 0);
    return first;
}

static void test_truncate(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct raftlog *log;
    struct model m = { 0 };
    uint64_t x = 2;
    assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);
    add_entries(log, &m, 60, 1, 60, &x);
    assert_int_equal(raftlog_sync(log), 0);

    /* In the middle of the last segment... */
    uint64_t from = m.last - 1;
    assert_int_equal(raftlog_truncate(log, from), 0);
    m.last = from - 1;
    assert_int_equal(raftlog_last_index(log), m.last);
    assert_int_equal(raftlog_durable_index(log), m.last);
    add_entries(log, &m, 5, 2, 60, &x);
    /* ...at a segment's first entry... */
    assert_int_equal(raftlog_sync(log), 0);
    from = last_segment_first(fs);
    assert_int_equal(raftlog_truncate(log, from), 0);
    m.last = from - 1;
    m.last_term = m.v[m.last].term;
    assert_int_equal(raftlog_last_term(log), m.last_term);
    add_entries(log, &m, 5, 3, 60, &x);
    /* ...across several segments, leaving unsynced entries before it. */
    int segs = count_segments(fs);
    assert_int_equal(raftlog_truncate(log, 20), 0);
    assert_true(count_segments(fs) < segs);
    m.last = 19;
    m.last_term = 1;
    assert_int_equal(raftlog_truncate(log, m.last + 2), -EINVAL);
    assert_int_equal(raftlog_truncate(log, 0), -EINVAL);
    assert_int_equal(raftlog_truncate(log, m.last + 1), 0);
    add_entries(log, &m, 7, 4, 60, &x);

    /* The truncation is durable even though nothing was synced after it:
     * after a power cut, whatever follows entry 19 is one of the new
     * entries (a roll may have synced some), never a cut one. */
    raftlog_close(log);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    struct got g = { 0 };
    struct raftlog_recovery rec;
    assert_int_equal(open_log(fs, SMALL_SEG, &g, &rec, &log), 0);
    assert_true(rec.last_index >= 19 && rec.last_index <= m.last);
    check_got(&g, &m, 1, rec.last_index);
    got_free(&g);
    m.last = rec.last_index;
    add_entries(log, &m, 7, 4, 60, &x);
    assert_int_equal(raftlog_sync(log), 0);
    assert_int_equal(raftlog_truncate(log, 1), 0);   /* everything */
    assert_int_equal(raftlog_last_index(log), 0);
    assert_int_equal(raftlog_last_term(log), 0);
    m.last = 0;
    m.last_term = 0;
    add_entries(log, &m, 30, 5, 60, &x);
    assert_int_equal(raftlog_sync(log), 0);
    raftlog_close(log);
    reopen_check(fs, SMALL_SEG, &m);
    model_free(&m);
    fsio_free(fs);
}

static void make_snapshot(uint64_t index, uint64_t term, uint64_t salt,
                          uint32_t len, struct raft_snapshot_meta *meta,
                          uint8_t **data)
{
    meta->index = index;
    meta->term = term;
    members_of(salt, &meta->members);
    *data = malloc(len + 1);
    assert_non_null(*data);
    fill_data(*data, len, index, term, salt);
}

static void set_model_snap(struct model *m,
                           const struct raft_snapshot_meta *meta,
                           uint64_t salt, uint32_t len)
{
    m->has_snap = true;
    m->snap = *meta;
    m->snap_salt = salt;
    m->snap_len = len;
}

/* The snapshot on disk is the model's, data included. */
static void check_snapshot(struct raftlog *log, const struct model *m)
{
    struct raft_snapshot_meta meta;
    void *data;
    size_t len;
    CHECK(raftlog_snapshot_load(log, &meta, &data, &len) == 0);
    CHECK(meta_equal(&meta, &m->snap));
    CHECK(len == m->snap_len);
    uint8_t *want = malloc(len + 1);
    assert_non_null(want);
    fill_data(want, len, m->snap.index, m->snap.term, m->snap_salt);
    CHECK(len == 0 || memcmp(want, data, len) == 0);
    free(want);
    free(data);
}

static void test_snapshot_and_compaction(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct raftlog *log;
    struct model m = { 0 };
    uint64_t x = 3;
    assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);
    add_entries(log, &m, 50, 1, 60, &x);
    add_entries(log, &m, 50, 2, 60, &x);
    assert_int_equal(raftlog_sync(log), 0);

    struct raft_snapshot_meta meta;
    uint8_t *data;
    make_snapshot(60, 2, 11, 1000, &meta, &data);
    assert_int_equal(raftlog_snapshot_save(log, &meta, data, 1000), 0);
    set_model_snap(&m, &meta, 11, 1000);
    assert_int_equal(raftlog_snapshot_index(log), 60);
    assert_int_equal(raftlog_snapshot_save(log, &meta, data, 1000), -ESTALE);
    meta.index = m.last + 1;
    assert_int_equal(raftlog_snapshot_save(log, &meta, data, 1000), -EINVAL);
    free(data);

    int before = count_segments(fs);
    assert_int_equal(raftlog_compact(log, 61), -EINVAL);
    assert_int_equal(raftlog_compact(log, 60), 0);
    assert_true(count_segments(fs) < before);
    assert_true(raftlog_first_index(log) > 1);
    assert_true(raftlog_first_index(log) <= 61);
    struct got g = { 0 };
    assert_int_equal(raftlog_read(log, 1, 5, got_add, &g), -ENOENT);
    assert_int_equal(raftlog_read(log, 61, 100, got_add, &g), 0);
    check_got(&g, &m, 61, 100);
    got_free(&g);
    check_snapshot(log, &m);
    /* No sync: a power cut may undo the unlinks; recovery drops them. */
    raftlog_close(log);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);

    struct raftlog_recovery rec;
    assert_int_equal(open_log(fs, SMALL_SEG, &g, &rec, &log), 0);
    assert_true(rec.has_snapshot);
    assert_true(meta_equal(&rec.snap, &m.snap));
    assert_int_equal(rec.first_index, 61);
    assert_int_equal(rec.last_index, 100);
    check_got(&g, &m, 61, 100);
    got_free(&g);
    check_snapshot(log, &m);
    assert_true(count_segments(fs) < before);

    /* A snapshot at the very end: compaction keeps the last segment. */
    make_snapshot(100, 2, 12, 0, &meta, &data);
    assert_int_equal(raftlog_snapshot_save(log, &meta, data, 0), 0);
    set_model_snap(&m, &meta, 12, 0);
    free(data);
    assert_int_equal(raftlog_compact(log, 100), 0);
    assert_int_equal(count_segments(fs), 1);
    check_snapshot(log, &m);
    add_entries(log, &m, 20, 3, 60, &x);
    assert_int_equal(raftlog_sync(log), 0);
    raftlog_close(log);
    reopen_check(fs, SMALL_SEG, &m);
    model_free(&m);
    fsio_free(fs);
}

static void test_snapshot_install(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct raftlog *log;
    struct model m = { 0 };
    uint64_t x = 4;
    assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);
    add_entries(log, &m, 50, 1, 60, &x);
    assert_int_equal(raftlog_sync(log), 0);

    struct raft_snapshot_meta meta;
    uint8_t *data;
    make_snapshot(80, 3, 21, 300, &meta, &data);
    assert_int_equal(raftlog_snapshot_install(log, &meta, data, 300), 0);
    assert_int_equal(raftlog_snapshot_install(log, &meta, data, 300), -ESTALE);
    free(data);
    set_model_snap(&m, &meta, 21, 300);
    m.last = 80;
    m.last_term = 3;
    assert_int_equal(raftlog_last_index(log), 80);
    assert_int_equal(raftlog_last_term(log), 3);
    assert_int_equal(raftlog_durable_index(log), 80);
    assert_int_equal(raftlog_first_index(log), 81);
    assert_int_equal(count_segments(fs), 0);
    /* Durable as soon as it returns. */
    raftlog_close(log);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    reopen_check(fs, SMALL_SEG, &m);

    assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);
    check_snapshot(log, &m);
    add_entries(log, &m, 10, 3, 60, &x);
    assert_int_equal(raftlog_sync(log), 0);
    raftlog_close(log);
    reopen_check(fs, SMALL_SEG, &m);
    model_free(&m);
    fsio_free(fs);
}

/*
 * Recovery keeps the entries after the snapshot only when the log holds
 * the snapshot's (index, term): a crash in the middle of an install can
 * leave the old log beside the new snapshot.
 */
static void test_snapshot_base_match(void **state)
{
    (void)state;
    for (int match = 0; match < 2; match++) {
        struct fsio *fs = new_sim();
        struct raftlog *log;
        struct model m = { 0 };
        uint64_t x = 5;
        assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);
        add_entries(log, &m, 25, 1, 60, &x);
        add_entries(log, &m, 25, 2, 60, &x);
        assert_int_equal(raftlog_sync(log), 0);
        struct raft_snapshot_meta meta;
        uint8_t *data;
        /* The wrong term breaks save's precondition on purpose. */
        make_snapshot(30, match ? 2 : 7, 31, 10, &meta, &data);
        assert_int_equal(raftlog_snapshot_save(log, &meta, data, 10), 0);
        free(data);
        set_model_snap(&m, &meta, 31, 10);
        raftlog_close(log);
        if (!match) {
            m.last = 30;
            m.last_term = 7;
        }
        reopen_check(fs, SMALL_SEG, &m);
        if (!match)
            assert_int_equal(count_segments(fs), 0);
        assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);
        add_entries(log, &m, 5, 7, 60, &x);
        assert_int_equal(raftlog_sync(log), 0);
        raftlog_close(log);
        reopen_check(fs, SMALL_SEG, &m);
        model_free(&m);
        fsio_free(fs);
    }
}

static void test_hard_state_and_files(void **state)
{
    (void)state;
    struct fsio *fs = new_sim();
    struct raftlog *log;
    struct raftlog_recovery rec;
    assert_int_equal(open_log(fs, 0, NULL, NULL, &log), 0);
    struct raftlog_hard_state hs = { .term = 5, .vote = 2, .commit = 10 };
    assert_int_equal(raftlog_hard_state_save(log, &hs), 0);
    raftlog_close(log);
    assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
    assert_int_equal(open_log(fs, 0, NULL, &rec, &log), 0);
    assert_int_equal(rec.hs.term, 5);
    assert_int_equal(rec.hs.vote, 2);
    assert_int_equal(rec.hs.commit, 10);
    hs = (struct raftlog_hard_state){ .term = 6 };
    assert_int_equal(raftlog_hard_state_save(log, &hs), 0);
    raftlog_close(log);

    /* Leftover temp files go; files raftlog does not own stay. */
    file_put(fs, D "/.hardstate.tmp", "junk", 4);
    file_put(fs, D "/.snapshot.tmp", "junk", 4);
    file_put(fs, D "/notes", "keep", 4);
    file_put(fs, D "/log-12", "keep", 4);
    assert_int_equal(open_log(fs, 0, NULL, &rec, &log), 0);
    assert_int_equal(rec.hs.term, 6);
    assert_int_equal(rec.hs.vote, 0);
    raftlog_close(log);
    struct fsio_stat st;
    assert_int_equal(fsio_stat(fs, D "/.hardstate.tmp", &st), -ENOENT);
    assert_int_equal(fsio_stat(fs, D "/.snapshot.tmp", &st), -ENOENT);
    assert_int_equal(fsio_stat(fs, D "/notes", &st), 0);
    assert_int_equal(fsio_stat(fs, D "/log-12", &st), 0);

    /* A damaged hard state is an error naming the file. */
    uint8_t *buf;
    size_t len;
    file_get(fs, D "/hardstate", &buf, &len);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x10;
        file_put(fs, D "/hardstate", buf, len);
        assert_int_equal(open_log(fs, 0, NULL, &rec, &log), -DFS_ECORRUPT);
        assert_null(log);
        assert_non_null(strstr(rec.error, D "/hardstate"));
        buf[i] ^= 0x10;
    }
    file_put(fs, D "/hardstate", buf, len - 1);
    assert_int_equal(open_log(fs, 0, NULL, &rec, &log), -DFS_ECORRUPT);
    uint8_t big[100] = { 0 };
    file_put(fs, D "/hardstate", big, sizeof(big));
    assert_int_equal(open_log(fs, 0, NULL, &rec, &log), -DFS_ECORRUPT);
    file_put(fs, D "/hardstate", buf, len);
    free(buf);

    /* A damaged snapshot header stops the open; damaged data, the load. */
    struct model m = { 0 };
    uint64_t x = 6;
    assert_int_equal(open_log(fs, 0, NULL, NULL, &log), 0);
    add_entries(log, &m, 5, 1, 10, &x);
    struct raft_snapshot_meta meta;
    uint8_t *data;
    make_snapshot(3, 1, 41, 100, &meta, &data);
    assert_int_equal(raftlog_snapshot_save(log, &meta, data, 100), 0);
    free(data);
    raftlog_close(log);
    file_get(fs, D "/snapshot", &buf, &len);
    buf[10] ^= 1;
    file_put(fs, D "/snapshot", buf, len);
    assert_int_equal(open_log(fs, 0, NULL, &rec, &log), -DFS_ECORRUPT);
    assert_non_null(strstr(rec.error, D "/snapshot"));
    buf[10] ^= 1;
    buf[len - 1] ^= 1;
    file_put(fs, D "/snapshot", buf, len);
    assert_int_equal(open_log(fs, 0, NULL, &rec, &log), 0);
    assert_int_equal(raftlog_snapshot_load(log, NULL, (void **)&data, &len),
                     -DFS_ECORRUPT);
    raftlog_close(log);
    free(buf);
    assert_int_equal(fsio_sim_open_files(fs), 0);
    model_free(&m);
    fsio_free(fs);
}

/* ------------------------------------------------------------------------ */
/* damage: torn tails, flipped bytes, gaps                                   */
/* ------------------------------------------------------------------------ */

#define FLIP_N 6
#define FLIP_LEN 30
#define FLIP_REC (40 + FLIP_LEN)

/* A log of FLIP_N entries of FLIP_LEN bytes, each appended then synced
 * (so every record proves the ones before it durable). */
static struct fsio *flip_log(uint64_t seg, struct model *m)
{
    struct fsio *fs = new_sim();
    struct raftlog *log;
    uint64_t x = 7;
    assert_int_equal(open_log(fs, seg, NULL, NULL, &log), 0);
    for (int i = 0; i < FLIP_N; i++) {
        add_one(log, m, 1 + (uint64_t)i / 2, FLIP_LEN, &x);
        assert_int_equal(raftlog_sync(log), 0);
    }
    raftlog_close(log);
    return fs;
}

/* Opens after damage: the log must be 1..FLIP_N-1 exactly. */
static void expect_dropped(struct fsio *fs, uint64_t seg, struct model *m)
{
    uint64_t last = m->last;
    m->last = FLIP_N - 1;
    reopen_check(fs, seg, m);
    m->last = last;
}

/*
 * Every cut and every byte change inside the last entry (with its segment
 * header when it has a segment of its own): recovery drops exactly that
 * entry, and the log takes it again afterwards.
 */
static void test_last_entry_cut_and_flip(void **state)
{
    (void)state;
    /* 0: one segment; 1: one entry per segment */
    static const uint64_t segs[] = { 0, 28 + FLIP_REC };
    static const uint8_t masks[] = { 1, 2, 4, 8, 16, 32, 64, 128, 0xff };
    for (int v = 0; v < 2; v++) {
        struct model m = { 0 };
        struct fsio *fs = flip_log(segs[v], &m);
        char path[64];
        seg_file(v ? FLIP_N : 1, path, sizeof(path));
        uint8_t *buf;
        size_t len;
        file_get(fs, path, &buf, &len);
        size_t start = v ? 0 : len - FLIP_REC;

        for (size_t cut = start; cut < len; cut++) {
            file_put(fs, path, buf, cut);
            struct raftlog_recovery rec;
            struct raftlog *log;
            assert_int_equal(open_log(fs, segs[v], NULL, &rec, &log), 0);
            assert_int_equal(raftlog_last_index(log), FLIP_N - 1);
            assert_true(rec.torn_bytes <= cut);
            assert_int_equal(append_from_model(log, &m, FLIP_N, 1), 0);
            assert_int_equal(raftlog_sync(log), 0);
            raftlog_close(log);
            reopen_check(fs, segs[v], &m);
        }
        for (size_t p = start; p < len; p++) {
            for (size_t k = 0; k < sizeof(masks); k++) {
                buf[p] ^= masks[k];
                file_put(fs, path, buf, len);
                buf[p] ^= masks[k];
                expect_dropped(fs, segs[v], &m);
            }
        }
        free(buf);
        model_free(&m);
        fsio_free(fs);
    }
}

/* The first "offset N" in s. */
static uint64_t first_offset(const char *s)
{
    const char *p = strstr(s, "offset ");
    assert_non_null(p);
    return strtoull(p + 7, NULL, 10);
}

/*
 * A changed byte anywhere before the last record, in any segment, is an
 * error naming the file and the damaged record's offset.
 */
static void test_flip_earlier_records(void **state)
{
    (void)state;
    uint64_t seg = 28 + 3 * FLIP_REC;   /* [1..3] [4..6] */
    struct model m = { 0 };
    struct fsio *fs = flip_log(seg, &m);
    for (uint64_t first = 1; first <= FLIP_N; first += 3) {
        char path[64];
        seg_file(first, path, sizeof(path));
        uint8_t *buf;
        size_t len;
        file_get(fs, path, &buf, &len);
        assert_int_equal(len, 28 + 3 * FLIP_REC);
        size_t end = first == 1 ? len : len - FLIP_REC;
        for (size_t p = 0; p < end; p++) {
            buf[p] ^= 0xff;
            file_put(fs, path, buf, len);
            buf[p] ^= 0xff;
            struct raftlog_recovery rec;
            struct raftlog *log;
            assert_int_equal(open_log(fs, seg, NULL, &rec, &log),
                             -DFS_ECORRUPT);
            assert_null(log);
            uint64_t want = p < 28 ? 0 : 28 + (p - 28) / FLIP_REC * FLIP_REC;
            assert_non_null(strstr(rec.error, path));
            if (first_offset(rec.error) != want)
                fail_msg("byte %zu of %s: %s", p, path, rec.error);
        }
        file_put(fs, path, buf, len);
        free(buf);
    }
    reopen_check(fs, seg, &m);
    model_free(&m);
    fsio_free(fs);
}

static void test_gaps_are_errors(void **state)
{
    (void)state;
    uint64_t seg = 28 + 3 * FLIP_REC;
    struct model m = { 0 };
    struct fsio *fs = flip_log(seg, &m);
    struct raftlog *log;
    struct raftlog_recovery rec;
    uint64_t x = 8;
    assert_int_equal(open_log(fs, seg, NULL, NULL, &log), 0);
    for (int i = 0; i < 3; i++) {
        add_one(log, &m, 4, FLIP_LEN, &x);
    }
    assert_int_equal(raftlog_sync(log), 0);
    raftlog_close(log);
    assert_int_equal(count_segments(fs), 3);   /* [1..3] [4..6] [7..9] */

    /* A missing middle segment. */
    char path[64];
    uint8_t *buf;
    size_t len;
    seg_file(4, path, sizeof(path));
    file_get(fs, path, &buf, &len);
    assert_int_equal(fsio_unlink(fs, path), 0);
    assert_int_equal(open_log(fs, seg, NULL, &rec, &log), -DFS_ECORRUPT);
    assert_non_null(strstr(rec.error, "log-00000000000000000007"));
    assert_non_null(strstr(rec.error, "gap"));
    /* A segment under another name. */
    seg_file(5, path, sizeof(path));
    file_put(fs, path, buf, len);
    assert_int_equal(open_log(fs, seg, NULL, &rec, &log), -DFS_ECORRUPT);
    assert_non_null(strstr(rec.error, path));
    assert_int_equal(fsio_unlink(fs, path), 0);
    seg_file(4, path, sizeof(path));
    file_put(fs, path, buf, len);
    free(buf);
    reopen_check(fs, seg, &m);

    /* A compacted log without its snapshot. */
    assert_int_equal(open_log(fs, seg, NULL, NULL, &log), 0);
    struct raft_snapshot_meta meta;
    uint8_t *data;
    make_snapshot(6, m.v[6].term, 51, 5, &meta, &data);
    assert_int_equal(raftlog_snapshot_save(log, &meta, data, 5), 0);
    free(data);
    set_model_snap(&m, &meta, 51, 5);
    assert_int_equal(raftlog_compact(log, 6), 0);
    assert_int_equal(raftlog_sync(log), 0);
    raftlog_close(log);
    assert_int_equal(count_segments(fs), 1);
    reopen_check(fs, seg, &m);
    file_get(fs, D "/snapshot", &buf, &len);
    assert_int_equal(fsio_unlink(fs, D "/snapshot"), 0);
    assert_int_equal(open_log(fs, seg, NULL, &rec, &log), -DFS_ECORRUPT);
    assert_non_null(strstr(rec.error, "missing"));
    file_put(fs, D "/snapshot", buf, len);
    /* ...or with bytes after its data. */
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    longer[len] = 0;
    file_put(fs, D "/snapshot", longer, len + 1);
    assert_int_equal(open_log(fs, seg, NULL, &rec, &log), -DFS_ECORRUPT);
    assert_non_null(strstr(rec.error, D "/snapshot"));
    free(longer);
    file_put(fs, D "/snapshot", buf, len);
    free(buf);
    reopen_check(fs, seg, &m);
    model_free(&m);
    fsio_free(fs);
}

/* Records with good checksums in the wrong place, and a record damaged
 * while the log is open, found by raftlog_read. */
static void test_misplaced_and_rotten_records(void **state)
{
    (void)state;
    uint64_t seg = 28 + 3 * FLIP_REC;   /* [1..3] [4..6] */
    struct model m = { 0 };
    struct fsio *fs = flip_log(seg, &m);
    char path[64];
    uint8_t *buf, tmp[FLIP_REC];
    size_t len;
    seg_file(1, path, sizeof(path));
    file_get(fs, path, &buf, &len);
    memcpy(tmp, buf + 28, FLIP_REC);
    memcpy(buf + 28, buf + 28 + FLIP_REC, FLIP_REC);
    memcpy(buf + 28 + FLIP_REC, tmp, FLIP_REC);
    file_put(fs, path, buf, len);
    struct raftlog_recovery rec;
    struct raftlog *log;
    assert_int_equal(open_log(fs, seg, NULL, &rec, &log), -DFS_ECORRUPT);
    assert_non_null(strstr(rec.error, path));
    assert_int_equal(first_offset(rec.error), 28);
    memcpy(buf + 28 + FLIP_REC, buf + 28, FLIP_REC);
    memcpy(buf + 28, tmp, FLIP_REC);
    file_put(fs, path, buf, len);

    assert_int_equal(open_log(fs, seg, NULL, &rec, &log), 0);
    buf[28 + FLIP_REC + 45] ^= 1;
    file_put(fs, path, buf, len);
    struct got g = { 0 };
    assert_int_equal(raftlog_read(log, 1, 1, got_add, &g), 0);
    assert_int_equal(raftlog_read(log, 1, 3, got_add, &g), -DFS_ECORRUPT);
    got_free(&g);
    raftlog_close(log);
    free(buf);
    model_free(&m);
    fsio_free(fs);
}

/* ------------------------------------------------------------------------ */
/* faults                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A failed write (an injected error, or a full disk that takes two whole
 * records of the batch and part of a third) appends nothing and leaves
 * the log usable: the next, shorter batch is all a reopen finds.
 */
static void test_write_faults_leave_log_usable(void **state)
{
    (void)state;
    static const int errs[] = { EIO, ENOSPC };
    for (int i = 0; i < 2; i++) {
        struct fsio *fs = new_sim();
        struct raftlog *log;
        struct model m = { 0 };
        uint64_t x = 9;
        assert_int_equal(open_log(fs, 0, NULL, NULL, &log), 0);
        add_entries(log, &m, 5, 1, 60, &x);
        assert_int_equal(raftlog_sync(log), 0);
        for (uint64_t k = 0; k < 4; k++)
            model_put(&m, m.last + 1 + k, (struct ment){ .term = 1,
                      .salt = k, .type = 1, .len = 100 });
        if (errs[i] == EIO)
            assert_int_equal(fsio_sim_fail(fs, FSIO_OP_WRITE, 1, EIO), 0);
        else
            assert_int_equal(fsio_sim_set_capacity(fs, fsio_sim_used(fs)
                                                   + 300), 0);
        assert_int_equal(append_from_model(log, &m, m.last + 1, 4),
                         -errs[i]);
        assert_int_equal(raftlog_last_index(log), m.last);
        assert_int_equal(raftlog_failed(log), 0);
        assert_int_equal(fsio_sim_set_capacity(fs, 0), 0);
        assert_int_equal(append_from_model(log, &m, m.last + 1, 1), 0);
        m.last++;
        assert_int_equal(raftlog_sync(log), 0);
        raftlog_close(log);
        reopen_check(fs, 0, &m);
        assert_int_equal(open_log(fs, 0, NULL, NULL, &log), 0);
        assert_int_equal(append_from_model(log, &m, m.last + 1, 3), 0);
        m.last += 3;
        assert_int_equal(raftlog_sync(log), 0);
        raftlog_close(log);
        assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_TEAR, 3), 0);
        reopen_check(fs, 0, &m);
        model_free(&m);
        fsio_free(fs);
    }
}

/* A failed fdatasync fails the handle; a reopen, with or without a power
 * cut, finds exactly what was durable before. */
static void test_sync_fault_fails_handle(void **state)
{
    (void)state;
    static const enum fsio_op ops[] = { FSIO_OP_SYNC, FSIO_OP_SYNC_DIR };
    for (int i = 0; i < 2; i++) {
        struct fsio *fs = new_sim();
        struct raftlog *log;
        struct model m = { 0 };
        uint64_t x = 10;
        assert_int_equal(open_log(fs, SMALL_SEG, NULL, NULL, &log), 0);
        add_entries(log, &m, 5, 1, 60, &x);
        assert_int_equal(raftlog_sync(log), 0);
        uint64_t durable = m.last;
        /* Past a roll (which syncs), so that a segment name is pending
         * too. */
        add_entries(log, &m, 12, 1, 60, &x);
        assert_int_equal(fsio_sim_fail(fs, ops[i], 1, EIO), 0);
        assert_int_equal(raftlog_sync(log), -EIO);
        assert_int_equal(raftlog_failed(log), -EIO);
        assert_int_equal(raftlog_sync(log), -EIO);
        assert_int_equal(append_from_model(log, &m, m.last + 1, 1), -EIO);
        assert_int_equal(raftlog_truncate(log, 2), -EIO);
        assert_true(raftlog_durable_index(log) < m.last);
        durable = raftlog_durable_index(log) > durable ?
                  raftlog_durable_index(log) : durable;
        raftlog_close(log);
        /* The cut-back tail after the failed sync: no unsynced entry is
         * read back as if it were durable. */
        struct got g = { 0 };
        struct raftlog_recovery rec;
        assert_int_equal(open_log(fs, SMALL_SEG, &g, &rec, &log), 0);
        CHECK(rec.last_index >= durable);
        check_got(&g, &m, 1, rec.last_index);
        uint64_t found = rec.last_index;
        raftlog_close(log);
        assert_int_equal(fsio_sim_crash(fs, FSIO_CRASH_DROP_ALL, 1), 0);
        assert_int_equal(open_log(fs, SMALL_SEG, &g, &rec, &log), 0);
        CHECK(rec.last_index == found);
        check_got(&g, &m, 1, found);
        raftlog_close(log);
        got_free(&g);
        model_free(&m);
        fsio_free(fs);
    }
}

/* ------------------------------------------------------------------------ */
/* random operations, power cuts, and a model                               */
/* ------------------------------------------------------------------------ */

enum op_kind {
    OP_APPEND, OP_SYNC, OP_TRUNCATE, OP_SNAP_SAVE, OP_COMPACT, OP_INSTALL,
    OP_HARD_STATE, OP_READ
};

struct op {
    enum op_kind kind;
    uint64_t a, b;      /* append: first index; truncate: from; read: from,
                         * to; snapshot: index, term; compact: upto */
    size_t n;           /* append: entries */
    struct ment ents[MAX_BATCH];
    uint64_t salt;      /* snapshot: data and members */
    uint32_t len;       /* snapshot: data length */
    struct raftlog_hard_state hs;
};

static void gen_append(const struct model *m, uint64_t *x, struct op *op)
{
    op->kind = OP_APPEND;
    op->a = m->last + 1;
    op->n = 1 + rnd(x, MAX_BATCH);
    uint64_t term = m->last_term ? m->last_term : 1;
    term += rnd(x, 8) == 0;
    for (size_t i = 0; i < op->n; i++)
        op->ents[i] = (struct ment){
            .term = term, .salt = rng_next(x), .type = 1 + rnd(x, 3),
            .len = (uint32_t)(rnd(x, 10) ? rnd(x, 60) : rnd(x, 700)),
        };
}

/* A random operation valid on a log the model describes, whose first
 * stored index is first. */
static void op_gen(const struct model *m, uint64_t first, uint64_t *x,
                   struct op *op)
{
    uint64_t s = snap_index(m), lo = first > s + 1 ? first : s + 1;
    unsigned r = (unsigned)rnd(x, 100);
    memset(op, 0, sizeof(*op));
    op->kind = OP_SYNC;
    op->salt = rng_next(x);
    op->len = (uint32_t)rnd(x, 300);
    if (r < 45) {
        gen_append(m, x, op);
    } else if (r < 65) {
        op->kind = OP_SYNC;
    } else if (r < 71 && lo <= m->last) {
        op->kind = OP_TRUNCATE;
        op->a = lo + rnd(x, m->last - lo + 1);
    } else if (r < 77 && m->last > s) {
        op->kind = OP_SNAP_SAVE;
        op->a = s + 1 + rnd(x, m->last - s);
        op->b = model_term(m, op->a);
    } else if (r < 81) {
        op->kind = OP_COMPACT;
        op->a = rnd(x, s + 1);
    } else if (r < 85) {
        op->kind = OP_INSTALL;
        op->a = s + 1 + rnd(x, m->last - s + 20);
        op->b = op->a <= m->last && rnd(x, 2) ? model_term(m, op->a)
                                              : 1 + rnd(x, m->last_term + 2);
    } else if (r < 91) {
        op->kind = OP_HARD_STATE;
        op->hs = (struct raftlog_hard_state){ .term = rnd(x, 50),
                  .vote = rnd(x, 5), .commit = rnd(x, m->last + 1) };
    } else if (lo <= m->last) {
        op->kind = OP_READ;
        op->a = lo + rnd(x, m->last - lo + 1);
        op->b = op->a + rnd(x, 30);
        if (op->b > m->last)
            op->b = m->last;
    }
}

/* What the op does to the model when it succeeds. */
static void op_model(struct model *m, const struct op *op)
{
    switch (op->kind) {
    case OP_APPEND:
        for (size_t i = 0; i < op->n; i++)
            model_put(m, op->a + i, op->ents[i]);
        m->last += op->n;
        m->last_term = op->ents[op->n - 1].term;
        break;
    case OP_SYNC:
        m->durable = m->last;
        break;
    case OP_TRUNCATE:
        m->last = op->a - 1;
        m->last_term = model_term(m, m->last);
        if (m->durable > m->last)
            m->durable = m->last;
        break;
    case OP_INSTALL:
        m->last = m->durable = op->a;
        m->last_term = op->b;
        /* fall through */
    case OP_SNAP_SAVE: {
        struct raft_snapshot_meta meta = { .index = op->a, .term = op->b };
        members_of(op->salt, &meta.members);
        set_model_snap(m, &meta, op->salt, op->len);
        break;
    }
    case OP_HARD_STATE:
        m->hs = op->hs;
        break;
    case OP_COMPACT:
    case OP_READ:
        break;
    }
}

static int op_snapshot(struct raftlog *log, const struct op *op)
{
    struct raft_snapshot_meta meta;
    uint8_t *data;
    make_snapshot(op->a, op->b, op->salt, op->len, &meta, &data);
    int rc = op->kind == OP_INSTALL ?
             raftlog_snapshot_install(log, &meta, data, op->len) :
             raftlog_snapshot_save(log, &meta, data, op->len);
    free(data);
    return rc;
}

/* Runs op on log (m: the model before it, for reads). */
static int op_run(struct raftlog *log, const struct model *m,
                  const struct op *op)
{
    struct model tmp = { 0 };
    struct got g = { 0 };
    int rc = 0;
    switch (op->kind) {
    case OP_APPEND:
        model_copy(&tmp, m);
        op_model(&tmp, op);
        rc = append_from_model(log, &tmp, op->a, op->n);
        model_free(&tmp);
        return rc;
    case OP_SYNC:
        return raftlog_sync(log);
    case OP_TRUNCATE:
        return raftlog_truncate(log, op->a);
    case OP_COMPACT:
        return raftlog_compact(log, op->a);
    case OP_SNAP_SAVE:
    case OP_INSTALL:
        return op_snapshot(log, op);
    case OP_HARD_STATE:
        return raftlog_hard_state_save(log, &op->hs);
    case OP_READ:
        rc = raftlog_read(log, op->a, op->b, got_add, &g);
        if (rc == 0)
            check_got(&g, m, op->a, op->b);
        got_free(&g);
        return rc;
    }
    return -EINVAL;
}

struct world {
    struct fsio *fs;
    struct raftlog *log;
    struct model m;
    uint64_t seg;
    bool swept;         /* a fault armed outside run_ops may fire */
    bool planted;       /* planted bug: OP_SYNC reports without syncing */
    unsigned lost;      /* planted: recoveries that lost durable entries */
    unsigned torn;      /* recoveries that cut a torn tail */
    unsigned failed_ops;
};

static bool hs_equal(const struct raftlog_hard_state *a,
                     const struct raftlog_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

static bool snap_is(const struct raftlog_recovery *rec, const struct model *m)
{
    if (!m->has_snap)
        return !rec->has_snapshot;
    return rec->has_snapshot && meta_equal(&rec->snap, &m->snap);
}

/*
 * After a power cut during an op (interrupted: it failed; pre and post are
 * the models before it and had it completed) or between ops (pre = post):
 * recovers and checks that the hard state and snapshot are post's (or
 * pre's, if interrupted), that each entry is one of theirs, and that every
 * entry reported durable is there.  w->m becomes the recovered state.
 */
static void recover_check(struct world *w, const struct model *pre,
                          const struct model *post)
{
    struct got g = { 0 };
    struct raftlog_recovery rec;
    int rc = open_log(w->fs, w->seg, &g, &rec, &w->log);
    if (rc)
        print_error("recovery: %s (%s)\n", rec.error, dfs_strerror(rc));
    CHECK(rc == 0);
    CHECK(hs_equal(&rec.hs, &post->hs) || hs_equal(&rec.hs, &pre->hs));
    const struct model *sm = snap_is(&rec, post) ? post :
                             snap_is(&rec, pre) ? pre : NULL;
    CHECK(sm != NULL);
    uint64_t s = snap_index(sm);
    CHECK(rec.first_index == s + 1);
    CHECK(rec.last_index == s + g.n);
    if (sm->has_snap)
        check_snapshot(w->log, sm);
    uint64_t need = pre->durable < post->durable ? pre->durable
                                                 : post->durable;
    bool lost = need > s && rec.last_index < need;
    if (lost && !w->planted)
        print_error("durable %" PRIu64 " lost: recovered %" PRIu64 "-%"
                    PRIu64 "\n", need, rec.first_index, rec.last_index);
    CHECK(!lost || w->planted);
    w->lost += lost;
    w->torn += rec.torn_bytes > 0;

    struct model next = { 0 };
    model_copy(&next, sm);
    for (size_t i = 0; i < g.n; i++) {
        const struct raft_entry *e = &g.v[i];
        CHECK(e->index == s + 1 + i);
        bool in_post = model_has(post, e);
        CHECK(in_post || model_has(pre, e));
        model_put(&next, e->index, (in_post ? post : pre)->v[e->index]);
    }
    next.last = rec.last_index;
    next.last_term = g.n ? g.v[g.n - 1].term : model_term(&next, s);
    next.durable = next.last;
    next.hs = rec.hs;
    CHECK(raftlog_last_index(w->log) == next.last);
    CHECK(raftlog_last_term(w->log) == next.last_term);
    CHECK(raftlog_durable_index(w->log) == next.last);
    model_copy(&w->m, &next);
    model_free(&next);
    got_free(&g);
}

static const enum fsio_crash policies[] = {
    FSIO_CRASH_KEEP_ALL, FSIO_CRASH_DROP_ALL, FSIO_CRASH_KEEP_RANDOM,
    FSIO_CRASH_TEAR,
};

/* The steps of an op where the power may go. */
static const enum fsio_op fault_ops[] = {
    FSIO_OP_WRITE, FSIO_OP_SYNC, FSIO_OP_SYNC_DIR, FSIO_OP_UNLINK,
    FSIO_OP_RENAME, FSIO_OP_TRUNCATE, FSIO_OP_OPEN,
};
#define NFAULT_OPS (sizeof(fault_ops) / sizeof(fault_ops[0]))

/*
 * Runs up to nops random ops from x, arming a random fault before one op
 * in five when faults is set; stops at the first op that fails (which
 * only an armed fault may cause).  pre/post: the models around the failed
 * op, or both the final model.  Returns whether an op failed.
 */
static bool run_ops(struct world *w, int nops, uint64_t *x, bool faults,
                    struct model *pre, struct model *post)
{
    for (int i = 0; i < nops; i++) {
        struct op op;
        op_gen(&w->m, raftlog_first_index(w->log), x, &op);
        model_copy(pre, &w->m);
        model_copy(post, &w->m);
        op_model(post, &op);
        int armed = faults && rnd(x, 5) == 0 ? (int)rnd(x, NFAULT_OPS) : -1;
        if (armed >= 0)
            CHECK(fsio_sim_fail(w->fs, fault_ops[armed],
                                1 + (unsigned)rnd(x, 3), EIO) == 0);
        int rc = w->planted && op.kind == OP_SYNC ? 0 :
                 op_run(w->log, &w->m, &op);
        if (armed >= 0)
            CHECK(fsio_sim_fail(w->fs, fault_ops[armed], 0, 0) == 0);
        if (rc) {
            CHECK(armed >= 0 || w->swept);
            w->failed_ops++;
            return true;
        }
        model_copy(&w->m, post);
    }
    model_copy(pre, &w->m);
    model_copy(post, &w->m);
    return false;
}

/* Ends a round: a kill -9 when policy is KILL (the page cache survives,
 * nothing more becomes durable), else a power cut; then recovery and its
 * check. */
#define KILL (-1)
static void cut_power(struct world *w, struct model *pre, struct model *post,
                      int policy, uint64_t seed)
{
    raftlog_close(w->log);
    w->log = NULL;
    CHECK(fsio_sim_open_files(w->fs) == 0);
    if (policy != KILL)
        CHECK(fsio_sim_crash(w->fs, (enum fsio_crash)policy, seed) == 0);
    recover_check(w, pre, post);
}

/* A kill -9 or one of the power cuts, at random. */
static int random_end(uint64_t *x)
{
    unsigned r = (unsigned)rnd(x, 5);
    return r == 4 ? KILL : (int)policies[r];
}

static void world_free(struct world *w)
{
    raftlog_close(w->log);
    model_free(&w->m);
    fsio_free(w->fs);
}

/* Rounds of random ops (some failing mid-way on a fault), each ended by
 * a kill -9 or a power cut and a checked recovery (a later round checks
 * that what a recovery found stays durable).  Returns the counters. */
static struct world power_cuts(uint64_t first, uint64_t last, bool planted)
{
    struct world sum = { 0 };
    unsigned cuts = 0;
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        uint64_t x = cur_seed;
        struct world w = { .fs = new_sim(), .planted = planted,
                           .seg = rnd(&x, 2) ? SMALL_SEG : 4096 };
        /* One seed in eight runs on a disk about to fill up: writes fail
         * with ENOSPC after writing what fits. */
        bool full = !planted && rnd(&x, 8) == 0;
        w.swept = full;
        CHECK(open_log(w.fs, w.seg, NULL, NULL, &w.log) == 0);
        for (int round = 0; round < 5; round++, cuts++) {
            struct model pre = { 0 }, post = { 0 };
            if (full)
                CHECK(fsio_sim_set_capacity(w.fs, fsio_sim_used(w.fs) +
                                            rnd(&x, 4000)) == 0);
            run_ops(&w, 1 + (int)rnd(&x, 60), &x, !planted, &pre, &post);
            CHECK(fsio_sim_set_capacity(w.fs, 0) == 0);
            cut_power(&w, &pre, &post, random_end(&x), rng_next(&x));
            model_free(&pre);
            model_free(&post);
        }
        sum.lost += w.lost;
        sum.torn += w.torn;
        sum.failed_ops += w.failed_ops;
        world_free(&w);
    }
    print_message("%u kills and power cuts: %u during a failing op, %u "
                  "torn tails, "
                  "%u lost durable entries\n", cuts, sum.failed_ops,
                  sum.torn, sum.lost);
    return sum;
}

static void test_power_cuts(void **state)
{
    (void)state;
    uint64_t first = 1, last = 1000;
    seed_range("power cuts", &first, &last);
    struct world sum = power_cuts(first, last, false);
    assert_int_equal(sum.lost, 0);
}

/* The same checker, against a planted bug (a sync reported done but never
 * made), must see durable entries lost. */
static void test_power_cuts_checker_bites(void **state)
{
    (void)state;
    struct world sum = power_cuts(1, 100, true);
    assert_true(sum.lost > 0);
}

/*
 * The Nth call of each kind fails, for every N a fixed workload reaches:
 * the op reports the error, and after a power cut recovery finds a state
 * the model allows.
 */
static void test_fault_sweep(void **state)
{
    (void)state;
    unsigned runs = 0;
    for (size_t k = 0; k < NFAULT_OPS; k++) {
        for (unsigned nth = 1;; nth++) {
            cur_seed = k * 1000 + nth;
            uint64_t x = 77;
            struct world w = { .fs = new_sim(), .seg = SMALL_SEG,
                               .swept = true };
            struct model pre = { 0 }, post = { 0 };
            CHECK(open_log(w.fs, w.seg, NULL, NULL, &w.log) == 0);
            CHECK(fsio_sim_fail(w.fs, fault_ops[k], nth, EIO) == 0);
            bool failed = run_ops(&w, 120, &x, false, &pre, &post);
            CHECK(fsio_sim_fail(w.fs, fault_ops[k], 0, 0) == 0);
            if (failed) {
                runs++;
                cut_power(&w, &pre, &post, policies[nth % 4], nth);
            }
            model_free(&pre);
            model_free(&post);
            world_free(&w);
            if (!failed)
                break;
        }
    }
    print_message("fault sweep: %u failing runs\n", runs);
}

/*
 * Faults during recovery itself: the open fails cleanly (no handle, no
 * open file), and a later recovery, after another power cut or not, still
 * finds a state the model allows.
 */
static void test_recovery_faults(void **state)
{
    (void)state;
    static const enum fsio_op ops[] = {
        FSIO_OP_OPEN, FSIO_OP_READ, FSIO_OP_TRUNCATE, FSIO_OP_SYNC,
        FSIO_OP_SYNC_DIR, FSIO_OP_UNLINK,
    };
    uint64_t first = 1, last = 30;
    seed_range("recovery faults", &first, &last);
    for (cur_seed = first; cur_seed <= last; cur_seed++) {
        for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
            for (unsigned nth = 1;; nth++) {
                uint64_t x = cur_seed;
                struct world w = { .fs = new_sim(), .seg = SMALL_SEG };
                struct model pre = { 0 }, post = { 0 };
                CHECK(open_log(w.fs, w.seg, NULL, NULL, &w.log) == 0);
                run_ops(&w, 80, &x, false, &pre, &post);
                raftlog_close(w.log);
                CHECK(fsio_sim_crash(w.fs, FSIO_CRASH_TEAR, cur_seed) == 0);
                CHECK(fsio_sim_fail(w.fs, ops[k], nth, EIO) == 0);
                int rc = open_log(w.fs, w.seg, NULL, NULL, &w.log);
                CHECK(fsio_sim_fail(w.fs, ops[k], 0, 0) == 0);
                bool fired = rc != 0;
                if (fired) {
                    CHECK(rc == -EIO && w.log == NULL);
                    CHECK(fsio_sim_open_files(w.fs) == 0);
                    if (nth % 2)
                        CHECK(fsio_sim_crash(w.fs, policies[nth % 4],
                                             nth) == 0);
                } else {
                    raftlog_close(w.log);
                }
                w.log = NULL;
                recover_check(&w, &pre, &post);
                model_free(&pre);
                model_free(&post);
                world_free(&w);
                if (!fired)
                    break;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* the real backend                                                          */
/* ------------------------------------------------------------------------ */

static int unlink_in(const char *name, void *arg)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", (const char *)arg, name);
    return unlink(path) < 0 ? -errno : 0;
}

static void test_real_directory(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/raftlog-test-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    struct fsio *fs = fsio_real_new();
    assert_non_null(fs);
    struct raftlog_options opt = { .segment_size = 4096 };
    struct raftlog *log;
    struct raftlog_recovery rec;
    struct model m = { 0 };
    struct got g = { 0 };
    uint64_t x = 11;
    assert_int_equal(raftlog_open(fs, dir, &opt, NULL, NULL, &rec, &log), 0);
    add_entries(log, &m, 300, 1, 100, &x);
    assert_int_equal(raftlog_sync(log), 0);
    assert_int_equal(raftlog_truncate(log, 250), 0);
    m.last = 249;
    add_entries(log, &m, 20, 2, 100, &x);
    struct raft_snapshot_meta meta;
    uint8_t *data;
    make_snapshot(200, 1, 61, 5000, &meta, &data);
    assert_int_equal(raftlog_snapshot_save(log, &meta, data, 5000), 0);
    free(data);
    set_model_snap(&m, &meta, 61, 5000);
    assert_int_equal(raftlog_compact(log, 200), 0);
    struct raftlog_hard_state hs = { .term = 2, .vote = 1, .commit = 260 };
    assert_int_equal(raftlog_hard_state_save(log, &hs), 0);
    assert_int_equal(raftlog_sync(log), 0);
    raftlog_close(log);

    assert_int_equal(raftlog_open(fs, dir, &opt, got_add, &g, &rec, &log), 0);
    assert_true(hs_equal(&rec.hs, &hs));
    assert_true(meta_equal(&rec.snap, &meta));
    check_got(&g, &m, 201, m.last);
    check_snapshot(log, &m);
    got_free(&g);
    assert_int_equal(raftlog_read(log, 201, m.last, got_add, &g), 0);
    check_got(&g, &m, 201, m.last);
    got_free(&g);
    raftlog_close(log);

    assert_int_equal(fsio_list_dir(fs, dir, unlink_in, dir), 0);
    assert_int_equal(rmdir(dir), 0);
    model_free(&m);
    fsio_free(fs);
}

int main(void)
{
    /* Torn tails and corruption are logged by design: keep the output to
     * cmocka's. */
    log_init("test_raftlog", LOG_ERROR, "/dev/null");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_empty_and_bad_calls),
        cmocka_unit_test(test_roundtrip_rolls_group_commit),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_snapshot_and_compaction),
        cmocka_unit_test(test_snapshot_install),
        cmocka_unit_test(test_snapshot_base_match),
        cmocka_unit_test(test_hard_state_and_files),
        cmocka_unit_test(test_last_entry_cut_and_flip),
        cmocka_unit_test(test_flip_earlier_records),
        cmocka_unit_test(test_gaps_are_errors),
        cmocka_unit_test(test_misplaced_and_rotten_records),
        cmocka_unit_test(test_write_faults_leave_log_usable),
        cmocka_unit_test(test_sync_fault_fails_handle),
        cmocka_unit_test(test_power_cuts),
        cmocka_unit_test(test_power_cuts_checker_bites),
        cmocka_unit_test(test_fault_sweep),
        cmocka_unit_test(test_recovery_faults),
        cmocka_unit_test(test_real_directory),
    };
    return cmocka_run_group_tests_name("raftlog", tests, NULL, NULL);
}
