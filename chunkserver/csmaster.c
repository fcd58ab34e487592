/*
 * csmaster: the master link (csmaster.h).
 *
 * Owns the masters list, the one rpc connection to the master it talks to,
 * the heartbeat timer and the records of orders in flight.
 *
 * States, moved by the rpc callbacks:
 *   idle         no connection; a retry timer is armed (unless stopped)
 *   connecting   rpc_connect done, handshake running
 *   registering  CS_REGISTER (and the report frames) sent
 *   registered   heartbeats every heartbeat_ms; orders are taken
 * Any failure of the connection goes back to idle, then to the NOT_LEADER
 * hint at once if one came, else to the next master after CSM_RETRY_MS.
 *
 * Invariants:
 *  1. At most one connection; m->gen numbers them, and an order's answer
 *     goes only to the connection it came on (a later one would not know
 *     its req_id).
 *  2. A chunk found corrupt is reported once through CHUNK_REPORT CHANGED
 *     (vols_take_bad); should that report be lost with the connection,
 *     the next registration's full report still marks it corrupt.
 *  3. A chunk lost with a failed data directory is reported once the same
 *     way, state CORRUPT, so the master stops counting it, copies the
 *     chunk from other replicas and orders this one deleted (which finds
 *     nothing: done); the next full report leaves it out all the same.
 *  4. At most one probe of the data directories runs (csprobe); the
 *     shutdown does not wait for one stuck in a disk call.
 */
#include "csmaster.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkserver/csd.h"
#include "chunkserver/csio.h"
#include "chunkserver/csprobe.h"
#include "chunkserver/csrepl.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/log.h"
#include "common/net.h"
#include "common/rpc.h"
#include "common/tpool.h"
#include "common/wire.h"

#define CSM_RETRY_MS     1000
#define CSM_CALL_MS      10000
/* Heartbeats missed before the master counts as gone: a leader cut off
 * from us is replaced within about two election timeouts, and the new
 * one needs our registration to serve any chunk. */
#define CSM_HEARTBEAT_MISSES 3
/* How long a lost master is passed over (hints naming it included): by
 * then the others know who leads.  With the heartbeat misses it stays
 * under the master's 5 s before it counts a chunkserver down. */
#define CSM_SHUN_MS      2000
#define CSM_REPORT_BATCH 50000     /* REPLICAs per report frame */
#define CSM_ORDER_MAX    65536     /* chunks in one DELETE / VERIFY */
#define CSM_MAX_PAYLOAD  (4u << 20)
/* How long csmaster_free lets a probe run before leaving it stuck: it
 * reads one small file per directory. */
#define CSM_PROBE_WAIT_MS 5000

struct csmaster {
    struct csd *d;
    char **addrs;                      /* the masters list, owned */
    size_t naddrs, next;               /* next: the one to try next */
    char hint[PROTO_ADDR_MAX + 1];     /* leader named by NOT_LEADER, or "" */
    bool redirected;                   /* cur answered NOT_LEADER */
    char cur[PROTO_ADDR_MAX + 1];      /* the master connected to */
    char failed[PROTO_ADDR_MAX + 1];   /* the last one lost, or "" */
    uint64_t failed_at;                /* ev_now_ms when it was lost */
    struct rpc_conn *rc;               /* NULL when idle */
    uint64_t gen;                      /* connections made so far */
    bool registered;
    bool stopped;
    uint32_t heartbeat_ms;
    uint64_t timer;                    /* retry or heartbeat; 0: none */
    unsigned orders;                   /* orders not yet done */
    struct csprobe *probe;             /* from the first heartbeat on */
};

struct csm_order {
    struct csmaster *m;
    uint64_t gen;                      /* the connection it came on */
    struct wire_frame req;             /* header only, for the answer */
    uint32_t n;
    uint64_t *ids;
    uint32_t *versions;
    uint32_t *new_versions;            /* TRUNCATE */
    uint64_t *lengths;                 /* TRUNCATE */
    int32_t *status;
};

