// tally-web's wall display: follows /api/v1/stream (a snapshot, then
// conflated updates) and draws the county's figures for one column.
//
// URL parameters: column=today|month|quarter|year|total or yYYYY (a past
// year, from /api/v1/period; default: the last one chosen on this screen,
// else total); metrics=a,b,c (the table's figures, default the first six
// counters).  本月, 本季度 and 本年 show 同比 against the same days a year
// earlier (the county's on its cards, each township's in the chart), a
// past year against the year before.
"use strict";

const COLUMNS = { today: "今日", month: "本月", quarter: "本季度", year: "本年", total: "累计" };
// The two years before this one, read from tallyd's history: this one is
// tallyd's (its calendar zone, /api/v1/clock), the browser's until known.
let pastYears = [];
setPastYears(new Date().getFullYear());
// The catalog (a reload may change labels) and tallyd's zone (summer time
// changes its offset) are read again this often, and every RETRY_MS while
// tally-web has not got them from tallyd (a screen started before tallyd).
const CATALOG_EVERY_MS = 60000;
const CLOCK_EVERY_MS = 60000;
const RETRY_MS = 5000;
// A past year is read again when tallyd says closed periods changed
// (history_gen in the stream's messages), after a new snapshot, and at
// most this often otherwise (tallyd unreachable when it was read).
const PAST_RETRY_MS = 30000;
const PAST_MIN_GAP_MS = 1000; // a burst of late figures: one read a second
// 本月, 本季度 and 本年 hold the days so far: their 同比 is against the same
// days a year earlier (a span, /api/v1/period?period=FROM..TO); a past
// year's against the year before it.  Read again when those days change
// (every day), when tallyd says closed periods changed, and after a
// failure every PAST_RETRY_MS.
const YOY_COLUMNS = new Set(["month", "quarter", "year"]);
const UNSUPPORTED_RETRY_MS = 600000;
// The county's cards: 6 x 3 when they all fit; more take turns page by
// page (with the table's pages), 6 x 2 with a page indicator under them.
// A column with 同比 (本月 to 本年, a past year) has cards of 6 x 2 (pages
// of them when more): room for a 同比 line as legible as the figure.
const KPI_MAX = 18;
const KPI_PAGE_MAX = 12;
const RATIO_MAX = 3; // the ratios' box: more take turns likewise
const TABLE_METRICS_MAX = 6;
const TABLE_RATIOS_MAX = 2;
const STALE_AFTER_MS = 12000; // the server sends something every 5 s
const FLASH_MS = 2000;
const PAGE_MS = 10000; // a box with more than it holds shows page after page
const ROW_PX = 34; // a table row's height (app.css, td)
// The chart's township names and figures are set as large as the table's
// text (app.css, table), a bar's slot high enough for them never to
// touch; more townships than the chart holds take turns, page by page,
// with the table's pages.
const CHART_FONT = 21;
const CHART_ROW_PX = 34;

const params = new URLSearchParams(location.search);
const state = {
  tallies: new Map(), // "scope|metric" -> tally
  historyGen: null, // the stream's history_gen last seen
  stream: "", // tallyd's stream id, in digits: 64 bits, more than a JS number holds exactly
  seq: "",
  synced: false,
  tallyd: "", // tally-web's connection to tallyd: "up", "refused", "unreachable", ...
  staleSince: 0, // tally-web's figures stale since (its stale_since_ms), 0: current
  down: 0, // the figures shown are stale since, 0: they are current (drawStatus)
  open: false,
  lastMessage: 0,
  lastChange: 0, // when the figures shown were last current (tally-web's clock), 0: none yet
  column: pickColumn(),
  sort: { metric: null, asc: false },
  catalog: { metrics: new Map(), townships: new Map(), order: new Map() },
  shown: new Map(), // what each cell showed, for the change highlight
  flashed: new Map(), // cell key -> time it changed
  dirty: true,
  page: 0, // the table's page shown
  pages: 1,
  kpiPage: 0, // the cards' page shown
  kpiPages: 1,
  ratioPage: 0,
  ratioPages: 1,
  chartPage: 0, // the chart's page of the ranking shown
  chartPages: 1,
  clock: null, // tallyd's zone: { zone, utc_offset_s }, null: not known (yet)
};

// The years of the past-year columns, for `year` as this one (a year
// that had a button keeps its name: the column may still be shown).
function setPastYears(year) {
  pastYears = [1, 2].map((k) => String(year - k));
  for (const y of pastYears) COLUMNS["y" + y] = y + "年";
}

// The calendar date and time of instant ms where tallyd counts its
// periods (its zone, as /api/v1/clock told), else the browser's.
function calendarAt(ms) {
  if (state.clock) {
    const d = new Date(ms + state.clock.utc_offset_s * 1000);
    return { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), wd: d.getUTCDay(),
             h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds() };
  }
  const d = new Date(ms);
  return { y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(), wd: d.getDay(),
           h: d.getHours(), mi: d.getMinutes(), s: d.getSeconds() };
}

const pad2 = (n) => String(n).padStart(2, "0");

function timeText(c) {
  return pad2(c.h) + ":" + pad2(c.mi) + ":" + pad2(c.s);
}

function pickColumn() {
  const c = params.get("column") || localStorage.getItem("tally-web.column");
  return c && COLUMNS[c] ? c : "total";
}

// The same days a year earlier as column's so far (tallyd's date), or
// null for a column without 同比: 本年 on 6 December 2026 is
// "2025-01-01..2025-12-06" (29 February: the 28th); a past year's is
// the year before it, whole.
function yoySpan(column) {
  if (isPastYear(column)) {
    const y = Number(column.slice(1)) - 1;
    return y >= 2000 ? String(y) : null;
  }
  if (!YOY_COLUMNS.has(column)) return null;
  const c = calendarAt(Date.now());
  const y = c.y - 1;
  if (y < 2000) return null;
  const first = column === "month" ? c.mo : column === "quarter" ? Math.floor((c.mo - 1) / 3) * 3 + 1 : 1;
  const day = (m, d) => y + "-" + pad2(m) + "-" + pad2(d);
  return day(first, 1) + ".." + day(c.mo, c.mo === 2 && c.d === 29 ? 28 : c.d);
}

// The period tallyd names the live column's days by (its date): 今日
// "2026-12-08", 本月 "2026-12", 本季度 "2026-Q4", 本年 "2026"; null for
// 累计 and a past year.  Read from tallyd's history (curReaders) for a
// gauge's latest value set within those days, which the stream does not
// give (it gives a gauge's level only).
function currentPeriod(column) {
  if (!LEVEL_COLUMNS.has(column)) return null;
  const c = calendarAt(Date.now());
  if (c.y < 2000) return null;
  return column === "today" ? c.y + "-" + pad2(c.mo) + "-" + pad2(c.d)
    : column === "month" ? c.y + "-" + pad2(c.mo)
    : column === "quarter" ? c.y + "-Q" + (Math.floor((c.mo - 1) / 3) + 1) : String(c.y);
}

// ---- formatting -----------------------------------------------------------

const intFormat = new Intl.NumberFormat("zh-CN");

