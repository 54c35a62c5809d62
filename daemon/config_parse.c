/* config_parse.c - read tallyd.conf (INI, through inih) into tallyd_config_t.
 *
 * inih's parser reads every line: next_line is its reader (the fgets of the
 * text) and on_key its handler.  Debian's libinih (55) is built with the
 * defaults of ini.h, and works like this:
 *   - the handler gets no line number; but inih calls the reader once per
 *     line and the handler before the next call, so the reader counts;
 *   - inih reads on after an error, so the reader stops it (returns NULL);
 *     inih's return value is left to its own syntax errors (no '=' or ':',
 *     no ']'), which are reported when they come before ours;
 *   - an indented line continues the previous value, a NUL byte ends a line
 *     and a line over 199 bytes comes in pieces: the reader refuses these
 *     (comments may be long: inih gets their start);
 *   - the handler hears of no header, and gets the section cut to 49 bytes:
 *     the reader notes a "[...]" line and, once inih has read it, begins the
 *     section from the whole header.
 * The handler validates each value as it arrives.  Checks that span
 * sections (a ratio's metrics, windows against buckets, catalog sizes) run
 * once the whole file has been read (config_parse_checks.c; the parser's
 * state they share is config_parse_impl.h's).
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config_parse_impl.h"
#include "intern.h"
#include "vec.h"

/* Calendar columns every counter tally carries besides its windows. */
static const char *const calendar_columns[] = {"today", "month", "quarter", "year", "total", NULL};

/* ---- messages ---------------------------------------------------------- */

static const char *show_n(parser_t *ps, int slot, const char *s, size_t len)
{
    return config_printable(ps->shown[slot], sizeof(ps->shown[slot]), s, len);
}

const char *config_parse_show(parser_t *ps, int slot, const char *s)
{
    return show_n(ps, slot, s, strlen(s));
}

void config_parse_fail(parser_t *ps, int line, const char *section, const char *key,
                       const char *fmt, ...)
{
    if (ps->failed)
        return;
    ps->failed = true;
    ps->failed_on = ps->line;
    if (ps->err == NULL || ps->errlen == 0)
        return;
    char where[512];
    int n = line > 0 ? snprintf(where, sizeof(where), "%s:%d: ", ps->file, line)
                     : snprintf(where, sizeof(where), "%s: ", ps->file);
    if (section != NULL && n >= 0 && (size_t)n < sizeof(where))
        n += snprintf(where + n, sizeof(where) - (size_t)n, "[%s]%s",
                      config_parse_show(ps, 0, section), key ? " " : ": ");
    if (key != NULL && n >= 0 && (size_t)n < sizeof(where))
        snprintf(where + n, sizeof(where) - (size_t)n, "%s: ", config_parse_show(ps, 1, key));
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errlen, "%s%s", where, what);
}

/* An error about a key of the section being read, on the current line. */
#define fail_key(ps, key, ...)                                                                     \
    config_parse_fail((ps), (ps)->line, (ps)->sec_text, (key), __VA_ARGS__)

