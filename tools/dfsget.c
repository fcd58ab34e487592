/*
 * dfsget: copies files out of dfs, like cp.
 *
 *   dfsget [-r] [-f] DFS_PATH... LOCAL
 *
 * Every block is checked against its CRC32C by the library.  A file is
 * written under a temporary name beside its destination and renamed only
 * when complete, so the final name never holds a partial copy.  A large
 * file is read by two threads a few pieces ahead of its writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "tools/toolkit.h"

#define GET_BUF (1u << 20)
/* A file of more than one piece is read by GET_READERS threads, at most
 * GET_SLOTS pieces ahead of the one writing it out: the pieces read on a
 * host with a replica are preads and CRC32Cs, CPU work that a second core
 * shares, and reading overlaps writing. */
#define GET_READERS 2
#define GET_SLOTS 4

struct get {
    struct dfs *d;
    bool recursive, force;
    uint8_t *bufs[GET_SLOTS];
    int failures;
};

/* The pieces of one file in flight between the readers and the writer. */
struct get_pipe {
    struct dfs_file *f;
    uint64_t size, npieces;
    uint8_t *const *bufs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t claimed;               /* pieces taken by readers */
    uint64_t written;               /* pieces written out (their slots free) */
    ssize_t got[GET_SLOTS];         /* a piece's length, or its error */
    bool filled[GET_SLOTS];
    bool stop;
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

/* Piece i of the file into buf: its length, or an error (-EIO when the
 * file ended before its committed size). */
static ssize_t read_piece(struct dfs_file *f, uint64_t size, uint64_t i, uint8_t *buf)
{
    uint64_t off = i * GET_BUF;
    size_t want = size - off < GET_BUF ? (size_t)(size - off) : GET_BUF;
    ssize_t n = dfs_file_pread(f, buf, want, off);
    return n < 0 || n == (ssize_t)want ? n : -EIO;
}

/* Writes out a piece read (n: its length, or its read's error). */
static int write_piece(int fd, const uint8_t *buf, ssize_t n,
                       struct toolkit_progress *prog)
{
    int rc = n < 0 ? (int)n : write_all(fd, buf, (size_t)n);
    if (rc == 0)
        toolkit_progress_add(prog, (uint64_t)n);
    return rc;
}

static void *reader_main(void *arg)
{
    struct get_pipe *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->claimed < p->npieces &&
               p->claimed - p->written >= GET_SLOTS)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop || p->claimed >= p->npieces)
            break;
        uint64_t i = p->claimed++;
        size_t slot = (size_t)(i % GET_SLOTS);
        pthread_mutex_unlock(&p->mu);
        ssize_t n = read_piece(p->f, p->size, i, p->bufs[slot]);
        pthread_mutex_lock(&p->mu);
        p->got[slot] = n;
        p->filled[slot] = true;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Writes piece after piece as the readers fill them; 0 or an error. */
static int write_pieces(struct get_pipe *p, int fd, struct toolkit_progress *prog)
{
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < p->npieces; i++) {
        size_t slot = (size_t)(i % GET_SLOTS);
        pthread_mutex_lock(&p->mu);
        while (!p->filled[slot])
            pthread_cond_wait(&p->cv, &p->mu);
        ssize_t n = p->got[slot];
        pthread_mutex_unlock(&p->mu);
        rc = write_piece(fd, p->bufs[slot], n, prog);
        pthread_mutex_lock(&p->mu);
        p->filled[slot] = false;
        p->written++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

/* The file's committed size of bytes into fd, through the readers when
 * it has more than one piece. */
static int copy_pieces(struct get *g, struct dfs_file *f, int fd, uint64_t size,
                       struct toolkit_progress *prog)
{
    uint64_t npieces = (size + GET_BUF - 1) / GET_BUF;
    struct get_pipe p = { .f = f, .size = size, .npieces = npieces, .bufs = g->bufs };
    pthread_t th[GET_READERS];
    size_t started = 0;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    while (npieces > 1 && started < GET_READERS &&
           pthread_create(&th[started], NULL, reader_main, &p) == 0)
        started++;
    int rc = 0;
    if (started) {
        rc = write_pieces(&p, fd, prog);
    } else {
        /* One piece, or no thread to be had: each in turn, here. */
        for (uint64_t i = 0; rc == 0 && i < npieces; i++)
            rc = write_piece(fd, g->bufs[0], read_piece(f, size, i, g->bufs[0]), prog);
    }
    pthread_mutex_lock(&p.mu);
    p.stop = true;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    return rc;
}

static int copy_out(struct get *g, struct dfs_file *f, int fd, const char *src,
                    uint64_t size)
{
    struct toolkit_progress prog;
    toolkit_progress_start(&prog, src, size);
    int rc = copy_pieces(g, f, fd, size, &prog);
    toolkit_progress_end(&prog);
    /* A file that grew while it was copied is not copied whole. */
    uint8_t probe;
    if (rc == 0 && dfs_file_pread(f, &probe, 1, size) > 0)
        rc = -EIO;
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
    /* A device or FIFO (/dev/null, say) is written into, as cp does; a
     * temporary file renamed over it would replace it. */
    bool special = !to_stdout && stat(local, &st) == 0 && !S_ISREG(st.st_mode);
    char *tmp = NULL;
    int fd = STDOUT_FILENO;
    if (special) {
        fd = open(local, O_WRONLY | O_CLOEXEC);
    } else if (!to_stdout) {
        if (asprintf(&tmp, "%s.dfsget-XXXXXX", local) < 0)
            return -ENOMEM;
        fd = mkstemp(tmp);
    }
    if (fd < 0) {
        int err = errno;
        fprintf(stderr, "dfsget: %s: %s\n", local, strerror(err));
        g->failures++;
        free(tmp);
        return -err;
    }
    struct dfs_file *f;
    int rc = dfs_file_open(g->d, at->ino, DFS_O_READ, &f, NULL);
    if (rc == 0) {
        rc = copy_out(g, f, fd, src, dfs_file_size(f));
        dfs_file_close(f);
    }
    if (special)
        close(fd);
    else if (!to_stdout) {
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
    bool bufs = true;
    for (size_t i = 0; i < GET_SLOTS; i++)
        bufs &= (g.bufs[i] = aligned_alloc(4096, GET_BUF)) != NULL;
    if (!g.d || !bufs)
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
    for (size_t i = 0; i < GET_SLOTS; i++)
        free(g.bufs[i]);
    free(args);
    return g.failures ? TOOL_FAILED : TOOL_OK;
}
