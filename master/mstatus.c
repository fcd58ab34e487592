/*
 * mstatus: builds status snapshots from the live server and publishes one
 * to the HTTP thread every second.
 *
 * Invariants:
 *  1. The HTTP thread sees only snapshots: whole copies published with
 *     httpd_publish, never the live server state.
 *  2. The activity ring gets one sample per STATUS_SAMPLE_SECONDS from the
 *     difference of the op counters, so a page shows rates, not totals.
 */
#include "mstatus.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/net.h"
#include "common/strbuf.h"
#include "common/version.h"
#include "master/csreg.h"
#include "master/httpd.h"
#include "master/mcs.h"
#include "master/mrepl.h"
#include "master/ns.h"
#include "master/rnode.h"

#define MSTATUS_PUBLISH_MS 1000
/* The digest hashes the whole namespace on the loop (0.08 s for 200,000
 * files): at most 1 / this of its time goes to it. */
#define MSTATUS_DIGEST_SHARE 20

#define MSTATUS_CORRUPT_RECENT 256

struct mstatus {
    struct httpd *httpd;
    uint64_t timer;
    int64_t start_ms;
    struct status_history history;
    struct status_events events;
    struct status_ops ops;
    uint64_t ops_total;
    uint64_t ops_at_last_sample;
    uint64_t read_at_last_sample, write_at_last_sample;
    int64_t last_sample_ms;
    uint64_t digest;                /* ns_digest at applied index digest_index */
    uint64_t digest_index;          /* 0: none yet */
    int64_t digest_next_ms;         /* no new digest before (CLOCK_MONOTONIC) */
    /* The bad replicas counted last, oldest overwritten first. */
    struct { uint64_t chunk; uint32_t cs; } corrupt_recent[MSTATUS_CORRUPT_RECENT];
    size_t corrupt_next;
};

/* The digest of the state at applied, computed again only when the state
 * moved and the last one's cost, MSTATUS_DIGEST_SHARE times over, has
 * passed: under load it lags the applied index (digest_index says which
 * state it is of), and an idle master's is always current. */
