"""Two revisions side by side: a benchmark script run from each, interleaved, medians compared.

    .venv/bin/python benchmarks/ab.py --base f6f214c --rounds 3 -- bench_evaluate.py \\
        --rows 1000000 --rows 10000000 --skip pandas --skip fairlearn --no-agreement

The base revision gets a git worktree of its own (`benchmarks/data/ab-<rev>/`, with its own
virtualenv from requirements.lock, made once and reused). This tree's harness (the script and
`_child.py`) measures both: run with the base's interpreter, its children import the base's
trustramp; both read the same generated lakes (each revision keeps its own day cache, whose folder
names carry the cache layout). Each round runs the script once with each (`--reps 1`, base
first), so both see the same machine load; the table reports, per size and contender, the median
wall and CPU seconds and peak memory of the rounds, and the ratio new / base of the medians.
Results: `benchmarks/out/ab-<name>-latest.md` and `.json` (the per-run files' source digest is
this tree's, also for the base's runs).

For scripts that take `--reps` and `--name` and prepare nothing both trees would share
(bench_evaluate.py, bench_ingest.py). Not bench_incremental.py: its prepared lake holds a day cache
of one revision's layout; its incremental / full ratio is measured side by side within one run, and
two revisions of the same layouts by ab_incremental.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
DATA = ROOT / "benchmarks" / "data"
ENV = {"DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}


def _run(cmd: list[str], cwd: Path) -> None:
    import os

    subprocess.run(cmd, cwd=cwd, check=True, env={**os.environ, **ENV})


def base_tree(rev: str) -> Path:
    """A worktree of `rev` with its own virtualenv, sharing this tree's benchmark data."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = DATA / f"ab-{sha}"
    if not tree.exists():
        _run(["git", "worktree", "add", "--detach", str(tree), sha], ROOT)
    if not (tree / ".venv" / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", ".venv"], tree)
        pip = [str(tree / ".venv" / "bin" / "pip"), "install", "-q", "-c", "requirements.lock"]
        _run([*pip, "-e", ".[dev]"], tree)
    return tree


def _results(name: str) -> list[dict[str, Any]]:
    return json.loads((OUT / f"{name}-latest.json").read_text())["results"]


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True, help="the revision to compare against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="evaluate")
    ap.add_argument("script", help="a benchmark script of benchmarks/ (its own --reps is set to 1)")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    trees = {"base": base_tree(a.base), "new": ROOT}
    runs: dict[tuple[int, str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in range(a.rounds):
        for label, tree in trees.items():
            name = f"ab-{a.name}-{label}-{r}"
            cmd = [str(tree / ".venv" / "bin" / "python"), f"benchmarks/{a.script}", *a.args]
            _run([*cmd, "--reps", "1", "--name", name], ROOT)
            for size in _results(name):
                got_runs = size["runs"]
                if not isinstance(got_runs, dict):  # bench_ingest: one list per size and format
                    got_runs = {size.get("fmt", "runs"): got_runs}
                for contender, got in got_runs.items():
                    key = (size["n"], contender, label)
                    runs.setdefault(key, {"runs": []})["runs"] += got
    lines = [
        f"# A/B: {a.script} {' '.join(a.args)}",
        "",
        f"base {a.base} vs new (this tree); {a.rounds} interleaved rounds, medians",
        "",
        "| rows | contender | base wall s | new wall s | new / base | base CPU s | new CPU s "
        "| base peak MB | new peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    doc = []
    for n, contender in sorted({(n, c) for n, c, _ in runs}):
        m = {
            label: {
                k: _median(runs.get((n, contender, label), {"runs": []})["runs"], k)
                for k in ("seconds", "cpu_seconds", "peak_rss_mb")
            }
            for label in trees
        }
        b, w = m["base"]["seconds"], m["new"]["seconds"]
        ratio = f"{w / b:.2f}" if b and w else "n/a"

        def f(x: float | None, fmt: str = "{:.2f}") -> str:
            return "n/a" if x is None else fmt.format(x)

        lines.append(
            f"| {n:,} | {contender} | {f(b)} | {f(w)} | {ratio} | {f(m['base']['cpu_seconds'])} "
            f"| {f(m['new']['cpu_seconds'])} | {f(m['base']['peak_rss_mb'], '{:.0f}')} "
            f"| {f(m['new']['peak_rss_mb'], '{:.0f}')} |"
        )
        doc.append({"rows": n, "contender": contender, **m})
    text = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"ab-{a.name}-latest.md").write_text(text)
    (OUT / f"ab-{a.name}-latest.json").write_text(json.dumps(doc, indent=1))
    print(text)


if __name__ == "__main__":
    main()
