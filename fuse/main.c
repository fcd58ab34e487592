/*
 * dfs-mount: mounts dfs as a POSIX directory through FUSE (low-level API).
 *
 * Owns the command line, the session with the cluster (one struct dfs for
 * the whole mount), the FUSE session and the daemon start-up.
 *
 * Start-up, in this order, so that every failure is a message and a
 * non-zero exit of the command the user ran, never a hung mount:
 *  1. parse the command line (usage error: exit 2);
 *  2. without -f, fork: the parent waits on a pipe for the child's verdict
 *     and exits with it.  Forking comes first because libdfs and libfuse
 *     start threads, which a later fork would lose;
 *  3. dfs_open: reaches a master with the cluster key (wrong key, nothing
 *     listening: exit 1 with dfs_open's message);
 *  4. fuse_session_new + fuse_session_mount;
 *  5. tell the parent "mounted", detach (setsid, stdio to /dev/null), and
 *     serve with fuse_session_loop_mt until unmounted or signalled.
 */
#include "common/log.h"
#include "common/version.h"
#include "fuse/fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Worker threads: at most, and kept idle after a burst (each holds a
 * max_write buffer). */
#define MOUNT_MAX_THREADS 1024
#define MOUNT_IDLE_THREADS 32

#define MOUNT_USAGE \
    "usage: dfs-mount MNT [-M host:port,...] [-k KEYFILE] [-o OPT[,OPT...]] [-f] [-d]\n" \
    "mounts dfs at MNT through FUSE.\n" \
    "  -M ADDRS   masters (else -o masters=, else DFS_MASTERS)\n" \
    "  -k FILE    cluster key (else -o keyfile=, else DFS_KEY_FILE)\n" \
    "  -f         stay in the foreground\n" \
    "  -d         debug: foreground, every FUSE request logged, strict checks\n" \
    "  -o masters=ADDRS,keyfile=FILE   as -M and -k\n" \
    "  -o attr_timeout=S,entry_timeout=S   kernel cache times (default 1 s)\n" \
    "  -o direct_io   bypass the page cache\n" \
    "  -o no_local_reads   read replicas on this host through their chunkserver\n" \
    "  -o strict      abort on a kernel/daemon lookup-count mismatch (tests)\n" \
    "  -o log=FILE,loglevel=debug|info|warn|error   where the daemon logs\n" \
    "  other -o options (ro, noatime, nosuid, ...) go to FUSE; see mount.fuse3(8)\n" \
    "As root it mounts with allow_other and default_permissions.\n"

struct mount_opts {
    const char *mnt;
    char *masters;                /* malloc'ed */
    char *keyfile;                /* malloc'ed */
    char *log_path;               /* malloc'ed; NULL: stderr until detached */
    enum log_level level;
    char *fuse_opts;              /* malloc'ed "-o" list passed to FUSE, or NULL */
    struct fsops_config fs;
    bool foreground, debug;
    bool no_local_reads;
};

static void opts_release(struct mount_opts *o)
{
    free(o->masters);
    free(o->keyfile);
    free(o->log_path);
    free(o->fuse_opts);
}

