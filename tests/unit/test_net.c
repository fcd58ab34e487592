/*
 * Tests of net over real sockets on the loopback: addresses, echo (IPv4,
 * IPv6, many connections), connect errors and timeouts, back-pressure and
 * its limits, read limit, graceful close, pause/resume, closing from
 * callbacks, and the blocking helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/net.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static uint64_t test_seed;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Byte i of every pattern stream: checks order as well as content. */
static uint8_t pattern_at(size_t i)
{
    return (uint8_t)((i * 131) ^ (i >> 11));
}

static void fill_pattern(uint8_t *p, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_at(off + i);
}

static bool check_pattern(const uint8_t *p, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern_at(off + i))
            return false;
    return true;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Hang guard for the loops below; passing never depends on it. */
#define HANG_GUARD_MS 60000

/* Runs the loop until *flag. */
static void run_until(struct ev_loop *loop, const bool *flag)
{
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (!*flag && mono_ms() < give_up)
        assert_true(ev_run_once(loop, 100) >= 0);
    assert_true(*flag);
}

static void run_until_count(struct ev_loop *loop, const int *count, int want)
{
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (*count < want && mono_ms() < give_up)
        assert_true(ev_run_once(loop, 100) >= 0);
    assert_int_equal(*count, want);
}

/* A port that refuses connections: bound (so nobody else takes it), not
 * listening.  Returns the socket to close afterwards. */
static int refusing_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* A listener whose accept queue is full: further SYNs are dropped, so a
 * connect hangs until its timeout.  fds[0] listens, fds[1] fills it. */
static void silent_port(uint16_t *port, int fds[2])
{
    fds[0] = refusing_port(port);
    assert_int_equal(listen(fds[0], 0), 0);
    fds[1] = net_dial("127.0.0.1", *port, 5000);
    assert_true(fds[1] >= 0);
}

/* ---- addresses ---------------------------------------------------------- */

