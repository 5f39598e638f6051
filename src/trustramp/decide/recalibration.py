"""Recalibration maps for the top-label confidence (SPEC 3.4: "when calibration is poor").

Candidates are fitted on one half of the labeled items and judged on the other half by top-label
log loss: the identity, Platt scaling on ``logit(confidence)``, temperature scaling when class
probabilities are given, and isotonic regression (pool-adjacent-violators) from 5,000 labels.
The chosen map's held-out ECE is reported beside the raw confidence's. Thresholds stay certified
on the raw confidence (the router compares raw confidences); `map_threshold` shows them on the
recalibrated scale.

ECE here uses the SPEC's right-closed equal-width bins, ``bin = clip(ceil(c * M) - 1, 0, M - 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = [
    "CalibrationMap",
    "Recalibration",
    "expected_calibration_error",
    "fit_isotonic",
    "fit_platt",
    "fit_recalibration",
    "fit_temperature",
    "map_threshold",
]

EPS = 1e-6
"""Confidences are clipped to [EPS, 1 - EPS] before logits and log losses."""
MIN_ISOTONIC = 5_000


@dataclass(frozen=True)
class CalibrationMap:
    """A fitted map from raw top-label confidence to a recalibrated one.

    Attributes
    ----------
    name : str
        ``identity``, ``platt`` (``sigmoid(a * logit(c) + b)``), ``temperature`` (softmax of
        ``log(p) / T``) or ``isotonic`` (a non-decreasing step map, linear between knots).
    params : dict of str to float
        ``a, b`` for Platt, ``T`` for temperature; empty otherwise.
    knots_x, knots_y : numpy.ndarray or None
        The isotonic map's knots (None for other maps).
    """

    name: str
    params: dict[str, float] = field(default_factory=dict)
    knots_x: NDArray[np.float64] | None = field(default=None, repr=False)
    knots_y: NDArray[np.float64] | None = field(default=None, repr=False)

    def transform(
        self, confidence: ArrayLike, *, probabilities: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Recalibrated confidences.

        For temperature scaling with ``probabilities`` (shape (n, K)) the result is the top
        class's tempered softmax; without them, the two-class form
        ``sigmoid(logit(c) / T)``, exact for K = 2 and an approximation for K > 2 (the other
        classes' spread changes the tempered top-label probability).
        """
        c = _as_confidence(confidence, "confidence")
        if self.name == "identity":
            return c.copy()
        if self.name == "platt":
            return special.expit(self.params["a"] * _logit(c) + self.params["b"])
        if self.name == "temperature":
            if probabilities is None:
                return special.expit(_logit(c) / self.params["T"])
            p = _as_probabilities(probabilities, c.size)
            return _tempered(p, self.params["T"]).max(axis=1)
        if self.name == "isotonic":
            assert self.knots_x is not None and self.knots_y is not None
            return np.interp(c, self.knots_x, self.knots_y)
        raise ValueError(f"unknown map {self.name!r}")


