/*
 * raft: the consensus core (Raft paper, Ongaro's thesis; etcd's Ready shape).
 *
 * Owns: the hard state (term, vote), the in-memory log (raftlogmem), the
 * latest snapshot's bytes, the configuration in force, the role and its
 * timers, the leader's per-follower progress, pending ReadIndex requests,
 * an incoming snapshot being reassembled, and the outbox.
 *
 * States and what moves between them:
 *   FOLLOWER -> PRECANDIDATE   election timeout (tick_election), voters only
 *   PRECANDIDATE -> CANDIDATE  a quorum of pre-votes (tally)
 *   FOLLOWER -> CANDIDATE      TimeoutNow from a leader handing over
 *   CANDIDATE -> LEADER        a quorum of votes, own vote durable (tally)
 *   any -> FOLLOWER            a higher term, a leader of this term,
 *                              check-quorum failure, or the leader's own
 *                              removal committing (become_follower)
 *
 * Invariants:
 *  1. A message resting on unpersisted state (vote requests and grants,
 *     entry and snapshot acks) stays in `held` until raft_persisted()
 *     covers every Ready handed out before it was produced (need_seq).
 *  2. The leader counts itself in a quorum only up to persisted_index, the
 *     highest index known durable and still matching the in-memory log.
 *  3. commit only grows, never past last_index, and a leader moves it only
 *     to an entry of its own term counted on a quorum of voters (5.4.2).
 *  4. Entries up to commit are never truncated: an append whose prev_index
 *     is below commit is answered with commit before any entry is looked
 *     at, so every entry compared lies past commit.
 *  5. members is the configuration of the latest config entry in the log
 *     (or the snapshot's): it takes effect when appended and is rolled back
 *     when that entry is truncated.  A leader appends a new one only after
 *     the previous one and an entry of its own term have committed.
 *  6. The outbox holds log positions, not entry pointers: raft_ready() turns
 *     them into pointers into the log, dropping a message whose entries
 *     were truncated or compacted since it was produced.
 *  7. Nothing handed out by raft_ready() changes until raft_advance():
 *     every mutating call made in between (in_ready) fails with -EBUSY,
 *     so a caller that proposes from its apply callback is refused, not
 *     handed pointers into a log that moved.
 */
#include "master/raft.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "master/raftalloc.h"
#include "master/raftlogmem.h"
#include "master/raftprog.h"
#include "master/raftrand.h"
#include "master/raftsnap.h"

/* Bytes an entry costs in an AppendEntries beyond its data (index, term,
 * type, length), so that many empty entries still make bounded messages. */
#define ENTRY_OVERHEAD 24
/* Readys handed out and not yet persisted before the core stops handing
 * out more: back-pressure on a storage thread that cannot keep up. */
#define MAX_HANDOUTS 64
#define LEASE_RING 64                  /* heartbeat rounds remembered */

struct outmsg {
    struct raft_msg m;         /* entries / chunk data filled in at ready */
    uint64_t last_term;        /* append: term of its last entry */
    uint64_t need_seq;         /* held until persisted_seq >= need_seq */
};

struct pending_read {
    uint64_t ctx;
    uint64_t index;
    uint64_t seq;              /* heartbeat round confirming it; 0: not started */
};

struct handout {
    uint64_t seq;
    uint64_t last;             /* last entry durable once seq is */
};

struct raft {
    struct raft_config cfg;
    struct raftrand rng;

    /* durable state (in memory; raftlog keeps the disk copy) */
    uint64_t term;
    uint64_t vote;
    struct raftlogmem log;
    struct raftsnap *snap;             /* latest snapshot (a reference) or NULL */

    struct raft_members members;       /* in force */
    uint64_t members_index;            /* its entry (or the snapshot) */

    enum raft_state state;
    uint64_t leader;
    uint64_t commit;
    uint64_t applied;                  /* handed out to apply */
    unsigned election_elapsed;
    unsigned heartbeat_elapsed;
    unsigned timeout;                  /* randomised election timeout */

    /* candidate */
    uint64_t voter_ids[RAFT_MAX_SERVERS];
    bool voter_granted[RAFT_MAX_SERVERS];
    unsigned n_votes;
    uint64_t self_vote_seq;            /* own vote counts once persisted */

    /* leader */
    struct raftprog prs[RAFT_MAX_SERVERS];
    unsigned n_prs;
    uint64_t term_start;               /* index of this term's no-op */
    bool bcast;                        /* entries appended since last flush */
    uint64_t transferee;
    unsigned transfer_elapsed;
    bool timeout_sent;
    uint64_t read_seq;
    uint64_t ticks;                    /* ticks since start, in any role */
    uint64_t round_tick[LEASE_RING];   /* when round seq was sent: [seq % ring] */
    bool lease_off;                    /* a TimeoutNow went out this term */
    bool fresh;                        /* started, no leader heard yet */
    struct pending_read *reads;
    size_t n_reads, cap_reads;

    /* follower: a snapshot arriving in chunks (a reference) or NULL */
    struct raftsnap *in;
    bool install_pending;              /* snap received, not yet handed out */

    /* persistence tracking */
    bool hs_dirty;
    uint64_t unstable;                 /* first index not yet handed out */
    uint64_t handed_seq;
    uint64_t persisted_seq;
    uint64_t persisted_index;
    struct handout ho[MAX_HANDOUTS];   /* ring, oldest first */
    unsigned ho_head, ho_count;

    /* output */
    struct outmsg *out;
    size_t n_out, cap_out;
    struct outmsg *held;
    size_t n_held, cap_held;
    struct raft_msg *rd_msgs;          /* materialised at ready */
    size_t cap_rd_msgs;
    struct raft_read *done;            /* read results to hand out */
    size_t n_done, cap_done;
    enum raft_state rep_state;         /* soft state last reported */
    uint64_t rep_leader;

    /* between raft_ready() and raft_advance() */
    bool in_ready;
    struct raft_ready rd;
};

static void become_follower(struct raft *r, uint64_t term, uint64_t leader);
static void send_append(struct raft *r, struct raftprog *pr, bool empty_ok);
static void maybe_commit(struct raft *r);
static void release_reads(struct raft *r);

/* ---- small helpers ----------------------------------------------------- */

static bool bug(const struct raft *r, enum raft_test_bug b)
{
    return r->cfg.test_bug == (unsigned)b;
}

