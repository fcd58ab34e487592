/*
 * vols: the set of data directories (vols.h).
 *
 * Owns one struct store per directory, the route index id -> directory,
 * the lost list and the cached identity.
 *
 * Invariants:
 *  1. A chunk listed by a healthy store has exactly one route, to that
 *     store, except while its create or delete runs (the route exists
 *     with dir NO_DIR during a create, so two creates of one id cannot
 *     both place it).
 *  2. A directory's failed flag goes false -> true once, before its
 *     routes are removed; every route found to a failed directory is
 *     treated as absent, so a chunk of a failed directory is never served
 *     and never counted.
 *  3. Each chunk of a failed directory (routed to it when it failed, or
 *     placed there by a create that ended after) enters the lost list
 *     once, and its route moves to the gone set, where it stays until
 *     close (still naming the failed directory).  So an id is lost
 *     (vols_lost) from the moment its directory's failed flag is set:
 *     first through its route to the failed directory, then through the
 *     gone set, with no gap between the two (both under mu).
 *
 * Locks: v->mu (the index, routes, the gone set, the lost list, the
 * identity cache) is a
 * leaf: no store call is made while holding it.  The stores take their
 * own locks.
 */
#include "vols.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkserver/chunkidx.h"
#include "chunkserver/storeid.h"
#include "common/dfs_error.h"
#include "common/log.h"

#define NO_DIR UINT32_MAX           /* a route reserved by a create */
#define WHY_MAX 256

struct vols_route {
    struct chunkidx_node node;
    uint32_t dir;                   /* protected by mu */
};

struct vols_vol {
    char *path;                     /* owned */
    struct fsio *fs;                /* borrowed */
    struct store *s;                /* owned */
    bool failed;                    /* atomic, set once */
};

struct vols {
    struct vols_vol *dirs;
    size_t n;
    uint64_t chunk_size;
    vols_fail_fn on_fail;
    void *fail_arg;
    pthread_mutex_t mu;
    struct chunkidx index;          /* protected by mu */
    /* The routes of chunks lost with a failed directory (invariant 3):
     * bounded by what the failed directories held. */
    struct chunkidx gone;           /* protected by mu */
    struct store_info *lost;        /* protected by mu */
    size_t nlost, lost_cap;         /* protected by mu */
    uint64_t cluster_id;            /* protected by mu */
    uint32_t server_id;             /* protected by mu */
};

/* ======================================================================== */
/* directories and routes                                                   */
/* ======================================================================== */

static bool vol_failed(const struct vols_vol *d)
{
    return __atomic_load_n(&d->failed, __ATOMIC_ACQUIRE);
}

static struct vols_route *route_of(struct chunkidx_node *n)
{
    return (struct vols_route *)((char *)n -
                                 offsetof(struct vols_route, node));
}

/* Caller holds mu. */
static struct vols_route *route_get(struct vols *v, uint64_t id)
{
    struct chunkidx_node *n = chunkidx_find(&v->index, id);
    return n ? route_of(n) : NULL;
}

/* Caller holds mu. */
static void route_free(struct vols *v, struct vols_route *r)
{
    chunkidx_remove(&v->index, &r->node);
    free(r);
}

/* The healthy directory holding id, or -ENOENT. */
static int route_find(struct vols *v, uint64_t id)
{
    pthread_mutex_lock(&v->mu);
    struct vols_route *r = route_get(v, id);
    uint32_t dir = r ? r->dir : NO_DIR;
    pthread_mutex_unlock(&v->mu);
    if (dir == NO_DIR || vol_failed(&v->dirs[dir]))
        return -ENOENT;
    return (int)dir;
}

/* Caller holds mu.  Moves route r, of a chunk lost with a failed
 * directory, from the index to the gone set (invariant 3). */
