"""One measured task in a fresh process: `python benchmarks/_child.py TASK '{json args}'`.

Imports happen before the clock starts; the last stdout line is a JSON object with `seconds` (wall
time of the measured call) and what the task wants to report. The parent (`_common.run_child`)
adds peak RSS and CPU time from `os.wait4`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def task(
    fn: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    TASKS[fn.__name__] = fn
    return fn


@task
def baseline(args: dict[str, Any]) -> dict[str, Any]:
    """The floor of every child: interpreter plus the imports of the measured code."""
    import duckdb  # noqa: F401
    import pandas  # noqa: F401

    import trustramp.pipeline  # noqa: F401

    return {"seconds": 0.0}


@task
def ingest(args: dict[str, Any]) -> dict[str, Any]:
    """`trustramp.pipeline.ingest` of folders or files into a fresh home (validation included)."""
    from trustramp import pipeline

    home = Path(args["home"])
    shutil.rmtree(home, ignore_errors=True)
    t0 = time.perf_counter()
    report = pipeline.ingest(
        args["folders"], home=home, configs=[args["config"]], memory_limit=args.get("memory_limit")
    )
    seconds = time.perf_counter() - t0
    by_kind: dict[str, int] = {}
    for f in report.files:
        by_kind[str(f.kind)] = by_kind.get(str(f.kind), 0) + f.rows_read
    if args.get("cleanup"):
        shutil.rmtree(home, ignore_errors=True)
    return {
        "seconds": seconds,
        "files": len(report.files),
        "failed": [f.error for f in report.failed],
        "rows_read": report.total("rows_read"),
        "rows_new": report.total("rows_new"),
        "rows_quarantined": report.total("rows_quarantined"),
        "rows_by_kind": by_kind,
    }


@task
def ingest_more(args: dict[str, Any]) -> dict[str, Any]:
    """Ingest into an existing home (the incremental scenario's new day)."""
    from trustramp import pipeline

    t0 = time.perf_counter()
    report = pipeline.ingest(args["paths"], home=args["home"], configs=[args["config"]])
    return {
        "seconds": time.perf_counter() - t0,
        "failed": [f.error for f in report.failed],
        "rows_new": report.total("rows_new"),
    }


@task
def evaluate(args: dict[str, Any]) -> dict[str, Any]:
    """`trustramp.pipeline.evaluate`: all metrics, intervals, bias audit, verdict, thresholds."""
    from trustramp import pipeline

    reports = Path(args["reports"])
    report_seconds = _time_report_writers()
    t0 = time.perf_counter()
    result = pipeline.evaluate(
        home=args["home"],
        reports=reports,
        as_of=dt.date.fromisoformat(args["as_of"]),
        config=args["config"],
        full_recompute=bool(args.get("full_recompute", False)),
    )
    seconds = time.perf_counter() - t0
    out = {
        "seconds": seconds,
        "verdict": result.verdict.to_dict()["verdict"],
        "metric_rows": len(result.metrics),
        "recomputed_days": len(result.extras.get("recomputed_days", [])),
        "cached_days": len(result.extras.get("cached_days", [])),
        "run_dir": str(result.run_dir),
        "outputs": {p.name: p.stat().st_size for p in sorted(Path(result.run_dir).iterdir())},
        "report_seconds": dict(report_seconds),
    }
    if args.get("keep_metrics"):
        result.metrics.to_parquet(args["keep_metrics"])
    if args.get("cleanup_reports"):
        shutil.rmtree(reports, ignore_errors=True)
    return out


def _time_report_writers() -> dict[str, float]:
    """Wrap trustramp.report's writers (looked up at call time by the pipeline) with a timer."""
    spent: dict[str, float] = {}
    try:
        import trustramp.report as report
    except ImportError:
        return spent
    for name in ("write_report", "write_index"):
        fn = getattr(report, name, None)
        if fn is None:
            continue

        def timed(*a: Any, _fn: Any = fn, _name: str = name, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - t0

        setattr(report, name, timed)
    return spent


@task
def stage1(args: dict[str, Any]) -> dict[str, Any]:
    """Only the stage-1 SQL (`compute_aggregates`) over [start, end], nothing cached or written."""
    from trustramp.store.aggregates import compute_aggregates
    from trustramp.store.lake import Home, reader

    con = reader(Home.at(args["home"]))
    try:
        t0 = time.perf_counter()
        aggs = compute_aggregates(
            con,
            args["feature"],
            dt.date.fromisoformat(args["start"]),
            dt.date.fromisoformat(args["end"]),
        )
        seconds = time.perf_counter() - t0
    finally:
        con.close()
    return {
        "seconds": seconds,
        "rows": {k: len(getattr(aggs, k)) for k in ("cells", "customers", "confusion", "latency")},
    }


SCAN_COLUMNS = {
    "predictions": [
        "item_key",
        "item_id",
        "model_version",
        "segment",
        "customer_id",
        "mode",
        "date",
        "predicted_label",
        "confidence",
        "latency_ms",
        "status",
    ],
    "decisions": ["item_key", "item_id", "decided_at", "decision_id", "human_label", "action"],
}


@task
def scan(args: dict[str, Any]) -> dict[str, Any]:
    """The floor: DuckDB reads every needed column of the window once (hash of each value)."""
    from trustramp.store.lake import Home, reader

    con = reader(Home.at(args["home"]))
    out: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        for kind, cols in SCAN_COLUMNS.items():
            expr = ", ".join(f'bit_xor(hash("{c}"))' for c in cols)
            where = "feature = $f AND date BETWEEN $s AND $e"
            if kind == "decisions":
                where = "feature IN ($f, '_unmatched')"
                params: dict[str, Any] = {"f": args["feature"]}
            else:
                params = {"f": args["feature"], "s": args["start"], "e": args["end"]}
            row = con.execute(
                f"SELECT count(*), {expr} FROM {kind} WHERE {where}", params
            ).fetchone()
            out[kind] = int(row[0]) if row else 0
        seconds = time.perf_counter() - t0
    finally:
        con.close()
    return {"seconds": seconds, "rows": out}


@task
def pandas_metrics(args: dict[str, Any]) -> dict[str, Any]:
    """The plain pandas implementation of the metric set, from the input Parquet files."""
    import reference_pandas as ref

    t0 = time.perf_counter()
    steps, metrics = ref.run_pandas(Path(args["folder"]), dt.date.fromisoformat(args["as_of"]))
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": seconds, "steps": steps}
    if args.get("keep_metrics"):
        out["check"] = _pandas_check_values(metrics)
    return out


def _pandas_check_values(metrics: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """A few values to compare with trustramp's metrics.parquet (same data, same definitions)."""
    keep: dict[str, Any] = {}
    for grouping in ("all", "segment", "model_version"):
        for name, frame in metrics[("window", grouping)].items():
            for idx, v in frame["value"].items():
                key = idx if isinstance(idx, str) else "all"
                keep[f"{grouping}|{key}|{name}"] = None if v != v else float(v)
    return keep


@task
def fairlearn_metrics(args: dict[str, Any]) -> dict[str, Any]:
    """fairlearn's MetricFrame with sklearn metrics over the same groupings."""
    import warnings

    import reference_pandas as ref

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    steps, frames = ref.run_fairlearn(Path(args["folder"]))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "steps": steps, "metricframes": len(frames)}


def main() -> None:
    name, args = sys.argv[1], json.loads(sys.argv[2])
    result = TASKS[name](args)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
