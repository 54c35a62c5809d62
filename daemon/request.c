/* request.c - decode every request, check who sent it (in a secured
 * daemon) and hand it to its handler (see request.h). */
#include "request.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text.h"

_Static_assert(CONFIG_TZ_MAX <= PROTO_ZONE_MAX, "a configured zone fits in CLOCK");

request_limits_t request_limits_from(const tallyd_config_t *c)
{
    return (request_limits_t){
        .max_samples = c->max_samples,
        .max_msg_bytes = c->max_msg_bytes,
        .skew_ms = c->skew_ms,
        .max_age_ms = c->max_age_ms,
        .client_expiry_ms = c->client_expiry_ms,
    };
}

int request_init(request_t *r, const request_config_t *c)
{
    memset(r, 0, sizeof(*r));
    r->c = *c;
    msgpack_sbuffer_init(&r->out);
    catalog_view_init(&r->catalog);
    r->samples = calloc(PROTO_SAMPLES_MAX, sizeof(*r->samples));
    r->page = calloc(REQUEST_TOWNSHIPS_PAGE, sizeof(*r->page));
    for (size_t i = 0; i < BACKUP_FETCH_MAX; i++)
        r->fetching[i].r = r;
    return r->samples && r->page ? 0 : TALLY_ENOMEM;
}

void request_free(request_t *r)
{
    free(r->samples);
    r->samples = NULL;
    free(r->page);
    r->page = NULL;
    townlist_free(&r->townlist);
    catalog_view_free(&r->catalog);
    msgpack_sbuffer_destroy(&r->out);
    msgpack_sbuffer_init(&r->out);
}

void request_set_limits(request_t *r, const request_limits_t *l)
{
    r->c.limits = *l;
}

/* The townships a closed catalog no longer declares that have series
 * follow its own (catalog_view_held): looked for again when series were
 * created since, or the catalog set. */
static int refresh_held(request_t *r)
{
    if (r->c.towns == NULL || r->c.engine == NULL)
        return 0;
    int rc = townlist_update(&r->townlist, r->c.engine);
    int held = catalog_view_held(&r->catalog, r->c.towns, &r->townlist);
    return rc != 0 ? rc : held;
}

int request_set_catalog(request_t *r, const tallyd_config_t *cfg)
{
    int rc = catalog_view_set(&r->catalog, cfg);
    /* Out of memory here, the next CATALOG_REQ tries again. */
    if (rc == 0)
        (void)refresh_held(r);
    return rc;
}

/* Encode m and send it to rid; a peer that is gone is counted.  Returns
 * true when the reply was handed to the socket. */
static bool reply(request_t *r, const void *rid, size_t rid_len, const proto_msg_t *m)
{
    msgpack_sbuffer_clear(&r->out);
    if (proto_encode(&r->out, m) != 0) {
        log_error(r->c.log, "cannot encode a reply of type %u", m->type);
        return false;
    }
    int rc = sink_send(&r->c.reply, rid, rid_len, r->out.data, r->out.size);
    if (rc != 0) {
        r->c.counters->unroutable_replies++;
        log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_INFO, "reply dropped: %s",
                    tally_strerror(rc));
    }
    return rc == 0;
}

/* An ERROR that is no fault of the request (a backup that failed, a
 * daemon stopping): not counted among bad requests. */
static void send_error_uncounted(request_t *r, const void *rid, size_t rid_len, uint64_t req_id,
                                 int code, const char *field, const char *message)
{
    proto_msg_t m = {.type = PROTO_ERROR};
    m.u.error.req_id = req_id;
    m.u.error.code = (uint32_t)(code < 0 ? -code : code);
    m.u.error.field = proto_str(field);
    m.u.error.message = proto_str(message);
    reply(r, rid, rid_len, &m);
}

static void send_error(request_t *r, const void *rid, size_t rid_len, uint64_t req_id, int code,
                       const char *field, const char *message)
{
    stats_bad_request(r->c.counters, code);
    send_error_uncounted(r, rid, rid_len, req_id, code, field, message);
}

/* A request that is answered with an ERROR: logged (rate limited), counted
 * and answered. */
