/* client_expiry.c - libtally (client/lib/): the client-id expiry rule of
 * PROTOCOL.md 14.3.
 *
 * The daemon forgets a client id that has submitted nothing for
 * client_expiry_ms.  A resend under a forgotten id is new to it and would
 * count a second time, so before sending under an id the client checks how
 * long ago the daemon last acknowledged anything under it (by the client's
 * own clock, with an hour to spare).  Past that, the id is dropped: a new
 * one starts at seq 1, and every submission still unacknowledged may or
 * may not have been counted.  Those are never resent automatically; they
 * are set aside, contents intact, and handed to the application, whose
 * user must check and resend them deliberately. */
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"
#include "text.h"
#include "util.h"

#define EXPIRY_MARGIN_MS 3600000 /* the rule's "minus 1 hour" */

static bool expired(const tally_client_t *c, int64_t now)
{
    if (c->expiry_ms <= 0)
        return false; /* never announced: ids do not expire */
    int64_t horizon = c->expiry_ms - EXPIRY_MARGIN_MS;
    if (horizon < 0)
        horizon = 0;
    return now - c->acked_ms > horizon;
}

/* Scratch space to decode a submission for on_unknown. */
typedef struct scratch {
    proto_msg_t msg;
    proto_sample_t samples[PROTO_SAMPLES_MAX];
    tally_sample_t out[PROTO_SAMPLES_MAX];
    char names[PROTO_SAMPLES_MAX][PROTO_NAME_MAX + 1];
    char township[PROTO_NAME_MAX + 1];
} scratch_t;

/* Tell the application about p, sent under old, now kept at path. */
static void report(tally_client_t *c, scratch_t *s, const client_pending_t *p,
                   const uint8_t old[PROTO_CLIENT_ID_LEN], const char *path)
{
    tally_unknown_t u;
    memset(&u, 0, sizeof u);
    memcpy(u.client_id, old, sizeof u.client_id);
    u.seq = p->seq;
    u.township = "";
    u.path = path;
    u.samples = s->out;
    /* Every queued body was encoded here or checked when the spool was
     * loaded, so it decodes; if not, the seq and the path still say which
     * one it was. */
    if (proto_decode(p->body, p->len, &s->msg, s->samples, PROTO_SAMPLES_MAX, NULL) == 0 &&
        s->msg.type == PROTO_SUBMIT) {
        const proto_submit_t *m = &s->msg.u.submit;
        text_copy(s->township, sizeof s->township, m->township.ptr, m->township.len);
        u.township = s->township;
        u.time_ms = m->time_ms;
        u.nsamples = m->nsamples;
        for (uint32_t i = 0; i < m->nsamples; i++) {
            text_copy(s->names[i], sizeof s->names[i], s->samples[i].metric.ptr,
                      s->samples[i].metric.len);
            s->out[i].metric = s->names[i];
            s->out[i].value = s->samples[i].value;
        }
    }
    c->in_cb = true;
    c->on_unknown(c->cb_ctx, &u);
    c->in_cb = false;
}

/* Set every pending submission aside, then take a new id at seq 1. */
static int renew(tally_client_t *c, int64_t now)
{
    uint8_t old[PROTO_CLIENT_ID_LEN], id[PROTO_CLIENT_ID_LEN];
    memcpy(old, c->id, sizeof old);
    scratch_t *s = NULL;
    if (c->head != NULL && c->on_unknown != NULL) {
        s = malloc(sizeof *s);
        if (s == NULL) {
            client_seterr(c, "out of memory");
            return TALLY_ENOMEM;
        }
    }
    int rc = 0;
    bool sent = false;
    while (c->head != NULL) {
        client_pending_t *p = c->head;
        char path[4200] = "";
        /* Out of the queue on disk first: if this fails, the old id stays
         * and the next check tries again; nothing is sent meanwhile. */
        if (c->spool != NULL) {
            rc =
                spool_move_unknown(c->spool, p->seq, old, path, sizeof path, c->err, sizeof c->err);
            if (rc < 0)
                break;
        }
        /* A callback that destroyed the client hears of no more; the rest
         * are still set aside, so that none goes out under the new id. */
        if (s != NULL && !c->doomed)
            report(c, s, p, old, path);
        sent |= p->sends > 0;
        client_queue_drop(c, p);
    }
    free(s);
    if (rc < 0)
        return rc;
    /* An ACK carries a seq but no client id: one still on its way for the
     * old id could settle the new id's submission of the same seq, which
     * would then never be delivered.  A new connection leaves such ACKs
     * behind. */
    if (sent && (rc = client_wire_reconnect(c)) < 0)
        return rc;
    rc = util_random(id, sizeof id);
    if (rc < 0) {
        client_seterr(c, "getrandom failed while renewing the client id");
        return rc;
    }
    memcpy(c->id, id, sizeof c->id);
    c->next_seq = 1;
    c->acked_ms = now;
    /* If this write fails, the file keeps the old id and its old
     * acknowledgement time, so the next run renews it again; nothing goes
     * out under the new id before a submission's own write succeeds. */
    return client_state_save(c, 1);
}

int client_expiry_check(tally_client_t *c, int64_t now)
{
    if (!expired(c, now))
        return 0;
    return renew(c, now);
}
