/* sub_store.h - libtally (client/lib/, private): a table of tallies keyed
 * by topic, holding NUL-terminated copies of everything a tally_tally_t
 * points to. */
#ifndef TALLY_CLIENT_SUB_STORE_H
#define TALLY_CLIENT_SUB_STORE_H

#include <stddef.h>

#include "proto.h"
#include "tally.h"

/* One tally with its own storage; pub's pointers point into it, so an
 * entry must not be copied by value (use sub_entry_set). */
typedef struct sub_entry {
    tally_tally_t pub;
    char topic[PROTO_TOPIC_MAX + 1];
    char metric[PROTO_NAME_MAX + 1];
    char scope[PROTO_NAME_MAX + 1];
    char columns[PROTO_COLUMNS_MAX][PROTO_COLUMN_NAME_MAX + 1];
} sub_entry_t;

/* Copy a decoded tally (whose views point into a message buffer) into e. */
void sub_entry_set(sub_entry_t *e, const proto_tally_t *t);

/* Open-addressing hash table of entries; entries are allocated one by one
 * so their addresses stay put while the table grows.
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
