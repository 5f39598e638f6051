"""Argument checks shared by the metrics modules: validate at the entry, name the argument.

Every public function in `trustramp.metrics` validates its inputs here before computing, so an
error always names the argument and echoes (a few of) the offending values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
_SHOW = 5  # how many offending values an error message echoes


def _show(values: NDArray[Any]) -> list[Any]:
    return np.asarray(values).ravel()[:_SHOW].tolist()


def as_float(x: ArrayLike, name: str) -> FloatArray:
    """`x` as a float array, or a ValueError naming `name`."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric, got {x!r:.80}") from e


def finite_nonnegative(x: ArrayLike, name: str) -> FloatArray:
    """A float array of finite values >= 0 (counts, sums, latencies)."""
    a = as_float(x, name)
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        raise ValueError(f"{name} must be finite and >= 0, got {_show(a[bad])}")
    return a


def counts(
    k: ArrayLike, n: ArrayLike, *, k_name: str = "k", n_name: str = "n"
) -> tuple[FloatArray, FloatArray]:
    """Successes and trials, broadcast together: finite, >= 0 and ``k <= n``."""
    ka = finite_nonnegative(k, k_name)
    na = finite_nonnegative(n, n_name)
    try:
        ka, na = np.broadcast_arrays(ka, na)
    except ValueError:
        raise ValueError(
            f"{k_name} and {n_name} must have broadcastable shapes, got {ka.shape} and {na.shape}"
        ) from None
    over = ka > na
    if over.any():
        raise ValueError(
            f"{k_name} must not exceed {n_name}, got {k_name}={_show(ka[over])} "
            f"with {n_name}={_show(na[over])}"
        )
    return ka.astype(np.float64), na.astype(np.float64)


def probabilities(x: ArrayLike, name: str) -> FloatArray:
    """A float array with every value in [0, 1]."""
    a = as_float(x, name)
    bad = ~np.isfinite(a) | (a < 0) | (a > 1)
    if bad.any():
        raise ValueError(f"{name} has values outside [0, 1]: {_show(a[bad])}")
    return a


def binary(x: ArrayLike, name: str) -> FloatArray:
    """A 1-D float array of 0/1 (booleans accepted)."""
    a = as_float(x, name).ravel()
    bad = ~np.isin(a, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{name} must hold only 0/1 (or booleans), got {_show(np.unique(a[bad]))}")
    return a


def same_length(a: NDArray[Any], b: NDArray[Any], a_name: str, b_name: str) -> None:
    if len(a) != len(b):
        raise ValueError(
            f"{a_name} and {b_name} must have the same length, got {len(a)} and {len(b)}"
        )


def level(x: float, name: str = "confidence") -> float:
    """A probability level strictly inside (0, 1)."""
    if isinstance(x, bool) or not isinstance(x, int | float | np.floating) or not 0 < x < 1:
        raise ValueError(f"{name} must be in (0, 1), got {x!r}")
    return float(x)


def positive_int(x: int, name: str, *, minimum: int = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {x!r}")
    return int(x)


def choice(x: str, name: str, allowed: tuple[str, ...]) -> str:
    if x not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {x!r}")
    return x


def out(x: FloatArray, scalar: bool) -> Any:
    """A plain float when every input was a scalar, else the array."""
    return float(x) if scalar else x


def is_scalar(*xs: ArrayLike) -> bool:
    return all(np.ndim(x) == 0 for x in xs)


def nan_if(cond: NDArray[np.bool_], x: FloatArray) -> FloatArray:
    return np.where(cond, math.nan, x)
