/*
 * mrepl: the replication manager — on the leader, after safe mode, it
 * copies under-replicated chunks chunkserver to chunkserver (most
 * endangered first, a bounded number at a time), trims replicas a
 * truncate cut short, and deletes replicas that are stale (an older
 * version) or orphaned (no file holds the chunk).
 *
 * Called by mserver (init, shutdown) and mclient (leadership changes), on
 * the loop thread only.  It sends orders on the connections chunkservers
 * registered on (master/csreg).
 */
#ifndef DFS_MREPL_H
#define DFS_MREPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/mserver.h"

int mrepl_init(struct mserver *s);
void mrepl_shutdown(struct mserver *s);

/* Leadership began (safe mode starts: reports must settle first) or ended. */
void mrepl_leader(struct mserver *s, bool leader);

struct ns_trim;
/*
 * A committed truncate cut these chunks short (each now at trims[i].version
 * with trims[i].length): on the leader, orders their replicas at
 * [trims[i].trim_from, trims[i].version) trimmed.  Those it misses, the
 * periodic scan orders again from the chunk's trim_from.
 */
void mrepl_trimmed(struct mserver *s, const struct ns_trim *trims, size_t n);

/* True on a leader still in its safe mode: chunkservers' reports may not
 * all be in, so a chunk's known replicas may be too few. */
bool mrepl_settling(const struct mserver *s);

/* Copies in flight, for the status page. */
uint64_t mrepl_inflight(const struct mserver *s);

#endif
