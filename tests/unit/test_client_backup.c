/* Unit tests of a backup asked for by an operator (BACKUP_REQ, PROTOCOL.md
 * 8.26) and of its copy to the operator's machine (BACKUP_FETCH, 8.27):
 * libtally's tally_backup_req and tally_backup_fetch_req, and the `tally
 * backup` command that prints their answers, against a scripted daemon
 * (client_fake_daemon.h).  For BACKUP_REQ it answers BACKUP (after a
 * BACKUP and an ERROR for another request, which must be passed over),
 * ERROR UNAVAILABLE, FORBIDDEN or BUSY, only for another request, or as a
 * daemon from before BACKUP_REQ (UNKNOWN_TYPE with req_id 0).  For
 * BACKUP_FETCH it serves the files of a real directory (of 0, 1, 262144,
 * 262145 and 700001 bytes), in order or out of it, late (a fetch
 * unanswered until it is asked again, then the late reply with other
 * bytes first), BUSY once or always, slowly, with a size, a count of
 * files or a file name that disagrees with the others, or refuses the
 * fetches (FORBIDDEN, UNAVAILABLE, OUT_OF_RANGE, BAD_NAME,
 * NO_SUCH_BACKUP, UNKNOWN_TYPE) or never answers; with a BLAKE2SUMS
 * among the files, which the copy must match, or without (an older
 * daemon's backup).  `tally backup --verify` on copies made, damaged,
 * without BLAKE2SUMS, and on paths that hold none.  For BACKUP_LIST_REQ
 * (8.28, tally_backup_list_req and `tally backup --list`) it answers a
 * list of three (after a list and an ERROR for another request), an empty
 * one from a directory it could not name, the newest of more than it
 * lists, ERROR FORBIDDEN, UNAVAILABLE or BUSY, only for another request,
 * or as a daemon from before BACKUP_LIST_REQ. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "atomic_file.h"
#include "b2sums.h"
#include "client_fake_daemon.h"

#ifndef TALLY_CLI
#error "TALLY_CLI must name the tally executable"
#endif

#define BNAME       "backup-20261206T231500Z"
#define PATH        "/var/lib/tallyd/backups/" BNAME
#define OTHER_NAME  "backup-20261205T020000Z"
#define SRC_BYTES   1224291 /* 0 + 1 + 262144 + 262145 + 700001 */
#define NO_SPACE    "cannot copy history.db to /var/lib/tallyd/backups/.partial: No space left"
#define OTHER_ID(q) ((q) + 1000)

enum mode { WRITTEN, UNAVAIL, FORBID, BUSY, OLD, ELSEWHERE };

/* How the fake answers BACKUP_FETCH: SERVE (with the twists below), or
 * every fetch the same way. */
enum fetch_mode { SERVE, F_FORBID, F_UNAVAIL, F_RANGE, F_BADNAME, F_OLD, F_BUSY, F_SILENT };

/* Twists to SERVE, any together. */
enum {
    T_REVERSE = 1 << 0,   /* hold fetches and answer each batch last first */
    T_LATE = 1 << 1,      /* no answer to fetch 3 until it is asked again */
    T_BUSY_ONCE = 1 << 2, /* BUSY for fetch 2 */
    T_SIZE = 1 << 3,      /* history.db is a byte larger in its second piece */
    T_FILES = 1 << 4,     /* the fourth file's piece says 6 files */
    T_NAME = 1 << 5,      /* the second file is given the first one's name */
    T_FAIL_4 = 1 << 6,    /* UNAVAILABLE for fetch 4 */
    T_SLOW = 1 << 7,      /* 100 ms before each answer */
};

typedef struct held {
    uint64_t req_id;
    char name[PROTO_BACKUP_NAME_MAX + 1];
    uint32_t file;
    uint64_t offset;
} held_t;

