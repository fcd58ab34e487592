/*
 * csrepl: one re-replication (csrepl.h).
 *
 * States of a struct csrepl, each step a disk job or a CS_COPY call:
 *   PREPARE  (disk) keep a complete replica, else delete what is there and
 *            create the chunk empty at the version
 *   FETCH    CS_COPY of the next piece from sources[cur]; an error moves
 *            on to the next source, at the same offset
 *   STORE    (disk) vols_write of the verified piece, then FETCH again
 *            after the pace delay, or SYNC after the last piece
 *   SYNC     (disk) vols_sync, then done(0, length)
 *   ABORT    (disk) delete the partial replica, then done(error)
 *
 * Invariants:
 *  1. Only pieces whose every block CRC matches reach the store (and the
 *     store checks them again).
 *  2. Offset off grows by whole pieces; after n ms the copy has asked for
 *     at most replicate_rate * n / 1000 bytes past the first piece.
 *  3. d->ncopies counts copies not yet done, so the server drains them.
 */
#include "csrepl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chunkserver/csd.h"
#include "chunkserver/csio.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/tpool.h"
#include "common/wire.h"

#define CSREPL_BLOCKS_MAX (PROTO_DATA_MAX / PROTO_BLOCK_SIZE + 1)

struct csrepl {
    struct csd *d;
    uint64_t id;
    uint32_t version, length;
    char **src;                  /* owned copies */
    size_t nsrc, cur;
    uint64_t off;                /* bytes stored so far */
    bool last;                   /* the piece in buf ends the chunk */
    bool have;                   /* PREPARE found it complete */
    uint8_t *buf;                /* the piece's payload, owned */
    size_t buf_len;
    struct wire_blocks blk;      /* borrows from buf */
    uint32_t crcs[CSREPL_BLOCKS_MAX];
    uint64_t start_ms;
    int status;                  /* ABORT's error */
    csrepl_done_fn done;
    void *arg;
};

static void csrepl_fetch(struct csrepl *r);

static void csrepl_free(struct csrepl *r)
{
    for (size_t i = 0; i < r->nsrc; i++)
        free(r->src[i]);
    free(r->src);
    free(r->buf);
    free(r);
}

static void csrepl_finish(struct csrepl *r, int status)
{
    struct csd *d = r->d;
    d->ncopies--;
    if (status == 0)
        atomic_fetch_add(&d->stats.replicated, 1);
    else
        log_warn("repl: chunk %016llx v%u: %s", (unsigned long long)r->id,
                 r->version, dfs_strerror(status));
    r->done(r->arg, status, (uint32_t)r->off);
    csrepl_free(r);
}

static void csrepl_submit(struct csrepl *r, tpool_work_fn work,
                          tpool_done_fn done)
{
    int rc = tpool_submit_keyed(r->d->disk, r->id, work, done, r);
    if (rc < 0)
        csrepl_finish(r, rc);   /* nothing of ours is on disk in flight */
}

/* ---- ABORT and SYNC ---------------------------------------------------- */

static int csrepl_abort_work(void *arg)
{
    struct csrepl *r = arg;
    return vols_delete(r->d->vols, r->id);
}

static void csrepl_abort_done(void *arg, int status)
{
    (void)status;
    struct csrepl *r = arg;
    csrepl_finish(r, r->status);
}

static void csrepl_abort(struct csrepl *r, int status)
{
    r->status = status;
    csrepl_submit(r, csrepl_abort_work, csrepl_abort_done);
}

static int csrepl_sync_work(void *arg)
{
    struct csrepl *r = arg;
    return vols_sync(r->d->vols, r->id);
}

static void csrepl_sync_done(void *arg, int status)
{
    struct csrepl *r = arg;
    if (status < 0)
        csrepl_abort(r, status);
    else
        csrepl_finish(r, 0);
}

/* ---- STORE ------------------------------------------------------------- */

static int csrepl_store_work(void *arg)
{
    struct csrepl *r = arg;
    return vols_write(r->d->vols, r->id, r->version, r->blk.offset,
                      r->blk.data, r->blk.length, r->crcs, 0);
}

static int64_t csrepl_pace(struct ev_loop *loop, void *arg)
{
    (void)loop;
    csrepl_fetch(arg);
    return EV_TIMER_STOP;
}

static void csrepl_store_done(void *arg, int status)
{
    struct csrepl *r = arg;
    free(r->buf);
    r->buf = NULL;
    if (status < 0) {
        csrepl_abort(r, status);
        return;
    }
    r->off += r->blk.length;
    if (r->last) {
        csrepl_submit(r, csrepl_sync_work, csrepl_sync_done);
        return;
    }
    uint64_t due = r->start_ms + r->off * 1000 / r->d->conf->replicate_rate;
    uint64_t now = ev_now_ms(r->d->loop);
    if (!ev_timer_add(r->d->loop, due > now ? due - now : 0, csrepl_pace, r))
        csrepl_abort(r, -ENOMEM);
}

/* ---- FETCH ------------------------------------------------------------- */

