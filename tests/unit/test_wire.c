/*
 * Tests of wire: the reader at exact size and one byte short for every
 * getter, sticky errors, trailing bytes, byte strings over their maximum
 * or with an embedded NUL; writer growth, reserve, detach and its sticky
 * errors; the frame header (layout, every truncation, magic, version, CRC,
 * size and status checks); frame building and the splitter; the block-CRC
 * data section; and seeded random input (seed printed, DFS_TEST_SEED=<n>
 * replays it) that must never crash nor succeed past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crc32c.h"
#include "common/dfs_error.h"
#include "common/protocol.h"
#include "common/wire.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);   /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng_next();
}

static int seed_setup(void **state)
{
    (void)state;
    const char *env = getenv("DFS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("test_wire: seed %" PRIu64 " (replay with DFS_TEST_SEED=%" PRIu64
           ")\n", seed, seed);
    rng_state = seed;
    return 0;
}

/* ---- reader ----------------------------------------------------------- */

static const uint8_t sample[] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
};

/* Reads one value of size n with getter g from exactly n bytes, then from
 * n - 1 bytes, and checks value, consumption and the sticky error. */
#define CHECK_GETTER(getter, n, want)                                        \
    do {                                                                     \
        struct wire_reader r;                                                \
        wire_reader_init(&r, sample, (n));                                   \
        assert_true(getter(&r) == (want));                                   \
        assert_int_equal(r.err, 0);                                          \
        assert_int_equal(r.left, 0);                                         \
        assert_int_equal(wire_reader_finish(&r), 0);                         \
        wire_reader_init(&r, sample, (n) - 1);                               \
        assert_true(getter(&r) == 0);                                        \
        assert_int_equal(r.err, -DFS_ETRUNC);                                \
        assert_int_equal(r.left, (n) - 1);                                   \
        assert_int_equal(wire_reader_finish(&r), -DFS_ETRUNC);               \
    } while (0)

static void test_getters_exact_and_short(void **state)
{
    (void)state;
    CHECK_GETTER(wire_get_u8, 1, 0x01);
    CHECK_GETTER(wire_get_u16, 2, 0x0201);
    CHECK_GETTER(wire_get_u32, 4, 0x04030201u);
    CHECK_GETTER(wire_get_u64, 8, 0x0807060504030201ull);
    CHECK_GETTER(wire_get_i32, 4, 0x04030201);
    CHECK_GETTER(wire_get_i64, 8, 0x0807060504030201ll);

    struct wire_reader r;
    uint8_t dst[10];
    wire_reader_init(&r, sample, 10);
    wire_get_raw(&r, dst, 10);
    assert_int_equal(r.err, 0);
    assert_memory_equal(dst, sample, 10);
    assert_int_equal(wire_reader_finish(&r), 0);
    wire_reader_init(&r, sample, 9);
    memset(dst, 0xAA, sizeof(dst));
    wire_get_raw(&r, dst, 10);
    assert_int_equal(r.err, -DFS_ETRUNC);
    for (int i = 0; i < 10; i++)
        assert_int_equal(dst[i], 0);     /* never stale or partial */
}

static void test_bytes_and_str_exact_and_short(void **state)
{
    (void)state;
    const uint8_t msg[] = { 3, 0, 0, 0, 'a', 'b', 'c' };
    struct wire_reader r;
    const uint8_t *p;

    wire_reader_init(&r, msg, sizeof(msg));
    assert_int_equal(wire_get_bytes(&r, &p, 3), 3);
    assert_ptr_equal(p, msg + 4);
    assert_int_equal(wire_reader_finish(&r), 0);

    for (size_t len = 0; len < sizeof(msg); len++) {
        wire_reader_init(&r, msg, len);
        assert_int_equal(wire_get_bytes(&r, &p, 100), 0);
        assert_null(p);
        assert_int_equal(r.err, -DFS_ETRUNC);
        wire_reader_init(&r, msg, len);
        assert_null(wire_get_str(&r, 100));
        assert_int_equal(r.err, -DFS_ETRUNC);
    }

    wire_reader_init(&r, msg, sizeof(msg));
    char *s = wire_get_str(&r, 3);
    assert_non_null(s);
    assert_string_equal(s, "abc");
    free(s);
    assert_int_equal(wire_reader_finish(&r), 0);

    /* over the maximum: refused before the length is trusted */
    wire_reader_init(&r, msg, sizeof(msg));
    assert_int_equal(wire_get_bytes(&r, &p, 2), 0);
    assert_null(p);
    assert_int_equal(r.err, -DFS_ETOOBIG);
    const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'x' };
    wire_reader_init(&r, huge, sizeof(huge));
    assert_null(wire_get_str(&r, 4096));
    assert_int_equal(r.err, -DFS_ETOOBIG);
    wire_reader_init(&r, huge, sizeof(huge));
    assert_int_equal(wire_get_bytes(&r, &p, SIZE_MAX), 0);
    assert_int_equal(r.err, -DFS_ETRUNC);

    /* empty byte string */
    const uint8_t empty[] = { 0, 0, 0, 0 };
    wire_reader_init(&r, empty, sizeof(empty));
    s = wire_get_str(&r, 0);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(wire_reader_finish(&r), 0);
}

