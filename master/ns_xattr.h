/*
 * ns_xattr: extended attributes, kept apart from the inodes (most inodes
 * have none, so the inode struct carries no pointer for them).
 *
 * Names are 1..NS_XATTR_NAME_MAX bytes, values 0..NS_XATTR_SIZE_MAX, at
 * most NS_XATTR_TOTAL_MAX bytes of both per inode (the caller validates
 * names and namespaces).  Not thread-safe.
 */
#ifndef DFS_NS_XATTR_H
#define DFS_NS_XATTR_H

#include <stddef.h>
#include <stdint.h>

#include "master/ns_map.h"

struct ns_xattr_table {
    struct ns_map by_ino;   /* ino -> owned attribute list */
};

void ns_xattr_table_init(struct ns_xattr_table *t);
void ns_xattr_table_release(struct ns_xattr_table *t);

/* 0 with *val (borrowed until the next change) and *vlen, or -ENODATA. */
int ns_xattr_get(const struct ns_xattr_table *t, uint64_t ino, const char *name,
                 uint32_t nlen, const void **val, uint32_t *vlen);

/*
 * Sets name = val.  flags NS_XATTR_CREATE (present: -EEXIST) or
 * NS_XATTR_REPLACE (absent: -ENODATA).  0, those, -ENOSPC (over the
 * per-inode total) or -ENOMEM (unchanged then).
 */
int ns_xattr_set(struct ns_xattr_table *t, uint64_t ino, const char *name,
                 uint32_t nlen, const void *val, uint32_t vlen, uint32_t flags);

/* 0 or -ENODATA.  Never fails for memory. */
int ns_xattr_remove(struct ns_xattr_table *t, uint64_t ino, const char *name,
                    uint32_t nlen);

/*
 * listxattr(2): the names, each followed by a NUL, into buf[0..size).
 * *need gets the bytes the full list takes.  size 0 only measures.
 * 0 or -ERANGE (buf too small).
 */
int ns_xattr_list(const struct ns_xattr_table *t, uint64_t ino, char *buf,
                  size_t size, size_t *need);

/*
 * The i-th attribute in name order, for snapshots: 0, or -ENOENT past the
 * end.  Pointers borrowed until the next change.
 */
int ns_xattr_at(const struct ns_xattr_table *t, uint64_t ino, uint32_t i,
                const char **name, uint32_t *nlen, const void **val,
                uint32_t *vlen);

/* Forgets every attribute of ino (the inode is being freed). */
void ns_xattr_drop(struct ns_xattr_table *t, uint64_t ino);

#endif
