/*
 * fsio: durable file I/O behind one handle, with a real and a simulated
 * backend.  docs/DURABILITY.md explains the durability model.  The third
 * backend, the power-cut mode of real servers, is in fsio_cut.c; what the
 * backends share is in fsio_priv.h.
 *
 * The public functions validate arguments identically for both backends,
 * take the backend's lock (the simulator's; the real backend has none) and
 * dispatch through struct fsio_backend.  fsio_write_file_atomic and
 * fsio_read_file are built on the public calls, so they behave the same on
 * both backends and see the simulator's faults.
 *
 * The simulator is an in-memory file system.  Every inode keeps two states:
 * "vis", what a running process sees (the page cache), and "dur", what is on
 * the platter.  Each file keeps the list of data ops (writes, truncates)
 * that lead from its dur to its vis; one global list keeps the namespace
 * ops (create, mkdir, unlink, rmdir, rename) that lead from the directories'
 * dur_ents to their vis_ents.  A file sync applies the file's data ops to
 * dur; a directory sync applies the namespace ops that touched it (and
 * those they depend on).  A crash resolves each pending op by policy, then
 * sets vis = dur everywhere and frees what is no longer reachable.
 *
 * Invariants of the simulator (all under sim->mu):
 *  1. For a file, vis = dur with its pending data ops applied in order,
 *     except ops marked lost (a sync failed after them), which reached vis
 *     only.  Applying the pending namespace ops in order to every dur_ents
 *     gives every vis_ents.
 *  2. inode->refs counts every pointer to it: entries in vis_ents and in
 *     dur_ents, pending namespace ops (as the directory changed and as the
 *     target), open fds, and one for the root held by the simulator.  At 0
 *     the inode is freed (sim_put).  A crash recomputes refs from the
 *     durable tree, which also frees what only a lost op referred to.
 *  3. inode->vis_refs counts what a running process reaches it by (entries
 *     in vis_ents and open fds); sim->used = sum of vis.size over inodes
 *     with vis_refs > 0, as a real file system frees an unlinked file's
 *     blocks at once even though the unlink itself is not yet durable.
 *  4. sim->npending = number of pending data ops plus namespace ops
 *     (sim->nname_ops).
 *  5. Entry arrays are sorted by strcmp with unique names.
 */
#include "fsio_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ======================================================================== */
/* names                                                                    */
/* ======================================================================== */

int fsio_names_add(struct fsio_names *l, const char *name)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(name);
    if (!l->v[l->n])
        return -ENOMEM;
    l->n++;
    return 0;
}

static void names_free(struct fsio_names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void fsio_names_sort(struct fsio_names *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), names_cmp);
}

/* ======================================================================== */
/* real backend                                                             */
/* ======================================================================== */

/* A directory opened for reading is -EISDIR, as in the simulator, where
 * directories are reached only by name. */
