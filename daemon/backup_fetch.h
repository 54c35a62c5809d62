/* backup_fetch.h - a backup's files read for BACKUP_FETCH (PROTOCOL.md
 * 8.27), so that an operator can copy a backup tallyd wrote to a machine
 * of their own; and the backups kept listed for BACKUP_LIST_REQ (8.28),
 * so that they know which names to copy.
 *
 * What a fetch reads.  The backup backup_root()/name (the backup
 * directory of the backup part's settings in force when the fetch
 * begins, so a reload that moves [backup] dir moves the next fetch too),
 * its regular files that a backup holds (backup_holds()) sorted by name
 * bytewise, and of the file numbered file in that list, from offset,
 * min(BACKUP_FETCH_CHUNK, size - offset) bytes.  Nothing is kept between
 * fetches: each lists the directory and opens the file anew, so every
 * fetch stands alone and may end in any order.  Subdirectories, symbolic
 * links and other entries that are not regular files are not listed, and
 * neither the backup directory nor a file is followed through a symbolic
 * link.
 *
 * What a listing reads.  The entries of backup_root() (as for a fetch)
 * that are directories, not followed through a symbolic link, under a
 * backup's name (proto_backup_name_valid(): partial backups and anything
 * else are left out), oldest first: by the time in the name, then by its
 * suffix -N taken as a number (none first, -2 before -10).  Of the newest
 * PROTO_BACKUPS_MAX of them, the regular files a fetch would list
 * (backup_holds(), not followed), their size together, and whether
 * BLAKE2SUMS is among them.  A backup that cannot be opened or read (no
 * permission, removed after the backup directory was read) is listed with
 * 0 files, 0 bytes and no BLAKE2SUMS: its name was there, and a fetch of
 * it says what is wrong.
 *
 * Fetches and listings share BACKUP_FETCH_MAX slots: at most that many of
 * them together are read at once.
 *
 * Threads.  The listing, the open, fstat and pread run on libuv's thread
 * pool (a cold disk must not stall the loop); every function here, and
 * every callback, runs on the loop's thread.
 */
#ifndef TALLYD_BACKUP_FETCH_H
#define TALLYD_BACKUP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "backup.h"
#include "proto.h"

#define BACKUP_FETCH_MAX 32 /* fetches and listings read at once; one more is TALLY_EBUSY */
/* What a fetch or a listing refused TALLY_EBUSY is told (a printf format
 * taking BACKUP_FETCH_MAX), whichever of the two kinds fills the slots. */
#define BACKUP_FETCH_BUSY                                                                          \
    "%d reads of backups (fetches and listings) are under way already; retry in a moment"
#define BACKUP_FETCH_CHUNK PROTO_CHUNK_MAX /* bytes of a file in one answer */

/* How a fetch ended, for its callback.  The pointers are valid during the
 * call only. */
typedef struct backup_fetch_result {
    /* 0: the piece was read.  TALLY_ENOBACKUP (field "name": no directory
     * of that name in the backup directory); TALLY_ERANGE (field "file":
     * no file of that number; field "offset": past the file's end);
     * TALLY_EUNAVAIL (a file or the directory could not be opened or
     * read, or the thread pool failed); TALLY_ECLOSED (backup_fetch_close()
     * was called before the read ended). */
    int rc;
    const char *field; /* rc != 0: the field of the request at fault, "" for none */
    const char *err;   /* rc != 0: a sentence for an ERROR: printable, < PROTO_MESSAGE_MAX bytes */
    const char *name;  /* the backup's name, as asked */
    uint32_t files;    /* rc == 0 or a TALLY_ERANGE: the backup's files */
    uint32_t file;     /* as asked */
    const char *file_name; /* rc == 0 or field "offset": that file's name */
    uint64_t size;         /* ... and its size */
    uint64_t offset;       /* as asked */
    const uint8_t *data;   /* rc == 0: len bytes of the file from offset (NULL when len is 0) */
    size_t len;
} backup_fetch_result_t;

/* Called once for every fetch begun, on the loop; arg is what
 * backup_fetch_begin() was handed. */
typedef void (*backup_fetch_cb)(void *arg, const backup_fetch_result_t *res);

/* How a listing ended, for its callback.  The pointers are valid during
 * the call only. */
typedef struct backup_fetch_listing {
    /* 0: listed (a backup directory that does not exist lists no backup:
     * none was written yet); TALLY_EUNAVAIL (the backup directory could
     * not be read, or the thread pool failed); TALLY_ECLOSED
     * (backup_fetch_close() was called before the listing ended). */
    int rc;
    const char *err; /* rc != 0: a sentence for an ERROR: printable, < PROTO_MESSAGE_MAX bytes */
    /* rc == 0: the backup directory, resolved (realpath) when it can be,
     * else as configured; "" when that is not UTF-8 or is longer than
     * PROTO_PATH_MAX bytes (PROTOCOL.md 8.28). */
    const char *dir;
    uint32_t total;                      /* rc == 0: backups in it */
    uint32_t n;                          /* rc == 0: listed, the newest, <= PROTO_BACKUPS_MAX */
    const proto_backup_entry_t *backups; /* rc == 0: n of them, oldest first (NULL when n is 0) */
} backup_fetch_listing_t;

