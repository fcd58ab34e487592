/*
 * mrepl: restores every chunk's replication goal and removes garbage.
 *
 * States: off (not leader) -> safe mode (leader, waiting MREPL_SAFE_MS for
 * chunkservers to register and report) -> active (scans every
 * MREPL_SCAN_MS, and MREPL_RESCAN_MS after a copy ends while the last
 * scan left chunks to copy: with small chunks a copy takes milliseconds,
 * and the scan period, not the copies, would set the pace).
 *
 * Invariants:
 *  1. Nothing is copied or deleted in safe mode: replica locations are
 *     soft state and a new leader knows none until reports arrive.
 *  2. A chunk under a write lease is left alone (its chain is changing),
 *     but for the trims of invariant 6.
 *  3. At most MREPL_MAX_INFLIGHT copies run, at most MREPL_PER_TARGET per
 *     target chunkserver; a chunk is never copied twice at once.
 *  4. A replica is deleted only when the namespace says its version is
 *     old or its chunk is gone, or it failed its checksums, and the chunk
 *     keeps a healthy replica.  One awaiting its trim (a version in
 *     [trim_from, committed)) is not old.
 *  5. Replicas on a decommissioned chunkserver serve as copy sources but
 *     do not count toward the goal; such a server is drained (drain_left
 *     0) once no chunk it holds is below its goal without it.  What it
 *     holds is counted from its recorded replicas, up or down, and only a
 *     server that is up and has reported to this leader can be drained
 *     (csreg keeps the others unknown): a server that died before its
 *     chunks were copied is never shown safe to remove.
 *  6. Every replica still holding a chunk's content from before a cut
 *     (struct ns_chunk's trim_from) is ordered trimmed: at once when the
 *     truncate applies, then by every scan until it is, so that a trim
 *     lost to a crash is redone.  At most one order per (chunk, server)
 *     is in flight, and at most MREPL_MAX_TRIMS in all.
 */
#include "mrepl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"
#include "master/csreg.h"
#include "master/mcs.h"
#include "master/mstatus.h"
#include "master/ns.h"

#define MREPL_SCAN_MS 2000
#define MREPL_RESCAN_MS 100
#define MREPL_SAFE_MS 10000
#define MREPL_MAX_INFLIGHT 8
#define MREPL_PER_TARGET 2
#define MREPL_ORDER_MS 600000u
#define MREPL_MAX_TRIMS 256
/* A trim is one small disk operation: a later answer means a stuck
 * server, and a later scan orders it again (a repeat is harmless). */
#define MREPL_TRIM_MS 30000u

struct mrepl_copy {
    uint64_t chunk;
    uint32_t version;               /* the version ordered copied */
    uint32_t target;
    struct mserver *s;
};

struct mrepl_trim {
    struct mserver *s;
    uint64_t chunk;
    uint32_t cs, version, length;   /* version: the one ordered taken */
};

struct mrepl {
    uint64_t timer;
    uint64_t rescan;                /* one-shot timer; 0: none armed */
    bool backlog;                   /* the last scan left chunks uncopied */
    bool leader;
    int64_t active_after_ms;
    struct mrepl_copy *inflight[MREPL_MAX_INFLIGHT];
    size_t n_inflight;
    struct mrepl_trim *trims[MREPL_MAX_TRIMS];   /* trim orders in flight */
    size_t n_trims;
};

static bool copying(const struct mrepl *m, uint64_t chunk, uint32_t target,
                    unsigned *to_target)
{
    bool same = false;
    *to_target = 0;
    for (size_t i = 0; i < m->n_inflight; i++) {
        same |= m->inflight[i]->chunk == chunk;
        *to_target += m->inflight[i]->target == target;
    }
    return same;
}

static void scan(struct mserver *s);

static bool active(const struct mserver *s)
{
    const struct mrepl *m = s->repl;
    return m->leader && (int64_t)ev_now_ms(s->loop) >= m->active_after_ms;
}

