/*
 * store: the chunk store of one data directory (docs/CHUNKS.md).
 *
 * Owns the index id -> struct store_chunk, every chunk file, and the
 * directory's identity (its file format is storeid.c's).  A chunk file is
 * laid out by chunkfile.h: two alternating header slots (id, version,
 * length, CRC of the partial last block), an array with the CRC of every
 * full block, then the data.
 *
 * A write puts the data and the new CRCs of the full blocks it changed in
 * place, and keeps the new length and last-block CRC in memory (dirty).  A
 * commit (STORE_SYNC, store_sync, store_set_version, store_truncate)
 * fdatasyncs the file, writes the header into the other slot, fdatasyncs
 * again.  So on disk, the newest valid slot always describes data that was
 * durable before the slot was written; a torn slot leaves the previous one.
 * The first write after a commit that overwrites committed bytes first
 * makes the overwrite marker durable; the scan repairs a chunk whose
 * marker names its newest commit (scan_repair).
 *
 * Invariants (ch = a chunk in the index, L = ch->length):
 *  1. The newest valid header slot on disk is ch->hdr (in ch->slot), and
 *     the data and CRC entries it covers were durable before it was
 *     written.  Writes since (ch->dirty) changed data and full-block CRC
 *     entries in place, never a header slot.
 *  2. For every block b entirely below L, the CRC entry on disk (as the
 *     running process reads it) is the crc32c of its bytes; when L is not a
 *     block multiple, ch->tail_crc is the crc32c of the last block's bytes
 *     below L.
 *  3. File bytes past data_off + L read as zeros (the file ends earlier or
 *     holds zeros): the scan truncates junk an interrupted write left, a
 *     failed write truncates back, a shrinking truncate cuts the file.
 *  4. ch->fd >= 0 whenever ch->dirty, so the commit's fdatasync is made on
 *     a descriptor open since the writes and reports their writeback
 *     errors.  A chunk keeps its descriptor between calls (the kernel's
 *     read-ahead state lives in it), ch->in_lru exactly when ch->fd >= 0;
 *     beyond max_open the least recently used clean chunks' are closed.
 *  5. The index holds one reference to each chunk it lists; a chunk is
 *     freed at zero references, which only happens after it left the
 *     index (gone).
 *
 * Locks: ch->lock (rwlock: writers are every call that changes the chunk
 * or its fd, readers are store_read/verify/stat/list) is taken before
 * s->mu; s->mu (the index, references, the bad list, ch->bad) is a leaf and
 * never held while taking a chunk lock.  s->ident_mu guards the identity
 * alone and is never held with another lock.  s->failed and s->used are
 * atomics.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkfile.h"
#include "chunkidx.h"
#include "storeid.h"
#include "common/crc32c.h"
#include "common/dfs_error.h"
#include "common/log.h"

#define B               ((uint64_t)STORE_BLOCK_SIZE)
#define DIR_MAX         (PATH_MAX - 64)   /* room for "/ab/<name>" */
#define VERIFY_PIECE    (1u << 20)

struct store_chunk {
    struct chunkidx_node node;      /* node.id: immutable; linked under mu */
    pthread_rwlock_t lock;
    /* protected by store->mu */
    unsigned refs;
    bool bad;                       /* found corrupt since open */
    /* protected by lock */
    bool gone;                      /* deleted, or its create failed */
    bool header_bad;                /* no valid header at the scan */
    struct chunkfile_hdr hdr;       /* newest durable header */
    int slot;                       /* the slot holding hdr */
    uint64_t length;                /* current length, maybe uncommitted */
    uint32_t tail_crc;              /* current CRC of the last partial block */
    bool dirty;                     /* written since the last commit */
    bool marked;                    /* the marker on disk names hdr.seq */
    bool moved;                     /* created or moved to hdr.version since
                                       the store opened (store_moved) */
    uint64_t fsize;                 /* size of the file */
    /* -1 or open read-write; set under the write lock or by chunk_fd's
     * compare-and-swap under the read lock, cleared under the write lock */
    int fd;
    /* protected by store->mu: the list of chunks with an open fd */
    struct store_chunk *lru_prev, *lru_next;
    bool in_lru;
};

struct store {
    struct fsio *fs;                /* borrowed */
    char dir[DIR_MAX];
    uint64_t chunk_size;            /* atomic: store_set_chunk_size */
    uint64_t reserved;
    uint32_t zero_block_crc;        /* crc32c of B zero bytes */
    pthread_mutex_t ident_mu;
    struct storeid id;              /* protected by ident_mu */
    pthread_mutex_t mu;
    struct chunkidx index;          /* protected by mu */
    uint64_t *bad;                  /* protected by mu */
    size_t nbad, bad_cap;           /* protected by mu */
    struct store_chunk *lru_head;   /* protected by mu: most recent first */
    struct store_chunk *lru_tail;   /* protected by mu */
    size_t nopen;                   /* protected by mu: chunks in the list */
    size_t max_open;
    uint64_t used;                  /* atomic: bytes of chunk files */
    bool failed;                    /* atomic */
};

/* What a write or truncate changes: the CRCs of blocks first..first+n-1
 * and the length. */
struct plan {
    uint32_t first, n;
    uint32_t *crc;                  /* malloc'ed, n entries */
    uint64_t length;
};

/* ======================================================================== */
/* small helpers                                                            */
/* ======================================================================== */

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Bytes of block b below length. */
static uint64_t block_valid(uint64_t length, uint32_t b)
{
    uint64_t start = (uint64_t)b * B;
    return length <= start ? 0 : min_u64(B, length - start);
}

static uint32_t zero_crc(const struct store *s, uint64_t n)
{
    return n == B ? s->zero_block_crc : chunkfile_zero_crc(n);
}

uint32_t store_nblocks(uint64_t offset, uint64_t len)
{
    if (len == 0)
        return 0;
    return (uint32_t)((offset + len - 1) / B - offset / B + 1);
}

static void chunk_path(const struct store *s, uint64_t id, bool tmp,
                       char out[PATH_MAX])
{
    char name[CHUNKFILE_NAME_MAX];
    if (tmp)
        chunkfile_tmp_name(id, name);
    else
        chunkfile_name(id, name);
    snprintf(out, PATH_MAX, "%s/%s", s->dir, name);
}

static void sub_path(const struct store *s, unsigned sub, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%02x", s->dir, sub);
}

bool store_failed(struct store *s)
{
    return __atomic_load_n(&s->failed, __ATOMIC_ACQUIRE);
}

static void store_fail(struct store *s)
{
    if (!__atomic_exchange_n(&s->failed, true, __ATOMIC_ACQ_REL))
        log_error("store: %s: I/O error: data directory marked failed, "
                  "all its chunks are lost", s->dir);
}

static void used_add(struct store *s, int64_t delta)
{
    __atomic_add_fetch(&s->used, (uint64_t)delta, __ATOMIC_RELAXED);
}

/* Logs a failed disk call on chunk id's file; -EIO fails the store.
 * Returns rc. */
static int io_fail(struct store *s, uint64_t id, const char *what, int rc)
{
    char path[PATH_MAX];
    chunk_path(s, id, false, path);
    log_error("store: chunk %016" PRIx64 " (%s): %s: %s", id, path, what,
              dfs_strerror(rc));
    if (rc == -EIO)
        store_fail(s);
    return rc;
}

/* ======================================================================== */
/* index                                                                    */
/* ======================================================================== */

static struct store_chunk *chunk_of(struct chunkidx_node *n)
{
    return (struct store_chunk *)((char *)n -
                                  offsetof(struct store_chunk, node));
}

/* Caller holds s->mu. */
static struct store_chunk *table_find(struct store *s, uint64_t id)
{
    struct chunkidx_node *n = chunkidx_find(&s->index, id);
    return n ? chunk_of(n) : NULL;
}