typedef struct fake {
    fake_daemon_t d;
    volatile enum mode mode; /* changed between requests */
    const char *path;        /* the BACKUP's path */
    uint32_t files;
    volatile uint64_t bytes;
    volatile int backup_reqs; /* what it was asked */
    /* BACKUP_FETCH: the backup it keeps, BNAME, from the directory src */
    char src[128];
    fake_backup_t backup;
    volatile enum fetch_mode fetch_mode;
    volatile unsigned twists;
    volatile int fetches;   /* fetches received */
    volatile int reordered; /* batches answered last first */
    held_t held[8];         /* T_REVERSE */
    int nheld;
    held_t late; /* T_LATE: the fetch left unanswered, req_id 0 until then */
    volatile bool late_sent;
    /* BACKUP_LIST_REQ: answered as list_mode says (WRITTEN: with this
     * list), what it was asked */
    volatile enum mode list_mode;
    volatile int list_reqs;
    const char *list_dir;
    uint32_t list_total, list_n;
    proto_backup_entry_t list[PROTO_BACKUPS_MAX];
    char list_names[PROTO_BACKUPS_MAX][PROTO_BACKUP_NAME_MAX + 1];
    /* a command's results (run) */
    int status;
    char out[4096], err[4096];
} fake_t;

static void send_backup(fake_t *f, uint64_t req_id, const char *path)
{
    proto_msg_t m = {.type = PROTO_BACKUP};
    m.u.backup.req_id = req_id;
    m.u.backup.path = proto_str(path);
    m.u.backup.files = f->files;
    m.u.backup.bytes = f->bytes;
    m.u.backup.ms = 127;
    fake_daemon_send(&f->d, &m);
}

/* ---- the fake's BACKUP_FETCH ---- */

static void answer_held(fake_t *f)
{
    for (int i = f->nheld - 1; i >= 0; i--)
        fake_backup_answer(&f->d, &f->backup, f->held[i].req_id, f->held[i].name, f->held[i].file,
                           f->held[i].offset, NULL);
    f->reordered += f->nheld > 1;
    f->nheld = 0;
}

static void idle(fake_daemon_t *d)
{
    answer_held(d->ctx);
}

/* The lie of a chunk under f's twists, for file at offset. */
static fake_chunk_lie_t lie_of(const fake_t *f, uint32_t file, uint64_t offset)
{
    fake_chunk_lie_t lie = {0};
    if ((f->twists & T_SIZE) && file == 4 && offset == PROTO_CHUNK_MAX)
        lie.size_more = 1; /* 700002 bytes: the piece is whole either way */
    if ((f->twists & T_FILES) && file == 3)
        lie.files = 6;
    if ((f->twists & T_NAME) && file == 1)
        lie.file_name = f->backup.files[0];
    return lie;
}

static bool answer_fetch(fake_t *f, const proto_msg_t *q)
{
    fake_daemon_t *d = &f->d;
    if (f->fetch_mode == F_OLD)
        return false;
    int n = ++f->fetches;
    held_t h = {.req_id = q->u.backup_fetch.req_id,
                .file = q->u.backup_fetch.file,
                .offset = q->u.backup_fetch.offset};
    memcpy(h.name, q->u.backup_fetch.name.ptr, q->u.backup_fetch.name.len);
    switch (f->fetch_mode) {
    case F_FORBID:
        fake_daemon_error(d, h.req_id, TALLY_EFORBIDDEN, "",
                          "this key is a subscriber's, which may not fetch backups");
        return true;
    case F_UNAVAIL:
        fake_daemon_error(d, h.req_id, TALLY_EUNAVAIL, "",
                          "cannot read history.db of " BNAME ": Input/output error");
        return true;
    case F_RANGE:
        fake_daemon_error(d, h.req_id, TALLY_ERANGE, "offset", "beyond the file's 12 bytes");
        return true;
    case F_BADNAME:
        fake_daemon_error(d, h.req_id, TALLY_EBADNAME, "name", "not a backup's name");
        return true;
    case F_BUSY:
        fake_daemon_error(d, h.req_id, TALLY_EBUSY, "", "32 fetches are being read");
        return true;
    case F_SILENT:
        return true;
    default:
        break;
    }
    if (f->twists & T_SLOW)
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    if ((f->twists & T_BUSY_ONCE) && n == 2) {
        fake_daemon_error(d, h.req_id, TALLY_EBUSY, "", "32 fetches are being read");
        return true;
    }
    if ((f->twists & T_FAIL_4) && n == 4) {
        fake_daemon_error(d, h.req_id, TALLY_EUNAVAIL, "",
                          "cannot read history.db of " BNAME ": Input/output error");
        return true;
    }
    if (f->twists & T_LATE) {
        if (n == 3) {
            f->late = h;
            return true;
        }
        if (!f->late_sent && h.file == f->late.file && h.offset == f->late.offset) {
            /* Asked again: the first answer comes now, late and with other
             * bytes, which must be passed over. */
            fake_chunk_lie_t garbage = {.garbage = true};
            fake_backup_answer(d, &f->backup, f->late.req_id, h.name, h.file, h.offset, &garbage);
            f->late_sent = true;
        }
    }
    if (f->twists & T_REVERSE) {
        f->held[f->nheld++] = h;
        if (f->nheld == 4)
            answer_held(f);
        return true;
    }
    fake_chunk_lie_t lie = lie_of(f, h.file, h.offset);
    fake_backup_answer(d, &f->backup, h.req_id, h.name, h.file, h.offset, &lie);
    return true;
}

