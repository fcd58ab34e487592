/*
 * sim: the simulated cluster, its network, disks, faults and clients.
 *
 * Owns, for one seed: the event queue, every node (a raft core, its disk,
 * its key/value state, a mirror of its log as handed to storage, its
 * pending reads), the network state, the phase machine and the checker.
 *
 * Time: virtual units; a node ticks every TICK units (with a little drift),
 * messages take delay_lo..delay_hi units (sometimes far longer), an fsync
 * disk_lo..disk_hi.  A step is one popped event that reached a live node
 * (or a fault/client action); events of a dead incarnation do not count.
 *
 * Phases: CALM (network healed, all nodes up, no faults: a proposal must
 * commit everywhere within LIVENESS_TICKS) then CHAOS (faults injected at
 * random) and so on.  A run starts calm.
 *
 * Invariants (of the harness):
 *  1. Every message a node emits is checked against the persistence
 *     contract (check_durable) before it enters the network.
 *  2. mirror == the node's log as of its last Ready with something to
 *     persist; every change to it is reported to simcheck.
 *  3. A node's kv applies committed entries in order, exactly once per
 *     incarnation, starting from its disk's snapshot.
 *  4. Nodes are only ever added with fresh ids; a node removed by a
 *     committed configuration is destroyed (GONE) for good.
 */
#include "tests/sim/sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "master/raft.h"
#include "master/raftrand.h"
#include "tests/sim/simcheck.h"
#include "tests/sim/simdisk.h"
#include "tests/sim/simkv.h"
#include "tests/sim/simq.h"

#define SIM_MAX_NODES 12
#define TICK 10
#define LIVENESS_TICKS 400     /* calm ticks allowed before progress */
#define CALM_EXTRA_TICKS 30    /* calm kept after progress */
#define MAX_READY_LOOPS 64
#define MAX_BACKLOG 64         /* a client waits while this much is uncommitted */

enum node_status { NODE_UNUSED, NODE_UP, NODE_DOWN, NODE_GONE };

struct read_req {
    uint64_t ctx;
    uint64_t min_index;     /* highest commit anywhere when issued */
    uint64_t index;         /* from the core; valid when ready */
    bool ready;
};

struct mirror_ent {
    uint64_t term;
    uint64_t ehash;
};

struct node {
    uint64_t id;
    enum node_status status;
    uint32_t gen;
    uint64_t created_at;
    bool joined;            /* seen in a committed configuration */
    struct raft *r;         /* owned while UP */
    struct simdisk disk;
    struct simkv kv;
    uint64_t seen_commit;
    /* the log as handed to storage: (base, base + n_mirror] */
    uint64_t mirror_base, mirror_base_term;
    struct mirror_ent *mirror;
    size_t n_mirror, cap_mirror;
    struct read_req *reads;
    size_t n_reads, cap_reads;
};

struct marker {
    bool live;
    uint64_t node, index, term, value;
    uint64_t at;             /* when proposed: retried if it goes nowhere */
};

struct sim {
    struct sim_params p;
    struct raftrand rng;
    struct raft_config rcfg;
    struct simq q;
    uint64_t now;
    uint64_t step;
    struct node nodes[SIM_MAX_NODES + 1];   /* by id; [0] unused */
    unsigned n_ids;
    /* network */
    bool cut[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];   /* [from][to] */
    uint64_t link_last[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];
    bool fifo;               /* links keep order (TCP) or reorder freely */
    unsigned loss, dup, long_delay;                   /* per mille */
    unsigned delay_lo, delay_hi;
    unsigned disk_lo, disk_hi;
    /* phases */
    bool calm;
    bool progressed;
    uint64_t calm_since;
    struct marker marker;
    /* per-seed knobs */
    unsigned crash_weight;
    unsigned young_leader_crash;   /* per mille of new leaders crashed soon */
    unsigned compact_every;
    size_t snap_pad, cmd_pad;
    unsigned client_every;   /* ticks between client actions, at most */
    unsigned read_ratio;     /* per mille of client actions that read */
    /* clients */
    uint64_t next_value;
    uint64_t next_ctx;
    /* the configuration of the highest committed config entry */
    struct raft_members committed;
    uint64_t committed_index;
    struct simcheck chk;
    struct sim_result *res;
};

static void node_destroy(struct sim *s, struct node *n);

/* ---- failure and trace ---------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void failf(struct sim *s, const char *fmt, ...)
{
    if (s->res->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res->msg, sizeof(s->res->msg), fmt, ap);
    va_end(ap);
    s->res->failed = true;
    s->res->step = s->step;
    if (s->p.trace)
        fprintf(s->p.trace, "FAIL: %s\n", s->res->msg);
}

static int check(struct sim *s, int rc)
{
    if (rc < 0)
        failf(s, "%s", simcheck_error(&s->chk));
    return rc;
}

__attribute__((format(printf, 2, 3)))
static void tr(struct sim *s, const char *fmt, ...)
{
    if (!s->p.trace)
        return;
    va_list ap;
    fprintf(s->p.trace, "[%6" PRIu64 " t=%7" PRIu64 "] ", s->step, s->now);
    va_start(ap, fmt);
    vfprintf(s->p.trace, fmt, ap);
    va_end(ap);
    fputc('\n', s->p.trace);
}

static uint64_t rnd(struct sim *s, uint64_t lo, uint64_t hi)
{
    return raftrand_range(&s->rng, lo, hi);
}

static bool chance(struct sim *s, unsigned per_mille)
{
    return raftrand_chance(&s->rng, per_mille);
}

static void push(struct sim *s, uint64_t at, uint32_t kind, uint32_t node,
                 uint32_t gen, struct raft_msg *msg)
{
    struct simq_ev ev = { .time = at, .kind = kind, .node = node, .gen = gen,
                          .msg = msg };
    if (simq_push(&s->q, ev) < 0)
        failf(s, "simulator out of memory");
}

static struct node *node_at(struct sim *s, uint64_t id)
{
    return id >= 1 && id <= s->n_ids ? &s->nodes[id] : NULL;
}

static struct node *up_node(struct sim *s, uint64_t id)
{
    struct node *n = node_at(s, id);
    return n && n->status == NODE_UP ? n : NULL;
}

/* ---- the log mirror ------------------------------------------------------- */

