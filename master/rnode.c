/*
 * rnode: drives the Raft core with real time, disk and network.
 *
 * Threads: everything here runs on the loop thread except rnode_store_work,
 * which runs on the one storage thread and is the only code that touches
 * rn->log after rnode_open, or on the loop thread itself while no batch
 * is on the thread, for a follower or a leader's small batch on fast
 * storage (rnode_inline).  A job carries copies of what it writes, since
 * the core's Ready buffers die at raft_advance().
 *
 * Invariants:
 *  1. raft_persisted(seq) is called only after the job holding that
 *     Ready's snapshot, entries and hard state returned from fdatasync;
 *     one batch at a time is written (on the storage thread or inline,
 *     never both) and batches hold jobs in Ready order, so seqs are
 *     confirmed in order (group commit: a batch is every job queued while
 *     the previous one was syncing).
 *  2. Committed entries reach cbs->apply in index order, each once.
 *  3. A storage error stops the node for good (cbs->fatal): a master that
 *     cannot persist must not vote or acknowledge.
 *  4. Messages to a peer that is not connected, or whose connection is
 *     backed up, are dropped: Raft retransmits, memory stays bounded.
 */
#include "rnode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/net.h"
#include "common/rpc.h"
#include "common/tpool.h"
#include "master/raftlog.h"
#include "master/raftwire.h"

#define RNODE_RECONNECT_MS 200
/* A leader writes a batch inline (rnode_inline) of at most this many
 * entries, when batches have taken at most this long to write and sync:
 * about what the thread's two wakeups cost. */
#define RNODE_INLINE_ENTRIES 8
#define RNODE_INLINE_SYNC_US 50

struct rnode_peer {
    uint64_t id;
    char host[NET_HOST_MAX];
    uint16_t port;
    struct rpc_conn *conn;
    uint64_t next_try_ms;
    uint64_t heard_ms;            /* last message from it (0: never) */
    uint64_t match;               /* last index it acknowledged */
    bool removed;                 /* dropped by rnode_drop_peer: never dialled */
    unsigned closing;             /* hung-up connections whose close is due */
    struct rnode *rn;
};

struct rnode_read {
    uint64_t ctx;
    uint64_t index;
};

struct rnode {
    struct ev_loop *loop;
    struct raft *raft;
    struct raftlog *log;          /* the storage thread's after open */
    struct tpool *store;
    const struct rnode_cbs *cbs;
    void *ctx;
    struct rnode_config cfg;
    struct rnode_peer **peers;    /* each its own allocation: conns point at it */
    size_t n_peers, cap_peers;
    uint64_t tick_timer;
    uint64_t ticked_ms;           /* loop time the core's ticks stand for */
    uint64_t process_timer;       /* a deferred rnode_process is armed */
    bool stopped;
    bool in_process;              /* re-entrancy guard for rnode_process */
    uint64_t durable_index;
    uint64_t last_snapshot;       /* index of the newest local snapshot */
    uint64_t leader_changes;
    struct rnode_job *queue;      /* jobs not yet handed to the thread */
    struct rnode_job **queue_tail;
    bool flushing;                /* a batch is on the storage thread, or
                                   * was written inline and awaits its done */
    struct rnode_batch *inline_done; /* ... that one, with its status */
    int inline_status;
    uint64_t sync_us;             /* a batch's write and sync, averaged
                                   * (UINT64_MAX: none measured yet) */
    struct rnode_read *reads;     /* waiting for their index to apply */
    size_t n_reads, cap_reads;
};

/* What one storage job writes; owns copies of everything. */
struct rnode_job {
    struct rnode *rn;
    uint64_t seq;
    struct raft_snapshot_meta snap;
    void *snap_data;
    size_t snap_len;
    bool has_snap;
    struct raft_entry *entries;
    size_t n_entries;
    bool hs_changed;
    struct raftlog_hard_state hs;
    bool local_snapshot;          /* snap is ours to save, then compact */
    struct rnode_job *next;       /* queue order */
};

/* The jobs one storage-thread run writes with one sync. */
struct rnode_batch {
    struct rnode *rn;
    struct rnode_job *jobs;
    uint64_t took_us;             /* writing and syncing them */
};

static void rnode_process(struct rnode *rn);
static void rnode_process_soon(struct rnode *rn);

