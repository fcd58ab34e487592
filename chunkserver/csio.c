/*
 * csio: client and peer requests of the chunkserver (csio.h).
 *
 * Owns one struct csio_client per accepted connection, one struct
 * csio_peer per downstream address, and the records of requests in flight
 * (struct csio_write, struct csio_read).  A request's disk work runs on
 * d->disk keyed by chunk id; its answer is sent from the done callback.
 *
 * Invariants:
 *  1. A client struct lives while its connection is open or any of its
 *     requests is in flight (cl->refs); a request is answered only while
 *     the connection is open (cl->rc != NULL), at most once.
 *  2. A CS_WRITE is answered only once both its local write and its
 *     downstream call have finished.  The status is the local failure if
 *     any, else the downstream one, and the reply names the node that had
 *     it.
 *  3. Nothing of a CS_WRITE whose blocks fail their CRC is forwarded or
 *     written.
 *  4. Disk jobs are keyed by chunk id, so the requests for one chunk run in
 *     the order they arrived.
 *  5. A client's reading is paused while its requests in flight hold more
 *     than conf->conn_buffer bytes or while its reply queue is over net's
 *     high mark (checked again every CSIO_POLL_MS, since rpc does not pass
 *     net's drain event on), and resumed once both have fallen.
 */
#include "csio.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkserver/csd.h"
#include "chunkserver/cslocal.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/log.h"
#include "common/net.h"
#include "common/rpc.h"
#include "common/tpool.h"
#include "common/wire.h"

/* A CS_WRITE: fixed fields, a CHAIN of up to CSIO_CHAIN_MAX nodes, DATA. */
#define CSIO_MAX_PAYLOAD \
    (PROTO_DATA_MAX + 64u * 1024u + CSIO_CHAIN_MAX * (PROTO_ADDR_MAX + 8u))
#define CSIO_BLOCKS_MAX (PROTO_DATA_MAX / PROTO_BLOCK_SIZE + 1)
/* chunk_id u64, version u32, prev_version u32, flags u8 */
#define CSIO_WRITE_FIXED 17
#define CSIO_POLL_MS 5

struct csio_client {
    struct csd *d;
    struct rpc_conn *rc;                 /* NULL once closed */
    struct csio_client *prev, *next;     /* in d->clients while rc is set */
    unsigned refs;                       /* open conn + requests in flight */
    uint64_t held;                       /* request bytes in flight */
    bool paused;
    uint64_t poll_timer;                 /* 0: not armed */
};

struct csio_peer {
    struct csd *d;
    struct csio_peer *next;              /* in d->peers */
    struct rpc_conn *rc;
    char addr[PROTO_ADDR_MAX + 1];
};

struct csio_write {
    struct csio_client *cl;              /* holds a ref */
    struct wire_frame req;               /* header only, for the reply */
    uint8_t *buf;                        /* the payload, owned */
    size_t len;
    uint64_t chunk;
    uint32_t version, prev_version;
    uint8_t flags;
    struct wire_blocks blk;              /* borrows from buf */
    uint32_t crcs[CSIO_BLOCKS_MAX];
    bool forward;                        /* the chain goes on */
    uint32_t next_cs;
    char next_addr[PROTO_ADDR_MAX + 1];
    size_t fwd_at;                       /* forwarded payload: buf[fwd_at..] */
    unsigned parts;                      /* local and downstream unfinished */
    int local_status;
    int down_status;
    uint32_t down_cs;                    /* the node the downstream blamed */
    char down_addr[PROTO_ADDR_MAX + 1];
};

struct csio_read {
    struct csio_client *cl;              /* holds a ref */
    struct wire_frame req;               /* header only */
    uint64_t chunk;
    uint32_t version;
    uint64_t offset;
    uint32_t length;
    uint32_t served;                     /* data bytes in the reply */
    struct wire_writer out;              /* the reply frame, from read_work */
};

/* ---- clients: life and flow control ------------------------------------ */

