/*
 * fsops: the FUSE low-level operations of dfs-mount.
 *
 * Owns, per mount: the lookup-count table, the list of open file handles
 * (struct fsfile, fi->fh of a file) and the open directory handles
 * (struct fsdir, fi->fh of a directory), and the xattr and lock state
 * (fuse/fsmeta.h, whose handlers are in the table).  Borrows the struct dfs.
 *
 * Invariants:
 *  1. Every handler replies exactly once, on every path (forget and
 *     forget_multi with fuse_reply_none).
 *  2. The lookup count of an inode goes up by one for every entry the
 *     kernel accepts (reply_entry, reply_create, a readdirplus entry other
 *     than "." and ".."), and is taken back when the reply fails to reach
 *     the kernel; forget takes it down (fuse/inodes.h).
 *  3. Every error that crosses to the kernel goes through fsops_errno().
 *  4. A struct fsfile is on fs->files from open/create until release;
 *     fsops_free() closes what the kernel never released, so data written
 *     before an unmount by signal is still committed.
 *  5. A struct fsdir's buffer holds entries fetched after cookie `base`;
 *     entries before `pos` were handed to the kernel.  Protected by its mu:
 *     the kernel may send two readdirs on one handle at once.
 *
 * Lock order: an fsdir's mu, then the inodes table's or libdfs's own
 * locks; fs->files_mu is a leaf (nothing is called while it is held).
 *
 * Credentials.  libdfs carries one uid/gid per session (struct dfs_opts),
 * the mount's own.  A root mount (allow_other) therefore creates as root
 * and then gives the new inode to the calling process (fsops_own): the
 * owner is right, but not atomically so.  Permission checks are the
 * kernel's (default_permissions).
 */
#include "fuse/fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>      /* RENAME_NOREPLACE, RENAME_EXCHANGE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/protocol.h"
#include "fuse/dirattr.h"
#include "fuse/fsmeta.h"
#include "fuse/inodes.h"

#define FSOPS_MAX_WRITE (1u << 20)
/* Idle read buffers kept: about one per thread serving reads. */
#define FSOPS_READ_BUFS 16
#define FSOPS_DIR_BATCH PROTO_READDIR_MAX
#define FSOPS_STATFS_BSIZE PROTO_BLOCK_SIZE

struct fsfile {
    struct dfs_file *f;
    uint64_t ino;
    bool writable;
    bool counted;                 /* a writer in fsops.inodes */
    bool stamp_pending;           /* stamp: what the cache holds from the release on */
    struct inodes_stamp stamp;
    struct fsfile *prev, *next;   /* protected by fsops.files_mu */
};

struct fsdir_ent {
    uint64_t cookie, ino;
    uint32_t mode;
    size_t name_off;              /* into fsdir.names */
    struct dfs_attr attr;         /* valid when fsdir.plus */
};

struct fsdir {
    pthread_mutex_t mu;           /* everything below */
    struct fsdir_ent *ents;
    size_t n, cap, pos;
    char *names;
    size_t names_len, names_cap;
    uint64_t base;                /* ents follow this cookie */
    bool eof;                     /* nothing after ents[n - 1] */
    bool plus;                    /* ents carry attributes */
    bool filled;
};

struct fsops {
    struct dfs *d;                /* borrowed */
    struct fsops_config cfg;
    struct inodes *inodes;
    struct dirattr *dirs;         /* attributes our changes and opens saw */
    struct fuse_session *se;      /* borrowed: for cache invalidations */
    struct fsmeta *meta;          /* xattrs and locks */
    uid_t uid;                    /* the mount's own (its session's) */
    pthread_mutex_t files_mu;
    struct fsfile *files;         /* protected by files_mu */
    pthread_mutex_t bufs_mu;      /* a leaf, for bufs */
    void *bufs[FSOPS_READ_BUFS];  /* idle read buffers (readbuf_get) */
    size_t nbufs;
};

static struct fsops *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

int fsops_errno(int rc)
{
    int e = -rc;
    /* The kernel takes ENOSYS as "this mount never implements that" and
     * remembers it (an open would then succeed without a handle, an fsync
     * without syncing): a cluster that lacks a call is an I/O error. */
    if (e == ENOSYS)
        return EIO;
    if (e > 0 && e < DFS_EBASE)
        return e;
    switch (e) {
    case DFS_EAUTH:
    case DFS_ENOTLEADER:
    case DFS_ENOTREADY:
    case DFS_ESESSION:
    case DFS_EVERSION:
    case DFS_EMAGIC:
        return ENOTCONN;
    default:
        return EIO;
    }
}

