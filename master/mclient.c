/*
 * mclient: client requests in, replies out.
 *
 * A mutating request becomes one struct ns_op, encoded and proposed; it
 * waits in mc->props (in log order) until the entry at its index is
 * applied, and is answered from that apply's result.  A read waits in
 * mc->reads for its ReadIndex confirmation, then runs against the
 * namespace.  A blocking LOCK that conflicts is parked in mc->locks
 * (master/mlock.h) instead of answered, and proposed again when the locks
 * of its inode change.  Nothing here changes the namespace.
 *
 * Invariants:
 *  1. mc->props is sorted by index: proposals are appended in the order
 *     the log assigns them, and applied entries pop them from the front.
 *  2. A waiting request whose entry was replaced (another term at its
 *     index) or whose leader stepped down is answered NOT_LEADER: the
 *     client retries with the same (session, seq), which the namespace
 *     deduplicates, so the request takes effect at most once.
 *  3. Leader-chosen ids (inodes, sessions, chunks) come from counters that
 *     only grow while this master leads, set once every entry of earlier
 *     leaders is applied (the barrier), so two proposals never pick the
 *     same id.  Before the first request is served, a new leader
 *     brings the replicated options (root squash, and a chunk size if
 *     the cluster has none) to its configuration: proposed once per
 *     leadership, they move the barrier.
 *  4. A waiting request never outlives its connection's pointer: on close
 *     its conn is set to NULL and its answer dropped.
 */
#include "mclient.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"
#include "common/strbuf.h"
#include "master/csreg.h"
#include "master/madmin.h"
#include "master/mfsck.h"
#include "master/mlock.h"
#include "master/mrepl.h"
#include "master/mstatus.h"
#include "master/mverify.h"
#include "master/ns.h"
#include "master/ns_op.h"
#include "master/raft.h"
#include "master/rnode.h"

#define MCLIENT_LEASE_MS_DEFAULT 30000u
#define MCLIENT_LEASE_MS_MIN 1000u
#define MCLIENT_LEASE_MS_MAX 600000u
#define MCLIENT_EXPIRY_SCAN_MS 1000
#define MCLIENT_READY_RETRY_MS 20
/* A chain that lost a replica mid-write keeps going down to this many. */
#define MCLIENT_MIN_REPLICAS 2

/* A request waiting for its entry or its read confirmation. */
struct mclient_wait {
    struct rpc_conn *conn;          /* NULL once the connection closed */
    uint64_t req_id;
    uint16_t type;
    uint64_t index, term;           /* proposals */
    uint64_t ctx;                   /* reads */
    uint8_t *payload;               /* reads: the request, owned */
    size_t len;
    uint32_t lease_ms;              /* SESSION_OPEN / KEEPALIVE */
    uint32_t failed_cs;             /* REPLACE_REPLICA: leave it out */
    /* LOCK with wait: parked again on a conflict (master/mlock.h) */
    bool lock_wait;
    bool lock_cancelled;            /* an UNLOCK cancelled it in flight */
    bool lock_retry;                /* a parked waiter proposed again */
    uint64_t lock_client;
    struct ns_op_lock lock;
};

struct mclient_queue {
    struct mclient_wait *v;
    size_t head, n, cap;            /* a ring: v[(head + i) % cap] */
};

struct mclient {
    struct mclient_queue props;
    struct mclient_queue reads;
    uint64_t next_read_ctx;
    uint64_t next_ino, next_session, next_chunk;
    uint64_t expiry_timer;
    bool leader;
    uint64_t barrier;               /* last index when leadership began */
    int64_t leader_since_ns;        /* when this master became leader */
    bool ids_ready;                 /* counters set past the barrier */
    bool config_checked;            /* the options, this leadership */
    uint64_t ready_timer;           /* a new leader's leader_ready, retried */
    struct mlock *locks;            /* parked lock waiters */
    uint64_t lock_timer;            /* re-proposes woken waiters; 0: idle */
};

/* The decoded HEAD of a request. */
struct mclient_head {
    uint64_t session, seq, seq_done;
    struct ns_cred cred;
};

/* ---- queues -------------------------------------------------------------- */

static struct mclient_wait *queue_at(struct mclient_queue *q, size_t i)
{
    return &q->v[(q->head + i) % q->cap];
}

static int queue_push(struct mclient_queue *q, const struct mclient_wait *w)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        struct mclient_wait *v = malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (size_t i = 0; i < q->n; i++)
            v[i] = *queue_at(q, i);
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    *queue_at(q, q->n++) = *w;
    return 0;
}

static void queue_pop(struct mclient_queue *q)
{
    free(queue_at(q, 0)->payload);
    q->head = (q->head + 1) % q->cap;
    q->n--;
}

/* ---- replies --------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void reply_raw(struct rpc_conn *c, uint16_t type, uint64_t req_id,
                      int32_t status, struct wire_writer *w)
{
    if (!c)
        return;
    if (w && w->err) {
        status = w->err;
        w->len = 0;
    }
    rpc_send(c, type, req_id, WIRE_F_REPLY, status, w ? w->buf : NULL,
             w ? w->len : 0);
}

/* NOT_LEADER, with the leader's id and address when known. */
static void reply_not_leader(struct mserver *s, struct rpc_conn *c,
                             uint16_t type, uint64_t req_id)
{
    struct wire_writer w;
    wire_writer_init(&w);
    const char *addr = "";
    for (size_t i = 0; i < s->n_masters; i++) {
        if (s->master_ids[i] == s->leader && s->leader != s->conf->id)
            addr = s->master_addrs[i];
    }
    wire_put_u64(&w, addr[0] ? s->leader : 0);
    wire_put_str(&w, addr);
    reply_raw(c, type, req_id, -DFS_ENOTLEADER, &w);
    wire_writer_release(&w);
}

void mclient_reply_error(struct mserver *s, struct rpc_conn *c, uint16_t type,
                         uint64_t req_id, int err)
{
    if (err == -DFS_ENOTLEADER) {
        reply_not_leader(s, c, type, req_id);
        return;
    }
    reply_raw(c, type, req_id, err, NULL);
}

static void put_attr(struct wire_writer *w, const struct ns_attr *a)
{
    wire_put_u64(w, a->ino);
    wire_put_u32(w, a->mode);
    wire_put_u32(w, a->nlink);
    wire_put_u32(w, a->uid);
    wire_put_u32(w, a->gid);
    wire_put_u32(w, a->rdev);
    wire_put_u64(w, a->size);
    wire_put_i64(w, a->atime);
    wire_put_i64(w, a->mtime);
    wire_put_i64(w, a->ctime);
    wire_put_u8(w, (uint8_t)a->goal);
}

/* ---- requests: decoding -------------------------------------------------- */

static void get_head(struct wire_reader *r, struct mclient_head *h)
{
    h->session = wire_get_u64(r);
    h->seq = wire_get_u64(r);
    h->seq_done = wire_get_u64(r);
    h->cred.uid = wire_get_u32(r);
    h->cred.gid = wire_get_u32(r);
    h->cred.ngroups = wire_get_u32(r);
    if (h->cred.ngroups > NS_GROUPS_MAX) {
        r->err = -DFS_ETOOBIG;
        return;
    }
    for (uint32_t i = 0; i < h->cred.ngroups; i++)
        h->cred.groups[i] = wire_get_u32(r);
}

static struct ns_str get_name(struct wire_reader *r, size_t max)
{
    const uint8_t *p;
    size_t n = wire_get_bytes(r, &p, max);
    return (struct ns_str){ (const char *)p, (uint32_t)n };
}

