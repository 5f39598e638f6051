"""Evaluate vs plain pandas vs fairlearn vs the raw DuckDB scan, on the same data in the same run.

    .venv/bin/python benchmarks/bench_evaluate.py --rows 1000000 --rows 10000000

For each size: generate (once) the demo data with 30 days, 4 segments, 1,000 customers, 3 model
versions and 5 classes as Parquet; ingest it (once, not measured); then, per repetition and
interleaved so that every contender sees the same machine load, each in a fresh process:

- `scan`: the floor, DuckDB reading every column evaluate needs once (predictions of the 30 days
  and the feature's decisions) through the catalog's views;
- `stage1`: trustramp's stage-1 SQL alone (`compute_aggregates` over the 30 days);
- `evaluate`: `trustramp.pipeline.evaluate(..., full_recompute=True)`: every day's aggregates
  recomputed, then all metrics, intervals, bias audit, verdict, thresholds, outputs written;
- `evaluate (cached)`: the same with every day's aggregates already cached (nothing new ingested);
- `pandas`: the same metric set in plain pandas from the input Parquet files (`reference_pandas.py`);
- `fairlearn`: MetricFrame with sklearn metrics on the same groupings (only up to --fairlearn-max-rows).

Results: `benchmarks/out/<name>-latest.json` and `.md` (`--name`, default `evaluate`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

CONTENDERS = ["scan", "stage1", "evaluate", "evaluate_cached", "pandas", "fairlearn"]
LABELS = {
    "scan": "DuckDB scan of the needed columns (floor)",
    "stage1": "trustramp stage-1 SQL only",
    "evaluate": "trustramp evaluate, full recompute",
    "evaluate_cached": "trustramp evaluate, all days cached",
    "pandas": "plain pandas groupby",
    "fairlearn": "fairlearn MetricFrame + sklearn",
}


def _task(name: str, data: c.Dataset, home: Path, reports: Path) -> tuple[str, dict[str, Any]]:
    win = {"feature": c.FEATURE, "start": data.start.isoformat(), "end": data.end.isoformat()}
    ev = {
        "home": str(home),
        "reports": str(reports),
        "as_of": data.end.isoformat(),
        "config": str(data.config),
    }
    return {
        "scan": ("scan", {"home": str(home), **win}),
        "stage1": ("stage1", {"home": str(home), **win}),
        "evaluate": ("evaluate", {**ev, "full_recompute": True}),
        "evaluate_cached": ("evaluate", {**ev, "full_recompute": False}),
        "pandas": ("pandas_metrics", {"folder": str(data.folder), "as_of": data.end.isoformat()}),
        "fairlearn": ("fairlearn_metrics", {"folder": str(data.folder)}),
    }[name]


def check_agreement(data: c.Dataset, home: Path, reports: Path) -> dict[str, Any]:
    """Compare trustramp's metrics.parquet with the pandas reference on a few groupings."""
    import pandas as pd

    kept = c.DATA / "check-metrics.parquet"
    name, args = _task("evaluate_cached", data, home, reports)
    c.run_child(name, {**args, "keep_metrics": str(kept)})
    name, args = _task("pandas", data, home, reports)
    ref = c.run_child(name, {**args, "keep_metrics": True})["check"]
    table = pd.read_parquet(kept)
    table = table[table["window"] == "window"]
    worst: dict[str, float] = {}
    compared = 0
    for key, expected in ref.items():
        grouping, group, metric = key.split("|")
        rows = table[(table["metric"] == metric) & table["customer_id"].isna()]
        rows = rows[rows["day"].isna()]
        for col in ("segment", "model_version", "mode"):
            want = group if col == grouping else None
            rows = rows[rows[col] == want] if want is not None else rows[rows[col].isna()]
        if len(rows) != 1 or expected is None:
            continue
        got = float(rows["value"].iloc[0])
        diff = abs(got - expected) / (abs(expected) if metric.startswith("latency") else 1.0)
        worst[metric] = max(worst.get(metric, 0.0), diff)
        compared += 1
    kept.unlink(missing_ok=True)
    return {"compared": compared, "max_abs_diff": worst}