/* Replies rc (0 or a negative dfs error), logging what hides behind EIO. */
static void reply_rc(fuse_req_t req, int rc)
{
    if (rc < 0 && -rc > DFS_EBASE)
        log_warn("%s", dfs_strerror(rc));
    fuse_reply_err(req, rc < 0 ? fsops_errno(rc) : 0);
}

/* ---- attributes and entries --------------------------------------------- */

static struct timespec ns_to_ts(int64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
    if (ts.tv_nsec < 0) {
        ts.tv_sec--;
        ts.tv_nsec += 1000000000;
    }
    return ts;
}

static int64_t ts_to_ns(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void to_stat(const struct dfs_attr *a, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = a->ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_rdev = a->rdev;
    st->st_size = (off_t)a->size;
    st->st_blksize = FSOPS_STATFS_BSIZE;
    st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
    st->st_atim = ns_to_ts(a->atime);
    st->st_mtim = ns_to_ts(a->mtime);
    st->st_ctim = ns_to_ts(a->ctime);
}

static void to_entry(const struct fsops *fs, const struct dfs_attr *a,
                     struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->ino = a->ino;
    e->attr_timeout = fs->cfg.attr_timeout;
    e->entry_timeout = fs->cfg.entry_timeout;
    to_stat(a, &e->attr);
}

/* Hands an entry to the kernel, counting the lookup (invariant 2). */
static void reply_entry(fuse_req_t req, const struct dfs_attr *a)
{
    struct fsops *fs = fs_of(req);
    struct fuse_entry_param e;
    to_entry(fs, a, &e);
    int rc = inodes_ref(fs->inodes, a->ino);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    if (fuse_reply_entry(req, &e) != 0)
        inodes_forget(fs->inodes, a->ino, 1);
}

/*
 * Gives a freshly made inode to the calling process when the mount's
 * session is root's (see Credentials above).  The group stays the one the
 * master inherited from a setgid parent.  Updates *a.
 */
static int fsops_own(fuse_req_t req, uint64_t parent, struct dfs_attr *a)
{
    struct fsops *fs = fs_of(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    if (fs->uid != 0 || (ctx->uid == a->uid && ctx->gid == a->gid))
        return 0;
    struct dfs_attr dir;
    int rc = dfs_getattr(fs->d, parent, &dir);
    if (rc < 0)
        return rc;
    struct dfs_setattr set = {
        .valid = DFS_SET_UID | DFS_SET_GID,
        .uid = ctx->uid,
        .gid = dir.mode & S_ISGID ? a->gid : ctx->gid,
    };
    /* A change of owner may clear setuid/setgid; keep what was asked for. */
    if (!S_ISLNK(a->mode)) {
        set.valid |= DFS_SET_MODE;
        set.mode = a->mode & 07777;
    }
    return dfs_setattr(fs->d, a->ino, &set, a);
}

static bool name_ok(fuse_req_t req, const char *name)
{
    if (strlen(name) <= PROTO_NAME_MAX)
        return true;
    fuse_reply_err(req, ENAMETOOLONG);
    return false;
}

/* ---- namespace -------------------------------------------------------------- */

static void fsops_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->max_write = FSOPS_MAX_WRITE;
    conn->time_gran = 1;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    /* O_TRUNC comes as a setattr of the size before open. */
    conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
}

static void fsops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (!name_ok(req, name))
        return;
    struct dfs_attr a;
    int rc = dfs_lookup(fs_of(req)->d, parent, name, &a);
    if (rc < 0)
        reply_rc(req, rc);
    else
        reply_entry(req, &a);
}

static void fsops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    inodes_forget(fs_of(req)->inodes, ino, nlookup);
    fuse_reply_none(req);
}

