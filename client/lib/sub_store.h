/* sub_store.h - libtally (client/lib/, private): a table of tallies keyed
 * by topic, holding NUL-terminated copies of everything a tally_tally_t
 * points to. */
#ifndef TALLY_CLIENT_SUB_STORE_H
#define TALLY_CLIENT_SUB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "tally.h"

/* One tally with its own storage: pub's strings (metric, scope, topic and
 * the columns' names) follow it in text, each as long as it is, since an
 * entry per series of a province or a country adds up (fixed buffers for
 * the longest names took 1.1 KB an entry, 0.7 now).  pub points into
 * text, so an entry must not be copied by value. */
typedef struct sub_entry {
    tally_tally_t pub;
    uint32_t room; /* bytes in text */
    char text[];
} sub_entry_t;

/* e holding a copy of the decoded tally t (whose views point into a
 * message buffer): e itself when its text has room, else e moved to a
 * larger allocation (from none when e is NULL); free it with free().
 * Returns NULL, e untouched, when out of memory. */
sub_entry_t *sub_entry_put(sub_entry_t *e, const proto_tally_t *t);

/* Open-addressing hash table of entries; entries are allocated one by one
 * so their addresses stay put while the table grows (an entry moves only
 * when an update brings longer column names than it has room for).
 *
 * It is libtally's only hash table, and a specialised one on purpose: it
 * is on the subscriber's hot path (every live update goes through
 * sub_store_put), so it keys on the topic stored in the entry itself (no
 * copy of the key, no callback per probe) and keeps its load under one
 * half.  Cold lookups in the client are few and small (a handful of
 * option names, the columns of a table) and are linear searches. */
typedef struct sub_store {
    sub_entry_t **slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
} sub_store_t;

void sub_store_init(sub_store_t *s);

/* Free every entry and the slots; the store is empty and reusable. */
void sub_store_clear(sub_store_t *s);

/* Insert t or replace the entry with the same topic; *out (if not NULL)
 * gets the entry.  Returns 0 or TALLY_ENOMEM. */
int sub_store_put(sub_store_t *s, const proto_tally_t *t, sub_entry_t **out);

/* The entry of topic, or NULL. */
sub_entry_t *sub_store_find(const sub_store_t *s, const char *topic);

/* Call fn for every entry. */
void sub_store_foreach(const sub_store_t *s, tally_tally_cb fn, void *ctx);

/* Exchange the contents of two stores. */
void sub_store_swap(sub_store_t *a, sub_store_t *b);

#endif