@dataclass(frozen=True)
class Recalibration:
    """The chosen recalibration map and the evidence for it.

    Attributes
    ----------
    chosen : CalibrationMap
        The candidate with the lowest held-out log loss (``identity`` when nothing beats it).
    candidates : pandas.DataFrame
        One row per candidate: ``name, params, log_loss, ece`` on the held-out half.
    ece_before, ece_after : float
        Held-out ECE of the raw confidence and of the chosen map's output.
    n_fit, n_holdout : int
        Items in each half.
    n_bins : int
        ECE bins.
    notes : tuple of str
        Candidates that were skipped, and why.
    """

    chosen: CalibrationMap
    candidates: pd.DataFrame
    ece_before: float
    ece_after: float
    n_fit: int
    n_holdout: int
    n_bins: int
    notes: tuple[str, ...] = ()

    @property
    def recommended(self) -> bool:
        """True when a map other than the identity was chosen."""
        return self.chosen.name != "identity"

    def transform(
        self, confidence: ArrayLike, *, probabilities: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Apply the chosen map (see `CalibrationMap.transform`)."""
        return self.chosen.transform(confidence, probabilities=probabilities)


# --------------------------------------------------------------------------------------------
# Validation and small helpers
# --------------------------------------------------------------------------------------------


def _as_confidence(x: ArrayLike, name: str) -> NDArray[np.float64]:
    c = np.asarray(x, dtype=float).ravel()
    bad = ~np.isfinite(c) | (c < 0) | (c > 1)
    if bad.any():
        raise ValueError(f"{name} has values outside [0, 1]: {c[bad][:5].tolist()}")
    return c


def _as_correct(y: ArrayLike, n: int) -> NDArray[np.float64]:
    v = np.asarray(y, dtype=float).ravel()
    if v.size != n:
        raise ValueError(f"correct has {v.size} values, confidence has {n}")
    if not np.isin(v, (0.0, 1.0)).all():
        raise ValueError(f"correct must be 0 or 1, got {np.unique(v[~np.isin(v, (0, 1))])[:5]}")
    return v


def _as_probabilities(p: ArrayLike, n: int) -> NDArray[np.float64]:
    m = np.asarray(p, dtype=float)
    if m.ndim != 2 or m.shape[0] != n or m.shape[1] < 2:
        raise ValueError(f"probabilities must have shape ({n}, K) with K ≥ 2, got {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any() or (m > 1).any():
        raise ValueError("probabilities has values outside [0, 1]")
    sums = m.sum(axis=1)
    if np.abs(sums - 1).max() > 1e-3:
        raise ValueError(
            f"probabilities rows must sum to 1, got e.g. {sums[np.argmax(np.abs(sums - 1))]}"
        )
    return m


def _logit(c: NDArray[np.float64]) -> NDArray[np.float64]:
    return special.logit(np.clip(c, EPS, 1 - EPS))


def _log_loss(y: NDArray[np.float64], p: NDArray[np.float64]) -> float:
    """Mean binary log loss of ``correct`` under the predicted confidences (clipped at EPS)."""
    q = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def _tempered(p: NDArray[np.float64], t: float) -> NDArray[np.float64]:
    return special.softmax(np.log(np.clip(p, 1e-300, None)) / t, axis=1)


def expected_calibration_error(
    confidence: ArrayLike, correct: ArrayLike, *, n_bins: int = 15
) -> float:
    """Top-label ECE with right-closed equal-width bins ``((m-1)/M, m/M]`` (SPEC 3.5).

    The one ECE implementation, `trustramp.metrics.expected_calibration_error`, with this
    module's argument order (confidence first): a confidence lying on an edge ``m/M`` goes to
    the bin it closes, as in stage 1's SQL, even where ``c * M`` rounds a hair above ``m``.

    Examples
    --------
    >>> round(expected_calibration_error([0.9, 0.9, 0.6, 0.6], [1, 1, 1, 0], n_bins=10), 6)
    0.1
    """
    from trustramp.metrics.calibration import expected_calibration_error as ece

    c = _as_confidence(confidence, "confidence")
    y = _as_correct(correct, c.size)
    if c.size == 0:
        return math.nan
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return ece(y, c, n_bins=n_bins)


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def fit_platt(
    confidence: ArrayLike, correct: ArrayLike, *, max_iter: int = 100, tol: float = 1e-10
) -> CalibrationMap:
    """Top-label Platt scaling: ``P(correct) = sigmoid(a * logit(c) + b)`` by Newton's method.

    Unpenalized maximum likelihood (a step-halving Newton on the two parameters); raises
    ValueError when ``correct`` is constant (the maximum does not exist).
    """
    c = _as_confidence(confidence, "confidence")
    y = _as_correct(correct, c.size)
    if y.min() == y.max():
        raise ValueError("correct is constant: Platt scaling has no finite fit")
    x = np.column_stack([_logit(c), np.ones(c.size)])

    def loss(w: NDArray[np.float64]) -> float:
        z = x @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    w = np.array([1.0, 0.0])
    current = loss(w)
    for _ in range(max_iter):
        p = special.expit(x @ w)
        grad = x.T @ (p - y)
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-10:
            trial = w - scale * step
            new = loss(trial)
            if new <= current + 1e-4 * scale * float(grad @ -step):
                break
            scale /= 2
        w, done = trial, abs(current - new) <= tol * max(1.0, abs(current))
        current = new
        if done or float(np.max(np.abs(scale * step))) < tol:
            break
    return CalibrationMap("platt", {"a": float(w[0]), "b": float(w[1])})


def fit_temperature(probabilities: ArrayLike, labels: ArrayLike) -> CalibrationMap:
    """Temperature scaling: the ``T`` minimizing the multiclass log loss of softmax(log p / T)."""
    lab = np.asarray(labels).ravel()
    p = _as_probabilities(probabilities, lab.size)
    if not np.issubdtype(lab.dtype, np.integer) or (lab < 0).any() or (lab >= p.shape[1]).any():
        raise ValueError(f"labels must be class indices in [0, {p.shape[1]}), got {lab[:5]}")
    logp = np.log(np.clip(p, 1e-300, None))

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        return float(np.mean(special.logsumexp(z, axis=1) - z[np.arange(lab.size), lab]))

    from scipy import optimize  # only with class probabilities: most of a second to import

    res = optimize.minimize_scalar(
        nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded", options={"xatol": 1e-8}
    )
    return CalibrationMap("temperature", {"T": float(math.exp(res.x))})


def _pav(y: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pool-adjacent-violators: the weighted non-decreasing fit of ``y`` (already x-sorted)."""
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for v, wt in zip(y.tolist(), w.tolist(), strict=True):
        values.append(v)
        weights.append(wt)
        sizes.append(1)
        while len(values) > 1 and values[-2] >= values[-1]:
            wsum = weights[-2] + weights[-1]
            values[-2] = (values[-2] * weights[-2] + values[-1] * weights[-1]) / wsum
            weights[-2] = wsum
            sizes[-2] += sizes[-1]
            del values[-1], weights[-1], sizes[-1]
    return np.repeat(np.array(values), sizes)


def fit_isotonic(confidence: ArrayLike, correct: ArrayLike) -> CalibrationMap:
    """Isotonic recalibration by pool-adjacent-violators (ties in confidence are pooled first).

    The map interpolates linearly between the distinct fitted confidences and is constant
    beyond them, like scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``.
    """
    c = _as_confidence(confidence, "confidence")
    y = _as_correct(correct, c.size)
    if c.size == 0:
        raise ValueError("confidence is empty")
    xs, inverse = np.unique(c, return_inverse=True)
    w = np.bincount(inverse).astype(float)
    ys = np.bincount(inverse, weights=y) / w
    return CalibrationMap("isotonic", knots_x=xs, knots_y=_pav(ys, w))


# --------------------------------------------------------------------------------------------
# Choosing
# --------------------------------------------------------------------------------------------


def _split(n: int, *, seed: int, keys: ArrayLike | None) -> NDArray[np.bool_]:
    """True for the fitting half: a stable hash of integer keys, or a seeded permutation."""
    if keys is None:
        mask = np.zeros(n, dtype=bool)
        mask[np.random.default_rng(seed).permutation(n)[: n // 2]] = True
        return mask
    k = np.asarray(keys).ravel()
    if k.size != n or not np.issubdtype(k.dtype, np.integer):
        raise ValueError(f"keys must be {n} integers (e.g. item_key), got {k.dtype} x {k.size}")
    z = k.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):  # splitmix64: wrap-around arithmetic is the point
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(63)) == 0


def fit_recalibration(
    confidence: ArrayLike,
    correct: ArrayLike,
    *,
    probabilities: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    keys: ArrayLike | None = None,
    seed: int = 0,
    min_isotonic: int = MIN_ISOTONIC,
    n_bins: int = 15,
) -> Recalibration:
    """Fit candidate recalibration maps on half of the labels and choose one on the other half.

    Parameters
    ----------
    confidence : array-like of shape (n,)
        Raw top-label confidences of labeled items.
    correct : array-like of shape (n,)
        1 where the top label was right, else 0.
    probabilities : array-like of shape (n, K), optional
        Class probabilities; with ``labels`` they enable temperature scaling.
    labels : array-like of shape (n,), optional
        The true class index of each item (into ``probabilities``' columns).
    keys : array-like of int, optional
        Stable integer ids (e.g. the lake's ``item_key``): the split then depends on the item,
        not on row order. Without them a permutation seeded by ``seed`` splits.
    seed : int, default 0
    min_isotonic : int, default 5000
        Labeled items needed before isotonic regression is a candidate.
    n_bins : int, default 15
        ECE bins.

    Returns
    -------
    Recalibration

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> c = rng.uniform(0.5, 1, 4000)
    >>> y = rng.random(c.size) < 0.5 + 0.6 * (c - 0.5)  # over-confident
    >>> r = fit_recalibration(c, y)
    >>> r.chosen.name, r.ece_after < r.ece_before
    ('platt', True)
    """
    c = _as_confidence(confidence, "confidence")
    y = _as_correct(correct, c.size)
    if c.size < 4:
        raise ValueError(f"need at least 4 labeled items to fit and check a map, got {c.size}")
    if (probabilities is None) != (labels is None):
        raise ValueError("give both probabilities and labels, or neither")
    fit = _split(c.size, seed=seed, keys=keys)
    hold = ~fit
    if not fit.any() or not hold.any():
        raise ValueError("the split left one half empty; pass more items or other keys")
    candidates: list[CalibrationMap] = [CalibrationMap("identity")]
    notes: list[str] = []
    try:
        candidates.append(fit_platt(c[fit], y[fit]))
    except ValueError as e:
        notes.append(f"platt skipped: {e}")
    p = None
    if probabilities is not None:
        p = _as_probabilities(probabilities, c.size)
        if np.abs(p.max(axis=1) - c).max() > 1e-4:
            raise ValueError("confidence must equal the largest class probability of each row")
        candidates.append(fit_temperature(p[fit], np.asarray(labels).ravel()[fit]))
    if c.size >= min_isotonic:
        candidates.append(fit_isotonic(c[fit], y[fit]))
    else:
        notes.append(f"isotonic skipped: needs ≥ {min_isotonic:,} labels; has {c.size:,}")
    rows = []
    for m in candidates:
        out = m.transform(c[hold], probabilities=None if p is None else p[hold])
        rows.append(
            {
                "name": m.name,
                "params": dict(m.params),
                "log_loss": _log_loss(y[hold], out),
                "ece": expected_calibration_error(out, y[hold], n_bins=n_bins),
            }
        )
    table = pd.DataFrame(rows)
    best = int(np.argmin(table["log_loss"].to_numpy()))  # first minimum: simpler maps win ties
    return Recalibration(
        chosen=candidates[best],
        candidates=table,
        ece_before=expected_calibration_error(c[hold], y[hold], n_bins=n_bins),
        ece_after=float(table["ece"].iloc[best]),
        n_fit=int(fit.sum()),
        n_holdout=int(hold.sum()),
        n_bins=n_bins,
        notes=tuple(notes),
    )


def map_threshold(
    recalibration: Recalibration | CalibrationMap,
    threshold: float | ArrayLike | Mapping[str, float | None],
) -> float | NDArray[np.float64] | dict[str, float | None]:
    """Show raw-confidence thresholds on the recalibrated scale.

    Accepts one threshold, an array, or a mapping band → threshold (None stays None, e.g.
    ``ThresholdRecommendation.thresholds``). A strictly increasing map (Platt with ``a > 0``,
    temperature) keeps exactly the same items at or above the mapped threshold; an isotonic map
    is only non-decreasing, so its flat steps may merge neighbouring thresholds.

    Examples
    --------
    >>> m = CalibrationMap("platt", {"a": 2.0, "b": 0.0})
    >>> round(map_threshold(m, 0.9), 4)
    0.9878
    >>> map_threshold(m, {"review": None})
    {'review': None}
    """
    m = recalibration.chosen if isinstance(recalibration, Recalibration) else recalibration
    if isinstance(threshold, Mapping):
        return {
            k: None if v is None else float(m.transform(np.array([v]))[0])
            for k, v in threshold.items()
        }
    arr = np.asarray(threshold, dtype=float)
    out = m.transform(arr.ravel()).reshape(arr.shape)
    return float(out) if arr.ndim == 0 else out