static uint64_t mirror_last(const struct node *n)
{
    return n->mirror_base + n->n_mirror;
}

static const struct mirror_ent *mirror_get(const struct node *n, uint64_t i)
{
    if (i <= n->mirror_base || i > mirror_last(n))
        return NULL;
    return &n->mirror[i - n->mirror_base - 1];
}

static uint64_t mirror_term(const struct node *n, uint64_t i)
{
    if (i == n->mirror_base)
        return n->mirror_base_term;
    const struct mirror_ent *e = mirror_get(n, i);
    return e ? e->term : 0;
}

static void mirror_reset(struct node *n, uint64_t base, uint64_t base_term)
{
    n->mirror_base = base;
    n->mirror_base_term = base_term;
    n->n_mirror = 0;
}

/* Logs one entry at the end of the mirror, reporting it to the checker. */
static int mirror_append(struct sim *s, struct node *n,
                         const struct raft_entry *e)
{
    if (n->n_mirror == n->cap_mirror) {
        size_t cap = n->cap_mirror ? n->cap_mirror * 2 : 256;
        struct mirror_ent *m = realloc(n->mirror, cap * sizeof(*m));
        if (!m) {
            failf(s, "simulator out of memory");
            return -1;
        }
        n->mirror = m;
        n->cap_mirror = cap;
    }
    uint64_t ehash = simcheck_ehash(e);
    uint64_t prev = mirror_term(n, e->index - 1);
    n->mirror[n->n_mirror++] = (struct mirror_ent){ e->term, ehash };
    return check(s, simcheck_logged(&s->chk, n->id, e->index, e->term, ehash,
                                    prev));
}

/* The entries from `from` on leave the node's log: none may be committed. */
static int mirror_cut(struct sim *s, struct node *n, uint64_t from,
                      const struct raft_entry *repl, size_t n_repl)
{
    for (uint64_t i = from; i <= mirror_last(n); i++) {
        const struct mirror_ent *old = mirror_get(n, i);
        size_t k = i - from;
        if (k < n_repl && repl[k].term == old->term &&
            simcheck_ehash(&repl[k]) == old->ehash)
            continue;
        if (check(s, simcheck_replaced(&s->chk, n->id, i, old->term,
                                       old->ehash)) < 0)
            return -1;
    }
    if (from <= mirror_last(n))
        n->n_mirror = from > n->mirror_base ? from - n->mirror_base - 1 : 0;
    return 0;
}

static int mirror_take(struct sim *s, struct node *n, const struct raft_ready *rd)
{
    if (rd->snap) {
        if (mirror_cut(s, n, rd->snap->index + 1, NULL, 0) < 0)
            return -1;
        mirror_reset(n, rd->snap->index, rd->snap->term);
    }
    if (rd->n_entries) {
        uint64_t from = rd->entries[0].index;
        if (from <= n->mirror_base || from > mirror_last(n) + 1) {
            failf(s, "storage contract: node %" PRIu64 " hands out entries "
                  "from %" PRIu64 " after a log ending at %" PRIu64,
                  n->id, from, mirror_last(n));
            return -1;
        }
        if (mirror_cut(s, n, from, rd->entries, rd->n_entries) < 0)
            return -1;
        for (size_t i = 0; i < rd->n_entries; i++)
            if (mirror_append(s, n, &rd->entries[i]) < 0)
                return -1;
    }
    uint64_t last = raft_last_index(n->r);
    if (mirror_last(n) != last || mirror_term(n, last) != raft_term_at(n->r, last)) {
        failf(s, "storage contract: node %" PRIu64 " log ends at %" PRIu64
              " but its Readys describe one ending at %" PRIu64, n->id, last,
              mirror_last(n));
        return -1;
    }
    return 0;
}

static int mirror_load(struct sim *s, struct node *n)
{
    const struct simdisk *d = &n->disk;
    mirror_reset(n, d->snap.index, d->snap.term);
    for (size_t i = 0; i < d->n; i++)
        if (mirror_append(s, n, &d->ents[i]) < 0)
            return -1;
    return 0;
}

/* ---- persistence contract -------------------------------------------------- */

/* Does the disk hold the node's current entry at index (or a snapshot past
 * it)? */
static bool durable_upto(const struct sim *s, const struct node *n,
                         uint64_t index)
{
    const struct simdisk *d = &n->disk;
    if (index <= d->snap.index)
        return true;
    uint64_t term = simdisk_term_at(d, index);
    if (index > n->mirror_base)
        return term == mirror_term(n, index);
    /* Since acknowledged, a snapshot has replaced this part of the log: the
     * entry there is the committed one. */
    const struct simcheck_hist *h = simcheck_hist(&s->chk, index);
    return term != 0 && (!h || h->term == term);
}

static bool vote_durable(const struct simdisk *d, uint64_t term, uint64_t vote)
{
    return d->term > term || (d->term == term && d->vote == vote);
}

/* A message resting on state that is not durable yet must not leave. */
static void check_durable(struct sim *s, struct node *n, const struct raft_msg *m)
{
    const char *what = NULL;
    uint64_t term_now = raft_term(n->r);
    switch (m->type) {
    case RAFT_MSG_VOTE:
        if (!m->u.vote.pre && !vote_durable(&n->disk, m->term, n->id))
            what = "vote request before its own vote is durable";
        break;
    case RAFT_MSG_VOTE_RESP:
        if (!m->u.vote_resp.pre && m->u.vote_resp.granted &&
            !vote_durable(&n->disk, m->term, m->to))
            what = "vote granted before it is durable";
        break;
    case RAFT_MSG_APPEND_RESP:
        /* After a term change the log may have moved on: the ack is stale
         * and harmless (its term is old). */
        if (!m->u.append_resp.reject && m->term == term_now &&
            !durable_upto(s, n, m->u.append_resp.index))
            what = "entries acknowledged before they are durable";
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        if (m->u.snapshot_resp.done && m->term == term_now &&
            !durable_upto(s, n, m->u.snapshot_resp.index))
            what = "snapshot acknowledged before it is durable";
        break;
    default:
        break;
    }
    if (what)
        failf(s, "persistence contract: node %" PRIu64 " sends %s to %" PRIu64
              " (term %" PRIu64 "): %s", n->id, raft_msg_type_name(m->type),
              m->to, m->term, what);
}

