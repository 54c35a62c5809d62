/* proto.h - the tally wire protocol v1: message structs, encoder, decoder.
 *
 * PROTOCOL.md is the specification; this codec implements it for both the
 * daemon and the client.  It depends on msgpack-c and on tallycommon (the
 * helpers next to it in proto/) only, and knows nothing of sockets.
 *
 * Decoding never allocates: strings are returned as views (proto_str_t) into
 * the caller's input buffer, which must outlive the decoded message, and the
 * samples of a SUBMIT land in an array the caller provides.  No length read
 * from the wire is trusted: every count is checked against the bytes that
 * remain before anything is read.
 *
 * Encoding appends one complete message body to a msgpack_sbuffer, which the
 * caller may reuse (msgpack_sbuffer_clear keeps its storage).
 */
#ifndef TALLY_PROTO_H
#define TALLY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack/sbuffer.h>

#include "tally_error.h"

#define PROTO_VERSION           1
#define PROTO_CLIENT_ID_LEN     16
#define PROTO_NAME_MAX          64    /* bytes in a township or metric name */
#define PROTO_SAMPLES_MAX       4096  /* hard maximum samples per SUBMIT */
#define PROTO_SAMPLES_DEFAULT   1000  /* default configured maximum */
#define PROTO_MSG_MAX_DEFAULT   65536 /* default ZMQ_MAXMSGSIZE */
#define PROTO_COLUMNS_MAX       16    /* columns in a tally */
#define PROTO_COLUMN_NAME_MAX   16
#define PROTO_PREFIX_MAX        255 /* topic prefix in SNAPSHOT_REQ */
#define PROTO_ENDPOINT_MAX      255
#define PROTO_TEXT_MAX          64              /* HELLO client, WELCOME server */
#define PROTO_FIELD_MAX         64              /* ACK/ERROR field */
#define PROTO_MESSAGE_MAX       512             /* ACK/ERROR message */
#define PROTO_STATS_MAX         256             /* entries in a STATS map */
#define PROTO_LIMITS_MAX        32              /* entries in a WELCOME limits map */
#define PROTO_TIME_MIN          946684800000LL  /* 2000-01-01T00:00:00Z in ms */
#define PROTO_TIME_MAX          4102444800000LL /* 2100-01-01T00:00:00Z, exclusive */
#define PROTO_TOPIC_MAX         (8 + 2 * PROTO_NAME_MAX + 8)
#define PROTO_TOPIC_HEARTBEAT   "h"
#define PROTO_TOWNSHIP_NAME_MAX 64     /* bytes in a township's display name (CATALOG) */
#define PROTO_UNIT_MAX          16     /* bytes in a metric's unit (CATALOG) */
#define PROTO_LABEL_MAX         128    /* bytes in a metric's label (CATALOG) */
#define PROTO_SCALE_MAX         9      /* decimal places of a metric (CATALOG) */
#define PROTO_CATALOG_BYTES     65536  /* a CATALOG body the daemon sends is at most this */
#define PROTO_ZONE_MAX          128    /* bytes in a time zone's name (CLOCK) */
#define PROTO_UTC_OFFSET_MAX    86399  /* seconds a zone may be off UTC, either way (CLOCK) */
#define PROTO_PERIOD_TEXT_MAX   16     /* a period name or a range's "by" */
#define PROTO_RANGE_CHUNK       256    /* points in one RANGE message */
#define PROTO_CHANGED_MAX       8      /* periods in one PERIOD_CHANGED */
#define PROTO_PATH_MAX          1024   /* bytes in a BACKUP's path */
#define PROTO_BACKUP_NAME_MAX   64     /* bytes in a backup's or a backup file's name (8.27) */
#define PROTO_CHUNK_MAX         262144 /* bytes of a file in one BACKUP_CHUNK */
#define PROTO_BACKUPS_MAX       1000   /* backups in one BACKUP_LIST (8.28) */

