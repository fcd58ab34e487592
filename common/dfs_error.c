/*
 * dfs_error: message table for DFS_E* codes; errno values go to strerror.
 */
#include "dfs_error.h"

#include <string.h>

static const char *const dfs_messages[DFS_ELAST - DFS_EBASE] = {
    [DFS_EMAGIC - DFS_EBASE]     = "bad frame magic",
    [DFS_EVERSION - DFS_EBASE]   = "unsupported protocol version",
    [DFS_EHDRCRC - DFS_EBASE]    = "frame header checksum mismatch",
    [DFS_ETOOBIG - DFS_EBASE]    = "length over the allowed maximum",
    [DFS_ETRUNC - DFS_EBASE]     = "truncated input",
    [DFS_EAUTH - DFS_EBASE]      = "authentication failed (wrong or missing cluster key)",
    [DFS_ENOTLEADER - DFS_EBASE] = "not the leader",
    [DFS_ECORRUPT - DFS_EBASE]   = "checksum mismatch in stored data",
    [DFS_ESTALE_VER - DFS_EBASE] = "stale chunk version",
    [DFS_ECONF - DFS_EBASE]      = "invalid configuration",
    [DFS_ECLUSTER - DFS_EBASE]   = "data directory belongs to another cluster",
    [DFS_EIDINUSE - DFS_EBASE]   = "id already in use",
    [DFS_ESESSION - DFS_EBASE]   = "no such client session (expired or never opened)",
    [DFS_ESEQ - DFS_EBASE]       = "request sequence number too old to deduplicate",
    [DFS_ENOLEASE - DFS_EBASE]   = "no write lease on this chunk",
    [DFS_ENOTREADY - DFS_EBASE]  = "the new leader is not ready yet",
    [DFS_ERESTARTED - DFS_EBASE] = "chunkserver restarted during the write",
};

const char *dfs_strerror(int err)
{
    if (err < 0)
        err = -err;
    if (err == 0)
        return "success";
    if (err > DFS_EBASE && err < DFS_ELAST)
        return dfs_messages[err - DFS_EBASE];
    if (err >= DFS_EBASE)
        return "unknown dfs error";
    return strerror(err);
}
