/* utf8.c - strict UTF-8 decoding (see utf8.h). */
#include "utf8.h"

/* The ranges of table 3-7: after the lead byte c, the second byte lies in
 * [lo, hi] and every further one in [0x80, 0xBF].  Checking the second
 * byte's range is what rules out overlong forms, surrogates and code
 * points above U+10FFFF without decoding first. */
size_t utf8_decode(const void *src, size_t avail, uint32_t *cp)
{
    const uint8_t *s = src;
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        if (cp != NULL)
            *cp = c;
        return 1;
    }
    if (c < 0xC2 || c > 0xF4)
        return 0;
    if (c < 0xE0) {
        n = 2, v = c & 0x1Fu;
    } else if (c < 0xF0) {
        n = 3, v = c & 0x0Fu;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else {
        n = 4, v = c & 0x07u;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    if (cp != NULL)
        *cp = v;
    return n;
}

size_t utf8_scan(const void *src, size_t len)
{
    const uint8_t *s = src;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_decode(s + i, len - i, NULL);
        if (n == 0)
            return i;
        i += n;
    }
    return len;
}
