/* Differential tests of the namespace's data structures against naive
 * models: ns_map, ns_dir (with its cookies), ns_chunk, ns_lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include "master/ns_chunk.h"
#include "master/ns_dir.h"
#include "master/ns_lock.h"
#include "master/ns_map.h"
#include "test_ns.h"

/* ---- ns_map ------------------------------------------------------------ */

#define MAP_KEYS 512

static void test_map_against_array(void **state)
{
    (void)state;
    uint64_t seed = t_seed("map", 11);
    static uint64_t val[MAP_KEYS];
    static bool has[MAP_KEYS];
    memset(has, 0, sizeof(has));
    struct ns_map m;
    ns_map_init(&m);
    for (int step = 0; step < 200000; step++) {
        /* keys spread over the 64-bit space, a few hundred of them */
        uint32_t k = (uint32_t)(t_rand(&seed) % MAP_KEYS);
        uint64_t key = (uint64_t)k * 0x9e3779b97f4a7c15ULL | 1;
        uint64_t v;
        switch (t_rand(&seed) % 3) {
        case 0:
            val[k] = t_rand(&seed);
            has[k] = true;
            assert_int_equal(ns_map_put(&m, key, val[k]), 0);
            break;
        case 1:
            assert_int_equal(ns_map_del(&m, key), has[k]);
            has[k] = false;
            break;
        default:
            assert_int_equal(ns_map_get(&m, key, &v), has[k]);
            if (has[k])
                assert_int_equal(v, val[k]);
        }
    }
    uint32_t count = 0;
    for (int k = 0; k < MAP_KEYS; k++)
        count += has[k];
    assert_int_equal(m.count, count);
    uint64_t *keys;
    assert_int_equal(ns_map_sorted_keys(&m, &keys), 0);
    for (uint32_t i = 1; i < count; i++)
        assert_true(keys[i - 1] < keys[i]);
    free(keys);
    uint32_t pos = 0, walked = 0;
    uint64_t key, v;
    while (ns_map_next(&m, &pos, &key, &v))
        walked++;
    assert_int_equal(walked, count);
    /* 0 marks empty slots: never a key, never found */
    assert_int_equal(ns_map_put(&m, 0, 5), -EINVAL);
    assert_false(ns_map_get(&m, 0, &v));
    assert_false(ns_map_del(&m, 0));
    ns_map_release(&m);
}

/* ---- ns_dir ------------------------------------------------------------ */

#define POOL 3000

struct mdir_ent {
    uint64_t id;
    uint32_t ino;          /* 0 = absent */
};

static void pool_name(char *buf, size_t size, uint32_t i)
{
    /* varied lengths, some sharing prefixes */
    snprintf(buf, size, "%s%u", i % 3 ? "n" : "a-rather-longer-name-", i);
}

/* Every pool name looks up as the model says, and a full listing walks the
 * model's entries in id order. */
static void dir_compare(const struct ns_dir *d, const struct mdir_ent *m)
{
    char name[64];
    uint32_t live = 0;
    for (uint32_t i = 0; i < POOL; i++) {
        struct ns_dir_item it;
        pool_name(name, sizeof(name), i);
        int rc = ns_dir_lookup(d, name, (uint32_t)strlen(name), &it);
        if (m[i].ino == 0) {
            assert_int_equal(rc, -ENOENT);
            continue;
        }
        live++;
        assert_int_equal(rc, 0);
        assert_int_equal(it.ino, m[i].ino);
        assert_int_equal(it.id, m[i].id);
    }
    assert_int_equal(ns_dir_count(d), live);
    uint64_t after = 0, prev = 0;
    uint32_t walked = 0;
    struct ns_dir_item it;
    while (ns_dir_next(d, after, &it) == 0) {
        assert_true(it.id > prev);
        memcpy(name, it.name, it.len);
        name[it.len] = '\0';
        uint32_t i = (uint32_t)strtoul(name + (name[0] == 'a' ? 21 : 1), NULL, 10);
        assert_int_equal(m[i].id, it.id);
        assert_int_equal(m[i].ino, it.ino);
        prev = after = it.id;
        walked++;
    }
    assert_int_equal(walked, live);
}

