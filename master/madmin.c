/*
 * madmin: adding and removing masters, leadership transfer, chunkserver
 * decommission, and the replicated membership state behind them.
 *
 * Who is a member is the Raft configuration; where each master is (its
 * Raft/client address and status page) is the address book, replicated
 * state of its own (master/mmember): MMEMBER_MASTERS log entries replace
 * it, the snapshot carries it, and every change is also written to
 * data_dir/masters so that a restarted master can reach its peers before
 * it has replayed anything.  The book starts as the configuration's
 * `masters` / `masters_http` (the same on every first master).
 *
 * One admin change runs at a time (op below), driven by committed entries
 * (madmin_apply), by a 100 ms timer and by role changes.  An applied entry
 * only schedules the next step (a 0 ms timer): apply runs inside the Raft
 * node's Ready, where the core takes no proposal or configuration change.
 * Its states:
 *
 *   ADD:      PROBE (ask the new master who it is) -> BOOK (its addresses
 *             in the book, committed) -> LEARNER (config entry committed)
 *             -> PROMOTE (retried until caught up; committed) -> answered
 *   REMOVE:   CONFIG (config entry committed) -> answered
 *   TRANSFER: WAIT (until the target leads, or -ETIMEDOUT)
 *   DECOM:    BOOK (the entry applied) -> answered
 *
 * Invariants:
 *  1. The book changes only by applying committed entries or installing a
 *     snapshot, the same way on every master; requests never touch it.
 *  2. A master's address is in the book before it enters the
 *     configuration (BOOK before LEARNER), so every member can reach it.
 *  3. Every admin request is answered once: by its op, or NOT_LEADER when
 *     leadership is lost first (the client retries; every op is
 *     idempotent: adding a member answers its id, marking a marked
 *     chunkserver succeeds).
 *  4. A master that was a member and is no longer in the leader's
 *     configuration stops (and says so); one started with --join is not
 *     such a master until it first sees itself in the configuration.
 */
#include "madmin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/fsio.h"
#include "common/log.h"
#include "common/net.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"
#include "master/csreg.h"
#include "master/mclient.h"
#include "master/mmember.h"
#include "master/mstatus.h"
#include "master/raft.h"
#include "master/rnode.h"

#define MADMIN_TICK_MS 100
#define MADMIN_ADD_MS 300000          /* an add gives up (the learner stays) */
#define MADMIN_TRANSFER_MS 5000
#define MADMIN_ASK_MS 2000            /* one ADMIN_MASTERS question */
#define MADMIN_LEADERLESS_MS 3000     /* then ask whether we were removed, */
#define MADMIN_ASK_EVERY_MS 500       /* one master at a time */
#define MADMIN_BOOK_FILE "masters"
#define MADMIN_JOINING_FILE "joining"
#define MADMIN_REMOVED_FILE "removed"

enum madmin_kind { OP_NONE, OP_ADD, OP_REMOVE, OP_TRANSFER, OP_DECOM };
enum madmin_step { ST_PROBE, ST_BOOK, ST_LEARNER, ST_PROMOTE, ST_CONFIG, ST_WAIT };
enum madmin_ask_for { ASK_NONE, ASK_PROBE, ASK_MEMBERSHIP };

struct madmin_op {
    enum madmin_kind kind;
    enum madmin_step step;
    struct rpc_conn *conn;            /* NULL once it closed */
    uint64_t req_id;
    uint16_t type;
    uint64_t id;                      /* the master */
    uint32_t cs;                      /* the chunkserver */
    char addr[MMEMBER_ADDR_MAX];
    char http[MMEMBER_ADDR_MAX];
    uint64_t index, term;             /* the entry waited for (0: none) */
    int64_t deadline_ms;
};

/* One member in an ADMIN_MASTERS answer. */
struct madmin_member {
    uint64_t id;
    uint8_t role;
    char addr[MMEMBER_ADDR_MAX];
    char http[MMEMBER_ADDR_MAX];
};

/* A decoded ADMIN_MASTERS answer. */
struct madmin_view {
    uint64_t cluster_id, self_id, leader_id, term, commit;
    uint64_t config_index;            /* 0: not asked, or an older master */
    uint8_t self_role;
    char self_addr[MMEMBER_ADDR_MAX];
    char self_http[MMEMBER_ADDR_MAX];
    size_t n;
    struct madmin_member m[MMEMBER_MAX];
};

struct madmin {
    struct mmember book;              /* replicated (invariant 1) */
    bool book_cached;                 /* loaded from data_dir/masters */
    bool started;                     /* the Raft node is open */
    bool joining;
    bool leader;
    uint64_t timer;
    uint64_t kick;                    /* the op's next step, soon; 0: none */
    struct madmin_op op;
    /* An ADMIN_MASTERS question to another master. */
    enum madmin_ask_for ask_for;
    struct rpc_conn *ask;
    /* Removal watch. */
    int64_t leaderless_since_ms;      /* 0: a leader is known */
    int64_t next_ask_ms;
    size_t ask_next;                  /* next book entry to ask */
};

static int64_t now_ms(const struct mserver *s)
{
    return (int64_t)ev_now_ms(s->loop);
}

/* ---- the book in the server's tables and in the Raft node ---------------- */

static void free_tables(struct mserver *s)
{
    for (size_t i = 0; i < s->n_masters; i++) {
        free(s->master_addrs[i]);
        free(s->master_http[i]);
        s->master_addrs[i] = s->master_http[i] = NULL;
    }
    s->n_masters = 0;
}

