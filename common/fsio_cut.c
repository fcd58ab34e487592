/*
 * fsio_cut: the power-cut backend, for real server processes under test.
 *
 * The real file system holds, at every moment, exactly the durable state
 * of docs/DURABILITY.md; everything not yet durable lives only in this
 * process.  A SIGKILL (or fsio_free) therefore loses every write, truncate
 * and change of name that was not made durable, as the harshest power cut
 * would, while the page cache that survives a kill holds nothing extra.
 *
 *  - File data: pwrite and ftruncate are queued per file (struct
 *    cut_data_op) and served to reads on top of the durable bytes; fsync
 *    or fdatasync applies the queue to the real file and fdatasyncs it.
 *  - Names: create, mkdir, unlink, rmdir and rename change the visible tree
 *    kept here and are queued (struct cut_name_op); fsio_fsync_dir replays
 *    on the real file system, in their original order, the queued
 *    operations that changed a name in that directory and those they
 *    depend on, then fsyncs the real directory.
 *  - A file whose create is still queued keeps its durable bytes (what its
 *    syncs made durable) in memory; the replay of the create writes them.
 *
 * Dependencies, as in the simulator: an operation depends on every earlier
 * queued one that changed one of the same names (same directory, same
 * name).  In addition a directory operation (mkdir, rmdir, rename of a
 * directory) is a barrier: it depends on every earlier queued operation
 * and every later one depends on it.  The simulator does without barriers
 * because it can hold states no real tree can (a file committed inside a
 * directory whose mkdir is not, a rename cycle); here the committed set
 * must replay on a real file system, and with barriers it always does:
 * it is a prefix of the queue up to a directory operation plus a
 * name-closed subset of the file operations after it, which the directory
 * structure of that prefix can hold.  Committing more than needed is a
 * legal crash outcome (an ordered journal); for file operations, by far
 * the most common, the outcome is exactly the simulator's DROP_ALL one.
 *
 * The visible tree is loaded lazily from the real one: a directory not yet
 * changed by this process ("unloaded") is looked up and listed on the real
 * file system, which is then also its visible state; before the first
 * change of a name in it, its full listing is loaded ("loaded") and from
 * then on the in-memory entries are the truth for every name a queued
 * operation changes.  A name on disk that is not known here and that no
 * queued operation changes is still picked up (made by code outside fsio,
 * such as a plain mkdir): it is already durable.  Paths are made absolute
 * (the working directory) and "." and ".." are resolved by name.
 *
 * Invariants (all under c->mu):
 *  1. A node is in the durable tree at dparent/dname (root: dparent NULL),
 *     or not at all (dparent NULL).  Real path = the chain of dnames.
 *     Every directory that a queued operation changes a name in is, when
 *     that operation is replayed, in the durable tree.
 *  2. A file node is on_disk once a real file holds its durable bytes
 *     (dsize of them); before, mem holds them.  on_disk and nfds > 0
 *     imply rfd >= 0, a real fd that keeps the bytes readable even after
 *     the real name is gone.  nfds == 0 implies rfd < 0.
 *  3. Visible bytes = durable bytes with ops applied in order; vsize is
 *     their size (valid with dsize once sized).
 *  4. A file node is freed when it has no visible name (linked), no open
 *     fd (nfds) and no queued name operation refers to it (nrefs): then
 *     nothing can reach it and the durable tree no longer holds it.
 *     Directory nodes live until fsio_free (children point to them).
 *  5. Entry arrays are sorted by strcmp with unique names.
 *
 * Memory is proportional to the unsynced data plus one small node per
 * name looked up.  All real I/O happens under the one lock.  Like the
 * simulator it aborts on out of memory: it is a test mode.
 */
#include "fsio_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"

struct cut_data_op {
    struct cut_data_op *next;
    bool is_truncate;
    uint64_t off;       /* write offset, or the new size for a truncate */
    size_t len;
    uint8_t data[];
};

struct cut_node {
    struct cut_node *prev, *next;   /* c->nodes */
    bool is_dir;
    bool on_disk;
    bool linked;                    /* has a visible name */
    struct cut_node *dparent;       /* durable place, see invariant 1 */
    char *dname;
    unsigned nfds;
    unsigned nrefs;                 /* queued name ops naming it */
    /* directories */
    bool loaded;
    struct fsio_entries ents;       /* of cut_node */
    /* files */
    int rfd;
    bool sized;
    uint64_t dsize, vsize;
    uint8_t *mem;                   /* durable bytes while !on_disk */
    uint64_t memcap;
    struct cut_data_op *ops, **ops_tail;
};

enum cut_kind { CUT_CREATE, CUT_MKDIR, CUT_UNLINK, CUT_RMDIR, CUT_RENAME };

/* dir/name was created or removed; a rename moved dir/name to
 * tdir/tname, replacing what was there. */
struct cut_name_op {
    struct cut_name_op *next;
    enum cut_kind kind;
    bool barrier;
    bool picked;        /* scratch flag of cut_sync_dir */
    mode_t mode;
    struct cut_node *node;
    struct cut_node *dir;
    char *name;
    struct cut_node *tdir, *replaced;
    char *tname;
};

