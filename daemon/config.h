/* config.h - tallyd's settings: defaults, the INI file, reload checks.
 *
 * The file is INI, read with inih: "[section]" headers, "key = value" lines,
 * whole-line comments starting with ';' or '#', and inline comments starting
 * with " ;" (a ';' after whitespace).  tallyd adds a few rules of its own so
 * that every mistake is reported, once, with its line:
 *   - every section and key must be known; a section or key may appear once;
 *   - lines holding a section or a key must not be indented (inih would read
 *     an indented line as the continuation of the previous value);
 *   - such lines are at most CONFIG_LINE_MAX bytes (comments may be longer);
 *   - the file is at most CONFIG_FILE_MAX bytes and holds no NUL byte.
 *
 * Sections: [tallyd], [windows], [limits], [journal], [security],
 * [history], [backup], and any
 * number of [township ID], [metric ID] and [ratio ID].  Declaring one
 * township (metric) closes the township (metric) catalog: the daemon then
 * rejects the names that were not declared.  See systemd/tallyd.conf.example
 * for every key with its default and range.
 *
 * Checks made once the whole file is read: a ratio's numerator and
 * denominator are two different metrics (declared ones when the metric
 * catalog is closed; never ratios); every window splits into `buckets`
 * buckets of whole milliseconds; no more townships (metrics) are declared
 * than max_townships (max_metrics); request and publish differ; the time
 * zone, even the default one, is installed.
 *
 * A loaded configuration owns its catalog arrays; release it with
 * config_free().  Nothing here is on a hot path: the daemon builds its own
 * hash tables from the arrays.
 */
#ifndef TALLYD_CONFIG_H
#define TALLYD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define CONFIG_FILE_MAX          (64u * 1024 * 1024) /* bytes in a configuration file */
#define CONFIG_LINE_MAX          198                 /* bytes in a section or key line */
#define CONFIG_PATH_MAX          4096                /* bytes in a path, with the NUL */
#define CONFIG_TZ_MAX            128                 /* bytes in a time zone name */
#define CONFIG_WINDOWS_MAX       11                  /* 16 columns minus 5 calendar ones */
#define CONFIG_WINDOW_NAME_MAX   PROTO_COLUMN_NAME_MAX
#define CONFIG_WINDOW_MIN_MS     1000LL             /* shortest window: 1s */
#define CONFIG_WINDOW_MAX_MS     (366 * 86400000LL) /* longest window: 366d */
#define CONFIG_TOWNSHIP_NAME_MAX 64                 /* bytes in a township's display name */
#define CONFIG_UNIT_MAX          16                 /* bytes in a metric's unit */
#define CONFIG_LABEL_MAX         128                /* bytes in a metric's or ratio's label */
#define CONFIG_SCALE_MAX         9                  /* decimal places of a metric */

#define CONFIG_SAMPLE_LIMIT      1000000000000LL /* default |value| of one sample: 10^12 */
#define CONFIG_DEFAULT_REQUEST   "tcp://127.0.0.1:7411"
#define CONFIG_DEFAULT_PUBLISH   "tcp://127.0.0.1:7412"
#define CONFIG_DEFAULT_STATE_DIR "./tallyd-state"
#define CONFIG_DEFAULT_TIMEZONE  "Asia/Shanghai"

enum config_township_type {
    CONFIG_TOWNSHIP_UNSPECIFIED = 0,
    CONFIG_TOWNSHIP_SUBDISTRICT = 1, /* 街道 */
    CONFIG_TOWNSHIP_TOWN = 2,        /* 镇 */
    CONFIG_TOWNSHIP_TOWNSHIP = 3,    /* 乡 */
};

enum config_sync {
    CONFIG_SYNC_ALWAYS = 0,   /* fsync the journal before acknowledging */
    CONFIG_SYNC_INTERVAL = 1, /* fsync every sync_interval_ms */
    CONFIG_SYNC_NEVER = 2,    /* leave it to the kernel */
};

