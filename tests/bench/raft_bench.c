/*
 * raft_bench: replication throughput of the Raft core over real disks.
 *
 * Three cores (master/raft.h) run in one process, each with its own raftlog
 * (master/raftlog.h) in a directory under $TMPDIR (default /tmp), removed at
 * the end.  The leader keeps a window of W 100-byte proposals in flight, a
 * new one proposed as an old one commits, for W = 1, 16, 256, 4096.  For
 * each W it prints committed entries/s at the leader, the median and p99
 * commit latency (raft_propose -> handed out as committed by the leader),
 * the leader's fdatasyncs/s and entries per sync, beside the raw rate of
 * the same disk (4 KiB pwrite + fdatasync loop).  Each figure runs for
 * about RAFT_BENCH_SECONDS (default 1); each row is the run with the median
 * throughput of three, each on a fresh cluster.  Figures only: no timed
 * assertion; non-zero exit on any API error.
 *
 * How the cluster is driven, in rounds (what master/rnode.c does with a
 * storage thread, made step-wise):
 *   settle  every node drains its Readys, then steps the messages queued
 *           to it, until no message is in flight.  A Ready's entries and
 *           hard state are written to its raftlog at once (appends are not
 *           durable until a sync; the contract lets a Ready reach the disk
 *           in any order before raft_persisted); its messages are copied
 *           into the destination's queue, as Ready buffers die at
 *           raft_advance.
 *   top up  the leader proposes until W are in flight.
 *   store   group commit: each node with unsynced appends makes all of them
 *           durable with one raftlog_sync, the three nodes in parallel (one
 *           storage thread each, as three machines would), then
 *           raft_persisted(highest seq handed out) releases the held acks.
 * So a sync covers everything proposed since the previous one.  Logical
 * time stands still while measuring (no ticks: no heartbeat, no timeout),
 * so the figures are the replication path alone.
 *
 * Invariants:
 *  1. A node's raftlog is touched by its storage thread only between the
 *     `go` and `done` of one sync, while the main thread waits for it.
 *  2. raft_persisted(seq) is called only after the sync that followed the
 *     writes of every Ready up to seq.
 *  3. Every message in a queue owns copies of its entries and bytes.
 *  4. Nothing compacts, so no snapshot is ever sent or installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/fsio.h"
#include "master/raft.h"
#include "master/raftlog.h"

#define N_NODES      3
#define ENTRY_BYTES  100
#define N_RUNS       3
#define RING         8192     /* > the largest window: propose times by index */
#define MAX_ROUNDS   100000   /* settle passes / election rounds before giving up */

/* A message in flight, with copies of what its Ready lent. */
struct qmsg {
    struct raft_msg m;
    struct raft_entry *ents;  /* m.u.append.entries when it has some */
    void *data;               /* their bytes */
    struct qmsg *next;
};

struct cluster;

struct node {
    struct cluster *c;
    uint64_t id;
    char dir[PATH_MAX];
    bool made_dir;
    struct raft *raft;
    struct raftlog *log;
    struct qmsg *inbox, **inbox_tail;   /* FIFO, as TCP */
    uint64_t handed_seq;                /* highest Ready seq handed out */
    uint64_t persisted_seq;             /* highest given to raft_persisted */
    pthread_t thread;
    bool running;                       /* thread started */
    bool go;                            /* protected by c->mu: sync asked */
    int sync_rc;                        /* protected by c->mu */
    uint64_t syncs;                     /* protected by c->mu */
};

struct cluster {
    struct fsio *fs;
    struct node nodes[N_NODES];
    pthread_mutex_t mu;
    pthread_cond_t go_cv, done_cv;
    unsigned busy;                      /* protected by mu: syncs running */
    bool quit;                          /* protected by mu */
    struct node *leader;                /* where proposals and figures are */
    bool measuring;
    double sent_at[RING];               /* propose time of index % RING */
    uint64_t committed;                 /* normal entries, while measuring */
    double *lat;                        /* commit latencies, seconds */
    size_t n_lat, cap_lat;
};

struct result {
    double entries_per_s;
    double p50_ms, p99_ms;
    double syncs_per_s;
    double entries_per_sync;
};

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "raft_bench: %s: %s\n", what, dfs_strerror(rc));
    return rc;
}

