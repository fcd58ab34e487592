/*
 * ev: epoll event loop, timer heap, and the cross-thread post queue.
 *
 * Owns: the epoll fd, an eventfd that wakes the loop for posts, the fd
 * table (indexed by fd number), the timer slots and the heap over them, and
 * the post queue.
 *
 * Invariants:
 *  1. An fd is in epoll exactly when it is registered with a non-zero mask
 *     (a zero mask is removed from epoll, so a hung-up fd nobody watches
 *     cannot make epoll_wait spin).
 *  2. Every epoll registration carries (fd, generation); ev_fd_del bumps
 *     the slot's generation, so an event fetched before the delete is
 *     dropped at dispatch even if the fd number was registered again.
 *  3. A timer id is (slot generation << 32 | slot index + 1); freeing a
 *     slot bumps its generation, so a stale id never reaches a new timer.
 *     Slots are addressed by index only, because callbacks may grow (and
 *     move) the slot array.
 *  4. The heap orders pending timers by (when, seq); seq grows on every
 *     arming, so equal deadlines fire in arming order.  One iteration fires
 *     only timers armed before it began: a callback re-arming with delay 0
 *     waits for the next iteration instead of starving the loop.
 *  5. Timer slot states: FREE -> PENDING (ev_timer_add) -> FIRING (popped,
 *     callback running) -> PENDING (re-armed) or FREE; ev_timer_cancel moves
 *     PENDING -> FREE and FIRING -> CANCELLED (freed once the callback
 *     returns).
 *  6. Posts are popped one at a time under post_mu, and at most as many as
 *     were queued when the iteration began; so ev_post_cancel can still
 *     reach every post not yet started, and posts queued by posts wait for
 *     the next iteration.
 */
#include "ev.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define EV_MAX_EVENTS 256
/* epoll data for the wake-up eventfd; fd entries never use it. */
#define EV_WAKE_TAG UINT64_MAX

struct ev_fd {
    ev_fd_fn fn;      /* NULL when the fd is not registered */
    void *arg;
    int mask;
    uint32_t gen;
};

enum ev_timer_state { TIMER_FREE, TIMER_PENDING, TIMER_FIRING, TIMER_CANCELLED };

struct ev_timer {
    uint64_t when;
    uint64_t seq;
    ev_timer_fn fn;
    void *arg;
    uint32_t gen;
    uint32_t heap_idx;    /* PENDING: position in heap; FREE: next free slot */
    enum ev_timer_state state;
};

struct ev_loop {
    int epfd;
    int wakefd;
    bool stop;
    uint64_t now;

    struct ev_fd *fds;
    int nfds;             /* fds[0 .. nfds-1] allocated */

    struct ev_timer *timers;
    uint32_t ntimers;     /* slots allocated */
    uint32_t free_timer;  /* head of the free slot list, UINT32_MAX if none */
    uint32_t *heap;       /* slot indices; capacity ntimers */
    uint32_t heap_len;
    uint64_t timer_seq;

    pthread_mutex_t post_mu;
    struct ev_post *post_head;   /* protected by post_mu */
    struct ev_post *post_tail;   /* protected by post_mu */
    size_t post_len;             /* protected by post_mu */
};

uint64_t ev_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ev_clock_ms(void)
{
    return ev_clock_us() / 1000u;
}

struct ev_loop *ev_loop_new(void)
{
    int saved;
    struct ev_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->free_timer = UINT32_MAX;
    loop->now = ev_clock_ms();
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto err_after_alloc;
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakefd < 0)
        goto err_after_epoll;
    struct epoll_event ee = { .events = EPOLLIN, .data.u64 = EV_WAKE_TAG };
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ee) < 0)
        goto err_after_eventfd;
    int rc = pthread_mutex_init(&loop->post_mu, NULL);
    if (rc != 0) {
        errno = rc;
        goto err_after_eventfd;
    }
    return loop;

err_after_eventfd:
    close(loop->wakefd);
err_after_epoll:
    close(loop->epfd);
err_after_alloc:
    saved = errno;
    free(loop);
    errno = saved;
    return NULL;
}

static struct ev_post *ev_post_pop(struct ev_loop *loop)
{
    pthread_mutex_lock(&loop->post_mu);
    struct ev_post *p = loop->post_head;
    if (p) {
        loop->post_head = p->next;
        if (!loop->post_head)
            loop->post_tail = NULL;
        loop->post_len--;
        p->queued = false;
        p->next = NULL;
    }
    pthread_mutex_unlock(&loop->post_mu);
    return p;
}

static void ev_post_run(struct ev_post *p)
{
    ev_post_fn fn = p->fn;
    void *arg = p->arg;
    if (p->owned)
        free(p);
    fn(arg);
}

