/*
 * rpc: the auth handshake and the frame stream of one connection.
 *
 * States of a struct rpc_conn (moved by rpc_on_read and rpc_on_close):
 *   HANDSHAKE -> READY     auth state machine reports AUTH_DONE
 *   HANDSHAKE -> closed    auth fails: refusal logged with the peer address
 *   READY     -> closed    broken frame stream, peer gone, or rpc_close
 *
 * Invariants:
 *  1. No frame byte is handed to net before the peer proved the key:
 *     frames sent earlier are held in c->held and flushed on READY.
 *  2. Every pending call's callback runs exactly once: on its reply, on
 *     its timer, or from rpc_on_close before the owner's on_close.
 *  3. The owner's callbacks never run after its on_close.
 */
#include "rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfs_error.h"
#include "ev.h"
#include "log.h"
#include "net.h"

enum rpc_state { RPC_HANDSHAKE, RPC_READY, RPC_CLOSED };

/* A peer that has not proved the key by then is dropped: an idle or
 * foreign connection must not hold a descriptor for ever. */
#define RPC_HANDSHAKE_MS 5000
/* Payloads from this size on are read into their own buffer. */
#define RPC_DIRECT_MIN (128u * 1024)
/* Frames held before the handshake ends, at most: as much as net lets a
 * connection queue (write_max), since a chunkserver forwards a client's
 * pipelined writes on a downstream connection it has just opened. */
#define RPC_HELD_MAX (64u << 20)

struct rpc_call_slot {
    struct rpc_call_slot *next;
    struct rpc_conn *conn;
    uint64_t req_id;
    uint64_t timer;          /* 0: no timeout */
    rpc_reply_fn fn;
    void *arg;
};

struct rpc_conn {
    struct net_conn *nc;
    struct ev_loop *loop;
    const struct rpc_cbs *cbs;
    void *ctx;
    uint32_t max_payload;
    enum rpc_state state;
    struct auth_state auth;
    struct wire_writer held;         /* frames waiting for READY */
    uint64_t next_req_id;
    struct rpc_call_slot *calls;     /* pending rpc_call()s */
    uint64_t handshake_timer;        /* 0 once the handshake ended */
    /* A large frame's payload, read into its own buffer (rpc_read_direct)
     * and, during its delivery, the consumer's to take (rpc_frame_take). */
    struct {
        uint8_t *buf;
        struct wire_hdr hdr;
        bool taken;
    } direct;
};

static size_t rpc_on_read(struct net_conn *nc, const uint8_t *data, size_t len);
static void rpc_on_filled(struct net_conn *nc, uint8_t *buf, size_t len);
static void rpc_on_close(struct net_conn *nc, int err);

static const struct net_conn_cbs rpc_net_cbs = {
    .on_read = rpc_on_read,
    .on_close = rpc_on_close,
    .on_filled = rpc_on_filled,
};

static struct rpc_conn *rpc_new(struct ev_loop *loop, const struct auth_key *key,
                                enum auth_role role, const struct rpc_cbs *cbs,
                                void *ctx, uint32_t max_payload)
{
    if (!cbs || !cbs->on_frame || !cbs->on_close || !key)
        return NULL;
    struct rpc_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (auth_init(&c->auth, key, role) != 0) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->cbs = cbs;
    c->ctx = ctx;
    c->max_payload = max_payload ? max_payload : WIRE_MAX_PAYLOAD;
    c->state = RPC_HANDSHAKE;
    c->next_req_id = 1;
    wire_writer_init(&c->held);
    return c;
}

static int64_t rpc_handshake_timeout(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct rpc_conn *c = arg;
    c->handshake_timer = 0;
    if (c->state == RPC_HANDSHAKE) {
        log_warn("rpc: %s did not complete the handshake in %d ms, closed",
                 net_conn_peer(c->nc), RPC_HANDSHAKE_MS);
        c->state = RPC_CLOSED;
        net_conn_abort(c->nc);
    }
    return EV_TIMER_STOP;
}

static void rpc_stop_handshake_timer(struct rpc_conn *c)
{
    if (c->handshake_timer)
        ev_timer_cancel(c->loop, c->handshake_timer);
    c->handshake_timer = 0;
}

