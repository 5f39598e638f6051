"""The certified population's own rows of the metrics table, and the slice audits.

Metrics of the certified population (one version, unshown, matured window) that the day-level
table does not hold: accuracy with a cluster bootstrap over customers, the ECE's noise floor,
p-value and its debiased, smooth, equal-mass and class-wise variants, fairlearn's rates and gaps
over segments, and the automation-bias gap (shown vs unshown agreement); plus the bias audit over
each configured extra slice column (verdict.json's `slice_audit`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trustramp import metrics as m
from trustramp.config import RolloutConfig
from trustramp.evaluate.evidence import calibration_evidence
from trustramp.evaluate.table import METRIC_COLUMNS
from trustramp.evaluate.windows import UNSHOWN, GatePopulation, Windows, _between
from trustramp.store.aggregates import Aggregates


def gate_rows(
    aggs: Aggregates, win: Windows, pop: GatePopulation, config: RolloutConfig
) -> pd.DataFrame | None:
    """`gate_metric_rows` with the gate window's equal-mass and class-wise bins (None without a
    version to certify)."""
    from trustramp.store import aggregates as agg

    if not pop.version:
        return None
    return gate_metric_rows(
        aggs,
        win,
        pop,
        config,
        equal_mass=agg.equal_mass_bins(
            aggs, win.gate_start, win.gate_end, pop.version, config.statistics.ece_bins
        ),
        classwise=agg.classwise_bins(aggs, win.gate_start, win.gate_end, pop.version),
    )


def gate_metric_rows(
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    config: RolloutConfig,
    *,
    equal_mass: pd.DataFrame | None = None,
    classwise: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Metrics of the certified population (one version, unshown, matured window) and of the
    automation-bias gap, with cluster-bootstrap intervals where items cluster by customer."""
    st = config.statistics
    base = {
        "feature": aggs.feature,
        "model_version": pop.version,
        "mode": UNSHOWN,
        "window": "window",
        "segment": None,
        "customer_id": None,
        "day": None,
    }
    rows: list[dict] = []
    # Accuracy with a cluster bootstrap over customers (items cluster by customer).
    cust = pop.customers
    for seg in [None, *config.segments]:
        c = cust if seg is None else cust[cust["segment"] == seg]
        g = c.groupby("customer_id")[["correct", "labeled"]].sum()
        g = g[g["labeled"] > 0]
        if len(g) >= 2:
            est, lo, hi = m.cluster_bootstrap_interval(
                g["correct"].to_numpy(),
                g["labeled"].to_numpy(),
                confidence=st.confidence_level,
                reps=st.bootstrap_reps,
                seed=st.seed,
            )
            rows.append(
                {
                    **base,
                    "segment": seg,
                    "metric": "accuracy_clustered",
                    "value": est,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": int(g["labeled"].sum()),
                }
            )
    # The ECE's noise floor and consistency-test p-value at this n (value, n; no interval).
    cal, test = calibration_evidence(pop, config)
    if cal.n >= m.MIN_SHOWN_N:
        rows += [
            {
                **base,
                "metric": "ece_noise_floor",
                "value": test.noise_floor,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": cal.n,
            },
            {
                **base,
                "metric": "ece_p_value",
                "value": test.p_value,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": cal.n,
            },
        ]
        rows += [
            {
                **base,
                "metric": name,
                "value": value,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": cal.n,
            }
            for name, value in (
                ("ece_debiased_l2", cal.ece_debiased_l2),
                ("smece", cal.smece),
                ("smece_sigma", cal.smece_sigma),
            )
        ]
    if equal_mass is not None and equal_mass["n"].sum() >= m.MIN_SHOWN_N:
        rows.append(
            {
                **base,
                "metric": "ece_equal_mass",
                "value": float(
                    m.ece_from_bins(
                        equal_mass["n"].to_numpy(),
                        equal_mass["correct"].to_numpy(),
                        equal_mass["conf_sum"].to_numpy(),
                    )
                ),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": int(equal_mass["n"].sum()),
            }
        )
    if classwise is not None and len(classwise):
        wide = {
            col: classwise.pivot_table(
                index="class", columns="bin", values=col, aggfunc="sum", fill_value=0
            )
            for col in ("n", "hits", "prob_sum")
        }
        n_items = int(wide["n"].sum(axis=1).iloc[0])
        if n_items >= m.MIN_SHOWN_N:
            rows.append(
                {
                    **base,
                    "metric": "ece_classwise",
                    "value": float(
                        m.classwise_ece_from_bins(
                            wide["n"].to_numpy(),
                            wide["hits"].to_numpy(),
                            wide["prob_sum"].to_numpy(),
                        )
                    ),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": n_items,
                }
            )
    rows += _fairness_rows(aggs, win, pop, config, base)
    # Automation bias: agreement on shown vs unshown items (monitoring window, all versions).
    mon = _between(aggs.cells, win.monitor_start, win.as_of)
    shown, unshown = mon[mon["mode"] != UNSHOWN], mon[mon["mode"] == UNSHOWN]
    ks, ns = int(shown["correct"].sum()), int(shown["labeled"].sum())
    ku, nu = int(unshown["correct"].sum()), int(unshown["labeled"].sum())
    if ns and nu:
        gap = m.agreement_gap(ks, ns, ku, nu, confidence=st.confidence_level)
        rows.append(
            {
                **base,
                "model_version": None,
                "mode": None,
                "metric": "automation_bias_gap",
                "value": gap.difference,
                "ci_low": gap.ci_low,
                "ci_high": gap.ci_high,
                "n": ns + nu,
            }
        )
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    frame["n"] = frame["n"].astype("int64")
    return frame


