/*
 * store: the chunkserver's chunk store, one data directory of checksummed
 * chunk replica files (DESIGN §3.5; format, layout and crash rules in
 * docs/CHUNKS.md).
 *
 * Every chunk is a file "ab/<16 hex id>.chunk" under the data directory
 * holding a header (id, version, length, CRC32C of every 64 KiB block) and
 * the data.  The store verifies block CRCs before it writes and before it
 * returns data: it never returns a byte that fails its CRC, and a chunk
 * whose data or header fails is reported (store_take_bad) so the server
 * can tell the master.
 *
 * Blocks and CRCs follow the protocol's DATA layout (common/protocol.h,
 * common/wire.h): the chunk is cut into a grid of STORE_BLOCK_SIZE cells;
 * a byte range [offset, offset + len) touches store_nblocks(offset, len)
 * cells, and its CRC i is the crc32c of the part of the range inside cell
 * offset / STORE_BLOCK_SIZE + i (so the first and last may be partial).
 *
 * Durability: a write is durable once a call with STORE_SYNC, store_sync,
 * store_set_version or store_truncate returned 0 after it; store_create
 * and store_delete are durable on return.  A power cut loses unsynced
 * writes: afterwards each block reads as before them, as written, or fails
 * with -DFS_ECORRUPT, never as wrong bytes; synced data reads back intact.
 *
 * Errors: 0 / a count on success, else a negative errno or -DFS_E* code.
 * -EIO from the disk marks the whole store failed: every later call but
 * store_list, store_take_bad, store_failed and store_close is -EIO, and the
 * caller should report all its chunks lost.  A full disk, or a write that
 * would eat into the reserved free space, is -ENOSPC and leaves the chunk
 * as it was.
 *
 * Threads: every call may be made from any thread at once, except
 * store_close.  Calls on different chunks run in parallel; calls on one
 * chunk are serialized (reads of one chunk share).
 */
#ifndef DFS_STORE_H
#define DFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/fsio.h"
#include "common/protocol.h"

#define STORE_BLOCK_SIZE PROTO_BLOCK_SIZE

#define STORE_MAX_OPEN   256

/* store_write flags */
#define STORE_SYNC 0x1      /* the write and all before it durable on return */

struct store;

struct store_params {
    /* Capacity of new chunks in bytes (until store_set_chunk_size): a
     * multiple of STORE_BLOCK_SIZE up to 2 GiB; 0 means PROTO_CHUNK_SIZE.
     * Chunks already on disk keep the capacity they were created with. */
    uint64_t chunk_size;
    /* Free bytes left alone: a create or write that would leave less
     * free space on the file system is -ENOSPC. */
    uint64_t reserved_bytes;
    /* The cluster this server belongs to; 0 when not known yet. */
    uint64_t cluster_id;
    /* Chunk files kept open between calls (their read-ahead state lives
     * in the open file); 0 means STORE_MAX_OPEN.  Chunks with unsynced
     * writes keep theirs open beyond it. */
    size_t max_open_files;
};

/*
 * Opens the data directory dir (created, one level, when missing) through
 * fs, which must outlive the store; dir is copied.  Checks the identity
 * file: a directory of another cluster is -DFS_ECLUSTER; a directory
 * without a cluster adopts params->cluster_id.  Then scans every chunk
 * file: removes temporary files left by an interrupted create, reads each
 * header (chunks whose header fails go to the bad list) and builds the
 * in-memory index.  On failure returns the error and, when errbuf is not
 * NULL, a one-line message naming the file in errbuf[0..errlen).  On
 * success *out is the store (free with store_close).
 */
int store_open(struct fsio *fs, const char *dir,
               const struct store_params *params, struct store **out,
               char *errbuf, size_t errlen);

/* Frees the store.  Syncs nothing: writes not yet synced are left as a
 * process crash leaves them (a clean shutdown calls store_sync first).
 * No other call may be running or made afterwards.  NULL is a no-op. */
void store_close(struct store *s);

/* The directory's identity (0 when not assigned yet). */
uint64_t store_cluster_id(struct store *s);
uint32_t store_server_id(struct store *s);

/* Records the cluster and server id (given by the master at registration)
 * durably.  A cluster id other than the directory's is -DFS_ECLUSTER. */
int store_set_identity(struct store *s, uint64_t cluster_id,
                       uint32_t server_id);

/* True once an I/O error has marked the store failed. */
bool store_failed(struct store *s);

/* Number of CRCs for the byte range [offset, offset + len): 0 when len is
 * 0, else the number of STORE_BLOCK_SIZE cells it touches. */
uint32_t store_nblocks(uint64_t offset, uint64_t len);

/* Creates chunk id, empty, at version (> 0), durably.  -EEXIST when the
 * store already has that id (in any version, even corrupt). */
int store_create(struct store *s, uint64_t id, uint32_t version);

/* Removes the chunk, durably.  -ENOENT when absent. */
int store_delete(struct store *s, uint64_t id);

/* Sets the version (> 0; the master's bump for a new write session),
 * durably, with every write before it. */
int store_set_version(struct store *s, uint64_t id, uint32_t version);

