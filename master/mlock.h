/*
 * mlock: the leader's parked lock waiters — blocking LOCK requests
 * (PROTO_LOCK with wait) whose last proposal met a conflict (-EAGAIN).
 *
 * The namespace never blocks (master/ns_lock.h): a conflicting lock is
 * refused and changes nothing.  mclient parks such a request here, and
 * when an applied entry releases or changes the locks of its inode (or
 * ends a session), wakes it: the waiter leaves the table and mclient
 * proposes the same op again, parking it anew if it conflicts again.
 *
 * Soft state of the leader only: a master that loses leadership fails its
 * waiters with NOT_LEADER and the clients retry at the new leader, whose
 * replicated lock table is the same.  Owns the waiters (they hold no
 * pointers but their connection, which mclient clears on close).
 * Not thread-safe: the master's loop thread only.  Called by mclient.
 */
#ifndef DFS_MLOCK_H
#define DFS_MLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/ns_op.h"

/* One blocked request.  op is an NS_OP_LOCK (no borrowed strings). */
struct mlock_waiter {
    void *conn;             /* the client's connection (opaque here) */
    uint64_t req_id;
    struct ns_op op;
    bool due;               /* woken: to be proposed again */
};

struct mlock;

struct mlock *mlock_new(void);
void mlock_free(struct mlock *m);

/* The most waiters parked at once, in the whole cluster. */
#define MLOCK_MAX_WAITERS 16384

/* Parks a copy of w (not due).  0, -ENOLCK (MLOCK_MAX_WAITERS are parked:
 * a client cannot pin the leader's memory) or -ENOMEM. */
int mlock_park(struct mlock *m, const struct mlock_waiter *w);

/* Marks every waiter on inode ino due; returns how many it marked. */
size_t mlock_wake_ino(struct mlock *m, uint64_t ino);
/* Marks every waiter of client (the session in its HEAD) due. */
size_t mlock_wake_client(struct mlock *m, uint64_t client);

/*
 * Before the due waiters are proposed again: test(arg, op) says how the
 * applied lock table answers op now (0 granted, -EAGAIN in the way, any
 * other error: let the proposal tell the client).  A waiter still in the
 * way, or in the way of an older due waiter that may be granted (so it
 * would conflict once that one is), is not due any more; it is woken
 * again by the next change on its inode.  So a release costs a proposal
 * for about each waiter it can let through, not for every waiter on the
 * inode.  Order is kept.
 */
void mlock_settle(struct mlock *m, int (*test)(void *arg, const struct ns_op *op),
                  void *arg);

/* Takes the oldest due waiter out into *out: false when none is due. */
bool mlock_take_due(struct mlock *m, struct mlock_waiter *out);

/*
 * An UNLOCK of (client, ino, owner, kind) over [start, end] was applied:
 * takes out, oldest first, one waiter of that owner whose range overlaps
 * it (flock: any range), so the caller answers it -EINTR.  false: none.
 */
bool mlock_take_cancelled(struct mlock *m, uint64_t client, uint64_t ino,
                          uint64_t owner, uint32_t kind, uint64_t start,
                          uint64_t end, struct mlock_waiter *out);

/*
 * Does an UNLOCK by client cancel a wait of wclient?  Same session, inode,
 * owner and kind, and (POSIX) overlapping ranges.  mclient asks it of the
 * waits whose proposal is still in flight, which are not in the table.
 */
bool mlock_unlock_cancels(uint64_t client, const struct ns_op_lock *unlock,
                          uint64_t wclient, const struct ns_op_lock *wait);

/* Forgets the waiters of a closed connection; returns how many. */
size_t mlock_drop_conn(struct mlock *m, const void *conn);

/* Takes out any waiter (to fail them all): false when empty. */
bool mlock_take_any(struct mlock *m, struct mlock_waiter *out);

size_t mlock_count(const struct mlock *m);

#endif
