"""The threshold guarantee holds in simulation (SPEC 6: "the threshold guarantee holds").

Each population draws confidences uniformly and correctness with a known accuracy function
``acc(c)``, so the true accuracy of the items in any confidence range is an integral, computed
here with ``scipy.integrate.quad``. Over many seeded draws, a certified threshold whose true
accuracy misses its target must be rare: at most ``δ + 3 * sqrt(δ(1 - δ) / draws)`` of draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate

from trustramp.config import Routing
from trustramp.decide.thresholds import certify_threshold, grid_counts, recommend_thresholds

DELTA = 0.05
DRAWS = 1000
N_ITEMS = 2000
LOW = 0.5  # confidences ~ U(LOW, 1)

Accuracy = Callable[[np.ndarray], np.ndarray]

POPULATIONS: dict[str, tuple[Accuracy, float]] = {
    "calibrated": (lambda c: c, 0.90),
    "over-confident": (lambda c: c**2, 0.90),
    "under-confident": (lambda c: np.sqrt(c), 0.90),
}
TOO_RISKY: dict[str, tuple[Accuracy, float]] = {
    "far below": (lambda c: 0.9 * c, 0.95),
    "just below": (lambda c: np.full_like(c, 0.94), 0.95),
}


def allowed(delta: float, draws: int) -> float:
    return delta + 3 * math.sqrt(delta * (1 - delta) / draws)


def true_accuracy(acc: Accuracy, lo: float, hi: float = 1.0, low: float = LOW) -> float:
    """Accuracy of the population's items with confidence in [lo, hi)."""
    a, b = max(lo, low), hi
    if b <= a:
        return math.nan
    value, _ = integrate.quad(lambda x: float(acc(np.array(x))), a, b)
    return value / (b - a)


def draws(acc: Accuracy, seed: int, n_draws: int = DRAWS, n: int = N_ITEMS, low: float = LOW):
    rng = np.random.default_rng(seed)
    c = rng.uniform(low, 1.0, (n_draws, n))
    y = rng.random((n_draws, n)) < acc(c)
    return c, y


def naive_threshold(grid, target: float) -> float | None:
    """The lowest threshold whose items' empirical accuracy reaches the target."""
    n = np.cumsum(grid["n"].to_numpy()[::-1])[::-1]
    k = np.cumsum(grid["correct"].to_numpy()[::-1])[::-1]
    ok = np.flatnonzero((n > 0) & (k >= target * n))
    return None if ok.size == 0 else float(grid["lo"].to_numpy()[ok.min()])


@pytest.mark.parametrize("name", list(POPULATIONS))
def test_guarantee_holds_and_the_naive_rule_does_not(name: str) -> None:
    acc, target = POPULATIONS[name]
    truth = {round(i / 100, 2): true_accuracy(acc, i / 100) for i in range(100)}
    t_star = min(t for t, a in truth.items() if a >= target)
    c, y = draws(acc, seed=sum(map(ord, name)))
    ltt_miss = naive_miss = found = 0
    chosen = []
    for i in range(DRAWS):
        grid = grid_counts(c[i], y[i])
        cert = certify_threshold(grid, target=target, delta=DELTA)
        if cert.threshold is not None:
            found += 1
            chosen.append(cert.threshold)
            ltt_miss += truth[round(cert.threshold, 2)] < target
        naive = naive_threshold(grid, target)
        naive_miss += naive is not None and truth[round(naive, 2)] < target
    assert ltt_miss / DRAWS <= allowed(DELTA, DRAWS)
    assert naive_miss / DRAWS >= 0.3
    assert naive_miss >= 5 * max(ltt_miss, 1)
    # and it is not vacuous: a threshold in almost every draw, near the true boundary
    assert found / DRAWS >= 0.9
    assert t_star <= np.median(chosen) <= t_star + 0.06


@pytest.mark.parametrize("name", list(TOO_RISKY))
def test_too_risky_population_gets_no_auto_band(name: str) -> None:
    acc, target = TOO_RISKY[name]
    c, y = draws(acc, seed=sum(map(ord, name)))
    got = sum(
        certify_threshold(grid_counts(c[i], y[i]), target=target, delta=DELTA).threshold is not None
        for i in range(DRAWS)
    )
    # every hypothesis is a true null, so any band at all is a false statement
    assert got / DRAWS <= allowed(DELTA, DRAWS)
    if name == "far below":
        assert got == 0


@pytest.mark.parametrize(
    ("name", "acc", "n", "low"),
    [("calibrated", lambda c: c, 5000, 0.2), ("under-confident", np.sqrt, 3000, 0.3)],
)
def test_all_bands_hold_together(name: str, acc: Accuracy, n: int, low: float) -> None:
    """recommend_thresholds: auto, confirm and review, each on the items it routes, jointly."""
    n_draws = 300
    routing = Routing()
    c, y = draws(acc, seed=sum(map(ord, name)), n_draws=n_draws, n=n, low=low)
    misses = 0
    certified = dict.fromkeys(("auto", "confirm", "review"), 0)
    for i in range(n_draws):
        rec = recommend_thresholds(grid_counts(c[i], y[i]), routing)
        wrong = False
        for band in certified:
            b = rec.band(band)
            if b.guarantee is None:
                continue
            certified[band] += 1
            true = true_accuracy(acc, b.threshold, 1.0 if b.upper is None else b.upper, low)
            wrong |= true < b.target
        misses += wrong
    assert misses / n_draws <= allowed(DELTA, n_draws)
    # not vacuous: auto and confirm are certified in most draws, review in some
    assert certified["auto"] >= n_draws / 2 and certified["confirm"] >= n_draws / 2
    assert certified["review"] > 0


def clustered_grids(draws: int, seed: int, *, customers: int = 6, per_customer: int = 600):
    """Grid frames by customer: accuracy 0.85 everywhere, shifted per customer by U(-0.15, 0.15).

    The customers are a sample of a population whose mean shift is 0, so every threshold's
    true accuracy is 0.85: any certified 0.87 band is a false statement.
    """
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        shift = rng.uniform(-0.15, 0.15, customers)
        cust = np.repeat(np.arange(customers), per_customer)
        c = rng.uniform(0.5, 1.0, cust.size)
        y = (rng.random(cust.size) < 0.85 + shift[cust]).astype(float)
        yield grid_counts(c, y, dims={"customer_id": np.char.add("c", cust.astype(str))})


def test_customers_as_clusters_keep_the_guarantee_where_pooled_counts_do_not() -> None:
    """Items of one customer share its accuracy: pooled as independent items they overstate
    the evidence (the gates' design effect, applied to every threshold's band)."""
    n_draws, target = 300, 0.87
    naive = clustered = 0
    for by_customer in clustered_grids(n_draws, seed=31):
        grid = by_customer.drop(columns="customer_id")
        naive += certify_threshold(grid, target=target, delta=DELTA).threshold is not None
        cert = certify_threshold(grid, target=target, delta=DELTA, clusters=by_customer)
        clustered += cert.threshold is not None
    print(
        f"\nclustered population 0.85 < target 0.87: false certifications, customers as "
        f"clusters {clustered / n_draws:.3f}, items pooled {naive / n_draws:.3f} (δ = {DELTA})"
    )
    assert clustered / n_draws <= allowed(DELTA, n_draws)
    assert naive / n_draws > allowed(DELTA, n_draws)  # pooled, the guarantee breaks
