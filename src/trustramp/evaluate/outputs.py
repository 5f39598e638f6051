"""The run's outputs: verdict.json, metrics.parquet, thresholds.yaml and readiness.html written
into the run folder, published (atomically, a stale run never replacing a fresher one's folder),
recorded in the run history and listed in the index of runs.

The writing itself lives in `trustramp.store.outputs` (the folder swap, the history) and
`trustramp.report` (the page); this module decides what goes in them, from computed results only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trustramp import metrics as m
from trustramp.config import RolloutConfig
from trustramp.evaluate.gate_metrics import slice_audits
from trustramp.evaluate.thresholds import Thresholds
from trustramp.evaluate.windows import GatePopulation, Windows, _between
from trustramp.progress import stage
from trustramp.store.aggregates import Aggregates

if TYPE_CHECKING:
    from trustramp.decide.verdict import Verdict
    from trustramp.evaluate.stage1 import RunRecords
    from trustramp.store.lake import Home

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResults:
    """What an evaluation computed, for its outputs: the config and windows it ran with, the
    day statistics and certified population it read, the records of the lake, and the verdict,
    metrics table and thresholds it decided."""

    cfg: RolloutConfig
    win: Windows
    aggs: Aggregates
    pop: GatePopulation
    records: RunRecords
    verdict: Verdict
    table: pd.DataFrame
    thresholds: Thresholds


def publish_outputs(reports: Path, home: Home, run: RunResults, *, wait_seconds: float) -> Path:
    """Write the run's outputs into a new run folder, publish it, record the run in the history
    (and rebuild the catalog) and rewrite the index of runs; returns the run folder."""
    from trustramp.report import write_index
    from trustramp.store.lake import rebuild_catalog
    from trustramp.store.lock import writer_lock
    from trustramp.store.outputs import publish_run, record_run, run_dir, writing

    cfg, as_of, verdict = run.cfg, run.win.as_of, run.verdict
    run_id = uuid.uuid4().hex[:12]

    def write(tmp: Path) -> None:
        write_run_files(tmp, run_id, home, run)

    lake_commits = run.records.lake_commits
    with stage("publish") as line, writer_lock(home.root, wait_seconds=wait_seconds):
        with writing("the run's outputs", reports):
            out = publish_run(
                reports, cfg.feature, as_of, write, lake_commits=lake_commits, run_id=run_id
            )
        line["outputs"] = out
        if out != run_dir(reports, cfg.feature, as_of):
            log.warning(
                "a run on newer data (more than %d ingest commits) is already published for %s "
                "as of %s; this run's outputs went to %s",
                lake_commits,
                cfg.feature,
                as_of,
                out,
            )
        v = verdict.to_dict()
        with writing("the run history", home.state):
            record_run(
                home,
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
            rebuild_catalog(home)
    with writing("the index of runs", reports):
        write_index(reports)
    return out


def write_run_files(tmp: Path, run_id: str, home: Home, run: RunResults) -> None:
    """verdict.json, metrics.parquet, thresholds.yaml and readiness.html into the folder `tmp`."""
    from trustramp import __version__
    from trustramp.report import write_report
    from trustramp.store.outputs import write_json, write_metrics

    cfg, win, aggs, pop, records = run.cfg, run.win, run.aggs, run.pop, run.records
    verdict, table, thresholds = run.verdict, run.table, run.thresholds

    doc = verdict.to_dict()
    doc["data"]["quarantined_by_reason"] = records.quarantine
    doc["run_id"] = run_id
    doc["lake_commits"] = records.lake_commits
    doc["slice_audit"] = slice_audits(
        {c: f for c, f in records.slices.items() if c in cfg.statistics.slices}, cfg
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
        ingested=records.ingested,
        quarantined=records.quarantine,
        feedback=records.feedback,
        comments=records.comments,
        incidents=records.incidents,
        provenance={
            "run_id": run_id,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(),
            "config_hash": doc["config_hash"],
            "trustramp_version": __version__,
            "data_window": f"{win.first} .. {win.as_of}",
            "gate_window": f"{win.gate_start} .. {win.gate_end}",
            "home": str(home.root),
        },
    )
    write_report(inputs, tmp / "readiness.html")


def report_inputs(
    verdict: dict,
    table: pd.DataFrame,
    thresholds: Thresholds,
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    config: RolloutConfig,
    *,
    ingested: dict[str, int],
    quarantined: dict[str, int],
    feedback: dict,
    comments: list[dict],
    incidents: pd.DataFrame,
    provenance: dict,
) -> object:
    """The readiness report's inputs, from computed results only (no raw rows)."""
    from trustramp.config import Phase
    from trustramp.report import ReportInputs

    bins = pop.ece_bins(config.statistics.ece_bins)
    reliability = m.reliability_table(
        bins["labeled"].to_numpy(),
        bins["correct"].to_numpy(),
        bins["conf_sum"].to_numpy(),
        confidence=config.statistics.confidence_level,
    )
    conf = aggs.confidence[aggs.confidence["model_version"] == pop.version]
    edges = np.linspace(0, 1, aggs.bins + 1)
    shares = {}
    for name, (lo, hi) in {
        "current": (win.as_of - dt.timedelta(days=6), win.as_of),
        "baseline": (win.baseline_start, win.baseline_end),
    }.items():
        counts = (
            _between(conf, lo, hi)
            .groupby("bin")["n"]
            .sum()
            .reindex(range(aggs.bins), fill_value=0)
            .to_numpy(float)
        )
        shares[name] = counts / counts.sum() if counts.sum() else np.full(aggs.bins, np.nan)
    confidence_hist = pd.DataFrame(
        {"bin": range(aggs.bins), "lo": edges[:-1], "hi": edges[1:], **shares}
    )
    tradeoff = None
    auto = thresholds.certified.band("auto").certified
    if auto is not None and len(auto.curve):
        c = auto.curve
        total = max(thresholds.certified.n_total, 1)
        lo, hi = m.wilson_interval(
            c["correct"].to_numpy(int),
            c["n"].to_numpy(int),
            confidence=config.statistics.confidence_level,
        )
        tradeoff = pd.DataFrame(
            {
                "threshold": c["threshold"],
                "share": c["total"] / total,
                "accuracy": c["accuracy"],
                "ci_low": lo,
                "ci_high": hi,
                "p_value": c["p_value"],
            }
        )
    inc = incidents[incidents["resolved_at"].isna()] if len(incidents) else incidents
    return ReportInputs(
        verdict=verdict,
        metrics=table,
        thresholds=thresholds.recommended,
        segment_thresholds=thresholds.segments,
        whatif=thresholds.whatif,
        stage=thresholds.stage,
        reliability=reliability,
        confidence_hist=confidence_hist,
        tradeoff=tradeoff,
        alert_levels={r.metric: (r.warning, r.critical) for r in config.alerts.rules},
        ingest={"ingested": ingested, "quarantined": quarantined},
        provenance=provenance,
        escalation=[e.model_dump(mode="json") for e in config.escalation],
        feedback={
            "positive": feedback["positive"],
            "ratings": feedback["total"],
            "nps": feedback["nps"],
            "comments": comments,
        },
        incidents=inc.to_dict("records"),
        recalibration=thresholds.recalibration,
        controlled_steps=tuple(config.phases[Phase.CONTROLLED].steps or ()),
        windows={  # the page names each number's window with these days
            "gate": (win.gate_start, win.gate_end),
            "monitoring": (win.monitor_start, win.as_of),
            "rolling_24h": (win.as_of, win.as_of),
            "recent": (win.as_of - dt.timedelta(days=6), win.as_of),
            "baseline": (win.baseline_start, win.baseline_end),
            "aggregated": (win.first, win.as_of),
        },
    )
