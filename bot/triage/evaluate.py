"""Evaluation of triage on labelled Rasa-format data, like `rasa test nlu` (used by `nlu test`
and bench/nlu_compare)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from bot.triage.engine import Triage
from bot.triage.nludata import Example, NLUData
from bot.triage.routing import is_question, risk_floor, route
from bot.triage.types import DANGER_KINDS, THEMES, Danger, Risk, Route, Theme


@dataclass
class IntentScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Report:
    accuracy: float
    macro_f1: float
    theme_macro_f1: float
    per_intent: dict[str, IntentScore]
    confusions: list[tuple[str, str, int]]
    risk_accuracy: float
    acute_recall: float | None
    acute_precision: float | None
    missed_acute: list[str]
    latency_ms: dict[str, float]
    backends: dict[str, int] = field(default_factory=dict)
    examples: int = 0
    theme_accuracy: float = 0.0
    route_accuracy: float = 0.0
    high_or_acute_recall: float | None = None
    false_acute_rate: float | None = None
    # per risk level: recall, precision, support; per danger kind: recall of the kind, support
    per_risk: dict[str, dict[str, float]] = field(default_factory=dict)
    per_danger: dict[str, dict[str, float]] = field(default_factory=dict)
    missed_high: list[str] = field(default_factory=list)
    false_acute: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "theme_macro_f1": round(self.theme_macro_f1, 4),
            "per_intent": {
                name: {
                    "precision": round(s.precision, 4),
                    "recall": round(s.recall, 4),
                    "f1": round(s.f1, 4),
                    "support": s.support,
                }
                for name, s in self.per_intent.items()
            },
            "confusions": [
                {"intent": a, "predicted": b, "count": n} for a, b, n in self.confusions
            ],
            "risk": {
                "accuracy": round(self.risk_accuracy, 4),
                "acute_recall": None if self.acute_recall is None else round(self.acute_recall, 4),
                "acute_precision": (
                    None if self.acute_precision is None else round(self.acute_precision, 4)
                ),
                "missed_acute": self.missed_acute,
            },
            "theme_accuracy": round(self.theme_accuracy, 4),
            "route_accuracy": round(self.route_accuracy, 4),
            "high_or_acute_recall": _round(self.high_or_acute_recall),
            "false_acute_rate": _round(self.false_acute_rate),
            "per_risk": self.per_risk,
            "per_danger": self.per_danger,
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "backends": self.backends,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def true_theme(example: Example) -> Theme:
    return Theme(example.intent) if example.intent in THEMES else Theme.none


def true_route(example: Example) -> Route:
    """The labelled route, or the route the taxonomy gives the labelled theme and risk."""
    if example.route is not None:
        return example.route
    theme = true_theme(example)
    return route(theme, example.intent, risk_floor(theme, example.risk), is_question(example.text))


def evaluate(triage: Triage, data: NLUData) -> Report:
    """Run triage over every example and score intents and risk."""
    truth: list[str] = []
    predicted: list[str] = []
    risk_truth: list[Risk] = []
    risk_predicted: list[Risk] = []
    latencies: list[float] = []
    backends: Counter[str] = Counter()
    missed: list[str] = []
    missed_high: list[str] = []
    false_acute: list[str] = []
    theme_hits = route_hits = 0
    danger_truth: list[Danger | None] = []
    danger_predicted: list[Danger] = []
    for example in data.examples:
        start = time.perf_counter()
        result = triage.run(example.text)
        latencies.append((time.perf_counter() - start) * 1000)
        backends[result.backend] += 1
        truth.append(example.intent)
        predicted.append(result.intent)
        risk_truth.append(example.risk)
        risk_predicted.append(result.risk)
        theme_hits += result.theme is true_theme(example)
        route_hits += result.route is true_route(example)
        danger_truth.append(example.danger)
        danger_predicted.append(result.danger)
        if example.risk is Risk.acute and result.risk is not Risk.acute:
            missed.append(example.text)
        if example.risk.rank >= Risk.high.rank and result.risk.rank < Risk.high.rank:
            missed_high.append(example.text)
        if example.risk is not Risk.acute and result.risk is Risk.acute:
            false_acute.append(example.text)
    per_risk: dict[str, dict[str, float]] = {}
    for level in Risk:
        support_n = sum(1 for r in risk_truth if r is level)
        flagged = sum(1 for r in risk_predicted if r is level)
        hit = sum(1 for t, p in zip(risk_truth, risk_predicted) if t is level and p is level)
        per_risk[level.value] = {
            "recall": round(hit / support_n, 4) if support_n else 0.0,
            "precision": round(hit / flagged, 4) if flagged else 0.0,
            "support": support_n,
        }
    per_danger: dict[str, dict[str, float]] = {}
    # Only examples with a labelled danger kind count (the test split has none).
    labelled = [(t, p) for t, p in zip(danger_truth, danger_predicted) if t is not None]
    for kind in DANGER_KINDS:
        support_n = sum(1 for t, _ in labelled if t.value == kind)
        said = sum(1 for _, p in labelled if p.value == kind)
        hit = sum(1 for t, p in labelled if t.value == kind and p.value == kind)
        per_danger[kind] = {
            "recall": round(hit / support_n, 4) if support_n else 0.0,
            "precision": round(hit / said, 4) if said else 0.0,
            "support": support_n,
        }
    high_true = sum(1 for r in risk_truth if r.rank >= Risk.high.rank)
    not_acute = sum(1 for r in risk_truth if r is not Risk.acute)
    labels = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    per_intent = {
        label: IntentScore(float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)
    }
    theme_f1 = [per_intent[label].f1 for label in labels if label in THEMES]
    confusions = Counter((t, p) for t, p in zip(truth, predicted) if t != p)
    acute_true = sum(1 for r in risk_truth if r is Risk.acute)
    acute_hit = sum(
        1 for t, p in zip(risk_truth, risk_predicted) if t is Risk.acute and p is Risk.acute
    )
    acute_flagged = sum(1 for p in risk_predicted if p is Risk.acute)
    lat = np.array(latencies) if latencies else np.zeros(1)
    return Report(
        accuracy=float(np.mean([t == p for t, p in zip(truth, predicted)])) if truth else 0.0,
        macro_f1=float(np.mean(f1)) if len(f1) else 0.0,
        theme_macro_f1=float(np.mean(theme_f1)) if theme_f1 else 0.0,
        per_intent=per_intent,
        confusions=[(a, b, n) for (a, b), n in confusions.most_common(20)],
        risk_accuracy=(
            float(np.mean([t is p for t, p in zip(risk_truth, risk_predicted)])) if truth else 0.0
        ),
        acute_recall=acute_hit / acute_true if acute_true else None,
        acute_precision=acute_hit / acute_flagged if acute_flagged else None,
        missed_acute=missed,
        latency_ms={
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
        },
        backends=dict(backends),
        examples=len(truth),
        theme_accuracy=theme_hits / len(truth) if truth else 0.0,
        route_accuracy=route_hits / len(truth) if truth else 0.0,
        high_or_acute_recall=(high_true - len(missed_high)) / high_true if high_true else None,
        false_acute_rate=len(false_acute) / not_acute if not_acute else None,
        per_risk=per_risk,
        per_danger=per_danger,
        missed_high=missed_high,
        false_acute=false_acute,
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_report(report: Report) -> str:
    """A plain-text report in the spirit of `rasa test nlu`."""
    lines = [
        f"examples: {report.examples}",
        (f"intent accuracy: {report.accuracy:.3f}   macro-F1: {report.macro_f1:.3f}   "
         f"theme macro-F1: {report.theme_macro_f1:.3f}"),
        "",
        f"{'intent':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}",
    ]
    for name, s in report.per_intent.items():
        lines.append(f"{name:<24}{s.precision:>10.3f}{s.recall:>10.3f}{s.f1:>10.3f}{s.support:>9}")
    lines += ["", "most frequent confusions (intent -> predicted: count):"]
    lines += [f"  {a} -> {b}: {n}" for a, b, n in report.confusions] or ["  none"]
    acute = "n/a" if report.acute_recall is None else f"{report.acute_recall:.3f}"
    precision = "n/a" if report.acute_precision is None else f"{report.acute_precision:.3f}"
    lines += [
        "",
        f"risk accuracy: {report.risk_accuracy:.3f}   acute recall: {acute}   acute precision: {precision}",
        (f"high-or-acute recall: {_fmt(report.high_or_acute_recall)}   "
         f"false-acute rate: {_fmt(report.false_acute_rate)}   "
         f"theme accuracy: {report.theme_accuracy:.3f}   route accuracy: {report.route_accuracy:.3f}"),
        f"missed acute messages: {len(report.missed_acute)}",
        "",
        f"{'risk level':<24}{'precision':>10}{'recall':>10}{'support':>9}",
        *(
            f"{name:<24}{v['precision']:>10.3f}{v['recall']:>10.3f}{int(v['support']):>9}"
            for name, v in report.per_risk.items()
        ),
        "",
        f"{'danger kind':<24}{'precision':>10}{'recall':>10}{'support':>9}",
        *(
            f"{name:<24}{v['precision']:>10.3f}{v['recall']:>10.3f}{int(v['support']):>9}"
            for name, v in report.per_danger.items()
        ),
        "",
        "latency per message (ms): "
        + "  ".join(f"{k} {v:.2f}" for k, v in report.latency_ms.items()),
        "backends used: " + ", ".join(f"{k} {v}" for k, v in report.backends.items()),
    ]
    return "\n".join(lines)
