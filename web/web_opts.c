/* web_opts.c - tally-web (web/): the command line, the configuration file
 * and the environment, merged into one web_opts_t. */
#include "web_opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto.h"
#include "suggest.h"
#include "web_log.h"

/* clang-format off */
static const char usage[] =
    "Usage: tally-web [OPTIONS]\n"
    "\n"
    "Serve the county's live tallies to browsers: a wall display at /, the JSON\n"
    "API /api/v1/tallies?prefix=P, the WebSocket /api/v1/stream, /healthz and\n"
    "Prometheus metrics at /metrics.  tally-web follows tallyd as a subscriber\n"
    "(snapshot, then sequenced updates, re-synchronised after gaps and restarts).\n"
    "\n"
    "Options:\n"
    "  -l, --listen ADDR     HOST:PORT to serve HTTP on (default " WEB_DEFAULT_LISTEN ");\n"
    "                        a host other than loopback needs --token or --insecure\n"
    "  -s, --server ADDR     tallyd's request address (default: $TALLY_SERVER, else\n"
    "                        tcp://127.0.0.1:7411)\n"
    "      --server-key K    the secured daemon's public key: a certificate FILE or\n"
    "                        its 40-character Z85 KEY (default: $TALLY_SERVER_KEY)\n"
    "      --cert FILE       a subscriber's secret certificate (NAME_secret of\n"
    "                        `tally keygen NAME`; default: $TALLY_CERT)\n"
    "      --token TOKEN     require this bearer token (at least 16 bytes) from\n"
    "                        browsers and scrapers (default: $TALLY_WEB_TOKEN)\n"
    "      --tls-cert FILE   serve HTTPS with this PEM certificate (chain)\n"
    "      --tls-key FILE    and this PEM private key\n"
    "      --insecure        allow a non-loopback --listen without --token\n"
    "      --max-clients N   WebSocket browsers at once (default 256); more get 503\n"
    "  -c, --config FILE     read settings from FILE's [web] section (keys: listen,\n"
    "                        server, server_key, cert, token, tls_cert, tls_key,\n"
    "                        insecure, max_clients); options given here win\n"
    "  -h, --help            show this help\n"
    "  -V, --version         print the version and exit\n"
    "\n"
    "Exit status: 0 stopped by SIGTERM or SIGINT, 1 could not start, 2 usage or\n"
    "configuration error.\n";
/* clang-format on */

enum {
    OPT_SERVER_KEY = 0x100,
    OPT_CERT,
    OPT_TOKEN,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_INSECURE,
    OPT_MAX_CLIENTS,
};

static const struct option longopts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"server", required_argument, NULL, 's'},
    {"server-key", required_argument, NULL, OPT_SERVER_KEY},
    {"cert", required_argument, NULL, OPT_CERT},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};
static const char shortopts[] = ":l:s:c:hV";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    web_vlog(WEB_LOG_ERR, fmt, ap);
    va_end(ap);
    web_log_more(WEB_LOG_ERR, "Try 'tally-web --help'.");
}

static int set_string(char **dst, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return TALLY_ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

int web_opts_listen(const char *s, char *host, size_t cap, int *port, bool *loopback, char *err,
                    size_t errlen)
{
    const char *port_text = s;
    size_t hlen = 0;
    const char *h = "";
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "'%s': an IPv6 host is written [ADDRESS]:PORT", s);
            return TALLY_EINVAL;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        port_text = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon != NULL) {
            if (strchr(s, ':') != colon) {
                snprintf(err, errlen, "'%s': write an IPv6 host as [ADDRESS]:PORT", s);
                return TALLY_EINVAL;
            }
            h = s;
            hlen = (size_t)(colon - s);
            port_text = colon + 1;
        }
    }
    char *end;
    errno = 0;
    long p = strtol(port_text, &end, 10);
    if (port_text[0] == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535) {
        snprintf(err, errlen, "the port '%s' is not a number from 0 to 65535", port_text);
        return TALLY_EINVAL;
    }
    if (hlen + 1 > cap) {
        snprintf(err, errlen, "the host of '%s' is longer than %zu bytes", s, cap - 1);
        return TALLY_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        host[0] = '\0';
    *port = (int)p;
    *loopback = host[0] != '\0' && is_loopback(host);
    return 0;
}