/* Grows an array to hold `need` elements; NULL (old array intact) on ENOMEM. */
static void *grow_array(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t cap2 = *cap ? *cap * 2 : 8;
    while (cap2 < need)
        cap2 *= 2;
    void *q = raftalloc_realloc(p, cap2 * elem);
    if (q)
        *cap = cap2;
    return q;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t last_index(const struct raft *r)
{
    return raftlogmem_last(&r->log);
}

static uint64_t last_term(const struct raft *r)
{
    return raftlogmem_last_term(&r->log);
}

static uint64_t term_at(const struct raft *r, uint64_t index)
{
    return raftlogmem_term(&r->log, index);
}

static uint64_t snap_index(const struct raft *r)
{
    return r->snap ? r->snap->meta.index : 0;
}

static void randomize_timeout(struct raft *r)
{
    r->timeout = r->cfg.election_ticks +
                 (unsigned)raftrand_below(&r->rng, r->cfg.election_ticks);
}

/* ---- configuration ----------------------------------------------------- */

static bool is_voter(const struct raft *r, uint64_t id)
{
    const struct raft_server *s = raft_members_find(&r->members, id);
    return s && s->role == RAFT_VOTER;
}

static unsigned quorum(const struct raft *r)
{
    return raft_members_voters(&r->members) / 2 + 1;
}

static struct raftprog *progress_of(struct raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static void progress_drop_all(struct raft *r)
{
    for (unsigned i = 0; i < r->n_prs; i++)
        raftprog_release(&r->prs[i]);
    r->n_prs = 0;
}

/* The leader's progress array follows the configuration: new members start
 * probing from the end of the log, removed ones are forgotten. */
static void sync_progress(struct raft *r)
{
    struct raftprog old[RAFT_MAX_SERVERS];
    unsigned n_old = r->n_prs;
    memcpy(old, r->prs, sizeof(old[0]) * n_old);
    r->n_prs = 0;
    for (uint32_t i = 0; i < r->members.n; i++) {
        uint64_t id = r->members.servers[i].id;
        if (id == r->cfg.id)
            continue;
        struct raftprog *pr = &r->prs[r->n_prs++];
        unsigned j = 0;
        while (j < n_old && old[j].id != id)
            j++;
        if (j < n_old) {
            *pr = old[j];
            old[j].id = 0;
        } else {
            raftprog_init(pr, id, last_index(r) + 1);
        }
    }
    for (unsigned j = 0; j < n_old; j++)
        if (old[j].id)
            raftprog_release(&old[j]);
}

static void set_members(struct raft *r, const struct raft_members *m,
                        uint64_t index)
{
    r->members = *m;
    r->members_index = index;
    /* a lease rests on the quorum that acknowledged it: none until a
     * round of the new configuration is acknowledged */
    if (r->cfg.read_lease)
        r->read_seq += LEASE_RING;
    if (r->state != RAFT_LEADER)
        return;
    sync_progress(r);
    if (r->transferee && !is_voter(r, r->transferee))
        r->transferee = 0;
    /* A smaller quorum may already hold more entries or reads. */
    maybe_commit(r);
    release_reads(r);
}

/* The configuration as of `index` (> snapshot index): the last config
 * entry at or before it, else the snapshot's. */
static bool members_at(const struct raft *r, uint64_t index,
                       struct raft_members *m, uint64_t *at)
{
    for (uint64_t i = index; i > snap_index(r) && i > r->log.base; i--) {
        const struct raft_entry *e = raftlogmem_get(&r->log, i);
        if (e->type == RAFT_ENTRY_CONFIG &&
            raft_members_decode(e->data, e->len, m) == 0) {
            *at = i;
            return true;
        }
    }
    *at = snap_index(r);
    if (r->snap)
        *m = r->snap->meta.members;
    else
        memset(m, 0, sizeof(*m));
    return r->snap != NULL;
}

static void reload_members(struct raft *r)
{
    struct raft_members m;
    uint64_t at;
    members_at(r, last_index(r), &m, &at);
    set_members(r, &m, at);
}

/* ---- persistence bookkeeping -------------------------------------------- */

static bool dirty(const struct raft *r)
{
    return r->hs_dirty || r->unstable <= last_index(r) || r->install_pending;
}

/* The Ready whose persistence covers everything produced so far. */
static uint64_t need_seq(const struct raft *r)
{
    return dirty(r) ? r->handed_seq + 1 : r->handed_seq;
}

/* Entries from `from` on are being replaced: whatever storage holds of them
 * no longer matches the log. */
static void forget_durable_from(struct raft *r, uint64_t from)
{
    if (r->unstable > from)
        r->unstable = from;
    if (r->persisted_index >= from)
        r->persisted_index = from - 1;
    for (unsigned i = 0; i < r->ho_count; i++) {
        struct handout *h = &r->ho[(r->ho_head + i) % MAX_HANDOUTS];
        if (h->last >= from)
            h->last = from - 1;
    }
}

static bool depends_on_disk(const struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_VOTE:
        return !m->u.vote.pre;
    case RAFT_MSG_VOTE_RESP:
        return !m->u.vote_resp.pre && !bug(r, RAFT_BUG_VOTE_NO_PERSIST);
    case RAFT_MSG_APPEND_RESP:
        return !bug(r, RAFT_BUG_ACK_NO_PERSIST);
    case RAFT_MSG_SNAPSHOT_RESP:
        return m->u.snapshot_resp.done && !bug(r, RAFT_BUG_ACK_NO_PERSIST);
    default:
        return false;
    }
}

static int push_out(struct raft *r, const struct outmsg *om)
{
    void *p = grow_array(r->out, &r->cap_out, r->n_out + 1, sizeof(*r->out));
    if (!p)
        return -ENOMEM;
    r->out = p;
    /* Reserved now so that raft_ready() cannot fail. */
    p = grow_array(r->rd_msgs, &r->cap_rd_msgs, r->cap_out,
                   sizeof(*r->rd_msgs));
    if (!p)
        return -ENOMEM;
    r->rd_msgs = p;
    r->out[r->n_out++] = *om;
    return 0;
}

/* Queues a message; on ENOMEM it is lost, which Raft tolerates. */
static void emit(struct raft *r, const struct raft_msg *m, uint64_t last_term)
{
    struct outmsg om = { .m = *m, .last_term = last_term };
    om.m.from = r->cfg.id;
    if (!depends_on_disk(r, m) || need_seq(r) <= r->persisted_seq) {
        push_out(r, &om);
        return;
    }
    om.need_seq = need_seq(r);
    void *p = grow_array(r->held, &r->cap_held, r->n_held + 1,
                         sizeof(*r->held));
    if (!p)
        return;
    r->held = p;
    r->held[r->n_held++] = om;
}

static void release_held(struct raft *r)
{
    size_t kept = 0;
    for (size_t i = 0; i < r->n_held; i++) {
        if (r->held[i].need_seq > r->persisted_seq ||
            push_out(r, &r->held[i]) < 0)
            r->held[kept++] = r->held[i];
    }
    r->n_held = kept;
}

/* ---- role changes ------------------------------------------------------- */

static void fail_reads(struct raft *r)
{
    /* Room was reserved by raft_read_index(). */
    for (size_t i = 0; i < r->n_reads; i++)
        r->done[r->n_done++] = (struct raft_read){
            .ctx = r->reads[i].ctx, .status = -DFS_ENOTLEADER };
    r->n_reads = 0;
}

static void drop_incoming_snapshot(struct raft *r)
{
    raftsnap_unref(r->in);
    r->in = NULL;
}

/* What every role change shares: the term moves (forgetting the vote),
 * timers restart, leader-only and candidate-only state is dropped. */
static void reset(struct raft *r, uint64_t term)
{
    if (term != r->term) {
        r->term = term;
        if (!bug(r, RAFT_BUG_VOTE_NO_RESET))
            r->vote = 0;
        r->hs_dirty = true;
        drop_incoming_snapshot(r);
    }
    if (r->state == RAFT_LEADER)
        fail_reads(r);
    r->leader = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    randomize_timeout(r);
    r->transferee = 0;
    r->n_votes = 0;
    progress_drop_all(r);
    r->bcast = false;
}

static void become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
    reset(r, term);
    r->state = RAFT_FOLLOWER;
    r->leader = leader;
}

static void bcast_heartbeat(struct raft *r)
{
    r->round_tick[r->read_seq % LEASE_RING] = r->ticks;
    for (unsigned i = 0; i < r->n_prs; i++) {
        struct raftprog *pr = &r->prs[i];
        struct raft_msg m = {
            .type = RAFT_MSG_HEARTBEAT, .term = r->term, .to = pr->id,
            .u.heartbeat = { .commit = min_u64(pr->match, r->commit),
                             .seq = r->read_seq },
        };
        emit(r, &m, 0);
    }
}

