/*
 * net: TCP listeners and buffered connections on an ev loop, address
 * helpers, and blocking helpers.
 *
 * Owns: each listener's socket; each conn's socket, read buffer, write
 * queue (segments, some holding a caller's buffer), timers, and the
 * ev_post that delivers on_close and frees it.
 *
 * Conn states, and what moves between them:
 *   CONNECTING --connect completes (conn_on_connected)--> OPEN
 *   OPEN --net_conn_close, or peer EOF (conn_begin_close)--> CLOSING
 *   any --error, abort, timeout, or a finished close (conn_finish)--> CLOSED
 * An accepted conn starts OPEN, not yet registered with ev until
 * net_conn_start.
 *
 * Invariants:
 *  1. The conn's ev mask is a function of its state (conn_wanted_mask);
 *     every change of state, queue emptiness or pause goes through
 *     conn_update_events.
 *  2. CLOSED is final: the socket is closed and deregistered, timers are
 *     cancelled, and `reap` is queued; only reap (run from the loop, never
 *     inside a net_* call) calls on_close and frees memory.  So a callback
 *     that closes its own conn never pulls memory from under the caller:
 *     code that ran a user callback re-checks the state, not the pointer.
 *  3. Unconsumed read bytes are rbuf[rpos, rpos + rlen), and rlen < read_max
 *     while OPEN (reaching it closes the conn with DFS_ETOOBIG), so reading
 *     always has room and the buffer never passes read_max.
 *  4. wq_bytes is the sum of unwritten segment bytes and never passes
 *     write_max (a send that would is refused and aborts the conn).
 *  5. above_high is set when wq_bytes reaches write_high and cleared, with
 *     one on_drain, when writing brings it to write_low; only
 *     conn_on_writable clears it, so on_drain never runs inside a send.
 *  6. In CLOSING, reads are drained and dropped until peer EOF: closing a
 *     socket with unread input makes the kernel send RST, which can destroy
 *     our own unacknowledged bytes in flight to the peer.
 *  7. While a read target is set (net_conn_read_into), input fills it
 *     before anything else: the buffered bytes first, then the socket's;
 *     on_read is not offered bytes until on_filled ran.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dfs_error.h"
#include "ev.h"
#include "log.h"

#define NET_READ_CHUNK (64u * 1024)
/* A read buffer this big or smaller is kept while idle; larger is freed. */
#define NET_RBUF_KEEP (256u * 1024)
#define NET_SEG_MIN (16u * 1024)
#define NET_IOV_MAX 64
#define NET_ACCEPT_BATCH 64
#define NET_ACCEPT_RETRY_MS 100
#define NET_KEEPALIVE_IDLE_S 60
#define NET_KEEPALIVE_INTVL_S 10
#define NET_KEEPALIVE_CNT 6

enum net_state { NET_CONNECTING, NET_OPEN, NET_CLOSING, NET_CLOSED };

/* One piece of the write queue: data[start, end) is still to be written. */
struct net_seg {
    struct net_seg *next;
    uint8_t *data;        /* bytes[] below, or `owned` */
    size_t start, end, cap;
    void *owned;          /* a caller's buffer, freed with the segment */
    uint8_t bytes[];
};

struct net_conn {
    struct ev_loop *loop;
    int fd;
    enum net_state state;
    bool registered;      /* fd is in the loop */
    const struct net_conn_cbs *cbs;   /* NULL until started */
    void *ctx;
    struct net_conn_opts opts;
    char peer[NET_ADDRSTR_MAX];

    uint8_t *rbuf;
    size_t rpos, rlen, rcap;
    uint8_t *target;      /* net_conn_read_into's buffer (the owner's) */
    size_t tlen, tfill;
    bool in_read;         /* inside on_read: a target may be set */
    bool read_paused;
    bool peer_eof;
    bool wr_shut;         /* CLOSING: our write side is shut down */

    struct net_seg *wq_head, *wq_tail;
    size_t wq_bytes;
    bool above_high;

    uint64_t deadline_timer;   /* connect or close timeout; 0 if none */
    uint64_t redeliver_timer;  /* offers buffered bytes after a resume */
    int err;                   /* for on_close */
    struct ev_post reap;
};

