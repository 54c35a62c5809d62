/* Unit tests of the copy of a backup to the operator's machine
 * (BACKUP_FETCH, PROTOCOL.md 8.27): libtally's tally_backup_fetch_req and
 * the `tally backup --copy-to` command (with --name and --keep) that
 * prints its answer, against a scripted daemon (client_backup_fake.h).
 * It serves the files of a real directory (of 0, 1, 262144, 262145 and
 * 700001 bytes), in order or out of it, late (a fetch unanswered until it
 * is asked again, then the late reply with other bytes first), BUSY once
 * or always, slowly, with a size, a count of files or a file name that
 * disagrees with the others, or refuses the fetches (FORBIDDEN,
 * UNAVAILABLE, OUT_OF_RANGE, BAD_NAME, NO_SUCH_BACKUP, UNKNOWN_TYPE) or
 * never answers; with a BLAKE2SUMS among the files, which the copy must
 * match, or without (an older daemon's backup).  `tally backup --verify`
 * on copies made, damaged, without BLAKE2SUMS, and on paths that hold
 * none.  Asking for a backup and listing them (BACKUP_REQ,
 * BACKUP_LIST_REQ) are test_client_backup.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "atomic_file.h"
#include "b2sums.h"
#include "client_backup_fake.h"

#define OTHER_NAME "backup-20261205T020000Z"
#define SRC_BYTES  1224291 /* 0 + 1 + 262144 + 262145 + 700001 */

static void start_fetch(fake_t *f, enum fetch_mode mode, unsigned twists)
{
    f->fetch_mode = mode;
    f->twists = twists;
    start(f, WRITTEN);
}

/* ---- libtally: a backup copied (BACKUP_FETCH) ---- */

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* f->d.dir/rel */
static const char *at(const fake_t *f, const char *rel, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", f->d.dir, rel);
    return buf;
}

/* Read all of path into a new buffer; *len its size. */
static char *slurp_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    fclose(fp);
    *len = (size_t)size;
    return buf;
}

/* dir holds exactly the source's files, byte for byte, and nothing
 * else. */
static void assert_copied(const fake_t *f, const char *dir)
{
    uint32_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, f->backup.n);
    for (uint32_t i = 0; i < f->backup.n; i++) {
        char a[512], b[512];
        snprintf(a, sizeof a, "%s/%s", f->src, f->backup.files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, f->backup.files[i]);
        size_t la, lb;
        char *da = slurp_all(a, &la), *db = slurp_all(b, &lb);
        assert_int_equal(lb, la);
        assert_memory_equal(db, da, la);
        free(da);
        free(db);
    }
}

/* tally_backup_fetch_req of name into f->d.dir/rel_into, waiting at most
 * timeout_ms without progress. */
static int fetch(fake_t *f, const char *name, const char *rel_into, int timeout_ms,
                 tally_backup_copy_t *out, char *err, size_t errlen)
{
    char into[256];
    tally_request_t req = {.timeout_ms = timeout_ms, .errbuf = err, .errbuf_len = errlen};
    return tally_backup_fetch_req(f->d.ep, &req, name, at(f, rel_into, into, sizeof into), out);
}

/* A whole copy into f->d.dir/rel_into with twists; checks it. */
static void copy_ok(fake_t *f, unsigned twists, const char *rel_into)
{
    start_fetch(f, SERVE, twists);
    tally_backup_copy_t c;
    char err[512], want[256];
    assert_int_equal(fetch(f, BNAME, rel_into, 5000, &c, err, sizeof err), 0);
    assert_string_equal(err, "");
    snprintf(want, sizeof want, "%s/%s/" BNAME, f->d.dir, rel_into);
    assert_string_equal(c.dir, want);
    assert_int_equal(c.files, 5);
    assert_int_equal(c.bytes, SRC_BYTES);
    assert_copied(f, c.dir);
    char partial[256];
    snprintf(partial, sizeof partial, "%s/%s/.partial-" BNAME, f->d.dir, rel_into);
    assert_false(exists(partial));
}

static void test_fetch_copied(void **state)
{
    fake_t *f = *state;
    copy_ok(f, 0, "into");
    /* one fetch a piece: 1 + 1 + 1 + 2 + 3 */
    assert_int_equal(f->fetches, 8);
}

static void test_fetch_out_of_order(void **state)
{
    fake_t *f = *state;
    copy_ok(f, T_REVERSE, "into");
    assert_int_equal(f->fetches, 8);
    assert_true(f->reordered >= 1);
}

