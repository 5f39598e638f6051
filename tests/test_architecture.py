"""The import direction of `src/trustramp`, read from the code with `ast` (nothing is imported).

Every runtime import counts, also those inside functions; imports under `if TYPE_CHECKING:` do
not (they never run). The graph is kept at package granularity: `trustramp.store.lake` counts as
`trustramp.store`, `trustramp.pipeline` as itself. The rules (docs/ARCHITECTURE.md, "Map"):

- no circle between packages and top-level modules;
- `trustramp.store` never imports `trustramp.ingest` (ingest stages files into the store);
- only `trustramp.orchestrate` imports `prefect` (and `flows/`, outside the package);
- the core (`metrics`, `decide`, `contract`, `config`, `errors`, `demo`, `report`, and
  `evaluate`/`evaluation`) imports neither DuckDB nor Prefect (nor Great Expectations, PySpark); of the core only
  `evaluate`/`evaluation` may read `trustramp.store`;
- `trustramp.pipeline` never imports `trustramp.orchestrate` (the CLI chooses Prefect or not);
- every package's `__init__.py` opens with a docstring that says what it owns and what it may import.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "trustramp"

CORE = (
    "trustramp.metrics",
    "trustramp.decide",
    "trustramp.contract",
    "trustramp.config",
    "trustramp.errors",
    "trustramp.demo",
    "trustramp.report",
)
"""Pure code: statistics, decisions, the contract and config, the demo data, the report."""
HEAVY = ("duckdb", "prefect", "great_expectations", "pyspark")
"""What the core never imports: the engines and the orchestrator."""
EVALUATE = ("trustramp.evaluate",)
"""The evaluation stages: core too, but they read the store's statistics."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node`, except the bodies of `if TYPE_CHECKING:` (their `else` counts)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def _imported(module: str, path: Path) -> Iterator[str]:
    """The full names that `module` (the file at `path`) imports at runtime."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` steps up
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from trustramp import store` imports the package trustramp.store
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _unit(name: str) -> str | None:
    """The graph node of an imported name: `trustramp.X` for trustramp's own modules, the top
    package for a third-party one (`duckdb`, `prefect`), None for a name that is not a module."""
    parts = name.split(".")
    if parts[0] != "trustramp":
        return parts[0]
    if len(parts) == 1:
        return "trustramp"
    unit = f"trustramp.{parts[1]}"
    return unit if unit in _units() else None


@cache
def _units() -> frozenset[str]:
    """trustramp's packages and top-level modules."""
    found = {f"trustramp.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    found |= {f"trustramp.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    return frozenset(found)


@cache
def _graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit (trustramp's own and third-party top packages) -> the modules that do."""
    graph: dict[str, dict[str, set[str]]] = {u: {} for u in _units()}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module == "trustramp":
            continue  # the root only reads its version
        source = _unit(module)
        assert source is not None, module
        for name in _imported(module, path):
            target = _unit(name)
            if target is not None and target != source:
                graph[source].setdefault(target, set()).add(module)
    return graph


def _own(unit: str) -> set[str]:
    return {t for t in _graph()[unit] if t.startswith("trustramp.") and t in _units()}


def _cycle() -> list[str] | None:
    """One circle among trustramp's units, as the path that closes it; None when there is none."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(unit: str) -> list[str] | None:
        state[unit] = "open"
        stack.append(unit)
        for target in sorted(_own(unit)):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[unit] = "done"
        return None

    for unit in sorted(_units()):
        if unit not in state and (found := visit(unit)):
            return found
    return None


def _who(unit: str, target: str) -> str:
    return ", ".join(sorted(_graph()[unit].get(target, ())))


def test_the_graph_sees_the_packages_and_their_imports() -> None:
    units = _units()
    assert {"trustramp.store", "trustramp.ingest", "trustramp.pipeline", "trustramp.cli"} <= units
    assert "duckdb" in _graph()["trustramp.store"]
    assert "trustramp.store" in _own("trustramp.ingest")
    assert "trustramp.pipeline" in _own("trustramp.cli")  # function-level imports count


def test_runtime_imports_skip_type_checking_blocks() -> None:
    code = (
        "from typing import TYPE_CHECKING\n"
        "import a\n"
        "if TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
        "def f():\n    from d.e import g\n"
    )
    names = set()
    for node in _runtime_nodes(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    assert names == {"typing", "a", "c", "d.e"}


def test_no_circles_between_packages() -> None:
    cycle = _cycle() or []
    where = "; ".join(f"{a} -> {b} in {_who(a, b)}" for a, b in itertools.pairwise(cycle))
    assert not cycle, f"import circle: {' -> '.join(cycle)} ({where})"


def test_store_never_imports_ingest() -> None:
    assert "trustramp.ingest" not in _graph()["trustramp.store"], _who(
        "trustramp.store", "trustramp.ingest"
    )


def test_prefect_lives_only_in_flows() -> None:
    """Nothing under src/trustramp imports Prefect: the flows in flows/ do, and `orchestrate`
    loads them by path when a Prefect run is asked for."""
    importers = {u: _who(u, "prefect") for u in _units() if "prefect" in _graph()[u]}
    assert not importers, importers
    flows = Path(__file__).resolve().parent.parent / "flows"
    assert any("prefect" in p.read_text() for p in flows.glob("*.py"))


@pytest.mark.parametrize("unit", CORE + EVALUATE)
def test_the_core_imports_no_engine_nor_prefect(unit: str) -> None:
    assert unit in _units(), f"{unit} is not a module of src/trustramp any more: update CORE"
    bad = {lib: _who(unit, lib) for lib in HEAVY if lib in _graph()[unit]}
    assert not bad, f"{unit} imports {bad}"


@pytest.mark.parametrize("unit", CORE)
def test_the_core_never_reads_the_store_or_runs_the_pipeline(unit: str) -> None:
    upper = {
        "trustramp.store",
        "trustramp.ingest",
        "trustramp.pipeline",
        "trustramp.orchestrate",
        "trustramp.cli",
        "trustramp.notify",
        *EVALUATE,
    }
    bad = {t: _who(unit, t) for t in _own(unit) & upper}
    assert not bad, f"{unit} imports {bad}"


def test_pipeline_never_imports_orchestrate() -> None:
    assert "trustramp.orchestrate" not in _graph()["trustramp.pipeline"], _who(
        "trustramp.pipeline", "trustramp.orchestrate"
    )


@pytest.mark.parametrize(
    "init", sorted(PACKAGE.rglob("__init__.py")), ids=lambda p: _module_name(p)
)
def test_every_package_says_what_it_owns_and_may_import(init: Path) -> None:
    if init.parent == PACKAGE:
        return  # the root: the project's one-line description
    doc = ast.get_docstring(ast.parse(init.read_text("utf-8"))) or ""
    assert doc, f"{init.relative_to(SRC)} has no docstring"
    assert "import" in doc.lower(), f"{init.relative_to(SRC)}'s docstring names no import rule"


@pytest.mark.slow  # generates, ingests and evaluates a small demo (~10 s)
def test_the_cli_chooses_prefect_for_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --prefect` runs ingest and evaluate as flow runs, chosen by the CLI (not the
    pipeline), and prints what the plain demo prints; here the flows are stood in for by the
    plain steps they wrap (tests/test_flows.py runs the real ones)."""
    from click.testing import CliRunner

    import trustramp.orchestrate
    from trustramp import pipeline
    from trustramp.cli import main

    calls: list[str] = []

    def run_flow(name: str, **params: object) -> object:
        calls.append(name)
        if name == "ingest":
            return pipeline.ingest(**params)  # type: ignore[arg-type]
        publish = params.pop("publish")
        assert publish is True
        return pipeline.evaluate(**params)  # type: ignore[arg-type]

    monkeypatch.setattr(trustramp.orchestrate, "run_flow", run_flow)
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--rows", "5000", "--out", "in", "--home", "home", "--reports", "reports"]
    r = CliRunner().invoke(main, [*args, "--prefect"])
    assert r.exit_code == 0, r.output
    assert calls == ["ingest", "evaluate"]
    lines = r.output.splitlines()
    assert lines[0].startswith("demo data: ") and lines[0].endswith("config in/rollout.yaml")
    assert "planted effects:" in lines
    assert any(line.startswith("verdict for demo-triage as of ") for line in lines)
    end = lines[-1].split("--as-of ")[1].split()[0]  # next: trustramp evaluate ... --as-of END
    run = f"reports/demo-triage/{end}"
    assert lines[-3:-1] == [f"outputs: {run}", f"report: {run}/readiness.html"]
    assert (tmp_path / "home" / "landing").is_dir()