enum proto_type {
    PROTO_SUBMIT = 1,
    PROTO_ACK = 2,
    PROTO_SNAPSHOT_REQ = 3,
    PROTO_SNAPSHOT_ITEM = 4,
    PROTO_SNAPSHOT_END = 5,
    PROTO_UPDATE = 6,
    PROTO_HEARTBEAT = 7,
    PROTO_HELLO = 8,
    PROTO_WELCOME = 9,
    PROTO_STATS_REQ = 10,
    PROTO_STATS = 11,
    PROTO_PING = 12,
    PROTO_PONG = 13,
    PROTO_ERROR = 14,
    PROTO_GOODBYE = 15,
    PROTO_CATALOG_REQ = 16,
    PROTO_CATALOG = 17,
    /* History (PROTOCOL.md 8.18-8.22) */
    PROTO_PERIOD_REQ = 18,
    PROTO_PERIOD = 19,
    PROTO_RANGE_REQ = 20,
    PROTO_RANGE = 21,
    PROTO_PERIOD_CHANGED = 22,
    /* The daemon's clock and calendar zone (PROTOCOL.md 8.23, 8.24) */
    PROTO_CLOCK_REQ = 23,
    PROTO_CLOCK = 24,
    /* A span of days, summed like a period (PROTOCOL.md 8.24) */
    PROTO_SPAN_REQ = 25,
    /* The townships that have tallies, in pages (PROTOCOL.md 8.25) */
    PROTO_TOWNSHIPS_REQ = 26,
    PROTO_TOWNSHIPS = 27,
    /* A backup of the daemon's state, asked for by an operator (PROTOCOL.md 8.26) */
    PROTO_BACKUP_REQ = 28,
    PROTO_BACKUP = 29,
    /* A backup's files, copied to the client (PROTOCOL.md 8.27) */
    PROTO_BACKUP_FETCH = 30,
    PROTO_BACKUP_CHUNK = 31,
    /* The backups the daemon keeps (PROTOCOL.md 8.28) */
    PROTO_BACKUP_LIST_REQ = 32,
    PROTO_BACKUP_LIST = 33,
};

#define PROTO_TYPE_LAST PROTO_BACKUP_LIST /* the highest message type this codec knows */

enum proto_ack_status {
    PROTO_ACK_ACCEPTED = 0,
    PROTO_ACK_DUPLICATE = 1,
    PROTO_ACK_REJECTED = 2,
};

enum proto_kind {
    PROTO_KIND_COUNTER = 0,
    PROTO_KIND_GAUGE = 1,
    PROTO_KIND_RATIO = 2,
};

/* A string view: not NUL-terminated, points into a buffer owned by someone
 * else (the decoded input, or the caller when encoding). */
typedef struct proto_str {
    const char *ptr;
    uint32_t len;
} proto_str_t;

/* What went wrong while decoding, for the person who sent it. */
typedef struct proto_error {
    int code;                        /* a TALLY_E* wire code */
    int32_t sample;                  /* 0-based sample index, or -1 */
    char field[PROTO_FIELD_MAX];     /* e.g. "samples[3].metric" */
    char message[PROTO_MESSAGE_MAX]; /* full sentence naming field and value */
} proto_error_t;

typedef struct proto_sample {
    proto_str_t metric;
    int64_t value;
} proto_sample_t;

typedef struct proto_submit {
    uint8_t client_id[PROTO_CLIENT_ID_LEN];
    uint64_t seq; /* >= 1; 0 after a failed decode means "not known" */
    proto_str_t township;
    int64_t time_ms;
    uint32_t nsamples;
    proto_sample_t *samples; /* decode: the caller's array; encode: input */
} proto_submit_t;

typedef struct proto_ack {
    uint64_t seq;
    uint8_t status; /* enum proto_ack_status */
    uint32_t code;  /* wire code (positive), 0 unless rejected */
    int32_t sample; /* -1 or 0-based sample index */
    proto_str_t field;
    proto_str_t message;
} proto_ack_t;

/* One column of a tally.  present == false is "no value" (nil on the
 * wire).  Counters and gauges use num only (den is 1); ratios use both and
 * den is never 0 when present. */
typedef struct proto_value {
    proto_str_t name;
    bool present;
    int64_t num;
    int64_t den;
} proto_value_t;

typedef struct proto_tally {
    proto_str_t metric;
    proto_str_t scope; /* empty = county-wide, else a township name */
    uint8_t kind;      /* enum proto_kind */
    uint64_t seq;
    int64_t time_ms;
    uint32_t nvalues;
    proto_value_t values[PROTO_COLUMNS_MAX];
} proto_tally_t;

