"""Plain-Python pipeline steps: ingest(), evaluate(), publish(). No Prefect here.

The CLI, the Prefect flows in `flows/`, tests and notebooks all call these functions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from trustramp.config import RolloutConfig, load_config
from trustramp.errors import NoDataError, UsageError
from trustramp.ingest import IngestReport, ingest_paths

if TYPE_CHECKING:
    import duckdb

    from trustramp.decide.evidence import Evidence
    from trustramp.decide.thresholds import Replay
    from trustramp.decide.verdict import Verdict
    from trustramp.evaluation import GatePopulation, Thresholds, Windows
    from trustramp.notify import NotifyReport
    from trustramp.store.aggregates import Aggregates
    from trustramp.store.daycache import Refresh
    from trustramp.store.engine import EngineSpec
    from trustramp.store.lake import Home

log = logging.getLogger(__name__)
progress_log = logging.getLogger("trustramp.progress")
"""Stage lines (what runs, rows, seconds): shown with `-v`, and on a terminal."""

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


@contextmanager
def stage(name: str, **details: object) -> Iterator[dict[str, object]]:
    """Log a stage line on the way out: `name: k v, ..., 1.2 s` (details may be added inside)."""
    t0 = time.perf_counter()
    yield details
    parts = [f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in details.items()]
    progress_log.info("%s: %s", name, ", ".join([*parts, f"{time.perf_counter() - t0:.1f} s"]))


def _fmt(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


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


# -- results ----------------------------------------------------------------------------------------


def _table_html(frame: pd.DataFrame, *, float_format: str = "{:.3f}") -> str:
    """A small frame as an HTML table (values escaped)."""
    if frame.empty:
        return "<p><em>none</em></p>"
    return frame.to_html(
        index=False, escape=True, na_rep="", float_format=float_format.format, border=0
    )


def _h(value: object) -> str:
    return html.escape(str(value))


@dataclass
class EvaluationResult:
    """What one evaluation produced; `verdict` is data, whatever it says.

    Attributes
    ----------
    feature, as_of : the feature and the evaluated day.
    verdict : the decided verdict (`verdict.to_dict()` is verdict.json).
    thresholds : the recommended routing thresholds (thresholds.yaml).
    metrics : the tidy metrics table (metrics.parquet).
    evidence : the counts and statistics the verdict was decided from.
    run_dir : the folder the run's outputs were published to.
    extras : `recomputed_days` and `cached_days` of the day cache.
    """

    feature: str
    as_of: dt.date
    verdict: Verdict
    thresholds: Thresholds
    metrics: pd.DataFrame
    evidence: Evidence
    run_dir: Path
    extras: dict[str, list[dt.date]] = field(default_factory=dict)

    def __repr__(self) -> str:
        v = self.verdict
        outcomes = pd.Series([c.outcome.value for c in v.criteria], dtype=object).value_counts()
        crit = ", ".join(f"{n} {o}" for o, n in outcomes.items()) or "none"
        step = f" {v.step}%" if v.step else ""
        return (
            f"EvaluationResult(feature={self.feature!r}, as_of={self.as_of}, "
            f"verdict={v.verdict.value}, phase={v.phase.value}{step}, criteria: {crit}, "
            f"run_dir='{self.run_dir}')"
        )

    def _repr_html_(self) -> str:
        """The verdict, why, its criteria, firing alerts and the data window, as HTML tables."""
        v = self.verdict.to_dict()
        crit = pd.DataFrame(
            v["criteria"],
            columns=[
                "name",
                "segment",
                "comparator",
                "threshold",
                "value",
                "ci_low",
                "n",
                "outcome",
            ],
        )
        alerts = pd.DataFrame(
            [a for a in v["alerts"] if a.get("level")],
            columns=["level", "metric", "segment", "value", "threshold", "action"],
        )
        d = v["data"]
        data = (
            f"window {_h(d['window_start'])} .. {_h(d['window_end'])}: "
            f"{d['predictions']:,} predictions, {d['labeled']:,} labeled, "
            f"{d['quarantined']:,} rows quarantined"
        )
        step = f" {v['step']}%" if v.get("step") else ""
        return (
            f"<div><h3>{_h(self.feature)} as of {self.as_of}: {_h(v['verdict'])} "
            f"(phase {_h(v['phase'])}{step})</h3>"
            "<ul>" + "".join(f"<li>{_h(r)}</li>" for r in v["reasons"]) + "</ul>"
            f"<h4>Criteria</h4>{_table_html(crit)}"
            f"<h4>Alerts firing</h4>{_table_html(alerts)}"
            f"<p>{data}. Thresholds: {_h(_bands_line(self.thresholds))}. "
            f"Outputs: <code>{_h(self.run_dir)}</code></p></div>"
        )


def _bands_line(th: Thresholds) -> str:
    return ", ".join(
        f"{b.band} {'none' if b.threshold is None else f'{b.threshold:.2f}'}"
        for b in th.recommended.bands
        if b.band != "human"
    )


@dataclass
class ThresholdsResult:
    """Recommended routing thresholds of one feature as of a day (`to_yaml()` is the patch)."""

    feature: str
    as_of: dt.date
    thresholds: Thresholds

    def to_yaml(self) -> str:
        return self.thresholds.to_yaml()

    def bands(self) -> pd.DataFrame:
        """One row per band: threshold, change, share, accuracy with its interval, n, guarantee."""
        return pd.DataFrame(
            [
                {
                    "band": b.band,
                    "threshold": b.threshold,
                    "change": b.change,
                    "share": b.share,
                    "accuracy": b.accuracy,
                    "ci_low": b.ci_low,
                    "ci_high": b.ci_high,
                    "n": b.n,
                    "guarantee": b.guarantee or b.reason,
                }
                for b in self.thresholds.recommended.bands
            ]
        )

    def __repr__(self) -> str:
        return (
            f"ThresholdsResult(feature={self.feature!r}, as_of={self.as_of}, "
            f"stage={self.thresholds.stage!r}, {_bands_line(self.thresholds)})"
        )

    def _repr_html_(self) -> str:
        rec = self.thresholds.recommended
        return (
            f"<div><h3>{_h(self.feature)} thresholds as of {self.as_of}</h3>"
            f"<p>stage: {_h(self.thresholds.stage)}; population: {_h(rec.population)}</p>"
            f"{_table_html(self.bands())}</div>"
        )


@dataclass
class WhatIfResult:
    """A proposed routing policy replayed on logged traffic, against the config's current one."""

    feature: str
    as_of: dt.date
    policy: dict[str, float | None]
    """The proposed thresholds (bands not given keep the config's)."""
    current: dict[str, float | None]
    replay: Replay

    @property
    def summary(self) -> pd.DataFrame:
        """Per policy and band over the window: items, share, items per day, accuracy, interval."""
        return self.replay.summary

    @property
    def workload(self) -> pd.DataFrame:
        """Per policy and day: items not auto-processed (`human_workload`)."""
        return self.replay.workload

    @property
    def by_day(self) -> pd.DataFrame:
        return self.replay.by_day

    def workload_per_day(self) -> dict[str, float]:
        """Mean human workload per day, per policy (`proposed`, `current`)."""
        means = self.workload.groupby("policy")["human_workload"].mean()
        return {str(k): float(v) for k, v in means.items()}

    def __repr__(self) -> str:
        work = ", ".join(f"{p} {w:,.0f}" for p, w in self.workload_per_day().items())
        policy = " ".join(f"{k}={'closed' if v is None else v}" for k, v in self.policy.items())
        return (
            f"WhatIfResult(feature={self.feature!r}, as_of={self.as_of}, {policy}; "
            f"human workload per day: {work or 'n/a'})"
        )

    def _repr_html_(self) -> str:
        cols = [
            c
            for c in ("policy", "band", "threshold", "items", "share", "accuracy", "ci_low")
            if c in self.summary.columns
        ]
        work = pd.DataFrame(
            list(self.workload_per_day().items()), columns=["policy", "human workload per day"]
        )
        return (
            f"<div><h3>{_h(self.feature)} what-if as of {self.as_of}</h3>"
            f"{_table_html(self.summary[cols])}{_table_html(work, float_format='{:,.0f}')}</div>"
        )


