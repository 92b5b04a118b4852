"""The embedded NLU model: scikit-learn, trained from data/nlu in seconds, no network.

One feature space (word 1-2-grams and char_wb 2-5-grams, TF-IDF) feeds two linear classifiers
(linear SVMs with sigmoid-calibrated probabilities; in cross-validation as accurate as logistic
regression and ten times faster to train):
the intent classifier (themes and conversation intents, Rasa's `/model/parse` shape) and the
risk classifier (none / concern / high / acute, learnt from the data's `risk` metadata). The
trained model is cached under var/models/ by a hash of the data, so it is trained once per data
version.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from scipy.sparse import hstack, spmatrix
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from bot.triage.nludata import Example, NLUData, load_training
from bot.triage.text import CLASSIFIER_MAX_CHARS, Synonyms, normalize
from bot.triage.types import Danger, Risk, Theme

logger = logging.getLogger(__name__)

MODEL_FORMAT = 5
# An acute example without a labelled danger kind takes the kind its theme most often means.
_ACUTE_DANGER_BY_THEME = {
    Theme.mental_health.value: Danger.suicide,
    Theme.domestic_violence.value: Danger.violence_now,
    Theme.child_health.value: Danger.medical_child,
    Theme.baby_care.value: Danger.medical_child,
    Theme.pregnancy.value: Danger.medical_pregnancy,
    Theme.parenting.value: Danger.child_in_danger,
    Theme.addiction.value: Danger.child_in_danger,
    Theme.housing.value: Danger.homeless_now,
}


def danger_label(example: Example) -> Danger:
    """The danger kind an example teaches: its label, else (acute only) its theme's usual kind."""
    if example.danger is not None:
        return example.danger if example.risk.rank >= Risk.high.rank else Danger.none
    if example.risk is Risk.acute:
        return _ACUTE_DANGER_BY_THEME.get(example.intent, Danger.suicide)
    return Danger.none
RANKING_LENGTH = 10


def _word_features() -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", sublinear_tf=True
    )


def _char_features() -> TfidfVectorizer:
    # char_wb n-grams carry typos, compounds and abbreviations (zwnager, kinderopvnag).
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)


class CalibratedLinear:
    """A linear SVM with per-class sigmoid calibration (Platt), fitted by scikit-learn's
    CalibratedClassifierCV on cross-validated scores, then reduced to plain arrays: a
    prediction is one sparse dot product and a sigmoid, well under a millisecond."""

    def __init__(self, balanced: bool = False) -> None:
        self.balanced = balanced
        self.classes_: np.ndarray = np.array([])
        self._coef: Any = None
        self._intercept: np.ndarray = np.array([])
        self._a: np.ndarray = np.array([])
        self._b: np.ndarray = np.array([])

    def fit(self, matrix: spmatrix, labels: list[str]) -> CalibratedLinear:
        fitted = CalibratedClassifierCV(
            LinearSVC(C=1.0, class_weight="balanced" if self.balanced else None),
            cv=3,
            ensemble=False,
            method="sigmoid",
        ).fit(matrix, labels)
        calibrated = fitted.calibrated_classifiers_[0]
        svm = calibrated.estimator
        if len(svm.classes_) < 3:
            raise ValueError("the embedded model needs at least three labels")
        self.classes_ = np.asarray(fitted.classes_)
        order = [list(svm.classes_).index(c) for c in self.classes_]
        self._coef = svm.coef_[order].T.copy()
        self._intercept = svm.intercept_[order].copy()
        self._a = np.array([calibrated.calibrators[i].a_ for i in order])
        self._b = np.array([calibrated.calibrators[i].b_ for i in order])
        return self

    def predict_proba(self, matrix: spmatrix) -> np.ndarray:
        scores = np.asarray(matrix @ self._coef) + self._intercept
        proba = 1.0 / (1.0 + np.exp(self._a * scores + self._b))
        total = proba.sum(axis=1, keepdims=True)
        uniform = np.full_like(proba, 1.0 / proba.shape[1])
        result: np.ndarray = np.divide(proba, total, out=uniform, where=total != 0)
        return result


def _classifier(balanced: bool = False) -> CalibratedLinear:
    return CalibratedLinear(balanced=balanced)


