/*
 * Tests of the Raft core (master/raft): small clusters driven by hand.
 *
 * The harness delivers every message of a Ready straight into the
 * destination core (its pointers are valid until the sender's advance),
 * unless the link is cut; persistence is instant unless held for a node,
 * in which case the test releases it with persist().  No clock, no
 * randomness beyond the cores' seeded jitter: every run is the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "master/raft.h"
#include "master/raftalloc.h"

#define MAXN 6
#define MAX_READS 16

struct tc {
    struct raft *r[MAXN + 1];
    unsigned n;                        /* nodes 1..n exist (r may be NULL) */
    bool cut[MAXN + 1][MAXN + 1];      /* [from][to] */
    bool hold[MAXN + 1];               /* keep Readys unpersisted */
    uint64_t unpersisted[MAXN + 1];    /* highest seq handed, not persisted */
    uint64_t applied[MAXN + 1];
    uint64_t first_written[MAXN + 1];  /* first index of the last entries */
    uint64_t snap_installed[MAXN + 1];
    char snap_data[MAXN + 1][256];
    struct raft_read reads[MAXN + 1][MAX_READS];
    unsigned n_reads[MAXN + 1];
    unsigned sent[MAXN + 1][RAFT_MSG_TYPE_LAST + 1];
    int step_rc;                       /* worst raft_step result */
    uint64_t cut_when_leader;          /* isolate this node once it leads */
    struct {                           /* cut from -> to once `to` holds */
        unsigned from, to;             /* (index, term) */
        uint64_t index, term;
    } cut_when_held;
};

static struct raft_config config_for(uint64_t id)
{
    return (struct raft_config){
        .id = id, .election_ticks = 10, .heartbeat_ticks = 1, .seed = id,
        .max_msg_bytes = 4096, .max_inflight = 4, .snapshot_chunk_bytes = 16,
    };
}

static struct raft_members voters(unsigned n)
{
    struct raft_members m = { .n = n };
    for (unsigned i = 0; i < n; i++)
        m.servers[i] = (struct raft_server){ .id = i + 1, .role = RAFT_VOTER };
    return m;
}

static void isolate(struct tc *c, unsigned id, bool cut)
{
    for (unsigned j = 1; j <= MAXN; j++)
        c->cut[id][j] = c->cut[j][id] = cut;
}

static void deliver(struct tc *c, const struct raft_msg *m)
{
    c->sent[m->from][m->type]++;
    if (m->to > MAXN || !c->r[m->to] || c->cut[m->from][m->to])
        return;
    int rc = raft_step(c->r[m->to], m);
    if (rc < c->step_rc)
        c->step_rc = rc;
    uint64_t w = c->cut_when_leader;
    if (w && c->r[w] && raft_state(c->r[w]) == RAFT_LEADER) {
        isolate(c, (unsigned)w, true);
        c->cut_when_leader = 0;
    }
    unsigned to = c->cut_when_held.to;
    if (to && raft_term_at(c->r[to], c->cut_when_held.index) ==
                  c->cut_when_held.term) {
        c->cut[c->cut_when_held.from][to] = true;
        c->cut_when_held.to = 0;
    }
}

static void take(struct tc *c, unsigned id, const struct raft_ready *rd)
{
    if (rd->n_entries)
        c->first_written[id] = rd->entries[0].index;
    if (rd->snap) {
        c->snap_installed[id] = rd->snap->index;
        memcpy(c->snap_data[id], rd->snap_data,
               rd->snap_len < 256 ? rd->snap_len : 256);
        c->applied[id] = rd->snap->index;
    }
    for (size_t i = 0; i < rd->n_msgs; i++)
        deliver(c, &rd->msgs[i]);
    for (size_t i = 0; i < rd->n_committed; i++) {
        assert_int_equal(rd->committed[i].index, c->applied[id] + 1);
        c->applied[id] = rd->committed[i].index;
    }
    for (size_t i = 0; i < rd->n_reads && c->n_reads[id] < MAX_READS; i++)
        c->reads[id][c->n_reads[id]++] = rd->reads[i];
}

/* Handles one Ready of one node; false when it had none. */
static bool pump(struct tc *c, unsigned id)
{
    struct raft_ready rd;
    if (!c->r[id] || !raft_ready(c->r[id], &rd))
        return false;
    take(c, id, &rd);
    raft_advance(c->r[id]);
    if (rd.seq && c->hold[id])
        c->unpersisted[id] = rd.seq;
    else if (rd.seq)
        raft_persisted(c->r[id], rd.seq);
    return true;
}

static void settle(struct tc *c)
{
    for (int round = 0; round < 1000; round++) {
        bool any = false;
        for (unsigned id = 1; id <= c->n; id++)
            while (pump(c, id))
                any = true;
        if (!any)
            return;
    }
    fail_msg("cluster never settles");
}

static void persist(struct tc *c, unsigned id)
{
    c->hold[id] = false;
    if (c->unpersisted[id])
        raft_persisted(c->r[id], c->unpersisted[id]);
    c->unpersisted[id] = 0;
    settle(c);
}

static void tick(struct tc *c, unsigned id, unsigned times)
{
    for (unsigned i = 0; i < times; i++) {
        raft_tick(c->r[id]);
        settle(c);
    }
}

/* Ticks the leader so that heartbeats spread its commit index. */
static void heartbeat(struct tc *c, unsigned leader)
{
    tick(c, leader, 1);
}

