/*
 * raftalloc: libc allocation behind a per-thread failure countdown.
 *
 * Invariants:
 *  1. countdown == 0: every call is plain libc.  countdown == k > 0: the
 *     kth call from now returns NULL (and disarms), the others succeed.
 */
#include "master/raftalloc.h"

#include <stdlib.h>

static _Thread_local unsigned long countdown;

static int should_fail(void)
{
    return countdown && --countdown == 0;
}

void *raftalloc_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size);
}

void *raftalloc_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *raftalloc_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size);
}

void raftalloc_fail_nth(unsigned long n)
{
    countdown = n;
}

unsigned long raftalloc_pending(void)
{
    return countdown;
}