/* A fetch unanswered is asked again (TALLY_FETCH_RESEND_MS is 200 here);
 * the first answer, coming late and with other bytes, is passed over. */
static void test_fetch_resent(void **state)
{
    fake_t *f = *state;
    int64_t t0 = (int64_t)time(NULL);
    copy_ok(f, T_LATE, "into");
    assert_int_equal(f->fetches, 9);
    assert_true(f->late_sent);
    assert_true((int64_t)time(NULL) - t0 < 5);
}

static void test_fetch_busy_once(void **state)
{
    fake_t *f = *state;
    copy_ok(f, T_BUSY_ONCE | T_REVERSE, "into");
    assert_int_equal(f->fetches, 9);
}

/* timeout_ms bounds the wait for each piece, not the whole copy: 100 ms
 * a piece, 8 pieces, 400 ms without progress allowed. */
static void test_fetch_slow(void **state)
{
    fake_t *f = *state;
    /* Four fetches take the fake 400 ms: not asked again meanwhile. */
    setenv("TALLY_FETCH_RESEND_MS", "2000", 1);
    start_fetch(f, SERVE, T_SLOW);
    tally_backup_copy_t c;
    char err[512];
    int rc = fetch(f, BNAME, "into", 400, &c, err, sizeof err);
    setenv("TALLY_FETCH_RESEND_MS", "200", 1);
    assert_int_equal(rc, 0);
    assert_int_equal(f->fetches, 8);
    assert_true(c.ms >= 700);
    assert_copied(f, c.dir);
}

/* A leftover of an interrupted copy is removed first; into exists. */
static void test_fetch_leftover(void **state)
{
    fake_t *f = *state;
    char p[256];
    assert_int_equal(mkdir(at(f, "into", p, sizeof p), 0700), 0);
    assert_int_equal(mkdir(at(f, "into/.partial-" BNAME, p, sizeof p), 0700), 0);
    assert_int_equal(write_src(p, "history.db", 10, 9), 0);
    assert_int_equal(write_src(p, "stale", 10, 9), 0);
    copy_ok(f, 0, "into");
}

typedef struct seen {
    int calls;
    tally_backup_progress_t last;
    bool monotonic;
} seen_t;

static void on_progress(void *ctx, const tally_backup_progress_t *p)
{
    seen_t *s = ctx;
    if (s->calls > 0 && p->bytes_done < s->last.bytes_done)
        s->monotonic = false;
    s->calls++;
    s->last = *p;
}

static void test_fetch_progress(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, T_REVERSE);
    char into[256];
    tally_backup_copy_t c;
    seen_t seen = {.monotonic = true};
    assert_int_equal(tally_backup_fetch_progress_req(f->d.ep, NULL, BNAME,
                                                     at(f, "into", into, sizeof into), on_progress,
                                                     &seen, &c),
                     0);
    assert_int_equal(seen.calls, 8);
    assert_true(seen.monotonic);
    assert_int_equal(seen.last.files, 5);
    assert_int_equal(seen.last.files_sized, 5);
    assert_int_equal(seen.last.files_done, 5);
    assert_int_equal(seen.last.bytes, SRC_BYTES);
    assert_int_equal(seen.last.bytes_done, SRC_BYTES);
}

/* After a failure nothing is left: no INTO/NAME, no partial directory,
 * and no INTO when the copy made it. */
static void assert_nothing_left(fake_t *f, const char *rel_into, bool into_stays)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s/" BNAME, f->d.dir, rel_into);
    assert_false(exists(p));
    snprintf(p, sizeof p, "%s/%s/.partial-" BNAME, f->d.dir, rel_into);
    assert_false(exists(p));
    assert_int_equal(exists(at(f, rel_into, p, sizeof p)), into_stays);
}

/* The answers disagree: EMALFORMED saying how, and nothing left. */
static void test_fetch_disagree(void **state)
{
    fake_t *f = *state;
    static const struct {
        unsigned twist;
        const char *says;
    } cases[] = {
        {T_SIZE,
         "the daemon's answers disagree: history.db (file 4) had 700001 bytes, then 700002"},
        {T_FILES, "the daemon's answers disagree: the backup had 5 files, then 6"},
        {T_NAME, "the daemon's answers disagree: files 0 and 1 are both called a-empty"},
    };
    start_fetch(f, SERVE, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->twists = cases[i].twist;
        tally_backup_copy_t c;
        char err[512];
        assert_int_equal(fetch(f, BNAME, "into", 5000, &c, err, sizeof err), TALLY_EMALFORMED);
        assert_string_equal(err, cases[i].says);
        assert_nothing_left(f, "into", false);
    }
}

