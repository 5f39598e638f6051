"""Recalibration maps: Platt and PAV against scikit-learn, temperature, held-out choice, ECE."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special
from sklearn.calibration import _TemperatureScaling
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from trustramp.decide.recalibration import (
    CalibrationMap,
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
    fit_recalibration,
    fit_temperature,
    map_threshold,
)


def top_label(seed: int, n: int, *, skew: float):
    """Confidences U(0.4, 1) with true accuracy sigmoid(skew * logit(c)).

    skew < 1: over-confident; skew = 1: calibrated; skew > 1: under-confident.
    """
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.4, 0.999, n)
    y = (rng.random(n) < special.expit(skew * special.logit(c))).astype(float)
    return c, y


def multiclass(seed: int, n: int, k: int, *, temperature: float):
    """Class probabilities softmax(z); labels drawn from softmax(z / temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, (n, k))
    p = special.softmax(z, axis=1)
    truth = special.softmax(z / temperature, axis=1)
    labels = (truth.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return p, labels


@pytest.mark.parametrize(("seed", "skew"), [(0, 0.5), (1, 0.7), (2, 1.4)])
def test_platt_matches_sklearn_logistic_regression(seed: int, skew: float) -> None:
    c, y = top_label(seed, 4000, skew=skew)
    ours = fit_platt(c, y)
    ref = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(special.logit(c)[:, None], y)
    assert ours.params["a"] == pytest.approx(ref.coef_[0, 0], rel=1e-5, abs=1e-6)
    assert ours.params["b"] == pytest.approx(ref.intercept_[0], rel=1e-5, abs=1e-6)
    assert ours.params["a"] == pytest.approx(skew, abs=0.15)  # recovers the planted slope


@pytest.mark.parametrize(("seed", "decimals"), [(0, None), (1, 2), (2, 3)])
def test_pav_matches_sklearn_isotonic(seed: int, decimals: int | None) -> None:
    c, y = top_label(seed, 6000, skew=0.6)
    if decimals is not None:
        c = np.round(c, decimals)  # many ties: pooled before PAV, as scikit-learn does
    ours = fit_isotonic(c, y)
    ref = IsotonicRegression(out_of_bounds="clip").fit(c, y)
    grid = np.linspace(0, 1, 2001)
    np.testing.assert_allclose(ours.transform(grid), ref.predict(grid), atol=1e-12)
    np.testing.assert_allclose(ours.transform(c), ref.predict(c), atol=1e-12)
    assert (np.diff(ours.knots_y) >= 0).all()


@pytest.mark.parametrize(("seed", "k", "temperature"), [(0, 3, 2.0), (1, 5, 0.6), (2, 2, 1.5)])
def test_temperature_matches_sklearn(seed: int, k: int, temperature: float) -> None:
    p, labels = multiclass(seed, 5000, k, temperature=temperature)
    ours = fit_temperature(p, labels)
    ref = _TemperatureScaling().fit(p, labels)
    assert 1 / ours.params["T"] == pytest.approx(float(ref.beta_), rel=1e-4)
    assert ours.params["T"] == pytest.approx(temperature, rel=0.15)


def test_temperature_two_class_form_is_exact_for_two_classes() -> None:
    p, _ = multiclass(3, 500, 2, temperature=1.0)
    m = CalibrationMap("temperature", {"T": 1.7})
    c = p.max(axis=1)
    np.testing.assert_allclose(m.transform(c), m.transform(c, probabilities=p), atol=1e-12)


@pytest.mark.parametrize(("seed", "skew"), [(0, 0.5), (1, 0.65)])
def test_over_confident_data_get_a_map_that_lowers_held_out_ece(seed: int, skew: float) -> None:
    c, y = top_label(seed, 4000, skew=skew)
    r = fit_recalibration(c, y, seed=seed)
    assert r.chosen.name == "platt" and r.recommended
    assert r.ece_after < r.ece_before / 2
    assert set(r.candidates["name"]) == {"identity", "platt"}
    assert any("isotonic skipped: needs ≥ 5,000 labels; has 4,000" in n for n in r.notes)
    platt = r.candidates.set_index("name").loc["platt"]
    assert platt["log_loss"] < r.candidates.set_index("name").loc["identity", "log_loss"]


def test_temperature_is_a_candidate_with_class_probabilities() -> None:
    p, labels = multiclass(4, 4000, 4, temperature=2.5)  # over-confident
    c = p.max(axis=1)
    y = (p.argmax(axis=1) == labels).astype(float)
    r = fit_recalibration(c, y, probabilities=p, labels=labels)
    table = r.candidates.set_index("name")
    assert "temperature" in table.index
    assert table.loc["temperature", "ece"] < table.loc["identity", "ece"]
    assert r.chosen.name in {"platt", "temperature"} and r.ece_after < r.ece_before


def test_isotonic_only_from_5000_labels() -> None:
    c, y = top_label(5, 6000, skew=0.5)
    assert "isotonic" in set(fit_recalibration(c, y).candidates["name"])
    assert "isotonic" not in set(fit_recalibration(c[:4999], y[:4999]).candidates["name"])


def test_calibrated_data_keep_a_low_ece() -> None:
    c, y = top_label(6, 4000, skew=1.0)
    r = fit_recalibration(c, y)
    assert r.ece_before < 0.05 and r.ece_after < 0.05


def test_split_by_keys_is_stable_under_reordering() -> None:
    c, y = top_label(7, 3000, skew=0.6)
    keys = np.random.default_rng(7).integers(0, 2**63, 3000, dtype=np.uint64)
    perm = np.random.default_rng(8).permutation(3000)
    a = fit_recalibration(c, y, keys=keys)
    b = fit_recalibration(c[perm], y[perm], keys=keys[perm])
    assert a.chosen.params == pytest.approx(b.chosen.params, rel=1e-9)
    assert a.ece_before == pytest.approx(b.ece_before) and 1300 < a.n_fit < 1700


@pytest.mark.parametrize(
    ("confidence", "correct", "n_bins", "expected"),
    [
        ([0.0, 1.0], [0, 1], 15, 0.0),  # 0 falls in the first bin, 1.0 in the last
        ([0.25, 0.25 + 1e-9], [0, 1], 4, (1 - 1e-9) / 2),  # 0.25 closes bin 0 (one bin: 0.25)
        ([0.5, 0.55], [1, 0], 10, 0.525),  # (0.4, 0.5] and (0.5, 0.6]; one bin would be 0.025
        ([0.45, 0.5], [1, 0], 10, 0.025),  # both in (0.4, 0.5]
        ([0.9, 0.9, 0.6, 0.6], [1, 1, 1, 0], 10, 0.1),
    ],
)
def test_ece_bins_are_right_closed(confidence, correct, n_bins, expected) -> None:
    got = expected_calibration_error(confidence, correct, n_bins=n_bins)
    assert got == pytest.approx(expected, abs=1e-12)


def test_map_threshold_shapes() -> None:
    m = CalibrationMap("platt", {"a": 0.5, "b": 0.1})
    one = map_threshold(m, 0.9)
    assert isinstance(one, float) and one == pytest.approx(
        special.expit(0.5 * special.logit(0.9) + 0.1)
    )
    arr = map_threshold(m, np.array([0.6, 0.9]))
    assert arr.shape == (2,) and arr[1] == pytest.approx(one)
    assert map_threshold(m, {"auto": 0.9, "confirm": None}) == {"auto": one, "confirm": None}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence": [0.5, 1.5, 0.7, 0.8], "correct": [1, 0, 1, 1]}, "outside \\[0, 1\\]"),
        ({"confidence": [0.5, 0.6, 0.7, 0.8], "correct": [1, 0, 2, 1]}, "correct must be 0 or 1"),
        ({"confidence": [0.5, 0.6], "correct": [1, 0]}, "at least 4 labeled items"),
        (
            {"confidence": [0.5, 0.6, 0.7, 0.8], "correct": [1, 0, 1, 1], "labels": [0, 1, 0, 1]},
            "give both probabilities and labels",
        ),
        (
            {"confidence": [0.5] * 4, "correct": [1, 0, 1, 1], "keys": [0.5, 1.5, 2.5, 3.5]},
            "keys must be 4 integers",
        ),
    ],
)
def test_fit_recalibration_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_recalibration(**kwargs)