static uint32_t open_flags(uint32_t f)
{
    return (f & PROTO_OPEN_READ ? NS_OPEN_READ : 0) |
           (f & PROTO_OPEN_WRITE ? NS_OPEN_WRITE : 0) |
           (f & PROTO_OPEN_TRUNC ? NS_OPEN_TRUNC : 0) |
           (f & PROTO_OPEN_EXCL ? NS_CREATE_EXCL : 0);
}

/* CHAIN: count u32, then (cs_id u32, addr str) per server. */
static void put_chain(struct wire_writer *w, const struct csreg *reg,
                      const uint32_t *ids, size_t n)
{
    wire_put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const struct csreg_server *cs = csreg_server(reg, ids[i]);
        wire_put_u32(w, ids[i]);
        wire_put_str(w, cs ? cs->addr : "");
    }
}

/*
 * The chain for a write session that WRITE_BEGIN opened at version: a new
 * chunk goes to freshly placed servers; an existing one to the replicas
 * that hold the version before.  The chain's servers are recorded as
 * holding the new version so that readers find them at once.
 */
static int write_chain(struct mserver *s, uint64_t chunk, uint32_t version,
                       uint32_t failed, uint32_t *ids, size_t *n)
{
    if (failed)
        csreg_drop_replica(s->csreg, chunk, failed);
    struct ns_chunk_info ci;
    int rc = ns_chunk_lookup(s->ns, chunk, &ci);
    if (rc < 0)
        return rc;
    size_t goal = ci.goal ? ci.goal : NS_GOAL_DEFAULT;
    if (goal > CSREG_MAX_REPLICAS)
        goal = CSREG_MAX_REPLICAS;
    /* Every replica with the committed content takes part (a retried
     * WRITE_BEGIN finds the chain it recorded); a chunk with none yet
     * gets freshly placed servers. */
    *n = csreg_locations(s->csreg, chunk, ci.committed, version, ids, goal);
    if (*n == 0 && ci.committed == 0)
        *n = csreg_place(s->csreg, goal, NULL, 0, ids);
    if (*n == 0 && ci.committed == 0 && csreg_up_count(s->csreg) &&
        !csreg_has_space(s->csreg))
        return -ENOSPC;   /* every up chunkserver is full */
    if (*n == 0 || (failed && *n < MCLIENT_MIN_REPLICAS && *n < goal))
        return -EIO;   /* too few chunkservers up (or holding the chunk) */
    for (size_t i = 0; i < *n; i++)
        csreg_set_replica(s->csreg, chunk, ids[i], version, ci.length, false);
    return 0;
}

/*
 * SETXATTR / REMOVEXATTR.  Names and values one byte over the limits get
 * through, so that the namespace answers them with their POSIX errors
 * (ERANGE, E2BIG); PROTO_XATTR_* and NS_XATTR_* flags share their values.
 */
static void decode_xattr(uint16_t type, struct wire_reader *r, struct ns_op *op)
{
    struct ns_op_xattr *x = &op->u.xattr;
    op->type = type == PROTO_SETXATTR ? NS_OP_SETXATTR : NS_OP_REMOVEXATTR;
    x->ino = wire_get_u64(r);
    x->name = get_name(r, PROTO_XATTR_NAME_MAX + 1);
    if (type == PROTO_SETXATTR) {
        x->value = get_name(r, PROTO_XATTR_VALUE_MAX + 1);
        x->flags = wire_get_u32(r);
    }
}

/* Fills op from a mutating request's payload; -EBADMSG and friends when
 * it does not decode, -ENOSYS for a type that is not a mutation here. */
static int decode_mutation(struct mclient *mc, const struct ns *ns,
                           uint16_t type, struct wire_reader *r,
                           struct ns_op *op, uint32_t *lease_ms,
                           uint32_t *failed_cs)
{
    switch (type) {
    case PROTO_MKDIR:
    case PROTO_CREATE:
    case PROTO_MKNOD:
    case PROTO_SYMLINK: {
        struct ns_op_make *m = &op->u.make;
        m->parent = wire_get_u64(r);
        m->name = get_name(r, PROTO_NAME_MAX + 1);
        if (type == PROTO_SYMLINK) {
            m->target = get_name(r, PROTO_PATH_MAX + 1);
            m->mode = 0777;
        } else {
            m->mode = wire_get_u32(r);
        }
        if (type == PROTO_MKNOD)
            m->rdev = wire_get_u32(r);
        if (type == PROTO_CREATE) {
            m->flags = open_flags(wire_get_u32(r));
        }
        op->type = type == PROTO_MKDIR ? NS_OP_MKDIR : type == PROTO_CREATE
                 ? NS_OP_CREATE : type == PROTO_MKNOD ? NS_OP_MKNOD : NS_OP_SYMLINK;
        mc->next_ino = ns_next_free_ino(ns, mc->next_ino);
        m->ino = mc->next_ino;
        return 0;
    }
    case PROTO_UNLINK:
    case PROTO_RMDIR:
        op->type = type == PROTO_UNLINK ? NS_OP_UNLINK : NS_OP_RMDIR;
        op->u.remove.parent = wire_get_u64(r);
        op->u.remove.name = get_name(r, PROTO_NAME_MAX + 1);
        return 0;
    case PROTO_RENAME:
        op->type = NS_OP_RENAME;
        op->u.rename.parent = wire_get_u64(r);
        op->u.rename.name = get_name(r, PROTO_NAME_MAX + 1);
        op->u.rename.newparent = wire_get_u64(r);
        op->u.rename.newname = get_name(r, PROTO_NAME_MAX + 1);
        op->u.rename.flags = wire_get_u32(r);
        return 0;
    case PROTO_LINK:
        op->type = NS_OP_LINK;
        op->u.link.ino = wire_get_u64(r);
        op->u.link.newparent = wire_get_u64(r);
        op->u.link.newname = get_name(r, PROTO_NAME_MAX + 1);
        return 0;
    case PROTO_SETATTR: {
        struct ns_op_setattr *a = &op->u.setattr;
        op->type = NS_OP_SETATTR;
        a->ino = wire_get_u64(r);
        uint32_t v = wire_get_u32(r);
        a->mode = wire_get_u32(r);
        a->uid = wire_get_u32(r);
        a->gid = wire_get_u32(r);
        a->size = wire_get_u64(r);
        a->atime = wire_get_i64(r);
        a->mtime = wire_get_i64(r);
        a->goal = wire_get_u8(r);
        /* PROTO_SETATTR_* and NS_SET_* share their bit values. */
        a->valid = v & 0x1ff;
        return 0;
    }
    case PROTO_OPEN:
    case PROTO_RELEASE:
        op->type = type == PROTO_OPEN ? NS_OP_OPEN : NS_OP_RELEASE;
        op->u.open.ino = wire_get_u64(r);
        op->u.open.flags = open_flags(wire_get_u32(r));
        return 0;
    case PROTO_WRITE_BEGIN:
    case PROTO_REPLACE_REPLICA:
        /* A replacement is a new write session on the same lease: the
         * version goes up, so the replica left out becomes stale. */
        op->type = NS_OP_WRITE_BEGIN;
        op->u.write.ino = wire_get_u64(r);
        op->u.write.index = wire_get_u32(r);
        if (type == PROTO_REPLACE_REPLICA) {
            wire_get_u64(r);              /* chunk_id: the index names it */
            wire_get_u32(r);              /* version */
            *failed_cs = wire_get_u32(r);
        }
        if (mc->next_chunk < ns_max_chunk_id(ns))
            mc->next_chunk = ns_max_chunk_id(ns);
        op->u.write.chunk_id = ++mc->next_chunk;
        return 0;
    case PROTO_WRITE_END: {
        struct ns_op_write *w = &op->u.write;
        op->type = NS_OP_WRITE_END;
        w->ino = wire_get_u64(r);
        w->index = wire_get_u32(r);
        w->chunk_id = wire_get_u64(r);
        wire_get_u32(r);              /* version: the lease names it */
        w->length = wire_get_u32(r);
        wire_get_u64(r);              /* file_size: index and length give it */
        w->mtime = wire_get_i64(r);
        w->flags = wire_get_u8(r) ? NS_WRITE_KEEP_LEASE : 0;
        return 0;
    }
    case PROTO_SESSION_KEEPALIVE:
    case PROTO_SESSION_CLOSE:
        op->type = type == PROTO_SESSION_CLOSE ? NS_OP_SESSION_CLOSE
                                               : NS_OP_SESSION_KEEPALIVE;
        op->u.session.session = op->client;
        *lease_ms = MCLIENT_LEASE_MS_DEFAULT;
        op->u.session.expiry = op->now + (int64_t)*lease_ms * 1000000;
        return 0;
    case PROTO_SETXATTR:
    case PROTO_REMOVEXATTR:
        decode_xattr(type, r, op);
        return 0;
    default:
        return -ENOSYS;
    }
}