/* The daemon's refusals: their codes, its words, nothing left. */
static void test_fetch_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum fetch_mode mode;
        const char *name;
        int code;
        const char *words;
    } cases[] = {
        {F_FORBID, BNAME, TALLY_EFORBIDDEN, "which may not fetch backups"},
        {F_UNAVAIL, BNAME, TALLY_EUNAVAIL, "cannot read history.db of " BNAME},
        {F_RANGE, BNAME, TALLY_ERANGE, "beyond the file's 12 bytes"},
        {F_BADNAME, BNAME, TALLY_EBADNAME, "not a backup's name"},
        {SERVE, OTHER_NAME, TALLY_ENOBACKUP, "no backup of that name is kept"},
        {F_OLD, BNAME, TALLY_ETYPE, "not a request the daemon answers"},
    };
    char p[256];
    assert_int_equal(mkdir(at(f, "kept", p, sizeof p), 0700), 0);
    start_fetch(f, SERVE, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->fetch_mode = cases[i].mode;
        tally_backup_copy_t c;
        char err[512];
        assert_int_equal(fetch(f, cases[i].name, "kept", 5000, &c, err, sizeof err), cases[i].code);
        assert_non_null(strstr(err, cases[i].words));
        assert_nothing_left(f, "kept", true);
        assert_int_equal(fetch(f, cases[i].name, "new", 5000, &c, err, sizeof err), cases[i].code);
        assert_nothing_left(f, "new", false);
    }
}

/* A failure after some files are written: they go too. */
static void test_fetch_fails_midway(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, T_FAIL_4);
    tally_backup_copy_t c;
    char err[512];
    assert_int_equal(fetch(f, BNAME, "into", 5000, &c, err, sizeof err), TALLY_EUNAVAIL);
    assert_true(f->fetches >= 4);
    assert_nothing_left(f, "into", false);
}

/* BUSY until the wait without progress ends: TALLY_EBUSY, having asked
 * again every 200 ms. */
static void test_fetch_busy(void **state)
{
    fake_t *f = *state;
    start_fetch(f, F_BUSY, 0);
    tally_backup_copy_t c;
    char err[512];
    assert_int_equal(fetch(f, BNAME, "into", 700, &c, err, sizeof err), TALLY_EBUSY);
    assert_string_equal(err, "32 fetches are being read");
    assert_true(f->fetches >= 3 && f->fetches <= 5);
    assert_nothing_left(f, "into", false);
}

/* No answer at all: asked again, then TALLY_ETIMEDOUT. */
static void test_fetch_silent(void **state)
{
    fake_t *f = *state;
    start_fetch(f, F_SILENT, 0);
    tally_backup_copy_t c;
    char err[512], into[256];
    tally_request_t req = {.timeout_ms = 500, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(
        tally_backup_fetch_req(f->d.ep, &req, BNAME, at(f, "into", into, sizeof into), &c),
        TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_UP);
    assert_string_equal(err, "no answer in time");
    assert_true(f->fetches >= 2);
    assert_nothing_left(f, "into", false);
}

static void test_fetch_exists(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, 0);
    char p[256], want[512];
    assert_int_equal(mkdir(at(f, "into", p, sizeof p), 0700), 0);
    assert_int_equal(mkdir(at(f, "into/" BNAME, p, sizeof p), 0700), 0);
    tally_backup_copy_t c;
    char err[512];
    assert_int_equal(fetch(f, BNAME, "into", 5000, &c, err, sizeof err), TALLY_EEXIST);
    snprintf(want, sizeof want, "%s exists already: remove it, or copy into another directory", p);
    assert_string_equal(err, want);
    assert_string_equal(c.dir, p);
    assert_int_equal(f->fetches, 0);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s/into/.partial-" BNAME, f->d.dir);
    assert_false(exists(p));
}

