/*
 * store_bench: write and read throughput of the chunk store
 * (chunkserver/store) beside plain POSIX calls on the same directory, in
 * the same run.
 *
 * Write: CHUNKS chunks of 64 MiB, each as 64 writes of 1 MiB with their
 * block CRCs (as the wire delivers them; the store verifies them) then one
 * store_sync, against open + 64 pwrite of 1 MiB + fdatasync + close of a
 * plain file.  The store figure includes creating the chunk (header,
 * fsync, rename, directory fsync).  Read: 64 reads of 1 MiB per chunk with
 * their CRCs out (every block verified), against 64 pread of 1 MiB; once
 * cold (pages dropped with POSIX_FADV_DONTNEED after the sync) and once
 * warm.  Raw and store alternate chunk by chunk, so both see the same
 * load; each figure is the median of RUNS runs.  Directories: $TMPDIR
 * (else /tmp) and /dev/shm, or the ones given as arguments.  Figures
 * only: nothing here passes or fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkserver/store.h"
#include "common/crc32c.h"
#include "common/dfs_error.h"
#include "common/fsio.h"
#include "common/log.h"

#define RUNS      5
#define CHUNKS    4
#define CHUNK     (64u << 20)
#define PIECE     (1u << 20)
#define PIECES    (CHUNK / PIECE)
#define MIB       (1024.0 * 1024.0)

enum { W, R_COLD, R_WARM, NFIG };
static const char *const fig_names[NFIG] = { "write+sync", "read cold",
                                             "read warm" };

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, RUNS, sizeof(*v), cmp_double);
    return v[RUNS / 2];
}

static double mib_per_s(double secs)
{
    return (double)CHUNKS * CHUNK / MIB / secs;
}

static int die(const char *what, int err)
{
    fprintf(stderr, "store_bench: %s: %s\n", what, dfs_strerror(err));
    exit(1);
}

/* Drops the file's clean pages so the next read comes from the disk. */
static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die(path, errno);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* ---- one chunk each way ------------------------------------------------ */

static void raw_path(const char *dir, int c, char *out, size_t cap)
{
    snprintf(out, cap, "%s/raw%d", dir, c);
}

static void chunk_path(const char *sdir, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%02x/%016" PRIx64 ".chunk", sdir,
             (unsigned)(id & 0xff), id);
}

static double raw_write(const char *path, const uint8_t *buf)
{
    double t0 = now_sec();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die(path, errno);
    for (unsigned i = 0; i < PIECES; i++)
        if (pwrite(fd, buf, PIECE, (off_t)i * PIECE) != PIECE)
            die("pwrite", errno);
    if (fdatasync(fd) < 0)
        die("fdatasync", errno);
    close(fd);
    return now_sec() - t0;
}

static double raw_read(const char *path, uint8_t *buf)
{
    double t0 = now_sec();
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die(path, errno);
    for (unsigned i = 0; i < PIECES; i++)
        if (pread(fd, buf, PIECE, (off_t)i * PIECE) != PIECE)
            die("pread", errno);
    close(fd);
    return now_sec() - t0;
}

static double store_write_one(struct store *s, uint64_t id,
                              const uint8_t *buf, const uint32_t *crcs)
{
    double t0 = now_sec();
    int rc = store_create(s, id, 1);
    for (unsigned i = 0; rc == 0 && i < PIECES; i++)
        rc = store_write(s, id, 1, (uint64_t)i * PIECE, buf, PIECE, crcs, 0);
    if (rc == 0)
        rc = store_sync(s, id);
    if (rc < 0)
        die("store write", rc);
    return now_sec() - t0;
}

static double store_read_one(struct store *s, uint64_t id, uint8_t *buf)
{
    uint32_t crcs[PIECE / STORE_BLOCK_SIZE + 1];
    double t0 = now_sec();
    for (unsigned i = 0; i < PIECES; i++) {
        ssize_t n = store_read(s, id, 1, (uint64_t)i * PIECE, PIECE, buf,
                               crcs);
        if (n != PIECE)
            die("store read", n < 0 ? (int)n : EIO);
    }
    return now_sec() - t0;
}