struct cut_fd {
    struct cut_node *node;  /* NULL: slot free */
    int accmode;
};

struct cut {
    struct fsio fs;         /* first: cut_of casts back */
    pthread_mutex_t mu;
    struct cut_node *root;
    struct cut_node *nodes;
    struct cut_name_op *name_ops;   /* queued, oldest first */
    struct cut_name_op **name_ops_tail;
    size_t nname_ops;
    struct cut_fd *fds;
    size_t nfds;
};

static struct cut *cut_of(struct fsio *fs)
{
    return (struct cut *)fs;
}

/* ======================================================================== */
/* real file system helpers                                                 */
/* ======================================================================== */

static int real_write_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Reads len bytes at off; what lies past the end of the file reads as 0. */
static int real_read_full(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    memset(p + done, 0, len - done);
    return 0;
}

static int real_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* ======================================================================== */
/* entries and nodes                                                        */
/* ======================================================================== */

static struct cut_node *node_new(struct cut *c, bool is_dir)
{
    struct cut_node *n = fsio_test_alloc(sizeof(*n));
    n->is_dir = is_dir;
    n->rfd = -1;
    n->ops_tail = &n->ops;
    n->next = c->nodes;
    if (c->nodes)
        c->nodes->prev = n;
    c->nodes = n;
    return n;
}

/* A node found on the real file system at dir/name. */
static struct cut_node *node_from_disk(struct cut *c, struct cut_node *dir,
                                       const char *name, bool is_dir)
{
    struct cut_node *n = node_new(c, is_dir);
    n->on_disk = true;
    n->linked = true;
    n->dparent = dir;
    n->dname = fsio_test_strdup(name);
    fsio_ents_put(&dir->ents, name, n);
    return n;
}

static void data_ops_free(struct cut_node *n)
{
    struct cut_data_op *op, *next;
    for (op = n->ops; op; op = next) {
        next = op->next;
        free(op);
    }
    n->ops = NULL;
    n->ops_tail = &n->ops;
}

static void node_free_raw(struct cut *c, struct cut_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        c->nodes = n->next;
    if (n->next)
        n->next->prev = n->prev;
    if (n->rfd >= 0)
        close(n->rfd);
    data_ops_free(n);
    fsio_ents_release(&n->ents);
    free(n->mem);
    free(n->dname);
    free(n);
}

/* Invariant 4. */
static void node_release_maybe(struct cut *c, struct cut_node *n)
{
    if (n && !n->is_dir && !n->linked && n->nfds == 0 && n->nrefs == 0)
        node_free_raw(c, n);
}

/* ---- real paths ---------------------------------------------------------- */

/* The real path of n in the durable tree; "" for the root. */
static int node_rpath(const struct cut *c, const struct cut_node *n,
                      char *buf, size_t cap)
{
    if (n == c->root) {
        buf[0] = '\0';
        return 0;
    }
    if (!n->dparent)
        return -EIO;    /* not in the durable tree: invariant 1 broken */
    int rc = node_rpath(c, n->dparent, buf, cap);
    if (rc < 0)
        return rc;
    size_t len = strlen(buf);
    int m = snprintf(buf + len, cap - len, "/%s", n->dname);
    return m < 0 || (size_t)m >= cap - len ? -ENAMETOOLONG : 0;
}

/* As node_rpath, but "/" for the root: a path to hand to the kernel. */
static int node_rpath_abs(const struct cut *c, const struct cut_node *n,
                          char buf[PATH_MAX])
{
    int rc = node_rpath(c, n, buf, PATH_MAX);
    if (rc == 0 && !buf[0])
        strcpy(buf, "/");
    return rc;
}

static int child_rpath(const struct cut *c, const struct cut_node *dir,
                       const char *name, char buf[PATH_MAX])
{
    int rc = node_rpath(c, dir, buf, PATH_MAX);
    if (rc < 0)
        return rc;
    size_t len = strlen(buf);
    int m = snprintf(buf + len, PATH_MAX - len, "/%s", name);
    return m < 0 || (size_t)m >= PATH_MAX - len ? -ENAMETOOLONG : 0;
}

/* ---- lazy loading -------------------------------------------------------- */

/* Whether the real dir/name is a directory (following symlinks). */
static int probe(const struct cut *c, const struct cut_node *dir,
                 const char *name, bool *exists, bool *is_dir)
{
    char path[PATH_MAX];
    int rc = child_rpath(c, dir, name, path);
    if (rc < 0)
        return rc;
    struct stat st;
    *exists = stat(path, &st) == 0;
    if (!*exists)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    *is_dir = S_ISDIR(st.st_mode);
    return 0;
}

static bool same_name(const struct cut_node *d1, const char *n1,
                      const struct cut_node *d2, const char *n2)
{
    return d1 == d2 && strcmp(n1, n2) == 0;
}

