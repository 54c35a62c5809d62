/* cli_util.c - the tally command (client/cli/): exit codes, option errors
 * with suggestions, input reading, the daemon's address and keys. */
#include "cli_util.h"

#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "text.h"
#include "vec.h"

#define INPUT_FIRST 8192u /* bytes read at first */
#define INPUT_MAX   (64u << 20)

int64_t cli_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hint(const char *cmd)
{
    if (cmd != NULL)
        fprintf(stderr, "Try 'tally %s --help' for more information.\n", cmd);
    else
        fprintf(stderr, "Try 'tally --help' for more information.\n");
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tally%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    hint(cmd);
    return CLI_USAGE;
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("tally: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const struct option *by_val(const struct option *longopts, int val)
{
    for (const struct option *o = longopts; o->name != NULL; o++)
        if (o->val == val)
            return o;
    return NULL;
}

int cli_bad_option(const char *cmd, int c, char *const *argv, const struct option *longopts)
{
    const char *prefix = cmd ? " " : "";
    const char *name = cmd ? cmd : "";
    if (c == ':') {
        const struct option *o = by_val(longopts, optopt);
        if (o != NULL)
            fprintf(stderr, "tally%s%s: option '--%s' needs a value\n", prefix, name, o->name);
        else
            fprintf(stderr, "tally%s%s: option '%s' needs a value\n", prefix, name,
                    argv[optind - 1]);
        hint(cmd);
        return CLI_USAGE;
    }
    if (optopt != 0) {
        fprintf(stderr, "tally%s%s: unknown option '-%c'\n", prefix, name, optopt);
        hint(cmd);
        return CLI_USAGE;
    }
    const char *arg = argv[optind - 1];
    char word[128];
    const char *w = arg;
    while (*w == '-')
        w++;
    size_t wl = strcspn(w, "=");
    text_copy(word, sizeof word, w, wl);
    const char *names[64] = {NULL};
    size_t n = 0;
    for (const struct option *o = longopts; o->name != NULL && n < 64; o++)
        names[n++] = o->name;
    const char *s = cli_suggest(word, names, n);
    /* An exact match of a prefix of several options is getopt's
     * "ambiguous" case: list the ones it could mean. */
    size_t matches = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], word, strlen(word)) == 0)
            matches++;
    char shown[140];
    text_copy(shown, sizeof shown, arg, strcspn(arg, "="));
    if (matches > 1)
        fprintf(stderr, "tally%s%s: option '%s' is ambiguous\n", prefix, name, shown);
    else if (s != NULL)
        fprintf(stderr, "tally%s%s: unknown option '%s' (did you mean '--%s'?)\n", prefix, name,
                shown, s);
    else
        fprintf(stderr, "tally%s%s: unknown option '%s'\n", prefix, name, shown);
    hint(cmd);
    return CLI_USAGE;
}

int cli_read_input(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        text_format(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    size_t cap = 0, n = 0;
    char *b = NULL;
    int rc = 0;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= INPUT_MAX) {
                text_format(err, errlen, "%s is larger than the limit of %u MiB",
                            is_stdin ? "standard input" : path, INPUT_MAX >> 20);
                rc = TALLY_ETOOLARGE;
                break;
            }
            if (VEC_RESERVE(b, cap, cap < INPUT_FIRST ? INPUT_FIRST : 2 * cap) < 0) {
                rc = TALLY_ENOMEM;
                break;
            }
        }
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                text_format(err, errlen, "cannot read %s: %s", is_stdin ? "standard input" : path,
                            strerror(errno));
                rc = TALLY_EIO;
            }
            break;
        }
    }
    if (!is_stdin)
        fclose(f);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int cli_parse_seconds(const char *s, int *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 86400)
        return TALLY_EINVAL;
    *ms = (int)(v * 1000 + 0.5);
    if (*ms == 0)
        *ms = 1;
    return 0;
}

int cli_parse_count(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 2147483647L)
        return TALLY_EINVAL;
    *out = v;
    return 0;
}

