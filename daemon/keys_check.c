/* keys_check.c - the keyring checked against the catalog (see keys.h). */
#include <stdio.h>
#include <stdlib.h>

#include "keys.h"

size_t keys_check_townships(const keyring_t *kr, const tallyd_config_t *cfg,
                            void (*warn)(void *ctx, const char *text), void *ctx)
{
    /* An open township catalog takes every well-formed name. */
    if (!cfg->catalog_closed_townships || kr->ntownships == 0)
        return 0;
    const char **ids = malloc((cfg->ntownships ? cfg->ntownships : 1) * sizeof(*ids));
    for (size_t i = 0; ids != NULL && i < cfg->ntownships; i++)
        ids[i] = cfg->townships[i].id;
    size_t n = 0;
    for (size_t i = 0; i < kr->n; i++) {
        const keyring_identity_t *id = &kr->ids[i];
        if (id->role != KEYS_ROLE_TOWNSHIP ||
            config_find_township(cfg, id->name, id->name_len) != NULL)
            continue;
        char hint[PROTO_NAME_MAX + 32] = "";
        if (ids != NULL)
            config_suggest(hint, sizeof(hint), id->name, ids, cfg->ntownships);
        char text[CONFIG_PATH_MAX + 2 * PROTO_NAME_MAX + 256];
        snprintf(text, sizeof(text),
                 "[security] township key %s is for township '%s', which the catalog does not "
                 "declare: its submissions will be refused (UNKNOWN_TOWNSHIP)%s",
                 id->path, id->name, hint);
        warn(ctx, text);
        n++;
    }
    free(ids);
    return n;
}
