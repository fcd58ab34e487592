/* Tests of ev: fds, timers (order, cancel, re-arm, a model test), posts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/ev.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Hang guard for the loops below; passing never depends on it. */
#define HANG_GUARD_MS 60000

/* Runs the loop until *flag. */
static void run_until_flag(struct ev_loop *loop, const bool *flag)
{
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (!*flag && mono_ms() < give_up)
        assert_true(ev_run_once(loop, 100) >= 0);
    assert_true(*flag);
}

static uint64_t seed_from_env(void)
{
    const char *s = getenv("DFS_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    printf("test_ev: seed %llu (replay with DFS_TEST_SEED=%llu)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- fds ---------------------------------------------------------------- */

struct fd_probe {
    int calls;
    int events;
    int other_fd;          /* deleted and closed by the first callback */
    struct ev_loop *loop;
};

static void probe_cb(struct ev_loop *loop, int fd, int events, void *arg)
{
    struct fd_probe *p = arg;
    (void)loop;
    (void)fd;
    p->calls++;
    p->events = events;
}

static void test_fd_errors_and_read(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    assert_non_null(loop);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    struct fd_probe p = { 0 };

    assert_int_equal(ev_fd_add(loop, -1, EV_READ, probe_cb, &p), -EBADF);
    assert_int_equal(ev_fd_add(loop, pfd[0], 4, probe_cb, &p), -EINVAL);
    assert_int_equal(ev_fd_add(loop, pfd[0], EV_READ, NULL, &p), -EINVAL);
    assert_int_equal(ev_fd_mod(loop, pfd[0], EV_READ), -ENOENT);
    assert_int_equal(ev_fd_del(loop, pfd[0]), -ENOENT);
    assert_int_equal(ev_fd_add(loop, pfd[0], EV_READ, probe_cb, &p), 0);
    assert_int_equal(ev_fd_add(loop, pfd[0], EV_READ, probe_cb, &p), -EEXIST);

    assert_int_equal(ev_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 0);
    assert_int_equal(write(pfd[1], "x", 1), 1);
    assert_int_equal(ev_run_once(loop, 1000), 1);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.events, EV_READ);

    /* Watching nothing: the readable pipe is not reported. */
    assert_int_equal(ev_fd_mod(loop, pfd[0], 0), 0);
    assert_int_equal(ev_run_once(loop, 0), 0);
    assert_int_equal(ev_fd_mod(loop, pfd[0], EV_READ), 0);
    assert_int_equal(ev_run_once(loop, 0), 1);
    assert_int_equal(p.calls, 2);

    assert_int_equal(ev_fd_del(loop, pfd[0]), 0);
    assert_int_equal(ev_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 2);
    close(pfd[0]);
    close(pfd[1]);
    ev_loop_free(loop);
}

static void test_fd_write_and_hangup_unwatched(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct fd_probe p = { 0 };
    assert_int_equal(ev_fd_add(loop, sv[0], EV_WRITE, probe_cb, &p), 0);
    assert_int_equal(ev_run_once(loop, 1000), 1);
    assert_int_equal(p.events, EV_WRITE);

    /* A hung-up fd registered with mask 0 must not wake the loop. */
    close(sv[1]);
    assert_int_equal(ev_fd_mod(loop, sv[0], 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ev_run_once(loop, 0), 0);
    assert_int_equal(p.calls, 1);
    /* Watching for read again reports the hang-up as readable. */
    assert_int_equal(ev_fd_mod(loop, sv[0], EV_READ), 0);
    assert_int_equal(ev_run_once(loop, 1000), 1);
    assert_int_equal(p.events, EV_READ);
    char c;
    assert_int_equal(read(sv[0], &c, 1), 0);

    ev_fd_del(loop, sv[0]);
    close(sv[0]);
    ev_loop_free(loop);
}

/* Both pipes are readable in one iteration; the first callback deletes the
 * other fd, closes it, and registers a new pipe that reuses its number. */
struct del_ctx {
    struct ev_loop *loop;
    int rd[2];
    int wr[2];
    int calls;
    int fresh_calls;
    int fresh_pipe[2];
};

static void fresh_cb(struct ev_loop *loop, int fd, int events, void *arg)
{
    struct del_ctx *d = arg;
    (void)loop;
    (void)fd;
    (void)events;
    d->fresh_calls++;
}

static void deleter_cb(struct ev_loop *loop, int fd, int events, void *arg)
{
    struct del_ctx *d = arg;
    (void)events;
    d->calls++;
    int other = fd == d->rd[0] ? 1 : 0;
    int victim = d->rd[other];
    assert_int_equal(ev_fd_del(loop, victim), 0);
    close(victim);
    assert_int_equal(pipe(d->fresh_pipe), 0);
    /* The lowest free number is the one just closed. */
    assert_int_equal(d->fresh_pipe[0], victim);
    assert_int_equal(ev_fd_add(loop, d->fresh_pipe[0], EV_READ, fresh_cb, d), 0);
    d->rd[other] = -1;
}

static void test_fd_delete_from_callback(void **state)
{
    (void)state;
    struct del_ctx d = { .loop = ev_loop_new() };
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    d.rd[0] = a[0];
    d.rd[1] = b[0];
    assert_int_equal(ev_fd_add(d.loop, a[0], EV_READ, deleter_cb, &d), 0);
    assert_int_equal(ev_fd_add(d.loop, b[0], EV_READ, deleter_cb, &d), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);

    assert_int_equal(ev_run_once(d.loop, 1000), 1);
    assert_int_equal(d.calls, 1);
    /* The stale event for the deleted number did not reach the new pipe. */
    assert_int_equal(d.fresh_calls, 0);

    int live = d.rd[0] >= 0 ? d.rd[0] : d.rd[1];
    ev_fd_del(d.loop, live);
    ev_fd_del(d.loop, d.fresh_pipe[0]);
    close(live);
    close(d.fresh_pipe[0]);
    close(d.fresh_pipe[1]);
    close(a[1]);
    close(b[1]);
    ev_loop_free(d.loop);
}

static void test_fd_table_grows(void **state)
{
    (void)state;
    enum { N = 200 };
    struct ev_loop *loop = ev_loop_new();
    int fds[N][2];
    struct fd_probe p = { 0 };
    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        assert_int_equal(ev_fd_add(loop, fds[i][0], EV_READ, probe_cb, &p), 0);
        assert_int_equal(write(fds[i][1], "x", 1), 1);
    }
    int total = 0;
    for (int i = 0; i < 10 && total < N; i++) {
        int rc = ev_run_once(loop, 1000);
        assert_true(rc >= 0);
        total += rc;
        if (total >= N)
            break;
    }
    /* Level-triggered and unread: each fd reports once per iteration. */
    assert_int_equal(total, N);
    for (int i = 0; i < N; i++) {
        ev_fd_del(loop, fds[i][0]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    ev_loop_free(loop);
}

/* ---- timers ------------------------------------------------------------- */

struct tlog {
    int order[64];
    int n;
    struct ev_loop *loop;
    uint64_t ids[64];
    int64_t ret[64];       /* what timer i's callback returns */
    int cancel_target[64]; /* timer i cancels this one when it fires, or -1 */
    int cancel_rc[64];
};

struct tref {
    struct tlog *log;
    int idx;
};

static int64_t tlog_cb(struct ev_loop *loop, void *arg)
{
    struct tref *r = arg;
    struct tlog *l = r->log;
    l->order[l->n++] = r->idx;
    int t = l->cancel_target[r->idx];
    if (t >= 0)
        l->cancel_rc[r->idx] = ev_timer_cancel(loop, l->ids[t]);
    return l->ret[r->idx];
}

static void tlog_init(struct tlog *l, struct tref *refs, int n)
{
    memset(l, 0, sizeof(*l));
    l->loop = ev_loop_new();
    for (int i = 0; i < n; i++) {
        refs[i] = (struct tref){ l, i };
        l->ret[i] = EV_TIMER_STOP;
        l->cancel_target[i] = -1;
    }
}

static void run_until_fired(struct tlog *l, int n)
{
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (l->n < n && mono_ms() < give_up)
        assert_true(ev_run_once(l->loop, 100) >= 0);
    assert_int_equal(l->n, n);
}

static void test_timer_order(void **state)
{
    (void)state;
    static const uint64_t delays[] = { 30, 10, 20, 0, 10, 0 };
    static const int expect[] = { 3, 5, 1, 4, 2, 0 };
    struct tlog l;
    struct tref refs[6];
    tlog_init(&l, refs, 6);
    for (int i = 0; i < 6; i++) {
        l.ids[i] = ev_timer_add(l.loop, delays[i], tlog_cb, &refs[i]);
        assert_true(l.ids[i] != 0);
    }
    run_until_fired(&l, 6);
    assert_memory_equal(l.order, expect, sizeof(expect));
    /* Fired one-shot timers are gone. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(ev_timer_cancel(l.loop, l.ids[i]), -ENOENT);
    assert_int_equal(ev_timer_cancel(l.loop, 0), -ENOENT);
    assert_int_equal(ev_timer_cancel(l.loop, 12345ull << 32 | 999), -ENOENT);
    ev_loop_free(l.loop);
}

static void test_timer_cancel(void **state)
{
    (void)state;
    struct tlog l;
    struct tref refs[4];
    tlog_init(&l, refs, 4);
    for (int i = 0; i < 3; i++)
        l.ids[i] = ev_timer_add(l.loop, 5, tlog_cb, &refs[i]);
    assert_int_equal(ev_timer_cancel(l.loop, l.ids[1]), 0);
    assert_int_equal(ev_timer_cancel(l.loop, l.ids[1]), -ENOENT);
    /* The freed slot is reused; the stale id must not reach the new timer. */
    l.ids[3] = ev_timer_add(l.loop, 5, tlog_cb, &refs[3]);
    assert_int_equal(ev_timer_cancel(l.loop, l.ids[1]), -ENOENT);
    run_until_fired(&l, 3);
    static const int expect[] = { 0, 2, 3 };
    assert_memory_equal(l.order, expect, sizeof(expect));
    ev_loop_free(l.loop);
}

static void test_timer_cancel_from_callback(void **state)
{
    (void)state;
    struct tlog l;
    struct tref refs[4];
    tlog_init(&l, refs, 4);
    /* 0 cancels 1 (due at the same time, armed later): 1 must not fire.
     * 2 cancels itself while firing and asks for a re-arm: refused.
     * 3 cancels 0, which already fired. */
    l.cancel_target[0] = 1;
    l.cancel_target[2] = 2;
    l.ret[2] = 1;
    l.cancel_target[3] = 0;
    for (int i = 0; i < 4; i++)
        l.ids[i] = ev_timer_add(l.loop, i < 2 ? 5 : 10, tlog_cb, &refs[i]);
    run_until_fired(&l, 3);
    for (int i = 0; i < 5; i++)
        ev_run_once(l.loop, 20);
    assert_int_equal(l.n, 3);
    static const int expect[] = { 0, 2, 3 };
    assert_memory_equal(l.order, expect, sizeof(expect));
    assert_int_equal(l.cancel_rc[0], 0);
    assert_int_equal(l.cancel_rc[2], 0);
    assert_int_equal(l.cancel_rc[3], -ENOENT);
    assert_int_equal(ev_timer_cancel(l.loop, l.ids[2]), -ENOENT);
    ev_loop_free(l.loop);
}

struct rearm {
    int fired;
    int limit;
    int64_t delay;
};

static int64_t rearm_cb(struct ev_loop *loop, void *arg)
{
    struct rearm *r = arg;
    (void)loop;
    return ++r->fired < r->limit ? r->delay : EV_TIMER_STOP;
}

static void test_timer_rearm_by_return(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct rearm r = { .limit = 4, .delay = 2 };
    uint64_t id = ev_timer_add(loop, 1, rearm_cb, &r);
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (r.fired < 4 && mono_ms() < give_up)
        ev_run_once(loop, 100);
    assert_int_equal(r.fired, 4);
    assert_int_equal(ev_timer_cancel(loop, id), -ENOENT);

    /* A repeating timer keeps its id: cancelling it mid-way stops it. */
    struct rearm forever = { .limit = 1 << 30, .delay = 1 };
    id = ev_timer_add(loop, 0, rearm_cb, &forever);
    while (forever.fired < 3 && mono_ms() < give_up)
        ev_run_once(loop, 100);
    assert_int_equal(ev_timer_cancel(loop, id), 0);
    int fired = forever.fired;
    for (int i = 0; i < 3; i++)
        ev_run_once(loop, 5);
    assert_int_equal(forever.fired, fired);
    ev_loop_free(loop);
}

static void test_timer_rearm_zero_does_not_starve(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct rearm r = { .limit = 1 << 30, .delay = 0 };
    uint64_t id = ev_timer_add(loop, 0, rearm_cb, &r);
    /* Each iteration returns after one firing instead of looping forever. */
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(ev_run_once(loop, 0), 1);
        assert_int_equal(r.fired, i);
    }
    assert_int_equal(ev_timer_cancel(loop, id), 0);
    ev_loop_free(loop);
}

/*
 * Model test: many timers with random delays, some cancelled up front and
 * some cancelled by other timers as they fire.  All are armed in one
 * iteration, so the firing order must be (delay, arming order), whatever
 * the machine's speed.
 */
enum { MODEL_N = 3000 };

struct model {
    struct ev_loop *loop;
    uint64_t ids[MODEL_N];
    uint64_t delay[MODEL_N];
    int target[MODEL_N];       /* cancelled by timer i when it fires, or -1 */
    int rc[MODEL_N];
    int fired[MODEL_N];
    int nfired;
};

struct mref {
    struct model *m;
    int i;
};

static int64_t model_cb(struct ev_loop *loop, void *arg)
{
    struct mref *r = arg;
    struct model *m = r->m;
    m->fired[m->nfired++] = r->i;
    if (m->target[r->i] >= 0)
        m->rc[r->i] = ev_timer_cancel(loop, m->ids[m->target[r->i]]);
    return EV_TIMER_STOP;
}

/* qsort has no context argument. */
static const struct model *sort_model;

static int by_delay_then_index(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    uint64_t dx = sort_model->delay[x], dy = sort_model->delay[y];
    if (dx != dy)
        return dx < dy ? -1 : 1;
    return x - y;
}

static void test_timer_heap_model(void **state)
{
    (void)state;
    uint64_t rng = seed_from_env();
    struct model *m = calloc(1, sizeof(*m));
    struct mref *refs = calloc(MODEL_N, sizeof(*refs));
    bool *cancelled = calloc(MODEL_N, sizeof(bool));
    m->loop = ev_loop_new();
    for (int i = 0; i < MODEL_N; i++) {
        refs[i] = (struct mref){ m, i };
        m->delay[i] = rng_next(&rng) % 40;
        m->target[i] = rng_next(&rng) % 4 == 0 ? (int)(rng_next(&rng) % MODEL_N) : -1;
        m->ids[i] = ev_timer_add(m->loop, m->delay[i], model_cb, &refs[i]);
        assert_true(m->ids[i] != 0);
    }
    for (int i = 0; i < MODEL_N; i++) {
        if (rng_next(&rng) % 5 == 0) {
            assert_int_equal(ev_timer_cancel(m->loop, m->ids[i]), 0);
            cancelled[i] = true;
        }
    }

    /* The model: walk the timers in firing order, applying cancels. */
    int *order = malloc(MODEL_N * sizeof(int));
    int *expect = malloc(MODEL_N * sizeof(int));
    int *expect_rc = malloc(MODEL_N * sizeof(int));
    for (int i = 0; i < MODEL_N; i++)
        order[i] = i;
    sort_model = m;
    qsort(order, MODEL_N, sizeof(int), by_delay_then_index);
    bool *done = calloc(MODEL_N, sizeof(bool));
    int nexpect = 0;
    for (int k = 0; k < MODEL_N; k++) {
        int i = order[k];
        if (cancelled[i])
            continue;
        expect[nexpect++] = i;
        done[i] = true;
        int t = m->target[i];
        if (t < 0)
            continue;
        /* Pending -> cancelled; fired, itself (already popped: still
         * firing, so cancel succeeds) or cancelled before -> per state. */
        if (t == i || (!done[t] && !cancelled[t])) {
            expect_rc[i] = 0;
            cancelled[t] = true;
        } else {
            expect_rc[i] = -ENOENT;
        }
    }

    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (m->nfired < nexpect && mono_ms() < give_up)
        assert_true(ev_run_once(m->loop, 100) >= 0);
    for (int i = 0; i < 3; i++)
        ev_run_once(m->loop, 0);
    assert_int_equal(m->nfired, nexpect);
    assert_memory_equal(m->fired, expect, (size_t)nexpect * sizeof(int));
    for (int k = 0; k < nexpect; k++) {
        int i = expect[k];
        if (m->target[i] >= 0)
            assert_int_equal(m->rc[i], expect_rc[i]);
    }
    ev_loop_free(m->loop);
    free(done);
    free(expect_rc);
    free(expect);
    free(order);
    free(cancelled);
    free(refs);
    free(m);
}

static void test_now_is_cached_and_monotonic(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    uint64_t t0 = ev_now_ms(loop);
    struct timespec ts = { 0, 30 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    /* Cached: not updated until the loop iterates. */
    assert_int_equal(ev_now_ms(loop), t0);
    ev_run_once(loop, 0);
    assert_true(ev_now_ms(loop) >= t0 + 30);
    ev_loop_free(loop);
}

static int64_t stop_after_three(struct ev_loop *loop, void *arg)
{
    int *n = arg;
    if (++*n == 3) {
        ev_stop(loop);
        return EV_TIMER_STOP;
    }
    return 1;
}

static void test_run_until_stop(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    int n = 0;
    ev_timer_add(loop, 1, stop_after_three, &n);
    assert_int_equal(ev_run(loop), 0);
    assert_int_equal(n, 3);
    ev_loop_free(loop);
}

/* ---- posts -------------------------------------------------------------- */

enum { POST_THREADS = 4, POST_EACH = 20000 };

struct post_test {
    struct ev_loop *loop;
    pthread_t loop_thread;
    long next[POST_THREADS];
    long received;
    int bad_order;
    int wrong_thread;
    bool all;
};

static struct post_test *post_test;

static void post_fn(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    int t = (int)(v >> 24);
    long seq = (long)(v & 0xffffff);
    struct post_test *pt = post_test;
    if (!pthread_equal(pthread_self(), pt->loop_thread))
        pt->wrong_thread++;
    if (seq != pt->next[t])
        pt->bad_order++;
    pt->next[t] = seq + 1;
    pt->all = ++pt->received == (long)POST_THREADS * POST_EACH;
}

static void *poster(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    for (uintptr_t i = 0; i < POST_EACH; i++) {
        while (ev_post(post_test->loop, post_fn, (void *)(t << 24 | i)) != 0)
            ;
    }
    return NULL;
}

static void test_post_from_threads(void **state)
{
    (void)state;
    struct post_test pt = { .loop = ev_loop_new(), .loop_thread = pthread_self() };
    post_test = &pt;
    pthread_t th[POST_THREADS];
    for (uintptr_t t = 0; t < POST_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, poster, (void *)t), 0);
    run_until_flag(pt.loop, &pt.all);
    for (int t = 0; t < POST_THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(pt.received, (long)POST_THREADS * POST_EACH);
    assert_int_equal(pt.bad_order, 0);
    assert_int_equal(pt.wrong_thread, 0);
    ev_loop_free(pt.loop);
}

struct self_post {
    struct ev_loop *loop;
    struct ev_post node;
    int runs;
    int requeue_rc;
};

static void self_post_fn(void *arg)
{
    struct self_post *s = arg;
    s->runs++;
    if (s->runs < 3)
        s->requeue_rc = ev_post_queue(s->loop, &s->node);
}

static void test_post_node_queue_and_cancel(void **state)
{
    (void)state;
    struct self_post s = { .loop = ev_loop_new() };
    ev_post_init(&s.node, self_post_fn, &s);

    assert_false(ev_post_cancel(s.loop, &s.node));
    assert_int_equal(ev_post_queue(s.loop, &s.node), 0);
    assert_int_equal(ev_post_queue(s.loop, &s.node), -EALREADY);
    assert_true(ev_post_cancel(s.loop, &s.node));
    assert_int_equal(ev_run_once(s.loop, 0), 0);
    assert_int_equal(s.runs, 0);

    /* A post queued by a post runs in the next iteration, not this one. */
    assert_int_equal(ev_post_queue(s.loop, &s.node), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(ev_run_once(s.loop, 1000), 1);
        assert_int_equal(s.runs, i);
        assert_int_equal(s.requeue_rc, 0);
    }
    assert_int_equal(ev_run_once(s.loop, 0), 0);
    ev_loop_free(s.loop);
}

/* The loop wakes for posts left behind a batch (queued by posts in it). */
struct chain {
    struct ev_loop *loop;
    int runs;
};

static void chain_fn(void *arg)
{
    struct chain *c = arg;
    if (++c->runs == 1)
        assert_int_equal(ev_post(c->loop, chain_fn, c), 0);
}

static void test_post_queued_behind_batch_wakes(void **state)
{
    (void)state;
    struct chain c = { .loop = ev_loop_new() };
    assert_int_equal(ev_post(c.loop, chain_fn, &c), 0);
    struct chain other = { .loop = c.loop, .runs = 1 };
    assert_int_equal(ev_post(c.loop, chain_fn, &other), 0);
    assert_int_equal(ev_run_once(c.loop, 1000), 2);
    /* The post queued during the batch must wake the next wait. */
    assert_int_equal(ev_run_once(c.loop, 1000), 1);
    assert_int_equal(c.runs, 2);
    ev_loop_free(c.loop);
}

static void free_fn(void *arg)
{
    int *counter = *(int **)arg;
    (*counter)++;
    free(arg);
}

static void test_loop_free_runs_pending_posts(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    int counter = 0;
    for (int i = 0; i < 3; i++) {
        int **box = malloc(sizeof(*box));
        *box = &counter;
        assert_int_equal(ev_post(loop, free_fn, box), 0);
    }
    ev_timer_add(loop, 1000, rearm_cb, NULL);   /* dropped, never run */
    ev_loop_free(loop);
    assert_int_equal(counter, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_errors_and_read),
        cmocka_unit_test(test_fd_write_and_hangup_unwatched),
        cmocka_unit_test(test_fd_delete_from_callback),
        cmocka_unit_test(test_fd_table_grows),
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_timer_cancel),
        cmocka_unit_test(test_timer_cancel_from_callback),
        cmocka_unit_test(test_timer_rearm_by_return),
        cmocka_unit_test(test_timer_rearm_zero_does_not_starve),
        cmocka_unit_test(test_timer_heap_model),
        cmocka_unit_test(test_now_is_cached_and_monotonic),
        cmocka_unit_test(test_run_until_stop),
        cmocka_unit_test(test_post_from_threads),
        cmocka_unit_test(test_post_node_queue_and_cancel),
        cmocka_unit_test(test_post_queued_behind_batch_wakes),
        cmocka_unit_test(test_loop_free_runs_pending_posts),
    };
    return cmocka_run_group_tests_name("ev", tests, NULL, NULL);
}