static void route_bury(struct vols *v, struct vols_route *r)
{
    chunkidx_remove(&v->index, &r->node);
    if (chunkidx_find(&v->gone, r->node.id)) {
        free(r);                    /* lost before, copied back, lost again */
        return;
    }
    chunkidx_insert(&v->gone, &r->node);
}

/* Caller holds mu.  The failed directory that held id, or NULL when id
 * was not lost with one. */
static struct vols_route *route_lost(struct vols *v, uint64_t id)
{
    struct chunkidx_node *n = chunkidx_find(&v->gone, id);
    if (n)
        return route_of(n);
    struct vols_route *r = route_get(v, id);
    if (r && r->dir != NO_DIR && vol_failed(&v->dirs[r->dir]))
        return r;
    return NULL;
}

bool vols_lost(struct vols *v, uint64_t id)
{
    pthread_mutex_lock(&v->mu);
    bool lost = route_lost(v, id) != NULL;
    pthread_mutex_unlock(&v->mu);
    return lost;
}

/* Forgets id's route if it still leads to directory i. */
static void route_drop(struct vols *v, uint64_t id, size_t i)
{
    pthread_mutex_lock(&v->mu);
    struct vols_route *r = route_get(v, id);
    if (r && r->dir == i)
        route_free(v, r);
    pthread_mutex_unlock(&v->mu);
}

/* Caller holds mu.  A list that cannot grow drops the entry: the next
 * full report leaves the chunk out all the same. */
static void lost_add(struct vols *v, const struct store_info *info)
{
    if (v->nlost == v->lost_cap) {
        size_t cap = v->lost_cap ? 2 * v->lost_cap : 64;
        struct store_info *p = realloc(v->lost, cap * sizeof(*p));
        if (!p)
            return;
        v->lost = p;
        v->lost_cap = cap;
    }
    v->lost[v->nlost++] = *info;
}

size_t vols_count(const struct vols *v)
{
    return v->n;
}

size_t vols_healthy(struct vols *v)
{
    size_t k = 0;
    for (size_t i = 0; i < v->n; i++)
        k += !vol_failed(&v->dirs[i]);
    return k;
}

const char *vols_dir_path(const struct vols *v, size_t i)
{
    return v->dirs[i].path;
}

bool vols_dir_failed(struct vols *v, size_t i)
{
    return vol_failed(&v->dirs[i]);
}

int vols_locate(struct vols *v, uint64_t id)
{
    return route_find(v, id);
}

/* ======================================================================== */
/* failure                                                                  */
/* ======================================================================== */

struct collect {
    struct store_info *v;
    size_t n, cap;
};

static int collect_one(const struct store_info *info, void *arg)
{
    struct collect *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        struct store_info *p = realloc(c->v, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        c->v = p;
        c->cap = cap;
    }
    c->v[c->n++] = *info;
    return 0;
}

/*
 * Marks directory i failed (once; later calls return at once): its chunks
 * leave the index for the lost list, its bad list is dropped (they are
 * lost as a whole), the log says why, the callback learns how many
 * directories are left.  No lock held by the caller.
 */
