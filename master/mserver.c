/*
 * mserver: start-up, the listener, dispatch of frames, and shutdown.
 *
 * States: CONFIGURED -> RUNNING (mserver_run: data directory checked, log
 * recovered, listener up) -> STOPPING (signal or fatal storage error:
 * listener closed, Raft node closed with its queued writes finished).
 *
 * Invariants:
 *  1. The namespace changes only in mserver_apply(), from committed log
 *     entries (STYLE §4); requests never touch it directly.
 *  2. A data directory holds one cluster's state: its "cluster" file names
 *     the cluster id and this master's id, and a mismatch refuses to start.
 *  3. Every connection is authenticated (common/rpc) before any frame of it
 *     is dispatched.
 */
#include "mserver.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/fsio.h"
#include "common/log.h"
#include "common/net.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "master/madmin.h"
#include "master/mclient.h"
#include "master/mcs.h"
#include "master/mrepl.h"
#include "master/mstatus.h"
#include "master/mverify.h"
#include "master/ns.h"
#include "master/ns_op.h"
#include "master/ns_snapshot.h"
#include "master/raftwire.h"
#include "master/rnode.h"

#define CLUSTER_FILE "cluster"

#define KEY(name, type, field, def, min, max, help) \
    { name, type, offsetof(struct mserver_conf, field), def, min, max, help }

const struct conf_key mserver_conf_keys[] = {
    KEY("id", CONF_UINT64, id, "0", "0", NULL, "this master's id (1, 2, ...), required"),
    KEY("listen", CONF_STRING, listen, "127.0.0.1:9400", NULL, NULL,
        "host:port for clients, chunkservers and masters"),
    KEY("http", CONF_STRING, http, "", NULL, NULL, "host:port of the status page"),
    KEY("data_dir", CONF_STRING, data_dir, NULL, NULL, NULL, "state directory, required"),
    KEY("masters", CONF_STRING, masters, NULL, NULL, NULL,
        "every master: id=host:port,... (this one included), required"),
    KEY("masters_http", CONF_STRING, masters_http, "", NULL, NULL,
        "status pages of the masters: id=host:port,..."),
    KEY("key_file", CONF_STRING, key_file, NULL, NULL, NULL, "cluster key file, required"),
    KEY("cluster_id", CONF_STRING, cluster_id, "", NULL, NULL,
        "16 hex digits naming the cluster (required with --init)"),
    KEY("chunk_size", CONF_SIZE, chunk_size, "64M", "64K", "2G",
        "bytes per chunk, a multiple of 64K; fixed by the first leader of a new cluster"),
    KEY("root_squash", CONF_BOOL, root_squash, "false", NULL, NULL,
        "act for uid 0 as squash_uid/squash_gid (set by the leader for the whole cluster)"),
    KEY("squash_uid", CONF_UINT64, squash_uid, "65534", "0", "4294967294",
        "the uid root becomes under root_squash"),
    KEY("squash_gid", CONF_UINT64, squash_gid, "65534", "0", "4294967294",
        "the gid root becomes under root_squash"),
    KEY("tick", CONF_DURATION, tick_ms, "50ms", "1ms", "10s", "Raft tick"),
    KEY("election_ticks", CONF_INT, election_ticks, "10", "2", "1000",
        "election timeout in ticks (randomised up to twice that)"),
    KEY("heartbeat_ticks", CONF_INT, heartbeat_ticks, "1", "1", "100",
        "leader heartbeat interval in ticks"),
    KEY("snapshot_every", CONF_UINT64, snapshot_every, "100000", NULL, NULL,
        "snapshot the namespace after this many log entries (0: never)"),
    KEY("log_level", CONF_STRING, log_level, "info", NULL, NULL, "debug, info, warn, error"),
    KEY("log_file", CONF_STRING, log_file, "", NULL, NULL, "log to this file, not stderr"),
    { 0 },
};

