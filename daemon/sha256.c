/* sha256.c - SHA-256 (FIPS 180-4), the straightforward way: the inputs
 * hashed here are a few dozen bytes, so clarity wins over speed. */
#include "sha256.h"

#include <assert.h>
#include <string.h>

/* The round constants (FIPS 180-4 4.2.2): the first 32 bits of the
 * fractional parts of the cube roots of the first 64 primes. */
static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

/* Process one 64-byte block p into the hash state h (FIPS 180-4 6.2.2).
 * The working variables a..h are v[0..7]; shifting them down by one
 * place each round is the b = a, c = b, ... rotation of the standard. */
static void sha_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, h, sizeof(v));
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
                      ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha_k[i] + w[i];
        uint32_t t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
                      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof(v[0]));
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += v[i];
}

void sha256_digest(const void *msg, size_t len, uint8_t out[SHA256_DIGEST_LEN])
{
    /* The padding ends with the message length in bits as a 64-bit
     * big-endian number; a longer message has no SHA-256 digest. */
    assert((uint64_t)len <= SHA256_MAX_LEN);
    assert(msg != NULL || len == 0);
    assert(out != NULL);
    const uint8_t *p = msg;
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t full = len / 64 * 64;
    for (size_t off = 0; off < full; off += 64)
        sha_block(h, p + off);

    /* The final block or two: the last len % 64 bytes, the 0x80 marker,
     * zeros, and the bit count in the last 8 bytes.  A second block is
     * needed when the marker and the count do not fit after the rest. */
    uint8_t last[128] = {0};
    size_t rest = len - full;
    if (rest > 0) /* p may be NULL when len is 0; NULL + 0 is undefined. */
        memcpy(last, p + full, rest);
    last[rest] = 0x80;
    size_t tail = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        last[tail - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha_block(h, last);
    if (tail == 128)
        sha_block(h, last + 64);

    for (size_t i = 0; i < SHA256_DIGEST_LEN; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

void sha256_prefix(const void *msg, size_t len, uint8_t *out, size_t n)
{
    assert(n <= SHA256_DIGEST_LEN);
    assert(out != NULL || n == 0);
    uint8_t digest[SHA256_DIGEST_LEN];
    sha256_digest(msg, len, digest);
    if (n > 0)
        memcpy(out, digest, n);
}
