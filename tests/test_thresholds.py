"""Threshold recommendations: grid conventions, the LTT walk against scipy and MAPIE, bands."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from trustramp.config import Override, Routing, parse_config
from trustramp.decide.recalibration import CalibrationMap, map_threshold
from trustramp.decide.thresholds import (
    Stage,
    apply_progression,
    certify_threshold,
    grid_counts,
    min_labels_to_certify,
    min_labels_to_start,
    progression_stage,
    recommend_by_group,
    recommend_thresholds,
    replay_policy,
    to_config_patch,
)

SEGMENTS = ["internal", "smb", "mid_market", "enterprise"]


def population(seed: int, n: int, *, low: float = 0.3, power: float = 1.0):
    """Confidences U(low, 1) whose true accuracy is c**power; kept off the 1e-6 cell edges."""
    rng = np.random.default_rng(seed)
    c = low + (1 - low) * (rng.integers(0, 100_000, n) + 0.5) / 100_000
    y = (rng.random(n) < c**power).astype(float)
    return rng, c, y


def frame_from_arrays(seed: int = 0, n: int = 40_000) -> tuple[pd.DataFrame, dict]:
    rng, c, y = population(seed, n)
    unlabeled = rng.random(n) < 0.25
    y_obs = np.where(unlabeled, np.nan, y)
    day = rng.integers(0, 7, n)
    seg = rng.choice(SEGMENTS, n, p=[0.05, 0.6, 0.345, 0.005])
    cust = np.char.add("c", rng.integers(0, 40, n).astype(str))
    dims = {"day": day, "segment": seg, "customer_id": cust, "model_version": np.full(n, "v2")}
    grid = grid_counts(c, y_obs, dims=dims)
    return grid, {"c": c, "y": y_obs, **dims}


# ------------------------------------------------------------------------------------------
# grid_counts: cell conventions
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "step", "lo"),
    [
        (0.0, 0.01, 0.0),
        (0.95, 0.01, 0.95),  # the float nearest 0.95 is a hair below it: still cell 0.95
        (0.95 - 1e-7, 0.01, 0.95),  # resolved at 1e-6: within half a unit counts as the edge
        (0.95 - 1e-6, 0.01, 0.94),
        (0.9549999, 0.01, 0.95),
        (0.99, 0.01, 0.99),
        (1.0, 0.01, 0.99),  # the last cell includes 1.0
        (0.07, 0.01, 0.07),  # 0.07 * 100 = 7.000000000000001 in floats; integers don't care
        (0.29, 0.01, 0.29),  # 0.29 * 100 = 28.999999999999996
        (1.0, 0.03, 0.99),  # 34 cells, the last one [0.99, 1.0]
        (0.5, 0.005, 0.5),
        (0.5049, 0.005, 0.5),
    ],
)
def test_grid_cell_edges(confidence: float, step: float, lo: float) -> None:
    g = grid_counts([confidence], [1], step=step)
    assert g.loc[g["total"] == 1, "lo"].tolist() == [pytest.approx(lo, abs=1e-12)]
    assert len(g) == int(np.ceil(1 / step - 1e-9))


def test_grid_counts_sums_and_unlabeled() -> None:
    c = [0.1, 0.1, 0.55, 0.999, 1.0, 0.5]
    y = [1, 0, np.nan, 1, 0, np.nan]
    g = grid_counts(c, y, step=0.1)
    assert g["total"].sum() == 6 and g["n"].sum() == 4 and g["correct"].sum() == 2
    top = g[g["lo"] == 0.9].iloc[0]
    assert (top["n"], top["correct"], top["total"]) == (2, 1, 2)
    half = g[g["lo"] == 0.5].iloc[0]
    assert (half["n"], half["total"]) == (0, 2)


def test_grid_counts_with_dims_matches_pandas_groupby() -> None:
    rng = np.random.default_rng(5)
    c = rng.random(3000)
    y = np.where(rng.random(3000) < 0.2, np.nan, (rng.random(3000) < c).astype(float))
    seg = rng.choice(["a", "b", "c"], 3000)
    g = grid_counts(c, y, dims={"segment": seg})
    ref = (
        pd.DataFrame({"segment": seg, "lo": np.floor(c * 100) / 100, "y": y})
        .groupby(["segment", "lo"])
        .agg(n=("y", "count"), correct=("y", "sum"), total=("y", "size"))
        .reset_index()
    )
    got = g.sort_values(["segment", "lo"]).reset_index(drop=True)
    assert got["segment"].tolist() == ref["segment"].tolist()
    np.testing.assert_allclose(got["lo"], ref["lo"], atol=1e-12)
    for col in ("n", "correct", "total"):
        np.testing.assert_array_equal(got[col], ref[col].astype(int))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence": [1.2], "correct": [1]}, r"confidence has values outside \[0, 1\]"),
        ({"confidence": [0.5, 0.6], "correct": [1]}, "same length"),
        ({"confidence": [0.5], "correct": [2]}, "correct must be 0, 1 or NaN"),
        ({"confidence": [0.5], "correct": [1], "step": 0.3}, r"step must be in \(0, 0.1\]"),
        ({"confidence": [0.5], "correct": [1], "dims": {"d": [1, 2]}}, r"dims\['d'\] has 2"),
    ],
)
def test_grid_counts_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        grid_counts(**kwargs)


def _grid(**cols: list) -> pd.DataFrame:
    base = {"lo": [0.5, 0.9], "n": [10, 10], "correct": [5, 9]}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        (pd.DataFrame({"lo": [0.5], "n": [3]}), r"missing column\(s\) \['correct'\]"),
        (_grid(lo=[0.5, 0.905]), "on the 0.01 grid, got \\[0.905\\]"),
        (_grid(lo=[0.5, 1.0]), "cell edges in \\[0, 1\\)"),
        (_grid(correct=[5, 11]), r"grid row 1: correct \(11\) exceeds n \(10\)"),
        (_grid(n=[10, -1]), "non-negative whole counts, got \\[-1\\]"),
        (_grid(n=[10, 2.5]), "non-negative whole counts"),
        (_grid(total=[10, 4]), r"grid row 1: total \(4\) is below n \(10\)"),
    ],
)
def test_grid_validation_errors(grid: pd.DataFrame, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        certify_threshold(grid, target=0.9, delta=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": 1.5, "delta": 0.05}, r"target must be in \[0, 1\], got 1.5"),
        ({"target": 0.9, "delta": 0.0}, r"delta must be in \(0, 1\), got 0.0"),
        ({"target": 0.9, "delta": 0.05, "upper": 0.905}, "upper=0.905 is not on the 0.01 grid"),
        ({"target": 0.9, "delta": 0.05, "min_start": -1}, "min_start must be"),
    ],
)
def test_certify_argument_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        certify_threshold(_grid(), **kwargs)


# ------------------------------------------------------------------------------------------
# The LTT walk
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "delta"), [(0.95, 0.05 / 3), (0.9, 0.05), (0.8, 0.01), (0.6, 0.05 / 3), (0.5, 0.1)]
)
def test_min_labels_is_the_least_n_that_can_reject(target: float, delta: float) -> None:
    m = min_labels_to_certify(target, delta)
    assert stats.binomtest(m, m, target, alternative="greater").pvalue <= delta
    assert stats.binomtest(m - 1, m - 1, target, alternative="greater").pvalue > delta
    assert m == int(np.ceil(np.log(delta) / np.log(target)))


@pytest.mark.parametrize(("target", "delta"), [(0.95, 0.05 / 3), (0.9, 0.05), (0.6, 0.05 / 3)])
def test_default_start_passes_with_half_the_allowed_errors(target: float, delta: float) -> None:
    def passes(n: int) -> bool:
        errors = int(np.floor(n * (1 - target) / 2 + 1e-9))
        return stats.binomtest(n - errors, n, target, alternative="greater").pvalue <= delta

    m = min_labels_to_start(target, delta)
    assert passes(m)
    assert not any(passes(n) for n in range(min_labels_to_certify(target, delta), m))


def test_min_start_zero_starts_where_all_correct_could_pass() -> None:
    grid = pd.DataFrame({"lo": [0.9, 0.99], "n": [100, 30], "correct": [95, 30]})
    brief = certify_threshold(grid, target=0.9, delta=0.05, min_start=0, fallback=False)
    assert brief.start == pytest.approx(0.99)  # 30 >= 29 items, p = 0.9**30 = 0.042
    assert brief.curve.loc[0, "status"] == "rejected"
    # with fallback the first checkpoint brings 3δ/4 = 0.0375 < 0.042; the next ones (≥ 58 and
    # ≥ 116 items, both at 0.90: 125 of 130 correct, p = 0.0081) δ/8 each, so the walk
    # resumes there at 0.0125
    spread = certify_threshold(grid, target=0.9, delta=0.05, min_start=0)
    assert [(t, round(s, 9)) for t, s in spread.checkpoints] == [(0.99, 0.75), (0.9, 0.25)]
    assert spread.curve.loc[0, "status"] == "failed"
    assert spread.curve.loc[0, "level"] == pytest.approx(0.0375)
    assert (spread.curve.loc[1:8, "status"] == "untested").all()
    assert spread.curve.loc[9, "level"] == pytest.approx(0.0125)
    assert spread.threshold == pytest.approx(0.0)
    assert "the walk resumed at 0.90, a checkpoint with 130 labeled items" in spread.reason
    default = certify_threshold(grid, target=0.9, delta=0.05)
    assert default.start == pytest.approx(0.9)  # 30 < 76 items at 0.99


def test_min_labels_edge_targets() -> None:
    assert min_labels_to_certify(1.0, 0.05) is None
    assert min_labels_to_certify(0.0, 0.05) == 1


@pytest.mark.parametrize(("seed", "target"), [(0, 0.9), (1, 0.95), (2, 0.8), (3, 0.6)])
def test_p_values_and_counts_match_scipy_and_numpy(seed: int, target: float) -> None:
    _, c, y = population(seed, 3000, power=1.5)
    cert = certify_threshold(grid_counts(c, y), target=target, delta=0.05)
    for row in cert.curve.sample(25, random_state=seed).itertuples():
        above = c >= row.threshold
        assert row.n == above.sum() and row.correct == y[above].sum()
        if row.n:
            ref = stats.binomtest(int(row.correct), int(row.n), target, alternative="greater")
            assert row.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_walk_on_a_hand_built_grid() -> None:
    # 100 items at 0.99, all right; 100 items at 0.50, all wrong. Target 0.9, δ 0.05: every
    # threshold from 0.99 to 0.51 sees the same 100/100 (p = 0.9**100); 0.50 sees 100/200.
    grid = pd.DataFrame({"lo": [0.5, 0.99], "n": [100, 100], "correct": [0, 100]})
    cert = certify_threshold(grid, target=0.9, delta=0.05)
    assert cert.threshold == pytest.approx(0.51)
    assert cert.start == pytest.approx(0.99)
    assert (cert.n, cert.correct) == (100, 100)
    assert cert.p_value == pytest.approx(0.9**100, rel=1e-9)
    status = dict(zip(cert.curve["threshold"].round(2), cert.curve["status"], strict=True))
    assert status[0.99] == status[0.51] == "rejected"
    assert status[0.5] == "failed" and status[0.49] == status[0.0] == "untested"
    assert "0.50 fails: 100 of 200 correct" in cert.reason


def test_walk_starts_where_the_test_can_reject() -> None:
    # 10 items at 0.99 (< 29 = min labels for 0.9 at δ 0.05), then 100 at 0.90 with 98 right.
    grid = pd.DataFrame({"lo": [0.9, 0.99], "n": [100, 10], "correct": [98, 10]})
    cert = certify_threshold(grid, target=0.9, delta=0.05)
    assert cert.min_n == 29
    assert cert.start == pytest.approx(0.9)
    skipped = cert.curve.loc[cert.curve["threshold"] > 0.905, "status"]
    assert (skipped == "skipped").all()
    p = stats.binomtest(108, 110, 0.9, alternative="greater").pvalue
    assert p <= 0.05
    assert cert.threshold == pytest.approx(0.0)  # nothing below 0.90: every threshold holds
    later = certify_threshold(grid, target=0.9, delta=0.05, min_start=111)
    assert later.threshold is None and "needs ≥ 111 labeled items" in later.reason


@pytest.mark.parametrize(
    ("grid", "reason"),
    [
        (pd.DataFrame({"lo": [0.99], "n": [80], "correct": [64]}), "the first tested threshold"),
        (pd.DataFrame({"lo": [0.99], "n": [75], "correct": [75]}), "needs ≥ 76 labeled items"),
        (pd.DataFrame({"lo": [0.99], "n": [0], "correct": [0]}), "has 0"),
    ],
)
def test_no_threshold_when_the_first_test_fails_or_cannot_run(
    grid: pd.DataFrame, reason: str
) -> None:
    cert = certify_threshold(grid, target=0.9, delta=0.05)
    assert cert.threshold is None and cert.p_value is None
    assert reason in cert.reason


def test_upper_restricts_to_the_band_below() -> None:
    _, c, y = population(4, 5000)
    grid = grid_counts(c, y)
    banded = certify_threshold(grid, target=0.8, delta=0.05, upper=0.9)
    cut = certify_threshold(grid[grid["lo"] < 0.895], target=0.8, delta=0.05)
    assert banded.threshold == cut.threshold
    assert banded.upper == pytest.approx(0.9) and cut.upper is None
    assert banded.curve["threshold"].max() == pytest.approx(0.89)
    below = (c >= banded.threshold) & (c < 0.9)
    assert banded.n == below.sum() and banded.correct == y[below].sum()


# ------------------------------------------------------------------------------------------
# MAPIE 1.6: Learn-then-Test with fixed-sequence testing, an independent implementation
# ------------------------------------------------------------------------------------------


def _proba(x: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - x, x])


CASES = [(s, t, d) for s in range(6) for t, d in ((0.95, 0.05 / 3), (0.9, 0.1), (0.8, 0.05))]


@pytest.mark.parametrize(("seed", "target", "delta"), CASES)
def test_matches_mapie_ltt_grid_point_for_grid_point(
    seed: int, target: float, delta: float
) -> None:
    from mapie.risk_control.fwer_control import control_fwer
    from mapie.risk_control.methods import compute_hoeffding_bentkus_p_value

    _, c, y = population(seed, 4000, low=0.5, power=1.5)
    cert = certify_threshold(grid_counts(c, y), target=target, delta=delta)
    assert cert.start is not None
    tested = cert.curve[cert.curve["threshold"] <= cert.start + 1e-9]  # descending
    n = tested["n"].to_numpy()
    errors = n - tested["correct"].to_numpy()
    # MAPIE's binary Bentkus p-value is binom.cdf(ceil(n * r_hat), n, alpha): a risk of
    # (errors - 1e-6) / n makes the ceiling land on the integer error count whatever the
    # floating-point rounding (see test_mapie_controller_... for why this matters).
    r_hat = np.maximum(errors - 1e-6, 0) / n
    p_mapie = compute_hoeffding_bentkus_p_value(r_hat, n.astype(float), 1 - target, binary=True)
    np.testing.assert_allclose(p_mapie[:, 0], tested["p_value"], rtol=1e-10, atol=1e-300)
    valid = control_fwer(p_mapie[:, 0], delta, fwer_method="fixed_sequence")
    ours = np.flatnonzero(tested["status"].to_numpy() == "rejected")
    np.testing.assert_array_equal(valid, ours)
    if valid.size:
        assert tested["threshold"].iloc[valid.max()] == cert.threshold


@pytest.mark.parametrize(("seed", "target", "delta"), CASES)
def test_mapie_controller_on_raw_items_agrees_up_to_its_float_ceiling(
    seed: int, target: float, delta: float
) -> None:
    """MAPIE's BinaryClassificationController(precision, fixed_sequence) on the raw items.

    Its risk is the float ``1 - correct / n``, and ``ceil(n * risk)`` often lands one above the
    integer error count, so MAPIE's p-value there is that of one more error (more
    conservative). Wherever it lands on the integer, the p-values agree exactly; elsewhere they
    lie between ours and the one-more-error value; its valid thresholds are a subset of ours,
    equal unless such a point cut its walk short.
    """
    from mapie.risk_control import BinaryClassificationController

    _, c, y = population(seed, 4000, low=0.5, power=1.5)
    cert = certify_threshold(grid_counts(c, y), target=target, delta=delta)
    tested = cert.curve[cert.curve["threshold"] <= cert.start + 1e-9].iloc[::-1]  # ascending
    lambdas = tested["threshold"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bcc = BinaryClassificationController(
            _proba,
            "precision",
            target_level=target,
            confidence_level=1 - delta,
            list_predict_params=lambdas,
            fwer_method="fixed_sequence",
        ).calibrate(c, y.astype(int))
    n, k = tested["n"].to_numpy(), tested["correct"].to_numpy()
    exact = np.ceil(n * (1 - k / n)) == n - k
    p_mapie = bcc.p_values[:, 0]
    np.testing.assert_allclose(p_mapie[exact], tested["p_value"][exact], rtol=1e-10, atol=1e-300)
    one_more_error = stats.binom.cdf(n - k + 1, n, 1 - target)
    assert (p_mapie >= tested["p_value"].to_numpy() * (1 - 1e-10)).all()
    assert (p_mapie <= one_more_error * (1 + 1e-10)).all()
    ours = set(np.round(tested.loc[tested["status"] == "rejected", "threshold"], 6))
    theirs = set(np.round(bcc.valid_predict_params.astype(float), 6))
    assert theirs <= ours
    walk = tested["status"].isin(["rejected", "failed"]).to_numpy()
    if exact[walk].all():
        assert theirs == ours


# ------------------------------------------------------------------------------------------
# Invariance
# ------------------------------------------------------------------------------------------


def test_row_order_and_extra_dimensions_do_not_matter() -> None:
    grid, _ = frame_from_arrays(1, 20_000)
    a = certify_threshold(grid, target=0.9, delta=0.05)
    b = certify_threshold(grid.sample(frac=1.0, random_state=3), target=0.9, delta=0.05)
    collapsed = grid.groupby("lo", as_index=False)[["n", "correct", "total"]].sum()
    c = certify_threshold(collapsed, target=0.9, delta=0.05)
    assert a.threshold == b.threshold == c.threshold
    pd.testing.assert_frame_equal(a.curve, b.curve)
    pd.testing.assert_frame_equal(a.curve, c.curve)


def test_array_order_does_not_matter() -> None:
    rng, c, y = population(2, 5000)
    perm = rng.permutation(c.size)
    pd.testing.assert_frame_equal(grid_counts(c, y), grid_counts(c[perm], y[perm]))


@pytest.mark.parametrize(("a", "b"), [(1.7, -0.3), (0.4, 0.2), (2.5, 1.0)])
def test_increasing_map_selects_the_same_items_at_mapped_thresholds(a: float, b: float) -> None:
    _, c, _ = population(3, 20_000)
    m = CalibrationMap("platt", {"a": a, "b": b})
    mapped = m.transform(c)
    for t in np.arange(30, 100) / 100:
        np.testing.assert_array_equal(c >= t, mapped >= map_threshold(m, t))


# ------------------------------------------------------------------------------------------
# recommend_thresholds
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, dict]:
    return frame_from_arrays(0, 40_000)


def test_bands_partition_traffic_and_match_direct_counts(data) -> None:
    grid, a = data
    rec = recommend_thresholds(grid, Routing())
    assert sum(b.items for b in rec.bands) == rec.n_total == a["c"].size
    assert sum(b.n for b in rec.bands) == rec.n_labeled == (~np.isnan(a["y"])).sum()
    assert sum(b.share for b in rec.bands) == pytest.approx(1.0)
    for b in rec.bands:
        if b.threshold is None:
            assert b.items == 0
            continue
        hi = np.inf if b.upper is None else b.upper
        inside = (a["c"] >= b.threshold) & (a["c"] < hi)
        labeled = inside & ~np.isnan(a["y"])
        assert b.items == inside.sum() and b.n == labeled.sum()
        assert b.correct == np.nansum(a["y"][labeled])


def test_band_accuracy_interval_is_wilson(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing(), confidence_level=0.9)
    for b in rec.bands:
        if b.n:
            lo, hi = proportion_confint(b.correct, b.n, alpha=0.1, method="wilson")
            assert (b.ci_low, b.ci_high) == (pytest.approx(lo), pytest.approx(hi))
            assert b.accuracy == pytest.approx(b.correct / b.n)


def test_bands_are_certified_top_down_with_bonferroni(data) -> None:
    grid, _ = data
    routing = Routing()
    rec = recommend_thresholds(grid, routing)
    d = routing.delta / 3
    auto = certify_threshold(grid, target=0.95, delta=d)
    assert rec.band("auto").threshold == auto.threshold is not None
    confirm = certify_threshold(grid, target=0.80, delta=d, upper=auto.threshold)
    assert rec.band("confirm").threshold == confirm.threshold is not None
    assert rec.band("confirm").upper == auto.threshold
    review = certify_threshold(grid, target=0.60, delta=d, upper=confirm.threshold)
    assert rec.band("review").threshold == review.threshold
    for name in ("auto", "confirm", "review"):
        assert rec.band(name).certified.delta == pytest.approx(d)
    t = rec.thresholds
    assert t["review"] <= t["confirm"] <= t["auto"]


def test_delta_is_split_only_over_the_bands_tested(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing(targets={"auto": 0.95}))
    assert rec.band("auto").certified.delta == pytest.approx(0.05)
    assert rec.band("confirm").threshold is None
    assert rec.band("confirm").reason == "no target configured for this band"
    assert rec.band("human").threshold == 0 and rec.band("human").upper == rec.thresholds["auto"]


def test_guarantee_in_words(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing(), population="labeled unshown items of model v2")
    auto, confirm = rec.band("auto"), rec.band("confirm")
    assert auto.guarantee == (
        f"With probability at least 95 %, items at or above {auto.threshold:.2f} are at least "
        f"95 % accurate (Learn-then-Test, fixed sequence with fallback; n = {auto.n:,} of the "
        f"{rec.n_labeled:,} labeled unshown items of model v2 fall in the band)"
    )
    # n is the band's own labeled items, not all of them
    assert 0 < auto.n < rec.n_labeled and auto.n == (grid["lo"] >= auto.threshold - 1e-9).pipe(
        lambda above: int(grid.loc[above, "n"].sum())
    )
    assert f"n = {confirm.n:,} of the {rec.n_labeled:,}" in confirm.guarantee
    assert f"items in [{confirm.threshold:.2f}, {auto.threshold:.2f}) are at least 80 %" in (
        confirm.guarantee
    )
    assert (
        "labeled items of model v2" in recommend_thresholds(grid, Routing()).band("auto").guarantee
    )


def test_current_config_and_workload(data) -> None:
    grid, a = data
    rec = recommend_thresholds(grid, Routing())
    c = a["c"]
    cur_auto = c >= 0.95
    assert rec.band("auto").current_items == cur_auto.sum()
    assert rec.band("confirm").current_share == pytest.approx(((c >= 0.8) & (c < 0.95)).mean())
    assert rec.days == 7
    auto = rec.band("auto")
    assert rec.human_workload_per_day == pytest.approx((c < auto.threshold).sum() / 7)
    assert rec.current_human_workload_per_day == pytest.approx((~cur_auto).sum() / 7)
    assert auto.change == f"0.95 → {auto.threshold:.2f}"


def test_too_few_labels_certify_nothing() -> None:
    _, c, y = population(9, 120)
    rec = recommend_thresholds(grid_counts(c, y), Routing(), min_labels=770)
    assert all(t is None for t in rec.thresholds.values())
    assert rec.band("auto").reason == "needs ≥ 770 labeled items; has 120"
    assert rec.band("human").items == 120


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_labels": -1}, ValueError, "min_labels must be a non-negative integer, got -1"),
        ({"confidence_level": 1.5}, ValueError, r"confidence_level must be in \(0, 1\)"),
        ({"current": {"fast": 0.9}}, ValueError, r"unknown band\(s\) \['fast'\]"),
    ],
)
def test_recommend_argument_errors(data, kwargs: dict, error: type, match: str) -> None:
    grid, _ = data
    with pytest.raises(error, match=match):
        recommend_thresholds(grid, Routing(), **kwargs)


def test_recommend_needs_a_routing(data) -> None:
    grid, _ = data
    with pytest.raises(TypeError, match=r"routing must be a trustramp\.config\.Routing"):
        recommend_thresholds(grid, {"auto": 0.95})


# ------------------------------------------------------------------------------------------
# Per group
# ------------------------------------------------------------------------------------------


def test_each_segment_is_its_own_recommendation(data) -> None:
    grid, _ = data
    routing = Routing()
    groups = recommend_by_group(grid, routing, by="segment", min_labels=770)
    assert sorted(groups.by_group) == sorted(SEGMENTS)
    for seg, rec in groups.by_group.items():
        alone = recommend_thresholds(grid[grid["segment"] == seg], routing, min_labels=770)
        assert rec.thresholds == alone.thresholds
        assert [b.items for b in rec.bands] == [b.items for b in alone.bands]
        assert rec.group == f"segment = {seg}"


def test_small_segment_gets_no_auto_band_and_never_borrows(data) -> None:
    grid, a = data
    global_rec = recommend_thresholds(grid, Routing())
    assert global_rec.thresholds["auto"] is not None
    groups = recommend_by_group(grid, Routing(), min_labels=770)
    ent = groups.by_group["enterprise"]
    has = int((~np.isnan(a["y"][a["segment"] == "enterprise"])).sum())
    assert has < 770
    assert ent.thresholds == {"auto": None, "confirm": None, "review": None}
    assert ent.band("auto").reason == f"needs ≥ 770 labeled items; has {has:,}"
    frame = groups.to_frame()
    assert frame.columns[0] == "segment" and set(frame["segment"]) == set(SEGMENTS)


def test_customers_are_reported_only_with_enough_labels(data) -> None:
    grid, a = data
    groups = recommend_by_group(grid, Routing(), by="customer_id", min_labels=700)
    labels = pd.Series(~np.isnan(a["y"])).groupby(a["customer_id"]).sum()
    assert set(groups.by_group) == set(labels[labels >= 700].index)
    assert groups.omitted == (labels < 700).sum() > 0


def test_group_current_thresholds_follow_overrides(data) -> None:
    grid, _ = data
    routing = Routing(segment_overrides={"smb": Override(auto=0.97)})
    groups = recommend_by_group(grid, routing, min_labels=200)
    assert groups.by_group["smb"].band("auto").current_threshold == 0.97
    assert groups.by_group["smb"].band("confirm").current_threshold == 0.80
    assert groups.by_group["internal"].band("auto").current_threshold == 0.95


def test_group_by_unknown_column(data) -> None:
    grid, _ = data
    with pytest.raises(ValueError, match="grid has no column 'region'"):
        recommend_by_group(grid, Routing(), by="region")


# ------------------------------------------------------------------------------------------
# Progression
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "stage"),
    [
        (0, Stage.CONSERVATIVE),
        (13, Stage.CONSERVATIVE),
        (14, Stage.MODERATE),
        (27, Stage.MODERATE),
        (28, Stage.OPTIMIZED),
        (400, Stage.OPTIMIZED),
    ],
)
def test_progression_stage_by_week(days: int, stage: Stage) -> None:
    start = dt.date(2026, 3, 2)
    assert progression_stage(start, start + dt.timedelta(days=days)) is stage
    as_dt = dt.datetime(2026, 3, 2, 23, 59) + dt.timedelta(days=days)
    assert progression_stage(start.isoformat(), as_dt) is stage


@pytest.mark.parametrize(
    ("start", "as_of", "match"),
    [
        (None, dt.date(2026, 1, 1), "phase_started is None"),
        (dt.date(2026, 1, 2), dt.date(2026, 1, 1), "is before phase_started"),
        ("soon", dt.date(2026, 1, 1), "phase_started must be a date, got 'soon'"),
    ],
)
def test_progression_stage_errors(start, as_of, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        progression_stage(start, as_of)


def test_conservative_stage_sends_everything_to_review(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing())
    staged = apply_progression(rec, "conservative")
    assert staged.stage is Stage.CONSERVATIVE
    assert staged.thresholds["auto"] is None and staged.thresholds["confirm"] is None
    assert staged.band("auto").items == staged.band("confirm").items == 0
    review = staged.band("review")
    assert review.certified.delta == pytest.approx(0.05)  # the only band tested
    assert review.threshold == certify_threshold(grid, target=0.6, delta=0.05).threshold
    assert staged.human_workload_per_day == pytest.approx(staged.n_total / 7)


def test_moderate_stage_auto_only_at_high_confidence(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing())
    assert rec.thresholds["auto"] < 0.95  # the data certify lower than the playbook default
    staged = apply_progression(rec, Stage.MODERATE)
    assert staged.thresholds["auto"] == 0.95
    assert staged.thresholds["confirm"] >= 0.80
    assert staged.band("auto").guarantee is not None  # 0.95 lies in the certified range
    assert "raised from the certified" in staged.band("auto").reason
    confirm = certify_threshold(grid, target=0.8, delta=0.05 / 3, upper=0.95)
    assert staged.thresholds["confirm"] == max(confirm.threshold, 0.80)
    high = apply_progression(rec, Stage.MODERATE, floors={"auto": 0.80})
    assert high.thresholds["auto"] == rec.thresholds["auto"]  # certified above the floor


def test_moderate_floor_above_the_band_above_empties_the_band(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing())
    staged = apply_progression(rec, "moderate", floors={"auto": 0.95, "confirm": 0.97})
    confirm = staged.band("confirm")
    assert confirm.threshold is None and confirm.items == 0 and confirm.guarantee is None
    assert "is above the band above: the band is empty" in confirm.reason
    assert "[0.95, 0.95) is empty, narrower than 0.05: not offered" in confirm.reason
    assert staged.band("review").upper == 0.95
    assert to_config_patch(staged)["routing"]["confirm"] is False  # not offered


def narrow_review_population(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Auto and confirm certify down to 0.84; review only the one cell [0.83, 0.84).

    Accurate (0.965) from 0.90 up, 0.83 in [0.84, 0.90), 0.68 in the cell [0.83, 0.84) (enough
    of them to sink confirm there, and to pass review's 60 %), never right below.
    """
    rng = np.random.default_rng(seed)
    parts = [(0.90, 1.0, 6000, 0.965), (0.84, 0.90, 4000, 0.83), (0.83, 0.84, 1200, 0.68)]
    parts.append((0.60, 0.83, 3000, 0.0))
    c = np.concatenate([rng.uniform(lo + 1e-4, hi - 1e-4, n) for lo, hi, n, _ in parts])
    acc = np.concatenate([np.full(n, a) for *_, n, a in parts])
    return c, (rng.random(c.size) < acc).astype(float)