FAIRNESS_RATES = (
    ("selection_rate", "selection_rate"),
    ("tpr", "true_positive_rate"),
    ("fpr", "false_positive_rate"),
)
FAIRNESS_GAPS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)


def _fairness_rows(
    aggs: Aggregates, win: Windows, pop: GatePopulation, config: RolloutConfig, base: dict
) -> list[dict]:
    """fairlearn's rates per segment and their gaps over segments, for the certified population
    (unshown, one version, matured window), from its confusion counts. With
    ``statistics.positive_label`` the metrics are named plainly; otherwise each label is the
    positive class in turn and the names carry it: ``selection_rate[approve]``."""
    conf = _between(aggs.confusion, win.gate_start, win.gate_end)
    conf = conf[(conf["model_version"] == pop.version) & ~conf["shown"].astype(bool)]
    if conf.empty:
        return []
    positive = config.statistics.positive_label
    fair = m.fairness_rates(conf, positive_label=positive)

    def name(metric: str, label: object) -> str:
        return metric if positive is not None else f"{metric}[{label}]"

    rows = []
    for r in fair.by_group.itertuples():
        for column, metric in FAIRNESS_RATES:
            n = {"selection_rate": r.n, "tpr": r.positives, "fpr": r.n - r.positives}[column]
            rows.append(
                {
                    **base,
                    "segment": r.segment,
                    "metric": name(metric, r.label),
                    "value": getattr(r, column),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": int(n),
                }
            )
    total = int(conf["n"].sum())
    for r in fair.summary.itertuples():
        for metric in FAIRNESS_GAPS:
            rows.append(
                {
                    **base,
                    "metric": name(metric, r.label),
                    "value": getattr(r, metric),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": total,
                }
            )
    return rows


def slice_audits(slices: dict[str, pd.DataFrame], config: RolloutConfig) -> list[dict]:
    """The bias audit over each configured extra slice column (accuracy, unshown, one version)."""
    out = []
    st = config.statistics
    for column, counts in slices.items():
        frame = counts.assign(segment=counts["value"].fillna("(missing)"))[["segment", "k", "n"]]
        if frame["n"].sum() == 0:
            continue
        audit = m.bias_audit(
            frame,
            min_n=st.min_segment_n,
            confidence=st.confidence_level,
            min_effect=st.min_effect,
        )
        for r in audit.table.itertuples():
            out.append(
                {
                    "column": column,
                    "value": r.segment,
                    "n": int(r.n),
                    "accuracy": float(r.value),
                    "ci_low": float(r.ci_low),
                    "ci_high": float(r.ci_high),
                    "flag": r.flag,
                    "reason": r.reason,
                }
            )
    return out
