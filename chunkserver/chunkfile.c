/*
 * chunkfile: encoding, naming and geometry of a chunk file.
 *
 * A header slot (little-endian, CHUNKFILE_SLOT_BYTES):
 *
 *   off size field
 *     0   4  magic      CHUNKFILE_MAGIC ("DFSC")
 *     4   2  format     CHUNKFILE_FORMAT
 *     6   2  reserved   0
 *     8   8  id
 *    16   8  seq
 *    24   8  capacity
 *    32   8  length
 *    40   4  version
 *    44   4  tail_crc
 *    48  12  reserved   0
 *    60   4  crc        crc32c of bytes 0..59
 *
 * The overwrite marker (little-endian, CHUNKFILE_MARK_BYTES):
 *
 *   off size field
 *     0   4  magic      CHUNKFILE_MARK_MAGIC ("DFSM")
 *     4   4  reserved   0
 *     8   8  id
 *    16   8  seq        of the commit the overwrites came after
 *    24   4  reserved   0
 *    28   4  crc        crc32c of bytes 0..27
 *
 * Invariants:
 *  1. chunkfile_decode accepts only what chunkfile_encode can produce:
 *     magic, format, crc, capacity_ok, length <= capacity, version > 0,
 *     tail_crc == 0 when length is a block multiple, reserved bytes 0.
 *  2. Names are a function of the id alone, so a chunk has one path.
 */
#include "chunkfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/dfs_error.h"

#define SLOT_CRC_OFF (CHUNKFILE_SLOT_BYTES - 4)
#define MARK_MAGIC   0x4d534644u   /* "DFSM" little-endian */
#define MARK_CRC_OFF (CHUNKFILE_MARK_BYTES - 4)

_Static_assert(CHUNKFILE_MARK_OFF >= CHUNKFILE_SLOT_BYTES &&
               CHUNKFILE_MARK_OFF + CHUNKFILE_MARK_BYTES <=
                   CHUNKFILE_SLOT_STRIDE,
               "the marker lies between slot 0 and slot 1");

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

bool chunkfile_capacity_ok(uint64_t capacity)
{
    return capacity > 0 && capacity % CHUNKFILE_BLOCK == 0 &&
           capacity <= CHUNKFILE_MAX_CAPACITY;
}

uint32_t chunkfile_nblocks(uint64_t capacity)
{
    return (uint32_t)(capacity / CHUNKFILE_BLOCK);
}

uint64_t chunkfile_data_off(uint64_t capacity)
{
    uint64_t crc_bytes = (uint64_t)chunkfile_nblocks(capacity) * 4;
    return CHUNKFILE_CRC_OFF + (crc_bytes + 4095) / 4096 * 4096;
}

uint64_t chunkfile_slot_off(int slot)
{
    return (uint64_t)slot * CHUNKFILE_SLOT_STRIDE;
}

uint64_t chunkfile_crc_off(uint32_t block)
{
    return CHUNKFILE_CRC_OFF + (uint64_t)block * 4;
}