static void fsops_forget_multi(fuse_req_t req, size_t count,
                               struct fuse_forget_data *forgets)
{
    struct fsops *fs = fs_of(req);
    for (size_t i = 0; i < count; i++)
        inodes_forget(fs->inodes, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* a, which the kernel may keep for timeout_s. */
static void reply_attr_for(fuse_req_t req, const struct dfs_attr *a, double timeout_s)
{
    struct stat st;
    to_stat(a, &st);
    fuse_reply_attr(req, &st, timeout_s);
}

static void reply_attr(fuse_req_t req, const struct dfs_attr *a)
{
    reply_attr_for(req, a, fs_of(req)->cfg.attr_timeout);
}

static void dir_changed(void *arg, const struct dfs_attr *a)
{
    struct fsops *fs = arg;
    dirattr_put(fs->dirs, a, (int64_t)ev_clock_ms(), DIRATTR_CHANGE_ANSWERS);
}

static void fsops_getattr(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    (void)fi;
    struct fsops *fs = fs_of(req);
    struct dfs_attr a;
    int64_t left_ms;
    if (dirattr_take(fs->dirs, ino, (int64_t)ev_clock_ms(), &a, &left_ms)) {
        reply_attr_for(req, &a, (double)left_ms / 1000);
        return;
    }
    int rc = dfs_getattr(fs->d, ino, &a);
    if (rc < 0)
        reply_rc(req, rc);
    else
        reply_attr(req, &a);
}

static void to_setattr(const struct stat *attr, int to_set, struct dfs_setattr *s)
{
    memset(s, 0, sizeof(*s));
    if (to_set & FUSE_SET_ATTR_MODE) {
        s->valid |= DFS_SET_MODE;
        s->mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        s->valid |= DFS_SET_UID;
        s->uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        s->valid |= DFS_SET_GID;
        s->gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        s->valid |= DFS_SET_SIZE;
        s->size = (uint64_t)attr->st_size;
    }
    /* UTIME_OMIT never gets here: the kernel leaves its bit clear. */
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
        s->valid |= DFS_SET_ATIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
        s->valid |= DFS_SET_ATIME;
        s->atime = ts_to_ns(attr->st_atim);
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        s->valid |= DFS_SET_MTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
        s->valid |= DFS_SET_MTIME;
        s->mtime = ts_to_ns(attr->st_mtim);
    }
}

static void fsops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                          int to_set, struct fuse_file_info *fi)
{
    struct fsops *fs = fs_of(req);
    struct dfs_setattr set;
    to_setattr(attr, to_set, &set);
    struct dfs_attr a;
    int rc = 0;
    dirattr_drop(fs->dirs, ino);
    /* ftruncate goes through the handle: its writes land first and its
     * write session ends with the chunk's old version. */
    struct fsfile *h = fi ? (struct fsfile *)(uintptr_t)fi->fh : NULL;
    if ((set.valid & DFS_SET_SIZE) && h && h->writable) {
        rc = dfs_file_truncate(h->f, set.size);
        set.valid &= ~(uint32_t)DFS_SET_SIZE;
    }
    if (rc == 0)
        rc = set.valid ? dfs_setattr(fs->d, ino, &set, &a) : dfs_getattr(fs->d, ino, &a);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    dirattr_put(fs->dirs, &a, (int64_t)ev_clock_ms(), DIRATTR_CHANGE_ANSWERS);
    reply_attr(req, &a);
}

static void fsops_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char *target = NULL;
    int rc = dfs_readlink(fs_of(req)->d, ino, &target);
    if (rc < 0)
        reply_rc(req, rc);
    else
        fuse_reply_readlink(req, target);
    free(target);
}

/* Owns a freshly made inode for the caller and replies with its entry. */
static void reply_made(fuse_req_t req, fuse_ino_t parent, int rc,
                       struct dfs_attr *a)
{
    if (rc == 0)
        rc = fsops_own(req, parent, a);
    if (rc < 0)
        reply_rc(req, rc);
    else
        reply_entry(req, a);
}

static void fsops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                        mode_t mode, dev_t rdev)
{
    if (!name_ok(req, name))
        return;
    struct dfs_attr a;
    int rc = dfs_mknod(fs_of(req)->d, parent, name, mode, (uint32_t)rdev, &a);
    reply_made(req, parent, rc, &a);
}

static void fsops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                        mode_t mode)
{
    if (!name_ok(req, name))
        return;
    struct dfs_attr a;
    int rc = dfs_mkdir(fs_of(req)->d, parent, name, mode & 07777, &a);
    reply_made(req, parent, rc, &a);
}

static void fsops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                          const char *name)
{
    if (!name_ok(req, name))
        return;
    if (strlen(link) > PROTO_PATH_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    struct dfs_attr a;
    int rc = dfs_symlink(fs_of(req)->d, parent, name, link, &a);
    reply_made(req, parent, rc, &a);
}

static void fsops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    reply_rc(req, dfs_unlink(fs_of(req)->d, parent, name));
}