/* ---- keys -------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void unknown_key(parser_t *ps, const char *name)
{
    const char *keys[CONFIG_KEYS_MAX];
    char known[768], hint[96];
    size_t o = 0, n = 0;
    known[0] = '\0';
    for (; n < CONFIG_KEYS_MAX && (keys[n] = config_key_name(ps->sec, n)) != NULL; n++)
        o += (size_t)snprintf(known + o, o < sizeof(known) ? sizeof(known) - o : 0, "%s%s",
                              n ? ", " : "", keys[n]);
    fail_key(ps, name, "unknown key%s (keys of [%s]: %s)",
             config_suggest(hint, sizeof(hint), name, keys, n), config_section_name(ps->sec),
             known);
}

/* A key of the current section other than a window. */
static void section_key(parser_t *ps, const char *name, const char *value)
{
    size_t i = 0;
    const char *key;
    while ((key = config_key_name(ps->sec, i)) != NULL && strcmp(key, name) != 0)
        i++;
    if (key == NULL) {
        unknown_key(ps, name);
        return;
    }
    int *seen = &ps->key_lines[ps->sec][i];
    if (*seen) {
        fail_key(ps, name, "set twice; first set on line %d", *seen);
        return;
    }
    *seen = ps->line;
    char why[CONFIG_PATH_MAX + 512];
    if (config_key_set(ps->sec, i, ps->base, value, why, sizeof(why)) != 0) {
        fail_key(ps, name, "%s", why);
        return;
    }
    /* Ratios are checked against the metrics once the file is read; keep
     * the lines for those messages. */
    if (ps->sec == CONFIG_SEC_RATIO && i < 2) {
        config_ratio_t *r = ps->base;
        *(i == 0 ? &r->numerator_line : &r->denominator_line) = ps->line;
    }
}

static bool window_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONFIG_WINDOW_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

/* A "NAME = DURATION" line of [windows] (or its "buckets" count). */
static void window_key(parser_t *ps, const char *name, const char *value)
{
    tallyd_config_t *cfg = ps->cfg;
    if (strcmp(name, "buckets") == 0) {
        section_key(ps, name, value);
        return;
    }
    if (!window_name_ok(name)) {
        fail_key(ps, name,
                 "not a window name (expected 1..%d of the characters A-Z a-z 0-9 _ . -, or "
                 "'buckets')",
                 CONFIG_WINDOW_NAME_MAX);
        return;
    }
    for (size_t i = 0; calendar_columns[i]; i++) {
        if (strcmp(name, calendar_columns[i]) == 0) {
            fail_key(ps, name, "'%s' is the name of a calendar column; choose another name", name);
            return;
        }
    }
    /* The first window listed replaces the default list. */
    if (!ps->windows_listed) {
        ps->windows_listed = true;
        cfg->nwindows = 0;
    }
    for (size_t i = 0; i < cfg->nwindows; i++) {
        if (strcmp(cfg->windows[i].name, name) == 0) {
            fail_key(ps, name, "window defined twice; first defined on line %d",
                     ps->window_lines[i]);
            return;
        }
    }
    if (cfg->nwindows == CONFIG_WINDOWS_MAX) {
        fail_key(ps, name,
                 "more than %d windows (a tally has %d columns and %d of them are calendar "
                 "periods)",
                 CONFIG_WINDOWS_MAX, PROTO_COLUMNS_MAX, PROTO_COLUMNS_MAX - CONFIG_WINDOWS_MAX);
        return;
    }
    int64_t ms = 0;
    int rc = config_parse_duration(value, &ms);
    if (rc != 0 || ms < CONFIG_WINDOW_MIN_MS || ms > CONFIG_WINDOW_MAX_MS) {
        fail_key(
            ps, name,
            "'%s' is not a window length (expected a whole number and a unit, such as 90m, 24h or "
            "7d, between 1s and 366d)",
            config_parse_show(ps, 2, value));
        return;
    }
    config_window_t *w = &cfg->windows[cfg->nwindows];
    memcpy(w->name, name, strlen(name) + 1);
    w->ms = ms;
    ps->window_lines[cfg->nwindows++] = ps->line;
}

/* inih's handler, for each "key = value" line.  inih's section is cut to 49
 * bytes; ps->sec_text holds the whole header. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parser_t *ps = user;
    (void)section;
    if (*name == '\0')
        config_parse_fail(ps, ps->line, NULL, NULL, "key name missing before '%c'", ps->lead);
    else if (ps->sec == CONFIG_SEC_NONE)
        config_parse_fail(
            ps, ps->line, NULL, name,
            "key outside of any section (value '%s'); put it under its section, such as "
            "[tallyd]",
            config_parse_show(ps, 2, value));
    else if (ps->sec == CONFIG_SEC_WINDOWS)
        window_key(ps, name, value);
    else
        section_key(ps, name, value);
    /* Not 0: inih would read on all the same, and count this line among its
     * own syntax errors. */
    return 1;
}

