"""DuckDB and Spark (`local[1]`) give identical day statistics on a small demo lake: counts
exactly, float sums to 1e-9 relative. Needs pyspark (`trustramp[spark]`) and Java 17 or 21."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from trustramp.store import daycache
from trustramp.store.aggregates import Aggregates, compute_aggregates, data_window
from trustramp.store.lake import Home, reader

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'trustramp[spark]')")
from trustramp.store.spark import SparkEngine, find_java_home

if find_java_home() is None:
    pytest.skip("no Java 17 or 21 on this machine (Spark 4 needs one)", allow_module_level=True)

pytestmark = pytest.mark.slow

FRAMES = daycache.FRAMES
FLOATS = {"conf_sum", "conf_sq_sum", "conf_hit_sum", "nll_sum", "prob_sum", "confidence"}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """3,000 demo predictions over 30 days (several decisions per item for some)."""
    from conftest import ingested_demo

    demo = ingested_demo(tmp_path_factory.mktemp("spark-demo"), 3_000)
    return {"home": demo["home"], "feature": demo["config"].feature, "config": demo["config"]}


@pytest.fixture(scope="module")
def spark(lake: dict[str, object]) -> Iterator[SparkEngine]:
    engine = SparkEngine.start(master="local[1]")
    yield engine
    engine.stop()


def copy_lake(lake: dict, folder: Path) -> Path:
    """A home of its own with the shared lake (tests that write a day cache or runs use one)."""
    shutil.copytree(lake["home"], folder / "home")
    return folder / "home"


def assert_same(
    duck: Aggregates, spark: Aggregates, *, some: bool = True, names: tuple[str, ...] = FRAMES
) -> None:
    """Equal frames; each with rows unless `some` is false (a few days may have no paired
    items)."""
    for name in names:
        a, b = getattr(duck, name), getattr(spark, name)
        if isinstance(a, pa.Table):  # the gate frames: the same Arrow schema on both engines
            assert a.schema == b.schema, name
            a, b = a.to_pandas(), b.to_pandas()
        assert len(a) > 0 or not some, name
        assert dict(a.dtypes) == dict(b.dtypes), name
        keys = [c for c in a.columns if c not in FLOATS and c not in _counts(name)]
        a = a.sort_values(keys, na_position="first").reset_index(drop=True)
        b = b.sort_values(keys, na_position="first").reset_index(drop=True)
        exact = [c for c in a.columns if c not in FLOATS]
        pd.testing.assert_frame_equal(a[exact], b[exact], check_exact=True, obj=name)
        for c in FLOATS & set(a.columns):
            np.testing.assert_allclose(b[c], a[c], rtol=1e-9, atol=0, err_msg=f"{name}.{c}")


def _counts(name: str) -> set[str]:
    from trustramp.store.aggregates import CELL_MEASURES

    return (
        set(CELL_MEASURES)
        if name in ("cells", "customers")
        else {
            "grid": {"labeled", "correct", "n"},
            "mass": {"n", "correct"},
            "classwise": {"n", "hits"},
            "sample": set(),
            "confusion": {"n", "rows"},
        }.get(name, {"n"})
    )


def test_whole_window_day_statistics_are_identical(lake: dict, spark: SparkEngine) -> None:
    spark.attach(Home.at(lake["home"]))
    con = reader(Home.at(lake["home"]))
    try:
        start, end = data_window(con, lake["feature"])
        duck = compute_aggregates(con, lake["feature"], start, end)
    finally:
        con.close()
    assert_same(duck, compute_aggregates(spark, lake["feature"], start, end))
    assert duck.cells["labeled"].sum() > 0 and duck.cells["accepted_wrong"].sum() > 0


def test_some_days_restrict_the_decisions_alike(lake: dict, spark: SparkEngine) -> None:
    """A few scattered days (an incremental run): the days are a bound list and the decisions
    are restricted to those days' items (`MATERIALIZED` on DuckDB, dropped on Spark)."""
    spark.attach(Home.at(lake["home"]))
    con = reader(Home.at(lake["home"]))
    try:
        start, end = data_window(con, lake["feature"])
        days = [start + dt.timedelta(days=i) for i in (1, 4, 5, 17)]
        duck = compute_aggregates(con, lake["feature"], start, end, days=days)
    finally:
        con.close()
    got = compute_aggregates(spark, lake["feature"], start, end, days=days)
    assert set(got.cells["day"]) == set(days)
    assert_same(duck, got, some=False)
    assert len(got.cells) and len(got.grid) and len(got.sample)


