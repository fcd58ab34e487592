/*
 * simdisk: durable state plus a FIFO of writes in flight.
 *
 * Invariants:
 *  1. ents[i].index == base + 1 + i; base == snap.index after any snapshot
 *     write that reached it (entries up to a snapshot are dropped).
 *  2. Writes complete in queue order: done_at never decreases along q.
 *  3. A completed write that would leave a hole in the log is refused
 *     (-EIO): the core handed out entries that do not follow the stored ones.
 */
#include "tests/sim/simdisk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void simdisk_init(struct simdisk *d)
{
    memset(d, 0, sizeof(*d));
}

static void free_entries(struct raft_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
}

static void write_release(struct simdisk_write *w)
{
    free(w->snap_data);
    free_entries(w->ents, w->n_ents);
    free(w->ents);
}

void simdisk_release(struct simdisk *d)
{
    for (size_t i = 0; i < d->nq; i++)
        write_release(&d->q[d->head + i]);
    free(d->q);
    free_entries(d->ents, d->n);
    free(d->ents);
    free(d->snap_data);
    simdisk_init(d);
}

static void *dup_bytes(const void *p, size_t len)
{
    void *c = malloc(len ? len : 1);
    if (c && len)
        memcpy(c, p, len);
    return c;
}

static struct simdisk_write *new_write(struct simdisk *d, uint64_t done_at)
{
    if (d->head + d->nq == d->capq) {
        if (d->head) {
            memmove(d->q, d->q + d->head, d->nq * sizeof(*d->q));
            d->head = 0;
        } else {
            size_t cap = d->capq ? d->capq * 2 : 16;
            struct simdisk_write *q = realloc(d->q, cap * sizeof(*q));
            if (!q)
                return NULL;
            d->q = q;
            d->capq = cap;
        }
    }
    struct simdisk_write *w = &d->q[d->head + d->nq];
    memset(w, 0, sizeof(*w));
    w->done_at = done_at;
    return w;
}

static int copy_entries(struct simdisk_write *w, const struct raft_entry *e,
                        size_t n)
{
    if (n == 0)
        return 0;
    w->ents = calloc(n, sizeof(*w->ents));
    if (!w->ents)
        return -ENOMEM;
    w->n_ents = n;
    for (size_t i = 0; i < n; i++) {
        w->ents[i] = e[i];
        w->ents[i].data = e[i].len ? dup_bytes(e[i].data, e[i].len) : NULL;
        if (e[i].len && !w->ents[i].data)
            return -ENOMEM;
    }
    return 0;
}

int simdisk_queue_ready(struct simdisk *d, const struct raft_ready *rd,
                        uint64_t done_at)
{
    struct simdisk_write *w = new_write(d, done_at);
    if (!w)
        return -ENOMEM;
    w->seq = rd->seq;
    w->has_hs = rd->hs_changed;
    w->term = rd->term;
    w->vote = rd->vote;
    int rc = 0;
    if (rd->snap) {
        w->has_snap = w->snap_replaces_log = true;
        w->snap = *rd->snap;
        w->snap_len = rd->snap_len;
        w->snap_data = dup_bytes(rd->snap_data, rd->snap_len);
        rc = w->snap_data ? 0 : -ENOMEM;
    }
    if (rc == 0)
        rc = copy_entries(w, rd->entries, rd->n_entries);
    if (rc < 0) {
        write_release(w);
        return rc;
    }
    d->nq++;
    return 0;
}

int simdisk_queue_compact(struct simdisk *d,
                          const struct raft_snapshot_meta *meta,
                          const void *data, size_t len, uint64_t done_at)
{
    struct simdisk_write *w = new_write(d, done_at);
    if (!w)
        return -ENOMEM;
    w->has_snap = true;
    w->snap = *meta;
    w->snap_len = len;
    w->snap_data = dup_bytes(data, len);
    if (!w->snap_data)
        return -ENOMEM;
    d->nq++;
    return 0;
}

