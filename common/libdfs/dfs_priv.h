/*
 * dfs_priv: what the client library's files share beyond the public
 * header: the session's request path and the chunkserver connection pool.
 * Only the files of common/libdfs include it.
 */
#ifndef DFS_LIBDFS_PRIV_H
#define DFS_LIBDFS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/libdfs/dfs.h"
#include "common/protocol.h"
#include "common/rpc.h"
#include "common/wire.h"

/*
 * One request to the leader with the session's HEAD, retried across
 * failovers (see dfs.c).  On 0, *r holds the answer and its status.
 */
int dfs_call(struct dfs *d, uint16_t type, bool mutating,
             const struct wire_writer *body, struct rpc_reply *r);

/*
 * dfs_call for n requests of one type (n <= DFS_BATCH_MAX), sent back to
 * back on one connection and retried together, each with its own
 * sequence number: the leader takes them in one loop iteration, so that
 * they commit in one Raft round.  On 0, r[i] answers bodies[i].  With
 * in_session (not 0) they go in that session only: -DFS_ESESSION, and
 * nothing sent, once it is not the client's, and no new session is opened
 * when it expires (what rested on it died with it).
 */
#define DFS_BATCH_MAX 8
int dfs_call_in(struct dfs *d, uint64_t in_session, uint16_t type, bool mutating,
                const struct wire_writer *bodies, size_t n, struct rpc_reply *r);
/* The client's session now (0: none open). */
uint64_t dfs_session_id(struct dfs *d);

/*
 * A mutation the master may hold indefinitely (a blocking LOCK), sent on
 * a connection of its own so that the session's other calls go on.  Each
 * try takes a fresh sequence number, so the request must be idempotent
 * (an earlier try may have taken effect with its answer lost), and lasts
 * at most try_ms: then the connection is closed (the master forgets the
 * request) and the request sent again, following NOT_LEADER hints,
 * without an overall deadline.  Ends with 0 and the answer in *r, or
 * -EINTR when stop(arg) (may be NULL) says so before a try, or an error
 * building the request.  d must not be closed meanwhile.
 */
int dfs_call_wait(struct dfs *d, uint16_t type, const struct wire_writer *body,
                  int try_ms, bool (*stop)(void *arg), void *arg,
                  struct rpc_reply *r);

/*
 * dfs_call with the answer's status as the result: sends body (released
 * here, its build error returned if any); on 0 the caller owns *r.
 * dfs_call_void is the same for a mutation whose answer is empty.
 */
int dfs_call_ok(struct dfs *d, uint16_t type, bool mutating,
                struct wire_writer *body, struct rpc_reply *r);
int dfs_call_void(struct dfs *d, uint16_t type, struct wire_writer *body);
/* A call whose answer is an inode's attributes (after skip_u64 u64s), then
 * for a mutation the directories it changed; *out (may be NULL) counts
 * this session's uncommitted writes. */
int dfs_attr_call(struct dfs *d, uint16_t type, bool mutating,
                  struct wire_writer *body, unsigned skip_u64, struct dfs_attr *out);

/*
 * A request to the chunkserver at addr ("host:port") on a pooled
 * connection.  0 with *r filled (its status is the server's answer), or
 * a transport error (the connection is then dropped).
 */
int dfs_cs_call(struct dfs *d, const char *addr, uint16_t type,
                const struct wire_writer *payload, struct rpc_reply *r);

/* As dfs_cs_call for n requests sent back to back (rpc_call_fd_many). */
int dfs_cs_call_many(struct dfs *d, const char *addr, uint16_t type,
                     const struct iovec *payloads, size_t n,
                     struct rpc_reply *replies);

/* A connection to a chunkserver: idle in the pool, or held by one caller. */
struct dfs_csconn {
    struct dfs_csconn *next;
    char addr[PROTO_ADDR_MAX];
    int fd;                 /* negative: the dial's error */
};

/*
 * For callers that run their own exchange on a connection (dfsfile's
 * write stream): an idle pooled connection to addr (*reused true) or a
 * new one, a new one always, and the way back into the pool for a
 * connection whose exchange ended cleanly (close and free any other).
 * NULL only on out of memory.
 */
struct dfs_csconn *dfs_cs_take(struct dfs *d, const char *addr, bool *reused);
struct dfs_csconn *dfs_cs_dial(struct dfs *d, const char *addr);
void dfs_cs_put(struct dfs *d, struct dfs_csconn *c);

/*
 * The RELEASE of closed handles, batched by a thread of the session
 * (dfsrel.c).  dfs_release_later queues one (0), or says the caller must
 * send it now (-ENOMEM, or -ENOTSUP without the thread); the body of a
 * RELEASE is dfs_release_body's.  dfs_releases_free sends what is queued.
 */
