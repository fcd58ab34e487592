/*
 * ns_op: the namespace's log entries (struct ns_op), what applying one
 * returns (struct ns_result), and their byte encoding (the Raft entry
 * payload).
 *
 * Every input that must be identical on all masters rides in the op: the
 * leader's clock (now, expiry), leader-chosen ids (new inode numbers, new
 * chunk ids, session ids), the caller's credentials and the client's
 * (client id, sequence) for exactly-once.  Strings are (pointer, length)
 * pairs, never NUL-terminated: an op built by the master borrows its
 * request's buffers, and a decoded op borrows the entry bytes, so an op
 * owns no memory and has no release function.
 */
#ifndef DFS_NS_OP_H
#define DFS_NS_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/protocol.h"

struct wire_reader;
struct wire_writer;

#define NS_ROOT_INO 1u
#define NS_NAME_MAX 255u            /* bytes in one name */
#define NS_SYMLINK_MAX 4095u        /* bytes in a symlink target */
#define NS_XATTR_NAME_MAX 255u
#define NS_XATTR_SIZE_MAX 65536u    /* bytes in one xattr value */
#define NS_XATTR_TOTAL_MAX 262144u  /* names + values of one inode */
#define NS_GROUPS_MAX 32u           /* supplementary groups carried */
/* Bytes per chunk: a cluster setting (ns_chunk_size), fixed by the first
 * NS_OP_CONFIG that names one while no chunk exists; a namespace without
 * one uses the default. */
#define NS_CHUNK_SIZE_DEFAULT (UINT64_C(64) << 20)
#define NS_CHUNK_SIZE_MIN (UINT64_C(64) << 10)     /* one CRC block */
#define NS_CHUNK_SIZE_MAX (UINT64_C(2) << 30)      /* chunk lengths are u32 */
#define NS_CHUNKS_MAX PROTO_CHUNKS_MAX      /* chunks per file: 1 PiB at 64 MiB */
#define NS_GOAL_DEFAULT 3u
#define NS_GOAL_MAX 16u
#define NS_DEDUP_WINDOW 32u         /* saved replies per session */

/* Borrowed bytes: p[0..len), not NUL-terminated. */
struct ns_str {
    const char *p;
    uint32_t len;
};

/* The caller, as the kernel gave it to the mount (root squash is applied
 * by the namespace, from its replicated configuration). */
struct ns_cred {
    uint32_t uid, gid;
    uint32_t ngroups;
    uint32_t groups[NS_GROUPS_MAX];
};

enum ns_op_type {
    NS_OP_MKDIR = 1,
    NS_OP_CREATE,           /* regular file, optionally opened */
    NS_OP_MKNOD,            /* fifo, socket, device or regular file */
    NS_OP_SYMLINK,
    NS_OP_LINK,
    NS_OP_UNLINK,
    NS_OP_RMDIR,
    NS_OP_RENAME,
    NS_OP_SETATTR,
    NS_OP_SETXATTR,
    NS_OP_REMOVEXATTR,
    NS_OP_OPEN,
    NS_OP_RELEASE,
    NS_OP_WRITE_BEGIN,
    NS_OP_WRITE_END,
    NS_OP_SESSION_OPEN,
    NS_OP_SESSION_KEEPALIVE,
    NS_OP_SESSION_CLOSE,
    NS_OP_SESSION_EXPIRE,   /* proposed by the leader, client 0 */
    NS_OP_LOCK,             /* flock or POSIX record lock, never blocks */
    NS_OP_CONFIG,           /* replicated options, client 0 */
    NS_OP_TYPE_END
};

/* ns_op_make.flags, ns_op_open.flags */
enum {
    NS_OPEN_READ = 1,       /* open (or create and open) for reading */
    NS_OPEN_WRITE = 2,      /* ... for writing */
    NS_OPEN_TRUNC = 4,      /* O_TRUNC */
    NS_CREATE_EXCL = 8,     /* O_EXCL: an existing name is -EEXIST */
    NS_RELEASE_FLOCK = 16,  /* RELEASE also drops the owner's flock */
    NS_RELEASE_POSIX = 32,  /* RELEASE also drops the owner's record locks */
};

