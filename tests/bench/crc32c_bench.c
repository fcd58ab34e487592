/*
 * crc32c_bench: throughput of crc32c() (hardware path when the CPU has it)
 * and crc32c_sw() at 4 KiB, 64 KiB and 1 MiB buffers.  Each figure is the
 * median of RUNS runs; a run checksums about 256 MiB in repeated calls over
 * one warm buffer.  Figures only: nothing here passes or fails.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/crc32c.h"

#define RUNS       9
#define RUN_BYTES  (256u << 20)

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median GB/s (10^9 bytes per second) of fn over buf[0..len). */
static double measure(crc_fn fn, const uint8_t *buf, size_t len)
{
    double rates[RUNS];
    size_t calls = RUN_BYTES / len;
    volatile uint32_t sink = 0;
    for (int r = 0; r < RUNS; r++) {
        uint32_t crc = 0;
        double t0 = now_sec();
        for (size_t i = 0; i < calls; i++)
            crc = fn(crc, buf, len);
        double t1 = now_sec();
        sink ^= crc;
        rates[r] = (double)(calls * len) / (t1 - t0) / 1e9;
    }
    (void)sink;
    qsort(rates, RUNS, sizeof(rates[0]), cmp_double);
    return rates[RUNS / 2];
}

int main(void)
{
    static const size_t sizes[] = { 4u << 10, 64u << 10, 1u << 20 };
    size_t max = sizes[sizeof(sizes) / sizeof(sizes[0]) - 1];
    uint8_t *buf = malloc(max);
    if (!buf) {
        perror("crc32c_bench: malloc");
        return 1;
    }
    for (size_t i = 0; i < max; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);

    printf("crc32c: hardware path %s\n",
           crc32c_hw_available() ? "available (sse4.2)" : "not available");
    printf("%-10s %12s %12s\n", "buffer", "crc32c GB/s", "sw GB/s");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        double hw = measure(crc32c, buf, sizes[i]);
        double sw = measure(crc32c_sw, buf, sizes[i]);
        printf("%-4zu KiB   %12.2f %12.2f\n", sizes[i] >> 10, hw, sw);
    }
    free(buf);
    return 0;
}