static void test_str_embedded_nul(void **state)
{
    (void)state;
    const uint8_t msg[] = { 4, 0, 0, 0, 'a', 0, 'b', 'c', 7 };
    struct wire_reader r;
    wire_reader_init(&r, msg, sizeof(msg));
    assert_null(wire_get_str(&r, 100));
    assert_int_equal(r.err, -EINVAL);
    assert_int_equal(wire_get_u8(&r), 0);     /* sticky */
    assert_int_equal(wire_reader_finish(&r), -EINVAL);
    /* a trailing NUL is embedded too: str carries none */
    const uint8_t msg2[] = { 2, 0, 0, 0, 'a', 0 };
    wire_reader_init(&r, msg2, sizeof(msg2));
    assert_null(wire_get_str(&r, 100));
    assert_int_equal(r.err, -EINVAL);
    /* but wire_get_bytes takes any bytes */
    const uint8_t *p;
    wire_reader_init(&r, msg, sizeof(msg));
    assert_int_equal(wire_get_bytes(&r, &p, 100), 4);
    assert_int_equal(wire_get_u8(&r), 7);
    assert_int_equal(wire_reader_finish(&r), 0);
}

static void test_errors_are_sticky(void **state)
{
    (void)state;
    struct wire_reader r;
    wire_reader_init(&r, sample, 3);
    assert_int_equal(wire_get_u32(&r), 0);
    assert_int_equal(r.err, -DFS_ETRUNC);
    /* later reads that would fit still fail and consume nothing */
    assert_int_equal(wire_get_u8(&r), 0);
    assert_int_equal(wire_get_u16(&r), 0);
    assert_int_equal(r.left, 3);
    assert_ptr_equal(r.p, sample);
    /* the first error wins */
    const uint8_t *p;
    assert_int_equal(wire_get_bytes(&r, &p, 0), 0);
    assert_int_equal(r.err, -DFS_ETRUNC);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    struct wire_reader r;
    wire_reader_init(&r, sample, 5);
    wire_get_u32(&r);
    assert_int_equal(r.err, 0);
    assert_int_equal(wire_reader_finish(&r), -EBADMSG);
    wire_get_u8(&r);
    assert_int_equal(wire_reader_finish(&r), 0);
    wire_reader_init(&r, NULL, 0);
    assert_int_equal(wire_reader_finish(&r), 0);
    assert_int_equal(wire_get_u8(&r), 0);
    assert_int_equal(wire_reader_finish(&r), -DFS_ETRUNC);
}

/* ---- writer ----------------------------------------------------------- */

static void test_writer_encoding_and_round_trip(void **state)
{
    (void)state;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u8(&w, 0xAB);
    wire_put_u16(&w, 0x1234);
    wire_put_u32(&w, 0x11223344u);
    wire_put_u64(&w, 0x0102030405060708ull);
    wire_put_i32(&w, -2);
    wire_put_i64(&w, INT64_MIN);
    wire_put_str(&w, "héllo");
    wire_put_bytes(&w, "\0\1", 2);
    wire_put_raw(&w, "xyz", 3);
    wire_put_bytes(&w, NULL, 0);
    assert_int_equal(w.err, 0);

    static const uint8_t want_prefix[] = {
        0xAB, 0x34, 0x12, 0x44, 0x33, 0x22, 0x11,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
        0xFE, 0xFF, 0xFF, 0xFF,
        0, 0, 0, 0, 0, 0, 0, 0x80,
        6, 0, 0, 0,
    };
    assert_true(w.len > sizeof(want_prefix));
    assert_memory_equal(w.buf, want_prefix, sizeof(want_prefix));

    struct wire_reader r;
    wire_reader_init(&r, w.buf, w.len);
    assert_int_equal(wire_get_u8(&r), 0xAB);
    assert_int_equal(wire_get_u16(&r), 0x1234);
    assert_int_equal(wire_get_u32(&r), 0x11223344u);
    assert_true(wire_get_u64(&r) == 0x0102030405060708ull);
    assert_int_equal(wire_get_i32(&r), -2);
    assert_true(wire_get_i64(&r) == INT64_MIN);
    char *s = wire_get_str(&r, PROTO_NAME_MAX);
    assert_string_equal(s, "héllo");
    free(s);
    const uint8_t *p;
    assert_int_equal(wire_get_bytes(&r, &p, 2), 2);
    assert_memory_equal(p, "\0\1", 2);
    uint8_t raw[3];
    wire_get_raw(&r, raw, 3);
    assert_memory_equal(raw, "xyz", 3);
    assert_int_equal(wire_get_bytes(&r, &p, 0), 0);
    assert_non_null(p);
    assert_int_equal(wire_reader_finish(&r), 0);
    wire_writer_release(&w);
    assert_null(w.buf);
    assert_int_equal(w.len, 0);
}

