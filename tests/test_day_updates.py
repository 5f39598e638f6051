"""A night's late decisions update the cached days they touch by sums instead of recomputing them
(issue 17): the cached cells frames plus the decided items' contributions with the new
decisions, minus their contributions without, are the frames a recomputation gives — counts
exactly, float sums to rounding — whether a decision labels an item for the first time or
changes its label; days inside the gate window, and days new predictions touched, are recomputed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from trustramp.config import parse_config
from trustramp.demo import demo_config, generate
from trustramp.ingest import ingest_paths
from trustramp.store import aggregates as agg
from trustramp.store import daycache
from trustramp.store.lake import Home, reader

DAYS = 20


def _ingest(paths: list[Path], home: Path, segments: list[str]) -> None:
    report = ingest_paths(paths, home, segments=segments, validate_with_gx=False)
    assert not report.failed, report


def _late_decisions(inputs: Path, out: Path, end: dt.date) -> int:
    """A decisions file of the night after `end`: new labels for a third of the decided items
    (the other label, 'overridden') and first labels for some undecided ones."""
    con = duckdb.connect()
    preds = str(inputs / "predictions" / "*.csv")
    decs = str(inputs / "decisions" / "*.csv")
    con.execute(
        f"""COPY (
          WITH decided AS (
            SELECT item_id, arg_max(human_label, decided_at) AS label FROM read_csv(?)
            GROUP BY item_id
          ),
          items AS (
            SELECT item_id, min(predicted_label) AS predicted FROM read_csv(?) GROUP BY item_id
          )
          SELECT 'late-' || i.item_id AS decision_id, i.item_id,
                 TIMESTAMPTZ '{end + dt.timedelta(days=1)} 08:00:00+00' AS decided_at,
                 CASE WHEN d.label IS NULL THEN i.predicted
                      WHEN d.label = 'billing' THEN 'refund' ELSE 'billing' END AS human_label,
                 'r-late' AS reviewer_id,
                 CASE WHEN d.label IS NULL THEN 'manual' ELSE 'overridden' END AS action,
                 30.0 AS review_seconds
          FROM items i LEFT JOIN decided d USING (item_id)
          WHERE hash(i.item_id) % 3 = 0
        ) TO '{out}' (HEADER, FORMAT csv)""",
        [decs, preds],
    )
    n = con.execute(f"SELECT count(*) FROM read_csv('{out}')").fetchall()[0][0]
    con.close()
    return int(n)


@pytest.fixture(scope="module", params=[True, False], ids=["class-probabilities", "labels-only"])
def night(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict:
    """Demo logs with or without class probabilities (with them, the gate window's days carry
    class-wise bins, which are recomputed; without, they are updated too), and a night of late
    decisions."""
    root = tmp_path_factory.mktemp("day-updates")
    manifest = generate(
        root / "input",
        n_predictions=4_000,
        days=DAYS,
        seed=9,
        class_probabilities=request.param,
    )
    config = parse_config(demo_config(manifest))
    late = root / "late" / "decisions" / "decisions-late.csv"
    late.parent.mkdir(parents=True)
    assert _late_decisions(root / "input", late, manifest.end) > 100
    end = manifest.end
    return {
        "root": root,
        "inputs": root / "input",
        "late": late.parent,
        "feature": config.feature,
        "segments": list(config.segments),
        "start": end - dt.timedelta(days=DAYS - 1),
        "end": end,
        "class_probabilities": request.param,
        # a gate window of six days where two versions run in shadow (paired tables); the late
        # decisions land inside it and after it
        "gate": (end - dt.timedelta(days=12), end - dt.timedelta(days=7)),
    }


def _refresh(home: Path, night: dict, **kw: object) -> daycache.Refresh:
    con = reader(Home.at(home))
    try:
        return daycache.refresh(
            con,
            Home.at(home),
            night["feature"],
            night["start"],
            night["end"],
            daycache.Key(),
            gate=night["gate"],
            **kw,
        )
    finally:
        con.close()


SAMPLE_KEYS = ["model_version", "day", "sample_key", "confidence", "correct"]


def _frames(aggs: agg.Aggregates, gate: bool = False) -> dict[str, pd.DataFrame]:
    """The frames an update changes (with `gate`, in the gate window: all but class-wise)."""
    out = {}
    for name in agg.DELTA_FRAMES if gate else agg.CELL_FRAMES:
        keys = agg.DELTA_FRAMES[name][0]
        frame = getattr(aggs, name)
        frame = frame.to_pandas() if isinstance(frame, pa.Table) else frame
        out[name] = frame.sort_values(keys, na_position="first").reset_index(drop=True)
    if gate:
        out["sample"] = aggs.sample.to_pandas().sort_values(SAMPLE_KEYS).reset_index(drop=True)
    return out


def _assert_close(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    assert set(got) == set(want)
    for name in got:
        a, b = got[name], want[name]
        assert len(a) == len(b) > 0, name
        if name == "sample":
            pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=name)
            continue
        keys, measures, _ = agg.DELTA_FRAMES[name]
        pd.testing.assert_frame_equal(a[keys], b[keys], check_dtype=False, obj=name)
        for m in measures:
            if m in agg.FLOAT_MEASURES or m == "conf_sum":
                np.testing.assert_allclose(a[m], b[m], rtol=1e-12, atol=1e-9, err_msg=m)
            else:
                assert (a[m].to_numpy() == b[m].to_numpy()).all(), (name, m)


def _gate_days(night: dict, days: list[dt.date] | tuple[dt.date, ...]) -> list[dt.date]:
    return [d for d in days if night["gate"][0] <= d <= night["gate"][1]]


def test_late_decisions_update_the_days_they_touch(night: dict, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _ingest([night["inputs"]], home, night["segments"])
    first = _refresh(home, night)
    assert len(first.recomputed) == DAYS and not first.updated

    _ingest([night["late"]], home, night["segments"])
    second = _refresh(home, night)
    gate_start, gate_end = night["gate"]
    in_gate = _gate_days(night, second.updated)
    assert len(second.updated) > DAYS // 2  # the late decisions reach most days
    if night["class_probabilities"]:
        # gate-window days with class-wise bins are recomputed, not updated
        assert not in_gate and second.recomputed
        assert all(gate_start <= d <= gate_end for d in second.recomputed)
    else:
        assert in_gate and not second.recomputed

    key = daycache.Key()
    cached = daycache.load(Home.at(home), night["feature"], night["start"], night["end"], key)
    con = reader(Home.at(home))
    try:
        fresh = agg.compute_aggregates(con, night["feature"], night["start"], night["end"])
        # and the gate window's frames, all of them, updated or recomputed
        fresh_gate = agg.compute_aggregates(con, night["feature"], gate_start, gate_end)
    finally:
        con.close()
    _assert_close(_frames(cached), _frames(fresh))
    cached_gate = daycache.load(Home.at(home), night["feature"], gate_start, gate_end, key)
    _assert_close(_frames(cached_gate, gate=True), _frames(fresh_gate, gate=True))

    # nothing new: nothing to do
    third = _refresh(home, night)
    assert not third.recomputed and not third.updated


def test_an_update_is_what_a_recomputation_would_give_day_by_day(
    night: dict, tmp_path: Path
) -> None:
    """The same night, updated and recomputed in two homes: each updated day's frames (in the
    gate window, its gate frames too) equal the recomputed day's."""
    homes = {name: tmp_path / name for name in ("updated", "recomputed")}
    for home in homes.values():
        _ingest([night["inputs"]], home, night["segments"])
        _refresh(home, night)
    before = daycache.load(
        Home.at(homes["updated"]), night["feature"], night["start"], night["end"], daycache.Key()
    )
    for home in homes.values():
        _ingest([night["late"]], home, night["segments"])
    updated = _refresh(homes["updated"], night).updated
    recomputed = _refresh(homes["recomputed"], night, full=True).recomputed
    assert set(updated) <= set(recomputed)
    gated = _gate_days(night, updated)
    assert bool(gated) != night["class_probabilities"]
    for day in updated:
        got, want = (
            daycache.load(Home.at(h), night["feature"], day, day, daycache.Key())
            for h in homes.values()
        )
        _assert_close(_frames(got, day in gated), _frames(want, day in gated))
    # and the late decisions did change those days (labels moved between confusion cells)
    after = daycache.load(
        Home.at(homes["updated"]), night["feature"], night["start"], night["end"], daycache.Key()
    )
    moved = pd.concat(
        [
            before.confusion.assign(n=-before.confusion["n"]),
            after.confusion,
        ]
    )
    keys = agg.CELL_FRAMES["confusion"][0]
    assert (moved.groupby(keys, dropna=False)["n"].sum() != 0).sum() > 10


