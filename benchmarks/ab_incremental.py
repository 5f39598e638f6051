"""The nightly run of two revisions side by side, on copies of one prepared lake.

    .venv/bin/python benchmarks/ab_incremental.py --base fb204a6 --rows 10000000 --rounds 3

For revisions whose lake and day-cache layouts are the same (the base reads the lake and the
cache this tree's `bench_incremental.py` prepared; across a layout change use each revision's own
`bench_incremental.py`). Each round, for the base then this tree: a fresh copy of the prepared
state (days 1..30 evaluated, day 31 ingested), then, each in a fresh process, the nightly
evaluation as of day 31, a cached one right after it, and a full recompute. The base runs this
tree's harness (`_child.py`) with its own interpreter, from a worktree `ab.py` makes
(`benchmarks/data/ab-<rev>/`), so it imports its own trustramp. Reports the medians of wall and
CPU seconds, peak memory, and stage 1 alone (the day cache's refresh).
Results: `benchmarks/out/ab-incremental-latest.json` and `.md`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from ab import base_tree
from bench_incremental import prepare

KINDS = ("nightly", "cached", "full")


def rounds(n: int, base: str, count: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    data, _, _, snap = prepare(n)
    pythons = {"base": str(base_tree(base) / ".venv" / "bin" / "python"), "new": c.PYTHON}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {k: [] for k in KINDS} for label in pythons
    }
    for r in range(count):
        for label, python in pythons.items():
            work = c.DATA / f"ab-incr-work-{n}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(snap, work)
            args = {
                "home": str(work),
                "reports": str(work) + "-reports",
                "as_of": data.end.isoformat(),
                "config": str(data.config),
                "cleanup_reports": True,
            }
            c.PYTHON = python  # run_child's interpreter: the base imports its own trustramp
            try:
                for kind in KINDS:
                    got = c.run_child("evaluate", {**args, "full_recompute": kind == "full"})
                    c.log(f"round {r + 1} {label} {kind}: {got['seconds']:.2f} s")
                    runs[label][kind].append(got)
            finally:
                c.PYTHON = pythons["new"]
            shutil.rmtree(work, ignore_errors=True)
    return runs


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r.get(key) or 0.0) for r in runs)


def markdown(n: int, base: str, runs: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = [
        f"# A/B: the nightly run at {n:,} predictions, base {base} vs new (this tree)",
        "",
        "| step | base wall s | new wall s | new / base | base CPU s | new CPU s "
        "| base peak MB | new peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        b, w = (_median(runs[x][kind], "seconds") for x in ("base", "new"))
        cpu = [_median(runs[x][kind], "cpu_seconds") for x in ("base", "new")]
        mem = [_median(runs[x][kind], "peak_rss_mb") for x in ("base", "new")]
        lines.append(
            f"| evaluate, {kind} | {b:.2f} | {w:.2f} | {w / b:.2f} | {cpu[0]:.2f} | {cpu[1]:.2f} "
            f"| {mem[0]:.0f} | {mem[1]:.0f} |"
        )
        if kind != "cached":
            rb, rw = (_median(runs[x][kind], "refresh_seconds") for x in ("base", "new"))
            lines.append(f"| of which stage 1 | {rb:.2f} | {rw:.2f} | {rw / rb:.2f} | | | | |")
    for label in ("base", "new"):
        night, full = (_median(runs[label][k], "seconds") for k in ("nightly", "full"))
        r_night, r_full = (_median(runs[label][k], "refresh_seconds") for k in ("nightly", "full"))
        lines.append("")
        lines.append(
            f"{label}: nightly / full {night / full:.0%}; stage 1 alone {r_night / r_full:.0%}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True, help="the revision to compare against")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    runs = rounds(a.rows, a.base, a.rounds)
    text = markdown(a.rows, a.base, runs)
    print(text)
    c.save("ab-incremental", {"rows": a.rows, "base": a.base, "runs": runs, "machine": c.machine()})
    (c.OUT / "ab-incremental-latest.md").write_text(text, "utf-8")


if __name__ == "__main__":
    main()
