"""Stage one input file: check every row in SQL, deduplicate, split into lake rows and quarantine.

Everything is written under `HOME/tmp/<src>/`; `lake.commit_source` moves it into place. The raw file
is never loaded whole: batches stream through DuckDB into typed Parquet, and the deduplication and
partitioning run in DuckDB over those files with a bounded memory limit.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trustramp import __version__
from trustramp.contract import (
    DATE,
    FEATURE,
    ITEM_KEY,
    ROW_HASH,
    SOURCE,
    UNMATCHED_FEATURE,
    Kind,
    Schema,
)
from trustramp.ingest.checks import lake_columns, validation_sql
from trustramp.ingest.readers import LINE, ROW, NeedsExactReader, Source
from trustramp.store.duck import quote_ident, quote_literal, translated
from trustramp.store.lake import Home, relations


@dataclass
class StagedFile:
    """What staging one file produced (counts satisfy read = new + duplicate + quarantined)."""

    src: str
    path: Path
    kind: Kind
    fmt: str
    rows_read: int = 0
    rows_new: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    parts_dir: Path | None = None
    dirty: set[tuple[str, dt.date]] = field(default_factory=set)
    """(feature, prediction date) days whose aggregates this file changes."""
    quarantine_file: Path | None = None
    log_file: Path | None = None


def stage_file(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    src: str,
    schema: Schema,
    open_source: Callable[[bool], Source],
    *,
    segments: Sequence[str],
    pending: Mapping[Kind, Sequence[Path]] | None = None,
) -> StagedFile:
    """Check, deduplicate and partition one file into `HOME/tmp/<src>/` (nothing visible yet).

    `pending` holds the staged-but-uncommitted parts folders of earlier files of the same run, per
    kind: rows there count as already landed for deduplication and for decisions' feature lookup.
    """
    pending = pending or {}
    stage = home.staging(src)
    shutil.rmtree(stage, ignore_errors=True)
    checked_dir = stage / "checked"
    checked_dir.mkdir(parents=True)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _segments AS SELECT unnest(?::VARCHAR[]) AS s",
        [list(segments)],
    )
    source = open_source(False)
    try:
        _check_batches(con, schema, source, checked_dir)
    except NeedsExactReader:
        shutil.rmtree(checked_dir)
        checked_dir.mkdir()
        source = open_source(True)
        _check_batches(con, schema, source, checked_dir)

    staged = StagedFile(src=src, path=source.path, kind=schema.kind, fmt=source.fmt)
    if not any(checked_dir.iterdir()):
        staged.log_file = _write_log(stage, staged)
        return staged
    checked = f"read_parquet({quote_literal(str(checked_dir / '*.parquet'))})"
    with translated(f"{source.path}: deduplicating"):
        _fates(con, _landed(home, schema.kind, pending), schema, checked)
        staged.rows_read = con.execute(f"SELECT count(*) FROM {checked}").fetchall()[0][0]
        staged.parts_dir = _write_parts(
            con, _landed(home, Kind.PREDICTIONS, pending), schema, checked, stage, src, staged
        )
        staged.quarantine_file = _write_quarantine(con, schema, checked, stage, src, staged)
        staged.dirty = _dirty_days(
            con, schema, staged.parts_dir, _landed(home, Kind.PREDICTIONS, pending)
        )
    staged.rows_duplicate = staged.rows_read - staged.rows_new - staged.rows_quarantined
    staged.log_file = _write_log(stage, staged)
    return staged


def _check_batches(
    con: duckdb.DuckDBPyConnection, schema: Schema, source: Source, checked_dir: Path
) -> None:
    query: str | None = None
    for i, batch in enumerate(source.batches):
        if query is None:
            types = {f.name: f.type for f in batch.schema}
            query = validation_sql(schema, types, source.fmt)
        con.register("batch", batch)
        try:
            with translated(f"{source.path}: checking rows"):
                con.execute(
                    f"COPY ({query}) TO {quote_literal(str(checked_dir / f'{i:06d}.parquet'))} "
                    "(FORMAT parquet, COMPRESSION zstd)"
                )
        finally:
            con.unregister("batch")


def _landed(home: Home, kind: Kind, pending: Mapping[Kind, Sequence[Path]]) -> str:
    """SQL of the rows of `kind` that count as landed: committed, plus this run's staged parts."""
    committed = relations(home)[kind.value]
    parts = [str(p / "*" / "*" / "*.parquet") for p in pending.get(kind, ())]
    if not parts:
        return committed
    staged = (
        f"SELECT * FROM read_parquet([{', '.join(quote_literal(x) for x in parts)}], "
        f"hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{'{FEATURE}': VARCHAR, '{DATE}': DATE}})"
    )
    return f"({committed}) UNION ALL BY NAME ({staged})"


