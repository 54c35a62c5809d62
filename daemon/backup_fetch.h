/* backup_fetch.h - a backup's files read for BACKUP_FETCH (PROTOCOL.md
 * 8.27), so that an operator can copy a backup tallyd wrote to a machine
 * of their own.
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

#define BACKUP_FETCH_MAX   32              /* fetches read at once; one more is TALLY_EBUSY */
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

typedef struct backup_fetch_config {
    uv_loop_t *loop;
    const backup_t *backup; /* where backups are (backup_root, backup_keep), read at each fetch */
} backup_fetch_config_t;

struct backup_fetch;

/* One fetch under way.  The loop writes the request before the work is
 * queued and reads the answer after it ends; the thread owns the rest in
 * between. */
typedef struct backup_fetch_slot {
    uv_work_t work;
    struct backup_fetch *owner;
    bool busy;      /* queued, and its after-work callback has not run */
    bool abandoned; /* told TALLY_ECLOSED already by backup_fetch_close() */
    backup_fetch_cb cb;
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
 * within this call).  Returns 0; TALLY_EBUSY (BACKUP_FETCH_MAX fetches are
 * being read); TALLY_ECLOSED (closing); TALLY_EBADNAME (name is not a
 * backup's name, proto_backup_name_valid()); TALLY_EINVAL (the backup
 * directory's path is too long); TALLY_ESYS (the thread pool refused the
 * work).  On a failure cb is never called and backup_fetch_errmsg() says
 * why. */
int backup_fetch_begin(backup_fetch_t *f, const char *name, size_t name_len, uint32_t file,
                       uint64_t offset, backup_fetch_cb cb, void *arg);

/* The sentence of the last failure of backup_fetch_begin(). */
static inline const char *backup_fetch_errmsg(const backup_fetch_t *f)
{
    return f->err;
}

/* Fetches begun whose callback has not been called yet. */
unsigned backup_fetch_active(const backup_fetch_t *f);

/* Stop: every fetch under way is told TALLY_ECLOSED at once, from within
 * this call (so that its peer can be answered while the request socket
 * is open); reads not begun yet are cancelled, and those under way end
 * unseen.  Later fetches get TALLY_ECLOSED.  cb (may be NULL) runs once
 * no work of the part is outstanding, perhaps from within this call. */
void backup_fetch_close(backup_fetch_t *f, void (*cb)(backup_fetch_t *f));

#endif