static void refresh_digest(struct mstatus *ms, const struct ns *ns, uint64_t applied)
{
    int64_t t0 = (int64_t)ev_clock_ms();
    if ((ms->digest_index == applied && ms->digest_index) || t0 < ms->digest_next_ms)
        return;
    ms->digest = ns_digest(ns);
    ms->digest_index = applied;
    int64_t cost = (int64_t)ev_clock_ms() - t0;
    ms->digest_next_ms = t0 + cost * MSTATUS_DIGEST_SHARE;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum status_role role_of(enum raft_state st)
{
    switch (st) {
    case RAFT_LEADER: return STATUS_ROLE_LEADER;
    case RAFT_CANDIDATE:
    case RAFT_PRECANDIDATE: return STATUS_ROLE_CANDIDATE;
    default: return STATUS_ROLE_FOLLOWER;
    }
}

static void fill_masters(struct mserver *s, const struct rnode_status *rs,
                         struct status_snap *snap)
{
    const struct raft_members *mb = rnode_members(s->rnode);
    for (size_t i = 0; i < s->n_masters; i++) {
        struct status_master *m = &snap->masters[i];
        m->id = s->master_ids[i];
        snprintf(m->address, sizeof(m->address), "%s", s->master_addrs[i]);
        if (s->master_http[i])
            snprintf(m->http, sizeof(m->http), "http://%s/", s->master_http[i]);
        m->self = m->id == rs->id;
        m->contact_age_ms = -1;
        const struct raft_server *rsv = raft_members_find(mb, m->id);
        if (m->self)
            m->role = role_of(rs->state);
        else if (m->id == rs->leader)
            m->role = STATUS_ROLE_LEADER;
        else if (rsv && rsv->role == RAFT_LEARNER)
            m->role = STATUS_ROLE_LEARNER;
        else
            m->role = rs->leader ? STATUS_ROLE_FOLLOWER : STATUS_ROLE_UNKNOWN;
        if (m->self)
            m->snapshot_index = rs->snapshot_index;
        else
            rnode_peer_info(s->rnode, m->id, &m->contact_age_ms, &m->match_index);
    }
}

/* Data bytes the chunkservers read and wrote since they started. */
static void io_totals(const struct mserver *s, uint64_t *rd, uint64_t *wr)
{
    *rd = *wr = 0;
    for (size_t i = 0; s->csreg && i < csreg_count(s->csreg); i++) {
        *rd += csreg_at(s->csreg, i)->read_bytes;
        *wr += csreg_at(s->csreg, i)->write_bytes;
    }
}

static void fill_chunkservers(struct mserver *s, struct status_snap *snap)
{
    /* csreg's heartbeat times are the loop's monotonic clock. */
    int64_t now = (int64_t)ev_now_ms(s->loop);
    for (size_t i = 0; i < snap->ncs; i++) {
        const struct csreg_server *cs = csreg_at(s->csreg, i);
        struct status_chunkserver *o = &snap->chunkservers[i];
        o->id = cs->id;
        snprintf(o->address, sizeof(o->address), "%.*s", (int)sizeof(o->address) - 1, cs->addr);
        snprintf(o->rack, sizeof(o->rack), "%.*s", (int)sizeof(o->rack) - 1, cs->rack);
        /* "decommissioned" (safe to remove) only while the leader knows
         * it drained: csreg keeps drain_left unknown for a server that is
         * down or has not reported, so a stopped one shows "down". */
        o->state = cs->decommission && cs->drain_left == 0 ? STATUS_CS_DECOMMISSIONED
                 : cs->state == CSREG_DOWN ? STATUS_CS_DOWN
                 : cs->decommission ? STATUS_CS_DECOMMISSIONING : STATUS_CS_UP;
        o->bytes_total = cs->bytes_total;
        o->bytes_used = cs->bytes_used;
        o->chunks = cs->chunks;
        o->load = cs->load;
        o->heartbeat_age_ms = now - cs->last_heartbeat_ms;
        o->errors_total = cs->errors;
    }
}

struct status_snap *mstatus_snapshot(struct mserver *s)
{
    struct mstatus *ms = s->st;
    size_t ncs = s->csreg ? csreg_count(s->csreg) : 0;
    struct status_snap *snap = status_snap_new(s->n_masters, ncs);
    if (!snap)
        return NULL;
    struct rnode_status rs;
    rnode_status(s->rnode, &rs);
    struct ns_statfs fs;
    ns_statfs(s->ns, &fs);
    snprintf(snap->cluster, sizeof(snap->cluster), "%s", s->cluster_id);
    snprintf(snap->version, sizeof(snap->version), "%s", DFS_VERSION);
    snap->chunk_size = ns_chunk_size(s->ns);
    snap->now_ms = wall_ms();
    snap->start_ms = ms->start_ms;
    snap->self_id = rs.id;
    snap->role = role_of(rs.state);
    snap->leader_id = rs.leader;
    snap->term = rs.term;
    snap->commit_index = rs.commit;
    snap->applied_index = rs.applied;
    snap->snapshot_index = rs.snapshot_index;
    refresh_digest(ms, s->ns, rs.applied);
    snap->state_digest = ms->digest;
    snap->digest_index = ms->digest_index;
    snap->leader_changes_total = rs.leader_changes;
    snap->files = fs.files;
    snap->directories = fs.dirs;
    if (s->mcs)
        mcs_health(s, &snap->chunks);
    snap->chunks.rereplicating = mrepl_inflight(s);
    snap->rereplications_total = s->rereplications;
    snap->corrupt_replicas_total = s->corrupt_replicas;
    io_totals(s, &snap->read_bytes_total, &snap->write_bytes_total);
    fill_chunkservers(s, snap);
    snap->ops = ms->ops;
    snap->history = ms->history;
    snap->events = ms->events;
    fill_masters(s, &rs, snap);
    return snap;
}

int mstatus_json(struct mserver *s, struct strbuf *out)
{
    struct status_snap *snap = mstatus_snapshot(s);
    if (!snap)
        return -ENOMEM;
    int rc = status_render_json(snap, out);
    status_snap_free(snap);
    return rc;
}

void mstatus_event(struct mserver *s, enum status_event_kind kind,
                   const char *fmt, ...)
{
    char text[STATUS_EVENT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (s->st)
        status_events_add(&s->st->events, wall_ms(), kind, "%s", text);
}

bool mstatus_count_corrupt(struct mserver *s, uint64_t chunk, uint32_t cs)
{
    struct mstatus *ms = s->st;
    if (ms) {
        for (size_t i = 0; i < MSTATUS_CORRUPT_RECENT; i++) {
            if (ms->corrupt_recent[i].chunk == chunk && ms->corrupt_recent[i].cs == cs)
                return false;
        }
        ms->corrupt_recent[ms->corrupt_next].chunk = chunk;
        ms->corrupt_recent[ms->corrupt_next].cs = cs;
        ms->corrupt_next = (ms->corrupt_next + 1) % MSTATUS_CORRUPT_RECENT;
    }
    s->corrupt_replicas++;
    return true;
}

void mstatus_count_op(struct mserver *s, const char *name)
{
    if (!s->st)
        return;
    status_ops_add(&s->st->ops, name, 1);
    s->st->ops_total++;
}

static uint64_t delta(uint64_t now, uint64_t before)
{
    return now > before ? now - before : 0;   /* a restart resets a counter */
}

static void mstatus_sample(struct mserver *s)
{
    struct mstatus *ms = s->st;
    int64_t now = wall_ms();
    if (now - ms->last_sample_ms < STATUS_SAMPLE_SECONDS * 1000)
        return;
    uint64_t rd, wr;
    io_totals(s, &rd, &wr);
    struct status_sample smp = {
        .time_ms = now,
        .ops = ms->ops_total - ms->ops_at_last_sample,
        .read_bytes = delta(rd, ms->read_at_last_sample),
        .write_bytes = delta(wr, ms->write_at_last_sample),
    };
    status_history_add(&ms->history, &smp);
    ms->ops_at_last_sample = ms->ops_total;
    ms->read_at_last_sample = rd;
    ms->write_at_last_sample = wr;
    ms->last_sample_ms = now;
}

static int64_t mstatus_tick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    mstatus_sample(s);
    if (s->st->httpd) {
        struct status_snap *snap = mstatus_snapshot(s);
        if (snap)
            httpd_publish(s->st->httpd, snap);
    }
    return MSTATUS_PUBLISH_MS;
}

int mstatus_init(struct mserver *s)
{
    struct mstatus *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return -ENOMEM;
    s->st = ms;
    ms->start_ms = ms->last_sample_ms = wall_ms();
    if (s->conf->http && s->conf->http[0]) {
        char host[NET_HOST_MAX];
        uint16_t port;
        int rc = net_parse_addr(s->conf->http, host, sizeof(host), &port);
        if (rc == 0)
            rc = httpd_start(host, port, NULL, &ms->httpd);
        if (rc < 0) {
            log_error("status page on %s: %s", s->conf->http, dfs_strerror(rc));
            return rc;
        }
    }
    ms->timer = ev_timer_add(s->loop, MSTATUS_PUBLISH_MS, mstatus_tick, s);
    return ms->timer ? 0 : -ENOMEM;
}

void mstatus_shutdown(struct mserver *s)
{
    struct mstatus *ms = s->st;
    if (!ms)
        return;
    if (ms->timer)
        ev_timer_cancel(s->loop, ms->timer);
    httpd_stop(ms->httpd);
    free(ms);
    s->st = NULL;
}
