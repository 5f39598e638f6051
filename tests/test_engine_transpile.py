"""Every query of store/sql/*.sql translates to Spark SQL that Spark's grammar accepts (no Spark
needed), with nothing DuckDB-only left; the rewrites keep DuckDB's meaning."""

from __future__ import annotations

from importlib import resources

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from trustramp.store import aggregates as agg
from trustramp.store.duck import sql
from trustramp.store.transpile import _grouping_bits, to_spark

SQL_NAMES = sorted(
    p.name.removesuffix(".sql")
    for p in resources.files("trustramp.store").joinpath("sql").iterdir()
    if p.name.endswith(".sql") and p.name != "latest_decisions.sql"
)
"""Every query file (latest_decisions.sql is a fragment the others include)."""

SPARK_ONLY_CALLS = {"xxhash64"}
"""Functions the translation emits that sqlglot does not model (it parses them back as unknown
calls). Any other unknown call is a DuckDB function sqlglot passed through as it was: Spark may
not have it. Give it a rewrite in store/transpile.py, or, where Spark has it under that name
(check its function list), add it here."""


def expansions(name: str) -> list[str]:
    """The query texts `aggregates` runs from one file: each way its placeholders get filled."""
    days = ["TRUE", "list_contains($days, date)"]
    items: list[str | tuple[str, ...]] = ["TRUE", agg._items_predicted("__DAYS__")]
    meet = "_pred_first <= $end AND _pred_last >= $start"
    late = (  # the parts `_chunk_items` gives a chunk of a lake with late predictions
        f"_pred_first IS NOT NULL AND NOT coalesce({meet}, FALSE) AND item_key IN (SELECT "
        "item_key FROM predictions WHERE feature = $feature AND date BETWEEN $start AND $end "
        "AND _decided_before AND __DAYS__)"
    )
    items.append((meet, "_pred_first IS NULL", late))
    probs = ["class_probabilities", "CAST(NULL AS VARCHAR)"]
    return sorted(
        {
            agg._with_latest(sql(name), items=i, days=d, few=few, held=h).replace(
                "__CLASSPROB__", c
            )
            for d in days
            for i in items
            for few in (False, True)
            for c in probs
            for h in (None, "chunk_latest")
        }
    )


ALL = [(name, q) for name in SQL_NAMES for q in expansions(name)]


def test_every_query_file_is_covered() -> None:
    assert {
        "joined",
        "chunk_latest",
        "shadow",
        "cells",
        "grid",
        "paired_days",
        "mass",
        "classwise_days",
        "sample_days",
        "latency",
        "confidence_hist",
    } <= set(SQL_NAMES)
    assert len(ALL) >= len(SQL_NAMES)


@pytest.mark.parametrize(("name", "query"), ALL, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALL)])
def test_query_parses_as_spark_sql_with_nothing_duckdb_only_left(name: str, query: str) -> None:
    spark = to_spark(query)
    tree = sqlglot.parse_one(spark, read="spark")  # raises on what Spark's grammar refuses
    assert "$" not in spark and "MATERIALIZED" not in spark.upper()
    calls = {str(f.this).lower() for f in tree.find_all(exp.Anonymous)}
    assert calls <= SPARK_ONLY_CALLS, f"{name}: functions passed through untranslated: {calls}"
    assert all(len(g.expressions) <= 1 for g in tree.find_all(exp.Grouping))
    # Parameters survive as Spark's named markers, one for each `$name` the query binds.
    names = ("feature", "start", "end", "days", "bins", "grid_scale", "n_grid", "shift", "cap")
    bound = {p for p in names if f"${p}" in query}
    assert {p for p in bound if f":{p}" in spark} == bound


def test_the_latest_decision_rule_becomes_max_by_a_struct() -> None:
    spark = to_spark(agg._with_latest(sql("joined")))
    assert "MAX_BY(`human_label`, STRUCT(`decided_at`, `decision_id`))" in spark
    assert "MIN_BY(`action`, STRUCT(`decided_at`, `decision_id`))" in spark
    assert "XXHASH64(`item_id`)" in spark


def test_grouping_bits_equal_duckdbs_multi_column_grouping() -> None:
    """The sum of single-column GROUPING bits, run in DuckDB itself, equals DuckDB's
    GROUPING(a, b, c) on every grouping set (the reference the stage-1 frames are split by)."""
    cols = [exp.column(c) for c in ("a", "b", "c")]
    bits = _grouping_bits(cols).sql("duckdb")
    con = duckdb.connect()
    rows = con.execute(
        f"""SELECT GROUPING(a, b, c) AS duck, {bits} AS summed
            FROM (SELECT range % 2 AS a, range % 3 AS b, range % 5 AS c FROM range(30))
            GROUP BY GROUPING SETS ((a, b, c), (a), (b, c), (c), ())"""
    ).fetchall()
    assert {d for d, _ in rows} == {0b000, 0b011, 0b100, 0b110, 0b111}
    assert all(d == s for d, s in rows)


def test_cells_grouping_ids_are_the_split_constants() -> None:
    """The rewritten GROUPING of cells.sql weighs its columns as `aggregates.GROUPING` reads them."""
    spark = to_spark(agg._with_latest(sql("cells")))
    assert "GROUPING(`segment`) * 128" in spark and "GROUPING(`human_label`) * 1)" in spark


def test_json_transform_of_an_unknown_shape_is_refused() -> None:
    from trustramp.errors import StoreError

    with pytest.raises(StoreError, match="json_transform"):
        to_spark("SELECT json_transform(x, '\"STRUCT(a INTEGER)\"') FROM t")


def test_a_parameter_is_bound_only_where_its_whole_name_is_used() -> None:
    params = {"version": "v1", "versions": ["v1"], "days": [], "day": None}
    assert agg._bound("SELECT list_contains($versions, x), $day", params) == {
        "versions": ["v1"],
        "day": None,
    }


def test_a_duckdb_function_sqlglot_does_not_know_is_caught() -> None:
    """The guard above works: a DuckDB-only call sqlglot does not know survives translation as
    an unknown call. (One it knows but writes wrongly for Spark, e.g. list_has_any as `a && b`,
    only Spark's analyzer catches: test_engine_spark.py, where Java is present.)"""
    spark = to_spark("SELECT list_reduce(a, 1), hash(c) FROM t")
    tree = sqlglot.parse_one(spark, read="spark")
    calls = {str(f.this).lower() for f in tree.find_all(exp.Anonymous)}
    assert calls - SPARK_ONLY_CALLS == {"list_reduce"}
