/*
 * csprobe: the data directories' probe thread (csprobe.h).
 *
 * Owns the thread and the record it shares with the loop thread.
 *
 * States of the thread, under p->mu:
 *   waiting   !want && !running: asleep on p->cv
 *   asked     want: csprobe_kick set it; the thread takes it
 *   running   running: in vols_check, since since_ms, no lock held
 *   out       out: the thread has returned (after stop)
 *
 * Invariants:
 *  1. At most one probe runs, and at most one more is asked for.
 *  2. The record is freed by the last of its two holders (refs): the loop
 *     side at csprobe_free, the thread as it returns.  An abandoned thread
 *     is therefore never left without its record.
 */
#include "csprobe.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "chunkserver/vols.h"
#include "common/ev.h"
#include "common/log.h"

struct csprobe {
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* CLOCK_MONOTONIC: asked, stop or out */
    struct vols *v;                 /* borrowed */
    bool want, running, stop, out;  /* protected by mu */
    uint64_t since_ms;              /* protected by mu: the probe's start */
    unsigned refs;                  /* protected by mu */
    pthread_t thread;
};

static void probe_destroy(struct csprobe *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Drops one hold (p->mu held, released here); frees p on the last. */
static void probe_unref_unlock(struct csprobe *p)
{
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        probe_destroy(p);
}

static void *probe_main(void *arg)
{
    struct csprobe *p = arg;
    pthread_setname_np(pthread_self(), "csd-probe");
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->want && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break;
        p->want = false;
        p->running = true;
        p->since_ms = ev_clock_ms();
        pthread_mutex_unlock(&p->mu);
        vols_check(p->v);
        pthread_mutex_lock(&p->mu);
        p->running = false;
    }
    p->out = true;
    pthread_cond_broadcast(&p->cv);
    probe_unref_unlock(p);
    return NULL;
}

int csprobe_new(struct vols *v, struct csprobe **out)
{
    struct csprobe *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->v = v;
    p->refs = 2;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&p->thread, NULL, probe_main, p);
    if (rc != 0) {
        probe_destroy(p);
        return -rc;
    }
    *out = p;
    return 0;
}

void csprobe_kick(struct csprobe *p)
{
    pthread_mutex_lock(&p->mu);
    if (!p->want && !p->running) {
        p->want = true;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

bool csprobe_free(struct csprobe *p, unsigned wait_ms)
{
    if (!p)
        return true;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    uint64_t end = (p->running ? p->since_ms : ev_clock_ms()) + wait_ms;
    struct timespec ts = { .tv_sec = (time_t)(end / 1000),
                           .tv_nsec = (long)(end % 1000) * 1000000L };
    while (!p->out && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0)
        ;
    bool out = p->out;
    uint64_t stuck_ms = p->running ? ev_clock_ms() - p->since_ms : 0;
    if (out) {
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        probe_destroy(p);           /* the thread let go as it returned */
        return true;
    }
    log_error("csprobe: the probe of the data directories has been stuck "
              "in a disk call for %llu ms (a disk that does not answer?); "
              "stopping without it", (unsigned long long)stuck_ms);
    pthread_detach(p->thread);
    probe_unref_unlock(p);
    return false;
}
