/*
 * mverify: runs `fsck --verify` jobs — the replicas of the chunks under an
 * inode re-read by their chunkservers, the bad ones marked, then fsck.
 *
 * A job is built at once from the namespace and the replica registry: per
 * chunkserver, the list of (chunk, version) it holds healthy.  Each server
 * then gets its list in batches of MVERIFY_BATCH, one batch in flight at a
 * time (the re-reads share its disk pool with clients), each with a
 * timeout that grows with its size.  When no batch is in flight the job
 * ends: the fsck count is taken and the request answered.
 *
 * States of a job: running (in s->verify's list, owner set) -> answered
 * (unlinked; freed at once, or by the last batch answer still in flight
 * when it ended early: leadership lost, shutdown).
 *
 * Invariants:
 *  1. Every replica the job counts is in exactly one of verified, bad and
 *     unverified; a server that fails, times out or goes away leaves the
 *     rest of its list unverified: a verify always ends.
 *  2. A replica is marked corrupt (or, when its server has none, forgotten)
 *     only while the registry still records it at the version re-read:
 *     one that a write moved on meanwhile is not judged by the old answer.
 *  3. A chunk under a write lease is not re-read: its replicas are
 *     changing (and a new chunk's may not exist yet).
 *  4. A job answers its client once, NOT_LEADER if leadership was lost;
 *     nothing is sent to a client connection after it closed.
 *  5. No job starts while the leader settles (master/mrepl's safe mode):
 *     the replicas of servers that have not reported yet would be left
 *     out unnoticed.  Those requests are answered NOT_READY (retried).
 */
#include "mverify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"
#include "master/csreg.h"
#include "master/mclient.h"
#include "master/mcs.h"
#include "master/mfsck.h"
#include "master/mrepl.h"
#include "master/mstatus.h"
#include "master/ns.h"

#define MVERIFY_MAX_JOBS 4
#define MVERIFY_BATCH 64
#define MVERIFY_BATCH_BASE_MS 30000u
/* A full 64 MiB replica re-read at 32 MB/s, on a disk clients share. */
#define MVERIFY_CHUNK_MS 2000u

struct mverify_item {
    uint64_t chunk;
    uint32_t version;
};

struct mverify_job;

/* One chunkserver's part of a job. */
struct mverify_server {
    struct mverify_job *job;
    uint32_t cs;
    struct mverify_item *items;     /* owned */
    size_t n, cap;
    size_t at;                      /* items before it are counted */
    size_t sent;                    /* the batch in flight: items[at..at+sent) */
};

struct mverify_job {
    struct mverify_job *next;
    struct mverify *owner;          /* NULL once answered */
    struct mserver *s;
    struct rpc_conn *conn;          /* the client; NULL once it closed */
    uint64_t req_id;
    uint64_t ino;
    struct mverify_server *servers; /* owned, with their items */
    size_t nservers, cap;
    size_t inflight;                /* batches awaiting their answer */
    uint64_t chunks;
    uint64_t verified, bad, unverified;
};

struct mverify {
    struct mverify_job *jobs;
    size_t njobs;
};

/* ---- jobs ------------------------------------------------------------------ */

static void job_free(struct mverify_job *j)
{
    for (size_t i = 0; i < j->nservers; i++)
        free(j->servers[i].items);
    free(j->servers);
    free(j);
}

static void job_unlink(struct mverify_job *j)
{
    struct mverify *m = j->owner;
    if (!m)
        return;
    for (struct mverify_job **p = &m->jobs; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            m->njobs--;
            break;
        }
    }
    j->owner = NULL;
}

/* Ends a job before its orders are answered: they free it when they are. */
static void job_abort(struct mverify_job *j, int err)
{
    job_unlink(j);
    if (j->conn)
        mclient_reply_error(j->s, j->conn, PROTO_ADMIN_FSCK, j->req_id, err);
    j->conn = NULL;
    if (!j->inflight)
        job_free(j);
}

static struct mverify_server *job_server(struct mverify_job *j, uint32_t cs)
{
    for (size_t i = 0; i < j->nservers; i++) {
        if (j->servers[i].cs == cs)
            return &j->servers[i];
    }
    if (j->nservers == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 8;
        struct mverify_server *v = realloc(j->servers, cap * sizeof(*v));
        if (!v)
            return NULL;
        j->servers = v;
        j->cap = cap;
    }
    struct mverify_server *v = &j->servers[j->nservers++];
    *v = (struct mverify_server){ .job = j, .cs = cs };
    return v;
}

static int server_add(struct mverify_server *v, uint64_t chunk, uint32_t version)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        struct mverify_item *items = realloc(v->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = (struct mverify_item){ chunk, version };
    return 0;
}

