/*
 * Replication-level tests of the namespace: one random op log (sessions,
 * opens, writes, truncates, locks, expiries, retries, tree ops) applied as
 * bytes on three state machines, one of them restored from a snapshot
 * midway, must give the same replies, effects and digests; readdir under
 * concurrent inserts and deletes; snapshot and op decoding refuse every
 * corruption.  Replay a run with NS_SEED=<seed>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include <zlib.h>

#include "common/crc32c.h"
#include "common/log.h"
#include "test_ns.h"

/* ---- the replicas -------------------------------------------------------- */

#define CLIENTS 3
#define HANDLES 64
#define LOG_MAX 4096

struct handle {
    uint64_t client, ino;
    bool write;
};

struct world {
    struct tctx a;              /* the generator applies to a and reads it */
    struct ns *b, *c;           /* c: NULL until restored from a snapshot */
    uint64_t seed;
    uint64_t seqs[CLIENTS + 1];
    bool has_session[CLIENTS + 1];
    uint64_t next_session;
    struct handle h[HANDLES];
    int nh;
    uint8_t *log[LOG_MAX];      /* encoded ops, for retries */
    size_t loglen[LOG_MAX];
    int nlog;
    int retries, deduped;
    int cuts;                   /* ops that cut a chunk short */
};

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Effects compared as sets: hash layouts may order them differently. */
static void same_effects(struct ns_result *x, struct ns_result *y)
{
    assert_memory_equal(&x->reply, &y->reply, sizeof(x->reply));
    assert_int_equal(x->deduped, y->deduped);
    assert_int_equal(x->session_ended, y->session_ended);
    struct ns_u64s *lx[] = { &x->freed, &x->leases, &x->lock_inos };
    struct ns_u64s *ly[] = { &y->freed, &y->leases, &y->lock_inos };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lx[i]->n, ly[i]->n);
        if (lx[i]->n == 0)
            continue;
        qsort(lx[i]->v, lx[i]->n, sizeof(uint64_t), cmp_u64);
        qsort(ly[i]->v, ly[i]->n, sizeof(uint64_t), cmp_u64);
        assert_memory_equal(lx[i]->v, ly[i]->v, lx[i]->n * sizeof(uint64_t));
    }
    assert_int_equal(x->ntrimmed, y->ntrimmed);
    if (x->ntrimmed)
        assert_memory_equal(x->trimmed, y->trimmed, x->ntrimmed * sizeof(*x->trimmed));
}

/* Applies the encoded op on every replica, as committed Raft entries are. */
static int replicate(struct world *w, const uint8_t *buf, size_t len)
{
    struct ns_op op;
    assert_int_equal(ns_op_decode(buf, len, &op), 0);
    ns_result_release(&w->a.res);
    ns_result_init(&w->a.res);
    int rc = ns_apply(w->a.ns, &op, &w->a.res);
    struct ns *others[] = { w->b, w->c };
    for (int i = 0; i < 2; i++) {
        if (!others[i])
            continue;
        struct ns_result r;
        ns_result_init(&r);
        assert_int_equal(ns_apply(others[i], &op, &r), rc);
        same_effects(&w->a.res, &r);
        ns_result_release(&r);
    }
    w->cuts += w->a.res.ntrimmed > 0 && !w->a.res.deduped;
    return rc;
}

static int submit(struct world *w, const struct ns_op *op)
{
    struct wire_writer wr;
    wire_writer_init(&wr);
    ns_op_encode(op, &wr);
    assert_int_equal(wr.err, 0);
    size_t len;
    uint8_t *buf = wire_writer_detach(&wr, &len);
    int rc = replicate(w, buf, len);
    if (w->nlog < LOG_MAX) {
        w->log[w->nlog] = buf;
        w->loglen[w->nlog++] = len;
    } else {
        free(buf);
    }
    return rc;
}

static struct ns_op new_op(struct world *w, uint64_t client, enum ns_op_type type)
{
    w->a.client = client;
    w->a.seq = w->seqs[client];
    struct ns_op op = t_op(&w->a, type, &T_ROOT);
    w->seqs[client] = w->a.seq;
    return op;
}

/* ---- the generator --------------------------------------------------------- */

static uint64_t rnd(struct world *w, uint64_t n)
{
    return t_rand(&w->seed) % n;
}

/* A random regular file (found by walking a random directory), or 0. */
static uint64_t some_file(struct world *w, uint64_t *dir, char *name)
{
    uint64_t d = rnd(w, 4) ? NS_ROOT_INO + 1 + rnd(w, 3) : NS_ROOT_INO;
    struct ns_dirent ents[16];
    size_t n;
    *dir = d;
    if (ns_readdir(w->a.ns, &T_ROOT, d, 2, ents, 16, &n) < 0 || n == 0)
        return 0;
    struct ns_dirent *e = &ents[rnd(w, n)];
    memcpy(name, e->name, e->len);
    name[e->len] = '\0';
    return e->mode == S_IFREG ? e->ino : 0;
}