/* ---- the fake's BACKUP_LIST_REQ ---- */

#define LIST_DIR        "/var/lib/tallyd/backups"
#define LIST_UNREADABLE "cannot read the backup directory " LIST_DIR ": Permission denied"

/* The fake's list: three backups, the last without BLAKE2SUMS. */
static void list_three(fake_t *f)
{
    static const proto_backup_entry_t three[] = {
        {{"backup-20261205T020000Z", 23}, 5, 45200000, true},
        {{"backup-20261206T020000Z", 23}, 5, 45300000, true},
        {{BNAME, 23}, 4, 44900000, false},
    };
    memcpy(f->list, three, sizeof three);
    f->list_dir = LIST_DIR;
    f->list_total = f->list_n = 3;
}

static void send_list(fake_t *f, uint64_t req_id, const char *dir)
{
    proto_msg_t m = {.type = PROTO_BACKUP_LIST};
    m.u.backup_list.req_id = req_id;
    m.u.backup_list.dir = proto_str(dir);
    m.u.backup_list.total = f->list_total;
    m.u.backup_list.n = f->list_n;
    m.u.backup_list.backups = f->list;
    fake_daemon_send(&f->d, &m);
}

/* The ERROR a BACKUP_REQ or BACKUP_LIST_REQ gets in mode UNAVAIL, FORBID
 * or BUSY: unavail the sentence of UNAVAILABLE, act what the key may not
 * do, busy the sentence of BUSY. */
static void refuse(fake_daemon_t *d, enum mode mode, uint64_t req_id, const char *unavail,
                   const char *act, const char *busy)
{
    char msg[160];
    if (mode == UNAVAIL) {
        fake_daemon_error(d, req_id, TALLY_EUNAVAIL, "", unavail);
    } else if (mode == FORBID) {
        snprintf(msg, sizeof msg, "this key is a subscriber's, which may not %s; use an admin key",
                 act);
        fake_daemon_error(d, req_id, TALLY_EFORBIDDEN, "", msg);
    } else if (mode == BUSY) {
        fake_daemon_error(d, req_id, TALLY_EBUSY, "", busy);
    }
}

static bool answer_list(fake_t *f, uint64_t req_id)
{
    fake_daemon_t *d = &f->d;
    if (f->list_mode == OLD)
        return false;
    f->list_reqs++;
    if (f->list_mode == WRITTEN) {
        /* Answers to some other request come first: passed over. */
        send_list(f, OTHER_ID(req_id), "/elsewhere");
        fake_daemon_error(d, OTHER_ID(req_id), TALLY_EUNAVAIL, "", "not this one");
        send_list(f, req_id, f->list_dir);
    } else if (f->list_mode == ELSEWHERE) {
        send_list(f, OTHER_ID(req_id), f->list_dir);
    } else {
        refuse(d, f->list_mode, req_id, LIST_UNREADABLE, "list backups",
               "32 reads of backups are under way");
    }
    return true;
}

static bool answer(fake_daemon_t *d, const proto_msg_t *q)
{
    fake_t *f = d->ctx;
    if (q->type == PROTO_BACKUP_FETCH)
        return answer_fetch(f, q);
    if (q->type == PROTO_BACKUP_LIST_REQ)
        return answer_list(f, q->u.backup_list_req.req_id);
    if (q->type != PROTO_BACKUP_REQ || f->mode == OLD)
        return false;
    f->backup_reqs++;
    uint64_t req_id = q->u.backup_req.req_id;
    if (f->mode == WRITTEN) {
        /* Answers to some other request come first: passed over. */
        send_backup(f, OTHER_ID(req_id), "/elsewhere/backup-19700101T000000Z");
        fake_daemon_error(d, OTHER_ID(req_id), TALLY_EUNAVAIL, "", "not this one");
        send_backup(f, req_id, f->path);
    } else if (f->mode == ELSEWHERE) {
        send_backup(f, OTHER_ID(req_id), f->path);
    } else {
        refuse(d, f->mode, req_id, NO_SPACE, "ask for backups",
               "16 requests already wait for a backup");
    }
    return true;
}