/* s->master_* (NOT_LEADER hints, the status page) follow the book. */
static void publish_tables(struct mserver *s)
{
    const struct mmember *b = &s->madmin->book;
    free_tables(s);
    for (size_t i = 0; i < b->n && i < MSERVER_MAX_MASTERS; i++) {
        s->master_ids[i] = b->m[i].id;
        s->master_addrs[i] = strdup(b->m[i].addr);
        s->master_http[i] = b->m[i].http[0] ? strdup(b->m[i].http) : NULL;
        if (!s->master_addrs[i])
            break;   /* out of memory: the tables are a view, shorter */
        s->n_masters = i + 1;
    }
}

/* Peers follow the book; a peer leaves only once out of the config too. */
static void sync_peers(struct mserver *s, const struct mmember *before)
{
    const struct mmember *b = &s->madmin->book;
    if (!s->rnode)
        return;
    for (size_t i = 0; i < b->n; i++) {
        if (b->m[i].id != s->conf->id &&
            rnode_set_peer(s->rnode, b->m[i].id, b->m[i].addr) < 0)
            log_warn("master %" PRIu64 ": bad address \"%s\" in the member list",
                     b->m[i].id, b->m[i].addr);
    }
    const struct raft_members *cfg = rnode_members(s->rnode);
    for (size_t i = 0; before && i < before->n; i++) {
        uint64_t id = before->m[i].id;
        if (!mmember_find(b, id) && !raft_members_find(cfg, id))
            rnode_drop_peer(s->rnode, id);
    }
}

static void cache_book(struct mserver *s)
{
    char buf[MMEMBER_MAX * (2 * MMEMBER_ADDR_MAX + 24)];
    int len = mmember_format_masters(&s->madmin->book, buf, sizeof(buf));
    int rc = len < 0 ? len
           : fsio_write_file_atomic(s->fs, s->conf->data_dir, MADMIN_BOOK_FILE, buf,
                                    (size_t)len);
    if (rc < 0)
        log_warn("%s/%s: cannot save the member list: %s", s->conf->data_dir,
                 MADMIN_BOOK_FILE, dfs_strerror(rc));
}

/* The book changed (an entry or a snapshot): everything that follows it. */
static void book_changed(struct mserver *s, const struct mmember *before)
{
    publish_tables(s);
    sync_peers(s, before);
    cache_book(s);
}

static void mark_decommissions(struct mserver *s)
{
    if (!s->csreg)
        return;
    csreg_clear_decommission(s->csreg);
    for (size_t i = 0; i < s->madmin->book.ndecom; i++)
        csreg_decommission(s->csreg, s->madmin->book.decom[i]);
}

/* ---- files in the data directory ------------------------------------------ */

static bool data_file_exists(struct mserver *s, const char *name)
{
    char path[4096];
    struct fsio_stat st;
    snprintf(path, sizeof(path), "%s/%s", s->conf->data_dir, name);
    return fsio_stat(s->fs, path, &st) == 0;
}

static void data_file_write(struct mserver *s, const char *name, const char *text)
{
    int rc = fsio_write_file_atomic(s->fs, s->conf->data_dir, name, text, strlen(text));
    if (rc < 0)
        log_warn("%s/%s: %s", s->conf->data_dir, name, dfs_strerror(rc));
}

static void data_file_remove(struct mserver *s, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", s->conf->data_dir, name);
    if (fsio_unlink(s->fs, path) == 0)
        fsio_fsync_dir(s->fs, s->conf->data_dir);
}

/* ---- ADMIN_MASTERS: encoding and decoding ---------------------------------- */

static uint8_t member_role(const struct raft_members *cfg, uint64_t id)
{
    const struct raft_server *rs = raft_members_find(cfg, id);
    if (!rs)
        return PROTO_MEMBER_NONE;
    return rs->role == RAFT_VOTER ? PROTO_MEMBER_VOTER : PROTO_MEMBER_LEARNER;
}

/* flags: PROTO_MASTERS_F_CONFIG adds where the configuration comes from. */
static void put_view(struct mserver *s, struct wire_writer *w, uint8_t flags)
{
    struct rnode_status st;
    rnode_status(s->rnode, &st);
    const struct raft_members *cfg = rnode_members(s->rnode);
    wire_put_u64(w, strtoull(s->cluster_id, NULL, 16));
    wire_put_u64(w, s->conf->id);
    wire_put_u8(w, member_role(cfg, s->conf->id));
    wire_put_str(w, s->conf->listen);
    wire_put_str(w, s->conf->http ? s->conf->http : "");
    wire_put_u64(w, st.leader);
    wire_put_u64(w, st.term);
    wire_put_u64(w, st.commit);
    wire_put_u32(w, cfg->n);
    for (uint32_t i = 0; i < cfg->n; i++) {
        const struct mmember_master *m = mmember_find(&s->madmin->book, cfg->servers[i].id);
        wire_put_u64(w, cfg->servers[i].id);
        wire_put_u8(w, member_role(cfg, cfg->servers[i].id));
        wire_put_str(w, m ? m->addr : "");
        wire_put_str(w, m ? m->http : "");
    }
    if (flags & PROTO_MASTERS_F_CONFIG)
        wire_put_u64(w, st.members_index);
}

static void get_text(struct wire_reader *r, char *out, size_t cap)
{
    char *t = wire_get_str(r, cap - 1);
    snprintf(out, cap, "%s", t ? t : "");
    free(t);
}