static void add_node(struct tc *c, unsigned id, const struct raft_config *cfg)
{
    struct raft_config def = config_for(id);
    assert_int_equal(raft_new(cfg ? cfg : &def, NULL, &c->r[id]), 0);
    if (id > c->n)
        c->n = id;
}

static struct tc *cluster(unsigned n)
{
    struct tc *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    struct raft_members m = voters(n);
    for (unsigned id = 1; id <= n; id++) {
        add_node(c, id, NULL);
        assert_int_equal(raft_bootstrap(c->r[id], &m), 0);
    }
    settle(c);
    return c;
}

static void cluster_free(struct tc *c)
{
    for (unsigned id = 1; id <= MAXN; id++)
        raft_free(c->r[id]);
    free(c);
}

/* Ticks `id` alone until it has campaigned, then lets the votes flow. */
static void campaign(struct tc *c, unsigned id)
{
    for (int i = 0; i < 40 && raft_state(c->r[id]) == RAFT_FOLLOWER; i++) {
        raft_tick(c->r[id]);
        settle(c);
    }
}

/* The old leader is gone: a and b time out together (so neither is held
 * back by a lease on the old leader) until one of them leads. */
static unsigned elect_among(struct tc *c, unsigned a, unsigned b)
{
    for (int i = 0; i < 200; i++) {
        if (raft_state(c->r[a]) == RAFT_LEADER)
            return a;
        if (raft_state(c->r[b]) == RAFT_LEADER)
            return b;
        raft_tick(c->r[a]);
        raft_tick(c->r[b]);
        settle(c);
    }
    fail_msg("no leader elected");
    return 0;
}

static struct tc *cluster_with_leader(unsigned n)
{
    struct tc *c = cluster(n);
    campaign(c, 1);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    heartbeat(c, 1);
    return c;
}

static void propose(struct tc *c, unsigned id, const char *cmd)
{
    uint64_t index;
    assert_int_equal(raft_propose(c->r[id], cmd, strlen(cmd), &index), 0);
    assert_int_equal(index, raft_last_index(c->r[id]));
    settle(c);
}

static void assert_same_log(struct tc *c, unsigned a, unsigned b)
{
    assert_int_equal(raft_last_index(c->r[a]), raft_last_index(c->r[b]));
    for (uint64_t i = 1; i <= raft_last_index(c->r[a]); i++)
        assert_int_equal(raft_term_at(c->r[a], i), raft_term_at(c->r[b], i));
}

/* ---- elections -------------------------------------------------------------- */

static void test_election(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    uint64_t term = raft_term(c->r[1]);
    assert_int_equal(term, 2);
    for (unsigned id = 2; id <= 3; id++) {
        assert_int_equal(raft_state(c->r[id]), RAFT_FOLLOWER);
        assert_int_equal(raft_leader(c->r[id]), 1);
        assert_int_equal(raft_term(c->r[id]), term);
        assert_int_equal(raft_vote(c->r[id]), 1);
    }
    /* The config entry (1) and the leader's no-op (2) are applied. */
    for (unsigned id = 1; id <= 3; id++)
        assert_int_equal(c->applied[id], 2);
    assert_int_equal(raft_entry_at(c->r[1], 2)->type, RAFT_ENTRY_NOOP);
    cluster_free(c);
}

static void test_single_voter(void **state)
{
    (void)state;
    struct tc *c = cluster(1);
    c->hold[1] = true;
    tick(c, 1, 25);
    /* Its own vote is not durable yet: it may not win on it. */
    assert_int_equal(raft_state(c->r[1]), RAFT_CANDIDATE);
    persist(c, 1);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    c->hold[1] = true;
    propose(c, 1, "x");
    assert_true(raft_commit(c->r[1]) < 3);
    persist(c, 1);
    assert_int_equal(raft_commit(c->r[1]), 3);
    assert_int_equal(raft_read_index(c->r[1], 9), 0);
    settle(c);
    assert_int_equal(c->n_reads[1], 1);
    assert_int_equal(c->reads[1][0].ctx, 9);
    assert_int_equal(c->reads[1][0].index, 3);
    cluster_free(c);
}

static void test_prevote_keeps_healthy_leader(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    uint64_t term = raft_term(c->r[1]);
    isolate(c, 3, true);
    tick(c, 3, 60);   /* times out again and again, alone */
    assert_int_equal(raft_term(c->r[3]), term);
    assert_int_equal(raft_state(c->r[3]), RAFT_PRECANDIDATE);
    isolate(c, 3, false);
    /* Its pre-votes reach servers that hear from the leader: ignored. */
    tick(c, 3, 25);
    heartbeat(c, 1);
    for (unsigned id = 1; id <= 3; id++)
        assert_int_equal(raft_term(c->r[id]), term);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    assert_int_equal(raft_state(c->r[3]), RAFT_FOLLOWER);
    assert_int_equal(raft_leader(c->r[3]), 1);
    cluster_free(c);
}

static void test_check_quorum_steps_down(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    isolate(c, 1, true);
    tick(c, 1, 9);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    tick(c, 1, 11);
    assert_int_equal(raft_state(c->r[1]), RAFT_FOLLOWER);
    assert_int_equal(raft_leader(c->r[1]), 0);
    assert_int_equal(raft_propose(c->r[1], "x", 1, NULL), -DFS_ENOTLEADER);
    cluster_free(c);
}

