"""Bias audit across segments (SPEC 3.1, 3.5): disparities, homogeneity tests, Holm, flags.

For one rate metric (accuracy, error rate, override rate, ...) given per segment as ``k`` of
``n``, the audit reports each segment's rate with its Wilson interval, its difference to the
overall rate and to the best segment (Newcombe intervals), ratios, a test of the segment
against the rest (chi-square, or Fisher's exact when an expected count is below 5) with Holm's
correction across segments (Benjamini–Hochberg q-values beside it, for display), and a flag.
A segment is flagged *worse* only when its Holm-adjusted p-value is below alpha *and* its gap
to the rest is at least ``min_effect`` (absolute): on 100k items a 0.7-point gap is significant
but not a finding. With two segments, "A against the rest" and "B against the rest" are the
same comparison, so the family has one member and nothing is adjusted. A segment below the
minimum size is *insufficient*, never *ok*: absence of evidence is not a pass.

`fairness_rates` gives fairlearn's group-fairness rates (selection rate, true and false positive
rate) and the demographic-parity and equalized-odds differences and ratios from per-segment
confusion counts (predicted label x true label), never from raw rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from trustramp import _dist
from trustramp.metrics import _checks as chk
from trustramp.metrics._checks import FloatArray
from trustramp.metrics.intervals import Proportion, newcombe_interval, proportion, wilson_interval

__all__ = [
    "BiasAudit",
    "Disparity",
    "FairnessRates",
    "Flag",
    "SegmentTests",
    "benjamini_hochberg",
    "bias_audit",
    "disparity",
    "fairness_rates",
    "holm",
    "segment_tests",
]

MIN_EXPECTED = 5.0
"""The chi-square approximation is used only when every expected count is at least this."""


class Flag(StrEnum):
    """A segment's outcome in the bias audit."""

    OK = "ok"
    WORSE = "worse"
    """Significantly worse than the rest of the traffic after Holm's correction."""
    INSUFFICIENT = "insufficient"
    """Fewer items than the minimum: no judgement either way."""


# --------------------------------------------------------------------------------------------
# Disparity
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disparity:
    """A rate against a reference rate; fields are floats or arrays (one per group)."""

    value: Any
    """The group's rate ``k / n``."""
    reference: Any
    """The reference rate ``reference_k / reference_n``."""
    difference: Any
    """``value - reference``."""
    ci_low: Any
    """Lower Newcombe bound of the difference (independent samples)."""
    ci_high: Any
    """Upper Newcombe bound of the difference."""
    ratio: Any
    """``value / reference`` (NaN when the reference is 0)."""

    def to_frame(self) -> pd.DataFrame:
        """One row per group."""
        names = list(self.__dict__)
        columns = np.broadcast_arrays(*(np.atleast_1d(getattr(self, f)) for f in names))
        return pd.DataFrame(dict(zip(names, columns, strict=True)))

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()  # type: ignore[no-any-return]