/* ---- network ---------------------------------------------------------------- */

static uint64_t net_delay(struct sim *s)
{
    if (chance(s, s->long_delay))
        return rnd(s, 5 * TICK, 30 * TICK);
    return rnd(s, s->delay_lo, s->delay_hi);
}

static void trace_msg(struct sim *s, const char *what, const struct raft_msg *m)
{
    if (!s->p.trace)
        return;
    char extra[96] = "";
    if (m->type == RAFT_MSG_APPEND)
        snprintf(extra, sizeof(extra), " prev=%" PRIu64 "/%" PRIu64 " n=%u commit=%" PRIu64,
                 m->u.append.prev_index, m->u.append.prev_term,
                 m->u.append.n_entries, m->u.append.commit);
    else if (m->type == RAFT_MSG_APPEND_RESP)
        snprintf(extra, sizeof(extra), " %s index=%" PRIu64 " hint=%" PRIu64 "/%" PRIu64,
                 m->u.append_resp.reject ? "reject" : "ok",
                 m->u.append_resp.index, m->u.append_resp.hint_index,
                 m->u.append_resp.hint_term);
    else if (m->type == RAFT_MSG_VOTE)
        snprintf(extra, sizeof(extra), "%s last=%" PRIu64 "/%" PRIu64,
                 m->u.vote.pre ? " pre" : "", m->u.vote.last_index,
                 m->u.vote.last_term);
    else if (m->type == RAFT_MSG_VOTE_RESP)
        snprintf(extra, sizeof(extra), "%s %s", m->u.vote_resp.pre ? " pre" : "",
                 m->u.vote_resp.granted ? "granted" : "rejected");
    else if (m->type == RAFT_MSG_SNAPSHOT)
        snprintf(extra, sizeof(extra), " index=%" PRIu64 " off=%" PRIu64 " len=%u/%" PRIu64,
                 m->u.snapshot.meta.index, m->u.snapshot.offset,
                 m->u.snapshot.len, m->u.snapshot.total);
    else if (m->type == RAFT_MSG_SNAPSHOT_RESP)
        snprintf(extra, sizeof(extra), " index=%" PRIu64 " off=%" PRIu64 "%s",
                 m->u.snapshot_resp.index, m->u.snapshot_resp.offset,
                 m->u.snapshot_resp.done ? " done" : "");
    tr(s, "%s %" PRIu64 "->%" PRIu64 " %s t%" PRIu64 "%s", what, m->from, m->to,
       raft_msg_type_name(m->type), m->term, extra);
}

static void net_send(struct sim *s, const struct raft_msg *m)
{
    struct node *to = node_at(s, m->to);
    if (!to || to->status == NODE_GONE || to->status == NODE_UNUSED)
        return;
    if (s->cut[m->from][m->to] || chance(s, s->loss)) {
        trace_msg(s, "drop", m);
        return;
    }
    unsigned copies = 1 + chance(s, s->dup);
    for (unsigned i = 0; i < copies; i++) {
        struct raft_msg *c = simmsg_clone(m);
        if (!c) {
            failf(s, "simulator out of memory");
            return;
        }
        uint64_t at = s->now + net_delay(s);
        uint64_t *last = &s->link_last[m->from][m->to];
        if (s->fifo && at < *last)
            at = *last;
        *last = at;
        push(s, at, SIMQ_DELIVER, (uint32_t)m->to, 0, c);
    }
}

/* ---- applying --------------------------------------------------------------- */

static void serve_reads(struct sim *s, struct node *n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct read_req *q = &n->reads[i];
        if (!q->ready || n->kv.applied < q->index) {
            n->reads[kept++] = *q;
            continue;
        }
        /* Linearizable: the state served reflects every write committed
         * anywhere before the read was issued. */
        if (n->kv.applied < q->min_index)
            failf(s, "linearizability: node %" PRIu64 " serves read %" PRIu64
                  " from index %" PRIu64 " but index %" PRIu64 " was "
                  "committed before it was issued", n->id, q->ctx,
                  n->kv.applied, q->min_index);
        s->res->stats.reads++;
        tr(s, "node %" PRIu64 " serves read %" PRIu64 " at index %" PRIu64,
           n->id, q->ctx, n->kv.applied);
    }
    n->n_reads = kept;
}

static void take_reads(struct sim *s, struct node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_reads; i++) {
        const struct raft_read *rr = &rd->reads[i];
        for (size_t j = 0; j < n->n_reads; j++) {
            struct read_req *q = &n->reads[j];
            if (q->ctx != rr->ctx)
                continue;
            if (rr->status < 0) {
                n->reads[j] = n->reads[--n->n_reads];
            } else {
                q->index = rr->index;
                q->ready = true;
            }
            break;
        }
    }
    serve_reads(s, n);
}

/* The configuration committed at index: remember it and retire removed
 * nodes for good. */
static void config_committed(struct sim *s, const struct raft_entry *e)
{
    struct raft_members m;
    if (e->index <= s->committed_index ||
        raft_members_decode(e->data, e->len, &m) < 0)
        return;
    if (s->committed_index)
        s->res->stats.members++;
    s->committed = m;
    s->committed_index = e->index;
    tr(s, "configuration committed at %" PRIu64 " (%u servers, %u voters)",
       e->index, m.n, raft_members_voters(&m));
    for (unsigned id = 1; id <= s->n_ids; id++) {
        struct node *n = &s->nodes[id];
        if (n->status == NODE_GONE || n->status == NODE_UNUSED)
            continue;
        if (raft_members_find(&m, id))
            n->joined = true;
        else if (n->joined)
            node_destroy(s, n);
    }
}

static void apply_snapshot(struct sim *s, struct node *n,
                           const struct raft_ready *rd)
{
    if (simkv_restore(&n->kv, rd->snap_data, rd->snap_len) < 0 ||
        n->kv.applied != rd->snap->index) {
        failf(s, "snapshot: node %" PRIu64 " received a corrupt snapshot at "
              "index %" PRIu64, n->id, rd->snap->index);
        return;
    }
    s->res->stats.snapshots++;
    tr(s, "node %" PRIu64 " installs snapshot at %" PRIu64, n->id,
       rd->snap->index);
    check(s, simcheck_snapshot(&s->chk, n->id, rd->snap->index,
                               simkv_digest(&n->kv)));
}