static void test_vote_waits_for_persistence(void **state)
{
    (void)state;
    struct tc *c = cluster(3);
    isolate(c, 3, true);
    c->hold[2] = true;
    campaign(c, 1);
    assert_int_equal(raft_state(c->r[1]), RAFT_CANDIDATE);
    /* Node 2 voted, but its grant stays inside until the vote is durable. */
    assert_int_equal(raft_vote(c->r[2]), 1);
    assert_int_equal(c->sent[2][RAFT_MSG_VOTE_RESP], 1);   /* the pre-vote */
    persist(c, 2);
    assert_int_equal(c->sent[2][RAFT_MSG_VOTE_RESP], 2);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    cluster_free(c);
}

/* ---- replication ---------------------------------------------------------- */

static void test_ack_waits_for_persistence(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    isolate(c, 3, true);
    c->hold[2] = true;
    uint64_t commit = raft_commit(c->r[1]);
    propose(c, 1, "a");
    assert_int_equal(raft_last_index(c->r[2]), commit + 1);
    assert_int_equal(raft_commit(c->r[1]), commit);
    persist(c, 2);
    assert_int_equal(raft_commit(c->r[1]), commit + 1);
    cluster_free(c);
}

static void test_conflict_truncated(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    uint64_t base = raft_last_index(c->r[1]);
    isolate(c, 1, true);
    for (int i = 0; i < 3; i++)
        propose(c, 1, "lost");
    assert_int_equal(raft_last_index(c->r[1]), base + 3);
    unsigned l = elect_among(c, 2, 3);
    propose(c, l, "kept");
    isolate(c, 1, false);
    heartbeat(c, l);
    heartbeat(c, l);
    assert_int_equal(raft_state(c->r[1]), RAFT_FOLLOWER);
    assert_same_log(c, 1, l);
    /* Storage was told to drop the old suffix from its first conflict. */
    assert_int_equal(c->first_written[1], base + 1);
    assert_int_equal(raft_term_at(c->r[1], base + 1), raft_term(c->r[l]));
    assert_int_equal(raft_commit(c->r[1]), raft_commit(c->r[l]));
    cluster_free(c);
}

/* Restores server `id` with a log of the given terms (entry 1 is the
 * configuration of three voters). */
static void restore(struct tc *c, unsigned id, uint64_t term,
                    const uint64_t *terms, unsigned n, uint32_t max_msg)
{
    struct raft_members m = voters(3);
    uint8_t conf[64];
    int len = raft_members_encode(&m, conf, sizeof(conf));
    struct raft_entry e[8];
    for (unsigned i = 0; i < n; i++)
        e[i] = (struct raft_entry){ .index = i + 1, .term = terms[i],
                                    .type = RAFT_ENTRY_NOOP };
    e[0].type = RAFT_ENTRY_CONFIG;
    e[0].data = conf;
    e[0].len = (uint32_t)len;
    struct raft_restore rs = { .term = term, .entries = e, .n_entries = n };
    struct raft_config cfg = config_for(id);
    cfg.max_msg_bytes = max_msg;
    assert_int_equal(raft_new(&cfg, &rs, &c->r[id]), 0);
    if (id > c->n)
        c->n = id;
}

static void test_commit_only_current_term(void **state)
{
    (void)state;
    /* Figure 8: node 1 holds (3, term 2) alone; it wins term 4 and ships
     * entries one per message.  A quorum holding (3, term 2) is not enough:
     * only its own no-op (4, term 4) may be counted. */
    struct tc *c = calloc(1, sizeof(*c));
    const uint64_t mine[] = { 1, 2, 2 }, theirs[] = { 1, 2 };
    restore(c, 1, 3, mine, 3, 1);
    restore(c, 2, 3, theirs, 2, 1);
    restore(c, 3, 3, theirs, 2, 1);
    isolate(c, 3, true);
    c->hold[2] = true;
    campaign(c, 1);
    persist(c, 2);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    assert_int_equal(raft_term(c->r[1]), 4);
    /* Node 2 acks index 3 first, then the no-op at 4. */
    assert_int_equal(raft_term_at(c->r[2], 3), 2);
    assert_int_equal(raft_term_at(c->r[2], 4), 4);
    assert_int_equal(raft_commit(c->r[1]), 4);
    cluster_free(c);

    /* Same, but node 2 never gets the no-op: nothing may commit, though a
     * quorum holds (3, term 2) and node 2's ack of it reaches the leader. */
    c = calloc(1, sizeof(*c));
    restore(c, 1, 3, mine, 3, 1);
    restore(c, 2, 3, theirs, 2, 1);
    restore(c, 3, 3, theirs, 2, 1);
    isolate(c, 3, true);
    c->cut_when_held.from = 1;
    c->cut_when_held.to = 2;
    c->cut_when_held.index = 3;
    c->cut_when_held.term = 2;
    campaign(c, 1);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    assert_int_equal(raft_term_at(c->r[2], 3), 2);
    assert_true(raft_term_at(c->r[2], 4) != 4);
    assert_int_equal(raft_commit(c->r[1]), 0);
    c->cut[1][2] = false;
    heartbeat(c, 1);
    assert_int_equal(raft_commit(c->r[1]), 4);
    cluster_free(c);
}

