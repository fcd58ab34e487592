/*
 * fsio: the durable file I/O layer, with a simulated disk for power-cut tests.
 *
 * Every server call that must reach the disk (Raft log, term/vote file,
 * snapshots, chunk files) goes through a struct fsio handle that the caller
 * receives; there is no global state.  Three backends share one interface:
 *
 *   fsio_real_new()  thin wrappers over the POSIX calls;
 *   fsio_sim_new()   an in-memory file system that remembers which
 *                    operations are not yet durable, so a test can cut the
 *                    power (fsio_sim_crash), inject EIO/ENOSPC, and reopen
 *                    the files as a restarted process would find them;
 *   fsio_cut_new()   the power-cut test mode of real servers: the real
 *                    file system holds only what is durable, the rest
 *                    lives in the process and dies with it (fsio_cut.c).
 *
 * docs/DURABILITY.md gives the durability model the simulator enforces.  In
 * short: only fsync/fdatasync of a file makes its data and size durable;
 * only fsync of a directory (fsio_fsync_dir) makes the changes of names in
 * it durable (create, mkdir, unlink, rmdir, rename), each one atomically.
 *
 * Conventions for every call:
 *  - returns 0 (or a byte count) on success, a negative errno on failure;
 *  - path arguments are borrowed for the duration of the call;
 *  - a file handle ("fd") is an int valid only with the fsio that returned
 *    it, until fsio_close() (or, for the simulator, fsio_sim_crash());
 *  - every backend may be called from any thread (the simulator and the
 *    power-cut backend serialize their calls with one internal lock).
 */
#ifndef DFS_FSIO_H
#define DFS_FSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fsio;

/* ---- backends ----------------------------------------------------------- */

/* Real backend over the POSIX calls.  Returns NULL only on out of memory. */
struct fsio *fsio_real_new(void);

/*
 * Simulated backend: an empty in-memory file system holding only the root
 * directory "/" (relative paths are taken from the root; ".." is -EINVAL).
 * It is a test double: it aborts on out of memory (inject ENOMEM with
 * fsio_sim_fail instead).  Returns NULL only on out of memory.
 */
struct fsio *fsio_sim_new(void);

/*
 * Power-cut backend over the real file system (common/fsio_cut.c): at
 * every moment the real files hold exactly what the model of
 * docs/DURABILITY.md says is durable; writes, truncates and changes of
 * names not yet made durable are held in this process, served to its own
 * calls, and lost when it is killed or calls fsio_free (which writes
 * nothing: it is the power cut).  A directory sync commits the changes of
 * names in that directory, those they depend on, and, around a directory
 * operation (mkdir, rmdir, rename of a directory), every earlier one.
 * Paths may be relative (to the working directory); ".." is resolved by
 * name.  Aborts on out of memory (a test mode).  Returns NULL only on out
 * of memory.
 */
struct fsio *fsio_cut_new(void);

/* The environment variable that selects the power-cut backend. */
#define FSIO_POWERCUT_ENV "DFS_FSIO_POWERCUT"

/*
 * What servers call: fsio_cut_new() when $DFS_FSIO_POWERCUT is set to
 * anything but "" or "0" (after a loud warning in the log), else
 * fsio_real_new().  NULL only on out of memory.
 */
struct fsio *fsio_from_env(void);

/* Whether fs is the real backend: its fds are the kernel's, and another
 * process opening its files sees what fs wrote. */
bool fsio_is_real(const struct fsio *fs);

/* Frees the handle; for the simulator, every simulated file and fd too.
 * The real backend does not track fds: close them first.  NULL is a no-op. */
void fsio_free(struct fsio *fs);

/* ---- files -------------------------------------------------------------- */

/*
 * open(2).  flags: O_RDONLY / O_WRONLY / O_RDWR, optionally O_CREAT, O_EXCL,
 * O_TRUNC; any other flag is -EINVAL on both backends (O_CLOEXEC is always
 * implied).  mode is used when the file is created.  A directory is
 * -EISDIR, even read-only: directories are used by name.  Returns an
 * fd >= 0 or a negative errno.  A file created here is not durable until
 * its directory is synced (fsio_fsync_dir).
 */
int fsio_open(struct fsio *fs, const char *path, int flags, mode_t mode);

/* Closes fd; closing makes nothing durable.  Returns 0 or a negative errno
 * (-EBADF for an fd that is not open). */
int fsio_close(struct fsio *fs, int fd);

/*
 * Writes all of buf at offset off (EINTR and short writes retried).  Returns
 * len, or a negative errno; on -ENOSPC a prefix of buf may have been written.
 * Extending past the end fills the gap with zeros.  For this call and
 * fsio_pread, len = 0 returns 0 at once, whatever fd is.
 */
ssize_t fsio_pwrite(struct fsio *fs, int fd, const void *buf, size_t len,
                    off_t off);

/* Reads up to len bytes at off; fewer only at end of file.  Returns the
 * count (0 at or past the end) or a negative errno. */
ssize_t fsio_pread(struct fsio *fs, int fd, void *buf, size_t len, off_t off);

/* fdatasync(2) / fsync(2): the file's data and size become durable.  They
 * do not make the file's name durable; see fsio_fsync_dir(). */
int fsio_fdatasync(struct fsio *fs, int fd);
int fsio_fsync(struct fsio *fs, int fd);

/* ftruncate(2); durable only after a sync of the file. */
int fsio_ftruncate(struct fsio *fs, int fd, uint64_t size);

/* Current size of an open file. */
int fsio_size(struct fsio *fs, int fd, uint64_t *size);

/* ---- names -------------------------------------------------------------- */

