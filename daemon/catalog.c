/* catalog.c - declare the configured catalog (see catalog.h). */
#include "catalog.h"

#include <stdio.h>
#include <string.h>

size_t catalog_metric_names(const tallyd_config_t *cfg)
{
    size_t n = cfg->nmetrics + cfg->nratios;
    for (size_t i = 0; i < cfg->nratios; i++) {
        const config_ratio_t *r = &cfg->ratios[i];
        const char *in[2] = {r->numerator, r->denominator};
        for (int k = 0; k < 2; k++) {
            if (k == 1 && strcmp(in[0], in[1]) == 0)
                break;
            bool known = config_find_metric(cfg, in[k], strlen(in[k])) != NULL;
            /* An input that is no declared metric may still be another
             * ratio's input: count it once. */
            for (size_t j = 0; j < i && !known; j++)
                known = strcmp(cfg->ratios[j].numerator, in[k]) == 0 ||
                        strcmp(cfg->ratios[j].denominator, in[k]) == 0;
            n += !known;
        }
    }
    return n;
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

int catalog_declare(const catalog_target_t *t, const tallyd_config_t *cfg, char *err, size_t len)
{
    err[0] = '\0';
    for (size_t i = 0; i < cfg->ntownships; i++)
        if (add_name(t->towns, cfg->townships[i].id, err, len) < 0)
            return TALLY_ECONFIG;
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        const config_metric_t *m = &cfg->metrics[i];
        int id = add_name(t->metrics, m->id, err, len);
        if (id < 0)
            return TALLY_ECONFIG;
        int rc = engine_define_metric(t->engine, (uint32_t)id, (uint8_t)m->kind);
        if (rc == TALLY_EEXIST && cfg->catalog_builtin) {
            snprintf(err, len,
                     "the built-in catalog declares '%s' a %s, but the state in %s holds it as "
                     "a %s; it stays a %s",
                     m->id, config_kind_name(m->kind), t->state_dir,
                     config_kind_name(engine_metric_kind(t->engine, (uint32_t)id)),
                     config_kind_name(engine_metric_kind(t->engine, (uint32_t)id)));
            continue;
        }
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
    return 0;
}
