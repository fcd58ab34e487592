/*
 * ns_fs: namespace mutations: make (mkdir, create, mknod, symlink), link,
 * unlink, rmdir, rename, setattr, setxattr, removexattr.
 *
 * Owns no state: it edits struct ns through the tables.  Each handler runs
 * in two phases: checks (which may fail and change nothing), then changes
 * (which fail only for memory, and undo themselves when they do).  The
 * order of the checks fixes which error wins when several apply; it
 * follows Linux where Linux is definite (docs/NAMESPACE.md lists it) and
 * the differential test holds the reference model to the same order.
 */
#include "master/ns_fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dfs_error.h"
#include "master/ns_lease.h"
#include "master/ns_perm.h"

static bool is_dots(struct ns_str n)
{
    return (n.len == 1 && n.p[0] == '.') ||
           (n.len == 2 && n.p[0] == '.' && n.p[1] == '.');
}

int ns_fs_check_name(struct ns_str name)
{
    if (name.len == 0)
        return -ENOENT;
    if (name.len > NS_NAME_MAX)
        return -ENAMETOOLONG;
    if (memchr(name.p, '/', name.len) || memchr(name.p, '\0', name.len))
        return -EINVAL;
    if (is_dots(name))
        return -EINVAL;
    return 0;
}

static void touch_dir(struct ns_inode *dir, int64_t now)
{
    dir->mtime = now;
    dir->ctime = now;
}

/* ---- make ------------------------------------------------------------ */

/* The new inode's type and permission bits, or -EINVAL. */
static int make_mode(const struct ns_op *op, uint32_t *mode)
{
    uint32_t perm = op->u.make.mode & 07777;
    switch (op->type) {
    case NS_OP_MKDIR:
        *mode = S_IFDIR | (perm & 01777);   /* mkdir ignores setuid/setgid */
        return 0;
    case NS_OP_CREATE:
        *mode = S_IFREG | perm;
        return 0;
    case NS_OP_SYMLINK:
        *mode = S_IFLNK | 0777;
        return 0;
    default:
        break;
    }
    uint32_t type = op->u.make.mode & S_IFMT;
    if (type == 0)
        type = S_IFREG;
    if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK &&
        type != S_IFCHR && type != S_IFBLK)
        return -EINVAL;
    *mode = type | perm;
    return 0;
}

