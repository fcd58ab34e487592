/*
 * ns: the namespace's lifecycle, ns_apply() and the read queries.
 *
 * Owns struct ns and, through its tables, every inode, directory, chunk,
 * xattr, lock and session.  ns_apply() resolves the caller's session,
 * answers retries from the exactly-once window, dispatches to a handler
 * (ns_fs.c for the tree, ns_lease.c for what sessions hold, CONFIG here)
 * and saves the reply.  The helpers several handlers share (freeing
 * inodes, orphans, truncation, leases) live here too.
 *
 * Invariants (ns_check() verifies them all):
 *  1. Inode 1 is the root directory; it is its own parent.
 *  2. Every live directory but the root has exactly one entry naming it,
 *     in the directory its parent field names; nlink = 2 + subdirectories.
 *  3. A non-directory's nlink is the number of entries naming it; nlink 0
 *     only while some session holds it open (an orphan).
 *  4. A file's chunk slot i holds 0 or a live chunk whose (ino, index) is
 *     (file, i); every live chunk is held by exactly one slot.
 *  5. opens and leases equal what the sessions record; a lease holder has
 *     the chunk's file open for writing.
 *  6. The counters equal a count of the inodes by type.
 *  7. A chunk's trim_from is 0 or below its committed version.
 */
#include "master/ns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dfs_error.h"
#include "master/ns_fs.h"
#include "master/ns_lease.h"
#include "master/ns_perm.h"
#include "master/ns_priv.h"
#include "master/ns_snapshot.h"

/* ---- lifecycle ------------------------------------------------------- */

static int make_root(struct ns *ns)
{
    struct ns_inode *root;
    int rc = ns_inode_alloc(&ns->inodes, NS_ROOT_INO, S_IFDIR | 0755, &root);
    if (rc < 0)
        return rc;
    root->u.dir = ns_dir_new();
    if (!root->u.dir)
        return -ENOMEM;
    root->nlink = 2;
    root->aux = NS_ROOT_INO;
    root->goal = NS_GOAL_DEFAULT;
    ns_count(ns, root->mode, 1);
    return 0;
}

static void init_tables(struct ns *ns)
{
    ns_inode_table_init(&ns->inodes);
    ns_chunk_table_init(&ns->chunks);
    ns_xattr_table_init(&ns->xattrs);
    ns_lock_table_init(&ns->locks);
    ns_sess_table_init(&ns->sessions);
    ns_map_init(&ns->opens);
    ns_map_init(&ns->leases);
}

struct ns *ns_new_empty(void)
{
    struct ns *ns = calloc(1, sizeof(*ns));
    if (ns)
        init_tables(ns);
    return ns;
}

struct ns *ns_new(void)
{
    struct ns *ns = ns_new_empty();
    if (!ns)
        return NULL;
    if (make_root(ns) < 0) {
        ns_free(ns);
        return NULL;
    }
    return ns;
}

void ns_free_payload(struct ns_inode *in)
{
    if (S_ISDIR(in->mode) && in->u.dir) {
        ns_dir_release(in->u.dir);
        free(in->u.dir);
    } else if (S_ISLNK(in->mode)) {
        free(in->u.target);
    } else if (S_ISREG(in->mode) && (in->flags & NS_INODE_F_MANY)) {
        free(in->u.many);
    }
    memset(&in->u, 0, sizeof(in->u));
}

void ns_free(struct ns *ns)
{
    if (!ns)
        return;
    for (uint64_t ino = ns_inode_next(&ns->inodes, 0); ino != 0;
         ino = ns_inode_next(&ns->inodes, ino))
        ns_free_payload(ns_inode_get(&ns->inodes, ino));
    ns_inode_table_release(&ns->inodes);
    ns_chunk_table_release(&ns->chunks);
    ns_xattr_table_release(&ns->xattrs);
    ns_lock_table_release(&ns->locks);
    ns_sess_table_release(&ns->sessions);
    ns_map_release(&ns->opens);
    ns_map_release(&ns->leases);
    free(ns);
}

/* ---- results --------------------------------------------------------- */

void ns_result_init(struct ns_result *r)
{
    memset(r, 0, sizeof(*r));
}

void ns_result_release(struct ns_result *r)
{
    free(r->freed.v);
    free(r->trimmed);
    free(r->leases.v);
    free(r->lock_inos.v);
    ns_result_init(r);
}

