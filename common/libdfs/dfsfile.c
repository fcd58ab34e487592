/*
 * dfsfile: file data — reads from replicas, writes through chains.
 *
 * States of the write session of one chunk (struct dfsfile_ws): idle ->
 * leased (WRITE_BEGIN gave chunk, version and chain for one chunk index)
 * -> idle again after WRITE_END.  A file writes up to DFSFILE_SESSIONS
 * chunks at once; writing to one more first ends the least recently
 * written.  fsync and close end (or commit) them all.
 *
 * Invariants:
 *  1. Data is sent to the chain head only after this session holds the
 *     chunk's write lease at the version in the request.
 *  2. dfs_file_fsync returns 0 only after every replica of the chain
 *     fdatasynced (a SYNC write) and the master committed the chunk
 *     length (WRITE_END): DESIGN §2's durability.
 *  3. Every block read is checked against its CRC32C before it is copied
 *     out; a bad replica is reported and the next one tried.
 *  4. f->mu serialises the calls on one file.  Lock order: f->mu, then
 *     the session's locks (master calls, error messages) or its pool
 *     lock; never the other way round.
 *  5. Every byte of the write session not yet known durable on every
 *     replica (sent after the last SYNC write that was acknowledged) is
 *     held here, in send order (ws.unsynced, then ws.pend): a chunkserver
 *     that restarts drops what it had not synced, so a repaired chain is
 *     sent all of it again.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/protocol.h"
#include "common/libdfs/dfs.h"
#include "common/libdfs/dfs_priv.h"

#define DFSFILE_MAX_CHAIN 8
#define DFSFILE_RETRY_MS 50
#define DFSFILE_REPLACE_TRIES 3
/* CS_READ requests in flight, and CS_WRITE requests per synchronous
 * batch (a resend), on one connection. */
#define DFSFILE_PIPELINE 8
/* CS_WRITE requests a file keeps unacknowledged on its write stream: the
 * data a write() hands over is on its way when the call returns, and is
 * kept until the chain acknowledges it, to be resent on a new chain. */
#define DFSFILE_WINDOW 16
/* Acknowledged bytes kept for a resend before a write of the stream asks
 * the chain to sync (a file holds at most about this plus two windows:
 * what is acknowledged while that sync is on its way stays too). */
#define DFSFILE_SYNC_BYTES (8u << 20)
/* Chunks of one file written at once, each with its own lease, chain and
 * stream (a file holds up to this many times the above). */
#define DFSFILE_SESSIONS 4
/* Freed full-size write buffers a write session keeps for its next
 * writes: fresh 1 MiB buffers cost a page fault and a zeroed page every
 * 4 KiB (a quarter of dfsput's time went there). */
#define DFSFILE_SPARES 8

/* Located chunks kept beside the current one, with their local replicas. */
#define DFSFILE_PARKED 7
/* Sequential reads fetch ahead, the window doubling from the first to
 * the last of these. */
#define DFSFILE_READAHEAD_MIN (1u << 20)
#define DFSFILE_READAHEAD_MAX (DFSFILE_PIPELINE * PROTO_DATA_MAX)

struct dfsfile_node {
    uint32_t id;
    char addr[PROTO_ADDR_MAX];
};

struct dfsfile_chain {
    uint32_t n;
    struct dfsfile_node node[DFSFILE_MAX_CHAIN];
};

/* A CS_WRITE sent on the write stream: in the window until acknowledged,
 * then held until a sync covers it. */
struct dfsfile_pending {
    uint64_t id;                    /* its req_id on the stream */
    uint64_t off;                   /* in the chunk */
    size_t len;
    uint8_t *data;                  /* owned copy, for a resend */
    bool acked;
    bool sync;                      /* sent with PROTO_WRITE_SYNC ... */
    uint64_t covers;                /* ... which makes durable every write
                                       sent before it: ids <= this */
};

struct dfsfile_loc {
    bool present;
    uint64_t chunk;
    uint32_t version, length;
    struct dfsfile_chain where;
};

/* A chunk located for reads (valid: loc is chunk index's), and its
 * replica on this host once local_get has looked: lc, of chunk lc_chunk
 * at lc_version (the located one when they match), NULL when none is
 * (then reads go through TCP). */
struct dfsfile_rloc {
    bool valid;
    uint32_t index;
    struct dfsfile_loc loc;
    bool lc_tried;
    uint64_t lc_chunk;
    uint32_t lc_version;
    struct dfs_local_chunk *lc;
    uint64_t used;                  /* parked: the least recently used goes */
};

/* The write session of one chunk: this session holds its write lease
 * (WRITE_BEGIN) until WRITE_END. */
struct dfsfile_ws {
    bool leased;
    bool dirty;                 /* data sent since the last sync */
    uint32_t index;
    uint64_t chunk;
    uint32_t version, prev_version;
    /* Every replica of the chain holds every acknowledged byte at
     * this version or later: the committed version until a write is
     * acknowledged, then the version it was acknowledged at. */
    uint32_t base_version;
    uint32_t length;            /* end of data in the chunk */
    struct dfsfile_chain chain;
    struct dfs_csconn *stream;  /* to chain.node[0] while npend > 0 */
    bool stream_reused;         /* taken idle from the pool */
    uint64_t next_id;
    size_t npend;
    struct dfsfile_pending pend[DFSFILE_WINDOW];  /* in send order */
    /* acknowledged, not yet covered by a sync (invariant 5) */
    struct dfsfile_pending *unsynced;
    size_t nunsynced, unsynced_cap;
    size_t unsynced_bytes;
    uint64_t used;              /* when last written: the LRU's clock */
    uint64_t last_end;          /* where the last write ended, in the chunk */
    uint8_t *spare[DFSFILE_SPARES];     /* PROTO_DATA_MAX bytes each */
    size_t nspare;
};

/*
 * The data side of one file open in a session, shared by all its handles
 * (dfs_priv.h).  refs and next belong to the session's inode table (its
 * lock); pub_* are read without mu; every other field after mu is
 * protected by mu.
 */
struct dfs_inode {
    struct dfs_inode *next;
    unsigned refs;
    _Atomic uint64_t pub_size;      /* size, for attributes */
    _Atomic bool pub_dirty;         /* any ws.dirty, for attributes */
    struct dfs *d;
    pthread_mutex_t mu;
    uint64_t ino;
    uint64_t chunk_size;            /* the cluster's */
    uint64_t size;
    /* The chunks this session writes (leased), at most DFSFILE_SESSIONS:
     * writes that jump between chunks keep each one's lease and stream
     * instead of committing at every jump. */
    struct dfsfile_ws ws[DFSFILE_SESSIONS];
    uint64_t ws_clock;
    int err;                        /* the last write-back failure */
    uint32_t err_seq;               /* write-back failures so far */
    struct {
        struct dfsfile_rloc cur;    /* the chunk reads are at */
        /* Chunks read before, at most DFSFILE_PARKED (allocated at the
         * first hop): reads that hop between chunks keep each one's
         * location and local replica instead of asking again. */
        struct dfsfile_rloc *parked;
        uint64_t park_clock;
        uint8_t *buf;               /* read-ahead: file bytes [off, off + len) */
        uint64_t off;
        size_t len;
        uint64_t next;              /* where a sequential read goes on */
        size_t window;
        /* The window after buf's, asked for while buf is read (ids 1..n
         * on conn, from replica node of loc). */
        struct {
            struct dfs_csconn *conn;    /* NULL: nothing in flight */
            uint8_t *buf;
            uint64_t off;
            size_t len;
            uint32_t n, node;
            struct dfsfile_loc loc;
        } pf;
    } r;
};

/* A handle: one open of the file, with its access mode.  err_seen (under
 * in->mu) is the in->w.err_seq this handle last reported: like Linux's
 * errseq, every handle open when a write-back failed hears of it once. */
struct dfs_file {
    struct dfs_inode *in;
    uint32_t flags;
    uint32_t err_seen;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { 0, (long)ms * 1000000 };
    nanosleep(&ts, NULL);
}

static void get_chain(struct wire_reader *r, struct dfsfile_chain *c)
{
    c->n = wire_get_u32(r);
    if (c->n > DFSFILE_MAX_CHAIN) {
        r->err = -DFS_ETOOBIG;
        c->n = 0;
        return;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        c->node[i].id = wire_get_u32(r);
        const uint8_t *p;
        size_t len = wire_get_bytes(r, &p, PROTO_ADDR_MAX - 1);
        memcpy(c->node[i].addr, p ? (const char *)p : "", len);
        c->node[i].addr[len] = '\0';
    }
}


/* Decodes a CHUNK_LOCATIONS answer for chunk index alone (also the tail
 * of an OPEN's): the file's size, and where the chunk is (not present: a
 * hole). */