/* ---- proposals -------------------------------------------------------------- */

/* The options this master's configuration asks of the namespace; false
 * when it holds them already.  The chunk size is asked only while the
 * cluster has none: it is fixed once. */
static bool config_wanted(const struct mserver *s, struct ns_op_config *want)
{
    const struct mserver_conf *c = s->conf;
    struct ns_op_config have;
    ns_options(s->ns, &have);
    *want = have;
    want->flags = c->root_squash ? NS_CONFIG_ROOT_SQUASH : 0;
    if (c->root_squash) {
        want->squash_uid = (uint32_t)c->squash_uid;
        want->squash_gid = (uint32_t)c->squash_gid;
    }
    want->chunk_size = ns_chunk_size_fixed(s->ns) ? 0 : c->chunk_size;
    return want->chunk_size || want->flags != have.flags ||
           want->squash_uid != have.squash_uid || want->squash_gid != have.squash_gid;
}

/* Proposes *want; on success the barrier waits for it. */
static int propose_config(struct mserver *s, const struct ns_op_config *want)
{
    struct ns_op op = { .type = NS_OP_CONFIG, .now = now_ns() };
    op.u.config = *want;
    struct wire_writer enc;
    wire_writer_init(&enc);
    ns_op_encode(&op, &enc);
    uint64_t index, term;
    int rc = enc.err ? enc.err : rnode_propose(s->rnode, enc.buf, enc.len, &index, &term);
    wire_writer_release(&enc);
    if (rc < 0)
        return rc;
    s->mc->barrier = index;
    if (want->chunk_size)
        log_info("proposing the cluster's chunk size: %" PRIu64 " bytes", want->chunk_size);
    log_info("proposing root squash %s", want->flags & NS_CONFIG_ROOT_SQUASH ? "on" : "off");
    return 0;
}

/* Once per leadership: the configured options, or why one cannot be. */
static int check_config(struct mserver *s)
{
    uint64_t cs = ns_chunk_size(s->ns);
    if (ns_chunk_size_fixed(s->ns) && s->conf->chunk_size != cs)
        log_warn("chunk_size = %" PRIu64 " in the configuration, but the cluster's is %"
                 PRIu64 ", fixed when it was made: the cluster's stays", s->conf->chunk_size, cs);
    struct ns_op_config want;
    if (!config_wanted(s, &want))
        return 0;
    int rc = propose_config(s, &want);
    return rc < 0 ? rc : -DFS_ENOTREADY;
}

/*
 * Mutations wait until this leader has applied everything earlier leaders
 * appended: only then do the id counters see every id already chosen.
 */
static int leader_ready(struct mserver *s)
{
    struct mclient *mc = s->mc;
    if (mc->ids_ready)
        return 0;
    struct rnode_status st;
    rnode_status(s->rnode, &st);
    if (st.applied < mc->barrier)
        return -DFS_ENOTREADY;
    if (!mc->config_checked) {
        int rc = check_config(s);
        /* A failed proposal (a transfer holding them back) is tried again. */
        mc->config_checked = rc == 0 || rc == -DFS_ENOTREADY;
        if (rc < 0)
            return -DFS_ENOTREADY;
    }
    mc->next_ino = ns_next_free_ino(s->ns, NS_ROOT_INO);
    mc->next_session = ns_max_session_id(s->ns);
    mc->next_chunk = ns_max_chunk_id(s->ns);
    mc->ids_ready = true;
    return 0;
}

static int propose(struct mserver *s, const struct ns_op *op,
                   struct mclient_wait *w)
{
    struct wire_writer enc;
    wire_writer_init(&enc);
    ns_op_encode(op, &enc);
    int rc = enc.err;
    if (rc == 0)
        rc = rnode_propose(s->rnode, enc.buf, enc.len, &w->index, &w->term);
    wire_writer_release(&enc);
    if (rc == 0)
        rc = queue_push(&s->mc->props, w);
    /* A leadership transfer holds proposals back for a moment: the client
     * waits and retries (EBUSY would be taken as the operation's answer). */
    return rc == -EBUSY ? -DFS_ENOTREADY : rc;
}

static void handle_session_open(struct mserver *s, struct rpc_conn *c,
                                const struct wire_frame *f, struct wire_reader *r)
{
    struct mclient *mc = s->mc;
    const uint8_t *name;
    wire_get_bytes(r, &name, PROTO_CLIENT_NAME_MAX);
    uint32_t lease = wire_get_u32(r);
    if (wire_reader_finish(r) < 0) {
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, -EBADMSG);
        return;
    }
    int rc = leader_ready(s);
    if (rc < 0) {
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, rc);
        return;
    }
    if (lease < MCLIENT_LEASE_MS_MIN)
        lease = MCLIENT_LEASE_MS_MIN;
    if (lease > MCLIENT_LEASE_MS_MAX)
        lease = MCLIENT_LEASE_MS_MAX;
    struct ns_op op = { .type = NS_OP_SESSION_OPEN, .now = now_ns() };
    op.client = op.u.session.session = ++mc->next_session;
    op.u.session.expiry = op.now + (int64_t)lease * 1000000;
    struct mclient_wait w = { .conn = c, .req_id = f->hdr.req_id,
                              .type = f->hdr.type, .lease_ms = lease };
    rc = propose(s, &op, &w);
    if (rc < 0)
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, rc);
}

/*
 * A write session bumps the chunk's version when it commits, and the
 * replicas that take no part in it become stale.  So before proposing one,
 * make sure it will have a chain: replicas at the current version (an
 * existing chunk) or any chunkserver up (a new one), and after a failure
 * at least the minimum of survivors.  Otherwise the bump would leave no
 * replica at the new version and the chunk's data unreadable.
 * -DFS_ENOTREADY makes the client wait and retry (a chunkserver may come
 * back); a replacement below the minimum fails at once with -EIO.
 */
/*
 * The chunk at (ino, index) into *ci, and into where its live replicas
 * holding the committed content; returns how many, -ENOENT for a hole.
 */
static int chunk_replicas(struct mserver *s, uint64_t ino, uint32_t index,
                          struct ns_chunk_info *ci, uint32_t *where)
{
    size_t n = 0;
    if (ns_chunk_range(s->ns, ino, index, ci, 1, &n) < 0 || n == 0 || ci->id == 0)
        return -ENOENT;
    return (int)csreg_locations(s->csreg, ci->id, ci->committed, ci->version,
                                where, CSREG_MAX_REPLICAS);
}