/* A snapshot of the store for a report. */
struct csm_list {
    struct store_info *v;
    size_t n, cap;
};

static void csm_connect(struct csmaster *m);

/* ---- the masters list -------------------------------------------------- */

static int csm_add_addr(struct csmaster *m, const char *s, size_t len,
                        char *errbuf, size_t errlen)
{
    char host[NET_HOST_MAX];
    uint16_t port;
    char *a = strndup(s, len);
    if (!a)
        return -ENOMEM;
    if (len > PROTO_ADDR_MAX ||
        net_parse_addr(a, host, sizeof(host), &port) < 0 || port == 0) {
        snprintf(errbuf, errlen, "masters: bad address \"%s\"", a);
        free(a);
        return -DFS_ECONF;
    }
    char **v = realloc(m->addrs, (m->naddrs + 1) * sizeof(*v));
    if (!v) {
        free(a);
        return -ENOMEM;
    }
    m->addrs = v;
    m->addrs[m->naddrs++] = a;
    return 0;
}

static int csm_parse_list(struct csmaster *m, const char *list, char *errbuf,
                          size_t errlen)
{
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == 0)
            break;
        int rc = csm_add_addr(m, p, len, errbuf, errlen);
        if (rc < 0)
            return rc;
        p += len;
    }
    if (m->naddrs == 0) {
        snprintf(errbuf, errlen, "masters: no address in \"%s\"", list);
        return -DFS_ECONF;
    }
    return 0;
}