int cli_set_server(cli_global_t *g, const char *cmd, const char *source, const char *addr)
{
    char why[256];
    if (tally_endpoint_parse(addr, g->server, sizeof g->server, why, sizeof why) < 0)
        return cli_usage_error(cmd, "%s '%s': %s", source, addr, why);
    return 0;
}

int cli_curve(cli_global_t *g, const char *cmd, const tally_curve_t **out)
{
    *out = NULL;
    bool key = g->server_key != NULL && g->server_key[0] != '\0';
    bool cert = g->cert != NULL && g->cert[0] != '\0';
    if (!key && !cert)
        return 0;
    if (!key)
        return cli_usage_error(cmd, "--cert (or TALLY_CERT) needs the daemon's public key too: "
                                    "--server-key FILE|KEY (or TALLY_SERVER_KEY)");
    if (!cert)
        return cli_usage_error(cmd, "--server-key (or TALLY_SERVER_KEY) needs this client's "
                                    "certificate too: --cert FILE (or TALLY_CERT), the NAME_secret "
                                    "file of `tally keygen NAME`");
    g->curve.server_key = g->server_key;
    g->curve.cert = g->cert;
    char err[1024];
    int rc = tally_curve_check(&g->curve, err, sizeof err);
    if (rc == TALLY_ESYS) {
        cli_error("%s", err);
        return CLI_INTERNAL;
    }
    if (rc < 0)
        return cli_usage_error(cmd, "%s", err);
    *out = &g->curve;
    return 0;
}

int cli_prefix(const char *cmd, const char *metric, const char *town, int all, char *buf,
               size_t cap)
{
    if (metric != NULL && proto_name_check(metric, strlen(metric)) < 0)
        return cli_usage_error(cmd, "--metric '%s' is not a valid metric name", metric);
    if (town != NULL && proto_name_check(town, strlen(town)) < 0)
        return cli_usage_error(cmd, "--town '%s' is not a valid township name", town);
    if (all && town != NULL)
        return cli_usage_error(cmd, "--all and --town exclude each other");
    if (all)
        snprintf(buf, cap, "u/");
    else if (town != NULL)
        snprintf(buf, cap, "u/town/%s/%s%s", town, metric ? metric : "", metric ? "/" : "");
    else
        snprintf(buf, cap, "u/county/%s%s", metric ? metric : "", metric ? "/" : "");
    return 0;
}

bool cli_link_final(int link)
{
    return link == TALLY_LINK_MECHANISM || link == TALLY_LINK_HANDSHAKE ||
           link == TALLY_LINK_KEY_REFUSED;
}

tally_request_t cli_request(const tally_curve_t *curve, int timeout_ms, char *err, size_t err_len)
{
    return (tally_request_t){.curve = curve,
                             .timeout_ms = timeout_ms,
                             .errbuf = err,
                             .errbuf_len = err != NULL ? err_len : 0,
                             .refused_ms = CLI_REFUSED_MS};
}

/* The [security] key directory whose keys may do what command cmd does. */
static const char *key_dir(const char *cmd)
{
    if (cmd != NULL && strcmp(cmd, "push") == 0)
        return "township_keys";
    if (cmd != NULL && strcmp(cmd, "backup") == 0)
        return "admin_keys (to ask for backups)";
    return "subscriber_keys (to read tallies)";
}

