#!/usr/bin/python3
"""The wall display in a real browser: headless Chromium driven by Selenium.

Usage: test_web_display.py TALLYD TALLY TALLY_WEB SOURCE_DIR

Starts tallyd (the example catalog) and tally-web, opens / at 1920x1080,
and checks that the display goes live with the catalog's labels and the
pushed figures; that a new push appears within 2 s without a reload; that
every card and ratio shows, those beyond one box's room page by page with
the table's pages (22 cards and, with a fourth ratio, 4 ratios: two pages
each); that the footer shows tallyd's stream id whole (64 bits), on hover;
that nothing on the page overflows the screen or its box, in every column;
that the 乡镇（街道） header sorts the townships by name, A to Z then Z to A;
that in 今日 the chart ranks by the first figure other than 0 there;
that last year's column changes within 3 s when a late figure of last
year arrives (PERIOD_CHANGED), and 本年's 同比 against last year's same
days with it, on the county's card and in the chart for the township,
where every township's tick of last year's same days shows, not covered
by its figure where the figure fell; that every label of the catalog shows whole, in the
cards and the table's header; that on a 4K, a 1366x768 and a 16:10
screen the page is scaled to fill it, centred, with nothing cut; that
the chart names its townships and figures as large as the table's
text, none over another or the note under it, at 1080p, 4K, 1366x768
and 1280x720, 25 townships ranked page by page with the table's pages;
that a page of a tally-web that never reached tallyd says 未连接 tallyd,
not 序号 0, and 本机时区 by the clock; that 最近更新 moves to the resync
when tallyd comes back, and is the same on a page opened later while
nothing changed; that the cards' 同比 is 24 px or more at 1080p (a
gauge's on two lines); that the connection indicator turns stale
when tallyd stops (GOODBYE), saying in plain words that the server is not
running (数据中断 · 服务器未运行; tallyd's name on hover), the figures dimmed
under a banner saying since when they are not current, and live again
when it is back, undimmed; that the
clock shows tallyd's time (Asia/Shanghai) to a browser kept in another
zone (Pacific/Pago_Pago, 19 hours behind); that a page opened before
tallyd started gets the labels and the zone once it is up; and that the
browser logged no error.  Then, with a second tallyd of the example
catalog where 6 of its 25 townships reported a gauge only: that the
table lists all 25, the 19 without figures after the others, marked
未报送, the chart only the 6 and "19 个乡镇未报送" under it; that in 今日
the chart ranks by a counter (the catalog's first, 今日尚无数据), not by
the gauge; that a ratio's 同比 is the difference of the two percentages
as shown (93.1% against 92.3%: +0.8, not the exact 0.71's +0.7); and
that, tallyd stopped, a page opened then shows the last figures dimmed,
under the banner, and, the day after, the banner and 最近更新 with the
day the outage began.  Then, with a third tallyd whose catalog gives figures
decimals (PROTOCOL.md 10.6: 124.8 ha of scale 1 sent as 1248): that the
cards, the table, the chart, a past year and a 同比's figure of last year
print them as tally get does (124.8, 4.20, -1.0, and int64's largest at
scale 9 as 9,223,372,036.854775807, exactly, set smaller rather than
cut), and that a ratio's card shows its operands' figures (125.1 / 63),
never tallyd's pair brought to one scale (1,251 / 630).  Then, with a
fourth tallyd: that a gauge's 同比 in 本年 is like with like, as tally get
--period --compare says (综治网格 35 最新, 本年内 12 · 同比 ▲20.0%, not
▲250.0%), and a township whose gauge was set years ago only is 未报送 in
本年 and 今日; with the second: that townships with series of yesterday
only (a counter at 0 today, a gauge set before) are 未报送 in 今日 and
counted; with the first: that a figure too long for its table column
shows whole, never cut with an ellipsis.  The screenshots
are kept as artifacts/wall-1920x1080.png, artifacts/wall-down-1920x1080.png,
artifacts/wall-scaled-1920x1080.png and artifacts/wall-gauge-1920x1080.png in
the working directory.  Exits 77
(skipped) when Chromium, chromedriver or python3-selenium is missing.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
from urllib.parse import quote
import urllib.request
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import web_procs
from web_procs import fail, start_tallyd, wait_for

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import StaleElementReferenceException
except ImportError:
    print("skipped: python3-selenium is not installed")
    sys.exit(77)

DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
if not os.path.exists(DRIVER) or BROWSER is None:
    print("skipped: chromium and chromium-driver are not installed")
    sys.exit(77)

TALLYD, TALLY, WEB, SRC = sys.argv[1:5]
TMP = tempfile.mkdtemp(prefix="tally-web-display.")


def start(args, log):
    """web_procs.start(), the output added to the log's end: tallyd is started
    again with the log it had."""
    return web_procs.start(args, log, append=True)


# Elements whose content spills out of their box (scrollWidth beyond
# clientWidth) or out of the 1920x1080 screen, as "tag#id.class: why".
OVERFLOW_JS = """
const out = [];
const W = window.innerWidth, H = window.innerHeight;
const doc = document.documentElement;
// Scroll bars, unless the page has none (it scales itself to the window;
// Chromium then keeps the largest size seen as the root's scroll size).
if (getComputedStyle(doc).overflow !== 'hidden') {
  if (doc.scrollWidth > W) out.push('page: ' + doc.scrollWidth + ' px wide');
  if (doc.scrollHeight > H) out.push('page: ' + doc.scrollHeight + ' px high');
}
const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className ? '.' + el.className.split(' ').join('.') : '');
for (const el of document.querySelectorAll('body *')) {
  if (el.closest('#chart')) continue; // ECharts lays out its own canvas
  const cs = getComputedStyle(el);
  if (cs.display === 'none' || cs.visibility === 'hidden' || cs.display === 'inline') continue;
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if (r.right > W + 1 || r.bottom > H + 1 || r.left < -1 || r.top < -1)
    out.push(name(el) + ': outside the screen ' + JSON.stringify([r.left, r.top, r.right, r.bottom]));
  // Truncation with an ellipsis is a choice (long labels); anything else
  // that does not fit its box is a defect, clipped or spilling out.
  if (cs.textOverflow === 'ellipsis') continue;
  if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
    out.push(name(el) + ': content ' + el.scrollWidth + ' px wide in ' + el.clientWidth + ' px: ' +
             el.textContent.slice(0, 40));
  if (el.scrollHeight > el.clientHeight + 1 && el.clientHeight > 0 &&
      cs.overflowY !== 'auto' && cs.overflowY !== 'scroll')
    out.push(name(el) + ': content ' + el.scrollHeight + ' px high in ' + el.clientHeight + ' px');
}
return out;
"""


# Labels that do not show whole (cut by the line clamp or spilling out of
# their box), as their text: the cards' and the table's headers.
CUT_LABELS_JS = """
const out = [];
for (const el of document.querySelectorAll('.kpi .label, #towns-head th span'))
  if (el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1)
    out.push(el.textContent);
return out;
"""


# What the paged boxes show at one instant (the page is redrawn whenever a
# figure comes): the table's townships, the cards' and ratios' labels and
# their page indicators.
PAGES_JS = """
const text = (sel) => Array.from(document.querySelectorAll(sel), (e) => e.textContent);
const pager = (sel) => { const p = document.querySelector(sel); return p ? p.textContent : ''; };
return { rows: Array.from(document.querySelectorAll('#towns-body tr'), (r) => r.getAttribute('data-town')),
         names: text('#towns-body tr td:first-child'),
         cards: text('#kpis .kpi .label'), kpi_pager: pager('#kpis .pager'),
         ratios: text('#ratios .ratio .label'), ratio_pager: pager('#ratios .pager'),
         chart: (() => { const c = echarts.getInstanceByDom(document.getElementById('chart'));
                         return c ? c.getOption().yAxis[0].data : []; })() };
