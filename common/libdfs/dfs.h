/*
 * dfs: the client library — what dfs-mount and the tools call.
 *
 * A struct dfs is a session with the cluster, opened with the first
 * mutation (a session is a log entry; reads need none): it knows the
 * master list,
 * finds the leader (following NOT_LEADER hints), keeps its session lease
 * alive from a background thread, and retries a request across failovers
 * with backoff until the operation timeout.  Every mutation carries the
 * session's (id, sequence), the same on each retry, so it takes effect at
 * most once.
 *
 * Thread-safe: calls may come from many threads; they are serialised on
 * the one connection to the leader.  Errors are 0 or a negative errno /
 * -DFS_E* code (common/dfs_error.h); dfs_last_error() gives a message that
 * names the master and the reason for the last transport failure.
 */
#ifndef DFS_LIBDFS_H
#define DFS_LIBDFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct dfs;

struct dfs_opts {
    const char *masters;      /* "host:port,host:port,..." (required) */
    const char *key_file;     /* cluster key (required) */
    const char *client_name;  /* shown on the status page; NULL: "dfs" */
    int op_timeout_ms;        /* give up on one operation after; 0: 60 s */
    int connect_timeout_ms;   /* per master; 0: 2 s */
    uint32_t uid, gid;        /* the caller, unless set per call */
    bool no_local_reads;      /* read replicas on this host through TCP
                                 too (also DFS_LOCAL_READS=0) */
};

/*
 * Reads the key and connects to a master.  On failure errbuf says which
 * master failed and why (wrong key, nothing listening, timeout).
 */
int dfs_open(const struct dfs_opts *opts, struct dfs **out, char *errbuf,
             size_t errlen);
/* Closes the session (best effort) and frees everything. */
void dfs_close(struct dfs *d);

/* Message for the last failure on d (valid until the next call). */
const char *dfs_last_error(struct dfs *d);

/* Attributes, as the master reports them (protocol ATTR). */
struct dfs_attr {
    uint64_t ino;
    uint32_t mode, nlink, uid, gid, rdev;
    uint64_t size;
    int64_t atime, mtime, ctime;   /* ns since the epoch */
    uint8_t goal;
};

#define DFS_ROOT_INO 1

/*
 * fn(arg, a) gets the attributes of each directory a namespace change of
 * this session touched, as the change left them (the parents of a create,
 * mkdir, mknod, symlink, link, unlink, rmdir or rename, and a directory a
 * rename moved), from the thread that made it.  Set before use.
 */
typedef void (*dfs_dir_fn)(void *arg, const struct dfs_attr *a);
void dfs_on_dir_attr(struct dfs *d, dfs_dir_fn fn, void *arg);

int dfs_lookup(struct dfs *d, uint64_t parent, const char *name,
               struct dfs_attr *out);
int dfs_getattr(struct dfs *d, uint64_t ino, struct dfs_attr *out);
/* Resolves an absolute path ("/a/b"; "/" is the root). */
int dfs_resolve(struct dfs *d, const char *path, struct dfs_attr *out);

int dfs_mkdir(struct dfs *d, uint64_t parent, const char *name, uint32_t mode,
              struct dfs_attr *out);
/* flags: DFS_O_* below. */
int dfs_create(struct dfs *d, uint64_t parent, const char *name, uint32_t mode,
               uint32_t flags, struct dfs_attr *out);
int dfs_mknod(struct dfs *d, uint64_t parent, const char *name, uint32_t mode,
              uint32_t rdev, struct dfs_attr *out);
int dfs_symlink(struct dfs *d, uint64_t parent, const char *name,
                const char *target, struct dfs_attr *out);
int dfs_link(struct dfs *d, uint64_t ino, uint64_t newparent,
             const char *newname, struct dfs_attr *out);
int dfs_unlink(struct dfs *d, uint64_t parent, const char *name);
int dfs_rmdir(struct dfs *d, uint64_t parent, const char *name);
/* flags: DFS_RENAME_NOREPLACE, DFS_RENAME_EXCHANGE. */
int dfs_rename(struct dfs *d, uint64_t parent, const char *name,
               uint64_t newparent, const char *newname, uint32_t flags);
/* target: malloc'ed, NUL-terminated; the caller frees. */
int dfs_readlink(struct dfs *d, uint64_t ino, char **target);

