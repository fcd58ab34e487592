/*
 * dfs-chunkserver: stores dfs chunks with CRC32C per 64 KiB block.
 *
 *   dfs-chunkserver [-c FILE] [-d DIR]... [-o key=value]... [--key=value]...
 *
 * Settings come from csd_conf_keys (--help lists them): defaults, then the
 * file, then the overrides in order, then the -d directories (each -d
 * adds one, or a comma list; together they replace data_dir).  SIGTERM
 * and SIGINT stop the server cleanly (connections closed, disk jobs
 * finished, chunks synced); they are taken through a signalfd on the loop,
 * so no handler runs in signal context.  Exit status: 0 after a clean
 * stop, 1 on a runtime failure (every data directory failed included), 2
 * on a usage or configuration error (a directory of another cluster or
 * server included).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "chunkserver/csd.h"
#include "common/conf.h"
#include "common/dfs_error.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/version.h"

struct args {
    const char *file;
    const char **overrides;   /* borrowed from argv, or "key=value" of it,
                                 or dirs */
    size_t n;
    char *dirs;               /* "data_dir=" and every -d, comma-joined */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dfs-chunkserver [-c FILE] [-d DIR]... [-o key=value]... "
            "[--key=value]...\n"
            "       dfs-chunkserver --help | --version\n"
            "stores dfs chunks with CRC32C per 64 KiB block.\n\n"
            "settings (file lines \"key = value\"; -o and --key=value "
            "override the file; -d DIR, repeatable, sets data_dir):\n");
    conf_print_help(csd_conf_keys, out);
}

/* Appends one -d argument to a->dirs. */
static int add_dir(struct args *a, const char *dir)
{
    const char *head = a->dirs ? a->dirs : "data_dir=";
    size_t len = strlen(head) + strlen(dir) + 2;
    char *s = malloc(len);
    if (!s)
        return -1;
    snprintf(s, len, "%s%s%s", head, a->dirs ? "," : "", dir);
    free(a->dirs);
    a->dirs = s;
    return 0;
}

/* 0, 1 when the program should exit 0 at once, or -1 on a usage error. */
static int parse_args(int argc, char **argv, struct args *a)
{
    a->overrides = calloc((size_t)argc + 1, sizeof(*a->overrides));
    if (!a->overrides)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(s, "--version") == 0) {
            printf("dfs-chunkserver %s\n", DFS_VERSION);
            return 1;
        }
        if (strcmp(s, "-d") == 0 && i + 1 < argc) {
            if (add_dir(a, argv[++i]) < 0)
                return -1;
        } else if ((strcmp(s, "-c") == 0 || strcmp(s, "-o") == 0) &&
                   i + 1 < argc) {
            if (s[1] == 'c')
                a->file = argv[++i];
            else
                a->overrides[a->n++] = argv[++i];
        } else if (strncmp(s, "--", 2) == 0 && s[2]) {
            a->overrides[a->n++] = s + 2;
        } else {
            fprintf(stderr, "dfs-chunkserver: unexpected argument \"%s\"\n",
                    s);
            return -1;
        }
    }
    if (a->dirs)
        a->overrides[a->n++] = a->dirs;
    return 0;
}

static int setup_log(const struct csd_conf *conf)
{
    enum log_level level;
    if (log_parse_level(conf->log_level, &level) < 0) {
        fprintf(stderr, "dfs-chunkserver: log_level: \"%s\" is not debug, "
                "info, warn or error\n", conf->log_level);
        return -DFS_ECONF;
    }
    int rc = log_init("dfs-chunkserver", level, conf->log_file);
    if (rc < 0)
        fprintf(stderr, "dfs-chunkserver: log_file %s: %s\n", conf->log_file,
                dfs_strerror(rc));
    return rc;
}

static void on_signal(struct ev_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)events;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info("chunkserver: signal %u, stopping", si.ssi_signo);
    csd_stop(arg);
}

/* Blocks SIGTERM/SIGINT and returns a signalfd for them, or -errno. */
static int signals_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

static int serve(const struct csd_conf *conf)
{
    char err[512];
    struct csd *d;
    int sfd = signals_fd();
    if (sfd < 0) {
        log_error("signalfd: %s", dfs_strerror(sfd));
        return 1;
    }
    int rc = csd_open(conf, &d, err, sizeof(err));
    if (rc < 0) {
        log_error("%s", err);
        close(sfd);
        return rc == -DFS_ECONF || rc == -DFS_ECLUSTER ? 2 : 1;
    }
    rc = ev_fd_add(d->loop, sfd, EV_READ, on_signal, d);
    if (rc == 0)
        rc = csd_run(d);
    if (rc < 0)
        log_error("chunkserver: %s", dfs_strerror(rc));
    ev_fd_del(d->loop, sfd);
    csd_close(d);
    close(sfd);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct args a = { 0 };
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.overrides);
        free(a.dirs);
        if (rc < 0)
            usage(stderr);
        return rc < 0 ? 2 : 0;
    }
    struct csd_conf conf = { 0 };
    char err[512];
    rc = conf_load(csd_conf_keys, a.file, a.overrides, a.n, &conf, err,
                   sizeof(err));
    free(a.overrides);
    free(a.dirs);
    int status = 2;
    if (rc < 0)
        fprintf(stderr, "dfs-chunkserver: %s\n", err);
    else if (setup_log(&conf) == 0)
        status = serve(&conf);
    conf_release(csd_conf_keys, &conf);
    return status;
}
