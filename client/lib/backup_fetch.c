/* backup_fetch.c - libtally (client/lib/): tally_backup_fetch_req, a
 * backup that tallyd wrote on its host copied to this machine over the
 * request socket (BACKUP_FETCH and BACKUP_CHUNK, PROTOCOL.md 8.27).  The
 * fetches kept in flight, resent and matched to their replies; the
 * replies checked against each other; and the files written into a
 * partial directory that becomes the copy only once every byte is on
 * disk.  The connection is oneshot_conn.c's. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "b2sums.h"
#include "oneshot_impl.h"
#include "text.h"
#include "util.h"

#define FETCH_IN_FLIGHT 4     /* fetches asked for at a time */
#define FETCH_RESEND_MS 10000 /* a fetch unanswered this long is asked for again */
#define FETCH_BUSY_MS   200   /* the wait before asking a BUSY daemon again */
#define PARTIAL_PREFIX  ".partial-"

/* ---- the directories of the copy ---- */

typedef struct target {
    const char *name;                       /* the backup's */
    char into[TALLY_PATH_MAX + 1];          /* INTO, without trailing '/' */
    char dir[TALLY_PATH_MAX + 1];           /* INTO/NAME */
    char partial[TALLY_PATH_MAX + 16];      /* INTO/.partial-NAME */
    char pname[PROTO_BACKUP_NAME_MAX + 16]; /* .partial-NAME */
    int into_fd, part_fd;                   /* -1 when not open */
    bool made_into, made_partial;
} target_t;

/* Check name and into, and make the paths of the copy.  0 or
 * TALLY_EINVAL. */
static int target_paths(target_t *t, const char *into, const char *name, tally_request_t *req)
{
    *t = (target_t){.name = name, .into_fd = -1, .part_fd = -1};
    if (name == NULL || into == NULL || into[0] == '\0') {
        text_format(req->errbuf, req->errbuf_len, "no backup name, or no directory to copy into");
        return TALLY_EINVAL;
    }
    if (!proto_backup_name_valid(name, strlen(name))) {
        char shown[80];
        text_format(req->errbuf, req->errbuf_len,
                    "'%s' is not a backup's name: backup-YYYYMMDDTHHMMSSZ, optionally followed "
                    "by -N (1 to 3 digits)",
                    text_printable(shown, sizeof shown, name, strlen(name), TEXT_QUOTES));
        return TALLY_EINVAL;
    }
    size_t len = strlen(into);
    while (len > 1 && into[len - 1] == '/')
        len--;
    bool root = len == 1 && into[0] == '/';
    if (len + 1 + strlen(name) > TALLY_PATH_MAX) {
        text_format(req->errbuf, req->errbuf_len,
                    "the copy's path would be longer than %d bytes: %.*s/%s", TALLY_PATH_MAX,
                    (int)len, into, name);
        return TALLY_EINVAL;
    }
    text_copy(t->into, sizeof t->into, into, len);
    text_format(t->dir, sizeof t->dir, "%s%s%s", t->into, root ? "" : "/", name);
    text_format(t->pname, sizeof t->pname, PARTIAL_PREFIX "%s", name);
    text_format(t->partial, sizeof t->partial, "%s%s%s", t->into, root ? "" : "/", t->pname);
    return 0;
}

/* A failed step on path: TALLY_EIO with a sentence naming both and
 * errno's cause. */
static int io_failed(tally_request_t *req, const char *step, const char *path)
{
    text_format(req->errbuf, req->errbuf_len, "cannot %s %s: %s", step, path, strerror(errno));
    return TALLY_EIO;
}

/* Remove INTO/.partial-NAME: a directory of plain files, as an
 * interrupted copy leaves it, or whatever else has that name.  0 or -1
 * (errno tells why). */
static int remove_partial(target_t *t)
{
    /* A link put in its place is not followed elsewhere, only removed. */
    if (atomic_dir_remove_flat(t->into_fd, t->pname) == 0 || errno == ENOENT)
        return 0;
    return errno == ENOTDIR ? unlinkat(t->into_fd, t->pname, 0) : -1;
}

/* Make INTO when it is missing, refuse an existing INTO/NAME, and make
 * the partial directory afresh.  0, TALLY_EEXIST or TALLY_EIO. */