static void test_parse_addr(void **state)
{
    (void)state;
    char host[NET_HOST_MAX];
    uint16_t port;
    static const struct {
        const char *in, *host;
        uint16_t port;
    } good[] = {
        { "127.0.0.1:9000", "127.0.0.1", 9000 },
        { "[::1]:9000", "::1", 9000 },
        { "[fe80::1:2]:1", "fe80::1:2", 1 },
        { "localhost:0", "localhost", 0 },
        { "h:65535", "h", 65535 },
        { "h:00080", "h", 80 },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(net_parse_addr(good[i].in, host, sizeof(host), &port), 0);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    static const char *const bad[] = {
        "127.0.0.1", "::1:9000", "[::1]9000", "[::1]:", ":9000", "h:65536",
        "h:12a", "h:-1", "[]:1", "h:123456", "[::1:80", "a]:1", "h: 1", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(net_parse_addr(bad[i], host, sizeof(host), &port), -EINVAL);
    assert_int_equal(net_parse_addr(NULL, host, sizeof(host), &port), -EINVAL);
    assert_int_equal(net_parse_addr("abcd:1", host, 4, &port), -ENAMETOOLONG);
    assert_int_equal(net_parse_addr("abc:1", host, 4, &port), 0);
}

static void test_format_addr(void **state)
{
    (void)state;
    char buf[NET_ADDRSTR_MAX];
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(80) };
    inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
    assert_string_equal(net_format_addr((struct sockaddr *)&in, buf, sizeof(buf)),
                        "10.1.2.3:80");
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    assert_string_equal(net_format_addr((struct sockaddr *)&in6, buf, sizeof(buf)),
                        "[::1]:443");
    memset(&in6.sin6_addr, 0xff, sizeof(in6.sin6_addr));
    in6.sin6_port = htons(65535);
    net_format_addr((struct sockaddr *)&in6, buf, sizeof(buf));
    assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

/* ---- the test world: an echo server and pattern clients ----------------- */

struct world;

struct client {
    struct world *w;
    struct net_conn *c;
    size_t len;            /* bytes to send and get back */
    size_t got;
    bool connected;
    bool closed;
    bool mismatch;
    int err;
    uint64_t rng;
};

struct world {
    struct ev_loop *loop;
    struct net_listener *l;
    struct net_conn_opts opts;        /* for accepted conns */
    const struct net_conn_cbs *srv_cbs;
    struct net_conn *sconn;           /* the last accepted conn */
    int accepted;
    int srv_closed;
    int srv_err;                      /* the last on_close err */
    bool srv_done;                    /* srv_closed reached expect_srv */
    int expect_srv;
    int cli_closed;
    bool cli_done;
    int expect_cli;
    /* per-test state */
    size_t max_read_len;
    int frames;
    uint32_t frame_ids[16];
    bool paused_at_three;
    size_t sent;
    size_t total;
    size_t max_queued;
    int drains;
    int send_rc;
    bool free_listener_on_accept;
};

static struct world *conn_world(struct net_conn *c)
{
    return net_conn_ctx(c);
}

static void srv_on_close(struct net_conn *c, int err)
{
    struct world *w = conn_world(c);
    if (w->sconn == c)
        w->sconn = NULL;
    w->srv_err = err;
    w->srv_done = ++w->srv_closed >= w->expect_srv;
}

static size_t echo_on_read(struct net_conn *c, const uint8_t *data, size_t len)
{
    assert_int_equal(net_conn_send(c, data, len), 0);
    if (!net_conn_writable(c))
        net_conn_pause_read(c);
    return len;
}

static void echo_on_drain(struct net_conn *c)
{
    net_conn_resume_read(c);
}

static const struct net_conn_cbs echo_cbs = {
    .on_read = echo_on_read,
    .on_close = srv_on_close,
    .on_drain = echo_on_drain,
};

static void world_on_accept(struct net_listener *l, struct net_conn *c, void *arg)
{
    struct world *w = arg;
    w->accepted++;
    w->sconn = c;
    if (w->srv_cbs)
        assert_int_equal(net_conn_start(c, w->srv_cbs, w, &w->opts), 0);
    if (w->free_listener_on_accept) {
        net_listener_free(l);
        w->l = NULL;
    }
}

static void world_init(struct world *w, const char *host)
{
    memset(w, 0, sizeof(*w));
    w->loop = ev_loop_new();
    assert_non_null(w->loop);
    net_conn_opts_init(&w->opts);
    w->srv_cbs = &echo_cbs;
    w->expect_srv = 1;
    w->expect_cli = 1;
    /* The system's full backlog, as the servers use: with a short one,
     * the many-connections test would hang on the kernel's SYN
     * retransmissions (1 s, 3 s, 7 s) racing the 5 s connect timeout. */
    assert_int_equal(net_listen(w->loop, host, 0, 0, world_on_accept, w, &w->l), 0);
    assert_true(net_listener_port(w->l) != 0);
}

static void world_free(struct world *w)
{
    net_listener_free(w->l);
    ev_loop_free(w->loop);
}

/* Client side: sends its pattern in random pieces, through every send call. */
static void client_send_all(struct client *cl)
{
    size_t off = 0;
    while (off < cl->len) {
        size_t n = 1 + rng_next(&cl->rng) % (64 * KIB);
        if (n > cl->len - off)
            n = cl->len - off;
        uint8_t *buf = malloc(n);
        fill_pattern(buf, off, n);
        int rc;
        switch (rng_next(&cl->rng) % 3) {
        case 0:
            rc = net_conn_send(cl->c, buf, n);
            free(buf);
            break;
        case 1: {
            struct iovec iov[3] = { { buf, n / 3 }, { buf + n / 3, n / 3 },
                                    { buf + 2 * (n / 3), n - 2 * (n / 3) } };
            rc = net_conn_sendv(cl->c, iov, 3);
            free(buf);
            break;
        }
        default:
            rc = net_conn_send_owned(cl->c, buf, n);
            break;
        }
        assert_int_equal(rc, 0);
        off += n;
    }
}

static void client_on_connect(struct net_conn *c)
{
    struct client *cl = net_conn_ctx(c);
    cl->connected = true;
}

static size_t client_on_read(struct net_conn *c, const uint8_t *data, size_t len)
{
    struct client *cl = net_conn_ctx(c);
    if (cl->got + len > cl->len || !check_pattern(data, cl->got, len))
        cl->mismatch = true;
    cl->got += len;
    if (cl->got == cl->len)
        net_conn_close(c);
    return len;
}

static void client_on_close(struct net_conn *c, int err)
{
    struct client *cl = net_conn_ctx(c);
    cl->closed = true;
    cl->err = err;
    cl->w->cli_done = ++cl->w->cli_closed >= cl->w->expect_cli;
}

static const struct net_conn_cbs client_cbs = {
    .on_read = client_on_read,
    .on_close = client_on_close,
    .on_connect = client_on_connect,
};

static void client_start(struct world *w, struct client *cl, const char *host,
                         size_t len, uint64_t seed)
{
    *cl = (struct client){ .w = w, .len = len, .rng = seed };
    assert_int_equal(net_connect(w->loop, host, net_listener_port(w->l),
                                 &client_cbs, cl, NULL, &cl->c), 0);
    /* Sent before the connection is up: queued, flushed on connect. */
    client_send_all(cl);
}

static void echo_clients(const char *host, int nclients, size_t len)
{
    struct world w;
    world_init(&w, host);
    w.expect_srv = w.expect_cli = nclients;
    struct client *cl = calloc((size_t)nclients, sizeof(*cl));
    for (int i = 0; i < nclients; i++)
        client_start(&w, &cl[i], host, len, test_seed + (uint64_t)i);
    run_until(w.loop, &w.cli_done);
    run_until(w.loop, &w.srv_done);
    for (int i = 0; i < nclients; i++) {
        assert_true(cl[i].connected);
        assert_false(cl[i].mismatch);
        assert_int_equal(cl[i].got, len);
        assert_int_equal(cl[i].err, 0);
    }
    assert_int_equal(w.accepted, nclients);
    assert_int_equal(w.srv_err, 0);
    free(cl);
    world_free(&w);
}

static void test_echo_ipv4(void **state)
{
    (void)state;
    echo_clients("127.0.0.1", 1, 4 * MIB);
}

static void test_echo_ipv6(void **state)
{
    (void)state;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    bool have_v6 = fd >= 0 && bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
    if (fd >= 0)
        close(fd);
    if (!have_v6)
        skip();
    echo_clients("::1", 2, 256 * KIB);
}

static void test_echo_many_connections(void **state)
{
    (void)state;
    echo_clients("127.0.0.1", 150, 48 * KIB);
}

static void test_peer_strings(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.expect_srv = 2;   /* the raw client's conn and the net_connect one */
    uint16_t port = net_listener_port(w.l);
    int fd = net_dial("127.0.0.1", port, 5000);
    assert_true(fd >= 0);
    run_until_count(w.loop, &w.accepted, 1);
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(me.sin_port));
    assert_string_equal(net_conn_peer(w.sconn), want);

    struct client cl = { .w = &w };
    assert_int_equal(net_connect(w.loop, "127.0.0.1", port, &client_cbs, &cl,
                                 NULL, &cl.c), 0);
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    assert_string_equal(net_conn_peer(cl.c), want);
    run_until(w.loop, &cl.connected);
    net_conn_abort(cl.c);
    run_until(w.loop, &cl.closed);
    assert_int_equal(cl.err, 0);

    close(fd);
    run_until(w.loop, &w.srv_done);
    world_free(&w);
}

/* ---- connect errors ----------------------------------------------------- */

static void test_connect_refused(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    uint16_t port;
    int hold = refusing_port(&port);
    struct client cl = { .w = &w };
    assert_int_equal(net_connect(w.loop, "127.0.0.1", port, &client_cbs, &cl,
                                 NULL, &cl.c), 0);
    run_until(w.loop, &cl.closed);
    assert_int_equal(cl.err, -ECONNREFUSED);
    assert_false(cl.connected);
    close(hold);
    world_free(&w);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    uint16_t port;
    int fds[2];
    silent_port(&port, fds);
    struct net_conn_opts o;
    net_conn_opts_init(&o);
    o.connect_timeout_ms = 100;
    struct client cl = { .w = &w };
    assert_int_equal(net_connect(w.loop, "127.0.0.1", port, &client_cbs, &cl,
                                 &o, &cl.c), 0);
    run_until(w.loop, &cl.closed);
    assert_int_equal(cl.err, -ETIMEDOUT);
    assert_false(cl.connected);

    /* Aborted while connecting: on_close(0), never on_connect. */
    struct client cl2 = { .w = &w };
    assert_int_equal(net_connect(w.loop, "127.0.0.1", port, &client_cbs, &cl2,
                                 &o, &cl2.c), 0);
    assert_int_equal(net_conn_send(cl2.c, "queued", 6), 0);
    net_conn_abort(cl2.c);
    assert_int_equal(net_conn_send(cl2.c, "x", 1), -EPIPE);
    run_until(w.loop, &cl2.closed);
    assert_int_equal(cl2.err, 0);
    assert_false(cl2.connected);
    close(fds[1]);
    close(fds[0]);
    world_free(&w);
}

static void test_connect_bad_arguments(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    struct net_conn *c = NULL;
    uint16_t port = net_listener_port(w.l);
    struct net_conn_cbs no_close = { .on_read = client_on_read };
    struct net_conn_opts o;
    net_conn_opts_init(&o);
    o.write_low = o.write_high + 1;
    assert_int_equal(net_connect(w.loop, "127.0.0.1", port, NULL, NULL, NULL, &c), -EINVAL);
    assert_int_equal(net_connect(w.loop, "127.0.0.1", port, &no_close, NULL, NULL, &c), -EINVAL);
    assert_int_equal(net_connect(w.loop, "127.0.0.1", port, &client_cbs, NULL, &o, &c), -EINVAL);
    assert_int_equal(net_connect(w.loop, "", port, &client_cbs, NULL, NULL, &c), -EINVAL);
    assert_null(c);
    struct net_listener *l2;
    assert_int_equal(net_listen(w.loop, "127.0.0.1", net_listener_port(w.l), 8,
                                world_on_accept, &w, &l2), -EADDRINUSE);
    assert_int_equal(net_listen(w.loop, "127.0.0.1", 0, 8, NULL, &w, &l2), -EINVAL);
    world_free(&w);
}

/* ---- back-pressure ------------------------------------------------------ */

enum { BP_CHUNK = 64 * KIB };

/* Sends the pattern while the conn is writable, then closes when done. */
static void bp_pump(struct world *w, struct net_conn *c)
{
    uint8_t *buf = malloc(BP_CHUNK);
    while (net_conn_writable(c) && w->sent < w->total) {
        size_t n = w->total - w->sent < BP_CHUNK ? w->total - w->sent : BP_CHUNK;
        fill_pattern(buf, w->sent, n);
        assert_int_equal(net_conn_send(c, buf, n), 0);
        w->sent += n;
        if (net_conn_write_queued(c) > w->max_queued)
            w->max_queued = net_conn_write_queued(c);
    }
    free(buf);
    if (w->sent == w->total)
        net_conn_close(c);
}

static size_t discard_on_read(struct net_conn *c, const uint8_t *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

static void bp_on_drain(struct net_conn *c)
{
    struct world *w = conn_world(c);
    w->drains++;
    bp_pump(w, c);
}

static const struct net_conn_cbs bp_cbs = {
    .on_read = discard_on_read,
    .on_close = srv_on_close,
    .on_drain = bp_on_drain,
};

/* A raw client socket in the loop that reads and checks the pattern. */
struct raw_reader {
    size_t got;
    bool eof;
    bool mismatch;
    int err;
};

static void raw_reader_cb(struct ev_loop *loop, int fd, int events, void *arg)
{
    struct raw_reader *r = arg;
    uint8_t buf[64 * KIB];
    (void)events;
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
        if (!check_pattern(buf, r->got, (size_t)n))
            r->mismatch = true;
        r->got += (size_t)n;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    r->err = n < 0 ? -errno : 0;
    r->eof = true;
    ev_fd_del(loop, fd);
}

static void test_slow_reader_stops_at_high_water(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.opts.write_high = 512 * KIB;
    w.opts.write_low = 128 * KIB;
    w.srv_cbs = &bp_cbs;
    w.total = 48 * MIB;   /* far more than the kernel buffers between us */
    int fd = net_dial("127.0.0.1", net_listener_port(w.l), 5000);
    assert_true(fd >= 0);
    run_until_count(w.loop, &w.accepted, 1);

    /* The peer does not read: the queue fills to the mark, and stays. */
    bp_pump(&w, w.sconn);
    for (int i = 0; i < 10; i++)
        ev_run_once(w.loop, 20);
    assert_false(net_conn_writable(w.sconn));
    assert_int_equal(w.drains, 0);
    assert_true(w.sent < w.total);
    assert_true(net_conn_write_queued(w.sconn) >= w.opts.write_high);
    assert_true(w.max_queued < w.opts.write_high + BP_CHUNK);

    /* It reads: drains come, the rest flows, and the queue stays bounded. */
    struct raw_reader r = { 0 };
    assert_int_equal(ev_fd_add(w.loop, fd, EV_READ, raw_reader_cb, &r), 0);
    run_until(w.loop, &r.eof);
    assert_int_equal(r.err, 0);
    assert_false(r.mismatch);
    assert_int_equal(r.got, w.total);
    assert_true(w.drains >= 1);
    assert_true(w.max_queued < w.opts.write_high + BP_CHUNK);

    close(fd);   /* the server, lingering for our EOF, now finishes */
    run_until(w.loop, &w.srv_done);
    assert_int_equal(w.srv_err, 0);
    world_free(&w);
}

static void test_write_max_aborts_runaway_sender(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.opts.write_high = 64 * KIB;
    w.opts.write_low = 16 * KIB;
    w.opts.write_max = 1 * MIB;
    w.srv_cbs = &bp_cbs;
    int fd = net_dial("127.0.0.1", net_listener_port(w.l), 5000);
    assert_true(fd >= 0);
    run_until_count(w.loop, &w.accepted, 1);

    /* Ignoring writable(): the queue may not pass write_max. */
    struct net_conn *c = w.sconn;
    uint8_t *buf = calloc(1, BP_CHUNK);
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        rc = net_conn_send(c, buf, BP_CHUNK);
        if (rc == 0)
            assert_true(net_conn_write_queued(c) <= w.opts.write_max);
    }
    assert_int_equal(rc, -ENOBUFS);
    assert_int_equal(net_conn_send(c, buf, 1), -EPIPE);
    assert_int_equal(net_conn_send_owned(c, malloc(16), 16), -EPIPE);
    assert_false(net_conn_writable(c));
    free(buf);
    run_until(w.loop, &w.srv_done);
    assert_int_equal(w.srv_err, -ENOBUFS);
    close(fd);
    world_free(&w);
}

/* ---- read limit --------------------------------------------------------- */

static size_t hoard_on_read(struct net_conn *c, const uint8_t *data, size_t len)
{
    struct world *w = conn_world(c);
    (void)data;
    if (len > w->max_read_len)
        w->max_read_len = len;
    return 0;   /* never a complete frame */
}

static const struct net_conn_cbs hoard_cbs = {
    .on_read = hoard_on_read,
    .on_close = srv_on_close,
};

static void test_read_max_closes_connection(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.opts.read_max = 100 * KIB;
    w.srv_cbs = &hoard_cbs;
    struct client cl;
    client_start(&w, &cl, "127.0.0.1", 2 * MIB, test_seed);
    run_until(w.loop, &w.srv_done);
    assert_int_equal(w.srv_err, -DFS_ETOOBIG);
    /* on_read saw up to read_max bytes (a frame of exactly that fits), and
     * the conn ended there. */
    assert_int_equal(w.max_read_len, w.opts.read_max);
    run_until(w.loop, &cl.closed);
    assert_int_equal(cl.got, 0);
    world_free(&w);
}

/* ---- graceful close ----------------------------------------------------- */

static void send_and_close_on_accept(struct net_listener *l, struct net_conn *c,
                                     void *arg)
{
    struct world *w = arg;
    (void)l;
    w->accepted++;
    assert_int_equal(net_conn_start(c, &bp_cbs, w, NULL), 0);
    /* 8 MiB through owned buffers and header+payload iovecs, then close
     * at once: everything must still arrive. */
    size_t off = 0;
    while (off < w->total) {
        size_t n = 256 * KIB;
        uint8_t *buf = malloc(n);
        fill_pattern(buf, off, n);
        if ((off / n) % 2) {
            assert_int_equal(net_conn_send_owned(c, buf, n), 0);
        } else {
            struct iovec iov[2] = { { buf, 10 }, { buf + 10, n - 10 } };
            assert_int_equal(net_conn_sendv(c, iov, 2), 0);
            free(buf);
        }
        off += n;
    }
    net_conn_close(c);
    assert_false(net_conn_writable(c));
    w->send_rc = net_conn_send(c, "x", 1);
}

static void test_graceful_close_delivers_everything(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    net_listener_free(w.l);
    assert_int_equal(net_listen(w.loop, "127.0.0.1", 0, 8, send_and_close_on_accept,
                                &w, &w.l), 0);
    w.total = 8 * MIB;
    struct client cl;
    client_start(&w, &cl, "127.0.0.1", 0, test_seed);
    cl.len = w.total;
    run_until(w.loop, &cl.closed);
    run_until(w.loop, &w.srv_done);
    assert_int_equal(w.send_rc, -EPIPE);
    assert_false(cl.mismatch);
    assert_int_equal(cl.got, w.total);
    assert_int_equal(cl.err, 0);
    assert_int_equal(w.srv_err, 0);
    world_free(&w);
}

/* ---- pause / resume ----------------------------------------------------- */

static size_t frame_on_read(struct net_conn *c, const uint8_t *data, size_t len)
{
    struct world *w = conn_world(c);
    if (len < 4)
        return 0;
    uint32_t id;
    memcpy(&id, data, 4);
    w->frame_ids[w->frames++] = id;
    if (w->frames == 3) {
        net_conn_pause_read(c);
        w->paused_at_three = true;
    }
    return 4;   /* one frame per call: the rest is offered again */
}

static const struct net_conn_cbs frame_cbs = {
    .on_read = frame_on_read,
    .on_close = srv_on_close,
};

static void test_pause_resume_redelivers_buffered(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.srv_cbs = &frame_cbs;
    int fd = net_dial("127.0.0.1", net_listener_port(w.l), 5000);
    assert_true(fd >= 0);
    uint32_t ids[10];
    for (uint32_t i = 0; i < 10; i++)
        ids[i] = 100 + i;
    assert_int_equal(net_write_all(fd, ids, sizeof(ids), 5000), 0);
    run_until(w.loop, &w.paused_at_three);
    for (int i = 0; i < 5; i++)
        ev_run_once(w.loop, 10);
    assert_int_equal(w.frames, 3);

    net_conn_resume_read(w.sconn);
    assert_int_equal(w.frames, 3);   /* not from inside resume */
    run_until_count(w.loop, &w.frames, 10);
    assert_memory_equal(w.frame_ids, ids, sizeof(ids));
    net_conn_resume_read(w.sconn);   /* not paused: no-op */

    close(fd);
    run_until(w.loop, &w.srv_done);
    assert_int_equal(w.srv_err, 0);
    world_free(&w);
}

/* ---- closing from callbacks --------------------------------------------- */

static size_t abort_on_read(struct net_conn *c, const uint8_t *data, size_t len)
{
    struct world *w = conn_world(c);
    (void)data;
    w->frames++;
    net_conn_abort(c);
    /* Everything after is harmless on an ended conn. */
    assert_int_equal(net_conn_send(c, "x", 1), -EPIPE);
    net_conn_close(c);
    net_conn_pause_read(c);
    net_conn_resume_read(c);
    net_conn_abort(c);
    assert_false(net_conn_writable(c));
    return len;
}

static const struct net_conn_cbs abort_cbs = {
    .on_read = abort_on_read,
    .on_close = srv_on_close,
};

static void test_abort_inside_on_read(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.srv_cbs = &abort_cbs;
    int fd = net_dial("127.0.0.1", net_listener_port(w.l), 5000);
    assert_true(fd >= 0);
    assert_int_equal(net_write_all(fd, "hello", 5, 5000), 0);
    run_until(w.loop, &w.srv_done);
    assert_int_equal(w.srv_closed, 1);
    assert_int_equal(w.srv_err, 0);
    assert_int_equal(w.frames, 1);
    char c;
    int rc = net_read_full(fd, &c, 1, 5000);
    assert_true(rc == -DFS_ETRUNC || rc == -ECONNRESET);
    close(fd);
    world_free(&w);
}

static void test_accept_without_start_is_aborted(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.srv_cbs = NULL;   /* on_accept neither starts nor aborts */
    int fd = net_dial("127.0.0.1", net_listener_port(w.l), 5000);
    run_until_count(w.loop, &w.accepted, 1);
    ev_run_once(w.loop, 0);
    char c;
    assert_int_equal(net_read_full(fd, &c, 1, 5000), -DFS_ETRUNC);
    close(fd);
    assert_int_equal(w.srv_closed, 0);   /* never started: no on_close */
    world_free(&w);
}

static void start_badly_on_accept(struct net_listener *l, struct net_conn *c,
                                  void *arg)
{
    struct world *w = arg;
    static const struct net_conn_cbs no_close = { .on_read = discard_on_read };
    struct net_conn_opts o;
    (void)l;
    net_conn_opts_init(&o);
    o.read_max = 0;
    w->send_rc = w->accepted++ % 2 ? net_conn_start(c, &bp_cbs, w, &o)
                                   : net_conn_start(c, &no_close, w, NULL);
    /* Refused conns are aborted: a second start is refused too. */
    assert_int_equal(net_conn_start(c, &bp_cbs, w, NULL), -EINVAL);
}

static void test_start_with_bad_arguments(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    net_listener_free(w.l);
    assert_int_equal(net_listen(w.loop, "127.0.0.1", 0, 8, start_badly_on_accept,
                                &w, &w.l), 0);
    for (int i = 0; i < 2; i++) {
        int fd = net_dial("127.0.0.1", net_listener_port(w.l), 5000);
        run_until_count(w.loop, &w.accepted, i + 1);
        assert_int_equal(w.send_rc, -EINVAL);
        ev_run_once(w.loop, 0);
        char c;
        assert_int_equal(net_read_full(fd, &c, 1, 5000), -DFS_ETRUNC);
        close(fd);
    }
    assert_int_equal(w.srv_closed, 0);
    world_free(&w);
}

static void test_listener_free_inside_on_accept(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "127.0.0.1");
    w.free_listener_on_accept = true;
    uint16_t port = net_listener_port(w.l);
    int fd1 = net_dial("127.0.0.1", port, 5000);
    int fd2 = net_dial("127.0.0.1", port, 5000);
    assert_true(fd1 >= 0 && fd2 >= 0);
    run_until_count(w.loop, &w.accepted, 1);
    assert_null(w.l);
    for (int i = 0; i < 3; i++)
        ev_run_once(w.loop, 10);
    assert_int_equal(w.accepted, 1);
    assert_int_equal(net_dial("127.0.0.1", port, 5000), -ECONNREFUSED);
    /* The accepted conn still works (the echo needs the loop running). */
    assert_int_equal(net_write_all(fd1, "ping", 4, 5000), 0);
    char buf[4];
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (recv(fd1, buf, 4, MSG_PEEK | MSG_DONTWAIT) < 4 && mono_ms() < give_up)
        ev_run_once(w.loop, 10);
    assert_int_equal(net_read_full(fd1, buf, 4, 5000), 0);
    assert_memory_equal(buf, "ping", 4);
    close(fd1);
    close(fd2);
    run_until(w.loop, &w.srv_done);
    world_free(&w);
}