// Figures are integers, exact in 64 bits: tally-web writes them as JSON
// numbers, which JSON.parse alone rounds to a double's 53 bits.  Those
// beyond are read from their digits (the reviver's source text) as
// BigInt; a browser without source text access keeps the double.
function parseJSON(text) {
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && !Number.isSafeInteger(value) && context &&
    /^-?\d+$/.test(context.source) ? BigInt(context.source) : value);
}

// An integer of the feed: a number, or a BigInt beyond 2^53.
function isInt(x) {
  return typeof x === "bigint" || Number.isInteger(x);
}

// A metric's decimal scale s (PROTOCOL.md 10.6): its integer v stands for
// v / 10^s (12.5 hectares at scale 1 come as 125).  0 for a ratio, whose
// [num, den] carries its operands' scales already, and for a metric the
// catalog does not know.
function metricScale(id) {
  const m = state.catalog.metrics.get(id);
  return m && m.kind !== "ratio" && Number.isInteger(m.scale) && m.scale > 0 ? m.scale : 0;
}

// The integer v of a metric of scale s as the figure it stands for, with
// exactly s decimals and the thousands grouped, as tally get prints it
// (125 at scale 1: "12.5"; 420 at scale 2: "4.20"; -10 at scale 1:
// "-1.0").  From v's digits, not a division of doubles, so that
// 9223372036854775807 at scale 9 is 9,223,372,036.854775807.
function scaledText(v, s) {
  const n = BigInt(v);
  const digits = String(n < 0n ? -n : n).padStart(s + 1, "0");
  const whole = intFormat.format(BigInt(digits.slice(0, digits.length - s)));
  return (n < 0n ? "-" : "") + whole + (s > 0 ? "." + digits.slice(digits.length - s) : "");
}

// The integer v of a metric of scale s as a number, for a bar's length
// and ranking (a double: exact enough to draw, never printed).
function scaledNumber(v, s) {
  return Number(v) / 10 ** s;
}

// A past year's column: "y2025" (not "year", this year's).
function isPastYear(column) {
  return /^y\d{4}$/.test(column);
}

// A gauge (综治网格: how many there are) is a level, not a flow: the
// stream gives it in total only (PROTOCOL.md 10.5), and 今日 to 本年 show
// its level now, marked 最新.
const LEVEL_COLUMNS = new Set(["today", "month", "quarter", "year"]);

function showsLevel(t, column) {
  return !!t && t.kind === "gauge" && LEVEL_COLUMNS.has(column);
}

// The value of t in column: a live column of the stream, or a past year.
function valueOf(t, column) {
  if (isPastYear(column)) return historyValue(pastReaders, t, column.slice(1));
  return t.values[showsLevel(t, column) ? "total" : column];
}

function cellText(t, column) {
  if (!t) return "–";
  const v = valueOf(t, column);
  if (v === undefined || v === null) return "–";
  if (t.kind === "ratio") return percent(v);
  return isInt(v) ? scaledText(v, metricScale(t.metric)) : "–";
}

// t's value in the same days a year earlier as the column shown (yoySpan),
// undefined while not known or in a column without 同比.
function yoyValue(t) {
  const span = yoySpan(state.column);
  return t && span ? historyValue(yoyReaders, t, span) : undefined;
}

// A gauge's latest value set within the live column's days so far
// (currentPeriod; the county's: the sum over the townships that set one),
// null when none was, undefined while not known.
function inPeriodValue(t) {
  const period = currentPeriod(state.column);
  return t && period ? historyValue(curReaders, t, period) : undefined;
}

// 同比 of t (the county's or a township's) in the column shown, as
// { text, dir } (dir 1 up, -1 down, 0 level), or null when there is
// nothing to say.  A gauge in 本月 to 本年 shows its level now (最新),
// which may have been set years ago: its 同比 is like with like, as
// tally get --period --compare: its latest value within the column's
// days so far against its latest within the same days a year earlier,
// and says which figure it starts from (本年内 12 · 同比 ▲20.0%), so that
// the level beside it is not read as the figure compared.
function yoyOf(t) {
  if (!t) return null;
  const level = showsLevel(t, state.column);
  const now = level ? inPeriodValue(t) : valueOf(t, state.column), then = yoyValue(t);
  if (now === undefined || now === null || then === undefined || then === null) return null;
  if (level && isInt(now) && isInt(then)) {
    const y = yoyText(t, now, then);
    return { dir: y.dir, text: COLUMNS[state.column] + "内 " + scaledText(now, metricScale(t.metric)) +
             " · " + y.text };
  }
  return yoyText(t, now, then);
}

// 同比 of t's value now against then, as yoyOf says it.
function yoyText(t, now, then) {
  if (t.kind === "ratio") {
    if (ratioTenths(now) === null || ratioTenths(then) === null) return null;
    // Percentage points between the two percentages as printed, each
    // rounded to one decimal: 93.1% against 92.3% is +0.8, which whoever
    // reads the wall can check, though the exact difference (93.05 -
    // 92.34 = 0.71) would round to 0.7.
    const pp = ratioTenths(now) - ratioTenths(then);
    const dir = pp === 0n ? 0 : pp > 0n ? 1 : -1;
    return { dir, text: "同比 " + (dir ? (dir > 0 ? "+" : "") + tenthsText(pp) + " 个百分点" : "持平") };
  }
  if (!isInt(now) || !isInt(then)) return null;
  // A percentage: the same whatever the metric's scale.
  const was = BigInt(then);
  if (was === 0n)
    return { dir: 0, text: BigInt(now) === 0n ? "同比 持平" : "去年同期 " + scaledText(0, metricScale(t.metric)) };
  const pct = tenthsOf((BigInt(now) - was) * 1000n, was < 0n ? -was : was);
  const dir = pct === 0n ? 0 : pct > 0n ? 1 : -1;
  return { dir, text: "同比 " + (dir ? (dir > 0 ? "▲" : "▼") + tenthsText(pct < 0n ? -pct : pct) + "%" : "持平") };
}

// The 同比 line of a card, when there is one.
function yoyLine(t, key) {
  const y = yoyOf(t);
  if (!y) return null;
  const el = document.createElement("div");
  el.className = "yoy";
  el.dataset.dir = String(y.dir);
  const figure = (v) => cellText({ metric: t.metric, kind: t.kind, values: { v } }, "v");
  el.title = (showsLevel(t, state.column) ? COLUMNS[state.column] + "内（" + currentPeriod(state.column) +
              "）最新值：" + figure(inPeriodValue(t)) + "；" : "") +
    "去年同期（" + yoySpan(state.column) + "）：" + figure(yoyValue(t));
  show(el, key, y.text);
  // A gauge's (本年内 12 · 同比 ▲20.0%): the figure it starts from and its
  // 同比 each a line of its own on a card (app.css), the text the same.
  const parts = y.text.split(" · ");
  if (parts.length === 2) {
    const sep = document.createElement("span");
    sep.className = "sep";
    sep.textContent = " · ";
    const line = (text) => {
      const span = document.createElement("span");
      span.textContent = text;
      return span;
    };
    el.replaceChildren(line(parts[0]), sep, line(parts[1]));
  }
  return el;
}

// Percentages are rounded as tally's other outputs round them (tally(1):
// half up, away from zero, from the integers): in binary floating point
// 23/80 = 0.2875 times 100 is 28.749999..., which toFixed(1) showed as
// 28.7% where tally get and the report say 28.8%.  n / d in tenths, from
// integers (BigInt: the products of two figures may pass 2^53); d != 0.
function tenthsOf(n, d) {
  let a = BigInt(n), b = BigInt(d);
  if (b < 0n) { a = -a; b = -b; }
  const neg = a < 0n;
  const q = ((neg ? -a : a) * 2n + b) / (2n * b);
  return neg ? -q : q;
}

