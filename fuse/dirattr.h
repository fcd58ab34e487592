/*
 * dirattr: the attributes of directories as this mount's own namespace
 * changes left them (the masters return them with every create, mkdir,
 * unlink, rename, ...; dfs_on_dir_attr), and of files as a read-only open
 * found them.
 *
 * The kernel drops what it cached of a directory's attributes at every
 * change made through it, and with default_permissions asks for them
 * again at the next path walk: one GETATTR to the masters per create in a
 * loop.  The reply to the change already said what that GETATTR would, so
 * an entry answers one GETATTR of its directory within max_age_ms (the
 * attribute timeout: the staleness the kernel's own cache is allowed;
 * the kernel may keep the answer only for what is left of it), then is
 * gone.
 *
 * Likewise a read-only open: the kernel asks for the file's attributes
 * right after it (before the first read it re-checks the size) and again
 * after a read (a read drops the atime it cached, though dfs does not
 * change atime on reads), two GETATTRs per small file read.  The OPEN
 * reply said what both would; a write through this mount drops the entry.
 * And a SETATTR's reply answers the GETATTR the kernel sends after a
 * chown (tar: fchown, then fchmod).
 *
 * A direct-mapped table (slot: ino mod DIRATTR_SLOTS): a collision forgets
 * the older entry, which costs one GETATTR.  Of two entries for one
 * directory the later change (ctime) stays, whatever order the replies
 * came in.  Thread-safe: one mutex.
 */
#ifndef DFS_FUSE_DIRATTR_H
#define DFS_FUSE_DIRATTR_H

#include <stdbool.h>
#include <stdint.h>

#include "common/libdfs/dfs.h"

#define DIRATTR_SLOTS 1024

struct dirattr;

/* max_age_ms 0: nothing is ever answered from the table.  NULL when out of
 * memory. */
struct dirattr *dirattr_new(int64_t max_age_ms);
void dirattr_free(struct dirattr *t);

/* What a change's reply answers (a directory's, or a SETATTR's, after
 * which the kernel asks again: a chown drops what it cached for its
 * setuid check), and what a read-only open's does. */
#define DIRATTR_CHANGE_ANSWERS 1
#define DIRATTR_OPEN_ANSWERS 2

/* a as ino's entry, answering up to answers GETATTRs. */
void dirattr_put(struct dirattr *t, const struct dfs_attr *a, int64_t now_ms,
                 unsigned answers);

/* ino's entry into *out, and the ms left of its max_age_ms into *left_ms,
 * if it is younger and has answers left; each take uses one. */
bool dirattr_take(struct dirattr *t, uint64_t ino, int64_t now_ms, struct dfs_attr *out,
                  int64_t *left_ms);

/* Forgets all of ino's entry: a change whose result the table did not see
 * (a later put of any ctime is taken). */
void dirattr_drop(struct dirattr *t, uint64_t ino);

#endif
