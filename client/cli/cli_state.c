/* cli_state.c - the tally command (client/cli/): the user's client state
 * directory, and what `tally push` says about submissions of unknown fate
 * (see cli_state.h). */
#include "cli_state.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "text.h"
#include "vec.h"

/* mkdir -p, mode 0700 for what it creates. */
static int make_dirs(char *path, char *err, size_t errlen)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, 0700);
        int e = errno;
        struct stat st;
        bool ok = rc == 0 || (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode));
        if (!ok)
            text_format(err, errlen, "cannot create the state directory %s: %s", path,
                        strerror(e == EEXIST ? ENOTDIR : e));
        *p = c;
        if (!ok)
            return TALLY_EIO;
        if (c == '\0')
            return 0;
    }
}

int cli_state_dir(char *buf, size_t cap, char *err, size_t errlen)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    int n;
    if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(buf, cap, "%s/tally", xdg);
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] != '/') {
            struct passwd *pw = getpwuid(getuid());
            home = pw != NULL ? pw->pw_dir : NULL;
        }
        if (home == NULL || home[0] != '/') {
            text_format(err, errlen,
                        "no home directory to keep the client state in: set HOME or "
                        "XDG_STATE_HOME, or use --spool DIR");
            return TALLY_EINVAL;
        }
        n = snprintf(buf, cap, "%s/.local/state/tally", home);
    }
    if (n < 0 || (size_t)n >= cap) {
        text_format(err, errlen, "the state directory's path is longer than %zu bytes", cap - 1);
        return TALLY_ETOOLONG;
    }
    return make_dirs(buf, err, errlen);
}

bool cli_same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && S_ISDIR(sa.st_mode) &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void cli_csv_row(FILE *fp, const tally_sample_t *s, const cli_scales_t *sc)
{
    char num[48];
    int scale = sc != NULL ? cli_scales_of(sc, s->metric) : -1;
    fprintf(fp, "%s,%s\n", s->metric,
            csv_decimal_text(s->value, scale > 0 ? (unsigned)scale : 0, num, sizeof num));
}

char *cli_sub_csv(const char *sub, const tally_sample_t *samples, uint32_t n,
                  const cli_scales_t *sc, char *err, size_t errlen)
{
    size_t len = strlen(sub);
    if (len < 4 || strcmp(sub + len - 4, ".sub") != 0)
        return NULL;
    char *csv = strdup(sub);
    if (csv == NULL)
        return NULL;
    memcpy(csv + len - 4, ".csv", 4);
    FILE *fp = fopen(csv, "wx");
    if (fp == NULL && errno == EEXIST)
        return csv; /* written by an earlier run that stopped before reporting */
    if (fp == NULL) {
        text_format(err, errlen, "cannot write %s: %s", csv, strerror(errno));
        free(csv);
        return NULL;
    }
    fputs("metric,value\n", fp);
    for (uint32_t i = 0; i < n; i++)
        cli_csv_row(fp, &samples[i], sc);
    if (fclose(fp) != 0) {
        text_format(err, errlen, "cannot write %s: %s", csv, strerror(errno));
        free(csv);
        return NULL;
    }
    return csv;
}

void cli_unknown_add(cli_unknown_t *l, const tally_unknown_t *u)
{
    if (VEC_RESERVE(l->v, l->cap, l->n + 1) < 0) {
        l->oom = 1;
        return;
    }
    cli_unknown_entry_t *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    e->path = strdup(u->path);
    e->township = strdup(u->township);
    if (e->path == NULL || e->township == NULL) {
        free(e->path);
        free(e->township);
        l->oom = 1;
        return;
    }
    if (u->path[0] != '\0')
        e->csv = cli_sub_csv(u->path, u->samples, u->nsamples, l->scales, l->err, sizeof l->err);
    e->time_ms = u->time_ms;
    e->nsamples = u->nsamples;
    e->seq = u->seq;
    l->samples += u->nsamples;
    l->n++;
}

static void utc(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void cli_unknown_report(FILE *out, const cli_unknown_t *l)
{
    if (l->n == 0 && !l->oom)
        return;
    bool one = l->n == 1 && !l->oom;
    const char *It = one ? "It" : "They", *it = one ? "it" : "them", *its = one ? "its" : "their";
    fprintf(out,
            "tally push: warning: %zu earlier submission%s (%zu sample%s) may or may not have "
            "been counted.\n"
            "  %s %s made under a client id that had no acknowledgement for longer than tallyd\n"
            "  remembers client ids, so tally cannot tell whether tallyd counted %s, and will\n"
            "  not send %s again (that could count %s twice).  %s %s kept here:\n",
            l->n, l->n == 1 ? "" : "s", l->samples, l->samples == 1 ? "" : "s", It,
            one ? "was" : "were", it, it, it, It, one ? "is" : "are");
    const char *town = NULL, *csv = NULL;
    int64_t time_ms = 0;
    for (size_t i = 0; i < l->n; i++) {
        const cli_unknown_entry_t *e = &l->v[i];
        char when[32];
        utc(e->time_ms, when, sizeof when);
        if (e->csv != NULL || e->path[0] != '\0')
            fprintf(out, "  %s: %s, %s, %" PRIu32 " sample%s\n", e->csv ? e->csv : e->path,
                    e->township, when, e->nsamples, e->nsamples == 1 ? "" : "s");
        else
            fprintf(out,
                    "  submission %" PRIu64 " (not kept: no --spool): %s, %s, %" PRIu32
                    " sample%s\n",
                    e->seq, e->township, when, e->nsamples, e->nsamples == 1 ? "" : "s");
        if (town == NULL)
            town = e->township;
        if (csv == NULL && e->csv != NULL) {
            csv = e->csv;
            town = e->township;
            time_ms = e->time_ms;
        }
    }
    if (l->oom)
        fprintf(out, "  (and more that could not be listed for want of memory)\n");
    if (l->err[0] != '\0')
        fprintf(out, "  (%s)\n", l->err);
    fprintf(out, "  Check with `tally get --town %s` whether %s figures are in the totals;\n",
            town != NULL ? town : "TOWN", its);
    if (csv != NULL)
        fprintf(out,
                "  push the missing ones again deliberately, each with its own time and file:\n"
                "    tally push --town %s --time @%" PRId64 " --file %s\n"
                "  and then delete %s .sub and .csv files.\n",
                town, time_ms, csv, its);
    else
        fprintf(out, "  push the missing ones again deliberately.\n");
}

void cli_unknown_free(cli_unknown_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].csv);
        free(l->v[i].path);
        free(l->v[i].township);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}
