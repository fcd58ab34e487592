/*
 * Tests of rpc: handshake then frames over real sockets on 127.0.0.1.
 * The server is an echo: it replies to every request with its payload,
 * except type ECHO_SILENT, which it never answers; type TAKE echoes from
 * the payload it took (rpc_frame_take).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/net.h"
#include "common/rpc.h"

enum { ECHO = 7, ECHO_SILENT = 8, ONE_WAY = 9, TAKE = 10 };

struct server {
    struct ev_loop *loop;
    struct net_listener *l;
    struct auth_key key;
    int closes;
    int close_err;
    int one_way_seen;
};

static void srv_on_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    struct server *s = rpc_ctx(c);
    if (f->hdr.type == ONE_WAY) {
        s->one_way_seen++;
        return;
    }
    if (f->hdr.type == ECHO)
        rpc_reply(c, f, 0, f->payload, f->hdr.payload_len);
    if (f->hdr.type == TAKE) {
        uint8_t *b = rpc_frame_take(c, f);
        assert_non_null(b);
        rpc_reply(c, f, 0, b, f->hdr.payload_len);
        free(b);
    }
}

static void srv_on_close(struct rpc_conn *c, int err)
{
    struct server *s = rpc_ctx(c);
    s->closes++;
    s->close_err = err;
}

static const struct rpc_cbs srv_cbs = { .on_frame = srv_on_frame,
                                        .on_close = srv_on_close };

static void srv_accept(struct net_listener *l, struct net_conn *nc, void *arg)
{
    (void)l;
    struct server *s = arg;
    struct rpc_conn *c;
    rpc_accept(s->loop, nc, &s->key, &srv_cbs, s, 0, NULL, &c);
}

static void server_start(struct server *s, struct ev_loop *loop, unsigned char fill)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    memset(s->key.bytes, fill, sizeof(s->key.bytes));
    assert_int_equal(net_listen(loop, "127.0.0.1", 0, 0, srv_accept, s, &s->l), 0);
}

struct client {
    int ready;
    int closed;
    int close_err;
    int replies;
    int last_status;
    char last[64];
};

static void cli_on_ready(struct rpc_conn *c)
{
    ((struct client *)rpc_ctx(c))->ready = 1;
}

static void cli_on_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    (void)c;
    (void)f;
    fail_msg("client got an unexpected frame");
}

static void cli_on_close(struct rpc_conn *c, int err)
{
    struct client *cl = rpc_ctx(c);
    cl->closed = 1;
    cl->close_err = err;
}

static const struct rpc_cbs cli_cbs = { .on_ready = cli_on_ready,
                                        .on_frame = cli_on_frame,
                                        .on_close = cli_on_close };

static void cli_reply(void *arg, int status, const uint8_t *p, size_t len)
{
    struct client *cl = arg;
    cl->replies++;
    cl->last_status = status;
    memset(cl->last, 0, sizeof(cl->last));
    if (p && len < sizeof(cl->last))
        memcpy(cl->last, p, len);
}

static void run_until(struct ev_loop *loop, const int *flag, int want)
{
    for (int i = 0; i < 500 && *flag < want; i++)
        ev_run_once(loop, 10);
    assert_true(*flag >= want);
}

static void test_calls_before_and_after_handshake(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct server s;
    server_start(&s, loop, 0x11);

    struct client cl = { 0 };
    struct rpc_conn *c;
    assert_int_equal(rpc_connect(loop, "127.0.0.1", net_listener_port(s.l), &s.key,
                                 &cli_cbs, &cl, 0, NULL, &c), 0);
    /* Sent before the handshake: held, then delivered in order. */
    assert_int_equal(rpc_call(c, ECHO, "first", 5, 2000, cli_reply, &cl), 0);
    assert_int_equal(rpc_send(c, ONE_WAY, 0, 0, 0, NULL, 0), 0);
    run_until(loop, &cl.replies, 1);
    assert_true(cl.ready);
    assert_int_equal(cl.last_status, 0);
    assert_string_equal(cl.last, "first");
    assert_int_equal(s.one_way_seen, 1);

    assert_int_equal(rpc_call(c, ECHO, "second", 6, 2000, cli_reply, &cl), 0);
    run_until(loop, &cl.replies, 2);
    assert_string_equal(cl.last, "second");

    rpc_close(c);
    run_until(loop, &cl.closed, 1);
    run_until(loop, &s.closes, 1);
    assert_int_equal(cl.close_err, 0);
    net_listener_free(s.l);
    ev_loop_free(loop);
}

