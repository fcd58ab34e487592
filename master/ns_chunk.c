/*
 * ns_chunk: paged chunk records, a free-handle stack and an id index.
 *
 * Owns the pages, the free stack and the index.
 *
 * Invariants:
 *  1. A handle h in 1..top is live iff its record's id != 0; a free handle
 *     is on the free stack at most once (never when the stack could not
 *     grow: that record just stays unused).
 *  2. The index holds exactly the live handles, hashed by id.
 *  3. max_id >= every id ever added (ids are never reused by the leader).
 */
#include "master/ns_chunk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"

_Static_assert(sizeof(struct ns_chunk) == 32, "chunk layout changed: update docs/NAMESPACE.md");

void ns_chunk_table_init(struct ns_chunk_table *t)
{
    memset(t, 0, sizeof(*t));
    ns_hidx_init(&t->idx);
}

void ns_chunk_table_release(struct ns_chunk_table *t)
{
    for (uint32_t p = 0; p < t->npages; p++)
        free(t->pages[p]);
    free(t->pages);
    free(t->free);
    ns_hidx_release(&t->idx);
    ns_chunk_table_init(t);
}

struct ns_chunk *ns_chunk_get(const struct ns_chunk_table *t, uint32_t h)
{
    return &t->pages[h / NS_CHUNK_PAGE][h % NS_CHUNK_PAGE];
}

static bool idx_eq(const void *ctx, uint32_t h, const void *key)
{
    return ns_chunk_get(ctx, h)->id == *(const uint64_t *)key;
}

static uint32_t idx_hash(const void *ctx, uint32_t h)
{
    return ns_hidx_hash_u64(ns_chunk_get(ctx, h)->id);
}

uint32_t ns_chunk_find(const struct ns_chunk_table *t, uint64_t id)
{
    return ns_hidx_find(&t->idx, ns_hidx_hash_u64(id), idx_eq, t, &id);
}

/* A free handle whose page exists, without taking it yet; 0 on -ENOMEM. */
static uint32_t peek_handle(struct ns_chunk_table *t)
{
    if (t->nfree > 0)
        return t->free[t->nfree - 1];
    if (t->top == UINT32_MAX)
        return 0;
    uint32_t h = t->top + 1;
    uint32_t p = h / NS_CHUNK_PAGE;
    if (p >= t->npages) {
        struct ns_chunk **pages = realloc(t->pages, (size_t)(p + 1) * sizeof(*pages));
        if (!pages)
            return 0;
        t->pages = pages;
        t->pages[p] = calloc(NS_CHUNK_PAGE, sizeof(struct ns_chunk));
        if (!t->pages[p])
            return 0;
        t->npages = p + 1;
    }
    return h;
}

static void take_handle(struct ns_chunk_table *t, uint32_t h)
{
    if (t->nfree > 0 && t->free[t->nfree - 1] == h)
        t->nfree--;
    else
        t->top = h;
}

int ns_chunk_add(struct ns_chunk_table *t, const struct ns_chunk *rec, uint32_t *h)
{
    uint64_t id = rec->id;
    if (id == 0)
        return -EINVAL;
    if (ns_chunk_find(t, id) != 0)
        return -DFS_EIDINUSE;
    uint32_t nh = peek_handle(t);
    if (nh == 0)
        return -ENOMEM;
    struct ns_chunk *c = ns_chunk_get(t, nh);
    *c = *rec;
    int rc = ns_hidx_insert(&t->idx, ns_hidx_hash_u64(id), nh, idx_hash, t);
    if (rc < 0) {
        c->id = 0;
        return rc;
    }
    take_handle(t, nh);
    t->count++;
    if (id > t->max_id)
        t->max_id = id;
    *h = nh;
    return 0;
}

void ns_chunk_remove(struct ns_chunk_table *t, uint32_t h)
{
    struct ns_chunk *c = ns_chunk_get(t, h);
    ns_hidx_remove(&t->idx, ns_hidx_hash_u64(c->id), h, idx_hash, t);
    c->id = 0;
    t->count--;
    if (t->nfree == t->free_cap) {
        uint32_t cap = t->free_cap ? t->free_cap * 2 : 64;
        uint32_t *f = realloc(t->free, (size_t)cap * sizeof(*f));
        if (!f)
            return;   /* the handle leaks until the next restart: harmless */
        t->free = f;
        t->free_cap = cap;
    }
    t->free[t->nfree++] = h;
}

uint32_t ns_chunk_next(const struct ns_chunk_table *t, uint32_t after)
{
    for (uint64_t h = (uint64_t)after + 1; h <= t->top; h++) {
        if (ns_chunk_get(t, (uint32_t)h)->id != 0)
            return (uint32_t)h;
    }
    return 0;
}

size_t ns_chunk_table_bytes(const struct ns_chunk_table *t)
{
    return (size_t)t->npages * (NS_CHUNK_PAGE * sizeof(struct ns_chunk) +
                                sizeof(*t->pages)) +
           (size_t)t->free_cap * sizeof(*t->free) + ns_hidx_bytes(&t->idx);
}
