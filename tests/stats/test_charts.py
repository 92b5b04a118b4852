"""stats.charts: the waiting chart's two panels, and room for every axis label (issue 14)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from stats import charts

SVG = "{http://www.w3.org/2000/svg}"
WEEKS = ["week 45", "week 46", "week 47", "week 48"]
MEDIANS = [("vrijwilligers", [5.7, 6.3, 8.0, None]), ("hulpverleners", [4.9, 6.0, 4.7, 12.3])]
P90S = [("vrijwilligers", [435.8, 365.9, 348.5, None]), ("hulpverleners", [20.4, 20.8, 14.4, 78.8])]


def bar_heights(group: ET.Element) -> list[float]:
    return [float(r.get("height", 0)) for r in group.iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_median_and_p90_each_get_a_panel_and_a_scale() -> None:
    svg = charts.panels("Wachttijd", WEEKS, [("median", "Mediaan (minuten)", MEDIANS),
                                             ("p90", "P90 (minuten)", P90S)], "desc", unit=" min")
    root = ET.fromstring(svg)
    groups = {g.get("data-panel"): g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"}
    assert set(groups) == {"median", "p90"}
    medians, p90s = bar_heights(groups["median"]), bar_heights(groups["p90"])
    assert len(medians) == 7 and len(p90s) == 7  # None is not drawn
    # The median axis goes to 15, not 600: a median of 5 minutes is a bar of 50 of 150 units.
    assert min(medians) > 40 and max(medians) > 110 and max(p90s) > 110
    ticks = [t.text for t in groups["median"].iter(f"{SVG}text") if t.get("class") == "axis"]
    assert ticks == ["0", "3", "6", "9", "12", "15"]
    # On one shared axis (the old chart) the same medians were a few units high.
    series = [(f"{n}: mediaan", v) for n, v in MEDIANS] + [(f"{n}: p90", v) for n, v in P90S]
    old = ET.fromstring(charts.grouped_bars("W", WEEKS, series, "d", unit=" min"))
    heights = [float(r.get("height", 0)) for r in old.iter(f"{SVG}rect")
               if "mediaan" in (r.findtext(f"{SVG}title") or "")]
    assert len(heights) == 8 and 0 < max(heights) < 5


def test_every_axis_label_has_room_on_the_left() -> None:
    """A tick label is drawn right-aligned at x0 - 4: its estimated width must fit in x0 - 4."""
    for svg in (charts.grouped_bars("W", WEEKS, P90S, "d", unit=" min"),
                charts.stacked_bars("S", ["a", "b"], [("x", [12345, 20000])], "d"),
                charts.panels("P", WEEKS, [("p90", "P90", P90S)], "d")):
        for x, text in re.findall(r'<text class="axis" x="([\d.]+)"[^>]*>([^<]+)<', svg):
            assert float(x) - len(text) * 6.5 >= 0, (x, text)


def test_long_names_in_horizontal_bars_are_not_cut_off() -> None:
    name = "Jonge Moedergroep (JGZ/CJG Kennemerland) en nog veel meer"
    svg = charts.hbars("H", [(name, 12), ("kort", 7)], "d")
    labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end"[^>]*>([^<]+)<', svg)
    assert labels[0][1].endswith("\u2026") and len(labels[0][1]) <= 44
    for x, text in labels:
        assert float(x) - len(text) * 6.5 >= 0, (x, text)


def test_axis_maximum_is_close_to_the_largest_value() -> None:
    assert [charts._nice(v) for v in (0, 3, 7, 13, 33, 61, 149, 501)] == [5, 5, 10, 15, 40, 80, 150, 600]
