"""What-if replay: routing thresholds applied to logged traffic, day by day.

`replay_policy` routes each day's grid cells through a proposed policy (and the current one,
to compare): items, accuracy with a Wilson interval and human workload per band and day
(`Replay`). Imports `grid` only (of this package): it certifies nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trustramp.decide.thresholds.grid import (
    ALL_BANDS,
    BANDS,
    CORRECT,
    DAY,
    HUMAN,
    N,
    _Cells,
    _collapse_by,
    _indices,
    _offered,
    _ranges,
    _sum,
    _wilson,
)

# --------------------------------------------------------------------------------------------
# What-if replay
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """A what-if replay of routing policies on logged traffic.

    Attributes
    ----------
    by_day : pandas.DataFrame
        Tidy: ``policy, day, band, threshold, items, n, correct, accuracy, ci_low, ci_high``;
        ``items`` counts all traffic, ``n``/``correct`` the labeled items.
    summary : pandas.DataFrame
        The same over all days, with ``share`` and ``items_per_day``.
    workload : pandas.DataFrame
        ``policy, day, human_workload``: items not auto-processed.
    difference : pandas.DataFrame or None
        ``day, band, proposed, current, difference`` in items (None without a current policy);
        the rows with band ``human_workload`` compare the workloads.
    """

    by_day: pd.DataFrame
    summary: pd.DataFrame
    workload: pd.DataFrame
    difference: pd.DataFrame | None


def _replay_one(
    name: str, policy: Mapping[str, float | None], days: list[Any], cells: _Cells, level: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = _indices(policy, cells.units, name=f"{name} policy")
    rng = _ranges(idx, cells.n.shape[-1])
    rows, summary = [], []
    grand_total = int(cells.total.sum())
    for band in ALL_BANDS:
        r = rng[band]
        items, n, k = (np.asarray(_sum(a, r)) for a in (cells.total, cells.n, cells.correct))
        lo, hi = _wilson(k, n, level)
        t = 0.0 if band == HUMAN else policy.get(band)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        rows.append(
            pd.DataFrame(
                {
                    "policy": name,
                    "day": days,
                    "band": band,
                    "threshold": t,
                    "items": items,
                    N: n,
                    CORRECT: k,
                    "accuracy": acc,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
        )
        ti, tn, tk = int(items.sum()), int(n.sum()), int(k.sum())
        slo, shi = _wilson(tk, tn, level)
        summary.append(
            {
                "policy": name,
                "band": band,
                "threshold": t,
                "items": ti,
                "share": ti / grand_total if grand_total else math.nan,
                "items_per_day": ti / len(days) if days else math.nan,
                N: tn,
                CORRECT: tk,
                "accuracy": tk / tn if tn else math.nan,
                "ci_low": float(slo),
                "ci_high": float(shi),
            }
        )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(summary)


_DIFFERENCE_COLUMNS = {
    "day": "object",
    "band": "object",
    "proposed": "int64",
    "current": "int64",
    "difference": "int64",
}


def replay_policy(
    grid_by_day: pd.DataFrame,
    policy: Mapping[str, float | None],
    *,
    current: Mapping[str, float | None] | None = None,
    step: float = 0.01,
    confidence_level: float = 0.95,
) -> Replay:
    """Replay routing thresholds on logged traffic: items, accuracy and workload per day.

    Parameters
    ----------
    grid_by_day : pandas.DataFrame
        The grid frame with a ``day`` column (other columns are summed over).
    policy : mapping of band to threshold
        The proposed thresholds, e.g. ``{"auto": 0.92, "confirm": 0.8, "review": 0.6}``; a band
        that is missing, None or False (a config's closed band) is not offered. Thresholds must lie on the grid and be ordered.
    current : mapping of band to threshold, optional
        The policy to compare with (e.g. the config's thresholds).
    step : float, default 0.01
        The grid's cell width.
    confidence_level : float, default 0.95
        Level of the Wilson intervals.

    Returns
    -------
    Replay
    """
    if DAY not in grid_by_day.columns:
        raise ValueError(f"grid_by_day needs a 'day' column, got {list(grid_by_day.columns)}")
    policies = {"proposed": policy} if current is None else {"proposed": policy, "current": current}
    for name, p in policies.items():
        unknown = set(p) - set(BANDS)
        if unknown:
            raise ValueError(
                f"{name} policy has unknown band(s) {sorted(unknown)}; expected {list(BANDS)}"
            )
    policies = {name: {b: _offered(t) for b, t in p.items()} for name, p in policies.items()}
    days, cells = _collapse_by(grid_by_day, DAY, step)
    parts = [_replay_one(name, p, days, cells, confidence_level) for name, p in policies.items()]
    by_day = pd.concat([p[0] for p in parts], ignore_index=True)
    summary = pd.concat([p[1] for p in parts], ignore_index=True)
    per_day = cells.total.sum(axis=-1)
    auto = by_day[by_day["band"] == "auto"]
    workload = pd.DataFrame(
        {
            "policy": auto["policy"].to_numpy(),
            "day": auto["day"].to_numpy(),
            "human_workload": np.tile(per_day, len(policies)) - auto["items"].to_numpy(),
        }
    )
    difference = None
    if current is not None and not days:  # no traffic: nothing to compare, no pivot to take
        difference = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DIFFERENCE_COLUMNS.items()})
    elif current is not None:
        wide = by_day.pivot_table(
            index=["day", "band"], columns="policy", values="items", sort=False
        ).reset_index()
        load = (
            workload.pivot_table(index="day", columns="policy", values="human_workload", sort=False)
            .reset_index()
            .assign(band="human_workload")
        )
        difference = pd.concat([wide, load], ignore_index=True)[
            ["day", "band", "proposed", "current"]
        ]
        difference[["proposed", "current"]] = difference[["proposed", "current"]].astype("int64")
        difference["difference"] = difference["proposed"] - difference["current"]
        difference.columns.name = None
    return Replay(by_day=by_day, summary=summary, workload=workload, difference=difference)
