#!/usr/bin/python3
# xlsx_check.py XLSX CSV - read the workbook `tally report --format xlsx`
# wrote with openpyxl (a reader the tests did not write) and check it cell
# by cell against the CSV report of the same period and scope: title,
# frozen header row, every metric's label, unit and value (a number, not
# text; a ratio a fraction with a percent format); and the print setup
# (A4 landscape, title, header, label and unit on every page, page numbers
# in the footer).  Exit 0 when they match, 1 with the differences on stderr.
import csv
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
    if isinstance(v, str):
        fail("%s holds text %r, not a number" % (cell.coordinate, v))
    fmt = cell.number_format
    if fmt.endswith("%"):
        return "%.1f%%" % round(v * 100 + 1e-9, 1)
    places = len(fmt.split(".")[1]) if "." in fmt else 0
    return "%.*f" % (places, v)


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
    if through and "数据截至 " + through not in notes:
        fail("the CSV runs through %s, the workbook's notes say %r" % (through, notes))
    if not through and any(n and n.startswith("数据截至") for n in notes):
        fail("the CSV's period is over, the workbook's notes say %r" % notes)
    if ws.freeze_panes != "B%d" % (hrow + 1):
        fail("panes frozen at %s, expected below the header row %d" % (ws.freeze_panes, hrow))
    ps = ws.page_setup
    if ps.orientation != "landscape" or str(ps.paperSize) != "9":
        fail("printed %s on paper %s, expected landscape A4 (9)" % (ps.orientation, ps.paperSize))
    titles = ((ws.print_title_rows or "").replace("$", ""),
              (ws.print_title_cols or "").replace("$", ""))
    if titles != ("1:%d" % hrow, "A:B"):
        fail("printed on every page: rows and columns %s, expected 1:%d and A:B" % (titles, hrow))
    last = openpyxl.utils.get_column_letter(2 + len(head) - 4)
    area = ws.print_area or ""
    if isinstance(area, list):  # openpyxl 3.1 gives one range per area
        area = ",".join(area)
    area = area.replace("$", "").split("!")[-1]
    if area != "A1:%s%d" % (last, hrow + len(rows) - 1):
        fail("print area %r, expected A1:%s%d (all but the ids)" % (area, last, hrow + len(rows) - 1))
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
        if got != [label, unit]:
            fail("row %d: %r, expected %r" % (y, got, [label, unit]))
        idcol = 2 + nvals + 1
        if ws.cell(y, idcol).value != metric:
            fail("row %d: id %r, expected %r" % (y, ws.cell(y, idcol).value, metric))
        for j in range(nvals):
            want = r[4 + j]
            if head[4 + j] in ("change", "change_pct"):
                continue  # shown with signs; compared by the C test through the CSV
            have = shown(ws.cell(y, 3 + j))
            if have != want:
                fail("row %d (%s) column %s: %r, expected %r" % (y, metric, head[4 + j], have, want))
    print("xlsx_check: %d rows match" % (len(rows) - 1))


main()