int csmaster_new(struct csd *d, struct csmaster **out, char *errbuf,
                 size_t errlen)
{
    *out = NULL;
    if (!d->conf->masters)
        return 0;
    struct csmaster *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->d = d;
    int rc = csm_parse_list(m, d->conf->masters, errbuf, errlen);
    if (rc < 0) {
        csmaster_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- reports ----------------------------------------------------------- */

static int csm_collect(const struct store_info *info, void *arg)
{
    struct csm_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct store_info *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *info;
    return 0;
}

static void csm_put_replicas(struct wire_writer *w, const struct csm_list *l,
                             size_t from, size_t count)
{
    wire_put_u32(w, (uint32_t)count);
    for (size_t i = from; i < from + count; i++) {
        wire_put_u64(w, l->v[i].id);
        wire_put_u32(w, l->v[i].version);
        wire_put_u32(w, (uint32_t)l->v[i].length);
        wire_put_u8(w, l->v[i].corrupt ? PROTO_REPLICA_CORRUPT
                                       : PROTO_REPLICA_OK);
    }
}

static void csm_drop(struct csmaster *m, const char *why, int err)
{
    log_warn("csmaster: %s %s: %s", m->cur, why, dfs_strerror(err));
    if (m->rc)
        net_conn_abort(rpc_net(m->rc));
}

/* NOT_LEADER: remember the hint, then reconnect there. */
static void csm_follow(struct csmaster *m, const uint8_t *p, size_t len)
{
    struct wire_reader r;
    wire_reader_init(&r, p, len);
    wire_get_u64(&r);
    char *addr = wire_get_str(&r, PROTO_ADDR_MAX);
    if (wire_reader_finish(&r) == 0 && addr && addr[0])
        snprintf(m->hint, sizeof(m->hint), "%s", addr);
    m->redirected = true;
    log_info("csmaster: %s is not the leader (hint \"%s\")", m->cur,
             addr ? addr : "");
    free(addr);
    if (m->rc)
        net_conn_abort(rpc_net(m->rc));
}

/* The answer to a report or heartbeat: 0 when it was accepted. */
static int csm_check_reply(struct csmaster *m, const char *what, int status,
                           const uint8_t *payload, size_t len)
{
    if (status == -DFS_ENOTLEADER && payload)
        csm_follow(m, payload, len);
    else if (status < 0 && (payload || status == -ETIMEDOUT))
        csm_drop(m, what, status);
    return status;
}

static void csm_report_reply(void *arg, int status, const uint8_t *payload,
                             size_t len)
{
    csm_check_reply(arg, "CHUNK_REPORT", status, payload, len);
}

static void csm_send_report(struct csmaster *m, uint8_t kind,
                            const struct csm_list *l, size_t from)
{
    while (from < l->n) {
        size_t count = l->n - from;
        if (count > CSM_REPORT_BATCH)
            count = CSM_REPORT_BATCH;
        struct wire_writer w;
        wire_writer_init(&w);
        wire_put_u32(&w, csd_server_id(m->d));
        wire_put_u8(&w, kind);
        wire_put_u8(&w, from + count < l->n);
        csm_put_replicas(&w, l, from, count);
        int rc = w.err ? w.err
                       : rpc_call(m->rc, PROTO_CS_CHUNK_REPORT, w.buf, w.len,
                                  CSM_CALL_MS, csm_report_reply, m);
        wire_writer_release(&w);
        if (rc < 0) {
            csm_drop(m, "CHUNK_REPORT", rc);
            return;
        }
        from += count;
    }
}

/* Chunks found corrupt since the last report (scrubber, reads, writes),
 * and chunks lost with a failed data directory (invariant 3). */
static void csm_report_bad(struct csmaster *m)
{
    uint64_t *ids;
    size_t n, nlost;
    struct store_info *lost;
    vols_take_bad(m->d->vols, &ids, &n);
    vols_take_lost(m->d->vols, &lost, &nlost);
    struct csm_list l = { .v = calloc(n + nlost ? n + nlost : 1,
                                      sizeof(*l.v)), .n = n + nlost };
    for (size_t i = 0; l.v && i < n; i++) {
        uint32_t version = 0;
        uint64_t length = 0;
        vols_stat(m->d->vols, ids[i], &version, &length);
        l.v[i] = (struct store_info){ .id = ids[i], .version = version,
                                      .length = length, .corrupt = true };
    }
    if (l.v && nlost)
        memcpy(l.v + n, lost, nlost * sizeof(*lost));
    if (l.v && l.n)
        csm_send_report(m, PROTO_REPORT_CHANGED, &l, 0);
    free(l.v);
    free(lost);
    free(ids);
}

/* Starts a probe of the data directories unless one is asked for: a
 * directory with no traffic would otherwise fail unnoticed (its chunks go
 * to the lost list, reported at the next heartbeat). */
static void csm_probe(struct csmaster *m)
{
    if (!m->probe) {
        int rc = csprobe_new(m->d->vols, &m->probe);
        if (rc < 0) {
            log_warn("csmaster: no probe thread for the data directories: "
                     "%s", dfs_strerror(rc));
            return;
        }
    }
    csprobe_kick(m->probe);
}

/* ---- heartbeat --------------------------------------------------------- */

static void csm_heartbeat_reply(void *arg, int status, const uint8_t *payload,
                                size_t len)
{
    struct csmaster *m = arg;
    if (csm_check_reply(m, "CS_HEARTBEAT", status, payload, len) == 0)
        atomic_fetch_add(&m->d->stats.heartbeats, 1);
}

static int csm_count(const struct store_info *info, void *arg)
{
    (void)info;
    (*(uint32_t *)arg)++;
    return 0;
}

/*
 * The space the master places chunks by: capacity is what our chunks take
 * plus what they may still take (free space less the reserve), so that
 * other files on the disks count neither as ours nor as free.
 */
static void csm_space(struct csd *d, uint64_t *capacity, uint64_t *used)
{
    uint64_t total = 0, avail = 0;
    *used = 0;
    vols_space(d->vols, &total, used, &avail);
    *capacity = *used + avail;
}

static int64_t csm_heartbeat(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct csmaster *m = arg;
    struct csd *d = m->d;
    uint64_t total, used;
    uint32_t chunks = 0;
    csm_space(d, &total, &used);
    vols_list(d->vols, csm_count, &chunks);
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, csd_server_id(d));
    wire_put_u64(&w, total);
    wire_put_u64(&w, used);
    wire_put_u32(&w, chunks);
    wire_put_u32(&w, (uint32_t)tpool_pending(d->disk));
    wire_put_u64(&w, atomic_load(&d->stats.bytes_read));
    wire_put_u64(&w, atomic_load(&d->stats.bytes_written));
    wire_put_u64(&w, atomic_load(&d->stats.errors));
    int rc = w.err ? w.err
                   : rpc_call(m->rc, PROTO_CS_HEARTBEAT, w.buf, w.len,
                              CSM_HEARTBEAT_MISSES * m->heartbeat_ms,
                              csm_heartbeat_reply, m);
    wire_writer_release(&w);
    if (rc < 0) {
        csm_drop(m, "CS_HEARTBEAT", rc);
        return EV_TIMER_STOP;
    }
    csm_report_bad(m);
    csm_probe(m);
    return m->heartbeat_ms;
}

/* ---- registration ------------------------------------------------------ */

static void csm_registered(struct csmaster *m, const uint8_t *p, size_t len)
{
    struct csd *d = m->d;
    struct wire_reader r;
    wire_reader_init(&r, p, len);
    uint32_t cs_id = wire_get_u32(&r);
    uint64_t cluster_id = wire_get_u64(&r);
    uint32_t hb = wire_get_u32(&r);
    /* A master from before the setting says nothing: it counts in the
     * default. */
    uint64_t chunk_size = r.left ? wire_get_u64(&r) : PROTO_CHUNK_SIZE;
    int rc = wire_reader_finish(&r);
    if (rc == 0)
        rc = vols_set_chunk_size(d->vols, chunk_size);
    if (rc < 0) {
        csm_drop(m, "CS_REGISTER reply", rc);
        return;
    }
    /* Once per registration, a small atomic file: done on the loop. */
    if (cs_id != vols_server_id(d->vols) ||
        cluster_id != vols_cluster_id(d->vols))
        rc = vols_set_identity(d->vols, cluster_id, cs_id);
    if (rc < 0) {
        log_error("csmaster: cannot take identity cluster %016llx cs %u "
                  "from %s: %s", (unsigned long long)cluster_id, cs_id,
                  m->cur, dfs_strerror(rc));
        csd_stop(d);
        return;
    }
    m->registered = true;
    m->heartbeat_ms = hb ? hb : 1000;
    atomic_fetch_add(&d->stats.registered, 1);
    log_info("csmaster: registered with %s as cs %u", m->cur, cs_id);
    m->timer = ev_timer_add(d->loop, m->heartbeat_ms, csm_heartbeat, m);
}

static void csm_register_reply(void *arg, int status, const uint8_t *payload,
                               size_t len)
{
    struct csmaster *m = arg;
    if (status == -DFS_ECLUSTER) {
        log_error("csmaster: %s refuses data directory %s: it belongs to "
                  "another cluster", m->cur, m->d->conf->data_dir);
        csd_stop(m->d);
        return;
    }
    if (status == -DFS_ENOTREADY) {
        /* A new leader not serving yet is no reason to avoid it. */
        m->redirected = true;
        log_info("csmaster: %s is not ready yet", m->cur);
        if (m->rc)
            net_conn_abort(rpc_net(m->rc));
        return;
    }
    if (csm_check_reply(m, "CS_REGISTER", status, payload, len) == 0)
        csm_registered(m, payload, len);
}

static void csm_on_ready(struct rpc_conn *c)
{
    struct csmaster *m = rpc_ctx(c);
    struct csd *d = m->d;
    struct csm_list l = { 0 };
    if (vols_list(d->vols, csm_collect, &l) < 0) {
        free(l.v);
        csm_drop(m, "report", -ENOMEM);
        return;
    }
    uint64_t total, used;
    csm_space(d, &total, &used);
    size_t first = l.n < CSM_REPORT_BATCH ? l.n : CSM_REPORT_BATCH;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u64(&w, vols_cluster_id(d->vols));
    wire_put_u32(&w, vols_server_id(d->vols));
    wire_put_str(&w, d->self_addr);
    wire_put_str(&w, d->conf->rack);
    wire_put_u64(&w, total);
    wire_put_u64(&w, used);
    wire_put_u8(&w, first < l.n);
    csm_put_replicas(&w, &l, 0, first);
    int rc = w.err ? w.err
                   : rpc_call(c, PROTO_CS_REGISTER, w.buf, w.len, CSM_CALL_MS,
                              csm_register_reply, m);
    wire_writer_release(&w);
    if (rc < 0)
        csm_drop(m, "CS_REGISTER", rc);
    else
        csm_send_report(m, PROTO_REPORT_FULL, &l, first);
    free(l.v);
}

/* ---- orders ------------------------------------------------------------ */

static void csm_order_free(struct csm_order *o)
{
    o->m->orders--;
    free(o->ids);
    free(o->versions);
    free(o->new_versions);
    free(o->lengths);
    free(o->status);
    free(o);
}

static void csm_order_reply(struct csm_order *o, int status,
                            const struct wire_writer *w)
{
    struct csmaster *m = o->m;
    if (m->rc && m->gen == o->gen)
        rpc_reply(m->rc, &o->req, status, w ? w->buf : NULL, w ? w->len : 0);
}

static struct csm_order *csm_order_new(struct csmaster *m,
                                       const struct wire_frame *f)
{
    struct csm_order *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->m = m;
    o->gen = m->gen;
    o->req.hdr = f->hdr;
    m->orders++;
    return o;
}

static void csm_replicate_done(void *arg, int status, uint32_t length)
{
    struct csm_order *o = arg;
    struct wire_writer w;
    wire_writer_init(&w);
    if (status == 0)
        wire_put_u32(&w, length);
    csm_order_reply(o, status, status == 0 ? &w : NULL);
    wire_writer_release(&w);
    csm_order_free(o);
}

static void csm_replicate(struct csmaster *m, const struct wire_frame *f)
{
    struct wire_reader r;
    wire_reader_init(&r, f->payload, f->hdr.payload_len);
    uint64_t id = wire_get_u64(&r);
    uint32_t version = wire_get_u32(&r);
    uint32_t length = wire_get_u32(&r);
    uint32_t n = wire_get_u32(&r);
    char *src[CSIO_CHAIN_MAX] = { 0 };
    if (n > CSIO_CHAIN_MAX)
        r.err = -DFS_ETOOBIG;
    for (uint32_t i = 0; i < n && !r.err; i++) {
        wire_get_u32(&r);
        src[i] = wire_get_str(&r, PROTO_ADDR_MAX);
    }
    int rc = wire_reader_finish(&r);
    struct csm_order *o = rc < 0 ? NULL : csm_order_new(m, f);
    if (rc < 0)
        csm_drop(m, "CS_ORDER_REPLICATE", rc);
    else if (!o)
        rpc_reply(m->rc, f, -ENOMEM, NULL, 0);
    else if ((rc = csrepl_start(m->d, id, version, length, src, n,
                                csm_replicate_done, o)) < 0) {
        csm_order_reply(o, rc, NULL);
        csm_order_free(o);
    }
    for (uint32_t i = 0; i < n && i < CSIO_CHAIN_MAX; i++)
        free(src[i]);
}

/* Trims a replica cut short by a truncate and moves it to the new
 * version; one already there (a repeated order) is left as it is. */
static int csm_truncate_one(struct vols *s, uint64_t id, uint32_t version,
                            uint32_t new_version, uint64_t length)
{
    uint32_t have;
    uint64_t len;
    int rc = vols_stat(s, id, &have, &len);
    if (rc == 0 && have == new_version)
        return 0;
    if (rc == 0 && have != version)
        return -DFS_ESTALE_VER;
    if (rc == 0)
        rc = vols_truncate(s, id, version, length);
    if (rc == 0)
        rc = vols_set_version(s, id, new_version);
    return rc;
}

/* Disk thread: DELETE, VERIFY or TRUNCATE of every listed chunk. */
static int csm_batch_work(void *arg)
{
    struct csm_order *o = arg;
    struct vols *s = o->m->d->vols;
    for (uint32_t i = 0; i < o->n; i++) {
        uint32_t version;
        uint64_t length;
        if (o->req.hdr.type == PROTO_CS_ORDER_TRUNCATE) {
            o->status[i] = csm_truncate_one(s, o->ids[i], o->versions[i],
                                            o->new_versions[i], o->lengths[i]);
            continue;
        }
        if (o->req.hdr.type == PROTO_CS_ORDER_VERIFY) {
            o->status[i] = vols_verify(s, o->ids[i], o->versions[i]);
            continue;
        }
        int rc = 0;
        if (o->versions[i])
            rc = vols_stat(s, o->ids[i], &version, &length);
        if (rc == 0 && o->versions[i] && version != o->versions[i])
            rc = -DFS_ESTALE_VER;
        o->status[i] = rc < 0 && rc != -DFS_ECORRUPT
                           ? rc : vols_delete(s, o->ids[i]);
    }
    return 0;
}

static void csm_batch_done(void *arg, int status)
{
    struct csm_order *o = arg;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, o->n);
    for (uint32_t i = 0; i < o->n; i++)
        wire_put_i32(&w, o->status[i]);
    csm_order_reply(o, status < 0 ? status : w.err, status < 0 ? NULL : &w);
    wire_writer_release(&w);
    csm_order_free(o);
}