def test_a_band_one_grid_step_wide_is_not_offered() -> None:
    c, y = narrow_review_population()
    grid = grid_counts(c, y)
    # the walk alone certifies review on the one cell below confirm
    confirm = certify_threshold(grid, target=0.8, delta=0.05 / 3, upper=0.9)
    alone = certify_threshold(grid, target=0.6, delta=0.05 / 3, upper=confirm.threshold)
    assert (confirm.threshold, alone.threshold) == (0.84, 0.83)
    rec = recommend_thresholds(grid, Routing())
    assert (rec.thresholds["auto"], rec.thresholds["confirm"]) == (0.9, 0.84)
    review = rec.band("review")
    assert review.threshold is None and review.items == 0 and review.guarantee is None
    assert "review: [0.83, 0.84) is 0.01 wide, narrower than 0.05: not offered" in review.reason
    assert review.reason in rec.notes
    human = rec.band("human")  # the cell's items went to the band below
    assert human.upper == 0.84 and human.items == int((c < 0.84).sum())
    assert to_config_patch(rec)["routing"]["review"] is False


def test_shares_are_what_the_patch_routes(data) -> None:
    """Every band's items and share, globally and per segment, are what the written config
    patch routes (``c >= auto`` to auto, and so on down, a ``false`` band skipped), counted on
    the raw items."""
    grid, a = data
    c, seg = a["c"], a["segment"]
    narrow_c, narrow_y = narrow_review_population()
    cases = [(recommend_thresholds(grid_counts(narrow_c, narrow_y), Routing()), narrow_c)]
    for stage in ("moderate", "optimized"):
        rec = apply_progression(recommend_thresholds(grid, Routing()), stage)
        groups = recommend_by_group(grid, Routing())
        groups = {g: apply_progression(r, stage) for g, r in groups.by_group.items()}
        cases.append((rec, c))
        cases += [(r, c[seg == g]) for g, r in groups.items()]
    for rec, conf in cases:
        written = to_config_patch(rec)["routing"]

        def at_or_above(band: str, conf: np.ndarray = conf, written: dict = written) -> np.ndarray:
            t = written[band]
            return np.zeros(conf.size, bool) if t is False else conf >= t

        auto = at_or_above("auto")
        confirm = ~auto & at_or_above("confirm")
        review = ~auto & ~confirm & at_or_above("review")
        routed = {"auto": auto, "confirm": confirm, "review": review}
        routed["human"] = ~(auto | confirm | review)
        for band, mask in routed.items():
            b = rec.band(band)
            assert b.items == mask.sum(), (rec.group, band)
            assert b.share == pytest.approx(mask.mean()), (rec.group, band)
            if b.threshold is not None and band != "human":
                upper = 1.0 if b.upper is None else b.upper
                assert b.items == ((conf >= b.threshold) & (conf < upper)).sum() or upper == 1.0