static void bad_request(request_t *r, const void *rid, size_t rid_len, uint64_t req_id, int code,
                        const char *field, const char *message)
{
    log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE, "bad request: %s (%s)", message,
                tally_errname(code));
    send_error(r, rid, rid_len, req_id, code, field, message);
}

static void reply_welcome(request_t *r, const void *rid, size_t rid_len, uint64_t req_id)
{
    const request_limits_t *l = &r->c.limits;
    proto_msg_t m = {.type = PROTO_WELCOME};
    m.u.welcome.req_id = req_id;
    m.u.welcome.server = proto_str("tallyd/" TALLY_VERSION);
    m.u.welcome.pub_endpoint = proto_str(r->c.pub_endpoint);
    m.u.welcome.stream_id = publish_stream_id(r->c.publish);
    m.u.welcome.seq = publish_seq(r->c.publish);
    uint32_t n = engine_columns(r->c.engine);
    m.u.welcome.ncolumns = n;
    for (uint32_t i = 0; i < n; i++)
        m.u.welcome.columns[i] = proto_str(engine_column_name(r->c.engine, i));
    m.u.welcome.max_samples = l->max_samples;
    m.u.welcome.max_name = PROTO_NAME_MAX;
    m.u.welcome.max_msg = l->max_msg_bytes;
    m.u.welcome.skew_ms = l->skew_ms;
    m.u.welcome.max_age_ms = l->max_age_ms;
    m.u.welcome.client_expiry_ms = l->client_expiry_ms;
    reply(r, rid, rid_len, &m);
}

typedef struct stats_fill {
    proto_msg_t m;
    char names[PROTO_STATS_MAX][80];
} stats_fill_t;

/* The reporter may build names in a buffer it reuses: copy each one at
 * once. */
static void add_stat(const char *name, int64_t value, void *ctx)
{
    stats_fill_t *f = ctx;
    uint32_t n = f->m.u.stats.n;
    if (n >= PROTO_STATS_MAX)
        return;
    snprintf(f->names[n], sizeof(f->names[n]), "%s", name);
    f->m.u.stats.entries[n].name = proto_str(f->names[n]);
    f->m.u.stats.entries[n].value = value;
    f->m.u.stats.n = n + 1;
}

static void reply_stats(request_t *r, const void *rid, size_t rid_len, uint64_t req_id)
{
    stats_fill_t *f = calloc(1, sizeof(*f));
    if (!f) {
        send_error(r, rid, rid_len, req_id, TALLY_EBUSY, "",
                   "the daemon is out of memory for this reply; retry later");
        return;
    }
    f->m.type = PROTO_STATS;
    f->m.u.stats.req_id = req_id;
    r->c.stats(r->c.stats_ctx, add_stat, f);
    reply(r, rid, rid_len, &f->m);
    free(f);
}

static void reply_catalog(request_t *r, const void *rid, size_t rid_len, const proto_msg_t *in)
{
    proto_msg_t m;
    if (refresh_held(r) != 0 ||
        catalog_view_page(&r->catalog, in->u.catalog_req.req_id, in->u.catalog_req.townships_from,
                          in->u.catalog_req.metrics_from, PROTO_CATALOG_BYTES, &m) != 0) {
        send_error(r, rid, rid_len, in->u.catalog_req.req_id, TALLY_EBUSY, "",
                   "the daemon is out of memory for this reply; retry later");
        return;
    }
    reply(r, rid, rid_len, &m);
}

/* The daemon's clock and the offset of its calendar's zone at that
 * instant (the process's TZ, set from the configuration at start). */
static void reply_clock(request_t *r, const void *rid, size_t rid_len, uint64_t req_id)
{
    proto_msg_t m = {.type = PROTO_CLOCK};
    m.u.clock.req_id = req_id;
    m.u.clock.now_ms = clock_now_ms(r->c.clock);
    m.u.clock.zone = proto_str(r->c.zone);
    time_t t = (time_t)(m.u.clock.now_ms / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || tm.tm_gmtoff < -PROTO_UTC_OFFSET_MAX ||
        tm.tm_gmtoff > PROTO_UTC_OFFSET_MAX) {
        send_error(r, rid, rid_len, req_id, TALLY_EUNAVAIL, "",
                   "the daemon cannot tell its zone's offset from UTC at this time");
        return;
    }
    m.u.clock.utc_offset_s = (int32_t)tm.tm_gmtoff;
    reply(r, rid, rid_len, &m);
}