typedef struct proto_stat {
    proto_str_t name;
    int64_t value;
} proto_stat_t;

/* A township of the catalog (PROTOCOL.md 8.17). */
typedef struct proto_township {
    proto_str_t id;   /* a name (9.1) */
    proto_str_t name; /* display name, 0..PROTO_TOWNSHIP_NAME_MAX bytes */
    uint8_t type;     /* 0 unspecified, 1 subdistrict, 2 town, 3 township */
} proto_township_t;

#define PROTO_TOWNSHIP_TYPE_MAX 3

/* A metric of the catalog.  numerator and denominator are set (names)
 * exactly when kind is PROTO_KIND_RATIO, empty otherwise. */
typedef struct proto_metric_info {
    proto_str_t id;
    uint8_t kind;      /* enum proto_kind */
    proto_str_t unit;  /* 0..PROTO_UNIT_MAX bytes */
    uint8_t scale;     /* 0..PROTO_SCALE_MAX */
    proto_str_t label; /* 0..PROTO_LABEL_MAX bytes */
    proto_str_t numerator, denominator;
} proto_metric_info_t;

typedef struct proto_msg {
    uint32_t version;
    uint32_t type; /* enum proto_type; 0 if it could not be decoded */
    union {
        proto_submit_t submit;
        proto_ack_t ack;
        struct {
            uint64_t req_id;
            proto_str_t prefix;
        } snapshot_req;
        struct {
            uint64_t req_id;
            proto_tally_t tally;
        } snapshot_item;
        struct {
            uint64_t req_id;
            uint64_t stream_id;
            uint64_t seq;
            uint32_t count;
        } snapshot_end;
        struct {
            uint64_t stream_id;
            proto_tally_t tally;
        } update;
        struct {
            uint64_t stream_id;
            uint64_t seq;
            int64_t time_ms;
        } heartbeat;
        struct {
            uint64_t req_id;
            proto_str_t client;
        } hello;
        struct {
            uint64_t req_id;
            proto_str_t server;
            proto_str_t pub_endpoint;
            uint64_t stream_id;
            uint64_t seq;
            uint32_t ncolumns;
            proto_str_t columns[PROTO_COLUMNS_MAX];
            /* -1 when the daemon did not send the key */
            int64_t max_samples, max_name, max_msg, skew_ms, max_age_ms;
            /* ms a client id may stay idle before the daemon forgets it
             * (PROTOCOL.md 14.3); sent only when > 0, -1 when not sent */
            int64_t client_expiry_ms;
        } welcome;
        struct {
            uint64_t req_id;
        } stats_req;
        struct {
            uint64_t req_id;
            uint32_t n;
            proto_stat_t entries[PROTO_STATS_MAX];
        } stats;
        struct {
            uint64_t req_id;
            int64_t time_ms;
        } ping;
        struct {
            uint64_t req_id;
            int64_t time_ms;
            uint64_t seq;
        } pong;
        struct {
            uint64_t req_id;
            uint32_t code;
            proto_str_t field;
            proto_str_t message;
        } error;
        struct {
            uint64_t stream_id;
            uint64_t seq;
        } goodbye;
        struct {
            uint64_t req_id;
            uint32_t townships_from, metrics_from;
        } catalog_req;
        struct {
            uint64_t req_id;
        } clock_req;
        struct {
            uint64_t req_id;
            int64_t now_ms;       /* the daemon's clock, ms since the epoch */
            proto_str_t zone;     /* its calendar's zone, 1..PROTO_ZONE_MAX bytes */
            int32_t utc_offset_s; /* the zone's offset at now_ms, east positive */
        } clock;
        struct {
            uint64_t req_id;
            uint64_t catalog_id;
            uint32_t townships_total, metrics_total;
            uint32_t ntownships, nmetrics; /* entries in this message */
            /* Encoding: the caller's entries.  Decoding: NULL; read the
             * entries with proto_catalog_iter() (they stay in the input). */
            const proto_township_t *townships;
            const proto_metric_info_t *metrics;
            const uint8_t *entries, *end; /* decoding: the two arrays' bytes */
        } catalog;
        struct {
            uint64_t req_id;
            proto_str_t prefix; /* 0..255 bytes, as in SNAPSHOT_REQ */
            proto_str_t period; /* 1..16 bytes: "2023", "2023-Q4", ... */
        } period_req;
        struct {
            uint64_t req_id;
            uint32_t index; /* of this item, 0-based */
            uint32_t count; /* items in the whole answer */
            bool has_tally; /* false only when count is 0 (nil on the wire) */
            proto_tally_t tally;
        } period;
        struct {
            uint64_t req_id;
            proto_str_t metric; /* a name */
            proto_str_t scope;  /* "" (county) or a township name */
            proto_str_t by;     /* "day", "month", "quarter", "year" */
            proto_str_t from;   /* period names, 1..16 bytes */
            proto_str_t to;
        } range_req;
        struct {
            uint64_t req_id;
            proto_str_t prefix; /* 0..255 bytes, as in PERIOD_REQ */
            proto_str_t from;   /* period names, 1..16 bytes: the first day of from */
            proto_str_t to;     /* ... to the last day of to */
        } span_req;
        struct {
            uint64_t req_id;
            proto_str_t metric;
            proto_str_t scope;
            uint8_t kind;     /* enum proto_kind */
            uint32_t first;   /* index of points[0] in the whole range */
            uint32_t total;   /* points in the whole range */
            uint32_t npoints; /* 0..PROTO_RANGE_CHUNK */
            /* name: the period; num/den/present as a tally's column */
            proto_value_t points[PROTO_RANGE_CHUNK];
        } range;
        struct {
            uint64_t stream_id;
            uint64_t seq; /* the publisher's seq when it was sent */
            proto_str_t metric;
            proto_str_t scope;
            uint32_t nperiods; /* 1..PROTO_CHANGED_MAX */
            proto_str_t periods[PROTO_CHANGED_MAX];
        } period_changed;
        struct {
            uint64_t req_id;
            uint32_t from; /* the position to list from: 0, or a TOWNSHIPS' next */
        } townships_req;
        struct {
            uint64_t req_id;
            uint32_t next; /* the position to ask for next; 0: the list is complete */
            uint32_t n;    /* names in this message */
            /* Encoding: the caller's names.  Decoding: NULL; read them with
             * proto_townships_iter() (they stay in the input). */
            const proto_str_t *names;
            const uint8_t *entries, *end; /* decoding: the array's bytes */
        } townships;
        struct {
            uint64_t req_id;
        } backup_req;
        struct {
            uint64_t req_id;
            proto_str_t path; /* 1..PROTO_PATH_MAX bytes of UTF-8: the backup's directory */
            uint32_t files;   /* files in it */
            uint64_t bytes;   /* their size together */
            uint64_t ms;      /* how long the backup took */
        } backup;
        struct {
            uint64_t req_id;
            proto_str_t name; /* the backup's: proto_backup_name_valid() */
            uint32_t file;    /* index among its files sorted by name */
            uint64_t offset;  /* the byte of that file to read from */
        } backup_fetch;
        struct {
            uint64_t req_id;
            uint32_t files;        /* files in the backup, >= 1 */
            uint32_t file;         /* < files */
            proto_str_t file_name; /* proto_backup_file_name_valid() */
            uint64_t size;         /* the file's size */
            uint64_t offset;       /* <= size */
            proto_str_t data;      /* min(PROTO_CHUNK_MAX, size - offset) bytes from offset */
        } backup_chunk;
        struct {
            uint64_t req_id;
        } backup_list_req;
        struct {
            uint64_t req_id;
            proto_str_t dir; /* 0..PROTO_PATH_MAX bytes of UTF-8: the backup directory */
            uint32_t total;  /* backups kept there, >= n */
            uint32_t n;      /* listed here: the newest, 0..PROTO_BACKUPS_MAX */
            /* Encoding: the caller's entries, oldest first.  Decoding: NULL;
             * read them with proto_backups_iter() (they stay in the input). */
            const struct proto_backup_entry *backups;
            const uint8_t *entries, *end; /* decoding: the array's bytes */
        } backup_list;
    } u;
} proto_msg_t;

