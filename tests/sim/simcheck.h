/*
 * simcheck: the cluster-wide safety invariants of the Raft simulation.
 *
 * The simulator reports facts as they happen (a node became leader, logged
 * an entry, learned an entry is committed, applied it, replaced it...) and
 * each call checks the new fact against everything seen before, so that
 * checking after every step costs only what the step changed:
 *   - election safety:  at most one leader per term;
 *   - log matching:     (index, term) names one entry and one predecessor
 *                       term, in every log that ever held it;
 *   - committed history: one entry per committed index, the same on every
 *                       node; a node's applied state after index i has the
 *                       same digest everywhere (state machine safety);
 *   - durability:       a committed entry is never replaced in any log, and
 *                       every new leader holds every committed entry
 *                       (leader completeness).
 * A failed check returns -1 with the reason in simcheck_error().
 */
#ifndef DFS_SIMCHECK_H
#define DFS_SIMCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "master/raft.h"

struct simcheck_hist {
    uint64_t term;
    uint64_t ehash;
    uint64_t seen_term;  /* lowest term of a node seen knowing it committed:
                          * it was committed in that term or before */
    uint64_t digest;     /* state digest after applying it; valid if applied */
    uint8_t set;
    uint8_t applied;
};

struct simcheck_slot {
    uint64_t k1, k2;     /* k1 == 0: empty */
    uint64_t v1, v2;
};

struct simcheck_map {
    struct simcheck_slot *slots;   /* owned; cap is a power of two */
    size_t cap, n;
};

struct simcheck {
    struct simcheck_hist *hist;    /* owned; hist[i] for index i */
    size_t cap;
    uint64_t hist_max;             /* highest committed index recorded */
    uint64_t max_commit;           /* highest commit index seen anywhere */
    struct simcheck_map leaders;   /* term -> leader id */
    struct simcheck_map logged;    /* (index, term) -> (ehash, prev term) */
    char err[320];
};

void simcheck_init(struct simcheck *c);
void simcheck_release(struct simcheck *c);
const char *simcheck_error(const struct simcheck *c);

/* Hash identifying an entry's contents (type and data). */
uint64_t simcheck_ehash(const struct raft_entry *e);

int simcheck_leader(struct simcheck *c, uint64_t term, uint64_t id);
int simcheck_logged(struct simcheck *c, uint64_t node, uint64_t index,
                    uint64_t term, uint64_t ehash, uint64_t prev_term);
/* The node, in term now, knows index is committed, holding (term, ehash)
 * there. */
int simcheck_committed(struct simcheck *c, uint64_t node, uint64_t now,
                       uint64_t index, uint64_t term, uint64_t ehash);
/* The node, in term now, applied index; its state digest is now digest. */
int simcheck_applied(struct simcheck *c, uint64_t node, uint64_t now,
                     uint64_t index, uint64_t term, uint64_t ehash,
                     uint64_t digest);
/* The node installed a snapshot at index with that state digest. */
int simcheck_snapshot(struct simcheck *c, uint64_t node, uint64_t index,
                      uint64_t digest);
/* The node's entry (index, term, ehash) is being overwritten. */
int simcheck_replaced(struct simcheck *c, uint64_t node, uint64_t index,
                      uint64_t term, uint64_t ehash);
/* A node just became leader: it must hold every entry committed in an
 * earlier term (a leader of an older term, elected late on delayed votes,
 * need not). */
int simcheck_complete(struct simcheck *c, const struct raft *leader);
void simcheck_commit_seen(struct simcheck *c, uint64_t commit);

/* Committed (term, hash) at index, or NULL when not known committed. */
const struct simcheck_hist *simcheck_hist(const struct simcheck *c,
                                          uint64_t index);

#endif