/* ---- storage thread ------------------------------------------------------ */

static void rnode_job_free(struct rnode_job *j)
{
    for (size_t i = 0; i < j->n_entries; i++)
        free(j->entries[i].data);
    free(j->entries);
    free(j->snap_data);
    free(j);
}

static int rnode_store_entries(struct raftlog *log, const struct rnode_job *j)
{
    int rc = 0;
    if (j->entries[0].index <= raftlog_last_index(log))
        rc = raftlog_truncate(log, j->entries[0].index);
    if (rc == 0)
        rc = raftlog_append(log, j->entries, j->n_entries);
    return rc;
}

/* Writes one job; entries are made durable by the batch's one sync. */
static int rnode_store_job(struct raftlog *log, const struct rnode_job *j)
{
    int rc = 0;
    if (j->has_snap && !j->local_snapshot)
        rc = raftlog_snapshot_install(log, &j->snap, j->snap_data, j->snap_len);
    if (rc == 0 && j->n_entries)
        rc = rnode_store_entries(log, j);
    if (rc == 0 && j->hs_changed)
        rc = raftlog_hard_state_save(log, &j->hs);
    if (rc == 0 && j->local_snapshot) {
        rc = raftlog_sync(log);   /* the snapshot's index must be durable */
        if (rc == 0)
            rc = raftlog_snapshot_save(log, &j->snap, j->snap_data, j->snap_len);
        if (rc == 0)
            rc = raftlog_compact(log, j->snap.index);
    }
    return rc;
}

/*
 * Group commit: the storage thread takes every job queued so far, writes
 * them in order and makes them durable with one fdatasync.
 */
static int rnode_store_work(void *arg)
{
    struct rnode_batch *b = arg;
    struct raftlog *log = b->rn->log;
    uint64_t t0 = ev_clock_us();
    int rc = 0;
    for (struct rnode_job *j = b->jobs; j && rc == 0; j = j->next)
        rc = rnode_store_job(log, j);
    if (rc == 0)
        rc = raftlog_sync(log);
    b->took_us = ev_clock_us() - t0;
    return rc;
}

static void rnode_stop(struct rnode *rn, int err)
{
    if (rn->stopped)
        return;
    rn->stopped = true;
    log_error("raft: storage failed: %s; this master stops", dfs_strerror(err));
    if (rn->cbs->fatal)
        rn->cbs->fatal(rn->ctx, err);
}

static void rnode_flush(struct rnode *rn);

static void rnode_store_done(void *arg, int status)
{
    struct rnode_batch *b = arg;
    struct rnode *rn = b->rn;
    uint64_t seq = 0, last = 0;
    rn->sync_us = rn->sync_us == UINT64_MAX ? b->took_us
                                            : (7 * rn->sync_us + b->took_us) / 8;
    while (b->jobs) {
        struct rnode_job *j = b->jobs;
        b->jobs = j->next;
        if (j->seq)
            seq = j->seq;
        if (j->n_entries)
            last = j->entries[j->n_entries - 1].index;
        rnode_job_free(j);
    }
    free(b);
    rn->flushing = false;
    if (status < 0) {
        rnode_stop(rn, status);
        return;
    }
    if (rn->stopped)
        return;
    if (last)
        rn->durable_index = last;
    if (seq) {
        raft_persisted(rn->raft, seq);
        rnode_process(rn);
    }
    rnode_flush(rn);
}

static int rnode_copy_entries(struct rnode_job *j, const struct raft_entry *e,
                              size_t n)
{
    j->entries = calloc(n, sizeof(*e));
    if (!j->entries)
        return -ENOMEM;
    j->n_entries = n;
    for (size_t i = 0; i < n; i++) {
        j->entries[i] = e[i];
        j->entries[i].data = NULL;
        if (!e[i].len)
            continue;
        j->entries[i].data = malloc(e[i].len);
        if (!j->entries[i].data)
            return -ENOMEM;
        memcpy(j->entries[i].data, e[i].data, e[i].len);
    }
    return 0;
}

static int rnode_copy_snapshot(struct rnode_job *j,
                               const struct raft_snapshot_meta *meta,
                               const void *data, size_t len)
{
    j->has_snap = true;
    j->snap = *meta;
    j->snap_len = len;
    j->snap_data = malloc(len ? len : 1);
    if (!j->snap_data)
        return -ENOMEM;
    memcpy(j->snap_data, data, len);
    return 0;
}

