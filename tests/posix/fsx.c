/*
 * fsx: a random-operation exerciser of a file system's data path, in the
 * spirit of the classic fsx, run by tests/posix/run.sh on a dfs mount.
 *
 *   fsx [-N ops] [-S seed] [-l maxlen] [-o maxop] [-c chunk] [-b bounds]
 *       [-M] [-D] [-1] [-x op,...] [-q] PATH...
 *
 * Owns one in-memory model per file (sparse pages) and a log of the last
 * operations.  Every operation is drawn from one seeded generator, so a
 * failing run replays with -S SEED and the same options (the same
 * operations; what the file system's timing and the concurrent read's
 * interleaving do may differ); the seed is printed first.  Operations: pwrite, pread, append (an O_APPEND
 * descriptor), ftruncate and truncate(2) up and down, fsync/fdatasync,
 * close and reopen (sometimes O_TRUNC, sometimes O_DIRECT for the reader),
 * mmap reads and writes, dropping the page cache (so reads reach the
 * daemon and its read-ahead), sequential reads in pieces, fstat/stat
 * sizes, and a read on one descriptor in a second thread while a write
 * runs on another.  Offsets fall uniformly below maxlen or right around
 * the chunk boundaries chunk * k (k = 1..bounds), which makes sparse files
 * spanning several chunks without writing all of them.
 *
 * Invariants checked:
 *  1. Every read (pread, mmap, sequential, concurrent) returns exactly the
 *     model's bytes, and exactly up to the model's size (no short read
 *     before EOF, nothing past it).
 *  2. fstat and stat report the model's size.
 *  3. Every write, append and truncate succeeds completely.
 * A violation prints the seed, the operation number, the last FSX_LOG
 * operations, the offset and the first differing bytes, and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FSX_PAGE (64u << 10)        /* the model's page */
#define FSX_LOG 20                  /* operations shown on a failure */
#define FSX_MAX_FILES 4
#define FSX_MIB (1ull << 20)

enum fsx_op {
    OP_READ, OP_WRITE, OP_APPEND, OP_FTRUNC, OP_TRUNC, OP_FSYNC, OP_REOPEN,
    OP_MAPREAD, OP_MAPWRITE, OP_DROP, OP_SEQREAD, OP_CONCURRENT, OP_STAT,
    OP_COUNT
};

static const char *const op_name[OP_COUNT] = {
    "read", "write", "append", "ftruncate", "truncate", "fsync", "reopen",
    "mapread", "mapwrite", "dropcache", "seqread", "concurrent", "stat",
};

/* Relative frequencies; reopen and fsync cost master round trips. */
static const unsigned op_weight[OP_COUNT] = {
    [OP_READ] = 30, [OP_WRITE] = 30, [OP_APPEND] = 6, [OP_FTRUNC] = 5,
    [OP_TRUNC] = 2, [OP_FSYNC] = 3, [OP_REOPEN] = 1, [OP_MAPREAD] = 4,
    [OP_MAPWRITE] = 3, [OP_DROP] = 6, [OP_SEQREAD] = 2, [OP_CONCURRENT] = 4,
    [OP_STAT] = 4,
};

struct fsx_opts {
    uint64_t nops;
    uint64_t seed;
    uint64_t maxlen;                /* uniform offsets fall below it */
    uint64_t maxop;                 /* longest read or write */
    uint64_t chunk;
    unsigned bounds;                /* chunk boundaries 1..bounds used */
    bool no_mmap, no_direct, quiet;
    bool one_fd;                    /* -1: everything through one open */
    unsigned weight[OP_COUNT];      /* op_weight, minus what -x excludes */
    char exclude[256];              /* -x as given, for the replay line */
};

/* A sparse byte array: NULL pages are zeros. */
struct model {
    uint64_t size;
    uint8_t **page;
    size_t npages;
};

struct fsx_file {
    const char *path;
    int rw, ro, app;                /* O_RDWR, O_RDONLY, O_WRONLY|O_APPEND */
    bool ro_direct;
    struct model m;
};

struct logent {
    uint64_t n;
    enum fsx_op op;
    int file;
    uint64_t off, len, size_after;
    char note[48];
};

struct fsx {
    struct fsx_opts o;
    uint64_t rng;
    uint64_t opn;                   /* the operation being done, from 1 */
    struct fsx_file file[FSX_MAX_FILES];
    int nfiles;
    struct logent log[FSX_LOG];
    size_t bufsize;                 /* maxop and two pages, whole pages */
    uint8_t *buf, *buf2;            /* bufsize each */
    uint8_t *pattern;               /* 1 + i % 251, bufsize + 251 long */
    long pagesize;
    uint64_t count[OP_COUNT];
};

