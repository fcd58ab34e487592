/*
 * raftlog_bench: group commit on a real disk.  Appends 100-byte entries in
 * batches of 1, 16 and 256 with one raftlog_sync (one fdatasync) per batch,
 * in a fresh directory under $TMPDIR (default /tmp), and prints entries/s,
 * payload MiB/s and syncs/s for each, beside the raw rate of the same disk
 * for a 4 KiB pwrite + fdatasync loop.  Each figure runs for about
 * RAFTLOG_BENCH_SECONDS (default 2).  Figures only: nothing passes or fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/fsio.h"
#include "master/raftlog.h"

#define ENTRY_BYTES 100
#define MAX_BATCH   256

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int remove_in(const char *name, void *arg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", (const char *)arg, name);
    return unlink(path) < 0 ? -errno : 0;
}

/* Empties dir (files only: that is all the benchmark makes). */
static int clear_dir(struct fsio *fs, const char *dir)
{
    return fsio_list_dir(fs, dir, remove_in, (void *)dir);
}

struct result {
    double entries_per_s;
    double mib_per_s;
    double syncs_per_s;
};

/* Appends batches of `batch` entries, one sync each, for about secs. */
static int bench_batches(struct fsio *fs, const char *dir, size_t batch,
                         double secs, struct result *out)
{
    static uint8_t payload[MAX_BATCH][ENTRY_BYTES];
    struct raft_entry ents[MAX_BATCH];
    struct raftlog *log;
    struct raftlog_recovery rec;
    int rc = raftlog_open(fs, dir, NULL, NULL, NULL, &rec, &log);
    if (rc < 0) {
        fprintf(stderr, "raftlog_bench: open %s: %s (%s)\n", dir,
                dfs_strerror(rc), rec.error);
        return rc;
    }
    uint64_t index = 0, syncs = 0;
    double t0 = now_sec(), t = t0;
    while (rc == 0 && t - t0 < secs) {
        for (size_t i = 0; i < batch; i++) {
            memset(payload[i], (int)(index + i), ENTRY_BYTES);
            ents[i] = (struct raft_entry){ .index = index + 1 + i, .term = 1,
                                           .type = RAFT_ENTRY_NORMAL,
                                           .len = ENTRY_BYTES,
                                           .data = payload[i] };
        }
        rc = raftlog_append(log, ents, batch);
        if (rc == 0)
            rc = raftlog_sync(log);
        index += batch;
        syncs++;
        t = now_sec();
    }
    raftlog_close(log);
    if (rc < 0) {
        fprintf(stderr, "raftlog_bench: batch %zu: %s\n", batch,
                dfs_strerror(rc));
        return rc;
    }
    double dt = t - t0;
    out->entries_per_s = (double)index / dt;
    out->mib_per_s = (double)index * ENTRY_BYTES / dt / (1 << 20);
    out->syncs_per_s = (double)syncs / dt;
    return clear_dir(fs, dir);
}

/* The disk's own rate: append 4 KiB, fdatasync, for about secs. */
static int bench_raw(struct fsio *fs, const char *dir, double secs,
                     double *syncs_per_s)
{
    char path[PATH_MAX + 8];
    static uint8_t block[4096];
    snprintf(path, sizeof(path), "%s/raw", dir);
    int fd = fsio_open(fs, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    uint64_t n = 0;
    int rc = 0;
    double t0 = now_sec(), t = t0;
    while (rc == 0 && t - t0 < secs) {
        ssize_t w = fsio_pwrite(fs, fd, block, sizeof(block),
                                (off_t)(n * sizeof(block)));
        rc = w < 0 ? (int)w : fsio_fdatasync(fs, fd);
        n++;
        t = now_sec();
    }
    fsio_close(fs, fd);
    *syncs_per_s = (double)n / (t - t0);
    if (rc == 0)
        rc = fsio_unlink(fs, path);
    return rc;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    const char *env = getenv("RAFTLOG_BENCH_SECONDS");
    double secs = env ? atof(env) : 2.0;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/raftlog-bench-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("raftlog_bench: mkdtemp");
        return 1;
    }
    struct fsio *fs = fsio_real_new();
    if (!fs) {
        fprintf(stderr, "raftlog_bench: out of memory\n");
        return 1;
    }
    static const size_t batches[] = { 1, 16, 256 };
    printf("raftlog_bench: %d-byte entries, one fdatasync per batch, in %s "
           "(%.1f s per figure)\n", ENTRY_BYTES, dir, secs);
    double raw;
    int rc = bench_raw(fs, dir, secs, &raw);
    if (rc == 0)
        printf("  raw 4 KiB write + fdatasync: %10.0f syncs/s\n", raw);
    printf("  %6s %12s %10s %10s\n", "batch", "entries/s", "MiB/s",
           "syncs/s");
    for (size_t i = 0; rc == 0 && i < sizeof(batches) / sizeof(*batches);
         i++) {
        struct result r;
        rc = bench_batches(fs, dir, batches[i], secs, &r);
        if (rc == 0)
            printf("  %6zu %12.0f %10.2f %10.0f\n", batches[i],
                   r.entries_per_s, r.mib_per_s, r.syncs_per_s);
    }
    if (rc < 0)
        fprintf(stderr, "raftlog_bench: %s\n", dfs_strerror(rc));
    clear_dir(fs, dir);
    rmdir(dir);
    fsio_free(fs);
    return rc < 0;
}