static int target_open(target_t *t, tally_request_t *req)
{
    if (mkdir(t->into, 0700) == 0)
        t->made_into = true;
    else if (errno != EEXIST)
        return io_failed(req, "create the directory", t->into);
    t->into_fd = open(t->into, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->into_fd < 0)
        return io_failed(req, "open the directory", t->into);
    struct stat st;
    if (fstatat(t->into_fd, t->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        text_format(req->errbuf, req->errbuf_len,
                    "%s exists already: remove it, or copy into another directory", t->dir);
        return TALLY_EEXIST;
    }
    if (errno != ENOENT)
        return io_failed(req, "look for", t->dir);
    if (remove_partial(t) < 0)
        return io_failed(req, "remove the leftover of an earlier copy,", t->partial);
    if (mkdirat(t->into_fd, t->pname, 0700) < 0)
        return io_failed(req, "create the directory", t->partial);
    t->made_partial = true;
    t->part_fd = openat(t->into_fd, t->pname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (t->part_fd < 0)
        return io_failed(req, "open the directory", t->partial);
    return 0;
}

/* Write len bytes of data at offset into file (created when missing);
 * last: the file is whole with them, so sync it.  0 or TALLY_EIO. */
static int target_write(target_t *t, const char *file, uint64_t offset, const uint8_t *data,
                        size_t len, bool last, tally_request_t *req)
{
    char path[sizeof t->partial + PROTO_BACKUP_NAME_MAX + 2];
    text_format(path, sizeof path, "%s/%s", t->partial, file);
    if (offset > (uint64_t)INT64_MAX - len) {
        errno = EFBIG;
        return io_failed(req, "write", path);
    }
    /* Opened for each piece: a backup of many files would otherwise keep
     * as many descriptors open; the cost is small beside 256 KiB. */
    int fd = openat(t->part_fd, file, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return io_failed(req, "create", path);
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, data + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ENOSPC;
            int rc = io_failed(req, "write", path);
            close(fd);
            return rc;
        }
        done += (size_t)n;
    }
    if (last && fsync(fd) != 0) {
        int rc = io_failed(req, "sync", path);
        close(fd);
        return rc;
    }
    if (close(fd) != 0)
        return io_failed(req, "write", path);
    return 0;
}

/* Every file of the copy against the backup's BLAKE2SUMS, when it has
 * one (a daemon before BLAKE2SUMS wrote none).  0, TALLY_EDAMAGED or
 * TALLY_EIO. */
static int target_check(target_t *t, tally_request_t *req)
{
    char err[1024];
    int rc = b2sums_check(t->part_fd, t->name, NULL, NULL, NULL, err, sizeof err);
    if (rc == B2SUMS_OK || rc == B2SUMS_NONE)
        return 0;
    if (rc == B2SUMS_DAMAGED) {
        text_format(req->errbuf, req->errbuf_len,
                    "the backup on the daemon's host fails its own BLAKE2SUMS: %s", err);
        return TALLY_EDAMAGED;
    }
    text_format(req->errbuf, req->errbuf_len, "checking the copy in %s: %s", t->partial, err);
    return TALLY_EIO;
}

/* The copy is whole: sync its directory, give it its name and sync INTO.
 * 0, TALLY_EEXIST (INTO/NAME appeared meanwhile) or TALLY_EIO. */
static int target_publish(target_t *t, tally_request_t *req)
{
    if (fsync(t->part_fd) != 0)
        return io_failed(req, "sync the directory", t->partial);
    if (renameat2(t->into_fd, t->pname, t->into_fd, t->name, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
            text_format(req->errbuf, req->errbuf_len,
                        "%s appeared while the backup was being copied: remove it, or copy into "
                        "another directory",
                        t->dir);
            return TALLY_EEXIST;
        }
        /* A file system without RENAME_NOREPLACE: INTO/NAME was missing
         * a moment ago, and a rename never replaces a directory that
         * holds files. */
        if ((errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) ||
            renameat(t->into_fd, t->pname, t->into_fd, t->name) != 0)
            return io_failed(req, "rename the finished copy to", t->dir);
    }
    t->made_partial = false;
    if (fsync(t->into_fd) != 0)
        return io_failed(req, "sync the directory", t->into);
    return 0;
}

/* Close t; after a failure, remove what the copy made. */
static void target_close(target_t *t, bool failed)
{
    if (t->part_fd >= 0)
        close(t->part_fd);
    if (failed && t->made_partial)
        remove_partial(t);
    if (t->into_fd >= 0)
        close(t->into_fd);
    if (failed && t->made_into)
        rmdir(t->into); /* only when nothing else came into it meanwhile */
}

/* ---- the fetches ---- */

typedef struct bfile {
    char name[PROTO_BACKUP_NAME_MAX + 1];
    bool sized;    /* its first piece has come: name and size are known */
    uint64_t size; /* as the daemon says */
    uint64_t next; /* the next offset to ask for */
    uint64_t got;  /* bytes written */
} bfile_t;

typedef struct fetch {
    bool used;
    uint64_t req_id; /* 0 while waiting to ask a BUSY daemon again */
    uint32_t file;
    uint64_t offset;
    int64_t due; /* when to ask again */
} fetch_t;

typedef struct copy {
    target_t t;
    oneshot_t *o;
    tally_request_t *req;
    int timeout_ms, resend_ms;
    int64_t deadline;   /* of the wait without progress */
    bool busy;          /* the daemon's last answer was BUSY */
    char busy_why[256]; /* what it said then */
    uint64_t last_id;
    fetch_t slot[FETCH_IN_FLIGHT];
    bfile_t *f;     /* p.files of them, once known */
    uint32_t probe; /* the next file whose first piece to ask for */
    uint32_t bulk;  /* files below it have every piece asked for */
    tally_backup_progress_t p;
    tally_backup_progress_cb progress;
    void *ctx;
} copy_t;

/* TALLY_FETCH_RESEND_MS, or the default when it is unset or not a number
 * of milliseconds. */
static int resend_ms(void)
{
    const char *s = getenv("TALLY_FETCH_RESEND_MS");
    if (s == NULL || s[0] == '\0')
        return FETCH_RESEND_MS;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno == 0 && *end == '\0' && v > 0 && v <= INT_MAX ? (int)v : FETCH_RESEND_MS;
}

static int send_fetch(copy_t *c, fetch_t *s)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_BACKUP_FETCH;
    s->req_id = ++c->last_id;
    s->due = util_mono_ms() + c->resend_ms;
    m.u.backup_fetch.req_id = s->req_id;
    m.u.backup_fetch.name = proto_str(c->t.name);
    m.u.backup_fetch.file = s->file;
    m.u.backup_fetch.offset = s->offset;
    c->o->deadline = c->deadline;
    return oneshot_send(c->o, &m);
}