/* mfsck_walk callback: the healthy replicas of one chunk, to re-read. */
static int collect(const struct ns_chunk_info *ci, void *arg)
{
    struct mverify_job *j = arg;
    struct mserver *s = j->s;
    if (ci->committed == 0)
        return 0;   /* nothing written yet: nothing to re-read */
    j->chunks++;
    bool leased = ns_lease_holder(s->ns, ci->id) != 0;
    struct csreg_replica all[CSREG_MAX_REPLICAS];
    size_t n = csreg_replicas(s->csreg, ci->id, all, CSREG_MAX_REPLICAS);
    for (size_t i = 0; i < n; i++) {
        /* Known bad or stale ones fsck counts already. */
        if (all[i].corrupt || all[i].version < ci->committed ||
            all[i].version > ci->version)
            continue;
        const struct csreg_server *cs = csreg_server(s->csreg, all[i].cs);
        if (leased || !cs || cs->state != CSREG_UP || !cs->conn) {
            j->unverified++;
            continue;
        }
        struct mverify_server *v = job_server(j, all[i].cs);
        int rc = v ? server_add(v, ci->id, all[i].version) : -ENOMEM;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- orders ------------------------------------------------------------------ */

/* The rest of v's list is left unverified. */
static void server_give_up(struct mverify_server *v, int why)
{
    size_t left = v->n - v->at;
    if (!left)
        return;
    log_warn("fsck --verify: chunkserver %u: %s: %zu replicas left unverified",
             v->cs, dfs_strerror(why), left);
    v->job->unverified += left;
    v->at = v->n;
}

static void batch_done(void *arg, int status, const uint8_t *payload, size_t len);

/* Sends v its next batch; 0, or an error (nothing in flight then). */
static int server_send(struct mverify_server *v)
{
    struct mverify_job *j = v->job;
    const struct csreg_server *cs = csreg_server(j->s->csreg, v->cs);
    if (!cs || cs->state != CSREG_UP || !cs->conn)
        return -ENOTCONN;
    size_t n = v->n - v->at < MVERIFY_BATCH ? v->n - v->at : MVERIFY_BATCH;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        wire_put_u64(&w, v->items[v->at + i].chunk);
        wire_put_u32(&w, v->items[v->at + i].version);
    }
    uint32_t timeout = MVERIFY_BATCH_BASE_MS + (uint32_t)n * MVERIFY_CHUNK_MS;
    int rc = w.err ? w.err : rpc_call(cs->conn, PROTO_CS_ORDER_VERIFY, w.buf, w.len,
                                      timeout, batch_done, v);
    wire_writer_release(&w);
    if (rc == 0) {
        v->sent = n;
        j->inflight++;
    }
    return rc;
}

/* The replica cs holds of chunk, as recorded now; false when none is. */
static bool recorded(const struct mserver *s, uint64_t chunk, uint32_t cs,
                     struct csreg_replica *out)
{
    struct csreg_replica all[CSREG_MAX_REPLICAS];
    size_t n = csreg_replicas(s->csreg, chunk, all, CSREG_MAX_REPLICAS);
    for (size_t i = 0; i < n; i++) {
        if (all[i].cs == cs) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

/* What the re-read of one replica found. */
static void take_status(struct mverify_job *j, uint32_t cs,
                        const struct mverify_item *it, int32_t st)
{
    struct mserver *s = j->s;
    if (st == 0) {
        j->verified++;
        return;
    }
    struct csreg_replica rep;
    bool same = recorded(s, it->chunk, cs, &rep) && rep.version == it->version;
    if (!same || (st != -DFS_ECORRUPT && st != -ENOENT)) {
        if (same && st != -DFS_ESTALE_VER)
            log_warn("fsck --verify: chunk %016" PRIx64 " v%u on chunkserver %u: %s",
                     it->chunk, it->version, cs, dfs_strerror(st));
        j->unverified++;
        return;
    }
    j->bad++;
    if (st == -ENOENT) {
        log_warn("fsck --verify: chunkserver %u has no replica of chunk %016" PRIx64
                 " v%u: forgotten", cs, it->chunk, it->version);
        csreg_drop_replica(s->csreg, it->chunk, cs);
        mstatus_event(s, STATUS_EV_OTHER, "chunk %016" PRIx64 " missing on chunkserver %u "
                      "(fsck --verify)", it->chunk, cs);
        return;
    }
    if (rep.corrupt)
        return;   /* its server's report came first */
    csreg_set_replica(s->csreg, it->chunk, cs, rep.version, rep.length, true);
    mstatus_count_corrupt(s, it->chunk, cs);
    log_warn("fsck --verify: chunk %016" PRIx64 " v%u on chunkserver %u failed its checksums",
             it->chunk, it->version, cs);
    mstatus_event(s, STATUS_EV_CORRUPT, "chunk %016" PRIx64 " on chunkserver %u failed "
                  "its checksums (fsck --verify)", it->chunk, cs);
}

/* Every order answered: count and answer. */
static void job_finish(struct mverify_job *j)
{
    struct mserver *s = j->s;
    job_unlink(j);
    log_info("fsck --verify of inode %" PRIu64 ": %" PRIu64 " chunks, %" PRIu64
             " replicas verified, %" PRIu64 " bad, %" PRIu64 " unverified, on %zu chunkservers",
             j->ino, j->chunks, j->verified, j->bad, j->unverified, j->nservers);
    if (j->bad)
        mcs_recount(s);
    if (j->conn && !mclient_is_leader(s)) {
        mclient_reply_error(s, j->conn, PROTO_ADMIN_FSCK, j->req_id, -DFS_ENOTLEADER);
    } else if (j->conn) {
        struct wire_writer out;
        wire_writer_init(&out);
        int rc = mfsck_run(s, j->ino, &out);
        wire_put_u64(&out, j->verified);
        wire_put_u64(&out, j->bad);
        wire_put_u64(&out, j->unverified);
        wire_put_u32(&out, (uint32_t)j->nservers);
        if (rc == 0 && out.err)
            rc = out.err;
        if (rc < 0)
            mclient_reply_error(s, j->conn, PROTO_ADMIN_FSCK, j->req_id, rc);
        else
            rpc_send(j->conn, PROTO_ADMIN_FSCK, j->req_id, WIRE_F_REPLY, 0, out.buf,
                     out.len);
        wire_writer_release(&out);
    }
    job_free(j);
}

/* Reads a batch answer: count u32 (the batch's), status i32[count]. */
static int batch_statuses(const uint8_t *payload, size_t len, size_t sent,
                          int32_t *st)
{
    struct wire_reader r;
    wire_reader_init(&r, payload, len);
    if (wire_get_u32(&r) != sent)
        return -EBADMSG;
    for (size_t i = 0; i < sent; i++)
        st[i] = wire_get_i32(&r);
    return wire_reader_finish(&r) < 0 ? -EBADMSG : 0;
}

static void batch_done(void *arg, int status, const uint8_t *payload, size_t len)
{
    struct mverify_server *v = arg;
    struct mverify_job *j = v->job;
    size_t sent = v->sent;
    v->sent = 0;
    j->inflight--;
    if (!j->owner) {
        if (!j->inflight)
            job_free(j);
        return;
    }
    int32_t st[MVERIFY_BATCH];
    int rc = status < 0 ? status : batch_statuses(payload, len, sent, st);
    if (rc == 0) {
        for (size_t i = 0; i < sent; i++)
            take_status(j, v->cs, &v->items[v->at + i], st[i]);
        v->at += sent;
    }
    if (rc == 0 && v->at < v->n)
        rc = server_send(v);
    if (rc < 0)
        server_give_up(v, rc);
    if (!j->inflight)
        job_finish(j);
}

/* ---- requests ------------------------------------------------------------------ */

bool mverify_request(struct mserver *s, struct rpc_conn *c, uint64_t req_id,
                     const struct wire_reader *r)
{
    struct wire_reader rd = *r;
    uint64_t ino = wire_get_u64(&rd);
    uint8_t verify = wire_get_u8(&rd);
    if (wire_reader_finish(&rd) < 0 || !verify)
        return false;   /* a plain fsck (or a bad frame the caller answers) */
    if (!c)
        return true;    /* its client went away while the read was confirmed */
    struct mverify *m = s->verify;
    /* A new leader learns where replicas are from reports still coming
     * in: it would leave whole servers out.  The client retries. */
    int rc = !m ? -ENOMEM : mrepl_settling(s) ? -DFS_ENOTREADY
           : m->njobs >= MVERIFY_MAX_JOBS ? -EBUSY : 0;
    if (rc < 0) {
        mclient_reply_error(s, c, PROTO_ADMIN_FSCK, req_id, rc);
        return true;
    }
    struct mverify_job *j = calloc(1, sizeof(*j));
    if (!j) {
        mclient_reply_error(s, c, PROTO_ADMIN_FSCK, req_id, -ENOMEM);
        return true;
    }
    *j = (struct mverify_job){ .owner = m, .s = s, .conn = c, .req_id = req_id,
                               .ino = ino, .next = m->jobs };
    m->jobs = j;
    m->njobs++;
    rc = mfsck_walk(s, ino, collect, j);
    if (rc < 0) {
        job_abort(j, rc);
        return true;
    }
    log_info("fsck --verify of inode %" PRIu64 ": %" PRIu64 " chunks on %zu chunkservers",
             ino, j->chunks, j->nservers);
    for (size_t i = 0; i < j->nservers; i++) {
        rc = server_send(&j->servers[i]);
        if (rc < 0)
            server_give_up(&j->servers[i], rc);
    }
    if (!j->inflight)
        job_finish(j);
    return true;
}

void mverify_leader(struct mserver *s, bool leader)
{
    struct mverify *m = s->verify;
    while (!leader && m && m->jobs) {
        log_info("fsck --verify of inode %" PRIu64 ": leadership lost, answered NOT_LEADER",
                 m->jobs->ino);
        job_abort(m->jobs, -DFS_ENOTLEADER);
    }
}

void mverify_conn_closed(struct mserver *s, struct rpc_conn *c)
{
    struct mverify *m = s->verify;
    for (struct mverify_job *j = m ? m->jobs : NULL; j; j = j->next) {
        if (j->conn == c)
            j->conn = NULL;
    }
}

int mverify_init(struct mserver *s)
{
    s->verify = calloc(1, sizeof(*s->verify));
    return s->verify ? 0 : -ENOMEM;
}

void mverify_shutdown(struct mserver *s)
{
    mverify_leader(s, false);
    free(s->verify);
    s->verify = NULL;
}
