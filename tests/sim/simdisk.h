/*
 * simdisk: one simulated server's disk, with slow fsync.
 *
 * Durable state (hard state, snapshot, log after it) plus a FIFO of writes
 * in flight.  A write becomes durable when the simulator completes it (its
 * fsync "returns"); a crash keeps a prefix of the writes in flight (they
 * reached the platter, the acknowledgement did not) and loses the rest.
 * This is the storage contract of master/raft.h played straight: the only
 * way the Raft core learns of durability is raft_persisted(seq).
 */
#ifndef DFS_SIMDISK_H
#define DFS_SIMDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/raft.h"

struct simdisk_write {
    uint64_t seq;                    /* Ready seq; 0 for an app compaction */
    uint64_t done_at;                /* virtual time it completes */
    bool has_hs;
    uint64_t term, vote;
    bool has_snap;
    bool snap_replaces_log;          /* received: drop every stored entry */
    struct raft_snapshot_meta snap;
    void *snap_data;                 /* owned */
    size_t snap_len;
    struct raft_entry *ents;         /* owned, with their data */
    size_t n_ents;
};

struct simdisk {
    uint64_t term, vote;
    struct raft_snapshot_meta snap;  /* index 0: none */
    void *snap_data;                 /* owned */
    size_t snap_len;
    struct raft_entry *ents;         /* owned: indexes base + 1 ... */
    size_t n, cap;
    uint64_t base;
    struct simdisk_write *q;         /* owned FIFO: q[head .. head + nq) */
    size_t head, nq, capq;
};

void simdisk_init(struct simdisk *d);
void simdisk_release(struct simdisk *d);

/* Queues what a Ready asks to persist (copied).  0 or -ENOMEM. */
int simdisk_queue_ready(struct simdisk *d, const struct raft_ready *rd,
                        uint64_t done_at);
/* Queues an application snapshot: stored, entries up to it dropped. */
int simdisk_queue_compact(struct simdisk *d,
                          const struct raft_snapshot_meta *meta,
                          const void *data, size_t len, uint64_t done_at);
/* Completion time of the last queued write (0 when none). */
uint64_t simdisk_last_done(const struct simdisk *d);

/*
 * Completes the oldest write: *seq gets its Ready seq (0 for a
 * compaction).  -EIO when the write would leave a gap in the log (a
 * contract violation by the core), -ENOENT when nothing is queued.
 */
int simdisk_complete(struct simdisk *d, uint64_t *seq);
/* Crash: the first `keep` writes in flight land, the rest are lost. */
int simdisk_crash(struct simdisk *d, size_t keep);

uint64_t simdisk_last_index(const struct simdisk *d);
/* Term of the durable entry at index (snapshot term at its index), or 0. */
uint64_t simdisk_term_at(const struct simdisk *d, uint64_t index);

/* What a restart reads back; points into the disk (valid until it changes). */
void simdisk_restore(const struct simdisk *d, struct raft_restore *rs);

#endif