uint64_t simdisk_last_done(const struct simdisk *d)
{
    return d->nq ? d->q[d->head + d->nq - 1].done_at : 0;
}

uint64_t simdisk_last_index(const struct simdisk *d)
{
    return d->base + d->n;
}

uint64_t simdisk_term_at(const struct simdisk *d, uint64_t index)
{
    if (index == d->snap.index && index)
        return d->snap.term;
    if (index <= d->base || index > d->base + d->n)
        return 0;
    return d->ents[index - d->base - 1].term;
}

static void drop_from(struct simdisk *d, uint64_t from)
{
    if (from > d->base + d->n)
        return;
    size_t keep = from <= d->base ? 0 : from - d->base - 1;
    if (keep >= d->n)
        return;
    free_entries(d->ents + keep, d->n - keep);
    d->n = keep;
}

static void drop_upto(struct simdisk *d, uint64_t upto)
{
    size_t drop = upto >= d->base + d->n ? d->n
                  : upto > d->base ? upto - d->base : 0;
    if (drop) {
        free_entries(d->ents, drop);
        memmove(d->ents, d->ents + drop, (d->n - drop) * sizeof(*d->ents));
        d->n -= drop;
    }
    if (upto > d->base)
        d->base = upto;
}

static void land_snapshot(struct simdisk *d, struct simdisk_write *w)
{
    if (w->snap.index <= d->snap.index)
        return;
    free(d->snap_data);
    d->snap = w->snap;
    d->snap_data = w->snap_data;
    d->snap_len = w->snap_len;
    w->snap_data = NULL;
    if (w->snap_replaces_log)
        drop_from(d, 0);
    drop_upto(d, d->snap.index);
    d->base = d->snap.index;
}

/* Moves the write's entries (ownership too) onto the log. */
static int land_entries(struct simdisk *d, struct simdisk_write *w)
{
    size_t i = 0;
    while (i < w->n_ents && w->ents[i].index <= d->base)
        i++;
    if (i == w->n_ents)
        return 0;
    uint64_t first = w->ents[i].index;
    if (first > d->base + d->n + 1)
        return -EIO;
    drop_from(d, first);
    size_t need = d->n + (w->n_ents - i);
    if (need > d->cap) {
        size_t cap = d->cap ? d->cap : 64;
        while (cap < need)
            cap *= 2;
        struct raft_entry *e = realloc(d->ents, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        d->ents = e;
        d->cap = cap;
    }
    for (; i < w->n_ents; i++) {
        d->ents[d->n++] = w->ents[i];
        w->ents[i].data = NULL;
    }
    return 0;
}

static int land(struct simdisk *d, struct simdisk_write *w)
{
    if (w->has_hs) {
        d->term = w->term;
        d->vote = w->vote;
    }
    if (w->has_snap)
        land_snapshot(d, w);
    return land_entries(d, w);
}

int simdisk_complete(struct simdisk *d, uint64_t *seq)
{
    if (d->nq == 0)
        return -ENOENT;
    struct simdisk_write *w = &d->q[d->head];
    int rc = land(d, w);
    if (seq)
        *seq = w->seq;
    write_release(w);
    d->head++;
    d->nq--;
    return rc;
}

int simdisk_crash(struct simdisk *d, size_t keep)
{
    int rc = 0;
    for (size_t i = 0; i < keep && d->nq && rc == 0; i++)
        rc = simdisk_complete(d, NULL);
    while (d->nq) {
        write_release(&d->q[d->head]);
        d->head++;
        d->nq--;
    }
    d->head = 0;
    return rc;
}

void simdisk_restore(const struct simdisk *d, struct raft_restore *rs)
{
    memset(rs, 0, sizeof(*rs));
    rs->term = d->term;
    rs->vote = d->vote;
    if (d->snap.index) {
        rs->snap = &d->snap;
        rs->snap_data = d->snap_data;
        rs->snap_len = d->snap_len;
    }
    rs->entries = d->ents;
    rs->n_entries = d->n;
}
