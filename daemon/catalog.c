/* catalog.c - declare the configured catalog (see catalog.h). */
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
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
    if (line > 0 && rc == TALLY_EEXIST)
        snprintf(err, len,
                 "ratio '%s' (line %d) = %s / %s cannot be defined: the state in %s holds '%s' as "
                 "a %s metric; give the ratio another id",
                 id, line, num, den, t->state_dir, id,
                 config_kind_name(engine_metric_kind(t->engine, (uint32_t)r)));
    else if (line > 0)
        snprintf(err, len, "ratio '%s' (line %d) = %s / %s cannot be defined: %s", id, line, num,
                 den, tally_strerror(rc));
    else
        snprintf(err, len, "cannot define ratio '%s' = %s / %s: %s", id, num, den,
                 tally_strerror(rc));
    return TALLY_ECONFIG;
}

/* The decimal scale cfg gives metric id: 0 when it declares none. */
static uint8_t scale_of(const catalog_target_t *t, const tallyd_config_t *cfg, uint32_t id)
{
    uint32_t n = 0;
    const char *name = intern_name(t->metrics, id, &n);
    const config_metric_t *m = name != NULL ? config_find_metric(cfg, name, n) : NULL;
    return m != NULL ? (uint8_t)m->scale : 0;
}

/* A ratio's value is that of the numbers its operands' integers stand
 * for, with their decimal scales (PROTOCOL.md 10.6).  The engine does not
 * save the scales with the state, so every ratio it holds, declared or
 * not, gets its operands' scales as the catalog shows them now, at every
 * start and reload (a scale changed by a reload included). */
static void set_ratio_scales(const catalog_target_t *t, const tallyd_config_t *cfg)
{
    for (uint32_t id = 1; id <= intern_count(t->metrics); id++) {
        uint32_t num, den;
        if (engine_ratio_operands(t->engine, id, &num, &den) == 0)
            (void)engine_ratio_set_scales(t->engine, id, scale_of(t, cfg, num),
                                          scale_of(t, cfg, den));
    }
}

/* Whether metric has tallies (its county-wide series). */
static bool has_tallies(const engine_t *e, uint32_t metric)
{
    engine_values_t v;
    return engine_read(e, metric, 0, &v) == 0;
}

int catalog_check_scales(const catalog_target_t *t, const tallyd_config_t *cfg, char *err,
                         size_t len)
{
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        const config_metric_t *m = &cfg->metrics[i];
        int id = intern_find(t->metrics, m->id, strlen(m->id));
        int held = id > 0 ? engine_metric_scale(t->engine, (uint32_t)id) : -1;
        if (held >= 0 && held != m->scale && has_tallies(t->engine, (uint32_t)id)) {
            snprintf(err, len,
                     "metric '%s' (line %d) has scale = %d, but the state in %s holds its "
                     "tallies at scale %d, which they keep (its figures would read %s): put "
                     "back scale = %d, or declare a new metric for the new scale",
                     m->id, m->line, m->scale, t->state_dir, held,
                     held < m->scale ? "smaller" : "larger", held);
            return TALLY_ECONFIG;
        }
    }
    uint32_t n = intern_count(t->metrics);
    for (uint32_t id = 1; id <= n; id++) {
        uint32_t nlen;
        const char *name = intern_name(t->metrics, id, &nlen);
        int held = engine_metric_scale(t->engine, id);
        /* Declared a ratio instead: refused as such (define_ratio). */
        if (held > 0 && config_find_metric(cfg, name, nlen) == NULL &&
            config_find_ratio(cfg, name, nlen) == NULL && has_tallies(t->engine, id)) {
            snprintf(err, len,
                     "metric '%.*s' is not declared any more, but the state in %s holds its "
                     "tallies at scale %d, and undeclared they would read as whole numbers: "
                     "declare it again ([metric %.*s] with kind = %s and scale = %d)",
                     (int)nlen, name, t->state_dir, held, (int)nlen, name,
                     config_kind_name(engine_metric_kind(t->engine, id)), held);
            return TALLY_ECONFIG;
        }
    }
    return 0;
}