static int csm_batch_parse(struct csm_order *o, const struct wire_frame *f)
{
    struct wire_reader r;
    wire_reader_init(&r, f->payload, f->hdr.payload_len);
    o->n = wire_get_u32(&r);
    if (r.err || o->n > CSM_ORDER_MAX)
        return r.err ? r.err : -DFS_ETOOBIG;
    size_t k = o->n ? o->n : 1;
    bool trunc = f->hdr.type == PROTO_CS_ORDER_TRUNCATE;
    o->ids = calloc(k, sizeof(*o->ids));
    o->versions = calloc(k, sizeof(*o->versions));
    o->status = calloc(k, sizeof(*o->status));
    if (trunc) {
        o->new_versions = calloc(k, sizeof(*o->new_versions));
        o->lengths = calloc(k, sizeof(*o->lengths));
    }
    if (!o->ids || !o->versions || !o->status ||
        (trunc && (!o->new_versions || !o->lengths)))
        return -ENOMEM;
    for (uint32_t i = 0; i < o->n; i++) {
        o->ids[i] = wire_get_u64(&r);
        o->versions[i] = wire_get_u32(&r);
        if (trunc) {
            o->new_versions[i] = wire_get_u32(&r);
            o->lengths[i] = wire_get_u32(&r);
        }
    }
    return wire_reader_finish(&r);
}

