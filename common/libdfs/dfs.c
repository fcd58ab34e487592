/*
 * dfs: the client library's session, leader finding, retries and the
 * namespace calls.
 *
 * Requests to the masters run on DFS_LANES connections ("lanes"), so that
 * the threads of one client (the mount's, above all) do not wait for each
 * other's Raft commits.  States of a lane's connection: none (-1) ->
 * connected to one master (dfs_connect) -> none again on any transport
 * error or NOT_LEADER.
 *
 * Invariants:
 *  1. A lane carries one exchange at a time (its mu): one request, or the
 *     n of dfs_call_in sent back to back; the keepalive thread and the
 *     release thread (dfsrel.c) take one like any caller.  Lock order: a
 *     lane's mu, then d->mu (session, sequence numbers), then the session
 *     lane (lanes[DFS_LANES], which only opens sessions), then
 *     d->lead_mu (leader hint, error message), a leaf.
 *  2. A mutation's sequence number (dfs_call_in: n consecutive ones) is
 *     taken once, before the first try, and reused on every retry, so the
 *     master applies it at most once.  Several may be in flight, spanning
 *     fewer than DFS_SEQ_SPAN numbers, so the master's exactly-once window
 *     still holds the oldest.
 *  3. A request is retried only on transport errors, NOT_LEADER and
 *     DFS_ENOTREADY, within op_timeout_ms; any other status is the answer.
 */
#include "dfs.h"
#include "dfs_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/net.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"

#define DFS_MAX_MASTERS 16
#define DFS_LEASE_MS 30000u
#define DFS_BACKOFF_MIN_MS 20
#define DFS_BACKOFF_MAX_MS 500
/* One try at one master: past this a master that stopped answering (hung,
 * cut off) is left for the next one, with the same sequence number. */
#define DFS_TRY_MS 5000
/* fsck --verify: every chunkserver re-reads its replicas first. */
#define DFS_VERIFY_MS (60 * 60 * 1000)
/* Master connections per client: requests in flight at once. */
#define DFS_LANES 4
/* Sequence numbers in flight span at most this many: the master's
 * exactly-once window (NS_DEDUP_WINDOW, 32) must still hold the oldest
 * when its retry arrives after later ones were applied. */
#define DFS_SEQ_SPAN 16

struct dfs_master {
    char host[NET_HOST_MAX];
    uint16_t port;
};

struct dfs_lane {
    pthread_mutex_t mu;
    int fd;
    struct dfs_master at;             /* where fd leads */
    uint64_t seq;                     /* the mutation in flight (d->mu), or 0 */
};

struct dfs {
    pthread_mutex_t mu;               /* session, seq, stopping */
    pthread_mutex_t lead_mu;          /* next, hint, have_hint, errmsg */
    pthread_cond_t seq_cv;            /* a lane's seq went back to 0 */
    /* lanes[DFS_LANES] opens sessions, under d->mu only */
    struct dfs_lane lanes[DFS_LANES + 1];
    atomic_uint ticket;               /* which busy lane to queue on */
    struct dfs_inodes inodes;         /* files open in the session */
    pthread_mutex_t pool_mu;          /* pool */
    struct dfs_csconn *pool;          /* idle chunkserver connections */
    struct dfs_locals *locals;        /* owned */
    struct dfs_releases *releases;    /* owned; NULL: releases go at once */
    struct auth_key key;
    struct dfs_master masters[DFS_MAX_MASTERS];
    size_t n_masters;
    size_t next;                      /* master to try next */
    struct dfs_master hint;           /* leader named by NOT_LEADER */
    bool have_hint;
    struct dfs_master leader;         /* the last master that answered */
    bool have_leader;
    int op_timeout_ms, connect_timeout_ms;
    uint32_t uid, gid;
    char client_name[PROTO_CLIENT_NAME_MAX];
    uint64_t session;
    uint32_t lease_ms;
    uint64_t chunk_size;              /* the cluster's, from SESSION_OPEN */
    uint64_t seq;                     /* last sequence number taken */
    char errmsg[512];
    /* keepalive thread */
    pthread_t keepalive;
    bool keepalive_running;
    bool stopping;
    dfs_dir_fn dir_hook;              /* set before use: dfs_on_dir_attr */
    void *dir_hook_arg;
    pthread_cond_t stop_cv;
};

/* ---- time ---------------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* ---- connection ------------------------------------------------------------- */

