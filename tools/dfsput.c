/*
 * dfsput: copies local files (or stdin) into dfs, like cp.
 *
 *   dfsput [-r] [-f] [-p] [-R N] LOCAL... DFS_PATH
 *
 * A file is acknowledged (exit 0) only after dfs_file_close() returned 0:
 * every replica has it on disk and the masters committed its length.  A
 * copy that fails is removed, so no partial file is left under the name.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "tools/toolkit.h"

#define PUT_BUF (4u << 20)

struct put {
    struct dfs *d;
    bool recursive, force, preserve;
    int goal;                 /* 0: the directory's */
    uint8_t *buf;
    int failures;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dfsput [-r] [-f] [-p] [-R N] [-M masters] [-k keyfile] LOCAL... DFS_PATH\n"
            "\n"
            "Copies LOCAL files into dfs, like cp: into DFS_PATH when it is a directory,\n"
            "else as DFS_PATH.  LOCAL may be - for standard input.\n"
            "\n"
            "  -r          copy directories recursively\n"
            "  -f          overwrite existing files\n"
            "  -p          keep mode and modification time\n"
            "  -R N        replication goal of the new files (default: the directory's)\n"
            "  -M LIST     masters host:port,... (default: $DFS_MASTERS)\n"
            "  -k FILE     cluster key file (default: $DFS_KEY_FILE)\n"
            "\n"
            "A progress bar is drawn on a terminal.  Exit codes: 0 every file copied,\n"
            "1 some failed, 2 usage error.\n");
}

static int report(struct put *p, const char *local, const char *dst, int err)
{
    const char *why = dfs_last_error(p->d);
    fprintf(stderr, "dfsput: %s -> %s: %s%s%s\n", local, dst, dfs_strerror(err),
            why[0] ? " (" : "", why[0] ? why : "");
    p->failures++;
    return err;
}

/* Creates (or, with -f, truncates) the target file; *ino receives it. */
static int open_target(struct put *p, uint64_t parent, const char *name,
                       mode_t mode, struct dfs_file **f)
{
    struct dfs_attr at;
    int rc = dfs_create(p->d, parent, name, mode & 07777, DFS_O_EXCL, &at);
    if (rc == -EEXIST && p->force) {
        rc = dfs_lookup(p->d, parent, name, &at);
        if (rc == 0 && S_ISDIR(at.mode))
            rc = -EISDIR;
        if (rc == 0)
            rc = dfs_file_open(p->d, at.ino, DFS_O_WRITE | DFS_O_TRUNC, f, NULL);
    } else if (rc == 0) {
        rc = dfs_file_open(p->d, at.ino, DFS_O_WRITE, f, NULL);
    }
    if (rc == 0 && p->goal) {
        struct dfs_setattr set = { .valid = DFS_SET_GOAL, .goal = (uint8_t)p->goal };
        rc = dfs_setattr(p->d, at.ino, &set, &at);
    }
    return rc;
}

static int copy_data(struct put *p, int fd, struct dfs_file *f, const char *name,
                     uint64_t total)
{
    struct toolkit_progress prog;
    toolkit_progress_start(&prog, name, total);
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, p->buf, PUT_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        ssize_t w = dfs_file_pwrite(f, p->buf, (size_t)n, off);
        if (w < 0) {
            rc = (int)w;
            break;
        }
        off += (uint64_t)n;
        toolkit_progress_add(&prog, (uint64_t)n);
    }
    toolkit_progress_end(&prog);
    return rc;
}

static int put_file(struct put *p, const char *local, uint64_t parent,
                    const char *name, const char *dst)
{
    bool is_stdin = !strcmp(local, "-");
    int fd = is_stdin ? STDIN_FILENO : open(local, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "dfsput: %s: %s\n", local, strerror(errno));
        p->failures++;
        return -errno;
    }
    struct stat st = { .st_mode = 0644 };
    if (!is_stdin)
        fstat(fd, &st);
    struct dfs_file *f = NULL;
    int rc = open_target(p, parent, name, st.st_mode, &f);
    if (rc == -EEXIST) {
        fprintf(stderr, "dfsput: %s exists (use -f to overwrite)\n", dst);
        p->failures++;
        goto out;
    }
    if (rc < 0) {
        report(p, local, dst, rc);
        goto out;
    }
    rc = copy_data(p, fd, f, name, is_stdin ? 0 : (uint64_t)st.st_size);
    int rc2 = dfs_file_close(f);
    if (rc == 0)
        rc = rc2;
    if (rc == 0 && p->preserve) {
        struct dfs_attr at;
        struct dfs_setattr set = { .valid = DFS_SET_MODE | DFS_SET_MTIME,
                                   .mode = st.st_mode & 07777,
                                   .mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 +
                                            st.st_mtim.tv_nsec };
        rc = dfs_lookup(p->d, parent, name, &at);
        if (rc == 0)
            rc = dfs_setattr(p->d, at.ino, &set, &at);
    }
    if (rc < 0) {
        report(p, local, dst, rc);
        dfs_unlink(p->d, parent, name);   /* no partial file under the name */
    }