static void test_dir_against_model(void **state)
{
    (void)state;
    uint64_t seed = t_seed("dir", 12);
    static struct mdir_ent m[POOL];
    memset(m, 0, sizeof(m));
    struct ns_dir d;
    ns_dir_init(&d);
    uint64_t next_id = NS_DIR_FIRST_ID;
    char name[64];
    for (int step = 0; step < 60000; step++) {
        uint32_t i = (uint32_t)(t_rand(&seed) % POOL);
        /* phases: grow, churn, shrink (so the index grows and compaction runs) */
        int phase = (step / 10000) % 3;
        uint32_t op = (uint32_t)(t_rand(&seed) % 10);
        pool_name(name, sizeof(name), i);
        uint32_t len = (uint32_t)strlen(name);
        if ((phase == 0 && op < 7) || (phase == 1 && op < 4) || (phase == 2 && op < 1)) {
            if (m[i].ino)
                continue;
            uint64_t id;
            uint32_t ino = (uint32_t)(t_rand(&seed) % 100000) + 1;
            assert_int_equal(ns_dir_add(&d, name, len, ino, &id), 0);
            assert_int_equal(id, next_id);
            m[i] = (struct mdir_ent){ next_id++, ino };
        } else if (op < 9) {
            assert_int_equal(ns_dir_remove(&d, name, len), m[i].ino ? 0 : -ENOENT);
            m[i].ino = 0;
        } else {
            uint32_t ino = (uint32_t)(t_rand(&seed) % 100000) + 1;
            assert_int_equal(ns_dir_set_ino(&d, name, len, ino), m[i].ino ? 0 : -ENOENT);
            if (m[i].ino)
                m[i].ino = ino;
        }
        if (step % 997 == 0)
            dir_compare(&d, m);
    }
    dir_compare(&d, m);
    assert_int_equal(d.next_id, next_id);
    ns_dir_release(&d);
}

static void test_dir_load_with_ids(void **state)
{
    (void)state;
    struct ns_dir d;
    ns_dir_init(&d);
    d.next_id = 100;
    assert_int_equal(ns_dir_add_id(&d, "a", 1, 5, 10), 0);
    assert_int_equal(ns_dir_add_id(&d, "b", 1, 6, 10), -EINVAL);   /* not ascending */
    assert_int_equal(ns_dir_add_id(&d, "b", 1, 6, 100), -EINVAL);  /* not below next */
    assert_int_equal(ns_dir_add_id(&d, "b", 1, 6, 2), -EINVAL);    /* reserved */
    assert_int_equal(ns_dir_add_id(&d, "b", 1, 6, 50), 0);
    uint64_t id;
    assert_int_equal(ns_dir_add(&d, "c", 1, 7, &id), 0);
    assert_int_equal(id, 100);
    struct ns_dir_item it;
    assert_int_equal(ns_dir_next(&d, 10, &it), 0);
    assert_int_equal(it.id, 50);
    /* emptied, the storage goes but ids keep counting */
    assert_int_equal(ns_dir_remove(&d, "a", 1), 0);
    assert_int_equal(ns_dir_remove(&d, "b", 1), 0);
    assert_int_equal(ns_dir_remove(&d, "c", 1), 0);
    assert_int_equal(ns_dir_bytes(&d), 0);
    assert_int_equal(ns_dir_add(&d, "c", 1, 7, &id), 0);
    assert_int_equal(id, 101);
    ns_dir_release(&d);
}

/* ---- ns_chunk ---------------------------------------------------------- */

static void test_chunk_table_against_array(void **state)
{
    (void)state;
    uint64_t seed = t_seed("chunk", 13);
    enum { N = 20000 };
    static uint32_t handle[N];       /* by model index; id = index * 7 + 1 */
    memset(handle, 0, sizeof(handle));
    struct ns_chunk_table t;
    ns_chunk_table_init(&t);
    uint64_t live = 0;
    for (int step = 0; step < 100000; step++) {
        uint32_t i = (uint32_t)(t_rand(&seed) % N);
        uint64_t id = (uint64_t)i * 7 + 1;
        if (t_rand(&seed) % 3) {
            uint32_t h;
            struct ns_chunk rec = { .id = id, .version = 1, .committed = 1, .length = 2,
                                    .ino = i, .index = 3 };
            int rc = ns_chunk_add(&t, &rec, &h);
            if (handle[i]) {
                assert_int_equal(rc, -DFS_EIDINUSE);
                continue;
            }
            assert_int_equal(rc, 0);
            handle[i] = h;
            live++;
        } else if (handle[i]) {
            ns_chunk_remove(&t, handle[i]);
            handle[i] = 0;
            live--;
        }
        uint32_t j = (uint32_t)(t_rand(&seed) % N);
        assert_int_equal(ns_chunk_find(&t, (uint64_t)j * 7 + 1), handle[j]);
        if (handle[j])
            assert_int_equal(ns_chunk_get(&t, handle[j])->ino, j);
    }
    assert_int_equal(t.count, live);
    uint64_t walked = 0;
    for (uint32_t h = ns_chunk_next(&t, 0); h; h = ns_chunk_next(&t, h))
        walked++;
    assert_int_equal(walked, live);
    struct ns_chunk zero = { .id = 0, .version = 1, .committed = 1 };
    assert_int_equal(ns_chunk_add(&t, &zero, &handle[0]), -EINVAL);
    ns_chunk_table_release(&t);
}

