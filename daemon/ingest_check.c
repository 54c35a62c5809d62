/* ingest_check.c - tallyd (daemon/): the checks a decoded SUBMIT passes
 * before it is journaled, in the order ingest_submit() makes them (the
 * key's township, the catalog's names, the time, each sample's metric and
 * value, the engine's limits, the township's rate), and the catalog's
 * display names and labels that their refusals point to (see ingest.h). */
#include "ingest_check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void names_free(struct ingest_names *t)
{
    if (t->ready)
        intern_free(&t->text);
    free(t->id);
    free(t->ratio);
    memset(t, 0, sizeof(*t));
}

/* Room for n names or labels. */
static int names_init(struct ingest_names *t, size_t n)
{
    memset(t, 0, sizeof(*t));
    if (intern_init(&t->text, n > 0 ? (uint32_t)n : 1) != 0)
        return TALLY_ENOMEM;
    t->ready = true;
    t->id = calloc(n > 0 ? n : 1, sizeof(*t->id));
    t->ratio = calloc(n > 0 ? n : 1, sizeof(*t->ratio));
    return t->id != NULL && t->ratio != NULL ? 0 : TALLY_ENOMEM;
}

/* Add text (a name or label; "" or one longer than any submitted name is
 * left out) standing for id. */
static int names_add(struct ingest_names *t, const char *text, const char *id, bool ratio)
{
    size_t len = strlen(text);
    if (len == 0 || len > PROTO_NAME_MAX)
        return 0;
    int k = intern_add(&t->text, text, len);
    if (k < 0)
        return TALLY_ENOMEM;
    snprintf(t->id[k - 1], sizeof(t->id[0]), "%s", id);
    t->ratio[k - 1] = ratio;
    return 0;
}

/* The id name stands for (*ratio: a ratio's label), else NULL. */
static const char *names_find(const struct ingest_names *t, proto_str_t name, bool *ratio)
{
    int k = t->ready ? intern_find(&t->text, name.ptr, name.len) : TALLY_ENOTFOUND;
    if (k <= 0)
        return NULL;
    *ratio = t->ratio[k - 1];
    return t->id[k - 1];
}

const char *ingest_named(const ingest_t *in, proto_str_t name, bool township)
{
    bool ratio;
    return names_find(township ? &in->towns_by_name : &in->metrics_by_label, name, &ratio);
}

int ingest_set_catalog(ingest_t *in, const tallyd_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        const config_metric_t *m = &cfg->metrics[i];
        int id = intern_find(in->c.metrics, m->id, strlen(m->id));
        if (id > 0 && ingest_set_bounds(in, (uint32_t)id, m->min, m->max, m->scale) != 0)
            return TALLY_ENOMEM;
    }
    struct ingest_names towns, labels;
    int rc = names_init(&towns, cfg->ntownships);
    if (rc == 0)
        rc = names_init(&labels, cfg->nmetrics + cfg->nratios);
    else
        memset(&labels, 0, sizeof(labels));
    for (size_t i = 0; rc == 0 && i < cfg->ntownships; i++)
        rc = names_add(&towns, cfg->townships[i].name, cfg->townships[i].id, false);
    for (size_t i = 0; rc == 0 && i < cfg->nmetrics; i++)
        rc = names_add(&labels, cfg->metrics[i].label, cfg->metrics[i].id, false);
    for (size_t i = 0; rc == 0 && i < cfg->nratios; i++)
        rc = names_add(&labels, cfg->ratios[i].label, cfg->ratios[i].id, true);
    catalog_declared_t declared = {0};
    if (rc == 0)
        rc = catalog_declared_set(&declared, cfg, in->c.towns, in->c.metrics);
    if (rc != 0) {
        names_free(&towns);
        names_free(&labels);
        return TALLY_ENOMEM;
    }
    catalog_declared_free(&in->declared);
    in->declared = declared;
    names_free(&in->towns_by_name);
    names_free(&in->metrics_by_label);
    in->towns_by_name = towns;
    in->metrics_by_label = labels;
    return 0;
}

void ingest_check_free(ingest_t *in)
{
    names_free(&in->towns_by_name);
    names_free(&in->metrics_by_label);
    catalog_declared_free(&in->declared);
}