void ns_push(struct ns_u64s *v, uint64_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        uint64_t *nv = realloc(v->v, cap * sizeof(*nv));
        if (!nv)
            return;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static void push_trim(struct ns_result *r, const struct ns_chunk *c)
{
    if (r->ntrimmed == r->trimmed_cap) {
        size_t cap = r->trimmed_cap ? r->trimmed_cap * 2 : 4;
        struct ns_trim *t = realloc(r->trimmed, cap * sizeof(*t));
        if (!t)
            return;
        r->trimmed = t;
        r->trimmed_cap = cap;
    }
    r->trimmed[r->ntrimmed++] = (struct ns_trim){ c->id, c->version, c->length,
                                                  c->trim_from };
}

/* ---- helpers shared by the handlers ---------------------------------- */

void ns_squash(const struct ns *ns, const struct ns_cred *in, struct ns_cred *out)
{
    *out = *in;
    if (out->ngroups > NS_GROUPS_MAX)
        out->ngroups = NS_GROUPS_MAX;
    if ((ns->cfg.flags & NS_CONFIG_ROOT_SQUASH) && out->uid == 0) {
        out->uid = ns->cfg.squash_uid;
        out->gid = ns->cfg.squash_gid;
        out->ngroups = 0;
    }
}

void ns_attr_fill(const struct ns_inode *in, uint64_t ino, struct ns_attr *a)
{
    *a = (struct ns_attr){
        .ino = ino, .size = in->size, .atime = in->atime, .mtime = in->mtime,
        .ctime = in->ctime, .gen = in->gen, .mode = in->mode,
        .nlink = in->nlink, .uid = in->uid, .gid = in->gid, .goal = in->goal,
    };
    if (S_ISCHR(in->mode) || S_ISBLK(in->mode))
        a->rdev = in->aux;
    if (S_ISREG(in->mode))
        a->nchunks = in->aux;
}

int ns_get_dir(const struct ns *ns, uint64_t ino, struct ns_inode **out)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in)
        return -ENOENT;
    if (!S_ISDIR(in->mode))
        return -ENOTDIR;
    *out = in;
    return 0;
}

void ns_count(struct ns *ns, uint32_t mode, int delta)
{
    if (S_ISREG(mode))
        ns->nfiles += delta;
    else if (S_ISDIR(mode))
        ns->ndirs += delta;
    else if (S_ISLNK(mode))
        ns->nsymlinks += delta;
    else
        ns->nspecials += delta;
}

bool ns_is_open(const struct ns *ns, uint64_t ino)
{
    return ns_map_get(&ns->opens, ino, NULL);
}

void ns_drop_lease(struct ns *ns, uint64_t chunk_id, struct ns_result *res)
{
    uint64_t holder;
    if (!ns_map_get(&ns->leases, chunk_id, &holder))
        return;
    ns_map_del(&ns->leases, chunk_id);
    struct ns_sess *s = ns_sess_get(&ns->sessions, holder);
    if (s)
        ns_map_del(&s->leases, chunk_id);
    ns_push(&res->leases, chunk_id);
}

static void drop_chunk(struct ns *ns, uint32_t h, struct ns_result *res)
{
    uint64_t id = ns_chunk_get(&ns->chunks, h)->id;
    ns_drop_lease(ns, id, res);
    ns_push(&res->freed, id);
    ns_chunk_remove(&ns->chunks, h);
}

/* Every session holding locks on ino forgets it, then the locks go. */
static void forget_locks(struct ns *ns, uint64_t ino, struct ns_result *res)
{
    size_t n;
    const struct ns_lock *l = ns_lock_list(&ns->locks, ino, &n);
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct ns_sess *s = ns_sess_get(&ns->sessions, l[i].sess);
        if (s)
            ns_map_del(&s->lock_inos, ino);
    }
    ns_lock_forget(&ns->locks, ino);
    ns_push(&res->lock_inos, ino);
}

void ns_free_inode(struct ns *ns, uint64_t ino, struct ns_result *res)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (S_ISREG(in->mode)) {
        for (uint32_t i = 0; i < in->aux; i++) {
            uint32_t h = ns_inode_chunk(in, i);
            if (h)
                drop_chunk(ns, h, res);
        }
    }
    ns_count(ns, in->mode, -1);
    ns_free_payload(in);
    ns_xattr_drop(&ns->xattrs, ino);
    forget_locks(ns, ino, res);
    ns_inode_free(&ns->inodes, ino);
}

