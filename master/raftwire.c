/*
 * raftwire: the codec between struct raft_msg and PROTO_RAFT_* frames.
 *
 * Invariants:
 *  1. Encode and decode are exact inverses for every message the core
 *     emits; a payload with a field missing, a byte left over, or an
 *     entry count past RAFTWIRE_MAX_ENTRIES does not decode.
 *  2. Decoded messages borrow payload bytes; only the entry array is
 *     allocated, so a frame costs one allocation at most.
 */
#include "raftwire.h"

#include <errno.h>
#include <stdlib.h>

#include "common/dfs_error.h"
#include "common/protocol.h"

static const uint16_t raftwire_types[] = {
    [RAFT_MSG_VOTE] = PROTO_RAFT_REQUEST_VOTE,
    [RAFT_MSG_VOTE_RESP] = PROTO_RAFT_REQUEST_VOTE_RESP,
    [RAFT_MSG_APPEND] = PROTO_RAFT_APPEND_ENTRIES,
    [RAFT_MSG_APPEND_RESP] = PROTO_RAFT_APPEND_ENTRIES_RESP,
    [RAFT_MSG_HEARTBEAT] = PROTO_RAFT_HEARTBEAT,
    [RAFT_MSG_HEARTBEAT_RESP] = PROTO_RAFT_HEARTBEAT_RESP,
    [RAFT_MSG_SNAPSHOT] = PROTO_RAFT_INSTALL_SNAPSHOT,
    [RAFT_MSG_SNAPSHOT_RESP] = PROTO_RAFT_INSTALL_SNAPSHOT_RESP,
    [RAFT_MSG_TIMEOUT_NOW] = PROTO_RAFT_TIMEOUT_NOW,
};

static uint32_t raftwire_msg_type(uint16_t frame_type)
{
    for (uint32_t t = 1; t <= RAFT_MSG_TYPE_LAST; t++) {
        if (raftwire_types[t] == frame_type)
            return t;
    }
    return 0;
}

int raftwire_is_raft(uint16_t type)
{
    return raftwire_msg_type(type) != 0;
}

static uint8_t vote_flags(uint8_t pre, uint8_t transfer)
{
    return (uint8_t)((pre ? PROTO_VOTE_PREVOTE : 0) |
                     (transfer ? PROTO_VOTE_TRANSFER : 0));
}

static void put_members(struct wire_writer *w, const struct raft_members *mb)
{
    size_t n = raft_members_size(mb);
    wire_put_u32(w, (uint32_t)n);
    uint8_t *p = wire_writer_reserve(w, n);
    if (p)
        raft_members_encode(mb, p, n);
}

static void put_body(struct wire_writer *w, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_VOTE:
        wire_put_u64(w, m->u.vote.last_index);
        wire_put_u64(w, m->u.vote.last_term);
        wire_put_u8(w, vote_flags(m->u.vote.pre, m->u.vote.transfer));
        break;
    case RAFT_MSG_VOTE_RESP:
        wire_put_u8(w, m->u.vote_resp.granted);
        wire_put_u8(w, vote_flags(m->u.vote_resp.pre, 0));
        break;
    case RAFT_MSG_APPEND: {
        const struct raft_msg_append *a = &m->u.append;
        wire_put_u64(w, a->prev_index);
        wire_put_u64(w, a->prev_term);
        wire_put_u64(w, a->commit);
        wire_put_u64(w, a->seq);
        wire_put_u32(w, a->n_entries);
        for (uint32_t i = 0; i < a->n_entries; i++) {
            wire_put_u64(w, a->entries[i].term);
            wire_put_u8(w, (uint8_t)a->entries[i].type);
            wire_put_bytes(w, a->entries[i].data, a->entries[i].len);
        }
        break;
    }
    case RAFT_MSG_APPEND_RESP:
        wire_put_u8(w, m->u.append_resp.reject);
        wire_put_u64(w, m->u.append_resp.index);
        wire_put_u64(w, m->u.append_resp.hint_index);
        wire_put_u64(w, m->u.append_resp.hint_term);
        wire_put_u64(w, m->u.append_resp.seq);
        break;
    case RAFT_MSG_HEARTBEAT:
        wire_put_u64(w, m->u.heartbeat.commit);
        wire_put_u64(w, m->u.heartbeat.seq);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        wire_put_u64(w, m->u.heartbeat_resp.seq);
        break;
    case RAFT_MSG_SNAPSHOT: {
        const struct raft_msg_snapshot *s = &m->u.snapshot;
        wire_put_u64(w, s->meta.index);
        wire_put_u64(w, s->meta.term);
        put_members(w, &s->meta.members);
        wire_put_u64(w, s->total);
        wire_put_u64(w, s->offset);
        wire_put_bytes(w, s->data, s->len);
        break;
    }
    case RAFT_MSG_SNAPSHOT_RESP:
        wire_put_u64(w, m->u.snapshot_resp.index);
        wire_put_u64(w, m->u.snapshot_resp.offset);
        wire_put_u8(w, (uint8_t)((m->u.snapshot_resp.done ? PROTO_SNAP_DONE : 0) |
                                 (m->u.snapshot_resp.gap ? PROTO_SNAP_GAP : 0)));
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    }
}