void ev_loop_free(struct ev_loop *loop)
{
    if (!loop)
        return;
    struct ev_post *p;
    while ((p = ev_post_pop(loop)) != NULL)
        ev_post_run(p);
    pthread_mutex_destroy(&loop->post_mu);
    close(loop->wakefd);
    close(loop->epfd);
    free(loop->fds);
    free(loop->timers);
    free(loop->heap);
    free(loop);
}

/* ---- fds ---------------------------------------------------------------- */

static int ev_fd_reserve(struct ev_loop *loop, int fd)
{
    if (fd < loop->nfds)
        return 0;
    int n = loop->nfds ? loop->nfds : 64;
    while (n <= fd)
        n *= 2;
    struct ev_fd *fds = realloc(loop->fds, (size_t)n * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    memset(fds + loop->nfds, 0, (size_t)(n - loop->nfds) * sizeof(*fds));
    loop->fds = fds;
    loop->nfds = n;
    return 0;
}

static struct ev_fd *ev_fd_get(struct ev_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->nfds || !loop->fds[fd].fn)
        return NULL;
    return &loop->fds[fd];
}

/* Moves fd's epoll registration from mask `from` to mask `to` (invariant 1). */
static int ev_epoll_set(struct ev_loop *loop, int fd, struct ev_fd *e, int from,
                        int to)
{
    if (from == to)
        return 0;
    struct epoll_event ee = {
        .events = ((to & EV_READ) ? EPOLLIN : 0) | ((to & EV_WRITE) ? EPOLLOUT : 0),
        .data.u64 = (uint64_t)e->gen << 32 | (uint32_t)fd,
    };
    int op = !from ? EPOLL_CTL_ADD : !to ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    return epoll_ctl(loop->epfd, op, fd, &ee) < 0 ? -errno : 0;
}

int ev_fd_add(struct ev_loop *loop, int fd, int mask, ev_fd_fn fn, void *arg)
{
    if (fd < 0)
        return -EBADF;
    if ((mask & ~(EV_READ | EV_WRITE)) || !fn)
        return -EINVAL;
    if (ev_fd_get(loop, fd))
        return -EEXIST;
    int rc = ev_fd_reserve(loop, fd);
    if (rc < 0)
        return rc;
    struct ev_fd *e = &loop->fds[fd];
    rc = ev_epoll_set(loop, fd, e, 0, mask);
    if (rc < 0)
        return rc;
    e->fn = fn;
    e->arg = arg;
    e->mask = mask;
    return 0;
}

int ev_fd_mod(struct ev_loop *loop, int fd, int mask)
{
    if (mask & ~(EV_READ | EV_WRITE))
        return -EINVAL;
    struct ev_fd *e = ev_fd_get(loop, fd);
    if (!e)
        return -ENOENT;
    int rc = ev_epoll_set(loop, fd, e, e->mask, mask);
    if (rc < 0)
        return rc;
    e->mask = mask;
    return 0;
}

int ev_fd_del(struct ev_loop *loop, int fd)
{
    struct ev_fd *e = ev_fd_get(loop, fd);
    if (!e)
        return -ENOENT;
    /* An fd closed before its delete has already left epoll: not an error. */
    (void)ev_epoll_set(loop, fd, e, e->mask, 0);
    e->fn = NULL;
    e->arg = NULL;
    e->mask = 0;
    e->gen++;
    return 0;
}

static int ev_dispatch_fd(struct ev_loop *loop, const struct epoll_event *ee)
{
    int fd = (int)(uint32_t)ee->data.u64;
    uint32_t gen = (uint32_t)(ee->data.u64 >> 32);
    struct ev_fd *e = ev_fd_get(loop, fd);
    if (!e || e->gen != gen)
        return 0;
    int events = 0;
    if (ee->events & EPOLLIN)
        events |= EV_READ;
    if (ee->events & EPOLLOUT)
        events |= EV_WRITE;
    if (ee->events & (EPOLLERR | EPOLLHUP))
        events |= e->mask;
    events &= e->mask;
    if (!events)
        return 0;
    e->fn(loop, fd, events, e->arg);
    return 1;
}

/* ---- timers ------------------------------------------------------------- */

static bool ev_timer_before(const struct ev_loop *loop, uint32_t a, uint32_t b)
{
    const struct ev_timer *ta = &loop->timers[a], *tb = &loop->timers[b];
    return ta->when < tb->when || (ta->when == tb->when && ta->seq < tb->seq);
}

static void ev_heap_put(struct ev_loop *loop, uint32_t pos, uint32_t slot)
{
    loop->heap[pos] = slot;
    loop->timers[slot].heap_idx = pos;
}