static void gen_session(struct world *w, uint64_t client)
{
    struct ns_op op = new_op(w, client, NS_OP_SESSION_OPEN);
    op.u.session = (struct ns_op_session){ .session = ++w->next_session,
                                           .expiry = op.now + 200 };
    assert_int_equal(submit(w, &op), 0);
    w->has_session[client] = true;
}

/* Handles die with their session. */
static void forget_client(struct world *w, uint64_t client)
{
    int k = 0;
    for (int i = 0; i < w->nh; i++) {
        if (w->h[i].client != client)
            w->h[k++] = w->h[i];
    }
    w->nh = k;
    w->has_session[client] = false;
}

static void gen_open(struct world *w, uint64_t client)
{
    uint64_t dir;
    char name[256];
    bool create = rnd(w, 3) == 0;
    uint64_t ino = some_file(w, &dir, name);
    bool write = rnd(w, 2);
    struct ns_op op;
    if (create || !ino) {
        snprintf(name, sizeof(name), "f%llu", (unsigned long long)rnd(w, 40));
        op = new_op(w, client, NS_OP_CREATE);
        op.u.make = (struct ns_op_make){ .parent = dir, .name = t_str(name),
                                         .mode = 0644, .ino = ns_next_free_ino(w->a.ns, 0),
                                         .flags = NS_OPEN_READ | (write ? NS_OPEN_WRITE : 0) };
    } else {
        op = new_op(w, client, NS_OP_OPEN);
        op.u.open = (struct ns_op_open){ .ino = ino, .flags = NS_OPEN_READ |
                                         (write ? NS_OPEN_WRITE : 0) |
                                         (rnd(w, 10) == 0 ? NS_OPEN_TRUNC : 0) };
    }
    if (submit(w, &op) == 0 && w->nh < HANDLES)
        w->h[w->nh++] = (struct handle){ client, w->a.res.reply.attr.ino, write };
}

/* A chunk index of the handle's file that its session holds a lease on,
 * or -1. */
