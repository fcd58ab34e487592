/*
 * ns_dir: a directory as an append-mostly array of entries in entry-id
 * order, a name arena, and a hash index by name.
 *
 * Owns the entry array, the arena and the index.  A new entry is appended
 * with the next id; a removed one becomes a tombstone (ino 0) that keeps
 * its id until compaction squeezes the array, the arena and the index.
 * Readdir is a binary search for the first id above the cookie, so the
 * cookie survives everything except the entry's own removal (after which
 * the listing simply resumes at the next larger id).
 *
 * Invariants:
 *  1. Ids strictly ascend along ents[0..n); every id < next_id.
 *  2. Arena offsets ascend along ents (names are appended in id order), so
 *     compaction can slide names down in place.
 *  3. When idx is sized it holds exactly the live entries (handle = position
 *     + 1); when it is empty, lookups scan (small directories, or after an
 *     allocation failure while rebuilding: slower, never wrong).
 *  4. Tombstones never exceed live + DIR_SLACK after a removal returns.
 */
#include "master/ns_dir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Directories up to this many entries are scanned instead of indexed. */
#define DIR_SMALL 8u
/* Tombstones tolerated beyond the live count before compaction. */
#define DIR_SLACK 8u

struct dir_key {
    const char *name;
    uint32_t len;
};

static uint64_t ent_id(const struct ns_dir_ent *e)
{
    return e->idlen >> 8;
}

static uint32_t ent_len(const struct ns_dir_ent *e)
{
    return (uint32_t)(e->idlen & 0xff);
}

static bool ent_is(const struct ns_dir *d, const struct ns_dir_ent *e,
                   const char *name, uint32_t len)
{
    return e->ino != 0 && ent_len(e) == len &&
           memcmp(d->names + e->off, name, len) == 0;
}

static bool idx_eq(const void *ctx, uint32_t h, const void *key)
{
    const struct ns_dir *d = ctx;
    const struct dir_key *k = key;
    return ent_is(d, &d->ents[h - 1], k->name, k->len);
}

static uint32_t idx_hash(const void *ctx, uint32_t h)
{
    const struct ns_dir *d = ctx;
    const struct ns_dir_ent *e = &d->ents[h - 1];
    return ns_hidx_hash_bytes(d->names + e->off, ent_len(e));
}

void ns_dir_init(struct ns_dir *d)
{
    memset(d, 0, sizeof(*d));
    d->next_id = NS_DIR_FIRST_ID;
    ns_hidx_init(&d->idx);
}

struct ns_dir *ns_dir_new(void)
{
    struct ns_dir *d = malloc(sizeof(*d));
    if (d)
        ns_dir_init(d);
    return d;
}

/* Frees the storage but keeps next_id: ids are never reused. */
static void drop_storage(struct ns_dir *d)
{
    uint64_t next_id = d->next_id;
    free(d->ents);
    free(d->names);
    ns_hidx_release(&d->idx);
    ns_dir_init(d);
    d->next_id = next_id;
}

void ns_dir_release(struct ns_dir *d)
{
    drop_storage(d);
}

/* Position of the live entry called name, or -1. */
static int64_t find_pos(const struct ns_dir *d, const char *name, uint32_t len)
{
    if (d->idx.cap != 0) {
        struct dir_key k = { name, len };
        uint32_t h = ns_hidx_find(&d->idx, ns_hidx_hash_bytes(name, len),
                                  idx_eq, d, &k);
        return (int64_t)h - 1;
    }
    for (uint32_t i = 0; i < d->n; i++) {
        if (ent_is(d, &d->ents[i], name, len))
            return i;
    }
    return -1;
}

static void fill_item(const struct ns_dir *d, uint32_t pos,
                      struct ns_dir_item *out)
{
    const struct ns_dir_ent *e = &d->ents[pos];
    out->name = d->names + e->off;
    out->len = ent_len(e);
    out->ino = e->ino;
    out->id = ent_id(e);
}

int ns_dir_lookup(const struct ns_dir *d, const char *name, uint32_t len,
                  struct ns_dir_item *out)
{
    int64_t pos = find_pos(d, name, len);
    if (pos < 0)
        return -ENOENT;
    fill_item(d, (uint32_t)pos, out);
    return 0;
}

static int reserve(struct ns_dir *d, uint32_t len)
{
    if (d->n == d->cap) {
        uint64_t cap = d->cap < 4 ? 4 : (uint64_t)d->cap + d->cap / 2;
        if (cap > UINT32_MAX)
            return -ENOMEM;
        struct ns_dir_ent *e = realloc(d->ents, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        d->ents = e;
        d->cap = (uint32_t)cap;
    }
    if ((uint64_t)d->names_len + len > d->names_cap) {
        uint64_t cap = d->names_cap < 32 ? 32 : (uint64_t)d->names_cap + d->names_cap / 2;
        if (cap < (uint64_t)d->names_len + len)
            cap = (uint64_t)d->names_len + len;
        if (cap > UINT32_MAX)
            return -ENOMEM;
        char *names = realloc(d->names, cap);
        if (!names)
            return -ENOMEM;
        d->names = names;
        d->names_cap = (uint32_t)cap;
    }
    return 0;
}

/* Indexes every live entry in ents[0..upto). 0 or -ENOMEM (index empty). */
static int rebuild_index(struct ns_dir *d, uint32_t upto, uint32_t expect)
{
    int rc = ns_hidx_reset(&d->idx, expect);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < upto; i++) {
        if (d->ents[i].ino == 0)
            continue;
        rc = ns_hidx_insert(&d->idx, idx_hash(d, i + 1), i + 1, idx_hash, d);
        if (rc < 0) {
            ns_hidx_release(&d->idx);
            return rc;
        }
    }
    return 0;
}

