/* utf8.h - strict UTF-8 (RFC 3629): the one decoder that the codec, the
 * daemon's messages and the client's tables and JSON share (part of
 * tallycommon).
 *
 * Overlong forms, surrogates (U+D800..U+DFFF), code points above U+10FFFF
 * and sequences cut short are all invalid, as table 3-7 of the Unicode
 * standard says.
 */
#ifndef TALLY_UTF8_H
#define TALLY_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the sequence at s, which has avail >= 1 readable bytes (nothing
 * past s[avail - 1] is read).  Returns its length (1..4) and stores the
 * code point in *cp (when cp is not NULL); returns 0 when the bytes there
 * are not a valid sequence, leaving *cp alone.  Never fails otherwise. */
size_t utf8_decode(const void *s, size_t avail, uint32_t *cp);

/* Offset of the first byte of s[0..len) that does not start a valid
 * sequence, or len when all of it is valid.  s may be NULL when len is 0. */
size_t utf8_scan(const void *s, size_t len);

#endif