static void apply_entries(struct sim *s, struct node *n,
                          const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_committed && !s->res->failed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (simkv_apply(&n->kv, e) < 0) {
            failf(s, "apply: node %" PRIu64 " applies index %" PRIu64
                  " after %" PRIu64, n->id, e->index, n->kv.applied);
            return;
        }
        if (check(s, simcheck_applied(&s->chk, n->id, raft_term(n->r),
                                      e->index, e->term, simcheck_ehash(e),
                                      simkv_digest(&n->kv))) < 0)
            return;
        if (e->type == RAFT_ENTRY_CONFIG)
            config_committed(s, e);
        if (n->status != NODE_UP)
            return;
    }
}

/* ---- Ready ----------------------------------------------------------------- */

static void persist(struct sim *s, struct node *n, const struct raft_ready *rd)
{
    if (mirror_take(s, n, rd) < 0)
        return;
    uint64_t at = s->now + rnd(s, s->disk_lo, s->disk_hi);
    uint64_t last = simdisk_last_done(&n->disk);
    if (at < last)
        at = last;
    if (simdisk_queue_ready(&n->disk, rd, at) < 0) {
        failf(s, "simulator out of memory");
        return;
    }
    push(s, at, SIMQ_DISK, (uint32_t)n->id, n->gen, NULL);
}

static void soft_state(struct sim *s, struct node *n, const struct raft_ready *rd)
{
    tr(s, "node %" PRIu64 " is %s of term %" PRIu64 " (leader %" PRIu64 ")",
       n->id, raft_state_name(rd->state), rd->term, rd->leader);
    if (rd->state != RAFT_LEADER)
        return;
    s->res->stats.elections++;
    if (check(s, simcheck_leader(&s->chk, rd->term, n->id)) < 0)
        return;
    check(s, simcheck_complete(&s->chk, n->r));
    /* A leader dying before its first entries spread is the classic way to
     * leave diverging logs behind (the paper's figure 8). */
    if (!s->calm && chance(s, s->young_leader_crash))
        push(s, s->now + rnd(s, 1, 3 * TICK),
             chance(s, 500) ? SIMQ_CRASH : SIMQ_ISOLATE, (uint32_t)n->id,
             n->gen, NULL);
}

static void handle_ready(struct sim *s, struct node *n,
                         const struct raft_ready *rd)
{
    if (rd->soft_changed)
        soft_state(s, n, rd);
    if (rd->seq)
        persist(s, n, rd);
    for (size_t i = 0; i < rd->n_msgs && !s->res->failed; i++) {
        check_durable(s, n, &rd->msgs[i]);
        trace_msg(s, "send", &rd->msgs[i]);
        net_send(s, &rd->msgs[i]);
    }
    if (s->res->failed)
        return;
    if (rd->snap)
        apply_snapshot(s, n, rd);
    apply_entries(s, n, rd);
    if (n->status == NODE_UP && !s->res->failed)
        take_reads(s, n, rd);
}

static void maybe_compact(struct sim *s, struct node *n)
{
    uint64_t applied = n->kv.applied;
    if (applied < raft_snapshot_index(n->r) + s->compact_every)
        return;
    size_t len = simkv_snapshot_size(s->snap_pad);
    uint8_t *buf = malloc(len);
    struct raft_snapshot_meta meta;
    if (!buf) {
        failf(s, "simulator out of memory");
        return;
    }
    simkv_snapshot(&n->kv, s->snap_pad, buf);
    int rc = raft_compact(n->r, applied, buf, len, &meta);
    if (rc == 0) {
        uint64_t at = s->now + rnd(s, s->disk_lo, s->disk_hi);
        if (at < simdisk_last_done(&n->disk))
            at = simdisk_last_done(&n->disk);
        rc = simdisk_queue_compact(&n->disk, &meta, buf, len, at);
        if (rc == 0)
            push(s, at, SIMQ_DISK, (uint32_t)n->id, n->gen, NULL);
        tr(s, "node %" PRIu64 " compacts at %" PRIu64, n->id, applied);
    }
    free(buf);
    if (rc < 0)
        failf(s, "compaction at %" PRIu64 " on node %" PRIu64 ": %s", applied,
              n->id, dfs_strerror(rc));
}

/* Records what the node newly knows committed, and checks role rules. */
static void node_checks(struct sim *s, struct node *n)
{
    uint64_t commit = raft_commit(n->r);
    for (uint64_t i = n->seen_commit + 1; i <= commit; i++) {
        const struct raft_entry *e = raft_entry_at(n->r, i);
        if (e && check(s, simcheck_committed(&s->chk, n->id, raft_term(n->r),
                                             i, e->term,
                                             simcheck_ehash(e))) < 0)
            return;
    }
    if (commit > n->seen_commit)
        n->seen_commit = commit;
    simcheck_commit_seen(&s->chk, commit);
    if (commit > s->res->stats.committed)
        s->res->stats.committed = commit;
    enum raft_state st = raft_state(n->r);
    const struct raft_server *me = raft_members_find(raft_members(n->r), n->id);
    if ((st == RAFT_CANDIDATE || st == RAFT_PRECANDIDATE) &&
        (!me || me->role != RAFT_VOTER))
        failf(s, "membership: node %" PRIu64 " campaigns without being a "
              "voter of its configuration", n->id);
}

/* Handles every Ready the node has, then checks it. */
static void drain(struct sim *s, struct node *n)
{
    struct raft_ready rd;
    for (int loops = 0; n->status == NODE_UP && !s->res->failed; loops++) {
        if (loops == MAX_READY_LOOPS) {
            failf(s, "node %" PRIu64 " never runs out of Readys", n->id);
            return;
        }
        if (!raft_ready(n->r, &rd))
            break;
        handle_ready(s, n, &rd);
        if (n->status != NODE_UP)
            return;
        raft_advance(n->r);
        maybe_compact(s, n);
    }
    if (n->status == NODE_UP && !s->res->failed)
        node_checks(s, n);
}

/* ---- node lifecycle ---------------------------------------------------------- */

static void schedule_tick(struct sim *s, struct node *n, uint64_t delay)
{
    push(s, s->now + delay, SIMQ_TICK, (uint32_t)n->id, n->gen, NULL);
}