def test_patch_writes_a_closed_auto_band_as_false(data) -> None:
    from trustramp.evaluate.thresholds import Thresholds

    grid, _ = data
    rec = recommend_thresholds(grid, Routing())
    groups = recommend_by_group(grid, Routing(), min_labels=770)
    assert groups.by_group["enterprise"].thresholds["auto"] is None  # too few labels
    whatif = replay_policy(grid, rec.thresholds)
    text = Thresholds(rec, rec, groups, "optimized", whatif).to_yaml()
    assert "written as 1.0" not in text and "exactly 1.0" not in text
    patch = yaml.safe_load(text)
    assert patch["routing"]["segment_overrides"]["enterprise"]["auto"] is False
    assert "auto: false" in text
    merged = parse_config({"feature": "f", **patch})
    assert merged.routing.segment_overrides["enterprise"].auto is False
    assert merged.routing.thresholds(merged.routing.segment_overrides["enterprise"])["auto"] is None


def test_optimized_stage_keeps_the_certified_thresholds(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing())
    staged = apply_progression(rec, Stage.OPTIMIZED)
    assert staged.thresholds == rec.thresholds and staged.stage is Stage.OPTIMIZED
    with pytest.raises(ValueError, match="already has stage 'optimized'"):
        apply_progression(staged, Stage.MODERATE)


