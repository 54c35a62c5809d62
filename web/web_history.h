/* web_history.h - tally-web (web/): a period's tallies, or a span's, read
 * from tallyd for /api/v1/period, in parts when one answer cannot hold
 * them.
 *
 * tallyd bounds the series one PERIOD answer holds (PROTOCOL.md 8.18:
 * half its max_reply_queue, 2,048 by default) and refuses more with
 * TOO_LARGE, asking for a narrower prefix.  The wall asks for every
 * township's figures of a past year or of last year's same days at once
 * (u/town/), which a county of many townships or metrics exceeds: those
 * are then read township by township, each answer far below the bound.
 * Called on a worker thread: libtally's one-shot requests block.
 */
#ifndef TALLY_WEB_HISTORY_H
#define TALLY_WEB_HISTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "tally.h"

/* Read the tallies under prefix for period, a period name (2023,
 * 2023-Q4, 2023-12, 2023-12-31) or a span of days FROM..TO (SPAN_REQ,
 * whose one column is then named period, as a period's is named after
 * it), and hand each to cb.  Returns 0 or the code of libtally's request
 * (req's errbuf says why): TALLY_ETOOLARGE when one answer cannot hold
 * them. */
int web_history_read(const char *server, tally_request_t *req, const char *prefix,
                     const char *period, tally_tally_cb cb, void *ctx);

/* The most townships read one by one: each part is a request of its own
 * (a connection, a handshake), 1.6 ms a township on a 2-core VM (25 in
 * 40 ms), so that even the most still answer within a few seconds. */
#define WEB_HISTORY_SPLIT_MAX 2000

/* Whether prefix covers whole townships only ("", "u/" or "u/town/"), so
 * that its answer can be read in parts with web_history_read_split. */
bool web_history_splittable(const char *prefix);

/* The answer of web_history_read for a splittable prefix, read in parts:
 * the county's first ("u/county/", unless prefix is "u/town/"), then
 * "u/town/T/" for each township T of towns[0..n).  The tallies come in
 * that order.  Returns 0 or the first part's failure, as
 * web_history_read. */
int web_history_read_split(const char *server, tally_request_t *req, const char *prefix,
                           const char *period, const char *const *towns, size_t n,
                           tally_tally_cb cb, void *ctx);

#endif
