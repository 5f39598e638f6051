"""The generator proper: one block of items becomes predictions, decisions and feedback.

Every item gets a true label and one prediction per active version (confidence, correctness,
status, latency, mode by phase and customer, routed band); a human decides most items, mostly
within two days, accepting a shown wrong suggestion 30 % of the time; decisions are bucketed by
the UTC day they are made. The planted effects come in through `effects`' hooks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from trustramp.demo._common import _DAY_US, _SHOWN, _fnv1a, _Plan, _rng
from trustramp.demo.effects import _RATES, _bad_day_latency, _is_bad_day, _planted_chance, _Stats
from trustramp.demo.logs import _feedback_rows
from trustramp.demo.tables import _fixed_width_ids

# --- the generative model's numbers (documented in the package docstring) ------------------
_SPREAD_BETA = (3.5, 1.0)  # the rest: c_min + (0.95 - c_min) * Beta(a, b)
_SHARED_DIFFICULTY = 0.6  # chance that versions share the item's uniform: paired correctness
_LATENCY_MEDIAN_MS = 800.0
_LATENCY_SIGMA = 0.45
_TIMEOUT_MS = 30_000.0
_DECIDED = 0.93
_CORRECTED = 0.03
_ACCEPT_WRONG = 0.30
_EDITED = 0.2  # share of changed suggestions logged as `edited` rather than `overridden`
_N_REVIEWERS = 40


def _simulate_block(
    plan: _Plan, day: int, block: int, items: np.ndarray, arrival_us: np.ndarray, stats: _Stats
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Predictions, decisions and feedback for one block of items (one day)."""
    rng = _rng(plan.seed, 2, day, block)
    n = len(items)
    cust = (
        np.searchsorted(plan.cust_cdf, rng.random(n), side="right")
        .clip(max=len(plan.cust_cdf) - 1)
        .astype(np.int32)
    )
    seg = plan.cust_segment[cust]
    truth = _draw_labels(plan, rng.random(n))
    shared_u = rng.random(n)
    _, item_matrix = _fixed_width_ids(f"i-{plan.tag}-", items, plan.width)
    holdout = _fnv1a(item_matrix) % np.uint64(10_000) < np.uint64(plan.holdout_units)
    bad = _is_bad_day(plan, day)
    columns: list[dict[str, np.ndarray]] = []
    for v in range(len(plan.versions)):
        if plan.version_start[v] > day:
            continue
        pred = _predict(plan, rng, v, day, bad, cust, seg, truth, shared_u, holdout, arrival_us)
        pred["pnum"] = items * len(plan.versions) + v
        pred["inum"] = items
        columns.append(pred)
        stats.add(v, day, pred, seg == plan.weak)
    live = columns[0]
    if plan.class_probabilities:
        cp_rng = _rng(plan.seed, 3, day, block)
        for pred in columns:
            pred["probs"] = _class_probabilities(plan, cp_rng, pred["label"], pred["conf"], truth)
    decisions = _decide(plan, rng, items, arrival_us, truth, live)
    feedback = _feedback_rows(plan, rng, items, arrival_us, cust, seg, truth, live)
    merged = {k: np.concatenate([c[k] for c in columns]) for k in columns[0] if k != "correct"}
    order = np.lexsort((merged["pnum"], merged["t"]))
    return {k: a[order] for k, a in merged.items()}, decisions, feedback


def _draw_labels(plan: _Plan, u: np.ndarray) -> np.ndarray:
    return (
        np.searchsorted(plan.prior_cdf, u, side="right")
        .clip(max=len(plan.labels) - 1)
        .astype(np.int16)
    )


def _other_labels(plan: _Plan, rng: np.random.Generator, exclude: np.ndarray) -> np.ndarray:
    """A label different from `exclude`, drawn from the prior without it."""
    out = _draw_labels(plan, rng.random(len(exclude)))
    for _ in range(20):
        clash = out == exclude
        if not clash.any():
            break
        out[clash] = _draw_labels(plan, rng.random(int(clash.sum())))
    clash = out == exclude
    out[clash] = (exclude[clash] + 1) % len(plan.labels)
    return out


