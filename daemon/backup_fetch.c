/* backup_fetch.c - a piece of a backup's file read on the thread pool for
 * BACKUP_FETCH, and the backups kept listed there for BACKUP_LIST_REQ
 * (see backup_fetch.h). */
#include "backup_fetch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b2sums.h"
#include "tally_error.h"
#include "text.h"

/* Room for a path inside the sentence of an ERROR, with the rest of it. */
#define SHOWN_PATH_MAX 320

static void set_err(backup_fetch_slot_t *s, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(backup_fetch_slot_t *s, int rc, const char *field, const char *fmt, ...)
{
    s->rc = rc;
    s->field = field;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

/* The backup directory's path as an operator would look for it: resolved
 * where it exists, else (not made yet) made absolute from tallyd's working
 * directory, else as configured.  malloc'ed, or NULL without memory. */
static char *absolute_root(const char *root)
{
    char *abs = realpath(root, NULL);
    if (abs != NULL || root[0] == '/')
        return abs != NULL ? abs : strdup(root);
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return strdup(root);
    size_t len = strlen(cwd) + 1 + strlen(root) + 1;
    if ((abs = malloc(len)) != NULL)
        snprintf(abs, len, "%s/%s", cwd, root);
    return abs;
}

/* The backup directory as an operator would look for it (absolute_root),
 * escaped where it is not printable UTF-8, cut when long. */
static void shown_root(const backup_fetch_slot_t *s, char *out, size_t cap)
{
    char *abs = absolute_root(s->root);
    const char *p = abs != NULL ? abs : s->root;
    text_printable(out, cap, p, strlen(p), 0);
    free(abs);
}

/* The directory of the backup asked for; -1 with the answer set when
 * there is none or it cannot be opened. */
static int open_backup(backup_fetch_slot_t *s, const char *path)
{
    /* O_NOFOLLOW: a backup is a directory tallyd made, never a link to
     * somewhere else. */
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0)
        return dfd;
    int e = errno;
    char shown[SHOWN_PATH_MAX];
    shown_root(s, shown, sizeof(shown));
    if (e == ENOENT || e == ENOTDIR || e == ELOOP)
        set_err(s, TALLY_ENOBACKUP, "name",
                "no backup named %s in %s (never written, or removed since: [backup] keep is "
                "%" PRId64 ")",
                s->name, shown, s->keep);
    else
        set_err(s, TALLY_EUNAVAIL, "", "cannot open the backup %s in %s: %s", s->name, shown,
                strerror(e));
    return -1;
}

/* Read len bytes of fd from s->offset into s->data, whole. */
static void read_piece(backup_fetch_slot_t *s, int fd, size_t len)
{
    if (len == 0)
        return;
    s->data = malloc(len);
    if (s->data == NULL) {
        set_err(s, TALLY_EUNAVAIL, "",
                "the daemon is out of memory for %zu bytes of %s; retry later", len, s->file_name);
        return;
    }
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(fd, s->data + got, len - got, (off_t)(s->offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_err(s, TALLY_EUNAVAIL, "", "cannot read %s of %s: %s", s->file_name, s->name,
                    strerror(errno));
            return;
        }
        if (r == 0) {
            /* A backup's files never change once written: something else
             * cut this one. */
            set_err(s, TALLY_EUNAVAIL, "",
                    "%s of %s shrank while it was read: it ends at byte %" PRIu64 ", %" PRIu64
                    " bytes were expected",
                    s->file_name, s->name, s->offset + got, s->size);
            return;
        }
        got += (size_t)r;
    }
    s->len = len;
}

/* Open file number s->file of the backup open at dfd (path), check the
 * offset and read the piece. */
static void read_file(backup_fetch_slot_t *s, int dfd, const char *path)
{
    backup_names_t ns;
    int e = backup_list(path, backup_holds, S_IFREG, &ns);
    if (e != 0) {
        set_err(s, TALLY_EUNAVAIL, "", "cannot list the files of %s: %s", s->name, strerror(e));
        return;
    }
    s->files = ns.n > UINT32_MAX ? UINT32_MAX : (uint32_t)ns.n;
    if (s->file >= s->files) {
        set_err(s, TALLY_ERANGE, "file",
                "file %" PRIu32 " asked for, the backup holds %" PRIu32 " file%s", s->file,
                s->files, s->files == 1 ? "" : "s");
        backup_names_free(&ns);
        return;
    }
    snprintf(s->file_name, sizeof(s->file_name), "%s", ns.v[s->file]);
    backup_names_free(&ns);
    /* O_NONBLOCK: should the entry have become a FIFO since the listing,
     * the open must not wait for a writer; a regular file ignores it. */
    int fd = openat(dfd, s->file_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        set_err(s, TALLY_EUNAVAIL, "", "cannot open %s of %s: %s", s->file_name, s->name,
                strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        set_err(s, TALLY_EUNAVAIL, "", "cannot read %s of %s: %s", s->file_name, s->name,
                strerror(errno));
    else if (!S_ISREG(st.st_mode))
        set_err(s, TALLY_EUNAVAIL, "", "%s of %s is no longer a regular file", s->file_name,
                s->name);
    if (s->rc == 0) {
        s->size = (uint64_t)st.st_size;
        if (s->offset > s->size) {
            set_err(s, TALLY_ERANGE, "offset",
                    "offset %" PRIu64 " is past the end of %s, %" PRIu64 " bytes", s->offset,
                    s->file_name, s->size);
        } else {
            uint64_t left = s->size - s->offset;
            read_piece(s, fd, (size_t)(left < BACKUP_FETCH_CHUNK ? left : BACKUP_FETCH_CHUNK));
        }
    }
    close(fd);
}

static void read_piece_work(backup_fetch_slot_t *s)
{
    char path[sizeof(s->root) + sizeof(s->name) + 1];
    snprintf(path, sizeof(path), "%s/%s", s->root, s->name);
    int dfd = open_backup(s, path);
    if (dfd < 0)
        return;
    read_file(s, dfd, path);
    close(dfd);
}

/* The order the backups were written in (bytewise, -10 would come
 * before -2). */
static int names_cmp(const void *a, const void *b)
{
    return proto_backup_name_cmp(a, b);
}

/* The files of the backup name in the directory open at dfd, as a fetch
 * would list them.  One that cannot be opened or read is left at 0 files
 * (see backup_fetch.h). */
static void count_backup(int dfd, const char *name, proto_backup_entry_t *e)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    proto_backup_entry_t got = {.name = e->name};
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL)
            break;
        struct stat st;
        if (!backup_holds(de->d_name) || fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        got.files++;
        got.bytes += (uint64_t)st.st_size;
        got.sums = got.sums || strcmp(de->d_name, B2SUMS_FILE) == 0;
    }
    if (errno == 0)
        *e = got;
    closedir(d);
}

/* The names of the backups in the directory d (s->root), unsorted, into
 * s->names; *count says how many.  False with the answer set when the
 * directory could not be read or memory ran out. */
static bool collect_names(backup_fetch_slot_t *s, DIR *d, size_t *count)
{
    size_t n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL)
            break;
        struct stat st;
        size_t len = strlen(de->d_name);
        if (!proto_backup_name_valid(de->d_name, len) || len >= BACKUP_NAME_MAX ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char(*nv)[BACKUP_NAME_MAX] = realloc(s->names, ncap * sizeof(*nv));
            if (nv == NULL) {
                set_err(s, TALLY_EUNAVAIL, "",
                        "the daemon is out of memory for a list of %zu backups; retry later", n);
                return false;
            }
            s->names = nv;
            cap = ncap;
        }
        memcpy(s->names[n++], de->d_name, len + 1);
    }
    if (errno != 0) {
        int e = errno;
        char shown[SHOWN_PATH_MAX];
        shown_root(s, shown, sizeof(shown));
        set_err(s, TALLY_EUNAVAIL, "", "cannot read the backup directory %s: %s", shown,
                strerror(e));
        return false;
    }
    *count = n;
    return true;
}

