"""Ingest throughput from Parquet and CSV, validation included, and its peak memory.

    .venv/bin/python benchmarks/bench_ingest.py --rows 1000000 --rows 10000000 --fmt parquet --fmt csv
    .venv/bin/python benchmarks/bench_ingest.py --rows 10000000 --one-file --fmt parquet --reps 1
    .venv/bin/python benchmarks/bench_ingest.py --rows 1000000 --rows 10000000 --rows 50000000 \
        --one-file --fmt parquet --reps 1 --memory-limit 256MB --memory-limit 1GB --name ingest-memory

Each repetition runs `trustramp.pipeline.ingest([folder], home=<fresh>, configs=[cfg])` in a fresh
process on the generator's folder: one file per day of predictions and of decisions, plus feedback
and incidents (row checks in SQL, quarantine, Great Expectations contract audit, deduplication,
the lake, the day-cache marks, the catalog). DuckDB's memory limit is trustramp's default (1 GB)
unless TRUSTRAMP_MEMORY_LIMIT is set, or `--memory-limit` (repeatable) runs every size under each
limit given.

`--one-file` ingests the same rows as one predictions file and one decisions file instead (merged
by streaming, not measured): memory must stay flat when the files grow 30x. The table's floor
is a child that imports trustramp and builds the Great Expectations suites (what every ingest
holds whatever the data): peak memory is that floor plus DuckDB, which stays within its limit.

Rows per second counts every row read (predictions + decisions + feedback + incidents).
Results: `benchmarks/out/ingest-latest.json` and `.md`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def one_file(data: c.Dataset) -> Path:
    """The dataset's predictions and decisions, each merged into a single file (streamed)."""
    folder = c.DATA / f"onefile-{data.fmt}-{data.n}-{data.days}d"
    marker = folder / "merged.ok"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    c.log(f"merging {data.folder.name} into one file per kind ...")
    for kind in ("predictions", "decisions", "feedback", "incidents"):
        files = sorted((data.folder / kind).glob(f"*.{data.fmt}"))
        out = folder / kind / f"{kind}-all.{data.fmt}"
        out.parent.mkdir(parents=True, exist_ok=True)
        if data.fmt == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(files[0])
            with pq.ParquetWriter(out, schema, compression="zstd") as w:
                for f in files:
                    for batch in pq.ParquetFile(f).iter_batches(batch_size=200_000):
                        w.write_batch(batch)
        else:
            with out.open("wb") as dst:
                for i, f in enumerate(files):
                    with f.open("rb") as src:
                        header = src.readline()
                        if i == 0:
                            dst.write(header)
                        shutil.copyfileobj(src, dst, 16 << 20)
    marker.touch()
    return folder


def bench(n: int, fmt: str, reps: int, merged: bool, limit: str | None = None) -> dict[str, Any]:
    data = c.dataset(n, fmt)
    folder = one_file(data) if merged else data.folder
    layout = "one file per kind" if merged else "one file per day"
    home = c.DATA / f"ingest-home-{fmt}-{n}"
    args = {
        "folders": [str(folder)],
        "home": str(home),
        "config": str(data.config),
        "cleanup": True,
        "memory_limit": limit,
    }
    c.log(f"ingest {n:,} {fmt} ({layout}, memory limit {limit or 'default'}), {reps} runs")
    runs = c.repeat("ingest", args, reps - 1, label=f"ingest {fmt} {n:,}")
    runs += c.repeat("ingest", {**args, "cleanup": False}, 1, label=f"ingest {fmt} {n:,} (last)")
    keep = fmt == "parquet" and not merged and not runs[-1]["failed"]
    if keep and not c.lake_marker(data).exists():
        c.adopt_lake(data, home, runs[-1])  # the evaluate benchmarks reuse it
    shutil.rmtree(home, ignore_errors=True)
    bad = [r["failed"] for r in runs if r["failed"]]
    if bad:
        raise SystemExit(f"ingest failed: {bad[0]}")
    for r in runs:
        r["rows_per_s"] = r["rows_read"] / r["seconds"]
    size = sum(f.stat().st_size for f in folder.rglob(f"*.{fmt}"))
    biggest = max(f.stat().st_size for f in folder.rglob(f"*.{fmt}"))
    return {
        "n": n,
        "fmt": fmt,
        "layout": layout,
        "memory_limit": limit,
        "rows_read": runs[0]["rows_read"],
        "rows_by_kind": runs[0]["rows_by_kind"],
        "files": runs[0]["files"],
        "input_mb": round(size / 2**20, 1),
        "largest_file_mb": round(biggest / 2**20, 1),
        "runs": runs,
        "time": c.summary(runs),
        "rows_per_s": c.summary(runs, "rows_per_s"),
        "cpu": c.summary(runs, "cpu_seconds"),
        "memory": c.summary(runs, "peak_rss_mb"),
    }


TARGETS = {"parquet": 1_000_000, "csv": 300_000}


def markdown(
    results: list[dict[str, Any]], baseline: dict[str, Any], machine: dict[str, Any]
) -> str:
    lines = ["### Ingest", ""]
    lines += c.machine_lines(machine)
    default = machine.get("memory_limit_env") or "1GB (default)"
    lines.append(
        f"- DuckDB memory limit {default} unless the table says otherwise; floor of a child "
        f"process that imports trustramp and builds the Great Expectations suites: "
        f"{baseline['peak_rss_mb']:.0f} MB"
    )
    lines.append("")
    rows = []
    for r in results:
        rps = r["rows_per_s"]
        rows.append(
            [
                f"{r['n']:,}",
                r["fmt"],
                r["layout"],
                r.get("memory_limit") or default,
                f"{r['files']} ({r['largest_file_mb']:.0f} MB largest)",
                f"{r['rows_read']:,}",
                c.fmt_time(r["time"]),
                f"{r['cpu']['median']:.0f}",
                f"{rps['median']:,.0f} ({rps['min']:,.0f}–{rps['max']:,.0f})",
                f"{TARGETS[r['fmt']]:,}",
                "yes" if rps["median"] >= TARGETS[r["fmt"]] else "**no**",
                c.fmt_mb(r["memory"]),
                r["time"]["runs"],
            ]
        )
    lines.append(
        c.table(
            [
                "predictions",
                "format",
                "layout",
                "DuckDB limit",
                "files",
                "rows read",
                "wall s",
                "CPU s",
                "rows/s",
                "target rows/s",
                "met",
                "peak RSS MB",
                "runs",
            ],
            rows,
        )
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--fmt", action="append", choices=["parquet", "csv"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--one-file", action="store_true", help="one file per kind instead of per day")
    ap.add_argument("--name", default="ingest", help="results file name in benchmarks/out/")
    ap.add_argument(
        "--memory-limit",
        action="append",
        help="DuckDB memory limit (e.g. 512MB); repeat to run every size under each limit",
    )
    a = ap.parse_args()
    machine = c.machine()
    baseline = c.run_child("baseline_ingest", {})
    results = []
    for limit in a.memory_limit or [None]:
        for n in a.rows or [1_000_000]:
            for fmt in a.fmt or ["parquet", "csv"]:
                results.append(bench(n, fmt, a.reps, a.one_file, limit))
            c.save(a.name, {"machine": machine, "baseline": baseline, "results": results})
            md = markdown(results, baseline, machine)
            (c.OUT / f"{a.name}-latest.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
