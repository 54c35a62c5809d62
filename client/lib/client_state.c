/* client_state.c - libtally (client/lib/): the publisher's identity (client
 * id, next sequence number, the time of the last acknowledgement) and what
 * it learned of the daemon, kept in one state file, and the reload of a
 * spool left by an earlier run.
 *
 * The daemon de-duplicates by (client id, seq), so both must survive
 * restarts whenever submissions do: reusing a seq for different figures
 * would make the daemon drop them as duplicates, and a new id would make
 * a resent submission count twice.  They live in one file, replaced by one
 * atomic write (PROTOCOL.md 14.1), so that a crash never pairs an id with
 * another id's counter. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "client_impl.h"
#include "fsutil.h"
#include "text.h"
#include "util.h"

#define STATE_NAME     "client.state"
#define STATE_MAX      4096
#define ACK_SAVE_EVERY 60000 /* ms between writes of a newer acked_ms alone */

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

void client_queue_drop(tally_client_t *c, client_pending_t *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        c->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        c->tail = p->prev;
    c->npending--;
    c->pending_samples -= p->nsamples;
    if (c->retry_code != 0 && c->retry_seq == p->seq)
        c->retry_code = 0; /* settled or set aside: its refusal is old news */
    free(p->body);
    free(p);
}

/* ---- the state file ------------------------------------------------------ */

static int state_write(tally_client_t *c, uint64_t next, char *err, size_t errlen)
{
    char hex[33], text[512];
    util_hex(c->id, sizeof c->id, hex);
    int n = snprintf(text, sizeof text,
                     "id=%s\nseq=%" PRIu64 "\nacked_ms=%" PRId64 "\nclient_expiry_ms=%" PRId64
                     "\nmax_samples=%" PRId64 "\nmax_msg=%" PRId64 "\n",
                     hex, next, c->acked_ms, c->expiry_ms, c->max_samples, c->max_msg);
    int rc = atomic_file_write(c->state_dirfd, c->state_dir, c->state_name, text, (size_t)n, NULL,
                               err, errlen);
    if (rc == 0)
        c->saved_acked_ms = c->acked_ms;
    return rc;
}

int client_state_save(tally_client_t *c, uint64_t next_seq)
{
    if (c->state_name == NULL)
        return 0;
    return state_write(c, next_seq, c->err, sizeof c->err);
}

void client_state_acked(tally_client_t *c, int64_t now)
{
    c->acked_ms = now;
    if (c->state_name == NULL || now - c->saved_acked_ms < ACK_SAVE_EVERY)
        return;
    char err[512];
    if (state_write(c, c->next_seq, err, sizeof err) < 0)
        client_seterr(c, "%s", err); /* the older time on disk is the safe side */
}

static int parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[32], *end;
    if (len == 0 || len >= sizeof buf)
        return TALLY_EMALFORMED;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return TALLY_EMALFORMED;
    *out = v;
    return 0;
}

/* "key=value" lines; id and seq are required, the others default to
 * "unknown" (a file written before they existed), unknown keys are kept
 * for a newer libtally by being ignored.  *have_acked tells whether
 * acked_ms was there. */
static int state_parse(tally_client_t *c, const char *text, bool *have_acked)
{
    bool have_id = false, have_seq = false;
    *have_acked = false;
    c->expiry_ms = c->max_samples = c->max_msg = -1;
    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        const char *eq = memchr(line, '=', len);
        if (eq != NULL) {
            size_t klen = (size_t)(eq - line), vlen = len - klen - 1;
            const char *v = eq + 1;
            int64_t x = 0;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(line, k, klen) == 0)
            if (KEY("id")) {
                if (util_unhex(v, vlen, c->id, sizeof c->id) < 0)
                    return TALLY_EMALFORMED;
                have_id = true;
            } else if (KEY("seq")) {
                if (parse_i64(v, vlen, &x) < 0 || x < 1)
                    return TALLY_EMALFORMED;
                c->next_seq = (uint64_t)x;
                have_seq = true;
            } else if (KEY("acked_ms") || KEY("client_expiry_ms") || KEY("max_samples") ||
                       KEY("max_msg")) {
                if (parse_i64(v, vlen, &x) < 0)
                    return TALLY_EMALFORMED;
                int64_t *dst = KEY("acked_ms")           ? &c->acked_ms
                               : KEY("client_expiry_ms") ? &c->expiry_ms
                               : KEY("max_samples")      ? &c->max_samples
                                                         : &c->max_msg;
                *dst = x;
                *have_acked |= KEY("acked_ms");
            }
#undef KEY
        }
        line += len + (line[len] == '\n');
    }
    return have_id && have_seq ? 0 : TALLY_EMALFORMED;
}

static int64_t mtime_ms(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, 0) < 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* Read the state file.  *found tells whether it exists.  A file from
 * before acked_ms was kept takes its modification time instead: it was
 * written before the last submission, so it is no later than the last
 * acknowledgement could have been. */