/*
 * Whether the queued jobs are written on the loop thread instead (docs/
 * RAFT.md): a follower's always, a leader's when they are few and syncs
 * are fast; a snapshot (megabytes) never.  A follower's loop has nothing
 * to do while its log syncs but take the leader's next appends, which
 * wait in the socket and make the next batch, and the thread's two
 * wakeups per batch lay on every commit's path.  A leader's loop serves
 * clients meanwhile: under load (many entries a batch) or on a slow disk
 * it hands the batch over and goes on; a lone client's entry on fast
 * storage is written sooner than the thread would wake.
 */
static bool rnode_inline(const struct rnode *rn)
{
    size_t entries = 0;
    for (const struct rnode_job *j = rn->queue; j; j = j->next) {
        if (j->has_snap)
            return false;
        entries += j->n_entries;
    }
    enum raft_state st = raft_state(rn->raft);
    if (st == RAFT_FOLLOWER)
        return true;
    return st == RAFT_LEADER && entries <= RNODE_INLINE_ENTRIES &&
           rn->sync_us <= RNODE_INLINE_SYNC_US;
}

/* Completes a batch written inline during the Ready just advanced: the
 * core hears of its persistence only after raft_advance(). */
static void rnode_inline_finish(struct rnode *rn)
{
    struct rnode_batch *b = rn->inline_done;
    if (!b)
        return;
    rn->inline_done = NULL;
    rnode_store_done(b, rn->inline_status);
}

/* Hands every queued job to the storage thread (or writes it inline),
 * unless a batch is on it. */
static void rnode_flush(struct rnode *rn)
{
    if (rn->flushing || !rn->queue || rn->stopped)
        return;
    struct rnode_batch *b = calloc(1, sizeof(*b));
    if (!b) {
        rnode_stop(rn, -ENOMEM);
        return;
    }
    b->rn = rn;
    bool inline_ = rnode_inline(rn);
    b->jobs = rn->queue;
    rn->queue = NULL;
    rn->queue_tail = &rn->queue;
    rn->flushing = true;
    if (inline_) {
        rn->inline_status = rnode_store_work(b);
        rn->inline_done = b;
        if (!rn->in_process)
            rnode_inline_finish(rn);
        return;
    }
    if (tpool_submit(rn->store, rnode_store_work, rnode_store_done, b) < 0) {
        rn->flushing = false;
        rnode_store_done(b, -ENOMEM);
    }
}

static int rnode_submit(struct rnode *rn, struct rnode_job *j)
{
    *rn->queue_tail = j;
    rn->queue_tail = &j->next;
    rnode_flush(rn);
    return 0;
}

/* Queues a Ready's durable part for the storage thread. */
static int rnode_persist(struct rnode *rn, const struct raft_ready *rd)
{
    struct rnode_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->rn = rn;
    j->seq = rd->seq;
    j->hs_changed = rd->hs_changed;
    j->hs = (struct raftlog_hard_state){ .term = rd->term, .vote = rd->vote };
    int rc = 0;
    if (rd->snap)
        rc = rnode_copy_snapshot(j, rd->snap, rd->snap_data, rd->snap_len);
    if (rc == 0 && rd->n_entries)
        rc = rnode_copy_entries(j, rd->entries, rd->n_entries);
    if (rc < 0) {
        rnode_job_free(j);
        return rc;
    }
    return rnode_submit(rn, j);
}

/* ---- peers --------------------------------------------------------------- */

static void rnode_peer_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    struct rnode_peer *p = rpc_ctx(c);
    rnode_receive(p->rn, f);
}

static void rnode_peer_closed(struct rpc_conn *c, int err)
{
    struct rnode_peer *p = rpc_ctx(c);
    if (err && err != -ECONNREFUSED && !p->removed)
        log_info("raft: connection to master %llu (%s:%u) closed: %s",
                 (unsigned long long)p->id, p->host, p->port, dfs_strerror(err));
    /* A connection dropped by an address change may close after its
     * successor was dialled. */
    if (p->conn != c) {
        p->closing--;
        return;
    }
    p->conn = NULL;
    p->next_try_ms = ev_now_ms(p->rn->loop) + RNODE_RECONNECT_MS;
}

