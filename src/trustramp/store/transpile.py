"""DuckDB's dialect of `store/sql/*.sql` → Spark SQL: sqlglot, plus the few rewrites it needs.

The queries are written once, for DuckDB (the embedded default). sqlglot translates most of it
(`list_contains` → `ARRAY_CONTAINS`, `json_extract_string` → `GET_JSON_OBJECT`, `$name` →
`:name`, `COUNT(*) FILTER`, `GROUP BY ALL`, DuckDB's NULLS LAST default); what it leaves as
DuckDB-only, or translates into something Spark refuses, is rewritten on the syntax tree here:

- `AS [NOT] MATERIALIZED` CTE hints: dropped (Spark plans CTEs itself);
- multi-column `GROUPING(a, b, …)`: DuckDB's bit mask (first column = highest bit) as a sum of
  single-column `GROUPING(x) * 2^k` (Spark's `GROUPING_ID(…)` refused our grouping sets);
- `arg_max(x, (a, b))` / `arg_min`: `MAX_BY(x, STRUCT(a, b))` / `MIN_BY` (a struct compares
  field by field, as DuckDB's tuple does);
- `hash(x)`: `XXHASH64(x)`, also a 64-bit hash, but of other values. The queries use it only as
  an equality key inside one engine (`id_hash`); what orders or samples uses the md5 key
  `item_key` (sample_days.sql), the same on every engine;
- `json_transform(x, '"MAP(VARCHAR, DOUBLE)"')`: `FROM_JSON(x, 'MAP<STRING, DOUBLE>')`;
- `list_position(list, x)`: `ARRAY_POSITION(list, x)` (both 1-based; used on values the list holds).

Every identifier is quoted on output (`date`, `mode` and `day` are keywords to Spark's parser).
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp

from trustramp.errors import StoreError

_SPARK_TYPES = {"VARCHAR": "STRING", "DOUBLE": "DOUBLE", "BIGINT": "BIGINT", "INTEGER": "INT"}


def to_spark(query: str) -> str:
    """Spark SQL for one DuckDB query (its placeholders already filled, e.g. `__LATEST__`)."""
    return _to_spark(query)


@functools.lru_cache(maxsize=256)
def _to_spark(query: str) -> str:
    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise StoreError(f"cannot translate a query to Spark SQL: {e}") from e
    tree = tree.transform(_rewrite)
    return tree.sql("spark", identify=True, comments=False)


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
        return node
    if isinstance(node, exp.Grouping) and len(node.expressions) > 1:
        return _grouping_bits(node.expressions)
    if isinstance(node, exp.ArgMax | exp.ArgMin) and isinstance(node.expression, exp.Tuple):
        key = exp.Struct(expressions=[e.copy() for e in node.expression.expressions])
        name = "MAX_BY" if isinstance(node, exp.ArgMax) else "MIN_BY"
        return exp.Anonymous(this=name, expressions=[node.this.copy(), key])
    if _is_call(node, "hash") and len(node.expressions) == 1:
        return exp.Anonymous(this="XXHASH64", expressions=[node.expressions[0].copy()])
    if _is_call(node, "json_transform"):
        return _from_json(node)
    if _is_call(node, "list_position") and len(node.expressions) == 2:
        return exp.Anonymous(
            this="ARRAY_POSITION", expressions=[e.copy() for e in node.expressions]
        )
    return node


def _is_call(node: exp.Expression, name: str) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.this).lower() == name


def _grouping_bits(columns: list[exp.Expression]) -> exp.Expression:
    """DuckDB's GROUPING(c1, …, cn): bit n-1-i is 1 when c_i is not grouped."""
    n = len(columns)
    terms: list[exp.Expression] = [
        exp.Mul(
            this=exp.Grouping(expressions=[c.copy()]),
            expression=exp.Literal.number(2 ** (n - 1 - i)),
        )
        for i, c in enumerate(columns)
    ]
    total = terms[0]
    for t in terms[1:]:
        total = exp.Add(this=total, expression=t)
    return exp.Paren(this=total)


def _from_json(node: exp.Anonymous) -> exp.Expression:
    """json_transform(x, '"MAP(K, V)"') → FROM_JSON(x, 'MAP<K, V>') for the scalar types used."""
    source, shape = node.expressions
    text = shape.name.strip('"').upper().replace(" ", "")
    if not (text.startswith("MAP(") and text.endswith(")")):
        raise StoreError(f"cannot translate json_transform to Spark SQL: shape {shape.name!r}")
    key, value = text[4:-1].split(",")
    if key not in _SPARK_TYPES or value not in _SPARK_TYPES:
        raise StoreError(f"cannot translate json_transform to Spark SQL: shape {shape.name!r}")
    spark_type = f"MAP<{_SPARK_TYPES[key]}, {_SPARK_TYPES[value]}>"
    return exp.Anonymous(
        this="FROM_JSON", expressions=[source.copy(), exp.Literal.string(spark_type)]
    )
