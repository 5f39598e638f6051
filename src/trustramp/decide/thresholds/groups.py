"""Threshold recommendations per segment or per customer, each on its own labels.

`recommend_by_group` collapses the grid by a column and plans every group separately at the
full δ (a group below ``min_labels`` gets no band rather than borrowing the global thresholds),
with its override in the config as its current thresholds: `GroupRecommendation`. Imports
`grid`, `plan` and `progression` (of this package).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from trustramp.decide.thresholds.grid import (
    BANDS,
    CUSTOMER,
    Stage,
    _Cells,
    _collapse_by,
    _offered,
    _with_clusters,
)
from trustramp.decide.thresholds.plan import (
    ThresholdRecommendation,
    _check_min_labels,
    _check_routing,
    _days,
    _population,
)
from trustramp.decide.thresholds.progression import _staged


@dataclass(frozen=True)
class GroupRecommendation:
    """Threshold recommendations per group (segment or customer).

    Attributes
    ----------
    by : str
        The grouping column.
    by_group : dict of str to ThresholdRecommendation
        The reported groups; a group below ``min_labels`` gets no band at all (it never borrows
        the global thresholds) and says why.
    omitted : int
        Groups below ``min_labels`` that were left out (customers are reported only with enough
        labels; they then follow their segment's routing).
    min_labels : int
        The labeled items a group needs.
    """

    by: str
    by_group: dict[str, ThresholdRecommendation]
    omitted: int
    min_labels: int

    def to_frame(self) -> pd.DataFrame:
        """All groups' band tables stacked, with the group's value in column ``by``."""
        frames = [r.to_frame().assign(**{self.by: g}) for g, r in self.by_group.items()]
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True)
        return out[[self.by, *[c for c in out.columns if c != self.by]]]


def recommend_by_group(
    grid: pd.DataFrame,
    routing: Any,
    *,
    by: str = "segment",
    min_labels: int = 200,
    include_insufficient: bool | None = None,
    confidence_level: float = 0.95,
    population: str | None = None,
    clusters: pd.DataFrame | None = None,
    stage: Stage | str | None = None,
) -> GroupRecommendation:
    """Recommend thresholds separately for each value of ``by`` (segments or customers).

    Each group is certified on its own labels only, at the full ``routing.delta`` (its
    statements hold with probability ≥ 1 - δ per group). A group with fewer than ``min_labels``
    labeled items gets no band ("needs ≥ 770 labeled items; has 120") instead of borrowing the
    global thresholds. The current thresholds of a group are its override in
    ``routing.segment_overrides`` (``customer_overrides`` for ``by="customer_id"``) over the
    global ones.

    Parameters
    ----------
    grid : pandas.DataFrame
        The grid frame with a ``by`` column.
    routing : trustramp.config.Routing
    by : str, default "segment"
    min_labels : int, default 200
        Labeled items a group needs before any band is certified for it.
    include_insufficient : bool, optional
        Report groups below ``min_labels`` (with the reason). Defaults to True, except for
        ``by="customer_id"``, where only customers with enough labels are reported.
    confidence_level : float, default 0.95
        Level of the Wilson intervals.
    population : str, optional
        As in `recommend_thresholds`.
    clusters : pandas.DataFrame, optional
        The same labeled items by customer with a ``by`` column (a grid frame with
        ``customer_id`` and ``by``): each group is certified allowing for its customers as
        clusters. Ignored for ``by="customer_id"`` (one customer is one cluster).
    stage : Stage or str, optional
        A progression stage: each group's recommendation comes staged, as
        ``apply_progression(rec, stage)`` of its unstaged one would (planned once, not twice).

    Returns
    -------
    GroupRecommendation
    """
    _check_routing(routing)
    _check_min_labels(min_labels)
    if include_insufficient is None:
        include_insufficient = by != "customer_id"
    values, cells = _collapse_by(grid, by, routing.grid_step)
    if clusters is not None and by != CUSTOMER and by not in clusters.columns:
        raise ValueError(
            f"clusters needs a {by!r} column to group by, got {list(clusters.columns)}"
        )
    overrides = routing.customer_overrides if by == "customer_id" else routing.segment_overrides
    days, pop = _days(grid, None), _population(grid, population)
    out: dict[str, ThresholdRecommendation] = {}
    omitted = 0
    for g, value in enumerate(values):
        one = _Cells(cells.n[g], cells.correct[g], cells.total[g], cells.units)
        if clusters is not None and by != CUSTOMER:
            one = _with_clusters(one, clusters[clusters[by] == value], routing.grid_step)
        if int(one.n.sum()) < min_labels and not include_insufficient:
            omitted += 1
            continue
        override = overrides.get(str(value)) if by in ("segment", "customer_id") else None
        current = {  # the override's band over the global one; False: closed
            b: _offered(
                getattr(override, b)
                if override is not None and getattr(override, b) is not None
                else getattr(routing, b)
            )
            for b in BANDS
        }
        out[str(value)] = _staged(
            one,
            routing.targets,
            None if stage is None else Stage(stage),
            current=current,
            delta=routing.delta,
            days=days,
            level=confidence_level,
            population=pop,
            group=f"{by} = {value}",
            min_labels=min_labels,
        )
    return GroupRecommendation(by=by, by_group=out, omitted=omitted, min_labels=int(min_labels))
