"""Bias audit: per-segment values against fairlearn, tests against scipy, Holm against statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from scipy import stats
from sklearn.metrics import accuracy_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from trustramp.metrics import (
    BiasAudit,
    Flag,
    benjamini_hochberg,
    bias_audit,
    disparity,
    fairness_rates,
    holm,
    segment_tests,
)

SEGMENTS = ["internal", "smb", "mid_market", "enterprise"]


def _items(seed: int, accuracy: dict[str, float], sizes: dict[str, int]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seg = np.concatenate([[s] * sizes[s] for s in sizes])
    correct = rng.random(seg.size) < np.array([accuracy[s] for s in seg])
    return pd.DataFrame({"segment": seg, "correct": correct.astype(int)})


def _per_segment(items: pd.DataFrame) -> pd.DataFrame:
    return items.groupby("segment", sort=False)["correct"].agg(k="sum", n="size").reset_index()


# --- Holm ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, 12) ** 2
    p[3] = p[4]  # a tie
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], atol=1e-15)


def test_holm_ignores_nan_and_handles_edge_sizes() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03])
    out = holm(p)
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="holm")[1])
    assert holm([]).size == 0
    assert holm([0.2]).tolist() == [0.2]
    with pytest.raises(ValueError, match="p_values must be in"):
        holm([0.5, 1.5])


# --- segment tests --------------------------------------------------------------------------------


def test_chi_square_route_matches_scipy() -> None:
    k, n = np.array([450, 900, 700, 300]), np.array([500, 1000, 800, 380])
    t = segment_tests(k, n)
    ref = stats.chi2_contingency(np.column_stack([k, n - k]), correction=False)
    assert t.method == "chi2"
    assert t.statistic == pytest.approx(ref.statistic)
    assert t.p_value == pytest.approx(ref.pvalue)
    for i in range(k.size):
        rest_k, rest_n = k.sum() - k[i], n.sum() - n[i]
        table = [[k[i], n[i] - k[i]], [rest_k, rest_n - rest_k]]
        ref_i = stats.chi2_contingency(table, correction=False).pvalue
        assert t.segment_p_values[i] == pytest.approx(ref_i)
        assert t.segment_methods[i] == "chi2"


def test_fisher_route_when_an_expected_count_is_below_five() -> None:
    # Errors are rare: expected error counts per segment are below 5.
    k, n = np.array([99, 60, 38, 30]), np.array([100, 60, 40, 35])
    t = segment_tests(k, n)
    assert t.method == "fisher"
    raw = []
    for i in range(k.size):
        rest_k, rest_n = k.sum() - k[i], n.sum() - n[i]
        raw.append(stats.fisher_exact([[k[i], n[i] - k[i]], [rest_k, rest_n - rest_k]]).pvalue)
        assert t.segment_p_values[i] == pytest.approx(raw[i])
        assert t.segment_methods[i] == "fisher"
    assert t.p_value == pytest.approx(min(multipletests(raw, method="holm")[1]))
    assert math.isnan(t.statistic)


@pytest.mark.parametrize(
    ("k", "n"),
    [([100, 200, 50], [100, 200, 50]), ([0, 0, 0], [100, 200, 50])],  # no errors / no successes
)
def test_segments_with_a_constant_outcome_are_homogeneous(k: list[int], n: list[int]) -> None:
    t = segment_tests(k, n)
    assert t.method == "fisher"
    assert t.p_value == 1.0
    np.testing.assert_array_equal(t.segment_p_values, 1.0)


def test_empty_and_lonely_segments() -> None:
    t = segment_tests([90, 0, 80], [100, 0, 100])
    assert math.isnan(t.segment_p_values[1]) and t.segment_methods[1] == "none"
    assert not math.isnan(t.segment_p_values[0])
    alone = segment_tests([90, 0], [100, 0])
    assert alone.method == "none" and math.isnan(alone.p_value)


# --- disparity ------------------------------------------------------------------------------------


def test_disparity_matches_statsmodels_newcombe() -> None:
    k, n = np.array([80, 190, 0]), np.array([100, 200, 10])
    d = disparity(k, n, reference_k=450, reference_n=500, confidence=0.9)
    low, high = confint_proportions_2indep(
        k, n, np.full(3, 450), np.full(3, 500), method="newcomb", compare="diff", alpha=0.1
    )
    np.testing.assert_allclose(d.difference, k / n - 0.9)
    np.testing.assert_allclose(d.ci_low, low, atol=1e-12)
    np.testing.assert_allclose(d.ci_high, high, atol=1e-12)
    np.testing.assert_allclose(d.ratio, (k / n) / 0.9)
    assert d.to_frame().shape == (3, 6)
    assert math.isnan(disparity(1, 2, reference_k=0, reference_n=5).ratio)


# --- the audit ------------------------------------------------------------------------------------


ACCURACY = {"internal": 0.95, "smb": 0.92, "mid_market": 0.91, "enterprise": 0.85}
SIZES = {"internal": 150, "smb": 2000, "mid_market": 1500, "enterprise": 1200}


@pytest.fixture
def audit_items() -> pd.DataFrame:
    return _items(7, ACCURACY, SIZES)


def test_audit_values_match_fairlearn_metric_frame(audit_items: pd.DataFrame) -> None:
    y = audit_items["correct"].to_numpy()
    mf = MetricFrame(
        metrics=accuracy_score,
        y_true=y,
        y_pred=np.ones_like(y),
        sensitive_features=audit_items["segment"],
    )
    audit = bias_audit(_per_segment(audit_items), min_n=200)
    table = audit.table.set_index("segment")
    for seg, value in mf.by_group.items():
        assert table.loc[seg, "value"] == pytest.approx(value)
        mask = audit_items["segment"] == seg
        assert table.loc[seg, "value"] == pytest.approx(
            accuracy_score(y[mask], np.ones(mask.sum()))
        )
    assert audit.overall.value == pytest.approx(mf.overall)
    assert table["diff_overall"].abs().max() == pytest.approx(mf.difference(method="to_overall"))
    assert (table["value"].min() / table["value"].max()) == pytest.approx(
        mf.ratio(method="between_groups")
    )


def test_audit_intervals_match_references(audit_items: pd.DataFrame) -> None:
    frame = _per_segment(audit_items)
    audit = bias_audit(frame, min_n=200, confidence=0.9)
    t = audit.table
    k, n = t["k"].to_numpy(), t["n"].to_numpy()
    low, high = proportion_confint(k, n, alpha=0.1, method="wilson")
    np.testing.assert_allclose(t["ci_low"], low, atol=1e-12)
    np.testing.assert_allclose(t["ci_high"], high, atol=1e-12)
    # Difference to overall = (1 - w) * (segment - rest); its interval scales the same way.
    w = n / n.sum()
    rest_low, rest_high = confint_proportions_2indep(
        k, n, k.sum() - k, n.sum() - n, method="newcomb", compare="diff", alpha=0.1
    )
    np.testing.assert_allclose(t["diff_overall"], k / n - k.sum() / n.sum(), atol=1e-12)
    np.testing.assert_allclose(t["diff_overall_low"], (1 - w) * rest_low, atol=1e-12)
    np.testing.assert_allclose(t["diff_overall_high"], (1 - w) * rest_high, atol=1e-12)
    # Difference to the best sufficient segment (internal is too small to be "best").
    assert audit.best == "smb"
    best = t.index[t["segment"] == "smb"][0]
    b_low, b_high = confint_proportions_2indep(
        k,
        n,
        np.full(4, k[best]),
        np.full(4, n[best]),
        method="newcomb",
        compare="diff",
        alpha=0.1,
    )
    others = t.index != best
    np.testing.assert_allclose(t.loc[others, "diff_best_low"], b_low[others], atol=1e-12)
    np.testing.assert_allclose(t.loc[others, "diff_best_high"], b_high[others], atol=1e-12)
    assert t.loc[best, "diff_best"] == 0 and math.isnan(t.loc[best, "diff_best_low"])


def test_audit_flags(audit_items: pd.DataFrame) -> None:
    audit = bias_audit(_per_segment(audit_items), min_n=200)
    assert isinstance(audit, BiasAudit)
    flags = dict(zip(audit.table["segment"], audit.table["flag"], strict=True))
    assert flags == {
        "internal": "insufficient",
        "smb": "ok",
        "mid_market": "ok",
        "enterprise": "worse",
    }
    assert audit.flagged == ["enterprise"]
    reasons = dict(zip(audit.table["segment"], audit.table["reason"], strict=True))
    assert reasons["internal"].startswith("insufficient data: 150 items")
    assert reasons["enterprise"].startswith("worse than the other segments")
    # Holm runs over the sufficient segments only.
    sufficient = audit.table["flag"] != "insufficient"
    np.testing.assert_allclose(
        audit.table.loc[sufficient, "p_adjusted"],
        multipletests(audit.table.loc[sufficient, "p_value"], method="holm")[1],
    )
    assert audit.table.loc[~sufficient, "p_adjusted"].isna().all()


def test_small_segment_is_insufficient_even_when_perfect_or_terrible() -> None:
    frame = pd.DataFrame(
        {
            "segment": ["a", "b", "perfect", "terrible"],
            "k": [900, 880, 50, 5],
            "n": [1000, 1000, 50, 50],
        }
    )
    audit = bias_audit(frame, min_n=100)
    flags = dict(zip(audit.table["segment"], audit.table["flag"], strict=True))
    assert flags["perfect"] == Flag.INSUFFICIENT.value
    assert flags["terrible"] == Flag.INSUFFICIENT.value  # not "ok", not a verdict either way
    assert audit.best == "a"


def test_error_rate_audit_with_a_zero_error_segment() -> None:
    # Error rate: lower is better. One segment has no errors at all.
    frame = pd.DataFrame(
        {"segment": ["smb", "enterprise", "mid_market"], "k": [0, 40, 12], "n": [400, 500, 600]}
    )
    audit = bias_audit(frame, min_n=200, higher_is_better=False)
    t = audit.table.set_index("segment")
    assert audit.best == "smb"
    assert t.loc["smb", "value"] == 0.0 and t.loc["smb", "ci_low"] == 0.0
    assert t.loc["enterprise", "flag"] == "worse"
    assert t.loc["smb", "flag"] == "ok"
    assert t.loc["smb", "reason"].startswith("better than the other segments")
    assert math.isnan(t.loc["enterprise", "ratio_best"])  # best rate is 0


def test_audit_sums_rows_of_the_same_segment() -> None:
    daily = pd.DataFrame(
        {
            "segment": ["a", "a", "b", "b"],
            "day": [1, 2, 1, 2],
            "k": [90, 85, 70, 75],
            "n": [100, 100, 100, 100],
        }
    )
    audit = bias_audit(daily, min_n=50)
    assert audit.table["n"].tolist() == [200, 200]
    assert audit.table["k"].tolist() == [175, 145]


def test_single_segment_is_compared_with_nothing() -> None:
    audit = bias_audit(pd.DataFrame({"segment": ["only"], "k": [90], "n": [100]}), min_n=10)
    row = audit.table.iloc[0]
    assert row["flag"] == "ok" and row["reason"] == "no other segment to compare with"
    assert row["diff_overall"] == 0 and row["diff_overall_low"] == 0


def test_audit_false_flag_rate_under_equal_segments() -> None:
    # Four equal segments: Holm keeps the chance of any "worse" flag at or below alpha.
    rng = np.random.default_rng(99)
    sims, any_flag = 300, 0
    n = np.array([400, 600, 800, 1000])
    for _ in range(sims):
        k = rng.binomial(n, 0.9)
        audit = bias_audit(pd.DataFrame({"segment": SEGMENTS, "k": k, "n": n}), min_n=100)
        any_flag += bool(audit.flagged)
    assert any_flag / sims <= 0.05 + 0.03


@pytest.mark.parametrize(
    ("frame", "kwargs", "error", "match"),
    [
        (pd.DataFrame({"seg": ["a"], "k": [1], "n": [2]}), {}, ValueError, r"no column\(s\)"),
        (
            pd.DataFrame({"segment": ["a"], "k": [3], "n": [2]}),
            {},
            ValueError,
            r"k must not exceed n",
        ),
        (pd.DataFrame({"segment": [None], "k": [1], "n": [2]}), {}, ValueError, "missing values"),
        ({"segment": ["a"]}, {}, TypeError, "must be a pandas DataFrame"),
        (pd.DataFrame({"segment": ["a"], "k": [1], "n": [2]}), {"min_n": 0}, ValueError, "min_n"),
        (pd.DataFrame({"segment": ["a"], "k": [1], "n": [2]}), {"alpha": 2}, ValueError, "alpha"),
    ],
)
def test_audit_errors(frame, kwargs, error, match: str) -> None:
    with pytest.raises(error, match=match):
        bias_audit(frame, **kwargs)


# --- Benjamini–Hochberg, two segments, minimum effect ------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.3, 15) ** 2
    p[2] = p[7]  # a tie
    p[5] = np.nan
    out = benjamini_hochberg(p)
    finite = ~np.isnan(p)
    assert np.isnan(out[5])
    ref = multipletests(p[finite], method="fdr_bh")[1]
    np.testing.assert_allclose(out[finite], ref, atol=1e-15)
    assert benjamini_hochberg([]).size == 0


def test_audit_reports_bh_beside_holm() -> None:
    k, n = np.array([450, 900, 700, 300]), np.array([500, 1000, 800, 380])
    audit = bias_audit(pd.DataFrame({"segment": SEGMENTS, "k": k, "n": n}), min_n=100)
    raw = audit.table["p_value"].to_numpy()
    np.testing.assert_allclose(audit.table["p_bh"], multipletests(raw, method="fdr_bh")[1])
    np.testing.assert_allclose(audit.table["p_adjusted"], multipletests(raw, method="holm")[1])


def test_two_segments_are_one_comparison_fisher_not_doubled() -> None:
    # A against the rest and B against the rest are the same 2x2 table: Holm over the two
    # doubled the p-value (0.14 instead of Fisher's 0.07).
    k, n = np.array([199, 193]), np.array([200, 200])
    table = [[k[0], n[0] - k[0]], [k[1], n[1] - k[1]]]
    ref = stats.fisher_exact(table, alternative="two-sided").pvalue
    t = segment_tests(k, n)
    assert t.method == "fisher"
    assert t.p_value == pytest.approx(ref, rel=1e-12)
    audit = bias_audit(pd.DataFrame({"segment": ["a", "b"], "k": k, "n": n}), min_n=100)
    np.testing.assert_allclose(audit.table["p_adjusted"], [ref, ref], rtol=1e-12)
    np.testing.assert_allclose(audit.table["p_bh"], [ref, ref], rtol=1e-12)


def test_two_segments_chi_square_not_doubled() -> None:
    k, n = np.array([900, 870]), np.array([1000, 1000])
    ref = stats.chi2_contingency(np.column_stack([k, n - k]), correction=False).pvalue
    audit = bias_audit(pd.DataFrame({"segment": ["a", "b"], "k": k, "n": n}), min_n=100)
    np.testing.assert_allclose(audit.table["p_adjusted"], [ref, ref], rtol=1e-12)


def test_minimum_effect_before_worse() -> None:
    # 100k items per segment, a 0.7-point gap: significant (p ~ 1e-6) but below a 2-point
    # minimum effect.
    n = np.array([100_000, 100_000, 100_000])
    k = np.array([92_000, 92_000, 91_300])
    frame = pd.DataFrame({"segment": ["a", "b", "c"], "k": k, "n": n})
    no_floor = bias_audit(frame, min_n=100)
    assert no_floor.flagged == ["c"]
    audit = bias_audit(frame, min_n=100, min_effect=0.02)
    assert audit.flagged == []
    row = audit.table.set_index("segment").loc["c"]
    assert row["p_adjusted"] < 1e-4
    assert "minimum effect" in row["reason"]
    # A real gap (3 points) is still flagged with the floor.
    big = frame.assign(k=[92_000, 92_000, 89_000])
    assert bias_audit(big, min_n=100, min_effect=0.02).flagged == ["c"]
    with pytest.raises(ValueError, match="min_effect"):
        bias_audit(frame, min_effect=1.5)


def test_min_effect_false_flag_rate_simulation() -> None:
    # Three segments with a true 1-point gap (below the 2-point floor) on 50k items each: how
    # often is the low segment flagged worse? Without the floor nearly always; with it, the
    # flag needs a sampled gap of 2 points (5 SE away): essentially never.
    rng = np.random.default_rng(7)
    sims = 150
    n = np.array([50_000, 50_000, 50_000])
    flagged_floor = flagged_raw = 0
    for _ in range(sims):
        k = rng.binomial(n, [0.92, 0.92, 0.91])
        frame = pd.DataFrame({"segment": ["a", "b", "c"], "k": k, "n": n})
        flagged_raw += "c" in bias_audit(frame, min_n=100).flagged
        flagged_floor += "c" in bias_audit(frame, min_n=100, min_effect=0.02).flagged
    print(
        f"flagged with a 1-point true gap: no floor {flagged_raw / sims:.3f}, "
        f"min_effect 0.02 {flagged_floor / sims:.3f}"
    )
    assert flagged_raw / sims > 0.9
    assert flagged_floor == 0


# --- fairness rates against fairlearn ---------------------------------------------------------


def _labelled_items(seed: int, labels: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = 6000
    seg = rng.choice(SEGMENTS, size=size, p=[0.1, 0.3, 0.3, 0.3])
    human = rng.choice(labels, size=size)
    keep = rng.random(size) < np.where(seg == "enterprise", 0.75, 0.9)
    pred = np.where(keep, human, rng.choice(labels, size=size))
    return pd.DataFrame({"segment": seg, "human_label": human, "predicted_label": pred})


def _confusion(items: pd.DataFrame) -> pd.DataFrame:
    return (
        items.groupby(["segment", "predicted_label", "human_label"])
        .size()
        .rename("n")
        .reset_index()
    )


@pytest.mark.parametrize(
    ("labels", "positive"),
    [(["approve", "reject"], "approve"), (["a", "b", "c"], None), (["a", "b", "c"], "c")],
)
def test_fairness_rates_match_fairlearn(labels: list[str], positive: str | None) -> None:
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    items = _labelled_items(3, labels)
    result = fairness_rates(_confusion(items), positive_label=positive)
    audited = labels if positive is None else [positive]
    assert sorted(result.summary["label"]) == sorted(audited)
    for label in audited:
        y = (items["human_label"] == label).astype(int).to_numpy()
        p = (items["predicted_label"] == label).astype(int).to_numpy()
        seg = items["segment"].to_numpy()
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
            },
            y_true=y,
            y_pred=p,
            sensitive_features=seg,
        )
        mine = result.by_group[result.by_group["label"] == label].set_index("segment")
        for metric in ("selection_rate", "tpr", "fpr"):
            ref = frame.by_group[metric]
            np.testing.assert_allclose(mine.loc[ref.index, metric], ref.to_numpy(), rtol=1e-12)
        row = result.summary.set_index("label").loc[label]
        kw = {"sensitive_features": seg}
        assert row["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(y, p, **kw), rel=1e-12
        )
        assert row["demographic_parity_ratio"] == pytest.approx(
            demographic_parity_ratio(y, p, **kw), rel=1e-12
        )
        assert row["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(y, p, **kw), rel=1e-12
        )
        assert row["equalized_odds_ratio"] == pytest.approx(
            equalized_odds_ratio(y, p, **kw), rel=1e-12
        )


def test_fairness_rates_errors_and_undefined_rates() -> None:
    with pytest.raises(ValueError, match=r"no column\(s\)"):
        fairness_rates(pd.DataFrame({"segment": ["a"]}))
    # A segment without any positive: its TPR is undefined and left out of the gaps.
    f = pd.DataFrame(
        {
            "segment": ["a", "a", "b"],
            "predicted_label": ["y", "n", "n"],
            "human_label": ["y", "n", "n"],
            "n": [10, 10, 20],
        }
    )
    r = fairness_rates(f, positive_label="y").by_group.set_index("segment")
    assert math.isnan(r.loc["b", "tpr"]) and r.loc["b", "fpr"] == 0.0


def test_fairness_rows_in_the_metrics_table_match_fairlearn_on_raw_rows(demo_lake: dict) -> None:
    """metrics.parquet's fairness rows (from stage 1's confusion counts) against fairlearn on the
    raw rows of the certified population, one-vs-rest and with a configured positive label."""
    from conftest import demo_gate, raw_gate_rows
    from fairlearn.metrics import equalized_odds_difference, selection_rate

    from trustramp.evaluate.gate_metrics import gate_metric_rows

    cfg = demo_lake["config"]
    win, aggs, pop = demo_gate(demo_lake)
    gate = raw_gate_rows(demo_lake, win, pop.version)
    gate = gate[gate["predicted_label"].notna() & gate["human_label"].notna()]
    labels = sorted(set(gate["human_label"]) | set(gate["predicted_label"]))
    label = labels[0]
    y = (gate["human_label"] == label).astype(int).to_numpy()
    p = (gate["predicted_label"] == label).astype(int).to_numpy()
    seg = gate["segment"].to_numpy()
    frame = MetricFrame(metrics=selection_rate, y_true=y, y_pred=p, sensitive_features=seg)
    eod = equalized_odds_difference(y, p, sensitive_features=seg)
    stats_ = cfg.statistics.model_copy(update={"positive_label": None})
    for config, suffix in (
        (cfg.model_copy(update={"statistics": stats_}), f"[{label}]"),
        (
            cfg.model_copy(
                update={"statistics": cfg.statistics.model_copy(update={"positive_label": label})}
            ),
            "",
        ),
    ):
        rows = gate_metric_rows(aggs, win, pop, config)
        sel = rows[rows["metric"] == f"selection_rate{suffix}"].set_index("segment")["value"]
        np.testing.assert_allclose(sel[frame.by_group.index], frame.by_group.to_numpy(), rtol=1e-12)
        (got,) = rows.loc[rows["metric"] == f"equalized_odds_difference{suffix}", "value"]
        assert got == pytest.approx(eod, rel=1e-12)
    assert {f"selection_rate[{x}]" for x in labels} <= set(
        gate_metric_rows(aggs, win, pop, cfg.model_copy(update={"statistics": stats_}))["metric"]
    )