static int64_t rescan(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    s->repl->rescan = 0;
    if (active(s))
        scan(s);
    return EV_TIMER_STOP;
}

static void copy_done(void *arg, int status, const uint8_t *payload, size_t len)
{
    struct mrepl_copy *cp = arg;
    struct mserver *s = cp->s;
    struct mrepl *m = s->repl;
    if (m) {
        for (size_t i = 0; i < m->n_inflight; i++) {
            if (m->inflight[i] == cp) {
                m->inflight[i] = m->inflight[--m->n_inflight];
                break;
            }
        }
    }
    if (status == 0 && s->csreg) {
        struct wire_reader r;
        wire_reader_init(&r, payload, len);
        uint32_t length = wire_get_u32(&r);
        /* The copy holds the version ordered, whatever came since: a
         * newer one makes it stale, and stale replicas are deleted. */
        csreg_set_replica(s->csreg, cp->chunk, cp->target, cp->version, length, false);
        mstatus_event(s, STATUS_EV_REREPLICATE, "chunk %016" PRIx64 " copied to chunkserver %u",
                      cp->chunk, cp->target);
        s->rereplications++;
        mcs_recount(s);
        if (m && m->backlog && !m->rescan)
            m->rescan = ev_timer_add(s->loop, MREPL_RESCAN_MS, rescan, s);
    } else if (status < 0) {
        log_warn("re-replication of chunk %016" PRIx64 " to chunkserver %u failed: %s",
                 cp->chunk, cp->target, dfs_strerror(status));
    }
    free(cp);
}

static void put_sources(struct wire_writer *w, const struct csreg *reg,
                        const uint32_t *ids, size_t n)
{
    wire_put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        wire_put_u32(w, ids[i]);
        wire_put_str(w, csreg_server(reg, ids[i])->addr);
    }
}

/* Orders one copy of chunk to a new server; false when none can take it. */
static bool start_copy(struct mserver *s, const struct ns_chunk_info *ci,
                       const uint32_t *holders, size_t n)
{
    struct mrepl *m = s->repl;
    uint32_t exclude[CSREG_MAX_REPLICAS * 2], target;
    size_t nex = 0;
    struct csreg_replica all[CSREG_MAX_REPLICAS];
    size_t nall = csreg_replicas(s->csreg, ci->id, all, CSREG_MAX_REPLICAS);
    for (size_t i = 0; i < nall; i++)
        exclude[nex++] = all[i].cs;   /* any copy, even a stale one, is there */
    if (csreg_place(s->csreg, 1, exclude, nex, &target) != 1)
        return false;
    unsigned to_target;
    if (copying(m, ci->id, target, &to_target) || to_target >= MREPL_PER_TARGET)
        return false;
    const struct csreg_server *t = csreg_server(s->csreg, target);
    struct mrepl_copy *cp = calloc(1, sizeof(*cp));
    if (!cp || !t->conn) {
        free(cp);
        return false;
    }
    /* The copy is made at the committed version: every source holds it
     * or a later one, and it is all a reader needs. */
    *cp = (struct mrepl_copy){ ci->id, ci->committed, target, s };
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u64(&w, ci->id);
    wire_put_u32(&w, ci->committed);
    wire_put_u32(&w, ci->length);
    put_sources(&w, s->csreg, holders, n);
    int rc = w.err ? w.err : rpc_call(t->conn, PROTO_CS_ORDER_REPLICATE, w.buf,
                                      w.len, MREPL_ORDER_MS, copy_done, cp);
    wire_writer_release(&w);
    if (rc < 0) {
        free(cp);
        return false;
    }
    m->inflight[m->n_inflight++] = cp;
    return true;
}

