/* web_opts.h - tally-web (web/): its settings, from the command line, an
 * optional configuration file ([web] section, read with inih) and the
 * environment, in that order of precedence.
 */
#ifndef TALLY_WEB_OPTS_H
#define TALLY_WEB_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "tally.h"

/* Exit statuses of tally-web (tally-web(1), EXIT STATUS). */
enum web_exit {
    WEB_EXIT_OK = 0,      /* stopped by SIGTERM or SIGINT, or --help, --version */
    WEB_EXIT_FAILURE = 1, /* could not start: the listening socket, TLS files, memory */
    WEB_EXIT_USAGE = 2,   /* a bad option, configuration file or combination of them */
};

#define WEB_DEFAULT_LISTEN      "127.0.0.1:7480"
#define WEB_DEFAULT_MAX_CLIENTS 256
#define WEB_MAX_CLIENTS_LIMIT   100000
#define WEB_HOST_MAX            256
#define WEB_TOKEN_MIN           16 /* bytes of a --token: a guessable one protects nothing */
#define WEB_TOKEN_MAX           256

typedef struct web_opts {
    /* --listen HOST:PORT, split: host "" means every address. */
    char listen_host[WEB_HOST_MAX];
    int listen_port; /* 0..65535; 0: a free port, which the log names */
    bool loopback;   /* listen_host is a loopback address */
    /* --server, normalized (tally_endpoint_parse). */
    char server[TALLY_ENDPOINT_MAX];
    /* CURVE, as `tally watch`: --server-key, --cert (owned strings or NULL). */
    char *server_key;
    char *cert;
    tally_curve_t curve; /* points into the two above; used when server_key is set */
    char *token;         /* --token: the bearer token; NULL: none */
    char *tls_cert;      /* --tls-cert, --tls-key: PEM files; NULL: plain HTTP */
    char *tls_key;
    bool insecure;        /* --insecure */
    unsigned max_clients; /* --max-clients: WebSocket browsers at once */
    char *config;         /* --config FILE, NULL when none */
} web_opts_t;

/* Fill o from argv, the configuration file it names and the environment
 * ($TALLY_SERVER, $TALLY_SERVER_KEY, $TALLY_CERT, $TALLY_WEB_TOKEN), then
 * check the whole: keys that load, a token of WEB_TOKEN_MIN bytes or
 * more, TLS files given in pairs, and that a non-loopback --listen comes
 * with --token or --insecure.  Returns -1 to go on, or the exit status to
 * end with: WEB_EXIT_OK after --help or --version (printed on stdout),
 * WEB_EXIT_USAGE after printing on stderr a line naming the option or the
 * file, line and key that is wrong.  o must be released with
 * web_opts_free() in both cases. */
int web_opts_parse(web_opts_t *o, int argc, char **argv);

/* Free the strings o owns; o can be parsed again afterwards. */
void web_opts_free(web_opts_t *o);

/* Split "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" into host (cap bytes;
 * "" for every address, from "", "*", "0.0.0.0" or "[::]"...) and *port;
 * *loopback tells whether host is a loopback address (127.0.0.0/8, ::1,
 * localhost).  Returns 0, or TALLY_EINVAL with err (errlen bytes) saying
 * which part is wrong. */
int web_opts_listen(const char *s, char *host, size_t cap, int *port, bool *loopback, char *err,
                    size_t errlen);

#endif
