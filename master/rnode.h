/*
 * rnode: one master's Raft node — the pure core (master/raft) wired to its
 * durable log (master/raftlog, on a storage thread), a tick timer, and
 * authenticated connections to the other masters.
 *
 * The master's server owns one rnode and calls it from the loop thread
 * only.  Committed commands come back through rnode_cbs; the server never
 * touches struct raft itself.  Peer frames that arrive on the server's
 * listener are handed in with rnode_receive().
 */
#ifndef DFS_RNODE_H
#define DFS_RNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/wire.h"
#include "master/raft.h"

struct ev_loop;
struct fsio;
struct rnode;

/* A master the node talks to: its id and its "host:port". */
struct rnode_peer_addr {
    uint64_t id;
    const char *addr;   /* borrowed for rnode_open */
};

struct rnode_config {
    uint64_t id;
    const char *dir;                    /* the Raft log directory */
    const struct rnode_peer_addr *peers; /* every master but this one */
    size_t n_peers;
    const struct auth_key *key;         /* borrowed; outlives the node */
    uint64_t tick_ms;
    unsigned election_ticks;
    unsigned heartbeat_ticks;
    uint64_t seed;
    /* Take a snapshot after this many applied entries (0: never). */
    uint64_t snapshot_every;
};

struct rnode_cbs {
    /* A committed command, in log order, exactly once per start (after
     * the snapshot the state machine was restored from). */
    void (*apply)(void *ctx, const struct raft_entry *e);
    /* Replace the whole state machine with a snapshot's bytes (at start
     * and when the leader sends one).  Returns 0 or a negative error,
     * which stops the node. */
    int (*restore)(void *ctx, const void *data, size_t len);
    /* Serialize the state machine (malloc'ed bytes the node frees). */
    int (*snapshot)(void *ctx, void **data, size_t *len);
    /* A linearizable read may be served now (status 0), or failed. */
    void (*read_ready)(void *ctx, uint64_t read_ctx, int status);
    /* Role, leader or term changed. */
    void (*role_changed)(void *ctx, enum raft_state state, uint64_t leader,
                         uint64_t term);
    /* The log could not be written: the node has stopped; the process
     * must exit and restart (recovery rebuilds the durable state). */
    void (*fatal)(void *ctx, int err);
};

/*
 * Recovers the log in cfg->dir (restoring the state machine from the
 * latest snapshot and replaying nothing yet: committed entries are handed
 * to apply as the cluster confirms them), starts the tick timer and the
 * peer connections.  errbuf receives a message naming what failed.
 */
int rnode_open(struct ev_loop *loop, struct fsio *fs,
               const struct rnode_config *cfg, const struct rnode_cbs *cbs,
               void *ctx, struct rnode **out, char *errbuf, size_t errlen);

/* Stops the node: waits for the storage thread, closes peers, frees. */
void rnode_close(struct rnode *rn);

/* First start of a new cluster (see raft_bootstrap): members are voters. */
int rnode_bootstrap(struct rnode *rn, const uint64_t *ids, size_t n);

/* True when the log holds anything (a restarted or joined master). */
bool rnode_has_state(const struct rnode *rn);

/* A Raft frame received on any connection. */
void rnode_receive(struct rnode *rn, const struct wire_frame *f);

/*
 * Proposes a command (copied).  On success *index and *term say where it
 * will be if it commits.  -DFS_ENOTLEADER, -EBUSY, -ENOMEM.
 */
int rnode_propose(struct rnode *rn, const void *data, size_t len,
                  uint64_t *index, uint64_t *term);

/* Starts a linearizable read; read_ready(ctx) follows.  -DFS_ENOTLEADER. */
int rnode_read(struct rnode *rn, uint64_t read_ctx);

/* Hands leadership to master `to` (leader only, see raft_transfer). */
int rnode_transfer(struct rnode *rn, uint64_t to);

/*
 * The address of master id (not this one): added, or changed (its
 * connection is dropped and redialled).  -EINVAL for a bad address.
 */
int rnode_set_peer(struct rnode *rn, uint64_t id, const char *addr);
/* Forgets where master id is: no more connections to it. */
void rnode_drop_peer(struct rnode *rn, uint64_t id);

/*
 * Configuration changes, leader only (see raft_add_learner, raft_promote,
 * raft_remove, and their errors).  On 0, *index and *term name the config
 * entry: it took effect when the commit index reaches index while the
 * entry at index still has that term.
 */
int rnode_add_learner(struct rnode *rn, uint64_t id, uint64_t *index,
                      uint64_t *term);
int rnode_promote(struct rnode *rn, uint64_t id, uint64_t *index, uint64_t *term);
int rnode_remove(struct rnode *rn, uint64_t id, uint64_t *index, uint64_t *term);
/* Term of the entry at index; 0 when compacted or not in the log. */
uint64_t rnode_term_at(const struct rnode *rn, uint64_t index);

/* Read-only view for status pages and admin replies. */
struct rnode_status {
    enum raft_state state;
    uint64_t id, leader, term, commit, applied, last_index, snapshot_index;
    uint64_t durable_index;
    uint64_t leader_changes;
    uint64_t members_index;   /* where the configuration in force comes from */
};
void rnode_status(const struct rnode *rn, struct rnode_status *st);
const struct raft_members *rnode_members(const struct rnode *rn);
/*
 * What this node saw of master id: ms since its last message (-1: never)
 * and the last index it acknowledged (meaningful while leading).
 */
int rnode_peer_info(const struct rnode *rn, uint64_t id, int64_t *contact_age_ms,
                    uint64_t *match);

#endif