/* Deletes the replica of chunk on cs (version 0: whatever it has). */
static void order_delete(struct mserver *s, uint32_t cs, uint64_t chunk,
                         uint32_t version, const char *why)
{
    const struct csreg_server *srv = csreg_server(s->csreg, cs);
    if (!srv || !srv->conn || srv->state == CSREG_DOWN)
        return;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, 1);
    wire_put_u64(&w, chunk);
    wire_put_u32(&w, version);
    /* The answer changes nothing here: the replica is forgotten now and a
     * report would bring it back if the delete failed. */
    if (!w.err && rpc_call(srv->conn, PROTO_CS_ORDER_DELETE, w.buf, w.len,
                           MREPL_ORDER_MS, NULL, NULL) == 0) {
        log_info("deleting %s replica of chunk %016" PRIx64 " v%u on chunkserver %u",
                 why, chunk, version, cs);
        csreg_drop_replica(s->csreg, chunk, cs);
    }
    wire_writer_release(&w);
}

static bool trimming(const struct mrepl *m, uint64_t chunk, uint32_t cs)
{
    for (size_t i = 0; i < m->n_trims; i++) {
        if (m->trims[i]->chunk == chunk && m->trims[i]->cs == cs)
            return true;
    }
    return false;
}

static void trim_done(void *arg, int status, const uint8_t *payload, size_t len)
{
    struct mrepl_trim *t = arg;
    struct mrepl *m = t->s->repl;
    for (size_t i = 0; m && i < m->n_trims; i++) {
        if (m->trims[i] == t) {
            m->trims[i] = m->trims[--m->n_trims];
            break;
        }
    }
    struct wire_reader r;
    wire_reader_init(&r, payload, len);
    wire_get_u32(&r);
    int32_t one = wire_get_i32(&r);
    if (status == 0 && !r.err && one == 0 && t->s->csreg)
        csreg_set_replica(t->s->csreg, t->chunk, t->cs, t->version, t->length, false);
    else
        log_warn("truncate of chunk %016" PRIx64 " on chunkserver %u failed: %s",
                 t->chunk, t->cs, dfs_strerror(status < 0 ? status : one));
    free(t);
}

/* Orders rep, a replica of chunk, trimmed to length and moved to version
 * to, unless its server cannot be reached or an order is in flight. */
static void order_trim(struct mserver *s, uint64_t chunk,
                       const struct csreg_replica *rep, uint32_t to, uint32_t length)
{
    struct mrepl *m = s->repl;
    const struct csreg_server *srv = csreg_server(s->csreg, rep->cs);
    if (!srv || !srv->conn || srv->state == CSREG_DOWN ||
        m->n_trims == MREPL_MAX_TRIMS || trimming(m, chunk, rep->cs))
        return;
    struct mrepl_trim *t = calloc(1, sizeof(*t));
    if (!t)
        return;
    *t = (struct mrepl_trim){ s, chunk, rep->cs, to, length };
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, 1);
    wire_put_u64(&w, chunk);
    wire_put_u32(&w, rep->version);
    wire_put_u32(&w, to);
    wire_put_u32(&w, length);
    if (!w.err && rpc_call(srv->conn, PROTO_CS_ORDER_TRUNCATE, w.buf, w.len,
                           MREPL_TRIM_MS, trim_done, t) == 0)
        m->trims[m->n_trims++] = t;
    else
        free(t);
    wire_writer_release(&w);
}

/*
 * Orders trimmed every replica of chunk still holding the content from
 * before a cut (any version in [from, to), whatever each is at); returns
 * how many there are on servers that are up and count toward the goal,
 * ordered now or before.
 */
static size_t trim_replicas(struct mserver *s, uint64_t chunk, uint32_t from,
                            uint32_t to, uint32_t length)
{
    struct csreg_replica all[CSREG_MAX_REPLICAS];
    size_t k = csreg_replicas(s->csreg, chunk, all, CSREG_MAX_REPLICAS), n = 0;
    for (size_t j = 0; j < k; j++) {
        if (all[j].corrupt || all[j].version < from || all[j].version >= to)
            continue;
        order_trim(s, chunk, &all[j], to, length);
        const struct csreg_server *srv = csreg_server(s->csreg, all[j].cs);
        n += srv && srv->state == CSREG_UP && !srv->decommission;
    }
    return n;
}