void chunkfile_encode(const struct chunkfile_hdr *h,
                      uint8_t out[CHUNKFILE_SLOT_BYTES])
{
    memset(out, 0, CHUNKFILE_SLOT_BYTES);
    put_le(out + 0, CHUNKFILE_MAGIC, 4);
    put_le(out + 4, CHUNKFILE_FORMAT, 2);
    put_le(out + 8, h->id, 8);
    put_le(out + 16, h->seq, 8);
    put_le(out + 24, h->capacity, 8);
    put_le(out + 32, h->length, 8);
    put_le(out + 40, h->version, 4);
    put_le(out + 44, h->tail_crc, 4);
    put_le(out + SLOT_CRC_OFF, crc32c(0, out, SLOT_CRC_OFF), 4);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int chunkfile_decode(const uint8_t in[CHUNKFILE_SLOT_BYTES],
                     struct chunkfile_hdr *h)
{
    if (all_zero(in, CHUNKFILE_SLOT_BYTES))
        return -ENOENT;
    if (get_le(in, 4) != CHUNKFILE_MAGIC || get_le(in + 4, 2) !=
        CHUNKFILE_FORMAT || get_le(in + 6, 2) != 0 ||
        !all_zero(in + 48, 12) ||
        crc32c(0, in, SLOT_CRC_OFF) != get_le(in + SLOT_CRC_OFF, 4))
        return -DFS_ECORRUPT;
    h->id = get_le(in + 8, 8);
    h->seq = get_le(in + 16, 8);
    h->capacity = get_le(in + 24, 8);
    h->length = get_le(in + 32, 8);
    h->version = (uint32_t)get_le(in + 40, 4);
    h->tail_crc = (uint32_t)get_le(in + 44, 4);
    if (!chunkfile_capacity_ok(h->capacity) || h->length > h->capacity ||
        h->version == 0 ||
        (h->length % CHUNKFILE_BLOCK == 0 && h->tail_crc != 0))
        return -DFS_ECORRUPT;
    return 0;
}

void chunkfile_mark_encode(uint64_t id, uint64_t seq,
                           uint8_t out[CHUNKFILE_MARK_BYTES])
{
    memset(out, 0, CHUNKFILE_MARK_BYTES);
    put_le(out + 0, MARK_MAGIC, 4);
    put_le(out + 8, id, 8);
    put_le(out + 16, seq, 8);
    put_le(out + MARK_CRC_OFF, crc32c(0, out, MARK_CRC_OFF), 4);
}

/* Whether in is a valid marker of h's chunk naming h's commit. */
static bool mark_names(const uint8_t in[CHUNKFILE_MARK_BYTES],
                       const struct chunkfile_hdr *h)
{
    return get_le(in, 4) == MARK_MAGIC &&
           crc32c(0, in, MARK_CRC_OFF) == get_le(in + MARK_CRC_OFF, 4) &&
           get_le(in + 8, 8) == h->id && get_le(in + 16, 8) == h->seq;
}

int chunkfile_load(struct fsio *fs, int fd, struct chunkfile_hdr *h,
                   bool *damaged, bool *interrupted)
{
    uint8_t buf[CHUNKFILE_SLOT_STRIDE + CHUNKFILE_SLOT_BYTES];
    ssize_t n = fsio_pread(fs, fd, buf, sizeof(buf), 0);
    if (n < 0)
        return (int)n;
    /* A short file reads as zeros past its end: those slots are empty. */
    memset(buf + n, 0, sizeof(buf) - (size_t)n);

    struct chunkfile_hdr slot[2];
    int rc[2];
    for (int i = 0; i < 2; i++)
        rc[i] = chunkfile_decode(buf + chunkfile_slot_off(i), &slot[i]);
    int best = -1;
    for (int i = 0; i < 2; i++)
        if (rc[i] == 0 && (best < 0 || slot[i].seq > slot[best].seq))
            best = i;
    if (best < 0) {
        *damaged = rc[0] == -DFS_ECORRUPT || rc[1] == -DFS_ECORRUPT;
        return -DFS_ECORRUPT;
    }
    *damaged = rc[1 - best] == -DFS_ECORRUPT;
    *h = slot[best];
    *interrupted = mark_names(buf + CHUNKFILE_MARK_OFF, h);
    return best;
}

void chunkfile_name(uint64_t id, char out[CHUNKFILE_NAME_MAX])
{
    snprintf(out, CHUNKFILE_NAME_MAX, "%02x/%016llx.chunk",
             (unsigned)(id & 0xff), (unsigned long long)id);
}

void chunkfile_tmp_name(uint64_t id, char out[CHUNKFILE_NAME_MAX])
{
    snprintf(out, CHUNKFILE_NAME_MAX, "%02x/tmp-%016llx",
             (unsigned)(id & 0xff), (unsigned long long)id);
}

/* 16 lower-case hex digits at s, exactly as chunkfile_name writes them. */
static bool parse_hex16(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    *id = v;
    return true;
}

enum chunkfile_kind chunkfile_parse_name(const char *name, unsigned sub,
                                         uint64_t *id)
{
    enum chunkfile_kind kind;
    if (strlen(name) == 22 && strcmp(name + 16, ".chunk") == 0 &&
        parse_hex16(name, id))
        kind = CHUNKFILE_CHUNK;
    else if (strlen(name) == 20 && strncmp(name, "tmp-", 4) == 0 &&
             parse_hex16(name + 4, id))
        kind = CHUNKFILE_TEMP;
    else
        return CHUNKFILE_OTHER;
    return (*id & 0xff) == sub ? kind : CHUNKFILE_OTHER;
}

uint32_t chunkfile_zero_crc(uint64_t n)
{
    static const uint8_t zeros[CHUNKFILE_BLOCK];
    return crc32c(0, zeros, (size_t)n);
}