class EmbeddedModel:
    """Feature space plus intent and risk classifiers, trained together."""

    def __init__(self, synonyms: dict[str, str] | None = None) -> None:
        self.synonyms = Synonyms(synonyms or {})
        self.words = _word_features()
        self.chars = _char_features()
        self.intent_clf = _classifier()
        self.risk_clf = _classifier(balanced=False)
        # Danger kind, learnt from the high and acute examples only.
        self.danger_clf: CalibratedLinear | None = _classifier()
        self.fingerprint = ""
        # The intent and the risk classifier usually read the same text: vectorise it once.
        self._last: tuple[str, spmatrix] | None = None

    def prepare(self, text: str) -> str:
        return self.synonyms.apply(normalize(text[:CLASSIFIER_MAX_CHARS]))

    def fit(self, data: NLUData) -> EmbeddedModel:
        texts = [self.prepare(t) for t in data.texts()]
        matrix = hstack([self.words.fit_transform(texts), self.chars.fit_transform(texts)]).tocsr()
        self.intent_clf.fit(matrix, data.intents())
        self.risk_clf.fit(matrix, [e.risk.value for e in data.examples])
        rows = [i for i, e in enumerate(data.examples) if e.risk.rank >= Risk.high.rank]
        labels = [danger_label(data.examples[i]).value for i in rows]
        if len(set(labels)) >= 3:
            assert self.danger_clf is not None
            self.danger_clf.fit(matrix[rows], labels)
        else:
            self.danger_clf = None
        self.fingerprint = data.fingerprint()
        return self

    def vectorize(self, text: str) -> spmatrix:
        prepared = self.prepare(text)
        last = self._last
        if last is not None and last[0] == prepared:
            return last[1]
        vector = hstack(
            [self.words.transform([prepared]), self.chars.transform([prepared])]
        ).tocsr()
        self._last = (prepared, vector)
        return vector

    def intents(self, text: str) -> list[tuple[str, float]]:
        return self._intents(self.vectorize(text))

    def risk_probabilities(self, text: str) -> dict[Risk, float]:
        return self._risks(self.vectorize(text))

    def danger_probabilities(self, text: str) -> dict[Danger, float]:
        if self.danger_clf is None:
            return {}
        probabilities = self.danger_clf.predict_proba(self.vectorize(text))[0]
        return {Danger(str(label)): float(p) for label, p in zip(self.danger_clf.classes_, probabilities)}

    def _intents(self, vector: spmatrix) -> list[tuple[str, float]]:
        probabilities = self.intent_clf.predict_proba(vector)[0]
        order = np.argsort(probabilities)[::-1]
        return [(str(self.intent_clf.classes_[i]), float(probabilities[i])) for i in order]

    def _risks(self, vector: spmatrix) -> dict[Risk, float]:
        probabilities = self.risk_clf.predict_proba(vector)[0]
        out = {level: 0.0 for level in Risk}
        for label, p in zip(self.risk_clf.classes_, probabilities):
            out[Risk(str(label))] = float(p)
        return out


def _cache_path(cache_dir: Path, fingerprint: str) -> Path:
    return cache_dir / f"embedded-v{MODEL_FORMAT}-sk{sklearn.__version__}-{fingerprint[:20]}.joblib"


def train(data: NLUData, cache_dir: Path | None = None) -> EmbeddedModel:
    """Train on `data` and, if a cache folder is given, store the model there atomically."""
    model = EmbeddedModel(synonyms=data.synonyms).fit(data)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        target = _cache_path(cache_dir, model.fingerprint)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        os.close(fd)
        joblib.dump(model, tmp)
        os.replace(tmp, target)
        logger.info("embedded model trained on %d examples, cached as %s", len(data.examples), target.name)
    return model


def load_or_train(nlu_dir: Path, cache_dir: Path | None) -> EmbeddedModel:
    """The model for the data in `nlu_dir`: from the cache when the data is unchanged."""
    data = load_training(nlu_dir)
    if cache_dir is not None:
        path = _cache_path(cache_dir, data.fingerprint())
        if path.exists():
            try:
                model: Any = joblib.load(path)
                if isinstance(model, EmbeddedModel) and model.fingerprint == data.fingerprint():
                    return model
            except Exception:  # noqa: BLE001 - a damaged cache (any unpickling error) is retrained
                logger.warning("cached embedded model %s unreadable; retraining", path.name)
    return train(data, cache_dir)


class EmbeddedBackend:
    """NLU backend answering in Rasa's `/model/parse` shape from the embedded model."""

    name = "embedded"

    def __init__(self, model: EmbeddedModel) -> None:
        self.model = model

    def parse(self, text: str) -> dict[str, Any]:
        ranking = self.model.intents(text)
        return parse_result(text, ranking)


def parse_result(text: str, ranking: list[tuple[str, float]]) -> dict[str, Any]:
    top_name, top_confidence = ranking[0]
    return {
        "text": text,
        "intent": {"name": top_name, "confidence": top_confidence},
        "intent_ranking": [
            {"name": name, "confidence": confidence} for name, confidence in ranking[:RANKING_LENGTH]
        ],
        "entities": [],
    }