static void become_leader(struct raft *r)
{
    reset(r, r->term);
    r->state = RAFT_LEADER;
    r->leader = r->cfg.id;
    r->lease_off = false;
    r->fresh = false;
    sync_progress(r);
    /* The no-op commits everything before it (5.4.2) and is the entry of
     * this term that ReadIndex and membership changes wait for. */
    if (raftlogmem_append(&r->log, r->term, RAFT_ENTRY_NOOP, NULL, 0) < 0) {
        become_follower(r, r->term, 0);
        return;
    }
    r->term_start = last_index(r);
    for (unsigned i = 0; i < r->n_prs; i++)
        send_append(r, &r->prs[i], false);
    maybe_commit(r);
}

static void record_vote(struct raft *r, uint64_t from, bool granted)
{
    for (unsigned i = 0; i < r->n_votes; i++)
        if (r->voter_ids[i] == from)
            return;
    if (r->n_votes == RAFT_MAX_SERVERS)
        return;
    r->voter_ids[r->n_votes] = from;
    r->voter_granted[r->n_votes] = granted;
    r->n_votes++;
}

static void campaign(struct raft *r, bool pre, bool transfer);

/* Counts the votes of this configuration's voters; our own counts once it
 * is durable (a pre-vote records nothing, so it counts at once). */
static void tally(struct raft *r)
{
    bool pre = r->state == RAFT_PRECANDIDATE;
    unsigned yes = 0, no = 0;
    /* A truncation may have rolled back the configuration that made us a
     * voter: then this election is not ours to win. */
    if (!is_voter(r, r->cfg.id)) {
        become_follower(r, r->term, 0);
        return;
    }
    for (uint32_t i = 0; i < r->members.n; i++) {
        const struct raft_server *s = &r->members.servers[i];
        if (s->role != RAFT_VOTER)
            continue;
        if (s->id == r->cfg.id) {
            yes += pre || r->persisted_seq >= r->self_vote_seq;
            continue;
        }
        for (unsigned j = 0; j < r->n_votes; j++) {
            if (r->voter_ids[j] != s->id)
                continue;
            yes += r->voter_granted[j];
            no += !r->voter_granted[j];
        }
    }
    if (yes >= quorum(r)) {
        if (pre)
            campaign(r, false, false);
        else
            become_leader(r);
    } else if (raft_members_voters(&r->members) - no < quorum(r)) {
        become_follower(r, r->term, 0);
    }
}

static void campaign(struct raft *r, bool pre, bool transfer)
{
    if (!is_voter(r, r->cfg.id))
        return;
    if (pre) {
        reset(r, r->term);
        r->state = RAFT_PRECANDIDATE;
    } else {
        reset(r, r->term + 1);
        r->state = RAFT_CANDIDATE;
        r->vote = r->cfg.id;
        r->hs_dirty = true;
        r->self_vote_seq = need_seq(r);
    }
    for (uint32_t i = 0; i < r->members.n; i++) {
        const struct raft_server *s = &r->members.servers[i];
        if (s->role != RAFT_VOTER || s->id == r->cfg.id)
            continue;
        struct raft_msg m = {
            .type = RAFT_MSG_VOTE, .term = pre ? r->term + 1 : r->term,
            .to = s->id,
            .u.vote = { .last_index = last_index(r), .last_term = last_term(r),
                        .pre = pre, .transfer = transfer },
        };
        emit(r, &m, 0);
    }
    tally(r);
}

/* ---- leader: replication ------------------------------------------------ */

/* Chunks go out in a window of max_inflight of them; the follower takes
 * them in order and reports a gap, upon which we resend from there. */
static void send_chunks(struct raft *r, struct raftprog *pr)
{
    uint64_t offset;
    uint32_t len;
    while (raftprog_next_chunk(pr, r->cfg.snapshot_chunk_bytes,
                               r->cfg.max_inflight, &offset, &len)) {
        struct raft_msg m = {
            .type = RAFT_MSG_SNAPSHOT, .term = r->term, .to = pr->id,
            .u.snapshot = { .meta = pr->sending->meta,
                            .total = pr->sending->len,
                            .offset = offset, .len = len },
        };
        emit(r, &m, 0);
    }
}

/* Last index of a batch starting at first: bounded by max_msg_bytes, but
 * never empty when there is an entry to send. */
static uint64_t batch_end(const struct raft *r, uint64_t first)
{
    uint64_t last = last_index(r), end = first - 1;
    uint64_t bytes = 0;
    while (end < last) {
        const struct raft_entry *e = raftlogmem_get(&r->log, end + 1);
        bytes += e->len + ENTRY_OVERHEAD;
        if (end >= first && bytes > r->cfg.max_msg_bytes)
            break;
        end++;
    }
    return end;
}

/* Sends one AppendEntries (or snapshot chunk) if flow control allows;
 * true when it sent entries and another may follow. */
static bool send_one(struct raft *r, struct raftprog *pr, bool empty_ok)
{
    if (pr->state != RAFTPROG_SNAPSHOT && pr->next <= r->log.base && r->snap)
        raftprog_start_snapshot(pr, r->snap);
    if (pr->state == RAFTPROG_SNAPSHOT) {
        send_chunks(r, pr);
        return false;
    }
    if (!raftprog_can_append(pr, r->cfg.max_inflight))
        return false;
    uint64_t first = pr->next, end = batch_end(r, first);
    if (end < first && !empty_ok)
        return false;
    struct raft_msg m = {
        .type = RAFT_MSG_APPEND, .term = r->term, .to = pr->id,
        .u.append = { .prev_index = first - 1,
                      .prev_term = term_at(r, first - 1),
                      .commit = r->commit, .seq = r->read_seq,
                      .n_entries = (uint32_t)(end + 1 - first) },
    };
    emit(r, &m, term_at(r, end));
    raftprog_sent(pr, end, end >= first, r->cfg.max_inflight);
    return pr->state == RAFTPROG_REPLICATE && end >= first;
}

static void send_append(struct raft *r, struct raftprog *pr, bool empty_ok)
{
    if (!send_one(r, pr, empty_ok))
        return;
    while (send_one(r, pr, false))
        ;
}

static void send_timeout_now(struct raft *r, uint64_t to)
{
    struct raft_msg m = { .type = RAFT_MSG_TIMEOUT_NOW, .term = r->term, .to = to };
    emit(r, &m, 0);
    r->timeout_sent = true;
    /* The target campaigns past every follower's stickiness: no lease
     * holds for the rest of this term. */
    r->lease_off = true;
}

/* q-th largest of n values (q >= 1), sorting vals in place. */
static uint64_t kth_largest(uint64_t *vals, unsigned n, unsigned q)
{
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && vals[j - 1] < vals[j]; j--) {
            uint64_t t = vals[j];
            vals[j] = vals[j - 1];
            vals[j - 1] = t;
        }
    return vals[q - 1];
}

static void commit_to(struct raft *r, uint64_t index)
{
    r->commit = index;
    /* A leader outside its own committed configuration hands over by
     * stepping down (thesis 4.2.2); the others time out and elect. */
    if (r->members_index <= index && !is_voter(r, r->cfg.id))
        become_follower(r, r->term, 0);
}