@dataclass(frozen=True)
class NoDataResult:
    """An evaluation that had no predictions to evaluate (the CLI's exit 6), returned as data
    by the Prefect flows: the run did what it could, it did not break."""

    feature: str
    as_of: dt.date
    message: str

    def __repr__(self) -> str:
        return f"NoDataResult(feature={self.feature!r}, as_of={self.as_of}: {self.message})"

    def _repr_html_(self) -> str:
        return f"<p><strong>{_h(self.feature)} as of {self.as_of}</strong>: {_h(self.message)}</p>"


# -- evaluate ---------------------------------------------------------------------------------------


def _miscalibrated(evidence: Evidence, cfg: RolloutConfig) -> bool:
    """SPEC 3.5: miscalibrated only when the consistency test rejects and ECE is over threshold."""
    c = evidence.calibration
    return bool(
        c is not None
        and c.ece is not None
        and c.p_value is not None
        and c.n >= 500
        and c.p_value < 0.01
        and c.ece > cfg.statistics.ece_threshold
    )


def _resolve_config(
    feature: str | None, config: str | Path | RolloutConfig | None
) -> RolloutConfig:
    cfg = config if isinstance(config, RolloutConfig) else load_config(config)
    if feature and feature != cfg.feature:
        cfg = cfg.model_copy(update={"feature": feature})
    return cfg