/* Local failures and bad arguments. */
static void test_fetch_local(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, 0);
    tally_backup_copy_t c;
    char err[512], want[512], p[256];
    /* into's parent is missing */
    assert_int_equal(fetch(f, BNAME, "no/such", 5000, &c, err, sizeof err), TALLY_EIO);
    snprintf(want, sizeof want, "cannot create the directory %s: No such file or directory",
             at(f, "no/such", p, sizeof p));
    assert_string_equal(err, want);
    /* into is a file */
    assert_int_equal(write_src(f->d.dir, "plain", 1, 0), 0);
    assert_int_equal(fetch(f, BNAME, "plain", 5000, &c, err, sizeof err), TALLY_EIO);
    assert_non_null(strstr(err, "Not a directory"));
    assert_int_equal(f->fetches, 0);

    assert_int_equal(fetch(f, "backup-2026", "into", 5000, &c, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "'backup-2026' is not a backup's name: backup-YYYYMMDDTHHMMSSZ, "
                             "optionally followed by -N (1 to 3 digits)");
    assert_int_equal(fetch(f, "../" BNAME, "into", 5000, &c, err, sizeof err), TALLY_EINVAL);
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_fetch_req(f->d.ep, &req, BNAME, "", &c), TALLY_EINVAL);
    assert_int_equal(tally_backup_fetch_req(f->d.ep, &req, NULL, "x", &c), TALLY_EINVAL);
    assert_int_equal(tally_backup_fetch_req(f->d.ep, &req, BNAME, "x", NULL), TALLY_EINVAL);
    assert_string_equal(err, "nowhere to put the copy's description");
    char longer[TALLY_PATH_MAX + 2];
    memset(longer, 'd', sizeof longer - 1);
    longer[0] = '/';
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(tally_backup_fetch_req(f->d.ep, &req, BNAME, longer, &c), TALLY_EINVAL);
    assert_non_null(strstr(err, "would be longer than 1024 bytes"));
    assert_int_equal(tally_backup_fetch_req("bogus://x", &req, BNAME, "x", &c), TALLY_EINVAL);
    assert_int_equal(f->fetches, 0);
    assert_false(exists(at(f, "into", p, sizeof p)));
}

/* ---- libtally: the copy checked against BLAKE2SUMS ---- */

/* Give the fake's backup a BLAKE2SUMS of its five files, as tallyd
 * writes it. */
static void add_sums(fake_t *f)
{
    int dfd = open(f->src, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    char *names[5], err[512];
    for (int i = 0; i < 5; i++)
        names[i] = f->backup.files[i];
    assert_int_equal(b2sums_write(dfd, f->src, names, 5, NULL, NULL, err, sizeof err), 0);
    close(dfd);
    assert_int_equal(fake_backup_load(&f->backup, f->src, BNAME), 0);
    assert_int_equal(f->backup.n, 6);
}

/* Flip a byte of path at offset. */
static void flip(const char *path, off_t offset)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, offset), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, offset), 1);
    close(fd);
}

