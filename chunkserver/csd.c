/*
 * csd: the chunkserver process state and its lifecycle (csd.h).
 *
 * Owns the loop, the data directories (vols), the disk pool, the listener
 * and the key; the request handlers (csio), the master link (csmaster) and
 * the scrubber (csscrub) keep their state inside struct csd.
 *
 * States, moved on the loop thread:
 *   serving   csd_run loops on events until the stop post sets stopping
 *   draining  the listener is gone, every connection is aborted, the master
 *             link and scrubber stopped; the loop runs until no connection,
 *             disk job or copy remains (csd_idle)
 *   stopped   csd_run synced every chunk and returned
 *
 * Invariants:
 *  1. No new connection or request is taken once stopping is set.
 *  2. csd_run returns only when csd_idle: nothing of csio, csmaster or the
 *     disk pool refers to the loop any more, so csd_close may free it.
 */
#include "csd.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkserver/csio.h"
#include "chunkserver/csmaster.h"
#include "chunkserver/cslocal.h"
#include "chunkserver/csscrub.h"
#include "chunkserver/vols.h"
#include "common/dfs_error.h"
#include "common/fsio.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tpool.h"

#define CSD_DRAIN_POLL_MS 20

#define KEY(name, type, field, def, min, max, help) \
    { name, type, offsetof(struct csd_conf, field), def, min, max, help }

const struct conf_key csd_conf_keys[] = {
    KEY("listen", CONF_STRING, listen, "0.0.0.0:9420", NULL, NULL,
        "host:port to serve clients and peers on (port 0: any free port)"),
    KEY("advertise", CONF_STRING, advertise, NULL, NULL, NULL,
        "host:port given to the master and peers; unset: listen"),
    KEY("data_dir", CONF_STRING, data_dir, "/var/lib/dfs/chunks", NULL, NULL,
        "the data directory, or several: dir,dir,... (-d DIR adds one)"),
    KEY("data_dirs", CONF_STRING, data_dir, "/var/lib/dfs/chunks", NULL, NULL,
        "the same setting as data_dir under another name"),
    KEY("masters", CONF_STRING, masters, NULL, NULL, NULL,
        "host:port,... of the masters; unset: run without a master"),
    KEY("key_file", CONF_STRING, key_file, "/etc/dfs/cluster.key", NULL, NULL,
        "the cluster key file (dfs-cluster writes one)"),
    KEY("rack", CONF_STRING, rack, "default", NULL, NULL,
        "rack label; replicas of a chunk go to distinct racks"),
    KEY("reserved_space", CONF_SIZE, reserved_space, "1G", NULL, NULL,
        "free disk space never used for chunks"),
    KEY("chunk_size", CONF_SIZE, legacy_chunk_size, "0", NULL, NULL,
        "ignored: new chunks take the cluster's chunk size, which the masters give"),
    KEY("log_level", CONF_STRING, log_level, "info", NULL, NULL,
        "debug, info, warn or error"),
    KEY("log_file", CONF_STRING, log_file, NULL, NULL, NULL,
        "append the log here; unset: stderr"),
    KEY("disk_threads", CONF_INT, disk_threads, "4", "1", "64",
        "threads doing disk I/O"),
    KEY("write_timeout", CONF_DURATION, write_timeout_ms, "30s", "10ms", "1h",
        "how long a forwarded write waits for the next server"),
    KEY("conn_buffer", CONF_SIZE, conn_buffer, "16M", "64K", "1G",
        "request bytes in flight per connection before reading pauses"),
    KEY("replicate_rate", CONF_SIZE, replicate_rate, "64M", "64K", NULL,
        "bytes per second one re-replication copies"),
    KEY("scrub_rate", CONF_SIZE, scrub_rate, "4M", NULL, NULL,
        "bytes per second the scrubber re-reads (0: no scrubbing)"),
    KEY("scrub_pause", CONF_DURATION, scrub_pause_ms, "10m", "0", "168h",
        "rest between two scrub passes over every chunk"),
    KEY("local_reads", CONF_BOOL, local_reads, "true", NULL, NULL,
        "hand clients on this host chunk files to read themselves"),
    { NULL, 0, 0, NULL, NULL, NULL, NULL },
};

