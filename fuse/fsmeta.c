/*
 * fsmeta: extended attributes and locks of dfs-mount.
 *
 * Owns, per mount: the set of (inode, owner) pairs that took a POSIX lock
 * through this mount (so that a close costs a master round trip only for
 * them), the inodes whose flock release is on its way to the masters, and
 * a small cache of inodes known to have no security.capability.  Borrows
 * the struct dfs.
 *
 * Why the releases are tracked: the kernel keeps no record of a FUSE
 * file system's flock locks, so the last close of a flocked file sends no
 * unlock of its own; the unlock rides on FUSE_RELEASE, which the kernel
 * sends in the background after close(2) has returned (and after the
 * closing process has exited).  A process that flocks the file next may
 * reach us first.  A flock that conflicts while a release of the same
 * inode is in flight therefore waits for that release and tries again,
 * so "close, then another process flocks" works as on a local disk.
 *
 * Why the capability cache: the kernel asks for security.capability
 * before every write(2) to a FUSE file (file_remove_privs; FUSE mounts
 * never get SB_NOSEC), and each ask would be a linearizable read at the
 * leader.  A missing attribute is remembered for the attribute cache time
 * (the same staleness the kernel's attribute cache allows), and forgotten
 * at once when this mount sets or removes it; a file this mount has just
 * created exclusively is known to have none.
 *
 * Invariants:
 *  1. Every handler replies exactly once; errors go through fsops_errno.
 *  2. A blocking lock registers an interrupt callback before it waits and
 *     unregisters it before its stack state goes (libfuse serialises the
 *     callback against the unregistering).
 *
 * Lock order: m->mu is a leaf (nothing is called while it is held).
 */
#include "fuse/fsmeta.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/xattr.h>
#include <time.h>

#include "common/dfs_error.h"
#include "common/log.h"
#include "common/protocol.h"

#define FSMETA_CAPS_SLOTS 256           /* direct-mapped by inode */
#define FSMETA_FLOCK_RETRIES 3          /* of a flock refused near a release */
#define FSMETA_CAP_NAME "security.capability"

struct owner_key {
    uint64_t ino, owner;
};

struct cap_slot {
    uint64_t ino;                       /* 0: empty */
    int64_t until_ns;                   /* CLOCK_MONOTONIC */
};

struct fsmeta {
    struct dfs *d;                      /* borrowed */
    int64_t cache_ns;
    pthread_mutex_t mu;                 /* everything below */
    struct owner_key *posix;            /* pairs that took a POSIX lock */
    size_t nposix, posix_cap;
    struct cap_slot caps[FSMETA_CAPS_SLOTS];
    uint64_t *releasing;                /* inodes of flock releases in flight */
    size_t nreleasing, releasing_cap;
    uint64_t releases_done;             /* flock releases ended so far */
    pthread_cond_t released;            /* signalled when one ends */
};

struct fsmeta *fsmeta_new(struct dfs *d, double cache_s)
{
    struct fsmeta *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->d = d;
    m->cache_ns = cache_s > 0 ? (int64_t)(cache_s * 1e9) : 0;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->released, NULL);
    return m;
}

void fsmeta_free(struct fsmeta *m)
{
    if (!m)
        return;
    pthread_cond_destroy(&m->released);
    pthread_mutex_destroy(&m->mu);
    free(m->releasing);
    free(m->posix);
    free(m);
}

static struct fsmeta *meta_of(fuse_req_t req)
{
    return fsops_meta(fuse_req_userdata(req));
}

