/*
 * simcheck: incremental Raft safety checks over the whole simulated cluster.
 *
 * Invariants (of the checker itself):
 *  1. hist[i].set means some node knew index i committed with hist[i]'s
 *     term and hash; every later report about index i is compared to it.
 *  2. The maps never forget: a term's leader, an (index, term)'s contents
 *     and predecessor stay recorded for the whole run.
 *  3. Out of memory is reported as a failed check, never ignored.
 */
#include "tests/sim/simcheck.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master/raftrand.h"
#include "tests/sim/simkv.h"

void simcheck_init(struct simcheck *c)
{
    memset(c, 0, sizeof(*c));
}

void simcheck_release(struct simcheck *c)
{
    free(c->hist);
    free(c->leaders.slots);
    free(c->logged.slots);
    simcheck_init(c);
}

const char *simcheck_error(const struct simcheck *c)
{
    return c->err;
}

__attribute__((format(printf, 2, 3)))
static int fail(struct simcheck *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return -1;
}

uint64_t simcheck_ehash(const struct raft_entry *e)
{
    return simkv_hash(e->data, e->len, e->type);
}

/* ---- a two-word-key map --------------------------------------------------- */

static size_t slot_of(const struct simcheck_map *m, uint64_t k1, uint64_t k2)
{
    return raftrand_mix(k1 * 0x100000001b3ULL ^ k2) & (m->cap - 1);
}

static struct simcheck_slot *map_find(struct simcheck_map *m, uint64_t k1,
                                      uint64_t k2)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = slot_of(m, k1, k2);; i = (i + 1) & (m->cap - 1)) {
        struct simcheck_slot *s = &m->slots[i];
        if (s->k1 == 0)
            return NULL;
        if (s->k1 == k1 && s->k2 == k2)
            return s;
    }
}

static void map_place(struct simcheck_map *m, const struct simcheck_slot *in)
{
    size_t i = slot_of(m, in->k1, in->k2);
    while (m->slots[i].k1)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = *in;
    m->n++;
}

static int map_grow(struct simcheck_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    struct simcheck_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots) {
        m->slots = old;
        return -ENOMEM;
    }
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].k1)
            map_place(m, &old[i]);
    free(old);
    return 0;
}

