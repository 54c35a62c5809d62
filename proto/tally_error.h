/* tally_error.h - the one error convention of the tally project.
 *
 * Every function that can fail returns int: 0 is success, a negative value
 * is one of the codes below.  Codes -1 .. -99 travel on the wire as their
 * absolute value (see PROTOCOL.md, "Error codes"); codes from -100 down are
 * local to one process and never sent.
 */
#ifndef TALLY_ERROR_H
#define TALLY_ERROR_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" { /* libtally's public header includes this one */
#endif

enum tally_error {
    TALLY_OK = 0,
    /* wire codes */
    TALLY_EMALFORMED = -1,    /* not MessagePack, truncated, wrong shape */
    TALLY_EVERSION = -2,      /* unsupported protocol version */
    TALLY_ETYPE = -3,         /* unknown message type */
    TALLY_EBADTYPE = -4,      /* a field has the wrong MessagePack type */
    TALLY_ERANGE = -5,        /* integer or length outside the field's range */
    TALLY_ETOOLONG = -6,      /* string longer than its limit */
    TALLY_EUTF8 = -7,         /* name is not valid UTF-8 */
    TALLY_EBADNAME = -8,      /* name empty or with a forbidden character */
    TALLY_EEMPTY = -9,        /* submission without samples */
    TALLY_ETOOMANY = -10,     /* more samples than allowed */
    TALLY_ETRAILING = -11,    /* bytes after the message */
    TALLY_EUNKTOWN = -12,     /* township not in the catalog */
    TALLY_EUNKMETRIC = -13,   /* metric not in the catalog */
    TALLY_EFUTURE = -14,      /* event time beyond the allowed skew */
    TALLY_ETOOOLD = -15,      /* event time older than retention */
    TALLY_EOVERFLOW = -16,    /* applying would overflow int64 */
    TALLY_EFORBIDDEN = -17,   /* identity may not submit for township */
    TALLY_ERATELIMIT = -18,   /* slow down (retryable) */
    TALLY_ESERIESLIMIT = -19, /* series table full */
    TALLY_ECLIENTLIMIT = -20, /* de-duplication table full */
    TALLY_EUNAVAIL = -21,     /* storage failing or stopping (retryable) */
    TALLY_ETOOLARGE = -22,    /* message larger than allowed */
    TALLY_EKIND = -23,        /* value not valid for the metric's kind */
    TALLY_EBUSY = -24,        /* daemon overloaded (retryable) */
    TALLY_ESTALESEQ = -25,    /* sequence below the de-duplication window */
    TALLY_EBADPERIOD = -26,   /* a period or range that does not parse, future, too long */
    TALLY_EEXPIRED = -27,     /* the period's figures are no longer kept */
    TALLY_ENOBACKUP = -28,    /* no backup of that name is kept (BACKUP_FETCH) */
    TALLY_EWIRE_LAST = -28,
    /* local codes, never on the wire */
    TALLY_ENOMEM = -100,
    TALLY_EIO = -101,
    TALLY_ETIMEDOUT = -102,
    TALLY_EAGAIN = -103,
    TALLY_ECLOSED = -104,
    TALLY_EINVAL = -105,
    TALLY_EEXIST = -106,
    TALLY_ENOTFOUND = -107,
    TALLY_ECONFIG = -108,
    TALLY_ESYS = -109,
    TALLY_EDAMAGED = -110,  /* a backup's file does not match its BLAKE2SUMS */
    TALLY_ECALLBACK = -111, /* called from one of the handle's own callbacks */
};

/* Short English description of a code (static storage, never NULL).
 * Unknown codes give "unknown error". */
const char *tally_strerror(int code);

/* Stable upper-case identifier of a code, e.g. "UNKNOWN_METRIC"
 * (static storage, never NULL; "UNKNOWN" for unknown codes). */
const char *tally_errname(int code);

/* True when a client should retry the same submission later unchanged:
 * RATE_LIMITED, UNAVAILABLE, BUSY, and the local TIMEOUT/AGAIN/IO/CLOSED. */
bool tally_err_retryable(int code);

/* True when the code may travel on the wire (-1 .. TALLY_EWIRE_LAST). */
bool tally_err_is_wire(int code);

#ifdef __cplusplus
}
#endif

#endif
