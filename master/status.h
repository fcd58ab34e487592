/*
 * status: what the master shows operators (the status page, /api/status
 * and /metrics), as one plain snapshot struct and three pure renderers.
 *
 * The master's event loop fills a struct status_snap from its live state
 * (Raft, namespace, chunk table, chunkserver registry, counters) and hands
 * it to httpd_publish(); the renderers read nothing else (not even the
 * clock: every time is in the snapshot), so the same snapshot always
 * renders the same bytes.
 *
 * Ownership: a snapshot owns its two arrays (masters, chunkservers); every
 * string is a fixed-size, NUL-terminated array inside the struct, so a
 * snapshot is one self-contained value.  status_snap_new/free are the only
 * way to make and free one.  Strings are untrusted (they come from config
 * files and chunkserver registrations): renderers escape them.
 *
 * The two rings (activity history, recent events) and the op counters are
 * plain values: the master keeps them as live state and copies them into
 * each snapshot.
 */
#ifndef DFS_STATUS_H
#define DFS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;

#define STATUS_NAME_MAX     64   /* cluster name, rack label, op name */
#define STATUS_ADDR_MAX     128  /* host:port, or an http:// URL */
#define STATUS_EVENT_MAX    160  /* one event's text */
#define STATUS_OPS_MAX      32   /* distinct client operation names */
#define STATUS_EVENTS_MAX   32   /* recent events kept */
#define STATUS_HISTORY_MAX  60   /* activity samples kept */
#define STATUS_SAMPLE_SECONDS 10 /* one activity sample covers this long */

enum status_role {
    STATUS_ROLE_FOLLOWER,
    STATUS_ROLE_CANDIDATE,
    STATUS_ROLE_LEADER,
    STATUS_ROLE_LEARNER,        /* catching up, not yet voting */
    STATUS_ROLE_UNKNOWN,        /* a peer this master has not heard from */
};

enum status_cs_state {
    STATUS_CS_UP,
    STATUS_CS_DOWN,
    STATUS_CS_DECOMMISSIONING,
    STATUS_CS_DECOMMISSIONED,   /* drained: every chunk at its goal elsewhere */
};

enum status_event_kind {
    STATUS_EV_LEADER,           /* a new leader was elected */
    STATUS_EV_CS_JOIN,          /* a chunkserver registered */
    STATUS_EV_CS_LEAVE,         /* a chunkserver stopped heartbeating */
    STATUS_EV_REREPLICATE,      /* a chunk copy was made to restore its goal */
    STATUS_EV_CORRUPT,          /* a replica failed its checksum */
    STATUS_EV_MEMBERSHIP,       /* a master was added or removed */
    STATUS_EV_OTHER,
};

/* One master of the Raft group, as this master sees it. */
struct status_master {
    uint64_t id;
    char address[STATUS_ADDR_MAX];   /* Raft/client address, host:port */
    char http[STATUS_ADDR_MAX];      /* its status page, http://host:port/ */
    enum status_role role;
    bool self;                       /* this entry is the master rendering */
    int64_t contact_age_ms;          /* since last heard from; -1 unknown */
    uint64_t match_index;            /* leader's view; 0 when unknown */
    uint64_t snapshot_index;         /* 0 when unknown */
};

struct status_chunkserver {
    uint32_t id;                     /* numbered from 1 */
    char address[STATUS_ADDR_MAX];
    char rack[STATUS_NAME_MAX];
    enum status_cs_state state;
    uint64_t bytes_total;
    uint64_t bytes_used;
    uint64_t chunks;
    uint32_t load;                   /* requests in flight at last heartbeat */
    int64_t heartbeat_age_ms;        /* -1: never heard from */
    uint64_t errors_total;           /* I/O and checksum errors reported */
};

/* Chunk health; a chunk is in exactly one of the first four. */
struct status_chunks {
    uint64_t total;
    uint64_t healthy;
    uint64_t under_replicated;       /* fewer good replicas than its goal */
    uint64_t missing;                /* no good replica at all */
    uint64_t corrupt;                /* some replica failed its checksum */
    uint64_t rereplicating;          /* of those, copies now in flight */
};

/* Activity over one STATUS_SAMPLE_SECONDS interval. */
struct status_sample {
    int64_t time_ms;                 /* wall clock at the interval's end */
    uint64_t ops;
    uint64_t read_bytes;
    uint64_t write_bytes;
};