static int chain_possible(struct mserver *s, const struct ns_op *op,
                          uint32_t failed)
{
    struct ns_chunk_info ci;
    uint32_t where[CSREG_MAX_REPLICAS];
    int have = chunk_replicas(s, op->u.write.ino, op->u.write.index, &ci, where);
    if (have < 0 || (ci.committed == 0 && !failed)) {
        if (failed)
            return mrepl_settling(s) ? -DFS_ENOTREADY : -EIO;
        if (!csreg_up_count(s->csreg))
            return -DFS_ENOTREADY;
        /* A chunk to place with every up server full: ENOSPC now, not an
         * EIO after the new version has committed. */
        return have > 0 || csreg_has_space(s->csreg) ? 0 : -ENOSPC;
    }
    size_t survivors = 0;
    for (int i = 0; i < have; i++)
        survivors += where[i] != failed;
    if (!failed)
        return survivors ? 0 : -DFS_ENOTREADY;
    size_t need = ci.goal < MCLIENT_MIN_REPLICAS ? ci.goal : MCLIENT_MIN_REPLICAS;
    if (survivors >= need && survivors)
        return 0;
    /* A new leader learns where replicas are from the chunkservers'
     * reports: until they are in, the client waits rather than fails. */
    return mrepl_settling(s) ? -DFS_ENOTREADY : -EIO;
}

/*
 * A truncate that cuts a chunk short moves it to a new version, which its
 * replicas take only when ordered (CS_ORDER_TRUNCATE): with none of them
 * up the chunk would be left without a replica at its version.  Replicas
 * still awaiting an earlier cut's trim count: this cut's orders trim them
 * too.
 */
static int trim_possible(struct mserver *s, const struct ns_op *op)
{
    const struct ns_op_setattr *a = &op->u.setattr;
    struct ns_attr at;
    uint64_t cs = ns_chunk_size(s->ns);
    if (!(a->valid & NS_SET_SIZE) || a->size % cs == 0 ||
        ns_getattr(s->ns, a->ino, &at) < 0 || a->size >= at.size)
        return 0;
    struct ns_chunk_info ci;
    uint32_t where[CSREG_MAX_REPLICAS];
    int have = chunk_replicas(s, a->ino, (uint32_t)(a->size / cs), &ci, where);
    if (have != 0)
        return 0;   /* a hole (-ENOENT) has nothing to trim */
    if (ci.trim_from && csreg_locations(s->csreg, ci.id, ci.trim_from, ci.version, where,
                                        CSREG_MAX_REPLICAS) > 0)
        return 0;
    return -DFS_ENOTREADY;
}

static void handle_mutation(struct mserver *s, struct rpc_conn *c,
                            const struct wire_frame *f, struct wire_reader *r,
                            const struct mclient_head *h)
{
    struct ns_op op = { .client = h->session, .seq = h->seq, .now = now_ns(),
                        .cred = h->cred };
    struct mclient_wait w = { .conn = c, .req_id = f->hdr.req_id,
                              .type = f->hdr.type };
    int rc = leader_ready(s);
    if (rc == 0)
        rc = decode_mutation(s->mc, s->ns, f->hdr.type, r, &op, &w.lease_ms,
                             &w.failed_cs);
    if (rc == 0 && wire_reader_finish(r) < 0)
        rc = -EBADMSG;
    if (rc == 0 && (!h->session || !h->seq))
        rc = -DFS_ESESSION;
    if (rc == 0 && op.type == NS_OP_WRITE_BEGIN)
        rc = chain_possible(s, &op, w.failed_cs);
    if (rc == 0 && op.type == NS_OP_SETATTR)
        rc = trim_possible(s, &op);
    if (rc == 0)
        rc = propose(s, &op, &w);
    if (rc < 0)
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, rc);
}

/* The directory ino's attributes into the list (a directory only: the
 * list is what a mount may answer the kernel's next GETATTR with). */
static void dir_add(const struct ns *ns, uint64_t ino, struct ns_attr *dirs, uint32_t *n)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (dirs[i].ino == ino)
            return;
    }
    if (ns_getattr(ns, ino, &dirs[*n]) == 0 && S_ISDIR(dirs[*n].mode))
        (*n)++;
}

static void dir_add_named(const struct ns *ns, const struct ns_cred *cred, uint64_t parent,
                          struct ns_str name, struct ns_attr *dirs, uint32_t *n)
{
    struct ns_attr a;
    if (ns_lookup(ns, cred, parent, name, &a) == 0)
        dir_add(ns, a.ino, dirs, n);
}

/*
 * The directories a namespace change touched, as it left them: the
 * parents, and a directory that a rename moved (its ".." and ctime).
 * The mount answers the kernel's next GETATTR of each from this instead
 * of asking (fuse/dirattr.h).
 */
static void put_dirs(const struct mserver *s, const struct ns_op *op, struct wire_writer *out)
{
    struct ns_attr dirs[4];
    uint32_t n = 0;
    switch (op->type) {
    case NS_OP_MKDIR: case NS_OP_CREATE: case NS_OP_MKNOD: case NS_OP_SYMLINK:
        dir_add(s->ns, op->u.make.parent, dirs, &n);
        break;
    case NS_OP_LINK:
        dir_add(s->ns, op->u.link.newparent, dirs, &n);
        break;
    case NS_OP_UNLINK: case NS_OP_RMDIR:
        dir_add(s->ns, op->u.remove.parent, dirs, &n);
        break;
    case NS_OP_RENAME:
        dir_add(s->ns, op->u.rename.parent, dirs, &n);
        dir_add(s->ns, op->u.rename.newparent, dirs, &n);
        dir_add_named(s->ns, &op->cred, op->u.rename.newparent, op->u.rename.newname,
                      dirs, &n);
        dir_add_named(s->ns, &op->cred, op->u.rename.parent, op->u.rename.name, dirs, &n);
        break;
    default:
        break;
    }
    wire_put_u32(out, n);
    for (uint32_t i = 0; i < n; i++)
        put_attr(out, &dirs[i]);
}

/* The CHUNK_LOCATIONS answer for chunks [first, first + count) of ino:
 * the file size, then each chunk with its live replicas. */
static int put_locations(struct mserver *s, uint64_t ino, uint32_t first,
                         uint32_t count, struct wire_writer *out)
{
    if (count == 0 || count > 64)
        count = 64;
    struct ns_attr a;
    struct ns_chunk_info ci[64];
    size_t n = 0;
    int rc = ns_getattr(s->ns, ino, &a);
    if (rc == 0)
        rc = ns_chunk_range(s->ns, ino, first, ci, count, &n);
    if (rc < 0)
        return rc;
    size_t present = 0;
    for (size_t i = 0; i < n; i++)
        present += ci[i].id != 0;
    wire_put_u64(out, a.size);
    wire_put_u32(out, (uint32_t)present);
    for (size_t i = 0; i < n; i++) {
        if (!ci[i].id)
            continue;
        uint32_t where[CSREG_MAX_REPLICAS];
        size_t k = csreg_locations(s->csreg, ci[i].id, ci[i].committed,
                                   ci[i].version, where, CSREG_MAX_REPLICAS);
        wire_put_u32(out, first + (uint32_t)i);
        wire_put_u64(out, ci[i].id);
        wire_put_u32(out, ci[i].committed);   /* the lowest version to read */
        wire_put_u32(out, ci[i].length);
        put_chain(out, s->csreg, where, k);
    }
    return 0;
}