/* Called once for every listing begun, on the loop; arg is what
 * backup_fetch_list_begin() was handed. */
typedef void (*backup_fetch_list_cb)(void *arg, const backup_fetch_listing_t *res);

typedef struct backup_fetch_config {
    uv_loop_t *loop;
    const backup_t *backup; /* where backups are (backup_root, backup_keep), read at each fetch */
} backup_fetch_config_t;

struct backup_fetch;

/* What a slot reads. */
typedef enum backup_fetch_kind {
    BACKUP_FETCH_PIECE, /* a piece of a file, for backup_fetch_begin() */
    BACKUP_FETCH_LIST,  /* the backups, for backup_fetch_list_begin() */
} backup_fetch_kind_t;

/* One fetch or listing under way.  The loop writes the request before the
 * work is queued and reads the answer after it ends; the thread owns the
 * rest in between. */
typedef struct backup_fetch_slot {
    uv_work_t work;
    struct backup_fetch *owner;
    bool busy;      /* queued, and its after-work callback has not run */
    bool abandoned; /* told TALLY_ECLOSED already by backup_fetch_close() */
    backup_fetch_kind_t kind;
    backup_fetch_cb cb;           /* BACKUP_FETCH_PIECE */
    backup_fetch_list_cb list_cb; /* BACKUP_FETCH_LIST */
    void *arg;
    /* What was asked. */
    char root[CONFIG_PATH_MAX];
    char name[BACKUP_NAME_MAX];
    uint32_t file;
    uint64_t offset;
    int64_t keep; /* [backup] keep, for the sentence of a missing backup */
    /* The answer (the thread). */
    int rc;
    const char *field;
    char err[PROTO_MESSAGE_MAX];
    uint32_t files;
    char file_name[PROTO_BACKUP_NAME_MAX + 1];
    uint64_t size;
    uint8_t *data; /* malloc'ed by the thread, freed after the callback */
    size_t len;
    /* A listing's answer (the thread; the arrays malloc'ed by it, freed
     * after the callback). */
    char dir[PROTO_PATH_MAX + 1];
    uint32_t total, n;
    char (*names)[BACKUP_NAME_MAX]; /* the n backups listed, oldest first */
    proto_backup_entry_t *backups;  /* n, their names in names */
} backup_fetch_slot_t;

/* The part; embed it, its fields are private. */
typedef struct backup_fetch {
    backup_fetch_config_t c;
    backup_fetch_slot_t slots[BACKUP_FETCH_MAX];
    unsigned active; /* slots busy */
    bool closing;
    void (*close_cb)(struct backup_fetch *f);
    char err[PROTO_MESSAGE_MAX]; /* why the last backup_fetch_begin() failed */
} backup_fetch_t;

/* Set the part up (c is copied; its pointers are borrowed and must outlive
 * the part).  Nothing is read until a fetch begins.  Returns 0. */
int backup_fetch_init(backup_fetch_t *f, const backup_fetch_config_t *c);

/* Begin reading, on the thread pool, the piece of file number file (from
 * 0, in name order) of the backup name[0..name_len) from offset.  On 0,
 * cb(arg, result) is called exactly once, later, on the loop (never from
 * within this call).  Returns 0; TALLY_EBUSY (BACKUP_FETCH_MAX fetches
 * and listings are being read); TALLY_ECLOSED (closing); TALLY_EBADNAME
 * (name is not a backup's name, proto_backup_name_valid()); TALLY_EINVAL
 * (the backup directory's path is too long); TALLY_ESYS (the thread pool
 * refused the work).  On a failure cb is never called and
 * backup_fetch_errmsg() says why. */
int backup_fetch_begin(backup_fetch_t *f, const char *name, size_t name_len, uint32_t file,
                       uint64_t offset, backup_fetch_cb cb, void *arg);

/* Begin listing, on the thread pool, the backups in the backup directory
 * (see the top of this file).  On 0, cb(arg, listing) is called exactly
 * once, later, on the loop (never from within this call).  Returns 0;
 * TALLY_EBUSY (BACKUP_FETCH_MAX fetches and listings are being read);
 * TALLY_ECLOSED (closing); TALLY_EINVAL (the backup directory's path is
 * too long); TALLY_ESYS (the thread pool refused the work).  On a failure
 * cb is never called and backup_fetch_errmsg() says why. */
int backup_fetch_list_begin(backup_fetch_t *f, backup_fetch_list_cb cb, void *arg);

/* The sentence of the last failure of backup_fetch_begin() or
 * backup_fetch_list_begin(). */
static inline const char *backup_fetch_errmsg(const backup_fetch_t *f)
{
    return f->err;
}

/* Fetches and listings begun whose callback has not been called yet. */
unsigned backup_fetch_active(const backup_fetch_t *f);

/* Stop: every fetch and listing under way is told TALLY_ECLOSED at once,
 * from within this call (so that its peer can be answered while the
 * request socket is open); reads not begun yet are cancelled, and those
 * under way end unseen.  Later fetches and listings get TALLY_ECLOSED.  cb (may be NULL) runs once
 * no work of the part is outstanding, perhaps from within this call. */
void backup_fetch_close(backup_fetch_t *f, void (*cb)(backup_fetch_t *f));

#endif
