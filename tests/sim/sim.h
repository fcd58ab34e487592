/*
 * sim: one deterministic run of a simulated Raft cluster (one seed).
 *
 * Several master/raft cores in one process over a simulated network
 * (loss, duplication, reordering, delays, symmetric and asymmetric
 * partitions) and simulated disks (slow fsync, crashes losing what was not
 * durable), with membership changes, snapshots, leadership transfers and
 * key/value clients, alternating chaos phases with calm ones.  Every step
 * pops one event (a tick, a delivery, an fsync completing, a crash or
 * restart, a client or fault action) and checks the invariants it could
 * have broken (simcheck), plus liveness in calm phases.  Everything comes
 * from the seed: the same parameters replay the same run.
 */
#ifndef DFS_SIM_H
#define DFS_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct sim_params {
    uint64_t seed;
    unsigned nodes;       /* initial voters: 3 or 5 */
    uint64_t steps;
    unsigned bug;         /* enum raft_test_bug planted in every core */
    FILE *trace;          /* step-by-step trace, or NULL */
};

struct sim_stats {
    uint64_t elections;   /* times a node became leader */
    uint64_t committed;   /* highest index committed */
    uint64_t crashes;
    uint64_t snapshots;   /* snapshots installed from a leader */
    uint64_t reads;       /* ReadIndex reads served */
    uint64_t members;     /* membership changes committed */
    uint64_t transfers;   /* transfers requested */
    uint64_t calm_ticks;  /* worst ticks from calm to progress */
};

struct sim_result {
    bool failed;
    uint64_t step;        /* step of the failure (or steps run) */
    char msg[400];
    struct sim_stats stats;
};

/* Runs one seed to the end or to its first failure.  0, or -ENOMEM. */
int sim_run(const struct sim_params *p, struct sim_result *res);

/* Initial voters a seed gets when the command line does not say. */
unsigned sim_default_nodes(uint64_t seed);

#endif
