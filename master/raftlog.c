/*
 * raftlog: the durable Raft log (segments, hard state, snapshot) of a
 * master, over fsio.  docs/RAFTLOG.md is the long version of this comment.
 *
 * Owns, in the directory it is given:
 *   log-<first index, 20 digits>   a segment: header, then whole records
 *   hardstate                      term, vote, commit (replaced atomically)
 *   snapshot                       meta + state machine bytes (same)
 * and the in-memory description of the segments (segs[]), the tail
 * segment's fd, and two scratch buffers (encoding, reading).
 *
 * Invariants:
 *  1. segs[] is sorted and contiguous: segs[i].last + 1 == segs[i+1].first;
 *     segs[i].size is the byte length of its header and whole records.
 *  2. Every segment but the last is complete and durable, data and name:
 *     seg_roll creates a segment only after syncing the one before it and
 *     the directory.  Damage in a segment that is not the last is
 *     therefore corruption, never a crash.
 *  3. Segments leave the tail one at a time, each unlink made durable
 *     before the next (segs_drop_tail), so at every instant the durable
 *     segments hold a contiguous log.  Only compaction removes from the
 *     head, and only entries the durable snapshot holds: recovery skips
 *     those segments by name.
 *  4. Each record carries `synced`, the durable index when it was written
 *     (always below its own index).  A record claiming synced >= i proves
 *     entry i had reached the disk: recovery takes a bad record at index i
 *     in the last segment for an unsynced write cut by a crash (and drops
 *     it) unless a later record proves it was durable (then: corruption).
 *  5. A truncation is durable before anything is written after it, so no
 *     file ever holds a stale record that a crash could bring back.
 *  6. last_index >= snap_index; with no segment, last == snap;
 *     durable <= last_index; fd is the last segment's (O_RDWR), -1 when
 *     there is none; synced_size <= segs[last].size.
 *  7. failed != 0 (sticky): the files may differ from segs[]; only close
 *     and the getters are meaningful.  The owner reopens to recover.
 *
 * States: open (recovered) -> [append* sync]* with truncate / compact /
 * snapshot / hard state calls in between -> closed; any failure of a sync
 * or of a multi-step change -> failed -> closed.
 */
#include "master/raftlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/dfs_error.h"
#include "common/fsio.h"
#include "common/log.h"
#include "common/wire.h"

/* Magics are the little-endian u32 of four ASCII letters. */
#define SEG_MAGIC   0x474c4644u     /* "DFLG" */
#define REC_MAGIC   0x45524644u     /* "DFRE" */
#define HS_MAGIC    0x53484644u     /* "DFHS" */
#define SNAP_MAGIC  0x4e534644u     /* "DFSN" */
#define FORMAT_VERSION 1u

/* magic, version, first index, prev term, crc */
#define SEG_HDR     28
/* magic, len, index, term, type, synced, crc; then len data bytes */
#define REC_HDR     40
/* magic, version, term, vote, commit, crc */
#define HS_SIZE     36
/* magic, version, index, term, n; n * (id u64, role u32); data len, data
 * crc, header crc */
#define SNAP_FIXED  44
#define SNAP_SERVER 12
#define SNAP_HDR_MAX (SNAP_FIXED + SNAP_SERVER * RAFT_MAX_SERVERS)

#define SEG_PREFIX  "log-"
#define SEG_DIGITS  20
#define HS_NAME     "hardstate"
#define SNAP_NAME   "snapshot"

/* Bytes read at a time when scanning a segment. */
#define READ_WINDOW (1u << 20)
/* Smallest segment_size accepted: a header and one small record. */
#define SEG_MIN     (SEG_HDR + REC_HDR)

struct seg {
    uint64_t first;     /* index in its name and header */
    uint64_t prev_term; /* term of entry first - 1, from the header */
    uint64_t last;      /* index of its last record; first - 1 when none */
    uint64_t size;      /* header + whole records, in bytes */
};

/* Where the previous raftlog_read stopped, so the next one resumes there
 * instead of scanning its segment from the start. */
struct seek_hint {
    uint64_t seg_first; /* 0: none */
    uint64_t index;
    uint64_t off;
};

struct raftlog {
    struct fsio *fs;            /* borrowed */
    char *dir;                  /* owned */
    uint64_t seg_max;
    struct seg *segs;           /* owned; see invariants 1-3 */
    size_t nsegs, segs_cap;
    int fd;                     /* the last segment, O_RDWR; -1: none */
    uint64_t synced_size;       /* bytes of the last segment made durable */
    bool dir_dirty;             /* a name changed since the last dir sync */
    uint64_t last_index, last_term;
    uint64_t durable;
    uint64_t snap_index, snap_term;
    int failed;
    struct seek_hint hint;
    struct wire_writer wbuf;    /* scratch: records of one write, headers */
    uint8_t *rbuf;              /* scratch of readers; owned */
    size_t rcap;
};

/* ======================================================================== */
/* small helpers                                                            */
/* ======================================================================== */

static int set_failed(struct raftlog *log, int err)
{
    if (!log->failed)
        log->failed = err;
    return err;
}

static void path_of(const struct raftlog *log, const char *name,
                    char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s", log->dir, name);
}

static void seg_path(const struct raftlog *log, uint64_t first,
                     char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/" SEG_PREFIX "%020" PRIu64, log->dir, first);
}