static void get_location(struct wire_reader *r, uint32_t index,
                         struct dfsfile_loc *loc, uint64_t *size)
{
    *size = wire_get_u64(r);
    uint32_t count = wire_get_u32(r);
    loc->present = false;
    if (count) {
        uint32_t got = wire_get_u32(r);
        loc->chunk = wire_get_u64(r);
        loc->version = wire_get_u32(r);
        loc->length = wire_get_u32(r);
        get_chain(r, &loc->where);
        loc->present = got == index;
    }
}

static uint32_t proto_open_flags(uint32_t flags)
{
    return flags & (DFS_O_READ | DFS_O_WRITE | DFS_O_TRUNC | DFS_O_APPEND);
}

/* ---- the session's open inodes ------------------------------------------ */

static size_t inode_bucket(uint64_t ino)
{
    return (size_t)(ino * 0x9E3779B97F4A7C15ull >> 56) % DFS_INODE_BUCKETS;
}

/* The table entry for ino, or NULL.  Caller holds the table's lock. */
static struct dfs_inode *inode_lookup(struct dfs_inodes *t, uint64_t ino)
{
    struct dfs_inode *in = t->bucket[inode_bucket(ino)];
    while (in && in->ino != ino)
        in = in->next;
    return in;
}

/* Whether data was sent to any chunk since its last sync. */
static bool any_dirty(const struct dfs_inode *f)
{
    for (size_t i = 0; i < DFSFILE_SESSIONS; i++)
        if (f->ws[i].dirty)
            return true;
    return false;
}

static void publish(struct dfs_inode *f)
{
    atomic_store(&f->pub_size, f->size);
    atomic_store(&f->pub_dirty, any_dirty(f));
}

static void prefetch_cancel(struct dfs_inode *f);

/* Forgets the replica file a local read had open. */
static void local_drop(struct dfs_inode *f)
{
    dfs_local_unref(f->r.cur.lc);
    f->r.cur.lc = NULL;
    f->r.cur.lc_tried = false;
}

static void rloc_clear(struct dfsfile_rloc *r)
{
    dfs_local_unref(r->lc);
    *r = (struct dfsfile_rloc){ .valid = false };
}

/* Forgets cached locations and read-ahead: the file changed. */
static void read_cache_drop(struct dfs_inode *f)
{
    f->r.len = 0;
    prefetch_cancel(f);
    rloc_clear(&f->r.cur);
    if (f->r.parked)
        for (size_t i = 0; i < DFSFILE_PARKED; i++)
            rloc_clear(&f->r.parked[i]);
}

/*
 * Makes index the current chunk of reads: the current one is parked (in
 * place of the one least recently used), index's own is taken out of the
 * park when it is there.  Without memory for the park, nothing is kept.
 */
static void rloc_switch(struct dfs_inode *f, uint32_t index)
{
    if (!f->r.parked)
        f->r.parked = calloc(DFSFILE_PARKED, sizeof(*f->r.parked));
    struct dfsfile_rloc *slot = NULL;
    for (size_t i = 0; f->r.parked && i < DFSFILE_PARKED; i++) {
        struct dfsfile_rloc *p = &f->r.parked[i];
        if (p->valid && p->index == index) {
            slot = p;
            break;
        }
        if (!slot || !p->valid || (slot->valid && p->used < slot->used))
            slot = p;
    }
    struct dfsfile_rloc back = { .valid = false };
    if (slot && slot->valid && slot->index == index) {
        back = *slot;
        *slot = (struct dfsfile_rloc){ .valid = false };
    } else if (slot) {
        rloc_clear(slot);
    }
    /* A hole is not parked: it may be written meanwhile, and a located
     * chunk that moved fails its read and is located again, a hole not. */
    if (slot && f->r.cur.valid && f->r.cur.loc.present) {
        *slot = f->r.cur;
        slot->used = ++f->r.park_clock;
    } else {
        rloc_clear(&f->r.cur);
    }
    f->r.cur = back;
    f->r.cur.index = index;
}

/*
 * The shared state of ino with one more reference, made when the file is
 * not open in the session yet.  size is the master's: it is taken unless
 * this session has writes the master does not know of, and the caches are
 * dropped then (close-to-open: an open sees what others committed).
 */
static struct dfs_inode *inode_attach(struct dfs *d, uint64_t ino, uint64_t size,
                                      uint64_t chunk_size)
{
    struct dfs_inodes *t = dfs_inodes_of(d);
    pthread_mutex_lock(&t->mu);
    struct dfs_inode *in = inode_lookup(t, ino);
    if (in) {
        in->refs++;
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_lock(&in->mu);
        if (!any_dirty(in)) {
            in->size = size;
            read_cache_drop(in);
            publish(in);
        }
        pthread_mutex_unlock(&in->mu);
        return in;
    }
    in = calloc(1, sizeof(*in));
    if (in) {
        pthread_mutex_init(&in->mu, NULL);
        in->d = d;
        in->ino = ino;
        in->chunk_size = chunk_size;
        in->size = size;
        in->refs = 1;
        publish(in);
        size_t b = inode_bucket(ino);
        in->next = t->bucket[b];
        t->bucket[b] = in;
    }
    pthread_mutex_unlock(&t->mu);
    return in;
}

static void stream_close(struct dfs_inode *f, struct dfsfile_ws *w, bool clean);
static void pending_clear(struct dfsfile_ws *w);

/* Drops a reference; the last one frees the state. */
static void inode_detach(struct dfs_inode *in)
{
    struct dfs_inodes *t = dfs_inodes_of(in->d);
    pthread_mutex_lock(&t->mu);
    bool last = --in->refs == 0;
    if (last) {
        struct dfs_inode **pp = &t->bucket[inode_bucket(in->ino)];
        while (*pp != in)
            pp = &(*pp)->next;
        *pp = in->next;
    }
    pthread_mutex_unlock(&t->mu);
    if (!last)
        return;
    for (size_t i = 0; i < DFSFILE_SESSIONS; i++) {
        stream_close(in, &in->ws[i], false);
        pending_clear(&in->ws[i]);
        free(in->ws[i].unsynced);
    }
    prefetch_cancel(in);
    read_cache_drop(in);
    free(in->r.parked);
    free(in->r.buf);
    free(in->r.pf.buf);
    pthread_mutex_destroy(&in->mu);
    free(in);
}

/* The state of ino with a reference when the file is open here, or NULL. */
static struct dfs_inode *inode_find(struct dfs *d, uint64_t ino)
{
    struct dfs_inodes *t = dfs_inodes_of(d);
    pthread_mutex_lock(&t->mu);
    struct dfs_inode *in = inode_lookup(t, ino);
    if (in)
        in->refs++;
    pthread_mutex_unlock(&t->mu);
    return in;
}

void dfsfile_attr_local(struct dfs *d, struct dfs_attr *a)
{
    struct dfs_inodes *t = dfs_inodes_of(d);
    pthread_mutex_lock(&t->mu);
    struct dfs_inode *in = inode_lookup(t, a->ino);
    if (in && atomic_load(&in->pub_dirty)) {
        uint64_t size = atomic_load(&in->pub_size);
        if (size > a->size)
            a->size = size;
    }
    pthread_mutex_unlock(&t->mu);
}

/* A handle on ino's shared state; the master holds the open already. */
static int handle_new(struct dfs *d, uint64_t ino, uint32_t flags, uint64_t size,
                      struct dfs_file **out)
{
    uint64_t chunk_size;
    int rc = dfs_chunk_size(d, &chunk_size);
    if (rc < 0)
        return rc;
    struct dfs_file *h = calloc(1, sizeof(*h));
    if (h)
        h->in = inode_attach(d, ino, size, chunk_size);
    if (!h || !h->in) {
        free(h);
        return -ENOMEM;
    }
    h->flags = flags;
    pthread_mutex_lock(&h->in->mu);
    h->err_seen = h->in->err_seq;
    pthread_mutex_unlock(&h->in->mu);
    *out = h;
    return 0;
}

/* RELEASE of one open at the master: queued for the session's batches
 * (dfsrel.c), or sent now when the queue cannot take it. */
static int release_open(struct dfs *d, uint64_t ino, uint32_t flags)
{
    if (dfs_release_later(dfs_releases_of(d), ino, flags) == 0)
        return 0;
    struct wire_writer b;
    dfs_release_body(&b, ino, flags);
    return dfs_call_void(d, PROTO_RELEASE, &b);
}

/* ---- open / close -------------------------------------------------------- */

/* The write session of this session that holds chunk index, or NULL. */
static const struct dfsfile_ws *ws_leased(const struct dfs_inode *f, uint32_t index)
{
    for (size_t i = 0; i < DFSFILE_SESSIONS; i++)
        if (f->ws[i].leased && f->ws[i].index == index)
            return &f->ws[i];
    return NULL;
}

/* Takes the location of chunk 0 an OPEN answered as the cached one, unless
 * the file has one already or a write session of this session holds the
 * chunk (then its chain is the one to read, loc_get). */