int cli_unanswered(const cli_global_t *g, const char *cmd, int link, const char *why,
                   int timeout_ms)
{
    bool curve = g->server_key != NULL && g->server_key[0] != '\0';
    const char *server = g->server;
    double secs = timeout_ms / 1000.0;
    switch (link) {
    case TALLY_LINK_NO_CONNECTION:
        cli_error("cannot reach tallyd at %s: nothing accepts connections there (is tallyd "
                  "running, and is the address right?)",
                  server);
        break;
    case TALLY_LINK_UNREACHABLE:
        if (why == NULL || why[0] == '\0')
            why = "the network does not reach it";
        /* A name the name server does not know is the address's fault. */
        cli_error("cannot reach tallyd at %s: %s; %s", server, why,
                  strstr(why, "does not resolve") != NULL
                      ? "is the address right?"
                      : "is this computer's network link up, and is the address right?");
        break;
    case TALLY_LINK_UP:
        cli_error("no answer from tallyd at %s within %g s: connected, but it did not answer (is "
                  "it overloaded, or at its [limits] max_connections?)",
                  server, secs);
        break;
    case TALLY_LINK_MECHANISM:
    case TALLY_LINK_HANDSHAKE:
        if (!curve && link == TALLY_LINK_MECHANISM)
            cli_error("no answer from tallyd at %s: it requires keys (it speaks CURVE, this "
                      "command spoke plaintext): give --server-key FILE|KEY and --cert FILE, or "
                      "set TALLY_SERVER_KEY and TALLY_CERT",
                      server);
        else if (!curve)
            /* A daemon at its connection limit closes the handshake the
             * same way as one that wants keys (PROTOCOL.md, security). */
            cli_error("no answer from tallyd at %s: it closed the connection during the "
                      "handshake: either it requires keys (then give --server-key FILE|KEY and "
                      "--cert FILE, or set TALLY_SERVER_KEY and TALLY_CERT), or it has as many "
                      "connections as its [limits] max_connections allows (then try again later)",
                      server);
        else if (link == TALLY_LINK_MECHANISM)
            cli_error("no answer from tallyd at %s: it does not use keys (it speaks plaintext): "
                      "drop --server-key and --cert, and unset TALLY_SERVER_KEY and TALLY_CERT",
                      server);
        else
            cli_error("no answer from tallyd at %s: the CURVE handshake failed: check that "
                      "--server-key (or TALLY_SERVER_KEY) is the daemon's public key (or tallyd "
                      "has as many connections as its [limits] max_connections allows: then try "
                      "again later)",
                      server);
        break;
    case TALLY_LINK_KEY_REFUSED:
        cli_error("no answer from tallyd at %s: it does not admit the key of %s: its public key "
                  "must be in tallyd's %s",
                  server, g->cert, key_dir(cmd));
        break;
    default:
        if (curve)
            cli_error("no answer from tallyd at %s within %g s: it is not running, or it does not "
                      "admit the key of %s (a secured tallyd answers unknown keys with silence)",
                      server, secs, g->cert);
        else
            cli_error(
                "no answer from tallyd at %s within %g s (is it running? is it at its [limits] "
                "max_connections?)",
                server, secs);
        break;
    }
    return CLI_UNREACHABLE;
}

int cli_refused(const cli_global_t *g, const char *cmd, int code, const char *message)
{
    fprintf(stderr, "tally%s%s: tallyd at %s answered %s: %s\n", cmd ? " " : "", cmd ? cmd : "",
            g->server, tally_errname(code),
            message != NULL && message[0] != '\0' ? message : tally_strerror(code));
    return CLI_REJECTED;
}

int cli_request_failed(const cli_global_t *g, const char *cmd, int rc, const tally_request_t *req,
                       int timeout_ms)
{
    if (rc == TALLY_ETIMEDOUT || rc == TALLY_ECLOSED)
        return cli_unanswered(g, cmd, req->link, req->errbuf, timeout_ms);
    if (tally_err_is_wire(rc))
        return cli_refused(g, cmd, rc, req->errbuf);
    cli_error("request to %s failed: %s", g->server,
              req->errbuf != NULL && req->errbuf[0] ? req->errbuf : tally_strerror(rc));
    return rc == TALLY_EINVAL ? CLI_USAGE : CLI_INTERNAL;
}

int cli_catalog(cli_global_t *g, tally_request_t *req, const tally_catalog_t **out)
{
    *out = NULL;
    if (g->catalog == NULL) {
        int rc = tally_catalog_req(g->server, req, &g->catalog);
        if (rc < 0)
            return rc;
    }
    *out = g->catalog;
    return 0;
}
