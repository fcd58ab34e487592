/*
 * Tests of httpd over real sockets on 127.0.0.1: routes, status codes,
 * headers, bounds, publishing while serving, and start errors.
 *
 * The randomized publish-while-reading test prints its seed; replay with
 * DFS_TEST_SEED=<seed>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "master/httpd.h"
#include "master/status.h"

/* ---- a tiny blocking HTTP/1.1 client ------------------------------------- */

struct reply {
    int status;                      /* 0: no status line came back */
    char *head;                      /* status line and headers */
    char *body;
    size_t body_len;
};

static int connect_local(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    /* a hang guard only: no test outcome depends on it */
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Sends raw request bytes, reads until the server closes. */
static struct reply http_raw(uint16_t port, const char *req, size_t req_len)
{
    int fd = connect_local(port);
    size_t off = 0;
    while (off < req_len) {
        ssize_t n = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;                   /* the server may hang up early */
        off += (size_t)n;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);

    struct reply r = {0};
    char *end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1) {
        r.status = 0;
        r.head = buf;
        r.body = strdup("");
        return r;
    }
    *end = '\0';
    r.head = buf;
    r.body_len = len - (size_t)(end + 4 - buf);
    r.body = malloc(r.body_len + 1);
    assert_non_null(r.body);
    memcpy(r.body, end + 4, r.body_len);
    r.body[r.body_len] = '\0';
    return r;
}

static struct reply http(uint16_t port, const char *method, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\n"
                     "Connection: close\r\n\r\n", method, path);
    return http_raw(port, req, (size_t)n);
}

static void reply_free(struct reply *r)
{
    free(r->head);
    free(r->body);
}

static bool has_header(const struct reply *r, const char *line)
{
    return strcasestr(r->head, line) != NULL;
}

/* ---- fixtures ------------------------------------------------------------ */

/* A small snapshot whose cluster name and term both carry gen. */
static struct status_snap *snap_gen(unsigned gen)
{
    struct status_snap *s = status_snap_new(1, 1);
    assert_non_null(s);
    snprintf(s->cluster, sizeof(s->cluster), "gen-%u", gen);
    s->term = gen;
    s->self_id = 1;
    s->leader_id = 1;
    s->role = STATUS_ROLE_LEADER;
    s->masters[0] = (struct status_master){.id = 1, .self = true,
                                           .role = STATUS_ROLE_LEADER};
    snprintf(s->masters[0].address, sizeof(s->masters[0].address),
             "127.0.0.1:1");
    s->chunkservers[0] = (struct status_chunkserver){.id = 1,
                                                     .bytes_total = 100};
    snprintf(s->chunkservers[0].rack, sizeof(s->chunkservers[0].rack),
             "<b>rack</b>");
    return s;
}

static int setup(void **state)
{
    struct httpd *h;
    int rc = httpd_start("127.0.0.1", 0, NULL, &h);
    if (rc)
        return -1;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    httpd_stop(*state);
    return 0;
}

/* ---- routes -------------------------------------------------------------- */

static void test_unpublished_is_503(void **state)
{
    struct httpd *h = *state;
    assert_true(httpd_port(h) > 0);
    struct reply r = http(httpd_port(h), "GET", "/api/status");
    assert_int_equal(r.status, 503);
    reply_free(&r);
}