def disparity(
    k: ArrayLike,
    n: ArrayLike,
    *,
    reference_k: ArrayLike,
    reference_n: ArrayLike,
    confidence: float = 0.95,
) -> Disparity:
    """Difference (with Newcombe's interval) and ratio of a rate against a reference rate.

    The interval assumes the two samples are independent (e.g. a segment against another
    segment or against the rest); `bias_audit` handles the overlap with the overall rate.

    Parameters
    ----------
    k, n : array-like
        The group's successes and trials.
    reference_k, reference_n : array-like
        The reference's successes and trials.
    confidence : float, default 0.95
        Level of the interval.

    Returns
    -------
    Disparity

    Examples
    --------
    >>> d = disparity(80, 100, reference_k=450, reference_n=500)
    >>> round(d.difference, 2), bool(d.ci_high < 0), round(d.ratio, 3)
    (-0.1, True, 0.889)
    """
    scalar = chk.is_scalar(k, n, reference_k, reference_n)
    ka, na = chk.counts(k, n)
    rk, rn = chk.counts(reference_k, reference_n, k_name="reference_k", n_name="reference_n")
    low, high = newcombe_interval(ka, na, rk, rn, confidence=confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        value, reference = ka / na, rk / rn
        ratio = np.where(reference > 0, value / reference, math.nan)
    return Disparity(
        value=chk.out(value, scalar),
        reference=chk.out(reference, scalar),
        difference=chk.out(value - reference, scalar),
        ci_low=chk.out(np.asarray(low), scalar),
        ci_high=chk.out(np.asarray(high), scalar),
        ratio=chk.out(ratio, scalar),
    )


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def holm(p_values: ArrayLike) -> FloatArray:
    """Holm–Bonferroni adjusted p-values (step-down; NaNs are ignored and stay NaN).

    Parameters
    ----------
    p_values : array-like of shape (m,)
        Raw p-values in [0, 1].

    Returns
    -------
    ndarray
        Adjusted p-values: ``max_{j <= i} min(1, (m - j + 1) p_(j))`` in sorted order.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    return _adjust_sorted(p_values, _holm_sorted)


def benjamini_hochberg(p_values: ArrayLike) -> FloatArray:
    """Benjamini–Hochberg adjusted p-values (q-values; step-up; NaNs ignored and kept NaN).

    Parameters
    ----------
    p_values : array-like of shape (m,)
        Raw p-values in [0, 1].

    Returns
    -------
    ndarray
        ``min_{j >= i} min(1, m p_(j) / j)`` in sorted order: the false-discovery-rate level at
        which each hypothesis would just be rejected.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.04, 0.04]
    """
    return _adjust_sorted(p_values, _bh_sorted)


def _holm_sorted(q: FloatArray) -> FloatArray:
    m = q.size
    return np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q))


def _bh_sorted(q: FloatArray) -> FloatArray:
    scaled = q * q.size / np.arange(1, q.size + 1)
    return np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])


def _adjust_sorted(p_values: ArrayLike, adjust: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """The p-values checked to be in [0, 1], adjusted by `adjust` (which takes the non-NaN ones
    in ascending order and returns theirs in the same order); NaNs stay NaN in their places."""
    p = chk.as_float(p_values, "p_values").ravel()
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError(f"p_values must be in [0, 1], got {p[finite & ((p < 0) | (p > 1))][:5]}")
    out = np.full_like(p, math.nan)
    q = p[finite]
    if q.size == 0:
        return out
    order = np.argsort(q, kind="stable")
    result = np.empty(q.size)
    result[order] = adjust(q[order])
    out[finite] = result
    return out


def _family(p_values: FloatArray, adjust: Any) -> FloatArray:
    """Adjust segment-vs-rest p-values; two segments are one comparison (nothing to adjust)."""
    finite = ~np.isnan(p_values)
    if np.count_nonzero(finite) == 2:
        return p_values.copy()
    return adjust(p_values)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SegmentTests:
    """Tests of a rate's homogeneity across segments."""

    method: str
    """``chi2`` (every expected count >= 5) or ``fisher`` (Fisher's exact per segment + Holm)."""
    statistic: float
    """Pearson chi-square statistic (NaN for the Fisher route)."""
    p_value: float
    """Omnibus p-value: the chi-square test's, or the smallest Holm-adjusted Fisher p-value."""
    segment_p_values: FloatArray
    """Per segment, the two-sided p-value of the segment against the rest (NaN if empty)."""
    segment_methods: tuple[str, ...]
    """Per segment, ``chi2`` or ``fisher`` (each 2x2 table by its own expected counts)."""

    def to_frame(self) -> pd.DataFrame:
        """One row per segment: its test and p-value."""
        return pd.DataFrame({"method": self.segment_methods, "p_value": self.segment_p_values})


def _expected(table: FloatArray) -> FloatArray:
    total = table.sum()
    return np.outer(table.sum(axis=1), table.sum(axis=0)) / total if total else table * 0


def _fisher_p(table: np.ndarray) -> float:
    # Only small tables get here; importing scipy.stats (~1 s) is left to them.
    from scipy import stats

    return float(stats.fisher_exact(table).pvalue)


def _two_by_two(table: FloatArray) -> tuple[float, str]:
    if (_expected(table) >= MIN_EXPECTED).all():
        return _dist.chi2_contingency(table)[1], "chi2"
    return _fisher_p(np.round(table).astype(np.int64)), "fisher"


