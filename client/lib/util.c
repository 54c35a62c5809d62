/* util.c - libtally (client/lib/): clocks, randomness, hex and socket
 * options for the library's modules. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <zmq.h>

#include "tally_error.h"

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t util_real_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int util_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            /* A signal may interrupt a large request; anything else means
             * the kernel cannot give us randomness, which we must not fake. */
            if (errno == EINTR)
                continue;
            return TALLY_ESYS;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void util_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* The value of hex digit c into *v.  0 or TALLY_EMALFORMED. */
static int hexval(char c, uint8_t *v)
{
    if (c >= '0' && c <= '9')
        *v = (uint8_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
        *v = (uint8_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
        *v = (uint8_t)(c - 'A' + 10);
    else
        return TALLY_EMALFORMED;
    return 0;
}

int util_unhex(const char *s, size_t slen, uint8_t *out, size_t len)
{
    if (slen != 2 * len)
        return TALLY_EMALFORMED;
    for (size_t i = 0; i < len; i++) {
        uint8_t hi, lo;
        if (hexval(s[2 * i], &hi) < 0 || hexval(s[2 * i + 1], &lo) < 0)
            return TALLY_EMALFORMED;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int util_connect(void *sock, const char *endpoint)
{
    const char *sep = strstr(endpoint, "://");
    if (sep != NULL && sep[3] == '[' && util_setsockopt_int(sock, ZMQ_IPV6, 1) != 0)
        return -1;
    return zmq_connect(sock, endpoint);
}

int util_setsockopt_int(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value) == 0 ? 0 : TALLY_ESYS;
}

uint64_t util_rand_next(uint64_t *state)
{
    uint64_t x = *state;
    if (x == 0)
        x = 0x9E3779B97F4A7C15ULL; /* xorshift must never hold zero */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