int mserver_conf_load(struct mserver_conf *c, const char *path,
                      const char *const *overrides, size_t n, char *errbuf,
                      size_t errlen)
{
    memset(c, 0, sizeof(*c));
    int rc = conf_load(mserver_conf_keys, path, overrides, n, c, errbuf, errlen);
    if (rc < 0)
        return rc;
    const char *missing = !c->id ? "id" : !c->data_dir ? "data_dir"
                        : !c->masters ? "masters" : !c->key_file ? "key_file" : NULL;
    if (missing) {
        snprintf(errbuf, errlen, "%s: required key \"%s\" is not set",
                 path ? path : "configuration", missing);
        return -DFS_ECONF;
    }
    if (c->chunk_size % NS_CHUNK_SIZE_MIN) {
        snprintf(errbuf, errlen, "chunk_size: %" PRIu64 " is not a multiple of 64K",
                 c->chunk_size);
        return -DFS_ECONF;
    }
    if (2 * (unsigned)c->heartbeat_ticks > (unsigned)c->election_ticks) {
        snprintf(errbuf, errlen, "election_ticks must be at least twice heartbeat_ticks");
        return -DFS_ECONF;
    }
    return 0;
}

void mserver_conf_release(struct mserver_conf *c)
{
    conf_release(mserver_conf_keys, c);
}

/* ---- the master list ----------------------------------------------------- */

/* Parses "1=host:port,2=host:port" into ids[] and addrs[] (malloc'ed);
 * a bare "host:port" (a master to --join through) is skipped. */
static int parse_masters(const char *spec, uint64_t *ids, char **addrs,
                         size_t max, size_t *n, char *errbuf, size_t errlen)
{
    *n = 0;
    char *copy = strdup(spec ? spec : "");
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ", ", &save); item;
         item = strtok_r(NULL, ", ", &save)) {
        char *eq = strchr(item, '=');
        char *end = NULL;
        if (!eq && strchr(item, ':'))
            continue;   /* "host:port": an address to --join through */
        uint64_t id = eq ? strtoull(item, &end, 10) : 0;
        if (!eq || end != eq || id == 0 || !eq[1] || *n == max) {
            snprintf(errbuf, errlen, "masters: bad entry \"%s\" (want id=host:port)", item);
            rc = -DFS_ECONF;
            break;
        }
        ids[*n] = id;
        addrs[*n] = strdup(eq + 1);
        if (!addrs[(*n)++]) {
            rc = -ENOMEM;
            break;
        }
    }
    free(copy);
    return rc;
}

static void free_addrs(char **addrs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(addrs[i]);
}

/* ---- the data directory -------------------------------------------------- */

/* mkdir of one directory; when made, its parent is synced so that the
 * name, and what is later made durable inside, survive a power cut. */
static int mkdir_durable(struct fsio *fs, char *path)
{
    int rc = fsio_mkdir(fs, path, 0755);
    if (rc == -EEXIST)
        return 0;
    if (rc < 0)
        return rc;
    char *slash = strrchr(path, '/');
    if (!slash)
        return fsio_fsync_dir(fs, ".");
    if (slash == path)
        return fsio_fsync_dir(fs, "/");
    *slash = '\0';
    rc = fsio_fsync_dir(fs, path);
    *slash = '/';
    return rc;
}

/* mkdir -p through fsio (docs/DURABILITY.md, "Create a directory"). */
static int mkdir_p(struct fsio *fs, const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir_durable(fs, buf);
        *p = '/';
        if (rc < 0)
            return rc;
    }
    return mkdir_durable(fs, buf);
}