struct dfs_releases;
struct dfs_releases *dfs_releases_new(struct dfs *d);   /* NULL: no thread */
void dfs_releases_free(struct dfs_releases *rs);         /* NULL ok */
struct dfs_releases *dfs_releases_of(struct dfs *d);
int dfs_release_later(struct dfs_releases *rs, uint64_t ino, uint32_t flags);
void dfs_release_body(struct wire_writer *b, uint64_t ino, uint32_t flags);

/*
 * Local reads (dfslocal.c, docs/LOCAL_READS.md): a replica on a
 * chunkserver of this host is read from its chunk file, whose descriptor
 * that server hands over, rather than through TCP.
 */
struct dfs_locals;
struct dfs_locals *dfs_locals_new(bool enabled);   /* NULL: out of memory */
void dfs_locals_free(struct dfs_locals *ls);
struct dfs_locals *dfs_locals_of(struct dfs *d);

/* An open replica file; shared by reference (the last unref closes it). */
struct dfs_local_chunk {
    atomic_int refs;
    int fd;
    uint64_t chunk;
    uint32_t version;   /* the replica's at the open, >= the one asked */
    uint64_t length;    /* ... and its length then */
    uint64_t data_off;
    uint32_t tail_crc;
    uint8_t *crcs;      /* the whole blocks' CRCs (little-endian) then */
};

/*
 * Opens the replica of chunk, at min_version or newer, on the chunkserver
 * at addr: 0 and *out (one reference), -ENOTSUP when that server is not
 * on this host or does not do local reads (remembered for a while), or
 * another error (the replica is then read through TCP, which reports).
 */
int dfs_local_open(struct dfs *d, const char *addr, uint64_t chunk,
                   uint32_t min_version, struct dfs_local_chunk **out);
/* The two steps of dfs_local_open once the server is known to be local
 * (tests call them directly): a connection to the abstract socket name
 * owned by process pid of user uid (an fd; -EPERM when another process
 * holds the name, or another negative errno), and one request on it,
 * which answers 0 and *out, the server's error, or a transport error;
 * *conn_ok says whether conn may carry another request. */
int dfs_local_connect(const char *name, uint32_t pid, uint32_t uid);
int dfs_local_request(int conn, const uint8_t token[PROTO_LOCAL_TOKEN],
                      uint64_t chunk, uint32_t min_version,
                      struct dfs_local_chunk **out, bool *conn_ok);
void dfs_local_ref(struct dfs_local_chunk *c);
void dfs_local_unref(struct dfs_local_chunk *c);   /* NULL ok */

/*
 * Reads [off, off + len) of the chunk into buf, verifying every block it
 * touches; bytes past the length at the open are zeros.  0, or
 * -DFS_ECORRUPT when a block fails (perhaps rewritten since: the caller
 * reads through TCP, which judges and reports), or an I/O error.
 */
int dfs_local_read(const struct dfs_local_chunk *c, uint64_t off, uint8_t *buf,
                   size_t len);

/*
 * The files open in a session (dfsfile.c keeps them): every handle of one
 * inode shares one struct dfs_inode — its size, write session, pending
 * writes and read-ahead — so that what one handle writes, another reads
 * and the attributes show.  mu is a leaf lock guarding the buckets.
 */
#define DFS_INODE_BUCKETS 256
struct dfs_inode;
struct dfs_inodes {
    pthread_mutex_t mu;
    struct dfs_inode *bucket[DFS_INODE_BUCKETS];
};
struct dfs_inodes *dfs_inodes_of(struct dfs *d);

/* SETATTR at the master, nothing else (dfs_setattr routes size and mtime
 * changes of open files through dfsfile_setattr first). */
int dfs_setattr_call(struct dfs *d, uint64_t ino, const struct dfs_setattr *set,
                     struct dfs_attr *out);
/* A size or mtime change: when the file is open here, its pending writes
 * land first (and its handles see a new size). */
int dfsfile_setattr(struct dfs *d, uint64_t ino, const struct dfs_setattr *set,
                    struct dfs_attr *out);
/* Counts in a->size what this session wrote to the file and has not yet
 * committed (the master's size is the committed one). */
void dfsfile_attr_local(struct dfs *d, struct dfs_attr *a);

/* Decodes an ATTR (PROTOCOL.md) from r. */
void dfs_get_attr(struct wire_reader *r, struct dfs_attr *a);

/* pthread_cond_timedwait for at most ms from now: its result. */
int dfs_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint32_t ms);

/* How long one operation may take before it fails (dfs_opts). */
int dfs_op_timeout_ms(const struct dfs *d);

/* Records a failure message for dfs_last_error(); any thread, any lock
 * held (it takes a leaf lock). */
void dfs_set_error(struct dfs *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