/* The backup directory for BACKUP_LIST's dir: resolved where it can be;
 * "" where the path does not fit the field (PROTOCOL.md 8.28). */
static void wire_dir(backup_fetch_slot_t *s)
{
    char *abs = absolute_root(s->root);
    const char *p = abs != NULL ? abs : s->root;
    size_t len = strlen(p);
    if (len <= PROTO_PATH_MAX && proto_utf8_valid(p, len))
        memcpy(s->dir, p, len + 1);
    free(abs);
}

static void list_work(backup_fetch_slot_t *s)
{
    wire_dir(s);
    DIR *d = opendir(s->root);
    if (d == NULL) {
        int e = errno;
        if (e == ENOENT) /* no backup was written yet */
            return;
        char shown[SHOWN_PATH_MAX];
        shown_root(s, shown, sizeof(shown));
        set_err(s, TALLY_EUNAVAIL, "", "cannot read the backup directory %s: %s", shown,
                strerror(e));
        return;
    }
    size_t count = 0;
    if (!collect_names(s, d, &count) || count == 0) {
        closedir(d);
        return;
    }
    qsort(s->names, count, sizeof(*s->names), names_cmp);
    size_t n = count < PROTO_BACKUPS_MAX ? count : PROTO_BACKUPS_MAX;
    size_t skip = count - n; /* the oldest, beyond what one answer holds */
    memmove(s->names, s->names + skip, n * sizeof(*s->names));
    if ((s->backups = calloc(n, sizeof(*s->backups))) == NULL) {
        set_err(s, TALLY_EUNAVAIL, "",
                "the daemon is out of memory for a list of %zu backups; retry later", n);
        closedir(d);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        s->backups[i].name = proto_str(s->names[i]);
        count_backup(dirfd(d), s->names[i], &s->backups[i]);
    }
    closedir(d);
    s->total = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
    s->n = (uint32_t)n;
}