static int get_view(const uint8_t *p, size_t len, struct madmin_view *v)
{
    struct wire_reader r;
    wire_reader_init(&r, p, len);
    memset(v, 0, sizeof(*v));
    v->cluster_id = wire_get_u64(&r);
    v->self_id = wire_get_u64(&r);
    v->self_role = wire_get_u8(&r);
    get_text(&r, v->self_addr, sizeof(v->self_addr));
    get_text(&r, v->self_http, sizeof(v->self_http));
    v->leader_id = wire_get_u64(&r);
    v->term = wire_get_u64(&r);
    v->commit = wire_get_u64(&r);
    uint32_t n = wire_get_u32(&r);
    if (!r.err && n > MMEMBER_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < n && !r.err; i++) {
        struct madmin_member *m = &v->m[v->n++];
        m->id = wire_get_u64(&r);
        m->role = wire_get_u8(&r);
        get_text(&r, m->addr, sizeof(m->addr));
        get_text(&r, m->http, sizeof(m->http));
    }
    if (!r.err && r.left)
        v->config_index = wire_get_u64(&r);   /* asked with PROTO_MASTERS_F_CONFIG */
    return wire_reader_finish(&r) < 0 ? -EBADMSG : 0;
}

/* An empty HEAD: no session, no sequence, root. */
static void put_empty_head(struct wire_writer *w)
{
    wire_put_u64(w, 0);
    wire_put_u64(w, 0);
    wire_put_u64(w, 0);
    wire_put_u32(w, 0);
    wire_put_u32(w, 0);
    wire_put_u32(w, 0);
}

static int skip_head(struct wire_reader *r)
{
    for (int i = 0; i < 3; i++)
        wire_get_u64(r);
    wire_get_u32(r);
    wire_get_u32(r);
    uint32_t ng = wire_get_u32(r);
    if (!r->err && ng > PROTO_GROUPS_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < ng; i++)
        wire_get_u32(r);
    return r->err ? -EBADMSG : 0;
}

/* ---- joining ------------------------------------------------------------------ */

/* Asks one master, blocking (start-up only). */
static int ask_blocking(struct mserver *s, const char *addr, struct madmin_view *v)
{
    char host[NET_HOST_MAX];
    uint16_t port;
    if (net_parse_addr(addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    int fd = rpc_dial(host, port, &s->key, MADMIN_ASK_MS);
    if (fd < 0)
        return fd;
    struct wire_writer w;
    wire_writer_init(&w);
    put_empty_head(&w);
    struct rpc_reply r;
    int rc = w.err ? w.err : rpc_call_fd(fd, PROTO_ADMIN_MASTERS, w.buf, w.len, 0,
                                         MADMIN_ASK_MS, &r);
    wire_writer_release(&w);
    close(fd);
    if (rc < 0)
        return rc;
    rc = r.hdr.status < 0 ? r.hdr.status : get_view(r.payload, r.len, v);
    rpc_reply_release(&r);
    return rc;
}

/* Takes what a member said: the cluster id and the book of its members. */
static int take_view(struct mserver *s, const char *from, const struct madmin_view *v)
{
    char id[17];
    snprintf(id, sizeof(id), "%016" PRIx64, v->cluster_id);
    if (s->conf->cluster_id[0] && strcmp(s->conf->cluster_id, id)) {
        log_error("--join: %s belongs to cluster %s, not cluster_id %s", from, id,
                  s->conf->cluster_id);
        return -DFS_ECLUSTER;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (v->m[i].id == s->conf->id && strcmp(v->m[i].addr, s->conf->listen)) {
            log_error("--join: master id %" PRIu64 " is already a member at %s; "
                      "give this master another id", s->conf->id, v->m[i].addr);
            return -EEXIST;
        }
    }
    struct mmember *b = &s->madmin->book;
    b->n = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->m[i].addr[0] && mmember_set(b, v->m[i].id, v->m[i].addr, v->m[i].http) < 0)
            log_warn("--join: master %" PRIu64 ": unusable address \"%s\"", v->m[i].id,
                     v->m[i].addr);
    }
    snprintf(s->cluster_id, sizeof(s->cluster_id), "%s", id);
    log_info("--join: cluster %s has %zu masters (asked %s); this master is %" PRIu64,
             id, v->n, from, s->conf->id);
    return 0;
}

int madmin_join(struct mserver *s)
{
    char *spec = strdup(s->conf->masters ? s->conf->masters : "");
    if (!spec)
        return -ENOMEM;
    int rc = -ENOENT;
    char *save = NULL;
    struct madmin_view *v = malloc(sizeof(*v));
    for (char *item = strtok_r(spec, ", ", &save); v && item && rc < 0;
         item = strtok_r(NULL, ", ", &save)) {
        char *addr = strchr(item, '=') ? strchr(item, '=') + 1 : item;
        if (!strcmp(addr, s->conf->listen))
            continue;   /* this master, listed beside the others */
        int err = ask_blocking(s, addr, v);
        if (err == 0)
            rc = take_view(s, addr, v);
        else
            log_warn("--join: asking %s: %s", addr, dfs_strerror(err));
        if (rc == -DFS_ECLUSTER || rc == -EEXIST)
            break;
    }
    if (!v)
        rc = -ENOMEM;
    else if (rc == -ENOENT)
        log_error("--join: no master of the cluster answered (masters = %s)",
                  s->conf->masters);
    free(v);
    free(spec);
    return rc;
}

int madmin_mark_joining(struct mserver *s)
{
    static const char text[] = "waiting to be added\n";
    int rc = fsio_write_file_atomic(s->fs, s->conf->data_dir, MADMIN_JOINING_FILE, text,
                                    strlen(text));
    if (rc < 0)
        log_error("%s/%s: %s", s->conf->data_dir, MADMIN_JOINING_FILE, dfs_strerror(rc));
    return rc;
}

bool madmin_join_pending(struct mserver *s)
{
    return data_file_exists(s, MADMIN_JOINING_FILE);
}

/* ---- start ---------------------------------------------------------------------- */

int madmin_init(struct mserver *s)
{
    s->madmin = calloc(1, sizeof(*s->madmin));
    if (!s->madmin)
        return -ENOMEM;
    mmember_init(&s->madmin->book);
    return 0;
}