/*
 * Writes data[0..len) at chunk offset.  The chunk must be at version
 * (else -DFS_ESTALE_VER) and offset + len within its capacity (else
 * -EFBIG).  crcs holds store_nblocks(offset, len) CRCs in the layout
 * above; every one is checked before anything is written (-DFS_ECORRUPT
 * when one fails: the chunk is untouched).  crcs may be NULL for data from
 * a trusted local source: the store computes them.  Holes read as zeros;
 * the length becomes max(length, offset + len) (a write of 0 bytes changes
 * nothing).  flags: STORE_SYNC.  A partial block overwriting stored bytes
 * is read back and verified first: a stored block that fails is
 * -DFS_ECORRUPT (the chunk goes to the bad list).  All pointers are
 * borrowed for the call.
 */
int store_write(struct store *s, uint64_t id, uint32_t version,
                uint64_t offset, const void *data, size_t len,
                const uint32_t *crcs, unsigned flags);

/* Makes every write to the chunk durable.  0 at once when nothing is
 * pending. */
int store_sync(struct store *s, uint64_t id);

/*
 * Reads [offset, offset + len) clipped to the chunk's length into buf and
 * returns the byte count n (0 when offset is at or past the length).
 * version 0 reads any version, else it must match (-DFS_ESTALE_VER).  Every
 * block the range touches is verified in full; one that fails is
 * -DFS_ECORRUPT (nothing usable in buf; the chunk goes to the bad list),
 * so other blocks remain readable.  When crcs is not NULL it receives
 * store_nblocks(offset, n) CRCs of the data returned, in the layout above
 * (the caller provides room for store_nblocks(offset, len)).
 */
ssize_t store_read(struct store *s, uint64_t id, uint32_t version,
                   uint64_t offset, size_t len, void *buf, uint32_t *crcs);

/* A chunk file opened for a reader in another process on this host
 * (local reads, chunkserver/cslocal.h), with the chunk's state as it was
 * at the open. */
struct store_local {
    int fd;             /* read-only; the caller owns it: close(2) */
    uint32_t version;
    uint64_t length;
    uint64_t data_off;  /* file offset of chunk byte 0 */
    uint32_t tail_crc;  /* CRC of the last block's bytes when length is not
                           a block multiple (the CRC array holds the
                           others, at CHUNKFILE_CRC_OFF + 4 * block) */
};

/* Opens chunk id for such a reader when it is at version min_version or
 * newer: -DFS_ESTALE_VER when older, -ENOENT, -DFS_ECORRUPT (also for a
 * chunk found corrupt since the store opened), and -ENOTSUP
 * unless the store's fsio is the real file system (another process could
 * not see the simulated or power-cut backends' files).  A failed open
 * does not fail the store: the reader falls back to store_read. */
int store_open_local(struct store *s, uint64_t id, uint32_t min_version,
                     struct store_local *out);

/* Sets the length (bytes past it are dropped; growing reads as zeros),
 * durably with every write before it.  Same version and capacity rules as
 * store_write. */
int store_truncate(struct store *s, uint64_t id, uint32_t version,
                   uint64_t length);

/* Version and length of a chunk; -ENOENT when absent, -DFS_ECORRUPT when
 * its header failed at the scan. */
int store_stat(struct store *s, uint64_t id, uint32_t *version,
               uint64_t *length);

/* Whether this store created the chunk, or moved it to its version,
 * since it opened.  A write session's version a replica holds without
 * that was reached before a restart, which dropped what the session had
 * not synced: the replica may lack acknowledged bytes. */
bool store_moved(struct store *s, uint64_t id);

/* Re-reads and checks every block of the chunk (the scrubber, fsck
 * --verify): 0, -DFS_ECORRUPT (and the chunk goes to the bad list),
 * -DFS_ESTALE_VER when version is not 0 and differs, -ENOENT. */
int store_verify(struct store *s, uint64_t id, uint32_t version);

struct store_info {
    uint64_t id;
    uint32_t version;   /* 0 when the header failed */
    uint64_t length;
    bool corrupt;       /* header failed, or a block failed since open */
};

/* Calls fn for every chunk (order unspecified; info valid during the
 * call), the full chunk report.  A non-zero return from fn stops the walk
 * and is returned.  fn may call the store. */
typedef int (*store_list_fn)(const struct store_info *info, void *arg);
int store_list(struct store *s, store_list_fn fn, void *arg);

/* Hands over the ids of chunks found corrupt since the last call (each id
 * once; a chunk stays marked corrupt in store_list, which is the complete
 * answer should memory have run short for this list).  *ids is malloc'ed
 * for the caller to free (NULL when *n is 0). */
void store_take_bad(struct store *s, uint64_t **ids, size_t *n);

/* The capacity of chunks created from now on (the cluster's chunk size,
 * which the master gives at registration); -EINVAL unless a multiple of
 * STORE_BLOCK_SIZE up to 2 GiB.  Any thread. */
int store_set_chunk_size(struct store *s, uint64_t size);

/* Space of the data directory: total and avail from the file system
 * (avail net of the reserved bytes), used by chunk files. */
int store_space(struct store *s, uint64_t *total, uint64_t *used,
                uint64_t *avail);

#endif
