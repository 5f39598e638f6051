"""Recommended routing thresholds (thresholds.yaml) from the certified population's grid.

The threshold grid (0.01-wide confidence cells) of the certified population, certified per band
with customers as clusters (as the gates), per segment and per customer; staged by the playbook's
progression; replayed against the current policy on the monitoring window (the what-if); and,
when calibration is poor, a recalibration map fitted on a labeled sample. The certification
itself lives in `trustramp.decide.thresholds`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from trustramp.config import RolloutConfig
from trustramp.decide.evidence import Evidence
from trustramp.evaluate.evidence import miscalibrated
from trustramp.evaluate.windows import GatePopulation, Windows, _between
from trustramp.store.aggregates import Aggregates


def run_thresholds(
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    config: RolloutConfig,
    *,
    recalibration: object | None = None,
) -> Thresholds:
    """The run's thresholds: `recommend` with the certified population's customer grid, and the
    recalibration map (when one was fitted)."""
    thresholds = recommend(aggs, win, pop, config, customer_grid=gate_customer_grid(aggs, win, pop))
    if recalibration is not None:
        thresholds = dataclasses.replace(thresholds, recalibration=recalibration)
    return thresholds


def gate_customer_grid(aggs: Aggregates, win: Windows, pop: GatePopulation) -> pd.DataFrame | None:
    """Per-customer threshold counts of the certified population (None without a version)."""
    from trustramp.store import aggregates as agg

    if not pop.version:
        return None
    return agg.customer_grid(aggs, win.gate_start, win.gate_end, pop.version)


def fit_recalibration_if_miscalibrated(
    evidence: Evidence, aggs: Aggregates, win: Windows, pop: GatePopulation, cfg: RolloutConfig
) -> object | None:
    """A recalibration map fitted on a labeled sample of the certified population when its
    calibration is poor (`miscalibrated`); None otherwise."""
    if not (miscalibrated(evidence, cfg) and pop.version):
        return None
    from trustramp.decide.recalibration import fit_recalibration
    from trustramp.store import aggregates as agg

    sample = agg.labeled_sample(aggs, win.gate_start, win.gate_end, pop.version)
    return fit_recalibration(
        sample["confidence"].to_numpy(float),
        sample["correct"].to_numpy(int),
        keys=sample["sample_key"].to_numpy(),
        seed=cfg.statistics.seed,
        n_bins=cfg.statistics.ece_bins,
    )


def grid_frame(cells: pd.DataFrame, step: float, by: Sequence[str] = ()) -> pd.DataFrame:
    """The thresholds' grid frame (lo, n labeled, correct, total) from stage-1 cells."""
    keys = [*by, "grid_bin"]
    g = cells.groupby(keys, observed=True)[["labeled", "correct", "n"]].sum().reset_index()
    g = g.rename(columns={"n": "total"}).rename(columns={"labeled": "n"})
    g["lo"] = g["grid_bin"] * step
    return g.drop(columns=["grid_bin"])


@dataclass(frozen=True)
class Thresholds:
    """Recommended routing thresholds, per segment, the what-if of the current policy."""

    recommended: object
    """ThresholdRecommendation after the playbook's progression stage."""
    certified: object
    """The certified (optimized) thresholds before staging."""
    segments: object
    """GroupRecommendation by segment."""
    stage: str
    whatif: object
    """Replay of the recommended policy against the current one on the monitoring window."""
    recalibration: object | None = None
    customers: object | None = None
    """GroupRecommendation by customer (only customers with enough labels)."""

    def mapped_thresholds(self) -> dict[str, float | None]:
        """The recommended thresholds shown on the recalibrated scale (certified on raw)."""
        from trustramp.decide.recalibration import map_threshold

        raw = {b.band: b.threshold for b in self.recommended.bands if b.band != "human"}
        if self.recalibration is None:
            return raw
        return {
            k: (None if v is None else round(v, 4))
            for k, v in map_threshold(self.recalibration, raw).items()
        }

    def to_patch(self) -> dict:
        from trustramp.decide.thresholds import to_config_patch

        groups = [g for g in (self.segments, self.customers) if g is not None]
        return to_config_patch(self.recommended, groups=groups)

    def to_yaml(self) -> str:
        import yaml

        rec = self.recommended
        lines = [
            "# trustramp threshold recommendation: a patch to the rollout config (merge it in).",
            f"# stage: {self.stage} (the playbook's progression, from phase_started)",
            f"# population: {rec.population}",
        ]
        for b in rec.bands:
            if b.band == "human":
                continue
            acc = "n/a" if b.n == 0 else f"{b.accuracy:.3f} [{b.ci_low:.3f}, {b.ci_high:.3f}]"
            share = "   n/a" if b.share is None or math.isnan(b.share) else f"{b.share:6.1%}"
            lines.append(f"# {b.band:8s} {b.change:16s} share {share}  accuracy {acc}  n={b.n}")
            if b.guarantee:
                lines.append(f"#   {b.guarantee}")
            elif b.reason:
                lines.append(f"#   {b.reason}")
        if rec.human_workload_per_day is not None:
            cur = rec.current_human_workload_per_day
            lines.append(
                f"# human workload per day: {rec.human_workload_per_day:,.0f}"
                + (f" (current policy: {cur:,.0f})" if cur is not None else "")
            )
        if self.recalibration is not None:
            r = self.recalibration
            lines.append(
                f"# calibration is poor: recalibration map {r.chosen.name} fitted on "
                f"{r.n_fit:,} labels; held-out ECE {r.ece_before:.3f} -> "
                f"{r.ece_after:.3f} (n = {r.n_holdout:,})"
            )
            lines.append(f"# thresholds on the recalibrated scale: {self.mapped_thresholds()}")
        # libyaml's emitter when present: the same text as safe_dump, 5x faster (a patch with a
        # thousand customer overrides took 0.3 s in Python).
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return "\n".join(lines) + "\n" + yaml.dump(self.to_patch(), Dumper=dumper, sort_keys=False)


