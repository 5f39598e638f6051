"""The run's outputs (readiness report, metrics table, verdict) at the demo size vs 10M predictions.

    .venv/bin/python benchmarks/bench_report.py --rows 200000 --rows 10000000

For each size (the benchmarks' data: 30 days, 1,000 customers, 3 versions; 200,000 is the demo's
size), each repetition runs `evaluate(..., full_recompute=True)` in a fresh process and records the
size of every file it writes and the time spent in `trustramp.report.write_report` and
`write_index` (timed by wrapping them). The report reads only computed results, so its size should
follow the number of groups (customers, days, segments), not the number of predictions.
Results: `benchmarks/out/report-latest.json` and `.md`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def bench(n: int, reps: int) -> dict[str, Any]:
    data = c.dataset(n)
    home = c.lake(data)
    reports = c.DATA / f"reports-report-{n}"
    args = {
        "home": str(home),
        "reports": str(reports),
        "as_of": data.end.isoformat(),
        "config": str(data.config),
        "full_recompute": True,
        "cleanup_reports": True,
    }
    runs = c.repeat("evaluate", args, reps, label=f"evaluate {n:,}")
    shutil.rmtree(reports, ignore_errors=True)
    for r in runs:
        for k, v in r.get("report_seconds", {}).items():
            r[f"report_{k}"] = v
    return {
        "n": n,
        "outputs": runs[-1]["outputs"],
        "time": c.summary(runs),
        "write_report": c.summary(runs, "report_write_report")
        if all("report_write_report" in r for r in runs)
        else None,
        "memory": c.summary(runs, "peak_rss_mb"),
        "runs": runs,
    }


def markdown(results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = ["### Run outputs and the readiness report", ""]
    lines += c.machine_lines(machine)
    lines.append("")
    names = sorted({k for r in results for k in r["outputs"]})
    rows = []
    for r in results:
        wr = r["write_report"]
        rows.append(
            [
                f"{r['n']:,}",
                *(f"{r['outputs'].get(k, 0) / 1024:,.0f}" for k in names),
                c.fmt_time(wr) if wr else "n/a",
                c.fmt_time(r["time"]),
                c.fmt_mb(r["memory"]),
                r["time"]["runs"],
            ]
        )
    lines.append(
        c.table(
            [
                "predictions",
                *(f"{k} KiB" for k in names),
                "write_report s",
                "evaluate s",
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
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    try:
        import trustramp.report  # noqa: F401
    except ImportError:
        raise SystemExit("trustramp.report does not exist yet") from None
    machine = c.machine()
    results = []
    for n in a.rows or [200_000, 10_000_000]:
        results.append(bench(n, a.reps))
        c.save("report", {"machine": machine, "results": results})
        md = markdown(results, machine)
        (c.OUT / "report-latest.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