def test_platt_needs_both_outcomes() -> None:
    with pytest.raises(ValueError, match="correct is constant"):
        fit_platt([0.6, 0.7, 0.8], [1, 1, 1])


def test_ece_is_the_one_right_closed_implementation_on_bin_edges() -> None:
    # Every confidence on an edge m/25 (0.28 * 25 == 7.000000000000001 in floating point): the
    # recalibration ECE must bin them exactly as the metrics' ECE and stage 1's SQL do, each in
    # the bin the edge closes. Reference: the bins built with exact integer arithmetic.
    from trustramp.metrics import expected_calibration_error as metrics_ece

    m = 25
    edges = np.arange(1, m + 1)
    # Each bin: 40 right items on its closing edge m/M, 40 wrong ones at its middle. Over-
    # and under-confidence cancel inside the bin; an edge item pushed one bin up would not.
    on_edge, middle = edges / m, (edges - 0.5) / m
    confidence = np.concatenate([np.repeat(on_edge, 40), np.repeat(middle, 40)])
    correct = np.concatenate([np.ones(40 * m, int), np.zeros(40 * m, int)])
    exact_bin = np.concatenate([np.repeat(edges - 1, 40), np.repeat(edges - 1, 40)])
    gap = np.bincount(exact_bin, weights=correct - confidence, minlength=m)
    reference = np.abs(gap).sum() / confidence.size
    got = expected_calibration_error(confidence, correct, n_bins=m)
    assert got == pytest.approx(reference, abs=1e-12)
    assert got == pytest.approx(metrics_ece(correct, confidence, n_bins=m), abs=1e-15)
