/*
 * raftalloc: every allocation of the Raft core goes through here, so that
 * tests can make the Nth one fail and check that the core unwinds cleanly
 * (consistent state, no leak).  Free with free().
 *
 * The failure switch is TEST ONLY and per thread (the simulator runs seeds
 * on several threads); production never arms it.
 */
#ifndef DFS_RAFTALLOC_H
#define DFS_RAFTALLOC_H

#include <stddef.h>

void *raftalloc_malloc(size_t size);
void *raftalloc_calloc(size_t n, size_t size);
void *raftalloc_realloc(void *p, size_t size);

/* TEST ONLY: the nth allocation from now on this thread fails (n >= 1);
 * 0 disarms. */
void raftalloc_fail_nth(unsigned long n);
/* Allocations left before the armed failure (0: none armed, or fired). */
unsigned long raftalloc_pending(void);

#endif
