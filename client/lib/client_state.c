/* client_state.c - libtally (client/lib/): the publisher's identity
 * (client id, next sequence number) and the reload of a spool left by an
 * earlier run.
 *
 * The daemon de-duplicates by (client id, seq), so both must survive
 * restarts whenever submissions do: reusing a seq for different figures
 * would make the daemon drop them as duplicates, and a new id would make
 * a resent submission count twice. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "atomic_file.h"
#include "client_impl.h"
#include "fsutil.h"
#include "text.h"
#include "util.h"

void client_seterr(tally_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

void client_queue_append(tally_client_t *c, client_pending_t *p)
{
    p->next = NULL;
    p->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    c->npending++;
    c->pending_samples += p->nsamples;
}

/* Read every spooled submission, check it is what its name says, and queue
 * it.  The first one also yields the client id if client.id is missing. */
static int load_spooled(tally_client_t *c, bool *have_id, uint64_t *max_seq, char *err,
                        size_t errlen)
{
    uint64_t *seqs;
    size_t n;
    int rc = spool_list(c->spool, &seqs, &n, err, errlen);
    if (rc < 0)
        return rc;
    proto_sample_t *samples = n ? malloc(PROTO_SAMPLES_MAX * sizeof *samples) : NULL;
    proto_msg_t *msg = n ? malloc(sizeof *msg) : NULL;
    if (n && (samples == NULL || msg == NULL)) {
        rc = TALLY_ENOMEM;
        goto out;
    }
    *max_seq = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *body;
        size_t len;
        char name[32];
        spool_sub_name(seqs[i], name, sizeof name);
        rc = spool_read(c->spool, seqs[i], &body, &len, err, errlen);
        if (rc == TALLY_ENOTFOUND)
            continue;
        if (rc == TALLY_ETOOLARGE) {
            rc = TALLY_EMALFORMED;
            goto out;
        }
        if (rc < 0)
            goto out;
        proto_error_t perr;
        rc = proto_decode(body, len, msg, samples, PROTO_SAMPLES_MAX, &perr);
        if (rc == 0 && (msg->type != PROTO_SUBMIT || msg->u.submit.seq != seqs[i])) {
            snprintf(perr.message, sizeof perr.message,
                     "it holds a message of type %" PRIu32 " with seq %" PRIu64
                     " instead of a SUBMIT with seq %" PRIu64,
                     msg->type, msg->type == PROTO_SUBMIT ? msg->u.submit.seq : 0, seqs[i]);
            rc = TALLY_EMALFORMED;
        }
        if (rc < 0) {
            text_format(err, errlen,
                        "spool file %s/%s is not a valid submission (%s); move it out of the "
                        "spool to continue",
                        spool_path(c->spool), name, perr.message);
            free(body);
            rc = TALLY_EMALFORMED;
            goto out;
        }
        if (!*have_id) {
            memcpy(c->id, msg->u.submit.client_id, sizeof c->id);
            *have_id = true;
        }
        client_pending_t *p = calloc(1, sizeof *p);
        if (p == NULL) {
            free(body);
            rc = TALLY_ENOMEM;
            goto out;
        }
        p->seq = seqs[i];
        p->body = body;
        p->len = len;
        p->nsamples = msg->u.submit.nsamples;
        p->backoff_ms = c->backoff_initial_ms;
        client_queue_append(c, p);
        *max_seq = seqs[i];
    }
    rc = 0;
out:
    free(samples);
    free(msg);
    free(seqs);
    return rc;
}

