/* endpoints.c - tallyd's ZeroMQ sockets: options, security, binding,
 * delivery (see endpoints.h). */
#include "endpoints.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <zmq.h>

#include "clock.h"

/* How long a rebind (rebind()) waits for ZeroMQ to let go of the
 * endpoint. */
#define REBIND_WAIT_MS 2000
#define REBIND_STEP_MS 10

static int set_int(endpoints_t *e, void *sock, int opt, int value, const char *name)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof(value)) != 0) {
        log_error(e->c.log, "cannot set %s: %s", name, zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

static int set_int64(endpoints_t *e, void *sock, int opt, int64_t value, const char *name)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof(value)) != 0) {
        log_error(e->c.log, "cannot set %s: %s", name, zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

endpoints_limits_t endpoints_limits_from(const tallyd_config_t *cfg)
{
    return (endpoints_limits_t){
        .max_msg_bytes = cfg->max_msg_bytes,
        .max_subscriber_queue = cfg->max_subscriber_queue,
        .max_connections = cfg->max_connections,
        .max_subscriptions = cfg->max_subscriptions,
        .max_subscription_bytes = cfg->max_subscription_bytes,
        .max_inbound_bytes = cfg->max_inbound_bytes,
        .max_reply_queue = cfg->max_reply_queue,
    };
}

int64_t endpoints_inbound_messages(const endpoints_limits_t *lim)
{
    int64_t n = lim->max_inbound_bytes / (lim->max_msg_bytes > 0 ? lim->max_msg_bytes : 1);
    return n < 2 ? 2 : n > INT32_MAX ? INT32_MAX : n;
}

int64_t endpoints_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 0;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT64_MAX ? INT64_MAX
                                                                   : (int64_t)rl.rlim_cur;
}

int64_t endpoints_fit_connections(int64_t max_connections, int64_t fd_limit)
{
    if (fd_limit <= 0)
        return max_connections;
    int64_t room = (fd_limit - ENDPOINTS_FD_RESERVE) / 2;
    if (room < 1)
        room = 1;
    return max_connections < room ? max_connections : room;
}

/* The subscription limits of lim, remembering twice as many connections
 * as may be connected (see subscriptions.h). */
static subscriptions_limits_t subs_limits(const endpoints_limits_t *lim)
{
    int64_t conns = 2 * lim->max_connections;
    return (subscriptions_limits_t){
        .max_count = (uint32_t)lim->max_subscriptions,
        .max_bytes = (uint32_t)lim->max_subscription_bytes,
        .max_conns = (uint32_t)(conns > UINT32_MAX ? UINT32_MAX : conns),
    };
}

bool endpoints_is_local(const char *ep)
{
    const char *sep = strstr(ep, "://");
    if (sep == NULL)
        return false;
    size_t tlen = (size_t)(sep - ep);
    if ((tlen == 3 && memcmp(ep, "ipc", 3) == 0) || (tlen == 6 && memcmp(ep, "inproc", 6) == 0))
        return true;
    bool tcp = tlen == 3 && memcmp(ep, "tcp", 3) == 0;
    bool ws = (tlen == 2 && memcmp(ep, "ws", 2) == 0) || (tlen == 3 && memcmp(ep, "wss", 3) == 0);
    if (!tcp && !ws)
        return false; /* tipc, vmci: reach other machines by design */
    /* The host: up to the port's ':' (after a bracketed IPv6 address), and
     * for ws up to the path too. */
    const char *h = sep + 3, *end = h + strcspn(h, ws ? "/" : "");
    char host[PROTO_ENDPOINT_MAX + 1];
    size_t n;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (close == NULL)
            return false;
        n = (size_t)(close - h - 1);
        h++;
    } else {
        const char *colon = h;
        for (const char *p = h; p < end; p++)
            if (*p == ':')
                colon = p;
        n = (size_t)((colon > h ? colon : end) - h);
    }
    if (n >= sizeof(host))
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0 || strcmp(host, "lo") == 0)
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false; /* a name or an interface: it may reach the network */
}