enum {
    DFS_O_READ = 0x01, DFS_O_WRITE = 0x02, DFS_O_TRUNC = 0x04,
    DFS_O_APPEND = 0x08, DFS_O_EXCL = 0x10,
};
enum { DFS_RENAME_NOREPLACE = 1, DFS_RENAME_EXCHANGE = 2 };

/* setattr: which fields of struct dfs_setattr apply (DFS_SET_*). */
enum {
    DFS_SET_MODE = 0x001, DFS_SET_UID = 0x002, DFS_SET_GID = 0x004,
    DFS_SET_SIZE = 0x008, DFS_SET_ATIME = 0x010, DFS_SET_MTIME = 0x020,
    DFS_SET_ATIME_NOW = 0x040, DFS_SET_MTIME_NOW = 0x080, DFS_SET_GOAL = 0x100,
};
struct dfs_setattr {
    uint32_t valid;
    uint32_t mode, uid, gid;
    uint64_t size;
    int64_t atime, mtime;
    uint8_t goal;
};
int dfs_setattr(struct dfs *d, uint64_t ino, const struct dfs_setattr *set,
                struct dfs_attr *out);

struct dfs_dirent {
    uint64_t cookie;          /* resume after this entry */
    uint64_t ino;
    uint32_t mode;            /* S_IFMT bits */
    const char *name;         /* valid during the callback */
    const struct dfs_attr *attr;   /* with DFS_READDIR_PLUS, else NULL */
};
enum { DFS_READDIR_PLUS = 1 };
/*
 * Lists directory ino from cookie (0: the start; "." and ".." included),
 * calling fn for each entry until the end or until fn returns non-zero
 * (returned).  Each batch is one request: a listing that runs while the
 * directory changes sees every entry that stays exactly once.
 */
int dfs_readdir(struct dfs *d, uint64_t ino, uint64_t cookie, unsigned flags,
                int (*fn)(const struct dfs_dirent *e, void *arg), void *arg);

struct dfs_statfs {
    uint64_t bytes_total, bytes_free, bytes_avail, files, files_free;
};
int dfs_statfs(struct dfs *d, struct dfs_statfs *out);

/* ---- file data ---------------------------------------------------------- */

/*
 * An open file: reads go to any up-to-date replica (block CRCs verified,
 * next replica on error, the bad one reported); writes go through the
 * chunk's replication chain under this session's write lease.  Data
 * written is durable on every replica and its length committed by the
 * masters only after dfs_file_fsync() or dfs_file_close() return 0.
 * A struct dfs_file may be used from several threads (calls serialise).
 */
struct dfs_file;

/* flags: DFS_O_READ / DFS_O_WRITE (DFS_O_TRUNC truncates first).  attr
 * (may be NULL): the file's attributes at the open. */
int dfs_file_open(struct dfs *d, uint64_t ino, uint32_t flags,
                  struct dfs_file **out, struct dfs_attr *attr);
/* A handle for the open that dfs_create made (flags with DFS_O_READ or
 * DFS_O_WRITE; a is what it returned), without another request. */
int dfs_file_adopt(struct dfs *d, const struct dfs_attr *a, uint32_t flags,
                   struct dfs_file **out);
/* Returns bytes read (short only at end of file) or a negative error. */
ssize_t dfs_file_pread(struct dfs_file *f, void *buf, size_t len, uint64_t off);
/* Returns len or a negative error; extends the file as needed. */
ssize_t dfs_file_pwrite(struct dfs_file *f, const void *buf, size_t len,
                        uint64_t off);
/* ftruncate: what f wrote lands first, then the file takes size. */
int dfs_file_truncate(struct dfs_file *f, uint64_t size);
/* The same, only when the file is smaller than size (checked and changed
 * under one lock: a concurrent write past size is never cut off). */
int dfs_file_extend(struct dfs_file *f, uint64_t size);
/* Makes every byte written so far durable and committed (DESIGN §2). */
int dfs_file_fsync(struct dfs_file *f);
/* The same at a close(2) of one of several descriptors: the write leases
 * go too (a later write takes them again), so the last close need not
 * tell the masters once more. */
int dfs_file_flush(struct dfs_file *f);
/* The file size as this handle sees it (its own writes included). */
uint64_t dfs_file_size(struct dfs_file *f);
/* fsync, then releases the open; frees f whatever it returns. */
int dfs_file_close(struct dfs_file *f);

/* ---- chunks (for dfsadmin stat and fsck) --------------------------------- */

#define DFS_MAX_REPLICAS 8