/* Indexes the entry just written at position n (not yet counted). */
static int index_new(struct ns_dir *d)
{
    if (d->idx.cap == 0 && d->live + 1 <= DIR_SMALL)
        return 0;
    if (d->idx.cap == 0)
        return rebuild_index(d, d->n + 1, d->live + 1);
    return ns_hidx_insert(&d->idx, idx_hash(d, d->n + 1), d->n + 1,
                          idx_hash, d);
}

static int append(struct ns_dir *d, const char *name, uint32_t len,
                  uint32_t ino, uint64_t id)
{
    int rc = reserve(d, len);
    if (rc < 0)
        return rc;
    struct ns_dir_ent *e = &d->ents[d->n];
    memcpy(d->names + d->names_len, name, len);
    e->idlen = id << 8 | len;
    e->ino = ino;
    e->off = d->names_len;
    rc = index_new(d);
    if (rc < 0)
        return rc;
    d->names_len += len;
    d->n++;
    d->live++;
    return 0;
}

int ns_dir_add(struct ns_dir *d, const char *name, uint32_t len, uint32_t ino,
               uint64_t *id)
{
    if (d->next_id > NS_DIR_ID_MAX)
        return -ENOSPC;
    int rc = append(d, name, len, ino, d->next_id);
    if (rc < 0)
        return rc;
    if (id)
        *id = d->next_id;
    d->next_id++;
    return 0;
}

int ns_dir_add_id(struct ns_dir *d, const char *name, uint32_t len,
                  uint32_t ino, uint64_t id)
{
    if (id < NS_DIR_FIRST_ID || id >= d->next_id ||
        (d->n > 0 && id <= ent_id(&d->ents[d->n - 1])))
        return -EINVAL;
    return append(d, name, len, ino, id);
}

int ns_dir_reserve(struct ns_dir *d, uint32_t n)
{
    if (d->n != 0 || n <= d->cap)
        return 0;
    struct ns_dir_ent *e = realloc(d->ents, (size_t)n * sizeof(*e));
    if (!e)
        return -ENOMEM;
    d->ents = e;
    d->cap = n;
    return n > DIR_SMALL ? ns_hidx_reset(&d->idx, n) : 0;
}

int ns_dir_set_ino(struct ns_dir *d, const char *name, uint32_t len,
                   uint32_t ino)
{
    int64_t pos = find_pos(d, name, len);
    if (pos < 0)
        return -ENOENT;
    d->ents[pos].ino = ino;
    return 0;
}

/* Slides live entries and their names down over the tombstones. */
static void compact(struct ns_dir *d)
{
    uint32_t w = 0, wn = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        struct ns_dir_ent e = d->ents[i];
        if (e.ino == 0)
            continue;
        memmove(d->names + wn, d->names + e.off, ent_len(&e));
        e.off = wn;
        wn += ent_len(&e);
        d->ents[w++] = e;
    }
    d->n = w;
    d->names_len = wn;
    if (d->cap > 2 * w + 4) {
        struct ns_dir_ent *e = realloc(d->ents, (size_t)(w + w / 2 + 4) * sizeof(*e));
        if (e) {
            d->ents = e;
            d->cap = w + w / 2 + 4;
        }
    }
    if (d->names_cap > 2 * wn + 32) {
        char *names = realloc(d->names, wn + wn / 2 + 32);
        if (names) {
            d->names = names;
            d->names_cap = wn + wn / 2 + 32;
        }
    }
    if (d->live > DIR_SMALL)
        (void)rebuild_index(d, d->n, d->live);   /* failure: scans, still right */
    else
        ns_hidx_release(&d->idx);
}

int ns_dir_remove(struct ns_dir *d, const char *name, uint32_t len)
{
    int64_t pos = find_pos(d, name, len);
    if (pos < 0)
        return -ENOENT;
    struct ns_dir_ent *e = &d->ents[pos];
    if (d->idx.cap != 0)
        ns_hidx_remove(&d->idx, ns_hidx_hash_bytes(name, len), (uint32_t)pos + 1,
                       idx_hash, d);
    e->ino = 0;
    d->live--;
    if (d->live == 0)
        drop_storage(d);
    else if (d->n - d->live > d->live + DIR_SLACK)
        compact(d);
    return 0;
}

void ns_dir_unadd(struct ns_dir *d, const char *name, uint32_t len)
{
    if (ns_dir_remove(d, name, len) == 0)
        d->next_id--;
}

int ns_dir_next(const struct ns_dir *d, uint64_t after, struct ns_dir_item *out)
{
    uint32_t lo = 0, hi = d->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ent_id(&d->ents[mid]) <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < d->n; lo++) {
        if (d->ents[lo].ino != 0) {
            fill_item(d, lo, out);
            return 0;
        }
    }
    return -ENOENT;
}

size_t ns_dir_bytes(const struct ns_dir *d)
{
    return (size_t)d->cap * sizeof(*d->ents) + d->names_cap +
           ns_hidx_bytes(&d->idx);
}
