"""The import graph of bot/, handoff/ and stats/ keeps the layers' direction (issue 13, checks).

Built with the standard library: every source file is parsed (ast), and every import in it
counts, at the top and inside functions. Two rules:

- no import cycles between modules, counting the imports that run when a module is loaded (the
  top level, not the ones inside a function or under `if TYPE_CHECKING:`);
- imports only point DOWN the layer list of docs/architecture (the brief's architecture.md): a
  module may import its own level or a lower one, never a higher one, wherever the import is
  (an import inside a function is still a dependency, only a late one).

Violations that other steps of issue 13 are removing right now are listed in KNOWN, each with
its reason; the test prints the list, fails on any violation not in it, and fails on an entry
that is no longer a violation (remove it). The list must end empty.

Run `python tests/test_layers.py` to print the graph's problems without pytest.
"""

from __future__ import annotations

import ast
import gc
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handoff", "stats")

# Module (or package prefix) -> level. The longest matching prefix decides, so a new module in a
# placed package (bot/triage/, handoff/, ...) is placed with it; a new top-level bot/*.py module
# must be placed here (the test fails until it is).
LEVELS: dict[str, int] = {
    # 1. The shared vocabulary and settings: nothing of ours below them.
    "bot": 1,  # the package's __init__ (a docstring)
    "bot.config": 1,
    "bot.errors": 1,
    "bot.rules": 1,
    "bot.triage.types": 1,
    "bot.logsafe": 1,  # what a log line may hold; no imports of ours; config and channels use it
    "bot.hours": 1,  # opening hours parsed from a setting; config validates with it
    "bot.privacy": 1,  # pure masking of text (no imports of ours); stats and the desk use it
    # 2. Pure triage and intents, storage (models, migrations, Redis, crypto, the outbox writer).
    "bot.triage": 2,
    "bot.storage": 2,
    "bot.intents": 2,
    "bot.labels": 2,  # Dutch words for values, read from data/labels (a data loader, like intents)
    # The channel-neutral types every layer passes around (InboundMessage, OutboundMessage, the
    # Sender protocol, DeliveryError): vocabulary for the pipeline and the worker, not an adapter.
    "bot.channels.base": 2,
    # 3. The one boundary for every turn.
    "bot.pipeline": 3,
    # 4. Services on top of the pipeline and storage.
    "handoff": 4,
    "bot.accounts": 4,
    "stats": 4,
    # Sends what the outbox holds through a Sender (the protocol of level 2); the concrete
    # senders are handed in by the composition root. A service like the desk.
    "bot.worker": 4,
    # Posts a reply right after the pipeline's commit (a courier over the pipeline's result).
    "bot.delivery": 4,
    # Deletes what the retention period has passed: storage rows and stats facts.
    "bot.retention": 4,
    # A start-up check of the catalogue (intents) against the settings, for app and cli.
    "bot.catalogue_warning": 4,
    # The catalogue in SQL: the live Catalogue per process and the coordinators' changes.
    "bot.catalogue_service": 4,
    # 5. Channel adapters.
    "bot.channels": 5,
    # 6. Routes and templates.
    "bot.web": 6,
    # 7. The composition root and the command line.
    "bot.services": 7,
    "bot.composition": 7,
    "bot.cli": 7,
}