/* Caller holds s->mu; id is absent.  The index takes a reference. */
static void table_insert(struct store *s, struct store_chunk *ch)
{
    chunkidx_insert(&s->index, &ch->node);
    ch->refs++;
}

/* Caller holds s->mu and a reference besides the index's, which this
 * drops. */
static void table_remove(struct store *s, struct store_chunk *ch)
{
    chunkidx_remove(&s->index, &ch->node);
    ch->refs--;
}

static struct store_chunk *chunk_new(uint64_t id)
{
    struct store_chunk *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->node.id = id;
    ch->fd = -1;
    pthread_rwlock_init(&ch->lock, NULL);
    return ch;
}

static void chunk_free(struct store_chunk *ch)
{
    pthread_rwlock_destroy(&ch->lock);
    free(ch);
}

/* Drops a reference taken by chunk_acquire or table snapshot. */
static void chunk_put(struct store *s, struct store_chunk *ch)
{
    pthread_mutex_lock(&s->mu);
    bool last = --ch->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        chunk_free(ch);
}

/*
 * Finds chunk id, references it and takes its lock (exclusive or shared).
 * 0 with *out set, -ENOENT, or -EIO when the store failed.  Undo with
 * chunk_release.
 */
static int chunk_acquire(struct store *s, uint64_t id, bool excl,
                         struct store_chunk **out)
{
    if (store_failed(s))
        return -EIO;
    pthread_mutex_lock(&s->mu);
    struct store_chunk *ch = table_find(s, id);
    if (ch)
        ch->refs++;
    pthread_mutex_unlock(&s->mu);
    if (!ch)
        return -ENOENT;
    if (excl)
        pthread_rwlock_wrlock(&ch->lock);
    else
        pthread_rwlock_rdlock(&ch->lock);
    if (ch->gone) {
        pthread_rwlock_unlock(&ch->lock);
        chunk_put(s, ch);
        return -ENOENT;
    }
    *out = ch;
    return 0;
}

static void chunk_release(struct store *s, struct store_chunk *ch)
{
    pthread_rwlock_unlock(&ch->lock);
    chunk_put(s, ch);
}

/* Marks ch corrupt and queues it for store_take_bad, once.  A queue that
 * cannot grow drops the id; store_list still shows the chunk corrupt. */
static void chunk_flag_bad(struct store *s, struct store_chunk *ch)
{
    pthread_mutex_lock(&s->mu);
    if (!ch->bad) {
        ch->bad = true;
        if (s->nbad == s->bad_cap) {
            size_t cap = s->bad_cap ? 2 * s->bad_cap : 16;
            uint64_t *v = realloc(s->bad, cap * sizeof(*v));
            if (v) {
                s->bad = v;
                s->bad_cap = cap;
            }
        }
        if (s->nbad < s->bad_cap)
            s->bad[s->nbad++] = ch->node.id;
    }
    pthread_mutex_unlock(&s->mu);
}

/* 0 when ch may be used at version (0: any). */
static int chunk_usable(const struct store_chunk *ch, uint32_t version)
{
    if (ch->header_bad)
        return -DFS_ECORRUPT;
    if (version && version != ch->hdr.version)
        return -DFS_ESTALE_VER;
    return 0;
}

/* ======================================================================== */
/* file access                                                              */
/* ======================================================================== */

/* Opens ch's file read-write; returns the fd or a logged error. */
static int chunk_open(struct store *s, const struct store_chunk *ch)
{
    char path[PATH_MAX];
    chunk_path(s, ch->node.id, false, path);
    int fd = fsio_open(s->fs, path, O_RDWR, 0);
    if (fd < 0)
        return io_fail(s, ch->node.id, "open", fd);
    return fd;
}

static void lru_unlink(struct store *s, struct store_chunk *ch)
{
    *(ch->lru_prev ? &ch->lru_prev->lru_next : &s->lru_head) = ch->lru_next;
    *(ch->lru_next ? &ch->lru_next->lru_prev : &s->lru_tail) = ch->lru_prev;
    ch->in_lru = false;
    s->nopen--;
}

static void lru_push(struct store *s, struct store_chunk *ch)
{
    ch->lru_prev = NULL;
    ch->lru_next = s->lru_head;
    *(s->lru_head ? &s->lru_head->lru_prev : &s->lru_tail) = ch;
    s->lru_head = ch;
    ch->in_lru = true;
    s->nopen++;
}

/*
 * Closes the descriptors of least recently used clean chunks while more
 * than max_open are open.  A chunk whose lock is taken is skipped:
 * trywrlock never waits, so holding s->mu here breaks no lock order.
 * Caller holds s->mu.
 */
static void lru_evict(struct store *s, const struct store_chunk *self)
{
    struct store_chunk *ch = s->lru_tail, *prev;
    for (; ch && s->nopen > s->max_open; ch = prev) {
        prev = ch->lru_prev;
        if (ch == self || pthread_rwlock_trywrlock(&ch->lock) != 0)
            continue;
        if (!ch->dirty) {
            fsio_close(s->fs, ch->fd);
            ch->fd = -1;
            lru_unlink(s, ch);
        }
        pthread_rwlock_unlock(&ch->lock);
    }
}

/* ch's descriptor, opened when it has none; either lock held. */
static int chunk_fd(struct store *s, struct store_chunk *ch)
{
    int fd = __atomic_load_n(&ch->fd, __ATOMIC_ACQUIRE);
    bool opened = false;
    if (fd < 0) {
        fd = chunk_open(s, ch);
        if (fd < 0)
            return fd;
        int none = -1;
        opened = __atomic_compare_exchange_n(&ch->fd, &none, fd, false,
                                             __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE);
        if (!opened) {              /* another reader was first */
            fsio_close(s->fs, fd);
            fd = none;
        }
    }
    pthread_mutex_lock(&s->mu);
    if (opened)
        lru_push(s, ch);
    else if (ch->in_lru && s->lru_head != ch) {
        lru_unlink(s, ch);
        lru_push(s, ch);
    }
    lru_evict(s, ch);
    pthread_mutex_unlock(&s->mu);
    return fd;
}

/* Closes ch's descriptor.  Write lock held. */
static void chunk_close_fd(struct store *s, struct store_chunk *ch)
{
    if (ch->fd < 0)
        return;
    fsio_close(s->fs, ch->fd);
    ch->fd = -1;
    pthread_mutex_lock(&s->mu);
    lru_unlink(s, ch);
    pthread_mutex_unlock(&s->mu);
}

/* Reads n bytes at file offset off; bytes past the end of the file read
 * as zeros (invariant 3). */
static int read_at(struct store *s, const struct store_chunk *ch, int fd,
                   void *buf, uint64_t n, uint64_t off)
{
    ssize_t got = fsio_pread(s->fs, fd, buf, (size_t)n, (off_t)off);
    if (got < 0)
        return io_fail(s, ch->node.id, "read", (int)got);
    memset((uint8_t *)buf + got, 0, (size_t)(n - (uint64_t)got));
    return 0;
}

/* The CRCs of blocks first..first+n-1 in the current state: entries of the
 * array for full blocks, ch->tail_crc for the partial last one. */
static int load_crcs(struct store *s, const struct store_chunk *ch, int fd,
                     uint32_t first, uint32_t n, uint32_t *out)
{
    uint8_t *raw = malloc((size_t)n * 4);
    if (!raw)
        return -ENOMEM;
    int rc = read_at(s, ch, fd, raw, (uint64_t)n * 4,
                     chunkfile_crc_off(first));
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        out[i] = block_valid(ch->length, first + i) == B
                     ? get_le32(raw + 4 * (size_t)i) : ch->tail_crc;
    free(raw);
    return rc;
}

