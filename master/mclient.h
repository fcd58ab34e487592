/*
 * mclient: the master's client service — requests of the client <-> master
 * conversation (common/protocol.h 0x01xx, 0x02xx) turned into namespace
 * ops proposed through Raft, or into linearizable reads, and their replies.
 *
 * Called by mserver only, on the loop thread: requests come in through
 * mclient_request(), committed entries through mclient_applied(), read
 * confirmations through mclient_read_ready() (an rnode callback).
 */
#ifndef DFS_MCLIENT_H
#define DFS_MCLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "master/mserver.h"

struct raft_entry;
struct rpc_conn;
struct wire_frame;
struct ns_op;
struct ns_result;

int mclient_init(struct mserver *s);
/* Fails every waiting request (the server is stopping) and frees. */
void mclient_shutdown(struct mserver *s);

void mclient_request(struct mserver *s, struct rpc_conn *c,
                     const struct wire_frame *f);

/* A committed entry was applied: answer its proposer if it is waiting
 * here.  op is NULL when the entry did not decode. */
void mclient_applied(struct mserver *s, const struct raft_entry *e,
                     const struct ns_op *op, const struct ns_result *res);

/* rnode callback: the read with this ctx may be served (or failed). */
void mclient_read_ready(void *ctx, uint64_t read_ctx, int status);

/* Leadership gained or lost: waiting requests are failed with NOT_LEADER
 * when it is lost (their fate is decided by the log; clients retry). */
void mclient_role_changed(struct mserver *s, bool leader);

/* True while this master leads and serves requests. */
bool mclient_is_leader(const struct mserver *s);

/* Answers a request with an error; NOT_LEADER carries the leader hint. */
void mclient_reply_error(struct mserver *s, struct rpc_conn *c, uint16_t type,
                         uint64_t req_id, int err);

/* c is closing: forget it in every waiting request. */
void mclient_conn_closed(struct mserver *s, struct rpc_conn *c);

#endif
