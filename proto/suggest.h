/* suggest.h - "did you mean": the closest of a few known words to one that
 * was mistyped (part of tallycommon, shared by the daemon and the client).
 *
 * Distances are optimal string alignment distances over bytes: insertions,
 * deletions, substitutions and transpositions of two adjacent bytes each
 * count one edit.
 */
#ifndef TALLY_SUGGEST_H
#define TALLY_SUGGEST_H

#include <stddef.h>

/* Words longer than this many bytes are never compared: nobody mistypes a
 * word that long, and the table of distances stays on the stack. */
#define SUGGEST_WORD_MAX 64

/* A suggestion is at most this many edits away. */
#define SUGGEST_EDITS_MAX 2

/* The optimal string alignment distance of a and b (NUL-terminated), or
 * SIZE_MAX when either is longer than SUGGEST_WORD_MAX bytes. */
size_t suggest_distance(const char *a, const char *b);

/* The candidate (one of cands[0..n)) most likely meant by word, or NULL
 * when none is close enough.  A candidate is close enough when its
 * distance d from word is at most SUGGEST_EDITS_MAX and smaller than the
 * lengths of both word and candidate ("x" is two edits from "id", but
 * suggests nothing).  A word of two bytes or more that begins a candidate
 * counts as one edit away from it ("tim" for "timeout").  Of equally
 * close candidates the first wins.  Returns a pointer from cands. */
const char *suggest_pick(const char *word, const char *const *cands, size_t n);

#endif
