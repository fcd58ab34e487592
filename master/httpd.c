/*
 * httpd: libmicrohttpd with one internal thread, serving renderings of the
 * latest published status snapshot.
 *
 * Owns: the listening socket (handed to MHD, which closes it on stop), the
 * MHD daemon, and a reference to the current snapshot.
 *
 * Invariants:
 *  1. `current` is NULL or a snapref with refs >= 1 (the reference held by
 *     `current` itself); each request in flight holds one more.  The last
 *     unref frees the snapref and its snapshot, on whichever thread that
 *     happens to be.
 *  2. A snapshot is immutable once published, so a request reads it with
 *     no lock held; the mutex only guards the pointer swap and the ref
 *     taken by a request, so publishing never waits for a render.
 *  3. Every response is answered on the first call of the access handler:
 *     request bodies are never read (nothing accepts one), which bounds a
 *     request to its header bytes (MHD's connection memory limit).
 *
 * Locks: h->mu protects h->current.  Nothing else is taken while it is held.
 */
#include "httpd.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/dfs_error.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "master/status.h"

#define HTTPD_LISTEN_BACKLOG 64

struct httpd_snapref {
    atomic_int refs;
    struct status_snap *snap;          /* owned */
};

struct httpd {
    struct MHD_Daemon *mhd;
    struct httpd_opts opts;
    uint16_t port;
    pthread_mutex_t mu;
    struct httpd_snapref *current;     /* protected by mu */
};

void httpd_opts_init(struct httpd_opts *opts)
{
    opts->max_connections = 64;
    opts->timeout_seconds = 10;
    opts->max_request_bytes = 16 * 1024;
    opts->max_response_bytes = 64 * 1024 * 1024;
    opts->refresh_seconds = 5;
}

/* ---- snapshot references ------------------------------------------------ */

static void snapref_put(struct httpd_snapref *ref)
{
    if (!ref || atomic_fetch_sub(&ref->refs, 1) != 1)
        return;
    status_snap_free(ref->snap);
    free(ref);
}

static struct httpd_snapref *snapref_get_current(struct httpd *h)
{
    pthread_mutex_lock(&h->mu);
    struct httpd_snapref *ref = h->current;
    if (ref)
        atomic_fetch_add(&ref->refs, 1);
    pthread_mutex_unlock(&h->mu);
    return ref;
}

static void httpd_swap(struct httpd *h, struct httpd_snapref *ref)
{
    pthread_mutex_lock(&h->mu);
    struct httpd_snapref *old = h->current;
    h->current = ref;
    pthread_mutex_unlock(&h->mu);
    snapref_put(old);
}

void httpd_publish(struct httpd *h, struct status_snap *snap)
{
    struct httpd_snapref *ref = NULL;
    if (snap) {
        ref = malloc(sizeof(*ref));
        if (!ref) {
            /* keep serving the older snapshot rather than none */
            log_warn("httpd: out of memory publishing a status snapshot");
            status_snap_free(snap);
            return;
        }
        atomic_init(&ref->refs, 1);
        ref->snap = snap;
    }
    httpd_swap(h, ref);
}

/* ---- requests ----------------------------------------------------------- */

enum httpd_page { PAGE_HTML, PAGE_JSON, PAGE_METRICS, PAGE_NONE };

static enum httpd_page httpd_route(const char *url)
{
    if (strcmp(url, "/") == 0)
        return PAGE_HTML;
    if (strcmp(url, "/api/status") == 0)
        return PAGE_JSON;
    if (strcmp(url, "/metrics") == 0)
        return PAGE_METRICS;
    return PAGE_NONE;
}

static const char *const page_type[] = {
    [PAGE_HTML] = "text/html; charset=utf-8",
    [PAGE_JSON] = "application/json",
    [PAGE_METRICS] = "text/plain; version=0.0.4; charset=utf-8",
    [PAGE_NONE] = "text/plain; charset=utf-8",
};

