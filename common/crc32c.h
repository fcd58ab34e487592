/*
 * crc32c: CRC-32C (Castagnoli), the checksum of every dfs data block, frame
 * header, Raft log entry and chunk file header.
 *
 * Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF
 * (the iSCSI / ext4 / SSE4.2 CRC): crc32c(0, "123456789", 9) == 0xE3069283.
 * Every function is pure and thread-safe; nothing here allocates.
 */
#ifndef DFS_CRC32C_H
#define DFS_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * CRC of buf[0..len) continuing from crc, the CRC of everything before it
 * (0 to start).  Incremental:
 *     crc32c(crc32c(0, a, n), b, m) == crc32c(0, a || b, n + m).
 * Uses the SSE4.2 instruction when the CPU has it, else crc32c_sw().
 * buf may be NULL when len is 0.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable path (slicing-by-8), same contract and results as crc32c(). */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* True when crc32c() runs on the hardware instruction on this CPU. */
bool crc32c_hw_available(void);

/*
 * CRC of a || b from crc_a = crc32c(0, a, len_a) and crc_b =
 * crc32c(0, b, len_b), without the data: O(log len_b) GF(2) products.
 */
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b);

#endif