static void dfs_disconnect(struct dfs_lane *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

/* Connects lane l to the hinted leader, else to the next master in turn. */
static int dfs_connect(struct dfs *d, struct dfs_lane *l, int timeout_ms)
{
    pthread_mutex_lock(&d->lead_mu);
    struct dfs_master m = d->have_hint ? d->hint : d->masters[d->next];
    if (!d->have_hint)
        d->next = (d->next + 1) % d->n_masters;
    d->have_hint = false;
    pthread_mutex_unlock(&d->lead_mu);
    int fd = rpc_dial(m.host, m.port, &d->key, timeout_ms);
    if (fd < 0) {
        dfs_set_error(d, "master %s:%u: %s", m.host, m.port, dfs_strerror(fd));
        return fd;
    }
    l->fd = fd;
    l->at = m;
    return 0;
}

/* A free lane, else (all busy) one in turn, waited for. */
static struct dfs_lane *dfs_lane_take(struct dfs *d)
{
    for (size_t i = 0; i < DFS_LANES; i++) {
        if (pthread_mutex_trylock(&d->lanes[i].mu) == 0)
            return &d->lanes[i];
    }
    struct dfs_lane *l = &d->lanes[atomic_fetch_add(&d->ticket, 1) % DFS_LANES];
    pthread_mutex_lock(&l->mu);
    return l;
}

/* The oldest mutation in flight, or 0.  Caller holds d->mu. */
static uint64_t dfs_oldest_seq(const struct dfs *d)
{
    uint64_t oldest = 0;
    for (size_t i = 0; i < DFS_LANES; i++) {
        uint64_t q = d->lanes[i].seq;
        if (q && (!oldest || q < oldest))
            oldest = q;
    }
    return oldest;
}

/* n consecutive sequence numbers for mutations on lane l (l->seq the
 * first), once the ones in flight leave room (DFS_SEQ_SPAN).  Caller holds
 * d->mu; returns seq_done, the highest number below which nothing is in
 * flight. */
static uint64_t dfs_seq_take_locked(struct dfs *d, struct dfs_lane *l, size_t n)
{
    uint64_t oldest;
    while ((oldest = dfs_oldest_seq(d)) && d->seq + n - oldest >= DFS_SEQ_SPAN)
        pthread_cond_wait(&d->seq_cv, &d->mu);
    l->seq = d->seq + 1;
    d->seq += n;
    return (oldest ? oldest : l->seq) - 1;
}

static void dfs_seq_done(struct dfs *d, struct dfs_lane *l)
{
    pthread_mutex_lock(&d->mu);
    l->seq = 0;
    pthread_cond_broadcast(&d->seq_cv);
    pthread_mutex_unlock(&d->mu);
}

/* Reads NOT_LEADER's hint (leader_id u64, leader_addr str) into *m. */
static bool dfs_hint_of(const struct rpc_reply *r, struct dfs_master *m)
{
    struct wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    uint64_t id = wire_get_u64(&rd);
    char *addr = wire_get_str(&rd, PROTO_ADDR_MAX);
    bool ok = !rd.err && id && addr &&
              net_parse_addr(addr, m->host, sizeof(m->host), &m->port) == 0;
    free(addr);
    return ok;
}

/* Remembers NOT_LEADER's hint; true when there was one. */
static bool dfs_take_hint(struct dfs *d, const struct rpc_reply *r)
{
    struct dfs_master m;
    if (!dfs_hint_of(r, &m))
        return false;
    pthread_mutex_lock(&d->lead_mu);
    d->hint = m;
    d->have_hint = true;
    pthread_mutex_unlock(&d->lead_mu);
    return true;
}

/* Builds HEAD + body for a request of session. */
static int dfs_payload(struct dfs *d, uint16_t type, uint64_t session,
                       uint64_t seq, uint64_t seq_done,
                       const struct wire_writer *body, struct wire_writer *out)
{
    wire_writer_init(out);
    if (type != PROTO_SESSION_OPEN) {
        wire_put_u64(out, session);
        wire_put_u64(out, seq);
        wire_put_u64(out, seq_done);
        wire_put_u32(out, d->uid);
        wire_put_u32(out, d->gid);
        wire_put_u32(out, 0);
    }
    if (body)
        wire_put_raw(out, body->buf, body->len);
    return out->err;
}

/* The answer among r[0..n) that says to ask again (NOT_LEADER first), or
 * NULL when all are answers. */
static const struct rpc_reply *dfs_refusal(const struct rpc_reply *r, size_t n)
{
    const struct rpc_reply *again = NULL;
    for (size_t i = 0; i < n; i++) {
        if (r[i].hdr.status == -DFS_ENOTLEADER)
            return &r[i];
        if (r[i].hdr.status == -DFS_ENOTREADY)
            again = &r[i];
    }
    return again;
}

static void dfs_replies_release(struct rpc_reply *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rpc_reply_release(&r[i]);
}

/*
 * n requests (bodies[i], sequence number seq + i when seq) sent back to
 * back on lane l (held), retried together across masters until answers or
 * the deadline: the master applies each once whatever a retry repeats.
 * On 0, r[i] holds each answer (status included).
 */
static int dfs_call_lane(struct dfs *d, struct dfs_lane *l, uint16_t type,
                         uint64_t session, uint64_t seq, uint64_t seq_done,
                         const struct wire_writer *bodies, size_t n,
                         struct rpc_reply *r)
{
    struct wire_writer p[DFS_BATCH_MAX];
    struct iovec iov[DFS_BATCH_MAX];
    int rc = n >= 1 && n <= DFS_BATCH_MAX ? 0 : -EINVAL;
    size_t built = 0;
    for (; rc == 0 && built < n; built++) {
        rc = dfs_payload(d, type, session, seq ? seq + built : 0, seq_done,
                         bodies ? &bodies[built] : NULL, &p[built]);
        iov[built] = (struct iovec){ p[built].buf, p[built].len };
    }
    int64_t deadline = (int64_t)ev_clock_ms() + d->op_timeout_ms;
    int backoff = DFS_BACKOFF_MIN_MS;
    while (rc == 0) {
        int64_t left = deadline - (int64_t)ev_clock_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        int tmo = (int)(left < d->connect_timeout_ms ? left : d->connect_timeout_ms);
        if (l->fd < 0 && dfs_connect(d, l, tmo) < 0)
            goto retry;
        int try_ms = (int)(left < DFS_TRY_MS ? left : DFS_TRY_MS);
        rc = n == 1 ? rpc_call_fd(l->fd, type, p[0].buf, p[0].len, 0, try_ms, r)
                    : rpc_call_fd_many(l->fd, type, iov, n, 0, try_ms, r);
        if (rc < 0) {
            dfs_set_error(d, "master connection: %s", dfs_strerror(rc));
            dfs_disconnect(l);
            rc = 0;
            continue;   /* the next master at once: the backoff is for refusals */
        }
        const struct rpc_reply *again = dfs_refusal(r, n);
        if (again) {
            bool moved = again->hdr.status == -DFS_ENOTLEADER;
            bool hint = moved && dfs_take_hint(d, again);
            dfs_replies_release(r, n);
            if (moved)
                dfs_disconnect(l);
            if (hint)
                continue;
            goto retry;
        }
        pthread_mutex_lock(&d->lead_mu);
        d->leader = l->at;
        d->have_leader = true;
        pthread_mutex_unlock(&d->lead_mu);
        break;   /* answers */
retry:
        sleep_ms(backoff);
        backoff = backoff * 2 > DFS_BACKOFF_MAX_MS ? DFS_BACKOFF_MAX_MS : backoff * 2;
    }
    for (size_t i = 0; i < built; i++)
        wire_writer_release(&p[i]);
    return rc;
}

/* Called with d->mu held. */
static int dfs_open_session_locked(struct dfs *d)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_str(&b, d->client_name);
    wire_put_u32(&b, DFS_LEASE_MS);
    struct rpc_reply r;
    struct dfs_lane *l = &d->lanes[DFS_LANES];
    pthread_mutex_lock(&l->mu);
    int rc = dfs_call_lane(d, l, PROTO_SESSION_OPEN, 0, 0, 0, &b, 1, &r);
    pthread_mutex_unlock(&l->mu);
    wire_writer_release(&b);
    if (rc < 0)
        return rc;
    rc = r.hdr.status;
    if (rc == 0) {
        struct wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        uint64_t session = wire_get_u64(&rd);
        uint32_t lease_ms = wire_get_u32(&rd);
        /* A master from before the setting says nothing: the default. */
        uint64_t chunk_size = rd.left ? wire_get_u64(&rd) : PROTO_CHUNK_SIZE;
        rc = rd.err || chunk_size == 0 ? -EBADMSG : 0;
        if (rc == 0) {
            d->session = session;
            d->lease_ms = lease_ms;
            d->chunk_size = chunk_size;
            d->seq = 0;
        }
    }
    rpc_reply_release(&r);
    return rc;
}