/* A stored block failed its CRC: logs it, flags the chunk. */
static int block_corrupt(struct store *s, struct store_chunk *ch, uint32_t b,
                         uint32_t want, uint32_t got)
{
    char path[PATH_MAX];
    chunk_path(s, ch->node.id, false, path);
    log_error("store: chunk %016" PRIx64 " (%s): block %" PRIu32
              " fails its CRC (stored %08" PRIx32 ", data %08" PRIx32 ")",
              ch->node.id, path, b, want, got);
    chunk_flag_bad(s, ch);
    return -DFS_ECORRUPT;
}

/* Reads block b's bytes below ch->length into buf and checks them against
 * want. */
static int read_block(struct store *s, struct store_chunk *ch, int fd,
                      uint32_t b, uint32_t want, uint8_t *buf)
{
    uint64_t v = block_valid(ch->length, b);
    int rc = read_at(s, ch, fd, buf, v,
                     chunkfile_data_off(ch->hdr.capacity) + (uint64_t)b * B);
    if (rc < 0)
        return rc;
    uint32_t got = crc32c(0, buf, (size_t)v);
    return got == want ? 0 : block_corrupt(s, ch, b, want, got);
}

/* Whether block b lies whole (its bytes below the length) in [off, end). */
static bool block_inside(const struct store_chunk *ch, uint32_t b,
                         uint64_t off, uint64_t end)
{
    uint64_t start = (uint64_t)b * B;
    return start >= off && start + block_valid(ch->length, b) <= end;
}

/*
 * Reads blocks b..last, each lying whole in [off, end), straight into
 * buf (which holds [off, end)), verifying each; their CRCs go to
 * crcs[b - c0 ...] when crcs is not NULL.
 */
static int read_run(struct store *s, struct store_chunk *ch, int fd,
                    uint32_t b, uint32_t last, uint64_t off, uint8_t *buf,
                    const uint32_t *want, uint32_t c0, uint32_t *crcs)
{
    uint64_t start = (uint64_t)b * B;
    uint64_t stop = (uint64_t)last * B + block_valid(ch->length, last);
    int rc = read_at(s, ch, fd, buf + (start - off), stop - start,
                     chunkfile_data_off(ch->hdr.capacity) + start);
    for (uint32_t k = b; rc == 0 && k <= last; k++) {
        uint64_t ks = (uint64_t)k * B;
        uint32_t got = crc32c(0, buf + (ks - off),
                              (size_t)block_valid(ch->length, k));
        if (got != want[k - c0])
            return block_corrupt(s, ch, k, want[k - c0], got);
        if (crcs)
            crcs[k - c0] = got;
    }
    return rc;
}

/*
 * Reads [off, end) (0 < end - off, end <= ch->length) into buf, verifying
 * every block it touches in full; crcs (may be NULL) gets the CRC of each
 * block's part of the range.  Either lock held.
 */
static int read_range(struct store *s, struct store_chunk *ch, int fd,
                      uint64_t off, uint64_t end, uint8_t *buf,
                      uint32_t *crcs)
{
    uint32_t c0 = (uint32_t)(off / B), c1 = (uint32_t)((end - 1) / B);
    uint32_t *want = malloc(((size_t)c1 - c0 + 1) * sizeof(*want));
    uint8_t *scratch = NULL;
    int rc = want ? load_crcs(s, ch, fd, c0, c1 - c0 + 1, want) : -ENOMEM;
    for (uint32_t b = c0; rc == 0 && b <= c1;) {
        if (block_inside(ch, b, off, end)) {
            uint32_t last = b;
            while (last < c1 && block_inside(ch, last + 1, off, end))
                last++;
            rc = read_run(s, ch, fd, b, last, off, buf, want, c0, crcs);
            b = last + 1;
            continue;
        }
        if (!scratch && !(scratch = malloc(B))) {
            rc = -ENOMEM;
            break;
        }
        rc = read_block(s, ch, fd, b, want[b - c0], scratch);
        if (rc < 0)
            break;
        uint64_t bs = (uint64_t)b * B;
        uint64_t ps = max_u64(off, bs), pe = min_u64(end, bs + B);
        memcpy(buf + (ps - off), scratch + (ps - bs), (size_t)(pe - ps));
        if (crcs)
            crcs[b - c0] = crc32c(0, buf + (ps - off), (size_t)(pe - ps));
        b++;
    }
    free(scratch);
    free(want);
    return rc;
}

/* ======================================================================== */
/* commits                                                                  */
/* ======================================================================== */

/*
 * Makes the chunk's current state durable with the given version:
 * fdatasync the writes, write the header into the other slot, fdatasync.
 * A failure leaves ch->hdr as it was and the chunk flagged corrupt (a
 * failed sync may have lost its writes for good).  Write lock held.
 */
static int commit(struct store *s, struct store_chunk *ch, uint32_t version)
{
    int fd = chunk_fd(s, ch);
    if (fd < 0)
        return fd;
    int rc = ch->dirty ? fsio_fdatasync(s->fs, fd) : 0;
    if (rc < 0)
        goto err_flag_bad;
    struct chunkfile_hdr h = ch->hdr;
    h.seq++;
    h.version = version;
    h.length = ch->length;
    h.tail_crc = ch->tail_crc;
    uint8_t slot[CHUNKFILE_SLOT_BYTES];
    chunkfile_encode(&h, slot);
    ssize_t n = fsio_pwrite(s->fs, fd, slot, sizeof(slot),
                            (off_t)chunkfile_slot_off(1 - ch->slot));
    rc = n < 0 ? (int)n : fsio_fdatasync(s->fs, fd);
    if (rc < 0)
        goto err_flag_bad;
    ch->hdr = h;
    ch->slot = 1 - ch->slot;
    ch->dirty = false;
    ch->marked = false;
    return 0;

err_flag_bad:
    chunk_flag_bad(s, ch);
    return io_fail(s, ch->node.id, "commit", rc);
}

static int sync_locked(struct store *s, struct store_chunk *ch)
{
    return ch->dirty ? commit(s, ch, ch->hdr.version) : 0;
}

/* ======================================================================== */
/* planning a change of blocks                                              */
/* ======================================================================== */

/* The stored CRC of full block b, from the array. */
static int array_crc(struct store *s, const struct store_chunk *ch, int fd,
                     uint32_t b, uint32_t *crc)
{
    return load_crcs(s, ch, fd, b, 1, crc);
}

/*
 * The CRC of block b (its CRC old) once its stored bytes [ps, ps + n) are
 * replaced by data, from the bytes replaced alone.  CRC-32C is affine: for
 * X = old bytes ^ new bytes over the piece and t stored bytes after it,
 * crc(new block) = old ^ shift_t(crc(X) ^ crc(0^n)).  So a 4 KiB overwrite
 * reads and checksums 4 KiB, not the 64 KiB block twice.  The rest of the
 * block is not verified here, and need not be: a damaged byte outside the
 * piece keeps failing the block's check, and one inside it makes the
 * block fail from now on (a false alarm, never a laundered block).
 */
static int plan_overwrite(struct store *s, struct store_chunk *ch, int fd,
                          uint32_t b, uint32_t old, uint64_t ps, uint64_t t,
                          const uint8_t *data, size_t n, uint32_t *out)
{
    uint8_t *x = malloc(n);
    if (!x)
        return -ENOMEM;
    int rc = read_at(s, ch, fd, x, n,
                     chunkfile_data_off(ch->hdr.capacity) + (uint64_t)b * B + ps);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            x[i] ^= data[i];
        uint32_t delta = crc32c(0, x, n) ^ zero_crc(s, n);
        *out = old ^ crc32c_combine(delta, 0, (size_t)t);
    }
    free(x);
    return rc;
}

