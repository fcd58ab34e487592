/*
 * ns_lease: sessions and what they hold: open files, chunk write leases,
 * locks.
 *
 * Owns no state: it edits the session records (ns_sess), the lock table
 * (ns_lock) and the namespace's derived maps (opens, leases).
 *
 * A session's states: absent -> open (SESSION_OPEN) -> ended (CLOSE,
 * EXPIRE, or a new SESSION_OPEN from the same client).  end_session() is
 * the one way out: it ends every write lease, drops every lock and closes
 * every open file of the session (freeing orphans whose last opener it
 * was), and reports all of it in the result.
 *
 * Invariants:
 *  1. A write lease on a chunk is held by at most one session, and only
 *     while that session has the chunk's file open for writing (the last
 *     writable RELEASE ends the session's leases on the file).
 *  2. ns->opens[ino] is the sum of the sessions' open counts of ino.
 *  3. sess->lock_inos names exactly the inodes where sess holds locks.
 */
#include "master/ns_lease.h"

#include <errno.h>
#include <sys/stat.h>

#include "common/dfs_error.h"
#include "master/ns_perm.h"

/* ---- sessions --------------------------------------------------------- */

static void end_session(struct ns *ns, struct ns_sess *s, struct ns_result *res)
{
    uint32_t pos = 0;
    uint64_t key, val;
    while (ns_map_next(&s->leases, &pos, &key, NULL)) {
        ns_map_del(&ns->leases, key);
        ns_push(&res->leases, key);
    }
    ns_map_release(&s->leases);
    pos = 0;
    while (ns_map_next(&s->lock_inos, &pos, &key, NULL)) {
        ns_lock_drop(&ns->locks, key, s->id, 0, 0);
        ns_push(&res->lock_inos, key);
    }
    ns_map_release(&s->lock_inos);
    /* s->opens stays unchanged during the walk; reaping only reads it */
    pos = 0;
    while (ns_map_next(&s->opens, &pos, &key, &val)) {
        uint64_t total = 0;
        ns_map_get(&ns->opens, key, &total);
        total -= (uint32_t)val;
        if (total == 0)
            ns_map_del(&ns->opens, key);
        else
            ns_map_put(&ns->opens, key, total);   /* overwrite: cannot fail */
    }
    pos = 0;
    while (ns_map_next(&s->opens, &pos, &key, NULL))
        ns_reap(ns, key, res);
    res->session_ended = s->id;
    ns_sess_remove(&ns->sessions, s);
}

int ns_lease_session_open(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_session *o = &c->op->u.session;
    if (c->op->client == 0 || o->session == 0)
        return -EINVAL;
    struct ns_sess *old = ns_sess_by_client(&ns->sessions, c->op->client);
    if (old && old->id == o->session) {
        /* a retried open: the session exists already */
        if (o->expiry > old->expiry)
            old->expiry = o->expiry;
        return 0;
    }
    /* a stale open from before the current session must not end it */
    if (old && c->op->seq != 0 && c->op->seq <= old->first_seq)
        return -DFS_ESEQ;
    if (ns_sess_get(&ns->sessions, o->session))
        return -DFS_EIDINUSE;
    struct ns_sess *s;
    int rc = ns_sess_add(&ns->sessions, o->session, c->op->client, c->op->seq,
                         o->expiry, &s);
    if (rc == 0 && old)
        end_session(ns, old, c->res);
    return rc;
}

int ns_lease_keepalive(struct ns *ns, struct ns_call *c)
{
    (void)ns;
    /* leaders' clocks differ: a lease never shrinks */
    if (c->op->u.session.expiry > c->sess->expiry)
        c->sess->expiry = c->op->u.session.expiry;
    return 0;
}

int ns_lease_session_close(struct ns *ns, struct ns_call *c)
{
    end_session(ns, c->sess, c->res);
    c->sess = NULL;
    return 0;
}

int ns_lease_expire(struct ns *ns, struct ns_call *c)
{
    if (c->op->client != 0)
        return -EPERM;
    struct ns_sess *s = ns_sess_get(&ns->sessions, c->op->u.session.session);
    if (!s)
        return -DFS_ESESSION;
    if (s->expiry > c->op->now)
        return -EAGAIN;   /* renewed after the leader decided */
    end_session(ns, s, c->res);
    return 0;
}

/* ---- open files ------------------------------------------------------- */

bool ns_lease_writable(const struct ns_call *c, uint64_t ino)
{
    uint32_t opens, writers;
    if (!c->sess)
        return false;
    ns_sess_open_counts(c->sess, ino, &opens, &writers);
    return writers > 0;
}

static int add_open(struct ns *ns, struct ns_sess *s, uint64_t ino, bool write)
{
    uint32_t opens, writers;
    uint64_t total = 0;
    ns_sess_open_counts(s, ino, &opens, &writers);
    if (opens == UINT32_MAX)
        return -EMFILE;
    ns_map_get(&ns->opens, ino, &total);
    int rc = ns_sess_set_open_counts(s, ino, opens + 1, writers + write);
    if (rc < 0)
        return rc;
    rc = ns_map_put(&ns->opens, ino, total + 1);
    if (rc < 0)
        ns_sess_set_open_counts(s, ino, opens, writers);
    return rc;
}