/* The last STATUS_HISTORY_MAX samples; oldest first when read in order. */
struct status_history {
    struct status_sample s[STATUS_HISTORY_MAX];
    size_t next;                     /* slot the next sample goes to */
    size_t count;                    /* valid samples, <= STATUS_HISTORY_MAX */
};

struct status_event {
    int64_t time_ms;                 /* wall clock */
    enum status_event_kind kind;
    char text[STATUS_EVENT_MAX];
};

/* The last STATUS_EVENTS_MAX events. */
struct status_events {
    struct status_event e[STATUS_EVENTS_MAX];
    size_t next;
    size_t count;
};

/* A cumulative count of one client operation (e.g. "lookup", "write"). */
struct status_op {
    char name[STATUS_NAME_MAX];
    uint64_t count;
};

/* Client operation counters since start, in order of first use. */
struct status_ops {
    struct status_op op[STATUS_OPS_MAX];
    size_t count;
};

struct status_snap {
    char cluster[STATUS_NAME_MAX];
    char version[STATUS_NAME_MAX];
    uint64_t chunk_size;             /* the cluster's bytes per chunk */
    int64_t now_ms;                  /* wall clock when taken */
    int64_t start_ms;                /* wall clock when this master started */

    /* Raft, as this master sees it */
    uint64_t self_id;
    enum status_role role;
    uint64_t leader_id;              /* 0: no known leader */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t snapshot_index;
    uint64_t state_digest;           /* namespace digest at digest_index:
                                      * masters at the same index must show
                                      * the same */
    uint64_t digest_index;           /* applied index the digest is of */
    uint64_t leader_changes_total;   /* leaders seen since start */
    bool safe_mode;                  /* waiting for chunk reports */

    /* namespace and data */
    uint64_t files;
    uint64_t directories;
    uint64_t bytes_logical;          /* sum of file sizes */
    uint64_t bytes_physical;         /* sum over replicas */
    struct status_chunks chunks;

    /* counters since start */
    struct status_ops ops;
    uint64_t read_bytes_total;
    uint64_t write_bytes_total;
    uint64_t rereplications_total;
    uint64_t corrupt_replicas_total;

    struct status_history history;
    struct status_events events;

    struct status_master *masters;           /* owned, nmasters entries */
    size_t nmasters;
    struct status_chunkserver *chunkservers; /* owned, ncs entries */
    size_t ncs;
};

/*
 * A zeroed snapshot with room for nmasters masters and ncs chunkservers
 * (zeroed too).  Returns NULL when out of memory.  Free with
 * status_snap_free.
 */
struct status_snap *status_snap_new(size_t nmasters, size_t ncs);

/* NULL is a no-op. */
void status_snap_free(struct status_snap *snap);

/* Appends a sample, dropping the oldest past STATUS_HISTORY_MAX. */
void status_history_add(struct status_history *h,
                        const struct status_sample *sample);

/* The i-th sample, 0 the oldest; i < h->count. */
const struct status_sample *status_history_at(const struct status_history *h,
                                              size_t i);

/* Appends an event (text truncated to fit), dropping the oldest. */
void status_events_add(struct status_events *ev, int64_t time_ms,
                       enum status_event_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The i-th event, 0 the oldest; i < ev->count. */
const struct status_event *status_events_at(const struct status_events *ev,
                                            size_t i);

/*
 * Adds n to the counter of op `name` (truncated to STATUS_NAME_MAX - 1),
 * creating it; returns 0, or -ENOSPC when STATUS_OPS_MAX names are in use.
 */
int status_ops_add(struct status_ops *ops, const char *name, uint64_t n);

/* Names for the enums, as used in JSON and metrics ("leader", "up"...). */
const char *status_role_name(enum status_role role);
const char *status_cs_state_name(enum status_cs_state state);
const char *status_event_kind_name(enum status_event_kind kind);

/*
 * The renderers append to out and return 0, or out's sticky error
 * (-ENOMEM, -DFS_ETOOBIG) in which case out holds a useless prefix.
 * snap is only read.
 *
 * html: the whole status page (self-contained, refreshes itself every
 *       refresh_seconds; 0 disables that).
 * json: the /api/status object (docs/STATUS.md lists every field).
 * metrics: the Prometheus text exposition format, version 0.0.4.
 */
int status_render_html(const struct status_snap *snap, int refresh_seconds,
                       struct strbuf *out);
int status_render_json(const struct status_snap *snap, struct strbuf *out);
int status_render_metrics(const struct status_snap *snap, struct strbuf *out);

#endif