/* Whether a queued name operation changes dir/name. */
static bool name_pending(const struct cut *c, const struct cut_node *dir,
                         const char *name)
{
    for (const struct cut_name_op *op = c->name_ops; op; op = op->next)
        if (same_name(op->dir, op->name, dir, name) ||
            (op->kind == CUT_RENAME && same_name(op->tdir, op->tname, dir,
                                                 name)))
            return true;
    return false;
}

/* Whether a name unknown here but found on disk in dir is visible: what
 * code outside fsio made (a plain mkdir), unless a queued operation of
 * ours changes that name.  A directory not yet durable has no disk. */
static bool disk_name_visible(const struct cut *c, const struct cut_node *dir,
                              const char *name)
{
    if (dir != c->root && !dir->dparent)
        return false;
    return !dir->loaded || !name_pending(c, dir, name);
}

/* The visible node at dir/name, or NULL.  Names not seen yet are asked
 * of the real file system. */
static int lookup(struct cut *c, struct cut_node *dir, const char *name,
                  struct cut_node **out)
{
    *out = fsio_ents_get(&dir->ents, name);
    if (*out || !disk_name_visible(c, dir, name))
        return 0;
    bool exists, is_dir;
    int rc = probe(c, dir, name, &exists, &is_dir);
    if (rc == 0 && exists)
        *out = node_from_disk(c, dir, name, is_dir);
    return rc;
}

/* Adds to dir's entries the visible names on disk it has not seen. */
static int merge_disk(struct cut *c, struct cut_node *dir)
{
    if (dir != c->root && !dir->dparent)
        return 0;
    char path[PATH_MAX];
    int rc = node_rpath_abs(c, dir, path);
    if (rc < 0)
        return rc;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *e;
    errno = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            fsio_ents_get(&dir->ents, e->d_name) ||
            !disk_name_visible(c, dir, e->d_name))
            continue;
        bool exists = true, is_dir = e->d_type == DT_DIR;
        if (e->d_type != DT_DIR && e->d_type != DT_REG)
            rc = probe(c, dir, e->d_name, &exists, &is_dir);
        if (rc == 0 && exists)
            node_from_disk(c, dir, e->d_name, is_dir);
        errno = 0;
    }
    if (rc == 0 && errno)
        rc = -errno;
    closedir(d);
    return rc;
}

/* Makes dir's entries its full visible listing, before its first change. */
static int ensure_loaded(struct cut *c, struct cut_node *dir)
{
    if (dir->loaded)
        return 0;
    int rc = merge_disk(c, dir);
    if (rc == 0)
        dir->loaded = true;
    return rc;
}

/* Sets dsize and vsize of a file found on disk, at first need. */
static int ensure_sized(struct cut *c, struct cut_node *n)
{
    if (n->sized)
        return 0;
    struct stat st;
    if (n->rfd >= 0) {
        if (fstat(n->rfd, &st) < 0)
            return -errno;
    } else {
        char path[PATH_MAX];
        int rc = node_rpath_abs(c, n, path);
        if (rc < 0)
            return rc;
        if (stat(path, &st) < 0)
            return -errno;
    }
    n->dsize = n->vsize = (uint64_t)st.st_size;
    n->sized = true;
    return 0;
}

/* ---- paths --------------------------------------------------------------- */

/*
 * path made absolute (from the working directory), with ".", ".." and
 * repeated slashes resolved by name: "/a/b" or "/" for the root.
 */
static int normalize(const char *path, char out[PATH_MAX])
{
    char full[2 * PATH_MAX];
    if (strlen(path) >= PATH_MAX)
        return -ENAMETOOLONG;
    if (path[0] == '/') {
        strcpy(full, path);
    } else {
        if (!getcwd(full, PATH_MAX))
            return -errno;
        strcat(full, "/");
        strcat(full, path);
    }
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = full;;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (n > NAME_MAX)
            return -ENAMETOOLONG;
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            len = len > 0 ? len - 1 : 0;
        } else if (!(n == 1 && p[0] == '.')) {
            if (len + 1 + n >= PATH_MAX)
                return -ENAMETOOLONG;
            out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        out[len] = '\0';
        p += n;
    }
    if (len == 0)
        strcpy(out, "/");
    return 0;
}

/*
 * Walks path to its last component: *dir is the visible directory that
 * holds it and name receives it; an empty name means the root.  Passing
 * through avoid gives -EINVAL (a directory moved into itself).
 */
static int walk(struct cut *c, const char *path, const struct cut_node *avoid,
                struct cut_node **dir, char name[NAME_MAX + 1])
{
    char norm[PATH_MAX];
    int rc = normalize(path, norm);
    if (rc < 0)
        return rc;
    struct cut_node *cur = c->root;
    const char *p = norm;
    name[0] = '\0';
    for (;;) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (len == 0)
            break;
        if (name[0]) {  /* the previous component must be a directory */
            struct cut_node *next;
            rc = lookup(c, cur, name, &next);
            if (rc < 0)
                return rc;
            if (!next)
                return -ENOENT;
            if (!next->is_dir)
                return -ENOTDIR;
            cur = next;
        }
        if (cur == avoid)
            return -EINVAL;
        memcpy(name, p, len);
        name[len] = '\0';
        p += len;
    }
    *dir = cur;
    return 0;
}