def _fates(con: duckdb.DuckDBPyConnection, lake: str, schema: Schema, checked: str) -> None:
    """Temp table `_not_new`: every valid row that must not land, and why (duplicate or conflict)."""
    idc = quote_ident(schema.id_column)
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE _not_new AS
WITH valid AS (SELECT {ROW}, {LINE}, {idc} AS id, {ROW_HASH} FROM {checked} WHERE _reason IS NULL),
firsts AS (SELECT id, arg_min({ROW_HASH}, {ROW}) AS first_hash, min({ROW}) AS first_row
           FROM valid GROUP BY id),
lake AS (SELECT {idc} AS id, {ROW_HASH} AS lake_hash FROM ({lake}) l
         WHERE {idc} IN (SELECT id FROM valid))
SELECT v.{ROW}, v.{LINE}, v.id, f.first_row,
       CASE WHEN l.id IS NOT NULL AND l.lake_hash = v.{ROW_HASH} THEN 'duplicate'
            WHEN l.id IS NOT NULL THEN 'conflict_lake'
            WHEN v.{ROW} = f.first_row THEN 'new'
            WHEN v.{ROW_HASH} = f.first_hash THEN 'duplicate'
            ELSE 'conflict_file' END AS fate
FROM valid v JOIN firsts f USING (id) LEFT JOIN lake l USING (id)
WHERE l.id IS NOT NULL OR v.{ROW} <> f.first_row
""")


def _write_parts(
    con: duckdb.DuckDBPyConnection,
    preds: str,
    schema: Schema,
    checked: str,
    stage: Path,
    src: str,
    staged: StagedFile,
) -> Path | None:
    cols = [n for n, _ in lake_columns(schema)]
    select_cols = ", ".join(f"c.{quote_ident(n)}" for n in cols)
    time_col = quote_ident(schema.time_column)
    if schema.feature_column:
        feature = f"c.{quote_ident(schema.feature_column)}"
        join = ""
    else:
        # Decisions: file them under the feature of the item's prediction, when it has landed.
        join = (
            f"LEFT JOIN (SELECT {ITEM_KEY}, arg_max({FEATURE}, predicted_at) AS feature "
            f"FROM ({preds}) p WHERE {ITEM_KEY} IN (SELECT {ITEM_KEY} FROM {checked}) "
            f"GROUP BY {ITEM_KEY}) m ON m.{ITEM_KEY} = c.{ITEM_KEY}"
        )
        feature = f"coalesce(m.feature, {quote_literal(UNMATCHED_FEATURE)})"
    landing = (
        f"SELECT {select_cols}, {quote_literal(src)} AS {SOURCE}, {feature} AS {FEATURE}, "
        f"CAST(c.{time_col} AS DATE) AS {DATE} FROM {checked} c {join} "
        f"WHERE c._reason IS NULL AND c.{ROW} NOT IN (SELECT {ROW} FROM _not_new)"
    )
    parts = stage / "parts"
    copied = con.execute(
        f"COPY ({landing}) TO {quote_literal(str(parts))} (FORMAT parquet, "
        f"PARTITION_BY ({FEATURE}, {DATE}), COMPRESSION zstd)"
    ).fetchall()
    staged.rows_new = int(copied[0][0]) if copied else 0
    if staged.rows_new == 0:
        shutil.rmtree(parts, ignore_errors=True)
        return None
    return parts


def _dirty_days(
    con: duckdb.DuckDBPyConnection, schema: Schema, parts: Path | None, preds: str
) -> set[tuple[str, dt.date]]:
    """The (feature, prediction date) days whose aggregates the staged rows change."""
    if parts is None or schema.kind not in (Kind.PREDICTIONS, Kind.DECISIONS):
        return set()
    files = quote_literal(str(parts / "*" / "*" / "*.parquet"))
    if schema.kind is Kind.PREDICTIONS:
        query = (
            f"SELECT DISTINCT {FEATURE}, {DATE} FROM read_parquet({files}, "
            f"hive_partitioning = true, hive_types = {{'{FEATURE}': VARCHAR, '{DATE}': DATE}})"
        )
    else:
        query = (
            f"SELECT DISTINCT p.{FEATURE}, p.{DATE} FROM ({preds}) p WHERE p.{ITEM_KEY} IN "
            f"(SELECT {ITEM_KEY} FROM read_parquet({files}))"
        )
    with translated("finding the days to recompute"):
        return {(f, d) for f, d in con.execute(query).fetchall()}


AUDIT_ROWS = 200_000
"""Rows per kind and run that the Great Expectations audit sees by default (a seeded sample)."""


def audit_staged(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    parts_dirs: Sequence[Path],
    audit: Callable[[Kind, pd.DataFrame], list[str]],
) -> list[str]:
    """Run the contract audit over rows staged to land (in chunks); returns failed expectations.

    Great Expectations validates pandas frames in Python, at a few hundred thousand rows a second
    on this class of machine, so by default it audits a seeded reservoir sample of
    `AUDIT_ROWS` rows per kind and run (every row when there are fewer); set the environment
    variable TRUSTRAMP_GX_AUDIT_ROWS to `all` to audit every row. The row-level SQL checks, which
    decide the quarantine, always see every row.
    """
    files = [str(p / "*" / "*" / "*.parquet") for p in parts_dirs]
    if not files:
        return []
    names = [c for c in schema.names if c != FEATURE]
    limit = os.environ.get("TRUSTRAMP_GX_AUDIT_ROWS", str(AUDIT_ROWS)).strip().lower()
    sample = "" if limit == "all" else f" USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE (7)"
    query = (
        f"SELECT {', '.join(quote_ident(n) for n in names)} FROM read_parquet("
        f"[{', '.join(quote_literal(f) for f in files)}], union_by_name = true){sample}"
    )
    failed: list[str] = []
    with translated(f"auditing staged {schema.kind.value}"):
        for batch in con.sql(query).to_arrow_reader(1_000_000):
            failed += [f for f in audit(schema.kind, batch.to_pandas()) if f not in failed]
    return failed


def _write_quarantine(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    checked: str,
    stage: Path,
    src: str,
    staged: StagedFile,
) -> Path | None:
    idc = quote_ident(schema.id_column)
    id_name = schema.id_column
    conflicts = f"""
