/* cli_report.c - the tally command (client/cli/): `tally report`, a
 * period's figures as a report in Markdown, CSV or Excel (report.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "cli.h"
#include "cli_names.h"
#include "cli_opts.h"
#include "cli_period.h"
#include "report.h"

/* clang-format off */
const char cli_report_usage[] =
    "Usage: tally report --period P [--town T | --all] [--compare]\n"
    "                    [--format md|csv|xlsx] [-o FILE] [OPTIONS]\n"
    "\n"
    "Write the figures of one calendar period as a report: one row per metric in\n"
    "the daemon's catalog order, with its label and unit; ratios as percentages\n"
    "with one decimal.  The county's figures by default, one township's with\n"
    "--town, every township's (a column each, by name) and the county's with\n"
    "--all.\n"
    "\n"
    "Options:\n"
    "  -p, --period P     the period: YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD, or the\n"
    "                     days FROM..TO (2023-01..2023-11: January to November)\n"
    "                     (required)\n"
    "  -t, --town T       township T's figures (its id, or its name: 高观镇)\n"
    "  -a, --all          every township's and the county's, one column each (the\n"
    "                     catalog's townships; with none listed, those that have\n"
    "                     figures)\n"
    "      --compare      add the same period a year earlier and the change (同比),\n"
    "                     and the period before and the change (环比: the month,\n"
    "                     quarter or day before; a year has 同比 only, a span\n"
    "                     FROM..TO too); with --all, the county's; for a period\n"
    "                     not over yet, as many of its days as have passed (2023\n"
    "                     to 6 December: 1 January to 6 December 2022)\n"
    "  -f, --format F     md (default), csv or xlsx (default from -o's extension)\n"
    "  -o, --output FILE  write FILE (replaced atomically) instead of standard\n"
    "                     output; required for xlsx.  Its extension, .md, .csv or\n"
    "                     .xlsx in any case, gives the format and must agree with\n"
    "                     --format; another (.xls, .txt, none) needs --format\n"
    CLI_OPTS_HELP_TIMEOUT("")
    CLI_OPTS_HELP_SERVER("", "a subscriber's")
    CLI_OPTS_HELP_HELP("")
    "\n"
    "Exit status: 0 written (also a report of zeros when nothing was reported\n"
    "for the period, said on standard error), 1 the daemon refused or the file\n"
    "cannot be written, 2 usage error (bad period, unknown township or format,\n"
    "an -o extension that is not --format's), 3 no answer, 4 internal error.\n";
/* clang-format on */

typedef struct fetch_ctx {
    cli_global_t *g;
    tally_request_t req;
    char err[600];
    const char *const *towns; /* a county too large for one answer: read by these */
    size_t ntowns;
} fetch_ctx_t;

static int fetch(void *ctx, const char *prefix, const cli_span_t *period, tally_tally_cb cb,
                 void *cb_ctx)
{
    fetch_ctx_t *f = ctx;
    return cli_span_fetch(f->g->server, &f->req, prefix, period, f->towns, f->ntowns, NULL, cb,
                          cb_ctx);
}

/* The extension of path's file name: "" for none, and for a name that
 * is nothing but a dot and a word (.md is a hidden file's name). */
static const char *file_ext(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    const char *dot = strrchr(name, '.');
    return dot && dot != name ? dot : "";
}

/* The format path's extension names (.xlsx, .csv, .md, in any case:
 * REPORT.XLSX is a workbook too), or NULL. */
static const char *ext_format(const char *path)
{
    static const char *const formats[] = {"xlsx", "csv", "md"};
    const char *ext = file_ext(path);
    for (size_t i = 0; ext[0] && i < sizeof formats / sizeof formats[0]; i++)
        if (strcasecmp(ext + 1, formats[i]) == 0)
            return formats[i];
    return NULL;
}