static void test_writer_growth_reserve_detach(void **state)
{
    (void)state;
    struct wire_writer w;
    wire_writer_init(&w);
    size_t len;
    assert_null(wire_writer_detach(&w, &len));     /* nothing written */
    assert_int_equal(len, 0);

    enum { N = 100000 };
    for (uint32_t i = 0; i < N; i++)
        wire_put_u32(&w, i * 2654435761u);
    uint8_t *slot = wire_writer_reserve(&w, 8);
    assert_non_null(slot);
    memcpy(slot, "reserved", 8);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, N * 4 + 8);
    assert_true(w.cap >= w.len);

    uint8_t *buf = wire_writer_detach(&w, &len);
    assert_non_null(buf);
    assert_int_equal(len, N * 4 + 8);
    assert_null(w.buf);
    assert_int_equal(w.len, 0);
    assert_int_equal(w.cap, 0);
    struct wire_reader r;
    wire_reader_init(&r, buf, len);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(wire_get_u32(&r), i * 2654435761u);
    uint8_t tail[8];
    wire_get_raw(&r, tail, 8);
    assert_memory_equal(tail, "reserved", 8);
    assert_int_equal(wire_reader_finish(&r), 0);
    free(buf);

    /* the writer is reusable after detach, and reserve(0) is valid */
    assert_non_null(wire_writer_reserve(&w, 0));
    wire_put_u8(&w, 9);
    assert_int_equal(w.len, 1);
    wire_writer_release(&w);
}

static void test_writer_errors_are_sticky(void **state)
{
    (void)state;
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u32(&w, 1);
    /* a size that cannot be represented: refused before any allocation */
    assert_null(wire_writer_reserve(&w, SIZE_MAX));
    assert_int_equal(w.err, -ENOMEM);
    wire_put_u8(&w, 2);
    assert_int_equal(w.len, 4);
    assert_null(wire_writer_reserve(&w, 1));
    size_t len = 99;
    assert_null(wire_writer_detach(&w, &len));
    assert_int_equal(len, 0);
    assert_int_equal(w.err, 0);                    /* reset */

    /* a byte string that does not fit its u32 length; p is not read */
    wire_put_bytes(&w, sample, (size_t)UINT32_MAX + 1);
    assert_int_equal(w.err, -DFS_ETOOBIG);
    assert_int_equal(w.len, 0);
    wire_writer_release(&w);
    assert_int_equal(w.err, 0);
}

/* ---- frame header ----------------------------------------------------- */

static const struct wire_hdr hdr_sample = {
    .flags = WIRE_F_REPLY,
    .type = PROTO_GETATTR,
    .req_id = 0x1122334455667788ull,
    .payload_len = 1234,
    .status = -ENOENT,
};

/* Re-seals a hand-edited header so only the field under test is wrong. */
static void reseal(uint8_t h[WIRE_HDR_SIZE])
{
    uint32_t crc = crc32c(0, h, 24);
    for (int i = 0; i < 4; i++)
        h[24 + i] = (uint8_t)(crc >> (8 * i));
}

