/*
 * rpc: authenticated, framed connections, on the event loop and blocking.
 *
 * Every dfs connection is: the auth handshake (common/auth), then frames
 * (common/wire).  This module joins the two over net (loop side) and over a
 * plain fd (tools and tests), and matches replies to requests:
 *
 *   - rpc_call() gives a request the next req_id and a callback that runs
 *     exactly once: with the reply, or with -ETIMEDOUT, or with the
 *     connection's error when it closes first.
 *   - Frames that are not replies to our calls (requests from the peer, and
 *     one-way messages such as Raft's) go to cbs->on_frame.
 *
 * Nothing is sent to the peer before it has proved the cluster key: frames
 * sent earlier wait in the connection until the handshake is done.
 * Loop side: every call on the loop thread.  Blocking side: one fd per
 * thread at a time.
 */
#ifndef DFS_RPC_H
#define DFS_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "auth.h"
#include "wire.h"

struct ev_loop;
struct net_conn;
struct net_conn_opts;
struct rpc_conn;

struct rpc_cbs {
    /* Optional: the handshake succeeded; frames flow from now on. */
    void (*on_ready)(struct rpc_conn *c);
    /* Required: a frame that is not a reply to one of our calls.  f and
     * its payload are valid only during the call (rpc_frame_take keeps
     * the payload). */
    void (*on_frame)(struct rpc_conn *c, const struct wire_frame *f);
    /* Required: called once; c is freed when it returns.  err is 0 for a
     * local close or orderly end, else negative (a refused handshake is
     * -DFS_EAUTH / -DFS_EMAGIC / -DFS_EVERSION, a broken frame stream the
     * wire error).  Calls still pending got their callback just before. */
    void (*on_close)(struct rpc_conn *c, int err);
};

/*
 * In on_frame: the payload of f as a buffer the caller owns (free()), or
 * NULL on ENOMEM.  A large payload is read into a buffer of its own, which
 * is handed over as it is; a small one is copied.
 */
uint8_t *rpc_frame_take(struct rpc_conn *c, const struct wire_frame *f);

/*
 * Reply callback.  status: the reply's status (0 or a negative error the
 * peer sent), or -ETIMEDOUT, or the connection's error (-ECONNRESET when it
 * closed cleanly).  payload is valid only during the call (NULL, 0 unless a
 * reply arrived).
 */
typedef void (*rpc_reply_fn)(void *arg, int status, const uint8_t *payload,
                             size_t len);

/*
 * Takes over a connection from net_listen's on_accept (on loop), as the
 * handshake's server side.  key, cbs are borrowed and must outlive the conn; ctx is the
 * owner's.  max_payload bounds every incoming frame.  On failure the net
 * conn is aborted.  0 or a negative errno.
 */
int rpc_accept(struct ev_loop *loop, struct net_conn *nc, const struct auth_key *key,
               const struct rpc_cbs *cbs, void *ctx, uint32_t max_payload,
               const struct net_conn_opts *opts, struct rpc_conn **out);

/*
 * Connects to host:port as the handshake's client side (host numeric, see
 * net.h).  Failures to connect arrive as on_close.  Same ownership as
 * rpc_accept.
 */
int rpc_connect(struct ev_loop *loop, const char *host, uint16_t port,
                const struct auth_key *key, const struct rpc_cbs *cbs,
                void *ctx, uint32_t max_payload,
                const struct net_conn_opts *opts, struct rpc_conn **out);

void *rpc_ctx(const struct rpc_conn *c);
void rpc_set_ctx(struct rpc_conn *c, void *ctx);
bool rpc_is_ready(const struct rpc_conn *c);
/* "host:port" of the peer, for log messages; valid while c lives. */
const char *rpc_peer(const struct rpc_conn *c);
/* The underlying connection, for flow control (pause/resume, writable). */
struct net_conn *rpc_net(struct rpc_conn *c);

/*
 * Sends one frame built from its parts (payload copied).  Use for one-way
 * messages (req_id 0) and replies.  0, or -EPIPE once closing, -ENOMEM,
 * -DFS_ETOOBIG.
 */
int rpc_send(struct rpc_conn *c, uint16_t type, uint64_t req_id,
             uint8_t flags, int32_t status, const void *payload, size_t len);

/* Replies to the request frame req with status and payload. */
int rpc_reply(struct rpc_conn *c, const struct wire_frame *req,
              int32_t status, const void *payload, size_t len);

/*
 * Sends whole frames already built in w (wire_frame_begin/end); takes
 * w's buffer (w is reset, even on failure).
 */
int rpc_send_frames(struct rpc_conn *c, struct wire_writer *w);

/*
 * Sends a request and arranges for fn(arg, ...) once, as described above
 * (fn NULL: the answer is not wanted).  timeout_ms 0: no timeout.  On a
 * non-zero return fn is not called.
 */
int rpc_call(struct rpc_conn *c, uint16_t type, const void *payload,
             size_t len, uint32_t timeout_ms, rpc_reply_fn fn, void *arg);

/* Graceful close (queued frames are written first); on_close follows. */
void rpc_close(struct rpc_conn *c);

/* ---- blocking side (tools, tests) ---------------------------------------- */

/*
 * Dials host:port and runs the handshake as client, all within timeout_ms.
 * Returns a connected fd (the caller closes it) or a negative error; a
 * refusal is logged with the address.
 */
int rpc_dial(const char *host, uint16_t port, const struct auth_key *key,
             int timeout_ms);

/* A reply read by rpc_call_fd.  payload is malloc'ed, owned by the reply. */
struct rpc_reply {
    struct wire_hdr hdr;
    uint8_t *payload;
    size_t len;
};
void rpc_reply_release(struct rpc_reply *r);

/*
 * Sends one request on a blocking fd and waits for its reply (frames with
 * another req_id are skipped).  0 with *r filled (r->hdr.status holds the
 * peer's status), or a negative transport error.
 */
int rpc_call_fd(int fd, uint16_t type, const void *payload, size_t len,
                uint32_t max_payload, int timeout_ms, struct rpc_reply *r);

/*
 * The halves of a pipelined exchange whose replies the caller collects at
 * its own pace: n requests of one type with req_ids first_id.., then one
 * reply at a time (frames that are not replies are skipped).  Negative
 * transport errors; r is filled only on 0.
 */
int rpc_send_fd_many(int fd, uint16_t type, const struct iovec *payloads,
                     size_t n, uint64_t first_id, int timeout_ms);
/* One request whose payload is the concatenation of parts[0..n), n < 8,
 * written from where the parts lie (no copy of a large data section). */
int rpc_send_fd_parts(int fd, uint16_t type, const struct iovec *parts, size_t n,
                      uint64_t req_id, int timeout_ms);
int rpc_recv_reply_fd(int fd, uint32_t max_payload, int timeout_ms,
                      struct rpc_reply *r);

/*
 * The same for n requests of one type sent back to back (pipelined):
 * replies[i] answers payloads[i], whatever order they come in.  0 with
 * every reply filled, or a transport error with none (all released).
 */
int rpc_call_fd_many(int fd, uint16_t type, const struct iovec *payloads,
                     size_t n, uint32_t max_payload, int timeout_ms,
                     struct rpc_reply *replies);

#endif
