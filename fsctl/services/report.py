"""Visual statistics (R-STAT): a self-contained HTML report with inline SVG bar charts.

No external assets and no JavaScript: the file opens anywhere, offline, and can be mailed.
`build_report_context` gathers the figures (fsctl.services.stats), `bar_chart_svg` draws a chart
(pure), `render_report` fills the template (Jinja, autoescaped).
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
import zlib
from html import escape

from ..files import umask_mode, write_atomic
from ..model import Tenant
from . import stats

COLOURS = {
    "answered": "#2e7d32",
    "missed": "#c62828",
    "abandoned": "#ef6c00",
    "busy": "#6a1b9a",
    "failed": "#757575",
    "refused": "#37474f",
    "talk": "#1565c0",
}


def _nice_max(value: float) -> float:
    """A round axis maximum at or above value (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    exp = 1
    while exp * 10 <= value:
        exp *= 10
    while exp > value * 10:
        exp /= 10
    for step in (1, 2, 5, 10):
        if step * exp >= value:
            return step * exp
    return 10 * exp


def bar_chart_svg(
    title: str,
    labels: list[str],
    series: list[tuple[str, list[float], str]],
    stacked: bool = True,
    unit: str = "",
    width: int = 860,
    height: int = 260,
) -> str:
    """An inline SVG bar chart: one group per label, series stacked or side by side (pure)."""
    left, right, top, bottom = 48, 12, 30, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(labels))
    if stacked:
        peak = max([sum(s[1][i] for s in series) for i in range(len(labels))] or [0])
    else:
        peak = max([v for s in series for v in s[1]] or [0])
    top_value = _nice_max(peak)
    slot = plot_w / n
    bar_w = slot * 0.8 / (1 if stacked else max(1, len(series)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for k in range(5):  # grid lines and axis values
        value = top_value * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        text = f"{value:g}{unit}"
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{escape(text)}</text>')
    every = max(1, n // 31 + (1 if n > 31 else 0))
    for i, label in enumerate(labels):
        x0 = left + slot * i + slot * 0.1
        base = top + plot_h
        for j, (name, values, colour) in enumerate(series):
            value = values[i] if i < len(values) else 0
            h = plot_h * value / top_value if top_value else 0
            x = x0 if stacked else x0 + bar_w * j
            y = base - h
            if h > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                    f"<title>{escape(f'{label} {name}: {value:g}{unit}')}</title></rect>"
                )
            if stacked:
                base = y
        if i % every == 0:
            cx = left + slot * i + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{escape(label)}</text>'
            )
    lx = left
    for name, _, colour in series:  # legend
        parts.append(f'<rect x="{lx}" y="{height - 16}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="{height - 7}" font-size="11">{escape(name)}</text>')
        lx += 18 + 7 * len(name) + 16
    parts.append("</svg>")
    return "".join(parts)


def build_report_context(tenant: Tenant, start: _dt.datetime, end: _dt.datetime) -> dict:
    """Everything the report shows, as plain data (bounded: days, hours, users, groups...)."""
    figures = stats.call_figures(tenant, start, end)  # one scan of the calls for the five tables
    daily, hourly, groups, queues, dids = (figures[k] for k in ("daily", "hourly", "groups", "queues", "dids"))
    users = [u for u in stats.user_stats(tenant, start, end) if u["received"] or u["placed"]]
    totals = {c: sum(d[c] for d in daily) for c in ("calls",) + stats.STATUS_COLUMNS + ("talk_time",)}
    return {
        "tenant": tenant.domain,
        "name": tenant.name,
        "timezone": tenant.timezone,
        "start": start.isoformat() + "Z",
        "end": end.isoformat() + "Z",
        "daily": daily,
        "hourly": hourly,
        "users": users,
        "groups": groups,
        "queues": queues,
        "dids": dids,
        "totals": totals,
    }


def _status_series(rows: list[dict]) -> list[tuple[str, list[float], str]]:
    return [
        (s, [r[s] for r in rows], COLOURS[s])
        for s in ("answered", "missed", "abandoned", "busy", "failed", "refused")
        if any(r[s] for r in rows)
    ]


def charts(context: dict) -> dict:
    """The report's SVG charts by name (pure)."""
    daily, hourly, users = context["daily"], context["hourly"], context["users"]
    return {
        "daily": bar_chart_svg("Calls per day", [d["date"][5:] for d in daily], _status_series(daily)),
        "hourly": bar_chart_svg(
            "Calls by hour of the day", [f"{h['hour']:02d}" for h in hourly], _status_series(hourly)
        ),
        "users": bar_chart_svg(
            "Answered and missed calls per user",
            [u["user"] for u in users],
            [
                ("answered", [u["answered"] for u in users], COLOURS["answered"]),
                ("missed", [u["missed"] for u in users], COLOURS["missed"]),
            ],
            stacked=False,
        ),
        "talk": bar_chart_svg(
            "Average incoming talk time per user",
            [u["user"] for u in users],
            [("average talk time", [u["avg_talk_time"] for u in users], COLOURS["talk"])],
            unit=" s",
        ),
    }


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Call statistics {{ tenant }}</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left} .chart{margin:1.5em 0}
</style></head><body>
<h1>Call statistics: {{ name }} ({{ tenant }})</h1>
<p>Period {{ start }} to {{ end }} (UTC); days and hours in {{ timezone }}.</p>
<table><tr>{% for k in totals %}<th>{{ k }}</th>{% endfor %}</tr>
<tr>{% for v in totals.values() %}<td>{{ v }}</td>{% endfor %}</tr></table>
{% for name in ("daily", "hourly", "users", "talk") %}<div class="chart">{{ charts[name] }}</div>
{% endfor %}
<h2>Users</h2>
<table><tr>{% for c in user_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for u in users %}<tr>{% for c in user_columns %}<td>{{ u[c] }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% for title, key, rows in sections %}
{% if rows %}<h2>{{ title }}</h2>
<table><tr><th>{{ key }}</th>{% for c in keyed_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr><td>{{ r[key] }}</td>{% for c in keyed_columns %}<td>{{ r[c] }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
{% endfor %}
</body></html>
"""


def render_report(context: dict) -> str:
    """The HTML report for a context (self-contained: inline CSS and SVG only)."""
    import jinja2  # only the HTML report needs it, not the other statistics

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    svg = {k: jinja2.utils.markupsafe.Markup(v) for k, v in charts(context).items()}
    return env.from_string(TEMPLATE).render(
        **context,
        charts=svg,
        user_columns=stats.USER_COLUMNS,
        keyed_columns=stats.KEYED_COLUMNS,
        sections=(
            ("Groups", "group", context["groups"]),
            ("Queues", "queue", context["queues"]),
            ("Public numbers", "did", context["dids"]),
        ),
    )


def _write_atomic(path, data: bytes) -> None:
    write_atomic(path, data, mode=umask_mode())


def write_report(tenant: Tenant, start, end, path, png_dir=None) -> list[str]:
    """Write the HTML report to `path` (atomically), and PNG charts into `png_dir` if given; returns the paths."""
    context = build_report_context(tenant, start, end)
    _write_atomic(path, render_report(context).encode("utf-8"))
    written = [str(path)]
    if png_dir:
        os.makedirs(png_dir, exist_ok=True)
        users = context["users"]
        for name, series in (
            ("daily", _status_series(context["daily"])),
            ("hourly", _status_series(context["hourly"])),
            (
                "users",
                [
                    ("answered", [u["answered"] for u in users], COLOURS["answered"]),
                    ("missed", [u["missed"] for u in users], COLOURS["missed"]),
                ],
            ),
        ):
            target = os.path.join(png_dir, f"{name}.png")
            _write_atomic(target, bar_chart_png(series))
            written.append(target)
    return written


# --- PNG bar charts (for e-mail clients that do not show SVG) --------------------------------


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _rgb(colour: str) -> bytes:
    return bytes.fromhex(colour.lstrip("#"))


def bar_chart_png(series: list[tuple[str, list[float], str]], width: int = 480, height: int = 160) -> bytes:
    """A PNG of stacked bars (no text: the e-mail carries the numbers), pure zlib + struct."""
    n = max((len(s[1]) for s in series), default=0) or 1
    totals = [sum(s[1][i] if i < len(s[1]) else 0 for s in series) for i in range(n)]
    top = _nice_max(max(totals or [0]))
    pixels = [[b"\xff\xff\xff"] * width for _ in range(height)]
    slot = width / n
    for i in range(n):
        x0, x1 = int(slot * i + slot * 0.1), max(int(slot * i + slot * 0.1) + 1, int(slot * (i + 1) - slot * 0.1))
        base = height
        for _, values, colour in series:
            value = values[i] if i < len(values) else 0
            h = int(round((height - 1) * value / top)) if top else 0
            for y in range(max(0, base - h), base):
                for x in range(x0, min(x1, width)):
                    pixels[y][x] = _rgb(colour)
            base -= h
    for x in range(width):  # base line
        pixels[height - 1][x] = b"\x60\x60\x60"
    return _png(width, height, [b"".join(row) for row in pixels])