static void reply_pong(request_t *r, const void *rid, size_t rid_len, const proto_msg_t *in)
{
    proto_msg_t m = {.type = PROTO_PONG};
    m.u.pong.req_id = in->u.ping.req_id;
    m.u.pong.time_ms = in->u.ping.time_ms;
    m.u.pong.seq = publish_seq(r->c.publish);
    reply(r, rid, rid_len, &m);
}

/* TOWNSHIPS: the townships that have series, from position from on
 * (township ids; 0 is the county's, never listed), as many as fit. */
static void reply_townships(request_t *r, const void *rid, size_t rid_len, const proto_msg_t *q)
{
    uint64_t req_id = q->u.townships_req.req_id;
    if (townlist_update(&r->townlist, r->c.engine) != 0) {
        send_error(r, rid, rid_len, req_id, TALLY_EBUSY, "",
                   "the daemon is out of memory for the township list; retry later");
        return;
    }
    uint32_t last = r->c.towns != NULL ? intern_count(r->c.towns) : 0;
    uint32_t id = q->u.townships_req.from > 0 ? q->u.townships_req.from : 1;
    uint32_t n = 0, looked = 0;
    size_t bytes = PROTO_TOWNSHIPS_HEAD_BYTES;
    for (; id <= last && looked < REQUEST_TOWNSHIPS_SCAN; id++, looked++) {
        if (!townlist_has(&r->townlist, id))
            continue;
        uint32_t len = 0;
        const char *name = intern_name(r->c.towns, id, &len);
        size_t size = proto_townships_name_size(len);
        if (n == REQUEST_TOWNSHIPS_PAGE || bytes + size > PROTO_TOWNSHIPS_BYTES)
            break;
        r->page[n++] = (proto_str_t){name, len};
        bytes += size;
    }
    proto_msg_t m = {.type = PROTO_TOWNSHIPS};
    m.u.townships.req_id = req_id;
    m.u.townships.next = id <= last ? id : 0;
    m.u.townships.n = n;
    m.u.townships.names = r->page;
    reply(r, rid, rid_len, &m);
    r->c.counters->township_pages++;
}

/* ERROR UNAVAILABLE for a backup that could not be written: the backup's
 * sentence names paths, which need not be UTF-8 nor short. */
static void backup_failed(request_t *r, const void *rid, size_t rid_len, uint64_t req_id,
                          const char *why)
{
    char shown[PROTO_MESSAGE_MAX - 32], msg[PROTO_MESSAGE_MAX];
    text_printable(shown, sizeof(shown), why, strlen(why), 0);
    snprintf(msg, sizeof(msg), "the backup failed: %s", shown);
    send_error_uncounted(r, rid, rid_len, req_id, TALLY_EUNAVAIL, "", msg);
}

#define BACKUP_STOPPING "tallyd is stopping; the backup was not finished"

/* BACKUP_REQ from who (NULL without keys): wait for a backup that holds
 * every submission acknowledged so far (backup_ask), answered by
 * request_backup_end.  Logged, for the operators' record of who asked. */
static void ask_backup(request_t *r, const void *rid, size_t rid_len, uint64_t req_id,
                       const keyring_identity_t *who)
{
    if (who != NULL)
        log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE, "backup asked for by %s '%s'",
                    keys_role_name(who->role), who->name);
    else
        log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE, "backup asked for (BACKUP_REQ)");
    if (r->nbackup_waiting == REQUEST_BACKUP_WAITERS) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "%d requests wait for a backup already; retry once the backup under way is "
                 "written",
                 REQUEST_BACKUP_WAITERS);
        send_error(r, rid, rid_len, req_id, TALLY_EBUSY, "", msg);
        return;
    }
    uint64_t serial = 0;
    int rc = backup_ask(r->c.backup, &serial);
    if (rc == TALLY_ECLOSED) {
        send_error_uncounted(r, rid, rid_len, req_id, TALLY_EUNAVAIL, "", BACKUP_STOPPING);
        return;
    }
    if (rc != 0) {
        backup_failed(r, rid, rid_len, req_id, backup_errmsg(r->c.backup));
        return;
    }
    request_backup_waiter_t *w = &r->backup_waiting[r->nbackup_waiting++];
    memcpy(w->rid, rid, rid_len);
    w->rid_len = rid_len;
    w->req_id = req_id;
    w->serial = serial;
}