/* ---- random numbers (splitmix64: identical on every platform) ----------- */

static uint64_t rnd(struct fsx *x)
{
    uint64_t z = (x->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(struct fsx *x, uint64_t n)
{
    return n ? rnd(x) % n : 0;
}

static bool one_in(struct fsx *x, uint64_t n)
{
    return below(x, n) == 0;
}

/* ---- the model ------------------------------------------------------------ */

static void model_grow(struct model *m, uint64_t end)
{
    size_t need = (size_t)((end + FSX_PAGE - 1) / FSX_PAGE);
    if (need <= m->npages)
        return;
    uint8_t **p = realloc(m->page, need * sizeof(*p));
    if (!p) {
        perror("fsx: model");
        exit(2);
    }
    memset(p + m->npages, 0, (need - m->npages) * sizeof(*p));
    m->page = p;
    m->npages = need;
}

static void model_write(struct model *m, uint64_t off, const uint8_t *data,
                        uint64_t len)
{
    model_grow(m, off + len);
    for (uint64_t done = 0; done < len;) {
        uint64_t pos = off + done;
        size_t pg = (size_t)(pos / FSX_PAGE), in = (size_t)(pos % FSX_PAGE);
        size_t n = FSX_PAGE - in;
        if (n > len - done)
            n = (size_t)(len - done);
        if (!m->page[pg]) {
            m->page[pg] = calloc(1, FSX_PAGE);
            if (!m->page[pg]) {
                perror("fsx: model");
                exit(2);
            }
        }
        memcpy(m->page[pg] + in, data + done, n);
        done += n;
    }
    if (off + len > m->size)
        m->size = off + len;
}

/* The model's bytes [off, off + len), zeros past its size. */
static void model_read(const struct model *m, uint64_t off, uint8_t *out,
                       uint64_t len)
{
    for (uint64_t done = 0; done < len;) {
        uint64_t pos = off + done;
        size_t pg = (size_t)(pos / FSX_PAGE), in = (size_t)(pos % FSX_PAGE);
        size_t n = FSX_PAGE - in;
        if (n > len - done)
            n = (size_t)(len - done);
        if (pos < m->size && pg < m->npages && m->page[pg])
            memcpy(out + done, m->page[pg] + in, n);
        else
            memset(out + done, 0, n);
        done += n;
    }
    /* Nothing past the size, whatever a page holds there. */
    if (off + len > m->size) {
        uint64_t from = off > m->size ? off : m->size;
        memset(out + (from - off), 0, (size_t)(off + len - from));
    }
}

static void model_truncate(struct model *m, uint64_t size)
{
    if (size < m->size) {
        /* Zero the tail of the page the new end falls in; free the rest. */
        size_t keep = (size_t)((size + FSX_PAGE - 1) / FSX_PAGE);
        if (size % FSX_PAGE && keep - 1 < m->npages && m->page[keep - 1])
            memset(m->page[keep - 1] + size % FSX_PAGE, 0,
                   FSX_PAGE - size % FSX_PAGE);
        for (size_t i = keep; i < m->npages; i++) {
            free(m->page[i]);
            m->page[i] = NULL;
        }
    }
    m->size = size;
}

static void model_free(struct model *m)
{
    for (size_t i = 0; i < m->npages; i++)
        free(m->page[i]);
    free(m->page);
    memset(m, 0, sizeof(*m));
}

/* ---- the log and failures ------------------------------------------------- */

static struct logent *log_op(struct fsx *x, enum fsx_op op, int file,
                             uint64_t off, uint64_t len)
{
    struct logent *e = &x->log[x->opn % FSX_LOG];
    *e = (struct logent){ .n = x->opn, .op = op, .file = file, .off = off,
                          .len = len, .size_after = x->file[file].m.size };
    x->count[op]++;
    return e;
}

static void log_dump(const struct fsx *x)
{
    fprintf(stderr, "fsx: the last operations (n op file offset length -> size):\n");
    uint64_t first = x->opn >= FSX_LOG ? x->opn - FSX_LOG + 1 : 1;
    for (uint64_t n = first; n <= x->opn; n++) {
        const struct logent *e = &x->log[n % FSX_LOG];
        if (e->n != n)
            continue;
        fprintf(stderr, "  %7" PRIu64 " %-10s f%d 0x%09" PRIx64 " 0x%07" PRIx64
                " -> 0x%09" PRIx64 " %s\n", e->n, op_name[e->op], e->file, e->off,
                e->len, e->size_after, e->note);
    }
}

static void fail(struct fsx *x, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fsx: FAIL at operation %" PRIu64 " (seed %" PRIu64 "): ",
            x->opn, x->o.seed);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    log_dump(x);
    fprintf(stderr, "fsx: replay: fsx -S %" PRIu64 " -N %" PRIu64 " -l %" PRIu64
            " -o %" PRIu64 " -c %" PRIu64 " -b %u%s%s%s%s PATH...\n", x->o.seed,
            x->opn, x->o.maxlen, x->o.maxop, x->o.chunk, x->o.bounds,
            x->o.no_mmap ? " -M" : "", x->o.no_direct ? " -D" : "",
            x->o.one_fd ? " -1" : "", x->o.exclude);
    exit(1);
}

static void fail_errno(struct fsx *x, const char *what, int fi)
{
    int e = errno;
    fail(x, "%s of %s: %s", what, x->file[fi].path, strerror(e));
}

/* What a second read of [off, off + len) through fd, after dropping the
 * page cache, says about a mismatch: whether the file system itself or
 * only the kernel's cached pages hold the wrong bytes. */
static const char *reread_verdict(struct fsx *x, int fd, uint64_t off,
                                  const uint8_t *got, uint64_t len)
{
    uint8_t *again = aligned_alloc((size_t)x->pagesize, x->bufsize);
    if (!again)
        return "not read again (no memory)";
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ssize_t n = pread(fd, again, (size_t)len, (off_t)off);
    const char *v;
    if (n != (ssize_t)len)
        v = "read again after dropping the page cache: short or failed";
    else if (memcmp(again, x->buf2, (size_t)len) == 0)
        v = "read again after dropping the page cache: right (stale cached pages)";
    else if (memcmp(again, got, (size_t)len) == 0)
        v = "read again after dropping the page cache: the same wrong bytes";
    else
        v = "read again after dropping the page cache: other wrong bytes";
    free(again);
    return v;
}

/* Compares got, read through fd, with the model's bytes at off; reports
 * the first difference. */
static void verify(struct fsx *x, int fi, int fd, const char *how, uint64_t off,
                   const uint8_t *got, uint64_t len)
{
    model_read(&x->file[fi].m, off, x->buf2, len);
    if (memcmp(got, x->buf2, len) == 0)
        return;
    uint64_t i = 0, last = 0, bad = 0;
    while (got[i] == x->buf2[i])
        i++;
    for (uint64_t k = i; k < len; k++) {
        if (got[k] != x->buf2[k]) {
            bad++;
            last = k;
        }
    }
    char want[64] = "", have[64] = "";
    for (uint64_t k = i; k < i + 16 && k < len; k++) {
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%02x", x->buf2[k]);
        snprintf(have + strlen(have), sizeof(have) - strlen(have), "%02x", got[k]);
    }
    fail(x, "%s of f%d (%s) [0x%" PRIx64 ", +0x%" PRIx64 "): first difference "
         "at offset 0x%" PRIx64 ", last at 0x%" PRIx64 " (%" PRIu64 " bytes differ;"
         " size 0x%" PRIx64 ")\n  want %s\n  got  %s\n  %s", how, fi,
         x->file[fi].path, off, len, off + i, off + last, bad, x->file[fi].m.size,
         want, have, reread_verdict(x, fd, off, got, len));
}

/* ---- descriptors ----------------------------------------------------------- */

static void file_open(struct fsx *x, int fi, bool trunc)
{
    struct fsx_file *f = &x->file[fi];
    f->rw = open(f->path, O_RDWR | O_CREAT | (trunc ? O_TRUNC : 0), 0644);
    if (f->rw < 0)
        fail_errno(x, "open O_RDWR", fi);
    if (x->o.one_fd) {
        /* Duplicates share the open, hence the mount's handle. */
        f->ro_direct = false;
        f->ro = dup(f->rw);
        f->app = dup(f->rw);
        if (f->ro < 0 || f->app < 0)
            fail_errno(x, "dup", fi);
        if (trunc)
            model_truncate(&f->m, 0);
        return;
    }
    int direct = f->ro_direct ? O_DIRECT : 0;
    f->ro = open(f->path, O_RDONLY | direct);
    if (f->ro < 0 && direct && errno == EINVAL) {
        f->ro_direct = false;           /* the file system refuses O_DIRECT */
        f->ro = open(f->path, O_RDONLY);
    }
    if (f->ro < 0)
        fail_errno(x, "open O_RDONLY", fi);
    f->app = open(f->path, O_WRONLY | O_APPEND);
    if (f->app < 0)
        fail_errno(x, "open O_APPEND", fi);
    if (trunc)
        model_truncate(&f->m, 0);
}

static void file_close(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    int fds[3] = { f->app, f->ro, f->rw };
    for (int i = 0; i < 3; i++) {
        if (close(fds[i]) != 0)
            fail_errno(x, "close", fi);
    }
    f->rw = f->ro = f->app = -1;
}

/* ---- choosing offsets and lengths ---------------------------------------- */

/* An offset below maxlen, or within maxop of a chunk boundary. */
static uint64_t pick_off(struct fsx *x)
{
    uint64_t off;
    if (x->o.bounds && one_in(x, 4)) {
        uint64_t b = x->o.chunk * (1 + below(x, x->o.bounds));
        off = b - x->o.maxop + below(x, 2 * x->o.maxop);
    } else {
        off = below(x, x->o.maxlen);
    }
    if (one_in(x, 4))
        off &= ~(uint64_t)(x->pagesize - 1);
    return off;
}

static uint64_t pick_len(struct fsx *x)
{
    if (one_in(x, 8))
        return 1 + below(x, 64);
    uint64_t len = 1 + below(x, x->o.maxop);
    if (one_in(x, 4) && len >= (uint64_t)x->pagesize)
        len &= ~(uint64_t)(x->pagesize - 1);
    return len;
}

/* An offset to read from: mostly inside the file, near its boundaries
 * when it reaches them, sometimes at or past its end. */
static uint64_t pick_read_off(struct fsx *x, int fi)
{
    uint64_t size = x->file[fi].m.size;
    if (size == 0 || one_in(x, 20))
        return pick_off(x);
    if (x->o.bounds && one_in(x, 3)) {
        uint64_t k = 1 + below(x, x->o.bounds);
        if (x->o.chunk * k < size) {
            uint64_t b = x->o.chunk * k;
            uint64_t lo = b > x->o.maxop ? b - x->o.maxop : 0;
            return lo + below(x, b - lo + x->o.maxop / 2);
        }
    }
    if (one_in(x, 8))
        return size > x->o.maxop ? size - below(x, x->o.maxop) : below(x, size);
    uint64_t off = below(x, size);
    if (one_in(x, 4))
        off &= ~(uint64_t)(x->pagesize - 1);
    return off;
}

/* Fills x->buf with the data operation x->opn writes at off: never zero,
 * and different for every operation and offset. */
static void fill(struct fsx *x, uint64_t off, uint64_t len)
{
    memcpy(x->buf, x->pattern + (x->opn * 31 + off) % 251, (size_t)len);
}

/* ---- operations ------------------------------------------------------------- */

/* pread of [off, off + len) through fd, checked: exactly up to the size. */
static void checked_pread(struct fsx *x, int fi, int fd, const char *how,
                          uint64_t off, uint64_t len)
{
    if (fd == x->file[fi].ro && x->file[fi].ro_direct) {
        /* O_DIRECT may want whole pages (local file systems do). */
        uint64_t ps = (uint64_t)x->pagesize, end = off + len;
        off &= ~(ps - 1);
        len = ((end + ps - 1) & ~(ps - 1)) - off;
    }
    uint64_t size = x->file[fi].m.size;
    uint64_t want = off >= size ? 0 : (size - off < len ? size - off : len);
    ssize_t n = pread(fd, x->buf, (size_t)len, (off_t)off);
    if (n < 0)
        fail_errno(x, how, fi);
    if ((uint64_t)n != want)
        fail(x, "%s of f%d [0x%" PRIx64 ", +0x%" PRIx64 "): %zd bytes, want %"
             PRIu64 " (size 0x%" PRIx64 ")", how, fi, off, len, n, want, size);
    verify(x, fi, fd, how, off, x->buf, want);
}

static int reader_fd(struct fsx *x, int fi)
{
    return one_in(x, 2) ? x->file[fi].rw : x->file[fi].ro;
}

static void op_read(struct fsx *x, int fi)
{
    uint64_t off = pick_read_off(x, fi), len = pick_len(x);
    int fd = reader_fd(x, fi);
    struct logent *e = log_op(x, OP_READ, fi, off, len);
    snprintf(e->note, sizeof(e->note), "%s", fd == x->file[fi].rw ? "rw" : "ro");
    checked_pread(x, fi, fd, "read", off, len);
}

static void checked_pwrite(struct fsx *x, int fi, int fd, uint64_t off,
                           uint64_t len)
{
    ssize_t n = pwrite(fd, x->buf, (size_t)len, (off_t)off);
    if (n < 0)
        fail_errno(x, "write", fi);
    if ((uint64_t)n != len)
        fail(x, "write of f%d [0x%" PRIx64 ", +0x%" PRIx64 "): %zd bytes", fi, off,
             len, n);
    model_write(&x->file[fi].m, off, x->buf, len);
}

static void op_write(struct fsx *x, int fi)
{
    uint64_t off = pick_off(x), len = pick_len(x);
    log_op(x, OP_WRITE, fi, off, len);
    fill(x, off, len);
    checked_pwrite(x, fi, x->file[fi].rw, off, len);
}

static void op_append(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    uint64_t off = f->m.size, len = pick_len(x);
    if (off + len > x->o.maxlen && !one_in(x, 8)) {
        op_write(x, fi);            /* keep most files below maxlen */
        return;
    }
    log_op(x, OP_APPEND, fi, off, len);
    fill(x, off, len);
    ssize_t n = x->o.one_fd ? pwrite(f->app, x->buf, (size_t)len, (off_t)off)
                            : write(f->app, x->buf, (size_t)len);
    if (n < 0)
        fail_errno(x, "append", fi);
    if ((uint64_t)n != len)
        fail(x, "append to f%d: %zd of %" PRIu64 " bytes", fi, n, len);
    model_write(&f->m, off, x->buf, len);
    off_t at = lseek(f->app, 0, SEEK_CUR);
    if (!x->o.one_fd && at != (off_t)(off + len))
        fail(x, "append to f%d: the offset is 0x%jx after it, want 0x%" PRIx64,
             fi, (intmax_t)at, off + len);
}

static void op_truncate(struct fsx *x, int fi, bool by_path)
{
    struct fsx_file *f = &x->file[fi];
    uint64_t size = one_in(x, 10) ? 0 : pick_off(x);
    struct logent *e = log_op(x, by_path ? OP_TRUNC : OP_FTRUNC, fi, size, 0);
    snprintf(e->note, sizeof(e->note), "%s", size < f->m.size ? "down" : "up");
    int rc = by_path ? truncate(f->path, (off_t)size) : ftruncate(f->rw, (off_t)size);
    if (rc != 0)
        fail_errno(x, by_path ? "truncate" : "ftruncate", fi);
    model_truncate(&f->m, size);
}

static void op_fsync(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    int fd = one_in(x, 3) ? f->app : f->rw;
    bool data = one_in(x, 2);
    struct logent *e = log_op(x, OP_FSYNC, fi, 0, 0);
    snprintf(e->note, sizeof(e->note), "%s %s", data ? "fdatasync" : "fsync",
             fd == f->rw ? "rw" : "app");
    if ((data ? fdatasync(fd) : fsync(fd)) != 0)
        fail_errno(x, "fsync", fi);
}

static void op_reopen(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    bool trunc = one_in(x, 10);
    f->ro_direct = !x->o.no_direct && one_in(x, 3);
    struct logent *e = log_op(x, OP_REOPEN, fi, 0, 0);
    file_close(x, fi);
    file_open(x, fi, trunc);
    snprintf(e->note, sizeof(e->note), "%s%s", trunc ? "O_TRUNC " : "",
             f->ro_direct ? "ro O_DIRECT" : "");
}

/*
 * A mapping's access past what the kernel takes as the end of the file
 * raises SIGBUS; the handler jumps back so that the failure is reported
 * with the log.  Signal handlers reach nothing else, hence these two.
 */
static sigjmp_buf map_jump;
static volatile sig_atomic_t map_armed;

static void on_sigbus(int sig)
{
    if (map_armed)
        siglongjmp(map_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* memcpy between a mapping and x->buf; false when it raised SIGBUS. */
static bool map_copy(void *dst, const void *src, size_t len)
{
    if (sigsetjmp(map_jump, 1)) {
        map_armed = 0;
        return false;
    }
    map_armed = 1;
    memcpy(dst, src, len);
    map_armed = 0;
    return true;
}

static void op_mapread(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    if (f->m.size == 0 || f->ro_direct) {
        op_read(x, fi);
        return;
    }
    uint64_t off = below(x, f->m.size), len = pick_len(x);
    if (len > f->m.size - off)
        len = f->m.size - off;
    log_op(x, OP_MAPREAD, fi, off, len);
    uint64_t pg = off & ~(uint64_t)(x->pagesize - 1);
    size_t maplen = (size_t)(off + len - pg);
    uint8_t *p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, f->ro, (off_t)pg);
    if (p == MAP_FAILED)
        fail_errno(x, "mmap for reading", fi);
    if (!map_copy(x->buf, p + (off - pg), (size_t)len))
        fail(x, "mapread of f%d [0x%" PRIx64 ", +0x%" PRIx64 "): SIGBUS (size "
             "0x%" PRIx64 ")", fi, off, len, f->m.size);
    munmap(p, maplen);
    verify(x, fi, f->ro, "mapread", off, x->buf, len);
}

static void op_mapwrite(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    uint64_t off = pick_off(x), len = pick_len(x);
    struct logent *e = log_op(x, OP_MAPWRITE, fi, off, len);
    if (off + len > f->m.size) {
        /* A mapping cannot reach past the end: grow the file first. */
        if (ftruncate(f->rw, (off_t)(off + len)) != 0)
            fail_errno(x, "ftruncate before mapwrite", fi);
        model_truncate(&f->m, off + len);
        snprintf(e->note, sizeof(e->note), "grown first");
    }
    uint64_t pg = off & ~(uint64_t)(x->pagesize - 1);
    size_t maplen = (size_t)(off + len - pg);
    uint8_t *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, f->rw,
                      (off_t)pg);
    if (p == MAP_FAILED)
        fail_errno(x, "mmap for writing", fi);
    fill(x, off, len);
    if (!map_copy(p + (off - pg), x->buf, (size_t)len))
        fail(x, "mapwrite of f%d [0x%" PRIx64 ", +0x%" PRIx64 "): SIGBUS (size "
             "0x%" PRIx64 ")", fi, off, len, f->m.size);
    if (msync(p, maplen, MS_SYNC) != 0)
        fail_errno(x, "msync", fi);
    munmap(p, maplen);
    model_write(&f->m, off, x->buf, len);
}

static void op_drop(struct fsx *x, int fi)
{
    log_op(x, OP_DROP, fi, 0, 0);
    int rc = posix_fadvise(x->file[fi].ro, 0, 0, POSIX_FADV_DONTNEED);
    if (rc != 0) {
        errno = rc;
        fail_errno(x, "posix_fadvise DONTNEED", fi);
    }
}

/* Reads up to 4 pieces of at most maxop from an offset in pieces, as cp and cat do: the
 * daemon's sequential read-ahead serves all but the first. */
static void op_seqread(struct fsx *x, int fi)
{
    uint64_t off = pick_read_off(x, fi);
    uint64_t piece = one_in(x, 2) && x->o.maxop > (128 << 10) ? 128 << 10 : x->o.maxop;
    uint64_t total = piece * (1 + below(x, 4));
    int fd = reader_fd(x, fi);
    log_op(x, OP_SEQREAD, fi, off, total);
    if (one_in(x, 2))
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    for (uint64_t done = 0; done < total && off + done <= x->file[fi].m.size;
         done += piece)
        checked_pread(x, fi, fd, "seqread", off + done, piece);
}

struct conc_read {
    int fd;
    uint64_t off, len;
    uint8_t *buf;
    ssize_t n;
    int err;
};

static void *conc_reader(void *arg)
{
    struct conc_read *c = arg;
    c->n = pread(c->fd, c->buf, (size_t)c->len, (off_t)c->off);
    c->err = c->n < 0 ? errno : 0;
    return NULL;
}

/* A read through the reading descriptor in a thread while the writing one
 * writes elsewhere: the read sees the bytes from before, whatever order
 * the two take. */
static void op_concurrent(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    uint64_t size = f->m.size;
    uint64_t woff = pick_off(x), wlen = pick_len(x);
    if (size < 2 || woff < 2) {
        op_write(x, fi);
        return;
    }
    /* The read stays below both the write and the current end. */
    uint64_t lim = woff < size ? woff : size;
    uint64_t roff = below(x, lim - 1), rlen = 1 + below(x, lim - roff - 1);
    if (rlen > x->o.maxop)
        rlen = x->o.maxop;
    if (f->ro_direct) {
        /* Whole pages for O_DIRECT, still below lim. */
        uint64_t ps = (uint64_t)x->pagesize;
        uint64_t start = roff & ~(ps - 1), end = (roff + rlen + ps - 1) & ~(ps - 1);
        if (end > lim)
            end = lim & ~(ps - 1);
        if (end <= start) {
            op_write(x, fi);
            return;
        }
        roff = start;
        rlen = end - start;
    }
    struct logent *e = log_op(x, OP_CONCURRENT, fi, woff, wlen);
    snprintf(e->note, sizeof(e->note), "read 0x%" PRIx64 " +0x%" PRIx64, roff, rlen);
    if (one_in(x, 2))
        posix_fadvise(f->ro, 0, 0, POSIX_FADV_DONTNEED);
    struct conc_read c = { .fd = f->ro, .off = roff, .len = rlen };
    c.buf = aligned_alloc((size_t)x->pagesize,
                          (size_t)((rlen + (uint64_t)x->pagesize - 1) &
                                   ~((uint64_t)x->pagesize - 1)));
    if (!c.buf) {
        perror("fsx");
        exit(2);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, conc_reader, &c) != 0) {
        perror("fsx: pthread_create");
        exit(2);
    }
    fill(x, woff, wlen);
    ssize_t n = pwrite(f->rw, x->buf, (size_t)wlen, (off_t)woff);
    int werr = errno;
    pthread_join(t, NULL);
    if (n < 0) {
        errno = werr;
        fail_errno(x, "concurrent write", fi);
    }
    if ((uint64_t)n != wlen)
        fail(x, "concurrent write of f%d: %zd of %" PRIu64 " bytes", fi, n, wlen);
    if (c.n < 0) {
        errno = c.err;
        fail_errno(x, "concurrent read", fi);
    }
    if ((uint64_t)c.n != rlen)
        fail(x, "concurrent read of f%d [0x%" PRIx64 ", +0x%" PRIx64 "): %zd bytes",
             fi, roff, rlen, c.n);
    verify(x, fi, f->ro, "concurrent read", roff, c.buf, rlen);
    free(c.buf);
    model_write(&f->m, woff, x->buf, wlen);
}