static void reply_rc(fuse_req_t req, int rc)
{
    if (rc < 0 && -rc > DFS_EBASE)
        log_warn("%s", dfs_strerror(rc));
    fuse_reply_err(req, rc < 0 ? fsops_errno(rc) : 0);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the capability cache ---------------------------------------------------- */

static struct cap_slot *cap_slot(struct fsmeta *m, uint64_t ino)
{
    return &m->caps[ino % FSMETA_CAPS_SLOTS];
}

static bool cap_known_absent(struct fsmeta *m, uint64_t ino)
{
    pthread_mutex_lock(&m->mu);
    struct cap_slot *c = cap_slot(m, ino);
    bool absent = c->ino == ino && c->until_ns > mono_ns();
    pthread_mutex_unlock(&m->mu);
    return absent;
}

/* absent: the master just said so; else forget what was known. */
static void cap_note(struct fsmeta *m, uint64_t ino, bool absent)
{
    pthread_mutex_lock(&m->mu);
    struct cap_slot *c = cap_slot(m, ino);
    if (absent && m->cache_ns > 0)
        *c = (struct cap_slot){ ino, mono_ns() + m->cache_ns };
    else if (c->ino == ino)
        c->ino = 0;
    pthread_mutex_unlock(&m->mu);
}

void fsmeta_created(struct fsmeta *m, uint64_t ino)
{
    cap_note(m, ino, true);
}

static bool is_cap(const char *name)
{
    return strcmp(name, FSMETA_CAP_NAME) == 0;
}

/* ---- extended attributes ------------------------------------------------------ */

void fsmeta_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                     const char *value, size_t size, int flags)
{
    struct fsmeta *m = meta_of(req);
    if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    uint32_t f = (flags & XATTR_CREATE ? DFS_XATTR_CREATE : 0) |
                 (flags & XATTR_REPLACE ? DFS_XATTR_REPLACE : 0);
    if (is_cap(name))
        cap_note(m, ino, false);
    reply_rc(req, dfs_setxattr(m->d, ino, name, value, size, f));
}

/* size 0 asks for the length; a buffer too small is ERANGE (getxattr(2)). */
static void reply_sized(fuse_req_t req, const void *buf, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (len > size)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, buf, len);
}

void fsmeta_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct fsmeta *m = meta_of(req);
    bool cap = is_cap(name);
    if (cap && cap_known_absent(m, ino)) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    void *val;
    size_t len;
    int rc = dfs_getxattr(m->d, ino, name, &val, &len);
    if (cap)
        cap_note(m, ino, rc == -ENODATA);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    reply_sized(req, val, len, size);
    free(val);
}

void fsmeta_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct fsmeta *m = meta_of(req);
    char *names;
    size_t len;
    int rc = dfs_listxattr(m->d, ino, &names, &len);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    reply_sized(req, names, len, size);
    free(names);
}

void fsmeta_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct fsmeta *m = meta_of(req);
    if (is_cap(name))
        cap_note(m, ino, false);
    reply_rc(req, dfs_removexattr(m->d, ino, name));
}

/* ---- POSIX lock owners ------------------------------------------------------------ */

static void posix_note(struct fsmeta *m, uint64_t ino, uint64_t owner)
{
    pthread_mutex_lock(&m->mu);
    bool known = false;
    for (size_t i = 0; i < m->nposix && !known; i++)
        known = m->posix[i].ino == ino && m->posix[i].owner == owner;
    if (!known && m->nposix == m->posix_cap) {
        size_t cap = m->posix_cap ? 2 * m->posix_cap : 16;
        struct owner_key *v = realloc(m->posix, cap * sizeof(*v));
        if (v) {
            m->posix = v;
            m->posix_cap = cap;
        }
    }
    /* Out of memory the pair goes unrecorded: its locks then stay until
     * the file's last close in the session or the session's end. */
    if (!known && m->nposix < m->posix_cap)
        m->posix[m->nposix++] = (struct owner_key){ ino, owner };
    pthread_mutex_unlock(&m->mu);
}

