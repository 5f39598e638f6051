"""Agreement: Cohen's kappa against scikit-learn, override rate and the automation-bias gap."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score as sk_kappa
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from trustramp.metrics import (
    AgreementGap,
    agreement_gap,
    cohen_kappa_from_confusion,
    cohen_kappa_score,
    override_rate,
)

LABELS = np.array(["approve", "reject", "escalate", "defer"])


def _labels(n: int, seed: int, agree: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = rng.choice(LABELS, n, p=[0.5, 0.3, 0.15, 0.05])
    human = np.where(rng.random(n) < agree, model, rng.choice(LABELS, n))
    return model, human


@pytest.mark.parametrize(("n", "seed", "agree"), [(50, 0, 0.5), (1000, 1, 0.8), (5000, 2, 0.95)])
def test_kappa_matches_sklearn(n: int, seed: int, agree: float) -> None:
    model, human = _labels(n, seed, agree)
    expected = sk_kappa(model, human)
    assert cohen_kappa_score(model, human) == pytest.approx(expected, abs=1e-12)
    # From the long frame stage 1 returns, and from a crosstab with shuffled label order.
    long = (
        pd.DataFrame({"predicted_label": model, "human_label": human})
        .value_counts()
        .rename("n")
        .reset_index()
    )
    assert cohen_kappa_from_confusion(long) == pytest.approx(expected, abs=1e-12)
    square = pd.crosstab(model, human)
    square = square.loc[square.index[::-1], list(square.columns)]
    assert cohen_kappa_from_confusion(square) == pytest.approx(expected, abs=1e-12)


def test_kappa_from_matrix_and_a_label_only_one_rater_used() -> None:
    model = np.array(["a", "a", "b", "b", "c"])
    human = np.array(["a", "b", "b", "b", "b"])  # human never says "c"
    crosstab = pd.crosstab(model, human)  # 3 x 2, aligned on the union of labels
    assert cohen_kappa_from_confusion(crosstab) == pytest.approx(sk_kappa(model, human))


@pytest.mark.parametrize(
    ("y1", "y2"),
    [(["a"] * 5, ["a"] * 5), ([], [])],
)
def test_kappa_undefined_is_nan_like_sklearn(y1: list[str], y2: list[str]) -> None:
    assert math.isnan(cohen_kappa_score(y1, y2))
    if y1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert math.isnan(sk_kappa(y1, y2))


def test_kappa_perfect_and_chance() -> None:
    assert cohen_kappa_from_confusion([[30, 0], [0, 70]]) == 1.0
    assert cohen_kappa_from_confusion([[25, 25], [25, 25]]) == 0.0


@pytest.mark.parametrize(
    ("confusion", "match"),
    [
        ([[1, 2, 3], [4, 5, 6]], r"square matrix, got shape \(2, 3\)"),
        ([[1, -2], [3, 4]], r"confusion must be finite and >= 0"),
        (pd.DataFrame({"predicted_label": ["a"], "human_label": ["a"]}), r"no count column 'n'"),
    ],
)
def test_kappa_errors(confusion, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cohen_kappa_from_confusion(confusion)


def test_override_rate_by_band_matches_wilson() -> None:
    overridden = np.array([2, 30, 80, 0])
    shown = np.array([400, 300, 160, 0])  # auto, confirm, review, and an empty band
    r = override_rate(overridden, shown)
    low, high = proportion_confint(overridden[:3], shown[:3], method="wilson")
    np.testing.assert_allclose(r.value[:3], overridden[:3] / shown[:3])
    np.testing.assert_allclose(r.ci_low[:3], low, atol=1e-12)
    np.testing.assert_allclose(r.ci_high[:3], high, atol=1e-12)
    assert math.isnan(r.value[3]) and math.isnan(r.ci_low[3])
    with pytest.raises(ValueError, match="overridden must not exceed shown"):
        override_rate(5, 4)


def test_agreement_gap_is_shown_minus_unshown_with_newcombe_interval() -> None:
    g = agreement_gap([190, 90], [200, 100], [170, 91], [200, 100], confidence=0.9)
    assert isinstance(g, AgreementGap)
    np.testing.assert_allclose(g.difference, [0.1, -0.01])
    low, high = confint_proportions_2indep(
        np.array([190, 90]),
        np.array([200, 100]),
        np.array([170, 91]),
        np.array([200, 100]),
        method="newcomb",
        compare="diff",
        alpha=0.1,
    )
    np.testing.assert_allclose(g.ci_low, low, atol=1e-12)
    np.testing.assert_allclose(g.ci_high, high, atol=1e-12)
    frame = g.to_frame()
    assert {"shown_value", "unshown_value", "difference", "ci_low", "ci_high"} <= set(frame)
    assert len(frame) == 2