static void test_hdr_layout_and_round_trip(void **state)
{
    (void)state;
    uint8_t h[WIRE_HDR_SIZE];
    wire_hdr_encode(&hdr_sample, h);
    assert_memory_equal(h, "DFSW", 4);
    assert_int_equal(h[4], PROTO_VERSION);
    assert_int_equal(h[5], WIRE_F_REPLY);
    assert_int_equal(h[6] | h[7] << 8, PROTO_GETATTR);
    assert_int_equal(h[8], 0x88);
    assert_int_equal(h[15], 0x11);
    assert_int_equal(h[16] | h[17] << 8, 1234);
    assert_int_equal(h[20], (uint8_t)-ENOENT);
    assert_int_equal(h[23], 0xff);
    uint32_t crc = (uint32_t)h[24] | (uint32_t)h[25] << 8 |
                   (uint32_t)h[26] << 16 | (uint32_t)h[27] << 24;
    assert_int_equal(crc, crc32c(0, h, 24));

    struct wire_hdr out;
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out), 0);
    assert_int_equal(out.flags, hdr_sample.flags);
    assert_int_equal(out.type, hdr_sample.type);
    assert_true(out.req_id == hdr_sample.req_id);
    assert_int_equal(out.payload_len, hdr_sample.payload_len);
    assert_int_equal(out.status, -ENOENT);
}

static void test_hdr_truncated_every_length(void **state)
{
    (void)state;
    uint8_t h[WIRE_HDR_SIZE];
    wire_hdr_encode(&hdr_sample, h);
    struct wire_hdr out;
    for (size_t len = 0; len < WIRE_HDR_SIZE; len++)
        assert_int_equal(wire_hdr_decode(h, len, WIRE_MAX_PAYLOAD, &out),
                         -DFS_ETRUNC);
}

static void test_hdr_checks_in_order(void **state)
{
    (void)state;
    uint8_t h[WIRE_HDR_SIZE];
    struct wire_hdr out;

    wire_hdr_encode(&hdr_sample, h);
    h[0] ^= 0x20;                           /* "dFSW" */
    reseal(h);
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                     -DFS_EMAGIC);
    h[4] = PROTO_VERSION + 1;               /* magic still wins */
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                     -DFS_EMAGIC);

    wire_hdr_encode(&hdr_sample, h);
    h[4] = PROTO_VERSION + 1;
    reseal(h);
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                     -DFS_EVERSION);
    h[24] ^= 1;                             /* version before CRC */
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                     -DFS_EVERSION);

    /* a flip of any bit after the version breaks the CRC */
    for (int bit = 5 * 8; bit < WIRE_HDR_SIZE * 8; bit++) {
        wire_hdr_encode(&hdr_sample, h);
        h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                         -DFS_EHDRCRC);
    }

    /* size against the caller's maximum, and CRC before size */
    wire_hdr_encode(&hdr_sample, h);
    assert_int_equal(wire_hdr_decode(h, sizeof(h), 1234, &out), 0);
    assert_int_equal(wire_hdr_decode(h, sizeof(h), 1233, &out), -DFS_ETOOBIG);
    h[25] ^= 1;
    assert_int_equal(wire_hdr_decode(h, sizeof(h), 1233, &out), -DFS_EHDRCRC);
    struct wire_hdr big = hdr_sample;
    big.payload_len = UINT32_MAX;
    wire_hdr_encode(&big, h);
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                     -DFS_ETOOBIG);
}

static void test_hdr_status_translation(void **state)
{
    (void)state;
    static const struct { int32_t sent, seen; } cases[] = {
        { 0, 0 },
        { -EIO, -EIO },
        { -ENOSPC, -ENOSPC },
        { -DFS_ENOTLEADER, -DFS_ENOTLEADER },
        { -(DFS_ELAST - 1), -(DFS_ELAST - 1) },
        { -DFS_EBASE, -EPROTO },
        { -DFS_ELAST, -EPROTO },
        { -100000, -EPROTO },
        { INT32_MIN, -EPROTO },
    };
    uint8_t h[WIRE_HDR_SIZE];
    struct wire_hdr in = hdr_sample, out;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        in.status = cases[i].sent;
        wire_hdr_encode(&in, h);
        assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                         0);
        assert_int_equal(out.status, cases[i].seen);
    }
    in.status = 1;                          /* positive: malformed */
    wire_hdr_encode(&in, h);
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                     -EBADMSG);
    in.status = INT32_MAX;
    wire_hdr_encode(&in, h);
    assert_int_equal(wire_hdr_decode(h, sizeof(h), WIRE_MAX_PAYLOAD, &out),
                     -EBADMSG);
}

/* ---- frames ----------------------------------------------------------- */

/* Appends one frame of type with payload "u64 v, str s". */
static void put_frame(struct wire_writer *w, uint16_t type, uint64_t req_id,
                      uint64_t v, const char *s)
{
    struct wire_hdr h = { .type = type, .req_id = req_id };
    size_t at = wire_frame_begin(w);
    wire_put_u64(w, v);
    wire_put_str(w, s);
    assert_int_equal(wire_frame_end(w, at, &h), 0);
    assert_int_equal(h.payload_len, 8 + 4 + strlen(s));
}