/* ns_op_rename.flags: the Linux renameat2 values */
enum { NS_RENAME_NOREPLACE = 1, NS_RENAME_EXCHANGE = 2 };

/* ns_op_setattr.valid */
enum {
    NS_SET_MODE = 1,
    NS_SET_UID = 2,
    NS_SET_GID = 4,
    NS_SET_SIZE = 8,
    NS_SET_ATIME = 16,
    NS_SET_MTIME = 32,
    NS_SET_ATIME_NOW = 64,  /* atime = op.now */
    NS_SET_MTIME_NOW = 128, /* mtime = op.now */
    NS_SET_GOAL = 256,
    NS_SET_OPEN_FH = 512,   /* truncate through a handle the session holds
                               open for writing: no permission check */
};

/* ns_op_xattr.flags: the Linux setxattr values */
enum { NS_XATTR_CREATE = 1, NS_XATTR_REPLACE = 2 };

/* ns_op_write.flags */
enum { NS_WRITE_KEEP_LEASE = 1 };   /* WRITE_END that keeps writing (fsync) */

/* ns_op_lock.kind, .type */
enum { NS_LOCK_FLOCK = 1, NS_LOCK_POSIX = 2 };
enum { NS_LOCK_UN = 0, NS_LOCK_RD = 1, NS_LOCK_WR = 2 };

/* ns_op_config.flags */
enum { NS_CONFIG_ROOT_SQUASH = 1 };

/* MKDIR, CREATE, MKNOD, SYMLINK */
struct ns_op_make {
    uint64_t parent;
    struct ns_str name;
    uint64_t ino;           /* leader-chosen, free (ns_next_free_ino) */
    uint32_t mode;          /* permissions (umask applied); MKNOD: | S_IFMT */
    uint32_t rdev;          /* MKNOD of a device */
    uint32_t flags;         /* CREATE: NS_OPEN_*, NS_CREATE_EXCL */
    struct ns_str target;   /* SYMLINK */
};

struct ns_op_link {
    uint64_t ino;
    uint64_t newparent;
    struct ns_str newname;
};

/* UNLINK, RMDIR */
struct ns_op_remove {
    uint64_t parent;
    struct ns_str name;
};

struct ns_op_rename {
    uint64_t parent, newparent;
    struct ns_str name, newname;
    uint32_t flags;
};

struct ns_op_setattr {
    uint64_t ino;
    uint32_t valid;         /* NS_SET_* */
    uint32_t mode, uid, gid;
    uint64_t size;
    int64_t atime, mtime;   /* ns; ignored with the _NOW bits */
    uint32_t goal;
};

/* SETXATTR, REMOVEXATTR */
struct ns_op_xattr {
    uint64_t ino;
    struct ns_str name, value;
    uint32_t flags;         /* NS_XATTR_* */
};

/* OPEN, RELEASE */
struct ns_op_open {
    uint64_t ino;
    uint32_t flags;         /* NS_OPEN_*; RELEASE: the open's READ/WRITE bits
                               and NS_RELEASE_* */
    uint64_t owner;         /* RELEASE: lock owner for NS_RELEASE_* */
};

/* WRITE_BEGIN, WRITE_END */
struct ns_op_write {
    uint64_t ino;
    uint32_t index;         /* chunk index in the file */
    uint64_t chunk_id;      /* BEGIN: leader-chosen id if the chunk is new */
    uint32_t length;        /* END: end of the written data in the chunk */
    int64_t mtime;          /* END */
    uint32_t flags;         /* END: NS_WRITE_KEEP_LEASE */
};

/* SESSION_OPEN (session, expiry), KEEPALIVE (expiry), CLOSE, EXPIRE (session) */
struct ns_op_session {
    uint64_t session;       /* leader-chosen at OPEN; the victim at EXPIRE */
    int64_t expiry;         /* leader clock + lease, ns */
};

struct ns_op_lock {
    uint64_t ino;
    uint64_t owner;         /* lock owner within the session */
    uint32_t kind;          /* NS_LOCK_FLOCK or NS_LOCK_POSIX */
    uint32_t type;          /* NS_LOCK_UN, _RD, _WR */
    uint64_t start, end;    /* POSIX: inclusive byte range, end UINT64_MAX = EOF */
    uint32_t pid;           /* the locking process (reported by F_GETLK) */
};

