/*
 * mstatus: what a master shows about itself — the status snapshot built
 * from the server's state (master/status renders it), the HTTP server that
 * serves it (master/httpd), and the activity and event history behind it.
 *
 * Called by mserver and mclient on the loop thread only.
 */
#ifndef DFS_MSTATUS_H
#define DFS_MSTATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "master/mserver.h"
#include "master/status.h"

struct strbuf;

/* Starts the status page when conf->http is set, and the 1 s publisher. */
int mstatus_init(struct mserver *s);
void mstatus_shutdown(struct mserver *s);

/* A new snapshot of the server now (the caller frees it), or NULL. */
struct status_snap *mstatus_snapshot(struct mserver *s);

/* The /api/status document into out.  0 or a negative error. */
int mstatus_json(struct mserver *s, struct strbuf *out);

/* Records an event for the page (printf-style text). */
void mstatus_event(struct mserver *s, enum status_event_kind kind,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * A bad replica of chunk on chunkserver cs was found (a reader, fsck
 * --verify, the server's own report): counted in
 * dfs_corrupt_replicas_total unless the same one was counted lately —
 * the same replica is often told by two of them, the second after the
 * master already deleted it.  Returns whether it counted.
 */
bool mstatus_count_corrupt(struct mserver *s, uint64_t chunk, uint32_t cs);

/* Counts one client operation by name (a string literal). */
void mstatus_count_op(struct mserver *s, const char *name);

#endif