static void on_work(uv_work_t *w)
{
    backup_fetch_slot_t *s = w->data;
    if (s->kind == BACKUP_FETCH_LIST)
        list_work(s);
    else
        read_piece_work(s);
}

static void maybe_closed(backup_fetch_t *f)
{
    if (f->closing && f->active == 0 && f->close_cb != NULL) {
        void (*cb)(backup_fetch_t *) = f->close_cb;
        f->close_cb = NULL;
        cb(f);
    }
}

static void tell(backup_fetch_slot_t *s)
{
    if (s->kind == BACKUP_FETCH_LIST) {
        backup_fetch_listing_t res = {
            .rc = s->rc,
            .err = s->err,
            .dir = s->rc == 0 ? s->dir : "",
            .total = s->rc == 0 ? s->total : 0,
            .n = s->rc == 0 ? s->n : 0,
            .backups = s->rc == 0 && s->n > 0 ? s->backups : NULL,
        };
        s->list_cb(s->arg, &res);
        return;
    }
    backup_fetch_result_t res = {
        .rc = s->rc,
        .field = s->field,
        .err = s->err,
        .name = s->name,
        .files = s->files,
        .file = s->file,
        .file_name = s->file_name,
        .size = s->size,
        .offset = s->offset,
        .data = s->rc == 0 ? s->data : NULL,
        .len = s->rc == 0 ? s->len : 0,
    };
    s->cb(s->arg, &res);
}

/* What the slot's answer holds goes, once it was told or abandoned. */
static void slot_free(backup_fetch_slot_t *s)
{
    free(s->data);
    s->data = NULL;
    free(s->names);
    s->names = NULL;
    free(s->backups);
    s->backups = NULL;
}

static void after_work(uv_work_t *w, int status)
{
    backup_fetch_slot_t *s = w->data;
    backup_fetch_t *f = s->owner;
    if (!s->abandoned) {
        if (status != 0)
            set_err(s, TALLY_EUNAVAIL, "", "the thread pool: %s", uv_strerror(status));
        tell(s);
    }
    slot_free(s);
    s->busy = false;
    f->active--;
    maybe_closed(f);
}

int backup_fetch_init(backup_fetch_t *f, const backup_fetch_config_t *c)
{
    memset(f, 0, sizeof(*f));
    f->c = *c;
    for (size_t i = 0; i < BACKUP_FETCH_MAX; i++) {
        f->slots[i].owner = f;
        f->slots[i].work.data = &f->slots[i];
    }
    return 0;
}

static int refuse(backup_fetch_t *f, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(backup_fetch_t *f, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof(f->err), fmt, ap);
    va_end(ap);
    return rc;
}

/* A free slot, its request and answer cleared and the backup directory
 * in force in its root; NULL with f->err set when there is none. */
