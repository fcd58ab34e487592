/*
 * mverify: `fsck --verify` on the leader — ADMIN_FSCK with verify has
 * every chunkserver re-read its replicas of the chunks under the inode
 * (PROTO_CS_ORDER_VERIFY), marks the bad ones in the replica registry as
 * a BAD_REPLICA report does, then answers with the fsck count
 * (master/mfsck) and what the re-reads found.
 *
 * Called by mclient (the request, once its read is confirmed) and mserver
 * (init, shutdown, leadership, closed connections), on the loop thread
 * only.  It sends the orders on the connections chunkservers registered
 * on (master/csreg).
 */
#ifndef DFS_MVERIFY_H
#define DFS_MVERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "master/mserver.h"

struct rpc_conn;
struct wire_reader;

int mverify_init(struct mserver *s);
/* Answers every running verify NOT_LEADER and frees the module; orders
 * still in flight free their job when their connection closes. */
void mverify_shutdown(struct mserver *s);

/*
 * An ADMIN_FSCK request whose read was confirmed; r is past its HEAD (only
 * read from a copy).  False when it does not ask to verify: the caller
 * answers it as any read.  True when this module took it: it answers c
 * (req_id) later, on the loop, or never if c closes first.
 */
bool mverify_request(struct mserver *s, struct rpc_conn *c, uint64_t req_id,
                     const struct wire_reader *r);

/* Leadership lost: every running verify is answered NOT_LEADER. */
void mverify_leader(struct mserver *s, bool leader);

/* c is closing: a verify it asked for runs on, its answer dropped. */
void mverify_conn_closed(struct mserver *s, struct rpc_conn *c);

#endif
