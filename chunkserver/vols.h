/*
 * vols: the chunkserver's data directories, one chunk store each, seen by
 * the rest of the server as one store (docs/CHUNKSERVER.md, "Data
 * directories").
 *
 * Owns the stores, the index that routes every chunk id to the directory
 * holding it, the placement of new chunks, the identity shared by every
 * directory, and the state of each directory (healthy or failed).  Called
 * by csd (open, close, identity), csio, csrepl, csmaster and csscrub with
 * the same operations, arguments and errors as store.h, where every chunk
 * lives in exactly one directory:
 *
 *  - a chunk is found through the route index, built at open from each
 *    store's list; a chunk met in two directories keeps the better copy
 *    (not corrupt, then higher version, then longer, then the earlier
 *    directory in the list) and the other is deleted at open, with a
 *    warning naming both;
 *  - vols_create puts a new chunk on the healthy directory with the most
 *    free space (net of the reserved space; directories within one chunk
 *    size of each other count as equal, and then the one holding fewer
 *    chunk bytes wins, so directories sharing a file system fill evenly);
 *    -ENOSPC only when every healthy directory refused it;
 *  - a directory fails when its store reports an I/O error (store_failed)
 *    or the probe (vols_check) cannot read its identity file.  Its chunks
 *    leave the index (calls on them are -ENOENT, as for any chunk this
 *    server does not hold) and go to the lost list (vols_take_lost) for
 *    the master; nothing new is placed there; space and lists leave it
 *    out.  A failed directory stays failed until the process restarts;
 *    its chunk ids stay known as lost (vols_lost) until then too, so the
 *    first write session of a chunk cannot re-create one of them with
 *    nothing but zeros before the write's offset (vols_create_new).
 *
 * Every directory of one server carries the same cluster and server id:
 * vols_open refuses a directory of another cluster or of another server
 * (-DFS_ECLUSTER, with a message naming it); a directory without an
 * identity adopts the others'.
 *
 * Threads: every call may be made from any thread at once, except
 * vols_open and vols_close.  The fail callback runs on the thread whose
 * call found the failure, with no lock held.
 */
#ifndef DFS_VOLS_H
#define DFS_VOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunkserver/store.h"
#include "common/fsio.h"

#define VOLS_MAX_DIRS 64

struct vols;

/* One data directory: its path and the file I/O it is reached through
 * (the same for every directory in the server; a test gives each its own
 * simulated disk).  Both borrowed: path for vols_open, fs until
 * vols_close. */
struct vols_dir {
    const char *path;
    struct fsio *fs;
};

/* Called once for each directory that fails, with how many healthy ones
 * are left. */
typedef void (*vols_fail_fn)(void *arg, const char *dir, size_t left);

struct vols_params {
    /* For every store; store.cluster_id is the cluster expected (0: not
     * known; then the directories' own identity decides); store.chunk_size
     * 0: not known, creates are -EAGAIN until vols_set_chunk_size. */
    struct store_params store;
    vols_fail_fn on_fail;           /* may be NULL */
    void *fail_arg;
};

/*
 * Opens the n (1..VOLS_MAX_DIRS) directories: checks that their
 * identities agree, opens each store (store_open), gives directories
 * without an identity the common one, and builds the route index,
 * removing the worse copy of a chunk found twice.  Every directory must
 * open: a failure returns its error with a one-line message naming the
 * directory in errbuf (may be NULL).  The same path twice is -DFS_ECONF.
 */
int vols_open(const struct vols_dir *dirs, size_t n,
              const struct vols_params *params, struct vols **out,
              char *errbuf, size_t errlen);

/* Frees everything (store_close of each).  NULL is a no-op. */
void vols_close(struct vols *v);

/* Directories configured, and those not failed. */
size_t vols_count(const struct vols *v);
size_t vols_healthy(struct vols *v);

