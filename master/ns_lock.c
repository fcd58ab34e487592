/*
 * ns_lock: lock lists per inode, rebuilt on every change.
 *
 * Owns the lists.  A change builds the inode's new list in a fresh array
 * (other owners' locks copied, the requester's cut, merged and added) and
 * swaps it in, so a failure leaves the old list untouched.
 *
 * Invariants:
 *  1. A list is sorted by (sess, owner, kind, start) and never empty (an
 *     inode without locks has no list).
 *  2. One owner's POSIX locks are disjoint, and two of the same type are
 *     never adjacent (they would have merged): the list is canonical, so
 *     replicas and snapshots compare equal.
 *  3. One owner has at most one flock per inode.
 *  4. No two owners hold conflicting locks.
 */
#include "master/ns_lock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/ns_op.h"

struct lock_list {
    size_t n;
    struct ns_lock v[];
};

void ns_lock_table_init(struct ns_lock_table *t)
{
    ns_map_init(&t->by_ino);
}

void ns_lock_table_release(struct ns_lock_table *t)
{
    uint32_t pos = 0;
    uint64_t ino, ptr;
    while (ns_map_next(&t->by_ino, &pos, &ino, &ptr))
        free((void *)(uintptr_t)ptr);
    ns_map_release(&t->by_ino);
}

static struct lock_list *list_of(const struct ns_lock_table *t, uint64_t ino)
{
    uint64_t ptr;
    return ns_map_get(&t->by_ino, ino, &ptr) ? (struct lock_list *)(uintptr_t)ptr : NULL;
}

const struct ns_lock *ns_lock_list(const struct ns_lock_table *t, uint64_t ino,
                                   size_t *n)
{
    struct lock_list *l = list_of(t, ino);
    *n = l ? l->n : 0;
    return l ? l->v : NULL;
}

static bool same_owner(const struct ns_lock *a, const struct ns_lock *b)
{
    return a->sess == b->sess && a->owner == b->owner && a->kind == b->kind;
}

static bool overlaps(const struct ns_lock *a, uint64_t start, uint64_t end)
{
    return a->start <= end && start <= a->end;
}

/* Overlapping or adjacent: same-type locks that touch merge. */
static bool touches(const struct ns_lock *a, uint64_t start, uint64_t end)
{
    if (overlaps(a, start, end))
        return true;
    return (a->end != UINT64_MAX && a->end + 1 == start) ||
           (end != UINT64_MAX && end + 1 == a->start);
}

static bool conflicts(const struct ns_lock *held, const struct ns_lock *req)
{
    return held->kind == req->kind && !same_owner(held, req) &&
           (held->type == NS_LOCK_WR || req->type == NS_LOCK_WR) &&
           overlaps(held, req->start, req->end);
}

int ns_lock_test(const struct ns_lock_table *t, uint64_t ino,
                 const struct ns_lock *req, struct ns_lock *conflict)
{
    struct lock_list *l = list_of(t, ino);
    for (size_t i = 0; l && i < l->n; i++) {
        if (conflicts(&l->v[i], req)) {
            if (conflict)
                *conflict = l->v[i];
            return -EAGAIN;
        }
    }
    return 0;
}

static int cmp_lock(const void *pa, const void *pb)
{
    const struct ns_lock *a = pa, *b = pb;
    if (a->sess != b->sess)
        return a->sess < b->sess ? -1 : 1;
    if (a->owner != b->owner)
        return a->owner < b->owner ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return 0;
}

/* Installs nl (owned; sorted here) as ino's list; an empty one drops it. */
static int install(struct ns_lock_table *t, uint64_t ino, struct lock_list *nl)
{
    struct lock_list *old = list_of(t, ino);
    if (nl->n == 0) {
        free(nl);
        ns_map_del(&t->by_ino, ino);
        free(old);
        return 0;
    }
    qsort(nl->v, nl->n, sizeof(nl->v[0]), cmp_lock);
    int rc = ns_map_put(&t->by_ino, ino, (uint64_t)(uintptr_t)nl);
    if (rc < 0) {
        free(nl);
        return rc;
    }
    free(old);
    return 0;
}