static void test_routes(void **state)
{
    struct httpd *h = *state;
    uint16_t port = httpd_port(h);
    httpd_publish(h, snap_gen(1));

    struct reply r = http(port, "GET", "/");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: text/html"));
    assert_true(has_header(&r, "Content-Security-Policy: default-src 'none'"));
    assert_true(has_header(&r, "Cache-Control: no-store"));
    assert_non_null(strstr(r.body, "<!DOCTYPE html>"));
    assert_non_null(strstr(r.body, "gen-1"));
    assert_non_null(strstr(r.body, "&lt;b&gt;rack&lt;/b&gt;"));
    assert_non_null(strstr(r.body, "http-equiv=\"refresh\" content=\"5\""));
    reply_free(&r);

    r = http(port, "GET", "/api/status?pretty=1");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/json"));
    assert_non_null(strstr(r.body, "\"cluster\":\"gen-1\""));
    assert_non_null(strstr(r.body, "\"role\":\"leader\""));
    assert_int_equal(r.body[0], '{');
    reply_free(&r);

    r = http(port, "GET", "/metrics");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "\ndfs_raft_term 1\n"));
    reply_free(&r);

    const char *missing[] = {"/nope", "/api/status/", "/metrics/x",
                             "/../etc/passwd", "/index.html"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        r = http(port, "GET", missing[i]);
        assert_int_equal(r.status, 404);
        reply_free(&r);
    }
}

static void test_head_has_no_body(void **state)
{
    struct httpd *h = *state;
    httpd_publish(h, snap_gen(2));
    struct reply r = http(httpd_port(h), "HEAD", "/metrics");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    reply_free(&r);
}

static void test_other_methods_405(void **state)
{
    struct httpd *h = *state;
    httpd_publish(h, snap_gen(3));
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct reply r = http(httpd_port(h), methods[i], "/api/status");
        assert_int_equal(r.status, 405);
        assert_true(has_header(&r, "Allow: GET, HEAD"));
        reply_free(&r);
    }
    /* a POST with a body is refused without the body being read */
    const char post[] = "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Content-Length: 5\r\n\r\nhello";
    struct reply r = http_raw(httpd_port(h), post, sizeof(post) - 1);
    assert_int_equal(r.status, 405);
    reply_free(&r);
}