int ns_lease_open_inode(struct ns *ns, struct ns_call *c, uint64_t ino,
                        uint32_t flags, bool check)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in)
        return -ENOENT;
    if (!(flags & (NS_OPEN_READ | NS_OPEN_WRITE)) ||
        (flags & ~(uint32_t)(NS_OPEN_READ | NS_OPEN_WRITE | NS_OPEN_TRUNC)))
        return -EINVAL;
    if (S_ISDIR(in->mode))
        return -EISDIR;
    if (S_ISLNK(in->mode))
        return -ELOOP;
    int mask = ((flags & NS_OPEN_READ) ? NS_PERM_R : 0) |
               ((flags & (NS_OPEN_WRITE | NS_OPEN_TRUNC)) ? NS_PERM_W : 0);
    int rc = check ? ns_perm_check(in, &c->cred, mask) : 0;
    if (rc < 0)
        return rc;
    rc = add_open(ns, c->sess, ino, flags & NS_OPEN_WRITE);
    if (rc < 0)
        return rc;
    if ((flags & NS_OPEN_TRUNC) && S_ISREG(in->mode)) {
        ns_truncate(ns, in, 0, c->res);
        in->mtime = in->ctime = c->op->now;
    }
    ns_attr_fill(in, ino, &c->res->reply.attr);
    return 0;
}

int ns_lease_open(struct ns *ns, struct ns_call *c)
{
    return ns_lease_open_inode(ns, c, c->op->u.open.ino, c->op->u.open.flags, true);
}

/* Keeps sess->lock_inos in step with the lock table for ino. */
static void sync_lock_ino(struct ns *ns, struct ns_sess *s, uint64_t ino)
{
    if (!ns_lock_held(&ns->locks, ino, s->id))
        ns_map_del(&s->lock_inos, ino);
}

static void release_locks(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_open *o = &c->op->u.open;
    bool dropped = false;
    if (o->flags & NS_RELEASE_FLOCK)
        dropped |= ns_lock_drop(&ns->locks, o->ino, c->sess->id, o->owner, NS_LOCK_FLOCK);
    if (o->flags & NS_RELEASE_POSIX)
        dropped |= ns_lock_drop(&ns->locks, o->ino, c->sess->id, o->owner, NS_LOCK_POSIX);
    if (!dropped)
        return;
    ns_push(&c->res->lock_inos, o->ino);
    sync_lock_ino(ns, c->sess, o->ino);
}

/* The session's last writable handle on the file is gone: so are its leases. */
static void end_file_leases(struct ns *ns, struct ns_call *c, uint64_t ino)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!S_ISREG(in->mode))
        return;
    for (uint32_t i = 0; i < in->aux; i++) {
        uint32_t h = ns_inode_chunk(in, i);
        uint64_t id = h ? ns_chunk_get(&ns->chunks, h)->id : 0;
        if (id && ns_lease_holder(ns, id) == c->sess->id)
            ns_drop_lease(ns, id, c->res);
    }
}

int ns_lease_release(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_open *o = &c->op->u.open;
    uint32_t opens, writers;
    if (o->flags & ~(uint32_t)(NS_OPEN_READ | NS_OPEN_WRITE | NS_OPEN_TRUNC |
                               NS_RELEASE_FLOCK | NS_RELEASE_POSIX))
        return -EINVAL;
    ns_sess_open_counts(c->sess, o->ino, &opens, &writers);
    bool write = o->flags & NS_OPEN_WRITE;
    if (opens == 0 || (write && writers == 0))
        return -EBADF;
    release_locks(ns, c);
    ns_sess_set_open_counts(c->sess, o->ino, opens - 1, writers - write);
    uint64_t total = 0;
    ns_map_get(&ns->opens, o->ino, &total);
    if (total == 1)
        ns_map_del(&ns->opens, o->ino);
    else
        ns_map_put(&ns->opens, o->ino, total - 1);   /* overwrite: cannot fail */
    if (write && writers == 1)
        end_file_leases(ns, c, o->ino);
    ns_reap(ns, o->ino, c->res);
    return 0;
}

/* ---- write leases ----------------------------------------------------- */

static int writable_file(const struct ns *ns, const struct ns_call *c,
                         uint64_t ino, struct ns_inode **out)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in)
        return -ENOENT;
    if (S_ISDIR(in->mode))
        return -EISDIR;
    if (!S_ISREG(in->mode))
        return -EINVAL;
    *out = in;
    return ns_lease_writable(c, ino) ? 0 : -EBADF;
}

static int take_lease(struct ns *ns, struct ns_sess *s, uint64_t id, uint64_t ino)
{
    int rc = ns_map_put(&ns->leases, id, s->id);
    if (rc < 0)
        return rc;
    rc = ns_map_put(&s->leases, id, ino);
    if (rc < 0)
        ns_map_del(&ns->leases, id);
    return rc;
}