def _windows(cfg: RolloutConfig, as_of: dt.date) -> Windows:
    """The evaluation's windows; an as-of whose window starts before year 1 is a usage error."""
    from trustramp.evaluation import windows_for

    try:
        return windows_for(cfg, as_of)
    except OverflowError:
        st = cfg.statistics
        raise UsageError(
            f"as-of {as_of} is too early: its windows reach "
            f"{max(st.window_days, st.maturation_days + st.window_days, 14)} days back, "
            "before the first representable date"
        ) from None


def _check_data(
    con: duckdb.DuckDBPyConnection, home: Home, cfg: RolloutConfig, win: Windows
) -> None:
    """Refuse early (NoDataError, exit 6) when the feature has no predictions in the window."""
    from trustramp.store import aggregates as agg

    span = agg.data_window(con, cfg.feature)
    if span is None:
        present = agg.features(con)
        if present:
            raise NoDataError(
                f"no predictions for feature {cfg.feature!r} in {home.root}; the lake has "
                f"{', '.join(repr(f) for f in present[:10])}"
                + (f" and {len(present) - 10} more" if len(present) > 10 else "")
                + ": pass --feature NAME (or a --config whose feature is one of them)"
            )
        raise NoDataError(
            f"no predictions for feature {cfg.feature!r} in {home.root}; "
            "ingest some first (trustramp ingest PATH)"
        )
    first, last = span
    if last < win.monitor_start or first > win.as_of:
        raise NoDataError(
            f"no predictions for {cfg.feature} in the window {win.monitor_start}..{win.as_of}; "
            f"the data covers {first}..{last}: pass --as-of {last}"
        )


