/*
 * raftlogmem: the Raft log as the core holds it in memory.
 *
 * The entries after a base point (the last compacted index, whose term is
 * remembered), in one contiguous array so that any run of entries can be
 * handed out as a pointer and a count.  Used only by the Raft core; the
 * durable copy is raftlog's business.  Not thread-safe.
 */
#ifndef DFS_RAFTLOGMEM_H
#define DFS_RAFTLOGMEM_H

#include <stddef.h>
#include <stdint.h>

#include "master/raft.h"

struct raftlogmem {
    struct raft_entry *ents;   /* owned, with each entry's data; ents[i]
                                * has index base + 1 + i */
    size_t n;
    size_t cap;
    uint64_t base;             /* index before ents[0] (0: empty log) */
    uint64_t base_term;
};

void raftlogmem_init(struct raftlogmem *l, uint64_t base, uint64_t base_term);
/* Frees every entry and its data. */
void raftlogmem_release(struct raftlogmem *l);

uint64_t raftlogmem_last(const struct raftlogmem *l);
uint64_t raftlogmem_last_term(const struct raftlogmem *l);
/* Term at index: base_term at base, 0 outside [base, last]. */
uint64_t raftlogmem_term(const struct raftlogmem *l, uint64_t index);
/* Entry at index in (base, last], else NULL.  Valid until the next change. */
const struct raft_entry *raftlogmem_get(const struct raftlogmem *l,
                                        uint64_t index);

/* Appends at last + 1 a copy of data (len bytes).  0 or -ENOMEM. */
int raftlogmem_append(struct raftlogmem *l, uint64_t term, uint32_t type,
                      const void *data, uint32_t len);
/* Replaces the entry at index (in (base, last]) by a copy of e, keeping the
 * entries after it.  0 or -ENOMEM (the log is unchanged then). */
int raftlogmem_overwrite(struct raftlogmem *l, uint64_t index,
                         const struct raft_entry *e);
/* Drops the entries with index >= from (from > base). */
void raftlogmem_truncate(struct raftlogmem *l, uint64_t from);
/* Drops the entries up to upto (in (base, last]); base becomes upto. */
void raftlogmem_compact(struct raftlogmem *l, uint64_t upto);
/* Drops everything; the log restarts after (base, base_term). */
void raftlogmem_reset(struct raftlogmem *l, uint64_t base, uint64_t base_term);

#endif