static void rpc_free(struct rpc_conn *c)
{
    auth_release(&c->auth);
    wire_writer_release(&c->held);
    free(c);
}

/* Hands the handshake's queued bytes to net. */
static int rpc_flush_auth(struct rpc_conn *c)
{
    const void *p;
    size_t n;
    auth_output(&c->auth, &p, &n);
    return n ? net_conn_send(c->nc, p, n) : 0;
}

int rpc_accept(struct ev_loop *loop, struct net_conn *nc, const struct auth_key *key,
               const struct rpc_cbs *cbs, void *ctx, uint32_t max_payload,
               const struct net_conn_opts *opts, struct rpc_conn **out)
{
    struct rpc_conn *c = rpc_new(loop, key, AUTH_SERVER, cbs, ctx, max_payload);
    if (!c) {
        net_conn_abort(nc);
        return -ENOMEM;
    }
    c->nc = nc;
    int rc = net_conn_start(nc, &rpc_net_cbs, c, opts);
    if (rc < 0) {
        rpc_free(c);
        return rc;
    }
    c->handshake_timer = ev_timer_add(loop, RPC_HANDSHAKE_MS, rpc_handshake_timeout, c);
    rc = rpc_flush_auth(c);
    if (rc < 0)
        net_conn_abort(nc);   /* on_close frees c */
    *out = c;
    return 0;
}

int rpc_connect(struct ev_loop *loop, const char *host, uint16_t port,
                const struct auth_key *key, const struct rpc_cbs *cbs,
                void *ctx, uint32_t max_payload,
                const struct net_conn_opts *opts, struct rpc_conn **out)
{
    struct rpc_conn *c = rpc_new(loop, key, AUTH_CLIENT, cbs, ctx, max_payload);
    if (!c)
        return -ENOMEM;
    int rc = net_connect(loop, host, port, &rpc_net_cbs, c, opts, &c->nc);
    if (rc < 0) {
        rpc_free(c);
        return rc;
    }
    c->handshake_timer = ev_timer_add(loop, RPC_HANDSHAKE_MS, rpc_handshake_timeout, c);
    /* Queued by net until the connection is up. */
    rc = rpc_flush_auth(c);
    if (rc < 0)
        net_conn_abort(c->nc);
    *out = c;
    return 0;
}

void *rpc_ctx(const struct rpc_conn *c) { return c->ctx; }
void rpc_set_ctx(struct rpc_conn *c, void *ctx) { c->ctx = ctx; }
bool rpc_is_ready(const struct rpc_conn *c) { return c->state == RPC_READY; }
const char *rpc_peer(const struct rpc_conn *c) { return net_conn_peer(c->nc); }
struct net_conn *rpc_net(struct rpc_conn *c) { return c->nc; }

/* Sends bytes of whole frames now, or holds them until READY. */
static int rpc_emit(struct rpc_conn *c, const void *p, size_t n)
{
    if (c->state == RPC_CLOSED)
        return -EPIPE;
    if (c->state == RPC_HANDSHAKE) {
        if (c->held.len + n > RPC_HELD_MAX)
            return -ENOBUFS;
        wire_put_raw(&c->held, p, n);
        return c->held.err;
    }
    return net_conn_send(c->nc, p, n);
}

int rpc_send(struct rpc_conn *c, uint16_t type, uint64_t req_id,
             uint8_t flags, int32_t status, const void *payload, size_t len)
{
    if (c->state == RPC_READY && len <= WIRE_MAX_PAYLOAD) {
        /* Header and payload as they are: net writes them to the socket
         * without copying the payload first. */
        uint8_t hdr[WIRE_HDR_SIZE];
        struct wire_hdr h = { .flags = flags, .type = type, .req_id = req_id,
                              .payload_len = (uint32_t)len, .status = status };
        wire_hdr_encode(&h, hdr);
        struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)payload, len } };
        return net_conn_sendv(c->nc, iov, len ? 2 : 1);
    }
    struct wire_writer w;
    wire_writer_init(&w);
    size_t at = wire_frame_begin(&w);
    wire_put_raw(&w, payload, len);
    struct wire_hdr h = { .flags = flags, .type = type, .req_id = req_id,
                          .status = status };
    int rc = wire_frame_end(&w, at, &h);
    if (rc == 0)
        rc = rpc_send_frames(c, &w);
    wire_writer_release(&w);
    return rc;
}

