/* endpoint.c - libtally (client/lib/): server address normalisation and
 * publish endpoint derivation (tally_endpoint_*). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"

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

/* Split "host:port", "[v6]:port", "host", "[v6]" or bare "v6" into a host
 * (with brackets for IPv6) and a port (default_port when absent; 0 when
 * absent and default_port is 0). */
static int split_host_port(const char *s, char *host, size_t hcap, unsigned *port,
                           unsigned default_port)
{
    size_t len = strlen(s);
    const char *h = s;
    size_t hlen;
    *port = default_port;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return TALLY_EINVAL;
        hlen = (size_t)(close - s) + 1;
        if (close[1] == ':') {
            if (parse_port(close + 2, strlen(close + 2), port) < 0)
                return TALLY_EINVAL;
        } else if (close[1] != '\0') {
            return TALLY_EINVAL;
        }
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* Several colons and no brackets: a bare IPv6 address. */
            if (hcap < len + 3)
                return TALLY_ETOOLONG;
            snprintf(host, hcap, "[%s]", s);
            return 0;
        }
        if (colon != NULL) {
            hlen = (size_t)(colon - s);
            if (parse_port(colon + 1, strlen(colon + 1), port) < 0)
                return TALLY_EINVAL;
        } else {
            hlen = len;
        }
    }
    if (strchr(s, ']') != NULL && s[0] != '[')
        return TALLY_EINVAL;
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
    char host[TALLY_ENDPOINT_MAX];
    unsigned port;
    int rc = split_host_port(in, host, sizeof host, &port, TALLY_DEFAULT_PORT);
    if (rc < 0)
        return rc;
    if ((size_t)snprintf(out, cap, "tcp://%s:%u", host, port) >= cap)
        return TALLY_ETOOLONG;
    return 0;
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