/* Forgets the pair; true if it was recorded. */
static bool posix_take(struct fsmeta *m, uint64_t ino, uint64_t owner)
{
    bool found = false;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nposix; i++) {
        if (m->posix[i].ino == ino && m->posix[i].owner == owner) {
            m->posix[i] = m->posix[--m->nposix];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

int fsmeta_flush(struct fsmeta *m, uint64_t ino, uint64_t owner)
{
    if (!posix_take(m, ino, owner))
        return 0;
    struct dfs_lock l = { .owner = owner, .kind = DFS_LOCK_POSIX, .start = 0,
                          .end = UINT64_MAX };
    return dfs_unlock(m->d, ino, &l);
}

/* Records a flock release of ino in flight; false when out of memory
 * (the release still runs, untracked). */
static bool releasing_add(struct fsmeta *m, uint64_t ino)
{
    bool ok = true;
    pthread_mutex_lock(&m->mu);
    if (m->nreleasing == m->releasing_cap) {
        size_t cap = m->releasing_cap ? m->releasing_cap * 2 : 16;
        uint64_t *n = realloc(m->releasing, cap * sizeof(*n));
        if (n) {
            m->releasing = n;
            m->releasing_cap = cap;
        }
    }
    if (m->nreleasing < m->releasing_cap)
        m->releasing[m->nreleasing++] = ino;
    else
        ok = false;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

static void releasing_done(struct fsmeta *m, uint64_t ino)
{
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nreleasing; i++) {
        if (m->releasing[i] == ino) {
            m->releasing[i] = m->releasing[--m->nreleasing];
            break;
        }
    }
    m->releases_done++;
    pthread_cond_broadcast(&m->released);
    pthread_mutex_unlock(&m->mu);
}

static uint64_t releases_done(struct fsmeta *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t n = m->releases_done;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/*
 * Waits until no flock release of ino is in flight.  True if one was, or
 * if any release ended since *seen (it may have ended between the
 * refusal and this call): a refused flock is worth another try then.
 */
static bool releasing_wait(struct fsmeta *m, uint64_t ino, uint64_t *seen)
{
    pthread_mutex_lock(&m->mu);
    bool waited = m->releases_done != *seen;
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < m->nreleasing && !busy; i++)
            busy = m->releasing[i] == ino;
        if (!busy)
            break;
        waited = true;
        pthread_cond_wait(&m->released, &m->mu);
    }
    *seen = m->releases_done;
    pthread_mutex_unlock(&m->mu);
    return waited;
}

int fsmeta_release(struct fsmeta *m, uint64_t ino, uint64_t owner)
{
    struct dfs_lock l = { .owner = owner, .kind = DFS_LOCK_FLOCK, .start = 0,
                          .end = UINT64_MAX };
    bool tracked = releasing_add(m, ino);
    int rc = dfs_unlock(m->d, ino, &l);
    if (tracked)
        releasing_done(m, ino);
    return rc;
}

/* ---- locks ------------------------------------------------------------------------ */

/* A blocking lock: what its interrupt callback needs. */
struct fsmeta_wait {
    struct fsmeta *m;
    uint64_t ino;
    struct dfs_lock lock;
    atomic_bool cancelled;
};

static bool wait_cancelled(void *arg)
{
    struct fsmeta_wait *w = arg;
    return atomic_load(&w->cancelled);
}

/* The kernel interrupted the request (a signal): end the wait.  The
 * cancel makes the leader answer the waiting request -EINTR and leaves
 * what the owner holds alone. */
static void wait_interrupted(fuse_req_t req, void *arg)
{
    (void)req;
    struct fsmeta_wait *w = arg;
    atomic_store(&w->cancelled, true);
    int rc = dfs_lock_cancel(w->m->d, w->ino, &w->lock);
    if (rc < 0)
        log_warn("cancelling a lock wait on inode %llu: %s",
                 (unsigned long long)w->ino, dfs_strerror(rc));
}

/* Takes l, waiting (interruptibly) when sleep is set. */
static int take_lock(fuse_req_t req, struct fsmeta *m, uint64_t ino,
                     const struct dfs_lock *l, bool sleep)
{
    if (!sleep)
        return dfs_lock(m->d, ino, l, NULL);
    struct fsmeta_wait w = { .m = m, .ino = ino, .lock = *l };
    atomic_init(&w.cancelled, false);
    struct dfs_lock_wait how = { wait_cancelled, &w };
    fuse_req_interrupt_func(req, wait_interrupted, &w);
    int rc = dfs_lock(m->d, ino, l, &how);
    fuse_req_interrupt_func(req, NULL, NULL);
    return rc;
}

/* struct flock's range (libfuse gives l_whence SEEK_SET) as inclusive. */
static int range_of(const struct flock *fl, uint64_t *start, uint64_t *end)
{
    if (fl->l_start < 0 || fl->l_len < 0)
        return -EINVAL;
    *start = (uint64_t)fl->l_start;
    *end = fl->l_len == 0 ? UINT64_MAX : *start + (uint64_t)fl->l_len - 1;
    return 0;
}

void fsmeta_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock)
{
    struct fsmeta *m = meta_of(req);
    struct dfs_lock l = { .owner = fi->lock_owner, .kind = DFS_LOCK_POSIX,
                          .type = lock->l_type == F_WRLCK ? DFS_LOCK_WRITE
                                                          : DFS_LOCK_READ };
    int rc = range_of(lock, &l.start, &l.end);
    if (rc == 0)
        rc = dfs_lock_test(m->d, ino, &l);
    if (rc < 0) {
        reply_rc(req, rc);
        return;
    }
    if (l.type == DFS_LOCK_NONE) {
        lock->l_type = F_UNLCK;
    } else {
        lock->l_type = l.type == DFS_LOCK_WRITE ? F_WRLCK : F_RDLCK;
        lock->l_whence = SEEK_SET;
        lock->l_start = (off_t)l.start;
        lock->l_len = l.end == UINT64_MAX ? 0 : (off_t)(l.end - l.start + 1);
        lock->l_pid = (pid_t)l.pid;
    }
    fuse_reply_lock(req, lock);
}