/*
 * Folds the requester's lock l into the new list: merged into [*s, *e]
 * when it is the same type and touches the request, cut around the
 * request when it overlaps, else kept.
 */
static void fold_own(struct lock_list *nl, const struct ns_lock *l,
                     const struct ns_lock *req, uint64_t *s, uint64_t *e,
                     bool *released)
{
    if (req->type != NS_LOCK_UN && l->type == req->type &&
        touches(l, req->start, req->end)) {
        *s = l->start < *s ? l->start : *s;
        *e = l->end > *e ? l->end : *e;
        return;
    }
    if (!overlaps(l, req->start, req->end)) {
        nl->v[nl->n++] = *l;
        return;
    }
    if (req->type < l->type)
        *released = true;
    if (l->start < req->start) {
        nl->v[nl->n] = *l;
        nl->v[nl->n++].end = req->start - 1;
    }
    if (l->end > req->end) {
        nl->v[nl->n] = *l;
        nl->v[nl->n++].start = req->end + 1;
    }
}

static bool valid(const struct ns_lock *req)
{
    if (req->type > NS_LOCK_WR || req->start > req->end)
        return false;
    if (req->kind == NS_LOCK_FLOCK)
        return req->start == 0 && req->end == UINT64_MAX;
    return req->kind == NS_LOCK_POSIX;
}

int ns_lock_set(struct ns_lock_table *t, uint64_t ino,
                const struct ns_lock *req, bool *released)
{
    bool rel = false;
    if (!valid(req))
        return -EINVAL;
    if (req->type != NS_LOCK_UN && ns_lock_test(t, ino, req, NULL) < 0)
        return -EAGAIN;
    struct lock_list *l = list_of(t, ino);
    size_t n = l ? l->n : 0;
    /* a request splits at most one lock in two, and adds itself */
    struct lock_list *nl = malloc(sizeof(*nl) + (n + 2) * sizeof(nl->v[0]));
    if (!nl)
        return -ENOMEM;
    nl->n = 0;
    uint64_t s = req->start, e = req->end;
    for (size_t i = 0; i < n; i++) {
        if (same_owner(&l->v[i], req))
            fold_own(nl, &l->v[i], req, &s, &e, &rel);
        else
            nl->v[nl->n++] = l->v[i];
    }
    if (req->type != NS_LOCK_UN) {
        nl->v[nl->n] = *req;
        nl->v[nl->n].start = s;
        nl->v[nl->n++].end = e;
    }
    int rc = install(t, ino, nl);
    if (rc == 0 && released)
        *released = rel;
    return rc;
}

bool ns_lock_drop(struct ns_lock_table *t, uint64_t ino, uint64_t sess,
                  uint64_t owner, uint32_t kind)
{
    struct lock_list *l = list_of(t, ino);
    if (!l)
        return false;
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct ns_lock *k = &l->v[i];
        bool mine = k->sess == sess && (owner == 0 || (k->owner == owner && k->kind == kind));
        if (!mine)
            l->v[w++] = *k;
    }
    bool dropped = w != l->n;
    l->n = w;
    if (w == 0) {
        ns_map_del(&t->by_ino, ino);
        free(l);
    }
    return dropped;
}

void ns_lock_forget(struct ns_lock_table *t, uint64_t ino)
{
    struct lock_list *l = list_of(t, ino);
    if (!l)
        return;
    ns_map_del(&t->by_ino, ino);
    free(l);
}

bool ns_lock_held(const struct ns_lock_table *t, uint64_t ino, uint64_t sess)
{
    struct lock_list *l = list_of(t, ino);
    for (size_t i = 0; l && i < l->n; i++) {
        if (l->v[i].sess == sess)
            return true;
    }
    return false;
}
