/* client_fake_daemon.h - a scripted daemon for the unit tests of
 * libtally's requests and the commands built on them: a ROUTER on an
 * ipc:// socket in a temporary directory, served by a thread of the test
 * process, that hands each request that decodes to the test's answer
 * callback and answers the others as a daemon answers a type it does not
 * know (UNKNOWN_TYPE with req_id 0, PROTOCOL.md 18).  An idle callback,
 * when set, runs whenever no request has come for a poll (30 ms): a
 * test that holds replies back (to send them out of order or late)
 * sends them there.  Every function is static inline so that a test file
 * that leaves one unused still builds. */
#ifndef CLIENT_FAKE_DAEMON_H
#define CLIENT_FAKE_DAEMON_H

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "proto.h"
#include "tally.h"

typedef struct fake_daemon fake_daemon_t;

/* Answer q (on the daemon's thread) with fake_daemon_send and
 * fake_daemon_error, or return false to have it answered as an unknown
 * type. */
typedef bool (*fake_daemon_answer_fn)(fake_daemon_t *d, const proto_msg_t *q);

/* Called on the daemon's thread when no request came for a poll; replies
 * sent from it go to the peer of the last request. */
typedef void (*fake_daemon_idle_fn)(fake_daemon_t *d);

struct fake_daemon {
    char dir[64]; /* the temporary directory, removed by fake_daemon_close */
    char ep[160]; /* ipc://DIR/req.sock: the address to give libtally */
    void *ctx;    /* the test's, for its answer callback */
    void *zctx;
    pthread_t thread;
    bool started;
    volatile int bound; /* the thread's ROUTER is bound: requests reach it */
    volatile int stop;
    fake_daemon_answer_fn answer;
    fake_daemon_idle_fn idle; /* optional: set before fake_daemon_start */
    /* the request being answered: the ROUTER and the peer's routing id */
    void *router;
    uint8_t id[256];
    size_t idlen;
};

/* Make d's directory, /tmp/tally-NAME-XXXXXX, and its ZeroMQ context.
 * Returns 0 or -1. */
static inline int fake_daemon_open(fake_daemon_t *d, const char *name)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/tally-%s-XXXXXX", name);
    if (mkdtemp(d->dir) == NULL)
        return -1;
    snprintf(d->ep, sizeof d->ep, "ipc://%s/req.sock", d->dir);
    d->zctx = zmq_ctx_new();
    return d->zctx != NULL ? 0 : -1;
}

