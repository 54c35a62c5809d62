/* cli_opts.c - the tally command (client/cli/): its options, parsed in
 * one place (see cli_opts.h). */
#include "cli_opts.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_names.h"

typedef struct shared {
    unsigned group; /* 0: always */
    struct option opt;
} shared_t;

/* In the order of the table: shared[0 .. FIRST_LATE) come before the
 * subcommand's own options, the rest after them. */
static const shared_t shared[] = {
    {CLI_OPTS_FILTER, {"metric", required_argument, NULL, 'm'}},
    {CLI_OPTS_FILTER, {"town", required_argument, NULL, 't'}},
    {CLI_OPTS_FILTER, {"all", no_argument, NULL, 'a'}},
    {CLI_OPTS_JSON, {"json", no_argument, NULL, 'j'}},
    {CLI_OPTS_LABELS, {"labels", no_argument, NULL, CLI_OPT_LABELS}},
    {CLI_OPTS_LABELS, {"no-labels", no_argument, NULL, CLI_OPT_NO_LABELS}},
    {CLI_OPTS_TIMEOUT, {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT}},
    {CLI_OPTS_SERVER, {"server", required_argument, NULL, 's'}},
    {CLI_OPTS_SERVER, {"server-key", required_argument, NULL, CLI_OPT_SERVER_KEY}},
    {CLI_OPTS_SERVER, {"cert", required_argument, NULL, CLI_OPT_CERT}},
    {0, {"help", no_argument, NULL, 'h'}},
};
#define NSHARED    (sizeof shared / sizeof shared[0])
#define FIRST_LATE 6 /* --timeout */

static bool is_taken(const cli_opts_t *o, const shared_t *s)
{
    return s->group == 0 || (o->groups & s->group) != 0;
}

/* Append one option to the long table and, when its value is a letter,
 * to the short ones. */
static void add(cli_opts_t *o, size_t *n, size_t *ns, const struct option *opt)
{
    assert(*n < CLI_OPTS_MAX);
    for (size_t i = 0; i < *n; i++)
        assert(o->longopts[i].val != opt->val); /* one value, one option */
    o->longopts[(*n)++] = *opt;
    if (opt->val > ' ' && opt->val < 0x7F) {
        o->shortopts[(*ns)++] = (char)opt->val;
        if (opt->has_arg == required_argument)
            o->shortopts[(*ns)++] = ':';
    }
}

void cli_opts_init(cli_opts_t *o, const char *cmd, const char *usage, cli_global_t *g,
                   unsigned groups, const struct option *own)
{
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    o->usage = usage;
    o->g = g;
    o->groups = groups;
    o->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
    o->labels = -1;
    size_t n = 0, ns = 0;
    /* '+' before the subcommand: its options are its own.  ':' reports a
     * missing value apart from an unknown option. */
    if (cmd == NULL)
        o->shortopts[ns++] = '+';
    o->shortopts[ns++] = ':';
    for (size_t i = 0; i < FIRST_LATE; i++)
        if (is_taken(o, &shared[i]))
            add(o, &n, &ns, &shared[i].opt);
    for (const struct option *p = own; p != NULL && p->name != NULL; p++)
        add(o, &n, &ns, p);
    for (size_t i = FIRST_LATE; i < NSHARED; i++)
        if (is_taken(o, &shared[i]))
            add(o, &n, &ns, &shared[i].opt);
    o->shortopts[ns] = '\0';
    opterr = 0;
}

/* The shared option of value c that o takes, or NULL: c is then the
 * subcommand's own (or getopt's '?' or ':'). */
static const shared_t *find_shared(const cli_opts_t *o, int c)
{
    for (size_t i = 0; i < NSHARED; i++)
        if (shared[i].opt.val == c && is_taken(o, &shared[i]))
            return &shared[i];
    return NULL;
}

/* Act on shared option c.  CLI_CONTINUE, or an exit status. */
static int handle(cli_opts_t *o, int c)
{
    switch (c) {
    /* One of each: a second one silently replaced the first (tally get
     * -m a -m b showed b alone). */
    case 'm':
        if (o->metric != NULL && strcmp(o->metric, optarg) != 0)
            return cli_usage_error(o->cmd,
                                   "--metric given twice ('%s', '%s'): one metric at a time "
                                   "(--all shows every metric)",
                                   o->metric, optarg);
        o->metric = optarg;
        break;
    case 't':
        if (o->town != NULL && strcmp(o->town, optarg) != 0)
            return cli_usage_error(o->cmd,
                                   "--town given twice ('%s', '%s'): one township at a time "
                                   "(--all shows every township)",
                                   o->town, optarg);
        o->town = optarg;
        break;
    case 'a':
        o->all = true;
        break;
    case 'j':
        o->json = true;
        break;
    case CLI_OPT_LABELS:
        o->labels = 1;
        break;
    case CLI_OPT_NO_LABELS:
        o->labels = 0;
        break;
    case CLI_OPT_TIMEOUT:
        if (cli_parse_seconds(optarg, &o->timeout_ms) < 0)
            return cli_usage_error(o->cmd, "--timeout '%s' is not a number of seconds > 0", optarg);
        break;
    case 's':
        if (cli_set_server(o->g, o->cmd, "--server", optarg) != 0)
            return CLI_USAGE;
        break;
    case CLI_OPT_SERVER_KEY:
        o->g->server_key = optarg;
        break;
    case CLI_OPT_CERT:
        o->g->cert = optarg;
        break;
    case 'h':
        fputs(o->usage, stdout);
        return CLI_OK;
    }
    return CLI_CONTINUE;
}

