/*
 * ns_lock: advisory locks per inode: flock (whole file, shared or
 * exclusive) and POSIX record locks (inclusive byte ranges).
 *
 * A lock owner is (session id, owner id).  flock and POSIX locks never
 * conflict with each other (as on Linux).  Two owners conflict on
 * overlapping locks of the same kind when either is exclusive; one owner's
 * own POSIX locks are merged and split (a lock replaces what it covers).
 * Requests never block: a conflict is -EAGAIN and the master retries the
 * request when the locks on that inode change.  Not thread-safe.
 */
#ifndef DFS_NS_LOCK_H
#define DFS_NS_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/ns_map.h"

/* 40 bytes; kind NS_LOCK_FLOCK / _POSIX, type NS_LOCK_RD / _WR (ns_op.h). */
struct ns_lock {
    uint64_t sess, owner;
    uint64_t start, end;        /* inclusive; flock: 0..UINT64_MAX */
    uint16_t kind, type;
    uint32_t pid;               /* the locking process, for F_GETLK only: the
                                   lock that a merge makes takes the request's */
};

struct ns_lock_table {
    struct ns_map by_ino;       /* ino -> owned list, sorted canonically */
};

void ns_lock_table_init(struct ns_lock_table *t);
void ns_lock_table_release(struct ns_lock_table *t);

/*
 * Would req (type RD or WR) be granted?  0, or -EAGAIN with *conflict (if
 * not NULL) set to one lock in the way.
 */
int ns_lock_test(const struct ns_lock_table *t, uint64_t ino,
                 const struct ns_lock *req, struct ns_lock *conflict);

/*
 * Applies req: type UN unlocks its range (flock: the owner's flock),
 * RD/WR locks it.  *released (may be NULL) tells whether some lock was
 * dropped or weakened, so blocked requests on ino may now succeed.
 * 0, -EAGAIN (conflict), -EINVAL (bad kind, type or range) or -ENOMEM
 * (unchanged then).
 */
int ns_lock_set(struct ns_lock_table *t, uint64_t ino,
                const struct ns_lock *req, bool *released);

/*
 * Drops every lock of session sess on ino, or only owner's of kind when
 * owner != 0.  Returns whether something was dropped.  Never fails.
 */
bool ns_lock_drop(struct ns_lock_table *t, uint64_t ino, uint64_t sess,
                  uint64_t owner, uint32_t kind);

/* Drops every lock on ino (the inode is being freed). */
void ns_lock_forget(struct ns_lock_table *t, uint64_t ino);

/* True when session sess holds some lock on ino. */
bool ns_lock_held(const struct ns_lock_table *t, uint64_t ino, uint64_t sess);

/*
 * The locks on ino in canonical order (session, owner, kind, start);
 * borrowed until the next change.  *n = 0 and NULL when none.
 */
const struct ns_lock *ns_lock_list(const struct ns_lock_table *t, uint64_t ino,
                                   size_t *n);

#endif
