/*
 * mfsck: the master's answer to ADMIN_FSCK — every chunk of a subtree
 * checked against its replication goal, with the problem chunks listed.
 *
 * Called by mclient and mverify on the leader's loop thread; reads the
 * namespace and the replica registry, changes neither.
 */
#ifndef DFS_MFSCK_H
#define DFS_MFSCK_H

#include <stdint.h>

#include "master/mserver.h"

struct wire_writer;
struct ns_chunk_info;

/*
 * The class of one chunk: 0 (healthy) or PROTO_FSCK_TRIMMING, _MISSING,
 * _CORRUPT, _UNDER, in that precedence; *healthy receives its healthy
 * replicas (for _TRIMMING, those awaiting their trim).
 */
int mfsck_state(const struct mserver *s, const struct ns_chunk_info *ci,
                size_t *healthy);

/*
 * Calls fn for every chunk of the regular files under inode (inode itself
 * when it is a file), in the namespace's chunk order; ci is valid during
 * the call only.  Stops at fn's first non-zero return and returns it;
 * else 0, or -ENOENT / -ENOTDIR for a bad inode, -ENOMEM.
 */
typedef int (*mfsck_chunk_fn)(const struct ns_chunk_info *ci, void *arg);
int mfsck_walk(struct mserver *s, uint64_t inode, mfsck_chunk_fn fn, void *arg);

/*
 * Appends the ADMIN_FSCK reply (common/protocol.h) for the subtree at
 * inode to out.  0, -ENOENT / -ENOTDIR for a bad inode, -ENOMEM.
 */
int mfsck_run(struct mserver *s, uint64_t inode, struct wire_writer *out);

#endif