/* Creates (init, join) or checks the data directory's cluster file. */
static int check_data_dir(struct mserver *s, bool init, bool join)
{
    const struct mserver_conf *c = s->conf;
    char path[4096], want[128];
    snprintf(path, sizeof(path), "%s/%s", c->data_dir, CLUSTER_FILE);
    snprintf(want, sizeof(want), "cluster_id=%s\nmaster_id=%" PRIu64 "\n",
             s->cluster_id, c->id);
    void *have = NULL;
    size_t len = 0;
    int rc = fsio_read_file(s->fs, path, 4096, &have, &len);
    if (init) {
        /* A --join stopped after the cluster file (same cluster and id,
         * still marked joining) is taken up again. */
        if (rc == 0 && join && len == strlen(want) && !memcmp(have, want, len) &&
            madmin_join_pending(s)) {
            free(have);
            return 0;
        }
        if (rc == 0) {
            free(have);
            log_error("%s already holds a cluster; --init and --join are only for a new master",
                      c->data_dir);
            return -EEXIST;
        }
        if (strlen(s->cluster_id) != 16 || strspn(s->cluster_id, "0123456789abcdef") != 16) {
            log_error("--init needs cluster_id = 16 lowercase hex digits");
            return -DFS_ECONF;
        }
        rc = mkdir_p(s->fs, c->data_dir);
        /* The joining mark goes first: the cluster file commits. */
        if (rc == 0 && join)
            rc = madmin_mark_joining(s);
        if (rc == 0)
            rc = fsio_write_file_atomic(s->fs, c->data_dir, CLUSTER_FILE, want, strlen(want));
        if (rc < 0)
            log_error("%s: cannot initialise: %s", c->data_dir, dfs_strerror(rc));
        return rc;
    }
    if (rc == -ENOENT) {
        log_error("%s holds no cluster: start the first masters with --init", c->data_dir);
        return rc;
    }
    if (rc < 0) {
        log_error("%s: %s", path, dfs_strerror(rc));
        return rc;
    }
    /* cluster_id may be left out of the config once initialised. */
    char *got = have;
    char expect_id[64];
    snprintf(expect_id, sizeof(expect_id), "master_id=%" PRIu64 "\n", c->id);
    bool id_ok = strstr(got, expect_id) != NULL;
    bool cluster_ok = !s->cluster_id[0] || strncmp(got, want, strlen("cluster_id=") + 17) == 0;
    if (!id_ok || !cluster_ok) {
        log_error("%s belongs to another cluster or master (%.*s), not cluster %s master %" PRIu64,
                  c->data_dir, (int)strcspn(got, "\n"), got,
                  s->cluster_id[0] ? s->cluster_id : "?", c->id);
        rc = -DFS_ECLUSTER;
    }
    if (rc == 0 && !s->cluster_id[0])
        snprintf(s->cluster_id, sizeof(s->cluster_id), "%.16s", got + strlen("cluster_id="));
    free(have);
    return rc;
}

/* ---- the state machine ----------------------------------------------------- */

static void mserver_apply(void *ctx, const struct raft_entry *e)
{
    struct mserver *s = ctx;
    if (madmin_is_entry(e)) {
        madmin_apply(s, e);
        return;
    }
    struct ns_op op;
    struct ns_result res;
    ns_result_init(&res);
    int rc = ns_op_decode(e->data, e->len, &op);
    if (rc < 0) {
        /* Every master decodes the same bytes the same way, so skipping
         * keeps them identical; the entry came from a leader's encoder. */
        log_error("log entry %" PRIu64 " does not decode: %s", e->index, dfs_strerror(rc));
        res.reply.err = rc;
    } else {
        ns_apply(s->ns, &op, &res);
    }
    s->applied_ops++;
    if (res.ntrimmed)
        mrepl_trimmed(s, res.trimmed, res.ntrimmed);
    mclient_applied(s, e, rc < 0 ? NULL : &op, &res);
    ns_result_release(&res);
}

static int mserver_restore(void *ctx, const void *data, size_t len)
{
    struct mserver *s = ctx;
    struct ns *ns;
    const void *rest;
    size_t rest_len;
    int rc = madmin_snapshot_restore(s, data, len, &rest, &rest_len);
    if (rc == 0)
        rc = ns_snapshot_load(rest, rest_len, &ns);
    if (rc < 0)
        return rc;
    ns_free(s->ns);
    s->ns = ns;
    return 0;
}

static int mserver_snapshot(void *ctx, void **data, size_t *len)
{
    struct mserver *s = ctx;
    struct wire_writer w;
    wire_writer_init(&w);
    madmin_snapshot_write(s, &w);
    int rc = w.err ? w.err : ns_snapshot_write(s->ns, &w);
    if (rc < 0) {
        wire_writer_release(&w);
        return rc;
    }
    *data = wire_writer_detach(&w, len);
    return 0;
}

static void mserver_role(void *ctx, enum raft_state state, uint64_t leader,
                         uint64_t term)
{
    struct mserver *s = ctx;
    if (leader && leader != s->leader)
        mstatus_event(s, STATUS_EV_LEADER, "master %" PRIu64 " leads in term %" PRIu64,
                      leader, term);
    s->leader = leader;
    mclient_role_changed(s, state == RAFT_LEADER);
    mrepl_leader(s, state == RAFT_LEADER);
    mverify_leader(s, state == RAFT_LEADER);
    madmin_role(s, state == RAFT_LEADER);
}