/* One chunk of a file, with the chunkservers holding its current version. */
struct dfs_chunk {
    uint32_t index;           /* chunk index in the file */
    uint64_t id;
    uint32_t version;
    uint32_t length;          /* committed bytes in the chunk */
    uint32_t nreplicas;
    uint32_t replicas[DFS_MAX_REPLICAS];   /* chunkserver numbers */
};

/* The cluster's bytes per chunk (fixed when the cluster was made; this
 * opens the session if none is open yet). */
int dfs_chunk_size(struct dfs *d, uint64_t *out);

/*
 * The chunks of file ino with index in [first, first + max) (holes left
 * out; max at most 64) into out; *n receives how many.  A file of size S
 * has indexes below ceil(S / dfs_chunk_size): step first by max up to it.
 */
int dfs_chunks(struct dfs *d, uint64_t ino, uint32_t first,
               struct dfs_chunk *out, size_t max, size_t *n);

/* ---- fsck ------------------------------------------------------------------ */

enum { DFS_FSCK_UNDER = 1, DFS_FSCK_MISSING = 2, DFS_FSCK_CORRUPT = 3,
       DFS_FSCK_TRIMMING = 4 /* replicas await a truncate's trim */ };

struct dfs_fsck_problem {
    uint64_t inode;
    uint32_t index;
    uint64_t chunk;
    uint32_t version;
    uint32_t replicas;        /* healthy replicas */
    uint8_t goal;
    uint8_t state;            /* DFS_FSCK_* */
};

struct dfs_fsck {
    uint64_t chunks, healthy, under_replicated, missing, corrupt;
    size_t nproblems;
    struct dfs_fsck_problem *problems;   /* malloc'ed; dfs_fsck_release */
    /* dfs_fsck_verify only: replicas re-read and found good, found bad
     * (corrupt, or gone), not re-read (server down or silent, chunk being
     * written), and the chunkservers asked. */
    uint64_t verified, bad, unverified;
    uint32_t servers;
};

/* Checks every chunk under inode against its goal (the leader's view). */
int dfs_fsck(struct dfs *d, uint64_t inode, struct dfs_fsck *out);
/*
 * The same after every chunkserver re-read its replicas of those chunks
 * (the bad ones are then counted corrupt, and replaced by the master).
 * May take minutes; gives up with -ETIMEDOUT after an hour.
 */
int dfs_fsck_verify(struct dfs *d, uint64_t inode, struct dfs_fsck *out);
void dfs_fsck_release(struct dfs_fsck *f);

/* The status document (JSON, malloc'ed, NUL-terminated) of the master
 * this session is connected to, whatever its role. */
int dfs_admin_status(struct dfs *d, char **json);
/* The status document of one master by address, whatever its role. */
int dfs_admin_status_of(struct dfs *d, const char *addr, char **json);

/* ---- membership (dfsadmin.c) ------------------------------------------------ */

enum { DFS_MEMBER_NONE = 0, DFS_MEMBER_LEARNER = 1, DFS_MEMBER_VOTER = 2 };

#define DFS_ADDR_MAX 256

struct dfs_member {
    uint64_t id;
    uint8_t role;                  /* DFS_MEMBER_* */
    char addr[DFS_ADDR_MAX];       /* Raft and client address, host:port */
    char http[DFS_ADDR_MAX];       /* status page host:port, "" unknown */
};

/* One master's view of the membership (PROTO_ADMIN_MASTERS). */
struct dfs_members {
    uint64_t cluster_id;
    uint64_t self_id;              /* the master that answered */
    uint8_t self_role;             /* DFS_MEMBER_NONE: not (yet) a member */
    uint64_t leader_id, term, commit;
    size_t n;
    struct dfs_member m[16];       /* the Raft configuration, by id */
};

/* The membership as the master this session talks to sees it. */
int dfs_admin_masters(struct dfs *d, struct dfs_members *out);
/*
 * Adds the master listening at addr (started with dfs-master --join):
 * returns once it votes, with its id in *id.  Waits as long as it takes
 * to catch up, up to timeout_ms (0: 10 minutes).  Idempotent.
 */
int dfs_admin_master_add(struct dfs *d, const char *addr, int timeout_ms,
                         uint64_t *id);
/* Removes master id (the leader too); -ENOENT when not a member. */
int dfs_admin_master_remove(struct dfs *d, uint64_t id);
/* Makes master id the leader; -ETIMEDOUT when it did not take over. */
int dfs_admin_leader_transfer(struct dfs *d, uint64_t id);
/*
 * Marks chunkserver cs decommissioned: its chunks are copied elsewhere and
 * nothing new goes there; /api/status shows it "decommissioning", then
 * "decommissioned" once it may be removed.
 */
