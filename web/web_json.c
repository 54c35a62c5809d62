/* web_json.c - tally-web (web/): tallies as JSON. */
#include "web_json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

void web_json_string(FILE *out, const char *s)
{
    text_json_string(out, s, strlen(s));
}

void web_json_tally(FILE *out, const tally_tally_t *t, bool with_seq)
{
    fputc('{', out);
    if (with_seq)
        fprintf(out, "\"seq\":%" PRIu64 ",", t->seq);
    fputs("\"metric\":", out);
    web_json_string(out, t->metric);
    fputs(",\"scope\":", out);
    web_json_string(out, t->scope[0] ? t->scope : "county");
    fputs(",\"kind\":", out);
    web_json_string(out, tally_kind_name(t->kind));
    fputs(",\"values\":{", out);
    for (unsigned i = 0; i < t->nvalues; i++) {
        if (i > 0)
            fputc(',', out);
        web_json_string(out, t->values[i].column);
        fputc(':', out);
        const tally_value_t *v = &t->values[i];
        text_json_value(out, v->present, t->kind == TALLY_KIND_RATIO, v->num, v->den);
    }
    fputs("}}", out);
}

static int cmp_tally(const void *a, const void *b)
{
    const tally_tally_t *x = *(const tally_tally_t *const *)a;
    const tally_tally_t *y = *(const tally_tally_t *const *)b;
    int c = strcmp(x->metric, y->metric);
    if (c != 0)
        return c;
    if ((x->scope[0] == '\0') != (y->scope[0] == '\0'))
        return x->scope[0] == '\0' ? -1 : 1;
    return strcmp(x->scope, y->scope);
}

void web_json_sort(const tally_tally_t **v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_tally);
}

int web_buf_open(web_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->f = open_memstream(&b->data, &b->len);
    return b->f ? 0 : TALLY_ENOMEM;
}

int web_buf_close(web_buf_t *b)
{
    bool failed = ferror(b->f) != 0;
    if (fclose(b->f) != 0)
        failed = true;
    b->f = NULL;
    if (failed) {
        free(b->data);
        b->data = NULL;
        b->len = 0;
        return TALLY_ENOMEM;
    }
    return 0;
}
