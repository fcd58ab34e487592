/*
 * raftlogmem: a growable array of entries after a base index.
 *
 * Invariants:
 *  1. ents[i].index == base + 1 + i for i < n; terms never decrease.
 *  2. Each entry owns its data (NULL when len is 0); the array owns the
 *     entries, so dropping an entry frees its data.
 *  3. Compaction moves the survivors to the front: runs of entries stay
 *     contiguous, at the price of an O(n) move per compaction.
 */
#include "master/raftlogmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/raftalloc.h"

void raftlogmem_init(struct raftlogmem *l, uint64_t base, uint64_t base_term)
{
    memset(l, 0, sizeof(*l));
    l->base = base;
    l->base_term = base_term;
}

static void free_range(struct raftlogmem *l, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        free(l->ents[i].data);
}

void raftlogmem_release(struct raftlogmem *l)
{
    free_range(l, 0, l->n);
    free(l->ents);
    raftlogmem_init(l, 0, 0);
}

uint64_t raftlogmem_last(const struct raftlogmem *l)
{
    return l->base + l->n;
}

uint64_t raftlogmem_last_term(const struct raftlogmem *l)
{
    return l->n ? l->ents[l->n - 1].term : l->base_term;
}

uint64_t raftlogmem_term(const struct raftlogmem *l, uint64_t index)
{
    if (index == l->base)
        return l->base_term;
    const struct raft_entry *e = raftlogmem_get(l, index);
    return e ? e->term : 0;
}

const struct raft_entry *raftlogmem_get(const struct raftlogmem *l,
                                        uint64_t index)
{
    if (index <= l->base || index > l->base + l->n)
        return NULL;
    return &l->ents[index - l->base - 1];
}

static int grow(struct raftlogmem *l)
{
    if (l->n < l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct raft_entry *e = raftalloc_realloc(l->ents, cap * sizeof(*e));
    if (!e)
        return -ENOMEM;
    l->ents = e;
    l->cap = cap;
    return 0;
}

static int copy_data(const void *data, uint32_t len, void **out)
{
    *out = NULL;
    if (len == 0)
        return 0;
    *out = raftalloc_malloc(len);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, data, len);
    return 0;
}

int raftlogmem_append(struct raftlogmem *l, uint64_t term, uint32_t type,
                      const void *data, uint32_t len)
{
    void *copy;
    if (grow(l) < 0 || copy_data(data, len, &copy) < 0)
        return -ENOMEM;
    l->ents[l->n] = (struct raft_entry){
        .index = raftlogmem_last(l) + 1,
        .term = term,
        .type = type,
        .len = len,
        .data = copy,
    };
    l->n++;
    return 0;
}

int raftlogmem_overwrite(struct raftlogmem *l, uint64_t index,
                         const struct raft_entry *e)
{
    struct raft_entry *slot = (struct raft_entry *)raftlogmem_get(l, index);
    void *copy;
    if (copy_data(e->data, e->len, &copy) < 0)
        return -ENOMEM;
    free(slot->data);
    *slot = (struct raft_entry){
        .index = index, .term = e->term, .type = e->type, .len = e->len,
        .data = copy,
    };
    return 0;
}

void raftlogmem_truncate(struct raftlogmem *l, uint64_t from)
{
    if (from > raftlogmem_last(l))
        return;
    size_t keep = from - l->base - 1;
    free_range(l, keep, l->n);
    l->n = keep;
}

void raftlogmem_compact(struct raftlogmem *l, uint64_t upto)
{
    if (upto <= l->base || upto > raftlogmem_last(l))
        return;
    size_t drop = upto - l->base;
    uint64_t term = l->ents[drop - 1].term;
    free_range(l, 0, drop);
    memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof(*l->ents));
    l->n -= drop;
    l->base = upto;
    l->base_term = term;
}

void raftlogmem_reset(struct raftlogmem *l, uint64_t base, uint64_t base_term)
{
    free_range(l, 0, l->n);
    l->n = 0;
    l->base = base;
    l->base_term = base_term;
}
