/*
 * fsops: the FUSE low-level operations of dfs-mount, over libdfs.
 *
 * One struct fsops is one mount: it borrows the mount's struct dfs, owns
 * the lookup-count table (fuse/inodes.h) and every open file and directory
 * handle the kernel holds.  fsops_ops() is the table to give
 * fuse_session_new() with the struct fsops as userdata.
 */
#ifndef DFS_FUSE_FSOPS_H
#define DFS_FUSE_FSOPS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <stdbool.h>

#include "common/libdfs/dfs.h"

struct fsops_config {
    double attr_timeout;    /* seconds the kernel may cache attributes */
    double entry_timeout;   /* seconds the kernel may cache a name */
    bool direct_io;         /* bypass the page cache on every open */
    bool strict;            /* a lookup-count underflow aborts (tests, -d) */
};

struct fsops;

/*
 * d is borrowed: it must outlive the struct fsops.  Returns NULL when out
 * of memory.  The caller frees with fsops_free().
 */
struct fsops *fsops_new(struct dfs *d, const struct fsops_config *cfg);

/* Closes (so commits) every file the kernel left open, then frees fs. */
void fsops_free(struct fsops *fs);

/* The operation table; static, never freed. */
const struct fuse_lowlevel_ops *fsops_ops(void);

/* The mount's xattr and lock state (fuse/fsmeta.h), owned by fs. */
struct fsmeta *fsops_meta(struct fsops *fs);

/* The session serving fs, borrowed until it is destroyed (and then set to
 * NULL): fs invalidates kernel caches through it. */
void fsops_session(struct fsops *fs, struct fuse_session *se);

/*
 * The one mapping from the dfs error space to what crosses to the kernel:
 * a negative errno goes back positive and unchanged, except ENOSYS (EIO:
 * the kernel would remember it for good); a DFS_E* code becomes ENOTCONN
 * when it means the cluster cannot be reached or used, else EIO.
 * rc must be negative.
 */
int fsops_errno(int rc);

#endif