/* Write a source file of size bytes, each byte from its offset and the
 * file's number. */
static int write_src(const char *dir, const char *name, size_t size, unsigned k)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        return -1;
    for (size_t i = 0; i < size; i++)
        fputc((int)((i * 131 + (i >> 9) + k * 7) & 0xFF), fp);
    return fclose(fp);
}

static int setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    if (f == NULL || fake_daemon_open(&f->d, "backup") != 0)
        return -1;
    f->d.ctx = f;
    f->d.idle = idle;
    f->path = PATH;
    list_three(f);
    f->files = 5;
    f->bytes = 45200000;
    snprintf(f->src, sizeof f->src, "%s/src", f->d.dir);
    static const struct {
        const char *name;
        size_t size;
    } src[] = {{"a-empty", 0},
               {"b-one", 1},
               {"c-chunk", 262144},
               {"d-chunk-plus", 262145},
               {"history.db", 700001}};
    if (mkdir(f->src, 0700) != 0)
        return -1;
    for (unsigned i = 0; i < sizeof src / sizeof src[0]; i++)
        if (write_src(f->src, src[i].name, src[i].size, i) != 0)
            return -1;
    if (fake_backup_load(&f->backup, f->src, BNAME) != 0 || f->backup.n != 5)
        return -1;
    *state = f;
    return 0;
}

static void start(fake_t *f, enum mode mode)
{
    f->mode = mode;
    fake_daemon_start(&f->d, answer);
}

static void start_fetch(fake_t *f, enum fetch_mode mode, unsigned twists)
{
    f->fetch_mode = mode;
    f->twists = twists;
    start(f, WRITTEN);
}

static int teardown(void **state)
{
    fake_t *f = *state;
    int rc = fake_daemon_close(&f->d);
    free(f);
    return rc;
}

/* tally_backup_req at the fake daemon with a 5 s timeout. */
static int ask(fake_t *f, tally_backup_info_t *out, char *err, size_t errlen)
{
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = errlen};
    return tally_backup_req(f->d.ep, &req, out);
}

/* ---- libtally ---- */

static void test_written(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    tally_backup_info_t b;
    char err[256];
    assert_int_equal(ask(f, &b, err, sizeof err), 0);
    assert_string_equal(b.path, PATH);
    assert_int_equal(b.files, 5);
    assert_int_equal(b.bytes, 45200000);
    assert_int_equal(b.ms, 127);
    assert_string_equal(err, "");
    assert_int_equal(f->backup_reqs, 1);
}

static void test_longest_path(void **state)
{
    fake_t *f = *state;
    char path[PROTO_PATH_MAX + 1];
    memset(path, 'b', PROTO_PATH_MAX);
    path[0] = '/';
    path[PROTO_PATH_MAX] = '\0';
    f->path = path;
    start(f, WRITTEN);
    tally_backup_info_t b;
    char err[256];
    assert_int_equal(ask(f, &b, err, sizeof err), 0);
    assert_int_equal(strlen(b.path), TALLY_PATH_MAX); /* whole, and NUL-terminated */
    assert_string_equal(b.path, path);
    fake_daemon_stop(&f->d); /* path goes out of scope */
}

/* The daemon's refusals: their codes, and its words in errbuf. */
static void test_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        int code;
        const char *words;
    } cases[] = {
        {UNAVAIL, TALLY_EUNAVAIL, NO_SPACE},
        {FORBID, TALLY_EFORBIDDEN, "which may not ask for backups; use an admin key"},
        {BUSY, TALLY_EBUSY, "16 requests already wait for a backup"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->mode = cases[i].mode;
        tally_backup_info_t b;
        char err[256];
        assert_int_equal(ask(f, &b, err, sizeof err), cases[i].code);
        assert_non_null(strstr(err, cases[i].words));
    }
}

