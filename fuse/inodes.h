/*
 * inodes: the kernel's lookup count of every inode dfs-mount has handed
 * out (libfuse fuse_lowlevel.h, "lookup count"), and for each of them the
 * opens writing it and what its page cache was filled from.
 *
 * Each fuse_reply_entry / fuse_reply_create / readdirplus entry that
 * reaches the kernel adds one; each forget takes away what the kernel
 * says.  The table is how the mount knows which inodes the kernel still
 * names, and it is the check that both sides agree: a forget of more
 * than was handed out is a bug, an assertion in strict mode (tests, -d)
 * and a logged, clamped error in a user's mount.
 *
 * The page cache: an open may keep what the kernel cached of a file
 * (FOPEN_KEEP_CACHE) only if the file is the one the cache was filled
 * from.  The table remembers the file's stamp (size, mtime, ctime) as the
 * masters gave it to the open that last emptied the cache (recorded when
 * that open is released, by then surely emptied); a later open that finds
 * the same stamp keeps the cache.  An open for writing through this mount
 * forgets the stamp, so the next open after it starts afresh.
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

/* A file's state at the masters, as far as its cached bytes go. */
struct inodes_stamp {
    uint64_t size;
    int64_t mtime, ctime;
};

/* What an open does with the kernel's page cache of the file. */
enum inodes_cache {
    INODES_CACHE_KEEP,      /* filled from this very file: keep it */
    INODES_CACHE_STALE,     /* empty it; inodes_stamp() once surely empty */
    INODES_CACHE_DROP,      /* written here meanwhile: the open empties it */
};

/*
 * An open of ino that found s at the masters: what to do with the cache.
 * A writing open is counted (*counted) until inodes_close; it is not when
 * the kernel does not hold ino.  While a writer is counted, every open
 * answers DROP.
 */
enum inodes_cache inodes_open(struct inodes *t, uint64_t ino,
                              const struct inodes_stamp *s, bool writing,
                              bool *counted);
/* The cache of ino was emptied after a STALE answer that found s: s is
 * what fills it from now on (ignored if a writer opened meanwhile). */
void inodes_stamp(struct inodes *t, uint64_t ino, const struct inodes_stamp *s);
/* The end of a writing open that inodes_open counted. */
void inodes_close(struct inodes *t, uint64_t ino);

#endif
