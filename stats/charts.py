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
    """The axis maximum for values up to `top`: 5, or the first of 10, 15, 20, 25, 30, 40, 50, 60,
    80, 100, 150, ... at least `top` (five whole ticks, and the tallest bar fills at least three
    quarters of the axis)."""
    if top <= 5:
        return 5.0
    scale = 10.0
    while True:
        for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            if top <= m * scale:
                return m * scale
        scale *= 10


def _tick(value: float, unit: str = "") -> str:
    return f"{value:g}{unit}"


def _axis_room(top: float, unit: str = "") -> int:
    """The x of a plot's left edge: room for the widest tick label (about 6.5 px a character at
    font-size 11) and a margin, so no label is cut off at the SVG's left edge."""
    widest = max(len(_tick(top * i / 5, unit)) for i in range(6))
    return max(36, int(widest * 6.5) + 12)


def _axis(parts: list[str], x0: float, y0: float, width: float, height: float, top: float,
          unit: str = "", *, measure: bool = False) -> None:
    """Grid lines and tick labels. On an axis of counts a tick between 0 and SMALL has no label
    (it would read as a small count); an axis of measures (`measure`, or with a unit) has all."""
    for i in range(6):
        value = top * i / 5
        y = y0 + height - height * i / 5
        text = _tick(value, unit) if value >= SMALL or value == 0 or unit or measure else ""
        parts.append(f'<line x1="{x0}" x2="{x0 + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        if text:
            parts.append(f'<text class="axis" x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" '
                         f'{FONT}>{escape(text)}</text>')


def stacked_bars(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[object]]],
                 desc: str, *, every: int = 1) -> str:
    """Bars per category, stacked by series (counts). `every`: label every n-th category."""
    width, y0, plot_h = 780, 12, 220
    _, parts = _open(width, 0, title, desc)
    totals = [sum(_drawn(values[i]) for _, values in series) for i in range(len(categories))]
    top = _nice(max(totals, default=0))
    x0 = _axis_room(top)
    plot_w = width - x0 - 10
    _axis(parts, x0, y0, plot_w, plot_h, top)
    slot = plot_w / max(len(categories), 1)
    bar = max(slot * 0.75, 1)
    for i, category in enumerate(categories):
        x = x0 + i * slot + (slot - bar) / 2
        base: float = y0 + plot_h
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
    width, row, most = 780, 22, 44  # names longer than `most` characters are shortened with "…"
    height = 10 + row * max(len(items), 1)
    _, parts = _open(width, height, title, desc)
    top = max((_drawn(v) for _, v in items), default=0) or 1.0
    names = [name if len(name) <= most else name[:most - 1].rstrip() + "\u2026" for name, _ in items]
    # Room for the longest name (about 6.5 px a character at font-size 11), so none is cut off.
    x0 = max(80, int(max((len(n) for n in names), default=0) * 6.5) + 16)
    plot_w = width - x0 - 70
    for i, (name, value) in enumerate(items):
        y = 6 + i * row
        w = plot_w * _drawn(value) / top
        parts.append(f'<text x="{x0 - 6}" y="{y + 13}" text-anchor="end" {FONT}>{escape(names[i])}</text>')
        parts.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="{PALETTE[0]}">'
                     f'<title>{escape(name)}: {escape(label(value))}{unit}</title></rect>')
        parts.append(f'<text x="{x0 + w + 4:.1f}" y="{y + 13}" {FONT}>{escape(label(value))}{unit}</text>')
    return "".join(parts) + "</svg>"


def grouped_bars(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[object]]],
                 desc: str, *, unit: str = "") -> str:
    """Bars side by side per category (measures; None is not drawn)."""
    width, y0, plot_h = 780, 12, 200
    _, parts = _open(width, 0, title, desc)
    top = _nice(max((_drawn(v) for _, values in series for v in values), default=0))
    x0 = _axis_room(top, unit)
    plot_w = width - x0 - 10
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


def panels(title: str, categories: Sequence[str],
           blocks: Sequence[tuple[str, str, Sequence[tuple[str, Sequence[object]]]]],
           desc: str, *, unit: str = "") -> str:
    """Measures in separate panels, one under the other, each on its own scale: `blocks` are
    (key, heading, series) with series as in `grouped_bars`. For values of very different size
    (a median of minutes next to a p90 of hours) that one shared axis would flatten. Each panel
    is a <g class="panel" data-panel="key">; bars carry their value as a label when there is
    room, and the unit stands once in the panel's heading, not at every tick."""
    width, plot_h, head_h, gap = 780, 150, 22, 30
    _, parts = _open(width, 0, title, desc)
    names = [name for name, _ in blocks[0][2]] if blocks else []
    y = 4
    for key, heading, series in blocks:
        top = _nice(max((_drawn(v) for _, values in series for v in values), default=0))
        x0 = _axis_room(top)
        plot_w = width - x0 - 10
        parts.append(f'<g class="panel" data-panel="{escape(key)}">')
        parts.append(f'<text class="panel-title" x="{x0}" y="{y + 14}" {FONT} font-weight="600">'
                     f'{escape(heading)}</text>')
        y0 = y + head_h + 8
        _axis(parts, x0, y0, plot_w, plot_h, top, measure=True)
        slot = plot_w / max(len(categories), 1)
        bar = slot * 0.8 / max(len(series), 1)
        for i, category in enumerate(categories):
            x = x0 + i * slot + slot * 0.1
            for s, (name, values) in enumerate(series):
                value = values[i]
                if value is None:
                    continue
                h = plot_h * _drawn(value) / top
                bx, by = x + s * bar, y0 + plot_h - h
                parts.append(f'<rect class="bar" x="{bx:.1f}" y="{by:.1f}" width="{bar:.1f}" '
                             f'height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(category)}, '
                             f'{escape(name)}: {escape(label(value))}{unit}</title></rect>')
                if bar >= 18:
                    parts.append(f'<text class="value" x="{bx + bar / 2:.1f}" y="{by - 3:.1f}" '
                                 f'text-anchor="middle" font-family="system-ui, sans-serif" font-size="9">'
                                 f'{escape(label(value))}</text>')
            parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{y0 + plot_h + 14}" text-anchor="middle" '
                         f'{FONT}>{escape(category)}</text>')
        parts.append("</g>")
        y = y0 + plot_h + 14 + gap
    bottom = _legend(parts, names, 48, y - gap + 20)
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