int madmin_load(struct mserver *s, bool join)
{
    struct madmin *ma = s->madmin;
    if (data_file_exists(s, MADMIN_REMOVED_FILE)) {
        log_error("master %" PRIu64 " was removed from the cluster (%s/%s); to bring "
                  "it back, empty %s and start it with --join, then add it",
                  s->conf->id, s->conf->data_dir, MADMIN_REMOVED_FILE, s->conf->data_dir);
        return -DFS_ECLUSTER;
    }
    if (join)
        cache_book(s);   /* madmin_join filled it; the joining mark is written */
    ma->joining = data_file_exists(s, MADMIN_JOINING_FILE);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", s->conf->data_dir, MADMIN_BOOK_FILE);
    void *text = NULL;
    size_t len;
    int rc = fsio_read_file(s->fs, path, 1 << 20, &text, &len);
    if (rc == 0) {
        rc = mmember_parse_masters(&ma->book, text);
        if (rc < 0)
            log_error("%s: not a member list (\"id host:port http\" lines)", path);
        ma->book_cached = rc == 0;
    } else if (rc == -ENOENT && !join && ma->joining) {
        log_error("%s: missing: the --join that made %s did not finish; start this "
                  "master with --join again", path, s->conf->data_dir);
        rc = -DFS_ECONF;
    } else if (rc == -ENOENT && !join) {
        rc = 0;   /* never changed: the configuration's masters */
        for (size_t i = 0; i < s->n_masters && rc == 0; i++)
            rc = mmember_set(&ma->book, s->master_ids[i], s->master_addrs[i],
                             s->master_http[i]);
        if (rc < 0)
            log_error("masters: %s", dfs_strerror(rc));
    } else if (rc < 0) {
        log_error("%s: %s", path, dfs_strerror(rc));
    }
    free(text);
    if (rc == 0)
        publish_tables(s);
    if (rc == 0 && ma->joining)
        log_info("master %" PRIu64 " waits to be added: dfsadmin masters add %s",
                 s->conf->id, s->conf->listen);
    return rc;
}

bool madmin_joining(const struct mserver *s)
{
    return s->madmin && s->madmin->joining;
}

static int64_t madmin_tick(struct ev_loop *loop, void *arg);

void madmin_started(struct mserver *s)
{
    struct madmin *ma = s->madmin;
    ma->started = true;
    sync_peers(s, NULL);
    mark_decommissions(s);
    ma->timer = ev_timer_add(s->loop, MADMIN_TICK_MS, madmin_tick, s);
}

/* ---- answering ------------------------------------------------------------------ */

static void reply(struct mserver *s, struct rpc_conn *c, uint16_t type,
                  uint64_t req_id, int status, const struct wire_writer *w)
{
    if (!c)
        return;
    if (status < 0) {
        mclient_reply_error(s, c, type, req_id, status);
        return;
    }
    rpc_send(c, type, req_id, WIRE_F_REPLY, 0, w ? w->buf : NULL, w ? w->len : 0);
}

/* Ends the op with status (and the new master's id for a successful add). */
static void op_finish(struct mserver *s, int status)
{
    struct madmin_op *op = &s->madmin->op;
    struct wire_writer w;
    wire_writer_init(&w);
    if (status == 0 && op->kind == OP_ADD)
        wire_put_u64(&w, op->id);
    reply(s, op->conn, op->type, op->req_id, status, &w);
    wire_writer_release(&w);
    if (status < 0 && status != -DFS_ENOTLEADER)
        log_warn("admin request 0x%04x failed: %s", op->type, dfs_strerror(status));
    memset(op, 0, sizeof(*op));
}

/* ---- the op's steps --------------------------------------------------------------- */

static int propose_entry(struct mserver *s, const struct wire_writer *w)
{
    struct madmin_op *op = &s->madmin->op;
    if (w->err)
        return w->err;
    return rnode_propose(s->rnode, w->buf, w->len, &op->index, &op->term);
}

/* The book with the master being added (its addresses as probed). */
static int add_book_step(struct mserver *s)
{
    struct madmin_op *op = &s->madmin->op;
    const struct mmember_master *have = mmember_find(&s->madmin->book, op->id);
    op->step = ST_BOOK;
    if (have && !strcmp(have->addr, op->addr) && !strcmp(have->http, op->http)) {
        op->step = ST_LEARNER;
        return 0;
    }
    struct mmember *next = malloc(sizeof(*next));
    if (!next)
        return -ENOMEM;
    *next = s->madmin->book;
    int rc = mmember_set(next, op->id, op->addr, op->http);
    struct wire_writer w;
    wire_writer_init(&w);
    if (rc == 0) {
        mmember_encode_masters(next, &w);
        rc = propose_entry(s, &w);
    }
    wire_writer_release(&w);
    free(next);
    return rc;
}

/* A config entry of this op has committed (and is still ours). */
static bool config_done(struct mserver *s)
{
    struct madmin_op *op = &s->madmin->op;
    struct rnode_status st;
    rnode_status(s->rnode, &st);
    if (!op->index || st.commit < op->index)
        return false;
    uint64_t t = rnode_term_at(s->rnode, op->index);
    return t == op->term || (t == 0 && st.term == op->term);
}

static bool config_lost(struct mserver *s)
{
    struct madmin_op *op = &s->madmin->op;
    uint64_t t = op->index ? rnode_term_at(s->rnode, op->index) : 0;
    return t && t != op->term;
}