out:
    if (!is_stdin)
        close(fd);
    return rc;
}

static int put_path(struct put *p, const char *local, uint64_t parent,
                    const char *name, const char *dst);

static int put_dir(struct put *p, const char *local, uint64_t parent,
                   const char *name, const char *dst)
{
    struct dfs_attr at;
    int rc = dfs_mkdir(p->d, parent, name, 0755, &at);
    if (rc == -EEXIST)
        rc = dfs_lookup(p->d, parent, name, &at);
    if (rc == 0 && !S_ISDIR(at.mode))
        rc = -ENOTDIR;
    if (rc < 0)
        return report(p, local, dst, rc);
    DIR *dir = opendir(local);
    if (!dir) {
        fprintf(stderr, "dfsput: %s: %s\n", local, strerror(errno));
        p->failures++;
        return -errno;
    }
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *sub_local, *sub_dst;
        if (asprintf(&sub_local, "%s/%s", local, e->d_name) < 0)
            break;
        if (asprintf(&sub_dst, "%s/%s", dst, e->d_name) < 0) {
            free(sub_local);
            break;
        }
        put_path(p, sub_local, at.ino, e->d_name, sub_dst);
        free(sub_local);
        free(sub_dst);
    }
    closedir(dir);
    return 0;
}

static int put_path(struct put *p, const char *local, uint64_t parent,
                    const char *name, const char *dst)
{
    struct stat st;
    if (strcmp(local, "-") && stat(local, &st) < 0) {
        fprintf(stderr, "dfsput: %s: %s\n", local, strerror(errno));
        p->failures++;
        return -errno;
    }
    if (strcmp(local, "-") && S_ISDIR(st.st_mode)) {
        if (!p->recursive) {
            fprintf(stderr, "dfsput: %s is a directory (use -r)\n", local);
            p->failures++;
            return -EISDIR;
        }
        return put_dir(p, local, parent, name, dst);
    }
    return put_file(p, local, parent, name, dst);
}

static const char *base_name(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *s = path + len;
    while (s > path && s[-1] != '/')
        s--;
    return s;
}

int main(int argc, char **argv)
{
    struct toolkit_opts o = { 0 };
    struct put p = { 0 };
    char **args = calloc((size_t)argc, sizeof(*args));
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int code;
        if (toolkit_standard_option("dfsput", usage, argc, argv, &i, &o, &code)) {
            if (code >= 0)
                return code;
            continue;
        }
        if (!strcmp(a, "-r"))
            p.recursive = true;
        else if (!strcmp(a, "-f"))
            p.force = true;
        else if (!strcmp(a, "-p"))
            p.preserve = true;
        else if (!strcmp(a, "-R") && i + 1 < argc)
            p.goal = atoi(argv[++i]);
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dfsput: unknown option %s (see --help)\n", a);
            return TOOL_USAGE;
        } else
            args[n++] = argv[i];
    }
    if (n < 2 || (p.goal && (p.goal < 1 || p.goal > 16))) {
        usage(stderr);
        return TOOL_USAGE;
    }
    const char *dst = args[n - 1];
    if (dst[0] != '/') {
        fprintf(stderr, "dfsput: %s: the dfs path must be absolute\n", dst);
        return TOOL_USAGE;
    }
    p.d = toolkit_open("dfsput", &o);
    p.buf = malloc(PUT_BUF);
    if (!p.d || !p.buf)
        return TOOL_FAILED;
    struct dfs_attr target, parent;
    char name[256];
    bool into = dfs_resolve(p.d, dst, &target) == 0 && S_ISDIR(target.mode);
    if (!into && n > 2) {
        fprintf(stderr, "dfsput: %s is not a directory\n", dst);
        p.failures++;
    } else if (into) {
        for (int i = 0; i < n - 1; i++) {
            char *sub;
            if (!strcmp(args[i], "-")) {
                fprintf(stderr, "dfsput: - needs a file name, not the directory %s\n", dst);
                p.failures++;
                continue;
            }
            if (asprintf(&sub, "%s/%s", strcmp(dst, "/") ? dst : "", base_name(args[i])) < 0)
                break;
            put_path(&p, args[i], target.ino, base_name(args[i]), sub);
            free(sub);
        }
    } else {
        int rc = toolkit_parent(p.d, dst, &parent, name, sizeof(name));
        if (rc < 0)
            report(&p, args[0], dst, rc);
        else
            put_path(&p, args[0], parent.ino, name, dst);
    }
    dfs_close(p.d);
    free(p.buf);
    free(args);
    return p.failures ? TOOL_FAILED : TOOL_OK;
}