static void maybe_commit(struct raft *r)
{
    if (r->state != RAFT_LEADER)
        return;
    uint64_t match[RAFT_MAX_SERVERS];
    unsigned n = 0;
    for (uint32_t i = 0; i < r->members.n; i++) {
        const struct raft_server *s = &r->members.servers[i];
        if (s->role != RAFT_VOTER)
            continue;
        if (s->id == r->cfg.id) {
            match[n++] = min_u64(r->persisted_index, last_index(r));
        } else {
            struct raftprog *pr = progress_of(r, s->id);
            match[n++] = pr ? pr->match : 0;
        }
    }
    if (n == 0)
        return;
    unsigned q = bug(r, RAFT_BUG_COMMIT_NO_QUORUM) ? 1 : n / 2 + 1;
    uint64_t c = kth_largest(match, n, q);
    if (c <= r->commit)
        return;
    if (term_at(r, c) != r->term && !bug(r, RAFT_BUG_COMMIT_OLD_TERM))
        return;
    commit_to(r, c);
}

/* Largest index <= index whose term is <= term: where the logs may agree. */
static uint64_t conflict_point(const struct raft *r, uint64_t index,
                               uint64_t term)
{
    uint64_t j = min_u64(index, last_index(r));
    while (j > r->log.base && term_at(r, j) > term)
        j--;
    return j;
}

static void on_append_accepted(struct raft *r, struct raftprog *pr,
                               uint64_t index)
{
    if (raftprog_accepted(pr, index, r->log.base, r->cfg.max_inflight))
        maybe_commit(r);
    if (r->state != RAFT_LEADER)
        return;
    if (r->transferee == pr->id && !r->timeout_sent &&
        pr->match == last_index(r))
        send_timeout_now(r, pr->id);
    send_append(r, pr, false);
}

static void on_append_rejected(struct raft *r, struct raftprog *pr,
                               const struct raft_msg_append_resp *a)
{
    if (raftprog_stale_reject(pr, a->index))
        return;
    uint64_t agree = conflict_point(r, min_u64(a->hint_index, a->index),
                                    a->hint_term);
    raftprog_retry_at(pr, agree + 1, a->index);
    send_append(r, pr, false);
}

static void ack_read(struct raft *r, struct raftprog *pr, uint64_t seq)
{
    if (seq <= pr->read_acked)
        return;
    pr->read_acked = seq;
    release_reads(r);
}

static void on_append_resp(struct raft *r, const struct raft_msg *m)
{
    struct raftprog *pr = progress_of(r, m->from);
    if (!pr)
        return;
    pr->recent_active = true;
    ack_read(r, pr, m->u.append_resp.seq);
    if (m->u.append_resp.reject)
        on_append_rejected(r, pr, &m->u.append_resp);
    else
        on_append_accepted(r, pr, m->u.append_resp.index);
}

static void on_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    struct raftprog *pr = progress_of(r, m->from);
    if (!pr)
        return;
    pr->recent_active = true;
    ack_read(r, pr, m->u.heartbeat_resp.seq);
    /* The follower is alive: resend what may have been lost (a chunk, a
     * probe, or an empty append that makes it report a gap). */
    if (pr->state != RAFTPROG_SNAPSHOT && pr->match >= last_index(r))
        return;
    raftprog_alive(pr, r->cfg.max_inflight);
    send_append(r, pr, pr->state != RAFTPROG_SNAPSHOT);
}

static void on_snapshot_resp(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot_resp *s = &m->u.snapshot_resp;
    struct raftprog *pr = progress_of(r, m->from);
    if (!pr)
        return;
    pr->recent_active = true;
    if (s->done) {
        raftprog_snapshot_done(pr, s->index);
        maybe_commit(r);
    } else if (pr->state == RAFTPROG_SNAPSHOT &&
               s->index == pr->sending->meta.index) {
        raftprog_chunk_reply(pr, s->offset, s->gap);
    } else {
        return;
    }
    if (r->state == RAFT_LEADER)
        send_append(r, pr, false);
}

/* Appends on the leader; broadcast happens at the next raft_ready(), so
 * that proposals made together travel together. */
static int leader_append(struct raft *r, uint32_t type, const void *data,
                         uint32_t len, uint64_t *index)
{
    int rc = raftlogmem_append(&r->log, r->term, type, data, len);
    if (rc < 0)
        return rc;
    if (type == RAFT_ENTRY_CONFIG) {
        struct raft_members m;
        raft_members_decode(data, len, &m);
        set_members(r, &m, last_index(r));
    }
    if (index)
        *index = last_index(r);
    r->bcast = true;
    return 0;
}

/* ---- leader: ReadIndex --------------------------------------------------- */

static uint64_t quorum_read_seq(struct raft *r);

/*
 * Lease.  A follower that hears from its leader refuses to vote for
 * anyone else (but a transfer's target) for election_ticks of its own
 * ticks (on_higher_term's stickiness), and a started server does the same
 * before it first hears a leader (fresh).  So once a quorum acknowledged
 * a round this leader sent at tick T, no other leader can be elected
 * before T + election_ticks on their clocks; less a margin for clock
 * drift, that is this leader's lease, and a read inside it needs no
 * round of its own.  A TimeoutNow ends it for the term (its target
 * campaigns past stickiness), a membership change until the next round.
 */
static bool lease_holds(struct raft *r)
{
    unsigned margin = r->cfg.election_ticks / 4 + 1;
    if (!r->cfg.read_lease || r->lease_off || r->transferee ||
        r->cfg.election_ticks <= margin + 1)
        return false;
    uint64_t a = quorum_read_seq(r);
    if (a == 0 || a + LEASE_RING <= r->read_seq)
        return false;
    if (bug(r, RAFT_BUG_LEASE_NO_EXPIRY))
        return true;
    return r->ticks < r->round_tick[a % LEASE_RING] +
                      (r->cfg.election_ticks - margin);
}

/* Reads wait until this term has committed an entry (before that, commit
 * may lag what an earlier leader committed), then take commit as their
 * index and one heartbeat round to prove we still lead (or the lease). */
static void start_reads(struct raft *r)
{
    bool started = false;
    if (r->commit < r->term_start && !bug(r, RAFT_BUG_READ_OLD_TERM))
        return;
    bool lease = lease_holds(r);
    uint64_t acked = lease ? quorum_read_seq(r) : 0;
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].seq)
            continue;
        r->reads[i].index = r->commit;
        r->reads[i].seq = lease ? acked : r->read_seq + 1;
        started |= !lease;
    }
    if (started) {
        r->read_seq++;
        if (!bug(r, RAFT_BUG_READ_NO_CONFIRM))
            bcast_heartbeat(r);
    }
    release_reads(r);
}

/* The newest heartbeat round a quorum of voters has acknowledged. */
static uint64_t quorum_read_seq(struct raft *r)
{
    uint64_t acked[RAFT_MAX_SERVERS];
    unsigned n = 0;
    if (bug(r, RAFT_BUG_READ_NO_CONFIRM))
        return r->read_seq;
    for (uint32_t i = 0; i < r->members.n; i++) {
        const struct raft_server *s = &r->members.servers[i];
        if (s->role != RAFT_VOTER)
            continue;
        struct raftprog *pr = progress_of(r, s->id);
        acked[n++] = s->id == r->cfg.id ? r->read_seq : pr ? pr->read_acked : 0;
    }
    return n ? kth_largest(acked, n, n / 2 + 1) : 0;
}