static void vol_fail(struct vols *v, size_t i, const char *why)
{
    struct vols_vol *d = &v->dirs[i];
    bool was = false;
    if (!__atomic_compare_exchange_n(&d->failed, &was, true, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    /* The store's in-memory index outlives its disk: it still lists
     * what the directory held. */
    struct collect c = { 0 };
    int rc = store_list(d->s, collect_one, &c);
    size_t nlost = 0;
    pthread_mutex_lock(&v->mu);
    for (size_t k = 0; k < c.n; k++) {
        struct vols_route *r = route_get(v, c.v[k].id);
        if (!r || r->dir != i)
            continue;
        route_bury(v, r);
        struct store_info info = c.v[k];
        info.corrupt = true;
        lost_add(v, &info);
        nlost++;
    }
    pthread_mutex_unlock(&v->mu);
    free(c.v);
    uint64_t *bad;
    size_t nbad;
    store_take_bad(d->s, &bad, &nbad);
    free(bad);
    size_t left = vols_healthy(v);
    log_error("vols: data directory %s failed (%s): its %zu chunks are "
              "reported lost; %zu of %zu directories left", d->path, why,
              nlost, left, v->n);
    if (rc < 0)
        log_error("vols: %s: listing its chunks: %s; the next full report "
                  "tells the master the rest", d->path, dfs_strerror(rc));
    if (v->on_fail)
        v->on_fail(v->fail_arg, d->path, left);
}

/* After a call on directory i's store returned rc: a store the call found
 * failed takes its directory down.  Returns rc. */
static int vol_after_dir(struct vols *v, size_t i, int rc, const char *what)
{
    if (rc >= 0 || !store_failed(v->dirs[i].s))
        return rc;
    char why[WHY_MAX];
    snprintf(why, sizeof(why), "%s: %s", what, dfs_strerror(rc));
    vol_fail(v, i, why);
    return rc;
}

/* vol_after_dir for a call on chunk id. */
static int vol_after(struct vols *v, size_t i, int rc, const char *what,
                     uint64_t id)
{
    if (rc >= 0 || !store_failed(v->dirs[i].s))
        return rc;
    char why[WHY_MAX];
    snprintf(why, sizeof(why), "%s of chunk %016" PRIx64, what, id);
    return vol_after_dir(v, i, rc, why);
}

size_t vols_check(struct vols *v)
{
    for (size_t i = 0; i < v->n; i++) {
        struct vols_vol *d = &v->dirs[i];
        if (vol_failed(d))
            continue;
        char why[WHY_MAX];
        struct storeid id;
        int rc = store_failed(d->s) ? -EIO
                                    : storeid_read(d->fs, d->path, &id);
        if (rc == 0)
            continue;
        snprintf(why, sizeof(why), "probe: %s/%s: %s", d->path,
                 STOREID_NAME, dfs_strerror(rc));
        vol_fail(v, i, why);
    }
    return vols_healthy(v);
}

void vols_take_lost(struct vols *v, struct store_info **out, size_t *n)
{
    pthread_mutex_lock(&v->mu);
    *out = v->nlost ? v->lost : NULL;
    *n = v->nlost;
    if (v->nlost) {
        v->lost = NULL;
        v->nlost = v->lost_cap = 0;
    }
    pthread_mutex_unlock(&v->mu);
}

/* ======================================================================== */
/* placement and create                                                     */
/* ======================================================================== */

struct cand {
    size_t i;
    uint64_t units;                 /* free space in chunk sizes */
    uint64_t used;                  /* chunk bytes already there */
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->units != y->units)
        return x->units > y->units ? -1 : 1;
    if (x->used != y->used)
        return x->used < y->used ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* The healthy directories, best place for a new chunk first. */
static size_t candidates(struct vols *v, struct cand *out)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (vol_failed(&v->dirs[i]))
            continue;
        uint64_t total = 0, used = 0, avail = 0;
        int rc = store_space(v->dirs[i].s, &total, &used, &avail);
        if (vol_after_dir(v, i, rc, "free space") < 0 &&
            vol_failed(&v->dirs[i]))
            continue;
        /* A directory whose space cannot be read goes last: its store
         * checks the space itself and refuses when it cannot. */
        uint64_t cs = __atomic_load_n(&v->chunk_size, __ATOMIC_RELAXED);
        out[n++] = (struct cand){ i, rc < 0 ? 0 : avail / (cs ? cs : PROTO_CHUNK_SIZE),
                                  used };
    }
    qsort(out, n, sizeof(*out), cand_cmp);
    return n;
}

/* Reserves id's route for a create; -EEXIST when a healthy directory
 * holds it or a create of it runs; -EIO for a new chunk (!copy) lost with
 * a failed directory. */
