/* suggest.c - "did you mean" (see suggest.h). */
#include "suggest.h"

#include <stdint.h>
#include <string.h>

static size_t min2(size_t a, size_t b)
{
    return a < b ? a : b;
}

size_t suggest_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > SUGGEST_WORD_MAX || lb > SUGGEST_WORD_MAX)
        return SIZE_MAX;
    size_t d[SUGGEST_WORD_MAX + 1][SUGGEST_WORD_MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = min2(min2(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = min2(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    return d[la][lb];
}

const char *suggest_pick(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    size_t wl = strlen(word);
    for (size_t i = 0; i < n; i++) {
        size_t cl = strlen(cands[i]);
        size_t d = suggest_distance(word, cands[i]);
        /* A prefix is a likely slip too: getopt takes "--tim" for
         * "--timeout" unless several options start that way. */
        if (wl >= 2 && wl <= cl && strncmp(word, cands[i], wl) == 0 && d > 1)
            d = 1;
        if (d <= SUGGEST_EDITS_MAX && d < wl && d < cl && d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}