static void test_fetch_checked(void **state)
{
    fake_t *f = *state;
    add_sums(f);
    start_fetch(f, SERVE, T_REVERSE);
    tally_backup_copy_t c;
    char err[512];
    assert_int_equal(fetch(f, BNAME, "into", 5000, &c, err, sizeof err), 0);
    assert_int_equal(c.files, 6);
    assert_copied(f, c.dir); /* BLAKE2SUMS among them */
    int dfd = open(c.dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    b2sums_count_t n;
    assert_int_equal(b2sums_check(dfd, c.dir, NULL, NULL, &n, err, sizeof err), B2SUMS_OK);
    close(dfd);
    assert_int_equal(n.files, 5);
    assert_int_equal(n.bytes, SRC_BYTES);
}

/* A backup whose file changed on the daemon's host after it was written,
 * or that holds a file its BLAKE2SUMS does not list, is not copied:
 * TALLY_EDAMAGED naming the file, nothing left behind. */
static void test_fetch_damaged(void **state)
{
    fake_t *f = *state;
    add_sums(f);
    char p[512], q[512], err[1024];
    snprintf(p, sizeof p, "%s/history.db", f->src);
    flip(p, 300000);
    start_fetch(f, SERVE, 0);
    tally_backup_copy_t c;
    assert_int_equal(fetch(f, BNAME, "into", 5000, &c, err, sizeof err), TALLY_EDAMAGED);
    assert_string_equal(err, "the backup on the daemon's host fails its own BLAKE2SUMS: " BNAME
                             "/history.db differs from its digest in BLAKE2SUMS (700001 bytes): "
                             "damaged, or changed since the backup was written");
    assert_false(exists(at(f, "into", q, sizeof q)));
    flip(p, 300000);
    assert_int_equal(write_src(f->src, "e-extra", 3, 9), 0);
    assert_int_equal(fake_backup_load(&f->backup, f->src, BNAME), 0);
    assert_int_equal(mkdir(at(f, "kept", q, sizeof q), 0700), 0);
    assert_int_equal(fetch(f, BNAME, "kept", 5000, &c, err, sizeof err), TALLY_EDAMAGED);
    assert_non_null(strstr(err, BNAME "/e-extra is not in BLAKE2SUMS"));
    assert_true(exists(q)); /* not made by the copy: left */
    assert_false(exists(at(f, "kept/" BNAME, q, sizeof q)));
    assert_false(exists(at(f, "kept/.partial-" BNAME, q, sizeof q)));
    /* The command says so, and that copying it again would not help. */
    char args[512];
    snprintf(args, sizeof args, "--name " BNAME " --copy-to %s/copies", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 1);
    assert_string_equal(f->out, "");
    assert_non_null(strstr(f->err, "tally backup: nothing copied: the backup on the daemon's "
                                   "host fails its own BLAKE2SUMS: " BNAME "/e-extra is not in"));
    assert_non_null(strstr(f->err, "have a new backup written and copied (tally backup "
                                   "--copy-to DIR, without --name)"));
    assert_null(strstr(f->err, "to copy it later"));
}

/* ---- the tally command: --copy-to and --name ---- */

#define CHECKED   "; every file matches its BLAKE2SUMS)\n"
#define UNCHECKED "; not checked: the backup has no BLAKE2SUMS, its tallyd predates them)\n"

/* f->out is "<want_prefix>N ms; <checked or not>)\n" (under 10 s), or
 * "... X.X s; ...)\n". */
static void assert_copied_line(const char *out, const char *want_prefix, bool checked)
{
    assert_memory_equal(out, want_prefix, strlen(want_prefix));
    const char *rest = out + strlen(want_prefix);
    double took;
    char unit[4] = "", tail[8] = "";
    assert_int_equal(sscanf(rest, "%lf %3[ms]%7s", &took, unit, tail), 3);
    assert_true(strcmp(unit, "ms") == 0 || strcmp(unit, "s") == 0);
    assert_true(strcmp(unit, "ms") != 0 || (took == (int)took && took < 10000));
    assert_string_equal(tail, ";");
    const char *end = checked ? CHECKED : UNCHECKED;
    assert_true(strlen(rest) > strlen(end));
    assert_string_equal(rest + strlen(rest) - strlen(end), end);
}

static void test_cli_copy(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, T_REVERSE);
    char args[512], dir[256], want[1024];
    snprintf(args, sizeof args, "--copy-to %s/copies", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->err, "");
    snprintf(dir, sizeof dir, "%s/copies/" BNAME, f->d.dir);
    snprintf(want, sizeof want,
             "backup written: " PATH " (5 files, 45.2 MB, 127 ms)\n"
             "copied to %s (5 files, 1.2 MB, in ",
             dir);
    assert_copied_line(f->out, want, false);
    assert_copied(f, dir);
    assert_int_equal(f->backup_reqs, 1);
}

static void test_cli_copy_json(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, 0);
    char args[512], want[1024];
    snprintf(args, sizeof args, "--json --copy-to %s/copies", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 0);
    snprintf(want, sizeof want,
             "{\"path\":\"" PATH "\",\"files\":5,\"bytes\":45200000,\"ms\":127,\"copy\":{\"dir\":"
             "\"%s/copies/" BNAME "\",\"files\":5,\"bytes\":%d,\"ms\":",
             f->d.dir, SRC_BYTES);
    assert_memory_equal(f->out, want, strlen(want));
    assert_string_equal(f->out + strlen(f->out) - 3, "}}\n");
    /* --name: no backup written, the name instead of the path */
    snprintf(args, sizeof args, "--json --name " BNAME " --copy-to %s/again", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 0);
    snprintf(want, sizeof want,
             "{\"name\":\"" BNAME "\",\"copy\":{\"dir\":\"%s/again/" BNAME
             "\",\"files\":5,\"bytes\":%d,\"ms\":",
             f->d.dir, SRC_BYTES);
    assert_memory_equal(f->out, want, strlen(want));
    assert_string_equal(f->out + strlen(f->out) - 19, ",\"checked\":false}}\n");
    assert_int_equal(f->backup_reqs, 1);
}

/* A backup with BLAKE2SUMS: the line and the JSON say the copy matched. */
static void test_cli_copy_checked(void **state)
{
    fake_t *f = *state;
    add_sums(f);
    start_fetch(f, SERVE, 0);
    char args[512], want[1024];
    snprintf(args, sizeof args, "--copy-to %s/copies", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->err, "");
    snprintf(want, sizeof want,
             "backup written: " PATH " (5 files, 45.2 MB, 127 ms)\n"
             "copied to %s/copies/" BNAME " (6 files, 1.2 MB, in ",
             f->d.dir);
    assert_copied_line(f->out, want, true);
    snprintf(args, sizeof args, "--json --name " BNAME " --copy-to %s/again", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out + strlen(f->out) - 18, ",\"checked\":true}}\n");
}

