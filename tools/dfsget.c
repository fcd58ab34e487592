/*
 * dfsget: copies files out of dfs, like cp.
 *
 *   dfsget [-r] [-f] DFS_PATH... LOCAL
 *
 * Every block is checked against its CRC32C by the library.  A file is
 * written under a temporary name beside its destination and renamed only
 * when complete, so the final name never holds a partial copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "tools/toolkit.h"

#define GET_BUF (1u << 20)

struct get {
    struct dfs *d;
    bool recursive, force;
    uint8_t *buf;
    int failures;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dfsget [-r] [-f] [-M masters] [-k keyfile] DFS_PATH... LOCAL\n"
            "\n"
            "Copies files out of dfs, like cp: into LOCAL when it is a directory, else\n"
            "as LOCAL.  LOCAL may be - for standard output.  Checksums are verified;\n"
            "a destination appears under its name only when complete.\n"
            "\n"
            "  -r          copy directories recursively\n"
            "  -f          overwrite existing local files\n"
            "  -M LIST     masters host:port,... (default: $DFS_MASTERS)\n"
            "  -k FILE     cluster key file (default: $DFS_KEY_FILE)\n"
            "\n"
            "Exit codes: 0 every file copied, 1 some failed, 2 usage error.\n");
}

static int fail(struct get *g, const char *src, const char *what, int err)
{
    const char *why = g->d ? dfs_last_error(g->d) : "";
    fprintf(stderr, "dfsget: %s: %s: %s%s%s\n", src, what, dfs_strerror(err),
            why[0] ? " (" : "", why[0] ? why : "");
    g->failures++;
    return err;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int copy_out(struct get *g, struct dfs_file *f, int fd, const char *src,
                    uint64_t size)
{
    struct toolkit_progress prog;
    toolkit_progress_start(&prog, src, size);
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = dfs_file_pread(f, g->buf, GET_BUF, off);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        rc = write_all(fd, g->buf, (size_t)n);
        if (rc < 0)
            break;
        off += (uint64_t)n;
        toolkit_progress_add(&prog, (uint64_t)n);
    }
    toolkit_progress_end(&prog);
    if (rc == 0 && off != size)
        rc = -EIO;   /* the file ended before its committed size */
    return rc;
}

static int get_file(struct get *g, const char *src, const struct dfs_attr *at,
                    const char *local)
{
    bool to_stdout = !strcmp(local, "-");
    struct stat st;
    if (!to_stdout && !g->force && lstat(local, &st) == 0) {
        fprintf(stderr, "dfsget: %s exists (use -f to overwrite)\n", local);
        g->failures++;
        return -EEXIST;
    }
    char *tmp = NULL;
    int fd = STDOUT_FILENO;
    if (!to_stdout) {
        if (asprintf(&tmp, "%s.dfsget-XXXXXX", local) < 0)
            return -ENOMEM;
        fd = mkstemp(tmp);
        if (fd < 0) {
            fprintf(stderr, "dfsget: %s: %s\n", local, strerror(errno));
            g->failures++;
            free(tmp);
            return -errno;
        }
    }
    struct dfs_file *f;
    int rc = dfs_file_open(g->d, at->ino, DFS_O_READ, &f, NULL);
    if (rc == 0) {
        rc = copy_out(g, f, fd, src, dfs_file_size(f));
        dfs_file_close(f);
    }
    if (!to_stdout) {
        if (rc == 0 && fchmod(fd, at->mode & 07777) < 0)
            rc = -errno;
        if (rc == 0 && fsync(fd) < 0)
            rc = -errno;
        close(fd);
        if (rc == 0 && rename(tmp, local) < 0)
            rc = -errno;
        if (rc < 0)
            unlink(tmp);
        free(tmp);
    }
    return rc < 0 ? fail(g, src, local, rc) : 0;
}

static int get_path(struct get *g, const char *src, const char *local);

struct get_dir {
    struct get *g;
    const char *src, *local;
};

static int get_entry(const struct dfs_dirent *e, void *arg)
{
    struct get_dir *gd = arg;
    if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
        return 0;
    char *s, *l;
    if (asprintf(&s, "%s/%s", strcmp(gd->src, "/") ? gd->src : "", e->name) < 0)
        return -ENOMEM;
    if (asprintf(&l, "%s/%s", gd->local, e->name) < 0) {
        free(s);
        return -ENOMEM;
    }
    get_path(gd->g, s, l);
    free(s);
    free(l);
    return 0;
}

static int get_path(struct get *g, const char *src, const char *local)
{
    struct dfs_attr at;
    int rc = dfs_resolve(g->d, src, &at);
    if (rc < 0)
        return fail(g, src, "lookup", rc);
    if (S_ISREG(at.mode))
        return get_file(g, src, &at, local);
    if (!S_ISDIR(at.mode)) {
        fprintf(stderr, "dfsget: %s: not a regular file, skipped\n", src);
        return 0;
    }
    if (!g->recursive) {
        fprintf(stderr, "dfsget: %s is a directory (use -r)\n", src);
        g->failures++;
        return -EISDIR;
    }
    if (mkdir(local, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "dfsget: %s: %s\n", local, strerror(errno));
        g->failures++;
        return -errno;
    }
    struct get_dir gd = { g, src, local };
    rc = dfs_readdir(g->d, at.ino, 0, 0, get_entry, &gd);
    return rc < 0 ? fail(g, src, "readdir", rc) : 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

int main(int argc, char **argv)
{
    struct toolkit_opts o = { 0 };
    struct get g = { 0 };
    char **args = calloc((size_t)argc, sizeof(*args));
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int code;
        if (toolkit_standard_option("dfsget", usage, argc, argv, &i, &o, &code)) {
            if (code >= 0)
                return code;
            continue;
        }
        if (!strcmp(a, "-r"))
            g.recursive = true;
        else if (!strcmp(a, "-f"))
            g.force = true;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dfsget: unknown option %s (see --help)\n", a);
            return TOOL_USAGE;
        } else
            args[n++] = argv[i];
    }
    if (n < 2) {
        usage(stderr);
        return TOOL_USAGE;
    }
    g.d = toolkit_open("dfsget", &o);
    g.buf = aligned_alloc(4096, GET_BUF);
    if (!g.d || !g.buf)
        return TOOL_FAILED;
    const char *local = args[n - 1];
    struct stat st;
    bool into = strcmp(local, "-") && stat(local, &st) == 0 && S_ISDIR(st.st_mode);
    if (!into && n > 2 && strcmp(local, "-")) {
        fprintf(stderr, "dfsget: %s is not a directory\n", local);
        g.failures++;
    }
    for (int i = 0; i < n - 1 && (into || n == 2 || !strcmp(local, "-")); i++) {
        char *dst = NULL;
        if (into && asprintf(&dst, "%s/%s", local, base_name(args[i])) < 0)
            break;
        get_path(&g, args[i], into ? dst : local);
        free(dst);
    }
    dfs_close(g.d);
    free(g.buf);
    free(args);
    return g.failures ? TOOL_FAILED : TOOL_OK;
}
