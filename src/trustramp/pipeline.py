"""Plain-Python pipeline steps: ingest(), evaluate(), publish(). No Prefect here.

The CLI, the Prefect flows in `flows/`, tests and notebooks all call these functions. Each entry
point checks its arguments and sequences the stages of `trustramp.evaluate` (windows and day
statistics from the store, evidence, verdict, metrics table and thresholds, outputs); the work
itself lives there.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustramp.config import RolloutConfig, load_config
from trustramp.errors import UsageError
from trustramp.evaluate.results import (
    EvaluationResult,
    NoDataResult,
    ThresholdsResult,
    WhatIfResult,
)
from trustramp.ingest import IngestReport, ingest_paths
from trustramp.progress import progress_log, stage

if TYPE_CHECKING:
    from trustramp.notify import NotifyReport
    from trustramp.store.daycache import Refresh
    from trustramp.store.engine import EngineSpec

__all__ = [
    "BAND_ORDER",
    "DateLike",
    "EvaluationResult",
    "NoDataResult",
    "ThresholdsResult",
    "WhatIfResult",
    "as_date",
    "check_policy",
    "configured_segments",
    "evaluate",
    "ingest",
    "notify",
    "progress_log",
    "publish",
    "recommend_thresholds",
    "refresh_day_statistics",
    "run_demo",
    "stage",
    "whatif",
    "yesterday",
]

log = logging.getLogger(__name__)

DateLike = dt.date | dt.datetime | str
"""What `as_of` accepts: a date, a datetime (its date) or an ISO string such as "2026-11-20"."""


def as_date(value: DateLike | None, *, name: str = "as_of") -> dt.date | None:
    """A date from a date, a datetime or an ISO string (None stays None); a datetime with an
    offset gives its UTC date (days are UTC days, as in the lake).

    >>> as_date("2026-11-20")
    datetime.date(2026, 11, 20)
    >>> as_date("2026-11-20T23:30:00-05:00")
    datetime.date(2026, 11, 21)
    """
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return _utc_date(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return _utc_date(dt.datetime.fromisoformat(text))
        except ValueError:
            raise UsageError(
                f"{name} {value[:40]!r} is not a date; expected YYYY-MM-DD, e.g. 2026-11-20"
            ) from None
    raise UsageError(f"{name} must be a date or a YYYY-MM-DD string, got {type(value).__name__}")


def _utc_date(moment: dt.datetime) -> dt.date:
    return (moment.astimezone(dt.UTC) if moment.tzinfo else moment).date()


def configured_segments(configs: Sequence[RolloutConfig]) -> list[str]:
    """The union of the configs' segment lists, in first-seen order."""
    seen: dict[str, None] = {}
    for cfg in configs:
        seen.update(dict.fromkeys(cfg.segments))
    return list(seen)