/* Encodes the reply to a mutation from its apply result. */
static int encode_mutation_reply(struct mserver *s,
                                 const struct mclient_wait *w,
                                 const struct ns_op *op,
                                 const struct ns_result *res,
                                 struct wire_writer *out)
{
    uint32_t chain[CSREG_MAX_REPLICAS];
    size_t n;
    int rc;
    struct ns_chunk_info ci;
    switch (w->type) {
    case PROTO_WRITE_BEGIN:
    case PROTO_REPLACE_REPLICA:
        rc = write_chain(s, res->reply.chunk_id, res->reply.version, w->failed_cs,
                         chain, &n);
        if (rc < 0)
            return rc;
        ns_chunk_lookup(s->ns, res->reply.chunk_id, &ci);
        wire_put_u64(out, res->reply.chunk_id);
        wire_put_u32(out, res->reply.version);
        wire_put_u32(out, ci.committed);   /* replicas from here on take part */
        wire_put_u32(out, ci.length);
        wire_put_u32(out, MCLIENT_LEASE_MS_DEFAULT);
        put_chain(out, s->csreg, chain, n);
        break;
    case PROTO_OPEN:
        wire_put_u64(out, res->reply.attr.ino);   /* fh: the inode */
        put_attr(out, &res->reply.attr);
        /* A reader's first read needs the first chunk: saves the round
         * trip of asking (small files are read whole). */
        if ((op->u.open.flags & NS_OPEN_READ) && S_ISREG(res->reply.attr.mode) &&
            res->reply.attr.size > 0)
            put_locations(s, res->reply.attr.ino, 0, 1, out);
        break;
    case PROTO_WRITE_END:
        put_attr(out, &res->reply.attr);
        break;
    case PROTO_SESSION_OPEN:
        wire_put_u64(out, op->u.session.session);
        wire_put_u32(out, w->lease_ms);
        wire_put_u64(out, ns_chunk_size(s->ns));
        break;
    case PROTO_SESSION_KEEPALIVE:
        wire_put_u32(out, w->lease_ms);
        break;
    case PROTO_CREATE:
        wire_put_u64(out, res->reply.attr.ino);   /* fh: the inode */
        put_attr(out, &res->reply.attr);
        put_dirs(s, op, out);
        break;
    case PROTO_MKDIR:
    case PROTO_MKNOD:
    case PROTO_SYMLINK:
    case PROTO_LINK:
        put_attr(out, &res->reply.attr);
        put_dirs(s, op, out);
        break;
    case PROTO_SETATTR:
        put_attr(out, &res->reply.attr);
        break;
    case PROTO_UNLINK:
    case PROTO_RMDIR:
    case PROTO_RENAME:
        put_dirs(s, op, out);
        break;
    default:
        break;   /* RELEASE, SESSION_CLOSE: empty */
    }
    return 0;
}

/* ---- locks ------------------------------------------------------------------ */

/*
 * LOCK and UNLOCK go through the log like any mutation.  A blocking LOCK
 * (wait) that conflicts is answered -EAGAIN by its apply, which changes
 * nothing and saves nothing for exactly-once; instead of answering it,
 * mclient parks it (master/mlock.h) until an applied entry changes the
 * locks of its inode or ends a session, then proposes the same op again.
 * An applied UNLOCK of the same owner and range answers it -EINTR.
 */
static int decode_lock(uint16_t type, struct wire_reader *r, struct ns_op *op,
                       bool *wait)
{
    struct ns_op_lock *l = &op->u.lock;
    op->type = NS_OP_LOCK;
    l->ino = wire_get_u64(r);              /* fh: the inode (OPEN's reply) */
    l->owner = wire_get_u64(r);
    l->kind = wire_get_u8(r);              /* PROTO_LOCK_* == NS_LOCK_* */
    l->type = type == PROTO_LOCK ? wire_get_u8(r) : NS_LOCK_UN;
    *wait = type == PROTO_LOCK && wire_get_u8(r);
    l->start = wire_get_u64(r);
    l->end = wire_get_u64(r);
    if (type == PROTO_LOCK)
        l->pid = wire_get_u32(r);
    if (wire_reader_finish(r) < 0)
        return -EBADMSG;
    if (type == PROTO_LOCK && l->type != NS_LOCK_RD && l->type != NS_LOCK_WR)
        return -EINVAL;
    return 0;
}

static void lock_cancel(struct mserver *s, const struct ns_op *op);

static void handle_lock(struct mserver *s, struct rpc_conn *c,
                        const struct wire_frame *f, struct wire_reader *r,
                        const struct mclient_head *h)
{
    struct ns_op op = { .client = h->session, .seq = h->seq, .now = now_ns(),
                        .cred = h->cred };
    struct mclient_wait w = { .conn = c, .req_id = f->hdr.req_id,
                              .type = f->hdr.type };
    int rc = decode_lock(f->hdr.type, r, &op, &w.lock_wait);
    /* Waits are this leader's alone: a cancel changes no replicated
     * state, so it is answered here, and what the owner holds stays. */
    if (rc == 0 && f->hdr.type == PROTO_LOCK_CANCEL) {
        lock_cancel(s, &op);
        reply_raw(c, f->hdr.type, f->hdr.req_id, 0, NULL);
        return;
    }
    if (rc == 0 && (!h->session || !h->seq))
        rc = -DFS_ESESSION;
    if (rc == 0)
        rc = leader_ready(s);
    if (rc == 0) {
        w.lock_client = op.client;
        w.lock = op.u.lock;
        rc = propose(s, &op, &w);
    }
    if (rc < 0)
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, rc);
}

/*
 * The entry of a blocking LOCK was applied.  True when it is dealt with
 * here: parked (a conflict), answered -EINTR (an UNLOCK cancelled it in
 * flight) or dropped (its connection closed); false: answer it as usual.
 */
static int64_t lock_retry(struct ev_loop *loop, void *arg);

/* Woken waiters are proposed again from a timer, not from an apply. */
static void lock_retry_soon(struct mserver *s, size_t woken)
{
    if (woken && !s->mc->lock_timer)
        s->mc->lock_timer = ev_timer_add(s->loop, 0, lock_retry, s);
}

static void lock_wake_ino(struct mserver *s, uint64_t ino)
{
    lock_retry_soon(s, mlock_wake_ino(s->mc->locks, ino));
}

static bool lock_wait_applied(struct mserver *s, const struct mclient_wait *w,
                              const struct ns_op *op, const struct ns_result *res)
{
    /* mlock_settle held back waiters that this one, granted in the
     * applied table, would have blocked: whatever became of it, they are
     * judged again. */
    if (w->lock_retry)
        lock_wake_ino(s, op->u.lock.ino);
    if (res->reply.err != -EAGAIN)
        return false;
    if (w->lock_cancelled) {
        mclient_reply_error(s, w->conn, w->type, w->req_id, -EINTR);
        return true;
    }
    if (!w->conn)
        return true;
    struct mlock_waiter lw = { .conn = w->conn, .req_id = w->req_id, .op = *op };
    int rc = mlock_park(s->mc->locks, &lw);
    if (rc < 0)
        mclient_reply_error(s, w->conn, w->type, w->req_id, rc);
    return true;
}

/* How the applied lock table answers a waiter now (mlock_settle). */
static int waiter_test(void *arg, const struct ns_op *op)
{
    struct mserver *s = arg;
    return ns_getlk(s->ns, op->client, &op->u.lock, NULL);
}

/* Proposes the woken waiters that may now be granted again (a timer: not
 * from within an apply). */
static int64_t lock_retry(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    struct mclient *mc = s->mc;
    mc->lock_timer = 0;
    if (mc->leader)
        mlock_settle(mc->locks, waiter_test, s);
    struct mlock_waiter lw;
    while (mlock_take_due(mc->locks, &lw)) {
        struct mclient_wait w = { .conn = lw.conn, .req_id = lw.req_id,
                                  .type = PROTO_LOCK, .lock_wait = true,
                                  .lock_retry = true,
                                  .lock_client = lw.op.client, .lock = lw.op.u.lock };
        lw.op.now = now_ns();
        int rc = mc->leader ? propose(s, &lw.op, &w) : -DFS_ENOTLEADER;
        if (rc < 0)
            mclient_reply_error(s, w.conn, PROTO_LOCK, w.req_id, rc);
    }
    return EV_TIMER_STOP;
}