static int set_str(char **dst, const char *val)
{
    char *copy = strdup(val);
    if (!copy)
        return -ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

/* Appends ",part" (or "part") to *list. */
static int append(char **list, const char *sep, const char *part)
{
    size_t old = *list ? strlen(*list) : 0;
    size_t need = old + strlen(sep) + strlen(part) + 1;
    char *s = realloc(*list, need);
    if (!s)
        return -ENOMEM;
    snprintf(s + old, need - old, "%s%s", old ? sep : "", part);
    *list = s;
    return 0;
}

static int parse_seconds(const char *key, const char *val, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || v < 0) {
        fprintf(stderr, "dfs-mount: %s=%s: want a number of seconds >= 0\n", key, val);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* One -o item.  *in_masters: the previous item was masters=, whose list
 * may have been split at its commas ("masters=a:1,b:2"). */
static int parse_item(struct mount_opts *o, const char *item, bool *in_masters)
{
    const char *eq = strchr(item, '=');
    const char *val = eq ? eq + 1 : "";
    size_t klen = eq ? (size_t)(eq - item) : strlen(item);
    bool continues = *in_masters && !eq && strchr(item, ':');
    *in_masters = false;
    if (continues) {
        *in_masters = true;
        return append(&o->masters, ",", item);
    }
#define KEY_IS(k) (klen == strlen(k) && strncmp(item, k, klen) == 0)
    if (KEY_IS("masters")) {
        *in_masters = true;
        return set_str(&o->masters, val);
    }
    if (KEY_IS("keyfile"))
        return set_str(&o->keyfile, val);
    if (KEY_IS("attr_timeout"))
        return parse_seconds("attr_timeout", val, &o->fs.attr_timeout);
    if (KEY_IS("entry_timeout"))
        return parse_seconds("entry_timeout", val, &o->fs.entry_timeout);
    if (KEY_IS("log"))
        return set_str(&o->log_path, val);
    if (KEY_IS("loglevel")) {
        if (log_parse_level(val, &o->level) == 0)
            return 0;
        fprintf(stderr, "dfs-mount: loglevel=%s: want debug, info, warn or error\n", val);
        return -EINVAL;
    }
    if (KEY_IS("direct_io")) {
        o->fs.direct_io = true;
        return 0;
    }
    if (KEY_IS("strict")) {
        o->fs.strict = true;
        return 0;
    }
    if (KEY_IS("no_local_reads")) {
        o->no_local_reads = true;
        return 0;
    }
#undef KEY_IS
    return append(&o->fuse_opts, ",", item);
}

static int parse_o(struct mount_opts *o, const char *list)
{
    char *copy = strdup(list);
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    bool in_masters = false;
    char *save = NULL;
    for (char *it = strtok_r(copy, ",", &save); it && rc == 0;
         it = strtok_r(NULL, ",", &save))
        rc = parse_item(o, it, &in_masters);
    free(copy);
    return rc;
}

/* Fills what the command line left out from the environment. */
static int opts_from_env(struct mount_opts *o)
{
    const char *m = getenv("DFS_MASTERS");
    const char *k = getenv("DFS_KEY_FILE");
    int rc = 0;
    if (!o->masters && m)
        rc = set_str(&o->masters, m);
    if (rc == 0 && !o->keyfile && k)
        rc = set_str(&o->keyfile, k);
    return rc;
}

/* Returns 0, 1 when --help/--version answered, or -EINVAL (usage error). */
static int opts_parse(struct mount_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    o->fs.attr_timeout = 1.0;
    o->fs.entry_timeout = 1.0;
    o->level = LOG_INFO;
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "M:k:o:fdh", longs, NULL)) != -1) {
        switch (c) {
        case 'M': rc = set_str(&o->masters, optarg); break;
        case 'k': rc = set_str(&o->keyfile, optarg); break;
        case 'o': rc = parse_o(o, optarg); break;
        case 'f': o->foreground = true; break;
        case 'd': o->debug = o->foreground = o->fs.strict = true;
                  o->level = LOG_DEBUG; break;
        case 'h': fputs(MOUNT_USAGE, stdout); return 1;
        case 'V': printf("dfs-mount %s\n", DFS_VERSION); return 1;
        default: rc = -EINVAL; break;
        }
    }
    if (rc == 0 && optind != argc - 1) {
        fprintf(stderr, "dfs-mount: give exactly one mount point\n");
        rc = -EINVAL;
    }
    if (rc == 0) {
        o->mnt = argv[optind];
        rc = opts_from_env(o);
    }
    if (rc < 0)
        fputs(MOUNT_USAGE, stderr);
    return rc;
}

/* ---- daemon ------------------------------------------------------------------ */

/*
 * Forks; the parent never returns: it exits with the status byte the child
 * writes to the pipe (1 when the child dies without a word).  The child
 * gets the pipe's write end in *report.
 */
static int daemon_fork(int *report)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    if (pid == 0) {
        close(p[0]);
        *report = p[1];
        return 0;
    }
    close(p[1]);
    unsigned char status = 1;
    if (read(p[0], &status, 1) != 1)
        status = 1;
    _exit(status);
}

/* Tells the waiting parent, once, how start-up ended; on success, detaches. */
static void daemon_report(int *report, unsigned char status)
{
    if (*report < 0)
        return;
    if (status == 0) {
        if (setsid() < 0)
            log_warn("setsid: %s", strerror(errno));
        if (chdir("/") < 0)
            log_warn("chdir /: %s", strerror(errno));
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            if (null > STDERR_FILENO)
                close(null);
        }
    }
    ssize_t n = write(*report, &status, 1);
    (void)n;
    close(*report);
    *report = -1;
}

