/*
 * Differential test of the namespace tree (STYLE §18): random operations
 * from random users against a naive reference model (flat arrays, linear
 * scans), comparing every reply and, after every step, every inode's
 * attributes, every directory's listing with its cookies, symlink targets
 * and xattrs.  A planted fault in the model proves the comparison bites.
 * Replay one run with NS_SEED=<seed>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include "master/ns_dir.h"
#include "master/ns_inode.h"
#include "test_ns.h"

#define MI 2048             /* inode numbers the run may use */
#define ME 2048             /* directory entries ever made */
#define MX 6                /* xattrs per inode */

struct mx { char name[32]; char val[8]; uint32_t vlen; };

struct mnode {
    bool live;
    uint32_t mode, uid, gid, nlink, goal, rdev, gen;
    uint64_t size;
    int64_t atime, mtime, ctime;
    uint64_t parent, next_id;   /* directories */
    char target[32];            /* symlinks */
    struct mx x[MX];
    int nx;
};

struct ment {
    bool live;
    uint64_t dir, id, ino;
    char name[300];
    uint32_t len;
};

struct model {
    struct mnode n[MI];
    struct ment e[ME];
    int ne;
    uint32_t gen;
    uint64_t max_ino;           /* highest inode number ever made */
    bool squash;
    bool fault;                 /* the planted bug */
};

/* ---- the model's rules -------------------------------------------------- */

static struct ns_cred m_cred(const struct model *m, struct ns_cred c)
{
    if (m->squash && c.uid == 0)
        c = (struct ns_cred){ .uid = 65534, .gid = 65534 };
    return c;
}

static bool m_in_group(const struct ns_cred *c, uint32_t gid)
{
    if (c->gid == gid)
        return true;
    for (uint32_t i = 0; i < c->ngroups; i++) {
        if (c->groups[i] == gid)
            return true;
    }
    return false;
}

static int m_perm(const struct mnode *n, const struct ns_cred *c, int mask)
{
    if (c->uid == 0) {
        if ((mask & 1) && !S_ISDIR(n->mode) && !(n->mode & 0111))
            return -EACCES;
        return 0;
    }
    uint32_t bits = c->uid == n->uid ? n->mode >> 6 : m_in_group(c, n->gid) ? n->mode >> 3 : n->mode;
    return ((uint32_t)mask & ~(bits & 7)) ? -EACCES : 0;
}

static bool m_owner(const struct mnode *n, const struct ns_cred *c)
{
    return c->uid == 0 || c->uid == n->uid;
}

static int m_sticky(const struct mnode *d, const struct mnode *v, const struct ns_cred *c)
{
    if ((d->mode & S_ISVTX) && c->uid != 0 && c->uid != d->uid && c->uid != v->uid)
        return -EPERM;
    return 0;
}

static int m_name(struct ns_str s)
{
    if (s.len == 0)
        return -ENOENT;
    if (s.len > 255)
        return -ENAMETOOLONG;
    if (memchr(s.p, '/', s.len))
        return -EINVAL;
    if ((s.len == 1 && s.p[0] == '.') || (s.len == 2 && !memcmp(s.p, "..", 2)))
        return -EINVAL;
    return 0;
}

static int m_dir(struct model *m, uint64_t ino, struct mnode **out)
{
    if (ino == 0 || ino >= MI || !m->n[ino].live)
        return -ENOENT;
    if (!S_ISDIR(m->n[ino].mode))
        return -ENOTDIR;
    *out = &m->n[ino];
    return 0;
}

static struct ment *m_find(struct model *m, uint64_t dir, struct ns_str s)
{
    for (int i = 0; i < m->ne; i++) {
        struct ment *e = &m->e[i];
        if (e->live && e->dir == dir && e->len == s.len && !memcmp(e->name, s.p, s.len))
            return e;
    }
    return NULL;
}

static int m_count(const struct model *m, uint64_t dir)
{
    int n = 0;
    for (int i = 0; i < m->ne; i++)
        n += m->e[i].live && m->e[i].dir == dir;
    return n;
}

static void m_add(struct model *m, uint64_t dir, struct ns_str s, uint64_t ino)
{
    assert_true(m->ne < ME);
    struct ment *e = &m->e[m->ne++];
    e->live = true;
    e->dir = dir;
    e->id = m->n[dir].next_id++;
    e->ino = ino;
    memcpy(e->name, s.p, s.len);
    e->len = s.len;
}