static void loc_seed(struct dfs_inode *f, const struct dfsfile_loc *loc)
{
    pthread_mutex_lock(&f->mu);
    if (!f->r.cur.valid && !ws_leased(f, 0)) {
        f->r.cur.loc = *loc;
        f->r.cur.valid = true;
        f->r.cur.index = 0;
    }
    pthread_mutex_unlock(&f->mu);
}

int dfs_file_open(struct dfs *d, uint64_t ino, uint32_t flags,
                  struct dfs_file **out, struct dfs_attr *attr)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_u32(&b, proto_open_flags(flags));
    struct rpc_reply r;
    int rc = dfs_call_ok(d, PROTO_OPEN, true, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    wire_get_u64(&rd);              /* fh */
    struct dfs_attr a;
    dfs_get_attr(&rd, &a);
    /* A read open of a non-empty file also says where its first chunk is
     * (a master from before that does not). */
    struct dfsfile_loc first;
    uint64_t size = 0;
    bool located = rd.err == 0 && rd.left > 0;
    if (located)
        get_location(&rd, 0, &first, &size);
    rc = rd.err ? -EBADMSG : 0;
    rpc_reply_release(&r);
    if (rc == 0)
        rc = handle_new(d, ino, flags, a.size, out);
    if (rc < 0) {
        release_open(d, ino, flags);   /* the master holds the open */
        return rc;
    }
    if (located)
        loc_seed((*out)->in, &first);
    if (attr) {
        *attr = a;
        dfsfile_attr_local(d, attr);
    }
    return 0;
}

int dfs_file_adopt(struct dfs *d, const struct dfs_attr *a, uint32_t flags,
                   struct dfs_file **out)
{
    int rc = handle_new(d, a->ino, flags, a->size, out);
    if (rc < 0)
        release_open(d, a->ino, flags);
    return rc;
}

uint64_t dfs_file_size(struct dfs_file *h)
{
    pthread_mutex_lock(&h->in->mu);
    uint64_t size = h->in->size;
    pthread_mutex_unlock(&h->in->mu);
    return size;
}

/* ---- writing ------------------------------------------------------------ */

/* WRITE_BEGIN for chunk index: lease, version and chain. */
static int flush_all(struct dfs_inode *f, bool keep_lease);

static int write_begin(struct dfs_inode *f, struct dfsfile_ws *w, uint32_t index)
{
    int waited = 0, backoff = DFSFILE_RETRY_MS;
    bool released = false;
    for (;;) {
        struct wire_writer b;
        wire_writer_init(&b);
        wire_put_u64(&b, f->ino);
        wire_put_u32(&b, index);
        struct rpc_reply r;
        int rc = dfs_call_ok(f->d, PROTO_WRITE_BEGIN, true, &b, &r);
        if (rc == -EAGAIN && !released) {
            /* Another session holds the chunk's write lease, and may be
             * waiting for one this file holds (two clients writing two
             * chunks in opposite orders): commit and release ours first.
             * w is not leased yet, so it is not among them. */
            released = true;
            flush_all(f, false);
            continue;
        }
        if (rc == -EAGAIN && waited < dfs_op_timeout_ms(f->d)) {
            /* Another session holds the chunk's write lease. */
            sleep_ms(backoff);
            waited += backoff;
            backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
            continue;
        }
        if (rc == -EAGAIN) {
            dfs_set_error(f->d, "chunk %u of inode %" PRIu64 ": another client "
                          "kept its write lease for %d ms", index, f->ino, waited);
            return -ETIMEDOUT;
        }
        if (rc < 0)
            return rc;
        struct wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        w->chunk = wire_get_u64(&rd);
        w->version = wire_get_u32(&rd);
        w->prev_version = wire_get_u32(&rd);
        w->length = wire_get_u32(&rd);
        wire_get_u32(&rd);          /* lease_ms: kept alive with the session */
        get_chain(&rd, &w->chain);
        rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
        rpc_reply_release(&r);
        if (rc == 0 && w->chain.n == 0)
            rc = -EIO;
        if (rc < 0)
            return rc;
        w->leased = true;
        w->base_version = w->prev_version;
        w->index = index;
        w->last_end = 0;
        return 0;
    }
}

/* One CS_WRITE payload for data at off_in_chunk; the rest of the chain
 * rides along.  Without with_data the payload stops before the data,
 * which the caller sends from where it lies. */
static void write_payload(const struct dfsfile_ws *w, uint64_t off_in_chunk,
                          const void *data, size_t len, uint8_t flags,
                          bool with_data, struct wire_writer *p)
{
    wire_writer_init(p);
    wire_put_u64(p, w->chunk);
    wire_put_u32(p, w->version);
    wire_put_u32(p, w->prev_version);
    wire_put_u8(p, flags);
    wire_put_u32(p, w->chain.n - 1);
    for (uint32_t i = 1; i < w->chain.n; i++) {
        wire_put_u32(p, w->chain.node[i].id);
        wire_put_str(p, w->chain.node[i].addr);
    }
    if (with_data)
        wire_put_blocks(p, off_in_chunk, data, len);
    else
        wire_put_blocks_head(p, off_in_chunk, data, len);
}

/* The first failed answer of a batch: its status, *failed the node. */
static int first_failure(struct dfs_inode *f, struct dfsfile_ws *w,
                         const struct rpc_reply *r, size_t n, uint32_t *failed)
{
    for (size_t i = 0; i < n; i++) {
        int rc = r[i].hdr.status;
        if (rc == 0)
            continue;
        struct wire_reader rd;
        wire_reader_init(&rd, r[i].payload, r[i].len);
        uint32_t id = wire_get_u32(&rd);
        char *addr = wire_get_str(&rd, PROTO_ADDR_MAX);
        if (!rd.err)
            *failed = id;
        dfs_set_error(f->d, "write of chunk %016" PRIx64 ": chunkserver %u (%s): %s",
                      w->chunk, id, addr ? addr : "?", dfs_strerror(rc));
        free(addr);
        return rc;
    }
    return 0;
}

/*
 * Writes data[0..len) at off_in_chunk through the chain head as up to
 * DFSFILE_PIPELINE CS_WRITE requests of at most PROTO_DATA_MAX bytes,
 * sent back to back before any answer is awaited.  len 0 is one empty
 * write (a SYNC flush).  On failure *failed names the node at fault (0:
 * unknown); the batch may be partly applied, and writing it again is
 * harmless.
 */
static int chain_write(struct dfs_inode *f, struct dfsfile_ws *w, uint64_t off_in_chunk,
                       const uint8_t *data, size_t len, uint8_t flags,
                       uint32_t *failed)
{
    struct wire_writer p[DFSFILE_PIPELINE];
    struct iovec iov[DFSFILE_PIPELINE];
    struct rpc_reply r[DFSFILE_PIPELINE];
    size_t n = 0;
    *failed = 0;
    for (size_t done = 0; n == 0 || done < len; n++) {
        size_t piece = len - done < PROTO_DATA_MAX ? len - done : PROTO_DATA_MAX;
        write_payload(w, off_in_chunk + done, data ? data + done : NULL, piece,
                      flags, true, &p[n]);
        iov[n] = (struct iovec){ p[n].buf, p[n].len };
        done += piece;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        rc = rc ? rc : p[i].err;
    if (rc == 0)
        rc = dfs_cs_call_many(f->d, w->chain.node[0].addr, PROTO_CS_WRITE,
                              iov, n, r);
    for (size_t i = 0; i < n; i++)
        wire_writer_release(&p[i]);
    if (rc < 0) {
        *failed = w->chain.node[0].id;   /* the head itself is gone */
        return rc;
    }
    rc = first_failure(f, w, r, n, failed);
    for (size_t i = 0; i < n; i++)
        rpc_reply_release(&r[i]);
    if (rc == 0)
        w->base_version = w->version;
    return rc;
}

/*
 * A chunkserver of the chain failed: the master gives a new version and a
 * chain without it (down to the minimum of replicas).
 */
static int replace_replica(struct dfs_inode *f, struct dfsfile_ws *w, uint32_t failed)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, f->ino);
    wire_put_u32(&b, w->index);
    wire_put_u64(&b, w->chunk);
    wire_put_u32(&b, w->version);
    wire_put_u32(&b, failed);
    struct rpc_reply r;
    int rc = dfs_call_ok(f->d, PROTO_REPLACE_REPLICA, true, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    w->chunk = wire_get_u64(&rd);
    w->version = wire_get_u32(&rd);
    wire_get_u32(&rd);              /* prev_version: ours is what replicas hold */
    wire_get_u32(&rd);              /* length */
    wire_get_u32(&rd);              /* lease_ms */
    get_chain(&rd, &w->chain);
    rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    rpc_reply_release(&r);
    /* The survivors hold every acknowledged byte at base_version or
     * later (a survivor the failed write never reached is still there);
     * a new chunk nothing was acknowledged of yet (base 0) may be
     * created afresh on every server of the new chain. */
    w->prev_version = w->base_version;
    return rc;
}

