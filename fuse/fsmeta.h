/*
 * fsmeta: dfs-mount's extended-attribute and lock operations (the FUSE
 * low-level setxattr, getxattr, listxattr, removexattr, getlk, setlk and
 * flock handlers) over libdfs.
 *
 * One struct fsmeta per mount, owned by fsops (fsops_new/fsops_free),
 * which also calls fsmeta_flush from flush and fsmeta_release from
 * release: POSIX locks go with any close of their owner, flock locks with
 * the last close of their open file.  Thread-safe.
 */
#ifndef DFS_FUSE_FSMETA_H
#define DFS_FUSE_FSMETA_H

#include "fuse/fsops.h"

struct fsmeta;

/* d borrowed; cache_s: how long a missing security.capability is
 * remembered (the attribute cache time).  NULL when out of memory. */
struct fsmeta *fsmeta_new(struct dfs *d, double cache_s);
void fsmeta_free(struct fsmeta *m);

/* close(2) of a descriptor by lock owner: drops the owner's POSIX locks
 * on ino if this mount ever gave it one.  0 or a negative dfs error. */
int fsmeta_flush(struct fsmeta *m, uint64_t ino, uint64_t owner);
/* ino was just created through this mount: it has no attributes at all,
 * so its first write need not ask for security.capability. */
void fsmeta_created(struct fsmeta *m, uint64_t ino);
/* The last close of an open file that took flock locks (flock_release). */
int fsmeta_release(struct fsmeta *m, uint64_t ino, uint64_t owner);

/* The handlers; the request's userdata is the struct fsops. */
void fsmeta_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                     const char *value, size_t size, int flags);
void fsmeta_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                     size_t size);
void fsmeta_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fsmeta_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void fsmeta_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock);
void fsmeta_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock, int sleep);
void fsmeta_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  int op);

#endif
