/*
 * crc32c: CRC-32C with a portable path and an SSE4.2 path chosen at run time.
 *
 * Owns a few read-only tables built once (pthread_once) on first use: the
 * slicing-by-8 tables, the powers x^(2^k) mod P for shifting a CRC by any
 * length, and, on x86-64, the tables that shift a CRC by the fixed stream
 * lengths of the hardware path.
 *
 * Arithmetic is on the raw CRC register (no initial value, no final xor):
 * the public functions complement on the way in and out.  On raw registers
 *     raw(s, A || B) = raw(s, A) * x^(8|B|) ^ raw(0, B)     (mod P),
 * which is what makes three independent streams and combine possible.
 *
 * The hardware path: the crc32 instruction has a latency of 3 cycles and a
 * throughput of 1 per cycle, so one dependent chain uses a third of the
 * unit.  Large inputs are cut into three equal streams run interleaved,
 * then merged: crc = shift(c0, 2L) ^ shift(c1, L) ^ c2, each shift being
 * four lookups in a table built for that constant L (the two shifts are
 * independent, so the merge costs one table round trip of latency).
 *
 * Invariants:
 *  1. Every table is written only inside crc32c_init(), which runs exactly
 *     once before any table is read; afterwards all state is read-only.
 *  2. crc32c() and crc32c_sw() give the same result for every input; only
 *     speed differs (tests/unit/test_crc32c.c checks this).
 *  3. Nothing reads outside buf[0..len).
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define CRC32C_X86 1
#endif

#define POLY 0x82F63B78u    /* Castagnoli, reflected */
#define X0   0x80000000u    /* the polynomial 1 in reflected form */

static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static uint32_t sw_table[8][256];
static uint32_t x2n_table[64];          /* x^(2^k) mod P */
static bool hw_ok;

/* Product a * b mod P of two reflected polynomials, bit by bit. */
static uint32_t gf2_mul(uint32_t a, uint32_t b)
{
    uint32_t p = 0;
    for (uint32_t m = X0; m != 0; m >>= 1) {
        if (a & m)
            p ^= b;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return p;
}

/* x^(8n) mod P: the multiplier that shifts a raw CRC over n zero bytes. */
static uint32_t x8n_mod_p(uint64_t n)
{
    uint32_t p = X0;
    for (unsigned k = 3; n != 0; n >>= 1, k++) {
        if (n & 1)
            p = gf2_mul(x2n_table[k], p);
    }
    return p;
}

/* Written out so compilers fold it into one load on little-endian CPUs. */
static uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static uint32_t sw_update(uint32_t s, const uint8_t *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w = load_le64(p) ^ s;
        s = sw_table[7][w & 0xff] ^ sw_table[6][(w >> 8) & 0xff] ^
            sw_table[5][(w >> 16) & 0xff] ^ sw_table[4][(w >> 24) & 0xff] ^
            sw_table[3][(w >> 32) & 0xff] ^ sw_table[2][(w >> 40) & 0xff] ^
            sw_table[1][(w >> 48) & 0xff] ^ sw_table[0][w >> 56];
    }
    for (; n != 0; p++, n--)
        s = sw_table[0][(s ^ *p) & 0xff] ^ (s >> 8);
    return s;
}

#ifdef CRC32C_X86

/*
 * Stream lengths of the hardware path.  LONG amortises the merge over big
 * buffers; SHORT keeps 4 KiB buffers on three streams; both are multiples
 * of 8 so every stream is whole 64-bit words.
 */
#define LONG  8192
#define SHORT 256

/* t[k][v] = (v << 8k) * x^(8L): a raw CRC shifted over L zero bytes. */
struct shift_table {
    uint32_t t[4][256];
};

static struct shift_table shift_long, shift_long2, shift_short, shift_short2;

static void shift_table_build(struct shift_table *st, size_t len)
{
    uint32_t mult = x8n_mod_p(len);
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++)
            st->t[k][v] = gf2_mul(mult, v << (8 * k));
}

static uint32_t shift(const struct shift_table *st, uint32_t s)
{
    return st->t[0][s & 0xff] ^ st->t[1][(s >> 8) & 0xff] ^
           st->t[2][(s >> 16) & 0xff] ^ st->t[3][s >> 24];
}

/*
 * Runs three interleaved streams of len bytes each over p[0..3len) and
 * merges them; s is the register before p.  t1 and t2 shift by len, 2len.
 */
__attribute__((target("sse4.2")))
static uint32_t hw_three(uint32_t s, const uint8_t *p, size_t len,
                         const struct shift_table *t1,
                         const struct shift_table *t2)
{
    uint64_t c0 = s, c1 = 0, c2 = 0;
    const uint8_t *end = p + len;
    for (; p < end; p += 8) {
        uint64_t w0, w1, w2;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + len, 8);
        memcpy(&w2, p + 2 * len, 8);
        c0 = _mm_crc32_u64(c0, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
    }
    return shift(t2, (uint32_t)c0) ^ shift(t1, (uint32_t)c1) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2")))
static uint32_t hw_update(uint32_t s, const uint8_t *p, size_t n)
{
    for (; n >= 3 * LONG; p += 3 * LONG, n -= 3 * LONG)
        s = hw_three(s, p, LONG, &shift_long, &shift_long2);
    for (; n >= 3 * SHORT; p += 3 * SHORT, n -= 3 * SHORT)
        s = hw_three(s, p, SHORT, &shift_short, &shift_short2);
    uint64_t c = s;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    s = (uint32_t)c;
    for (; n != 0; p++, n--)
        s = _mm_crc32_u8(s, *p);
    return s;
}

static bool cpu_has_sse42(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

static void hw_init(void)
{
    hw_ok = cpu_has_sse42();
    if (!hw_ok)
        return;
    shift_table_build(&shift_long, LONG);
    shift_table_build(&shift_long2, 2 * LONG);
    shift_table_build(&shift_short, SHORT);
    shift_table_build(&shift_short2, 2 * SHORT);
}

#else

/* No hardware path on this architecture: hw_ok stays false, so this is
 * never reached; it only keeps crc32c() free of #ifdefs. */
static uint32_t hw_update(uint32_t s, const uint8_t *p, size_t n)
{
    return sw_update(s, p, n);
}

static void hw_init(void)
{
    hw_ok = false;
}

#endif

static void crc32c_init(void)
{
    for (uint32_t v = 0; v < 256; v++) {
        uint32_t s = v;
        for (int b = 0; b < 8; b++)
            s = (s & 1) ? (s >> 1) ^ POLY : s >> 1;
        sw_table[0][v] = s;
    }
    for (int k = 1; k < 8; k++)
        for (int v = 0; v < 256; v++)
            sw_table[k][v] = (sw_table[k - 1][v] >> 8) ^
                             sw_table[0][sw_table[k - 1][v] & 0xff];

    x2n_table[0] = X0 >> 1;     /* x^1 */
    for (int k = 1; k < 64; k++)
        x2n_table[k] = gf2_mul(x2n_table[k - 1], x2n_table[k - 1]);

    hw_init();
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    if (hw_ok)
        return ~hw_update(~crc, buf, len);
    return ~sw_update(~crc, buf, len);
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~sw_update(~crc, buf, len);
}

bool crc32c_hw_available(void)
{
    pthread_once(&crc32c_once, crc32c_init);
    return hw_ok;
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b)
{
    pthread_once(&crc32c_once, crc32c_init);
    return gf2_mul(x8n_mod_p(len_b), crc_a) ^ crc_b;
}
