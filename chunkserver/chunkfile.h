/*
 * chunkfile: the on-disk format of one chunk replica file (docs/CHUNKS.md).
 *
 * A chunk file is, at fixed offsets:
 *
 *   0                   header slot 0   (CHUNKFILE_SLOT_BYTES used)
 *   2048                the overwrite marker (CHUNKFILE_MARK_BYTES)
 *   4096                header slot 1
 *   8192                CRC array: u32 LE per block of the capacity
 *   chunkfile_data_off  data: chunk byte i at data_off + i
 *
 * The slots alternate: a commit writes the slot that does not hold the
 * newest durable header, so a torn header write never destroys the last
 * one.  The newest valid slot (highest seq) is the chunk's header.
 *
 * The marker names the seq of the commit after which bytes covered by it
 * were overwritten in place; it is made durable before the first such
 * write.  A file whose marker names its newest commit was interrupted in
 * the middle of an overwrite (docs/CHUNKS.md, "After a crash").  Files
 * written before the marker existed hold zeros there: never interrupted.
 *
 * Pure encoding, naming and geometry; the one function doing I/O is
 * chunkfile_load.  Every function is thread-safe; nothing here allocates.
 */
#ifndef DFS_CHUNKFILE_H
#define DFS_CHUNKFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/fsio.h"
#include "common/protocol.h"

#define CHUNKFILE_MAGIC        0x43534644u   /* "DFSC" little-endian */
#define CHUNKFILE_FORMAT       1
#define CHUNKFILE_BLOCK        PROTO_BLOCK_SIZE
#define CHUNKFILE_SLOT_BYTES   64
#define CHUNKFILE_SLOT_STRIDE  4096
#define CHUNKFILE_MARK_OFF     2048
#define CHUNKFILE_MARK_BYTES   32
#define CHUNKFILE_CRC_OFF      8192
/* Lengths travel as u32 (protocol.h REPLICA, DATA), so a chunk stays
 * well below 4 GiB. */
#define CHUNKFILE_MAX_CAPACITY (UINT64_C(1) << 31)
/* "ab/tmp-0123456789abcdef" and "ab/0123456789abcdef.chunk" fit. */
#define CHUNKFILE_NAME_MAX     32

/* One header slot, decoded. */
struct chunkfile_hdr {
    uint64_t id;
    uint64_t seq;        /* commits so far; the higher valid slot wins */
    uint64_t capacity;   /* bytes the chunk may hold, a block multiple */
    uint64_t length;     /* bytes of data, <= capacity */
    uint32_t version;    /* the chunk version, > 0 */
    uint32_t tail_crc;   /* crc32c of the last block's bytes when length
                            is not a block multiple, else 0 */
};

/* Capacity is a non-zero multiple of CHUNKFILE_BLOCK up to the maximum. */
bool chunkfile_capacity_ok(uint64_t capacity);

/* Blocks of a capacity, and the data offset it implies (the CRC array
 * rounded up to 4 KiB after CHUNKFILE_CRC_OFF).  capacity must be ok. */
uint32_t chunkfile_nblocks(uint64_t capacity);
uint64_t chunkfile_data_off(uint64_t capacity);

/* File offset of header slot 0 or 1, and of block b's CRC entry. */
uint64_t chunkfile_slot_off(int slot);
uint64_t chunkfile_crc_off(uint32_t block);

void chunkfile_encode(const struct chunkfile_hdr *h,
                      uint8_t out[CHUNKFILE_SLOT_BYTES]);

/* 0 and *h filled; -ENOENT for a slot of zeros (never written);
 * -DFS_ECORRUPT for anything else that is not a valid header. */
int chunkfile_decode(const uint8_t in[CHUNKFILE_SLOT_BYTES],
                     struct chunkfile_hdr *h);

/* The marker saying chunk id is overwritten in place after commit seq. */
void chunkfile_mark_encode(uint64_t id, uint64_t seq,
                           uint8_t out[CHUNKFILE_MARK_BYTES]);

/*
 * Reads both slots of the open file fd and picks the newest valid one.
 * Returns the slot (0 or 1) with *h filled, -DFS_ECORRUPT when neither
 * slot is valid, or an I/O error.  *damaged is set when the other slot
 * holds neither a header nor zeros (a torn commit or corruption);
 * *interrupted when a valid marker names that header's seq.
 */
int chunkfile_load(struct fsio *fs, int fd, struct chunkfile_hdr *h,
                   bool *damaged, bool *interrupted);

/* Names relative to the data directory: "ab/<16 hex id>.chunk", and the
 * temporary name used while creating, "ab/tmp-<16 hex id>"; ab is the
 * id's low byte. */
void chunkfile_name(uint64_t id, char out[CHUNKFILE_NAME_MAX]);
void chunkfile_tmp_name(uint64_t id, char out[CHUNKFILE_NAME_MAX]);

enum chunkfile_kind {
    CHUNKFILE_OTHER,    /* not ours */
    CHUNKFILE_CHUNK,    /* "<16 hex>.chunk" */
    CHUNKFILE_TEMP      /* "tmp-<16 hex>" */
};

/* Classifies an entry of the subdirectory whose byte is sub ("ab" = 0xab):
 * a chunk or temp name whose id does not belong there is OTHER.  *id is
 * set for CHUNK and TEMP. */
enum chunkfile_kind chunkfile_parse_name(const char *name, unsigned sub,
                                         uint64_t *id);

/* crc32c of n zero bytes, n <= CHUNKFILE_BLOCK. */
uint32_t chunkfile_zero_crc(uint64_t n);

#endif
