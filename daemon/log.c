/* log.c - levelled, journald-aware, rate-limited logging. */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tally_error.h"

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
    [LOG_LEVEL_INFO] = "info",   [LOG_LEVEL_DEBUG] = "debug",
};

void log_init(logger_t *lg, int level)
{
    memset(lg, 0, sizeof(*lg));
    lg->out = stderr;
    lg->level = level;
    /* journald sets JOURNAL_STREAM to "device:inode" of the stream it
     * connected to our stderr; only then are priority prefixes understood. */
    lg->journal = getenv("JOURNAL_STREAM") != NULL;
    lg->rate = 10;
    lg->burst = 50;
    lg->tokens = lg->burst;
}

int log_level_parse(const char *name)
{
    for (int l = LOG_LEVEL_ERROR; l <= LOG_LEVEL_DEBUG; l++)
        if (strcmp(name, level_names[l]) == 0)
            return l;
    return TALLY_EINVAL;
}

const char *log_level_name(int level)
{
    if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG)
        return "?";
    return level_names[level];
}

void log_vmsg(logger_t *lg, int level, const char *fmt, va_list ap)
{
    if (level > lg->level)
        return;
    /* Build the whole line first so one fwrite puts it out in one piece,
     * even when stderr is shared with other writers. */
    char line[2048];
    int n;
    if (lg->journal) {
        n = snprintf(line, sizeof(line), "<%d>", level);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        /* Local time (tallyd sets TZ to its calendar's zone), so the
         * offset says which: 2026-12-03 17:00:15.031+0800. */
        char zone[8];
        n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
        if (strftime(zone, sizeof(zone), "%z", &tm) == 0)
            zone[0] = '\0';
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      ".%03ld%s tallyd %s: ", ts.tv_nsec / 1000000, zone, log_level_name(level));
    }
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, lg->out);
    fflush(lg->out);
}

void log_msg(logger_t *lg, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lg, level, fmt, ap);
    va_end(ap);
}

/* log_limited()'s lines are held to say how many came; the first one held
 * asks for a log_flush() in time. */
static void hold(logger_t *lg)
{
    if (lg->pending != NULL)
        lg->pending(lg->pending_ctx, LOG_FLUSH_MS);
}

static void flush_repeats(logger_t *lg)
{
    if (lg->repeats == 0)
        return;
    log_msg(lg, lg->last_level, "%s (repeated %llu more time%s within %lld ms)", lg->last,
            (unsigned long long)lg->repeats, lg->repeats == 1 ? "" : "s",
            (long long)(lg->repeat_ms - lg->last_at_ms));
    lg->repeats = 0;
}

static void flush_suppressed(logger_t *lg, int64_t now_ms)
{
    if (lg->suppressed == 0)
        return;
    log_msg(lg, LOG_LEVEL_WARNING,
            "%llu similar messages suppressed (rate limit) in the last %lld ms",
            (unsigned long long)lg->suppressed, (long long)(now_ms - lg->suppressed_since_ms));
    lg->suppressed = 0;
}

void log_limited(logger_t *lg, int64_t now_ms, int level, const char *fmt, ...)
{
    if (level > lg->level)
        return;
    /* The whole text first: only then can it be compared with the last. */
    char text[LOG_LINE_MAX - 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (lg->peer != NULL && (size_t)n < sizeof(text)) {
        char peer[LOG_PEER_MAX];
        lg->peer(lg->peer_ctx, peer, sizeof(peer));
        snprintf(text + n, sizeof(text) - (size_t)n, " [%s]", peer);
    }
    if (lg->last_at_ms != 0 && level == lg->last_level && now_ms - lg->last_at_ms < LOG_REPEAT_MS &&
        strcmp(text, lg->last) == 0) {
        if (lg->repeats++ == 0)
            hold(lg);
        lg->repeat_ms = now_ms;
        return;
    }
    flush_repeats(lg);
    if (lg->last_ms != 0 && now_ms > lg->last_ms) {
        lg->tokens += (double)(now_ms - lg->last_ms) * lg->rate / 1000.0;
        if (lg->tokens > lg->burst)
            lg->tokens = lg->burst;
    }
    lg->last_ms = now_ms;
    if (lg->tokens < 1.0) {
        if (lg->suppressed++ == 0) {
            lg->suppressed_since_ms = now_ms;
            hold(lg);
        }
        return;
    }
    lg->tokens -= 1.0;
    flush_suppressed(lg, now_ms);
    log_msg(lg, level, "%s", text);
    snprintf(lg->last, sizeof(lg->last), "%s", text);
    lg->last_level = level;
    lg->last_at_ms = now_ms != 0 ? now_ms : 1;
}

void log_flush(logger_t *lg, int64_t now_ms)
{
    /* The window of identical lines starts again: under a steady stream
     * of one line, one summary a LOG_REPEAT_MS. */
    if (lg->repeats > 0) {
        flush_repeats(lg);
        lg->last_at_ms = now_ms != 0 ? now_ms : 1;
    }
    flush_suppressed(lg, now_ms);
}

void log_set_pending(logger_t *lg, void (*fn)(void *ctx, int64_t delay_ms), void *ctx)
{
    lg->pending = fn;
    lg->pending_ctx = ctx;
}

void log_set_peer(logger_t *lg, void (*describe)(const void *ctx, char *buf, size_t cap),
                  const void *ctx)
{
    lg->peer = describe;
    lg->peer_ctx = ctx;
}