/* ---- messages ------------------------------------------------------------ */

static void qmsg_free(struct qmsg *q)
{
    free(q->ents);
    free(q->data);
    free(q);
}

static int qmsg_copy_entries(struct qmsg *q)
{
    struct raft_msg_append *a = &q->m.u.append;
    size_t bytes = 0;
    for (uint32_t i = 0; i < a->n_entries; i++)
        bytes += a->entries[i].len;
    q->ents = malloc(a->n_entries * sizeof(*q->ents));
    q->data = malloc(bytes ? bytes : 1);
    if (!q->ents || !q->data)
        return -ENOMEM;
    uint8_t *p = q->data;
    for (uint32_t i = 0; i < a->n_entries; i++) {
        q->ents[i] = a->entries[i];
        q->ents[i].data = NULL;
        if (!a->entries[i].len)
            continue;   /* a no-op: no bytes, maybe no pointer */
        q->ents[i].data = p;
        memcpy(p, a->entries[i].data, a->entries[i].len);
        p += a->entries[i].len;
    }
    a->entries = q->ents;
    return 0;
}

/* Queues a copy of m for its destination. */
static int cluster_send(struct cluster *c, const struct raft_msg *m)
{
    if (m->to < 1 || m->to > N_NODES)
        return -EINVAL;
    if (m->type == RAFT_MSG_SNAPSHOT)
        return -ENOTSUP;   /* invariant 4 */
    struct qmsg *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->m = *m;
    int rc = 0;
    if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries)
        rc = qmsg_copy_entries(q);
    if (rc < 0) {
        qmsg_free(q);
        return rc;
    }
    struct node *to = &c->nodes[m->to - 1];
    *to->inbox_tail = q;
    to->inbox_tail = &q->next;
    return 0;
}

/* Steps every message queued to n (new ones wait for the next pass). */
static int node_deliver(struct node *n)
{
    struct qmsg *q = n->inbox;
    n->inbox = NULL;
    n->inbox_tail = &n->inbox;
    int rc = 0;
    while (q) {
        struct qmsg *next = q->next;
        if (rc == 0)
            rc = raft_step(n->raft, &q->m);
        qmsg_free(q);
        q = next;
    }
    return rc;
}

/* ---- the Ready loop ------------------------------------------------------ */

/* Writes a Ready's durable part; entries become durable at the next sync. */
static int node_write(struct node *n, const struct raft_ready *rd)
{
    if (rd->snap)
        return -ENOTSUP;   /* invariant 4 */
    int rc = 0;
    if (rd->n_entries &&
        rd->entries[0].index <= raftlog_last_index(n->log))
        rc = raftlog_truncate(n->log, rd->entries[0].index);
    if (rc == 0 && rd->n_entries)
        rc = raftlog_append(n->log, rd->entries, rd->n_entries);
    if (rc == 0 && rd->hs_changed) {
        struct raftlog_hard_state hs = { .term = rd->term, .vote = rd->vote };
        rc = raftlog_hard_state_save(n->log, &hs);
    }
    if (rc == 0 && rd->seq)
        n->handed_seq = rd->seq;
    return rc;
}

/* Counts the leader's newly committed proposals and their latencies. */
static int cluster_record(struct cluster *c, const struct raft_ready *rd)
{
    double t = now_sec();
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->type != RAFT_ENTRY_NORMAL)
            continue;
        if (c->n_lat == c->cap_lat) {
            size_t cap = c->cap_lat ? 2 * c->cap_lat : 65536;
            double *lat = realloc(c->lat, cap * sizeof(*lat));
            if (!lat)
                return -ENOMEM;
            c->lat = lat;
            c->cap_lat = cap;
        }
        c->lat[c->n_lat++] = t - c->sent_at[e->index % RING];
        c->committed++;
    }
    return 0;
}

