/* cli_names.c - the tally command (client/cli/): the catalog's names kept
 * on disk for pushes while the daemon cannot be asked (cli_names.h). */
#include "cli_names.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "cli_util.h"
#include "tally_error.h"
#include "vec.h"

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
    /* Every metric, a label unfit for a line left empty: a metric not
     * listed is one the catalog gives no decimal places. */
    for (size_t i = 0; i < tally_catalog_metrics(cat); i++) {
        const tally_metric_info_t *x = tally_catalog_metric(cat, i);
        if (plain(x->id))
            fprintf(m, "M\t%s\t%s\t%d\n", x->id, plain(x->label) ? x->label : "", x->scale);
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
                char *scale = strchr(b + 1, '\t');
                if (scale != NULL)
                    *scale = '\0'; /* a metric's label ends there */
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

/* Add metric id[0..len) with scale places to sc.  0 or TALLY_ENOMEM. */
static int scales_add(cli_scales_t *sc, const char *id, size_t len, int scale)
{
    if (VEC_RESERVE(sc->v, sc->cap, sc->n + 1) < 0)
        return TALLY_ENOMEM;
    if ((sc->v[sc->n].id = strndup(id, len)) == NULL)
        return TALLY_ENOMEM;
    sc->v[sc->n++].scale = scale;
    return 0;
}

int cli_scales_from_catalog(cli_scales_t *sc, const tally_catalog_t *cat)
{
    sc->known = true;
    for (size_t i = 0; i < tally_catalog_metrics(cat); i++) {
        const tally_metric_info_t *m = tally_catalog_metric(cat, i);
        if (m->scale > 0 && scales_add(sc, m->id, strlen(m->id), m->scale) < 0)
            return TALLY_ENOMEM;
    }
    return 0;
}

int cli_scales_load(cli_scales_t *sc, const char *dir, const char *server)
{
    char *buf = read_all(dir);
    char head[4200];
    snprintf(head, sizeof head, "# tally catalog of %s\n", server);
    bool ok = buf != NULL && strncmp(buf, head, strlen(head)) == 0;
    int rc = 0;
    for (char *line = ok ? buf + strlen(head) : ""; *line != '\0' && ok && rc == 0;) {
        char *end = strchr(line, '\n');
        if (end == NULL)
            break; /* a line cut short: not trusted */
        *end = '\0';
        char *a = strchr(line, '\t'), *b = a ? strchr(a + 1, '\t') : NULL;
        char *c = b ? strchr(b + 1, '\t') : NULL, *tail = NULL;
        if (line[0] == 'M' && a == line + 1 && b != NULL) {
            /* A line without a scale is of a version that kept none. */
            long scale = c != NULL ? strtol(c + 1, &tail, 10) : -1;
            ok = c != NULL && tail != c + 1 && *tail == '\0' && scale >= 0 && scale <= 9;
            if (ok && scale > 0)
                rc = scales_add(sc, a + 1, (size_t)(b - a - 1), (int)scale);
        }
        line = end + 1;
    }
    free(buf);
    sc->known = ok && rc == 0;
    return rc;
}

int cli_scales_of(const cli_scales_t *sc, const char *metric)
{
    if (!sc->known)
        return -1;
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->v[i].id, metric) == 0)
            return sc->v[i].scale;
    return 0; /* not listed: a metric without decimal places */
}

void cli_scales_free(cli_scales_t *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        free(sc->v[i].id);
    free(sc->v);
    memset(sc, 0, sizeof *sc);
}

bool cli_names_kept(const char *dir, const char *server)
{
    char *buf = read_all(dir);
    if (buf == NULL)
        return false;
    char head[4200];
    snprintf(head, sizeof head, "# tally catalog of %s\n", server);
    bool kept = strncmp(buf, head, strlen(head)) == 0;
    free(buf);
    return kept;
}

/* Figures in the order the digest reads them: by metric, then value. */
static int by_figure(const void *a, const void *b)
{
    const csv_sample_t *x = *(const csv_sample_t *const *)a, *y = *(const csv_sample_t *const *)b;
    int c = strcmp(x->metric, y->metric);
    return c != 0 ? c : (x->value > y->value) - (x->value < y->value);
}

