/*
 * raft_members: a Raft configuration (the paper's word for the set of
 * servers in the cluster, with each one's role) and its byte encoding, the
 * payload of RAFT_ENTRY_CONFIG entries and part of snapshot metadata.
 * Plain values: no pointers, no allocation; any thread.
 */
#ifndef DFS_RAFT_MEMBERS_H
#define DFS_RAFT_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

/* Servers in one configuration, voters and learners together. */
#define RAFT_MAX_SERVERS 16

enum raft_role {
    RAFT_LEARNER = 1,   /* receives the log, never votes or campaigns */
    RAFT_VOTER = 2,
};

struct raft_server {
    uint64_t id;     /* never 0 */
    uint32_t role;   /* enum raft_role */
};

struct raft_members {
    uint32_t n;
    struct raft_server servers[RAFT_MAX_SERVERS];
};

/* Encoded size of a configuration: 4 + 9 * n bytes. */
size_t raft_members_size(const struct raft_members *m);
/*
 * Little-endian: u32 n, then n times (u64 id, u8 role).  encode writes
 * raft_members_size(m) bytes to buf (cap must allow it; -ENOSPC if not) and
 * returns that size.  decode returns 0 or -EINVAL for anything malformed
 * (wrong length, id 0, duplicate id, unknown role, n too big).
 */
int raft_members_encode(const struct raft_members *m, void *buf, size_t cap);
int raft_members_decode(const void *buf, size_t len, struct raft_members *m);
/* The server with that id, or NULL. */
const struct raft_server *raft_members_find(const struct raft_members *m,
                                            uint64_t id);
unsigned raft_members_voters(const struct raft_members *m);

#endif
