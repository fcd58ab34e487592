/*
 * csrepl: re-replication, the work of a PROTO_CS_ORDER_REPLICATE.  Pulls
 * one replica from a source chunkserver with PROTO_CS_COPY in pieces of
 * PROTO_DATA_MAX, verifies every block CRC, writes it to the store at a
 * bounded rate (conf->replicate_rate) and syncs it.  Loop thread only.
 */
#ifndef DFS_CSREPL_H
#define DFS_CSREPL_H

#include <stddef.h>
#include <stdint.h>

struct csd;

/* status 0 with the replica's length, or the error that ended the copy
 * (the partial replica is then deleted). */
typedef void (*csrepl_done_fn)(void *arg, int status, uint32_t length);

/*
 * Starts copying chunk id at version (length bytes expected) from the
 * first of sources[0..n) ("host:port", copied) that answers; a failing
 * source passes the copy on to the next.  A replica already here at that
 * version and length is kept as is.  done(arg, ...) runs exactly once, on
 * the loop, never inside this call.  0, or -ENOMEM / -EINVAL (n is 0) and
 * done is not called.
 */
int csrepl_start(struct csd *d, uint64_t id, uint32_t version,
                 uint32_t length, char *const *sources, size_t n,
                 csrepl_done_fn done, void *arg);

#endif
