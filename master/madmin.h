/*
 * madmin: membership administration of a running master — joining a
 * cluster (--join), the admin requests PROTO_ADMIN_MASTERS, _MASTER_ADD,
 * _MASTER_REMOVE, _LEADER_TRANSFER and _CS_DECOMMISSION, the replicated
 * membership state (master/mmember: the address book and the
 * decommission set) with its snapshot section and local cache file, and
 * noticing that this master was removed.
 *
 * Called by mserver (start-up, committed entries, snapshots, role
 * changes, closed connections) and by mclient (dispatch of the admin
 * requests), on the loop thread only.
 */
#ifndef DFS_MADMIN_H
#define DFS_MADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/mserver.h"

struct raft_entry;
struct rpc_conn;
struct wire_frame;
struct wire_writer;

int madmin_init(struct mserver *s);
/* Fails a waiting admin request and frees (after the Raft node closed). */
void madmin_shutdown(struct mserver *s);

/*
 * First start with --join: asks the masters of the `masters` key (ids
 * optional: "host:port" is enough) for the cluster, takes its id and
 * member list.  Logs what failed.
 */
int madmin_join(struct mserver *s);
/*
 * The data directory's mark that this master joins and was not added yet,
 * written before the cluster file (so that a --join interrupted between
 * the two is taken up again by the next --join): set, and test.
 */
int madmin_mark_joining(struct mserver *s);
bool madmin_join_pending(struct mserver *s);
/*
 * After the data directory is checked: a master removed from the cluster
 * is refused; the address book cached there (written whenever the
 * replicated one changes) replaces the configuration's masters.
 */
int madmin_load(struct mserver *s, bool join);
/* True until this master, started with --join, is in the configuration. */
bool madmin_joining(const struct mserver *s);
/* The Raft node is open: peer addresses follow the book from now on. */
void madmin_started(struct mserver *s);

/* Admin requests this module serves. */
bool madmin_handles(uint16_t type);
void madmin_request(struct mserver *s, struct rpc_conn *c,
                    const struct wire_frame *f);
void madmin_conn_closed(struct mserver *s, struct rpc_conn *c);

/* True when a committed entry is a membership entry (not a namespace op). */
bool madmin_is_entry(const struct raft_entry *e);
void madmin_apply(struct mserver *s, const struct raft_entry *e);

/* The membership section that starts a master snapshot. */
void madmin_snapshot_write(struct mserver *s, struct wire_writer *w);
/* Takes the section off a snapshot: *rest is the namespace part. */
int madmin_snapshot_restore(struct mserver *s, const void *data, size_t len,
                            const void **rest, size_t *rest_len);

/* Leadership gained or lost. */
void madmin_role(struct mserver *s, bool leader);

#endif