/* One step of an add, from the timer or an applied entry. */
static void add_progress(struct mserver *s)
{
    struct madmin_op *op = &s->madmin->op;
    if (op->index && config_lost(s)) {
        op_finish(s, -DFS_ENOTLEADER);
        return;
    }
    if (op->index && !config_done(s))
        return;   /* the config entry has not committed yet */
    if (op->index) {
        op->index = 0;
        if (op->step == ST_LEARNER)
            op->step = ST_PROMOTE;
    }
    const struct raft_server *rs = raft_members_find(rnode_members(s->rnode), op->id);
    int rc = 0;
    if (op->step == ST_LEARNER && rs) {
        op->step = ST_PROMOTE;
    } else if (op->step == ST_LEARNER) {
        rc = rnode_add_learner(s->rnode, op->id, &op->index, &op->term);
        if (rc == 0)
            log_info("master %" PRIu64 " (%s) added as a learner", op->id, op->addr);
    }
    if (op->step == ST_PROMOTE && !op->index) {
        if (rs && rs->role == RAFT_VOTER) {
            log_info("master %" PRIu64 " (%s) is a voter", op->id, op->addr);
            mstatus_event(s, STATUS_EV_MEMBERSHIP, "master %" PRIu64 " (%s) joined as a voter",
                          op->id, op->addr);
            op_finish(s, 0);
            return;
        }
        rc = rnode_promote(s->rnode, op->id, &op->index, &op->term);
    }
    if (rc == -EBUSY || rc == -EAGAIN)
        rc = 0;   /* a change in flight, or the learner is behind: later */
    if (rc < 0)
        op_finish(s, rc);
}

static void remove_progress(struct mserver *s)
{
    struct madmin_op *op = &s->madmin->op;
    int rc = 0;
    if (!op->index) {
        rc = rnode_remove(s->rnode, op->id, &op->index, &op->term);
        if (rc == -EBUSY)
            return;
        if (rc == 0)
            log_info("removing master %" PRIu64 " from the configuration", op->id);
    }
    if (rc == 0 && config_done(s)) {
        mstatus_event(s, STATUS_EV_MEMBERSHIP, "master %" PRIu64 " removed", op->id);
        op_finish(s, 0);
        return;
    }
    if (rc == 0 && config_lost(s))
        rc = -DFS_ENOTLEADER;
    if (rc < 0)
        op_finish(s, rc);
}

static void transfer_progress(struct mserver *s)
{
    struct madmin_op *op = &s->madmin->op;
    struct rnode_status st;
    rnode_status(s->rnode, &st);
    if (st.leader == op->id && (st.state != RAFT_LEADER || op->id == s->conf->id)) {
        log_info("leadership is with master %" PRIu64 " as asked", op->id);
        op_finish(s, 0);
        return;
    }
    if (now_ms(s) > op->deadline_ms) {
        op_finish(s, -ETIMEDOUT);
        return;
    }
    if (st.state == RAFT_LEADER) {
        int rc = rnode_transfer(s->rnode, op->id);
        if (rc < 0 && rc != -EBUSY)
            op_finish(s, rc);
    }
}

static void op_progress(struct mserver *s)
{
    switch (s->madmin->op.kind) {
    case OP_ADD:
        if (s->madmin->op.step >= ST_LEARNER)
            add_progress(s);
        break;
    case OP_REMOVE:
        remove_progress(s);
        break;
    case OP_TRANSFER:
        transfer_progress(s);
        break;
    default:
        break;
    }
    if (s->madmin->op.kind == OP_ADD && now_ms(s) > s->madmin->op.deadline_ms)
        op_finish(s, -ETIMEDOUT);
}

/* ---- asking another master ---------------------------------------------------------- */

static void ask_closed(struct rpc_conn *c, int err)
{
    (void)err;
    struct mserver *s = rpc_ctx(c);
    if (s->madmin && s->madmin->ask == c) {
        if (s->madmin->ask_for == ASK_PROBE && s->madmin->op.kind == OP_ADD &&
            s->madmin->op.step == ST_PROBE)
            op_finish(s, err && err != -ECONNRESET ? err : -EHOSTUNREACH);
        s->madmin->ask = NULL;
        s->madmin->ask_for = ASK_NONE;
    }
}

static void ask_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    (void)c;
    (void)f;   /* the other master asks us nothing on this connection */
}

static void probe_answer(struct mserver *s, const struct madmin_view *v)
{
    struct madmin_op *op = &s->madmin->op;
    if (op->kind != OP_ADD || op->step != ST_PROBE)
        return;
    uint64_t ours = strtoull(s->cluster_id, NULL, 16);
    const struct mmember_master *same = mmember_find(&s->madmin->book, v->self_id);
    const struct raft_server *member = raft_members_find(rnode_members(s->rnode), v->self_id);
    int rc = 0;
    if (v->cluster_id != ours) {
        log_warn("master add %s: it belongs to cluster %016" PRIx64 ", not %s", op->addr,
                 v->cluster_id, s->cluster_id);
        rc = -DFS_ECLUSTER;
    } else if (v->self_id == 0 || (member && same && strcmp(same->addr, op->addr))) {
        log_warn("master add %s: its id %" PRIu64 " is already a member at %s", op->addr,
                 v->self_id, same ? same->addr : "?");
        rc = -EEXIST;
    }
    if (rc < 0) {
        op_finish(s, rc);
        return;
    }
    op->id = v->self_id;
    snprintf(op->http, sizeof(op->http), "%s", v->self_http);
    rc = add_book_step(s);
    if (rc < 0)
        op_finish(s, rc);
    else if (op->step == ST_LEARNER)
        add_progress(s);
}

