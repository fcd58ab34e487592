/*
 * mserver: the dfs-master process — its one state struct and its life.
 *
 * It owns the event loop, the listener every client, chunkserver and
 * master connects to, the Raft node (master/rnode) and the namespace it
 * drives (master/ns).  master/main.c parses the command line and calls
 * mserver_run(); tests may run a server in-process the same way.
 */
#ifndef DFS_MSERVER_H
#define DFS_MSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/auth.h"
#include "common/conf.h"

struct ev_loop;
struct fsio;
struct madmin;
struct mclient;
struct mstatus;
struct mcs;
struct mrepl;
struct mverify;
struct csreg;
struct net_listener;
struct ns;
struct rnode;

/* The master's configuration file keys (common/conf). */
struct mserver_conf {
    uint64_t id;
    char *listen;           /* host:port for clients, chunkservers, masters */
    char *http;             /* host:port of the status page ("" = none) */
    char *data_dir;
    char *masters;          /* "1=host:port,2=host:port,..." every master */
    char *masters_http;     /* same shape, their status pages (optional) */
    char *key_file;
    char *cluster_id;       /* 16 hex digits, fixed at --init */
    uint64_t chunk_size;    /* proposed while the cluster has none */
    bool root_squash;       /* replicated options this master's leadership */
    uint64_t squash_uid;    /* brings the namespace to (docs/MASTER.md) */
    uint64_t squash_gid;
    uint64_t tick_ms;
    int election_ticks;
    int heartbeat_ticks;
    uint64_t snapshot_every;
    char *log_level;
    char *log_file;
};

extern const struct conf_key mserver_conf_keys[];

#define MSERVER_MAX_MASTERS 16

/*
 * The one state struct of a running master.  Everything in it is touched
 * only on the loop thread.
 */
struct mserver {
    const struct mserver_conf *conf;
    char cluster_id[17];
    struct auth_key key;
    struct ev_loop *loop;
    struct fsio *fs;
    struct ns *ns;                  /* the replicated namespace */
    struct rnode *rnode;
    struct net_listener *listener;
    struct mclient *mc;             /* owned by master/mclient */
    struct mstatus *st;             /* owned by master/mstatus */
    struct mcs *mcs;                /* owned by master/mcs */
    struct csreg *csreg;            /* chunkservers and replicas (soft) */
    struct mrepl *repl;             /* owned by master/mrepl */
    struct mverify *verify;         /* owned by master/mverify */
    struct madmin *madmin;          /* owned by master/madmin */
    uint64_t rereplications;        /* copies made since start */
    uint64_t corrupt_replicas;      /* bad replicas reported since start */
    int signal_fd;
    int exit_code;                  /* set by a fatal error */
    bool stopping;                  /* mserver_stop began: drop frames */
    uint64_t leader;                /* 0: unknown */
    uint64_t applied_ops;
    /* Every master, for NOT_LEADER hints and the status page: the
     * configuration's, then the replicated address book (master/madmin). */
    size_t n_masters;
    uint64_t master_ids[MSERVER_MAX_MASTERS];
    char *master_addrs[MSERVER_MAX_MASTERS];
    char *master_http[MSERVER_MAX_MASTERS];   /* NULL when not known */
};

/* What main() asks of the run. */
struct mserver_opts {
    bool init;              /* create a brand-new cluster in data_dir */
    bool join;              /* join a running cluster (masters = some of it) */
};

/*
 * Loads the configuration: defaults, the file (NULL: none), then each
 * "key=value" override.  errbuf names the file, line and key on error.
 */
int mserver_conf_load(struct mserver_conf *c, const char *path,
                      const char *const *overrides, size_t n, char *errbuf,
                      size_t errlen);
void mserver_conf_release(struct mserver_conf *c);

/*
 * Runs a master until SIGTERM or SIGINT (or a fatal storage error).
 * Returns 0 after a clean stop, else a negative error (already logged
 * with what failed).
 */
int mserver_run(const struct mserver_conf *c, const struct mserver_opts *o);

#endif