static void ev_heap_up(struct ev_loop *loop, uint32_t pos)
{
    uint32_t slot = loop->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!ev_timer_before(loop, slot, loop->heap[parent]))
            break;
        ev_heap_put(loop, pos, loop->heap[parent]);
        pos = parent;
    }
    ev_heap_put(loop, pos, slot);
}

static void ev_heap_down(struct ev_loop *loop, uint32_t pos)
{
    uint32_t slot = loop->heap[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len &&
            ev_timer_before(loop, loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!ev_timer_before(loop, loop->heap[child], slot))
            break;
        ev_heap_put(loop, pos, loop->heap[child]);
        pos = child;
    }
    ev_heap_put(loop, pos, slot);
}

static void ev_heap_remove(struct ev_loop *loop, uint32_t pos)
{
    uint32_t last = loop->heap[--loop->heap_len];
    if (pos == loop->heap_len)
        return;
    ev_heap_put(loop, pos, last);
    ev_heap_up(loop, pos);
    ev_heap_down(loop, loop->timers[last].heap_idx);
}

static void ev_timer_arm(struct ev_loop *loop, uint32_t slot, uint64_t delay_ms)
{
    struct ev_timer *t = &loop->timers[slot];
    t->when = loop->now + delay_ms;
    t->seq = loop->timer_seq++;
    t->state = TIMER_PENDING;
    loop->heap_len++;
    ev_heap_put(loop, loop->heap_len - 1, slot);
    ev_heap_up(loop, loop->heap_len - 1);
}

static void ev_timer_release(struct ev_loop *loop, uint32_t slot)
{
    struct ev_timer *t = &loop->timers[slot];
    t->state = TIMER_FREE;
    t->fn = NULL;
    t->arg = NULL;
    if (++t->gen == 0)
        t->gen = 1;
    t->heap_idx = loop->free_timer;
    loop->free_timer = slot;
}

static int ev_timer_grow(struct ev_loop *loop)
{
    uint32_t n = loop->ntimers ? loop->ntimers * 2 : 16;
    if (n <= loop->ntimers || n > UINT32_MAX / 2)
        return -ENOMEM;
    /* Grow the heap first: a failure then leaves the slot array untouched. */
    uint32_t *heap = realloc(loop->heap, (size_t)n * sizeof(*heap));
    if (!heap)
        return -ENOMEM;
    loop->heap = heap;
    struct ev_timer *timers = realloc(loop->timers, (size_t)n * sizeof(*timers));
    if (!timers)
        return -ENOMEM;
    loop->timers = timers;
    for (uint32_t i = n; i-- > loop->ntimers;) {
        timers[i] = (struct ev_timer){ .gen = 1, .heap_idx = loop->free_timer };
        loop->free_timer = i;
    }
    loop->ntimers = n;
    return 0;
}

uint64_t ev_timer_add(struct ev_loop *loop, uint64_t delay_ms, ev_timer_fn fn,
                      void *arg)
{
    if (!fn)
        return 0;
    if (loop->free_timer == UINT32_MAX && ev_timer_grow(loop) < 0)
        return 0;
    uint32_t slot = loop->free_timer;
    struct ev_timer *t = &loop->timers[slot];
    loop->free_timer = t->heap_idx;
    t->fn = fn;
    t->arg = arg;
    if (delay_ms > UINT64_MAX - loop->now)
        delay_ms = UINT64_MAX - loop->now;
    ev_timer_arm(loop, slot, delay_ms);
    return (uint64_t)t->gen << 32 | (slot + 1);
}

int ev_timer_cancel(struct ev_loop *loop, uint64_t id)
{
    uint32_t slot = (uint32_t)id - 1;
    uint32_t gen = (uint32_t)(id >> 32);
    if ((uint32_t)id == 0 || slot >= loop->ntimers)
        return -ENOENT;
    struct ev_timer *t = &loop->timers[slot];
    if (t->gen != gen)
        return -ENOENT;
    switch (t->state) {
    case TIMER_PENDING:
        ev_heap_remove(loop, t->heap_idx);
        ev_timer_release(loop, slot);
        return 0;
    case TIMER_FIRING:
        t->state = TIMER_CANCELLED;
        return 0;
    default:
        return -ENOENT;
    }
}

static int ev_run_timers(struct ev_loop *loop)
{
    uint64_t seq_limit = loop->timer_seq;   /* invariant 4 */
    int ran = 0;
    while (loop->heap_len > 0) {
        uint32_t slot = loop->heap[0];
        struct ev_timer *t = &loop->timers[slot];
        if (t->when > loop->now || t->seq >= seq_limit)
            break;
        ev_heap_remove(loop, 0);
        t->state = TIMER_FIRING;
        int64_t again = t->fn(loop, t->arg);
        ran++;
        t = &loop->timers[slot];   /* the callback may have moved the array */
        if (t->state == TIMER_FIRING && again >= 0)
            ev_timer_arm(loop, slot, (uint64_t)again);
        else
            ev_timer_release(loop, slot);
    }
    return ran;
}