static void test_never_truncates_committed(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    isolate(c, 2, true);   /* what node 2 answers goes nowhere */
    uint64_t commit = raft_commit(c->r[2]);
    struct raft_entry bad = { .index = commit, .term = 9, .type = RAFT_ENTRY_NOOP };
    struct raft_msg m = {
        .type = RAFT_MSG_APPEND, .term = 9, .from = 3, .to = 2,
        .u.append = { .prev_index = commit - 1,
                      .prev_term = raft_term_at(c->r[2], commit - 1),
                      .commit = commit, .n_entries = 1, .entries = &bad },
    };
    uint64_t before = raft_term_at(c->r[2], commit);
    /* Answered with its commit index; the committed entry stays. */
    assert_int_equal(raft_step(c->r[2], &m), 0);
    assert_int_equal(raft_term_at(c->r[2], commit), before);
    assert_int_equal(raft_last_index(c->r[2]), commit);
    /* Past the commit point, a conflicting leader's entry is taken. */
    m.u.append.prev_index = commit;
    m.u.append.prev_term = raft_term_at(c->r[2], commit);
    bad.index = commit + 1;
    assert_int_equal(raft_step(c->r[2], &m), 0);
    assert_int_equal(raft_term_at(c->r[2], commit + 1), 9);
    assert_int_equal(raft_leader(c->r[2]), 3);
    settle(c);
    cluster_free(c);
}

static void test_stale_leader_ignored(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    isolate(c, 3, true);
    propose(c, 1, "x");
    /* Node 2 holds index k (committed on the leader, not yet known so on
     * node 2).  A deposed leader of term 1 tries to overwrite it. */
    uint64_t k = raft_last_index(c->r[2]), term = raft_term(c->r[2]);
    assert_int_equal(raft_commit(c->r[2]), k - 1);
    struct raft_entry old = { .index = k, .term = 1, .type = RAFT_ENTRY_NOOP };
    struct raft_msg m = {
        .type = RAFT_MSG_APPEND, .term = 1, .from = 3, .to = 2,
        .u.append = { .prev_index = k - 1,
                      .prev_term = raft_term_at(c->r[2], k - 1),
                      .commit = k, .n_entries = 1, .entries = &old },
    };
    unsigned answers = c->sent[2][RAFT_MSG_APPEND_RESP];
    assert_int_equal(raft_step(c->r[2], &m), 0);
    assert_int_equal(raft_term_at(c->r[2], k), term);
    assert_int_equal(raft_term(c->r[2]), term);
    assert_int_equal(raft_leader(c->r[2]), 1);
    isolate(c, 3, false);
    settle(c);
    /* It was told the current term (so that it steps down). */
    assert_int_equal(c->sent[2][RAFT_MSG_APPEND_RESP], answers + 1);
    assert_int_equal(raft_term(c->r[3]), term);
    cluster_free(c);
}

/* ---- snapshots -------------------------------------------------------------- */

static void test_snapshot_send_and_install(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    isolate(c, 3, true);
    for (int i = 0; i < 20; i++)
        propose(c, 1, "command");
    heartbeat(c, 1);
    uint64_t applied = c->applied[1];
    char data[100];
    for (int i = 0; i < 100; i++)
        data[i] = (char)('a' + i % 26);
    struct raft_snapshot_meta meta;
    assert_int_equal(raft_compact(c->r[1], applied, data, sizeof(data), &meta), 0);
    assert_int_equal(meta.index, applied);
    assert_int_equal(meta.term, raft_term(c->r[1]));
    assert_int_equal(meta.members.n, 3);
    assert_null(raft_entry_at(c->r[1], applied));
    assert_int_equal(raft_compact(c->r[1], applied, data, 1, NULL), -ESTALE);
    assert_int_equal(raft_compact(c->r[1], applied + 1, data, 1, NULL), -EINVAL);

    isolate(c, 3, false);
    for (int i = 0; i < 5; i++)
        heartbeat(c, 1);
    assert_int_equal(c->snap_installed[3], applied);
    assert_memory_equal(c->snap_data[3], data, sizeof(data));
    assert_true(c->sent[1][RAFT_MSG_SNAPSHOT] >= sizeof(data) / 16);
    assert_int_equal(raft_snapshot_index(c->r[3]), applied);
    assert_int_equal(c->applied[3], c->applied[1]);
    propose(c, 1, "after");
    heartbeat(c, 1);
    assert_int_equal(c->applied[3], c->applied[1]);
    assert_int_equal(raft_term_at(c->r[3], c->applied[1]),
                     raft_term_at(c->r[1], c->applied[1]));
    cluster_free(c);
}

/* ---- membership --------------------------------------------------------- */

