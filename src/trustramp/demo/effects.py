"""The planted effects (`effects=True`), their numbers, and the realized truths that check them.

1. over-confident band: in the confirm band [0.80, 0.95) the chance of a right answer is
   `_BAND_GAP` below the confidence;
2. weak segment: for `enterprise` (else the last segment) it is `_SEGMENT_GAP` below, at every
   confidence;
3. bad day: the 5th day before `end` has ~10 % errors and timeouts (`_RATES`) and slow
   requests (a ~12 s latency p95).

`_Stats` accumulates what the generated data realized (accuracy by band and segment, the bad
day's error rate and latency p95) and `_describe` puts it in the manifest's words. The generator
(`simulate`, `plan`) calls the hooks here; nothing here draws from a stream of its own.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from trustramp.demo._common import _BANDS, _Plan

# --- the effects' numbers (documented in the package docstring) ----------------------------
_BAND_GAP = 0.15
_SEGMENT_GAP = 0.08
_RATES = {  # status rates on a normal day / the bad day: error, timeout, fallback
    False: (0.003, 0.002, 0.003),
    True: (0.06, 0.04, 0.01),
}
_SLOW_SHARE, _SLOW_MEDIAN_MS, _SLOW_SIGMA = 0.15, 10_000.0, 0.12  # the bad day's slow requests


# --- where and how they are planted ---------------------------------------------------------


def _weak_segment(segments: tuple[str, ...]) -> int:
    """Index of the segment made weak (when `effects`): `enterprise`, else the last one."""
    return segments.index("enterprise") if "enterprise" in segments else len(segments) - 1


def _bad_day(days: int) -> int:
    """Index of the day made bad (when `effects`): the 5th day before the last one."""
    return max(days - 6, 0)


def _is_bad_day(plan: _Plan, day: int) -> bool:
    return plan.effects and day == plan.bad_day


def _planted_chance(
    plan: _Plan,
    chance: np.ndarray,
    conf: np.ndarray,
    seg: np.ndarray,
    confirm: int,
    auto: int,
) -> np.ndarray:
    """The chance of a right answer, lowered in the over-confident band and the weak segment
    (effects 1 and 2); unchanged (calibrated) without `effects`. Confidences in units of 1e-4."""
    if plan.effects:
        chance = chance - _BAND_GAP * ((conf >= confirm) & (conf < auto))
        chance = chance - _SEGMENT_GAP * (seg == plan.weak)
    return chance


def _bad_day_latency(rng: np.random.Generator, latency: np.ndarray) -> np.ndarray:
    """The bad day's slow requests (effect 3): a share of them take ~10 s instead."""
    n = len(latency)
    slow = rng.random(n) < _SLOW_SHARE
    return np.where(slow, rng.lognormal(np.log(_SLOW_MEDIAN_MS), _SLOW_SIGMA, n), latency)


# --- realized truths, for the manifest -------------------------------------------------------