static void fsops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    reply_rc(req, dfs_rmdir(fs_of(req)->d, parent, name));
}

static void fsops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                         fuse_ino_t newparent, const char *newname,
                         unsigned int flags)
{
    if (!name_ok(req, newname))
        return;
    uint32_t dflags = 0;
    if (flags & RENAME_NOREPLACE)
        dflags |= DFS_RENAME_NOREPLACE;
    if (flags & RENAME_EXCHANGE)
        dflags |= DFS_RENAME_EXCHANGE;
    /* RENAME_WHITEOUT is for overlay file systems' upper layers only. */
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    reply_rc(req, dfs_rename(fs_of(req)->d, parent, name, newparent, newname,
                             dflags));
}

static void fsops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                       const char *newname)
{
    if (!name_ok(req, newname))
        return;
    struct dfs_attr a;
    int rc = dfs_link(fs_of(req)->d, ino, newparent, newname, &a);
    if (rc < 0)
        reply_rc(req, rc);
    else
        reply_entry(req, &a);
}

static void fsops_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct dfs_statfs s;
    int rc = dfs_statfs(fs_of(req)->d, &s);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    struct statvfs v = {
        .f_bsize = FSOPS_STATFS_BSIZE,
        .f_frsize = FSOPS_STATFS_BSIZE,
        .f_blocks = s.bytes_total / FSOPS_STATFS_BSIZE,
        .f_bfree = s.bytes_free / FSOPS_STATFS_BSIZE,
        .f_bavail = s.bytes_avail / FSOPS_STATFS_BSIZE,
        .f_files = s.files,
        .f_ffree = s.files_free,
        .f_favail = s.files_free,
        .f_namemax = PROTO_NAME_MAX,
    };
    fuse_reply_statfs(req, &v);
}

/* ---- files ------------------------------------------------------------------ */

static uint32_t open_flags(int flags)
{
    switch (flags & O_ACCMODE) {
    case O_WRONLY:
        return DFS_O_WRITE;
    case O_RDWR:
        return DFS_O_READ | DFS_O_WRITE;
    default:
        return DFS_O_READ;
    }
}

static void files_add(struct fsops *fs, struct fsfile *h)
{
    pthread_mutex_lock(&fs->files_mu);
    h->prev = NULL;
    h->next = fs->files;
    if (fs->files)
        fs->files->prev = h;
    fs->files = h;
    pthread_mutex_unlock(&fs->files_mu);
}

static void files_remove(struct fsops *fs, struct fsfile *h)
{
    pthread_mutex_lock(&fs->files_mu);
    if (h->prev)
        h->prev->next = h->next;
    else
        fs->files = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&fs->files_mu);
}

/*
 * Whether the open of h, which found a at the masters, may keep the
 * kernel's page cache of the file (fuse/inodes.h); counts h as a writer.
 * A changed file's open lets the kernel empty the cache (in the opening
 * process, after this reply) and drops its cached attributes now, so the
 * open sees the new size; the new stamp is recorded only at h's release,
 * when that emptying is surely done, so that no open that finds it can
 * reach a page of the old file.  Emptying the pages here instead
 * (notify_inval_inode with an offset) would wait on pages locked by reads
 * in flight, which need a worker thread to answer them.  The kernel does
 * not know a created inode yet: nothing to keep.
 */
static bool cache_open(struct fsops *fs, struct fsfile *h, const struct dfs_attr *a,
                       bool created)
{
    if (fs->cfg.direct_io)
        return false;
    struct inodes_stamp s = { .size = a->size, .mtime = a->mtime, .ctime = a->ctime };
    enum inodes_cache c = inodes_open(fs->inodes, h->ino, &s, h->writable, &h->counted);
    if (c == INODES_CACHE_KEEP && !created)
        return true;
    if (c == INODES_CACHE_STALE && !created) {
        if (fs->se)
            fuse_lowlevel_notify_inval_inode(fs->se, h->ino, -1, 0);
        h->stamp = s;
        h->stamp_pending = true;
    }
    return false;
}

/* Opens ino into a handle on fs->files, or takes over the open that the
 * create of *created made (the caller counts it in the cache state once
 * the kernel holds the inode); fills fi. */
