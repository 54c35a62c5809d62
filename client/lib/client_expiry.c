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
 * user must check and resend them deliberately.  Here too: a set-aside
 * submission's figures decoded for the application (client_figures_decode,
 * also for a rejected one, client_wire.c). */
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

bool client_figures_decode(client_figures_t *f, const uint8_t *body, size_t len)
{
    f->township[0] = '\0';
    f->time_ms = 0;
    f->nsamples = 0;
    if (proto_decode(body, len, &f->msg, f->samples, PROTO_SAMPLES_MAX, NULL) != 0 ||
        f->msg.type != PROTO_SUBMIT)
        return false;
    const proto_submit_t *m = &f->msg.u.submit;
    text_copy(f->township, sizeof f->township, m->township.ptr, m->township.len);
    f->time_ms = m->time_ms;
    f->nsamples = m->nsamples;
    for (uint32_t i = 0; i < m->nsamples; i++) {
        text_copy(f->names[i], sizeof f->names[i], f->samples[i].metric.ptr,
                  f->samples[i].metric.len);
        f->out[i].metric = f->names[i];
        f->out[i].value = f->samples[i].value;
    }
    return true;
}

/* Tell the application about p, sent under old, now kept at path. */
static void report(tally_client_t *c, client_figures_t *f, const client_pending_t *p,
                   const uint8_t old[PROTO_CLIENT_ID_LEN], const char *path)
{
    tally_unknown_t u;
    memset(&u, 0, sizeof u);
    memcpy(u.client_id, old, sizeof u.client_id);
    u.seq = p->seq;
    u.path = path;
    /* If it does not decode, the seq and the path still say which one it
     * was. */
    client_figures_decode(f, p->body, p->len);
    u.township = f->township;
    u.time_ms = f->time_ms;
    u.nsamples = f->nsamples;
    u.samples = f->out;
    c->in_cb = true;
    c->on_unknown(c->cb_ctx, &u);
    c->in_cb = false;
}

/* Set every pending submission aside, then take a new id at seq 1. */
static int renew(tally_client_t *c, int64_t now)
{
    uint8_t old[PROTO_CLIENT_ID_LEN], id[PROTO_CLIENT_ID_LEN];
    memcpy(old, c->id, sizeof old);
    client_figures_t *s = NULL;
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