static void test_learner_promotion(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    add_node(c, 4, NULL);
    isolate(c, 4, true);
    uint64_t index;
    assert_int_equal(raft_add_learner(c->r[1], 4, &index), 0);
    assert_int_equal(raft_add_learner(c->r[1], 5, NULL), -EBUSY);
    /* In force as soon as appended, on the leader. */
    assert_int_equal(raft_members_find(raft_members(c->r[1]), 4)->role,
                     RAFT_LEARNER);
    settle(c);
    heartbeat(c, 1);
    assert_true(raft_commit(c->r[1]) >= index);
    assert_int_equal(raft_add_learner(c->r[1], 4, NULL), -EEXIST);
    assert_int_equal(raft_promote(c->r[1], 4, NULL), -EAGAIN);
    assert_int_equal(raft_promote(c->r[1], 2, NULL), -EINVAL);
    assert_int_equal(raft_promote(c->r[1], 6, NULL), -ENOENT);

    isolate(c, 4, false);
    heartbeat(c, 1);
    heartbeat(c, 1);
    assert_int_equal(c->applied[4], c->applied[1]);
    /* A learner never campaigns, however long it waits. */
    isolate(c, 4, true);
    tick(c, 4, 100);
    assert_int_equal(raft_state(c->r[4]), RAFT_FOLLOWER);
    isolate(c, 4, false);
    heartbeat(c, 1);

    assert_int_equal(raft_promote(c->r[1], 4, &index), 0);
    heartbeat(c, 1);
    heartbeat(c, 1);
    for (unsigned id = 1; id <= 4; id++)
        assert_int_equal(raft_members_find(raft_members(c->r[id]), 4)->role,
                         RAFT_VOTER);
    assert_int_equal(raft_members_voters(raft_members(c->r[1])), 4);
    cluster_free(c);
}

static void test_remove_leader(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    uint64_t index;
    isolate(c, 3, true);
    c->hold[2] = true;
    assert_int_equal(raft_remove(c->r[1], 1, &index), 0);
    settle(c);
    /* Leads a configuration without itself until the change commits,
     * which takes the new majority {2, 3}: node 2's durable ack. */
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    assert_null(raft_members_find(raft_members(c->r[1]), 1));
    persist(c, 2);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);   /* 1 of 2 */
    isolate(c, 3, false);
    heartbeat(c, 1);
    assert_int_equal(raft_state(c->r[1]), RAFT_FOLLOWER);
    assert_true(raft_commit(c->r[1]) >= index);
    /* It never campaigns again; the others elect a leader among them. */
    tick(c, 1, 100);
    assert_int_equal(raft_state(c->r[1]), RAFT_FOLLOWER);
    unsigned l = elect_among(c, 2, 3), other = 5 - l;
    assert_int_equal(raft_remove(c->r[l], 7, NULL), -ENOENT);
    assert_int_equal(raft_remove(c->r[l], other, NULL), 0);
    /* One change at a time: the next waits for this one to commit. */
    assert_int_equal(raft_add_learner(c->r[l], 9, NULL), -EBUSY);
    heartbeat(c, l);
    assert_int_equal(raft_members_voters(raft_members(c->r[l])), 1);
    assert_int_equal(raft_remove(c->r[l], l, NULL), -EINVAL); /* last voter */
    cluster_free(c);
}

/* Between raft_ready() and raft_advance() the core refuses every mutating
 * call (an apply callback that changed the membership there appended to
 * the log whose entries the Ready points into). */
static void test_no_mutation_inside_ready(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    add_node(c, 4, NULL);
    isolate(c, 4, true);
    uint64_t index;
    assert_int_equal(raft_propose(c->r[1], "x", 1, &index), 0);
    /* Replicate and acknowledge "x" without handing it out for applying. */
    for (int i = 0; i < 10 && raft_commit(c->r[1]) < index; i++) {
        pump(c, 1);
        pump(c, 2);
        pump(c, 3);
    }
    assert_true(raft_commit(c->r[1]) >= index);
    struct raft_ready rd;
    assert_true(raft_ready(c->r[1], &rd));
    assert_true(rd.n_committed > 0);
    const struct raft_entry *last = &rd.committed[rd.n_committed - 1];
    assert_int_equal(last->index, index);
    uint64_t last_index = raft_last_index(c->r[1]);
    struct raft_msg m = { .type = RAFT_MSG_HEARTBEAT_RESP, .term = raft_term(c->r[1]),
                          .from = 2, .to = 1 };
    char data[4] = "s";
    assert_int_equal(raft_add_learner(c->r[1], 4, NULL), -EBUSY);
    assert_int_equal(raft_promote(c->r[1], 2, NULL), -EBUSY);
    assert_int_equal(raft_remove(c->r[1], 3, NULL), -EBUSY);
    assert_int_equal(raft_propose(c->r[1], "y", 1, NULL), -EBUSY);
    assert_int_equal(raft_read_index(c->r[1], 7), -EBUSY);
    assert_int_equal(raft_transfer(c->r[1], 2), -EBUSY);
    assert_int_equal(raft_step(c->r[1], &m), -EBUSY);
    assert_int_equal(raft_compact(c->r[1], raft_applied(c->r[1]), data, 1, NULL), -EBUSY);
    raft_tick(c->r[1]);
    /* What the Ready points to is as it was. */
    assert_int_equal(raft_last_index(c->r[1]), last_index);
    assert_int_equal(last->index, index);
    assert_memory_equal(last->data, "x", 1);
    take(c, 1, &rd);
    raft_advance(c->r[1]);
    if (rd.seq)
        raft_persisted(c->r[1], rd.seq);
    settle(c);
    assert_int_equal(raft_add_learner(c->r[1], 4, NULL), 0);
    cluster_free(c);
}

/* ---- leadership transfer ------------------------------------------------------ */

