/* curve.h - libtally (client/lib/, private): CURVE keys for its sockets,
 * turning a tally_curve_t (a key or certificate files) into the three
 * keys ZeroMQ wants on a client socket.
 *
 * Certificates are ZeroMQ's ZPL text as `tally keygen` and czmq write it:
 *     curve
 *         public-key = "<40 characters of Z85>"
 *         secret-key = "<40 characters of Z85>"     (secret certificates)
 * Only those two lines count; comments ('#'), the metadata section and
 * other keys are skipped.  Values may be in double or single quotes or
 * bare.
 */
#ifndef TALLY_CLIENT_CURVE_H
#define TALLY_CLIENT_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include "tally.h"

#define CURVE_FILE_MAX (64 * 1024) /* bytes read from a certificate */

/* The keys of one client socket, as Z85 text. */
typedef struct curve_keys {
    bool on; /* false: plaintext, the keys are unset */
    char server[TALLY_CURVE_KEY_LEN + 1];
    char pub[TALLY_CURVE_KEY_LEN + 1];
    char sec[TALLY_CURVE_KEY_LEN + 1];
} curve_keys_t;

/* Fill *out from c (NULL or without server_key: plaintext, out->on
 * false).  Returns 0 or the codes of tally_curve_check(), with the reason
 * in err.  *out holds a secret: curve_wipe() it when done. */
int curve_load(const tally_curve_t *c, curve_keys_t *out, char *err, size_t errlen);

/* Make sock (before its zmq_connect) a CURVE client with k; nothing when
 * k->on is false.  Returns 0 or TALLY_ESYS (errno tells). */
int curve_apply(void *sock, const curve_keys_t *k);

/* Overwrite the keys in k. */
void curve_wipe(curve_keys_t *k);

/* Parse certificate text[0..len) (name for messages): the public key into
 * pub, the secret key into sec when the text has one (sec may be NULL;
 * *has_secret, may be NULL, tells).  Returns 0 or TALLY_EINVAL with the
 * reason in err. */
int curve_parse_cert(const char *text, size_t len, const char *name,
                     char pub[TALLY_CURVE_KEY_LEN + 1], char *sec, bool *has_secret, char *err,
                     size_t errlen);

#endif