void ns_unlinked(struct ns *ns, uint64_t ino, struct ns_result *res)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (in->nlink > 0)
        return;
    if (ns_is_open(ns, ino))
        ns->norphans++;
    else
        ns_free_inode(ns, ino, res);
}

void ns_reap(struct ns *ns, uint64_t ino, struct ns_result *res)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in || in->nlink > 0 || ns_is_open(ns, ino))
        return;
    ns->norphans--;
    ns_free_inode(ns, ino, res);
}

void ns_truncate(struct ns *ns, struct ns_inode *in, uint64_t size,
                 struct ns_result *res)
{
    uint64_t cs = ns_chunk_size(ns);
    uint64_t keep = (size + cs - 1) / cs;
    for (uint64_t i = keep; i < in->aux; i++) {
        uint32_t h = ns_inode_chunk(in, (uint32_t)i);
        if (h)
            drop_chunk(ns, h, res);
    }
    ns_inode_cut_chunks(in, (uint32_t)keep);
    uint64_t tail = size % cs;
    uint32_t h = keep > 0 && tail ? ns_inode_chunk(in, (uint32_t)keep - 1) : 0;
    if (h) {
        struct ns_chunk *c = ns_chunk_get(&ns->chunks, h);
        if (c->length > tail) {
            /* A second cut keeps the first one's trim_from: nothing was
             * committed in between (WRITE_END clears it, a grow changes
             * no chunk), so a replica still untrimmed from the first cut,
             * cut at this shorter length, holds the committed content. */
            if (c->trim_from == 0)
                c->trim_from = c->committed;
            c->length = (uint32_t)tail;
            c->version++;
            c->committed = c->version;
            push_trim(res, c);
        }
    }
    in->size = size;
}

/* ---- apply ----------------------------------------------------------- */

static int apply_config(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_config *o = &c->op->u.config;
    if (c->op->client != 0)
        return -EPERM;
    if (o->flags & ~(uint32_t)NS_CONFIG_ROOT_SQUASH)
        return -EINVAL;
    if (o->chunk_size && (o->chunk_size % NS_CHUNK_SIZE_MIN ||
                          o->chunk_size > NS_CHUNK_SIZE_MAX))
        return -EINVAL;
    /* Chunk indexes, lengths and truncation all hang on the chunk size:
     * it is fixed once, before the first chunk. */
    if (o->chunk_size && o->chunk_size != ns_chunk_size(ns) && ns_chunk_size_fixed(ns))
        return -EBUSY;
    if (o->chunk_size)
        ns->cfg.chunk_size = o->chunk_size;
    ns->cfg.flags = o->flags;
    ns->cfg.squash_uid = o->squash_uid;
    ns->cfg.squash_gid = o->squash_gid;
    return 0;
}

typedef int (*ns_handler)(struct ns *ns, struct ns_call *c);

static const struct {
    ns_handler fn;
    bool session;           /* needs the caller's session */
} handlers[NS_OP_TYPE_END] = {
    [NS_OP_MKDIR] = { ns_fs_make, false },
    [NS_OP_CREATE] = { ns_fs_make, false },
    [NS_OP_MKNOD] = { ns_fs_make, false },
    [NS_OP_SYMLINK] = { ns_fs_make, false },
    [NS_OP_LINK] = { ns_fs_link, false },
    [NS_OP_UNLINK] = { ns_fs_unlink, false },
    [NS_OP_RMDIR] = { ns_fs_rmdir, false },
    [NS_OP_RENAME] = { ns_fs_rename, false },
    [NS_OP_SETATTR] = { ns_fs_setattr, false },
    [NS_OP_SETXATTR] = { ns_fs_setxattr, false },
    [NS_OP_REMOVEXATTR] = { ns_fs_removexattr, false },
    [NS_OP_OPEN] = { ns_lease_open, true },
    [NS_OP_RELEASE] = { ns_lease_release, true },
    [NS_OP_WRITE_BEGIN] = { ns_lease_write_begin, true },
    [NS_OP_WRITE_END] = { ns_lease_write_end, true },
    [NS_OP_SESSION_OPEN] = { ns_lease_session_open, false },
    [NS_OP_SESSION_KEEPALIVE] = { ns_lease_keepalive, true },
    [NS_OP_SESSION_CLOSE] = { ns_lease_session_close, true },
    [NS_OP_SESSION_EXPIRE] = { ns_lease_expire, false },
    [NS_OP_LOCK] = { ns_lease_lock, true },
    [NS_OP_CONFIG] = { apply_config, false },
};

