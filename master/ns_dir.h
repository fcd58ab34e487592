/*
 * ns_dir: one directory's entries: name -> inode, each with a stable
 * entry id that serves as the readdir cookie.
 *
 * Entry ids grow monotonically per directory and are never reused, so a
 * listing that resumes "after id c" sees every entry that existed for the
 * whole listing exactly once, whatever was inserted, deleted, rehashed or
 * compacted meanwhile.  Ids 1 and 2 are left for "." and ".." (the caller
 * decides whether to show them); the first entry gets id 3.
 *
 * Names are byte strings of 1..255 bytes (the caller validates them); they
 * are copied into the directory.  Not thread-safe.
 */
#ifndef DFS_NS_DIR_H
#define DFS_NS_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "master/ns_hidx.h"

#define NS_DIR_FIRST_ID 3u
#define NS_DIR_ID_MAX ((UINT64_C(1) << 56) - 1)

/* One slot of the entry array: ids ascend along the array. */
struct ns_dir_ent {
    uint64_t idlen;   /* entry id << 8 | name length */
    uint32_t ino;     /* 0 = deleted (a tombstone until compaction) */
    uint32_t off;     /* name offset in the arena */
};

struct ns_dir {
    struct ns_dir_ent *ents;   /* owned; n used of cap, tombstones included */
    uint32_t n, cap;
    uint32_t live;             /* entries that are not tombstones */
    char *names;               /* owned arena; names_len used of names_cap */
    uint32_t names_len, names_cap;
    struct ns_hidx idx;        /* handle = array position + 1; empty while small */
    uint64_t next_id;
};

/* What a lookup or a listing step returns; name borrowed from the
 * directory, valid until its next change. */
struct ns_dir_item {
    const char *name;
    uint32_t len;
    uint32_t ino;
    uint64_t id;
};

void ns_dir_init(struct ns_dir *d);
void ns_dir_release(struct ns_dir *d);

/* A malloc'ed, initialised directory (free with ns_dir_release + free), or
 * NULL. */
struct ns_dir *ns_dir_new(void);

/* 0 and *out filled, or -ENOENT. */
int ns_dir_lookup(const struct ns_dir *d, const char *name, uint32_t len,
                  struct ns_dir_item *out);

/*
 * Adds name -> ino (ino != 0, name absent) with the next entry id, returned
 * in *id when id is not NULL.  0 or -ENOMEM (unchanged then).
 */
int ns_dir_add(struct ns_dir *d, const char *name, uint32_t len, uint32_t ino,
               uint64_t *id);

/*
 * As ns_dir_add with a given id, for loading snapshots: id must be above
 * every id in the directory and below next_id.  0, -EINVAL or -ENOMEM.
 */
int ns_dir_add_id(struct ns_dir *d, const char *name, uint32_t len,
                  uint32_t ino, uint64_t id);

/*
 * Sizes an empty directory for n entries (the array and the index), so a
 * loader adds them without regrowing.  0 or -ENOMEM (still usable).
 */
int ns_dir_reserve(struct ns_dir *d, uint32_t n);

/* Points an existing entry at another inode, keeping its id.  0 or -ENOENT. */
int ns_dir_set_ino(struct ns_dir *d, const char *name, uint32_t len,
                   uint32_t ino);

/* Removes an entry.  0 or -ENOENT.  May compact (never fails for memory). */
int ns_dir_remove(struct ns_dir *d, const char *name, uint32_t len);

/* Takes back the latest ns_dir_add() (named name), its id included, for an
 * op that fails after adding. */
void ns_dir_unadd(struct ns_dir *d, const char *name, uint32_t len);

/* The first live entry with id > after: 0 and *out filled, or -ENOENT. */
int ns_dir_next(const struct ns_dir *d, uint64_t after, struct ns_dir_item *out);

static inline uint32_t ns_dir_count(const struct ns_dir *d)
{
    return d->live;
}

/* Bytes of heap the directory holds (arrays and index, not the struct). */
size_t ns_dir_bytes(const struct ns_dir *d);

#endif