static int file_open(struct fsops *fs, uint64_t ino, const struct dfs_attr *created,
                     struct fuse_file_info *fi)
{
    struct fsfile *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    uint32_t flags = open_flags(fi->flags);
    struct dfs_attr a;
    int rc = created ? dfs_file_adopt(fs->d, created, flags, &h->f)
                     : dfs_file_open(fs->d, ino, flags, &h->f, &a);
    if (rc < 0) {
        free(h);
        return rc;
    }
    h->ino = ino;
    h->writable = (flags & DFS_O_WRITE) != 0;
    files_add(fs, h);
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = fs->cfg.direct_io;
    fi->keep_cache = !created && cache_open(fs, h, &a, false);
    if (!created && !h->writable)
        dirattr_put(fs->dirs, &a, (int64_t)ev_clock_ms(), DIRATTR_OPEN_ANSWERS);
    return 0;
}

/* Closes a handle (committing what it wrote); returns what close said. */
static int file_close(struct fsops *fs, struct fsfile *h)
{
    files_remove(fs, h);
    int rc = dfs_file_close(h->f);
    if (h->counted)
        inodes_close(fs->inodes, h->ino);
    if (h->stamp_pending)
        inodes_stamp(fs->inodes, h->ino, &h->stamp);
    free(h);
    return rc;
}

static struct fsfile *file_of(const struct fuse_file_info *fi)
{
    return (struct fsfile *)(uintptr_t)fi->fh;
}

static void fsops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fsops *fs = fs_of(req);
    int rc = file_open(fs, ino, NULL, fi);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    /* An interrupted open: the kernel will not release what it never got. */
    if (fuse_reply_open(req, fi) != 0)
        file_close(fs, file_of(fi));
}

static uint32_t create_flags(int flags)
{
    uint32_t f = open_flags(flags);
    if (flags & O_EXCL)
        f |= DFS_O_EXCL;
    if (flags & O_TRUNC)
        f |= DFS_O_TRUNC;
    return f;
}

static void fsops_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                         mode_t mode, struct fuse_file_info *fi)
{
    if (!name_ok(req, name))
        return;
    struct fsops *fs = fs_of(req);
    struct dfs_attr a;
    int rc = dfs_create(fs->d, parent, name, mode, create_flags(fi->flags), &a);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    /* The create opened the file in the session: the handle takes that
     * open over, so that release gives it back. */
    rc = file_open(fs, a.ino, &a, fi);
    if (rc == 0)
        rc = fsops_own(req, parent, &a);
    if (rc == 0)
        rc = inodes_ref(fs->inodes, a.ino);
    if (rc < 0) {
        if (fi->fh)
            file_close(fs, file_of(fi));
        reply_rc(req, rc);
        return;
    }
    cache_open(fs, file_of(fi), &a, true);
    /* Without O_EXCL the create may have opened a file that was there. */
    if (fi->flags & O_EXCL)
        fsmeta_created(fs->meta, a.ino);
    struct fuse_entry_param e;
    to_entry(fs, &a, &e);
    if (fuse_reply_create(req, &e, fi) != 0) {
        inodes_forget(fs->inodes, a.ino, 1);
        file_close(fs, file_of(fi));
    }
}

/*
 * A buffer for a read's answer of size bytes: up to FSOPS_MAX_WRITE a
 * reused, page-aligned one.  A fresh one of that size is an mmap, a page
 * fault per page and a munmap whose TLB shootdown stalls every thread,
 * and the kernel copies into an unaligned one (local reads pread straight
 * into it) at half the speed.  NULL when out of memory.
 */
static void *readbuf_get(struct fsops *fs, size_t size)
{
    if (size > FSOPS_MAX_WRITE)
        return malloc(size);
    void *b = NULL;
    pthread_mutex_lock(&fs->bufs_mu);
    if (fs->nbufs)
        b = fs->bufs[--fs->nbufs];
    pthread_mutex_unlock(&fs->bufs_mu);
    return b ? b : aligned_alloc(4096, FSOPS_MAX_WRITE);
}

/* Gives back what readbuf_get(fs, size) returned. */
static void readbuf_put(struct fsops *fs, void *b, size_t size)
{
    if (size > FSOPS_MAX_WRITE) {
        free(b);
        return;
    }
    pthread_mutex_lock(&fs->bufs_mu);
    if (fs->nbufs < FSOPS_READ_BUFS) {
        fs->bufs[fs->nbufs++] = b;
        b = NULL;
    }
    pthread_mutex_unlock(&fs->bufs_mu);
    free(b);
}

