/*
 * ns_sess: the session table and each session's exactly-once window.
 *
 * Owns the sessions and their maps and windows (not the inodes, chunks or
 * locks those maps name).
 *
 * Invariants:
 *  1. by_id and by_client name the same sessions; client ids are unique
 *     (between ns_sess_add of a client's new session and ns_sess_remove
 *     of its old one, only the new one is in by_client).
 *  2. A window holds at most NS_DEDUP_WINDOW replies, seq strictly
 *     ascending, and they are the replies to the highest sequences this
 *     session applied: so any seq at or above dedup[0].seq that is not in
 *     the window was never applied.
 *  3. max_id >= every session id ever added (the leader continues above).
 *  4. A seq not above first_seq belongs to an earlier session of the
 *     client (whose replies are gone): it is refused, never applied again.
 */
#include "master/ns_sess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"

void ns_sess_table_init(struct ns_sess_table *t)
{
    memset(t, 0, sizeof(*t));
}

static void sess_free(struct ns_sess *s)
{
    ns_map_release(&s->opens);
    ns_map_release(&s->leases);
    ns_map_release(&s->lock_inos);
    free(s->dedup);
    free(s);
}

void ns_sess_table_release(struct ns_sess_table *t)
{
    uint32_t pos = 0;
    uint64_t id, ptr;
    while (ns_map_next(&t->by_id, &pos, &id, &ptr))
        sess_free((struct ns_sess *)(uintptr_t)ptr);
    ns_map_release(&t->by_id);
    ns_map_release(&t->by_client);
    ns_sess_table_init(t);
}

int ns_sess_add(struct ns_sess_table *t, uint64_t id, uint64_t client,
                uint64_t first_seq, int64_t expiry, struct ns_sess **out)
{
    if (id == 0 || client == 0)
        return -EINVAL;
    if (ns_map_get(&t->by_id, id, NULL))
        return -DFS_EIDINUSE;
    struct ns_sess *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->dedup = calloc(NS_DEDUP_WINDOW, sizeof(*s->dedup));
    if (!s->dedup)
        goto err_after_sess;
    s->id = id;
    s->client = client;
    s->first_seq = first_seq;
    s->expiry = expiry;
    if (ns_map_put(&t->by_id, id, (uint64_t)(uintptr_t)s) < 0)
        goto err_after_sess;
    if (ns_map_put(&t->by_client, client, id) < 0)
        goto err_after_by_id;
    if (id > t->max_id)
        t->max_id = id;
    *out = s;
    return 0;

err_after_by_id:
    ns_map_del(&t->by_id, id);
err_after_sess:
    sess_free(s);
    return -ENOMEM;
}

struct ns_sess *ns_sess_get(const struct ns_sess_table *t, uint64_t id)
{
    uint64_t ptr;
    return ns_map_get(&t->by_id, id, &ptr) ? (struct ns_sess *)(uintptr_t)ptr : NULL;
}

struct ns_sess *ns_sess_by_client(const struct ns_sess_table *t, uint64_t client)
{
    uint64_t id;
    return ns_map_get(&t->by_client, client, &id) ? ns_sess_get(t, id) : NULL;
}

void ns_sess_remove(struct ns_sess_table *t, struct ns_sess *s)
{
    uint64_t id;
    if (ns_map_get(&t->by_client, s->client, &id) && id == s->id)
        ns_map_del(&t->by_client, s->client);
    ns_map_del(&t->by_id, s->id);
    sess_free(s);
}

int ns_sess_dedup_find(const struct ns_sess *s, uint64_t seq,
                       struct ns_reply *out)
{
    if (seq <= s->first_seq)
        return -DFS_ESEQ;
    for (uint32_t i = 0; i < s->ndedup; i++) {
        if (s->dedup[i].seq == seq) {
            *out = s->dedup[i].reply;
            return 0;
        }
    }
    if (s->ndedup == NS_DEDUP_WINDOW && seq < s->dedup[0].seq)
        return -DFS_ESEQ;
    return -ENOENT;
}

void ns_sess_dedup_store(struct ns_sess *s, uint64_t seq,
                         const struct ns_reply *reply)
{
    if (s->ndedup == NS_DEDUP_WINDOW) {
        if (seq < s->dedup[0].seq)
            return;   /* refused by ns_sess_dedup_find; never stored */
        memmove(&s->dedup[0], &s->dedup[1], (s->ndedup - 1) * sizeof(s->dedup[0]));
        s->ndedup--;
    }
    uint32_t i = s->ndedup;
    while (i > 0 && s->dedup[i - 1].seq > seq) {
        s->dedup[i] = s->dedup[i - 1];
        i--;
    }
    s->dedup[i].seq = seq;
    s->dedup[i].reply = *reply;
    s->ndedup++;
}

void ns_sess_open_counts(const struct ns_sess *s, uint64_t ino,
                         uint32_t *opens, uint32_t *writers)
{
    uint64_t v = 0;
    ns_map_get(&s->opens, ino, &v);
    *opens = (uint32_t)v;
    *writers = (uint32_t)(v >> 32);
}

int ns_sess_set_open_counts(struct ns_sess *s, uint64_t ino, uint32_t opens,
                            uint32_t writers)
{
    if (opens == 0 && writers == 0) {
        ns_map_del(&s->opens, ino);
        return 0;
    }
    return ns_map_put(&s->opens, ino, (uint64_t)writers << 32 | opens);
}