def _predict(
    plan: _Plan,
    rng: np.random.Generator,
    v: int,
    day: int,
    bad: bool,
    cust: np.ndarray,
    seg: np.ndarray,
    truth: np.ndarray,
    shared_u: np.ndarray,
    holdout: np.ndarray,
    arrival_us: np.ndarray,
) -> dict[str, np.ndarray]:
    """One version's predictions for the block's items."""
    n = len(truth)
    review, confirm, auto = plan.band_units
    auto = min(auto, 10_000)  # the confidence model's top band edge, also when auto is closed
    high = rng.random(n) < plan.version_high[v]
    conf_min = plan.conf_min / 10_000
    c = np.where(
        high,
        1 - (1 - auto / 10_000) * rng.beta(0.8, 2.0, n),
        conf_min + (auto / 10_000 - conf_min) * rng.beta(*_SPREAD_BETA, n),
    )
    conf = np.clip(np.round(c * 10_000), plan.conf_min, 10_000).astype(np.int32)
    chance = _planted_chance(plan, conf / 10_000, conf, seg, confirm, auto)
    u = np.where(rng.random(n) < _SHARED_DIFFICULTY, shared_u, rng.random(n))
    correct = u < chance
    label = np.where(correct, truth, _other_labels(plan, rng, truth)).astype(np.int16)

    error, timeout, fallback = _RATES[bad]
    s = rng.random(n)
    status = np.select(
        [s < error, s < error + timeout, s < error + timeout + fallback], [1, 2, 3], 0
    ).astype(np.int8)
    failed = (status == 1) | (status == 2)
    latency = rng.lognormal(np.log(_LATENCY_MEDIAN_MS * (1 + 0.08 * v)), _LATENCY_SIGMA, n)
    if bad:
        latency = _bad_day_latency(rng, latency)
    latency = np.where(status == 3, latency * 0.4, latency)
    latency = np.where(status == 1, rng.lognormal(np.log(150.0), 0.5, n), latency)
    latency = np.where(status == 2, _TIMEOUT_MS, latency)
    latency = np.round(np.clip(latency, 5.0, 60_000.0), 1)

    if v == 0 and day >= plan.live_from:
        mode = np.where(plan.cust_confirm[cust], 2, 1).astype(np.int8)
        mode[holdout] = 0
    else:
        mode = np.zeros(n, dtype=np.int8)
    band = np.select([conf >= auto, conf >= confirm, conf >= review], [0, 1, 2], 3)
    routed = np.where(_SHOWN[mode], np.where(failed, 3, band), -1).astype(np.int8)
    label[failed] = -1
    conf[failed] = -1
    queue_ms = rng.integers(50, 2_000, n) if v > 0 else np.zeros(n, dtype=np.int64)
    t = arrival_us + (np.round(latency).astype(np.int64) + queue_ms) * 1000
    return {
        "t": t,
        "ver": np.full(n, v, dtype=np.int8),
        "cust": cust,
        "seg": seg,
        "mode": mode,
        "label": label,
        "conf": conf,
        "latency": latency,
        "status": status,
        "routed": routed,
        "correct": correct & ~failed,
    }