static void fsops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    struct fsops *fs = fs_of(req);
    char *buf = readbuf_get(fs, size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = dfs_file_pread(file_of(fi)->f, buf, size, (uint64_t)off);
    if (n < 0)
        reply_rc(req, (int)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    readbuf_put(fs, buf, size);
}

static void fsops_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                        size_t size, off_t off, struct fuse_file_info *fi)
{
    dirattr_drop(fs_of(req)->dirs, ino);   /* size and mtime move */
    ssize_t n = dfs_file_pwrite(file_of(fi)->f, buf, size, (uint64_t)off);
    if (n < 0)
        reply_rc(req, (int)n);
    else
        fuse_reply_write(req, (size_t)n);
}

/* close(2) of one descriptor: what it wrote is durable when it returns,
 * and the closing process's POSIX locks on the file are gone. */
static void fsops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fsfile *h = file_of(fi);
    int rc = h->writable ? dfs_file_flush(h->f) : 0;
    int rc2 = fsmeta_flush(fs_of(req)->meta, ino, fi->lock_owner);
    reply_rc(req, rc < 0 ? rc : rc2);
}

static void fsops_release(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    if (fi->flock_release) {
        int rc = fsmeta_release(fs_of(req)->meta, ino, fi->lock_owner);
        if (rc < 0)
            log_warn("dropping the flock of inode %llu: %s", (unsigned long long)ino,
                     dfs_strerror(rc));
    }
    int rc = file_close(fs_of(req), file_of(fi));
    if (rc < 0)
        log_warn("closing inode %llu: %s", (unsigned long long)ino, dfs_strerror(rc));
    reply_rc(req, rc);
}

static void fsops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    struct fsfile *h = file_of(fi);
    reply_rc(req, h->writable ? dfs_file_fsync(h->f) : 0);
}

/*
 * dfs reserves no space ahead: a chunk takes disk space as it is written.
 * So mode 0 only extends the size (the range reads as zeros), KEEP_SIZE
 * has nothing to do, and punching, zeroing or collapsing ranges is
 * EOPNOTSUPP.
 */
static void fsops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
                            off_t offset, off_t length, struct fuse_file_info *fi)
{
    dirattr_drop(fs_of(req)->dirs, ino);
    struct fsfile *h = file_of(fi);
    int rc = 0;
    if (mode & ~FALLOC_FL_KEEP_SIZE)
        rc = -EOPNOTSUPP;
    else if (offset < 0 || length <= 0)
        rc = -EINVAL;
    else if (!h->writable)
        rc = -EBADF;
    else if (!(mode & FALLOC_FL_KEEP_SIZE))
        rc = dfs_file_extend(h->f, (uint64_t)offset + (uint64_t)length);
    reply_rc(req, rc);
}

/* ---- directories -------------------------------------------------------------- */

static struct fsdir *dir_of(const struct fuse_file_info *fi)
{
    return (struct fsdir *)(uintptr_t)fi->fh;
}

static void fsops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct fsdir *dir = calloc(1, sizeof(*dir));
    if (!dir) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_init(&dir->mu, NULL);
    fi->fh = (uint64_t)(uintptr_t)dir;
    if (fuse_reply_open(req, fi) != 0) {
        pthread_mutex_destroy(&dir->mu);
        free(dir);
    }
}

static void fsops_releasedir(fuse_req_t req, fuse_ino_t ino,
                             struct fuse_file_info *fi)
{
    (void)ino;
    struct fsdir *dir = dir_of(fi);
    pthread_mutex_destroy(&dir->mu);
    free(dir->ents);
    free(dir->names);
    free(dir);
    fuse_reply_err(req, 0);
}

static int dir_push(const struct dfs_dirent *e, void *arg)
{
    struct fsdir *dir = arg;
    size_t len = strlen(e->name) + 1;
    if (dir->n == dir->cap) {
        size_t cap = dir->cap ? dir->cap * 2 : 64;
        struct fsdir_ent *ents = realloc(dir->ents, cap * sizeof(*ents));
        if (!ents)
            return -ENOMEM;
        dir->ents = ents;
        dir->cap = cap;
    }
    if (dir->names_len + len > dir->names_cap) {
        size_t cap = dir->names_cap ? dir->names_cap * 2 : 4096;
        while (cap < dir->names_len + len)
            cap *= 2;
        char *names = realloc(dir->names, cap);
        if (!names)
            return -ENOMEM;
        dir->names = names;
        dir->names_cap = cap;
    }
    struct fsdir_ent *ent = &dir->ents[dir->n++];
    ent->cookie = e->cookie;
    ent->ino = e->ino;
    ent->mode = e->mode;
    ent->name_off = dir->names_len;
    if (e->attr)
        ent->attr = *e->attr;
    memcpy(dir->names + dir->names_len, e->name, len);
    dir->names_len += len;
    /* One batch at a time; the cookie of the last one resumes. */
    return dir->n == FSOPS_DIR_BATCH ? 1 : 0;
}

