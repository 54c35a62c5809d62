/* config_parse_impl.h - what config_parse.c (reading tallyd.conf line by
 * line, section by section) and config_parse_checks.c (the checks that
 * span the whole file once it is read) share: the parser's state and how
 * an error is recorded.  Not for use outside those two files.
 */
#ifndef TALLYD_CONFIG_PARSE_IMPL_H
#define TALLYD_CONFIG_PARSE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "intern.h"

/* The section ids of one name space seen so far, for duplicate detection
 * in files with many townships: the daemon's name table gives each id a
 * number, and refs[number - 1] the section that declared it (kind << 28 |
 * index + 1). */
typedef struct idindex {
    intern_t names;
    uint32_t *refs;
    size_t cap;
} idindex_t;

typedef struct parser {
    tallyd_config_t *cfg;
    const char *file;
    const char *text, *p, *end;      /* the whole text, and its unread part */
    int line;                        /* number of the line inih is reading */
    char lead;                       /* its first byte after blanks */
    const char *header, *header_end; /* a "[...]" line inih has just read */

    int sec;                            /* enum config_section of the section being read */
    char sec_text[CONFIG_LINE_MAX + 1]; /* header between the brackets */
    int sec_line;
    void *base; /* struct the current section's keys are stored in */
    int key_lines[CONFIG_SEC_COUNT][CONFIG_KEYS_MAX]; /* where each key was set */
    int section_lines[CONFIG_SEC_COUNT];              /* where singletons start */
    bool windows_listed;
    int window_lines[CONFIG_WINDOWS_MAX];
    idindex_t ids[2]; /* by id_ns() */

    bool failed;
    int failed_on; /* the line being read when it failed */
    char *err;
    size_t errlen;
    char shown[3][192]; /* printable copies of section, key and value */
} parser_t;

/* Record the first error as "FILE:LINE: [section] key: message".  line 0
 * leaves out the line, section/key NULL leave out those parts.  Later
 * errors are dropped: the first one is the one that explains the rest. */
void config_parse_fail(parser_t *ps, int line, const char *section, const char *key,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* s made printable for a message, in ps's buffer slot (0..2: section, key,
 * value), valid until the next call with that slot. */
const char *config_parse_show(parser_t *ps, int slot, const char *s);

/* The ref (kind << 28 | index + 1) of the section that declared id in name
 * space ns (0 townships, 1 metrics and ratios), or 0. */
uint32_t config_parse_index_find(const parser_t *ps, int ns, const char *id);

/* Close the section being read: its required keys, a metric's bounds. */
void config_parse_end_section(parser_t *ps);

/* Once the whole file is read: close its last section, then the checks
 * that span sections (config_parse_checks.c).  defaults_rc is what
 * config_defaults() returned. */
void config_parse_finish(parser_t *ps, int defaults_rc);

/* The line where key of section sec was set, 0 if it was not. */
static inline int config_parse_key_line(const parser_t *ps, int sec, const char *key)
{
    const char *k;
    for (size_t i = 0; (k = config_key_name(sec, i)) != NULL; i++)
        if (strcmp(k, key) == 0)
            return ps->key_lines[sec][i];
    return 0;
}

#endif