/* Owner, group and setgid as inode_init_owner() decides them. */
static void init_owner(struct ns_inode *in, const struct ns_inode *dir,
                       const struct ns_cred *cred)
{
    in->uid = cred->uid;
    in->gid = cred->gid;
    if (!(dir->mode & S_ISGID))
        return;
    in->gid = dir->gid;
    if (S_ISDIR(in->mode)) {
        in->mode |= S_ISGID;
    } else if ((in->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
               cred->uid != 0 && !ns_perm_in_group(cred, in->gid)) {
        in->mode &= ~(uint32_t)S_ISGID;
    }
}

static int make_payload(struct ns_inode *in, const struct ns_op_make *o,
                        uint64_t parent)
{
    if (S_ISDIR(in->mode)) {
        in->u.dir = ns_dir_new();
        if (!in->u.dir)
            return -ENOMEM;
        in->aux = (uint32_t)parent;
        in->nlink = 2;
        return 0;
    }
    in->nlink = 1;
    if (S_ISLNK(in->mode)) {
        in->u.target = malloc(o->target.len + 1);
        if (!in->u.target)
            return -ENOMEM;
        memcpy(in->u.target, o->target.p, o->target.len);
        in->u.target[o->target.len] = '\0';
        in->size = o->target.len;
    } else if (S_ISCHR(in->mode) || S_ISBLK(in->mode)) {
        in->aux = o->rdev;
    }
    return 0;
}

/* CREATE of an existing name without O_EXCL opens it. */
static int make_existing(struct ns *ns, struct ns_call *c, uint64_t ino)
{
    const struct ns_op_make *o = &c->op->u.make;
    if (c->op->type != NS_OP_CREATE || (o->flags & NS_CREATE_EXCL))
        return -EEXIST;
    struct ns_inode *in = ns_inode_get(&ns->inodes, ino);
    if (S_ISDIR(in->mode))
        return -EISDIR;
    if (!(o->flags & (NS_OPEN_READ | NS_OPEN_WRITE))) {
        ns_attr_fill(in, ino, &c->res->reply.attr);
        return 0;
    }
    return ns_lease_open_inode(ns, c, ino, o->flags & ~(uint32_t)NS_CREATE_EXCL, true);
}

static int make_checks(const struct ns_call *c, uint32_t *mode)
{
    const struct ns_op_make *o = &c->op->u.make;
    int rc = make_mode(c->op, mode);
    if (rc < 0)
        return rc;
    if (c->op->type == NS_OP_SYMLINK) {
        if (o->target.len == 0)
            return -ENOENT;
        if (o->target.len > NS_SYMLINK_MAX)
            return -ENAMETOOLONG;
        if (memchr(o->target.p, '\0', o->target.len))
            return -EINVAL;
    }
    return 0;
}

/* CREATE's flags, checked before anything: they decide what follows. */
static int create_flags(const struct ns_call *c)
{
    uint32_t flags = c->op->u.make.flags;
    if (c->op->type != NS_OP_CREATE)
        return 0;
    if (flags & ~(uint32_t)(NS_OPEN_READ | NS_OPEN_WRITE | NS_OPEN_TRUNC | NS_CREATE_EXCL))
        return -EINVAL;
    if ((flags & (NS_OPEN_READ | NS_OPEN_WRITE)) && !c->sess)
        return -DFS_ESESSION;
    return 0;
}

/* Takes back a CREATE whose last step (opening) failed: the entry, the
 * inode and the parent's times (its pre-op copy is in saved). */
static void unmake(struct ns *ns, struct ns_inode *dir, const struct ns_inode *saved,
                   const struct ns_op_make *o)
{
    ns_dir_unadd(dir->u.dir, o->name.p, o->name.len);
    dir->mtime = saved->mtime;
    dir->ctime = saved->ctime;
    ns_count(ns, S_IFREG, -1);
    ns_inode_unalloc(&ns->inodes, o->ino);
}

static int make_inode(struct ns *ns, struct ns_call *c, struct ns_inode *dir,
                      uint32_t mode)
{
    const struct ns_op_make *o = &c->op->u.make;
    struct ns_inode *in;
    int rc = ns_inode_alloc(&ns->inodes, o->ino, mode, &in);
    if (rc < 0)
        return rc;
    init_owner(in, dir, &c->cred);
    in->atime = in->mtime = in->ctime = c->op->now;
    in->goal = dir->goal;
    rc = make_payload(in, o, c->op->u.make.parent);
    if (rc < 0)
        goto err_after_inode;
    rc = ns_dir_add(dir->u.dir, o->name.p, o->name.len, (uint32_t)o->ino, NULL);
    if (rc < 0)
        goto err_after_payload;
    if (S_ISDIR(mode))
        dir->nlink++;
    touch_dir(dir, c->op->now);
    ns_count(ns, in->mode, 1);
    ns_attr_fill(in, o->ino, &c->res->reply.attr);
    return 0;

err_after_payload:
    ns_free_payload(in);
err_after_inode:
    ns_inode_unalloc(&ns->inodes, o->ino);
    return rc;
}

int ns_fs_make(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_make *o = &c->op->u.make;
    struct ns_inode *dir;
    int rc = create_flags(c);
    if (rc < 0)
        return rc;
    rc = ns_get_dir(ns, o->parent, &dir);
    if (rc < 0)
        return rc;
    rc = ns_fs_check_name(o->name);
    if (rc < 0)
        return rc;
    rc = ns_perm_check(dir, &c->cred, NS_PERM_X);
    if (rc < 0)
        return rc;
    struct ns_dir_item it;
    if (ns_dir_lookup(dir->u.dir, o->name.p, o->name.len, &it) == 0)
        return make_existing(ns, c, it.ino);
    rc = ns_perm_check(dir, &c->cred, NS_PERM_W);
    if (rc < 0)
        return rc;
    uint32_t mode;
    rc = make_checks(c, &mode);
    if (rc < 0)
        return rc;
    struct ns_inode saved = *dir;
    rc = make_inode(ns, c, dir, mode);
    if (rc < 0 || c->op->type != NS_OP_CREATE ||
        !(o->flags & (NS_OPEN_READ | NS_OPEN_WRITE)))
        return rc;
    rc = ns_lease_open_inode(ns, c, o->ino, o->flags & ~(uint32_t)NS_CREATE_EXCL, false);
    if (rc < 0)
        unmake(ns, dir, &saved, o);
    return rc;
}

/* ---- link, unlink, rmdir ---------------------------------------------- */

int ns_fs_link(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_link *o = &c->op->u.link;
    struct ns_inode *in = ns_inode_get(&ns->inodes, o->ino);
    if (!in)
        return -ENOENT;
    struct ns_inode *dir;
    int rc = ns_get_dir(ns, o->newparent, &dir);
    if (rc < 0)
        return rc;
    rc = ns_fs_check_name(o->newname);
    if (rc < 0)
        return rc;
    rc = ns_perm_check(dir, &c->cred, NS_PERM_X);
    if (rc < 0)
        return rc;
    struct ns_dir_item it;
    if (ns_dir_lookup(dir->u.dir, o->newname.p, o->newname.len, &it) == 0)
        return -EEXIST;
    rc = ns_perm_check(dir, &c->cred, NS_PERM_W);
    if (rc < 0)
        return rc;
    if (S_ISDIR(in->mode))
        return -EPERM;
    if (in->nlink == 0)
        return -ENOENT;
    if (in->nlink == UINT32_MAX)
        return -EMLINK;
    rc = ns_dir_add(dir->u.dir, o->newname.p, o->newname.len, (uint32_t)o->ino, NULL);
    if (rc < 0)
        return rc;
    in->nlink++;
    in->ctime = c->op->now;
    touch_dir(dir, c->op->now);
    ns_attr_fill(in, o->ino, &c->res->reply.attr);
    return 0;
}

/*
 * The checks unlink, rmdir and rename share for the entry being removed
 * (may_delete): the directory, the name, search then write permission,
 * the entry, the sticky bit.
 */
static int find_victim(const struct ns *ns, const struct ns_cred *cred,
                       uint64_t parent, struct ns_str name,
                       struct ns_inode **dir, struct ns_dir_item *it,
                       struct ns_inode **victim)
{
    int rc = ns_get_dir(ns, parent, dir);
    if (rc < 0)
        return rc;
    rc = ns_fs_check_name(name);
    if (rc < 0)
        return rc;
    rc = ns_perm_check(*dir, cred, NS_PERM_X);
    if (rc < 0)
        return rc;
    rc = ns_dir_lookup((*dir)->u.dir, name.p, name.len, it);
    if (rc < 0)
        return rc;
    rc = ns_perm_check(*dir, cred, NS_PERM_W);
    if (rc < 0)
        return rc;
    *victim = ns_inode_get(&ns->inodes, it->ino);
    return ns_perm_sticky(*dir, *victim, cred);
}

int ns_fs_unlink(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_remove *o = &c->op->u.remove;
    struct ns_inode *dir, *victim;
    struct ns_dir_item it;
    int rc = find_victim(ns, &c->cred, o->parent, o->name, &dir, &it, &victim);
    if (rc < 0)
        return rc;
    if (S_ISDIR(victim->mode))
        return -EISDIR;
    uint64_t ino = it.ino;
    ns_dir_remove(dir->u.dir, o->name.p, o->name.len);
    touch_dir(dir, c->op->now);
    victim->nlink--;
    victim->ctime = c->op->now;
    ns_unlinked(ns, ino, c->res);
    return 0;
}

int ns_fs_rmdir(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_remove *o = &c->op->u.remove;
    struct ns_inode *dir, *victim;
    struct ns_dir_item it;
    int rc = find_victim(ns, &c->cred, o->parent, o->name, &dir, &it, &victim);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(victim->mode))
        return -ENOTDIR;
    if (ns_dir_count(victim->u.dir) > 0)
        return -ENOTEMPTY;
    uint64_t ino = it.ino;
    ns_dir_remove(dir->u.dir, o->name.p, o->name.len);
    touch_dir(dir, c->op->now);
    dir->nlink--;
    ns_free_inode(ns, ino, c->res);
    return 0;
}

