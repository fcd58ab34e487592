/*
 * cslocal: local reads (docs/LOCAL_READS.md).  Hands clients on this host
 * read-only descriptors of chunk files over an abstract unix socket, so
 * that they pread replicas themselves instead of through this server's
 * TCP connection: one copy instead of four, and no round trip per read.
 *
 * Owns a thread, the socket and its connections.  A client learns the
 * socket's name and token from PROTO_CS_LOCAL on its authenticated TCP
 * connection (csio); a request without the token is refused, so the socket
 * serves only holders of the cluster key, as the TCP port does.
 *
 * Threads: cslocal_start and cslocal_stop from the csd's thread;
 * cslocal_name and cslocal_token from any thread between them.
 */
#ifndef DFS_CSLOCAL_H
#define DFS_CSLOCAL_H

#include <stdint.h>

#include "common/protocol.h"

struct cslocal;
struct vols;

/* Binds a new socket with a random name and token and starts serving
 * vols (borrowed until cslocal_stop).  0 or a negative errno. */
int cslocal_start(struct vols *vols, struct cslocal **out);

/* Stops the thread, closes every connection and the socket.  NULL ok. */
void cslocal_stop(struct cslocal *l);

/* The abstract socket's name, without the leading NUL. */
const char *cslocal_name(const struct cslocal *l);
const uint8_t *cslocal_token(const struct cslocal *l);

#endif
