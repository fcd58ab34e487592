/*
 * nsload: namespace load and verification for the cluster tests.
 *
 *   nsload create DIR N [THREADS]   creates /DIR and files f0..f(N-1) in it
 *   nsload stat DIR N [THREADS]     looks each of them up (a LOOKUP each)
 *   nsload rename DIR N [THREADS]   renames each fI to rI within /DIR
 *   nsload check DIR N              every one of them is there, exactly once
 *   nsload truncate PATH SIZE       sets the size of file PATH, without
 *                                   opening it (a bare SETATTR)
 *
 * Masters and key from DFS_MASTERS and DFS_KEY_FILE.  Prints one line with
 * the count and the rate; exits non-zero on the first failure, naming it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/libdfs/dfs.h"
#include "common/log.h"
#include "tests/cluster/common/tsession.h"

#define NSLOAD_TIMEOUT_MS 60000

enum load_op { LOAD_CREATE, LOAD_STAT, LOAD_RENAME };
static const char *const load_verbs[] = { "create", "stat", "rename" };

struct job {
    enum load_op op;
    uint64_t dir;
    long first, step, n;
    int err;
    long failed_at;
};

/* One operation of the load on file i of dir. */
static int load_one(struct dfs *d, enum load_op op, uint64_t dir, long i)
{
    char name[32], to[32];
    struct dfs_attr a;
    snprintf(name, sizeof(name), "f%ld", i);
    snprintf(to, sizeof(to), "r%ld", i);
    switch (op) {
    case LOAD_CREATE: return dfs_create(d, dir, name, 0644, 0, &a);
    case LOAD_STAT:   return dfs_lookup(d, dir, name, &a);
    case LOAD_RENAME: return dfs_rename(d, dir, name, dir, to, 0);
    }
    return -EINVAL;
}

/* Each client thread has a session of its own, as separate clients do. */
static void *load_worker(void *arg)
{
    struct job *j = arg;
    struct dfs *d = tsession_open("nsload", NSLOAD_TIMEOUT_MS);
    if (!d) {
        j->err = -ECONNREFUSED;
        return NULL;
    }
    for (long i = j->first; i < j->n; i += j->step) {
        int rc = load_one(d, j->op, j->dir, i);
        if (rc < 0) {
            j->err = rc;
            j->failed_at = i;
            break;
        }
    }
    dfs_close(d);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* op on files 0..n-1 of /dir from threads clients; create makes /dir. */
static int do_load(struct dfs *d, enum load_op op, const char *dir, long n, int threads)
{
    struct dfs_attr at;
    char path[300];
    snprintf(path, sizeof(path), "/%s", dir);
    int rc = op == LOAD_CREATE ? dfs_mkdir(d, DFS_ROOT_INO, dir, 0755, &at)
                               : dfs_resolve(d, path, &at);
    if (rc < 0) {
        fprintf(stderr, "nsload: %s: %s\n", path, dfs_strerror(rc));
        return 1;
    }
    struct job jobs[64];
    pthread_t th[64];
    double t0 = now_s();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ op, at.ino, t, threads, n, 0, -1 };
        pthread_create(&th[t], NULL, load_worker, &jobs[t]);
    }
    int status = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        if (jobs[t].err) {
            fprintf(stderr, "nsload: %s /%s/f%ld: %s\n", load_verbs[op], dir,
                    jobs[t].failed_at, dfs_strerror(jobs[t].err));
            status = 1;
        }
    }
    double dt = now_s() - t0;
    printf("nsload: %s of %ld files in /%s with %d clients: %.0f %ss/s\n",
           load_verbs[op], n, dir, threads, (double)n / dt, load_verbs[op]);
    return status;
}

struct seen {
    unsigned char *hit;
    long n;
    long extra, dup;
};

static int check_entry(const struct dfs_dirent *e, void *arg)
{
    struct seen *s = arg;
    if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
        return 0;
    char *end;
    long i = e->name[0] == 'f' ? strtol(e->name + 1, &end, 10) : -1;
    if (i < 0 || i >= s->n || *end) {
        s->extra++;
        return 0;
    }
    if (s->hit[i]++)
        s->dup++;
    return 0;
}

static int do_check(struct dfs *d, const char *dir, long n)
{
    struct dfs_attr at;
    int rc = dfs_lookup(d, DFS_ROOT_INO, dir, &at);
    if (rc < 0) {
        fprintf(stderr, "nsload: lookup /%s: %s\n", dir, dfs_strerror(rc));
        return 1;
    }
    struct seen s = { .hit = calloc((size_t)n, 1), .n = n };
    double t0 = now_s();
    rc = dfs_readdir(d, at.ino, 0, 0, check_entry, &s);
    double dt = now_s() - t0;
    long missing = 0;
    for (long i = 0; i < n; i++)
        missing += !s.hit[i];
    free(s.hit);
    if (rc < 0 || missing || s.extra || s.dup) {
        fprintf(stderr, "nsload: /%s: %s; %ld missing, %ld unexpected, %ld seen twice\n",
                dir, rc < 0 ? dfs_strerror(rc) : "listing done", missing, s.extra, s.dup);
        return 1;
    }
    printf("nsload: all %ld files of /%s present (listed in %.2f s)\n", n, dir, dt);
    return 0;
}

/* Resolves an absolute path one name at a time. */
static int lookup_path(struct dfs *d, const char *path, struct dfs_attr *at)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    uint64_t ino = DFS_ROOT_INO;
    char *save = NULL;
    int rc = 0;
    for (char *name = strtok_r(buf, "/", &save); name && rc == 0;
         name = strtok_r(NULL, "/", &save)) {
        rc = dfs_lookup(d, ino, name, at);
        ino = at->ino;
    }
    return rc;
}

static int do_truncate(struct dfs *d, const char *path, uint64_t size)
{
    struct dfs_attr at;
    int rc = lookup_path(d, path, &at);
    struct dfs_setattr set = { .valid = DFS_SET_SIZE, .size = size };
    if (rc == 0)
        rc = dfs_setattr(d, at.ino, &set, &at);
    if (rc < 0) {
        fprintf(stderr, "nsload: truncate %s: %s\n", path, dfs_strerror(rc));
        return 1;
    }
    printf("nsload: %s is %" PRIu64 " bytes\n", path, at.size);
    return 0;
}

int main(int argc, char **argv)
{
    bool trunc = argc == 4 && !strcmp(argv[1], "truncate");
    int op = -1;
    for (int i = 0; argc >= 4 && i < 3; i++)
        if (!strcmp(argv[1], load_verbs[i]))
            op = i;
    if (argc < 4 || (op < 0 && strcmp(argv[1], "check") && !trunc)) {
        fprintf(stderr, "usage: nsload create|stat|rename|check DIR N [THREADS]\n"
                        "       nsload truncate PATH SIZE\n");
        return 2;
    }
    log_init("nsload", LOG_ERROR, NULL);
    long n = atol(argv[3]);
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    if (threads < 1 || threads > 64 || n < 0)
        return 2;
    struct dfs *d = tsession_open("nsload", NSLOAD_TIMEOUT_MS);
    if (!d)
        return 1;
    int rc = trunc ? do_truncate(d, argv[2], strtoull(argv[3], NULL, 10))
           : op >= 0 ? do_load(d, (enum load_op)op, argv[2], n, threads)
                     : do_check(d, argv[2], n);
    dfs_close(d);
    return rc;
}
