/*
 * storeid: format and parsing of the data directory's identity file.
 *
 * Invariant: storeid_read accepts exactly the bytes storeid_write writes
 * for some identity (it re-formats what it parsed and compares), so a
 * damaged or foreign file is never taken for an identity.
 */
#include "storeid.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/dfs_error.h"

#define STOREID_MAX 256

/* The file's text; returns its length. */
static size_t storeid_format(char out[STOREID_MAX], const struct storeid *id)
{
    int n = snprintf(out, STOREID_MAX, "dfs-store 1\ncluster %016" PRIx64
                     "\nserver %" PRIu32 "\n", id->cluster_id,
                     id->server_id);
    uint32_t crc = crc32c(0, out, (size_t)n);
    n += snprintf(out + n, STOREID_MAX - (size_t)n, "crc %08" PRIx32 "\n",
                  crc);
    return (size_t)n;
}

int storeid_read(struct fsio *fs, const char *dir, struct storeid *out)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, STOREID_NAME);
    void *text;
    size_t len;
    int rc = fsio_read_file(fs, path, STOREID_MAX, &text, &len);
    if (rc == -EFBIG)
        return -DFS_ECORRUPT;
    if (rc < 0)
        return rc;
    unsigned long long cluster;
    unsigned long server;
    struct storeid id = { 0 };
    rc = -DFS_ECORRUPT;
    if (sscanf(text, "dfs-store 1\ncluster %16llx\nserver %10lu", &cluster,
               &server) == 2 && server <= UINT32_MAX) {
        id.cluster_id = cluster;
        id.server_id = (uint32_t)server;
        char again[STOREID_MAX];
        if (storeid_format(again, &id) == len &&
            memcmp(again, text, len) == 0)
            rc = 0;
    }
    free(text);
    if (rc == 0)
        *out = id;
    return rc;
}

int storeid_write(struct fsio *fs, const char *dir, const struct storeid *id)
{
    char text[STOREID_MAX];
    size_t len = storeid_format(text, id);
    return fsio_write_file_atomic(fs, dir, STOREID_NAME, text, len);
}