/* Checks a CS_COPY reply against what was asked; 0 or why it is unusable. */
static int csrepl_check_piece(struct csrepl *r, uint32_t want)
{
    struct wire_reader rd;
    wire_reader_init(&rd, r->buf, r->buf_len);
    uint32_t chunk_len = wire_get_u32(&rd);
    wire_get_blocks(&rd, &r->blk, PROTO_DATA_MAX);
    int rc = wire_reader_finish(&rd);
    if (rc < 0)
        return rc;
    if (r->blk.offset != r->off || r->blk.length > want)
        return -EPROTO;
    uint32_t bad;
    rc = wire_verify_blocks(&r->blk, &bad);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < r->blk.nblocks; i++)
        r->crcs[i] = wire_blocks_crc(&r->blk, i);
    r->last = r->blk.length < want || r->off + r->blk.length >= chunk_len ||
              r->off + r->blk.length >= r->length;
    return 0;
}

static void csrepl_next_source(struct csrepl *r, int why)
{
    log_info("repl: chunk %016llx from %s: %s", (unsigned long long)r->id,
             r->src[r->cur], dfs_strerror(why));
    free(r->buf);
    r->buf = NULL;
    if (++r->cur == r->nsrc) {
        csrepl_abort(r, why);
        return;
    }
    csrepl_fetch(r);
}

static uint32_t csrepl_want(const struct csrepl *r)
{
    uint64_t left = r->length - r->off;
    return left < PROTO_DATA_MAX ? (uint32_t)left : PROTO_DATA_MAX;
}

static void csrepl_fetch_reply(void *arg, int status, const uint8_t *payload,
                               size_t len)
{
    struct csrepl *r = arg;
    if (status < 0) {
        csrepl_next_source(r, status);
        return;
    }
    r->buf = malloc(len ? len : 1);
    if (!r->buf) {
        csrepl_abort(r, -ENOMEM);
        return;
    }
    memcpy(r->buf, payload, len);
    r->buf_len = len;
    int rc = csrepl_check_piece(r, csrepl_want(r));
    if (rc < 0) {
        csrepl_next_source(r, rc);
        return;
    }
    csrepl_submit(r, csrepl_store_work, csrepl_store_done);
}

static void csrepl_fetch(struct csrepl *r)
{
    struct csd *d = r->d;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u64(&w, r->id);
    wire_put_u32(&w, r->version);
    wire_put_u64(&w, r->off);
    wire_put_u32(&w, csrepl_want(r));
    struct rpc_conn *peer;
    int rc = w.err;
    if (rc == 0)
        rc = csio_peer_get(d, r->src[r->cur], &peer);
    if (rc == 0)
        rc = rpc_call(peer, PROTO_CS_COPY, w.buf, w.len,
                      (uint32_t)d->conf->write_timeout_ms, csrepl_fetch_reply,
                      r);
    wire_writer_release(&w);
    if (rc < 0)
        csrepl_next_source(r, rc);
}

/* ---- PREPARE ----------------------------------------------------------- */

static int csrepl_prepare_work(void *arg)
{
    struct csrepl *r = arg;
    struct vols *s = r->d->vols;
    uint32_t version;
    uint64_t length;
    int rc = vols_stat(s, r->id, &version, &length);
    if (rc == 0 && version == r->version && length == r->length &&
        vols_verify(s, r->id, r->version) == 0) {
        r->have = true;
        return 0;
    }
    if (rc != -ENOENT) {
        rc = vols_delete(s, r->id);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    return vols_create(s, r->id, r->version);
}

static void csrepl_prepare_done(void *arg, int status)
{
    struct csrepl *r = arg;
    if (status < 0) {
        csrepl_finish(r, status);
        return;
    }
    if (r->have) {
        r->off = r->length;
        csrepl_finish(r, 0);
        return;
    }
    r->start_ms = ev_now_ms(r->d->loop);
    if (r->length == 0)
        csrepl_submit(r, csrepl_sync_work, csrepl_sync_done);
    else
        csrepl_fetch(r);
}

int csrepl_start(struct csd *d, uint64_t id, uint32_t version,
                 uint32_t length, char *const *sources, size_t n,
                 csrepl_done_fn done, void *arg)
{
    if (n == 0 || version == 0)
        return -EINVAL;
    struct csrepl *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->d = d;
    r->id = id;
    r->version = version;
    r->length = length;
    r->done = done;
    r->arg = arg;
    r->src = calloc(n, sizeof(*r->src));
    if (!r->src)
        goto err_free_repl;
    for (r->nsrc = 0; r->nsrc < n; r->nsrc++) {
        r->src[r->nsrc] = strdup(sources[r->nsrc]);
        if (!r->src[r->nsrc])
            goto err_free_repl;
    }
    int rc = tpool_submit_keyed(d->disk, id, csrepl_prepare_work,
                                csrepl_prepare_done, r);
    if (rc < 0) {
        csrepl_free(r);
        return rc;
    }
    d->ncopies++;
    return 0;

err_free_repl:
    csrepl_free(r);
    return -ENOMEM;
}
