/* client.c - libtally (client/lib/): the publisher (tally_client_*),
 * its options, batches and the blocking flush.  Identity and spool reload
 * live in client_state.c, the socket work in client_wire.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "client_impl.h"
#include "curve.h"
#include "text.h"
#include "util.h"

#define DEFAULT_BACKOFF_INITIAL 100
#define DEFAULT_BACKOFF_MAX     30000
#define BACKOFF_LIMIT           3600000
#define HELLO_BACKOFF_MIN       500

static int check_opts(const tally_client_opts_t *o, char *err, size_t errlen)
{
    if (o->max_in_flight > TALLY_MAX_IN_FLIGHT) {
        text_format(err, errlen, "max_in_flight %u is above the protocol limit of %u",
                    o->max_in_flight, TALLY_MAX_IN_FLIGHT);
        return TALLY_EINVAL;
    }
    if (o->batch_limit > TALLY_BATCH_LIMIT_MAX) {
        text_format(err, errlen, "batch_limit %u is above the protocol limit of %u", o->batch_limit,
                    TALLY_BATCH_LIMIT_MAX);
        return TALLY_EINVAL;
    }
    unsigned ini = o->backoff_initial_ms ? o->backoff_initial_ms : DEFAULT_BACKOFF_INITIAL;
    unsigned max = o->backoff_max_ms ? o->backoff_max_ms : DEFAULT_BACKOFF_MAX;
    if (ini > BACKOFF_LIMIT || max > BACKOFF_LIMIT) {
        text_format(err, errlen, "resend backoff %u ms is above the limit of %u ms",
                    ini > max ? ini : max, BACKOFF_LIMIT);
        return TALLY_EINVAL;
    }
    if (max < ini) {
        text_format(err, errlen, "backoff_max_ms %u is below backoff_initial_ms %u", max, ini);
        return TALLY_EINVAL;
    }
    return 0;
}

static int open_socket(tally_client_t *c, void *zctx, const curve_keys_t *keys, char *err,
                       size_t errlen)
{
    if (zctx != NULL) {
        c->zctx = zctx;
    } else {
        c->zctx = zmq_ctx_new();
        if (c->zctx == NULL) {
            text_format(err, errlen, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
            return TALLY_ESYS;
        }
        c->own_ctx = true;
    }
    c->dealer = zmq_socket(c->zctx, ZMQ_DEALER);
    if (c->dealer == NULL) {
        text_format(err, errlen, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        return TALLY_ESYS;
    }
    /* IMMEDIATE: queue nothing while disconnected (see client_wire_pump);
     * heartbeats notice a dead link within seconds and reconnect. */
    int hwm = (int)c->max_in_flight * 2 + 64;
    if (util_setsockopt_int(c->dealer, ZMQ_LINGER, 0) < 0 ||
        util_setsockopt_int(c->dealer, ZMQ_IMMEDIATE, 1) < 0 ||
        util_setsockopt_int(c->dealer, ZMQ_RECONNECT_IVL, 100) < 0 ||
        util_setsockopt_int(c->dealer, ZMQ_RECONNECT_IVL_MAX, 5000) < 0 ||
        util_setsockopt_int(c->dealer, ZMQ_HEARTBEAT_IVL, 1000) < 0 ||
        util_setsockopt_int(c->dealer, ZMQ_HEARTBEAT_TIMEOUT, 3000) < 0 ||
        util_setsockopt_int(c->dealer, ZMQ_SNDHWM, hwm) < 0 ||
        util_setsockopt_int(c->dealer, ZMQ_RCVHWM, hwm) < 0) {
        text_format(err, errlen, "cannot set ZeroMQ socket options: %s", zmq_strerror(errno));
        return TALLY_ESYS;
    }
    int64_t maxmsg = 1 << 20;
    zmq_setsockopt(c->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (curve_apply(c->dealer, keys) < 0) {
        text_format(err, errlen, "cannot set the CURVE keys: %s", zmq_strerror(errno));
        return TALLY_ESYS;
    }
    monitor_open(&c->mon, c->zctx, c->dealer, c->endpoint); /* without it, only less is said */
    if (util_connect(c->dealer, c->endpoint) < 0) {
        text_format(err, errlen, "cannot connect to '%s': %s", c->endpoint, zmq_strerror(errno));
        return errno == ENOMEM ? TALLY_ENOMEM : TALLY_EINVAL;
    }
    return 0;
}