static void test_transfer(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    uint64_t term = raft_term(c->r[1]);
    isolate(c, 3, true);
    propose(c, 1, "x");   /* node 3 falls behind */
    assert_int_equal(raft_transfer(c->r[1], 3), 0);
    assert_int_equal(raft_transferee(c->r[1]), 3);
    assert_int_equal(raft_propose(c->r[1], "y", 1, NULL), -EBUSY);
    assert_int_equal(raft_transfer(c->r[1], 2), -EBUSY);
    assert_int_equal(raft_transfer(c->r[1], 1), -EINVAL);
    /* Not done within an election timeout: given up. */
    tick(c, 1, 10);
    assert_int_equal(raft_transferee(c->r[1]), 0);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);

    isolate(c, 3, false);
    assert_int_equal(raft_transfer(c->r[1], 3), 0);
    for (int i = 0; i < 3 && raft_state(c->r[1]) == RAFT_LEADER; i++)
        heartbeat(c, 1);   /* catches node 3 up, then TimeoutNow */
    assert_int_equal(raft_state(c->r[3]), RAFT_LEADER);
    assert_int_equal(raft_term(c->r[3]), term + 1);
    assert_int_equal(raft_state(c->r[1]), RAFT_FOLLOWER);
    assert_int_equal(raft_transferee(c->r[1]), 0);
    cluster_free(c);
}

/* ---- ReadIndex ------------------------------------------------------------------ */

static void test_read_index(void **state)
{
    (void)state;
    struct tc *c = cluster_with_leader(3);
    assert_int_equal(raft_read_index(c->r[2], 1), -DFS_ENOTLEADER);
    assert_int_equal(raft_read_index(c->r[1], 42), 0);
    settle(c);
    assert_int_equal(c->n_reads[1], 1);
    assert_int_equal(c->reads[1][0].ctx, 42);
    assert_int_equal(c->reads[1][0].status, 0);
    assert_int_equal(c->reads[1][0].index, raft_commit(c->r[1]));

    /* Without a quorum of heartbeat answers the read never completes and
     * fails when leadership is lost. */
    isolate(c, 1, true);
    assert_int_equal(raft_read_index(c->r[1], 43), 0);
    settle(c);
    assert_int_equal(c->n_reads[1], 1);
    tick(c, 1, 20);
    assert_int_equal(c->n_reads[1], 2);
    assert_int_equal(c->reads[1][1].ctx, 43);
    assert_int_equal(c->reads[1][1].status, -DFS_ENOTLEADER);
    cluster_free(c);
}

static unsigned elect_any(struct tc *c);

/*
 * The read lease: a started server grants no vote for an election
 * timeout; inside the lease a read needs no heartbeat round of its own,
 * even cut off (no other leader can be elected yet); past it, or while a
 * transfer is under way, it needs one.
 */
static void test_read_lease(void **state)
{
    (void)state;
    struct tc *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    struct raft_members m = voters(3);
    for (unsigned id = 1; id <= 3; id++) {
        struct raft_config cfg = config_for(id);
        cfg.read_lease = true;
        add_node(c, id, &cfg);
        assert_int_equal(raft_bootstrap(c->r[id], &m), 0);
    }
    settle(c);
    campaign(c, 1);                 /* 2 and 3 are fresh: no votes */
    assert_int_not_equal(raft_state(c->r[1]), RAFT_LEADER);
    unsigned l = elect_any(c);
    assert_true(l != 0);
    heartbeat(c, l);                /* a round every follower answered */

    unsigned rounds = c->sent[l][RAFT_MSG_HEARTBEAT];
    assert_int_equal(raft_read_index(c->r[l], 1), 0);
    settle(c);
    assert_int_equal(c->n_reads[l], 1);
    assert_int_equal(c->reads[l][0].status, 0);
    assert_int_equal(c->sent[l][RAFT_MSG_HEARTBEAT], rounds);

    /* Cut off: the followers stay loyal for the lease, so it still
     * serves; election_ticks 10 less a margin of 3 is 7 ticks. */
    unsigned a = l % 3 + 1, b = a % 3 + 1;
    isolate(c, l, true);
    tick(c, a, 6);
    tick(c, b, 6);
    assert_int_equal(raft_state(c->r[a]), RAFT_FOLLOWER);
    assert_int_equal(raft_state(c->r[b]), RAFT_FOLLOWER);
    tick(c, l, 6);
    assert_int_equal(raft_read_index(c->r[l], 2), 0);
    settle(c);
    assert_int_equal(c->n_reads[l], 2);
    assert_int_equal(c->reads[l][1].status, 0);
    tick(c, l, 1);                  /* the lease is over */
    assert_int_equal(raft_read_index(c->r[l], 3), 0);
    settle(c);
    assert_int_equal(c->n_reads[l], 2);
    isolate(c, l, false);
    heartbeat(c, l);
    assert_int_equal(c->n_reads[l], 3);
    assert_int_equal(c->reads[l][2].status, 0);

    /* A transfer under way: its target may win at once, no lease. */
    isolate(c, a, true);
    propose(c, l, "x");             /* a falls behind: no TimeoutNow yet */
    assert_int_equal(raft_transfer(c->r[l], a), 0);
    rounds = c->sent[l][RAFT_MSG_HEARTBEAT];
    assert_int_equal(raft_read_index(c->r[l], 4), 0);
    settle(c);
    assert_true(c->sent[l][RAFT_MSG_HEARTBEAT] > rounds);
    assert_int_equal(c->n_reads[l], 4);
    cluster_free(c);
}

