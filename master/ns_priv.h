/*
 * ns_priv: the namespace's state, shared by the ns*.c files that apply
 * ops (ns.c, ns_fs.c, ns_lease.c) and serialise them (ns_snapshot.c).
 * Nothing outside master/ns*.c includes this header.
 *
 * The helpers declared here live in ns.c: they are the steps several op
 * handlers share (freeing an inode and its chunks, orphan handling,
 * truncation, lease release, result effects).
 */
#ifndef DFS_NS_PRIV_H
#define DFS_NS_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "master/ns.h"
#include "master/ns_chunk.h"
#include "master/ns_dir.h"
#include "master/ns_inode.h"
#include "master/ns_lock.h"
#include "master/ns_map.h"
#include "master/ns_sess.h"
#include "master/ns_xattr.h"

/* Replicated options, changed by NS_OP_CONFIG. */
struct ns_config {
    uint32_t flags;             /* NS_CONFIG_* */
    uint32_t squash_uid, squash_gid;
    uint64_t chunk_size;        /* 0: not set (NS_CHUNK_SIZE_DEFAULT) */
};

struct ns {
    struct ns_inode_table inodes;
    struct ns_chunk_table chunks;
    struct ns_xattr_table xattrs;
    struct ns_lock_table locks;
    struct ns_sess_table sessions;
    struct ns_config cfg;
    /* derived from the sessions (rebuilt by a snapshot load): */
    struct ns_map opens;        /* ino -> opens over all sessions */
    struct ns_map leases;       /* chunk id -> session id holding its lease */
    /* derived counters (statfs): */
    uint64_t nfiles, ndirs, nsymlinks, nspecials;
    uint64_t norphans;          /* non-directories with nlink 0, still open */
};

/* One op being applied. */
struct ns_call {
    const struct ns_op *op;
    struct ns_cred cred;        /* op->cred after root squash */
    struct ns_sess *sess;       /* the caller's session; NULL for client 0 */
    struct ns_result *res;
};

/* A namespace without even a root (a snapshot load fills it). */
struct ns *ns_new_empty(void);

/* Credentials after the root-squash option. */
void ns_squash(const struct ns *ns, const struct ns_cred *in, struct ns_cred *out);

void ns_attr_fill(const struct ns_inode *in, uint64_t ino, struct ns_attr *a);

/* The directory inode ino: 0, -ENOENT or -ENOTDIR. */
int ns_get_dir(const struct ns *ns, uint64_t ino, struct ns_inode **out);

/* Statfs counters by file type. */
void ns_count(struct ns *ns, uint32_t mode, int delta);

/* Whether any session holds ino open. */
bool ns_is_open(const struct ns *ns, uint64_t ino);

/* After a link to a non-directory went away: an orphan if nlink is 0 and
 * the file is open, freed if it is not open. */
void ns_unlinked(struct ns *ns, uint64_t ino, struct ns_result *res);

/* After a session's last close of ino: frees it if it is an orphan. */
void ns_reap(struct ns *ns, uint64_t ino, struct ns_result *res);

/* Frees what an inode's union points to (not its chunks: see
 * ns_free_inode) and clears the union. */
void ns_free_payload(struct ns_inode *in);

/* Frees inode ino and everything it holds (chunks, xattrs, locks). */
void ns_free_inode(struct ns *ns, uint64_t ino, struct ns_result *res);

/* Sets a regular file's size, freeing chunks past it and trimming the
 * chunk it now ends in (new version, reported in res, and trim_from set
 * so that replicas the trim orders miss are trimmed later). */
void ns_truncate(struct ns *ns, struct ns_inode *in, uint64_t size,
                 struct ns_result *res);

/* Ends chunk id's write lease, if any, and reports it. */
void ns_drop_lease(struct ns *ns, uint64_t chunk_id, struct ns_result *res);

/* Appends to an effect list (lost, harmlessly, when memory is short). */
void ns_push(struct ns_u64s *v, uint64_t x);

#endif
