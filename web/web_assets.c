/* web_assets.c - tally-web (web/): looking up the built-in files. */
#include "web_assets.h"

#include <string.h>

const web_asset_t *web_assets_find(const char *path)
{
    for (size_t i = 0; i < web_nassets; i++)
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    return NULL;
}
