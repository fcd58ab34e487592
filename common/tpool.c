/*
 * tpool: worker threads, a ready queue, per-key serial queues ("strands"),
 * and a completion queue drained on the loop thread.
 *
 * Owns: the threads, every job from submit until its done callback has
 * returned, the strands, and one caller-owned ev_post (`drain`) that wakes
 * the loop when completions are waiting.
 *
 * A job moves: submit -> ready (or a strand's waiting list, while an earlier
 * job of its key is queued or running) -> a worker runs it -> done list ->
 * the loop thread runs its done callback and frees it.
 *
 * Invariants:
 *  1. A strand exists exactly while some job of its key is in the ready
 *     queue or running; at most one job per key is ever in either, so jobs
 *     of one key run one after another, in submission order.
 *  2. Whenever the done list is non-empty, `drain` is queued on the loop or
 *     is running (workers queue it after each append; ev_post_queue ignores
 *     a second queueing), so every completion is delivered.
 *  3. Workers exit only when `stopping` is set and the ready queue is
 *     empty; a strand's next job is moved to ready by the worker that ran
 *     its predecessor, before that worker looks for more, so stopping never
 *     strands a job.
 *
 * Locks: pool->mu protects the queues, the strands and `stopping`.  Order:
 * pool->mu before the loop's post lock (a worker queues `drain` under
 * pool->mu); the loop thread never holds the post lock while taking mu.
 */
#include "tpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ev.h"

#define TPOOL_STRAND_BUCKETS 256
/* Linux thread names hold 15 characters. */
#define TPOOL_NAME_MAX 16

struct tpool_job {
    tpool_work_fn work;
    tpool_done_fn done;
    void *arg;
    uint64_t key;
    int status;
    struct tpool_job *next;
};

struct tpool_fifo {
    struct tpool_job *head;
    struct tpool_job *tail;
};

struct tpool_strand {
    uint64_t key;
    struct tpool_fifo waiting;    /* later jobs of this key */
    struct tpool_strand *next;    /* hash chain */
};

struct tpool {
    struct ev_loop *loop;
    char name[TPOOL_NAME_MAX];
    size_t pending;               /* loop thread only */
    size_t max_pending;           /* loop thread only */
    struct ev_post drain;

    pthread_mutex_t mu;
    pthread_cond_t cv;            /* ready queue non-empty, or stopping */
    struct tpool_fifo ready;      /* protected by mu */
    struct tpool_fifo done;       /* protected by mu */
    struct tpool_strand *strands[TPOOL_STRAND_BUCKETS]; /* protected by mu */
    bool stopping;                /* protected by mu */

    int nthreads;                 /* started */
    pthread_t threads[];
};

static void fifo_push(struct tpool_fifo *f, struct tpool_job *j)
{
    j->next = NULL;
    if (f->tail)
        f->tail->next = j;
    else
        f->head = j;
    f->tail = j;
}

static struct tpool_job *fifo_pop(struct tpool_fifo *f)
{
    struct tpool_job *j = f->head;
    if (j) {
        f->head = j->next;
        if (!f->head)
            f->tail = NULL;
    }
    return j;
}

static struct tpool_strand **strand_slot(struct tpool *pool, uint64_t key)
{
    /* Fibonacci hashing spreads sequential chunk ids over the buckets. */
    size_t b = (size_t)(key * 0x9E3779B97F4A7C15ull >> 32) % TPOOL_STRAND_BUCKETS;
    struct tpool_strand **pp = &pool->strands[b];
    while (*pp && (*pp)->key != key)
        pp = &(*pp)->next;
    return pp;
}

/* Under mu, after a keyed job ran: its successor becomes ready (inv. 1). */
static void strand_advance(struct tpool *pool, uint64_t key)
{
    struct tpool_strand **pp = strand_slot(pool, key);
    struct tpool_strand *s = *pp;
    struct tpool_job *next = fifo_pop(&s->waiting);
    if (next) {
        fifo_push(&pool->ready, next);
        pthread_cond_signal(&pool->cv);
        return;
    }
    *pp = s->next;
    free(s);
}

