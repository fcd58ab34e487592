/*
 * tpool: a small pool of worker threads for blocking work (disk I/O,
 * fsync) whose results come back to an event loop.
 *
 * A job is (work, done, arg): work(arg) runs on a worker thread and returns
 * a status (0 or a negative errno); done(arg, status) then runs on the loop
 * thread, delivered through ev_post.  Jobs submitted with the same non-zero
 * key run one at a time, in submission order (e.g. key = chunk id, so writes
 * to one chunk file stay ordered); other jobs run concurrently.  done
 * callbacks run in completion order (submission order with one worker).
 *
 * Threads: tpool_new, tpool_submit*, tpool_pending, tpool_set_max_pending and
 * tpool_free are called on the loop thread.  work must not touch the loop.
 *
 * The queue is bounded: a submit beyond max_pending jobs (submitted, done
 * not yet run) fails with -EAGAIN, so a flood of requests turns into
 * back-pressure for the caller instead of unbounded memory.
 */
#ifndef DFS_TPOOL_H
#define DFS_TPOOL_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct tpool;

typedef int (*tpool_work_fn)(void *arg);
typedef void (*tpool_done_fn)(void *arg, int status);

#define TPOOL_DEFAULT_MAX_PENDING 4096

/*
 * Starts nthreads (>= 1) workers named "<name>-<i>" (name is copied,
 * truncated to what the kernel keeps).  loop is borrowed and must outlive
 * the pool.  Returns NULL with errno set on failure.
 */
struct tpool *tpool_new(struct ev_loop *loop, int nthreads, const char *name);

/*
 * Queues a job.  arg is borrowed by the pool from submit until done has
 * returned (the caller owns it; done is the usual place to free it).  done
 * may be NULL.  Returns 0, -EAGAIN over max_pending, -ENOMEM, or -ESHUTDOWN
 * while tpool_free runs (from a done callback).
 */
int tpool_submit(struct tpool *pool, tpool_work_fn work, tpool_done_fn done,
                 void *arg);

/* As tpool_submit; jobs sharing a non-zero key run serially, in order. */
int tpool_submit_keyed(struct tpool *pool, uint64_t key, tpool_work_fn work,
                       tpool_done_fn done, void *arg);

/* Jobs submitted whose done has not run yet. */
size_t tpool_pending(const struct tpool *pool);

/* Sets the submit bound (>= 1). */
void tpool_set_max_pending(struct tpool *pool, size_t max);

/*
 * Runs every queued job to completion, joins the workers, runs the done
 * callbacks not yet delivered (inside this call), and frees the pool.
 * Must not be called from a done callback.  NULL is a no-op.
 */
void tpool_free(struct tpool *pool);

#endif
