/* curve.c - libtally (client/lib/): CURVE keys for its sockets (see
 * curve.h). */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "text.h"

/* A key is exactly 40 characters that decode as Z85. */
static bool is_z85_key(const char *s, size_t len)
{
    if (len != TALLY_CURVE_KEY_LEN)
        return false;
    char text[TALLY_CURVE_KEY_LEN + 1];
    uint8_t bin[32];
    memcpy(text, s, len);
    text[len] = '\0';
    return zmq_z85_decode(bin, text) != NULL;
}

/* The value after "name =" on a line, quoted or bare; *vlen its length. */
static const char *line_value(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    if ((size_t)(end - p) < n || memcmp(p, name, n) != 0)
        return NULL;
    p += n;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p != '=')
        return NULL;
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && (*p == '"' || *p == '\'')) {
        const char *q = memchr(p + 1, *p, (size_t)(end - p - 1));
        if (q == NULL)
            return NULL;
        *vlen = (size_t)(q - p - 1);
        return p + 1;
    }
    const char *v = p;
    while (p < end && *p != ' ' && *p != '\t' && *p != '#' && *p != '\r')
        p++;
    *vlen = (size_t)(p - v);
    return v;
}

int curve_parse_cert(const char *text, size_t len, const char *name,
                     char pub[TALLY_CURVE_KEY_LEN + 1], char *sec, bool *has_secret, char *err,
                     size_t errlen)
{
    bool got_pub = false, got_sec = false;
    char secret[TALLY_CURVE_KEY_LEN + 1] = "";
    const char *end = text + len;
    for (const char *p = text; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *q = p;
        while (q < eol && (*q == ' ' || *q == '\t'))
            q++;
        size_t vlen = 0;
        const char *v;
        bool is_sec = false;
        if ((v = line_value(q, eol, "public-key", &vlen)) == NULL &&
            (v = line_value(q, eol, "secret-key", &vlen)) != NULL)
            is_sec = true;
        if (v != NULL) {
            if (!is_z85_key(v, vlen)) {
                text_format(err, errlen, "%s: %s is not 40 characters of Z85", name,
                            is_sec ? "secret-key" : "public-key");
                explicit_bzero(secret, sizeof secret);
                return TALLY_EINVAL;
            }
            memcpy(is_sec ? secret : pub, v, vlen);
            (is_sec ? secret : pub)[vlen] = '\0';
            *(is_sec ? &got_sec : &got_pub) = true;
        }
        p = nl ? nl + 1 : end;
    }
    int rc = 0;
    if (!got_pub) {
        text_format(err, errlen, "%s: not a CURVE certificate (no public-key line)", name);
        rc = TALLY_EINVAL;
    } else if (got_sec) {
        /* A pair that does not match would fail every handshake with no
         * word of why: say it here. */
        char derived[TALLY_CURVE_KEY_LEN + 1];
        if (zmq_curve_public(derived, secret) != 0) {
            text_format(err, errlen, "%s: %s", name,
                        errno == ENOTSUP ? "libzmq has no CURVE support" : zmq_strerror(errno));
            rc = errno == ENOTSUP ? TALLY_ESYS : TALLY_EINVAL;
        } else if (strcmp(derived, pub) != 0) {
            text_format(err, errlen, "%s: the secret-key does not belong to the public-key", name);
            rc = TALLY_EINVAL;
        }
        explicit_bzero(derived, sizeof derived);
    }
    if (rc == 0 && sec != NULL && got_sec)
        memcpy(sec, secret, sizeof secret);
    if (rc == 0 && has_secret != NULL)
        *has_secret = got_sec;
    explicit_bzero(secret, sizeof secret);
    return rc;
}

/* Read a whole (small) certificate file into buf. */
static int read_cert(const char *path, char *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        text_format(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            text_format(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            close(fd);
            return TALLY_EIO;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            text_format(err, errlen, "%s: larger than %d bytes; not a certificate", path,
                        CURVE_FILE_MAX);
            close(fd);
            return TALLY_EINVAL;
        }
    }
    close(fd);
    *len = n;
    return 0;
}

/* Load certificate path: its public key, and its secret key when sec is
 * not NULL (then required). */
static int load_cert(const char *path, char *pub, char *sec, char *err, size_t errlen)
{
    char *buf = malloc(CURVE_FILE_MAX);
    if (buf == NULL)
        return TALLY_ENOMEM;
    size_t len = 0;
    bool has_secret = false;
    int rc = read_cert(path, buf, CURVE_FILE_MAX, &len, err, errlen);
    if (rc == 0)
        rc = curve_parse_cert(buf, len, path, pub, sec, &has_secret, err, errlen);
    if (rc == 0 && sec != NULL && !has_secret) {
        text_format(err, errlen,
                    "%s: holds no secret-key; give the secret certificate (NAME_secret, written by "
                    "`tally keygen NAME`)",
                    path);
        rc = TALLY_EINVAL;
    }
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

int curve_load(const tally_curve_t *c, curve_keys_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (c == NULL || c->server_key == NULL || c->server_key[0] == '\0')
        return 0;
    if (!zmq_has("curve")) {
        text_format(err, errlen, "libzmq has no CURVE support; cannot talk to a secured tallyd");
        return TALLY_ESYS;
    }
    if (c->cert == NULL || c->cert[0] == '\0') {
        text_format(err, errlen,
                    "a server key is given but no certificate of this client (its NAME_secret "
                    "file from `tally keygen NAME`)");
        return TALLY_EINVAL;
    }
    int rc;
    size_t klen = strlen(c->server_key);
    if (klen == TALLY_CURVE_KEY_LEN && is_z85_key(c->server_key, klen)) {
        memcpy(out->server, c->server_key, klen + 1);
    } else if ((rc = load_cert(c->server_key, out->server, NULL, err, errlen)) != 0) {
        if (rc == TALLY_EIO && strchr(c->server_key, '/') == NULL && klen == TALLY_CURVE_KEY_LEN)
            text_format(err, errlen,
                        "server key '%s' is neither 40 characters of Z85 nor a readable file",
                        c->server_key);
        return rc;
    }
    rc = load_cert(c->cert, out->pub, out->sec, err, errlen);
    if (rc != 0) {
        curve_wipe(out);
        return rc;
    }
    out->on = true;
    return 0;
}

int curve_apply(void *sock, const curve_keys_t *k)
{
    if (!k->on)
        return 0;
    /* Z85 key options are 41 bytes: the text and its NUL. */
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server, TALLY_CURVE_KEY_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->pub, TALLY_CURVE_KEY_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->sec, TALLY_CURVE_KEY_LEN + 1) != 0)
        return TALLY_ESYS;
    return 0;
}

void curve_wipe(curve_keys_t *k)
{
    explicit_bzero(k, sizeof *k);
}

int tally_curve_check(const tally_curve_t *curve, char *errbuf, size_t errbuf_len)
{
    if (errbuf != NULL && errbuf_len > 0)
        errbuf[0] = '\0';
    curve_keys_t k;
    int rc = curve_load(curve, &k, errbuf, errbuf_len);
    curve_wipe(&k);
    return rc;
}
