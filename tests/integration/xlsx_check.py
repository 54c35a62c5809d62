#!/usr/bin/python3
# xlsx_check.py XLSX CSV - read the workbook `tally report --format xlsx`
# wrote with openpyxl (a reader the tests did not write) and check it cell
# by cell against the CSV report of the same period and scope: title,
# frozen header row, every metric's label, unit and value (a number, not
# text; a ratio a fraction with a percent format, its unit left empty);
# the title and headings in Chinese (高观镇2023年统计报表, 2023年第四季度),
# thin borders on every cell of the table, the 填报单位/填报日期 line under
# it; and the print setup (A4, portrait when the columns fit, centred, one
# page wide; title, header, label and unit on every page, page numbers in
# the footer).  Exit 0 when they match, 1 with the differences on stderr.
import csv
import re
import sys

import openpyxl


def fail(msg):
    print("xlsx_check: " + msg, file=sys.stderr)
    sys.exit(1)


def shown(cell):
    """The value as the CSV writes it."""
    v = cell.value
    if v is None:
        return ""
    # A figure of more than 15 digits, which a number cell would round, is
    # its exact text; any other text is an error.
    if isinstance(v, str):
        if not re.fullmatch(r"-?\d+(\.\d+)?", v) or len(re.sub(r"\D", "", v)) <= 15:
            fail("%s holds text %r, not a number" % (cell.coordinate, v))
        return v
    fmt = cell.number_format
    if fmt.endswith("%"):
        return "%.1f%%" % round(v * 100 + 1e-9, 1)
    places = len(fmt.split(".")[1]) if "." in fmt else 0
    return "%.*f" % (places, v)


QUARTERS = "一二三四"


def period_zh(name):
    """A period or span name as the report heads it, written here again
    from tally(1): 2023年, 2023年第四季度, 2023年11月, 2023年11月5日,
    2023年1月—11月."""
    if ".." in name:
        a, b = (period_zh(x) for x in name.split(".."))
        if a == b:
            return a
        year = b[:b.index("年") + 1]
        if a.startswith(year) and b != year:
            b = b[len(year):]
        return a + "—" + b
    m = re.fullmatch(r"(\d{4})(?:-Q(\d)|-(\d\d)(?:-(\d\d))?)?", name)
    if not m:
        fail("period %r" % name)
    y, q, mo, d = m.groups()
    if q:
        return "%s年第%s季度" % (y, QUARTERS[int(q) - 1])
    if d:
        return "%s年%d月%d日" % (y, int(mo), int(d))
    if mo:
        return "%s年%d月" % (y, int(mo))
    return y + "年"


def shown_change(cell):
    """A change as the CSV writes it: +12, -0.5, +0.8pp, +6.3%."""
    v = cell.value
    if v is None:
        return ""
    if isinstance(v, str):
        fail("%s holds text %r, not a number" % (cell.coordinate, v))
    fmt = cell.number_format
    if fmt.endswith("%"):
        text, suffix = "%.1f" % round(v * 100 + (1e-9 if v >= 0 else -1e-9), 1), "%"
    else:
        first = fmt.split(";")[0]
        places = len(first.split(".")[1].split('"')[0]) if "." in first else 0
        text, suffix = "%.*f" % (places, v), "pp" if "个百分点" in fmt else ""
    if float(text) == 0:
        return text.lstrip("-") + suffix
    return ("+" if v > 0 else "") + text + suffix


def thin(side):
    return side is not None and side.style == "thin"