static void test_oversized_request_rejected(void **state)
{
    struct httpd *h = *state;
    httpd_publish(h, snap_gen(4));
    size_t pad = 64 * 1024;
    char *req = malloc(pad + 256);
    assert_non_null(req);
    int n = snprintf(req, 256, "GET /api/status HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\nX-Pad: ");
    memset(req + n, 'a', pad);
    memcpy(req + n + pad, "\r\n\r\n", 4);
    struct reply r = http_raw(httpd_port(h), req, (size_t)n + pad + 4);
    /* 431 (or a closed connection): never the status */
    assert_int_not_equal(r.status, 200);
    assert_null(strstr(r.body, "gen-4"));
    if (r.status)
        assert_true(r.status >= 400 && r.status < 500);
    reply_free(&r);
    free(req);

    /* the server still answers afterwards */
    r = http(httpd_port(h), "GET", "/api/status");
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

static void test_publish_replaces(void **state)
{
    struct httpd *h = *state;
    httpd_publish(h, snap_gen(10));
    struct reply r = http(httpd_port(h), "GET", "/api/status");
    assert_non_null(strstr(r.body, "\"cluster\":\"gen-10\""));
    reply_free(&r);
    httpd_publish(h, snap_gen(11));
    r = http(httpd_port(h), "GET", "/api/status");
    assert_non_null(strstr(r.body, "\"cluster\":\"gen-11\""));
    assert_null(strstr(r.body, "gen-10"));
    reply_free(&r);
    httpd_publish(h, NULL);
    r = http(httpd_port(h), "GET", "/");
    assert_int_equal(r.status, 503);
    reply_free(&r);
}

/* ---- publishing while serving -------------------------------------------- */

struct publisher {
    struct httpd *h;
    atomic_bool stop;
    unsigned published;
};

static void *publish_loop(void *arg)
{
    struct publisher *p = arg;
    while (!atomic_load(&p->stop)) {
        p->published++;
        httpd_publish(p->h, snap_gen(p->published));
    }
    return NULL;
}

static uint64_t seed_from_env(void)
{
    const char *s = getenv("DFS_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    printf("test_httpd: seed %" PRIu64 " (replay with DFS_TEST_SEED=%" PRIu64
           ")\n", seed, seed);
    return seed;
}

/* "1,234" -> 1234, as the page prints counts */
static unsigned parse_grouped(const char *s)
{
    unsigned v = 0;
    for (; (*s >= '0' && *s <= '9') || *s == ','; s++)
        if (*s != ',')
            v = v * 10 + (unsigned)(*s - '0');
    return v;
}

/* Every response is one snapshot, whole: its name and term agree. */
static void test_publish_while_serving(void **state)
{
    struct httpd *h = *state;
    static const char *const paths[] = {"/", "/api/status", "/metrics"};
    uint64_t seed = seed_from_env();
    struct publisher p = {.h = h};
    atomic_init(&p.stop, false);
    httpd_publish(h, snap_gen(0));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, publish_loop, &p), 0);
    for (int i = 0; i < 200; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const char *path = paths[(seed >> 33) % 3];
        struct reply r = http(httpd_port(h), "GET", path);
        assert_int_equal(r.status, 200);
        unsigned gen, term;
        if (path[1] == 'a') {
            const char *c = strstr(r.body, "\"cluster\":\"gen-");
            const char *tm = strstr(r.body, "\"term\":");
            assert_non_null(c);
            assert_non_null(tm);
            assert_int_equal(sscanf(c, "\"cluster\":\"gen-%u", &gen), 1);
            assert_int_equal(sscanf(tm, "\"term\":%u", &term), 1);
        } else if (path[1] == 'm') {
            const char *c = strstr(r.body, "cluster=\"gen-");
            const char *tm = strstr(r.body, "\ndfs_raft_term ");
            assert_non_null(c);
            assert_non_null(tm);
            assert_int_equal(sscanf(c, "cluster=\"gen-%u", &gen), 1);
            assert_int_equal(sscanf(tm, "\ndfs_raft_term %u", &term), 1);
        } else {
            const char *c = strstr(r.body, "<title>gen-");
            const char *tm = strstr(r.body, "term <b>");
            assert_non_null(c);
            assert_non_null(tm);
            assert_int_equal(sscanf(c, "<title>gen-%u", &gen), 1);
            term = parse_grouped(tm + strlen("term <b>"));
        }
        assert_int_equal(gen, term);
        reply_free(&r);
    }
    atomic_store(&p.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(p.published > 0);
}

/* ---- start errors and limits --------------------------------------------- */

static void test_start_errors(void **state)
{
    struct httpd *h = *state;
    struct httpd *other = NULL;
    assert_int_equal(httpd_start("127.0.0.1", httpd_port(h), NULL, &other),
                     -EADDRINUSE);
    assert_int_equal(httpd_start("not a host name", 0, NULL, &other), -EINVAL);
    /* an address this machine does not have */
    assert_int_equal(httpd_start("192.0.2.1", 0, NULL, &other),
                     -EADDRNOTAVAIL);
    assert_null(other);
    httpd_stop(NULL);
}

/* A response over max_response_bytes is a 500, not a truncated page. */
static void test_response_bound(void **state)
{
    (void)state;
    struct httpd_opts o;
    httpd_opts_init(&o);
    o.max_response_bytes = 512;
    o.refresh_seconds = 0;
    struct httpd *h;
    assert_int_equal(httpd_start("localhost", 0, &o, &h), 0);
    httpd_publish(h, snap_gen(7));
    struct reply r = http(httpd_port(h), "GET", "/");
    assert_int_equal(r.status, 500);
    assert_null(strstr(r.body, "gen-7"));
    reply_free(&r);
    /* stopping with a snapshot published frees it (ASan checks) */
    httpd_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unpublished_is_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_has_no_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_methods_405, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_oversized_request_rejected,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_replaces, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_while_serving, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test(test_response_bound),
    };
    return cmocka_run_group_tests_name("httpd", tests, NULL, NULL);
}
