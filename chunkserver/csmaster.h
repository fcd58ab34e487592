/*
 * csmaster: the chunkserver's link to the master (DESIGN §3.5, protocol
 * 0x04xx).  Registers with the full chunk report (CS_REGISTER, then
 * CHUNK_REPORT FULL frames), sends CS_HEARTBEAT every heartbeat_ms the
 * master asked for, reports chunks found corrupt (CHUNK_REPORT CHANGED),
 * follows NOT_LEADER hints and otherwise walks the masters list, and
 * carries out the master's orders: REPLICATE (csrepl), DELETE, VERIFY.
 * A master that refuses the data directory (-DFS_ECLUSTER) stops the
 * server.  Loop thread only.
 */
#ifndef DFS_CSMASTER_H
#define DFS_CSMASTER_H

#include <stdbool.h>
#include <stddef.h>

struct csd;
struct csmaster;

/* Parses conf->masters; *out is NULL when it is unset.  -DFS_ECONF with a
 * message for a bad list, or -ENOMEM. */
int csmaster_new(struct csd *d, struct csmaster **out, char *errbuf,
                 size_t errlen);

/* Connects to the first master.  NULL is a no-op. */
void csmaster_start(struct csmaster *m);

/* Closes the link; orders still running finish without an answer. */
void csmaster_stop(struct csmaster *m);

/* True when no connection and no order of the link remains (NULL: true).
 * A probe of the data directories does not count: it may be stuck on a
 * disk that does not answer. */
bool csmaster_idle(const struct csmaster *m);

/* Frees m (after it is idle), first stopping the probe of the data
 * directories.  Returns false when that probe is stuck in a disk call
 * (see csprobe_free): d->vols and d itself must then stay allocated.
 * NULL: true. */
bool csmaster_free(struct csmaster *m);

#endif
