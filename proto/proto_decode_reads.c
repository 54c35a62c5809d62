/* proto_decode_reads.c - decoding the messages about the catalog, the
 * closed periods and the backups kept: CATALOG, TOWNSHIPS and BACKUP_LIST
 * (with their iterators), RANGE and PERIOD_CHANGED
 * (PERIOD shares the tally with UPDATE and stays in proto_decode.c).
 * proto_decode.c dispatches to them; the cursor is proto_reader.h's. */
#include "proto_reader.h"

#include <assert.h>
#include <inttypes.h>

/* ---- the catalog (PROTOCOL.md 8.17) -------------------------------------- */

static int dec_township(rd_t *r, uint32_t i, proto_township_t *t)
{
    fld_t f = {"townships", -1, (int32_t)i, NULL, 0};
    uint32_t n = 0;
    uint64_t type = 0;
    TRY(rd_array(r, &f, &n));
    if (n != 3)
        return proto_rd_fail(
            r->err, TALLY_EMALFORMED, &f,
            "a township is an array of %" PRIu32 " elements, expected 3 [id, name, type]", n);
    TRY(rd_name(r, &f, &t->id));
    TRY(proto_rd_text(r, &f, 0, PROTO_TOWNSHIP_NAME_MAX, &t->name));
    TRY(rd_u64(r, &f, 0, PROTO_TOWNSHIP_TYPE_MAX, &type));
    t->type = (uint8_t)type;
    return 0;
}

/* A ratio's operands are names; anything else has none. */
static int rd_operand(rd_t *r, const fld_t *f, uint8_t kind, proto_str_t *out)
{
    if (kind == PROTO_KIND_RATIO)
        return rd_name(r, f, out);
    TRY(rd_bytes(r, f, false, out));
    if (out->len != 0)
        return proto_rd_fail(
            r->err, TALLY_ERANGE, f,
            "a counter or gauge has no operands, got a string of %" PRIu32 " bytes", out->len);
    return 0;
}

static int dec_metric(rd_t *r, uint32_t i, proto_metric_info_t *e)
{
    fld_t f = {"metrics", -1, (int32_t)i, NULL, 0};
    uint32_t n = 0;
    uint64_t kind = 0, scale = 0;
    TRY(rd_array(r, &f, &n));
    if (n != 7)
        return proto_rd_fail(
            r->err, TALLY_EMALFORMED, &f,
            "a metric is an array of %" PRIu32
            " elements, expected 7 [id, kind, unit, scale, label, numerator, denominator]",
            n);
    TRY(rd_name(r, &f, &e->id));
    TRY(rd_u64(r, &f, 0, PROTO_KIND_RATIO, &kind));
    e->kind = (uint8_t)kind;
    TRY(proto_rd_text(r, &f, 0, PROTO_UNIT_MAX, &e->unit));
    TRY(rd_u64(r, &f, 0, PROTO_SCALE_MAX, &scale));
    e->scale = (uint8_t)scale;
    TRY(proto_rd_text(r, &f, 0, PROTO_LABEL_MAX, &e->label));
    TRY(rd_operand(r, &f, e->kind, &e->numerator));
    return rd_operand(r, &f, e->kind, &e->denominator);
}

/* One of the two lists: its header, checked against its total. */
static int rd_list(rd_t *r, const char *name, uint32_t total, uint32_t *n)
{
    TRY(rd_array(r, FLD(name), n));
    if (*n > total)
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD(name),
                             "%" PRIu32 " entries, more than the %" PRIu32 " the catalog holds", *n,
                             total);
    return 0;
}

/* Every entry is checked here, so that the iterators below can read them
 * again without failing. */
int proto_dec_catalog(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.catalog) *c = &m->u.catalog;
    uint64_t u = 0;
    uint32_t n = 0;
    proto_township_t t;
    proto_metric_info_t e;
    c->townships = NULL, c->metrics = NULL;
    TRY(rd_u64(r, FLD("catalog_id"), 0, UINT64_MAX, &c->catalog_id));
    TRY(rd_u64(r, FLD("townships_total"), 0, UINT32_MAX, &u));
    c->townships_total = (uint32_t)u;
    TRY(rd_u64(r, FLD("metrics_total"), 0, UINT32_MAX, &u));
    c->metrics_total = (uint32_t)u;
    c->entries = r->p;
    TRY(rd_list(r, "townships", c->townships_total, &n));
    for (uint32_t i = 0; i < n; i++)
        TRY(dec_township(r, i, &t));
    c->ntownships = n;
    TRY(rd_list(r, "metrics", c->metrics_total, &n));
    for (uint32_t i = 0; i < n; i++)
        TRY(dec_metric(r, i, &e));
    c->nmetrics = n;
    c->end = r->p;
    return 0;
}