def main():
    wb = openpyxl.load_workbook(sys.argv[1])
    ws = wb.active
    with open(sys.argv[2], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    # The CSV's last two columns, period and through, say on each row what
    # the workbook's title and note say once.
    if rows[0][-2:] != ["period", "through"]:
        fail("the CSV's last columns are %r, expected period and through" % rows[0][-2:])
    through = rows[1][-1]
    period = rows[1][-2]
    rows = [r[:-2] for r in rows]
    head = rows[0]
    title = ws.cell(1, 1).value
    if not title or not isinstance(title, str):
        fail("no title in A1")
    # Below the title, notes (数据截至 ..., 本期无数据 ...), then the header.
    hrow = next((y for y in range(2, 6) if ws.cell(y, 1).value == "指标"), 0)
    if not hrow:
        fail("no header row (指标) in rows 2 to 5")
    notes = [ws.cell(y, 1).value for y in range(2, hrow)]
    if through and "数据截至" + period_zh(through) not in notes:
        fail("the CSV runs through %s, the workbook's notes say %r" % (through, notes))
    if not through and any(n and n.startswith("数据截至") for n in notes):
        fail("the CSV's period is over, the workbook's notes say %r" % notes)
    if ws.freeze_panes != "B%d" % (hrow + 1):
        fail("panes frozen at %s, expected below the header row %d" % (ws.freeze_panes, hrow))
    # Under the table, who hands it in and when; the title says who, the
    # period in Chinese and what (高观镇2023年统计报表, 全县及各乡镇（街道）...).
    sig = ws.cell(hrow + len(rows), 1).value or ""
    m = re.fullmatch(r"填报单位：(\S+)  填报日期：\d{4}年\d{1,2}月\d{1,2}日", sig)
    if not m:
        fail("under the table %r, expected 填报单位：...  填报日期：YYYY年M月D日" % sig)
    several = head[4] != "value"
    who = "全县及各乡镇（街道）" if several else m.group(1)
    if several and m.group(1) != "全县":
        fail("填报单位 %r for the county's report" % m.group(1))
    if title != who + period_zh(period) + "统计报表":
        fail("title %r, expected %r" % (title, who + period_zh(period) + "统计报表"))
    if not several and ws.cell(hrow, 3).value != period_zh(period):
        fail("the value column is headed %r, expected %r" % (ws.cell(hrow, 3).value,
                                                            period_zh(period)))
    # A grid: every cell of the table, header row and ids included, has a
    # thin border on each side.
    ncols = len(head) - 4 + 3
    for y in range(hrow, hrow + len(rows)):
        for x in range(1, ncols + 1):
            b = ws.cell(y, x).border
            if not all(thin(s) for s in (b.left, b.right, b.top, b.bottom)):
                fail("%s has no thin border on every side" % ws.cell(y, x).coordinate)
    ps = ws.page_setup
    printed = sum(ws.column_dimensions[openpyxl.utils.get_column_letter(x)].width
                  for x in range(1, ncols))
    want = "portrait" if printed <= 90 else "landscape"
    if ps.orientation != want or str(ps.paperSize) != "9":
        fail("printed %s on paper %s, expected %s A4 (9) for columns %.0f wide" %
             (ps.orientation, ps.paperSize, want, printed))
    # fitToWidth 1 is the default, which writers may leave out.
    if not ws.sheet_properties.pageSetUpPr.fitToPage or ps.fitToWidth not in (None, 1) \
            or ps.fitToHeight != 0:
        fail("not fitted to one page wide: fitToPage %r, %r wide, %r high" %
             (ws.sheet_properties.pageSetUpPr.fitToPage, ps.fitToWidth, ps.fitToHeight))
    if not ws.print_options.horizontalCentered:
        fail("not centred horizontally on the page")
    titles = ((ws.print_title_rows or "").replace("$", ""),
              (ws.print_title_cols or "").replace("$", ""))
    if titles != ("1:%d" % hrow, "A:B"):
        fail("printed on every page: rows and columns %s, expected 1:%d and A:B" % (titles, hrow))
    # The title spans the printed columns, not the ids' column (编号, the
    # last, left off paper), so that it is centred on the page.
    merged = [str(m) for m in ws.merged_cells.ranges if m.min_row == 1]
    want = "A1:%s1" % openpyxl.utils.get_column_letter(ncols - 1)
    if merged != [want]:
        fail("the title is merged over %s, expected %s" % (merged, want))
    # Chinese text in the font Chinese Excel and WPS use, not Calibri.
    for cell in (ws.cell(1, 1), ws.cell(hrow, 1), ws.cell(hrow + 1, 1), ws.cell(hrow + 1, 3)):
        if cell.font.name != "等线":
            fail("%s is in font %r, expected 等线" % (cell.coordinate, cell.font.name))
    last = openpyxl.utils.get_column_letter(2 + len(head) - 4)
    area = ws.print_area or ""
    if isinstance(area, list):  # openpyxl 3.1 gives one range per area
        area = ",".join(area)
    area = area.replace("$", "").split("!")[-1]
    if area != "A1:%s%d" % (last, hrow + len(rows)):
        fail("print area %r, expected A1:%s%d (all but the ids, with the 填报 line)" %
             (area, last, hrow + len(rows)))
    if "&P" not in (ws.oddFooter.center.text or ""):
        fail("no page number in the footer: %r" % ws.oddFooter.center.text)
    width = ws.column_dimensions["A"].width
    longest = max(len(r[3]) for r in rows[1:])
    if width < 2 * longest:
        fail("column A is %.1f wide for labels of %d Chinese characters" % (width, longest))
    # Every heading fits its column ("2022-01-01 至 2022-12-06" for the days
    # a year before a period not over yet); a CJK character takes two.
    for col in range(1, ws.max_column + 1):
        text = ws.cell(hrow, col).value or ""
        need = sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)
        letter = openpyxl.utils.get_column_letter(col)
        have = ws.column_dimensions[letter].width
        if have < need:
            fail("column %s is %.1f wide for its heading %r" % (letter, have, text))
    nvals = len(head) - 4
    for i, r in enumerate(rows[1:]):
        y = hrow + 1 + i
        metric, kind, unit, label = r[:4]
        got = [ws.cell(y, 1).value, ws.cell(y, 2).value]
        want_unit = "" if kind == "ratio" else unit  # its values say %
        if got != [label, want_unit] and not (kind == "ratio" and got == [label, None]):
            fail("row %d: %r, expected %r" % (y, got, [label, want_unit]))
        idcol = 2 + nvals + 1
        if ws.cell(y, idcol).value != metric:
            fail("row %d: id %r, expected %r" % (y, ws.cell(y, idcol).value, metric))
        for j in range(nvals):
            want = r[4 + j]
            if head[4 + j].endswith(("change", "change_pct")):
                have = shown_change(ws.cell(y, 3 + j))
            else:
                have = shown(ws.cell(y, 3 + j))
            if have != want:
                fail("row %d (%s) column %s: %r, expected %r" % (y, metric, head[4 + j], have, want))
    print("xlsx_check: %d rows match" % (len(rows) - 1))


main()