static int leased_index(struct world *w, const struct handle *h)
{
    uint64_t sess;
    int64_t expiry;
    struct ns_chunk_info ci[4];
    size_t n;
    if (ns_session_of(w->a.ns, h->client, &sess, &expiry) < 0 ||
        ns_chunk_range(w->a.ns, h->ino, 0, ci, 4, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (ci[i].id && ns_lease_holder(w->a.ns, ci[i].id) == sess)
            return (int)i;
    }
    return -1;
}

/* A size for a truncate; half of them inside committed data, to cut
 * chunks short (and again, before or after a write). */
static uint64_t some_size(struct world *w, const struct handle *h)
{
    struct ns_chunk_info ci[4];
    size_t n;
    if (rnd(w, 2) || ns_chunk_range(w->a.ns, h->ino, 0, ci, 4, &n) < 0 || n == 0)
        return rnd(w, 3 * NS_CHUNK_SIZE_DEFAULT);
    const struct ns_chunk_info *c = &ci[rnd(w, n)];
    return (uint64_t)c->index * NS_CHUNK_SIZE_DEFAULT + rnd(w, c->length ? c->length : NS_CHUNK_SIZE_DEFAULT);
}

static void gen_handle_op(struct world *w, struct handle *h)
{
    struct ns_op op;
    uint32_t index = (uint32_t)rnd(w, 4);
    /* a write session usually commits, so that truncates find data to cut */
    int leased = h->write ? leased_index(w, h) : -1;
    if (leased >= 0 && rnd(w, 2))
        index = (uint32_t)leased;
    switch (leased >= 0 && rnd(w, 2) ? 1 : rnd(w, 6)) {
    case 0:
        op = new_op(w, h->client, NS_OP_WRITE_BEGIN);
        op.u.write = (struct ns_op_write){ .ino = h->ino, .index = index,
                                           .chunk_id = ns_max_chunk_id(w->a.ns) + 1 };
        break;
    case 1:
        op = new_op(w, h->client, NS_OP_WRITE_END);
        op.u.write = (struct ns_op_write){ .ino = h->ino, .index = index,
                                           .length = (uint32_t)rnd(w, 1u << 20),
                                           .mtime = w->a.now, .flags = (uint32_t)rnd(w, 2) };
        break;
    case 2:
        op = new_op(w, h->client, NS_OP_SETATTR);
        op.u.setattr = (struct ns_op_setattr){ .ino = h->ino, .size = some_size(w, h),
                                               .valid = NS_SET_SIZE | NS_SET_OPEN_FH };
        break;
    case 3: {
        op = new_op(w, h->client, NS_OP_LOCK);
        uint64_t start = rnd(w, 100);
        op.u.lock = (struct ns_op_lock){ .ino = h->ino, .owner = 1 + rnd(w, 2),
                                         .kind = rnd(w, 3) ? NS_LOCK_POSIX : NS_LOCK_FLOCK,
                                         .type = (uint32_t)rnd(w, 3), .start = start,
                                         .end = rnd(w, 5) ? start + rnd(w, 50) : UINT64_MAX };
        break;
    }
    default: {
        op = new_op(w, h->client, NS_OP_RELEASE);
        op.u.open = (struct ns_op_open){ .ino = h->ino, .owner = 1 + rnd(w, 2),
                                         .flags = NS_OPEN_READ | (h->write ? NS_OPEN_WRITE : 0) |
                                                  (uint32_t)rnd(w, 4) * NS_RELEASE_FLOCK };
        if (submit(w, &op) == 0)
            *h = w->h[--w->nh];
        return;
    }
    }
    submit(w, &op);
}

static void gen_tree_op(struct world *w, uint64_t client)
{
    uint64_t dir, ndir;
    char name[256], nname[256];
    some_file(w, &dir, name);
    some_file(w, &ndir, nname);
    struct ns_op op;
    switch (rnd(w, 4)) {
    case 0:
        op = new_op(w, client, NS_OP_UNLINK);
        op.u.remove = (struct ns_op_remove){ dir, t_str(name) };
        break;
    case 1:
        op = new_op(w, client, NS_OP_RENAME);
        op.u.rename = (struct ns_op_rename){ dir, ndir, t_str(name), t_str(nname),
                                             (uint32_t)rnd(w, 3) };
        break;
    case 2: {
        op = new_op(w, client, NS_OP_LINK);
        struct ns_attr a;
        uint64_t ino = ns_lookup(w->a.ns, &T_ROOT, dir, t_str(name), &a) == 0 ? a.ino : 0;
        snprintf(nname, sizeof(nname), "l%llu", (unsigned long long)rnd(w, 20));
        op.u.link = (struct ns_op_link){ ino, ndir, t_str(nname) };
        break;
    }
    default:
        op = new_op(w, client, NS_OP_SETXATTR);
        op.u.xattr = (struct ns_op_xattr){ .ino = dir, .name = t_str("user.k"),
                                           .value = t_str(name) };
    }
    submit(w, &op);
}

static void gen_master_op(struct world *w)
{
    uint64_t ids[CLIENTS];
    size_t n = ns_expired_sessions(w->a.ns, w->a.now, ids, CLIENTS);
    if (n == 0)
        return;
    struct ns_op op = new_op(w, 0, NS_OP_SESSION_EXPIRE);
    op.u.session.session = ids[0];
    assert_int_equal(submit(w, &op), 0);
    assert_true(w->a.res.session_ended == ids[0]);
    for (uint64_t c = 1; c <= CLIENTS; c++) {
        uint64_t id;
        int64_t exp;
        if (w->has_session[c] && ns_session_of(w->a.ns, c, &id, &exp) < 0)
            forget_client(w, c);
    }
}

static void gen_client_op(struct world *w, uint64_t client)
{
    if (!w->has_session[client]) {
        gen_session(w, client);
        return;
    }
    uint64_t r = rnd(w, 100);
    struct ns_op op;
    if (r < 8) {
        op = new_op(w, client, NS_OP_SESSION_KEEPALIVE);
        op.u.session.expiry = op.now + 200;
        submit(w, &op);
    } else if (r < 10) {
        op = new_op(w, client, NS_OP_SESSION_CLOSE);
        assert_int_equal(submit(w, &op), 0);
        forget_client(w, client);
    } else if (r < 35) {
        gen_open(w, client);
    } else if (r < 80) {
        for (int i = 0; i < w->nh; i++) {
            if (w->h[i].client == client) {
                gen_handle_op(w, &w->h[(i + (int)rnd(w, (uint64_t)(w->nh - i))) % w->nh]);
                return;
            }
        }
        gen_open(w, client);
    } else {
        gen_tree_op(w, client);
    }
}

/* A retry of an earlier request, as after a failover. */
static void gen_retry(struct world *w)
{
    if (w->nlog == 0)
        return;
    int i = w->nlog - 1 - (int)rnd(w, w->nlog < 40 ? (uint64_t)w->nlog : 40);
    struct ns_op op;
    assert_int_equal(ns_op_decode(w->log[i], w->loglen[i], &op), 0);
    if (op.client == 0)
        return;
    struct ns_reply before = w->a.res.reply;
    (void)before;
    w->retries++;
    replicate(w, w->log[i], w->loglen[i]);
    w->deduped += w->a.res.deduped;
}

static void world_setup(struct world *w, uint64_t seed)
{
    memset(w, 0, sizeof(*w));
    t_init(&w->a);
    w->b = ns_new();
    assert_non_null(w->b);
    w->seed = seed;
    w->next_session = 100;
    const char *dirs[] = { "d1", "d2", "d3" };
    for (int i = 0; i < 3; i++) {
        struct ns_op op = new_op(w, 0, NS_OP_MKDIR);
        op.u.make = (struct ns_op_make){ .parent = NS_ROOT_INO, .name = t_str(dirs[i]),
                                         .mode = 0777, .ino = NS_ROOT_INO + 1 + (uint64_t)i };
        assert_int_equal(submit(w, &op), 0);
    }
}

static void world_free(struct world *w)
{
    for (int i = 0; i < w->nlog; i++)
        free(w->log[i]);
    ns_free(w->b);
    ns_free(w->c);
    t_fini(&w->a);
}

static struct ns *restore(const struct ns *from)
{
    struct wire_writer wr;
    wire_writer_init(&wr);
    assert_int_equal(ns_snapshot_write(from, &wr), 0);
    struct ns *to;
    assert_int_equal(ns_snapshot_load(wr.buf, wr.len, &to), 0);
    wire_writer_release(&wr);
    assert_int_equal(ns_digest(to), ns_digest(from));
    return to;
}

static void run_replicas(uint64_t seed, int steps)
{
    struct world w;
    world_setup(&w, seed);
    for (int step = 0; step < steps; step++) {
        if (step == steps / 2)
            w.c = restore(w.a.ns);
        uint64_t r = rnd(&w, 100);
        if (r < 3)
            gen_master_op(&w);
        else if (r < 10)
            gen_retry(&w);
        else
            gen_client_op(&w, 1 + rnd(&w, CLIENTS));
        if (step % 50 == 0) {
            assert_int_equal(ns_check(w.a.ns), 0);
            assert_int_equal(ns_digest(w.b), ns_digest(w.a.ns));
        }
    }
    assert_int_equal(ns_check(w.c), 0);
    uint64_t d = ns_digest(w.a.ns);
    assert_int_equal(ns_digest(w.b), d);
    assert_int_equal(ns_digest(w.c), d);
    struct ns_statfs st;
    ns_statfs(w.a.ns, &st);
    printf("  %d ops (%d cuts), %d retries (%d answered from the table), %llu files, "
           "%llu chunks, %llu orphans, %llu sessions\n", w.nlog, w.cuts, w.retries, w.deduped,
           (unsigned long long)st.files, (unsigned long long)st.chunks,
           (unsigned long long)st.orphans, (unsigned long long)st.sessions);
    world_free(&w);
}

static void test_three_replicas_one_restored(void **state)
{
    (void)state;
    uint64_t seed = t_seed("replicas", 99);
    for (int run = 0; run < 6; run++)
        run_replicas(seed + (uint64_t)run, 3000);
}

static void cut_to(struct world *w, uint64_t ino, uint64_t size)
{
    struct ns_op op = new_op(w, 1, NS_OP_SETATTR);
    op.u.setattr = (struct ns_op_setattr){ .ino = ino, .size = size,
                                           .valid = NS_SET_SIZE | NS_SET_OPEN_FH };
    assert_int_equal(submit(w, &op), 0);
}

static void write_chunk0(struct world *w, uint64_t ino, bool end, uint32_t length)
{
    struct ns_op op = new_op(w, 1, end ? NS_OP_WRITE_END : NS_OP_WRITE_BEGIN);
    op.u.write = (struct ns_op_write){ .ino = ino, .length = length, .mtime = w->a.now,
                                       .chunk_id = ns_max_chunk_id(w->a.ns) + 1 };
    assert_int_equal(submit(w, &op), 0);
}

/* The trim_from of chunk 0 of ino, the same on every replica. */
static uint32_t trim_from_everywhere(struct world *w, uint64_t ino)
{
    struct ns *all[] = { w->a.ns, w->b, w->c };
    struct ns_chunk_info ci[3];
    size_t n;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ns_chunk_range(all[i], ino, 0, &ci[i], 1, &n), 0);
        assert_int_equal(n, 1);
        assert_memory_equal(&ci[i], &ci[0], sizeof(ci[0]));
        assert_int_equal(ns_digest(all[i]), ns_digest(all[0]));
    }
    return ci[0].trim_from;
}

