/*
 * tsession: opens a test client's libdfs session from the environment.
 */
#include "tests/cluster/common/tsession.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct dfs *tsession_open(const char *prog, int op_timeout_ms)
{
    struct dfs_opts o = { .masters = getenv("DFS_MASTERS"),
                          .key_file = getenv("DFS_KEY_FILE"),
                          .client_name = prog, .op_timeout_ms = op_timeout_ms,
                          .uid = (uint32_t)getuid(), .gid = (uint32_t)getgid() };
    if (!o.masters || !o.key_file) {
        fprintf(stderr, "%s: set DFS_MASTERS and DFS_KEY_FILE\n", prog);
        return NULL;
    }
    struct dfs *d = NULL;
    char err[512];
    if (dfs_open(&o, &d, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: cannot reach the cluster: %s\n", prog, err);
        return NULL;
    }
    return d;
}