static void mserver_fatal(void *ctx, int err)
{
    struct mserver *s = ctx;
    s->exit_code = err;
    ev_stop(s->loop);
}

static const struct rnode_cbs mserver_rnode_cbs = {
    .apply = mserver_apply,
    .restore = mserver_restore,
    .snapshot = mserver_snapshot,
    .read_ready = mclient_read_ready,
    .role_changed = mserver_role,
    .fatal = mserver_fatal,
};

/* ---- connections ------------------------------------------------------------ */

static void mserver_frame(struct rpc_conn *c, const struct wire_frame *f)
{
    struct mserver *s = rpc_ctx(c);
    if (s->stopping)
        return;
    if (raftwire_is_raft(f->hdr.type)) {
        rnode_receive(s->rnode, f);
        return;
    }
    if (f->hdr.flags & WIRE_F_REPLY)
        return;   /* a late reply to nothing we asked on this conn */
    if (mcs_handles(f->hdr.type))
        mcs_request(s, c, f);
    else
        mclient_request(s, c, f);
}

static void mserver_closed(struct rpc_conn *c, int err)
{
    struct mserver *s = rpc_ctx(c);
    (void)err;
    mcs_conn_closed(s, c);
    mclient_conn_closed(s, c);
    mverify_conn_closed(s, c);
    madmin_conn_closed(s, c);
}

static const struct rpc_cbs mserver_conn_cbs = {
    .on_frame = mserver_frame,
    .on_close = mserver_closed,
};

static void mserver_accept(struct net_listener *l, struct net_conn *nc, void *arg)
{
    (void)l;
    struct mserver *s = arg;
    struct rpc_conn *c;
    rpc_accept(s->loop, nc, &s->key, &mserver_conn_cbs, s, 0, NULL, &c);
}

static void mserver_signal(struct ev_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    struct mserver *s = arg;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info("master %" PRIu64 ": signal %u, stopping", s->conf->id, si.ssi_signo);
    ev_stop(loop);
}

static int mserver_signals(struct mserver *s)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s->signal_fd < 0)
        return -errno;
    return ev_fd_add(s->loop, s->signal_fd, EV_READ, mserver_signal, s);
}

/* ---- start and stop ------------------------------------------------------- */

static int mserver_open_raft(struct mserver *s, const struct mserver_opts *o)
{
    struct rnode_peer_addr peers[MSERVER_MAX_MASTERS];
    size_t np = 0;
    bool self_listed = false;
    for (size_t i = 0; i < s->n_masters; i++) {
        if (s->master_ids[i] == s->conf->id)
            self_listed = true;
        else
            peers[np++] = (struct rnode_peer_addr){ s->master_ids[i], s->master_addrs[i] };
    }
    if (!self_listed && !madmin_joining(s)) {
        log_error("masters does not list this master's id %" PRIu64, s->conf->id);
        return -DFS_ECONF;
    }
    char raft_dir[4096], err[512] = "";
    snprintf(raft_dir, sizeof(raft_dir), "%s/raft", s->conf->data_dir);
    int rc = mkdir_p(s->fs, raft_dir);
    if (rc < 0) {
        log_error("%s: %s", raft_dir, dfs_strerror(rc));
        return rc;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct rnode_config rc_cfg = {
        .id = s->conf->id, .dir = raft_dir, .peers = peers, .n_peers = np,
        .key = &s->key, .tick_ms = s->conf->tick_ms,
        .election_ticks = (unsigned)s->conf->election_ticks,
        .heartbeat_ticks = (unsigned)s->conf->heartbeat_ticks,
        .seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ s->conf->id,
        .snapshot_every = s->conf->snapshot_every,
    };
    rc = rnode_open(s->loop, s->fs, &rc_cfg, &mserver_rnode_cbs, s, &s->rnode,
                    err, sizeof(err));
    if (rc < 0) {
        log_error("%s", err);
        return rc;
    }
    madmin_started(s);
    if (o->init) {
        rc = rnode_bootstrap(s->rnode, s->master_ids, s->n_masters);
        if (rc < 0)
            log_error("cannot bootstrap the cluster: %s", dfs_strerror(rc));
    }
    return rc;
}

/* Fills the master table from the masters and masters_http keys. */
static int mserver_masters(struct mserver *s)
{
    char err[256];
    int rc = parse_masters(s->conf->masters, s->master_ids, s->master_addrs,
                           MSERVER_MAX_MASTERS, &s->n_masters, err, sizeof(err));
    uint64_t ids[MSERVER_MAX_MASTERS];
    char *http[MSERVER_MAX_MASTERS];
    size_t n = 0;
    if (rc == 0)
        rc = parse_masters(s->conf->masters_http, ids, http, MSERVER_MAX_MASTERS,
                           &n, err, sizeof(err));
    if (rc < 0) {
        log_error("%s", err);
        free_addrs(http, n);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < s->n_masters; k++) {
            if (s->master_ids[k] == ids[i] && !s->master_http[k]) {
                s->master_http[k] = http[i];
                http[i] = NULL;
            }
        }
    }
    free_addrs(http, n);
    return 0;
}