int dfs_admin_cs_decommission(struct dfs *d, uint32_t cs);

/* ---- extended attributes and advisory locks (dfsmeta.c) -------------------- */

/*
 * Names are "namespace.name": user.* (read/write permission on regular
 * files and directories), trusted.* (root), security.* (anyone reads,
 * root writes); others answer -EOPNOTSUPP.  Names up to
 * PROTO_XATTR_NAME_MAX (255) bytes, values up to PROTO_XATTR_VALUE_MAX
 * (64 KiB), 256 KiB of names and values per inode (-ENOSPC past it).
 */
enum { DFS_XATTR_CREATE = 1, DFS_XATTR_REPLACE = 2 };

/* *value: malloc'ed (the caller frees), *len bytes; -ENODATA if absent. */
int dfs_getxattr(struct dfs *d, uint64_t ino, const char *name, void **value,
                 size_t *len);
/* flags: 0, DFS_XATTR_CREATE (-EEXIST if present) or DFS_XATTR_REPLACE
 * (-ENODATA if absent). */
int dfs_setxattr(struct dfs *d, uint64_t ino, const char *name,
                 const void *value, size_t len, uint32_t flags);
/* listxattr(2)'s shape: each name followed by a NUL, *len bytes in all,
 * in *names (malloc'ed, the caller frees; NULL when there are none). */
int dfs_listxattr(struct dfs *d, uint64_t ino, char **names, size_t *len);
int dfs_removexattr(struct dfs *d, uint64_t ino, const char *name);

/*
 * Advisory locks, held by the masters in this session (so every client of
 * the cluster sees them) and released with it.  A lock owner is (session,
 * owner): flock locks and POSIX record locks never conflict with each
 * other; two owners conflict on overlapping ranges when either lock is
 * exclusive.  ino must be open in this session (dfs_file_open): -EBADF
 * otherwise, and a POSIX write lock needs it open for writing.
 */
enum { DFS_LOCK_FLOCK = 1, DFS_LOCK_POSIX = 2 };
enum { DFS_LOCK_NONE = 0, DFS_LOCK_READ = 1, DFS_LOCK_WRITE = 2 };

struct dfs_lock {
    uint64_t owner;           /* the caller's owner id (FUSE lock_owner) */
    uint8_t kind;             /* DFS_LOCK_FLOCK or DFS_LOCK_POSIX */
    uint8_t type;             /* DFS_LOCK_READ or DFS_LOCK_WRITE */
    uint64_t start, end;      /* inclusive; end UINT64_MAX: to the end of
                                 the file; flock ignores them */
    uint32_t pid;             /* the locking process, shown by F_GETLK */
};

/* How a blocking dfs_lock learns that its caller gave up (a signal). */
struct dfs_lock_wait {
    bool (*cancelled)(void *arg);
    void *arg;
};

/*
 * Takes lock l on ino.  wait NULL: a conflict is -EAGAIN.  Otherwise
 * waits until granted, with no deadline: the wait survives leader changes
 * and master restarts.  To give up, make wait->cancelled return true,
 * then call dfs_lock_cancel with the same owner and an overlapping range:
 * the wait ends with -EINTR (unless the lock was granted first: then 0),
 * and what the owner already held stays held (an interrupted upgrade
 * keeps its read lock, as POSIX wants).
 */
int dfs_lock(struct dfs *d, uint64_t ino, const struct dfs_lock *l,
             const struct dfs_lock_wait *wait);
/* Releases owner's l->kind locks in [l->start, l->end] (flock: its flock)
 * and cancels its waits there. */
int dfs_unlock(struct dfs *d, uint64_t ino, const struct dfs_lock *l);
/* Ends owner's waits for l->kind locks overlapping [l->start, l->end]
 * (flock: its flock wait) without releasing anything. */
int dfs_lock_cancel(struct dfs *d, uint64_t ino, const struct dfs_lock *l);
/*
 * F_GETLK: would the POSIX lock l (owner, type, range) be granted?  0 with
 * l->type = DFS_LOCK_NONE when it would, else l takes the type, range and
 * pid of one conflicting lock of another owner.
 */
int dfs_lock_test(struct dfs *d, uint64_t ino, struct dfs_lock *l);

#endif