/* ---- sections ---------------------------------------------------------- */

/* Townships live in one name space, metrics and ratios share the other. */
static int id_ns(int kind)
{
    return kind == CONFIG_SEC_TOWNSHIP ? 0 : 1;
}

static const char *ref_id(const parser_t *ps, uint32_t ref, int *line)
{
    size_t i = (ref & 0x0FFFFFFFu) - 1;
    switch (ref >> 28) {
    case CONFIG_SEC_TOWNSHIP:
        *line = ps->cfg->townships[i].line;
        return ps->cfg->townships[i].id;
    case CONFIG_SEC_METRIC:
        *line = ps->cfg->metrics[i].line;
        return ps->cfg->metrics[i].id;
    default:
        *line = ps->cfg->ratios[i].line;
        return ps->cfg->ratios[i].id;
    }
}

static int index_init(parser_t *ps)
{
    int rc = intern_init(&ps->ids[0].names, INTERN_CAPACITY_MAX);
    return rc != 0 ? rc : intern_init(&ps->ids[1].names, INTERN_CAPACITY_MAX);
}

static void index_free(parser_t *ps)
{
    for (int ns = 0; ns < 2; ns++) {
        intern_free(&ps->ids[ns].names);
        free(ps->ids[ns].refs);
    }
}

/* The ref of id in name space ns, or 0. */
uint32_t config_parse_index_find(const parser_t *ps, int ns, const char *id)
{
    const idindex_t *x = &ps->ids[ns];
    int n = intern_find(&x->names, id, strlen(id));
    return n > 0 ? x->refs[n - 1] : 0;
}

/* Add the id of ref, which config_parse_index_find() did not find.
 * Returns 0 or TALLY_ENOMEM. */
static int index_add(parser_t *ps, uint32_t ref)
{
    int line;
    const char *id = ref_id(ps, ref, &line);
    idindex_t *x = &ps->ids[id_ns((int)(ref >> 28))];
    if (VEC_RESERVE(x->refs, x->cap, (size_t)intern_count(&x->names) + 1) != 0)
        return TALLY_ENOMEM;
    /* The id passed proto_name_check(): 1..INTERN_NAME_MAX bytes. */
    int n = intern_add(&x->names, id, strlen(id));
    if (n < 0)
        return n;
    x->refs[n - 1] = ref;
    return 0;
}

/* Report the required keys the section just read did not set. */
void config_parse_end_section(parser_t *ps)
{
    const char *key;
    for (size_t i = 0; (key = config_key_name(ps->sec, i)) != NULL; i++) {
        if (!config_key_required(ps->sec, i) || ps->key_lines[ps->sec][i])
            continue;
        char what[128];
        config_parse_fail(ps, ps->sec_line, ps->sec_text, key,
                          "required key is missing (expected %s)",
                          config_key_expect(ps->sec, i, what, sizeof(what)));
        return;
    }
    if (ps->sec == CONFIG_SEC_METRIC && ps->base != NULL) {
        int min_line = config_parse_key_line(ps, CONFIG_SEC_METRIC, "min");
        int max_line = config_parse_key_line(ps, CONFIG_SEC_METRIC, "max");
        char why[160];
        if (config_metric_bounds(ps->base, min_line > 0, max_line > 0, why, sizeof(why)) != 0)
            config_parse_fail(ps, min_line ? min_line : ps->sec_line, ps->sec_text,
                              min_line ? "min" : NULL, "%s", why);
    }
}

