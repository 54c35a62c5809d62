/* subscriptions.h - what each subscriber connection may subscribe to.
 *
 * The publish socket runs in manual mode (ZMQ_XPUB_MANUAL): a subscription
 * a subscriber sends takes effect only when tallyd applies it.  This part
 * decides, per message, whether to apply it:
 *
 *   - a prefix no topic can begin with (proto_topic_prefix_possible) is
 *     refused, so random bytes cannot fill the socket's subscription trie;
 *   - each connection may hold at most max_count prefixes of at most
 *     max_bytes bytes together; more are refused;
 *   - an unsubscribe is applied only for a prefix the connection holds.
 *
 * Connections are told apart by the number the ZAP handler gives each
 * (zap.h's ZAP_CONN_PROPERTY).  ZeroMQ says nothing when a subscriber in
 * manual mode goes away (its subscriptions leave the socket silently), so
 * the part cannot know which connections are gone: it remembers at most
 * max_conns connections and forgets the one idle longest beyond that.  A
 * forgotten connection that is still there starts counting afresh.
 *
 * Pure bookkeeping: no sockets, no loop; the caller applies the verdict.
 */
#ifndef TALLYD_SUBSCRIPTIONS_H
#define TALLYD_SUBSCRIPTIONS_H

#include <stddef.h>
#include <stdint.h>

typedef struct subscriptions_limits {
    uint32_t max_count; /* prefixes per connection */
    uint32_t max_bytes; /* their bytes per connection */
    uint32_t max_conns; /* connections remembered */
} subscriptions_limits_t;

enum subscriptions_verdict {
    SUBS_SUBSCRIBE = 0,     /* apply: subscribe the prefix */
    SUBS_UNSUBSCRIBE = 1,   /* apply: unsubscribe the prefix */
    SUBS_IGNORE = 2,        /* nothing to apply: an unsubscribe of a prefix not held,
                               a message that is neither */
    SUBS_REFUSE_TOPIC = 3,  /* refused: no topic begins with the prefix */
    SUBS_REFUSE_COUNT = 4,  /* refused: the connection holds max_count prefixes */
    SUBS_REFUSE_BYTES = 5,  /* refused: the prefixes would pass max_bytes */
    SUBS_REFUSE_MEMORY = 6, /* refused: out of memory */
};

typedef struct subs_conn subs_conn_t;

/* The part; embed it, its fields are private. */
typedef struct subscriptions {
    subscriptions_limits_t lim;
    subs_conn_t *conns; /* records, in no order */
    size_t nconns, cap;
    uint32_t *index; /* open addressing on the connection number: record + 1, 0 = empty */
    size_t index_cap;
    uint64_t clock; /* ticks once per message: when each record was last used */
} subscriptions_t;

void subscriptions_init(subscriptions_t *s, const subscriptions_limits_t *lim);
void subscriptions_free(subscriptions_t *s);

/* New limits (a reload).  Prefixes held stay held; a connection over the
 * new limits can only unsubscribe until it is under them. */
void subscriptions_set_limits(subscriptions_t *s, const subscriptions_limits_t *lim);

/* The message msg[0..len) arrived from connection conn (0: unknown, all
 * such connections share one record): 1 then a prefix subscribes, 0 then
 * a prefix unsubscribes.  Returns an enum subscriptions_verdict; the
 * prefix to apply is msg + 1, len - 1. */
int subscriptions_on_message(subscriptions_t *s, uint64_t conn, const void *msg, size_t len);

/* Prefixes held, and connections remembered, across every connection. */
size_t subscriptions_count(const subscriptions_t *s);
size_t subscriptions_conns(const subscriptions_t *s);

/* Why a verdict refused, as a phrase for logs ("no topic begins with
 * it"); "accepted" for the others. */
const char *subscriptions_verdict_name(int verdict);

#endif
