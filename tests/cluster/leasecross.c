/*
 * leasecross: two clients write two chunks of one file in opposite orders.
 *
 *   leasecross /NAME
 *
 * Client A writes chunk 0, then chunk 1; client B writes chunk 1, then
 * chunk 0.  Each takes its second chunk only once both hold their first,
 * so each asks for a write lease the other holds.  A file keeps several
 * chunks leased at once (docs/LIBDFS.md): unless a client refused a lease
 * releases the ones it holds, both wait until their operation timeout
 * (5 s here) and fail.  Both must succeed, and the file must hold what
 * each wrote.  Masters and key from DFS_MASTERS / DFS_KEY_FILE.  Exit 0
 * on success, 1 otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/dfs_error.h"
#include "common/libdfs/dfs.h"
#include "common/log.h"
#include "common/protocol.h"
#include "tests/cluster/common/tsession.h"

#define CROSS_LEN 4096
#define CROSS_TIMEOUT_MS 5000

static int fail(const char *who, const char *what, struct dfs *d, int rc)
{
    fprintf(stderr, "leasecross %s: %s: %s (%s)\n", who, what, dfs_strerror(rc),
            dfs_last_error(d));
    return 1;
}

/* One client: writes its fill byte at chunk first, tells the other (ready),
 * waits for it (go), then writes chunk 1 - first and closes. */
static int client(uint64_t ino, uint32_t first, int ready, int go)
{
    const char *who = first == 0 ? "A" : "B";
    struct dfs *d = tsession_open(first == 0 ? "leasecross A" : "leasecross B",
                                  CROSS_TIMEOUT_MS);
    if (!d)
        return 1;
    uint8_t buf[CROSS_LEN];
    memset(buf, first == 0 ? 'a' : 'b', sizeof(buf));
    struct dfs_file *f;
    uint64_t chunk;
    int rc = dfs_chunk_size(d, &chunk);
    if (rc < 0)
        return fail(who, "chunk size", d, rc);
    rc = dfs_file_open(d, ino, DFS_O_WRITE, &f, NULL);
    if (rc < 0)
        return fail(who, "open", d, rc);
    int status = 0;
    for (uint32_t k = 0; k < 2 && status == 0; k++) {
        uint32_t index = k == 0 ? first : 1 - first;
        uint64_t off = index * chunk + (first == 0 ? 0 : CROSS_LEN);
        ssize_t n = dfs_file_pwrite(f, buf, sizeof(buf), off);
        if (n != (ssize_t)sizeof(buf)) {
            status = fail(who, "write", d, n < 0 ? (int)n : -EIO);
            break;
        }
        char c = 1;
        if (k == 0 && (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1))
            status = fail(who, "pipe", d, -EPIPE);
    }
    rc = dfs_file_close(f);
    if (status == 0 && rc < 0)
        status = fail(who, "close", d, rc);
    dfs_close(d);
    return status;
}

static pid_t spawn(uint64_t ino, uint32_t first, int ready, int go)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(client(ino, first, ready, go));
    return pid;
}

/* Each client's bytes are in both chunks. */
static int check(struct dfs *d, uint64_t ino)
{
    struct dfs_file *f;
    uint64_t chunk;
    int rc = dfs_chunk_size(d, &chunk);
    if (rc < 0)
        return fail("check", "chunk size", d, rc);
    rc = dfs_file_open(d, ino, DFS_O_READ, &f, NULL);
    if (rc < 0)
        return fail("check", "open", d, rc);
    uint8_t buf[2 * CROSS_LEN];
    int bad = 0;
    for (uint32_t index = 0; index < 2 && !bad; index++) {
        ssize_t n = dfs_file_pread(f, buf, sizeof(buf),
                                   index * chunk);
        bad = n != (ssize_t)sizeof(buf) || buf[0] != 'a' || buf[CROSS_LEN - 1] != 'a' ||
              buf[CROSS_LEN] != 'b' || buf[2 * CROSS_LEN - 1] != 'b';
        if (bad)
            fprintf(stderr, "leasecross: chunk %u does not hold both writes\n", index);
    }
    dfs_file_close(f);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] != '/' || strchr(argv[1] + 1, '/')) {
        fprintf(stderr, "usage: leasecross /NAME\n");
        return 2;
    }
    log_init("leasecross", LOG_ERROR, NULL);
    struct dfs *d = tsession_open("leasecross", CROSS_TIMEOUT_MS);
    if (!d)
        return 1;
    struct dfs_attr a;
    int rc = dfs_create(d, DFS_ROOT_INO, argv[1] + 1, 0644, DFS_O_WRITE | DFS_O_EXCL, &a);
    struct dfs_file *f = NULL;
    if (rc == 0)
        rc = dfs_file_adopt(d, &a, DFS_O_WRITE, &f);
    if (rc == 0)
        rc = dfs_file_close(f);
    if (rc < 0) {
        int st = fail("setup", "create", d, rc);
        dfs_close(d);
        return st;
    }
    int a_ready[2], b_ready[2], a_go[2], b_go[2];
    if (pipe(a_ready) || pipe(b_ready) || pipe(a_go) || pipe(b_go)) {
        perror("leasecross: pipe");
        dfs_close(d);
        return 1;
    }
    pid_t pa = spawn(a.ino, 0, a_ready[1], a_go[0]);
    pid_t pb = spawn(a.ino, 1, b_ready[1], b_go[0]);
    char c;
    /* Both hold their first chunk: let both go for the other's. */
    if (read(a_ready[0], &c, 1) == 1 && read(b_ready[0], &c, 1) == 1) {
        c = 1;
        if (write(a_go[1], &c, 1) != 1 || write(b_go[1], &c, 1) != 1)
            perror("leasecross: pipe");
    }
    close(a_go[1]);
    close(b_go[1]);
    int sa = 1, sb = 1;
    if (pa > 0)
        waitpid(pa, &sa, 0);
    if (pb > 0)
        waitpid(pb, &sb, 0);
    int status = sa == 0 && sb == 0 ? check(d, a.ino) : 1;
    dfs_close(d);
    if (status == 0)
        printf("leasecross: both clients wrote both chunks\n");
    return status;
}
