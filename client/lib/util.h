/* util.h - libtally (client/lib/, private): small helpers shared by the
 * library's modules. */
#ifndef TALLY_CLIENT_UTIL_H
#define TALLY_CLIENT_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC (for timers). */
int64_t util_mono_ms(void);

/* Milliseconds since 1970-01-01 UTC (CLOCK_REALTIME). */
int64_t util_real_ms(void);

/* Fill buf with len random bytes from getrandom(2).  Returns 0 or
 * TALLY_ESYS. */
int util_random(void *buf, size_t len);

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void util_hex(const uint8_t *in, size_t len, char *out);

/* Parse exactly 2 * len hex digits from s into out.  Returns 0 or
 * TALLY_EMALFORMED. */
int util_unhex(const char *s, size_t slen, uint8_t *out, size_t len);

/* zmq_setsockopt of an int option.  0 or TALLY_ESYS (errno tells why). */
int util_setsockopt_int(void *sock, int opt, int value);

/* zmq_connect(sock, endpoint), with ZMQ_IPV6 set first when the endpoint's
 * host is a bracketed IPv6 address ("tcp://[::1]:7411"), which libzmq
 * cannot reach otherwise.  Only then: with it set, a host name may
 * resolve to an IPv6 address the daemon does not listen on.  zmq_connect's
 * return (errno tells why). */
int util_connect(void *sock, const char *endpoint);

/* A small PRNG (xorshift64*) for jitter, seeded by the caller. */
uint64_t util_rand_next(uint64_t *state);

#endif
