/* web_history.c - tally-web (web/): a period's or a span's tallies read
 * from tallyd, in parts when needed (see web_history.h). */
#include "web_history.h"

#include <stdio.h>
#include <string.h>

#include "proto.h"

typedef struct span_ctx {
    const char *name; /* the span as asked: FROM..TO */
    tally_tally_cb cb;
    void *ctx;
} span_ctx_t;

/* A span's tally: its one column ("span" on the wire) named as asked. */
static void span_tally(void *ctx, const tally_tally_t *t)
{
    span_ctx_t *s = ctx;
    tally_tally_t c = *t;
    for (unsigned i = 0; i < c.nvalues && i < TALLY_COLUMNS_MAX; i++)
        c.values[i].column = s->name;
    s->cb(s->ctx, &c);
}

int web_history_read(const char *server, tally_request_t *req, const char *prefix,
                     const char *period, tally_tally_cb cb, void *ctx)
{
    const char *dots = strstr(period, "..");
    if (dots == NULL)
        return tally_period_req(server, req, prefix, period, cb, ctx);
    char from[64];
    if ((size_t)(dots - period) >= sizeof from)
        return TALLY_EINVAL;
    snprintf(from, sizeof from, "%.*s", (int)(dots - period), period);
    span_ctx_t s = {.name = period, .cb = cb, .ctx = ctx};
    return tally_span_req(server, req, prefix, from, dots + 2, span_tally, &s);
}

bool web_history_splittable(const char *prefix)
{
    return strcmp(prefix, "") == 0 || strcmp(prefix, "u/") == 0 || strcmp(prefix, "u/town/") == 0;
}

int web_history_read_split(const char *server, tally_request_t *req, const char *prefix,
                           const char *period, const char *const *towns, size_t n,
                           tally_tally_cb cb, void *ctx)
{
    int rc = 0;
    if (strcmp(prefix, "u/town/") != 0)
        rc = web_history_read(server, req, "u/county/", period, cb, ctx);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char part[PROTO_PREFIX_MAX + 1];
        if (snprintf(part, sizeof part, "u/town/%s/", towns[i]) >= (int)sizeof part)
            return TALLY_EINVAL;
        rc = web_history_read(server, req, part, period, cb, ctx);
        if (rc == TALLY_EUNKTOWN) /* left the catalog in a reload: nothing to read */
            rc = 0;
    }
    return rc;
}
