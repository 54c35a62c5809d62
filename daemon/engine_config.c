/* engine_config.c - the engine's settings (see engine.h): the built-in
 * windows, the settings a configuration gives, and their checks. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "tally_error.h"

static const char *const default_names[4] = {"1h", "24h", "7d", "30d"};
static const int64_t default_ms[4] = {3600000, 86400000, 604800000, 2592000000};

void engine_config_default(engine_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (uint32_t w = 0; w < 4; w++) {
        cfg->windows[w].name = default_names[w];
        cfg->windows[w].ms = default_ms[w];
    }
    cfg->nwindows = 4;
    cfg->buckets = ENGINE_BUCKETS_DEFAULT;
    cfg->zone = ENGINE_ZONE_DEFAULT;
    cfg->max_series = ENGINE_SERIES_DEFAULT;
}

void engine_config_from(engine_config_t *cfg, const tallyd_config_t *c)
{
    engine_config_default(cfg);
    cfg->nwindows = (uint32_t)c->nwindows;
    for (size_t i = 0; i < c->nwindows; i++) {
        cfg->windows[i].name = c->windows[i].name;
        cfg->windows[i].ms = c->windows[i].ms;
    }
    cfg->buckets = (uint32_t)c->buckets;
    cfg->zone = c->timezone;
    cfg->max_series = (uint32_t)c->max_series;
}

const char *const engine_calendar_names[] = {"today", "month", "quarter", "year", "total", NULL};

int engine_config_check(const engine_config_t *cfg, char *msg, size_t msglen)
{
    bool out = msg != NULL && msglen > 0;
    if (out) {
        msg[0] = '\0';
    }
    int rc =
        window_check(cfg->windows, cfg->nwindows, cfg->buckets, engine_calendar_names, msg, msglen);
    if (rc != 0) {
        return rc;
    }
    if (period_zone_check(cfg->zone) != 0) {
        if (out) {
            snprintf(msg, msglen, "zone: '%s' is not an installed IANA time zone",
                     cfg->zone ? cfg->zone : "(null)");
        }
        return TALLY_EINVAL;
    }
    if (cfg->max_series == 0 || cfg->max_series > ENGINE_SERIES_MAX) {
        if (out) {
            snprintf(msg, msglen, "max_series: %u is outside 1..%u", cfg->max_series,
                     ENGINE_SERIES_MAX);
        }
        return TALLY_EINVAL;
    }
    return 0;
}