static void m_touch(struct mnode *d, int64_t now)
{
    d->mtime = d->ctime = now;
}

static void m_drop(struct model *m, uint64_t ino)
{
    memset(&m->n[ino], 0, sizeof(m->n[ino]));
}

static int m_victim(struct model *m, const struct ns_cred *c, uint64_t parent,
                    struct ns_str name, struct mnode **dir, struct ment **e)
{
    int rc = m_dir(m, parent, dir);
    if (rc == 0)
        rc = m_name(name);
    if (rc == 0)
        rc = m_perm(*dir, c, 1);
    if (rc < 0)
        return rc;
    *e = m_find(m, parent, name);
    if (!*e)
        return -ENOENT;
    rc = m_perm(*dir, c, 2);
    return rc < 0 ? rc : m_sticky(*dir, &m->n[(*e)->ino], c);
}

/* ---- the model's ops ------------------------------------------------------ */

static int m_make(struct model *m, const struct ns_op *op, const struct ns_cred *c)
{
    const struct ns_op_make *o = &op->u.make;
    struct mnode *d;
    int rc = m_dir(m, o->parent, &d);
    if (rc == 0)
        rc = m_name(o->name);
    if (rc == 0)
        rc = m_perm(d, c, 1);
    if (rc < 0)
        return rc;
    struct ment *e = m_find(m, o->parent, o->name);
    if (e) {
        if (op->type != NS_OP_CREATE || (o->flags & NS_CREATE_EXCL))
            return -EEXIST;
        return S_ISDIR(m->n[e->ino].mode) ? -EISDIR : 0;
    }
    if ((rc = m_perm(d, c, 2)) < 0)
        return rc;
    uint32_t mode, perm = o->mode & 07777;
    if (op->type == NS_OP_MKDIR) {
        mode = S_IFDIR | (perm & 01777);
    } else if (op->type == NS_OP_CREATE) {
        mode = S_IFREG | perm;
    } else if (op->type == NS_OP_SYMLINK) {
        mode = S_IFLNK | 0777;
        if (o->target.len == 0)
            return -ENOENT;
    } else {
        uint32_t type = (o->mode & S_IFMT) ? o->mode & S_IFMT : S_IFREG;
        if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK &&
            type != S_IFCHR && type != S_IFBLK)
            return -EINVAL;
        mode = type | perm;
    }
    if (o->ino == 0 || o->ino > NS_INO_MAX)
        return -EINVAL;
    if (o->ino < MI && m->n[o->ino].live)
        return -DFS_EIDINUSE;
    assert_true(o->ino < MI);
    struct mnode *n = &m->n[o->ino];
    memset(n, 0, sizeof(*n));
    n->live = true;
    n->mode = mode;
    n->uid = c->uid;
    n->gid = c->gid;
    if (d->mode & S_ISGID) {
        n->gid = d->gid;
        if (S_ISDIR(mode))
            n->mode |= S_ISGID;
        else if ((n->mode & 02010) == 02010 && c->uid != 0 && !m_in_group(c, n->gid))
            n->mode &= ~(uint32_t)S_ISGID;
    }
    n->gen = ++m->gen;
    if (o->ino > m->max_ino)
        m->max_ino = o->ino;
    n->atime = n->mtime = n->ctime = op->now;
    n->goal = d->goal;
    n->nlink = S_ISDIR(mode) ? 2 : 1;
    if (S_ISDIR(mode)) {
        n->parent = o->parent;
        n->next_id = NS_DIR_FIRST_ID;
        d->nlink++;
    }
    if (S_ISLNK(mode)) {
        memcpy(n->target, o->target.p, o->target.len);
        n->size = o->target.len;
    }
    if (S_ISCHR(mode) || S_ISBLK(mode))
        n->rdev = o->rdev;
    m_add(m, o->parent, o->name, o->ino);
    m_touch(d, op->now);
    return 0;
}

static int m_link(struct model *m, const struct ns_op *op, const struct ns_cred *c)
{
    const struct ns_op_link *o = &op->u.link;
    if (o->ino == 0 || o->ino >= MI || !m->n[o->ino].live)
        return -ENOENT;
    struct mnode *d, *n = &m->n[o->ino];
    int rc = m_dir(m, o->newparent, &d);
    if (rc == 0)
        rc = m_name(o->newname);
    if (rc == 0)
        rc = m_perm(d, c, 1);
    if (rc < 0)
        return rc;
    if (m_find(m, o->newparent, o->newname))
        return -EEXIST;
    if ((rc = m_perm(d, c, 2)) < 0)
        return rc;
    if (S_ISDIR(n->mode))
        return -EPERM;
    m_add(m, o->newparent, o->newname, o->ino);
    n->nlink++;
    n->ctime = op->now;
    m_touch(d, op->now);
    return 0;
}