static void csm_batch(struct csmaster *m, const struct wire_frame *f)
{
    struct csm_order *o = csm_order_new(m, f);
    if (!o) {
        rpc_reply(m->rc, f, -ENOMEM, NULL, 0);
        return;
    }
    int rc = csm_batch_parse(o, f);
    if (rc == -ENOMEM) {
        csm_order_reply(o, rc, NULL);
    } else if (rc < 0) {
        csm_drop(m, "order", rc);
    } else {
        rc = tpool_submit(m->d->disk, csm_batch_work, csm_batch_done, o);
        if (rc == 0)
            return;
        csm_order_reply(o, rc, NULL);
    }
    csm_order_free(o);
}

static void csm_on_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    struct csmaster *m = rpc_ctx(c);
    if (f->hdr.flags & WIRE_F_REPLY)
        return;   /* a late reply to a call that timed out */
    switch (f->hdr.type) {
    case PROTO_CS_ORDER_REPLICATE:
        csm_replicate(m, f);
        break;
    case PROTO_CS_ORDER_DELETE:
    case PROTO_CS_ORDER_VERIFY:
    case PROTO_CS_ORDER_TRUNCATE:
        csm_batch(m, f);
        break;
    default:
        rpc_reply(c, f, -ENOSYS, NULL, 0);
        break;
    }
}