/* ---- rename ----------------------------------------------------------- */

struct rename_plan {
    struct ns_inode *odir, *ndir;   /* old and new parent */
    struct ns_inode *src, *tgt;     /* tgt NULL when the new name is free */
    uint64_t sino, tino;
};

/* True when ino is anc or lies below it. */
static bool is_under(const struct ns *ns, uint64_t ino, uint64_t anc)
{
    for (;;) {
        if (ino == anc)
            return true;
        if (ino == NS_ROOT_INO)
            return false;
        ino = ns_inode_get(&ns->inodes, ino)->aux;
    }
}

static int rename_find(const struct ns *ns, const struct ns_call *c,
                       struct rename_plan *p)
{
    const struct ns_op_rename *o = &c->op->u.rename;
    if ((o->flags & ~(uint32_t)(NS_RENAME_NOREPLACE | NS_RENAME_EXCHANGE)) ||
        o->flags == (NS_RENAME_NOREPLACE | NS_RENAME_EXCHANGE))
        return -EINVAL;
    struct ns_dir_item it;
    int rc = find_victim(ns, &c->cred, o->parent, o->name, &p->odir, &it, &p->src);
    if (rc < 0)
        return rc;
    p->sino = it.ino;
    rc = ns_get_dir(ns, o->newparent, &p->ndir);
    if (rc < 0)
        return rc;
    rc = ns_fs_check_name(o->newname);
    if (rc < 0)
        return rc;
    rc = ns_perm_check(p->ndir, &c->cred, NS_PERM_X | NS_PERM_W);
    if (rc < 0)
        return rc;
    p->tgt = NULL;
    if (ns_dir_lookup(p->ndir->u.dir, o->newname.p, o->newname.len, &it) == 0) {
        p->tino = it.ino;
        p->tgt = ns_inode_get(&ns->inodes, it.ino);
    }
    if ((o->flags & NS_RENAME_EXCHANGE) && !p->tgt)
        return -ENOENT;
    if ((o->flags & NS_RENAME_NOREPLACE) && p->tgt)
        return -EEXIST;
    return 0;
}