struct net_listener {
    struct ev_loop *loop;
    int fd;
    uint16_t port;
    net_accept_fn on_accept;
    void *arg;
    uint64_t retry_timer;      /* re-enables accept after fd exhaustion */
    bool in_accept;            /* inside listener_on_io */
    bool dead;                 /* freed inside on_accept: free on return */
};

/* ---- addresses ---------------------------------------------------------- */

static int net_parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 5 || s[n] != '\0')
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > UINT16_MAX)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

socklen_t net_abstract_addr(const char *name, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n + 1 > sizeof(sa->sun_path))
        return 0;
    memcpy(sa->sun_path + 1, name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

int net_parse_addr(const char *s, char *host, size_t host_size, uint16_t *port)
{
    const char *h, *colon;
    size_t hlen;
    if (!s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        /* A second colon means an IPv6 address without brackets. */
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -EINVAL;
        h = s;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || memchr(h, '[', hlen) || memchr(h, ']', hlen))
        return -EINVAL;
    int rc = net_parse_port(colon + 1, port);
    if (rc < 0)
        return rc;
    if (hlen >= host_size)
        return -ENAMETOOLONG;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return 0;
}

char *net_format_addr(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

static int net_gai_error(int rc)
{
    switch (rc) {
    case EAI_SYSTEM:
        return -errno;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_AGAIN:
    case EAI_FAIL:
        return -EHOSTUNREACH;
    default:
        return -EINVAL;
    }
}

/* Resolves host:port into *res (freed by the caller with freeaddrinfo). */
static int net_getaddrinfo(const char *host, uint16_t port, struct addrinfo **res)
{
    char service[8];
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV,
    };
    if (!host || !*host)
        return -EINVAL;
    snprintf(service, sizeof(service), "%u", port);
    int rc = getaddrinfo(host, service, &hints, res);
    return rc ? net_gai_error(rc) : 0;
}

/* The first address host:port resolves to. */
static int net_resolve(const char *host, uint16_t port,
                       struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo *res;
    int rc = net_getaddrinfo(host, port, &res);
    if (rc < 0)
        return rc;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/*
 * Latency and dead-peer detection.  Failures are ignored on purpose: a
 * socket that refuses a tuning option still carries data correctly.
 */
static void net_tune_socket(int fd)
{
    int one = 1, idle = NET_KEEPALIVE_IDLE_S, intvl = NET_KEEPALIVE_INTVL_S,
        cnt = NET_KEEPALIVE_CNT;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* ---- options ------------------------------------------------------------ */

void net_conn_opts_init(struct net_conn_opts *opts)
{
    *opts = (struct net_conn_opts){
        .write_high = 4u << 20,
        .write_low = 1u << 20,
        .write_max = 64u << 20,
        .read_max = 16u << 20,
        .connect_timeout_ms = 5000,
        .close_timeout_ms = 5000,
    };
}

static int net_check_setup(const struct net_conn_cbs *cbs,
                           const struct net_conn_opts *opts)
{
    if (!cbs || !cbs->on_read || !cbs->on_close)
        return -EINVAL;
    if (!opts)
        return 0;
    if (opts->read_max == 0 || opts->write_low > opts->write_high)
        return -EINVAL;
    if (opts->write_max && opts->write_high > opts->write_max)
        return -EINVAL;
    return 0;
}

static void conn_configure(struct net_conn *c, const struct net_conn_cbs *cbs,
                           void *ctx, const struct net_conn_opts *opts)
{
    c->cbs = cbs;
    c->ctx = ctx;
    if (opts)
        c->opts = *opts;
}

/* ---- write queue -------------------------------------------------------- */

static void seg_free(struct net_seg *s)
{
    free(s->owned);
    free(s);
}

static void wq_push(struct net_conn *c, struct net_seg *s)
{
    s->next = NULL;
    if (c->wq_tail)
        c->wq_tail->next = s;
    else
        c->wq_head = s;
    c->wq_tail = s;
}

/* Makes the tail segment able to take n more copied bytes. */
static int wq_reserve(struct net_conn *c, size_t n)
{
    struct net_seg *t = c->wq_tail;
    if (t && !t->owned && t->cap - t->end >= n)
        return 0;
    size_t cap = n > NET_SEG_MIN ? n : NET_SEG_MIN;
    struct net_seg *s = malloc(sizeof(*s) + cap);
    if (!s)
        return -ENOMEM;
    *s = (struct net_seg){ .data = s->bytes, .cap = cap };
    wq_push(c, s);
    return 0;
}

static void wq_copy_in(struct net_conn *c, const void *p, size_t n)
{
    struct net_seg *t = c->wq_tail;
    memcpy(t->data + t->end, p, n);
    t->end += n;
    c->wq_bytes += n;
}

static void wq_consume(struct net_conn *c, size_t n)
{
    c->wq_bytes -= n;
    while (n > 0) {
        struct net_seg *s = c->wq_head;
        size_t left = s->end - s->start;
        if (n < left) {
            s->start += n;
            return;
        }
        n -= left;
        c->wq_head = s->next;
        if (!c->wq_head)
            c->wq_tail = NULL;
        seg_free(s);
    }
}

static void wq_clear(struct net_conn *c)
{
    while (c->wq_head) {
        struct net_seg *s = c->wq_head;
        c->wq_head = s->next;
        seg_free(s);
    }
    c->wq_tail = NULL;
    c->wq_bytes = 0;
}

/* Writes queued bytes until the kernel stops taking them; 0 or -errno. */
static int conn_write_some(struct net_conn *c)
{
    while (c->wq_head) {
        struct iovec iov[NET_IOV_MAX];
        struct msghdr msg = { .msg_iov = iov };
        size_t total = 0;
        for (struct net_seg *s = c->wq_head; s && msg.msg_iovlen < NET_IOV_MAX;
             s = s->next) {
            iov[msg.msg_iovlen].iov_base = s->data + s->start;
            iov[msg.msg_iovlen].iov_len = s->end - s->start;
            total += s->end - s->start;
            msg.msg_iovlen++;
        }
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        }
        wq_consume(c, (size_t)n);
        if ((size_t)n < total)
            return 0;
    }
    return 0;
}

/* Writes what the kernel takes of iov now; the count, or -errno. */
static ssize_t write_direct(struct net_conn *c, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    for (;;) {
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
}

/* ---- conn lifecycle ----------------------------------------------------- */

static void conn_reap(void *arg);

static struct net_conn *conn_new(struct ev_loop *loop, int fd,
                                 const struct sockaddr_storage *peer,
                                 enum net_state state)
{
    struct net_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->fd = fd;
    c->state = state;
    net_conn_opts_init(&c->opts);
    net_format_addr((const struct sockaddr *)peer, c->peer, sizeof(c->peer));
    ev_post_init(&c->reap, conn_reap, c);
    return c;
}

static void conn_free(struct net_conn *c)
{
    wq_clear(c);
    free(c->rbuf);
    free(c);
}

static void conn_reap(void *arg)
{
    struct net_conn *c = arg;
    if (c->cbs)
        c->cbs->on_close(c, c->err);
    conn_free(c);
}

static void conn_cancel_timers(struct net_conn *c)
{
    if (c->deadline_timer)
        ev_timer_cancel(c->loop, c->deadline_timer);
    if (c->redeliver_timer)
        ev_timer_cancel(c->loop, c->redeliver_timer);
    c->deadline_timer = c->redeliver_timer = 0;
}

/* Any state -> CLOSED (invariant 2). */
static void conn_finish(struct net_conn *c, int err)
{
    if (c->state == NET_CLOSED)
        return;
    if (err)
        log_debug("net: %s: closed: %s", c->peer, dfs_strerror(err));
    c->state = NET_CLOSED;
    c->err = err;
    if (c->registered)
        ev_fd_del(c->loop, c->fd);
    c->registered = false;
    close(c->fd);
    c->fd = -1;
    conn_cancel_timers(c);
    (void)ev_post_queue(c->loop, &c->reap);   /* queued only here: never -EALREADY */
}

static int conn_wanted_mask(const struct net_conn *c)
{
    int write = c->wq_head ? EV_WRITE : 0;
    switch (c->state) {
    case NET_CONNECTING:
        return EV_WRITE;
    case NET_OPEN:
        return (c->read_paused ? 0 : EV_READ) | write;
    case NET_CLOSING:
        return (c->peer_eof ? 0 : EV_READ) | write;
    default:
        return 0;
    }
}

/* Invariant 1.  A failure to change the mask ends the conn. */
static void conn_update_events(struct net_conn *c)
{
    if (!c->registered)
        return;
    int rc = ev_fd_mod(c->loop, c->fd, conn_wanted_mask(c));
    if (rc < 0)
        conn_finish(c, rc);
}

static int64_t conn_on_deadline(struct ev_loop *loop, void *arg)
{
    struct net_conn *c = arg;
    (void)loop;
    c->deadline_timer = 0;
    /* Past the shutdown everything queued reached the kernel: not a loss. */
    bool delivered = c->state == NET_CLOSING && c->wr_shut;
    if (!delivered)
        log_warn("net: %s: %s timed out", c->peer,
                 c->state == NET_CONNECTING ? "connect" : "close");
    conn_finish(c, delivered ? 0 : -ETIMEDOUT);
    return EV_TIMER_STOP;
}

static int conn_arm_deadline(struct net_conn *c, uint32_t ms)
{
    if (ms == 0)
        return 0;
    c->deadline_timer = ev_timer_add(c->loop, ms, conn_on_deadline, c);
    return c->deadline_timer ? 0 : -ENOMEM;
}

/* CLOSING with an empty write queue: shut our side, wait for the peer's. */
static void conn_close_progress(struct net_conn *c)
{
    if (c->peer_eof) {
        conn_finish(c, 0);
        return;
    }
    if (!c->wr_shut) {
        c->wr_shut = true;
        if (shutdown(c->fd, SHUT_WR) < 0) {
            conn_finish(c, -errno);
            return;
        }
    }
    conn_update_events(c);
}

/* OPEN -> CLOSING. */
static void conn_begin_close(struct net_conn *c)
{
    c->state = NET_CLOSING;
    if (c->redeliver_timer)
        ev_timer_cancel(c->loop, c->redeliver_timer);
    c->redeliver_timer = 0;
    int rc = conn_arm_deadline(c, c->opts.close_timeout_ms);
    if (rc < 0) {
        conn_finish(c, rc);
        return;
    }
    if (c->wq_head)
        conn_update_events(c);
    else
        conn_close_progress(c);
}

/* ---- reading ------------------------------------------------------------ */

/* Room for the next read at the buffer's end (invariant 3). */
static int conn_rbuf_room(struct net_conn *c)
{
    size_t limit = c->opts.read_max - c->rlen;
    size_t want = limit < NET_READ_CHUNK ? limit : NET_READ_CHUNK;
    if (c->rcap - c->rpos - c->rlen >= want)
        return 0;
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen);
        c->rpos = 0;
        if (c->rcap - c->rlen >= want)
            return 0;
    }
    size_t cap = c->rcap ? c->rcap : NET_READ_CHUNK;
    while (cap < c->rlen + want)
        cap *= 2;
    if (cap > c->opts.read_max)
        cap = c->opts.read_max;
    uint8_t *b = realloc(c->rbuf, cap);
    if (!b)
        return -ENOMEM;
    c->rbuf = b;
    c->rcap = cap;
    return 0;
}

static void conn_rbuf_idle(struct net_conn *c)
{
    c->rpos = 0;
    if (c->rcap > NET_RBUF_KEEP) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

int net_conn_read_into(struct net_conn *c, uint8_t *buf, size_t len)
{
    if (!c->in_read || !c->cbs->on_filled || !buf || len == 0 || c->target)
        return -EINVAL;
    c->target = buf;
    c->tlen = len;
    c->tfill = 0;
    return 0;
}

/* Moves buffered bytes into the read target; true once it is full, after
 * on_filled ran (invariant 7). */
static bool conn_target_fill(struct net_conn *c)
{
    size_t n = c->tlen - c->tfill < c->rlen ? c->tlen - c->tfill : c->rlen;
    if (n)
        memcpy(c->target + c->tfill, c->rbuf + c->rpos, n);
    c->tfill += n;
    c->rpos += n;
    c->rlen -= n;
    if (c->tfill < c->tlen)
        return false;
    uint8_t *buf = c->target;
    size_t len = c->tlen;
    c->target = NULL;
    c->tlen = c->tfill = 0;
    c->cbs->on_filled(c, buf, len);
    return true;
}

/* Offers buffered bytes to on_read while it consumes and we may read. */
static void conn_deliver(struct net_conn *c)
{
    while (c->state == NET_OPEN && !c->read_paused) {
        if (c->target) {
            if (!conn_target_fill(c))
                break;
            continue;
        }
        if (c->rlen == 0)
            break;
        c->in_read = true;
        size_t used = c->cbs->on_read(c, c->rbuf + c->rpos, c->rlen);
        c->in_read = false;
        if (c->state == NET_CLOSED)
            return;
        if (used > c->rlen) {
            log_error("net: %s: on_read consumed %zu of %zu bytes", c->peer,
                      used, c->rlen);
            conn_finish(c, -EINVAL);
            return;
        }
        if (used == 0)
            break;
        c->rpos += used;
        c->rlen -= used;
    }
    if (c->rlen == 0)
        conn_rbuf_idle(c);
    if (c->state == NET_OPEN && c->rlen >= c->opts.read_max) {
        log_warn("net: %s: %zu unconsumed bytes reach the read limit, closing",
                 c->peer, c->rlen);
        conn_finish(c, -DFS_ETOOBIG);
    }
}

static void conn_read_open(struct net_conn *c)
{
    uint8_t *dst = c->target ? c->target + c->tfill : NULL;
    size_t room = c->tlen - c->tfill;
    if (!dst) {
        int rc = conn_rbuf_room(c);
        if (rc < 0) {
            conn_finish(c, rc);
            return;
        }
        dst = c->rbuf + c->rpos + c->rlen;
        room = c->rcap - c->rpos - c->rlen;
    }
    ssize_t n = recv(c->fd, dst, room, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_finish(c, -errno);
        return;
    }
    if (n == 0) {
        c->peer_eof = true;
        conn_begin_close(c);
        return;
    }
    if (c->target)
        c->tfill += (size_t)n;
    else
        c->rlen += (size_t)n;
    conn_deliver(c);
}

/* CLOSING: input is dropped, only the peer's EOF matters (invariant 6). */
static void conn_read_discard(struct net_conn *c)
{
    uint8_t scratch[16384];
    ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_finish(c, -errno);
        return;
    }
    if (n > 0)
        return;
    c->peer_eof = true;
    if (c->wq_head)
        conn_update_events(c);
    else
        conn_finish(c, 0);
}

static int64_t conn_on_redeliver(struct ev_loop *loop, void *arg)
{
    struct net_conn *c = arg;
    (void)loop;
    c->redeliver_timer = 0;
    conn_deliver(c);
    return EV_TIMER_STOP;
}

/* ---- I/O events --------------------------------------------------------- */

static void conn_on_connected(struct net_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_finish(c, -err);
        return;
    }
    c->state = NET_OPEN;
    if (c->deadline_timer)
        ev_timer_cancel(c->loop, c->deadline_timer);
    c->deadline_timer = 0;
    if (c->cbs->on_connect)
        c->cbs->on_connect(c);
    if (c->state == NET_OPEN)
        conn_update_events(c);
}

