/* web_log.h - tally-web (web/): one line per event, to stderr, with a
 * level.
 *
 * Under systemd-journald (JOURNAL_STREAM names our stderr, as for tallyd:
 * daemon/log.h) each line starts with its "<N>" syslog priority prefix
 * (sd-daemon(3)) and nothing else, since the journal names the program, so
 * that `journalctl -u tally-web -p warning` filters by level; elsewhere a
 * line starts with "tally-web: ".  The environment is read at every line
 * rather than kept: there is no logger state to own or pass around, and
 * libwebsockets' log callback, which takes no context, logs the same way.
 */
#ifndef TALLY_WEB_LOG_H
#define TALLY_WEB_LOG_H

#include <stdarg.h>

/* The syslog priorities tally-web uses. */
enum web_log_level {
    WEB_LOG_ERR = 3,     /* LOG_ERR: cannot start, or tallyd refuses our keys */
    WEB_LOG_WARNING = 4, /* LOG_WARNING: the picture is not current, or may leak */
    WEB_LOG_NOTICE = 5,  /* LOG_NOTICE: started, stopped, synchronised */
};

/* Write one line at level (printf format; the newline is added) in one
 * write.  A message longer than 2 KB is cut. */
void web_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void web_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Like web_log, for a line that continues the one before it ("Try
 * 'tally-web --help'."): without "tally-web: " outside the journal. */
void web_log_more(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