/* Decode one message body of len bytes.
 *
 * samples/samples_cap: storage for a SUBMIT's samples; a SUBMIT with more
 * than samples_cap samples fails with TALLY_ETOOMANY (pass the configured
 * limit, at most PROTO_SAMPLES_MAX).  May be NULL/0 when the caller does not
 * accept SUBMIT (then SUBMIT fails with TALLY_ETOOMANY).
 *
 * On success returns 0 and fills *msg; string views point into buf.
 * On failure returns a negative TALLY_E* wire code and, if err is not NULL,
 * fills *err with the code, the field ("seq", "samples[2].value") and a
 * sentence naming the value and the limit.  As much of *msg as was decoded
 * before the failure is kept, so the daemon can still address its reply:
 * msg->type (0 if unknown), submit.seq (0 if unknown) and the req_id of
 * request types (0 if unknown). */
int proto_decode(const void *buf, size_t len, proto_msg_t *msg, proto_sample_t *samples,
                 uint32_t samples_cap, proto_error_t *err);

/* Decode only the start of a body of len bytes: the envelope (array,
 * version, type, element count) and what names the message, for a body
 * too large to be decoded whole (PROTOCOL.md 11.3).  For a SUBMIT that is
 * client_id, seq and township; for any other type but ACK the leading
 * req_id (or stream_id); for an ACK nothing more.  The rest of the body
 * is not read, and is not checked.
 *
 * Returns 0 when all of it was read, with msg->type and those fields set
 * (a SUBMIT's time_ms, nsamples and samples are 0 and NULL, its township a
 * view into buf).  On failure returns a negative TALLY_E* code and fills
 * *err (when not NULL) as proto_decode() does, keeping what was read
 * before it: msg->type (0 if unknown), submit.seq (0 if unknown; its
 * client_id is set when seq is) and the req_id (0 if unknown). */