/* Append the entry of a [township|metric|ratio ID] section. */
static void begin_entry(parser_t *ps, const char *id)
{
    tallyd_config_t *cfg = ps->cfg;
    int ns = id_ns(ps->sec);
    uint32_t old = config_parse_index_find(ps, ns, id);
    if (old != 0) {
        int line;
        ref_id(ps, old, &line);
        if ((int)(old >> 28) == (int)ps->sec)
            config_parse_fail(ps, ps->line, ps->sec_text, NULL,
                              "duplicate section; first declared on line %d", line);
        else
            config_parse_fail(
                ps, ps->line, ps->sec_text, NULL,
                "id '%s' is already declared by [%s %s] on line %d; a metric and a ratio "
                "cannot share an id",
                config_parse_show(ps, 2, id), config_section_name((int)(old >> 28)),
                config_parse_show(ps, 1, id), line);
        return;
    }
    size_t index = 0;
    char *idfield = NULL;
    if (ps->sec == CONFIG_SEC_TOWNSHIP) {
        config_township_t *t = NULL;
        if (VEC_RESERVE(cfg->townships, cfg->townships_cap, cfg->ntownships + 1) == 0) {
            t = &cfg->townships[cfg->ntownships];
            memset(t, 0, sizeof(*t));
            t->line = ps->line;
            idfield = t->id;
            index = cfg->ntownships++;
            cfg->catalog_closed_townships = true;
        }
        ps->base = t;
    } else if (ps->sec == CONFIG_SEC_METRIC) {
        config_metric_t *m = NULL;
        if (VEC_RESERVE(cfg->metrics, cfg->metrics_cap, cfg->nmetrics + 1) == 0) {
            m = &cfg->metrics[cfg->nmetrics];
            memset(m, 0, sizeof(*m));
            m->line = ps->line;
            idfield = m->id;
            index = cfg->nmetrics++;
            cfg->catalog_closed_metrics = true;
        }
        ps->base = m;
    } else {
        config_ratio_t *r = NULL;
        if (VEC_RESERVE(cfg->ratios, cfg->ratios_cap, cfg->nratios + 1) == 0) {
            r = &cfg->ratios[cfg->nratios];
            memset(r, 0, sizeof(*r));
            r->line = ps->line;
            r->numerator_metric = r->denominator_metric = -1;
            idfield = r->id;
            index = cfg->nratios++;
        }
        ps->base = r;
    }
    if (idfield == NULL) {
        config_parse_fail(ps, 0, NULL, NULL, "out of memory");
        return;
    }
    memcpy(idfield, id, strlen(id) + 1);
    if (index_add(ps, ((uint32_t)ps->sec << 28) | (uint32_t)(index + 1)) != 0)
        config_parse_fail(ps, 0, NULL, NULL, "out of memory");
}