static void conn_on_writable(struct net_conn *c)
{
    int rc = conn_write_some(c);
    if (rc < 0) {
        conn_finish(c, rc);
        return;
    }
    if (c->state == NET_CLOSING && !c->wq_head) {
        conn_close_progress(c);
        return;
    }
    if (c->state == NET_OPEN && c->above_high &&
        c->wq_bytes <= c->opts.write_low) {
        c->above_high = false;   /* invariant 5 */
        if (c->cbs->on_drain)
            c->cbs->on_drain(c);
    }
    if (c->state != NET_CLOSED)
        conn_update_events(c);
}

static void conn_on_io(struct ev_loop *loop, int fd, int events, void *arg)
{
    struct net_conn *c = arg;
    (void)loop;
    (void)fd;
    if (c->state == NET_CONNECTING) {
        conn_on_connected(c);
        return;
    }
    if (events & EV_WRITE)
        conn_on_writable(c);
    if (!(events & EV_READ))
        return;
    if (c->state == NET_OPEN && !c->read_paused)
        conn_read_open(c);
    else if (c->state == NET_CLOSING && !c->peer_eof)
        conn_read_discard(c);
}

/* ---- conn API ----------------------------------------------------------- */

int net_conn_start(struct net_conn *c, const struct net_conn_cbs *cbs,
                   void *ctx, const struct net_conn_opts *opts)
{
    if (c->cbs || c->state != NET_OPEN)
        return -EINVAL;
    int rc = net_check_setup(cbs, opts);
    if (rc == 0)
        rc = ev_fd_add(c->loop, c->fd, c->read_paused ? 0 : EV_READ, conn_on_io, c);
    if (rc < 0) {
        conn_finish(c, rc);
        return rc;
    }
    conn_configure(c, cbs, ctx, opts);
    c->registered = true;
    return 0;
}

