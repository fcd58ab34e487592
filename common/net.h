/*
 * net: non-blocking TCP over ev (listeners and buffered connections), plus
 * address helpers and a few blocking helpers for tools and tests.
 *
 * Threads: everything except the blocking helpers runs on the loop thread;
 * every callback runs there.
 *
 * A connection's life (struct net_conn):
 *   - accepted: net_listen's on_accept hands it over; the callback must call
 *     net_conn_start (or net_conn_abort) before returning;
 *   - connected: net_connect returns it at once; on_connect or on_close
 *     follows.  Sends before on_connect are queued and flushed on connect.
 *   - on_read(conn, data, len) gets every unconsumed byte and returns how
 *     many it consumed; the rest is offered again, with more appended, on
 *     the next read.  It is called again at once while it consumes
 *     something and bytes remain, so a framing layer may take one message
 *     per call.
 *   - on_close(conn, err) is called exactly once for every started
 *     connection, always from the loop (never from inside a net_* call),
 *     after which the conn is freed.  err: 0 for a local close or abort or
 *     an orderly end from the peer; else a negative errno (-ECONNREFUSED,
 *     -ECONNRESET, -ETIMEDOUT, -ENOBUFS: write queue over write_max) or
 *     -DFS_ETOOBIG (read_max bytes that on_read would not consume).
 *   - Until on_close, the conn pointer stays valid even after close or
 *     abort; net_* calls on a closing conn are harmless (send fails with
 *     -EPIPE).
 *
 * Back-pressure: net_conn_send always queues (up to write_max), but once
 * the queue reaches write_high net_conn_writable() turns false, and on_drain
 * is called when it falls to write_low.  A server stops reading from a
 * client whose replies pile up (net_conn_pause_read) and resumes on drain.
 *
 * Teardown: close or abort every conn and let the loop run until each
 * on_close has been called (ev_loop_free runs the pending ones), free the
 * listeners, then free the loop.
 *
 * Sockets are CLOEXEC, TCP_NODELAY, SO_KEEPALIVE (probing after 60 s idle),
 * and written with MSG_NOSIGNAL: no SIGPIPE.
 *
 * Host names: numeric IPv4/IPv6 addresses resolve without blocking; any
 * other name goes through getaddrinfo, which may block on DNS, so loop code
 * should be given numeric addresses (or resolve names at startup).
 * net_listen and net_connect use the first address a name resolves to;
 * net_dial tries each in turn.
 */
#ifndef DFS_NET_H
#define DFS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct ev_loop;
struct net_conn;
struct net_listener;

/* "[ffff:...:ffff]:65535" plus NUL fits. */
#define NET_ADDRSTR_MAX 56
/* Longest host accepted by net_parse_addr, plus NUL. */
#define NET_HOST_MAX 256

struct net_conn_cbs {
    /* Required.  data is valid only during the call. */
    size_t (*on_read)(struct net_conn *conn, const uint8_t *data, size_t len);
    /* Required.  The conn is freed when this returns. */
    void (*on_close)(struct net_conn *conn, int err);
    /* Optional: the write queue fell to write_low after reaching write_high. */
    void (*on_drain)(struct net_conn *conn);
    /* Optional, net_connect only: the connection is established. */
    void (*on_connect)(struct net_conn *conn);
    /* Required by net_conn_read_into: its buffer is full. */
    void (*on_filled)(struct net_conn *conn, uint8_t *buf, size_t len);
};

struct net_conn_opts {
    size_t write_high;            /* writable() false at or above this */
    size_t write_low;             /* on_drain at or below this */
    size_t write_max;             /* over this, send aborts the conn; 0: none.
                                     Must exceed the largest single send. */
    size_t read_max;              /* on_read is offered at most this much; a
                                     full buffer it cannot consume any of
                                     ends the conn (DFS_ETOOBIG), so this is
                                     at least the largest frame */
    uint32_t connect_timeout_ms;  /* 0: none */
    uint32_t close_timeout_ms;    /* graceful close gives up after; 0: none */
};

/* Defaults: 4 MiB / 1 MiB / 64 MiB write, 16 MiB read, 5 s, 5 s. */
void net_conn_opts_init(struct net_conn_opts *opts);

typedef void (*net_accept_fn)(struct net_listener *l, struct net_conn *conn,
                              void *arg);

/*
 * Listens on host:port (host NULL: every IPv4 address; port 0: a free port
 * the kernel picks) with backlog (<= 0: SOMAXCONN).  on_accept gets every
 * new connection, arg borrowed.  On success *out owns the listener (free it
 * with net_listener_free).  0 or a negative errno.
 */
int net_listen(struct ev_loop *loop, const char *host, uint16_t port,
               int backlog, net_accept_fn on_accept, void *arg,
               struct net_listener **out);

/* The bound port (the one picked, for port 0). */
uint16_t net_listener_port(const struct net_listener *l);

/*
 * Stops listening and frees l (safe inside its own on_accept).  Accepted
 * conns are not affected.  NULL is a no-op.
 */
void net_listener_free(struct net_listener *l);

/*
 * Called from on_accept: sets the callbacks (cbs borrowed: must outlive the
 * conn, a static const table is usual), the owner's ctx, and opts (copied;
 * NULL for defaults), and starts reading.  On failure (-EINVAL for bad cbs
 * or opts, -ENOMEM...) the conn is aborted and freed without on_close;
 * except that on a conn already started or ended it is -EINVAL and a no-op.
 */