/* A truncate moved the chunk to a new version under our lease: a new
 * write session at the current version. */
static int rebegin(struct dfs_inode *f, struct dfsfile_ws *w)
{
    uint32_t base = w->base_version;
    w->leased = false;
    int rc = write_begin(f, w, w->index);
    if (rc == 0 && base > w->base_version)
        w->base_version = base;
    return rc;
}

static int pending_retire(struct dfsfile_ws *w);
static void unsynced_drop(struct dfsfile_ws *w, uint64_t covers);

static int resend_one(struct dfs_inode *f, struct dfsfile_ws *w,
                      const struct dfsfile_pending *p, uint32_t *failed)
{
    int rc = chain_write(f, w, p->off, p->data, p->len, 0, failed);
    /* A new write session starts from the committed length. */
    if (rc == 0 && p->off + p->len > w->length)
        w->length = (uint32_t)(p->off + p->len);
    return rc;
}

/*
 * Sends every held write again, in send order (invariant 5): the
 * acknowledged ones a sync does not cover yet, then the window.  The
 * window's are acknowledged now, and join the others.
 */
static int resend_held(struct dfs_inode *f, struct dfsfile_ws *w, uint32_t *failed)
{
    *failed = 0;
    for (size_t i = 0; i < w->nunsynced; i++) {
        int rc = resend_one(f, w, &w->unsynced[i], failed);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < w->npend; i++) {
        int rc = resend_one(f, w, &w->pend[i], failed);
        if (rc < 0)
            return rc;
        w->pend[i].acked = true;
        w->pend[i].sync = false;  /* sent again plain */
    }
    return pending_retire(w);
}

/*
 * The chain failed with rc (*failed: the node to blame, 0 for none known):
 * a new version — a truncate's when the chunk moved on under the lease,
 * else from the master with the failed node left out (0 keeps the chain:
 * requests of an abandoned connection that a server parses late are then
 * refused, never applied over the resent ones) — and everything held sent
 * again, as often as the master can repair.
 */
static int chain_repair(struct dfs_inode *f, struct dfsfile_ws *w, int rc,
                        uint32_t failed)
{
    for (int i = 0; rc < 0 && i < DFSFILE_REPLACE_TRIES; i++) {
        if (rc == -ENOMEM)
            return rc;              /* not the chain's doing */
        int next;
        if (rc == -DFS_ESTALE_VER) {
            /* A truncate cut the chunk under the lease, and its commit
             * synced what it kept on every replica: what was
             * acknowledged before it must not come back past the cut. */
            unsynced_drop(w, UINT64_MAX);
            next = rebegin(f, w);
        } else {
            next = replace_replica(f, w, failed);
        }
        if (next < 0)
            return next;
        rc = resend_held(f, w, &failed);
    }
    return rc;
}

/* chain_write, on a repaired chain when it fails. */
static int chain_write_retry(struct dfs_inode *f, struct dfsfile_ws *w,
                             uint64_t off_in_chunk, const uint8_t *data, size_t len,
                             uint8_t flags)
{
    uint32_t failed;
    int rc = chain_write(f, w, off_in_chunk, data, len, flags, &failed);
    for (int i = 0; rc < 0 && i < DFSFILE_REPLACE_TRIES; i++) {
        rc = chain_repair(f, w, rc, failed);
        if (rc == 0)
            rc = chain_write(f, w, off_in_chunk, data, len, flags, &failed);
    }
    return rc;
}

/* ---- the write stream ---------------------------------------------------- */

/*
 * write() hands its data to the chain head and returns; up to
 * DFSFILE_WINDOW requests stay unacknowledged on one connection, each
 * with its own copy of the data.  Acknowledged requests retire from the
 * front only, so after a failure everything from the first unacknowledged
 * one on is sent again in the original order: a later request that
 * succeeded is never overwritten by an earlier one resent after it.
 * A failure that cannot be repaired abandons the write session (nothing
 * of it is committed) and is reported by the next fsync or close of every
 * handle open then (DESIGN §2 acknowledges at those).
 */

/* A buffer for a write of len bytes: a spare one when there is. */
static uint8_t *data_take(struct dfsfile_ws *w, size_t len)
{
    if (len == PROTO_DATA_MAX && w->nspare)
        return w->spare[--w->nspare];
    return malloc(len ? len : 1);
}

static void data_give(struct dfsfile_ws *w, struct dfsfile_pending *p)
{
    if (p->data && p->len == PROTO_DATA_MAX && w->nspare < DFSFILE_SPARES)
        w->spare[w->nspare++] = p->data;
    else
        free(p->data);
    p->data = NULL;
}

/* Drops the held writes with ids <= covers: a sync made them durable. */
static void unsynced_drop(struct dfsfile_ws *w, uint64_t covers)
{
    size_t k = 0;
    while (k < w->nunsynced && w->unsynced[k].id <= covers) {
        w->unsynced_bytes -= w->unsynced[k].len;
        data_give(w, &w->unsynced[k++]);
    }
    w->nunsynced -= k;
    if (k)
        memmove(w->unsynced, w->unsynced + k, w->nunsynced * sizeof(w->unsynced[0]));
}

/* Everything held is durable (a SYNC of the chain), or lost for good:
 * the spares go too, the session may be idle for long. */
static void pending_clear(struct dfsfile_ws *w)
{
    for (size_t i = 0; i < w->npend; i++)
        free(w->pend[i].data);
    w->npend = 0;
    unsynced_drop(w, UINT64_MAX);
    while (w->nspare)
        free(w->spare[--w->nspare]);
}