/* The next piece to ask for: the first piece of every file first, which
 * tells the sizes (and so the total) early, then the others in order.
 * False when everything has been asked for, or the sizes it depends on
 * are not known yet. */
static bool pick(copy_t *c, uint32_t *file, uint64_t *offset)
{
    if (c->probe < c->p.files) {
        *file = c->probe++;
        *offset = 0;
        return true;
    }
    for (uint32_t i = c->bulk; i < c->p.files; i++) {
        bfile_t *f = &c->f[i];
        if (f->sized && f->next < f->size) {
            *file = i;
            *offset = f->next;
            f->next = f->size - f->next > PROTO_CHUNK_MAX ? f->next + PROTO_CHUNK_MAX : f->size;
            return true;
        }
        if (f->sized && i == c->bulk)
            c->bulk++;
    }
    return false;
}

/* Ask for new pieces in the free slots, and again for those unanswered
 * for too long (or after a BUSY). */
static int fill(copy_t *c)
{
    int64_t now = util_mono_ms();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < FETCH_IN_FLIGHT; i++) {
        fetch_t *s = &c->slot[i];
        if (s->used && s->due <= now)
            rc = send_fetch(c, s); /* a fresh req_id: a late reply is passed over */
        else if (!s->used && pick(c, &s->file, &s->offset)) {
            s->used = true;
            rc = send_fetch(c, s);
        }
    }
    return rc;
}

static fetch_t *find(copy_t *c, uint64_t req_id)
{
    for (size_t i = 0; req_id != 0 && i < FETCH_IN_FLIGHT; i++)
        if (c->slot[i].used && c->slot[i].req_id == req_id)
            return &c->slot[i];
    return NULL;
}

/* The answers disagree: TALLY_EMALFORMED, with a sentence (a format and
 * its arguments) saying how. */
