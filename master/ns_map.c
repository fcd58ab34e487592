/*
 * ns_map: linear-probing uint64 -> uint64 map, power-of-two capacity.
 *
 * Invariants:
 *  1. count <= cap * 3 / 4; cap is 0 or a power of two >= 8; key 0 marks
 *     an empty slot, so 0 is refused as a key and never found.
 *  2. Linear probing without tombstones: deletion shifts the rest of the
 *     probe run back, so a lookup stops at the first empty slot.
 *  3. The table shrinks by half when it falls under 1/8 full, so a map
 *     that once held many keys does not keep their memory.
 */
#include "master/ns_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/ns_hidx.h"

#define MAP_MIN_CAP 8u

static uint32_t home_of(uint64_t key, uint32_t cap)
{
    return ns_hidx_hash_u64(key) & (cap - 1);
}

void ns_map_init(struct ns_map *m)
{
    memset(m, 0, sizeof(*m));
}

void ns_map_release(struct ns_map *m)
{
    free(m->slots);
    ns_map_init(m);
}

static struct ns_map_slot *find_slot(const struct ns_map *m, uint64_t key)
{
    /* 0 marks empty slots: it is never a key (and must not match one) */
    if (m->cap == 0 || key == 0)
        return NULL;
    for (uint32_t i = home_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key)
            return &m->slots[i];
        if (m->slots[i].key == 0)
            return NULL;
    }
}

bool ns_map_get(const struct ns_map *m, uint64_t key, uint64_t *val)
{
    const struct ns_map_slot *s = find_slot(m, key);
    if (!s)
        return false;
    if (val)
        *val = s->val;
    return true;
}

static void place(struct ns_map_slot *slots, uint32_t cap, uint64_t key,
                  uint64_t val)
{
    uint32_t i = home_of(key, cap);
    while (slots[i].key != 0)
        i = (i + 1) & (cap - 1);
    slots[i].key = key;
    slots[i].val = val;
}

static int resize(struct ns_map *m, uint32_t cap)
{
    struct ns_map_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != 0)
            place(slots, cap, m->slots[i].key, m->slots[i].val);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int ns_map_put(struct ns_map *m, uint64_t key, uint64_t val)
{
    if (key == 0)
        return -EINVAL;
    struct ns_map_slot *s = find_slot(m, key);
    if (s) {
        s->val = val;
        return 0;
    }
    if ((uint64_t)(m->count + 1) * 4 > (uint64_t)m->cap * 3) {
        uint32_t cap = m->cap ? m->cap * 2 : MAP_MIN_CAP;
        if (cap == 0)
            return -ENOMEM;
        int rc = resize(m, cap);
        if (rc < 0)
            return rc;
    }
    place(m->slots, m->cap, key, val);
    m->count++;
    return 0;
}

static void shift_back(struct ns_map *m, uint32_t hole)
{
    uint32_t mask = m->cap - 1;
    for (uint32_t j = (hole + 1) & mask; m->slots[j].key != 0; j = (j + 1) & mask) {
        uint32_t k = home_of(m->slots[j].key, m->cap);
        /* j may fill the hole when its home is not in (hole, j], cyclically */
        if (((j - k) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = 0;
            hole = j;
        }
    }
}

bool ns_map_del(struct ns_map *m, uint64_t key)
{
    struct ns_map_slot *s = find_slot(m, key);
    if (!s)
        return false;
    s->key = 0;
    m->count--;
    shift_back(m, (uint32_t)(s - m->slots));
    if (m->count == 0) {
        ns_map_release(m);
    } else if (m->cap > MAP_MIN_CAP && m->count < m->cap / 8) {
        (void)resize(m, m->cap / 2);   /* on -ENOMEM the map stays larger */
    }
    return true;
}

bool ns_map_next(const struct ns_map *m, uint32_t *pos, uint64_t *key,
                 uint64_t *val)
{
    for (; *pos < m->cap; (*pos)++) {
        if (m->slots[*pos].key != 0) {
            *key = m->slots[*pos].key;
            if (val)
                *val = m->slots[*pos].val;
            (*pos)++;
            return true;
        }
    }
    return false;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int ns_map_sorted_keys(const struct ns_map *m, uint64_t **keys)
{
    *keys = NULL;
    if (m->count == 0)
        return 0;
    uint64_t *k = malloc((size_t)m->count * sizeof(*k));
    if (!k)
        return -ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != 0)
            k[n++] = m->slots[i].key;
    }
    qsort(k, n, sizeof(*k), cmp_u64);
    *keys = k;
    return 0;
}

size_t ns_map_bytes(const struct ns_map *m)
{
    return (size_t)m->cap * sizeof(*m->slots);
}