/* Keeps acknowledged write p until a sync covers it (its data moves). */
static int unsynced_add(struct dfsfile_ws *w, struct dfsfile_pending *p)
{
    if (w->nunsynced == w->unsynced_cap) {
        size_t cap = w->unsynced_cap ? 2 * w->unsynced_cap : 16;
        struct dfsfile_pending *v = realloc(w->unsynced, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        w->unsynced = v;
        w->unsynced_cap = cap;
    }
    w->unsynced[w->nunsynced++] = *p;
    w->unsynced_bytes += p->len;
    p->data = NULL;
    return 0;
}

/* Retires the acknowledged writes at the front of the window into the
 * held list; a SYNC write's own bytes are durable and go. */
static int pending_retire(struct dfsfile_ws *w)
{
    size_t k = 0;
    int rc = 0;
    for (; k < w->npend && w->pend[k].acked; k++) {
        struct dfsfile_pending *p = &w->pend[k];
        if (p->sync) {
            unsynced_drop(w, p->covers);
        } else if ((rc = unsynced_add(w, p)) < 0) {
            break;                  /* the rest stays in the window */
        }
        data_give(w, p);
    }
    w->npend -= k;
    memmove(w->pend, w->pend + k, w->npend * sizeof(w->pend[0]));
    return rc;
}

/* Ends the stream: its connection back to the pool when the exchange
 * ended cleanly, closed otherwise. */
static void stream_close(struct dfs_inode *f, struct dfsfile_ws *w, bool clean)
{
    struct dfs_csconn *c = w->stream;
    if (!c)
        return;
    w->stream = NULL;
    if (clean && c->fd >= 0) {
        dfs_cs_put(f->d, c);
        return;
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/*
 * Data of the write session is lost: the session ends without a commit,
 * so no later flush commits a length over bytes no replica has, and the
 * handles hear of it at their next fsync or close.
 */
static void write_failed(struct dfs_inode *f, struct dfsfile_ws *w, int rc)
{
    stream_close(f, w, false);
    pending_clear(w);
    f->err = rc;
    f->err_seq++;
    w->leased = false;
    w->dirty = false;
    read_cache_drop(f);
    publish(f);
}

/*
 * The stream failed with rc (a chunkserver's answer naming node failed,
 * or a transport error with failed 0): chain_repair sends everything held
 * again on a repaired chain, or the write session is lost.
 */
static int stream_recover(struct dfs_inode *f, struct dfsfile_ws *w, int rc,
                          uint32_t failed)
{
    stream_close(f, w, false);
    rc = chain_repair(f, w, rc, failed);
    if (rc < 0)
        write_failed(f, w, rc);
    return rc;
}

/* Waits for one answer on the stream and retires what it allows. */
static int stream_collect(struct dfs_inode *f, struct dfsfile_ws *w)
{
    struct rpc_reply r;
    int rc = rpc_recv_reply_fd(w->stream->fd, 0, dfs_op_timeout_ms(f->d), &r);
    if (rc < 0) {
        dfs_set_error(f->d, "write of chunk %016" PRIx64 ": chunkserver %u (%s): %s",
                      w->chunk, w->chain.node[0].id, w->chain.node[0].addr,
                      dfs_strerror(rc));
        return stream_recover(f, w, rc, 0);
    }
    uint32_t failed = 0;
    rc = first_failure(f, w, &r, 1, &failed);
    uint64_t id = r.hdr.req_id;
    rpc_reply_release(&r);
    if (rc < 0)
        return stream_recover(f, w, rc, failed);
    for (size_t i = 0; i < w->npend; i++) {
        if (w->pend[i].id == id) {
            w->pend[i].acked = true;
            w->base_version = w->version;
        }
    }
    rc = pending_retire(w);
    if (rc < 0)
        write_failed(f, w, rc);
    return rc;
}

/* Whether a SYNC write is in the window (one at a time is enough). */
static bool sync_in_window(const struct dfsfile_ws *w)
{
    for (size_t i = 0; i < w->npend; i++)
        if (w->pend[i].sync)
            return true;
    return false;
}

/* Sends one CS_WRITE of at most PROTO_DATA_MAX bytes on the stream; with
 * sync, one that makes it and every write before it durable. */
static int stream_send(struct dfs_inode *f, struct dfsfile_ws *w, uint64_t off,
                       const uint8_t *data, size_t len, bool sync)
{
    int rc = 0;
    while (rc == 0 && w->npend == DFSFILE_WINDOW)
        rc = stream_collect(f, w);
    if (rc < 0)
        return rc;
    if (!w->stream) {
        w->stream = dfs_cs_take(f->d, w->chain.node[0].addr, &w->stream_reused);
        if (!w->stream)
            return -ENOMEM;
    }
    struct dfsfile_pending *p = &w->pend[w->npend];
    p->data = data_take(w, len);
    if (!p->data)
        return -ENOMEM;
    if (len)
        memcpy(p->data, data, len);
    p->off = off;
    p->len = len;
    p->acked = false;
    p->id = ++w->next_id;
    /* Enough acknowledged bytes held: this write asks the chain to sync.
     * Each server takes a connection's writes in order (chunkserver/csio),
     * so when it syncs it has written every request sent before: all of
     * them are durable once this one is acknowledged. */
    p->sync = sync || (!sync_in_window(w) && w->unsynced_bytes >= DFSFILE_SYNC_BYTES);
    p->covers = p->id - 1;
    w->npend++;
    struct wire_writer b;
    write_payload(w, off, p->data, len, p->sync ? PROTO_WRITE_SYNC : 0, false, &b);
    rc = b.err ? b.err : w->stream->fd;
    if (rc >= 0) {
        struct iovec parts[2] = { { b.buf, b.len }, { p->data, len } };
        rc = rpc_send_fd_parts(w->stream->fd, PROTO_CS_WRITE, parts, 2, p->id,
                               dfs_op_timeout_ms(f->d));
    }
    wire_writer_release(&b);
    return rc < 0 ? stream_recover(f, w, rc, 0) : 0;
}

/* Sends a SYNC behind the stream's last write, unless that one is a SYNC
 * or nothing is in flight. */
static int stream_sync_behind(struct dfs_inode *f, struct dfsfile_ws *w)
{
    if (!w->npend || w->pend[w->npend - 1].sync)
        return 0;
    return stream_send(f, w, w->length, NULL, 0, true);
}

/* Queues data for [off, off + len) of the leased chunk on the stream. */
static int stream_write(struct dfs_inode *f, struct dfsfile_ws *w, uint64_t off,
                        const uint8_t *data, size_t len)
{
    int rc = 0;
    for (size_t done = 0; rc == 0 && done < len;) {
        size_t piece = len - done < PROTO_DATA_MAX ? len - done : PROTO_DATA_MAX;
        rc = stream_send(f, w, off + done, data + done, piece, false);
        done += piece;
    }
    return rc;
}

/* Waits until the chain acknowledged everything sent on the stream. */
static int stream_drain(struct dfs_inode *f, struct dfsfile_ws *w)
{
    int rc = 0;
    while (rc == 0 && w->npend)
        rc = stream_collect(f, w);
    stream_close(f, w, rc == 0);
    return rc;
}

/* What the WRITE_ENDs of a flush stamp: the time of the commit, unless a
 * utimens lands with them (its mtime, and its reply in attr). */
struct dfsfile_stamp {
    int64_t mtime;
    struct dfs_attr *attr;
    bool answered;              /* a WRITE_END filled attr */
};

/* WRITE_END: commits the chunk length and the file size. */
static int write_end(struct dfs_inode *f, struct dfsfile_ws *w, bool keep_lease,
                     struct dfsfile_stamp *st)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, f->ino);
    wire_put_u32(&b, w->index);
    wire_put_u64(&b, w->chunk);
    wire_put_u32(&b, w->version);
    wire_put_u32(&b, w->length);
    wire_put_u64(&b, f->size);
    wire_put_i64(&b, st ? st->mtime : now_ns());
    wire_put_u8(&b, keep_lease);
    if (!st)
        return dfs_call_void(f->d, PROTO_WRITE_END, &b);
    int rc = dfs_attr_call(f->d, PROTO_WRITE_END, true, &b, 0, st->attr);
    st->answered |= rc == 0;
    return rc;
}

/* Makes the leased chunk durable on its chain and commits it. */
static int flush_chunk(struct dfs_inode *f, struct dfsfile_ws *w, bool keep_lease,
                       struct dfsfile_stamp *st)
{
    bool held = w->dirty || w->npend || w->nunsynced;
    if (!w->leased || (!held && keep_lease))
        return 0;                   /* nothing to commit, the lease stays */
    /* A sync behind the stream's last write: the chain's answers to the
     * window are then the durability too, one round trip instead of a
     * drain and a sync after it (a small file's close). */
    int rc = held ? stream_sync_behind(f, w) : 0;
    if (rc == 0 && held)
        rc = stream_drain(f, w);
    /* Acknowledged writes no sync covered (a stream resent plain after a
     * failure, or one that ended before the sync above) still need one. */
    if (rc == 0 && held && w->nunsynced)
        rc = chain_write_retry(f, w, w->length, NULL, 0, PROTO_WRITE_SYNC);
    if (rc == 0)
        pending_clear(w);           /* every replica synced all of it */
    if (rc == 0)
        rc = write_end(f, w, keep_lease, st);
    if (rc < 0 && w->leased)
        write_failed(f, w, rc);
    if (rc == 0) {
        w->dirty = false;
        w->leased = keep_lease;
        w->prev_version = w->base_version = w->version;
    }
    return rc;
}

/* flush_chunk of every chunk being written; the first failure, once all
 * were tried. */
static int flush_stamped(struct dfs_inode *f, bool keep_lease, struct dfsfile_stamp *st)
{
    int rc = 0;
    for (size_t i = 0; i < DFSFILE_SESSIONS; i++) {
        int r = flush_chunk(f, &f->ws[i], keep_lease, st);
        rc = rc < 0 ? rc : r;
    }
    return rc;
}

static int flush_all(struct dfs_inode *f, bool keep_lease)
{
    return flush_stamped(f, keep_lease, NULL);
}

/* The write session of chunk index, begun if need be: a free one, else
 * the least recently written one, committed first.  A chunk before index
 * whose last write ended at its end is one a sequential writer is done
 * with: the one just before gets its SYNC at once and goes on syncing
 * while the next one streams (draining it here stalled the writer for a
 * whole window at every chunk), the one two back is committed, since its
 * answers are in by then and what it held need not wait in memory. */
static int ws_for(struct dfs_inode *f, uint32_t index, struct dfsfile_ws **out)
{
    struct dfsfile_ws *w = NULL, *lru = NULL;
    for (size_t i = 0; i < DFSFILE_SESSIONS; i++) {
        struct dfsfile_ws *c = &f->ws[i];
        if (c->leased && c->index == index) {
            w = c;
            goto found;
        }
        bool done_with = c->leased && c->last_end == f->chunk_size;
        if (done_with && (c->index + 1 == index || c->index + 2 == index)) {
            int rc = c->index + 1 == index ? stream_sync_behind(f, c)
                                           : flush_chunk(f, c, false, NULL);
            if (rc < 0)
                return rc;
        }
        if (!lru || (lru->leased && (!c->leased || c->used < lru->used)))
            lru = c;
    }
    w = lru;
    int rc = w->leased ? flush_chunk(f, w, false, NULL) : 0;
    if (rc == 0)
        rc = write_begin(f, w, index);
    if (rc < 0)
        return rc;
found:
    w->used = ++f->ws_clock;
    *out = w;
    return 0;
}

static ssize_t inode_pwrite(struct dfs_inode *f, const void *buf, size_t len,
                            uint64_t off)
{
    pthread_mutex_lock(&f->mu);
    read_cache_drop(f);
    const uint8_t *p = buf;
    size_t done = 0;
    int rc = 0;
    while (rc == 0 && done < len) {
        uint64_t pos = off + done;
        uint32_t index = (uint32_t)(pos / f->chunk_size);
        uint64_t in_chunk = pos % f->chunk_size;
        size_t n = len - done;
        if (n > f->chunk_size - in_chunk)
            n = (size_t)(f->chunk_size - in_chunk);
        if (n > (size_t)DFSFILE_PIPELINE * PROTO_DATA_MAX)
            n = (size_t)DFSFILE_PIPELINE * PROTO_DATA_MAX;
        struct dfsfile_ws *w;
        rc = ws_for(f, index, &w);
        if (rc == 0)
            rc = stream_write(f, w, in_chunk, p + done, n);
        if (rc < 0)
            break;
        w->dirty = true;
        w->last_end = in_chunk + n;
        if (in_chunk + n > w->length)
            w->length = (uint32_t)(in_chunk + n);
        done += n;
        if (pos + n > f->size)
            f->size = pos + n;
    }
    publish(f);
    pthread_mutex_unlock(&f->mu);
    return rc < 0 ? rc : (ssize_t)len;
}

ssize_t dfs_file_pwrite(struct dfs_file *h, const void *buf, size_t len,
                        uint64_t off)
{
    if (!(h->flags & DFS_O_WRITE))
        return -EBADF;
    /* Past the last chunk a file may have the index would wrap. */
    uint64_t max = (uint64_t)PROTO_CHUNKS_MAX * h->in->chunk_size;
    if (off > max || len > max - off)
        return -EFBIG;
    return inode_pwrite(h->in, buf, len, off);
}

static bool any_leased(const struct dfs_inode *f)
{
    for (size_t i = 0; i < DFSFILE_SESSIONS; i++)
        if (f->ws[i].leased)
            return true;
    return false;
}

/*
 * A SETATTR on an inode this client may hold unwritten data of.  The data
 * is committed first and its leases released: a WRITE_END after the call
 * would set the mtime again, undoing the mtime a program such as tar or
 * cp -p sets after writing, and a size change must land after the writes
 * before it (the truncate gives the chunk a new version).  An explicit
 * mtime alone rides on those WRITE_ENDs, one commit fewer (tar's utimens
 * after each file it extracts); UTIME_NOW stays the master's clock.  A
 * write-back that fails fails a size change; other changes are made all
 * the same, the failure being reported at fsync and close.
 */
static int inode_setattr(struct dfs_inode *f, const struct dfs_setattr *set,
                         struct dfs_attr *out, bool grow_only)
{
    bool sizing = set->valid & DFS_SET_SIZE;
    struct dfsfile_stamp st = { .mtime = set->mtime, .attr = out };
    pthread_mutex_lock(&f->mu);
    if ((sizing && grow_only && f->size >= set->size) || (!sizing && !any_leased(f))) {
        /* Nothing to do, or nothing of ours to commit first: readers of
         * the file need not wait for the SETATTR. */
        pthread_mutex_unlock(&f->mu);
        return sizing ? 0 : dfs_setattr_call(f->d, f->ino, set, out);
    }
    if (sizing)
        read_cache_drop(f);
    int rc = flush_stamped(f, false, set->valid == DFS_SET_MTIME ? &st : NULL);
    /* Committed now: the attributes of the reply must not show the old
     * uncommitted size. */
    publish(f);
    if (!sizing)
        rc = 0;
    if (rc == 0 && !st.answered)
        rc = dfs_setattr_call(f->d, f->ino, set, out);
    if (rc == 0 && sizing)
        f->size = set->size;
    publish(f);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int dfsfile_setattr(struct dfs *d, uint64_t ino, const struct dfs_setattr *set,
                    struct dfs_attr *out)
{
    struct dfs_inode *in = inode_find(d, ino);
    if (!in)
        return dfs_setattr_call(d, ino, set, out);
    int rc = inode_setattr(in, set, out, false);
    inode_detach(in);
    return rc;
}

int dfs_file_truncate(struct dfs_file *h, uint64_t size)
{
    struct dfs_setattr set = { .valid = DFS_SET_SIZE, .size = size };
    struct dfs_attr a;
    return inode_setattr(h->in, &set, &a, false);
}

int dfs_file_extend(struct dfs_file *h, uint64_t size)
{
    struct dfs_setattr set = { .valid = DFS_SET_SIZE, .size = size };
    struct dfs_attr a;
    return inode_setattr(h->in, &set, &a, true);
}

/* A write-back failure h has not reported yet (caller holds in->mu). */
static int handle_error(struct dfs_file *h)
{
    struct dfs_inode *f = h->in;
    if (h->err_seen == f->err_seq)
        return 0;
    h->err_seen = f->err_seq;
    return f->err ? f->err : -EIO;
}

static int inode_sync(struct dfs_file *h, bool keep_lease)
{
    struct dfs_inode *f = h->in;
    pthread_mutex_lock(&f->mu);
    int rc = flush_all(f, keep_lease);
    int err = handle_error(h);
    publish(f);
    pthread_mutex_unlock(&f->mu);
    return rc < 0 ? rc : err;
}

int dfs_file_fsync(struct dfs_file *h)
{
    return inode_sync(h, true);
}

int dfs_file_flush(struct dfs_file *h)
{
    return inode_sync(h, false);
}

int dfs_file_close(struct dfs_file *h)
{
    struct dfs_inode *f = h->in;
    /* close(2) is a durability point (DESIGN §2). */
    int rc = h->flags & DFS_O_WRITE ? inode_sync(h, false) : 0;
    int rc2 = release_open(f->d, f->ino, h->flags);
    inode_detach(f);
    free(h);
    return rc < 0 ? rc : rc2;
}

/* ---- reading ------------------------------------------------------------- */

static int locate(struct dfs_inode *f, uint32_t index, struct dfsfile_loc *loc)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, f->ino);
    wire_put_u32(&b, index);
    wire_put_u32(&b, 1);
    struct rpc_reply r;
    int rc = dfs_call_ok(f->d, PROTO_CHUNK_LOCATIONS, false, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    uint64_t size;
    get_location(&rd, index, loc, &size);
    rc = rd.err ? -EBADMSG : 0;
    rpc_reply_release(&r);
    if (rc == 0 && size > f->size)
        f->size = size;
    return rc;
}

/*
 * locate, waiting a little when the chunk exists but no replica holds its
 * version yet: right after a truncate or a re-replication the master is
 * still moving replicas to the new version.
 */
static int locate_settled(struct dfs_inode *f, uint32_t index,
                          struct dfsfile_loc *loc)
{
    int rc = locate(f, index, loc);
    for (int i = 0; rc == 0 && loc->present && loc->where.n == 0 && i < 40; i++) {
        sleep_ms(DFSFILE_RETRY_MS);
        rc = locate(f, index, loc);
    }
    return rc;
}

static void report_bad(struct dfs_inode *f, const struct dfsfile_loc *loc,
                       uint32_t cs, uint32_t block)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, loc->chunk);
    wire_put_u32(&b, loc->version);
    wire_put_u32(&b, cs);
    wire_put_u32(&b, block);
    struct rpc_reply r;
    if (dfs_call_ok(f->d, PROTO_BAD_REPLICA, false, &b, &r) == 0)
        rpc_reply_release(&r);
}