"""


# The chart's township names and figures as drawn (ECharts' text
# elements, in the chart's layout pixels): their font sizes against the
# table's, and any two that overlap or fall outside the chart's box (into
# the note under it), for the townships of its page.
CHART_TEXT_JS = """
const c = echarts.getInstanceByDom(document.getElementById('chart'));
if (!c) return null;
const box = document.getElementById('chart');
const foot = document.getElementById('chart-foot') || document.getElementById('chart-note');
const names = c.getOption().yAxis[0].data;
const texts = [];
c.getZr().storage.getDisplayList(true).forEach((el) => {
  // (ECharts draws a label as tspans, the font in style.font)
  if ((el.type !== 'tspan' && el.type !== 'text') || !el.style || !el.style.text) return;
  const r = el.getBoundingRect().clone();
  r.applyTransform(el.getComputedTransform());
  texts.push({ text: el.style.text, size: parseFloat(/([\\d.]+)px/.exec(el.style.font || '')?.[1] || el.style.fontSize),
               x: r.x, y: r.y, w: r.width, h: r.height });
});
const bad = [];
for (const t of texts) {
  if (t.y < -1 || t.y + t.h > box.clientHeight + 1 || t.x < -1 || t.x + t.w > box.clientWidth + 1)
    bad.push(t.text + ' outside the chart');
}
for (let i = 0; i < texts.length; i++)
  for (let j = i + 1; j < texts.length; j++) {
    const a = texts[i], b = texts[j];
    if (a.x < b.x + b.w - 1 && b.x < a.x + a.w - 1 && a.y < b.y + b.h - 1 && b.y < a.y + a.h - 1)
      bad.push(a.text + ' over ' + b.text);
  }
const td = document.querySelector('#towns-body td');
const b = box.getBoundingClientRect(), f = foot.getBoundingClientRect();
if (b.bottom > f.top + 1) bad.push('the chart runs into the note under it');
const named = texts.filter((t) => names.includes(t.text));
return { names, sizes: [...new Set(texts.map((t) => t.size))], named: named.length,
         table: td ? parseFloat(getComputedStyle(td).fontSize) : null, bad,
         pager: (document.getElementById('chart-pager') || {}).textContent || '' };
"""


def chart_readable(where):
    """The chart's names and figures as large as the table's text, each
    township of its page named, none over another or outside the chart."""
    got = {}

    def ok():
        got.update(driver.execute_script(CHART_TEXT_JS) or {})
        return (got.get("names") and got["named"] == len(got["names"]) and got["bad"] == []
                and got["table"] and min(got["sizes"]) >= got["table"])
    until(ok, lambda: "%s: the chart's labels at least the table's %s px, none overlapping; "
          "it read %r" % (where, got.get("table"), got))
    return got


# Every tick of last year's same days in the chart that does not show: its
# township, value and the colour drawn at its centre, where something
# covers it (the tick is #ffd54a); null before the chart has ticks.
HIDDEN_TICKS_JS = """
const c = echarts.getInstanceByDom(document.getElementById('chart'));
if (!c) return null;
const o = c.getOption(), names = o.yAxis[0].data;
const si = o.series.findIndex((x) => x.name === '去年同期');
if (si < 0 || !o.series[si].data.length) return null;
const canvas = document.querySelector('#chart canvas');
const k = canvas.width / parseFloat(canvas.style.width);
const ctx = canvas.getContext('2d');
const hidden = [];
for (const [x, i] of o.series[si].data) {
  const [px, py] = c.convertToPixel({ seriesIndex: si }, [x, i]);
  const d = ctx.getImageData(Math.round(px * k), Math.round(py * k), 1, 1).data;
  if (!(d[0] > 200 && d[1] > 170 && d[2] < 140))
    hidden.push(names[i] + ' ' + x + ' rgb(' + [d[0], d[1], d[2]].join(',') + ')');
}
return [o.series[si].data.map((p) => names[p[1]]), hidden];
"""


def click(css, timeout=5):
    """Click the element css selects: found again when the page redrew it
    between finding and clicking (a table header, on an update)."""
    deadline = time.time() + timeout
    while True:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except StaleElementReferenceException:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def until(cond, what, timeout=20):
    """Wait for cond(); what says what it waited for, or is a function that
    says it when asked (what the page showed in the end)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if cond():
                return
        except Exception:  # the page is redrawing
            pass
        time.sleep(0.2)
    fail("the display never showed " + (what() if callable(what) else what))


conf = os.path.join(TMP, "tallyd.conf")
# The smallest reply queue: a PERIOD answer holds at most 512 series, so
# that a county of more is seen below.
with open(os.path.join(SRC, "systemd", "tallyd.conf.example"), encoding="utf-8") as f:
    example = f.read()
if "max_reply_queue = 4096\n" not in example:
    fail("tallyd.conf.example: no 'max_reply_queue = 4096' to lower")
# A fourth ratio: more than the ratios' box holds (3), shown page by page.
with open(conf, "w", encoding="utf-8") as f:
    f.write(example.replace("max_reply_queue = 4096\n", "max_reply_queue = 1024\n"))
    f.write("\n[ratio talks.on_site_rate]\nnumerator = talks.disputes_handled\n"
            "denominator = talks.people_received\nlabel = 群众说事就地处理率\n")
REQ = "ipc://%s/req" % TMP
tallyd_args = [TALLYD, "-c", conf, "-r", REQ, "-p", "ipc://%s/pub" % TMP, "-s",
               os.path.join(TMP, "state")]
dlog = os.path.join(TMP, "tallyd.log")


TOWNS = ("gecheng fuxing bashan pingba miaoba mingtong xiuqi gaoyan dongan xianyi gaonan longtian "
         "beiping zuolan yanhe shuanghe liaozi jiming zhouxi mingzhong zhiping lantian houping "
         "heyu").split()


def api(path, at=None):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (at or port, path), timeout=30) as r:
        return json.load(r)


# tally push remembers what it pushed (a figure with --time is not sent
# twice): in a state of the test's own, not the user's, so that the test
# runs again, and alongside another run.
PUSH_ENV = dict(os.environ, XDG_STATE_HOME=os.path.join(TMP, "client-state"))


def push(*args, req=None):
    town = [] if "--town" in args else ["--town", "gaoguan"]
    r = subprocess.run([TALLY, "-s", req or REQ, "push"] + town + list(args),
                       capture_output=True, text=True, timeout=30, env=PUSH_ENV)
    if r.returncode != 0:
        fail("tally push: " + r.stderr)


# The screen comes up before tallyd (a kiosk booting first): tally-web
# serves the page at once, and the labels and tallyd's zone must arrive
# once tallyd does, without a reload.
wlog = os.path.join(TMP, "web.log")
web = start([WEB, "-s", REQ, "--listen", "127.0.0.1:0"], wlog)
port = int(wait_for(wlog, r"serving http://127\.0\.0\.1:(\d+)/").group(1))

opts = webdriver.ChromeOptions()
opts.binary_location = BROWSER
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
for a in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1920,1080",
          "--disable-dev-shm-usage"):
    opts.add_argument(a)
# The browser in a zone of its own: the wall's clock and years must be
# tallyd's (its timezone, Asia/Shanghai) all the same.
BROWSER_TZ = "Pacific/Pago_Pago"
DAEMON_TZ = ZoneInfo("Asia/Shanghai")
last = str(datetime.now(DAEMON_TZ).year - 1)
driver = webdriver.Chrome(service=Service(DRIVER, env=dict(os.environ, TZ=BROWSER_TZ)),
                          options=opts)
