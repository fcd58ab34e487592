/*
 * raftrand: the small deterministic PRNG of the Raft core and its simulator.
 *
 * splitmix64: one 64-bit word of state, every seed (0 included) gives a
 * full-period stream, the same stream on every platform.  Not for
 * cryptography.  The Raft core draws its election jitter from one of these,
 * seeded from its config, so a run is a pure function of its inputs; the
 * simulator (tests/sim) drives all of its chaos from another.
 */
#ifndef DFS_RAFTRAND_H
#define DFS_RAFTRAND_H

#include <stdint.h>

struct raftrand {
    uint64_t state;
};

void raftrand_seed(struct raftrand *g, uint64_t seed);

uint64_t raftrand_next(struct raftrand *g);

/* Uniform in [0, n); 0 when n is 0. */
uint64_t raftrand_below(struct raftrand *g, uint64_t n);

/* Uniform in [lo, hi]; lo when hi <= lo. */
uint64_t raftrand_range(struct raftrand *g, uint64_t lo, uint64_t hi);

/* True with probability per_mille / 1000. */
int raftrand_chance(struct raftrand *g, unsigned per_mille);

/* One splitmix64 finalisation of x: a good 64-bit hash of a 64-bit key. */
uint64_t raftrand_mix(uint64_t x);

#endif
