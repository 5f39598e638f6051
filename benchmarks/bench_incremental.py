"""The nightly run: one new day added to a 30-day lake (plus late decisions) vs a full recompute.

    .venv/bin/python benchmarks/bench_incremental.py --rows 1000000 --rows 10000000

Setup (not measured): generate 31 days with N * 31/30 predictions (so that 30 days hold about N),
ingest days 1..30 (predictions by prediction day, decisions by decision day, feedback, incidents)
and evaluate as of day 30, which fills the per-day aggregate cache. Then ingest day 31: its
predictions file and the decisions made on day 31, many of them late decisions for items predicted
on earlier days (each such day is marked dirty). That state is copied aside.

Each repetition, on a fresh copy of that state (copy not measured), each in a fresh process:
- `incremental`: `evaluate(as_of=day 31)`: recomputes day 31 (and the gate window's days the late
  decisions touched), updates the other days they touched by sums, reads the rest from the
  cache, then all of stage 2 and the outputs;
- `full`: `evaluate(as_of=day 31, full_recompute=True)`: recomputes all 30 days of the window.
Also measured once per repetition: the nightly ingest of day 31 itself.

Target (issue 8): incremental ≤ 10 % of the full recompute.
Results: `benchmarks/out/incremental-latest.json` and `.md`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def _day_files(data: c.Dataset, kind: str) -> list[Path]:
    return sorted((data.folder / kind).glob(f"*.{data.fmt}"))


def prepare(n: int) -> tuple[c.Dataset, Path, list[Path], Path]:
    """(data, base home with day 1..30 evaluated, day-31 files, snapshot with day 31 ingested)."""
    data = c.dataset(round(n * 31 / 30), days=31)
    last = data.end.isoformat()
    new_files = [
        f for k in ("predictions", "decisions") for f in _day_files(data, k) if last in f.name
    ]
    if len(new_files) != 2:
        raise SystemExit(f"expected one predictions and one decisions file of {last}: {new_files}")
    base = c.DATA / f"incr-base-{n}"
    snap = c.DATA / f"incr-snap-{n}"
    marker = c.DATA / f"incr-snap-{n}.ok"
    if marker.exists():
        return data, base, new_files, snap
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(snap, ignore_errors=True)
    old = [
        f for k in ("predictions", "decisions") for f in _day_files(data, k) if f not in new_files
    ]
    old += [data.folder / "feedback", data.folder / "incidents"]
    c.log(f"incremental setup: ingesting days 1..30 of {data.folder.name} (not measured)")
    r = c.run_child(
        "ingest", {"folders": [str(p) for p in old], "home": str(base), "config": str(data.config)}
    )
    if r["failed"]:
        raise SystemExit(f"ingest failed: {r['failed']}")
    day30 = data.end.fromordinal(data.end.toordinal() - 1).isoformat()
    c.log(f"  evaluating as of {day30} to fill the day cache")
    c.run_child(
        "evaluate",
        {
            "home": str(base),
            "reports": str(c.DATA / "incr-reports"),
            "as_of": day30,
            "config": str(data.config),
            "cleanup_reports": True,
        },
    )
    shutil.copytree(base, snap)
    c.log("  ingesting day 31 into the snapshot")
    c.run_child(
        "ingest_more",
        {"paths": [str(p) for p in new_files], "home": str(snap), "config": str(data.config)},
    )
    marker.touch()
    return data, base, new_files, snap


def bench(n: int, reps: int) -> dict[str, Any]:
    data, base, new_files, snap = prepare(n)
    work = c.DATA / f"incr-work-{n}"
    reports = c.DATA / f"incr-reports-{n}"
    ev = {
        "home": str(work),
        "reports": str(reports),
        "as_of": data.end.isoformat(),
        "config": str(data.config),
        "cleanup_reports": True,
    }
    runs: dict[str, list[dict[str, Any]]] = {"nightly_ingest": [], "incremental": [], "full": []}
    for rep in range(reps):
        c.log(f"{n:,} rows, repetition {rep + 1}/{reps}")
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        runs["nightly_ingest"] += c.repeat(
            "ingest_more",
            {"paths": [str(p) for p in new_files], "home": str(work), "config": str(data.config)},
            1,
            label="nightly ingest of day 31",
        )
        shutil.rmtree(work)
        shutil.copytree(snap, work)
        runs["incremental"] += c.repeat("evaluate", ev, 1, label="incremental evaluate")
        runs["full"] += c.repeat("evaluate", {**ev, "full_recompute": True}, 1, label="full")
    shutil.rmtree(work, ignore_errors=True)
    t = {k: c.summary(v) for k, v in runs.items()}
    return {
        "n": n,
        "counts": data.counts,
        "recomputed_days": runs["incremental"][0]["recomputed_days"],
        "updated_days": runs["incremental"][0].get("updated_days", 0),
        "window_days": runs["full"][0]["recomputed_days"],
        "new_rows": runs["nightly_ingest"][0]["rows_new"],
        "runs": runs,
        "time": t,
        "cpu": {k: c.summary(v, "cpu_seconds") for k, v in runs.items()},
        "memory": {k: c.summary(v, "peak_rss_mb") for k, v in runs.items()},
        "ratio": t["incremental"]["median"] / t["full"]["median"],
        "refresh": {k: c.summary(runs[k], "refresh_seconds") for k in ("incremental", "full")},
    }


def markdown(results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = ["### Nightly incremental run vs full recompute", ""]
    lines += c.machine_lines(machine)
    lines.append("")
    rows = []
    for r in results:
        for k, label in (
            ("nightly_ingest", "ingest day 31 (predictions + that day's decisions)"),
            (
                "incremental",
                f"evaluate, incremental ({r['recomputed_days']} days recomputed, "
                f"{r.get('updated_days', 0)} updated)",
            ),
            ("full", f"evaluate, full recompute ({r['window_days']} days)"),
        ):
            rows.append(
                [
                    f"{r['n']:,}",
                    label,
                    c.fmt_time(r["time"][k]),
                    f"{r['cpu'][k]['median']:.1f}",
                    c.fmt_mb(r["memory"][k]),
                    r["time"][k]["runs"],
                ]
            )
    lines.append(c.table(["30-day lake", "step", "wall s", "CPU s", "peak RSS MB", "runs"], rows))
    lines.append("")
    lines.append(
        "Incremental / full (medians): "
        + ", ".join(
            f"{r['n']:,}: {r['ratio']:.0%} ({'met' if r['ratio'] <= 0.10 else 'missed'})"
            for r in results
        )
        + " against the ≤ 10 % target."
    )
    lines.append("")
    lines.append(
        "Stage 1 alone (the day cache's refresh: days recomputed or updated, medians): "
        + ", ".join(
            f"{r['n']:,}: {r['refresh']['incremental']['median']:.2f} s nightly vs "
            f"{r['refresh']['full']['median']:.2f} s full "
            f"({r['refresh']['incremental']['median'] / r['refresh']['full']['median']:.0%})"
            for r in results
            if "refresh" in r and r["refresh"]["full"]["median"]
        )
        + "; the rest of each run (loading the cached days, the statistics, the outputs) is the "
        "same fixed work in both."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    machine = c.machine()
    results = []
    for n in a.rows or [1_000_000]:
        results.append(bench(n, a.reps))
        c.save("incremental", {"machine": machine, "results": results})
        md = markdown(results, machine)
        (c.OUT / "incremental-latest.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