/* ---- driver ------------------------------------------------------------ */

/* One run: raw and store alternate chunk by chunk, so both see the same
 * load; adds each one's seconds per figure. */
static void bench_run(const char *dir, const char *sdir, struct store *s,
                      uint64_t first_id, uint8_t *buf, const uint32_t *crcs,
                      double raw[NFIG], double st[NFIG])
{
    char rp[4200], sp[4200];
    for (int f = 0; f < NFIG; f++)
        raw[f] = st[f] = 0;
    for (int c = 0; c < CHUNKS; c++) {
        raw_path(dir, c, rp, sizeof(rp));
        raw[W] += raw_write(rp, buf);
        st[W] += store_write_one(s, first_id + (uint64_t)c, buf, crcs);
    }
    for (int f = R_COLD; f <= R_WARM; f++)
        for (int c = 0; c < CHUNKS; c++) {
            raw_path(dir, c, rp, sizeof(rp));
            chunk_path(sdir, first_id + (uint64_t)c, sp, sizeof(sp));
            if (f == R_COLD) {
                drop_cache(rp);
                drop_cache(sp);
            }
            raw[f] += raw_read(rp, buf);
            st[f] += store_read_one(s, first_id + (uint64_t)c, buf);
        }
    for (int c = 0; c < CHUNKS; c++) {
        raw_path(dir, c, rp, sizeof(rp));
        unlink(rp);
        store_delete(s, first_id + (uint64_t)c);
    }
}

static void bench_dir(const char *base, uint8_t *buf, const uint32_t *crcs)
{
    char dir[4096], sdir[4150], errbuf[256];
    snprintf(dir, sizeof(dir), "%s/store_bench.XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "store_bench: %s: %s (skipped)\n", base,
                strerror(errno));
        return;
    }
    snprintf(sdir, sizeof(sdir), "%s/store", dir);
    struct fsio *fs = fsio_real_new();
    struct store_params p = { .chunk_size = CHUNK };
    struct store *s;
    int rc = store_open(fs, sdir, &p, &s, errbuf, sizeof(errbuf));
    if (rc < 0) {
        fprintf(stderr, "store_bench: %s\n", errbuf);
        exit(1);
    }
    double raw[NFIG][RUNS], st[NFIG][RUNS];
    for (int r = 0; r < RUNS; r++) {
        double rr[NFIG], ss[NFIG];
        bench_run(dir, sdir, s, 1 + (uint64_t)r * CHUNKS, buf, crcs, rr, ss);
        for (int f = 0; f < NFIG; f++) {
            raw[f][r] = rr[f];
            st[f][r] = ss[f];
        }
    }
    for (int f = 0; f < NFIG; f++) {
        double a = mib_per_s(median(raw[f])), b = mib_per_s(median(st[f]));
        printf("%-28s %-11s %10.0f %12.0f %9.0f%%\n", f == 0 ? base : "",
               fig_names[f], a, b, 100.0 * b / a);
    }
    store_close(s);
    fsio_free(fs);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "store_bench: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    log_init("store_bench", LOG_WARN, NULL);
    uint8_t *buf = malloc(PIECE);
    uint32_t crcs[PIECE / STORE_BLOCK_SIZE];
    if (!buf)
        die("malloc", ENOMEM);
    for (unsigned i = 0; i < PIECE; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    for (unsigned i = 0; i < PIECE / STORE_BLOCK_SIZE; i++)
        crcs[i] = crc32c(0, buf + i * STORE_BLOCK_SIZE, STORE_BLOCK_SIZE);

    printf("store_bench: %d chunks of 64 MiB per run, 1 MiB calls, median "
           "of %d runs (MiB/s)\n", CHUNKS, RUNS);
    printf("%-28s %-11s %10s %12s %10s\n", "directory", "", "raw", "store",
           "store/raw");
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            bench_dir(argv[i], buf, crcs);
    } else {
        const char *tmp = getenv("TMPDIR");
        bench_dir(tmp && *tmp ? tmp : "/tmp", buf, crcs);
        bench_dir("/dev/shm", buf, crcs);
    }
    free(buf);
    return 0;
}