/* `tally backup OPTS--verify DIR<rel>`, DIR the fake's directory; its
 * exit status must be status. */
static void verify_at(fake_t *f, const char *opts, const char *rel, int status)
{
    char args[512];
    snprintf(args, sizeof args, "%s--verify %s%s", opts, f->d.dir, rel);
    run(f, args);
    assert_int_equal(f->status, status);
}

/* --verify: copies that match, one damaged, one without BLAKE2SUMS,
 * paths that hold none; tallyd is never asked. */
static void test_cli_verify(void **state)
{
    fake_t *f = *state;
    add_sums(f);
    start_fetch(f, SERVE, 0);
    char args[512], want[2048], p[512];
    snprintf(args, sizeof args, "--name " BNAME " --copy-to %s/copies", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 0);
    int fetches = f->fetches;
    verify_at(f, "", "/copies", 0);
    snprintf(want, sizeof want,
             "%s/copies/" BNAME
             ": ok, BLAKE2SUMS and the 5 files it lists (1.2 MB), each matching\n",
             f->d.dir);
    assert_string_equal(f->out, want);
    assert_string_equal(f->err, "");
    verify_at(f, "", "/copies/" BNAME "//", 0);
    assert_string_equal(f->out, want);
    verify_at(f, "--json ", "/copies", 0);
    snprintf(want, sizeof want,
             "{\"verified\":[{\"dir\":\"%s/copies/" BNAME
             "\",\"status\":\"ok\",\"files\":5,\"bytes\":%d}]}\n",
             f->d.dir, SRC_BYTES);
    assert_string_equal(f->out, want);
    /* An older copy without BLAKE2SUMS comes first (by its time). */
    assert_int_equal(mkdir(at(f, "copies/" OTHER_NAME, p, sizeof p), 0700), 0);
    assert_int_equal(write_src(p, "history.db", 10, 1), 0);
    verify_at(f, "", "/copies", 1);
    snprintf(want, sizeof want,
             "%s/copies/" OTHER_NAME ": not checked: it has no BLAKE2SUMS (written by a tallyd "
             "that predates them)\n"
             "%s/copies/" BNAME
             ": ok, BLAKE2SUMS and the 5 files it lists (1.2 MB), each matching\n"
             "2 backups checked in %s/copies: 1 ok, 0 damaged, 1 without BLAKE2SUMS, 0 "
             "unreadable\n",
             f->d.dir, f->d.dir, f->d.dir);
    assert_string_equal(f->out, want);
    assert_int_equal(atomic_dir_remove_flat(AT_FDCWD, p), 0);
    /* A byte of the copy changed. */
    flip(at(f, "copies/" BNAME "/c-chunk", p, sizeof p), 1000);
    verify_at(f, "", "/copies", 1);
    snprintf(want, sizeof want,
             "%s/copies/" BNAME ": DAMAGED: %s/copies/" BNAME "/c-chunk differs from its digest "
             "in BLAKE2SUMS (262144 bytes): damaged, or changed since the backup was written\n",
             f->d.dir, f->d.dir);
    assert_string_equal(f->out, want);
    verify_at(f, "--json ", "/copies", 1);
    assert_non_null(strstr(f->out, "\"status\":\"damaged\",\"error\":\""));
    /* A directory holding BLAKE2SUMS is one backup, whatever its name. */
    verify_at(f, "", "/src", 0);
    /* Nothing to check; nothing there. */
    verify_at(f, "", "", 1);
    assert_non_null(strstr(f->err, " holds no backup: give a backup-* directory"));
    verify_at(f, "", "/nope", 4);
    assert_non_null(strstr(f->err, "/nope: No such file or directory"));
    run(f, "--verify");
    assert_int_equal(f->status, 2);
    run(f, "--verify=");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "--verify needs a path"));
    run(f, "--verify x --copy-to y");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "--verify checks backups already here: it takes no "
                                   "--copy-to, --name or --keep"));
    run(f, "--help");
    assert_non_null(strstr(f->out, "tally backup [--json] --verify PATH"));
    /* A --copy-to that cannot be made: said before tallyd is asked to
     * write a backup the copy could not take. */
    snprintf(args, sizeof args, "--copy-to %s/no/such", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "/no/such': its parent "));
    assert_non_null(strstr(f->err, "is not a directory (DIR is created when missing, not its "
                                   "parents)"));
    assert_int_equal(f->fetches, fetches);
    assert_int_equal(f->backup_reqs, 0);
}