bool ingest_check_authorized(const ingest_t *in, const keyring_identity_t *who,
                             const proto_submit_t *s, char *msg, size_t len)
{
    if (!in->c.secured)
        return true;
    if (who == NULL) {
        snprintf(msg, len, "township: this connection has no identity the daemon admits");
        return false;
    }
    if (who->role != KEYS_ROLE_TOWNSHIP) {
        snprintf(msg, len,
                 "township: this key belongs to %s '%s', which may %s but not submit figures",
                 keys_role_name(who->role), who->name,
                 who->role == KEYS_ROLE_ADMIN ? "ask for backups" : "read tallies");
        return false;
    }
    if (who->name_len != s->township.len || memcmp(who->name, s->township.ptr, who->name_len)) {
        snprintf(msg, len, "township: this key belongs to '%s', not '%.*s'", who->name,
                 (int)s->township.len, s->township.ptr);
        return false;
    }
    return true;
}

/* The township's id: declared in a closed catalog, or added to the open
 * one up to max_townships. */
static int town_id(ingest_t *in, proto_str_t name, char *msg, size_t msglen)
{
    const ingest_limits_t *l = &in->c.limits;
    int id = intern_find(in->c.towns, name.ptr, name.len);
    /* The name table also holds what the state brought: a township the
     * closed catalog no longer declares keeps its tallies, not its
     * submissions. */
    if (id > 0 && (!l->closed_townships || catalog_declares_town(&in->declared, (uint32_t)id)))
        return id;
    bool ratio;
    const char *named = names_find(&in->towns_by_name, name, &ratio);
    if (named != NULL) {
        snprintf(msg, msglen,
                 "township '%.*s' is the name of township '%s' in the catalog; submit its id '%s'",
                 (int)name.len, name.ptr, named, named);
        return TALLY_EUNKTOWN;
    }
    if (id > 0) {
        snprintf(msg, msglen,
                 "township '%.*s' is not in the catalog (no longer declared: its figures so "
                 "far are kept)",
                 (int)name.len, name.ptr);
        return TALLY_EUNKTOWN;
    }
    if (proto_township_reserved(name.ptr, name.len)) {
        /* A township of that id accepted before it was reserved stays
         * (intern_find above). */
        snprintf(msg, msglen,
                 "township '%.*s' is reserved: it names the county-wide tallies; submit the "
                 "township's own id",
                 (int)name.len, name.ptr);
        return TALLY_EBADNAME;
    }
    if (l->closed_townships) {
        snprintf(msg, msglen, "township '%.*s' is not in the catalog", (int)name.len, name.ptr);
        return TALLY_EUNKTOWN;
    }
    if (intern_count(in->c.towns) >= (uint64_t)l->max_townships) {
        snprintf(msg, msglen, "township '%.*s' would exceed the limit of %" PRId64 " townships",
                 (int)name.len, name.ptr, l->max_townships);
        return TALLY_ESERIESLIMIT;
    }
    id = intern_add(in->c.towns, name.ptr, name.len);
    if (id < 0) {
        snprintf(msg, msglen, "township '%.*s' cannot be added: %s", (int)name.len, name.ptr,
                 tally_strerror(id));
        return TALLY_ESERIESLIMIT;
    }
    return id;
}