# ------------------------------------------------------------------------------------------
# Replay
# ------------------------------------------------------------------------------------------


def test_replay_hand_checked() -> None:
    c = [0.99, 0.96, 0.90, 0.85, 0.70, 0.50, 0.97, 0.81, 0.20]
    y = [1, 1, 0, 1, np.nan, 0, 0, 1, np.nan]
    day = ["d1"] * 6 + ["d2"] * 3
    grid = grid_counts(c, y, dims={"day": day})
    policy = {"auto": 0.95, "confirm": 0.8, "review": 0.6}
    r = replay_policy(grid, policy, current={"auto": 0.9, "confirm": 0.8, "review": 0.6})
    got = r.by_day[r.by_day["policy"] == "proposed"].set_index(["day", "band"])
    # d1: auto {0.99, 0.96}, confirm {0.90, 0.85}, review {0.70}, human {0.50}
    assert got.loc[("d1", "auto"), ["items", "n", "correct"]].tolist() == [2, 2, 2]
    assert got.loc[("d1", "confirm"), ["items", "n", "correct"]].tolist() == [2, 2, 1]
    assert got.loc[("d1", "review"), ["items", "n", "correct"]].tolist() == [1, 0, 0]
    assert np.isnan(got.loc[("d1", "review"), "accuracy"])
    assert got.loc[("d1", "human"), ["items", "n", "correct"]].tolist() == [1, 1, 0]
    # d2: auto {0.97}, confirm {0.81}, human {0.20}
    assert got.loc[("d2", "auto"), "items"] == 1 and got.loc[("d2", "human"), "items"] == 1
    load = r.workload.set_index(["policy", "day"])["human_workload"]
    assert load[("proposed", "d1")] == 4 and load[("proposed", "d2")] == 2
    assert load[("current", "d1")] == 3  # 0.90 is auto under the current policy
    diff = r.difference.set_index(["day", "band"])
    assert diff.loc[("d1", "auto"), "difference"] == -1
    assert diff.loc[("d1", "human_workload"), "difference"] == 1
    summary = r.summary.set_index(["policy", "band"])
    assert summary.loc[("proposed", "auto"), "items_per_day"] == 1.5
    assert summary.loc[("proposed", "auto"), "accuracy"] == pytest.approx(2 / 3)