static int node_process(struct node *n)
{
    struct cluster *c = n->c;
    struct raft_ready rd;
    int rc = 0;
    while (rc == 0 && raft_ready(n->raft, &rd)) {
        rc = node_write(n, &rd);
        for (size_t i = 0; rc == 0 && i < rd.n_msgs; i++)
            rc = cluster_send(c, &rd.msgs[i]);
        if (rc == 0 && c->measuring && n == c->leader)
            rc = cluster_record(c, &rd);
        raft_advance(n->raft);
    }
    return rc;
}

/* Processes and delivers until no message is in flight. */
static int cluster_settle(struct cluster *c)
{
    for (int pass = 0; pass < MAX_ROUNDS; pass++) {
        bool moved = false;
        for (int i = 0; i < N_NODES; i++) {
            int rc = node_process(&c->nodes[i]);
            if (rc < 0)
                return fail("processing a Ready", rc);
        }
        for (int i = 0; i < N_NODES; i++) {
            if (!c->nodes[i].inbox)
                continue;
            moved = true;
            int rc = node_deliver(&c->nodes[i]);
            if (rc < 0)
                return fail("raft_step", rc);
        }
        if (!moved)
            return 0;
    }
    return fail("messages never settle", -ELOOP);
}

/* ---- group commit: one sync per node per round, nodes in parallel ------ */

static void *node_storage_main(void *arg)
{
    struct node *n = arg;
    struct cluster *c = n->c;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!n->go && !c->quit)
            pthread_cond_wait(&c->go_cv, &c->mu);
        if (!n->go)
            break;
        pthread_mutex_unlock(&c->mu);
        int rc = raftlog_sync(n->log);
        pthread_mutex_lock(&c->mu);
        n->go = false;
        n->sync_rc = rc;
        n->syncs++;
        c->busy--;
        pthread_cond_signal(&c->done_cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int cluster_store(struct cluster *c)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < N_NODES; i++) {
        struct node *n = &c->nodes[i];
        if (raftlog_last_index(n->log) > raftlog_durable_index(n->log)) {
            n->go = true;
            c->busy++;
        }
    }
    pthread_cond_broadcast(&c->go_cv);
    while (c->busy)
        pthread_cond_wait(&c->done_cv, &c->mu);
    for (int i = 0; i < N_NODES && rc == 0; i++)
        rc = c->nodes[i].sync_rc;
    pthread_mutex_unlock(&c->mu);
    if (rc < 0)
        return fail("raftlog_sync", rc);
    for (int i = 0; i < N_NODES; i++) {
        struct node *n = &c->nodes[i];
        if (n->handed_seq > n->persisted_seq) {
            raft_persisted(n->raft, n->handed_seq);
            n->persisted_seq = n->handed_seq;
        }
    }
    return 0;
}

/* ---- cluster life -------------------------------------------------------- */

static int remove_in(const char *name, void *arg)
{
    char path[PATH_MAX + 256];
    snprintf(path, sizeof(path), "%s/%s", (const char *)arg, name);
    return unlink(path) < 0 ? -errno : 0;
}

static void node_release(struct node *n)
{
    if (n->running)
        pthread_join(n->thread, NULL);
    while (n->inbox) {
        struct qmsg *q = n->inbox;
        n->inbox = q->next;
        qmsg_free(q);
    }
    raft_free(n->raft);
    raftlog_close(n->log);
    if (n->made_dir) {
        fsio_list_dir(n->c->fs, n->dir, remove_in, n->dir);
        rmdir(n->dir);
    }
}

static void cluster_release(struct cluster *c)
{
    pthread_mutex_lock(&c->mu);
    c->quit = true;
    pthread_cond_broadcast(&c->go_cv);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < N_NODES; i++)
        node_release(&c->nodes[i]);
    free(c->lat);
    pthread_cond_destroy(&c->done_cv);
    pthread_cond_destroy(&c->go_cv);
    pthread_mutex_destroy(&c->mu);
}

