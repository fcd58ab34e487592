/*
 * raftsim: command line of the deterministic Raft simulation.
 *
 *   raftsim --seeds A-B [--nodes 3|5] [--steps N] [--trace] [--bug NAME]
 *           [--jobs N]
 *   raftsim --check-bugs [--seeds A-B] [--nodes 3|5] [--steps N] [--jobs N]
 *
 * Runs each seed (sim.c) and prints one line per failing seed, with the
 * command that replays it, then exactly "raftsim: N passed, M failed" as the
 * last line; exit status 0 only when M is 0.  --check-bugs plants each
 * known bug in turn (raft_config.test_bug) and runs seeds in order until
 * the simulation catches it: a bug that survives the seed range is a
 * failure of the tester.  Seeds run on --jobs threads (default: the online
 * CPUs); each seed is independent and deterministic, and output is printed
 * in seed order, so the threads change nothing but the wall time.
 *
 * Invariants:
 *  1. The replay line names every parameter that shaped the run.
 *  2. Nothing is printed after the summary line.
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

#include "master/raft.h"
#include "tests/sim/sim.h"

#define DEFAULT_STEPS 20000
#define MAX_JOBS 64

struct options {
    uint64_t first, last;
    bool seeds_given;
    unsigned nodes;        /* 0: per seed */
    uint64_t steps;
    bool trace;
    unsigned bug;
    bool check_bugs;
    unsigned jobs;
};

static const char *const bug_names[RAFT_BUG_LAST] = {
    [RAFT_BUG_COMMIT_OLD_TERM] = "commit-old-term",
    [RAFT_BUG_VOTE_NO_PERSIST] = "vote-no-persist",
    [RAFT_BUG_STALE_APPEND] = "stale-append",
    [RAFT_BUG_NO_TRUNCATE] = "no-truncate",
    [RAFT_BUG_READ_NO_CONFIRM] = "read-no-confirm",
    [RAFT_BUG_COMMIT_NO_QUORUM] = "commit-no-quorum",
    [RAFT_BUG_VOTE_NO_RESET] = "vote-no-reset",
    [RAFT_BUG_ACK_NO_PERSIST] = "ack-no-persist",
    [RAFT_BUG_READ_OLD_TERM] = "read-old-term",
    [RAFT_BUG_LEASE_NO_EXPIRY] = "lease-no-expiry",
};

/* ---- one batch of seeds, on several threads -------------------------------- */

struct outcome {
    bool done;
    bool failed;
    unsigned nodes;
    uint64_t step;
    char *msg;                 /* owned; failures only */
    struct sim_stats stats;
};

struct batch {
    const struct options *o;
    unsigned bug;
    bool stop_at_first;        /* --check-bugs: first failure is enough */
    uint64_t count;            /* seeds first .. first + count - 1 */
    struct outcome *out;       /* count of them */
    pthread_mutex_t mu;
    uint64_t next;             /* protected by mu */
    uint64_t first_fail;       /* protected by mu; count when none */
    int err;                   /* protected by mu */
};

static unsigned nodes_for(const struct options *o, uint64_t seed)
{
    return o->nodes ? o->nodes : sim_default_nodes(seed);
}

static void run_one(struct batch *b, uint64_t i)
{
    const struct options *o = b->o;
    uint64_t seed = o->first + i;
    struct sim_params p = {
        .seed = seed, .nodes = nodes_for(o, seed), .steps = o->steps,
        .bug = b->bug, .trace = o->trace && i == 0 ? stdout : NULL,
    };
    struct sim_result res;
    struct outcome *out = &b->out[i];
    int rc = sim_run(&p, &res);
    pthread_mutex_lock(&b->mu);
    if (rc < 0)
        b->err = rc;
    out->done = rc == 0;
    out->failed = res.failed;
    out->nodes = p.nodes;
    out->step = res.step;
    out->stats = res.stats;
    if (res.failed) {
        out->msg = strdup(res.msg);
        if (i < b->first_fail)
            b->first_fail = i;
    }
    pthread_mutex_unlock(&b->mu);
}

static void *worker(void *arg)
{
    struct batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        uint64_t i = b->next++;
        bool stop = i >= b->count || b->err ||
                    (b->stop_at_first && i > b->first_fail);
        pthread_mutex_unlock(&b->mu);
        if (stop)
            return NULL;
        run_one(b, i);
    }
}

static int run_batch(struct batch *b)
{
    pthread_t th[MAX_JOBS];
    unsigned jobs = b->o->trace ? 1 : b->o->jobs;
    if (jobs > b->count)
        jobs = (unsigned)b->count;
    b->out = calloc(b->count, sizeof(*b->out));
    if (!b->out)
        return -ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    b->next = 0;
    b->first_fail = b->count;
    unsigned started = 0;
    for (; started < jobs; started++)
        if (pthread_create(&th[started], NULL, worker, b) != 0)
            break;
    if (started == 0)
        worker(b);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&b->mu);
    return b->err;
}

static void batch_free(struct batch *b)
{
    for (uint64_t i = 0; b->out && i < b->count; i++)
        free(b->out[i].msg);
    free(b->out);
}

