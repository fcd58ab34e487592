/*
 * nsload: namespace load and verification for the cluster tests.
 *
 *   nsload create DIR N [THREADS]   creates /DIR and files f0..f(N-1) in it
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

struct job {
    uint64_t dir;
    long first, step, n;
    int err;
    long failed_at;
};

static void *create_worker(void *arg)
{
    struct job *j = arg;
    struct dfs *d = tsession_open("nsload", NSLOAD_TIMEOUT_MS);
    if (!d) {
        j->err = -ECONNREFUSED;
        return NULL;
    }
    char name[32];
    for (long i = j->first; i < j->n; i += j->step) {
        snprintf(name, sizeof(name), "f%ld", i);
        struct dfs_attr a;
        int rc = dfs_create(d, j->dir, name, 0644, 0, &a);
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

static int do_create(struct dfs *d, const char *dir, long n, int threads)
{
    struct dfs_attr at;
    int rc = dfs_mkdir(d, DFS_ROOT_INO, dir, 0755, &at);
    if (rc < 0) {
        fprintf(stderr, "nsload: mkdir /%s: %s\n", dir, dfs_strerror(rc));
        return 1;
    }
    struct job jobs[64];
    pthread_t th[64];
    double t0 = now_s();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ at.ino, t, threads, n, 0, -1 };
        pthread_create(&th[t], NULL, create_worker, &jobs[t]);
    }
    int status = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        if (jobs[t].err) {
            fprintf(stderr, "nsload: create /%s/f%ld: %s\n", dir, jobs[t].failed_at,
                    dfs_strerror(jobs[t].err));
            status = 1;
        }
    }
    double dt = now_s() - t0;
    printf("nsload: created %ld files in /%s with %d clients: %.0f creates/s\n", n,
           dir, threads, (double)n / dt);
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
    if (argc < 4 || (strcmp(argv[1], "create") && strcmp(argv[1], "check") && !trunc)) {
        fprintf(stderr, "usage: nsload create|check DIR N [THREADS]\n"
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
           : !strcmp(argv[1], "create") ? do_create(d, argv[2], n, threads)
                                        : do_check(d, argv[2], n);
    dfs_close(d);
    return rc;
}
