"""Drift: PSI against an independent formula, sample-size-aware levels in simulation, statuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import rel_entr

from trustramp.metrics import DriftStatus, PsiResult, psi, psi_levels, psi_result

BASELINE_P = np.array([0.02, 0.03, 0.05, 0.07, 0.08, 0.1, 0.12, 0.15, 0.18, 0.2])


def _reference_psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """PSI as symmetric KL divergence (Jeffreys): KL(a || e) + KL(e || a)."""
    e, a = expected / expected.sum(), actual / actual.sum()
    e, a = np.where(e == 0, eps, e), np.where(a == 0, eps, a)
    e, a = e / e.sum(), a / a.sum()
    return float(rel_entr(a, e).sum() + rel_entr(e, a).sum())


@pytest.mark.parametrize("seed", range(5))
def test_psi_matches_symmetric_kl(seed: int) -> None:
    rng = np.random.default_rng(seed)
    expected = rng.multinomial(5000, BASELINE_P)
    actual = rng.multinomial(800, rng.dirichlet(BASELINE_P * 50))
    actual[seed] = 0  # an empty bin gets eps
    assert psi(expected, actual) == pytest.approx(_reference_psi(expected, actual), rel=1e-12)


def test_psi_of_identical_shares_is_zero_and_rows_vectorize() -> None:
    expected = np.array([10, 20, 30, 0])
    assert psi(expected, expected * 3) == 0.0
    rows = np.array([[5, 10, 15, 0], [30, 10, 5, 5], [0, 0, 0, 0]])
    out = psi(expected, rows)
    assert out[0] == 0.0
    assert out[1] == pytest.approx(_reference_psi(expected, rows[1]))
    assert math.isnan(out[2])


def test_psi_eps_controls_empty_bins() -> None:
    expected, actual = np.array([50, 50, 0]), np.array([50, 40, 10])
    small, large = psi(expected, actual, eps=1e-6), psi(expected, actual, eps=1e-2)
    assert small > large > 0
    assert small == pytest.approx(_reference_psi(expected, actual, eps=1e-6))


def test_levels_are_the_null_quantile_or_the_conventional_floor() -> None:
    n_e, n_a, bins = np.array([10_000, 300, 600]), np.array([600, 300, 100]), 10
    warning, critical = psi_levels(n_e, n_a, bins)
    scale = 1 / n_e + 1 / n_a
    np.testing.assert_allclose(warning, np.maximum(0.1, scale * stats.chi2.ppf(0.95, 9)))
    np.testing.assert_allclose(critical, np.maximum(0.25, scale * stats.chi2.ppf(0.99, 9)))
    assert warning[0] == 0.1 and critical[0] == 0.25  # large samples: the playbook's levels
    assert warning[2] > 0.1  # small windows: noise alone would exceed 0.1


@pytest.mark.parametrize(("n_expected", "n_actual"), [(5000, 500), (2000, 2000), (500, 800)])
def test_unfloored_levels_hold_their_false_alarm_rate_under_no_drift(
    n_expected: int, n_actual: int
) -> None:
    rng = np.random.default_rng(n_actual)
    sims = 2000
    expected = rng.multinomial(n_expected, BASELINE_P, size=sims)
    actual = rng.multinomial(n_actual, BASELINE_P, size=sims)
    values = np.array([psi(e, a) for e, a in zip(expected, actual, strict=True)])
    warning, critical = psi_levels(
        n_expected, n_actual, BASELINE_P.size, warning_floor=0.0, critical_floor=0.0
    )
    assert 0.03 <= np.mean(values > warning) <= 0.07
    assert np.mean(values > critical) <= 0.02
    # With the conventional floors, no-drift alarms are rarer still.
    floored_warning, _ = psi_levels(n_expected, n_actual, BASELINE_P.size)
    assert np.mean(values > floored_warning) <= 0.07


@pytest.mark.parametrize(
    ("actual_p", "n_actual", "status"),
    [
        (BASELINE_P, 2000, DriftStatus.OK),
        (BASELINE_P, 499, DriftStatus.INSUFFICIENT),
        (BASELINE_P[::-1], 499, DriftStatus.INSUFFICIENT),  # big drift, too little data
        (0.75 * BASELINE_P + 0.25 * BASELINE_P[::-1], 3000, DriftStatus.WARNING),
        (BASELINE_P[::-1], 2000, DriftStatus.CRITICAL),
    ],
)
def test_psi_result_status(actual_p: np.ndarray, n_actual: int, status: DriftStatus) -> None:
    expected = np.round(BASELINE_P * 20_000)
    actual = np.round(actual_p / actual_p.sum() * n_actual)
    actual[-1] += n_actual - actual.sum()
    r = psi_result(expected, actual)
    assert isinstance(r, PsiResult)
    assert r.status is status
    assert r.n_actual == n_actual
    if status is DriftStatus.INSUFFICIENT:
        assert math.isnan(r.warning)
    else:
        assert r.warning <= r.critical
    assert r.to_frame().loc[0, "status"] == status.value


def test_psi_result_with_empty_baseline_is_insufficient() -> None:
    assert psi_result([0, 0, 0], [300, 300, 300]).status is DriftStatus.INSUFFICIENT


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: psi([1, 2], [1, 2, 3]), r"actual_counts must have 2 bins"),
        (lambda: psi([[1, 2]], [1, 2]), r"expected_counts must be one-dimensional"),
        (lambda: psi([1, -2], [1, 2]), r"expected_counts must be finite and >= 0"),
        (lambda: psi([1, 2], [1, 2], eps=0), r"eps must be in \(0, 1\)"),
        (lambda: psi_levels(0, 10, 5), r"must be > 0"),
        (lambda: psi_levels(10, 10, 1), r"n_bins must be an integer >= 2"),
        (lambda: psi_levels(10, 10, 5, warning_quantile=1.5), r"warning_quantile must be in"),
    ],
)
def test_errors_name_the_argument(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    pair=st.integers(min_value=1, max_value=20).flatmap(
        lambda b: st.tuples(
            st.lists(st.integers(0, 10_000), min_size=b, max_size=b),
            st.lists(st.integers(0, 10_000), min_size=b, max_size=b),
        )
    )
)
def test_psi_is_non_negative(pair: tuple[list[int], list[int]]) -> None:
    expected, actual = pair
    value = psi(expected, actual)
    assert math.isnan(value) or value >= 0.0
    if sum(expected) and sum(actual):
        assert not math.isnan(value)


def test_psi_result_levels_hold_with_sparse_bins() -> None:
    # Ten rare bins (0.2 % of the items each): at 600 items per window they are often empty on
    # one side, and the epsilon share of an empty bin inflates the PSI. The chi-square level
    # alone let no drift at all raise a warning about 17 % of the time; with the simulated null
    # quantile the rate is back at its nominal 5 %.
    rng = np.random.default_rng(17)
    p = np.r_[np.full(10, 0.002), np.full(10, 0.098)]
    sims, nominal = 300, 0.05
    warned = critical = 0
    chi2_only = 0
    for _ in range(sims):
        e, a = rng.multinomial(600, p), rng.multinomial(600, p)
        r = psi_result(e, a)
        warned += r.status in (DriftStatus.WARNING, DriftStatus.CRITICAL)
        critical += r.status is DriftStatus.CRITICAL
        w, _ = psi_levels(600, 600, int(np.count_nonzero((e > 0) | (a > 0))))
        chi2_only += r.value >= w
    print(
        f"no drift, sparse bins, 600/600: warnings {warned / sims:.3f} (nominal {nominal}), "
        f"critical {critical / sims:.3f} (nominal 0.01); chi-square level alone "
        f"{chi2_only / sims:.3f}"
    )
    assert warned / sims <= nominal + 3 * np.sqrt(nominal * (1 - nominal) / sims)
    assert critical / sims <= 0.01 + 3 * np.sqrt(0.01 * 0.99 / sims)
    assert chi2_only / sims > 0.1  # what the alerts would have acted on before
