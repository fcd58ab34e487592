/*
 * csscrub: the scrubber.  Walks every chunk of the store slowly (at most
 * conf->scrub_rate bytes/s), re-reading and checking each one
 * (store_verify) on the disk threads; a chunk that fails lands on the
 * store's bad list, which the master link reports.  After a pass it rests
 * conf->scrub_pause_ms.  Loop thread only.
 */
#ifndef DFS_CSSCRUB_H
#define DFS_CSSCRUB_H

struct csd;
struct csscrub;

/* *out is NULL when scrubbing is off (scrub_rate 0).  0 or -ENOMEM. */
int csscrub_new(struct csd *d, struct csscrub **out);

/* Starts the first pass after a short delay.  NULL is a no-op. */
void csscrub_start(struct csscrub *s);

/* No more chunks are checked (one running finishes).  NULL is a no-op. */
void csscrub_stop(struct csscrub *s);

/* Frees s; the loop has run the last check's done.  NULL is a no-op. */
void csscrub_free(struct csscrub *s);

#endif