/* 0 to go on, 1 when the rename is a no-op, or an error. */
static int rename_check(const struct ns *ns, const struct ns_call *c,
                        const struct rename_plan *p)
{
    const struct ns_op_rename *o = &c->op->u.rename;
    bool exchange = o->flags & NS_RENAME_EXCHANGE;
    if (p->tgt && p->tino == p->sino)
        return 1;
    bool sdir = S_ISDIR(p->src->mode);
    bool tdir = p->tgt && S_ISDIR(p->tgt->mode);
    if (p->tgt) {
        int rc = ns_perm_sticky(p->ndir, p->tgt, &c->cred);
        if (rc < 0)
            return rc;
    }
    if (p->tgt && !exchange) {
        if (sdir && !tdir)
            return -ENOTDIR;
        if (!sdir && tdir)
            return -EISDIR;
        if (tdir && ns_dir_count(p->tgt->u.dir) > 0)
            return -ENOTEMPTY;
    }
    if (sdir && is_under(ns, o->newparent, p->sino))
        return -EINVAL;
    if (exchange && tdir && is_under(ns, o->parent, p->tino))
        return -EINVAL;
    if (o->parent != o->newparent) {
        /* a directory changing parent rewrites its ".." */
        if (sdir && ns_perm_check(p->src, &c->cred, NS_PERM_W) < 0)
            return -EACCES;
        if (exchange && tdir && ns_perm_check(p->tgt, &c->cred, NS_PERM_W) < 0)
            return -EACCES;
    }
    return 0;
}

/* Moves directory d (ino) from parent `from` to parent `to`. */
static void reparent(struct ns *ns, struct ns_inode *d, uint64_t from, uint64_t to)
{
    if (!S_ISDIR(d->mode) || from == to)
        return;
    d->aux = (uint32_t)to;
    ns_inode_get(&ns->inodes, from)->nlink--;
    ns_inode_get(&ns->inodes, to)->nlink++;
}

static void rename_exchange(struct ns *ns, const struct ns_op_rename *o,
                            struct rename_plan *p)
{
    ns_dir_set_ino(p->odir->u.dir, o->name.p, o->name.len, (uint32_t)p->tino);
    ns_dir_set_ino(p->ndir->u.dir, o->newname.p, o->newname.len, (uint32_t)p->sino);
    reparent(ns, p->src, o->parent, o->newparent);
    reparent(ns, p->tgt, o->newparent, o->parent);
}

/* The target entry now names the source; the old target loses a link. */
static void rename_replace(struct ns *ns, struct ns_call *c,
                           const struct ns_op_rename *o, struct rename_plan *p)
{
    ns_dir_set_ino(p->ndir->u.dir, o->newname.p, o->newname.len, (uint32_t)p->sino);
    ns_dir_remove(p->odir->u.dir, o->name.p, o->name.len);
    reparent(ns, p->src, o->parent, o->newparent);
    if (S_ISDIR(p->tgt->mode)) {
        p->ndir->nlink--;
        ns_free_inode(ns, p->tino, c->res);
        return;
    }
    p->tgt->nlink--;
    p->tgt->ctime = c->op->now;
    ns_unlinked(ns, p->tino, c->res);
}