def ingest(
    paths: Sequence[str | Path],
    *,
    home: str | Path,
    kind: str | None = None,
    configs: Sequence[str | Path | RolloutConfig] = (),
    wait_seconds: float = 600.0,
    memory_limit: str | None = None,
    progress: Callable[[int, int, Path], None] | None = None,
) -> IngestReport:
    """Ingest files or folders into the lake at `home` (see `trustramp.ingest.ingest_paths`).

    Raises
    ------
    UsageError
        When a path does not exist (a file or folder not found is a mistake in the call, not
        an input file that failed).
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(
            f"not found: {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            + " (no such file or folder)"
        )
    loaded = [c if isinstance(c, RolloutConfig) else load_config(c) for c in configs] or [
        load_config(None)
    ]
    from trustramp.store.outputs import writing

    with stage("ingest") as line, writing("the lake", Path(home)):
        report = ingest_paths(
            paths,
            home,
            kind=kind,
            segments=configured_segments(loaded),
            wait_seconds=wait_seconds,
            memory_limit=memory_limit,
            on_file=progress,
        )
        line.update(
            files=len(report.files),
            failed=len(report.failed),
            rows_read=report.total("rows_read"),
            new=report.total("rows_new"),
            quarantined=report.total("rows_quarantined"),
        )
    return report


@dataclass(frozen=True)
class DemoData:
    """The generated demo dataset: its folder, its rollout config, its days, what was planted."""

    out: Path
    config: Path
    seed: int
    rows: int
    start: dt.date
    end: dt.date
    planted: dict[str, str]


def generate_demo(*, out: Path, rows: int, seed: int) -> DemoData:
    """Write the demo dataset and its rollout config (`rollout.yaml`) to `out`."""
    import yaml

    from trustramp.demo import demo_config, generate

    manifest = generate(out, n_predictions=rows, seed=seed, overwrite=True)
    cfg_path = out / "rollout.yaml"
    cfg_path.write_text(yaml.safe_dump(demo_config(manifest), sort_keys=False), "utf-8")
    return DemoData(
        out=out,
        config=cfg_path,
        seed=seed,
        rows=sum(manifest.counts.values()),
        start=manifest.start,
        end=manifest.end,
        planted=dict(manifest.planted),
    )


def demo_lines(
    data: DemoData, report: IngestReport, result: EvaluationResult, *, home: Path
) -> list[str]:
    """The lines to show after the demo's ingest and evaluation (and the empty landing folder)."""
    out, cfg_path = data.out, data.config
    lines = [
        f"demo data: {data.rows:,} rows in {out} "
        f"({data.start} .. {data.end}, seed {data.seed}); config {cfg_path}"
    ]
    lines += report.summary_lines(per_file=False)
    lines.append("planted effects:")
    lines += [f"  {name}: {text}" for name, text in data.planted.items()]
    v = result.verdict.to_dict()
    lines.append(
        f"verdict for {v['feature']} as of {v['as_of']}: {v['verdict']} (phase {v['phase']})"
    )
    lines += [f"  - {r}" for r in v["reasons"]]
    lines.append(f"outputs: {result.run_dir}")
    lines.append(f"report: {result.run_dir / 'readiness.html'}")
    # The nightly deployment's default landing folder (prefect.yaml), empty until logs land.
    (Path(home) / "landing").mkdir(parents=True, exist_ok=True)
    lines.append(
        f"next: trustramp evaluate --config {cfg_path} --as-of {data.end} "
        "(the demo data ends that day; without --as-of, evaluate takes yesterday)"
    )
    return lines


def run_demo(*, out: Path, rows: int, seed: int, home: Path, reports: Path) -> list[str]:
    """Generate the demo dataset, ingest it, evaluate its last day; return the lines to show.

    The plain-Python steps; `trustramp demo --prefect` runs the same steps as Prefect flow runs
    (the CLI chooses, with `generate_demo` and `demo_lines` around them).
    """
    data = generate_demo(out=out, rows=rows, seed=seed)
    report = ingest([out], home=home, configs=[data.config])
    result = evaluate(home=home, reports=reports, as_of=data.end, config=data.config)
    return demo_lines(data, report, result, home=home)


# -- evaluate ---------------------------------------------------------------------------------------


def _resolve_config(
    feature: str | None, config: str | Path | RolloutConfig | None
) -> RolloutConfig:
    cfg = config if isinstance(config, RolloutConfig) else load_config(config)
    if feature and feature != cfg.feature:
        cfg = cfg.model_copy(update={"feature": feature})
    return cfg


def refresh_day_statistics(
    configs: Sequence[str | Path | RolloutConfig | None],
    *,
    home: str | Path,
    as_of: DateLike | None = None,
    engine: EngineSpec | None = None,
    wait_seconds: float = 600.0,
) -> dict[str, Refresh]:
    """Recompute the stale days of every configured feature's evaluation window, all on one
    engine session (the nightly-spark run: one Spark application for every dirty day); the
    evaluations that follow find those days fresh in the day cache. Features without
    predictions are left out. Returns each feature's `Refresh` (days recomputed, updated and
    cached).
    """
    from trustramp.evaluate.stage1 import any_stale_days, open_home, refresh_feature
    from trustramp.store.engine import EngineSpec

    cfgs = [_resolve_config(None, c) for c in configs]
    day = as_date(as_of) or yesterday()
    spec = engine if engine is not None else EngineSpec.of()
    h, con = open_home(home)
    out: dict[str, Refresh] = {}
    spec = spec.for_work(any_stale_days(h, cfgs, day))
    try:
        with spec.started() as eng:
            for cfg in cfgs:
                refreshed = refresh_feature(
                    con, h, cfg, day, engine=eng, engine_name=spec.name, wait_seconds=wait_seconds
                )
                if refreshed is not None:
                    out[cfg.feature] = refreshed
    finally:
        con.close()
    return out