static int mserver_listen(struct mserver *s)
{
    char host[NET_HOST_MAX];
    uint16_t port;
    int rc = net_parse_addr(s->conf->listen, host, sizeof(host), &port);
    if (rc == 0)
        rc = net_listen(s->loop, host, port, 0, mserver_accept, s, &s->listener);
    if (rc < 0)
        log_error("cannot listen on %s: %s", s->conf->listen, dfs_strerror(rc));
    return rc;
}

static int mserver_start(struct mserver *s, const struct mserver_opts *o)
{
    /* A joining master learns the masters from the ones it names. */
    int rc = o->join ? 0 : mserver_masters(s);
    if (rc == 0 && o->join)
        rc = madmin_join(s);
    if (rc == 0)
        rc = check_data_dir(s, o->init || o->join, o->join);
    if (rc == 0)
        rc = madmin_load(s, o->join);
    if (rc == 0)
        rc = mserver_signals(s);
    if (rc == 0)
        rc = mserver_listen(s);
    if (rc == 0)
        rc = mserver_open_raft(s, o);
    if (rc == 0)
        rc = mstatus_init(s);
    return rc;
}

/*
 * From here on frames from connections still open are dropped
 * (mserver_frame), so nothing reaches a module after it is gone; the Raft
 * node goes first, as its callbacks land in the others.
 */
static void mserver_stop(struct mserver *s)
{
    s->stopping = true;
    net_listener_free(s->listener);
    s->listener = NULL;
    rnode_close(s->rnode);
    s->rnode = NULL;
    madmin_shutdown(s);
    mstatus_shutdown(s);
    mverify_shutdown(s);
    mclient_shutdown(s);
    mrepl_shutdown(s);
    mcs_shutdown(s);
    /* Let closing connections finish before the loop goes. */
    for (int i = 0; i < 20; i++)
        ev_run_once(s->loop, 5);
    if (s->signal_fd >= 0) {
        ev_fd_del(s->loop, s->signal_fd);
        close(s->signal_fd);
    }
}

int mserver_run(const struct mserver_conf *c, const struct mserver_opts *o)
{
    struct mserver s = { .conf = c, .signal_fd = -1 };
    snprintf(s.cluster_id, sizeof(s.cluster_id), "%s", c->cluster_id);
    char err[512];
    int rc = auth_key_load(c->key_file, &s.key, err, sizeof(err));
    if (rc < 0) {
        log_error("%s", err);
        return rc;
    }
    s.loop = ev_loop_new();
    s.fs = fsio_from_env();
    s.ns = ns_new();
    if (!s.loop || !s.fs || !s.ns) {
        rc = -ENOMEM;
        goto out;
    }
    rc = mclient_init(&s);
    if (rc == 0)
        rc = mcs_init(&s);
    if (rc == 0)
        rc = mrepl_init(&s);
    if (rc == 0)
        rc = mverify_init(&s);
    if (rc == 0)
        rc = madmin_init(&s);
    if (rc == 0)
        rc = mserver_start(&s, o);
    if (rc == 0) {
        log_info("master %" PRIu64 " of cluster %s serving on %s", c->id,
                 s.cluster_id, c->listen);
        ev_run(s.loop);
        rc = s.exit_code;
    }
    mserver_stop(&s);
out:
    free_addrs(s.master_addrs, s.n_masters);
    free_addrs(s.master_http, s.n_masters);
    ns_free(s.ns);
    fsio_free(s.fs);
    ev_loop_free(s.loop);
    auth_key_release(&s.key);
    return rc;
}
