"""The entry points: `generate` runs the plan day by day, and `is_blind_holdout` names the arm.

Each day is simulated block by block (`simulate`), its predictions written at once and its
decisions held until the day they are made (`write`); the feedback and incidents files and the
manifest (with the planted effects described, `effects`) come last.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trustramp.contract import DEFAULT_SEGMENTS, FEEDBACK, INCIDENTS, PREDICTIONS
from trustramp.demo._common import Format, _fnv1a, _Plan, _rng
from trustramp.demo.effects import _describe, _Stats
from trustramp.demo.logs import _feedback_columns, _incident_columns
from trustramp.demo.manifest import DemoManifest
from trustramp.demo.plan import _blocks, _check_share, _make_plan, _validate
from trustramp.demo.simulate import _simulate_block, _split_by_day
from trustramp.demo.write import (
    _Background,
    _Output,
    _prepare,
    _write_decisions,
    _write_predictions,
    _write_small,
    _Writer,
)

logger = logging.getLogger(__name__)

# --- public API ------------------------------------------------------------------------------


def generate(
    out_dir: str | Path,
    *,
    n_predictions: int = 200_000,
    days: int = 30,
    end: dt.date = dt.date(2026, 11, 20),
    seed: int = 7,
    n_customers: int = 1000,
    segments: Sequence[str] = DEFAULT_SEGMENTS,
    model_versions: Sequence[str] = ("v1", "v2"),
    n_classes: int = 5,
    feature: str = "demo-triage",
    fmt: Format = "csv",
    class_probabilities: bool = True,
    blind_share: float = 0.05,
    effects: bool = True,
    n_feedback: int = 300,
    open_critical: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DemoManifest:
    """Write a seeded, realistic set of input logs with planted effects.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created); files go to `predictions/predictions-YYYY-MM-DD.<ext>`,
        `decisions/decisions-YYYY-MM-DD.<ext>` (by the UTC day of the decision),
        `feedback/feedback.<ext>` and `incidents/incidents.<ext>`.
    n_predictions : int, default=200_000
        About how many prediction rows to write (all versions together).
    days : int, default=30
        Days of traffic, ending with `end` (inclusive).
    end : datetime.date, default=2026-11-20
        The last day of predictions; decisions made after it are not written (unlabeled).
    seed : int, default=7
        Everything is drawn from it: the same arguments give the same bytes.
    n_customers : int, default=1000
        Customers, spread over the segments (at least one each).
    segments : sequence of str, default=DEFAULT_SEGMENTS
        Customer segments; `internal`, `smb`, `mid_market` and `enterprise` have realistic
        sizes, other names share equally.
    model_versions : sequence of str, default=("v1", "v2")
        The first is live; the last is the candidate predicting in shadow from day ~days/3.
    n_classes : int, default=5
        Number of labels (2 to 50), named from `DEFAULT_LABELS`, then `class_<i>`.
    feature : str, default="demo-triage"
        The AI feature's name.
    fmt : {"csv", "jsonl", "parquet"}, default="csv"
        File format. CSV and JSON Lines write ISO 8601 timestamps, 10 % with a non-UTC offset
        and 2 % without one; Parquet writes typed columns (timestamps in UTC).
    class_probabilities : bool, default=True
        Whether to write the `class_probabilities` JSON (otherwise the column is empty).
    blind_share : float, default=0.05
        Share of items in the blind hold-out arm (kept in shadow while others are shown).
    effects : bool, default=True
        Plant the over-confident band, the weak segment and the bad day.
    n_feedback : int, default=300
        About how many feedback rows internal users leave.
    open_critical : bool, default=False
        Also log an open critical bug (to exercise the "no open critical bug" gate).
    overwrite : bool, default=False
        Replace files a previous run left in the four sub-folders; otherwise refuse.
    progress : callable, optional
        Called as `progress(days_done, days)` after each day.

    Returns
    -------
    DemoManifest
        The files, row counts and descriptions of the planted effects.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     m = generate(tmp, n_predictions=2_000, days=10, fmt="parquet")
    ...     len(m.files["predictions"]), sorted(m.planted)
    (10, ['bad_day', 'overconfident_band', 'weak_segment'])
    """
    _validate(
        n_predictions=n_predictions,
        days=days,
        end=end,
        seed=seed,
        n_customers=n_customers,
        segments=segments,
        model_versions=model_versions,
        n_classes=n_classes,
        feature=feature,
        fmt=fmt,
        blind_share=blind_share,
        n_feedback=n_feedback,
    )
    out = Path(out_dir)
    _prepare(out, overwrite=overwrite)
    plan = _make_plan(
        n_predictions=n_predictions,
        days=days,
        end=end,
        seed=seed,
        n_customers=n_customers,
        segments=tuple(segments),
        versions=tuple(model_versions),
        n_classes=n_classes,
        feature=feature,
        class_probabilities=class_probabilities,
        blind_share=blind_share,
        effects=effects,
        n_feedback=n_feedback,
    )
    output = _Output(out, fmt)
    stats = _Stats(len(plan.versions), days, plan.band_units)
    with _Background() as background:
        for day in range(days):
            _generate_day(plan, day, output, stats, background)
            if progress is not None:
                progress(day + 1, days)
    files, counts = output.files, output.counts
    counts["feedback"] = _write_small(
        plan, FEEDBACK, _feedback_columns(plan, output.feedback), out, fmt, files, seed_key=6
    )
    counts["incidents"] = _write_small(
        plan, INCIDENTS, _incident_columns(plan, open_critical), out, fmt, files, seed_key=7
    )
    summary = stats.summary(plan)
    return DemoManifest(
        out_dir=out,
        feature=feature,
        start=plan.start,
        end=end,
        files=files,
        counts=counts,
        planted=_describe(plan, summary) if effects else {},
        seed=seed,
        fmt=fmt,
        segments=plan.segments,
        model_versions=plan.versions,
        labels=plan.labels,
        stats=summary,
    )


def is_blind_holdout(item_ids: Sequence[str] | np.ndarray, *, share: float = 0.05) -> np.ndarray:
    """Whether each item belongs to the blind hold-out arm: a stable hash of its id.

    An item is in the arm when the 64-bit FNV-1a hash of its UTF-8 `item_id`, modulo 10,000,
    is below `share * 10_000` (rounded): the same item is always in the same arm, on any
    machine, whatever else is in the data.

    Parameters
    ----------
    item_ids : sequence of str
        The items' ids.
    share : float, default=0.05
        Share of items in the arm, in [0, 1].

    Returns
    -------
    ndarray of bool
        True for items in the arm.

    Examples
    --------
    >>> is_blind_holdout(["i-1", "i-2"], share=1.0).tolist()
    [True, True]
    """
    _check_share("share", share)
    encoded = [str(s).encode("utf-8") for s in item_ids]
    if not encoded:
        return np.zeros(0, dtype=bool)
    width = max(len(b) for b in encoded)
    raw = np.array(encoded, dtype=f"S{max(width, 1)}")
    matrix = raw.view(np.uint8).reshape(len(encoded), -1)
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    return _fnv1a(matrix, lengths) % np.uint64(10_000) < np.uint64(round(share * 10_000))


def _generate_day(
    plan: _Plan, day: int, output: _Output, stats: _Stats, background: _Background
) -> None:
    """Simulate one day block by block; write its predictions and the decisions made on it."""
    date = plan.start + dt.timedelta(days=day)
    path = output.out / "predictions" / f"predictions-{date.isoformat()}.{output.fmt}"
    writer = _Writer(path, PREDICTIONS, output.fmt)
    for block, items, arrival_us in _blocks(plan, day):
        pred, dec, fb = _simulate_block(plan, day, block, items, arrival_us, stats)
        rng = _rng(plan.seed, 4, day, block)
        background.submit(_write_predictions, writer, plan, pred, output.fmt, rng)
        output.counts["predictions"] += len(pred["pnum"])
        for target, chunk in _split_by_day(plan, dec):
            output.pending[target].append(chunk)
        output.feedback.append(fb)
    background.submit(writer.close, cleanup=True)
    output.files["predictions"].append(path)
    output.counts["decisions"] += _write_decisions(
        plan, day, output.pending.pop(day, []), output, background
    )
    stats.close_day(day)
    logger.debug("demo: simulated %s", date)
