/* checkpoint_impl.h - what checkpoint.c (the format, building, storing)
 * and checkpoint_load.c (checking and loading) share; private to them. */
#ifndef TALLYD_CHECKPOINT_IMPL_H
#define TALLYD_CHECKPOINT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint.h"

#define MAGIC          "TALLYCKP"
#define NSECTIONS      4
#define SECTION_HDR    12 /* u32 tag, u64 length */
#define TRAILER        4
#define DEDUP_REC      (PROTO_CLIENT_ID_LEN + 8 + 8 + DEDUP_WORDS * 8)
#define DEDUP_REC_V1   (PROTO_CLIENT_ID_LEN + 8 + DEDUP_WORDS * 8)
#define NAME_LEN       26 /* "state-" + 16 hex + ".ckp" */
#define DAMAGED_SUFFIX ".damaged"

extern const char checkpoint_tags[NSECTIONS][5]; /* the sections, in file order */

#define SAY(...)                                                                                   \
    do {                                                                                           \
        if (err != NULL && errlen > 0) {                                                           \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
        }                                                                                          \
    } while (0)

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* err[0] = '\0' when there is an err. */
static inline void clear(char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
}

/* The gen of a file named state-<16 lower-case hex>.ckp followed by
 * suffix exactly, or false. */
bool checkpoint_parse_name(const char *name, const char *suffix, uint64_t *gen);

/* Delete every state-*.ckp.tmp in dfd: a write that never finished. */
void checkpoint_remove_temps(int dfd);

/* The gens of the checkpoint files of dfd, in *gens (malloc()ed, sorted
 * from newest to oldest) and *n.  Returns 0, TALLY_EIO (errno set) or
 * TALLY_ENOMEM. */
int checkpoint_list_gens(int dfd, uint64_t **gens, size_t *n);

#endif