def recommend_thresholds(
    feature: str | None = None,
    *,
    home: str | Path,
    as_of: DateLike | None = None,
    config: str | Path | RolloutConfig | None = None,
    wait_seconds: float = 600.0,
) -> ThresholdsResult:
    """Recommended routing thresholds (global, per segment, progression stage, what-if).

    `as_of` is a date, a datetime or an ISO string (default: yesterday, UTC). Raises
    `NoDataError` when the feature has no predictions in the window, `UsageError` for a bad
    date.
    """
    from trustramp.evaluate.stage1 import load_day_statistics, open_home
    from trustramp.evaluate.thresholds import gate_customer_grid, recommend
    from trustramp.evaluate.windows import gate_population

    cfg = _resolve_config(feature, config)
    day = as_date(as_of) or yesterday()
    h, con = open_home(home)
    try:
        win, aggs, _ = load_day_statistics(con, h, cfg, day, wait_seconds=wait_seconds)
        pop = gate_population(aggs, win, cfg)
        cust_grid = gate_customer_grid(aggs, win, pop)
    finally:
        con.close()
    with stage("thresholds", version=pop.version or "none"):
        th = recommend(aggs, win, pop, cfg, customer_grid=cust_grid)
    return ThresholdsResult(feature=cfg.feature, as_of=day, thresholds=th)


BAND_ORDER = ("review", "confirm", "auto")
"""Routing bands from the lowest threshold to the highest."""


def check_policy(
    policy: dict[str, float | None], current: dict[str, float | None], *, flag: str = "{}"
) -> None:
    """Raise UsageError unless `policy` over `current` keeps review <= confirm <= auto.

    `flag` formats a band's name in the message (the CLI passes "--{}"); a band the policy
    does not set is named as the config's.
    """
    full = {**current, **policy}

    def name(band: str) -> str:
        return flag.format(band) if band in policy else f"the config's {band}"

    given = [(b, full[b]) for b in BAND_ORDER if full.get(b) is not None]
    for (lo, lo_v), (hi, hi_v) in itertools.pairwise(given):
        assert lo_v is not None and hi_v is not None
        if lo_v > hi_v and (lo in policy or hi in policy):
            raise UsageError(
                f"{name(lo)} {lo_v} is above {name(hi)} {hi_v}: bands must be ordered "
                "review <= confirm <= auto"
            )


