/*
 * csscrub: the background scrubber (csscrub.h).
 *
 * Owns a snapshot of chunk ids taken at the start of each pass and a
 * timer.  States: resting (timer armed, no job), checking (one verify job
 * on the disk pool, no timer), stopped.
 *
 * Invariants:
 *  1. At most one verify job runs; the next starts only after the one
 *     before finished plus its length / scrub_rate, so the scrubber never
 *     takes more than scrub_rate of the disk.
 *  2. Jobs are keyed by chunk id: a check never races a write of its chunk.
 *  3. Once stopped, neither the timer nor a finishing job starts another.
 */
#include "csscrub.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "chunkserver/csd.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/log.h"
#include "common/tpool.h"

#define CSSCRUB_FIRST_DELAY_MS 1000

struct csscrub {
    struct csd *d;
    uint64_t *ids;      /* this pass's chunks, owned */
    size_t n, cap, at;  /* at: next to check */
    uint64_t timer;     /* 0: not armed */
    bool stopped;
    uint64_t cur_id;    /* the chunk being checked */
    uint64_t cur_len;   /* its length, from the job */
};

int csscrub_new(struct csd *d, struct csscrub **out)
{
    *out = NULL;
    if (d->conf->scrub_rate == 0)
        return 0;
    struct csscrub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->d = d;
    *out = s;
    return 0;
}

static int csscrub_collect(const struct store_info *info, void *arg)
{
    struct csscrub *s = arg;
    if (info->corrupt)
        return 0;   /* already reported */
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        uint64_t *ids = realloc(s->ids, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        s->ids = ids;
        s->cap = cap;
    }
    s->ids[s->n++] = info->id;
    return 0;
}

static int64_t csscrub_tick(struct ev_loop *loop, void *arg);

static void csscrub_arm(struct csscrub *s, uint64_t delay_ms)
{
    if (!s->stopped)
        s->timer = ev_timer_add(s->d->loop, delay_ms, csscrub_tick, s);
}

/* Disk thread. */
static int csscrub_work(void *arg)
{
    struct csscrub *s = arg;
    uint32_t version;
    int rc = vols_stat(s->d->vols, s->cur_id, &version, &s->cur_len);
    if (rc < 0)
        return rc;
    return vols_verify(s->d->vols, s->cur_id, 0);
}

static void csscrub_done(void *arg, int status)
{
    struct csscrub *s = arg;
    struct csd *d = s->d;
    if (status != -ENOENT)
        atomic_fetch_add(&d->stats.scrubbed, 1);
    if (status == -DFS_ECORRUPT) {
        atomic_fetch_add(&d->stats.scrub_bad, 1);
        log_warn("scrub: chunk %016llx is corrupt",
                 (unsigned long long)s->cur_id);
    } else if (status < 0 && status != -ENOENT) {
        log_warn("scrub: chunk %016llx: %s", (unsigned long long)s->cur_id,
                 dfs_strerror(status));
    }
    uint64_t ms = s->cur_len * 1000 / d->conf->scrub_rate;
    if (s->at == s->n && ms < d->conf->scrub_pause_ms)
        ms = d->conf->scrub_pause_ms;   /* the pass is over: rest */
    csscrub_arm(s, ms);
}

static int64_t csscrub_tick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct csscrub *s = arg;
    s->timer = 0;
    if (s->at == s->n) {
        s->n = s->at = 0;
        if (vols_list(s->d->vols, csscrub_collect, s) < 0)
            log_warn("scrub: out of memory listing chunks; partial pass");
        if (s->n == 0) {
            csscrub_arm(s, s->d->conf->scrub_pause_ms);
            return EV_TIMER_STOP;
        }
    }
    s->cur_id = s->ids[s->at++];
    s->cur_len = 0;
    if (tpool_submit_keyed(s->d->disk, s->cur_id, csscrub_work, csscrub_done,
                           s) < 0)
        csscrub_arm(s, CSSCRUB_FIRST_DELAY_MS);
    return EV_TIMER_STOP;
}

void csscrub_start(struct csscrub *s)
{
    if (s)
        csscrub_arm(s, CSSCRUB_FIRST_DELAY_MS);
}

void csscrub_stop(struct csscrub *s)
{
    if (!s)
        return;
    s->stopped = true;
    if (s->timer)
        ev_timer_cancel(s->d->loop, s->timer);
    s->timer = 0;
}

void csscrub_free(struct csscrub *s)
{
    if (!s)
        return;
    free(s->ids);
    free(s);
}