/* An applied UNLOCK, or a LOCK_CANCEL, cancels its owner's waits on the
 * range, parked or in flight (those are answered when their entry
 * applies). */
static void lock_cancel(struct mserver *s, const struct ns_op *op)
{
    const struct ns_op_lock *u = &op->u.lock;
    struct mclient_queue *q = &s->mc->props;
    for (size_t i = 0; i < q->n; i++) {
        struct mclient_wait *w = queue_at(q, i);
        if (w->lock_wait && mlock_unlock_cancels(op->client, u, w->lock_client, &w->lock))
            w->lock_cancelled = true;
    }
    struct mlock_waiter lw;
    while (mlock_take_cancelled(s->mc->locks, op->client, u->ino, u->owner, u->kind,
                                u->start, u->end, &lw))
        reply_raw(lw.conn, PROTO_LOCK, lw.req_id, -EINTR, NULL);
}

/* What an applied entry means for the lock waiters. */
static void locks_applied(struct mserver *s, const struct ns_op *op,
                          const struct ns_result *res)
{
    struct mclient *mc = s->mc;
    for (size_t i = 0; i < res->lock_inos.n; i++)
        lock_wake_ino(s, res->lock_inos.v[i]);
    /* the waiter of a session that ended learns it by its retry */
    if (res->session_ended)
        lock_retry_soon(s, mlock_wake_client(mc->locks, res->session_ended));
    if (op && op->type == NS_OP_LOCK && op->u.lock.type == NS_LOCK_UN &&
        res->reply.err == 0)
        lock_cancel(s, op);
}

/* Fails every parked waiter (leadership lost, or stopping). */
static void locks_fail_all(struct mserver *s)
{
    struct mlock_waiter lw;
    while (s->mc->locks && mlock_take_any(s->mc->locks, &lw))
        reply_not_leader(s, lw.conn, PROTO_LOCK, lw.req_id);
}

/*
 * A new leader fixes the options as soon as it may, not at the first
 * client request: chunkservers wait for the chunk size.  Armed when it
 * starts leading (inside the core's Ready, where nothing may be
 * proposed), the timer tries until the leader is ready or leads no more.
 */
static int64_t ready_kick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    if (s->mc->leader && leader_ready(s) < 0)
        return MCLIENT_READY_RETRY_MS;
    s->mc->ready_timer = 0;
    return EV_TIMER_STOP;
}

void mclient_applied(struct mserver *s, const struct raft_entry *e,
                     const struct ns_op *op, const struct ns_result *res)
{
    struct mclient_queue *q = &s->mc->props;
    while (q->n && queue_at(q, 0)->index <= e->index) {
        struct mclient_wait *w = queue_at(q, 0);
        if (w->index < e->index || w->term != e->term || !op) {
            /* Its entry was overwritten by another leader's. */
            if (w->index == e->index && !op)
                mclient_reply_error(s, w->conn, w->type, w->req_id, res->reply.err);
            else
                reply_not_leader(s, w->conn, w->type, w->req_id);
        } else if (w->lock_wait && lock_wait_applied(s, w, op, res)) {
            /* parked, cancelled or dropped */
        } else if (res->reply.err) {
            mclient_reply_error(s, w->conn, w->type, w->req_id, res->reply.err);
        } else {
            struct wire_writer out;
            wire_writer_init(&out);
            int rc = encode_mutation_reply(s, w, op, res, &out);
            if (rc < 0)
                mclient_reply_error(s, w->conn, w->type, w->req_id, rc);
            else
                reply_raw(w->conn, w->type, w->req_id, 0, &out);
            wire_writer_release(&out);
        }
        queue_pop(q);
    }
    locks_applied(s, op, res);
}

/* ---- reads ------------------------------------------------------------------ */

static int read_attr_reply(struct mserver *s, uint16_t type,
                           struct wire_reader *r, const struct mclient_head *h,
                           struct wire_writer *out)
{
    struct ns_attr a;
    int rc;
    if (type == PROTO_LOOKUP) {
        uint64_t parent = wire_get_u64(r);
        struct ns_str name = get_name(r, PROTO_NAME_MAX + 1);
        if (wire_reader_finish(r) < 0)
            return -EBADMSG;
        rc = ns_lookup(s->ns, &h->cred, parent, name, &a);
    } else {
        uint64_t ino = wire_get_u64(r);
        if (wire_reader_finish(r) < 0)
            return -EBADMSG;
        rc = ns_getattr(s->ns, ino, &a);
    }
    if (rc == 0)
        put_attr(out, &a);
    return rc;
}

static int read_readdir(struct mserver *s, struct wire_reader *r,
                        const struct mclient_head *h, struct wire_writer *out)
{
    uint64_t dir = wire_get_u64(r);
    uint64_t cookie = wire_get_u64(r);
    uint32_t max = wire_get_u32(r);
    uint8_t flags = wire_get_u8(r);
    if (wire_reader_finish(r) < 0)
        return -EBADMSG;
    if (max == 0 || max > PROTO_READDIR_MAX)
        max = PROTO_READDIR_MAX;
    struct ns_dirent *ents = malloc(max * sizeof(*ents));
    if (!ents)
        return -ENOMEM;
    size_t n = 0;
    int rc = ns_readdir(s->ns, &h->cred, dir, cookie, ents, max, &n);
    if (rc == 0) {
        wire_put_u32(out, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
            wire_put_u64(out, ents[i].cookie);
            wire_put_u64(out, ents[i].ino);
            wire_put_u32(out, ents[i].mode);
            wire_put_bytes(out, ents[i].name, ents[i].len);
            struct ns_attr a = { .ino = ents[i].ino, .mode = ents[i].mode };
            if ((flags & PROTO_READDIR_PLUS) && ns_getattr(s->ns, ents[i].ino, &a) < 0)
                a = (struct ns_attr){ .ino = ents[i].ino, .mode = ents[i].mode };
            if (flags & PROTO_READDIR_PLUS)
                put_attr(out, &a);
        }
        wire_put_u8(out, n < max);
    }
    free(ents);
    return rc;
}

/* CHUNK_LOCATIONS: the chunks of a range, each with its live replicas. */
static int read_locations(struct mserver *s, struct wire_reader *r,
                          struct wire_writer *out)
{
    uint64_t ino = wire_get_u64(r);
    uint32_t first = wire_get_u32(r);
    uint32_t count = wire_get_u32(r);
    if (wire_reader_finish(r) < 0)
        return -EBADMSG;
    return put_locations(s, ino, first, count, out);
}

static int read_other(struct mserver *s, uint16_t type, struct wire_reader *r,
                      struct wire_writer *out)
{
    if (type == PROTO_CHUNK_LOCATIONS)
        return read_locations(s, r, out);
    if (type == PROTO_ADMIN_FSCK) {
        uint64_t ino = wire_get_u64(r);
        uint8_t verify = wire_get_u8(r);
        if (wire_reader_finish(r) < 0)
            return -EBADMSG;
        if (verify)
            return -EOPNOTSUPP;   /* master/mverify serves these */
        return mfsck_run(s, ino, out);
    }
    if (type == PROTO_READLINK) {
        uint64_t ino = wire_get_u64(r);
        if (wire_reader_finish(r) < 0)
            return -EBADMSG;
        const char *t;
        uint32_t len;
        int rc = ns_readlink(s->ns, ino, &t, &len);
        if (rc == 0)
            wire_put_bytes(out, t, len);
        return rc;
    }
    if (wire_reader_finish(r) < 0)
        return -EBADMSG;
    struct ns_statfs st;
    ns_statfs(s->ns, &st);
    /* Space comes from chunkservers; until they report, none is known. */
    wire_put_u64(out, 0);
    wire_put_u64(out, 0);
    wire_put_u64(out, 0);
    wire_put_u64(out, st.inodes);
    wire_put_u64(out, st.free_inodes);
    return 0;
}

