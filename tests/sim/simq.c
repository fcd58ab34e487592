/*
 * simq: binary heap of simulator events, and deep copies of messages.
 *
 * Invariants:
 *  1. heap[i] precedes both children in (time, seq) order.
 *  2. A queued SIMQ_DELIVER event owns its msg and everything it points to.
 */
#include "tests/sim/simq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void simq_init(struct simq *q)
{
    memset(q, 0, sizeof(*q));
}

void simq_release(struct simq *q)
{
    for (size_t i = 0; i < q->n; i++)
        simmsg_free(q->heap[i].msg);
    free(q->heap);
    simq_init(q);
}

static bool before(const struct simq_ev *a, const struct simq_ev *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void swap(struct simq_ev *a, struct simq_ev *b)
{
    struct simq_ev t = *a;
    *a = *b;
    *b = t;
}

int simq_push(struct simq *q, struct simq_ev ev)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        struct simq_ev *h = realloc(q->heap, cap * sizeof(*h));
        if (!h) {
            simmsg_free(ev.msg);
            return -ENOMEM;
        }
        q->heap = h;
        q->cap = cap;
    }
    ev.seq = q->next_seq++;
    size_t i = q->n++;
    q->heap[i] = ev;
    while (i > 0 && before(&q->heap[i], &q->heap[(i - 1) / 2])) {
        swap(&q->heap[i], &q->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return 0;
}

bool simq_pop(struct simq *q, struct simq_ev *out)
{
    if (q->n == 0)
        return false;
    *out = q->heap[0];
    q->heap[0] = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n && before(&q->heap[l], &q->heap[m]))
            m = l;
        if (r < q->n && before(&q->heap[r], &q->heap[m]))
            m = r;
        if (m == i)
            break;
        swap(&q->heap[i], &q->heap[m]);
        i = m;
    }
    return true;
}

static void *dup_bytes(const void *p, size_t len)
{
    if (len == 0)
        return NULL;
    void *c = malloc(len);
    if (c)
        memcpy(c, p, len);
    return c;
}

static int clone_entries(struct raft_msg *c, const struct raft_msg *m)
{
    uint32_t n = m->u.append.n_entries;
    if (n == 0) {
        c->u.append.entries = NULL;
        return 0;
    }
    struct raft_entry *e = calloc(n, sizeof(*e));
    if (!e)
        return -ENOMEM;
    c->u.append.entries = e;
    for (uint32_t i = 0; i < n; i++) {
        e[i] = m->u.append.entries[i];
        e[i].data = dup_bytes(e[i].data, e[i].len);
        if (e[i].len && !e[i].data)
            return -ENOMEM;
    }
    return 0;
}

struct raft_msg *simmsg_clone(const struct raft_msg *m)
{
    struct raft_msg *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = *m;
    int rc = 0;
    if (m->type == RAFT_MSG_APPEND) {
        rc = clone_entries(c, m);
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        c->u.snapshot.data = dup_bytes(m->u.snapshot.data, m->u.snapshot.len);
        rc = m->u.snapshot.len && !c->u.snapshot.data ? -ENOMEM : 0;
    }
    if (rc < 0) {
        simmsg_free(c);
        return NULL;
    }
    return c;
}

void simmsg_free(struct raft_msg *m)
{
    if (!m)
        return;
    if (m->type == RAFT_MSG_APPEND && m->u.append.entries) {
        for (uint32_t i = 0; i < m->u.append.n_entries; i++)
            free(m->u.append.entries[i].data);
        free((void *)m->u.append.entries);
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        free((void *)m->u.snapshot.data);
    }
    free(m);
}
