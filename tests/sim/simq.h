/*
 * simq: the simulator's event queue, a binary min-heap on (time, seq).
 *
 * seq is assigned at push, so events due at the same virtual time pop in
 * the order they were pushed: a fixed tie-break, hence a deterministic run.
 * The queue owns the message of a delivery event (freed by simq_release()
 * for events never popped; a popped event's message is the caller's).
 */
#ifndef DFS_SIMQ_H
#define DFS_SIMQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/raft.h"

enum simq_kind {
    SIMQ_TICK = 1,     /* node's logical clock */
    SIMQ_DELIVER,      /* msg arrives at node */
    SIMQ_DISK,         /* node's oldest pending write completes */
    SIMQ_CRASH,        /* node crashes (a targeted fault) */
    SIMQ_ISOLATE,      /* node cut off from everyone (a targeted fault) */
    SIMQ_RESTART,      /* node comes back from a crash */
    SIMQ_CHAOS,        /* the fault injector acts */
    SIMQ_CLIENT,       /* a client proposes or reads */
    SIMQ_PHASE,        /* chaos <-> calm */
};

struct simq_ev {
    uint64_t time;
    uint64_t seq;
    uint32_t kind;
    uint32_t node;          /* node id, 0 when none */
    uint32_t gen;           /* node incarnation the event belongs to */
    struct raft_msg *msg;   /* SIMQ_DELIVER: deep copy, see simmsg */
};

struct simq {
    struct simq_ev *heap;   /* owned */
    size_t n, cap;
    uint64_t next_seq;
};

void simq_init(struct simq *q);
/* Frees the heap and the messages of events still queued. */
void simq_release(struct simq *q);
/* Takes ownership of ev->msg.  0 or -ENOMEM (the message is freed then). */
int simq_push(struct simq *q, struct simq_ev ev);
/* Earliest event; false when empty. */
bool simq_pop(struct simq *q, struct simq_ev *out);

/* Deep copies of messages: the entry array, entry data and chunk bytes. */
struct raft_msg *simmsg_clone(const struct raft_msg *m);
void simmsg_free(struct raft_msg *m);

#endif