def _class_probabilities(
    plan: _Plan, rng: np.random.Generator, label: np.ndarray, conf: np.ndarray, truth: np.ndarray
) -> np.ndarray:
    """(n, K) probabilities in units of 1e-4: the predicted label holds exactly `conf`, strictly
    above every other; the rest is spread at random, most of it to the true label when wrong."""
    n, k = len(label), len(plan.labels)
    top = np.where(conf < 0, 10_000, conf).astype(np.int64)
    pred = np.where(label < 0, 0, label).astype(np.int64)
    rest = 10_000 - top
    weight = rng.standard_exponential((n, k - 1)) + 1e-9
    truth_pos = (truth.astype(np.int64) - pred - 1) % k  # position of the truth among the others
    wrong = (label >= 0) & (truth_pos < k - 1)
    weight[np.flatnonzero(wrong), truth_pos[wrong]] += 3 * rng.standard_exponential(
        int(wrong.sum())
    )
    share = weight / weight.sum(axis=1, keepdims=True)
    # Mix towards the uniform split just enough that no other label reaches the top one, even
    # after the rounding remainder (< k units) goes to the biggest of them.
    uniform = 1.0 / (k - 1)
    cap = (top - k) / np.maximum(rest, 1)
    biggest = share.max(axis=1)
    mix = np.clip((biggest - cap) / np.maximum(biggest - uniform, 1e-12), 0.0, 1.0)
    share = mix[:, None] * uniform + (1 - mix[:, None]) * share
    units = np.floor(share * rest[:, None]).astype(np.int64)
    rows = np.arange(n)
    units[rows, units.argmax(axis=1)] += rest - units.sum(axis=1)
    out = np.empty((n, k), dtype=np.int64)
    out[rows, pred] = top
    for j in range(k - 1):
        out[rows, (pred + 1 + j) % k] = units[:, j]
    return out


def _decide(
    plan: _Plan,
    rng: np.random.Generator,
    items: np.ndarray,
    arrival_us: np.ndarray,
    truth: np.ndarray,
    live: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Human decisions on the block's items; the live (first) version's suggestion is what a
    human saw, when it was shown."""
    n = len(items)
    shown = _SHOWN[live["mode"]] & (live["label"] >= 0)
    wrong = live["label"] != truth
    decided = rng.random(n) < _DECIDED
    corrected = decided & (rng.random(n) < _CORRECTED)
    biased = shown & wrong & (rng.random(n) < _ACCEPT_WRONG) & ~corrected
    final = np.where(biased, live["label"], truth).astype(np.int16)
    mistaken = np.where(shown & wrong, live["label"], _other_labels(plan, rng, truth))
    soon = rng.exponential(2.5 * 3600, n)
    later = 7200 + rng.exponential(2 * 86_400, n)
    # At least 65 s: after every prediction of the item (latency <= 60 s, shadow queue < 2 s).
    delay_s = np.clip(np.where(rng.random(n) < 0.6, soon, later) + 65, 65, 9 * 86_400)
    first_us = arrival_us + (delay_s * 1000).astype(np.int64) * 1000
    second_us = np.minimum(
        first_us + (3600 + rng.exponential(1.5 * 86_400, n)).astype(np.int64) * 1_000_000,
        arrival_us + 10 * _DAY_US,
    )
    rows = np.concatenate([np.flatnonzero(decided), np.flatnonzero(corrected)])
    is_second = np.arange(len(rows)) >= int(decided.sum())
    label = np.where(is_second, final[rows], np.where(corrected[rows], mistaken[rows], final[rows]))
    accepted = label == live["label"][rows]
    changed = np.where(rng.random(len(rows)) < _EDITED, 2, 1)
    action = np.where(shown[rows], np.where(accepted, 0, changed), 3).astype(np.int8)
    median_s = np.array([25.0, 140.0, 140.0, 95.0])[action]
    review_s = np.round(median_s * rng.lognormal(0.0, 0.55, len(rows)), 1)
    return {
        "dnum": items[rows] * 2 + is_second,
        "inum": items[rows],
        "t": np.where(is_second, second_us[rows], first_us[rows]).astype(np.int64),
        "label": label.astype(np.int16),
        "reviewer": rng.integers(0, _N_REVIEWERS, len(rows)).astype(np.int32),
        "action": action,
        "review_s": review_s,
    }


def _split_by_day(
    plan: _Plan,
    dec: dict[str, np.ndarray],
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Decisions bucketed by the UTC day they were made; those after the window are dropped."""
    day = (dec["t"] - plan.start_us) // _DAY_US
    keep = day < plan.days
    order = np.argsort(day[keep], kind="stable")
    kept = {k: a[keep][order] for k, a in dec.items()}
    days_sorted = day[keep][order]
    bounds = np.flatnonzero(np.diff(days_sorted)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(days_sorted)], strict=True):
        if hi > lo:
            yield int(days_sorted[lo]), {k: a[lo:hi] for k, a in kept.items()}
