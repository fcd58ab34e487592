/*
 * raftprog: per-follower progress and flow control of a Raft leader.
 *
 * Invariants:
 *  1. match < next; match never decreases.
 *  2. REPLICATE: in_count <= window, and inflight holds the last index of
 *     each unanswered append in increasing order.  Other states: in_count 0.
 *  3. sending != NULL exactly in SNAPSHOT; snap_acked <= snap_next <=
 *     sending->len.
 */
#include "master/raftprog.h"

#include <string.h>

void raftprog_init(struct raftprog *p, uint64_t id, uint64_t next)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->next = next;
    p->state = RAFTPROG_PROBE;
}

void raftprog_release(struct raftprog *p)
{
    raftsnap_unref(p->sending);
    p->sending = NULL;
}

static void become(struct raftprog *p, enum raftprog_state state,
                   uint64_t next)
{
    raftprog_release(p);
    p->state = state;
    p->next = next;
    p->paused = false;
    p->in_head = p->in_count = 0;
}

bool raftprog_can_append(const struct raftprog *p, unsigned window)
{
    if (p->state == RAFTPROG_PROBE)
        return !p->paused;
    return p->state == RAFTPROG_REPLICATE && p->in_count < window;
}

static void free_to(struct raftprog *p, uint64_t index, unsigned window)
{
    while (p->in_count && p->inflight[p->in_head] <= index) {
        p->in_head = (p->in_head + 1) % window;
        p->in_count--;
    }
}

void raftprog_sent(struct raftprog *p, uint64_t last, bool with_entries,
                   unsigned window)
{
    if (p->state == RAFTPROG_PROBE) {
        p->paused = true;
        return;
    }
    if (!with_entries)
        return;
    p->next = last + 1;
    p->inflight[(p->in_head + p->in_count) % window] = last;
    p->in_count++;
}

bool raftprog_accepted(struct raftprog *p, uint64_t index, uint64_t log_base,
                       unsigned window)
{
    bool advanced = index > p->match;
    if (advanced)
        p->match = index;
    if (p->next <= index)
        p->next = index + 1;
    free_to(p, index, window);
    if (p->state == RAFTPROG_PROBE ||
        (p->state == RAFTPROG_SNAPSHOT && p->match >= log_base))
        become(p, RAFTPROG_REPLICATE, p->match + 1);
    return advanced;
}

bool raftprog_stale_reject(const struct raftprog *p, uint64_t rejected)
{
    if (p->state == RAFTPROG_SNAPSHOT || rejected <= p->match)
        return true;
    return p->state == RAFTPROG_PROBE && rejected != p->next - 1;
}

void raftprog_retry_at(struct raftprog *p, uint64_t next, uint64_t rejected)
{
    if (next <= p->match)
        next = p->match + 1;
    if (next > rejected)
        next = rejected;
    become(p, RAFTPROG_PROBE, next);
}

void raftprog_alive(struct raftprog *p, unsigned window)
{
    if (p->state == RAFTPROG_SNAPSHOT) {
        /* No progress since the last heartbeat: chunks were lost. */
        if (p->snap_acked == p->snap_acked_hb) {
            p->snap_next = p->snap_acked;
            p->paused = false;
        }
        p->snap_acked_hb = p->snap_acked;
        return;
    }
    p->paused = false;
    if (p->state == RAFTPROG_REPLICATE && p->in_count >= window)
        free_to(p, p->inflight[p->in_head], window);
}

void raftprog_start_snapshot(struct raftprog *p, struct raftsnap *snap)
{
    become(p, RAFTPROG_SNAPSHOT, p->next);
    p->sending = raftsnap_ref(snap);
    p->snap_next = p->snap_acked = p->snap_acked_hb = 0;
}

bool raftprog_next_chunk(struct raftprog *p, uint32_t chunk_bytes,
                         unsigned window, uint64_t *offset, uint32_t *len)
{
    uint64_t limit = (uint64_t)window * chunk_bytes;
    if (p->paused || p->snap_next - p->snap_acked >= limit)
        return false;
    uint64_t left = p->sending->len - p->snap_next;
    *offset = p->snap_next;
    *len = left < chunk_bytes ? (uint32_t)left : chunk_bytes;
    p->snap_next += *len;
    p->paused = p->snap_next >= p->sending->len;
    return true;
}

void raftprog_chunk_reply(struct raftprog *p, uint64_t offset, bool gap)
{
    if (offset > p->sending->len)
        offset = p->sending->len;
    if (gap) {
        p->snap_next = p->snap_acked = offset;
        p->paused = false;
    } else if (offset > p->snap_acked) {
        p->snap_acked = offset;
        if (p->snap_next < offset)   /* a reply older than our last gap */
            p->snap_next = offset;
    }
}

void raftprog_snapshot_done(struct raftprog *p, uint64_t index)
{
    if (index > p->match)
        p->match = index;
    if (p->state == RAFTPROG_SNAPSHOT)
        become(p, RAFTPROG_PROBE, p->match + 1);
}
