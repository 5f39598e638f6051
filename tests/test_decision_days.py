"""Each decision stores its item's prediction days at ingest, and stage 1 reads a chunk's
decisions by them (issue 17): whatever order predictions and decisions land in — together,
decisions first, or a prediction after its item's decisions (a backfilled shadow run) — the day
statistics are those of the semi-join on the chunk's items that the lake used before; an older
lake (decisions without days) reads the same, and its migration adds the days in place."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trustramp.config import parse_config
from trustramp.contract import DECIDED_BEFORE, PRED_FIRST, PRED_LAST, Kind
from trustramp.demo import demo_config, generate
from trustramp.ingest import ingest_paths
from trustramp.store import aggregates as agg
from trustramp.store import daycache
from trustramp.store.engine import DuckEngine
from trustramp.store.lake import Home, reader
from trustramp.store.migrate import PRED_DAYS, _add_pred_days, migrate

BACKFILL_DAYS = 6


def _ingest(paths: list[Path], home: Path, segments: list[str]) -> None:
    report = ingest_paths(paths, home, segments=segments, validate_with_gx=False)
    assert not report.failed, report


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One demo dataset plus a backfill (version v9 re-predicting half of the items six days
    after their first prediction), landed in three orders."""
    root = tmp_path_factory.mktemp("decision-days")
    manifest = generate(root / "input", n_predictions=4_000, days=20, seed=3)
    config = parse_config(demo_config(manifest))
    segments = list(config.segments)
    backfill = root / "backfill" / "predictions" / "predictions-backfill.csv"
    backfill.parent.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"""COPY (
          SELECT * REPLACE ('bf-' || prediction_id AS prediction_id, 'v9' AS model_version,
                            'shadow' AS mode,
                            predicted_at + INTERVAL {BACKFILL_DAYS} DAY AS predicted_at)
          FROM read_csv(?, union_by_name = true, all_varchar = false)
          WHERE model_version = 'v1' AND hash(item_id) % 2 = 0
            AND CAST(predicted_at AS DATE) + {BACKFILL_DAYS} <= ?
        ) TO '{backfill}' (HEADER, FORMAT csv)""",
        [str(root / "input" / "predictions" / "*.csv"), manifest.end],
    )
    con.close()
    inputs = root / "input"
    decisions = sorted((inputs / "decisions").glob("*"))
    others = [p for p in sorted(inputs.iterdir()) if p.name != "decisions"]
    homes = {name: root / name for name in ("together", "late", "early")}
    _ingest([inputs, backfill], homes["together"], segments)  # predictions land first
    _ingest([inputs], homes["late"], segments)
    _ingest([backfill], homes["late"], segments)  # after its items' decisions
    _ingest(decisions, homes["early"], segments)  # no prediction yet: no days
    _ingest([*others, backfill], homes["early"], segments)
    end = manifest.end
    return {
        "root": root,
        "homes": homes,
        "feature": config.feature,
        "segments": segments,
        "start": end - dt.timedelta(days=19),
        "end": end,
    }


def _frames(home: Path, lakes: dict, days: list[dt.date] | None = None) -> dict[str, pd.DataFrame]:
    con = reader(Home.at(home))
    try:
        aggs = agg.compute_aggregates(
            con, lakes["feature"], lakes["start"], lakes["end"], days=days, seed=1
        )
    finally:
        con.close()
    out = {}
    for name in daycache.FRAMES:
        frame = getattr(aggs, name)
        frame = frame.to_pandas() if isinstance(frame, pa.Table) else frame
        out[name] = frame.sort_values(list(frame.columns), na_position="first").reset_index(
            drop=True
        )
    return out


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in daycache.FRAMES:
        pd.testing.assert_frame_equal(a[name], b[name], check_dtype=False, obj=name)


def _day_sets(lakes: dict) -> list[list[dt.date] | None]:
    days = [lakes["start"] + dt.timedelta(days=i) for i in range(20)]
    # all days; the backfill's days alone (a few days: read by their decisions' days); halves
    return [None, days[-BACKFILL_DAYS:], days[::2], days[1::2]]


def _strip_days(home: Path) -> list[Path]:
    """Make `home` a lake of the older layout: decisions files without their days."""
    files = Home.at(home).lake_files(Kind.DECISIONS)
    for path in files:
        table = pq.read_table(path, partitioning=None)
        pq.write_table(table.drop_columns([PRED_FIRST, PRED_LAST]), path)
    (Home.at(home).state / "layout" / PRED_DAYS).unlink()
    return files


