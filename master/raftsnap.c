/*
 * raftsnap: refcounted snapshot blocks.
 *
 * Invariants:
 *  1. len <= cap; data has cap bytes allocated after the header.
 *  2. A block is freed exactly when its last reference is dropped.
 *  3. Only a block with a single reference grows (raftsnap_append), so no
 *     holder ever sees its pointer move.
 */
#include "master/raftsnap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/raftalloc.h"

static struct raftsnap *alloc_block(struct raftsnap *old, size_t cap)
{
    return raftalloc_realloc(old, sizeof(struct raftsnap) + (cap ? cap : 1));
}

struct raftsnap *raftsnap_new(const struct raft_snapshot_meta *meta,
                              const void *data, size_t len)
{
    struct raftsnap *s = alloc_block(NULL, len);
    if (!s)
        return NULL;
    s->refs = 1;
    s->meta = *meta;
    s->len = s->cap = len;
    if (len)
        memcpy(s->data, data, len);
    return s;
}

struct raftsnap *raftsnap_ref(struct raftsnap *s)
{
    if (s)
        s->refs++;
    return s;
}

void raftsnap_unref(struct raftsnap *s)
{
    if (s && --s->refs == 0)
        free(s);
}

int raftsnap_append(struct raftsnap **sp, const void *data, size_t len)
{
    struct raftsnap *s = *sp;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + len)
            cap *= 2;
        s = alloc_block(s, cap);
        if (!s)
            return -ENOMEM;
        s->cap = cap;
        *sp = s;
    }
    if (len)
        memcpy(s->data + s->len, data, len);
    s->len += len;
    return 0;
}