/* ---- connection -------------------------------------------------------- */

/* cur was lost (not a NOT_LEADER redirection): pass over it for a while. */
static void csm_shun(struct csmaster *m)
{
    snprintf(m->failed, sizeof(m->failed), "%s", m->cur);
    m->failed_at = ev_now_ms(m->d->loop);
}

static int64_t csm_retry(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct csmaster *m = arg;
    m->timer = 0;
    csm_connect(m);
    return EV_TIMER_STOP;
}

static void csm_idle_wait(struct csmaster *m)
{
    if (m->stopped)
        return;
    uint64_t delay = m->hint[0] ? 0 : CSM_RETRY_MS;
    m->timer = ev_timer_add(m->d->loop, delay, csm_retry, m);
}

static void csm_on_close(struct rpc_conn *c, int err)
{
    struct csmaster *m = rpc_ctx(c);
    if (err < 0)
        log_info("csmaster: %s: %s", m->cur, dfs_strerror(err));
    /* A master that is not the leader (an election may be on) is no
     * reason to avoid it; any other loss is. */
    if (!m->redirected)
        csm_shun(m);
    m->redirected = false;
    m->rc = NULL;
    m->registered = false;
    if (m->timer)
        ev_timer_cancel(m->d->loop, m->timer);
    m->timer = 0;
    csm_idle_wait(m);
}