static int parse_max_clients(const char *s, unsigned *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < 1 || v > WEB_MAX_CLIENTS_LIMIT) {
        snprintf(err, errlen, "'%s' is not a number from 1 to %d", s, WEB_MAX_CLIENTS_LIMIT);
        return TALLY_EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return 0;
    }
    return TALLY_EINVAL;
}

/* The settings as given, before they are checked together. */
typedef struct raw {
    char *listen, *server;
    bool insecure_set;
} raw_t;

/* One setting, by its long option's name, from the command line, the
 * configuration file or the environment.  err receives why a value is
 * bad, without the setting's name, which the caller knows how to say. */
static int apply(web_opts_t *o, raw_t *r, const char *name, const char *value, char *err,
                 size_t errlen)
{
    int rc = 0;
    if (strcmp(name, "listen") == 0) {
        rc = set_string(&r->listen, value);
    } else if (strcmp(name, "server") == 0) {
        rc = set_string(&r->server, value);
    } else if (strcmp(name, "server-key") == 0) {
        rc = set_string(&o->server_key, value);
    } else if (strcmp(name, "cert") == 0) {
        rc = set_string(&o->cert, value);
    } else if (strcmp(name, "token") == 0) {
        rc = set_string(&o->token, value);
    } else if (strcmp(name, "tls-cert") == 0) {
        rc = set_string(&o->tls_cert, value);
    } else if (strcmp(name, "tls-key") == 0) {
        rc = set_string(&o->tls_key, value);
    } else if (strcmp(name, "insecure") == 0) {
        if (parse_bool(value, &o->insecure) != 0) {
            snprintf(err, errlen, "'%s' is not yes or no", value);
            return TALLY_EINVAL;
        }
    } else if (strcmp(name, "max-clients") == 0) {
        return parse_max_clients(value, &o->max_clients, err, errlen);
    } else {
        snprintf(err, errlen, "unknown setting");
        return TALLY_ENOTFOUND;
    }
    if (rc == TALLY_ENOMEM)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* The keys of the configuration file: the long options, with '_'. */
static const char *const config_keys[] = {"listen",  "server",   "server_key",
                                          "cert",    "token",    "tls_cert",
                                          "tls_key", "insecure", "max_clients"};

typedef struct config_ctx {
    web_opts_t *o;
    raw_t *r;
    FILE *f;
    int lineno; /* of the line inih read last */
    char err[512];
    bool failed;
    bool token; /* [web] has a token */
} config_ctx_t;

/* inih's reader: fgets, counting lines for the messages. */
static char *next_line(char *str, int num, void *stream)
{
    config_ctx_t *c = stream;
    char *line = fgets(str, num, c->f);
    if (line != NULL)
        c->lineno++;
    return line;
}

static int on_config_key(void *user, const char *section, const char *key, const char *value)
{
    config_ctx_t *c = user;
    int lineno = c->lineno;
    if (c->failed)
        return 0;
    if (strcmp(section, "web") != 0)
        return 1; /* other programs' sections (a shared file) are theirs */
    if (strcmp(key, "token") == 0)
        c->token = true;
    char name[64];
    snprintf(name, sizeof name, "%s", key);
    for (char *p = name; *p; p++)
        if (*p == '_')
            *p = '-';
    char why[256];
    int rc = strchr(key, '-') ? TALLY_ENOTFOUND : apply(c->o, c->r, name, value, why, sizeof why);
    if (rc == TALLY_ENOTFOUND) {
        const char *near =
            suggest_pick(key, config_keys, sizeof config_keys / sizeof config_keys[0]);
        snprintf(c->err, sizeof c->err, "%s:%d: [web] has no key '%s'%s%s%s", c->o->config, lineno,
                 key, near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    } else if (rc != 0) {
        snprintf(c->err, sizeof c->err, "%s:%d: %s: %s", c->o->config, lineno, key, why);
    }
    if (rc != 0) {
        c->failed = true;
        return 0;
    }
    return 1;
}

static int load_config(web_opts_t *o, raw_t *r)
{
    FILE *f = fopen(o->config, "r");
    if (f == NULL) {
        usage_error("cannot read the configuration file '%s': %s", o->config, strerror(errno));
        return WEB_EXIT_USAGE;
    }
    config_ctx_t c = {.o = o, .r = r, .f = f};
    int rc = ini_parse_stream(next_line, &c, on_config_key, &c);
    struct stat st;
    bool others = fstat(fileno(f), &st) == 0 && (st.st_mode & 0007) != 0;
    fclose(f);
    if (c.failed) {
        usage_error("%s", c.err);
        return WEB_EXIT_USAGE;
    }
    if (rc != 0) {
        usage_error("%s:%d: not a line of an INI file ([section] or key = value)", o->config, rc);
        return WEB_EXIT_USAGE;
    }
    /* Anyone who reads the token has the figures and the stream: refused,
     * as tallyd refuses a secret key that other users can read. */
    if (c.token && others) {
        usage_error("%s: mode %04o lets other users read the token; chmod o-rwx %s (0600, or "
                    "0640 with tally-web's group)",
                    o->config, (unsigned)(st.st_mode & 07777), o->config);
        return WEB_EXIT_USAGE;
    }
    return -1;
}

static int bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':') {
        usage_error("option '%s' needs a value", arg);
        return WEB_EXIT_USAGE;
    }
    if (optopt != 0 && optopt < 0x100) {
        usage_error("unknown option '-%c'", optopt);
        return WEB_EXIT_USAGE;
    }
    char word[SUGGEST_WORD_MAX + 1];
    const char *w = arg[0] == '-' && arg[1] == '-' ? arg + 2 : arg;
    snprintf(word, sizeof word, "%.*s", (int)strcspn(w, "="), w);
    const char *names[sizeof longopts / sizeof longopts[0]];
    size_t n = 0;
    for (const struct option *lo = longopts; lo->name != NULL; lo++)
        names[n++] = lo->name;
    const char *near = suggest_pick(word, names, n);
    if (near != NULL)
        usage_error("unknown option '%s' (did you mean '--%s'?)", arg, near);
    else
        usage_error("unknown option '%s'", arg);
    return WEB_EXIT_USAGE;
}