static void test_wrong_key_refused_on_both_sides(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct server s;
    server_start(&s, loop, 0x11);
    struct auth_key wrong;
    memset(wrong.bytes, 0x22, sizeof(wrong.bytes));

    struct client cl = { 0 };
    struct rpc_conn *c;
    assert_int_equal(rpc_connect(loop, "127.0.0.1", net_listener_port(s.l), &wrong,
                                 &cli_cbs, &cl, 0, NULL, &c), 0);
    assert_int_equal(rpc_call(c, ECHO, "secret", 6, 2000, cli_reply, &cl), 0);
    run_until(loop, &cl.closed, 1);
    run_until(loop, &s.closes, 1);
    assert_false(cl.ready);
    assert_int_equal(cl.close_err, -DFS_EAUTH);
    assert_int_equal(s.close_err, -DFS_EAUTH);
    /* The pending call failed with the connection's error, never answered. */
    assert_int_equal(cl.replies, 1);
    assert_int_equal(cl.last_status, -DFS_EAUTH);
    net_listener_free(s.l);
    ev_loop_free(loop);
}

static void test_call_timeout_then_close_fails_pending(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct server s;
    server_start(&s, loop, 0x33);
    struct client cl = { 0 };
    struct rpc_conn *c;
    assert_int_equal(rpc_connect(loop, "127.0.0.1", net_listener_port(s.l), &s.key,
                                 &cli_cbs, &cl, 0, NULL, &c), 0);
    assert_int_equal(rpc_call(c, ECHO_SILENT, "x", 1, 50, cli_reply, &cl), 0);
    run_until(loop, &cl.replies, 1);
    assert_int_equal(cl.last_status, -ETIMEDOUT);

    assert_int_equal(rpc_call(c, ECHO_SILENT, "y", 1, 0, cli_reply, &cl), 0);
    rpc_close(c);
    run_until(loop, &cl.closed, 1);
    assert_int_equal(cl.replies, 2);
    assert_int_equal(cl.last_status, -ECONNRESET);
    net_listener_free(s.l);
    ev_loop_free(loop);
}

static void test_garbage_after_handshake_closes_only_that_conn(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct server s;
    server_start(&s, loop, 0x44);

    struct client good = { 0 };
    struct rpc_conn *gc;
    assert_int_equal(rpc_connect(loop, "127.0.0.1", net_listener_port(s.l), &s.key,
                                 &cli_cbs, &good, 0, NULL, &gc), 0);
    run_until(loop, &good.ready, 1);

    struct client bad = { 0 };
    struct rpc_conn *bc;
    assert_int_equal(rpc_connect(loop, "127.0.0.1", net_listener_port(s.l), &s.key,
                                 &cli_cbs, &bad, 0, NULL, &bc), 0);
    run_until(loop, &bad.ready, 1);
    /* Not a frame: the server drops this connection and keeps the other. */
    assert_int_equal(net_conn_send(rpc_net(bc), "GET / HTTP/1.0\r\n\r\n", 18), 0);
    run_until(loop, &bad.closed, 1);
    assert_int_equal(s.closes, 1);
    assert_int_equal(s.close_err, 0);

    assert_int_equal(rpc_call(gc, ECHO, "alive", 5, 2000, cli_reply, &good), 0);
    run_until(loop, &good.replies, 1);
    assert_string_equal(good.last, "alive");
    rpc_close(gc);
    run_until(loop, &good.closed, 1);
    net_listener_free(s.l);
    ev_loop_free(loop);
}

/* A peer that connects and never speaks is dropped after the handshake
 * timeout, so it cannot hold a descriptor for ever. */
static void test_silent_peer_dropped(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct server s;
    server_start(&s, loop, 0x77);
    int fd = net_dial("127.0.0.1", net_listener_port(s.l), 2000);
    assert_true(fd >= 0);
    for (int i = 0; i < 800 && s.closes == 0; i++)
        ev_run_once(loop, 10);
    assert_int_equal(s.closes, 1);
    close(fd);
    net_listener_free(s.l);
    ev_loop_free(loop);
}

struct loop_thread {
    struct ev_loop *loop;
    volatile int stop;
};

static void *loop_main(void *arg)
{
    struct loop_thread *t = arg;
    while (!t->stop)
        ev_run_once(t->loop, 10);
    return NULL;
}