static void test_old_daemon(void **state)
{
    fake_t *f = *state;
    start(f, OLD);
    tally_backup_info_t b;
    assert_int_equal(tally_backup_req(f->d.ep, NULL, &b), TALLY_ETYPE);
    assert_int_equal(f->backup_reqs, 0);
}

/* Only an answer to another request comes: no answer in time. */
static void test_other_request(void **state)
{
    fake_t *f = *state;
    start(f, ELSEWHERE);
    tally_backup_info_t b;
    char err[256];
    tally_request_t req = {.timeout_ms = 300, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_req(f->d.ep, &req, &b), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_UP);
    assert_string_equal(err, "no answer in time");
    assert_string_equal(b.path, "");
}

static void test_no_out(void **state)
{
    fake_t *f = *state;
    char err[256];
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_req(f->d.ep, &req, NULL), TALLY_EINVAL);
    assert_string_equal(err, "nowhere to put the backup's path");
}

/* Nothing listens: refused connections end the wait early. */
static void test_no_daemon(void **state)
{
    fake_t *f = *state;
    tally_backup_info_t b;
    char err[256];
    tally_request_t req = {
        .timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err, .refused_ms = 300};
    assert_int_equal(tally_backup_req("tcp://127.0.0.1:1", &req, &b), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_NO_CONNECTION);
    assert_non_null(strstr(err, "nothing accepts connections there"));
    (void)f;
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

static void run(fake_t *f, const char *args);

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

/* ---- the tally command ---- */

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

/* Run `tally --server EP backup ARGS` (args: one shell word each, no
 * quoting needed); fills f->status, f->out and f->err. */
static void run(fake_t *f, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "env -u TALLY_SERVER -u TALLY_SERVER_KEY -u TALLY_CERT %s --server %s backup %s "
             "</dev/null >%s/out 2>%s/err",
             TALLY_CLI, f->d.ep, args, f->d.dir, f->d.dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    f->status = WEXITSTATUS(st);
    snprintf(cmd, sizeof cmd, "%s/out", f->d.dir);
    slurp(cmd, f->out, sizeof f->out);
    snprintf(cmd, sizeof cmd, "%s/err", f->d.dir);
    slurp(cmd, f->err, sizeof f->err);
}

static void test_cli_written(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    run(f, "");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "backup written: " PATH " (5 files, 45.2 MB, 127 ms)\n");
    assert_string_equal(f->err, "");
    run(f, "--json --timeout 5");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out,
                        "{\"path\":\"" PATH "\",\"files\":5,\"bytes\":45200000,\"ms\":127}\n");
}

/* Sizes as people read them, and a path the daemon could send only the
 * name of. */
static void test_cli_sizes(void **state)
{
    fake_t *f = *state;
    static const struct {
        uint64_t bytes;
        const char *text;
    } sizes[] = {
        {0, "0 B"},
        {999, "999 B"},
        {1000, "1.0 kB"},
        {999949, "999.9 kB"},
        {999999, "1.0 MB"},
        {1500000000, "1.5 GB"},
        {UINT64_MAX, "18446744.1 TB"},
    };
    f->files = 1;
    f->path = "backup-20261206T231500Z";
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        f->bytes = sizes[i].bytes;
        run(f, "");
        assert_int_equal(f->status, 0);
        char want[256];
        snprintf(want, sizeof want,
                 "backup written: backup-20261206T231500Z in tallyd's [backup] dir (1 file, %s, "
                 "127 ms)\n",
                 sizes[i].text);
        assert_string_equal(f->out, want);
    }
}

/* Each refusal: status 1 and a line saying what to do. */
static void test_cli_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        const char *says;
    } cases[] = {
        {UNAVAIL, ": " NO_SPACE "\n"},
        {FORBID, "admin key only: give --cert the secret certificate of a key in its [security] "
                 "admin_keys (tallyd.conf(5))\n"},
        {BUSY, "has too many backup requests waiting already; try again once they are done\n"},
        {OLD, "predates `tally backup`; send it SIGUSR1 instead (tallyd(8), BACKUP)\n"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->mode = cases[i].mode;
        run(f, "");
        assert_int_equal(f->status, 1);
        assert_string_equal(f->out, "");
        assert_non_null(strstr(f->err, cases[i].says));
    }
}