/* The backup's path for BACKUP: its name alone when the whole path is not
 * absolute (it could not be resolved), not UTF-8 or too long for the
 * field (PROTOCOL.md 8.26). */
static proto_str_t backup_path(const char *path)
{
    size_t len = strlen(path);
    if (path[0] == '/' && len <= PROTO_PATH_MAX && proto_utf8_valid(path, len))
        return (proto_str_t){path, (uint32_t)len};
    const char *base = strrchr(path, '/');
    return proto_str(base != NULL ? base + 1 : path);
}

void request_backup_end(request_t *r, const backup_end_t *e)
{
    size_t kept = 0;
    for (size_t i = 0; i < r->nbackup_waiting; i++) {
        request_backup_waiter_t *w = &r->backup_waiting[i];
        if (w->serial > e->serial) {
            r->backup_waiting[kept++] = *w;
            continue;
        }
        if (e->rc == TALLY_ECLOSED) {
            send_error_uncounted(r, w->rid, w->rid_len, w->req_id, TALLY_EUNAVAIL, "",
                                 BACKUP_STOPPING);
            continue;
        }
        if (e->rc != 0) {
            backup_failed(r, w->rid, w->rid_len, w->req_id, e->err ? e->err : "");
            continue;
        }
        proto_msg_t m = {.type = PROTO_BACKUP};
        m.u.backup.req_id = w->req_id;
        m.u.backup.path = backup_path(e->path);
        m.u.backup.files = e->files;
        m.u.backup.bytes = e->bytes;
        m.u.backup.ms = e->ms;
        reply(r, w->rid, w->rid_len, &m);
    }
    r->nbackup_waiting = kept;
}

void request_backup_abandon(request_t *r)
{
    for (size_t i = 0; i < r->nbackup_waiting; i++) {
        request_backup_waiter_t *w = &r->backup_waiting[i];
        send_error_uncounted(r, w->rid, w->rid_len, w->req_id, TALLY_EUNAVAIL, "", BACKUP_STOPPING);
    }
    r->nbackup_waiting = 0;
}

/* A BACKUP_FETCH's piece was read, or could not be: BACKUP_CHUNK or
 * ERROR to the peer that asked.  A backup that is not there (removed
 * past [backup] keep while a copy ran, or a name mistyped) and a read
 * that failed are no fault of the request's form: answered without being
 * counted among bad requests, as BACKUP_REQ's failures are. */
static void fetched(void *arg, const backup_fetch_result_t *res)
{
    request_fetch_t *w = arg;
    request_t *r = w->r;
    int64_t now = clock_mono_ms();
    if (res->rc == 0) {
        if (w->first)
            log_limited(r->c.log, now, LOG_LEVEL_NOTICE, "backup %s being copied %s", res->name,
                        w->who);
        proto_msg_t m = {.type = PROTO_BACKUP_CHUNK};
        m.u.backup_chunk.req_id = w->req_id;
        m.u.backup_chunk.files = res->files;
        m.u.backup_chunk.file = res->file;
        m.u.backup_chunk.file_name = proto_str(res->file_name);
        m.u.backup_chunk.size = res->size;
        m.u.backup_chunk.offset = res->offset;
        m.u.backup_chunk.data = (proto_str_t){(const char *)res->data, (uint32_t)res->len};
        if (reply(r, w->rid, w->rid_len, &m)) {
            r->c.counters->backup_fetches++;
            r->c.counters->backup_fetch_bytes += res->len;
        }
    } else if (res->rc == TALLY_ERANGE) {
        bad_request(r, w->rid, w->rid_len, w->req_id, res->rc, res->field, res->err);
    } else if (res->rc == TALLY_ENOBACKUP) {
        log_limited(r->c.log, now, LOG_LEVEL_INFO, "backup fetch refused: %s (NO_SUCH_BACKUP)",
                    res->err);
        send_error_uncounted(r, w->rid, w->rid_len, w->req_id, res->rc, res->field, res->err);
    } else {
        if (res->rc != TALLY_ECLOSED)
            log_limited(r->c.log, now, LOG_LEVEL_WARNING, "backup fetch failed: %s", res->err);
        send_error_uncounted(r, w->rid, w->rid_len, w->req_id, TALLY_EUNAVAIL, "", res->err);
    }
    w->used = false;
}

