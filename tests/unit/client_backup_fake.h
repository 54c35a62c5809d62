/* client_backup_fake.h - the scripted daemon of test_client_backup.c
 * (BACKUP_REQ, BACKUP_LIST_REQ) and test_client_backup_copy.c
 * (BACKUP_FETCH): a fake daemon (client_fake_daemon.h) that answers each
 * of the three requests as the test sets it to (mode, fetch_mode and
 * twists, list_mode), serving as the backup BNAME the files setup writes
 * in a directory of its own, and run(), which runs `tally backup` against
 * it.  Every function is static inline, as in client_fake_daemon.h. */
#ifndef CLIENT_BACKUP_FAKE_H
#define CLIENT_BACKUP_FAKE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "client_fake_daemon.h"

#ifndef TALLY_CLI
#error "TALLY_CLI must name the tally executable"
#endif

#define BNAME       "backup-20261206T231500Z"
#define PATH        "/var/lib/tallyd/backups/" BNAME
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

static inline void send_backup(fake_t *f, uint64_t req_id, const char *path)
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

static inline void answer_held(fake_t *f)
{
    for (int i = f->nheld - 1; i >= 0; i--)
        fake_backup_answer(&f->d, &f->backup, f->held[i].req_id, f->held[i].name, f->held[i].file,
                           f->held[i].offset, NULL);
    f->reordered += f->nheld > 1;
    f->nheld = 0;
}

static inline void idle(fake_daemon_t *d)
{
    answer_held(d->ctx);
}

/* The lie of a chunk under f's twists, for file at offset. */
static inline fake_chunk_lie_t lie_of(const fake_t *f, uint32_t file, uint64_t offset)
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

static inline bool answer_fetch(fake_t *f, const proto_msg_t *q)
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
static inline void list_three(fake_t *f)
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

static inline void send_list(fake_t *f, uint64_t req_id, const char *dir)
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
static inline void refuse(fake_daemon_t *d, enum mode mode, uint64_t req_id, const char *unavail,
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

static inline bool answer_list(fake_t *f, uint64_t req_id)
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

static inline bool answer(fake_daemon_t *d, const proto_msg_t *q)
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
static inline int write_src(const char *dir, const char *name, size_t size, unsigned k)
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

static inline int setup(void **state)
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

static inline void start(fake_t *f, enum mode mode)
{
    f->mode = mode;
    fake_daemon_start(&f->d, answer);
}

static inline int teardown(void **state)
{
    fake_t *f = *state;
    int rc = fake_daemon_close(&f->d);
    free(f);
    return rc;
}

/* ---- the tally command ---- */

static inline void slurp(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

/* Run `tally --server EP backup ARGS` (args: one shell word each, no
 * quoting needed); fills f->status, f->out and f->err. */
static inline void run(fake_t *f, const char *args)
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

#endif