def _load_aggregates(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    cfg: RolloutConfig,
    as_of: dt.date,
    *,
    wait_seconds: float,
    full_recompute: bool = False,
    engine: EngineSpec | None = None,
) -> tuple[Windows, Aggregates, Refresh]:
    """(windows, aggregates, refresh) for an evaluation: refresh the day cache (on `engine`'s
    stage-1 engine; default: TRUSTRAMP_ENGINE, else DuckDB), then read it."""
    from trustramp.store import daycache
    from trustramp.store.engine import EngineSpec
    from trustramp.store.lock import writer_lock

    win = _windows(cfg, as_of)
    _check_data(con, home, cfg, win)
    bins, step, seed = cfg.statistics.ece_bins, cfg.routing.grid_step, cfg.statistics.seed
    # The day cache is written, then read, under the lock: another writer (an ingest, another
    # evaluation) cannot change a day between the two, so every day comes from the lake state
    # that `con`'s views show (refresh moved them to it).
    spec = engine if engine is not None else EngineSpec.of()
    stale = daycache.stale_days(
        home,
        cfg.feature,
        win.first,
        as_of,
        bins=bins,
        grid_step=step,
        seed=seed,
        full=full_recompute,
    )
    spec = spec.for_work(bool(stale))
    # Spark starts (seconds) before the lock is taken, not while holding it.
    with stage("aggregates", days=(as_of - win.first).days + 1) as line, spec.started() as eng:
        with writer_lock(home.root, wait_seconds=wait_seconds):
            refreshed = daycache.refresh(
                con,
                home,
                cfg.feature,
                win.first,
                as_of,
                bins=bins,
                grid_step=step,
                seed=seed,
                full=full_recompute,
                engine=eng,
            )
            aggs = daycache.load(
                home, cfg.feature, win.first, as_of, bins=bins, grid_step=step, seed=seed
            )
        line.update(recomputed=len(refreshed.recomputed), cells=len(aggs.cells))
    return win, aggs, refreshed


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
    predictions are left out. Returns each feature's `Refresh` (days recomputed and cached).
    """
    from trustramp.store import aggregates as agg
    from trustramp.store import daycache
    from trustramp.store.engine import EngineSpec
    from trustramp.store.lock import writer_lock

    cfgs = [_resolve_config(None, c) for c in configs]
    day = as_date(as_of) or yesterday()
    spec = engine if engine is not None else EngineSpec.of()
    h, con = _open_home(home)
    out: dict[str, Refresh] = {}
    stale = any(
        daycache.stale_days(
            h,
            cfg.feature,
            _windows(cfg, day).first,
            day,
            bins=cfg.statistics.ece_bins,
            grid_step=cfg.routing.grid_step,
            seed=cfg.statistics.seed,
        )
        for cfg in cfgs
    )
    spec = spec.for_work(stale)
    try:
        with spec.started() as eng:
            for cfg in cfgs:
                if agg.data_window(con, cfg.feature) is None:
                    continue
                first = _windows(cfg, day).first
                with stage("aggregates", feature=cfg.feature, engine=spec.name) as line:
                    with writer_lock(h.root, wait_seconds=wait_seconds):
                        out[cfg.feature] = daycache.refresh(
                            con,
                            h,
                            cfg.feature,
                            first,
                            day,
                            bins=cfg.statistics.ece_bins,
                            grid_step=cfg.routing.grid_step,
                            seed=cfg.statistics.seed,
                            engine=eng,
                        )
                    line.update(recomputed=len(out[cfg.feature].recomputed))
    finally:
        con.close()
    return out


def _open_home(
    home: str | Path, *, memory_limit: str | None = None
) -> tuple[Home, duckdb.DuckDBPyConnection]:
    """The home folder (created if missing) and a reader on its catalog; a home that cannot
    be created or written is a StoreError naming it."""
    from trustramp.store.lake import Home, reader
    from trustramp.store.outputs import writing

    with writing("the home folder (lake and catalog)", Path(home)):
        h = Home.at(home)
        return h, reader(h, memory_limit=memory_limit)


def _customer_grid(aggs: Aggregates, win: Windows, pop: GatePopulation) -> pd.DataFrame | None:
    """Per-customer threshold counts of the certified population (None without a version)."""
    from trustramp.store import aggregates as agg

    if not pop.version:
        return None
    return agg.customer_grid(aggs, win.gate_start, win.gate_end, pop.version)


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
    from trustramp.evaluation import gate_population, recommend

    cfg = _resolve_config(feature, config)
    day = as_date(as_of) or yesterday()
    h, con = _open_home(home)
    try:
        win, aggs, _ = _load_aggregates(con, h, cfg, day, wait_seconds=wait_seconds)
        pop = gate_population(aggs, win, cfg)
        cust_grid = _customer_grid(aggs, win, pop)
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
    from trustramp.evaluation import _between, gate_population, grid_frame

    cfg = _resolve_config(feature, config)
    current = cfg.routing.thresholds()  # a closed band (false): None, not offered
    unknown = set(policy) - set(current)
    if unknown:
        raise UsageError(
            f"unknown band(s) {', '.join(sorted(unknown))}; expected auto, confirm, review"
        )
    check_policy(policy, current)
    day = as_date(as_of) or yesterday()
    h, con = _open_home(home)
    try:
        win, aggs, _ = _load_aggregates(con, h, cfg, day, wait_seconds=wait_seconds)
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
    from trustramp.decide.evidence import Count
    from trustramp.decide.verdict import decide
    from trustramp.evaluation import (
        build_evidence,
        gate_metric_rows,
        gate_population,
        metrics_table,
        recommend,
        report_inputs,
        slice_audits,
    )
    from trustramp.report import write_index, write_report
    from trustramp.store import aggregates as agg
    from trustramp.store.lock import writer_lock
    from trustramp.store.outputs import (
        publish_run,
        record_run,
        run_dir,
        write_json,
        write_metrics,
        writing,
    )

    cfg = _resolve_config(feature, config)
    as_of = as_date(as_of) or yesterday()
    run_dir(Path(reports), cfg.feature, as_of)  # validates the name before any work
    t0 = time.perf_counter()
    h, con = _open_home(home, memory_limit=memory_limit)
    try:
        win, aggs, refreshed = _load_aggregates(
            con,
            h,
            cfg,
            as_of,
            wait_seconds=wait_seconds,
            full_recompute=full_recompute,
            engine=engine,
        )
        # How fresh the snapshot this run reads is (the day-cache refresh moved the views to the
        # commits current under the lock): a stale run never replaces a fresher one's folder.
        (lake_commits,) = con.sql("SELECT count(DISTINCT source) FROM ingest_log").fetchall()[0]
        pop = gate_population(aggs, win, cfg)
        paired = (
            agg.paired_table(aggs, win.gate_start, win.gate_end, pop.version, pop.previous)
            if pop.version and pop.previous
            else None
        )
        cust_grid = _customer_grid(aggs, win, pop)
        edge_cases = {}
        slices: dict[str, pd.DataFrame] = {}
        if pop.version:
            st = cfg.statistics
            for column in {e.column for e in st.edge_case_slices} | set(st.slices):
                slices[column] = agg.slice_counts(
                    con, cfg.feature, win.gate_start, win.gate_end, pop.version, column
                )
            for e in st.edge_case_slices:
                hit = slices[e.column][slices[e.column]["value"] == e.value]
                edge_cases[e.name] = Count(int(hit["k"].sum()), int(hit["n"].sum()))
        feedback = agg.feedback_counts(con, cfg.feature, win.monitor_start, as_of)
        incidents = agg.incidents_of(con, cfg.feature)
        comments = agg.feedback_comments(con, cfg.feature, win.monitor_start, as_of)
        ingested = agg.ingest_counts(con)
        evidence = build_evidence(
            aggs,
            win,
            cfg,
            pop=pop,
            paired=paired,
            feedback=feedback,
            incidents=incidents,
            quarantined=sum(agg.quarantine_counts(con).values()),
            edge_cases=edge_cases,
        )
        quarantine = agg.quarantine_counts(con)
        extra_rows = None
        if pop.version:
            extra_rows = gate_metric_rows(
                aggs,
                win,
                pop,
                cfg,
                equal_mass=agg.equal_mass_bins(
                    aggs, win.gate_start, win.gate_end, pop.version, cfg.statistics.ece_bins
                ),
                classwise=agg.classwise_bins(aggs, win.gate_start, win.gate_end, pop.version),
            )
        recal = None
        if _miscalibrated(evidence, cfg) and pop.version:
            from trustramp.decide.recalibration import fit_recalibration

            sample = agg.labeled_sample(aggs, win.gate_start, win.gate_end, pop.version)
            recal = fit_recalibration(
                sample["confidence"].to_numpy(float),
                sample["correct"].to_numpy(int),
                keys=sample["sample_key"].to_numpy(),
                seed=cfg.statistics.seed,
                n_bins=cfg.statistics.ece_bins,
            )
    finally:
        con.close()
    progress_log.info(
        "evidence: version %s, %s labeled gate items, %.1f s",
        pop.version or "none",
        f"{evidence.accuracy['all'].n:,}" if "all" in evidence.accuracy else 0,
        time.perf_counter() - t0,
    )
    with stage("decide") as line:
        verdict = decide(evidence, cfg, trustramp_version=__version__, config_hash=cfg.hash())
        table = metrics_table(
            aggs,
            win,
            confidence=cfg.statistics.confidence_level,
            psi_min_n=cfg.statistics.psi_min_n,
        )
        if extra_rows is not None and len(extra_rows):
            table = pd.concat([table, extra_rows], ignore_index=True)
        thresholds = recommend(aggs, win, pop, cfg, customer_grid=cust_grid)
        if recal is not None:
            thresholds = dataclasses.replace(thresholds, recalibration=recal)
        line.update(verdict=verdict.verdict.value, metric_rows=len(table))
    run_id = uuid.uuid4().hex[:12]

    def write(tmp: Path) -> None:
        doc = verdict.to_dict()
        doc["data"]["quarantined_by_reason"] = quarantine
        doc["run_id"] = run_id
        doc["lake_commits"] = lake_commits
        doc["slice_audit"] = slice_audits(
            {c: f for c, f in slices.items() if c in cfg.statistics.slices}, cfg
        )
        write_json(doc, tmp / "verdict.json")
        write_metrics(table, tmp / "metrics.parquet")
        (tmp / "thresholds.yaml").write_text(thresholds.to_yaml(), "utf-8")
        inputs = report_inputs(
            doc,
            table,
            thresholds,
            aggs,
            win,
            pop,
            cfg,
            ingested=ingested,
            quarantined=quarantine,
            feedback=feedback,
            comments=comments,
            incidents=incidents,
            provenance={
                "run_id": run_id,
                "generated_at": dt.datetime.now(dt.UTC).isoformat(),
                "config_hash": doc["config_hash"],
                "trustramp_version": __version__,
                "data_window": f"{win.first} .. {as_of}",
                "gate_window": f"{win.gate_start} .. {win.gate_end}",
                "home": str(h.root),
            },
        )
        write_report(inputs, tmp / "readiness.html")

    with stage("publish") as line, writer_lock(h.root, wait_seconds=wait_seconds):
        with writing("the run's outputs", Path(reports)):
            out = publish_run(
                Path(reports), cfg.feature, as_of, write, lake_commits=lake_commits, run_id=run_id
            )
        line["outputs"] = out
        if out != run_dir(Path(reports), cfg.feature, as_of):
            log.warning(
                "a run on newer data (more than %d ingest commits) is already published for %s "
                "as of %s; this run's outputs went to %s",
                lake_commits,
                cfg.feature,
                as_of,
                out,
            )
        v = verdict.to_dict()
        with writing("the run history", h.state):
            record_run(
                h,
                {
                    "run_id": run_id,
                    "feature": cfg.feature,
                    "as_of": as_of,
                    "verdict": v["verdict"],
                    "phase": v["phase"],
                    "step": v["step"],
                    "config_hash": v["config_hash"],
                    "run_at": dt.datetime.now(dt.UTC),
                    "reasons": json.dumps(v["reasons"]),
                    "report": str(out.resolve()),  # absolute: found from any working directory
                },
            )
            from trustramp.store.lake import rebuild_catalog

            rebuild_catalog(h)
    with writing("the index of runs", Path(reports)):
        write_index(Path(reports))
    progress_log.info(
        "evaluate %s as of %s: %s, %.1f s",
        cfg.feature,
        as_of,
        v["verdict"],
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
