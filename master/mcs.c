/*
 * mcs: chunkserver registration, heartbeats and chunk reports on the
 * leader; chunk health counts for the status page.
 *
 * Invariants:
 *  1. Only the leader accepts chunkservers; a follower answers NOT_LEADER
 *     so they follow leadership like clients do.
 *  2. A chunkserver of another cluster (cluster id mismatch) is refused.
 *  3. Replica locations are what chunkservers report, never logged:
 *     after a leader change they are rebuilt from new registrations.
 */
#include "mcs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"
#include "master/csreg.h"
#include "master/mclient.h"
#include "master/mfsck.h"
#include "master/mstatus.h"
#include "master/ns.h"
#include "master/status.h"

#define MCS_HEARTBEAT_MS 1000u
#define MCS_TIMEOUT_MS 5000u
#define MCS_SCAN_MS 1000
#define MCS_HEALTH_EVERY 5           /* scans between health counts */

struct mcs {
    uint64_t timer;
    unsigned scans;
    struct status_chunks health;
};

bool mcs_handles(uint16_t type)
{
    return type == PROTO_CS_REGISTER || type == PROTO_CS_HEARTBEAT ||
           type == PROTO_CS_CHUNK_REPORT;
}

/* Reads count REPLICAs from a report into the registry. */
static int take_replicas(struct mserver *s, uint32_t cs, struct wire_reader *r)
{
    uint32_t count = wire_get_u32(r);
    if (count > r->left / 17)
        return -EBADMSG;
    for (uint32_t i = 0; i < count && !r->err; i++) {
        uint64_t id = wire_get_u64(r);
        uint32_t version = wire_get_u32(r);
        uint32_t length = wire_get_u32(r);
        uint8_t state = wire_get_u8(r);
        if (r->err)
            break;
        csreg_set_replica(s->csreg, id, cs, version, length,
                          state == PROTO_REPLICA_CORRUPT);
        if (state == PROTO_REPLICA_CORRUPT && mstatus_count_corrupt(s, id, cs))
            mstatus_event(s, STATUS_EV_CORRUPT,
                          "chunk %016" PRIx64 " on chunkserver %u failed its checksums",
                          id, cs);
    }
    return r->err;
}

static void handle_register(struct mserver *s, struct rpc_conn *c,
                            const struct wire_frame *f, struct wire_reader *r)
{
    uint64_t cluster = wire_get_u64(r);
    uint32_t id = wire_get_u32(r);
    char *addr = wire_get_str(r, PROTO_ADDR_MAX);
    char *rack = wire_get_str(r, CSREG_RACK_MAX - 1);
    uint64_t total = wire_get_u64(r);
    uint64_t used = wire_get_u64(r);
    uint8_t more = wire_get_u8(r);   /* CHUNK_REPORT frames follow */
    int64_t rc = r->err ? -EBADMSG : 0;
    uint64_t ours = strtoull(s->cluster_id, NULL, 16);
    if (rc == 0 && cluster && cluster != ours) {
        log_warn("chunkserver %s (%s) belongs to cluster %016" PRIx64 ", not %s: refused",
                 addr, rpc_peer(c), cluster, s->cluster_id);
        rc = -DFS_ECLUSTER;
    }
    /* Its new chunks take the cluster's chunk size, which a new cluster's
     * first leader may still be fixing. */
    if (rc == 0 && !ns_chunk_size_fixed(s->ns))
        rc = -DFS_ENOTREADY;
    if (rc == 0)
        rc = csreg_register(s->csreg, id, addr, rack, total, used, c,
                            (int64_t)ev_now_ms(s->loop));
    if (rc > 0) {
        id = (uint32_t)rc;
        csreg_forget_server_replicas(s->csreg, id);
        rc = take_replicas(s, id, r);
        if (rc == 0 && wire_reader_finish(r) < 0)
            rc = -EBADMSG;
        if (rc == 0 && !more)
            csreg_report_done(s->csreg, id);
    }
    if (rc < 0) {
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, (int)rc);
    } else {
        log_info("chunkserver %u registered from %s (rack %s)", id, addr, rack);
        mstatus_event(s, STATUS_EV_CS_JOIN, "chunkserver %u (%s) joined", id, addr);
        struct wire_writer w;
        wire_writer_init(&w);
        wire_put_u32(&w, id);
        wire_put_u64(&w, ours);
        wire_put_u32(&w, MCS_HEARTBEAT_MS);
        wire_put_u64(&w, ns_chunk_size(s->ns));
        rpc_reply(c, f, w.err, w.buf, w.len);
        wire_writer_release(&w);
    }
    free(addr);
    free(rack);
}

static void handle_heartbeat(struct mserver *s, struct rpc_conn *c,
                             const struct wire_frame *f, struct wire_reader *r)
{
    struct csreg_beat b;
    uint32_t id = wire_get_u32(r);
    b.total = wire_get_u64(r);
    b.used = wire_get_u64(r);
    b.chunks = wire_get_u32(r);
    b.load = wire_get_u32(r);
    b.read_bytes = wire_get_u64(r);
    b.write_bytes = wire_get_u64(r);
    b.errors = wire_get_u64(r);
    const struct csreg_server *cs = csreg_server(s->csreg, id);
    int rc = wire_reader_finish(r) < 0 ? -EBADMSG
           : !cs || cs->conn != c ? -ENOENT   /* register on this connection first */
           : csreg_heartbeat(s->csreg, id, &b, (int64_t)ev_now_ms(s->loop));
    rpc_reply(c, f, rc, NULL, 0);
}

