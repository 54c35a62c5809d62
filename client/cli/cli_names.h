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
 * "M<TAB>id<TAB>label<TAB>scale" for a metric or ratio (an empty name or
 * label when none is configured or it holds a tab or line break; scale:
 * its decimal places, 0..9; files of versions before scales were kept
 * lack it).  push replaces it, atomically, each time it
 * reads the catalog and finds it changed.  A spool that keeps none of
 * a server yet (a new one) is read with the user's state directory's.
 *
 * Kept beside it: tallyd's zone, and what push remembers of the figures
 * it pushed with a --time (below).
 */
#ifndef TALLY_CLIENT_CLI_NAMES_H
#define TALLY_CLIENT_CLI_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csv.h"
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

/* The decimal places (scale, PROTOCOL.md 10.6) tallyd keeps of its
 * metrics, as push reads values in each metric's unit: those with any
 * listed, a metric not listed has none.  known is false when no catalog
 * said (cli_scales_of then gives -1). */
typedef struct cli_scales {
    struct cli_scale {
        char *id;
        int scale;
    } * v;
    size_t n, cap;
    bool known;
} cli_scales_t;

/* From tallyd's catalog, or from the one kept in dir for server (known
 * stays false when none is kept, or one of a version that kept no
 * scales).  0 or TALLY_ENOMEM; free with cli_scales_free. */
int cli_scales_from_catalog(cli_scales_t *sc, const tally_catalog_t *cat);
int cli_scales_load(cli_scales_t *sc, const char *dir, const char *server);

/* The decimal places of metric (an id): 0 when not listed, -1 when sc
 * is not known. */
int cli_scales_of(const cli_scales_t *sc, const char *metric);

void cli_scales_free(cli_scales_t *sc);

/* Whether dir keeps a catalog of server (cli_names_save). */
bool cli_names_kept(const char *dir, const char *server);

/* What push remembers of the figures it pushed with a --time, so that
 * the same figures pushed again (a second run of the same command, the
 * same sheet sent twice, a run killed before its answer came) are
 * refused rather than counted twice: DIR/CLI_PUSHED_FILE, "# tally
 * pushes with --time" then one line per push, oldest first,
 * "DIGEST<TAB>MS<TAB>HOW": DIGEST is cli_pushed_digest's, MS when it was
 * accepted, spooled or begun (milliseconds since 1970-01-01 UTC), HOW
 * "accepted", "spooled", or "begun<TAB>SEQ" for a push whose first
 * submission was to be SEQ and which has not ended yet (or was killed).
 * At most CLI_PUSHED_MAX lines: the oldest go first.  Replaced
 * atomically. */
#define CLI_PUSHED_FILE "pushed"
#define CLI_PUSHED_MAX  10000
#define CLI_PUSHED_HEX  32 /* BLAKE2b-128, in lower-case hex */

typedef enum { CLI_PUSHED_ACCEPTED, CLI_PUSHED_SPOOLED, CLI_PUSHED_BEGUN } cli_pushed_how_t;

typedef struct cli_pushed {
    int64_t when_ms;
    cli_pushed_how_t how;
    uint64_t first_seq; /* CLI_PUSHED_BEGUN: its first submission's seq */
} cli_pushed_t;

/* The digest of a push's whole content into hex: township, event time
 * and the figures as metric=value pairs in sorted order, so that the
 * order of a file's rows does not matter.  With server, the digest
 * earlier builds wrote, which counted the address as written
 * (tcp://10.0.0.5:7470 and a host name read as two daemons): read, never
 * written.  0 or TALLY_ENOMEM. */
int cli_pushed_digest(const char *server, const char *township, int64_t time_ms,
                      const csv_samples_t *s, char hex[CLI_PUSHED_HEX + 1]);

/* The latest push with digest hex that dir remembers: 1 with *rec, 0
 * when none. */
int cli_pushed_find(const char *dir, const char *hex, cli_pushed_t *rec);

/* Remember the push with digest hex in dir as rec says, in place of what
 * dir remembered of it; rec NULL: forget it.  0, TALLY_ENOMEM or
 * TALLY_EIO (err says why). */
int cli_pushed_add(const char *dir, const char *hex, const cli_pushed_t *rec, char *err,
                   size_t errlen);

/* The index of the word of cand[0..n) most likely meant by word, or
 * SIZE_MAX when none is close (cli_suggest's rules, counted in
 * characters: 高观乡 is one edit from 高观镇).  Empty words are never
 * meant. */
size_t cli_closest(const char *word, const char *const *cand, size_t n);

/* The id or name of the township of cat most likely meant by town, or
 * NULL when none is close. */
const char *cli_closest_town(const tally_catalog_t *cat, const char *town);

#endif
