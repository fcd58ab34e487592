/*
 * raft: the consensus core of dfs-master, a pure state machine.
 *
 * No sockets, no clock, no disk, no rand(): time arrives as raft_tick(),
 * the network as raft_step(), clients as raft_propose() / raft_read_index(),
 * the operator as the membership and transfer calls; everything the core
 * wants done leaves through one batch, struct raft_ready (etcd's shape).
 * docs/RAFT.md explains the design; this header is the contract.
 *
 * The event loop of the master drives it like this:
 *
 *     every tick (N ms):        raft_tick(r)
 *     message decoded off TCP:  raft_step(r, &msg)
 *     client write:             raft_propose(r, data, len, &index)
 *     client linearizable read: raft_read_index(r, ctx)
 *     after each of the above:
 *         while (raft_ready(r, &rd)) {
 *             1. rd.seq != 0: queue, in this order, for the storage thread:
 *                rd.snapshot (replaces snapshot AND every stored entry),
 *                rd.entries (first drop stored entries with index >=
 *                rd.entries[0].index), rd.hard state if rd.hs_changed;
 *                the thread calls raft_persisted(r, rd.seq) on the loop
 *                once all of it is durable (fdatasync done).
 *             2. send rd.msgs (encode them now: see ownership below).
 *             3. install rd.snapshot into the state machine, then apply
 *                rd.committed in order.
 *             4. answer rd.reads: serve read ctx once the state machine has
 *                applied rd.reads[i].index (status 0), or fail it.
 *             5. raft_advance(r).
 *         }
 *
 * Persistence contract (why the messages above may be sent at once).  The
 * core never puts into rd.msgs a message that depends on state not yet
 * reported durable through raft_persisted(): vote requests and grants
 * (they rest on the persisted term and vote), AppendEntries and
 * InstallSnapshot acknowledgements (they rest on persisted entries) are
 * held inside the core and released by the raft_persisted() call that
 * covers everything produced before them.  Messages a leader sends
 * (AppendEntries, heartbeats, snapshot chunks, TimeoutNow) go out
 * immediately: the leader writes its own log in parallel with its
 * followers (thesis 10.2.1) and counts itself in the commit quorum only up
 * to what raft_persisted() has confirmed.  Hence: the caller may send every
 * message as soon as it gets it, and must call raft_persisted(seq) only
 * when that Ready's snapshot, entries and hard state really are durable.
 * The parts of one Ready may reach the disk in any order: nothing depends
 * on them until raft_persisted().
 *
 * Ownership.  Everything raft_ready() points to (entries, message entry
 * arrays and their data, snapshot bytes, reads) belongs to the core and is
 * valid until raft_advance(); between raft_ready() and raft_advance() the
 * caller makes no other raft_* call except the read-only getters (the
 * mutating calls refuse with -EBUSY then, raft_tick does nothing): an
 * apply callback that wants to propose or change the membership defers
 * it until after raft_advance().
 * Everything the caller passes in (messages, proposal bytes, snapshot
 * bytes, restored state) stays the caller's: the core copies what it keeps.
 *
 * Errors: 0 or a negative errno / -DFS_E* code (common/dfs_error.h).
 * -ENOMEM leaves the core consistent; at worst a message is lost, which
 * Raft tolerates.  A struct raft is not thread-safe: one thread owns it.
 */
#ifndef DFS_RAFT_H
#define DFS_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/raft_members.h"

/* Upper bound of raft_config.max_inflight. */
#define RAFT_MAX_INFLIGHT 64

/* ---- log entries ------------------------------------------------------- */

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1,   /* application command */
    RAFT_ENTRY_NOOP = 2,     /* appended by each new leader; data empty */
    RAFT_ENTRY_CONFIG = 3,   /* a whole configuration, raft_members_encode() */
};

struct raft_entry {
    uint64_t index;
    uint64_t term;
    uint32_t type;   /* enum raft_entry_type */
    uint32_t len;
    void *data;      /* len bytes (NULL when 0); owner: see where it appears */
};

/* ---- snapshots --------------------------------------------------------- */

/* What a snapshot stands for: the log up to index, and the configuration
 * in force at that index. */
struct raft_snapshot_meta {
    uint64_t index;
    uint64_t term;
    struct raft_members members;
};

/* ---- messages (plain structs: fixed-width fields plus two byte arrays) -- */