static void test_cli_no_answer(void **state)
{
    fake_t *f = *state;
    start(f, ELSEWHERE);
    run(f, "--timeout 0.3");
    assert_int_equal(f->status, 3);
    assert_non_null(strstr(f->err, "no answer from tallyd at "));
    assert_non_null(strstr(f->err, "within 0.3 s"));
}

static void test_cli_usage(void **state)
{
    fake_t *f = *state;
    run(f, "--bogus");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: unknown option '--bogus'\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "extra");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: unexpected argument 'extra'\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "--help");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "Usage: tally backup"));
    assert_non_null(strstr(f->out, "(default 120;"));
    assert_int_equal(f->backup_reqs, 0);
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
             "%s/copies/" BNAME ": ok, its 5 files (1.2 MB) match its BLAKE2SUMS\n", f->d.dir);
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
             "%s/copies/" BNAME ": ok, its 5 files (1.2 MB) match its BLAKE2SUMS\n"
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

/* ---- libtally: the backups kept (BACKUP_LIST_REQ) ---- */

/* tally_backup_list_req at the fake daemon with a 5 s timeout. */
static int ask_list(fake_t *f, tally_backup_list_t *out, char *err, size_t errlen)
{
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = errlen};
    return tally_backup_list_req(f->d.ep, &req, out);
}

static void assert_entry(const tally_backup_entry_t *e, const char *name, uint32_t files,
                         uint64_t bytes, bool checked)
{
    assert_string_equal(e->name, name);
    assert_int_equal(e->files, files);
    assert_int_equal(e->bytes, bytes);
    assert_int_equal(e->checked, checked);
}

/* The list comes back as the daemon sent it, oldest first; the answers
 * to another request before it are passed over. */
static void test_list(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    assert_int_equal(ask_list(f, &l, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(l.dir, LIST_DIR);
    assert_int_equal(l.total, 3);
    assert_int_equal(l.n, 3);
    assert_non_null(l.backups);
    assert_entry(&l.backups[0], "backup-20261205T020000Z", 5, 45200000, true);
    assert_entry(&l.backups[1], "backup-20261206T020000Z", 5, 45300000, true);
    assert_entry(&l.backups[2], BNAME, 4, 44900000, false);
    assert_int_equal(f->list_reqs, 1);
    assert_int_equal(f->backup_reqs, 0);
    tally_backup_list_clear(&l);
    assert_null(l.backups);
    assert_int_equal(l.n, 0);
    assert_string_equal(l.dir, "");
    tally_backup_list_clear(&l); /* twice: nothing to do */
    tally_backup_list_clear(NULL);
}

/* No backup kept, in a directory the daemon could not name. */
static void test_list_empty(void **state)
{
    fake_t *f = *state;
    f->list_dir = "";
    f->list_total = f->list_n = 0;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    assert_int_equal(ask_list(f, &l, err, sizeof err), 0);
    assert_string_equal(l.dir, "");
    assert_int_equal(l.total, 0);
    assert_int_equal(l.n, 0);
    assert_null(l.backups);
    tally_backup_list_clear(&l);
}

/* More backups than a list holds: the newest 1000 of 1200, each whole
 * (the longest names, "-N" of 3 digits), and the longest directory. */
static void test_list_newest(void **state)
{
    fake_t *f = *state;
    char dir[PROTO_PATH_MAX + 1];
    memset(dir, 'd', PROTO_PATH_MAX);
    dir[0] = '/';
    dir[PROTO_PATH_MAX] = '\0';
    f->list_dir = dir;
    for (uint32_t i = 0; i < PROTO_BACKUPS_MAX; i++) {
        if (i == 0)
            snprintf(f->list_names[i], sizeof f->list_names[i], "%s", BNAME);
        else
            snprintf(f->list_names[i], sizeof f->list_names[i], "%s-%u", BNAME, i);
        f->list[i] = (proto_backup_entry_t){proto_str(f->list_names[i]), i + 1,
                                            (uint64_t)i * 1000000007u, i % 2 == 0};
    }
    f->list_total = 1200;
    f->list_n = PROTO_BACKUPS_MAX;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    assert_int_equal(ask_list(f, &l, err, sizeof err), 0);
    assert_int_equal(strlen(l.dir), TALLY_PATH_MAX); /* whole, and NUL-terminated */
    assert_string_equal(l.dir, dir);
    assert_int_equal(l.total, 1200);
    assert_int_equal(l.n, 1000);
    for (uint32_t i = 0; i < l.n; i++)
        assert_entry(&l.backups[i], f->list_names[i], i + 1, (uint64_t)i * 1000000007u, i % 2 == 0);
    assert_string_equal(l.backups[999].name, BNAME "-999");
    tally_backup_list_clear(&l);
    fake_daemon_stop(&f->d); /* dir goes out of scope */
}

/* The daemon's refusals: their codes, its words in errbuf, nothing to
 * free. */
static void test_list_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        int code;
        const char *words;
    } cases[] = {
        {UNAVAIL, TALLY_EUNAVAIL, LIST_UNREADABLE},
        {FORBID, TALLY_EFORBIDDEN,
         "this key is a subscriber's, which may not list backups; use "
         "an admin key"},
        {BUSY, TALLY_EBUSY, "32 reads of backups are under way"},
        {OLD, TALLY_ETYPE, "type: message type is not a request the daemon answers"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->list_mode = cases[i].mode;
        tally_backup_list_t l;
        char err[256];
        assert_int_equal(ask_list(f, &l, err, sizeof err), cases[i].code);
        assert_string_equal(err, cases[i].words);
        assert_null(l.backups);
        assert_int_equal(l.n, 0);
    }
    /* Without a request's options. */
    tally_backup_list_t l;
    assert_int_equal(tally_backup_list_req(f->d.ep, NULL, &l), TALLY_ETYPE);
    assert_int_equal(f->list_reqs, 3);
}

/* Only an answer to another request comes: no answer in time. */
static void test_list_other_request(void **state)
{
    fake_t *f = *state;
    f->list_mode = ELSEWHERE;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    tally_request_t req = {.timeout_ms = 300, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_list_req(f->d.ep, &req, &l), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_UP);
    assert_string_equal(err, "no answer in time");
    assert_null(l.backups);
    assert_int_equal(l.n, 0);
    assert_int_equal(f->list_reqs, 1);
}

static void test_list_no_out(void **state)
{
    fake_t *f = *state;
    char err[256];
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_list_req(f->d.ep, &req, NULL), TALLY_EINVAL);
    assert_string_equal(err, "nowhere to put the list of backups");
    tally_backup_list_t l;
    assert_int_equal(tally_backup_list_req("nope://x", &req, &l), TALLY_EINVAL);
    assert_null(l.backups);
}

