"""Human–model agreement (SPEC 3.1, 3.5): Cohen's kappa, override rate, the automation-bias gap.

Once a suggestion is shown, the human's label leans toward it. Shown items therefore feed the
override analysis, unshown items (shadow traffic, the blind hold-out) give clean ground truth,
and the gap between the two agreement rates measures automation bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from trustramp.metrics import _checks as chk
from trustramp.metrics.intervals import Proportion, newcombe_interval, proportion

__all__ = [
    "AgreementGap",
    "agreement_gap",
    "cohen_kappa_from_confusion",
    "cohen_kappa_score",
    "override_rate",
]


def _square(
    confusion: pd.DataFrame | ArrayLike, first: str, second: str, count: str
) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(confusion, pd.DataFrame):
        if first in confusion.columns and second in confusion.columns:
            if count not in confusion.columns:
                raise ValueError(
                    f"confusion is a long frame ({first!r}, {second!r}) but has no count column "
                    f"{count!r}; columns are {list(confusion.columns)}"
                )
            confusion = confusion.pivot_table(
                index=first, columns=second, values=count, aggfunc="sum", fill_value=0
            )
        labels = confusion.index.union(confusion.columns)
        confusion = confusion.reindex(index=labels, columns=labels, fill_value=0)
    c = chk.finite_nonnegative(confusion, "confusion")
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {c.shape}")
    return c


def cohen_kappa_from_confusion(
    confusion: pd.DataFrame | ArrayLike,
    *,
    first: str = "predicted_label",
    second: str = "human_label",
    count: str = "n",
) -> float:
    """Cohen's kappa (unweighted) from a confusion matrix of counts.

    Parameters
    ----------
    confusion : array-like of shape (K, K) or pandas.DataFrame
        Counts, rows one rater's labels and columns the other's, in the same order. A
        DataFrame is either square (a crosstab; index and columns are aligned on their union
        of labels) or long, with columns `first`, `second` and `count` (what SQL returns).
    first, second, count : str
        Column names of a long frame.

    Returns
    -------
    float
        ``(p_o - p_e) / (1 - p_e)``; NaN when undefined (no items, or both raters used one
        and the same single label, ``p_e == 1``).

    Examples
    --------
    >>> round(cohen_kappa_from_confusion([[20, 5], [10, 15]]), 4)
    0.4
    """
    c = _square(confusion, first, second, count)
    total = c.sum()
    if total == 0:
        return math.nan
    p_o = np.trace(c) / total
    p_e = float(c.sum(axis=1) @ c.sum(axis=0)) / total**2
    if math.isclose(p_e, 1.0, rel_tol=0.0, abs_tol=1e-15):
        return math.nan
    return float((p_o - p_e) / (1.0 - p_e))


def cohen_kappa_score(y1: ArrayLike, y2: ArrayLike) -> float:
    """Cohen's kappa between two label arrays (e.g. predicted and human labels).

    Examples
    --------
    >>> cohen_kappa_score(["a", "b", "a", "b"], ["a", "b", "b", "b"])
    0.5
    """
    a, b = np.asarray(y1).ravel(), np.asarray(y2).ravel()
    chk.same_length(a, b, "y1", "y2")
    labels, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    k = labels.size
    c = np.bincount(codes[: a.size] * k + codes[a.size :], minlength=k * k).reshape(k, k)
    return cohen_kappa_from_confusion(c)


def override_rate(
    overridden: ArrayLike, shown: ArrayLike, *, confidence: float = 0.95
) -> Proportion:
    """Share of shown suggestions the human overrode, with its Wilson interval.

    Parameters
    ----------
    overridden : array-like
        Overridden suggestions (per band, day, segment, ... or a single count).
    shown : array-like
        Suggestions shown (modes suggestion and confirmation; autonomous exceptions).
    confidence : float, default 0.95
        Interval level.

    Returns
    -------
    Proportion
        ``value = overridden / shown`` with ``ci_low``, ``ci_high``; NaN where nothing was shown.

    Examples
    --------
    >>> r = override_rate(30, 200)
    >>> r.value, round(r.ci_low, 3), round(r.ci_high, 3)
    (0.15, 0.107, 0.206)
    """
    chk.counts(overridden, shown, k_name="overridden", n_name="shown")  # names the argument
    return proportion(overridden, shown, confidence=confidence)


@dataclass(frozen=True)
class AgreementGap:
    """Agreement with the model when the human saw the suggestion versus when they did not."""

    shown: Proportion
    """Agreement rate on shown items."""
    unshown: Proportion
    """Agreement rate on unshown items (shadow traffic, blind hold-out)."""
    difference: Any
    """``shown - unshown``; positive means humans follow the model more when they see it."""
    ci_low: Any
    """Lower Newcombe hybrid score bound of the difference."""
    ci_high: Any
    """Upper Newcombe hybrid score bound of the difference."""

    def to_frame(self) -> pd.DataFrame:
        """One row per group: both rates with intervals, the gap and its interval."""
        s, u = self.shown.to_frame(), self.unshown.to_frame()
        return pd.concat(
            [
                s.add_prefix("shown_"),
                u.add_prefix("unshown_"),
                pd.DataFrame(
                    {
                        "difference": np.atleast_1d(self.difference),
                        "ci_low": np.atleast_1d(self.ci_low),
                        "ci_high": np.atleast_1d(self.ci_high),
                    }
                ),
            ],
            axis=1,
        )

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()  # type: ignore[no-any-return]


def agreement_gap(
    agree_shown: ArrayLike,
    n_shown: ArrayLike,
    agree_unshown: ArrayLike,
    n_unshown: ArrayLike,
    *,
    confidence: float = 0.95,
) -> AgreementGap:
    """The automation-bias gap: shown-item agreement minus unshown-item agreement.

    Parameters
    ----------
    agree_shown, n_shown : array-like
        Items where the human's final label equals the model's, and items, among shown ones.
    agree_unshown, n_unshown : array-like
        The same among unshown items.
    confidence : float, default 0.95
        Level of the Wilson intervals and of the Newcombe interval of the difference.

    Returns
    -------
    AgreementGap

    Examples
    --------
    >>> g = agreement_gap(190, 200, 170, 200)
    >>> round(g.difference, 2), bool(g.ci_low > 0)
    (0.1, True)
    """
    shown = proportion(agree_shown, n_shown, confidence=confidence)
    unshown = proportion(agree_unshown, n_unshown, confidence=confidence)
    low, high = newcombe_interval(
        agree_shown, n_shown, agree_unshown, n_unshown, confidence=confidence
    )
    return AgreementGap(shown, unshown, shown.value - unshown.value, low, high)