static const struct rpc_cbs rnode_peer_cbs = {
    .on_frame = rnode_peer_frame,
    .on_close = rnode_peer_closed,
};

static struct rnode_peer *rnode_peer(struct rnode *rn, uint64_t id)
{
    for (size_t i = 0; i < rn->n_peers; i++) {
        if (rn->peers[i]->id == id && !rn->peers[i]->removed)
            return rn->peers[i];
    }
    return NULL;
}

static void rnode_peer_dial(struct rnode *rn, struct rnode_peer *p)
{
    if (p->conn || p->removed || ev_now_ms(rn->loop) < p->next_try_ms)
        return;
    int rc = rpc_connect(rn->loop, p->host, p->port, rn->cfg.key,
                         &rnode_peer_cbs, p, 0, NULL, &p->conn);
    if (rc < 0) {
        p->conn = NULL;
        p->next_try_ms = ev_now_ms(rn->loop) + RNODE_RECONNECT_MS;
    }
}

static void rnode_send(struct rnode *rn, const struct raft_msg *m)
{
    struct rnode_peer *p = rnode_peer(rn, m->to);
    if (!p) {
        log_warn("raft: no address for master %llu", (unsigned long long)m->to);
        return;
    }
    rnode_peer_dial(rn, p);
    if (!p->conn || !rpc_is_ready(p->conn) || !net_conn_writable(rpc_net(p->conn)))
        return;
    struct wire_writer w;
    wire_writer_init(&w);
    if (raftwire_encode(&w, m) == 0)
        rpc_send_frames(p->conn, &w);
    wire_writer_release(&w);
}

void rnode_receive(struct rnode *rn, const struct wire_frame *f)
{
    if (rn->stopped)
        return;
    struct raft_msg m;
    struct raft_entry *entries;
    int rc = raftwire_decode(f->hdr.type, f->payload, f->hdr.payload_len, &m,
                             &entries);
    if (rc < 0) {
        log_warn("raft: dropping malformed message type 0x%04x: %s",
                 f->hdr.type, dfs_strerror(rc));
        return;
    }
    struct rnode_peer *p = rnode_peer(rn, m.from);
    if (p) {
        p->heard_ms = ev_now_ms(rn->loop);
        if (m.type == RAFT_MSG_APPEND_RESP && !m.u.append_resp.reject &&
            m.u.append_resp.index > p->match)
            p->match = m.u.append_resp.index;
    }
    rc = raft_step(rn->raft, &m);
    free(entries);
    if (rc < 0 && rc != -ENOMEM)
        log_warn("raft: %s from master %llu refused: %s",
                 raft_msg_type_name(m.type), (unsigned long long)m.from,
                 dfs_strerror(rc));
    /* At the end of this loop iteration: the messages read with this one
     * make one Ready, and so one log write and sync. */
    rnode_process_soon(rn);
}

/* ---- the Ready loop ------------------------------------------------------ */

static void rnode_apply(struct rnode *rn, const struct raft_ready *rd)
{
    if (rd->snap) {
        int rc = rn->cbs->restore(rn->ctx, rd->snap_data, rd->snap_len);
        if (rc < 0) {
            rnode_stop(rn, rc);
            return;
        }
        rn->last_snapshot = rd->snap->index;
    }
    for (size_t i = 0; i < rd->n_committed; i++) {
        if (rd->committed[i].type == RAFT_ENTRY_NORMAL)
            rn->cbs->apply(rn->ctx, &rd->committed[i]);
    }
}

static void rnode_serve_reads(struct rnode *rn)
{
    uint64_t applied = raft_applied(rn->raft);
    size_t keep = 0;
    for (size_t i = 0; i < rn->n_reads; i++) {
        if (rn->reads[i].index <= applied)
            rn->cbs->read_ready(rn->ctx, rn->reads[i].ctx, 0);
        else
            rn->reads[keep++] = rn->reads[i];
    }
    rn->n_reads = keep;
}

static void rnode_queue_reads(struct rnode *rn, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_reads; i++) {
        const struct raft_read *r = &rd->reads[i];
        if (r->status < 0) {
            rn->cbs->read_ready(rn->ctx, r->ctx, r->status);
            continue;
        }
        if (rn->n_reads == rn->cap_reads) {
            size_t cap = rn->cap_reads ? 2 * rn->cap_reads : 16;
            struct rnode_read *n = realloc(rn->reads, cap * sizeof(*n));
            if (!n) {
                rn->cbs->read_ready(rn->ctx, r->ctx, -ENOMEM);
                continue;
            }
            rn->reads = n;
            rn->cap_reads = cap;
        }
        rn->reads[rn->n_reads++] = (struct rnode_read){ r->ctx, r->index };
    }
}