def whatif(
    policy: dict[str, float | None],
    feature: str | None = None,
    *,
    home: str | Path,
    as_of: DateLike | None = None,
    config: str | Path | RolloutConfig | None = None,
    wait_seconds: float = 600.0,
) -> WhatIfResult:
    """Replay a routing policy on the logged traffic of the monitoring window, against the
    config's current policy: items per band per day, accuracy per band, human workload.

    `policy` maps bands (`auto`, `confirm`, `review`) to thresholds; bands not given keep the
    config's. Raises `UsageError` when the bands end up out of order.
    """
    from trustramp.decide.thresholds import replay_policy
    from trustramp.evaluate.stage1 import load_day_statistics, open_home
    from trustramp.evaluate.thresholds import grid_frame
    from trustramp.evaluate.windows import _between, gate_population

    cfg = _resolve_config(feature, config)
    current = cfg.routing.thresholds()  # a closed band (false): None, not offered
    unknown = set(policy) - set(current)
    if unknown:
        raise UsageError(
            f"unknown band(s) {', '.join(sorted(unknown))}; expected auto, confirm, review"
        )
    check_policy(policy, current)
    day = as_date(as_of) or yesterday()
    h, con = open_home(home)
    try:
        win, aggs, _ = load_day_statistics(con, h, cfg, day, wait_seconds=wait_seconds)
    finally:
        con.close()
    full = {**current, **policy}
    version = gate_population(aggs, win, cfg).version
    traffic = _between(aggs.cells, win.monitor_start, win.as_of)
    traffic = traffic[traffic["model_version"] == version]  # one version's traffic, not doubled
    with stage("whatif", version=version or "none"):
        replay = replay_policy(
            grid_frame(traffic, cfg.routing.grid_step, ["day"]),
            full,
            current=current,
            step=cfg.routing.grid_step,
            confidence_level=cfg.statistics.confidence_level,
        )
    return WhatIfResult(feature=cfg.feature, as_of=day, policy=full, current=current, replay=replay)


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def evaluate(
    feature: str | None = None,
    *,
    home: str | Path,
    reports: str | Path,
    as_of: DateLike | None = None,
    config: str | Path | RolloutConfig | None = None,
    wait_seconds: float = 600.0,
    memory_limit: str | None = None,
    full_recompute: bool = False,
    engine: EngineSpec | None = None,
) -> EvaluationResult:
    """Evaluate one feature as of a date: metrics, verdict, thresholds; write the run's outputs.

    Parameters
    ----------
    feature : the feature; default: the config's `feature`.
    home, reports : the lake/catalog folder and the outputs folder.
    as_of : the evaluated day: a date, a datetime or an ISO string such as "2026-11-20"
        (default: yesterday, UTC).
    config : a rollout config (file or object); default: the playbook defaults.
    full_recompute : recompute every day's aggregates instead of only the days that new
        predictions or late decisions touched since the last run.
    engine : the stage-1 engine that recomputes days (`store.engine.EngineSpec`); default:
        TRUSTRAMP_ENGINE, else DuckDB. The rest of the evaluation always runs on DuckDB.

    Raises
    ------
    NoDataError
        The feature has no predictions in the window (the message gives the data's range).
    UsageError
        A bad `as_of` (not a date, or too early to have a window).
    StoreError
        The home or the reports folder cannot be read or written (read-only, full disk).
    """
    from trustramp import __version__
    from trustramp.decide.verdict import decide
    from trustramp.evaluate.evidence import gate_evidence
    from trustramp.evaluate.gate_metrics import gate_rows
    from trustramp.evaluate.outputs import RunResults, publish_outputs
    from trustramp.evaluate.stage1 import load_day_statistics, open_home, read_run_records
    from trustramp.evaluate.table import run_metrics_table
    from trustramp.evaluate.thresholds import fit_recalibration_if_miscalibrated, run_thresholds
    from trustramp.evaluate.windows import gate_population
    from trustramp.store.outputs import run_dir

    cfg = _resolve_config(feature, config)
    as_of = as_date(as_of) or yesterday()
    run_dir(Path(reports), cfg.feature, as_of)  # validates the name before any work
    t0 = time.perf_counter()
    h, con = open_home(home, memory_limit=memory_limit)
    try:  # stage 1: the window's day statistics and the run's records, from the store
        win, aggs, refreshed = load_day_statistics(
            con,
            h,
            cfg,
            as_of,
            wait_seconds=wait_seconds,
            full_recompute=full_recompute,
            engine=engine,
        )
        pop = gate_population(aggs, win, cfg)
        records = read_run_records(con, cfg, win, pop)
    finally:
        con.close()
    # stage 2, on those frames: evidence, verdict, metrics table, thresholds
    evidence = gate_evidence(aggs, win, cfg, pop, records)
    population_rows = gate_rows(aggs, win, pop, cfg)
    recal = fit_recalibration_if_miscalibrated(evidence, aggs, win, pop, cfg)
    progress_log.info(
        "evidence: version %s, %s labeled gate items, %.1f s",
        pop.version or "none",
        f"{evidence.accuracy['all'].n:,}" if "all" in evidence.accuracy else 0,
        time.perf_counter() - t0,
    )
    with stage("decide") as line:
        verdict = decide(evidence, cfg, trustramp_version=__version__, config_hash=cfg.hash())
        table = run_metrics_table(aggs, win, cfg, population_rows)
        thresholds = run_thresholds(aggs, win, pop, cfg, recalibration=recal)
        line.update(verdict=verdict.verdict.value, metric_rows=len(table))
    run = RunResults(cfg, win, aggs, pop, records, verdict, table, thresholds)
    out = publish_outputs(Path(reports), h, run, wait_seconds=wait_seconds)
    progress_log.info(
        "evaluate %s as of %s: %s, %.1f s",
        cfg.feature,
        as_of,
        verdict.verdict.value,
        time.perf_counter() - t0,
    )
    return EvaluationResult(
        feature=cfg.feature,
        as_of=as_of,
        verdict=verdict,
        thresholds=thresholds,
        metrics=table,
        evidence=evidence,
        run_dir=out,
        extras={
            "recomputed_days": list(refreshed.recomputed),
            "updated_days": list(refreshed.updated),
            "cached_days": list(refreshed.cached),
        },
    )


def publish(result: EvaluationResult, *, reports: str | Path) -> Path:
    """Publish a run: (re)write `reports/index.html`; returns the run's `readiness.html`.

    `evaluate` renders the report into the run folder together with verdict.json, so the two
    always agree; publishing adds the run to the index of past runs.
    """
    from trustramp.report import write_index

    write_index(Path(reports))
    return result.run_dir / "readiness.html"


def notify(
    result: EvaluationResult, *, home: str | Path, config: str | Path | RolloutConfig | None = None
) -> NotifyReport:
    """Send notifications of the run's new alerts (webhook from the config); never raises for
    delivery problems (they are logged and reported)."""
    from trustramp.notify import notify_verdict

    cfg = _resolve_config(result.feature, config)
    return notify_verdict(
        result.verdict.to_dict(),
        home=home,
        config=cfg,
        report=str(result.run_dir / "readiness.html"),
    )