/* Cuts, a second cut, writes in between, a retried cut: every replica,
 * one restored from a snapshot after the first cut, computes the same
 * trim_from and ends in the same state. */
static void test_cuts_replicate(void **state)
{
    (void)state;
    struct world w;
    world_setup(&w, 1);
    gen_session(&w, 1);
    struct ns_op op = new_op(&w, 1, NS_OP_CREATE);
    op.u.make = (struct ns_op_make){ .parent = NS_ROOT_INO + 1, .name = t_str("c"),
                                     .mode = 0644, .ino = ns_next_free_ino(w.a.ns, 0),
                                     .flags = NS_OPEN_READ | NS_OPEN_WRITE };
    assert_int_equal(submit(&w, &op), 0);
    uint64_t f = w.a.res.reply.attr.ino;
    write_chunk0(&w, f, false, 0);
    write_chunk0(&w, f, true, 5000);                    /* committed: v1 */
    cut_to(&w, f, 3000);                                /* v2 */
    w.c = restore(w.a.ns);
    assert_int_equal(trim_from_everywhere(&w, f), 1);
    int cut = w.nlog - 1;
    write_chunk0(&w, f, false, 0);                      /* v3, never ends */
    cut_to(&w, f, 2000);                                /* v4 */
    assert_int_equal(trim_from_everywhere(&w, f), 1);
    replicate(&w, w.log[cut], w.loglen[cut]);           /* the first cut, retried */
    assert_true(w.a.res.deduped);
    assert_int_equal(w.a.res.ntrimmed, 0);
    assert_int_equal(trim_from_everywhere(&w, f), 1);
    write_chunk0(&w, f, false, 0);                      /* v5 */
    write_chunk0(&w, f, true, 2500);
    assert_int_equal(trim_from_everywhere(&w, f), 0);
    cut_to(&w, f, 10);
    assert_int_equal(trim_from_everywhere(&w, f), 5);
    world_free(&w);
}