static void op_stat(struct fsx *x, int fi)
{
    struct fsx_file *f = &x->file[fi];
    bool by_path = one_in(x, 2);
    struct logent *e = log_op(x, OP_STAT, fi, 0, 0);
    snprintf(e->note, sizeof(e->note), "%s", by_path ? "stat" : "fstat");
    struct stat st;
    if ((by_path ? stat(f->path, &st) : fstat(f->ro, &st)) != 0)
        fail_errno(x, by_path ? "stat" : "fstat", fi);
    if ((uint64_t)st.st_size != f->m.size)
        fail(x, "%s of f%d: size 0x%jx, want 0x%" PRIx64, by_path ? "stat" : "fstat",
             fi, (intmax_t)st.st_size, f->m.size);
}

static enum fsx_op pick_op(struct fsx *x)
{
    unsigned total = 0;
    for (int i = 0; i < OP_COUNT; i++)
        total += x->o.weight[i];
    uint64_t r = below(x, total);
    for (int i = 0; i < OP_COUNT; i++) {
        if (r < x->o.weight[i])
            return (enum fsx_op)i;
        r -= x->o.weight[i];
    }
    return OP_READ;
}

static void step(struct fsx *x)
{
    int fi = (int)below(x, (uint64_t)x->nfiles);
    enum fsx_op op = pick_op(x);
    switch (op) {
    case OP_READ:       op_read(x, fi); break;
    case OP_WRITE:      op_write(x, fi); break;
    case OP_APPEND:     op_append(x, fi); break;
    case OP_FTRUNC:     op_truncate(x, fi, false); break;
    case OP_TRUNC:      op_truncate(x, fi, true); break;
    case OP_FSYNC:      op_fsync(x, fi); break;
    case OP_REOPEN:     op_reopen(x, fi); break;
    case OP_MAPREAD:    op_mapread(x, fi); break;
    case OP_MAPWRITE:   op_mapwrite(x, fi); break;
    case OP_DROP:       op_drop(x, fi); break;
    case OP_SEQREAD:    op_seqread(x, fi); break;
    case OP_CONCURRENT: op_concurrent(x, fi); break;
    case OP_STAT:       op_stat(x, fi); break;
    case OP_COUNT:      break;
    }
    x->log[x->opn % FSX_LOG].size_after = x->file[fi].m.size;
}