static void client_unref(struct csio_client *cl)
{
    if (--cl->refs)
        return;
    cl->d->nclients--;
    free(cl);
}

static void client_flow(struct csio_client *cl);

static int64_t client_poll(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct csio_client *cl = arg;
    cl->poll_timer = 0;
    client_flow(cl);
    return EV_TIMER_STOP;
}

static void client_flow(struct csio_client *cl)
{
    if (!cl->rc)
        return;
    struct net_conn *nc = rpc_net(cl->rc);
    bool backlog = !net_conn_writable(nc);
    bool full = backlog || cl->held > cl->d->conf->conn_buffer;
    if (full && !cl->paused)
        net_conn_pause_read(nc);
    else if (!full && cl->paused)
        net_conn_resume_read(nc);
    cl->paused = full;
    if (backlog && !cl->poll_timer)
        cl->poll_timer = ev_timer_add(cl->d->loop, CSIO_POLL_MS, client_poll, cl);
}

static void client_hold(struct csio_client *cl, size_t bytes)
{
    cl->refs++;
    cl->held += bytes;
    client_flow(cl);
}

static void client_release(struct csio_client *cl, size_t bytes)
{
    cl->held -= bytes;
    client_flow(cl);
    client_unref(cl);
}

/* A malformed frame: the protocol closes the connection. */
static void client_drop(struct csio_client *cl, const char *what, int err)
{
    if (!cl->rc)
        return;
    log_warn("csio: closing %s: malformed %s: %s", rpc_peer(cl->rc), what,
             dfs_strerror(err));
    net_conn_abort(rpc_net(cl->rc));
}

static void client_reply(struct csio_client *cl, const struct wire_frame *req,
                         int status, const void *payload, size_t len)
{
    if (status < 0)
        atomic_fetch_add(&cl->d->stats.errors, 1);
    if (cl->rc)
        rpc_reply(cl->rc, req, status, payload, len);
}

/* ---- CS_WRITE ---------------------------------------------------------- */

static void write_free(struct csio_write *w)
{
    client_release(w->cl, w->len);
    free(w->buf);
    free(w);
}

/* The failed reply's payload: the node that failed. */
static void write_reply_error(struct csio_write *w, int status, uint32_t cs,
                              const char *addr)
{
    log_info("csio: write of chunk %016llx v%u failed at cs %u (%s): %s",
             (unsigned long long)w->chunk, w->version, cs, addr,
             dfs_strerror(status));
    struct wire_writer out;
    wire_writer_init(&out);
    wire_put_u32(&out, cs);
    wire_put_str(&out, addr);
    client_reply(w->cl, &w->req, status, out.buf, out.len);
    wire_writer_release(&out);
}

static void write_finish(struct csio_write *w)
{
    struct csd *d = w->cl->d;
    if (w->local_status < 0)
        write_reply_error(w, w->local_status, csd_server_id(d), d->self_addr);
    else if (w->down_status < 0)
        write_reply_error(w, w->down_status, w->down_cs, w->down_addr);
    else
        client_reply(w->cl, &w->req, 0, NULL, 0);
    write_free(w);
}

static void write_part_done(struct csio_write *w)
{
    if (--w->parts == 0)
        write_finish(w);
}

/* Reads the request; records where the forwarded payload will start. */
static int write_parse(struct csio_write *w)
{
    struct wire_reader r;
    wire_reader_init(&r, w->buf, w->len);
    w->chunk = wire_get_u64(&r);
    w->version = wire_get_u32(&r);
    w->prev_version = wire_get_u32(&r);
    w->flags = wire_get_u8(&r);
    uint32_t n = wire_get_u32(&r);
    if (n > CSIO_CHAIN_MAX)
        return -DFS_ETOOBIG;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t cs = wire_get_u32(&r);
        const uint8_t *addr;
        size_t alen = wire_get_bytes(&r, &addr, PROTO_ADDR_MAX);
        if (i > 0 || r.err)
            continue;
        if (alen == 0 || memchr(addr, 0, alen))
            return -EINVAL;
        w->forward = true;
        w->next_cs = cs;
        memcpy(w->next_addr, addr, alen);
        w->next_addr[alen] = '\0';
        /* The forwarded payload is the fixed fields and the count just
         * before the second node (see write_forward). */
        w->fwd_at = w->len - r.left - CSIO_WRITE_FIXED - 4;
    }
    wire_get_blocks(&r, &w->blk, PROTO_DATA_MAX);
    int rc = wire_reader_finish(&r);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < w->blk.nblocks; i++)
        w->crcs[i] = wire_blocks_crc(&w->blk, i);
    return 0;
}

