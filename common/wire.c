/*
 * wire: frame header codec, frame splitter, bounds-checked reader, growable
 * writer and the block-CRC data section.
 *
 * Owns nothing global.  A wire_reader borrows its buffer; a wire_writer
 * owns its buffer until detached.
 *
 * Invariants:
 *  1. A reader never touches a byte outside [p, p + left): every access
 *     goes through reader_take(), the one place that compares against
 *     left.  No length from the input is used before it is checked.
 *  2. Errors are sticky: once r->err / w->err is set, no getter or putter
 *     changes the cursor or the buffer again, and getters return zero.
 *  3. A writer keeps len <= cap, and buf is NULL exactly when cap is 0.
 *  4. The frame status is translated here and only here: what leaves
 *     wire_hdr_decode() is 0, a negative errno or a known -DFS_E* code.
 */
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "dfs_error.h"
#include "protocol.h"

#define HDR_CRC_OFF 24          /* the CRC covers bytes [0, HDR_CRC_OFF) */
#define WRITER_MIN_CAP 256

/* ---- little-endian loads and stores ----------------------------------- */

static uint64_t load_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void store_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* ---- reader ----------------------------------------------------------- */

void wire_reader_init(struct wire_reader *r, const void *buf, size_t len)
{
    r->p = buf;
    r->left = len;
    r->err = 0;
}

static void reader_fail(struct wire_reader *r, int err)
{
    if (r->err == 0)
        r->err = err;
}

/* The next n bytes, consumed; NULL (and -DFS_ETRUNC) when short.  Check
 * r->err, not the pointer, for n == 0: an empty reader's p may be NULL. */
