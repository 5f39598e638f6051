"""Plain-Python pipeline steps: ingest(), evaluate(), publish(). No Prefect here.

The CLI, the Prefect flows in `flows/`, tests and notebooks all call these functions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trustramp.config import RolloutConfig, load_config
from trustramp.ingest import IngestReport, ingest_paths

log = logging.getLogger(__name__)


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
    """Ingest files or folders into the lake at `home` (see `trustramp.ingest.ingest_paths`)."""
    loaded = [c if isinstance(c, RolloutConfig) else load_config(c) for c in configs] or [
        load_config(None)
    ]
    return ingest_paths(
        paths,
        home,
        kind=kind,
        segments=configured_segments(loaded),
        wait_seconds=wait_seconds,
        memory_limit=memory_limit,
        on_file=progress,
    )


def run_demo(
    *, out: Path, rows: int, seed: int, home: Path, reports: Path, prefect: bool = False
) -> list[str]:
    """Generate the demo dataset, ingest it, evaluate its last day; return the lines to show."""
    import yaml

    from trustramp.demo import demo_config, generate

    manifest = generate(out, n_predictions=rows, seed=seed, overwrite=True)
    cfg_path = out / "rollout.yaml"
    cfg_path.write_text(yaml.safe_dump(demo_config(manifest), sort_keys=False), "utf-8")
    if prefect:  # the same steps as Prefect flow runs (they show in the server's UI)
        from trustramp.orchestrate import run_flow

        report = run_flow("ingest", paths=[out], home=home, configs=[cfg_path])
    else:
        report = ingest([out], home=home, configs=[cfg_path])
    lines = [
        f"demo data: {sum(manifest.counts.values()):,} rows in {out} "
        f"({manifest.start} .. {manifest.end}, seed {seed}); config {cfg_path}"
    ]
    lines += report.summary_lines(per_file=False)
    lines.append("planted effects:")
    lines += [f"  {name}: {text}" for name, text in manifest.planted.items()]
    if prefect:
        result = run_flow(
            "evaluate",
            as_of=manifest.end,
            config=cfg_path,
            home=home,
            reports=reports,
            publish=True,
        )
    else:
        result = evaluate(home=home, reports=reports, as_of=manifest.end, config=cfg_path)
    v = result.verdict.to_dict()
    lines.append(
        f"verdict for {v['feature']} as of {v['as_of']}: {v['verdict']} (phase {v['phase']})"
    )
    lines += [f"  - {r}" for r in v["reasons"]]
    lines.append(f"outputs: {result.run_dir}")
    lines.append(f"report: {result.run_dir / 'readiness.html'}")
    return lines


# -- evaluate ---------------------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """What one evaluation produced; `verdict` is data, whatever it says."""

    feature: str
    as_of: dt.date
    verdict: Any
    thresholds: Any
    metrics: pd.DataFrame
    evidence: Any
    run_dir: Path
    extras: dict[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:  # a notebook shows the verdict and its criteria as tables
        import html

        v = self.verdict.to_dict()
        crit = pd.DataFrame(v["criteria"])
        return (
            f"<h3>{html.escape(self.feature)} as of {self.as_of}: "
            f"{html.escape(v['verdict'])}</h3><ul>"
            + "".join(f"<li>{html.escape(r)}</li>" for r in v["reasons"])
            + "</ul>"
            + (crit.to_html(index=False) if len(crit) else "")
        )


def _miscalibrated(evidence: Any, cfg: RolloutConfig) -> bool:
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


def _load_aggregates(
    con: Any,
    home: Any,
    cfg: RolloutConfig,
    as_of: dt.date,
    *,
    wait_seconds: float,
    full_recompute: bool = False,
) -> tuple[Any, Any, Any]:
    """(windows, aggregates, refresh) for an evaluation: refresh the day cache, then read it."""
    from trustramp.errors import NoDataError
    from trustramp.evaluation import windows_for
    from trustramp.store import aggregates as agg
    from trustramp.store import daycache
    from trustramp.store.lock import writer_lock

    if agg.data_window(con, cfg.feature) is None:
        raise NoDataError(
            f"no predictions for feature {cfg.feature!r} in {home.root}; "
            "ingest some first (trustramp ingest PATH)"
        )
    win = windows_for(cfg, as_of)
    bins, step = cfg.statistics.ece_bins, cfg.routing.grid_step
    # The day cache is written, then read, under the lock: another writer (an ingest, another
    # evaluation) cannot change a day between the two, so every day comes from the lake state
    # that `con`'s views show (refresh moved them to it).
    with writer_lock(home.root, wait_seconds=wait_seconds):
        refreshed = daycache.refresh(
            con, home, cfg.feature, win.first, as_of, bins=bins, grid_step=step, full=full_recompute
        )
        aggs = daycache.load(home, cfg.feature, win.first, as_of, bins=bins, grid_step=step)
    return win, aggs, refreshed


def _customer_grid(con: Any, cfg: RolloutConfig, win: Any, pop: Any) -> pd.DataFrame | None:
    """Per-customer threshold counts of the certified population (None without a version)."""
    from trustramp.store import aggregates as agg

    if not pop.version:
        return None
    return agg.customer_grid(
        con, cfg.feature, win.gate_start, win.gate_end, pop.version, grid_step=cfg.routing.grid_step
    )


def recommend_thresholds(
    feature: str | None = None,
    *,
    home: str | Path,
    as_of: dt.date | None = None,
    config: str | Path | RolloutConfig | None = None,
    wait_seconds: float = 600.0,
) -> Any:
    """Recommended routing thresholds (global, per segment, progression stage, what-if)."""
    from trustramp.evaluation import gate_population, recommend
    from trustramp.store.lake import Home, reader

    cfg = _resolve_config(feature, config)
    as_of = as_of or yesterday()
    h = Home.at(home)
    con = reader(h)
    try:
        win, aggs, _ = _load_aggregates(con, h, cfg, as_of, wait_seconds=wait_seconds)
        pop = gate_population(aggs, win, cfg)
        cust_grid = _customer_grid(con, cfg, win, pop)
    finally:
        con.close()
    return recommend(aggs, win, pop, cfg, customer_grid=cust_grid)


def whatif(
    policy: dict[str, float | None],
    feature: str | None = None,
    *,
    home: str | Path,
    as_of: dt.date | None = None,
    config: str | Path | RolloutConfig | None = None,
    wait_seconds: float = 600.0,
) -> Any:
    """Replay a routing policy on the logged traffic of the monitoring window, against the
    config's current policy: items per band per day, accuracy per band, human workload."""
    from trustramp.decide.thresholds import replay_policy
    from trustramp.evaluation import _between, gate_population, grid_frame
    from trustramp.store.lake import Home, reader

    cfg = _resolve_config(feature, config)
    as_of = as_of or yesterday()
    h = Home.at(home)
    con = reader(h)
    try:
        win, aggs, _ = _load_aggregates(con, h, cfg, as_of, wait_seconds=wait_seconds)
    finally:
        con.close()
    current = {
        "auto": cfg.routing.auto,
        "confirm": cfg.routing.confirm,
        "review": cfg.routing.review,
    }
    full = {**current, **policy}
    version = gate_population(aggs, win, cfg).version
    traffic = _between(aggs.cells, win.monitor_start, win.as_of)
    traffic = traffic[traffic["model_version"] == version]  # one version's traffic, not doubled
    return replay_policy(
        grid_frame(traffic, cfg.routing.grid_step, ["day"]),
        full,
        current=current,
        step=cfg.routing.grid_step,
        confidence_level=cfg.statistics.confidence_level,
    )


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def evaluate(
    feature: str | None = None,
    *,
    home: str | Path,
    reports: str | Path,
    as_of: dt.date | None = None,
    config: str | Path | RolloutConfig | None = None,
    wait_seconds: float = 600.0,
    memory_limit: str | None = None,
    full_recompute: bool = False,
) -> EvaluationResult:
    """Evaluate one feature as of a date: metrics, verdict, thresholds; write the run's outputs.

    Parameters
    ----------
    feature : the feature; default: the config's `feature`.
    home, reports : the lake/catalog folder and the outputs folder.
    as_of : the evaluated day (default: yesterday, UTC).
    config : a rollout config (file or object); default: the playbook defaults.
    full_recompute : recompute every day's aggregates instead of only the days that new
        predictions or late decisions touched since the last run.
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
    from trustramp.store.lake import Home, reader
    from trustramp.store.lock import writer_lock
    from trustramp.store.outputs import publish_run, record_run, run_dir, write_json, write_metrics

    cfg = _resolve_config(feature, config)
    as_of = as_of or yesterday()
    run_dir(Path(reports), cfg.feature, as_of)  # validates the name before any work
    h = Home.at(home)
    con = reader(h, memory_limit=memory_limit)
    try:
        win, aggs, refreshed = _load_aggregates(
            con, h, cfg, as_of, wait_seconds=wait_seconds, full_recompute=full_recompute
        )
        # How fresh the snapshot this run reads is (the day-cache refresh moved the views to the
        # commits current under the lock): a stale run never replaces a fresher one's folder.
        (lake_commits,) = con.sql("SELECT count(DISTINCT source) FROM ingest_log").fetchall()[0]
        pop = gate_population(aggs, win, cfg)
        paired = (
            agg.paired_table(
                con, cfg.feature, win.gate_start, win.gate_end, pop.version, pop.previous
            )
            if pop.version and pop.previous
            else None
        )
        cust_grid = _customer_grid(con, cfg, win, pop)
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
                    con,
                    cfg.feature,
                    win.gate_start,
                    win.gate_end,
                    pop.version,
                    cfg.statistics.ece_bins,
                ),
                classwise=agg.classwise_bins(
                    con,
                    cfg.feature,
                    win.gate_start,
                    win.gate_end,
                    pop.version,
                    cfg.statistics.ece_bins,
                ),
            )
        recal = None
        if _miscalibrated(evidence, cfg) and pop.version:
            from trustramp.decide.recalibration import fit_recalibration

            sample = agg.labeled_sample(
                con,
                cfg.feature,
                win.gate_start,
                win.gate_end,
                pop.version,
                seed=cfg.statistics.seed,
            )
            recal = fit_recalibration(
                sample["confidence"].to_numpy(float),
                sample["correct"].to_numpy(int),
                keys=sample["item_key"].to_numpy(),
                seed=cfg.statistics.seed,
                n_bins=cfg.statistics.ece_bins,
            )
    finally:
        con.close()
    verdict = decide(evidence, cfg, trustramp_version=__version__, config_hash=cfg.hash())
    table = metrics_table(
        aggs, win, confidence=cfg.statistics.confidence_level, psi_min_n=cfg.statistics.psi_min_n
    )
    if extra_rows is not None and len(extra_rows):
        table = pd.concat([table, extra_rows], ignore_index=True)
    thresholds = recommend(aggs, win, pop, cfg, customer_grid=cust_grid)
    if recal is not None:
        thresholds = dataclasses.replace(thresholds, recalibration=recal)
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

    with writer_lock(h.root, wait_seconds=wait_seconds):
        out = publish_run(
            Path(reports), cfg.feature, as_of, write, lake_commits=lake_commits, run_id=run_id
        )
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
                "report": str(out),
            },
        )
        from trustramp.store.lake import rebuild_catalog

        rebuild_catalog(h)
    write_index(Path(reports))
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
) -> Any:
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