enum raft_msg_type {
    RAFT_MSG_VOTE = 1,        /* RequestVote, or pre-vote when pre = 1 */
    RAFT_MSG_VOTE_RESP,
    RAFT_MSG_APPEND,          /* AppendEntries with >= 0 entries */
    RAFT_MSG_APPEND_RESP,
    RAFT_MSG_HEARTBEAT,       /* leadership + commit, no log matching */
    RAFT_MSG_HEARTBEAT_RESP,
    RAFT_MSG_SNAPSHOT,        /* one InstallSnapshot chunk */
    RAFT_MSG_SNAPSHOT_RESP,
    RAFT_MSG_TIMEOUT_NOW,     /* leadership transfer: campaign now */
    RAFT_MSG_TYPE_LAST = RAFT_MSG_TIMEOUT_NOW
};

struct raft_msg_vote {
    uint64_t last_index;      /* candidate's last log entry */
    uint64_t last_term;
    uint8_t pre;              /* pre-vote: the term is the one it would use */
    uint8_t transfer;         /* sent on TimeoutNow: ignore leader stickiness */
};

struct raft_msg_vote_resp {
    uint8_t pre;
    uint8_t granted;
};

struct raft_msg_append {
    uint64_t prev_index;      /* entry just before entries[0] */
    uint64_t prev_term;
    uint64_t commit;          /* leader's commit index */
    uint64_t seq;             /* leader's ReadIndex round, echoed back */
    uint32_t n_entries;
    const struct raft_entry *entries;   /* indexes prev_index + 1 ... */
};

struct raft_msg_append_resp {
    uint8_t reject;
    uint64_t index;           /* accepted: last index known to match the
                               * leader; rejected: the prev_index refused */
    uint64_t hint_index;      /* rejected: leader should retry at or below */
    uint64_t hint_term;       /*  (hint_index, hint_term) (conflict hint) */
    uint64_t seq;
};

struct raft_msg_heartbeat {
    uint64_t commit;          /* min(leader commit, follower's match) */
    uint64_t seq;
};

struct raft_msg_heartbeat_resp {
    uint64_t seq;
};

struct raft_msg_snapshot {
    struct raft_snapshot_meta meta;
    uint64_t total;           /* bytes of the whole snapshot */
    uint64_t offset;          /* of this chunk; last chunk ends at total */
    uint32_t len;
    const void *data;
};

struct raft_msg_snapshot_resp {
    uint64_t index;           /* meta.index of the snapshot acknowledged */
    uint64_t offset;          /* bytes received so far: send from here */
    uint8_t done;             /* installed (or not needed): log matches up to index */
    uint8_t gap;              /* a chunk arrived past offset: resend from it */
};

struct raft_msg {
    uint32_t type;            /* enum raft_msg_type */
    uint64_t term;
    uint64_t from;
    uint64_t to;
    union {
        struct raft_msg_vote vote;
        struct raft_msg_vote_resp vote_resp;
        struct raft_msg_append append;
        struct raft_msg_append_resp append_resp;
        struct raft_msg_heartbeat heartbeat;
        struct raft_msg_heartbeat_resp heartbeat_resp;
        struct raft_msg_snapshot snapshot;
        struct raft_msg_snapshot_resp snapshot_resp;
    } u;
};

/* ---- configuration of the core ----------------------------------------- */

/*
 * TEST ONLY.  Planted bugs, so that tests/sim can prove it catches each
 * class of mistake.  Production never sets raft_config.test_bug (0 = none).
 */
enum raft_test_bug {
    RAFT_BUG_NONE = 0,
    RAFT_BUG_COMMIT_OLD_TERM,    /* commit a previous-term entry by counting */
    RAFT_BUG_VOTE_NO_PERSIST,    /* send a vote grant before it is durable */
    RAFT_BUG_STALE_APPEND,       /* accept AppendEntries from a stale term */
    RAFT_BUG_NO_TRUNCATE,        /* overwrite a conflict, keep the suffix */
    RAFT_BUG_READ_NO_CONFIRM,    /* ReadIndex without a heartbeat round */
    RAFT_BUG_COMMIT_NO_QUORUM,   /* commit at the best match, not the quorum's */
    RAFT_BUG_VOTE_NO_RESET,      /* keep the old vote on a term change */
    RAFT_BUG_ACK_NO_PERSIST,     /* acknowledge entries before they are durable */
    RAFT_BUG_READ_OLD_TERM,      /* ReadIndex before committing in this term */
    RAFT_BUG_LEASE_NO_EXPIRY,    /* a read lease that never runs out */
    RAFT_BUG_LAST
};