def test_replay_items_sum_to_total(data) -> None:
    grid, a = data
    r = replay_policy(grid, {"auto": 0.92, "confirm": 0.8, "review": 0.6})
    per_day = r.by_day.groupby("day")["items"].sum()
    np.testing.assert_array_equal(per_day.to_numpy(), np.bincount(a["day"]))
    assert r.difference is None
    wilson = proportion_confint(r.by_day["correct"], r.by_day["n"], alpha=0.05, method="wilson")
    np.testing.assert_allclose(r.by_day["ci_low"], wilson[0])


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        ({"auto": 0.925}, r"policy\['auto'\]=0.925 is not on the 0.01 grid"),
        ({"auto": 0.8, "confirm": 0.9}, "must keep the bands ordered"),
        ({"fast": 0.9}, r"unknown band\(s\) \['fast'\]"),
        ({"auto": 1.2}, r"must be a threshold in \[0, 1\]"),
    ],
)
def test_replay_policy_errors(data, policy: dict, match: str) -> None:
    grid, _ = data
    with pytest.raises(ValueError, match=match):
        replay_policy(grid, policy)


def test_replay_needs_days() -> None:
    with pytest.raises(ValueError, match="needs a 'day' column"):
        replay_policy(grid_counts([0.5], [1]), {"auto": 0.9})