/* The format of -o path (NULL: standard output) and --format (NULL: not
 * given) into *out.  A file whose extension names one format written in
 * another would not open, or not as its name says (CSV in a .xlsx); a
 * file whose extension names none gets a format only when --format says
 * which, as the file's name cannot.  0, or CLI_USAGE (said). */
static int choose_format(const char *path, const char *format, const char **out)
{
    const char *ext = path ? ext_format(path) : NULL;
    if (format != NULL && ext != NULL && strcmp(format, ext) != 0)
        return cli_usage_error("report",
                               "--format %s, but -o '%s' is named for %s: name it .%s, or give "
                               "--format %s",
                               format, path, ext, format, ext);
    if (format != NULL || path == NULL) {
        *out = format ? format : "md";
        return 0;
    }
    if (ext != NULL) {
        *out = ext;
        return 0;
    }
    /* Refused rather than written as md: the file would not open as its
     * name says (Markdown in a .xls that Excel is asked to open). */
    const char *e = file_ext(path);
    char why[120];
    if (strcasecmp(e, ".xls") == 0)
        snprintf(why, sizeof why, "tally writes .xlsx workbooks (which Excel opens), not .xls");
    else if (e[0])
        snprintf(why, sizeof why, "'%.40s' is no format's extension", e);
    else
        snprintf(why, sizeof why, "no extension");
    return cli_usage_error("report",
                           "-o '%s': %s; -o takes the format from a .xlsx, .csv or .md extension "
                           "(in any case), else --format md|csv|xlsx chooses it",
                           path, why);
}

/* path's directory into dir ("" for the current one); its file name. */
static const char *split_path(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    snprintf(dir, cap, "%.*s", slash ? (int)(slash - path) : 0, path);
    if (slash == path)
        snprintf(dir, cap, "/");
    return slash ? slash + 1 : path;
}

/* Whether -o path can be written, before the daemon is asked: a name
 * that is a directory, or a directory that is missing or closed to us,
 * is said at once.  CLI_OK or CLI_REJECTED (said). */
static int check_output(const char *path)
{
    char dir[4096];
    const char *name = split_path(path, dir, sizeof(dir));
    const char *why = NULL;
    char buf[4200];
    struct stat st;
    if (name[0] == '\0' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        why = " is a directory: give a file name in it";
    } else if (stat(dir[0] ? dir : ".", &st) != 0) {
        snprintf(buf, sizeof(buf), ": its directory '%s' %s", dir,
                 errno == ENOENT ? "does not exist" : strerror(errno));
        why = buf;
    } else if (!S_ISDIR(st.st_mode)) {
        snprintf(buf, sizeof(buf), ": '%s' is not a directory", dir);
        why = buf;
    } else if (access(dir[0] ? dir : ".", W_OK | X_OK) != 0) {
        snprintf(buf, sizeof(buf), ": cannot write in its directory '%s': %s", dir[0] ? dir : ".",
                 strerror(errno));
        why = buf;
    }
    if (why == NULL)
        return CLI_OK;
    fprintf(stderr, "tally report: -o '%s'%s\n", path, why);
    return CLI_REJECTED;
}

/* Write r in format to out: 0, or TALLY_EIO with a sentence in err. */
static int write_form(const report_t *r, const char *format, FILE *out, char *err, size_t cap)
{
    if (strcmp(format, "xlsx") == 0)
        return report_write_xlsx(r, out, err, cap);
    int rc = strcmp(format, "csv") == 0 ? report_write_csv(r, out) : report_write_md(r, out);
    if (rc == 0 && fflush(out) != 0)
        rc = TALLY_EIO;
    if (rc != 0)
        snprintf(err, cap, "%s", strerror(errno));
    return rc;
}

/* Write the report to path atomically (or to standard output), in every
 * format the same way, so that a bad -o gets one kind of message. */