int cli_pushed_digest(const char *server, const char *township, int64_t time_ms,
                      const csv_samples_t *s, char hex[CLI_PUSHED_HEX + 1])
{
    const csv_sample_t **v = malloc((s->n ? s->n : 1) * sizeof *v);
    if (v == NULL || sodium_init() < 0) {
        free(v);
        return TALLY_ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++)
        v[i] = &s->v[i];
    qsort(v, s->n, sizeof *v, by_figure);
    /* Each part ends with a NUL, which no name holds: no two contents
     * read as the same bytes. */
    crypto_generichash_state st;
    unsigned char out[CLI_PUSHED_HEX / 2];
    char num[32];
    crypto_generichash_init(&st, NULL, 0, sizeof out);
    const char *parts[] = {server ? "tally push 1" : "tally push 2", server ? server : township,
                           township};
    for (size_t i = 0; i < (server ? 3u : 2u); i++)
        crypto_generichash_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    int len = snprintf(num, sizeof num, "%" PRId64, time_ms);
    crypto_generichash_update(&st, (const unsigned char *)num, (size_t)len + 1);
    for (size_t i = 0; i < s->n; i++) {
        crypto_generichash_update(&st, (const unsigned char *)v[i]->metric,
                                  strlen(v[i]->metric) + 1);
        len = snprintf(num, sizeof num, "%" PRId64, v[i]->value);
        crypto_generichash_update(&st, (const unsigned char *)num, (size_t)len + 1);
    }
    crypto_generichash_final(&st, out, sizeof out);
    free(v);
    sodium_bin2hex(hex, CLI_PUSHED_HEX + 1, out, sizeof out);
    return 0;
}

#define PUSHED_HEAD "# tally pushes with --time\n"

/* One line of the pushed file, read: its digest and the rest. */
static bool pushed_line(const char *line, size_t len, cli_pushed_t *rec)
{
    if (len < CLI_PUSHED_HEX + 3 || line[CLI_PUSHED_HEX] != '\t')
        return false;
    char *end;
    long long ms = strtoll(line + CLI_PUSHED_HEX + 1, &end, 10);
    if (end == line + CLI_PUSHED_HEX + 1 || *end != '\t')
        return false;
    const char *how = end + 1;
    size_t hlen = (size_t)(line + len - how);
    rec->when_ms = ms;
    rec->first_seq = 0;
    if (hlen == 7 && memcmp(how, "spooled", 7) == 0) {
        rec->how = CLI_PUSHED_SPOOLED;
        return true;
    }
    if (hlen == 8 && memcmp(how, "accepted", 8) == 0) {
        rec->how = CLI_PUSHED_ACCEPTED;
        return true;
    }
    if (hlen > 6 && memcmp(how, "begun\t", 6) == 0 && how[6] >= '0' && how[6] <= '9') {
        errno = 0;
        unsigned long long seq = strtoull(how + 6, &end, 10);
        rec->how = CLI_PUSHED_BEGUN;
        rec->first_seq = seq;
        return errno == 0 && end == line + len && seq > 0;
    }
    return false;
}

int cli_pushed_find(const char *dir, const char *hex, cli_pushed_t *rec)
{
    char *buf = read_file(dir, CLI_PUSHED_FILE);
    if (buf == NULL)
        return 0;
    int found = 0;
    if (strncmp(buf, PUSHED_HEAD, strlen(PUSHED_HEAD)) == 0) {
        for (const char *line = buf + strlen(PUSHED_HEAD); *line != '\0';) {
            const char *end = strchr(line, '\n');
            if (end == NULL)
                break; /* a line cut short: not trusted */
            cli_pushed_t r;
            if (pushed_line(line, (size_t)(end - line), &r) &&
                memcmp(line, hex, CLI_PUSHED_HEX) == 0) {
                *rec = r; /* the last one is the latest */
                found = 1;
            }
            line = end + 1;
        }
    }
    free(buf);
    return found;
}

/* The whole lines from text on: how many. */
static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *line = text; line != NULL && (line = strchr(line, '\n')) != NULL; line++)
        n++;
    return n;
}