/* One sliding window: a column of every counter tally. */
typedef struct config_window {
    char name[CONFIG_WINDOW_NAME_MAX + 1]; /* 1..16 of [A-Za-z0-9_.-] */
    int64_t ms;                            /* 1 s .. 366 days */
} config_window_t;

typedef struct config_township {
    char id[PROTO_NAME_MAX + 1];             /* passes proto_name_check */
    char name[CONFIG_TOWNSHIP_NAME_MAX + 1]; /* display name, "" if none */
    int type;                                /* enum config_township_type */
    int line;                                /* line of the section header */
} config_township_t;

typedef struct config_metric {
    char id[PROTO_NAME_MAX + 1];
    int kind;  /* PROTO_KIND_COUNTER or PROTO_KIND_GAUGE */
    int scale; /* decimal places for display, 0..9 */
    /* The range a sample's value must lie in (after the section is read:
     * min defaults to 0 for a counter unless negative = yes, else to
     * -CONFIG_SAMPLE_LIMIT; max defaults to CONFIG_SAMPLE_LIMIT), so that
     * one absurd figure cannot take a county total to the int64 edge. */
    int64_t min, max;
    int negative; /* 1: a counter takes negative samples (corrections) */
    char unit[CONFIG_UNIT_MAX + 1];
    char label[CONFIG_LABEL_MAX + 1];
    int line;
} config_metric_t;

typedef struct config_ratio {
    char id[PROTO_NAME_MAX + 1]; /* never equal to a metric id */
    char numerator[PROTO_NAME_MAX + 1];
    char denominator[PROTO_NAME_MAX + 1];
    /* Indexes into metrics[] when the metric catalog is closed, else -1. */
    long numerator_metric;
    long denominator_metric;
    char label[CONFIG_LABEL_MAX + 1];
    int line;
    int numerator_line;
    int denominator_line;
} config_ratio_t;

typedef struct tallyd_config {
    /* [tallyd] */
    char request[PROTO_ENDPOINT_MAX + 1]; /* ZMQ_ROUTER bind endpoint */
    char publish[PROTO_ENDPOINT_MAX + 1]; /* ZMQ_XPUB bind endpoint */
    char state_dir[CONFIG_PATH_MAX];
    char timezone[CONFIG_TZ_MAX + 1]; /* a TZif file under $TZDIR */
    int64_t publish_interval_ms;      /* 0 = publish each change at once */
    int64_t heartbeat_ms;
    int log_level; /* enum log_level (log.h) */

    /* [windows]: listing one window there replaces the four defaults. */
    config_window_t windows[CONFIG_WINDOWS_MAX];
    size_t nwindows;
    int64_t buckets; /* buckets per window, 2..3600 */

    /* [limits] */
    int64_t max_samples;   /* per SUBMIT, 1..PROTO_SAMPLES_MAX */
    int64_t max_msg_bytes; /* ZMQ_MAXMSGSIZE of the request socket */
    int64_t max_series;
    int64_t max_clients;      /* client ids in the de-duplication table */
    int64_t client_expiry_ms; /* an id idle this long is forgotten */
    int64_t max_townships;
    int64_t max_metrics;
    int64_t skew_ms;              /* accepted lead of event time over now */
    int64_t max_age_ms;           /* accepted lag of event time behind now */
    int64_t rate;                 /* samples per second per township, 0 = no limit */
    int64_t burst;                /* token bucket size for rate */
    int64_t max_subscriber_queue; /* ZMQ_SNDHWM of the publish socket */
    /* What one peer may make tallyd hold (PROTOCOL.md 19.x): */
    int64_t max_connections;        /* on each socket; more are refused at the handshake */
    int64_t max_subscriptions;      /* topic prefixes per subscriber connection */
    int64_t max_subscription_bytes; /* their bytes per subscriber connection */
    int64_t max_inbound_bytes;      /* requests queued per connection, in bytes */
    int64_t max_reply_queue;        /* replies queued per connection (ZMQ_SNDHWM) */
    int64_t max_snapshots;          /* snapshots streamed at once, all connections */
    int64_t snapshot_timeout_ms;    /* a snapshot its peer does not read is abandoned */

    /* [history] */
    int64_t history_days; /* day cells kept */

    /* [backup] (backup.h) */
    char backup_dir[CONFIG_PATH_MAX]; /* "" = "backups" in the state directory */
    int64_t backup_keep;              /* backups kept */
    int64_t backup_interval_ms;       /* 0: only on SIGUSR1 */

    /* [journal] */
    int sync; /* enum config_sync */
    int64_t sync_interval_ms;
    int64_t snapshot_interval_ms;
    int64_t snapshot_every_records;

    /* [security]: stored as written ("" = not set); checked by their user. */
    char server_secret_key[CONFIG_PATH_MAX];
    char township_keys[CONFIG_PATH_MAX];
    char subscriber_keys[CONFIG_PATH_MAX];
    char admin_keys[CONFIG_PATH_MAX];

    /* Catalogs, in file order.  The arrays are owned by the config. */
    config_township_t *townships;
    size_t ntownships, townships_cap;
    config_metric_t *metrics;
    size_t nmetrics, metrics_cap;
    config_ratio_t *ratios;
    size_t nratios, ratios_cap;
    bool catalog_closed_townships; /* a [township ...] section exists */
    bool catalog_closed_metrics;   /* a [metric ...] section exists */
    bool catalog_builtin;          /* the metrics and ratios are config_builtin_catalog()'s */
} tallyd_config_t;