/*
 * The new CRC of block b when [off, off + len) of data is written (len may
 * be 0: a block only extended with zeros) and the length becomes
 * new_len.  in_crc is the CRC of the data's part of the block.  A piece
 * inside the stored bytes reads only what it replaces (plan_overwrite);
 * one that also runs past them reads the block back and verifies it;
 * appends combine CRCs, relying on invariant 3 for the gap.
 */
static int plan_block(struct store *s, struct store_chunk *ch, int fd,
                      uint32_t b, uint64_t new_len, uint64_t off,
                      const uint8_t *data, size_t len, uint32_t in_crc,
                      uint32_t *out)
{
    uint64_t bs = (uint64_t)b * B;
    uint64_t v = block_valid(ch->length, b), nv = block_valid(new_len, b);
    uint64_t ps = 0, pe = 0;
    if (len > 0 && off < bs + B && off + len > bs) {
        ps = max_u64(off, bs) - bs;
        pe = min_u64(off + len, bs + B) - bs;
    }
    if (pe > ps && ps == 0 && pe >= v) {
        *out = in_crc;              /* the piece replaces every stored byte */
        return 0;
    }
    uint32_t old = ch->tail_crc;
    if (v == 0)
        old = 0;
    else if (v == B && pe > ps) {
        int rc = array_crc(s, ch, fd, b, &old);
        if (rc < 0)
            return rc;
    }
    if (pe == ps) {                 /* extended with zeros */
        *out = crc32c_combine(old, zero_crc(s, nv - v), (size_t)(nv - v));
        return 0;
    }
    if (ps >= v) {                  /* appended after a gap of zeros */
        uint32_t crc = crc32c_combine(old, zero_crc(s, ps - v),
                                      (size_t)(ps - v));
        *out = crc32c_combine(crc, in_crc, (size_t)(pe - ps));
        return 0;
    }
    if (pe <= v)                    /* in place, inside the stored bytes */
        return plan_overwrite(s, ch, fd, b, old, ps, v - pe,
                              data + (bs + ps - off), (size_t)(pe - ps), out);
    uint8_t *buf = malloc(B);
    if (!buf)
        return -ENOMEM;
    int rc = read_block(s, ch, fd, b, old, buf);
    if (rc == 0) {
        memcpy(buf + ps, data + (bs + ps - off), (size_t)(pe - ps));
        *out = crc32c(0, buf, (size_t)max_u64(v, pe));
    }
    free(buf);
    return rc;
}

/*
 * Plans writing data[0..len) at off (len 0: only setting the length to
 * new_len >= ch->length): the new CRC of every block from the first one
 * changed (the old last block when the write leaves a gap) to the last.
 * in holds the CRCs of the data's pieces.  On success p->crc is the
 * caller's to free.
 */
static int plan_change(struct store *s, struct store_chunk *ch, int fd,
                       uint64_t off, const uint8_t *data, size_t len,
                       const uint32_t *in, uint64_t new_len, struct plan *p)
{
    uint64_t lo = len > 0 ? off : new_len;
    uint64_t hi = len > 0 ? off + len : new_len;
    p->first = (uint32_t)(min_u64(lo, ch->length) / B);
    uint32_t last = (uint32_t)((hi - 1) / B);
    p->n = last - p->first + 1;
    p->length = new_len;
    p->crc = malloc((size_t)p->n * sizeof(*p->crc));
    if (!p->crc)
        return -ENOMEM;
    uint32_t c0 = (uint32_t)(off / B);
    for (uint32_t b = p->first; b <= last; b++) {
        uint32_t in_crc = len > 0 && b >= c0 ? in[b - c0] : 0;
        int rc = plan_block(s, ch, fd, b, new_len, off, data, len, in_crc,
                            &p->crc[b - p->first]);
        if (rc < 0) {
            free(p->crc);
            p->crc = NULL;
            return rc;
        }
    }
    return 0;
}

/*
 * Writes the planned CRCs of the blocks that are full at the new length
 * into the array, then moves the in-memory length and last-block CRC.
 */
static int plan_apply(struct store *s, struct store_chunk *ch,
                      const struct plan *p)
{
    uint32_t full_end = (uint32_t)(p->length / B);     /* first not full */
    uint32_t n = full_end > p->first ? full_end - p->first : 0;
    if (n > p->n)
        n = p->n;
    if (n > 0) {
        uint8_t *raw = malloc((size_t)n * 4);
        if (!raw)
            return -ENOMEM;
        for (uint32_t i = 0; i < n; i++)
            put_le32(raw + 4 * (size_t)i, p->crc[i]);
        ssize_t w = fsio_pwrite(s->fs, ch->fd, raw, (size_t)n * 4,
                                (off_t)chunkfile_crc_off(p->first));
        free(raw);
        if (w < 0)
            return io_fail(s, ch->node.id, "write of block CRCs", (int)w);
    }
    if (p->length % B == 0)
        ch->tail_crc = 0;
    else if (full_end >= p->first && full_end - p->first < p->n)
        ch->tail_crc = p->crc[full_end - p->first];
    ch->length = p->length;
    ch->dirty = true;
    return 0;
}

/* ======================================================================== */
/* writes                                                                   */
/* ======================================================================== */

/* -ENOSPC when growing the data directory by growth bytes would leave
 * less than the reserved space free. */
static int space_check(struct store *s, uint64_t id, uint64_t growth)
{
    if (growth == 0)
        return 0;
    uint64_t total, avail;
    int rc = fsio_space(s->fs, s->dir, &total, &avail);
    if (rc < 0)
        return io_fail(s, id, "statvfs", rc);
    if (avail < growth || avail - growth < s->reserved) {
        log_warn("store: chunk %016" PRIx64 ": %" PRIu64 " more bytes "
                 "refused: %" PRIu64 " free, %" PRIu64 " reserved",
                 id, growth, avail, s->reserved);
        return -ENOSPC;
    }
    return 0;
}

/* Checks the CRC of every piece of data against crcs (when given) and
 * leaves the CRCs in in[]. */
static int verify_incoming(const struct store_chunk *ch, uint64_t off,
                           const uint8_t *data, size_t len,
                           const uint32_t *crcs, uint32_t *in)
{
    uint32_t n = store_nblocks(off, len);
    uint64_t pos = off, end = off + len;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t stop = min_u64(end, (pos / B + 1) * B);
        in[i] = crc32c(0, data + (pos - off), (size_t)(stop - pos));
        if (crcs && crcs[i] != in[i]) {
            log_warn("store: chunk %016" PRIx64 ": write at %" PRIu64
                     ": piece %" PRIu32 " fails its CRC; nothing written",
                     ch->node.id, off, i);
            return -DFS_ECORRUPT;
        }
        pos = stop;
    }
    return 0;
}

/*
 * Writes the data bytes: first the part past the end of the file (the
 * only part that may run out of space), then the part inside.  On a
 * failure the file is cut back to its old size; if bytes inside were
 * already changed, the chunk is flagged corrupt (their CRCs are old).
 */
static int write_data(struct store *s, struct store_chunk *ch, uint64_t off,
                      const uint8_t *data, size_t len)
{
    uint64_t start = chunkfile_data_off(ch->hdr.capacity) + off;
    uint64_t end = start + len;
    uint64_t split = min_u64(max_u64(ch->fsize, start), end);
    uint64_t old_size = ch->fsize;
    ssize_t w = 0;
    if (end > split) {
        w = fsio_pwrite(s->fs, ch->fd, data + (split - start),
                        (size_t)(end - split), (off_t)split);
        if (w < 0)
            goto err_cut_back;
    }
    if (split > start) {
        w = fsio_pwrite(s->fs, ch->fd, data, (size_t)(split - start),
                        (off_t)start);
        if (w < 0) {
            chunk_flag_bad(s, ch);
            goto err_cut_back;
        }
    }
    if (end > old_size) {
        ch->fsize = end;
        used_add(s, (int64_t)(end - old_size));
    }
    return 0;

err_cut_back:
    if (fsio_ftruncate(s->fs, ch->fd, old_size) < 0)
        chunk_flag_bad(s, ch);
    if (w == -ENOSPC)
        return (int)w;
    return io_fail(s, ch->node.id, "write", (int)w);
}