static int node_start(struct sim *s, struct node *n)
{
    struct raft_restore rs;
    struct raft_config cfg = s->rcfg;
    simdisk_restore(&n->disk, &rs);
    cfg.id = n->id;
    cfg.seed = raftrand_next(&s->rng);
    int rc = raft_new(&cfg, &rs, &n->r);
    if (rc < 0) {
        failf(s, "restart: node %" PRIu64 " cannot load its disk: %s", n->id,
              dfs_strerror(rc));
        return rc;
    }
    simkv_init(&n->kv);
    if (n->disk.snap.index &&
        (simkv_restore(&n->kv, n->disk.snap_data, n->disk.snap_len) < 0 ||
         n->kv.applied != n->disk.snap.index)) {
        failf(s, "restart: node %" PRIu64 " has a corrupt snapshot", n->id);
        return -EINVAL;
    }
    if (mirror_load(s, n) < 0)
        return -EINVAL;
    n->seen_commit = raft_commit(n->r);
    n->status = NODE_UP;
    schedule_tick(s, n, rnd(s, 1, TICK));
    tr(s, "node %" PRIu64 " starts (term %" PRIu64 ", log %" PRIu64 ", snapshot %"
       PRIu64 ")", n->id, raft_term(n->r), raft_last_index(n->r),
       n->disk.snap.index);
    return 0;
}

static void node_stop(struct node *n)
{
    raft_free(n->r);
    n->r = NULL;
    n->n_reads = 0;
    n->gen++;
}

static void node_crash(struct sim *s, struct node *n)
{
    size_t keep = (size_t)rnd(s, 0, n->disk.nq);
    tr(s, "node %" PRIu64 " crashes (%zu of %zu writes in flight land)", n->id,
       keep, n->disk.nq);
    node_stop(n);
    n->status = NODE_DOWN;
    s->res->stats.crashes++;
    if (simdisk_crash(&n->disk, keep) < 0)
        failf(s, "storage contract: node %" PRIu64 " wrote a log with a gap",
              n->id);
    push(s, s->now + rnd(s, 3 * TICK, 60 * TICK), SIMQ_RESTART,
         (uint32_t)n->id, n->gen, NULL);
}

static void node_destroy(struct sim *s, struct node *n)
{
    tr(s, "node %" PRIu64 " leaves the cluster for good", n->id);
    if (n->status == NODE_UP)
        node_stop(n);
    n->status = NODE_GONE;
    n->gen++;
}

static void node_free(struct node *n)
{
    raft_free(n->r);
    simdisk_release(&n->disk);
    free(n->mirror);
    free(n->reads);
}

static struct node *node_create(struct sim *s)
{
    if (s->n_ids == SIM_MAX_NODES)
        return NULL;
    struct node *n = &s->nodes[++s->n_ids];
    n->id = s->n_ids;
    n->created_at = s->now;
    simdisk_init(&n->disk);
    if (node_start(s, n) < 0)
        return NULL;
    return n;
}

/* ---- clients ------------------------------------------------------------------ */

/* A node that believes it leads (perhaps wrongly: that is the point). */
static struct node *some_leader(struct sim *s)
{
    struct node *pick[SIM_MAX_NODES];
    unsigned k = 0;
    for (unsigned id = 1; id <= s->n_ids; id++) {
        struct node *n = &s->nodes[id];
        if (n->status == NODE_UP && raft_state(n->r) == RAFT_LEADER)
            pick[k++] = n;
    }
    return k ? pick[rnd(s, 0, k - 1)] : NULL;
}

/* The leader of the highest term: where an operator's request would land. */
static struct node *newest_leader(struct sim *s)
{
    struct node *best = NULL;
    for (unsigned id = 1; id <= s->n_ids; id++) {
        struct node *n = &s->nodes[id];
        if (n->status == NODE_UP && raft_state(n->r) == RAFT_LEADER &&
            (!best || raft_term(n->r) > raft_term(best->r)))
            best = n;
    }
    return best;
}

static int propose(struct sim *s, struct node *n, uint64_t *index,
                   uint64_t *value)
{
    uint8_t buf[SIMKV_CMD_MIN + 64];
    *value = ++s->next_value;
    size_t len = simkv_cmd(buf, chance(s, 300) ? SIMKV_PUT : SIMKV_APPEND,
                           (unsigned)rnd(s, 0, SIMKV_KEYS - 1), *value,
                           s->cmd_pad);
    return raft_propose(n->r, buf, len, index);
}

static void client_read(struct sim *s, struct node *n)
{
    uint64_t ctx = ++s->next_ctx;
    if (raft_read_index(n->r, ctx) < 0)
        return;
    void *p = n->reads;
    if (n->n_reads == n->cap_reads) {
        size_t cap = n->cap_reads ? n->cap_reads * 2 : 8;
        p = realloc(n->reads, cap * sizeof(*n->reads));
        if (!p) {
            failf(s, "simulator out of memory");
            return;
        }
        n->cap_reads = cap;
    }
    n->reads = p;
    n->reads[n->n_reads++] = (struct read_req){
        .ctx = ctx, .min_index = s->chk.max_commit };
    tr(s, "client reads via node %" PRIu64 " (ctx %" PRIu64 ", needs >= %"
       PRIu64 ")", n->id, ctx, s->chk.max_commit);
}

static void propose_marker(struct sim *s, struct node *n)
{
    uint64_t index, value;
    if (propose(s, n, &index, &value) < 0)
        return;
    s->marker = (struct marker){ .live = true, .node = n->id, .index = index,
                                 .term = raft_term(n->r), .value = value,
                                 .at = s->now };
    tr(s, "calm: marker %" PRIu64 " proposed at %" PRIu64 " via node %" PRIu64,
       value, index, n->id);
}

/* No marker, or one that never committed (its leader lost it). */
static bool marker_stuck(struct sim *s)
{
    if (!s->marker.live)
        return true;
    return s->now > s->marker.at + 100 * TICK &&
           !simcheck_hist(&s->chk, s->marker.index);
}