/* Plaintext on anything but loopback exposes the figures and lets anyone
 * submit; say so loudly, whatever the transport. */
static void warn_if_exposed(endpoints_t *e, const char *endpoint)
{
    if (endpoints_is_local(endpoint))
        return;
    log_warning(e->c.log,
                "%s is not a loopback address and no keys are configured: anyone who can reach "
                "it can read and submit figures in plaintext",
                endpoint);
}

/* Whether endpoint is an ipc:// path where a process listens now.
 * ZeroMQ's ipc bind removes whatever file is at the path and binds
 * afresh, so a second tallyd given a running one's endpoint would take
 * it over silently: the first keeps running, unreachable.  A socket file
 * nobody listens on (left by a crash) refuses the connection and may be
 * replaced. */
static bool ipc_listened(const char *endpoint)
{
    static const char scheme[] = "ipc://";
    if (strncmp(endpoint, scheme, sizeof(scheme) - 1) != 0)
        return false;
    const char *path = endpoint + sizeof(scheme) - 1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    /* A wildcard names a fresh path; an abstract name cannot be bound
     * twice (EADDRINUSE from the bind). */
    if (path[0] == '\0' || path[0] == '@' || strcmp(path, "*") == 0 ||
        strlen(path) >= sizeof(a.sun_path))
        return false;
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool listened = connect(fd, (const struct sockaddr *)&a, sizeof(a)) == 0 || errno == EAGAIN;
    close(fd);
    return listened;
}

static int bind_socket(endpoints_t *e, void *sock, const char *endpoint, char *bound, size_t len)
{
    if (ipc_listened(endpoint)) {
        log_error(e->c.log,
                  "cannot bind %s: another process listens there (another tallyd?); binding "
                  "would take the endpoint from it.  Stop it, or give this tallyd other "
                  "endpoints (-r, -p)",
                  endpoint);
        return TALLY_ESYS;
    }
    if (zmq_bind(sock, endpoint) != 0) {
        int err = zmq_errno();
        log_error(e->c.log, "cannot bind %s: %s%s", endpoint, zmq_strerror(err),
                  err == ENODEV ? " (the interface has no address of this family: an IPv6 one "
                                  "binds with its name in brackets, tcp://[eth0]:7411)"
                                : "");
        return TALLY_ESYS;
    }
    size_t n = len;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &n) != 0)
        snprintf(bound, len, "%s", endpoint);
    if (!e->c.server->secured)
        warn_if_exposed(e, endpoint);
    return 0;
}

/* May the socket of domain take one more connection?  Asked by the ZAP
 * handler before it admits one.  The monitor's events queued now include
 * the connection being decided (libzmq reports the accept before the
 * handshake), so it counts itself. */
static bool admit(void *ctx, const char *domain, size_t len)
{
    endpoints_t *e = ctx;
    bool pub = len == strlen(ZAP_DOMAIN_PUBLISH) && memcmp(domain, ZAP_DOMAIN_PUBLISH, len) == 0;
    peers_t *p = pub ? &e->pub_peers : &e->router_peers;
    if (!(pub ? e->pub_peers_open : e->router_peers_open))
        return true;
    peers_drain(p);
    if ((int64_t)p->count <= e->c.lim.max_connections)
        return true;
    e->c.stats->connections_refused++;
    return false;
}

/* Every handshake asks our ZAP handler: with keys, the sockets are CURVE
 * servers; without, they speak NULL in a ZAP domain, which makes libzmq
 * ask too (for the connection limit, and the connection numbers the
 * subscription limits need).  The handler is bound first: libzmq admits
 * any client key on a CURVE socket whose context has no ZAP handler
 * (zap_secure_socket() also sets ZMQ_ZAP_ENFORCE_DOMAIN, which closes
 * that hole a second time). */