/* rename(2), unlink(2), mkdir(2), rmdir(2).  Each is durable only after a
 * sync of a directory holding a name it changed (either one for a rename
 * across directories); until then a crash may undo it, atomically. */
int fsio_rename(struct fsio *fs, const char *from, const char *to);
int fsio_unlink(struct fsio *fs, const char *path);
int fsio_mkdir(struct fsio *fs, const char *path, mode_t mode);
int fsio_rmdir(struct fsio *fs, const char *path);

/* Makes the current names in directory path durable (open O_DIRECTORY,
 * fsync, close on the real backend). */
int fsio_fsync_dir(struct fsio *fs, const char *path);

struct fsio_stat {
    uint64_t size;      /* bytes; 0 for a directory */
    bool is_dir;
};

/* stat(2) by name; -ENOENT when absent. */
int fsio_stat(struct fsio *fs, const char *path, struct fsio_stat *st);

/*
 * Calls fn(name, arg) for each entry of directory path except "." and "..",
 * in strcmp order (on both backends, so callers and tests are
 * deterministic).  name is valid only during the call.  A non-zero return
 * from fn stops the walk and is returned; otherwise returns 0 or a negative
 * errno.  The names are collected before the first call, so fn may use fs.
 */
typedef int (*fsio_list_fn)(const char *name, void *arg);
int fsio_list_dir(struct fsio *fs, const char *path, fsio_list_fn fn,
                  void *arg);

/* Size and free bytes of the file system holding path (statvfs(2); the
 * simulator reports its capacity, see fsio_sim_set_capacity). */
int fsio_space(struct fsio *fs, const char *path, uint64_t *total,
               uint64_t *avail);

/* ---- whole files -------------------------------------------------------- */

/*
 * Replaces dir/name with data, atomically and durably: writes
 * dir/.name.tmp, fsyncs it, renames it over dir/name, fsyncs dir.  After a
 * 0 return the new content is durable; after a crash at any point before,
 * dir/name holds the old content or the new one, never a mix.  A leftover
 * dir/.name.tmp (crash mid-way) is garbage: it is replaced on the next call
 * and may be deleted by recovery code.  An error before the rename leaves
 * dir/name untouched and removes the temp file (best effort); an error from
 * the final directory sync leaves the new content in place but perhaps not
 * durable.
 */
int fsio_write_file_atomic(struct fsio *fs, const char *dir, const char *name,
                           const void *data, size_t len);

/*
 * Reads the whole file at path into a new buffer.  On success *data (owned
 * by the caller, free() it; never NULL, one byte past *len is a NUL so text
 * may be used as a string) and *len are set.  A file larger than max is
 * -EFBIG.
 */
int fsio_read_file(struct fsio *fs, const char *path, size_t max, void **data,
                   size_t *len);

/* ---- simulator controls (each returns -EINVAL on a real backend) -------- */

/* Operations that can be counted and made to fail. */
enum fsio_op {
    FSIO_OP_OPEN,
    FSIO_OP_READ,       /* fsio_pread */
    FSIO_OP_WRITE,      /* fsio_pwrite */
    FSIO_OP_TRUNCATE,
    FSIO_OP_SYNC,       /* fsio_fdatasync and fsio_fsync */
    FSIO_OP_SYNC_DIR,
    FSIO_OP_RENAME,
    FSIO_OP_UNLINK,
    FSIO_OP_MKDIR,
    FSIO_OP_RMDIR,
    FSIO_OP_COUNT
};

/* What a power cut does to each operation not yet durable. */
enum fsio_crash {
    FSIO_CRASH_KEEP_ALL,    /* nothing lost: a kill -9, page cache survives */
    FSIO_CRASH_DROP_ALL,    /* everything not synced is lost */
    FSIO_CRASH_KEEP_RANDOM, /* each op independently kept or lost */
    FSIO_CRASH_TEAR,        /* as KEEP_RANDOM, and a write may be torn */
};

/*
 * Power cut and restart.  Every open fd is closed; each operation not yet
 * durable is resolved by policy with a PRNG seeded by seed (same state +
 * same seed = same outcome); afterwards the simulated files hold exactly
 * the durable state, usable through the same fs as a restarted process
 * would find them.  Armed faults and call counters are kept.
 */
int fsio_sim_crash(struct fsio *fs, enum fsio_crash policy, uint64_t seed);

/*
 * Fault injection: the nth call of op from now (nth = 1 is the next one)
 * fails with -err (err a positive errno such as EIO or ENOSPC) and changes
 * nothing, except that a failed sync loses the file's unsynced writes for
 * good: they stay readable but never become durable, as on Linux after a
 * writeback error.  One armed fault per op; err = 0 disarms.
 */
int fsio_sim_fail(struct fsio *fs, enum fsio_op op, unsigned nth, int err);

/* Every call of op from now on fails with -err, until err = 0 is given
 * (a dead disk).  Replaces any fault armed by fsio_sim_fail for op. */
int fsio_sim_fail_always(struct fsio *fs, enum fsio_op op, int err);

/* Capacity in bytes (sum of file sizes); 0 = unlimited, the default.  A
 * write that would pass it writes what fits and returns -ENOSPC; so does a
 * truncate that would grow a file past it. */
int fsio_sim_set_capacity(struct fsio *fs, uint64_t bytes);

/* Introspection (0 on a real backend). */
size_t fsio_sim_pending(struct fsio *fs);   /* ops not yet durable */
size_t fsio_sim_open_files(struct fsio *fs);
uint64_t fsio_sim_used(struct fsio *fs);    /* bytes counted by capacity */
uint64_t fsio_sim_calls(struct fsio *fs, enum fsio_op op); /* since new */

#endif
