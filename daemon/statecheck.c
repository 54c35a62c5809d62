/* statecheck.c - a configuration checked against a saved state (see
 * statecheck.h). */
#include "statecheck.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "checkpoint.h"
#include "clock.h"
#include "engine.h"
#include "intern.h"
#include "tally_error.h"

/* Whether dir holds a journal segment (journal-*.tj). */
static bool has_journal(const char *dir)
{
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *de; d != NULL && !found && (de = readdir(d)) != NULL;) {
        size_t n = strlen(de->d_name);
        found = strncmp(de->d_name, "journal-", 8) == 0 && n > 11 &&
                strcmp(de->d_name + n - 3, ".tj") == 0;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

int statecheck_config(const tallyd_config_t *cfg, const char *dir, char *msg, size_t len)
{
    intern_t towns = {0}, metrics = {0};
    engine_t e;
    checkpoint_image_t img = {0};
    char why[1024];
    bool engine_open = false;
    /* Sized for any checkpoint: the tables grow as names come. */
    int rc = intern_init(&towns, INTERN_CAPACITY_MAX);
    if (rc == 0)
        rc = intern_init(&metrics, INTERN_CAPACITY_MAX);
    if (rc == 0)
        rc = checkpoint_read_latest(dir, &img, &towns, &metrics, why, sizeof(why));
    if (rc == TALLY_ENOTFOUND) {
        if (has_journal(dir))
            snprintf(msg, len,
                     "no checkpoint yet (%s): a start replays the journal there, which this "
                     "check does not read (the kinds and scales of the metrics in it are not "
                     "checked)",
                     why);
        else
            snprintf(msg, len, "no checkpoint yet (%s): a start begins with an empty state", why);
        rc = 0;
        goto out;
    }
    if (rc != 0) {
        snprintf(msg, len, "%s", rc == TALLY_ENOMEM && why[0] == '\0' ? "out of memory" : why);
        goto out;
    }
    char skipped[sizeof(why)]; /* damaged files passed over, as a start would */
    snprintf(skipped, sizeof(skipped), "%s", why);
    engine_config_t ec;
    engine_config_from(&ec, cfg);
    rc = engine_init(&e, &ec, &clock_system);
    if (rc != 0) {
        snprintf(msg, len, "cannot set up the tally engine: %s", tally_strerror(rc));
        goto out;
    }
    engine_open = true;
    rc = engine_load_head(&e, img.engine, img.engine_len, why, sizeof(why));
    if (rc != 0) {
        snprintf(msg, len, "checkpoint %s/%s: %s", dir, img.name, why);
        goto out;
    }
    unsigned ntowns = intern_count(&towns), nmetrics = intern_count(&metrics);
    catalog_target_t ct = {&towns, &metrics, &e, dir};
    rc = catalog_declare(&ct, cfg, why, sizeof(why));
    if (rc != 0) {
        snprintf(msg, len, "%s", why);
        goto out;
    }
    snprintf(msg, len, "checkpoint %s/%s (%u townships, %u metrics and ratios)%s%s%s%s", dir,
             img.name, ntowns, nmetrics, why[0] ? "; " : "", why, skipped[0] ? "; " : "", skipped);
out:
    if (engine_open)
        engine_free(&e);
    checkpoint_image_free(&img);
    intern_free(&towns);
    intern_free(&metrics);
    return rc;
}
