/*
 * raftsnap: a snapshot's metadata and bytes in one refcounted block.
 *
 * Used only inside the Raft core: the latest snapshot, each snapshot a
 * leader is still sending to a follower (pinned, so that a transfer always
 * completes even when the leader compacts again meanwhile), and the one a
 * follower is reassembling from chunks.  The count is not atomic: one
 * thread owns the core.
 */
#ifndef DFS_RAFTSNAP_H
#define DFS_RAFTSNAP_H

#include <stddef.h>
#include <stdint.h>

#include "master/raft.h"

struct raftsnap {
    unsigned refs;
    struct raft_snapshot_meta meta;
    size_t len;        /* bytes in data */
    size_t cap;        /* bytes allocated for data */
    uint8_t data[];
};

/* A block holding a copy of data (len bytes), one reference; NULL on ENOMEM. */
struct raftsnap *raftsnap_new(const struct raft_snapshot_meta *meta,
                              const void *data, size_t len);
struct raftsnap *raftsnap_ref(struct raftsnap *s);
/* Drops a reference (s may be NULL); the last one frees the block. */
void raftsnap_unref(struct raftsnap *s);
/* Appends bytes to a block nobody else references (it may move).  0 or
 * -ENOMEM (the block is unchanged then). */
int raftsnap_append(struct raftsnap **s, const void *data, size_t len);

#endif