/* Refills dir with the entries after cookie. */
static int dir_fill(struct fsops *fs, struct fsdir *dir, uint64_t ino,
                    uint64_t cookie, bool plus)
{
    dir->n = dir->pos = dir->names_len = 0;
    dir->base = cookie;
    dir->plus = plus;
    dir->filled = false;
    int rc = dfs_readdir(fs->d, ino, cookie, plus ? DFS_READDIR_PLUS : 0,
                         dir_push, dir);
    if (rc < 0)
        return rc;
    dir->eof = rc == 0;
    dir->filled = true;
    return 0;
}

static uint64_t dir_cursor(const struct fsdir *dir)
{
    return dir->pos ? dir->ents[dir->pos - 1].cookie : dir->base;
}

static bool is_dot(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/*
 * Adds ents[pos] to buf (rem bytes left).  Returns its size, 0 when it does
 * not fit, or -ENOMEM (nothing counted then).
 */
static ssize_t dir_add(fuse_req_t req, struct fsdir *dir, char *buf, size_t rem)
{
    struct fsops *fs = fs_of(req);
    const struct fsdir_ent *ent = &dir->ents[dir->pos];
    const char *name = dir->names + ent->name_off;
    if (!dir->plus) {
        struct stat st = { .st_ino = ent->ino, .st_mode = ent->mode };
        size_t len = fuse_add_direntry(req, buf, rem, name, &st, (off_t)ent->cookie);
        return len <= rem ? (ssize_t)len : 0;
    }
    struct fuse_entry_param e;
    /* "." and ".." are not lookups: ino 0 keeps the kernel from counting. */
    if (is_dot(name)) {
        memset(&e, 0, sizeof(e));
        e.attr.st_ino = ent->ino;
        e.attr.st_mode = ent->mode;
    } else {
        to_entry(fs, &ent->attr, &e);
    }
    size_t len = fuse_add_direntry_plus(req, buf, rem, name, &e, (off_t)ent->cookie);
    if (len > rem)
        return 0;
    if (e.ino && inodes_ref(fs->inodes, e.ino) < 0)
        return -ENOMEM;
    return (ssize_t)len;
}

/*
 * The inodes whose lookups a readdirplus reply of ents[from, to) counted:
 * taken back if the reply does not reach the kernel.  Copied out because
 * once the reply is sent, RELEASEDIR may free dir on another thread.
 */
static fuse_ino_t *dir_counted(const struct fsdir *dir, size_t from, size_t to,
                               size_t *n)
{
    fuse_ino_t *v = malloc((to - from ? to - from : 1) * sizeof(*v));
    *n = 0;
    for (size_t i = from; v && i < to; i++)
        if (!is_dot(dir->names + dir->ents[i].name_off))
            v[(*n)++] = dir->ents[i].ino;
    return v;
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi, bool plus)
{
    struct fsops *fs = fs_of(req);
    struct fsdir *dir = dir_of(fi);
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_lock(&dir->mu);
    int rc = 0;
    bool stale = !dir->filled || dir->plus != plus || (uint64_t)off != dir_cursor(dir);
    if (stale || (dir->pos == dir->n && !dir->eof))
        rc = dir_fill(fs, dir, ino, (uint64_t)off, plus);
    size_t used = 0, start = dir->pos;
    while (rc == 0 && dir->pos < dir->n) {
        ssize_t len = dir_add(req, dir, buf + used, size - used);
        /* Out of memory after some entries: send those, the rest follows. */
        if (len < 0 && used == 0)
            rc = (int)len;
        if (len <= 0)
            break;
        used += (size_t)len;
        dir->pos++;
    }
    size_t ncounted = 0;
    fuse_ino_t *counted = plus && rc == 0 ? dir_counted(dir, start, dir->pos, &ncounted)
                                          : NULL;
    pthread_mutex_unlock(&dir->mu);
    /* dir may be freed from here on (RELEASEDIR after the reply). */
    if (rc < 0) {
        reply_rc(req, rc);
    } else if (fuse_reply_buf(req, buf, used) != 0) {
        for (size_t i = 0; i < ncounted; i++)
            inodes_forget(fs->inodes, counted[i], 1);
    }
    free(counted);
    free(buf);
}

static void fsops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, false);
}

