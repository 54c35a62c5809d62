/* recover.c - journal replay at start-up, and the journal's callbacks. */
#include "recover.h"

#include <inttypes.h>
#include <stdio.h>

#include "ingest.h"
#include "tallyd.h"

static void on_durable(journal_t *j, uint64_t upto, void *ctx)
{
    (void)j;
    ingest_on_durable(ctx, upto);
}

static void on_error(journal_t *j, int code, const char *what, void *ctx)
{
    (void)j;
    (void)code;
    tallyd_t *d = ctx;
    /* Once per episode: submissions are refused as retryable meanwhile,
     * reads and subscribers are served as usual. */
    log_error(&d->log, "journal write failed: %s; refusing submissions (retryable) until it works",
              what);
}

static void on_recovered(journal_t *j, void *ctx)
{
    (void)j;
    tallyd_t *d = ctx;
    log_notice(&d->log, "journal writes work again; accepting submissions");
}

static int on_record(const void *payload, size_t len, uint64_t pos, void *ctx)
{
    tallyd_t *d = ctx;
    ingest_replay(d, payload, len, pos);
    return 0;
}

static void on_note(const char *line, void *ctx)
{
    tallyd_t *d = ctx;
    log_warning(&d->log, "%s", line);
}

int recover_start(tallyd_t *d)
{
    journal_replay_opts_t ro = {
        .from_gen = 0,
        .on_record = on_record,
        .on_note = on_note,
        .ctx = d,
    };
    journal_replay_report_t rep;
    int64_t t0 = clock_mono_ms();
    int rc = journal_replay(d->cfg.state_dir, &ro, &rep);
    if (rc != 0) {
        log_error(&d->log, "cannot recover the state in %s: %s", d->cfg.state_dir, rep.error);
        return rc;
    }
    int64_t ms = clock_mono_ms() - t0;
    if (rep.segments > 0)
        log_notice(&d->log,
                   "recovered %" PRIu64 " journal records from %u segments in %" PRId64 " ms%s%s",
                   rep.records, rep.segments, ms, rep.torn_tail ? "; cut a torn tail" : "",
                   rep.corrupt_regions ? "; skipped damaged regions (see above)" : "");
    d->journal_gen = rep.last_gen ? rep.last_gen : 1;
    /* Everything replayed is on disk already. */
    d->durable_pos = d->last_pos = rep.next_pos > 0 ? rep.next_pos - 1 : 0;

    static const int policies[] = {
        [CONFIG_SYNC_ALWAYS] = JOURNAL_SYNC_ALWAYS,
        [CONFIG_SYNC_INTERVAL] = JOURNAL_SYNC_INTERVAL,
        [CONFIG_SYNC_NEVER] = JOURNAL_SYNC_NEVER,
    };
    journal_opts_t jo = {
        .sync = policies[d->cfg.sync],
        .interval_ms = (uint32_t)d->cfg.sync_interval_ms,
        .on_durable = on_durable,
        .on_error = on_error,
        .on_recovered = on_recovered,
        .ctx = d,
    };
    rc = journal_open(&d->journal, d->loop, d->cfg.state_dir, &jo, d->journal_gen, rep.next_pos);
    if (rc != 0) {
        log_error(&d->log, "cannot open the journal: %s", journal_errmsg(&d->journal));
        return rc;
    }
    d->journal_open = true;
    d->open_handles++;
    return 0;
}

static void on_journal_closed(journal_t *j)
{
    tallyd_t *d = (tallyd_t *)((char *)j - offsetof(tallyd_t, journal));
    d->open_handles--;
}

void recover_stop(tallyd_t *d)
{
    if (!d->journal_open)
        return;
    d->journal_open = false;
    if (journal_close(&d->journal, on_journal_closed) != 0)
        log_error(&d->log, "journal: %s; submissions not acknowledged were not stored",
                  journal_errmsg(&d->journal));
    if (ackq_count(&d->acks) > 0)
        log_warning(&d->log, "%u acknowledgements could not be sent", ackq_count(&d->acks));
}