static int state_read(tally_client_t *c, bool *found, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    *found = false;
    int rc = fsutil_read_all(c->state_dirfd, c->state_dir, c->state_name, STATE_MAX, &buf, &len,
                             err, errlen);
    if (rc == TALLY_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc == TALLY_ETOOLARGE ? TALLY_EMALFORMED : rc;
    bool have_acked;
    rc = state_parse(c, (const char *)buf, &have_acked);
    free(buf);
    if (rc < 0) {
        text_format(err, errlen,
                    "state file %s/%s is corrupt: expected lines 'id=<32 hex digits>' and "
                    "'seq=<number >= 1>'; move it away to start again with a new client id",
                    c->state_dir, c->state_name);
        return rc;
    }
    if (!have_acked)
        c->acked_ms = mtime_ms(c->state_dirfd, c->state_name);
    *found = true;
    return 0;
}

static int new_identity(tally_client_t *c, char *err, size_t errlen)
{
    int rc = util_random(c->id, sizeof c->id);
    if (rc < 0) {
        text_format(err, errlen, "getrandom failed: %s", strerror(errno));
        return rc;
    }
    c->next_seq = 1;
    c->acked_ms = util_real_ms(); /* "the time it created the id" */
    return 0;
}

/* ---- with a spool ---------------------------------------------------------- */

/* Read every spooled submission, check it is what its name says, and queue
 * it.  The first one also yields the client id if the state has none. */
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
        p->earlier = true;
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

static int open_spool(tally_client_t *c, const char *dir, unsigned lock_timeout_ms, char *err,
                      size_t errlen)
{
    int rc = spool_open(dir, lock_timeout_ms, &c->spool, err, errlen);
    if (rc < 0)
        return rc;
    c->state_dir = strdup(dir);
    c->state_name = strdup(STATE_NAME);
    c->state_dirfd = dup(spool_dirfd(c->spool));
    if (c->state_dir == NULL || c->state_name == NULL || c->state_dirfd < 0)
        return TALLY_ENOMEM;
    bool found, have_id = false, have_seq = false, legacy = false;
    rc = state_read(c, &found, err, errlen);
    if (rc < 0)
        return rc;
    if (found) {
        have_id = have_seq = true;
    } else {
        /* A spool of a libtally from before client.state: its two files. */
        int64_t t;
        rc = spool_load_legacy(c->spool, c->id, &have_id, &c->next_seq, &have_seq, &t, err, errlen);
        if (rc < 0)
            return rc;
        legacy = have_id || have_seq;
        c->acked_ms = t;
    }
    uint64_t max_seq = 0;
    rc = load_spooled(c, &have_id, &max_seq, err, errlen);
    if (rc < 0)
        return rc;
    if (!have_id) {
        rc = new_identity(c, err, errlen);
        if (rc < 0)
            return rc;
    } else if (c->acked_ms == 0) {
        c->acked_ms = util_real_ms(); /* an id from a spooled submission alone */
    }
    if (!have_seq)
        c->next_seq = 1;
    /* The state is written before each submission file, so it is normally
     * ahead; trusting the larger of the two also survives a state lost or
     * restored from an old backup. */
    bool save = !found;
    if (max_seq >= c->next_seq) {
        c->next_seq = max_seq + 1;
        save = true;
    }
    if (save)
        rc = state_write(c, c->next_seq, err, errlen);
    /* Also when client.state was there: a crash may have come between
     * writing it and removing them. */
    if (rc == 0 && (legacy || found))
        rc = spool_remove_legacy(c->spool, err, errlen);
    return rc;
}

/* ---- with a state file ----------------------------------------------------- */

static int open_state(tally_client_t *c, const char *path, unsigned lock_timeout_ms, char *err,
                      size_t errlen)
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
    rc = fsutil_lock(c->state_lockfd, lock_timeout_ms);
    if (rc == TALLY_EEXIST)
        text_format(err, errlen,
                    "state file %s is in use by another process, or another handle of this one "
                    "(%s.lock is locked)",
                    path, path);
    else if (rc < 0)
        text_format(err, errlen, "cannot lock %s.lock: %s", path, strerror(errno));
    if (rc < 0)
        return rc;
    bool found;
    rc = state_read(c, &found, err, errlen);
    if (rc < 0 || found)
        return rc;
    rc = new_identity(c, err, errlen);
    if (rc < 0)
        return rc;
    return state_write(c, 1, err, errlen);
}

int client_state_open(tally_client_t *c, const char *spool_dir, const char *state_file,
                      unsigned lock_timeout_ms, char *err, size_t errlen)
{
    c->expiry_ms = c->max_samples = c->max_msg = -1;
    int rc;
    if (spool_dir != NULL)
        rc = open_spool(c, spool_dir, lock_timeout_ms, err, errlen);
    else if (state_file != NULL)
        rc = open_state(c, state_file, lock_timeout_ms, err, errlen);
    else
        rc = new_identity(c, err, errlen);
    c->state_loaded = rc == 0;
    return rc;
}

void client_state_close(tally_client_t *c)
{
    /* A newer acknowledgement than the file has is worth keeping: it
     * postpones the next change of client id. */
    if (c->state_loaded && c->state_name != NULL && c->acked_ms > c->saved_acked_ms) {
        char err[512];
        state_write(c, c->next_seq, err, sizeof err);
    }
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
