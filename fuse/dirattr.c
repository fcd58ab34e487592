/*
 * dirattr: the attributes of directories as this mount's own changes left
 * them, and of files as read-only opens found them (dirattr.h).
 */
#include "dirattr.h"

#include <pthread.h>
#include <stdlib.h>

struct dirattr_slot {
    unsigned answers;               /* GETATTRs it may still answer */
    int64_t at_ms;                  /* when the reply came */
    struct dfs_attr a;              /* kept once used: the latest seen */
};

struct dirattr {
    pthread_mutex_t mu;
    int64_t max_age_ms;
    struct dirattr_slot slot[DIRATTR_SLOTS];   /* protected by mu */
};

struct dirattr *dirattr_new(int64_t max_age_ms)
{
    struct dirattr *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->max_age_ms = max_age_ms;
    return t;
}

void dirattr_free(struct dirattr *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static struct dirattr_slot *slot_of(struct dirattr *t, uint64_t ino)
{
    return &t->slot[ino % DIRATTR_SLOTS];
}

void dirattr_put(struct dirattr *t, const struct dfs_attr *a, int64_t now_ms,
                 unsigned answers)
{
    if (t->max_age_ms <= 0)
        return;
    pthread_mutex_lock(&t->mu);
    struct dirattr_slot *s = slot_of(t, a->ino);
    /* Replies of two changes may reach here in either order: never go
     * back to an older state, even one already answered. */
    if (s->a.ino != a->ino || s->a.ctime <= a->ctime)
        *s = (struct dirattr_slot){ .answers = answers, .at_ms = now_ms, .a = *a };
    pthread_mutex_unlock(&t->mu);
}

bool dirattr_take(struct dirattr *t, uint64_t ino, int64_t now_ms, struct dfs_attr *out,
                  int64_t *left_ms)
{
    pthread_mutex_lock(&t->mu);
    struct dirattr_slot *s = slot_of(t, ino);
    bool mine = s->answers > 0 && s->a.ino == ino;
    bool hit = mine && now_ms - s->at_ms < t->max_age_ms;
    if (hit) {
        *out = s->a;
        *left_ms = t->max_age_ms - (now_ms - s->at_ms);
    }
    if (mine)
        s->answers = hit ? s->answers - 1 : 0;
    pthread_mutex_unlock(&t->mu);
    return hit;
}

void dirattr_drop(struct dirattr *t, uint64_t ino)
{
    pthread_mutex_lock(&t->mu);
    struct dirattr_slot *s = slot_of(t, ino);
    if (s->a.ino == ino)
        *s = (struct dirattr_slot){ 0 };
    pthread_mutex_unlock(&t->mu);
}
