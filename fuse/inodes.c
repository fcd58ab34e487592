/*
 * inodes: the lookup-count table of dfs-mount.
 *
 * Owns an open-addressing hash table (linear probing) from inode number to
 * the kernel's lookup count for it, the writing opens of it and the stamp
 * of its page cache.
 *
 * Invariants (under t->mu):
 *  1. A slot holds ino 0 (empty) or one inode whose count is >= 1; an
 *     inode whose count reaches 0 is removed at once, so the table holds
 *     exactly the inodes the kernel may still name.
 *  2. Probe chains have no holes: a removal shifts later members of the
 *     chain back (no tombstones), so a lookup stops at the first empty slot.
 *  3. used * 4 <= cap * 3 after every insert (the table grows before).
 *  4. stamped implies writers == 0.
 */
#include "fuse/inodes.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/log.h"

#define INODES_MIN_CAP 64

struct inodes_slot {
    uint64_t ino;      /* 0: empty */
    uint64_t count;
    uint32_t writers;  /* writing opens through this mount */
    bool stamped;      /* stamp: what the page cache was filled from */
    struct inodes_stamp stamp;
};

struct inodes {
    pthread_mutex_t mu;
    struct inodes_slot *slots;   /* protected by mu; cap entries */
    size_t cap;                  /* a power of two */
    size_t used;
    bool strict;
};

static size_t slot_of(const struct inodes *t, uint64_t ino)
{
    /* Inode numbers are dense; a multiplicative hash spreads them. */
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 17) & (t->cap - 1);
}

/* The slot holding ino, or the empty slot ending its probe chain. */
static size_t find(const struct inodes *t, uint64_t ino)
{
    size_t i = slot_of(t, ino);
    while (t->slots[i].ino != 0 && t->slots[i].ino != ino)
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int grow(struct inodes *t)
{
    size_t cap = t->cap * 2;
    struct inodes_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    struct inodes_slot *old = t->slots;
    size_t old_cap = t->cap;
    t->slots = slots;
    t->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].ino != 0)
            t->slots[find(t, old[i].ino)] = old[i];
    free(old);
    return 0;
}

/* Empties slot i and closes the hole it leaves in its chain (invariant 2). */
static void remove_at(struct inodes *t, size_t i)
{
    size_t mask = t->cap - 1;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; t->slots[j].ino != 0; j = (j + 1) & mask) {
        size_t home = slot_of(t, t->slots[j].ino);
        /* j may fill the hole only if its home is not within (hole, j]. */
        bool home_after_hole = hole <= j ? (home > hole && home <= j)
                                         : (home > hole || home <= j);
        if (home_after_hole)
            continue;
        t->slots[hole] = t->slots[j];
        hole = j;
    }
    t->slots[hole] = (struct inodes_slot){ 0 };
    t->used--;
}

struct inodes *inodes_new(bool strict)
{
    struct inodes *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->slots = calloc(INODES_MIN_CAP, sizeof(*t->slots));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->cap = INODES_MIN_CAP;
    t->strict = strict;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void inodes_free(struct inodes *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}

int inodes_ref(struct inodes *t, uint64_t ino)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    size_t i = find(t, ino);
    if (t->slots[i].ino == 0) {
        if ((t->used + 1) * 4 > t->cap * 3) {
            rc = grow(t);
            if (rc < 0)
                goto unlock;
            i = find(t, ino);
        }
        t->slots[i].ino = ino;
        t->used++;
    }
    t->slots[i].count++;
unlock:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

uint64_t inodes_forget(struct inodes *t, uint64_t ino, uint64_t n)
{
    pthread_mutex_lock(&t->mu);
    size_t i = find(t, ino);
    uint64_t have = t->slots[i].count;   /* 0 for an empty slot */
    if (n > have) {
        log_error("forget of inode %llu by %llu, but the kernel was given only %llu "
                  "lookups: clamped to 0", (unsigned long long)ino,
                  (unsigned long long)n, (unsigned long long)have);
        if (t->strict)
            abort();
        n = have;
    }
    uint64_t left = have - n;
    if (have != 0 && left == 0)
        remove_at(t, i);
    else if (have != 0)
        t->slots[i].count = left;
    pthread_mutex_unlock(&t->mu);
    return left;
}

uint64_t inodes_count(struct inodes *t, uint64_t ino)
{
    pthread_mutex_lock(&t->mu);
    uint64_t n = t->slots[find(t, ino)].count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

size_t inodes_size(struct inodes *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->used;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static bool stamp_eq(const struct inodes_stamp *a, const struct inodes_stamp *b)
{
    return a->size == b->size && a->mtime == b->mtime && a->ctime == b->ctime;
}

enum inodes_cache inodes_open(struct inodes *t, uint64_t ino,
                              const struct inodes_stamp *s, bool writing,
                              bool *counted)
{
    enum inodes_cache r = INODES_CACHE_DROP;
    *counted = false;
    pthread_mutex_lock(&t->mu);
    struct inodes_slot *e = &t->slots[find(t, ino)];
    if (e->ino == 0)
        goto unlock;
    if (e->writers == 0)
        r = e->stamped && stamp_eq(&e->stamp, s) ? INODES_CACHE_KEEP
                                                 : INODES_CACHE_STALE;
    if (writing) {
        e->writers++;
        e->stamped = false;
        *counted = true;
    }
unlock:
    pthread_mutex_unlock(&t->mu);
    return r;
}

void inodes_stamp(struct inodes *t, uint64_t ino, const struct inodes_stamp *s)
{
    pthread_mutex_lock(&t->mu);
    struct inodes_slot *e = &t->slots[find(t, ino)];
    if (e->ino != 0 && e->writers == 0) {
        e->stamp = *s;
        e->stamped = true;
    }
    pthread_mutex_unlock(&t->mu);
}

void inodes_close(struct inodes *t, uint64_t ino)
{
    pthread_mutex_lock(&t->mu);
    struct inodes_slot *e = &t->slots[find(t, ino)];
    if (e->ino != 0) {
        if (e->writers > 0)
            e->writers--;
        e->stamped = false;
    }
    pthread_mutex_unlock(&t->mu);
}
