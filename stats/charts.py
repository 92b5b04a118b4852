"""Small hand-written SVG charts for the statistics page (no JavaScript, no library, works offline).

Every chart is an <svg role="img"> with a <title> and a <desc> (the text alternative; the table
under the chart has the numbers). Counts below stats.report.SMALL are drawn at one fixed size,
whatever they are, and labelled "<5", so neither a label nor a bar's size gives a small count away.
Measures (minutes) are floats and drawn as they are; None is not drawn.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from html import escape

from stats.report import SMALL, is_count, suppress

PALETTE = ("#1f5f8b", "#e07b39", "#3a8f5c", "#b03a48", "#7a5ca8", "#8c6d31", "#d45fa0", "#5f7f8f",
           "#9aa83a", "#2aa3b5", "#c9a227", "#6b4f3f", "#4a6fd1", "#a34f8f", "#3f7f3f")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
_ids = itertools.count(1)


def _drawn(value: object) -> float:
    """The size a value is drawn at: small counts all at the same size."""
    if value is None:
        return 0.0
    if is_count(value) and 0 < value < SMALL:  # type: ignore[operator]
        return SMALL / 2
    return float(value)  # type: ignore[arg-type]


def label(value: object) -> str:
    """A value as the charts and tables show it (Dutch decimal comma)."""
    if value is None:
        return "–"
    if is_count(value):
        return str(suppress(value))  # type: ignore[arg-type]
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    return str(value)


def _open(width: int, height: int, title: str, desc: str) -> tuple[str, list[str]]:
    uid = f"chart{next(_ids)}"
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
            f'aria-labelledby="{uid}-t {uid}-d">'
            f'<title id="{uid}-t">{escape(title)}</title><desc id="{uid}-d">{escape(desc)}</desc>')
    return uid, [head]


def _legend(parts: list[str], names: Sequence[str], x: int, y: int) -> int:
    """A legend in rows from (x, y); returns the y under it."""
    cx, cy = x, y
    for i, name in enumerate(names):
        w = 18 + 7 * len(name)
        if cx + w > 760:
            cx, cy = x, cy + 16
        parts.append(f'<rect x="{cx}" y="{cy - 9}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{cx + 14}" y="{cy}" {FONT}>{escape(name)}</text>')
        cx += w
    return cy + 16


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 20_000,
                 50_000, 100_000, 200_000, 500_000, 1_000_000):
        if top <= step * 5:
            return float(step * 5)
    return top


def _axis(parts: list[str], x0: int, y0: int, width: int, height: int, top: float, unit: str = "") -> None:
    for i in range(6):
        value = top * i / 5
        y = y0 + height - height * i / 5
        text = f"{value:g}" if value >= SMALL or value == 0 else ""
        parts.append(f'<line x1="{x0}" x2="{x0 + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        if text:
            parts.append(f'<text class="axis" x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" '
                         f'{FONT}>{text}{unit}</text>')


def stacked_bars(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[object]]],
                 desc: str, *, every: int = 1) -> str:
    """Bars per category, stacked by series (counts). `every`: label every n-th category."""
    width, x0, y0, plot_h = 780, 48, 12, 220
    plot_w = width - x0 - 10
    _, parts = _open(width, 0, title, desc)
    totals = [sum(_drawn(values[i]) for _, values in series) for i in range(len(categories))]
    top = _nice(max(totals, default=0))
    _axis(parts, x0, y0, plot_w, plot_h, top)
    slot = plot_w / max(len(categories), 1)
    bar = max(slot * 0.75, 1)
    for i, category in enumerate(categories):
        x = x0 + i * slot + (slot - bar) / 2
        base = y0 + plot_h
        for s, (name, values) in enumerate(series):
            size = _drawn(values[i])
            if not size:
                continue
            h = plot_h * size / top
            base -= h
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(category)}, {escape(name)}: '
                         f'{escape(label(values[i]))}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{y0 + plot_h + 14}" text-anchor="middle" '
                         f'{FONT}>{escape(category)}</text>')
    bottom = _legend(parts, [name for name, _ in series], x0, y0 + plot_h + 34)
    parts[0] = parts[0].replace('viewBox="0 0 780 0"', f'viewBox="0 0 {width} {bottom}"')
    return "".join(parts) + "</svg>"


def hbars(title: str, items: Sequence[tuple[str, object]], desc: str, *, unit: str = "") -> str:
    """One horizontal bar per item (a count or a measure), with its value as label."""
    width, x0, row = 780, 230, 22
    height = 10 + row * max(len(items), 1)
    _, parts = _open(width, height, title, desc)
    top = max((_drawn(v) for _, v in items), default=0) or 1.0
    plot_w = width - x0 - 70
    for i, (name, value) in enumerate(items):
        y = 6 + i * row
        w = plot_w * _drawn(value) / top
        parts.append(f'<text x="{x0 - 6}" y="{y + 13}" text-anchor="end" {FONT}>{escape(name[:40])}</text>')
        parts.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="{PALETTE[0]}">'
                     f'<title>{escape(name)}: {escape(label(value))}{unit}</title></rect>')
        parts.append(f'<text x="{x0 + w + 4:.1f}" y="{y + 13}" {FONT}>{escape(label(value))}{unit}</text>')
    return "".join(parts) + "</svg>"


def grouped_bars(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[object]]],
                 desc: str, *, unit: str = "") -> str:
    """Bars side by side per category (measures; None is not drawn)."""
    width, x0, y0, plot_h = 780, 48, 12, 200
    plot_w = width - x0 - 10
    _, parts = _open(width, 0, title, desc)
    top = _nice(max((_drawn(v) for _, values in series for v in values), default=0))
    _axis(parts, x0, y0, plot_w, plot_h, top, unit)
    slot = plot_w / max(len(categories), 1)
    bar = slot * 0.8 / max(len(series), 1)
    for i, category in enumerate(categories):
        x = x0 + i * slot + slot * 0.1
        for s, (name, values) in enumerate(series):
            value = values[i]
            h = plot_h * _drawn(value) / top
            parts.append(f'<rect x="{x + s * bar:.1f}" y="{y0 + plot_h - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(category)}, '
                         f'{escape(name)}: {escape(label(value))}{unit}</title></rect>')
        parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{y0 + plot_h + 14}" text-anchor="middle" '
                     f'{FONT}>{escape(category)}</text>')
    bottom = _legend(parts, [name for name, _ in series], x0, y0 + plot_h + 34)
    parts[0] = parts[0].replace('viewBox="0 0 780 0"', f'viewBox="0 0 {width} {bottom}"')
    return "".join(parts) + "</svg>"


def heatmap(title: str, rows: Sequence[str], columns: Sequence[str], grid: Sequence[Sequence[object]],
            desc: str) -> str:
    """A grid of cells, darker for more; each cell labelled with its value."""
    x0, y0, cell_w, cell_h = 80, 18, 28, 24
    width, height = x0 + cell_w * len(columns) + 4, y0 + cell_h * len(rows) + 4
    _, parts = _open(width, height, title, desc)
    top = max((_drawn(v) for line in grid for v in line), default=0) or 1.0
    for c, column in enumerate(columns):
        parts.append(f'<text class="axis" x="{x0 + c * cell_w + cell_w / 2:.0f}" y="{y0 - 5}" '
                     f'text-anchor="middle" {FONT}>{escape(column)}</text>')
    for r, name in enumerate(rows):
        y = y0 + r * cell_h
        parts.append(f'<text x="{x0 - 6}" y="{y + 16}" text-anchor="end" {FONT}>{escape(name)}</text>')
        for c, value in enumerate(grid[r]):
            share = _drawn(value) / top
            light = 97 - int(share * 70)
            ink = "#fff" if light < 55 else "#222"
            x = x0 + c * cell_w
            text = label(value) if value not in (0, 0.0, None) else ""
            parts.append(f'<rect x="{x}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" '
                         f'fill="hsl(205, 60%, {light}%)"><title>{escape(name)} {escape(columns[c])}: '
                         f'{escape(label(value))}</title></rect>')
            if text:
                parts.append(f'<text x="{x + cell_w / 2:.0f}" y="{y + 16}" text-anchor="middle" '
                             f'font-family="system-ui, sans-serif" font-size="9" fill="{ink}">{escape(text)}</text>')
    return "".join(parts) + "</svg>"
