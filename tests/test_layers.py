"""The floor plan stays true: every module's layer is named by its path, and imports run one way.

Layers, lowest first (``rag/__init__.py`` says the same to readers):

0. ``rag.core``                foundation
1. ``ingest`` | ``rag.query``   stages; siblings, neither imports the other
2. ``plugins``                 retrievers and their contract test
3. ``evals``                   suites, metrics, judges, runs, reports
4. ``rag.tune``                fine-tuning (reads suites and scores with ``evals``)
5. ``rag.serve``               the resident engine (``rag serve``) and its HTTP, client and MCP faces
6. ``rag.cli``                 the command line and everything that prints

A module may import its own package and any package of a lower layer, nothing else. Imports
inside functions count too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "rag.core": 0,
    "ingest": 1,
    "rag.query": 1,
    "plugins": 2,
    "evals": 3,
    "rag.tune": 4,
    "rag.serve": 5,
    "rag.cli": 6,
}
PACKAGE_INITS = {"rag"}  # the top package's __init__ is documentation only
ROOTS = ("rag", "ingest", "plugins", "evals")


def _modules() -> list[tuple[str, Path]]:
    found = []
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append((name, path))
    return found


def _package(module: str) -> str | None:
    """The layer package a module belongs to (the longest matching prefix), or None."""
    best = None
    for pkg in LAYERS:
        if module == pkg or module.startswith(pkg + "."):
            if best is None or len(pkg) > len(best):
                best = pkg
    return best


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """Every project module this file imports, with its line, lazy imports included."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # ``from rag.query import answer`` imports a module, not just a package
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names if _is_module(f"{target}.{a.name}")]
    return [(line, name) for line, name in out if name.split(".")[0] in ROOTS]


def test_every_module_has_a_layer_named_by_its_path() -> None:
    orphans = [str(p.relative_to(REPO)) for name, p in _modules() if _package(name) is None and name not in PACKAGE_INITS]
    assert orphans == [], f"modules outside every layer package: {orphans}"


def test_imports_run_one_way() -> None:
    wrong = []
    for module, path in _modules():
        own = _package(module)
        if own is None:
            continue
        for line, target in _imports(module, path):
            other = _package(target)
            if other is None:
                if target not in PACKAGE_INITS:
                    wrong.append(f"{path.relative_to(REPO)}:{line} imports {target} (no layer)")
                continue
            if other == own:
                continue
            if LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({own}, layer {LAYERS[own]}) imports {target} "
                             f"({other}, layer {LAYERS[other]})")
    assert wrong == [], "imports against the floor plan:\n" + "\n".join(wrong)


@pytest.mark.parametrize("source, expected", [
    ("from rag.cli.main import main\n", "rag.cli.main"),
    ("import evals.metrics\n", "evals.metrics"),
    ("def f():\n    from ingest.pipeline import Ingestor\n", "ingest.pipeline"),
])
def test_the_check_sees_every_kind_of_import(tmp_path: Path, source: str, expected: str) -> None:
    """The checker itself: top-level, plain and lazy imports are all found (so the test can fail)."""
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert expected in [name for _, name in _imports("rag.core.probe", path)]
    assert LAYERS[_package(expected) or ""] > LAYERS["rag.core"]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_through_others() -> None:
    modules = dict(_modules())
    graph = {m: {t for _, t in _imports(m, p) if t in modules and t != m and not modules[t].name == "__init__.py"}
             for m, p in modules.items()}
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # the check can fail
