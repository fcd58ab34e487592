/*
 * chunkidx: an intrusive hash index of chunks by id, the store's map from
 * chunk id to its in-memory record.
 *
 * The caller embeds a struct chunkidx_node in its own record and owns the
 * records; the index only links them (it never allocates or frees a node).
 * Not thread-safe: the caller serializes every call (the store holds its
 * index mutex).
 */
#ifndef DFS_CHUNKIDX_H
#define DFS_CHUNKIDX_H

#include <stddef.h>
#include <stdint.h>

struct chunkidx_node {
    uint64_t id;                    /* set by the caller, fixed while linked */
    struct chunkidx_node *next;     /* the index's */
};

struct chunkidx {
    struct chunkidx_node **table;
    unsigned bits;                  /* the table has 1 << bits chains */
    size_t count;
};

/* An empty index; 0 or -ENOMEM. */
int chunkidx_init(struct chunkidx *x);

/* Frees the table; the nodes still linked are the caller's. */
void chunkidx_release(struct chunkidx *x);

/* The node with that id, or NULL. */
struct chunkidx_node *chunkidx_find(const struct chunkidx *x, uint64_t id);

/* Links n, whose id must be absent.  The table doubles when the chains
 * average one node (and stays as is if that allocation fails). */
void chunkidx_insert(struct chunkidx *x, struct chunkidx_node *n);

/* Unlinks n, which must be linked. */
void chunkidx_remove(struct chunkidx *x, struct chunkidx_node *n);

/* Calls fn for every node, in no particular order.  fn may free or forget
 * the node it is given, but must not otherwise use the index. */
void chunkidx_each(const struct chunkidx *x,
                   void (*fn)(struct chunkidx_node *n, void *arg), void *arg);

#endif