static void client_act(struct sim *s)
{
    struct node *n = some_leader(s);
    if (!n || raft_last_index(n->r) > raft_commit(n->r) + MAX_BACKLOG)
        return;
    if (s->calm && !s->progressed && marker_stuck(s)) {
        propose_marker(s, n);
    } else if (chance(s, s->read_ratio)) {
        client_read(s, n);
    } else {
        unsigned k = (unsigned)rnd(s, 1, 4);
        for (unsigned i = 0; i < k; i++) {
            uint64_t index, value;
            if (propose(s, n, &index, &value) == 0)
                tr(s, "client proposes %" PRIu64 " at %" PRIu64 " via node %"
                   PRIu64, value, index, n->id);
        }
    }
    drain(s, n);
}

/* ---- faults --------------------------------------------------------------- */

static struct node *random_node(struct sim *s, enum node_status st)
{
    struct node *pick[SIM_MAX_NODES];
    unsigned k = 0;
    for (unsigned id = 1; id <= s->n_ids; id++)
        if (s->nodes[id].status == st)
            pick[k++] = &s->nodes[id];
    return k ? pick[rnd(s, 0, k - 1)] : NULL;
}

static void heal(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
}

static void partition(struct sim *s)
{
    bool side[SIM_MAX_NODES + 1];
    for (unsigned id = 1; id <= s->n_ids; id++)
        side[id] = chance(s, 500);
    bool asym = chance(s, 400);
    for (unsigned a = 1; a <= s->n_ids; a++)
        for (unsigned b = 1; b <= s->n_ids; b++)
            if (side[a] != side[b] && (!asym || side[a]))
                s->cut[a][b] = true;
    tr(s, "chaos: %s partition", asym ? "asymmetric" : "symmetric");
}

static void isolate(struct sim *s, struct node *n)
{
    for (unsigned id = 1; id <= s->n_ids; id++)
        s->cut[n->id][id] = s->cut[id][n->id] = true;
    tr(s, "chaos: node %" PRIu64 " isolated", n->id);
}

static void network_weather(struct sim *s)
{
    unsigned worst = chance(s, 300) ? 300 : 80;
    s->loss = (unsigned)rnd(s, 0, worst);
    s->dup = (unsigned)rnd(s, 0, 100);
    s->delay_hi = (unsigned)rnd(s, 2, 4 * TICK);
    s->long_delay = (unsigned)rnd(s, 0, 60);
    s->fifo = chance(s, 500);
    tr(s, "chaos: loss %u dup %u delay 1..%u long %u (per mille)%s", s->loss,
       s->dup, s->delay_hi, s->long_delay, s->fifo ? " fifo" : " reordering");
}

static void disk_weather(struct sim *s)
{
    bool slow = chance(s, 500);
    s->disk_lo = slow ? TICK : 1;
    s->disk_hi = slow ? (unsigned)rnd(s, 2 * TICK, 15 * TICK) : TICK;
    tr(s, "chaos: fsync %u..%u", s->disk_lo, s->disk_hi);
}

static void change_members(struct sim *s, struct node *leader)
{
    const struct raft_members *m = raft_members(leader->r);
    unsigned voters = raft_members_voters(m);
    unsigned min_voters = s->p.nodes > 3 ? s->p.nodes - 1 : 3;
    int rc = -EAGAIN;
    uint64_t id = 0;
    const char *what = "";
    if (m->n > voters && chance(s, 700)) {
        unsigned k = (unsigned)rnd(s, 0, m->n - 1);
        while (m->servers[k].role != RAFT_LEARNER)
            k = (k + 1) % m->n;
        id = m->servers[k].id;
        if (voters <= s->p.nodes) {
            what = "promote";
            rc = raft_promote(leader->r, id, NULL);
        } else {
            what = "remove learner";
            rc = raft_remove(leader->r, id, NULL);
        }
    } else if (m->n < s->p.nodes + 2 && s->n_ids < SIM_MAX_NODES &&
               chance(s, 500)) {
        struct node *n = node_create(s);
        if (!n)
            return;
        id = n->id;
        what = "add learner";
        rc = raft_add_learner(leader->r, id, NULL);
        if (rc < 0)
            node_destroy(s, n);
    } else if (voters > min_voters) {
        unsigned k = (unsigned)rnd(s, 0, m->n - 1);
        id = m->servers[k].id;
        what = id == leader->id ? "remove the leader" : "remove";
        rc = raft_remove(leader->r, id, NULL);
    }
    if (id)
        tr(s, "chaos: %s %" PRIu64 " via %" PRIu64 ": %s", what, id,
           leader->id, rc == 0 ? "proposed" : dfs_strerror(rc));
    drain(s, leader);
}

static void transfer(struct sim *s, struct node *leader)
{
    const struct raft_members *m = raft_members(leader->r);
    uint64_t to = m->servers[rnd(s, 0, m->n - 1)].id;
    int rc = raft_transfer(leader->r, to);
    if (rc == 0)
        s->res->stats.transfers++;
    tr(s, "chaos: transfer %" PRIu64 " -> %" PRIu64 ": %s", leader->id, to,
       rc == 0 ? "started" : dfs_strerror(rc));
    drain(s, leader);
}

/* Removes nodes created for a membership change that never committed. */
static void sweep_orphans(struct sim *s)
{
    for (unsigned id = 1; id <= s->n_ids; id++) {
        struct node *n = &s->nodes[id];
        if (n->status == NODE_GONE || n->joined ||
            s->now < n->created_at + 300 * TICK)
            continue;
        if (!raft_members_find(&s->committed, id))
            node_destroy(s, n);
    }
}

static void chaos_act(struct sim *s)
{
    unsigned roll = (unsigned)rnd(s, 0, 99);
    struct node *leader = newest_leader(s);
    struct node *n;
    if (roll < s->crash_weight && (n = random_node(s, NODE_UP))) {
        node_crash(s, n);
    } else if (roll < 30 && (n = random_node(s, NODE_DOWN))) {
        tr(s, "chaos: restart");
        node_start(s, n);
    } else if (roll < 42) {
        partition(s);
    } else if (roll < 50 && leader) {
        isolate(s, leader);
    } else if (roll < 60) {
        heal(s);
        tr(s, "chaos: network healed");
    } else if (roll < 70) {
        network_weather(s);
    } else if (roll < 76) {
        disk_weather(s);
    } else if (roll < 90 && leader) {
        change_members(s, leader);
    } else if (leader) {
        transfer(s, leader);
    }
    sweep_orphans(s);
}