// Tenths as text: -12 -> "-1.2".
function tenthsText(t) {
  const abs = t < 0n ? -t : t;
  return (t < 0n ? "-" : "") + String(abs / 10n) + "." + String(abs % 10n);
}

// A ratio's value ({num, den}) in tenths of a percent, null without one.
function ratioTenths(v) {
  if (!v || !isInt(v.num) || !isInt(v.den) || BigInt(v.den) === 0n) return null;
  return tenthsOf(BigInt(v.num) * 1000n, v.den);
}

function percent(v) {
  const t = ratioTenths(v);
  return t === null ? "–" : tenthsText(t) + "%";
}

// t's value in column as a number to rank by, -Infinity without one (no
// figure, or a ratio over 0).
function numeric(t, column) {
  if (!t) return -Infinity;
  const v = valueOf(t, column);
  if (v === undefined || v === null) return -Infinity;
  if (t.kind === "ratio") return ratioTenths(v) === null ? -Infinity : Number(v.num) / Number(v.den);
  return isInt(v) ? scaledNumber(v, metricScale(t.metric)) : -Infinity;
}

function metricLabel(id) {
  const m = state.catalog.metrics.get(id);
  return m && m.label ? m.label : id;
}

function metricUnit(id) {
  const m = state.catalog.metrics.get(id);
  return m && m.unit ? m.unit : "";
}

function townLabel(id) {
  const t = state.catalog.townships.get(id);
  return t && t.label ? t.label : id;
}

// Townships by their names as shown, in Chinese order (pinyin: 巴山镇,
// 北屏乡, 东安镇 ...); by id where the catalog names none.
const nameCollator = new Intl.Collator("zh");

function townOrder(a, b) {
  return nameCollator.compare(townLabel(a), townLabel(b)) || (a < b ? -1 : a > b ? 1 : 0);
}

function metricOrder(a, b) {
  const oa = state.catalog.order.has(a) ? state.catalog.order.get(a) : 1e9;
  const ob = state.catalog.order.has(b) ? state.catalog.order.get(b) : 1e9;
  return oa !== ob ? oa - ob : a < b ? -1 : a > b ? 1 : 0;
}

// ---- the picture ------------------------------------------------------------

function county(kindTest) {
  const out = [];
  for (const t of state.tallies.values())
    if (t.scope === "county" && kindTest(t.kind)) out.push(t);
  out.sort((x, y) => metricOrder(x.metric, y.metric));
  return out;
}

// Every township: those the catalog declares (a closed list, so that who
// has not reported shows) and those with figures.
function townships() {
  const names = new Set(state.catalog.townships.keys());
  for (const t of state.tallies.values()) if (t.scope !== "county") names.add(t.scope);
  return [...names];
}

// The townships with a figure in the column shown: one of its counters
// other than 0 there, or a gauge set within it.  tallyd gives every
// series that exists a value in every live column and period (a counter
// 0, where the township reported nothing then), so a value alone says
// nothing.  A counter whose figures there sum to 0 (a correction taking
// back a figure) counts as not reported: nothing stands in that column.
// A gauge in 累计 counts (it was set once); in 今日 to 本年, when set
// within the column's days (curReaders; until they are read, or should
// they be refused, a gauge counts); in a past year when set then.
// Ratios follow their operands.  A past year's come from tallyd's
// history: until it is read (or should it be refused), those with live
// figures count as having some.
function townsWithFigures() {
  const out = new Set();
  const column = state.column;
  const past = isPastYear(column);
  if (past && pastReaders[1].period !== column.slice(1)) {
    for (const t of state.tallies.values()) if (t.scope !== "county") out.add(t.scope);
    return out;
  }
  const period = currentPeriod(column);
  const setWithin = !past && period && curReaders[1].period === period;
  for (const t of state.tallies.values()) {
    if (t.scope === "county" || out.has(t.scope)) continue;
    let v;
    if (t.kind === "gauge") {
      v = setWithin ? historyValue(curReaders, t, period) : valueOf(t, column);
      if (v !== undefined && v !== null) out.add(t.scope);
    } else if (t.kind === "counter") {
      v = valueOf(t, column);
      // (null: a sum beyond int64, of figures all the same)
      if (v === null || (isInt(v) && BigInt(v) !== 0n)) out.add(t.scope);
    }
  }
  return out;
}

// A metric's kind (counter, gauge, ratio) from the catalog, else from a
// tally of it; "" when neither knows it.
function metricKind(id) {
  const m = state.catalog.metrics.get(id);
  if (m && m.kind) return m.kind;
  for (const t of state.tallies.values()) if (t.metric === id) return t.kind;
  return "";
}

function get(scope, metric) {
  return state.tallies.get(scope + "|" + metric);
}

// A metric of ?metrics= as given: its id, or the id whose catalog label it
// is (化解矛盾纠纷 for disputes.resolved), as the command line takes them.
function metricId(name) {
  if (state.catalog.metrics.has(name)) return name;
  for (const [id, m] of state.catalog.metrics) if (m.label === name) return id;
  return name;
}

// Whether any tally or the catalog knows metric id.
function knownMetric(id) {
  if (state.catalog.metrics.has(id)) return true;
  for (const t of state.tallies.values()) if (t.metric === id) return true;
  return false;
}

function tableMetrics() {
  const wanted = (params.get("metrics") || "").split(",").filter((s) => s).map(metricId);
  if (wanted.length) return wanted;
  // The figures most townships report first (a county where only a few
  // report some figure would otherwise see a table of dashes), then the
  // catalog's order; it settles once the townships have reported.
  const reporting = new Map();
  for (const t of state.tallies.values())
    if (t.scope !== "county") reporting.set(t.metric, (reporting.get(t.metric) || 0) + 1);
  const byReporting = (list) =>
    list.map((t) => t.metric).sort((a, b) => (reporting.get(b) || 0) - (reporting.get(a) || 0) || metricOrder(a, b));
  const counters = byReporting(county((k) => k !== "ratio")).slice(0, TABLE_METRICS_MAX);
  const ratios = byReporting(county((k) => k === "ratio")).slice(0, TABLE_RATIOS_MAX);
  return counters.concat(ratios);
}

// ---- drawing ----------------------------------------------------------------

// Mark el as changed (the highlight) when its text differs from last time.
function show(el, key, text) {
  const now = Date.now();
  const before = state.shown.get(key);
  if (before !== undefined && before !== text) state.flashed.set(key, now);
  state.shown.set(key, text);
  el.textContent = text;
  const at = state.flashed.get(key);
  if (at !== undefined && now - at < FLASH_MS) {
    el.classList.add("changed");
    el.style.animationDelay = -(now - at) + "ms";
  } else {
    el.classList.remove("changed");
    state.flashed.delete(key);
  }
}

// The pages of n items, at most max on one, as even as they go (22 cards
// on 12 at most: two pages of 11, not 12 and 10): { pages, per }.
function paging(n, max) {
  const pages = Math.max(1, Math.ceil(n / max));
  return { pages, per: Math.max(1, Math.ceil(n / pages)) };
}