/* ---- blocking helpers --------------------------------------------------- */

static void test_dial_refused_and_timeout(void **state)
{
    (void)state;
    uint16_t port;
    int hold = refusing_port(&port);
    assert_int_equal(net_dial("127.0.0.1", port, 5000), -ECONNREFUSED);
    close(hold);

    int fds[2];
    silent_port(&port, fds);
    assert_int_equal(net_dial("127.0.0.1", port, 100), -ETIMEDOUT);
    close(fds[1]);
    close(fds[0]);
}

static void test_dial_read_write(void **state)
{
    (void)state;
    uint16_t port;
    int lfd = refusing_port(&port);
    assert_int_equal(listen(lfd, 8), 0);
    int fd = net_dial("127.0.0.1", port, 5000);
    assert_true(fd >= 0);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    int v = 0;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    assert_true(v);
    int peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);

    enum { N = 100 * 1024 };
    uint8_t *out = malloc(N), *in = malloc(N);
    fill_pattern(out, 0, N);
    assert_int_equal(net_write_all(fd, out, N, 5000), 0);
    assert_int_equal(net_read_full(peer, in, N, 5000), 0);
    assert_memory_equal(in, out, N);

    /* Nothing more is coming: timeout; then a short message and EOF. */
    assert_int_equal(net_read_full(peer, in, 10, 100), -ETIMEDOUT);
    assert_int_equal(net_write_all(fd, out, 5, 5000), 0);
    shutdown(fd, SHUT_WR);
    assert_int_equal(net_read_full(peer, in, 10, 5000), -DFS_ETRUNC);

    /* The peer never reads: a big write times out. */
    size_t big = 64 * MIB;
    uint8_t *huge = calloc(1, big);
    assert_int_equal(net_write_all(peer, huge, big, 100), -ETIMEDOUT);
    free(huge);

    /* Writing to a closed peer is an error, not SIGPIPE. */
    close(fd);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = net_write_all(peer, out, N, 5000);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);

    free(out);
    free(in);
    close(peer);
    close(lfd);
}

