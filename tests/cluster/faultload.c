/*
 * faultload: the fault suite's workload generator and verifier.
 *
 *   faultload run --record FILE --seed N --seconds S [--dir MNT] [--prefix /fl]
 *                 [--files K] [--max-mib M] [--retry-s R]
 *   faultload verify --record FILE [--dir MNT]
 *
 * `run` writes, overwrites, appends, truncates, renames, deletes and reads
 * back files under the prefix, through libdfs (masters and key from
 * DFS_MASTERS / DFS_KEY_FILE) or, with --dir, through POSIX calls under a
 * mounted directory.  It keeps the exact content of every file in memory
 * and appends one line to FILE (fsync'ed) for each acknowledged result.
 * `verify` replays FILE and checks the cluster against it.
 *
 * Invariants:
 *  1. A line is appended only after the operation returned success
 *     (fsync/close for data), so the record never claims more than the
 *     cluster acknowledged.
 *  2. Every operation is idempotent as a whole (same bytes at the same
 *     offset, truncate to a size, a rename whose source is gone and target
 *     present is done, a delete that finds nothing is done), so a failed
 *     attempt is simply retried and the model stays exact.
 *  3. An operation still failing at its deadline leaves its names
 *     "uncertain": the record lists the candidate states, the generator
 *     never touches those names again, and the verifier counts them apart.
 *  4. Every random choice comes from one PRNG seeded by --seed; retries
 *     draw nothing from it.
 *
 * Record format (text, one item per line; docs/FAULTS.md):
 *   faultload 1 prefix=/fl seed=N mode=libdfs|posix
 *   file PATH SIZE SHA256HEX        PATH holds exactly this content
 *   gone PATH                       PATH was deleted
 *   rename FROM TO                  TO took FROM's state, FROM is gone
 *   uncertain PATH CAND [CAND...]   CAND is "absent" or SIZE:SHA256HEX
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/dfs_error.h"
#include "common/libdfs/dfs.h"
#include "common/log.h"
#include "tests/cluster/common/tsession.h"

#define FL_PATH_MAX 512
#define FL_SHA_HEX 65
#define FL_MAX_CANDS 4

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- PRNG: xoshiro256**, seeded through splitmix64 ----------------------- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void rng_init(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n); n > 0. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

static void rng_fill(struct rng *r, uint8_t *buf, size_t len)
{
    while (len >= 8) {
        uint64_t v = rng_next(r);
        memcpy(buf, &v, 8);
        buf += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = rng_next(r);
        memcpy(buf, &v, len);
    }
}

/* ---- SHA-256 ------------------------------------------------------------ */

static int sha256_hex(const uint8_t *buf, size_t len, char out[FL_SHA_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL))
        return -EIO;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- I/O: libdfs or POSIX under a mount --------------------------------- */

struct io {
    struct dfs *d;          /* libdfs session, or NULL when dir is set */
    const char *dir;        /* the mount's root for POSIX calls */
    char msg[600];          /* io_strerror's answer */
};

static void posix_path(const struct io *io, const char *path, char out[FL_PATH_MAX])
{
    snprintf(out, FL_PATH_MAX, "%s%s", io->dir, path);
}