/* ---- the tally command: --list ---- */

#define THREE_TEXT                                                                                 \
    "backup-20261205T020000Z   5 files   45.2 MB   BLAKE2SUMS\n"                                   \
    "backup-20261206T020000Z   5 files   45.3 MB   BLAKE2SUMS\n"                                   \
    "backup-20261206T231500Z   4 files   44.9 MB   no BLAKE2SUMS\n"

static void test_cli_list(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    run(f, "--list");
    assert_string_equal(f->err, "");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tallyd keeps 3 backups in " LIST_DIR ":\n" THREE_TEXT);
    run(f, "--list --json --timeout 5");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out,
                        "{\"dir\":\"" LIST_DIR "\",\"total\":3,\"backups\":["
                        "{\"name\":\"backup-20261205T020000Z\",\"files\":5,\"bytes\":45200000,"
                        "\"checked\":true},"
                        "{\"name\":\"backup-20261206T020000Z\",\"files\":5,\"bytes\":45300000,"
                        "\"checked\":true},"
                        "{\"name\":\"" BNAME "\",\"files\":4,\"bytes\":44900000,"
                        "\"checked\":false}]}\n");
    assert_int_equal(f->list_reqs, 2);
    assert_int_equal(f->backup_reqs, 0);
    assert_int_equal(f->fetches, 0);
}

static void test_cli_list_empty(void **state)
{
    fake_t *f = *state;
    f->list_dir = "";
    f->list_total = f->list_n = 0;
    start(f, WRITTEN);
    run(f, "--list");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tallyd keeps no backup in its [backup] dir\n");
    run(f, "--list --json");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "{\"dir\":\"\",\"total\":0,\"backups\":[]}\n");
    /* One backup, in a directory it names. */
    f->list_dir = LIST_DIR;
    f->list_total = f->list_n = 1;
    run(f, "--list");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tallyd keeps 1 backup in " LIST_DIR ":\n"
                                "backup-20261205T020000Z   5 files   45.2 MB   BLAKE2SUMS\n");
}