static void rnode_soft_state(struct rnode *rn, const struct raft_ready *rd)
{
    static const char *const names[] = { "?", "follower", "pre-candidate",
                                         "candidate", "leader" };
    rn->leader_changes++;
    log_info("raft: master %llu is %s in term %llu, leader %llu",
             (unsigned long long)rn->cfg.id, names[rd->state],
             (unsigned long long)rd->term, (unsigned long long)rd->leader);
    if (rn->cbs->role_changed)
        rn->cbs->role_changed(rn->ctx, rd->state, rd->leader, rd->term);
}

/* Snapshots the state machine when enough has been applied since. */
static void rnode_maybe_snapshot(struct rnode *rn)
{
    uint64_t applied = raft_applied(rn->raft);
    if (!rn->cfg.snapshot_every || !rn->cbs->snapshot ||
        applied < rn->last_snapshot + rn->cfg.snapshot_every)
        return;
    struct rnode_job *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->rn = rn;
    j->local_snapshot = j->has_snap = true;
    int rc = rn->cbs->snapshot(rn->ctx, &j->snap_data, &j->snap_len);
    if (rc == 0)
        rc = raft_compact(rn->raft, applied, j->snap_data, j->snap_len, &j->snap);
    if (rc < 0) {
        log_warn("raft: snapshot at %llu failed: %s",
                 (unsigned long long)applied, dfs_strerror(rc));
        rnode_job_free(j);
        return;
    }
    rn->last_snapshot = applied;
    rnode_submit(rn, j);
}

/*
 * Ticks the core for all the time that passed since its last tick: the
 * tick timer fires late after a stopped process (SIGSTOP) or a long apply,
 * and the core's time, on which its read lease rests, must not lag the
 * clock.  Bounded: past a few election timeouts more ticks change nothing.
 */
static void rnode_catch_up(struct rnode *rn)
{
    uint64_t now = ev_now_ms(rn->loop);
    if (now <= rn->ticked_ms)
        return;
    uint64_t n = (now - rn->ticked_ms) / rn->cfg.tick_ms;
    rn->ticked_ms += n * rn->cfg.tick_ms;
    if (n > 4 * (uint64_t)rn->cfg.election_ticks + 4)
        n = 4 * (uint64_t)rn->cfg.election_ticks + 4;
    while (n--)
        raft_tick(rn->raft);
}

static void rnode_process(struct rnode *rn)
{
    if (rn->in_process || rn->stopped)
        return;
    rnode_catch_up(rn);
    rn->in_process = true;
    struct raft_ready rd;
    while (!rn->stopped && raft_ready(rn->raft, &rd)) {
        for (size_t i = 0; i < rd.n_msgs; i++)
            rnode_send(rn, &rd.msgs[i]);
        if (rd.seq && rnode_persist(rn, &rd) < 0) {
            raft_advance(rn->raft);
            rnode_stop(rn, -ENOMEM);
            break;
        }
        rnode_apply(rn, &rd);
        rnode_queue_reads(rn, &rd);
        if (rd.soft_changed)
            rnode_soft_state(rn, &rd);
        raft_advance(rn->raft);
        rnode_inline_finish(rn);
        rnode_serve_reads(rn);
    }
    rnode_inline_finish(rn);
    if (!rn->stopped)
        rnode_maybe_snapshot(rn);
    rn->in_process = false;
}

static int64_t rnode_tick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct rnode *rn = arg;
    if (rn->stopped)
        return EV_TIMER_STOP;
    rnode_process(rn);              /* its catch-up ticks */
    for (size_t i = 0; i < rn->n_peers; i++)
        rnode_peer_dial(rn, rn->peers[i]);
    return (int64_t)rn->cfg.tick_ms;
}

/* ---- open / close -------------------------------------------------------- */

struct rnode_recovered {
    struct raft_entry *entries;
    size_t n, cap;
};