/* A free request_fetch_t: as many as backup_fetch has slots, which
 * fetches and listings share. */
static request_fetch_t *free_fetching(request_t *r)
{
    for (size_t i = 0; i < BACKUP_FETCH_MAX; i++)
        if (!r->fetching[i].used)
            return &r->fetching[i];
    return NULL;
}

/* w waits for its read, for the peer rid; who (NULL without keys) asked
 * with a request named type. */
static void fetching_taken(request_fetch_t *w, const void *rid, size_t rid_len, uint64_t req_id,
                           const keyring_identity_t *who, const char *type)
{
    w->used = true;
    memcpy(w->rid, rid, rid_len);
    w->rid_len = rid_len;
    w->req_id = req_id;
    w->first = false;
    if (who != NULL)
        snprintf(w->who, sizeof(w->who), "by %s '%s'", keys_role_name(who->role), who->name);
    else
        snprintf(w->who, sizeof(w->who), "(%s)", type);
}

/* BACKUP_FETCH from who (NULL without keys): a piece of a backup's file,
 * read off the loop and answered by fetched(). */
/* BUSY for a fetch or a listing: the backup reads' slots are all taken. */
static void reads_busy(request_t *r, const void *rid, size_t rid_len, uint64_t req_id)
{
    char msg[128];
    snprintf(msg, sizeof(msg), BACKUP_FETCH_BUSY, BACKUP_FETCH_MAX);
    send_error(r, rid, rid_len, req_id, TALLY_EBUSY, "", msg);
}

static void fetch_backup(request_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                         const keyring_identity_t *who)
{
    const __typeof__(m->u.backup_fetch) *q = &m->u.backup_fetch;
    request_fetch_t *w = free_fetching(r);
    int rc = w == NULL ? TALLY_EBUSY
                       : backup_fetch_begin(r->c.fetch, q->name.ptr, q->name.len, q->file,
                                            q->offset, fetched, w);
    if (rc == TALLY_EBUSY) {
        reads_busy(r, rid, rid_len, q->req_id);
        return;
    }
    if (rc == TALLY_EBADNAME) {
        bad_request(r, rid, rid_len, q->req_id, rc, "name", backup_fetch_errmsg(r->c.fetch));
        return;
    }
    if (rc != 0) { /* stopping, or the thread pool */
        send_error_uncounted(r, rid, rid_len, q->req_id, TALLY_EUNAVAIL, "",
                             backup_fetch_errmsg(r->c.fetch));
        return;
    }
    fetching_taken(w, rid, rid_len, q->req_id, who, "BACKUP_FETCH");
    w->first = q->file == 0 && q->offset == 0;
}

/* The backups were listed, or could not be: BACKUP_LIST or ERROR
 * UNAVAILABLE to the peer that asked.  Listing is routine for a program
 * that copies backups (each night, say), so a success is logged at debug
 * only; a failure is no fault of the request, and not counted. */
static void listed(void *arg, const backup_fetch_listing_t *res)
{
    request_fetch_t *w = arg;
    request_t *r = w->r;
    if (res->rc == 0) {
        proto_msg_t m = {.type = PROTO_BACKUP_LIST};
        m.u.backup_list.req_id = w->req_id;
        m.u.backup_list.dir = proto_str(res->dir);
        m.u.backup_list.total = res->total;
        m.u.backup_list.n = res->n;
        m.u.backup_list.backups = res->backups;
        if (reply(r, w->rid, w->rid_len, &m))
            log_debug(r->c.log, "backups listed %s: %" PRIu32 " of %" PRIu32, w->who, res->n,
                      res->total);
    } else {
        if (res->rc != TALLY_ECLOSED)
            log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_INFO, "backup list failed: %s",
                        res->err);
        send_error_uncounted(r, w->rid, w->rid_len, w->req_id, TALLY_EUNAVAIL, "", res->err);
    }
    w->used = false;
}