/* The visible node at path (the root for "/"), or -ENOENT. */
static int lookup_path(struct cut *c, const char *path, struct cut_node **out)
{
    struct cut_node *dir;
    char name[NAME_MAX + 1];
    int rc = walk(c, path, NULL, &dir, name);
    if (rc < 0)
        return rc;
    if (!name[0]) {
        *out = dir;
        return 0;
    }
    rc = lookup(c, dir, name, out);
    return rc < 0 ? rc : *out ? 0 : -ENOENT;
}

/* ======================================================================== */
/* name operations                                                          */
/* ======================================================================== */

static struct cut_name_op *name_op_new(struct cut *c, enum cut_kind kind,
                                       struct cut_node *dir, const char *name,
                                       struct cut_node *node)
{
    struct cut_name_op *op = fsio_test_alloc(sizeof(*op));
    op->kind = kind;
    op->dir = dir;
    op->name = fsio_test_strdup(name);
    op->node = node;
    node->nrefs++;
    op->barrier = kind == CUT_MKDIR || kind == CUT_RMDIR;
    *c->name_ops_tail = op;
    c->name_ops_tail = &op->next;
    c->nname_ops++;
    return op;
}

static void name_op_free(struct cut *c, struct cut_name_op *op)
{
    c->nname_ops--;
    free(op->name);
    free(op->tname);
    free(op);
}

static bool op_touches(const struct cut_name_op *op,
                       const struct cut_node *dir)
{
    return op->dir == dir || (op->kind == CUT_RENAME && op->tdir == dir);
}

static bool ops_share_name(const struct cut_name_op *a,
                           const struct cut_name_op *b)
{
    bool a2 = a->kind == CUT_RENAME, b2 = b->kind == CUT_RENAME;
    return same_name(a->dir, a->name, b->dir, b->name) ||
           (b2 && same_name(a->dir, a->name, b->tdir, b->tname)) ||
           (a2 && same_name(a->tdir, a->tname, b->dir, b->name)) ||
           (a2 && b2 && same_name(a->tdir, a->tname, b->tdir, b->tname));
}

/* Sets dparent/dname: n is now at dir/name in the durable tree (dir NULL:
 * no longer in it). */
static void set_durable_place(struct cut_node *n, struct cut_node *dir,
                              const char *name)
{
    free(n->dname);
    n->dname = dir ? fsio_test_strdup(name) : NULL;
    n->dparent = dir;
}

/* The replay of a create: a real file holding the durable bytes. */
static int replay_create(struct cut_name_op *op, const char *path)
{
    struct cut_node *n = op->node;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, op->mode);
    if (fd < 0)
        return -errno;
    int rc = real_write_all(fd, n->mem, (size_t)n->dsize, 0);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        unlink(path);
        return rc;
    }
    n->on_disk = true;
    free(n->mem);
    n->mem = NULL;
    n->memcap = 0;
    set_durable_place(n, op->dir, op->name);
    if (n->nfds > 0)
        n->rfd = fd;
    else
        close(fd);
    return 0;
}

/* Makes one queued operation durable on the real file system. */
static int replay(struct cut *c, struct cut_name_op *op)
{
    char path[PATH_MAX], to[PATH_MAX];
    int rc = child_rpath(c, op->dir, op->name, path);
    if (rc == 0 && op->kind == CUT_RENAME)
        rc = child_rpath(c, op->tdir, op->tname, to);
    if (rc < 0)
        return rc;
    switch (op->kind) {
    case CUT_CREATE:
        return replay_create(op, path);
    case CUT_MKDIR:
        if (mkdir(path, op->mode) < 0)
            return -errno;
        op->node->on_disk = true;
        set_durable_place(op->node, op->dir, op->name);
        return 0;
    case CUT_UNLINK:
    case CUT_RMDIR:
        if ((op->kind == CUT_UNLINK ? unlink(path) : rmdir(path)) < 0)
            return -errno;
        set_durable_place(op->node, NULL, NULL);
        return 0;
    case CUT_RENAME:
        if (rename(path, to) < 0)
            return -errno;
        if (op->replaced)
            set_durable_place(op->replaced, NULL, NULL);
        set_durable_place(op->node, op->tdir, op->tname);
        return 0;
    }
    return -EINVAL;
}

/* Replays the picked operations in order and takes them off the queue;
 * stops at the first that fails (it and the rest stay queued). */