/* Send m to the peer of the request being answered. */
static inline void fake_daemon_send(fake_daemon_t *d, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    zmq_send(d->router, d->id, d->idlen, ZMQ_SNDMORE);
    zmq_send(d->router, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Send ERROR code (a negative TALLY_E* code) for req_id. */
static inline void fake_daemon_error(fake_daemon_t *d, uint64_t req_id, int code, const char *field,
                                     const char *message)
{
    proto_msg_t e = {.type = PROTO_ERROR};
    e.u.error.req_id = req_id;
    e.u.error.code = (uint32_t)-code;
    e.u.error.field = proto_str(field);
    e.u.error.message = proto_str(message);
    fake_daemon_send(d, &e);
}

static inline void *fake_daemon_serve(void *arg)
{
    fake_daemon_t *d = arg;
    d->router = zmq_socket(d->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(d->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_bind(d->router, d->ep);
    __atomic_store_n(&d->bound, 1, __ATOMIC_RELEASE);
    while (!d->stop) {
        zmq_pollitem_t item = {.socket = d->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 30) <= 0) {
            if (d->idle != NULL && d->idlen > 0)
                d->idle(d);
            continue;
        }
        uint8_t body[4096];
        int idlen = zmq_recv(d->router, d->id, sizeof d->id, 0);
        int len = zmq_recv(d->router, body, sizeof body, 0);
        proto_msg_t q;
        if (idlen <= 0 || len <= 0 || proto_decode(body, (size_t)len, &q, NULL, 0, NULL) != 0)
            continue;
        d->idlen = (size_t)idlen;
        if (!d->answer(d, &q))
            fake_daemon_error(d, 0, TALLY_ETYPE, "type",
                              "type: message type is not a request the daemon answers");
    }
    zmq_close(d->router);
    return NULL;
}

/* Start serving d->ep, answering requests with answer; returns once the
 * socket is bound, so that a client connecting next is not refused and
 * kept waiting for ZeroMQ's reconnection (100 ms and more), which would
 * look like a request left unanswered. */
static inline void fake_daemon_start(fake_daemon_t *d, fake_daemon_answer_fn answer)
{
    d->answer = answer;
    d->bound = 0;
    assert_int_equal(pthread_create(&d->thread, NULL, fake_daemon_serve, d), 0);
    d->started = true;
    while (!__atomic_load_n(&d->bound, __ATOMIC_ACQUIRE))
        nanosleep(&(struct timespec){0, 1000000L}, NULL);
}

/* Stop serving (when started); d may be started again. */
static inline void fake_daemon_stop(fake_daemon_t *d)
{
    if (!d->started)
        return;
    d->stop = 1;
    pthread_join(d->thread, NULL);
    d->started = false;
    d->stop = 0;
}

/* Stop serving, and remove the directory.  Returns 0 or -1. */
static inline int fake_daemon_close(fake_daemon_t *d)
{
    fake_daemon_stop(d);
    zmq_ctx_term(d->zctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a backup's files, served as BACKUP_CHUNKs (PROTOCOL.md 8.27) ---- */

#define FAKE_BACKUP_FILES 16

/* A backup kept by the fake: the files of a real directory, sorted by
 * name as the daemon sorts them. */
typedef struct fake_backup {
    char name[PROTO_BACKUP_NAME_MAX + 1]; /* what fetches must ask for */
    char dir[256];
    uint32_t n;
    char files[FAKE_BACKUP_FILES][PROTO_BACKUP_NAME_MAX + 1];
    uint64_t sizes[FAKE_BACKUP_FILES];
} fake_backup_t;

/* What a BACKUP_CHUNK may say that is not so, for the client to catch;
 * zero: nothing. */
typedef struct fake_chunk_lie {
    uint32_t files;        /* not 0: this many files */
    uint64_t size_more;    /* the file is this much larger (keep the data's length right) */
    const char *file_name; /* not NULL: this name */
    bool garbage;          /* the data's bytes are not the file's */
} fake_chunk_lie_t;

static inline int fake_backup_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Serve the files of dir as the backup name.  Returns 0 or -1. */
static inline int fake_backup_load(fake_backup_t *b, const char *dir, const char *name)
{
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    snprintf(b->dir, sizeof b->dir, "%s", dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && b->n < FAKE_BACKUP_FILES) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] != '.' && len < sizeof b->files[0])
            memcpy(b->files[b->n++], e->d_name, len + 1);
    }
    closedir(d);
    qsort(b->files, b->n, sizeof b->files[0], fake_backup_cmp);
    for (uint32_t i = 0; i < b->n; i++) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, b->files[i]);
        if (stat(path, &st) != 0)
            return -1;
        b->sizes[i] = (uint64_t)st.st_size;
    }
    return 0;
}

/* Answer a BACKUP_FETCH of b's name, file and offset as a daemon does: a
 * BACKUP_CHUNK read from the file, or ERROR NO_SUCH_BACKUP (another
 * name) or OUT_OF_RANGE; lie (may be NULL) bends the chunk. */
static inline void fake_backup_answer(fake_daemon_t *d, const fake_backup_t *b, uint64_t req_id,
                                      const char *name, uint32_t file, uint64_t offset,
                                      const fake_chunk_lie_t *lie)
{
    static const fake_chunk_lie_t none = {0};
    if (lie == NULL)
        lie = &none;
    if (strcmp(name, b->name) != 0) {
        fake_daemon_error(d, req_id, TALLY_ENOBACKUP, "name", "no backup of that name is kept");
        return;
    }
    if (file >= b->n || offset > b->sizes[file]) {
        fake_daemon_error(d, req_id, TALLY_ERANGE, file >= b->n ? "file" : "offset",
                          "beyond the backup's files");
        return;
    }
    uint64_t left = b->sizes[file] - offset;
    size_t len = left < PROTO_CHUNK_MAX ? (size_t)left : PROTO_CHUNK_MAX;
    char *data = malloc(len > 0 ? len : 1);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", b->dir, b->files[file]);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, data, len, (off_t)offset), (ssize_t)len);
    close(fd);
    if (lie->garbage)
        memset(data, 0xEE, len);
    proto_msg_t m = {.type = PROTO_BACKUP_CHUNK};
    m.u.backup_chunk.req_id = req_id;
    m.u.backup_chunk.files = lie->files != 0 ? lie->files : b->n;
    m.u.backup_chunk.file = file;
    m.u.backup_chunk.file_name = proto_str(lie->file_name ? lie->file_name : b->files[file]);
    m.u.backup_chunk.size = b->sizes[file] + lie->size_more;
    m.u.backup_chunk.offset = offset;
    m.u.backup_chunk.data = (proto_str_t){data, (uint32_t)len};
    fake_daemon_send(d, &m);
    free(data);
}

#endif
