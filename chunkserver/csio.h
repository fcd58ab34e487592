/*
 * csio: the chunkserver's request handlers for clients and peers:
 * PROTO_CS_WRITE (verify, forward down the chain, write, answer),
 * PROTO_CS_READ and PROTO_CS_COPY (read, verify, send), and the pool of
 * downstream connections the chain uses.
 *
 * A failed CS_WRITE reply carries, besides its status, the node that
 * failed: "cs_id u32, addr str" (docs/CHUNKSERVER.md), so the client can
 * ask the master for a chain without it.
 *
 * Loop thread only.
 */
#ifndef DFS_CSIO_H
#define DFS_CSIO_H

#include <stdbool.h>

struct csd;
struct net_conn;
struct rpc_conn;

/* Largest CHAIN a CS_WRITE may carry. */
#define CSIO_CHAIN_MAX 16

/* Takes over an accepted connection (net_listen's on_accept).  0 or a
 * negative errno (the conn is then aborted). */
int csio_accept(struct csd *d, struct net_conn *nc);

/*
 * Returns a ready-or-connecting rpc connection to the chunkserver at addr
 * ("host:port"), shared by every user, made on first use.  The pointer is
 * borrowed: valid until the connection closes (callers only rpc_call on it
 * at once).  0 or a negative errno.
 */
int csio_peer_get(struct csd *d, const char *addr, struct rpc_conn **out);

/* Stopping: closes every client and peer connection. */
void csio_close_all(struct csd *d);

/* True when no connection and no request of csio remains. */
bool csio_idle(const struct csd *d);

#endif