static int rnode_collect(const struct raft_entry *e, void *arg)
{
    struct rnode_recovered *rec = arg;
    if (rec->n == rec->cap) {
        size_t cap = rec->cap ? 2 * rec->cap : 256;
        struct raft_entry *n = realloc(rec->entries, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        rec->entries = n;
        rec->cap = cap;
    }
    struct raft_entry *copy = &rec->entries[rec->n];
    *copy = *e;
    copy->data = NULL;
    if (e->len) {
        copy->data = malloc(e->len);
        if (!copy->data)
            return -ENOMEM;
        memcpy(copy->data, e->data, e->len);
    }
    rec->n++;
    return 0;
}

static void rnode_recovered_release(struct rnode_recovered *rec)
{
    for (size_t i = 0; i < rec->n; i++)
        free(rec->entries[i].data);
    free(rec->entries);
}

static int rnode_set_peers(struct rnode *rn, const struct rnode_config *cfg,
                           char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_peers; i++) {
        int rc = rnode_set_peer(rn, cfg->peers[i].id, cfg->peers[i].addr);
        if (rc == -EINVAL)
            snprintf(errbuf, errlen, "master %llu: bad address \"%s\"",
                     (unsigned long long)cfg->peers[i].id, cfg->peers[i].addr);
        if (rc < 0)
            return rc;
    }
    rn->cfg.peers = NULL;   /* borrowed for open only */
    return 0;
}

/* Recovers the log and the state machine, then builds the core. */
static int rnode_recover(struct rnode *rn, struct fsio *fs, char *errbuf,
                         size_t errlen)
{
    struct rnode_recovered rec = { 0 };
    struct raftlog_recovery info;
    void *snap_data = NULL;
    size_t snap_len = 0;
    int rc = raftlog_open(fs, rn->cfg.dir, NULL, rnode_collect, &rec, &info,
                          &rn->log);
    if (rc < 0) {
        snprintf(errbuf, errlen, "raft log %s: %s", rn->cfg.dir,
                 info.error[0] ? info.error : dfs_strerror(rc));
        goto out;
    }
    if (info.torn_bytes)
        log_warn("raft: %s: cut a torn tail of %llu bytes", rn->cfg.dir,
                 (unsigned long long)info.torn_bytes);
    if (info.has_snapshot) {
        rc = raftlog_snapshot_load(rn->log, NULL, &snap_data, &snap_len);
        if (rc == 0)
            rc = rn->cbs->restore(rn->ctx, snap_data, snap_len);
        if (rc < 0) {
            snprintf(errbuf, errlen, "snapshot in %s: %s", rn->cfg.dir,
                     dfs_strerror(rc));
            goto out;
        }
        rn->last_snapshot = info.snap.index;
    }
    struct raft_restore rs = {
        .term = info.hs.term, .vote = info.hs.vote,
        .snap = info.has_snapshot ? &info.snap : NULL,
        .snap_data = snap_data, .snap_len = snap_len,
        .entries = rec.entries, .n_entries = rec.n,
    };
    struct raft_config rc_cfg = {
        .id = rn->cfg.id,
        .election_ticks = rn->cfg.election_ticks,
        .heartbeat_ticks = rn->cfg.heartbeat_ticks,
        .seed = rn->cfg.seed,
        .max_msg_bytes = 1u << 20,
        .max_inflight = 16,
        .snapshot_chunk_bytes = 1u << 20,
        .compact_trailing = 1024,
        .read_lease = true,
    };
    rc = raft_new(&rc_cfg, &rs, &rn->raft);
    if (rc < 0)
        snprintf(errbuf, errlen, "raft: cannot start from %s: %s", rn->cfg.dir,
                 dfs_strerror(rc));
    rn->durable_index = info.last_index;
out:
    free(snap_data);
    rnode_recovered_release(&rec);
    return rc;
}