/* What the command line overrides (tallyd's options); NULL or 0: keep the
 * file's value.  Applied at the start and again at every reload. */
typedef struct config_overrides {
    const char *config_path; /* NULL: built-in defaults */
    const char *state_dir;
    const char *request;
    const char *publish;
    int log_level;
    bool accept_loss; /* --accept-loss: start despite missing journal records */
} config_overrides_t;

/* What is wrong with endpoint v as a place to bind (empty, too long, a
 * space, no TRANSPORT://, a transport ZeroMQ cannot bind, a tcp or ws
 * port that is not 0..65535 or *, or a tcp or ws host that is not *, an
 * IP address or an interface of this machine: ZeroMQ binds to no host
 * name), as a sentence after the endpoint, with what was expected, in
 * buf[0..cap): "is empty (expected ...)".  Returns buf, or NULL when
 * nothing is wrong.  The interfaces are this machine's (if_nametoindex),
 * so a file naming another machine's interface is refused here. */
const char *config_endpoint_problem(const char *v, char *buf, size_t cap);

/* Whether binding request and publish to a and b would bind one place
 * twice: the same endpoint, unless its port is chosen at bind time (* or
 * 0: two ephemeral ports, as tests and benchmarks use). */
bool config_endpoints_clash(const char *a, const char *b);

/* Put the overrides o into cfg.  Returns 0, or TALLY_ECONFIG with a
 * sentence naming the option and the limit in err[0..errlen) (a value too
 * long for its field, an endpoint config_endpoint_problem refuses). */
int config_apply_overrides(tallyd_config_t *cfg, const config_overrides_t *o, char *err,
                           size_t errlen);

/* Write the default state directory into buf: the first path of
 * state_directory (the value of systemd's $STATE_DIRECTORY, a
 * colon-separated list; NULL or "" when unset), else
 * CONFIG_DEFAULT_STATE_DIR.  Reads no environment itself.  Returns 0, or
 * TALLY_ETOOLONG when that path does not fit len bytes with its NUL (buf then
 * holds CONFIG_DEFAULT_STATE_DIR if that fits, else ""). */
int config_default_state_dir(const char *state_directory, char *buf, size_t len);