static void write_down_reply(void *arg, int status, const uint8_t *payload,
                             size_t len)
{
    struct csio_write *w = arg;
    w->down_status = status;
    w->down_cs = w->next_cs;
    snprintf(w->down_addr, sizeof(w->down_addr), "%s", w->next_addr);
    if (status < 0 && !payload && status != -ECONNREFUSED)
        w->down_status = -EIO;   /* closed, reset or timed out */
    if (status < 0 && payload) {
        /* The downstream names the node that failed, maybe further on. */
        struct wire_reader r;
        wire_reader_init(&r, payload, len);
        uint32_t cs = wire_get_u32(&r);
        char *addr = wire_get_str(&r, PROTO_ADDR_MAX);
        if (wire_reader_finish(&r) == 0 && addr) {
            w->down_cs = cs;
            snprintf(w->down_addr, sizeof(w->down_addr), "%s", addr);
        }
        free(addr);
    }
    write_part_done(w);
}

/*
 * Sends the request on to the next node with that node taken off the
 * chain.  The forwarded payload is rebuilt in place: the fixed fields and
 * the decremented count move up to just before the second node, so the
 * rest (further nodes, DATA) is sent as it came.
 */
static int write_forward(struct csio_write *w)
{
    struct csd *d = w->cl->d;
    uint32_t count;
    memcpy(&count, w->buf + CSIO_WRITE_FIXED, 4);
    uint32_t left = le32toh(count) - 1;
    memmove(w->buf + w->fwd_at, w->buf, CSIO_WRITE_FIXED);
    left = htole32(left);
    memcpy(w->buf + w->fwd_at + CSIO_WRITE_FIXED, &left, 4);

    struct rpc_conn *peer;
    int rc = csio_peer_get(d, w->next_addr, &peer);
    if (rc == 0)
        rc = rpc_call(peer, PROTO_CS_WRITE, w->buf + w->fwd_at,
                      w->len - w->fwd_at, (uint32_t)d->conf->write_timeout_ms,
                      write_down_reply, w);
    return rc;
}

/*
 * The replica must be at a version in [prev_version, version] (then moved
 * to version: prev_version is the chunk's committed version, and every
 * replica from it on holds the committed content), or absent with
 * prev_version 0 (then created, even for a write past offset 0: an
 * application may seek in a new file, and the hole reads as zeros).
 * A replica lost with a failed data directory is -EIO, a failure of this
 * server, so the client takes it out of the chain: re-created, it would
 * read as zeros before this write (vols_create_new), and a stale-version
 * answer would only bring the client back here with a new version.
 * A replica at the session's version that this process did not move there
 * reached it before a restart, which dropped what the session had not
 * synced: -DFS_ERESTARTED, a failure of this server too, or the client
 * would go on over a hole.
 */
static int write_prepare(struct vols *s, const struct csio_write *w)
{
    uint32_t cur;
    uint64_t length;
    int rc = vols_stat(s, w->chunk, &cur, &length);
    if (rc == -ENOENT && w->prev_version == 0)
        return vols_create_new(s, w->chunk, w->version);
    if (rc == -ENOENT)
        return vols_lost(s, w->chunk) ? -EIO : -DFS_ESTALE_VER;
    if (rc < 0)
        return rc;
    if (cur == w->version)
        return vols_moved(s, w->chunk) ? 0 : -DFS_ERESTARTED;
    if (cur >= w->prev_version && cur < w->version)
        return vols_set_version(s, w->chunk, w->version);
    return -DFS_ESTALE_VER;
}