EMPTY_BY_DAY = grid_counts([], [], dims={"day": []})


def test_replay_of_no_traffic_is_empty_not_an_error() -> None:
    """Issue 15: a window without predictions used to divide by its zero days."""
    r = replay_policy(EMPTY_BY_DAY, {"auto": 0.9, "confirm": 0.8}, current={"auto": 0.95})
    assert r.by_day.empty and r.workload.empty
    assert r.difference is not None and r.difference.empty
    assert list(r.difference.columns) == ["day", "band", "proposed", "current", "difference"]
    assert len(r.summary) == 8  # every band of both policies, with nothing in it
    assert (r.summary["items"] == 0).all() and (r.summary["n"] == 0).all()
    assert r.summary[["share", "items_per_day", "accuracy"]].isna().all().all()


@pytest.mark.parametrize("min_labels", [0, 200])
def test_recommendations_on_no_items_are_empty_not_an_error(min_labels: int) -> None:
    from trustramp.evaluate.thresholds import Thresholds

    empty = grid_counts([], [], dims={"segment": []})
    rec = recommend_thresholds(empty, Routing(), min_labels=min_labels, days=3)
    assert rec.thresholds == dict.fromkeys(("auto", "confirm", "review"))
    assert rec.n_labeled == rec.n_total == 0 and rec.human_workload_per_day == 0
    assert all(b.items == 0 and np.isnan(b.share) for b in rec.bands)
    staged = apply_progression(rec, "moderate")
    assert staged.thresholds == rec.thresholds
    groups = recommend_by_group(empty, Routing(), min_labels=min_labels)
    assert groups.by_group == {}
    whatif = replay_policy(EMPTY_BY_DAY, {"auto": 0.9}, current={"auto": 0.95})
    th = Thresholds(staged, rec, groups, "moderate", whatif)
    text = th.to_yaml()
    assert "share    n/a" in text
    assert parse_config(to_config_patch(staged)).routing.auto is False


