"""What the pipeline's entry points return: `EvaluationResult`, `ThresholdsResult`,
`WhatIfResult` and `NoDataResult`, typed dataclasses with a one-line `repr` and `_repr_html_`
(for notebooks). `trustramp.pipeline` re-exports them.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from trustramp.decide.evidence import Evidence
    from trustramp.decide.thresholds import Replay
    from trustramp.decide.verdict import Verdict
    from trustramp.evaluate.thresholds import Thresholds


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
    extras : `recomputed_days`, `updated_days` (new decisions only: updated by sums) and
        `cached_days` of the day cache.
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