// A paged box's indicator: a dot for each page, the one shown lit, and
// "1/2" beside them.  A dot clicked shows its page (pick(i)), for a whole
// PAGE_MS.
function pager(page, pages, what, pick) {
  const p = document.createElement("div");
  p.className = "pager";
  p.title = what + "：第 " + (page + 1) + "/" + pages + " 页，每 " + PAGE_MS / 1000 + " 秒翻页";
  for (let i = 0; i < pages; i++) {
    const dot = document.createElement("i");
    if (i === page) dot.className = "on";
    dot.addEventListener("click", () => {
      pick(i);
      turnPagesEvery(PAGE_MS);
      state.dirty = true;
    });
    p.append(dot);
  }
  const text = document.createElement("span");
  text.textContent = page + 1 + "/" + pages;
  p.append(text);
  return p;
}

function drawKpis() {
  const box = document.getElementById("kpis");
  const all = county((k) => k !== "ratio");
  // Every figure shows: more than the 6 x 3 cards (6 x 2 with 同比) take
  // turns, with the table's pages.
  const tall = yoySpan(state.column) !== null;
  const max = tall ? KPI_PAGE_MAX : KPI_MAX;
  const paged = all.length > max;
  const { pages, per } = paged ? paging(all.length, KPI_PAGE_MAX) : { pages: 1, per: max };
  state.kpiPages = pages;
  if (state.kpiPage >= pages) state.kpiPage = 0;
  const list = all.slice(state.kpiPage * per, state.kpiPage * per + per);
  box.classList.toggle("paged", paged);
  box.classList.toggle("tall", tall);
  box.replaceChildren();
  for (const t of list) {
    const card = document.createElement("div");
    card.className = "kpi";
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = metricLabel(t.metric);
    label.title = t.metric;
    const line = document.createElement("div");
    const value = document.createElement("span");
    value.className = "value";
    value.dataset.metric = t.metric;
    show(value, "kpi|" + t.metric + "|" + state.column, cellText(t, state.column));
    line.appendChild(value);
    const unit = metricUnit(t.metric);
    if (unit) {
      const u = document.createElement("span");
      u.className = "unit";
      u.textContent = unit;
      line.appendChild(u);
    }
    if (showsLevel(t, state.column)) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "最新";
      tag.title = "存量指标：显示当前最新值";
      line.appendChild(tag);
    }
    line.className = "line";
    card.append(label, line);
    const yoy = yoyLine(t, "kpi-yoy|" + t.metric + "|" + state.column);
    if (yoy) card.append(yoy);
    box.appendChild(card);
    // A long figure set smaller rather than cut (its unit too, when the
    // figure alone cannot give enough room).
    fitWidth(line, value, 12);
    for (const el of line.querySelectorAll(".unit, .tag")) fitWidth(line, el, 10);
    // (a gauge's 同比 names the figure it starts from: 本季度内 1,234 · 同比 ▲20.0%,
    // on two lines)
    if (yoy) fitWidth(yoy, yoy, 14);
  }
  if (paged)
    box.appendChild(pager(state.kpiPage, pages, "全县指标 " + all.length + " 项", (i) => { state.kpiPage = i; }));
}

// Shrink el's font until box's content fits its width (a figure of many
// digits on a card made for six, 9,223,372,036.854775807), down to min
// px: at once by the share that does not fit, then a pixel at a time.
function fitWidth(box, el, min) {
  let size = parseFloat(getComputedStyle(el).fontSize);
  while (box.scrollWidth > box.clientWidth && size > min) {
    size = Math.max(min, Math.min(size - 1, Math.floor(size * box.clientWidth / box.scrollWidth)));
    el.style.fontSize = size + "px";
  }
}

// A table cell's figure whole, never cut with an ellipsis: set smaller
// (to 12 px), and, should it still not fit its column (888,888,888,888 in
// a column of eight), on two or three lines, broken after its commas,
// smaller still, within the row's height.
function fitCell(td) {
  fitWidth(td, td, 12);
  if (td.scrollWidth <= td.clientWidth) return;
  const high = td.clientHeight;
  const text = td.textContent;
  td.replaceChildren();
  text.split(/(?<=,)/).forEach((part, i) => {
    if (i) td.append(document.createElement("wbr"));
    td.append(part);
  });
  td.classList.add("wrap");
  let size = 12;
  while ((td.scrollWidth > td.clientWidth || td.clientHeight > high) && size > 7)
    td.style.fontSize = --size + "px";
}

function drawRatios() {
  const box = document.getElementById("ratios");
  const all = county((k) => k === "ratio");
  const { pages, per } = paging(all.length, RATIO_MAX);
  state.ratioPages = pages;
  if (state.ratioPage >= pages) state.ratioPage = 0;
  box.replaceChildren();
  for (const t of all.slice(state.ratioPage * per, state.ratioPage * per + per)) {
    const r = document.createElement("div");
    r.className = "ratio";
    const value = document.createElement("div");
    value.className = "value";
    value.dataset.metric = t.metric;
    show(value, "ratio|" + t.metric + "|" + state.column, cellText(t, state.column));
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = metricLabel(t.metric);
    const detail = document.createElement("div");
    detail.className = "detail";
    const v = valueOf(t, state.column);
    const operands = v ? operandsText(t, state.column) : "无数据";
    detail.textContent = operands || "\u00a0"; // (the line kept: the card does not move)
    r.append(value, label, detail);
    const yoy = yoyLine(t, "ratio-yoy|" + t.metric + "|" + state.column);
    if (yoy) r.append(yoy);
    box.appendChild(r);
  }
  if (pages > 1)
    box.appendChild(pager(state.ratioPage, pages, "比率 " + all.length + " 项", (i) => { state.ratioPage = i; }));
}

// A ratio's operands as "numerator / denominator" in column, each the
// figure of its own metric with its own decimals (124.8 / 62: 124.8
// hectares for 62 people), or "" when they are not known.  Not the
// ratio's [num, den]: when the operands' scales differ, tallyd sends
// them brought to one scale (PROTOCOL.md 10.6; [1248, 620] for those),
// or in lowest terms, which are not the operands' figures.  The operands
// are the catalog's (numerator, denominator); without them (no catalog
// from tallyd) the pair is shown only while no metric of the catalog has
// decimals (every pair then is the operands' figures as they are).
function operandsText(t, column) {
  const m = state.catalog.metrics.get(t.metric);
  if (m && m.numerator && m.denominator) {
    const figure = (id) => {
      const o = get(t.scope, id);
      // a missing counter operand counts as 0 (PROTOCOL.md 10.5)
      return o ? cellText(o, column) : scaledText(0, metricScale(id));
    };
    return figure(m.numerator) + " / " + figure(m.denominator);
  }
  for (const c of state.catalog.metrics.values()) if (metricScale(c.id) > 0) return "";
  const v = valueOf(t, column);
  return v && isInt(v.num) && isInt(v.den) ? intFormat.format(v.num) + " / " + intFormat.format(v.den) : "";
}

// The table's first column, sorted by the townships' names.
const TOWN_COLUMN = "__town";

