/*
 * ev: a single-threaded epoll event loop with timers and cross-thread posts
 * (the Redis `ae` shape).
 *
 * Threads: every function here must be called on the loop thread (the one
 * running ev_run / ev_run_once), except ev_post and ev_post_queue, which any
 * thread may call.  All callbacks run on the loop thread.
 *
 * Errors: 0 or a negative errno, as everywhere in dfs.
 *
 * Re-entrancy: a callback may add, modify or delete any fd or timer,
 * including its own: an fd deleted (or a timer cancelled) while an iteration
 * is dispatching is never called again afterwards, even if its number is
 * reused by a new registration in the same iteration.  A callback must not
 * call ev_loop_free, ev_run or ev_run_once.
 */
#ifndef DFS_EV_H
#define DFS_EV_H

#include <stdbool.h>
#include <stdint.h>

struct ev_loop;

/* Readiness bits for ev_fd_add / ev_fd_mod and the fd callback. */
enum { EV_READ = 1, EV_WRITE = 2 };

/*
 * Called when fd is ready; events has the ready bits among those asked for.
 * An error or hang-up on fd is reported as the asked-for bits, so the next
 * read(2)/write(2) (or SO_ERROR) tells what happened.
 */
typedef void (*ev_fd_fn)(struct ev_loop *loop, int fd, int events, void *arg);

/*
 * A timer callback returns EV_TIMER_STOP to end the timer (its id becomes
 * invalid), or a delay in ms >= 0 to fire again that much later under the
 * same id.
 */
typedef int64_t (*ev_timer_fn)(struct ev_loop *loop, void *arg);
#define EV_TIMER_STOP ((int64_t)-1)

typedef void (*ev_post_fn)(void *arg);

/*
 * A unit of work queued to the loop thread.  Caller-owned form for posters
 * that must not fail (no allocation): fill it with ev_post_init, queue it
 * with ev_post_queue; it may be queued again once its function has started.
 * The fields are private to ev.
 */
struct ev_post {
    ev_post_fn fn;
    void *arg;
    struct ev_post *next;   /* protected by the loop's post lock */
    bool queued;            /* protected by the loop's post lock */
    bool owned;             /* allocated by ev_post(), freed before fn runs */
};

/* Returns a new loop, or NULL with errno set. */
struct ev_loop *ev_loop_new(void);

/*
 * Frees the loop.  Posts still queued are run first (so the frees they
 * carry happen); pending timers are dropped without running; registered fds
 * are forgotten, not closed (their owners close them).  NULL is a no-op.
 */
void ev_loop_free(struct ev_loop *loop);

/*
 * Watches fd for mask (EV_READ|EV_WRITE, or 0 to register without
 * watching).  arg is borrowed and handed to fn.  -EEXIST if fd is already
 * registered, -EINVAL for a bad mask, -EBADF for fd < 0.  Level-triggered.
 */
int ev_fd_add(struct ev_loop *loop, int fd, int mask, ev_fd_fn fn, void *arg);

/* Changes what fd is watched for; -ENOENT if fd is not registered. */
int ev_fd_mod(struct ev_loop *loop, int fd, int mask);

/* Forgets fd (call before close(fd)); -ENOENT if not registered. */
int ev_fd_del(struct ev_loop *loop, int fd);

/*
 * A one-shot timer firing delay_ms after ev_now_ms(loop) (re-armed if fn
 * returns a delay).  Timers due at the same time fire in the order they
 * were armed.  Returns its id (never 0), or 0 when out of memory.
 */
uint64_t ev_timer_add(struct ev_loop *loop, uint64_t delay_ms, ev_timer_fn fn,
                      void *arg);

/*
 * Cancels a pending timer, or one whose callback is running (it will not be
 * re-armed).  -ENOENT if id is not a live timer (already fired, cancelled,
 * or 0).
 */
int ev_timer_cancel(struct ev_loop *loop, uint64_t id);

/* CLOCK_MONOTONIC in ms, read once per loop iteration (callbacks share it). */
uint64_t ev_now_ms(const struct ev_loop *loop);
/* CLOCK_MONOTONIC in ms, read now (any thread, no loop needed). */
uint64_t ev_clock_ms(void);
/* The same in µs. */
uint64_t ev_clock_us(void);

/*
 * One iteration: waits at most timeout_ms (-1: until an fd, timer or post
 * is ready; 0: poll), dispatches ready fds, due timers, and queued posts.
 * Returns the number of callbacks run, or a negative errno from epoll.
 */
int ev_run_once(struct ev_loop *loop, int timeout_ms);

/* Iterates until ev_stop is called; returns 0 or a negative errno. */
int ev_run(struct ev_loop *loop);

/*
 * Makes ev_run return after the current iteration.  Loop thread only;
 * another thread stops the loop by posting a function that calls this.
 */
void ev_stop(struct ev_loop *loop);

/*
 * Thread-safe: queues fn(arg) to run on the loop thread, in post order per
 * posting thread.  arg is handed over as is.  0, or -ENOMEM.
 */
int ev_post(struct ev_loop *loop, ev_post_fn fn, void *arg);

void ev_post_init(struct ev_post *p, ev_post_fn fn, void *arg);

/*
 * Thread-safe: queues a caller-owned post, which must stay valid until its
 * function has started or ev_post_cancel removed it.  0, or -EALREADY if it
 * is already queued (it will run once).
 */
int ev_post_queue(struct ev_loop *loop, struct ev_post *p);

/* Loop thread: unqueues p if queued; returns true if it was. */
bool ev_post_cancel(struct ev_loop *loop, struct ev_post *p);

#endif
