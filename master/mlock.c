/*
 * mlock: parked lock waiters, in an array in arrival order.
 *
 * The table is small (one entry per blocked F_SETLKW or flock in the
 * cluster), so every operation is a scan; arrival order makes wake-ups
 * and cancellations oldest first.
 *
 * Invariants:
 *  1. v[0..n) are the parked waiters, oldest first; each op is NS_OP_LOCK.
 *  2. A waiter is in the table or in flight at mclient, never both.
 */
#include "master/mlock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct mlock {
    struct mlock_waiter *v;
    size_t n, cap;
};

struct mlock *mlock_new(void)
{
    return calloc(1, sizeof(struct mlock));
}

void mlock_free(struct mlock *m)
{
    if (!m)
        return;
    free(m->v);
    free(m);
}

int mlock_park(struct mlock *m, const struct mlock_waiter *w)
{
    if (m->n >= MLOCK_MAX_WAITERS)
        return -ENOLCK;
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        struct mlock_waiter *v = realloc(m->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n] = *w;
    m->v[m->n++].due = false;
    return 0;
}

/* Removes v[i] into *out, keeping the order of the rest. */
static void take(struct mlock *m, size_t i, struct mlock_waiter *out)
{
    *out = m->v[i];
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(m->v[0]));
    m->n--;
}

size_t mlock_wake_ino(struct mlock *m, uint64_t ino)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].op.u.lock.ino == ino && !m->v[i].due) {
            m->v[i].due = true;
            k++;
        }
    }
    return k;
}

size_t mlock_wake_client(struct mlock *m, uint64_t client)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].op.client == client && !m->v[i].due) {
            m->v[i].due = true;
            k++;
        }
    }
    return k;
}

/* Would granting a conflict with granting b?  ns_lock's rule: other
 * owners, the same kind, overlapping ranges, one of them exclusive. */
static bool requests_conflict(const struct ns_op *a, const struct ns_op *b)
{
    const struct ns_op_lock *x = &a->u.lock, *y = &b->u.lock;
    if (x->ino != y->ino || x->kind != y->kind)
        return false;
    if (a->client == b->client && x->owner == y->owner)
        return false;
    if (x->type != NS_LOCK_WR && y->type != NS_LOCK_WR)
        return false;
    return x->kind == NS_LOCK_FLOCK || (x->start <= y->end && y->start <= x->end);
}

void mlock_settle(struct mlock *m, int (*test)(void *arg, const struct ns_op *op),
                  void *arg)
{
    /* Which due waiters the applied table grants now; without the
     * memory, only that test applies. */
    bool *grant = calloc(m->n ? m->n : 1, sizeof(*grant));
    for (size_t i = 0; i < m->n; i++) {
        struct mlock_waiter *w = &m->v[i];
        if (!w->due)
            continue;
        int rc = test(arg, &w->op);
        if (rc != 0) {
            w->due = rc != -EAGAIN;
            continue;
        }
        for (size_t j = 0; grant && j < i && w->due; j++)
            if (grant[j] && requests_conflict(&m->v[j].op, &w->op))
                w->due = false;
        if (grant)
            grant[i] = w->due;
    }
    free(grant);
}

bool mlock_take_due(struct mlock *m, struct mlock_waiter *out)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].due) {
            take(m, i, out);
            return true;
        }
    }
    return false;
}

bool mlock_unlock_cancels(uint64_t client, const struct ns_op_lock *unlock,
                          uint64_t wclient, const struct ns_op_lock *wait)
{
    if (client != wclient || unlock->ino != wait->ino ||
        unlock->owner != wait->owner || unlock->kind != wait->kind)
        return false;
    if (unlock->kind == NS_LOCK_FLOCK)
        return true;
    return unlock->start <= wait->end && wait->start <= unlock->end;
}

bool mlock_take_cancelled(struct mlock *m, uint64_t client, uint64_t ino,
                          uint64_t owner, uint32_t kind, uint64_t start,
                          uint64_t end, struct mlock_waiter *out)
{
    struct ns_op_lock un = { .ino = ino, .owner = owner, .kind = kind,
                             .type = NS_LOCK_UN, .start = start, .end = end };
    for (size_t i = 0; i < m->n; i++) {
        if (mlock_unlock_cancels(client, &un, m->v[i].op.client, &m->v[i].op.u.lock)) {
            take(m, i, out);
            return true;
        }
    }
    return false;
}

size_t mlock_drop_conn(struct mlock *m, const void *conn)
{
    size_t w = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].conn != conn)
            m->v[w++] = m->v[i];
    }
    size_t dropped = m->n - w;
    m->n = w;
    return dropped;
}

bool mlock_take_any(struct mlock *m, struct mlock_waiter *out)
{
    if (m->n == 0)
        return false;
    take(m, 0, out);
    return true;
}

size_t mlock_count(const struct mlock *m)
{
    return m->n;
}