/* The leader's answer says whether this master is still a member. */
static void membership_answer(struct mserver *s, const struct madmin_view *v)
{
    struct rnode_status st;
    rnode_status(s->rnode, &st);
    struct mmember_answer a = {
        .from = v->self_id, .leader = v->leader_id, .term = v->term,
        .commit = v->commit, .config_index = v->config_index,
    };
    for (size_t i = 0; i < v->n; i++)
        a.lists_us |= v->m[i].id == s->conf->id;
    /* Stopping for good needs the leader's committed configuration: an
     * appended removal may still be undone by the next leader. */
    if (!mmember_removed(&a, st.term))
        return;
    log_warn("master %" PRIu64 " is no longer a member: the leader, master %" PRIu64
             " (term %" PRIu64 "), committed a configuration without it at index %"
             PRIu64 "; this master stops and takes no further part", s->conf->id,
             v->leader_id, v->term, v->config_index);
    mstatus_event(s, STATUS_EV_MEMBERSHIP, "this master was removed from the cluster");
    data_file_write(s, MADMIN_REMOVED_FILE, "removed from the cluster\n");
    s->exit_code = 0;
    ev_stop(s->loop);
}

static void ask_done(void *arg, int status, const uint8_t *payload, size_t len)
{
    struct rpc_conn *c = arg;
    struct mserver *s = rpc_ctx(c);
    struct madmin *ma = s->madmin;
    if (!ma || ma->ask != c)
        return;
    struct madmin_view *v = malloc(sizeof(*v));
    int rc = !v ? -ENOMEM : status < 0 ? status : get_view(payload, len, v);
    enum madmin_ask_for what = ma->ask_for;
    if (what == ASK_PROBE && rc < 0 && ma->op.kind == OP_ADD)
        op_finish(s, rc);
    else if (what == ASK_PROBE && rc == 0)
        probe_answer(s, v);
    else if (what == ASK_MEMBERSHIP && rc == 0)
        membership_answer(s, v);
    free(v);
    ma->ask_for = ASK_NONE;   /* the close that follows changes nothing */
    rpc_close(c);
}

static void ask_ready(struct rpc_conn *c)
{
    struct wire_writer w;
    wire_writer_init(&w);
    put_empty_head(&w);
    wire_put_u8(&w, PROTO_MASTERS_F_CONFIG);   /* an older master ignores it */
    if (w.err || rpc_call(c, PROTO_ADMIN_MASTERS, w.buf, w.len, MADMIN_ASK_MS,
                          ask_done, c) < 0)
        rpc_close(c);
    wire_writer_release(&w);
}

static const struct rpc_cbs ask_cbs = {
    .on_ready = ask_ready,
    .on_frame = ask_frame,
    .on_close = ask_closed,
};