static void release_reads(struct raft *r)
{
    if (r->state != RAFT_LEADER || r->n_reads == 0)
        return;
    uint64_t acked = quorum_read_seq(r);
    size_t i = 0;
    while (i < r->n_reads && r->reads[i].seq && r->reads[i].seq <= acked) {
        r->done[r->n_done++] = (struct raft_read){
            .ctx = r->reads[i].ctx, .index = r->reads[i].index };
        i++;
    }
    memmove(r->reads, r->reads + i, (r->n_reads - i) * sizeof(*r->reads));
    r->n_reads -= i;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    if (r->in_ready)
        return -EBUSY;
    if (r->state != RAFT_LEADER)
        return -DFS_ENOTLEADER;
    void *p = grow_array(r->reads, &r->cap_reads, r->n_reads + 1,
                         sizeof(*r->reads));
    if (!p)
        return -ENOMEM;
    r->reads = p;
    /* Every queued read may end up in `done` before the next advance. */
    p = grow_array(r->done, &r->cap_done, r->n_done + r->n_reads + 1,
                   sizeof(*r->done));
    if (!p)
        return -ENOMEM;
    r->done = p;
    r->reads[r->n_reads++] = (struct pending_read){ .ctx = ctx };
    return 0;
}

/* ---- leader: ticks, check-quorum, transfer ------------------------------ */

/* Check-quorum: did a quorum of voters answer during the last election
 * timeout?  Resets the marks for the next period. */
static bool quorum_active(struct raft *r)
{
    unsigned active = 0;
    for (uint32_t i = 0; i < r->members.n; i++) {
        const struct raft_server *s = &r->members.servers[i];
        if (s->role != RAFT_VOTER)
            continue;
        struct raftprog *pr = progress_of(r, s->id);
        active += s->id == r->cfg.id || (pr && pr->recent_active);
    }
    for (unsigned i = 0; i < r->n_prs; i++)
        r->prs[i].recent_active = false;
    return active >= quorum(r);
}

static void tick_leader(struct raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (!quorum_active(r)) {
            become_follower(r, r->term, 0);
            return;
        }
    }
    if (r->transferee && ++r->transfer_elapsed >= r->cfg.election_ticks)
        r->transferee = 0;
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        /* each round its own number, so its acknowledgements renew the
         * lease from the tick it was sent */
        if (r->cfg.read_lease)
            r->read_seq++;
        bcast_heartbeat(r);
    }
}

static void tick_election(struct raft *r)
{
    if (r->election_elapsed < UINT_MAX)
        r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_ticks)
        r->fresh = false;
    if (r->election_elapsed < r->timeout || !is_voter(r, r->cfg.id))
        return;
    campaign(r, true, false);
}

void raft_tick(struct raft *r)
{
    if (r->in_ready)
        return;   /* invariant 7; a lost tick only delays a timeout */
    r->ticks++;
    if (r->state == RAFT_LEADER)
        tick_leader(r);
    else
        tick_election(r);
}

int raft_transfer(struct raft *r, uint64_t to)
{
    if (r->in_ready)
        return -EBUSY;
    if (r->state != RAFT_LEADER)
        return -DFS_ENOTLEADER;
    if (to == r->cfg.id || !is_voter(r, to))
        return -EINVAL;
    if (r->transferee)
        return r->transferee == to ? 0 : -EBUSY;
    r->transferee = to;
    r->transfer_elapsed = 0;
    r->timeout_sent = false;
    struct raftprog *pr = progress_of(r, to);
    if (pr->match == last_index(r))
        send_timeout_now(r, to);
    else
        send_append(r, pr, false);
    return 0;
}

/* ---- follower side -------------------------------------------------------- */

static void respond(struct raft *r, const struct raft_msg *req, uint32_t type,
                    struct raft_msg *resp)
{
    resp->type = type;
    resp->term = r->term;
    resp->to = req->from;
    emit(r, resp, 0);
}

static void follower_commit(struct raft *r, uint64_t commit)
{
    if (commit > r->commit)
        r->commit = commit;
}

static void truncate_from(struct raft *r, uint64_t from)
{
    raftlogmem_truncate(&r->log, from);
    forget_durable_from(r, from);
    if (r->members_index >= from)
        reload_members(r);
}

static int append_entry(struct raft *r, const struct raft_entry *e)
{
    int rc = raftlogmem_append(&r->log, e->term, e->type, e->data, e->len);
    if (rc < 0)
        return rc;
    struct raft_members m;
    if (e->type == RAFT_ENTRY_CONFIG &&
        raft_members_decode(e->data, e->len, &m) == 0)
        set_members(r, &m, last_index(r));
    return 0;
}

/* The planted bug: the conflicting entry is replaced but what follows it,
 * from the old leader, stays. */
static int overwrite_entry(struct raft *r, const struct raft_entry *e)
{
    int rc = raftlogmem_overwrite(&r->log, e->index, e);
    if (rc < 0)
        return rc;
    forget_durable_from(r, e->index);
    reload_members(r);
    return 0;
}