/* epoll_wait timeout: the caller's bound, shortened by the next timer. */
static int ev_wait_ms(const struct ev_loop *loop, int timeout_ms)
{
    if (loop->heap_len == 0)
        return timeout_ms;
    uint64_t when = loop->timers[loop->heap[0]].when;
    uint64_t d = when > loop->now ? when - loop->now : 0;
    if (d > INT_MAX)
        d = INT_MAX;
    if (timeout_ms < 0 || (uint64_t)timeout_ms > d)
        return (int)d;
    return timeout_ms;
}

uint64_t ev_now_ms(const struct ev_loop *loop)
{
    return loop->now;
}

/* ---- posts -------------------------------------------------------------- */

static void ev_wake(struct ev_loop *loop)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the loop will wake. */
    while (write(loop->wakefd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void ev_post_init(struct ev_post *p, ev_post_fn fn, void *arg)
{
    memset(p, 0, sizeof(*p));
    p->fn = fn;
    p->arg = arg;
}

int ev_post_queue(struct ev_loop *loop, struct ev_post *p)
{
    pthread_mutex_lock(&loop->post_mu);
    if (p->queued) {
        pthread_mutex_unlock(&loop->post_mu);
        return -EALREADY;
    }
    bool was_empty = loop->post_head == NULL;
    p->queued = true;
    p->next = NULL;
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    loop->post_len++;
    pthread_mutex_unlock(&loop->post_mu);
    /*
     * Only the post that makes the queue non-empty needs to wake the loop:
     * the loop reads the eventfd before it pops, so a post it misses was
     * queued after a pop that emptied the queue, and wakes it again (or is
     * left by ev_run_posts, which then wakes it itself).
     */
    if (was_empty)
        ev_wake(loop);
    return 0;
}

int ev_post(struct ev_loop *loop, ev_post_fn fn, void *arg)
{
    struct ev_post *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    ev_post_init(p, fn, arg);
    p->owned = true;
    return ev_post_queue(loop, p);
}

bool ev_post_cancel(struct ev_loop *loop, struct ev_post *p)
{
    bool found = false;
    pthread_mutex_lock(&loop->post_mu);
    struct ev_post *prev = NULL;
    for (struct ev_post *q = loop->post_head; q; prev = q, q = q->next) {
        if (q != p)
            continue;
        if (prev)
            prev->next = q->next;
        else
            loop->post_head = q->next;
        if (loop->post_tail == q)
            loop->post_tail = prev;
        loop->post_len--;
        q->queued = false;
        q->next = NULL;
        found = true;
        break;
    }
    pthread_mutex_unlock(&loop->post_mu);
    return found;
}

static int ev_run_posts(struct ev_loop *loop)
{
    uint64_t count;
    while (read(loop->wakefd, &count, sizeof(count)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&loop->post_mu);
    size_t n = loop->post_len;    /* invariant 6 */
    pthread_mutex_unlock(&loop->post_mu);
    int ran = 0;
    for (; n > 0; n--) {
        struct ev_post *p = ev_post_pop(loop);
        if (!p)
            break;
        ev_post_run(p);
        ran++;
    }
    pthread_mutex_lock(&loop->post_mu);
    bool left = loop->post_head != NULL;
    pthread_mutex_unlock(&loop->post_mu);
    if (left)
        ev_wake(loop);   /* posts queued behind the batch found a non-empty queue */
    return ran;
}

/* ---- the loop ----------------------------------------------------------- */

int ev_run_once(struct ev_loop *loop, int timeout_ms)
{
    struct epoll_event events[EV_MAX_EVENTS];
    loop->now = ev_clock_ms();
    int n = epoll_wait(loop->epfd, events, EV_MAX_EVENTS,
                       ev_wait_ms(loop, timeout_ms));
    if (n < 0 && errno != EINTR)
        return -errno;
    loop->now = ev_clock_ms();
    int ran = 0;
    bool woken = false;
    for (int i = 0; i < n; i++) {
        if (events[i].data.u64 == EV_WAKE_TAG)
            woken = true;
        else
            ran += ev_dispatch_fd(loop, &events[i]);
    }
    ran += ev_run_timers(loop);
    if (woken)
        ran += ev_run_posts(loop);
    return ran;
}

int ev_run(struct ev_loop *loop)
{
    loop->stop = false;
    while (!loop->stop) {
        int rc = ev_run_once(loop, -1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void ev_stop(struct ev_loop *loop)
{
    loop->stop = true;
}