/* Stops the thread running the server's loop, then frees both. */
static void loop_thread_stop(struct loop_thread *t, pthread_t th, struct server *s)
{
    t->stop = 1;
    pthread_join(th, NULL);
    for (int i = 0; i < 20; i++)
        ev_run_once(t->loop, 5);
    net_listener_free(s->l);
    ev_loop_free(t->loop);
}

static void test_blocking_client(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct server s;
    server_start(&s, loop, 0x55);
    uint16_t port = net_listener_port(s.l);
    struct loop_thread t = { .loop = loop };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, loop_main, &t), 0);

    int fd = rpc_dial("127.0.0.1", port, &s.key, 2000);
    assert_true(fd >= 0);
    struct rpc_reply r;
    assert_int_equal(rpc_call_fd(fd, ECHO, "blocking", 8, 0, 2000, &r), 0);
    assert_int_equal(r.hdr.status, 0);
    assert_int_equal(r.len, 8);
    assert_memory_equal(r.payload, "blocking", 8);
    rpc_reply_release(&r);
    assert_int_equal(rpc_call_fd(fd, ECHO_SILENT, "x", 1, 0, 100, &r), -ETIMEDOUT);
    close(fd);

    struct auth_key wrong;
    memset(wrong.bytes, 0x66, sizeof(wrong.bytes));
    assert_int_equal(rpc_dial("127.0.0.1", port, &wrong, 2000), -DFS_EAUTH);

    loop_thread_stop(&t, th, &s);
}

/* Frames around the size from which a payload is read into its own
 * buffer, sent back to back so that one's end and the next one's start
 * share a read: each comes back whole, taken or not. */
static void test_large_frames_back_to_back(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct server s;
    server_start(&s, loop, 0x57);
    struct loop_thread t = { .loop = loop };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, loop_main, &t), 0);
    int fd = rpc_dial("127.0.0.1", net_listener_port(s.l), &s.key, 2000);
    assert_true(fd >= 0);

    static const size_t sizes[] = { 5, 200000, (1u << 20) + 3, 17, 131072,
                                    131071, 0, 4u << 20, 1 };
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    uint8_t *bufs[N];
    for (size_t round = 0; round < 2; round++) {
        struct iovec iov[N];
        for (size_t i = 0; i < N; i++) {
            bufs[i] = malloc(sizes[i] + 1);
            for (size_t k = 0; k < sizes[i]; k++)
                bufs[i][k] = (uint8_t)(k * 31 + i + round);
            iov[i] = (struct iovec){ bufs[i], sizes[i] };
        }
        uint16_t type = round ? TAKE : ECHO;
        assert_int_equal(rpc_send_fd_many(fd, type, iov, N, 100, 5000), 0);
        for (size_t i = 0; i < N; i++) {
            struct rpc_reply r;
            assert_int_equal(rpc_recv_reply_fd(fd, 0, 5000, &r), 0);
            assert_int_equal(r.hdr.req_id, 100 + i);
            assert_int_equal(r.len, sizes[i]);
            if (sizes[i])
                assert_memory_equal(r.payload, bufs[i], sizes[i]);
            rpc_reply_release(&r);
            free(bufs[i]);
        }
    }
    /* A large payload whose sender stops halfway: the server drops the
     * conn cleanly when the client goes, with the buffer freed. */
    uint8_t hdr[WIRE_HDR_SIZE];
    struct wire_hdr h = { .type = ECHO, .req_id = 1, .payload_len = 1u << 20 };
    wire_hdr_encode(&h, hdr);
    assert_int_equal(net_write_all(fd, hdr, sizeof(hdr), 2000), 0);
    uint8_t half[4096] = { 0 };
    assert_int_equal(net_write_all(fd, half, sizeof(half), 2000), 0);
    close(fd);
    for (int i = 0; i < 200 && __atomic_load_n(&s.closes, __ATOMIC_ACQUIRE) < 1; i++)
        usleep(5000);
    assert_int_equal(s.closes, 1);

    loop_thread_stop(&t, th, &s);
}

int main(void)
{
    log_init("test_rpc", LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_before_and_after_handshake),
        cmocka_unit_test(test_wrong_key_refused_on_both_sides),
        cmocka_unit_test(test_call_timeout_then_close_fails_pending),
        cmocka_unit_test(test_garbage_after_handshake_closes_only_that_conn),
        cmocka_unit_test(test_blocking_client),
        cmocka_unit_test(test_large_frames_back_to_back),
        cmocka_unit_test(test_silent_peer_dropped),
    };
    return cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
}