def bench_size(
    n: int, reps: int, fairlearn_reps: int, skip: set[str], check: bool = True
) -> dict[str, Any]:
    data = c.dataset(n)
    home = c.lake(data)
    reports = c.DATA / f"reports-evaluate-{n}"
    shutil.rmtree(reports, ignore_errors=True)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in CONTENDERS if k not in skip}
    # A first evaluate fills the day cache, so that "evaluate (cached)" is cached from rep 1.
    name, args = _task("evaluate", data, home, reports)
    c.run_child(name, args)
    for rep in range(reps):
        c.log(f"{n:,} rows, repetition {rep + 1}/{reps}")
        for k in runs:
            if k == "fairlearn" and rep >= fairlearn_reps:
                continue
            name, args = _task(k, data, home, reports)
            runs[k] += c.repeat(name, args, 1, label=k)
    agreement = None
    if check:
        c.log("checking that trustramp and the pandas reference agree")
        agreement = check_agreement(data, home, reports)
    shutil.rmtree(reports, ignore_errors=True)
    return {
        "n": n,
        "counts": data.counts,
        "runs": runs,
        "time": {k: c.summary(v) for k, v in runs.items() if v},
        "cpu": {k: c.summary(v, "cpu_seconds") for k, v in runs.items() if v},
        "memory": {k: c.summary(v, "peak_rss_mb") for k, v in runs.items() if v},
        "imports": {
            k: c.summary(v, "imports_seconds")
            for k, v in runs.items()
            if v and all("imports_seconds" in r for r in v)
        },
        "agreement": agreement,
    }


def ratios(res: dict[str, Any]) -> dict[str, float]:
    t = {k: v["median"] for k, v in res["time"].items()}
    out = {}
    if "evaluate" in t:
        for k in ("pandas", "fairlearn"):
            if k in t:
                out[f"{k} / evaluate"] = t[k] / t["evaluate"]
        if "scan" in t:
            out["evaluate / scan"] = t["evaluate"] / t["scan"]
        if "stage1" in t and "scan" in t:
            out["stage1 / scan"] = t["stage1"] / t["scan"]
    return out


def markdown(
    results: list[dict[str, Any]], baseline: dict[str, Any], machine: dict[str, Any]
) -> str:
    lines = ["### Evaluate vs pandas vs fairlearn vs the raw scan", ""]
    lines += c.machine_lines(machine)
    lines.append(
        f"- floor of every child process (interpreter + imports, no work): "
        f"{baseline['peak_rss_mb']:.0f} MB peak RSS"
    )
    lines.append("")
    for res in results:
        cnt = res["counts"]
        lines.append(
            f"**{res['n']:,} predictions** ({cnt['predictions']:,} prediction rows, "
            f"{cnt['decisions']:,} decision rows); seconds and MB as median (min–max) of "
            f"{max(s['runs'] for s in res['time'].values())} runs in fresh processes:"
        )
        lines.append("")
        rows = []
        t_eval = res["time"].get("evaluate", {}).get("median")
        for k, s in res["time"].items():
            rel = f"{s['median'] / t_eval:.2f}x" if t_eval else ""
            rows.append(
                [
                    LABELS[k],
                    c.fmt_time(s),
                    f"{res['cpu'][k]['median']:.1f}",
                    c.fmt_mb(res["memory"][k]),
                    rel,
                    s["runs"],
                ]
            )
        lines.append(
            c.table(["contender", "wall s", "CPU s", "peak RSS MB", "vs evaluate", "runs"], rows)
        )
        lines.append("")
        imp = res.get("imports", {})
        if imp:
            lines.append(
                "Imported before the clock, like trustramp.pipeline (`_child.EVALUATE_MODULES`: "
                "the statistics, the report and scipy.integrate, which pipeline.evaluate imports "
                "on its first call): "
                + ", ".join(f"{LABELS[k]} {s['median']:.2f} s" for k, s in imp.items())
                + " (median)."
            )
            lines.append("")
        r = ratios(res)
        if r:
            lines.append("Ratios of medians: " + ", ".join(f"{k} = {v:.2f}" for k, v in r.items()))
        ag = res["agreement"]
        if ag is not None:
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in sorted(ag["max_abs_diff"].items()))
            lines.append("")
            lines.append(
                f"Agreement with the pandas reference ({ag['compared']} window values: overall, "
                f"per segment, per version): largest difference per metric: {diffs} "
                "(latency: relative; trustramp reads quantiles off a ~2 %-wide log histogram)."
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="predictions (repeatable)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fairlearn-reps", type=int, default=3)
    ap.add_argument(
        "--fairlearn-max-rows",
        type=int,
        default=1_000_000,
        help="skip fairlearn above this size (about 590 s and 7 GB at 10M)",
    )
    ap.add_argument("--skip", action="append", default=[], choices=CONTENDERS)
    ap.add_argument("--name", default="evaluate", help="results file name in benchmarks/out/")
    ap.add_argument(
        "--no-agreement",
        action="store_true",
        help="skip the check against the pandas reference (benchmarks/ab.py runs it once)",
    )
    a = ap.parse_args()
    machine = c.machine()
    baseline = c.run_child("baseline", {})
    results = []
    for n in a.rows or [1_000_000]:
        skip = set(a.skip) | ({"fairlearn"} if n > a.fairlearn_max_rows else set())
        results.append(bench_size(n, a.reps, a.fairlearn_reps, skip, not a.no_agreement))
        record = {"machine": machine, "baseline": baseline, "results": results}
        c.save(a.name, record)
        md = markdown(results, baseline, machine)
        (c.OUT / f"{a.name}-latest.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
