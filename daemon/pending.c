/* pending.c - the FIFO of journaled, unapplied submissions (see pending.h). */
#include "pending.h"

#include <stdlib.h>
#include <string.h>

#include "tally_error.h"
#include "vec.h"

void pending_init(pending_t *p)
{
    memset(p, 0, sizeof(*p));
}

void pending_free(pending_t *p)
{
    free(p->v);
    free(p->smp);
    pending_init(p);
}

/* Make room for need more items at the tail of a FIFO array: move the
 * live ones to the front when that frees enough, else grow. */
static int make_room(void *arr, size_t elem, size_t *head, size_t *tail, size_t *cap, size_t need)
{
    char **a = arr;
    if (*tail + need <= *cap)
        return 0;
    if (*head > 0) {
        memmove(*a, *a + *head * elem, (*tail - *head) * elem);
        *tail -= *head;
        *head = 0;
        if (*tail + need <= *cap)
            return 0;
    }
    return vec_reserve(arr, cap, *tail + need, elem);
}

int pending_push(pending_t *p, const pending_entry_t *e, const engine_sample_t *samples)
{
    size_t old_shead = p->shead;
    int rc = make_room(&p->smp, sizeof(*p->smp), &p->shead, &p->stail, &p->scap, e->nsamples);
    /* Samples moved to the front (even if growing failed after): the
     * entries' indexes move with them. */
    if (p->shead != old_shead)
        for (size_t i = p->head; i < p->tail; i++)
            p->v[i].first -= (uint32_t)old_shead;
    if (rc != 0 || make_room(&p->v, sizeof(*p->v), &p->head, &p->tail, &p->cap, 1) != 0)
        return TALLY_ENOMEM;
    pending_entry_t *n = &p->v[p->tail++];
    *n = *e;
    n->first = (uint32_t)p->stail;
    memcpy(&p->smp[p->stail], samples, e->nsamples * sizeof(*samples));
    p->stail += e->nsamples;
    return 0;
}

void pending_pop(pending_t *p)
{
    if (p->head == p->tail)
        return;
    p->shead += p->v[p->head].nsamples;
    p->head++;
    if (p->head == p->tail) /* empty: start over at the front */
        p->head = p->tail = p->shead = p->stail = 0;
}

void pending_foreach(const pending_t *p, void (*fn)(const pending_entry_t *e, void *ctx), void *ctx)
{
    for (size_t i = p->head; i < p->tail; i++)
        fn(&p->v[i], ctx);
}