int ns_fs_rename(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_rename *o = &c->op->u.rename;
    struct rename_plan p;
    int rc = rename_find(ns, c, &p);
    if (rc < 0)
        return rc;
    rc = rename_check(ns, c, &p);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    int64_t now = c->op->now;
    if (o->flags & NS_RENAME_EXCHANGE) {
        rename_exchange(ns, o, &p);
        p.tgt->ctime = now;
    } else if (p.tgt) {
        rename_replace(ns, c, o, &p);
    } else {
        rc = ns_dir_add(p.ndir->u.dir, o->newname.p, o->newname.len,
                        (uint32_t)p.sino, NULL);
        if (rc < 0)
            return rc;
        ns_dir_remove(p.odir->u.dir, o->name.p, o->name.len);
        reparent(ns, p.src, o->parent, o->newparent);
    }
    p.src->ctime = now;
    touch_dir(p.odir, now);
    touch_dir(p.ndir, now);
    return 0;
}

/* ---- setattr ---------------------------------------------------------- */

#define SET_ALL (NS_SET_MODE | NS_SET_UID | NS_SET_GID | NS_SET_SIZE | \
                 NS_SET_ATIME | NS_SET_MTIME | NS_SET_ATIME_NOW |      \
                 NS_SET_MTIME_NOW | NS_SET_GOAL | NS_SET_OPEN_FH)

static int check_owner_change(const struct ns_inode *in, const struct ns_cred *cr,
                              const struct ns_op_setattr *o)
{
    if ((o->valid & NS_SET_MODE) && !ns_perm_owner(in, cr))
        return -EPERM;
    if ((o->valid & NS_SET_UID) && cr->uid != 0 &&
        !(cr->uid == in->uid && o->uid == in->uid))
        return -EPERM;
    if ((o->valid & NS_SET_GID) && cr->uid != 0 &&
        !(cr->uid == in->uid && (o->gid == in->gid || ns_perm_in_group(cr, o->gid))))
        return -EPERM;
    return 0;
}

static int check_size(const struct ns *ns, const struct ns_call *c,
                      const struct ns_inode *in)
{
    const struct ns_op_setattr *o = &c->op->u.setattr;
    if (S_ISDIR(in->mode))
        return -EISDIR;
    if (!S_ISREG(in->mode))
        return -EINVAL;
    if (o->size > NS_CHUNKS_MAX * ns_chunk_size(ns))
        return -EFBIG;
    if ((o->valid & NS_SET_OPEN_FH) && ns_lease_writable(c, o->ino))
        return 0;
    return ns_perm_check(in, &c->cred, NS_PERM_W);
}

static int setattr_checks(const struct ns *ns, const struct ns_call *c,
                          const struct ns_inode *in)
{
    const struct ns_op_setattr *o = &c->op->u.setattr;
    if (o->valid & ~(uint32_t)SET_ALL)
        return -EINVAL;
    int rc = check_owner_change(in, &c->cred, o);
    if (rc < 0)
        return rc;
    if (o->valid & NS_SET_SIZE) {
        rc = check_size(ns, c, in);
        if (rc < 0)
            return rc;
    }
    if ((o->valid & (NS_SET_ATIME | NS_SET_MTIME)) && !ns_perm_owner(in, &c->cred))
        return -EPERM;
    if ((o->valid & (NS_SET_ATIME_NOW | NS_SET_MTIME_NOW)) &&
        !ns_perm_owner(in, &c->cred) && ns_perm_check(in, &c->cred, NS_PERM_W) < 0)
        return -EACCES;
    if ((o->valid & NS_SET_GOAL) && !ns_perm_owner(in, &c->cred))
        return -EPERM;
    if ((o->valid & NS_SET_GOAL) && (o->goal == 0 || o->goal > NS_GOAL_MAX))
        return -EINVAL;
    return 0;
}

