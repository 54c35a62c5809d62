/* config_builtin.c - the catalog tallyd uses without one of its own: the
 * figures of a township's annual report (高观镇 2023, client/demo) with
 * their kinds, units and labels, and the report's three ratios.  The
 * metric catalog stays open: other well-formed names are accepted as
 * counters.  Declaring the report's gauges as gauges is what keeps a
 * township's grid counts from doubling when its report is pushed twice. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_error.h"

static const struct {
    const char *id;
    int kind;
    const char *unit, *label;
} builtin_metrics[] = {
    {"law_exam.takers", PROTO_KIND_COUNTER, "人", "法治理论考试参考人数"},
    {"law_exam.passed", PROTO_KIND_COUNTER, "人", "法治理论考试合格人数"},
    {"law_households.trained", PROTO_KIND_COUNTER, "户", "培育学法用法示范户"},
    {"handbooks.law", PROTO_KIND_COUNTER, "本", "发放《民法典》《宪法》宣传手册"},
    {"handbooks.other", PROTO_KIND_COUNTER, "份", "发放其他宣传手册"},
    {"grid.zones", PROTO_KIND_GAUGE, "个", "综治网格"},
    {"grid.notice_boards", PROTO_KIND_GAUGE, "块", "网格公示牌"},
    {"disputes.screened", PROTO_KIND_COUNTER, "件", "排查矛盾纠纷"},
    {"disputes.resolved", PROTO_KIND_COUNTER, "件", "化解矛盾纠纷"},
    {"talks.people_received", PROTO_KIND_COUNTER, "人次", "群众说事接访群众"},
    {"talks.disputes_handled", PROTO_KIND_COUNTER, "件", "群众说事就地处理矛盾纠纷"},
    {"talks.disputes_resolved", PROTO_KIND_COUNTER, "件", "群众说事化解矛盾纠纷"},
    {"petitions.leader_visits", PROTO_KIND_COUNTER, "人次", "领导干部下访接访群众"},
    {"incidents.major_petition", PROTO_KIND_COUNTER, "件", "重大信访上访事件"},
    {"safety.meetings", PROTO_KIND_COUNTER, "次", "安全生产暨自然灾害防治专题会议"},
    {"key_groups.assessments", PROTO_KIND_COUNTER, "次", "重点人群研判会"},
    {"meetings.special", PROTO_KIND_COUNTER, "次", "专题会议"},
    {"patrols", PROTO_KIND_COUNTER, "次", "走访排查"},
    {"drills.emergency", PROTO_KIND_COUNTER, "次", "消防安全地震应急救援演练"},
    {"banners", PROTO_KIND_COUNTER, "幅", "悬挂横幅"},
    {"slogans", PROTO_KIND_COUNTER, "条", "张贴标语"},
    {"safety.handouts", PROTO_KIND_COUNTER, "份", "发放安全生产宣传资料"},
};

/* From the township reports: 参考合格率, 矛盾纠纷化解率, 群众说事化解率. */
static const struct {
    const char *id, *num, *den, *label;
} builtin_ratios[] = {
    {"law_exam.pass_rate", "law_exam.passed", "law_exam.takers", "参考合格率"},
    {"disputes.resolution_rate", "disputes.resolved", "disputes.screened", "矛盾纠纷化解率"},
    {"talks.resolution_rate", "talks.disputes_resolved", "talks.disputes_handled",
     "群众说事化解率"},
};

#define N_METRICS (sizeof(builtin_metrics) / sizeof(builtin_metrics[0]))
#define N_RATIOS  (sizeof(builtin_ratios) / sizeof(builtin_ratios[0]))

int config_builtin_catalog(tallyd_config_t *cfg)
{
    config_metric_t *m = calloc(N_METRICS, sizeof(*m));
    config_ratio_t *r = calloc(N_RATIOS, sizeof(*r));
    if (m == NULL || r == NULL) {
        free(m);
        free(r);
        return TALLY_ENOMEM;
    }
    free(cfg->metrics);
    free(cfg->ratios);
    for (size_t i = 0; i < N_METRICS; i++) {
        snprintf(m[i].id, sizeof(m[i].id), "%s", builtin_metrics[i].id);
        m[i].kind = builtin_metrics[i].kind;
        snprintf(m[i].unit, sizeof(m[i].unit), "%s", builtin_metrics[i].unit);
        snprintf(m[i].label, sizeof(m[i].label), "%s", builtin_metrics[i].label);
        char why[160];
        (void)config_metric_bounds(&m[i], false, false, why, sizeof(why));
    }
    cfg->metrics = m;
    cfg->nmetrics = cfg->metrics_cap = N_METRICS;
    for (size_t i = 0; i < N_RATIOS; i++) {
        snprintf(r[i].id, sizeof(r[i].id), "%s", builtin_ratios[i].id);
        snprintf(r[i].numerator, sizeof(r[i].numerator), "%s", builtin_ratios[i].num);
        snprintf(r[i].denominator, sizeof(r[i].denominator), "%s", builtin_ratios[i].den);
        snprintf(r[i].label, sizeof(r[i].label), "%s", builtin_ratios[i].label);
    }
    cfg->ratios = r;
    cfg->nratios = cfg->ratios_cap = N_RATIOS;
    /* Declared, not closed: other names are still accepted as counters
     * (and a ratio's input indexes are for closed catalogs only). */
    for (size_t i = 0; i < N_RATIOS; i++)
        r[i].numerator_metric = r[i].denominator_metric = -1;
    cfg->catalog_closed_metrics = false;
    cfg->catalog_builtin = true;
    return 0;
}
