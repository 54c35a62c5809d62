/* log.h - one line per event, to stderr, with levels.
 *
 * Under systemd-journald (JOURNAL_STREAM names our stderr) each line starts
 * with a "<N>" priority prefix (sd-daemon(3)) so `journalctl -p warning`
 * filters by level; elsewhere lines carry a local time stamp with its UTC
 * offset ("2026-12-03 17:00:15.031+0800") and the level name.
 *
 * The logger is one struct owned by the daemon's state; the functions take
 * it explicitly.  Bad input from the network goes through log_limited(),
 * which lets a burst through and then summarises what it suppressed, so a
 * misbehaving client cannot flood the journal.  It also counts a line
 * identical to the one it wrote last, within LOG_REPEAT_MS, instead of
 * writing it again (a burst of ACKs dropped for one gone client).  The
 * summaries are written by log_flush(), which whoever owns a timer on the
 * loop calls when log_set_pending()'s callback asks, so that a count
 * reaches the journal within LOG_FLUSH_MS even when nothing else is
 * logged after the burst.
 */
#ifndef TALLYD_LOG_H
#define TALLYD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level {
    LOG_LEVEL_ERROR = 3,   /* syslog LOG_ERR */
    LOG_LEVEL_WARNING = 4, /* LOG_WARNING */
    LOG_LEVEL_NOTICE = 5,  /* LOG_NOTICE */
    LOG_LEVEL_INFO = 6,    /* LOG_INFO */
    LOG_LEVEL_DEBUG = 7,   /* LOG_DEBUG */
};

#define LOG_LINE_MAX  2048 /* bytes of one line, its prefix and newline included */
#define LOG_PEER_MAX  160  /* bytes of a peer's description (log_set_peer) */
#define LOG_REPEAT_MS 1000 /* identical log_limited() lines this close are counted */
#define LOG_FLUSH_MS  1000 /* how soon a pending summary should be written */

typedef struct logger {
    FILE *out;    /* where lines go; stderr by default */
    int level;    /* lines above this level are dropped */
    bool journal; /* write "<N>" prefixes instead of time stamps */
    /* rate limit for log_limited(): a token bucket per logger */
    double tokens;
    int64_t last_ms;
    uint64_t suppressed;
    int64_t suppressed_since_ms; /* when the first of them came */
    double rate;                 /* tokens per second */
    double burst;                /* bucket size */
    /* The last line log_limited() wrote, and the identical ones since. */
    char last[LOG_LINE_MAX];
    int last_level;
    int64_t last_at_ms; /* when it was written or last summarised; 0: none */
    int64_t repeat_ms;  /* when the latest identical one came */
    uint64_t repeats;
    /* Describes the peer appended to log_limited()'s lines while set
     * (log_set_peer). */
    void (*peer)(const void *ctx, char *buf, size_t cap);
    const void *peer_ctx;
    /* Told when a summary waits for log_flush() (log_set_pending). */
    void (*pending)(void *ctx, int64_t delay_ms);
    void *pending_ctx;
} logger_t;

/* Set up lg for stderr at level; journald is detected from JOURNAL_STREAM.
 * Rate limit for log_limited(): 10 lines/s with a burst of 50. */
void log_init(logger_t *lg, int level);

/* Parse "error", "warning", "notice", "info" or "debug".  Returns the level
 * or TALLY_EINVAL. */
int log_level_parse(const char *name);

/* Name of a level ("warning"). */
const char *log_level_name(int level);

/* Write one line at level (printf format; a trailing newline is added). */
void log_msg(logger_t *lg, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void log_vmsg(logger_t *lg, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Like log_msg, but rate limited, with " [PEER]" appended while a peer is
 * set (log_set_peer).  A line identical to the one log_limited() wrote
 * last, less than LOG_REPEAT_MS after it, is counted instead of written;
 * a line beyond the rate is suppressed and counted.  Both counts are
 * written as summaries by the next line that passes or by log_flush(),
 * whichever comes first.  now_ms is a monotonic time. */
void log_limited(logger_t *lg, int64_t now_ms, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write the summaries log_limited() holds: "LINE (repeated N more times
 * within T ms)" and "N similar messages suppressed (rate limit) in the
 * last T ms".  Nothing when none is pending. */
void log_flush(logger_t *lg, int64_t now_ms);

/* Have fn(ctx, delay_ms) called each time log_limited() starts holding a
 * summary, so that the caller runs log_flush() delay_ms later (on a loop
 * timer).  fn NULL: nobody is told; summaries then wait for the next
 * line. */
void log_set_pending(logger_t *lg, void (*fn)(void *ctx, int64_t delay_ms), void *ctx);

/* The peer whose message is being handled: until it is set again,
 * log_limited() appends " [TEXT]" to its lines, TEXT written by
 * describe(ctx, buf, LOG_PEER_MAX) ("peer 192.0.2.7, routing id
 * 0080000001") only when a line is logged, so that a message handled
 * without one costs nothing.  describe NULL clears it; ctx must stay
 * valid while it is set. */
void log_set_peer(logger_t *lg, void (*describe)(const void *ctx, char *buf, size_t cap),
                  const void *ctx);

#define log_error(lg, ...)   log_msg((lg), LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(lg, ...) log_msg((lg), LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(lg, ...)  log_msg((lg), LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(lg, ...)    log_msg((lg), LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(lg, ...)   log_msg((lg), LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