/*
 * Before the first write since the last commit that changes committed
 * bytes in place: a durable marker naming that commit.  Data and CRC go to
 * the disk in separate writes (and a write may stop between pages), so a
 * crash in the middle of an overwrite can leave a block whose bytes and
 * CRC disagree although most of its bytes are committed ones; the marker
 * tells the next start to keep them (scan_repair).  Write lock held.
 */
static int mark_overwrite(struct store *s, struct store_chunk *ch, int fd)
{
    if (ch->marked)
        return 0;
    uint8_t m[CHUNKFILE_MARK_BYTES];
    chunkfile_mark_encode(ch->node.id, ch->hdr.seq, m);
    ssize_t w = fsio_pwrite(s->fs, fd, m, sizeof(m), CHUNKFILE_MARK_OFF);
    int rc = w < 0 ? (int)w : fsio_fdatasync(s->fs, fd);
    if (rc < 0)
        return io_fail(s, ch->node.id, "write of the overwrite marker", rc);
    ch->marked = true;
    return 0;
}

/* store_write's work once the chunk is locked and checked. */
static int write_locked(struct store *s, struct store_chunk *ch,
                        uint64_t off, const uint8_t *data, size_t len,
                        const uint32_t *crcs)
{
    uint32_t *in = malloc((size_t)store_nblocks(off, len) * sizeof(*in));
    if (!in)
        return -ENOMEM;
    struct plan p = { 0 };
    int rc = verify_incoming(ch, off, data, len, crcs, in);
    if (rc < 0)
        goto out_free_in;
    uint64_t end_in_file = chunkfile_data_off(ch->hdr.capacity) + off + len;
    rc = space_check(s, ch->node.id, end_in_file > ch->fsize
                                    ? end_in_file - ch->fsize : 0);
    if (rc < 0)
        goto out_free_in;
    int fd = chunk_fd(s, ch);
    rc = fd < 0 ? fd : plan_change(s, ch, fd, off, data, len, in,
                                   max_u64(ch->length, off + len), &p);
    if (rc == 0 && off < ch->hdr.length)
        rc = mark_overwrite(s, ch, fd);
    if (rc == 0)
        rc = write_data(s, ch, off, data, len);
    if (rc == 0) {
        rc = plan_apply(s, ch, &p);
        if (rc < 0)
            chunk_flag_bad(s, ch);
    }
    free(p.crc);
out_free_in:
    free(in);
    return rc;
}

int store_write(struct store *s, uint64_t id, uint32_t version,
                uint64_t offset, const void *data, size_t len,
                const uint32_t *crcs, unsigned flags)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, true, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, version);
    if (rc == 0 && (len > ch->hdr.capacity ||
                    offset > ch->hdr.capacity - len))
        rc = -EFBIG;
    if (rc == 0 && len > 0)
        rc = write_locked(s, ch, offset, data, len, crcs);
    if (rc == 0 && (flags & STORE_SYNC))
        rc = sync_locked(s, ch);
    chunk_release(s, ch);
    return rc;
}

int store_sync(struct store *s, uint64_t id)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, true, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, 0);
    if (rc == 0)
        rc = sync_locked(s, ch);
    chunk_release(s, ch);
    return rc;
}

int store_set_version(struct store *s, uint64_t id, uint32_t version)
{
    if (version == 0)
        return -EINVAL;
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, true, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, 0);
    if (rc == 0)
        rc = commit(s, ch, version);
    if (rc == 0)
        ch->moved = true;
    chunk_release(s, ch);
    return rc;
}

bool store_moved(struct store *s, uint64_t id)
{
    struct store_chunk *ch;
    if (chunk_acquire(s, id, false, &ch) < 0)
        return false;
    bool moved = ch->moved;
    chunk_release(s, ch);
    return moved;
}

/* Shrinks to length: the new last block is verified and its CRC cut;
 * the header is committed before the file is cut, so a crash between
 * leaves the old bytes past the length (ignored, cut at the next scan). */
static int shrink_locked(struct store *s, struct store_chunk *ch,
                         uint64_t length)
{
    uint64_t old_len = ch->length;
    uint32_t old_tail = ch->tail_crc;
    uint32_t b = (uint32_t)(length / B);
    uint64_t r = length % B;
    uint32_t tail = 0;
    if (r) {
        uint32_t want;
        uint8_t *buf = malloc(B);
        int rc = buf ? load_crcs(s, ch, ch->fd, b, 1, &want) : -ENOMEM;
        if (rc == 0)
            rc = read_block(s, ch, ch->fd, b, want, buf);
        if (rc == 0)
            tail = crc32c(0, buf, (size_t)r);
        free(buf);
        if (rc < 0)
            return rc;
    }
    ch->length = length;
    ch->tail_crc = tail;
    int rc = commit(s, ch, ch->hdr.version);
    if (rc < 0) {
        ch->length = old_len;
        ch->tail_crc = old_tail;
        return rc;
    }
    uint64_t size = chunkfile_data_off(ch->hdr.capacity) + length;
    if (size >= ch->fsize)
        return 0;
    rc = fsio_ftruncate(s->fs, ch->fd, size);
    if (rc < 0) {
        chunk_flag_bad(s, ch);      /* invariant 3 no longer holds */
        return io_fail(s, ch->node.id, "truncate", rc);
    }
    used_add(s, -(int64_t)(ch->fsize - size));
    ch->fsize = size;
    return 0;
}

/* Grows to length: the new blocks read as zeros, nothing is written but
 * CRCs. */
static int grow_locked(struct store *s, struct store_chunk *ch,
                       uint64_t length)
{
    struct plan p;
    int rc = plan_change(s, ch, ch->fd, 0, NULL, 0, NULL, length, &p);
    if (rc < 0)
        return rc;
    rc = plan_apply(s, ch, &p);
    free(p.crc);
    if (rc < 0) {
        chunk_flag_bad(s, ch);
        return rc;
    }
    return commit(s, ch, ch->hdr.version);
}

int store_truncate(struct store *s, uint64_t id, uint32_t version,
                   uint64_t length)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, true, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, version);
    if (rc == 0 && length > ch->hdr.capacity)
        rc = -EFBIG;
    if (rc == 0)
        rc = chunk_fd(s, ch);
    if (rc >= 0 && length < ch->length)
        rc = shrink_locked(s, ch, length);
    else if (rc >= 0 && length > ch->length)
        rc = grow_locked(s, ch, length);
    else if (rc >= 0)
        rc = sync_locked(s, ch);
    chunk_release(s, ch);
    return rc;
}

/* ======================================================================== */
/* reads                                                                    */
/* ======================================================================== */

ssize_t store_read(struct store *s, uint64_t id, uint32_t version,
                   uint64_t offset, size_t len, void *buf, uint32_t *crcs)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, false, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, version);
    uint64_t n = 0;
    if (rc == 0 && offset < ch->length)
        n = min_u64(len, ch->length - offset);
    if (rc == 0 && n > 0) {
        int fd = chunk_fd(s, ch);
        rc = fd < 0 ? fd : read_range(s, ch, fd, offset, offset + n, buf,
                                      crcs);
    }
    chunk_release(s, ch);
    return rc < 0 ? rc : (ssize_t)n;
}