static void free_queue(tally_client_t *c)
{
    client_pending_t *p = c->head;
    while (p != NULL) {
        client_pending_t *next = p->next;
        free(p->body);
        free(p);
        p = next;
    }
    c->head = c->tail = NULL;
    c->npending = 0;
    c->pending_samples = 0;
}

static void destroy_now(tally_client_t *c)
{
    monitor_close(&c->mon, c->dealer);
    if (c->dealer != NULL)
        zmq_close(c->dealer);
    if (c->own_ctx)
        zmq_ctx_term(c->zctx);
    client_state_close(c);
    free_queue(c);
    free(c->samples);
    free(c->names);
    msgpack_sbuffer_destroy(&c->sbuf);
    free(c);
}

void tally_client_destroy(tally_client_t **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    tally_client_t *c = *cp;
    *cp = NULL;
    /* From within one of its callbacks the client is still in use by the
     * call that runs the callback: that call frees it on its way out and
     * runs no further callbacks meanwhile. */
    if (c->in_cb) {
        c->doomed = true;
        return;
    }
    destroy_now(c);
}

/* The guard of every call that may run callbacks: none of them may be made
 * from within a callback of the same client (it would run callbacks within
 * callbacks, and change the queue the running call walks). */
static int refuse_in_callback(tally_client_t *c, const char *call)
{
    client_seterr(c,
                  "%s called from within one of this client's callbacks: note what is needed "
                  "and act once the call that runs the callback has returned",
                  call);
    return TALLY_ECALLBACK;
}

/* The end of every call that may run callbacks: a client its callback
 * destroyed is freed here, and the call says it is gone. */
static int api_leave(tally_client_t *c, int rc)
{
    if (!c->doomed)
        return rc;
    destroy_now(c);
    return TALLY_ECLOSED;
}