int catalog_declare(const catalog_target_t *t, const tallyd_config_t *cfg, char *err, size_t len)
{
    err[0] = '\0';
    if (catalog_check_scales(t, cfg, err, len) != 0)
        return TALLY_ECONFIG;
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
        if (rc == TALLY_EEXIST) {
            /* The state's tallies (or its ratio) keep their kind. */
            uint8_t held = engine_metric_kind(t->engine, (uint32_t)id);
            if (held == PROTO_KIND_RATIO)
                snprintf(err, len,
                         "metric '%s' (line %d) is declared a %s, but the state in %s holds it as "
                         "a ratio; declare it a [ratio %s] again",
                         m->id, m->line, config_kind_name(m->kind), t->state_dir, m->id);
            else
                snprintf(err, len,
                         "metric '%s' (line %d) is declared a %s, but the state in %s holds %s "
                         "tallies of it, which keep their kind; put back kind = %s",
                         m->id, m->line, config_kind_name(m->kind), t->state_dir,
                         config_kind_name(held), config_kind_name(held));
            return TALLY_ECONFIG;
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
        /* Saved by a tallyd that kept no scales: the file's is taken, said
         * where it reads the saved figures otherwise than as integers. */
        if (engine_metric_scale(t->engine, (uint32_t)id) < 0 && m->scale > 0 && err[0] == '\0' &&
            has_tallies(t->engine, (uint32_t)id))
            snprintf(err, len,
                     "metric '%s' has tallies saved by an older tallyd, without their decimal "
                     "scale: they are read at scale %d, as line %d says (125 as %s); if they "
                     "were counted at another, put that back",
                     m->id, m->scale, m->line, m->scale == 1 ? "12.5" : "1.25 or less");
        engine_set_metric_scale(t->engine, (uint32_t)id, (uint8_t)m->scale);
    }
    for (size_t i = 0; i < cfg->nratios; i++) {
        const config_ratio_t *r = &cfg->ratios[i];
        if (define_ratio(t, r->id, r->numerator, r->denominator, r->line, err, len) != 0)
            return TALLY_ECONFIG;
    }
    set_ratio_scales(t, cfg);
    return 0;
}

/* Flag the id of name in f (n entries, as many as the table held). */
static void flag(uint8_t *f, uint32_t n, const intern_t *in, const char *name)
{
    int id = intern_find(in, name, strlen(name));
    if (id > 0 && (uint32_t)id < n)
        f[id] = 1;
}

int catalog_declared_set(catalog_declared_t *d, const tallyd_config_t *cfg, const intern_t *towns,
                         const intern_t *metrics)
{
    /* Ids the tables give out later are names no catalog declared. */
    catalog_declared_t next = {.ntown = intern_count(towns) + 1,
                               .nmetric = intern_count(metrics) + 1};
    next.town = calloc(next.ntown, 1);
    next.metric = calloc(next.nmetric, 1);
    if (next.town == NULL || next.metric == NULL) {
        catalog_declared_free(&next);
        return TALLY_ENOMEM;
    }
    for (size_t i = 0; i < cfg->ntownships; i++)
        flag(next.town, next.ntown, towns, cfg->townships[i].id);
    for (size_t i = 0; i < cfg->nmetrics; i++)
        flag(next.metric, next.nmetric, metrics, cfg->metrics[i].id);
    for (size_t i = 0; i < cfg->nratios; i++)
        flag(next.metric, next.nmetric, metrics, cfg->ratios[i].id);
    catalog_declared_free(d);
    *d = next;
    return 0;
}

void catalog_declared_free(catalog_declared_t *d)
{
    free(d->town);
    free(d->metric);
    memset(d, 0, sizeof(*d));
}