/* "log-" and exactly 20 digits; index 0 is never a first index. */
static bool seg_name_parse(const char *name, uint64_t *first)
{
    size_t plen = strlen(SEG_PREFIX);
    if (strncmp(name, SEG_PREFIX, plen) || strlen(name) != plen + SEG_DIGITS)
        return false;
    uint64_t v = 0;
    for (const char *p = name + plen; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *first = v;
    return v != 0;
}

/* Appends the CRC32C of w->buf[at..len) to w: the closing field of every
 * header. */
static void put_crc_since(struct wire_writer *w, size_t at)
{
    if (!w->err)
        wire_put_u32(w, crc32c(0, w->buf + at, w->len - at));
}

/* True when the last 4 bytes of p[0..n) are the CRC32C of those before. */
static bool crc_ok(const uint8_t *p, size_t n)
{
    struct wire_reader r;
    wire_reader_init(&r, p + n - 4, 4);
    return crc32c(0, p, n - 4) == wire_get_u32(&r);
}

static void wbuf_reset(struct raftlog *log)
{
    log->wbuf.len = 0;
    log->wbuf.err = 0;
}

static struct seg *tail(struct raftlog *log)
{
    return &log->segs[log->nsegs - 1];
}

/* The segment holding index (first <= index, nsegs > 0). */
static size_t seg_find(const struct raftlog *log, uint64_t index)
{
    size_t lo = 0, hi = log->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (log->segs[mid].first <= index)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int segs_push(struct raftlog *log, const struct seg *s)
{
    if (log->nsegs == log->segs_cap) {
        size_t cap = log->segs_cap ? log->segs_cap * 2 : 8;
        struct seg *v = realloc(log->segs, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        log->segs = v;
        log->segs_cap = cap;
    }
    log->segs[log->nsegs++] = *s;
    return 0;
}

static void segs_remove_head(struct raftlog *log, size_t n)
{
    if (!n)
        return;     /* segs may be NULL */
    memmove(log->segs, log->segs + n, (log->nsegs - n) * sizeof(*log->segs));
    log->nsegs -= n;
}

static void close_fd(struct raftlog *log)
{
    if (log->fd >= 0)
        fsio_close(log->fs, log->fd);
    log->fd = -1;
}

/* ======================================================================== */
/* reading segments                                                         */
/* ======================================================================== */

/* A window over one file, in the log's scratch buffer. */
struct reader {
    struct raftlog *log;
    int fd;
    uint64_t size;      /* bytes of the file that count */
    uint64_t base;      /* rbuf holds file bytes [base, base + len) */
    size_t len;
};

static void reader_init(struct reader *r, struct raftlog *log, int fd,
                        uint64_t size)
{
    *r = (struct reader){ .log = log, .fd = fd, .size = size };
}

/*
 * Makes file bytes [off, off + n) available at *p (valid until the next
 * call).  Returns how many are (fewer than n only at r->size) or a negative
 * errno.
 */
static ssize_t rd_get(struct reader *r, uint64_t off, size_t n,
                      const uint8_t **p)
{
    if (off >= r->size)
        return 0;
    if (n > r->size - off)
        n = (size_t)(r->size - off);
    if (off >= r->base && off + n <= r->base + r->len) {
        *p = r->log->rbuf + (off - r->base);
        return (ssize_t)n;
    }
    size_t want = n > READ_WINDOW ? n : READ_WINDOW;
    if (want > r->size - off)
        want = (size_t)(r->size - off);
    if (want > r->log->rcap) {
        uint8_t *b = realloc(r->log->rbuf, want);
        if (!b)
            return -ENOMEM;
        r->log->rbuf = b;
        r->log->rcap = want;
    }
    r->len = 0;
    ssize_t got = fsio_pread(r->log->fs, r->fd, r->log->rbuf, want,
                             (off_t)off);
    if (got < 0)
        return got;
    r->base = off;
    r->len = (size_t)got;
    *p = r->log->rbuf;
    return (ssize_t)((size_t)got < n ? (size_t)got : n);
}

struct rec {
    uint64_t index, term, synced;
    uint32_t type, len;
    const uint8_t *data;    /* in the reader's window */
};

/* 1: a whole record with a good checksum at off; 0: anything else (short,
 * bad magic, length over the maximum, checksum); or a negative errno. */
static int rec_read(struct reader *r, uint64_t off, struct rec *out)
{
    const uint8_t *p;
    ssize_t n = rd_get(r, off, REC_HDR, &p);
    if (n < REC_HDR)
        return n < 0 ? (int)n : 0;
    struct wire_reader w;
    wire_reader_init(&w, p, REC_HDR);
    uint32_t magic = wire_get_u32(&w);
    out->len = wire_get_u32(&w);
    out->index = wire_get_u64(&w);
    out->term = wire_get_u64(&w);
    out->type = wire_get_u32(&w);
    out->synced = wire_get_u64(&w);
    uint32_t crc = wire_get_u32(&w);
    if (magic != REC_MAGIC || out->len > RAFTLOG_MAX_ENTRY)
        return 0;
    size_t whole = REC_HDR + (size_t)out->len;
    n = rd_get(r, off, whole, &p);
    if (n < (ssize_t)whole)
        return n < 0 ? (int)n : 0;
    if (crc32c(crc32c(0, p, REC_HDR - 4), p + REC_HDR, out->len) != crc)
        return 0;
    out->data = p + REC_HDR;
    return 1;
}

static struct raft_entry rec_entry(const struct rec *rc)
{
    return (struct raft_entry){
        .index = rc->index, .term = rc->term, .type = rc->type,
        .len = rc->len, .data = rc->len ? (void *)rc->data : NULL,
    };
}

/* Decodes a segment header: 0, or -DFS_ECORRUPT when it is not one. */
static int seg_hdr_decode(const uint8_t *p, size_t n, uint64_t *first,
                          uint64_t *prev_term)
{
    if (n < SEG_HDR || !crc_ok(p, SEG_HDR))
        return -DFS_ECORRUPT;
    struct wire_reader r;
    wire_reader_init(&r, p, SEG_HDR);
    uint32_t magic = wire_get_u32(&r);
    uint32_t version = wire_get_u32(&r);
    *first = wire_get_u64(&r);
    *prev_term = wire_get_u64(&r);
    if (magic != SEG_MAGIC || version != FORMAT_VERSION)
        return -DFS_ECORRUPT;
    return 0;
}

/* Called by seg_walk for each record; non-zero stops the walk. */
typedef int (*rec_fn)(const struct rec *rc, uint64_t off, void *arg);

/*
 * Calls fn for the records of segment i from the one with index `at`,
 * which starts at byte off, up to the segment's size.  A record that is
 * not the expected one is -DFS_ECORRUPT (logged with file and offset).
 */
static int seg_walk(struct raftlog *log, size_t i, uint64_t at, uint64_t off,
                    rec_fn fn, void *arg)
{
    const struct seg *s = &log->segs[i];
    char path[PATH_MAX];
    seg_path(log, s->first, path);
    bool is_tail = i == log->nsegs - 1;
    int fd = is_tail ? log->fd : fsio_open(log->fs, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    struct reader r;
    reader_init(&r, log, fd, s->size);
    int rc = 0;
    while (rc == 0 && off < s->size) {
        struct rec rec;
        rc = rec_read(&r, off, &rec);
        if (rc < 0)
            break;
        if (rc == 0 || rec.index != at) {
            log_error("raftlog: %s: bad record at offset %" PRIu64
                      " (expected index %" PRIu64 ")", path, off, at);
            rc = -DFS_ECORRUPT;
            break;
        }
        rc = fn(&rec, off, arg);
        off += REC_HDR + (uint64_t)rec.len;
        at++;
    }
    if (!is_tail)
        fsio_close(log->fs, fd);
    return rc;
}

/* Where to start walking segment i to reach index: the hint when it is in
 * that segment at or before index, else its first record. */
static void seg_seek(const struct raftlog *log, size_t i, uint64_t index,
                     uint64_t *at, uint64_t *off)
{
    const struct seg *s = &log->segs[i];
    const struct seek_hint *h = &log->hint;
    if (h->seg_first == s->first && h->index <= index && h->index <= s->last) {
        *at = h->index;
        *off = h->off;
        return;
    }
    *at = s->first;
    *off = SEG_HDR;
}

/* ======================================================================== */
/* writing segments                                                         */
/* ======================================================================== */

/* A failed fdatasync of the tail loses its unsynced writes for good
 * (fsyncgate): cut the file back to what is known durable, so that a
 * reopen without a power cut does not read them as if they were, and fail
 * the handle.  synced_size must not exceed the file's visible size. */
static int sync_failed(struct raftlog *log, int err)
{
    int rc = fsio_ftruncate(log->fs, log->fd, log->synced_size);
    if (rc == 0)
        rc = fsio_fdatasync(log->fs, log->fd);
    if (rc < 0)
        log_error("raftlog: %s: cannot cut the tail back after a failed "
                  "sync: %s", log->dir, dfs_strerror(rc));
    return set_failed(log, err);
}

/* Makes the tail segment's data and every name change durable. */
static int sync_tail(struct raftlog *log)
{
    if (log->nsegs && log->synced_size < tail(log)->size) {
        int rc = fsio_fdatasync(log->fs, log->fd);
        if (rc < 0)
            return sync_failed(log, rc);
        log->synced_size = tail(log)->size;
    }
    if (log->dir_dirty) {
        int rc = fsio_fsync_dir(log->fs, log->dir);
        if (rc < 0)
            return set_failed(log, rc);
        log->dir_dirty = false;
    }
    log->durable = log->last_index;
    return 0;
}

/* Opens the last segment for appending. */
static int tail_open(struct raftlog *log)
{
    char path[PATH_MAX];
    seg_path(log, tail(log)->first, path);
    int fd = fsio_open(log->fs, path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    log->fd = fd;
    return 0;
}

/* Creates segment log-<last + 1> as the new tail; the previous tail, if
 * any, must be durable already.  Its fd is closed only on success, so a
 * failure leaves the handle as it was. */
static int seg_create(struct raftlog *log)
{
    struct seg s = {
        .first = log->last_index + 1, .prev_term = log->last_term,
        .last = log->last_index, .size = SEG_HDR,
    };
    char path[PATH_MAX];
    seg_path(log, s.first, path);
    wbuf_reset(log);
    wire_put_u32(&log->wbuf, SEG_MAGIC);
    wire_put_u32(&log->wbuf, FORMAT_VERSION);
    wire_put_u64(&log->wbuf, s.first);
    wire_put_u64(&log->wbuf, s.prev_term);
    put_crc_since(&log->wbuf, 0);
    if (log->wbuf.err)
        return log->wbuf.err;
    int rc = segs_push(log, &s);
    if (rc < 0)
        return rc;
    int fd = fsio_open(log->fs, path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        rc = fd;
        goto err_pop;
    }
    log->dir_dirty = true;
    ssize_t n = fsio_pwrite(log->fs, fd, log->wbuf.buf, SEG_HDR, 0);
    if (n < 0) {
        rc = (int)n;
        goto err_unlink;
    }
    close_fd(log);
    log->fd = fd;
    log->synced_size = 0;
    return 0;

err_unlink:
    fsio_close(log->fs, fd);
    fsio_unlink(log->fs, path);
err_pop:
    log->nsegs--;
    return rc;
}

/* Invariant 2: the tail becomes durable (data and name) before the next
 * segment exists. */
static int seg_roll(struct raftlog *log)
{
    int rc = sync_tail(log);
    if (rc < 0)
        return rc;
    return seg_create(log);
}

/*
 * Removes segments from the tail until keep are left, each unlink made
 * durable before the next (invariant 3).  The new tail is durable whole
 * (invariant 2) and not open.  The caller sets last_index.
 */
static int segs_drop_tail(struct raftlog *log, size_t keep)
{
    char path[PATH_MAX];
    while (log->nsegs > keep) {
        close_fd(log);
        seg_path(log, tail(log)->first, path);
        int rc = fsio_unlink(log->fs, path);
        if (rc == 0 || rc == -ENOENT)
            rc = fsio_fsync_dir(log->fs, log->dir);
        if (rc < 0)
            return set_failed(log, rc);
        log->nsegs--;
        log->synced_size = log->nsegs ? tail(log)->size : 0;
    }
    log->hint.seg_first = 0;
    return 0;
}

static int check_batch(const struct raftlog *log,
                       const struct raft_entry *ents, size_t n)
{
    uint64_t term = log->last_term;
    for (size_t i = 0; i < n; i++) {
        const struct raft_entry *e = &ents[i];
        if (e->index != log->last_index + 1 + i || e->term < term ||
            e->term == 0 || (e->len && !e->data))
            return -EINVAL;
        if (e->len > RAFTLOG_MAX_ENTRY)
            return -DFS_ETOOBIG;
        term = e->term;
    }
    return 0;
}

/* Whether e goes into the tail segment: there is one, and it has room or
 * no record yet (an entry over segment_size gets a segment alone). */
static bool tail_takes(struct raftlog *log, uint64_t extra,
                       const struct raft_entry *e)
{
    if (!log->nsegs)
        return false;
    const struct seg *s = tail(log);
    uint64_t need = s->size + extra + REC_HDR + e->len;
    return need <= log->seg_max || (extra == 0 && s->last < s->first);
}

/* Encodes into wbuf the records of ents[0..n) that go into the tail (at
 * least one).  Returns how many, or a negative errno. */
static ssize_t batch_encode(struct raftlog *log, const struct raft_entry *ents,
                            size_t n)
{
    size_t k = 0;
    wbuf_reset(log);
    struct wire_writer *w = &log->wbuf;
    while (k < n && (k == 0 || tail_takes(log, w->len, &ents[k]))) {
        const struct raft_entry *e = &ents[k++];
        size_t at = w->len;
        wire_put_u32(w, REC_MAGIC);
        wire_put_u32(w, e->len);
        wire_put_u64(w, e->index);
        wire_put_u64(w, e->term);
        wire_put_u32(w, e->type);
        wire_put_u64(w, log->durable);
        if (w->err)
            return w->err;
        wire_put_u32(w, crc32c(crc32c(0, w->buf + at, REC_HDR - 4), e->data,
                               e->len));
        wire_put_raw(w, e->data, e->len);
    }
    return w->err ? w->err : (ssize_t)k;
}

/* Writes wbuf (the records of ents[0..k)) at the end of the tail.  A failed
 * write is cut back off, leaving the handle usable. */
static int batch_write(struct raftlog *log, const struct raft_entry *ents,
                       size_t k)
{
    struct seg *s = tail(log);
    ssize_t n = fsio_pwrite(log->fs, log->fd, log->wbuf.buf, log->wbuf.len,
                            (off_t)s->size);
    if (n < 0) {
        int rc = fsio_ftruncate(log->fs, log->fd, s->size);
        if (rc < 0)
            set_failed(log, rc);
        return (int)n;
    }
    s->size += log->wbuf.len;
    s->last = ents[k - 1].index;
    log->last_index = s->last;
    log->last_term = ents[k - 1].term;
    return 0;
}

int raftlog_append(struct raftlog *log, const struct raft_entry *entries,
                   size_t n)
{
    if (log->failed)
        return log->failed;
    int rc = check_batch(log, entries, n);
    if (rc < 0)
        return rc;
    size_t i = 0;
    while (i < n) {
        if (!tail_takes(log, 0, &entries[i])) {
            rc = seg_roll(log);
            if (rc < 0)
                return rc;
        }
        ssize_t k = batch_encode(log, entries + i, n - i);
        if (k < 0)
            return (int)k;
        rc = batch_write(log, entries + i, (size_t)k);
        if (rc < 0)
            return rc;
        i += (size_t)k;
    }
    return 0;
}

int raftlog_sync(struct raftlog *log)
{
    if (log->failed)
        return log->failed;
    return sync_tail(log);
}

/* seg_walk callback of tail_cut: finds the record just before `from`. */
struct cut_ctx {
    uint64_t before;    /* from - 1 */
    uint64_t end;       /* out: byte after it */
    uint64_t term;      /* out: its term */
};

static int cut_find(const struct rec *rc, uint64_t off, void *arg)
{
    struct cut_ctx *c = arg;
    if (rc->index < c->before)
        return 0;
    c->end = off + REC_HDR + rc->len;
    c->term = rc->term;
    return 1;
}

/* Cuts the tail segment just before entry from (first <= from <= last),
 * durably. */
static int tail_cut(struct raftlog *log, uint64_t from)
{
    struct seg *s = tail(log);
    struct cut_ctx c = { .before = from - 1, .end = SEG_HDR,
                         .term = s->prev_term };
    if (from > s->first) {
        uint64_t at, off;
        seg_seek(log, log->nsegs - 1, from - 1, &at, &off);
        int rc = seg_walk(log, log->nsegs - 1, at, off, cut_find, &c);
        if (rc <= 0)    /* 0: entry from - 1 not found, segs[] is wrong */
            return set_failed(log, rc < 0 ? rc : -DFS_ECORRUPT);
    }
    int rc = fsio_ftruncate(log->fs, log->fd, c.end);
    if (rc < 0)
        return set_failed(log, rc);
    rc = fsio_fdatasync(log->fs, log->fd);
    if (rc < 0) {
        if (log->synced_size > c.end)
            log->synced_size = c.end;
        return sync_failed(log, rc);
    }
    s->size = c.end;
    s->last = from - 1;
    log->synced_size = c.end;
    log->last_index = from - 1;
    log->last_term = c.term;
    if (log->durable > from - 1)
        log->durable = from - 1;
    log->hint.seg_first = 0;
    return 0;
}

int raftlog_truncate(struct raftlog *log, uint64_t from)
{
    if (log->failed)
        return log->failed;
    if (from == log->last_index + 1)
        return 0;
    if (from > log->last_index || from <= log->snap_index || !log->nsegs ||
        from < log->segs[0].first)
        return -EINVAL;
    size_t k = seg_find(log, from);
    int rc = segs_drop_tail(log, k + 1);
    if (rc == 0 && log->fd < 0)
        rc = tail_open(log);
    if (rc < 0)
        return set_failed(log, rc);
    return tail_cut(log, from);
}

int raftlog_compact(struct raftlog *log, uint64_t upto)
{
    if (log->failed)
        return log->failed;
    if (upto > log->snap_index)
        return -EINVAL;
    char path[PATH_MAX];
    size_t k = 0;
    int rc = 0;
    while (k + 1 < log->nsegs && log->segs[k].last <= upto) {
        seg_path(log, log->segs[k].first, path);
        rc = fsio_unlink(log->fs, path);
        if (rc < 0 && rc != -ENOENT)
            break;
        rc = 0;
        k++;
    }
    if (k) {
        segs_remove_head(log, k);
        log->dir_dirty = true;
        log->hint.seg_first = 0;
    }
    return rc;
}

/* ======================================================================== */
/* hard state and snapshot files                                            */
/* ======================================================================== */

int raftlog_hard_state_save(struct raftlog *log,
                            const struct raftlog_hard_state *hs)
{
    if (log->failed)
        return log->failed;
    wbuf_reset(log);
    wire_put_u32(&log->wbuf, HS_MAGIC);
    wire_put_u32(&log->wbuf, FORMAT_VERSION);
    wire_put_u64(&log->wbuf, hs->term);
    wire_put_u64(&log->wbuf, hs->vote);
    wire_put_u64(&log->wbuf, hs->commit);
    put_crc_since(&log->wbuf, 0);
    if (log->wbuf.err)
        return log->wbuf.err;
    return fsio_write_file_atomic(log->fs, log->dir, HS_NAME, log->wbuf.buf,
                                  log->wbuf.len);
}

/* Parses the hard state file's bytes. */
static int hs_decode(const uint8_t *p, size_t n, struct raftlog_hard_state *hs)
{
    if (n != HS_SIZE || !crc_ok(p, n))
        return -DFS_ECORRUPT;
    struct wire_reader r;
    wire_reader_init(&r, p, n);
    uint32_t magic = wire_get_u32(&r);
    uint32_t version = wire_get_u32(&r);
    hs->term = wire_get_u64(&r);
    hs->vote = wire_get_u64(&r);
    hs->commit = wire_get_u64(&r);
    if (magic != HS_MAGIC || version != FORMAT_VERSION)
        return -DFS_ECORRUPT;
    return 0;
}

/* The snapshot header fields besides the meta. */
struct snap_hdr {
    size_t hdr_len;
    uint64_t data_len;
    uint32_t data_crc;
};

/* Parses a snapshot header from p[0..n): 0, or -DFS_ECORRUPT. */
static int snap_hdr_decode(const uint8_t *p, size_t n,
                           struct raft_snapshot_meta *m, struct snap_hdr *h)
{
    struct wire_reader r;
    wire_reader_init(&r, p, n);
    uint32_t magic = wire_get_u32(&r);
    uint32_t version = wire_get_u32(&r);
    m->index = wire_get_u64(&r);
    m->term = wire_get_u64(&r);
    m->members.n = wire_get_u32(&r);
    if (r.err || magic != SNAP_MAGIC || version != FORMAT_VERSION ||
        m->members.n > RAFT_MAX_SERVERS)
        return -DFS_ECORRUPT;
    for (uint32_t i = 0; i < m->members.n; i++) {
        m->members.servers[i].id = wire_get_u64(&r);
        m->members.servers[i].role = wire_get_u32(&r);
    }
    h->data_len = wire_get_u64(&r);
    h->data_crc = wire_get_u32(&r);
    h->hdr_len = SNAP_FIXED + SNAP_SERVER * (size_t)m->members.n;
    wire_get_u32(&r);
    if (r.err || !crc_ok(p, h->hdr_len))
        return -DFS_ECORRUPT;
    return 0;
}

/* Writes the snapshot file (header + data) atomically and durably. */
static int snap_write(struct raftlog *log, const struct raft_snapshot_meta *m,
                      const void *data, size_t len)
{
    if (m->members.n > RAFT_MAX_SERVERS || m->index == 0 || (len && !data))
        return -EINVAL;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, SNAP_MAGIC);
    wire_put_u32(&w, FORMAT_VERSION);
    wire_put_u64(&w, m->index);
    wire_put_u64(&w, m->term);
    wire_put_u32(&w, m->members.n);
    for (uint32_t i = 0; i < m->members.n; i++) {
        wire_put_u64(&w, m->members.servers[i].id);
        wire_put_u32(&w, m->members.servers[i].role);
    }
    wire_put_u64(&w, len);
    wire_put_u32(&w, crc32c(0, data, len));
    put_crc_since(&w, 0);
    wire_put_raw(&w, data, len);
    int rc = w.err;
    if (rc == 0)
        rc = fsio_write_file_atomic(log->fs, log->dir, SNAP_NAME, w.buf, w.len);
    wire_writer_release(&w);
    return rc;
}

/*
 * Opens the snapshot file and reads its header, checking it and the file
 * size.  Returns an fd (the caller closes it), -ENOENT when there is none,
 * -DFS_ECORRUPT, or an I/O error.
 */
static int snap_open(struct raftlog *log, struct raft_snapshot_meta *m,
                     struct snap_hdr *h)
{
    char path[PATH_MAX];
    uint8_t buf[SNAP_HDR_MAX];
    uint64_t size;
    path_of(log, SNAP_NAME, path);
    int fd = fsio_open(log->fs, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    int rc = fsio_size(log->fs, fd, &size);
    ssize_t n = rc < 0 ? rc : fsio_pread(log->fs, fd, buf, sizeof(buf), 0);
    if (n < 0) {
        rc = (int)n;
        goto err_close;
    }
    rc = snap_hdr_decode(buf, (size_t)n, m, h);
    if (rc == 0 && size != h->hdr_len + h->data_len)
        rc = -DFS_ECORRUPT;
    if (rc < 0)
        goto err_close;
    return fd;

err_close:
    fsio_close(log->fs, fd);
    return rc;
}

int raftlog_snapshot_load(struct raftlog *log, struct raft_snapshot_meta *meta,
                          void **data, size_t *len)
{
    struct raft_snapshot_meta m;
    struct snap_hdr h;
    int fd = snap_open(log, &m, &h);
    if (fd < 0)
        return fd;
    int rc = 0;
    uint8_t *buf = NULL;
    if (h.data_len > SIZE_MAX - 1) {
        rc = -EFBIG;
        goto out_close;
    }
    buf = h.data_len ? malloc((size_t)h.data_len) : NULL;
    if (h.data_len && !buf) {
        rc = -ENOMEM;
        goto out_close;
    }
    ssize_t n = fsio_pread(log->fs, fd, buf, (size_t)h.data_len,
                           (off_t)h.hdr_len);
    if (n < 0)
        rc = (int)n;
    else if ((uint64_t)n != h.data_len ||
             crc32c(0, buf, (size_t)h.data_len) != h.data_crc)
        rc = -DFS_ECORRUPT;
    if (rc < 0) {
        free(buf);
        buf = NULL;
        if (rc == -DFS_ECORRUPT)
            log_error("raftlog: %s/" SNAP_NAME ": data fails its checksum",
                      log->dir);
        goto out_close;
    }
    if (meta)
        *meta = m;
    *data = buf;
    *len = (size_t)h.data_len;

out_close:
    fsio_close(log->fs, fd);
    return rc;
}

int raftlog_snapshot_save(struct raftlog *log,
                          const struct raft_snapshot_meta *meta,
                          const void *data, size_t len)
{
    if (log->failed)
        return log->failed;
    if (meta->index <= log->snap_index)
        return -ESTALE;
    if (meta->index > log->last_index)
        return -EINVAL;
    int rc = snap_write(log, meta, data, len);
    if (rc < 0)
        return rc;
    log->snap_index = meta->index;
    log->snap_term = meta->term;
    return 0;
}

int raftlog_snapshot_install(struct raftlog *log,
                             const struct raft_snapshot_meta *meta,
                             const void *data, size_t len)
{
    if (log->failed)
        return log->failed;
    if (meta->index <= log->snap_index)
        return -ESTALE;
    int rc = snap_write(log, meta, data, len);
    if (rc < 0)
        return rc;
    log->snap_index = meta->index;
    log->snap_term = meta->term;
    rc = segs_drop_tail(log, 0);
    if (rc < 0)
        return rc;
    log->last_index = log->durable = meta->index;
    log->last_term = meta->term;
    return 0;
}

/* ======================================================================== */
/* reading entries back                                                     */
/* ======================================================================== */

struct read_ctx {
    struct raftlog *log;
    uint64_t from, to;
    uint64_t seg_first;
    raftlog_entry_fn fn;
    void *arg;
    int rc;             /* what fn returned, when non-zero */
    bool done;
};

static int read_one(const struct rec *rc, uint64_t off, void *arg)
{
    struct read_ctx *c = arg;
    if (rc->index < c->from)
        return 0;
    struct raft_entry e = rec_entry(rc);
    c->rc = c->fn(&e, c->arg);
    c->log->hint = (struct seek_hint){
        .seg_first = c->seg_first, .index = rc->index + 1,
        .off = off + REC_HDR + rc->len,
    };
    c->done = c->rc != 0 || rc->index == c->to;
    return c->done;
}

int raftlog_read(struct raftlog *log, uint64_t from, uint64_t to,
                 raftlog_entry_fn fn, void *arg)
{
    if (log->failed)
        return log->failed;
    if (from > to || to > log->last_index)
        return -EINVAL;
    if (!log->nsegs || from < log->segs[0].first)
        return -ENOENT;
    struct read_ctx c = { .log = log, .from = from, .to = to, .fn = fn,
                          .arg = arg };
    int rc = 0;
    for (size_t i = seg_find(log, from); !c.done && rc == 0 &&
         i < log->nsegs; i++) {
        uint64_t at, off;
        seg_seek(log, i, from, &at, &off);
        c.seg_first = log->segs[i].first;
        rc = seg_walk(log, i, at, off, read_one, &c);
    }
    return rc < 0 ? rc : c.rc;
}

/* ======================================================================== */
/* recovery                                                                 */
/* ======================================================================== */

/* Does the log hold the snapshot's own (index, term)?  Entries after the
 * snapshot are kept only if so (Raft's InstallSnapshot rule). */
enum base_match { BASE_UNKNOWN, BASE_MATCH, BASE_MISMATCH };

struct scan {
    struct raftlog *log;
    struct raftlog_recovery *rec;
    raftlog_entry_fn fn;
    void *arg;
    size_t start;           /* segments before it are behind the snapshot */
    uint64_t next;          /* index the next record must have */
    uint64_t prev_term;     /* term of entry next - 1 */
    enum base_match base;
    bool torn_header;       /* the last segment's header is torn: drop it */
    bool torn;              /* the last segment is cut at torn_off */
    uint64_t torn_off;
};

/* Formats rec->error, logs it, returns err. */
__attribute__((format(printf, 3, 4)))
static int rec_fail(struct raftlog_recovery *rec, int err, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec->error, sizeof(rec->error), fmt, ap);
    va_end(ap);
    log_error("raftlog: %s", rec->error);
    return err;
}

/* fsio_list_dir callback: segments into segs[], temp files removed. */
static int recover_name(const char *name, void *arg)
{
    struct raftlog *log = arg;
    char path[PATH_MAX];
    uint64_t first;
    if (!strcmp(name, "." HS_NAME ".tmp") ||
        !strcmp(name, "." SNAP_NAME ".tmp")) {
        path_of(log, name, path);
        int rc = fsio_unlink(log->fs, path);
        log->dir_dirty = true;
        return rc == -ENOENT ? 0 : rc;
    }
    if (!seg_name_parse(name, &first))
        return 0;
    struct seg s = { .first = first, .last = first - 1 };
    return segs_push(log, &s);
}

static int recover_hard_state(struct raftlog *log,
                              struct raftlog_recovery *rec)
{
    char path[PATH_MAX];
    void *buf;
    size_t len;
    path_of(log, HS_NAME, path);
    int rc = fsio_read_file(log->fs, path, HS_SIZE, &buf, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc == -EFBIG)
        return rec_fail(rec, -DFS_ECORRUPT, "%s: too long", path);
    if (rc < 0)
        return rec_fail(rec, rc, "%s: %s", path, dfs_strerror(rc));
    rc = hs_decode(buf, len, &rec->hs);
    free(buf);
    if (rc < 0)
        return rec_fail(rec, rc, "%s: bad hard state (checksum or format)",
                        path);
    return 0;
}

static int recover_snapshot(struct raftlog *log, struct raftlog_recovery *rec)
{
    struct snap_hdr h;
    int fd = snap_open(log, &rec->snap, &h);
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return rec_fail(rec, fd, "%s/" SNAP_NAME ": %s", log->dir,
                        fd == -DFS_ECORRUPT ? "bad snapshot header"
                                            : dfs_strerror(fd));
    fsio_close(log->fs, fd);
    rec->has_snapshot = true;
    log->snap_index = rec->snap.index;
    log->snap_term = rec->snap.term;
    return 0;
}

/*
 * A record (or header) at bad_off of the last segment is bad; it stands
 * for entry e.  Looks past it for a valid record written after e was
 * durable (invariant 4): found, it is corruption; else a torn tail (0).
 */
static int vouch_scan(struct scan *sc, struct reader *r, const char *path,
                      uint64_t bad_off, uint64_t e)
{
    static const uint8_t magic[4] = { 'D', 'F', 'R', 'E' };
    uint64_t off = bad_off + 1;
    for (;;) {
        const uint8_t *p;
        ssize_t n = rd_get(r, off, READ_WINDOW, &p);
        if (n < 0)
            return (int)n;
        if (n < (ssize_t)sizeof(magic))
            return 0;
        const uint8_t *q = memmem(p, (size_t)n, magic, sizeof(magic));
        if (!q) {
            off += (uint64_t)n - (sizeof(magic) - 1);
            continue;
        }
        uint64_t cand = off + (uint64_t)(q - p);
        struct rec rec;
        int rc = rec_read(r, cand, &rec);
        if (rc < 0)
            return rc;
        if (rc == 1 && rec.synced >= e && rec.synced < rec.index)
            return rec_fail(sc->rec, -DFS_ECORRUPT,
                            "%s: bad record at offset %" PRIu64
                            " (index %" PRIu64 "), but the record at offset %"
                            PRIu64 " (index %" PRIu64 ") was written after it "
                            "was durable", path, bad_off, e, cand, rec.index);
        off = cand + 1;
    }
}

/* Checks where the first scanned segment starts against the snapshot:
 * 1, or -DFS_ECORRUPT. */
static int scan_first_header(struct scan *sc, const char *path,
                             uint64_t first, uint64_t prev_term)
{
    const struct raftlog *log = sc->log;
    uint64_t s = log->snap_index;
    if ((s == 0 && first != 1) || first > s + 1)
        return rec_fail(sc->rec, -DFS_ECORRUPT,
                        "%s: the log starts at index %" PRIu64 " but the "
                        "snapshot ends at %" PRIu64 ": entries missing",
                        path, first, s);
    sc->next = first;
    sc->prev_term = prev_term;
    if (s == 0)
        sc->base = BASE_MATCH;
    else if (first == s + 1)
        sc->base = prev_term == log->snap_term ? BASE_MATCH : BASE_MISMATCH;
    return 1;
}

/* Reads and checks segment i's header.  1: good; 0: torn (last segment,
 * nothing proves it durable); or a negative error. */
static int scan_header(struct scan *sc, size_t i, struct reader *r,
                       const char *path)
{
    struct seg *s = &sc->log->segs[i];
    bool is_last = i == sc->log->nsegs - 1;
    const uint8_t *p;
    uint64_t first, prev_term;
    ssize_t n = rd_get(r, 0, SEG_HDR, &p);
    if (n < 0)
        return (int)n;
    if (seg_hdr_decode(p, (size_t)n, &first, &prev_term) < 0) {
        if (!is_last)
            return rec_fail(sc->rec, -DFS_ECORRUPT,
                            "%s: bad segment header at offset 0", path);
        int rc = vouch_scan(sc, r, path, 0, s->first);
        return rc < 0 ? rc : 0;
    }
    if (first != s->first)
        return rec_fail(sc->rec, -DFS_ECORRUPT, "%s: header at offset 0 "
                        "says first index %" PRIu64, path, first);
    s->prev_term = prev_term;
    if (i == sc->start)
        return scan_first_header(sc, path, first, prev_term);
    if (first != sc->next || prev_term != sc->prev_term)
        return rec_fail(sc->rec, -DFS_ECORRUPT, "%s: index gap: the log "
                        "before it ends at %" PRIu64 " (term %" PRIu64 ")",
                        path, sc->next - 1, sc->prev_term);
    return 1;
}

/* A good record at the expected place: decide the snapshot match at its
 * index, deliver it when it is after the snapshot. */
static int scan_accept(struct scan *sc, const struct rec *rc)
{
    const struct raftlog *log = sc->log;
    if (rc->index == log->snap_index)
        sc->base = rc->term == log->snap_term ? BASE_MATCH : BASE_MISMATCH;
    sc->next++;
    sc->prev_term = rc->term;
    if (rc->index <= log->snap_index || !sc->fn)
        return 0;
    struct raft_entry e = rec_entry(rc);
    return sc->fn(&e, sc->arg);
}

/*
 * Scans the records of segment i, checking each, delivering the entries
 * after the snapshot.  Sets segs[i].last and size.  A bad record ends the
 * last segment as a torn tail unless proven durable (vouch_scan).
 */
static int scan_records(struct scan *sc, size_t i, struct reader *r,
                        const char *path)
{
    struct seg *s = &sc->log->segs[i];
    bool is_last = i == sc->log->nsegs - 1;
    uint64_t off = SEG_HDR;
    int rc = 0;
    while (off < r->size && sc->base != BASE_MISMATCH) {
        struct rec rec;
        rc = rec_read(r, off, &rec);
        if (rc < 0)
            return rc;
        if (rc == 0 && !is_last)
            return rec_fail(sc->rec, -DFS_ECORRUPT, "%s: bad record at "
                            "offset %" PRIu64 " (index %" PRIu64 ")", path,
                            off, sc->next);
        if (rc == 0) {
            rc = vouch_scan(sc, r, path, off, sc->next);
            if (rc < 0)
                return rc;
            sc->torn = true;
            sc->torn_off = off;
            break;
        }
        if (rec.index != sc->next || rec.term < sc->prev_term)
            return rec_fail(sc->rec, -DFS_ECORRUPT, "%s: record at offset %"
                            PRIu64 " has index %" PRIu64 " term %" PRIu64
                            ", expected index %" PRIu64 " term >= %" PRIu64,
                            path, off, rec.index, rec.term, sc->next,
                            sc->prev_term);
        rc = scan_accept(sc, &rec);
        if (rc)
            return rc;
        off += REC_HDR + (uint64_t)rec.len;
    }
    s->last = sc->next - 1;
    s->size = off;
    if (sc->torn)
        sc->rec->torn_bytes = r->size - off;
    return 0;
}

static int scan_segment(struct scan *sc, size_t i)
{
    struct raftlog *log = sc->log;
    char path[PATH_MAX];
    uint64_t size;
    seg_path(log, log->segs[i].first, path);
    int fd = fsio_open(log->fs, path, O_RDONLY, 0);
    if (fd < 0)
        return rec_fail(sc->rec, fd, "%s: %s", path, dfs_strerror(fd));
    int rc = fsio_size(log->fs, fd, &size);
    if (rc < 0)
        goto out_close;
    struct reader r;
    reader_init(&r, log, fd, size);
    rc = scan_header(sc, i, &r, path);
    if (rc == 0) {
        sc->torn_header = true;
        sc->rec->torn_bytes = size;
    } else if (rc > 0) {
        rc = scan_records(sc, i, &r, path);
    }

out_close:
    fsio_close(log->fs, fd);
    if (rc < 0 && !sc->rec->error[0])
        rec_fail(sc->rec, rc, "%s: %s", path, dfs_strerror(rc));
    return rc;
}

/* Phase 2 of recovery: removes what the scan found stale or torn, makes
 * the tail what it says, and durable. */
static int recover_apply(struct scan *sc)
{
    struct raftlog *log = sc->log;
    char path[PATH_MAX];
    for (size_t i = 0; i < sc->start; i++) {
        seg_path(log, log->segs[i].first, path);
        int rc = fsio_unlink(log->fs, path);
        if (rc < 0 && rc != -ENOENT)
            return rec_fail(sc->rec, rc, "%s: %s", path, dfs_strerror(rc));
        log->dir_dirty = true;
    }
    segs_remove_head(log, sc->start);
    size_t keep = sc->base != BASE_MATCH ? 0 :
                  log->nsegs - (sc->torn_header ? 1 : 0);
    int rc = segs_drop_tail(log, keep);
    if (rc == 0 && log->nsegs)
        rc = tail_open(log);
    if (rc == 0 && sc->torn && log->nsegs)
        rc = fsio_ftruncate(log->fs, log->fd, sc->torn_off);
    /* What a killed process left in the page cache is not yet durable. */
    if (rc == 0 && log->nsegs)
        rc = fsio_fdatasync(log->fs, log->fd);
    if (rc < 0)
        return rec_fail(sc->rec, rc, "%s: recovery: %s", log->dir,
                        dfs_strerror(rc));
    return 0;
}

static int recover_log(struct raftlog *log, raftlog_entry_fn fn, void *arg,
                       struct raftlog_recovery *rec)
{
    struct scan sc = { .log = log, .rec = rec, .fn = fn, .arg = arg };
    while (sc.start + 1 < log->nsegs &&
           log->segs[sc.start + 1].first <= log->snap_index + 1)
        sc.start++;
    for (size_t i = sc.start; i < log->nsegs; i++) {
        int rc = scan_segment(&sc, i);
        if (rc)
            return rc;
        if (sc.base == BASE_MISMATCH || sc.torn_header)
            break;
    }
    if (sc.base == BASE_MISMATCH)
        log_warn("raftlog: %s: the log does not hold the snapshot's "
                 "(%" PRIu64 ", %" PRIu64 "): dropping it", log->dir,
                 log->snap_index, log->snap_term);
    int rc = recover_apply(&sc);
    if (rc < 0)
        return rc;
    log->last_index = log->snap_index;
    log->last_term = log->snap_term;
    if (log->nsegs) {
        log->last_index = tail(log)->last;
        log->last_term = sc.prev_term;
        log->synced_size = tail(log)->size;
    }
    log->durable = log->last_index;
    if (sc.torn || sc.torn_header)
        log_warn("raftlog: %s: torn tail (an append cut by a crash): %"
                 PRIu64 " bytes dropped after index %" PRIu64, log->dir,
                 rec->torn_bytes, log->last_index);
    return 0;
}

static int log_new(struct fsio *fs, const char *dir,
                   const struct raftlog_options *opt, struct raftlog **out)
{
    uint64_t seg_max = opt && opt->segment_size ? opt->segment_size :
                       RAFTLOG_DEFAULT_SEGMENT_SIZE;
    if (seg_max < SEG_MIN)
        return -EINVAL;
    if (strlen(dir) + 1 + strlen(SEG_PREFIX) + SEG_DIGITS + 8 >= PATH_MAX)
        return -ENAMETOOLONG;
    struct raftlog *log = calloc(1, sizeof(*log));
    if (!log)
        return -ENOMEM;
    log->dir = strdup(dir);
    if (!log->dir) {
        free(log);
        return -ENOMEM;
    }
    log->fs = fs;
    log->seg_max = seg_max;
    log->fd = -1;
    wire_writer_init(&log->wbuf);
    *out = log;
    return 0;
}

int raftlog_open(struct fsio *fs, const char *dir,
                 const struct raftlog_options *opt, raftlog_entry_fn fn,
                 void *arg, struct raftlog_recovery *rec,
                 struct raftlog **out)
{
    struct raftlog_recovery scratch;
    if (!rec)
        rec = &scratch;
    memset(rec, 0, sizeof(*rec));
    *out = NULL;
    struct raftlog *log;
    int rc = log_new(fs, dir, opt, &log);
    if (rc < 0)
        return rec_fail(rec, rc, "%s: %s", dir, dfs_strerror(rc));
    rc = fsio_list_dir(fs, dir, recover_name, log);
    if (rc < 0)
        rec_fail(rec, rc, "%s: listing: %s", dir, dfs_strerror(rc));
    if (rc == 0)
        rc = recover_hard_state(log, rec);
    if (rc == 0)
        rc = recover_snapshot(log, rec);
    if (rc == 0)
        rc = recover_log(log, fn, arg, rec);
    if (rc == 0 && (rc = fsio_fsync_dir(fs, dir)) < 0)
        rec_fail(rec, rc, "%s: sync: %s", dir, dfs_strerror(rc));
    if (rc) {
        raftlog_close(log);
        return rc;
    }
    log->dir_dirty = false;
    rec->first_index = log->snap_index + 1;
    rec->last_index = log->last_index;
    *out = log;
    return 0;
}

void raftlog_close(struct raftlog *log)
{
    if (!log)
        return;
    close_fd(log);
    free(log->segs);
    free(log->dir);
    free(log->rbuf);
    wire_writer_release(&log->wbuf);
    free(log);
}

/* ======================================================================== */
/* getters                                                                  */
/* ======================================================================== */

uint64_t raftlog_first_index(const struct raftlog *log)
{
    return log->nsegs ? log->segs[0].first : log->last_index + 1;
}

uint64_t raftlog_last_index(const struct raftlog *log)
{
    return log->last_index;
}

uint64_t raftlog_last_term(const struct raftlog *log)
{
    return log->last_term;
}

uint64_t raftlog_durable_index(const struct raftlog *log)
{
    return log->durable;
}

uint64_t raftlog_snapshot_index(const struct raftlog *log)
{
    return log->snap_index;
}

int raftlog_failed(const struct raftlog *log)
{
    return log->failed;
}
