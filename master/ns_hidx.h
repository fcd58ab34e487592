/*
 * ns_hidx: an open-addressing index of uint32 handles whose keys live
 * elsewhere (in a directory's name arena, in the chunk table).
 *
 * A slot holds only the handle (4 bytes), so the index costs 4 / load bytes
 * per key; the caller supplies the key's hash and, through callbacks, how
 * to compare a handle against a key and how to rehash a handle.  Handle 0
 * is reserved (an empty slot).  Not thread-safe; the owner serialises.
 */
#ifndef DFS_NS_HIDX_H
#define DFS_NS_HIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ns_hidx {
    uint32_t *slots;   /* owned; cap entries, 0 = empty */
    uint32_t cap;      /* any size (not a power of two), 0 before first insert */
    uint32_t count;
};

/* True when handle h has the key `key` (an opaque pointer the caller chose). */
typedef bool (*ns_hidx_eq_fn)(const void *ctx, uint32_t h, const void *key);
/* The hash of handle h's key, the same value given at insert. */
typedef uint32_t (*ns_hidx_hash_fn)(const void *ctx, uint32_t h);

void ns_hidx_init(struct ns_hidx *x);
void ns_hidx_release(struct ns_hidx *x);

/* The handle whose key equals key, or 0. */
uint32_t ns_hidx_find(const struct ns_hidx *x, uint32_t hash, ns_hidx_eq_fn eq,
                      const void *ctx, const void *key);

/*
 * Adds handle h (not present yet) under hash.  Grows the table when needed,
 * calling rehash for every handle already in it.  0 or -ENOMEM (the index
 * is unchanged then).
 */
int ns_hidx_insert(struct ns_hidx *x, uint32_t hash, uint32_t h,
                   ns_hidx_hash_fn rehash, const void *ctx);

/* Removes handle h, present under hash.  Never allocates. */
void ns_hidx_remove(struct ns_hidx *x, uint32_t hash, uint32_t h,
                    ns_hidx_hash_fn rehash, const void *ctx);

/*
 * Empties the index and sizes it for n handles (0 frees the slots).
 * 0 or -ENOMEM (the index is then empty and unsized).
 */
int ns_hidx_reset(struct ns_hidx *x, uint32_t n);

/* Bytes of memory the index holds. */
size_t ns_hidx_bytes(const struct ns_hidx *x);

/* Hash helpers shared by the index users (fixed seeds: layout only). */
uint32_t ns_hidx_hash_bytes(const void *p, size_t len);
uint32_t ns_hidx_hash_u64(uint64_t v);

#endif