static void test_frame_build_and_split(void **state)
{
    (void)state;
    struct wire_writer w;
    wire_writer_init(&w);
    put_frame(&w, PROTO_LOOKUP, 1, 42, "name");
    put_frame(&w, PROTO_MKDIR, 2, 43, "");
    put_frame(&w, PROTO_STATFS, 3, 44, "third frame");
    assert_int_equal(w.err, 0);

    const uint8_t *p = w.buf;
    size_t left = w.len;
    static const struct { uint16_t type; uint64_t v; const char *s; } want[] = {
        { PROTO_LOOKUP, 42, "name" },
        { PROTO_MKDIR, 43, "" },
        { PROTO_STATFS, 44, "third frame" },
    };
    for (int i = 0; i < 3; i++) {
        struct wire_frame f;
        assert_int_equal(wire_frame_split(p, left, WIRE_MAX_PAYLOAD, &f), 1);
        assert_int_equal(f.hdr.type, want[i].type);
        assert_true(f.hdr.req_id == (uint64_t)i + 1);
        assert_int_equal(f.hdr.flags, 0);
        assert_int_equal(f.hdr.status, 0);
        assert_ptr_equal(f.payload, p + WIRE_HDR_SIZE);
        assert_int_equal(f.span, WIRE_HDR_SIZE + f.hdr.payload_len);

        struct wire_reader r;
        wire_reader_init(&r, f.payload, f.hdr.payload_len);
        assert_true(wire_get_u64(&r) == want[i].v);
        char *s = wire_get_str(&r, PROTO_NAME_MAX);
        assert_non_null(s);
        assert_string_equal(s, want[i].s);
        free(s);
        assert_int_equal(wire_reader_finish(&r), 0);
        p += f.span;
        left -= f.span;
    }
    assert_int_equal(left, 0);
    wire_writer_release(&w);
}

static void test_frame_split_truncated_every_length(void **state)
{
    (void)state;
    struct wire_writer w;
    wire_writer_init(&w);
    put_frame(&w, PROTO_READLINK, 7, 1, "some payload bytes");
    size_t total = w.len;
    /* copy each prefix to its own allocation so ASan sees any overread */
    for (size_t len = 0; len < total; len++) {
        uint8_t *prefix = malloc(len ? len : 1);
        assert_non_null(prefix);
        memcpy(prefix, w.buf, len);
        struct wire_frame f;
        assert_int_equal(wire_frame_split(prefix, len, WIRE_MAX_PAYLOAD, &f),
                         0);
        assert_null(f.payload);
        assert_int_equal(f.span, len < WIRE_HDR_SIZE ? WIRE_HDR_SIZE : total);
        free(prefix);
    }
    struct wire_frame f;
    assert_int_equal(wire_frame_split(w.buf, total, WIRE_MAX_PAYLOAD, &f), 1);
    /* the caller's maximum applies to the splitter too */
    assert_int_equal(wire_frame_split(w.buf, total, 10, &f), -DFS_ETOOBIG);
    wire_writer_release(&w);
}

static void test_frame_split_rejects_foreign_bytes_early(void **state)
{
    (void)state;
    const char *http = "GET / HTTP/1.1\r\n";
    struct wire_frame f;
    for (size_t len = 1; len <= strlen(http); len++)
        assert_int_equal(wire_frame_split((const uint8_t *)http, len,
                                          WIRE_MAX_PAYLOAD, &f),
                         -DFS_EMAGIC);
    assert_int_equal(wire_frame_split((const uint8_t *)"DF", 2,
                                      WIRE_MAX_PAYLOAD, &f), 0);
    assert_int_equal(wire_frame_split((const uint8_t *)"DFSW\1", 5,
                                      WIRE_MAX_PAYLOAD, &f), 0);
    assert_int_equal(wire_frame_split(NULL, 0, WIRE_MAX_PAYLOAD, &f), 0);
}