/* The common checks of the send family: room under write_max (inv. 4). */
static int conn_send_check(struct net_conn *c, size_t n)
{
    if (c->state != NET_OPEN && c->state != NET_CONNECTING)
        return -EPIPE;
    if (c->opts.write_max && n > c->opts.write_max - c->wq_bytes) {
        log_warn("net: %s: write queue would pass %zu bytes, closing", c->peer,
                 c->opts.write_max);
        conn_finish(c, -ENOBUFS);
        return -ENOBUFS;
    }
    return 0;
}

/* After bytes were queued; was_idle: the queue was empty before them. */
static int conn_sent(struct net_conn *c, bool was_idle)
{
    /* A non-idle queue is already waiting for EV_WRITE: writing now would
     * only hit EAGAIN. */
    if (was_idle && c->state == NET_OPEN) {
        int rc = conn_write_some(c);
        if (rc < 0) {
            conn_finish(c, rc);   /* on_close reports it */
            return 0;
        }
    }
    if (c->wq_bytes >= c->opts.write_high)
        c->above_high = true;
    conn_update_events(c);
    return 0;
}

int net_conn_sendv(struct net_conn *c, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    if (iovcnt < 0)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    int rc = conn_send_check(c, total);
    if (rc < 0 || total == 0)
        return rc;
    size_t done = 0;
    bool was_idle = c->wq_bytes == 0;
    if (was_idle && c->state == NET_OPEN && iovcnt <= NET_IOV_MAX) {
        /* Straight to the kernel: only what it does not take now is
         * copied into the queue (a chunkserver forwarding a 1 MiB write
         * down its chain copied every byte once more, into fresh pages). */
        ssize_t n = write_direct(c, iov, iovcnt);
        if (n < 0) {
            conn_finish(c, (int)n);   /* on_close reports it */
            return 0;
        }
        done = (size_t)n;
        was_idle = false;             /* the kernel took what it could */
    }
    if (done < total) {
        rc = wq_reserve(c, total - done);
        if (rc < 0 && done > 0) {
            /* Part of these bytes is on the wire: the stream is cut. */
            conn_finish(c, rc);
            return 0;
        }
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < iovcnt; i++) {
        size_t skip = done < iov[i].iov_len ? done : iov[i].iov_len;
        done -= skip;
        if (iov[i].iov_len > skip)
            wq_copy_in(c, (const uint8_t *)iov[i].iov_base + skip, iov[i].iov_len - skip);
    }
    return conn_sent(c, was_idle);
}

