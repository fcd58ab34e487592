/*
 * Tests of crc32c: published vectors, the hardware path against the
 * portable one on every short length and alignment and on large buffers
 * (crossing each stream-length boundary of the three-stream loop),
 * incremental use and combine.  Random buffers come from a seeded
 * generator; the seed is printed and DFS_TEST_SEED=<n> replays it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crc32c.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: small, seedable, good enough for test data */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
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
    printf("test_crc32c: seed %" PRIu64 " (replay with DFS_TEST_SEED=%" PRIu64
           ")\n", seed, seed);
    rng_state = seed;
    return 0;
}

/* Bit-at-a-time reference, straight from the definition. */
static uint32_t crc_reference(const uint8_t *p, size_t n)
{
    uint32_t s = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        s ^= p[i];
        for (int b = 0; b < 8; b++)
            s = (s & 1) ? (s >> 1) ^ 0x82F63B78u : s >> 1;
    }
    return ~s;
}

static void test_vectors(void **state)
{
    (void)state;
    uint8_t zeros[32], ones[32], ascending[32], descending[32];
    memset(zeros, 0, sizeof(zeros));
    memset(ones, 0xFF, sizeof(ones));
    for (int i = 0; i < 32; i++) {
        ascending[i] = (uint8_t)i;
        descending[i] = (uint8_t)(31 - i);
    }
    /* RFC 3720 appendix B.4 and the usual check value */
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
    assert_int_equal(crc32c(0, ascending, 32), 0x46DD794Eu);
    assert_int_equal(crc32c(0, descending, 32), 0x113FDB5Cu);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(crc32c_sw(0, ones, 32), 0x62A8AB43u);
    assert_int_equal(crc32c_sw(0, ascending, 32), 0x46DD794Eu);
    assert_int_equal(crc32c(0, NULL, 0), 0);
    assert_int_equal(crc32c(0x12345678u, NULL, 0), 0x12345678u);
}

static void test_hw_is_used_here(void **state)
{
    (void)state;
    /* The comparisons below only prove something when the two paths
     * differ; say so when this CPU has no SSE4.2. */
    if (!crc32c_hw_available())
        printf("test_crc32c: no SSE4.2 here, crc32c() is the portable path\n");
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        assert_true(crc32c_hw_available());
#endif
}

static void test_short_lengths_all_alignments(void **state)
{
    (void)state;
    enum { MAXLEN = 1024, PAD = 16 };
    uint8_t *buf = malloc(MAXLEN + PAD);
    assert_non_null(buf);
    rng_fill(buf, MAXLEN + PAD);
    for (size_t len = 0; len <= MAXLEN; len++) {
        size_t off = rng_next() % PAD;
        uint32_t want = crc_reference(buf + off, len);
        assert_int_equal(crc32c_sw(0, buf + off, len), want);
        assert_int_equal(crc32c(0, buf + off, len), want);
    }
    free(buf);
}

static void test_large_buffers_match(void **state)
{
    (void)state;
    /* Lengths around multiples of the hardware path's stream sizes
     * (3 x 256 and 3 x 8192 bytes) and the block sizes dfs uses. */
    static const size_t lens[] = {
        767, 768, 769, 1535, 1536, 1537, 24575, 24576, 24577, 24576 + 768,
        24576 + 767, 49152 + 1, 65535, 65536, 65537, 100003, 1u << 20,
        (1u << 20) + 7, (3u << 20) + 4097,
    };
    size_t max = (3u << 20) + 4097 + 8;
    uint8_t *buf = malloc(max);
    assert_non_null(buf);
    rng_fill(buf, max);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t off = rng_next() % 8;
        uint32_t sw = crc32c_sw(0, buf + off, lens[i]);
        assert_int_equal(crc32c(0, buf + off, lens[i]), sw);
        if (lens[i] < 70000)
            assert_int_equal(crc_reference(buf + off, lens[i]), sw);
    }
    for (int round = 0; round < 50; round++) {
        size_t len = rng_next() % (max - 8);
        size_t off = rng_next() % 8;
        assert_int_equal(crc32c(0, buf + off, len),
                         crc32c_sw(0, buf + off, len));
    }
    free(buf);
}

static void test_incremental(void **state)
{
    (void)state;
    enum { N = 200000 };
    uint8_t *buf = malloc(N);
    assert_non_null(buf);
    rng_fill(buf, N);
    uint32_t whole = crc32c(0, buf, N);
    for (int round = 0; round < 200; round++) {
        size_t cut = rng_next() % (N + 1);
        uint32_t a = crc32c(0, buf, cut);
        assert_int_equal(crc32c(a, buf + cut, N - cut), whole);
        uint32_t as = crc32c_sw(0, buf, cut);
        assert_int_equal(crc32c_sw(as, buf + cut, N - cut), whole);
    }
    /* many small pieces of varying size */
    uint32_t crc = 0;
    for (size_t pos = 0; pos < N;) {
        size_t piece = 1 + rng_next() % 3000;
        if (piece > N - pos)
            piece = N - pos;
        crc = crc32c(crc, buf + pos, piece);
        pos += piece;
    }
    assert_int_equal(crc, whole);
    free(buf);
}

static void test_combine(void **state)
{
    (void)state;
    enum { N = 300000 };
    uint8_t *buf = malloc(N);
    assert_non_null(buf);
    rng_fill(buf, N);
    for (int round = 0; round < 300; round++) {
        size_t la = rng_next() % (N / 2);
        size_t lb = round < 10 ? (size_t)round : rng_next() % (N / 2);
        uint32_t a = crc32c(0, buf, la);
        uint32_t b = crc32c(0, buf + la, lb);
        assert_int_equal(crc32c_combine(a, b, lb), crc32c(0, buf, la + lb));
    }
    /* Lengths past 4 GiB: the CRC of 2^33 zero bytes, built by doubling,
     * must combine associatively with data on either side. */
    uint32_t zeros = crc32c(0, "\0", 1);
    uint64_t have = 1;
    while (have < (1ull << 33)) {
        zeros = crc32c_combine(zeros, zeros, have);
        have *= 2;
    }
    uint32_t x = crc32c(0, "dfs", 3), y = crc32c(0, "tail!", 5);
    uint32_t left = crc32c_combine(crc32c_combine(x, zeros, have), y, 5);
    uint32_t right = crc32c_combine(x, crc32c_combine(zeros, y, 5), have + 5);
    assert_int_equal(left, right);
    /* and doubling agrees with the data itself on a small case */
    uint8_t z[64] = { 0 };
    uint32_t d = crc32c(0, z, 1);
    for (size_t n = 1; n < 64; n *= 2)
        d = crc32c_combine(d, d, n);
    assert_int_equal(d, crc32c(0, z, 64));
    free(buf);
}

static void test_single_bit_flips_detected(void **state)
{
    (void)state;
    enum { N = 65536 };
    uint8_t *buf = malloc(N);
    assert_non_null(buf);
    rng_fill(buf, N);
    uint32_t good = crc32c(0, buf, N);
    for (int round = 0; round < 100; round++) {
        size_t bit = rng_next() % (N * 8);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_not_equal(crc32c(0, buf, N), good);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_hw_is_used_here),
        cmocka_unit_test(test_short_lengths_all_alignments),
        cmocka_unit_test(test_large_buffers_match),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_combine),
        cmocka_unit_test(test_single_bit_flips_detected),
    };
    return cmocka_run_group_tests_name("crc32c", tests, seed_setup, NULL);
}
