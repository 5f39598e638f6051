"""Calibration: bins (edge convention pinned), ECE/MCE, Brier, log loss, class-wise ECE, the test."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss as sk_brier
from sklearn.metrics import log_loss as sk_log_loss
from statsmodels.stats.proportion import proportion_confint

from trustramp.metrics import (
    MIN_SHOWN_N,
    MIN_STABLE_N,
    CalibrationTest,
    bin_edges,
    bin_index,
    brier_from_sums,
    brier_score_loss,
    calibration_bins,
    calibration_test,
    classwise_bins,
    classwise_ece,
    classwise_ece_from_bins,
    debiased_l2_ece,
    debiased_l2_ece_from_bins,
    ece_from_bins,
    expected_calibration_error,
    is_miscalibrated,
    log_loss,
    log_loss_from_sums,
    maximum_calibration_error,
    mce_from_bins,
    reliability_table,
    smooth_ece,
    smooth_ece_from_cells,
)


def _calibrated(n: int, rng: np.random.Generator, shift: float = 0.0) -> tuple[np.ndarray, ...]:
    """Confidences in [0.3, 1]; correct ~ Bernoulli(confidence - shift)."""
    conf = rng.uniform(0.3, 1.0, n)
    correct = (rng.random(n) < np.clip(conf - shift, 0, 1)).astype(int)
    return correct, conf


def _off_edges(conf: np.ndarray, n_bins: int, gap: float = 1e-6) -> np.ndarray:
    """Mask of confidences at least `gap` away from every edge m/M (sklearn differs on edges)."""
    scaled = conf * n_bins
    return np.abs(scaled - np.round(scaled)) > gap * n_bins


# --- the edge convention (SPEC 3.5) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "n_bins", "expected"),
    [
        (0.0, 15, 0),  # 0 falls in the first bin
        (1e-300, 15, 0),
        (1.0, 15, 14),  # 1.0 falls in the last bin
        (1.0, 1, 0),
        (0.8, 15, 11),  # exactly on 12/15: bin 11 (right-closed)
        (0.8000001, 15, 12),
        (0.7999999, 15, 11),
        (1 / 15, 15, 0),
        (0.5, 2, 0),
        (0.5 + 1e-8, 2, 1),
        (np.nextafter(0.5, 1.0), 2, 0),  # within EDGE_TOLERANCE of an edge: still below it
        (0.28, 25, 6),  # 0.28 * 25 == 7.000000000000001 in floating point
        (0.56, 25, 13),  # 0.56 * 25 == 14.000000000000002
        (0.58, 50, 28),  # 0.58 * 50 == 28.999999999999996
        (0.3, 10, 2),
        (0.30000000000000004, 10, 2),  # np.linspace(0, 1, 11)[3]
        (0.95, 20, 18),
        (0.95, 15, 14),
    ],
)
def test_bin_index_is_right_closed(confidence: float, n_bins: int, expected: int) -> None:
    assert bin_index(confidence, n_bins) == expected


def test_naive_ceil_would_misplace_edge_values() -> None:
    # The reason for the edge tolerance: the textbook formula puts 0.28 in bin 7 of 25.
    assert math.ceil(0.28 * 25) - 1 == 7
    assert bin_index(0.28, 25) == 6


@pytest.mark.parametrize("n_bins", range(1, 101))
def test_every_edge_belongs_to_the_bin_below(n_bins: int) -> None:
    m = np.arange(1, n_bins + 1)
    for edge in (m / n_bins, np.linspace(0.0, 1.0, n_bins + 1)[1:], bin_edges(n_bins)[1:]):
        np.testing.assert_array_equal(bin_index(edge, n_bins), m - 1)
    above = m[:-1] / n_bins + 1e-7
    np.testing.assert_array_equal(bin_index(above, n_bins), m[:-1])
    assert bin_index(0.0, n_bins) == 0


def test_decimal_confidences_on_edges_stay_below() -> None:
    # Decimal confidences (as logged: 0.28, 0.56, ...) that lie exactly on an edge m/M.
    checked = 0
    for n_bins in (10, 15, 20, 25, 40, 50, 100):
        for j in range(1001):
            value = Fraction(j, 1000) * n_bins
            if value.denominator == 1 and value > 0:
                assert bin_index(j / 1000, n_bins) == int(value) - 1, (j, n_bins)
                checked += 1
    assert checked > 200


def test_empty_bins_contribute_nothing() -> None:
    count, correct, conf = np.array([10, 0, 20]), np.array([5, 0, 19]), np.array([6.0, 0, 18.0])
    assert ece_from_bins(count, correct, conf) == pytest.approx((1 + 1) / 30)
    assert ece_from_bins(count[[0, 2]], correct[[0, 2]], conf[[0, 2]]) == pytest.approx(
        ece_from_bins(count, correct, conf)
    )
    assert mce_from_bins(count, correct, conf) == pytest.approx(0.1)
    table = reliability_table(count, correct, conf)
    assert table.loc[1, "n"] == 0
    assert (
        table.loc[[1], ["accuracy", "mean_confidence", "gap", "ci_low", "ci_high"]]
        .isna()
        .all(axis=None)
    )


# --- against scikit-learn ---------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [5, 10, 15, 20])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bins_match_sklearn_calibration_curve_off_the_edges(n_bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    correct, conf = _calibrated(5000, rng, shift=0.05)
    keep = _off_edges(conf, n_bins)
    correct, conf = correct[keep], conf[keep]
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=n_bins, strategy="uniform")
    sizes, _ = np.histogram(conf, bins=np.linspace(0, 1, n_bins + 1))
    sizes = sizes[sizes > 0]
    ref_ece = float(np.sum(sizes / sizes.sum() * np.abs(prob_true - prob_pred)))

    table = reliability_table(*calibration_bins(correct, conf, n_bins=n_bins))
    filled = table[table["n"] > 0]
    np.testing.assert_array_equal(filled["n"], sizes)
    np.testing.assert_allclose(filled["accuracy"], prob_true, rtol=1e-12)
    np.testing.assert_allclose(filled["mean_confidence"], prob_pred, rtol=1e-12)
    assert expected_calibration_error(correct, conf, n_bins=n_bins) == pytest.approx(ref_ece)
    assert maximum_calibration_error(correct, conf, n_bins=n_bins) == pytest.approx(
        np.max(np.abs(prob_true - prob_pred))
    )


def test_reliability_table_wilson_intervals_match_statsmodels() -> None:
    rng = np.random.default_rng(9)
    bins = calibration_bins(*_calibrated(3000, rng), n_bins=15)
    table = reliability_table(*bins, confidence=0.9)
    filled = table[table["n"] > 0]
    low, high = proportion_confint(filled["correct"], filled["n"], alpha=0.1, method="wilson")
    np.testing.assert_allclose(filled["ci_low"], low, atol=1e-12)
    np.testing.assert_allclose(filled["ci_high"], high, atol=1e-12)
    np.testing.assert_allclose(table["lo"], np.arange(15) / 15)
    np.testing.assert_allclose(table["hi"], np.arange(1, 16) / 15)
    np.testing.assert_allclose(table["gap"], table["mean_confidence"] - table["accuracy"])


@pytest.mark.parametrize("seed", [0, 1])
def test_brier_and_log_loss_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    correct, conf = _calibrated(2000, rng, shift=0.1)
    conf[:5] = [0.0, 1.0, 1.0, 0.0, 1.0]  # exercise the clipping of log loss
    correct[:5] = [1, 0, 1, 0, 1]
    assert brier_score_loss(correct, conf) == pytest.approx(sk_brier(correct, conf), rel=1e-12)
    assert log_loss(correct, conf) == pytest.approx(
        sk_log_loss(correct, conf, labels=[0, 1]), rel=1e-12
    )
    # From the sums stage 1 computes.
    clipped = np.clip(np.where(correct == 1, conf, 1 - conf), np.finfo(float).eps, 1)
    assert brier_from_sums(conf.size, np.sum((conf - correct) ** 2)) == pytest.approx(
        brier_score_loss(correct, conf)
    )
    assert log_loss_from_sums(conf.size, -np.log(clipped).sum()) == pytest.approx(
        log_loss(correct, conf)
    )


def test_from_sums_are_vectorized_and_nan_on_empty() -> None:
    out = brier_from_sums([4, 0], [1.0, 0.0])
    assert out[0] == 0.25 and math.isnan(out[1])
    assert math.isnan(log_loss_from_sums(0, 0.0))


# --- ECE from bins equals ECE from arrays -----------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_ece_from_bins_equals_ece_from_arrays(strategy: str, n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    correct, conf = _calibrated(1234, rng, shift=0.08)
    bins = calibration_bins(correct, conf, n_bins=n_bins, strategy=strategy)
    assert bins.count.sum() == 1234
    assert ece_from_bins(*bins) == expected_calibration_error(
        correct, conf, n_bins=n_bins, strategy=strategy
    )


@pytest.mark.parametrize("n_bins", [3, 10, 15])
def test_quantile_strategy_is_stable_sort_then_array_split(n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    correct, conf = _calibrated(1003, rng, shift=0.05)
    conf = np.round(conf, 2)  # many ties
    order = np.argsort(conf, kind="stable")
    ref = 0.0
    for group in np.array_split(order, n_bins):
        ref += abs(correct[group].sum() - conf[group].sum())
    ref /= conf.size
    bins = calibration_bins(correct, conf, n_bins=n_bins, strategy="quantile")
    np.testing.assert_array_equal(bins.count, [g.size for g in np.array_split(order, n_bins)])
    assert expected_calibration_error(correct, conf, n_bins=n_bins, strategy="quantile") == (
        pytest.approx(ref)
    )


def test_uniform_ece_is_invariant_to_row_order() -> None:
    rng = np.random.default_rng(4)
    correct, conf = _calibrated(999, rng, shift=0.1)
    perm = rng.permutation(conf.size)
    assert expected_calibration_error(correct, conf) == pytest.approx(
        expected_calibration_error(correct[perm], conf[perm])
    )


def test_ece_from_bins_vectorizes_over_leading_axes() -> None:
    rng = np.random.default_rng(6)
    stacks = [calibration_bins(*_calibrated(500, rng, shift=s)) for s in (0.0, 0.1, 0.2)]
    count = np.stack([b.count for b in stacks])
    correct = np.stack([b.correct for b in stacks])
    conf = np.stack([b.conf_sum for b in stacks])
    np.testing.assert_allclose(
        ece_from_bins(count, correct, conf), [ece_from_bins(*b) for b in stacks]
    )
    np.testing.assert_allclose(
        mce_from_bins(count, correct, conf), [mce_from_bins(*b) for b in stacks]
    )
    count[1] = correct[1] = conf[1] = 0
    assert math.isnan(ece_from_bins(count, correct, conf)[1])
    assert math.isnan(mce_from_bins(count, correct, conf)[1])


@pytest.mark.parametrize(
    ("correct", "confidence", "ece"),
    [
        ([1, 1, 1], [1.0, 1.0, 1.0], 0.0),  # perfect and certain
        ([0, 0], [0.0, 0.0], 0.0),
        ([0, 0], [1.0, 1.0], 1.0),  # certain and always wrong
        ([1], [0.0], 1.0),
    ],
)
def test_ece_extremes(correct: list[int], confidence: list[float], ece: float) -> None:
    assert expected_calibration_error(correct, confidence) == ece


def test_no_items_gives_nan() -> None:
    assert math.isnan(expected_calibration_error([], []))
    assert math.isnan(maximum_calibration_error([], []))
    assert math.isnan(brier_score_loss([], []))


# --- class-wise ECE ---------------------------------------------------------------------------


def _multiclass(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, k)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(k, p=p) for p in probs**1.3 / (probs**1.3).sum(1, keepdims=True)])
    return labels, probs


def test_classwise_ece_matches_per_class_sklearn_reference() -> None:
    rng = np.random.default_rng(10)
    n_bins = 10
    labels, probs = _multiclass(3000, 4, rng)
    keep = _off_edges(probs, n_bins).all(axis=1)
    labels, probs = labels[keep], probs[keep]
    per_class = []
    for j in range(4):
        target, p = (labels == j).astype(int), probs[:, j]
        prob_true, prob_pred = calibration_curve(target, p, n_bins=n_bins)
        sizes, _ = np.histogram(p, bins=np.linspace(0, 1, n_bins + 1))
        sizes = sizes[sizes > 0]
        per_class.append(np.sum(sizes / labels.size * np.abs(prob_true - prob_pred)))
    assert classwise_ece(labels, probs, n_bins=n_bins) == pytest.approx(np.mean(per_class))
    assert classwise_ece_from_bins(*classwise_bins(labels, probs, n_bins=n_bins)) == (
        classwise_ece(labels, probs, n_bins=n_bins)
    )


def test_classwise_ece_with_string_classes_and_single_class() -> None:
    labels = np.array(["b", "a", "b", "b"])
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    by_name = classwise_ece(labels, probs, classes=["a", "b"])
    assert by_name == classwise_ece(np.where(labels == "a", 0, 1), probs)
    # One class only: probability 1 and always right is perfectly calibrated.
    assert classwise_ece(["x"] * 5, np.ones((5, 1)), classes=["x"]) == 0.0


def test_classwise_from_bins_requires_every_item_in_every_class() -> None:
    with pytest.raises(ValueError, match="per-class totals differ"):
        classwise_ece_from_bins([[2, 2], [2, 1]], [[0, 2], [0, 1]], [[0.4, 1.6], [0.6, 0.7]])


# --- consistency-resampling test --------------------------------------------------------------


def test_calibration_test_is_seeded() -> None:
    rng = np.random.default_rng(1)
    bins = calibration_bins(*_calibrated(800, rng, shift=0.03))
    assert calibration_test(*bins, seed=3) == calibration_test(*bins, seed=3)


def test_calibration_test_p_value_formula_and_bounds() -> None:
    # Observed ECE exactly 0: every resample is >= it, so p = 1.
    t = calibration_test([10, 10], [5, 8], [5.0, 8.0], reps=99)
    assert t.ece == 0.0 and t.p_value == 1.0
    # A grossly miscalibrated model: no resample reaches it, p = 1 / (1 + reps).
    t = calibration_test([500, 500], [100, 150], [450.0, 480.0], reps=999)
    assert t.p_value == 1 / 1000
    assert is_miscalibrated(t, 0.05)


def test_calibration_test_false_alarm_rate_on_calibrated_data() -> None:
    rng = np.random.default_rng(2026)
    sims, level = 1000, 0.05
    rejections = 0
    for s in range(sims):
        bins = calibration_bins(*_calibrated(600, rng))
        rejections += calibration_test(*bins, reps=199, seed=s).p_value < level
    # The test is conservative (Binomial variance >= the true Poisson-binomial variance).
    assert rejections / sims <= level + 0.015


def test_calibration_test_detects_overconfidence() -> None:
    rng = np.random.default_rng(8)
    bins = calibration_bins(*_calibrated(2000, rng, shift=0.08))
    t = calibration_test(*bins)
    assert t.p_value < 0.01
    assert t.ece > t.noise_floor


def test_noise_floor_is_the_ece_of_a_perfect_model() -> None:
    rng = np.random.default_rng(12)
    n = 700
    # Direct simulation: ECE of freshly drawn perfectly calibrated samples of size n.
    direct = np.mean([expected_calibration_error(*_calibrated(n, rng)) for _ in range(400)])
    floor = calibration_test(*calibration_bins(*_calibrated(n, rng)), reps=2000).noise_floor
    assert floor == pytest.approx(direct, rel=0.1)
    bigger = calibration_test(*calibration_bins(*_calibrated(4 * n, rng)), reps=2000).noise_floor
    assert bigger == pytest.approx(floor / 2, rel=0.2)  # shrinks like 1 / sqrt(n)


@pytest.mark.parametrize(
    ("n", "shown", "noisy"),
    [
        (0, False, True),
        (MIN_SHOWN_N - 1, False, True),
        (MIN_SHOWN_N, True, True),
        (MIN_STABLE_N - 1, True, True),
        (MIN_STABLE_N, True, False),
        (5000, True, False),
    ],
)
def test_display_rules(n: int, shown: bool, noisy: bool) -> None:
    t = calibration_test([n], [n // 2], [n / 2], reps=10)
    assert (t.n, t.shown, t.noisy) == (n, shown, noisy)
    if n == 0:
        assert math.isnan(t.ece) and math.isnan(t.p_value)


@pytest.mark.parametrize(
    ("ece", "p_value", "threshold", "expected"),
    [
        (0.08, 0.001, 0.05, True),
        (0.08, 0.02, 0.05, False),
        (0.04, 0.001, 0.05, False),
        (0.05, 0.001, 0.05, False),
        (math.nan, math.nan, 0.05, False),
    ],
)
def test_is_miscalibrated_needs_both_rejection_and_threshold(
    ece: float, p_value: float, threshold: float, expected: bool
) -> None:
    t = CalibrationTest(ece=ece, p_value=p_value, noise_floor=0.01, n=2000, noisy=False, shown=True)
    assert is_miscalibrated(t, threshold) is expected
    assert "<table" in t._repr_html_()


# --- errors and properties --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: bin_index([0.5, 1.2], 10), r"confidence has values outside \[0, 1\]: \[1.2\]"),
        (lambda: bin_index(0.5, 0), r"n_bins must be an integer >= 1, got 0"),
        (lambda: expected_calibration_error([1, 0], [0.5]), r"same length, got 2 and 1"),
        (lambda: expected_calibration_error([1, 2], [0.5, 0.5]), r"correct must hold only 0/1.*2"),
        (lambda: expected_calibration_error([1], [0.5], strategy="kmeans"), r"strategy must be"),
        (lambda: ece_from_bins([1, 2], [2, 2], [1.0, 1.0]), r"correct must not exceed count"),
        (lambda: ece_from_bins([1, 2], [1, 2], [1.5, 1.0]), r"conf_sum must not exceed count"),
        (lambda: log_loss([1], [0.5], eps=0.0), r"eps must be in"),
        (lambda: calibration_test([2.5], [1], [1.0]), r"integer counts"),
        (lambda: is_miscalibrated(CalibrationTest(0.1, 0.0, 0.0, 1, True, False), 5), "threshold"),
        (lambda: classwise_ece([0], [0.5]), r"y_prob must have shape \(n, classes\)"),
        (lambda: classwise_ece([0], [[0.5, 0.5]], classes=["a"]), r"classes must have 2"),
    ],
)
def test_errors_name_the_argument(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0, max_value=1)), min_size=1, max_size=200
    ),
    n_bins=st.integers(min_value=1, max_value=30),
    strategy=st.sampled_from(["uniform", "quantile"]),
)
def test_ece_is_in_unit_interval_and_below_mce(data, n_bins: int, strategy: str) -> None:
    correct = np.array([int(c) for c, _ in data])
    conf = np.array([p for _, p in data])
    ece = expected_calibration_error(correct, conf, n_bins=n_bins, strategy=strategy)
    mce = maximum_calibration_error(correct, conf, n_bins=n_bins, strategy=strategy)
    assert 0.0 <= ece <= mce + 1e-12 <= 1.0 + 1e-12
    assert ece == ece_from_bins(*calibration_bins(correct, conf, n_bins=n_bins, strategy=strategy))


# --- debiased L2-ECE (Kumar, Liang & Ma 2019) -------------------------------------------------


def _kumar_debiased_l2(correct: np.ndarray, confidence: np.ndarray, n_bins: int) -> float:
    """Reference from the paper's estimator, bin by bin on item lists (as their
    `calibration.unbiased_l2_ce` does): per bin (mean(conf) - mean(y))^2 - ybar(1 - ybar)/(n-1),
    weighted by the bin's share, bins of fewer than two items contributing 0, clipped, sqrt."""
    edges = [Fraction(m, n_bins) for m in range(n_bins + 1)]
    bins: list[list[int]] = [[] for _ in range(n_bins)]
    for i, c in enumerate(confidence):
        fc = Fraction(repr(float(c)))  # the decimal value: 0.2 is the edge 3/15
        b = next(m for m in range(n_bins) if fc <= edges[m + 1]) if fc > 0 else 0
        bins[b].append(i)
    total = 0.0
    for members in bins:
        if len(members) < 2:
            continue
        y, c = correct[members], confidence[members]
        ybar = y.mean()
        total += (
            len(members)
            / len(correct)
            * ((c.mean() - ybar) ** 2 - ybar * (1 - ybar) / (len(members) - 1))
        )
    return math.sqrt(max(total, 0.0))