int net_conn_send(struct net_conn *c, const void *p, size_t n)
{
    struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
    return net_conn_sendv(c, &iov, 1);
}

int net_conn_send_owned(struct net_conn *c, void *buf, size_t n)
{
    int rc = conn_send_check(c, n);
    if (rc < 0 || n == 0) {
        free(buf);
        return rc;
    }
    struct net_seg *s = malloc(sizeof(*s));
    if (!s) {
        free(buf);
        return -ENOMEM;
    }
    *s = (struct net_seg){ .data = buf, .end = n, .cap = n, .owned = buf };
    bool was_idle = c->wq_bytes == 0;
    wq_push(c, s);
    c->wq_bytes += n;
    return conn_sent(c, was_idle);
}

bool net_conn_writable(const struct net_conn *c)
{
    bool live = c->state == NET_OPEN || c->state == NET_CONNECTING;
    return live && !c->above_high;
}

size_t net_conn_write_queued(const struct net_conn *c)
{
    return c->wq_bytes;
}

void net_conn_pause_read(struct net_conn *c)
{
    c->read_paused = true;
    conn_update_events(c);
}

void net_conn_resume_read(struct net_conn *c)
{
    if (!c->read_paused)
        return;
    c->read_paused = false;
    conn_update_events(c);
    if (c->state != NET_OPEN || c->rlen == 0 || c->redeliver_timer)
        return;
    c->redeliver_timer = ev_timer_add(c->loop, 0, conn_on_redeliver, c);
    if (!c->redeliver_timer)
        conn_finish(c, -ENOMEM);
}