static void print_replay(const struct options *o, uint64_t seed,
                         const struct outcome *out, unsigned bug)
{
    printf("FAIL seed=%" PRIu64 " nodes=%u step=%" PRIu64 ": %s [replay: "
           "bin/raftsim --seeds %" PRIu64 " --nodes %u --steps %" PRIu64
           "%s%s --trace]\n", seed, out->nodes, out->step,
           out->msg ? out->msg : "?", seed, out->nodes, o->steps,
           bug ? " --bug " : "", bug ? bug_names[bug] : "");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- modes ------------------------------------------------------------------- */

static int run_seeds(const struct options *o)
{
    struct batch b = { .o = o, .bug = o->bug, .count = o->last - o->first + 1 };
    double t0 = now_s();
    clock_t c0 = clock();
    int rc = run_batch(&b);
    double secs = now_s() - t0;
    double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    if (rc < 0) {
        batch_free(&b);
        fprintf(stderr, "raftsim: %s\n", strerror(-rc));
        printf("raftsim: 0 passed, %" PRIu64 " failed\n", b.count);
        return 1;
    }
    uint64_t passed = 0, failed = 0, worst_calm = 0, elections = 0,
             snapshots = 0, reads = 0, members = 0, crashes = 0;
    for (uint64_t i = 0; i < b.count; i++) {
        const struct outcome *out = &b.out[i];
        if (out->failed)
            print_replay(o, o->first + i, out, o->bug);
        passed += !out->failed;
        failed += out->failed;
        if (out->stats.calm_ticks > worst_calm)
            worst_calm = out->stats.calm_ticks;
        elections += out->stats.elections;
        snapshots += out->stats.snapshots;
        reads += out->stats.reads;
        members += out->stats.members;
        crashes += out->stats.crashes;
    }
    printf("raftsim: %" PRIu64 " seeds x %" PRIu64 " steps in %.1f s on %u "
           "threads (%.1f ms CPU per seed); %" PRIu64 " elections, %" PRIu64
           " crashes, %" PRIu64 " snapshots installed, %" PRIu64
           " membership changes, %" PRIu64 " reads; worst calm recovery %"
           PRIu64 " ticks\n", b.count, o->steps, secs,
           o->trace ? 1 : o->jobs, cpu * 1000 / (double)b.count, elections,
           crashes, snapshots, members, reads, worst_calm);
    batch_free(&b);
    printf("raftsim: %" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
    return failed ? 1 : 0;
}

static int check_bugs(const struct options *o)
{
    unsigned caught = 0, missed = 0;
    for (unsigned bug = 1; bug < RAFT_BUG_LAST; bug++) {
        struct batch b = { .o = o, .bug = bug, .stop_at_first = true,
                           .count = o->last - o->first + 1 };
        int rc = run_batch(&b);
        if (rc < 0) {
            fprintf(stderr, "raftsim: %s\n", strerror(-rc));
            missed++;
        } else if (b.first_fail < b.count) {
            const struct outcome *out = &b.out[b.first_fail];
            printf("bug %-16s caught after %3" PRIu64 " seeds (seed %" PRIu64
                   " step %" PRIu64 "): %s\n", bug_names[bug],
                   b.first_fail + 1, o->first + b.first_fail, out->step,
                   out->msg ? out->msg : "?");
            caught++;
        } else {
            printf("bug %-16s NOT caught in seeds %" PRIu64 "-%" PRIu64 "\n",
                   bug_names[bug], o->first, o->last);
            missed++;
        }
        fflush(stdout);
        batch_free(&b);
    }
    printf("raftsim: %u passed, %u failed\n", caught, missed);
    return missed ? 1 : 0;
}

/* ---- command line ---------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
            "usage: raftsim --seeds A-B [--nodes 3|5] [--steps N] [--trace] "
            "[--bug NAME] [--jobs N]\n"
            "       raftsim --check-bugs [--seeds A-B] [--nodes 3|5] "
            "[--steps N] [--jobs N]\n"
            "bugs:");
    for (unsigned b = 1; b < RAFT_BUG_LAST; b++)
        fprintf(stderr, " %s", bug_names[b]);
    fprintf(stderr, "\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_seeds(const char *s, struct options *o)
{
    char buf[64];
    if (!s || strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    char *dash = strchr(buf, '-');
    if (dash)
        *dash = '\0';
    if (!parse_u64(buf, &o->first))
        return false;
    o->last = o->first;
    if (dash && !parse_u64(dash + 1, &o->last))
        return false;
    return o->first <= o->last;
}

static unsigned parse_bug(const char *name)
{
    for (unsigned b = 1; name && b < RAFT_BUG_LAST; b++)
        if (strcmp(name, bug_names[b]) == 0)
            return b;
    return 0;
}

static unsigned default_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_JOBS ? MAX_JOBS : (unsigned)n;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){ .first = 1, .last = 200, .steps = DEFAULT_STEPS,
                           .jobs = default_jobs() };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (strcmp(a, "--seeds") == 0 && parse_seeds(v, o)) {
            o->seeds_given = true;
        } else if (strcmp(a, "--nodes") == 0 && parse_u64(v, &n) &&
                   (n == 3 || n == 5)) {
            o->nodes = (unsigned)n;
        } else if (strcmp(a, "--steps") == 0 && parse_u64(v, &n) && n > 0) {
            o->steps = n;
        } else if (strcmp(a, "--bug") == 0 && (o->bug = parse_bug(v))) {
        } else if (strcmp(a, "--jobs") == 0 && parse_u64(v, &n) && n >= 1 &&
                   n <= MAX_JOBS) {
            o->jobs = (unsigned)n;
        } else if (strcmp(a, "--trace") == 0) {
            o->trace = true;
            continue;
        } else if (strcmp(a, "--check-bugs") == 0) {
            o->check_bugs = true;
            continue;
        } else {
            fprintf(stderr, "raftsim: bad argument '%s'%s%s\n", a,
                    v ? " " : "", v ? v : "");
            return -1;
        }
        i++;
    }
    if (!o->seeds_given && !o->check_bugs)
        return -1;
    if (o->check_bugs && (o->bug || o->trace))
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) < 0)
        return usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    return o.check_bugs ? check_bugs(&o) : run_seeds(&o);
}
