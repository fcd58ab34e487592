/*
 * ns_sess: client sessions, the replicated part of a client's connection.
 *
 * A session (id chosen by the leader, client id chosen by the client, a
 * lease expiry on the leader's clock) owns its open files, the write
 * leases and locks it holds (recorded here so they can all be released
 * when it ends) and its exactly-once window: the replies to the last
 * NS_DEDUP_WINDOW sequence numbers it sent.  A client has at most one
 * session.  This module only keeps the records; ns_lease.c gives them
 * meaning.  Not thread-safe.
 */
#ifndef DFS_NS_SESS_H
#define DFS_NS_SESS_H

#include <stddef.h>
#include <stdint.h>

#include "master/ns_map.h"
#include "master/ns_op.h"

struct ns_dedup {
    uint64_t seq;
    struct ns_reply reply;
};

struct ns_sess {
    uint64_t id;
    uint64_t client;
    uint64_t first_seq;         /* the client's seq when it opened this
                                   session: older requests predate it */
    int64_t expiry;
    struct ns_map opens;        /* ino -> opens | writable opens << 32 */
    struct ns_map leases;       /* chunk id -> ino, write leases held */
    struct ns_map lock_inos;    /* ino -> 1 where it holds locks */
    struct ns_dedup *dedup;     /* owned, NS_DEDUP_WINDOW slots, by seq */
    uint32_t ndedup;
};

struct ns_sess_table {
    struct ns_map by_id;        /* id -> struct ns_sess * (owned) */
    struct ns_map by_client;    /* client id -> session id */
    uint64_t max_id;            /* largest session id ever opened */
};

void ns_sess_table_init(struct ns_sess_table *t);
/* Frees every session (its records, not what they refer to). */
void ns_sess_table_release(struct ns_sess_table *t);

/*
 * A new session.  0 and *out (owned by the table), -EINVAL (id or client
 * 0), -DFS_EIDINUSE (id taken) or -ENOMEM (unchanged then).  A previous
 * session of the same client loses the client index to the new one; the
 * caller ends it (ns_sess_remove then leaves the index alone).
 */
int ns_sess_add(struct ns_sess_table *t, uint64_t id, uint64_t client,
                uint64_t first_seq, int64_t expiry, struct ns_sess **out);

/* NULL when absent. */
struct ns_sess *ns_sess_get(const struct ns_sess_table *t, uint64_t id);
struct ns_sess *ns_sess_by_client(const struct ns_sess_table *t,
                                  uint64_t client);

/* Frees s and forgets it; its holdings must be released first. */
void ns_sess_remove(struct ns_sess_table *t, struct ns_sess *s);

/*
 * Exactly-once lookup of seq: 0 and *out when it was applied (the saved
 * reply), -ENOENT when it is new, -DFS_ESEQ when it is older than the
 * window, or not newer than the session itself, and so cannot be told
 * apart from an applied one.
 */
int ns_sess_dedup_find(const struct ns_sess *s, uint64_t seq,
                       struct ns_reply *out);

/* Saves the reply to a new seq, evicting the oldest when full. */
void ns_sess_dedup_store(struct ns_sess *s, uint64_t seq,
                         const struct ns_reply *reply);

/* Open counts of s on ino: all opens and those for writing (0 if none). */
void ns_sess_open_counts(const struct ns_sess *s, uint64_t ino,
                         uint32_t *opens, uint32_t *writers);

/* Sets them; both 0 forgets ino.  0 or -ENOMEM (unchanged then). */
int ns_sess_set_open_counts(struct ns_sess *s, uint64_t ino, uint32_t opens,
                            uint32_t writers);

#endif