static void test_read_waits_for_term_commit(void **state)
{
    (void)state;
    struct tc *c = cluster(3);
    c->cut_when_leader = 1;    /* its no-op cannot commit */
    campaign(c, 1);
    assert_int_equal(raft_state(c->r[1]), RAFT_LEADER);
    assert_int_equal(raft_read_index(c->r[1], 5), 0);
    settle(c);
    assert_int_equal(c->n_reads[1], 0);
    /* Nor may it change the configuration before committing in its term. */
    assert_int_equal(raft_add_learner(c->r[1], 4, NULL), -EBUSY);
    isolate(c, 1, false);
    heartbeat(c, 1);
    heartbeat(c, 1);
    assert_int_equal(c->n_reads[1], 1);
    assert_int_equal(c->reads[1][0].status, 0);
    assert_true(c->reads[1][0].index >= 2);   /* the term's no-op */
    cluster_free(c);
}

/* ---- restart and errors ------------------------------------------------------- */

static void test_restart_from_snapshot(void **state)
{
    (void)state;
    struct raft_members m = voters(3);
    struct raft_snapshot_meta meta = { .index = 10, .term = 3, .members = m };
    struct raft_entry e[2] = {
        { .index = 11, .term = 3, .type = RAFT_ENTRY_NORMAL, .len = 1,
          .data = "a" },
        { .index = 12, .term = 4, .type = RAFT_ENTRY_NOOP },
    };
    struct raft_restore rs = { .term = 4, .vote = 2, .snap = &meta,
                               .snap_data = "S", .snap_len = 1,
                               .entries = e, .n_entries = 2 };
    struct raft_config cfg = config_for(1);
    struct raft *r;
    assert_int_equal(raft_new(&cfg, &rs, &r), 0);
    assert_int_equal(raft_term(r), 4);
    assert_int_equal(raft_vote(r), 2);
    assert_int_equal(raft_commit(r), 10);
    assert_int_equal(raft_applied(r), 10);
    assert_int_equal(raft_snapshot_index(r), 10);
    assert_int_equal(raft_last_index(r), 12);
    assert_int_equal(raft_term_at(r, 10), 3);
    assert_int_equal(raft_members_voters(raft_members(r)), 3);
    assert_int_equal(raft_bootstrap(r, &m), -EEXIST);
    struct raft_ready rd;
    assert_false(raft_ready(r, &rd));   /* nothing to persist or send */
    raft_free(r);

    e[0].index = 12;   /* gap after the snapshot */
    assert_int_equal(raft_new(&cfg, &rs, &r), -EINVAL);
    e[0].index = 11;
    e[1].term = 2;     /* terms going backwards */
    assert_int_equal(raft_new(&cfg, &rs, &r), -EINVAL);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct raft *r;
    struct raft_config cfg = config_for(1);
    cfg.id = 0;
    assert_int_equal(raft_new(&cfg, NULL, &r), -EINVAL);
    cfg = config_for(1);
    cfg.election_ticks = 1;
    assert_int_equal(raft_new(&cfg, NULL, &r), -EINVAL);
    cfg = config_for(1);
    cfg.max_inflight = RAFT_MAX_INFLIGHT + 1;
    assert_int_equal(raft_new(&cfg, NULL, &r), -EINVAL);

    cfg = config_for(1);
    assert_int_equal(raft_new(&cfg, NULL, &r), 0);
    struct raft_members none = { .n = 1, .servers = { { 2, RAFT_LEARNER } } };
    assert_int_equal(raft_bootstrap(r, &none), -EINVAL);
    assert_int_equal(raft_propose(r, "x", 1, NULL), -DFS_ENOTLEADER);
    assert_int_equal(raft_add_learner(r, 5, NULL), -DFS_ENOTLEADER);
    assert_int_equal(raft_transfer(r, 2), -DFS_ENOTLEADER);
    /* A server in no configuration never campaigns. */
    for (int i = 0; i < 100; i++)
        raft_tick(r);
    assert_int_equal(raft_state(r), RAFT_FOLLOWER);

    struct raft_msg m = { .type = RAFT_MSG_HEARTBEAT, .term = 1, .from = 2, .to = 3 };
    assert_int_equal(raft_step(r, &m), -EINVAL);          /* not for us */
    m.to = 1;
    m.type = 99;
    assert_int_equal(raft_step(r, &m), -EINVAL);          /* unknown type */
    struct raft_entry e = { .index = 5, .term = 1, .type = RAFT_ENTRY_NOOP };
    m = (struct raft_msg){ .type = RAFT_MSG_APPEND, .term = 1, .from = 2, .to = 1,
                           .u.append = { .prev_index = 0, .n_entries = 1,
                                         .entries = &e } };
    assert_int_equal(raft_step(r, &m), -EINVAL);          /* index gap */
    m.u.append.entries = NULL;
    assert_int_equal(raft_step(r, &m), -EINVAL);
    m = (struct raft_msg){ .type = RAFT_MSG_SNAPSHOT, .term = 1, .from = 2, .to = 1,
                           .u.snapshot = { .total = 4, .offset = 3, .len = 2,
                                           .data = "ab" } };
    assert_int_equal(raft_step(r, &m), -EINVAL);          /* past total */
    assert_int_equal(raft_compact(r, 0, "x", 1, NULL), -ESTALE);
    raft_free(r);
}

