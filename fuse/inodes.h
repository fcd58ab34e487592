/*
 * inodes: the kernel's lookup count of every inode dfs-mount has handed
 * out (libfuse fuse_lowlevel.h, "lookup count").
 *
 * Each fuse_reply_entry / fuse_reply_create / readdirplus entry that
 * reaches the kernel adds one; each forget takes away what the kernel
 * says.  The table is how the mount knows which inodes the kernel still
 * names, and it is the check that both sides agree: a forget of more
 * than was handed out is a bug, an assertion in strict mode (tests, -d)
 * and a logged, clamped error in a user's mount.
 *
 * Thread-safe: every call takes the table's own mutex.
 */
#ifndef DFS_FUSE_INODES_H
#define DFS_FUSE_INODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct inodes;

/* strict: abort() on an underflow instead of clamping.  Returns NULL when
 * out of memory.  The caller frees with inodes_free(). */
struct inodes *inodes_new(bool strict);
void inodes_free(struct inodes *t);

/* Counts one more lookup of ino.  Returns 0 or -ENOMEM (nothing counted). */
int inodes_ref(struct inodes *t, uint64_t ino);

/*
 * Takes n lookups of ino away and returns what is left.  Forgetting an
 * inode never counted, or more than its count, is an underflow: logged
 * and clamped to 0 (strict: abort).  An inode at 0 leaves the table.
 */
uint64_t inodes_forget(struct inodes *t, uint64_t ino, uint64_t n);

/* The lookup count of ino (0 when the kernel does not hold it). */
uint64_t inodes_count(struct inodes *t, uint64_t ino);

/* How many inodes the kernel holds. */
size_t inodes_size(struct inodes *t);

#endif