/* After the last operation: each file closed, reopened and read whole. */
static void final_check(struct fsx *x)
{
    x->opn++;
    for (int fi = 0; fi < x->nfiles; fi++) {
        struct fsx_file *f = &x->file[fi];
        file_close(x, fi);
        f->ro_direct = false;
        file_open(x, fi, false);
        log_op(x, OP_SEQREAD, fi, 0, f->m.size);
        for (uint64_t off = 0; off < f->m.size; off += x->o.maxop)
            checked_pread(x, fi, f->ro, "final read", off, x->o.maxop);
        op_stat(x, fi);
        file_close(x, fi);
    }
}

/* ---- main -------------------------------------------------------------------- */

/* -x read,write,...: those operations are never drawn. */
static bool exclude_ops(struct fsx_opts *o, char *list)
{
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < OP_COUNT && strcmp(op_name[i], name) != 0)
            i++;
        if (i == OP_COUNT) {
            fprintf(stderr, "fsx: no operation %s\n", name);
            return false;
        }
        o->weight[i] = 0;
    }
    return true;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fsx [-N ops] [-S seed] [-l maxlen] [-o maxop] [-c chunk] "
            "[-b bounds] [-M] [-D] [-1] [-x op,...] [-q] PATH...\n"
            "  -N ops     operations (default 100000)\n"
            "  -S seed    replay a seed (default: from the clock, printed)\n"
            "  -l maxlen  uniform offsets fall below it (default 8 MiB)\n"
            "  -o maxop   longest read or write (default 1 MiB)\n"
            "  -c chunk   the file system's chunk size (default 64 MiB)\n"
            "  -b bounds  also work around chunk boundaries 1..bounds (default 2; 0: none)\n"
            "  -M         no mmap   -D  no O_DIRECT   -q  no progress lines\n"
            "  -1         one open per file (its duplicates) instead of three\n"
            "  -x op,...  never do these operations (names as in the log)\n"
            "  PATH...    1 to %d files, created or truncated\n", FSX_MAX_FILES);
    exit(2);
}