static int append_entries(struct raft *r, const struct raft_msg_append *a)
{
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const struct raft_entry *e = &a->entries[i];
        int rc = 0;
        if (e->index <= last_index(r)) {
            if (term_at(r, e->index) == e->term)
                continue;
            if (bug(r, RAFT_BUG_NO_TRUNCATE)) {
                rc = overwrite_entry(r, e);
                if (rc < 0)
                    return rc;
                continue;
            }
            truncate_from(r, e->index);
        }
        rc = append_entry(r, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int on_append(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->u.append;
    struct raft_msg resp = { .u.append_resp.seq = a->seq };
    struct raft_msg_append_resp *ar = &resp.u.append_resp;
    if (a->prev_index < r->commit) {
        /* Everything up to commit matches any leader's log. */
        ar->index = r->commit;
    } else if (a->prev_index > last_index(r) ||
               term_at(r, a->prev_index) != a->prev_term) {
        uint64_t hint = conflict_point(r, a->prev_index, a->prev_term);
        ar->reject = 1;
        ar->index = a->prev_index;
        ar->hint_index = hint;
        ar->hint_term = term_at(r, hint);
    } else {
        int rc = append_entries(r, a);
        if (rc < 0)
            return rc;
        uint64_t last_new = a->prev_index + a->n_entries;
        /* Only what this message proved matching may be committed here. */
        follower_commit(r, min_u64(a->commit, last_new));
        ar->index = last_new;
    }
    respond(r, m, RAFT_MSG_APPEND_RESP, &resp);
    return 0;
}

static void on_heartbeat(struct raft *r, const struct raft_msg *m)
{
    follower_commit(r, min_u64(m->u.heartbeat.commit, last_index(r)));
    struct raft_msg resp = { .u.heartbeat_resp.seq = m->u.heartbeat.seq };
    respond(r, m, RAFT_MSG_HEARTBEAT_RESP, &resp);
}

static bool assembling(const struct raft *r, const struct raft_snapshot_meta *m)
{
    return r->in && r->in->meta.index == m->index && r->in->meta.term == m->term;
}

/* Adds a chunk to the snapshot being reassembled, in order only: 1 when
 * complete, 0 when not; *gap when a chunk is missing before this one. */
static int take_chunk(struct raft *r, const struct raft_msg_snapshot *s,
                      bool *gap)
{
    if (!assembling(r, &s->meta)) {
        if (s->offset != 0) {
            *gap = true;
            return 0;
        }
        drop_incoming_snapshot(r);
        r->in = raftsnap_new(&s->meta, NULL, 0);
        if (!r->in)
            return -ENOMEM;
    }
    if (s->offset != r->in->len) {
        *gap = s->offset > r->in->len;
        return 0;
    }
    int rc = raftsnap_append(&r->in, s->data, s->len);
    if (rc < 0)
        return rc;
    return r->in->len == s->total;
}

static void install_snapshot(struct raft *r)
{
    raftsnap_unref(r->snap);
    r->snap = r->in;
    r->in = NULL;
    const struct raft_snapshot_meta *meta = &r->snap->meta;
    /* Entries up to our old commit matched the leader's; the rest may not. */
    forget_durable_from(r, r->commit + 1);
    raftlogmem_reset(&r->log, meta->index, meta->term);
    r->unstable = meta->index + 1;
    r->commit = meta->index;
    r->install_pending = true;
    set_members(r, &meta->members, meta->index);
}

static int on_snapshot(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->u.snapshot;
    struct raft_msg resp = { .u.snapshot_resp.index = s->meta.index };
    struct raft_msg_snapshot_resp *sr = &resp.u.snapshot_resp;
    if (s->meta.index <= r->commit) {
        sr->done = 1;
        sr->index = r->commit;
    } else if (term_at(r, s->meta.index) == s->meta.term) {
        follower_commit(r, s->meta.index);
        sr->done = 1;
    } else {
        bool gap = false;
        int rc = take_chunk(r, s, &gap);
        if (rc < 0)
            return rc;
        if (rc == 1)
            install_snapshot(r);
        sr->done = rc == 1;
        sr->gap = gap;
        sr->offset = assembling(r, &s->meta) ? r->in->len : 0;
    }
    respond(r, m, RAFT_MSG_SNAPSHOT_RESP, &resp);
    return 0;
}

/* ---- votes ------------------------------------------------------------- */

static void on_vote(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_vote *v = &m->u.vote;
    bool log_ok = v->last_term > last_term(r) ||
                  (v->last_term == last_term(r) && v->last_index >= last_index(r));
    bool can;
    if (v->pre)
        can = m->term > r->term;
    else
        can = r->vote == m->from || (r->vote == 0 && r->leader == 0);
    struct raft_msg resp = {
        .type = RAFT_MSG_VOTE_RESP, .term = r->term, .to = m->from,
        .u.vote_resp = { .pre = v->pre, .granted = can && log_ok },
    };
    if (resp.u.vote_resp.granted && v->pre) {
        /* A granted pre-vote speaks for the term the candidate would use. */
        resp.term = m->term;
    } else if (resp.u.vote_resp.granted) {
        r->vote = m->from;
        r->hs_dirty = true;
        r->election_elapsed = 0;
    }
    emit(r, &resp, 0);
}

static void on_vote_resp(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->u.vote_resp.pre;
    if (pre ? r->state != RAFT_PRECANDIDATE : r->state != RAFT_CANDIDATE)
        return;
    if (m->u.vote_resp.granted && m->term != r->term + pre)
        return;
    if (!is_voter(r, m->from))
        return;
    record_vote(r, m->from, m->u.vote_resp.granted);
    tally(r);
}

/* ---- raft_step ---------------------------------------------------------- */

static bool from_leader(uint32_t type)
{
    return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT ||
           type == RAFT_MSG_SNAPSHOT;
}

/* A message from a higher term: 1 to go on handling it, 0 to drop it. */
static int on_higher_term(struct raft *r, const struct raft_msg *m)
{
    if (m->type == RAFT_MSG_VOTE) {
        /* Leader stickiness: while we hear from a leader, a candidate is
         * probably a partitioned or removed server; don't let it disrupt. */
        bool in_lease = (r->leader != 0 || r->fresh) &&
                        r->election_elapsed < r->cfg.election_ticks;
        if (in_lease && !m->u.vote.transfer)
            return 0;
        if (m->u.vote.pre)
            return 1;
    }
    if (m->type == RAFT_MSG_VOTE_RESP && m->u.vote_resp.pre &&
        m->u.vote_resp.granted)
        return 1;
    become_follower(r, m->term, from_leader(m->type) ? m->from : 0);
    return 1;
}

/* A message from a lower term: tell a stale leader or pre-candidate our
 * term so that it steps down; ignore the rest. */
static int on_lower_term(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg resp = { 0 };
    switch (m->type) {
    case RAFT_MSG_APPEND:
        if (bug(r, RAFT_BUG_STALE_APPEND))
            return on_append(r, m);
        resp.u.append_resp.reject = 1;
        resp.u.append_resp.index = m->u.append.prev_index;
        respond(r, m, RAFT_MSG_APPEND_RESP, &resp);
        return 0;
    case RAFT_MSG_HEARTBEAT:
        respond(r, m, RAFT_MSG_HEARTBEAT_RESP, &resp);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        resp.u.snapshot_resp.index = m->u.snapshot.meta.index;
        respond(r, m, RAFT_MSG_SNAPSHOT_RESP, &resp);
        return 0;
    case RAFT_MSG_VOTE:
        if (!m->u.vote.pre)
            return 0;
        resp.u.vote_resp.pre = 1;
        respond(r, m, RAFT_MSG_VOTE_RESP, &resp);
        return 0;
    default:
        return 0;
    }
}

static bool entries_valid(const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->u.append;
    if (a->n_entries && !a->entries)
        return false;
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const struct raft_entry *e = &a->entries[i];
        if (e->index != a->prev_index + 1 + i || e->term > m->term ||
            (e->len && !e->data) || e->type < RAFT_ENTRY_NORMAL ||
            e->type > RAFT_ENTRY_CONFIG)
            return false;
    }
    return true;
}

static bool msg_valid(const struct raft *r, const struct raft_msg *m)
{
    if (m->to != r->cfg.id || m->from == 0 || m->from == r->cfg.id)
        return false;
    if (m->type < RAFT_MSG_VOTE || m->type > RAFT_MSG_TYPE_LAST)
        return false;
    if (m->type == RAFT_MSG_APPEND)
        return entries_valid(m);
    if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_msg_snapshot *s = &m->u.snapshot;
        return s->offset <= s->total && s->len <= s->total - s->offset &&
               (s->len == 0 || s->data) && s->meta.members.n <= RAFT_MAX_SERVERS;
    }
    return true;
}

/* A message from the leader of our term: follow it. */
static void accept_leader(struct raft *r, uint64_t from)
{
    r->fresh = false;
    if (r->state != RAFT_FOLLOWER)
        become_follower(r, r->term, from);
    r->leader = from;
    r->election_elapsed = 0;
}

static int dispatch(struct raft *r, const struct raft_msg *m)
{
    bool leader = r->state == RAFT_LEADER;
    if (from_leader(m->type) && !leader)
        accept_leader(r, m->from);
    switch (m->type) {
    case RAFT_MSG_VOTE:
        on_vote(r, m);
        return 0;
    case RAFT_MSG_VOTE_RESP:
        on_vote_resp(r, m);
        return 0;
    case RAFT_MSG_APPEND:
        return leader ? 0 : on_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        if (!leader)
            on_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        return leader ? 0 : on_snapshot(r, m);
    case RAFT_MSG_TIMEOUT_NOW:
        if (!leader)
            campaign(r, false, true);
        return 0;
    default:
        break;
    }
    if (!leader)
        return 0;
    if (m->type == RAFT_MSG_APPEND_RESP)
        on_append_resp(r, m);
    else if (m->type == RAFT_MSG_HEARTBEAT_RESP)
        on_heartbeat_resp(r, m);
    else
        on_snapshot_resp(r, m);
    return 0;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    if (r->in_ready)
        return -EBUSY;
    if (!msg_valid(r, m))
        return -EINVAL;
    if (m->term > r->term) {
        if (!on_higher_term(r, m))
            return 0;
    } else if (m->term < r->term) {
        return on_lower_term(r, m);
    }
    return dispatch(r, m);
}

/* ---- client and operator requests -------------------------------------- */

int raft_propose(struct raft *r, const void *data, size_t len,
                 uint64_t *index)
{
    if (r->in_ready)
        return -EBUSY;
    if (r->state != RAFT_LEADER)
        return -DFS_ENOTLEADER;
    if (r->transferee)
        return -EBUSY;
    if (len > UINT32_MAX)
        return -E2BIG;
    return leader_append(r, RAFT_ENTRY_NORMAL, data, (uint32_t)len, index);
}