int dfs_chunk_size(struct dfs *d, uint64_t *out)
{
    pthread_mutex_lock(&d->mu);
    int rc = d->chunk_size ? 0 : dfs_open_session_locked(d);
    *out = d->chunk_size;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/*
 * A request with the session: mutations take a sequence number.  A session
 * the cluster expired (a long outage) is reopened once.
 */
int dfs_call(struct dfs *d, uint16_t type, bool mutating,
             const struct wire_writer *body, struct rpc_reply *r)
{
    return dfs_call_in(d, 0, type, mutating, body, 1, r);
}

uint64_t dfs_session_id(struct dfs *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t session = d->session;
    pthread_mutex_unlock(&d->mu);
    return session;
}

int dfs_call_in(struct dfs *d, uint64_t in_session, uint16_t type, bool mutating,
                const struct wire_writer *bodies, size_t n, struct rpc_reply *r)
{
    for (int attempt = 0;; attempt++) {
        struct dfs_lane *l = dfs_lane_take(d);
        pthread_mutex_lock(&d->mu);
        /* Reads need no session: a session is a log entry, opened lazily.
         * A call bound to a session goes in that one or not at all. */
        int rc = in_session && d->session != in_session ? -DFS_ESESSION
               : (mutating || attempt) && !d->session ? dfs_open_session_locked(d) : 0;
        uint64_t session = d->session;
        uint64_t seq_done = rc == 0 && mutating ? dfs_seq_take_locked(d, l, n) : 0;
        uint64_t seq = l->seq;
        pthread_mutex_unlock(&d->mu);
        if (rc == 0)
            rc = dfs_call_lane(d, l, type, session, seq, seq_done, bodies, n, r);
        if (seq)
            dfs_seq_done(d, l);
        pthread_mutex_unlock(&l->mu);
        bool expired = false;
        for (size_t i = 0; rc == 0 && i < n; i++)
            expired |= r[i].hdr.status == -DFS_ESESSION;
        if (rc < 0 || !expired || attempt || in_session)
            return rc;
        dfs_replies_release(r, n);
        /* The cluster expired the session (a long outage): open a new one,
         * unless another thread did already. */
        pthread_mutex_lock(&d->mu);
        if (d->session == session)
            d->session = 0;
        pthread_mutex_unlock(&d->mu);
    }
}

/* What dfs_wait_try says to do next (answers and errors are <= 0). */
enum {
    DFS_WAIT_AGAIN = 1,     /* the try ran out: the same master, at once */
    DFS_WAIT_NEXT,          /* that master failed: the next, after a pause */
    DFS_WAIT_LEADER,        /* *m now names the leader: there, at once */
    DFS_WAIT_PAUSE,         /* not ready: the same master, after a pause */
};

/*
 * One try of dfs_call_wait on *fd (dialled to *m when negative), with a
 * new sequence number: 0 with the answer in *r, a DFS_WAIT_* step, or an
 * error building the request.
 */
static int dfs_wait_try(struct dfs *d, uint16_t type, const struct wire_writer *body,
                        int try_ms, int *fd, struct dfs_master *m,
                        struct rpc_reply *r)
{
    struct wire_writer p;
    pthread_mutex_lock(&d->mu);
    int rc = d->session ? 0 : dfs_open_session_locked(d);
    if (rc == 0)
        rc = dfs_payload(d, type, d->session, d->seq + 1, d->seq, body, &p);
    if (rc == 0)
        d->seq++;
    uint64_t session = d->session;
    pthread_mutex_unlock(&d->mu);
    if (rc < 0) {
        wire_writer_release(&p);
        return rc;
    }
    if (*fd < 0)
        *fd = rpc_dial(m->host, m->port, &d->key, d->connect_timeout_ms);
    bool connected = *fd >= 0;
    rc = connected ? rpc_call_fd(*fd, type, p.buf, p.len, 0, try_ms, r) : *fd;
    wire_writer_release(&p);
    if (rc < 0) {
        /* Closing the connection makes the master forget the request. */
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        /* The try ran out on a master that answered the dial: the wait
         * goes on there, not at the next one. */
        if (rc == -ETIMEDOUT && connected)
            return DFS_WAIT_AGAIN;
        dfs_set_error(d, "master %s:%u: %s", m->host, m->port, dfs_strerror(rc));
        return DFS_WAIT_NEXT;
    }
    int st = r->hdr.status;
    if (st == -DFS_ESESSION) {
        /* The cluster expired the session (a long outage): the next try
         * opens a new one, unless another thread did already. */
        pthread_mutex_lock(&d->mu);
        if (d->session == session)
            d->session = 0;
        pthread_mutex_unlock(&d->mu);
    }
    if (st != -DFS_ENOTLEADER && st != -DFS_ENOTREADY && st != -DFS_ESEQ &&
        st != -DFS_ESESSION)
        return 0;
    rc = DFS_WAIT_PAUSE;
    if (st == -DFS_ENOTLEADER) {
        close(*fd);
        *fd = -1;
        rc = dfs_hint_of(r, m) ? DFS_WAIT_LEADER : DFS_WAIT_NEXT;
    }
    rpc_reply_release(r);
    return rc;
}

int dfs_call_wait(struct dfs *d, uint16_t type, const struct wire_writer *body,
                  int try_ms, bool (*stop)(void *arg), void *arg,
                  struct rpc_reply *r)
{
    int fd = -1;
    size_t next = 0;
    /* Start where the session's other calls found the leader. */
    pthread_mutex_lock(&d->lead_mu);
    struct dfs_master m = d->have_leader ? d->leader : d->masters[0];
    pthread_mutex_unlock(&d->lead_mu);
    int backoff = DFS_BACKOFF_MIN_MS;
    for (;;) {
        if (stop && stop(arg)) {
            if (fd >= 0)
                close(fd);
            return -EINTR;
        }
        int rc = dfs_wait_try(d, type, body, try_ms, &fd, &m, r);
        if (rc <= 0) {
            if (fd >= 0)
                close(fd);
            return rc;
        }
        if (rc == DFS_WAIT_NEXT) {
            next = (next + 1) % d->n_masters;
            m = d->masters[next];
        }
        if (rc == DFS_WAIT_NEXT || rc == DFS_WAIT_PAUSE) {
            sleep_ms(backoff);
            backoff = backoff * 2 > DFS_BACKOFF_MAX_MS ? DFS_BACKOFF_MAX_MS : backoff * 2;
        } else {
            backoff = DFS_BACKOFF_MIN_MS;
        }
    }
}

/*
 * Connects to some master within the operation timeout, so that a wrong
 * key or a cluster that is down is reported by dfs_open itself.
 */
static int dfs_reach(struct dfs *d)
{
    int64_t deadline = (int64_t)ev_clock_ms() + d->op_timeout_ms;
    int rc = -ETIMEDOUT;
    while ((int64_t)ev_clock_ms() < deadline) {
        rc = dfs_connect(d, &d->lanes[0], d->connect_timeout_ms);
        if (rc == 0 || rc == -DFS_EAUTH || rc == -DFS_EMAGIC || rc == -DFS_EVERSION)
            break;
        /* Every master refused: nothing listens, say so at once. */
        pthread_mutex_lock(&d->lead_mu);
        bool round = d->next == 0;
        pthread_mutex_unlock(&d->lead_mu);
        if (rc == -ECONNREFUSED && round)
            break;
    }
    return rc;
}

/* ---- keepalive ------------------------------------------------------------- */

int dfs_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return pthread_cond_timedwait(cv, mu, &ts);
}

