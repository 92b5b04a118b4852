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
from bot.triage.nludata import NLUData
from bot.triage.types import Risk


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
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "backends": self.backends,
        }


def evaluate(triage: Triage, data: NLUData) -> Report:
    """Run triage over every example and score intents and risk."""
    truth: list[str] = []
    predicted: list[str] = []
    risk_truth: list[Risk] = []
    risk_predicted: list[Risk] = []
    latencies: list[float] = []
    backends: Counter[str] = Counter()
    missed: list[str] = []
    for example in data.examples:
        start = time.perf_counter()
        result = triage.run(example.text)
        latencies.append((time.perf_counter() - start) * 1000)
        backends[result.backend] += 1
        truth.append(example.intent)
        predicted.append(result.intent)
        risk_truth.append(example.risk)
        risk_predicted.append(result.risk)
        if example.risk is Risk.acute and result.risk is not Risk.acute:
            missed.append(example.text)
    labels = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    per_intent = {
        label: IntentScore(float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)
    }
    from bot.triage.types import THEMES

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
    )


def format_report(report: Report) -> str:
    """A plain-text report in the spirit of `rasa test nlu`."""
    lines = [
        f"examples: {report.examples}",
        f"intent accuracy: {report.accuracy:.3f}   macro-F1: {report.macro_f1:.3f}   "
        f"theme macro-F1: {report.theme_macro_f1:.3f}",
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
        f"missed acute messages: {len(report.missed_acute)}",
        "latency per message (ms): "
        + "  ".join(f"{k} {v:.2f}" for k, v in report.latency_ms.items()),
        "backends used: " + ", ".join(f"{k} {v}" for k, v in report.backends.items()),
    ]
    return "\n".join(lines)