/* Disk thread. */
static int write_work(void *arg)
{
    struct csio_write *w = arg;
    struct vols *s = w->cl->d->vols;
    int rc = write_prepare(s, w);
    if (rc < 0)
        return rc;
    unsigned sf = (w->flags & PROTO_WRITE_SYNC) ? STORE_SYNC : 0;
    if (w->blk.length)
        rc = vols_write(s, w->chunk, w->version, w->blk.offset, w->blk.data,
                        w->blk.length, w->crcs, sf);
    else if (sf)
        rc = vols_sync(s, w->chunk);
    if (rc == 0 && (w->flags & PROTO_WRITE_TRUNCATE))
        rc = vols_truncate(s, w->chunk, w->version,
                           w->blk.offset + w->blk.length);
    return rc;
}

static void write_done(void *arg, int status)
{
    struct csio_write *w = arg;
    w->local_status = status;
    if (status == 0)
        atomic_fetch_add(&w->cl->d->stats.bytes_written, w->blk.length);
    write_part_done(w);
}

/* Checks, forwards, then writes locally; each finished part may answer. */
static void write_run(struct csio_write *w)
{
    struct csd *d = w->cl->d;
    uint32_t bad;
    if (w->version == 0)
        w->local_status = -EINVAL;
    else if (wire_verify_blocks(&w->blk, &bad) < 0)
        w->local_status = -DFS_ECORRUPT;
    if (w->local_status < 0) {
        write_finish(w);
        return;
    }
    w->parts = 1;
    if (w->forward) {
        int rc = write_forward(w);
        if (rc == 0) {
            w->parts++;
        } else {
            w->down_status = rc == -ECONNREFUSED ? rc : -EIO;
            w->down_cs = w->next_cs;
            snprintf(w->down_addr, sizeof(w->down_addr), "%s", w->next_addr);
        }
    }
    int rc = tpool_submit_keyed(d->disk, w->chunk, write_work, write_done, w);
    if (rc < 0) {
        w->local_status = rc;
        write_part_done(w);
    }
}

static void write_start(struct csio_client *cl, const struct wire_frame *f)
{
    size_t len = f->hdr.payload_len;
    struct csio_write *w = calloc(1, sizeof(*w));
    /* A large write arrived in a buffer of its own (unless it was whole in
     * the connection's already): kept, not copied. */
    uint8_t *buf = w ? rpc_frame_take(cl->rc, f) : NULL;
    if (!w || !buf) {
        free(w);
        free(buf);
        client_reply(cl, f, -ENOMEM, NULL, 0);
        return;
    }
    w->cl = cl;
    w->req.hdr = f->hdr;
    w->buf = buf;
    w->len = len;
    client_hold(cl, len);
    int rc = write_parse(w);
    if (rc < 0) {
        write_free(w);
        client_drop(cl, "CS_WRITE", rc);
        return;
    }
    write_run(w);
}

/* ---- CS_READ and CS_COPY ----------------------------------------------- */

static void read_free(struct csio_read *r)
{
    client_release(r->cl, r->length);
    wire_writer_release(&r->out);
    free(r);
}