struct raft_config {
    uint64_t id;                   /* this server; != 0 */
    unsigned election_ticks;       /* election timeout, randomised in
                                    * [election_ticks, 2 * election_ticks);
                                    * >= 2 * heartbeat_ticks */
    unsigned heartbeat_ticks;      /* >= 1 */
    uint64_t seed;                 /* seeds the election jitter */
    uint32_t max_msg_bytes;        /* entry bytes per AppendEntries (one
                                    * entry always fits); >= 1 */
    unsigned max_inflight;         /* AppendEntries in flight per follower,
                                    * 1 ... RAFT_MAX_INFLIGHT */
    uint32_t snapshot_chunk_bytes; /* bytes per InstallSnapshot chunk; >= 1 */
    uint64_t compact_trailing;     /* entries kept behind a compaction for
                                    * followers slightly behind */
    bool read_lease;               /* serve ReadIndex without a heartbeat
                                    * round while a quorum acknowledged one
                                    * within the lease (raft.c, "Lease") */
    unsigned test_bug;             /* TEST ONLY: enum raft_test_bug; 0 */
};

/* ---- the core ---------------------------------------------------------- */

enum raft_state {
    RAFT_FOLLOWER = 1,
    RAFT_PRECANDIDATE,
    RAFT_CANDIDATE,
    RAFT_LEADER,
};

struct raft;

/*
 * State found on disk at start.  All of it is copied.  A brand-new server
 * passes an all-zero restore (or NULL): it is a member of nothing until a
 * leader sends it the log, or until raft_bootstrap().
 */
struct raft_restore {
    uint64_t term;                         /* hard state */
    uint64_t vote;
    const struct raft_snapshot_meta *snap; /* NULL: no snapshot */
    const void *snap_data;                 /* snapshot bytes (the app has
                                            * already loaded them) */
    size_t snap_len;
    const struct raft_entry *entries;      /* the log after the snapshot: */
    size_t n_entries;                      /* indexes snap->index + 1, ... */
};

/*
 * Creates a core.  cfg is copied.  0, -EINVAL (bad cfg, entries not
 * contiguous after the snapshot or with decreasing terms, a config entry
 * that does not decode) or -ENOMEM.  The state machine must hold exactly the snapshot's state: the
 * first committed entry handed out is the one after it.
 */
int raft_new(const struct raft_config *cfg, const struct raft_restore *rs,
             struct raft **out);
void raft_free(struct raft *r);

/*
 * First start of a brand-new cluster: on every initial server, with the
 * same members, before anything else.  Appends the configuration as entry
 * 1 of term 1.  -EEXIST when the server already has a log or a term,
 * -EINVAL when members has no voter or does not decode.
 */
int raft_bootstrap(struct raft *r, const struct raft_members *members);

/* One unit of logical time. */
void raft_tick(struct raft *r);

/*
 * A message received from a peer (copied as needed).  0, -EINVAL for a
 * malformed message (wrong destination, unknown type, entries not
 * contiguous, a chunk past its total), -ENOMEM (the message is dropped:
 * the sender retries).
 */
int raft_step(struct raft *r, const struct raft_msg *m);

/*
 * Appends a command (copied) on the leader.  *index (may be NULL) is where
 * it will be if it commits: the caller knows its fate when the committed
 * entry at *index is handed out, with term raft_term() of now (another term
 * there means it was lost).  -DFS_ENOTLEADER, -EBUSY during a leadership
 * transfer, -E2BIG past UINT32_MAX bytes, -ENOMEM.
 */
int raft_propose(struct raft *r, const void *data, size_t len,
                 uint64_t *index);

/*
 * Linearizable read (ReadIndex, thesis 6.4): the result arrives in a later
 * Ready as (ctx, index): serve the read once the state machine has applied
 * index.  Nothing is written to the log.  Reads queued when leadership is
 * lost come back with status -DFS_ENOTLEADER.  -DFS_ENOTLEADER at once on
 * a non-leader; -ENOMEM.
 */
int raft_read_index(struct raft *r, uint64_t ctx);

