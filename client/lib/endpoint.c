/* endpoint.c - libtally (client/lib/): server address normalisation and
 * publish endpoint derivation (tally_endpoint_*). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"
#include "text.h"

/* Parse a decimal port 1..65535 from s[0..len). */
static int parse_port(const char *s, size_t len, unsigned *port)
{
    if (len == 0 || len > 5)
        return TALLY_EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TALLY_EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return TALLY_EINVAL;
    *port = v;
    return 0;
}

/* parse_port, saying what is wrong in err (may be NULL). */
static int port_or_explain(const char *s, unsigned *port, char *err, size_t errlen)
{
    if (parse_port(s, strlen(s), port) == 0)
        return 0;
    if (s[0] == '\0')
        text_format(err, errlen, "the port is missing after ':'");
    else
        text_format(err, errlen, "the port '%s' is not a number from 1 to 65535", s);
    return TALLY_EINVAL;
}

static bool is_ipv6(const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &a) == 1;
}

/* Split "host:port", "[v6]:port", "host", "[v6]" or bare "v6" into a host
 * (with brackets for IPv6) and a port (default_port when absent).  err
 * (may be NULL) says what is wrong.  strict: several colons must make an
 * IPv6 address (tally_endpoint_normalize let anything through). */
static int split_host_port(const char *s, char *host, size_t hcap, unsigned *port,
                           unsigned default_port, bool strict, char *err, size_t errlen)
{
    size_t len = strlen(s);
    const char *h = s;
    size_t hlen;
    *port = default_port;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            text_format(err, errlen, "the '[' is never closed by a ']'");
            return TALLY_EINVAL;
        }
        hlen = (size_t)(close - s) + 1;
        if (close[1] == ':') {
            if (port_or_explain(close + 2, port, err, errlen) < 0)
                return TALLY_EINVAL;
        } else if (close[1] != '\0') {
            text_format(err, errlen, "'%s' after ']' is neither nothing nor ':PORT'", close + 1);
            return TALLY_EINVAL;
        }
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* Several colons and no brackets: a bare IPv6 address, or a
             * mistake such as "host:port:x". */
            if (strict && !is_ipv6(s, len)) {
                text_format(err, errlen,
                            "it has more than one ':' and is not an IPv6 address (write "
                            "HOST:PORT, or [IPv6]:PORT)");
                return TALLY_EINVAL;
            }
            if (hcap < len + 3)
                return TALLY_ETOOLONG;
            snprintf(host, hcap, "[%s]", s);
            return 0;
        }
        if (colon != NULL) {
            hlen = (size_t)(colon - s);
            if (port_or_explain(colon + 1, port, err, errlen) < 0)
                return TALLY_EINVAL;
        } else {
            hlen = len;
        }
    }
    if (strchr(s, ']') != NULL && s[0] != '[') {
        text_format(err, errlen, "it has a ']' without a '['");
        return TALLY_EINVAL;
    }
    if (hlen == 0) {
        h = "127.0.0.1";
        hlen = strlen(h);
    }
    if (hlen + 1 > hcap)
        return TALLY_ETOOLONG;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return 0;
}

/* The short forms (no "scheme://") into "tcp://host:port". */
static int short_form(const char *in, char *out, size_t cap, bool strict, char *err, size_t errlen)
{
    char host[TALLY_ENDPOINT_MAX];
    unsigned port;
    int rc = split_host_port(in, host, sizeof host, &port, TALLY_DEFAULT_PORT, strict, err, errlen);
    if (rc == 0 && (size_t)snprintf(out, cap, "tcp://%s:%u", host, port) >= cap)
        rc = TALLY_ETOOLONG;
    if (rc == TALLY_ETOOLONG)
        text_format(err, errlen, "it is longer than %zu bytes", cap - 1);
    return rc;
}

int tally_endpoint_normalize(const char *in, char *out, size_t cap)
{
    if (in == NULL || in[0] == '\0' || out == NULL)
        return TALLY_EINVAL;
    if (strstr(in, "://") != NULL) {
        if (strlen(in) + 1 > cap)
            return TALLY_ETOOLONG;
        strcpy(out, in);
        return 0;
    }
    return short_form(in, out, cap, false, NULL, 0);
}

/* "tcp://[source;]host:port" with a numeric port and a host. */
static int check_tcp(const char *rest, char *err, size_t errlen)
{
    const char *semi = strrchr(rest, ';');
    if (semi != NULL)
        rest = semi + 1;
    const char *colon = strrchr(rest, ':');
    const char *close = strrchr(rest, ']');
    if (colon == NULL || (close != NULL && colon < close)) {
        text_format(err, errlen, "it has no ':PORT' after the host (tcp://HOST:PORT)");
        return TALLY_EINVAL;
    }
    unsigned port;
    if (port_or_explain(colon + 1, &port, err, errlen) < 0)
        return TALLY_EINVAL;
    if (colon == rest) {
        text_format(err, errlen, "the host is missing before ':%s'", colon + 1);
        return TALLY_EINVAL;
    }
    if (rest[0] != '[' && memchr(rest, ':', (size_t)(colon - rest)) != NULL) {
        text_format(err, errlen,
                    "it has more than one ':' after tcp:// (an IPv6 host is written "
                    "tcp://[ADDRESS]:PORT)");
        return TALLY_EINVAL;
    }
    return 0;
}