/* ---- ns_lock ----------------------------------------------------------- */

/*
 * The model: per owner, one type per byte cell.  Cells 0..63 are bytes,
 * cell 64 stands for [64, EOF].  Owners are (sess 1..3) x (owner 1..2);
 * POSIX and flock are separate tables.
 */
#define CELLS 65
#define OWNERS 6

struct lmodel {
    uint8_t posix[OWNERS][CELLS];
    uint8_t flock[OWNERS];
};

static uint64_t cell_start(int c) { return (uint64_t)c; }
static uint64_t cell_end(int c) { return c == CELLS - 1 ? UINT64_MAX : (uint64_t)c; }

static int owner_index(uint64_t sess, uint64_t owner)
{
    return (int)((sess - 1) * 2 + (owner - 1));
}

static bool compatible(uint8_t a, uint8_t b)
{
    return a == 0 || b == 0 || (a == NS_LOCK_RD && b == NS_LOCK_RD);
}

/* The model's answer to a request on cells [c0, c1]. */
static int model_set(struct lmodel *m, int o, uint32_t kind, uint32_t type,
                     int c0, int c1, bool *released, bool fault)
{
    *released = false;
    if (kind == NS_LOCK_FLOCK) {
        for (int p = 0; p < OWNERS; p++) {
            if (p != o && type && !compatible(m->flock[p], (uint8_t)type))
                return -EAGAIN;
        }
        *released = m->flock[o] > type;
        m->flock[o] = (uint8_t)type;
        return 0;
    }
    for (int p = 0; p < OWNERS && type; p++) {
        for (int c = c0; c <= c1; c++) {
            /* the planted fault: shared locks never conflict */
            if (p != o && !compatible(m->posix[p][c], (uint8_t)type) &&
                !(fault && type == NS_LOCK_RD))
                return -EAGAIN;
        }
    }
    for (int c = c0; c <= c1; c++) {
        if (m->posix[o][c] > type)
            *released = true;
        m->posix[o][c] = (uint8_t)type;
    }
    return 0;
}

/* The model's canonical lock list, in ns_lock's order. */
static size_t model_list(const struct lmodel *m, struct ns_lock *out)
{
    size_t n = 0;
    for (int o = 0; o < OWNERS; o++) {
        uint64_t sess = (uint64_t)o / 2 + 1, owner = (uint64_t)o % 2 + 1;
        if (m->flock[o])
            out[n++] = (struct ns_lock){ sess, owner, 0, UINT64_MAX, NS_LOCK_FLOCK,
                                         m->flock[o], 0 };
        for (int c = 0; c < CELLS;) {
            if (!m->posix[o][c]) {
                c++;
                continue;
            }
            int e = c;
            while (e + 1 < CELLS && m->posix[o][e + 1] == m->posix[o][c])
                e++;
            out[n++] = (struct ns_lock){ sess, owner, cell_start(c), cell_end(e),
                                         NS_LOCK_POSIX, m->posix[o][c], 0 };
            c = e + 1;
        }
    }
    /* sort by (sess, owner, kind, start): flock (1) before POSIX (2) already */
    return n;
}