static int m_unlink(struct model *m, const struct ns_op *op, const struct ns_cred *c)
{
    struct mnode *d;
    struct ment *e;
    int rc = m_victim(m, c, op->u.remove.parent, op->u.remove.name, &d, &e);
    if (rc < 0)
        return rc;
    struct mnode *n = &m->n[e->ino];
    if (op->type == NS_OP_UNLINK && S_ISDIR(n->mode))
        return -EISDIR;
    if (op->type == NS_OP_RMDIR && !S_ISDIR(n->mode))
        return -ENOTDIR;
    if (op->type == NS_OP_RMDIR && m_count(m, e->ino) > 0)
        return -ENOTEMPTY;
    e->live = false;
    m_touch(d, op->now);
    if (S_ISDIR(n->mode)) {
        d->nlink--;
        m_drop(m, e->ino);
        return 0;
    }
    n->ctime = op->now;
    if (--n->nlink == 0)
        m_drop(m, e->ino);
    return 0;
}

static bool m_under(struct model *m, uint64_t ino, uint64_t anc)
{
    for (;;) {
        if (ino == anc)
            return true;
        if (ino == NS_ROOT_INO)
            return false;
        ino = m->n[ino].parent;
    }
}

static void m_reparent(struct model *m, uint64_t ino, uint64_t from, uint64_t to)
{
    if (!S_ISDIR(m->n[ino].mode) || from == to)
        return;
    m->n[ino].parent = to;
    m->n[from].nlink--;
    if (!m->fault)          /* the planted bug: the new parent's count */
        m->n[to].nlink++;
}

static int m_rename_check(struct model *m, const struct ns_op_rename *o,
                          const struct ns_cred *c, struct ment *se, struct ment *te)
{
    bool exch = o->flags & NS_RENAME_EXCHANGE;
    struct mnode *s = &m->n[se->ino], *t = te ? &m->n[te->ino] : NULL;
    bool sdir = S_ISDIR(s->mode), tdir = t && S_ISDIR(t->mode);
    int rc;
    if (t && (rc = m_sticky(&m->n[o->newparent], t, c)) < 0)
        return rc;
    if (t && !exch) {
        if (sdir && !tdir)
            return -ENOTDIR;
        if (!sdir && tdir)
            return -EISDIR;
        if (tdir && m_count(m, te->ino) > 0)
            return -ENOTEMPTY;
    }
    if (sdir && m_under(m, o->newparent, se->ino))
        return -EINVAL;
    if (exch && tdir && m_under(m, o->parent, te->ino))
        return -EINVAL;
    if (o->parent != o->newparent) {
        if (sdir && m_perm(s, c, 2) < 0)
            return -EACCES;
        if (exch && tdir && m_perm(t, c, 2) < 0)
            return -EACCES;
    }
    return 0;
}

static int m_rename(struct model *m, const struct ns_op *op, const struct ns_cred *c)
{
    const struct ns_op_rename *o = &op->u.rename;
    if ((o->flags & ~3u) || o->flags == 3)
        return -EINVAL;
    struct mnode *od = NULL, *nd = NULL;
    struct ment *se;
    int rc = m_victim(m, c, o->parent, o->name, &od, &se);
    if (rc == 0)
        rc = m_dir(m, o->newparent, &nd);
    if (rc == 0)
        rc = m_name(o->newname);
    if (rc == 0)
        rc = m_perm(nd, c, 3);
    if (rc < 0)
        return rc;
    struct ment *te = m_find(m, o->newparent, o->newname);
    if ((o->flags & NS_RENAME_EXCHANGE) && !te)
        return -ENOENT;
    if ((o->flags & NS_RENAME_NOREPLACE) && te)
        return -EEXIST;
    if (te && te->ino == se->ino)
        return 0;
    if ((rc = m_rename_check(m, o, c, se, te)) < 0)
        return rc;
    uint64_t sino = se->ino;
    if (o->flags & NS_RENAME_EXCHANGE) {
        uint64_t tino = te->ino;
        se->ino = tino;
        te->ino = sino;
        m_reparent(m, sino, o->parent, o->newparent);
        m_reparent(m, tino, o->newparent, o->parent);
        m->n[tino].ctime = op->now;
    } else if (te) {
        uint64_t tino = te->ino;
        te->ino = sino;
        se->live = false;
        m_reparent(m, sino, o->parent, o->newparent);
        if (S_ISDIR(m->n[tino].mode)) {
            nd->nlink--;
            m_drop(m, tino);
        } else {
            m->n[tino].ctime = op->now;
            if (--m->n[tino].nlink == 0)
                m_drop(m, tino);
        }
    } else {
        se->live = false;
        m_add(m, o->newparent, o->newname, sino);
        m_reparent(m, sino, o->parent, o->newparent);
    }
    m->n[sino].ctime = op->now;
    m_touch(od, op->now);
    m_touch(nd, op->now);
    return 0;
}