/* A size with an optional k/m/g suffix. */
static uint64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s)
        usage();
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end)
        usage();
    return v;
}

static void parse_args(struct fsx *x, int argc, char **argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    x->o = (struct fsx_opts){
        .nops = 100000, .maxlen = 8 * FSX_MIB, .maxop = FSX_MIB,
        .chunk = 64 * FSX_MIB, .bounds = 2,
        .seed = ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
                 (uint64_t)getpid()) % 1000000000u,
    };
    memcpy(x->o.weight, op_weight, sizeof(x->o.weight));
    int c;
    while ((c = getopt(argc, argv, "N:S:l:o:c:b:MDq1x:")) != -1) {
        switch (c) {
        case 'N': x->o.nops = parse_size(optarg); break;
        case 'S': x->o.seed = parse_size(optarg); break;
        case 'l': x->o.maxlen = parse_size(optarg); break;
        case 'o': x->o.maxop = parse_size(optarg); break;
        case 'c': x->o.chunk = parse_size(optarg); break;
        case 'b': x->o.bounds = (unsigned)parse_size(optarg); break;
        case 'M': x->o.no_mmap = true; break;
        case 'D': x->o.no_direct = true; break;
        case 'q': x->o.quiet = true; break;
        case '1': x->o.one_fd = true; break;
        case 'x':
            snprintf(x->o.exclude, sizeof(x->o.exclude), " -x %s", optarg);
            if (!exclude_ops(&x->o, optarg))
                usage();
            break;
        default: usage();
        }
    }
    if (x->o.no_mmap)
        x->o.weight[OP_MAPREAD] = x->o.weight[OP_MAPWRITE] = 0;
    unsigned total = 0;
    for (int i = 0; i < OP_COUNT; i++)
        total += x->o.weight[i];
    if (total == 0)
        usage();
    x->nfiles = argc - optind;
    if (x->nfiles < 1 || x->nfiles > FSX_MAX_FILES || x->o.maxlen == 0 ||
        x->o.maxop == 0 || x->o.maxop > 64 * FSX_MIB ||
        (x->o.bounds && x->o.chunk < x->o.maxop))
        usage();
    for (int i = 0; i < x->nfiles; i++)
        x->file[i].path = argv[optind + i];
}