static int metric_id(ingest_t *in, uint32_t i, proto_str_t name, char *msg, size_t msglen)
{
    const ingest_limits_t *l = &in->c.limits;
    int id = intern_find(in->c.metrics, name.ptr, name.len);
    if (id > 0) {
        if (engine_metric_kind(in->c.engine, (uint32_t)id) == PROTO_KIND_RATIO) {
            snprintf(msg, msglen,
                     "samples[%u].metric: '%.*s' is a derived ratio; submit its numerator and "
                     "denominator instead",
                     i, (int)name.len, name.ptr);
            return TALLY_EKIND;
        }
        /* As for townships: known from the state is not declared. */
        if (!l->closed_metrics || catalog_declares_metric(&in->declared, (uint32_t)id))
            return id;
    }
    bool ratio = false;
    const char *labelled_id = names_find(&in->metrics_by_label, name, &ratio);
    if (labelled_id != NULL && ratio) {
        snprintf(msg, msglen,
                 "samples[%u].metric: '%.*s' is the label of the derived ratio '%s'; submit its "
                 "numerator and denominator instead",
                 i, (int)name.len, name.ptr, labelled_id);
        return TALLY_EKIND;
    }
    if (labelled_id != NULL) {
        snprintf(msg, msglen,
                 "samples[%u].metric: '%.*s' is the label of metric '%s' in the catalog; submit "
                 "its id '%s'",
                 i, (int)name.len, name.ptr, labelled_id, labelled_id);
        return TALLY_EUNKMETRIC;
    }
    if (l->closed_metrics) {
        snprintf(msg, msglen, "samples[%u].metric: metric '%.*s' is not in the catalog%s", i,
                 (int)name.len, name.ptr,
                 id > 0 ? " (no longer declared: its figures so far are kept)" : "");
        return TALLY_EUNKMETRIC;
    }
    if (intern_count(in->c.metrics) >= (uint64_t)l->max_metrics + l->catalog_metric_names) {
        snprintf(msg, msglen,
                 "samples[%u].metric: metric '%.*s' would exceed the limit of %" PRId64 " metrics",
                 i, (int)name.len, name.ptr, l->max_metrics);
        return TALLY_ESERIESLIMIT;
    }
    id = intern_add(in->c.metrics, name.ptr, name.len);
    if (id < 0) {
        snprintf(msg, msglen, "samples[%u].metric: metric '%.*s' cannot be added: %s", i,
                 (int)name.len, name.ptr, tally_strerror(id));
        return TALLY_ESERIESLIMIT;
    }
    return id;
}

/* v of a metric with scale decimal places as a person reads it: -5 at
 * scale 1 is "-0.5", 125 "12.5"; at scale 0 the integer. */
static void fixed_text(char *buf, size_t cap, int64_t v, int scale)
{
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v, p = 1;
    for (int k = 0; k < scale; k++)
        p *= 10;
    if (scale <= 0 || scale > PROTO_SCALE_MAX)
        snprintf(buf, cap, "%" PRId64, v);
    else
        snprintf(buf, cap, "%s%" PRIu64 ".%0*" PRIu64, v < 0 ? "-" : "", mag / p, scale, mag % p);
}

/* Is sample i's value within its metric's range?  Without a declared one,
 * a counter only grows (0..CONFIG_SAMPLE_LIMIT) and a gauge may take
 * -CONFIG_SAMPLE_LIMIT..CONFIG_SAMPLE_LIMIT. */
static int check_bounds(const ingest_t *in, uint32_t i, uint32_t metric, const proto_sample_t *smp,
                        char *msg, size_t msglen)
{
    bool gauge = engine_metric_kind(in->c.engine, metric) == PROTO_KIND_GAUGE;
    int64_t min = gauge ? -CONFIG_SAMPLE_LIMIT : 0, max = CONFIG_SAMPLE_LIMIT;
    int scale = 0;
    if (metric < in->nbounds && in->bounds[metric].set) {
        min = in->bounds[metric].min;
        max = in->bounds[metric].max;
        scale = in->bounds[metric].scale;
    }
    int64_t v = smp->value;
    if (v >= min && v <= max)
        return 0;
    const char *kind = gauge ? "gauge" : "counter";
    /* A metric with decimal places: its figures as people write them
     * (-0.5 hectares), then what went on the wire. */
    char vt[64], lt[64], sent[64] = "";
    fixed_text(vt, sizeof vt, v, scale);
    fixed_text(lt, sizeof lt, v < min ? min : max, scale);
    if (scale > 0)
        snprintf(sent, sizeof sent, " (sent as %" PRId64 ", scale %d)", v, scale);
    if (v < min)
        snprintf(msg, msglen, "samples[%u].value: %s%s is below the minimum %s of %s '%.*s'%s", i,
                 vt, sent, lt, kind, (int)smp->metric.len, smp->metric.ptr,
                 min == 0 && v < 0 && kind[0] == 'c'
                     ? " (a counter only grows: this one takes no corrections; the county's "
                       "operator allows them with negative = yes in its [metric] section)"
                     : "");
    else
        snprintf(msg, msglen, "samples[%u].value: %s%s is above the maximum %s of %s '%.*s'", i, vt,
                 sent, lt, kind, (int)smp->metric.len, smp->metric.ptr);
    return TALLY_ERANGE;
}

