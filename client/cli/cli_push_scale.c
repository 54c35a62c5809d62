/* cli_push_scale.c - the tally command (client/cli/): the values of
 * `tally push` read in each metric's unit (cli_push_impl.h).  A clerk
 * types what the report shows: 12.5 hectares of a metric tallyd keeps
 * with one decimal place (scale 1, PROTOCOL.md 10.6) is sent as 125, and
 * 3 of a metric with two places as 300.  The places come from tallyd's
 * catalog, else from the one kept at an earlier push; without either, a
 * whole number is sent as written and a fraction is refused. */
#include "cli_push_impl.h"

#include <inttypes.h>
#include <stdio.h>

#include "cli_names.h"

/* "data.csv:5: area=12.55" or "'area=12.55'": the figure as written. */
static void figure(char *buf, size_t cap, const char *file, const csv_sample_t *s)
{
    char num[48];
    csv_decimal_text(s->value, s->places, num, sizeof num);
    if (s->line > 0)
        snprintf(buf, cap, "%s:%u: %s=%s", file, s->line, s->metric, num);
    else
        snprintf(buf, cap, "'%s=%s'", s->metric, num);
}

/* s with scale decimal places: its value times 10^(scale - places).
 * CLI_OK or CLI_USAGE (said). */
static int rescale(csv_sample_t *s, int scale, const char *file)
{
    char fig[1200];
    if ((int)s->places > scale) {
        figure(fig, sizeof fig, file, s);
        if (scale == 0)
            return cli_usage_error("push",
                                   "%s: %s takes whole numbers (tallyd's catalog gives it no "
                                   "decimal places)",
                                   fig, s->metric);
        return cli_usage_error("push",
                               "%s: %s takes at most %d decimal place%s (its scale in tallyd's "
                               "catalog), and the value has %u",
                               fig, s->metric, scale, cli_push_plural((size_t)scale), s->places);
    }
    for (int k = (int)s->places; k < scale; k++) {
        if (s->value > INT64_MAX / 10 || s->value < INT64_MIN / 10) {
            char lo[48], hi[48];
            figure(fig, sizeof fig, file, s);
            csv_decimal_text(INT64_MIN, (unsigned)scale, lo, sizeof lo);
            csv_decimal_text(INT64_MAX, (unsigned)scale, hi, sizeof hi);
            return cli_usage_error("push", "%s: the value is out of range (%s takes %s .. %s)", fig,
                                   s->metric, lo, hi);
        }
        s->value *= 10;
    }
    s->places = (unsigned)scale;
    return CLI_OK;
}

int cli_push_scale(const cli_scales_t *sc, csv_samples_t *s, const char *file)
{
    for (size_t i = 0; i < s->n; i++) {
        csv_sample_t *x = &s->v[i];
        int scale = cli_scales_of(sc, x->metric), status = CLI_OK;
        if (scale >= 0) {
            status = rescale(x, scale, file);
        } else if (x->places > 0) {
            char fig[1200];
            figure(fig, sizeof fig, file, x);
            fprintf(stderr,
                    "tally push: %s: how many decimal places tallyd keeps of %s is not known "
                    "(tallyd cannot be asked for its catalog, and none is kept from an earlier "
                    "push): nothing was sent or spooled; push again once tallyd answers\n",
                    fig, x->metric);
            status = CLI_UNREACHABLE;
        }
        if (status != CLI_OK)
            return status;
    }
    return CLI_OK;
}
