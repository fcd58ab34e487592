// fuzz-sources: common/wire.c common/crc32c.c common/dfs_error.c common/log.c
/*
 * fuzz_wire: libFuzzer target for the wire codec.  The input is used three
 * ways:
 *  1. as a receive buffer: the frame splitter consumes frame after frame
 *     until it wants more bytes or refuses the stream;
 *  2. as one frame header for wire_hdr_decode();
 *  3. as a program: data[0] % 32 op bytes follow it, the rest is a
 *     payload that a reader decodes field by field as the ops say (u8 ..
 *     u64, raw, bytes, str, a DATA block section).  Every field decoded
 *     is written again with the writer; when the whole program decoded
 *     without error, decoding the re-encoded buffer with the same ops must
 *     give the same fields.
 * Out-of-bounds reads are ASan's to find; the asserts check the
 * codec's own promises (bounds of returned pointers, sticky errors).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dfs_error.h"
#include "common/protocol.h"
#include "common/wire.h"

#define FIELD_MAX 64    /* maximum for byte strings and block data */

static void split_stream(const uint8_t *data, size_t size)
{
    while (size > 0) {
        struct wire_frame f;
        int rc = wire_frame_split(data, size, 1024, &f);
        if (rc <= 0) {
            assert(rc < 0 || f.span > size || f.span == WIRE_HDR_SIZE);
            return;
        }
        assert(f.span == WIRE_HDR_SIZE + (size_t)f.hdr.payload_len);
        assert(f.span <= size && f.hdr.payload_len <= 1024);
        assert(f.payload == data + WIRE_HDR_SIZE);
        assert(f.hdr.status <= 0);
        data += f.span;
        size -= f.span;
    }
}

static void decode_header(const uint8_t *data, size_t size)
{
    struct wire_hdr h;
    if (wire_hdr_decode(data, size, WIRE_MAX_PAYLOAD, &h) != 0)
        return;
    uint8_t again[WIRE_HDR_SIZE];
    wire_hdr_encode(&h, again);
    struct wire_hdr h2;
    assert(wire_hdr_decode(again, sizeof(again), WIRE_MAX_PAYLOAD, &h2) == 0);
    assert(h2.type == h.type && h2.req_id == h.req_id &&
           h2.flags == h.flags && h2.payload_len == h.payload_len &&
           h2.status == h.status);
}

static int in_buf(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
    return p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

/* Writes a decoded block section back: through wire_put_blocks() when its
 * CRCs were right (it recomputes them), else byte for byte. */
static void put_blocks_as_read(struct wire_writer *w,
                               const struct wire_blocks *b, int crcs_ok)
{
    if (crcs_ok) {
        wire_put_blocks(w, b->offset, b->data, b->length);
        return;
    }
    wire_put_u64(w, b->offset);
    wire_put_u32(w, b->length);
    wire_put_u32(w, b->nblocks);
    wire_put_raw(w, b->crcs, (size_t)b->nblocks * 4);
    wire_put_raw(w, b->data, b->length);
}

/*
 * Decodes one field per op from buf[0..len) and, when w is not NULL,
 * writes each decoded field to it.  Returns a digest of the fields so two
 * decodings can be compared; stops at the first error.
 */
static uint64_t run_ops(const uint8_t *ops, size_t nops, const uint8_t *buf,
                        size_t len, struct wire_writer *w)
{
    struct wire_reader r;
    wire_reader_init(&r, buf, len);
    uint64_t digest = 0;
    for (size_t i = 0; i < nops && r.err == 0; i++) {
        uint8_t op = ops[i];
        uint64_t v = 0;
        const uint8_t *p = NULL;
        size_t n = 0;
        char *s = NULL;
        struct wire_blocks b;
        uint8_t raw[32];
        switch (op % 8) {
        case 0: v = wire_get_u8(&r); if (w) wire_put_u8(w, (uint8_t)v); break;
        case 1: v = wire_get_u16(&r); if (w) wire_put_u16(w, (uint16_t)v); break;
        case 2: v = wire_get_u32(&r); if (w) wire_put_u32(w, (uint32_t)v); break;
        case 3: v = wire_get_u64(&r); if (w) wire_put_u64(w, v); break;
        case 4:
            n = op >> 3;
            wire_get_raw(&r, raw, n);
            p = raw;
            if (w && r.err == 0)
                wire_put_raw(w, raw, n);
            break;
        case 5:
            n = wire_get_bytes(&r, &p, FIELD_MAX);
            if (r.err == 0) {
                assert(n <= FIELD_MAX && in_buf(p, n, buf, len));
                if (w)
                    wire_put_bytes(w, p, n);
            } else {
                assert(p == NULL && n == 0);
            }
            break;
        case 6:
            s = wire_get_str(&r, FIELD_MAX);
            assert((s != NULL) == (r.err == 0));
            if (s) {
                n = strlen(s);
                p = (const uint8_t *)s;
                if (w)
                    wire_put_str(w, s);
            }
            break;
        default:
            if (wire_get_blocks(&r, &b, FIELD_MAX) == 0) {
                assert(in_buf(b.data, b.length, buf, len));
                assert(in_buf(b.crcs, (size_t)b.nblocks * 4, buf, len));
                v = (uint64_t)wire_verify_blocks(&b, NULL);
                n = b.length;
                p = b.data;
                if (w)
                    put_blocks_as_read(w, &b, v == 0);
            }
            break;
        }
        if (r.err == 0) {
            digest = digest * 1000003u ^ v ^ n;
            for (size_t k = 0; k < n; k++)
                digest = digest * 31u + p[k];
        }
        free(s);
    }
    if (r.err) {
        /* sticky: nothing more is read */
        size_t left = r.left;
        assert(wire_get_u64(&r) == 0 && r.left == left);
        assert(wire_reader_finish(&r) == r.err);
    }
    return r.err ? UINT64_MAX : digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    split_stream(data, size);
    decode_header(data, size);
    if (size == 0)
        return 0;

    size_t nops = data[0] % 32;
    if (nops > size - 1)
        nops = size - 1;
    const uint8_t *ops = data + 1;
    const uint8_t *body = ops + nops;
    size_t body_len = size - 1 - nops;

    struct wire_writer w;
    wire_writer_init(&w);
    uint64_t first = run_ops(ops, nops, body, body_len, &w);
    assert(w.err == 0);
    if (first != UINT64_MAX) {
        size_t len;
        uint8_t *again = wire_writer_detach(&w, &len);
        /* a block section that failed verification is not re-encoded
         * identically, so only compare when every op round-tripped */
        assert(run_ops(ops, nops, again, len, NULL) == first);
        free(again);
    }
    wire_writer_release(&w);
    return 0;
}