int raftwire_encode(struct wire_writer *w, const struct raft_msg *m)
{
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_LAST)
        return -EINVAL;
    size_t at = wire_frame_begin(w);
    wire_put_u64(w, m->from);
    wire_put_u64(w, m->to);
    wire_put_u64(w, m->term);
    put_body(w, m);
    struct wire_hdr h = { .type = raftwire_types[m->type] };
    return wire_frame_end(w, at, &h);
}

static int get_append(struct wire_reader *r, struct raft_msg_append *a,
                      struct raft_entry **entries)
{
    a->prev_index = wire_get_u64(r);
    a->prev_term = wire_get_u64(r);
    a->commit = wire_get_u64(r);
    a->seq = wire_get_u64(r);
    a->n_entries = wire_get_u32(r);
    a->entries = NULL;
    if (r->err)
        return r->err;
    if (a->n_entries > RAFTWIRE_MAX_ENTRIES)
        return -DFS_ETOOBIG;
    if (a->n_entries == 0)
        return 0;
    /* Each entry takes at least 13 bytes: refuse counts the payload
     * cannot hold before allocating for them. */
    if (a->n_entries > r->left / 13)
        return -DFS_ETRUNC;
    struct raft_entry *e = calloc(a->n_entries, sizeof(*e));
    if (!e)
        return -ENOMEM;
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const uint8_t *data;
        e[i].index = a->prev_index + 1 + i;
        e[i].term = wire_get_u64(r);
        e[i].type = wire_get_u8(r);
        e[i].len = (uint32_t)wire_get_bytes(r, &data, UINT32_MAX);
        e[i].data = (void *)data;
    }
    if (r->err) {
        free(e);
        return r->err;
    }
    a->entries = e;
    *entries = e;
    return 0;
}

static int get_snapshot(struct wire_reader *r, struct raft_msg_snapshot *s)
{
    const uint8_t *mb;
    s->meta.index = wire_get_u64(r);
    s->meta.term = wire_get_u64(r);
    size_t mlen = wire_get_bytes(r, &mb, 4 + 9 * RAFT_MAX_SERVERS);
    s->total = wire_get_u64(r);
    s->offset = wire_get_u64(r);
    const uint8_t *data;
    s->len = (uint32_t)wire_get_bytes(r, &data, UINT32_MAX);
    s->data = data;
    if (r->err)
        return r->err;
    return raft_members_decode(mb, mlen, &s->meta.members);
}

static int get_body(struct wire_reader *r, struct raft_msg *m,
                    struct raft_entry **entries)
{
    uint8_t flags;
    switch (m->type) {
    case RAFT_MSG_VOTE:
        m->u.vote.last_index = wire_get_u64(r);
        m->u.vote.last_term = wire_get_u64(r);
        flags = wire_get_u8(r);
        m->u.vote.pre = (flags & PROTO_VOTE_PREVOTE) != 0;
        m->u.vote.transfer = (flags & PROTO_VOTE_TRANSFER) != 0;
        return 0;
    case RAFT_MSG_VOTE_RESP:
        m->u.vote_resp.granted = wire_get_u8(r);
        m->u.vote_resp.pre = (wire_get_u8(r) & PROTO_VOTE_PREVOTE) != 0;
        return 0;
    case RAFT_MSG_APPEND:
        return get_append(r, &m->u.append, entries);
    case RAFT_MSG_APPEND_RESP:
        m->u.append_resp.reject = wire_get_u8(r);
        m->u.append_resp.index = wire_get_u64(r);
        m->u.append_resp.hint_index = wire_get_u64(r);
        m->u.append_resp.hint_term = wire_get_u64(r);
        m->u.append_resp.seq = wire_get_u64(r);
        return 0;
    case RAFT_MSG_HEARTBEAT:
        m->u.heartbeat.commit = wire_get_u64(r);
        m->u.heartbeat.seq = wire_get_u64(r);
        return 0;
    case RAFT_MSG_HEARTBEAT_RESP:
        m->u.heartbeat_resp.seq = wire_get_u64(r);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        return get_snapshot(r, &m->u.snapshot);
    case RAFT_MSG_SNAPSHOT_RESP:
        m->u.snapshot_resp.index = wire_get_u64(r);
        m->u.snapshot_resp.offset = wire_get_u64(r);
        flags = wire_get_u8(r);
        m->u.snapshot_resp.done = (flags & PROTO_SNAP_DONE) != 0;
        m->u.snapshot_resp.gap = (flags & PROTO_SNAP_GAP) != 0;
        return 0;
    default:
        return 0;   /* TIMEOUT_NOW: nothing after the common part */
    }
}

int raftwire_decode(uint16_t type, const uint8_t *payload, size_t len,
                    struct raft_msg *m, struct raft_entry **entries)
{
    *entries = NULL;
    *m = (struct raft_msg){ .type = raftwire_msg_type(type) };
    if (!m->type)
        return -EINVAL;
    struct wire_reader r;
    wire_reader_init(&r, payload, len);
    m->from = wire_get_u64(&r);
    m->to = wire_get_u64(&r);
    m->term = wire_get_u64(&r);
    int rc = get_body(&r, m, entries);
    if (rc == 0)
        rc = wire_reader_finish(&r);
    if (rc < 0) {
        free(*entries);
        *entries = NULL;
    }
    return rc;
}
