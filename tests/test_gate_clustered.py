"""Cluster-aware gates (issue 16): the customers' design effect, gates on the deflated counts, the
false-GO rates that buys with 30 heterogeneous customers (one look, and nightly looks on the
sliding gate window), and a configured model_version that is not in the data.

Run with ``-s`` to see the measured rates next to the nominal ones (docs/STATISTICS.md quotes them).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats

from trustramp.cli import main
from trustramp.decide.eprocess import log_e_value
from trustramp.decide.gates import Outcome, effective_trials, judge_proportion
from trustramp.errors import ConfigError
from trustramp.metrics.intervals import (
    clopper_pearson_bound,
    deflate_counts,
    design_effect,
    effective_counts,
)

ALPHA, TARGET, MIN_SAMPLES = 0.05, 0.90, 200


# --------------------------------------------------------------------------- the design effect


def cr3_reference(k: np.ndarray, n: np.ndarray, confidence: float) -> float:
    """The design effect from item-level data: the CR3 cluster-robust variance of an
    intercept-only regression, ``(X'X)^-1 sum X_g' (I - H_gg)^-1 e_g e_g' (I - H_gg)^-T X_g
    (X'X)^-1``, with matrices, over the binomial variance, times (t/z)^2."""
    y = np.concatenate(
        [np.r_[np.ones(int(a)), np.zeros(int(b - a))] for a, b in zip(k, n, strict=True)]
    )
    group = np.repeat(np.arange(len(n)), n.astype(int))
    x = np.ones((len(y), 1))
    bread = np.linalg.inv(x.T @ x)
    beta = bread @ x.T @ y
    e = y - x @ beta
    meat = np.zeros((1, 1))
    for g in range(len(n)):
        xg = x[group == g]
        h = xg @ bread @ xg.T
        s = xg.T @ np.linalg.solve(np.eye(len(xg)) - h, e[group == g])
        meat += np.outer(s, s)
    v = float((bread @ meat @ bread)[0, 0])
    p, size, clusters = float(beta[0]), len(y), len(n)
    factor = (stats.t.ppf(confidence, clusters - 1) / stats.norm.ppf(confidence)) ** 2
    return max(1.0, v / (p * (1 - p) / size) * factor)


def test_design_effect_matches_an_item_level_cr3_reference() -> None:
    rng = np.random.default_rng(16)
    for _ in range(40):
        clusters = int(rng.integers(2, 25))
        n = rng.integers(1, 40, size=clusters).astype(float)
        k = rng.binomial(n.astype(int), rng.beta(8, 2, size=clusters)).astype(float)
        if k.sum() in (0, n.sum()) or n.max() <= 1:
            continue
        conf = float(rng.choice([0.9, 0.95, 0.99]))
        assert design_effect(k, n, confidence=conf) == pytest.approx(
            cr3_reference(k, n, conf), rel=1e-9
        )


def test_design_effect_edges_and_shapes() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(500) < 0.9).astype(float)
    # independent items (clusters of one, or no customer id) are not deflated
    assert design_effect(y, np.ones(500)) == 1.0
    assert design_effect([], [], unclustered=(y.sum(), 500)) == 1.0
    # no spread to measure, no items, a single customer
    assert design_effect([10, 20], [10, 20]) == 1.0
    assert design_effect([0, 0], [0, 0]) == 1.0
    assert design_effect([8, 0], [10, 0]) == math.inf
    # items without a customer id count as clusters of their own
    k, n = np.array([30.0, 45.0, 12.0]), np.array([40.0, 50.0, 20.0])
    with_loose = design_effect(k, n, unclustered=(7, 9))
    spelled = design_effect(np.r_[k, np.ones(7), np.zeros(2)], np.r_[n, np.ones(9)])
    assert with_loose == pytest.approx(spelled, rel=1e-12)
    # problems along leading axes, clusters along the last
    ks = rng.binomial(50, 0.85, size=(4, 6)).astype(float)
    ns = np.full((4, 6), 50.0)
    assert np.allclose(design_effect(ks, ns), [design_effect(r, ns[0]) for r in ks])
    with pytest.raises(ValueError, match="k_by_cluster must not exceed"):
        design_effect([5], [4])


def test_deflated_counts_round_against_the_claim_and_agree_with_the_gate() -> None:
    rng = np.random.default_rng(9)
    k = rng.integers(0, 5_000, size=300)
    n = k + rng.integers(0, 5_000, size=300)
    deff = np.where(rng.random(300) < 0.2, 1.0, rng.uniform(1.0, 30.0, size=300))
    for side, lower in (("lower", True), ("upper", False)):
        ke, ne = deflate_counts(k, n, deff, side=side)
        scalar = [
            effective_trials(int(a), int(b), float(d), lower=lower)
            for a, b, d in zip(k, n, deff, strict=True)
        ]
        assert ke.tolist() == [float(a) for a, _ in scalar]
        assert ne.tolist() == [float(b) for _, b in scalar]
        rate = np.divide(k, n, out=np.zeros(300), where=n > 0)
        est = np.divide(ke, ne, out=rate.copy(), where=ne > 0)
        assert np.all(est <= rate + 1e-12) if lower else np.all(est >= rate - 1e-12)
    assert np.array_equal(deflate_counts(k, n, 1.0)[0], k)  # deff 1: the counts themselves
    assert effective_counts([90, 80, 85], [100, 100, 100]) == (
        *deflate_counts(255, 300, design_effect([90, 80, 85], [100, 100, 100])),
        design_effect([90, 80, 85], [100, 100, 100]),
    )


# --------------------------------------------------------------------------- the gate rule


def gate_rule(k: np.ndarray, n: np.ndarray, deff: np.ndarray) -> np.ndarray:
    """`judge_proportion`'s PASS for ">= TARGET", vectorized (checked against it below)."""
    ke, ne = deflate_counts(k, n, deff)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound_ok = (ne > 0) & (clopper_pearson_bound(ke, ne, confidence=1 - ALPHA) >= TARGET)
    log_e = np.full(np.shape(k), -np.inf)
    log_e[bound_ok] = log_e_value(ke[bound_ok], ne[bound_ok], TARGET)
    return (n >= MIN_SAMPLES) & bound_ok & (log_e >= math.log(1 / ALPHA))


def test_the_vectorized_rule_is_judge_proportion_with_a_design_effect() -> None:
    rng = np.random.default_rng(4)
    n = rng.integers(150, 8_000, size=300)
    k = rng.binomial(n, rng.uniform(0.88, 0.97, size=300))
    deff = np.where(rng.random(300) < 0.2, 1.0, rng.uniform(1.0, 12.0, size=300))
    deff[:3] = math.inf
    vector = gate_rule(k, n, deff)
    for i in range(300):
        j = judge_proportion(
            int(k[i]),
            int(n[i]),
            threshold=TARGET,
            comparator=">=",
            confidence_level=1 - ALPHA,
            min_samples=MIN_SAMPLES,
            design_effect=float(deff[i]),
        )
        assert (j.outcome is Outcome.PASS) == bool(vector[i]), (k[i], n[i], deff[i])
    assert vector.any() and not vector.all()


def test_a_design_effect_widens_the_bound_and_one_customer_never_passes() -> None:
    kw = dict(threshold=TARGET, comparator=">=", confidence_level=0.95, min_samples=200)
    plain = judge_proportion(2_850, 3_000, **kw)
    clustered = judge_proportion(2_850, 3_000, design_effect=6.0, **kw)
    assert plain.outcome is Outcome.PASS and clustered.outcome is Outcome.PASS
    assert clustered.ci_low < plain.ci_low and clustered.statistic < plain.statistic
    assert (clustered.n, clustered.n_effective) == (3_000, 500)
    assert clustered.ci_low == pytest.approx(stats.beta.ppf(0.05, 475, 26), rel=1e-12)
    one = judge_proportion(2_990, 3_000, design_effect=math.inf, **kw)
    assert one.outcome is Outcome.INSUFFICIENT and one.n_effective == 0
    # an error rate that must stay low rounds its events up
    err = judge_proportion(
        10,
        1_000,
        threshold=0.05,
        comparator="<=",
        confidence_level=0.95,
        min_samples=200,
        design_effect=3.0,
    )
    assert err.ci_high == pytest.approx(stats.beta.ppf(0.95, 5, 329), rel=1e-12)  # 4 of 333


# --------------------------------------------------------------------------- simulations

CUSTOMERS, REPS = 30, 4_000


def heterogeneous(rng: np.random.Generator, mean: float, shape: tuple[int, ...], conc: float):
    """Per-customer accuracies Beta(mean * conc, (1 - mean) * conc) (sd 4.2 points at conc 50)."""
    return rng.beta(mean * conc, (1 - mean) * conc, size=shape)


def single_look(
    mean: float, conc: float, seed: int, customers: int = CUSTOMERS
) -> dict[str, float]:
    """One gate look on `customers` customers with 20..400 labeled items each: the share of runs
    in which the bound clears TARGET (as threshold certification uses it) and the gate passes,
    pooled counts (naive) against deflated ones."""
    rng = np.random.default_rng(seed)
    n = rng.integers(20, 400, size=(REPS, customers))
    k = rng.binomial(n, heterogeneous(rng, mean, (REPS, customers), conc))
    big_k, big_n = k.sum(axis=1), n.sum(axis=1)
    deff = design_effect(k, n, confidence=1 - ALPHA)
    ke, ne = deflate_counts(big_k, big_n, deff)
    return {
        "bound_naive": float(
            (clopper_pearson_bound(big_k, big_n, confidence=0.95) >= TARGET).mean()
        ),
        "bound_clustered": float((clopper_pearson_bound(ke, ne, confidence=0.95) >= TARGET).mean()),
        "gate_naive": float(gate_rule(big_k, big_n, np.ones(REPS)).mean()),
        "gate_clustered": float(gate_rule(big_k, big_n, deff).mean()),
        "median_deff": float(np.median(deff)),
    }


def three_sigma(reps: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / reps)


@pytest.mark.parametrize(
    "customers, conc, power_factor",
    [(30, 50.0, 5), (30, 200.0, 5), (5, 50.0, 2)],  # few customers: conservative, little power
)
def test_one_look_with_heterogeneous_customers_keeps_false_go_at_nominal(
    customers: int, conc: float, power_factor: float
) -> None:
    null = single_look(TARGET, conc, seed=int(conc) + customers, customers=customers)
    better = single_look(TARGET + 0.02, conc, seed=int(conc) + customers + 1, customers=customers)
    print(
        f"\n{customers} customers, Beta conc {conc:g}, {REPS} runs, nominal {ALPHA:.0%} "
        f"(limit {three_sigma(REPS):.2%}); median design effect {null['median_deff']:.1f}\n"
        f"  false GO at accuracy = target: bound naive {null['bound_naive']:.2%}, clustered "
        f"{null['bound_clustered']:.2%}; gate naive {null['gate_naive']:.2%}, clustered "
        f"{null['gate_clustered']:.2%}\n"
        f"  power at target + 2 points:     bound naive {better['bound_naive']:.2%}, clustered "
        f"{better['bound_clustered']:.2%}; gate naive {better['gate_naive']:.2%}, clustered "
        f"{better['gate_clustered']:.2%}"
    )
    limit = three_sigma(REPS)
    assert null["bound_clustered"] <= limit and null["gate_clustered"] <= limit
    assert null["bound_naive"] > limit  # the pooled bound, as before: far above nominal
    # power: a model 2 points better is shown so far more often than a model at the target
    assert better["bound_clustered"] > power_factor * null["bound_clustered"]
    assert better["gate_clustered"] > power_factor * null["gate_clustered"]


NIGHTS, WINDOW, SLIDE_REPS = 90, 14, 1_500


def nightly_looks(conc: float, seed: int) -> dict[str, tuple[float, float]]:
    """Share of runs with a GO on any of the first 30 / all 90 nightly looks at the gate window,
    clustered and naive: 30 customers of fixed accuracy (Beta around TARGET), 2..30 labeled items
    a day each (Poisson), the window growing from the phase start to WINDOW days, then sliding
    (as windows_for does)."""
    rng = np.random.default_rng(seed)
    shape = (SLIDE_REPS, NIGHTS, CUSTOMERS)
    n = rng.poisson(rng.uniform(2, 30, size=(SLIDE_REPS, 1, CUSTOMERS)), shape)
    k = rng.binomial(n, heterogeneous(rng, TARGET, (SLIDE_REPS, 1, CUSTOMERS), conc))
    zero = np.zeros((SLIDE_REPS, 1, CUSTOMERS))
    ck, cn = np.concatenate([zero, k.cumsum(1)], 1), np.concatenate([zero, n.cumsum(1)], 1)
    night = np.arange(NIGHTS)
    start = np.maximum(0, night - WINDOW + 1)
    wk, wn = ck[:, night + 1] - ck[:, start], cn[:, night + 1] - cn[:, start]
    out = {}
    for name, deff in (
        ("clustered", design_effect(wk, wn, confidence=1 - ALPHA)),
        ("naive", np.ones(wk.shape[:2])),
    ):
        go = gate_rule(wk.sum(-1), wn.sum(-1), deff)
        out[name] = (float(go[:, :30].any(axis=1).mean()), float(go.any(axis=1).mean()))
    return out


def test_nightly_looks_on_the_sliding_window_keep_false_go_at_nominal() -> None:
    rates = nightly_looks(50.0, seed=90)
    (clustered30, clustered90), (naive30, naive90) = rates["clustered"], rates["naive"]
    limit = three_sigma(SLIDE_REPS)
    print(
        f"\nnightly looks, {CUSTOMERS} customers (Beta conc 50), {WINDOW}-day sliding window, "
        f"{SLIDE_REPS} runs, nominal {ALPHA:.0%} (limit {limit:.2%}): any GO in 30 looks "
        f"clustered {clustered30:.2%} (naive {naive30:.2%}), in 90 looks clustered "
        f"{clustered90:.2%} (naive {naive90:.2%})"
    )
    assert clustered30 <= limit and clustered90 <= limit
    assert naive90 > limit


# --------------------------------------------------------------------------- the evidence


def test_build_evidence_counts_customers_per_segment() -> None:
    from trustramp.decide.evidence import Count
    from trustramp.evaluate.evidence import _clustered

    customers = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", None, None, "d"],
            "segment": ["smb", "smb", "smb", "smb", "smb", "ent", "ent"],
            "correct": [40, 45, 60, 95, 1, 30, 20],
            "labeled": [50, 50, 100, 100, 1, 40, 40],
        }
    )
    counts = {"all": Count(291, 381), "smb": Count(241, 301), "ent": Count(50, 80)}
    out = _clustered(counts, customers, "correct", "labeled", 0.95)
    assert out["all"] == Count(
        291, 381, design_effect([85, 60, 95, 20], [100, 100, 100, 40], unclustered=(31, 41)), 4
    )
    smb = design_effect([85, 60, 95], [100, 100, 100], unclustered=(1, 1))
    assert out["smb"].design_effect == pytest.approx(smb) and out["smb"].clusters == 3
    assert out["ent"].design_effect == pytest.approx(
        design_effect([20], [40], unclustered=(30, 40))
    )
    assert out["all"].design_effect > 1.0


