/* cli_push_resolve.c - the tally command (client/cli/): the names and the
 * time of `tally push` read as tallyd reads them (cli_push_impl.h): a
 * township's name and metrics' labels as their ids in the daemon's
 * catalog, a --time without an offset in the daemon's zone, and, while
 * tallyd cannot be asked, the catalog and the zone kept from an earlier
 * push (cli_names.h). */
#include "cli_push_impl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_names.h"
#include "cli_opts.h"
#include "cli_state.h"
#include "proto.h"
#include "when.h"

/* How long the catalog may delay a push whose names need it. */
#define CATALOG_WAIT_MS 3000

/* A request to tallyd for what a push reads before it sends (the
 * catalog, the zone): waiting at most CATALOG_WAIT_MS of the push's
 * timeout_ms.  why (cap bytes, may be NULL) receives the reason of a
 * failure. */
static tally_request_t asking(const tally_curve_t *curve, int timeout_ms, char *why, size_t cap)
{
    return cli_request(curve, timeout_ms < CATALOG_WAIT_MS ? timeout_ms : CATALOG_WAIT_MS, why,
                       cap);
}

/* Where the catalog's names are kept (cli_names.h): the spool, else the
 * user's state directory.  0, or -1 when there is none to be had. */
static int names_dir(const char *spool, char *buf, size_t cap)
{
    char err[512];
    if (spool == NULL)
        return cli_state_dir(buf, cap, err, sizeof err) == 0 ? 0 : -1;
    if (mkdir(spool, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(buf, cap, "%s", spool);
    return 0;
}

int cli_push_kept_dir(const char *spool, char *buf, size_t cap)
{
    return names_dir(spool, buf, cap);
}

/* Whether dir keeps tallyd's zone for server. */
static bool zone_kept(const char *dir, const char *server)
{
    char zone[128];
    int32_t off;
    return cli_zone_load(dir, server, zone, sizeof zone, &off) == 1;
}

/* Where what tallyd said (its catalog, has cli_names_kept; its zone, has
 * zone_kept) is read while it cannot be asked: the spool, or, when the
 * spool keeps none for this server (a new spool, say), the user's state
 * directory, where every push without --spool keeps it.  0, or -1 when
 * there is no directory to be had. */
static int kept_dir(const char *spool, const char *server,
                    bool (*has)(const char *dir, const char *server), char *buf, size_t cap)
{
    bool ok = names_dir(spool, buf, cap) == 0;
    if (spool == NULL || (ok && has(buf, server)))
        return ok ? 0 : -1;
    char state[4096];
    if (names_dir(NULL, state, sizeof state) == 0 && has(state, server)) {
        snprintf(buf, cap, "%s", state);
        return 0;
    }
    return ok ? 0 : -1;
}

/* The id (*id, malloc'd) that the catalog kept in dir gives name, said
 * on standard error when it differs (*said: something was).  1, 0 when
 * the name is not known there, or TALLY_ENOMEM. */
static int kept_id(const cli_global_t *g, const char *dir, const char *name, bool township,
                   char **id, bool *said)
{
    int rc = cli_names_lookup(dir, g->server, name, township, id);
    if (rc == 1 && strcmp(*id, name) != 0) {
        if (!*said)
            fprintf(stderr,
                    "tally push: tallyd cannot be asked for its catalog; names read with the one "
                    "kept in %s/%s: ",
                    dir, CLI_NAMES_FILE);
        fprintf(stderr, "%s'%s' = %s", *said ? ", " : "", name, *id);
        *said = true;
    }
    return rc;
}

/* The names of a push while the catalog cannot be read: read with the
 * catalog kept from an earlier push.  A name it does not know may be a
 * name or label rather than an id; tallyd would refuse it when the
 * figures reach it, perhaps from the spool with no one watching, so the
 * push is refused now, while the clerk is there.  CLI_OK or the exit
 * status (printed). */
static int resolve_offline(cli_global_t *g, int rc, const tally_request_t *req, int timeout_ms,
                           const char *dir, const char **town, char *town_buf, size_t cap,
                           csv_samples_t *s)
{
    const char *unknown = NULL;
    bool said = false;
    char *id = NULL;
    int r = 0;
    if (dir != NULL && cli_beyond_ascii(*town)) {
        r = kept_id(g, dir, *town, true, &id, &said);
        if (r == 1) {
            snprintf(town_buf, cap, "%s", id);
            *town = town_buf;
        }
        free(id);
    }
    if (cli_beyond_ascii(*town) && r == 0)
        unknown = *town;
    for (size_t i = 0; i < s->n && r >= 0; i++) {
        if (!cli_beyond_ascii(s->v[i].metric))
            continue;
        r = dir != NULL ? kept_id(g, dir, s->v[i].metric, false, &id, &said) : 0;
        if (r == 1) {
            free(s->v[i].metric);
            s->v[i].metric = id;
        } else if (r == 0 && unknown == NULL) {
            unknown = s->v[i].metric;
        }
    }
    if (said)
        fputc('\n', stderr);
    if (r < 0) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    if (unknown == NULL)
        return CLI_OK;
    cli_request_failed(g, "push", rc, req, timeout_ms);
    fprintf(stderr,
            "tally push: '%s' may be a name or label rather than an id, and %s%s%s: nothing was "
            "sent or spooled; give ids instead (`tally get --labels` shows them: --town gaoguan, "
            "law_exam.takers=94), or push again once tallyd answers\n",
            unknown, dir != NULL ? "no catalog kept in " : "no catalog of tallyd is kept",
            dir != NULL ? dir : "", dir != NULL ? " says which" : "");
    return CLI_UNREACHABLE;
}

/* Whether cat has name as an id or as a name (township) or label. */
static bool in_catalog(const tally_catalog_t *cat, const char *name, bool township)
{
    size_t n = township ? tally_catalog_townships(cat) : tally_catalog_metrics(cat);
    for (size_t i = 0; i < n; i++) {
        const char *id, *text;
        if (township) {
            const tally_township_info_t *t = tally_catalog_township(cat, i);
            id = t->id, text = t->name;
        } else {
            const tally_metric_info_t *m = tally_catalog_metric(cat, i);
            id = m->id, text = m->label;
        }
        if (strcmp(id, name) == 0 || strcmp(text, name) == 0)
            return true;
    }
    return false;
}

static void count_tally(void *ctx, const tally_tally_t *t)
{
    (void)t;
    ++*(size_t *)ctx;
}

/* A name in Chinese (beyond ASCII) that neither the catalog nor tallyd's
 * tallies know: an open catalog takes it as a new township or metric,
 * which splits one in two when it was meant as the name of one reporting
 * under an id (高观镇 for gaoguan, on tallyd's built-in defaults, which
 * name no township).  Said, not refused: ids may be Chinese too. */
static bool is_new(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                   const tally_catalog_t *cat, const char *name, bool township)
{
    if (!cli_beyond_ascii(name) || in_catalog(cat, name, township))
        return false;
    /* A catalog that declares townships takes those alone (tallyd.conf(5),
     * THE CATALOG): there the name becomes nothing, tallyd refuses it, and
     * cli_push_unknown_town_hint says which was meant. */
    if (township && tally_catalog_townships(cat) > 0)
        return false;
    char prefix[PROTO_NAME_MAX + 16];
    snprintf(prefix, sizeof prefix, township ? "u/town/%s/" : "u/county/%s/", name);
    char why[256];
    tally_request_t req = asking(curve, timeout_ms, why, sizeof why);
    size_t n = 0;
    return tally_get_req(g->server, &req, prefix, count_tally, &n, NULL, NULL) == 0 && n == 0;
}

/* The metric (not a ratio: figures are not pushed to one) of cat whose
 * id or label is most likely meant by name, or NULL when none is close;
 * *label tells which of the two was. */
static const tally_metric_info_t *closest_metric(const tally_catalog_t *cat, const char *name,
                                                 bool *label)
{
    size_t n = tally_catalog_metrics(cat), k = 0;
    const char **cand = malloc(2 * n * sizeof *cand + 1);
    const tally_metric_info_t **of = malloc(2 * n * sizeof *of + 1);
    const tally_metric_info_t *found = NULL;
    if (cand != NULL && of != NULL) {
        for (size_t i = 0; i < n; i++) {
            const tally_metric_info_t *m = tally_catalog_metric(cat, i);
            if (m->kind == TALLY_KIND_RATIO)
                continue;
            of[k] = m, cand[k++] = m->id;
            of[k] = m, cand[k++] = m->label;
        }
        size_t best = cli_closest(name, cand, k);
        if (best != SIZE_MAX) {
            found = of[best];
            *label = best % 2 == 1;
        }
    }
    free(cand);
    free(of);
    return found;
}

/* How many declared townships a refusal lists at most. */
#define TOWNS_LISTED 10

void cli_push_report_new_metrics(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                                 const push_new_t *news)
{
    if (news->n == 0)
        return;
    tally_request_t req = asking(curve, timeout_ms, NULL, 0);
    const tally_catalog_t *cat = NULL;
    (void)cli_catalog(g, &req, &cat); /* read already, by cli_push_resolve */
    for (size_t i = 0; i < news->n; i++) {
        bool label = false;
        const tally_metric_info_t *m =
            cat != NULL ? closest_metric(cat, news->name[i], &label) : NULL;
        char like[512] = "";
        if (m != NULL && label)
            snprintf(like, sizeof like, " (did you mean '%s', id %s?)", m->label, m->id);
        else if (m != NULL)
            snprintf(like, sizeof like, " (did you mean '%s'?)", m->id);
        fprintf(stderr,
                "tally push: '%s' is new to tallyd: no metric has that id or label yet, so it "
                "becomes a counter of its own.  If it is the label of a metric%s, push with its "
                "id (tally get --labels shows them)\n",
                news->name[i], like);
    }
}

void cli_push_unknown_metric_hint(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                                  const csv_samples_t *s)
{
    tally_request_t req = asking(curve, timeout_ms, NULL, 0);
    const tally_catalog_t *cat;
    if (cli_catalog(g, &req, &cat) != 0 || tally_catalog_metrics(cat) == 0)
        return;
    const char *said[PUSH_NEW_MAX]; /* each name once, a few at most */
    size_t nsaid = 0;
    for (size_t i = 0; i < s->n && nsaid < PUSH_NEW_MAX; i++) {
        const char *name = s->v[i].metric;
        bool seen = in_catalog(cat, name, false);
        for (size_t j = 0; j < nsaid && !seen; j++)
            seen = strcmp(said[j], name) == 0;
        bool label = false;
        const tally_metric_info_t *m = seen ? NULL : closest_metric(cat, name, &label);
        if (m == NULL)
            continue;
        said[nsaid++] = name;
        if (label)
            fprintf(stderr,
                    "tally push: metric '%s' is not in the daemon's catalog (did you mean '%s', "
                    "id %s?)\n",
                    name, m->label, m->id);
        else
            fprintf(stderr,
                    "tally push: metric '%s' is not in the daemon's catalog (did you mean "
                    "'%s'?)\n",
                    name, m->id);
    }
}

void cli_push_unknown_town_hint(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                                const char *town)
{
    tally_request_t req = asking(curve, timeout_ms, NULL, 0);
    const tally_catalog_t *cat;
    if (cli_catalog(g, &req, &cat) != 0)
        return;
    size_t n = tally_catalog_townships(cat);
    if (n == 0 || in_catalog(cat, town, true))
        return;
    const char *best = cli_closest_town(cat, town);
    if (best != NULL) {
        fprintf(stderr,
                "tally push: --town '%s' is not a township of the daemon's catalog (did you mean "
                "'%s'?)\n",
                town, best);
        return;
    }
    fprintf(stderr,
            "tally push: --town '%s' is not a township of the daemon's catalog, which declares "
            "its townships: ",
            town);
    for (size_t i = 0; i < n && i < TOWNS_LISTED; i++) {
        const tally_township_info_t *t = tally_catalog_township(cat, i);
        fprintf(stderr, "%s%s%s%s%s", i > 0 ? ", " : "", t->id, t->name[0] ? " (" : "", t->name,
                t->name[0] ? ")" : "");
    }
    if (n > TOWNS_LISTED)
        fprintf(stderr, " and %zu more", n - TOWNS_LISTED);
    fputc('\n', stderr);
}

/* The names of a push read with tallyd's catalog cat. */
static int resolve_online(cli_global_t *g, const tally_curve_t *curve, const tally_catalog_t *cat,
                          const char **town, char *town_buf, size_t cap, csv_samples_t *s,
                          int timeout_ms, push_new_t *news)
{
    int status = CLI_OK;
    const char *id = cli_catalog_id(*town, cat, true);
    if (id != NULL) {
        snprintf(town_buf, cap, "%s", id);
        *town = town_buf;
    }
    if (is_new(g, curve, timeout_ms, cat, *town, true))
        fprintf(stderr,
                "tally push: '%s' is new to tallyd: no township has that id or name yet, so it "
                "becomes a township of its own.  If it is the name of a township that reports "
                "under an id (gaoguan), push with that id, or name the townships in tallyd's "
                "catalog ([township ID] name = %s)\n",
                *town, *town);
    const char *asked[PUSH_NEW_MAX]; /* each name once, a few at most */
    size_t nasked = 0;
    for (size_t i = 0; i < s->n && nasked < PUSH_NEW_MAX; i++) {
        const char *m = s->v[i].metric;
        bool seen = !cli_beyond_ascii(m) || in_catalog(cat, m, false);
        for (size_t j = 0; j < nasked && !seen; j++)
            seen = strcmp(asked[j], m) == 0;
        if (!seen) {
            asked[nasked++] = m;
            /* Said once tallyd has answered (cli_push_report_new_metrics):
             * the catalog does not tell whether its list of metrics is
             * closed (tallyd's built-in one lists its metrics and takes
             * others), and a closed one rejects the name instead. */
            if (is_new(g, curve, timeout_ms, cat, m, false))
                news->name[news->n++] = m;
        }
    }
    for (size_t i = 0; i < s->n && status == CLI_OK; i++) {
        if (!cli_beyond_ascii(s->v[i].metric) ||
            (id = cli_catalog_id(s->v[i].metric, cat, false)) == NULL)
            continue;
        char *copy = strdup(id);
        if (copy == NULL) {
            cli_error("out of memory");
            status = CLI_INTERNAL;
            break;
        }
        free(s->v[i].metric);
        s->v[i].metric = copy;
    }
    return status;
}

int cli_push_kept_scales(const cli_global_t *g, const char *spool, cli_scales_t *sc)
{
    char from[4096];
    if (g->catalog != NULL)
        return cli_scales_from_catalog(sc, g->catalog);
    if (kept_dir(spool, g->server, cli_names_kept, from, sizeof from) == 0)
        return cli_scales_load(sc, from, g->server);
    return 0;
}

int cli_push_resolve(cli_global_t *g, const char *spool, const char **town, char *town_buf,
                     size_t cap, csv_samples_t *s, const char *file, int timeout_ms,
                     push_new_t *news, cli_scales_t *sc)
{
    bool any = cli_beyond_ascii(*town);
    for (size_t i = 0; i < s->n && !any; i++)
        any = cli_beyond_ascii(s->v[i].metric);
    const tally_curve_t *curve;
    int status = cli_curve(g, "push", &curve);
    if (status != 0)
        return status;
    char why[512] = "", dir[4096], from[4096];
    bool kept = names_dir(spool, dir, sizeof dir) == 0;
    tally_request_t req = asking(curve, timeout_ms, why, sizeof why);
    const tally_catalog_t *cat = NULL;
    int rc = cli_catalog(g, &req, &cat);
    bool found = rc < 0 && kept_dir(spool, g->server, cli_names_kept, from, sizeof from) == 0;
    /* A daemon older than the catalog keeps no decimal places. */
    sc->known = rc == TALLY_ETYPE;
    if (rc != TALLY_ETYPE &&
        (rc < 0 ? cli_push_kept_scales(g, spool, sc) : cli_scales_from_catalog(sc, cat)) < 0) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    if (rc == TALLY_ETYPE || tally_err_is_wire(rc)) {
        status = CLI_OK; /* a daemon that answers, without the catalog: it judges the names */
    } else if (rc < 0) {
        status = any ? resolve_offline(g, rc, &req, timeout_ms, found ? from : NULL, town, town_buf,
                                       cap, s)
                     : CLI_OK;
    } else {
        char err[512];
        if (kept) /* without it, only a push while tallyd is down is refused */
            (void)cli_names_save(dir, g->server, cat, err, sizeof err);
        if (any)
            status = resolve_online(g, curve, cat, town, town_buf, cap, s, timeout_ms, news);
    }
    bool fraction = false;
    for (size_t i = 0; i < s->n && !fraction; i++)
        fraction = s->v[i].places > 0;
    if (status == CLI_OK && !sc->known && rc < 0 && fraction)
        (void)cli_request_failed(g, "push", rc, &req, timeout_ms); /* why, before what it means */
    if (status == CLI_OK)
        status = cli_push_scale(sc, s, file);
    /* Said where the figures may wait in the spool: a whole number of a
     * metric with decimal places would be counted in tenths or less. */
    if (status == CLI_OK && !sc->known && spool != NULL && s->n > 0)
        fprintf(stderr, "tally push: no catalog of tallyd is kept here: values go as written "
                        "(a metric tallyd keeps with decimal places would read 3 as 0.3 or "
                        "0.03); a push while tallyd answers keeps its catalog\n");
    return status;
}

/* Keep tallyd's zone c in dir (when not NULL) for pushes while it cannot
 * be asked. */
static void keep_zone(const cli_global_t *g, const char *dir, const tally_clock_t *c)
{
    char err[512];
    if (dir != NULL)
        (void)cli_zone_save(dir, g->server, c->zone, c->utc_offset_s, err, sizeof err);
}

void cli_push_learn_zone(const cli_global_t *g, const char *spool, const tally_curve_t *curve,
                         int timeout_ms)
{
    char dir[4096], zone[128];
    int32_t off;
    if (names_dir(spool, dir, sizeof dir) != 0 ||
        cli_zone_load(dir, g->server, zone, sizeof zone, &off) == 1)
        return;
    tally_request_t req = asking(curve, timeout_ms, NULL, 0);
    tally_clock_t c;
    if (tally_clock_req(g->server, &req, &c) == 0)
        keep_zone(g, dir, &c);
}

int cli_push_time_in_daemon_zone(cli_global_t *g, const char *spool, const char *text, int64_t *ms,
                                 int timeout_ms)
{
    const tally_curve_t *curve;
    int status = cli_curve(g, "push", &curve);
    if (status != 0)
        return status;
    char why[256] = "", dir[4096], err[512];
    bool kept = names_dir(spool, dir, sizeof dir) == 0;
    tally_request_t req = asking(curve, timeout_ms, why, sizeof why);
    tally_clock_t c;
    int rc = tally_clock_req(g->server, &req, &c);
    if (rc == 0) {
        keep_zone(g, kept ? dir : NULL, &c);
        when_zone_t z = {.name = c.zone, .utc_offset_s = c.utc_offset_s};
        return when_parse(text, &z, ms, NULL, err, sizeof err) == 0 ? CLI_OK : CLI_INTERNAL;
    }
    char zone[128], from[4096];
    int32_t off;
    if (kept_dir(spool, g->server, zone_kept, from, sizeof from) == 0 &&
        cli_zone_load(from, g->server, zone, sizeof zone, &off) == 1) {
        when_zone_t z = {.name = zone, .utc_offset_s = off}, utc = {.name = "UTC"};
        bool local = false;
        if (when_parse(text, &z, ms, &local, err, sizeof err) != 0)
            return CLI_INTERNAL;
        /* The offset of that time in that zone (a summer date in Europe/
         * Berlin is UTC+2, whatever the offset was when the zone was
         * kept): the same text read in UTC, less the time it stands for. */
        int64_t as_utc = *ms;
        if (local && when_parse(text, &utc, &as_utc, NULL, err, sizeof err) == 0)
            off = (int32_t)((as_utc - *ms) / 1000);
        if (local)
            fprintf(stderr,
                    "tally push: tallyd cannot be asked its time zone (%s): --time '%s' is read "
                    "in %s (UTC%s%d:%02d then), the zone it last gave\n",
                    why[0] ? why : tally_strerror(rc), text, zone[0] ? zone : "its zone",
                    off < 0 ? "-" : "+", abs(off) / 3600, abs(off) % 3600 / 60);
        return CLI_OK;
    }
    if (rc == TALLY_ETYPE || tally_err_is_wire(rc)) {
        /* A daemon from before CLOCK answers: it has no zone to learn, and
         * this machine's is the best guess left. */
        const char *tz = getenv("TZ");
        fprintf(stderr,
                "tally push: tallyd does not tell its time zone (%s): --time '%s' is read in %s; "
                "give an offset (+08:00) to be sure\n",
                why[0] ? why : tally_strerror(rc), text, tz != NULL ? tz : "UTC");
        return CLI_OK;
    }
    /* Read in this machine's zone or UTC, 23:30 on 31 December counted
     * in the next year in Asia/Shanghai: refused, while the clerk is
     * there, rather than spooled to count in the wrong period. */
    char state[4096], where[8300], example[64];
    bool has_state = names_dir(NULL, state, sizeof state) == 0;
    if (spool != NULL && kept && has_state)
        snprintf(where, sizeof where, "in %s or %s", dir, state);
    else if (kept || has_state)
        snprintf(where, sizeof where, "in %s", kept ? dir : state);
    else
        snprintf(where, sizeof where, "no directory to keep it in");
    snprintf(example, sizeof example, "%.10sT%s+08:00", text,
             strlen(text) > 11 ? text + 11 : "00:00");
    fprintf(stderr,
            "tally push: --time '%s' has no offset, and tallyd's time zone is not known yet: "
            "tallyd cannot be asked (%s), and no earlier push kept its zone (%s): nothing was "
            "sent or spooled.  Give the time with the offset of tallyd's zone (e.g. --time %s), "
            "or push once while tallyd is reachable, which keeps its zone for later\n",
            text, why[0] ? why : tally_strerror(rc), where, example);
    return CLI_USAGE;
}