void mrepl_trimmed(struct mserver *s, const struct ns_trim *trims, size_t n)
{
    if (!s->repl || !s->repl->leader)
        return;
    for (size_t i = 0; i < n; i++)
        trim_replicas(s, trims[i].id, trims[i].trim_from, trims[i].version,
                      trims[i].length);
}

struct mrepl_need {
    struct ns_chunk_info ci;
    size_t healthy;
};

/* Decommissioned servers and how many chunks still need them. */
struct mrepl_drain {
    uint32_t id[CSREG_MAX_REPLICAS * 4];
    int64_t left[CSREG_MAX_REPLICAS * 4];
    size_t n;
};

static void drain_init(struct mserver *s, struct mrepl_drain *d)
{
    d->n = 0;
    for (size_t i = 0; i < csreg_count(s->csreg) && d->n < CSREG_MAX_REPLICAS * 4; i++) {
        const struct csreg_server *cs = csreg_at(s->csreg, i);
        if (cs->decommission) {
            d->id[d->n] = cs->id;
            d->left[d->n++] = 0;
        }
    }
}

/* The chunk is not yet safe without the decommissioned servers holding it
 * (its recorded replicas, whether their servers are up or not). */
static void drain_count(struct mserver *s, struct mrepl_drain *d,
                        const struct ns_chunk_info *ci)
{
    uint32_t where[CSREG_MAX_REPLICAS];
    size_t k = csreg_recorded(s->csreg, ci->id, ci->committed, ci->version, where,
                              CSREG_MAX_REPLICAS);
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < d->n; j++)
            d->left[j] += d->id[j] == where[i];
    }
}

/* Of the k healthy replicas in where, those on servers not decommissioned. */
static size_t counted(const struct mserver *s, const uint32_t *where, size_t k)
{
    size_t n = 0;
    for (size_t i = 0; i < k; i++)
        n += !csreg_server(s->csreg, where[i])->decommission;
    return n;
}

static int by_danger(const void *a, const void *b)
{
    const struct mrepl_need *x = a, *y = b;
    return (x->healthy > y->healthy) - (x->healthy < y->healthy);
}

/* Stale and corrupt replicas of a chunk that has a healthy one.  A
 * replica awaiting its trim is neither: trimmed, it is a good one. */
static void drop_stale(struct mserver *s, const struct ns_chunk_info *ci,
                       size_t healthy)
{
    if (!healthy)
        return;
    struct csreg_replica all[CSREG_MAX_REPLICAS];
    size_t n = csreg_replicas(s->csreg, ci->id, all, CSREG_MAX_REPLICAS);
    for (size_t i = 0; i < n; i++) {
        bool untrimmed = ci->trim_from && all[i].version >= ci->trim_from;
        if (all[i].version < ci->committed && !untrimmed)
            order_delete(s, all[i].cs, ci->id, all[i].version, "stale");
        else if (all[i].corrupt)
            order_delete(s, all[i].cs, ci->id, 0, "corrupt");
    }
}

static void drop_orphans(struct mserver *s)
{
    size_t cursor = 0;
    uint64_t chunk;
    struct ns_chunk_info ci;
    while (csreg_next_chunk(s->csreg, &cursor, &chunk)) {
        if (ns_chunk_lookup(s->ns, chunk, &ci) == 0)
            continue;
        struct csreg_replica all[CSREG_MAX_REPLICAS];
        size_t n = csreg_replicas(s->csreg, chunk, all, CSREG_MAX_REPLICAS);
        for (size_t i = 0; i < n; i++)
            order_delete(s, all[i].cs, chunk, 0, "orphan");
    }
}