// The figure ranked by until a header is clicked, as { key, noData }: a
// counter, never a gauge (a level: right after midnight it would rank the
// townships by how many grid zones they have, not by anything done
// today), the first of the table's counters, then of the catalog's, with
// a value other than 0 in the column shown (a figure nobody reported
// today is 0 everywhere: a chart of zeros says nothing); else the first
// of those counters, noData set (今日尚无数据).
function defaultKey(towns, metrics) {
  const counters = metrics.filter((m) => metricKind(m) === "counter");
  for (const [id, m] of state.catalog.metrics)
    if (m.kind === "counter" && !counters.includes(id)) counters.push(id);
  const nonZero = (m) => towns.some((t) => {
    const v = numeric(get(t, m), state.column);
    return v !== -Infinity && v !== 0;
  });
  const key = counters.find(nonZero);
  if (key) return { key, noData: false };
  return { key: counters.length ? counters[0] : metrics[0], noData: true };
}

// towns ranked by key in the column shown, largest first unless asc;
// those without a value last either way, ties by name.
function rankTowns(towns, key, asc) {
  return towns.sort((a, b) => {
    const x = numeric(get(a, key), state.column), y = numeric(get(b, key), state.column);
    if (x === y) return townOrder(a, b);
    if (x === -Infinity || y === -Infinity) return x === -Infinity ? 1 : -1;
    return asc ? x - y : y - x;
  });
}

// The townships in the table's order, the header it is sorted by (key),
// and the chart's: ranked by the figure clicked, else the default one
// (by that one too when the table is sorted by name), that figure, and
// whether it has no value other than 0 (noData).  Those without a figure
// in the column (missing: 未报送) come after the others in the table, by
// name, and are not in the chart.
function sortedTowns(metrics) {
  const all = townships(), having = townsWithFigures();
  const towns = all.filter((t) => having.has(t));
  const missing = all.filter((t) => !having.has(t)).sort(townOrder);
  const chosen = state.sort.metric === TOWN_COLUMN || metrics.includes(state.sort.metric)
    ? state.sort.metric : null;
  const auto = defaultKey(towns, metrics);
  if (chosen === TOWN_COLUMN) {
    towns.sort((a, b) => (state.sort.asc ? townOrder(a, b) : townOrder(b, a)));
    return { towns: towns.concat(missing), missing, key: chosen,
             chartTowns: rankTowns(towns.slice(), auto.key, false), chartKey: auto.key,
             noData: auto.noData };
  }
  const key = chosen || auto.key;
  rankTowns(towns, key, chosen ? state.sort.asc : false);
  return { towns: towns.concat(missing), missing, key, chartTowns: towns, chartKey: key,
           noData: !chosen && auto.noData };
}

function drawTable() {
  const metrics = tableMetrics();
  const head = document.getElementById("towns-head");
  const body = document.getElementById("towns-body");
  const { towns, missing, key, chartTowns, chartKey, noData } = sortedTowns(metrics);
  const unreported = new Set(missing);
  head.replaceChildren();
  // A column nobody knows (a typing error in ?metrics=) says so rather
  // than look like figures not reported.
  const cols = [[TOWN_COLUMN, "乡镇（街道）"]].concat(
    metrics.map((m) => [m, knownMetric(m) ? metricLabel(m) : m + "（无此指标）"]));
  for (const [id, text] of cols) {
    const th = document.createElement("th");
    const span = document.createElement("span");
    span.textContent = text;
    th.append(span);
    th.dataset.sort = id;
    th.title = id === TOWN_COLUMN ? "按名称排序" : text === id ? id : text + "（" + id + "）";
    if (key === id) {
      th.classList.add("sorted");
      if (state.sort.asc) th.classList.add("asc");
    }
    // A click: that order (names A to Z, figures largest first), a second
    // one the other way; from the table's first page, kept 10 s.
    th.addEventListener("click", () => {
      if (state.sort.metric === id) state.sort.asc = !state.sort.asc;
      else state.sort = { metric: id, asc: id === TOWN_COLUMN };
      state.page = 0;
      state.chartPage = 0;
      turnPagesEvery(PAGE_MS);
      state.dirty = true;
    });
    head.appendChild(th);
  }
  body.replaceChildren();
  // As many rows as the box holds; more townships: pages in turn.
  const box = document.getElementById("table-box");
  const room = box.clientHeight - head.offsetHeight - 16; // layout sizes: the page may be scaled
  // As even as they go: 25 townships in rows of 12 are three pages of 9,
  // not 12, 12 and 1.
  const { pages, per } = paging(towns.length, Math.max(1, Math.floor(room / ROW_PX)));
  state.pages = pages;
  if (state.page >= state.pages) state.page = 0;
  const shown = towns.slice(state.page * per, state.page * per + per);
  document.getElementById("page").textContent =
    state.pages > 1 ? "第 " + (state.page + 1) + "/" + state.pages + " 页（共 " + towns.length + " 个乡镇）" : "";
  for (const town of shown) {
    const tr = document.createElement("tr");
    tr.dataset.town = town;
    const name = document.createElement("td");
    name.textContent = townLabel(town);
    tr.appendChild(name);
    if (unreported.has(town)) {
      // Declared in the catalog, no figure in this column: said, muted.
      tr.className = "unreported";
      const td = document.createElement("td");
      td.className = "missing";
      td.colSpan = Math.max(1, metrics.length);
      td.textContent = "未报送";
      td.title = COLUMNS[state.column] + "无数据";
      tr.appendChild(td);
      body.appendChild(tr);
      continue;
    }
    for (const m of metrics) {
      const td = document.createElement("td");
      td.dataset.metric = m;
      show(td, "town|" + town + "|" + m + "|" + state.column, cellText(get(town, m), state.column));
      tr.appendChild(td);
    }
    body.appendChild(tr);
    for (const td of tr.children) if (td.textContent.length > 7) fitCell(td);
  }
  drawChart(chartTowns, chartKey);
  // Under the chart: who it leaves out, and a figure nobody has yet.
  const notes = [];
  if (missing.length) notes.push(missing.length + " 个乡镇未报送");
  if (noData && chartKey) notes.push(COLUMNS[state.column] + "尚无数据");
  document.getElementById("chart-note").textContent = notes.join(" · ");
}

let chart = null;

// The page is laid out for 1920x1080 and scaled to the window, whatever the
// screen (an LED wall of 3840x2160, a 1366x768 laptop), centred with the
// background around it where the proportions differ.
let screenScale = 1;

function fitScreen() {
  const w = window.innerWidth, h = window.innerHeight;
  const s = Math.min(w / 1920, h / 1080);
  const scale = s > 0 ? s : 1;
  document.body.style.transform =
    "translate(" + (w - 1920 * scale) / 2 + "px," + (h - 1080 * scale) / 2 + "px) scale(" + scale + ")";
  if (scale !== screenScale && chart) {
    chart.dispose(); // made again at the new resolution
    chart = null;
    state.dirty = true;
  }
  screenScale = scale;
}

// The width of text in the chart's labels at font px.
let measure = null;

function textWidth(text, font) {
  if (measure === null) measure = document.createElement("canvas").getContext("2d");
  measure.font = font + "px " + getComputedStyle(document.body).fontFamily;
  return measure.measureText(text).width;
}

