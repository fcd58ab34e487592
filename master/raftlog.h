/*
 * raftlog: the durable Raft log of a master — segment files of entries, the
 * hard state (term, vote, commit) and the latest snapshot, in one directory,
 * written through the fsio layer (common/fsio.h) so tests can cut the power.
 * docs/RAFTLOG.md gives the on-disk format, the recovery rules and the
 * durability argument.
 *
 * How the master drives it, for each Ready of the core (master/raft.h):
 *
 *     rd.snap:        raftlog_snapshot_install(log, rd.snap, data, len)
 *     rd.entries:     if (rd.entries[0].index <= raftlog_last_index(log))
 *                         raftlog_truncate(log, rd.entries[0].index);
 *                     raftlog_append(log, rd.entries, rd.n_entries)
 *     rd.hs_changed:  raftlog_hard_state_save(log, &hs)
 * and, once several Readys are queued (group commit):
 *     raftlog_sync(log)   then   raft_persisted(r, last seq handled)
 *
 * Durability per call: raftlog_append only writes; raftlog_sync makes
 * every appended entry durable (one fdatasync, plus one directory fsync
 * when a segment was created).  Everything else is durable when it returns
 * 0: truncate, snapshot save/install, hard state save (each costs syncs of
 * its own; they are rare).
 *
 * Errors: 0 or a negative errno / -DFS_E* code (common/dfs_error.h).  A
 * failed sync (or any failure that leaves the files in a state the handle
 * cannot describe) makes the handle failed: every later call except
 * raftlog_snapshot_load, raftlog_close and the getters returns that first
 * error, and the owner must close and reopen, which recovers the last
 * durable state.  A failed write of an append is undone and leaves the
 * handle usable.
 *
 * Threads: a struct raftlog is not thread-safe; one storage thread owns it
 * (the fsio it uses may be shared).
 */
#ifndef DFS_RAFTLOG_H
#define DFS_RAFTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/raft.h"

struct fsio;
struct raftlog;

/* Segments roll after this many bytes unless raftlog_options says else. */
#define RAFTLOG_DEFAULT_SEGMENT_SIZE (UINT64_C(64) << 20)
/* Largest entry data accepted (an entry must fit in one AppendEntries). */
#define RAFTLOG_MAX_ENTRY (16u << 20)
/* Size of raftlog_recovery.error. */
#define RAFTLOG_ERRLEN 256

struct raftlog_options {
    /* A segment takes no more entries once this many bytes long (a single
     * larger entry gets a segment of its own).  0: the default. */
    uint64_t segment_size;
};

/* The persistent Raft state besides the log (raft.h passes it as separate
 * fields).  commit is optional: 0, or an index known committed. */
struct raftlog_hard_state {
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
};

/* What raftlog_open() found.  Filled on success; on failure only error. */
struct raftlog_recovery {
    struct raftlog_hard_state hs;   /* all zero when none was saved */
    bool has_snapshot;
    struct raft_snapshot_meta snap; /* when has_snapshot; data: see
                                     * raftlog_snapshot_load() */
    uint64_t first_index;           /* first entry delivered: snap.index + 1 */
    uint64_t last_index;            /* last delivered; first_index - 1: none */
    uint64_t torn_bytes;            /* bytes cut off a torn tail (0: clean) */
    char error[RAFTLOG_ERRLEN];     /* on failure: what and where ("" else) */
};

/*
 * Called by raftlog_open() with each entry after the snapshot, in index
 * order, and by raftlog_read().  e and e->data are borrowed for the call
 * (copy what you keep).  A non-zero return stops the walk and is returned.
 */
typedef int (*raftlog_entry_fn)(const struct raft_entry *e, void *arg);

/*
 * Opens (recovers) the log kept in directory dir, which must exist;
 * raftlog owns every file in it named "log-*", "hardstate", "snapshot" and
 * their temp files, and ignores the others.  fs is borrowed and must
 * outlive the log; dir and opt (NULL: defaults) are copied; rec may be
 * NULL.
 *
 * Recovery: removes temp files and the segments wholly covered by the
 * snapshot, truncates a torn tail (an unsynced append cut by a crash),
 * keeps the entries after the snapshot only when the log holds the
 * snapshot's own (index, term), and makes what it found durable before
 * returning.  fn (may be NULL) receives the entries after the snapshot.
 * On error, entries already given to fn are to be discarded, and
 * rec->error says what failed and where (file, offset).
 *
 * Returns 0 and *out (free with raftlog_close), -DFS_ECORRUPT when a file
 * is damaged in a way no crash explains (a bad record followed by a record
 * proving it was durable, a bad record in a segment other than the last, an
 * index gap, a bad hard state or snapshot header), -EINVAL (segment_size
 * too small), -ENAMETOOLONG, -ENOMEM, an I/O error (-ENOENT: no dir), or
 * what fn returned.
 */