int proto_decode_head(const void *buf, size_t len, proto_msg_t *msg, proto_error_t *err);

/* Append the body of msg (msg->type selects the layout; msg->version is
 * ignored, PROTO_VERSION is written) to out.  Returns 0, TALLY_EINVAL if a
 * field is outside its protocol range (the encoder refuses to produce what
 * the decoder would reject), or TALLY_ENOMEM.  On failure out may hold a
 * partial message; the caller clears it. */
int proto_encode(msgpack_sbuffer *out, const proto_msg_t *msg);

/* Check a township or metric name against the protocol's rules (1..64
 * bytes, valid UTF-8, no controls, space, '/' or DEL).  Returns 0,
 * TALLY_EBADNAME, TALLY_ETOOLONG or TALLY_EUTF8. */
int proto_name_check(const char *name, size_t len);

/* The township id no township may take (PROTOCOL.md 9.1): tally's
 * clients show the county-wide tallies (scope "") under it. */
#define PROTO_TOWNSHIP_RESERVED "county"

/* True when name[0..len) is PROTO_TOWNSHIP_RESERVED. */
bool proto_township_reserved(const char *name, size_t len);

/* True when s[0..len) is a backup's name (PROTOCOL.md 8.27):
 * "backup-YYYYMMDDTHHMMSSZ", optionally followed by "-N" (1 to 3 digits). */
bool proto_backup_name_valid(const char *s, size_t len);

/* The order in which tallyd wrote the backups named a and b (NUL-terminated
 * names that proto_backup_name_valid() accepts): by the time in the name,
 * then by the suffix -N as a number (none first, -2 before -10); names
 * that tie so (-2 and -02) bytewise, so that a sort is the same every
 * time.  < 0, 0 or > 0. */
int proto_backup_name_cmp(const char *a, const char *b);

/* True when s[0..len) may name a file of a backup copy (8.27): 1..64 bytes
 * of ASCII letters, digits, '.', '-' and '_', not beginning with '.'. */
bool proto_backup_file_name_valid(const char *s, size_t len);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, no code
 * point above U+10FFFF). */
bool proto_utf8_valid(const char *s, size_t len);

/* Write the publish topic of a tally into buf (NUL-terminated):
 * "u/county/<metric>/" for an empty scope, else "u/town/<scope>/<metric>/".
 * Returns the topic length (without the NUL) or TALLY_ETOOLONG if cap is too
 * small. */
int proto_topic(char *buf, size_t cap, proto_str_t metric, proto_str_t scope);