/* The options have ended: check what follows them and the filter. */
static int finish(cli_opts_t *o, int argc, char **argv)
{
    if ((o->groups & CLI_OPTS_NO_OPERANDS) && optind < argc)
        return cli_usage_error(o->cmd, "unexpected argument '%s'", argv[optind]);
    if ((o->groups & CLI_OPTS_FILTER) &&
        cli_prefix(o->cmd, o->metric, o->town, o->all, o->prefix, sizeof o->prefix) != 0)
        return CLI_USAGE;
    return CLI_CONTINUE;
}

int cli_opts_next(cli_opts_t *o, int argc, char **argv, int *opt)
{
    for (;;) {
        int c = getopt_long(argc, argv, o->shortopts, o->longopts, NULL);
        *opt = c;
        if (c == -1)
            return finish(o, argc, argv);
        if (c == '?' || c == ':')
            return cli_bad_option(o->cmd, c, argv, o->longopts);
        if (find_shared(o, c) == NULL)
            return CLI_CONTINUE; /* the subcommand's own */
        int status = handle(o, c);
        if (status != CLI_CONTINUE)
            return status;
    }
}

int cli_opts_parse(cli_opts_t *o, int argc, char **argv)
{
    int opt, status;
    while ((status = cli_opts_next(o, argc, argv, &opt)) == CLI_CONTINUE && opt != -1)
        assert(!"an option of the subcommand's own, which it said it has none of");
    return status;
}

bool cli_beyond_ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

static void township_text(const tally_catalog_t *c, size_t i, const char **id, const char **text)
{
    const tally_township_info_t *t = tally_catalog_township(c, i);
    *id = t->id;
    *text = t->name;
}

static void metric_text(const tally_catalog_t *c, size_t i, const char **id, const char **text)
{
    const tally_metric_info_t *m = tally_catalog_metric(c, i);
    *id = m->id;
    *text = m->label;
}

const char *cli_catalog_id(const char *name, const tally_catalog_t *cat, bool township)
{
    size_t n = township ? tally_catalog_townships(cat) : tally_catalog_metrics(cat);
    void (*get)(const tally_catalog_t *, size_t, const char **, const char **) =
        township ? township_text : metric_text;
    const char *found = NULL;
    bool twice = false;
    for (size_t i = 0; i < n; i++) {
        const char *id, *text;
        get(cat, i, &id, &text);
        if (strcmp(id, name) == 0)
            return NULL;
        if (strcmp(text, name) == 0) {
            twice = found != NULL;
            found = id;
        }
    }
    return twice ? NULL : found;
}

/* The distinct names of the tallies walked (a metric's or township's,
 * as name_of says), at most NAMES_MAX. */
#define NAMES_MAX 512
typedef struct names {
    char *v[NAMES_MAX];
    size_t n;
} names_t;

static void add_metric(void *ctx, const tally_tally_t *t)
{
    names_t *nm = ctx;
    for (size_t i = 0; i < nm->n; i++)
        if (strcmp(nm->v[i], t->metric) == 0)
            return;
    if (nm->n < NAMES_MAX && (nm->v[nm->n] = strdup(t->metric)) != NULL)
        nm->n++;
}

/* The names with tallies at the daemon now, the townships (TOWNSHIPS_REQ)
 * or the county's metrics (a snapshot of u/county/), hold name?  Unless
 * they do, and unless hint holds one already, the closest of them into
 * hint.  true when they do or cannot be read. */