class _Stats:
    """Realized truths, accumulated block by block (for the manifest)."""

    def __init__(self, n_versions: int, days: int, band_units: tuple[int, int, int]) -> None:
        self.band_units = band_units
        # [version, weak segment?, band] -> rows, correct, confidence sum
        self.cells = np.zeros((n_versions, 2, 4, 3))
        self.day_rows = np.zeros(days)
        self.day_failed = np.zeros(days)
        self.day_p95 = np.zeros(days)
        self._latency: list[np.ndarray] = []

    def add(self, v: int, day: int, pred: dict[str, np.ndarray], weak: np.ndarray) -> None:
        review, confirm, auto = self.band_units
        conf = pred["conf"]
        ok = conf >= 0
        band = np.select([conf >= auto, conf >= confirm, conf >= review], [0, 1, 2], 3)[ok]
        cell = weak[ok].astype(np.int64) * 4 + band
        for j, values in enumerate(
            (np.ones(len(cell)), pred["correct"][ok], pred["conf"][ok] / 10_000)
        ):
            self.cells[v, :, :, j] += np.bincount(cell, values, minlength=8).reshape(2, 4)
        self.day_rows[day] += len(ok)
        self.day_failed[day] += int((~ok).sum())
        self._latency.append(pred["latency"].astype(np.float32))

    def close_day(self, day: int) -> None:
        if self._latency:
            self.day_p95[day] = float(np.percentile(np.concatenate(self._latency), 95))
        self._latency = []

    def summary(self, plan: _Plan) -> dict[str, float]:
        def acc(c: np.ndarray) -> tuple[float, float, float]:
            rows, correct, conf = c.reshape(-1, 3).sum(axis=0)
            return rows, correct / max(rows, 1), conf / max(rows, 1)

        out: dict[str, float] = {}
        n, a, _ = acc(self.cells)
        out |= {"accuracy": a, "n_successful": n}
        for v, name in enumerate(plan.versions):
            out[f"accuracy_{name}"] = acc(self.cells[v])[1]
        for b, band in enumerate(_BANDS):
            n, a, c = acc(self.cells[:, 0, b])
            out |= {f"accuracy_{band}_band": a, f"confidence_{band}_band": c, f"n_{band}_band": n}
        for w, name in ((1, "weak_segment"), (0, "other_segments")):
            n, a, c = acc(self.cells[:, w])
            out |= {f"accuracy_{name}": a, f"confidence_{name}": c, f"n_{name}": n}
        rate = self.day_failed / np.maximum(self.day_rows, 1)
        others = np.arange(plan.days) != plan.bad_day
        out["error_rate_other_days"] = float(
            self.day_failed[others].sum() / max(self.day_rows[others].sum(), 1)
        )
        out["latency_p95_ms_median_day"] = (
            float(np.median(self.day_p95[others])) if others.any() else float("nan")
        )
        out["error_rate_bad_day"] = float(rate[plan.bad_day])
        out["latency_p95_ms_bad_day"] = float(self.day_p95[plan.bad_day])
        return {k: float(v) for k, v in out.items()}


def _describe(plan: _Plan, s: dict[str, float]) -> dict[str, str]:
    bad = plan.start + dt.timedelta(days=plan.bad_day)
    weak = plan.segments[plan.weak]
    return {
        "overconfident_band": (
            f"Confidence band [0.80, 0.95) is over-confident: the chance of a right answer there "
            f"is set {_BAND_GAP:.2f} below the stated confidence, for every version, segment and "
            f"day (realized outside segment {weak!r}: accuracy {s['accuracy_confirm_band']:.3f} at "
            f"mean confidence {s['confidence_confirm_band']:.3f}, n={s['n_confirm_band']:.0f}); "
            f"elsewhere the model is calibrated (band >= 0.95: accuracy "
            f"{s['accuracy_auto_band']:.3f} at mean confidence {s['confidence_auto_band']:.3f})."
        ),
        "weak_segment": (
            f"Segment {weak!r} is clearly worse: its chance of a right answer is set "
            f"{_SEGMENT_GAP:.2f} below the confidence at every confidence level (realized "
            f"accuracy {s['accuracy_weak_segment']:.3f} vs {s['accuracy_other_segments']:.3f} for "
            f"the other segments, at about the same mean confidence)."
        ),
        "bad_day": (
            f"{bad.isoformat()} (the 5th day before {(plan.start + dt.timedelta(plan.days - 1))}) "
            f"is a bad day: error + timeout rate set to ~10 % (realized "
            f"{s['error_rate_bad_day']:.3f} vs {s['error_rate_other_days']:.3f} on other days) "
            f"and latency p95 ~12 s (realized {s['latency_p95_ms_bad_day'] / 1000:.1f} s vs a "
            f"median daily p95 of {s['latency_p95_ms_median_day'] / 1000:.1f} s)."
        ),
    }