struct writev_job {
    int fd;
    const struct iovec *iov;
    size_t n;
    int rc;
};

static void *writev_main(void *arg)
{
    struct writev_job *j = arg;
    j->rc = net_writev_all(j->fd, j->iov, j->n, 5000);
    return NULL;
}

/* Parts larger than the socket buffer, empty parts and parts that a send
 * splits all arrive whole and in order; the caller's iovec is left as it
 * was. */
static void test_writev_all(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    enum { BIG = 3 * 1024 * 1024 + 17, TOTAL = 7 + BIG + 13 };
    uint8_t *out = malloc(TOTAL), *in = malloc(TOTAL);
    fill_pattern(out, 0, TOTAL);
    struct iovec iov[4] = {
        { out, 7 }, { out + 7, 0 }, { out + 7, BIG }, { out + 7 + BIG, 13 },
    };
    struct iovec copy[4];
    memcpy(copy, iov, sizeof(iov));
    struct writev_job j = { .fd = fds[0], .iov = iov, .n = 4 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writev_main, &j), 0);
    assert_int_equal(net_read_full(fds[1], in, TOTAL, 5000), 0);
    pthread_join(th, NULL);
    assert_int_equal(j.rc, 0);
    assert_memory_equal(in, out, TOTAL);
    assert_memory_equal(iov, copy, sizeof(iov));

    /* Nobody reads: the deadline holds. */
    assert_int_equal(net_writev_all(fds[0], iov, 4, 100), -ETIMEDOUT);
    free(out);
    free(in);
    close(fds[0]);
    close(fds[1]);
}