/* A "[...]" header: text[0..len) is what lies between the brackets. */
static void begin_section(parser_t *ps, const char *text, size_t len)
{
    config_parse_end_section(ps);
    if (ps->failed)
        return;
    while (len > 0 && is_space(*text))
        text++, len--;
    while (len > 0 && is_space(text[len - 1]))
        len--;
    memcpy(ps->sec_text, text, len);
    ps->sec_text[len] = '\0';
    ps->sec_line = ps->line;
    ps->sec = CONFIG_SEC_NONE;

    /* "township gaoguan": a kind word, then the id after blanks. */
    size_t wlen = 0;
    while (wlen < len && !is_space(text[wlen]))
        wlen++;
    char word[CONFIG_LINE_MAX + 1];
    memcpy(word, text, wlen);
    word[wlen] = '\0';
    const char *id = ps->sec_text + wlen;
    while (is_space(*id))
        id++;

    const char *names[CONFIG_SEC_COUNT];
    int kind = CONFIG_SEC_TALLYD;
    for (; kind < CONFIG_SEC_COUNT; kind++) {
        names[kind - 1] = config_section_name(kind);
        if (strcmp(names[kind - 1], word) == 0)
            break;
    }
    if (kind == CONFIG_SEC_COUNT) {
        char hint[96];
        config_parse_fail(
            ps, ps->line, ps->sec_text, NULL,
            "unknown section '%s'%s (expected tallyd, windows, limits, journal, security, history, "
            "township ID, metric ID or ratio ID)",
            config_parse_show(ps, 2, word),
            config_suggest(hint, sizeof(hint), word, names, CONFIG_SEC_COUNT - 1));
        return;
    }
    const char *kname = config_section_name(kind);
    bool has_id = config_section_has_id(kind);
    if (!has_id && *id) {
        config_parse_fail(ps, ps->line, ps->sec_text, NULL, "section [%s] takes no id (found '%s')",
                          kname, config_parse_show(ps, 2, id));
        return;
    }
    if (has_id && !*id) {
        config_parse_fail(ps, ps->line, ps->sec_text, NULL, "a %s section needs an id: [%s ID]",
                          kname, kname);
        return;
    }
    ps->sec = kind;
    memset(ps->key_lines[kind], 0, sizeof(ps->key_lines[kind]));
    ps->base = ps->cfg;
    if (!has_id) {
        if (ps->section_lines[kind]) {
            config_parse_fail(
                ps, ps->line, ps->sec_text, NULL,
                "section repeated; first declared on line %d (put all its keys there)",
                ps->section_lines[kind]);
            return;
        }
        ps->section_lines[kind] = ps->line;
        return;
    }
    int rc = proto_name_check(id, strlen(id));
    if (rc != 0) {
        config_parse_fail(
            ps, ps->line, ps->sec_text, NULL,
            "'%s' is not a valid id (%s; expected 1..%d bytes of UTF-8 without spaces, '/' or "
            "control characters)",
            config_parse_show(ps, 2, id),
            rc == TALLY_ETOOLONG ? "too long"
            : rc == TALLY_EUTF8  ? "not valid UTF-8"
                                 : "forbidden character",
            PROTO_NAME_MAX);
        return;
    }
    if (kind == CONFIG_SEC_TOWNSHIP && proto_township_reserved(id, strlen(id))) {
        config_parse_fail(ps, ps->line, ps->sec_text, NULL,
                          "'%s' is reserved: tally shows the county-wide tallies under it; give "
                          "the township another id",
                          id);
        return;
    }
    begin_entry(ps, id);
}

/* ---- lines ------------------------------------------------------------- */

/* A line of the text as tallyd sees it: text[0..len) without the newline;
 * b..e what is left once a BOM (on line 1) and blanks are taken off. */
typedef struct line {
    const char *text, *b, *e;
    size_t len;
} line_t;

