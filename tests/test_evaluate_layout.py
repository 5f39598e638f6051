"""The evaluate/ package's import direction: its stages import one another downwards only (no
circles), never `trustramp.pipeline` or Prefect, and every public name it re-exports resolves."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import trustramp.evaluate

PACKAGE = Path(trustramp.evaluate.__file__).parent


def _imports(path: Path) -> set[str]:
    """Modules a file imports (at any depth: functions' imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_evaluate_never_imports_the_pipeline_or_prefect() -> None:
    for path in PACKAGE.glob("*.py"):
        bad = {
            m
            for m in _imports(path)
            if m.split(".")[0] in ("prefect", "flows") or m.startswith("trustramp.pipeline")
        }
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_evaluate_stages_import_downwards_only() -> None:
    graph = {
        path.stem: {
            m.rsplit(".", 1)[1]
            for m in _imports(path)
            if m.startswith("trustramp.evaluate.") and m.count(".") == 2
        }
        for path in PACKAGE.glob("*.py")
        if path.stem != "__init__"
    }
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as e:  # pragma: no cover - the failure message
        raise AssertionError(f"import circle in trustramp.evaluate: {e.args[1]}") from None


def test_public_names_resolve() -> None:
    for name in trustramp.evaluate.__all__:
        assert getattr(trustramp.evaluate, name) is not None