static void *dfs_keepalive_main(void *arg)
{
    struct dfs *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        if (dfs_cond_wait_ms(&d->stop_cv, &d->mu, d->lease_ms / 3) != ETIMEDOUT)
            continue;
        if (!d->session)
            continue;
        pthread_mutex_unlock(&d->mu);
        struct rpc_reply r;
        if (dfs_call(d, PROTO_SESSION_KEEPALIVE, true, NULL, &r) == 0)
            rpc_reply_release(&r);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- open / close ------------------------------------------------------------ */

static int dfs_parse_masters(struct dfs *d, const char *spec, char *errbuf,
                             size_t errlen)
{
    char *copy = strdup(spec ? spec : "");
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *a = strtok_r(copy, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
        struct dfs_master *m = &d->masters[d->n_masters];
        if (d->n_masters == DFS_MAX_MASTERS ||
            net_parse_addr(a, m->host, sizeof(m->host), &m->port) < 0) {
            snprintf(errbuf, errlen, "bad master address \"%s\" (want host:port)", a);
            rc = -EINVAL;
            break;
        }
        d->n_masters++;
    }
    free(copy);
    if (rc == 0 && d->n_masters == 0) {
        snprintf(errbuf, errlen, "no masters given (-M host:port,... or DFS_MASTERS)");
        rc = -EINVAL;
    }
    return rc;
}

int dfs_open(const struct dfs_opts *o, struct dfs **out, char *errbuf,
             size_t errlen)
{
    struct dfs *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->lead_mu, NULL);
    pthread_mutex_init(&d->inodes.mu, NULL);
    pthread_cond_init(&d->seq_cv, NULL);
    for (size_t i = 0; i <= DFS_LANES; i++) {
        pthread_mutex_init(&d->lanes[i].mu, NULL);
        d->lanes[i].fd = -1;
    }
    pthread_mutex_init(&d->pool_mu, NULL);
    pthread_cond_init(&d->stop_cv, NULL);
    d->op_timeout_ms = o->op_timeout_ms > 0 ? o->op_timeout_ms : 60000;
    d->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    d->uid = o->uid;
    d->gid = o->gid;
    d->lease_ms = DFS_LEASE_MS;
    snprintf(d->client_name, sizeof(d->client_name), "%s",
             o->client_name ? o->client_name : "dfs");
    const char *env = getenv("DFS_LOCAL_READS");
    d->locals = dfs_locals_new(!o->no_local_reads && !(env && strcmp(env, "0") == 0));
    if (!d->locals) {
        free(d);
        return -ENOMEM;
    }
    int rc = dfs_parse_masters(d, o->masters, errbuf, errlen);
    if (rc < 0)
        goto err;
    if (!o->key_file) {
        snprintf(errbuf, errlen, "no cluster key given (-k FILE or DFS_KEY_FILE)");
        rc = -EINVAL;
        goto err;
    }
    rc = auth_key_load(o->key_file, &d->key, errbuf, errlen);
    if (rc < 0)
        goto err;
    rc = dfs_reach(d);
    if (rc < 0) {
        snprintf(errbuf, errlen, "%s", d->errmsg[0] ? d->errmsg : dfs_strerror(rc));
        goto err;
    }
    if (pthread_create(&d->keepalive, NULL, dfs_keepalive_main, d) == 0)
        d->keepalive_running = true;
    d->releases = dfs_releases_new(d);
    *out = d;
    return 0;
err:
    dfs_close(d);
    return rc;
}