static const uint8_t *reader_take(struct wire_reader *r, size_t n)
{
    if (r->err)
        return NULL;
    if (n > r->left) {
        reader_fail(r, -DFS_ETRUNC);
        return NULL;
    }
    if (n == 0)
        return r->p;            /* no arithmetic: p may be NULL */
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t reader_le(struct wire_reader *r, int n)
{
    const uint8_t *p = reader_take(r, (size_t)n);
    return p ? load_le(p, n) : 0;
}

uint8_t wire_get_u8(struct wire_reader *r)
{
    return (uint8_t)reader_le(r, 1);
}

uint16_t wire_get_u16(struct wire_reader *r)
{
    return (uint16_t)reader_le(r, 2);
}

uint32_t wire_get_u32(struct wire_reader *r)
{
    return (uint32_t)reader_le(r, 4);
}

uint64_t wire_get_u64(struct wire_reader *r)
{
    return reader_le(r, 8);
}

int32_t wire_get_i32(struct wire_reader *r)
{
    return (int32_t)wire_get_u32(r);
}

int64_t wire_get_i64(struct wire_reader *r)
{
    return (int64_t)wire_get_u64(r);
}

void wire_get_raw(struct wire_reader *r, void *dst, size_t n)
{
    const uint8_t *p = reader_take(r, n);
    if (p)
        memcpy(dst, p, n);
    else if (n)
        memset(dst, 0, n);
}

size_t wire_get_bytes(struct wire_reader *r, const uint8_t **out, size_t max)
{
    *out = NULL;
    uint32_t n = wire_get_u32(r);
    if (r->err)
        return 0;
    if (n > max) {
        reader_fail(r, -DFS_ETOOBIG);
        return 0;
    }
    const uint8_t *p = reader_take(r, n);
    if (!p)
        return 0;
    *out = p;
    return n;
}

char *wire_get_str(struct wire_reader *r, size_t max)
{
    const uint8_t *p;
    size_t n = wire_get_bytes(r, &p, max);
    if (!p)
        return NULL;
    if (memchr(p, '\0', n)) {
        reader_fail(r, -EINVAL);
        return NULL;
    }
    char *s = malloc(n + 1);
    if (!s) {
        reader_fail(r, -ENOMEM);
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int wire_reader_finish(const struct wire_reader *r)
{
    if (r->err)
        return r->err;
    return r->left ? -EBADMSG : 0;
}

/* ---- writer ----------------------------------------------------------- */

void wire_writer_init(struct wire_writer *w)
{
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->err = 0;
}

static void writer_fail(struct wire_writer *w, int err)
{
    if (w->err == 0)
        w->err = err;
}

/* Makes room for n more bytes, doubling so appends stay amortised O(1). */
static int writer_grow(struct wire_writer *w, size_t n)
{
    if (n > SIZE_MAX - w->len)
        return -ENOMEM;
    size_t need = w->len + n;
    if (w->buf && need <= w->cap)
        return 0;               /* else allocate, even for n == 0 */
    size_t cap = w->cap ? w->cap : WRITER_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *buf = realloc(w->buf, cap);
    if (!buf)
        return -ENOMEM;
    w->buf = buf;
    w->cap = cap;
    return 0;
}

uint8_t *wire_writer_reserve(struct wire_writer *w, size_t n)
{
    if (w->err)
        return NULL;
    int rc = writer_grow(w, n);
    if (rc < 0) {
        writer_fail(w, rc);
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

static void writer_le(struct wire_writer *w, uint64_t v, int n)
{
    uint8_t *p = wire_writer_reserve(w, (size_t)n);
    if (p)
        store_le(p, v, n);
}

void wire_put_u8(struct wire_writer *w, uint8_t v)
{
    writer_le(w, v, 1);
}

void wire_put_u16(struct wire_writer *w, uint16_t v)
{
    writer_le(w, v, 2);
}

void wire_put_u32(struct wire_writer *w, uint32_t v)
{
    writer_le(w, v, 4);
}

void wire_put_u64(struct wire_writer *w, uint64_t v)
{
    writer_le(w, v, 8);
}

void wire_put_i32(struct wire_writer *w, int32_t v)
{
    writer_le(w, (uint32_t)v, 4);
}

void wire_put_i64(struct wire_writer *w, int64_t v)
{
    writer_le(w, (uint64_t)v, 8);
}

void wire_put_raw(struct wire_writer *w, const void *p, size_t n)
{
    uint8_t *dst = wire_writer_reserve(w, n);
    if (dst && n)
        memcpy(dst, p, n);
}

void wire_put_bytes(struct wire_writer *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        writer_fail(w, -DFS_ETOOBIG);
        return;
    }
    wire_put_u32(w, (uint32_t)n);
    wire_put_raw(w, p, n);
}

void wire_put_str(struct wire_writer *w, const char *s)
{
    wire_put_bytes(w, s, strlen(s));
}

void wire_writer_release(struct wire_writer *w)
{
    free(w->buf);
    wire_writer_init(w);
}

uint8_t *wire_writer_detach(struct wire_writer *w, size_t *len)
{
    if (w->err) {
        wire_writer_release(w);
        *len = 0;
        return NULL;
    }
    uint8_t *buf = w->buf;
    *len = w->len;
    wire_writer_init(w);
    return buf;
}

/* ---- frame header ----------------------------------------------------- */

void wire_hdr_encode(const struct wire_hdr *h, uint8_t out[WIRE_HDR_SIZE])
{
    store_le(out + 0, WIRE_MAGIC, 4);
    out[4] = PROTO_VERSION;
    out[5] = h->flags;
    store_le(out + 6, h->type, 2);
    store_le(out + 8, h->req_id, 8);
    store_le(out + 16, h->payload_len, 4);
    store_le(out + 20, (uint32_t)h->status, 4);
    store_le(out + HDR_CRC_OFF, crc32c(0, out, HDR_CRC_OFF), 4);
}

/* A status as the rest of the code may see it (invariant 4). */
static int32_t status_from_wire(int32_t status)
{
    if (status == 0)
        return 0;
    if (status > -DFS_EBASE)
        return status;              /* an errno */
    if (status < -DFS_EBASE && status > -DFS_ELAST)
        return status;              /* a DFS_E* code we know */
    return -EPROTO;                 /* a newer peer's code, or nonsense */
}

int wire_hdr_decode(const uint8_t *in, size_t len, uint32_t max_payload,
                    struct wire_hdr *out)
{
    if (len < WIRE_HDR_SIZE)
        return -DFS_ETRUNC;
    if (load_le(in, 4) != WIRE_MAGIC)
        return -DFS_EMAGIC;
    if (in[4] != PROTO_VERSION)
        return -DFS_EVERSION;
    if (crc32c(0, in, HDR_CRC_OFF) != load_le(in + HDR_CRC_OFF, 4))
        return -DFS_EHDRCRC;
    uint32_t payload_len = (uint32_t)load_le(in + 16, 4);
    if (payload_len > max_payload)
        return -DFS_ETOOBIG;
    int32_t status = (int32_t)(uint32_t)load_le(in + 20, 4);
    if (status > 0)
        return -EBADMSG;
    out->flags = in[5];
    out->type = (uint16_t)load_le(in + 6, 2);
    out->req_id = load_le(in + 8, 8);
    out->payload_len = payload_len;
    out->status = status_from_wire(status);
    return 0;
}

/* ---- frames ----------------------------------------------------------- */

size_t wire_frame_begin(struct wire_writer *w)
{
    size_t at = w->len;
    wire_writer_reserve(w, WIRE_HDR_SIZE);
    return at;
}

int wire_frame_end(struct wire_writer *w, size_t at, struct wire_hdr *h)
{
    if (w->err)
        return w->err;
    if (at > w->len || w->len - at < WIRE_HDR_SIZE)
        return -EINVAL;             /* not an offset from wire_frame_begin */
    size_t payload = w->len - at - WIRE_HDR_SIZE;
    if (payload > WIRE_MAX_PAYLOAD) {
        w->len = at;
        return -DFS_ETOOBIG;
    }
    h->payload_len = (uint32_t)payload;
    wire_hdr_encode(h, w->buf + at);
    return 0;
}

/* True when buf[0..len), len < WIRE_HDR_SIZE, cannot start a frame. */
static bool magic_prefix_wrong(const uint8_t *buf, size_t len)
{
    uint8_t magic[4];
    store_le(magic, WIRE_MAGIC, 4);
    return len != 0 && memcmp(buf, magic, len < 4 ? len : 4) != 0;
}

int wire_frame_split(const uint8_t *buf, size_t len, uint32_t max_payload,
                     struct wire_frame *f)
{
    f->payload = NULL;
    f->span = WIRE_HDR_SIZE;
    int rc = wire_hdr_decode(buf, len, max_payload, &f->hdr);
    if (rc == -DFS_ETRUNC)
        return magic_prefix_wrong(buf, len) ? -DFS_EMAGIC : 0;
    if (rc < 0)
        return rc;
    f->span = (size_t)WIRE_HDR_SIZE + f->hdr.payload_len;
    if (len < f->span)
        return 0;
    f->payload = buf + WIRE_HDR_SIZE;
    return 1;
}

/* ---- data blocks ------------------------------------------------------ */

/* Grid cells of PROTO_BLOCK_SIZE touched by [offset, offset + length);
 * the caller has checked that the range does not wrap. */
static uint64_t blocks_count(uint64_t offset, uint32_t length)
{
    if (length == 0)
        return 0;
    return (offset + length - 1) / PROTO_BLOCK_SIZE -
           offset / PROTO_BLOCK_SIZE + 1;
}

/* Bytes of the block starting at chunk offset at, with left bytes to go. */
static size_t block_piece(uint64_t at, size_t left)
{
    size_t room = PROTO_BLOCK_SIZE - (size_t)(at % PROTO_BLOCK_SIZE);
    return room < left ? room : left;
}

void wire_put_blocks(struct wire_writer *w, uint64_t offset, const void *data,
                     size_t len)
{
    wire_put_blocks_head(w, offset, data, len);
    if (!w->err)
        wire_put_raw(w, data, len);
}

void wire_put_blocks_head(struct wire_writer *w, uint64_t offset, const void *data,
                          size_t len)
{
    if (len > UINT32_MAX || offset > UINT64_MAX - len) {
        writer_fail(w, -DFS_ETOOBIG);
        return;
    }
    uint32_t nblocks = (uint32_t)blocks_count(offset, (uint32_t)len);
    wire_put_u64(w, offset);
    wire_put_u32(w, (uint32_t)len);
    wire_put_u32(w, nblocks);
    uint8_t *crcs = wire_writer_reserve(w, (size_t)nblocks * 4);
    if (!crcs)
        return;
    const uint8_t *p = data;
    for (size_t pos = 0, i = 0; pos < len; i++) {
        size_t n = block_piece(offset + pos, len - pos);
        store_le(crcs + 4 * i, crc32c(0, p + pos, n), 4);
        pos += n;
    }
}

int wire_get_blocks(struct wire_reader *r, struct wire_blocks *b,
                    uint32_t max_len)
{
    memset(b, 0, sizeof(*b));
    uint64_t offset = wire_get_u64(r);
    uint32_t length = wire_get_u32(r);
    uint32_t nblocks = wire_get_u32(r);
    if (r->err)
        return r->err;
    if (length > max_len) {
        reader_fail(r, -DFS_ETOOBIG);
        return r->err;
    }
    if (offset > UINT64_MAX - length ||
        nblocks != blocks_count(offset, length)) {
        reader_fail(r, -EBADMSG);
        return r->err;
    }
    const uint8_t *crcs = reader_take(r, (size_t)nblocks * 4);
    const uint8_t *data = reader_take(r, length);
    if (r->err)
        return r->err;
    b->offset = offset;
    b->length = length;
    b->nblocks = nblocks;
    b->crcs = crcs;
    b->data = data;
    return 0;
}

uint32_t wire_blocks_crc(const struct wire_blocks *b, uint32_t i)
{
    return (uint32_t)load_le(b->crcs + 4 * (size_t)i, 4);
}

int wire_verify_blocks(const struct wire_blocks *b, uint32_t *bad)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < b->nblocks; i++) {
        size_t n = block_piece(b->offset + pos, b->length - pos);
        if (crc32c(0, b->data + pos, n) != wire_blocks_crc(b, i)) {
            if (bad)
                *bad = i;
            return -DFS_ECORRUPT;
        }
        pos += n;
    }
    return 0;
}