static const struct rpc_cbs csm_cbs = {
    .on_ready = csm_on_ready,
    .on_frame = csm_on_frame,
    .on_close = csm_on_close,
};

/*
 * The master to try: the NOT_LEADER hint, else the next of the list.  A
 * follower that has not heard of the new leader yet names the old one:
 * neither the hint nor the list leads back to the master just lost while
 * there is another to try.
 */
static bool csm_shunned(const struct csmaster *m, const char *addr)
{
    return m->failed[0] && !strcmp(addr, m->failed) &&
           ev_now_ms(m->d->loop) - m->failed_at < CSM_SHUN_MS;
}

static void csm_choose(struct csmaster *m)
{
    if (m->hint[0] && !csm_shunned(m, m->hint)) {
        snprintf(m->cur, sizeof(m->cur), "%s", m->hint);
    } else {
        const char *a = m->addrs[m->next++ % m->naddrs];
        if (m->naddrs > 1 && csm_shunned(m, a))
            a = m->addrs[m->next++ % m->naddrs];
        snprintf(m->cur, sizeof(m->cur), "%s", a);
    }
    m->hint[0] = '\0';
}

static void csm_connect(struct csmaster *m)
{
    csm_choose(m);
    char host[NET_HOST_MAX];
    uint16_t port;
    int rc = net_parse_addr(m->cur, host, sizeof(host), &port);
    if (rc == 0)
        rc = rpc_connect(m->d->loop, host, port, &m->d->key, &csm_cbs, m,
                         CSM_MAX_PAYLOAD, NULL, &m->rc);
    if (rc < 0) {
        log_warn("csmaster: connect %s: %s", m->cur, dfs_strerror(rc));
        csm_shun(m);
        m->rc = NULL;
        csm_idle_wait(m);
        return;
    }
    m->gen++;
}

void csmaster_start(struct csmaster *m)
{
    if (m)
        csm_connect(m);
}

void csmaster_stop(struct csmaster *m)
{
    if (!m)
        return;
    m->stopped = true;
    if (m->timer)
        ev_timer_cancel(m->d->loop, m->timer);
    m->timer = 0;
    if (m->rc)
        net_conn_abort(rpc_net(m->rc));
}

bool csmaster_idle(const struct csmaster *m)
{
    return !m || (!m->rc && m->orders == 0);
}

bool csmaster_free(struct csmaster *m)
{
    if (!m)
        return true;
    bool done = csprobe_free(m->probe, CSM_PROBE_WAIT_MS);
    for (size_t i = 0; i < m->naddrs; i++)
        free(m->addrs[i]);
    free(m->addrs);
    free(m);
    return done;
}