def _decision_rows(home: Path) -> list[tuple]:
    con = reader(Home.at(home))
    try:
        return con.execute("SELECT * EXCLUDE (_source) FROM decisions ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_decisions_store_their_items_prediction_days(lakes: dict) -> None:
    con = reader(Home.at(lakes["homes"]["together"]))
    try:
        got = con.execute(
            f"SELECT item_key, feature, {PRED_FIRST} AS first, {PRED_LAST} AS last FROM decisions"
        ).df()
        want = con.execute(
            "SELECT item_key, feature, min(date) AS first, max(date) AS last FROM predictions "
            "GROUP BY ALL"
        ).df()
        marked = con.execute(f"SELECT count(*) FROM predictions WHERE {DECIDED_BEFORE}")
        assert marked.fetchall()[0][0] == 0  # every prediction landed before its decisions
    finally:
        con.close()
    both = got.merge(want, on=["item_key", "feature"], suffixes=("", "_ref"))
    assert len(both) == len(got) > 0  # every decision found its item's predictions
    assert (pd.to_datetime(both["first"]) == pd.to_datetime(both["first_ref"])).all()
    assert (pd.to_datetime(both["last"]) == pd.to_datetime(both["last_ref"])).all()
    assert (both["first"] < both["last"]).any()  # the backfilled items span two days


def test_a_prediction_after_its_items_decisions_is_marked(lakes: dict) -> None:
    con = reader(Home.at(lakes["homes"]["late"]))
    try:
        marked = con.execute(
            f"SELECT prediction_id, {DECIDED_BEFORE} AS marked FROM predictions"
        ).df()
        decided = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT p.prediction_id FROM predictions p "
                "JOIN decisions d USING (item_key)"
            ).fetchall()
        }
    finally:
        con.close()
    backfilled = marked["prediction_id"].str.startswith("bf-")
    want = backfilled & marked["prediction_id"].isin(decided)
    assert want.sum() > 0
    assert (marked["marked"] == want).all()


def test_every_landing_order_gives_the_same_day_statistics(lakes: dict) -> None:
    homes = lakes["homes"]
    for days in _day_sets(lakes):
        want = _frames(homes["together"], lakes, days)
        for name in ("late", "early"):
            _assert_same(_frames(homes[name], lakes, days), want)


def test_the_mark_is_what_finds_a_late_predictions_decisions(lakes: dict) -> None:
    """Without reading the marked predictions' decisions by item, the backfill's days lose
    their labels: the mark is load-bearing."""
    home = Home.at(lakes["homes"]["late"])
    days = _day_sets(lakes)[1]
    assert days is not None
    con = reader(home)
    try:
        engine = DuckEngine(con)
        params = {
            **agg._params(lakes["feature"], days[0], days[-1]),
            "days": days,
            "bins": 15,
            "grid_scale": 10_000,
            "n_grid": 100,
            "eps": agg.LOG_LOSS_EPS,
        }
        cells = {
            index: agg._chunk_frames(engine, params, days, 20, gate=False, index=index)["cells"]
            for index in ((True, True), (True, False), (False, False))
        }
    finally:
        con.close()

    def labeled(frame: pd.DataFrame) -> int:
        return int(frame["labeled"].sum())

    assert labeled(cells[(True, True)]) == labeled(cells[(False, False)])
    assert labeled(cells[(True, False)]) < labeled(cells[(True, True)])


def test_an_older_lake_reads_the_same_and_migrates_in_place(lakes: dict, tmp_path: Path) -> None:
    source = lakes["homes"]["late"]
    want = _frames(source, lakes, _day_sets(lakes)[1])
    home = tmp_path / "home"
    shutil.copytree(source, home)
    files = _strip_days(home)
    assert len(files) > 2
    # Read without days: the chunk's decisions are found by a semi-join on its items.
    _assert_same(_frames(home, lakes, _day_sets(lakes)[1]), want)

    con = duckdb.connect()
    try:
        # A migration killed after two files: the lake mixes both layouts, and reads the same.
        _add_pred_days(con, Home.at(home), files[:2])
        _assert_same(_frames(home, lakes, _day_sets(lakes)[1]), want)
        assert migrate(con, Home.at(home)) == len(files) - 2  # the rerun finishes the job
        assert migrate(con, Home.at(home)) == 0
    finally:
        con.close()
    for path in files:
        assert {PRED_FIRST, PRED_LAST} <= set(pq.read_schema(path).names)
    _assert_same(_frames(home, lakes, _day_sets(lakes)[1]), want)
    # the same rows, with the days of every prediction landed by then (the backfill's too): as
    # if every prediction had landed before the decisions
    assert _decision_rows(home) == _decision_rows(lakes["homes"]["together"])


def test_ingest_migrates_an_older_lake_first(lakes: dict, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(lakes["homes"]["together"], home)
    files = _strip_days(home)
    extra = lakes["root"] / "backfill"  # already landed: every row a duplicate
    _ingest([extra], home, lakes["segments"])
    assert (Home.at(home).state / "layout" / PRED_DAYS).exists()
    for path in files:
        assert {PRED_FIRST, PRED_LAST} <= set(pq.read_schema(path).names)
    assert _decision_rows(home) == _decision_rows(lakes["homes"]["together"])