static void put_le32_at(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

/* Disk thread: the whole reply frame into r->out. */
static int read_work(void *arg)
{
    struct csio_read *r = arg;
    struct vols *s = r->cl->d->vols;
    uint32_t version;
    uint64_t clen;
    int rc = vols_stat(s, r->chunk, &version, &clen);
    if (rc < 0)
        return rc;
    /* r->version is the lowest that holds the committed content. */
    if (version < r->version)
        return -DFS_ESTALE_VER;
    uint64_t n = r->offset >= clen ? 0 : clen - r->offset;
    if (n > r->length)
        n = r->length;
    uint32_t nb = store_nblocks(r->offset, n);

    size_t at = wire_frame_begin(&r->out);
    wire_put_u32(&r->out, (uint32_t)clen);
    wire_put_u64(&r->out, r->offset);
    wire_put_u32(&r->out, (uint32_t)n);
    wire_put_u32(&r->out, nb);
    size_t crc_at = r->out.len;
    wire_writer_reserve(&r->out, (size_t)nb * 4 + n);
    if (r->out.err)
        return r->out.err;
    uint32_t crcs[CSIO_BLOCKS_MAX];
    uint8_t *data = r->out.buf + crc_at + (size_t)nb * 4;
    ssize_t got = vols_read(s, r->chunk, version, r->offset, n, data, crcs);
    if (got < 0)
        return (int)got;
    if ((uint64_t)got != n)
        return -EIO;   /* the length moved under us: never send a gap */
    for (uint32_t i = 0; i < nb; i++)
        put_le32_at(r->out.buf + crc_at + 4 * i, crcs[i]);
    r->served = (uint32_t)n;
    struct wire_hdr h = { .flags = WIRE_F_REPLY, .type = r->req.hdr.type,
                          .req_id = r->req.hdr.req_id };
    return wire_frame_end(&r->out, at, &h);
}

static void read_done(void *arg, int status)
{
    struct csio_read *r = arg;
    struct csd *d = r->cl->d;
    if (status < 0) {
        log_info("csio: read of chunk %016llx v%u for %s: %s",
                 (unsigned long long)r->chunk, r->version,
                 r->cl->rc ? rpc_peer(r->cl->rc) : "(closed)",
                 dfs_strerror(status));
        client_reply(r->cl, &r->req, status, NULL, 0);
    } else if (r->cl->rc) {
        atomic_fetch_add(&d->stats.bytes_read, r->served);
        rpc_send_frames(r->cl->rc, &r->out);
    }
    read_free(r);
}

static void read_start(struct csio_client *cl, const struct wire_frame *f)
{
    struct wire_reader rd;
    wire_reader_init(&rd, f->payload, f->hdr.payload_len);
    uint64_t chunk = wire_get_u64(&rd);
    uint32_t version = wire_get_u32(&rd);
    uint64_t offset = wire_get_u64(&rd);
    uint32_t length = wire_get_u32(&rd);
    int rc = wire_reader_finish(&rd);
    if (rc < 0) {
        client_drop(cl, "CS_READ", rc);
        return;
    }
    if (length > PROTO_DATA_MAX) {
        client_reply(cl, f, -DFS_ETOOBIG, NULL, 0);
        return;
    }
    struct csio_read *r = calloc(1, sizeof(*r));
    if (!r) {
        client_reply(cl, f, -ENOMEM, NULL, 0);
        return;
    }
    r->cl = cl;
    r->req.hdr = f->hdr;
    r->chunk = chunk;
    r->version = version;
    r->offset = offset;
    r->length = length;
    wire_writer_init(&r->out);
    client_hold(cl, length);
    rc = tpool_submit_keyed(cl->d->disk, chunk, read_work, read_done, r);
    if (rc < 0) {
        client_reply(cl, f, rc, NULL, 0);
        read_free(r);
    }
}

/* ---- CS_LOCAL ---------------------------------------------------------- */

static void local_info(struct csio_client *cl, const struct wire_frame *f)
{
    struct cslocal *l = cl->d->local;
    if (!l) {
        client_reply(cl, f, -ENOSYS, NULL, 0);
        return;
    }
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_str(&w, cslocal_name(l));
    wire_put_raw(&w, cslocal_token(l), PROTO_LOCAL_TOKEN);
    wire_put_u32(&w, (uint32_t)getpid());
    wire_put_u32(&w, (uint32_t)geteuid());
    if (w.err)
        client_reply(cl, f, w.err, NULL, 0);
    else
        client_reply(cl, f, 0, w.buf, w.len);
    wire_writer_release(&w);
}

/* ---- connections ------------------------------------------------------- */

static void client_on_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    struct csio_client *cl = rpc_ctx(c);
    if (f->hdr.flags & WIRE_F_REPLY)
        return;   /* we call nothing on a client connection */
    switch (f->hdr.type) {
    case PROTO_CS_WRITE:
        write_start(cl, f);
        break;
    case PROTO_CS_READ:
    case PROTO_CS_COPY:
        read_start(cl, f);
        break;
    case PROTO_CS_LOCAL:
        local_info(cl, f);
        break;
    default:
        client_reply(cl, f, -ENOSYS, NULL, 0);
        break;
    }
}

