/*
 * mcs: the master's side of the chunkserver conversation (common/protocol.h
 * 0x04xx) — registration with the full chunk report, heartbeats, reports —
 * over the soft-state registry master/csreg, and the chunk health counts
 * the status page shows.
 *
 * Called by mserver (frames, closed connections) and mstatus (health), on
 * the loop thread only.
 */
#ifndef DFS_MCS_H
#define DFS_MCS_H

#include <stdbool.h>
#include <stdint.h>

#include "master/mserver.h"

struct rpc_conn;
struct wire_frame;
struct status_chunks;

int mcs_init(struct mserver *s);
void mcs_shutdown(struct mserver *s);

/* True for the frame types this module answers. */
bool mcs_handles(uint16_t type);
void mcs_request(struct mserver *s, struct rpc_conn *c,
                 const struct wire_frame *f);
void mcs_conn_closed(struct mserver *s, struct rpc_conn *c);

/* Recounts chunk health now (a server came or went, a copy finished). */
void mcs_recount(struct mserver *s);

/* Chunk health as of the last count (recounted every few seconds). */
void mcs_health(const struct mserver *s, struct status_chunks *out);

#endif