def test_a_nights_decisions_update_the_days_alike(lake: dict, spark: SparkEngine) -> None:
    """`decision_delta` (a night's late decisions as sums to add and take away) on both, for
    days with the gate frames and days without."""
    from trustramp.store.aggregates import decision_delta

    spark.attach(Home.at(lake["home"]))
    con = reader(Home.at(lake["home"]))
    try:
        _, end = data_window(con, lake["feature"])
        sources = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT _source FROM decisions WHERE date >= ? ORDER BY 1",
                [end - dt.timedelta(days=2)],
            ).fetchall()
        ]
        days = [end - dt.timedelta(days=i) for i in range(0, 8)]
        duck = decision_delta(con, lake["feature"], days, sources, gate=days[:5])
    finally:
        con.close()
    assert sources
    got = decision_delta(spark, lake["feature"], days, sources, gate=days[:5])
    assert duck.new["cells"]["labeled"].to_numpy().sum() > 0 and len(duck.new["sample"])
    assert set(duck.new["cells"]["day"].to_pylist()) - set(days[:5])  # plain days too
    assert set(duck.new["grid"]["day"].to_pylist()) <= set(days[:5])
    for d, g in ((duck.new, got.new), (duck.old, got.old)):
        assert_same(SimpleNamespace(**d), SimpleNamespace(**g), names=tuple(d), some=False)  # type: ignore[arg-type]


def test_evaluate_on_spark_gives_duckdbs_verdict_and_metrics(
    lake: dict, spark: SparkEngine, tmp_path: Path
) -> None:
    """A whole evaluation with `--engine spark` (stage 1 on Spark, joining the running session,
    through `daycache.refresh`, which attaches the lake to it under the writer lock) writes the
    same day files, and decides the same verdict from the same metrics, as one on DuckDB."""
    from trustramp.pipeline import evaluate
    from trustramp.store import daycache
    from trustramp.store.engine import EngineSpec

    results, cached = {}, {}
    for name in ("duckdb", "spark"):
        copy = copy_lake(lake, tmp_path / name)
        con = reader(Home.at(copy))
        _, end = data_window(con, lake["feature"])
        con.close()
        results[name] = evaluate(
            home=copy,
            reports=tmp_path / name / "reports",
            as_of=end,
            config=lake["config"],
            engine=EngineSpec.of(name, spark_master="local[1]" if name == "spark" else None),
        )
        days = results[name].extras["recomputed_days"]
        assert len(days) >= 14
        cfg = lake["config"]
        cached[name] = daycache.load(
            Home.at(copy), lake["feature"], min(days), max(days), daycache.Key.of(cfg)
        )
    assert_same(cached["duckdb"], cached["spark"])
    duck, got = (_rounded(results[n].verdict.to_dict()) for n in ("duckdb", "spark"))
    assert got == duck
    assert duck["criteria"] and duck["reasons"]
    pd.testing.assert_frame_equal(results["duckdb"].metrics, results["spark"].metrics, rtol=1e-9)


