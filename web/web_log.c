/* web_log.c - tally-web (web/): levelled lines, journald-aware. */
#include "web_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static void put(int level, bool named, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void put(int level, bool named, const char *fmt, va_list ap)
{
    /* journald sets JOURNAL_STREAM to "device:inode" of the stream it
     * connected to our stderr; only then are priority prefixes understood
     * (a terminal or a test's log file would show them as noise). */
    bool journal = getenv("JOURNAL_STREAM") != NULL;
    /* The whole line first, so that one write puts it out in one piece
     * even when another thread (libwebsockets, a worker) logs meanwhile. */
    char line[2048];
    int n = journal ? snprintf(line, sizeof line, "<%d>", level)
                    : snprintf(line, sizeof line, "%s", named ? "tally-web: " : "");
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}

void web_vlog(int level, const char *fmt, va_list ap)
{
    put(level, true, fmt, ap);
}

void web_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put(level, true, fmt, ap);
    va_end(ap);
}

void web_log_more(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put(level, false, fmt, ap);
    va_end(ap);
}