/* The digest sees every part of the state, not just the tree. */
static void test_digest_covers_state(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    uint64_t d0 = ns_digest(t.ns);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0644, NULL), 0);
    uint64_t d1 = ns_digest(t.ns);
    assert_int_not_equal(d0, d1);
    t_session(&t, 5, 50, 100);
    uint64_t d2 = ns_digest(t.ns);
    assert_int_not_equal(d1, d2);
    struct ns_op op = t_op(&t, NS_OP_SESSION_KEEPALIVE, &T_ROOT);
    op.u.session.expiry = 101;
    assert_int_equal(t_apply(&t, &op), 0);
    assert_int_not_equal(ns_digest(t.ns), d2);
    t_fini(&t);
}

/* ---- readdir under churn ------------------------------------------------------ */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_readdir_exactly_once_under_churn(void **state)
{
    (void)state;
    uint64_t seed = t_seed("readdir churn", 5);
    enum { STABLE = 3000, VOLATILE = 3000 };
    struct tctx t;
    t_init(&t);
    t.unchecked = true;     /* checked once at the end: O(n) per op is slow */
    uint64_t d;
    assert_int_equal(t_mkdir(&t, &T_ROOT, NS_ROOT_INO, "big", 0755, &d), 0);
    char name[32];
    /* stable entries interleaved with volatile ones */
    for (int i = 0; i < STABLE + VOLATILE; i++) {
        snprintf(name, sizeof(name), i % 2 ? "v%d" : "s%d", i / 2);
        assert_int_equal(t_create(&t, &T_ROOT, d, name, 0644, NULL), 0);
    }
    static uint8_t seen[STABLE];
    static bool vol_live[VOLATILE * 4];
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < VOLATILE; i++)
        vol_live[i] = true;
    int vol_made = VOLATILE, dups = 0;
    struct ns_dirent ents[37];
    size_t n;
    uint64_t cookie = 0;
    static char got[VOLATILE * 4][32];
    int ngot = 0;
    do {
        assert_int_equal(ns_readdir(t.ns, &T_ROOT, d, cookie, ents, 37, &n), 0);
        for (size_t i = 0; i < n; i++) {
            cookie = ents[i].cookie;
            if (ents[i].name[0] == 's') {
                int k = atoi(ents[i].name + 1);
                seen[k]++;
            } else if (ents[i].name[0] == 'v' || ents[i].name[0] == 'w') {
                assert_true(ngot < VOLATILE * 4);
                memcpy(got[ngot], ents[i].name, ents[i].len);
                got[ngot++][ents[i].len] = '\0';
            }
        }
        /* between batches: delete many volatile entries, add new ones */
        for (int k = 0; k < 40; k++) {
            int v = (int)(t_rand(&seed) % (uint64_t)vol_made);
            if (vol_live[v]) {
                snprintf(name, sizeof(name), v < VOLATILE ? "v%d" : "w%d", v);
                assert_int_equal(t_unlink(&t, &T_ROOT, d, name), 0);
                vol_live[v] = false;
            }
        }
        for (int k = 0; k < 15 && vol_made < VOLATILE * 4; k++) {
            snprintf(name, sizeof(name), "w%d", vol_made);
            assert_int_equal(t_create(&t, &T_ROOT, d, name, 0644, NULL), 0);
            vol_live[vol_made++] = true;
        }
    } while (n > 0);
    for (int k = 0; k < STABLE; k++)
        assert_int_equal(seen[k], 1);
    /* no volatile entry twice either */
    qsort(got, (size_t)ngot, sizeof(got[0]), cmp_name);
    for (int i = 1; i < ngot; i++)
        dups += strcmp(got[i - 1], got[i]) == 0;
    assert_int_equal(dups, 0);
    assert_int_equal(ns_check(t.ns), 0);
    t_fini(&t);
}

/* ---- snapshots and op decoding refuse corruption ------------------------------- */