/* One CS_READ answer for [in_chunk, in_chunk + len) into buf: CRCs
 * checked, bytes past the replica's length zeroed. */
static int read_answer(struct dfs_inode *f, const struct dfsfile_loc *loc,
                       const struct dfsfile_node *node, const struct rpc_reply *r,
                       uint64_t in_chunk, uint8_t *buf, size_t len)
{
    int rc = r->hdr.status;
    struct wire_blocks blk;
    struct wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    if (rc == 0) {
        wire_get_u32(&rd);          /* chunk_length */
        rc = wire_get_blocks(&rd, &blk, PROTO_DATA_MAX);
    }
    if (rc == 0 && (blk.offset != in_chunk || blk.length > len))
        rc = -EBADMSG;
    uint32_t bad = 0;
    if (rc == 0)
        rc = wire_verify_blocks(&blk, &bad);
    if (rc == -DFS_ECORRUPT)
        report_bad(f, loc, node->id, bad);
    if (rc == 0) {
        memcpy(buf, blk.data, blk.length);
        memset(buf + blk.length, 0, len - blk.length);
    }
    return rc;
}

/*
 * Reads [in_chunk, in_chunk + len) of a chunk from one replica as up to
 * DFSFILE_PIPELINE CS_READ requests of PROTO_DATA_MAX bytes in flight.
 */