def _threshold_clusters(
    pop: GatePopulation,
    customer_grid: pd.DataFrame | None,
    step: float,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The certified items by customer for the thresholds (customers as clusters, as the gates).

    The customer grid as a threshold grid frame (items without a customer id kept, as items of
    their own), and the same with each customer's segment when every labeled customer of the
    gate population lies in one segment (None otherwise: segments are then certified without
    the adjustment, since the customer grid has no segment to split a customer by).
    """
    if customer_grid is None or not len(customer_grid):
        return None, None
    keys = ["customer_id", "grid_bin"]
    g = customer_grid.groupby(keys, dropna=False)[["labeled", "correct", "n"]].sum().reset_index()
    clusters = g.rename(columns={"labeled": "n", "n": "total"}).assign(lo=g["grid_bin"] * step)
    clusters = clusters.drop(columns="grid_bin")
    cust = pop.customers[pop.customers["labeled"] > 0]
    segments = cust.dropna(subset=["customer_id"]).groupby("customer_id")["segment"]
    if not len(cust) or (segments.nunique() > 1).any():
        return clusters, None
    # Items without a customer id have no segment here: left out of the segments' design
    # effects (they would only lower them, as independent items).
    by_customer = clusters.assign(segment=clusters["customer_id"].map(segments.first()))
    return clusters, by_customer


def recommend(
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    config: RolloutConfig,
    *,
    customer_grid: pd.DataFrame | None = None,
) -> Thresholds:
    from trustramp.decide import thresholds as th

    step = config.routing.grid_step
    current = config.routing.thresholds()  # a closed band (false): None, not offered
    days = max((win.gate_end - win.gate_start).days + 1, 1)
    model = f"model {pop.version}" if pop.version else "no model version"
    population = f"unshown labeled items of {model}, {win.gate_start}..{win.gate_end}"
    grid = grid_frame(pop.cells, step)
    level = config.statistics.confidence_level
    clusters, segment_clusters = _threshold_clusters(pop, customer_grid, step)
    certified = th.recommend_thresholds(
        grid,
        config.routing,
        min_labels=config.statistics.min_samples,
        current=current,
        days=days,
        confidence_level=level,
        population=population,
        clusters=clusters,
    )
    stage: object
    if config.phase_started is None:
        stage = "not applied (phase_started is not set)"  # certified thresholds, unstaged
    elif win.as_of < config.phase_started:
        stage = th.Stage.CONSERVATIVE  # the phase has not begun: nothing automated yet
    else:
        stage = th.progression_stage(config.phase_started, win.as_of)

    unstaged = isinstance(stage, str) and stage.startswith("not")
    staged = certified if unstaged else th.apply_progression(certified, stage)
    # the groups come staged (each planned once for its stage, not planned and re-planned)
    segments = th.recommend_by_group(
        grid_frame(pop.cells, step, ["segment"]),
        config.routing,
        by="segment",
        min_labels=config.statistics.min_samples,
        confidence_level=level,
        population=population,
        clusters=segment_clusters,
        stage=None if unstaged else stage,  # type: ignore[arg-type]
    )
    customers = None
    if customer_grid is not None and len(customer_grid):
        cgrid = grid_frame(customer_grid, step, ["customer_id"])
        customers = th.recommend_by_group(
            cgrid,
            config.routing,
            by="customer_id",
            min_labels=config.statistics.min_samples,
            confidence_level=level,
            population=population,
            stage=None if unstaged else stage,  # type: ignore[arg-type]
        )
    traffic = _between(aggs.cells, win.monitor_start, win.as_of)
    traffic = traffic[traffic["model_version"] == pop.version]  # one version: items not doubled
    by_day = grid_frame(traffic, step, ["day"])
    policy = {b.band: b.threshold for b in staged.bands if b.band != "human"}
    whatif = th.replay_policy(by_day, policy, current=current, step=step, confidence_level=level)
    return Thresholds(
        recommended=staged,
        certified=certified,
        segments=segments,
        stage=str(stage),
        whatif=whatif,
        customers=customers,
    )
