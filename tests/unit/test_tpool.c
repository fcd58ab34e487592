/* Tests of tpool: ordering, concurrency, keyed serial queues, bounds, free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/tpool.h"

static pthread_t loop_thread;

static uint64_t seed_from_env(void)
{
    const char *s = getenv("DFS_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    printf("test_tpool: seed %llu (replay with DFS_TEST_SEED=%llu)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Hang guard for the loops below; passing never depends on it. */
#define HANG_GUARD_MS 60000

static void run_until_count(struct ev_loop *loop, const int *count, int want)
{
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (*count < want && mono_ms() < give_up)
        assert_true(ev_run_once(loop, 100) >= 0);
    assert_int_equal(*count, want);
}

/* ---- in order, on the right threads ------------------------------------ */

struct ordered {
    int done_order[1000];
    int ndone;
    atomic_int work_on_loop_thread;
    int done_off_loop_thread;
};

struct ojob {
    struct ordered *o;
    int idx;
};

static int ordered_work(void *arg)
{
    struct ojob *j = arg;
    if (pthread_equal(pthread_self(), loop_thread))
        atomic_fetch_add(&j->o->work_on_loop_thread, 1);
    return j->idx;
}

static void ordered_done(void *arg, int status)
{
    struct ojob *j = arg;
    if (!pthread_equal(pthread_self(), loop_thread))
        j->o->done_off_loop_thread++;
    assert_int_equal(status, j->idx);
    j->o->done_order[j->o->ndone++] = j->idx;
}

static void test_single_worker_in_order(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct tpool *pool = tpool_new(loop, 1, "order");
    assert_non_null(pool);
    struct ordered o = { .ndone = 0 };
    struct ojob *jobs = calloc(1000, sizeof(*jobs));
    for (int i = 0; i < 1000; i++) {
        jobs[i] = (struct ojob){ &o, i };
        assert_int_equal(tpool_submit(pool, ordered_work, ordered_done, &jobs[i]), 0);
    }
    run_until_count(loop, &o.ndone, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(o.done_order[i], i);
    assert_int_equal(atomic_load(&o.work_on_loop_thread), 0);
    assert_int_equal(o.done_off_loop_thread, 0);
    assert_int_equal(tpool_pending(pool), 0);
    tpool_free(pool);
    free(jobs);
    ev_loop_free(loop);
}

/* ---- several workers run at once --------------------------------------- */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;
    int peak;
    int need;            /* wait until this many run together */
    bool open;           /* or until opened */
};

