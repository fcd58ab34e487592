/*
 * csprobe: the probe of the data directories (vols_check) on a thread of
 * its own, for csmaster, which asks for one after every heartbeat.
 *
 * Not a disk-pool job: a disk that stops answering hangs the probe in a
 * read, and a job stuck in csd's disk pool would hold the shutdown
 * forever (csd waits for the pool to drain, then joins its threads).  A
 * probe stuck at csprobe_free is abandoned instead: its thread is left to
 * the process's exit, together with what it may still touch.
 *
 * Threads: every call on the loop thread; the probe thread touches only
 * the vols it was given (and, through vols, its fail callback).
 */
#ifndef DFS_CSPROBE_H
#define DFS_CSPROBE_H

#include <stdbool.h>

struct csprobe;
struct vols;

/* Starts the probe thread over v (borrowed: it must outlive the prober,
 * or at least a csprobe_free that returned false).  0, or a negative
 * errno. */
int csprobe_new(struct vols *v, struct csprobe **out);

/* Asks for a probe unless one is asked for or running.  Never blocks on
 * a disk. */
void csprobe_kick(struct csprobe *p);

/*
 * Stops the thread, waiting for a probe that runs until it has run
 * wait_ms in all.  Returns true when the thread ended (p is freed);
 * false, with an error logged, when the probe is still stuck in a disk
 * call: the thread is then abandoned (it frees p should it ever return),
 * and the vols and everything its fail callback reaches must be left
 * allocated.  NULL: true.
 */
bool csprobe_free(struct csprobe *p, unsigned wait_ms);

#endif