/* LISTXATTR: the names as count u32, str[count]. */
static int read_listxattr(struct mserver *s, const struct mclient_head *h,
                          uint64_t ino, struct wire_writer *out)
{
    size_t need = 0;
    int rc = ns_listxattr(s->ns, &h->cred, ino, NULL, 0, &need);
    if (rc < 0)
        return rc;
    char *buf = malloc(need ? need : 1);
    if (!buf)
        return -ENOMEM;
    rc = ns_listxattr(s->ns, &h->cred, ino, buf, need, &need);
    uint32_t count = 0;
    for (size_t i = 0; rc == 0 && i < need; i++)
        count += buf[i] == '\0';
    if (rc == 0)
        wire_put_u32(out, count);
    for (size_t i = 0; rc == 0 && i < need; i += strlen(buf + i) + 1)
        wire_put_str(out, buf + i);
    free(buf);
    return rc;
}

/* GETXATTR, LISTXATTR and LOCK_TEST. */
static int read_meta(struct mserver *s, uint16_t type, struct wire_reader *r,
                     const struct mclient_head *h, struct wire_writer *out)
{
    uint64_t ino = wire_get_u64(r);
    if (type == PROTO_GETXATTR) {
        struct ns_str name = get_name(r, PROTO_XATTR_NAME_MAX + 1);
        if (wire_reader_finish(r) < 0)
            return -EBADMSG;
        const void *val;
        uint32_t len;
        int rc = ns_getxattr(s->ns, &h->cred, ino, name, &val, &len);
        if (rc == 0)
            wire_put_bytes(out, val, len);
        return rc;
    }
    if (type == PROTO_LISTXATTR)
        return wire_reader_finish(r) < 0 ? -EBADMSG : read_listxattr(s, h, ino, out);
    struct ns_op_lock l = { .ino = ino, .kind = NS_LOCK_POSIX };
    l.owner = wire_get_u64(r);
    l.type = wire_get_u8(r);
    l.start = wire_get_u64(r);
    l.end = wire_get_u64(r);
    if (wire_reader_finish(r) < 0)
        return -EBADMSG;
    if (l.type != NS_LOCK_RD && l.type != NS_LOCK_WR)
        return -EINVAL;
    struct ns_lock k;
    int rc = ns_getlk(s->ns, h->session, &l, &k);
    if (rc < 0 && rc != -EAGAIN)
        return rc;
    wire_put_u8(out, rc == 0 ? 0 : (uint8_t)k.type);
    wire_put_u64(out, rc == 0 ? 0 : k.start);
    wire_put_u64(out, rc == 0 ? 0 : k.end);
    wire_put_u32(out, rc == 0 ? 0 : k.pid);
    return 0;
}

/* Runs a read request against the namespace and answers it. */
static void serve_read(struct mserver *s, struct mclient_wait *w)
{
    struct wire_reader r;
    struct mclient_head h;
    wire_reader_init(&r, w->payload, w->len);
    get_head(&r, &h);
    if (!r.err && w->type == PROTO_ADMIN_FSCK && mverify_request(s, w->conn, w->req_id, &r))
        return;   /* with verify: answered once chunkservers re-read */
    struct wire_writer out;
    wire_writer_init(&out);
    int rc = r.err ? -EBADMSG : 0;
    if (rc == 0 && (w->type == PROTO_LOOKUP || w->type == PROTO_GETATTR))
        rc = read_attr_reply(s, w->type, &r, &h, &out);
    else if (rc == 0 && w->type == PROTO_READDIR)
        rc = read_readdir(s, &r, &h, &out);
    else if (rc == 0 && (w->type == PROTO_GETXATTR || w->type == PROTO_LISTXATTR ||
                         w->type == PROTO_LOCK_TEST))
        rc = read_meta(s, w->type, &r, &h, &out);
    else if (rc == 0)
        rc = read_other(s, w->type, &r, &out);
    if (rc < 0)
        mclient_reply_error(s, w->conn, w->type, w->req_id, rc);
    else
        reply_raw(w->conn, w->type, w->req_id, 0, &out);
    wire_writer_release(&out);
}

static void handle_read(struct mserver *s, struct rpc_conn *c,
                        const struct wire_frame *f)
{
    struct mclient *mc = s->mc;
    struct mclient_wait w = { .conn = c, .req_id = f->hdr.req_id,
                              .type = f->hdr.type, .ctx = ++mc->next_read_ctx,
                              .len = f->hdr.payload_len };
    w.payload = malloc(w.len ? w.len : 1);
    if (!w.payload) {
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, -ENOMEM);
        return;
    }
    memcpy(w.payload, f->payload, w.len);
    int rc = queue_push(&mc->reads, &w);
    if (rc == 0) {
        rc = rnode_read(s->rnode, w.ctx);
        if (rc < 0)
            mc->reads.n--;   /* just pushed: take it back */
    }
    if (rc < 0) {
        free(w.payload);
        mclient_reply_error(s, c, f->hdr.type, f->hdr.req_id, rc);
    }
}

void mclient_read_ready(void *ctx, uint64_t read_ctx, int status)
{
    struct mserver *s = ctx;
    struct mclient_queue *q = &s->mc->reads;
    /* Confirmations come in the order reads were started. */
    while (q->n && queue_at(q, 0)->ctx <= read_ctx) {
        struct mclient_wait *w = queue_at(q, 0);
        if (status < 0 || w->ctx < read_ctx)
            mclient_reply_error(s, w->conn, w->type, w->req_id,
                        status < 0 ? status : -DFS_ENOTLEADER);
        else
            serve_read(s, w);
        queue_pop(q);
    }
}

/* ---- admin ------------------------------------------------------------------ */

static void handle_status(struct mserver *s, struct rpc_conn *c,
                          const struct wire_frame *f)
{
    struct strbuf json;
    strbuf_init(&json, 0);
    int rc = mstatus_json(s, &json);
    struct wire_writer out;
    wire_writer_init(&out);
    if (rc == 0)
        wire_put_str(&out, strbuf_str(&json));
    reply_raw(c, f->hdr.type, f->hdr.req_id, rc, rc == 0 ? &out : NULL);
    wire_writer_release(&out);
    strbuf_release(&json);
}

/* A reader found a replica with a bad block: stop sending readers there. */
static void handle_bad_replica(struct mserver *s, struct rpc_conn *c,
                               const struct wire_frame *f, struct wire_reader *r)
{
    struct mclient_head h;
    get_head(r, &h);
    uint64_t chunk = wire_get_u64(r);
    uint32_t version = wire_get_u32(r);
    uint32_t cs = wire_get_u32(r);
    uint32_t block = wire_get_u32(r);
    int rc = wire_reader_finish(r) < 0 ? -EBADMSG : 0;
    struct ns_chunk_info ci;
    if (rc == 0 && (ns_chunk_lookup(s->ns, chunk, &ci) < 0 || ci.version != version))
        rc = -DFS_ESTALE_VER;   /* about a version no longer served: ignore */
    if (rc == 0) {
        rc = csreg_set_replica(s->csreg, chunk, cs, version, 0, true);
        mstatus_count_corrupt(s, chunk, cs);
        log_warn("chunk %016" PRIx64 " v%u on chunkserver %u: bad block %u reported by %s",
                 chunk, version, cs, block, rpc_peer(c));
        mstatus_event(s, STATUS_EV_CORRUPT, "chunk %016" PRIx64 " on chunkserver %u: bad block %u",
                      chunk, cs, block);
    }
    reply_raw(c, f->hdr.type, f->hdr.req_id, rc, NULL);
}

/* ---- dispatch ---------------------------------------------------------------- */