static const char *long_name(int c)
{
    for (const struct option *lo = longopts; lo->name != NULL; lo++)
        if (lo->val == c)
            return lo->name;
    return "?";
}

/* First pass: --help, --version and --config, which decide what is read before the
 * other options are applied over it. */
static int first_pass(web_opts_t *o, int argc, char **argv)
{
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return WEB_EXIT_OK;
        }
        if (c == 'V') {
            /* tallyd's version (the project's), and the protocol spoken. */
            printf("tally-web %s (protocol %d)\n", TALLY_VERSION, PROTO_VERSION);
            return WEB_EXIT_OK;
        }
        if (c == '?' || c == ':')
            return bad_option(c, argv);
        if (c == 'c' && set_string(&o->config, optarg) != 0)
            return WEB_EXIT_FAILURE;
    }
    if (optind < argc) {
        usage_error("unexpected argument '%s': tally-web takes only options", argv[optind]);
        return WEB_EXIT_USAGE;
    }
    return -1;
}

static int second_pass(web_opts_t *o, raw_t *r, int argc, char **argv)
{
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == 'c')
            continue;
        char why[256];
        const char *name = long_name(c);
        int rc = apply(o, r, name, c == OPT_INSECURE ? "yes" : optarg, why, sizeof why);
        if (rc != 0) {
            usage_error("--%s: %s", name, why);
            return WEB_EXIT_USAGE;
        }
    }
    return -1;
}