/* Runs the lock differential; returns 0 or the first diverging step + 1. */
static int run_lock_diff(uint64_t seed, int steps, bool fault)
{
    struct lmodel m;
    memset(&m, 0, sizeof(m));
    struct ns_lock_table t;
    ns_lock_table_init(&t);
    static struct ns_lock want[OWNERS * (CELLS + 1)];
    int diverged = 0;
    for (int step = 0; step < steps && !diverged; step++) {
        uint64_t sess = t_rand(&seed) % 3 + 1, owner = t_rand(&seed) % 2 + 1;
        uint32_t kind = t_rand(&seed) % 5 ? NS_LOCK_POSIX : NS_LOCK_FLOCK;
        uint32_t type = (uint32_t)(t_rand(&seed) % 3);
        int c0 = (int)(t_rand(&seed) % CELLS);
        int c1 = c0 + (int)(t_rand(&seed) % 12);
        if (c1 >= CELLS || t_rand(&seed) % 8 == 0)
            c1 = CELLS - 1;
        struct ns_lock req = { sess, owner, cell_start(c0), cell_end(c1), kind, type, 0 };
        if (kind == NS_LOCK_FLOCK) {
            req.start = 0;
            req.end = UINT64_MAX;
        }
        bool rel_model, rel = false;
        int want_rc = model_set(&m, owner_index(sess, owner), kind, type, c0, c1,
                                &rel_model, fault);
        int rc = ns_lock_set(&t, 9, &req, &rel);
        size_t nw = model_list(&m, want), ng;
        const struct ns_lock *got = ns_lock_list(&t, 9, &ng);
        if (rc != want_rc || (rc == 0 && rel != rel_model) || ng != nw ||
            (nw && memcmp(got, want, nw * sizeof(*got)) != 0)) {
            printf("lock diff at step %d: rc %d want %d, %zu locks want %zu\n",
                   step, rc, want_rc, ng, nw);
            diverged = step + 1;
        }
        bool held = false;
        for (size_t i = 0; i < nw; i++)
            held |= want[i].sess == sess;
        if (!diverged && ns_lock_held(&t, 9, sess) != held)
            diverged = step + 1;
    }
    ns_lock_table_release(&t);
    return diverged;
}

static void test_lock_against_byte_model(void **state)
{
    (void)state;
    uint64_t seed = t_seed("lock", 14);
    for (int run = 0; run < 20; run++)
        assert_int_equal(run_lock_diff(seed + (uint64_t)run, 3000, false), 0);
}

static void test_lock_checker_bites(void **state)
{
    (void)state;
    uint64_t seed = t_seed("lock fault", 15);
    assert_int_not_equal(run_lock_diff(seed, 3000, true), 0);
}

static void test_lock_drop(void **state)
{
    (void)state;
    struct ns_lock_table t;
    ns_lock_table_init(&t);
    struct ns_lock a = { 1, 1, 0, 9, NS_LOCK_POSIX, NS_LOCK_RD, 0 };
    struct ns_lock b = { 1, 2, 20, 29, NS_LOCK_POSIX, NS_LOCK_WR, 0 };
    struct ns_lock c = { 2, 1, 0, UINT64_MAX, NS_LOCK_FLOCK, NS_LOCK_RD, 0 };
    assert_int_equal(ns_lock_set(&t, 5, &a, NULL), 0);
    assert_int_equal(ns_lock_set(&t, 5, &b, NULL), 0);
    assert_int_equal(ns_lock_set(&t, 5, &c, NULL), 0);
    assert_false(ns_lock_drop(&t, 5, 1, 1, NS_LOCK_FLOCK));
    assert_true(ns_lock_drop(&t, 5, 1, 1, NS_LOCK_POSIX));
    size_t n;
    ns_lock_list(&t, 5, &n);
    assert_int_equal(n, 2);
    assert_true(ns_lock_drop(&t, 5, 1, 0, 0));
    assert_true(ns_lock_held(&t, 5, 2));
    assert_false(ns_lock_held(&t, 5, 1));
    struct ns_lock bad = { 1, 1, 5, 4, NS_LOCK_POSIX, NS_LOCK_RD, 0 };
    assert_int_equal(ns_lock_set(&t, 5, &bad, NULL), -EINVAL);
    bad = (struct ns_lock){ 1, 1, 5, 6, NS_LOCK_FLOCK, NS_LOCK_RD, 0 };
    assert_int_equal(ns_lock_set(&t, 5, &bad, NULL), -EINVAL);
    ns_lock_forget(&t, 5);
    assert_null(ns_lock_list(&t, 5, &n));
    ns_lock_table_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_against_array),
        cmocka_unit_test(test_dir_against_model),
        cmocka_unit_test(test_dir_load_with_ids),
        cmocka_unit_test(test_chunk_table_against_array),
        cmocka_unit_test(test_lock_against_byte_model),
        cmocka_unit_test(test_lock_checker_bites),
        cmocka_unit_test(test_lock_drop),
    };
    return cmocka_run_group_tests_name("ns_struct", tests, NULL, NULL);
}