static int m_setattr_check(struct mnode *n, const struct ns_op_setattr *o,
                           const struct ns_cred *c)
{
    uint32_t v = o->valid;
    if ((v & NS_SET_MODE) && !m_owner(n, c))
        return -EPERM;
    if ((v & NS_SET_UID) && c->uid != 0 && !(c->uid == n->uid && o->uid == n->uid))
        return -EPERM;
    if ((v & NS_SET_GID) && c->uid != 0 &&
        !(c->uid == n->uid && (o->gid == n->gid || m_in_group(c, o->gid))))
        return -EPERM;
    if (v & NS_SET_SIZE) {
        if (S_ISDIR(n->mode))
            return -EISDIR;
        if (!S_ISREG(n->mode))
            return -EINVAL;
        if (m_perm(n, c, 2) < 0)
            return -EACCES;
    }
    if ((v & (NS_SET_ATIME | NS_SET_MTIME)) && !m_owner(n, c))
        return -EPERM;
    if ((v & (NS_SET_ATIME_NOW | NS_SET_MTIME_NOW)) && !m_owner(n, c) && m_perm(n, c, 2) < 0)
        return -EACCES;
    if ((v & NS_SET_GOAL) && !m_owner(n, c))
        return -EPERM;
    if ((v & NS_SET_GOAL) && (o->goal == 0 || o->goal > NS_GOAL_MAX))
        return -EINVAL;
    return 0;
}

static int m_setattr(struct model *m, const struct ns_op *op, const struct ns_cred *c)
{
    const struct ns_op_setattr *o = &op->u.setattr;
    if (o->ino == 0 || o->ino >= MI || !m->n[o->ino].live)
        return -ENOENT;
    struct mnode *n = &m->n[o->ino];
    int rc = m_setattr_check(n, o, c);
    if (rc < 0)
        return rc;
    if (o->valid & NS_SET_MODE) {
        uint32_t mode = o->mode & 07777;
        if (c->uid != 0 && !m_in_group(c, n->gid))
            mode &= ~(uint32_t)S_ISGID;
        n->mode = (n->mode & S_IFMT) | mode;
    }
    if (o->valid & NS_SET_UID)
        n->uid = o->uid;
    if (o->valid & NS_SET_GID)
        n->gid = o->gid;
    if ((o->valid & (NS_SET_UID | NS_SET_GID)) && !S_ISDIR(n->mode)) {
        n->mode &= ~(uint32_t)S_ISUID;
        if (n->mode & 010)
            n->mode &= ~(uint32_t)S_ISGID;
    }
    if ((o->valid & NS_SET_SIZE) && o->size != n->size) {
        n->size = o->size;
        n->mtime = op->now;
    }
    if (o->valid & (NS_SET_ATIME | NS_SET_ATIME_NOW))
        n->atime = (o->valid & NS_SET_ATIME_NOW) ? op->now : o->atime;
    if (o->valid & (NS_SET_MTIME | NS_SET_MTIME_NOW))
        n->mtime = (o->valid & NS_SET_MTIME_NOW) ? op->now : o->mtime;
    if (o->valid & NS_SET_GOAL)
        n->goal = o->goal;
    n->ctime = op->now;
    return 0;
}