// The chart's pages of the ranking: as many bars as its box holds with
// every township named at CHART_FONT (a county of 36 at 1080p: three
// pages of 12), as even as they go; under the chart, which places they
// are and the page's dots.
function chartPage(towns) {
  const room = document.getElementById("chart").clientHeight - 20; // (the grid's top and bottom)
  const { pages, per } = paging(towns.length, Math.max(1, Math.floor(room / CHART_ROW_PX)));
  state.chartPages = pages;
  if (state.chartPage >= pages) state.chartPage = 0;
  const first = state.chartPage * per;
  const shown = towns.slice(first, first + per);
  const box = document.getElementById("chart-pager");
  box.replaceChildren();
  if (pages > 1) {
    const p = pager(state.chartPage, pages, "乡镇排名 " + towns.length + " 个", (i) => { state.chartPage = i; });
    const places = document.createElement("b");
    places.textContent = "第 " + (first + 1) + "–" + (first + shown.length) + " 名";
    p.prepend(places);
    box.append(p);
  }
  return shown;
}

function drawChart(towns, key) {
  const title = document.getElementById("chart-title");
  if (!key) {
    title.textContent = "";
    document.getElementById("chart-pager").replaceChildren();
    state.chartPages = 1;
    return;
  }
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = "各乡镇" + metricLabel(key) + " · " + COLUMNS[state.column];
  title.replaceChildren(name);
  const top = chartPage(towns).reverse();
  if (typeof echarts === "undefined") return;
  if (chart === null)
    chart = echarts.init(document.getElementById("chart"), null, {
      renderer: "canvas",
      // drawn at the screen's resolution when the page is scaled up
      devicePixelRatio: (window.devicePixelRatio || 1) * Math.max(1, screenScale),
    });
  const ratio = top.some((t) => get(t, key) && get(t, key).kind === "ratio");
  // A bar as long as its figure in the metric's unit (decimal scale
  // applied), a ratio's in percent, as its text rounds it.
  const scale = metricScale(key);
  const scaled = (v) => (ratio ? Number(ratioTenths(v)) / 10 : scaledNumber(v, scale));
  // A township without a value in the column has no bar ("-"), not a 0;
  // its figure as the cards and the table print it (texts).
  const data = top.map((t) => {
    const v = numeric(get(t, key), state.column);
    return v === -Infinity ? "-" : scaled(valueOf(get(t, key), state.column));
  });
  const texts = top.map((t) => cellText(get(t, key), state.column));
  // Each township's figure in the same days a year earlier, as a tick
  // across its bar (none at 0: a tick on every axis line of a township
  // new this year says nothing), and its 同比 after the figure.
  // Its figure is set after the bar or the tick, whichever ends further
  // right (ends): a township whose figure fell has its tick beyond its
  // bar, where the figure would otherwise cover it.
  const earlier = [], yoys = [], ends = data.slice();
  top.forEach((t, i) => {
    const v = yoyValue(get(t, key));
    yoys.push(yoyOf(get(t, key)));
    if (v === undefined || v === null || (ratio ? ratioTenths(v) === null : !isInt(v) || BigInt(v) === 0n)) return;
    const x = scaled(v);
    earlier.push([x, i]);
    if (data[i] !== "-" && x > data[i]) ends[i] = x;
  });
  if (earlier.length) {
    const legend = document.createElement("span");
    legend.className = "legend";
    legend.textContent = "去年同期";
    legend.title = "去年同期（" + yoySpan(state.column) + "）";
    title.append(legend);
  }
  const font = CHART_FONT;
  const slot = (document.getElementById("chart").clientHeight - 20) / Math.max(1, top.length);
  // Room on the right for the longest figure and its 同比 (a figure of
  // many digits or decimals: 9,223,372,036.854775807), not cut at the
  // chart's edge.
  const labelRoom = Math.max(0, ...top.map((t, i) => textWidth(texts[i], font) +
    (yoys[i] && yoys[i].dir ? textWidth(" " + yoys[i].text.replace("同比 ", ""), font) : 0))) + 12;
  // ... and on the left for the longest name.
  const nameRoom = Math.max(60, ...top.map((t) => textWidth(townLabel(t), font))) + 14;
  chart.setOption({
    animation: false,
    textStyle: { fontFamily: getComputedStyle(document.body).fontFamily }, // the table's letters
    grid: { left: Math.ceil(nameRoom), right: Math.max(earlier.length ? 165 : 90, Math.ceil(labelRoom)), top: 10, bottom: 10 },
    xAxis: { type: "value", show: false },
    yAxis: {
      type: "category",
      data: top.map(townLabel),
      // every township of the page named, as large as the table's names
      axisLabel: { color: "#c9dcff", fontSize: font, interval: 0 },
      axisLine: { lineStyle: { color: "#1d4b8f" } },
    },
    // Three layers: the bars, the ticks over them, and the figures,
    // carried by bars drawn clear as long as the bar or the tick (ends),
    // so that neither runs under a figure.
    series: [{
      name: "bars",
      type: "bar",
      data,
      barWidth: "62%",
      itemStyle: { color: "#3fd0ff", borderRadius: [0, 4, 4, 0] },
      z: 1,
    }, {
      name: "去年同期",
      type: "scatter",
      data: earlier,
      symbol: "rect",
      symbolSize: [4, Math.max(6, Math.round(slot * 0.85))],
      itemStyle: { color: "#ffd54a" },
      z: 2,
    }, {
      name: "figures",
      type: "bar",
      data: ends,
      barWidth: "62%",
      barGap: "-100%",
      silent: true,
      itemStyle: { color: "transparent" },
      label: {
        show: true, position: "right", distance: 6, color: "#e6f0ff", fontSize: font,
        formatter: (p) => {
          const text = texts[p.dataIndex];
          const y = yoys[p.dataIndex];
          return y && y.dir ? text + " {yoy|" + y.text.replace("同比 ", "") + "}" : text;
        },
        rich: { yoy: { color: "#8fb1e3", fontSize: font } },
      },
      z: 3,
    }],
  }, true);
}

function drawStatus() {
  const conn = document.getElementById("conn");
  const text = document.getElementById("conn-text");
  const fresh = Date.now() - state.lastMessage < STALE_AFTER_MS;
  let s;
  if (state.open && state.synced && fresh) s = "live";
  else if (!state.open && state.lastMessage === 0) s = "connecting";
  else s = "stale";
  conn.dataset.state = s;
  conn.classList.toggle("stale", s !== "live");
  // Why the data stopped, when tally-web knows: the statistics server
  // (tallyd) not running, or the network between them down (the
  // browser's own link down shows as the interruption alone); in words a
  // duty officer reads, the engineers' on hover.
  const why = !state.open ? ""
    : state.tallyd === "refused" ? " · 服务器未运行"
    : state.tallyd === "unreachable" ? " · 网络不通"
    : state.tallyd === "handshake_failed" ? " · 密钥不符" : "";
  text.textContent = s === "live" ? "实时" : s === "connecting" ? "连接中" : "数据中断";
  if (s === "stale" && why) {
    const small = document.createElement("small");
    small.textContent = why;
    text.appendChild(small);
  }
  conn.title = s === "stale" ? technicalWhy() : "";
  drawDown(s === "stale" && state.tallies.size > 0);
  // The stream id is for ops (tallyd's log, /healthz, tally watch), not
  // for the room: on hover only.
  // Stream 0: tally-web has never been synchronised with tallyd (it
  // numbers nothing yet): said so, not a sequence number 0.
  const seq = document.getElementById("seq");
  const never = state.lastMessage > 0 && !knownStream();
  seq.textContent = knownStream() ? "序号 " + state.seq : never ? "未连接 tallyd" : "";
  seq.title = knownStream() ? "tallyd 数据流 " + state.stream + "（tallyd 重启后更换）"
    : never ? "tally-web 尚未与 tallyd 同步，没有数据流" : "";
  seq.classList.toggle("none", never);
  seq.dataset.stream = state.stream;
  const updated = document.getElementById("updated");
  updated.textContent = state.lastChange
    ? "最近更新 " + dayText(state.lastChange) + timeText(calendarAt(state.lastChange)) : "";
  updated.title = state.lastChange ? "所显示数据最近一次更新或与 tallyd 同步的时间（tally-web 的时钟）" : "";
  for (const b of document.querySelectorAll("#columns button"))
    b.classList.toggle("on", b.dataset.column === state.column);
  // The townships' history refused as too large: say why their past
  // figures or 同比 are missing.
  const past = isPastYear(state.column);
  const want = past ? state.column.slice(1) : yoySpan(state.column);
  const towns = (past ? pastReaders : yoyReaders)[1];
  document.getElementById("note").textContent = want && towns.refused === want
    ? "各乡镇" + (past ? COLUMNS[state.column] : "同比") + "数据超出单次查询上限，仅显示全县" : "";
}

