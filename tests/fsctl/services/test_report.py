"""The HTML report: self-contained, charts drawn from the statistics; the PNG encoder."""

import re
import struct
import zlib

import pytest
from lxml import etree

from fsctl.services import cdr, report
from tests.fsctl.services.test_cdr import make_tenant
from tests.fsctl.services.test_stats import day_of_calls


def svg_rects(svg):
    root = etree.fromstring(svg.encode())
    return root.findall("{http://www.w3.org/2000/svg}rect")


def test_bar_chart_svg_heights_are_proportional_and_text_is_escaped():
    svg = report.bar_chart_svg(
        "Calls <&>", ["a<b", "c"], [("answered", [2, 4], "#2e7d32"), ("missed", [2, 0], "#c62828")]
    )
    bars = [r for r in svg_rects(svg) if r.get("height") != "10"]  # legend squares are 10 high
    heights = [float(r.get("height")) for r in bars]
    assert len(bars) == 3  # a zero value draws nothing
    assert heights[0] == heights[1] == heights[2] / 2  # 2 and 2 stacked, 4 on its own (same axis)
    assert heights[2] == pytest.approx(184 * 4 / 5)  # axis 0..5 over the 184 px plot: 4 is 4/5 of it
    assert "Calls &lt;&amp;&gt;" in svg and "a&lt;b" in svg and "<b" not in svg.replace("<b>", "")


def test_report_cli_writes_a_self_contained_html(db, fsctl, tmp_path):
    make_tenant(db)
    cdr.ingest_hangups(day_of_calls())
    out = tmp_path / "report.html"
    png = tmp_path / "png"
    result = fsctl(
        "stats",
        "report",
        "acme.example",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--out",
        str(out),
        "--png",
        str(png),
    )
    assert (
        result.stderr.strip() == f"report for acme.example written to {out}, {png}/daily.png, "
        f"{png}/hourly.png, {png}/users.png"
    )
    for name in ("daily", "hourly", "users"):
        assert [k for k, _ in _png_chunks((png / f"{name}.png").read_bytes())] == [b"IHDR", b"IDAT", b"IEND"]
    html = out.read_text()
    assert html.count("<svg") == 4
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)  # nothing fetched from anywhere
    assert "Calls per day" in html and "Answered and missed calls per user" in html
    # the per-user chart's tooltips carry the figures of fsctl stats users
    assert "102 answered: 2" in html and "103 missed: 2" in html
    assert "<td>102</td><td>User 102</td><td>3</td><td>2</td><td>1</td><td>0</td><td>70.0</td><td>140</td>" in html
    doc = etree.fromstring(html.encode(), etree.HTMLParser())
    assert doc.findtext(".//h1") == "Call statistics: ACME (acme.example)"


def _png_chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_png_bar_chart_is_a_valid_png_with_the_bars():
    data = report.bar_chart_png([("answered", [1, 4], "#00ff00"), ("missed", [1, 0], "#ff0000")], 40, 20)
    chunks = _png_chunks(data)
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (width, height, depth, colour) == (40, 20, 8, 2)
    raw = zlib.decompress(chunks[1][1])
    rows = [raw[i * (1 + 3 * width) + 1 : (i + 1) * (1 + 3 * width)] for i in range(height)]

    def pixel(x, y):
        return rows[y][3 * x : 3 * x + 3]

    # axis 0..5 over 19 px: bar 1 (x 2..17) is 4 px green under 4 px red, bar 2 (x 22..37) 15 px green
    green, red, white = b"\x00\xff\x00", b"\xff\x00\x00", b"\xff\xff\xff"
    assert [pixel(5, y) for y in (18, 16, 15, 12, 11)] == [green, green, red, red, white]
    assert [pixel(25, y) for y in (18, 5, 4)] == [green, green, white] and pixel(19, 10) == white


def test_report_reads_the_calls_once_and_the_parties_once(db, monkeypatch):
    tenant = make_tenant(db)
    cdr.ingest_hangups(day_of_calls())
    from fsctl.db import database
    from fsctl.services import stats

    seen = []
    real = database.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        seen.append(sql)
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", counting)
    start, end = stats.period(tenant, "2026-11-01", "2026-11-30")
    context = report.build_report_context(tenant, start, end)
    # PostgreSQL: one DECLARE ... FROM call_record, then FETCHes from the cursor
    assert sum("FROM call_record" in s for s in seen) == 1 and sum("FROM call_party" in s for s in seen) == 1
    assert [d["calls"] for d in context["daily"] if d["calls"]] == [5, 1]