void net_conn_close(struct net_conn *c)
{
    if (c->state == NET_CONNECTING || !c->registered) {
        conn_finish(c, 0);
        return;
    }
    if (c->state == NET_OPEN)
        conn_begin_close(c);
}

void net_conn_abort(struct net_conn *c)
{
    conn_finish(c, 0);
}

const char *net_conn_peer(const struct net_conn *c)
{
    return c->peer;
}

void *net_conn_ctx(const struct net_conn *c)
{
    return c->ctx;
}

/* ---- connect ------------------------------------------------------------ */

int net_connect(struct ev_loop *loop, const char *host, uint16_t port,
                const struct net_conn_cbs *cbs, void *ctx,
                const struct net_conn_opts *opts, struct net_conn **out)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc = net_check_setup(cbs, opts);
    if (rc < 0)
        return rc;
    rc = net_resolve(host, port, &ss, &len);
    if (rc < 0)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct net_conn *c = conn_new(loop, fd, &ss, NET_CONNECTING);
    if (!c) {
        rc = -ENOMEM;
        goto err_after_socket;
    }
    conn_configure(c, cbs, ctx, opts);
    net_tune_socket(fd);
    rc = ev_fd_add(loop, fd, EV_WRITE, conn_on_io, c);
    if (rc < 0)
        goto err_after_conn;
    c->registered = true;
    rc = conn_arm_deadline(c, c->opts.connect_timeout_ms);
    if (rc < 0)
        goto err_after_register;
    /* Even an at-once failure goes through on_close, as the header promises. */
    if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS &&
        errno != EINTR)
        conn_finish(c, -errno);
    *out = c;
    return 0;