/* Splits "/a/b/name" into the parent's inode and the last name. */
static int dfs_parent(struct dfs *d, const char *path, uint64_t *parent,
                      const char **name)
{
    const char *slash = strrchr(path, '/');
    if (!slash || !slash[1])
        return -EINVAL;
    *name = slash + 1;
    char dir[FL_PATH_MAX];
    size_t n = (size_t)(slash - path);
    if (n == 0 || n >= sizeof(dir)) {
        *parent = DFS_ROOT_INO;
        return n == 0 ? 0 : -ENAMETOOLONG;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    struct dfs_attr a;
    int rc = dfs_resolve(d, dir, &a);
    if (rc == 0)
        *parent = a.ino;
    return rc;
}

/* mkdir -p of an absolute path. */
static int io_mkdirs(struct io *io, const char *path)
{
    char part[FL_PATH_MAX];
    for (const char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        size_t n = (size_t)(p - path);
        if (n >= sizeof(part))
            return -ENAMETOOLONG;
        memcpy(part, path, n);
        part[n] = '\0';
        int rc;
        if (io->d) {
            uint64_t parent;
            const char *name;
            struct dfs_attr a;
            rc = dfs_parent(io->d, part, &parent, &name);
            if (rc == 0)
                rc = dfs_mkdir(io->d, parent, name, 0755, &a);
        } else {
            char full[FL_PATH_MAX];
            posix_path(io, part, full);
            rc = mkdir(full, 0755) < 0 ? -errno : 0;
        }
        if (rc < 0 && rc != -EEXIST)
            return rc;
        if (*p == '\0')
            return 0;
    }
}

static int dfs_write_at(struct dfs *d, const char *path, uint64_t off,
                        const uint8_t *buf, size_t len, bool trunc)
{
    uint64_t parent;
    const char *name;
    struct dfs_attr a;
    int rc = dfs_parent(d, path, &parent, &name);
    if (rc < 0)
        return rc;
    /* Without EXCL, CREATE of an existing name opens it: a retried
     * create finds its own file. */
    rc = dfs_create(d, parent, name, 0644, 0, &a);
    if (rc < 0)
        return rc;
    struct dfs_file *f;
    rc = dfs_file_open(d, a.ino, DFS_O_WRITE | (trunc ? DFS_O_TRUNC : 0), &f, NULL);
    if (rc < 0)
        return rc;
    if (len) {
        ssize_t n = dfs_file_pwrite(f, buf, len, off);
        if (n < 0) {
            dfs_file_close(f);
            return (int)n;
        }
    }
    return dfs_file_close(f);
}

static int posix_write_at(const struct io *io, const char *path, uint64_t off,
                          const uint8_t *buf, size_t len, bool trunc)
{
    char full[FL_PATH_MAX];
    posix_path(io, path, full);
    int fd = open(full, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            goto out_close;
        }
        done += (size_t)n;
    }
    if (fsync(fd) < 0)
        rc = -errno;
out_close:
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Writes len bytes at off (creating the file; emptying it first with
 * trunc), then fsync and close: 0 once the cluster acknowledged it. */
static int io_write_at(struct io *io, const char *path, uint64_t off,
                       const uint8_t *buf, size_t len, bool trunc)
{
    return io->d ? dfs_write_at(io->d, path, off, buf, len, trunc)
                 : posix_write_at(io, path, off, buf, len, trunc);
}

static int io_truncate(struct io *io, const char *path, uint64_t size)
{
    if (!io->d) {
        char full[FL_PATH_MAX];
        posix_path(io, path, full);
        return truncate(full, (off_t)size) < 0 ? -errno : 0;
    }
    struct dfs_attr a;
    int rc = dfs_resolve(io->d, path, &a);
    if (rc < 0)
        return rc;
    struct dfs_setattr set = { .valid = DFS_SET_SIZE, .size = size };
    return dfs_setattr(io->d, a.ino, &set, &a);
}

static int io_rename(struct io *io, const char *from, const char *to)
{
    if (!io->d) {
        char a[FL_PATH_MAX], b[FL_PATH_MAX];
        posix_path(io, from, a);
        posix_path(io, to, b);
        return rename(a, b) < 0 ? -errno : 0;
    }
    uint64_t p1, p2;
    const char *n1, *n2;
    int rc = dfs_parent(io->d, from, &p1, &n1);
    if (rc == 0)
        rc = dfs_parent(io->d, to, &p2, &n2);
    if (rc == 0)
        rc = dfs_rename(io->d, p1, n1, p2, n2, 0);
    return rc;
}

static int io_unlink(struct io *io, const char *path)
{
    if (!io->d) {
        char full[FL_PATH_MAX];
        posix_path(io, path, full);
        return unlink(full) < 0 ? -errno : 0;
    }
    uint64_t parent;
    const char *name;
    int rc = dfs_parent(io->d, path, &parent, &name);
    if (rc == 0)
        rc = dfs_unlink(io->d, parent, name);
    return rc;
}

/* 0 when path exists, -ENOENT when not, another error when unknown. */
static int io_exists(struct io *io, const char *path)
{
    if (!io->d) {
        char full[FL_PATH_MAX];
        struct stat st;
        posix_path(io, path, full);
        return stat(full, &st) < 0 ? -errno : 0;
    }
    struct dfs_attr a;
    return dfs_resolve(io->d, path, &a);
}

static int dfs_read_all(struct dfs *d, const char *path, uint8_t **out, size_t *len)
{
    struct dfs_attr a;
    int rc = dfs_resolve(d, path, &a);
    if (rc < 0)
        return rc;
    struct dfs_file *f;
    rc = dfs_file_open(d, a.ino, DFS_O_READ, &f, NULL);
    if (rc < 0)
        return rc;
    size_t cap = (size_t)a.size + 65536, got = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        rc = -ENOMEM;
        goto out_close;
    }
    for (;;) {
        if (got == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                goto out_close;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = dfs_file_pread(f, buf + got, cap - got, got);
        if (n < 0) {
            rc = (int)n;
            goto out_close;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
out_close:
    dfs_file_close(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = got;
    return 0;
}

static int posix_read_all(const struct io *io, const char *path, uint8_t **out,
                          size_t *len)
{
    char full[FL_PATH_MAX];
    posix_path(io, path, full);
    int fd = open(full, O_RDONLY);
    if (fd < 0)
        return -errno;
    size_t cap = 1 << 20, got = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (got == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        else if (n == 0)
            break;
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = got;
    return 0;
}

/* The whole content of path into *out (malloc'ed; the caller frees). */
static int io_read_all(struct io *io, const char *path, uint8_t **out, size_t *len)
{
    return io->d ? dfs_read_all(io->d, path, out, len)
                 : posix_read_all(io, path, out, len);
}

/* Names under dir, by callback ("." and ".." left out). */
typedef void (*io_name_fn)(const char *name, void *arg);

struct list_ctx {
    io_name_fn fn;
    void *arg;
};

static int list_entry(const struct dfs_dirent *e, void *arg)
{
    struct list_ctx *c = arg;
    if (strcmp(e->name, ".") && strcmp(e->name, ".."))
        c->fn(e->name, c->arg);
    return 0;
}

static int io_list(struct io *io, const char *dir, io_name_fn fn, void *arg)
{
    if (io->d) {
        struct dfs_attr a;
        int rc = dfs_resolve(io->d, dir, &a);
        if (rc < 0)
            return rc;
        struct list_ctx c = { fn, arg };
        return dfs_readdir(io->d, a.ino, 0, 0, list_entry, &c);
    }
    char full[FL_PATH_MAX];
    posix_path(io, dir, full);
    DIR *dp = opendir(full);
    if (!dp)
        return -errno;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fn(e->d_name, arg);
    }
    int rc = errno ? -errno : 0;
    closedir(dp);
    return rc;
}

/* The error, with libdfs's last transport message when there is one
 * (valid until the next call). */
static const char *io_strerror(struct io *io, int rc)
{
    const char *last = io->d ? dfs_last_error(io->d) : NULL;
    if (!last || !last[0])
        return dfs_strerror(rc);
    snprintf(io->msg, sizeof(io->msg), "%s (last: %s)", dfs_strerror(rc), last);
    return io->msg;
}

static int io_open(struct io *io, const char *dir)
{
    io->dir = dir;
    io->d = NULL;
    if (dir)
        return 0;
    log_init("faultload", LOG_ERROR, NULL);
    io->d = tsession_open("faultload", 20000);
    return io->d ? 0 : -ENOTCONN;
}

static void io_close(struct io *io)
{
    if (io->d)
        dfs_close(io->d);
    io->d = NULL;
}

/* ---- the model ---------------------------------------------------------- */

struct entry {
    char path[FL_PATH_MAX];
    bool present;
    bool uncertain;         /* never touched again (invariant 3) */
    uint8_t *data;          /* owned; len bytes of content */
    size_t len, cap;
};

struct model {
    struct entry *e;        /* owned; n names, 2 * files of them */
    int n;
    int files;              /* at most this many present at once */
};

static int model_init(struct model *m, const char *prefix, int files)
{
    m->files = files;
    m->n = 2 * files;
    m->e = calloc((size_t)m->n, sizeof(*m->e));
    if (!m->e)
        return -ENOMEM;
    for (int i = 0; i < m->n; i++)
        snprintf(m->e[i].path, FL_PATH_MAX, "%s/n%d", prefix, i);
    return 0;
}

static void model_release(struct model *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->e[i].data);
    free(m->e);
}

static int entry_reserve(struct entry *e, size_t len)
{
    if (len <= e->cap)
        return 0;
    size_t cap = e->cap ? e->cap : 65536;
    while (cap < len)
        cap *= 2;
    uint8_t *nb = realloc(e->data, cap);
    if (!nb)
        return -ENOMEM;
    e->data = nb;
    e->cap = cap;
    return 0;
}

/* "absent" or SIZE:SHA of an entry's content. */
static void entry_state(const struct entry *e, char *out, size_t outlen)
{
    if (!e->present) {
        snprintf(out, outlen, "absent");
        return;
    }
    char sha[FL_SHA_HEX];
    sha256_hex(e->data, e->len, sha);
    snprintf(out, outlen, "%zu:%s", e->len, sha);
}

/* ---- the record ---------------------------------------------------------- */

/* Appends one line and makes it durable before the next operation. */
static int record_line(FILE *rec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int record_line(FILE *rec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(rec, fmt, ap);
    va_end(ap);
    fputc('\n', rec);
    if (fflush(rec) != 0 || fsync(fileno(rec)) < 0) {
        fprintf(stderr, "faultload: writing the record: %s\n", strerror(errno));
        return -EIO;
    }
    return 0;
}

static int record_file(FILE *rec, const struct entry *e)
{
    char sha[FL_SHA_HEX];
    sha256_hex(e->data, e->len, sha);
    return record_line(rec, "file %s %zu %s", e->path, e->len, sha);
}

/* ---- operations ----------------------------------------------------------- */

enum op_kind { OP_CREATE, OP_OVERWRITE, OP_APPEND, OP_TRUNCATE, OP_RENAME,
               OP_DELETE, OP_READ, OP_KINDS };

static const char *const op_names[OP_KINDS] = {
    "create", "overwrite", "append", "truncate", "rename", "delete", "read",
};

/* Relative weights of the kinds. */
static const int op_weights[OP_KINDS] = { 18, 20, 14, 10, 10, 8, 20 };

struct op {
    enum op_kind kind;
    int a, b;               /* entry indexes: the file; b the rename target */
    uint64_t off;           /* write offset or truncate size */
    uint8_t *buf;           /* owned; len bytes to write */
    size_t len;
};

struct run {
    struct io io;
    struct model m;
    struct rng rng;
    FILE *rec;
    size_t max_size;
    double retry_s;
    /* SIGTERM and SIGINT stay blocked in every thread (no call is ever
     * interrupted) and are taken between operations: stop says one came. */
    sigset_t stopsigs;
    bool stop;
    /* figures */
    uint64_t ops, retried, bytes, uncertain, mismatches, failures;
    double longest;
};

/* A random entry index with present == want and not uncertain; -1 if none. */
static int pick_entry(struct run *r, bool want)
{
    int n = 0;
    for (int i = 0; i < r->m.n; i++)
        n += r->m.e[i].present == want && !r->m.e[i].uncertain;
    if (n == 0)
        return -1;
    int k = (int)rng_below(&r->rng, (uint64_t)n);
    for (int i = 0; i < r->m.n; i++) {
        if (r->m.e[i].present == want && !r->m.e[i].uncertain && k-- == 0)
            return i;
    }
    return -1;
}

static int count_present(const struct model *m)
{
    int n = 0;
    for (int i = 0; i < m->n; i++)
        n += m->e[i].present;
    return n;
}

/* Sizes: mostly small, some of a few MiB, a few up to max_size. */
static size_t pick_size(struct run *r, size_t limit)
{
    uint64_t p = rng_below(&r->rng, 100), s;
    if (p < 65)
        s = rng_below(&r->rng, 1 << 20);
    else if (p < 93)
        s = (1 << 20) + rng_below(&r->rng, 3 << 20);
    else
        s = rng_below(&r->rng, (uint64_t)r->max_size + 1);
    return s > limit ? limit : (size_t)s;
}

static enum op_kind pick_kind(struct run *r)
{
    int total = 0;
    for (int k = 0; k < OP_KINDS; k++)
        total += op_weights[k];
    int x = (int)rng_below(&r->rng, (uint64_t)total);
    for (int k = 0; k < OP_KINDS; k++) {
        if (x < op_weights[k])
            return (enum op_kind)k;
        x -= op_weights[k];
    }
    return OP_READ;
}

/* Fills in op's operands; returns false when the kind does not fit the
 * model now (the caller draws again). */
static bool plan_op(struct run *r, struct op *op)
{
    int present = count_present(&r->m);
    op->kind = present < r->m.files / 2 ? OP_CREATE : pick_kind(r);
    op->b = -1;
    if (op->kind == OP_CREATE) {
        if (present >= r->m.files)
            return false;
        op->a = pick_entry(r, false);
        op->off = 0;
        op->len = pick_size(r, r->max_size);
        return op->a >= 0;
    }
    op->a = pick_entry(r, true);
    if (op->a < 0)
        return false;
    const struct entry *e = &r->m.e[op->a];
    switch (op->kind) {
    case OP_OVERWRITE:
        op->off = rng_below(&r->rng, (uint64_t)e->len + 1);
        op->len = pick_size(r, r->max_size - (size_t)op->off);
        if (op->len > (1u << 20))
            op->len = (size_t)rng_below(&r->rng, 1 << 20);
        return op->off <= r->max_size;
    case OP_APPEND:
        op->off = e->len;
        if (e->len >= r->max_size)
            return false;
        op->len = 1 + (size_t)rng_below(&r->rng, r->max_size - e->len < (1u << 20)
                                                     ? r->max_size - e->len
                                                     : (1u << 20));
        return true;
    case OP_TRUNCATE:
        op->off = rng_below(&r->rng, (uint64_t)e->len + 262144);
        if (op->off > r->max_size)
            op->off = r->max_size;
        return true;
    case OP_RENAME:
        /* Onto a free name mostly, sometimes over another file. */
        op->b = rng_below(&r->rng, 3) ? pick_entry(r, false) : pick_entry(r, true);
        return op->b >= 0 && op->b != op->a;
    default:
        return true;
    }
}

/* One try of op against the cluster; retry says an earlier try failed. */
/* Where a read differs from the model: the first and last differing
 * offsets, how many bytes differ, and how many of those read as zeros. */
static void print_difference(const uint8_t *want, size_t wlen, const uint8_t *got,
                             size_t glen)
{
    size_t n = wlen < glen ? wlen : glen, first = SIZE_MAX, last = 0, diff = 0, zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (want[i] == got[i])
            continue;
        first = first == SIZE_MAX ? i : first;
        last = i;
        diff++;
        zeros += got[i] == 0;
    }
    if (diff)
        fprintf(stderr, "faultload:   bytes %zu..%zu differ (%zu of them, %zu read as zeros)\n",
                first, last, diff, zeros);
}

static int attempt(struct run *r, const struct op *op, bool retry)
{
    struct entry *a = &r->m.e[op->a];
    switch (op->kind) {
    case OP_CREATE:
        return io_write_at(&r->io, a->path, 0, op->buf, op->len, true);
    case OP_OVERWRITE:
    case OP_APPEND:
        return io_write_at(&r->io, a->path, op->off, op->buf, op->len, false);
    case OP_TRUNCATE:
        return io_truncate(&r->io, a->path, op->off);
    case OP_RENAME: {
        int rc = io_rename(&r->io, a->path, r->m.e[op->b].path);
        if (rc == -ENOENT && retry && io_exists(&r->io, a->path) == -ENOENT &&
            io_exists(&r->io, r->m.e[op->b].path) == 0)
            return 0;   /* the failed try took effect */
        return rc;
    }
    case OP_DELETE: {
        int rc = io_unlink(&r->io, a->path);
        return rc == -ENOENT && retry ? 0 : rc;
    }
    case OP_READ:
    default: {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = io_read_all(&r->io, a->path, &buf, &len);
        if (rc == 0 && (len != a->len || memcmp(buf, a->data, len))) {
            char want[FL_SHA_HEX], got[FL_SHA_HEX];
            sha256_hex(a->data, a->len, want);
            sha256_hex(buf, len, got);
            fprintf(stderr, "faultload: op %" PRIu64 " READ MISMATCH %s: expected %zu bytes "
                    "sha256 %s, read %zu bytes sha256 %s\n", r->ops, a->path, a->len, want,
                    len, got);
            print_difference(a->data, a->len, buf, len);
            r->mismatches++;
        }
        free(buf);
        return rc;
    }
    }
}

/* The content e holds after a data op (create, overwrite, append,
 * truncate) applied to it. */
static int entry_apply(struct entry *e, const struct op *op)
{
    size_t end = op->kind == OP_TRUNCATE ? (size_t)op->off : (size_t)op->off + op->len;
    size_t newlen = op->kind == OP_CREATE || op->kind == OP_TRUNCATE
                        ? end : (end > e->len ? end : e->len);
    if (entry_reserve(e, newlen) < 0)
        return -ENOMEM;
    size_t fill_to = op->kind == OP_TRUNCATE ? newlen : (size_t)op->off;
    if (op->kind != OP_CREATE && fill_to > e->len)
        memset(e->data + e->len, 0, fill_to - e->len);
    if (op->kind != OP_TRUNCATE && op->len)
        memcpy(e->data + op->off, op->buf, op->len);
    e->len = newlen;
    e->present = true;
    return 0;
}

/* The model after op succeeded, and its line in the record. */
static int apply_op(struct run *r, const struct op *op)
{
    struct entry *a = &r->m.e[op->a];
    switch (op->kind) {
    case OP_CREATE:
    case OP_OVERWRITE:
    case OP_APPEND:
    case OP_TRUNCATE:
        if (entry_apply(a, op) < 0)
            return -ENOMEM;
        if (op->kind != OP_TRUNCATE)
            r->bytes += op->len;
        return record_file(r->rec, a);
    case OP_RENAME: {
        /* The target takes the source's buffer; the source keeps the
         * target's old one, for reuse. */
        struct entry *b = &r->m.e[op->b];
        uint8_t *data = b->data;
        size_t cap = b->cap;
        b->data = a->data;
        b->cap = a->cap;
        b->len = a->len;
        b->present = true;
        a->data = data;
        a->cap = cap;
        a->len = 0;
        a->present = false;
        return record_line(r->rec, "rename %s %s", a->path, b->path);
    }
    case OP_DELETE:
        a->present = false;
        a->len = 0;
        return record_line(r->rec, "gone %s", a->path);
    default:
        return 0;
    }
}

/* The op gave up: what each touched name may now hold (invariant 3). */
static int give_up(struct run *r, const struct op *op)
{
    struct entry *a = &r->m.e[op->a];
    char before[96], after[96];
    entry_state(a, before, sizeof(before));
    int rc = 0;
    switch (op->kind) {
    case OP_READ:
        return 0;           /* a read changes nothing */
    case OP_RENAME: {
        struct entry *b = &r->m.e[op->b];
        entry_state(b, after, sizeof(after));
        rc = record_line(r->rec, "uncertain %s %s absent", a->path, before);
        if (rc == 0)
            rc = record_line(r->rec, "uncertain %s %s %s", b->path, after, before);
        b->uncertain = true;
        r->uncertain++;
        break;
    }
    case OP_DELETE:
        rc = record_line(r->rec, "uncertain %s %s absent", a->path, before);
        break;
    default: {
        /* The content the op would have left, worked out on a copy. */
        struct entry copy = { .present = a->present };
        if (entry_reserve(&copy, a->len) < 0)
            return -ENOMEM;
        if (a->len)
            memcpy(copy.data, a->data, a->len);
        copy.len = a->len;
        rc = entry_apply(&copy, op);
        if (rc == 0)
            entry_state(&copy, after, sizeof(after));
        free(copy.data);
        if (rc == 0)
            rc = record_line(r->rec, "uncertain %s %s %s", a->path, before, after);
        break;
    }
    }
    a->uncertain = true;
    r->uncertain++;
    return rc;
}

/* True once SIGTERM or SIGINT arrived; waits up to ms for one. */
static bool stop_requested(struct run *r, int ms)
{
    if (r->stop)
        return true;
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    if (sigtimedwait(&r->stopsigs, NULL, &ts) > 0)
        r->stop = true;
    return r->stop;
}

/* Runs op until it succeeds, retrying with bounded backoff.  A stop asked
 * for meanwhile leaves the op 10 s more to finish, then gives up. */
static int execute(struct run *r, struct op *op)
{
    double t0 = now_s(), deadline = t0 + r->retry_s;
    int backoff = 50, tries = 0;
    for (;;) {
        int rc = attempt(r, op, tries > 0);
        if (rc == 0)
            break;
        if (tries == 0)
            r->retried++;
        r->failures++;
        if (tries == 0 || tries % 10 == 0)
            fprintf(stderr, "faultload: op %" PRIu64 " %s %s: %s (try %d), retrying\n",
                    r->ops, op_names[op->kind], r->m.e[op->a].path,
                    io_strerror(&r->io, rc), tries + 1);
        tries++;
        if (r->stop && deadline > now_s() + 10)
            deadline = now_s() + 10;
        if (now_s() > deadline) {
            fprintf(stderr, "faultload: op %" PRIu64 " %s %s: gave up after %d tries: %s\n",
                    r->ops, op_names[op->kind], r->m.e[op->a].path, tries,
                    io_strerror(&r->io, rc));
            double dt = now_s() - t0;
            if (dt > r->longest)
                r->longest = dt;
            return give_up(r, op);
        }
        stop_requested(r, backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
    double dt = now_s() - t0;
    if (dt > r->longest)
        r->longest = dt;
    if (tries)
        fprintf(stderr, "faultload: op %" PRIu64 " %s %s: done after %d tries, %.2f s\n",
                r->ops, op_names[op->kind], r->m.e[op->a].path, tries + 1, dt);
    else if (dt > 5)
        fprintf(stderr, "faultload: op %" PRIu64 " %s %s: slow, %.2f s\n",
                r->ops, op_names[op->kind], r->m.e[op->a].path, dt);
    r->ops++;
    return apply_op(r, op);
}

/* ---- run ------------------------------------------------------------------ */

struct args {
    const char *cmd, *record, *dir, *prefix;
    uint64_t seed;
    double seconds, retry_s;
    int files, max_mib;
};

/* Before any thread starts, so that every thread inherits the mask. */
static void block_stop_signals(struct run *r)
{
    sigemptyset(&r->stopsigs);
    sigaddset(&r->stopsigs, SIGTERM);
    sigaddset(&r->stopsigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &r->stopsigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The prefix directory, retried like any operation. */
static int make_prefix(struct run *r, const char *prefix)
{
    double deadline = now_s() + r->retry_s;
    for (;;) {
        int rc = io_mkdirs(&r->io, prefix);
        if (rc == 0)
            return 0;
        if (stop_requested(r, 500) || now_s() > deadline) {
            fprintf(stderr, "faultload: mkdir %s: %s\n", prefix, io_strerror(&r->io, rc));
            return rc;
        }
    }
}

static void count_name(const char *name, void *arg)
{
    (void)name;
    (*(int *)arg)++;
}

/* A prefix already holding files would make the model wrong. */
static int check_prefix_empty(struct run *r, const char *prefix)
{
    int n = 0;
    int rc = io_list(&r->io, prefix, count_name, &n);
    if (rc < 0) {
        fprintf(stderr, "faultload: listing %s: %s\n", prefix, io_strerror(&r->io, rc));
        return rc;
    }
    if (n) {
        fprintf(stderr, "faultload: %s already holds %d names; give a fresh --prefix\n",
                prefix, n);
        return -EEXIST;
    }
    return 0;
}

static int cmd_run(const struct args *a)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    r.max_size = (size_t)a->max_mib << 20;
    r.retry_s = a->retry_s;
    rng_init(&r.rng, a->seed);
    block_stop_signals(&r);
    int status = 1;
    if (model_init(&r.m, a->prefix, a->files) < 0)
        return 1;
    r.rec = fopen(a->record, "a");
    if (!r.rec) {
        fprintf(stderr, "faultload: %s: %s\n", a->record, strerror(errno));
        goto out_model;
    }
    if (ftell(r.rec) > 0) {
        fprintf(stderr, "faultload: %s is not empty; each run needs a new record\n",
                a->record);
        goto out_rec;
    }
    if (io_open(&r.io, a->dir) < 0)
        goto out_rec;
    if (make_prefix(&r, a->prefix) < 0 || check_prefix_empty(&r, a->prefix) < 0)
        goto out_io;
    if (record_line(r.rec, "faultload 1 prefix=%s seed=%" PRIu64 " mode=%s", a->prefix,
                    a->seed, a->dir ? "posix" : "libdfs") < 0)
        goto out_io;
    double t0 = now_s(), end = t0 + a->seconds;
    status = 0;
    while (!stop_requested(&r, 0) && now_s() < end) {
        struct op op;
        memset(&op, 0, sizeof(op));
        if (!plan_op(&r, &op))
            continue;
        if (op.len) {
            op.buf = malloc(op.len);
            if (!op.buf) {
                status = 1;
                break;
            }
            rng_fill(&r.rng, op.buf, op.len);
        }
        int rc = execute(&r, &op);
        free(op.buf);
        if (rc < 0) {
            status = 1;
            break;
        }
    }
    printf("faultload: %" PRIu64 " ops done, %" PRIu64 " retried, %" PRIu64
           " bytes acknowledged, longest stall %.0f ms, %" PRIu64 " uncertain, %" PRIu64
           " read mismatches, %.1f s\n",
           r.ops, r.retried, r.bytes, r.longest * 1000, r.uncertain, r.mismatches,
           now_s() - t0);
    if (r.mismatches)
        status = 1;
out_io:
    io_close(&r.io);
out_rec:
    fclose(r.rec);
out_model:
    model_release(&r.m);
    return status;
}

/* ---- verify ----------------------------------------------------------------- */

enum { ST_ABSENT, ST_FILE, ST_UNCERTAIN };

struct cand {
    bool absent;
    uint64_t size;
    char sha[FL_SHA_HEX];
};

struct expect {
    char path[FL_PATH_MAX];
    int state;
    uint64_t size;
    char sha[FL_SHA_HEX];
    int ncand;              /* ST_UNCERTAIN: the candidates */
    struct cand cand[FL_MAX_CANDS];
    bool listed;
};

struct expects {
    struct expect *v;       /* owned */
    size_t n, cap;
    char prefix[FL_PATH_MAX];
};

static struct expect *expect_get(struct expects *x, const char *path)
{
    for (size_t i = 0; i < x->n; i++) {
        if (!strcmp(x->v[i].path, path))
            return &x->v[i];
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        struct expect *nv = realloc(x->v, cap * sizeof(*nv));
        if (!nv)
            return NULL;
        x->v = nv;
        x->cap = cap;
    }
    struct expect *e = &x->v[x->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->path, sizeof(e->path), "%s", path);
    e->state = ST_ABSENT;
    return e;
}

static int parse_cand(struct expect *e, const char *tok)
{
    if (e->ncand >= FL_MAX_CANDS)
        return -EINVAL;
    struct cand *c = &e->cand[e->ncand];
    memset(c, 0, sizeof(*c));
    if (!strcmp(tok, "absent")) {
        c->absent = true;
    } else if (sscanf(tok, "%" SCNu64 ":%64s", &c->size, c->sha) != 2) {
        return -EINVAL;
    }
    e->ncand++;
    return 0;
}

static int parse_line(struct expects *x, char *line)
{
    char *save = NULL, *kw = strtok_r(line, " \n", &save);
    if (!kw || kw[0] == '#')
        return 0;
    char *p1 = strtok_r(NULL, " \n", &save);
    if (!strcmp(kw, "faultload")) {
        char *t;
        while ((t = strtok_r(NULL, " \n", &save)) != NULL) {
            if (!strncmp(t, "prefix=", 7))
                snprintf(x->prefix, sizeof(x->prefix), "%s", t + 7);
        }
        return 0;
    }
    if (!p1)
        return -EINVAL;
    struct expect *e = expect_get(x, p1);
    if (!e)
        return -ENOMEM;
    if (!strcmp(kw, "file")) {
        char *sz = strtok_r(NULL, " \n", &save), *sha = strtok_r(NULL, " \n", &save);
        if (!sz || !sha || strlen(sha) != 64)
            return -EINVAL;
        e->state = ST_FILE;
        e->size = strtoull(sz, NULL, 10);
        snprintf(e->sha, sizeof(e->sha), "%s", sha);
        return 0;
    }
    if (!strcmp(kw, "gone")) {
        e->state = ST_ABSENT;
        return 0;
    }
    if (!strcmp(kw, "rename")) {
        char *to = strtok_r(NULL, " \n", &save);
        if (!to)
            return -EINVAL;
        struct expect saved = *e;
        struct expect *t = expect_get(x, to);
        if (!t)
            return -ENOMEM;
        e = expect_get(x, p1);  /* the array may have moved */
        char tpath[FL_PATH_MAX];
        snprintf(tpath, sizeof(tpath), "%s", t->path);
        *t = saved;
        snprintf(t->path, sizeof(t->path), "%s", tpath);
        e->state = ST_ABSENT;
        return 0;
    }
    if (!strcmp(kw, "uncertain")) {
        e->state = ST_UNCERTAIN;
        e->ncand = 0;
        char *t;
        while ((t = strtok_r(NULL, " \n", &save)) != NULL) {
            if (parse_cand(e, t) < 0)
                return -EINVAL;
        }
        return e->ncand ? 0 : -EINVAL;
    }
    return -EINVAL;
}

static int load_record(const char *path, struct expects *x)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "faultload: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        /* A run killed mid-line leaves a last line without its newline:
         * that result was never acknowledged to anyone. */
        if (!strchr(line, '\n') && feof(f))
            break;
        rc = parse_line(x, line);
        if (rc < 0) {
            fprintf(stderr, "faultload: %s:%d: bad record line\n", path, lineno);
            break;
        }
    }
    fclose(f);
    if (rc == 0 && !x->prefix[0]) {
        fprintf(stderr, "faultload: %s has no header line\n", path);
        rc = -EINVAL;
    }
    return rc;
}

struct verify {
    struct io io;
    struct expects x;
    uint64_t files, bytes, lost, lost_bytes, uncertain, differ;
};

/* Reads path, retrying transient errors for a while: a verifier that
 * runs right after a fault must not call a slow answer a loss. */
static int read_retrying(struct verify *v, const char *path, uint8_t **buf, size_t *len)
{
    double deadline = now_s() + 60;
    for (;;) {
        int rc = io_read_all(&v->io, path, buf, len);
        if (rc == 0 || rc == -ENOENT || now_s() > deadline)
            return rc;
        fprintf(stderr, "faultload: reading %s: %s, retrying\n", path,
                io_strerror(&v->io, rc));
        sleep_ms(1000);
    }
}

static void verify_uncertain(struct verify *v, struct expect *e, int rc,
                             const char *sha, size_t len)
{
    v->uncertain++;
    for (int i = 0; i < e->ncand; i++) {
        if (e->cand[i].absent ? rc == -ENOENT
                              : rc == 0 && e->cand[i].size == len &&
                                    !strcmp(e->cand[i].sha, sha)) {
            printf("faultload: uncertain %s: holds candidate %d of %d\n", e->path,
                   i + 1, e->ncand);
            return;
        }
    }
    printf("faultload: uncertain %s: matches none of its %d candidates (%s); "
           "skipped\n", e->path, e->ncand, rc == 0 ? "present" : dfs_strerror(rc));
}

static void verify_one(struct verify *v, struct expect *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char sha[FL_SHA_HEX] = "";
    int rc = read_retrying(v, e->path, &buf, &len);
    if (rc == 0)
        sha256_hex(buf, len, sha);
    free(buf);
    if (e->state == ST_UNCERTAIN) {
        verify_uncertain(v, e, rc, sha, len);
        return;
    }
    if (e->state == ST_ABSENT) {
        if (rc != -ENOENT) {
            printf("faultload: DIFFERS %s: should be absent (deleted or renamed away), "
                   "%s\n", e->path, rc == 0 ? "exists" : dfs_strerror(rc));
            v->differ++;
        }
        return;
    }
    if (rc < 0) {
        printf("faultload: LOST %s: %" PRIu64 " bytes sha256 %s expected, read: %s\n",
               e->path, e->size, e->sha, io_strerror(&v->io, rc));
        v->lost++;
        v->lost_bytes += e->size;
        return;
    }
    if (len != e->size || strcmp(sha, e->sha)) {
        printf("faultload: LOST %s: expected %" PRIu64 " bytes sha256 %s, found %zu "
               "bytes sha256 %s\n", e->path, e->size, e->sha, len, sha);
        v->lost++;
        v->lost_bytes += e->size;
        return;
    }
    v->files++;
    v->bytes += len;
}

static void see_listed(const char *name, void *arg)
{
    struct verify *v = arg;
    char path[2 * FL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", v->x.prefix, name);
    for (size_t i = 0; i < v->x.n; i++) {
        if (!strcmp(v->x.v[i].path, path)) {
            v->x.v[i].listed = true;
            return;
        }
    }
    printf("faultload: DIFFERS %s: unexpected name (never written by this run)\n", path);
    v->differ++;
}

static int cmd_verify(const struct args *a)
{
    struct verify v;
    memset(&v, 0, sizeof(v));
    int status = 1;
    if (load_record(a->record, &v.x) < 0)
        goto out;
    if (io_open(&v.io, a->dir) < 0)
        goto out;
    for (size_t i = 0; i < v.x.n; i++)
        verify_one(&v, &v.x.v[i]);
    int rc = io_list(&v.io, v.x.prefix, see_listed, &v);
    if (rc < 0) {
        printf("faultload: DIFFERS %s: cannot list: %s\n", v.x.prefix,
               io_strerror(&v.io, rc));
        v.differ++;
    }
    for (size_t i = 0; i < v.x.n; i++) {
        struct expect *e = &v.x.v[i];
        if (rc == 0 && e->state == ST_FILE && !e->listed) {
            printf("faultload: DIFFERS %s: readable but not listed in %s\n", e->path,
                   v.x.prefix);
            v.differ++;
        }
    }
    printf("verified %" PRIu64 " files, %" PRIu64 " bytes, lost %" PRIu64 ", uncertain %"
           PRIu64 "\n", v.files, v.bytes, v.lost, v.uncertain);
    if (v.lost || v.differ)
        printf("faultload: %" PRIu64 " bytes lost, %" PRIu64 " other differences\n",
               v.lost_bytes, v.differ);
    status = v.lost || v.differ ? 1 : 0;
    io_close(&v.io);
out:
    free(v.x.v);
    return status;
}

/* ---- command line ------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
        "usage: faultload run --record FILE --seed N --seconds S [--dir MNT]\n"
        "                     [--prefix /fl] [--files K] [--max-mib M] [--retry-s R]\n"
        "       faultload verify --record FILE [--dir MNT]\n"
        "\n"
        "run: writes, overwrites, appends, truncates, renames, deletes and reads\n"
        "back files under --prefix (default /fl) for S seconds, through libdfs\n"
        "(DFS_MASTERS, DFS_KEY_FILE) or POSIX calls under the mount MNT, and\n"
        "appends each acknowledged result to FILE (a new file).  A failed\n"
        "operation is retried for up to R seconds (default 120), then its names\n"
        "are recorded as uncertain.  K files at most at once (default 8), each\n"
        "up to M MiB (default 6).  Every choice comes from --seed.\n"
        "SIGTERM/SIGINT stop it after the current operation.\n"
        "verify: checks every file FILE says must exist (size and SHA-256), that\n"
        "deleted and renamed-away names are absent, and that the prefix holds\n"
        "nothing else; prints 'verified N files, B bytes, lost L, uncertain U'\n"
        "and exits 1 on any loss or difference.\n");
}

static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof(*a));
    a->prefix = "/fl";
    a->files = 8;
    a->max_mib = 6;
    a->retry_s = 120;
    a->seconds = -1;
    bool have_seed = false;
    if (argc < 2)
        return -1;
    a->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return -1;
        i++;
        if (!strcmp(k, "--record"))
            a->record = val;
        else if (!strcmp(k, "--seed"))
            a->seed = strtoull(val, NULL, 0), have_seed = true;
        else if (!strcmp(k, "--seconds"))
            a->seconds = atof(val);
        else if (!strcmp(k, "--dir"))
            a->dir = val;
        else if (!strcmp(k, "--prefix"))
            a->prefix = val;
        else if (!strcmp(k, "--files"))
            a->files = atoi(val);
        else if (!strcmp(k, "--max-mib"))
            a->max_mib = atoi(val);
        else if (!strcmp(k, "--retry-s"))
            a->retry_s = atof(val);
        else
            return -1;
    }
    if (!a->record)
        return -1;
    if (!strcmp(a->cmd, "verify"))
        return 0;
    if (strcmp(a->cmd, "run") || !have_seed || a->seconds < 0 || a->files < 1 ||
        a->files > 1000 || a->max_mib < 1 || a->max_mib > 1024 || a->prefix[0] != '/' ||
        strlen(a->prefix) > 200 || a->prefix[strlen(a->prefix) - 1] == '/')
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    }
    struct args a;
    if (parse_args(argc, argv, &a) < 0) {
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    return !strcmp(a.cmd, "run") ? cmd_run(&a) : cmd_verify(&a);
}