/* Queues a response owning body (malloc'ed, freed by MHD). */
static enum MHD_Result httpd_reply(struct MHD_Connection *conn,
                                   unsigned status, enum httpd_page page,
                                   char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            page_type[page]);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* the page loads nothing and runs nothing, whatever a label says */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; "
                            "img-src data:; frame-ancestors 'none'");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result httpd_reply_text(struct MHD_Connection *conn,
                                        unsigned status, const char *text)
{
    char *body = strdup(text);
    if (!body)
        return MHD_NO;
    return httpd_reply(conn, status, PAGE_NONE, body, strlen(body));
}

static int httpd_render(const struct httpd *h, enum httpd_page page,
                        const struct status_snap *snap, struct strbuf *out)
{
    switch (page) {
    case PAGE_HTML:    return status_render_html(snap, h->opts.refresh_seconds,
                                                 out);
    case PAGE_JSON:    return status_render_json(snap, out);
    case PAGE_METRICS: return status_render_metrics(snap, out);
    case PAGE_NONE:    break;
    }
    return -EINVAL;
}

static enum MHD_Result httpd_serve(struct httpd *h, struct MHD_Connection *conn,
                                   enum httpd_page page)
{
    struct httpd_snapref *ref = snapref_get_current(h);
    if (!ref)
        return httpd_reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                "dfs-master is starting: no status yet\n");
    struct strbuf sb;
    strbuf_init(&sb, h->opts.max_response_bytes);
    int rc = httpd_render(h, page, ref->snap, &sb);
    snapref_put(ref);
    size_t len = 0;
    char *body = rc ? NULL : strbuf_detach(&sb, &len);
    strbuf_release(&sb);
    if (!body) {
        log_warn("httpd: rendering failed: %s",
                 dfs_strerror(rc ? rc : -ENOMEM));
        return httpd_reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                "rendering the status failed\n");
    }
    return httpd_reply(conn, MHD_HTTP_OK, page, body, len);
}

static enum MHD_Result httpd_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    struct httpd *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return httpd_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                "read-only: GET or HEAD only\n");
    enum httpd_page page = httpd_route(url);
    if (page == PAGE_NONE)
        return httpd_reply_text(conn, MHD_HTTP_NOT_FOUND,
                                "not found: try /, /api/status or /metrics\n");
    return httpd_serve(h, conn, page);
}

static void httpd_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[256];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_warn("httpd: %s", line);
}

/* ---- start and stop ----------------------------------------------------- */

/* A listening TCP socket on host:port; returns the fd or a negative errno. */
static int httpd_listen(const char *host, uint16_t port, uint16_t *bound)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc)
        return rc == EAI_MEMORY ? -ENOMEM : rc == EAI_SYSTEM ? -errno
                                                             : -EINVAL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto err_after_getaddrinfo;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
        listen(fd, HTTPD_LISTEN_BACKLOG) < 0) {
        rc = -errno;
        goto err_after_socket;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        rc = -errno;
        goto err_after_socket;
    }
    *bound = ntohs(ss.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(res);
    return fd;

err_after_socket:
    close(fd);
err_after_getaddrinfo:
    freeaddrinfo(res);
    return rc;
}

int httpd_start(const char *host, uint16_t port, const struct httpd_opts *opts,
                struct httpd **out)
{
    struct httpd *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    if (opts)
        h->opts = *opts;
    else
        httpd_opts_init(&h->opts);
    int rc = pthread_mutex_init(&h->mu, NULL);
    if (rc) {
        rc = -rc;
        goto err_after_alloc;
    }
    int fd = httpd_listen(host, port, &h->port);
    if (fd < 0) {
        rc = fd;
        goto err_after_mutex;
    }
    h->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG,
        0, NULL, NULL, httpd_access, h,
        /* first, or MHD logs its own complaint to stderr */
        MHD_OPTION_EXTERNAL_LOGGER, httpd_mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, h->opts.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, h->opts.timeout_seconds,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->opts.max_request_bytes,
        MHD_OPTION_END);
    if (!h->mhd) {
        rc = -EIO;
        goto err_after_listen;
    }
    log_info("httpd: serving the status page on %s:%u", host, h->port);
    *out = h;
    return 0;

err_after_listen:
    close(fd);
err_after_mutex:
    pthread_mutex_destroy(&h->mu);
err_after_alloc:
    free(h);
    return rc;
}

uint16_t httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->mhd);
    httpd_swap(h, NULL);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