/* ---- phases -------------------------------------------------------------------- */

static void calm_begin(struct sim *s)
{
    s->calm = true;
    s->progressed = false;
    s->calm_since = s->now;
    s->marker.live = false;
    heal(s);
    s->loss = s->dup = s->long_delay = 0;
    s->fifo = true;
    s->delay_lo = 1;
    s->delay_hi = TICK;
    s->disk_lo = 1;
    s->disk_hi = TICK;
    tr(s, "phase: calm");
    for (unsigned id = 1; id <= s->n_ids; id++)
        if (s->nodes[id].status == NODE_DOWN)
            node_start(s, &s->nodes[id]);
}

static void chaos_begin(struct sim *s)
{
    s->calm = false;
    tr(s, "phase: chaos");
    network_weather(s);
    push(s, s->now + rnd(s, 100, 300) * TICK, SIMQ_PHASE, 0, 0, NULL);
    push(s, s->now + TICK, SIMQ_CHAOS, 0, 0, NULL);
}

/* Has the calm phase's marker reached every live member? */
static bool marker_everywhere(struct sim *s)
{
    const struct simcheck_hist *h = simcheck_hist(&s->chk, s->marker.index);
    if (!h || !h->applied)
        return false;
    if (h->term != s->marker.term) {
        s->marker.live = false;   /* lost with its leader: propose again */
        return false;
    }
    for (uint32_t i = 0; i < s->committed.n; i++) {
        struct node *n = node_at(s, s->committed.servers[i].id);
        if (n && n->status == NODE_UP && n->kv.applied < s->marker.index)
            return false;
    }
    return true;
}

static void liveness(struct sim *s)
{
    if (!s->calm || s->progressed)
        return;
    if (s->marker.live && marker_everywhere(s)) {
        uint64_t ticks = (s->now - s->calm_since) / TICK;
        s->progressed = true;
        if (ticks > s->res->stats.calm_ticks)
            s->res->stats.calm_ticks = ticks;
        tr(s, "calm: progress after %" PRIu64 " ticks", ticks);
        push(s, s->now + CALM_EXTRA_TICKS * TICK, SIMQ_PHASE, 0, 0, NULL);
        return;
    }
    if (s->now > s->calm_since + LIVENESS_TICKS * TICK) {
        struct node *l = some_leader(s);
        failf(s, "liveness: no commit reached every member within %d calm "
              "ticks (leader %" PRIu64 ", highest commit %" PRIu64 ")",
              LIVENESS_TICKS, l ? l->id : 0, s->chk.max_commit);
    }
}

/* ---- electability ------------------------------------------------------------ */

/* A log's position for the election rule: (last term, last index). */
struct logpos {
    uint64_t term, index;
};

static bool at_least(struct logpos a, struct logpos b)
{
    return a.term > b.term || (a.term == b.term && a.index >= b.index);
}

static struct logpos disk_pos(const struct simdisk *d)
{
    uint64_t last = simdisk_last_index(d);
    return (struct logpos){ simdisk_term_at(d, last), last };
}

static bool disk_has(const struct simdisk *d, uint64_t index, uint64_t term)
{
    return index <= d->snap.index || simdisk_term_at(d, index) == term;
}

/* The configuration a node restarted from this disk would use. */
static void disk_members(const struct simdisk *d, struct raft_members *m)
{
    for (size_t i = d->n; i-- > 0;)
        if (d->ents[i].type == RAFT_ENTRY_CONFIG &&
            raft_members_decode(d->ents[i].data, d->ents[i].len, m) == 0)
            return;
    *m = d->snap.members;
}

/* Voters of m that would grant a candidate at `pos` (its own vote
 * included), judging each by its durable log: after a crash, that is all
 * it has. */
static unsigned possible_votes(struct sim *s, const struct raft_members *m,
                               uint64_t cand, struct logpos pos)
{
    unsigned votes = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        const struct raft_server *v = &m->servers[i];
        const struct node *n = node_at(s, v->id);
        if (v->role != RAFT_VOTER || !n || n->status == NODE_GONE ||
            n->status == NODE_UNUSED)
            continue;
        votes += v->id == cand || at_least(pos, disk_pos(&n->disk));
    }
    return votes;
}

static void check_candidate(struct sim *s, struct node *n, const char *view,
                            const struct raft_members *m, struct logpos pos,
                            const struct simcheck_hist *h)
{
    const struct raft_server *me = raft_members_find(m, n->id);
    if (!me || me->role != RAFT_VOTER)
        return;
    unsigned votes = possible_votes(s, m, n->id, pos);
    if (votes >= raft_members_voters(m) / 2 + 1)
        failf(s, "leader completeness: node %" PRIu64 " (%s log ending "
              "%" PRIu64 "/%" PRIu64 ") lacks committed entry (index %" PRIu64
              ", term %" PRIu64 ") yet %u of %u voters would elect it",
              n->id, view, pos.index, pos.term, s->chk.hist_max, h->term,
              votes, raft_members_voters(m));
}

/*
 * Once an entry is committed, a quorum holds it durably and every log that
 * lacks it is less up to date than theirs, so no server lacking it can ever
 * win an election.  Checked for the newest committed entry (holding it
 * implies holding all before it), against every server's log in memory and
 * on disk: this catches an unsafe commit when it happens, not only when the
 * election it allows takes place.
 */
static void check_electable(struct sim *s)
{
    uint64_t i = s->chk.hist_max;
    const struct simcheck_hist *h = simcheck_hist(&s->chk, i);
    if (!h)
        return;
    for (unsigned id = 1; id <= s->n_ids && !s->res->failed; id++) {
        struct node *n = &s->nodes[id];
        if (n->status != NODE_UP && n->status != NODE_DOWN)
            continue;
        if (!disk_has(&n->disk, i, h->term)) {
            struct raft_members dm;
            disk_members(&n->disk, &dm);
            check_candidate(s, n, "durable", &dm, disk_pos(&n->disk), h);
        }
        if (n->status != NODE_UP || raft_snapshot_index(n->r) >= i ||
            raft_term_at(n->r, i) == h->term)
            continue;
        uint64_t last = raft_last_index(n->r);
        struct logpos pos = { raft_term_at(n->r, last), last };
        check_candidate(s, n, "in-memory", raft_members(n->r), pos, h);
    }
}

