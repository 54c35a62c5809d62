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
 * misbehaving client cannot flood the journal.
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

typedef struct logger {
    FILE *out;    /* where lines go; stderr by default */
    int level;    /* lines above this level are dropped */
    bool journal; /* write "<N>" prefixes instead of time stamps */
    /* rate limit for log_limited(): a token bucket per logger */
    double tokens;
    int64_t last_ms;
    uint64_t suppressed;
    double rate;  /* tokens per second */
    double burst; /* bucket size */
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

/* Like log_msg, but rate limited; when lines were suppressed, the next line
 * that passes says how many.  now_ms is a monotonic time. */
void log_limited(logger_t *lg, int64_t now_ms, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_error(lg, ...)   log_msg((lg), LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(lg, ...) log_msg((lg), LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(lg, ...)  log_msg((lg), LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(lg, ...)    log_msg((lg), LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(lg, ...)   log_msg((lg), LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