void dfs_close(struct dfs *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->stop_cv);
    pthread_mutex_unlock(&d->mu);
    if (d->keepalive_running)
        pthread_join(d->keepalive, NULL);
    dfs_releases_free(d->releases);     /* drops what it holds: SESSION_CLOSE releases it */
    if (d->session) {
        struct rpc_reply r;
        int saved = d->op_timeout_ms;
        d->op_timeout_ms = 2000;   /* the lease ends it anyway */
        if (dfs_call(d, PROTO_SESSION_CLOSE, true, NULL, &r) == 0)
            rpc_reply_release(&r);
        d->op_timeout_ms = saved;
    }
    for (size_t i = 0; i <= DFS_LANES; i++) {
        dfs_disconnect(&d->lanes[i]);
        pthread_mutex_destroy(&d->lanes[i].mu);
    }
    pthread_cond_destroy(&d->seq_cv);
    while (d->pool) {
        struct dfs_csconn *c = d->pool;
        d->pool = c->next;
        close(c->fd);
        free(c);
    }
    dfs_locals_free(d->locals);
    auth_key_release(&d->key);
    pthread_mutex_destroy(&d->pool_mu);
    pthread_cond_destroy(&d->stop_cv);
    pthread_mutex_destroy(&d->lead_mu);
    pthread_mutex_destroy(&d->inodes.mu);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

struct dfs_inodes *dfs_inodes_of(struct dfs *d)
{
    return &d->inodes;
}

struct dfs_releases *dfs_releases_of(struct dfs *d)
{
    return d->releases;
}

struct dfs_locals *dfs_locals_of(struct dfs *d)
{
    return d->locals;
}

int dfs_op_timeout_ms(const struct dfs *d)
{
    return d->op_timeout_ms;
}

const char *dfs_last_error(struct dfs *d)
{
    return d->errmsg;
}

void dfs_set_error(struct dfs *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&d->lead_mu);
    vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
    pthread_mutex_unlock(&d->lead_mu);
    va_end(ap);
}

/* ---- chunkserver connections ---------------------------------------------- */

/* A new connection to addr (c->fd negative when it failed). */
struct dfs_csconn *dfs_cs_dial(struct dfs *d, const char *addr)
{
    struct dfs_csconn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    char host[NET_HOST_MAX];
    uint16_t port;
    c->fd = net_parse_addr(addr, host, sizeof(host), &port) < 0 ? -EINVAL
          : rpc_dial(host, port, &d->key, d->connect_timeout_ms);
    return c;
}

/* An idle connection to addr (*reused true), else a new one. */
struct dfs_csconn *dfs_cs_take(struct dfs *d, const char *addr, bool *reused)
{
    pthread_mutex_lock(&d->pool_mu);
    for (struct dfs_csconn **pp = &d->pool; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->addr, addr)) {
            struct dfs_csconn *c = *pp;
            *pp = c->next;
            pthread_mutex_unlock(&d->pool_mu);
            *reused = true;
            return c;
        }
    }
    pthread_mutex_unlock(&d->pool_mu);
    *reused = false;
    return dfs_cs_dial(d, addr);
}

void dfs_cs_put(struct dfs *d, struct dfs_csconn *c)
{
    pthread_mutex_lock(&d->pool_mu);
    c->next = d->pool;
    d->pool = c;
    pthread_mutex_unlock(&d->pool_mu);
}

int dfs_cs_call(struct dfs *d, const char *addr, uint16_t type,
                const struct wire_writer *payload, struct rpc_reply *r)
{
    struct iovec one = { payload->buf, payload->len };
    return dfs_cs_call_many(d, addr, type, &one, 1, r);
}

