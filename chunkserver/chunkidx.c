/*
 * chunkidx: chained hash table of intrusive nodes, Fibonacci hashing of
 * the 64-bit id (chunk ids are leader-chosen, often sequential, so the
 * multiplication spreads them over the high bits we keep).
 *
 * Invariants:
 *  1. Node n is on chain slot(n->id) and no two linked nodes share an id.
 *  2. count is the number of linked nodes; an insert doubles the table
 *     first when count has reached the number of chains.
 */
#include "chunkidx.h"

#include <errno.h>
#include <stdlib.h>

#define CHUNKIDX_BITS_MIN 10

static size_t slot(unsigned bits, uint64_t id)
{
    return (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> (64 - bits));
}

int chunkidx_init(struct chunkidx *x)
{
    x->bits = CHUNKIDX_BITS_MIN;
    x->count = 0;
    x->table = calloc((size_t)1 << x->bits, sizeof(*x->table));
    return x->table ? 0 : -ENOMEM;
}

void chunkidx_release(struct chunkidx *x)
{
    free(x->table);
    x->table = NULL;
    x->count = 0;
}

struct chunkidx_node *chunkidx_find(const struct chunkidx *x, uint64_t id)
{
    struct chunkidx_node *n = x->table[slot(x->bits, id)];
    while (n && n->id != id)
        n = n->next;
    return n;
}

static void grow(struct chunkidx *x)
{
    unsigned bits = x->bits + 1;
    struct chunkidx_node **t = calloc((size_t)1 << bits, sizeof(*t));
    if (!t)
        return;                     /* longer chains, still correct */
    for (size_t i = 0; i < ((size_t)1 << x->bits); i++) {
        struct chunkidx_node *n, *next;
        for (n = x->table[i]; n; n = next) {
            next = n->next;
            size_t j = slot(bits, n->id);
            n->next = t[j];
            t[j] = n;
        }
    }
    free(x->table);
    x->table = t;
    x->bits = bits;
}

void chunkidx_insert(struct chunkidx *x, struct chunkidx_node *n)
{
    if (x->count >= ((size_t)1 << x->bits))
        grow(x);
    size_t i = slot(x->bits, n->id);
    n->next = x->table[i];
    x->table[i] = n;
    x->count++;
}

void chunkidx_remove(struct chunkidx *x, struct chunkidx_node *n)
{
    struct chunkidx_node **p = &x->table[slot(x->bits, n->id)];
    while (*p != n)
        p = &(*p)->next;
    *p = n->next;
    x->count--;
}

void chunkidx_each(const struct chunkidx *x,
                   void (*fn)(struct chunkidx_node *n, void *arg), void *arg)
{
    for (size_t i = 0; i < ((size_t)1 << x->bits); i++) {
        struct chunkidx_node *n, *next;
        for (n = x->table[i]; n; n = next) {
            next = n->next;
            fn(n, arg);
        }
    }
}