def segment_tests(k: ArrayLike, n: ArrayLike) -> SegmentTests:
    """Is a rate the same in every segment? Chi-square when it can, else Fisher's exact.

    When every expected count of the segments x (success, failure) table is at least 5, the
    omnibus test is Pearson's chi-square test of homogeneity (no continuity correction).
    Otherwise each segment is tested against the rest with Fisher's exact test and the omnibus
    p-value is the smallest Holm-adjusted one (with two segments, the one Fisher p-value: both
    tables are the same comparison). Per-segment p-values (segment vs rest) are
    always reported; each 2x2 table uses chi-square or Fisher by its own expected counts.
    Empty segments are left out (NaN).

    Parameters
    ----------
    k, n : array-like of shape (S,)
        Successes and items per segment.

    Returns
    -------
    SegmentTests

    Examples
    --------
    >>> t = segment_tests([90, 160, 60], [100, 200, 100])
    >>> t.method, t.p_value < 0.001
    ('chi2', True)
    """
    ka, na = chk.counts(np.ravel(k), np.ravel(n))
    present = na > 0
    kk, nn = ka[present], na[present]
    seg_p = np.full(ka.size, math.nan)
    methods = ["none"] * ka.size
    if kk.size < 2:
        return SegmentTests("none", math.nan, math.nan, seg_p, tuple(methods))
    big_k, big_n = kk.sum(), nn.sum()
    for pos, i in enumerate(np.flatnonzero(present)):
        table = np.array(
            [[kk[pos], nn[pos] - kk[pos]], [big_k - kk[pos], big_n - nn[pos] - (big_k - kk[pos])]]
        )
        seg_p[i], methods[i] = _two_by_two(table)
    full = np.column_stack([kk, nn - kk])
    if (_expected(full) >= MIN_EXPECTED).all():
        statistic, p_value = _dist.chi2_contingency(full)
        return SegmentTests("chi2", statistic, p_value, seg_p, tuple(methods))
    fisher_p = np.array(
        [
            _fisher_p(
                np.round(
                    [[kk[i], nn[i] - kk[i]], [big_k - kk[i], big_n - nn[i] - (big_k - kk[i])]]
                ).astype(np.int64)
            )
            for i in range(kk.size)
        ]
    )
    omnibus = float(np.nanmin(_family(fisher_p, holm)))
    return SegmentTests("fisher", math.nan, omnibus, seg_p, tuple(methods))


# --------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BiasAudit:
    """One metric audited across segments; `table` has one row per segment."""

    table: pd.DataFrame
    """Columns: segment, k, n, value, ci_low, ci_high, diff_overall, diff_overall_low,
    diff_overall_high, diff_best, diff_best_low, diff_best_high, ratio_overall, ratio_best,
    p_value, p_adjusted, p_bh, test, flag, reason."""
    overall: Proportion
    """The overall rate (all segments pooled) with its Wilson interval."""
    best: Any
    """The best segment among those with enough items (None if there is none)."""
    tests: SegmentTests
    """The homogeneity tests behind the p-values."""
    higher_is_better: bool = True
    """Direction of the metric (accuracy: True; error or override rate: False)."""

    @property
    def flagged(self) -> list[Any]:
        """Segments flagged worse."""
        return self.table.loc[self.table["flag"] == Flag.WORSE.value, "segment"].tolist()

    def to_frame(self) -> pd.DataFrame:
        """The per-segment table."""
        return self.table.copy()

    def _repr_html_(self) -> str:
        return self.table._repr_html_()  # type: ignore[no-any-return]


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _reason(
    flag: Flag,
    n: float,
    min_n: int,
    value: float,
    rest: float,
    p_adj: float,
    alpha: float,
    worse: bool,
    min_effect: float = 0.0,
) -> str:
    if flag is Flag.INSUFFICIENT:
        return f"insufficient data: {int(n)} items, fewer than the minimum of {min_n}"
    if flag is Flag.WORSE:
        return (
            f"worse than the other segments: {_pct(value)} vs {_pct(rest)} "
            f"(Holm-adjusted p = {p_adj:.2g} < {alpha:g})"
        )
    if math.isfinite(p_adj) and p_adj < alpha and worse:
        return (
            f"worse than the other segments but by less than the minimum effect: "
            f"{_pct(value)} vs {_pct(rest)}, a gap under {_pct(min_effect)} "
            f"(Holm-adjusted p = {p_adj:.2g})"
        )
    if math.isfinite(p_adj) and p_adj < alpha and not worse:
        return (
            f"better than the other segments: {_pct(value)} vs {_pct(rest)} "
            f"(Holm-adjusted p = {p_adj:.2g})"
        )
    if not math.isfinite(p_adj):
        return "no other segment to compare with"
    return (
        f"no significant difference from the other segments: {_pct(value)} vs {_pct(rest)} "
        f"(Holm-adjusted p = {p_adj:.2g})"
    )