/* BACKUP_LIST_REQ from who (NULL without keys): the backups kept, listed
 * off the loop in one of the slots fetches use, and answered by
 * listed(). */
static void list_backups(request_t *r, const void *rid, size_t rid_len, uint64_t req_id,
                         const keyring_identity_t *who)
{
    request_fetch_t *w = free_fetching(r);
    int rc = w == NULL ? TALLY_EBUSY : backup_fetch_list_begin(r->c.fetch, listed, w);
    if (rc == TALLY_EBUSY) {
        reads_busy(r, rid, rid_len, req_id);
        return;
    }
    if (rc != 0) { /* stopping, a path too long, or the thread pool */
        send_error_uncounted(r, rid, rid_len, req_id, TALLY_EUNAVAIL, "",
                             backup_fetch_errmsg(r->c.fetch));
        return;
    }
    fetching_taken(w, rid, rid_len, req_id, who, "BACKUP_LIST_REQ");
}

/* In a secured daemon: may the identity who (NULL: its key is no longer
 * in the keyring) have the request m answered?  Townships submit,
 * subscribers read, admins ask for backups; all may say HELLO and PING
 * and ask for the catalog and the clock.  Answers a refusal itself and
 * returns false. */
static bool allowed(request_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                    const keyring_identity_t *who, const char *user_id)
{
    if (who == NULL) {
        log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                    "refused a request from '%s': the key is no longer admitted",
                    user_id ? user_id : "?");
        send_error(r, rid, rid_len, proto_req_id(m), TALLY_EFORBIDDEN, "",
                   "this key is no longer admitted by the daemon (removed from its key "
                   "directories)");
        return false;
    }
    bool reads = m->type == PROTO_SNAPSHOT_REQ || m->type == PROTO_STATS_REQ ||
                 m->type == PROTO_PERIOD_REQ || m->type == PROTO_RANGE_REQ ||
                 m->type == PROTO_SPAN_REQ || m->type == PROTO_TOWNSHIPS_REQ;
    bool backup = m->type == PROTO_BACKUP_REQ || m->type == PROTO_BACKUP_FETCH ||
                  m->type == PROTO_BACKUP_LIST_REQ;
    if ((reads && who->role != KEYS_ROLE_SUBSCRIBER) || (backup && who->role != KEYS_ROLE_ADMIN)) {
        char msg[256];
        if (backup)
            snprintf(msg, sizeof(msg),
                     "this key belongs to %s '%s', which may not %s; use an admin key ([security] "
                     "admin_keys)",
                     keys_role_name(who->role), who->name,
                     m->type == PROTO_BACKUP_REQ     ? "ask for backups"
                     : m->type == PROTO_BACKUP_FETCH ? "copy backups"
                                                     : "list backups");
        else
            snprintf(msg, sizeof(msg),
                     "this key belongs to %s '%s', which may %s but not read tallies or "
                     "counters; use a subscriber key",
                     keys_role_name(who->role), who->name,
                     who->role == KEYS_ROLE_ADMIN ? "ask for backups" : "submit figures");
        log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE, "refused a request: %s", msg);
        send_error(r, rid, rid_len, proto_req_id(m), TALLY_EFORBIDDEN, "type", msg);
        return false;
    }
    return true;
}

/* The daemon's timer ticks the engine at its next boundary, but a read
 * may come first, in the same loop iteration as a midnight or a bucket
 * boundary: without this, it would answer the day that ended.  Time only
 * moves forward: a clock set back is ignored by engine_tick(). */
static void catch_up(request_t *r)
{
    int64_t now = clock_now_ms(r->c.clock);
    if (now >= engine_next_tick_ms(r->c.engine))
        engine_tick(r->c.engine, now);
}