static bool by_tallies(const cli_opts_t *o, const tally_curve_t *curve, const char *name,
                       bool township, char *hint, size_t cap)
{
    tally_request_t req = cli_request(curve, o->timeout_ms, NULL, 0);
    names_t nm = {.n = 0};
    tally_townships_t l = {0};
    const char *const *v = NULL;
    size_t n = 0;
    if (township && tally_townships_req(o->g->server, &req, &l) == 0)
        v = (const char *const *)l.v, n = l.n;
    else if (!township &&
             tally_get_req(o->g->server, &req, "u/county/", add_metric, &nm, NULL, NULL) == 0)
        v = (const char *const *)nm.v, n = nm.n;
    size_t i = 0;
    while (v != NULL && i < n && strcmp(v[i], name) != 0)
        i++;
    bool found = v == NULL || i < n;
    const char *s = found || hint[0] != '\0' ? NULL : cli_suggest(name, v, n);
    if (s != NULL)
        snprintf(hint, cap, " (did you mean '%s'?)", s);
    for (i = 0; i < nm.n; i++)
        free(nm.v[i]);
    tally_townships_clear(&l);
    return found;
}

/* Is name an id or label (display name) of the catalog's list?  Unless
 * it is, the closest of them into hint. */
static bool in_list(const tally_catalog_t *cat, const char *name, bool township, char *hint,
                    size_t cap)
{
    size_t n = township ? tally_catalog_townships(cat) : tally_catalog_metrics(cat);
    void (*get)(const tally_catalog_t *, size_t, const char **, const char **) =
        township ? township_text : metric_text;
    const char **cand = malloc(2 * n * sizeof *cand + 1);
    if (cand == NULL)
        return true;
    for (size_t i = 0; i < n; i++) {
        get(cat, i, &cand[2 * i], &cand[2 * i + 1]);
        if (strcmp(cand[2 * i], name) == 0 || strcmp(cand[2 * i + 1], name) == 0) {
            free(cand);
            return true;
        }
    }
    size_t best = cli_closest(name, cand, 2 * n);
    if (best != SIZE_MAX && best % 2 == 1 && !township)
        snprintf(hint, cap, " (did you mean '%s', id %s?)", cand[best], cand[best - 1]);
    else if (best != SIZE_MAX)
        snprintf(hint, cap, " (did you mean '%s'?)", cand[best]);
    free(cand);
    return false;
}

cli_name_t cli_name_check(const cli_opts_t *o, const tally_curve_t *curve, const char *name,
                          bool township, char *hint, size_t cap)
{
    hint[0] = '\0';
    tally_request_t req = cli_request(curve, o->timeout_ms, NULL, 0);
    const tally_catalog_t *cat = NULL;
    if (cli_catalog(o->g, &req, &cat) != 0) /* a daemon that sends none */
        return by_tallies(o, curve, name, township, hint, cap) ? CLI_NAME_KNOWN
                                                               : CLI_NAME_NO_TALLIES;
    /* A township list that names any is closed (it lists the townships
     * it no longer declares as well); a metric list may name some and be
     * open (tallyd's built-in one), or leave out a metric removed that
     * has tallies: those are asked for. */
    if (township && tally_catalog_townships(cat) > 0)
        return in_list(cat, name, true, hint, cap) ? CLI_NAME_KNOWN : CLI_NAME_NOT_LISTED;
    if (township)
        return by_tallies(o, curve, name, true, hint, cap) ? CLI_NAME_KNOWN : CLI_NAME_NO_TALLIES;
    if (in_list(cat, name, false, hint, cap) || by_tallies(o, curve, name, false, hint, cap))
        return CLI_NAME_KNOWN;
    return CLI_NAME_NOT_LISTED;
}

int cli_opts_resolve(cli_opts_t *o, const tally_curve_t *curve, int patient_ms)
{
    bool town = o->town != NULL && cli_beyond_ascii(o->town),
         metric = o->metric != NULL && cli_beyond_ascii(o->metric);
    if (!town && !metric)
        return 0;
    char err[600];
    tally_request_t req =
        cli_request(curve, patient_ms > 0 ? patient_ms : o->timeout_ms, err, sizeof err);
    const tally_catalog_t *cat = NULL;
    int rc = cli_catalog(o->g, &req, &cat);
    if (rc == TALLY_ETYPE || (rc < 0 && patient_ms > 0))
        return 0; /* a daemon older than the catalog, or one not up yet */
    if (rc < 0)   /* said now: the request that follows would wait as long again */
        return cli_request_failed(o->g, o->cmd, rc, &req, o->timeout_ms);
    const char *id;
    if (town && (id = cli_catalog_id(o->town, cat, true)) != NULL) {
        snprintf(o->town_id, sizeof o->town_id, "%s", id);
        o->town = o->town_id;
    }
    if (metric && (id = cli_catalog_id(o->metric, cat, false)) != NULL) {
        snprintf(o->metric_id, sizeof o->metric_id, "%s", id);
        o->metric = o->metric_id;
    }
    if (o->groups & CLI_OPTS_FILTER)
        return cli_prefix(o->cmd, o->metric, o->town, o->all, o->prefix, sizeof o->prefix);
    return 0;
}