static int read_replica(struct dfs_inode *f, const struct dfsfile_loc *loc,
                        const struct dfsfile_node *node, uint64_t in_chunk,
                        uint8_t *buf, size_t len)
{
    struct wire_writer p[DFSFILE_PIPELINE];
    struct iovec iov[DFSFILE_PIPELINE];
    struct rpc_reply r[DFSFILE_PIPELINE];
    size_t n = 0;
    int rc = 0;
    if (len == 0)
        return 0;
    for (size_t done = 0; done < len; n++) {
        size_t piece = len - done < PROTO_DATA_MAX ? len - done : PROTO_DATA_MAX;
        wire_writer_init(&p[n]);
        wire_put_u64(&p[n], loc->chunk);
        wire_put_u32(&p[n], loc->version);
        wire_put_u64(&p[n], in_chunk + done);
        wire_put_u32(&p[n], (uint32_t)piece);
        rc = rc ? rc : p[n].err;
        iov[n] = (struct iovec){ p[n].buf, p[n].len };
        done += piece;
    }
    if (rc == 0)
        rc = dfs_cs_call_many(f->d, node->addr, PROTO_CS_READ, iov, n, r);
    for (size_t i = 0; i < n; i++)
        wire_writer_release(&p[i]);
    if (rc < 0)
        return rc;
    for (size_t i = 0, off = 0; i < n; i++) {
        size_t piece = len - off < PROTO_DATA_MAX ? len - off : PROTO_DATA_MAX;
        if (rc == 0)
            rc = read_answer(f, loc, node, &r[i], in_chunk + off, buf + off, piece);
        rpc_reply_release(&r[i]);
        off += piece;
    }
    return rc;
}

/* Reads a piece of one chunk, trying each replica in turn. */
static int read_piece(struct dfs_inode *f, const struct dfsfile_loc *loc,
                      uint64_t in_chunk, uint8_t *buf, size_t len)
{
    if (!loc->present) {
        memset(buf, 0, len);        /* a hole */
        return 0;
    }
    int rc = -EIO;
    for (uint32_t i = 0; i < loc->where.n; i++) {
        rc = read_replica(f, loc, &loc->where.node[i], in_chunk, buf, len);
        if (rc == 0)
            return 0;
    }
    if (loc->where.n == 0)
        dfs_set_error(f->d, "chunk %016" PRIx64 ": no replica available", loc->chunk);
    return rc == -DFS_ECORRUPT ? -EIO : rc;
}

/*
 * The location of chunk index, cached for the handle's next reads.  While
 * this handle's write session holds the chunk, that is the session's own
 * chain at its version: what this handle wrote and has not committed is
 * only there, and its reads must return it (a replica the master lists at
 * the committed version, such as one a truncate trimmed after the chain
 * was chosen, holds the older bytes).
 */
static int loc_get(struct dfs_inode *f, uint32_t index)
{
    if (f->r.cur.index != index)
        rloc_switch(f, index);
    else if (f->r.cur.valid)
        return 0;
    const struct dfsfile_ws *w = ws_leased(f, index);
    if (!w && f->r.cur.valid)
        return 0;           /* out of the park */
    if (w) {
        f->r.cur.loc = (struct dfsfile_loc){
            .present = true, .chunk = w->chunk, .version = w->version,
            .length = w->length, .where = w->chain,
        };
        f->r.cur.valid = true;
        return 0;
    }
    int rc = locate_settled(f, index, &f->r.cur.loc);
    f->r.cur.valid = rc == 0;
    return rc;
}

/*
 * The located chunk's replica on this host, opened on first use (local
 * reads: docs/LOCAL_READS.md): NULL when no replica is local.  Called
 * with f->mu held and f->r.cur valid.
 */
static struct dfs_local_chunk *local_get(struct dfs_inode *f)
{
    const struct dfsfile_loc *loc = &f->r.cur.loc;
    if (!loc->present)
        return NULL;
    if (f->r.cur.lc_tried && f->r.cur.lc_chunk == loc->chunk && f->r.cur.lc_version == loc->version)
        return f->r.cur.lc;
    local_drop(f);
    f->r.cur.lc_tried = true;
    f->r.cur.lc_chunk = loc->chunk;
    f->r.cur.lc_version = loc->version;
    for (uint32_t i = 0; i < loc->where.n; i++)
        if (dfs_local_open(f->d, loc->where.node[i].addr, loc->chunk, loc->version,
                           &f->r.cur.lc) == 0)
            break;
    return f->r.cur.lc;
}

/*
 * Reads [in_chunk, in_chunk + len) of chunk, the located one, from its
 * replica on this host.  A range past the replica's length when opened,
 * or a block that fails, opens it afresh once: the replica may have grown
 * or been rewritten since (by this session's own writes, say).  With
 * unlocked, f->mu is released during the read so that several threads
 * read one file side by side (f->r.cur may then have moved on: the
 * afresh open checks it still names chunk).  0, or an error after which
 * the caller reads through TCP, which judges a replica that is really
 * bad.  Called and returns with f->mu held.
 */
static int read_local(struct dfs_inode *f, uint64_t chunk, uint64_t in_chunk,
                      uint8_t *buf, size_t len, bool unlocked)
{
    int rc = -ERANGE;
    for (int tries = 0; tries < 2 && rc < 0; tries++) {
        if (tries)
            local_drop(f);
        struct dfs_local_chunk *lc = local_get(f);
        if (!lc || lc->chunk != chunk)
            return -ENOTSUP;
        if (tries == 0 && in_chunk + len > lc->length)
            continue;
        dfs_local_ref(lc);
        if (unlocked)
            pthread_mutex_unlock(&f->mu);
        rc = dfs_local_read(lc, in_chunk, buf, len);
        if (unlocked)
            pthread_mutex_lock(&f->mu);
        dfs_local_unref(lc);
    }
    if (rc < 0 && f->r.cur.lc_chunk == chunk) {
        /* Failed afresh too: this chunk is read through TCP from now on
         * (until it is located at another version). */
        dfs_local_unref(f->r.cur.lc);
        f->r.cur.lc = NULL;
    }
    return rc;
}

/* Reads [in_chunk, in_chunk + len) of the located chunk; when every
 * replica the cached location names fails, asks the master again once
 * (replicas move: re-replication, a dead server, a new version). */
static int read_located(struct dfs_inode *f, uint64_t in_chunk, uint8_t *buf,
                        size_t len)
{
    if (read_local(f, f->r.cur.loc.chunk, in_chunk, buf, len, false) == 0)
        return 0;
    int rc = read_piece(f, &f->r.cur.loc, in_chunk, buf, len);
    if (rc == 0)
        return 0;
    f->r.cur.valid = false;
    if (loc_get(f, f->r.cur.index) < 0)
        return rc;
    return read_piece(f, &f->r.cur.loc, in_chunk, buf, len);
}

/*
 * Fills the read-ahead buffer from pos, at least want bytes (want <=
 * DFSFILE_READAHEAD_MAX) within pos's chunk and the file.  The window
 * doubles with every sequential fill.
 */
static int readahead_fill(struct dfs_inode *f, uint64_t pos, size_t want)
{
    size_t window = f->r.window ? f->r.window * 2 : DFSFILE_READAHEAD_MIN;
    if (window > DFSFILE_READAHEAD_MAX)
        window = DFSFILE_READAHEAD_MAX;
    size_t n = want > window ? want : window;
    uint64_t in_chunk = pos % f->chunk_size;
    if (n > f->chunk_size - in_chunk)
        n = (size_t)(f->chunk_size - in_chunk);
    if (n > f->size - pos)
        n = (size_t)(f->size - pos);
    if (!f->r.buf) {
        f->r.buf = malloc(DFSFILE_READAHEAD_MAX);
        if (!f->r.buf)
            return -ENOMEM;
    }
    f->r.len = 0;
    int rc = read_located(f, in_chunk, f->r.buf, n);
    if (rc < 0)
        return rc;
    f->r.off = pos;
    f->r.len = n;
    f->r.window = window;
    return 0;
}

/* ---- prefetch: the next window on its way while this one is read ------ */

static void prefetch_cancel(struct dfs_inode *f)
{
    struct dfs_csconn *c = f->r.pf.conn;
    if (!c)
        return;
    f->r.pf.conn = NULL;
    if (c->fd >= 0)
        close(c->fd);   /* answers still due: the connection cannot be reused */
    free(c);
}

/*
 * Asks the first replica for the window after the buffer's, without
 * waiting: once reads are sequential at the full window, a file streams
 * with one window in flight while the application consumes the other.
 */
