/*
 * csreg: the leader's view of the chunkservers and of where chunk replicas
 * are — soft state rebuilt from registrations, heartbeats and chunk
 * reports (GFS), never written to the Raft log.
 *
 * Owned by the master's server; called on the loop thread only.  It
 * touches no socket: the caller passes the connection a chunkserver
 * registered on as an opaque pointer, to send it orders later.
 */
#ifndef DFS_CSREG_H
#define DFS_CSREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSREG_MAX_REPLICAS 8
#define CSREG_ADDR_MAX 256
#define CSREG_RACK_MAX 64

/* Liveness only; decommissioning is the separate, replicated mark below. */
enum csreg_state { CSREG_UP, CSREG_DOWN };

struct csreg_server {
    uint32_t id;
    char addr[CSREG_ADDR_MAX];
    char rack[CSREG_RACK_MAX];
    enum csreg_state state;
    uint64_t bytes_total, bytes_used;
    uint32_t chunks, load;
    int64_t last_heartbeat_ms;
    void *conn;                 /* the caller's, NULL when disconnected */
    uint64_t errors;            /* I/O counters, as last reported */
    uint64_t read_bytes, write_bytes;
    bool decommission;          /* replicated mark: drain, place nothing here */
    /* Chunks still needing it; -1 unknown: not counted yet, or the server
     * is down or has not finished its full report (its replicas are not
     * all known: "0" could be a server nobody has heard from). */
    int64_t drain_left;
    bool reported;              /* its full chunk report is in, since it
                                   registered with this leader */
};

/* A replica of a chunk as reported or expected. */
struct csreg_replica {
    uint32_t cs;
    uint32_t version;
    uint32_t length;
    bool corrupt;
};

struct csreg;

struct csreg *csreg_new(uint64_t heartbeat_timeout_ms, uint64_t seed);
void csreg_free(struct csreg *r);

/*
 * A chunkserver registers (id 0: a new one, given the next free id).
 * Returns the id, or a negative error: -EEXIST when another live
 * connection holds that id.  Its replica list starts empty (reports fill
 * it).  addr and rack are copied.
 */
int64_t csreg_register(struct csreg *r, uint32_t id, const char *addr,
                       const char *rack, uint64_t total, uint64_t used,
                       void *conn, int64_t now_ms);
struct csreg_beat {
    uint64_t total, used;
    uint32_t chunks, load;
    uint64_t read_bytes, write_bytes, errors;
};
int csreg_heartbeat(struct csreg *r, uint32_t id, const struct csreg_beat *b,
                    int64_t now_ms);
/* The connection went away: the server is down until it registers again. */
void csreg_disconnected(struct csreg *r, void *conn);
/* Marks servers silent past the timeout down; returns how many changed. */
size_t csreg_expire(struct csreg *r, int64_t now_ms);

/*
 * Server id is decommissioned (the replicated mark, master/mmember): it
 * takes no new chunk or copy, and its replicas still serve reads.  Kept
 * for an id that has not registered yet.  csreg_clear_decommission forgets
 * every mark (a snapshot replaced the replicated set).  -ENOMEM.
 */
int csreg_decommission(struct csreg *r, uint32_t id);
void csreg_clear_decommission(struct csreg *r);
/* How many chunks still need a decommissioned server's replica, set by
 * the replication manager's scan.  Kept at -1 (unknown) while the server
 * is down or its full report is not in: only an up server that reported
 * can be known drained. */
void csreg_set_drain_left(struct csreg *r, uint32_t id, int64_t left);

/* The last part of id's full chunk report arrived (registering starts a
 * new one). */
void csreg_report_done(struct csreg *r, uint32_t id);
/* Leadership begins: every server's replicas must be reported again. */
void csreg_forget_reports(struct csreg *r);

/* The replica cs holds of chunk: recorded, replacing an older entry. */
int csreg_set_replica(struct csreg *r, uint64_t chunk, uint32_t cs,
                      uint32_t version, uint32_t length, bool corrupt);
void csreg_drop_replica(struct csreg *r, uint64_t chunk, uint32_t cs);
/* Forgets every replica of cs (a full report follows). */
void csreg_forget_server_replicas(struct csreg *r, uint32_t cs);

/*
 * Up to max healthy replicas of chunk at a version in [lo, hi] on servers
 * that are up, least loaded first.  Returns how many.
 */
size_t csreg_locations(const struct csreg *r, uint64_t chunk, uint32_t lo,
                       uint32_t hi, uint32_t *out, size_t max);

/*
 * Chooses n distinct up servers that are not decommissioned, none in exclude,
 * spreading over racks first and weighting by free space.  Returns how
 * many it found (fewer when not enough servers are up).
 */
size_t csreg_place(struct csreg *r, size_t n, const uint32_t *exclude,
                   size_t nexclude, uint32_t *out);

/*
 * Up to max healthy replicas of chunk at a version in [lo, hi], whether
 * their servers are up or not (what a down server held is still recorded
 * until it registers again).  Returns how many.
 */
size_t csreg_recorded(const struct csreg *r, uint64_t chunk, uint32_t lo,
                      uint32_t hi, uint32_t *out, size_t max);

/* Every replica recorded for chunk, whatever its state; returns how many. */
size_t csreg_replicas(const struct csreg *r, uint64_t chunk,
                      struct csreg_replica *out, size_t max);

/* Walks the chunks with recorded replicas: *cursor starts at 0; returns
 * false at the end, else the next chunk id in *chunk. */
bool csreg_next_chunk(const struct csreg *r, size_t *cursor, uint64_t *chunk);

const struct csreg_server *csreg_server(const struct csreg *r, uint32_t id);
/* The i-th known server (i < csreg_count), in id order. */
const struct csreg_server *csreg_at(const struct csreg *r, size_t i);
size_t csreg_count(const struct csreg *r);
/* Servers up and not decommissioned: those placement may choose. */
size_t csreg_up_count(const struct csreg *r);
/* Some of those has room for a chunk (placement skips full ones). */
bool csreg_has_space(const struct csreg *r);

#endif