int dfs_cs_call_many(struct dfs *d, const char *addr, uint16_t type,
                     const struct iovec *payloads, size_t n,
                     struct rpc_reply *replies)
{
    bool reused;
    struct dfs_csconn *c = dfs_cs_take(d, addr, &reused);
    if (!c)
        return -ENOMEM;
    int rc = c->fd;
    if (rc >= 0)
        rc = rpc_call_fd_many(c->fd, type, payloads, n, 0, d->op_timeout_ms,
                              replies);
    if (rc < 0 && reused) {
        /* An idle connection the server closed meanwhile (it restarted, or
         * timed it out) says nothing about the server: try a fresh one.
         * Requests sent twice are harmless (writes are idempotent). */
        close(c->fd);
        free(c);
        c = dfs_cs_dial(d, addr);
        if (!c)
            return -ENOMEM;
        rc = c->fd;
        if (rc >= 0)
            rc = rpc_call_fd_many(c->fd, type, payloads, n, 0, d->op_timeout_ms,
                                  replies);
    }
    if (rc < 0) {
        dfs_set_error(d, "chunkserver %s: %s", addr, dfs_strerror(rc));
        if (c->fd >= 0)
            close(c->fd);
        free(c);
        return rc;
    }
    dfs_cs_put(d, c);
    return 0;
}

/* ---- namespace calls ---------------------------------------------------------- */

void dfs_get_attr(struct wire_reader *r, struct dfs_attr *a)
{
    a->ino = wire_get_u64(r);
    a->mode = wire_get_u32(r);
    a->nlink = wire_get_u32(r);
    a->uid = wire_get_u32(r);
    a->gid = wire_get_u32(r);
    a->rdev = wire_get_u32(r);
    a->size = wire_get_u64(r);
    a->atime = wire_get_i64(r);
    a->mtime = wire_get_i64(r);
    a->ctime = wire_get_i64(r);
    a->goal = wire_get_u8(r);
}

/*
 * Sends body as request type and decodes an ATTR reply into out (may be
 * NULL), after skip_u64 leading u64 fields (CREATE's fh).
 */
void dfs_on_dir_attr(struct dfs *d, dfs_dir_fn fn, void *arg)
{
    d->dir_hook = fn;
    d->dir_hook_arg = arg;
}

/* The directories a namespace change left (a reply's tail: count u32,
 * ATTR[count]; a master from before them sends none) to the hook. */
static void take_dirs(struct dfs *d, struct wire_reader *rd)
{
    if (!rd->left)
        return;
    uint32_t n = wire_get_u32(rd);
    for (uint32_t i = 0; i < n && !rd->err; i++) {
        struct dfs_attr a;
        dfs_get_attr(rd, &a);
        if (!rd->err && d->dir_hook)
            d->dir_hook(d->dir_hook_arg, &a);
    }
}

int dfs_attr_call(struct dfs *d, uint16_t type, bool mutating,
                  struct wire_writer *body, unsigned skip_u64, struct dfs_attr *out)
{
    struct rpc_reply r;
    int rc = body->err ? body->err : dfs_call(d, type, mutating, body, &r);
    wire_writer_release(body);
    if (rc < 0)
        return rc;
    rc = r.hdr.status;
    struct dfs_attr a;
    if (rc == 0) {
        struct wire_reader rd;
        wire_reader_init(&rd, r.payload, r.len);
        for (unsigned i = 0; i < skip_u64; i++)
            wire_get_u64(&rd);
        dfs_get_attr(&rd, &a);
        if (mutating)
            take_dirs(d, &rd);
        rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    }
    rpc_reply_release(&r);
    if (rc == 0 && out) {
        *out = a;
        dfsfile_attr_local(d, out);
    }
    return rc;
}

/* A change whose reply is the directories it left. */
static int dfs_dirs_call(struct dfs *d, uint16_t type, struct wire_writer *body)
{
    struct rpc_reply r;
    int rc = dfs_call_ok(d, type, true, body, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    take_dirs(d, &rd);
    rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    rpc_reply_release(&r);
    return rc;
}

int dfs_call_void(struct dfs *d, uint16_t type, struct wire_writer *body)
{
    struct rpc_reply r;
    int rc = dfs_call_ok(d, type, true, body, &r);
    if (rc == 0)
        rpc_reply_release(&r);
    return rc;
}

static void put_name(struct wire_writer *w, uint64_t parent, const char *name)
{
    wire_put_u64(w, parent);
    wire_put_str(w, name);
}

int dfs_lookup(struct dfs *d, uint64_t parent, const char *name,
               struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    return dfs_attr_call(d, PROTO_LOOKUP, false, &b, 0, out);
}

int dfs_getattr(struct dfs *d, uint64_t ino, struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    return dfs_attr_call(d, PROTO_GETATTR, false, &b, 0, out);
}

int dfs_resolve(struct dfs *d, const char *path, struct dfs_attr *out)
{
    if (path[0] != '/')
        return -EINVAL;
    int rc = dfs_getattr(d, DFS_ROOT_INO, out);
    char name[PROTO_NAME_MAX + 1];
    for (const char *p = path; rc == 0 && *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (n > PROTO_NAME_MAX)
            return -ENAMETOOLONG;
        memcpy(name, p, n);
        name[n] = '\0';
        rc = dfs_lookup(d, out->ino, name, out);
        p += n;
    }
    return rc;
}

int dfs_mkdir(struct dfs *d, uint64_t parent, const char *name, uint32_t mode,
              struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    wire_put_u32(&b, mode);
    return dfs_attr_call(d, PROTO_MKDIR, true, &b, 0, out);
}

int dfs_create(struct dfs *d, uint64_t parent, const char *name, uint32_t mode,
               uint32_t flags, struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    wire_put_u32(&b, mode);
    wire_put_u32(&b, flags);
    return dfs_attr_call(d, PROTO_CREATE, true, &b, 1, out);
}

int dfs_mknod(struct dfs *d, uint64_t parent, const char *name, uint32_t mode,
              uint32_t rdev, struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    wire_put_u32(&b, mode);
    wire_put_u32(&b, rdev);
    return dfs_attr_call(d, PROTO_MKNOD, true, &b, 0, out);
}

int dfs_symlink(struct dfs *d, uint64_t parent, const char *name,
                const char *target, struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    wire_put_str(&b, target);
    return dfs_attr_call(d, PROTO_SYMLINK, true, &b, 0, out);
}

int dfs_link(struct dfs *d, uint64_t ino, uint64_t newparent,
             const char *newname, struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    put_name(&b, newparent, newname);
    return dfs_attr_call(d, PROTO_LINK, true, &b, 0, out);
}

int dfs_unlink(struct dfs *d, uint64_t parent, const char *name)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    return dfs_dirs_call(d, PROTO_UNLINK, &b);
}

