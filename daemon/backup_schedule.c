/* backup_schedule.c - the backups of [backup] interval: when the next is
 * due, across restarts and reloads (see backup.h, the schedule). */
#include "backup.h"

#include <inttypes.h>
#include <string.h>

#include "tally_error.h"

static void on_timer(uv_timer_t *t)
{
    backup_t *b = t->data;
    b->due_ms = 0;
    int rc = backup_now(b, "every [backup] interval");
    if (rc == 0) {
        b->scheduled = true;
    } else if (rc != TALLY_EBUSY && rc != TALLY_ECLOSED) {
        b->tried_ms = clock_now_ms(b->c.clock);
        backup_schedule(b, 0);
    }
    /* TALLY_EBUSY: the end of the backup under way schedules the next. */
}

/* Start the timer for the next scheduled backup: an interval after the
 * newest backup (or the last scheduled one that failed), at once when
 * none is known, but not sooner than min_ms from now and never later than
 * an interval from now.  None while a backup runs: its end (finish())
 * schedules the next, so that a backup due meanwhile is neither skipped
 * nor begun twice. */
void backup_schedule(backup_t *b, int64_t min_ms)
{
    uv_timer_stop(&b->timer);
    b->due_ms = 0;
    int64_t every = b->c.settings.interval_ms;
    if (every <= 0 || b->closing || b->running)
        return;
    int64_t now = clock_now_ms(b->c.clock);
    int64_t base = b->last_ok_ms > b->tried_ms ? b->last_ok_ms : b->tried_ms;
    int64_t delay = base > 0 ? base + every - now : 0;
    if (delay < min_ms)
        delay = min_ms;
    if (delay > every)
        delay = every;
    if (delay < 0)
        delay = 0;
    b->due_ms = now + delay;
    /* The loop's time is that of its last turn, or of before the start's
     * work: the timer would fire early by as much. */
    uv_update_time(b->c.loop);
    uv_timer_start(&b->timer, on_timer, (uint64_t)delay, 0);
}

/* last_ok_ms from the newest backup in the backup directory in force. */
static void read_newest(backup_t *b)
{
    char root[CONFIG_PATH_MAX], name[BACKUP_NAME_MAX];
    int64_t ms = 0;
    b->last_ok_ms = 0;
    if (backup_root(b, root, sizeof(root)) != 0)
        return; /* backup_now() says so when one is due */
    int e = backup_newest(root, name, sizeof(name), &ms);
    if (e != 0) {
        log_warning(b->c.log,
                    "cannot read the backup directory %s for its newest backup: %s; the "
                    "schedule begins as if it held none",
                    root, strerror(e));
        return;
    }
    b->last_ok_ms = ms;
    if (b->c.settings.interval_ms > 0)
        log_info(b->c.log, "newest backup in %s: %s", root, ms > 0 ? name : "none");
}

static void log_due(backup_t *b)
{
    if (b->due_ms > 0)
        log_info(
            b->c.log, "next scheduled backup ([backup] interval %" PRId64 " s) in %" PRId64 " s",
            b->c.settings.interval_ms / 1000, (b->due_ms - clock_now_ms(b->c.clock) + 999) / 1000);
}

void backup_set(backup_t *b, const backup_settings_t *s)
{
    char before[CONFIG_PATH_MAX], after[CONFIG_PATH_MAX];
    bool had = backup_root(b, before, sizeof(before)) == 0;
    b->c.settings = *s;
    if (b->closing)
        return;
    bool has = backup_root(b, after, sizeof(after)) == 0;
    if (!had || !has || strcmp(before, after) != 0)
        read_newest(b);
    /* The start's delay, but a reload never puts off a backup already
     * due sooner: reloads more often than the delay would postpone it for
     * good. */
    int64_t min_ms = BACKUP_START_DELAY_MS;
    if (b->due_ms > 0) {
        int64_t left = b->due_ms - clock_now_ms(b->c.clock);
        if (left < min_ms)
            min_ms = left > 0 ? left : 0;
    }
    backup_schedule(b, min_ms);
    log_due(b);
}

void backup_schedule_start(backup_t *b)
{
    read_newest(b);
    backup_schedule(b, BACKUP_START_DELAY_MS);
    log_due(b);
}