static void client_on_close(struct rpc_conn *c, int err)
{
    struct csio_client *cl = rpc_ctx(c);
    struct csd *d = cl->d;
    if (err < 0)
        log_debug("csio: %s closed: %s", rpc_peer(c), dfs_strerror(err));
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        d->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    if (cl->poll_timer)
        ev_timer_cancel(d->loop, cl->poll_timer);
    cl->rc = NULL;
    client_unref(cl);
}

static const struct rpc_cbs client_cbs = {
    .on_frame = client_on_frame,
    .on_close = client_on_close,
};

int csio_accept(struct csd *d, struct net_conn *nc)
{
    if (atomic_load(&d->stopping)) {
        net_conn_abort(nc);
        return -ESHUTDOWN;
    }
    struct csio_client *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        net_conn_abort(nc);
        return -ENOMEM;
    }
    cl->d = d;
    cl->refs = 1;
    int rc = rpc_accept(d->loop, nc, &d->key, &client_cbs, cl,
                        CSIO_MAX_PAYLOAD, NULL, &cl->rc);
    if (rc < 0) {
        free(cl);
        return rc;
    }
    d->nclients++;
    cl->next = d->clients;
    if (d->clients)
        d->clients->prev = cl;
    d->clients = cl;
    return 0;
}

/* ---- downstream peers -------------------------------------------------- */

static void peer_on_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    /* A downstream sends nothing but replies to our calls. */
    if (!(f->hdr.flags & WIRE_F_REPLY))
        rpc_reply(c, f, -ENOSYS, NULL, 0);
}

static void peer_on_close(struct rpc_conn *c, int err)
{
    struct csio_peer *p = rpc_ctx(c);
    struct csio_peer **pp = &p->d->peers;
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    if (err < 0)
        log_info("csio: chunkserver %s: %s", p->addr, dfs_strerror(err));
    free(p);
}

static const struct rpc_cbs peer_cbs = {
    .on_frame = peer_on_frame,
    .on_close = peer_on_close,
};

int csio_peer_get(struct csd *d, const char *addr, struct rpc_conn **out)
{
    for (struct csio_peer *p = d->peers; p; p = p->next) {
        if (strcmp(p->addr, addr) == 0) {
            *out = p->rc;
            return 0;
        }
    }
    if (atomic_load(&d->stopping))
        return -ESHUTDOWN;
    char host[NET_HOST_MAX];
    uint16_t port;
    if (strlen(addr) > PROTO_ADDR_MAX ||
        net_parse_addr(addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    struct csio_peer *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->d = d;
    strcpy(p->addr, addr);
    struct net_conn_opts opts;
    net_conn_opts_init(&opts);
    opts.write_max = 0;   /* bounded by the clients' conn_buffer instead */
    int rc = rpc_connect(d->loop, host, port, &d->key, &peer_cbs, p,
                         CSIO_MAX_PAYLOAD, &opts, &p->rc);
    if (rc < 0) {
        free(p);
        return rc;
    }
    p->next = d->peers;
    d->peers = p;
    *out = p->rc;
    return 0;
}

/* ---- stopping ---------------------------------------------------------- */

void csio_close_all(struct csd *d)
{
    /* on_close runs later, from the loop, so the lists stay walkable. */
    for (struct csio_client *cl = d->clients; cl; cl = cl->next)
        net_conn_abort(rpc_net(cl->rc));
    for (struct csio_peer *p = d->peers; p; p = p->next)
        net_conn_abort(rpc_net(p->rc));
}

bool csio_idle(const struct csd *d)
{
    return d->nclients == 0 && d->peers == NULL;
}