static int open_spool(tally_client_t *c, const char *dir, char *err, size_t errlen)
{
    int rc = spool_open(dir, &c->spool, err, errlen);
    if (rc < 0)
        return rc;
    bool have_id, have_seq;
    uint64_t next = 1, max_seq = 0;
    rc = spool_load_state(c->spool, c->id, &have_id, &next, &have_seq, err, errlen);
    if (rc < 0)
        return rc;
    rc = load_spooled(c, &have_id, &max_seq, err, errlen);
    if (rc < 0)
        return rc;
    if (!have_id) {
        rc = util_random(c->id, sizeof c->id);
        if (rc < 0) {
            text_format(err, errlen, "getrandom failed: %s", strerror(errno));
            return rc;
        }
        rc = spool_save_id(c->spool, c->id, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (!have_seq)
        next = 1;
    /* client.seq is written before each submission file, so it is normally
     * ahead; trusting the larger of the two also survives a client.seq
     * lost or restored from an old backup. */
    bool save = !have_seq;
    if (max_seq >= next) {
        next = max_seq + 1;
        save = true;
    }
    c->next_seq = next;
    if (save)
        return spool_save_seq(c->spool, next, err, errlen);
    return 0;
}

static int state_write(tally_client_t *c, uint64_t next, char *err, size_t errlen)
{
    char hex[33], text[128];
    util_hex(c->id, sizeof c->id, hex);
    int n = snprintf(text, sizeof text, "id=%s\nseq=%" PRIu64 "\n", hex, next);
    return atomic_file_write(c->state_dirfd, c->state_dir, c->state_name, text, (size_t)n, NULL,
                             err, errlen);
}

static int state_parse(tally_client_t *c, const char *text, uint64_t *next)
{
    const char *id = strstr(text, "id=");
    const char *seq = strstr(text, "seq=");
    if (id == NULL || seq == NULL)
        return TALLY_EMALFORMED;
    if (util_unhex(id + 3, strspn(id + 3, "0123456789abcdefABCDEF"), c->id, sizeof c->id) < 0)
        return TALLY_EMALFORMED;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(seq + 4, &end, 10);
    if (errno != 0 || end == seq + 4 || v == 0 || (*end != '\n' && *end != '\0'))
        return TALLY_EMALFORMED;
    *next = v;
    return 0;
}

static int open_state(tally_client_t *c, const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    c->state_dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    c->state_name = strdup(slash ? slash + 1 : path);
    if (c->state_dir == NULL || c->state_name == NULL)
        return TALLY_ENOMEM;
    if (c->state_name[0] == '\0') {
        text_format(err, errlen, "state file '%s' names a directory, not a file", path);
        return TALLY_EINVAL;
    }
    int rc = fsutil_open_dir(c->state_dir, 0, err, errlen);
    if (rc < 0)
        return rc;
    c->state_dirfd = rc;
    /* The state file itself is replaced by rename, so the lock lives in a
     * sibling file that is never replaced. */
    char lockname[4200];
    snprintf(lockname, sizeof lockname, "%s.lock", c->state_name);
    c->state_lockfd = openat(c->state_dirfd, lockname, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->state_lockfd < 0) {
        text_format(err, errlen, "cannot open %s.lock: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    if (flock(c->state_lockfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            text_format(err, errlen,
                        "state file %s is in use by another process (%s.lock is locked)", path,
                        path);
            return TALLY_EEXIST;
        }
        text_format(err, errlen, "cannot lock %s.lock: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    uint8_t *buf;
    size_t len;
    rc =
        fsutil_read_all(c->state_dirfd, c->state_dir, c->state_name, 4096, &buf, &len, err, errlen);
    if (rc == TALLY_ENOTFOUND) {
        rc = util_random(c->id, sizeof c->id);
        if (rc < 0) {
            text_format(err, errlen, "getrandom failed: %s", strerror(errno));
            return rc;
        }
        c->next_seq = 1;
        return state_write(c, 1, err, errlen);
    }
    if (rc < 0) {
        if (rc == TALLY_ETOOLARGE)
            rc = TALLY_EMALFORMED;
        return rc;
    }
    rc = state_parse(c, (const char *)buf, &c->next_seq);
    free(buf);
    if (rc < 0)
        text_format(err, errlen,
                    "state file %s is corrupt: expected lines 'id=<32 hex digits>' and "
                    "'seq=<number >= 1>'",
                    path);
    return rc;
}

int client_state_open(tally_client_t *c, const char *spool_dir, const char *state_file, char *err,
                      size_t errlen)
{
    if (spool_dir != NULL)
        return open_spool(c, spool_dir, err, errlen);
    if (state_file != NULL)
        return open_state(c, state_file, err, errlen);
    c->next_seq = 1;
    int rc = util_random(c->id, sizeof c->id);
    if (rc < 0)
        text_format(err, errlen, "getrandom failed: %s", strerror(errno));
    return rc;
}

void client_state_close(tally_client_t *c)
{
    spool_close(&c->spool);
    if (c->state_lockfd >= 0)
        close(c->state_lockfd);
    if (c->state_dirfd >= 0)
        close(c->state_dirfd);
    c->state_lockfd = c->state_dirfd = -1;
    free(c->state_dir);
    free(c->state_name);
    c->state_dir = c->state_name = NULL;
}

int client_state_save_seq(tally_client_t *c, uint64_t next_seq)
{
    if (c->spool != NULL)
        return spool_save_seq(c->spool, next_seq, c->err, sizeof c->err);
    if (c->state_name != NULL)
        return state_write(c, next_seq, c->err, sizeof c->err);
    return 0;
}