static int gate_work(void *arg)
{
    struct gate *g = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;   /* a hang guard: concurrency shows up at once */
    pthread_mutex_lock(&g->mu);
    g->running++;
    if (g->running > g->peak)
        g->peak = g->running;
    pthread_cond_broadcast(&g->cv);
    while (!g->open && g->peak < g->need &&
           pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0)
        ;
    g->running--;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static void count_done(void *arg, int status)
{
    (void)status;
    (*(int *)arg)++;
}

struct gate_job {
    struct gate *g;
    int *ndone;
};

static int gate_job_work(void *arg)
{
    return gate_work(((struct gate_job *)arg)->g);
}

static void gate_job_done(void *arg, int status)
{
    count_done(((struct gate_job *)arg)->ndone, status);
}

static void gate_init(struct gate *g, int need)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->need = need;
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void test_workers_run_concurrently(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct tpool *pool = tpool_new(loop, 4, "conc");
    struct gate g;
    gate_init(&g, 4);
    int ndone = 0;
    struct gate_job gj = { &g, &ndone };
    for (int i = 0; i < 8; i++)
        assert_int_equal(tpool_submit(pool, gate_job_work, gate_job_done, &gj), 0);
    run_until_count(loop, &ndone, 8);
    assert_int_equal(g.peak, 4);
    tpool_free(pool);
    gate_destroy(&g);
    ev_loop_free(loop);
}

/* ---- keyed jobs run serially, in order ----------------------------------- */

enum { KEYS = 6, KEYED_JOBS = 3000 };

struct keyed {
    atomic_int in_flight[KEYS + 1];
    atomic_int overlaps;
    int next_run[KEYS + 1];      /* written only by the key's running job */
    atomic_int out_of_order;
    int ndone;
};

struct kjob {
    struct keyed *k;
    int key;                     /* 0: unkeyed */
    int seq;                     /* order within its key */
    unsigned spin;
};

static int keyed_work(void *arg)
{
    struct kjob *j = arg;
    struct keyed *k = j->k;
    if (j->key == 0) {
        for (volatile unsigned i = 0; i < j->spin; i++)
            ;
        return 0;
    }
    if (atomic_fetch_add(&k->in_flight[j->key], 1) != 0)
        atomic_fetch_add(&k->overlaps, 1);
    if (k->next_run[j->key] != j->seq)
        atomic_fetch_add(&k->out_of_order, 1);
    k->next_run[j->key] = j->seq + 1;
    for (volatile unsigned i = 0; i < j->spin; i++)
        ;
    atomic_fetch_sub(&k->in_flight[j->key], 1);
    return 0;
}

static void keyed_done(void *arg, int status)
{
    struct kjob *j = arg;
    assert_int_equal(status, 0);
    j->k->ndone++;
}

static void test_keyed_jobs_are_serial_and_ordered(void **state)
{
    (void)state;
    uint64_t rng = seed_from_env();
    struct ev_loop *loop = ev_loop_new();
    struct tpool *pool = tpool_new(loop, 4, "keyed");
    struct keyed *k = calloc(1, sizeof(*k));
    struct kjob *jobs = calloc(KEYED_JOBS, sizeof(*jobs));
    int seqs[KEYS + 1] = { 0 };
    for (int i = 0; i < KEYED_JOBS; i++) {
        int key = (int)(rng_next(&rng) % (KEYS + 1));
        jobs[i] = (struct kjob){ k, key, seqs[key]++, (unsigned)(rng_next(&rng) % 20000) };
        /* Key values far apart exercise the strand hash; 0 stays unkeyed. */
        uint64_t tkey = key ? (uint64_t)key << 40 : 0;
        assert_int_equal(tpool_submit_keyed(pool, tkey, keyed_work, keyed_done,
                                            &jobs[i]), 0);
    }
    run_until_count(loop, &k->ndone, KEYED_JOBS);
    assert_int_equal(atomic_load(&k->overlaps), 0);
    assert_int_equal(atomic_load(&k->out_of_order), 0);
    for (int key = 1; key <= KEYS; key++)
        assert_int_equal(k->next_run[key], seqs[key]);
    tpool_free(pool);
    free(jobs);
    free(k);
    ev_loop_free(loop);
}

/* A keyed job waits for its predecessor even when other workers are idle. */
static void test_keyed_job_waits_for_predecessor(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct tpool *pool = tpool_new(loop, 3, "wait");
    struct gate g;
    gate_init(&g, 1 << 30);   /* holds until opened */
    int ndone = 0;
    struct gate_job gj = { &g, &ndone };
    assert_int_equal(tpool_submit_keyed(pool, 7, gate_job_work, gate_job_done, &gj), 0);
    assert_int_equal(tpool_submit_keyed(pool, 7, gate_job_work, gate_job_done, &gj), 0);
    assert_int_equal(tpool_submit_keyed(pool, 8, gate_job_work, gate_job_done, &gj), 0);
    /* Jobs of key 7 and key 8 run together; the second of key 7 may not,
     * though a worker is idle (a broken strand would start it at once). */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&g.mu);
    while (g.running < 2 && pthread_cond_timedwait(&g.cv, &g.mu, &until) == 0)
        ;
    pthread_mutex_unlock(&g.mu);
    usleep(20000);
    pthread_mutex_lock(&g.mu);
    assert_int_equal(g.running, 2);
    pthread_mutex_unlock(&g.mu);
    gate_open(&g);
    run_until_count(loop, &ndone, 3);
    assert_int_equal(g.peak, 2);
    tpool_free(pool);
    gate_destroy(&g);
    ev_loop_free(loop);
}

/* ---- statuses, bounds, errors ------------------------------------------- */

static int fail_work(void *arg)
{
    (void)arg;
    return -EIO;
}

static void status_done(void *arg, int status)
{
    *(int *)arg = status;
}

static int nop_work(void *arg)
{
    (void)arg;
    return 0;
}

