"""The demo's shared bottom: the plan every stage reads, the random streams, the enum orders.

`_Plan` is everything fixed before the first day is simulated; `_rng` gives an independent stream
per purpose, day and block (the spawn keys are what make the same seed give the same bytes);
`_fnv1a` is the stable hash that picks the blind hold-out arm. Imports numpy and
trustramp.contract only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trustramp.contract import SHOWN_MODES, Action, Band, Mode, Status

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")

DEFAULT_LABELS: tuple[str, ...] = (
    "billing",
    "refund",
    "technical",
    "account",
    "shipping",
    "cancellation",
    "fraud",
    "complaint",
)
"""Label names of the first classes; classes beyond these are called `class_<i>`."""

# --- the generative model's numbers (documented in the package docstring) ------------------
# Items simulated at once: bounds memory, and keeps arrays below malloc's mmap threshold (fresh
# pages are expensive to fault in on small VMs).
_BLOCK_ITEMS = 65_536
_CLOSED_UNITS = 10_001  # a closed band's threshold (1e-4 units): above every confidence
_DAY_US = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)
_MODES = tuple(Mode)
_STATUSES = tuple(Status)
_BANDS = tuple(Band)
_ACTIONS = tuple(Action)
_SHOWN = np.array([m in SHOWN_MODES for m in _MODES])
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class _Plan:
    """Everything fixed before the first day is simulated."""

    feature: str
    seed: int
    tag: str
    start: dt.date
    days: int
    labels: tuple[str, ...]
    prior_cdf: np.ndarray
    conf_min: int  # in units of 1e-4
    segments: tuple[str, ...]
    weak: int  # index of the segment made weak (when `effects`)
    feedback_segment: int
    cust_segment: np.ndarray
    cust_cdf: np.ndarray
    cust_confirm: np.ndarray
    versions: tuple[str, ...]
    version_start: tuple[int, ...]
    version_high: tuple[float, ...]
    items_per_day: np.ndarray
    item_offset: np.ndarray
    live_from: int
    bad_day: int  # index of the day made bad (when `effects`)
    effects: bool
    holdout_units: int  # blind share in units of 1e-4
    class_probabilities: bool
    feedback_rate: float
    width: int
    cust_width: int
    band_units: tuple[int, int, int]
    """Review, confirm, auto thresholds in units of 1e-4; `_CLOSED_UNITS` for a band not offered
    (above every confidence: its items fall to the next band down)."""

    @property
    def start_us(self) -> int:
        return (self.start - _EPOCH).days * _DAY_US

    @property
    def end_us(self) -> int:
        """The first microsecond after the window."""
        return self.start_us + self.days * _DAY_US


def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent stream per purpose, day and block: stable whatever else is drawn."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _fnv1a(matrix: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """64-bit FNV-1a of each row's first `lengths` bytes (all bytes when None)."""
    h = np.full(len(matrix), _FNV_OFFSET, dtype=np.uint64)
    for j in range(matrix.shape[1]):
        step = (h ^ matrix[:, j].astype(np.uint64)) * _FNV_PRIME
        h = step if lengths is None else np.where(j < lengths, step, h)
    return h