/* A new chunk at index: in the table, in the file, leased to the session. */
static int new_chunk(struct ns *ns, struct ns_call *c, struct ns_inode *in,
                     struct ns_chunk **out)
{
    const struct ns_op_write *o = &c->op->u.write;
    uint32_t h, old_slots = in->aux;
    uint64_t old_max = ns->chunks.max_id;
    if (o->chunk_id == 0)
        return -EINVAL;
    struct ns_chunk rec = { .id = o->chunk_id, .version = 1, .ino = (uint32_t)o->ino,
                            .index = o->index };
    int rc = ns_chunk_add(&ns->chunks, &rec, &h);
    if (rc < 0)
        return rc;
    rc = ns_inode_set_chunk(in, o->index, h);
    if (rc < 0)
        goto err_after_chunk;
    rc = take_lease(ns, c->sess, o->chunk_id, o->ino);
    if (rc < 0)
        goto err_after_slot;
    *out = ns_chunk_get(&ns->chunks, h);
    return 0;

err_after_slot:
    ns_inode_set_chunk(in, o->index, 0);
    ns_inode_cut_chunks(in, old_slots);
err_after_chunk:
    ns_chunk_remove(&ns->chunks, h);
    ns->chunks.max_id = old_max;    /* the id was never used after all */
    return rc;
}

int ns_lease_write_begin(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_write *o = &c->op->u.write;
    struct ns_inode *in;
    int rc = writable_file(ns, c, o->ino, &in);
    if (rc < 0)
        return rc;
    if (o->index >= NS_CHUNKS_MAX)
        return -EFBIG;
    struct ns_chunk *ch;
    uint32_t h = ns_inode_chunk(in, o->index);
    if (h == 0) {
        rc = new_chunk(ns, c, in, &ch);
        if (rc < 0)
            return rc;
    } else {
        ch = ns_chunk_get(&ns->chunks, h);
        uint64_t holder = ns_lease_holder(ns, ch->id);
        if (holder != 0 && holder != c->sess->id)
            return -EAGAIN;
        if (holder == 0) {
            rc = take_lease(ns, c->sess, ch->id, o->ino);
            if (rc < 0)
                return rc;
        }
        ch->version++;
    }
    c->res->reply.chunk_id = ch->id;
    c->res->reply.version = ch->version;
    ns_attr_fill(in, o->ino, &c->res->reply.attr);
    return 0;
}

int ns_lease_write_end(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_write *o = &c->op->u.write;
    struct ns_inode *in;
    int rc = writable_file(ns, c, o->ino, &in);
    if (rc < 0)
        return rc;
    if (o->length > ns_chunk_size(ns) || (o->flags & ~(uint32_t)NS_WRITE_KEEP_LEASE))
        return -EINVAL;
    uint32_t h = ns_inode_chunk(in, o->index);
    if (h == 0)
        return -DFS_ENOLEASE;
    struct ns_chunk *ch = ns_chunk_get(&ns->chunks, h);
    if (ns_lease_holder(ns, ch->id) != c->sess->id)
        return -DFS_ENOLEASE;
    if (o->length > ch->length)
        ch->length = o->length;
    ch->committed = ch->version;
    /* What the session wrote is committed now: a replica from before an
     * earlier cut lacks it, and trimming would not give it back. */
    ch->trim_from = 0;
    uint64_t end = o->index * ns_chunk_size(ns) + o->length;
    if (end > in->size)
        in->size = end;
    in->mtime = o->mtime;
    in->ctime = c->op->now;
    if (!(o->flags & NS_WRITE_KEEP_LEASE))
        ns_drop_lease(ns, ch->id, c->res);
    ns_attr_fill(in, o->ino, &c->res->reply.attr);
    return 0;
}

/* ---- locks ------------------------------------------------------------ */

int ns_lease_lock(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_lock *o = &c->op->u.lock;
    struct ns_sess *s = c->sess;
    if (!ns_inode_get(&ns->inodes, o->ino))
        return -ENOENT;
    uint32_t opens, writers;
    ns_sess_open_counts(s, o->ino, &opens, &writers);
    if (opens == 0)
        return -EBADF;
    if (o->kind == NS_LOCK_POSIX && o->type == NS_LOCK_WR && writers == 0)
        return -EBADF;
    if (o->kind > UINT16_MAX || o->type > UINT16_MAX)
        return -EINVAL;
    struct ns_lock req = { .sess = s->id, .owner = o->owner, .kind = (uint16_t)o->kind,
                           .type = (uint16_t)o->type, .start = o->start, .end = o->end,
                           .pid = o->pid };
    if (o->kind == NS_LOCK_FLOCK) {
        req.start = 0;
        req.end = UINT64_MAX;
    }
    /* record the inode first, so a lock is never held unrecorded */
    int rc = o->type != NS_LOCK_UN ? ns_map_put(&s->lock_inos, o->ino, 1) : 0;
    if (rc < 0)
        return rc;
    bool released = false;
    rc = ns_lock_set(&ns->locks, o->ino, &req, &released);
    sync_lock_ino(ns, s, o->ino);
    if (released)
        ns_push(&c->res->lock_inos, o->ino);
    return rc;
}