static void test_frame_end_too_big_drops_frame(void **state)
{
    (void)state;
    struct wire_writer w;
    wire_writer_init(&w);
    put_frame(&w, PROTO_GETATTR, 1, 5, "kept");
    size_t kept = w.len;

    struct wire_hdr h = { .type = PROTO_CS_WRITE, .req_id = 2 };
    size_t at = wire_frame_begin(&w);
    assert_non_null(wire_writer_reserve(&w, WIRE_MAX_PAYLOAD + 1));
    assert_int_equal(wire_frame_end(&w, at, &h), -DFS_ETOOBIG);
    assert_int_equal(w.len, kept);
    assert_int_equal(w.err, 0);

    /* exactly the maximum is fine */
    at = wire_frame_begin(&w);
    memset(wire_writer_reserve(&w, WIRE_MAX_PAYLOAD), 0x5A, WIRE_MAX_PAYLOAD);
    assert_int_equal(wire_frame_end(&w, at, &h), 0);
    assert_int_equal(h.payload_len, WIRE_MAX_PAYLOAD);
    struct wire_frame f;
    assert_int_equal(wire_frame_split(w.buf + kept, w.len - kept,
                                      WIRE_MAX_PAYLOAD, &f), 1);
    assert_int_equal(f.span, WIRE_MAX_FRAME);

    /* an offset that is not a frame start is refused */
    assert_int_equal(wire_frame_end(&w, w.len - 3, &h), -EINVAL);
    assert_int_equal(wire_frame_end(&w, w.len + 1, &h), -EINVAL);
    wire_writer_release(&w);
}

/* ---- data blocks ------------------------------------------------------ */

/* Encodes data[0..len) at offset, decodes it, checks every field. */
static void blocks_round_trip(uint64_t offset, const uint8_t *data, size_t len)
{
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_blocks(&w, offset, data, len);
    assert_int_equal(w.err, 0);

    struct wire_reader r;
    struct wire_blocks b;
    wire_reader_init(&r, w.buf, w.len);
    assert_int_equal(wire_get_blocks(&r, &b, PROTO_DATA_MAX), 0);
    assert_int_equal(wire_reader_finish(&r), 0);
    assert_true(b.offset == offset);
    assert_int_equal(b.length, len);
    if (len)
        assert_memory_equal(b.data, data, len);

    /* block i is the data inside grid cell offset / B + i */
    uint64_t first = offset / PROTO_BLOCK_SIZE;
    size_t pos = 0;
    for (uint32_t i = 0; i < b.nblocks; i++) {
        uint64_t cell_end = (first + i + 1) * PROTO_BLOCK_SIZE;
        size_t n = (size_t)(cell_end - (offset + pos));
        if (n > len - pos)
            n = len - pos;
        assert_true(n > 0);
        assert_int_equal(wire_blocks_crc(&b, i), crc32c(0, data + pos, n));
        pos += n;
    }
    assert_int_equal(pos, len);
    uint32_t bad = 77;
    assert_int_equal(wire_verify_blocks(&b, &bad), 0);
    assert_int_equal(bad, 77);

    /* The head alone is the same section up to its data. */
    struct wire_writer h;
    wire_writer_init(&h);
    wire_put_blocks_head(&h, offset, data, len);
    assert_int_equal(h.err, 0);
    assert_int_equal(h.len + len, w.len);
    assert_memory_equal(h.buf, w.buf, h.len);
    wire_writer_release(&h);
    wire_writer_release(&w);
}