def _rounded(doc: object) -> object:
    """A verdict document with floats to 12 significant digits (sums may differ in the last
    bits between engines)."""
    if isinstance(doc, dict):
        return {k: _rounded(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_rounded(v) for v in doc]
    return float(f"{doc:.12g}") if isinstance(doc, float) else doc


def test_nightly_spark_refresh_leaves_the_evaluation_nothing_to_recompute(
    lake: dict, spark: SparkEngine, tmp_path: Path
) -> None:
    """The nightly-spark flow's Spark step (its task, run directly) recomputes every day of
    the window in one Spark application; the evaluation after it, on DuckDB, then finds every
    day fresh and decides what an evaluation on DuckDB alone decides."""
    import sys

    from trustramp.orchestrate import load_flow
    from trustramp.pipeline import evaluate
    from trustramp.store.engine import EngineSpec

    load_flow("nightly-spark")
    refresh_task = sys.modules["nightly_spark"].refresh_days_on_spark
    homes = {name: copy_lake(lake, tmp_path / name) for name in ("spark", "duckdb")}
    con = reader(Home.at(homes["spark"]))
    _, end = data_window(con, lake["feature"])
    con.close()
    days = refresh_task.fn(
        [lake["config"]], homes["spark"], end, EngineSpec.of("spark", spark_master="local[1]"), 60.0
    )
    assert len(days[lake["feature"]]) >= 14  # the whole window: nothing was cached
    results = {
        name: evaluate(
            home=home,
            reports=tmp_path / name / "reports",
            as_of=end,
            config=lake["config"],
            engine=EngineSpec.of("duckdb"),
        )
        for name, home in homes.items()
    }
    assert results["spark"].extras["recomputed_days"] == []
    assert results["duckdb"].extras["recomputed_days"] == days[lake["feature"]]
    assert _rounded(results["spark"].verdict.to_dict()) == _rounded(
        results["duckdb"].verdict.to_dict()
    )


ROW_QUERIES = ("grid", "paired_days", "mass", "classwise_days", "sample_days")
"""The per-day queries over `joined` whose rows are compared here too (cells.sql is compared
through `compute_aggregates` above); not slice_counts.sql (DuckDB's JSON path syntax,
`$."column"`, is not Spark's: it runs on DuckDB only)."""


def test_every_query_file_runs_on_spark_with_duckdbs_columns(
    lake: dict, spark: SparkEngine
) -> None:
    """Beyond parsing: every store/sql/*.sql file, translated, passes Spark's analyzer with the
    column names DuckDB gives it, and the per-day queries over `joined` (held by each engine
    from joined.sql) also give DuckDB's rows, the md5-keyed sample included."""
    from test_engine_transpile import SQL_NAMES

    from trustramp.store import aggregates as agg
    from trustramp.store.duck import sql
    from trustramp.store.engine import DuckEngine
    from trustramp.store.spark import _args
    from trustramp.store.transpile import to_spark

    home = Home.at(lake["home"])
    spark.attach(home)
    con = reader(home)
    try:
        start, end = data_window(con, lake["feature"])
        params = {
            "feature": lake["feature"],
            "start": start,
            "end": end,
            "days": [start + dt.timedelta(days=i) for i in range((end - start).days + 1)],
            "version": "v1",
            "bins": 15,
            "grid_scale": 10_000,
            "n_grid": 100,
            "eps": 1e-15,
            "n_log": 672,
            "max_ms": 600_000.0,
            "shift": agg.sample_shift(3),
            "cap": 40,
            "margin": 2.0,
            "versions": sorted(
                v
                for (v,) in con.execute("SELECT DISTINCT model_version FROM predictions").fetchall()
            ),
            "path": '$."x"',
        }

        def text(name: str) -> str:
            return agg._with_latest(
                sql(name),
                items=agg._items_predicted("__DAYS__"),
                days="list_contains($days, date)",
                few=True,
            ).replace("__CLASSPROB__", "class_probabilities")

        joined = text("joined")
        bound = agg._bound(joined, params)
        with DuckEngine(con).held("joined", joined, bound), spark.held("joined", joined, bound):
            for name in SQL_NAMES:
                query = text(name)
                bound = agg._bound(query, params)
                duck = con.execute(query, bound).df()
                got = spark.spark.sql(to_spark(query), args=_args(bound))
                assert got.columns == list(duck.columns), name
                if name in ROW_QUERIES:
                    assert len(duck) > 0, name
                    rows = spark.query(query, bound)
                    keys = list(duck.columns)
                    a = duck.sort_values(keys).reset_index(drop=True)
                    b = rows.sort_values(keys).reset_index(drop=True)
                    pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9, obj=name)
    finally:
        con.close()