err_after_register:
    ev_fd_del(loop, fd);
err_after_conn:
    conn_free(c);
err_after_socket:
    close(fd);
    return rc;
}

/* ---- listener ----------------------------------------------------------- */

static int64_t listener_on_retry(struct ev_loop *loop, void *arg)
{
    struct net_listener *l = arg;
    l->retry_timer = 0;
    ev_fd_mod(loop, l->fd, EV_READ);
    return EV_TIMER_STOP;
}

/* Returns false when accepting should stop for this event. */
static bool listener_accept_failed(struct net_listener *l, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK)
        return false;
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
        return true;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        /* The pending connection stays readable: stop watching for a
         * while instead of spinning on it. */
        log_warn("net: accept on port %u: %s; pausing %d ms", l->port,
                 dfs_strerror(err), NET_ACCEPT_RETRY_MS);
        if (!l->retry_timer) {
            l->retry_timer = ev_timer_add(l->loop, NET_ACCEPT_RETRY_MS,
                                          listener_on_retry, l);
            if (l->retry_timer)
                ev_fd_mod(l->loop, l->fd, 0);
        }
        return false;
    default:
        log_error("net: accept on port %u: %s", l->port, dfs_strerror(err));
        return false;
    }
}

/* Returns false when accepting should stop for this event. */
static bool listener_accept_one(struct net_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return listener_accept_failed(l, errno);
    struct net_conn *c = conn_new(l->loop, fd, &ss, NET_OPEN);
    if (!c) {
        log_warn("net: accept on port %u: out of memory", l->port);
        close(fd);
        return true;
    }
    net_tune_socket(fd);
    l->on_accept(l, c, l->arg);
    if (!c->cbs && c->state != NET_CLOSED) {
        log_error("net: %s: accepted but neither started nor aborted", c->peer);
        conn_finish(c, -ECONNABORTED);
    }
    return true;
}

static void listener_on_io(struct ev_loop *loop, int fd, int events, void *arg)
{
    struct net_listener *l = arg;
    (void)loop;
    (void)fd;
    (void)events;
    l->in_accept = true;
    for (int i = 0; i < NET_ACCEPT_BATCH && !l->dead; i++) {
        if (!listener_accept_one(l))
            break;
    }
    l->in_accept = false;
    if (l->dead)
        free(l);
}

