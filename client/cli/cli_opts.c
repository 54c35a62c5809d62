/* cli_opts.c - the tally command (client/cli/): its options, parsed in
 * one place (see cli_opts.h). */
#include "cli_opts.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

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