static void fsops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                              off_t off, struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, true);
}

/* Every directory change is committed through Raft before it is answered. */
static void fsops_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                           struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    fuse_reply_err(req, 0);
}

/* ---- the mount ------------------------------------------------------------------ */

/* An xattr change moves the directory's ctime, which no entry saw. */
static void fsops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                           const char *value, size_t size, int flags)
{
    dirattr_drop(fs_of(req)->dirs, ino);
    fsmeta_setxattr(req, ino, name, value, size, flags);
}

static void fsops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    dirattr_drop(fs_of(req)->dirs, ino);
    fsmeta_removexattr(req, ino, name);
}

static const struct fuse_lowlevel_ops fsops_table = {
    .init = fsops_init,
    .lookup = fsops_lookup,
    .forget = fsops_forget,
    .forget_multi = fsops_forget_multi,
    .getattr = fsops_getattr,
    .setattr = fsops_setattr,
    .readlink = fsops_readlink,
    .mknod = fsops_mknod,
    .mkdir = fsops_mkdir,
    .unlink = fsops_unlink,
    .rmdir = fsops_rmdir,
    .symlink = fsops_symlink,
    .rename = fsops_rename,
    .link = fsops_link,
    .open = fsops_open,
    .create = fsops_create,
    .read = fsops_read,
    .write = fsops_write,
    .flush = fsops_flush,
    .release = fsops_release,
    .fsync = fsops_fsync,
    .fallocate = fsops_fallocate,
    .opendir = fsops_opendir,
    .readdir = fsops_readdir,
    .readdirplus = fsops_readdirplus,
    .releasedir = fsops_releasedir,
    .fsyncdir = fsops_fsyncdir,
    .statfs = fsops_statfs,
    .setxattr = fsops_setxattr,
    .getxattr = fsmeta_getxattr,
    .listxattr = fsmeta_listxattr,
    .removexattr = fsops_removexattr,
    .getlk = fsmeta_getlk,
    .setlk = fsmeta_setlk,
    .flock = fsmeta_flock,
};

const struct fuse_lowlevel_ops *fsops_ops(void)
{
    return &fsops_table;
}

struct fsmeta *fsops_meta(struct fsops *fs)
{
    return fs->meta;
}

void fsops_session(struct fsops *fs, struct fuse_session *se)
{
    fs->se = se;
}

struct fsops *fsops_new(struct dfs *d, const struct fsops_config *cfg)
{
    struct fsops *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return NULL;
    fs->inodes = inodes_new(cfg->strict);
    fs->meta = fsmeta_new(d, cfg->attr_timeout);
    fs->dirs = dirattr_new((int64_t)(cfg->attr_timeout * 1000));
    if (!fs->inodes || !fs->meta || !fs->dirs) {
        inodes_free(fs->inodes);
        fsmeta_free(fs->meta);
        dirattr_free(fs->dirs);
        free(fs);
        return NULL;
    }
    dfs_on_dir_attr(d, dir_changed, fs);
    fs->d = d;
    fs->cfg = *cfg;
    fs->uid = geteuid();
    pthread_mutex_init(&fs->files_mu, NULL);
    pthread_mutex_init(&fs->bufs_mu, NULL);
    return fs;
}

void fsops_free(struct fsops *fs)
{
    if (!fs)
        return;
    while (fs->files) {
        int rc = file_close(fs, fs->files);
        if (rc < 0)
            log_error("closing a file left open at unmount: %s", dfs_strerror(rc));
    }
    size_t held = inodes_size(fs->inodes);
    if (held)
        log_debug("unmounted with %zu inodes still looked up", held);
    inodes_free(fs->inodes);
    fsmeta_free(fs->meta);
    dirattr_free(fs->dirs);
    pthread_mutex_destroy(&fs->files_mu);
    while (fs->nbufs)
        free(fs->bufs[--fs->nbufs]);
    pthread_mutex_destroy(&fs->bufs_mu);
    free(fs);
}