void ingest_check_forget_names(ingest_t *in, uint32_t towns, uint32_t metrics)
{
    intern_truncate(in->c.towns, towns);
    intern_truncate(in->c.metrics, metrics);
}

/* ms since the epoch as "2023-12-31T16:00:00Z" into buf. */
static void utc_text(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "?");
}

/* A span of ms as people say it: "3 min 20 s", "1120 days". */
static void span_text(int64_t ms, char *buf, size_t cap)
{
    if (ms >= 2 * 86400000LL)
        snprintf(buf, cap, "%" PRId64 " days", ms / 86400000);
    else if (ms >= 2 * 3600000LL)
        snprintf(buf, cap, "%" PRId64 " h", ms / 3600000);
    else if (ms >= 60000 && ms % 60000 < 1000)
        snprintf(buf, cap, "%" PRId64 " min", ms / 60000);
    else if (ms >= 60000)
        snprintf(buf, cap, "%" PRId64 " min %" PRId64 " s", ms / 60000, ms % 60000 / 1000);
    else
        snprintf(buf, cap, "%" PRId64 " ms", ms);
}

static int check_time(ingest_t *in, int64_t t, char *msg, size_t msglen)
{
    const ingest_limits_t *l = &in->c.limits;
    int64_t now = clock_now_ms(in->c.clock);
    char when[32], by[32], allowed[32];
    if (t > now + l->skew_ms) {
        utc_text(t, when, sizeof when);
        span_text(t - now, by, sizeof by);
        span_text(l->skew_ms, allowed, sizeof allowed);
        snprintf(msg, msglen,
                 "time_ms: %" PRId64 " (%s) is %s ahead of the daemon's clock; at most %s "
                 "([limits] skew) are allowed: a time in the future, or a clock that is wrong",
                 t, when, by, allowed);
        return TALLY_EFUTURE;
    }
    if (t < now - l->max_age_ms) {
        utc_text(t, when, sizeof when);
        snprintf(msg, msglen,
                 "time_ms: %" PRId64 " (%s) is %" PRId64 " days old; samples older than %" PRId64
                 " days ([limits] max_age) are not accepted",
                 t, when, (now - t) / 86400000, l->max_age_ms / 86400000);
        return TALLY_ETOOOLD;
    }
    return 0;
}

/* Take s's samples from the township's token bucket ([limits] rate and
 * burst).  Returns 0, or the code with the reason in msg when the
 * submission must wait. */
static int rate_check(ingest_t *in, const proto_submit_t *s, uint32_t town, char *msg, size_t len)
{
    ratelimit_t *rl = in->c.rl;
    if (rl == NULL || rl->rate == 0)
        return 0; /* no limit configured */
    int64_t wait_ms = 0;
    int rc = ratelimit_take(rl, town, s->nsamples, clock_mono_ms(), &wait_ms);
    if (rc == 0)
        return 0;
    if (rc == TALLY_ERATELIMIT) {
        snprintf(msg, len,
                 "township '%.*s' exceeds %" PRId64 " samples/s (burst %" PRId64
                 "); this submission of %u samples may be resent in %" PRId64 " ms",
                 (int)s->township.len, s->township.ptr, rl->rate, rl->burst, s->nsamples, wait_ms);
        return rc;
    }
    /* Out of memory for a new bucket, or an id beyond the limiter (a bug):
     * ask for a resend rather than let the submission bypass the limit. */
    log_error(in->c.log, "rate limit of township '%.*s' (id %u): %s", (int)s->township.len,
              s->township.ptr, town, tally_strerror(rc));
    snprintf(msg, len, "the daemon cannot account the rate of township '%.*s' (%s); resend later",
             (int)s->township.len, s->township.ptr, tally_strerror(rc));
    return TALLY_EBUSY;
}

