/*
 * ns_chunk: the chunk table: chunk id -> version, length, and the file
 * position (inode, chunk index) that holds it.
 *
 * Records live in pages and are named by a dense internal handle (>= 1),
 * which is what a file's chunk list stores (4 bytes instead of the 8-byte
 * id); an index finds a record by chunk id.  Chunk ids are chosen by the
 * leader and never reused (a stale replica must never pass for a new
 * chunk); max_id remembers the largest ever seen so a new leader continues
 * above it.  Not thread-safe.
 */
#ifndef DFS_NS_CHUNK_H
#define DFS_NS_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "master/ns_hidx.h"

#define NS_CHUNK_PAGE 4096u

/* 32 bytes: docs/NAMESPACE.md counts them. */
struct ns_chunk {
    uint64_t id;        /* 0 = free record */
    uint32_t version;   /* of the latest write session (or trim) */
    uint32_t committed; /* version whose content is committed: WRITE_END
                         * or trim; 0 = nothing yet.  A replica at a version
                         * in [committed, version] holds every committed
                         * byte; one below committed is stale. */
    uint32_t length;    /* bytes committed by WRITE_END (or trimmed) */
    uint32_t ino;
    uint32_t index;     /* chunk index in the file */
    uint32_t trim_from; /* 0, or the committed content was last changed by
                         * a truncate that cut it: a replica at a version
                         * in [trim_from, committed) holds the content from
                         * before the cut and becomes good once trimmed to
                         * length and moved to committed (CS_ORDER_TRUNCATE).
                         * Cleared when a write session commits. */
};

struct ns_chunk_table {
    struct ns_chunk **pages;   /* owned; npages pages of NS_CHUNK_PAGE records */
    uint32_t npages;
    uint32_t top;              /* handles 1..top have been used */
    uint32_t *free;            /* owned stack of freed handles */
    uint32_t nfree, free_cap;
    struct ns_hidx idx;        /* by chunk id */
    uint64_t count;            /* live records */
    uint64_t max_id;           /* largest id ever added */
};

void ns_chunk_table_init(struct ns_chunk_table *t);
void ns_chunk_table_release(struct ns_chunk_table *t);

/* The record of a live handle (the pointer is valid until the next add). */
struct ns_chunk *ns_chunk_get(const struct ns_chunk_table *t, uint32_t h);

/* The handle of chunk id, or 0. */
uint32_t ns_chunk_find(const struct ns_chunk_table *t, uint64_t id);

/*
 * Adds a copy of rec, whose id must not be 0.  0 and *h, -EINVAL,
 * -DFS_EIDINUSE (id present) or -ENOMEM (unchanged then).  max_id rises
 * to the id.
 */
int ns_chunk_add(struct ns_chunk_table *t, const struct ns_chunk *rec, uint32_t *h);

/* Removes a live handle. */
void ns_chunk_remove(struct ns_chunk_table *t, uint32_t h);

/* The next live handle > after, or 0 at the end (handle order, not id order). */
uint32_t ns_chunk_next(const struct ns_chunk_table *t, uint32_t after);

size_t ns_chunk_table_bytes(const struct ns_chunk_table *t);

#endif
