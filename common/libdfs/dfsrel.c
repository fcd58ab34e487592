/*
 * dfsrel: the RELEASE of closed handles, sent by a thread of the session
 * in batches (docs/LIBDFS.md, Closing).
 *
 * A RELEASE only lowers the file's open count at the master: whoever
 * closed the handle has nothing to wait for (its data was committed
 * before), and a mount's kernel does not wait for it either.  One RELEASE
 * a close was a Raft commit a close; queued for up to DFS_RELEASE_DELAY_MS
 * and sent DFS_BATCH_MAX at a time on one connection (dfs_call_in), a
 * batch is one.
 *
 * Invariants:
 *  1. A queued release is sent once, by the thread, in the session that
 *     was the client's when it was queued, and only there: an open dies
 *     with its session, and the same inode may be open in the next one.
 *  2. Releases still queued when dfs_releases_free is called are dropped:
 *     the SESSION_CLOSE that follows releases every open of the session
 *     (and an unreachable cluster does not hold dfs_close up for a
 *     timeout per batch).  A release the queue cannot take (out of memory,
 *     no thread) is sent at once by its caller.
 *  3. mu is a leaf lock; the thread sends without it.
 */
#include "dfs_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"

/* How long a release waits for others to share its batch. */
#define DFS_RELEASE_DELAY_MS 2

struct dfs_release {
    uint64_t session;           /* the one that held the open */
    uint64_t ino;
    uint32_t flags;
};

struct dfs_releases {
    struct dfs *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* releases queued, or stopping */
    struct dfs_release *q;
    size_t n, cap;
    bool stopping;
    pthread_t thread;
};

void dfs_release_body(struct wire_writer *b, uint64_t ino, uint32_t flags)
{
    wire_writer_init(b);
    wire_put_u64(b, ino);
    wire_put_u32(b, flags & (DFS_O_READ | DFS_O_WRITE));
}

/* Sends the n releases of batch, all of one session, in that session
 * only (an open dies with its session); a failure is only recorded (the
 * open count it leaves ends with the session), unless it says the session
 * is gone. */
static void release_send(struct dfs *d, const struct dfs_release *batch, size_t n)
{
    struct wire_writer bodies[DFS_BATCH_MAX];
    struct rpc_reply r[DFS_BATCH_MAX];
    for (size_t i = 0; i < n; i++)
        dfs_release_body(&bodies[i], batch[i].ino, batch[i].flags);
    int rc = dfs_call_in(d, batch[0].session, PROTO_RELEASE, true, bodies, n, r);
    for (size_t i = 0; i < n; i++) {
        int st = rc < 0 ? rc : r[i].hdr.status;
        if (st < 0 && st != -EBADF && st != -DFS_ESESSION && st != -ETIMEDOUT)
            dfs_set_error(d, "release of inode %llu: %s",
                          (unsigned long long)batch[i].ino, dfs_strerror(st));
        if (rc == 0)
            rpc_reply_release(&r[i]);
        wire_writer_release(&bodies[i]);
    }
}

static void *release_main(void *arg)
{
    struct dfs_releases *rs = arg;
    struct dfs_release batch[DFS_BATCH_MAX];
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        while (!rs->n && !rs->stopping)
            pthread_cond_wait(&rs->cv, &rs->mu);
        if (rs->stopping)
            break;      /* SESSION_CLOSE, next, releases every open */
        if (rs->n < DFS_BATCH_MAX)
            dfs_cond_wait_ms(&rs->cv, &rs->mu, DFS_RELEASE_DELAY_MS);
        size_t k = 1;
        while (k < rs->n && k < DFS_BATCH_MAX && rs->q[k].session == rs->q[0].session)
            k++;
        memcpy(batch, rs->q, k * sizeof(*batch));
        rs->n -= k;
        memmove(rs->q, rs->q + k, rs->n * sizeof(*rs->q));
        pthread_mutex_unlock(&rs->mu);
        release_send(rs->d, batch, k);
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

struct dfs_releases *dfs_releases_new(struct dfs *d)
{
    struct dfs_releases *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return NULL;
    rs->d = d;
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    if (pthread_create(&rs->thread, NULL, release_main, rs) != 0) {
        pthread_cond_destroy(&rs->cv);
        pthread_mutex_destroy(&rs->mu);
        free(rs);
        return NULL;
    }
    return rs;
}

void dfs_releases_free(struct dfs_releases *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->stopping = true;
    pthread_cond_signal(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    pthread_join(rs->thread, NULL);
    pthread_cond_destroy(&rs->cv);
    pthread_mutex_destroy(&rs->mu);
    free(rs->q);
    free(rs);
}

int dfs_release_later(struct dfs_releases *rs, uint64_t ino, uint32_t flags)
{
    if (!rs)
        return -ENOTSUP;
    int rc = 0;
    uint64_t session = dfs_session_id(rs->d);
    pthread_mutex_lock(&rs->mu);
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? 2 * rs->cap : 64;
        struct dfs_release *q = realloc(rs->q, cap * sizeof(*q));
        if (q) {
            rs->q = q;
            rs->cap = cap;
        }
    }
    if (rs->stopping || rs->n == rs->cap) {
        rc = -ENOMEM;
    } else {
        rs->q[rs->n++] = (struct dfs_release){ .session = session, .ino = ino,
                                              .flags = flags };
        if (rs->n == 1 || rs->n == DFS_BATCH_MAX)
            pthread_cond_signal(&rs->cv);
    }
    pthread_mutex_unlock(&rs->mu);
    return rc;
}
