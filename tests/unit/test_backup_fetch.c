/* Unit tests of backup_fetch.c: a fake backup in a real temporary state
 * directory (five files of 0, 5, 262144, 262145 and 600000 bytes of known
 * content, and entries a backup does not hold), a real backup part for
 * its settings, a real libuv loop and thread pool.  Listing order, every
 * piece's bytes, the last short piece, the errors and the field each
 * names, the limit of fetches at once, and a close with fetches under
 * way.  Then the listing of the backups kept (BACKUP_LIST_REQ): which
 * entries are backups, their order, their files, a missing or unreadable
 * backup directory, the newest 1000 of more, and the same limit and close
 * shared with fetches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "b2sums.h"
#include "backup_fetch.h"
#include "tally_error.h"

#define NAME  "backup-20240615T120000Z"
#define CHUNK BACKUP_FETCH_CHUNK

/* The fake backup's files, in the order a fetch numbers them (by name,
 * bytewise), each with its size. */
static const struct {
    const char *name;
    size_t size;
} files[] = {
    {"history.db", 600000},
    {"journal-0000000000000001.tj", 262145},
    {"journal-0000000000000002.tj", 0},
    {"journal-000000000000000a.tj", 262144},
    {"state-0000000000000001.ckp", 5},
};
#define NFILES (sizeof(files) / sizeof(files[0]))

/* Byte i of file k: no period a misplaced piece could hide in. */
static uint8_t content(size_t k, uint64_t i)
{
    uint32_t x = (uint32_t)(i * 2654435761u) ^ (uint32_t)(k * 40503u);
    return (uint8_t)(x >> 13 ^ x >> 24 ^ i >> 8);
}

/* What one fetch's callback was told, the data copied. */
typedef struct seen {
    int calls;
    int rc;
    char field[16];
    char err[PROTO_MESSAGE_MAX];
    char name[BACKUP_NAME_MAX];
    uint32_t files, file;
    char file_name[PROTO_BACKUP_NAME_MAX + 1];
    uint64_t size, offset;
    uint8_t *data;
    size_t len;
} seen_t;

typedef struct fx {
    char dir[64];   /* the state directory */
    char root[128]; /* its backup directory, "backups" */
    char path[192]; /* the fake backup */
    uv_loop_t loop;
    backup_t b;
    backup_fetch_t f;
    logger_t log; /* the backup part's; it logs nothing here */
    seen_t seen[BACKUP_FETCH_MAX + 1];
    struct seen_list *lists; /* BACKUP_FETCH_MAX + 1 of them */
    int closed;
} fx_t;