/* Directory i's path, and whether it failed. */
const char *vols_dir_path(const struct vols *v, size_t i);
bool vols_dir_failed(struct vols *v, size_t i);

/* The directory holding chunk id (an index below vols_count), or
 * -ENOENT. */
int vols_locate(struct vols *v, uint64_t id);

/* The identity shared by the directories (0 when not assigned yet). */
uint64_t vols_cluster_id(struct vols *v);
uint32_t vols_server_id(struct vols *v);

/* store_set_chunk_size on every directory, and the unit of free space
 * when choosing one; -EINVAL for a size no store takes. */
int vols_set_chunk_size(struct vols *v, uint64_t size);

/* store_set_identity on every healthy directory.  -DFS_ECLUSTER when one
 * knows another cluster; -EIO when none is left. */
int vols_set_identity(struct vols *v, uint64_t cluster_id,
                      uint32_t server_id);

/* The store.h operations, routed to the directory holding the chunk
 * (vols_create: to the one chosen for it).  -ENOENT for a chunk of a
 * failed directory.  vols_create is for a copy of the whole chunk
 * (re-replication), so it takes a lost id too. */
int vols_create(struct vols *v, uint64_t id, uint32_t version);

/*
 * vols_create for a chunk new to the cluster, created by the first write
 * of its first session (a CS_WRITE with prev_version 0), which may start
 * at any offset: -EIO (and a warning naming the directory) when id was
 * lost with a failed directory, since the chunk would then hold only what
 * this session writes from now on, with valid CRCs over zeros where the
 * lost data was.  The writer then takes this server out of the chain.
 */
int vols_create_new(struct vols *v, uint64_t id, uint32_t version);

/* store_moved of chunk id's directory; false when it has none. */
bool vols_moved(struct vols *v, uint64_t id);

/* store_open_local on the directory holding the chunk. */
int vols_open_local(struct vols *v, uint64_t id, uint32_t min_version,
                    struct store_local *out);

/* Whether chunk id was in a directory that failed since vols_open (it
 * stays so until vols_close, even once a copy is back: the failed
 * directories bound the set). */
bool vols_lost(struct vols *v, uint64_t id);
int vols_delete(struct vols *v, uint64_t id);
int vols_set_version(struct vols *v, uint64_t id, uint32_t version);
int vols_write(struct vols *v, uint64_t id, uint32_t version,
               uint64_t offset, const void *data, size_t len,
               const uint32_t *crcs, unsigned flags);
int vols_sync(struct vols *v, uint64_t id);
ssize_t vols_read(struct vols *v, uint64_t id, uint32_t version,
                  uint64_t offset, size_t len, void *buf, uint32_t *crcs);
int vols_truncate(struct vols *v, uint64_t id, uint32_t version,
                  uint64_t length);
int vols_stat(struct vols *v, uint64_t id, uint32_t *version,
              uint64_t *length);
int vols_verify(struct vols *v, uint64_t id, uint32_t version);

/* store_list over the healthy directories. */
int vols_list(struct vols *v, store_list_fn fn, void *arg);

/* store_take_bad of the healthy directories, merged (a failed
 * directory's go to the lost list instead). */
void vols_take_bad(struct vols *v, uint64_t **ids, size_t *n);

/* Sums of store_space over the healthy directories; -EIO when none is
 * left (then all three are 0). */
int vols_space(struct vols *v, uint64_t *total, uint64_t *used,
               uint64_t *avail);

/* Hands over the chunks of directories failed since the last call, as
 * their stores last listed them (id, version, length); *out is malloc'ed
 * for the caller (NULL when *n is 0).  Each is reported once; should that
 * report be lost, a full report (which leaves them out) tells the same. */
void vols_take_lost(struct vols *v, struct store_info **out, size_t *n);

/* Probes every healthy directory (reads its identity file; blocking: a
 * disk thread's work) and fails those that cannot answer.  Returns how
 * many are healthy. */
size_t vols_check(struct vols *v);

#endif
