/* cli_names.c - the tally command (client/cli/): the catalog's names kept
 * on disk for pushes while the daemon cannot be asked (cli_names.h). */
#include "cli_names.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "cli_util.h"

/* A name fit for a line of the file: no tab, no line break. */
static bool plain(const char *s)
{
    return strpbrk(s, "\t\r\n") == NULL;
}

/* The whole file dir/file, NUL-terminated; NULL when it cannot be read. */
static char *read_file(const char *dir, const char *file)
{
    char path[4200], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *buf = NULL;
    size_t len;
    return cli_read_input(path, &buf, &len, err, sizeof err) == 0 ? buf : NULL;
}

static char *read_all(const char *dir)
{
    return read_file(dir, CLI_NAMES_FILE);
}

int cli_zone_save(const char *dir, const char *server, const char *zone, int32_t offset_s,
                  char *err, size_t errlen)
{
    char buf[4400];
    int len = snprintf(buf, sizeof buf, "# tally zone of %s\n%s\t%" PRId32 "\n", server,
                       plain(zone) ? zone : "", offset_s);
    if (len < 0 || (size_t)len >= sizeof buf)
        return 0; /* a server address beyond any real one: nothing kept */
    char *old = read_file(dir, CLI_ZONE_FILE);
    int rc = 0;
    if (old == NULL || strcmp(old, buf) != 0) {
        atomic_file_opts_t o = {.mode = 0600};
        rc = atomic_file_write(-1, dir, CLI_ZONE_FILE, buf, (size_t)len, &o, err, errlen) == 0
                 ? 0
                 : TALLY_EIO;
    }
    free(old);
    return rc;
}

int cli_zone_load(const char *dir, const char *server, char *name, size_t cap, int32_t *offset_s)
{
    char *buf = read_file(dir, CLI_ZONE_FILE);
    if (buf == NULL)
        return 0;
    char head[4200];
    snprintf(head, sizeof head, "# tally zone of %s\n", server);
    int found = 0;
    if (strncmp(buf, head, strlen(head)) == 0) {
        const char *line = buf + strlen(head), *tab = strchr(line, '\t');
        char *end;
        long off = tab != NULL ? strtol(tab + 1, &end, 10) : 0;
        if (tab != NULL && end != tab + 1 && *end == '\n' && off >= -18 * 3600 &&
            off <= 18 * 3600 && (size_t)(tab - line) < cap) {
            memcpy(name, line, (size_t)(tab - line));
            name[tab - line] = '\0';
            *offset_s = (int32_t)off;
            found = 1;
        }
    }
    free(buf);
    return found;
}

int cli_names_save(const char *dir, const char *server, const tally_catalog_t *cat, char *err,
                   size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL)
        return TALLY_ENOMEM;
    fprintf(m, "# tally catalog of %s\n", server);
    for (size_t i = 0; i < tally_catalog_townships(cat); i++) {
        const tally_township_info_t *t = tally_catalog_township(cat, i);
        if (plain(t->id) && plain(t->name))
            fprintf(m, "T\t%s\t%s\n", t->id, t->name);
    }
    for (size_t i = 0; i < tally_catalog_metrics(cat); i++) {
        const tally_metric_info_t *x = tally_catalog_metric(cat, i);
        if (plain(x->id) && plain(x->label))
            fprintf(m, "M\t%s\t%s\n", x->id, x->label);
    }
    if (fclose(m) != 0) {
        free(buf);
        return TALLY_ENOMEM;
    }
    char *old = read_all(dir);
    int rc = 0;
    if (old == NULL || strcmp(old, buf) != 0) {
        atomic_file_opts_t o = {.mode = 0600};
        rc = atomic_file_write(-1, dir, CLI_NAMES_FILE, buf, len, &o, err, errlen) == 0 ? 0
                                                                                        : TALLY_EIO;
    }
    free(old);
    free(buf);
    return rc;
}

int cli_names_lookup(const char *dir, const char *server, const char *name, bool township,
                     char **id)
{
    *id = NULL;
    char *buf = read_all(dir);
    if (buf == NULL)
        return 0;
    char head[4200];
    snprintf(head, sizeof head, "# tally catalog of %s\n", server);
    const char *found = NULL;
    size_t found_len = 0;
    bool twice = false, is_id = false;
    char kind = township ? 'T' : 'M';
    if (strncmp(buf, head, strlen(head)) == 0) {
        for (char *line = buf + strlen(head); *line != '\0' && !is_id;) {
            char *end = strchr(line, '\n');
            if (end == NULL)
                break; /* a line cut short: not trusted */
            *end = '\0';
            char *a = strchr(line, '\t'), *b = a ? strchr(a + 1, '\t') : NULL;
            if (line[0] == kind && a == line + 1 && b != NULL) {
                *b = '\0';
                if (strcmp(a + 1, name) == 0) {
                    is_id = true; /* an id is never read as another's name */
                } else if (strcmp(b + 1, name) == 0 && name[0] != '\0') {
                    twice = found != NULL;
                    found = a + 1;
                    found_len = (size_t)(b - a - 1);
                }
            }
            line = end + 1;
        }
    }
    int rc = 0;
    if (is_id || (found != NULL && !twice)) {
        *id = is_id ? strdup(name) : strndup(found, found_len);
        rc = *id != NULL ? 1 : TALLY_ENOMEM;
    }
    free(buf);
    return rc;
}