int store_open_local(struct store *s, uint64_t id, uint32_t min_version,
                     struct store_local *out)
{
    if (!fsio_is_real(s->fs))
        return -ENOTSUP;
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, false, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, 0);
    if (rc == 0 && ch->hdr.version < min_version)
        rc = -DFS_ESTALE_VER;
    pthread_mutex_lock(&s->mu);
    if (rc == 0 && ch->bad)
        rc = -DFS_ECORRUPT;     /* known bad: not for another reader */
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        char path[PATH_MAX];
        chunk_path(s, id, false, path);
        rc = fsio_open(s->fs, path, O_RDONLY, 0);
    }
    if (rc >= 0) {
        *out = (struct store_local){
            .fd = rc, .version = ch->hdr.version, .length = ch->length,
            .data_off = chunkfile_data_off(ch->hdr.capacity),
            .tail_crc = ch->tail_crc,
        };
        rc = 0;
    }
    chunk_release(s, ch);
    return rc;
}

int store_verify(struct store *s, uint64_t id, uint32_t version)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, false, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, version);
    if (rc == 0 && ch->length > 0) {
        uint8_t *buf = malloc(VERIFY_PIECE);
        int fd = buf ? chunk_fd(s, ch) : -ENOMEM;
        rc = fd < 0 ? fd : 0;
        for (uint64_t off = 0; rc == 0 && off < ch->length;
             off += VERIFY_PIECE)
            rc = read_range(s, ch, fd, off,
                            min_u64(ch->length, off + VERIFY_PIECE), buf,
                            NULL);
        free(buf);
    }
    chunk_release(s, ch);
    return rc;
}

int store_stat(struct store *s, uint64_t id, uint32_t *version,
               uint64_t *length)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, false, &ch);
    if (rc < 0)
        return rc;
    rc = chunk_usable(ch, 0);
    if (rc == 0) {
        *version = ch->hdr.version;
        *length = ch->length;
    }
    chunk_release(s, ch);
    return rc;
}

/* ======================================================================== */
/* create and delete                                                        */
/* ======================================================================== */

/* Writes the new chunk's file under its temporary name, syncs it, renames
 * it into place and syncs the directory. */
static int create_file(struct store *s, struct store_chunk *ch,
                       uint32_t version)
{
    char tmp[PATH_MAX], path[PATH_MAX], sub[PATH_MAX];
    chunk_path(s, ch->node.id, true, tmp);
    chunk_path(s, ch->node.id, false, path);
    sub_path(s, (unsigned)(ch->node.id & 0xff), sub);
    uint64_t capacity = __atomic_load_n(&s->chunk_size, __ATOMIC_RELAXED);
    uint64_t data_off = chunkfile_data_off(capacity);
    int rc = space_check(s, ch->node.id, data_off);
    if (rc < 0)
        return rc;
    uint8_t *head = calloc(1, (size_t)data_off);
    if (!head)
        return -ENOMEM;
    ch->hdr = (struct chunkfile_hdr){ .id = ch->node.id, .seq = 1,
                                      .capacity = capacity,
                                      .version = version };
    chunkfile_encode(&ch->hdr, head);

    int fd = fsio_open(s->fs, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(head);
        return io_fail(s, ch->node.id, "create", fd);
    }
    ssize_t w = fsio_pwrite(s->fs, fd, head, (size_t)data_off, 0);
    free(head);
    rc = w < 0 ? (int)w : fsio_fdatasync(s->fs, fd);
    fsio_close(s->fs, fd);
    if (rc == 0)
        rc = fsio_rename(s->fs, tmp, path);
    if (rc < 0) {
        fsio_unlink(s->fs, tmp);
        return rc == -ENOSPC ? rc : io_fail(s, ch->node.id, "create", rc);
    }
    rc = fsio_fsync_dir(s->fs, sub);
    if (rc < 0) {
        fsio_unlink(s->fs, path);
        return io_fail(s, ch->node.id, "sync of its directory", rc);
    }
    ch->fsize = data_off;
    ch->moved = true;
    used_add(s, (int64_t)data_off);
    return 0;
}

/* Takes chunk id out of the index.  Write lock held. */
static void chunk_forget(struct store *s, struct store_chunk *ch)
{
    ch->gone = true;
    pthread_mutex_lock(&s->mu);
    table_remove(s, ch);
    pthread_mutex_unlock(&s->mu);
}

/*
 * Puts a new chunk, locked for writing, into the index with a reference
 * for the caller.  -EEXIST when id is there (a chunk being deleted is
 * waited for).
 */
static int chunk_insert_new(struct store *s, uint64_t id,
                            struct store_chunk **out)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct store_chunk *old = table_find(s, id);
        if (!old)
            break;
        old->refs++;
        pthread_mutex_unlock(&s->mu);
        pthread_rwlock_rdlock(&old->lock);
        bool gone = old->gone;
        pthread_rwlock_unlock(&old->lock);
        chunk_put(s, old);
        if (!gone)
            return -EEXIST;
    }
    struct store_chunk *ch = chunk_new(id);
    if (!ch) {
        pthread_mutex_unlock(&s->mu);
        return -ENOMEM;
    }
    pthread_rwlock_wrlock(&ch->lock);   /* nobody else can see it yet */
    ch->refs = 1;
    table_insert(s, ch);
    pthread_mutex_unlock(&s->mu);
    *out = ch;
    return 0;
}

int store_create(struct store *s, uint64_t id, uint32_t version)
{
    if (version == 0)
        return -EINVAL;
    if (store_failed(s))
        return -EIO;
    struct store_chunk *ch;
    int rc = chunk_insert_new(s, id, &ch);
    if (rc < 0)
        return rc;
    rc = create_file(s, ch, version);
    if (rc < 0)
        chunk_forget(s, ch);
    chunk_release(s, ch);
    return rc;
}

int store_delete(struct store *s, uint64_t id)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, true, &ch);
    if (rc < 0)
        return rc;
    char path[PATH_MAX], sub[PATH_MAX];
    chunk_path(s, id, false, path);
    sub_path(s, (unsigned)(id & 0xff), sub);
    chunk_close_fd(s, ch);
    rc = fsio_unlink(s->fs, path);
    if (rc == 0 || rc == -ENOENT) {
        used_add(s, -(int64_t)ch->fsize);
        chunk_forget(s, ch);
        rc = fsio_fsync_dir(s->fs, sub);
    }
    if (rc < 0)
        io_fail(s, id, "delete", rc);
    chunk_release(s, ch);
    return rc;
}

/* ======================================================================== */
/* listing and space                                                        */
/* ======================================================================== */

struct snapshot {
    struct store_chunk **v;
    size_t n;
};

static void snapshot_add(struct chunkidx_node *n, void *arg)
{
    struct snapshot *sn = arg;
    struct store_chunk *ch = chunk_of(n);
    ch->refs++;
    sn->v[sn->n++] = ch;
}

/* A referenced copy of the index, so the walk runs without s->mu. */
static struct store_chunk **table_snapshot(struct store *s, size_t *n)
{
    pthread_mutex_lock(&s->mu);
    struct snapshot sn = { malloc((s->index.count + 1) * sizeof(*sn.v)), 0 };
    if (sn.v)
        chunkidx_each(&s->index, snapshot_add, &sn);
    pthread_mutex_unlock(&s->mu);
    *n = sn.n;
    return sn.v;
}

int store_list(struct store *s, store_list_fn fn, void *arg)
{
    size_t n;
    struct store_chunk **v = table_snapshot(s, &n);
    if (!v)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_chunk *ch = v[i];
        struct store_info info = { .id = ch->node.id };
        pthread_rwlock_rdlock(&ch->lock);
        bool gone = ch->gone;
        if (!ch->header_bad) {
            info.version = ch->hdr.version;
            info.length = ch->length;
        }
        pthread_mutex_lock(&s->mu);
        info.corrupt = ch->header_bad || ch->bad;
        pthread_mutex_unlock(&s->mu);
        pthread_rwlock_unlock(&ch->lock);
        if (rc == 0 && !gone)
            rc = fn(&info, arg);
        chunk_put(s, ch);
    }
    free(v);
    return rc;
}