static int real_open(struct fsio *fs, const char *path, int flags, mode_t mode)
{
    (void)fs;
    int fd;
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    if ((flags & O_ACCMODE) != O_RDONLY)
        return fd;      /* the kernel already refused a directory */
    struct stat st;
    int err = fstat(fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (err) {
        close(fd);
        return -err;
    }
    return fd;
}

/* close(2) is not retried on EINTR: on Linux the fd is gone either way. */
static int real_close(struct fsio *fs, int fd)
{
    (void)fs;
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t real_pwrite(struct fsio *fs, int fd, const void *buf,
                           size_t len, uint64_t off)
{
    (void)fs;
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;    /* pwrite makes no progress only on a bad disk */
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static ssize_t real_pread(struct fsio *fs, int fd, void *buf, size_t len,
                          uint64_t off)
{
    (void)fs;
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
    return (ssize_t)done;
}

static int real_sync(struct fsio *fs, int fd, bool data_only)
{
    (void)fs;
    int rc = data_only ? fdatasync(fd) : fsync(fd);
    return rc < 0 ? -errno : 0;
}

static int real_truncate(struct fsio *fs, int fd, uint64_t size)
{
    (void)fs;
    int rc;
    do
        rc = ftruncate(fd, (off_t)size);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int real_size(struct fsio *fs, int fd, uint64_t *size)
{
    (void)fs;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int real_rename(struct fsio *fs, const char *from, const char *to)
{
    (void)fs;
    return rename(from, to) < 0 ? -errno : 0;
}

static int real_unlink(struct fsio *fs, const char *path)
{
    (void)fs;
    return unlink(path) < 0 ? -errno : 0;
}

static int real_mkdir(struct fsio *fs, const char *path, mode_t mode)
{
    (void)fs;
    return mkdir(path, mode) < 0 ? -errno : 0;
}

static int real_rmdir(struct fsio *fs, const char *path)
{
    (void)fs;
    return rmdir(path) < 0 ? -errno : 0;
}

static int real_sync_dir(struct fsio *fs, const char *path)
{
    (void)fs;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int real_stat(struct fsio *fs, const char *path, struct fsio_stat *out)
{
    (void)fs;
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    out->is_dir = S_ISDIR(st.st_mode);
    out->size = out->is_dir ? 0 : (uint64_t)st.st_size;
    return 0;
}

static int real_list(struct fsio *fs, const char *path, struct fsio_names *out)
{
    (void)fs;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int rc = 0;
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

static int real_space(struct fsio *fs, const char *path, uint64_t *total,
                      uint64_t *avail)
{
    (void)fs;
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
        return -errno;
    *total = (uint64_t)sv.f_blocks * sv.f_frsize;
    *avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

static void real_free(struct fsio *fs)
{
    free(fs);
}

static const struct fsio_backend real_backend = {
    .open = real_open,
    .close = real_close,
    .pwrite = real_pwrite,
    .pread = real_pread,
    .sync = real_sync,
    .truncate = real_truncate,
    .size = real_size,
    .rename = real_rename,
    .unlink = real_unlink,
    .mkdir = real_mkdir,
    .rmdir = real_rmdir,
    .sync_dir = real_sync_dir,
    .stat = real_stat,
    .list = real_list,
    .space = real_space,
    .free = real_free,
};

struct fsio *fsio_real_new(void)
{
    struct fsio *fs = calloc(1, sizeof(*fs));
    if (fs)
        fs->be = &real_backend;
    return fs;
}

bool fsio_is_real(const struct fsio *fs)
{
    return fs->be == &real_backend;
}

/* ======================================================================== */
/* simulated backend: data structures                                       */
/* ======================================================================== */

/* Files above this are -EFBIG: the simulator holds them in memory. */
#define SIM_MAX_FILE (UINT64_C(1) << 32)

struct sim_bytes {
    uint8_t *p;
    uint64_t size, cap;
};

struct sim_data_op {
    struct sim_data_op *next;
    bool is_truncate;
    bool lost;          /* a sync failed after it: it never becomes durable */
    uint64_t off;       /* write offset, or the new size for a truncate */
    size_t len;
    uint8_t data[];
};

/* One change of a name: dir/name now points to ino (NULL: removed). */
struct sim_change {
    struct sim_inode *dir;
    struct sim_inode *ino;
    char *name;
};

/*
 * A namespace operation not yet durable.  Its changes reach the disk
 * together or not at all, as a journaled rename does; an op that changes a
 * name depends on every earlier pending op that changed the same name.
 */
struct sim_name_op {
    struct sim_name_op *next;
    struct sim_change ch[2];
    int nch;
    bool picked;        /* scratch flag of sim_sync_dir and sim_crash_names */
};

struct sim_inode {
    struct sim_inode *prev, *next;  /* sim->inodes, in creation order */
    unsigned long refs;
    unsigned long vis_refs;
    bool is_dir;
    bool marked;                    /* scratch flag of the crash sweep */
    /* files */
    struct sim_bytes vis, dur;
    struct sim_data_op *data_ops, **data_ops_tail;
    size_t ndata_ops;
    /* directories */
    struct fsio_entries vis_ents, dur_ents;   /* of sim_inode */
};

struct sim_fd {
    struct sim_inode *ino;  /* NULL: slot free */
    int accmode;            /* O_RDONLY, O_WRONLY or O_RDWR */
};

struct sim_fault {
    unsigned countdown;     /* calls until it fires; 0: not armed */
    bool always;
    int err;
};

struct sim {
    struct fsio fs;         /* first: fsio_sim_* cast fs back to sim */
    pthread_mutex_t mu;
    struct sim_inode *root;
    struct sim_inode *inodes;       /* head of the doubly linked list */
    struct sim_inode *inodes_tail;
    struct sim_name_op *name_ops;   /* pending, oldest first */
    struct sim_name_op **name_ops_tail;
    size_t nname_ops;
    struct sim_fd *fds;
    size_t nfds;
    uint64_t capacity;      /* 0: unlimited */
    uint64_t used;
    size_t npending;
    uint64_t rng;
    uint64_t calls[FSIO_OP_COUNT];
    struct sim_fault faults[FSIO_OP_COUNT];
};

static struct sim *sim_of(struct fsio *fs)
{
    return (struct sim *)fs;
}

void *fsio_test_alloc(size_t size)
{
    void *p = calloc(1, size);
    if (!p)
        abort();    /* test backends: see fsio_priv.h */
    return p;
}

void *fsio_test_realloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (!p)
        abort();
    return p;
}

char *fsio_test_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(fsio_test_alloc(n), s, n);
}

/* splitmix64: tiny, seedable, and good enough to pick crash outcomes. */
static uint64_t sim_rand(struct sim *s)
{
    uint64_t z = (s->rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Counts the call and returns the armed fault's -err when it fires. */
static int sim_fault(struct sim *s, enum fsio_op op)
{
    struct sim_fault *f = &s->faults[op];
    s->calls[op]++;
    if (f->always)
        return -f->err;
    if (f->countdown == 0 || --f->countdown > 0)
        return 0;
    return -f->err;
}

/* ---- byte arrays -------------------------------------------------------- */

/* Bytes between the old and the new size read as zeros. */
static void bytes_resize(struct sim_bytes *b, uint64_t size)
{
    if (size > b->cap) {
        uint64_t cap = b->cap ? b->cap : 64;
        while (cap < size)
            cap *= 2;
        b->p = fsio_test_realloc(b->p, cap);
        b->cap = cap;
    }
    if (size > b->size)
        memset(b->p + b->size, 0, size - b->size);
    b->size = size;
}

static void bytes_write(struct sim_bytes *b, uint64_t off, const void *data,
                        size_t len)
{
    if (off + len > b->size)
        bytes_resize(b, off + len);
    memcpy(b->p + off, data, len);
}

static void bytes_copy(struct sim_bytes *dst, const struct sim_bytes *src)
{
    bytes_resize(dst, src->size);
    if (src->size)
        memcpy(dst->p, src->p, src->size);
}

/* ---- entry arrays (shared with fsio_cut.c) ------------------------------- */

/* Index of name, or of where it would be inserted (*found says which). */
static size_t ents_search(const struct fsio_entries *e, const char *name,
                          bool *found)
{
    size_t lo = 0, hi = e->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->v[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

void *fsio_ents_get(const struct fsio_entries *e, const char *name)
{
    bool found;
    size_t i = ents_search(e, name, &found);
    return found ? e->v[i].node : NULL;
}

/* Reference counts are the caller's business. */
void *fsio_ents_put(struct fsio_entries *e, const char *name, void *node)
{
    bool found;
    size_t i = ents_search(e, name, &found);
    void *old = found ? e->v[i].node : NULL;
    if (found && node) {
        e->v[i].node = node;
    } else if (found) {
        free(e->v[i].name);
        memmove(&e->v[i], &e->v[i + 1], (e->n - i - 1) * sizeof(*e->v));
        e->n--;
    } else if (node) {
        if (e->n == e->cap) {
            e->cap = e->cap ? e->cap * 2 : 8;
            e->v = fsio_test_realloc(e->v, e->cap * sizeof(*e->v));
        }
        memmove(&e->v[i + 1], &e->v[i], (e->n - i) * sizeof(*e->v));
        e->v[i].name = fsio_test_strdup(name);
        e->v[i].node = node;
        e->n++;
    }
    return old;
}

void fsio_ents_clear(struct fsio_entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].name);
    e->n = 0;
}

void fsio_ents_release(struct fsio_entries *e)
{
    fsio_ents_clear(e);
    free(e->v);
    e->v = NULL;
    e->cap = 0;
}

static void ents_copy(struct fsio_entries *dst, const struct fsio_entries *src)
{
    fsio_ents_clear(dst);
    if (src->n > dst->cap) {
        dst->cap = src->n;
        dst->v = fsio_test_realloc(dst->v, dst->cap * sizeof(*dst->v));
    }
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i].name = fsio_test_strdup(src->v[i].name);
        dst->v[i].node = src->v[i].node;
    }
    dst->n = src->n;
}

/* ---- inodes ------------------------------------------------------------- */

static struct sim_inode *sim_inode_new(struct sim *s, bool is_dir)
{
    struct sim_inode *ino = fsio_test_alloc(sizeof(*ino));
    ino->is_dir = is_dir;
    ino->data_ops_tail = &ino->data_ops;
    ino->prev = s->inodes_tail;
    if (s->inodes_tail)
        s->inodes_tail->next = ino;
    else
        s->inodes = ino;
    s->inodes_tail = ino;
    return ino;
}

static void sim_data_ops_free(struct sim *s, struct sim_inode *ino)
{
    struct sim_data_op *op, *next;
    for (op = ino->data_ops; op; op = next) {
        next = op->next;
        free(op);
    }
    s->npending -= ino->ndata_ops;
    ino->data_ops = NULL;
    ino->data_ops_tail = &ino->data_ops;
    ino->ndata_ops = 0;
}

/* Frees ino's memory without touching the inodes it points to; the caller
 * has already dropped or recomputed those references. */
static void sim_inode_free_raw(struct sim *s, struct sim_inode *ino)
{
    if (ino->prev)
        ino->prev->next = ino->next;
    else
        s->inodes = ino->next;
    if (ino->next)
        ino->next->prev = ino->prev;
    else
        s->inodes_tail = ino->prev;

    if (ino->vis_refs > 0)
        s->used -= ino->vis.size;
    sim_data_ops_free(s, ino);
    free(ino->vis.p);
    free(ino->dur.p);
    fsio_ents_release(&ino->vis_ents);
    fsio_ents_release(&ino->dur_ents);
    free(ino);
}

static void sim_get(struct sim_inode *ino)
{
    if (ino)
        ino->refs++;
}

static void sim_vis_get(struct sim *s, struct sim_inode *ino)
{
    if (ino && ino->vis_refs++ == 0)
        s->used += ino->vis.size;
}

static void sim_vis_put(struct sim *s, struct sim_inode *ino)
{
    if (ino && --ino->vis_refs == 0)
        s->used -= ino->vis.size;
}

static void sim_put(struct sim *s, struct sim_inode *ino)
{
    if (!ino || --ino->refs > 0)
        return;
    if (ino->is_dir) {
        for (size_t i = 0; i < ino->vis_ents.n; i++) {
            sim_vis_put(s, ino->vis_ents.v[i].node);
            sim_put(s, ino->vis_ents.v[i].node);
        }
        for (size_t i = 0; i < ino->dur_ents.n; i++)
            sim_put(s, ino->dur_ents.v[i].node);
    }
    sim_inode_free_raw(s, ino);
}

/* ---- files -------------------------------------------------------------- */

static void sim_set_vis_size(struct sim *s, struct sim_inode *ino,
                             uint64_t size)
{
    if (ino->vis_refs > 0)
        s->used = s->used - ino->vis.size + size;
    bytes_resize(&ino->vis, size);
}

static struct sim_data_op *sim_data_op_add(struct sim *s,
                                           struct sim_inode *ino,
                                           size_t len)
{
    struct sim_data_op *op = fsio_test_alloc(sizeof(*op) + len);
    *ino->data_ops_tail = op;
    ino->data_ops_tail = &op->next;
    ino->ndata_ops++;
    s->npending++;
    return op;
}

static void sim_truncate_ino(struct sim *s, struct sim_inode *ino,
                             uint64_t size)
{
    struct sim_data_op *op = sim_data_op_add(s, ino, 0);
    op->is_truncate = true;
    op->off = size;
    sim_set_vis_size(s, ino, size);
}

/* Bytes a file may grow by before the capacity is reached. */
static uint64_t sim_room(const struct sim *s)
{
    if (!s->capacity)
        return SIM_MAX_FILE;
    return s->used < s->capacity ? s->capacity - s->used : 0;
}

/* ---- directories and paths ---------------------------------------------- */

/* Queues a new namespace op; sim_change_name() fills it. */
static struct sim_name_op *sim_name_op_new(struct sim *s)
{
    struct sim_name_op *op = fsio_test_alloc(sizeof(*op));
    *s->name_ops_tail = op;
    s->name_ops_tail = &op->next;
    s->nname_ops++;
    s->npending++;
    return op;
}

/* Points dir/name at ino (NULL removes it), visibly now, durably when op
 * becomes durable. */
static void sim_change_name(struct sim *s, struct sim_name_op *op,
                            struct sim_inode *dir, const char *name,
                            struct sim_inode *ino)
{
    struct sim_change *c = &op->ch[op->nch++];
    c->dir = dir;
    c->ino = ino;
    c->name = fsio_test_strdup(name);
    sim_get(dir);
    sim_get(ino);

    sim_get(ino);
    sim_vis_get(s, ino);
    struct sim_inode *old = fsio_ents_put(&dir->vis_ents, name, ino);
    sim_vis_put(s, old);
    sim_put(s, old);
}

/* A namespace op of one change: create, mkdir, unlink, rmdir. */
static void sim_dir_change(struct sim *s, struct sim_inode *dir,
                           const char *name, struct sim_inode *ino)
{
    sim_change_name(s, sim_name_op_new(s), dir, name, ino);
}

/*
 * Walks path to its last component: *dir is the directory that holds it
 * and name receives it; an empty name means path is the root itself.  A
 * directory passed on the way that is avoid gives -EINVAL (a directory
 * moved into itself).
 */
static int sim_walk(struct sim *s, const char *path,
                    const struct sim_inode *avoid, struct sim_inode **dir,
                    char name[NAME_MAX + 1])
{
    struct sim_inode *cur = s->root;
    const char *p = path;
    name[0] = '\0';
    if (strlen(path) >= PATH_MAX)
        return -ENAMETOOLONG;
    for (;;) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (len == 0)
            break;
        if (len > NAME_MAX)
            return -ENAMETOOLONG;
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return -EINVAL;
        bool is_dot = len == 1 && p[0] == '.';
        if (name[0]) {  /* the previous component must be a directory */
            struct sim_inode *next = fsio_ents_get(&cur->vis_ents, name);
            if (!next)
                return -ENOENT;
            if (!next->is_dir)
                return -ENOTDIR;
            cur = next;
            name[0] = '\0';
        }
        if (cur == avoid)
            return -EINVAL;
        if (!is_dot) {
            memcpy(name, p, len);
            name[len] = '\0';
        }
        p += len;
    }
    *dir = cur;
    return 0;
}

/* The inode at path (the root for ""), or a negative errno. */
static int sim_lookup(struct sim *s, const char *path, struct sim_inode **out)
{
    struct sim_inode *dir;
    char name[NAME_MAX + 1];
    int rc = sim_walk(s, path, NULL, &dir, name);
    if (rc < 0)
        return rc;
    *out = name[0] ? fsio_ents_get(&dir->vis_ents, name) : dir;
    return *out ? 0 : -ENOENT;
}

/* The open file behind fd, or NULL for a bad fd. */
static struct sim_fd *sim_fd_get(struct sim *s, int fd)
{
    if (fd < 0 || (size_t)fd >= s->nfds || !s->fds[fd].ino)
        return NULL;
    return &s->fds[fd];
}

/* The lowest free fd, as POSIX does. */
static int sim_fd_alloc(struct sim *s, struct sim_inode *ino, int accmode)
{
    size_t i;
    for (i = 0; i < s->nfds && s->fds[i].ino; i++)
        ;
    if (i == s->nfds) {
        if (i >= INT_MAX)
            return -EMFILE;
        s->nfds = s->nfds ? s->nfds * 2 : 16;
        s->fds = fsio_test_realloc(s->fds, s->nfds * sizeof(*s->fds));
        memset(&s->fds[i], 0, (s->nfds - i) * sizeof(*s->fds));
    }
    sim_get(ino);
    sim_vis_get(s, ino);
    s->fds[i].ino = ino;
    s->fds[i].accmode = accmode;
    return (int)i;
}

/* ======================================================================== */
/* simulated backend: operations                                            */
/* ======================================================================== */

static int sim_open(struct fsio *fs, const char *path, int flags, mode_t mode)
{
    (void)mode;
    struct sim *s = sim_of(fs);
    struct sim_inode *dir;
    char name[NAME_MAX + 1];
    int rc = sim_fault(s, FSIO_OP_OPEN);
    if (rc == 0)
        rc = sim_walk(s, path, NULL, &dir, name);
    if (rc < 0)
        return rc;
    if (!name[0])
        return -EISDIR;

    struct sim_inode *ino = fsio_ents_get(&dir->vis_ents, name);
    if (ino && (flags & O_CREAT) && (flags & O_EXCL))
        return -EEXIST;
    if (ino && ino->is_dir)
        return -EISDIR;
    if (!ino && !(flags & O_CREAT))
        return -ENOENT;
    if (!ino) {
        ino = sim_inode_new(s, false);
        sim_dir_change(s, dir, name, ino);
    } else if (flags & O_TRUNC) {
        sim_truncate_ino(s, ino, 0);
    }
    return sim_fd_alloc(s, ino, flags & O_ACCMODE);
}

static int sim_close(struct fsio *fs, int fd)
{
    struct sim *s = sim_of(fs);
    struct sim_fd *f = sim_fd_get(s, fd);
    if (!f)
        return -EBADF;
    struct sim_inode *ino = f->ino;
    f->ino = NULL;
    sim_vis_put(s, ino);
    sim_put(s, ino);
    return 0;
}

static ssize_t sim_pwrite(struct fsio *fs, int fd, const void *buf,
                          size_t len, uint64_t off)
{
    struct sim *s = sim_of(fs);
    int rc = sim_fault(s, FSIO_OP_WRITE);
    if (rc < 0)
        return rc;
    struct sim_fd *f = sim_fd_get(s, fd);
    if (!f)
        return -EBADF;
    if (f->accmode == O_RDONLY)
        return -EBADF;
    struct sim_inode *ino = f->ino;
    if (off + len > SIM_MAX_FILE)
        return -EFBIG;

    /* Past the capacity, write the prefix that fits, as a full disk does. */
    size_t n = len;
    uint64_t limit = ino->vis.size + sim_room(s);
    if (off + len > ino->vis.size && off + len > limit)
        n = off < limit ? (size_t)(limit - off) : 0;
    if (n > 0) {
        struct sim_data_op *op = sim_data_op_add(s, ino, n);
        op->off = off;
        op->len = n;
        memcpy(op->data, buf, n);
        if (off + n > ino->vis.size)
            sim_set_vis_size(s, ino, off + n);
        memcpy(ino->vis.p + off, buf, n);
    }
    return n == len ? (ssize_t)len : -ENOSPC;
}

static ssize_t sim_pread(struct fsio *fs, int fd, void *buf, size_t len,
                         uint64_t off)
{
    struct sim *s = sim_of(fs);
    int rc = sim_fault(s, FSIO_OP_READ);
    if (rc < 0)
        return rc;
    struct sim_fd *f = sim_fd_get(s, fd);
    if (!f)
        return -EBADF;
    if (f->accmode == O_WRONLY)
        return -EBADF;
    struct sim_inode *ino = f->ino;
    if (off >= ino->vis.size)
        return 0;
    size_t n = ino->vis.size - off < len ? (size_t)(ino->vis.size - off) : len;
    memcpy(buf, ino->vis.p + off, n);
    return (ssize_t)n;
}

static void sim_apply_data_op(struct sim_bytes *b, const struct sim_data_op *op)
{
    if (op->is_truncate)
        bytes_resize(b, op->off);
    else
        bytes_write(b, op->off, op->data, op->len);
}

/*
 * Both syncs make data and size durable: fdatasync must persist the size
 * too when it changed, since the data cannot be read back without it.
 */
static int sim_sync(struct fsio *fs, int fd, bool data_only)
{
    (void)data_only;
    struct sim *s = sim_of(fs);
    int rc = sim_fault(s, FSIO_OP_SYNC);
    struct sim_fd *f = sim_fd_get(s, fd);
    if (!f)
        return rc < 0 ? rc : -EBADF;
    struct sim_inode *ino = f->ino;
    struct sim_data_op *op;
    for (op = ino->data_ops; op; op = op->next) {
        if (rc < 0)
            op->lost = true;
        else if (!op->lost)
            sim_apply_data_op(&ino->dur, op);
    }
    if (rc == 0)
        sim_data_ops_free(s, ino);
    return rc;
}

static int sim_truncate(struct fsio *fs, int fd, uint64_t size)
{
    struct sim *s = sim_of(fs);
    int rc = sim_fault(s, FSIO_OP_TRUNCATE);
    if (rc < 0)
        return rc;
    struct sim_fd *f = sim_fd_get(s, fd);
    if (!f)
        return -EBADF;
    if (f->accmode == O_RDONLY)
        return -EINVAL;
    struct sim_inode *ino = f->ino;     /* what Linux answers */
    if (size > SIM_MAX_FILE)
        return -EFBIG;
    if (size > ino->vis.size && size - ino->vis.size > sim_room(s))
        return -ENOSPC;
    sim_truncate_ino(s, ino, size);
    return 0;
}

static int sim_size(struct fsio *fs, int fd, uint64_t *size)
{
    struct sim_fd *f = sim_fd_get(sim_of(fs), fd);
    if (!f)
        return -EBADF;
    *size = f->ino->vis.size;
    return 0;
}

/* rename's checks once src and dst (NULL: absent) are found, in the order
 * Linux makes them. */
static int sim_rename_check(struct sim *s, const char *from, const char *to,
                            const struct sim_inode *src,
                            const struct sim_inode *dst)
{
    struct sim_inode *dir;
    char name[NAME_MAX + 1];
    if (src->is_dir && sim_walk(s, to, src, &dir, name) == -EINVAL)
        return -EINVAL;     /* a directory moved into itself */
    if (dst && dst->is_dir && dst != src &&
        sim_walk(s, from, dst, &dir, name) == -EINVAL)
        return -ENOTEMPTY;  /* over a directory that holds src */
    if (!dst || dst == src)
        return 0;
    if (!src->is_dir && dst->is_dir)
        return -EISDIR;
    if (src->is_dir && !dst->is_dir)
        return -ENOTDIR;
    if (dst->is_dir && dst->vis_ents.n > 0)
        return -ENOTEMPTY;
    return 0;
}

/* One namespace op of two changes, so a crash keeps both or neither. */
static int sim_rename(struct fsio *fs, const char *from, const char *to)
{
    struct sim *s = sim_of(fs);
    struct sim_inode *fdir, *tdir;
    char fname[NAME_MAX + 1], tname[NAME_MAX + 1];
    int rc = sim_fault(s, FSIO_OP_RENAME);
    if (rc == 0)
        rc = sim_walk(s, from, NULL, &fdir, fname);
    if (rc == 0)
        rc = sim_walk(s, to, NULL, &tdir, tname);
    if (rc < 0)
        return rc;
    if (!fname[0] || !tname[0])
        return -EBUSY;
    struct sim_inode *src = fsio_ents_get(&fdir->vis_ents, fname);
    if (!src)
        return -ENOENT;
    struct sim_inode *dst = fsio_ents_get(&tdir->vis_ents, tname);
    rc = sim_rename_check(s, from, to, src, dst);
    if (rc < 0 || dst == src)
        return rc;
    struct sim_name_op *op = sim_name_op_new(s);
    sim_get(src);   /* keeps src alive between the two changes */
    sim_change_name(s, op, tdir, tname, src);
    sim_change_name(s, op, fdir, fname, NULL);
    sim_put(s, src);
    return 0;
}

/* Looks up the last component of path for unlink and rmdir. */
static int sim_remove_target(struct sim *s, const char *path,
                             struct sim_inode **dir, char name[NAME_MAX + 1],
                             struct sim_inode **ino)
{
    int rc = sim_walk(s, path, NULL, dir, name);
    if (rc < 0)
        return rc;
    if (!name[0])
        return -EBUSY;
    *ino = fsio_ents_get(&(*dir)->vis_ents, name);
    return *ino ? 0 : -ENOENT;
}

static int sim_unlink(struct fsio *fs, const char *path)
{
    struct sim *s = sim_of(fs);
    struct sim_inode *dir, *ino;
    char name[NAME_MAX + 1];
    int rc = sim_fault(s, FSIO_OP_UNLINK);
    if (rc < 0)
        return rc;
    rc = sim_remove_target(s, path, &dir, name, &ino);
    if (rc < 0)
        return rc;
    if (ino->is_dir)
        return -EISDIR;
    sim_dir_change(s, dir, name, NULL);
    return 0;
}

static int sim_rmdir(struct fsio *fs, const char *path)
{
    struct sim *s = sim_of(fs);
    struct sim_inode *dir, *ino;
    char name[NAME_MAX + 1];
    int rc = sim_fault(s, FSIO_OP_RMDIR);
    if (rc < 0)
        return rc;
    rc = sim_remove_target(s, path, &dir, name, &ino);
    if (rc < 0)
        return rc;
    if (!ino->is_dir)
        return -ENOTDIR;
    if (ino->vis_ents.n > 0)
        return -ENOTEMPTY;
    sim_dir_change(s, dir, name, NULL);
    return 0;
}

static int sim_mkdir(struct fsio *fs, const char *path, mode_t mode)
{
    (void)mode;
    struct sim *s = sim_of(fs);
    struct sim_inode *dir;
    char name[NAME_MAX + 1];
    int rc = sim_fault(s, FSIO_OP_MKDIR);
    if (rc == 0)
        rc = sim_walk(s, path, NULL, &dir, name);
    if (rc < 0)
        return rc;
    if (!name[0] || fsio_ents_get(&dir->vis_ents, name))
        return -EEXIST;
    sim_dir_change(s, dir, name, sim_inode_new(s, true));
    return 0;
}

static bool sim_op_touches(const struct sim_name_op *op,
                           const struct sim_inode *dir)
{
    for (int i = 0; i < op->nch; i++)
        if (op->ch[i].dir == dir)
            return true;
    return false;
}

static bool sim_ops_share_name(const struct sim_name_op *a,
                               const struct sim_name_op *b)
{
    for (int i = 0; i < a->nch; i++)
        for (int j = 0; j < b->nch; j++)
            if (a->ch[i].dir == b->ch[j].dir &&
                strcmp(a->ch[i].name, b->ch[j].name) == 0)
                return true;
    return false;
}

/* The pending namespace ops, oldest first, in a new array (free it). */
static struct sim_name_op **sim_name_ops_array(struct sim *s)
{
    struct sim_name_op **v = fsio_test_alloc((s->nname_ops + 1) * sizeof(*v));
    size_t i = 0;
    for (struct sim_name_op *op = s->name_ops; op; op = op->next)
        v[i++] = op;
    return v;
}

/* Frees op without dropping the references it holds. */
static void sim_name_op_free_raw(struct sim *s, struct sim_name_op *op)
{
    for (int i = 0; i < op->nch; i++)
        free(op->ch[i].name);
    free(op);
    s->nname_ops--;
    s->npending--;
}

/* Applies the picked ops to the durable entries, in order, and takes them
 * off the pending list. */
static void sim_name_ops_commit(struct sim *s)
{
    struct sim_name_op **pp = &s->name_ops, *op;
    while ((op = *pp) != NULL) {
        if (!op->picked) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        for (int i = 0; i < op->nch; i++) {
            struct sim_change *c = &op->ch[i];
            sim_get(c->ino);    /* now held by the durable entry */
            sim_put(s, fsio_ents_put(&c->dir->dur_ents, c->name, c->ino));
            sim_put(s, c->ino);
            sim_put(s, c->dir);
        }
        sim_name_op_free_raw(s, op);
    }
    s->name_ops_tail = pp;
}

/*
 * Commits every pending op that changed a name in dir, and, newest first,
 * every earlier op those depend on (a journal commits in order).
 */
static int sim_sync_dir(struct fsio *fs, const char *path)
{
    struct sim *s = sim_of(fs);
    struct sim_inode *dir;
    int rc = sim_fault(s, FSIO_OP_SYNC_DIR);
    if (rc == 0)
        rc = sim_lookup(s, path, &dir);
    if (rc < 0)
        return rc;
    if (!dir->is_dir)
        return -ENOTDIR;
    struct sim_name_op **v = sim_name_ops_array(s);
    size_t n = s->nname_ops;
    for (size_t i = 0; i < n; i++)
        v[i]->picked = sim_op_touches(v[i], dir);
    for (size_t i = n; i-- > 0;) {
        for (size_t j = 0; v[i]->picked && j < i; j++)
            if (sim_ops_share_name(v[j], v[i]))
                v[j]->picked = true;
    }
    free(v);
    sim_name_ops_commit(s);
    return 0;
}

static int sim_stat(struct fsio *fs, const char *path, struct fsio_stat *st)
{
    struct sim_inode *ino;
    int rc = sim_lookup(sim_of(fs), path, &ino);
    if (rc < 0)
        return rc;
    st->is_dir = ino->is_dir;
    st->size = ino->vis.size;
    return 0;
}

static int sim_list(struct fsio *fs, const char *path, struct fsio_names *out)
{
    struct sim_inode *dir;
    int rc = sim_lookup(sim_of(fs), path, &dir);
    if (rc < 0)
        return rc;
    if (!dir->is_dir)
        return -ENOTDIR;
    for (size_t i = 0; i < dir->vis_ents.n && rc == 0; i++)
        rc = fsio_names_add(out, dir->vis_ents.v[i].name);
    return rc;
}

static int sim_space(struct fsio *fs, const char *path, uint64_t *total,
                     uint64_t *avail)
{
    struct sim *s = sim_of(fs);
    struct sim_inode *ino;
    int rc = sim_lookup(s, path, &ino);
    if (rc < 0)
        return rc;
    *total = s->capacity ? s->capacity : UINT64_MAX;
    *avail = *total > s->used ? *total - s->used : 0;
    return 0;
}

static void sim_free(struct fsio *fs)
{
    struct sim *s = sim_of(fs);
    struct sim_name_op *op, *next;
    for (op = s->name_ops; op; op = next) {
        next = op->next;
        sim_name_op_free_raw(s, op);
    }
    while (s->inodes)
        sim_inode_free_raw(s, s->inodes);
    free(s->fds);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct fsio_backend sim_backend = {
    .open = sim_open,
    .close = sim_close,
    .pwrite = sim_pwrite,
    .pread = sim_pread,
    .sync = sim_sync,
    .truncate = sim_truncate,
    .size = sim_size,
    .rename = sim_rename,
    .unlink = sim_unlink,
    .mkdir = sim_mkdir,
    .rmdir = sim_rmdir,
    .sync_dir = sim_sync_dir,
    .stat = sim_stat,
    .list = sim_list,
    .space = sim_space,
    .free = sim_free,
};

struct fsio *fsio_sim_new(void)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->fs.be = &sim_backend;
    s->fs.lock = &s->mu;
    s->fs.is_sim = true;
    s->name_ops_tail = &s->name_ops;
    s->root = sim_inode_new(s, true);
    s->root->refs = 1;
    return &s->fs;
}

/* ======================================================================== */
/* simulated backend: power cut                                             */
/* ======================================================================== */

/* Whether a pending op survives: KEEP_ALL yes, DROP_ALL no, else a coin. */
static bool sim_keeps(struct sim *s, enum fsio_crash policy)
{
    if (policy == FSIO_CRASH_KEEP_ALL)
        return true;
    if (policy == FSIO_CRASH_DROP_ALL)
        return false;
    return sim_rand(s) & 1;
}

/*
 * A torn write: a random prefix of it reaches the disk.  Then, at random,
 * nothing more; or the new size does but not the blocks (the file is
 * extended with zeros, as after a delayed allocation); or the rest of the
 * range is written with junk (sectors garbled mid-write).
 */
static void sim_tear(struct sim *s, struct sim_bytes *b,
                     const struct sim_data_op *op)
{
    size_t cut = (size_t)(sim_rand(s) % op->len);
    uint64_t end = op->off + op->len;
    if (cut > 0)
        bytes_write(b, op->off, op->data, cut);
    switch (sim_rand(s) % 3) {
    case 0:
        break;
    case 1:
        if (end > b->size)
            bytes_resize(b, end);
        break;
    default:
        if (end > b->size)
            bytes_resize(b, end);
        for (uint64_t i = op->off + cut; i < end; i++)
            b->p[i] = (uint8_t)sim_rand(s);
        break;
    }
}

static void sim_crash_file(struct sim *s, struct sim_inode *ino,
                           enum fsio_crash policy)
{
    for (struct sim_data_op *op = ino->data_ops; op; op = op->next) {
        if (op->lost)
            continue;
        bool tear = policy == FSIO_CRASH_TEAR && !op->is_truncate &&
                    sim_rand(s) % 3 == 0;
        if (tear)
            sim_tear(s, &ino->dur, op);
        else if (sim_keeps(s, policy))
            sim_apply_data_op(&ino->dur, op);
    }
    sim_data_ops_free(s, ino);
    bytes_copy(&ino->vis, &ino->dur);
}

/*
 * Each pending namespace op independently reaches the disk or not, except
 * that an op is lost when an earlier op on one of its names was lost (the
 * journal is ordered).  References are not maintained: sim_sweep recounts.
 */
static void sim_crash_names(struct sim *s, enum fsio_crash policy)
{
    struct sim_name_op **v = sim_name_ops_array(s);
    size_t n = s->nname_ops;
    for (size_t i = 0; i < n; i++) {
        v[i]->picked = sim_keeps(s, policy);
        for (size_t j = 0; v[i]->picked && j < i; j++)
            if (!v[j]->picked && sim_ops_share_name(v[j], v[i]))
                v[i]->picked = false;
        for (int k = 0; v[i]->picked && k < v[i]->nch; k++) {
            struct sim_change *c = &v[i]->ch[k];
            fsio_ents_put(&c->dir->dur_ents, c->name, c->ino);
        }
    }
    for (size_t i = 0; i < n; i++)
        sim_name_op_free_raw(s, v[i]);
    free(v);
    s->name_ops = NULL;
    s->name_ops_tail = &s->name_ops;
}

/* Marks what the durable tree reaches from dir, counting its references. */
static void sim_mark(struct sim_inode *dir)
{
    for (size_t i = 0; i < dir->dur_ents.n; i++) {
        struct sim_inode *ino = dir->dur_ents.v[i].node;
        ino->refs += 2;     /* the durable entry and its visible copy */
        ino->vis_refs++;
        if (ino->marked)
            continue;
        ino->marked = true;
        if (ino->is_dir)
            sim_mark(ino);
    }
}

/* After a crash only the durable tree holds references: recount them and
 * free the rest (unlinked files, lost creates, rename cycles). */
static void sim_sweep(struct sim *s)
{
    struct sim_inode *ino, *next;
    for (ino = s->inodes; ino; ino = ino->next) {
        ino->refs = 0;
        ino->vis_refs = 0;
        ino->marked = false;
    }
    s->root->refs = 1;
    s->root->marked = true;
    sim_mark(s->root);
    for (ino = s->inodes; ino; ino = next) {
        next = ino->next;
        if (!ino->marked)
            sim_inode_free_raw(s, ino);
    }
}

int fsio_sim_crash(struct fsio *fs, enum fsio_crash policy, uint64_t seed)
{
    if (!fs || !fs->is_sim)
        return -EINVAL;
    struct sim *s = sim_of(fs);
    pthread_mutex_lock(&s->mu);
    s->rng = seed;
    for (size_t i = 0; i < s->nfds; i++)
        s->fds[i].ino = NULL;   /* the process died: no references left */
    sim_crash_names(s, policy);
    for (struct sim_inode *ino = s->inodes; ino; ino = ino->next) {
        if (ino->is_dir)
            ents_copy(&ino->vis_ents, &ino->dur_ents);
        else
            sim_crash_file(s, ino, policy);
    }
    sim_sweep(s);
    s->used = 0;    /* every inode left is reachable, so it holds space */
    for (struct sim_inode *ino = s->inodes; ino; ino = ino->next)
        s->used += ino->vis.size;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- simulator controls ------------------------------------------------- */

static int sim_arm(struct fsio *fs, enum fsio_op op, unsigned nth, int err,
                   bool always)
{
    if (!fs || !fs->is_sim || (unsigned)op >= FSIO_OP_COUNT || err < 0 ||
        (err > 0 && !always && nth == 0))
        return -EINVAL;
    struct sim *s = sim_of(fs);
    pthread_mutex_lock(&s->mu);
    struct sim_fault *f = &s->faults[op];
    f->err = err;
    f->always = always && err > 0;
    f->countdown = err > 0 && !always ? nth : 0;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int fsio_sim_fail(struct fsio *fs, enum fsio_op op, unsigned nth, int err)
{
    return sim_arm(fs, op, nth, err, false);
}

int fsio_sim_fail_always(struct fsio *fs, enum fsio_op op, int err)
{
    return sim_arm(fs, op, 0, err, true);
}

int fsio_sim_set_capacity(struct fsio *fs, uint64_t bytes)
{
    if (!fs || !fs->is_sim)
        return -EINVAL;
    struct sim *s = sim_of(fs);
    pthread_mutex_lock(&s->mu);
    s->capacity = bytes;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

enum sim_counter { SIM_PENDING, SIM_OPEN_FILES, SIM_USED, SIM_CALLS };

/* One simulator figure read under its lock; SIM_CALLS + op for a call
 * count.  0 on a real backend. */
static uint64_t sim_counter(struct fsio *fs, unsigned which)
{
    if (!fs || !fs->is_sim)
        return 0;
    struct sim *s = sim_of(fs);
    uint64_t v = 0;
    pthread_mutex_lock(&s->mu);
    if (which == SIM_PENDING)
        v = s->npending;
    else if (which == SIM_USED)
        v = s->used;
    else if (which == SIM_OPEN_FILES)
        for (size_t i = 0; i < s->nfds; i++)
            v += s->fds[i].ino != NULL;
    else if (which - SIM_CALLS < FSIO_OP_COUNT)
        v = s->calls[which - SIM_CALLS];
    pthread_mutex_unlock(&s->mu);
    return v;
}

size_t fsio_sim_pending(struct fsio *fs)
{
    return (size_t)sim_counter(fs, SIM_PENDING);
}

size_t fsio_sim_open_files(struct fsio *fs)
{
    return (size_t)sim_counter(fs, SIM_OPEN_FILES);
}

uint64_t fsio_sim_used(struct fsio *fs)
{
    return sim_counter(fs, SIM_USED);
}

uint64_t fsio_sim_calls(struct fsio *fs, enum fsio_op op)
{
    return sim_counter(fs, SIM_CALLS + (unsigned)op);
}

/* ======================================================================== */
/* public calls: validation shared by both backends, then dispatch          */
/* ======================================================================== */

static void fsio_lock(struct fsio *fs)
{
    if (fs->lock)
        pthread_mutex_lock(fs->lock);
}

static void fsio_unlock(struct fsio *fs)
{
    if (fs->lock)
        pthread_mutex_unlock(fs->lock);
}

void fsio_free(struct fsio *fs)
{
    if (fs)
        fs->be->free(fs);
}

static int fsio_check_flags(int flags)
{
    int acc = flags & O_ACCMODE;
    if (flags & ~(O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC))
        return -EINVAL;
    if (acc != O_RDONLY && acc != O_WRONLY && acc != O_RDWR)
        return -EINVAL;
    if ((flags & O_TRUNC) && acc == O_RDONLY)
        return -EINVAL;     /* Linux would truncate: never what was meant */
    if ((flags & O_EXCL) && !(flags & O_CREAT))
        return -EINVAL;
    return 0;
}

int fsio_open(struct fsio *fs, const char *path, int flags, mode_t mode)
{
    int rc = fsio_check_flags(flags);
    if (rc < 0)
        return rc;
    fsio_lock(fs);
    rc = fs->be->open(fs, path, flags, mode);
    fsio_unlock(fs);
    return rc;
}

int fsio_close(struct fsio *fs, int fd)
{
    fsio_lock(fs);
    int rc = fs->be->close(fs, fd);
    fsio_unlock(fs);
    return rc;
}

/* A zero length is answered here, on both backends alike: 0, without
 * looking at fd (as the real loops would never call the kernel). */
static int fsio_check_range(size_t len, off_t off)
{
    if (off < 0 || len > SSIZE_MAX)
        return -EINVAL;
    if ((uint64_t)off + len > (uint64_t)INT64_MAX)
        return -EFBIG;
    return len == 0 ? 1 : 0;
}

ssize_t fsio_pwrite(struct fsio *fs, int fd, const void *buf, size_t len,
                    off_t off)
{
    int rc = fsio_check_range(len, off);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    fsio_lock(fs);
    ssize_t n = fs->be->pwrite(fs, fd, buf, len, (uint64_t)off);
    fsio_unlock(fs);
    return n;
}

ssize_t fsio_pread(struct fsio *fs, int fd, void *buf, size_t len, off_t off)
{
    int rc = fsio_check_range(len, off);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    fsio_lock(fs);
    ssize_t n = fs->be->pread(fs, fd, buf, len, (uint64_t)off);
    fsio_unlock(fs);
    return n;
}

static int fsio_sync(struct fsio *fs, int fd, bool data_only)
{
    fsio_lock(fs);
    int rc = fs->be->sync(fs, fd, data_only);
    fsio_unlock(fs);
    return rc;
}

int fsio_fdatasync(struct fsio *fs, int fd)
{
    return fsio_sync(fs, fd, true);
}

int fsio_fsync(struct fsio *fs, int fd)
{
    return fsio_sync(fs, fd, false);
}

int fsio_ftruncate(struct fsio *fs, int fd, uint64_t size)
{
    if (size > (uint64_t)INT64_MAX)
        return -EINVAL;
    fsio_lock(fs);
    int rc = fs->be->truncate(fs, fd, size);
    fsio_unlock(fs);
    return rc;
}

int fsio_size(struct fsio *fs, int fd, uint64_t *size)
{
    fsio_lock(fs);
    int rc = fs->be->size(fs, fd, size);
    fsio_unlock(fs);
    return rc;
}

int fsio_rename(struct fsio *fs, const char *from, const char *to)
{
    fsio_lock(fs);
    int rc = fs->be->rename(fs, from, to);
    fsio_unlock(fs);
    return rc;
}

int fsio_unlink(struct fsio *fs, const char *path)
{
    fsio_lock(fs);
    int rc = fs->be->unlink(fs, path);
    fsio_unlock(fs);
    return rc;
}

int fsio_mkdir(struct fsio *fs, const char *path, mode_t mode)
{
    fsio_lock(fs);
    int rc = fs->be->mkdir(fs, path, mode);
    fsio_unlock(fs);
    return rc;
}

int fsio_rmdir(struct fsio *fs, const char *path)
{
    fsio_lock(fs);
    int rc = fs->be->rmdir(fs, path);
    fsio_unlock(fs);
    return rc;
}

int fsio_fsync_dir(struct fsio *fs, const char *path)
{
    fsio_lock(fs);
    int rc = fs->be->sync_dir(fs, path);
    fsio_unlock(fs);
    return rc;
}

int fsio_stat(struct fsio *fs, const char *path, struct fsio_stat *st)
{
    fsio_lock(fs);
    int rc = fs->be->stat(fs, path, st);
    fsio_unlock(fs);
    return rc;
}

int fsio_list_dir(struct fsio *fs, const char *path, fsio_list_fn fn,
                  void *arg)
{
    struct fsio_names names = { 0 };
    fsio_lock(fs);
    int rc = fs->be->list(fs, path, &names);
    fsio_unlock(fs);
    for (size_t i = 0; rc == 0 && i < names.n; i++)
        rc = fn(names.v[i], arg);
    names_free(&names);
    return rc;
}

int fsio_space(struct fsio *fs, const char *path, uint64_t *total,
               uint64_t *avail)
{
    fsio_lock(fs);
    int rc = fs->be->space(fs, path, total, avail);
    fsio_unlock(fs);
    return rc;
}

/* ======================================================================== */
/* whole files                                                              */
/* ======================================================================== */

int fsio_write_file_atomic(struct fsio *fs, const char *dir, const char *name,
                           const void *data, size_t len)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    if (!name[0] || strchr(name, '/'))
        return -EINVAL;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >=
        sizeof(tmp))
        return -ENAMETOOLONG;
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);

    int fd = fsio_open(fs, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    ssize_t n = fsio_pwrite(fs, fd, data, len, 0);
    int rc = n < 0 ? (int)n : fsio_fsync(fs, fd);
    int rc_close = fsio_close(fs, fd);
    if (rc == 0)
        rc = rc_close;
    if (rc == 0)
        rc = fsio_rename(fs, tmp, dst);
    if (rc < 0)
        goto err_unlink_tmp;
    return fsio_fsync_dir(fs, dir);

err_unlink_tmp:
    fsio_unlink(fs, tmp);
    return rc;
}

int fsio_read_file(struct fsio *fs, const char *path, size_t max, void **data,
                   size_t *len)
{
    uint64_t size;
    int fd = fsio_open(fs, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    int rc = fsio_size(fs, fd, &size);
    if (rc < 0)
        goto out_close;
    if (size > max || size >= SIZE_MAX) {
        rc = -EFBIG;
        goto out_close;
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out_close;
    }
    ssize_t n = fsio_pread(fs, fd, buf, (size_t)size, 0);
    if (n < 0) {
        rc = (int)n;
        free(buf);
        goto out_close;
    }
    buf[n] = '\0';
    *data = buf;
    *len = (size_t)n;

out_close:
    fsio_close(fs, fd);
    return rc;
}
