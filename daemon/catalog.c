/* catalog.c - declare the configured catalog (see catalog.h). */
#include "catalog.h"

#include <stdio.h>
#include <string.h>

/* From the township reports: 矛盾纠纷化解率, 参考合格率, 群众说事化解率. */
static const struct {
    const char *id, *num, *den;
} builtin_ratios[] = {
    {"disputes.resolution_rate", "disputes.resolved", "disputes.screened"},
    {"law_exam.pass_rate", "law_exam.passed", "law_exam.takers"},
    {"talks.resolution_rate", "talks.disputes_resolved", "talks.disputes_handled"},
};

#define NBUILTIN (sizeof(builtin_ratios) / sizeof(builtin_ratios[0]))

size_t catalog_builtin_ratio_count(void)
{
    return NBUILTIN;
}

void catalog_builtin_ratio(size_t i, const char **id, const char **num, const char **den)
{
    *id = builtin_ratios[i].id;
    *num = builtin_ratios[i].num;
    *den = builtin_ratios[i].den;
}

static int add_name(intern_t *in, const char *name, char *err, size_t len)
{
    int id = intern_add(in, name, strlen(name));
    if (id < 0)
        snprintf(err, len, "cannot add '%s' to the catalog: %s", name, tally_strerror(id));
    return id;
}

static int define_ratio(const catalog_target_t *t, const char *id, const char *num, const char *den,
                        int line, char *err, size_t len)
{
    int r = add_name(t->metrics, id, err, len);
    int n = r < 0 ? r : add_name(t->metrics, num, err, len);
    int q = n < 0 ? n : add_name(t->metrics, den, err, len);
    if (q < 0)
        return TALLY_ECONFIG;
    if (engine_metric_kind(t->engine, (uint32_t)r) == PROTO_KIND_RATIO)
        return 0; /* restored from the checkpoint, or unchanged at a reload */
    int rc = engine_define_ratio(t->engine, (uint32_t)r, (uint32_t)n, (uint32_t)q);
    if (rc == 0)
        return 0;
    if (line > 0)
        snprintf(err, len, "ratio '%s' (line %d) = %s / %s cannot be defined: %s", id, line, num,
                 den, tally_strerror(rc));
    else
        snprintf(err, len, "cannot define ratio '%s' = %s / %s: %s", id, num, den,
                 tally_strerror(rc));
    return TALLY_ECONFIG;
}

int catalog_declare(const catalog_target_t *t, const tallyd_config_t *cfg, bool builtin, char *err,
                    size_t len)
{
    for (size_t i = 0; i < cfg->ntownships; i++)
        if (add_name(t->towns, cfg->townships[i].id, err, len) < 0)
            return TALLY_ECONFIG;
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        const config_metric_t *m = &cfg->metrics[i];
        int id = add_name(t->metrics, m->id, err, len);
        if (id < 0)
            return TALLY_ECONFIG;
        int rc = engine_define_metric(t->engine, (uint32_t)id, (uint8_t)m->kind);
        if (rc != 0) {
            snprintf(err, len,
                     "metric '%s' (line %d) is declared a %s, but the state in %s holds it as a "
                     "%s: %s",
                     m->id, m->line, config_kind_name(m->kind), t->state_dir,
                     config_kind_name(engine_metric_kind(t->engine, (uint32_t)id)),
                     tally_strerror(rc));
            return TALLY_ECONFIG;
        }
    }
    for (size_t i = 0; i < cfg->nratios; i++) {
        const config_ratio_t *r = &cfg->ratios[i];
        if (define_ratio(t, r->id, r->numerator, r->denominator, r->line, err, len) != 0)
            return TALLY_ECONFIG;
    }
    for (size_t i = 0; builtin && i < NBUILTIN; i++)
        if (define_ratio(t, builtin_ratios[i].id, builtin_ratios[i].num, builtin_ratios[i].den, 0,
                         err, len) != 0)
            return TALLY_ECONFIG;
    return 0;
}