int cli_pushed_add(const char *dir, const char *hex, const cli_pushed_t *rec, char *err,
                   size_t errlen)
{
    char *old = read_file(dir, CLI_PUSHED_FILE);
    const char *first = old != NULL && strncmp(old, PUSHED_HEAD, strlen(PUSHED_HEAD)) == 0
                            ? old + strlen(PUSHED_HEAD)
                            : NULL;
    /* The last CLI_PUSHED_MAX - 1 lines stay, with this one after them. */
    size_t total = count_lines(first);
    size_t skip = total >= CLI_PUSHED_MAX ? total - (CLI_PUSHED_MAX - 1) : 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL) {
        free(old);
        return TALLY_ENOMEM;
    }
    fputs(PUSHED_HEAD, m);
    for (const char *line = first, *end; line != NULL && (end = strchr(line, '\n')) != NULL;
         line = end + 1) {
        cli_pushed_t r;
        if (skip > 0)
            skip--;
        else if (pushed_line(line, (size_t)(end - line), &r) &&
                 memcmp(line, hex, CLI_PUSHED_HEX) != 0)
            fwrite(line, 1, (size_t)(end + 1 - line), m);
    }
    if (rec != NULL && rec->how == CLI_PUSHED_BEGUN)
        fprintf(m, "%s\t%" PRId64 "\tbegun\t%" PRIu64 "\n", hex, rec->when_ms, rec->first_seq);
    else if (rec != NULL)
        fprintf(m, "%s\t%" PRId64 "\t%s\n", hex, rec->when_ms,
                rec->how == CLI_PUSHED_SPOOLED ? "spooled" : "accepted");
    free(old);
    if (fclose(m) != 0) {
        free(buf);
        return TALLY_ENOMEM;
    }
    atomic_file_opts_t o = {.mode = 0600};
    int rc =
        atomic_file_write(-1, dir, CLI_PUSHED_FILE, buf, len, &o, err, errlen) == 0 ? 0 : TALLY_EIO;
    free(buf);
    return rc;
}

/* word re-spelt into out (cap bytes) with one byte for each character
 * (UTF-8 sequence), numbered in the order first met in chars and lens
 * (*n of max so far, shared by the words compared), so that the edits
 * suggest_pick counts are characters: 高观乡 is one from 高观镇, not three
 * bytes.  false when it does not fit. */
static bool by_chars(const char *word, const char **chars, size_t *lens, size_t *n, size_t max,
                     char *out, size_t cap)
{
    size_t k = 0;
    for (const char *s = word; *s != '\0';) {
        unsigned char b = (unsigned char)*s;
        size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        len = strnlen(s, len);
        size_t i = 0;
        while (i < *n && !(lens[i] == len && memcmp(chars[i], s, len) == 0))
            i++;
        if (i == *n && *n == max)
            return false;
        if (i == *n) {
            chars[i] = s;
            lens[(*n)++] = len;
        }
        if (k + 1 >= cap)
            return false;
        out[k++] = (char)(i + 1);
        s += len;
    }
    out[k] = '\0';
    return true;
}

size_t cli_closest(const char *word, const char *const *cand, size_t n)
{
    size_t best = SIZE_MAX, best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        const char *chars[2 * SUGGEST_WORD_MAX];
        size_t lens[2 * SUGGEST_WORD_MAX], nchars = 0, max = 2 * SUGGEST_WORD_MAX;
        char a[SUGGEST_WORD_MAX + 1], b[SUGGEST_WORD_MAX + 1];
        if (cand[i][0] == '\0' || !by_chars(word, chars, lens, &nchars, max, a, sizeof a) ||
            !by_chars(cand[i], chars, lens, &nchars, max, b, sizeof b))
            continue;
        const char *bp = b;
        size_t d = cli_edit_distance(a, b);
        if (cli_suggest(a, &bp, 1) != NULL && d < best_d) {
            best = i;
            best_d = d;
        }
    }
    return best;
}

const char *cli_closest_town(const tally_catalog_t *cat, const char *town)
{
    size_t n = tally_catalog_townships(cat);
    const char **cand = malloc(2 * n * sizeof *cand + 1);
    if (cand == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const tally_township_info_t *t = tally_catalog_township(cat, i);
        cand[2 * i] = t->id;
        cand[2 * i + 1] = t->name;
    }
    size_t best = cli_closest(town, cand, 2 * n);
    const char *found = best != SIZE_MAX ? cand[best] : NULL;
    free(cand);
    return found;
}