/* ---- events ------------------------------------------------------------------ */

static bool deliver(struct sim *s, struct raft_msg *m)
{
    struct node *n = up_node(s, m->to);
    bool counted = n && !s->cut[m->from][m->to];
    if (counted) {
        trace_msg(s, "recv", m);
        int rc = raft_step(n->r, m);
        if (rc < 0)
            failf(s, "node %" PRIu64 " rejects a message from %" PRIu64 ": %s",
                  n->id, m->from, dfs_strerror(rc));
        drain(s, n);
    }
    simmsg_free(m);
    return counted;
}

static void trace_node(struct sim *s, const char *what, const struct node *n)
{
    if (s->p.trace)
        tr(s, "%s node %" PRIu64 " (%s t%" PRIu64 " commit %" PRIu64
           " last %" PRIu64 ")", what, n->id, raft_state_name(raft_state(n->r)),
           raft_term(n->r), raft_commit(n->r), raft_last_index(n->r));
}

static bool disk_done(struct sim *s, struct node *n)
{
    uint64_t seq;
    trace_node(s, "fsync done:", n);
    int rc = simdisk_complete(&n->disk, &seq);
    if (rc == -EIO)
        failf(s, "storage contract: node %" PRIu64 " wrote a log with a gap",
              n->id);
    if (rc < 0)
        return rc != -ENOENT;
    if (seq)
        raft_persisted(n->r, seq);
    drain(s, n);
    return true;
}

/* Runs one event; false when it was stale (does not count as a step). */
static bool run_event(struct sim *s, struct simq_ev *ev)
{
    struct node *n = node_at(s, ev->node);
    bool live = n && n->status == NODE_UP && n->gen == ev->gen;
    switch (ev->kind) {
    case SIMQ_DELIVER:
        return deliver(s, ev->msg);
    case SIMQ_TICK:
        if (!live)
            return false;
        trace_node(s, "tick", n);
        raft_tick(n->r);
        drain(s, n);
        if (n->status == NODE_UP)
            schedule_tick(s, n, rnd(s, TICK - 1, TICK + 1));
        return true;
    case SIMQ_DISK:
        return live && disk_done(s, n);
    case SIMQ_CRASH:
        if (!live || s->calm)
            return false;
        node_crash(s, n);
        return true;
    case SIMQ_ISOLATE:
        if (!live || s->calm)
            return false;
        isolate(s, n);
        return true;
    case SIMQ_RESTART:
        if (!n || n->status != NODE_DOWN || n->gen != ev->gen)
            return false;
        node_start(s, n);
        return true;
    case SIMQ_CHAOS:
        if (s->calm)
            return false;
        chaos_act(s);
        push(s, s->now + rnd(s, 2, 8) * TICK, SIMQ_CHAOS, 0, 0, NULL);
        return true;
    case SIMQ_CLIENT:
        client_act(s);
        push(s, s->now + rnd(s, 1, s->client_every) * TICK, SIMQ_CLIENT, 0, 0,
             NULL);
        return true;
    case SIMQ_PHASE:
        if (s->calm)
            chaos_begin(s);
        else
            calm_begin(s);
        return true;
    }
    return false;
}

/* ---- setup ------------------------------------------------------------------- */

unsigned sim_default_nodes(uint64_t seed)
{
    return raftrand_mix(seed ^ 0x5eed) % 2 ? 5 : 3;
}

static void pick_knobs(struct sim *s)
{
    struct raft_config *c = &s->rcfg;
    c->heartbeat_ticks = (unsigned)rnd(s, 1, 3);
    c->election_ticks = (unsigned)rnd(s, 4 * c->heartbeat_ticks, 16);
    c->max_msg_bytes = (uint32_t)rnd(s, 32, 600);
    c->max_inflight = (unsigned)rnd(s, 1, 8);
    c->snapshot_chunk_bytes = (uint32_t)rnd(s, 16, 256);
    c->compact_trailing = rnd(s, 0, 20);
    c->read_lease = rnd(s, 0, 1) == 1;
    c->test_bug = s->p.bug;
    s->crash_weight = (unsigned)rnd(s, 6, 18);
    s->young_leader_crash = (unsigned)rnd(s, 0, 400);
    s->compact_every = (unsigned)rnd(s, 8, 80);
    s->snap_pad = rnd(s, 0, 600);
    s->cmd_pad = rnd(s, 0, 40);
    s->client_every = (unsigned)rnd(s, 1, 4);
    s->read_ratio = (unsigned)rnd(s, 100, 500);
}

static int bootstrap(struct sim *s)
{
    struct raft_members m = { .n = s->p.nodes };
    for (unsigned i = 0; i < s->p.nodes; i++)
        m.servers[i] = (struct raft_server){ .id = i + 1, .role = RAFT_VOTER };
    s->committed = m;
    for (unsigned i = 0; i < s->p.nodes; i++) {
        struct node *n = node_create(s);
        if (!n)
            return -1;
        n->joined = true;
        int rc = raft_bootstrap(n->r, &m);
        if (rc < 0) {
            failf(s, "bootstrap: %s", dfs_strerror(rc));
            return -1;
        }
        drain(s, n);
    }
    return 0;
}

static void sim_free(struct sim *s)
{
    for (unsigned id = 1; id <= s->n_ids; id++)
        node_free(&s->nodes[id]);
    simq_release(&s->q);
    simcheck_release(&s->chk);
    free(s);
}

int sim_run(const struct sim_params *p, struct sim_result *res)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    memset(res, 0, sizeof(*res));
    s->p = *p;
    s->res = res;
    raftrand_seed(&s->rng, p->seed);
    simq_init(&s->q);
    simcheck_init(&s->chk);
    pick_knobs(s);
    calm_begin(s);
    if (bootstrap(s) == 0)
        push(s, s->now + TICK, SIMQ_CLIENT, 0, 0, NULL);
    struct simq_ev ev;
    while (!res->failed && s->step < p->steps && simq_pop(&s->q, &ev)) {
        s->now = ev.time;
        if (run_event(s, &ev))
            s->step++;
        if (!res->failed)
            check_electable(s);
        if (!res->failed)
            liveness(s);
    }
    if (!res->failed)
        res->step = s->step;
    sim_free(s);
    return 0;
}
