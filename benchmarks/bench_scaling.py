"""Evaluate's time and peak memory against N under a fixed 2 GB DuckDB memory limit.

    .venv/bin/python benchmarks/bench_scaling.py --rows 1000000 --rows 10000000 --rows 50000000

For each N (30 days, 4 segments, 1,000 customers, 3 versions, Parquet; generated and ingested once,
not measured; 50M takes about 2 GB of disk for the inputs and as much again for the lake), each
repetition in a fresh process with TRUSTRAMP_MEMORY_LIMIT=2GB:

- `evaluate`: `trustramp.pipeline.evaluate(..., full_recompute=True)` over all 30 days;
- `stage1`: the stage-1 SQL alone (`compute_aggregates`) over the same days;
- `scan`: DuckDB reading the needed columns once (the floor).

"No worse than linear" is read off seconds per million predictions: it must not grow with N.
Results: `benchmarks/out/scaling-latest.json` and `.md`.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

LIMIT = "2GB"


def bench(n: int, reps: int, limit: str, skip: set[str]) -> dict[str, Any]:
    data = c.dataset(n)
    home = c.lake(data)
    reports = c.DATA / f"reports-scaling-{n}"
    shutil.rmtree(reports, ignore_errors=True)
    env = {"TRUSTRAMP_MEMORY_LIMIT": limit}
    win = {"feature": c.FEATURE, "start": data.start.isoformat(), "end": data.end.isoformat()}
    tasks = {
        "scan": ("scan", {"home": str(home), **win}),
        "stage1": ("stage1", {"home": str(home), **win}),
        "evaluate": (
            "evaluate",
            {
                "home": str(home),
                "reports": str(reports),
                "as_of": data.end.isoformat(),
                "config": str(data.config),
                "full_recompute": True,
            },
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in tasks if k not in skip}
    for rep in range(reps):
        c.log(f"{n:,} rows under a {limit} limit, repetition {rep + 1}/{reps}")
        for k in runs:
            name, args = tasks[k]
            runs[k] += c.repeat(name, args, 1, env=env, label=k)
    shutil.rmtree(reports, ignore_errors=True)
    return {
        "n": n,
        "counts": data.counts,
        "memory_limit": limit,
        "runs": runs,
        "time": {k: c.summary(v) for k, v in runs.items()},
        "cpu": {k: c.summary(v, "cpu_seconds") for k, v in runs.items()},
        "memory": {k: c.summary(v, "peak_rss_mb") for k, v in runs.items()},
    }


def markdown(results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = [f"### Scaling under a {results[0]['memory_limit']} DuckDB memory limit", ""]
    lines += c.machine_lines(machine)
    lines.append("")
    rows = []
    for r in results:
        per_m = r["n"] / 1e6
        for k in r["time"]:
            t = r["time"][k]
            rows.append(
                [
                    f"{r['n']:,}",
                    k,
                    c.fmt_time(t),
                    f"{r['cpu'][k]['median']:.1f}",
                    f"{t['median'] / per_m:.3f}",
                    c.fmt_mb(r["memory"][k]),
                    t["runs"],
                ]
            )
    lines.append(
        c.table(
            ["predictions", "task", "wall s", "CPU s", "s per 1M rows", "peak RSS MB", "runs"], rows
        )
    )
    if len(results) > 1:
        lines.append("")
        growth = []
        for a, b in itertools.pairwise(results):
            for k in ("evaluate", "stage1"):
                if k in a["time"] and k in b["time"]:
                    growth.append(
                        f"{k} {a['n'] / 1e6:g}M → {b['n'] / 1e6:g}M: "
                        f"x{b['time'][k]['median'] / a['time'][k]['median']:.1f} time for "
                        f"x{b['n'] / a['n']:g} rows"
                    )
        lines.append("Growth: " + "; ".join(growth))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--memory-limit", default=LIMIT)
    ap.add_argument("--skip", action="append", default=[], choices=["scan", "stage1", "evaluate"])
    a = ap.parse_args()
    machine = c.machine()
    machine["memory_limit_env"] = a.memory_limit
    results = []
    for n in a.rows or [1_000_000, 10_000_000, 50_000_000]:
        need = n / 1e6 * 0.1  # GiB: inputs + lake, about 100 MB per million predictions
        if shutil.disk_usage(c.ROOT).free / 2**30 < need + 5:
            raise SystemExit(f"not enough disk for {n:,} rows (needs about {need:.0f} GiB + 5)")
        results.append(bench(n, a.reps, a.memory_limit, set(a.skip)))
        c.save("scaling", {"machine": machine, "results": results})
        md = markdown(results, machine)
        (c.OUT / "scaling-latest.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
