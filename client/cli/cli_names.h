/* cli_names.h - the tally command (client/cli/, private): the names of
 * the daemon's catalog kept on disk, so that `tally push` can turn 高观镇
 * and 法治理论考试参考人数 into their ids while the daemon cannot be asked
 * (a weak link, tallyd down) before it spools the figures.  tallyd
 * refuses a name or label in place of an id; figures spooled under one
 * would be refused at their delivery, when no one may be watching.
 *
 * The file, DIR/catalog-names (DIR: the spool, or the user's state
 * directory), is text: a first line "# tally catalog of SERVER", then one
 * line per entry of the catalog, "T<TAB>id<TAB>name" for a township and
 * "M<TAB>id<TAB>label" for a metric or ratio (an empty name or label
 * when none is configured).  push replaces it, atomically, each time it
 * reads the catalog and finds it changed.
 */
#ifndef TALLY_CLIENT_CLI_NAMES_H
#define TALLY_CLIENT_CLI_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally.h"

#define CLI_NAMES_FILE "catalog-names"

/* Keep cat's ids and names, the catalog of server, in dir (unless the
 * file already holds exactly that).  Returns 0, TALLY_ENOMEM or
 * TALLY_EIO (the file could not be written; err says why). */
int cli_names_save(const char *dir, const char *server, const tally_catalog_t *cat, char *err,
                   size_t errlen);

/* What the catalog of server kept in dir makes of name, a township's
 * (township true) or a metric's: 1 with *id (malloc'd; free it) the id
 * that name is the name or label of, or name itself when it is an id
 * there; 0 when the file is missing, of another server, or holds no such
 * entry, or the name of two; TALLY_ENOMEM. */
int cli_names_lookup(const char *dir, const char *server, const char *name, bool township,
                     char **id);

/* tallyd's time zone kept the same way, so that a --time without an
 * offset is read in it while tallyd cannot be asked: DIR/CLI_ZONE_FILE,
 * "# tally zone of SERVER" then "ZONE<TAB>UTC offset in seconds".
 * cli_zone_save returns 0 or TALLY_EIO (err says why); cli_zone_load 1
 * with name[0..cap) and *offset_s, 0 when there is none for server. */
#define CLI_ZONE_FILE "daemon-zone"
int cli_zone_save(const char *dir, const char *server, const char *zone, int32_t offset_s,
                  char *err, size_t errlen);
int cli_zone_load(const char *dir, const char *server, char *name, size_t cap, int32_t *offset_s);

#endif