static void dispatch(request_t *r, const void *rid, size_t rid_len, const void *body, size_t len,
                     const proto_msg_t *m, const keyring_identity_t *who)
{
    if (m->type == PROTO_PERIOD_REQ || m->type == PROTO_RANGE_REQ || m->type == PROTO_SPAN_REQ ||
        m->type == PROTO_SNAPSHOT_REQ)
        catch_up(r);
    switch (m->type) {
    case PROTO_SUBMIT:
        ingest_submit(r->c.ingest, rid, rid_len, body, len, &m->u.submit, who);
        break;
    case PROTO_HELLO:
        reply_welcome(r, rid, rid_len, m->u.hello.req_id);
        break;
    case PROTO_PING:
        reply_pong(r, rid, rid_len, m);
        break;
    case PROTO_STATS_REQ:
        reply_stats(r, rid, rid_len, m->u.stats_req.req_id);
        break;
    case PROTO_CATALOG_REQ:
        reply_catalog(r, rid, rid_len, m);
        break;
    case PROTO_CLOCK_REQ:
        reply_clock(r, rid, rid_len, m->u.clock_req.req_id);
        break;
    case PROTO_TOWNSHIPS_REQ:
        reply_townships(r, rid, rid_len, m);
        break;
    case PROTO_BACKUP_REQ:
        if (r->c.backup == NULL)
            goto unknown;
        ask_backup(r, rid, rid_len, m->u.backup_req.req_id, who);
        break;
    case PROTO_BACKUP_FETCH:
        if (r->c.fetch == NULL)
            goto unknown;
        fetch_backup(r, rid, rid_len, m, who);
        break;
    case PROTO_BACKUP_LIST_REQ:
        if (r->c.fetch == NULL)
            goto unknown;
        list_backups(r, rid, rid_len, m->u.backup_list_req.req_id, who);
        break;
    case PROTO_PERIOD_REQ:
    case PROTO_RANGE_REQ:
    case PROTO_SPAN_REQ: {
        if (r->c.recall == NULL)
            goto unknown;
        const char *field = "";
        char msg[PROTO_MESSAGE_MAX];
        int rc = m->type == PROTO_PERIOD_REQ
                     ? recall_period(r->c.recall, rid, rid_len, m, &field, msg, sizeof(msg))
                 : m->type == PROTO_RANGE_REQ
                     ? recall_range(r->c.recall, rid, rid_len, m, &field, msg, sizeof(msg))
                     : recall_span(r->c.recall, rid, rid_len, m, &field, msg, sizeof(msg));
        if (rc == TALLY_ETOOLARGE) {
            /* Not bad input: the documented way to learn that a prefix
             * needs narrowing (PROTOCOL.md 8.18), which clients reading a
             * large county take on every read; counted, and logged below
             * the operators' notice level. */
            log_limited(r->c.log, clock_mono_ms(), LOG_LEVEL_INFO, "answer too large: %s", msg);
            send_error(r, rid, rid_len, proto_req_id(m), rc, field, msg);
        } else if (rc != 0)
            bad_request(r, rid, rid_len, proto_req_id(m), rc, field, msg);
        else
            r->c.counters->period_requests++;
        break;
    }
    case PROTO_SNAPSHOT_REQ: {
        int rc = snapshot_request(r->c.snapshot, rid, rid_len, m->u.snapshot_req.req_id,
                                  m->u.snapshot_req.prefix.ptr, m->u.snapshot_req.prefix.len);
        if (rc == TALLY_EBUSY)
            send_error(r, rid, rid_len, m->u.snapshot_req.req_id, TALLY_EBUSY, "",
                       "the daemon is sending as many snapshots as it may at once, or one to "
                       "this connection already; retry later");
        else if (rc != 0)
            send_error(r, rid, rid_len, m->u.snapshot_req.req_id, TALLY_EBUSY, "",
                       "the daemon is out of memory for this snapshot; retry later");
        break;
    }
    default:
    unknown : {
        char msg[160];
        snprintf(msg, sizeof(msg), "type: message type %u is not a request the daemon answers",
                 m->type);
        send_error(r, rid, rid_len, proto_req_id(m), TALLY_ETYPE, "type", msg);
        break;
    }
    }
}

