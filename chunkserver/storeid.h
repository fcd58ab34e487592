/*
 * storeid: the identity file of a chunkserver data directory, which ties
 * the directory to one cluster and one chunkserver id (docs/CHUNKS.md).
 *
 * The file is dir/dfs-store.id, four lines of text:
 *     dfs-store 1
 *     cluster <16 hex digits>     0: not assigned yet
 *     server <decimal u32>        0: not assigned yet
 *     crc <8 hex digits>          crc32c of the three lines above
 * Paths are borrowed for the call; nothing here keeps state.
 */
#ifndef DFS_STOREID_H
#define DFS_STOREID_H

#include <stdint.h>

#include "common/fsio.h"

#define STOREID_NAME "dfs-store.id"

struct storeid {
    uint64_t cluster_id;
    uint32_t server_id;
};

/* Reads dir's identity: 0, -ENOENT when the file is absent, -DFS_ECORRUPT
 * when it is not exactly what storeid_write writes, or an I/O error. */
int storeid_read(struct fsio *fs, const char *dir, struct storeid *out);

/* Replaces dir's identity file atomically and durably
 * (fsio_write_file_atomic). */
int storeid_write(struct fsio *fs, const char *dir, const struct storeid *id);

#endif