/* Explain an engine_check() failure about sample b. */
static int explain_engine_error(ingest_t *in, const proto_submit_t *s, int rc, int b, char *field,
                                size_t flen, char *msg, size_t mlen)
{
    proto_str_t mn = s->samples[b].metric;
    snprintf(field, flen, "samples[%d].value", b);
    switch (rc) {
    case TALLY_EOVERFLOW:
        if (engine_overflow_is_county(in->c.engine))
            snprintf(msg, mlen,
                     "samples[%d].value: adding %" PRId64 " to '%.*s' would take the county's "
                     "tally of it, the sum of every township's figures, out of the 64-bit "
                     "integer range; nothing of this submission was applied (the county's "
                     "figures need attention, not this township's)",
                     b, s->samples[b].value, (int)mn.len, mn.ptr);
        else
            snprintf(msg, mlen,
                     "samples[%d].value: adding %" PRId64 " to '%.*s' of '%.*s' would leave the "
                     "64-bit integer range; nothing of this submission was applied",
                     b, s->samples[b].value, (int)mn.len, mn.ptr, (int)s->township.len,
                     s->township.ptr);
        return rc;
    case TALLY_ESERIESLIMIT:
        snprintf(field, flen, "samples[%d].metric", b);
        snprintf(msg, mlen,
                 "samples[%d].metric: '%.*s' of '%.*s' would start a new series beyond the limit "
                 "of %" PRId64 " series ([limits] max_series; %u held); samples of the series "
                 "held are accepted",
                 b, (int)mn.len, mn.ptr, (int)s->township.len, s->township.ptr,
                 in->c.limits.max_series, engine_series_count(in->c.engine));
        return rc;
    case TALLY_ENOMEM:
        snprintf(msg, mlen, "the daemon is out of memory; resend later");
        return TALLY_EBUSY;
    case TALLY_EBUSY:
        field[0] = '\0';
        snprintf(msg, mlen,
                 "samples[%d]: submissions waiting for the journal may need the room this one "
                 "needs ('%.*s' of '%.*s' near the 64-bit range, or the last of max_series); "
                 "resend it once they are applied, in a moment",
                 b, (int)mn.len, mn.ptr, (int)s->township.len, s->township.ptr);
        return rc;
    default:
        snprintf(msg, mlen, "samples[%d]: %s", b, tally_strerror(rc));
        return rc < 0 && rc >= TALLY_EWIRE_LAST ? rc : TALLY_EMALFORMED;
    }
}

int ingest_check_validate(ingest_t *in, const proto_submit_t *s, char *field, size_t flen,
                          char *msg, size_t mlen, int *sample)
{
    *sample = -1;
    uint32_t towns0 = intern_count(in->c.towns), metrics0 = intern_count(in->c.metrics);
    int town = town_id(in, s->township, msg, mlen);
    if (town < 0) {
        snprintf(field, flen, "township");
        return town;
    }
    int rc = check_time(in, s->time_ms, msg, mlen);
    if (rc != 0) {
        snprintf(field, flen, "time_ms");
        goto fail;
    }
    for (uint32_t i = 0; i < s->nsamples; i++) {
        int id = metric_id(in, i, s->samples[i].metric, msg, mlen);
        if (id < 0) {
            snprintf(field, flen, "samples[%u].metric", i);
            *sample = (int)i;
            rc = id;
            goto fail;
        }
        rc = check_bounds(in, i, (uint32_t)id, &s->samples[i], msg, mlen);
        if (rc != 0) {
            snprintf(field, flen, "samples[%u].value", i);
            *sample = (int)i;
            goto fail;
        }
        in->esamples[i].metric = (uint32_t)id;
        in->esamples[i].value = s->samples[i].value;
    }
    int32_t bad = -1;
    rc = engine_check(in->c.engine, (uint32_t)town, s->time_ms, in->esamples, s->nsamples, &bad);
    if (rc != 0) {
        rc = explain_engine_error(in, s, rc, bad < 0 ? 0 : bad, field, flen, msg, mlen);
        *sample = bad;
        goto fail;
    }
    /* Charged last, so only a submission that would be applied uses up
     * the township's rate. */
    rc = rate_check(in, s, (uint32_t)town, msg, mlen);
    if (rc != 0) {
        field[0] = '\0';
        goto fail;
    }
    return town;
fail:
    /* In an open catalog the names may be new.  A rejected submission must
     * not keep them: they would use up max_townships and max_metrics for
     * figures that were never counted. */
    ingest_check_forget_names(in, towns0, metrics0);
    return rc;
}
