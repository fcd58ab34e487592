/*
 * toolkit: options, session opening and output helpers shared by the
 * tools.  Nothing here keeps state between calls.
 */
#include "toolkit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/log.h"
#include "common/version.h"

static bool take_value(int argc, char **argv, int *i, const char *shortopt,
                       const char *longopt, const char **out)
{
    size_t n = strlen(longopt);
    if (!strcmp(argv[*i], shortopt) && *i + 1 < argc) {
        *out = argv[++*i];
        return true;
    }
    if (!strncmp(argv[*i], longopt, n) && argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return true;
    }
    return false;
}

bool toolkit_common_option(int argc, char **argv, int *i,
                           struct toolkit_opts *o)
{
    return take_value(argc, argv, i, "-M", "--masters", &o->masters) ||
           take_value(argc, argv, i, "-k", "--key", &o->key_file);
}

bool toolkit_standard_option(const char *prog, void (*usage)(FILE *out),
                             int argc, char **argv, int *i,
                             struct toolkit_opts *o, int *exit_code)
{
    *exit_code = -1;
    if (!strcmp(argv[*i], "--help") || !strcmp(argv[*i], "-h")) {
        usage(stdout);
        *exit_code = TOOL_OK;
        return true;
    }
    if (!strcmp(argv[*i], "--version")) {
        printf("%s %s\n", prog, DFS_VERSION);
        *exit_code = TOOL_OK;
        return true;
    }
    return toolkit_common_option(argc, argv, i, o);
}

struct dfs *toolkit_open(const char *prog, struct toolkit_opts *o)
{
    if (!o->masters)
        o->masters = getenv("DFS_MASTERS");
    if (!o->key_file)
        o->key_file = getenv("DFS_KEY_FILE");
    /* Library warnings (a refused handshake) go to stderr, quietly. */
    log_init(prog, LOG_ERROR, NULL);
    struct dfs_opts opts = {
        .masters = o->masters, .key_file = o->key_file, .client_name = prog,
        .uid = (uint32_t)getuid(), .gid = (uint32_t)getgid(),
        .op_timeout_ms = 30000,
    };
    struct dfs *d = NULL;
    char err[512];
    int rc = dfs_open(&opts, &d, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "%s: cannot reach the cluster: %s\n", prog, err);
        return NULL;
    }
    return d;
}

void toolkit_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

const char *toolkit_type_name(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
    }
}

void toolkit_mode_string(unsigned mode, char buf[11])
{
    static const char types[] = "?pc?d?b?-?l?s???";
    static const char rwx[] = "rwxrwxrwx";
    buf[0] = types[(mode & S_IFMT) >> 12];
    for (int i = 0; i < 9; i++)
        buf[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
    if (mode & S_ISUID)
        buf[3] = (mode & S_IXUSR) ? 's' : 'S';
    if (mode & S_ISGID)
        buf[6] = (mode & S_IXGRP) ? 's' : 'S';
    if (mode & S_ISVTX)
        buf[9] = (mode & S_IXOTH) ? 't' : 'T';
    buf[10] = '\0';
}

int toolkit_parent(struct dfs *d, const char *path, struct dfs_attr *parent,
                   char *name, size_t name_size)
{
    if (path[0] != '/')
        return -EINVAL;
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *slash = path + len;
    while (slash > path && slash[-1] != '/')
        slash--;
    size_t n = (size_t)(path + len - slash);
    if (n == 0)
        return -EINVAL;
    if (n >= name_size)
        return -ENAMETOOLONG;
    memcpy(name, slash, n);
    name[n] = '\0';
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return -ENOMEM;
    int rc = dfs_resolve(d, dir, parent);
    free(dir);
    if (rc == 0 && !S_ISDIR(parent->mode))
        rc = -ENOTDIR;
    return rc;
}

/* ---- progress -------------------------------------------------------------- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human(double v, char *buf, size_t size)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void progress_draw(struct toolkit_progress *p, bool final)
{
    double now = mono_s();
    if (!final && now - p->last_draw < 0.2)
        return;
    p->last_draw = now;
    double dt = now - p->start > 1e-6 ? now - p->start : 1e-6;
    double rate = (double)p->done / dt;
    char done[32], speed[32];
    human((double)p->done, done, sizeof(done));
    human(rate, speed, sizeof(speed));
    if (p->total) {
        int pct = (int)(100.0 * (double)p->done / (double)p->total);
        int bar = pct * 30 / 100;
        double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
        fprintf(stderr, "\r%-24.24s [%-30.*s] %3d%% %10s %10s/s ETA %4.0fs",
                p->name, bar, "==============================", pct, done, speed, eta);
    } else {
        fprintf(stderr, "\r%-24.24s %10s %10s/s", p->name, done, speed);
    }
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

void toolkit_progress_start(struct toolkit_progress *p, const char *name,
                            uint64_t total)
{
    *p = (struct toolkit_progress){ .on = isatty(STDERR_FILENO), .name = name,
                                    .total = total, .start = mono_s() };
}

void toolkit_progress_add(struct toolkit_progress *p, uint64_t n)
{
    p->done += n;
    if (p->on)
        progress_draw(p, false);
}

void toolkit_progress_end(struct toolkit_progress *p)
{
    if (p->on)
        progress_draw(p, true);
}
