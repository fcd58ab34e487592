/*
 * ns_hidx: linear-probing index of uint32 handles keyed by the caller.
 *
 * Owns only the slot array.  The home slot of a hash is (hash * cap) >> 32,
 * so the capacity can grow by 1.5x instead of doubling (memory per key is
 * the point of this module: see docs/NAMESPACE.md).
 *
 * Invariants:
 *  1. count <= cap * 3 / 4 after every insert (probe runs stay short).
 *  2. Every handle sits in the probe run that starts at its home slot with
 *     no empty slot between home and it (linear probing's rule); removal
 *     keeps this by shifting later members of the run back (no tombstones).
 */
#include "master/ns_hidx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HIDX_MIN_CAP 8u

static uint32_t home_of(uint32_t hash, uint32_t cap)
{
    return (uint32_t)(((uint64_t)hash * cap) >> 32);
}

static uint32_t next_slot(uint32_t i, uint32_t cap)
{
    return i + 1 == cap ? 0 : i + 1;
}

void ns_hidx_init(struct ns_hidx *x)
{
    memset(x, 0, sizeof(*x));
}

void ns_hidx_release(struct ns_hidx *x)
{
    free(x->slots);
    ns_hidx_init(x);
}

uint32_t ns_hidx_find(const struct ns_hidx *x, uint32_t hash, ns_hidx_eq_fn eq,
                      const void *ctx, const void *key)
{
    if (x->cap == 0)
        return 0;
    for (uint32_t i = home_of(hash, x->cap);; i = next_slot(i, x->cap)) {
        uint32_t h = x->slots[i];
        if (h == 0)
            return 0;
        if (eq(ctx, h, key))
            return h;
    }
}

static void place(uint32_t *slots, uint32_t cap, uint32_t hash, uint32_t h)
{
    uint32_t i = home_of(hash, cap);
    while (slots[i] != 0)
        i = next_slot(i, cap);
    slots[i] = h;
}

static int grow(struct ns_hidx *x, ns_hidx_hash_fn rehash, const void *ctx)
{
    uint32_t cap = x->cap < HIDX_MIN_CAP ? HIDX_MIN_CAP : x->cap + x->cap / 2;
    if (cap <= x->cap)
        return -ENOMEM;
    uint32_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (uint32_t i = 0; i < x->cap; i++) {
        if (x->slots[i] != 0)
            place(slots, cap, rehash(ctx, x->slots[i]), x->slots[i]);
    }
    free(x->slots);
    x->slots = slots;
    x->cap = cap;
    return 0;
}

int ns_hidx_insert(struct ns_hidx *x, uint32_t hash, uint32_t h,
                   ns_hidx_hash_fn rehash, const void *ctx)
{
    if ((uint64_t)(x->count + 1) * 4 > (uint64_t)x->cap * 3) {
        int rc = grow(x, rehash, ctx);
        if (rc < 0)
            return rc;
    }
    place(x->slots, x->cap, hash, h);
    x->count++;
    return 0;
}

/* True when slot j, whose home is k, may move back into the hole at i. */
static bool may_fill(uint32_t i, uint32_t j, uint32_t k)
{
    if (i <= j)
        return k <= i || k > j;
    return k <= i && k > j;
}

void ns_hidx_remove(struct ns_hidx *x, uint32_t hash, uint32_t h,
                    ns_hidx_hash_fn rehash, const void *ctx)
{
    uint32_t i = home_of(hash, x->cap);
    while (x->slots[i] != h)
        i = next_slot(i, x->cap);
    x->slots[i] = 0;
    x->count--;
    for (uint32_t j = next_slot(i, x->cap); x->slots[j] != 0;
         j = next_slot(j, x->cap)) {
        uint32_t k = home_of(rehash(ctx, x->slots[j]), x->cap);
        if (may_fill(i, j, k)) {
            x->slots[i] = x->slots[j];
            x->slots[j] = 0;
            i = j;
        }
    }
}

int ns_hidx_reset(struct ns_hidx *x, uint32_t n)
{
    ns_hidx_release(x);
    if (n == 0)
        return 0;
    uint64_t cap = (uint64_t)n * 3 / 2 + HIDX_MIN_CAP;
    if (cap > UINT32_MAX)
        return -ENOMEM;
    x->slots = calloc(cap, sizeof(*x->slots));
    if (!x->slots)
        return -ENOMEM;
    x->cap = (uint32_t)cap;
    return 0;
}

size_t ns_hidx_bytes(const struct ns_hidx *x)
{
    return (size_t)x->cap * sizeof(*x->slots);
}

/* The finaliser of splitmix64: every input bit reaches every output bit. */
static uint64_t mix64(uint64_t v)
{
    v ^= v >> 30;
    v *= 0xbf58476d1ce4e5b9ULL;
    v ^= v >> 27;
    v *= 0x94d049bb133111ebULL;
    v ^= v >> 31;
    return v;
}

uint32_t ns_hidx_hash_u64(uint64_t v)
{
    return (uint32_t)(mix64(v) >> 32);
}

uint32_t ns_hidx_hash_bytes(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = mix64(h ^ w);
        b += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, b, len);
    return (uint32_t)(mix64(h ^ w ^ 0x5bd1e995) >> 32);
}