int net_conn_start(struct net_conn *conn, const struct net_conn_cbs *cbs,
                   void *ctx, const struct net_conn_opts *opts);

/*
 * Starts connecting to host:port; *out is the new conn (see the life above;
 * cbs, ctx, opts as for net_conn_start).  Connection failures, even ones
 * known at once, arrive as on_close(conn, err); only bad arguments, name
 * resolution and local resource errors are returned here (and then no conn
 * is made).
 */
int net_connect(struct ev_loop *loop, const char *host, uint16_t port,
                const struct net_conn_cbs *cbs, void *ctx,
                const struct net_conn_opts *opts, struct net_conn **out);

/*
 * Copies n bytes into the write queue and writes what the socket takes now.
 * 0; -EPIPE if the conn is closing or closed; -ENOMEM (nothing queued, the
 * conn unchanged); -ENOBUFS when the queue would pass write_max (the conn
 * is aborted and on_close gets -ENOBUFS).
 */
int net_conn_send(struct net_conn *conn, const void *p, size_t n);

/* As net_conn_send for the concatenation of iov[0..iovcnt-1]. */
int net_conn_sendv(struct net_conn *conn, const struct iovec *iov, int iovcnt);

/*
 * Only from on_read: the len bytes after those on_read consumes go to
 * buf (the caller's, len > 0) instead of to on_read — what is buffered
 * already is copied, the rest read from the socket straight into it — and
 * on_filled(conn, buf, len) runs once all are there; then on_read resumes.
 * A large frame's payload so lands where its consumer keeps it, with no
 * copy (the caller allocates it as it sees the length: read_max does not
 * bound it).  If the conn closes first, on_close runs and buf is still
 * the caller's.  0, or -EINVAL (outside on_read, no on_filled, len 0, a
 * target set already).
 */
int net_conn_read_into(struct net_conn *conn, uint8_t *buf, size_t len);

/*
 * Queues a malloc'ed buffer without copying; the conn owns buf from the
 * call on (freed with free() once written or when the conn ends, and at
 * once if this fails).  Same results as net_conn_send.
 */
int net_conn_send_owned(struct net_conn *conn, void *buf, size_t n);

/*
 * False from the moment the write queue reaches write_high until on_drain
 * (queue down to write_low), and once the conn is closing.
 */
bool net_conn_writable(const struct net_conn *conn);

/* Bytes queued and not yet taken by the kernel. */
size_t net_conn_write_queued(const struct net_conn *conn);

/*
 * Stops / restarts reading from the socket.  Bytes already buffered are
 * offered to on_read again after a resume (from the loop, not from inside
 * net_conn_resume_read).
 */
void net_conn_pause_read(struct net_conn *conn);
void net_conn_resume_read(struct net_conn *conn);

/*
 * Graceful close: stops delivering reads, writes everything queued, shuts
 * the write side down and waits (up to close_timeout_ms) for the peer to
 * close, then on_close(conn, 0), or -ETIMEDOUT if the queue could not be
 * written in time.  A conn still connecting is aborted.
 */
void net_conn_close(struct net_conn *conn);

/* Closes now, dropping queued bytes; on_close(conn, 0) follows. */
void net_conn_abort(struct net_conn *conn);

/* "127.0.0.1:54321" or "[::1]:54321"; valid as long as the conn. */
const char *net_conn_peer(const struct net_conn *conn);

/* The ctx given to net_conn_start / net_connect. */
void *net_conn_ctx(const struct net_conn *conn);

/* ---- addresses ---------------------------------------------------------- */

/*
 * Splits "host:port", "[v6addr]:port" into host (brackets removed; at most
 * host_size - 1 bytes) and port.  An IPv6 address must be bracketed.
 * 0 or -EINVAL (-ENAMETOOLONG if host does not fit).
 */
int net_parse_addr(const char *s, char *host, size_t host_size, uint16_t *port);

/* The address of the abstract unix socket name (given without the
 * leading NUL): its length for bind/connect, or 0 when name does not fit.
 * The name lives in the network namespace, not the file system. */
struct sockaddr_un;
socklen_t net_abstract_addr(const char *name, struct sockaddr_un *sa);

/* Formats sa as net_conn_peer does; returns buf. */
char *net_format_addr(const struct sockaddr *sa, char *buf, size_t size);

/* ---- blocking helpers (any thread; timeout_ms < 0: no timeout) ---------- */

/*
 * Connects to host:port, trying each resolved address, within timeout_ms.
 * Returns a connected, blocking, CLOEXEC, TCP_NODELAY fd (the caller closes
 * it), or -ETIMEDOUT, -ECONNREFUSED, ... (-EHOSTUNREACH if host does not
 * resolve).
 */
int net_dial(const char *host, uint16_t port, int timeout_ms);

/* Writes all n bytes to socket fd within timeout_ms: 0 or a negative errno. */
int net_write_all(int fd, const void *p, size_t n, int timeout_ms);
/* The same for the bytes of iov[0..n), in order (iov is not changed). */
int net_writev_all(int fd, const struct iovec *iov, size_t n, int timeout_ms);

/*
 * Reads exactly n bytes from socket fd within timeout_ms: 0, -ETIMEDOUT,
 * -DFS_ETRUNC if the peer closed first, or a negative errno.
 */
int net_read_full(int fd, void *p, size_t n, int timeout_ms);

#endif
