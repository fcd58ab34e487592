/*
 * raftprog: what a Raft leader knows of one follower (or learner), and the
 * flow control over what it sends it (etcd's "tracker").
 *
 * States, and what moves between them:
 *   PROBE      one AppendEntries at a time until the follower accepts one
 *              (raftprog_accepted -> REPLICATE); a rejection restarts
 *              probing lower (raftprog_retry_at).
 *   REPLICATE  AppendEntries pipelined, at most max_inflight unanswered;
 *              a rejection -> PROBE.
 *   SNAPSHOT   the follower needs entries the log no longer has: the
 *              snapshot goes out in chunks, a window of them at a time,
 *              resent from where a gap is reported (raftprog_chunk_reply);
 *              done -> PROBE (raftprog_snapshot_done).
 * The snapshot being sent is pinned (a raftsnap reference) until the
 * transfer ends, so that it completes even if the leader compacts again.
 * Plain data owned by the Raft core's thread.
 */
#ifndef DFS_RAFTPROG_H
#define DFS_RAFTPROG_H

#include <stdbool.h>
#include <stdint.h>

#include "master/raft.h"
#include "master/raftsnap.h"

enum raftprog_state {
    RAFTPROG_PROBE,
    RAFTPROG_REPLICATE,
    RAFTPROG_SNAPSHOT,
};

struct raftprog {
    uint64_t id;
    uint64_t match;            /* highest index known replicated there */
    uint64_t next;             /* next index to send */
    enum raftprog_state state;
    bool paused;               /* probe sent, or every chunk sent: waiting */
    bool recent_active;        /* heard from it in this check-quorum period */
    uint64_t read_acked;       /* highest ReadIndex round it acknowledged */
    struct raftsnap *sending;  /* SNAPSHOT: the snapshot (a reference) */
    uint64_t snap_next;        /* next byte of it to send */
    uint64_t snap_acked;       /* bytes the follower has */
    uint64_t snap_acked_hb;    /* snap_acked at the last heartbeat reply */
    unsigned in_head;          /* ring of last indexes of appends in flight */
    unsigned in_count;
    uint64_t inflight[RAFT_MAX_INFLIGHT];
};

/* A follower we know nothing of yet: probing from next. */
void raftprog_init(struct raftprog *p, uint64_t id, uint64_t next);
/* Drops the snapshot reference, if any. */
void raftprog_release(struct raftprog *p);

/* ---- appends (window: max_inflight, <= RAFT_MAX_INFLIGHT) ---- */
bool raftprog_can_append(const struct raftprog *p, unsigned window);
/* An AppendEntries ending at last went out (with_entries: not empty). */
void raftprog_sent(struct raftprog *p, uint64_t last, bool with_entries,
                   unsigned window);
/* The follower matches up to index; true when match moved.  log_base: the
 * leader's first compacted-away index, to leave SNAPSHOT once past it. */
bool raftprog_accepted(struct raftprog *p, uint64_t index, uint64_t log_base,
                       unsigned window);
/* A rejection of the append with prev_index `rejected` that we have moved
 * past since (a duplicate, or one overtaken by a later answer). */
bool raftprog_stale_reject(const struct raftprog *p, uint64_t rejected);
/* Probe again at next (kept above match and at most `rejected`). */
void raftprog_retry_at(struct raftprog *p, uint64_t next, uint64_t rejected);
/* The follower answered a heartbeat: whatever we sent it last may have
 * been lost, so let the next send go out. */
void raftprog_alive(struct raftprog *p, unsigned window);

/* ---- snapshot chunks ---- */
void raftprog_start_snapshot(struct raftprog *p, struct raftsnap *snap);
/* The next chunk to send (offset, len) if the window allows; false when
 * it does not or every byte is out. */
bool raftprog_next_chunk(struct raftprog *p, uint32_t chunk_bytes,
                         unsigned window, uint64_t *offset, uint32_t *len);
/* The follower has `offset` bytes; gap: resend from there. */
void raftprog_chunk_reply(struct raftprog *p, uint64_t offset, bool gap);
/* The follower holds the log up to index (snapshot installed). */
void raftprog_snapshot_done(struct raftprog *p, uint64_t index);

#endif