static int from_env(web_opts_t *o, raw_t *r)
{
    static const char *const vars[][2] = {{"TALLY_SERVER", "server"},
                                          {"TALLY_SERVER_KEY", "server-key"},
                                          {"TALLY_CERT", "cert"},
                                          {"TALLY_WEB_TOKEN", "token"}};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i][0]);
        char why[64];
        if (v != NULL && v[0] != '\0' && apply(o, r, vars[i][1], v, why, sizeof why) != 0)
            return WEB_EXIT_FAILURE;
    }
    return -1;
}

/* The settings checked together, once all are known. */
static int check(web_opts_t *o, raw_t *r)
{
    char err[512];
    if (web_opts_listen(r->listen ? r->listen : WEB_DEFAULT_LISTEN, o->listen_host,
                        sizeof o->listen_host, &o->listen_port, &o->loopback, err,
                        sizeof err) != 0) {
        usage_error("--listen: %s", err);
        return WEB_EXIT_USAGE;
    }
    if (tally_endpoint_parse(r->server ? r->server : TALLY_DEFAULT_SERVER, o->server,
                             sizeof o->server, err, sizeof err) != 0) {
        usage_error("--server '%s': %s", r->server, err);
        return WEB_EXIT_USAGE;
    }
    if (o->cert != NULL && o->server_key == NULL) {
        usage_error("--cert needs --server-key (the daemon's public key)");
        return WEB_EXIT_USAGE;
    }
    if (o->server_key != NULL) {
        o->curve.server_key = o->server_key;
        o->curve.cert = o->cert;
        if (o->cert == NULL) {
            usage_error("--server-key needs --cert (this subscriber's secret certificate)");
            return WEB_EXIT_USAGE;
        }
        if (tally_curve_check(&o->curve, err, sizeof err) != 0) {
            usage_error("%s", err);
            return WEB_EXIT_USAGE;
        }
    }
    if (o->token != NULL) {
        size_t n = strlen(o->token);
        if (n < WEB_TOKEN_MIN || n > WEB_TOKEN_MAX) {
            usage_error("--token: %zu bytes; a token has %d to %d", n, WEB_TOKEN_MIN,
                        WEB_TOKEN_MAX);
            return WEB_EXIT_USAGE;
        }
        for (const char *p = o->token; *p; p++) {
            if (*p <= ' ' || *p > '~' || *p == ';' || *p == ',' || *p == '"' || *p == '\\') {
                usage_error("--token: only printable ASCII without spaces, ';', ',', '\"' "
                            "or '\\' (the token travels in a header and a cookie)");
                return WEB_EXIT_USAGE;
            }
        }
    }
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
        usage_error("%s",
                    o->tls_cert ? "--tls-cert needs --tls-key" : "--tls-key needs --tls-cert");
        return WEB_EXIT_USAGE;
    }
    if (!o->loopback && o->token == NULL && !o->insecure) {
        usage_error("--listen '%s' is reachable from other machines: give --token (browsers "
                    "then log in, scrapers send 'Authorization: Bearer TOKEN') or --insecure",
                    r->listen);
        return WEB_EXIT_USAGE;
    }
    return -1;
}

int web_opts_parse(web_opts_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->max_clients = WEB_DEFAULT_MAX_CLIENTS;
    raw_t r = {0};
    int status = first_pass(o, argc, argv);
    if (status == -1)
        status = from_env(o, &r);
    if (status == -1 && o->config != NULL)
        status = load_config(o, &r);
    if (status == -1)
        status = second_pass(o, &r, argc, argv);
    if (status == -1)
        status = check(o, &r);
    free(r.listen);
    free(r.server);
    return status;
}

void web_opts_free(web_opts_t *o)
{
    free(o->server_key);
    free(o->cert);
    free(o->token);
    free(o->tls_cert);
    free(o->tls_key);
    free(o->config);
    memset(o, 0, sizeof *o);
}
