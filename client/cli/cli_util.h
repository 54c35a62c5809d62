/* cli_util.h - the tally command (client/cli/, private): what every
 * subcommand shares, exit codes, option errors with suggestions, input
 * reading, the daemon's address and keys. */
#ifndef TALLY_CLIENT_CLI_UTIL_H
#define TALLY_CLIENT_CLI_UTIL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "suggest.h"
#include "tally.h"

/* Exit codes of the tally command (tally(1), EXIT STATUS). */
enum cli_exit {
    CLI_OK = 0,           /* done */
    CLI_REJECTED = 1,     /* the daemon refused something */
    CLI_USAGE = 2,        /* bad option, argument or input file */
    CLI_UNREACHABLE = 3,  /* no answer from the daemon in time */
    CLI_INTERNAL = 4,     /* local failure: spool, memory, sockets */
    CLI_UNKNOWN_FATE = 5, /* push: earlier figures may or may not have been counted */
};

#define CLI_DEFAULT_TIMEOUT_MS 10000

/* How long a command waits while every attempt to connect is refused
 * (nothing listens at the address) before it says so, rather than
 * waiting out --timeout. */
#define CLI_REFUSED_MS 1000

/* Settings given before the subcommand or through the environment. */
typedef struct cli_global {
    char server[TALLY_ENDPOINT_MAX]; /* normalized */
    const char *server_key;          /* --server-key or $TALLY_SERVER_KEY; NULL: plaintext */
    const char *cert;                /* --cert or $TALLY_CERT */
    tally_curve_t curve;             /* filled by cli_curve */
    tally_catalog_t *catalog;        /* the daemon's, once read (cli_catalog); freed by main */
} cli_global_t;

/* The daemon's catalog, read once per command (CATALOG_REQ) and kept in
 * g: a command that resolves a name and then shows labels asks once.
 * *out is borrowed (NULL on failure).  Returns 0 or the return of
 * tally_catalog_req, which req describes; a failure is not kept, so a
 * later call asks again. */
int cli_catalog(cli_global_t *g, tally_request_t *req, const tally_catalog_t **out);

/* The CURVE keys of g for libtally, checked (files read): *out is NULL
 * without a server key (plaintext), else &g->curve.  A certificate without
 * a server key, a server key without a certificate, or keys that do not
 * load are reported for cmd; returns CLI_USAGE then, else 0. */
int cli_curve(cli_global_t *g, const char *cmd, const tally_curve_t **out);

/* Milliseconds of clock id (CLOCK_MONOTONIC, CLOCK_REALTIME). */
int64_t cli_clock_ms(clockid_t id);

/* "Did you mean" for mistyped commands and options: the command's names
 * for suggest_distance and suggest_pick (proto/suggest.h), where the rules
 * are (at most 2 edits, fewer than the word's length, a prefix counts as
 * one edit). */
static inline size_t cli_edit_distance(const char *a, const char *b)
{
    return suggest_distance(a, b);
}

static inline const char *cli_suggest(const char *word, const char *const *candidates, size_t n)
{
    return suggest_pick(word, candidates, n);
}

/* Print the error for a getopt_long return of '?' or ':' (optstring must
 * start with ':') in command cmd ("push"), with a suggestion for a
 * mistyped long option, and a hint to --help.  Returns CLI_USAGE. */
int cli_bad_option(const char *cmd, int c, char *const *argv, const struct option *longopts);

/* Print "tally CMD: <message>" and the hint to --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "tally: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Read a whole file ("-" = standard input) into a malloc'ed, NUL-terminated
 * buffer.  0; TALLY_EIO (err names the file and why); TALLY_ETOOLARGE
 * (more than 64 MiB); TALLY_ENOMEM. */
int cli_read_input(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* Parse seconds ("10", "0.5") into milliseconds (> 0, at most a day).
 * 0 or TALLY_EINVAL. */
int cli_parse_seconds(const char *s, int *ms);

/* Parse a count (1 .. 2^31-1).  0 or TALLY_EINVAL. */
int cli_parse_count(const char *s, long *out);

/* Check and normalize the server address addr, given by source
 * ("--server", "TALLY_SERVER"), into g->server; on failure print for cmd
 * an error naming source, addr and what is wrong, and return CLI_USAGE,
 * else 0. */
int cli_set_server(cli_global_t *g, const char *cmd, const char *source, const char *addr);

/* The topic prefix of `get`/`watch` filters: county-wide "u/county/[M/]",
 * one township "u/town/T/[M/]", or everything "u/" when all is set (the
 * metric is then filtered by the caller).  Checks the names; on failure
 * prints an error for cmd and returns CLI_USAGE, else 0. */
int cli_prefix(const char *cmd, const char *metric, const char *town, int all, char *buf,
               size_t cap);

/* True for what the connection shows when no answer can come through
 * it: a failed security handshake (enum tally_link). */
bool cli_link_final(int link);

/* The options of a one-shot request of a command: curve (NULL:
 * plaintext), timeout_ms, and err (may be NULL) of err_len bytes for why
 * it failed; it gives up after CLI_REFUSED_MS of refused connections. */
tally_request_t cli_request(const tally_curve_t *curve, int timeout_ms, char *err, size_t err_len);

/* Print, for command cmd, that tallyd at g->server gave no answer within
 * timeout_ms, and why as far as link (enum tally_link: what the
 * connection showed) tells: nothing listens there, the network does not
 * reach it (why: the library's clause, tally_client_link_why), it needs
 * keys, it does not use them, it refuses the key, or it is silent.
 * Returns CLI_UNREACHABLE. */
int cli_unanswered(const cli_global_t *g, const char *cmd, int link, const char *why,
                   int timeout_ms);

/* Print "tally CMD: tallyd at SERVER answered NAME: message" for the
 * daemon's refusal code (a negative wire code) and its words (NULL or "":
 * the code's description).  Returns CLI_REJECTED. */
int cli_refused(const cli_global_t *g, const char *cmd, int code, const char *message);

/* Report a failed tally_get_req/tally_stats_req of command cmd: prints why
 * and returns the exit status (3 no answer, 1 when the daemon refused, 2
 * for a bad argument, 4 otherwise). */
int cli_request_failed(const cli_global_t *g, const char *cmd, int rc, const tally_request_t *req,
                       int timeout_ms);

#endif