static void prefetch_start(struct dfs_inode *f)
{
    uint64_t pos = f->r.off + f->r.len;
    if (f->r.pf.conn || f->r.window < DFSFILE_READAHEAD_MAX || pos >= f->size)
        return;
    if (loc_get(f, (uint32_t)(pos / f->chunk_size)) < 0 ||
        !f->r.cur.loc.present || f->r.cur.loc.where.n == 0)
        return;
    uint64_t in_chunk = pos % f->chunk_size;
    size_t len = DFSFILE_READAHEAD_MAX;
    if (len > f->chunk_size - in_chunk)
        len = (size_t)(f->chunk_size - in_chunk);
    if (len > f->size - pos)
        len = (size_t)(f->size - pos);
    if (!f->r.pf.buf && !(f->r.pf.buf = malloc(DFSFILE_READAHEAD_MAX)))
        return;
    struct wire_writer p[DFSFILE_PIPELINE];
    struct iovec iov[DFSFILE_PIPELINE];
    uint32_t n = 0;
    int rc = 0;
    for (size_t done = 0; done < len; n++) {
        size_t piece = len - done < PROTO_DATA_MAX ? len - done : PROTO_DATA_MAX;
        wire_writer_init(&p[n]);
        wire_put_u64(&p[n], f->r.cur.loc.chunk);
        wire_put_u32(&p[n], f->r.cur.loc.version);
        wire_put_u64(&p[n], in_chunk + done);
        wire_put_u32(&p[n], (uint32_t)piece);
        rc = rc ? rc : p[n].err;
        iov[n] = (struct iovec){ p[n].buf, p[n].len };
        done += piece;
    }
    bool reused;
    struct dfs_csconn *c = rc ? NULL : dfs_cs_take(f->d, f->r.cur.loc.where.node[0].addr, &reused);
    if (c && c->fd >= 0)
        rc = rpc_send_fd_many(c->fd, PROTO_CS_READ, iov, n, 1, dfs_op_timeout_ms(f->d));
    for (uint32_t i = 0; i < n; i++)
        wire_writer_release(&p[i]);
    if (!c)
        return;
    f->r.pf.conn = c;
    if (c->fd < 0 || rc < 0) {
        prefetch_cancel(f);
        return;
    }
    f->r.pf.off = pos;
    f->r.pf.len = len;
    f->r.pf.n = n;
    f->r.pf.node = 0;
    f->r.pf.loc = f->r.cur.loc;
}

/* The prefetched window starting at pos becomes the buffer: 0, or an
 * error (nothing asked there, or a failed answer: the caller reads
 * synchronously, trying every replica). */
static int prefetch_take(struct dfs_inode *f, uint64_t pos)
{
    if (!f->r.pf.conn)
        return -ENOENT;
    if (f->r.pf.off != pos) {
        prefetch_cancel(f);
        return -ENOENT;
    }
    int rc = 0;
    uint32_t got = 0;
    bool seen[DFSFILE_PIPELINE] = { false };
    while (rc == 0 && got < f->r.pf.n) {
        struct rpc_reply r;
        rc = rpc_recv_reply_fd(f->r.pf.conn->fd, 0, dfs_op_timeout_ms(f->d), &r);
        if (rc < 0)
            break;
        uint64_t id = r.hdr.req_id;
        if (id >= 1 && id <= f->r.pf.n && !seen[id - 1]) {
            size_t at = (size_t)(id - 1) * PROTO_DATA_MAX;
            size_t piece = f->r.pf.len - at < PROTO_DATA_MAX ? f->r.pf.len - at
                                                              : PROTO_DATA_MAX;
            rc = read_answer(f, &f->r.pf.loc, &f->r.pf.loc.where.node[f->r.pf.node], &r,
                             pos % f->chunk_size + at, f->r.pf.buf + at, piece);
            seen[id - 1] = true;
            got++;
        }
        rpc_reply_release(&r);
    }
    if (rc < 0) {
        prefetch_cancel(f);
        return rc;
    }
    dfs_cs_put(f->d, f->r.pf.conn);
    f->r.pf.conn = NULL;
    uint8_t *buf = f->r.buf;
    f->r.buf = f->r.pf.buf;
    f->r.pf.buf = buf;
    f->r.off = pos;
    f->r.len = f->r.pf.len;
    return 0;
}

/*
 * Copies what the read-ahead buffer holds of [pos, pos + n) to buf, first
 * filling it when the read goes on where the last one ended.  Returns the
 * bytes copied (0: read directly), or an error.
 */
static ssize_t read_buffered(struct dfs_inode *f, uint64_t pos, uint8_t *buf,
                             size_t n)
{
    bool hit = pos >= f->r.off && pos < f->r.off + f->r.len;
    bool sequential = pos == f->r.next || (f->r.len && pos == f->r.off + f->r.len);
    if (!hit && sequential && n <= DFSFILE_READAHEAD_MAX) {
        int rc = prefetch_take(f, pos);
        if (rc < 0)
            rc = readahead_fill(f, pos, n);
        if (rc < 0)
            return rc;
        hit = true;
        prefetch_start(f);
    }
    if (!hit) {
        f->r.window = 0;
        return 0;
    }
    size_t k = (size_t)(f->r.off + f->r.len - pos);
    if (k > n)
        k = n;
    memcpy(buf, f->r.buf + (pos - f->r.off), k);
    return (ssize_t)k;
}

/*
 * A read the buffer does not serve (random access), from the located
 * chunk's replicas without f->mu held, so that reads of one file from
 * several threads run side by side; on failure, located afresh and
 * retried under the lock.  Called and returns with f->mu held.
 */
static ssize_t read_direct(struct dfs_inode *f, uint64_t pos, uint8_t *buf,
                           size_t n)
{
    uint64_t in_chunk = pos % f->chunk_size;
    struct dfsfile_loc loc = f->r.cur.loc;
    pthread_mutex_unlock(&f->mu);
    int rc = read_piece(f, &loc, in_chunk, buf, n);
    pthread_mutex_lock(&f->mu);
    if (rc < 0) {
        /* Another thread may have moved the cached location meanwhile. */
        rc = loc_get(f, (uint32_t)(pos / f->chunk_size));
        if (rc == 0)
            rc = read_located(f, in_chunk, buf, n);
    }
    return rc < 0 ? rc : (ssize_t)n;
}

ssize_t dfs_file_pread(struct dfs_file *h, void *buf, size_t len, uint64_t off)
{
    struct dfs_inode *f = h->in;
    pthread_mutex_lock(&f->mu);
    /* What this handle wrote is readable once the chain has it. */
    for (size_t i = 0; i < DFSFILE_SESSIONS; i++)
        if (f->ws[i].npend)
            stream_drain(f, &f->ws[i]);
    uint8_t *p = buf;
    size_t done = 0;
    int rc = 0;
    bool asked = false, local_failed = false;
    while (done < len) {
        uint64_t pos = off + done;
        rc = loc_get(f, (uint32_t)(pos / f->chunk_size));
        if (rc == 0 && pos >= f->size && !asked && done == 0 && !any_dirty(f)) {
            /* The end as this session last saw it: ask the master once
             * whether the file grew since (locate raises f->size).  A
             * read that got bytes ends short instead; the caller's next
             * read asks.  (The kernel above a mount knows the size and
             * does not send that one: a small file is read without a
             * question.) */
            asked = true;
            f->r.cur.valid = false;
            rc = loc_get(f, (uint32_t)(pos / f->chunk_size));
        }
        if (rc < 0 || pos >= f->size)
            break;
        uint64_t in_chunk = pos % f->chunk_size;
        size_t n = len - done;
        if (n > f->chunk_size - in_chunk)
            n = (size_t)(f->chunk_size - in_chunk);
        if (n > f->size - pos)
            n = (size_t)(f->size - pos);
        ssize_t k = 0;
        if (!local_failed && local_get(f)) {
            /* Straight from the replica's file: no buffer, no read-ahead
             * of ours (the kernel's on that file does it). */
            if (read_local(f, f->r.cur.loc.chunk, in_chunk, p + done, n, true) < 0) {
                local_failed = true;
                continue;       /* f->r.cur may have moved meanwhile */
            }
            k = (ssize_t)n;
        }
        if (k == 0)
            k = read_buffered(f, pos, p + done, n);
        if (k == 0) {
            if (n > (size_t)DFSFILE_PIPELINE * PROTO_DATA_MAX)
                n = (size_t)DFSFILE_PIPELINE * PROTO_DATA_MAX;
            k = read_direct(f, pos, p + done, n);
        }
        if (k < 0) {
            rc = (int)k;
            break;
        }
        done += (size_t)k;
    }
    f->r.next = off + done;
    pthread_mutex_unlock(&f->mu);
    return rc < 0 && done == 0 ? rc : (ssize_t)done;
}

/* ---- chunk listing --------------------------------------------------------- */

int dfs_chunks(struct dfs *d, uint64_t ino, uint32_t first,
               struct dfs_chunk *out, size_t max, size_t *n)
{
    *n = 0;
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_u32(&b, first);
    wire_put_u32(&b, (uint32_t)(max > 64 ? 64 : max));
    struct rpc_reply r;
    int rc = dfs_call_ok(d, PROTO_CHUNK_LOCATIONS, false, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    wire_get_u64(&rd);              /* file size */
    uint32_t count = wire_get_u32(&rd);
    for (uint32_t i = 0; i < count && *n < max && !rd.err; i++) {
        struct dfs_chunk *c = &out[(*n)++];
        struct dfsfile_chain where;
        c->index = wire_get_u32(&rd);
        c->id = wire_get_u64(&rd);
        c->version = wire_get_u32(&rd);
        c->length = wire_get_u32(&rd);
        get_chain(&rd, &where);
        c->nreplicas = where.n;
        for (uint32_t k = 0; k < where.n; k++)
            c->replicas[k] = where.node[k].id;
    }
    rc = rd.err ? -EBADMSG : 0;
    rpc_reply_release(&r);
    return rc;
}