static int m_xattr_access(const struct mnode *n, const struct ns_cred *c,
                          struct ns_str name, bool write)
{
    if (name.len == 0 || name.len > 255)
        return -ERANGE;
    if (name.len > 5 && !memcmp(name.p, "user.", 5)) {
        if (!S_ISREG(n->mode) && !S_ISDIR(n->mode))
            return write ? -EPERM : -ENODATA;
        return m_perm(n, c, write ? 2 : 4);
    }
    if (name.len > 8 && !memcmp(name.p, "trusted.", 8))
        return c->uid == 0 ? 0 : write ? -EPERM : -ENODATA;
    return -EOPNOTSUPP;
}

static struct mx *m_xfind(struct mnode *n, struct ns_str name)
{
    for (int i = 0; i < n->nx; i++) {
        if (strlen(n->x[i].name) == name.len && !memcmp(n->x[i].name, name.p, name.len))
            return &n->x[i];
    }
    return NULL;
}

static int m_xattr(struct model *m, const struct ns_op *op, const struct ns_cred *c)
{
    const struct ns_op_xattr *o = &op->u.xattr;
    if (o->ino == 0 || o->ino >= MI || !m->n[o->ino].live)
        return -ENOENT;
    struct mnode *n = &m->n[o->ino];
    if (op->type == NS_OP_SETXATTR && (o->flags == 3 || o->flags > 3))
        return -EINVAL;
    int rc = m_xattr_access(n, c, o->name, true);
    if (rc < 0)
        return rc;
    struct mx *x = m_xfind(n, o->name);
    if (op->type == NS_OP_REMOVEXATTR) {
        if (!x)
            return -ENODATA;
        *x = n->x[--n->nx];
    } else {
        if ((o->flags & NS_XATTR_CREATE) && x)
            return -EEXIST;
        if ((o->flags & NS_XATTR_REPLACE) && !x)
            return -ENODATA;
        if (!x) {
            assert_true(n->nx < MX);
            x = &n->x[n->nx++];
            memset(x, 0, sizeof(*x));
            memcpy(x->name, o->name.p, o->name.len);
        }
        memcpy(x->val, o->value.p, o->value.len);
        x->vlen = o->value.len;
    }
    n->ctime = op->now;
    return 0;
}

/* Forgets dead entries, so scans stay proportional to live ones. */
static void m_sweep(struct model *m)
{
    int w = 0;
    for (int i = 0; i < m->ne; i++) {
        if (m->e[i].live)
            m->e[w++] = m->e[i];
    }
    m->ne = w;
}

static int m_apply(struct model *m, const struct ns_op *op)
{
    m_sweep(m);
    if (op->type == NS_OP_CONFIG) {
        m->squash = op->u.config.flags & NS_CONFIG_ROOT_SQUASH;
        return 0;
    }
    struct ns_cred c = m_cred(m, op->cred);
    switch (op->type) {
    case NS_OP_MKDIR: case NS_OP_CREATE: case NS_OP_MKNOD: case NS_OP_SYMLINK:
        return m_make(m, op, &c);
    case NS_OP_LINK:
        return m_link(m, op, &c);
    case NS_OP_UNLINK: case NS_OP_RMDIR:
        return m_unlink(m, op, &c);
    case NS_OP_RENAME:
        return m_rename(m, op, &c);
    case NS_OP_SETATTR:
        return m_setattr(m, op, &c);
    default:
        return m_xattr(m, op, &c);
    }
}

/* ---- comparing ------------------------------------------------------------ */

static bool same_node(struct tctx *t, const struct model *m, uint64_t ino)
{
    const struct mnode *n = &m->n[ino];
    struct ns_attr a;
    int rc = ns_getattr(t->ns, ino, &a);
    if (!n->live)
        return rc == -ENOENT;
    if (rc != 0 || a.mode != n->mode || a.uid != n->uid || a.gid != n->gid ||
        a.nlink != n->nlink || a.size != n->size || a.atime != n->atime ||
        a.mtime != n->mtime || a.ctime != n->ctime || a.goal != n->goal ||
        a.rdev != n->rdev || a.gen != n->gen) {
        printf("inode %llu differs: mode %o/%o nlink %u/%u size %llu/%llu gen %u/%u\n",
               (unsigned long long)ino, a.mode, n->mode, a.nlink, n->nlink,
               (unsigned long long)a.size, (unsigned long long)n->size, a.gen, n->gen);
        return false;
    }
    if (S_ISLNK(n->mode)) {
        const char *tg;
        uint32_t len;
        if (ns_readlink(t->ns, ino, &tg, &len) != 0 || len != n->size ||
            memcmp(tg, n->target, len) != 0)
            return false;
    }
    if (m->squash)
        return true;    /* queries run as a squashed root: attributes only */
    char list[512];
    size_t need, want = 0;
    for (int i = 0; i < n->nx; i++) {
        const void *v;
        uint32_t vlen;
        struct ns_str name = t_str(n->x[i].name);
        if (ns_getxattr(t->ns, &T_ROOT, ino, name, &v, &vlen) != 0 ||
            vlen != n->x[i].vlen || memcmp(v, n->x[i].val, vlen) != 0)
            return false;
        want += name.len + 1;
    }
    return ns_listxattr(t->ns, &T_ROOT, ino, list, sizeof(list), &need) == 0 && need == want;
}