int tally_client_new(const char *server_endpoint, const char *township,
                     const tally_client_opts_t *opts, tally_client_t **out)
{
    static const tally_client_opts_t defaults;
    const tally_client_opts_t *o = opts ? opts : &defaults;
    char *err = o->errbuf;
    size_t errlen = o->errbuf_len;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (server_endpoint == NULL || out == NULL) {
        text_format(err, errlen, "tally_client_new: server_endpoint and out are required");
        return TALLY_EINVAL;
    }
    int rc = check_opts(o, err, errlen);
    if (rc < 0)
        return rc;
    rc = township != NULL ? proto_name_check(township, strlen(township)) : 0;
    if (rc == 0 && township != NULL && proto_township_reserved(township, strlen(township))) {
        text_format(err, errlen,
                    "township '%s' is reserved: it names the county-wide tallies (give the "
                    "township's own id)",
                    township);
        return TALLY_EBADNAME;
    }
    if (rc < 0) {
        text_format(err, errlen, "township '%s' is not a valid name (%s)", township,
                    tally_strerror(rc));
        return rc;
    }
    tally_client_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TALLY_ENOMEM;
    msgpack_sbuffer_init(&c->sbuf);
    c->state_dirfd = c->state_lockfd = -1;
    char why[256];
    rc = tally_endpoint_parse(server_endpoint, c->endpoint, sizeof c->endpoint, why, sizeof why);
    if (rc < 0) {
        text_format(err, errlen, "server address '%s' is not valid: %s", server_endpoint, why);
        rc = TALLY_EINVAL;
        goto fail;
    }
    strcpy(c->township, township != NULL ? township : ""); /* "": delivers only */
    c->max_in_flight = o->max_in_flight ? o->max_in_flight : TALLY_MAX_IN_FLIGHT;
    c->backoff_initial_ms = o->backoff_initial_ms ? o->backoff_initial_ms : DEFAULT_BACKOFF_INITIAL;
    c->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : DEFAULT_BACKOFF_MAX;
    if (c->backoff_max_ms < c->backoff_initial_ms)
        c->backoff_max_ms = c->backoff_initial_ms;
    c->batch_limit = o->batch_limit ? o->batch_limit : PROTO_SAMPLES_DEFAULT;
    c->on_reject = o->on_reject;
    c->on_ack = o->on_ack;
    c->on_unknown = o->on_unknown;
    c->cb_ctx = o->cb_ctx;
    c->hello_backoff_ms = HELLO_BACKOFF_MIN;
    c->samples = calloc(c->batch_limit, sizeof *c->samples);
    c->names = malloc((size_t)c->batch_limit * (PROTO_NAME_MAX + 1));
    if (c->samples == NULL || c->names == NULL) {
        rc = TALLY_ENOMEM;
        goto fail;
    }
    rc = util_random(&c->rng, sizeof c->rng);
    if (rc < 0)
        goto fail;
    /* The keys and the socket first: a bad key or endpoint should fail
     * before the spool is touched.  Connecting sends nothing. */
    curve_keys_t keys;
    rc = curve_load(o->curve, &keys, err, errlen);
    if (rc < 0)
        goto fail;
    rc = open_socket(c, o->zmq_ctx, &keys, err, errlen);
    curve_wipe(&keys);
    if (rc < 0)
        goto fail;
    rc = client_state_open(c, o->spool_dir, o->state_file, o->lock_timeout_ms, err, errlen);
    if (rc < 0)
        goto fail;
    /* With what earlier runs learned: submissions spooled under an id the
     * daemon has forgotten are set aside before anything could send them. */
    rc = client_expiry_check(c, util_real_ms());
    if (rc < 0) {
        text_format(err, errlen, "%s", c->err);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (rc == TALLY_ENOMEM)
        text_format(err, errlen, "out of memory");
    tally_client_destroy(&c);
    return rc;
}

/* Upper bounds of the encoded size of a SUBMIT: its header (array,
 * version, type, bin16 client id, seq, township, time, samples array
 * header) and each sample (array header, str header, name, int64). */
static size_t header_bound(const tally_client_t *c)
{
    return 1 + 1 + 1 + 18 + 9 + 2 + strlen(c->township) + 9 + 5;
}

static size_t sample_bound(size_t mlen)
{
    return 1 + (mlen < 32 ? 1 : 2) + mlen + 9;
}

uint32_t client_limit_samples(const tally_client_t *c)
{
    if (c->max_samples > 0 && (uint64_t)c->max_samples < c->batch_limit)
        return (uint32_t)c->max_samples;
    return c->batch_limit;
}

size_t client_limit_bytes(const tally_client_t *c)
{
    /* The size bounds above are never below the real size, so a body may
     * use all of max_msg. */
    if (c->max_msg > 0)
        return (size_t)c->max_msg;
    return CLIENT_BODY_LIMIT;
}

static int send_batch(tally_client_t *c);

static int add_sample(tally_client_t *c, const char *metric, int64_t value, int64_t time_ms)
{
    if (c->township[0] == '\0') {
        client_seterr(c, "this client was made without a township: it only delivers what its "
                         "spool holds");
        return TALLY_EINVAL;
    }
    size_t mlen = strlen(metric);
    int rc = proto_name_check(metric, mlen);
    if (rc < 0) {
        client_seterr(c, "metric '%s' is not a valid name (%s)", metric, tally_strerror(rc));
        return rc;
    }
    bool now = time_ms == 0;
    if (now)
        time_ms = c->batch_n > 0 && c->batch_now ? c->batch_time : util_real_ms();
    if (time_ms < PROTO_TIME_MIN || time_ms >= PROTO_TIME_MAX) {
        client_seterr(c,
                      "time %" PRId64 " ms is outside the accepted range %lld .. %lld "
                      "(2000-01-01 .. 2100-01-01 UTC)",
                      time_ms, PROTO_TIME_MIN, PROTO_TIME_MAX - 1);
        return TALLY_ERANGE;
    }
    size_t sample_bytes = sample_bound(mlen);
    if (c->batch_n > 0 && (c->batch_time != time_ms || c->batch_n >= c->batch_limit ||
                           c->batch_bytes + sample_bytes > CLIENT_BODY_LIMIT)) {
        rc = send_batch(c);
        if (rc < 0 || c->doomed)
            return rc;
    }
    if (c->batch_n == 0) {
        c->batch_time = time_ms;
        c->batch_now = now;
        c->batch_bytes = header_bound(c);
    }
    char *slot = c->names + (size_t)c->batch_n * (PROTO_NAME_MAX + 1);
    memcpy(slot, metric, mlen + 1);
    c->samples[c->batch_n].metric.ptr = slot;
    c->samples[c->batch_n].metric.len = (uint32_t)mlen;
    c->samples[c->batch_n].value = value;
    c->batch_n++;
    c->batch_bytes += sample_bytes;
    return 0;
}

/* How many of the batch's samples from first on go into one submission
 * within the daemon's limits (at least one). */
static uint32_t chunk_len(const tally_client_t *c, uint32_t first)
{
    uint32_t max_n = client_limit_samples(c);
    size_t max_bytes = client_limit_bytes(c), bytes = header_bound(c);
    uint32_t n = 0;
    while (first + n < c->batch_n && n < max_n) {
        size_t b = sample_bound(c->samples[first + n].metric.len);
        if (n > 0 && bytes + b > max_bytes)
            break;
        bytes += b;
        n++;
    }
    return n;
}

/* Submission c->next_seq of n samples could not be persisted whole (its
 * file, or the state that counts its seq).  Not yet sent, it is taken
 * back: its file, if written, is removed again, so that the failure is
 * all or nothing and the caller may say that nothing of it was sent or
 * kept.  Only if the file stays (it cannot be removed) is it a submission
 * all the same: *kept, and its seq is never used again by this client.
 * It is not queued, though: were it delivered and its file removed while
 * the state still lacks its seq, the next run would reuse that seq for
 * other figures, which the daemon would drop as duplicates.  The next
 * client on the spool queues it and counts its seq first.  Returns rc. */
static int undo_chunk(tally_client_t *c, uint32_t n, int rc, bool *kept)
{
    char err[512], cause[CLIENT_ERR_MAX];
    if (c->spool == NULL || spool_discard(c->spool, c->next_seq, err, sizeof err) == 0)
        return rc;
    *kept = true;
    snprintf(cause, sizeof cause, "%s", c->err);
    client_seterr(c,
                  "%s; submission %" PRIu64 " (%" PRIu32 " sample%s) was written and stays in the "
                  "spool, as it could not be taken back (%s): it is kept there, and the next "
                  "client on the spool delivers it",
                  cause, c->next_seq, n, n == 1 ? "" : "s", err);
    c->next_seq++;
    return rc;
}

/* Turn samples[first .. first + n) of the batch into a pending
 * submission, persisted first.  On failure *kept says whether the
 * submission stays in the spool all the same (undo_chunk). */
static int close_chunk(tally_client_t *c, uint32_t first, uint32_t n, bool *kept)
{
    proto_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = PROTO_SUBMIT;
    memcpy(msg.u.submit.client_id, c->id, sizeof c->id);
    msg.u.submit.seq = c->next_seq;
    msg.u.submit.township = proto_str(c->township);
    msg.u.submit.time_ms = c->batch_time;
    msg.u.submit.nsamples = n;
    msg.u.submit.samples = c->samples + first;
    msgpack_sbuffer_clear(&c->sbuf);
    int rc = proto_encode(&c->sbuf, &msg);
    if (rc < 0) {
        client_seterr(c, "cannot encode submission %" PRIu64 ": %s", c->next_seq,
                      tally_strerror(rc));
        return rc;
    }
    client_pending_t *p = calloc(1, sizeof *p);
    uint8_t *body = malloc(c->sbuf.size);
    if (p == NULL || body == NULL) {
        free(p);
        free(body);
        client_seterr(c, "out of memory");
        return TALLY_ENOMEM;
    }
    memcpy(body, c->sbuf.data, c->sbuf.size);
    /* The submission is on disk before the next seq is, and both are
     * before the first send.  A crash between the two leaves a .sub whose
     * seq the state does not count yet; the loader takes the larger of
     * the state's seq and the highest spooled seq + 1, so the seq is not
     * reused and tally_client_next_seq() - 1 is always the last submission
     * that is safely on disk. */
    rc = 0;
    if (c->spool != NULL)
        rc = spool_write(c->spool, c->next_seq, body, c->sbuf.size, c->err, sizeof c->err);
    if (rc == 0)
        rc = client_state_save(c, c->next_seq + 1);
    if (rc < 0) {
        free(p);
        free(body);
        return undo_chunk(c, n, rc, kept);
    }
    p->seq = c->next_seq++;
    p->body = body;
    p->len = c->sbuf.size;
    p->nsamples = n;
    p->backoff_ms = c->backoff_initial_ms;
    client_queue_append(c, p);
    return 0;
}

/* Forget the batch's first k samples (already submitted), keeping the
 * rest in order. */
static void batch_drop_front(tally_client_t *c, uint32_t k)
{
    uint32_t left = c->batch_n - k;
    memmove(c->names, c->names + (size_t)k * (PROTO_NAME_MAX + 1),
            (size_t)left * (PROTO_NAME_MAX + 1));
    memmove(c->samples, c->samples + k, (size_t)left * sizeof *c->samples);
    c->batch_bytes = header_bound(c);
    for (uint32_t i = 0; i < left; i++) {
        c->samples[i].metric.ptr = c->names + (size_t)i * (PROTO_NAME_MAX + 1);
        c->batch_bytes += sample_bound(c->samples[i].metric.len);
    }
    c->batch_n = left;
}

/* Turn the open batch into pending submissions within the daemon's
 * limits, each persisted before it can be sent. */
static int close_batch(tally_client_t *c)
{
    int rc = client_expiry_check(c, util_real_ms());
    if (rc < 0)
        return rc;
    uint32_t done = 0;
    while (done < c->batch_n) {
        uint32_t n = chunk_len(c, done);
        bool kept = false;
        rc = close_chunk(c, done, n, &kept);
        if (rc < 0) {
            batch_drop_front(c, kept ? done + n : done);
            return rc;
        }
        done += n;
    }
    c->batch_n = 0;
    c->batch_bytes = 0;
    return 0;
}

int tally_client_add(tally_client_t *c, const char *metric, int64_t value, int64_t time_ms)
{
    if (c == NULL || metric == NULL)
        return TALLY_EINVAL;
    if (c->in_cb)
        return refuse_in_callback(c, "tally_client_add");
    return api_leave(c, add_sample(c, metric, value, time_ms));
}

static int process(tally_client_t *c)
{
    monitor_poll(&c->mon); /* kept drained, so that its last event is the latest */
    int rc = client_wire_drain(c);
    if (rc < 0 || c->doomed)
        return rc;
    return client_wire_pump(c, util_mono_ms());
}

int tally_client_process(tally_client_t *c)
{
    if (c == NULL)
        return TALLY_EINVAL;
    if (c->in_cb)
        return refuse_in_callback(c, "tally_client_process");
    return api_leave(c, process(c));
}

static int send_batch(tally_client_t *c)
{
    if (c->batch_n > 0) {
        int rc = close_batch(c);
        if (rc < 0 || c->doomed)
            return rc;
    }
    return process(c);
}

int tally_client_send(tally_client_t *c)
{
    if (c == NULL)
        return TALLY_EINVAL;
    if (c->in_cb)
        return refuse_in_callback(c, "tally_client_send");
    return api_leave(c, send_batch(c));
}

/* Wait until the socket has something for us, the next timer is due or
 * deadline (INT64_MAX: none) passes.  0 or TALLY_ESYS. */
static int wait_step(tally_client_t *c, int64_t now, int64_t deadline)
{
    int64_t wait = client_wire_next_timeout(c, now);
    if (wait < 0 || (deadline != INT64_MAX && wait > deadline - now))
        wait = deadline == INT64_MAX ? -1 : deadline - now;
    zmq_pollitem_t item = {.socket = c->dealer, .events = ZMQ_POLLIN};
    if (c->blocked)
        item.events |= ZMQ_POLLOUT;
    if (zmq_poll(&item, 1, (long)wait) < 0 && errno != EINTR) {
        client_seterr(c, "cannot poll the connection to %s: %s", c->endpoint, zmq_strerror(errno));
        return TALLY_ESYS;
    }
    return 0;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? INT64_MAX : util_mono_ms() + timeout_ms;
}

static int flush(tally_client_t *c, int timeout_ms)
{
    int rc = send_batch(c);
    int64_t deadline = deadline_of(timeout_ms);
    while (rc == 0 && !c->doomed && c->head != NULL) {
        int64_t now = util_mono_ms();
        if (now >= deadline) {
            client_seterr(c, "%zu submission(s) not acknowledged by %s within %d ms", c->npending,
                          c->endpoint, timeout_ms);
            return TALLY_ETIMEDOUT;
        }
        rc = wait_step(c, now, deadline);
        if (rc == 0)
            rc = process(c);
    }
    return rc;
}

int tally_client_flush(tally_client_t *c, int timeout_ms)
{
    if (c == NULL)
        return TALLY_EINVAL;
    if (c->in_cb)
        return refuse_in_callback(c, "tally_client_flush");
    return api_leave(c, flush(c, timeout_ms));
}

static int hello(tally_client_t *c, int timeout_ms)
{
    c->hello_wanted = true;
    int64_t deadline = deadline_of(timeout_ms);
    int rc = process(c);
    while (rc == 0 && !c->doomed && !c->welcomed) {
        int64_t now = util_mono_ms();
        if (now >= deadline) {
            client_seterr(c, "no answer to HELLO from %s within %d ms", c->endpoint, timeout_ms);
            rc = TALLY_ETIMEDOUT;
            break;
        }
        rc = wait_step(c, now, deadline);
        if (rc == 0)
            rc = process(c);
    }
    c->hello_wanted = false;
    return rc;
}

int tally_client_hello(tally_client_t *c, int timeout_ms)
{
    if (c == NULL)
        return TALLY_EINVAL;
    if (c->in_cb)
        return refuse_in_callback(c, "tally_client_hello");
    return api_leave(c, hello(c, timeout_ms));
}

int tally_client_fd(tally_client_t *c, int *fd)
{
    if (c == NULL || fd == NULL)
        return TALLY_EINVAL;
    size_t len = sizeof *fd;
    if (zmq_getsockopt(c->dealer, ZMQ_FD, fd, &len) < 0) {
        client_seterr(c, "cannot get the socket's file descriptor: %s", zmq_strerror(errno));
        return TALLY_ESYS;
    }
    return 0;
}

int tally_client_next_timeout_ms(const tally_client_t *c)
{
    if (c == NULL)
        return -1;
    return client_wire_next_timeout(c, util_mono_ms());
}

size_t tally_client_pending(const tally_client_t *c)
{
    if (c == NULL)
        return 0;
    return c->npending;
}

size_t tally_client_pending_samples(const tally_client_t *c)
{
    if (c == NULL)
        return 0;
    return c->pending_samples;
}

size_t tally_client_batch_size(const tally_client_t *c)
{
    if (c == NULL)
        return 0;
    return c->batch_n;
}

void tally_client_id(const tally_client_t *c, uint8_t id[TALLY_CLIENT_ID_LEN])
{
    if (c == NULL) {
        memset(id, 0, TALLY_CLIENT_ID_LEN);
        return;
    }
    memcpy(id, c->id, TALLY_CLIENT_ID_LEN);
}

int tally_client_link(tally_client_t *c)
{
    if (c == NULL)
        return TALLY_LINK_UNKNOWN;
    return monitor_poll(&c->mon);
}

int64_t tally_client_refused_ms(tally_client_t *c)
{
    if (c == NULL)
        return 0;
    return monitor_refused_ms(&c->mon);
}

const char *tally_client_link_why(tally_client_t *c)
{
    if (c == NULL)
        return "";
    monitor_poll(&c->mon);
    return monitor_why(&c->mon);
}

uint64_t tally_client_next_seq(const tally_client_t *c)
{
    if (c == NULL)
        return 0;
    return c->next_seq;
}

int tally_client_last_refusal(const tally_client_t *c, uint64_t *seq, const char **message)
{
    if (c == NULL || c->retry_code == 0) {
        if (message != NULL)
            *message = "";
        return 0;
    }
    if (seq != NULL)
        *seq = c->retry_seq;
    if (message != NULL)
        *message = c->retry_msg;
    return c->retry_code;
}

const tally_rejected_t *tally_client_rejected_earlier(const tally_client_t *c)
{
    return c != NULL ? c->rejected : NULL;
}

const char *tally_client_last_error(const tally_client_t *c)
{
    if (c == NULL)
        return "";
    return c->err;
}