#define DISAGREE(c, ...)                                                                           \
    (text_format((c)->req->errbuf, (c)->req->errbuf_len,                                           \
                 "the daemon's answers disagree: " __VA_ARGS__),                                   \
     TALLY_EMALFORMED)

/* The first answer: how many files the backup has. */
static int count_files(copy_t *c, uint32_t files)
{
    if ((c->f = calloc(files, sizeof *c->f)) == NULL)
        return TALLY_ENOMEM;
    c->p.files = files;
    c->probe = 1; /* file 0's first piece is the one that came */
    return 0;
}

/* The first piece of file i has come: its name and size. */
static int size_file(copy_t *c, uint32_t i, const proto_str_t *name, uint64_t size)
{
    bfile_t *f = &c->f[i];
    text_copy(f->name, sizeof f->name, name->ptr, name->len);
    for (uint32_t j = 0; j < c->p.files; j++)
        if (j != i && c->f[j].sized && strcmp(c->f[j].name, f->name) == 0)
            return DISAGREE(c, "files %" PRIu32 " and %" PRIu32 " are both called %s", j, i,
                            f->name);
    f->sized = true;
    f->size = size;
    f->next = PROTO_CHUNK_MAX;
    c->p.files_sized++;
    c->p.bytes += size;
    return 0;
}

/* A piece answering fetch s: checked against what was asked and what
 * came before, then written. */
static int take_chunk(copy_t *c, const fetch_t *s, const proto_msg_t *m)
{
    const __typeof__(m->u.backup_chunk) *k = &m->u.backup_chunk;
    if (k->file != s->file || k->offset != s->offset)
        return DISAGREE(c,
                        "file %" PRIu32 " at offset %" PRIu64 " came for a fetch of file %" PRIu32
                        " at offset %" PRIu64,
                        k->file, k->offset, s->file, s->offset);
    int rc = 0;
    if (c->p.files == 0 && (rc = count_files(c, k->files)) < 0)
        return rc;
    if (k->files != c->p.files)
        return DISAGREE(c, "the backup had %" PRIu32 " files, then %" PRIu32, c->p.files, k->files);
    bfile_t *f = &c->f[k->file];
    if (!f->sized && (rc = size_file(c, k->file, &k->file_name, k->size)) < 0)
        return rc;
    if (k->size != f->size)
        return DISAGREE(c, "%s (file %" PRIu32 ") had %" PRIu64 " bytes, then %" PRIu64, f->name,
                        k->file, f->size, k->size);
    if (k->file_name.len != strlen(f->name) ||
        memcmp(k->file_name.ptr, f->name, k->file_name.len) != 0)
        return DISAGREE(c, "file %" PRIu32 " was called %s, then %.*s", k->file, f->name,
                        (int)k->file_name.len, k->file_name.ptr);
    bool last = f->got + k->data.len == f->size;
    rc = target_write(&c->t, f->name, k->offset, (const uint8_t *)k->data.ptr, k->data.len, last,
                      c->req);
    if (rc < 0)
        return rc;
    f->got += k->data.len;
    c->p.bytes_done += k->data.len;
    c->p.files_done += last;
    if (c->progress != NULL)
        c->progress(c->ctx, &c->p);
    return 0;
}

/* One reply: a piece, or an ERROR for a fetch in flight. */
static int on_reply(copy_t *c, const proto_msg_t *m)
{
    if (m->type == PROTO_ERROR && m->u.error.req_id == 0)
        return m->u.error.code == -TALLY_ETYPE ? oneshot_wire_error(m, c->req) : 0;
    uint64_t req_id = proto_req_id(m);
    fetch_t *s = find(c, req_id);
    if (s == NULL || (m->type != PROTO_ERROR && m->type != PROTO_BACKUP_CHUNK))
        return 0; /* a late reply to a fetch asked for again, or not ours */
    if (m->type == PROTO_ERROR && m->u.error.code == -TALLY_EBUSY) {
        /* Each fetch stands alone: ask again in a moment, until the wait
         * without progress ends. */
        text_copy(c->busy_why, sizeof c->busy_why, m->u.error.message.ptr,
                  m->u.error.message.len); /* said should the wait end */
        c->busy = true;
        s->req_id = 0;
        s->due = util_mono_ms() + FETCH_BUSY_MS;
        return 0;
    }
    if (m->type == PROTO_ERROR)
        return oneshot_wire_error(m, c->req);
    int rc = take_chunk(c, s, m);
    s->used = false;
    c->busy = false;
    c->deadline = util_mono_ms() + c->timeout_ms;
    return rc;
}