static int ask(struct mserver *s, const char *addr, enum madmin_ask_for what)
{
    struct madmin *ma = s->madmin;
    char host[NET_HOST_MAX];
    uint16_t port;
    if (ma->ask)
        return -EBUSY;
    if (net_parse_addr(addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    int rc = rpc_connect(s->loop, host, port, &s->key, &ask_cbs, s, 0, NULL, &ma->ask);
    if (rc < 0) {
        ma->ask = NULL;
        return rc;
    }
    ma->ask_for = what;
    return 0;
}

/* ---- the timer: op steps, book cleanup, removal watch ----------------------------------- */

/* Anything appended and not committed (a configuration change may be). */
static bool config_pending(struct mserver *s)
{
    struct rnode_status st;
    rnode_status(s->rnode, &st);
    return st.commit < st.last_index;
}

/* The leader drops from the book masters that left the configuration. */
static void book_cleanup(struct mserver *s)
{
    struct madmin *ma = s->madmin;
    if (!ma->leader || ma->op.kind != OP_NONE || config_pending(s))
        return;
    const struct raft_members *cfg = rnode_members(s->rnode);
    struct mmember *next = malloc(sizeof(*next));
    if (!next)
        return;
    *next = ma->book;
    for (size_t i = 0; i < ma->book.n; i++) {
        if (!raft_members_find(cfg, ma->book.m[i].id))
            mmember_drop(next, ma->book.m[i].id);
    }
    if (next->n != ma->book.n) {
        struct wire_writer w;
        wire_writer_init(&w);
        mmember_encode_masters(next, &w);
        uint64_t index, term;
        if (!w.err && rnode_propose(s->rnode, w.buf, w.len, &index, &term) == 0)
            log_info("dropping masters that left the configuration from the member list");
        wire_writer_release(&w);
    }
    free(next);
}

static void removal_watch(struct mserver *s)
{
    struct madmin *ma = s->madmin;
    struct rnode_status st;
    rnode_status(s->rnode, &st);
    const struct raft_members *cfg = rnode_members(s->rnode);
    if (ma->joining && raft_members_find(cfg, s->conf->id) && st.leader) {
        ma->joining = false;
        data_file_remove(s, MADMIN_JOINING_FILE);
        log_info("master %" PRIu64 " is a member of cluster %s now", s->conf->id,
                 s->cluster_id);
    }
    if (st.leader) {
        ma->leaderless_since_ms = 0;
        return;
    }
    if (!ma->leaderless_since_ms)
        ma->leaderless_since_ms = now_ms(s);
    if (ma->joining || ma->ask || ma->book.n == 0 || now_ms(s) < ma->next_ask_ms ||
        now_ms(s) - ma->leaderless_since_ms < MADMIN_LEADERLESS_MS)
        return;
    /* The masters in turn, while no leader talks to us. */
    ma->next_ask_ms = now_ms(s) + MADMIN_ASK_EVERY_MS;
    const struct mmember_master *m = &ma->book.m[ma->ask_next++ % ma->book.n];
    if (m->id != s->conf->id)
        ask(s, m->addr, ASK_MEMBERSHIP);
}

static int64_t madmin_tick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    if (!s->madmin || s->stopping)
        return EV_TIMER_STOP;
    op_progress(s);
    book_cleanup(s);
    removal_watch(s);
    return MADMIN_TICK_MS;
}

/* ---- requests ---------------------------------------------------------------------- */

bool madmin_handles(uint16_t type)
{
    return type == PROTO_ADMIN_MASTERS || type == PROTO_ADMIN_MASTER_ADD ||
           type == PROTO_ADMIN_MASTER_REMOVE || type == PROTO_ADMIN_LEADER_TRANSFER ||
           type == PROTO_ADMIN_CS_DECOMMISSION;
}

static int start_add(struct mserver *s, const char *addr)
{
    struct madmin_op *op = &s->madmin->op;
    char host[NET_HOST_MAX];
    uint16_t port;
    if (net_parse_addr(addr, host, sizeof(host), &port) < 0 || strlen(addr) >= sizeof(op->addr))
        return -EINVAL;
    snprintf(op->addr, sizeof(op->addr), "%s", addr);
    op->deadline_ms = now_ms(s) + MADMIN_ADD_MS;
    const struct mmember_master *m = mmember_find_addr(&s->madmin->book, addr);
    const struct raft_server *rs = m ? raft_members_find(rnode_members(s->rnode), m->id) : NULL;
    if (rs) {
        /* Already in the configuration: finish (or answer) from there. */
        op->id = m->id;
        op->step = ST_PROMOTE;
        add_progress(s);
        return 0;
    }
    op->step = ST_PROBE;
    return ask(s, addr, ASK_PROBE);
}

static int start_decom(struct mserver *s, uint32_t cs)
{
    struct madmin_op *op = &s->madmin->op;
    if (!csreg_server(s->csreg, cs) && !mmember_is_decommissioned(&s->madmin->book, cs))
        return -ENOENT;
    op->cs = cs;
    op->step = ST_BOOK;
    struct wire_writer w;
    wire_writer_init(&w);
    mmember_encode_decommission(cs, &w);
    int rc = propose_entry(s, &w);
    wire_writer_release(&w);
    return rc;
}

/* Starts the change a request asks for; the op answers it later. */
static int start_op(struct mserver *s, uint16_t type, struct wire_reader *r)
{
    struct madmin_op *op = &s->madmin->op;
    switch (type) {
    case PROTO_ADMIN_MASTER_ADD: {
        char *addr = wire_get_str(r, PROTO_ADDR_MAX);
        int rc = wire_reader_finish(r) < 0 ? -EBADMSG : 0;
        if (rc == 0)
            rc = start_add(s, addr);
        free(addr);
        return rc;
    }
    case PROTO_ADMIN_MASTER_REMOVE:
    case PROTO_ADMIN_LEADER_TRANSFER:
        op->id = wire_get_u64(r);
        if (wire_reader_finish(r) < 0)
            return -EBADMSG;
        op->step = op->kind == OP_REMOVE ? ST_CONFIG : ST_WAIT;
        op->deadline_ms = now_ms(s) + MADMIN_TRANSFER_MS;
        if (op->kind == OP_REMOVE &&
            !raft_members_find(rnode_members(s->rnode), op->id))
            return -ENOENT;
        op_progress(s);
        return 0;
    default:
        op->cs = wire_get_u32(r);
        if (wire_reader_finish(r) < 0)
            return -EBADMSG;
        return start_decom(s, op->cs);
    }
}

/* Is this request (reader past its HEAD) the one the running op serves? */
static bool same_op(const struct madmin_op *op, uint16_t type, struct wire_reader r)
{
    if (type != op->type)
        return false;
    if (type == PROTO_ADMIN_MASTER_ADD) {
        char *addr = wire_get_str(&r, PROTO_ADDR_MAX);
        bool same = addr && !strcmp(addr, op->addr);
        free(addr);
        return same;
    }
    if (type == PROTO_ADMIN_CS_DECOMMISSION)
        return wire_get_u32(&r) == op->cs && !r.err;
    return wire_get_u64(&r) == op->id && !r.err;
}

static void serve_masters(struct mserver *s, struct rpc_conn *c,
                          const struct wire_frame *f, struct wire_reader *r)
{
    uint8_t flags = r->left ? wire_get_u8(r) : 0;   /* clients send none */
    struct wire_writer w;
    wire_writer_init(&w);
    put_view(s, &w, flags);
    reply(s, c, f->hdr.type, f->hdr.req_id, w.err, &w);
    wire_writer_release(&w);
}

void madmin_request(struct mserver *s, struct rpc_conn *c,
                    const struct wire_frame *f)
{
    struct madmin *ma = s->madmin;
    uint16_t type = f->hdr.type;
    struct wire_reader r;
    wire_reader_init(&r, f->payload, f->hdr.payload_len);
    if (skip_head(&r) < 0) {
        reply(s, c, type, f->hdr.req_id, -EBADMSG, NULL);
        return;
    }
    if (!s->rnode) {
        reply(s, c, type, f->hdr.req_id, -DFS_ENOTREADY, NULL);
        return;
    }
    if (type == PROTO_ADMIN_MASTERS) {
        serve_masters(s, c, f, &r);
        return;
    }
    if (!ma->leader || !ma->started) {
        reply(s, c, type, f->hdr.req_id, -DFS_ENOTLEADER, NULL);
        return;
    }
    if (ma->op.kind != OP_NONE && same_op(&ma->op, type, r)) {
        /* A retry (its first connection timed out or broke): it waits in
         * the first one's place. */
        reply(s, ma->op.conn, type, ma->op.req_id, -EBUSY, NULL);
        ma->op.conn = c;
        ma->op.req_id = f->hdr.req_id;
        return;
    }
    if (ma->op.kind != OP_NONE) {
        reply(s, c, type, f->hdr.req_id, -EBUSY, NULL);
        return;
    }
    ma->op = (struct madmin_op){
        .conn = c, .req_id = f->hdr.req_id, .type = type,
        .kind = type == PROTO_ADMIN_MASTER_ADD ? OP_ADD
              : type == PROTO_ADMIN_MASTER_REMOVE ? OP_REMOVE
              : type == PROTO_ADMIN_LEADER_TRANSFER ? OP_TRANSFER : OP_DECOM,
    };
    int rc = start_op(s, type, &r);
    if (rc < 0 && ma->op.kind != OP_NONE)
        op_finish(s, rc);
}

void madmin_conn_closed(struct mserver *s, struct rpc_conn *c)
{
    if (s->madmin && s->madmin->op.conn == c)
        s->madmin->op.conn = NULL;
}

/* ---- committed entries and snapshots ----------------------------------------------- */

bool madmin_is_entry(const struct raft_entry *e)
{
    return mmember_is_entry(e->data, e->len);
}

/* The step after an applied entry, once the Ready that carried it is done. */
static int64_t op_kick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    s->madmin->kick = 0;
    if (!s->stopping && s->madmin->op.kind == OP_ADD && s->madmin->op.step == ST_LEARNER)
        add_progress(s);
    return EV_TIMER_STOP;
}

