/*
 * ns_lease: what a client session holds, as op handlers called by
 * ns_apply(): the session's life (open, keepalive, close, expiry), its
 * open files, its chunk write leases and its locks.
 *
 * A handler validates before it changes anything and returns 0 or the
 * op's error.  Handlers other than ns_lease_session_open and
 * ns_lease_expire need c->sess (ns_apply checks).
 */
#ifndef DFS_NS_LEASE_H
#define DFS_NS_LEASE_H

#include "master/ns_priv.h"

int ns_lease_session_open(struct ns *ns, struct ns_call *c);
int ns_lease_keepalive(struct ns *ns, struct ns_call *c);
int ns_lease_session_close(struct ns *ns, struct ns_call *c);  /* clears c->sess */
int ns_lease_expire(struct ns *ns, struct ns_call *c);
int ns_lease_open(struct ns *ns, struct ns_call *c);
int ns_lease_release(struct ns *ns, struct ns_call *c);
int ns_lease_write_begin(struct ns *ns, struct ns_call *c);
int ns_lease_write_end(struct ns *ns, struct ns_call *c);
int ns_lease_lock(struct ns *ns, struct ns_call *c);

/*
 * Opens inode ino for c's session with NS_OPEN_* flags (CREATE reuses it):
 * type checks, permission checks unless check is false (the creator of a
 * new file may open it whatever its mode), then counts, then O_TRUNC.
 * 0 or error (nothing changed then).  Fills the reply's attr.
 */
int ns_lease_open_inode(struct ns *ns, struct ns_call *c, uint64_t ino,
                        uint32_t flags, bool check);

/* Whether c's session has ino open for writing. */
bool ns_lease_writable(const struct ns_call *c, uint64_t ino);

#endif