int main(int argc, char **argv)
{
    static struct fsx x;
    parse_args(&x, argc, argv);
    struct sigaction sa = { .sa_handler = on_sigbus };
    sigaction(SIGBUS, &sa, NULL);
    x.rng = x.o.seed;
    x.pagesize = sysconf(_SC_PAGESIZE);
    x.bufsize = (size_t)((x.o.maxop / (uint64_t)x.pagesize + 2) * (uint64_t)x.pagesize);
    x.buf = aligned_alloc((size_t)x.pagesize, x.bufsize);
    x.buf2 = malloc(x.bufsize);
    x.pattern = malloc(x.bufsize + 251);
    if (!x.buf || !x.buf2 || !x.pattern) {
        perror("fsx");
        return 2;
    }
    for (size_t i = 0; i < x.bufsize + 251; i++)
        x.pattern[i] = (uint8_t)(1 + i % 251);
    printf("fsx: seed %" PRIu64 ", %" PRIu64 " operations on %d file(s), maxlen %"
           PRIu64 ", maxop %" PRIu64 ", chunk boundaries 1..%u of %" PRIu64
           " (replay: -S %" PRIu64 ")\n", x.o.seed, x.o.nops, x.nfiles, x.o.maxlen,
           x.o.maxop, x.o.bounds, x.o.chunk, x.o.seed);
    fflush(stdout);
    for (int i = 0; i < x.nfiles; i++)
        file_open(&x, i, true);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (x.opn = 1; x.opn <= x.o.nops; x.opn++) {
        step(&x);
        if (!x.o.quiet && x.opn % 10000 == 0) {
            printf("fsx: %" PRIu64 " operations done\n", x.opn);
            fflush(stdout);
        }
    }
    x.opn = x.o.nops;
    final_check(&x);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("fsx: ok: %" PRIu64 " operations in %.1f s (seed %" PRIu64 "):", x.o.nops,
           s, x.o.seed);
    for (int i = 0; i < OP_COUNT; i++)
        printf(" %s %" PRIu64, op_name[i], x.count[i]);
    printf("\n");
    for (int i = 0; i < x.nfiles; i++)
        model_free(&x.file[i].m);
    free(x.buf);
    free(x.buf2);
    free(x.pattern);
    return 0;
}