static int node_init(struct cluster *c, struct node *n, const char *base,
                     uint64_t id, uint64_t seed)
{
    n->c = c;
    n->id = id;
    n->inbox_tail = &n->inbox;
    snprintf(n->dir, sizeof(n->dir), "%s/n%llu", base, (unsigned long long)id);
    int rc = fsio_mkdir(c->fs, n->dir, 0755);
    if (rc < 0)
        return fail(n->dir, rc);
    n->made_dir = true;
    struct raftlog_recovery rec;
    rc = raftlog_open(c->fs, n->dir, NULL, NULL, NULL, &rec, &n->log);
    if (rc < 0)
        return fail(rec.error[0] ? rec.error : "raftlog_open", rc);
    struct raft_config cfg = {   /* as master/rnode.c configures it */
        .id = id, .election_ticks = 10, .heartbeat_ticks = 1, .seed = seed,
        .max_msg_bytes = 1u << 20, .max_inflight = 16,
        .snapshot_chunk_bytes = 1u << 20, .compact_trailing = 1024,
    };
    rc = raft_new(&cfg, NULL, &n->raft);
    if (rc < 0)
        return fail("raft_new", rc);
    rc = -pthread_create(&n->thread, NULL, node_storage_main, n);
    if (rc < 0)
        return fail("pthread_create", rc);
    n->running = true;
    return 0;
}

/* Bootstraps the three, ticks until one leads with its no-op committed. */
static int cluster_elect(struct cluster *c)
{
    struct raft_members m = { .n = N_NODES };
    for (int i = 0; i < N_NODES; i++)
        m.servers[i] = (struct raft_server){ .id = c->nodes[i].id,
                                             .role = RAFT_VOTER };
    for (int i = 0; i < N_NODES; i++) {
        int rc = raft_bootstrap(c->nodes[i].raft, &m);
        if (rc < 0)
            return fail("raft_bootstrap", rc);
    }
    for (int round = 0; round < MAX_ROUNDS; round++) {
        for (int i = 0; i < N_NODES; i++) {
            struct raft *r = c->nodes[i].raft;
            if (raft_state(r) == RAFT_LEADER &&
                raft_commit(r) == raft_last_index(r)) {
                c->leader = &c->nodes[i];
                return 0;
            }
        }
        for (int i = 0; i < N_NODES; i++)
            raft_tick(c->nodes[i].raft);
        int rc = cluster_settle(c);
        if (rc == 0)
            rc = cluster_store(c);
        if (rc == 0)
            rc = cluster_settle(c);
        if (rc < 0)
            return rc;
    }
    return fail("no leader elected", -ETIMEDOUT);
}

static int cluster_init(struct cluster *c, struct fsio *fs, const char *base,
                        uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->fs = fs;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->go_cv, NULL);
    pthread_cond_init(&c->done_cv, NULL);
    for (int i = 0; i < N_NODES; i++) {
        int rc = node_init(c, &c->nodes[i], base, (uint64_t)i + 1,
                           seed * N_NODES + (uint64_t)i);
        if (rc < 0)
            return rc;
    }
    return cluster_elect(c);
}

/* ---- measurement --------------------------------------------------------- */