static void csd_on_accept(struct net_listener *l, struct net_conn *nc,
                          void *arg)
{
    (void)l;
    csio_accept(arg, nc);
}

static void csd_on_stop(void *arg)
{
    struct csd *d = arg;
    atomic_store(&d->stopping, true);
}

uint32_t csd_server_id(const struct csd *d)
{
    return vols_server_id(d->vols);
}

static int csd_listen(struct csd *d, char *errbuf, size_t errlen)
{
    char host[NET_HOST_MAX];
    uint16_t port;
    int rc = net_parse_addr(d->conf->listen, host, sizeof(host), &port);
    if (rc == 0)
        rc = net_listen(d->loop, host, port, 0, csd_on_accept, d,
                        &d->listener);
    if (rc < 0) {
        snprintf(errbuf, errlen, "listen %s: %s", d->conf->listen,
                 dfs_strerror(rc));
        return rc;
    }
    d->port = net_listener_port(d->listener);
    const char *adv = d->conf->advertise;
    int n;
    if (adv)
        n = snprintf(d->self_addr, sizeof(d->self_addr), "%s", adv);
    else if (strchr(host, ':'))
        n = snprintf(d->self_addr, sizeof(d->self_addr), "[%s]:%u", host,
                     d->port);
    else
        n = snprintf(d->self_addr, sizeof(d->self_addr), "%s:%u", host,
                     d->port);
    if (n < 0 || (size_t)n >= sizeof(d->self_addr)) {
        snprintf(errbuf, errlen, "advertise: address too long");
        return -DFS_ECONF;
    }
    return 0;
}

/* Any thread: a data directory failed.  With none left the server can
 * store nothing, so it stops (csd_run then returns -EIO). */
static void csd_on_dir_failed(void *arg, const char *dir, size_t left)
{
    struct csd *d = arg;
    if (left > 0)
        return;
    log_error("chunkserver: %s was the last data directory; nothing left "
              "to store chunks in, stopping", dir);
    csd_stop(d);
}

/* Splits the comma-separated data_dir setting into dirs[] (pointers into
 * buf, which holds a copy); returns the count or -DFS_ECONF. */
static int csd_split_dirs(char *buf, struct vols_dir *dirs, struct fsio *fs,
                          char *errbuf, size_t errlen)
{
    int n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p;
         p = strtok_r(NULL, ",", &save)) {
        p += strspn(p, " \t");
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        if (len == 0)
            continue;
        if (n == VOLS_MAX_DIRS) {
            snprintf(errbuf, errlen, "data_dir: more than %d directories",
                     VOLS_MAX_DIRS);
            return -DFS_ECONF;
        }
        dirs[n++] = (struct vols_dir){ p, fs };
    }
    if (n == 0) {
        snprintf(errbuf, errlen, "data_dir: no directory given");
        return -DFS_ECONF;
    }
    return n;
}

static int csd_open_store(struct csd *d, char *errbuf, size_t errlen)
{
    const struct csd_conf *conf = d->conf;
    d->fs = fsio_from_env();
    if (!d->fs)
        return -ENOMEM;
    struct vols_params params = {
        /* With masters, new chunks wait for the cluster's chunk size,
         * which registration gives. */
        .store = { .chunk_size = conf->masters ? 0 : PROTO_CHUNK_SIZE,
                   .reserved_bytes = conf->reserved_space },
        .on_fail = csd_on_dir_failed,
        .fail_arg = d,
    };
    char *buf = strdup(conf->data_dir ? conf->data_dir : "");
    struct vols_dir dirs[VOLS_MAX_DIRS];
    int rc = buf ? csd_split_dirs(buf, dirs, d->fs, errbuf, errlen) : -ENOMEM;
    if (rc > 0)
        rc = vols_open(dirs, (size_t)rc, &params, &d->vols, errbuf, errlen);
    free(buf);
    return rc;
}