void fsmeta_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock, int sleep)
{
    struct fsmeta *m = meta_of(req);
    struct dfs_lock l = { .owner = fi->lock_owner, .kind = DFS_LOCK_POSIX,
                          .pid = (uint32_t)lock->l_pid };
    int rc = range_of(lock, &l.start, &l.end);
    if (rc == 0 && lock->l_type == F_UNLCK) {
        rc = dfs_unlock(m->d, ino, &l);
    } else if (rc == 0) {
        l.type = lock->l_type == F_WRLCK ? DFS_LOCK_WRITE : DFS_LOCK_READ;
        /* noted first: a lock granted after an interrupt still goes at close */
        posix_note(m, ino, l.owner);
        rc = take_lock(req, m, ino, &l, sleep != 0);
    }
    reply_rc(req, rc);
}

void fsmeta_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
    struct fsmeta *m = meta_of(req);
    struct dfs_lock l = { .owner = fi->lock_owner, .kind = DFS_LOCK_FLOCK,
                          .start = 0, .end = UINT64_MAX,
                          .pid = (uint32_t)fuse_req_ctx(req)->pid };
    int rc;
    switch (op & ~LOCK_NB) {
    case LOCK_UN:
        rc = dfs_unlock(m->d, ino, &l);
        break;
    case LOCK_SH:
    case LOCK_EX:
        l.type = (op & ~LOCK_NB) == LOCK_EX ? DFS_LOCK_WRITE : DFS_LOCK_READ;
        uint64_t seen = releases_done(m);
        rc = take_lock(req, m, ino, &l, !(op & LOCK_NB));
        /* bounded: on a busy mount some release always just ended */
        for (int i = 0; i < FSMETA_FLOCK_RETRIES && rc == -EAGAIN &&
                        releasing_wait(m, ino, &seen); i++)
            rc = take_lock(req, m, ino, &l, false);
        break;
    default:
        rc = -EINVAL;
    }
    /* flock(2) reports a conflict as EWOULDBLOCK (== EAGAIN on Linux) */
    reply_rc(req, rc);
}