void store_take_bad(struct store *s, uint64_t **ids, size_t *n)
{
    pthread_mutex_lock(&s->mu);
    *ids = s->nbad ? s->bad : NULL;
    *n = s->nbad;
    if (s->nbad) {
        s->bad = NULL;
        s->nbad = s->bad_cap = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

int store_space(struct store *s, uint64_t *total, uint64_t *used,
                uint64_t *avail)
{
    if (store_failed(s))
        return -EIO;
    uint64_t free_bytes;
    int rc = fsio_space(s->fs, s->dir, total, &free_bytes);
    if (rc < 0)
        return rc;
    *used = __atomic_load_n(&s->used, __ATOMIC_RELAXED);
    *avail = free_bytes > s->reserved ? free_bytes - s->reserved : 0;
    return 0;
}

/* ======================================================================== */
/* identity                                                                 */
/* ======================================================================== */

/* Caller holds s->ident_mu (or is store_open). */
static int ident_write(struct store *s, const struct storeid *id)
{
    int rc = storeid_write(s->fs, s->dir, id);
    if (rc < 0) {
        log_error("store: %s/%s: write: %s", s->dir, STOREID_NAME,
                  dfs_strerror(rc));
        if (rc == -EIO)
            store_fail(s);
        return rc;
    }
    s->id = *id;
    return 0;
}

uint64_t store_cluster_id(struct store *s)
{
    pthread_mutex_lock(&s->ident_mu);
    uint64_t id = s->id.cluster_id;
    pthread_mutex_unlock(&s->ident_mu);
    return id;
}

uint32_t store_server_id(struct store *s)
{
    pthread_mutex_lock(&s->ident_mu);
    uint32_t id = s->id.server_id;
    pthread_mutex_unlock(&s->ident_mu);
    return id;
}

int store_set_identity(struct store *s, uint64_t cluster_id,
                       uint32_t server_id)
{
    if (store_failed(s))
        return -EIO;
    pthread_mutex_lock(&s->ident_mu);
    struct storeid id = { cluster_id, server_id };
    int rc = 0;
    if (s->id.cluster_id && cluster_id != s->id.cluster_id)
        rc = -DFS_ECLUSTER;
    else if (cluster_id != s->id.cluster_id || server_id != s->id.server_id)
        rc = ident_write(s, &id);
    pthread_mutex_unlock(&s->ident_mu);
    return rc;
}

/* ======================================================================== */
/* open and the start-up scan                                               */
/* ======================================================================== */

static int open_error(char *errbuf, size_t errlen, int rc, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* Puts the message for a failed store_open in errbuf; returns rc. */
static int open_error(char *errbuf, size_t errlen, int rc, const char *fmt,
                      ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Loads the identity file, or writes a fresh one with the expected cluster;
 * refuses another cluster's directory. */
static int ident_load(struct store *s, uint64_t expect, char *errbuf,
                      size_t errlen)
{
    struct storeid id = { .cluster_id = expect };
    int rc = storeid_read(s->fs, s->dir, &s->id);
    if (rc == -DFS_ECORRUPT)
        return open_error(errbuf, errlen, rc, "%s/%s: damaged identity "
                          "file (not written by dfs-chunkserver?)", s->dir,
                          STOREID_NAME);
    if (rc < 0 && rc != -ENOENT)
        return open_error(errbuf, errlen, rc, "%s/%s: cannot read: %s",
                          s->dir, STOREID_NAME, dfs_strerror(rc));
    if (rc == 0 && s->id.cluster_id && expect && s->id.cluster_id != expect)
        return open_error(errbuf, errlen, -DFS_ECLUSTER,
                          "%s belongs to cluster %016" PRIx64 ", not to "
                          "this cluster %016" PRIx64 "; use an empty "
                          "directory", s->dir, s->id.cluster_id, expect);
    if (rc == 0 && (s->id.cluster_id || !expect))
        return 0;
    id.server_id = s->id.server_id;     /* a fresh directory adopts expect */
    rc = ident_write(s, &id);
    if (rc < 0)
        return open_error(errbuf, errlen, rc, "%s/%s: cannot write: %s",
                          s->dir, STOREID_NAME, dfs_strerror(rc));
    return 0;
}

/* Makes sure path is a directory, creating it (durably) when missing. */
static int ensure_dir(struct fsio *fs, const char *path, bool *made)
{
    struct fsio_stat st;
    int rc = fsio_stat(fs, path, &st);
    if (rc == 0)
        return st.is_dir ? 0 : -ENOTDIR;
    if (rc != -ENOENT)
        return rc;
    rc = fsio_mkdir(fs, path, 0755);
    if (rc == 0)
        *made = true;
    return rc;
}

/* The directory holding path ("." for a bare name), synced after a
 * mkdir in it. */
static int sync_parent(struct fsio *fs, const char *path)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash)
        return fsio_fsync_dir(fs, ".");
    if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    return fsio_fsync_dir(fs, parent);
}

struct scan_ctx {
    struct store *s;
    unsigned sub;
    bool removed;           /* a temp file was unlinked: sync the dir */
    char *errbuf;
    size_t errlen;
};

/* Indexes a chunk whose header failed: listed corrupt, deletable. */
static int scan_add_bad(struct store *s, uint64_t id, const char *why)
{
    char path[PATH_MAX];
    chunk_path(s, id, false, path);
    log_error("store: chunk %016" PRIx64 " (%s): %s; reported corrupt", id,
              path, why);
    struct store_chunk *ch = chunk_new(id);
    if (!ch)
        return -ENOMEM;
    ch->header_bad = true;
    pthread_mutex_lock(&s->mu);
    table_insert(s, ch);
    pthread_mutex_unlock(&s->mu);
    chunk_flag_bad(s, ch);
    return 0;
}

/* Cuts bytes past the committed length left by unsynced writes
 * (invariant 3); the cut need not be durable: the next scan repeats it. */
static int scan_trim(struct store *s, struct store_chunk *ch, int fd)
{
    uint64_t want = chunkfile_data_off(ch->hdr.capacity) + ch->length;
    if (ch->fsize <= want)
        return 0;
    int rc = fsio_ftruncate(s->fs, fd, want);
    if (rc < 0)
        return io_fail(s, ch->node.id, "trim", rc);
    ch->fsize = want;
    return 0;
}

/*
 * Chunk id was stopped in the middle of an overwrite in place (its marker
 * names its newest commit).  That write was never acknowledged and wrote
 * only inside its own range, so every other byte of its blocks is as
 * committed; but a block whose data and CRC landed apart now fails its
 * CRC.  Such a block takes the CRC of the bytes it holds (old, new or a
 * mix: all an unacknowledged write may leave), and a commit retires the
 * marker.  Rot in a block of such a chunk escapes notice this once: the
 * price of keeping its committed bytes when every replica was stopped in
 * the same overwrite.  Write lock taken.
 */
static int scan_repair(struct store *s, uint64_t id)
{
    struct store_chunk *ch;
    int rc = chunk_acquire(s, id, true, &ch);
    if (rc < 0)
        return rc;
    uint32_t n = (uint32_t)((ch->length + B - 1) / B), fixed = 0;
    uint32_t *want = malloc(((size_t)n + 1) * sizeof(*want));
    uint8_t *buf = malloc(B);
    int fd = chunk_fd(s, ch);
    rc = !want || !buf ? -ENOMEM : fd < 0 ? fd
       : n ? load_crcs(s, ch, fd, 0, n, want) : 0;
    uint64_t data_off = chunkfile_data_off(ch->hdr.capacity);
    for (uint32_t b = 0; rc == 0 && b < n; b++) {
        uint64_t v = block_valid(ch->length, b);
        rc = read_at(s, ch, fd, buf, v, data_off + (uint64_t)b * B);
        uint32_t got = crc32c(0, buf, (size_t)v);
        if (rc < 0 || got == want[b])
            continue;
        fixed++;
        if (v < B) {
            ch->tail_crc = got;
            continue;
        }
        uint8_t raw[4];
        put_le32(raw, got);
        ssize_t w = fsio_pwrite(s->fs, fd, raw, 4, (off_t)chunkfile_crc_off(b));
        if (w < 0)
            rc = io_fail(s, id, "repair of a block CRC", (int)w);
    }
    if (rc == 0) {
        ch->dirty = true;
        rc = commit(s, ch, ch->hdr.version);
    }
    if (rc == 0 && fixed)
        log_warn("store: chunk %016" PRIx64 ": an overwrite was interrupted;"
                 " %" PRIu32 " of its blocks now hold bytes of it and took "
                 "their CRCs", id, fixed);
    free(buf);
    free(want);
    chunk_release(s, ch);
    return rc;
}

/* Reads chunk id's header and indexes it.  Only an I/O error on the
 * directory fails the scan. */
static int scan_chunk(struct store *s, uint64_t id)
{
    char path[PATH_MAX];
    chunk_path(s, id, false, path);
    int fd = fsio_open(s->fs, path, O_RDWR, 0);
    if (fd < 0)
        return fd == -EIO ? io_fail(s, id, "open", fd)
                          : scan_add_bad(s, id, dfs_strerror(fd));
    struct store_chunk *ch = chunk_new(id);
    bool damaged = false, interrupted = false;
    int slot = ch ? chunkfile_load(s->fs, fd, &ch->hdr, &damaged,
                                   &interrupted) : -ENOMEM;
    int rc = slot < 0 ? slot : fsio_size(s->fs, fd, &ch->fsize);
    if (rc == 0 && ch->hdr.id != id)
        rc = -DFS_ECORRUPT;
    if (rc == 0) {
        ch->slot = slot;
        ch->length = ch->hdr.length;
        ch->tail_crc = ch->hdr.tail_crc;
        if (damaged)
            log_warn("store: chunk %016" PRIx64 " (%s): header slot %d "
                     "damaged (torn commit or corruption); using slot %d",
                     id, path, 1 - slot, slot);
        rc = scan_trim(s, ch, fd);
    }
    fsio_close(s->fs, fd);
    if (rc < 0 && ch)
        chunk_free(ch);
    if (rc == -EIO || rc == -ENOMEM)
        return rc == -EIO ? io_fail(s, id, "scan", rc) : rc;
    if (rc < 0)
        return scan_add_bad(s, id, rc == -DFS_ECORRUPT
                            ? "no valid header" : dfs_strerror(rc));
    used_add(s, (int64_t)ch->fsize);
    pthread_mutex_lock(&s->mu);
    table_insert(s, ch);
    pthread_mutex_unlock(&s->mu);
    rc = interrupted ? scan_repair(s, id) : 0;
    return rc == -EIO || rc == -ENOMEM ? rc : 0;
}

static int scan_entry(const char *name, void *arg)
{
    struct scan_ctx *c = arg;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%02x/%s", c->s->dir, c->sub, name);
    uint64_t id;
    int rc;
    switch (chunkfile_parse_name(name, c->sub, &id)) {
    case CHUNKFILE_CHUNK:
        rc = scan_chunk(c->s, id);
        return rc < 0 ? open_error(c->errbuf, c->errlen, rc, "%s: %s",
                                   path, dfs_strerror(rc)) : 0;
    case CHUNKFILE_TEMP:
        log_info("store: %s: removing a chunk file left half-created",
                 path);
        rc = fsio_unlink(c->s->fs, path);
        if (rc < 0)
            return open_error(c->errbuf, c->errlen, rc, "%s: cannot "
                              "remove: %s", path, dfs_strerror(rc));
        c->removed = true;
        return 0;
    case CHUNKFILE_OTHER:
        log_warn("store: %s: not a chunk file, ignored", path);
        return 0;
    }
    return 0;
}

/* Creates the 256 subdirectories as needed, then indexes every chunk. */
static int scan(struct store *s, char *errbuf, size_t errlen)
{
    char path[PATH_MAX];
    bool made = false;
    for (unsigned sub = 0; sub < 256; sub++) {
        sub_path(s, sub, path);
        int rc = ensure_dir(s->fs, path, &made);
        if (rc < 0)
            return open_error(errbuf, errlen, rc, "%s: %s", path,
                              dfs_strerror(rc));
    }
    int rc = made ? fsio_fsync_dir(s->fs, s->dir) : 0;
    if (rc < 0)
        return open_error(errbuf, errlen, rc, "%s: sync: %s", s->dir,
                          dfs_strerror(rc));
    for (unsigned sub = 0; sub < 256; sub++) {
        struct scan_ctx c = { s, sub, false, errbuf, errlen };
        sub_path(s, sub, path);
        rc = fsio_list_dir(s->fs, path, scan_entry, &c);
        if (rc == 0 && c.removed)
            rc = fsio_fsync_dir(s->fs, path);
        if (rc < 0)
            return errbuf && errbuf[0] ? rc : open_error(errbuf, errlen,
                   rc, "%s: %s", path, dfs_strerror(rc));
    }
    return 0;
}

static struct store *store_alloc(struct fsio *fs, const char *dir,
                                 const struct store_params *p)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (chunkidx_init(&s->index) < 0) {
        free(s);
        return NULL;
    }
    s->fs = fs;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    s->chunk_size = p->chunk_size ? p->chunk_size : PROTO_CHUNK_SIZE;
    s->reserved = p->reserved_bytes;
    s->max_open = p->max_open_files ? p->max_open_files : STORE_MAX_OPEN;
    s->zero_block_crc = chunkfile_zero_crc(B);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->ident_mu, NULL);
    return s;
}