/* Fill *cfg with the defaults (the documented values; windows 1h, 24h, 7d,
 * 30d; empty, open catalogs).  state_dir comes from
 * config_default_state_dir(getenv("STATE_DIRECTORY")).  *cfg is overwritten
 * without being freed: pass a fresh or config_free()d struct.
 * Returns 0, or TALLY_ETOOLONG when the first path in $STATE_DIRECTORY does
 * not fit CONFIG_PATH_MAX (state_dir is then CONFIG_DEFAULT_STATE_DIR). */
int config_defaults(tallyd_config_t *cfg);

/* Load the file at path over the defaults into *out (which is overwritten
 * without being freed, as for config_defaults).  path NULL means "no file":
 * the defaults alone, open catalogs.  Reads $STATE_DIRECTORY (default
 * state_dir) and $TZDIR (where time zones live, /usr/share/zoneinfo when
 * unset).
 *
 * Returns 0, or TALLY_ECONFIG with one message in err (NUL-terminated,
 * truncated to errlen; err may be NULL): "FILE:LINE: [section] key: what is
 * wrong (value 'x'; expected ...)", "cannot open FILE: <strerror>" for an
 * unreadable file.  On failure *out holds the defaults and owns nothing, so
 * config_free() is optional.  TALLY_ENOMEM is reported as TALLY_ECONFIG with
 * the message "FILE: out of memory". */
int config_load(const char *path, tallyd_config_t *out, char *err, size_t errlen);

/* As config_load, but the file's contents are the len bytes at text (not
 * NUL-terminated, may hold anything); name stands for the file in messages
 * (NULL gives "<config>").  This is the fuzzing and unit-test entry point. */
int config_parse_text(const char *text, size_t len, const char *name, tallyd_config_t *out,
                      char *err, size_t errlen);

/* Release the catalogs of *cfg and leave it with empty catalogs.  Safe on a
 * defaulted, loaded, failed or already freed config; NULL is ignored. */
void config_free(tallyd_config_t *cfg);

/* Settle the bounds of metric m once its section is read: min_set and
 * max_set tell which of min and max the file gave.  Returns 0, or -1 with
 * the problem in why ("min -5 of a counter needs negative = yes"). */
int config_metric_bounds(config_metric_t *m, bool min_set, bool max_set, char *why, size_t len);

/* Declare the built-in catalog in cfg, whose metric catalog stays open:
 * the metrics of the township report with their kinds, units and labels,
 * and its three ratios.  tallyd uses it when no configuration file, or
 * one without [metric] and [ratio] sections, is given.  Returns 0 or
 * TALLY_ENOMEM. */
int config_builtin_catalog(tallyd_config_t *cfg);

/* Find a declared township, metric or ratio by id (name[0..len), no NUL
 * needed).  Returns a pointer into cfg's arrays (valid until config_free)
 * or NULL.  Linear scans: build a hash table for lookups on a hot path. */
const config_township_t *config_find_township(const tallyd_config_t *cfg, const char *name,
                                              size_t len);
const config_metric_t *config_find_metric(const tallyd_config_t *cfg, const char *name, size_t len);
const config_ratio_t *config_find_ratio(const tallyd_config_t *cfg, const char *name, size_t len);

/* The settings a reload cannot change (request, publish, state_dir,
 * timezone, windows, buckets): write those that differ between old and new
 * into buf as "key: 'old' -> 'new'" items separated by "; " (truncated to
 * len bytes; buf may be NULL when len is 0).  Returns how many differ (0:
 * the new config can be applied by a reload). */
int config_diff_restart(const tallyd_config_t *old, const tallyd_config_t *new_cfg, char *buf,
                        size_t len);

/* Of those, the settings the saved state is bound to (timezone, windows,
 * buckets): a start refuses a state saved under other windows or buckets,
 * or whose calendar day another zone places elsewhere (tallyd(8), EXIT
 * STATUS).  Written and counted as config_diff_restart() does. */