static void *tpool_worker(void *p)
{
    struct tpool *pool = p;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->ready.head && !pool->stopping)
            pthread_cond_wait(&pool->cv, &pool->mu);
        struct tpool_job *j = fifo_pop(&pool->ready);
        if (!j)
            break;
        pthread_mutex_unlock(&pool->mu);
        j->status = j->work(j->arg);
        pthread_mutex_lock(&pool->mu);
        if (j->key)
            strand_advance(pool, j->key);
        fifo_push(&pool->done, j);
        (void)ev_post_queue(pool->loop, &pool->drain);   /* inv. 2 */
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* Loop thread: runs the done callbacks of every completed job. */
static void tpool_deliver(void *p)
{
    struct tpool *pool = p;
    pthread_mutex_lock(&pool->mu);
    struct tpool_job *j = pool->done.head;
    pool->done.head = pool->done.tail = NULL;
    pthread_mutex_unlock(&pool->mu);
    while (j) {
        struct tpool_job *next = j->next;
        pool->pending--;
        if (j->done)
            j->done(j->arg, j->status);
        free(j);
        j = next;
    }
}

static void tpool_stop_workers(struct tpool *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
}

static void tpool_destroy(struct tpool *pool)
{
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

struct tpool *tpool_new(struct ev_loop *loop, int nthreads, const char *name)
{
    int saved;
    if (nthreads < 1 || !loop) {
        errno = EINVAL;
        return NULL;
    }
    struct tpool *pool = calloc(1, sizeof(*pool) + (size_t)nthreads * sizeof(pthread_t));
    if (!pool)
        return NULL;
    pool->loop = loop;
    pool->max_pending = TPOOL_DEFAULT_MAX_PENDING;
    snprintf(pool->name, sizeof(pool->name), "%s", name ? name : "tpool");
    ev_post_init(&pool->drain, tpool_deliver, pool);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    for (; pool->nthreads < nthreads; pool->nthreads++) {
        int rc = pthread_create(&pool->threads[pool->nthreads], NULL,
                                tpool_worker, pool);
        if (rc != 0) {
            errno = rc;
            goto err_after_threads;
        }
        char tname[TPOOL_NAME_MAX];
        snprintf(tname, sizeof(tname), "%.10s-%d", pool->name, pool->nthreads);
        pthread_setname_np(pool->threads[pool->nthreads], tname);
    }
    return pool;

err_after_threads:
    saved = errno;
    tpool_stop_workers(pool);
    tpool_destroy(pool);
    errno = saved;
    return NULL;
}

/* Under mu: queues j behind its key's strand, creating the strand if none. */
static int tpool_enqueue(struct tpool *pool, struct tpool_job *j)
{
    if (!j->key) {
        fifo_push(&pool->ready, j);
        return 0;
    }
    struct tpool_strand **pp = strand_slot(pool, j->key);
    if (*pp) {
        fifo_push(&(*pp)->waiting, j);
        return 0;
    }
    struct tpool_strand *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->key = j->key;
    *pp = s;
    fifo_push(&pool->ready, j);
    return 0;
}

int tpool_submit_keyed(struct tpool *pool, uint64_t key, tpool_work_fn work,
                       tpool_done_fn done, void *arg)
{
    if (!work)
        return -EINVAL;
    if (pool->pending >= pool->max_pending)
        return -EAGAIN;
    struct tpool_job *j = malloc(sizeof(*j));
    if (!j)
        return -ENOMEM;
    *j = (struct tpool_job){ .work = work, .done = done, .arg = arg, .key = key };

    pthread_mutex_lock(&pool->mu);
    int rc = pool->stopping ? -ESHUTDOWN : tpool_enqueue(pool, j);
    if (rc == 0)
        pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    if (rc < 0) {
        free(j);
        return rc;
    }
    pool->pending++;
    return 0;
}

int tpool_submit(struct tpool *pool, tpool_work_fn work, tpool_done_fn done,
                 void *arg)
{
    return tpool_submit_keyed(pool, 0, work, done, arg);
}

size_t tpool_pending(const struct tpool *pool)
{
    return pool->pending;
}

void tpool_set_max_pending(struct tpool *pool, size_t max)
{
    pool->max_pending = max ? max : 1;
}

void tpool_free(struct tpool *pool)
{
    if (!pool)
        return;
    tpool_stop_workers(pool);
    /* No worker is left to queue `drain` again; deliver here instead. */
    ev_post_cancel(pool->loop, &pool->drain);
    tpool_deliver(pool);
    tpool_destroy(pool);
}