def test_new_predictions_make_a_day_recomputed(night: dict, tmp_path: Path) -> None:
    home = tmp_path / "home"
    files = sorted((night["inputs"] / "predictions").glob("*.csv"))
    last = files[-1]
    _ingest([p for p in night["inputs"].iterdir()], home, night["segments"])
    _refresh(home, night)
    # The last day's predictions again under new ids (a second batch of that day), and the
    # late decisions: that day has a predictions mark, so it is recomputed.
    extra = tmp_path / "extra" / "predictions" / "predictions-extra.csv"
    extra.parent.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE ('x-' || prediction_id AS prediction_id) FROM read_csv(?)) "
        f"TO '{extra}' (HEADER, FORMAT csv)",
        [str(last)],
    )
    con.close()
    _ingest([extra.parent.parent, night["late"]], home, night["segments"])
    refreshed = _refresh(home, night)
    assert night["end"] in refreshed.recomputed and night["end"] not in refreshed.updated
    assert refreshed.updated


def test_marks_that_outlive_a_crash_are_not_applied_twice(night: dict, tmp_path: Path) -> None:
    """A refresh killed after writing its days but before removing their marks: the next one
    finds the marks again, and the days' `_sources` say their frames include those files."""
    home = tmp_path / "home"
    _ingest([night["inputs"]], home, night["segments"])
    _refresh(home, night)
    _ingest([night["late"]], home, night["segments"])
    marks = sorted((Home.at(home).state / "dirty" / night["feature"]).iterdir())
    assert marks
    second = _refresh(home, night)
    for mark in marks:  # as if the refresh had died before removing them
        mark.touch()
    third = _refresh(home, night)
    assert set(third.updated) | set(third.recomputed) == set(second.updated) | set(
        second.recomputed
    )
    key = daycache.Key()
    cached = daycache.load(Home.at(home), night["feature"], night["start"], night["end"], key)
    con = reader(Home.at(home))
    try:
        fresh = agg.compute_aggregates(con, night["feature"], night["start"], night["end"])
    finally:
        con.close()
    _assert_close(_frames(cached), _frames(fresh))
    assert not any((Home.at(home).state / "dirty" / night["feature"]).iterdir())
