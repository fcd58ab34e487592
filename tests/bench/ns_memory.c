/*
 * ns_memory: memory per file of the namespace (docs/NAMESPACE.md).
 *
 * Creates N one-chunk files (default 1,000,000) in 4 directories through
 * ns_apply() exactly as clients would (CREATE+open, WRITE_BEGIN,
 * WRITE_END, RELEASE), then prints the heap growth per file from
 * mallinfo2(), the RSS growth, the namespace's own count of its bytes,
 * and the apply rate.  A figure, not a test: nothing here fails on a
 * number.  Usage: ns_memory [files]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wire.h"
#include "master/ns.h"
#include "master/ns_snapshot.h"

#define DIRS 4

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * 4096;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct bench {
    struct ns *ns;
    struct ns_result res;
    struct ns_op op;
    uint64_t seq;
    long applied;
};

static void apply(struct bench *b, enum ns_op_type type)
{
    b->op.type = type;
    b->op.seq = ++b->seq;
    b->op.now++;
    ns_result_release(&b->res);
    ns_result_init(&b->res);
    int rc = ns_apply(b->ns, &b->op, &b->res);
    if (rc != 0) {
        fprintf(stderr, "ns_memory: %s failed: %d\n", ns_op_name(type), rc);
        exit(1);
    }
    b->applied++;
}

static void make_file(struct bench *b, uint64_t dir, long i, uint64_t *last_ino)
{
    char name[32];
    snprintf(name, sizeof(name), "f%07ld", i);
    uint64_t ino = ns_next_free_ino(b->ns, *last_ino);
    *last_ino = ino;
    b->op.u.make = (struct ns_op_make){ .parent = dir, .ino = ino, .mode = 0644,
                                        .name = { name, (uint32_t)strlen(name) },
                                        .flags = NS_OPEN_WRITE | NS_CREATE_EXCL };
    apply(b, NS_OP_CREATE);
    b->op.u.write = (struct ns_op_write){ .ino = ino, .index = 0,
                                          .chunk_id = ns_max_chunk_id(b->ns) + 1 };
    apply(b, NS_OP_WRITE_BEGIN);
    b->op.u.write = (struct ns_op_write){ .ino = ino, .index = 0, .length = 1 << 20,
                                          .mtime = b->op.now };
    apply(b, NS_OP_WRITE_END);
    b->op.u.open = (struct ns_op_open){ .ino = ino, .flags = NS_OPEN_WRITE };
    apply(b, NS_OP_RELEASE);
}

/* The session every op runs in, and DIRS directories under the root. */
static void setup(struct bench *b, uint64_t *dirs, uint64_t *last_ino)
{
    b->op.client = 1;
    b->op.u.session = (struct ns_op_session){ .session = 1, .expiry = INT64_MAX };
    apply(b, NS_OP_SESSION_OPEN);
    for (int d = 0; d < DIRS; d++) {
        char name[16];
        snprintf(name, sizeof(name), "d%d", d);
        dirs[d] = ns_next_free_ino(b->ns, *last_ino);
        *last_ino = dirs[d];
        b->op.u.make = (struct ns_op_make){ .parent = NS_ROOT_INO, .ino = dirs[d],
                                            .mode = 0755,
                                            .name = { name, (uint32_t)strlen(name) } };
        apply(b, NS_OP_MKDIR);
    }
}

/* Snapshot size and speed, and the digest's speed, at this scale. */
static void snapshot_figures(const struct ns *ns, long files)
{
    struct wire_writer w;
    wire_writer_init(&w);
    double t0 = now_s();
    int rc = ns_snapshot_write(ns, &w);
    double t1 = now_s();
    struct ns *copy = NULL;
    int lrc = rc == 0 ? ns_snapshot_load(w.buf, w.len, &copy) : rc;
    double t2 = now_s();
    uint64_t d = ns_digest(ns);
    double t3 = now_s();
    if (rc == 0 && lrc == 0 && ns_digest(copy) == d)
        printf("  snapshot:            %.1f bytes/file compressed, write %.2f s, "
               "load+check %.2f s, digest %.2f s\n", (double)w.len / files,
               t1 - t0, t2 - t1, t3 - t2);
    else
        printf("  snapshot:            failed (%d, %d)\n", rc, lrc);
    ns_free(copy);
    wire_writer_release(&w);
}

int main(int argc, char **argv)
{
    long files = argc > 1 ? atol(argv[1]) : 1000000;
    struct bench b;
    memset(&b, 0, sizeof(b));
    b.ns = ns_new();
    if (!b.ns || files <= 0)
        return 1;
    ns_result_init(&b.res);
    uint64_t dirs[DIRS], last_ino = NS_ROOT_INO;
    setup(&b, dirs, &last_ino);

    size_t heap0 = heap_bytes(), rss0 = rss_bytes(), ns0 = ns_bytes(b.ns);
    long ops0 = b.applied;
    double t0 = now_s();
    for (long i = 0; i < files; i++)
        make_file(&b, dirs[i % DIRS], i, &last_ino);
    double t1 = now_s();
    ns_result_release(&b.res);
    size_t heap1 = heap_bytes(), rss1 = rss_bytes(), ns1 = ns_bytes(b.ns);

    struct ns_statfs st;
    ns_statfs(b.ns, &st);
    printf("ns_memory: %ld one-chunk files in %d directories (%llu files, %llu chunks)\n",
           files, DIRS, (unsigned long long)st.files, (unsigned long long)st.chunks);
    printf("  heap (mallinfo2):    %.1f bytes/file\n", (double)(heap1 - heap0) / files);
    printf("  RSS growth:          %.1f bytes/file\n", (double)(rss1 - rss0) / files);
    printf("  structures:          %.1f bytes/file (ns_bytes)\n", (double)(ns1 - ns0) / files);
    printf("  apply:               %.0f ops/s (%ld ops, 4 per file, %.2f s)\n",
           (b.applied - ops0) / (t1 - t0), b.applied - ops0, t1 - t0);
    snapshot_figures(b.ns, files);
    ns_free(b.ns);
    return 0;
}