# --------------------------------------------------------------------------- the version check


def _aggs(versions: dict[str, dt.date]):
    from trustramp.store.aggregates import Aggregates

    cells = pd.DataFrame({"model_version": list(versions), "day": list(versions.values())})
    empty = pd.DataFrame()
    day = dt.date(2026, 11, 30)
    return Aggregates("f", day, day, 10, 0.01, cells, empty, empty, empty, empty)


def test_choose_versions_refuses_a_configured_version_absent_from_the_data() -> None:
    from trustramp.config import parse_config
    from trustramp.evaluate.windows import choose_versions, windows_for

    aggs = _aggs({"v1": dt.date(2026, 11, 1), "v2": dt.date(2026, 11, 10)})
    win = windows_for(parse_config({"feature": "f"}), dt.date(2026, 11, 30))
    assert choose_versions(aggs, win, None) == ("v2", "v1")
    assert choose_versions(aggs, win, "v1") == ("v1", None)
    with pytest.raises(ConfigError, match=r"model_version 'v3' has no predictions.*'v1', 'v2'"):
        choose_versions(aggs, win, "v3")


def test_cli_evaluate_with_an_unknown_model_version_exits_2(
    demo_lake: dict, tmp_path: Path
) -> None:
    cfg = demo_lake["config"].model_dump(mode="json")
    cfg["model_version"] = "v9"
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--home",
            str(demo_lake["home"]),
            "--reports",
            str(tmp_path / "reports"),
            "--config",
            str(path),
            "--as-of",
            demo_lake["manifest"].end.isoformat(),
        ],
    )
    assert r.exit_code == 2, r.output
    assert "model_version 'v9' has no predictions" in r.output
    assert "'v1', 'v2'" in r.output and "Traceback" not in r.output