/* The newest of more than tallyd lists; columns of other widths (a
 * longer name, one file, a size in bytes); a directory holding a control
 * character, escaped. */
static void test_cli_list_newest(void **state)
{
    fake_t *f = *state;
    f->list_dir = "/b\x1b[31m";
    f->list[0] = (proto_backup_entry_t){proto_str("backup-20261205T020000Z-12"), 1, 999, false};
    f->list[1] = (proto_backup_entry_t){proto_str(BNAME), 12, 1500000000, true};
    f->list_total = 1200;
    f->list_n = 2;
    start(f, WRITTEN);
    run(f, "--list");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "the newest 2 of 1200 backups tallyd keeps in /b\\x1b[31m:\n"
                                "backup-20261205T020000Z-12    1 file     999 B   no BLAKE2SUMS\n"
                                "backup-20261206T231500Z      12 files   1.5 GB   BLAKE2SUMS\n");
    run(f, "--list --json");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "{\"dir\":\"/b\\u001b[31m\",\"total\":1200,\"backups\":["
                                "{\"name\":\"backup-20261205T020000Z-12\",\"files\":1,"
                                "\"bytes\":999,\"checked\":false},"
                                "{\"name\":\"" BNAME "\",\"files\":12,\"bytes\":1500000000,"
                                "\"checked\":true}]}\n");
}

/* Each refusal: status 1 and a line saying what to do; no answer:
 * status 3. */
static void test_cli_list_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        const char *says;
    } cases[] = {
        {UNAVAIL, "tally backup: no list of backups from tallyd at ipc://"},
        {UNAVAIL, ": " LIST_UNREADABLE "\n"},
        {FORBID, "admin key only: give --cert the secret certificate of a key in its [security] "
                 "admin_keys (tallyd.conf(5))\n"},
        {BUSY, "has too many backup requests waiting already; try again once they are done\n"},
        {OLD, "predates `tally backup --list`; look in its [backup] dir on its host\n"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->list_mode = cases[i].mode;
        run(f, "--list");
        assert_int_equal(f->status, 1);
        assert_string_equal(f->out, "");
        if (strstr(f->err, cases[i].says) == NULL)
            fail_msg("case %zu: '%s' not in: %s", i, cases[i].says, f->err);
    }
    f->list_mode = ELSEWHERE;
    run(f, "--list --json --timeout 0.3");
    assert_int_equal(f->status, 3);
    assert_string_equal(f->out, "");
    assert_non_null(strstr(f->err, "no answer from tallyd at "));
    assert_non_null(strstr(f->err, "within 0.3 s"));
    assert_int_equal(f->backup_reqs, 0);
}

static void test_cli_list_usage(void **state)
{
    fake_t *f = *state;
    static const char *const with[] = {"--copy-to x", "--name " BNAME " --copy-to x",
                                       "--keep 3 --copy-to x", "--verify x"};
    for (size_t i = 0; i < sizeof with / sizeof with[0]; i++) {
        char args[128];
        snprintf(args, sizeof args, "--list %s", with[i]);
        run(f, args);
        assert_int_equal(f->status, 2);
        assert_string_equal(f->out, "");
        assert_string_equal(f->err, "tally backup: --list shows the backups tallyd keeps: it "
                                    "takes no --copy-to, --name, --keep or --verify\n"
                                    "Try 'tally backup --help' for more information.\n");
    }
    run(f, "--list=yes");
    assert_int_equal(f->status, 2);
    run(f, "--help");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "       tally backup [--json] --list [OPTIONS]\n"));
    assert_non_null(strstr(f->out, "--list shows the backups tallyd keeps, oldest first: the "
                                   "names --name takes.\n"));
    assert_non_null(strstr(f->out, "      --list         list the backups tallyd keeps"));
    assert_non_null(strstr(f->out, "Exit status: 0 written (and copied) or listed, "));
    assert_int_equal(f->list_reqs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_longest_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_daemon, setup, teardown),
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
        cmocka_unit_test_setup_teardown(test_cli_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_no_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_usage, setup, teardown),
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
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_other_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_no_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_usage, setup, teardown),
    };
    /* A fetch unanswered is asked again after 200 ms, not 10 s, here and
     * in the commands run. */
    setenv("TALLY_FETCH_RESEND_MS", "200", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