static int change_allowed(const struct raft *r)
{
    if (r->in_ready)
        return -EBUSY;
    if (r->state != RAFT_LEADER)
        return -DFS_ENOTLEADER;
    /* One change at a time, and only once this term has committed an entry:
     * otherwise two leaders' uncommitted changes could form disjoint
     * majorities (Ongaro's single-server change fix). */
    if (r->transferee || r->members_index > r->commit ||
        r->commit < r->term_start)
        return -EBUSY;
    return 0;
}

static int propose_members(struct raft *r, const struct raft_members *m,
                           uint64_t *index)
{
    uint8_t buf[4 + 9 * RAFT_MAX_SERVERS];
    int len = raft_members_encode(m, buf, sizeof(buf));
    if (len < 0)
        return len;
    return leader_append(r, RAFT_ENTRY_CONFIG, buf, (uint32_t)len, index);
}

int raft_add_learner(struct raft *r, uint64_t id, uint64_t *index)
{
    int rc = change_allowed(r);
    if (rc < 0)
        return rc;
    if (id == 0)
        return -EINVAL;
    if (raft_members_find(&r->members, id))
        return -EEXIST;
    if (r->members.n == RAFT_MAX_SERVERS)
        return -ENOSPC;
    struct raft_members m = r->members;
    m.servers[m.n++] = (struct raft_server){ .id = id, .role = RAFT_LEARNER };
    return propose_members(r, &m, index);
}

int raft_promote(struct raft *r, uint64_t id, uint64_t *index)
{
    int rc = change_allowed(r);
    if (rc < 0)
        return rc;
    const struct raft_server *s = raft_members_find(&r->members, id);
    if (!s)
        return -ENOENT;
    if (s->role != RAFT_LEARNER)
        return -EINVAL;
    /* Caught up: a new voter that is far behind would stall commits. */
    struct raftprog *pr = progress_of(r, id);
    if (!pr || pr->state != RAFTPROG_REPLICATE || pr->match < r->commit)
        return -EAGAIN;
    struct raft_members m = r->members;
    m.servers[s - r->members.servers].role = RAFT_VOTER;
    return propose_members(r, &m, index);
}

int raft_remove(struct raft *r, uint64_t id, uint64_t *index)
{
    int rc = change_allowed(r);
    if (rc < 0)
        return rc;
    const struct raft_server *s = raft_members_find(&r->members, id);
    if (!s)
        return -ENOENT;
    if (s->role == RAFT_VOTER && raft_members_voters(&r->members) == 1)
        return -EINVAL;
    struct raft_members m = r->members;
    size_t at = (size_t)(s - r->members.servers);
    memmove(&m.servers[at], &m.servers[at + 1],
            (m.n - at - 1) * sizeof(m.servers[0]));
    m.n--;
    return propose_members(r, &m, index);
}

int raft_compact(struct raft *r, uint64_t index, const void *data,
                 size_t len, struct raft_snapshot_meta *meta)
{
    if (r->in_ready)
        return -EBUSY;
    if (index > r->applied || index > last_index(r))
        return -EINVAL;
    if (index <= snap_index(r))
        return -ESTALE;
    struct raft_snapshot_meta sm = { .index = index, .term = term_at(r, index) };
    uint64_t at;
    members_at(r, index, &sm.members, &at);
    struct raftsnap *sb = raftsnap_new(&sm, data, len);
    if (!sb)
        return -ENOMEM;
    raftsnap_unref(r->snap);
    r->snap = sb;
    if (index > r->cfg.compact_trailing)
        raftlogmem_compact(&r->log, index - r->cfg.compact_trailing);
    if (meta)
        *meta = sm;
    return 0;
}

/* ---- Ready --------------------------------------------------------------- */

/* The block a queued chunk comes from, if it is still held. */
static const struct raftsnap *snapshot_being_sent(
    const struct raft *r, const struct raft_msg_snapshot *s)
{
    for (unsigned i = 0; i < r->n_prs; i++) {
        const struct raftsnap *sb = r->prs[i].sending;
        if (sb && sb->meta.index == s->meta.index && sb->len == s->total)
            return sb;
    }
    return NULL;
}

/* Turns queued messages into what the caller sends: entry and chunk
 * pointers are filled in now, and a message whose entries were truncated
 * or compacted away (or whose snapshot was replaced) is dropped. */
static size_t materialize(struct raft *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_out; i++) {
        struct raft_msg m = r->out[i].m;
        if (m.type == RAFT_MSG_APPEND && m.u.append.n_entries) {
            uint64_t first = m.u.append.prev_index + 1;
            uint64_t end = first + m.u.append.n_entries - 1;
            if (first <= r->log.base || end > last_index(r) ||
                term_at(r, end) != r->out[i].last_term)
                continue;
            m.u.append.entries = raftlogmem_get(&r->log, first);
        }
        if (m.type == RAFT_MSG_SNAPSHOT) {
            const struct raftsnap *sb = snapshot_being_sent(r, &m.u.snapshot);
            if (!sb)
                continue;
            m.u.snapshot.data = sb->data + m.u.snapshot.offset;
        }
        r->rd_msgs[n++] = m;
    }
    return n;
}

static void flush_leader(struct raft *r)
{
    if (r->state != RAFT_LEADER)
        return;
    if (r->bcast) {
        r->bcast = false;
        for (unsigned i = 0; i < r->n_prs; i++)
            send_append(r, &r->prs[i], false);
    }
    start_reads(r);
}

static void fill_persist(struct raft *r, struct raft_ready *rd)
{
    if (!dirty(r) || r->ho_count == MAX_HANDOUTS)
        return;
    rd->seq = r->handed_seq + 1;
    rd->hs_changed = r->hs_dirty;
    if (r->install_pending) {
        rd->snap = &r->snap->meta;
        rd->snap_data = r->snap->data;
        rd->snap_len = r->snap->len;
    }
    if (r->unstable <= last_index(r)) {
        rd->entries = raftlogmem_get(&r->log, r->unstable);
        rd->n_entries = last_index(r) - r->unstable + 1;
    }
}

static void fill_committed(struct raft *r, struct raft_ready *rd)
{
    uint64_t from = r->applied + 1;
    if (r->install_pending) {
        /* Without rd->snap handed out now, nothing after it may be applied. */
        if (!rd->snap)
            return;
        from = snap_index(r) + 1;
    }
    uint64_t to = min_u64(r->commit, last_index(r));
    if (from > to)
        return;
    rd->committed = raftlogmem_get(&r->log, from);
    rd->n_committed = to - from + 1;
}

bool raft_ready(struct raft *r, struct raft_ready *rd)
{
    flush_leader(r);
    memset(rd, 0, sizeof(*rd));
    fill_persist(r, rd);
    fill_committed(r, rd);
    rd->n_msgs = materialize(r);
    rd->msgs = rd->n_msgs ? r->rd_msgs : NULL;
    rd->reads = r->n_done ? r->done : NULL;
    rd->n_reads = r->n_done;
    rd->soft_changed = r->state != r->rep_state || r->leader != r->rep_leader;
    rd->term = r->term;
    rd->vote = r->vote;
    rd->state = r->state;
    rd->leader = r->leader;
    rd->commit = r->commit;
    bool any = rd->seq || rd->n_committed || rd->n_msgs || rd->n_reads ||
               rd->soft_changed;
    /* Messages dropped by materialize() are gone either way. */
    r->n_out = 0;
    r->in_ready = any;
    r->rd = *rd;
    return any;
}

