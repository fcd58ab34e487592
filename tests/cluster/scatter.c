/*
 * scatter: small writes at random offsets over several chunks of one file,
 * through one libdfs handle, then the file read back against a model.
 *
 *   scatter PATH SEED SPAN_MIB PIECES [PAUSE_AT]
 *
 * Writes PIECES pieces of 1..16 KiB at random offsets below SPAN_MIB MiB
 * (the same bytes for the same SEED), with an fsync every 1000, then
 * closes; reads the whole file back and compares every byte with the
 * model (the last piece written over a byte wins; holes are zeros), then
 * reads SCATTER_HOPS ranges at random offsets through one handle.  At
 * piece PAUSE_AT it prints "paused" and waits 3 s, so that a test can
 * break the cluster while four chunks hold unsynced writes.  Masters and
 * key from DFS_MASTERS / DFS_KEY_FILE.  Exit 0 when the file reads back
 * exactly, 1 otherwise (the first differing offset is printed).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/libdfs/dfs.h"
#include "common/log.h"
#include "tests/cluster/common/tsession.h"

#define SCATTER_PIECE_MAX 16384
#define SCATTER_SYNC_EVERY 1000
#define SCATTER_HOPS 3000

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static int fail(const char *what, struct dfs *d, int rc)
{
    fprintf(stderr, "scatter: %s: %s (%s)\n", what, dfs_strerror(rc),
            d ? dfs_last_error(d) : "");
    return 1;
}

/* Writes the pieces into f and model; *end is the file's size after. */
static int write_pieces(struct dfs *d, struct dfs_file *f, uint8_t *model,
                        uint64_t span, uint64_t seed, long pieces, long pause_at,
                        uint64_t *end)
{
    uint8_t piece[SCATTER_PIECE_MAX];
    uint64_t s = seed * 2 + 1;
    for (long i = 0; i < pieces; i++) {
        size_t len = 1 + (size_t)(next_rand(&s) % SCATTER_PIECE_MAX);
        uint64_t off = next_rand(&s) % (span - len);
        for (size_t k = 0; k < len; k++)
            piece[k] = (uint8_t)next_rand(&s);
        if (i == pause_at) {
            printf("paused\n");
            fflush(stdout);
            sleep(3);
        }
        ssize_t n = dfs_file_pwrite(f, piece, len, off);
        if (n != (ssize_t)len)
            return fail("write", d, n < 0 ? (int)n : -EIO);
        memcpy(model + off, piece, len);
        if (off + len > *end)
            *end = off + len;
        int rc = (i + 1) % SCATTER_SYNC_EVERY ? 0 : dfs_file_fsync(f);
        if (rc < 0)
            return fail("fsync", d, rc);
    }
    return 0;
}

/* Compares n bytes read at off with model; 0 when they match. */
static int compare(const uint8_t *buf, const uint8_t *model, uint64_t off, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (buf[k] != model[off + k]) {
            fprintf(stderr, "scatter: byte %" PRIu64 " is %u, written %u\n",
                    off + k, buf[k], model[off + k]);
            return 1;
        }
    }
    return 0;
}

/* Reads SCATTER_HOPS ranges at random offsets through f, hopping between
 * its chunks, and compares them with model. */
static int check_hops(struct dfs *d, struct dfs_file *f, const uint8_t *model,
                      uint64_t end, uint64_t seed, uint8_t *buf)
{
    uint64_t s = seed * 2 + 3;
    for (int i = 0; i < SCATTER_HOPS; i++) {
        uint64_t off = next_rand(&s) % end;
        size_t want = 1 + (size_t)(next_rand(&s) % (4 * SCATTER_PIECE_MAX));
        if (want > end - off)
            want = (size_t)(end - off);
        ssize_t n = dfs_file_pread(f, buf, want, off);
        if (n != (ssize_t)want)
            return fail("random read", d, n < 0 ? (int)n : -EIO);
        if (compare(buf, model, off, want))
            return 1;
    }
    return 0;
}

/* Reads path's first end bytes and compares them with model, first in
 * order, then at random offsets. */
static int check(struct dfs *d, uint64_t ino, const uint8_t *model, uint64_t end,
                 uint64_t seed)
{
    struct dfs_file *f;
    int rc = dfs_file_open(d, ino, DFS_O_READ, &f, NULL);
    if (rc < 0)
        return fail("open for reading", d, rc);
    if (dfs_file_size(f) != end) {
        fprintf(stderr, "scatter: size %" PRIu64 ", written up to %" PRIu64 "\n",
                dfs_file_size(f), end);
        dfs_file_close(f);
        return 1;
    }
    size_t bufsz = 8u << 20;
    uint8_t *buf = malloc(bufsz);
    int bad = buf ? 0 : fail("read buffer", NULL, -ENOMEM);
    for (uint64_t off = 0; !bad && off < end;) {
        size_t want = end - off < bufsz ? (size_t)(end - off) : bufsz;
        ssize_t n = dfs_file_pread(f, buf, want, off);
        if (n <= 0) {
            bad = fail("read", d, n < 0 ? (int)n : -EIO);
            break;
        }
        bad = compare(buf, model, off, (size_t)n);
        off += (uint64_t)n;
    }
    if (!bad && end)
        bad = check_hops(d, f, model, end, seed, buf);
    free(buf);
    dfs_file_close(f);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argv[1][0] != '/' || strchr(argv[1] + 1, '/')) {
        fprintf(stderr, "usage: scatter /NAME SEED SPAN_MIB PIECES [PAUSE_AT]\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[2], NULL, 10);
    uint64_t span = strtoull(argv[3], NULL, 10) << 20;
    long pieces = strtol(argv[4], NULL, 10);
    long pause_at = argc > 5 ? strtol(argv[5], NULL, 10) : -1;
    if (span <= SCATTER_PIECE_MAX) {
        fprintf(stderr, "scatter: SPAN_MIB must be at least 1\n");
        return 2;
    }
    log_init("scatter", LOG_ERROR, NULL);
    struct dfs *d = tsession_open("scatter", 30000);
    if (!d)
        return 1;
    uint8_t *model = calloc(1, span);
    struct dfs_attr a;
    struct dfs_file *f = NULL;
    int rc = model ? dfs_create(d, DFS_ROOT_INO, argv[1] + 1, 0644,
                                DFS_O_WRITE | DFS_O_EXCL, &a) : -ENOMEM;
    if (rc == 0)
        rc = dfs_file_adopt(d, &a, DFS_O_WRITE, &f);
    int status = rc < 0 ? fail("create", d, rc) : 0;
    uint64_t end = 0;
    if (status == 0)
        status = write_pieces(d, f, model, span, seed, pieces, pause_at, &end);
    if (f) {
        rc = dfs_file_close(f);
        if (status == 0 && rc < 0)
            status = fail("close", d, rc);
    }
    if (status == 0)
        status = check(d, a.ino, model, end, seed);
    if (status == 0)
        printf("scatter: %ld pieces over %" PRIu64 " MiB read back exactly\n",
               pieces, span >> 20);
    free(model);
    dfs_close(d);
    return status;
}