def _as_counts(x: FloatArray) -> Any:
    return x.astype(np.int64) if np.all(x == np.round(x)) else x


def _per_segment(frame: pd.DataFrame, segment: str, k: str, n: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in (segment, k, n) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame has no column(s) {missing}; columns are {list(frame.columns)}")
    if frame[segment].isna().any():
        raise ValueError(f"frame column {segment!r} has missing values")
    chk.counts(frame[k].to_numpy(dtype=float), frame[n].to_numpy(dtype=float), k_name=k, n_name=n)
    return frame.groupby(segment, sort=False, dropna=False)[[k, n]].sum().reset_index()


def bias_audit(
    frame: pd.DataFrame,
    *,
    min_n: int = 200,
    confidence: float = 0.95,
    alpha: float = 0.05,
    min_effect: float = 0.0,
    higher_is_better: bool = True,
    segment: str = "segment",
    k: str = "k",
    n: str = "n",
) -> BiasAudit:
    """Audit one rate metric across segments and flag the segments that are significantly worse.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns `segment`, `k`, `n` (rows of the same segment are summed, so a per-day frame
        works too).
    min_n : int, default 200
        Segments with fewer items are flagged ``insufficient`` and left out of the best-segment
        choice and of Holm's family.
    confidence : float, default 0.95
        Level of every interval.
    alpha : float, default 0.05
        Family-wise level of the flags (Holm-adjusted p-values are compared with it).
    min_effect : float, default 0.0
        Smallest absolute gap between the segment's rate and the rest's for a ``worse`` flag
        (the config's ``statistics.min_effect``, 0.02 by default there).
    higher_is_better : bool, default True
        True for accuracy-like metrics, False for error or override rates.
    segment, k, n : str
        Column names.

    Returns
    -------
    BiasAudit
        Per segment: ``value`` with Wilson ``ci_low``/``ci_high``; ``diff_overall`` (to the
        pooled rate; since the segment is part of it, ``p_s - p_all = (1 - w)(p_s - p_rest)``
        with ``w = n_s / N`` and the interval is the Newcombe interval against the rest scaled
        by ``1 - w``); ``diff_best`` (Newcombe against the best sufficient segment; NaN
        interval for the best itself); ``ratio_overall``, ``ratio_best``; ``p_value`` (segment
        vs rest), ``p_adjusted`` (Holm over the sufficient segments; two segments are one
        comparison, left unadjusted) and ``p_bh`` (Benjamini–Hochberg over the same family);
        ``flag`` in ok, worse, insufficient, with a plain-words ``reason``.

    Examples
    --------
    >>> f = pd.DataFrame({"segment": ["smb", "enterprise", "internal"],
    ...                   "k": [900, 760, 40], "n": [1000, 1000, 50]})
    >>> audit = bias_audit(f, min_n=100)
    >>> audit.table["flag"].tolist()
    ['ok', 'worse', 'insufficient']
    >>> audit.best
    'smb'
    """
    min_n = chk.positive_int(min_n, "min_n")
    chk.level(confidence)
    chk.level(alpha, "alpha")
    if not 0.0 <= min_effect < 1.0:
        raise ValueError(f"min_effect must be in [0, 1), got {min_effect!r}")
    seg = _per_segment(frame, segment, k, n)
    ks, ns = seg[k].to_numpy(dtype=float), seg[n].to_numpy(dtype=float)
    big_k, big_n = ks.sum(), ns.sum()
    overall = proportion(float(big_k), float(big_n), confidence=confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = ks / ns
        rest = (big_k - ks) / (big_n - ns)
    low, high = wilson_interval(ks, ns, confidence=confidence)
    sufficient = ns >= min_n

    # Difference to overall: exact rescaling of the segment-vs-rest difference.
    share = ns / big_n if big_n > 0 else np.full_like(ns, math.nan)
    vr_low, vr_high = newcombe_interval(ks, ns, big_k - ks, big_n - ns, confidence=confidence)
    alone = share == 1.0
    d_over_low = np.where(alone, 0.0, (1.0 - share) * vr_low)
    d_over_high = np.where(alone, 0.0, (1.0 - share) * vr_high)

    best_label: Any = None
    d_best = d_best_low = d_best_high = ratio_best = np.full(ns.size, math.nan)
    if sufficient.any():
        candidates = np.where(sufficient, value, -np.inf if higher_is_better else np.inf)
        b = int(np.argmax(candidates) if higher_is_better else np.argmin(candidates))
        best_label = seg[segment].iloc[b]
        d_best = value - value[b]
        d_best_low, d_best_high = newcombe_interval(ks, ns, ks[b], ns[b], confidence=confidence)
        d_best_low = np.where(np.arange(ns.size) == b, math.nan, d_best_low)
        d_best_high = np.where(np.arange(ns.size) == b, math.nan, d_best_high)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_best = np.where(value[b] > 0, value / value[b], math.nan)

    tests = segment_tests(ks, ns)
    p_adj = np.full(ns.size, math.nan)
    p_bh = np.full(ns.size, math.nan)
    p_adj[sufficient] = _family(tests.segment_p_values[sufficient], holm)
    p_bh[sufficient] = _family(tests.segment_p_values[sufficient], benjamini_hochberg)
    worse_dir = value < rest if higher_is_better else value > rest
    with np.errstate(invalid="ignore"):
        big_enough = np.abs(value - rest) >= min_effect - 1e-12
    flags: list[Flag] = []
    reasons: list[str] = []
    for i in range(ns.size):
        if not sufficient[i]:
            flag = Flag.INSUFFICIENT
        elif math.isfinite(p_adj[i]) and p_adj[i] < alpha and worse_dir[i] and big_enough[i]:
            flag = Flag.WORSE
        else:
            flag = Flag.OK
        flags.append(flag)
        reasons.append(
            _reason(
                flag,
                ns[i],
                min_n,
                value[i],
                rest[i],
                p_adj[i],
                alpha,
                bool(worse_dir[i]),
                min_effect,
            )
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_overall = np.where(overall.value > 0, value / overall.value, math.nan)
    table = pd.DataFrame(
        {
            "segment": seg[segment].to_numpy(),
            "k": _as_counts(ks),
            "n": _as_counts(ns),
            "value": value,
            "ci_low": low,
            "ci_high": high,
            "diff_overall": value - overall.value,
            "diff_overall_low": d_over_low,
            "diff_overall_high": d_over_high,
            "diff_best": d_best,
            "diff_best_low": d_best_low,
            "diff_best_high": d_best_high,
            "ratio_overall": ratio_overall,
            "ratio_best": ratio_best,
            "p_value": tests.segment_p_values,
            "p_adjusted": p_adj,
            "p_bh": p_bh,
            "test": list(tests.segment_methods),
            "flag": [f.value for f in flags],
            "reason": reasons,
        }
    )
    return BiasAudit(table, overall, best_label, tests, higher_is_better)


# --------------------------------------------------------------------------------------------
# Group fairness from confusion counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FairnessRates:
    """fairlearn's group-fairness rates per segment and their disparities, for a positive class.

    With several labels and no positive class named, every label is taken as the positive one
    in turn (one-vs-rest); the frames then have one block per ``label``.
    """

    by_group: pd.DataFrame
    """Columns: label, segment, n, positives (true label = label), selected (predicted =
    label), selection_rate, tpr, fpr."""
    summary: pd.DataFrame
    """One row per label: demographic_parity_difference, demographic_parity_ratio,
    equalized_odds_difference, equalized_odds_ratio (fairlearn's ``between_groups``
    definitions: max - min and min / max over segments; equalized odds the worse of TPR and
    FPR)."""

    def _repr_html_(self) -> str:
        return self.summary._repr_html_()  # type: ignore[no-any-return]


def _spread(rates: pd.Series) -> tuple[float, float]:
    r = rates.dropna()
    if r.empty:
        return math.nan, math.nan
    hi, lo = float(r.max()), float(r.min())
    return hi - lo, (lo / hi if hi > 0 else math.nan)


def fairness_rates(
    frame: pd.DataFrame,
    *,
    positive_label: Any = None,
    segment: str = "segment",
    predicted: str = "predicted_label",
    actual: str = "human_label",
    n: str = "n",
) -> FairnessRates:
    """Selection rate, TPR and FPR per segment, with demographic-parity and equalized-odds gaps.

    Parameters
    ----------
    frame : pandas.DataFrame
        Confusion counts: one row per (segment, predicted label, true label) with its count
        ``n`` (repeated keys are summed, so a per-day frame works).
    positive_label : optional
        The positive class. None: every label that occurs is audited one-vs-rest.
    segment, predicted, actual, n : str
        Column names.

    Returns
    -------
    FairnessRates
        Rates are NaN where undefined (TPR of a segment with no positives, FPR with no
        negatives) and are left out of the differences and ratios.

    Examples
    --------
    >>> f = pd.DataFrame({"segment": ["a", "a", "b", "b"], "predicted_label": ["y", "n", "y", "n"],
    ...                   "human_label": ["y", "n", "n", "y"], "n": [30, 70, 10, 90]})
    >>> r = fairness_rates(f, positive_label="y")
    >>> r.by_group["selection_rate"].tolist()
    [0.3, 0.1]
    >>> round(float(r.summary["demographic_parity_difference"].iloc[0]), 2)
    0.2
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in (segment, predicted, actual, n) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame has no column(s) {missing}; columns are {list(frame.columns)}")
    counts = frame[[segment, predicted, actual, n]].dropna(subset=[predicted, actual])
    cnt = counts[n].to_numpy(dtype=float)
    if np.any(cnt < 0) or not np.all(np.isfinite(cnt)):
        raise ValueError(f"column {n!r} must hold non-negative counts")
    if positive_label is None:
        labels = sorted(set(counts[predicted]) | set(counts[actual]), key=str)
    else:
        labels = [positive_label]
    groups, summary = [], []
    for label in labels:
        pos = (counts[actual] == label).to_numpy()
        sel = (counts[predicted] == label).to_numpy()
        parts = pd.DataFrame(
            {
                "segment": counts[segment].to_numpy(),
                "n": cnt,
                "positives": cnt * pos,
                "selected": cnt * sel,
                "tp": cnt * (pos & sel),
                "fp": cnt * (~pos & sel),
            }
        )
        g = parts.groupby("segment", sort=True).sum()
        negatives = g["n"] - g["positives"]
        with np.errstate(divide="ignore", invalid="ignore"):
            g["selection_rate"] = np.where(g["n"] > 0, g["selected"] / g["n"], math.nan)
            g["tpr"] = np.where(g["positives"] > 0, g["tp"] / g["positives"], math.nan)
            g["fpr"] = np.where(negatives > 0, g["fp"] / negatives, math.nan)
        dp_d, dp_r = _spread(g["selection_rate"])
        tpr_d, tpr_r = _spread(g["tpr"])
        fpr_d, fpr_r = _spread(g["fpr"])
        summary.append(
            {
                "label": label,
                "demographic_parity_difference": dp_d,
                "demographic_parity_ratio": dp_r,
                "equalized_odds_difference": float(np.nanmax([tpr_d, fpr_d]))
                if np.isfinite([tpr_d, fpr_d]).any()
                else math.nan,
                "equalized_odds_ratio": float(np.nanmin([tpr_r, fpr_r]))
                if np.isfinite([tpr_r, fpr_r]).any()
                else math.nan,
            }
        )
        g = g.reset_index().drop(columns=["tp", "fp"])
        g.insert(0, "label", label)
        groups.append(g)
    columns = ["label", "segment", "n", "positives", "selected", "selection_rate", "tpr", "fpr"]
    by_group = pd.concat(groups, ignore_index=True) if groups else pd.DataFrame(columns=columns)
    return FairnessRates(by_group[columns], pd.DataFrame(summary))
