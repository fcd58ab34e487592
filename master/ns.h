/*
 * ns: the master's namespace state machine (DESIGN §3.4).
 *
 * All metadata, in memory: inodes, directories, files' chunks, the chunk
 * table, xattrs, client sessions with their open files, write leases and
 * locks, and the exactly-once table.  ns_apply() is the only way any of it
 * changes, live and on replay (STYLE §4): it is deterministic, reads no
 * clock and no randomness, does no I/O, so every master that applies the
 * same ops in the same order holds the same state (ns_digest() compares
 * them).  The queries below are read-only; a pointer a query returns is
 * borrowed until the next ns_apply() or ns_free().
 *
 * Not thread-safe: the master calls everything from its event loop.
 * docs/NAMESPACE.md describes the structures and the decisions.
 */
#ifndef DFS_NS_H
#define DFS_NS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/ns_lock.h"
#include "master/ns_op.h"

struct ns;

/* A namespace holding only the root directory (inode 1, mode 0755, owned
 * by root, times 0).  NULL when out of memory. */
struct ns *ns_new(void);
void ns_free(struct ns *ns);

void ns_result_init(struct ns_result *r);
/* Frees the effect lists; r may be reused after ns_result_init(). */
void ns_result_release(struct ns_result *r);

/*
 * Applies one committed op.  res must be initialised (ns_result_init) and
 * empty; it is filled with the reply and the effects.  Returns
 * res->reply.err: 0, a negative errno, or -DFS_E*.  An op that fails
 * changes nothing.  A failed op's reply is saved for exactly-once like a
 * successful one, except the answers the master may retry with the same
 * sequence: -EAGAIN (a lock or write lease to wait for), -DFS_EIDINUSE (a
 * leader-chosen id was taken: choose another) and -ENOMEM; and
 * -DFS_ESESSION / -DFS_ESEQ, which are about the request, not the state.
 *
 * -ENOMEM means this replica could not apply a committed entry that the
 * others did: the master must stop and recover from a snapshot and the
 * log rather than go on with a different state.
 */
int ns_apply(struct ns *ns, const struct ns_op *op, struct ns_result *res);

/* ---- queries (credentials are squashed as ops are) ------------------- */

/* Search permission on parent; "." and ".." are understood. */
int ns_lookup(const struct ns *ns, const struct ns_cred *cred, uint64_t parent,
              struct ns_str name, struct ns_attr *out);

int ns_getattr(const struct ns *ns, uint64_t ino, struct ns_attr *out);

/* *target borrowed, len bytes, not NUL-terminated; -EINVAL if no symlink. */
int ns_readlink(const struct ns *ns, uint64_t ino, const char **target,
                uint32_t *len);

struct ns_dirent {
    uint64_t ino;
    uint64_t cookie;        /* pass it back to continue after this entry */
    uint32_t mode;          /* S_IFMT bits of the entry's inode */
    uint32_t len;
    const char *name;       /* borrowed, not NUL-terminated */
};

/*
 * Up to max entries after cookie (0 = from the start; "." and ".." come
 * first with cookies 1 and 2).  Read permission on dir.  *n = 0 at the
 * end.  An entry that exists for the whole listing is returned exactly
 * once, whatever changes in between.
 */
int ns_readdir(const struct ns *ns, const struct ns_cred *cred, uint64_t dir,
               uint64_t cookie, struct ns_dirent *out, size_t max, size_t *n);

/* Read permission; *val borrowed.  -ENODATA, -ERANGE, -EOPNOTSUPP. */
int ns_getxattr(const struct ns *ns, const struct ns_cred *cred, uint64_t ino,
                struct ns_str name, const void **val, uint32_t *len);

/* listxattr(2) shape: *need = bytes of the list; size 0 only measures. */
int ns_listxattr(const struct ns *ns, const struct ns_cred *cred, uint64_t ino,
                 char *buf, size_t size, size_t *need);

struct ns_chunk_info {
    uint64_t id;            /* 0: a hole */
    uint32_t version;
    uint32_t committed;     /* replicas at [committed, version] are good */
    uint32_t length;
    uint32_t trim_from;     /* 0, or replicas at [trim_from, committed)
                             * become good once trimmed (struct ns_chunk) */
    uint64_t ino;
    uint32_t index;
    uint32_t goal;          /* the file's replication goal */
};

/* Chunks first..first+max-1 of a regular file (holes have id 0); *n stops
 * at the end of the file's chunk list. */
int ns_chunk_range(const struct ns *ns, uint64_t ino, uint32_t first,
                   struct ns_chunk_info *out, size_t max, size_t *n);

/* The chunk with this id: 0 or -ENOENT. */
int ns_chunk_lookup(const struct ns *ns, uint64_t id, struct ns_chunk_info *out);

/* Walks the whole chunk table: start with *cursor = 0; false at the end. */
bool ns_chunk_walk(const struct ns *ns, uint32_t *cursor,
                   struct ns_chunk_info *out);

struct ns_statfs {
    uint64_t inodes, files, dirs, symlinks, specials, orphans;
    uint64_t free_inodes;
    uint64_t chunks;
    uint64_t sessions;
};

void ns_statfs(const struct ns *ns, struct ns_statfs *out);

/* F_GETLK for the session of client: 0 (would be granted) or -EAGAIN with
 * *conflict set; -DFS_ESESSION without a session. */
int ns_getlk(const struct ns *ns, uint64_t client, const struct ns_op_lock *req,
             struct ns_lock *conflict);

/* The session holding chunk id's write lease, or 0. */
uint64_t ns_lease_holder(const struct ns *ns, uint64_t chunk_id);

/* Bytes per chunk of this cluster, and whether it is fixed: by a CONFIG,
 * or by a chunk counted in it (a namespace from before the setting keeps
 * the default).  A leader proposes its configured size while it is not,
 * before serving. */
uint64_t ns_chunk_size(const struct ns *ns);
bool ns_chunk_size_fixed(const struct ns *ns);
/* The replicated options, as an NS_OP_CONFIG that keeps them (chunk size 0). */
void ns_options(const struct ns *ns, struct ns_op_config *out);

/* ---- for the leader: choosing ids and proposing expiries ------------- */

/* The smallest free inode number > after (0 when the table is full). */
uint64_t ns_next_free_ino(const struct ns *ns, uint64_t after);
/* Chunk and session ids ever used are <= these (ids are never reused). */
uint64_t ns_max_chunk_id(const struct ns *ns);
uint64_t ns_max_session_id(const struct ns *ns);

/* Up to max ids of sessions whose expiry is <= now; returns the count. */
size_t ns_expired_sessions(const struct ns *ns, int64_t now, uint64_t *out,
                           size_t max);

/* 0 and the session's id and expiry, or -DFS_ESESSION. */
int ns_session_of(const struct ns *ns, uint64_t client, uint64_t *id,
                  int64_t *expiry);

/* ---- comparing replicas --------------------------------------------- */

/*
 * A 64-bit digest of the logical state (SHA-256 of the canonical snapshot
 * body, truncated), independent of hash layouts and allocation history.
 * 0 only if memory ran out.
 */
uint64_t ns_digest(const struct ns *ns);

/*
 * Checks every structural invariant (links, counts, parents, chunk back
 * pointers, leases, opens); 0 or -DFS_ECORRUPT with the first violation
 * logged.  O(state): for tests and after loading a snapshot.
 */
int ns_check(const struct ns *ns);

/* Heap bytes held by the namespace's structures (not malloc overhead). */
size_t ns_bytes(const struct ns *ns);

#endif