int dfs_rmdir(struct dfs *d, uint64_t parent, const char *name)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    return dfs_dirs_call(d, PROTO_RMDIR, &b);
}

int dfs_rename(struct dfs *d, uint64_t parent, const char *name,
               uint64_t newparent, const char *newname, uint32_t flags)
{
    struct wire_writer b;
    wire_writer_init(&b);
    put_name(&b, parent, name);
    put_name(&b, newparent, newname);
    wire_put_u32(&b, flags);
    return dfs_dirs_call(d, PROTO_RENAME, &b);
}

int dfs_setattr(struct dfs *d, uint64_t ino, const struct dfs_setattr *set,
                struct dfs_attr *out)
{
    if (set->valid & (DFS_SET_SIZE | DFS_SET_MTIME | DFS_SET_MTIME_NOW))
        return dfsfile_setattr(d, ino, set, out);
    return dfs_setattr_call(d, ino, set, out);
}

int dfs_setattr_call(struct dfs *d, uint64_t ino, const struct dfs_setattr *set,
                     struct dfs_attr *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    wire_put_u32(&b, set->valid);
    wire_put_u32(&b, set->mode);
    wire_put_u32(&b, set->uid);
    wire_put_u32(&b, set->gid);
    wire_put_u64(&b, set->size);
    wire_put_i64(&b, set->atime);
    wire_put_i64(&b, set->mtime);
    wire_put_u8(&b, set->goal);
    return dfs_attr_call(d, PROTO_SETATTR, true, &b, 0, out);
}

int dfs_call_ok(struct dfs *d, uint16_t type, bool mutating,
                struct wire_writer *body, struct rpc_reply *r)
{
    int rc = body->err ? body->err : dfs_call(d, type, mutating, body, r);
    wire_writer_release(body);
    if (rc == 0 && r->hdr.status < 0) {
        rc = r->hdr.status;
        rpc_reply_release(r);
    }
    return rc;
}

int dfs_readlink(struct dfs *d, uint64_t ino, char **target)
{
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, ino);
    struct rpc_reply r;
    int rc = dfs_call_ok(d, PROTO_READLINK, false, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    *target = wire_get_str(&rd, PROTO_PATH_MAX);
    rc = wire_reader_finish(&rd) < 0 || !*target ? -EBADMSG : 0;
    if (rc < 0) {
        free(*target);
        *target = NULL;
    }
    rpc_reply_release(&r);
    return rc;
}

/* Decodes one READDIR batch, calling fn; *cookie and *eof advance. */
static int dfs_readdir_batch(struct dfs *d, const struct rpc_reply *r,
                             unsigned flags,
                             int (*fn)(const struct dfs_dirent *, void *),
                             void *arg, uint64_t *cookie, bool *eof)
{
    struct wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    uint32_t n = wire_get_u32(&rd);
    char name[PROTO_NAME_MAX + 1];
    for (uint32_t i = 0; i < n && !rd.err; i++) {
        struct dfs_attr a;
        struct dfs_dirent e = { .name = name };
        e.cookie = wire_get_u64(&rd);
        e.ino = wire_get_u64(&rd);
        e.mode = wire_get_u32(&rd);
        const uint8_t *p;
        size_t len = wire_get_bytes(&rd, &p, PROTO_NAME_MAX);
        if (flags & DFS_READDIR_PLUS) {
            dfs_get_attr(&rd, &a);
            dfsfile_attr_local(d, &a);
            e.attr = &a;
        }
        if (rd.err)
            break;
        memcpy(name, p, len);
        name[len] = '\0';
        *cookie = e.cookie;
        int rc = fn(&e, arg);
        if (rc)
            return rc;
    }
    *eof = wire_get_u8(&rd) != 0 || n == 0;
    return wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
}

int dfs_readdir(struct dfs *d, uint64_t ino, uint64_t cookie, unsigned flags,
                int (*fn)(const struct dfs_dirent *e, void *arg), void *arg)
{
    bool eof = false;
    int rc = 0;
    while (rc == 0 && !eof) {
        struct wire_writer b;
        wire_writer_init(&b);
        wire_put_u64(&b, ino);
        wire_put_u64(&b, cookie);
        wire_put_u32(&b, PROTO_READDIR_MAX);
        wire_put_u8(&b, (uint8_t)(flags & DFS_READDIR_PLUS ? PROTO_READDIR_PLUS : 0));
        struct rpc_reply r;
        rc = dfs_call_ok(d, PROTO_READDIR, false, &b, &r);
        if (rc < 0)
            break;
        rc = dfs_readdir_batch(d, &r, flags, fn, arg, &cookie, &eof);
        rpc_reply_release(&r);
    }
    return rc;
}