static struct ns *busy_namespace(struct tctx *t)
{
    t_init(t);
    uint64_t f, d, g;
    assert_int_equal(t_mkdir(t, &T_ROOT, NS_ROOT_INO, "d", 0755, &d), 0);
    assert_int_equal(t_create(t, &T_ROOT, d, "f", 0644, &f), 0);
    assert_int_equal(t_symlink(t, &T_ROOT, d, "s", "f", NULL), 0);
    t_session(t, 3, 30, 1000);
    assert_int_equal(t_open(t, &T_ROOT, f, NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(t, f, 1), 0);
    assert_int_equal(t_lock(t, f, 1, NS_LOCK_POSIX, NS_LOCK_WR, 5, 9), 0);
    assert_int_equal(t_unlink(t, &T_ROOT, d, "f"), 0);          /* an orphan */
    /* a chunk cut short, its replicas not yet trimmed */
    assert_int_equal(t_create(t, &T_ROOT, d, "g", 0644, &g), 0);
    assert_int_equal(t_open(t, &T_ROOT, g, NS_OPEN_WRITE), 0);
    assert_int_equal(t_write_begin(t, g, 0), 0);
    assert_int_equal(t_write_end(t, g, 0, 5000, 0), 0);
    assert_int_equal(t_truncate(t, &T_ROOT, g, 100), 0);
    struct ns_op op = t_op(t, NS_OP_SETXATTR, &T_ROOT);
    op.u.xattr = (struct ns_op_xattr){ .ino = d, .name = t_str("user.x"), .value = t_str("y") };
    assert_int_equal(t_apply(t, &op), 0);
    return t->ns;
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    struct tctx t;
    struct ns *ns = busy_namespace(&t);
    struct ns *copy = restore(ns);
    struct ns_statfs a, b;
    ns_statfs(ns, &a);
    ns_statfs(copy, &b);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(b.orphans, 1);
    assert_int_equal(ns_max_chunk_id(copy), ns_max_chunk_id(ns));
    assert_int_equal(ns_next_free_ino(copy, 0), ns_next_free_ino(ns, 0));
    struct ns_chunk_info ca, cb;
    size_t n;
    uint64_t g = t_ino(&t, t_ino(&t, NS_ROOT_INO, "d"), "g");
    assert_int_equal(ns_chunk_range(ns, g, 0, &ca, 1, &n), 0);
    assert_int_equal(ns_chunk_range(copy, g, 0, &cb, 1, &n), 0);
    assert_int_equal(ca.trim_from, 1);
    assert_memory_equal(&ca, &cb, sizeof(ca));
    /* the copy goes on like the original: the orphan dies at close */
    struct ns_result r1, r2;
    struct ns_op op = t_op(&t, NS_OP_SESSION_CLOSE, &T_ROOT);
    ns_result_init(&r1);
    ns_result_init(&r2);
    assert_int_equal(ns_apply(ns, &op, &r1), 0);
    assert_int_equal(ns_apply(copy, &op, &r2), 0);
    assert_int_equal(r1.freed.n, 1);
    same_effects(&r1, &r2);
    ns_result_release(&r1);
    ns_result_release(&r2);
    assert_int_equal(ns_digest(copy), ns_digest(ns));
    ns_free(copy);
    t_fini(&t);
}

static void test_snapshot_refuses_corruption(void **state)
{
    (void)state;
    struct tctx t;
    struct ns *ns = busy_namespace(&t);
    struct wire_writer wr;
    wire_writer_init(&wr);
    assert_int_equal(ns_snapshot_write(ns, &wr), 0);
    struct ns *out;
    log_init("test_ns_replica", LOG_ERROR, "/dev/null");   /* one line per refusal */
    /* every single flipped byte, every truncation */
    for (size_t i = 0; i < wr.len; i++) {
        wr.buf[i] ^= 0x20;
        assert_int_equal(ns_snapshot_load(wr.buf, wr.len, &out), -DFS_ECORRUPT);
        wr.buf[i] ^= 0x20;
    }
    for (size_t len = 0; len < wr.len; len += 1 + len / 8) {
        int rc = ns_snapshot_load(wr.buf, len, &out);
        assert_true(rc == -DFS_ETRUNC || rc == -DFS_ECORRUPT);
    }
    /* a newer format, checksummed properly */
    uint8_t format = wr.buf[8];
    wr.buf[8] = (uint8_t)(format + 1);
    uint32_t crc = crc32c(0, wr.buf, wr.len - 4);
    memcpy(wr.buf + wr.len - 4, &crc, 4);
    assert_int_equal(ns_snapshot_load(wr.buf, wr.len, &out), -DFS_EVERSION);
    wr.buf[8] = format;
    /* a body length that lies, checksummed properly */
    wr.buf[12] ^= 1;
    crc = crc32c(0, wr.buf, wr.len - 4);
    memcpy(wr.buf + wr.len - 4, &crc, 4);
    assert_int_equal(ns_snapshot_load(wr.buf, wr.len, &out), -DFS_ECORRUPT);
    wire_writer_release(&wr);
    t_fini(&t);
}

/* A body that decodes but breaks an invariant is refused by ns_check. */
static void test_snapshot_refuses_inconsistent_body(void **state)
{
    (void)state;
    struct tctx t;
    t_init(&t);
    assert_int_equal(t_create(&t, &T_ROOT, NS_ROOT_INO, "f", 0644, NULL), 0);
    struct wire_writer wr;
    wire_writer_init(&wr);
    assert_int_equal(ns_snapshot_write(t.ns, &wr), 0);
    /* inflate, change the file's nlink from 1 to 2, deflate, re-checksum */
    uLongf blen = 4096;
    uint8_t body[4096];
    assert_int_equal(uncompress(body, &blen, wr.buf + 20, wr.len - 24), Z_OK);
    /* the file's record follows the body header (48 bytes) and the root's
     * (57 + a 33-byte directory with one entry "f" + 8 for no xattrs/locks) */
    size_t pos = 48 + 57 + 33 + 8;
    assert_int_equal(body[pos], 2);                     /* ino 2 */
    assert_int_equal(body[pos + 16], 1);                /* its nlink */
    body[pos + 16] = 2;
    uint8_t packed[8192];
    uLongf plen = sizeof(packed);
    assert_int_equal(compress(packed, &plen, body, blen), Z_OK);
    struct wire_writer w2;
    wire_writer_init(&w2);
    wire_put_raw(&w2, wr.buf, 20);
    wire_put_raw(&w2, packed, plen);
    wire_put_u32(&w2, crc32c(0, w2.buf, w2.len));
    struct ns *out;
    assert_int_equal(ns_snapshot_load(w2.buf, w2.len, &out), -DFS_ECORRUPT);
    wire_writer_release(&w2);
    wire_writer_release(&wr);
    t_fini(&t);
}

static void test_op_decode_refuses_malformed(void **state)
{
    (void)state;
    struct ns_op op;
    memset(&op, 0, sizeof(op));
    op.type = NS_OP_RENAME;
    op.client = 9;
    op.seq = 4;
    op.cred = (struct ns_cred){ .uid = 1, .gid = 2, .ngroups = 2, .groups = { 7, 8 } };
    op.u.rename = (struct ns_op_rename){ 1, 2, t_str("a"), t_str("bb"), 1 };
    struct wire_writer w;
    wire_writer_init(&w);
    ns_op_encode(&op, &w);
    struct ns_op dec;
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), 0);
    assert_int_equal(dec.u.rename.newname.len, 2);
    assert_memory_equal(dec.u.rename.newname.p, "bb", 2);
    assert_int_equal(dec.cred.groups[1], 8);
    for (size_t len = 0; len < w.len; len++)
        assert_int_equal(ns_op_decode(w.buf, len, &dec), -DFS_ETRUNC);
    wire_put_u8(&w, 0);
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), -DFS_ECORRUPT);   /* trailing */
    w.len--;
    w.buf[0] = 9;
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), -DFS_EVERSION);
    w.buf[0] = 1;
    w.buf[1] = NS_OP_TYPE_END;
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), -DFS_ECORRUPT);
    w.buf[1] = NS_OP_RENAME;
    w.buf[2 + 24 + 8] = NS_GROUPS_MAX + 1;                              /* ngroups */
    assert_int_equal(ns_op_decode(w.buf, w.len, &dec), -DFS_ETOOBIG);
    wire_writer_release(&w);
}