static void test_blocks_round_trip(void **state)
{
    (void)state;
    size_t max = PROTO_DATA_MAX;
    uint8_t *data = malloc(max);
    assert_non_null(data);
    rng_fill(data, max);
    const uint64_t B = PROTO_BLOCK_SIZE;
    static const struct { uint64_t off; size_t len; uint32_t nblocks; } cases[] = {
        { 0, 0, 0 },
        { 0, 1, 1 },
        { 0, 65536, 1 },
        { 0, 65537, 2 },
        { 65536 - 10, 20, 2 },
        { 65536 - 10, 10, 1 },
        { 100, 3 * 65536, 4 },
        { 64u << 20, 1u << 20, 16 },
        { (64u << 20) - 1, 2, 2 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        blocks_round_trip(cases[i].off, data, cases[i].len);
        uint64_t last = cases[i].len
            ? (cases[i].off + cases[i].len - 1) / B - cases[i].off / B + 1 : 0;
        assert_int_equal(last, cases[i].nblocks);
    }
    for (int round = 0; round < 30; round++) {
        uint64_t off = rng_next() % (PROTO_CHUNK_SIZE);
        size_t len = rng_next() % (max + 1);
        blocks_round_trip(off, data, len);
    }
    free(data);
}

static void test_blocks_flipped_bit_detected(void **state)
{
    (void)state;
    enum { LEN = 5 * 65536 + 300 };
    uint8_t *data = malloc(LEN);
    assert_non_null(data);
    rng_fill(data, LEN);
    struct wire_writer w;
    wire_writer_init(&w);
    uint64_t offset = 65536 - 200;
    wire_put_blocks(&w, offset, data, LEN);
    size_t data_at = w.len - LEN;     /* data is the tail of the section */

    for (int round = 0; round < 50; round++) {
        size_t bit = rng_next() % ((size_t)LEN * 8);
        w.buf[data_at + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        struct wire_reader r;
        struct wire_blocks b;
        wire_reader_init(&r, w.buf, w.len);
        assert_int_equal(wire_get_blocks(&r, &b, PROTO_DATA_MAX), 0);
        uint32_t bad;
        assert_int_equal(wire_verify_blocks(&b, &bad), -DFS_ECORRUPT);
        uint32_t want = (uint32_t)((offset + bit / 8) / PROTO_BLOCK_SIZE -
                                   offset / PROTO_BLOCK_SIZE);
        assert_int_equal(bad, want);
        assert_int_equal(wire_verify_blocks(&b, NULL), -DFS_ECORRUPT);
        w.buf[data_at + bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* a flipped bit in a CRC is caught as well */
    size_t crc_at = 8 + 4 + 4 + 4 * 3;          /* block 3's CRC */
    w.buf[crc_at] ^= 0x10;
    struct wire_reader r;
    struct wire_blocks b;
    wire_reader_init(&r, w.buf, w.len);
    assert_int_equal(wire_get_blocks(&r, &b, PROTO_DATA_MAX), 0);
    uint32_t bad;
    assert_int_equal(wire_verify_blocks(&b, &bad), -DFS_ECORRUPT);
    assert_int_equal(bad, 3);
    wire_writer_release(&w);
    free(data);
}

/* Hand-built section header: offset, length, nblocks, then fill bytes. */
static size_t blocks_header(uint8_t *buf, uint64_t off, uint32_t len,
                            uint32_t nblocks, size_t fill)
{
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u64(&w, off);
    wire_put_u32(&w, len);
    wire_put_u32(&w, nblocks);
    uint8_t *z = wire_writer_reserve(&w, fill);
    assert_non_null(z);
    memset(z, 0, fill);
    size_t n = w.len;
    memcpy(buf, w.buf, n);
    wire_writer_release(&w);
    return n;
}

static void test_blocks_malformed(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct wire_reader r;
    struct wire_blocks b;
    size_t n;

    n = blocks_header(buf, 0, 16, 1, 4 + 16);
    wire_reader_init(&r, buf, n);
    assert_int_equal(wire_get_blocks(&r, &b, 16), 0);
    wire_reader_init(&r, buf, n);
    assert_int_equal(wire_get_blocks(&r, &b, 15), -DFS_ETOOBIG);
    assert_int_equal(r.err, -DFS_ETOOBIG);
    for (size_t len = 0; len < n; len++) {
        wire_reader_init(&r, buf, len);
        assert_int_equal(wire_get_blocks(&r, &b, 16), -DFS_ETRUNC);
        assert_null(b.data);
        assert_int_equal(b.nblocks, 0);
    }

    n = blocks_header(buf, 0, 16, 2, 8 + 16);     /* count disagrees */
    wire_reader_init(&r, buf, n);
    assert_int_equal(wire_get_blocks(&r, &b, 16), -EBADMSG);
    n = blocks_header(buf, 0, 0, 1, 4);
    wire_reader_init(&r, buf, n);
    assert_int_equal(wire_get_blocks(&r, &b, 16), -EBADMSG);
    n = blocks_header(buf, UINT64_MAX - 3, 16, 1, 4 + 16);   /* wraps */
    wire_reader_init(&r, buf, n);
    assert_int_equal(wire_get_blocks(&r, &b, 16), -EBADMSG);
    n = blocks_header(buf, 0, 0, 0, 0);            /* empty is valid */
    wire_reader_init(&r, buf, n);
    assert_int_equal(wire_get_blocks(&r, &b, 16), 0);
    assert_int_equal(wire_verify_blocks(&b, NULL), 0);
    assert_int_equal(wire_reader_finish(&r), 0);

    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_blocks(&w, UINT64_MAX - 3, sample, 8);   /* wraps */
    assert_int_equal(w.err, -DFS_ETOOBIG);
    wire_writer_release(&w);
}

/* ---- random input ----------------------------------------------------- */

/*
 * Decodes a random sequence of fields from random bytes while a model
 * tracks how many bytes each should take: the reader must fail exactly
 * when the model runs past the end, and never read beyond it (the buffer
 * is its own allocation, so ASan would see an overread).
 */
static void random_field_walk(const uint8_t *buf, size_t len)
{
    struct wire_reader r;
    wire_reader_init(&r, buf, len);
    size_t used = 0;
    bool past_end = false;
    for (int i = 0; i < 20 && !past_end; i++) {
        size_t need;
        const uint8_t *p;
        uint8_t tmp[16];
        switch (rng_next() % 7) {
        case 0: wire_get_u8(&r); need = 1; break;
        case 1: wire_get_u16(&r); need = 2; break;
        case 2: wire_get_u32(&r); need = 4; break;
        case 3: wire_get_u64(&r); need = 8; break;
        case 4: need = rng_next() % 17; wire_get_raw(&r, tmp, need); break;
        case 5: {
            size_t before = r.left;
            size_t n = wire_get_bytes(&r, &p, 64);
            if (r.err == 0) {
                assert_true(n <= 64);
                assert_true(p >= buf && p + n <= buf + len);
            }
            need = r.err == 0 ? before - r.left : len - used + 1;
            if (r.err == -DFS_ETOOBIG)
                return;     /* a legitimate refusal, not a past-end read */
            break;
        }
        default: {
            size_t before = r.left;
            char *s = wire_get_str(&r, 64);
            if (r.err == -DFS_ETOOBIG || r.err == -EINVAL) {
                assert_null(s);
                return;
            }
            need = r.err == 0 ? before - r.left : len - used + 1;
            if (s)
                assert_true(strlen(s) <= 64);
            free(s);
            break;
        }
        }
        if (used + need > len) {
            past_end = true;
            assert_int_equal(r.err, -DFS_ETRUNC);
        } else {
            used += need;
            assert_int_equal(r.err, 0);
            assert_int_equal(r.left, len - used);
        }
    }
    assert_true(r.left <= len);
}

static void test_random_garbage(void **state)
{
    (void)state;
    for (int round = 0; round < 20000; round++) {
        size_t len = rng_next() % 96;
        uint8_t *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        rng_fill(buf, len);
        /* often start with a genuine header prefix so later checks run */
        if (len >= WIRE_HDR_SIZE && (round & 1)) {
            struct wire_hdr h = {
                .type = (uint16_t)rng_next(),
                .payload_len = (uint32_t)(rng_next() % 128),
                .status = -(int32_t)(rng_next() % 2000),
            };
            wire_hdr_encode(&h, buf);
            if (round & 2)
                buf[rng_next() % WIRE_HDR_SIZE] ^= (uint8_t)(1 + rng_next() % 255);
        }
        struct wire_frame f;
        int rc = wire_frame_split(buf, len, 64, &f);
        assert_true(rc == 1 || rc == 0 || rc < 0);
        if (rc == 1) {
            assert_true(f.span <= len);
            assert_int_equal(f.span, WIRE_HDR_SIZE + f.hdr.payload_len);
            assert_true(f.hdr.payload_len <= 64);
            assert_true(f.hdr.status <= 0);
        }
        if (rc == 0)
            assert_true(f.span > len || f.span == WIRE_HDR_SIZE);

        struct wire_reader r;
        struct wire_blocks b;
        wire_reader_init(&r, buf, len);
        if (wire_get_blocks(&r, &b, 64) == 0) {
            assert_true(b.data + b.length <= buf + len);
            wire_verify_blocks(&b, NULL);
        }
        random_field_walk(buf, len);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getters_exact_and_short),
        cmocka_unit_test(test_bytes_and_str_exact_and_short),
        cmocka_unit_test(test_str_embedded_nul),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_writer_encoding_and_round_trip),
        cmocka_unit_test(test_writer_growth_reserve_detach),
        cmocka_unit_test(test_writer_errors_are_sticky),
        cmocka_unit_test(test_hdr_layout_and_round_trip),
        cmocka_unit_test(test_hdr_truncated_every_length),
        cmocka_unit_test(test_hdr_checks_in_order),
        cmocka_unit_test(test_hdr_status_translation),
        cmocka_unit_test(test_frame_build_and_split),
        cmocka_unit_test(test_frame_split_truncated_every_length),
        cmocka_unit_test(test_frame_split_rejects_foreign_bytes_early),
        cmocka_unit_test(test_frame_end_too_big_drops_frame),
        cmocka_unit_test(test_blocks_round_trip),
        cmocka_unit_test(test_blocks_flipped_bit_detected),
        cmocka_unit_test(test_blocks_malformed),
        cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests_name("wire", tests, seed_setup, NULL);
}