# (importer, imported) -> why it is still there. Must end empty; an entry that is no longer a
# violation fails the test (remove it).
KNOWN: dict[tuple[str, str], str] = {
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    loaded: bool  # runs when the importer is loaded (top level, not under TYPE_CHECKING)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    return {module_name(path, root): path
            for package in packages for path in sorted((root / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             modules: Mapping[str, object]) -> list[str]:
    """The modules of ours an import statement names (`from a import b` is a.b when that is a
    module, else a)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer.split(".") if is_package else importer.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                 for alias in node.names]
    found = []
    for name in names:
        # `import a.b.c` loads a, a.b and a.b.c; the deepest of ours is what it depends on.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != importer:
            found.append(name)
    return found


def _parse(path: Path) -> ast.Module:
    """ast.parse with the garbage collector held off: on CPython 3.11 a finalizer the collector
    runs in the middle (an earlier test's pooled database connection being reset) breaks the
    AST constructor's depth count ("SystemError: AST constructor recursion depth mismatch"),
    seen once in a full PostgreSQL run."""
    source = path.read_text(encoding="utf-8")
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename=str(path))
    finally:
        if enabled:
            gc.enable()


def imports_of(importer: str, path: Path, modules: Mapping[str, object]) -> list[Import]:
    tree = _parse(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def walk(node: ast.AST, loaded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, importer, is_package, modules):
                    found.append(Import(importer, target, child.lineno, loaded))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
                    isinstance(child, ast.If) and _is_type_checking(child.test)):
                walk(child, False)  # runs later (a call), or never (only for the type checker)
            else:
                walk(child, loaded)

    walk(tree, True)
    return found


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> list[Import]:
    modules = source_modules(root, packages)
    return [edge for name, path in modules.items() for edge in imports_of(name, path, modules)]


def level_of(module: str, levels: Mapping[str, int] = LEVELS) -> int | None:
    name = module
    while name:
        if name in levels:
            return levels[name]
        name = name.rpartition(".")[0]
    return None


def cycles(edges: Iterable[Import]) -> list[list[str]]:
    """Every set of modules that import each other at load time (strongly connected components of
    more than one module, or a module importing itself), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.loaded:
            graph.setdefault(edge.importer, set()).add(edge.imported)
            graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan, iterative enough for a few hundred modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def upward(edges: Iterable[Import], levels: Mapping[str, int] = LEVELS) -> list[Import]:
    """Imports of a module from a higher level than its own."""
    result = []
    for edge in edges:
        own, other = level_of(edge.importer, levels), level_of(edge.imported, levels)
        if own is not None and other is not None and other > own:
            result.append(edge)
    return result


def unplaced(edges: Iterable[Import], modules: Iterable[str],
             levels: Mapping[str, int] = LEVELS) -> list[str]:
    return sorted({name for name in modules if level_of(name, levels) is None})


def problems(edges: list[Import], modules: Iterable[str], levels: Mapping[str, int] = LEVELS,
             known: Mapping[tuple[str, str], str] = KNOWN) -> list[str]:
    """What is wrong with the graph, one line each; [] when it keeps the rules."""
    found = [f"not placed in LEVELS: {name}" for name in unplaced(edges, modules, levels)]
    cyclic = cycles(edges)
    cyclic_pairs = set()
    for component in cyclic:
        members = set(component)
        pairs = {(e.importer, e.imported) for e in edges
                 if e.loaded and e.importer in members and e.imported in members}
        cyclic_pairs |= pairs
        if not pairs & set(known):
            found.append("import cycle: " + " <-> ".join(component))
    violations = {(e.importer, e.imported): e for e in upward(edges, levels)}
    for pair, edge in sorted(violations.items()):
        if pair not in known:
            found.append(f"upward import: {edge.importer} (level {level_of(edge.importer, levels)})"
                         f" imports {edge.imported} (level {level_of(edge.imported, levels)}),"
                         f" line {edge.line}")
    for pair in sorted(known):
        if pair not in violations and pair not in cyclic_pairs:
            found.append(f"no longer a violation, remove from KNOWN: {pair[0]} -> {pair[1]}")
    return found


def report(known: Mapping[tuple[str, str], str] = KNOWN) -> str:
    lines = [f"known layer violations still to remove: {len(known)}"]
    lines += [f"  {importer} -> {imported}: {why}" for (importer, imported), why in known.items()]
    return "\n".join(lines)


# the rules on the real tree --------------------------------------------------------------------


def test_imports_point_down_and_never_go_round() -> None:
    modules = source_modules()
    edges = import_graph()
    print(report())
    assert edges, "no imports found: is the tree where the test looks?"
    assert problems(edges, modules) == []


# the checks themselves: each fails on a graph that breaks its rule ----------------------------

FAKE_LEVELS = {"low": 1, "mid": 2, "top": 3}


def fake(*edges: tuple[str, str] | tuple[str, str, bool]) -> list[Import]:
    return [Import(edge[0], edge[1], 1, edge[2] if len(edge) == 3 else True)  # type: ignore[misc]
            for edge in edges]


def test_a_graph_that_keeps_the_rules_has_no_problems() -> None:
    edges = fake(("top", "mid"), ("mid", "low"), ("top", "low"), ("mid.a", "mid.b"))
    assert problems(edges, ["top", "mid", "mid.a", "mid.b", "low"], FAKE_LEVELS, {}) == []


def test_an_upward_import_is_found_also_inside_a_function() -> None:
    edges = fake(("top", "mid"), ("low", "top", False))
    assert problems(edges, ["top", "mid", "low"], FAKE_LEVELS, {}) == [
        "upward import: low (level 1) imports top (level 3), line 1"]


def test_a_cycle_is_found_within_one_level_too() -> None:
    edges = fake(("mid.a", "mid.b"), ("mid.b", "mid.c"), ("mid.c", "mid.a"), ("top", "mid.a"))
    assert cycles(edges) == [["mid.a", "mid.b", "mid.c"]]
    assert problems(edges, ["mid.a", "mid.b", "mid.c", "top"], FAKE_LEVELS, {}) == [
        "import cycle: mid.a <-> mid.b <-> mid.c"]


def test_an_import_inside_a_function_does_not_close_a_cycle() -> None:
    assert cycles(fake(("mid.a", "mid.b"), ("mid.b", "mid.a", False))) == []


def test_a_known_violation_passes_and_a_fixed_one_must_leave_the_list() -> None:
    edges = fake(("low", "top"))
    known = {("low", "top"): "being moved", ("mid", "top"): "already fixed"}
    assert problems(edges, ["low", "mid", "top"], FAKE_LEVELS, known) == [
        "no longer a violation, remove from KNOWN: mid -> top"]


def test_a_module_without_a_level_is_a_problem() -> None:
    assert problems([], ["elsewhere.new"], FAKE_LEVELS, {}) == [
        "not placed in LEVELS: elsewhere.new"]


def test_imports_are_read_from_source_top_level_function_and_relative(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("import json\n")
    (package / "main.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import pkg.sub.leaf\n"
        "from pkg.sub import leaf\n"
        "if TYPE_CHECKING:\n    from pkg import sub\n"
        "def late():\n    from .sub import leaf as again\n")
    edges = {(e.importer, e.imported, e.loaded) for e in import_graph(tmp_path, ["pkg"])}
    assert edges == {("pkg.sub", "pkg.sub.leaf", True), ("pkg.main", "pkg.sub.leaf", True),
                     ("pkg.main", "pkg.sub", False), ("pkg.main", "pkg.sub.leaf", False)}


if __name__ == "__main__":
    found = problems(import_graph(), source_modules())
    print(report())
    print("\n".join(found) or "no problems")
    sys.exit(1 if found else 0)