/*
 * Finds the caller's session and answers a retry.  Returns 1 to go on
 * applying, or 0 with res->reply final.
 */
static int resolve_session(struct ns *ns, struct ns_call *c)
{
    const struct ns_op *op = c->op;
    if (op->client == 0 || op->type == NS_OP_SESSION_OPEN)
        return 1;
    c->sess = ns_sess_by_client(&ns->sessions, op->client);
    if (!c->sess) {
        c->res->reply.err = -DFS_ESESSION;
        return 0;
    }
    if (op->seq == 0)
        return 1;
    int rc = ns_sess_dedup_find(c->sess, op->seq, &c->res->reply);
    if (rc == 0) {
        c->res->deduped = true;
        return 0;
    }
    if (rc == -DFS_ESEQ) {
        c->res->reply.err = rc;
        return 0;
    }
    return 1;
}

/*
 * Answers that changed nothing and that the master may meet by proposing
 * the request again with the same sequence: a lock or lease to wait for,
 * a leader-chosen id already taken, memory.  They are not saved, so the
 * retry is evaluated afresh.
 */
static bool retryable(int rc)
{
    return rc == -EAGAIN || rc == -DFS_EIDINUSE || rc == -ENOMEM;
}

int ns_apply(struct ns *ns, const struct ns_op *op, struct ns_result *res)
{
    struct ns_call c = { .op = op, .res = res };
    res->reply = (struct ns_reply){ 0 };
    if (op->type <= 0 || op->type >= NS_OP_TYPE_END || !handlers[op->type].fn)
        return res->reply.err = -EINVAL;
    ns_squash(ns, &op->cred, &c.cred);
    if (!resolve_session(ns, &c))
        return res->reply.err;
    int rc;
    if (handlers[op->type].session && !c.sess)
        rc = -DFS_ESESSION;
    else
        rc = handlers[op->type].fn(ns, &c);
    res->reply.err = rc;
    if (c.sess && op->seq != 0 && !retryable(rc))
        ns_sess_dedup_store(c.sess, op->seq, &res->reply);
    return rc;
}

/* ---- queries --------------------------------------------------------- */

int ns_lookup(const struct ns *ns, const struct ns_cred *cred, uint64_t parent,
              struct ns_str name, struct ns_attr *out)
{
    struct ns_cred cr;
    struct ns_inode *dir;
    int rc = ns_get_dir(ns, parent, &dir);
    if (rc < 0)
        return rc;
    ns_squash(ns, cred, &cr);
    rc = ns_perm_check(dir, &cr, NS_PERM_X);
    if (rc < 0)
        return rc;
    uint64_t ino;
    if (name.len == 1 && name.p[0] == '.') {
        ino = parent;
    } else if (name.len == 2 && name.p[0] == '.' && name.p[1] == '.') {
        ino = dir->aux;
    } else {
        rc = ns_fs_check_name(name);
        if (rc < 0)
            return rc;
        struct ns_dir_item it;
        rc = ns_dir_lookup(dir->u.dir, name.p, name.len, &it);
        if (rc < 0)
            return rc;
        ino = it.ino;
    }
    ns_attr_fill(ns_inode_get(&ns->inodes, ino), ino, out);
    return 0;
}

int ns_getattr(const struct ns *ns, uint64_t ino, struct ns_attr *out)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in)
        return -ENOENT;
    ns_attr_fill(in, ino, out);
    return 0;
}

int ns_readlink(const struct ns *ns, uint64_t ino, const char **target,
                uint32_t *len)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in)
        return -ENOENT;
    if (!S_ISLNK(in->mode))
        return -EINVAL;
    *target = in->u.target;
    *len = (uint32_t)in->size;
    return 0;
}

static void dot_entry(const struct ns *ns, uint64_t ino, uint64_t cookie,
                      const char *name, struct ns_dirent *out)
{
    *out = (struct ns_dirent){
        .ino = ino, .cookie = cookie,
        .mode = ns_inode_get(&ns->inodes, ino)->mode & S_IFMT,
        .len = (uint32_t)strlen(name), .name = name,
    };
}