int dfs_statfs(struct dfs *d, struct dfs_statfs *out)
{
    struct wire_writer b;
    wire_writer_init(&b);
    struct rpc_reply r;
    int rc = dfs_call_ok(d, PROTO_STATFS, false, &b, &r);
    if (rc < 0)
        return rc;
    struct wire_reader rd;
    wire_reader_init(&rd, r.payload, r.len);
    out->bytes_total = wire_get_u64(&rd);
    out->bytes_free = wire_get_u64(&rd);
    out->bytes_avail = wire_get_u64(&rd);
    out->files = wire_get_u64(&rd);
    out->files_free = wire_get_u64(&rd);
    rc = wire_reader_finish(&rd) < 0 ? -EBADMSG : 0;
    rpc_reply_release(&r);
    return rc;
}

/* Decodes an ADMIN_FSCK answer (with the verify fields when asked). */
static int dfs_fsck_decode(struct rpc_reply *r, bool verify, struct dfs_fsck *out)
{
    struct wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    out->chunks = wire_get_u64(&rd);
    out->healthy = wire_get_u64(&rd);
    out->under_replicated = wire_get_u64(&rd);
    out->missing = wire_get_u64(&rd);
    out->corrupt = wire_get_u64(&rd);
    uint32_t n = wire_get_u32(&rd);
    if (!rd.err && n > rd.left / 30)   /* one problem is 30 bytes */
        rd.err = -EBADMSG;
    out->problems = calloc(n ? n : 1, sizeof(*out->problems));
    if (!out->problems)
        rd.err = -ENOMEM;
    for (uint32_t i = 0; i < n && !rd.err; i++) {
        struct dfs_fsck_problem *p = &out->problems[i];
        p->inode = wire_get_u64(&rd);
        p->index = wire_get_u32(&rd);
        p->chunk = wire_get_u64(&rd);
        p->version = wire_get_u32(&rd);
        p->replicas = wire_get_u32(&rd);
        p->goal = wire_get_u8(&rd);
        p->state = wire_get_u8(&rd);
        out->nproblems++;
    }
    if (verify) {
        out->verified = wire_get_u64(&rd);
        out->bad = wire_get_u64(&rd);
        out->unverified = wire_get_u64(&rd);
        out->servers = wire_get_u32(&rd);
    }
    int rc = wire_reader_finish(&rd) < 0 ? (rd.err == -ENOMEM ? -ENOMEM : -EBADMSG) : 0;
    rpc_reply_release(r);
    if (rc < 0)
        dfs_fsck_release(out);
    return rc;
}

int dfs_fsck(struct dfs *d, uint64_t inode, struct dfs_fsck *out)
{
    memset(out, 0, sizeof(*out));
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, inode);
    wire_put_u8(&b, 0);
    struct rpc_reply r;
    int rc = dfs_call_ok(d, PROTO_ADMIN_FSCK, false, &b, &r);
    return rc < 0 ? rc : dfs_fsck_decode(&r, false, out);
}

static bool dfs_past(void *arg)
{
    return (int64_t)ev_clock_ms() >= *(const int64_t *)arg;
}

int dfs_fsck_verify(struct dfs *d, uint64_t inode, struct dfs_fsck *out)
{
    memset(out, 0, sizeof(*out));
    struct wire_writer b;
    wire_writer_init(&b);
    wire_put_u64(&b, inode);
    wire_put_u8(&b, 1);
    /* One long try: the master answers once every chunkserver did (or
     * timed out); a new try would start the re-reads over. */
    int64_t deadline = (int64_t)ev_clock_ms() + DFS_VERIFY_MS;
    struct rpc_reply r;
    int rc = b.err ? b.err : dfs_call_wait(d, PROTO_ADMIN_FSCK, &b, DFS_VERIFY_MS,
                                           dfs_past, &deadline, &r);
    wire_writer_release(&b);
    if (rc == -EINTR)
        return -ETIMEDOUT;
    if (rc == 0 && r.hdr.status < 0) {
        rc = r.hdr.status;
        rpc_reply_release(&r);
    }
    return rc < 0 ? rc : dfs_fsck_decode(&r, true, out);
}

void dfs_fsck_release(struct dfs_fsck *f)
{
    free(f->problems);
    f->problems = NULL;
    f->nproblems = 0;
}

static int dfs_status_reply(struct rpc_reply *r, char **json)
{
    struct wire_reader rd;
    wire_reader_init(&rd, r->payload, r->len);
    *json = wire_get_str(&rd, WIRE_MAX_PAYLOAD);
    int rc = wire_reader_finish(&rd) < 0 || !*json ? -EBADMSG : 0;
    if (rc < 0) {
        free(*json);
        *json = NULL;
    }
    rpc_reply_release(r);
    return rc;
}

int dfs_admin_status(struct dfs *d, char **json)
{
    struct wire_writer b;
    wire_writer_init(&b);
    struct rpc_reply r;
    int rc = dfs_call_ok(d, PROTO_ADMIN_STATUS, false, &b, &r);
    return rc < 0 ? rc : dfs_status_reply(&r, json);
}

int dfs_admin_status_of(struct dfs *d, const char *addr, char **json)
{
    char host[NET_HOST_MAX];
    uint16_t port;
    if (net_parse_addr(addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    int fd = rpc_dial(host, port, &d->key, d->connect_timeout_ms);
    if (fd < 0)
        return fd;
    struct wire_writer p;
    int rc = dfs_payload(d, PROTO_ADMIN_STATUS, 0, 0, 0, NULL, &p);
    struct rpc_reply r;
    if (rc == 0)
        rc = rpc_call_fd(fd, PROTO_ADMIN_STATUS, p.buf, p.len, 0,
                         d->connect_timeout_ms, &r);
    wire_writer_release(&p);
    close(fd);
    if (rc == 0 && r.hdr.status < 0) {
        rc = r.hdr.status;
        rpc_reply_release(&r);
    }
    return rc < 0 ? rc : dfs_status_reply(&r, json);
}
