/*
 * raftrand: splitmix64 (Steele, Lea, Flood 2014).
 *
 * Invariants:
 *  1. The stream depends only on the seed: no global state, no clock.
 *  2. raftrand_below() rejects the biased tail, so small ranges are exact.
 */
#include "master/raftrand.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

uint64_t raftrand_mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void raftrand_seed(struct raftrand *g, uint64_t seed)
{
    g->state = seed;
}

uint64_t raftrand_next(struct raftrand *g)
{
    g->state += GOLDEN;
    return raftrand_mix(g->state);
}

uint64_t raftrand_below(struct raftrand *g, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Largest multiple of n that fits: draws above it would favour small values. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = raftrand_next(g);
    } while (x >= limit);
    return x % n;
}

uint64_t raftrand_range(struct raftrand *g, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + raftrand_below(g, hi - lo + 1);
}

int raftrand_chance(struct raftrand *g, unsigned per_mille)
{
    return raftrand_below(g, 1000) < per_mille;
}