int net_listen(struct ev_loop *loop, const char *host, uint16_t port,
               int backlog, net_accept_fn on_accept, void *arg,
               struct net_listener **out)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (!on_accept)
        return -EINVAL;
    int rc = net_resolve(host ? host : "0.0.0.0", port, &ss, &len);
    if (rc < 0)
        return rc;
    struct net_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    *l = (struct net_listener){ .loop = loop, .on_accept = on_accept, .arg = arg };
    l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        rc = -errno;
        goto err_after_alloc;
    }
    /* A restarted server must rebind at once, past old TIME_WAIT sockets. */
    int one = 1;
    (void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(l->fd, (struct sockaddr *)&ss, len) < 0 ||
        listen(l->fd, backlog > 0 ? backlog : SOMAXCONN) < 0 ||
        getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0) {
        rc = -errno;
        goto err_after_socket;
    }
    l->port = ntohs(ss.ss_family == AF_INET
                        ? ((struct sockaddr_in *)&ss)->sin_port
                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
    rc = ev_fd_add(loop, l->fd, EV_READ, listener_on_io, l);
    if (rc < 0)
        goto err_after_socket;
    *out = l;
    return 0;

err_after_socket:
    close(l->fd);
err_after_alloc:
    free(l);
    return rc;
}

uint16_t net_listener_port(const struct net_listener *l)
{
    return l->port;
}

void net_listener_free(struct net_listener *l)
{
    if (!l || l->dead)
        return;
    ev_fd_del(l->loop, l->fd);
    close(l->fd);
    if (l->retry_timer)
        ev_timer_cancel(l->loop, l->retry_timer);
    l->retry_timer = 0;
    if (l->in_accept)
        l->dead = true;   /* listener_on_io frees it on the way out */
    else
        free(l);
}

/* ---- blocking helpers --------------------------------------------------- */

/* 0 means no deadline. */
static uint64_t net_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? 0 : ev_clock_ms() + (uint64_t)timeout_ms + 1;
}

/* Waits for events on fd until deadline: 0, -ETIMEDOUT or -errno. */
static int net_poll(int fd, short events, uint64_t deadline)
{
    for (;;) {
        int wait = -1;
        if (deadline) {
            uint64_t now = ev_clock_ms();
            uint64_t left = deadline > now ? deadline - now : 0;
            wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd pfd = { .fd = fd, .events = events };
        int n = poll(&pfd, 1, wait);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int net_dial_one(const struct addrinfo *ai, uint64_t deadline)
{
    int rc;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = -errno;
            goto err_after_socket;
        }
        rc = net_poll(fd, POLLOUT, deadline);
        if (rc < 0)
            goto err_after_socket;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            rc = -err;
            goto err_after_socket;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        rc = -errno;
        goto err_after_socket;
    }
    net_tune_socket(fd);
    return fd;

err_after_socket:
    close(fd);
    return rc;
}

int net_dial(const char *host, uint16_t port, int timeout_ms)
{
    struct addrinfo *res;
    uint64_t deadline = net_deadline(timeout_ms);
    int rc = net_getaddrinfo(host, port, &res);
    if (rc < 0)
        return rc;
    rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = net_dial_one(ai, deadline);
        if (rc >= 0 || rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

/* Drops the first done bytes of the iovec array *at[0..*n). */
static void iov_advance(struct iovec **at, size_t *n, size_t done)
{
    while (*n > 0 && done >= (*at)->iov_len) {
        done -= (*at)->iov_len;
        (*at)++;
        (*n)--;
    }
    if (*n > 0) {
        (*at)->iov_base = (uint8_t *)(*at)->iov_base + done;
        (*at)->iov_len -= done;
    }
}

int net_write_all(int fd, const void *p, size_t n, int timeout_ms)
{
    struct iovec one = { (void *)p, n };
    return net_writev_all(fd, &one, 1, timeout_ms);
}

int net_writev_all(int fd, const struct iovec *iov, size_t n, int timeout_ms)
{
    struct iovec v[NET_IOV_MAX];
    if (n > NET_IOV_MAX)
        return -EINVAL;
    memcpy(v, iov, n * sizeof(*v));
    struct iovec *at = v;
    uint64_t deadline = net_deadline(timeout_ms);
    while (n > 0) {
        if (at->iov_len == 0) {
            at++;
            n--;
            continue;
        }
        struct msghdr m = { .msg_iov = at, .msg_iovlen = n };
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0) {
            iov_advance(&at, &n, (size_t)w);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = net_poll(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int net_read_full(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *b = p;
    uint64_t deadline = net_deadline(timeout_ms);
    while (n > 0) {
        ssize_t r = recv(fd, b, n, MSG_DONTWAIT);
        if (r > 0) {
            b += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return -DFS_ETRUNC;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = net_poll(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}