SELECT c.{ROW}, c.{LINE},
       CASE WHEN n.fate = 'conflict_lake' THEN 'conflict:{id_name}'
            ELSE 'conflict:{id_name}' END AS _reason,
       CASE WHEN n.fate = 'conflict_lake'
            THEN '{id_name} ' || '''' || n.id || '''' ||
                 ' is already in the lake with different content; not overwritten'
            ELSE '{id_name} ' || '''' || n.id || '''' || ' repeats row ' || n.first_row ||
                 ' of this file with different content; the first one was kept' END AS _detail,
       CAST(to_json(c) AS VARCHAR) AS _raw
FROM {checked} c JOIN _not_new n USING ({ROW})
WHERE n.fate IN ('conflict_lake', 'conflict_file')
"""
    _ = idc
    bad = f"SELECT {ROW}, {LINE}, _reason, _detail, _raw FROM {checked} WHERE _reason IS NOT NULL"
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE _quarantine AS
SELECT {quote_literal(src)} AS source, {quote_literal(str(staged.path))} AS file,
       {quote_literal(schema.kind.value)} AS kind, {ROW} AS row_number, {LINE} AS line,
       _reason AS reason, _detail AS detail, left(_raw, 4096) AS raw,
       now() AS quarantined_at
FROM ({bad} UNION ALL {conflicts})
""")
    rows = con.execute("SELECT reason, count(*) FROM _quarantine GROUP BY reason").fetchall()
    staged.reasons = Counter({r: int(n) for r, n in rows})
    staged.rows_quarantined = sum(staged.reasons.values())
    if not staged.rows_quarantined:
        return None
    out = stage / "quarantine.parquet"
    con.execute(
        f"COPY (SELECT * FROM _quarantine ORDER BY row_number) TO "
        f"{quote_literal(str(out))} (FORMAT parquet)"
    )
    return out


def _write_log(stage: Path, staged: StagedFile) -> Path:
    stage.mkdir(parents=True, exist_ok=True)
    record = pa.table(
        {
            "source": [staged.src],
            "file": [str(staged.path)],
            "kind": [staged.kind.value],
            "format": [staged.fmt],
            "rows_read": pa.array([staged.rows_read], pa.int64()),
            "rows_new": pa.array([staged.rows_new], pa.int64()),
            "rows_duplicate": pa.array([staged.rows_duplicate], pa.int64()),
            "rows_quarantined": pa.array([staged.rows_quarantined], pa.int64()),
            "ingested_at": pa.array([dt.datetime.now(dt.UTC)], pa.timestamp("us", tz="UTC")),
            "trustramp_version": [__version__],
        }
    )
    out = stage / "ingest_log.parquet"
    pq.write_table(record, out)
    return out