/* What one listing's callback was told, copied. */
typedef struct seen_list {
    int calls;
    int rc;
    char err[PROTO_MESSAGE_MAX];
    char dir[PROTO_PATH_MAX + 1];
    uint32_t total, n;
    struct listed {
        char name[BACKUP_NAME_MAX];
        uint32_t files;
        uint64_t bytes;
        bool sums;
    } * v;
} seen_list_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void write_file(const char *dir, const char *name, size_t k, size_t size)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    uint8_t *buf = malloc(size + 1);
    assert_non_null(buf);
    for (size_t i = 0; i < size; i++)
        buf[i] = content(k, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    close(fd);
    free(buf);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/tally-fetch-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->root, sizeof(f->root), "%s/backups", f->dir);
    snprintf(f->path, sizeof(f->path), "%s/%s", f->root, NAME);
    assert_int_equal(mkdir(f->root, 0750), 0);
    assert_int_equal(mkdir(f->path, 0750), 0);
    /* Written out of order: the listing sorts them. */
    for (size_t k = NFILES; k-- > 0;)
        write_file(f->path, files[k].name, k, files[k].size);
    /* Entries a fetch does not list: not a name a backup holds, a
     * directory and a symbolic link under names it would hold. */
    write_file(f->path, "notes.txt", 9, 10);
    char p[256];
    snprintf(p, sizeof(p), "%s/journal-0000000000000003.tj", f->path);
    assert_int_equal(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/state-0000000000000002.ckp", f->path);
    assert_int_equal(symlink("history.db", p), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    log_init(&f->log, LOG_LEVEL_ERROR);
    backup_config_t bc = {.loop = &f->loop,
                          .state_dir = f->dir,
                          .log = &f->log,
                          .clock = &clock_system,
                          .settings = {.keep = 7}};
    assert_int_equal(backup_init(&f->b, &bc), 0);
    backup_fetch_config_t fc = {.loop = &f->loop, .backup = &f->b};
    assert_int_equal(backup_fetch_init(&f->f, &fc), 0);
    f->lists = calloc(BACKUP_FETCH_MAX + 1, sizeof(*f->lists));
    assert_non_null(f->lists);
    *state = f;
    return 0;
}

static void on_fetch_closed(backup_fetch_t *bf)
{
    fx_t *f = (fx_t *)(void *)((char *)bf - offsetof(fx_t, f));
    f->closed++;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (!f->f.closing)
        backup_fetch_close(&f->f, on_fetch_closed);
    backup_close(&f->b, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (size_t i = 0; i < BACKUP_FETCH_MAX + 1; i++) {
        free(f->seen[i].data);
        free(f->lists[i].v);
    }
    free(f->lists);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void on_fetched(void *arg, const backup_fetch_result_t *r)
{
    seen_t *s = arg;
    s->calls++;
    s->rc = r->rc;
    snprintf(s->field, sizeof(s->field), "%s", r->rc != 0 ? r->field : "");
    snprintf(s->err, sizeof(s->err), "%s", r->rc != 0 ? r->err : "");
    snprintf(s->name, sizeof(s->name), "%s", r->name);
    s->files = r->files;
    s->file = r->file;
    snprintf(s->file_name, sizeof(s->file_name), "%s", r->file_name ? r->file_name : "");
    s->size = r->size;
    s->offset = r->offset;
    free(s->data);
    s->data = NULL;
    s->len = r->len;
    if (r->len > 0) {
        assert_non_null(r->data);
        s->data = malloc(r->len);
        assert_non_null(s->data);
        memcpy(s->data, r->data, r->len);
    }
}

static void drain(fx_t *f)
{
    while (backup_fetch_active(&f->f) > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* One fetch of name, run to its end; what it was told is in f->seen[0]. */
static const seen_t *fetch(fx_t *f, const char *name, uint32_t file, uint64_t offset)
{
    seen_t *s = &f->seen[0];
    s->calls = 0;
    assert_int_equal(backup_fetch_begin(&f->f, name, strlen(name), file, offset, on_fetched, s), 0);
    assert_int_equal(s->calls, 0); /* never from within the call */
    drain(f);
    assert_int_equal(s->calls, 1);
    return s;
}

/* The piece s holds is the file's bytes from its offset. */
static void check_piece(const seen_t *s, size_t k)
{
    assert_int_equal(s->rc, 0);
    assert_string_equal(s->name, NAME);
    assert_int_equal(s->files, NFILES);
    assert_int_equal(s->file, k);
    assert_string_equal(s->file_name, files[k].name);
    assert_int_equal(s->size, files[k].size);
    uint64_t left = files[k].size - s->offset;
    assert_int_equal(s->len, left < CHUNK ? left : CHUNK);
    for (size_t i = 0; i < s->len; i++)
        if (s->data[i] != content(k, s->offset + i))
            fail_msg("%s: byte %zu of the piece from %" PRIu64 " is %u, the file's %u",
                     files[k].name, i, s->offset, s->data[i], content(k, s->offset + i));
}

/* Every file, piece by piece: listed in name order, each piece the
 * file's bytes, the last one short, and a fetch at the end empty. */
static void test_pieces(void **state)
{
    fx_t *f = *state;
    for (size_t k = 0; k < NFILES; k++) {
        size_t pieces = 0;
        for (uint64_t off = 0;; off += CHUNK) {
            const seen_t *s = fetch(f, NAME, (uint32_t)k, off);
            assert_int_equal(s->offset, off);
            check_piece(s, k);
            pieces++;
            if (s->len < CHUNK)
                break;
        }
        /* 0 and 5 bytes: one piece; 262144: a full one, then an empty
         * one at the end; 262145: two, the second of 1 byte; 600000:
         * three, the last of 75712. */
        size_t want = files[k].size / CHUNK + 1;
        assert_int_equal(pieces, want);
    }
    const seen_t *s = fetch(f, NAME, 1, CHUNK);
    assert_int_equal(s->len, 1);
    s = fetch(f, NAME, 0, 2 * CHUNK);
    assert_int_equal(s->len, 600000 - 2 * CHUNK);
    check_piece(s, 0);
    /* From any offset, and at the very end. */
    s = fetch(f, NAME, 0, 12345);
    assert_int_equal(s->len, CHUNK);
    check_piece(s, 0);
    for (size_t k = 0; k < NFILES; k++) {
        s = fetch(f, NAME, (uint32_t)k, files[k].size);
        assert_int_equal(s->rc, 0);
        assert_int_equal(s->len, 0);
        assert_null(s->data);
    }
}

/* A file past the list, an offset past a file's end: OUT_OF_RANGE naming
 * the field, with the numbers a client needs. */
static void test_out_of_range(void **state)
{
    fx_t *f = *state;
    const seen_t *s = fetch(f, NAME, NFILES, 0);
    assert_int_equal(s->rc, TALLY_ERANGE);
    assert_string_equal(s->field, "file");
    assert_string_equal(s->err, "file 5 asked for, the backup holds 5 files");
    assert_int_equal(s->files, NFILES);
    s = fetch(f, NAME, UINT32_MAX, 0);
    assert_string_equal(s->field, "file");
    s = fetch(f, NAME, 4, 6);
    assert_int_equal(s->rc, TALLY_ERANGE);
    assert_string_equal(s->field, "offset");
    assert_string_equal(s->err, "offset 6 is past the end of state-0000000000000001.ckp, 5 bytes");
    assert_int_equal(s->size, 5);
    s = fetch(f, NAME, 0, UINT64_MAX);
    assert_string_equal(s->field, "offset");
    assert_non_null(strstr(s->err, "past the end of history.db, 600000 bytes"));
}

/* No such backup, a backup directory that is not there, and a reload
 * that moves [backup] dir: NO_SUCH_BACKUP naming the name, where it was
 * looked for and [backup] keep; the next fetch looks where the settings
 * in force say. */
static void test_missing(void **state)
{
    fx_t *f = *state;
    const seen_t *s = fetch(f, "backup-20240101T000000Z-12", 0, 0);
    assert_int_equal(s->rc, TALLY_ENOBACKUP);
    assert_string_equal(s->field, "name");
    char *abs = realpath(f->root, NULL);
    char want[512];
    snprintf(want, sizeof(want),
             "no backup named backup-20240101T000000Z-12 in %s (never written, or removed since: "
             "[backup] keep is 7)",
             abs);
    free(abs);
    assert_string_equal(s->err, want);
    /* Elsewhere, absolute, and not there at all. */
    backup_settings_t set = {.keep = 3};
    snprintf(set.dir, sizeof(set.dir), "%s/nowhere", f->dir);
    backup_set(&f->b, &set);
    s = fetch(f, NAME, 0, 0);
    assert_int_equal(s->rc, TALLY_ENOBACKUP);
    assert_non_null(
        strstr(s->err, "/nowhere (never written, or removed since: [backup] keep is 3)"));
    /* Moved there: found there. */
    assert_int_equal(rename(f->root, set.dir), 0);
    s = fetch(f, NAME, 4, 0);
    check_piece(s, 4);
    /* Relative to the state directory. */
    snprintf(set.dir, sizeof(set.dir), "nowhere");
    backup_set(&f->b, &set);
    s = fetch(f, NAME, 3, CHUNK);
    assert_int_equal(s->rc, 0);
    assert_int_equal(s->len, 0);
}

/* A backup's directory replaced by a file, or by a symbolic link to a
 * backup elsewhere: not a backup. */
static void test_not_a_directory(void **state)
{
    fx_t *f = *state;
    char other[256];
    snprintf(other, sizeof(other), "%s/elsewhere", f->dir);
    assert_int_equal(rename(f->path, other), 0);
    assert_int_equal(symlink(other, f->path), 0);
    const seen_t *s = fetch(f, NAME, 0, 0);
    assert_int_equal(s->rc, TALLY_ENOBACKUP);
    assert_string_equal(s->field, "name");
    assert_int_equal(unlink(f->path), 0);
    write_file(f->root, NAME, 0, 100);
    s = fetch(f, NAME, 0, 0);
    assert_int_equal(s->rc, TALLY_ENOBACKUP);
    assert_string_equal(s->field, "name");
    assert_non_null(strstr(s->err, "no backup named " NAME " in "));
}

/* A backup that cannot be opened (here its path is too long): UNAVAILABLE
 * naming the backup, and why. */
static void test_unavailable(void **state)
{
    fx_t *f = *state;
    /* A path longer than the system takes (the backup directory itself
     * need not exist for that). */
    backup_settings_t set = {.keep = 7};
    memset(set.dir, 'a', 4090);
    for (size_t i = 0; i < 4090; i += 200)
        set.dir[i] = '/';
    backup_set(&f->b, &set);
    const seen_t *s = fetch(f, NAME, 0, 0);
    assert_int_equal(s->rc, TALLY_EUNAVAIL);
    assert_string_equal(s->field, "");
    assert_non_null(strstr(s->err, "cannot open the backup " NAME " in /aaa"));
    assert_non_null(strstr(s->err, strerror(ENAMETOOLONG)));
    assert_true(strlen(s->err) < PROTO_MESSAGE_MAX);
}

/* A file that cannot be opened: UNAVAILABLE naming it, and why. */
static void test_unreadable(void **state)
{
    fx_t *f = *state;
    if (geteuid() == 0)
        skip(); /* root opens files whatever their mode */
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->path, files[1].name);
    assert_int_equal(chmod(p, 0), 0);
    const seen_t *s = fetch(f, NAME, 1, 0);
    assert_int_equal(s->rc, TALLY_EUNAVAIL);
    assert_string_equal(s->err,
                        "cannot open journal-0000000000000001.tj of " NAME ": Permission denied");
}

/* A name that is not a backup's is refused at once; the callback is
 * never called. */
static void test_bad_name(void **state)
{
    fx_t *f = *state;
    const char *bad[] = {"../../etc", (".partial-" NAME), "backup-20240615T120000Z/..", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            backup_fetch_begin(&f->f, bad[i], strlen(bad[i]), 0, 0, on_fetched, &f->seen[0]),
            TALLY_EBADNAME);
    drain(f);
    assert_int_equal(f->seen[0].calls, 0);
}

/* 32 fetches read at once; the 33rd is BUSY; each of the 32 is answered,
 * then there is room again. */
static void test_busy(void **state)
{
    fx_t *f = *state;
    for (uint32_t i = 0; i < BACKUP_FETCH_MAX; i++)
        assert_int_equal(backup_fetch_begin(&f->f, NAME, strlen(NAME), i % NFILES, (uint64_t)i * 7,
                                            on_fetched, &f->seen[i]),
                         0);
    assert_int_equal(backup_fetch_active(&f->f), BACKUP_FETCH_MAX);
    assert_int_equal(
        backup_fetch_begin(&f->f, NAME, strlen(NAME), 0, 0, on_fetched, &f->seen[BACKUP_FETCH_MAX]),
        TALLY_EBUSY);
    assert_string_equal(backup_fetch_errmsg(&f->f),
                        "32 reads of backups (fetches and listings) are under way already; retry "
                        "in a moment");
    drain(f);
    for (uint32_t i = 0; i < BACKUP_FETCH_MAX; i++) {
        const seen_t *s = &f->seen[i];
        assert_int_equal(s->calls, 1);
        size_t k = i % NFILES;
        if ((uint64_t)i * 7 > files[k].size) { /* past the end of a small file */
            assert_int_equal(s->rc, TALLY_ERANGE);
            continue;
        }
        assert_int_equal(s->offset, (uint64_t)i * 7);
        check_piece(s, k);
    }
    assert_int_equal(f->seen[BACKUP_FETCH_MAX].calls, 0);
    fetch(f, NAME, 4, 0);
    check_piece(&f->seen[0], 4);
}

/* A close with fetches under way: each is told TALLY_ECLOSED at once,
 * once; a fetch after the close is refused; the close callback runs once
 * the thread pool is done with them. */
static void test_close_pending(void **state)
{
    fx_t *f = *state;
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(backup_fetch_begin(&f->f, NAME, strlen(NAME), 0, (uint64_t)i * CHUNK / 4,
                                            on_fetched, &f->seen[i]),
                         0);
    backup_fetch_close(&f->f, on_fetch_closed);
    for (uint32_t i = 0; i < 8; i++) {
        assert_int_equal(f->seen[i].calls, 1);
        assert_int_equal(f->seen[i].rc, TALLY_ECLOSED);
        assert_string_equal(f->seen[i].err, "tallyd is stopping");
    }
    assert_int_equal(backup_fetch_active(&f->f), 0);
    assert_int_equal(backup_fetch_begin(&f->f, NAME, strlen(NAME), 0, 0, on_fetched, &f->seen[9]),
                     TALLY_ECLOSED);
    assert_string_equal(backup_fetch_errmsg(&f->f), "tallyd is stopping");
    assert_int_equal(f->closed, 0); /* the work is still the thread pool's */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 1);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(f->seen[i].calls, 1);
    assert_int_equal(f->seen[9].calls, 0);
}

/* A close with nothing under way calls back at once. */
static void test_close_idle(void **state)
{
    fx_t *f = *state;
    fetch(f, NAME, 0, 0);
    backup_fetch_close(&f->f, on_fetch_closed);
    assert_int_equal(f->closed, 1);
}

/* ---- listing the backups ------------------------------------------------ */

static void on_listed(void *arg, const backup_fetch_listing_t *r)
{
    seen_list_t *s = arg;
    s->calls++;
    s->rc = r->rc;
    snprintf(s->err, sizeof(s->err), "%s", r->rc != 0 ? r->err : "");
    assert_non_null(r->dir);
    snprintf(s->dir, sizeof(s->dir), "%s", r->dir);
    s->total = r->total;
    s->n = r->n;
    assert_true(r->n <= r->total && r->n <= PROTO_BACKUPS_MAX);
    free(s->v);
    s->v = NULL;
    if (r->n == 0) {
        assert_null(r->backups);
        return;
    }
    s->v = calloc(r->n, sizeof(*s->v));
    assert_non_null(s->v);
    for (uint32_t i = 0; i < r->n; i++) {
        const proto_backup_entry_t *e = &r->backups[i];
        assert_true(e->name.len < sizeof(s->v[i].name));
        memcpy(s->v[i].name, e->name.ptr, e->name.len);
        s->v[i].files = e->files;
        s->v[i].bytes = e->bytes;
        s->v[i].sums = e->sums;
    }
}

/* One listing, run to its end. */
static const seen_list_t *list(fx_t *f)
{
    seen_list_t *s = &f->lists[0];
    s->calls = 0;
    assert_int_equal(backup_fetch_list_begin(&f->f, on_listed, s), 0);
    assert_int_equal(s->calls, 0); /* never from within the call */
    assert_int_equal(backup_fetch_active(&f->f), 1);
    drain(f);
    assert_int_equal(s->calls, 1);
    return s;
}

/* A directory dir/name holding files of the sizes given (a list ended by
 * NULL: name, size, name, size, ...). */
static void make_dir(const char *dir, const char *name, ...)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(mkdir(p, 0750), 0);
    va_list ap;
    va_start(ap, name);
    for (const char *file; (file = va_arg(ap, const char *)) != NULL;)
        write_file(p, file, 7, va_arg(ap, size_t));
    va_end(ap);
}

static void expect_listed(const seen_list_t *s, uint32_t i, const char *name, uint32_t nfiles,
                          uint64_t bytes, bool sums)
{
    assert_true(i < s->n);
    assert_string_equal(s->v[i].name, name);
    assert_int_equal(s->v[i].files, nfiles);
    assert_int_equal(s->v[i].bytes, bytes);
    assert_int_equal(s->v[i].sums, sums);
}

/* Every directory under a backup's name is listed, oldest first (the time
 * in the name, then the suffix as a number: none, -2, -10), whatever order
 * they were made in; partial backups, a file or a symbolic link under a
 * backup's name and names that are not a backup's are not; each backup's
 * files are those a fetch lists, BLAKE2SUMS among them. */
static void test_list(void **state)
{
    fx_t *f = *state;
    const char *T = "backup-20261206T204944Z";
    char name[64];
    snprintf(name, sizeof(name), "%s-10", T);
    make_dir(f->root, name, B2SUMS_FILE, (size_t)10, "history.db", (size_t)3, NULL);
    make_dir(f->root, T, NULL);
    snprintf(name, sizeof(name), "%s-2", T);
    make_dir(f->root, name, "journal-0000000000000007.tj", (size_t)7, "BLAKE2SUMS.tmp", (size_t)100,
             "notes.txt", (size_t)1000, NULL);
    make_dir(f->root, "backup-20231130T160000Z", "state-0000000000000001.ckp", (size_t)4, NULL);
    /* Not backups. */
    make_dir(f->root, ".partial-backup-20261207T000000Z", "history.db", (size_t)1, NULL);
    make_dir(f->root, "backup-2026", NULL);
    snprintf(name, sizeof(name), "%s-1000", T);
    make_dir(f->root, name, NULL);
    write_file(f->root, "backup-20261208T000000Z", 0, 10);
    char p[256];
    snprintf(p, sizeof(p), "%s/backup-20261209T000000Z", f->root);
    assert_int_equal(symlink(NAME, p), 0);

    const seen_list_t *s = list(f);
    assert_int_equal(s->rc, 0);
    char *abs = realpath(f->root, NULL);
    assert_string_equal(s->dir, abs);
    free(abs);
    assert_int_equal(s->total, 5);
    assert_int_equal(s->n, 5);
    expect_listed(s, 0, "backup-20231130T160000Z", 1, 4, false);
    /* The fetch fixture: its five files, not notes.txt, the directory or
     * the symbolic link beside them. */
    expect_listed(s, 1, NAME, 5, 600000 + 262145 + 0 + 262144 + 5, false);
    expect_listed(s, 2, T, 0, 0, false);
    snprintf(name, sizeof(name), "%s-2", T);
    expect_listed(s, 3, name, 1, 7, false);
    snprintf(name, sizeof(name), "%s-10", T);
    expect_listed(s, 4, name, 2, 13, true);
}

/* No backup directory yet: an empty list, not an error, its path as
 * configured.  A backup directory that cannot be read: UNAVAILABLE naming
 * it, and why.  A path that is not UTF-8, or longer than the field:
 * listed, with dir "". */
static void test_list_dir(void **state)
{
    fx_t *f = *state;
    backup_settings_t set = {.keep = 7};
    snprintf(set.dir, sizeof(set.dir), "%s/nowhere", f->dir);
    backup_set(&f->b, &set);
    const seen_list_t *s = list(f);
    assert_int_equal(s->rc, 0);
    assert_int_equal(s->total, 0);
    assert_int_equal(s->n, 0);
    assert_string_equal(s->dir, set.dir);
    /* A file where the directory should be. */
    write_file(f->dir, "nowhere", 0, 1);
    s = list(f);
    assert_int_equal(s->rc, TALLY_EUNAVAIL);
    char want[sizeof(set.dir) + 128];
    snprintf(want, sizeof(want), "cannot read the backup directory %s: %s", set.dir,
             strerror(ENOTDIR));
    assert_string_equal(s->err, want);
    /* Not UTF-8. */
    snprintf(set.dir, sizeof(set.dir), "%s/b\xff", f->dir);
    assert_int_equal(mkdir(set.dir, 0750), 0);
    make_dir(set.dir, NAME, "history.db", (size_t)2, NULL);
    backup_set(&f->b, &set);
    s = list(f);
    assert_int_equal(s->rc, 0);
    assert_string_equal(s->dir, "");
    assert_int_equal(s->total, 1);
    expect_listed(s, 0, NAME, 1, 2, false);
    /* 1,025 bytes and more. */
    size_t len = strlen(f->dir);
    snprintf(set.dir, sizeof(set.dir), "%s", f->dir);
    while (len <= PROTO_PATH_MAX) {
        set.dir[len++] = '/';
        memset(set.dir + len, 'd', 200);
        len += 200;
        set.dir[len] = '\0';
        assert_int_equal(mkdir(set.dir, 0750), 0);
    }
    backup_set(&f->b, &set);
    s = list(f);
    assert_int_equal(s->rc, 0);
    assert_string_equal(s->dir, "");
    assert_int_equal(s->total, 0);
}

/* A backup that cannot be read is listed with no files; the rest are
 * counted. */
static void test_list_unreadable(void **state)
{
    fx_t *f = *state;
    if (geteuid() == 0)
        skip(); /* root reads directories whatever their mode */
    make_dir(f->root, "backup-20261206T204944Z", "history.db", (size_t)9, NULL);
    assert_int_equal(chmod(f->path, 0), 0);
    const seen_list_t *s = list(f);
    assert_int_equal(chmod(f->path, 0750), 0);
    assert_int_equal(s->rc, 0);
    assert_int_equal(s->total, 2);
    expect_listed(s, 0, NAME, 0, 0, false);
    expect_listed(s, 1, "backup-20261206T204944Z", 1, 9, false);
}

/* More backups than one answer holds: total counts them all, the list
 * holds the newest PROTO_BACKUPS_MAX, oldest first. */
static void test_list_many(void **state)
{
    fx_t *f = *state;
    backup_settings_t set = {.keep = 10000};
    snprintf(set.dir, sizeof(set.dir), "many"); /* in the state directory */
    char root[192];
    snprintf(root, sizeof(root), "%s/many", f->dir);
    assert_int_equal(mkdir(root, 0750), 0);
    /* Made newest first, a second apart, the newest in the same second
     * as the one before it: a suffix. */
    const unsigned count = PROTO_BACKUPS_MAX + 1;
    char name[64];
    for (unsigned i = count; i-- > 0;) {
        unsigned t = i < count - 1 ? i : i - 1;
        snprintf(name, sizeof(name), "backup-20250101T%02u%02u%02uZ%s", t / 3600, t / 60 % 60,
                 t % 60, i < count - 1 ? "" : "-2");
        make_dir(root, name, NULL);
    }
    backup_set(&f->b, &set);
    const seen_list_t *s = list(f);
    assert_int_equal(s->rc, 0);
    assert_int_equal(s->total, PROTO_BACKUPS_MAX + 1);
    assert_int_equal(s->n, PROTO_BACKUPS_MAX);
    for (unsigned i = 1; i < count; i++) {
        unsigned t = i < count - 1 ? i : i - 1;
        snprintf(name, sizeof(name), "backup-20250101T%02u%02u%02uZ%s", t / 3600, t / 60 % 60,
                 t % 60, i < count - 1 ? "" : "-2");
        expect_listed(s, i - 1, name, 0, 0, false);
    }
}

/* Fetches and listings share the 32 slots: with 16 of each under way the
 * next of either is BUSY; each is answered, then there is room again. */
static void test_list_busy(void **state)
{
    fx_t *f = *state;
    for (uint32_t i = 0; i < BACKUP_FETCH_MAX; i++) {
        if (i % 2)
            assert_int_equal(backup_fetch_list_begin(&f->f, on_listed, &f->lists[i]), 0);
        else
            assert_int_equal(
                backup_fetch_begin(&f->f, NAME, strlen(NAME), 4, 0, on_fetched, &f->seen[i]), 0);
    }
    assert_int_equal(backup_fetch_active(&f->f), BACKUP_FETCH_MAX);
    assert_int_equal(backup_fetch_list_begin(&f->f, on_listed, &f->lists[BACKUP_FETCH_MAX]),
                     TALLY_EBUSY);
    assert_string_equal(
        backup_fetch_errmsg(&f->f),
        "32 reads of backups (fetches and listings) are under way already; retry in a moment");
    assert_int_equal(
        backup_fetch_begin(&f->f, NAME, strlen(NAME), 0, 0, on_fetched, &f->seen[BACKUP_FETCH_MAX]),
        TALLY_EBUSY);
    drain(f);
    for (uint32_t i = 0; i < BACKUP_FETCH_MAX; i++) {
        if (i % 2) {
            const seen_list_t *s = &f->lists[i];
            assert_int_equal(s->calls, 1);
            assert_int_equal(s->rc, 0);
            assert_int_equal(s->total, 1);
            expect_listed(s, 0, NAME, NFILES, 600000 + 262145 + 0 + 262144 + 5, false);
        } else {
            assert_int_equal(f->seen[i].calls, 1);
            check_piece(&f->seen[i], 4);
        }
    }
    assert_int_equal(f->lists[BACKUP_FETCH_MAX].calls, 0);
    assert_int_equal(f->seen[BACKUP_FETCH_MAX].calls, 0);
    assert_int_equal(list(f)->total, 1);
}

/* A close with listings under way (and a fetch): each is told
 * TALLY_ECLOSED at once, once; a listing after the close is refused; the
 * close callback runs once the thread pool is done with them. */
static void test_list_close_pending(void **state)
{
    fx_t *f = *state;
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(backup_fetch_list_begin(&f->f, on_listed, &f->lists[i]), 0);
    assert_int_equal(backup_fetch_begin(&f->f, NAME, strlen(NAME), 0, 0, on_fetched, &f->seen[0]),
                     0);
    assert_int_equal(backup_fetch_active(&f->f), 5);
    backup_fetch_close(&f->f, on_fetch_closed);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(f->lists[i].calls, 1);
        assert_int_equal(f->lists[i].rc, TALLY_ECLOSED);
        assert_string_equal(f->lists[i].err, "tallyd is stopping");
        assert_int_equal(f->lists[i].n, 0);
    }
    assert_int_equal(f->seen[0].rc, TALLY_ECLOSED);
    assert_int_equal(backup_fetch_active(&f->f), 0);
    assert_int_equal(backup_fetch_list_begin(&f->f, on_listed, &f->lists[9]), TALLY_ECLOSED);
    assert_string_equal(backup_fetch_errmsg(&f->f), "tallyd is stopping");
    assert_int_equal(f->closed, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 1);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(f->lists[i].calls, 1);
    assert_int_equal(f->lists[9].calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_close_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