static void test_status_and_null_done(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct tpool *pool = tpool_new(loop, 2, "status");
    int status = 1;
    assert_int_equal(tpool_submit(pool, fail_work, status_done, &status), 0);
    assert_int_equal(tpool_submit(pool, nop_work, NULL, NULL), 0);
    assert_int_equal(tpool_submit(pool, NULL, NULL, NULL), -EINVAL);
    uint64_t give_up = mono_ms() + HANG_GUARD_MS;
    while (tpool_pending(pool) > 0 && mono_ms() < give_up)
        ev_run_once(loop, 100);
    assert_int_equal(tpool_pending(pool), 0);
    assert_int_equal(status, -EIO);
    tpool_free(pool);
    ev_loop_free(loop);
}

static void test_max_pending(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct tpool *pool = tpool_new(loop, 1, "bound");
    tpool_set_max_pending(pool, 3);
    struct gate g;
    gate_init(&g, 1 << 30);
    int ndone = 0;
    struct gate_job gj = { &g, &ndone };
    for (int i = 0; i < 3; i++)
        assert_int_equal(tpool_submit(pool, gate_job_work, gate_job_done, &gj), 0);
    assert_int_equal(tpool_submit(pool, gate_job_work, gate_job_done, &gj), -EAGAIN);
    assert_int_equal(tpool_pending(pool), 3);
    gate_open(&g);
    run_until_count(loop, &ndone, 3);
    assert_int_equal(tpool_submit(pool, gate_job_work, gate_job_done, &gj), 0);
    run_until_count(loop, &ndone, 4);
    tpool_free(pool);
    gate_destroy(&g);
    ev_loop_free(loop);
}

static void test_new_rejects_bad_arguments(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    errno = 0;
    assert_null(tpool_new(loop, 0, "x"));
    assert_int_equal(errno, EINVAL);
    assert_null(tpool_new(NULL, 1, "x"));
    /* A long name is cut, not refused. */
    struct tpool *pool = tpool_new(loop, 1, "a-very-long-pool-name-indeed");
    assert_non_null(pool);
    tpool_free(pool);
    tpool_free(NULL);
    ev_loop_free(loop);
}

/* ---- free drains --------------------------------------------------------- */

struct drain {
    struct tpool *pool;
    atomic_int worked;
    int done;
    int done_off_loop;
    int resubmit_rc;
};

static int drain_work(void *arg)
{
    struct drain *d = arg;
    usleep(200);
    atomic_fetch_add(&d->worked, 1);
    return 0;
}

static void drain_done(void *arg, int status)
{
    struct drain *d = arg;
    (void)status;
    if (!pthread_equal(pthread_self(), loop_thread))
        d->done_off_loop++;
    d->done++;
    d->resubmit_rc = tpool_submit(d->pool, drain_work, drain_done, d);
}

static void test_free_runs_everything_queued(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct drain d = { .pool = tpool_new(loop, 2, "drain") };
    for (int i = 0; i < 100; i++)
        assert_int_equal(tpool_submit_keyed(d.pool, (uint64_t)(i % 3), drain_work,
                                            drain_done, &d), 0);
    /* No loop iteration: every done runs inside tpool_free, on this thread,
     * and a submit from there is refused. */
    tpool_free(d.pool);
    assert_int_equal(atomic_load(&d.worked), 100);
    assert_int_equal(d.done, 100);
    assert_int_equal(d.done_off_loop, 0);
    assert_int_equal(d.resubmit_rc, -ESHUTDOWN);
    /* Nothing of the pool is left queued on the loop. */
    assert_int_equal(ev_run_once(loop, 0), 0);
    ev_loop_free(loop);
}

static int setup(void **state)
{
    (void)state;
    loop_thread = pthread_self();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_worker_in_order),
        cmocka_unit_test(test_workers_run_concurrently),
        cmocka_unit_test(test_keyed_jobs_are_serial_and_ordered),
        cmocka_unit_test(test_keyed_job_waits_for_predecessor),
        cmocka_unit_test(test_status_and_null_done),
        cmocka_unit_test(test_max_pending),
        cmocka_unit_test(test_new_rejects_bad_arguments),
        cmocka_unit_test(test_free_runs_everything_queued),
    };
    return cmocka_run_group_tests_name("tpool", tests, setup, NULL);
}
