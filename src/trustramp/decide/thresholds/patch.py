"""A recommendation as a ``routing:`` patch to the rollout config (thresholds.yaml).

`to_config_patch` writes the global thresholds and the per-segment and per-customer overrides,
a band that is not offered as ``false``. Imports `grid`, `plan` and `groups` (of this package).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trustramp.decide.thresholds.grid import BANDS, _decimals, _step_units
from trustramp.decide.thresholds.groups import GroupRecommendation
from trustramp.decide.thresholds.plan import ThresholdRecommendation

# --------------------------------------------------------------------------------------------
# Config patch
# --------------------------------------------------------------------------------------------


def _routing_values(rec: ThresholdRecommendation) -> dict[str, float | bool]:
    """Band thresholds for the config: False for a band that is not offered."""
    digits = _decimals(_step_units(rec.step))
    out: dict[str, float | bool] = {}
    for band in BANDS:
        t = rec.band(band).threshold
        out[band] = False if t is None else round(t, digits)
    return out


def to_config_patch(
    rec: ThresholdRecommendation,
    *,
    groups: GroupRecommendation | Sequence[GroupRecommendation] = (),
) -> dict[str, Any]:
    """The recommendation as a ``routing:`` mapping to merge into the rollout config.

    A band that is not offered is written as ``false`` (the config's closed band: its items go
    to the next offered band down), also in the overrides, where ``null`` would mean "inherit
    the global value".

    Parameters
    ----------
    rec : ThresholdRecommendation
        The global recommendation.
    groups : GroupRecommendation or sequence of them
        Per-segment (``by="segment"``) and per-customer (``by="customer_id"``) recommendations,
        written as ``segment_overrides`` and ``customer_overrides``.

    Returns
    -------
    dict
        ``{"routing": {"auto": ..., "confirm": ..., "review": ..., "segment_overrides": {...},
        "customer_overrides": {...}}}`` (override keys only when given).
    """
    routing: dict[str, Any] = dict(_routing_values(rec))
    if isinstance(groups, GroupRecommendation):
        groups = [groups]
    for g in groups:
        key = {"segment": "segment_overrides", "customer_id": "customer_overrides"}.get(g.by)
        if key is None:
            raise ValueError(
                f"groups by {g.by!r} cannot go into the config; use by='segment' or 'customer_id'"
            )
        routing.setdefault(key, {}).update(
            {name: _routing_values(r) for name, r in g.by_group.items()}
        )
    return {"routing": routing}