int rnode_open(struct ev_loop *loop, struct fsio *fs,
               const struct rnode_config *cfg, const struct rnode_cbs *cbs,
               void *ctx, struct rnode **out, char *errbuf, size_t errlen)
{
    struct rnode *rn = calloc(1, sizeof(*rn));
    if (!rn)
        return -ENOMEM;
    rn->loop = loop;
    rn->sync_us = UINT64_MAX;
    rn->cbs = cbs;
    rn->ctx = ctx;
    rn->cfg = *cfg;
    rn->queue_tail = &rn->queue;
    int rc = rnode_set_peers(rn, cfg, errbuf, errlen);
    if (rc == 0)
        rc = rnode_recover(rn, fs, errbuf, errlen);
    if (rc < 0)
        goto err_after_alloc;
    rn->store = tpool_new(loop, 1, "raftlog");
    if (!rn->store) {
        rc = -ENOMEM;
        goto err_after_alloc;
    }
    rn->ticked_ms = ev_now_ms(loop);
    rn->tick_timer = ev_timer_add(loop, cfg->tick_ms, rnode_tick, rn);
    *out = rn;
    return 0;

err_after_alloc:
    rnode_close(rn);
    return rc;
}

void rnode_close(struct rnode *rn)
{
    if (!rn)
        return;
    rn->stopped = true;
    if (rn->tick_timer)
        ev_timer_cancel(rn->loop, rn->tick_timer);
    if (rn->process_timer)
        ev_timer_cancel(rn->loop, rn->process_timer);
    tpool_free(rn->store);   /* finishes the batch on the thread */
    while (rn->queue) {
        struct rnode_job *j = rn->queue;
        rn->queue = j->next;
        rnode_job_free(j);
    }
    /* Abort (not a graceful close, which may linger for seconds) and
     * run the loop until every peer connection has reported its close:
     * rnode_peer_closed writes into the peers array. */
    for (size_t i = 0; i < rn->n_peers; i++) {
        if (rn->peers[i]->conn)
            net_conn_abort(rpc_net(rn->peers[i]->conn));
    }
    for (bool open = true; open;) {
        open = false;
        for (size_t k = 0; k < rn->n_peers; k++)
            open |= rn->peers[k]->conn != NULL || rn->peers[k]->closing;
        if (open)
            ev_run_once(rn->loop, 10);
    }
    raftlog_close(rn->log);
    raft_free(rn->raft);
    for (size_t i = 0; i < rn->n_peers; i++)
        free(rn->peers[i]);
    free(rn->peers);
    free(rn->reads);
    free(rn);
}

