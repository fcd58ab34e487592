/*
 * csd: the dfs-chunkserver process state (DESIGN §3.5) and its lifecycle.
 *
 * struct csd is the one state struct of the process: the config, the event
 * loop, the data directories (vols), the disk thread pool, the listener,
 * the client and peer connections (csio), the master link (csmaster),
 * the scrubber (csscrub) and the local-read socket (cslocal).  Every field is touched on the loop thread only,
 * except where a field says otherwise; vols is thread-safe and is also used
 * from the disk threads.
 *
 * Life:  csd_open (any thread) -> csd_run (one thread, until csd_stop)
 *        -> csd_close (the thread that ran it, after csd_run returned).
 * Several csds may live in one process (tests), each on its own thread.
 */
#ifndef DFS_CSD_H
#define DFS_CSD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/conf.h"
#include "common/ev.h"
#include "common/protocol.h"

struct csio_client;
struct csio_peer;
struct csmaster;
struct cslocal;
struct csscrub;
struct fsio;
struct net_listener;
struct tpool;
struct vols;

/* The settings, filled by conf from csd_conf_keys. */
struct csd_conf {
    char *listen;               /* "host:port" to listen on */
    char *advertise;            /* "host:port" peers and master use; NULL:
                                   listen (with the port actually bound) */
    char *data_dir;             /* "dir" or "dir,dir,..." (also set by the
                                   synonym key data_dirs and by -d) */
    char *masters;              /* "host:port,host:port"; NULL: no master */
    char *key_file;
    char *rack;
    uint64_t reserved_space;    /* bytes of the disk left free */
    uint64_t legacy_chunk_size; /* a key older configs set; ignored */
    char *log_level;
    char *log_file;             /* NULL: stderr */
    int disk_threads;
    uint64_t write_timeout_ms;  /* a forwarded write's downstream answer */
    uint64_t conn_buffer;       /* request bytes in flight per connection
                                   before its reading pauses */
    uint64_t replicate_rate;    /* bytes/s pulled per re-replication */
    uint64_t scrub_rate;        /* bytes/s the scrubber re-reads; 0: off */
    uint64_t scrub_pause_ms;    /* between two passes over every chunk */
    bool local_reads;           /* serve cslocal */
};

/* The key table (NULL-terminated) for conf_load / conf_print_help. */
extern const struct conf_key csd_conf_keys[];

/* Counters for heartbeats and tests; atomic so tests may read them from
 * another thread. */
struct csd_stats {
    atomic_uint_fast64_t bytes_written;   /* data bytes stored by CS_WRITE */
    atomic_uint_fast64_t bytes_read;      /* data bytes served (READ, COPY) */
    atomic_uint_fast64_t errors;          /* requests answered with an error */
    atomic_uint_fast64_t scrubbed;        /* chunks the scrubber verified */
    atomic_uint_fast64_t scrub_bad;       /* ... and found corrupt */
    atomic_uint_fast64_t replicated;      /* REPLICATE orders completed */
    atomic_uint_fast64_t registered;      /* successful CS_REGISTERs */
    atomic_uint_fast64_t heartbeats;      /* CS_HEARTBEATs answered 0 */
};

struct csd {
    const struct csd_conf *conf;          /* borrowed, outlives the csd */
    struct ev_loop *loop;                 /* owned */
    struct fsio *fs;                      /* owned */
    struct vols *vols;                    /* owned; thread-safe */
    struct tpool *disk;                   /* owned; jobs keyed by chunk id */
    struct auth_key key;                  /* the cluster key */
    struct net_listener *listener;        /* owned; NULL once stopping */
    uint16_t port;                        /* the bound port */
    char self_addr[PROTO_ADDR_MAX + 1];   /* advertised "host:port" */

    struct csio_client *clients;          /* open connections (csio) */
    unsigned nclients;                    /* client structs not yet freed */
    struct csio_peer *peers;              /* downstream connections (csio) */
    unsigned ncopies;                     /* re-replications running */
    struct csmaster *master;              /* NULL without masters */
    struct csscrub *scrub;                /* NULL with scrub_rate 0 */
    struct cslocal *local;                /* NULL with local reads off */

    struct ev_post stop_post;             /* csd_stop's, never fails */
    atomic_bool stopping;
    atomic_bool running;                  /* csd_run is serving */
    struct csd_stats stats;
};

/*
 * Opens the key file and the data directories (a directory of another
 * cluster or server is -DFS_ECLUSTER), creates the loop and disk threads
 * and starts listening.  conf is borrowed until csd_close.  On failure
 * returns the error with a one-line message naming what failed in errbuf.
 */
int csd_open(const struct csd_conf *conf, struct csd **out, char *errbuf,
             size_t errlen);

/* Serves until csd_stop, then closes every connection, lets running disk
 * jobs finish and syncs every chunk.  0, a negative errno from the loop, or
 * -EIO when every data directory failed (the server then stops itself). */
int csd_run(struct csd *d);

/* Any thread: makes csd_run return.  Idempotent. */
void csd_stop(struct csd *d);

/* Frees everything; csd_run must have returned (or never run).  NULL ok. */
void csd_close(struct csd *d);

/* This server's id from the data directories (0 before registration). */
uint32_t csd_server_id(const struct csd *d);

#endif