// The engineers' account of an interruption (the banner's and the
// indicator's tooltip).
function technicalWhy() {
  const link = !state.open ? "浏览器与 tally-web 的连接已断开，正在重连"
    : state.tallyd === "refused" ? "tallyd 未运行：tally-web 连接 tallyd 被拒绝（tallyd=refused）"
    : state.tallyd === "unreachable" ? "tally-web 到 tallyd 的网络不通（tallyd=unreachable）"
    : state.tallyd === "handshake_failed" ? "与 tallyd 的安全握手失败，密钥不符（tallyd=handshake_failed）"
    : "tally-web 未与 tallyd 同步（tallyd=" + (state.tallyd || "?") + "）";
  return link + (knownStream() ? "；数据流 " + state.stream + " 序号 " + state.seq : "");
}

// Whether tally-web has a stream of tallyd's to tell (its id 0: it has
// never been synchronised with tallyd).
function knownStream() {
  return state.stream !== "" && state.stream !== "0";
}

// "12月7日 " for an instant of another day than today (tallyd's
// calendar), "" for one of today: a time alone would be read as today's.
function dayText(ms) {
  const c = calendarAt(ms), today = calendarAt(Date.now());
  return c.y === today.y && c.mo === today.mo && c.d === today.d ? ""
    : (c.y !== today.y ? c.y + "年" : "") + c.mo + "月" + c.d + "日 ";
}

// While the figures shown are no longer current (down): dimmed, under a
// banner across the top that says so, and since when: when tally-web
// lost tallyd (its stale_since_ms), else the last message this page had.
function drawDown(down) {
  const since = !down ? 0 : state.open && state.staleSince ? state.staleSince
    : state.down || state.lastMessage || Date.now();
  const banner = document.getElementById("banner");
  banner.title = since ? technicalWhy() : "";
  // Written again every frame: an outage that began before midnight
  // gets its date once the day has turned (自 12月7日 23:10 起).
  if (since) {
    const c = calendarAt(since);
    const text = "数据中断：与统计服务器的连接已断开（自 " + dayText(since) + pad2(c.h) + ":" + pad2(c.mi) +
      " 起），以下为断开前的数据";
    if (banner.textContent !== text) banner.textContent = text;
  }
  if (since === state.down) return;
  state.down = since;
  document.body.classList.toggle("down", !!since);
  // The banner takes room from the boxes: laid out again.
  state.dirty = true;
  if (chart) chart.resize();
}

function drawClock() {
  const c = calendarAt(Date.now());
  const el = document.getElementById("clock");
  el.textContent = c.y + "年" + pad2(c.mo) + "月" + pad2(c.d) + "日 星期" + "日一二三四五六"[c.wd] + " " + timeText(c);
  // Until tallyd has told its zone, the browser's own: said beside it.
  if (!state.clock) {
    const zone = document.createElement("small");
    zone.textContent = "本机时区";
    el.append(" ", zone);
  }
  el.title = state.clock ? "tallyd 的时区 " + state.clock.zone : "本机时区（tallyd 未告知时区）";
  if (!pastYears.includes(String(c.y - 1))) drawYearButtons(c.y);
}

function frame() {
  if (state.dirty) {
    state.dirty = false;
    drawKpis();
    drawRatios();
    drawTable();
  }
  drawStatus();
  requestAnimationFrame(frame);
}

// ---- the stream -------------------------------------------------------------

// The digits of the top-level integer field name in a message's text, else
// those of value: tally-web writes stream_id and seq as 64-bit numbers,
// which JSON.parse rounds to a double's 53 bits (…934231 would show as
// …934000).  tally-web writes the top-level fields before the tallies (a
// window may be named seq), and a quote inside a JSON string is escaped:
// the first match is the field.
function integerText(text, name, value) {
  const m = new RegExp('"' + name + '":(\\d+)').exec(text);
  return m ? m[1] : value === undefined || value === null ? "" : String(value);
}

function apply(msg, text) {
  state.lastMessage = Date.now();
  state.synced = !!msg.synced;
  state.tallyd = msg.tallyd || "";
  state.staleSince = msg.stale_since_ms || 0;
  state.stream = integerText(text, "stream_id", msg.stream_id);
  state.seq = integerText(text, "seq", msg.seq);
  if (msg.type === "snapshot") {
    state.tallies.clear();
    for (const r of historyReaders) r.stale = true; // they may have missed notices meanwhile
  }
  if (msg.history_gen !== undefined) {
    if (state.historyGen !== null && msg.history_gen !== state.historyGen)
      for (const r of historyReaders) r.stale = true;
    state.historyGen = msg.history_gen;
  }
  if (msg.tallies) {
    for (const t of msg.tallies) {
      state.tallies.set(t.scope + "|" + t.metric, t);
      // a gauge set: its value within the column's days may have changed
      if (t.kind === "gauge" && msg.type === "update") for (const r of curReaders) r.stale = true;
    }
    // When the figures shown were last current, by tally-web's clock (the
    // message's time_ms), not the browser's: an update that changed some,
    // every snapshot (a page opened, a resync after tallyd came back),
    // and for a snapshot of figures held while tallyd is out of reach,
    // since when they are not current.
    const at = Number.isFinite(msg.time_ms) && msg.time_ms > 0 ? msg.time_ms : Date.now();
    if (msg.type === "update" && msg.tallies.length) state.lastChange = at;
    if (msg.type === "snapshot") state.lastChange = state.staleSince || at;
    state.dirty = true;
  }
  for (const r of historyReaders) if (r.stale) r.load();
}