int csd_open(const struct csd_conf *conf, struct csd **out, char *errbuf,
             size_t errlen)
{
    char scratch[1];
    if (!errbuf) {
        errbuf = scratch;
        errlen = sizeof(scratch);
    }
    errbuf[0] = '\0';
    struct csd *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->conf = conf;
    if (conf->legacy_chunk_size)
        log_warn("chunk_size in the configuration is ignored: new chunks take the "
                 "cluster's chunk size, which the masters give");
    int rc = auth_key_load(conf->key_file, &d->key, errbuf, errlen);
    if (rc < 0)
        goto err_free_csd;
    rc = csd_open_store(d, errbuf, errlen);
    if (rc < 0)
        goto err_free_csd;
    rc = -ENOMEM;
    d->loop = ev_loop_new();
    if (!d->loop)
        goto err_free_csd;
    d->disk = tpool_new(d->loop, conf->disk_threads, "csd-disk");
    if (!d->disk)
        goto err_free_csd;
    rc = csd_listen(d, errbuf, errlen);
    if (rc < 0)
        goto err_free_csd;
    rc = csmaster_new(d, &d->master, errbuf, errlen);
    if (rc < 0)
        goto err_free_csd;
    rc = csscrub_new(d, &d->scrub);
    if (rc < 0)
        goto err_free_csd;
    /* Without it clients read through TCP: not a reason to refuse to run. */
    if (conf->local_reads)
        cslocal_start(d->vols, &d->local);
    ev_post_init(&d->stop_post, csd_on_stop, d);
    *out = d;
    return 0;

err_free_csd:
    if (!errbuf[0])
        snprintf(errbuf, errlen, "%s", dfs_strerror(rc));
    csd_close(d);
    return rc;
}

static bool csd_idle(struct csd *d)
{
    return csio_idle(d) && csmaster_idle(d->master) && d->ncopies == 0 &&
           tpool_pending(d->disk) == 0;
}

static int csd_sync_one(const struct store_info *info, void *arg)
{
    struct vols *v = arg;
    if (!info->corrupt)
        vols_sync(v, info->id);
    return 0;
}

static void csd_drain(struct csd *d)
{
    net_listener_free(d->listener);
    d->listener = NULL;
    csio_close_all(d);
    csmaster_stop(d->master);
    csscrub_stop(d->scrub);
    while (!csd_idle(d))
        ev_run_once(d->loop, CSD_DRAIN_POLL_MS);
    vols_list(d->vols, csd_sync_one, d->vols);
}

int csd_run(struct csd *d)
{
    int rc = 0;
    atomic_store(&d->running, true);
    log_info("chunkserver: serving %s (data %s)", d->self_addr,
             d->conf->data_dir);
    csmaster_start(d->master);
    csscrub_start(d->scrub);
    while (!atomic_load(&d->stopping)) {
        rc = ev_run_once(d->loop, -1);
        if (rc < 0 && rc != -EINTR)
            break;
        rc = 0;
    }
    atomic_store(&d->stopping, true);
    csd_drain(d);
    if (vols_healthy(d->vols) == 0) {
        log_error("chunkserver: every data directory failed (%s)",
                  d->conf->data_dir);
        rc = -EIO;
    }
    atomic_store(&d->running, false);
    log_info("chunkserver: %s stopped", d->self_addr);
    return rc;
}

void csd_stop(struct csd *d)
{
    ev_post_queue(d->loop, &d->stop_post);
}

void csd_close(struct csd *d)
{
    if (!d)
        return;
    net_listener_free(d->listener);
    csscrub_free(d->scrub);
    /* A probe stuck on a dead disk may still return into the directories
     * and, through their fail callback, into d: left to the exit. */
    if (!csmaster_free(d->master))
        return;
    tpool_free(d->disk);
    ev_loop_free(d->loop);
    cslocal_stop(d->local);
    vols_close(d->vols);
    fsio_free(d->fs);
    auth_key_release(&d->key);
    free(d);
}