/* ---- any field values: refused or applied, never a broken state ------------ */

static uint64_t pick(uint64_t *seed, const uint64_t *v, size_t n)
{
    return v[t_rand(seed) % n];
}

static struct ns_str any_name(uint64_t *seed, char *longbuf)
{
    static const char *const names[] = { "a", "b", "f", "", ".", "..", "x/y", "user.a",
                                         "trusted.t", "security.s", "n\0ul" };
    uint64_t r = t_rand(seed) % 12;
    if (r == 11)
        return (struct ns_str){ longbuf, 256 + (uint32_t)(t_rand(seed) % 5000) };
    return (struct ns_str){ names[r], r == 10 ? 4 : (uint32_t)strlen(names[r]) };
}

static void any_op(uint64_t *seed, struct ns_op *op, int64_t now, char *longbuf)
{
    static const uint64_t inos[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 4095,
                                     UINT32_MAX, UINT64_MAX };
    static const uint64_t nums[] = { 0, 1, 2, 3, 5, 100, 4096, NS_CHUNK_SIZE_DEFAULT,
                                     NS_CHUNK_SIZE_DEFAULT + 1, NS_CHUNKS_MAX, UINT32_MAX,
                                     UINT64_MAX / 2, UINT64_MAX };
#define INO pick(seed, inos, sizeof(inos) / sizeof(inos[0]))
#define NUM pick(seed, nums, sizeof(nums) / sizeof(nums[0]))
    memset(op, 0, sizeof(*op));
    op->type = (enum ns_op_type)(t_rand(seed) % (NS_OP_TYPE_END + 1));
    op->client = (uint64_t[]){ 0, 3, 3, 3, 4, 99 }[t_rand(seed) % 6];
    op->seq = t_rand(seed) % 3 ? t_rand(seed) % 200 : 0;
    op->now = now;
    op->cred = (struct ns_cred){ .uid = (uint32_t)(t_rand(seed) % 3) * 1000,
                                 .gid = 100, .ngroups = (uint32_t)(t_rand(seed) % 40) };
    switch (op->type) {
    case NS_OP_MKDIR: case NS_OP_CREATE: case NS_OP_MKNOD: case NS_OP_SYMLINK:
        op->u.make = (struct ns_op_make){ INO, any_name(seed, longbuf), INO,
                                          (uint32_t)t_rand(seed), (uint32_t)NUM,
                                          (uint32_t)(t_rand(seed) % 1024),
                                          any_name(seed, longbuf) };
        break;
    case NS_OP_LINK:
        op->u.link = (struct ns_op_link){ INO, INO, any_name(seed, longbuf) };
        break;
    case NS_OP_UNLINK: case NS_OP_RMDIR:
        op->u.remove = (struct ns_op_remove){ INO, any_name(seed, longbuf) };
        break;
    case NS_OP_RENAME:
        op->u.rename = (struct ns_op_rename){ INO, INO, any_name(seed, longbuf),
                                              any_name(seed, longbuf),
                                              (uint32_t)(t_rand(seed) % 8) };
        break;
    case NS_OP_SETATTR:
        op->u.setattr = (struct ns_op_setattr){ INO, (uint32_t)(t_rand(seed) % 2048),
                                                (uint32_t)t_rand(seed), (uint32_t)NUM,
                                                (uint32_t)NUM, NUM, (int64_t)NUM,
                                                (int64_t)NUM, (uint32_t)NUM };
        break;
    case NS_OP_SETXATTR: case NS_OP_REMOVEXATTR:
        op->u.xattr = (struct ns_op_xattr){ INO, any_name(seed, longbuf),
                                            any_name(seed, longbuf), (uint32_t)(t_rand(seed) % 5) };
        break;
    case NS_OP_OPEN: case NS_OP_RELEASE:
        op->u.open = (struct ns_op_open){ INO, (uint32_t)(t_rand(seed) % 128), NUM % 3 };
        break;
    case NS_OP_WRITE_BEGIN: case NS_OP_WRITE_END:
        op->u.write = (struct ns_op_write){ INO, (uint32_t)NUM, NUM, (uint32_t)NUM,
                                            (int64_t)NUM, (uint32_t)(t_rand(seed) % 3) };
        break;
    case NS_OP_SESSION_OPEN: case NS_OP_SESSION_KEEPALIVE:
    case NS_OP_SESSION_CLOSE: case NS_OP_SESSION_EXPIRE:
        op->u.session = (struct ns_op_session){ NUM % 50, (int64_t)NUM };
        break;
    case NS_OP_LOCK:
        op->u.lock = (struct ns_op_lock){ INO, NUM % 4, (uint32_t)(t_rand(seed) % 4),
                                          (uint32_t)(t_rand(seed) % 4), NUM, NUM,
                                          (uint32_t)NUM };
        break;
    case NS_OP_CONFIG:
        /* Chunk sizes: unchanged, valid (fixed once, before any chunk),
         * and not a multiple of a block. */
        op->u.config = (struct ns_op_config){
            (uint32_t)(t_rand(seed) % 3), 7, 7,
            (uint64_t[]){ 0, 0, 1u << 20, 64u << 20, 1000 }[t_rand(seed) % 5] };
        break;
    default:
        break;
    }
#undef INO
#undef NUM
}