void raft_advance(struct raft *r)
{
    struct raft_ready *rd = &r->rd;
    if (!r->in_ready)
        return;
    r->in_ready = false;
    if (rd->seq) {
        r->handed_seq = rd->seq;
        if (rd->hs_changed)
            r->hs_dirty = false;
        if (rd->snap)
            r->install_pending = false;
        if (rd->n_entries)
            r->unstable = rd->entries[rd->n_entries - 1].index + 1;
        r->ho[(r->ho_head + r->ho_count) % MAX_HANDOUTS] =
            (struct handout){ .seq = rd->seq, .last = r->unstable - 1 };
        r->ho_count++;
    }
    if (rd->snap && r->applied < rd->snap->index)
        r->applied = rd->snap->index;
    if (rd->n_committed)
        r->applied = rd->committed[rd->n_committed - 1].index;
    r->n_done = 0;
    r->rep_state = rd->state;
    r->rep_leader = rd->leader;
}

void raft_persisted(struct raft *r, uint64_t seq)
{
    if (seq <= r->persisted_seq || seq > r->handed_seq)
        return;
    while (r->ho_count && r->ho[r->ho_head].seq <= seq) {
        r->persisted_index = r->ho[r->ho_head].last;
        r->ho_head = (r->ho_head + 1) % MAX_HANDOUTS;
        r->ho_count--;
    }
    r->persisted_seq = seq;
    release_held(r);
    if (r->state == RAFT_LEADER)
        maybe_commit(r);
    else if (r->state == RAFT_CANDIDATE)
        tally(r);
}

/* ---- lifecycle ----------------------------------------------------------- */

static bool config_valid(const struct raft_config *c)
{
    return c->id != 0 && c->heartbeat_ticks >= 1 &&
           c->election_ticks >= 2 * c->heartbeat_ticks &&
           c->max_msg_bytes >= 1 && c->max_inflight >= 1 &&
           c->max_inflight <= RAFT_MAX_INFLIGHT &&
           c->snapshot_chunk_bytes >= 1 && c->test_bug < RAFT_BUG_LAST;
}

static int restore_snapshot(struct raft *r, const struct raft_restore *rs)
{
    if (!rs->snap)
        return 0;
    if (rs->snap->index == 0 || rs->snap->members.n > RAFT_MAX_SERVERS ||
        (rs->snap_len && !rs->snap_data))
        return -EINVAL;
    r->snap = raftsnap_new(rs->snap, rs->snap_data, rs->snap_len);
    if (!r->snap)
        return -ENOMEM;
    raftlogmem_reset(&r->log, rs->snap->index, rs->snap->term);
    return 0;
}

static int restore_entries(struct raft *r, const struct raft_restore *rs)
{
    for (size_t i = 0; i < rs->n_entries; i++) {
        const struct raft_entry *e = &rs->entries[i];
        struct raft_members m;
        if (e->index != last_index(r) + 1 || e->term < last_term(r) ||
            (e->len && !e->data))
            return -EINVAL;
        if (e->type == RAFT_ENTRY_CONFIG &&
            raft_members_decode(e->data, e->len, &m) < 0)
            return -EINVAL;
        int rc = raftlogmem_append(&r->log, e->term, e->type, e->data, e->len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int raft_new(const struct raft_config *cfg, const struct raft_restore *rs,
             struct raft **out)
{
    static const struct raft_restore empty;
    if (!config_valid(cfg))
        return -EINVAL;
    if (!rs)
        rs = &empty;
    struct raft *r = raftalloc_calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->cfg = *cfg;
    raftrand_seed(&r->rng, cfg->seed ^ raftrand_mix(cfg->id));
    raftlogmem_init(&r->log, 0, 0);
    int rc = restore_snapshot(r, rs);
    if (rc == 0)
        rc = restore_entries(r, rs);
    if (rc < 0) {
        raft_free(r);
        return rc;
    }
    r->term = rs->term;
    r->vote = rs->vote;
    r->state = r->rep_state = RAFT_FOLLOWER;
    r->commit = r->applied = snap_index(r);
    r->persisted_index = last_index(r);
    r->unstable = last_index(r) + 1;
    randomize_timeout(r);
    /* a restarted server may have acknowledged a live leader's lease
     * round just before: it grants no vote until it could have timed out */
    r->fresh = cfg->read_lease;
    reload_members(r);
    *out = r;
    return 0;
}

void raft_free(struct raft *r)
{
    if (!r)
        return;
    raftlogmem_release(&r->log);
    progress_drop_all(r);
    raftsnap_unref(r->snap);
    raftsnap_unref(r->in);
    free(r->reads);
    free(r->out);
    free(r->held);
    free(r->rd_msgs);
    free(r->done);
    free(r);
}

int raft_bootstrap(struct raft *r, const struct raft_members *members)
{
    uint8_t buf[4 + 9 * RAFT_MAX_SERVERS];
    struct raft_members check;
    if (r->term || last_index(r) || r->snap)
        return -EEXIST;
    int len = raft_members_encode(members, buf, sizeof(buf));
    if (len < 0 || raft_members_decode(buf, (size_t)len, &check) < 0 ||
        raft_members_voters(&check) == 0)
        return -EINVAL;
    int rc = raftlogmem_append(&r->log, 1, RAFT_ENTRY_CONFIG, buf, (uint32_t)len);
    if (rc < 0)
        return rc;
    r->term = 1;
    r->hs_dirty = true;
    set_members(r, &check, 1);
    return 0;
}

/* ---- getters ------------------------------------------------------------- */

uint64_t raft_id(const struct raft *r) { return r->cfg.id; }
enum raft_state raft_state(const struct raft *r) { return r->state; }
uint64_t raft_term(const struct raft *r) { return r->term; }
uint64_t raft_vote(const struct raft *r) { return r->vote; }
uint64_t raft_leader(const struct raft *r) { return r->leader; }
uint64_t raft_commit(const struct raft *r) { return r->commit; }
uint64_t raft_applied(const struct raft *r) { return r->applied; }
uint64_t raft_last_index(const struct raft *r) { return last_index(r); }
uint64_t raft_snapshot_index(const struct raft *r) { return snap_index(r); }
uint64_t raft_transferee(const struct raft *r) { return r->transferee; }
uint64_t raft_members_index(const struct raft *r) { return r->members_index; }

uint64_t raft_term_at(const struct raft *r, uint64_t index)
{
    return term_at(r, index);
}

const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index)
{
    return raftlogmem_get(&r->log, index);
}

const struct raft_members *raft_members(const struct raft *r)
{
    return &r->members;
}

const char *raft_state_name(enum raft_state s)
{
    switch (s) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_PRECANDIDATE: return "precandidate";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    }
    return "?";
}

const char *raft_msg_type_name(uint32_t type)
{
    static const char *const names[] = {
        [RAFT_MSG_VOTE] = "vote", [RAFT_MSG_VOTE_RESP] = "vote_resp",
        [RAFT_MSG_APPEND] = "append", [RAFT_MSG_APPEND_RESP] = "append_resp",
        [RAFT_MSG_HEARTBEAT] = "heartbeat",
        [RAFT_MSG_HEARTBEAT_RESP] = "heartbeat_resp",
        [RAFT_MSG_SNAPSHOT] = "snapshot",
        [RAFT_MSG_SNAPSHOT_RESP] = "snapshot_resp",
        [RAFT_MSG_TIMEOUT_NOW] = "timeout_now",
    };
    if (type < RAFT_MSG_VOTE || type > RAFT_MSG_TYPE_LAST)
        return "?";
    return names[type];
}