static int commit_picked(struct cut *c)
{
    struct cut_name_op **pp = &c->name_ops, *op;
    int rc = 0;
    while ((op = *pp) != NULL) {
        if (!op->picked || rc < 0) {
            op->picked = false;
            pp = &op->next;
            continue;
        }
        rc = replay(c, op);
        if (rc < 0) {
            log_error("fsio power-cut mode: cannot replay a change of %s: "
                      "%s", op->name, strerror(-rc));
            op->picked = false;
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        op->node->nrefs--;
        node_release_maybe(c, op->node);
        if (op->replaced) {
            op->replaced->nrefs--;
            node_release_maybe(c, op->replaced);
        }
        name_op_free(c, op);
    }
    c->name_ops_tail = pp;     /* the loop ran to the end */
    return rc;
}

/*
 * Picks, newest first, the queued operations that changed a name in dir,
 * those sharing a name with a picked later one, a barrier when anything
 * later is picked, and everything before a picked barrier.
 */
static void pick_for_dir(struct cut *c, const struct cut_node *dir)
{
    size_t n = c->nname_ops, npicked = 0, i = 0;
    struct cut_name_op **v = fsio_test_alloc((n + 1) * sizeof(*v));
    struct cut_name_op **picked = fsio_test_alloc((n + 1) * sizeof(*picked));
    for (struct cut_name_op *op = c->name_ops; op; op = op->next)
        v[i++] = op;
    bool all = false;
    for (i = n; i-- > 0;) {
        struct cut_name_op *op = v[i];
        bool p = all || op_touches(op, dir) || (op->barrier && npicked > 0);
        for (size_t j = 0; !p && j < npicked; j++)
            p = ops_share_name(op, picked[j]);
        op->picked = p;
        if (!p)
            continue;
        picked[npicked++] = op;
        all = all || op->barrier;
    }
    free(picked);
    free(v);
}

/* ======================================================================== */
/* file data                                                                */
/* ======================================================================== */

static struct cut_fd *fd_get(struct cut *c, int fd)
{
    if (fd < 0 || (size_t)fd >= c->nfds || !c->fds[fd].node)
        return NULL;
    return &c->fds[fd];
}

static void data_op_add(struct cut_node *n, bool is_truncate, uint64_t off,
                        const void *data, size_t len)
{
    struct cut_data_op *op = fsio_test_alloc(sizeof(*op) + len);
    op->is_truncate = is_truncate;
    op->off = off;
    op->len = len;
    if (len)
        memcpy(op->data, data, len);
    *n->ops_tail = op;
    n->ops_tail = &op->next;
    if (is_truncate)
        n->vsize = off;
    else if (off + len > n->vsize)
        n->vsize = off + len;
}

/* Grows the in-memory durable bytes to size, the new ones zero. */
static void mem_grow(struct cut_node *n, uint64_t size)
{
    if (size > n->memcap) {
        uint64_t cap = n->memcap ? n->memcap : 64;
        while (cap < size)
            cap *= 2;
        n->mem = fsio_test_realloc(n->mem, (size_t)cap);
        n->memcap = cap;
    }
    if (size > n->dsize)
        memset(n->mem + n->dsize, 0, (size_t)(size - n->dsize));
}

/* Applies op to the durable bytes, on disk or in memory. */
static int apply_durable(struct cut_node *n, const struct cut_data_op *op)
{
    uint64_t end = op->is_truncate ? op->off : op->off + op->len;
    if (n->on_disk) {
        int rc;
        if (op->is_truncate) {
            do
                rc = ftruncate(n->rfd, (off_t)op->off) < 0 ? -errno : 0;
            while (rc == -EINTR);
        } else {
            rc = real_write_all(n->rfd, op->data, op->len, op->off);
        }
        if (rc < 0)
            return rc;
    } else {
        if (end > SIZE_MAX / 2)
            return -EFBIG;
        mem_grow(n, end);
        if (!op->is_truncate)
            memcpy(n->mem + op->off, op->data, op->len);
    }
    if (op->is_truncate || end > n->dsize)
        n->dsize = end;
    return 0;
}

/* ======================================================================== */
/* backend operations                                                       */
/* ======================================================================== */

static int fd_alloc(struct cut *c, struct cut_node *n, int accmode)
{
    size_t i;
    for (i = 0; i < c->nfds && c->fds[i].node; i++)
        ;
    if (i == c->nfds) {
        if (i >= INT_MAX / 2)
            return -EMFILE;
        c->nfds = c->nfds ? c->nfds * 2 : 16;
        c->fds = fsio_test_realloc(c->fds, c->nfds * sizeof(*c->fds));
        memset(&c->fds[i], 0, (c->nfds - i) * sizeof(*c->fds));
    }
    if (n->on_disk && n->rfd < 0) {
        char path[PATH_MAX];
        int rc = node_rpath_abs(c, n, path);
        if (rc < 0)
            return rc;
        n->rfd = open(path, O_RDWR | O_CLOEXEC);
        if (n->rfd < 0 && (errno == EACCES || errno == EROFS) &&
            accmode == O_RDONLY)
            n->rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (n->rfd < 0)
            return -errno;
    }
    n->nfds++;
    c->fds[i].node = n;
    c->fds[i].accmode = accmode;
    return (int)i;
}

static int cut_close(struct fsio *fs, int fd)
{
    struct cut *c = cut_of(fs);
    struct cut_fd *f = fd_get(c, fd);
    if (!f)
        return -EBADF;
    struct cut_node *n = f->node;
    f->node = NULL;
    if (--n->nfds == 0 && n->rfd >= 0) {
        close(n->rfd);
        n->rfd = -1;
    }
    node_release_maybe(c, n);
    return 0;
}

static int cut_open(struct fsio *fs, const char *path, int flags, mode_t mode)
{
    struct cut *c = cut_of(fs);
    struct cut_node *dir, *n;
    char name[NAME_MAX + 1];
    int rc = walk(c, path, NULL, &dir, name);
    if (rc < 0)
        return rc;
    if (!name[0])
        return -EISDIR;
    rc = lookup(c, dir, name, &n);
    if (rc < 0)
        return rc;
    if (n && (flags & O_CREAT) && (flags & O_EXCL))
        return -EEXIST;
    if (n && n->is_dir)
        return -EISDIR;
    if (!n && !(flags & O_CREAT))
        return -ENOENT;
    if (!n) {
        rc = ensure_loaded(c, dir);
        if (rc < 0)
            return rc;
        n = node_new(c, false);
        n->sized = true;
        n->linked = true;
        fsio_ents_put(&dir->ents, name, n);
        name_op_new(c, CUT_CREATE, dir, name, n)->mode = mode;
        return fd_alloc(c, n, flags & O_ACCMODE);
    }
    int fd = fd_alloc(c, n, flags & O_ACCMODE);
    if (fd < 0 || !(flags & O_TRUNC))
        return fd;
    rc = ensure_sized(c, n);
    if (rc < 0) {
        cut_close(fs, fd);
        return rc;
    }
    data_op_add(n, true, 0, NULL, 0);
    return fd;
}

static ssize_t cut_pwrite(struct fsio *fs, int fd, const void *buf,
                          size_t len, uint64_t off)
{
    struct cut *c = cut_of(fs);
    struct cut_fd *f = fd_get(c, fd);
    if (!f || f->accmode == O_RDONLY)
        return -EBADF;
    int rc = ensure_sized(c, f->node);
    if (rc < 0)
        return rc;
    data_op_add(f->node, false, off, buf, len);
    return (ssize_t)len;
}

static ssize_t cut_pread(struct fsio *fs, int fd, void *buf, size_t len,
                         uint64_t off)
{
    struct cut *c = cut_of(fs);
    struct cut_fd *f = fd_get(c, fd);
    if (!f || f->accmode == O_WRONLY)
        return -EBADF;
    struct cut_node *n = f->node;
    int rc = ensure_sized(c, n);
    if (rc < 0)
        return rc;
    if (off >= n->vsize)
        return 0;
    size_t cnt = n->vsize - off < len ? (size_t)(n->vsize - off) : len;
    uint64_t end = off + cnt;
    uint8_t *p = buf;

    /* The durable bytes, then every queued op over them in order; a
     * truncate zeroes what lies past it, so a later extension reads 0. */
    if (n->on_disk) {
        rc = real_read_full(n->rfd, p, cnt, off);
        if (rc < 0)
            return rc;
    } else {
        size_t have = off < n->dsize ? (size_t)(n->dsize - off) : 0;
        have = have < cnt ? have : cnt;
        if (have)
            memcpy(p, n->mem + off, have);
        memset(p + have, 0, cnt - have);
    }
    for (const struct cut_data_op *op = n->ops; op; op = op->next) {
        if (op->is_truncate) {
            if (op->off < end) {
                uint64_t from = op->off > off ? op->off : off;
                memset(p + (from - off), 0, (size_t)(end - from));
            }
            continue;
        }
        uint64_t lo = op->off > off ? op->off : off;
        uint64_t hi = op->off + op->len < end ? op->off + op->len : end;
        if (lo < hi)
            memcpy(p + (lo - off), op->data + (lo - op->off),
                   (size_t)(hi - lo));
    }
    return (ssize_t)cnt;
}

/* Both syncs apply every queued op of the file, then fdatasync the real
 * file: the model makes data and size durable either way.  An op applied
 * before a failure is durable and leaves the queue. */
static int cut_sync(struct fsio *fs, int fd, bool data_only)
{
    (void)data_only;
    struct cut *c = cut_of(fs);
    struct cut_fd *f = fd_get(c, fd);
    if (!f)
        return -EBADF;
    struct cut_node *n = f->node;
    struct cut_data_op *op;
    while ((op = n->ops) != NULL) {
        int rc = apply_durable(n, op);
        if (rc < 0)
            return rc;
        n->ops = op->next;
        free(op);
    }
    n->ops_tail = &n->ops;
    if (n->on_disk && fdatasync(n->rfd) < 0)
        return -errno;
    return 0;
}

static int cut_truncate(struct fsio *fs, int fd, uint64_t size)
{
    struct cut *c = cut_of(fs);
    struct cut_fd *f = fd_get(c, fd);
    if (!f)
        return -EBADF;
    if (f->accmode == O_RDONLY)
        return -EINVAL;     /* what Linux answers */
    int rc = ensure_sized(c, f->node);
    if (rc < 0)
        return rc;
    data_op_add(f->node, true, size, NULL, 0);
    return 0;
}

static int cut_size(struct fsio *fs, int fd, uint64_t *size)
{
    struct cut *c = cut_of(fs);
    struct cut_fd *f = fd_get(c, fd);
    if (!f)
        return -EBADF;
    int rc = ensure_sized(c, f->node);
    if (rc == 0)
        *size = f->node->vsize;
    return rc;
}

/* rename's checks once src and dst (NULL: absent) are found, in the order
 * Linux makes them (as sim_rename_check). */
static int rename_check(struct cut *c, const char *from, const char *to,
                        struct cut_node *src, struct cut_node *dst)
{
    struct cut_node *dir;
    char name[NAME_MAX + 1];
    if (src->is_dir && walk(c, to, src, &dir, name) == -EINVAL)
        return -EINVAL;
    if (dst && dst->is_dir && dst != src &&
        walk(c, from, dst, &dir, name) == -EINVAL)
        return -ENOTEMPTY;
    if (!dst || dst == src)
        return 0;
    if (!src->is_dir && dst->is_dir)
        return -EISDIR;
    if (src->is_dir && !dst->is_dir)
        return -ENOTDIR;
    if (dst->is_dir) {
        int rc = ensure_loaded(c, dst);
        if (rc < 0)
            return rc;
        if (dst->ents.n > 0)
            return -ENOTEMPTY;
    }
    return 0;
}

static int cut_rename(struct fsio *fs, const char *from, const char *to)
{
    struct cut *c = cut_of(fs);
    struct cut_node *fdir, *tdir, *src, *dst;
    char fname[NAME_MAX + 1], tname[NAME_MAX + 1];
    int rc = walk(c, from, NULL, &fdir, fname);
    if (rc == 0)
        rc = walk(c, to, NULL, &tdir, tname);
    if (rc < 0)
        return rc;
    if (!fname[0] || !tname[0])
        return -EBUSY;
    rc = lookup(c, fdir, fname, &src);
    if (rc < 0)
        return rc;
    if (!src)
        return -ENOENT;
    rc = lookup(c, tdir, tname, &dst);
    if (rc == 0)
        rc = rename_check(c, from, to, src, dst);
    if (rc < 0 || dst == src)
        return rc;
    rc = ensure_loaded(c, fdir);
    if (rc == 0)
        rc = ensure_loaded(c, tdir);
    if (rc < 0)
        return rc;

    struct cut_name_op *op = name_op_new(c, CUT_RENAME, fdir, fname, src);
    op->tdir = tdir;
    op->tname = fsio_test_strdup(tname);
    op->barrier = src->is_dir;
    op->replaced = dst;
    if (dst) {
        dst->nrefs++;
        dst->linked = false;
    }
    fsio_ents_put(&fdir->ents, fname, NULL);
    fsio_ents_put(&tdir->ents, tname, src);
    return 0;
}

/* Takes dir/name (a file for unlink, an empty directory for rmdir) out of
 * the visible tree and queues the removal. */
static int remove_name(struct cut *c, const char *path, bool want_dir)
{
    struct cut_node *dir, *n;
    char name[NAME_MAX + 1];
    int rc = walk(c, path, NULL, &dir, name);
    if (rc < 0)
        return rc;
    if (!name[0])
        return -EBUSY;
    rc = lookup(c, dir, name, &n);
    if (rc < 0)
        return rc;
    if (!n)
        return -ENOENT;
    if (n->is_dir != want_dir)
        return want_dir ? -ENOTDIR : -EISDIR;
    if (want_dir) {
        rc = ensure_loaded(c, n);
        if (rc < 0)
            return rc;
        if (n->ents.n > 0)
            return -ENOTEMPTY;
    }
    rc = ensure_loaded(c, dir);
    if (rc < 0)
        return rc;
    fsio_ents_put(&dir->ents, name, NULL);
    n->linked = false;
    name_op_new(c, want_dir ? CUT_RMDIR : CUT_UNLINK, dir, name, n);
    return 0;
}

static int cut_unlink(struct fsio *fs, const char *path)
{
    return remove_name(cut_of(fs), path, false);
}

static int cut_rmdir(struct fsio *fs, const char *path)
{
    return remove_name(cut_of(fs), path, true);
}

static int cut_mkdir(struct fsio *fs, const char *path, mode_t mode)
{
    struct cut *c = cut_of(fs);
    struct cut_node *dir, *n;
    char name[NAME_MAX + 1];
    int rc = walk(c, path, NULL, &dir, name);
    if (rc < 0)
        return rc;
    if (!name[0])
        return -EEXIST;
    rc = lookup(c, dir, name, &n);
    if (rc < 0)
        return rc;
    if (n)
        return -EEXIST;
    rc = ensure_loaded(c, dir);
    if (rc < 0)
        return rc;
    n = node_new(c, true);
    n->loaded = true;   /* new and empty: nothing on disk to load */
    n->linked = true;
    fsio_ents_put(&dir->ents, name, n);
    name_op_new(c, CUT_MKDIR, dir, name, n)->mode = mode;
    return 0;
}

static int cut_sync_dir(struct fsio *fs, const char *path)
{
    struct cut *c = cut_of(fs);
    struct cut_node *dir;
    int rc = lookup_path(c, path, &dir);
    if (rc < 0)
        return rc;
    if (!dir->is_dir)
        return -ENOTDIR;
    pick_for_dir(c, dir);
    rc = commit_picked(c);
    if (rc < 0 || (dir != c->root && !dir->dparent))
        return rc;      /* a directory whose own creation is not durable */
    char real[PATH_MAX];
    rc = node_rpath_abs(c, dir, real);
    return rc < 0 ? rc : real_fsync_path(real);
}

static int cut_stat(struct fsio *fs, const char *path, struct fsio_stat *st)
{
    struct cut *c = cut_of(fs);
    struct cut_node *n;
    int rc = lookup_path(c, path, &n);
    if (rc == 0 && !n->is_dir)
        rc = ensure_sized(c, n);
    if (rc < 0)
        return rc;
    st->is_dir = n->is_dir;
    st->size = n->is_dir ? 0 : n->vsize;
    return 0;
}

/* An unloaded directory is listed from the disk: nothing changed it. */
static int cut_list(struct fsio *fs, const char *path, struct fsio_names *out)
{
    struct cut *c = cut_of(fs);
    struct cut_node *dir;
    int rc = lookup_path(c, path, &dir);
    if (rc < 0)
        return rc;
    if (!dir->is_dir)
        return -ENOTDIR;
    if (dir->loaded) {
        rc = merge_disk(c, dir);
        for (size_t i = 0; i < dir->ents.n && rc == 0; i++)
            rc = fsio_names_add(out, dir->ents.v[i].name);
        return rc;
    }
    char real[PATH_MAX];
    rc = node_rpath_abs(c, dir, real);
    if (rc < 0)
        return rc;
    DIR *d = opendir(real);
    if (!d)
        return -errno;
    struct dirent *e;
    errno = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            rc = fsio_names_add(out, e->d_name);
    }
    if (rc == 0 && errno)
        rc = -errno;
    closedir(d);
    if (rc == 0)
        fsio_names_sort(out);
    return rc;
}