static void test_any_field_values_keep_invariants(void **state)
{
    (void)state;
    uint64_t seed = t_seed("any fields", 8);
    static char longbuf[6000];
    memset(longbuf, 'q', sizeof(longbuf));
    struct tctx t;
    busy_namespace(&t);
    t_session(&t, 4, 40, 1 << 30);
    int applied = 0;
    for (int i = 0; i < 30000; i++) {
        struct ns_op op;
        any_op(&seed, &op, ++t.now, longbuf);
        if (op.cred.ngroups > NS_GROUPS_MAX || op.type == 0 || op.type >= NS_OP_TYPE_END) {
            /* the decoder refuses these: straight to apply, which copes */
            struct ns_result r;
            ns_result_init(&r);
            applied += ns_apply(t.ns, &op, &r) == 0;
            ns_result_release(&r);
            assert_int_equal(ns_check(t.ns), 0);
            continue;
        }
        applied += t_apply(&t, &op) == 0;
    }
    printf("  %d of 30000 applied\n", applied);
    assert_true(applied > 100);
    t_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_replicas_one_restored),
        cmocka_unit_test(test_cuts_replicate),
        cmocka_unit_test(test_digest_covers_state),
        cmocka_unit_test(test_readdir_exactly_once_under_churn),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_refuses_corruption),
        cmocka_unit_test(test_snapshot_refuses_inconsistent_body),
        cmocka_unit_test(test_op_decode_refuses_malformed),
        cmocka_unit_test(test_any_field_values_keep_invariants),
    };
    return cmocka_run_group_tests_name("ns_replica", tests, NULL, NULL);
}