static int cmp_id(const void *a, const void *b)
{
    const struct ment *x = *(const struct ment *const *)a, *y = *(const struct ment *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool same_listing(struct tctx *t, const struct model *m, uint64_t dir)
{
    static const struct ment *want[ME];
    size_t nw = 0, got = 0;
    for (int k = 0; k < m->ne; k++) {
        if (m->e[k].live && m->e[k].dir == dir)
            want[nw++] = &m->e[k];
    }
    qsort(want, nw, sizeof(want[0]), cmp_id);
    struct ns_dirent ents[4];
    size_t n;
    uint64_t cookie = 2;          /* past "." and ".." */
    do {
        if (ns_readdir(t->ns, &T_ROOT, dir, cookie, ents, 4, &n) != 0)
            return false;
        for (size_t i = 0; i < n; i++, got++) {
            const struct ment *e = got < nw ? want[got] : NULL;
            if (!e || e->id != ents[i].cookie || e->ino != ents[i].ino ||
                e->len != ents[i].len || memcmp(e->name, ents[i].name, e->len)) {
                printf("listing of %llu differs at cookie %llu\n",
                       (unsigned long long)dir, (unsigned long long)ents[i].cookie);
                return false;
            }
            cookie = ents[i].cookie;
        }
    } while (n > 0);
    return got == nw;
}

static bool same_state(struct tctx *t, const struct model *m)
{
    for (uint64_t ino = 1; ino <= m->max_ino + 1 && ino < MI; ino++) {
        if (!same_node(t, m, ino))
            return false;
        if (m->n[ino].live && S_ISDIR(m->n[ino].mode) && !m->squash &&
            !same_listing(t, m, ino))
            return false;
    }
    return true;
}

/* ---- the random operations ------------------------------------------------ */

static const char *const NAMES[] = { "a", "b", "c", "d", "e", "user.x", "f", "g",
                                     "longer-name-h", "i", "j", "k" };
static const uint32_t MODES[] = { 0755, 0700, 0777, 01777, 02777, 0644, 0666,
                                  0444, 0, 06755, 02775, 0711 };

struct gen {
    uint64_t seed;
    char longname[300];
    char names[2][256];         /* copies of picked entries' names */
    int next_name;
};

static struct ns_cred pick_cred(struct gen *g)
{
    static const struct ns_cred creds[] = {
        { .uid = 0, .gid = 0 },
        { .uid = 0, .gid = 0 },
        { .uid = 1000, .gid = 100 },
        { .uid = 1001, .gid = 100, .ngroups = 1, .groups = { 200 } },
        { .uid = 1002, .gid = 300 },
    };
    return creds[t_rand(&g->seed) % 5];
}

static struct ns_str pick_name(struct gen *g)
{
    uint64_t r = t_rand(&g->seed) % 40;
    if (r == 0)
        return t_str("");
    if (r == 1)
        return t_str(".");
    if (r == 2)
        return t_str("x/y");
    if (r == 3)
        return (struct ns_str){ g->longname, 256 };
    return t_str(NAMES[r % 12]);
}

/* A live entry of the model (most ops aim at names that exist), or NULL. */
static const struct ment *pick_entry(struct gen *g, const struct model *m)
{
    if (m->ne == 0)
        return NULL;
    int start = (int)(t_rand(&g->seed) % (uint64_t)m->ne);
    for (int i = 0; i < m->ne; i++) {
        const struct ment *e = &m->e[(start + i) % m->ne];
        if (e->live)
            return e;
    }
    return NULL;
}

/* Mostly a live directory, sometimes any number. */
static uint64_t pick_dir(struct gen *g, const struct model *m)
{
    uint64_t r = t_rand(&g->seed);
    if (r % 16 == 0)
        return r % (m->max_ino + 2);
    const struct ment *e = pick_entry(g, m);
    if (e && r % 4)
        return e->dir;
    return NS_ROOT_INO;
}

static uint64_t pick_ino(struct gen *g, const struct model *m)
{
    uint64_t r = t_rand(&g->seed);
    if (r % 16 == 0)
        return r % (m->max_ino + 2);
    const struct ment *e = pick_entry(g, m);
    return e ? e->ino : NS_ROOT_INO;
}

/* The source of unlink, rmdir, rename: mostly an existing entry. */
static void pick_victim(struct gen *g, const struct model *m, uint64_t *dir,
                        struct ns_str *name)
{
    const struct ment *e = pick_entry(g, m);
    if (e && t_rand(&g->seed) % 5) {
        /* a copy: the model moves its entries around */
        char *buf = g->names[g->next_name++ % 2];
        memcpy(buf, e->name, e->len);
        *dir = e->dir;
        *name = (struct ns_str){ buf, e->len };
        return;
    }
    *dir = pick_dir(g, m);
    *name = pick_name(g);
}

static void random_setattr(struct gen *g, const struct model *m, struct ns_op *op)
{
    struct ns_op_setattr *o = &op->u.setattr;
    o->ino = pick_ino(g, m);
    static const uint32_t valids[] = {
        NS_SET_MODE, NS_SET_UID, NS_SET_GID, NS_SET_UID | NS_SET_GID, NS_SET_SIZE,
        NS_SET_ATIME | NS_SET_MTIME, NS_SET_ATIME_NOW | NS_SET_MTIME_NOW,
        NS_SET_MTIME_NOW, NS_SET_GOAL, NS_SET_MODE | NS_SET_SIZE,
    };
    o->valid = valids[t_rand(&g->seed) % 10];
    o->mode = MODES[t_rand(&g->seed) % 12];
    o->uid = 1000 + (uint32_t)(t_rand(&g->seed) % 3);
    o->gid = (uint32_t[]){ 100, 200, 300, 0 }[t_rand(&g->seed) % 4];
    o->size = t_rand(&g->seed) % 3 * 1000;
    o->atime = (int64_t)(t_rand(&g->seed) % 100);
    o->mtime = (int64_t)(t_rand(&g->seed) % 100);
    o->goal = (uint32_t)(t_rand(&g->seed) % 5);
}

static void random_op(struct gen *g, struct tctx *t, const struct model *m,
                      struct ns_op *op)
{
    static const enum ns_op_type types[] = {
        NS_OP_MKDIR, NS_OP_MKDIR, NS_OP_MKDIR, NS_OP_CREATE, NS_OP_CREATE,
        NS_OP_MKNOD, NS_OP_SYMLINK, NS_OP_LINK, NS_OP_UNLINK, NS_OP_UNLINK,
        NS_OP_RMDIR, NS_OP_RMDIR, NS_OP_RENAME, NS_OP_RENAME, NS_OP_RENAME,
        NS_OP_SETATTR, NS_OP_SETATTR, NS_OP_SETXATTR, NS_OP_SETXATTR,
        NS_OP_REMOVEXATTR,
    };
    struct ns_cred c = pick_cred(g);
    enum ns_op_type type = types[t_rand(&g->seed) % 20];
    if (t_rand(&g->seed) % 100 == 0)
        type = NS_OP_CONFIG;
    *op = t_op(t, type, &c);
    switch (op->type) {
    case NS_OP_MKDIR: case NS_OP_CREATE: case NS_OP_MKNOD: case NS_OP_SYMLINK:
        op->u.make.parent = pick_dir(g, m);
        op->u.make.name = pick_name(g);
        op->u.make.mode = MODES[t_rand(&g->seed) % 12];
        if (op->type == NS_OP_MKNOD)
            op->u.make.mode |= (uint32_t[]){ S_IFIFO, S_IFCHR, S_IFSOCK, S_IFDIR, 0 }[t_rand(&g->seed) % 5];
        op->u.make.rdev = (uint32_t)t_rand(&g->seed) % 1000;
        op->u.make.flags = t_rand(&g->seed) % 2 ? NS_CREATE_EXCL : 0;
        op->u.make.target = t_rand(&g->seed) % 10 ? t_str("../t") : t_str("");
        op->u.make.ino = t_rand(&g->seed) % 20 ? ns_next_free_ino(t->ns, 0)
                                                 : t_rand(&g->seed) % 4;
        break;
    case NS_OP_LINK:
        op->u.link = (struct ns_op_link){ pick_ino(g, m), pick_dir(g, m), pick_name(g) };
        break;
    case NS_OP_UNLINK: case NS_OP_RMDIR:
        pick_victim(g, m, &op->u.remove.parent, &op->u.remove.name);
        break;
    case NS_OP_RENAME:
        pick_victim(g, m, &op->u.rename.parent, &op->u.rename.name);
        if (t_rand(&g->seed) % 2) {
            pick_victim(g, m, &op->u.rename.newparent, &op->u.rename.newname);
        } else {
            op->u.rename.newparent = pick_dir(g, m);
            op->u.rename.newname = pick_name(g);
        }
        op->u.rename.flags = (uint32_t[]){ 0, 0, 0, NS_RENAME_NOREPLACE,
                                           NS_RENAME_EXCHANGE, 3 }[t_rand(&g->seed) % 6];
        break;
    case NS_OP_SETATTR:
        random_setattr(g, m, op);
        break;
    case NS_OP_SETXATTR: case NS_OP_REMOVEXATTR:
        op->u.xattr.ino = pick_ino(g, m);
        op->u.xattr.name = t_str((const char *[]){ "user.a", "user.b", "trusted.t",
                                                   "user.a", "bad", "" }[t_rand(&g->seed) % 6]);
        op->u.xattr.value = t_str((const char *[]){ "", "v", "value" }[t_rand(&g->seed) % 3]);
        op->u.xattr.flags = (uint32_t)(t_rand(&g->seed) % 4);
        break;
    default:
        op->cred = T_ROOT;
        op->u.config = (struct ns_op_config){ .flags = t_rand(&g->seed) % 4 == 0,
                                              .squash_uid = 65534, .squash_gid = 65534 };
    }
}

/* Runs one differential; returns 0 or the first diverging step + 1. */
static int run_diff(uint64_t seed, int steps, bool fault)
{
    static struct model m;
    memset(&m, 0, sizeof(m));
    m.fault = fault;
    m.n[NS_ROOT_INO] = (struct mnode){ .live = true, .mode = S_IFDIR | 0755, .nlink = 2,
                                       .goal = NS_GOAL_DEFAULT, .parent = NS_ROOT_INO,
                                       .next_id = NS_DIR_FIRST_ID, .gen = 1 };
    m.gen = 1;
    m.max_ino = NS_ROOT_INO;
    struct gen g = { .seed = seed };
    memset(g.longname, 'l', sizeof(g.longname));
    struct tctx t;
    t_init(&t);
    int diverged = 0;
    for (int step = 0; step < steps && !diverged; step++) {
        struct ns_op op;
        random_op(&g, &t, &m, &op);
        if (step == 0) {    /* an open root, so every user can build */
            op = t_op(&t, NS_OP_SETATTR, &T_ROOT);
            op.u.setattr = (struct ns_op_setattr){ .ino = NS_ROOT_INO,
                                                   .valid = NS_SET_MODE, .mode = 0777 };
        }
        int want = m_apply(&m, &op);
        int got = t_apply(&t, &op);
        if (got != want) {
            printf("step %d: %s answered %d, model %d\n", step, ns_op_name(op.type), got, want);
            diverged = step + 1;
        } else if (!same_state(&t, &m)) {
            printf("step %d: %s left different states\n", step, ns_op_name(op.type));
            diverged = step + 1;
        }
    }
    t_fini(&t);
    return diverged;
}

#define RUNS 8
#define STEPS 1500

static void test_against_model(void **state)
{
    (void)state;
    uint64_t seed = t_seed("ns model", 2024);
    for (int run = 0; run < RUNS; run++)
        assert_int_equal(run_diff(seed + (uint64_t)run, STEPS, false), 0);
}

/* The same runs with the planted bug must diverge: the checker bites. */
static void test_checker_bites(void **state)
{
    (void)state;
    uint64_t seed = t_seed("ns model, planted fault", 2024);
    int found = 0;
    for (int run = 0; run < RUNS && !found; run++)
        found = run_diff(seed + (uint64_t)run, STEPS, true);
    assert_int_not_equal(found, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_checker_bites),
    };
    return cmocka_run_group_tests_name("ns_model", tests, NULL, NULL);
}
