/*
 * httpd: the master's read-only HTTP server (GNU libmicrohttpd) for the
 * status page, /api/status and /metrics.
 *
 *   GET /             the HTML status page          text/html
 *   GET /api/status   the same data as JSON         application/json
 *   GET /metrics      Prometheus text format 0.0.4  text/plain
 *
 * HEAD works like GET without the body; other methods get 405, other paths
 * 404, and 503 until the first snapshot is published.  Requests are
 * bounded (header bytes, connections, idle time: struct httpd_opts).
 *
 * Threads: the server runs on its own thread.  httpd_publish is called by
 * the master's event loop thread (any one thread at a time); it never
 * waits for a request being served: it swaps a pointer under a mutex held
 * for a few instructions.  A request renders the snapshot that was current
 * when it arrived, whole, even if a newer one is published meanwhile.
 */
#ifndef DFS_HTTPD_H
#define DFS_HTTPD_H

#include <stddef.h>
#include <stdint.h>

struct httpd;
struct status_snap;

struct httpd_opts {
    unsigned max_connections;     /* open at once; more are refused */
    unsigned timeout_seconds;     /* an idle connection is closed */
    size_t max_request_bytes;     /* request line + headers; over: 431 */
    size_t max_response_bytes;    /* a render past this answers 500 */
    int refresh_seconds;          /* status page self-refresh, 0: none */
};

/* The defaults: 64 connections, 10 s, 16 KiB requests, 64 MiB, 5 s. */
void httpd_opts_init(struct httpd_opts *opts);

/*
 * Listens on host:port (host a name or a numeric address; port 0 picks a
 * free one, see httpd_port) and starts serving.  opts may be NULL for the
 * defaults; it is copied.  Returns 0 and sets *out, or a negative errno
 * (-EADDRINUSE, -EADDRNOTAVAIL, -EINVAL for a bad host, -ENOMEM...).
 */
int httpd_start(const char *host, uint16_t port, const struct httpd_opts *opts,
                struct httpd **out);

/* The port it listens on. */
uint16_t httpd_port(const struct httpd *h);

/*
 * Makes snap the one served from now on.  Takes ownership of snap (it must
 * not be changed or freed by the caller afterwards; the server frees it
 * when the last request using it is done and a newer one is published).
 * snap NULL unpublishes (503 again).
 */
void httpd_publish(struct httpd *h, struct status_snap *snap);

/*
 * Stops the server: closes the listening socket and every connection,
 * joins its thread, frees the published snapshot.  NULL is a no-op.
 */
void httpd_stop(struct httpd *h);

#endif
