"""The playbook's threshold progression within a phase (section 5).

`progression_stage` reads the stage off the calendar (conservative, moderate, optimized) and
`apply_progression` re-plans a recommendation for it: bands closed or raised to floors, each
certified again as staged. Imports `grid` and `plan` (of this package).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

from trustramp.decide.thresholds.grid import BANDS, Stage
from trustramp.decide.thresholds.plan import ThresholdRecommendation, _assemble, _plan

if TYPE_CHECKING:
    from trustramp.decide.thresholds.certify import Certified
    from trustramp.decide.thresholds.grid import _Cells

# --------------------------------------------------------------------------------------------
# Progression
# --------------------------------------------------------------------------------------------


def _as_date(d: dt.date | dt.datetime | str, name: str) -> dt.date:
    if isinstance(d, str):
        try:
            return dt.date.fromisoformat(d[:10])
        except ValueError:
            raise ValueError(f"{name} must be a date, got {d!r}") from None
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    raise ValueError(f"{name} must be a date, got {d!r}")


def progression_stage(
    phase_started: dt.date | dt.datetime | str | None, as_of: dt.date | dt.datetime | str
) -> Stage:
    """The playbook's threshold stage on ``as_of`` for a phase that started on ``phase_started``.

    Days 0-13 of the phase (weeks 1-2) are conservative, days 14-27 (weeks 3-4) moderate, from
    day 28 (week 5) on optimized.

    Examples
    --------
    >>> import datetime as dt
    >>> progression_stage(dt.date(2026, 3, 2), dt.date(2026, 3, 16))
    <Stage.MODERATE: 'moderate'>
    """
    if phase_started is None:
        raise ValueError("phase_started is None; set phase_started in the rollout config")
    start, day = _as_date(phase_started, "phase_started"), _as_date(as_of, "as_of")
    elapsed = (day - start).days
    if elapsed < 0:
        raise ValueError(f"as_of ({day}) is before phase_started ({start})")
    if elapsed < 14:
        return Stage.CONSERVATIVE
    if elapsed < 28:
        return Stage.MODERATE
    return Stage.OPTIMIZED


def apply_progression(
    rec: ThresholdRecommendation,
    stage: Stage | str,
    *,
    floors: Mapping[str, float | None] | None = None,
) -> ThresholdRecommendation:
    """Re-plan a recommendation for a progression stage (playbook section 5).

    - ``conservative`` (weeks 1-2): no auto and no confirm band; everything goes to human
      review. Only the review band is certified, with the whole δ.
    - ``moderate`` (weeks 3-4): auto-process only at high confidence: auto = max(certified,
      floor) and confirm = max(certified, floor), the floors being the current config's
      thresholds (0.95 and 0.80 by default). A band without a certified threshold stays closed;
      a raised threshold keeps its guarantee when it lies in the certified range.
    - ``optimized`` (week 5 on): the certified thresholds, as `recommend_thresholds` gave them.

    The bands are certified again top-down from ``rec.cells`` (each band below the one above,
    δ split over the tested bands), so every guarantee refers to the band as staged. The stage
    comes from the calendar (`progression_stage`), never from the data, so each stage's
    procedure holds its guarantee on its own.

    Parameters
    ----------
    rec : ThresholdRecommendation
        From `recommend_thresholds` or `recommend_by_group` (not already staged).
    stage : Stage or str
    floors : mapping of band to threshold, optional
        The moderate stage's floors for ``auto`` and ``confirm``; default: the current ones.

    Returns
    -------
    ThresholdRecommendation
    """
    stage = Stage(stage)
    if rec.stage is not None:
        raise ValueError(f"rec already has stage {rec.stage.value!r}; pass an unstaged one")
    # rec's own cells: a band walked with the same target, δ and upper edge as in rec is not
    # walked again.
    return _staged(
        rec._cells,
        {b: rec.band(b).target for b in BANDS},
        stage,
        current={b: rec.band(b).current_threshold for b in BANDS},
        floors=floors,
        reuse={b: rec.band(b).certified for b in BANDS},
        delta=rec.delta,
        days=rec.days,
        level=rec.confidence_level,
        population=rec.population,
        group=rec.group,
        min_labels=rec.min_labels,
    )


def _staged(
    cells: _Cells,
    targets: Mapping[str, float | None],
    stage: Stage | None,
    *,
    current: Mapping[str, float | None],
    floors: Mapping[str, float | None] | None = None,
    reuse: Mapping[str, Certified | None] | None = None,
    delta: float,
    days: int | None,
    level: float,
    population: str,
    group: str | None,
    min_labels: int,
) -> ThresholdRecommendation:
    """The recommendation of a stage planned from the cells (`apply_progression`'s work, also
    `recommend_by_group`'s: one plan per group instead of an unstaged one planned, assembled and
    planned again). Stage None: the certified thresholds, unstaged."""
    closed: dict[str, str] = {}
    use_floors: dict[str, float | None] = {}
    why = ""
    if stage is Stage.CONSERVATIVE:
        closed = dict.fromkeys(
            ("auto", "confirm"), "weeks 1–2 of the phase: conservative, everything to human review"
        )
    elif stage is Stage.MODERATE:
        use_floors = {b: current[b] for b in ("auto", "confirm")}
        if floors is not None:
            unknown = set(floors) - {"auto", "confirm"}
            if unknown:
                raise ValueError(
                    f"floors has unknown band(s) {sorted(unknown)}; expected auto, confirm"
                )
            use_floors.update(floors)
        why = "weeks 3–4 of the phase: moderate, "
    plan = _plan(
        cells,
        targets,
        delta,
        min_labels=min_labels,
        closed=closed,
        floors=use_floors,
        floor_why=why,
        reuse=reuse,
    )
    if closed and int(cells.n.sum()) >= min_labels:
        plan = dataclasses.replace(plan, notes=(*plan.notes, closed["auto"]))
    return _assemble(
        cells,
        plan,
        delta=delta,
        current=current,
        days=days,
        level=level,
        population=population,
        group=group,
        stage=stage,
        min_labels=min_labels,
    )