int config_diff_state(const tallyd_config_t *old, const tallyd_config_t *new_cfg, char *buf,
                      size_t len);

/* Parse a duration: decimal digits followed by one unit, ms, s, m, h or d
 * ("200ms", "90m", "7d"); no sign, space or other text.  Stores
 * milliseconds in *ms.  Returns 0, TALLY_EINVAL (not a duration) or
 * TALLY_ERANGE (does not fit int64 milliseconds). */
int config_parse_duration(const char *s, int64_t *ms);

/* Format ms as a duration config_parse_duration reads back, in the largest
 * unit that divides it exactly ("7d", "90m", "1500ms").  Returns buf. */
char *config_format_duration(int64_t ms, char *buf, size_t len);

/* Names of enum values as written in the file ("town", "interval",
 * "counter"); "" for CONFIG_TOWNSHIP_UNSPECIFIED, "?" for unknown values.
 * Static storage. */
const char *config_township_type_name(int type);
const char *config_sync_name(int sync);
const char *config_kind_name(int kind);

/* ---- Shared by config_keys.c (what each key means) and config_parse.c
 * (how the file is laid out); other modules have no use for these. ---- */

enum config_section {
    CONFIG_SEC_NONE, /* keys before the first header */
    CONFIG_SEC_TALLYD,
    CONFIG_SEC_WINDOWS, /* only "buckets" is a key; the rest are windows */
    CONFIG_SEC_LIMITS,
    CONFIG_SEC_JOURNAL,
    CONFIG_SEC_SECURITY,
    CONFIG_SEC_HISTORY,
    CONFIG_SEC_BACKUP,
    CONFIG_SEC_TOWNSHIP, /* keys go into a config_township_t */
    CONFIG_SEC_METRIC,   /* ... a config_metric_t */
    CONFIG_SEC_RATIO,    /* ... a config_ratio_t */
    CONFIG_SEC_COUNT
};

#define CONFIG_MAX_CONNECTIONS_DEFAULT 10000
#define CONFIG_KEYS_MAX                32 /* keys in one section (checked at compile time in config_keys.c) */

/* The word of a section header ("metric"), "" for CONFIG_SEC_NONE. */
const char *config_section_name(int sec);

/* True for the sections written [KIND ID]. */
bool config_section_has_id(int sec);

/* The i-th key of section sec, NULL when i is past the last key. */
const char *config_key_name(int sec, size_t i);

/* True when the i-th key of sec must be set in each such section. */
bool config_key_required(int sec, size_t i);

/* What the i-th key of sec accepts, for messages ("counter, gauge"),
 * written into buf; returns buf. */
const char *config_key_expect(int sec, size_t i, char *buf, size_t len);

/* Check value for the i-th key of sec and store it in base (the
 * tallyd_config_t, or the catalog entry of the section).  Returns 0, or -1
 * with why set to the problem for a message after "key: " ("'countr' is not
 * one of counter, gauge").  The time zone check reads $TZDIR. */
int config_key_set(int sec, size_t i, void *base, const char *value, char *why, size_t len);

/* Check that tz names a TZif file under $TZDIR (or /usr/share/zoneinfo),
 * refusing absolute names and "..".  Returns 0, or -1 with why set ("is not
 * installed: cannot open ...: No such file or directory"). */
int config_check_timezone(const char *tz, char *why, size_t len);

/* Copy s[0..len) into buf (cap >= 16) so it prints safely in a message:
 * text_printable with upper-case escapes (valid UTF-8 text stays, control
 * characters and broken sequences become \xNN), cut with "..." so that it
 * leaves the last 3 bytes of buf unused.  Returns buf. */
const char *config_printable(char *buf, size_t cap, const char *s, size_t len);

/* "; did you mean 'x'?" into buf for the candidate suggest_pick() finds
 * closest to word, else "".  Returns buf. */
const char *config_suggest(char *buf, size_t cap, const char *word, const char *const *cands,
                           size_t ncands);

#endif