int raftlog_open(struct fsio *fs, const char *dir,
                 const struct raftlog_options *opt, raftlog_entry_fn fn,
                 void *arg, struct raftlog_recovery *rec,
                 struct raftlog **out);

/* Closes the files and frees log, syncing nothing (sync first).  NULL is a
 * no-op. */
void raftlog_close(struct raftlog *log);

/*
 * Writes entries[0..n) (copied to the file; borrowed for the call) after
 * the last entry: entries[0].index must be raftlog_last_index() + 1, the
 * indexes contiguous, terms >= 1 and never decreasing, len at most
 * RAFTLOG_MAX_ENTRY (else -EINVAL / -DFS_ETOOBIG, nothing written).  One
 * pwrite per segment touched.  Not durable until raftlog_sync().  When a
 * segment fills up, it is made durable and the next one is created.  On
 * an I/O error a prefix of the batch (those in earlier segments) may have
 * been appended: raftlog_last_index() tells.
 */
int raftlog_append(struct raftlog *log, const struct raft_entry *entries,
                   size_t n);

/* Makes every appended entry durable: afterwards raftlog_durable_index() ==
 * raftlog_last_index().  Nothing pending: no system call. */
int raftlog_sync(struct raftlog *log);

/*
 * Drops the entries with index >= from, durably before it returns (the
 * leader overwrote our tail).  from must be in (snapshot index,
 * last + 1] and stored (>= raftlog_first_index()); from == last + 1 is a
 * no-op.  -EINVAL otherwise.
 */
int raftlog_truncate(struct raftlog *log, uint64_t from);

/*
 * Removes the segments whose entries are all <= upto (never the last
 * segment).  upto must be <= the snapshot index (-EINVAL), as the snapshot
 * must hold them.  The removal becomes durable with the next sync; a crash
 * that undoes it is harmless.
 */
int raftlog_compact(struct raftlog *log, uint64_t upto);

/*
 * Saves a snapshot of the state machine taken locally at meta->index, which
 * must be an entry of this log with term meta->term (> the current snapshot
 * index, else -ESTALE; <= last index, else -EINVAL).  Written atomically
 * and durably; replaces the previous snapshot.  The log is kept: compact it
 * afterwards.  meta and data are borrowed for the call.
 */
int raftlog_snapshot_save(struct raftlog *log,
                          const struct raft_snapshot_meta *meta,
                          const void *data, size_t len);

/*
 * Installs a snapshot received from the leader: saves it as above (any
 * meta->index > the current snapshot index), then drops every stored
 * entry; the log continues at meta->index + 1.  Durable when it returns.
 */
int raftlog_snapshot_install(struct raftlog *log,
                             const struct raft_snapshot_meta *meta,
                             const void *data, size_t len);

/*
 * Reads the latest snapshot, checking its checksums.  *data (malloc'ed,
 * the caller frees it; NULL when *len is 0) and *len receive the bytes,
 * *meta (may be NULL) the metadata.  -ENOENT when there is none,
 * -DFS_ECORRUPT when damaged.
 */
int raftlog_snapshot_load(struct raftlog *log, struct raft_snapshot_meta *meta,
                          void **data, size_t *len);

/* Replaces the hard state, atomically and durably. */
int raftlog_hard_state_save(struct raftlog *log,
                            const struct raftlog_hard_state *hs);

/*
 * Calls fn for the stored entries from..to (inclusive) in order: the
 * follower catch-up path for entries the core no longer holds.  -ENOENT
 * when from is below raftlog_first_index() (compacted), -EINVAL when from >
 * to or to > last, -DFS_ECORRUPT when a record fails its checksum.
 */
int raftlog_read(struct raftlog *log, uint64_t from, uint64_t to,
                 raftlog_entry_fn fn, void *arg);

/* First stored entry (may be <= the snapshot index; last + 1 when none). */
uint64_t raftlog_first_index(const struct raftlog *log);
uint64_t raftlog_last_index(const struct raftlog *log);
uint64_t raftlog_last_term(const struct raftlog *log);
/* Every entry up to here is durable ("persisted up to N" for the core). */
uint64_t raftlog_durable_index(const struct raftlog *log);
uint64_t raftlog_snapshot_index(const struct raftlog *log);
/* 0, or the sticky error of a failed handle (see the top). */
int raftlog_failed(const struct raftlog *log);

#endif