/* --name copies a backup tallyd keeps, without asking for a new one;
 * a second time the directory exists. */
static void test_cli_copy_name(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, 0);
    char args[512], dir[256], want[1024];
    snprintf(args, sizeof args, "--name " BNAME " --copy-to %s/copies", f->d.dir);
    run(f, args);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->err, "");
    snprintf(dir, sizeof dir, "%s/copies/" BNAME, f->d.dir);
    snprintf(want, sizeof want, "copied to %s (5 files, 1.2 MB, in ", dir);
    assert_copied_line(f->out, want, false);
    assert_copied(f, dir);
    assert_int_equal(f->backup_reqs, 0);
    int fetches = f->fetches;
    run(f, args);
    assert_int_equal(f->status, 1);
    assert_string_equal(f->out, "");
    snprintf(want, sizeof want,
             "tally backup: %s exists already: remove it, or give --copy-to another directory\n",
             dir);
    assert_string_equal(f->err, want);
    assert_int_equal(f->fetches, fetches);
}

/* Make dir/rel a directory holding one file, or (file) a file. */
static void make_entry(const char *dir, const char *rel, bool file)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (file) {
        FILE *fp = fopen(p, "w");
        assert_non_null(fp);
        fclose(fp);
        return;
    }
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/%s/history.db", dir, rel);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs("x", fp);
    fclose(fp);
}

static bool exists_in(const char *dir, const char *rel)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return lstat(p, &st) == 0;
}

/* --keep: the oldest copies go, by the time in their names and then -N
 * (-9 before -10); the copy just made stays even when it is the oldest;
 * nothing that is not a copy is touched. */
static void test_cli_copy_keep(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, 0);
    char into[256], args[512], want[1024], p[600];
    snprintf(into, sizeof into, "%s/copies", f->d.dir);
    assert_int_equal(mkdir(into, 0700), 0);
    make_entry(into, "backup-20261101T000000Z", false);
    make_entry(into, "backup-20261102T000000Z-10", false);
    make_entry(into, "backup-20261102T000000Z-9", false);
    make_entry(into, "backup-20261103T000000Z", false); /* holds a directory: not a copy */
    make_entry(into, "backup-20261103T000000Z/sub", false);
    make_entry(into, "backup-20261105T000000Z", true); /* a file */
    make_entry(into, "notes", false);
    make_entry(into, ".partial-backup-20261106T000000Z", false); /* a copy under way */
    snprintf(p, sizeof p, "%s/backup-20261101T000000Z", into);
    char link[600];
    snprintf(link, sizeof link, "%s/backup-20261104T000000Z", into);
    assert_int_equal(symlink(p, link), 0); /* a link named like a copy */

    snprintf(args, sizeof args, "--copy-to %s --keep 3", into);
    run(f, args);
    assert_int_equal(f->status, 0);
    assert_string_equal(f->err, "");
    snprintf(want, sizeof want, "removed 1 older copy from %s: backup-20261101T000000Z\n", into);
    assert_non_null(strstr(f->out, want));
    assert_false(exists_in(into, "backup-20261101T000000Z"));
    static const char *const left[] = {
        "backup-20261102T000000Z-10",       "backup-20261102T000000Z-9",
        "backup-20261103T000000Z",          "backup-20261104T000000Z",
        "backup-20261105T000000Z",          "notes",
        ".partial-backup-20261106T000000Z", BNAME};
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
        assert_true(exists_in(into, left[i]));

    /* A copy newer than the one made now: the one made now stays. */
    make_entry(into, "backup-20991231T000000Z", false);
    snprintf(p, sizeof p, "rm -r %s/" BNAME, into);
    assert_int_equal(system(p), 0);
    snprintf(args, sizeof args, "--json --name " BNAME " --copy-to %s --keep 1", into);
    run(f, args);
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, ",\"removed\":[\"backup-20261102T000000Z-9\","
                                   "\"backup-20261102T000000Z-10\","
                                   "\"backup-20991231T000000Z\"]}\n"));
    assert_true(exists_in(into, BNAME));
    assert_true(exists_in(into, "backup-20261103T000000Z/sub"));
    assert_true(exists_in(into, "notes"));

    /* Nothing to remove: no line, "removed":[]. */
    snprintf(p, sizeof p, "rm -r %s/" BNAME, into);
    assert_int_equal(system(p), 0);
    snprintf(args, sizeof args, "--name " BNAME " --copy-to %s --keep 5", into);
    run(f, args);
    assert_string_equal(f->err, "");
    assert_int_equal(f->status, 0);
    assert_null(strstr(f->out, "removed"));

    run(f, "--keep 0 --copy-to x");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: --keep '0' is not a number of copies, 1 to 100000\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "--keep -3 --copy-to x");
    assert_int_equal(f->status, 2);
    run(f, "--keep 3");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: --keep says how many copies to keep: it needs "
                                "--copy-to DIR\n"
                                "Try 'tally backup --help' for more information.\n");
}

