/*
 * ns_inode: inodes in pages of NS_INODE_PAGE slots, indexed by number.
 *
 * Owns the page array and the pages.  A page is allocated on the first
 * inode in its range and freed with its last one, so the table costs the
 * inode struct per live inode plus the unused slots of partly used pages;
 * the leader keeps pages full by asking ns_inode_next_free() for numbers.
 *
 * Invariants:
 *  1. A slot is live iff its mode != 0; inode 0 is never live.
 *  2. page_used[p] counts the live slots of page p; pages[p] is NULL iff
 *     page_used[p] == 0.
 *  3. gen counts allocations, so (ino, gen) pairs are unique for the life
 *     of the table (up to 2^32 creations; then it wraps, as NFS's does).
 */
#include "master/ns_inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"

_Static_assert(sizeof(struct ns_inode) == 72, "inode layout changed: update docs/NAMESPACE.md");

void ns_inode_table_init(struct ns_inode_table *t)
{
    memset(t, 0, sizeof(*t));
}

void ns_inode_table_release(struct ns_inode_table *t)
{
    for (uint32_t p = 0; p < t->npages; p++)
        free(t->pages[p]);
    free(t->pages);
    free(t->page_used);
    ns_inode_table_init(t);
}

struct ns_inode *ns_inode_get(const struct ns_inode_table *t, uint64_t ino)
{
    uint64_t p = ino / NS_INODE_PAGE;
    if (p >= t->npages || !t->pages[p])
        return NULL;
    struct ns_inode *in = &t->pages[p][ino % NS_INODE_PAGE];
    return in->mode != 0 ? in : NULL;
}

static int grow_pages(struct ns_inode_table *t, uint32_t need)
{
    uint64_t n = t->npages + t->npages / 2 + 4;
    if (n < need)
        n = need;
    struct ns_inode **pages = realloc(t->pages, n * sizeof(*pages));
    if (!pages)
        return -ENOMEM;
    t->pages = pages;
    uint16_t *used = realloc(t->page_used, n * sizeof(*used));
    if (!used)
        return -ENOMEM;
    t->page_used = used;
    memset(pages + t->npages, 0, (n - t->npages) * sizeof(*pages));
    memset(used + t->npages, 0, (n - t->npages) * sizeof(*used));
    t->npages = (uint32_t)n;
    return 0;
}

int ns_inode_alloc(struct ns_inode_table *t, uint64_t ino, uint32_t mode,
                   struct ns_inode **out)
{
    if (ino == 0 || ino > NS_INO_MAX || mode == 0)
        return -EINVAL;
    if (ns_inode_get(t, ino))
        return -DFS_EIDINUSE;
    uint32_t p = (uint32_t)(ino / NS_INODE_PAGE);
    if (p >= t->npages) {
        int rc = grow_pages(t, p + 1);
        if (rc < 0)
            return rc;
    }
    if (!t->pages[p]) {
        t->pages[p] = calloc(NS_INODE_PAGE, sizeof(struct ns_inode));
        if (!t->pages[p])
            return -ENOMEM;
    }
    struct ns_inode *in = &t->pages[p][ino % NS_INODE_PAGE];
    memset(in, 0, sizeof(*in));
    in->mode = mode;
    in->gen = ++t->gen;
    t->page_used[p]++;
    t->used++;
    *out = in;
    return 0;
}

void ns_inode_free(struct ns_inode_table *t, uint64_t ino)
{
    uint32_t p = (uint32_t)(ino / NS_INODE_PAGE);
    t->pages[p][ino % NS_INODE_PAGE].mode = 0;
    t->used--;
    if (--t->page_used[p] == 0) {
        free(t->pages[p]);
        t->pages[p] = NULL;
    }
}

void ns_inode_unalloc(struct ns_inode_table *t, uint64_t ino)
{
    ns_inode_free(t, ino);
    t->gen--;
}

uint64_t ns_inode_next_free(const struct ns_inode_table *t, uint64_t after)
{
    for (uint64_t ino = after + 1; ino <= NS_INO_MAX;) {
        uint64_t p = ino / NS_INODE_PAGE;
        if (p >= t->npages || !t->pages[p])
            return ino;
        if (t->page_used[p] == NS_INODE_PAGE) {
            ino = (p + 1) * NS_INODE_PAGE;
            continue;
        }
        for (; ino < (p + 1) * NS_INODE_PAGE; ino++) {
            if (ino != 0 && t->pages[p][ino % NS_INODE_PAGE].mode == 0)
                return ino <= NS_INO_MAX ? ino : 0;
        }
    }
    return 0;
}

uint64_t ns_inode_next(const struct ns_inode_table *t, uint64_t after)
{
    for (uint64_t ino = after + 1; ino / NS_INODE_PAGE < t->npages;) {
        uint64_t p = ino / NS_INODE_PAGE;
        if (!t->pages[p]) {
            ino = (p + 1) * NS_INODE_PAGE;
            continue;
        }
        for (; ino < (p + 1) * NS_INODE_PAGE; ino++) {
            if (t->pages[p][ino % NS_INODE_PAGE].mode != 0)
                return ino;
        }
    }
    return 0;
}

uint32_t ns_inode_chunk(const struct ns_inode *in, uint32_t index)
{
    if (index >= in->aux)
        return 0;
    return (in->flags & NS_INODE_F_MANY) ? in->u.many[index] : in->u.one;
}

/* The list's capacity is implied by its length: the next power of two. */
static uint32_t list_cap(uint32_t n)
{
    uint32_t cap = 2;
    while (cap < n)
        cap *= 2;
    return cap;
}

static int make_many(struct ns_inode *in, uint32_t n)
{
    uint32_t *v = malloc((size_t)list_cap(n) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    v[0] = in->aux ? in->u.one : 0;
    in->u.many = v;
    in->flags |= NS_INODE_F_MANY;
    return 0;
}

int ns_inode_set_chunk(struct ns_inode *in, uint32_t index, uint32_t h)
{
    uint32_t n = index + 1 > in->aux ? index + 1 : in->aux;
    if (n <= 1 && !(in->flags & NS_INODE_F_MANY)) {
        in->u.one = h;
        in->aux = n;
        return 0;
    }
    if (!(in->flags & NS_INODE_F_MANY)) {
        int rc = make_many(in, n);
        if (rc < 0)
            return rc;
    } else if (list_cap(n) > list_cap(in->aux)) {
        uint32_t *v = realloc(in->u.many, (size_t)list_cap(n) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        in->u.many = v;
    }
    for (uint32_t i = in->aux; i < n; i++)
        in->u.many[i] = 0;
    in->u.many[index] = h;
    in->aux = n;
    return 0;
}

void ns_inode_cut_chunks(struct ns_inode *in, uint32_t n)
{
    if (n >= in->aux)
        return;
    in->aux = n;
    if (!(in->flags & NS_INODE_F_MANY))
        return;
    if (n <= 1) {
        uint32_t *v = in->u.many;
        in->u.one = n ? v[0] : 0;
        in->flags &= (uint8_t)~NS_INODE_F_MANY;
        free(v);
        return;
    }
    uint32_t *v = realloc(in->u.many, (size_t)list_cap(n) * sizeof(*v));
    if (v)
        in->u.many = v;   /* a failed shrink keeps the larger block */
}

size_t ns_inode_table_bytes(const struct ns_inode_table *t)
{
    size_t b = (size_t)t->npages * (sizeof(*t->pages) + sizeof(*t->page_used));
    for (uint32_t p = 0; p < t->npages; p++) {
        if (t->pages[p])
            b += NS_INODE_PAGE * sizeof(struct ns_inode);
    }
    return b;
}