static int write_report(const report_t *r, const char *format, const char *path)
{
    char why[600];
    if (path == NULL) {
        if (write_form(r, format, stdout, why, sizeof(why)) == 0)
            return CLI_OK;
        cli_error("cannot write the report to standard output: %s", why);
        return CLI_REJECTED;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    int rc = write_form(r, format, m, why, sizeof(why));
    if (fclose(m) != 0 && rc == 0) {
        rc = TALLY_ENOMEM;
        snprintf(why, sizeof(why), "out of memory");
    }
    if (rc != 0) {
        free(buf);
        fprintf(stderr, "tally report: %s\n", why);
        return CLI_INTERNAL;
    }
    char dir[4096], err[512];
    const char *name = split_path(path, dir, sizeof(dir));
    atomic_file_opts_t o = {.mode = 0644};
    rc = atomic_file_write(-1, dir[0] ? dir : NULL, name, buf, len, &o, err, sizeof(err));
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "tally report: -o '%s': %s\n", path, err);
        return CLI_REJECTED;
    }
    return CLI_OK;
}

enum { OPT_COMPARE = CLI_OPT_OWN };

int cli_report(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"period", required_argument, NULL, 'p'},
        {"compare", no_argument, NULL, OPT_COMPARE},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "report", cli_report_usage, g,
                  CLI_OPTS_FILTER | CLI_OPTS_TIMEOUT | CLI_OPTS_SERVER | CLI_OPTS_NO_OPERANDS, own);
    const char *period = NULL, *format = NULL, *out = NULL;
    bool compare = false;
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        switch (c) {
        case 'p':
            period = optarg;
            break;
        case OPT_COMPARE:
            compare = true;
            break;
        case 'f':
            format = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        }
    }
    if (status != CLI_CONTINUE)
        return status;
    if (period == NULL)
        return cli_usage_error("report", "--period is required (e.g. --period 2023)");
    if ((status = cli_span_check("report", "--period", period)) != 0)
        return status;
    if (o.metric != NULL)
        return cli_usage_error("report", "--metric does not apply: a report has every metric");
    if (format != NULL && strcmp(format, "md") != 0 && strcmp(format, "csv") != 0 &&
        strcmp(format, "xlsx") != 0)
        return cli_usage_error("report", "--format '%s' is not md, csv or xlsx", format);
    if (format != NULL && strcmp(format, "xlsx") == 0 && out == NULL)
        return cli_usage_error("report", "--format xlsx needs -o FILE (a workbook is a file)");
    if (out != NULL && out[0] == '\0')
        return cli_usage_error("report", "-o needs a file name");
    /* A directory named by -o is said as such before its extension (-o /
     * has none). */
    if (out != NULL && (status = check_output(out)) != CLI_OK)
        return status;
    if ((status = choose_format(out, format, &format)) != 0)
        return status;
    const tally_curve_t *curve;
    if ((status = cli_curve(g, "report", &curve)) != 0 ||
        (status = cli_opts_resolve(&o, curve, 0)) != 0)
        return status;

    fetch_ctx_t f = {.g = g};
    f.req = cli_request(curve, o.timeout_ms, f.err, sizeof f.err);
    const tally_catalog_t *cat = NULL;
    int rc = cli_catalog(g, &f.req, &cat);
    if (rc == TALLY_ETYPE) {
        fprintf(stderr, "tally report: the daemon does not send its catalog; ids instead of "
                        "labels\n");
    } else if (rc < 0) {
        return cli_request_failed(g, "report", rc, &f.req, o.timeout_ms);
    }
    /* The scopes: one township, every one of the catalog, or the county.
     * A catalog whose list of townships is open (tallyd's built-in one)
     * names none: --all then takes those that have tallies. */
    size_t ntowns = tally_catalog_townships(cat);
    tally_townships_t found = {0};
    if (o.all && ntowns == 0 && (rc = tally_townships_req(g->server, &f.req, &found)) < 0)
        return cli_request_failed(g, "report", rc, &f.req, o.timeout_ms);
    const char **ids = calloc(ntowns + found.n + 1, sizeof(*ids));
    size_t n = 0;
    if (ids == NULL) {
        tally_townships_clear(&found);
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    if (o.town != NULL) {
        if (ntowns > 0 && tally_catalog_find_township(cat, o.town, NULL) == NULL) {
            /* By id or name, in characters: 高观乡 meant 高观镇. */
            const char *s = cli_closest_town(cat, o.town);
            fprintf(stderr,
                    "tally report: --town '%s' is not a township of the daemon's catalog%s%s%s\n",
                    o.town, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
            free(ids);
            tally_townships_clear(&found);
            return CLI_USAGE;
        }
        ids[n++] = o.town;
    } else if (o.all) {
        for (size_t i = 0; i < ntowns; i++)
            ids[n++] = tally_catalog_township(cat, i)->id;
        for (size_t i = 0; i < found.n; i++)
            ids[n++] = found.v[i];
        f.towns = ids;
        f.ntowns = n;
        ids[n++] = "";
    } else {
        ids[n++] = "";
    }
    /* The daemon's today: a period not over yet holds figures up to it
     * only, and is compared with as many days a year earlier. */
    cli_span_t cur, year_ago, prev;
    cli_span_parse(period, &cur); /* checked above */
    bool has_year_ago = false, has_prev = false;
    int32_t today = INT32_MIN;
    rc = cli_daemon_today(g->server, &f.req, &today);
    if (rc < 0) {
        free(ids);
        tally_townships_clear(&found);
        return cli_request_failed(g, "report", rc, &f.req, o.timeout_ms);
    }
    /* 同比 and 环比 as `get --compare` takes them; a year's period before
     * is the year before, 同比, shown once. */
    if (compare)
        cli_span_compare(&cur, today, &prev, &has_prev, &year_ago, &has_year_ago);
    if (has_prev && has_year_ago && strcmp(prev.name, year_ago.name) == 0)
        has_prev = false;
    report_t r;
    rc = report_build(&r, &cur, compare, has_year_ago ? &year_ago : NULL, has_prev ? &prev : NULL,
                      today, ids, n, cat, fetch, &f);
    free(ids);
    tally_townships_clear(&found);
    if (rc == TALLY_EUNKTOWN || rc == TALLY_EBADPERIOD) {
        char hint[PROTO_NAME_MAX * 2 + 64] = "";
        if (rc == TALLY_EUNKTOWN && o.town != NULL)
            (void)cli_name_check(&o, f.req.curve, o.town, true, hint, sizeof hint);
        fprintf(
            stderr, "tally report: %s '%s': %s%s\n", rc == TALLY_EUNKTOWN ? "--town" : "--period",
            rc == TALLY_EUNKTOWN ? o.town : period, f.err[0] ? f.err : tally_strerror(rc), hint);
        report_free(&r);
        return CLI_USAGE;
    }
    if (rc == TALLY_ETYPE) {
        fprintf(stderr,
                "tally report: the daemon at %s is older than this request (PERIOD_REQ for "
                "a period's figures, SPAN_REQ for days FROM..TO and for --compare of a "
                "period not over yet); upgrade tallyd\n",
                g->server);
        report_free(&r);
        return CLI_REJECTED;
    }
    if (rc == TALLY_ENOMEM) {
        report_free(&r);
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    if (rc < 0) {
        report_free(&r);
        return cli_request_failed(g, "report", rc, &f.req, o.timeout_ms);
    }
    if (!r.any_data)
        fprintf(stderr, "tally report: no figures were reported for %s; the report shows zeros\n",
                r.period);
    if (r.year_ago_expired)
        fprintf(stderr,
                "tally report: the days a year earlier (%s) are older than the daemon keeps: "
                "its column is empty\n",
                r.year_ago);
    if (r.before_expired)
        fprintf(stderr,
                "tally report: the days of the period before (%s) are older than the daemon "
                "keeps: its column is empty\n",
                r.before);
    status = write_report(&r, format, out);
    report_free(&r);
    return status;
}
