"""Reading Rasa 3.x NLU training data (YAML, `version: "3.1"`).

The same files train the embedded model and a real Rasa server. Besides Rasa's own keys we use
intent-level metadata `risk: concern|high|acute` to label the risk of every example in a block;
Rasa ignores metadata, our risk model learns from it.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import NLUDataError
from bot.triage.types import ALL_INTENTS, Danger, Risk, Route

# [text](entity), [text]{"entity": ...} and [text][...] annotations become plain text.
_ENTITY_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\}|\[[^\]]*\])")
_NON_DATA_FILES = {"config.yml", "config.yaml", "domain.yml", "endpoints.yml", "credentials.yml"}


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    risk: Risk
    source: str
    # Labelled danger kind and route, where the data gives them (validation sets do).
    danger: Danger | None = None
    route: Route | None = None


@dataclass
class NLUData:
    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # variant (lowercase) -> canonical
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    def intents(self) -> list[str]:
        return [e.intent for e in self.examples]

    def counts(self) -> Counter[str]:
        return Counter(e.intent for e in self.examples)

    def fingerprint(self) -> str:
        """A hash of the data files' bytes: a cached model is reused only for the same data."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.name.encode())
            digest.update(b"\x00")
            digest.update(path.read_bytes())
            digest.update(b"\x00")
        return digest.hexdigest()


def training_files(nlu_dir: Path) -> list[Path]:
    """The training files: top-level *.yml/*.yaml under data/nlu, never the test/ split."""
    files = [
        p
        for p in sorted(nlu_dir.glob("*.y*ml"))
        if p.is_file() and p.name not in _NON_DATA_FILES
    ]
    if not files:
        raise NLUDataError(f"{nlu_dir}: no Rasa NLU training files (*.yml) found")
    return files


def data_files(path: Path) -> list[Path]:
    """A single file, or every *.yml below a folder (used for test splits)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise NLUDataError(f"{path}: no such file or folder")
    files = [p for p in sorted(path.rglob("*.y*ml")) if p.name not in _NON_DATA_FILES]
    if not files:
        raise NLUDataError(f"{path}: no Rasa NLU files (*.yml) found")
    return files


def _block_lines(value: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """Examples of one block: a '- line' string, or a list of {text, metadata}."""
    if isinstance(value, str):
        out: list[tuple[str, dict[str, Any]]] = []
        for raw in value.splitlines():
            line = raw.strip()
            if not line:
                continue
            if not line.startswith("- "):
                raise NLUDataError(f"{where}: example lines must start with '- ', got {line[:40]!r}")
            out.append((line[2:].strip(), {}))
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise NLUDataError(f"{where}: example {index} needs a 'text' string")
            meta = item.get("metadata") or {}
            if not isinstance(meta, dict):
                raise NLUDataError(f"{where}: example {index}: metadata must be a mapping")
            out.append((item["text"].strip(), meta))
        return out
    raise NLUDataError(f"{where}: 'examples' must be a '- line' block or a list")


def _danger(meta: dict[str, Any], where: str) -> Danger | None:
    if "danger" not in meta:
        return None
    try:
        return Danger(str(meta["danger"]))
    except ValueError:
        raise NLUDataError(f"{where}: metadata danger {meta['danger']!r} is not a danger kind") from None


def _route(meta: dict[str, Any], where: str) -> Route | None:
    if "route" not in meta:
        return None
    try:
        return Route(str(meta["route"]))
    except ValueError:
        raise NLUDataError(f"{where}: metadata route {meta['route']!r} is not a route") from None


def _risk(meta: dict[str, Any], where: str) -> Risk | None:
    if "risk" not in meta:
        return None
    try:
        return Risk(str(meta["risk"]))
    except ValueError:
        raise NLUDataError(
            f"{where}: metadata risk {meta['risk']!r} is not one of none, concern, high, acute"
        ) from None


def load(paths: list[Path], *, known_intents: tuple[str, ...] = ALL_INTENTS) -> NLUData:
    """Load and validate Rasa NLU YAML files; errors name the file and the item."""
    data = NLUData(files=list(paths))
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise NLUDataError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("nlu"), list):
            raise NLUDataError(f"{path}: expected a mapping with an 'nlu:' list")
        for index, item in enumerate(document["nlu"]):
            where = f"{path}: nlu item {index}"
            if not isinstance(item, dict):
                raise NLUDataError(f"{where}: must be a mapping")
            if "intent" in item:
                intent = str(item["intent"])
                where = f"{path}: intent '{intent}' (nlu item {index})"
                if intent not in known_intents:
                    raise NLUDataError(f"{where}: not a taxonomy theme or conversation intent")
                block_meta = item.get("metadata") or {}
                if not isinstance(block_meta, dict):
                    raise NLUDataError(f"{where}: metadata must be a mapping")
                block_risk = _risk(block_meta, where) or Risk.none
                block_danger = _danger(block_meta, where)
                for text, meta in _block_lines(item.get("examples"), where):
                    plain = _ENTITY_ANNOTATION.sub(r"\1", text).strip()
                    if not plain:
                        raise NLUDataError(f"{where}: empty example")
                    risk = _risk(meta, where) or block_risk
                    danger = _danger(meta, where) or block_danger
                    route = _route(meta, where) or _route(block_meta, where)
                    data.examples.append(Example(plain, intent, risk, path.name, danger, route))
            elif "synonym" in item:
                canonical = str(item["synonym"])
                for text, _ in _block_lines(item.get("examples"), f"{path}: synonym {canonical}"):
                    data.synonyms[text.lower()] = canonical
            elif "regex" in item:
                name = str(item["regex"])
                lines = _block_lines(item.get("examples"), f"{path}: regex {name}")
                for text, _ in lines:
                    try:
                        re.compile(text)
                    except re.error as error:
                        raise NLUDataError(f"{path}: regex {name}: {error}") from None
                data.regexes.setdefault(name, []).extend(t for t, _ in lines)
            elif "lookup" in item:
                name = str(item["lookup"])
                lines = _block_lines(item.get("examples"), f"{path}: lookup {name}")
                data.lookups.setdefault(name, []).extend(t for t, _ in lines)
            else:
                raise NLUDataError(f"{where}: expected one of intent, synonym, regex, lookup")
    if not data.examples:
        raise NLUDataError(f"{', '.join(str(p) for p in paths)}: no intent examples")
    return data


def load_training(nlu_dir: Path) -> NLUData:
    return load(training_files(nlu_dir))