void proto_catalog_iter(proto_catalog_iter_t *it, const proto_msg_t *msg)
{
    assert(msg->type == PROTO_CATALOG);
    it->p = msg->u.catalog.entries;
    it->end = msg->u.catalog.end;
    it->townships_left = msg->u.catalog.ntownships;
    it->metrics_left = msg->u.catalog.nmetrics;
    it->in_metrics = false;
    rd_t r = {it->p, it->p, it->end, NULL};
    uint32_t n = 0;
    if (rd_array(&r, FLD("townships"), &n) != 0)
        it->townships_left = it->metrics_left = 0; /* not a decoded CATALOG */
    it->p = r.p;
}

bool proto_catalog_next_township(proto_catalog_iter_t *it, proto_township_t *out)
{
    if (it->in_metrics || it->townships_left == 0)
        return false;
    rd_t r = {it->p, it->p, it->end, NULL};
    if (dec_township(&r, 0, out) != 0)
        return it->townships_left = it->metrics_left = 0, false;
    it->p = r.p;
    it->townships_left--;
    return true;
}

bool proto_catalog_next_metric(proto_catalog_iter_t *it, proto_metric_info_t *out)
{
    proto_township_t t;
    while (proto_catalog_next_township(it, &t))
        ;
    rd_t r = {it->p, it->p, it->end, NULL};
    if (!it->in_metrics) {
        uint32_t n = 0;
        if (rd_array(&r, FLD("metrics"), &n) != 0)
            return it->metrics_left = 0, false;
        it->in_metrics = true;
    }
    if (it->metrics_left == 0 || dec_metric(&r, 0, out) != 0)
        return it->metrics_left = 0, false;
    it->p = r.p;
    it->metrics_left--;
    return true;
}

/* ---- the townships that have tallies (PROTOCOL.md 8.25) ------------------ */

static int dec_town_name(rd_t *r, uint32_t i, proto_str_t *out)
{
    fld_t f = {"townships", -1, (int32_t)i, NULL, 0};
    return rd_name(r, &f, out);
}

/* Every name is checked here, so that the iterator can read them again
 * without failing. */
int proto_dec_townships(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.townships) *t = &m->u.townships;
    uint64_t u = 0;
    uint32_t n = 0;
    proto_str_t name;
    t->names = NULL;
    TRY(rd_u64(r, FLD("next"), 0, UINT32_MAX, &u));
    t->next = (uint32_t)u;
    t->entries = r->p;
    TRY(rd_array(r, FLD("townships"), &n));
    for (uint32_t i = 0; i < n; i++)
        TRY(dec_town_name(r, i, &name));
    t->n = n;
    t->end = r->p;
    return 0;
}

void proto_townships_iter(proto_townships_iter_t *it, const proto_msg_t *msg)
{
    assert(msg->type == PROTO_TOWNSHIPS);
    rd_t r = {msg->u.townships.entries, msg->u.townships.entries, msg->u.townships.end, NULL};
    uint32_t n = 0;
    it->left = rd_array(&r, FLD("townships"), &n) == 0 ? msg->u.townships.n : 0;
    it->p = r.p;
    it->end = msg->u.townships.end;
}

bool proto_townships_next(proto_townships_iter_t *it, proto_str_t *out)
{
    if (it->left == 0)
        return false;
    rd_t r = {it->p, it->p, it->end, NULL};
    if (dec_town_name(&r, 0, out) != 0)
        return it->left = 0, false;
    it->p = r.p;
    it->left--;
    return true;
}

/* ---- the backups kept (PROTOCOL.md 8.28) ---------------------------------- */

static int dec_backup_entry(rd_t *r, uint32_t i, proto_backup_entry_t *e)
{
    fld_t f = {"backups", -1, (int32_t)i, NULL, 0};
    uint32_t n = 0;
    uint64_t u = 0;
    TRY(rd_array(r, &f, &n));
    if (n != 4)
        return proto_rd_fail(r->err, TALLY_EMALFORMED, &f,
                             "a backup is an array of %" PRIu32
                             " elements, expected 4 [name, files, bytes, sums]",
                             n);
    TRY(proto_rd_text(r, &f, 0, PROTO_BACKUP_NAME_MAX, &e->name));
    if (!proto_backup_name_valid(e->name.ptr, e->name.len))
        return proto_rd_fail(r->err, TALLY_EBADNAME, &f,
                             "not a backup's name: backup-YYYYMMDDTHHMMSSZ, optionally followed "
                             "by -N (1 to 3 digits)");
    TRY(rd_u64(r, &f, 0, UINT32_MAX, &u));
    e->files = (uint32_t)u;
    TRY(rd_u64(r, &f, 0, UINT64_MAX, &e->bytes));
    TRY(rd_u64(r, &f, 0, 1, &u));
    e->sums = u == 1;
    return 0;
}

