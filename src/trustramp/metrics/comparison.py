"""Paired comparison of a candidate model version with the previous one (SPEC 3.1).

Both versions predict the same labeled items, so their accuracies are compared with McNemar's
test on the discordant pairs: ``b`` items only the candidate got right, ``c`` items only the
previous version got right. A "performance regression" is a candidate that is significantly
worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from trustramp import _dist
from trustramp.metrics import _checks as chk

__all__ = [
    "EXACT_BELOW",
    "ComparisonVerdict",
    "McNemarResult",
    "VersionComparison",
    "compare_versions",
    "mcnemar_test",
]

EXACT_BELOW = 25
"""McNemar uses the exact binomial test when there are fewer discordant pairs than this."""


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test of marginal homogeneity on the discordant pairs ``b`` and ``c``."""

    statistic: float
    """``min(b, c)`` for the exact test; the continuity-corrected chi-square otherwise."""
    p_value: float
    """Two-sided p-value."""
    method: str
    """``exact`` (b + c < 25) or ``chi2``."""


def _count(x: float, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a non-negative integer count, got {x!r}")
    if not (math.isfinite(x) and x >= 0 and float(x).is_integer()):
        raise ValueError(f"{name} must be a non-negative integer count, got {x!r}")
    return int(x)


def mcnemar_test(b: int, c: int) -> McNemarResult:
    """McNemar's test: exact binomial when ``b + c < 25``, else chi-square with continuity correction.

    Parameters
    ----------
    b : int
        Pairs where only the first (candidate) is right.
    c : int
        Pairs where only the second (previous) is right.

    Returns
    -------
    McNemarResult
        Exact: ``p = min(1, 2 P(Binom(b + c, 1/2) <= min(b, c)))``. Chi-square:
        ``max(|b - c| - 1, 0)^2 / (b + c)`` on 1 degree of freedom (the correction never
        overshoots, so ``b == c`` gives p = 1).

    Examples
    --------
    >>> r = mcnemar_test(3, 12)
    >>> r.method, round(r.p_value, 4)
    ('exact', 0.0352)
    """
    b, c = _count(b, "b"), _count(c, "c")
    m = b + c
    if m < EXACT_BELOW:
        p = min(1.0, 2.0 * float(_dist.binom_cdf(min(b, c), m, 0.5)))
        return McNemarResult(float(min(b, c)), p, "exact")
    statistic = max(abs(b - c) - 1, 0) ** 2 / m
    return McNemarResult(float(statistic), float(_dist.chi2_sf(statistic, 1)), "chi2")


class ComparisonVerdict(StrEnum):
    """Outcome of comparing a candidate version with the previous one."""

    REGRESSION = "regression"
    """The candidate is significantly less accurate than the previous version."""
    IMPROVEMENT = "improvement"
    """The candidate is significantly more accurate."""
    NO_DIFFERENCE = "no_difference"
    """No significant difference at the level."""
    INSUFFICIENT = "insufficient"
    """Fewer paired items than the minimum."""


@dataclass(frozen=True)
class VersionComparison:
    """A candidate version against the previous one on the same labeled items."""

    n: int
    """Paired items (both versions predicted, human label known)."""
    candidate_accuracy: float
    """``(both_correct + only_candidate) / n``."""
    previous_accuracy: float
    """``(both_correct + only_previous) / n``."""
    difference: float
    """``candidate_accuracy - previous_accuracy = (only_candidate - only_previous) / n``."""
    p_value: float
    """McNemar's two-sided p-value."""
    method: str
    """``exact`` or ``chi2`` (see `mcnemar_test`)."""
    verdict: ComparisonVerdict
    """regression, improvement, no_difference or insufficient."""
    alpha: float = 0.05
    """Level of the verdict."""

    def to_frame(self) -> pd.DataFrame:
        """A one-row table of the fields."""
        return pd.DataFrame([{**self.__dict__, "verdict": str(self.verdict)}])

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()  # type: ignore[no-any-return]


def compare_versions(
    both_correct: int,
    only_candidate: int,
    only_previous: int,
    neither: int,
    *,
    alpha: float = 0.05,
    min_n: int = 1,
) -> VersionComparison:
    """Compare a candidate model version with the previous one on the same items (paired).

    Parameters
    ----------
    both_correct, only_candidate, only_previous, neither : int
        The paired 2x2 table of correctness counts.
    alpha : float, default 0.05
        Level of the two-sided test behind the verdict.
    min_n : int, default 1
        Fewest paired items for a verdict other than ``insufficient``.

    Returns
    -------
    VersionComparison
        ``regression`` when the candidate is worse with p < alpha, ``improvement`` when better.

    Examples
    --------
    >>> r = compare_versions(800, 10, 40, 150)
    >>> r.verdict.value, r.difference
    ('regression', -0.03)
    """
    a = _count(both_correct, "both_correct")
    b = _count(only_candidate, "only_candidate")
    c = _count(only_previous, "only_previous")
    d = _count(neither, "neither")
    chk.level(alpha, "alpha")
    min_n = chk.positive_int(min_n, "min_n")
    n = a + b + c + d
    test = mcnemar_test(b, c)
    if n < min_n:

        def share(x: int) -> float:
            return x / n if n else math.nan

        return VersionComparison(
            n,
            share(a + b),
            share(a + c),
            share(b - c),
            test.p_value,
            test.method,
            ComparisonVerdict.INSUFFICIENT,
            alpha,
        )
    if test.p_value < alpha and b < c:
        verdict = ComparisonVerdict.REGRESSION
    elif test.p_value < alpha and b > c:
        verdict = ComparisonVerdict.IMPROVEMENT
    else:
        verdict = ComparisonVerdict.NO_DIFFERENCE
    return VersionComparison(
        n, (a + b) / n, (a + c) / n, (b - c) / n, test.p_value, test.method, verdict, alpha
    )