/* The real file system's figures, from the longest prefix of path that
 * exists on it (a directory not yet durable has none of its own). */
static int cut_space(struct fsio *fs, const char *path, uint64_t *total,
                     uint64_t *avail)
{
    struct cut *c = cut_of(fs);
    struct cut_node *n;
    char real[PATH_MAX];
    int rc = lookup_path(c, path, &n);
    if (rc == 0)
        rc = normalize(path, real);
    if (rc < 0)
        return rc;
    struct statvfs sv;
    while (statvfs(real, &sv) < 0) {
        char *slash = strrchr(real, '/');
        if ((errno != ENOENT && errno != ENOTDIR) || !slash)
            return -errno;
        slash[slash == real ? 1 : 0] = '\0';
    }
    *total = (uint64_t)sv.f_blocks * sv.f_frsize;
    *avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

/* The power cut: everything still queued is dropped, nothing is written. */
static void cut_free(struct fsio *fs)
{
    struct cut *c = cut_of(fs);
    struct cut_name_op *op, *next;
    for (op = c->name_ops; op; op = next) {
        next = op->next;
        name_op_free(c, op);
    }
    while (c->nodes)
        node_free_raw(c, c->nodes);
    free(c->fds);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static const struct fsio_backend cut_backend = {
    .open = cut_open,
    .close = cut_close,
    .pwrite = cut_pwrite,
    .pread = cut_pread,
    .sync = cut_sync,
    .truncate = cut_truncate,
    .size = cut_size,
    .rename = cut_rename,
    .unlink = cut_unlink,
    .mkdir = cut_mkdir,
    .rmdir = cut_rmdir,
    .sync_dir = cut_sync_dir,
    .stat = cut_stat,
    .list = cut_list,
    .space = cut_space,
    .free = cut_free,
};

struct fsio *fsio_cut_new(void)
{
    struct cut *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->fs.be = &cut_backend;
    c->fs.lock = &c->mu;
    c->name_ops_tail = &c->name_ops;
    c->root = node_new(c, true);
    c->root->on_disk = true;
    c->root->linked = true;
    return &c->fs;
}

struct fsio *fsio_from_env(void)
{
    const char *v = getenv(FSIO_POWERCUT_ENV);
    if (!v || !v[0] || strcmp(v, "0") == 0)
        return fsio_real_new();
    log_warn("***** %s is set: POWER-CUT TEST MODE.  Writes and changes of "
             "names not yet made durable (fsync, directory fsync) are held "
             "in this process only and are lost when it dies or stops.  "
             "Never use this mode for data you want to keep. *****",
             FSIO_POWERCUT_ENV);
    return fsio_cut_new();
}