static int route_reserve(struct vols *v, uint64_t id, bool copy,
                         struct vols_route **out)
{
    struct vols_route *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->node.id = id;
    r->dir = NO_DIR;
    int rc = 0;
    const char *dir = NULL;         /* the failed directory that held id */
    pthread_mutex_lock(&v->mu);
    struct vols_route *old = route_get(v, id);
    bool old_lost = old && old->dir != NO_DIR &&
                    vol_failed(&v->dirs[old->dir]);
    struct vols_route *lost = copy ? NULL : route_lost(v, id);
    if (old && !old_lost) {
        rc = -EEXIST;
    } else if (lost) {
        dir = v->dirs[lost->dir].path;
        rc = -EIO;
    } else if (old) {
        route_bury(v, old);         /* left by a create that raced a failure */
    }
    if (rc == 0)
        chunkidx_insert(&v->index, &r->node);
    pthread_mutex_unlock(&v->mu);
    if (rc < 0) {
        free(r);
        if (rc == -EIO)
            log_warn("vols: chunk %016" PRIx64 " was lost with failed data "
                     "directory %s: not creating it anew (it would read as "
                     "zeros where its data was)", id, dir);
        return rc;
    }
    *out = r;
    return 0;
}

/* The create of r's chunk ended: on directory i (or nowhere: NO_DIR). */
static void route_settle(struct vols *v, struct vols_route *r, size_t i,
                         uint32_t version)
{
    pthread_mutex_lock(&v->mu);
    if (i == NO_DIR) {
        route_free(v, r);
    } else if (vol_failed(&v->dirs[i])) {
        /* The directory failed while the create ran, after it listed
         * its chunks: this one is lost too (invariant 3). */
        struct store_info info = { .id = r->node.id, .version = version,
                                   .corrupt = true };
        lost_add(v, &info);
        r->dir = (uint32_t)i;
        route_bury(v, r);
    } else {
        r->dir = (uint32_t)i;
    }
    pthread_mutex_unlock(&v->mu);
}

static int create_in(struct vols *v, uint64_t id, uint32_t version, bool copy)
{
    if (version == 0)
        return -EINVAL;
    /* A chunk made before the master named the cluster's size could be
     * too small for it: the writer takes another server meanwhile. */
    if (!__atomic_load_n(&v->chunk_size, __ATOMIC_RELAXED))
        return -EAGAIN;
    struct vols_route *r;
    int rc = route_reserve(v, id, copy, &r);
    if (rc < 0)
        return rc;
    struct cand c[VOLS_MAX_DIRS];
    size_t nc = candidates(v, c);
    bool full = false;
    rc = -EIO;                      /* no healthy directory took it */
    for (size_t k = 0; k < nc; k++) {
        size_t i = c[k].i;
        int one = vol_after(v, i, store_create(v->dirs[i].s, id, version),
                            "create", id);
        if (one == 0) {
            route_settle(v, r, i, version);
            return 0;
        }
        if (one == -ENOSPC)
            full = true;
        else if (!vol_failed(&v->dirs[i])) {
            rc = one;
            break;
        }
    }
    if (rc == -EIO && full)
        rc = -ENOSPC;
    route_settle(v, r, NO_DIR, version);
    return rc;
}

int vols_create(struct vols *v, uint64_t id, uint32_t version)
{
    return create_in(v, id, version, true);
}

int vols_create_new(struct vols *v, uint64_t id, uint32_t version)
{
    return create_in(v, id, version, false);
}

/* ======================================================================== */
/* routed operations                                                        */
/* ======================================================================== */

static struct store *store_at(struct vols *v, int i)
{
    return v->dirs[i].s;
}

int vols_delete(struct vols *v, uint64_t id)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    int rc = vol_after(v, (size_t)i, store_delete(store_at(v, i), id),
                       "delete", id);
    if (rc == 0 || rc == -ENOENT)
        route_drop(v, id, (size_t)i);
    return rc;
}