int proto_dec_backup_list(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.backup_list) *b = &m->u.backup_list;
    uint64_t u = 0;
    uint32_t n = 0;
    proto_backup_entry_t e;
    b->backups = NULL;
    TRY(proto_rd_text(r, FLD("dir"), 0, PROTO_PATH_MAX, &b->dir));
    TRY(rd_u64(r, FLD("total"), 0, UINT32_MAX, &u));
    b->total = (uint32_t)u;
    b->entries = r->p;
    TRY(rd_array(r, FLD("backups"), &n));
    if (n > PROTO_BACKUPS_MAX || n > b->total)
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD("backups"),
                             "%" PRIu32 " backups, more than %s (%" PRIu32 ")", n,
                             n > PROTO_BACKUPS_MAX ? "a list holds" : "the total says",
                             n > PROTO_BACKUPS_MAX ? (uint32_t)PROTO_BACKUPS_MAX : b->total);
    for (uint32_t i = 0; i < n; i++)
        TRY(dec_backup_entry(r, i, &e));
    b->n = n;
    b->end = r->p;
    return 0;
}

void proto_backups_iter(proto_backups_iter_t *it, const proto_msg_t *msg)
{
    assert(msg->type == PROTO_BACKUP_LIST);
    rd_t r = {msg->u.backup_list.entries, msg->u.backup_list.entries, msg->u.backup_list.end, NULL};
    uint32_t n = 0;
    it->left = rd_array(&r, FLD("backups"), &n) == 0 ? msg->u.backup_list.n : 0;
    it->p = r.p;
    it->end = msg->u.backup_list.end;
}

bool proto_backups_next(proto_backups_iter_t *it, proto_backup_entry_t *out)
{
    if (it->left == 0)
        return false;
    rd_t r = {it->p, it->p, it->end, NULL};
    if (dec_backup_entry(&r, 0, out) != 0)
        return it->left = 0, false;
    it->p = r.p;
    it->left--;
    return true;
}

/* ---- the closed periods ---------------------------------------------------- */

int proto_dec_range(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.range) *g = &m->u.range;
    uint64_t u = 0;
    uint32_t n = 0;
    TRY(rd_name(r, FLD("metric"), &g->metric));
    TRY(rd_scope(r, &g->scope));
    TRY(rd_u64(r, FLD("kind"), 0, PROTO_KIND_RATIO, &u));
    g->kind = (uint8_t)u;
    TRY(rd_u64(r, FLD("first"), 0, UINT32_MAX, &u));
    g->first = (uint32_t)u;
    TRY(rd_u64(r, FLD("total"), 1, UINT32_MAX, &u));
    g->total = (uint32_t)u;
    TRY(rd_array(r, FLD("points"), &n));
    if (n > PROTO_RANGE_CHUNK || g->first >= g->total || n > g->total - g->first)
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD("points"),
                             "%" PRIu32 " points from index %" PRIu32 " of %" PRIu32
                             " (at most %d per message, within the total)",
                             n, g->first, g->total, PROTO_RANGE_CHUNK);
    g->npoints = 0;
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"points", -1, (int32_t)i, NULL, 0};
        proto_value_t *v = &g->points[i];
        uint32_t two = 0;
        TRY(rd_array(r, &f, &two));
        if (two != 2)
            return proto_rd_fail(
                r->err, TALLY_EMALFORMED, &f,
                "point is an array of %" PRIu32 " elements, expected 2 [period, value]", two);
        TRY(proto_rd_text(r, &f, 1, PROTO_PERIOD_TEXT_MAX, &v->name));
        v->num = 0, v->den = 1;
        v->present = !is_nil(r);
        if (!v->present)
            continue;
        TRY(rd_value(r, &f, g->kind, v));
    }
    g->npoints = n;
    return 0;
}

int proto_dec_changed(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.period_changed) *c = &m->u.period_changed;
    uint32_t n = 0;
    TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &c->seq));
    TRY(rd_name(r, FLD("metric"), &c->metric));
    TRY(rd_scope(r, &c->scope));
    TRY(rd_array(r, FLD("periods"), &n));
    if (n < 1 || n > PROTO_CHANGED_MAX)
        return proto_rd_fail(r->err, n ? TALLY_ETOOMANY : TALLY_ERANGE, FLD("periods"),
                             "%" PRIu32 " periods, allowed 1..%d", n, PROTO_CHANGED_MAX);
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"periods", -1, (int32_t)i, NULL, 0};
        TRY(proto_rd_text(r, &f, 1, PROTO_PERIOD_TEXT_MAX, &c->periods[i]));
    }
    c->nperiods = n;
    return 0;
}