/* ---- the mount -------------------------------------------------------------- */

static struct fuse_session *session_new(const struct mount_opts *o, struct fsops *fs)
{
    char base[128];
    snprintf(base, sizeof(base), "fsname=dfs,subtype=dfs,default_permissions%s",
             geteuid() == 0 ? ",allow_other" : "");
    char *list = NULL;
    struct fuse_session *se = NULL;
    if (append(&list, ",", base) < 0 ||
        (o->fuse_opts && append(&list, ",", o->fuse_opts) < 0))
        goto out_list;
    char *argv[] = { "dfs-mount", "-o", list, o->debug ? "-d" : NULL, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, argv);
    se = fuse_session_new(&args, fsops_ops(), sizeof(*fsops_ops()), fs);
    fuse_opt_free_args(&args);
out_list:
    free(list);
    return se;
}

/* Serves until unmounted or signalled; returns the exit status. */
static int serve(const struct mount_opts *o, struct fsops *fs, int *report)
{
    int status = 1;
    struct fuse_session *se = session_new(o, fs);
    if (!se) {
        fprintf(stderr, "dfs-mount: FUSE refused the options\n");
        return 1;
    }
    fsops_session(fs, se);
    if (fuse_set_signal_handlers(se) < 0)
        goto out_session;
    if (fuse_session_mount(se, o->mnt) < 0) {
        fprintf(stderr, "dfs-mount: cannot mount at %s\n", o->mnt);
        goto out_signals;
    }
    daemon_report(report, 0);
    log_info("mounted at %s (masters %s)", o->mnt, o->masters);
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    if (!cfg) {
        log_error("out of memory");
        goto out_mount;
    }
    /* libfuse stops at 10 workers by default, and every blocking lock
     * waiter (F_SETLKW, flock) holds one while it waits: ten waiters would
     * leave no thread to serve the unlock they wait for. */
    fuse_loop_cfg_set_max_threads(cfg, MOUNT_MAX_THREADS);
    fuse_loop_cfg_set_idle_threads(cfg, MOUNT_IDLE_THREADS);
    int rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
    status = rc < 0 ? 1 : 0;
    log_info("unmounting %s%s", o->mnt, rc > 0 ? " (signal)" : "");
out_mount:
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
out_session:
    fsops_session(fs, NULL);
    fuse_session_destroy(se);
    return status;
}

static int run(const struct mount_opts *o, int *report)
{
    if (log_init("dfs-mount", o->level, o->log_path) < 0) {
        fprintf(stderr, "dfs-mount: cannot open log %s: %s\n", o->log_path,
                strerror(errno));
        return 1;
    }
    struct dfs_opts dopts = {
        .masters = o->masters, .key_file = o->keyfile, .client_name = "dfs-mount",
        .uid = (uint32_t)geteuid(), .gid = (uint32_t)getegid(),
        .no_local_reads = o->no_local_reads,
    };
    struct dfs *d = NULL;
    char err[512] = "";
    int rc = dfs_open(&dopts, &d, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "dfs-mount: cannot reach the cluster: %s\n", err);
        return 1;
    }
    int status = 1;
    struct fsops *fs = fsops_new(d, &o->fs);
    if (!fs) {
        fprintf(stderr, "dfs-mount: out of memory\n");
        goto out_dfs;
    }
    status = serve(o, fs, report);
    fsops_free(fs);
out_dfs:
    dfs_close(d);
    return status;
}

/* Every file open through the mount may hold a descriptor of its replica
 * (local reads) beside the chunkserver connections: the soft limit of
 * 1024 would cap the open files well below what programs expect. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct mount_opts o = { 0 };
    int rc = opts_parse(&o, argc, argv);
    if (rc != 0) {
        opts_release(&o);
        return rc > 0 ? 0 : 2;
    }
    int report = -1;
    if (!o.foreground && (rc = daemon_fork(&report)) < 0) {
        fprintf(stderr, "dfs-mount: fork: %s\n", strerror(-rc));
        opts_release(&o);
        return 1;
    }
    raise_nofile();
    int status = run(&o, &report);
    daemon_report(&report, (unsigned char)status);
    opts_release(&o);
    return status;
}