/* ---- allocation failures ------------------------------------------------ */

static unsigned leader_of(struct tc *c)
{
    unsigned best = 0;
    for (unsigned id = 1; id <= c->n; id++)
        if (c->r[id] && raft_state(c->r[id]) == RAFT_LEADER &&
            (!best || raft_term(c->r[id]) > raft_term(c->r[best])))
            best = id;
    return best;
}

/* Ticks every server until someone leads (0 if nobody does). */
static unsigned elect_any(struct tc *c)
{
    for (int i = 0; i < 300 && !leader_of(c); i++) {
        for (unsigned id = 1; id <= c->n; id++)
            if (c->r[id])
                raft_tick(c->r[id]);
        settle(c);
    }
    return leader_of(c);
}

/* A life in small, where any call may fail with -ENOMEM: bootstrap,
 * election, proposals, a learner, compaction, a snapshot transfer, a read. */
static void rough_life(struct tc *c)
{
    struct raft_members m = voters(3);
    c->n = 4;
    for (unsigned id = 1; id <= 4; id++) {
        struct raft_config cfg = config_for(id);
        if (raft_new(&cfg, NULL, &c->r[id]) == 0 && id <= 3)
            raft_bootstrap(c->r[id], &m);
    }
    settle(c);
    unsigned l = elect_any(c);
    if (!l)
        return;
    for (int i = 0; i < 5; i++)
        raft_propose(c->r[l], "command", 7, NULL);
    heartbeat(c, l);
    raft_add_learner(c->r[l], 4, NULL);
    heartbeat(c, l);
    raft_compact(c->r[l], c->applied[l], "snapshot bytes here", 19, NULL);
    for (int i = 0; i < 4 && raft_state(c->r[l]) == RAFT_LEADER; i++)
        heartbeat(c, l);
    raft_read_index(c->r[l], 1);
    settle(c);
}

/* With memory back, the voters must still agree and make progress. */
static void recover(struct tc *c)
{
    unsigned l = elect_any(c);
    assert_true(l != 0);
    uint64_t index;
    assert_int_equal(raft_propose(c->r[l], "after", 5, &index), 0);
    for (int i = 0; i < 5; i++)
        heartbeat(c, l);
    for (unsigned id = 1; id <= 3; id++) {
        assert_true(c->applied[id] >= index);
        assert_int_equal(raft_term_at(c->r[id], index), raft_term(c->r[l]));
    }
}

static void test_allocation_failures(void **state)
{
    (void)state;
    unsigned long n;
    for (n = 1;; n++) {
        struct tc *c = calloc(1, sizeof(*c));
        assert_non_null(c);
        raftalloc_fail_nth(n);
        rough_life(c);
        bool fired = raftalloc_pending() == 0;
        raftalloc_fail_nth(0);
        if (c->r[1] && c->r[2] && c->r[3])
            recover(c);
        cluster_free(c);
        if (!fired)
            break;
    }
    /* It did go through the scenario's allocations (52 when written). */
    assert_true(n > 40);
}

static void test_members_codec(void **state)
{
    (void)state;
    struct raft_members m = voters(3), out;
    m.servers[2].role = RAFT_LEARNER;
    uint8_t buf[64];
    int len = raft_members_encode(&m, buf, sizeof(buf));
    assert_int_equal(len, 4 + 9 * 3);
    assert_int_equal(raft_members_decode(buf, (size_t)len, &out), 0);
    assert_memory_equal(&out, &m, sizeof(m));
    assert_int_equal(raft_members_encode(&m, buf, 10), -ENOSPC);
    assert_int_equal(raft_members_decode(buf, (size_t)len - 1, &out), -EINVAL);
    buf[4 + 9 + 8] = 7;                                   /* bad role */
    assert_int_equal(raft_members_decode(buf, (size_t)len, &out), -EINVAL);
    m.servers[1].id = 1;                                  /* duplicate */
    len = raft_members_encode(&m, buf, sizeof(buf));
    assert_int_equal(raft_members_decode(buf, (size_t)len, &out), -EINVAL);
    m.servers[1].id = 0;                                  /* id 0 */
    len = raft_members_encode(&m, buf, sizeof(buf));
    assert_int_equal(raft_members_decode(buf, (size_t)len, &out), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_election),
        cmocka_unit_test(test_single_voter),
        cmocka_unit_test(test_prevote_keeps_healthy_leader),
        cmocka_unit_test(test_check_quorum_steps_down),
        cmocka_unit_test(test_vote_waits_for_persistence),
        cmocka_unit_test(test_ack_waits_for_persistence),
        cmocka_unit_test(test_conflict_truncated),
        cmocka_unit_test(test_commit_only_current_term),
        cmocka_unit_test(test_never_truncates_committed),
        cmocka_unit_test(test_stale_leader_ignored),
        cmocka_unit_test(test_snapshot_send_and_install),
        cmocka_unit_test(test_learner_promotion),
        cmocka_unit_test(test_remove_leader),
        cmocka_unit_test(test_no_mutation_inside_ready),
        cmocka_unit_test(test_transfer),
        cmocka_unit_test(test_read_index),
        cmocka_unit_test(test_read_lease),
        cmocka_unit_test(test_read_waits_for_term_commit),
        cmocka_unit_test(test_restart_from_snapshot),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_members_codec),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("raft", tests, NULL, NULL);
}