int vols_set_version(struct vols *v, uint64_t id, uint32_t version)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    return vol_after(v, (size_t)i, store_set_version(store_at(v, i), id,
                                                     version),
                     "version change", id);
}

int vols_write(struct vols *v, uint64_t id, uint32_t version,
               uint64_t offset, const void *data, size_t len,
               const uint32_t *crcs, unsigned flags)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    return vol_after(v, (size_t)i, store_write(store_at(v, i), id, version,
                                               offset, data, len, crcs,
                                               flags),
                     "write", id);
}

int vols_sync(struct vols *v, uint64_t id)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    return vol_after(v, (size_t)i, store_sync(store_at(v, i), id), "sync",
                     id);
}

ssize_t vols_read(struct vols *v, uint64_t id, uint32_t version,
                  uint64_t offset, size_t len, void *buf, uint32_t *crcs)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    ssize_t n = store_read(store_at(v, i), id, version, offset, len, buf,
                           crcs);
    if (n < 0)
        vol_after(v, (size_t)i, (int)n, "read", id);
    return n;
}

int vols_truncate(struct vols *v, uint64_t id, uint32_t version,
                  uint64_t length)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    return vol_after(v, (size_t)i, store_truncate(store_at(v, i), id,
                                                  version, length),
                     "truncate", id);
}

int vols_open_local(struct vols *v, uint64_t id, uint32_t min_version,
                    struct store_local *out)
{
    int i = route_find(v, id);
    return i < 0 ? i : store_open_local(store_at(v, i), id, min_version, out);
}

int vols_stat(struct vols *v, uint64_t id, uint32_t *version,
              uint64_t *length)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    return vol_after(v, (size_t)i, store_stat(store_at(v, i), id, version,
                                              length),
                     "stat", id);
}

bool vols_moved(struct vols *v, uint64_t id)
{
    int i = route_find(v, id);
    return i >= 0 && store_moved(store_at(v, i), id);
}

int vols_verify(struct vols *v, uint64_t id, uint32_t version)
{
    int i = route_find(v, id);
    if (i < 0)
        return i;
    return vol_after(v, (size_t)i, store_verify(store_at(v, i), id,
                                                version),
                     "verify", id);
}

/* ======================================================================== */
/* lists and space                                                          */
/* ======================================================================== */