/* Wait for the next reply, or until a fetch is due to be asked again.
 * 0 (a reply in c->o->msg), TALLY_EAGAIN (a fetch is due), or the wait
 * ended: TALLY_ETIMEDOUT, TALLY_EBUSY (no progress while the daemon said
 * BUSY), TALLY_ECLOSED, TALLY_ESYS. */
static int wait_reply(copy_t *c)
{
    int64_t wake = c->deadline;
    for (size_t i = 0; i < FETCH_IN_FLIGHT; i++)
        if (c->slot[i].used && c->slot[i].due < wake)
            wake = c->slot[i].due;
    c->o->deadline = wake;
    int rc = oneshot_recv(c->o);
    c->o->deadline = c->deadline;
    if (rc != TALLY_ETIMEDOUT)
        return rc;
    if (c->o->refused_ms > 0 && monitor_refused_ms(&c->o->mon) >= c->o->refused_ms)
        return TALLY_ETIMEDOUT; /* nothing listens there */
    if (util_mono_ms() < c->deadline)
        return TALLY_EAGAIN;
    if (!c->busy)
        return TALLY_ETIMEDOUT;
    text_format(c->req->errbuf, c->req->errbuf_len, "%s", c->busy_why);
    return TALLY_EBUSY;
}

static bool copied(const copy_t *c)
{
    return c->p.files > 0 && c->p.files_done == c->p.files;
}

static int run(copy_t *c)
{
    /* File 0's first piece tells how many files there are. */
    c->slot[0] = (fetch_t){.used = true, .file = 0, .offset = 0};
    int rc = send_fetch(c, &c->slot[0]);
    while (rc == 0 && !copied(c)) {
        rc = wait_reply(c);
        if (rc == 0)
            rc = on_reply(c, &c->o->msg);
        else if (rc == TALLY_EAGAIN)
            rc = 0;
        if (rc == 0)
            rc = fill(c);
    }
    return rc;
}

int tally_backup_fetch_progress_req(const char *server, tally_request_t *req, const char *name,
                                    const char *into, tally_backup_progress_cb progress, void *ctx,
                                    tally_backup_copy_t *out)
{
    tally_request_t none = {.timeout_ms = TALLY_FETCH_TIMEOUT_MS};
    if (req == NULL)
        req = &none;
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    if (out == NULL) {
        text_format(req->errbuf, req->errbuf_len, "nowhere to put the copy's description");
        return TALLY_EINVAL;
    }
    memset(out, 0, sizeof *out);
    int64_t start = util_mono_ms();
    copy_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TALLY_ENOMEM;
    c->req = req;
    c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : TALLY_FETCH_TIMEOUT_MS;
    c->resend_ms = resend_ms();
    c->progress = progress;
    c->ctx = ctx;
    int rc = target_paths(&c->t, into, name, req);
    if (rc == 0) {
        text_copy(out->dir, sizeof out->dir, c->t.dir, strlen(c->t.dir));
        /* The connection's deadline is moved on by every piece that comes:
         * open it with the wait without progress. */
        int asked = req->timeout_ms;
        req->timeout_ms = c->timeout_ms;
        rc = oneshot_open(server, req, true, &c->o);
        req->timeout_ms = asked;
    }
    if (rc == 0 && (rc = target_open(&c->t, req)) == 0) {
        c->deadline = util_mono_ms() + c->timeout_ms;
        if ((rc = run(c)) == 0 && (rc = target_check(&c->t, req)) == 0)
            rc = target_publish(&c->t, req);
    }
    if (c->o != NULL) {
        if (rc < 0 && !tally_err_is_wire(rc))
            oneshot_failed(c->o, req, rc);
        oneshot_close(c->o, req);
    }
    target_close(&c->t, rc < 0);
    if (rc == 0) {
        out->files = c->p.files;
        out->bytes = c->p.bytes;
        out->ms = (uint64_t)(util_mono_ms() - start);
    }
    free(c->f);
    free(c);
    return rc;
}

int tally_backup_fetch_req(const char *server, tally_request_t *req, const char *name,
                           const char *into, tally_backup_copy_t *out)
{
    return tally_backup_fetch_progress_req(server, req, name, into, NULL, NULL, out);
}
