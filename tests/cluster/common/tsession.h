/*
 * tsession: the libdfs session of a multi-process test client (faultload,
 * nsload, scatter, leasecross), from the environment that
 * tests/cluster/lib.sh exports.  Linked into every tests/cluster program.
 */
#ifndef DFS_TESTS_CLUSTER_TSESSION_H
#define DFS_TESTS_CLUSTER_TSESSION_H

#include "common/libdfs/dfs.h"

/*
 * A session to the masters of $DFS_MASTERS with the key $DFS_KEY_FILE,
 * shown as prog, as the caller's uid and gid, giving up on one operation
 * after op_timeout_ms.  On failure prints why, prefixed "prog: ", and
 * returns NULL.
 */
struct dfs *tsession_open(const char *prog, int op_timeout_ms);

#endif
