/* ingest_check.h - tallyd (daemon/, private to the ingest module): the
 * checks of a decoded SUBMIT before it is journaled (ingest_check.c),
 * for ingest_submit() in ingest.c.  They read and, for the names of an
 * open catalog, add to the ingest part's tables; nothing here journals,
 * applies or answers. */
#ifndef TALLYD_INGEST_CHECK_H
#define TALLYD_INGEST_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

/* May the identity who (NULL: none admitted) submit for s->township?  In
 * a daemon without keys, always.  Writes the reason, naming the field
 * "township", into msg (len bytes) when not. */
bool ingest_check_authorized(const ingest_t *in, const keyring_identity_t *who,
                             const proto_submit_t *s, char *msg, size_t len);

/* The names and the engine's verdict on s, or a rejection: resolves the
 * township and every metric (new names in an open catalog, forgotten again
 * if anything fails), checks the time, each value against its metric's
 * bounds, the engine's limits, and last charges the township's rate.
 * Fills in->esamples.  Returns the township's id, or a negative code with
 * field (flen bytes) and msg (mlen bytes) filled in and *sample set to
 * the sample it is about (-1: none). */
int ingest_check_validate(ingest_t *in, const proto_submit_t *s, char *field, size_t flen,
                          char *msg, size_t mlen, int *sample);

/* Undo the names a rejected submission added: keep the first towns
 * townships and metrics metrics (the counts before it). */
void ingest_check_forget_names(ingest_t *in, uint32_t towns, uint32_t metrics);

/* Free the catalog's tables of display names and labels
 * (ingest_set_catalog). */
void ingest_check_free(ingest_t *in);

#endif
