/*
 * ns_map: a small uint64 -> uint64 hash map for the namespace's sparse
 * tables (sessions by id and by client, xattrs and locks by inode, open
 * counts, write leases by chunk id).
 *
 * Keys are never 0.  Iteration order depends on the layout: callers that
 * need a canonical order (snapshots, digests) collect and sort the keys.
 * Not thread-safe; the owner serialises.
 */
#ifndef DFS_NS_MAP_H
#define DFS_NS_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ns_map_slot {
    uint64_t key;   /* 0 = empty */
    uint64_t val;
};

struct ns_map {
    struct ns_map_slot *slots;   /* owned; cap entries, cap a power of two */
    uint32_t cap;
    uint32_t count;
};

void ns_map_init(struct ns_map *m);
/* Frees the slots; values that are pointers are the caller's to free first. */
void ns_map_release(struct ns_map *m);

/* True and *val set when key is present (val may be NULL). */
bool ns_map_get(const struct ns_map *m, uint64_t key, uint64_t *val);

/* Inserts or overwrites.  0, -EINVAL (key 0) or -ENOMEM (unchanged then). */
int ns_map_put(struct ns_map *m, uint64_t key, uint64_t val);

/* Removes key; returns whether it was present. */
bool ns_map_del(struct ns_map *m, uint64_t key);

/*
 * Iteration: start with *pos = 0; returns false at the end.  The map must
 * not change during the walk.
 */
bool ns_map_next(const struct ns_map *m, uint32_t *pos, uint64_t *key,
                 uint64_t *val);

/*
 * The keys in increasing order, in a malloc'ed array the caller frees
 * (NULL when the map is empty).  0 or -ENOMEM.
 */
int ns_map_sorted_keys(const struct ns_map *m, uint64_t **keys);

size_t ns_map_bytes(const struct ns_map *m);

#endif
