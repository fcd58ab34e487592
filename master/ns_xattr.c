/*
 * ns_xattr: per-inode attribute lists, sorted by name.
 *
 * Owns the lists and each attribute (one allocation: name then value).
 *
 * Invariants:
 *  1. A list is sorted by (name bytes, name length) and never empty.
 *  2. total == the sum of name and value lengths, <= NS_XATTR_TOTAL_MAX.
 */
#include "master/ns_xattr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/ns_op.h"

struct xattr {
    uint32_t nlen, vlen;
    char data[];            /* name, then value */
};

struct xattr_list {
    uint32_t n, cap;
    uint32_t total;
    struct xattr **v;
};

void ns_xattr_table_init(struct ns_xattr_table *t)
{
    ns_map_init(&t->by_ino);
}

static void list_free(struct xattr_list *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    free(l);
}

void ns_xattr_table_release(struct ns_xattr_table *t)
{
    uint32_t pos = 0;
    uint64_t ino, ptr;
    while (ns_map_next(&t->by_ino, &pos, &ino, &ptr))
        list_free((struct xattr_list *)(uintptr_t)ptr);
    ns_map_release(&t->by_ino);
}

static struct xattr_list *list_of(const struct ns_xattr_table *t, uint64_t ino)
{
    uint64_t ptr;
    return ns_map_get(&t->by_ino, ino, &ptr) ? (struct xattr_list *)(uintptr_t)ptr : NULL;
}

static int cmp_name(const struct xattr *x, const char *name, uint32_t nlen)
{
    int c = memcmp(x->data, name, x->nlen < nlen ? x->nlen : nlen);
    if (c != 0)
        return c;
    return x->nlen < nlen ? -1 : x->nlen > nlen;
}

/* Position of name in l, or where it would go (*found false). */
static uint32_t find(const struct xattr_list *l, const char *name, uint32_t nlen,
                     bool *found)
{
    uint32_t lo = 0, hi = l ? l->n : 0;
    *found = false;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = cmp_name(l->v[mid], name, nlen);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ns_xattr_get(const struct ns_xattr_table *t, uint64_t ino, const char *name,
                 uint32_t nlen, const void **val, uint32_t *vlen)
{
    struct xattr_list *l = list_of(t, ino);
    bool found;
    uint32_t i = find(l, name, nlen, &found);
    if (!found)
        return -ENODATA;
    *val = l->v[i]->data + l->v[i]->nlen;
    *vlen = l->v[i]->vlen;
    return 0;
}

static int check_set(const struct xattr_list *l, bool found, uint32_t i,
                     uint32_t nlen, uint32_t vlen, uint32_t flags)
{
    if ((flags & NS_XATTR_CREATE) && found)
        return -EEXIST;
    if ((flags & NS_XATTR_REPLACE) && !found)
        return -ENODATA;
    uint64_t total = l ? l->total : 0;
    if (found)
        total -= l->v[i]->nlen + l->v[i]->vlen;
    if (total + nlen + vlen > NS_XATTR_TOTAL_MAX)
        return -ENOSPC;
    return 0;
}

/* The list of ino, created empty (and registered) when absent. */
static struct xattr_list *list_make(struct ns_xattr_table *t, uint64_t ino)
{
    struct xattr_list *l = list_of(t, ino);
    if (l)
        return l;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    if (ns_map_put(&t->by_ino, ino, (uint64_t)(uintptr_t)l) < 0) {
        free(l);
        return NULL;
    }
    return l;
}

static int insert_at(struct xattr_list *l, uint32_t i, struct xattr *x)
{
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        struct xattr **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(l->v[0]));
    l->v[i] = x;
    l->n++;
    return 0;
}

int ns_xattr_set(struct ns_xattr_table *t, uint64_t ino, const char *name,
                 uint32_t nlen, const void *val, uint32_t vlen, uint32_t flags)
{
    bool found;
    struct xattr_list *l = list_of(t, ino);
    uint32_t i = find(l, name, nlen, &found);
    int rc = check_set(l, found, i, nlen, vlen, flags);
    if (rc < 0)
        return rc;
    struct xattr *x = malloc(sizeof(*x) + nlen + vlen);
    if (!x)
        return -ENOMEM;
    x->nlen = nlen;
    x->vlen = vlen;
    memcpy(x->data, name, nlen);
    if (vlen)
        memcpy(x->data + nlen, val, vlen);
    l = list_make(t, ino);
    if (!l)
        goto err_after_xattr;
    if (found) {
        l->total -= l->v[i]->nlen + l->v[i]->vlen;
        free(l->v[i]);
        l->v[i] = x;
    } else if (insert_at(l, i, x) < 0) {
        if (l->n == 0)
            ns_xattr_drop(t, ino);
        goto err_after_xattr;
    }
    l->total += nlen + vlen;
    return 0;

err_after_xattr:
    free(x);
    return -ENOMEM;
}

int ns_xattr_remove(struct ns_xattr_table *t, uint64_t ino, const char *name,
                    uint32_t nlen)
{
    struct xattr_list *l = list_of(t, ino);
    bool found;
    uint32_t i = find(l, name, nlen, &found);
    if (!found)
        return -ENODATA;
    l->total -= l->v[i]->nlen + l->v[i]->vlen;
    free(l->v[i]);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
    if (--l->n == 0)
        ns_xattr_drop(t, ino);
    return 0;
}

int ns_xattr_list(const struct ns_xattr_table *t, uint64_t ino, char *buf,
                  size_t size, size_t *need)
{
    struct xattr_list *l = list_of(t, ino);
    size_t total = 0;
    for (uint32_t i = 0; l && i < l->n; i++)
        total += l->v[i]->nlen + 1;
    *need = total;
    if (size == 0)
        return 0;
    if (size < total)
        return -ERANGE;
    for (uint32_t i = 0; l && i < l->n; i++) {
        memcpy(buf, l->v[i]->data, l->v[i]->nlen);
        buf[l->v[i]->nlen] = '\0';
        buf += l->v[i]->nlen + 1;
    }
    return 0;
}

int ns_xattr_at(const struct ns_xattr_table *t, uint64_t ino, uint32_t i,
                const char **name, uint32_t *nlen, const void **val,
                uint32_t *vlen)
{
    struct xattr_list *l = list_of(t, ino);
    if (!l || i >= l->n)
        return -ENOENT;
    *name = l->v[i]->data;
    *nlen = l->v[i]->nlen;
    *val = l->v[i]->data + l->v[i]->nlen;
    *vlen = l->v[i]->vlen;
    return 0;
}

void ns_xattr_drop(struct ns_xattr_table *t, uint64_t ino)
{
    struct xattr_list *l = list_of(t, ino);
    if (!l)
        return;
    ns_map_del(&t->by_ino, ino);
    list_free(l);
}