static bool is_read(uint16_t type)
{
    return type == PROTO_LOOKUP || type == PROTO_GETATTR ||
           type == PROTO_READLINK || type == PROTO_READDIR ||
           type == PROTO_STATFS || type == PROTO_CHUNK_LOCATIONS ||
           type == PROTO_ADMIN_FSCK || type == PROTO_GETXATTR ||
           type == PROTO_LISTXATTR || type == PROTO_LOCK_TEST;
}

/* The name a request is counted under on the status page. */
static const char *op_name(uint16_t type)
{
    switch (type) {
    case PROTO_LOOKUP: return "lookup";
    case PROTO_GETATTR: return "getattr";
    case PROTO_SETATTR: return "setattr";
    case PROTO_MKDIR: return "mkdir";
    case PROTO_RMDIR: return "rmdir";
    case PROTO_CREATE: return "create";
    case PROTO_MKNOD: return "mknod";
    case PROTO_UNLINK: return "unlink";
    case PROTO_RENAME: return "rename";
    case PROTO_LINK: return "link";
    case PROTO_SYMLINK: return "symlink";
    case PROTO_READLINK: return "readlink";
    case PROTO_READDIR: return "readdir";
    case PROTO_STATFS: return "statfs";
    case PROTO_SESSION_OPEN: return "session_open";
    case PROTO_SESSION_KEEPALIVE: return "session_keepalive";
    case PROTO_SESSION_CLOSE: return "session_close";
    case PROTO_OPEN: return "open";
    case PROTO_RELEASE: return "release";
    case PROTO_WRITE_BEGIN: return "write_begin";
    case PROTO_REPLACE_REPLICA: return "replace_replica";
    case PROTO_WRITE_END: return "write_end";
    case PROTO_CHUNK_LOCATIONS: return "chunk_locations";
    case PROTO_BAD_REPLICA: return "bad_replica";
    case PROTO_ADMIN_FSCK: return "fsck";
    case PROTO_GETXATTR: return "getxattr";
    case PROTO_SETXATTR: return "setxattr";
    case PROTO_LISTXATTR: return "listxattr";
    case PROTO_REMOVEXATTR: return "removexattr";
    case PROTO_LOCK: return "lock";
    case PROTO_UNLOCK: return "unlock";
    case PROTO_LOCK_CANCEL: return "lock_cancel";
    case PROTO_LOCK_TEST: return "lock_test";
    default: return "other";
    }
}

void mclient_request(struct mserver *s, struct rpc_conn *c,
                     const struct wire_frame *f)
{
    uint16_t type = f->hdr.type;
    mstatus_count_op(s, op_name(type));
    if (type == PROTO_ADMIN_STATUS) {
        handle_status(s, c, f);
        return;
    }
    if (madmin_handles(type)) {
        madmin_request(s, c, f);
        return;
    }
    if (!s->mc->leader) {
        reply_not_leader(s, c, type, f->hdr.req_id);
        return;
    }
    struct wire_reader r;
    wire_reader_init(&r, f->payload, f->hdr.payload_len);
    if (type == PROTO_SESSION_OPEN) {
        handle_session_open(s, c, f, &r);
        return;
    }
    if (is_read(type)) {
        handle_read(s, c, f);
        return;
    }
    if (type == PROTO_BAD_REPLICA) {
        handle_bad_replica(s, c, f, &r);
        return;
    }
    struct mclient_head h;
    get_head(&r, &h);
    if (r.err) {
        mclient_reply_error(s, c, type, f->hdr.req_id, -EBADMSG);
        return;
    }
    if (type == PROTO_LOCK || type == PROTO_UNLOCK || type == PROTO_LOCK_CANCEL) {
        handle_lock(s, c, f, &r, &h);
        return;
    }
    handle_mutation(s, c, f, &r, &h);
}

/* ---- sessions ------------------------------------------------------------------ */

/* The leader expires sessions whose lease has passed, through the log. */
static int64_t expiry_scan(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct mserver *s = arg;
    int64_t now = now_ns();
    /* A new leader gives every session one full lease to find it: their
     * keepalives may have been lost with the old leader. */
    if (!s->mc->leader ||
        now - s->mc->leader_since_ns < (int64_t)MCLIENT_LEASE_MS_DEFAULT * 1000000)
        return MCLIENT_EXPIRY_SCAN_MS;
    uint64_t ids[64];
    size_t n = ns_expired_sessions(s->ns, now, ids, 64);
    for (size_t i = 0; i < n; i++) {
        struct ns_op op = { .type = NS_OP_SESSION_EXPIRE, .now = now };
        op.u.session.session = ids[i];
        struct wire_writer enc;
        wire_writer_init(&enc);
        ns_op_encode(&op, &enc);
        uint64_t index, term;
        if (!enc.err && rnode_propose(s->rnode, enc.buf, enc.len, &index, &term) == 0)
            log_info("session %" PRIu64 " expired", ids[i]);
        wire_writer_release(&enc);
    }
    return MCLIENT_EXPIRY_SCAN_MS;
}

/* ---- life ------------------------------------------------------------------------ */

int mclient_init(struct mserver *s)
{
    s->mc = calloc(1, sizeof(*s->mc));
    if (!s->mc)
        return -ENOMEM;
    s->mc->next_ino = NS_ROOT_INO;
    s->mc->locks = mlock_new();
    if (!s->mc->locks)
        return -ENOMEM;
    s->mc->expiry_timer = ev_timer_add(s->loop, MCLIENT_EXPIRY_SCAN_MS, expiry_scan, s);
    return s->mc->expiry_timer ? 0 : -ENOMEM;
}

static void fail_all(struct mserver *s, struct mclient_queue *q)
{
    while (q->n) {
        struct mclient_wait *w = queue_at(q, 0);
        reply_not_leader(s, w->conn, w->type, w->req_id);
        queue_pop(q);
    }
}

void mclient_shutdown(struct mserver *s)
{
    if (!s->mc)
        return;
    fail_all(s, &s->mc->props);
    fail_all(s, &s->mc->reads);
    locks_fail_all(s);
    mlock_free(s->mc->locks);
    ev_timer_cancel(s->loop, s->mc->expiry_timer);
    if (s->mc->lock_timer)
        ev_timer_cancel(s->loop, s->mc->lock_timer);
    if (s->mc->ready_timer)
        ev_timer_cancel(s->loop, s->mc->ready_timer);
    free(s->mc->props.v);
    free(s->mc->reads.v);
    free(s->mc);
    s->mc = NULL;
}

bool mclient_is_leader(const struct mserver *s)
{
    return s->mc && s->mc->leader;
}

void mclient_role_changed(struct mserver *s, bool leader)
{
    struct mclient *mc = s->mc;
    if (leader && !mc->leader) {
        struct rnode_status st;
        rnode_status(s->rnode, &st);
        mc->barrier = st.last_index;
        mc->ids_ready = false;
        mc->config_checked = false;
        mc->leader_since_ns = now_ns();
    }
    mc->leader = leader;
    if (leader && !mc->ready_timer)
        mc->ready_timer = ev_timer_add(s->loop, 0, ready_kick, s);
    if (!leader) {
        fail_all(s, &mc->props);
        fail_all(s, &mc->reads);
        locks_fail_all(s);
    }
}

static void forget_conn(struct mclient_queue *q, struct rpc_conn *c)
{
    for (size_t i = 0; i < q->n; i++) {
        if (queue_at(q, i)->conn == c)
            queue_at(q, i)->conn = NULL;
    }
}

void mclient_conn_closed(struct mserver *s, struct rpc_conn *c)
{
    if (!s->mc)
        return;
    forget_conn(&s->mc->props, c);
    forget_conn(&s->mc->reads, c);
    mlock_drop_conn(s->mc->locks, c);
}
