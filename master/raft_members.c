/*
 * raft_members: configuration lookups and the little-endian codec.
 *
 * Invariants:
 *  1. decode accepts exactly what encode produces for a valid
 *     configuration (n <= RAFT_MAX_SERVERS, ids != 0 and distinct, known
 *     roles) and nothing else; it never writes *m on failure.
 */
#include "master/raft_members.h"

#include <errno.h>

size_t raft_members_size(const struct raft_members *m)
{
    return 4 + 9 * (size_t)m->n;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int raft_members_encode(const struct raft_members *m, void *buf, size_t cap)
{
    if (m->n > RAFT_MAX_SERVERS)
        return -EINVAL;
    size_t size = raft_members_size(m);
    if (cap < size)
        return -ENOSPC;
    uint8_t *p = buf;
    put_le(p, m->n, 4);
    for (uint32_t i = 0; i < m->n; i++) {
        put_le(p + 4 + 9 * i, m->servers[i].id, 8);
        p[4 + 9 * i + 8] = (uint8_t)m->servers[i].role;
    }
    return (int)size;
}

int raft_members_decode(const void *buf, size_t len, struct raft_members *m)
{
    const uint8_t *p = buf;
    if (len < 4)
        return -EINVAL;
    uint64_t n = get_le(p, 4);
    if (n > RAFT_MAX_SERVERS || len != 4 + 9 * n)
        return -EINVAL;
    struct raft_members out = { .n = (uint32_t)n };
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = get_le(p + 4 + 9 * i, 8);
        uint8_t role = p[4 + 9 * i + 8];
        if (id == 0 || raft_members_find(&out, id))
            return -EINVAL;
        if (role != RAFT_VOTER && role != RAFT_LEARNER)
            return -EINVAL;
        out.servers[i] = (struct raft_server){ .id = id, .role = role };
    }
    *m = out;
    return 0;
}

const struct raft_server *raft_members_find(const struct raft_members *m,
                                            uint64_t id)
{
    for (uint32_t i = 0; i < m->n; i++)
        if (m->servers[i].id == id)
            return &m->servers[i];
    return NULL;
}

unsigned raft_members_voters(const struct raft_members *m)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < m->n; i++)
        n += m->servers[i].role == RAFT_VOTER;
    return n;
}