@pytest.mark.parametrize(("seed", "shift"), [(0, 0.0), (1, 0.05), (2, 0.15)])
def test_debiased_l2_ece_matches_the_papers_estimator(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    c = np.round(rng.beta(4, 1.5, 3_000), 3)  # some values on edges
    c[:30] = 0.2
    y = (rng.random(c.size) < np.clip(c - shift, 0, 1)).astype(int)
    ref = _kumar_debiased_l2(y, c, 15)
    assert debiased_l2_ece(y, c, n_bins=15) == pytest.approx(ref, abs=1e-12)
    bins = calibration_bins(y, c, n_bins=15)
    assert debiased_l2_ece_from_bins(*bins) == pytest.approx(ref, abs=1e-12)


def test_debiased_l2_ece_removes_the_noise_floor() -> None:
    # Simulated bins (vectorized: binomial counts per bin): a perfectly calibrated model and one
    # 5 points over-confident everywhere (true binned L2 error 0.05), 600 items in 15 bins.
    rng = np.random.default_rng(2019)
    reps, n_bins, n = 4_000, 15, 600
    centers = (np.arange(n_bins) + 0.5) / n_bins
    share = np.linspace(1, 3, n_bins) / np.linspace(1, 3, n_bins).sum()
    for true_gap in (0.0, 0.05):
        count = rng.multinomial(n, share, size=reps).astype(float)
        acc = np.clip(centers - true_gap, 0, 1)
        correct = rng.binomial(count.astype(int), acc).astype(float)
        conf_sum = count * centers
        debiased = debiased_l2_ece_from_bins(count, correct, conf_sum)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(count > 0, (correct - conf_sum) / np.maximum(count, 1), 0.0)
        plugin = np.sqrt((count / n * gap**2).sum(axis=1))
        true_sq = float(share @ (centers - acc) ** 2)  # the first bin's accuracy clips at 0
        print(
            f"true L2 error {np.sqrt(true_sq):.4f}, n={n}: plug-in mean {plugin.mean():.4f}, "
            f"debiased mean {debiased.mean():.4f}; squared: true {true_sq:.6f}, plug-in "
            f"{(plugin**2).mean():.6f}, debiased {(debiased**2).mean():.6f}"
        )
        # The plug-in estimate sits at its noise floor; the debiased one is far closer.
        gap_sq = abs((debiased**2).mean() - true_sq)
        assert gap_sq < 0.25 * abs((plugin**2).mean() - true_sq)
        # Unbiased for the squared error away from 0 (the clip at 0 lifts a null model a bit).
        se = (debiased**2).std() / np.sqrt(reps)
        if true_gap:
            assert (debiased**2).mean() == pytest.approx(true_sq, abs=4 * se)


# --- smooth ECE (Błasiok & Nakkiran 2023) ------------------------------------------------------


def _smece_reference(y: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """Reference written from the paper: smECE_s = integral |r_s(t)| delta_s(t) dt with
    r_s * delta_s = (1/n) sum_i K_s(t, f_i) (y_i - f_i) and K the Gaussian reflected at 0 and 1,
    computed by a different route (residual mass deposited on an 8001-point mesh, mirrored
    once on each side, convolved with the Gaussian); the bandwidth is the root of
    smECE_s = s (brentq)."""
    from scipy import optimize, signal, stats

    mesh = 8_001
    grid = np.linspace(0, 1, mesh)
    h = grid[1] - grid[0]
    pos = f * (mesh - 1)
    i = np.clip(np.floor(pos).astype(int), 0, mesh - 2)
    w = pos - i
    vals = np.zeros(mesh)
    np.add.at(vals, i, (1 - w) * (y - f))
    np.add.at(vals, i + 1, w * (y - f))
    ext = np.concatenate([vals[::-1][:-1], vals, vals[::-1][1:]])

    def at(s: float) -> float:
        kernel = stats.norm.pdf(np.arange(-(mesh - 1), mesh) * h, scale=s)
        conv = signal.fftconvolve(ext, kernel, mode="same")[mesh - 1 : 2 * mesh - 1]
        return float(np.trapezoid(np.abs(conv), grid) / len(f))

    sigma = optimize.brentq(lambda s: at(s) - s, 1e-3, 0.5, xtol=1e-7)
    return at(sigma), sigma


@pytest.mark.parametrize(("seed", "shift", "n"), [(3, 0.08, 2_000), (4, -0.04, 3_000)])
def test_smooth_ece_matches_a_reference_from_the_paper(seed: int, shift: float, n: int) -> None:
    rng = np.random.default_rng(seed)
    f = rng.beta(5, 2, n)
    y = (rng.random(n) < np.clip(f - shift, 0, 1)).astype(float)
    ref, ref_sigma = _smece_reference(y, f)
    got = smooth_ece(y, f)
    # Cells of stage 1's threshold grid (0.01 wide) at their mean confidence.
    g = np.minimum(np.floor(np.round(f * 1e6) / 1e4), 99).astype(int)
    cells = (
        np.bincount(g, minlength=100),
        np.bincount(g, weights=y, minlength=100),
        np.bincount(g, weights=f, minlength=100),
    )
    from_cells, sigma = smooth_ece_from_cells(*cells)
    print(
        f"smECE reference {ref:.5f} (sigma {ref_sigma:.5f}); items {got:.5f}; "
        f"0.01 cells {from_cells:.5f} (sigma {sigma:.5f})"
    )
    assert got == pytest.approx(ref, rel=0.01)
    assert from_cells == pytest.approx(ref, rel=0.02)
    assert sigma == pytest.approx(from_cells, abs=2e-4)  # the fixed point


def test_smooth_ece_of_a_constant_shift_and_of_a_calibrated_model() -> None:
    rng = np.random.default_rng(5)
    n = 40_000
    f = rng.uniform(0.3, 0.7, n)
    shifted = (rng.random(n) < f - 0.1).astype(float)
    g = np.minimum((f * 100).astype(int), 99)

    def cells(y: np.ndarray) -> tuple[np.ndarray, ...]:
        return (
            np.bincount(g, minlength=100),
            np.bincount(g, weights=y, minlength=100),
            np.bincount(g, weights=f, minlength=100),
        )

    # A constant 0.1 over-confidence away from the edges: smECE is the shift.
    assert smooth_ece_from_cells(*cells(shifted))[0] == pytest.approx(0.1, abs=0.01)
    calibrated = (rng.random(n) < f).astype(float)
    assert smooth_ece_from_cells(*cells(calibrated))[0] < 0.02
    assert math.isnan(smooth_ece_from_cells([0, 0], [0, 0], [0.0, 0.0])[0])


def test_gate_calibration_evidence_from_stage_one_cells(demo_lake: dict) -> None:
    """The verdict's debiased L2-ECE and smECE (from stage 1's bins and 0.01 cells) against the
    item-level estimators on the raw rows of the certified population."""
    from conftest import demo_gate, raw_gate_rows

    from trustramp.evaluate.evidence import calibration_evidence

    cfg = demo_lake["config"]
    win, _, pop = demo_gate(demo_lake)
    cal, _ = calibration_evidence(pop, cfg)
    gate = raw_gate_rows(demo_lake, win, pop.version)
    gate = gate[
        ~gate["status"].isin(["error", "timeout"])
        & gate["confidence"].notna()
        & gate["human_label"].notna()
    ]
    y = (gate["human_label"] == gate["predicted_label"]).to_numpy(int)
    c = gate["confidence"].to_numpy(float)
    assert cal.n == len(gate) >= 500
    assert cal.ece_debiased_l2 == pytest.approx(
        debiased_l2_ece(y, c, n_bins=cfg.statistics.ece_bins), abs=1e-12
    )
    assert cal.smece == pytest.approx(smooth_ece(y, c), rel=0.02)
    assert cal.smece_sigma == pytest.approx(cal.smece, abs=2e-4)
