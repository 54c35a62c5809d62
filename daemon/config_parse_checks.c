/* config_parse_checks.c - the checks of tallyd.conf that span sections,
 * run once config_parse.c has read the whole file: a ratio's metrics,
 * display names and labels alike, windows against buckets, catalog
 * sizes, the endpoints, the defaults that depend on the environment. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_parse_impl.h"
#include "suggest.h"

/* config_suggest over the declared metric ids: suggest_pick between the
 * best id so far and the next, so that no array of all ids is needed. */
static const char *metric_hint(const tallyd_config_t *cfg, const char *word, char *buf, size_t cap)
{
    const char *best = NULL;
    for (size_t m = 0; m < cfg->nmetrics; m++) {
        const char *pair[2] = {best, cfg->metrics[m].id};
        best = best != NULL ? suggest_pick(word, pair, 2) : suggest_pick(word, pair + 1, 1);
    }
    return config_suggest(buf, cap, word, &best, best != NULL);
}

static void check_ratios(parser_t *ps)
{
    tallyd_config_t *cfg = ps->cfg;
    char sec[PROTO_NAME_MAX + 8], hint[96];
    for (size_t i = 0; i < cfg->nratios && !ps->failed; i++) {
        config_ratio_t *r = &cfg->ratios[i];
        snprintf(sec, sizeof(sec), "ratio %s", r->id);
        const char *names[2] = {r->numerator, r->denominator};
        const char *keys[2] = {"numerator", "denominator"};
        int lines[2] = {r->numerator_line, r->denominator_line};
        long *slots[2] = {&r->numerator_metric, &r->denominator_metric};
        if (strcmp(r->numerator, r->denominator) == 0) {
            config_parse_fail(ps, lines[1], sec, keys[1],
                              "'%s' is also the numerator (expected two different metrics)",
                              config_parse_show(ps, 2, names[1]));
            return;
        }
        for (int k = 0; k < 2; k++) {
            uint32_t ref = config_parse_index_find(ps, 1, names[k]);
            if (ref != 0 && (ref >> 28) == CONFIG_SEC_RATIO) {
                config_parse_fail(ps, lines[k], sec, keys[k],
                                  "'%s' is a ratio (expected a counter or gauge metric)",
                                  config_parse_show(ps, 2, names[k]));
                return;
            }
            if (!cfg->catalog_closed_metrics)
                continue;
            if (ref == 0) {
                config_parse_fail(
                    ps, lines[k], sec, keys[k], "metric '%s' is not declared (no [metric %s])%s",
                    config_parse_show(ps, 2, names[k]), config_parse_show(ps, 2, names[k]),
                    metric_hint(cfg, names[k], hint, sizeof(hint)));
                return;
            }
            *slots[k] = (long)((ref & 0x0FFFFFFFu) - 1);
        }
    }
}

/* A township's display name or a metric's or ratio's label, for finding
 * two alike. */
typedef struct named {
    const char *text, *kind, *id; /* kind: "township", "metric" or "ratio" */
    int line;
} named_t;

static int named_cmp(const void *a, const void *b)
{
    const named_t *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    return c != 0 ? c : x->line - y->line;
}

/* v[0..n) sorted; the first two alike fail, the later one named. */
static void check_alike(parser_t *ps, named_t *v, size_t n, const char *key)
{
    qsort(v, n, sizeof(*v), named_cmp);
    for (size_t i = 1; i < n && !ps->failed; i++) {
        if (strcmp(v[i].text, v[i - 1].text) != 0)
            continue;
        char sec[PROTO_NAME_MAX + 16];
        snprintf(sec, sizeof(sec), "%s %s", v[i].kind, v[i].id);
        config_parse_fail(
            ps, v[i].line, sec, key,
            "'%s' is also the %s of [%s %s] on line %d (expected one of its own: reports show "
            "it, and tally's commands take it for the id)",
            config_parse_show(ps, 2, v[i].text), key, v[i - 1].kind, v[i - 1].id, v[i - 1].line);
    }
}

/* Two townships of one display name, or two metrics or ratios of one
 * label: a report would show them alike, and the commands, which take
 * names and labels for ids, could not tell which is meant (nor could
 * tallyd say which id a submission by that name should have used). */