/* Each refusal of the copy: its status and what to do. */
static void test_cli_copy_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum fetch_mode mode;
        const char *name; /* NULL: a new backup */
        int status;
        const char *says;
    } cases[] = {
        {SERVE, OTHER_NAME, 1,
         "keeps no backup " OTHER_NAME ": it keeps only its newest [backup] keep backups "
         "(tallyd.conf(5))"},
        {F_FORBID, BNAME, 1,
         "admin key only: give --cert the secret certificate of a key in its [security] "
         "admin_keys (tallyd.conf(5))\n"},
        {F_OLD, NULL, 1,
         "tally backup: this tallyd cannot send backups; copy " PATH " from its host\n"},
        {F_OLD, BNAME, 1,
         "tally backup: this tallyd cannot send backups; copy " BNAME
         " from its [backup] dir on its host\n"},
        {F_UNAVAIL, NULL, 1, "tally backup: cannot copy " BNAME " from tallyd at ipc://"},
        {F_UNAVAIL, NULL, 1,
         "tally backup: the backup is kept on tallyd's host; to copy it later: tally backup "
         "--name " BNAME " --copy-to DIR\n"},
        {F_BUSY, BNAME, 1,
         "stayed busy sending other backups' files for 0.5 s (32 fetches "
         "are being read); try again once they are done\n"},
        {F_SILENT, BNAME, 3, "within 0.5 s"},
    };
    start_fetch(f, SERVE, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->fetch_mode = cases[i].mode;
        char args[512], p[256];
        snprintf(args, sizeof args, "--timeout 0.5%s%s --copy-to %s/copies",
                 cases[i].name ? " --name " : "", cases[i].name ? cases[i].name : "", f->d.dir);
        run(f, args);
        assert_int_equal(f->status, cases[i].status);
        if (strstr(f->err, cases[i].says) == NULL)
            fail_msg("case %zu: '%s' not in: %s", i, cases[i].says, f->err);
        assert_false(exists(at(f, "copies", p, sizeof p)));
    }
    /* The copy written here fails: status 4, naming the directory. */
    f->fetch_mode = SERVE;
    run(f, "--copy-to /proc/no-such-dir");
    assert_int_equal(f->status, 4);
    assert_non_null(strstr(f->err, "tally backup: cannot copy " BNAME
                                   " here: cannot create the directory /proc/no-such-dir: "));
}

static void test_cli_copy_usage(void **state)
{
    fake_t *f = *state;
    start_fetch(f, SERVE, 0);
    run(f, "--name " BNAME);
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: --name says which backup to copy: it needs "
                                "--copy-to DIR\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "--name backup-1 --copy-to x");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: --name 'backup-1' is not a backup's name: "
                                "backup-YYYYMMDDTHHMMSSZ, optionally followed by -N\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "--copy-to=");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: --copy-to needs a directory\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "--copy-to");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: option '--copy-to' needs a value\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "--copy-into x");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "unknown option '--copy-into' (did you mean '--copy-to'?)"));
    run(f, "--help");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "Usage: tally backup [--json] [--copy-to DIR [--name NAME] "
                                   "[--keep N]]"));
    assert_non_null(strstr(f->out, "--keep N       with --copy-to"));
    assert_non_null(strstr(f->out, "--copy-to DIR  copy the backup into DIR/NAME here"));
    assert_non_null(strstr(f->out, "--name NAME    with --copy-to"));
    assert_int_equal(f->backup_reqs, 0);
    assert_int_equal(f->fetches, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fetch_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_busy_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_slow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_leftover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_disagree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_fails_midway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_silent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_copy_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_copy_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_copy_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_copy_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_copy_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_copy_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_verify, setup, teardown),
    };
    /* A fetch unanswered is asked again after 200 ms, not 10 s, here and
     * in the commands run. */
    setenv("TALLY_FETCH_RESEND_MS", "200", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
