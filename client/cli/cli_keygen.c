/* cli_keygen.c - the tally command (client/cli/): `tally keygen`, a CURVE
 * key pair as two ZeroMQ certificate files, the format czmq's zcert and
 * tallyd read. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "atomic_file.h"
#include "cli.h"
#include "cli_opts.h"

#define Z85_KEY_LEN 40

const char cli_keygen_usage[] =
    "Usage: tally keygen [--out DIR] NAME\n"
    "\n"
    "Create a CURVE key pair for a secured tallyd and write it as two ZeroMQ\n"
    "certificates: NAME holds the public key, NAME_secret both keys (mode 0600).\n"
    "Prints the public key (40 characters of Z85).  Never overwrites a file.\n"
    "\n"
    "  tally keygen --out keys server.key    the daemon's pair: server_secret_key =\n"
    "                                         keys/server.key_secret\n"
    "  tally keygen gaoguan.key              a township's pair: gaoguan.key goes into\n"
    "                                         tallyd's township_keys directory\n"
    "  tally keygen screen.key               a subscriber's pair (reads, watches):\n"
    "                                         screen.key goes into subscriber_keys\n"
    "  tally keygen ops.key                  an operator's pair, for `tally backup`:\n"
    "                                         ops.key goes into admin_keys\n"
    "\n"
    "Options:\n"
    "  -o, --out DIR  write the files into DIR (default: the current directory)\n"
    "  -h, --help     show this help\n";

/* The certificate text, as zcert_save writes it: comments, an empty
 * metadata section, and the keys indented by 4 spaces.  *len gets its
 * length.  0, or TALLY_ETOOLONG when cap is too small. */
static int format_cert(char *buf, size_t cap, const char *pub, const char *sec, size_t *len)
{
    char when[64] = "?";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    int n;
    if (sec != NULL)
        n = snprintf(buf, cap,
                     "#   ****  Generated on %s by tally keygen  ****\n"
                     "#   ZeroMQ CURVE **Secret** Certificate\n"
                     "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
                     "\n"
                     "metadata\n"
                     "curve\n"
                     "    public-key = \"%s\"\n"
                     "    secret-key = \"%s\"\n",
                     when, pub, sec);
    else
        n = snprintf(buf, cap,
                     "#   ****  Generated on %s by tally keygen  ****\n"
                     "#   ZeroMQ CURVE Public Certificate\n"
                     "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                     "#   of this file after exchange.\n"
                     "\n"
                     "metadata\n"
                     "curve\n"
                     "    public-key = \"%s\"\n",
                     when, pub);
    if (n < 0 || (size_t)n >= cap)
        return TALLY_ETOOLONG;
    *len = (size_t)n;
    return 0;
}

static void say_exists(const char *path)
{
    cli_error("%s exists already; keygen never overwrites a key (remove it, or choose another "
              "NAME)",
              path);
}

/* Create dir/name, which must not exist, with exactly mode and the
 * certificate of pub (and sec when not NULL), on the disk before this
 * returns.  The mode is set whatever the umask: it may only take bits
 * away, but a secret must end up 0600 and a public file 0644.  Returns 0,
 * or a negative TALLY_E* code after saying why. */
static int write_cert(const char *dir, const char *name, const char *path, unsigned mode,
                      const char *pub, const char *sec)
{
    char text[1024], err[1024];
    size_t len;
    int rc = format_cert(text, sizeof text, pub, sec, &len);
    if (rc < 0) {
        cli_error("cannot format the certificate %s", path);
        return rc;
    }
    atomic_file_opts_t o = {.mode = mode, .exact_mode = true, .no_replace = true};
    rc = atomic_file_write(-1, dir, name, text, len, &o, err, sizeof err);
    explicit_bzero(text, sizeof text);
    if (rc == TALLY_EEXIST)
        say_exists(path);
    else if (rc < 0)
        cli_error("%s", err);
    return rc;
}

static bool is_plain_name(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

static int keygen(const char *dir, const char *name)
{
    char pub_path[4096], sec_path[4096], sec_name[4096];
    snprintf(sec_name, sizeof sec_name, "%s_secret", name);
    const char *sep = dir[0] != '\0' && dir[strlen(dir) - 1] != '/' ? "/" : "";
    int n1 = snprintf(pub_path, sizeof pub_path, "%s%s%s", dir, sep, name);
    int n2 = snprintf(sec_path, sizeof sec_path, "%s%s%s_secret", dir, sep, name);
    if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof sec_path)
        return cli_usage_error("keygen", "the path %s%s%s_secret is longer than %zu bytes", dir,
                               sep, name, sizeof sec_path - 1);
    /* Refuse before creating anything, so a refusal leaves no half pair. */
    struct stat st;
    const char *paths[2] = {pub_path, sec_path};
    for (int i = 0; i < 2; i++)
        if (lstat(paths[i], &st) == 0) {
            say_exists(paths[i]);
            return CLI_USAGE;
        }
    char pub[Z85_KEY_LEN + 1], sec[Z85_KEY_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0) {
        cli_error("cannot create a key pair: %s (libzmq without CURVE support?)",
                  zmq_strerror(zmq_errno()));
        return CLI_INTERNAL;
    }
    int status = CLI_OK;
    if (write_cert(dir, sec_name, sec_path, 0600, pub, sec) < 0) {
        status = CLI_INTERNAL;
    } else if (write_cert(dir, name, pub_path, 0644, pub, NULL) < 0) {
        /* A secret without its public file is of no use; keep the pair
         * whole or not at all. */
        unlink(sec_path);
        status = CLI_INTERNAL;
    }
    explicit_bzero(sec, sizeof sec);
    if (status == CLI_OK)
        printf("%s\n", pub);
    return status;
}

int cli_keygen(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "keygen", cli_keygen_usage, g, 0, own);
    const char *dir = "";
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        if (c == 'o') {
            if (optarg[0] == '\0')
                return cli_usage_error("keygen", "--out needs a directory");
            dir = optarg;
        }
    }
    if (status != CLI_CONTINUE)
        return status;
    if (optind >= argc)
        return cli_usage_error("keygen", "missing NAME, the file name of the public key");
    if (optind + 1 < argc)
        return cli_usage_error("keygen", "unexpected argument '%s' (one NAME only)",
                               argv[optind + 1]);
    const char *name = argv[optind];
    if (!is_plain_name(name))
        return cli_usage_error("keygen",
                               "NAME '%s' must be a file name without '/'; give the directory "
                               "with --out",
                               name);
    struct stat st;
    if (dir[0] != '\0' && stat(dir, &st) != 0)
        return cli_usage_error("keygen", "--out '%s': %s (create the directory first)", dir,
                               strerror(errno));
    if (dir[0] != '\0' && !S_ISDIR(st.st_mode))
        return cli_usage_error("keygen", "--out '%s' is not a directory", dir);
    return keygen(dir, name);
}