int ns_readdir(const struct ns *ns, const struct ns_cred *cred, uint64_t dir,
               uint64_t cookie, struct ns_dirent *out, size_t max, size_t *n)
{
    struct ns_cred cr;
    struct ns_inode *d;
    *n = 0;
    int rc = ns_get_dir(ns, dir, &d);
    if (rc < 0)
        return rc;
    ns_squash(ns, cred, &cr);
    rc = ns_perm_check(d, &cr, NS_PERM_R);
    if (rc < 0)
        return rc;
    if (cookie < 1 && *n < max)
        dot_entry(ns, dir, 1, ".", &out[(*n)++]);
    if (cookie < 2 && *n < max)
        dot_entry(ns, d->aux, 2, "..", &out[(*n)++]);
    uint64_t after = cookie < 2 ? 2 : cookie;
    struct ns_dir_item it;
    while (*n < max && ns_dir_next(d->u.dir, after, &it) == 0) {
        out[(*n)++] = (struct ns_dirent){
            .ino = it.ino, .cookie = it.id,
            .mode = ns_inode_get(&ns->inodes, it.ino)->mode & S_IFMT,
            .len = it.len, .name = it.name,
        };
        after = it.id;
    }
    return 0;
}

int ns_getxattr(const struct ns *ns, const struct ns_cred *cred, uint64_t ino,
                struct ns_str name, const void **val, uint32_t *len)
{
    struct ns_cred cr;
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in)
        return -ENOENT;
    ns_squash(ns, cred, &cr);
    int rc = ns_fs_xattr_access(in, &cr, name, NS_PERM_R);
    if (rc < 0)
        return rc;
    return ns_xattr_get(&ns->xattrs, ino, name.p, name.len, val, len);
}

int ns_listxattr(const struct ns *ns, const struct ns_cred *cred, uint64_t ino,
                 char *buf, size_t size, size_t *need)
{
    struct ns_cred cr;
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (!in)
        return -ENOENT;
    ns_squash(ns, cred, &cr);
    int rc = ns_perm_check(in, &cr, NS_PERM_R);
    if (rc < 0)
        return rc;
    return ns_xattr_list(&ns->xattrs, ino, buf, size, need);
}

static void chunk_info(const struct ns *ns, const struct ns_chunk *c,
                       struct ns_chunk_info *out)
{
    *out = (struct ns_chunk_info){
        .id = c->id, .version = c->version, .committed = c->committed,
        .length = c->length, .trim_from = c->trim_from,
        .ino = c->ino, .index = c->index,
        .goal = ns_inode_get(&ns->inodes, c->ino)->goal,
    };
}

int ns_chunk_range(const struct ns *ns, uint64_t ino, uint32_t first,
                   struct ns_chunk_info *out, size_t max, size_t *n)
{
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    *n = 0;
    if (!in)
        return -ENOENT;
    if (S_ISDIR(in->mode))
        return -EISDIR;
    if (!S_ISREG(in->mode))
        return -EINVAL;
    for (uint64_t i = first; i < in->aux && *n < max; i++) {
        uint32_t h = ns_inode_chunk(in, (uint32_t)i);
        if (h) {
            chunk_info(ns, ns_chunk_get(&ns->chunks, h), &out[*n]);
        } else {
            out[*n] = (struct ns_chunk_info){ .ino = ino, .index = (uint32_t)i,
                                              .goal = in->goal };
        }
        (*n)++;
    }
    return 0;
}

int ns_chunk_lookup(const struct ns *ns, uint64_t id, struct ns_chunk_info *out)
{
    uint32_t h = ns_chunk_find(&ns->chunks, id);
    if (h == 0)
        return -ENOENT;
    chunk_info(ns, ns_chunk_get(&ns->chunks, h), out);
    return 0;
}

bool ns_chunk_walk(const struct ns *ns, uint32_t *cursor,
                   struct ns_chunk_info *out)
{
    uint32_t h = ns_chunk_next(&ns->chunks, *cursor);
    if (h == 0)
        return false;
    chunk_info(ns, ns_chunk_get(&ns->chunks, h), out);
    *cursor = h;
    return true;
}