static void scan(struct mserver *s)
{
    struct mrepl *m = s->repl;
    size_t cap = 1024, n = 0;
    struct mrepl_need *need = malloc(cap * sizeof(*need));
    if (!need)
        return;
    struct ns_chunk_info ci;
    uint32_t cursor = 0;
    uint32_t where[CSREG_MAX_REPLICAS];
    struct mrepl_drain drain;
    drain_init(s, &drain);
    while (ns_chunk_walk(s->ns, &cursor, &ci)) {
        if (ci.committed == 0)
            continue;   /* nothing committed yet: nothing to keep safe */
        /* Trims go on under a write lease too: the session's chain holds
         * only replicas at [committed, version], so an untrimmed one is in
         * no chain; trimmed, it holds the committed content like the
         * replicas the session started from, and if the session commits
         * first it is merely stale. */
        size_t untrimmed = ci.trim_from ? trim_replicas(s, ci.id, ci.trim_from,
                                                        ci.committed, ci.length)
                                        : 0;
        size_t k = csreg_locations(s->csreg, ci.id, ci.committed, ci.version, where,
                                   CSREG_MAX_REPLICAS);
        size_t good = counted(s, where, k);
        if (good < ci.goal || ns_lease_holder(s->ns, ci.id))
            drain_count(s, &drain, &ci);
        if (ns_lease_holder(s->ns, ci.id))
            continue;
        drop_stale(s, &ci, k);
        if (k == 0 || good + untrimmed >= ci.goal)
            continue;   /* missing (nothing to copy from), or healthy once trimmed */
        if (n == cap) {
            struct mrepl_need *more = realloc(need, 2 * cap * sizeof(*need));
            if (!more)
                break;
            need = more;
            cap *= 2;
        }
        need[n++] = (struct mrepl_need){ ci, good };
    }
    for (size_t i = 0; i < drain.n; i++)
        csreg_set_drain_left(s->csreg, drain.id[i], drain.left[i]);
    qsort(need, n, sizeof(*need), by_danger);
    size_t started = 0;
    for (size_t i = 0; i < n && m->n_inflight < MREPL_MAX_INFLIGHT; i++) {
        size_t k = csreg_locations(s->csreg, need[i].ci.id, need[i].ci.committed,
                                   need[i].ci.version, where, CSREG_MAX_REPLICAS);
        started += start_copy(s, &need[i].ci, where, k);
    }
    m->backlog = started < n;
    free(need);
    drop_orphans(s);
}

static int64_t tick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    if (active(s))
        scan(s);
    return MREPL_SCAN_MS;
}

void mrepl_leader(struct mserver *s, bool leader)
{
    struct mrepl *m = s->repl;
    if (!m)
        return;
    if (leader != m->leader) {
        m->backlog = false;
        if (m->rescan)
            ev_timer_cancel(s->loop, m->rescan);
        m->rescan = 0;
    }
    if (leader && !m->leader) {
        m->active_after_ms = (int64_t)ev_now_ms(s->loop) + MREPL_SAFE_MS;
        /* What a server reported to an earlier leadership of ours may
         * have changed since: it is not drained until it reports again. */
        if (s->csreg)
            csreg_forget_reports(s->csreg);
    }
    m->leader = leader;
}

bool mrepl_settling(const struct mserver *s)
{
    const struct mrepl *m = s->repl;
    return m && m->leader && (int64_t)ev_now_ms(s->loop) < m->active_after_ms;
}

uint64_t mrepl_inflight(const struct mserver *s)
{
    return s->repl ? s->repl->n_inflight : 0;
}

int mrepl_init(struct mserver *s)
{
    s->repl = calloc(1, sizeof(*s->repl));
    if (!s->repl)
        return -ENOMEM;
    s->repl->timer = ev_timer_add(s->loop, MREPL_SCAN_MS, tick, s);
    return s->repl->timer ? 0 : -ENOMEM;
}

void mrepl_shutdown(struct mserver *s)
{
    struct mrepl *m = s->repl;
    if (!m)
        return;
    ev_timer_cancel(s->loop, m->timer);
    if (m->rescan)
        ev_timer_cancel(s->loop, m->rescan);
    /* Copies still in flight end with their connections: copy_done frees
     * them and finds s->repl gone. */
    free(m);
    s->repl = NULL;
}