int vols_list(struct vols *v, store_list_fn fn, void *arg)
{
    for (size_t i = 0; i < v->n; i++) {
        if (vol_failed(&v->dirs[i]))
            continue;
        int rc = store_list(v->dirs[i].s, fn, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void vols_take_bad(struct vols *v, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    for (size_t i = 0; i < v->n; i++) {
        uint64_t *one;
        size_t k;
        store_take_bad(v->dirs[i].s, &one, &k);
        size_t keep = 0;
        for (size_t j = 0; j < k; j++)     /* a failed dir's are lost */
            if (route_find(v, one[j]) == (int)i)
                one[keep++] = one[j];
        k = keep;
        if (k == 0) {
            free(one);
            continue;
        }
        if (!*ids) {
            *ids = one;
            *n = k;
            continue;
        }
        uint64_t *all = realloc(*ids, (*n + k) * sizeof(*all));
        if (all) {                  /* else dropped: lists show them corrupt */
            memcpy(all + *n, one, k * sizeof(*one));
            *ids = all;
            *n += k;
        }
        free(one);
    }
}

int vols_space(struct vols *v, uint64_t *total, uint64_t *used,
               uint64_t *avail)
{
    *total = *used = *avail = 0;
    size_t ok = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (vol_failed(&v->dirs[i]))
            continue;
        uint64_t t, u, a;
        int rc = store_space(v->dirs[i].s, &t, &u, &a);
        if (vol_after_dir(v, i, rc, "free space") < 0)
            continue;
        *total += t;
        *used += u;
        *avail += a;
        ok++;
    }
    return ok ? 0 : -EIO;
}

/* ======================================================================== */
/* identity                                                                 */
/* ======================================================================== */

uint64_t vols_cluster_id(struct vols *v)
{
    pthread_mutex_lock(&v->mu);
    uint64_t id = v->cluster_id;
    pthread_mutex_unlock(&v->mu);
    return id;
}

uint32_t vols_server_id(struct vols *v)
{
    pthread_mutex_lock(&v->mu);
    uint32_t id = v->server_id;
    pthread_mutex_unlock(&v->mu);
    return id;
}

int vols_set_chunk_size(struct vols *v, uint64_t size)
{
    for (size_t i = 0; i < v->n; i++) {
        int rc = store_set_chunk_size(v->dirs[i].s, size);
        if (rc < 0)
            return rc;
    }
    __atomic_store_n(&v->chunk_size, size, __ATOMIC_RELAXED);
    return 0;
}

int vols_set_identity(struct vols *v, uint64_t cluster_id,
                      uint32_t server_id)
{
    int err = 0;
    size_t ok = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (vol_failed(&v->dirs[i]))
            continue;
        int rc = store_set_identity(v->dirs[i].s, cluster_id, server_id);
        if (rc == -DFS_ECLUSTER) {
            log_error("vols: %s belongs to cluster %016" PRIx64 ", not to "
                      "%016" PRIx64, v->dirs[i].path,
                      store_cluster_id(v->dirs[i].s), cluster_id);
            return rc;
        }
        vol_after_dir(v, i, rc, "identity file write");
        if (rc == 0)
            ok++;
        else if (!vol_failed(&v->dirs[i]) && !err)
            err = rc;
    }
    if (err)
        return err;
    if (!ok)
        return -EIO;
    pthread_mutex_lock(&v->mu);
    v->cluster_id = cluster_id;
    v->server_id = server_id;
    pthread_mutex_unlock(&v->mu);
    return 0;
}

/* ======================================================================== */
/* open                                                                     */
/* ======================================================================== */

static int open_error(char *errbuf, size_t errlen, int rc, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static int open_error(char *errbuf, size_t errlen, int rc, const char *fmt,
                      ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/*
 * The identity every directory must carry, from their identity files
 * (read before anything is opened, so a directory of another cluster or
 * server is refused untouched).  A file that cannot be read is left for
 * store_open to report.
 */
static int ident_agree(struct vols *v, uint64_t expect, struct storeid *out,
                       char *errbuf, size_t errlen)
{
    const char *cl_from = NULL, *srv_from = NULL;
    *out = (struct storeid){ .cluster_id = expect };
    for (size_t i = 0; i < v->n; i++) {
        struct vols_vol *d = &v->dirs[i];
        struct storeid id;
        if (storeid_read(d->fs, d->path, &id) < 0)
            continue;
        if (id.cluster_id && out->cluster_id &&
            id.cluster_id != out->cluster_id)
            return cl_from
                ? open_error(errbuf, errlen, -DFS_ECLUSTER,
                             "%s belongs to cluster %016" PRIx64 " but %s "
                             "to cluster %016" PRIx64 ": the data "
                             "directories of a chunkserver are of one "
                             "cluster; use an empty directory", d->path,
                             id.cluster_id, cl_from, out->cluster_id)
                : open_error(errbuf, errlen, -DFS_ECLUSTER,
                             "%s belongs to cluster %016" PRIx64 ", not to "
                             "this cluster %016" PRIx64 "; use an empty "
                             "directory", d->path, id.cluster_id,
                             out->cluster_id);
        if (id.server_id && out->server_id && id.server_id != out->server_id)
            return open_error(errbuf, errlen, -DFS_ECLUSTER,
                              "%s holds the chunks of chunkserver %" PRIu32
                              " but %s those of chunkserver %" PRIu32 ": a "
                              "directory of another server? use an empty "
                              "directory", d->path, id.server_id, srv_from,
                              out->server_id);
        if (id.cluster_id && !out->cluster_id) {
            out->cluster_id = id.cluster_id;
            cl_from = d->path;
        } else if (id.cluster_id && !cl_from) {
            cl_from = d->path;
        }
        if (id.server_id && !out->server_id) {
            out->server_id = id.server_id;
            srv_from = d->path;
        }
    }
    return 0;
}

/* A directory opened without the server id (new, or never registered)
 * records the common identity. */
static int ident_adopt(struct vols *v, const struct storeid *id, char *errbuf,
                       size_t errlen)
{
    for (size_t i = 0; id->server_id && i < v->n; i++) {
        struct vols_vol *d = &v->dirs[i];
        if (store_server_id(d->s) == id->server_id &&
            store_cluster_id(d->s) == id->cluster_id)
            continue;
        int rc = store_set_identity(d->s, id->cluster_id, id->server_id);
        if (rc < 0)
            return open_error(errbuf, errlen, rc, "%s/%s: cannot record "
                              "the identity of this server: %s", d->path,
                              STOREID_NAME, dfs_strerror(rc));
        log_info("vols: %s takes this server's identity (cluster %016"
                 PRIx64 ", chunkserver %" PRIu32 ")", d->path,
                 id->cluster_id, id->server_id);
    }
    v->cluster_id = store_cluster_id(v->dirs[0].s);
    v->server_id = store_server_id(v->dirs[0].s);
    return 0;
}

struct build_ctx {
    struct vols *v;
    size_t i;                       /* the directory being listed */
    char *errbuf;
    size_t errlen;
};

/* Whether copy a (in an earlier directory) beats copy b. */
static bool copy_better(const struct store_info *a, const struct store_info *b)
{
    if (a->corrupt != b->corrupt)
        return !a->corrupt;
    if (a->version != b->version)
        return a->version > b->version;
    return a->length >= b->length;
}

/* Chunk info->id is in directory j already and in c->i too: keeps the
 * better copy, deletes the other. */
static int build_dup(struct build_ctx *c, struct vols_route *r,
                     const struct store_info *info)
{
    struct vols *v = c->v;
    size_t j = r->dir;
    struct store_info old = { .id = info->id };
    old.corrupt = store_stat(v->dirs[j].s, info->id, &old.version,
                             &old.length) < 0;
    bool keep_old = copy_better(&old, info);
    size_t lose = keep_old ? c->i : j;
    log_warn("vols: chunk %016" PRIx64 " is in %s (v%" PRIu32 ", %" PRIu64
             " bytes%s) and in %s (v%" PRIu32 ", %" PRIu64 " bytes%s): "
             "keeping the copy in %s, deleting the other", info->id,
             v->dirs[j].path, old.version, old.length,
             old.corrupt ? ", corrupt" : "", v->dirs[c->i].path,
             info->version, info->length, info->corrupt ? ", corrupt" : "",
             v->dirs[keep_old ? j : c->i].path);
    int rc = store_delete(v->dirs[lose].s, info->id);
    if (rc < 0)
        return open_error(c->errbuf, c->errlen, rc, "%s: cannot delete the "
                          "duplicate of chunk %016" PRIx64 ": %s",
                          v->dirs[lose].path, info->id, dfs_strerror(rc));
    if (!keep_old)
        r->dir = (uint32_t)c->i;
    return 0;
}

static int build_one(const struct store_info *info, void *arg)
{
    struct build_ctx *c = arg;
    struct vols *v = c->v;
    struct vols_route *r = route_get(v, info->id);
    if (r)
        return build_dup(c, r, info);
    r = calloc(1, sizeof(*r));
    if (!r)
        return open_error(c->errbuf, c->errlen, -ENOMEM, "out of memory");
    r->node.id = info->id;
    r->dir = (uint32_t)c->i;
    chunkidx_insert(&v->index, &r->node);
    return 0;
}

/* The route index from every store's list (single-threaded: open). */
static int index_build(struct vols *v, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < v->n; i++) {
        struct build_ctx c = { v, i, errbuf, errlen };
        int rc = store_list(v->dirs[i].s, build_one, &c);
        if (rc < 0)
            return errbuf && errbuf[0] ? rc : open_error(errbuf, errlen, rc,
                   "%s: listing chunks: %s", v->dirs[i].path,
                   dfs_strerror(rc));
    }
    return 0;
}

static struct vols *vols_alloc(const struct vols_dir *dirs, size_t n,
                               const struct vols_params *p)
{
    struct vols *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    pthread_mutex_init(&v->mu, NULL);
    v->dirs = calloc(n, sizeof(*v->dirs));
    if (!v->dirs || chunkidx_init(&v->index) < 0 ||
        chunkidx_init(&v->gone) < 0)
        goto err_free;
    v->n = n;
    for (size_t i = 0; i < n; i++) {
        v->dirs[i].fs = dirs[i].fs;
        v->dirs[i].path = strdup(dirs[i].path);
        if (!v->dirs[i].path)
            goto err_free;
    }
    v->chunk_size = p->store.chunk_size;
    v->on_fail = p->on_fail;
    v->fail_arg = p->fail_arg;
    return v;

err_free:
    vols_close(v);
    return NULL;
}

static int check_list(const struct vols_dir *dirs, size_t n, char *errbuf,
                      size_t errlen)
{
    if (n == 0 || n > VOLS_MAX_DIRS)
        return open_error(errbuf, errlen, -DFS_ECONF, "%zu data directories "
                          "given; 1 to %d are allowed", n, VOLS_MAX_DIRS);
    for (size_t i = 0; i < n; i++) {
        if (!dirs[i].path[0])
            return open_error(errbuf, errlen, -DFS_ECONF, "an empty data "
                              "directory name");
        for (size_t j = 0; j < i; j++)
            if (strcmp(dirs[i].path, dirs[j].path) == 0)
                return open_error(errbuf, errlen, -DFS_ECONF, "data "
                                  "directory %s is listed twice",
                                  dirs[i].path);
    }
    return 0;
}

int vols_open(const struct vols_dir *dirs, size_t n,
              const struct vols_params *params, struct vols **out,
              char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    int rc = check_list(dirs, n, errbuf, errlen);
    if (rc < 0)
        return rc;
    struct vols *v = vols_alloc(dirs, n, params);
    if (!v)
        return open_error(errbuf, errlen, -ENOMEM, "out of memory");
    struct storeid id;
    rc = ident_agree(v, params->store.cluster_id, &id, errbuf, errlen);
    struct store_params sp = params->store;
    sp.cluster_id = id.cluster_id;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = store_open(v->dirs[i].fs, v->dirs[i].path, &sp, &v->dirs[i].s,
                        errbuf, errlen);
    if (rc == 0)
        rc = ident_adopt(v, &id, errbuf, errlen);
    if (rc == 0)
        rc = index_build(v, errbuf, errlen);
    if (rc < 0) {
        vols_close(v);
        return rc;
    }
    *out = v;
    return 0;
}

static void free_route(struct chunkidx_node *n, void *arg)
{
    (void)arg;
    free(route_of(n));
}

void vols_close(struct vols *v)
{
    if (!v)
        return;
    for (size_t i = 0; v->dirs && i < v->n; i++) {
        store_close(v->dirs[i].s);
        free(v->dirs[i].path);
    }
    if (v->index.table) {
        chunkidx_each(&v->index, free_route, NULL);
        chunkidx_release(&v->index);
    }
    if (v->gone.table) {
        chunkidx_each(&v->gone, free_route, NULL);
        chunkidx_release(&v->gone);
    }
    free(v->dirs);
    free(v->lost);
    pthread_mutex_destroy(&v->mu);
    free(v);
}
