/* crc32c.h - CRC-32C (Castagnoli), the checksum of the journal.
 *
 * CRC-32C is the polynomial 0x1EDC6F41 (reflected 0x82F63B78) used by iSCSI,
 * ext4 and many storage formats.  x86-64 CPUs with SSE4.2 compute it in
 * hardware; crc32c() picks that path at run time and falls back to a
 * slicing-by-8 table elsewhere.  Both paths give identical results.
 *
 * The interface follows zlib's crc32(): pass 0 to start and the previous
 * result to continue, so crc32c(crc32c(0, a, na), b, nb) equals the CRC of
 * a followed by b.  Check value: crc32c(0, "123456789", 9) == 0xE3069283.
 *
 * All functions are pure and thread-safe; they keep no state.
 */
#ifndef TALLYD_CRC32C_H
#define TALLYD_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32C of len bytes at buf, continuing from crc (0 for a fresh start).
 * buf may be NULL when len is 0.  Uses the SSE4.2 instruction when the CPU
 * has it, else the table. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable slicing-by-8 implementation (any CPU).  Same contract as
 * crc32c(); exposed so tests can compare the two paths. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* The SSE4.2 implementation.  Same contract as crc32c(); call it only when
 * crc32c_hw_available() is true (it falls back to crc32c_sw() otherwise). */
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);

/* True when this CPU (and this build) can run crc32c_hw(). */
bool crc32c_hw_available(void);

#endif