int store_set_chunk_size(struct store *s, uint64_t size)
{
    if (!chunkfile_capacity_ok(size))
        return -EINVAL;
    __atomic_store_n(&s->chunk_size, size, __ATOMIC_RELAXED);
    return 0;
}

int store_open(struct fsio *fs, const char *dir,
               const struct store_params *params, struct store **out,
               char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    uint64_t size = params->chunk_size ? params->chunk_size
                                       : PROTO_CHUNK_SIZE;
    if (!chunkfile_capacity_ok(size))
        return open_error(errbuf, errlen, -DFS_ECONF, "chunk size %" PRIu64
                          " is not a multiple of 64 KiB up to 2 GiB", size);
    if (strlen(dir) >= DIR_MAX)
        return open_error(errbuf, errlen, -ENAMETOOLONG, "%s: path too "
                          "long", dir);
    struct store *s = store_alloc(fs, dir, params);
    if (!s)
        return open_error(errbuf, errlen, -ENOMEM, "out of memory");
    bool made = false;
    int rc = ensure_dir(fs, dir, &made);
    if (rc == 0 && made)
        rc = sync_parent(fs, dir);
    if (rc < 0) {
        open_error(errbuf, errlen, rc, "%s: %s", dir, dfs_strerror(rc));
        goto err_free_store;
    }
    rc = ident_load(s, params->cluster_id, errbuf, errlen);
    if (rc == 0)
        rc = scan(s, errbuf, errlen);
    if (rc < 0)
        goto err_free_store;
    *out = s;
    return 0;

err_free_store:
    store_close(s);
    return rc;
}

static void close_chunk(struct chunkidx_node *n, void *arg)
{
    struct store *s = arg;
    struct store_chunk *ch = chunk_of(n);
    if (ch->fd >= 0)
        fsio_close(s->fs, ch->fd);
    chunk_free(ch);
}

void store_close(struct store *s)
{
    if (!s)
        return;
    chunkidx_each(&s->index, close_chunk, s);
    chunkidx_release(&s->index);
    free(s->bad);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->ident_mu);
    free(s);
}