int rnode_bootstrap(struct rnode *rn, const uint64_t *ids, size_t n)
{
    struct raft_members m = { 0 };
    if (n == 0 || n > RAFT_MAX_SERVERS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        m.servers[m.n++] = (struct raft_server){ .id = ids[i], .role = RAFT_VOTER };
    int rc = raft_bootstrap(rn->raft, &m);
    if (rc == 0)
        rnode_process(rn);
    return rc;
}

bool rnode_has_state(const struct rnode *rn)
{
    return raft_last_index(rn->raft) > 0 || raft_term(rn->raft) > 0;
}

static int64_t rnode_deferred(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct rnode *rn = arg;
    rn->process_timer = 0;
    rnode_process(rn);
    return EV_TIMER_STOP;
}

/*
 * Proposals and reads arrive one client request at a time, many in one
 * loop iteration: processed at once, each would cost its own log write
 * and its own AppendEntries (or heartbeat round) to every peer.  Deferred
 * to the next iteration (a timer of delay 0), they go out together.
 */
static void rnode_process_soon(struct rnode *rn)
{
    if (!rn->process_timer)
        rn->process_timer = ev_timer_add(rn->loop, 0, rnode_deferred, rn);
    if (!rn->process_timer)
        rnode_process(rn);
}

int rnode_propose(struct rnode *rn, const void *data, size_t len,
                  uint64_t *index, uint64_t *term)
{
    if (rn->stopped)
        return -EIO;
    int rc = raft_propose(rn->raft, data, len, index);
    if (rc == 0) {
        *term = raft_term(rn->raft);
        rnode_process_soon(rn);
    }
    return rc;
}

int rnode_read(struct rnode *rn, uint64_t read_ctx)
{
    if (rn->stopped)
        return -EIO;
    int rc = raft_read_index(rn->raft, read_ctx);
    if (rc == 0)
        rnode_process_soon(rn);
    return rc;
}

int rnode_transfer(struct rnode *rn, uint64_t to)
{
    int rc = raft_transfer(rn->raft, to);
    if (rc == 0)
        rnode_process(rn);
    return rc;
}

void rnode_status(const struct rnode *rn, struct rnode_status *st)
{
    *st = (struct rnode_status){
        .state = raft_state(rn->raft),
        .id = raft_id(rn->raft),
        .leader = raft_leader(rn->raft),
        .term = raft_term(rn->raft),
        .commit = raft_commit(rn->raft),
        .applied = raft_applied(rn->raft),
        .last_index = raft_last_index(rn->raft),
        .snapshot_index = raft_snapshot_index(rn->raft),
        .durable_index = rn->durable_index,
        .leader_changes = rn->leader_changes,
        .members_index = raft_members_index(rn->raft),
    };
}

const struct raft_members *rnode_members(const struct rnode *rn)
{
    return raft_members(rn->raft);
}

int rnode_peer_info(const struct rnode *rn, uint64_t id, int64_t *contact_age_ms,
                    uint64_t *match)
{
    for (size_t i = 0; i < rn->n_peers; i++) {
        const struct rnode_peer *p = rn->peers[i];
        if (p->id != id || p->removed)
            continue;
        *contact_age_ms = p->heard_ms ? (int64_t)(ev_now_ms(rn->loop) - p->heard_ms) : -1;
        *match = p->match;
        return 0;
    }
    return -ENOENT;
}

/* ---- membership ------------------------------------------------------------- */

static struct rnode_peer *rnode_peer_any(struct rnode *rn, uint64_t id)
{
    for (size_t i = 0; i < rn->n_peers; i++) {
        if (rn->peers[i]->id == id)
            return rn->peers[i];
    }
    return NULL;
}

/* Drops p's connection now; its close callback finds p->conn changed. */
static void rnode_peer_hangup(struct rnode_peer *p)
{
    if (!p->conn)
        return;
    net_conn_abort(rpc_net(p->conn));
    p->conn = NULL;
    p->closing++;
    p->next_try_ms = 0;
}

int rnode_set_peer(struct rnode *rn, uint64_t id, const char *addr)
{
    char host[NET_HOST_MAX];
    uint16_t port;
    if (id == 0 || id == rn->cfg.id || net_parse_addr(addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    struct rnode_peer *p = rnode_peer_any(rn, id);
    if (p && !p->removed && p->port == port && !strcmp(p->host, host))
        return 0;
    if (!p) {
        if (rn->n_peers == rn->cap_peers) {
            size_t cap = rn->cap_peers ? 2 * rn->cap_peers : 8;
            struct rnode_peer **v = realloc(rn->peers, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            rn->peers = v;
            rn->cap_peers = cap;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
            return -ENOMEM;
        p->id = id;
        p->rn = rn;
        rn->peers[rn->n_peers++] = p;
    } else {
        rnode_peer_hangup(p);
        log_info("raft: master %llu is now at %s", (unsigned long long)id, addr);
    }
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->port = port;
    p->removed = false;
    return 0;
}

void rnode_drop_peer(struct rnode *rn, uint64_t id)
{
    struct rnode_peer *p = rnode_peer_any(rn, id);
    if (!p || p->removed)
        return;
    p->removed = true;
    rnode_peer_hangup(p);
}

/* Where a configuration change lands, for the caller to watch it commit. */
static int rnode_changed(struct rnode *rn, int rc, uint64_t index,
                         uint64_t *out_index, uint64_t *term)
{
    if (rc < 0)
        return rc;
    *out_index = index;
    *term = raft_term(rn->raft);
    rnode_process(rn);
    return 0;
}

int rnode_add_learner(struct rnode *rn, uint64_t id, uint64_t *index,
                      uint64_t *term)
{
    uint64_t at = 0;
    int rc = rn->stopped ? -EIO : raft_add_learner(rn->raft, id, &at);
    return rnode_changed(rn, rc, at, index, term);
}

int rnode_promote(struct rnode *rn, uint64_t id, uint64_t *index, uint64_t *term)
{
    uint64_t at = 0;
    int rc = rn->stopped ? -EIO : raft_promote(rn->raft, id, &at);
    return rnode_changed(rn, rc, at, index, term);
}

int rnode_remove(struct rnode *rn, uint64_t id, uint64_t *index, uint64_t *term)
{
    uint64_t at = 0;
    int rc = rn->stopped ? -EIO : raft_remove(rn->raft, id, &at);
    return rnode_changed(rn, rc, at, index, term);
}

uint64_t rnode_term_at(const struct rnode *rn, uint64_t index)
{
    return raft_term_at(rn->raft, index);
}