static int secure_sockets(endpoints_t *e)
{
    bool secured = e->c.server->secured;
    int rc = zap_init(&e->zap, e->zctx, e->c.loop, secured ? e->c.keys : NULL);
    if (rc != 0) {
        log_error(e->c.log, "cannot start the ZAP handler on %s: %s (%s)", ZAP_ENDPOINT,
                  tally_strerror(rc), zmq_strerror(zmq_errno()));
        return rc;
    }
    e->zap_open = true;
    e->open_handles++;
    zap_set_logger(&e->zap, e->c.log);
    zap_set_admit(&e->zap, admit, e);
    if (!secured) {
        if (zap_open_socket(e->router_sock, ZAP_DOMAIN_REQUEST) != 0 ||
            zap_open_socket(e->pub_sock, ZAP_DOMAIN_PUBLISH) != 0) {
            log_error(e->c.log, "cannot set the sockets' ZAP domains: %s",
                      zmq_strerror(zmq_errno()));
            return TALLY_ESYS;
        }
        return 0;
    }
    if (zap_secure_socket(e->router_sock, e->c.server->sec, ZAP_DOMAIN_REQUEST) != 0 ||
        zap_secure_socket(e->pub_sock, e->c.server->sec, ZAP_DOMAIN_PUBLISH) != 0) {
        log_error(e->c.log, "cannot make the sockets CURVE servers: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

/* Watch both sockets' connections.  Before binding, so that no accept
 * goes uncounted. */
static int watch_peers(endpoints_t *e)
{
    if (peers_init(&e->router_peers, e->zctx, e->router_sock, "tallyd-request-monitor",
                   e->c.loop) != 0 ||
        (e->router_peers_open = true, peers_init(&e->pub_peers, e->zctx, e->pub_sock,
                                                 "tallyd-publish-monitor", e->c.loop) != 0)) {
        log_error(e->c.log, "cannot monitor the sockets' connections: %s",
                  zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    e->pub_peers_open = true;
    e->open_handles += 2;
    return 0;
}

/* An endpoint on a bracketed IPv6 address ("tcp://[::1]:7411"). */
static int is_ipv6(const char *ep)
{
    const char *sep = strstr(ep, "://");
    return sep != NULL && sep[3] == '[';
}

static int configure(endpoints_t *e)
{
    int rc = 0;
    /* ROUTER: replies to a vanished peer fail instead of vanishing, queues
     * are bounded, grossly oversized messages cut the connection (the
     * merely oversized get TOO_LARGE from request.c), dead peers are found
     * by ZMTP heartbeats. */
    void *r = e->router_sock, *p = e->pub_sock;
    /* An IPv6 address (tcp://[::1]:7411) binds only with ZMQ_IPV6.  Only
     * then: with it, libzmq reports IPv4 endpoints as IPv4-mapped IPv6
     * ([::ffff:127.0.0.1]), which WELCOME would hand to clients that may
     * not speak IPv6. */
    rc |= set_int(e, r, ZMQ_IPV6, is_ipv6(e->c.request), "ZMQ_IPV6");
    rc |= set_int(e, p, ZMQ_IPV6, is_ipv6(e->c.publish), "ZMQ_IPV6");
    rc |= set_int(e, r, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY");
    rc |= set_int(e, r, ZMQ_SNDHWM, (int)e->c.lim.max_reply_queue, "ZMQ_SNDHWM");
    rc |= set_int(e, r, ZMQ_RCVHWM, (int)endpoints_inbound_messages(&e->c.lim), "ZMQ_RCVHWM");
    rc |= set_int(e, r, ZMQ_LINGER, 2000, "ZMQ_LINGER");
    rc |= set_int(e, r, ZMQ_HEARTBEAT_IVL, 5000, "ZMQ_HEARTBEAT_IVL");
    rc |= set_int(e, r, ZMQ_HEARTBEAT_TIMEOUT, 15000, "ZMQ_HEARTBEAT_TIMEOUT");
    rc |= set_int(e, r, ZMQ_HANDSHAKE_IVL, ENDPOINTS_HANDSHAKE_MS, "ZMQ_HANDSHAKE_IVL");
    rc |= set_int64(e, r, ZMQ_MAXMSGSIZE, endpoints_frame_limit(e->c.lim.max_msg_bytes),
                    "ZMQ_MAXMSGSIZE");
    /* XPUB: a slow subscriber loses messages (and sees the gap) rather
     * than blocking us; VERBOSER shows every subscribe and unsubscribe,
     * and MANUAL leaves applying them to us (subscriptions.h). */
    rc |= set_int(e, p, ZMQ_SNDHWM, (int)e->c.lim.max_subscriber_queue, "ZMQ_SNDHWM");
    rc |= set_int(e, p, ZMQ_XPUB_VERBOSER, 1, "ZMQ_XPUB_VERBOSER");
    rc |= set_int(e, p, ZMQ_XPUB_MANUAL, 1, "ZMQ_XPUB_MANUAL");
    rc |= set_int(e, p, ZMQ_HANDSHAKE_IVL, ENDPOINTS_HANDSHAKE_MS, "ZMQ_HANDSHAKE_IVL");
    rc |= set_int(e, p, ZMQ_LINGER, 1000, "ZMQ_LINGER");
    rc |= set_int(e, p, ZMQ_HEARTBEAT_IVL, 5000, "ZMQ_HEARTBEAT_IVL");
    rc |= set_int(e, p, ZMQ_HEARTBEAT_TIMEOUT, 15000, "ZMQ_HEARTBEAT_TIMEOUT");
    rc |= set_int64(e, p, ZMQ_MAXMSGSIZE, 1024, "ZMQ_MAXMSGSIZE");
    return rc != 0 ? TALLY_ESYS : 0;
}

/* The descriptor limit (LimitNOFILE=) at which max_connections fits for
 * both sockets: the inverse of endpoints_fit_connections(). */
static int64_t fd_limit_for(int64_t max_connections)
{
    return 2 * max_connections + ENDPOINTS_FD_RESERVE;
}

/* Raise the descriptor limit, and fit max_connections under it: a warning
 * when that cuts it (the default included: the shipped unit's
 * LimitNOFILE= fits it, so a cut means a lower limit was set somewhere),
 * else the limit at info. */
static void fit_fd_limit(endpoints_t *e)
{
    e->fd_limit = endpoints_raise_fd_limit();
    e->asked_connections = e->c.lim.max_connections;
    int64_t fit = endpoints_fit_connections(e->c.lim.max_connections, e->fd_limit);
    if (fit < e->c.lim.max_connections) {
        log_warning(e->c.log,
                    "[limits] max_connections = %" PRId64 " does not fit in the process's "
                    "descriptor limit of %" PRId64 ": cut to %" PRId64 " connections per socket; "
                    "for %" PRId64 ", raise LimitNOFILE= (or ulimit -n) to %" PRId64,
                    e->c.lim.max_connections, e->fd_limit, fit, e->c.lim.max_connections,
                    fd_limit_for(e->c.lim.max_connections));
        e->c.lim.max_connections = fit;
    } else if (e->fd_limit > 0) {
        log_info(e->c.log,
                 "descriptor limit %" PRId64 ": max_connections = %" PRId64 " per socket fits",
                 e->fd_limit, e->c.lim.max_connections);
    }
}

int endpoints_open(endpoints_t *e, const endpoints_config_t *c)
{
    memset(e, 0, sizeof(*e));
    e->c = *c;
    fit_fd_limit(e);
    subscriptions_limits_t sl = subs_limits(&e->c.lim);
    subscriptions_init(&e->subs, &sl);
    e->zctx = zmq_ctx_new();
    if (!e->zctx) {
        log_error(c->log, "cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    e->router_sock = zmq_socket(e->zctx, ZMQ_ROUTER);
    e->pub_sock = zmq_socket(e->zctx, ZMQ_XPUB);
    if (!e->router_sock || !e->pub_sock) {
        log_error(c->log, "cannot create sockets: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    if (configure(e) != 0 || secure_sockets(e) != 0 || watch_peers(e) != 0)
        return TALLY_ESYS;
    if (bind_socket(e, e->router_sock, c->request, e->req_endpoint, sizeof(e->req_endpoint)) ||
        bind_socket(e, e->pub_sock, c->publish, e->pub_endpoint, sizeof(e->pub_endpoint)))
        return TALLY_ESYS;
    return 0;
}

/* Whether s is an IPv4 or IPv6 address. */
static bool is_ip(const char *s)
{
    struct in_addr a4;
    struct in6_addr a6;
    return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

/* A message's sender, described only when a line is logged. */
typedef struct peer {
    zmq_msg_t *msg;      /* a frame it sent */
    const char *user_id; /* its CURVE User-Id, or NULL */
    const void *rid;     /* its routing id, or NULL */
    size_t rid_len;
} peer_t;

/* log_set_peer()'s description of ctx, a peer_t: "peer ADDRESS" over
 * TCP, "peer pid P uid U" over ipc:// (libzmq's Peer-Address there is
 * "localhost:UID:GID:PID"), its CURVE User-Id when it has one, and the
 * routing id in hex. */
static void describe_peer(const void *ctx, char *buf, size_t cap)
{
    const peer_t *p = ctx;
    zmq_msg_t *msg = p->msg;
    const char *user_id = p->user_id;
    const void *rid = p->rid;
    size_t rid_len = p->rid_len;
    const char *addr = zmq_msg_gets(msg, "Peer-Address");
    const char *creds = addr != NULL && !is_ip(addr) ? strchr(addr, ':') : NULL;
    unsigned long uid, gid, pid;
    size_t n = 0;
    if (creds != NULL && sscanf(creds, ":%lu:%lu:%lu", &uid, &gid, &pid) == 3)
        n = (size_t)snprintf(buf, cap, "peer pid %lu uid %lu", pid, uid);
    else
        n = (size_t)snprintf(buf, cap, "peer %s",
                             addr != NULL && addr[0] != '\0' ? addr : "of unknown address");
    if (user_id != NULL && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, ", User-Id %s", user_id);
    const uint8_t *id = rid;
    if (rid_len > 0 && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, ", routing id ");
    for (size_t i = 0; i < rid_len && i < 16 && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%02x", id[i]);
    if (rid_len > 16 && n < cap)
        snprintf(buf + n, cap - n, "...");
}

static void on_router_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    endpoints_t *e = ctx;
    const void *body = nparts > 1 ? zmq_msg_data(&parts[1]) : NULL;
    size_t len = nparts > 1 ? zmq_msg_size(&parts[1]) : 0;
    const char *user_id = NULL;
    if (e->c.server->secured && nparts > 1)
        user_id = zmq_msg_gets(&parts[1], "User-Id");
    /* The connection's properties travel with the frames it sent, not
     * with the routing id the ROUTER socket put in front of them. */
    peer_t peer = {nparts > 1 ? &parts[1] : &parts[0], user_id, zmq_msg_data(&parts[0]),
                   zmq_msg_size(&parts[0])};
    log_set_peer(e->c.log, describe_peer, &peer);
    e->c.on.request(e->c.on.ctx, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), nparts - 1, body,
                    len, user_id);
    log_set_peer(e->c.log, NULL, NULL);
}

/* The number the ZAP handler gave the connection msg came through (0
 * when it has none). */
static uint64_t conn_of(zmq_msg_t *msg)
{
    const char *v = zmq_msg_gets(msg, ZAP_CONN_PROPERTY);
    return v != NULL ? strtoull(v, NULL, 10) : 0;
}

static void log_refusal(endpoints_t *e, int verdict, const uint8_t *prefix, size_t len,
                        uint64_t conn)
{
    char shown[80];
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < sizeof(shown); i++)
        n += (size_t)snprintf(
            shown + n, sizeof(shown) - n,
            prefix[i] >= 0x20 && prefix[i] < 0x7f && prefix[i] != '\\' ? "%c" : "\\x%02x",
            prefix[i]);
    log_limited(e->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                "refused subscription '%s%s' (%zu bytes) of subscriber connection %" PRIu64 ": %s",
                shown, n < len ? "..." : "", len, conn, subscriptions_verdict_name(verdict));
}

/* A subscribe or unsubscribe: applied (in manual mode ZMQ_SUBSCRIBE acts
 * on the connection the last message came from) if the connection may. */
static void on_pub_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    (void)nparts;
    endpoints_t *e = ctx;
    const uint8_t *data = zmq_msg_data(&parts[0]);
    size_t len = zmq_msg_size(&parts[0]);
    uint64_t conn = conn_of(&parts[0]);
    int v = subscriptions_on_message(&e->subs, conn, data, len);
    if (v == SUBS_SUBSCRIBE || v == SUBS_UNSUBSCRIBE) {
        int opt = v == SUBS_SUBSCRIBE ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE;
        if (zmq_setsockopt(e->pub_sock, opt, data + 1, len - 1) != 0)
            log_limited(e->c.log, clock_mono_ms(), LOG_LEVEL_WARNING,
                        "cannot apply a subscription: %s", zmq_strerror(zmq_errno()));
        e->c.on.subscription(e->c.on.ctx, data, len);
    } else if (v != SUBS_IGNORE) {
        e->c.stats->subscriptions_refused++;
        peer_t peer = {&parts[0], e->c.server->secured ? zmq_msg_gets(&parts[0], "User-Id") : NULL,
                       NULL, 0};
        log_set_peer(e->c.log, describe_peer, &peer);
        log_refusal(e, v, data + 1, len - 1, conn);
        log_set_peer(e->c.log, NULL, NULL);
    }
}

static void on_log_timer(uv_timer_t *t)
{
    endpoints_t *e = t->data;
    log_flush(e->c.log, clock_mono_ms());
}

/* The logger holds a summary (log_set_pending): written by the timer, so
 * that "repeated N more times" and "N similar messages suppressed" reach
 * the journal even when the burst was the last thing logged. */
static void log_pending(void *ctx, int64_t delay_ms)
{
    endpoints_t *e = ctx;
    if (e->log_timer_open && !uv_is_active((uv_handle_t *)&e->log_timer))
        uv_timer_start(&e->log_timer, on_log_timer, (uint64_t)delay_ms, 0);
}

int endpoints_start(endpoints_t *e)
{
    if (uv_timer_init(e->c.loop, &e->log_timer) == 0) {
        e->log_timer.data = e;
        e->log_timer_open = true;
        e->open_handles++;
        log_set_pending(e->c.log, log_pending, e);
    }
    int rc = zsock_init(&e->router, e->c.loop, e->router_sock, on_router_msg, e);
    if (rc == 0) {
        e->open_handles++;
        e->router_open = true;
        rc = zsock_init(&e->pub, e->c.loop, e->pub_sock, on_pub_msg, e);
        if (rc == 0) {
            e->open_handles++;
            e->pub_open = true;
        }
    }
    if (rc != 0)
        log_error(e->c.log, "cannot watch the sockets: %s", tally_strerror(rc));
    return rc;
}

static int send_router(void *ctx, const void *const *bufs, const size_t *lens, int nparts)
{
    endpoints_t *e = ctx;
    return zsock_send_buf(&e->router, bufs, lens, nparts);
}

static int send_pub(void *ctx, const void *const *bufs, const size_t *lens, int nparts)
{
    endpoints_t *e = ctx;
    return zsock_send_buf(&e->pub, bufs, lens, nparts);
}

sink_t endpoints_reply_sink(endpoints_t *e)
{
    return (sink_t){send_router, e};
}

sink_t endpoints_pub_sink(endpoints_t *e)
{
    return (sink_t){send_pub, e};
}

/* Unbinding a listening endpoint closes every connection accepted through
 * it; bind it again at once.  That is how a socket option reaches the
 * connections accepted from then on: ZeroMQ's listener copies the
 * socket's options when it is bound (zmq_setsockopt(3): options take
 * effect for subsequent binds), so a frame limit or a queue changed by a
 * reload would otherwise apply to no new connection.  Peers reconnect by
 * themselves, and each new handshake goes through ZAP with the keyring
 * now in force, so only revoked keys stay out.  Subscribers lose the
 * updates sent while they reconnect, see the gap in the sequence and take
 * a new snapshot; request clients resend what they have no answer for
 * (a submission is de-duplicated).  ZeroMQ closes the old listener on its
 * I/O thread: binding before that meets EADDRINUSE (tcp), or has the old
 * ipc listener remove the new socket file (libzmq before 4.3, and
 * wildcard ipc paths), so a socket monitor tells when it is gone.  The
 * loop waits for it: milliseconds, once per reload that needs it.  why
 * completes "cannot unbind EP ...". */
static void rebind(endpoints_t *e, bool router, const char *why)
{
    void *sock = router ? e->router_sock : e->pub_sock;
    peers_t *peers = router ? &e->router_peers : &e->pub_peers;
    const char *ep = router ? e->req_endpoint : e->pub_endpoint; /* as bound: a wildcard port
                                                                    stays the same */
    const char *who = router ? "request client" : "subscriber";
    int err = 0;
    peers_drain(peers);
    if (zmq_unbind(sock, ep) != 0) {
        log_error(e->c.log, "reload: cannot unbind %s %s: %s; restart tallyd for it", ep, why,
                  zmq_strerror(zmq_errno()));
    } else {
        if (!peers_wait_listener_closed(peers, REBIND_WAIT_MS))
            log_warning(e->c.log, "reload: cannot tell when %s is closed; binding it again anyway",
                        ep);
        /* The unbind closed every connection of the socket, and libzmq
         * reports no disconnection for those. */
        peers_forget_all(peers);
        int64_t deadline = clock_mono_ms() + REBIND_WAIT_MS;
        while (zmq_bind(sock, ep) != 0) {
            err = zmq_errno();
            if (err != EADDRINUSE || clock_mono_ms() >= deadline)
                break;
            uv_sleep(REBIND_STEP_MS);
            err = 0;
        }
        if (err != 0)
            log_error(e->c.log,
                      "reload: cannot bind %s again after closing it %s: %s; no %s can connect "
                      "until tallyd restarts",
                      ep, why, zmq_strerror(err), who);
    }
    zsock_kick(router ? &e->router : &e->pub);
}

void endpoints_set_limits(endpoints_t *e, const endpoints_limits_t *lim)
{
    /* The queues (high-water marks) keep the values of the start: setting
     * one makes libzmq 4.3.4 update every pipe of the socket and tell its
     * peer, which its I/O thread may have freed while closing the pipe (a
     * client disconnecting at the reload: valgrind saw the read after
     * free, and a crash was seen after endpoints_cut_subscribers()).
     * reload.c keeps them as settings that need a restart. */
    endpoints_limits_t old = e->c.lim;
    e->c.lim = *lim;
    e->c.lim.max_inbound_bytes = old.max_inbound_bytes;
    e->c.lim.max_reply_queue = old.max_reply_queue;
    e->c.lim.max_subscriber_queue = old.max_subscriber_queue;
    e->c.lim.max_connections = endpoints_fit_connections(lim->max_connections, e->fd_limit);
    /* As at the start, but only when the number changed: the start said
     * it already. */
    if (e->c.lim.max_connections < lim->max_connections &&
        lim->max_connections != e->asked_connections)
        log_warning(e->c.log,
                    "reload: [limits] max_connections = %" PRId64 " does not fit in the "
                    "process's descriptor limit of %" PRId64 ": cut to %" PRId64
                    " connections per socket; for %" PRId64 ", raise LimitNOFILE= (or ulimit -n) "
                    "to %" PRId64 " and restart tallyd",
                    lim->max_connections, e->fd_limit, e->c.lim.max_connections,
                    lim->max_connections, fd_limit_for(lim->max_connections));
    e->asked_connections = lim->max_connections;
    /* The frame limit reaches only connections accepted after a bind:
     * bind again (setting it touches no pipe). */
    if (lim->max_msg_bytes != old.max_msg_bytes) {
        int64_t v = endpoints_frame_limit(lim->max_msg_bytes);
        zmq_setsockopt(e->router_sock, ZMQ_MAXMSGSIZE, &v, sizeof(v));
        if (e->router_open)
            rebind(e, true, "to apply its new frame limit");
    }
    subscriptions_limits_t sl = subs_limits(&e->c.lim);
    subscriptions_set_limits(&e->subs, &sl);
}

size_t endpoints_connections(const endpoints_t *e)
{
    return e->router_peers.count;
}

uint64_t endpoints_connections_accepted(const endpoints_t *e)
{
    return e->router_peers.accepted_total;
}

size_t endpoints_subscribers(const endpoints_t *e)
{
    return e->pub_peers.count;
}

void endpoints_set_keyring(endpoints_t *e, const keyring_t *kr)
{
    e->c.keys = kr;
    if (e->zap_open)
        zap_set_keyring(&e->zap, kr);
}

void endpoints_cut_subscribers(endpoints_t *e)
{
    rebind(e, false, "to cut revoked subscribers off");
}

void endpoints_stats(const endpoints_t *e, void (*fn)(const char *name, int64_t value, void *ctx),
                     void *ctx)
{
    if (e->zap_open)
        zap_stats_foreach(&e->zap, fn, ctx);
}

static void handle_closed(endpoints_t *e)
{
    if (--e->open_handles == 0 && e->on_closed) {
        void (*cb)(endpoints_t *) = e->on_closed;
        e->on_closed = NULL;
        cb(e);
    }
}

static void on_zsock_closed(zsock_t *zs)
{
    endpoints_t *e = zs->ctx;
    handle_closed(e);
}

static void on_router_peers_closed(peers_t *p)
{
    handle_closed((endpoints_t *)(void *)((char *)p - offsetof(endpoints_t, router_peers)));
}

static void on_pub_peers_closed(peers_t *p)
{
    handle_closed((endpoints_t *)(void *)((char *)p - offsetof(endpoints_t, pub_peers)));
}

static void on_log_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_zap_closed(zap_t *z)
{
    endpoints_t *e = (endpoints_t *)(void *)((char *)z - offsetof(endpoints_t, zap));
    handle_closed(e);
}

void endpoints_close(endpoints_t *e, void (*cb)(endpoints_t *e))
{
    e->on_closed = cb;
    int pending = e->open_handles;
    if (e->log_timer_open) {
        log_set_pending(e->c.log, NULL, NULL);
        log_flush(e->c.log, clock_mono_ms());
        uv_close((uv_handle_t *)&e->log_timer, on_log_timer_closed);
        e->log_timer_open = false;
    }
    if (e->router_open)
        zsock_close(&e->router, on_zsock_closed);
    if (e->pub_open)
        zsock_close(&e->pub, on_zsock_closed);
    e->router_open = e->pub_open = false;
    if (e->router_peers_open)
        peers_close(&e->router_peers, on_router_peers_closed);
    if (e->pub_peers_open)
        peers_close(&e->pub_peers, on_pub_peers_closed);
    e->router_peers_open = e->pub_peers_open = false;
    if (e->zap_open) {
        zap_close(&e->zap, on_zap_closed);
        e->zap_open = false;
    }
    if (pending == 0 && cb) {
        e->on_closed = NULL;
        cb(e);
    }
}

void endpoints_free(endpoints_t *e)
{
    subscriptions_free(&e->subs);
    if (e->router_sock)
        zmq_close(e->router_sock);
    if (e->pub_sock)
        zmq_close(e->pub_sock);
    e->router_sock = e->pub_sock = NULL;
    if (e->zctx)
        zmq_ctx_term(e->zctx);
    e->zctx = NULL;
}
