/*
 * mfsck: classifies the chunks under an inode as healthy, under-replicated,
 * missing or corrupt, as the status page counts them (master/mcs), and
 * lists the ones that are not healthy.
 *
 * Invariants:
 *  1. A chunk is in exactly one class: awaiting its trim (no replica at
 *     its version, some from before a truncate's cut: counted
 *     under-replicated), else missing (no healthy replica at its
 *     version), else corrupt (a replica at its version failed its
 *     checksums), else under-replicated (fewer healthy replicas than the
 *     goal), else healthy.
 *  2. The reply lists at most MFSCK_MAX_PROBLEMS problems; the counts
 *     cover every chunk.
 */
#include "mfsck.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/protocol.h"
#include "common/wire.h"
#include "master/csreg.h"
#include "master/ns.h"

#define MFSCK_MAX_PROBLEMS 1000

struct mfsck_set {
    uint64_t *v;
    size_t n, cap;
};

static int set_add(struct mfsck_set *s, uint64_t ino)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        uint64_t *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ino;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The regular files under dir (depth first, with an explicit stack). */
static int subtree_files(const struct ns *ns, uint64_t dir, struct mfsck_set *files)
{
    static const struct ns_cred root = { 0 };
    struct mfsck_set stack = { 0 };
    int rc = set_add(&stack, dir);
    struct ns_dirent ents[256];
    while (rc == 0 && stack.n) {
        uint64_t d = stack.v[--stack.n];
        uint64_t cookie = 0;
        size_t n;
        do {
            rc = ns_readdir(ns, &root, d, cookie, ents, 256, &n);
            for (size_t i = 0; rc == 0 && i < n; i++) {
                cookie = ents[i].cookie;
                if (ents[i].ino == d || cookie <= 2)
                    continue;   /* "." and ".." */
                if (S_ISDIR(ents[i].mode))
                    rc = set_add(&stack, ents[i].ino);
                else if (S_ISREG(ents[i].mode))
                    rc = set_add(files, ents[i].ino);
            }
        } while (rc == 0 && n == 256);
    }
    free(stack.v);
    return rc;
}

struct mfsck_counts {
    uint64_t chunks, healthy, under, missing, corrupt;
    uint32_t nproblems;
};

int mfsck_state(const struct mserver *s, const struct ns_chunk_info *ci,
                size_t *healthy)
{
    uint32_t where[CSREG_MAX_REPLICAS];
    struct csreg_replica all[CSREG_MAX_REPLICAS];
    size_t n = csreg_locations(s->csreg, ci->id, ci->committed, ci->version, where,
                               CSREG_MAX_REPLICAS);
    size_t k = csreg_replicas(s->csreg, ci->id, all, CSREG_MAX_REPLICAS);
    bool corrupt = false;
    for (size_t i = 0; i < k; i++)
        corrupt |= all[i].corrupt && all[i].version >= ci->committed;
    *healthy = n;
    if (n == 0 && !corrupt && ci->trim_from && ci->trim_from < ci->committed) {
        /* Holding the content from before a cut: good once trimmed. */
        *healthy = csreg_locations(s->csreg, ci->id, ci->trim_from, ci->committed - 1,
                                   where, CSREG_MAX_REPLICAS);
        if (*healthy)
            return PROTO_FSCK_TRIMMING;
    }
    return n == 0 ? PROTO_FSCK_MISSING : corrupt ? PROTO_FSCK_CORRUPT
         : n < ci->goal ? PROTO_FSCK_UNDER : 0;
}

/* Classifies one chunk; a problem is appended to problems. */
static void check_chunk(struct mserver *s, const struct ns_chunk_info *ci,
                        struct mfsck_counts *c, struct wire_writer *problems)
{
    size_t n;
    uint8_t state = (uint8_t)mfsck_state(s, ci, &n);
    c->chunks++;
    c->missing += state == PROTO_FSCK_MISSING;
    c->corrupt += state == PROTO_FSCK_CORRUPT;
    c->under += state == PROTO_FSCK_UNDER || state == PROTO_FSCK_TRIMMING;
    c->healthy += state == 0;
    if (!state || c->nproblems == MFSCK_MAX_PROBLEMS)
        return;
    c->nproblems++;
    wire_put_u64(problems, ci->ino);
    wire_put_u32(problems, ci->index);
    wire_put_u64(problems, ci->id);
    wire_put_u32(problems, ci->version);
    wire_put_u32(problems, (uint32_t)n);
    wire_put_u8(problems, (uint8_t)ci->goal);
    wire_put_u8(problems, state);
}

int mfsck_walk(struct mserver *s, uint64_t inode, mfsck_chunk_fn fn, void *arg)
{
    struct ns_attr a;
    int rc = ns_getattr(s->ns, inode, &a);
    if (rc < 0)
        return rc;
    struct mfsck_set files = { 0 };
    if (S_ISDIR(a.mode) && inode != PROTO_ROOT_INODE)
        rc = subtree_files(s->ns, inode, &files);
    else if (!S_ISDIR(a.mode))
        rc = set_add(&files, inode);
    if (rc < 0) {
        free(files.v);
        return rc;
    }
    if (files.n)   /* files.v is NULL for the root or an empty tree */
        qsort(files.v, files.n, sizeof(*files.v), cmp_u64);
    bool all = S_ISDIR(a.mode) && inode == PROTO_ROOT_INODE;
    struct ns_chunk_info ci;
    uint32_t cursor = 0;
    while (rc == 0 && ns_chunk_walk(s->ns, &cursor, &ci)) {
        if (all || (files.n && bsearch(&ci.ino, files.v, files.n, sizeof(*files.v),
                                       cmp_u64)))
            rc = fn(&ci, arg);
    }
    free(files.v);
    return rc;
}

struct mfsck_run {
    struct mserver *s;
    struct mfsck_counts c;
    struct wire_writer problems;
};

static int run_chunk(const struct ns_chunk_info *ci, void *arg)
{
    struct mfsck_run *run = arg;
    check_chunk(run->s, ci, &run->c, &run->problems);
    return 0;
}

int mfsck_run(struct mserver *s, uint64_t inode, struct wire_writer *out)
{
    struct mfsck_run run = { .s = s };
    wire_writer_init(&run.problems);
    int rc = mfsck_walk(s, inode, run_chunk, &run);
    if (rc == 0) {
        const struct mfsck_counts *c = &run.c;
        wire_put_u64(out, c->chunks);
        wire_put_u64(out, c->healthy);
        wire_put_u64(out, c->under);
        wire_put_u64(out, c->missing);
        wire_put_u64(out, c->corrupt);
        wire_put_u32(out, c->nproblems);
        wire_put_raw(out, run.problems.buf, run.problems.len);
        rc = run.problems.err ? run.problems.err : out->err;
    }
    wire_writer_release(&run.problems);
    return rc;
}