static backup_fetch_slot_t *claim(backup_fetch_t *f, int *rc)
{
    if (f->closing) {
        *rc = refuse(f, TALLY_ECLOSED, "tallyd is stopping");
        return NULL;
    }
    if (f->active == BACKUP_FETCH_MAX) {
        *rc = refuse(f, TALLY_EBUSY, BACKUP_FETCH_BUSY, BACKUP_FETCH_MAX);
        return NULL;
    }
    backup_fetch_slot_t *s = f->slots;
    while (s->busy)
        s++;
    if (backup_root(f->c.backup, s->root, sizeof(s->root)) != 0) {
        *rc = refuse(f, TALLY_EINVAL, "the backup directory's path is longer than %zu bytes",
                     sizeof(s->root) - 1);
        return NULL;
    }
    s->abandoned = false;
    s->cb = NULL;
    s->list_cb = NULL;
    s->name[0] = '\0';
    s->file = 0;
    s->offset = 0;
    s->rc = 0;
    s->field = "";
    s->err[0] = '\0';
    s->files = 0;
    s->file_name[0] = '\0';
    s->size = 0;
    s->data = NULL;
    s->len = 0;
    s->dir[0] = '\0';
    s->total = 0;
    s->n = 0;
    s->names = NULL;
    s->backups = NULL;
    return s;
}

static int queue(backup_fetch_t *f, backup_fetch_slot_t *s)
{
    int rc = uv_queue_work(f->c.loop, &s->work, on_work, after_work);
    if (rc != 0)
        return refuse(f, TALLY_ESYS, "the thread pool: %s", uv_strerror(rc));
    s->busy = true;
    f->active++;
    return 0;
}

int backup_fetch_begin(backup_fetch_t *f, const char *name, size_t name_len, uint32_t file,
                       uint64_t offset, backup_fetch_cb cb, void *arg)
{
    if (f->closing)
        return refuse(f, TALLY_ECLOSED, "tallyd is stopping");
    if (!proto_backup_name_valid(name, name_len) || name_len >= BACKUP_NAME_MAX)
        return refuse(f, TALLY_EBADNAME, "not a backup's name");
    int rc = 0;
    backup_fetch_slot_t *s = claim(f, &rc);
    if (s == NULL)
        return rc;
    s->kind = BACKUP_FETCH_PIECE;
    memcpy(s->name, name, name_len);
    s->name[name_len] = '\0';
    s->file = file;
    s->offset = offset;
    s->keep = backup_keep(f->c.backup);
    s->cb = cb;
    s->arg = arg;
    return queue(f, s);
}

int backup_fetch_list_begin(backup_fetch_t *f, backup_fetch_list_cb cb, void *arg)
{
    int rc = 0;
    backup_fetch_slot_t *s = claim(f, &rc);
    if (s == NULL)
        return rc;
    s->kind = BACKUP_FETCH_LIST;
    s->list_cb = cb;
    s->arg = arg;
    return queue(f, s);
}

unsigned backup_fetch_active(const backup_fetch_t *f)
{
    unsigned n = 0;
    for (size_t i = 0; i < BACKUP_FETCH_MAX; i++)
        n += f->slots[i].busy && !f->slots[i].abandoned;
    return n;
}

void backup_fetch_close(backup_fetch_t *f, void (*cb)(backup_fetch_t *f))
{
    if (f->closing)
        return;
    f->closing = true;
    f->close_cb = cb;
    for (size_t i = 0; i < BACKUP_FETCH_MAX; i++) {
        backup_fetch_slot_t *s = &f->slots[i];
        if (!s->busy || s->abandoned)
            continue;
        /* The thread may be reading into s: only the loop's fields are
         * touched here; its answer is dropped when the work ends. */
        s->abandoned = true;
        if (s->kind == BACKUP_FETCH_LIST) {
            backup_fetch_listing_t res = {
                .rc = TALLY_ECLOSED, .err = "tallyd is stopping", .dir = ""};
            s->list_cb(s->arg, &res);
        } else {
            backup_fetch_result_t res = {
                .rc = TALLY_ECLOSED,
                .field = "",
                .err = "tallyd is stopping",
                .name = s->name,
                .file = s->file,
                .file_name = "",
                .offset = s->offset,
            };
            s->cb(s->arg, &res);
        }
        uv_cancel((uv_req_t *)&s->work);
    }
    maybe_closed(f);
}