static void check_names(parser_t *ps)
{
    tallyd_config_t *cfg = ps->cfg;
    size_t cap = cfg->ntownships > cfg->nmetrics + cfg->nratios ? cfg->ntownships
                                                                : cfg->nmetrics + cfg->nratios;
    if (cap == 0)
        return;
    named_t *v = malloc(cap * sizeof(*v));
    if (v == NULL) {
        config_parse_fail(ps, 0, NULL, NULL, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->ntownships; i++)
        if (cfg->townships[i].name[0] != '\0')
            v[n++] = (named_t){cfg->townships[i].name, "township", cfg->townships[i].id,
                               cfg->townships[i].line};
    check_alike(ps, v, n, "name");
    n = 0;
    for (size_t i = 0; i < cfg->nmetrics; i++)
        if (cfg->metrics[i].label[0] != '\0')
            v[n++] = (named_t){cfg->metrics[i].label, "metric", cfg->metrics[i].id,
                               cfg->metrics[i].line};
    for (size_t i = 0; i < cfg->nratios; i++)
        if (cfg->ratios[i].label[0] != '\0')
            v[n++] =
                (named_t){cfg->ratios[i].label, "ratio", cfg->ratios[i].id, cfg->ratios[i].line};
    check_alike(ps, v, n, "label");
    free(v);
}

void config_parse_finish(parser_t *ps, int defaults_rc)
{
    tallyd_config_t *cfg = ps->cfg;
    char a[32];
    config_parse_end_section(ps);
    if (ps->failed)
        return;
    if (defaults_rc != 0 && !config_parse_key_line(ps, CONFIG_SEC_TALLYD, "state_dir"))
        config_parse_fail(
            ps, 0, NULL, NULL,
            "the first path in $STATE_DIRECTORY is longer than %d bytes; set [tallyd] "
            "state_dir",
            CONFIG_PATH_MAX - 1);
    char why[CONFIG_PATH_MAX + 128];
    if (!ps->failed && !config_parse_key_line(ps, CONFIG_SEC_TALLYD, "timezone") &&
        config_check_timezone(cfg->timezone, why, sizeof(why)) != 0)
        config_parse_fail(ps, 0, "tallyd", "timezone",
                          "the default '%s' %s (install tzdata, or set timezone)", cfg->timezone,
                          why);
    int publish_line = config_parse_key_line(ps, CONFIG_SEC_TALLYD, "publish");
    if (!ps->failed && config_endpoints_clash(cfg->request, cfg->publish))
        config_parse_fail(ps,
                          publish_line ? publish_line
                                       : config_parse_key_line(ps, CONFIG_SEC_TALLYD, "request"),
                          "tallyd", publish_line ? "publish" : "request",
                          "'%s' is also the request endpoint (expected two different endpoints)",
                          config_parse_show(ps, 2, cfg->publish));
    for (size_t i = 0; i < cfg->nwindows && !ps->failed; i++) {
        if (cfg->windows[i].ms % cfg->buckets == 0)
            continue;
        config_parse_fail(
            ps,
            ps->windows_listed ? ps->window_lines[i]
                               : config_parse_key_line(ps, CONFIG_SEC_WINDOWS, "buckets"),
            "windows", ps->windows_listed ? cfg->windows[i].name : "buckets",
            "window '%s' (%s) does not split into %" PRId64
            " buckets of whole milliseconds (expected a window length that is a multiple of "
            "%" PRId64 " ms)",
            cfg->windows[i].name, config_format_duration(cfg->windows[i].ms, a, sizeof(a)),
            cfg->buckets, cfg->buckets);
    }
    if (!ps->failed && (int64_t)cfg->ntownships > cfg->max_townships) {
        config_township_t *t = &cfg->townships[cfg->max_townships];
        char sec[PROTO_NAME_MAX + 16];
        snprintf(sec, sizeof(sec), "township %s", t->id);
        config_parse_fail(ps, t->line, sec, NULL,
                          "one township more than [limits] max_townships = %" PRId64,
                          cfg->max_townships);
    }
    if (!ps->failed && (int64_t)cfg->nmetrics > cfg->max_metrics) {
        config_metric_t *m = &cfg->metrics[cfg->max_metrics];
        char sec[PROTO_NAME_MAX + 16];
        snprintf(sec, sizeof(sec), "metric %s", m->id);
        config_parse_fail(ps, m->line, sec, NULL,
                          "one metric more than [limits] max_metrics = %" PRId64, cfg->max_metrics);
    }
    if (!ps->failed)
        check_ratios(ps);
    if (!ps->failed)
        check_names(ps);
    /* No metric or ratio declared: the built-in catalog, which leaves the
     * metric catalog open, so that a file that only sets limits behaves
     * like no file at all. */
    if (!ps->failed && cfg->nmetrics == 0 && cfg->nratios == 0 && config_builtin_catalog(cfg) != 0)
        config_parse_fail(ps, 0, NULL, NULL, "out of memory");
}