let retry = 1000;

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/stream");
  ws.onopen = () => {
    state.open = true;
    retry = 1000;
  };
  ws.onmessage = (ev) => {
    try {
      apply(parseJSON(ev.data), ev.data);
    } catch (e) {
      console.warn("tally-web: a message that is not JSON", e);
    }
  };
  ws.onclose = () => {
    state.open = false;
    state.synced = false;
    state.tallyd = "";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

// A reading of tallyd's history for the column shown: want() names the
// period or span wanted (null: none), prefix the series; r.values holds
// their values in r.period ("scope|metric" -> value).  Asked for at
// once when want() changes, again when tallyd says closed periods
// changed (stale), at most once every PAST_MIN_GAP_MS, and after a
// failure every PAST_RETRY_MS; after a refusal that asking again will not
// change (4xx: more series than one answer holds, say; 501: a tallyd
// without the request) every UNSUPPORTED_RETRY_MS.
function historyReader(want, prefix) {
  const r = { asked: null, at: 0, ok: false, stale: false, unsupported: false, timer: null,
              values: new Map(), period: null, refused: null, gen: 0 };
  r.load = async () => {
    const period = want();
    if (!period) return;
    const since = Date.now() - r.at;
    const retry = r.unsupported ? UNSUPPORTED_RETRY_MS : PAST_RETRY_MS;
    if (r.asked === period && !r.stale && (r.ok || since < retry)) return;
    if (since < PAST_MIN_GAP_MS) {
      if (!r.timer) r.timer = setTimeout(() => { r.timer = null; r.load(); }, PAST_MIN_GAP_MS - since);
      return;
    }
    r.at = Date.now();
    const gen = ++r.gen; // (an answer overtaken by a later question is dropped)
    r.asked = period;
    r.stale = false;
    r.ok = false;
    try {
      const resp = await fetch("/api/v1/period?prefix=" + prefix + "&period=" + period,
                               { credentials: "same-origin" });
      r.unsupported = resp.status === 501 || (resp.status >= 400 && resp.status < 500);
      // the period tallyd refused (400: more series than one answer holds)
      r.refused = resp.status === 400 ? period : null;
      if (!resp.ok) return;
      const doc = parseJSON(await resp.text());
      if (gen !== r.gen) return;
      const values = new Map();
      for (const t of doc.tallies || []) values.set(t.scope + "|" + t.metric, t.values[period]);
      r.values = values;
      r.period = period;
      r.ok = true;
      state.dirty = true;
    } catch (e) {
      // tallyd unreachable: asked again after PAST_RETRY_MS
    }
  };
  return r;
}

// The county's series and the townships' are read apart: one answer of
// tallyd holds at most so many series (TOO_LARGE beyond); tally-web reads
// the townships' in parts then, and should even that be refused (more
// townships than it splits), the county still gets its own figures.
const HISTORY_PARTS = ["u/county/", "u/town/"];

// A past year's figures for every series.
const pastReaders = HISTORY_PARTS.map((prefix) => historyReader(
  () => (isPastYear(state.column) ? state.column.slice(1) : null), prefix));

// Every series' figures for the same days a year earlier as the column
// shown (yoySpan), for the cards' 同比 and the townships' in the chart; a
// tallyd from before spans of days (SPAN_REQ) is asked again now and
// then, in case it is upgraded.
const yoyReaders = HISTORY_PARTS.map((prefix) => historyReader(() => yoySpan(state.column), prefix));

// Every series' figures in the live column's own days so far
// (currentPeriod), for a gauge's latest value set within them (its 同比,
// and whether a township reported in the column): read again whenever
// a gauge changes (apply).
const curReaders = HISTORY_PARTS.map((prefix) => historyReader(() => currentPeriod(state.column), prefix));

const historyReaders = pastReaders.concat(yoyReaders, curReaders);

// t's value in period as readers (pastReaders or yoyReaders) last read
// it, undefined while not read.
function historyValue(readers, t, period) {
  const r = readers[t.scope === "county" ? 0 : 1];
  return r.period === period ? r.values.get(t.scope + "|" + t.metric) : undefined;
}

// Read f now and again: every okMs after it returned true, every RETRY_MS
// after it returned false or failed.
async function keepReading(f, okMs) {
  let ok = false;
  try {
    ok = await f();
  } catch (e) {
    // tally-web unreachable: what was read last stays
  }
  setTimeout(() => keepReading(f, okMs), ok ? okMs : RETRY_MS);
}

// The catalog's labels, units and township names; until tallyd has given
// one (or from a tallyd older than the catalog request) ids stand in.
async function loadCatalog() {
  const r = await fetch("/api/v1/catalog", { credentials: "same-origin" });
  if (!r.ok) return false;
  const c = await r.json();
  if (!c.available) return false;
  const catalog = { metrics: new Map(), townships: new Map(), order: new Map() };
  (c.metrics || []).forEach((m, i) => {
    catalog.metrics.set(m.id, m);
    catalog.order.set(m.id, i);
  });
  (c.townships || []).forEach((t) => catalog.townships.set(t.id, t));
  state.catalog = catalog;
  state.dirty = true;
  return true;
}

// tallyd's zone and its offset now; the last one known stays while
// tallyd cannot be asked.
async function loadClock() {
  const r = await fetch("/api/v1/clock", { credentials: "same-origin" });
  if (!r.ok) return false;
  const c = await r.json();
  if (!c.available || !Number.isFinite(c.utc_offset_s)) return false;
  state.clock = { zone: c.zone, utc_offset_s: c.utc_offset_s };
  drawClock();
  return true;
}

function columnButton(column) {
  const b = document.createElement("button");
  b.dataset.column = column;
  b.textContent = COLUMNS[column];
  b.addEventListener("click", () => {
    state.column = b.dataset.column;
    localStorage.setItem("tally-web.column", state.column);
    for (const r of historyReaders) r.load();
    state.dirty = true;
  });
  return b;
}

// The past-year buttons for `year` as this one (at start, when tallyd's
// year turns out another than the browser's, and at New Year).
function drawYearButtons(year) {
  setPastYears(year);
  const nav = document.getElementById("columns");
  for (const b of nav.querySelectorAll("button")) if (isPastYear(b.dataset.column)) b.remove();
  for (const y of pastYears) nav.append(columnButton("y" + y));
  state.dirty = true;
}

// The table's, the cards', the ratios' and the chart's pages turn together every ms,
// counted again from now (a header clicked shows its first page whole).
let pageTimer = null;

function turnPagesEvery(ms) {
  clearInterval(pageTimer);
  pageTimer = setInterval(() => {
    if (state.pages === 1 && state.kpiPages === 1 && state.ratioPages === 1 && state.chartPages === 1) return;
    state.page = (state.page + 1) % state.pages;
    state.chartPage = (state.chartPage + 1) % state.chartPages;
    state.kpiPage = (state.kpiPage + 1) % state.kpiPages;
    state.ratioPage = (state.ratioPage + 1) % state.ratioPages;
    state.dirty = true;
  }, ms);
}

function start() {
  const nav = document.getElementById("columns");
  for (const b of [...nav.querySelectorAll("button")]) b.replaceWith(columnButton(b.dataset.column));
  drawYearButtons(new Date().getFullYear());
  // (the days a 同比 compares change at midnight)
  setInterval(() => { for (const r of historyReaders) r.load(); }, 5000);
  drawClock();
  setInterval(drawClock, 1000);
  turnPagesEvery(PAGE_MS);
  fitScreen();
  window.addEventListener("resize", () => {
    fitScreen();
    if (chart) chart.resize();
  });
  keepReading(loadCatalog, CATALOG_EVERY_MS);
  keepReading(loadClock, CLOCK_EVERY_MS);
  for (const r of historyReaders) r.load();
  connect();
  requestAnimationFrame(frame);
}

start();