/* Our op was waiting for this entry. */
static void op_applied(struct mserver *s, const struct raft_entry *e, int rc)
{
    struct madmin_op *op = &s->madmin->op;
    if (op->kind == OP_NONE || op->index != e->index ||
        (op->kind != OP_DECOM && (op->kind != OP_ADD || op->step != ST_BOOK)))
        return;
    if (e->term != op->term) {
        op_finish(s, -DFS_ENOTLEADER);
        return;
    }
    if (rc < 0 || op->kind == OP_DECOM) {
        op_finish(s, rc);
        return;
    }
    op->step = ST_LEARNER;
    op->index = 0;
    /* Not add_progress() here: it changes the configuration, and we are
     * inside the Ready (rnode_process); the tick would also do it, later. */
    if (!s->madmin->kick)
        s->madmin->kick = ev_timer_add(s->loop, 0, op_kick, s);
}


void madmin_apply(struct mserver *s, const struct raft_entry *e)
{
    struct madmin *ma = s->madmin;
    struct mmember *before = malloc(sizeof(*before));
    if (before)
        *before = ma->book;
    struct mmember_change ch;
    int rc = mmember_apply(&ma->book, e->data, e->len, &ch);
    if (rc < 0) {
        /* Every master refuses the same bytes: they stay identical. */
        log_error("membership entry %" PRIu64 " refused: %s", e->index, dfs_strerror(rc));
    } else if (ch.kind == MMEMBER_MASTERS) {
        book_changed(s, before);
    } else {
        if (s->csreg)
            csreg_decommission(s->csreg, ch.cs);
        log_info("chunkserver %u is decommissioned: its chunks move elsewhere", ch.cs);
        mstatus_event(s, STATUS_EV_OTHER, "chunkserver %u decommissioning", ch.cs);
    }
    free(before);
    op_applied(s, e, rc);
}

void madmin_snapshot_write(struct mserver *s, struct wire_writer *w)
{
    mmember_snapshot_write(&s->madmin->book, w);
}

int madmin_snapshot_restore(struct mserver *s, const void *data, size_t len,
                            const void **rest, size_t *rest_len)
{
    struct madmin *ma = s->madmin;
    struct mmember *snap = malloc(sizeof(*snap));
    struct mmember *before = malloc(sizeof(*before));
    if (!snap || !before) {
        free(snap);
        free(before);
        return -ENOMEM;
    }
    *before = ma->book;
    *snap = ma->book;
    int rc = mmember_snapshot_split(data, len, snap, rest, rest_len);
    if (rc == 1) {
        /* At start-up the cached book is at least as new as our own
         * snapshot (it was written at every change), and the log replays
         * every later change; a snapshot from the leader is newer. */
        if (!ma->started && ma->book_cached) {
            snap->n = ma->book.n;
            memcpy(snap->m, ma->book.m, sizeof(snap->m));
        }
        ma->book = *snap;
        if (ma->started)
            book_changed(s, before);
        else
            publish_tables(s);
        mark_decommissions(s);
        rc = 0;
    }
    free(snap);
    free(before);
    return rc;
}

/* ---- roles ------------------------------------------------------------------------- */

void madmin_role(struct mserver *s, bool leader)
{
    struct madmin *ma = s->madmin;
    if (!ma)
        return;
    bool lost = ma->leader && !leader;
    ma->leader = leader;
    if (!lost || ma->op.kind == OP_NONE || ma->op.kind == OP_TRANSFER)
        return;
    /* A removal of this leader steps it down as it commits: that is done. */
    if (ma->op.kind == OP_REMOVE && config_done(s)) {
        mstatus_event(s, STATUS_EV_MEMBERSHIP, "master %" PRIu64 " removed", ma->op.id);
        op_finish(s, 0);
        return;
    }
    op_finish(s, -DFS_ENOTLEADER);
}

void madmin_shutdown(struct mserver *s)
{
    struct madmin *ma = s->madmin;
    if (!ma)
        return;
    if (ma->timer)
        ev_timer_cancel(s->loop, ma->timer);
    if (ma->kick)
        ev_timer_cancel(s->loop, ma->kick);
    if (ma->op.kind != OP_NONE)
        reply(s, ma->op.conn, ma->op.type, ma->op.req_id, -DFS_ENOTLEADER, NULL);
    if (ma->ask)
        rpc_close(ma->ask);   /* its callbacks find s->madmin gone */
    free(ma);
    s->madmin = NULL;
}