static int setup(void **state)
{
    (void)state;
    const char *s = getenv("DFS_TEST_SEED");
    test_seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    printf("test_net: seed %llu (replay with DFS_TEST_SEED=%llu)\n",
           (unsigned long long)test_seed, (unsigned long long)test_seed);
    /* Limits and misuse are hit on purpose: their log lines would only
     * look like failures. */
    log_init("test_net", LOG_ERROR, "/dev/null");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_writev_all),
        cmocka_unit_test(test_format_addr),
        cmocka_unit_test(test_echo_ipv4),
        cmocka_unit_test(test_echo_ipv6),
        cmocka_unit_test(test_echo_many_connections),
        cmocka_unit_test(test_peer_strings),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_bad_arguments),
        cmocka_unit_test(test_slow_reader_stops_at_high_water),
        cmocka_unit_test(test_write_max_aborts_runaway_sender),
        cmocka_unit_test(test_read_max_closes_connection),
        cmocka_unit_test(test_graceful_close_delivers_everything),
        cmocka_unit_test(test_pause_resume_redelivers_buffered),
        cmocka_unit_test(test_abort_inside_on_read),
        cmocka_unit_test(test_accept_without_start_is_aborted),
        cmocka_unit_test(test_start_with_bad_arguments),
        cmocka_unit_test(test_listener_free_inside_on_accept),
        cmocka_unit_test(test_dial_refused_and_timeout),
        cmocka_unit_test(test_dial_read_write),
    };
    return cmocka_run_group_tests_name("net", tests, setup, NULL);
}
