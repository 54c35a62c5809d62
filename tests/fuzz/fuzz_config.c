/* libFuzzer target: tallyd's configuration parser over arbitrary bytes.
 *
 * Any input must either load or fail with one NUL-terminated message that
 * starts with the file name, and never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tallyd_config_t cfg, def;
    char err[1024];
    memset(err, 'X', sizeof(err));
    int rc = config_parse_text((const char *)data, size, "fuzz.conf", &cfg, err, sizeof(err));
    if (rc != 0 && rc != TALLY_ECONFIG)
        abort();
    if (memchr(err, '\0', sizeof(err)) == NULL)
        abort();
    if (rc == 0) {
        if (err[0] != '\0' || cfg.nwindows == 0 || cfg.nwindows > CONFIG_WINDOWS_MAX)
            abort();
        /* Every ratio of a closed catalog points at a metric. */
        for (size_t i = 0; i < cfg.nratios; i++) {
            const config_ratio_t *r = &cfg.ratios[i];
            if (cfg.catalog_closed_metrics && ((size_t)r->numerator_metric >= cfg.nmetrics ||
                                               (size_t)r->denominator_metric >= cfg.nmetrics))
                abort();
        }
        for (size_t i = 0; i < cfg.ntownships; i++)
            if (config_find_township(&cfg, cfg.townships[i].id, strlen(cfg.townships[i].id)) !=
                &cfg.townships[i])
                abort(); /* a duplicate slipped through */
        config_defaults(&def);
        char diff[256];
        config_diff_restart(&def, &cfg, diff, sizeof(diff));
    } else if (strncmp(err, "fuzz.conf", 9) != 0) {
        abort();
    } else if (cfg.townships != NULL || cfg.metrics != NULL || cfg.ratios != NULL) {
        abort(); /* a failed parse owns nothing */
    }
    config_free(&cfg);
    return 0;
}