int tally_endpoint_parse(const char *in, char *out, size_t cap, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (in == NULL || in[0] == '\0' || out == NULL) {
        text_format(err, errlen, "the address is empty");
        return TALLY_EINVAL;
    }
    /* A host holds no space (ZeroMQ would refuse it at the connect, less
     * clearly); a socket path may, but no control character. */
    bool path = strncmp(in, "ipc://", 6) == 0 || strncmp(in, "inproc://", 9) == 0;
    for (const char *p = in; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || (*p == ' ' && !path)) {
            text_format(err, errlen, "it holds a %s", *p == ' ' ? "space" : "control character");
            return TALLY_EINVAL;
        }
    const char *sep = strstr(in, "://");
    if (sep == NULL)
        return short_form(in, out, cap, true, err, errlen);
    size_t slen = (size_t)(sep - in);
    const char *rest = sep + 3;
    int rc = 0;
    if (slen == 3 && strncmp(in, "tcp", 3) == 0) {
        rc = check_tcp(rest, err, errlen);
    } else if ((slen == 3 && strncmp(in, "ipc", 3) == 0) ||
               (slen == 6 && strncmp(in, "inproc", 6) == 0)) {
        if (rest[0] == '\0') {
            text_format(err, errlen, "the %s path is missing after '%.*s://'",
                        slen == 3 ? "socket" : "inproc", (int)slen, in);
            rc = TALLY_EINVAL;
        }
    } else {
        text_format(err, errlen,
                    "'%.*s://' is not a transport tallyd listens on: use tcp://HOST:PORT, "
                    "HOST:PORT, HOST or ipc://PATH",
                    (int)slen, in);
        rc = TALLY_EINVAL;
    }
    if (rc == 0 && strlen(in) + 1 > cap) {
        text_format(err, errlen, "it is longer than %zu bytes", cap - 1);
        rc = TALLY_ETOOLONG;
    }
    if (rc == 0)
        strcpy(out, in);
    return rc;
}

static bool is_wildcard(const char *host)
{
    return strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0 ||
           strcmp(host, "::") == 0;
}

/* Split a tcp:// endpoint into host and port; 0 or TALLY_EINVAL. */
static int split_tcp(const char *ep, char *host, size_t hcap, unsigned *port)
{
    if (strncmp(ep, "tcp://", 6) != 0)
        return TALLY_EINVAL;
    const char *rest = ep + 6;
    /* "tcp://source;host:port": the part after ';' is the destination. */
    const char *semi = strrchr(rest, ';');
    if (semi != NULL)
        rest = semi + 1;
    /* A bare IPv6 address would be ambiguous here; ZeroMQ wants brackets,
     * so only the last colon separates the port. */
    const char *colon = strrchr(rest, ':');
    if (colon == NULL || parse_port(colon + 1, strlen(colon + 1), port) < 0)
        return TALLY_EINVAL;
    size_t hlen = (size_t)(colon - rest);
    if (hlen == 0 || hlen + 1 > hcap)
        return TALLY_EINVAL;
    memcpy(host, rest, hlen);
    host[hlen] = '\0';
    return 0;
}

int tally_endpoint_pub(const char *server, const char *advertised, char *out, size_t cap)
{
    if (server == NULL || out == NULL)
        return TALLY_EINVAL;
    char shost[TALLY_ENDPOINT_MAX];
    unsigned sport = 0;
    bool have_server = split_tcp(server, shost, sizeof shost, &sport) == 0;
    if (advertised != NULL && advertised[0] != '\0') {
        char ahost[TALLY_ENDPOINT_MAX];
        unsigned aport;
        if (split_tcp(advertised, ahost, sizeof ahost, &aport) == 0 && is_wildcard(ahost)) {
            const char *host = have_server ? shost : "127.0.0.1";
            if ((size_t)snprintf(out, cap, "tcp://%s:%u", host, aport) >= cap)
                return TALLY_ETOOLONG;
            return 0;
        }
        if (strlen(advertised) + 1 > cap)
            return TALLY_ETOOLONG;
        strcpy(out, advertised);
        return 0;
    }
    if (!have_server || sport >= 65535)
        return TALLY_EINVAL;
    if ((size_t)snprintf(out, cap, "tcp://%s:%u", shost, sport + 1) >= cap)
        return TALLY_ETOOLONG;
    return 0;
}

const char *tally_version(void)
{
#ifdef TALLY_VERSION
    return TALLY_VERSION;
#else
    return "0.0.0";
#endif
}