static void set_owner(struct ns_inode *in, const struct ns_cred *cr,
                      const struct ns_op_setattr *o)
{
    if (o->valid & NS_SET_MODE) {
        uint32_t m = o->mode & 07777;
        if (cr->uid != 0 && !ns_perm_in_group(cr, in->gid))
            m &= ~(uint32_t)S_ISGID;
        in->mode = (in->mode & S_IFMT) | m;
    }
    if (!(o->valid & (NS_SET_UID | NS_SET_GID)))
        return;
    if (o->valid & NS_SET_UID)
        in->uid = o->uid;
    if (o->valid & NS_SET_GID)
        in->gid = o->gid;
    /* chown drops setuid, and setgid-with-group-exec, from non-directories */
    if (!S_ISDIR(in->mode)) {
        in->mode &= ~(uint32_t)S_ISUID;
        if (in->mode & S_IXGRP)
            in->mode &= ~(uint32_t)S_ISGID;
    }
}

int ns_fs_setattr(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_setattr *o = &c->op->u.setattr;
    struct ns_inode *in = ns_inode_get(&ns->inodes, o->ino);
    if (!in)
        return -ENOENT;
    int rc = setattr_checks(ns, c, in);
    if (rc < 0)
        return rc;
    int64_t now = c->op->now;
    set_owner(in, &c->cred, o);
    if ((o->valid & NS_SET_SIZE) && o->size != in->size) {
        ns_truncate(ns, in, o->size, c->res);
        in->mtime = now;
    }
    if (o->valid & (NS_SET_ATIME | NS_SET_ATIME_NOW))
        in->atime = (o->valid & NS_SET_ATIME_NOW) ? now : o->atime;
    if (o->valid & (NS_SET_MTIME | NS_SET_MTIME_NOW))
        in->mtime = (o->valid & NS_SET_MTIME_NOW) ? now : o->mtime;
    if (o->valid & NS_SET_GOAL)
        in->goal = (uint8_t)o->goal;
    in->ctime = now;
    ns_attr_fill(in, o->ino, &c->res->reply.attr);
    return 0;
}

/* ---- xattrs ----------------------------------------------------------- */

static bool has_prefix(struct ns_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len > n && memcmp(s.p, prefix, n) == 0;
}

int ns_fs_xattr_access(const struct ns_inode *in, const struct ns_cred *cred,
                       struct ns_str name, int mask)
{
    bool write = mask & NS_PERM_W;
    if (name.len == 0 || name.len > NS_XATTR_NAME_MAX)
        return -ERANGE;
    if (memchr(name.p, '\0', name.len))
        return -EINVAL;
    if (has_prefix(name, "user.")) {
        if (!S_ISREG(in->mode) && !S_ISDIR(in->mode))
            return write ? -EPERM : -ENODATA;
        return ns_perm_check(in, cred, mask);
    }
    if (has_prefix(name, "trusted."))
        return cred->uid == 0 ? 0 : (write ? -EPERM : -ENODATA);
    if (has_prefix(name, "security."))
        return !write || cred->uid == 0 ? 0 : -EPERM;
    return -EOPNOTSUPP;
}

int ns_fs_setxattr(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_xattr *o = &c->op->u.xattr;
    struct ns_inode *in = ns_inode_get(&ns->inodes, o->ino);
    if (!in)
        return -ENOENT;
    if (o->flags & ~(uint32_t)(NS_XATTR_CREATE | NS_XATTR_REPLACE) ||
        o->flags == (NS_XATTR_CREATE | NS_XATTR_REPLACE))
        return -EINVAL;
    int rc = ns_fs_xattr_access(in, &c->cred, o->name, NS_PERM_W);
    if (rc < 0)
        return rc;
    if (o->value.len > NS_XATTR_SIZE_MAX)
        return -E2BIG;
    rc = ns_xattr_set(&ns->xattrs, o->ino, o->name.p, o->name.len, o->value.p,
                      o->value.len, o->flags);
    if (rc < 0)
        return rc;
    in->ctime = c->op->now;
    return 0;
}

int ns_fs_removexattr(struct ns *ns, struct ns_call *c)
{
    const struct ns_op_xattr *o = &c->op->u.xattr;
    struct ns_inode *in = ns_inode_get(&ns->inodes, o->ino);
    if (!in)
        return -ENOENT;
    int rc = ns_fs_xattr_access(in, &c->cred, o->name, NS_PERM_W);
    if (rc < 0)
        return rc;
    rc = ns_xattr_remove(&ns->xattrs, o->ino, o->name.p, o->name.len);
    if (rc < 0)
        return rc;
    in->ctime = c->op->now;
    return 0;
}