/* A message of a type the daemon sends: UNKNOWN_TYPE, whatever its
 * elements (decoding them as that type would answer a question nobody
 * asked: "ACK is an array of 4 elements, expected 8"). */
static void not_a_request(request_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                          const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg),
             "type: %u (%s) is sent by the daemon, not a request a client may send", m->type, name);
    bad_request(r, rid, rid_len, proto_req_id(m), TALLY_ETYPE, "type", msg);
}

/* A body above max_msg, within the transport limit (twice max_msg, so
 * that it reaches us): read only as far as what names it.  A SUBMIT whose
 * client_id and seq can be read goes to ingest, which answers a resend of
 * something applied before (when max_msg was higher) DUPLICATE and
 * refuses anything else with an ACK for its seq, so that the client can
 * settle it; any other request gets ERROR TOO_LARGE with its req_id, 0
 * when that cannot be read.  A key that is not admitted hears nothing,
 * as for any other request. */
static void too_large(request_t *r, const void *rid, size_t rid_len, const void *body, size_t len,
                      const keyring_identity_t *who)
{
    if (r->c.secured && who == NULL)
        return;
    proto_msg_t m;
    (void)proto_decode_head(body, len, &m, NULL);
    bool submit = m.type == PROTO_SUBMIT && m.u.submit.seq != 0;
    proto_error_t err = {.code = TALLY_ETOOLARGE, .sample = -1, .field = "body"};
    snprintf(err.message, sizeof(err.message),
             "body: the %s is %zu bytes, above the limit of %" PRId64 " bytes (max_msg); %s",
             submit ? "submission" : "request", len, r->c.limits.max_msg_bytes,
             submit ? "split it into smaller submissions" : "split the submission");
    if (submit)
        ingest_refuse(r->c.ingest, rid, rid_len, &m.u.submit, who, &err);
    else
        bad_request(r, rid, rid_len, proto_req_id(&m), err.code, err.field, err.message);
}

void request_handle(request_t *r, const void *rid, size_t rid_len, int nframes, const void *body,
                    size_t len, const char *user_id)
{
    if (nframes != 1) {
        char msg[128];
        snprintf(msg, sizeof(msg), "a request is one frame (after the routing id); this one had %d",
                 nframes);
        bad_request(r, rid, rid_len, 0, TALLY_EMALFORMED, "frames", msg);
        return;
    }
    /* The identity comes from the User-Id our ZAP handler gave the
     * connection, checked against the keyring in force on every message,
     * so a key revoked by a reload stops being served at once.  Never
     * from the payload or the routing id. */
    const keyring_identity_t *who = NULL;
    if (r->c.secured)
        who = keyring_lookup_user_id(r->c.keys, user_id);
    if (len > (uint64_t)r->c.limits.max_msg_bytes) {
        too_large(r, rid, rid_len, body, len, who);
        return;
    }
    proto_msg_t m;
    proto_error_t err;
    int rc = proto_decode(body, len, &m, r->samples, (uint32_t)r->c.limits.max_samples, &err);
    if (r->c.secured && who == NULL) {
        /* Not even decoding errors for a key that is not admitted. */
        if (m.type == PROTO_SUBMIT && m.u.submit.seq != 0)
            ingest_forbid_unknown(r->c.ingest, rid, rid_len, m.u.submit.seq, user_id);
        else
            allowed(r, rid, rid_len, &m, NULL, user_id);
        return;
    }
    if (proto_type_name(m.type) != NULL && !proto_type_is_request(m.type)) {
        not_a_request(r, rid, rid_len, &m, proto_type_name(m.type));
        return;
    }
    if (r->c.secured && rc == 0 && !allowed(r, rid, rid_len, &m, who, user_id))
        return;
    if (rc != 0) {
        if (m.type == PROTO_SUBMIT && m.u.submit.seq != 0)
            ingest_refuse(r->c.ingest, rid, rid_len, &m.u.submit, who, &err);
        else
            bad_request(r, rid, rid_len, proto_req_id(&m), err.code, err.field, err.message);
        return;
    }
    dispatch(r, rid, rid_len, body, len, &m, who);
}