int rpc_reply(struct rpc_conn *c, const struct wire_frame *req,
              int32_t status, const void *payload, size_t len)
{
    return rpc_send(c, req->hdr.type, req->hdr.req_id, WIRE_F_REPLY, status,
                    payload, len);
}

int rpc_send_frames(struct rpc_conn *c, struct wire_writer *w)
{
    if (w->err) {
        int err = w->err;
        wire_writer_release(w);
        wire_writer_init(w);
        return err;
    }
    size_t n;
    uint8_t *buf = wire_writer_detach(w, &n);
    if (c->state != RPC_READY) {
        int rc = rpc_emit(c, buf, n);
        free(buf);
        return rc;
    }
    return net_conn_send_owned(c->nc, buf, n);
}

static void rpc_unlink_call(struct rpc_conn *c, struct rpc_call_slot *s)
{
    for (struct rpc_call_slot **pp = &c->calls; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

static int64_t rpc_call_timeout(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct rpc_call_slot *s = arg;
    rpc_unlink_call(s->conn, s);
    if (s->fn)
        s->fn(s->arg, -ETIMEDOUT, NULL, 0);
    free(s);
    return EV_TIMER_STOP;
}

int rpc_call(struct rpc_conn *c, uint16_t type, const void *payload,
             size_t len, uint32_t timeout_ms, rpc_reply_fn fn, void *arg)
{
    if (c->state == RPC_CLOSED)
        return -EPIPE;
    struct rpc_call_slot *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->conn = c;
    s->req_id = c->next_req_id++;
    s->fn = fn;
    s->arg = arg;
    int rc = rpc_send(c, type, s->req_id, 0, 0, payload, len);
    if (rc < 0) {
        free(s);
        return rc;
    }
    if (timeout_ms) {
        struct ev_loop *loop = c->loop;
        s->timer = ev_timer_add(loop, timeout_ms, rpc_call_timeout, s);
        if (!s->timer) {
            free(s);
            return -ENOMEM;
        }
    }
    s->next = c->calls;
    c->calls = s;
    return 0;
}

void rpc_close(struct rpc_conn *c)
{
    if (c->state != RPC_CLOSED)
        net_conn_close(c->nc);
}

/* A reply to one of our calls: run its callback.  False if none matches. */
static bool rpc_complete_call(struct rpc_conn *c, const struct wire_frame *f)
{
    if (!(f->hdr.flags & WIRE_F_REPLY))
        return false;
    for (struct rpc_call_slot *s = c->calls; s; s = s->next) {
        if (s->req_id != f->hdr.req_id)
            continue;
        rpc_unlink_call(c, s);
        if (s->timer)
            ev_timer_cancel(c->loop, s->timer);
        if (s->fn)
            s->fn(s->arg, f->hdr.status, f->payload, f->hdr.payload_len);
        free(s);
        return true;
    }
    return false;
}

static void rpc_become_ready(struct rpc_conn *c)
{
    rpc_stop_handshake_timer(c);
    c->state = RPC_READY;
    if (c->held.len) {
        size_t n;
        uint8_t *buf = wire_writer_detach(&c->held, &n);
        if (net_conn_send_owned(c->nc, buf, n) < 0)
            return;   /* the conn is aborting; on_close follows */
    }
    if (c->cbs->on_ready)
        c->cbs->on_ready(c);
}

static size_t rpc_handshake_read(struct rpc_conn *c, const uint8_t *data,
                                 size_t len)
{
    size_t used = auth_input(&c->auth, data, len);
    if (rpc_flush_auth(c) < 0)
        return used;
    switch (auth_status(&c->auth)) {
    case AUTH_DONE:
        rpc_become_ready(c);
        break;
    case AUTH_FAILED:
        auth_log_refusal(&c->auth, net_conn_peer(c->nc));
        c->state = RPC_CLOSED;
        /* Let the peer read our proof, so it learns the key is wrong. */
        net_conn_close(c->nc);
        break;
    case AUTH_RUNNING:
        break;
    }
    return used;
}

/*
 * A frame not all here yet: when its header is, and its payload is large
 * (a chunk write), the payload is read into a buffer of its own, which
 * its consumer may keep (rpc_frame_take) instead of copying it out of the
 * connection's buffer.  The buffer is allocated as the header arrives, up
 * to max_payload: a peer (one that proved the key) holds that much with a
 * header alone, as it could by sending the bytes.  f is wire_frame_split's
 * answer of 0: its span counts the payload once the header decoded.
 * Returns what on_read consumes: the header, or 0.
 */
static size_t rpc_read_direct(struct rpc_conn *c, const struct wire_frame *f)
{
    if (f->span < (size_t)WIRE_HDR_SIZE + RPC_DIRECT_MIN)
        return 0;
    uint8_t *buf = malloc(f->hdr.payload_len);
    if (!buf)
        return 0;                   /* the connection's buffer will do */
    if (net_conn_read_into(c->nc, buf, f->hdr.payload_len) < 0) {
        free(buf);
        return 0;
    }
    c->direct.buf = buf;
    c->direct.hdr = f->hdr;
    c->direct.taken = false;
    return WIRE_HDR_SIZE;
}

static void rpc_on_filled(struct net_conn *nc, uint8_t *buf, size_t len)
{
    struct rpc_conn *c = net_conn_ctx(nc);
    struct wire_frame f = { .hdr = c->direct.hdr, .payload = buf,
                            .span = WIRE_HDR_SIZE + len };
    if (c->state == RPC_READY && !rpc_complete_call(c, &f))
        c->cbs->on_frame(c, &f);
    if (!c->direct.taken)
        free(buf);
    c->direct.buf = NULL;
    c->direct.taken = false;
}

uint8_t *rpc_frame_take(struct rpc_conn *c, const struct wire_frame *f)
{
    if (f->payload && f->payload == c->direct.buf && !c->direct.taken) {
        c->direct.taken = true;
        return c->direct.buf;
    }
    size_t len = f->hdr.payload_len;
    uint8_t *b = malloc(len ? len : 1);
    if (b && len)
        memcpy(b, f->payload, len);
    return b;
}

static size_t rpc_on_read(struct net_conn *nc, const uint8_t *data, size_t len)
{
    struct rpc_conn *c = net_conn_ctx(nc);
    if (c->state == RPC_HANDSHAKE)
        return rpc_handshake_read(c, data, len);
    if (c->state == RPC_CLOSED)
        return len;

    struct wire_frame f;
    int rc = wire_frame_split(data, len, c->max_payload, &f);
    if (rc == 0)
        return rpc_read_direct(c, &f);
    if (rc < 0) {
        log_warn("rpc: closing %s: %s", net_conn_peer(nc), dfs_strerror(rc));
        c->state = RPC_CLOSED;
        net_conn_abort(nc);
        return len;
    }
    if (!rpc_complete_call(c, &f))
        c->cbs->on_frame(c, &f);
    return f.span;
}

static void rpc_on_close(struct net_conn *nc, int err)
{
    struct rpc_conn *c = net_conn_ctx(nc);
    if (auth_status(&c->auth) == AUTH_FAILED)
        err = auth_error(&c->auth);
    else if (auth_status(&c->auth) == AUTH_RUNNING && err == 0)
        err = -ECONNRESET;
    c->state = RPC_CLOSED;
    rpc_stop_handshake_timer(c);
    free(c->direct.buf);            /* a payload cut off by the close */
    c->direct.buf = NULL;
    int call_err = err ? err : -ECONNRESET;
    while (c->calls) {
        struct rpc_call_slot *s = c->calls;
        c->calls = s->next;
        if (s->timer)
            ev_timer_cancel(c->loop, s->timer);
        if (s->fn)
            s->fn(s->arg, call_err, NULL, 0);
        free(s);
    }
    c->cbs->on_close(c, err);
    rpc_free(c);
}

/* ---- blocking side ------------------------------------------------------- */

int rpc_dial(const char *host, uint16_t port, const struct auth_key *key,
             int timeout_ms)
{
    int fd = net_dial(host, port, timeout_ms);
    if (fd < 0)
        return fd;
    int rc = auth_handshake_fd(fd, key, AUTH_CLIENT, timeout_ms, NULL);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

void rpc_reply_release(struct rpc_reply *r)
{
    free(r->payload);
    r->payload = NULL;
    r->len = 0;
}

/* Reads one whole frame from a blocking fd into r. */
static int rpc_read_frame_fd(int fd, uint32_t max_payload, int timeout_ms,
                             struct rpc_reply *r)
{
    uint8_t hdr[WIRE_HDR_SIZE];
    int rc = net_read_full(fd, hdr, sizeof(hdr), timeout_ms);
    if (rc < 0)
        return rc;
    rc = wire_hdr_decode(hdr, sizeof(hdr), max_payload, &r->hdr);
    if (rc < 0)
        return rc;
    r->len = r->hdr.payload_len;
    r->payload = malloc(r->len ? r->len : 1);
    if (!r->payload)
        return -ENOMEM;
    rc = net_read_full(fd, r->payload, r->len, timeout_ms);
    if (rc < 0)
        rpc_reply_release(r);
    return rc;
}

int rpc_send_fd_many(int fd, uint16_t type, const struct iovec *payloads,
                     size_t n, uint64_t first_id, int timeout_ms)
{
    struct wire_writer w;
    wire_writer_init(&w);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t at = wire_frame_begin(&w);
        wire_put_raw(&w, payloads[i].iov_base, payloads[i].iov_len);
        struct wire_hdr h = { .type = type, .req_id = first_id + i };
        rc = wire_frame_end(&w, at, &h);
    }
    if (rc == 0)
        rc = net_write_all(fd, w.buf, w.len, timeout_ms);
    wire_writer_release(&w);
    return rc;
}

int rpc_send_fd_parts(int fd, uint16_t type, const struct iovec *parts, size_t n,
                      uint64_t req_id, int timeout_ms)
{
    struct iovec v[8];
    size_t len = 0;
    if (n >= sizeof(v) / sizeof(v[0]))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        v[i + 1] = parts[i];
        len += parts[i].iov_len;
    }
    if (len > WIRE_MAX_PAYLOAD)
        return -DFS_ETOOBIG;
    uint8_t hdr[WIRE_HDR_SIZE];
    struct wire_hdr h = { .type = type, .req_id = req_id, .payload_len = (uint32_t)len };
    wire_hdr_encode(&h, hdr);
    v[0] = (struct iovec){ hdr, sizeof(hdr) };
    return net_writev_all(fd, v, n + 1, timeout_ms);
}

int rpc_recv_reply_fd(int fd, uint32_t max_payload, int timeout_ms,
                      struct rpc_reply *r)
{
    for (;;) {
        int rc = rpc_read_frame_fd(fd, max_payload ? max_payload : WIRE_MAX_PAYLOAD,
                                   timeout_ms, r);
        if (rc < 0 || (r->hdr.flags & WIRE_F_REPLY))
            return rc;
        rpc_reply_release(r);
    }
}

int rpc_call_fd_many(int fd, uint16_t type, const struct iovec *payloads,
                     size_t n, uint32_t max_payload, int timeout_ms,
                     struct rpc_reply *replies)
{
    int rc = rpc_send_fd_many(fd, type, payloads, n, 1, timeout_ms);
    if (rc < 0)
        return rc;
    memset(replies, 0, n * sizeof(*replies));
    for (size_t got = 0; got < n;) {
        struct rpc_reply r;
        rc = rpc_recv_reply_fd(fd, max_payload, timeout_ms, &r);
        if (rc < 0)
            break;
        uint64_t id = r.hdr.req_id;
        if (id < 1 || id > n || replies[id - 1].payload) {
            rpc_reply_release(&r);   /* not one of ours, or a repeat */
            continue;
        }
        replies[id - 1] = r;
        got++;
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            rpc_reply_release(&replies[i]);
    }
    return rc;
}

int rpc_call_fd(int fd, uint16_t type, const void *payload, size_t len,
                uint32_t max_payload, int timeout_ms, struct rpc_reply *r)
{
    struct iovec one = { (void *)payload, len };
    return rpc_call_fd_many(fd, type, &one, 1, max_payload, timeout_ms, r);
}