/* True when some topic of the protocol (PROTOCOL.md 9.2) begins with
 * p[0..len): a prefix a subscriber may usefully subscribe to.  "" and
 * every prefix of "h", "u/county/<metric>/" and
 * "u/town/<township>/<metric>/" qualify, names checked for their length
 * and forbidden bytes (not for UTF-8, since a prefix may end inside a
 * character). */
bool proto_topic_prefix_possible(const void *p, size_t len);

/* Reading the entries of a decoded CATALOG, which proto_decode has
 * checked entirely: townships first, then metrics. */
typedef struct proto_catalog_iter {
    const uint8_t *p, *end;
    uint32_t townships_left, metrics_left;
    bool in_metrics;
} proto_catalog_iter_t;

/* Start reading the entries of msg, a CATALOG that proto_decode accepted
 * (its input buffer still alive). */
void proto_catalog_iter(proto_catalog_iter_t *it, const proto_msg_t *msg);

/* The next township into *out (views into the input): true, or false when
 * there is none left. */
bool proto_catalog_next_township(proto_catalog_iter_t *it, proto_township_t *out);

/* The next metric into *out, skipping any township not read yet: true, or
 * false when there is none left. */
bool proto_catalog_next_metric(proto_catalog_iter_t *it, proto_metric_info_t *out);

/* Bytes that township t, or metric m, takes in a CATALOG body: what the
 * daemon adds up to stay within PROTO_CATALOG_BYTES. */
size_t proto_catalog_township_size(const proto_township_t *t);
size_t proto_catalog_metric_size(const proto_metric_info_t *m);

/* Bytes of a CATALOG body without its entries, at most. */
#define PROTO_CATALOG_HEAD_BYTES 64

/* Reading the names of a decoded TOWNSHIPS, which proto_decode has
 * checked entirely. */
typedef struct proto_townships_iter {
    const uint8_t *p, *end;
    uint32_t left;
} proto_townships_iter_t;

/* Start reading the names of msg, a TOWNSHIPS that proto_decode accepted
 * (its input buffer still alive). */
void proto_townships_iter(proto_townships_iter_t *it, const proto_msg_t *msg);

/* The next name into *out (a view into the input): true, or false when
 * there is none left. */
bool proto_townships_next(proto_townships_iter_t *it, proto_str_t *out);

/* Bytes a name of len bytes takes in a TOWNSHIPS body; the daemon keeps
 * a body within PROTO_TOWNSHIPS_BYTES, its head included. */
size_t proto_townships_name_size(uint32_t len);
#define PROTO_TOWNSHIPS_BYTES      65536
#define PROTO_TOWNSHIPS_HEAD_BYTES 32

/* A backup in a BACKUP_LIST (PROTOCOL.md 8.28). */
typedef struct proto_backup_entry {
    proto_str_t name; /* proto_backup_name_valid() */
    uint32_t files;   /* its files, BLAKE2SUMS among them */
    uint64_t bytes;   /* their size together */
    bool sums;        /* it holds BLAKE2SUMS */
} proto_backup_entry_t;

/* Reading the backups of a decoded BACKUP_LIST, which proto_decode has
 * checked entirely. */
typedef struct proto_backups_iter {
    const uint8_t *p, *end;
    uint32_t left;
} proto_backups_iter_t;

/* Start reading the backups of msg, a BACKUP_LIST that proto_decode
 * accepted (its input buffer still alive). */
void proto_backups_iter(proto_backups_iter_t *it, const proto_msg_t *msg);

/* The next backup into *out (its name a view into the input): true, or
 * false when there is none left. */
bool proto_backups_next(proto_backups_iter_t *it, proto_backup_entry_t *out);

/* The req_id of a decoded request/reply, or 0 for types without one. */
uint64_t proto_req_id(const proto_msg_t *msg);

/* The name of message type type ("SUBMIT"), or NULL for a type this codec
 * does not know. */
const char *proto_type_name(uint32_t type);

/* Whether type is one a client sends to the daemon's request socket (a
 * SUBMIT or a request); false for the types the daemon sends, and for
 * unknown ones. */
bool proto_type_is_request(uint32_t type);

/* Make a view of a NUL-terminated string (NULL gives the empty view). */
proto_str_t proto_str(const char *s);

/* True when the view equals the NUL-terminated string s. */
bool proto_str_eq(proto_str_t a, const char *s);

#endif
