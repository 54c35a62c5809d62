/* sha256.h - SHA-256 (FIPS 180-4), one-shot over a buffer in memory.
 *
 * The daemon uses it to derive the de-duplication key of a secured
 * submission (ingest.h): the key must resist an identity that searches for
 * a client id whose key equals another township's, which a
 * non-cryptographic hash would not.  The digest is the standard one, so
 * `sha256sum` and any other implementation give the same bytes.
 *
 * Message length: FIPS 180-4 hashes messages of fewer than 2^64 bits, so
 * len must be less than 2^61 bytes (SHA256_MAX_LEN).  Where size_t has 32
 * bits every len qualifies; where it has 64, no buffer in memory comes
 * near the limit, and a larger len is a programmer error (assert).
 *
 * The functions are pure and thread-safe: no state is kept between calls,
 * nothing is allocated, and the input is read a byte at a time, so msg
 * needs no particular alignment.
 */
#ifndef TALLYD_SHA256_H
#define TALLYD_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Bytes in a SHA-256 digest. */
#define SHA256_DIGEST_LEN 32

/* The largest message, in bytes, whose bit count fits the 64-bit length
 * field of the padding: 2^61 - 1. */
#define SHA256_MAX_LEN ((UINT64_C(1) << 61) - 1)

/* Write the 32-byte SHA-256 digest of msg[0..len) to out.  msg may be NULL
 * when len is 0; otherwise it must point to len readable bytes.  out must
 * point to SHA256_DIGEST_LEN writable bytes; it may overlap msg, which is
 * read in full before out is written.  Neither pointer is kept.  len must not exceed SHA256_MAX_LEN
 * (assert). Cannot fail. */
void sha256_digest(const void *msg, size_t len, uint8_t out[SHA256_DIGEST_LEN]);

/* Write the first n bytes of the SHA-256 digest of msg[0..len) to
 * out[0..n); bytes of out past n are not touched.  n must be at most
 * SHA256_DIGEST_LEN (assert); 0 writes nothing.  msg, len and ownership
 * as for sha256_digest(); out may be NULL when n is 0.  Cannot fail. */
void sha256_prefix(const void *msg, size_t len, uint8_t *out, size_t n);

#endif