def test_evaluate_judges_accuracy_on_the_customers_design_effect(
    demo_lake: dict, tmp_path: Path
) -> None:
    """End to end on the demo lake: the evidence's design effect is the one computed from the raw
    rows of the gate population grouped by customer (an oracle outside stage 1)."""
    from conftest import raw_joined

    from trustramp.pipeline import evaluate

    cfg = demo_lake["config"]
    res = evaluate(
        home=demo_lake["home"],
        reports=tmp_path,
        as_of=demo_lake["manifest"].end,
        config=cfg,
    )
    ev = res.evidence
    raw = raw_joined(demo_lake["home"], cfg.feature)
    day = pd.to_datetime(raw["predicted_at"], utc=True).dt.date
    pop = raw[
        (raw["model_version"] == ev.model_version)
        & (raw["mode"] == "shadow")
        & (day >= ev.window_start)
        & (day <= ev.window_end)
        & raw["human_label"].notna()
        & ~raw["status"].isin(["error", "timeout"])
        & raw["confidence"].notna()
    ].assign(correct=lambda f: (f["human_label"] == f["predicted_label"]).astype(int))
    for seg in ["all", *cfg.segments]:
        rows = pop if seg == "all" else pop[pop["segment"] == seg]
        known = (
            rows[rows["customer_id"].notna()].groupby("customer_id")["correct"].agg(["sum", "size"])
        )
        loose = rows[rows["customer_id"].isna()]
        count = ev.accuracy[seg]
        assert (count.k, count.n) == (int(rows["correct"].sum()), len(rows))
        expected = design_effect(
            known["sum"].to_numpy(float),
            known["size"].to_numpy(float),
            confidence=cfg.statistics.confidence_level,
            unclustered=(float(loose["correct"].sum()), float(len(loose))),
        )
        assert count.design_effect == pytest.approx(expected, rel=1e-9)
        assert count.clusters == len(known)
    crit = [c for c in res.verdict.criteria if c.metric == "accuracy" and c.segment == "all"]
    assert crit and crit[0].design_effect == pytest.approx(ev.accuracy["all"].design_effect)


def test_design_effects_do_not_depend_on_row_order() -> None:
    """A nightly run (cached days) and a full run hand build_evidence the same customer rows in
    different orders; the design effects, and so the verdicts, must be bit-identical."""
    from trustramp.decide.evidence import Count
    from trustramp.evaluate.evidence import _clustered

    rng = np.random.default_rng(11)
    size = 20_000
    rows = pd.DataFrame(
        {
            "segment": rng.choice(["smb", "enterprise", "internal"], size),
            "customer_id": rng.integers(0, 700, size).astype(str),
            "k": rng.integers(0, 30, size),
            "n": rng.integers(30, 40, size),
        }
    )
    rows.loc[rows.index[:50], "customer_id"] = None  # items without a customer
    counts = {s: Count(1, 2) for s in ("all", "smb", "enterprise", "internal")}
    first = _clustered(counts, rows, "k", "n", 0.95)
    for seed in range(5):
        again = _clustered(counts, rows.sample(frac=1, random_state=seed), "k", "n", 0.95)
        assert {s: c.design_effect for s, c in again.items()} == {
            s: c.design_effect for s, c in first.items()
        }