/*
 * Membership, one server at a time (thesis ch. 4); leader only.  Each
 * appends a config entry (in force as soon as it is appended) and returns
 * its index through *index (may be NULL).  add_learner adds a non-voting
 * server; promote makes a caught-up learner a voter (-EAGAIN while it is
 * behind the commit index); remove takes out a voter or a learner, the
 * leader included (it steps down once the change commits).  Errors:
 * -DFS_ENOTLEADER, -EBUSY (a change not yet committed, nothing committed in
 * this term yet, or a transfer running), -EEXIST, -ENOENT, -EINVAL (id 0,
 * removing the last voter, promoting a voter), -ENOSPC, -ENOMEM.
 */
int raft_add_learner(struct raft *r, uint64_t id, uint64_t *index);
int raft_promote(struct raft *r, uint64_t id, uint64_t *index);
int raft_remove(struct raft *r, uint64_t id, uint64_t *index);

/*
 * Leadership transfer (thesis 3.10): stop taking proposals, bring `to` up
 * to date, send it TimeoutNow; given up after an election timeout.
 * -DFS_ENOTLEADER, -EINVAL (self or not a voter), -EBUSY (another transfer).
 */
int raft_transfer(struct raft *r, uint64_t to);

/*
 * The application has a snapshot of its state machine at `index` (<= the
 * last index handed out as committed): data/len are copied and served to
 * followers that are too far behind; the log up to index -
 * compact_trailing is dropped.  *meta (may be NULL) receives what the
 * caller stores beside the bytes.  The caller persists the snapshot and
 * may then drop stored entries up to index.  -EINVAL (index past what was
 * applied), -ESTALE (not newer than the current snapshot), -ENOMEM.
 */
int raft_compact(struct raft *r, uint64_t index, const void *data,
                 size_t len, struct raft_snapshot_meta *meta);

/* ---- output ------------------------------------------------------------ */

struct raft_read {
    uint64_t ctx;
    uint64_t index;   /* serve once applied >= index */
    int status;       /* 0 or -DFS_ENOTLEADER */
};

struct raft_ready {
    /* != 0: snapshot / entries / hard state below need persisting, then
     * raft_persisted(r, seq).  Increases by one per such Ready. */
    uint64_t seq;
    bool hs_changed;
    uint64_t term;          /* hard state: always the current values */
    uint64_t vote;
    /* A snapshot received from the leader: persist it in place of the
     * stored snapshot and every stored entry, and install it. */
    const struct raft_snapshot_meta *snap;
    const void *snap_data;
    size_t snap_len;
    /* Entries to persist, contiguous; drop stored ones >= entries[0].index. */
    const struct raft_entry *entries;
    size_t n_entries;
    /* Messages to send now, each to msgs[i].to. */
    const struct raft_msg *msgs;
    size_t n_msgs;
    /* Committed entries to apply, in index order, after snap if any. */
    const struct raft_entry *committed;
    size_t n_committed;
    const struct raft_read *reads;
    size_t n_reads;
    /* Soft state: role and known leader (0: none), flagged when changed. */
    bool soft_changed;
    enum raft_state state;
    uint64_t leader;
    uint64_t commit;
};

/* Fills *rd and returns true when there is anything to do. */
bool raft_ready(struct raft *r, struct raft_ready *rd);
/* The Ready from the last raft_ready() has been handled (see the top). */
void raft_advance(struct raft *r);
/* Everything handed out in Readys up to seq is durable. */
void raft_persisted(struct raft *r, uint64_t seq);

/* ---- read-only getters ------------------------------------------------- */

uint64_t raft_id(const struct raft *r);
enum raft_state raft_state(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint64_t raft_vote(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
uint64_t raft_commit(const struct raft *r);
uint64_t raft_applied(const struct raft *r);   /* last handed out to apply */
uint64_t raft_last_index(const struct raft *r);
/* Term of the entry at index, 0 when not in the log (nor the snapshot base). */
uint64_t raft_term_at(const struct raft *r, uint64_t index);
/* Entry at index, or NULL when compacted or past the end; valid until the
 * next mutating call. */
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index);
/* The configuration in force (the latest appended config entry). */
const struct raft_members *raft_members(const struct raft *r);
uint64_t raft_snapshot_index(const struct raft *r);
uint64_t raft_transferee(const struct raft *r);   /* 0: no transfer running */
/* Index of the config entry raft_members() comes from (the snapshot's
 * index when it comes from the snapshot). */
uint64_t raft_members_index(const struct raft *r);

const char *raft_state_name(enum raft_state s);
const char *raft_msg_type_name(uint32_t type);

#endif