struct ns_op_config {
    uint32_t flags;         /* NS_CONFIG_* */
    uint32_t squash_uid, squash_gid;
    uint64_t chunk_size;    /* 0: unchanged; else a multiple of NS_CHUNK_SIZE_MIN */
};

struct ns_op {
    enum ns_op_type type;
    uint64_t client;        /* client id; 0 = the master itself (no session) */
    uint64_t seq;           /* client's sequence; 0 = not deduplicated */
    int64_t now;            /* leader's clock when proposed, ns */
    struct ns_cred cred;
    union {
        struct ns_op_make make;
        struct ns_op_link link;
        struct ns_op_remove remove;
        struct ns_op_rename rename;
        struct ns_op_setattr setattr;
        struct ns_op_xattr xattr;
        struct ns_op_open open;
        struct ns_op_write write;
        struct ns_op_session session;
        struct ns_op_lock lock;
        struct ns_op_config config;
    } u;
};

/* An inode's attributes as the namespace reports them. */
struct ns_attr {
    uint64_t ino;
    uint64_t size;
    int64_t atime, mtime, ctime;
    uint32_t gen;
    uint32_t mode;
    uint32_t nlink, uid, gid;
    uint32_t rdev;
    uint32_t goal;
    uint32_t nchunks;       /* chunk slots of a regular file (holes count) */
};

/* The part of a result the client sees: saved for exactly-once. */
struct ns_reply {
    int32_t err;            /* 0 or negative errno / -DFS_E* */
    uint32_t version;       /* WRITE_BEGIN: the chunk's new version */
    uint64_t chunk_id;      /* WRITE_BEGIN */
    struct ns_attr attr;    /* ops that make, open or change an inode */
};

/* A chunk cut short by a truncate: chunkservers trim it and take the
 * new version (until then, replicas below it are not served). */
struct ns_trim {
    uint64_t id;
    uint32_t version;           /* the new version, now committed */
    uint32_t length;
    uint32_t trim_from;         /* replicas at [trim_from, version) hold the
                                 * content before the cut (the chunk's
                                 * trim_from) */
};

struct ns_u64s {
    uint64_t *v;            /* owned by the result */
    size_t n, cap;
};

/*
 * What ns_apply did.  The reply goes to the client; the rest tells the
 * master what to do next.  Initialise with ns_result_init(), free with
 * ns_result_release() (both in ns.h).  Under memory pressure an effect may
 * be missing from the lists: they are hints the master can also recover
 * from chunk reports (an unknown chunk is deleted, a stale one too).
 */
struct ns_result {
    struct ns_reply reply;
    bool deduped;                   /* a retry: reply is the saved one */
    struct ns_u64s freed;           /* chunk ids no file holds any more */
    struct ns_trim *trimmed;        /* owned; ntrimmed chunks shortened */
    size_t ntrimmed, trimmed_cap;
    struct ns_u64s leases;          /* chunk ids whose write lease ended:
                                       retry waiting WRITE_BEGINs */
    struct ns_u64s lock_inos;       /* inodes whose locks were released or
                                       changed: retry waiting lockers */
    uint64_t session_ended;         /* session closed, expired or replaced */
};

/*
 * Appends op's encoding to w (errors sticky in w->err).  Whatever is
 * encoded decodes: strings are not checked against the limits above here
 * but by ns_apply(), which answers them with POSIX errors.
 */
void ns_op_encode(const struct ns_op *op, struct wire_writer *w);

/*
 * Decodes one op from buf[0..len); strings in *op point into buf, which
 * must outlive the op.  0, or -DFS_ETRUNC / -DFS_ETOOBIG (more groups than
 * NS_GROUPS_MAX) / -DFS_ECORRUPT / -DFS_EVERSION on malformed input (then
 * *op is unspecified).
 */
int ns_op_decode(const void *buf, size_t len, struct ns_op *op);

/* Reply encoding, used for the exactly-once table in snapshots. */
void ns_op_reply_encode(const struct ns_reply *r, struct wire_writer *w);
void ns_op_reply_decode(struct wire_reader *r, struct ns_reply *out);

/* The op type's name ("mkdir"...), for logs; "?" when unknown. */
const char *ns_op_name(enum ns_op_type type);

#endif