# ------------------------------------------------------------------------------------------
# Config patch
# ------------------------------------------------------------------------------------------


def test_config_patch_merges_into_a_valid_config(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing())
    groups = recommend_by_group(grid, Routing(), min_labels=770)
    patch = to_config_patch(rec, groups=groups)
    config = parse_config(patch)
    assert config.routing.auto == rec.thresholds["auto"]
    assert config.routing.confirm == rec.thresholds["confirm"]
    ent = config.routing.segment_overrides["enterprise"]
    assert (ent.auto, ent.confirm, ent.review) == (False, False, False)  # nothing certified
    smb = config.routing.segment_overrides["smb"]
    assert smb.auto == groups.by_group["smb"].thresholds["auto"]


def test_config_patch_writes_a_closed_band_as_false(data) -> None:
    grid, _ = data
    staged = apply_progression(recommend_thresholds(grid, Routing()), "conservative")
    routing = to_config_patch(staged)["routing"]
    assert routing["auto"] is False and routing["confirm"] is False
    assert routing["review"] == staged.thresholds["review"]
    parse_config({"routing": routing})


def _route(conf: np.ndarray, routing: dict) -> np.ndarray:
    """The config's routing, written out: each item to the highest offered band whose threshold
    it reaches (``false``: the band is not offered), below every offered band to a human."""
    out = np.full(conf.size, "human", dtype=object)
    for band in ("review", "confirm", "auto"):
        if routing[band] is not False:
            out[conf >= routing[band]] = band
    return out


def test_a_closed_band_round_trips_recommend_patch_validate_replay(tmp_path) -> None:
    """Recommend (conservative stage: auto and confirm closed, globally and per segment) ->
    the patch -> merged into a config -> ``trustramp config validate`` -> replay and routing:
    no item goes to auto, also not the 500 items at confidence exactly 1.0 (which a 1.0 auto
    threshold would have auto-processed)."""
    from click.testing import CliRunner

    from trustramp.cli import main
    from trustramp.config import load_config
    from trustramp.evaluate.thresholds import Thresholds

    _, a = frame_from_arrays(3, 20_000)
    c, y = a["c"].copy(), a["y"].copy()
    c[::40] = 1.0
    grid = grid_counts(c, y, dims={"day": a["day"], "segment": a["segment"]})
    stage = "conservative"
    rec = apply_progression(recommend_thresholds(grid, Routing()), stage)
    groups = recommend_by_group(grid, Routing())
    groups = dataclasses.replace(
        groups, by_group={g: apply_progression(r, stage) for g, r in groups.by_group.items()}
    )
    text = Thresholds(rec, rec, groups, stage, replay_policy(grid, rec.thresholds)).to_yaml()
    patch = yaml.safe_load(text)
    assert patch["routing"]["auto"] is False and patch["routing"]["confirm"] is False
    base = {"feature": "f", "segments": SEGMENTS, "routing": {"auto": 0.9, "delta": 0.1}}
    merged = {**base, "routing": {**base["routing"], **patch["routing"]}}
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(merged))
    r = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert r.exit_code == 0 and "ok" in r.output, r.output
    routing = load_config(path).routing
    assert routing.auto is False and routing.delta == 0.1
    assert (c == 1.0).sum() == 500
    for name, override in [(None, None), *routing.segment_overrides.items()]:
        sub = grid if name is None else grid[grid["segment"] == name]
        conf = c if name is None else c[a["segment"] == name]
        policy = routing.thresholds(override)
        assert policy["auto"] is None and policy["confirm"] is None
        replay = replay_policy(sub, policy, current=policy)
        auto = replay.summary[replay.summary["band"] == "auto"]
        assert (auto["items"] == 0).all()
        written = {
            b: getattr(routing, b)
            if override is None or getattr(override, b) is None
            else getattr(override, b)
            for b in ("auto", "confirm", "review")
        }
        routed = _route(conf, written)
        assert (routed == "auto").sum() == 0
        review = replay.summary[
            (replay.summary["policy"] == "proposed") & (replay.summary["band"] == "review")
        ]
        assert int(review["items"].iloc[0]) == (routed == "review").sum()
    # the old encoding (a closed auto band written as 1.0) auto-processed the items at 1.0
    assert (_route(c, {**routing.model_dump(), "auto": 1.0}) == "auto").sum() == 500


def test_config_patch_rejects_other_groupings(data) -> None:
    grid, _ = data
    rec = recommend_thresholds(grid, Routing())
    days = recommend_by_group(grid, Routing(), by="day")
    with pytest.raises(ValueError, match="groups by 'day' cannot go into the config"):
        to_config_patch(rec, groups=days)