/* The leader proposes until `window` of its proposals are in flight. */
static int cluster_top_up(struct cluster *c, uint64_t *proposed,
                          uint64_t window)
{
    static const uint8_t payload[ENTRY_BYTES] = { 'd', 'f', 's' };
    double t = now_sec();
    while (*proposed - c->committed < window) {
        uint64_t index;
        int rc = raft_propose(c->leader->raft, payload, sizeof(payload),
                              &index);
        if (rc < 0)
            return fail("raft_propose", rc);
        c->sent_at[index % RING] = t;
        (*proposed)++;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_window(struct fsio *fs, const char *base, uint64_t window,
                        double secs, uint64_t seed, struct result *out)
{
    struct cluster c;
    int rc = cluster_init(&c, fs, base, seed);
    uint64_t proposed = 0, syncs0 = 0;
    double t0 = now_sec(), t = t0;
    if (rc == 0) {
        syncs0 = c.leader->syncs;   /* threads idle: no lock needed */
        c.measuring = true;
    }
    while (rc == 0 && t - t0 < secs) {
        rc = cluster_settle(&c);
        if (rc == 0)
            rc = cluster_top_up(&c, &proposed, window);
        if (rc == 0)
            rc = cluster_settle(&c);
        if (rc == 0)
            rc = cluster_store(&c);
        t = now_sec();
    }
    if (rc == 0 && c.n_lat == 0)
        rc = fail("nothing committed", -ETIMEDOUT);
    if (rc == 0) {
        double syncs = (double)(c.leader->syncs - syncs0);
        qsort(c.lat, c.n_lat, sizeof(*c.lat), cmp_double);
        out->entries_per_s = (double)c.committed / (t - t0);
        out->p50_ms = c.lat[c.n_lat / 2] * 1e3;
        out->p99_ms = c.lat[c.n_lat * 99 / 100] * 1e3;
        out->syncs_per_s = syncs / (t - t0);
        out->entries_per_sync = syncs ? (double)c.committed / syncs : 0;
    }
    cluster_release(&c);
    return rc;
}

/* The disk's own rate: append 4 KiB, fdatasync, for about secs. */
static int bench_disk(struct fsio *fs, const char *base, double secs,
                      double *ops_per_s)
{
    static const uint8_t block[4096];
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/raw", base);
    int fd = fsio_open(fs, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fail(path, fd);
    uint64_t n = 0;
    int rc = 0;
    double t0 = now_sec(), t = t0;
    while (rc == 0 && t - t0 < secs) {
        ssize_t w = fsio_pwrite(fs, fd, block, sizeof(block),
                                (off_t)(n * sizeof(block)));
        rc = w < 0 ? (int)w : fsio_fdatasync(fs, fd);
        n++;
        t = now_sec();
    }
    fsio_close(fs, fd);
    fsio_unlink(fs, path);
    *ops_per_s = (double)n / (t - t0);
    return rc < 0 ? fail("4 KiB write + fdatasync", rc) : 0;
}

static int cmp_result(const void *a, const void *b)
{
    return cmp_double(&((const struct result *)a)->entries_per_s,
                      &((const struct result *)b)->entries_per_s);
}

static int run_all(struct fsio *fs, const char *base, double secs)
{
    static const uint64_t windows[] = { 1, 16, 256, 4096 };
    double disk[N_RUNS];
    for (int k = 0; k < N_RUNS; k++) {
        int rc = bench_disk(fs, base, secs, &disk[k]);
        if (rc < 0)
            return rc;
    }
    qsort(disk, N_RUNS, sizeof(*disk), cmp_double);
    printf("  disk: 4 KiB pwrite + fdatasync: %.0f ops/s\n", disk[N_RUNS / 2]);
    printf("  %6s %11s %9s %9s %9s %13s\n", "window", "entries/s", "p50 ms",
           "p99 ms", "syncs/s", "entries/sync");
    for (size_t w = 0; w < sizeof(windows) / sizeof(*windows); w++) {
        struct result r[N_RUNS];
        for (int k = 0; k < N_RUNS; k++) {
            int rc = bench_window(fs, base, windows[w], secs,
                                  w * N_RUNS + (uint64_t)k + 1, &r[k]);
            if (rc < 0)
                return rc;
        }
        qsort(r, N_RUNS, sizeof(*r), cmp_result);
        const struct result *m = &r[N_RUNS / 2];
        printf("  %6llu %11.0f %9.2f %9.2f %9.0f %13.1f\n",
               (unsigned long long)windows[w], m->entries_per_s, m->p50_ms,
               m->p99_ms, m->syncs_per_s, m->entries_per_sync);
        fflush(stdout);
    }
    return 0;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    const char *env = getenv("RAFT_BENCH_SECONDS");
    double secs = env ? atof(env) : 1.0;
    char base[PATH_MAX - 64];
    snprintf(base, sizeof(base), "%s/raft-bench-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror("raft_bench: mkdtemp");
        return 1;
    }
    struct fsio *fs = fsio_real_new();
    if (!fs) {
        fprintf(stderr, "raft_bench: out of memory\n");
        rmdir(base);
        return 1;
    }
    printf("raft_bench: %d nodes in one process, %d-byte entries, real files "
           "+ fdatasync in %s\n  (%.1f s per figure, median of %d runs; one "
           "sync per node per round, nodes in parallel)\n", N_NODES,
           ENTRY_BYTES, base, secs, N_RUNS);
    int rc = run_all(fs, base, secs);
    rmdir(base);
    fsio_free(fs);
    return rc < 0;
}
