"""Latency histograms and quantiles against numpy on raw values; error rate and availability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from trustramp.contract import Status
from trustramp.metrics import (
    LATENCY_BOUNDS_MS,
    LATENCY_EDGES_MS,
    N_LATENCY_BINS,
    availability,
    count_failures,
    error_rate,
    latency_bin,
    latency_histogram,
    latency_quantiles,
    quantile_from_histogram,
)


def _latencies(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=np.log(400), sigma=0.8, size=n)


def test_edges_span_one_ms_to_ten_minutes_at_two_percent() -> None:
    assert LATENCY_EDGES_MS[0] == 1.0
    assert LATENCY_EDGES_MS[-1] == pytest.approx(600_000.0)
    ratios = LATENCY_EDGES_MS[1:] / LATENCY_EDGES_MS[:-1]
    assert np.all(ratios < 1.02) and np.all(ratios > 1.019)
    assert LATENCY_BOUNDS_MS.size == N_LATENCY_BINS + 1
    assert LATENCY_BOUNDS_MS[0] == 0.0 and LATENCY_BOUNDS_MS[-1] == math.inf
    with pytest.raises(ValueError):
        LATENCY_EDGES_MS[0] = 2.0  # frozen: a shared layout must not be edited in place


def test_latency_bin_agrees_with_searchsorted_on_the_bounds() -> None:
    values = np.concatenate([_latencies(20_000, 0), [0.0, 0.2, 3e5, 7e5, 1e9]])
    expected = np.searchsorted(LATENCY_BOUNDS_MS, values, side="right") - 1
    np.testing.assert_array_equal(latency_bin(values), expected)


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0.0, 0),
        (0.999, 0),
        (1.0, 1),
        (1.0199, 1),
        (1.0201, 2),
        (599_999.0, N_LATENCY_BINS - 2),
        (600_000.0, N_LATENCY_BINS - 1),
        (1e12, N_LATENCY_BINS - 1),
    ],
)
def test_latency_bin_pins(ms: float, expected: int) -> None:
    assert latency_bin(ms) == expected


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_histogram_quantile_is_within_a_bin_of_numpy(q: float) -> None:
    values = _latencies(200_000, 1)
    got = quantile_from_histogram(latency_histogram(values), q)
    assert got == pytest.approx(np.quantile(values, q), rel=0.02)


def test_histograms_merge_across_days() -> None:
    day1, day2 = _latencies(5000, 2), _latencies(7000, 3) * 1.5
    merged = latency_histogram(day1) + latency_histogram(day2)
    np.testing.assert_array_equal(merged, latency_histogram(np.concatenate([day1, day2])))
    pooled = np.quantile(np.concatenate([day1, day2]), [0.5, 0.95, 0.99])
    np.testing.assert_allclose(
        quantile_from_histogram(merged, [0.5, 0.95, 0.99]), pooled, rtol=0.02
    )


def test_quantiles_vectorize_over_rows() -> None:
    rows = np.stack([latency_histogram(_latencies(3000, s)) for s in range(4)])
    rows[2] = 0
    out = quantile_from_histogram(rows, [0.5, 0.95])
    assert out.shape == (4, 2)
    for i in (0, 1, 3):
        np.testing.assert_allclose(out[i], quantile_from_histogram(rows[i], [0.5, 0.95]))
    assert np.isnan(out[2]).all()
    assert quantile_from_histogram(rows, 0.5).shape == (4,)


def test_interpolation_inverts_the_piecewise_linear_cdf() -> None:
    bounds = np.array([0.0, 10.0, 20.0, 50.0, 100.0])
    counts = np.array([3, 1, 4, 2])
    cdf = np.concatenate([[0], np.cumsum(counts)])
    for q in np.linspace(0, 1, 21):
        expected = np.interp(q * counts.sum(), cdf, bounds)
        assert quantile_from_histogram(counts, q, bounds=bounds) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ([0, 4, 4], 0.0, 10.0),  # q = 0: lower bound of the first non-empty bin
        ([0, 4, 4], 1.0, 30.0),  # q = 1: upper bound of the last non-empty bin
        ([0, 4, 0, 4], 0.5, 20.0),  # exactly between: the end of the first half
        ([2, 0, 0], 0.25, 2.5),  # a quarter of the way into [0, 10)
    ],
)
def test_quantile_ends(counts: list[int], q: float, expected: float) -> None:
    bounds = np.arange(len(counts) + 1) * 10.0
    assert quantile_from_histogram(counts, q, bounds=bounds) == expected


def test_overflow_bin_reports_its_lower_bound_and_empty_is_nan() -> None:
    h = latency_histogram([700_000.0] * 10)
    assert quantile_from_histogram(h, 0.99) == 600_000.0
    assert math.isnan(quantile_from_histogram(np.zeros(N_LATENCY_BINS), 0.5))
    assert set(latency_quantiles(h)) == {"latency_p50", "latency_p95", "latency_p99"}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: latency_bin([10.0, -1.0]), r"latency_ms must be finite and >= 0, got \[-1.0\]"),
        (lambda: latency_bin(float("nan")), r"latency_ms must be finite"),
        (lambda: quantile_from_histogram([1, 2], 1.5, bounds=[0, 1, 2]), r"q must be"),
        (lambda: quantile_from_histogram([1, 2], 0.5, bounds=[0, 1]), r"bounds must have 3"),
        (lambda: quantile_from_histogram([1, 2], 0.5, bounds=[0, 2, 1]), r"strictly increasing"),
        (lambda: error_rate(5, 3), r"n_failed must not exceed n_total"),
    ],
)
def test_errors_name_the_argument(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_error_rate_counts_error_and_timeout_only() -> None:
    status = [Status.OK, Status.ERROR, Status.TIMEOUT, Status.FALLBACK, "ok", "error"]
    assert count_failures(status) == (3, 6)


def test_error_rate_and_availability_are_complements_with_wilson() -> None:
    failed, total = np.array([0, 3, 60]), np.array([1000, 1000, 1000])
    err, avail = error_rate(failed, total), availability(failed, total)
    low, high = proportion_confint(failed, total, method="wilson")
    np.testing.assert_allclose(err.value, failed / total)
    np.testing.assert_allclose(err.ci_low, low, atol=1e-12)
    np.testing.assert_allclose(err.ci_high, high, atol=1e-12)
    np.testing.assert_allclose(avail.value, 1 - err.value)
    np.testing.assert_allclose(avail.ci_low, 1 - err.ci_high, atol=1e-12)
    np.testing.assert_allclose(avail.ci_high, 1 - err.ci_low, atol=1e-12)
    single = availability(3, 1000)
    assert isinstance(single.value, float) and single.value == pytest.approx(0.997)
    assert math.isnan(error_rate(0, 0).value)