def test_core_imports_stay_light() -> None:
    code = (
        "import sys, trustramp.decide.thresholds, trustramp.decide.recalibration;"
        "bad = [m for m in ('sklearn', 'duckdb', 'prefect', 'great_expectations', 'mapie')"
        " if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------
# Customers as clusters
# ------------------------------------------------------------------------------------------


def test_clusters_of_single_items_change_nothing(data) -> None:
    _, a = data
    labeled = ~np.isnan(a["y"])
    c, y = a["c"][labeled], a["y"][labeled]
    alone = grid_counts(c, y, dims={"customer_id": np.arange(c.size).astype(str)})
    plain = certify_threshold(grid_counts(c, y), target=0.9, delta=0.05)
    clustered = certify_threshold(grid_counts(c, y), target=0.9, delta=0.05, clusters=alone)
    assert clustered.threshold == plain.threshold and clustered.design_effect == 1.0
    assert (clustered.curve["design_effect"] == 1.0).all()
    np.testing.assert_array_equal(clustered.curve["p_value"], plain.curve["p_value"])


def test_clustered_tests_run_on_the_gates_effective_counts(data) -> None:
    from trustramp.metrics.intervals import effective_counts

    grid, a = data
    by_customer = grid.groupby(["customer_id", "lo"], as_index=False)[["n", "correct"]].sum()
    cert = certify_threshold(grid, target=0.8, delta=0.05, clusters=by_customer, upper=0.95)
    plain = certify_threshold(grid, target=0.8, delta=0.05, upper=0.95)
    curve = cert.curve.set_index(cert.curve["threshold"].round(2))
    labeled = ~np.isnan(a["y"])
    for t in (0.9, 0.8, 0.6, 0.3):
        band = labeled & (a["c"] >= t) & (a["c"] < 0.95)
        frame = pd.DataFrame({"cust": a["customer_id"][band], "y": a["y"][band]})
        per = frame.groupby("cust")["y"].agg(["sum", "count"])
        ref = effective_counts(per["sum"].to_numpy(), per["count"].to_numpy(), confidence=0.95)
        row = curve.loc[t]
        assert (row["n_effective"], row["correct_effective"]) == (ref.n, ref.k)
        assert row["design_effect"] == pytest.approx(ref.design_effect, rel=1e-12)
        p = stats.binomtest(int(ref.k), int(ref.n), 0.8, alternative="greater").pvalue
        assert row["p_value"] == pytest.approx(p, rel=1e-9)
    assert cert.threshold is None or plain.threshold <= cert.threshold  # never more permissive
    if cert.threshold is not None:
        assert f"design effect {cert.design_effect:.2f}" in cert.reason


def test_recommendations_with_clusters(data) -> None:
    grid, _ = data
    by_customer = grid.groupby(["customer_id", "segment", "lo"], as_index=False)[
        ["n", "correct"]
    ].sum()
    rec = recommend_thresholds(grid, Routing(), clusters=by_customer)
    auto = rec.band("auto")
    assert auto.guarantee is not None and "customers as clusters, design effect" in auto.guarantee
    assert auto.threshold >= recommend_thresholds(grid, Routing()).thresholds["auto"]
    groups = recommend_by_group(grid, Routing(), clusters=by_customer)
    smb = groups.by_group["smb"].band("auto").certified
    assert smb.design_effect is not None or smb.threshold is None
    with pytest.raises(ValueError, match="clusters needs a 'segment' column"):
        recommend_by_group(grid, Routing(), clusters=by_customer.drop(columns="segment"))
    # by customer, a group is one customer: clusters do not apply
    one = recommend_by_group(grid, Routing(), by="customer_id", clusters=by_customer)
    plain = recommend_by_group(grid, Routing(), by="customer_id")
    assert {g: r.thresholds for g, r in one.by_group.items()} == {
        g: r.thresholds for g, r in plain.by_group.items()
    }


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("by", ["segment", "customer_id"])
def test_groups_staged_directly_equal_the_progression_of_their_recommendations(
    data, stage: Stage, by: str
) -> None:
    """`recommend_by_group(stage=...)` plans each group once for the stage; it must give what
    `apply_progression` gives on each group's unstaged recommendation (the reference path),
    with overrides as floors and customers as clusters."""
    grid, _ = data
    by_customer = grid.groupby(["customer_id", "segment", "lo"], as_index=False)[
        ["n", "correct"]
    ].sum()
    routing = Routing(
        segment_overrides={"smb": Override(auto=0.97, confirm=0.85)},
        customer_overrides={"c1": Override(auto=0.99)},
    )
    kw = {"by": by, "min_labels": 300, "clusters": by_customer if by == "segment" else None}
    direct = recommend_by_group(grid, routing, stage=stage, **kw)
    unstaged = recommend_by_group(grid, routing, **kw)
    assert direct.omitted == unstaged.omitted and len(direct.by_group) >= 3
    for g, rec in unstaged.by_group.items():
        ref, got = apply_progression(rec, stage), direct.by_group[g]
        assert got.stage is stage and got.notes == ref.notes
        pd.testing.assert_frame_equal(got.to_frame(), ref.to_frame())
        assert [b.reason for b in got.bands] == [b.reason for b in ref.bands]


def test_recommend_on_an_empty_window_is_total() -> None:
    """Issue 15: evaluate's thresholds step on a window without predictions (the CLI refuses
    such a window earlier; the step itself must not divide by its zero days or items)."""
    from trustramp.evaluate.thresholds import recommend
    from trustramp.evaluate.windows import gate_population, windows_for
    from trustramp.store.aggregates import CELL_MEASURES, Aggregates

    cfg = parse_config({"feature": "f", "segments": ["smb"], "phase_started": "2026-11-01"})
    win = windows_for(cfg, dt.date(2026, 11, 20))
    dims = ["model_version", "segment", "mode", "day", "ece_bin", "grid_bin"]
    cells = pd.DataFrame(columns=[*dims, *CELL_MEASURES])
    customers = pd.DataFrame(
        columns=["model_version", "customer_id", "segment", "shown", "day", *CELL_MEASURES]
    )
    empty = pd.DataFrame()
    aggs = Aggregates("f", win.first, win.as_of, 15, 0.01, cells, customers, empty, empty, empty)
    pop = gate_population(aggs, win, cfg)
    grid = pd.DataFrame(columns=["customer_id", "grid_bin", "labeled", "correct", "n"])
    th = recommend(aggs, win, pop, cfg, customer_grid=grid)
    assert th.recommended.thresholds == dict.fromkeys(("auto", "confirm", "review"))
    assert th.recommended.n_total == 0 and th.whatif.by_day.empty
    text = th.to_yaml()
    assert "no model version" in text and "share    n/a" in text
    assert yaml.safe_load(text)["routing"]["auto"] is False