# The wall screen's viewport exactly (--window-size counts the window's
# frame in some Chromium versions).
driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                       {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
try:
    driver.get("http://127.0.0.1:%d/" % port)
    conn = lambda: driver.find_element(By.ID, "conn").get_attribute("data-state")

    def first_cards():
        """The cards' first page (化解矛盾纠纷 and 综治网格 on it), its dot
        clicked when another shows: it stays a whole turn."""
        driver.execute_script("const d = document.querySelector('#kpis .pager i');"
                              "if (d && !d.classList.contains('on')) d.click();")

    def kpis():
        first_cards()
        return driver.find_element(By.ID, "kpis").text

    until(lambda: conn() == "stale", "the stale indicator while tallyd is not up", 30)
    # ... saying why: nothing accepts connections at tallyd's address.
    conn_text = lambda: driver.find_element(By.ID, "conn-text").text
    until(lambda: conn_text() == "数据中断 · 服务器未运行", "数据中断 · 服务器未运行", 30)
    # (tallyd, jargon to a duty officer, is named on hover, for engineers)
    until(lambda: "tallyd 未运行" in driver.find_element(By.ID, "conn").get_attribute("title"),
          "tallyd 未运行 on hovering the indicator")
    # tally-web has never reached tallyd: the footer says so, not 序号 0 (a
    # stream it does not have), and the clock, which cannot be tallyd's
    # yet, says whose it is.
    footer = lambda: driver.execute_script(
        "return [document.getElementById('seq').textContent, document.getElementById('clock').textContent]")
    until(lambda: footer()[0] == "未连接 tallyd" and footer()[1].endswith(" 本机时区"),
          lambda: "未连接 tallyd in the footer and 本机时区 by the clock before tallyd is reached; "
          "they read %r" % (footer(),))
    bad = driver.execute_script(OVERFLOW_JS)
    if bad:
        fail("the page before tallyd is reached overflows: %s" % "; ".join(bad[:8]))
    # Nothing to show yet: no banner over empty boxes.
    if driver.execute_script("return document.body.classList.contains('down')"):
        fail("the banner of figures not current, with no figures")
    # ... and the log says why, once: not "ready" and then silence.
    refused = lambda: open(wlog, encoding="utf-8").read().count(
        "tally-web: tallyd at %s: nothing accepts connections there" % REQ)
    until(lambda: refused() == 1, "tally-web's log saying nothing accepts connections at " + REQ)
    # The banner shown while the figures are not current (its text, "" when
    # hidden), its title, and the figures' opacity and filter.
    down = lambda: driver.execute_script(
        "const b = document.getElementById('banner'), m = document.querySelector('main');"
        "const shown = getComputedStyle(b).display !== 'none';"
        "return [shown ? b.textContent : '', b.title, Number(getComputedStyle(m).opacity),"
        " getComputedStyle(m).filter];")

    def banner_texts(at):
        """The banner for an interruption at at, or a minute later."""
        return ["数据中断：与统计服务器的连接已断开（自 %s 起），以下为断开前的数据"
                % (at + timedelta(minutes=k)).strftime("%H:%M") for k in (0, 1)]

    tallyd = start(tallyd_args, dlog)
    wait_for(dlog, r"ready: requests")
    push("--file", os.path.join(SRC, "client", "demo", "gaoguan-2023.csv"))
    until(lambda: conn() == "live", "the live indicator")
    # tallyd's stream id, a 64-bit number, whole (JSON.parse alone would
    # round it to 53 bits), for ops on hover: not in the footer's text.
    seq = lambda: driver.execute_script(
        "const s = document.getElementById('seq'); return [s.textContent, s.title];")
    stream = str(api("/healthz")["stream_id"])
    until(lambda: seq()[1] == "tallyd 数据流 %s（tallyd 重启后更换）" % stream
          and seq()[0].startswith("序号 ") and stream not in seq()[0],
          lambda: "the stream id %s whole on hovering the footer's 序号 (it read %r)" % (stream, seq()))
    if driver.execute_script("return new Date().getTimezoneOffset()") != 11 * 60:
        fail("the browser is not in %s: the clock's check would prove nothing" % BROWSER_TZ)

    def updated_at():
        """最近更新 of today's (tallyd's zone) as a time, else the epoch."""
        m = re.fullmatch(r"最近更新 (\d\d):(\d\d):(\d\d)", driver.find_element(By.ID, "updated").text)
        now = datetime.now(DAEMON_TZ)
        return now.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]), microsecond=0) \
            if m else datetime.fromtimestamp(0, DAEMON_TZ)

    def clock_is_tallyds():
        text = driver.find_element(By.ID, "clock").text
        for back in range(3):  # the page redraws once a second
            t = datetime.now(DAEMON_TZ) - timedelta(seconds=back)
            if text.startswith(t.strftime("%Y年%m月%d日")) and text.endswith(t.strftime("%H:%M:%S")):
                return True
        return False

    until(clock_is_tallyds, "tallyd's date and time (Asia/Shanghai) on the clock, "
          "in a browser in " + BROWSER_TZ)
    until(lambda: "化解矛盾纠纷" in kpis() and "216" in kpis(), "化解矛盾纠纷 216")
    until(lambda: "98.6%" in driver.find_element(By.ID, "ratios").text, "the ratio 98.6%")
    # Percentages rounded as tally get and the report round them, half up
    # from the integers: 23/80 is 28.75% (binary floating point made it
    # 28.749999... and the wall said 28.7%), 201/400 50.25%, 29/400 7.25%;
    # and a change in percentage points, 23/80 against 1/4: +3.75.
    got = driver.execute_script(
        "return [percent({num: 23, den: 80}), percent({num: 201, den: 400}),"
        " percent({num: 29, den: 400}), percent({num: -1, den: 16}), percent({num: 1, den: 0}),"
        " tenthsText(tenthsOf((23n * 4n - 1n * 80n) * 1000n, 80n * 4n))]")
    if got != ["28.8%", "50.3%", "7.3%", "-6.3%", "–", "3.8"]:
        fail("the wall's percentages %r, expected 28.8%%, 50.3%%, 7.3%%, -6.3%%, – and 3.8" % got)
    until(lambda: "高观镇" in driver.find_element(By.ID, "towns").text, "高观镇 in the table")
    push("disputes.screened=3", "disputes.resolved=2")
    until(lambda: "218" in kpis(), "the pushed figure (218) within 2 s, without a reload", 2)

    # Nothing overflows, in any column (labels, large figures, the table),
    # with every township of the county in the table.
    push("disputes.screened=123456789", "disputes.resolved=1")
    until(lambda: "219" in kpis(), "the pushed figure (219)")
    for i, town in enumerate(TOWNS):
        push("--town", town, "law_exam.takers=%d" % (1000 * (i + 1)), "disputes.screened=%d" % i)
    until(lambda: "共 25 个乡镇" in driver.find_element(By.ID, "page").text
          and not driver.find_elements(By.CSS_SELECTOR, "#towns-body tr.unreported")
          and driver.find_element(By.ID, "chart-note").text == "",
          "the table's pages of 25 townships, all of them with figures")
    # The table, the cards and the ratios turn their pages together, every
    # card and ratio shown on one page or the other (22 figures, 4 ratios:
    # two pages each, as even as they go); read in one script: the page is
    # rebuilt whenever a figure comes.
    # The chart of 25 townships at 1080p: its names and figures as large as
    # the table's, none running into another or into the note under it
    # (it squeezed all 25 into 14 px); the chart pages as the table does.
    got = chart_readable("25 townships at 1920x1080")
    if not re.match(r"第 1–\d+ 名", got["pager"]) or len(got["names"]) >= 25:
        fail("the chart of 25 townships in pages, from 第 1–N 名: it read %r" % (got,))
    pages = lambda: driver.execute_script(PAGES_JS)
    first = pages()
    until(lambda: pages()["rows"] != first["rows"] and pages()["chart"] != first["chart"],
          "the table's and the chart's next page", 15)
    second = pages()
    if set(first["rows"]) & set(second["rows"]):
        fail("the table's pages overlap: %s / %s" % (first["rows"], second["rows"]))
    if set(first["chart"]) & set(second["chart"]):
        fail("the chart's pages overlap: %s / %s" % (first["chart"], second["chart"]))
    # Every township ranked, page after page (a dot clicked shows its page).
    ranked = driver.execute_script(
        "return sortedTowns(tableMetrics()).chartTowns.map(townLabel)")
    seen = []
    for i in range(len(driver.find_elements(By.CSS_SELECTOR, "#chart-pager .pager i"))):
        driver.execute_script("document.querySelectorAll('#chart-pager .pager i')[%d].click()" % i)
        time.sleep(0.3)  # (drawn at the next frame)
        seen += chart_readable("the chart's page %d" % (i + 1))["names"][::-1]
    if len(ranked) != 25 or seen != ranked:
        fail("the chart's pages rank all 25 townships %r; they showed %r" % (ranked, seen))
    # As even as they go: no page holds more than its share (25 in rows of
    # 12 were 12, 12 and 1).
    said = re.search(r"/(\d+) 页（共 (\d+) 个乡镇）", driver.find_element(By.ID, "page").text)
    npages, ntowns = int(said.group(1)), int(said.group(2))
    share = -(-ntowns // npages)
    if max(len(first["rows"]), len(second["rows"])) > share:
        fail("the table's %d pages of %d townships: %d and %d rows, more than %d" %
             (npages, ntowns, len(first["rows"]), len(second["rows"]), share))
    catalog = api("/api/v1/catalog")
    for key, pager, ratios in (("cards", "kpi_pager", False), ("ratios", "ratio_pager", True)):
        labels = [m["label"] for m in catalog["metrics"] if (m["kind"] == "ratio") == ratios]
        shown = first[key] + second[key]
        pagers = sorted([first[pager], second[pager]])
        if sorted(shown) != sorted(labels) or pagers != ["1/2", "2/2"] or \
                abs(len(first[key]) - len(second[key])) > 1:
            fail("the %s over the two pages: %r (pages %r), not the catalog's %d: %r"
                 % (key, shown, pagers, len(labels), labels))
    # A figure too long for its column (888,888,888,911 in a table of ten
    # figures) is set smaller or on lines of its own, whole: never cut with
    # an ellipsis ("888,888,888,9…"), in any column.
    push("--town", "heyu", "disputes.screened=888888888888")
    driver.get("http://127.0.0.1:%d/?column=today&metrics=disputes.screened,law_exam.takers,"
               "law_exam.passed,law_households.trained,handbooks.law,handbooks.other,"
               "talks.people_received,talks.disputes_handled,grid.zones,disputes.resolved" % port)
    CUT_CELLS_JS = """
    return [...document.querySelectorAll('#towns-body td')].filter((td) =>
      td.scrollWidth > td.clientWidth + 1 || td.scrollHeight > td.clientHeight + 1 ||
      td.offsetHeight > 35).map((td) => td.textContent + ' (' + td.scrollWidth + 'x' +
      td.scrollHeight + ' px in ' + td.clientWidth + 'x' + td.clientHeight + ')');
    """
    for column in ("today", "month", "quarter", "year", "total"):
        click('#columns button[data-column="%s"]' % column)
        until(lambda: driver.execute_script(
            "const td = document.querySelector('#towns-body tr[data-town=heyu] td[data-metric]');"
            "return td && td.textContent === '888,888,888,911'")
              and driver.execute_script(CUT_CELLS_JS) == [],
              lambda: "heyu's 888,888,888,911 (23 + 888,888,888,888) whole in %s's table; cut: %r"
              % (column, driver.execute_script(CUT_CELLS_JS)))
    driver.get("http://127.0.0.1:%d/" % port)
    until(lambda: conn() == "live", "the live indicator after the table of ten figures")
    for b in driver.find_elements(By.CSS_SELECTOR, "#columns button"):
        b.click()
        time.sleep(0.6)
        bad = driver.execute_script(OVERFLOW_JS)
        if bad:
            fail("column %s at 1920x1080 overflows: %s" % (b.text, "; ".join(bad[:8])))
        cut = driver.execute_script(CUT_CELLS_JS)
        if cut:
            fail("column %s: figures cut short in the table: %s" % (b.text, "; ".join(cut[:8])))
    # Every label of the example catalog shows whole, in two lines or
    # three if need be: 法治理论考试参考人数 and 法治理论考试合格人数 differ at
    # their ends, which an ellipsis would cut; on each page of the cards
    # (their dots clicked), nothing overflowing.
    for page in (0, 1):
        driver.execute_script("document.querySelectorAll('#kpis .pager i')[%d].click()" % page)
        time.sleep(0.3)
        cut = driver.execute_script(CUT_LABELS_JS)
        if cut:
            fail("labels cut short on the wall, cards' page %d: %s" % (page + 1, "; ".join(cut)))
        bad = driver.execute_script(OVERFLOW_JS)
        if bad:
            fail("the cards' page %d overflows: %s" % (page + 1, "; ".join(bad[:8])))

    # The first header sorts the townships by name as shown, in Chinese
    # (pinyin) order, A to Z, then Z to A, in 累计 (where figures would
    # order them otherwise); the chart keeps ranking by a figure.
    click('#columns button[data-column="total"]')
    town_head = '#towns-head th[data-sort="__town"]'
    for order, want in (("A to Z", ["巴山镇", "北屏乡", "东安镇", "复兴街道", "高观镇", "高楠镇"]),
                        ("Z to A", ["左岚乡", "周溪乡", "治平乡", "沿河乡", "修齐镇", "咸宜镇"])):
        click(town_head)
        until(lambda: pages()["names"][:6] == want and
              "sorted" in driver.find_element(By.CSS_SELECTOR, town_head).get_attribute("class") and
              driver.find_element(By.ID, "chart-title").text.startswith("各乡镇"),
              lambda: "the townships sorted by name %s (%s), the chart still ranking: the table "
              "read %r" % (order, "，".join(want), pages()["names"][:6]), 3)

    # Last year's figure of the 8 townships of most exams, each a little
    # above this year's: their ticks in the chart fall just past their bars'
    # ends, where their figures are (seen below, in 本年).
    for i, town in list(enumerate(TOWNS))[-8:]:
        push("--town", town, "--time", last + "-01-01", "law_exam.takers=%d" % (1000 * (i + 1) + 700))

    # Other screens: the 1920x1080 page scaled to fill them (an LED wall
    # in 4K, an official's 1366x768 laptop, a 16:10 monitor), centred,
    # nothing outside the screen or cut, the table's page whole.
    for w, h in ((3840, 2160), (1366, 768), (1280, 720), (1920, 1200)):
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(1.5)
        r = driver.execute_script(
            "const r = document.body.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]")
        s = min(w / 1920, h / 1080)
        want = [(w - 1920 * s) / 2, (h - 1080 * s) / 2, 1920 * s, 1080 * s]
        if any(abs(a - b) > 2 for a, b in zip(r, want)):
            fail("at %dx%d the page is at %s, expected %s" % (w, h, r, want))
        bad = driver.execute_script(OVERFLOW_JS)
        if bad:
            fail("at %dx%d the page overflows: %s" % (w, h, "; ".join(bad[:8])))
        chart_readable("%dx%d" % (w, h))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})

    # Last year's column follows a late figure of last year (PERIOD_CHANGED).
    click('#columns button[data-column="y%s"]' % last)
    until(lambda: "化解矛盾纠纷" in kpis(), "last year's column")
    before = kpis()
    push("--time", last + "-01-01", "disputes.resolved=4321")
    until(lambda: "4,321" in kpis() or "4321" in kpis(),
          "last year's 化解矛盾纠纷 of 4321 within 3 s (it showed: %s)" % before[:80], 3)

    # Today, a figure reported as 0 first (高观镇's 重大信访上访事件; no other
    # township has one): the chart ranks by the next, which has figures,
    # not by a column of zeros.
    driver.get("http://127.0.0.1:%d/?column=today&metrics=incidents.major_petition,disputes.screened"
               % port)
    until(lambda: conn() == "live", "the live indicator after opening 今日")
    until(lambda: driver.find_element(By.ID, "chart-title").text == "各乡镇排查矛盾纠纷 · 今日",
          lambda: "the chart ranking by 排查矛盾纠纷 in 今日, not by 重大信访上访事件 (0 everywhere); "
          "its title read %r" % driver.find_element(By.ID, "chart-title").text)

    # The table's figures named by their labels, as the command line takes
    # them, and one nobody knows, which says so rather than show dashes as
    # if nothing were reported.
    driver.get("http://127.0.0.1:%d/?column=total&metrics=%s,nope" % (port, quote("化解矛盾纠纷")))
    until(lambda: conn() == "live", "the live indicator after opening ?metrics= by label")
    heads = lambda: [th.text.replace("\n", "") for th in
                     driver.find_elements(By.CSS_SELECTOR, "#towns-head th")]
    until(lambda: heads()[1:] == ["化解矛盾纠纷", "nope（无此指标）"],
          lambda: "?metrics=化解矛盾纠纷,nope: headers %r" % heads())

    # Opened as an operator may set a screen up, the table's figures named
    # in the URL, a gauge first: in last year's column, where the gauge
    # (综治网格) has no value, the chart ranks by the figure that has one.
    driver.get("http://127.0.0.1:%d/?column=y%s&metrics=grid.zones,disputes.resolved"
               % (port, last))
    until(lambda: conn() == "live", "the live indicator after opening last year's column")
    until(lambda: "化解矛盾纠纷" in driver.find_element(By.ID, "chart-title").text,
          "the chart ranking by 化解矛盾纠纷, not by a gauge without values last year")
    # A past year's 同比 is against the year before it, whole.
    yoy = lambda: first_cards() or driver.execute_script(
        "const c = [...document.querySelectorAll('#kpis .kpi')]"
        ".find(k => k.querySelector('.label').textContent === '化解矛盾纠纷');"
        "const y = c && c.querySelector('.yoy'); return y ? y.textContent + ' | ' + y.title : ''")
    until(lambda: yoy() == "去年同期 0 | 去年同期（%d）：0" % (int(last) - 1),
          "last year's 同比 of 化解矛盾纠纷 against the year before (0)")

    # 本年 so far against the same days of last year (1 January to today's
    # date): 219 against 4,321; the late figure reached it too.
    click('#columns button[data-column="year"]')
    deadline = time.time() + 20
    while not yoy().startswith("同比 ▼94.9%% | 去年同期（%s-01-01.." % last):
        if time.time() > deadline:
            fail("本年's 同比 of 化解矛盾纠纷: 219 against 4,321 (▼94.9%%), the card read %r"
                 % yoy())
        time.sleep(0.2)
    # ... at 24 px or more at 1080p, as legible as the figure (it was 16).
    size = driver.execute_script(
        "const c = [...document.querySelectorAll('#kpis .kpi')]"
        ".find(k => k.querySelector('.label').textContent === '化解矛盾纠纷');"
        "return parseFloat(getComputedStyle(c.querySelector('.yoy')).fontSize)")
    if size < 24:
        fail("the cards' 同比 at %s px at 1080p: 24 px or more" % size)
    bad = driver.execute_script(OVERFLOW_JS)
    if bad:
        fail("本年's cards with their 同比 overflow: %s" % "; ".join(bad[:8]))
    # The townships' 同比 in the chart, ranked by 化解矛盾纠纷 (its header
    # clicked): 高观镇's 4,321 of last year's same days as a tick across
    # its bar (the others had no figure then: no tick), ▼94.9% after its
    # 219.
    click('#towns-head th[data-sort="disputes.resolved"]')
    chart = lambda: driver.execute_script(
        "const c = echarts.getInstanceByDom(document.getElementById('chart'));"
        "if (!c) return null;"
        "const o = c.getOption(), names = o.yAxis[0].data;"
        "const bars = o.series.find(x => x.name === 'figures');"
        "const ticks = o.series.find(x => x.name === '去年同期');"
        "const i = names.indexOf('高观镇');"
        "return [ticks ? ticks.data.map(p => [names[p[1]], p[0]]) : null,"
        " i < 0 ? null : bars.label.formatter({value: bars.data[i], dataIndex: i}),"
        " document.getElementById('chart-title').textContent]")
    want = [[["高观镇", 4321]], "219 {yoy|▼94.9%}", "各乡镇化解矛盾纠纷 · 本年去年同期"]
    deadline = time.time() + 20
    while chart() != want:
        if time.time() > deadline:
            fail("the chart's 同比: 高观镇's tick at 4,321 and ▼94.9%% after its 219; it read %r"
                 % (chart(),))
        time.sleep(0.2)
    # A county of more series than one answer of tallyd holds (512 here):
    # tally-web reads its history township by township, so the cards and
    # the chart keep their past year and 同比: a late figure of last year
    # (4,321 + 1) shows in both, and no note says anything is missing.
    flood = ["law_exam.passed", "law_households.trained", "handbooks.law", "handbooks.other",
             "talks.people_received", "talks.disputes_handled", "talks.disputes_resolved",
             "petitions.leader_visits", "incidents.major_petition", "safety.meetings",
             "key_groups.assessments", "meetings.special", "patrols", "drills.emergency",
             "banners", "slogans", "safety.handouts"]
    for town in TOWNS:
        push("--town", town, *[m + "=1" for m in flood])
    def read_in_parts(prefix):
        """None when the period's answer holds every live series under prefix
        (more than 512), the county's first, then township by township."""
        live = api("/api/v1/tallies?prefix=u/")["tallies"]
        try:
            past = api("/api/v1/period?prefix=%s&period=%s" % (prefix, last))["tallies"]
        except urllib.error.HTTPError as e:
            return "%d %s" % (e.code, e.read().decode()[:200])
        want = [(t["metric"], t["scope"]) for t in live
                if prefix == "u/" or t["scope"] != "county"]
        got = [(t["metric"], t["scope"]) for t in past]
        scopes = [t["scope"] for t in past]
        if len(want) > 512 and sorted(got) == sorted(want) and \
                scopes == sorted(scopes, key=lambda x: (x != "county", x)):
            return None
        return "%d of %d series, scopes %r" % (len(got), len(want), scopes[:3])
    for prefix in ("u/", "u/town/"):
        deadline = time.time() + 20  # the live feed may still be taking the flood
        while (why := read_in_parts(prefix)) is not None:
            if time.time() > deadline:
                fail("/api/v1/period?prefix=%s of more series than one answer (512), read in "
                     "parts: %s" % (prefix, why))
            time.sleep(0.2)
    push("--time", last + "-01-02", "disputes.resolved=1")
    click('#columns button[data-column="y%s"]' % last)
    until(lambda: "4,322" in kpis(), "last year's 化解矛盾纠纷 (4,322) with too many series for one answer")
    note = lambda: driver.find_element(By.ID, "note").text
    bar = lambda: driver.execute_script(
        "const c = echarts.getInstanceByDom(document.getElementById('chart'));"
        "if (!c) return null;"
        "const o = c.getOption(), i = o.yAxis[0].data.indexOf('高观镇');"
        "const d = o.series.find(x => x.name === 'bars').data[i];"
        "return i < 0 ? null : (d && typeof d === 'object' ? d.value : d)")
    until(lambda: bar() == 4322 and note() == "",
          "高观镇's bar of %s at 4,322 and no note, with too many series for one answer" % last)
    click('#columns button[data-column="year"]')
    until(lambda: yoy().startswith("同比 ▼94.9%") and yoy().endswith("：4,322"),
          "本年's 同比 (▼94.9%, against 4,322) with too many series for one answer")
    want = [[["高观镇", 4322]], "219 {yoy|▼94.9%}", "各乡镇化解矛盾纠纷 · 本年去年同期"]
    until(lambda: chart() == want and note() == "",
          "the chart's 同比 read township by township: 高观镇's tick at 4,322, no note")
    # A gauge is a level: 本年 shows 综治网格 as it stands (高观镇's 23),
    # marked 最新, not a dash.
    card = lambda: first_cards() or driver.execute_script(
        "const c = [...document.querySelectorAll('#kpis .kpi')]"
        ".find(k => k.querySelector('.label').textContent === '综治网格');"
        "return c ? c.querySelector('.line').textContent : ''")
    until(lambda: card().startswith("23") and "最新" in card(), "综治网格 23 (最新) in 本年")
    click('#columns button[data-column="total"]')
    until(lambda: note() == "", "no note in 累计, which reads no history")
    until(lambda: "4,541" in kpis(), "化解矛盾纠纷 in total: 219 + 4,322 = 4,541")
    stopped_at = datetime.now(DAEMON_TZ)
    tallyd.terminate()
    tallyd.wait(20)
    until(lambda: conn() == "stale", "the stale indicator after tallyd stopped", 30)
    until(lambda: conn_text() == "数据中断 · 服务器未运行",
          "数据中断 · 服务器未运行 after tallyd stopped", 30)
    # The figures dimmed under a banner in plain words, since when (in
    # tallyd's zone), the technical reason on hover.
    until(lambda: down()[0] in banner_texts(stopped_at) and "tallyd 未运行" in down()[1]
          and down()[2] < 0.6 and "grayscale" in down()[3],
          lambda: "the figures dimmed under the banner %r after tallyd stopped; banner, its "
          "title, the figures' opacity and filter: %r" % (banner_texts(stopped_at)[0], down()))
    until(lambda: refused() == 2, "tally-web's log saying so again after tallyd stopped")
    back_at = datetime.now(DAEMON_TZ).replace(microsecond=0)
    tallyd = start(tallyd_args, dlog)
    until(lambda: conn() == "live", "the live indicator after tallyd came back", 40)
    until(lambda: conn_text() == "实时", "实时 after tallyd came back")
    until(lambda: down()[0] == "" and down()[2] == 1, lambda: "no banner, figures undimmed, "
          "after tallyd came back: %r" % (down(),))
    until(lambda: "4,541" in kpis(), "the figures after the resync")
    # 最近更新: the resync's time (the figures current again then), not
    # that of the last update before tallyd stopped.
    until(lambda: updated_at() >= back_at - timedelta(seconds=1),
          lambda: "最近更新 at the resync (%s or later); it read %r"
          % (back_at.strftime("%H:%M:%S"), driver.find_element(By.ID, "updated").text))
    stream = str(api("/healthz")["stream_id"])
    until(lambda: seq()[1] == "tallyd 数据流 %s（tallyd 重启后更换）" % stream,
          lambda: "the new stream id %s after tallyd's restart (it read %r)" % (stream, seq()))
    # 本年 ranked by exams taken: the 8 townships with a figure last year
    # each have a tick, showing: where this year's figure is lower, past its
    # bar's end, not under the figure set there.
    driver.get("http://127.0.0.1:%d/?column=year&metrics=law_exam.takers,disputes.resolved" % port)
    ticks = lambda: driver.execute_script(HIDDEN_TICKS_JS)
    until(lambda: ticks() is not None and len(ticks()[0]) == 8 and ticks()[1] == [],
          lambda: "a visible tick for each of the 8 townships with exams last year; ticks and "
          "hidden: %r" % (ticks(),))
    os.makedirs("artifacts", exist_ok=True)
    driver.save_screenshot(os.path.join("artifacts", "wall-1920x1080.png"))
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    # tally-web stays up while tallyd restarts: the page has no reason to
    # log an error at any point.
    if errors:
        fail("the browser logged errors: %s" % "; ".join(e.get("message", "") for e in errors[:5]))

    # A county as the duty officer sees it right after midnight: a tallyd
    # of the example catalog (25 townships declared) where 6 townships
    # reported a gauge only (综治网格: a level, shown in 今日 as it stands).
    REQ2 = "ipc://%s/req2" % TMP
    example_conf = os.path.join(TMP, "example.conf")
    shutil.copy(os.path.join(SRC, "systemd", "tallyd.conf.example"), example_conf)
    dlog2 = os.path.join(TMP, "tallyd2.log")
    tallyd2 = start_tallyd(TALLYD, example_conf, REQ2, "ipc://%s/pub2" % TMP, dlog2, "-s",
                           os.path.join(TMP, "state2"))
    SIX = ["gaoguan", "bashan", "gecheng", "xiuqi", "dongan", "gaoyan"]
    for i, town in enumerate(SIX):
        push("--town", town, "grid.zones=%d" % (20 + i), req=REQ2)
    # Two more with figures of yesterday only: their series exist, at 0 in
    # 今日 (a counter) or with a level set before today (a gauge); they
    # reported nothing today: 未报送 too, not rows of 0s and bars of 0.
    yesterday = (datetime.now(DAEMON_TZ) - timedelta(days=1)).strftime("%Y-%m-%d")
    push("--town", "pingba", "--time", yesterday, "disputes.screened=5", req=REQ2)
    push("--town", "lantian", "--time", yesterday, "grid.zones=7", req=REQ2)
    wlog2 = os.path.join(TMP, "web2.log")
    web2 = start([WEB, "-s", REQ2, "--listen", "127.0.0.1:0"], wlog2)
    port2 = int(wait_for(wlog2, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
    wait_for(wlog2, r"synchronised with tallyd")
    names = {t["id"]: t["label"] for t in api("/api/v1/catalog", port2)["townships"]}
    driver.get("http://127.0.0.1:%d/?column=today" % port2)
    until(lambda: conn() == "live", "the live indicator of the second tallyd")
    # Every declared township in the table: the 6 with figures first, then
    # the 19 others by name (pingba and lantian of yesterday among
    # them), each marked 未报送 (the table's first page read
    # at one instant; it turns every 10 s); the chart ranks the 6 only and
    # says how many it leaves out.
    TABLE_JS = """
    const rows = Array.from(document.querySelectorAll('#towns-body tr'), (r) => [
      r.getAttribute('data-town'), r.className,
      r.querySelector('td.missing') ? r.querySelector('td.missing').textContent : '']);
    const c = echarts.getInstanceByDom(document.getElementById('chart'));
    return [state.page, rows, document.getElementById('page').textContent,
            c ? c.getOption().yAxis[0].data : null,
            document.getElementById('chart-title').textContent,
            (document.getElementById('chart-note') || {}).textContent];
    """
    def table_ok():
        pg, rows, footer, bars, _, note = driver.execute_script(TABLE_JS)
        # In the page's order at the same instant: by name once its
        # catalog is in, by id before (read once, earlier, it could be
        # either, and the page's the other: a race seen under ASan).
        others = driver.execute_script(
            "return arguments[0].slice().sort(townOrder)", [t for t in names if t not in SIX])
        n = len(rows)
        return (pg == 0 and n > 6 and sorted(r[0] for r in rows[:6]) == sorted(SIX)
                and all(r[1] == "" and r[2] == "" for r in rows[:6])
                and rows[6:] == [[t, "unreported", "未报送"] for t in others[:n - 6]]
                and "共 25 个乡镇" in footer and sorted(bars) == sorted(names[t] for t in SIX)
                and "19 个乡镇未报送" in note)
    # The first page shows 10 s in every 20, and under ASan the page and
    # tally-web are slow to start: 45 s.
    until(table_ok, lambda: "the 25 declared townships, the 19 without figures last and marked "
          "未报送, the chart of the 6 saying 19 个乡镇未报送; page, rows, footer, chart, title, "
          "note: %r" % (driver.execute_script(TABLE_JS),), timeout=45)
    # Only a gauge has a figure other than 0 today: the chart ranks by a
    # counter (the table's first, 排查矛盾纠纷 of 坪坝镇's yesterday, saying
    # there is none yet), never by the gauge's fixed count.
    until(lambda: driver.execute_script(TABLE_JS)[4:] == ["各乡镇排查矛盾纠纷 · 今日",
                                                          "19 个乡镇未报送 · 今日尚无数据"],
          lambda: "the chart ranking by 排查矛盾纠纷, 今日尚无数据, not by 综治网格; "
          "title and note: %r" % (driver.execute_script(TABLE_JS)[4:],))
    # A ratio's 同比 in percentage points is the difference of the two
    # percentages as printed: 1,861 / 2,000 (93.05%: 93.1%) against
    # 9,234 / 10,000 (92.34%: 92.3%) is +0.8, not the exact 0.71's +0.7.
    push("law_exam.takers=2000", "law_exam.passed=1861", req=REQ2)
    push("--time", last + "-01-01", "law_exam.takers=10000", "law_exam.passed=9234", req=REQ2)
    click('#columns button[data-column="year"]')
    ratio = lambda: driver.execute_script(
        "const r = [...document.querySelectorAll('#ratios .ratio')]"
        ".find(k => k.querySelector('.label').textContent === '参考合格率');"
        "const y = r && r.querySelector('.yoy');"
        "return r ? [r.querySelector('.value').textContent, y ? y.textContent : ''] : null")
    until(lambda: ratio() == ["93.1%", "同比 +0.8 个百分点"],
          lambda: "参考合格率 93.1%% against 92.3%% a year earlier: 同比 +0.8 个百分点; it read %r"
          % (ratio(),))
    # tallyd stops: the open page dims its figures under the banner; one
    # opened now (累计: no history to read of a stopped tallyd) shows the
    # figures tally-web held, dimmed, under the banner, not empty boxes.
    stopped_at = datetime.now(DAEMON_TZ)
    tallyd2.terminate()
    tallyd2.wait(20)
    until(lambda: down()[0] in banner_texts(stopped_at) and down()[2] < 0.6,
          lambda: "the open page's figures dimmed under the banner; it read %r" % (down(),))
    held = api("/api/v1/tallies?prefix=u/county/law_exam.takers/", port2)
    if held.get("stale") is not True or held["tallies"][0]["values"]["total"] != 12000:
        fail("/api/v1/tallies with tallyd stopped: %s" % json.dumps(held)[:300])
    driver.get("http://127.0.0.1:%d/?column=total" % port2)
    until(lambda: "12,000" in kpis() and down()[0] in banner_texts(stopped_at)
          and down()[2] < 0.6 and conn_text() == "数据中断 · 服务器未运行"
          and driver.execute_script(TABLE_JS)[1][0][0] == "gaoguan",
          lambda: "a page opened while tallyd is stopped showing the figures held (12,000 "
          "exams taken), dimmed under the banner, 高观镇 first in the table; it read %r, %r, "
          "cards %r, table %r" % (conn_text(), down(), kpis()[:120],
                                  driver.execute_script(TABLE_JS)[1][:3]),
          # The cards and the table show their first page 10 s of every
          # 20: a page that came up slowly may wait a whole turn for it.
          timeout=45)
    driver.save_screenshot(os.path.join("artifacts", "wall-down-1920x1080.png"))
    # The outage goes on past midnight (the page's clock moved a day on):
    # the banner then says on which day it began, and 最近更新 (the figures
    # held: current until tallyd stopped) likewise.
    driver.execute_script("const now = Date.now; Date.now = () => now() + 86400000;")
    day = lambda at: "%d月%d日 %s" % (at.month, at.day, at.strftime("%H:%M"))
    until(lambda: down()[0] in ["数据中断：与统计服务器的连接已断开（自 %s 起），以下为断开前的数据"
                                % day(stopped_at + timedelta(minutes=k)) for k in (0, 1)]
          and driver.find_element(By.ID, "updated").text.startswith(
              "最近更新 %d月%d日 " % (stopped_at.month, stopped_at.day)),
          lambda: "the banner and 最近更新 with the day the outage began (%s), the day after; "
          "they read %r, %r" % (day(stopped_at), down()[0], driver.find_element(By.ID, "updated").text))
    web2.terminate()
    if web2.wait(10) != 0:
        fail("the second tally-web did not stop cleanly on SIGTERM")

    # Figures with decimals (PROTOCOL.md 10.6): a third tallyd whose
    # catalog gives 整治土地面积 one decimal, 专项资金 two, 河道水位 (a
    # gauge) one, 大额核算 nine (up to int64's last digit), and
    # 人均整治面积 = 整治土地面积 / 受益人数 (62 people, scale 0), whose
    # pair tallyd scales to [1248, 620].  The wall prints each as tally get
    # does, 124.8, not the integer 1,248 of the wire: cards, table, chart,
    # a past year and a 同比's figure of last year; the ratio card never
    # the scaled pair as if it were the operands' figures.
    REQ3 = "ipc://%s/req3" % TMP
    scaled_conf = os.path.join(TMP, "scaled.conf")
    with open(scaled_conf, "w", encoding="utf-8") as f:
        f.write(example.split("# Metrics.")[0])
        f.write("""
[metric land.area]
kind = counter
unit = 公顷
scale = 1
label = 整治土地面积

[metric land.people]
kind = counter
unit = 人
scale = 0
label = 受益人数

[metric funds.special]
kind = counter
unit = 万元
scale = 2
label = 专项资金

[metric river.level]
kind = gauge
unit = 米
scale = 1
label = 河道水位

[metric ledger.big]
kind = counter
unit = 元
scale = 9
max = 9223372036854775807
label = 大额核算

[ratio land.per_person]
numerator = land.area
denominator = land.people
label = 人均整治面积
""")
    dlog3 = os.path.join(TMP, "tallyd3.log")
    tallyd3 = start_tallyd(TALLYD, scaled_conf, REQ3, "ipc://%s/pub3" % TMP, dlog3, "-s",
                           os.path.join(TMP, "state3"))
    # tally push takes figures in the unit, as reports print them; the
    # wire carries them as integers: 124.8 ha as 1248, 2.65 (万元) as 265.
    push("land.area=124.8", "land.people=62", "funds.special=2.65", "river.level=-1",
         "ledger.big=9223372036.854775807", req=REQ3)
    push("--town", "bashan", "land.area=0.3", "land.people=1", "funds.special=1.55", req=REQ3)
    push("--time", last + "-01-01", "land.area=122.3", req=REQ3)
    wlog3 = os.path.join(TMP, "web3.log")
    web3 = start([WEB, "-s", REQ3, "--listen", "127.0.0.1:0"], wlog3)
    port3 = int(wait_for(wlog3, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
    wait_for(wlog3, r"synchronised with tallyd")
    # (本年: 累计 adds last year's 122.3; a gauge has its level only)
    wire = {(t["scope"], t["metric"]): t["values"]["total" if t["kind"] == "gauge" else "year"]
            for t in api("/api/v1/tallies?prefix=u/", port3)["tallies"]}
    ratio_pair = wire[("county", "land.per_person")]
    if [wire[("gaoguan", m)] for m in ("land.area", "funds.special", "river.level", "ledger.big")] \
            != [1248, 265, -10, 9223372036854775807] or \
            [ratio_pair["num"], ratio_pair["den"]] != [1251, 630]:
        fail("the wire's integers of the figures with decimals: %r" % wire)
    driver.get("http://127.0.0.1:%d/?column=year&metrics=land.area,funds.special,river.level,"
               "land.people,land.per_person" % port3)
    until(lambda: conn() == "live", "the live indicator of the third tallyd")
    SCALED_JS = """
    const cards = {};
    for (const k of document.querySelectorAll('#kpis .kpi'))
      cards[k.querySelector('.label').textContent] = [k.querySelector('.value').textContent,
        k.querySelector('.line').textContent, (k.querySelector('.yoy') || {}).title || ''];
    const row = (town) => Array.from(
      document.querySelectorAll('#towns-body tr[data-town="' + town + '"] td'), (td) => td.textContent);
    const r = document.querySelector('#ratios .ratio');
    const c = echarts.getInstanceByDom(document.getElementById('chart'));
    let bars = null;
    if (c) {
      const o = c.getOption(), names = o.yAxis[0].data;
      const f = o.series.find((x) => x.name === 'figures');
      bars = names.map((n, i) => [n, f.label.formatter({value: f.data[i], dataIndex: i})]);
    }
    return { cards, gaoguan: row('gaoguan'), bashan: row('bashan'),
             ratio: r ? [r.querySelector('.value').textContent, r.querySelector('.detail').textContent] : null,
             chart: bars, title: document.getElementById('chart-title').textContent };
    """
    scaled = lambda: driver.execute_script(SCALED_JS)
    yoySpanEnd = lambda: driver.execute_script("return yoySpan('year').split('..')[1]")
    want_cards = {"整治土地面积": "125.1", "受益人数": "63", "专项资金": "4.20", "河道水位": "-1.0",
                  "大额核算": "9,223,372,036.854775807"}
    until(lambda: {k: v[0] for k, v in scaled()["cards"].items()} == want_cards,
          lambda: "the cards with their decimals %r; they read %r" % (want_cards, scaled()["cards"]))
    # 本年 against last year's same days: 124.8 + 0.3 against 122.3
    # (▲2.3%), last year's figure on hover with its decimal.
    until(lambda: scaled()["cards"]["整治土地面积"][1:] == ["125.1公顷", "去年同期（%s-01-01..%s）：122.3"
                                                      % (last, yoySpanEnd())],
          lambda: "整治土地面积 125.1 公顷 against 122.3 last year; it read %r" % (scaled()["cards"],))
    # The township table: 高观镇 124.8 ha, 2.65, -1.0 m, 62 people, and
    # the ratio as a percentage (124.8 / 62: 201.3%); 巴山镇 0.3, 1.55.
    until(lambda: scaled()["gaoguan"] == ["高观镇", "124.8", "2.65", "-1.0", "62", "201.3%"]
          and scaled()["bashan"][:3] == ["巴山镇", "0.3", "1.55"],
          lambda: "高观镇's row 124.8 | 2.65 | -1.0 | 62 | 201.3%% and 巴山镇's 0.3 | 1.55; the "
          "table read %r, %r" % (scaled()["gaoguan"], scaled()["bashan"]))
    # The chart ranks by 整治土地面积, each figure with its decimal, 高观镇's
    # 同比 against its 122.3 (▲2.0%).
    until(lambda: scaled()["chart"] == [["巴山镇", "0.3"], ["高观镇", "124.8 {yoy|▲2.0%}"]],
          lambda: "the chart's figures 124.8 and 0.3; it read %r" % (scaled()["chart"],))
    # The ratio: 125.1 / 63 (198.6%) in the county; its card shows the
    # operands' own figures (the catalog names them), each with its
    # decimals, never tallyd's pair brought to one scale (1,251 / 630:
    # ten times the people).
    catalog3 = {m["id"]: m for m in api("/api/v1/catalog", port3)["metrics"]}
    if (catalog3["land.per_person"].get("numerator"), catalog3["land.per_person"].get("denominator")) \
            != ("land.area", "land.people"):
        fail("/api/v1/catalog should name the ratio's operands: %r" % catalog3["land.per_person"])
    until(lambda: scaled()["ratio"] == ["198.6%", "125.1 / 63"],
          lambda: "人均整治面积 198.6%% with its operands 125.1 / 63; it read %r" % (scaled()["ratio"],))
    # The longest figure is set smaller, not cut, and nothing overflows.
    bad = driver.execute_script(OVERFLOW_JS)
    if bad:
        fail("figures with decimals overflow: %s" % "; ".join(bad[:8]))
    driver.save_screenshot(os.path.join("artifacts", "wall-scaled-1920x1080.png"))
    # 累计: this year's and last year's, 125.1 + 122.3.
    click('#columns button[data-column="total"]')
    until(lambda: scaled()["cards"]["整治土地面积"][0] == "247.4",
          lambda: "累计's 整治土地面积 247.4; it read %r" % (scaled()["cards"].get("整治土地面积"),))
    # Last year's column: 122.3, in the card and 高观镇's row.
    click('#columns button[data-column="y%s"]' % last)
    until(lambda: scaled()["cards"]["整治土地面积"][0] == "122.3"
          and scaled()["gaoguan"][1] == "122.3",
          lambda: "last year's 整治土地面积 122.3; it read %r, %r"
          % (scaled()["cards"].get("整治土地面积"), scaled()["gaoguan"]))
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        fail("the browser logged errors: %s" % "; ".join(e.get("message", "") for e in errors[:5]))
    driver.get("about:blank")  # (its page would ask a stopped tally-web, an error logged)
    web3.terminate()
    web3.wait(10)
    tallyd3.terminate()
    tallyd3.wait(20)

    # A gauge's 同比 is like with like, as tally get --period --compare:
    # 巴山镇's 综治网格 12 set now and 10 on 1 January last year, 高观镇's 23
    # set three years ago.  本年's card shows the level now, 35, marked
    # 最新; its 同比 is this year's 12 against last year's 10 (+20.0%,
    # which tally get says), not 35 against 10 (▲250.0%), and says so.
    REQ4 = "ipc://%s/req4" % TMP
    dlog4 = os.path.join(TMP, "tallyd4.log")
    tallyd4 = start_tallyd(TALLYD, example_conf, REQ4, "ipc://%s/pub4" % TMP, dlog4, "-s",
                           os.path.join(TMP, "state4"))
    year = str(int(last) + 1)
    push("--town", "bashan", "grid.zones=12", req=REQ4)
    push("--town", "gaoguan", "--time", "%d-12-31" % (int(last) - 2), "grid.zones=23", req=REQ4)
    push("--town", "bashan", "--time", last + "-01-01", "grid.zones=10", req=REQ4)
    r = subprocess.run([TALLY, "-s", REQ4, "get", "--period", year, "--compare", "--metric",
                        "grid.zones"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or not re.search(r"county\s+12\s+10\s+\+2\s+\+20\.0%", r.stdout):
        fail("tally get --period %s --compare: county 12 against 10, +20.0%%: %s%s"
             % (year, r.stdout, r.stderr))
    wlog4 = os.path.join(TMP, "web4.log")
    web4 = start([WEB, "-s", REQ4, "--listen", "127.0.0.1:0"], wlog4)
    port4 = int(wait_for(wlog4, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
    wait_for(wlog4, r"synchronised with tallyd")
    driver.get("http://127.0.0.1:%d/?column=year&metrics=grid.zones" % port4)
    until(lambda: conn() == "live", "the live indicator of the fourth tallyd")
    # 最近更新 of a page opened: when its snapshot's figures were current
    # (tally-web's time of it), not when the page was opened.
    until(lambda: driver.find_element(By.ID, "updated").text.startswith("最近更新 "), "最近更新")
    opened = (time.time(), driver.find_element(By.ID, "updated").text)
    GAUGE_JS = """
    const c = [...document.querySelectorAll('#kpis .kpi')]
      .find(k => k.querySelector('.label').textContent === '综治网格');
    const y = c && c.querySelector('.yoy');
    const rows = Array.from(document.querySelectorAll('#towns-body tr'), (r) => [
      r.getAttribute('data-town'), r.className]).filter((r) => r[0] === 'bashan' || r[0] === 'gaoguan');
    const town = (s) => { const v = yoyOf(get(s, 'grid.zones')); return v ? v.text : null; };
    return [c ? c.querySelector('.line').textContent : '', y ? y.textContent : '', y ? y.title : '',
            town('bashan'), town('gaoguan'), rows, document.getElementById('chart-note').textContent];
    """
    gauge = lambda: driver.execute_script(GAUGE_JS)
    want = ["35个最新", "本年内 12 · 同比 ▲20.0%",
            "本年内（%s）最新值：12；去年同期（%s-01-01..%s）：10" % (year, last, yoySpanEnd()),
            "本年内 12 · 同比 ▲20.0%", None, [["bashan", ""], ["gaoguan", "unreported"]],
            "24 个乡镇未报送 · 本年尚无数据"]
    # (高观镇 set none this year: no 同比, and 未报送 in 本年; in 今日 too)
    until(lambda: gauge() == want,
          lambda: "综治网格 35 最新 with 本年内 12 · 同比 ▲20.0%%, as tally get says, 巴山镇's "
          "likewise, 高观镇 未报送; it read %r" % (gauge(),))
    first_cards()
    bad = driver.execute_script(OVERFLOW_JS)
    if bad:
        fail("the gauge's 同比 overflows: %s" % "; ".join(bad[:8]))
    # The 同比, legible across the room as the figure is: 24 px or more at
    # 1080p (it was 16), the gauge's two parts a line each, on a card.
    YOY_SIZE_JS = """
    const c = [...document.querySelectorAll('#kpis .kpi')]
      .find(k => k.querySelector('.label').textContent === '综治网格');
    const y = c.querySelector('.yoy');
    return [parseFloat(getComputedStyle(y).fontSize), y.getClientRects().length && y.offsetHeight /
            parseFloat(getComputedStyle(y).lineHeight || getComputedStyle(y).fontSize)];
    """
    size, lines = driver.execute_script(YOY_SIZE_JS)
    if size < 24 or round(lines) != 2:
        fail("the gauge card's 同比 at %s px on %s lines: 24 px or more, on two lines" % (size, lines))
    driver.save_screenshot(os.path.join("artifacts", "wall-gauge-1920x1080.png"))
    # Opened again (nothing has changed since): the same 最近更新.
    time.sleep(max(0, opened[0] + 2 - time.time()))
    driver.get("http://127.0.0.1:%d/?column=year&metrics=grid.zones" % port4)
    until(lambda: conn() == "live", "the live indicator of the fourth tallyd, the page opened again")
    until(lambda: driver.find_element(By.ID, "updated").text == opened[1],
          lambda: "%s (the figures' time) on a page opened later; it read %r"
          % (opened[1], driver.find_element(By.ID, "updated").text))
    click('#columns button[data-column="today"]')
    until(lambda: gauge()[5:] == [[["bashan", ""], ["gaoguan", "unreported"]],
                                  "24 个乡镇未报送 · 今日尚无数据"],
          lambda: "in 今日 巴山镇 with its gauge set today, 高观镇 未报送; it read %r" % (gauge(),))
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        fail("the browser logged errors: %s" % "; ".join(e.get("message", "") for e in errors[:5]))
    web4.terminate()
    web4.wait(10)
    tallyd4.terminate()
    tallyd4.wait(20)
except Exception as e:  # a slip of the test itself: still stop tallyd and tally-web
    import traceback
    fail("the test stopped on %s: %s\n%s" % (type(e).__name__, e,
                                             "".join(traceback.format_tb(e.__traceback__))))
finally:
    driver.quit()
web.terminate()
web.wait(10)
web_procs.finish(tallyd, TMP, "test_web_display")