/* The line at s, line number n; returns where the next one starts. */
static const char *cut_line(const parser_t *ps, const char *s, int n, line_t *l)
{
    const char *nl = memchr(s, '\n', (size_t)(ps->end - s));
    l->text = l->b = s;
    l->e = nl ? nl : ps->end;
    l->len = (size_t)(l->e - s);
    if (n == 1 && l->len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        l->b += 3;
    while (l->b < l->e && is_space(*l->b))
        l->b++;
    while (l->e > l->b && is_space(l->e[-1]))
        l->e--;
    return nl ? nl + 1 : ps->end;
}

/* A "[...]" line inih has read.  inih ends a header at the first ']' or at
 * an inline comment, and reports the second: the header is what lies
 * before the first ']'. */
static void on_header(parser_t *ps)
{
    const char *b = ps->header, *e = ps->header_end;
    ps->header = NULL;
    const char *close = memchr(b, ']', (size_t)(e - b));
    if (close == NULL)
        return;
    const char *after = close + 1;
    while (after < e && is_space(*after))
        after++;
    if (after < e && *after != ';' && *after != '#')
        config_parse_fail(ps, ps->line, NULL, NULL, "text after the section header: '%s'",
                          show_n(ps, 2, after, (size_t)(e - after)));
    else
        begin_section(ps, b + 1, (size_t)(close - b - 1));
}

/* inih's reader: the next line, counted and checked (see the top). */
static char *next_line(char *str, int num, void *stream)
{
    parser_t *ps = stream;
    if (ps->header != NULL)
        on_header(ps);
    if (ps->failed || ps->p >= ps->end)
        return NULL;
    line_t l;
    ps->p = cut_line(ps, ps->p, ++ps->line, &l);
    bool indented = l.b > l.text && is_space(l.b[-1]);
    ps->lead = l.b < l.e ? *l.b : '\0';
    bool comment = l.b == l.e || *l.b == ';' || *l.b == '#';
    size_t room = num > 0 ? (size_t)num - 1 : 0;

    if (memchr(l.text, '\0', l.len))
        config_parse_fail(ps, ps->line, NULL, NULL, "line holds a NUL byte (is this a text file?)");
    else if (!comment && indented)
        config_parse_fail(
            ps, ps->line, NULL, NULL,
            "line starts with whitespace; section and key lines must not be indented (an "
            "indented line would continue the previous value)");
    else if (!comment && (l.len > CONFIG_LINE_MAX || l.len > room))
        config_parse_fail(ps, ps->line, NULL, NULL, "line is %zu bytes long (expected at most %d)",
                          l.len, room < CONFIG_LINE_MAX ? (int)room : CONFIG_LINE_MAX);
    if (ps->failed)
        return NULL;
    if (!comment && *l.b == '[') {
        ps->header = l.b;
        ps->header_end = l.e;
    }
    size_t n = l.len < room ? l.len : room;
    memcpy(str, l.text, n);
    str[n] = '\0';
    return str;
}

/* inih's return value n: a line it could not read came before our first
 * mistake, if any. */
static void syntax_error(parser_t *ps, int n)
{
    line_t l;
    const char *s = ps->text;
    for (int i = 1; i <= n; i++)
        s = cut_line(ps, s, i, &l);
    ps->failed = false;
    if (n < 0) /* -2: inih could not allocate its line buffer */
        config_parse_fail(ps, 0, NULL, NULL, "out of memory");
    else if (*l.b == '[')
        config_parse_fail(ps, n, NULL, NULL, "section header '%s' has no closing ']'",
                          show_n(ps, 2, l.b, (size_t)(l.e - l.b)));
    else
        config_parse_fail(ps, n, NULL, NULL, "'%s' is neither '[section]' nor 'key = value'",
                          show_n(ps, 2, l.b, (size_t)(l.e - l.b)));
}

int config_parse_text(const char *text, size_t len, const char *name, tallyd_config_t *out,
                      char *err, size_t errlen)
{
    parser_t *ps = calloc(1, sizeof(*ps));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int defaults_rc = config_defaults(out);
    if (ps == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", name ? name : "<config>");
        return TALLY_ECONFIG;
    }
    ps->cfg = out;
    ps->file = name ? name : "<config>";
    ps->text = ps->p = text;
    ps->end = text + len;
    ps->err = err;
    ps->errlen = errlen;

    if (len > CONFIG_FILE_MAX) {
        config_parse_fail(ps, 0, NULL, NULL, "file is %zu bytes long (expected at most %u)", len,
                          CONFIG_FILE_MAX);
    } else if (index_init(ps) != 0) {
        config_parse_fail(ps, 0, NULL, NULL, "out of memory");
    } else {
        int rc = ini_parse_stream(next_line, ps, on_key, ps);
        if (rc != 0 && (!ps->failed || rc <= ps->failed_on))
            syntax_error(ps, rc);
        if (!ps->failed)
            config_parse_finish(ps, defaults_rc);
    }

    bool failed = ps->failed;
    index_free(ps);
    free(ps);
    if (failed) {
        config_free(out);
        config_defaults(out);
        return TALLY_ECONFIG;
    }
    return 0;
}