/* k1 must not be 0. */
static int map_put(struct simcheck_map *m, const struct simcheck_slot *in)
{
    if ((m->n + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
        return -ENOMEM;
    map_place(m, in);
    return 0;
}

/* ---- checks -------------------------------------------------------------- */

int simcheck_leader(struct simcheck *c, uint64_t term, uint64_t id)
{
    struct simcheck_slot *s = map_find(&c->leaders, term, 0);
    if (s && s->v1 != id)
        return fail(c, "election safety: nodes %" PRIu64 " and %" PRIu64
                    " both leaders of term %" PRIu64, s->v1, id, term);
    if (s)
        return 0;
    struct simcheck_slot in = { .k1 = term, .v1 = id };
    if (map_put(&c->leaders, &in) < 0)
        return fail(c, "checker out of memory");
    return 0;
}

int simcheck_logged(struct simcheck *c, uint64_t node, uint64_t index,
                    uint64_t term, uint64_t ehash, uint64_t prev_term)
{
    struct simcheck_slot *s = map_find(&c->logged, index, term);
    if (s && (s->v1 != ehash || s->v2 != prev_term))
        return fail(c, "log matching: node %" PRIu64 " holds (index %" PRIu64
                    ", term %" PRIu64 ") with %s than another log had",
                    node, index, term,
                    s->v1 != ehash ? "other contents"
                                   : "another predecessor term");
    if (s)
        return 0;
    struct simcheck_slot in = { .k1 = index, .k2 = term, .v1 = ehash,
                                .v2 = prev_term };
    if (map_put(&c->logged, &in) < 0)
        return fail(c, "checker out of memory");
    return 0;
}

static struct simcheck_hist *hist_at(struct simcheck *c, uint64_t index)
{
    if (index >= c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap <= index)
            cap *= 2;
        struct simcheck_hist *h = realloc(c->hist, cap * sizeof(*h));
        if (!h)
            return NULL;
        memset(h + c->cap, 0, (cap - c->cap) * sizeof(*h));
        c->hist = h;
        c->cap = cap;
    }
    return &c->hist[index];
}

const struct simcheck_hist *simcheck_hist(const struct simcheck *c,
                                          uint64_t index)
{
    if (index >= c->cap || !c->hist[index].set)
        return NULL;
    return &c->hist[index];
}

int simcheck_committed(struct simcheck *c, uint64_t node, uint64_t now,
                       uint64_t index, uint64_t term, uint64_t ehash)
{
    struct simcheck_hist *h = hist_at(c, index);
    if (!h)
        return fail(c, "checker out of memory");
    if (h->set && (h->term != term || h->ehash != ehash))
        return fail(c, "state machine safety: node %" PRIu64 " commits "
                    "(index %" PRIu64 ", term %" PRIu64 ") but term %" PRIu64
                    "'s entry%s was committed there", node, index, term,
                    h->term, h->term == term ? " (other contents)" : "");
    if (!h->set) {
        h->set = 1;
        h->term = term;
        h->ehash = ehash;
        h->seen_term = now;
        if (index > c->hist_max)
            c->hist_max = index;
    }
    if (now < h->seen_term)
        h->seen_term = now;
    return 0;
}

int simcheck_applied(struct simcheck *c, uint64_t node, uint64_t now,
                     uint64_t index, uint64_t term, uint64_t ehash,
                     uint64_t digest)
{
    if (simcheck_committed(c, node, now, index, term, ehash) < 0)
        return -1;
    struct simcheck_hist *h = &c->hist[index];
    if (h->applied && h->digest != digest)
        return fail(c, "state machine safety: node %" PRIu64 " state after "
                    "index %" PRIu64 " differs from another node's", node,
                    index);
    h->applied = 1;
    h->digest = digest;
    return 0;
}

int simcheck_snapshot(struct simcheck *c, uint64_t node, uint64_t index,
                      uint64_t digest)
{
    const struct simcheck_hist *h = simcheck_hist(c, index);
    if (!h || !h->applied)
        return fail(c, "snapshot: node %" PRIu64 " installs a snapshot at "
                    "index %" PRIu64 " that nobody applied", node, index);
    if (h->digest != digest)
        return fail(c, "state machine safety: node %" PRIu64 " installs a "
                    "snapshot at index %" PRIu64 " whose state differs",
                    node, index);
    return 0;
}

int simcheck_replaced(struct simcheck *c, uint64_t node, uint64_t index,
                      uint64_t term, uint64_t ehash)
{
    const struct simcheck_hist *h = simcheck_hist(c, index);
    if (h && h->term == term && h->ehash == ehash)
        return fail(c, "durability: node %" PRIu64 " drops committed entry "
                    "(index %" PRIu64 ", term %" PRIu64 ")", node, index,
                    term);
    return 0;
}

int simcheck_complete(struct simcheck *c, const struct raft *leader)
{
    /* Below its commit index, the leader's entries were checked as they
     * committed and cannot have changed since (nothing truncates there). */
    uint64_t from = raft_commit(leader) + 1;
    if (from <= raft_snapshot_index(leader))
        from = raft_snapshot_index(leader) + 1;
    for (uint64_t i = from; i <= c->hist_max; i++) {
        const struct simcheck_hist *h = simcheck_hist(c, i);
        if (h && h->seen_term < raft_term(leader) &&
            raft_term_at(leader, i) != h->term)
            return fail(c, "leader completeness: node %" PRIu64 " leads term "
                        "%" PRIu64 " without committed entry (index %" PRIu64
                        ", term %" PRIu64 ")", raft_id(leader),
                        raft_term(leader), i, h->term);
    }
    return 0;
}

void simcheck_commit_seen(struct simcheck *c, uint64_t commit)
{
    if (commit > c->max_commit)
        c->max_commit = commit;
}