static void handle_report(struct mserver *s, struct rpc_conn *c,
                          const struct wire_frame *f, struct wire_reader *r)
{
    uint32_t id = wire_get_u32(r);
    uint8_t kind = wire_get_u8(r);   /* FULL continues the register, CHANGED adds */
    uint8_t more = wire_get_u8(r);
    const struct csreg_server *cs = csreg_server(s->csreg, id);
    int rc = r->err ? -EBADMSG : !cs || cs->conn != c ? -ENOENT : 0;
    if (rc == 0)
        rc = take_replicas(s, id, r);
    if (rc == 0 && wire_reader_finish(r) < 0)
        rc = -EBADMSG;
    if (rc == 0 && kind == PROTO_REPORT_FULL && !more)
        csreg_report_done(s->csreg, id);
    rpc_reply(c, f, rc, NULL, 0);
}

void mcs_request(struct mserver *s, struct rpc_conn *c,
                 const struct wire_frame *f)
{
    if (!mclient_is_leader(s)) {
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, -DFS_ENOTLEADER);
        return;
    }
    struct wire_reader r;
    wire_reader_init(&r, f->payload, f->hdr.payload_len);
    switch (f->hdr.type) {
    case PROTO_CS_REGISTER:
        handle_register(s, c, f, &r);
        break;
    case PROTO_CS_HEARTBEAT:
        handle_heartbeat(s, c, f, &r);
        break;
    default:
        handle_report(s, c, f, &r);
        break;
    }
}

void mcs_conn_closed(struct mserver *s, struct rpc_conn *c)
{
    if (!s->csreg)
        return;   /* shutting down */
    bool chunkserver = false;
    for (size_t i = 0; i < csreg_count(s->csreg); i++) {
        const struct csreg_server *cs = csreg_at(s->csreg, i);
        if (cs->conn != c)
            continue;
        chunkserver = true;
        log_warn("chunkserver %u (%s) disconnected", cs->id, cs->addr);
        mstatus_event(s, STATUS_EV_CS_LEAVE, "chunkserver %u (%s) disconnected",
                      cs->id, cs->addr);
    }
    if (!chunkserver)
        return;   /* a client or a master: nothing changes for chunks */
    csreg_disconnected(s->csreg, c);
    mcs_recount(s);
}

/* Counts every chunk's healthy replicas against its goal. */
void mcs_recount(struct mserver *s)
{
    if (!s->mcs || !s->csreg)
        return;
    struct status_chunks h = { 0 };
    struct ns_chunk_info ci;
    uint32_t cursor = 0;
    size_t healthy;
    while (ns_chunk_walk(s->ns, &cursor, &ci)) {
        h.total++;
        switch (mfsck_state(s, &ci, &healthy)) {
        case PROTO_FSCK_MISSING: h.missing++; break;
        case PROTO_FSCK_CORRUPT: h.corrupt++; break;
        case PROTO_FSCK_UNDER:
        case PROTO_FSCK_TRIMMING: h.under_replicated++; break;
        default: h.healthy++; break;
        }
    }
    s->mcs->health = h;
}

static int64_t mcs_scan(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    if (!mclient_is_leader(s))
        return MCS_SCAN_MS;
    for (size_t i = 0; i < csreg_count(s->csreg); i++) {
        const struct csreg_server *cs = csreg_at(s->csreg, i);
        if (cs->state == CSREG_UP &&
            (int64_t)ev_now_ms(s->loop) - cs->last_heartbeat_ms > (int64_t)MCS_TIMEOUT_MS)
            mstatus_event(s, STATUS_EV_CS_LEAVE, "chunkserver %u (%s) silent, down",
                          cs->id, cs->addr);
    }
    if (csreg_expire(s->csreg, (int64_t)ev_now_ms(s->loop)) ||
        s->mcs->scans % MCS_HEALTH_EVERY == 0)
        mcs_recount(s);
    s->mcs->scans++;
    return MCS_SCAN_MS;
}

void mcs_health(const struct mserver *s, struct status_chunks *out)
{
    *out = s->mcs->health;
}

int mcs_init(struct mserver *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->mcs = calloc(1, sizeof(*s->mcs));
    s->csreg = csreg_new(MCS_TIMEOUT_MS, (uint64_t)ts.tv_nsec ^ s->conf->id);
    if (!s->mcs || !s->csreg)
        return -ENOMEM;
    s->mcs->timer = ev_timer_add(s->loop, MCS_SCAN_MS, mcs_scan, s);
    return s->mcs->timer ? 0 : -ENOMEM;
}

void mcs_shutdown(struct mserver *s)
{
    if (s->mcs && s->mcs->timer)
        ev_timer_cancel(s->loop, s->mcs->timer);
    free(s->mcs);
    s->mcs = NULL;
    csreg_free(s->csreg);
    s->csreg = NULL;
}
