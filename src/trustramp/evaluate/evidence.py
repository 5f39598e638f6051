"""The verdict's evidence, from the day statistics (counts, never raw rows).

Counts per gate criterion with their customers' design effect (items cluster by customer), the
calibration test of the certified population, the last 24 hours overall and per version (with
order-statistic bounds on the p95 latency), confidence drift, the bias audit over segments, the
paired comparison with the previous version, edge cases, feedback, incidents and data coverage.
`trustramp.decide` turns the `Evidence` into the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trustramp import _dist
from trustramp import metrics as m
from trustramp.config import RolloutConfig
from trustramp.decide.evidence import (
    Calibration,
    Count,
    DataSummary,
    Drift,
    Evidence,
    Incident,
    Observed,
    Regression,
    SegmentFlag,
)
from trustramp.evaluate.table import _latency_quantiles, _psi_by_version
from trustramp.evaluate.windows import UNSHOWN, GatePopulation, Windows, _between
from trustramp.store.aggregates import Aggregates

if TYPE_CHECKING:
    from trustramp.evaluate.stage1 import RunRecords


def gate_evidence(
    aggs: Aggregates,
    win: Windows,
    config: RolloutConfig,
    pop: GatePopulation,
    records: RunRecords,
) -> Evidence:
    """The evidence of one run: `build_evidence` with the paired outcomes of the two versions
    and the configured edge cases (slices of the certified population)."""
    from trustramp.store import aggregates as agg

    paired = (
        agg.paired_table(aggs, win.gate_start, win.gate_end, pop.version, pop.previous)
        if pop.version and pop.previous
        else None
    )
    edge_cases = {}
    if pop.version:
        for e in config.statistics.edge_case_slices:
            slices = records.slices
            hit = slices[e.column][slices[e.column]["value"] == e.value]
            edge_cases[e.name] = Count(int(hit["k"].sum()), int(hit["n"].sum()))
    return build_evidence(
        aggs,
        win,
        config,
        pop=pop,
        paired=paired,
        feedback=records.feedback,
        incidents=records.incidents,
        quarantined=sum(records.quarantine.values()),
        edge_cases=edge_cases,
    )


def miscalibrated(evidence: Evidence, cfg: RolloutConfig) -> bool:
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


def _counts(frame: pd.DataFrame, k: str, n: str, segments: Sequence[str]) -> dict[str, Count]:
    out = {"all": Count(int(frame[k].sum()), int(frame[n].sum()))}
    by = frame.groupby("segment")[[k, n]].sum()
    for seg in segments:
        if seg in by.index:
            out[seg] = Count(int(by.loc[seg, k]), int(by.loc[seg, n]))
        else:
            out[seg] = Count(0, 0)
    return out


def _clustered(
    counts: dict[str, Count], customers: pd.DataFrame, k: str, n: str, confidence: float
) -> dict[str, Count]:
    """`counts` with their customers' design effect: the gates take their bounds on the counts
    deflated by it (items cluster by customer; docs/STATISTICS.md). `customers` holds the same
    items by customer_id (and segment); items without a customer id count as independent."""
    from trustramp.metrics.intervals import design_effect

    loose = customers["customer_id"].isna()
    # one grouping by (segment, customer); "all" sums a customer's segments
    by = customers[~loose].groupby(["segment", "customer_id"], sort=True)[[k, n]].sum()
    by = by[by[n] > 0]
    unclustered = customers[loose].groupby("segment", sort=True)[[k, n]].sum()
    segments = by.index.get_level_values("segment")
    out: dict[str, Count] = {}
    for seg, count in counts.items():
        if seg == "all":
            g = by.groupby(level="customer_id", sort=True).sum()
            lk, ln = unclustered[k].sum(), unclustered[n].sum()
        else:
            g = by[segments == seg]
            lk, ln = unclustered.loc[seg] if seg in unclustered.index else (0, 0)
        deff = design_effect(
            g[k].to_numpy(dtype=float),
            g[n].to_numpy(dtype=float),
            confidence=confidence,
            unclustered=(float(lk), float(ln)),
        )
        out[seg] = Count(count.k, count.n, design_effect=deff, clusters=len(g))
    return out


def calibration_evidence(pop: GatePopulation, config: RolloutConfig) -> tuple[Calibration, object]:
    """The certified population's calibration (ECE, its consistency test with a seeded
    bootstrap, debiased and smooth ECE) and the test; computed once per population and
    settings (the verdict's evidence and the gate metrics both read it)."""
    st = config.statistics
    key = ("calibration_evidence", st.ece_bins, st.bootstrap_reps, st.seed)
    if key not in pop.memo:
        pop.memo[key] = _calibration_evidence(pop, config)
    return pop.memo[key]  # type: ignore[return-value]


def _calibration_evidence(pop: GatePopulation, config: RolloutConfig) -> tuple[Calibration, object]:
    bins = pop.ece_bins(config.statistics.ece_bins)
    test = m.calibration_test(
        bins["labeled"].to_numpy(),
        bins["correct"].to_numpy(),
        bins["conf_sum"].to_numpy(),
        reps=config.statistics.bootstrap_reps,
        seed=config.statistics.seed,
    )
    n = int(bins["labeled"].sum())
    debiased = smece = sigma = None
    if n >= m.MIN_SHOWN_N:
        debiased = float(
            m.debiased_l2_ece_from_bins(
                bins["labeled"].to_numpy(), bins["correct"].to_numpy(), bins["conf_sum"].to_numpy()
            )
        )
        # smECE from the threshold grid's cells (0.01 wide), each at its mean confidence.
        grid = pop.cells.groupby("grid_bin")[["labeled", "correct", "conf_sum"]].sum()
        smece, sigma = m.smooth_ece_from_cells(
            grid["labeled"].to_numpy(), grid["correct"].to_numpy(), grid["conf_sum"].to_numpy()
        )
    return Calibration(
        ece=test.ece if n else None,
        p_value=test.p_value if n else None,
        noise_floor=test.noise_floor if n else None,
        n=n,
        ece_debiased_l2=debiased,
        smece=smece,
        smece_sigma=sigma,
    ), test


def build_evidence(
    aggs: Aggregates,
    win: Windows,
    config: RolloutConfig,
    *,
    pop: GatePopulation,
    paired: dict[tuple[bool, bool], int] | None,
    feedback: dict[str, float | int | None],
    incidents: pd.DataFrame,
    quarantined: int,
    edge_cases: dict[str, Count] | None = None,
) -> Evidence:
    """Everything the verdict needs, from the aggregates (counts, never raw rows)."""
    segs = list(config.segments)
    monitor = _between(aggs.cells, win.monitor_start, win.as_of)
    day = _between(aggs.cells, win.as_of, win.as_of)
    calibration, _ = calibration_evidence(pop, config)
    st = config.statistics
    rolling: dict[tuple[str, str], Count | Observed] = {}
    unshown_day = day[day["mode"] == UNSHOWN]
    lat_day = _between(aggs.latency, win.as_of, win.as_of)
    for seg in ["all", *segs]:
        d = day if seg == "all" else day[day["segment"] == seg]
        u = unshown_day if seg == "all" else unshown_day[unshown_day["segment"] == seg]
        # Unshown items only: shown ones lean towards the suggestion (SPEC 3.5).
        rolling[("accuracy", seg)] = Count(int(u["correct"].sum()), int(u["labeled"].sum()))
        rolling[("error_rate", seg)] = Count(int(d["errors"].sum()), int(d["n"].sum()))
        if seg == "all":  # availability is the service's, not a segment's
            rolling[("availability", seg)] = Count(
                int(d["n"].sum() - d["errors"].sum()), int(d["n"].sum())
            )
        rolling[("override_rate", seg)] = Count(
            int(d["overridden"].sum()), int(d["shown_labeled"].sum())
        )
        lat = lat_day if seg == "all" else lat_day[lat_day["segment"] == seg]
        if len(lat):
            (p95,), n_lat = _latency_quantiles(lat, (0.95,))
            rolling[("latency_p95", seg)] = Observed(p95, n_lat)
        else:
            rolling[("latency_p95", seg)] = Observed(None, 0)
    bias_frame = (
        pop.cells.groupby("segment")[["correct", "labeled"]].sum().reindex(segs, fill_value=0)
    )
    audit = m.bias_audit(
        pd.DataFrame(
            {
                "segment": segs,
                "k": bias_frame["correct"].to_numpy(),
                "n": bias_frame["labeled"].to_numpy(),
            }
        ),
        min_n=st.min_segment_n,
        confidence=st.confidence_level,
        min_effect=st.min_effect,
    )
    bias = {
        r.segment: SegmentFlag(
            r.segment,
            r.flag,
            r.reason,
            int(r.n),
            p_holm=float(r.p_adjusted) if math.isfinite(r.p_adjusted) else None,
            q_bh=float(r.p_bh) if math.isfinite(r.p_bh) else None,
        )
        for r in audit.table.itertuples()
    }
    regression = None
    if paired and pop.previous:
        both, cand_only = paired.get((True, True), 0), paired.get((True, False), 0)
        prev_only, neither = paired.get((False, True), 0), paired.get((False, False), 0)
        if both + cand_only + prev_only + neither:
            cmp = m.compare_versions(both, cand_only, prev_only, neither)
            regression = Regression(
                candidate=pop.version or "",
                previous=pop.previous,
                n=both + cand_only + prev_only + neither,
                acc_candidate=cmp.candidate_accuracy,
                acc_previous=cmp.previous_accuracy,
                p_value=cmp.p_value,
                regression=cmp.verdict == "regression",
            )
    baseline = st.baseline.accuracy
    if st.baseline.model_version:
        b = _between(aggs.cells, win.gate_start, win.gate_end)
        b = b[(b["model_version"] == st.baseline.model_version) & (b["mode"] == UNSHOWN)]
        baseline = float(b["correct"].sum() / b["labeled"].sum()) if b["labeled"].sum() else None
    incs = [
        Incident(
            incident_id=r.incident_id,
            severity=r.severity,
            kind=r.kind,
            title=r.title,
            opened_at=r.opened_at.to_pydatetime(),
            resolved_at=None if pd.isna(r.resolved_at) else r.resolved_at.to_pydatetime(),
        )
        for r in incidents.itertuples()
    ]
    n_all = int(monitor["n"].sum())
    labeled = int(monitor["labeled"].sum())
    # Customers as clusters: the gate population's and the monitoring window's items by customer.
    cust_gate = pop.customers
    cust_monitor = _between(aggs.customers, win.monitor_start, win.as_of)
    level = st.confidence_level
    return Evidence(
        feature=config.feature,
        as_of=win.as_of,
        window_start=win.gate_start,
        window_end=win.gate_end,
        model_version=pop.version,
        accuracy=_clustered(
            _counts(pop.cells, "correct", "labeled", segs), cust_gate, "correct", "labeled", level
        ),
        error=_clustered(_counts(monitor, "errors", "n", segs), cust_monitor, "errors", "n", level),
        override=_clustered(
            _counts(monitor, "overridden", "shown_labeled", segs),
            cust_monitor,
            "overridden",
            "shown_labeled",
            level,
        ),
        rolling_24h=rolling,
        positive_feedback=(
            Count(int(feedback["positive"]), int(feedback["total"])) if feedback["total"] else None
        ),
        nps=feedback["nps"],
        incidents=incs,
        calibration=calibration,
        regression=regression,
        bias=bias,
        edge_cases=edge_cases or {},
        baseline_accuracy=baseline,
        rolling_24h_by_version=rolling_by_version(aggs, win, config, [pop.version, pop.previous]),
        drift=confidence_drift(aggs, win, st.psi_min_n),
        data=DataSummary(
            predictions=n_all,
            labeled=labeled,
            quarantined=quarantined,
            label_coverage=labeled / n_all if n_all else None,
        ),
    )


def confidence_drift(aggs: Aggregates, win: Windows, min_n: int) -> list[Drift]:
    """The verdict's drift evidence: one `Drift` per version `_psi_by_version` judges."""
    return [
        Drift(
            model_version=v,
            psi=float(r.value),  # type: ignore[attr-defined]
            warning=float(r.warning),  # type: ignore[attr-defined]
            critical=float(r.critical),  # type: ignore[attr-defined]
            status=str(r.status.value),  # type: ignore[attr-defined]
            n_baseline=int(r.n_expected),  # type: ignore[attr-defined]
            n_current=int(r.n_actual),  # type: ignore[attr-defined]
        )
        for v, r in _psi_by_version(aggs, win, min_n)
    ]


def _quantile_bounds(counts: np.ndarray, q: float, alpha: float) -> tuple[float, float]:
    """Distribution-free one-sided bounds on the q-quantile of a latency histogram: the order
    statistics X_(r) <= xi_q <= X_(s) with P(Binom(N, q) < r) <= alpha and P(Binom(N, q) >= s)
    <= alpha, read off the histogram at levels r/N and s/N."""
    total = int(counts.sum())
    if total == 0:
        return math.nan, math.nan
    j = np.arange(total + 1)
    cdf = np.asarray(_dist.binom_cdf(j, total, q), dtype=float)
    r = int(np.searchsorted(cdf, alpha, side="right"))  # P(B <= r - 1) <= alpha
    s = int(np.searchsorted(cdf, 1.0 - alpha, side="left")) + 1  # P(B >= s) <= alpha
    levels = [max(r, 1) / total, min(s, total) / total]
    lo, hi = np.atleast_1d(m.quantile_from_histogram(counts, levels))
    return float(lo), float(hi)


def rolling_by_version(
    aggs: Aggregates, win: Windows, config: RolloutConfig, versions: Sequence[str | None]
) -> dict[str, dict[tuple[str, str], Count | Observed]]:
    """The last 24 h per model version (alerts): accuracy on its unshown items, its error and
    override rates, and its p95 latency with order-statistic bounds; versions without traffic
    that day are left out."""
    day = _between(aggs.cells, win.as_of, win.as_of)
    lat_day = _between(aggs.latency, win.as_of, win.as_of)
    alpha = 1.0 - config.statistics.confidence_level
    out: dict[str, dict[tuple[str, str], Count | Observed]] = {}
    for version in dict.fromkeys(v for v in versions if v is not None):
        d_v = day[day["model_version"] == version]
        if d_v["n"].sum() == 0:
            continue
        lat_v = lat_day[lat_day["model_version"] == version]
        rolling: dict[tuple[str, str], Count | Observed] = {}
        for seg in ["all", *config.segments]:
            d = d_v if seg == "all" else d_v[d_v["segment"] == seg]
            u = d[d["mode"] == UNSHOWN]
            rolling[("accuracy", seg)] = Count(int(u["correct"].sum()), int(u["labeled"].sum()))
            rolling[("error_rate", seg)] = Count(int(d["errors"].sum()), int(d["n"].sum()))
            rolling[("override_rate", seg)] = Count(
                int(d["overridden"].sum()), int(d["shown_labeled"].sum())
            )
            lat = lat_v if seg == "all" else lat_v[lat_v["segment"] == seg]
            counts = np.bincount(
                lat["lat_bin"].to_numpy(np.int64),
                weights=lat["n"].to_numpy(float),
                minlength=m.N_LATENCY_BINS,
            )
            if counts.sum() > 0:
                p95 = float(m.quantile_from_histogram(counts, 0.95))
                lo, hi = _quantile_bounds(counts, 0.95, alpha)
                rolling[("latency_p95", seg)] = Observed(p95, int(counts.sum()), lo, hi)
            else:
                rolling[("latency_p95", seg)] = Observed(None, 0)
        out[str(version)] = rolling
    return out
