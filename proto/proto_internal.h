/* proto_internal.h - what the codec's own files share; private to proto/.
 *
 * The codec is split where writing and reading part ways: proto_encode.c
 * packs messages with msgpack-c's packer, proto_decode.c (with
 * proto_decode_reads.c) reads them with a strict cursor of its own
 * (proto_reader.h, proto_reader.c), and proto.c holds the rules both
 * directions apply (UTF-8, names, the layout of each message) and the
 * small public helpers.  The encoder refuses exactly what the decoder rejects, so the
 * limits they both check live here, once.
 *
 * Nothing outside proto/ includes this header: daemon/, client/, tests/ and
 * bench/ see proto.h only.
 */
#ifndef TALLY_PROTO_INTERNAL_H
#define TALLY_PROTO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define PROTO_TALLY_ELEMS    6  /* [metric, scope, kind, seq, time_ms, values] */
#define PROTO_STAT_NAME_MAX  64 /* bytes in a STATS counter name */
#define PROTO_CODE_MAX       99 /* wire error codes are 1..99 (PROTOCOL.md 11.1) */
#define PROTO_ACK_SAMPLE_MAX (PROTO_SAMPLES_MAX - 1)

/* Elements of each type's top-level array, version and type included,
 * indexed by enum proto_type (0 for a number that is not a type).  The encoder writes these
 * counts and the decoder demands them. */
extern const uint8_t proto_msg_elems[PROTO_TYPE_LAST + 1];

/* Check s[0..len) against the name rules of wire.md (1..PROTO_NAME_MAX
 * bytes, valid UTF-8, no C0/C1 controls, space, '/' or DEL).  Returns 0,
 * TALLY_EBADNAME (empty, or a forbidden character), TALLY_ETOOLONG or
 * TALLY_EUTF8.  at must not be NULL: on TALLY_EUTF8, and on TALLY_EBADNAME
 * for a non-empty name, *at receives the offset of the offending byte;
 * otherwise its value means nothing.  s may be NULL only when len is 0. */
int proto_name_scan(const uint8_t *s, size_t len, size_t *at);

/* Return the code of expr from the calling function when it is not 0. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            return rc_;                                                                            \
    } while (0)

#endif