void ns_statfs(const struct ns *ns, struct ns_statfs *out)
{
    *out = (struct ns_statfs){
        .inodes = ns->inodes.used, .files = ns->nfiles, .dirs = ns->ndirs,
        .symlinks = ns->nsymlinks, .specials = ns->nspecials,
        .orphans = ns->norphans,
        .free_inodes = NS_INO_MAX - ns->inodes.used,
        .chunks = ns->chunks.count,
        .sessions = ns->sessions.by_id.count,
    };
}

int ns_getlk(const struct ns *ns, uint64_t client, const struct ns_op_lock *req,
             struct ns_lock *conflict)
{
    struct ns_sess *s = ns_sess_by_client(&ns->sessions, client);
    if (!s)
        return -DFS_ESESSION;
    if (req->kind > UINT16_MAX || req->type > UINT16_MAX)
        return -EINVAL;
    struct ns_lock l = { .sess = s->id, .owner = req->owner, .kind = (uint16_t)req->kind,
                         .type = (uint16_t)req->type, .start = req->start, .end = req->end };
    if (l.kind == NS_LOCK_FLOCK) {
        l.start = 0;
        l.end = UINT64_MAX;
    }
    return ns_lock_test(&ns->locks, req->ino, &l, conflict);
}

uint64_t ns_lease_holder(const struct ns *ns, uint64_t chunk_id)
{
    uint64_t holder = 0;
    ns_map_get(&ns->leases, chunk_id, &holder);
    return holder;
}

uint64_t ns_next_free_ino(const struct ns *ns, uint64_t after)
{
    return ns_inode_next_free(&ns->inodes, after);
}

uint64_t ns_chunk_size(const struct ns *ns)
{
    return ns->cfg.chunk_size ? ns->cfg.chunk_size : NS_CHUNK_SIZE_DEFAULT;
}

bool ns_chunk_size_fixed(const struct ns *ns)
{
    return ns->cfg.chunk_size != 0 || ns->chunks.count != 0;
}

void ns_options(const struct ns *ns, struct ns_op_config *out)
{
    *out = (struct ns_op_config){ .flags = ns->cfg.flags,
                                  .squash_uid = ns->cfg.squash_uid,
                                  .squash_gid = ns->cfg.squash_gid };
}

uint64_t ns_max_chunk_id(const struct ns *ns)
{
    return ns->chunks.max_id;
}

uint64_t ns_max_session_id(const struct ns *ns)
{
    return ns->sessions.max_id;
}

size_t ns_expired_sessions(const struct ns *ns, int64_t now, uint64_t *out,
                           size_t max)
{
    size_t n = 0;
    uint32_t pos = 0;
    uint64_t id, ptr;
    while (n < max && ns_map_next(&ns->sessions.by_id, &pos, &id, &ptr)) {
        const struct ns_sess *s = (const struct ns_sess *)(uintptr_t)ptr;
        if (s->expiry <= now)
            out[n++] = id;
    }
    return n;
}

int ns_session_of(const struct ns *ns, uint64_t client, uint64_t *id,
                  int64_t *expiry)
{
    struct ns_sess *s = ns_sess_by_client(&ns->sessions, client);
    if (!s)
        return -DFS_ESESSION;
    *id = s->id;
    *expiry = s->expiry;
    return 0;
}

size_t ns_bytes(const struct ns *ns)
{
    size_t b = sizeof(*ns) + ns_inode_table_bytes(&ns->inodes) +
               ns_chunk_table_bytes(&ns->chunks);
    for (uint64_t ino = ns_inode_next(&ns->inodes, 0); ino != 0;
         ino = ns_inode_next(&ns->inodes, ino)) {
        const struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
        if (S_ISDIR(in->mode))
            b += sizeof(struct ns_dir) + ns_dir_bytes(in->u.dir);
        else if (S_ISLNK(in->mode))
            b += in->size + 1;
        else if (S_ISREG(in->mode) && (in->flags & NS_INODE_F_MANY))
            b += (size_t)in->aux * sizeof(uint32_t);
    }
    return b;
}

/* ---- digest ---------------------------------------------------------- */

uint64_t ns_digest(const struct ns *ns)
{
    uint8_t md[32];
    if (ns_snapshot_hash(ns, md) < 0)
        return 0;
    uint64_t d;
    memcpy(&d, md, sizeof(d));
    return d;
}
