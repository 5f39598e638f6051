"""Stage the files of one kind together: check every row in SQL, deduplicate, split into lake rows
and quarantine, per file.

Set-based: the files' rows are checked by a few queries per kind (DuckDB's Parquet reader for
plain Parquet files, one Arrow stream per format otherwise; a file on its own only when it must
be), into a DuckDB table when they fit in half of DuckDB's memory limit, else into Parquet
files, read as the view `_checked`, each row tagged with its file's position in the run. The
scratch tables the lake writes read are the connection's database's, not temp tables, so that
the writes can run on several connections at once (`_copy_plain`): staging needs a connection
of its own (an in-memory database, as `duck.connect` makes by default).
Deduplication, the decisions' feature lookup (one scan of the predictions per run), the dirty
days, the quarantine and the contract audit's sample then run once per kind, not once per file.
Everything is written under `HOME/tmp/run-<id>/`, one folder of lake parts per file, and
`lake.commit_sources` moves the files into place, each with its own commit record, in run order.
The raw files are never loaded whole, and DuckDB's memory limit bounds every step.

A file that cannot be read, or breaks while being read, fails alone: its rows are left out of
`_checked` before the set-based steps run, and nothing of it is staged.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trustramp import __version__
from trustramp.contract import (
    DATE,
    DECIDED_BEFORE,
    FEATURE,
    ITEM_KEY,
    PRED_FIRST,
    PRED_LAST,
    ROW_HASH,
    SOURCE,
    UNMATCHED_FEATURE,
    ColType,
    Kind,
    Schema,
)
from trustramp.errors import TrustrampError
from trustramp.ingest.checks import row_hash_sql, validation_sql
from trustramp.ingest.readers import (
    FILE,
    LINE,
    ROW,
    NeedsExactReader,
    Source,
    file_format,
    source_names,
)
from trustramp.store.columns import lake_columns
from trustramp.store.duck import memory_limit_bytes, quote_ident, quote_literal, translated
from trustramp.store.lake import Home, relations

_SPAN = 1 << 40
_ORDER = f"({FILE} * {_SPAN} + {ROW})"
_ORDER_C = f"(c.{FILE} * {_SPAN} + c.{ROW})"
"""Run order of a row: file position, then row number (below 2**40 rows per file)."""
_LAKE_HIVE = f"hive_partitioning = true, hive_types = {{'{FEATURE}': VARCHAR, '{DATE}': DATE}}"


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


@dataclass(frozen=True)
class SourceFile:
    """One file to stage: its content hash, path and a way to open it (`exact` for CSV)."""

    src: str
    path: Path
    open: Callable[[bool], Source]


@dataclass
class StagedKind:
    """What staging the files of one kind produced: staged files, and files that failed."""

    staged: list[StagedFile]
    failed: list[tuple[SourceFile, str]]


def new_run_dir(home: Home) -> Path:
    """A fresh scratch folder for one run's staging (`lake.sweep` removes a killed run's)."""
    run = home.tmp / f"run-{uuid.uuid4().hex[:12]}"
    run.mkdir(parents=True)
    return run


def stage_kind(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    run_dir: Path,
    schema: Schema,
    files: Sequence[SourceFile],
    *,
    segments: Sequence[str],
    run_predictions: Sequence[Path] = (),
    audit_sample: AuditSample | None = None,
) -> StagedKind:
    """Check, deduplicate and partition the files of one kind under `run_dir` (nothing visible).

    Files count in the order given: a row whose id an earlier row of the run (or the lake) has
    is a duplicate when identical and a conflict otherwise. `run_predictions` are the parts
    folders of predictions staged earlier in this run: decisions find their item's feature there
    as in the lake. `audit_sample`, when given, gets the contract audit's sample of the rows
    that land (or the error that kept it from being drawn) before the lake parts are written.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _segments AS SELECT unnest(?::VARCHAR[]) AS s",
        [list(segments)],
    )
    in_memory = _checked_bytes(files) <= memory_limit_bytes(con) // 2
    while True:
        checked = _Checked(con, run_dir / f"checked-{schema.kind.value}", in_memory=in_memory)
        try:
            return _stage_checked(
                con, home, run_dir, schema, files, checked, run_predictions, audit_sample
            )
        except _TooWide:  # wider rows than the estimate: again, with the rows on disk
            in_memory = False
        finally:
            try:  # the checked rows hold memory: gone also when staging broke (a retry follows)
                checked.discard(con)
                for table in _SCRATCH_TABLES:
                    con.execute(f"DROP TABLE IF EXISTS {table}")
            except duckdb.Error:
                pass


_SCRATCH_TABLES = ("_not_new", "_quarantine", "_item_days", "_item_feature", "_excluded", "_late")


def _stage_checked(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    run_dir: Path,
    schema: Schema,
    files: Sequence[SourceFile],
    checked: _Checked,
    run_predictions: Sequence[Path],
    audit_sample: AuditSample | None,
) -> StagedKind:
    fmts: dict[int, str] = {}
    errors: dict[int, str] = {}
    alone: list[int] = []
    by_format: dict[str, list[tuple[int, SourceFile]]] = {}
    for i, f in enumerate(files):
        by_format.setdefault(file_format(f.path), []).append((i, f))
    for fmt, group in by_format.items():  # one query per format, not one per file and batch
        if fmt == "parquet":
            group = _check_parquet(con, schema, group, fmts, checked)
        stream = _Stream(group)
        _check_stream(con, schema, stream, checked)
        fmts.update(stream.fmts)
        errors.update(stream.failed)
        alone += stream.alone
    for i in sorted(alone):  # files that could not share the query: one query per batch
        try:
            fmts[i] = _check_file(con, schema, files[i], i, checked)
        except TrustrampError as e:
            errors[i] = str(e)
        except MemoryError:
            errors[i] = f"{files[i].path}: out of memory while checking its rows"
    failed = [(files[i], errors[i]) for i in sorted(errors)]
    ok = [(i, f, fmts[i]) for i, f in enumerate(files) if i not in errors]
    staged = {i: StagedFile(src=f.src, path=f.path, kind=schema.kind, fmt=fmt) for i, f, fmt in ok}
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _files AS SELECT unnest(?::INTEGER[]) AS {FILE}, "
        "unnest(?::VARCHAR[]) AS src, unnest(?::VARCHAR[]) AS file",
        [[i for i, _, _ in ok], [f.src for _, f, _ in ok], [str(f.path) for _, f, _ in ok]],
    )
    if staged and checked.attach(con):
        with translated(f"staging {schema.kind.value}: deduplicating"):
            _fates(con, relations(home)[schema.kind.value], schema)
            features = _item_features(con, home, schema, run_predictions)
            late = _decided_before(con, home, schema)
            _count(con, staged)
            kept = _kept(con)
            if audit_sample is not None:
                landing = sum(s.rows_new for s in staged.values())
                _sample_for_audit(con, schema, kept, landing, audit_sample)
            sources = [f.src for f in files]
            landing = _landing(schema, features, sources, kept, late)
            _write_parts(con, schema, run_dir / schema.kind.value, staged, landing)
            _write_quarantine(con, schema, run_dir / "quarantine", staged)
            _dirty_days(con, schema, staged, features, kept)
    for s in staged.values():
        s.rows_duplicate = s.rows_read - s.rows_new - s.rows_quarantined
        s.log_file = _write_log(run_dir / "log", s)
    return StagedKind([staged[i] for i in sorted(staged)], failed)


CHECKED_ROW_BYTES = 250
"""Bytes of memory a checked row takes in a DuckDB table (measured: 227 MB for 1M predictions)."""
TEXT_BYTES_PER_ROW = 150
"""Bytes of CSV or JSON Lines text per row, for the estimate (the demo's predictions: ~150)."""


def _checked_bytes(files: Sequence[SourceFile]) -> int:
    """About how much memory the checked rows of `files` take in a DuckDB table: Parquet rows
    from the files' footers, text files from their sizes."""
    rows = 0
    for f in files:
        try:
            if file_format(f.path) == "parquet":
                rows += pq.read_metadata(f.path).num_rows
            else:
                rows += f.path.stat().st_size // TEXT_BYTES_PER_ROW + 1
        except (pa.ArrowException, OSError, TrustrampError):
            continue  # it fails when it is read, alone
    return rows * CHECKED_ROW_BYTES


class _TooWide(Exception):
    """The checked rows do not fit in memory after all: stage the kind again, on disk."""


def _table_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes that DuckDB's in-memory tables take, in memory and spilled."""
    row = con.execute(
        "SELECT sum(memory_usage_bytes + temporary_storage_bytes) FROM duckdb_memory() "
        "WHERE tag IN ('IN_MEMORY_TABLE', 'OVERFLOW_STRINGS')"
    ).fetchall()
    return int(row[0][0] or 0)


class _Checked:
    """The checked rows of one kind, as the view `_checked`, each row tagged with its file's
    position in the run; every check query is one output (`_out`).

    In a DuckDB table when they fit in about half of DuckDB's memory limit (the later steps
    then scan them without decoding Parquet); otherwise in Parquet files under `folder`, one per
    query, so that the set-based steps keep their memory for themselves however many rows there
    are. (A temp table would spill to disk unpacked, and the lake write, one filtered scan per
    file, would read the spilled blocks again and again: slower at 10M rows than Parquet.)

    A file's rows are removed by dropping the outputs that hold only that file, or, in an
    output that several files share, by excluding (output, file) pairs.
    """

    TABLE = "_checked_rows"

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path, *, in_memory: bool) -> None:
        self.con = con
        self.folder = folder
        self.in_memory = in_memory
        self.outputs: dict[int, Path | None] = {}
        self.excluded: set[tuple[int, int]] = set()
        self._next = 0
        self._table = False

    def write(self, con: duckdb.DuckDBPyConnection, query: str) -> int:
        out = self._next
        self._next += 1
        select = f"SELECT {out} AS _out, * FROM ({query})"
        if self.in_memory:
            # One statement each: a query that fails leaves nothing of its rows behind.
            try:
                if self._table:
                    con.execute(f"INSERT INTO {self.TABLE} BY NAME {select}")
                else:
                    con.execute(f"CREATE OR REPLACE TABLE {self.TABLE} AS {select}")
                    self._table = True
            except duckdb.OutOfMemoryException:
                raise _TooWide from None
            self.outputs[out] = None
            return out
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{out:06d}.parquet"
        self.outputs[out] = path
        try:
            con.execute(f"COPY ({select}) TO {quote_literal(str(path))} (FORMAT parquet)")
        except BaseException:
            self.drop(out)
            raise
        return out

    def drop(self, out: int) -> None:
        if out not in self.outputs:
            return
        path = self.outputs.pop(out)
        if path is not None:
            path.unlink(missing_ok=True)
        elif self._table:
            self.con.execute(f"DELETE FROM {self.TABLE} WHERE _out = {int(out)}")

    def exclude(self, out: int, file: int) -> None:
        self.excluded.add((out, file))

    def attach(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Create the view `_checked`; False when there are no checked rows at all."""
        if not self.outputs:
            return False
        if self.in_memory:
            for out, file in sorted(self.excluded):
                con.execute(
                    f"DELETE FROM {self.TABLE} WHERE _out = {int(out)} AND {FILE} = {int(file)}"
                )
            self.excluded.clear()
            if _table_bytes(con) <= memory_limit_bytes(con) // 2:
                con.execute(
                    f"CREATE OR REPLACE VIEW _checked AS SELECT * EXCLUDE (_out) FROM {self.TABLE}"
                )
                return True
            raise _TooWide
        files = ", ".join(quote_literal(str(p)) for p in self.outputs.values() if p is not None)
        where = ""
        if self.excluded:
            pairs = sorted(self.excluded)
            con.execute(
                f"CREATE OR REPLACE TABLE _excluded AS SELECT unnest(?::INTEGER[]) AS _out, "
                f"unnest(?::INTEGER[]) AS {FILE}",
                [[o for o, _ in pairs], [f for _, f in pairs]],
            )
            where = (
                f" WHERE NOT EXISTS (SELECT 1 FROM _excluded e "
                f"WHERE e._out = c._out AND e.{FILE} = c.{FILE})"
            )
        con.execute(
            f"CREATE OR REPLACE VIEW _checked AS SELECT * EXCLUDE (_out) "
            f"FROM read_parquet([{files}], union_by_name = true) c{where}"
        )
        return True

    def discard(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP VIEW IF EXISTS _checked")
        con.execute(f"DROP TABLE IF EXISTS {self.TABLE}")
        shutil.rmtree(self.folder, ignore_errors=True)


def _check_file(
    con: duckdb.DuckDBPyConnection, schema: Schema, f: SourceFile, i: int, checked: _Checked
) -> str:
    """Check one file's rows on its own; returns its format. A CSV row with the wrong number of
    fields restarts the file on the exact reader (which keeps such rows). When the file fails,
    nothing of it stays checked."""
    outs: list[int] = []
    try:
        try:
            source = f.open(False)
            _check_batches(con, schema, source, i, checked, outs)
        except NeedsExactReader:
            for out in outs:
                checked.drop(out)
            outs.clear()
            source = f.open(True)
            _check_batches(con, schema, source, i, checked, outs)
    except BaseException:
        for out in outs:
            checked.drop(out)
        raise
    return source.fmt


_PLAIN_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_floating,
    pa.types.is_integer,
    pa.types.is_timestamp,
)
_RESERVED = {"filename", "file_row_number"}


def _plain_schema(path: Path) -> pa.Schema | None:
    """The file's Arrow schema when DuckDB's own Parquet reader gives the same values as
    pyarrow's (text, numbers, timestamps; names that DuckDB tells apart, none of its virtual
    columns); None otherwise."""
    try:
        s = pq.read_schema(path).remove_metadata()
    except (pa.ArrowException, OSError):
        return None
    names = s.names
    if len({n.lower() for n in names}) != len(names):  # DuckDB's names ignore case
        return None
    if any(not n or n.startswith("_") or n.lower() in _RESERVED for n in names):
        return None
    if not all(any(ok(f.type) for ok in _PLAIN_TYPES) for f in s):
        return None
    return s


def _check_parquet(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    files: Sequence[tuple[int, SourceFile]],
    fmts: dict[int, str],
    checked: _Checked,
) -> list[tuple[int, SourceFile]]:
    """Check Parquet files of the same plain schema with DuckDB's Parquet reader, one query per
    schema (faster than streaming Arrow batches through Python); returns the files left for the
    stream: those of other schemas, and every file of a query that failed (a bad file then
    fails alone there)."""
    groups: dict[str, list[tuple[int, SourceFile, pa.Schema]]] = {}
    rest: list[tuple[int, SourceFile]] = []
    for i, f in files:
        s = None if any(c in str(f.path) for c in "*?[]{}") else _plain_schema(f.path)
        if s is None:  # not plain, or a path DuckDB would take for a glob pattern
            rest.append((i, f))
        else:
            groups.setdefault(str(s), []).append((i, f, s))
    for group in groups.values():
        arrow_schema = group[0][2]
        # The file's columns by position, as the readers name them: no name of the file's can
        # meet one of the checking query's own.
        names = {f"_c{k}": f.name for k, f in enumerate(arrow_schema)}
        types = {f"_c{k}": f.type for k, f in enumerate(arrow_schema)}
        types |= {ROW: pa.int64(), LINE: pa.int64(), FILE: pa.int32()}
        paths = "[" + ", ".join(quote_literal(str(f.path)) for _, f, _ in group) + "]"
        positions = "[" + ", ".join(str(i) for i, _, _ in group) + "]"
        data = "".join(f"{quote_ident(n)} AS {c}, " for c, n in names.items())
        batch = (
            f"(SELECT {data}file_row_number + 1 AS {ROW}, "
            f"file_row_number + 1 AS {LINE}, "
            f"CAST({positions}[list_position({paths}, filename)] AS INTEGER) AS {FILE} "
            f"FROM read_parquet({paths}, file_row_number = true, filename = true))"
        )
        query = validation_sql(schema, types, "parquet", source=batch, names=names)
        try:
            checked.write(con, query)
        except duckdb.Error:
            rest += [(i, f) for i, f, _ in group]
            continue
        fmts.update({i: "parquet" for i, _, _ in group})
    return sorted(rest, key=lambda x: x[0])


class _Stream:
    """The batches of several files of one format as one stream, each tagged with its `_file`.

    A file that fails while being read is noted (its rows already streamed are deleted after
    the query) and the stream goes on with the next file, so one bad file never stops the
    others. A file whose batches differ in shape from the stream's, or that needs the exact CSV
    reader, is noted to be checked on its own.
    """

    def __init__(self, files: Sequence[tuple[int, SourceFile]]) -> None:
        self.files = files
        self.schema: pa.Schema | None = None
        self.fmts: dict[int, str] = {}
        self.failed: dict[int, str] = {}
        self.alone: list[int] = []
        self.error: BaseException | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        for i, f in self.files:
            try:
                source = f.open(False)
                self.fmts[i] = source.fmt
                for batch in source.batches:
                    if self.schema is None:
                        self.schema = batch.schema
                    if not batch.schema.equals(self.schema, check_metadata=True):
                        self.alone.append(i)
                        break
                    tag = pa.array(np.full(batch.num_rows, i, dtype=np.int32))
                    yield batch.append_column(FILE, tag)
            except NeedsExactReader:
                self.alone.append(i)
            except TrustrampError as e:
                self.failed[i] = str(e)
            except MemoryError:
                self.failed[i] = f"{f.path}: out of memory while reading it; nothing of it landed"
            except Exception as e:  # not ours to judge: raised again after the query
                self.error = e
                return


def _check_stream(
    con: duckdb.DuckDBPyConnection, schema: Schema, stream: _Stream, checked: _Checked
) -> None:
    batches = stream.batches()
    first = next(batches, None)
    if first is not None:
        assert stream.schema is not None
        types = {f.name: f.type for f in stream.schema}
        types[FILE] = pa.int32()
        fmt = stream.fmts[int(first.column(FILE)[0].as_py())]
        query = validation_sql(schema, types, fmt, names=source_names(stream.schema))
        reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
        con.register("batch", reader)
        try:
            out = checked.write(con, query)
        except duckdb.Error:
            # Something in one file's rows broke the shared query: check the files one by
            # one instead, so that the file that breaks it fails alone.
            if stream.error is None:
                stream.alone = [i for i, _ in stream.files if i not in stream.failed]
        else:
            for i in [*stream.alone, *stream.failed]:  # rows they streamed before stopping
                checked.exclude(out, i)
        finally:
            con.unregister("batch")
    if stream.error is not None:
        raise stream.error


def _check_batches(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    source: Source,
    i: int,
    checked: _Checked,
    outs: list[int],
) -> None:
    query: str | None = None
    for batch in source.batches:
        if query is None:
            types = {f.name: f.type for f in batch.schema}
            query = validation_sql(schema, types, source.fmt, names=source_names(batch.schema))
        con.register("batch", batch)
        try:
            with translated(f"{source.path}: checking rows"):
                outs.append(checked.write(con, f"SELECT {int(i)} AS {FILE}, * FROM ({query})"))
        finally:
            con.unregister("batch")


def _fates(con: duckdb.DuckDBPyConnection, lake: str, schema: Schema) -> None:
    """Temp table `_not_new`: every valid row that must not land, and why.

    The first valid row of an id in the run (file order, then row order) lands unless the lake
    has the id; every other row of the id is compared with the lake's row, or else with that
    first row: identical is a duplicate, different a conflict (the first version stays). Only
    the rows of such ids are hashed (`row_hash_sql`); a lake row without a stored hash is hashed
    from its values, which gives the same hash.
    """
    idc = quote_ident(schema.id_column)
    # The CTEs read twice are NOT MATERIALIZED: DuckDB would hold them whole, and cannot, for
    # the 50M rows of one big file under a small memory limit; computed twice, they stream.
    con.execute(f"""
CREATE OR REPLACE TABLE _not_new AS
WITH valid AS NOT MATERIALIZED
  (SELECT {idc} AS id, {_ORDER} AS ord FROM _checked WHERE _reason IS NULL),
lake AS NOT MATERIALIZED (SELECT l.{idc} AS id, coalesce(l.{ROW_HASH}, {row_hash_sql(schema, "l")}) AS lake_hash
         FROM ({lake}) l WHERE l.{idc} IN (SELECT id FROM valid)),
hot_ids AS (SELECT id FROM valid GROUP BY id HAVING count(*) > 1
            UNION SELECT id FROM lake),
hot AS NOT MATERIALIZED (SELECT c.{FILE}, c.{ROW}, c.{idc} AS id, {_ORDER_C} AS ord, {row_hash_sql(schema, "c")} AS h
        FROM _checked c
        WHERE c._reason IS NULL AND c.{idc} IN (SELECT id FROM hot_ids)),
firsts AS (SELECT id, arg_min(h, ord) AS first_hash, min(ord) AS first_ord FROM hot GROUP BY id)
SELECT hot.{FILE}, hot.{ROW}, hot.id, f.first_ord // {_SPAN} AS first_file,
       f.first_ord % {_SPAN} AS first_row,
       CASE WHEN l.id IS NOT NULL AND l.lake_hash = hot.h THEN 'duplicate'
            WHEN l.id IS NOT NULL THEN 'conflict_lake'
            WHEN hot.ord = f.first_ord THEN 'new'
            WHEN hot.h = f.first_hash THEN 'duplicate'
            WHEN f.first_ord // {_SPAN} <> hot.{FILE} THEN 'conflict_lake'
            ELSE 'conflict_file' END AS fate
FROM hot JOIN firsts f USING (id) LEFT JOIN lake l USING (id)
WHERE l.id IS NOT NULL OR hot.ord <> f.first_ord
""")


def _predictions(home: Home, run_predictions: Sequence[Path]) -> str:
    """SQL of the predictions that count as landed: committed, plus this run's staged parts."""
    committed = relations(home)[Kind.PREDICTIONS.value]
    parts = [str(p / "*" / "*" / "*.parquet") for p in run_predictions]
    if not parts:
        return committed
    staged = (
        f"SELECT * FROM read_parquet([{', '.join(quote_literal(x) for x in parts)}], "
        f"{_LAKE_HIVE}, union_by_name = true)"
    )
    return f"({committed}) UNION ALL BY NAME ({staged})"


def _item_features(
    con: duckdb.DuckDBPyConnection, home: Home, schema: Schema, run_predictions: Sequence[Path]
) -> bool:
    """Decisions: temp table `_item_days` (item_key, feature, date, last predicted_at) of the
    landed predictions of the staged items, from one scan of the predictions. False for the
    kinds that carry their own feature."""
    if schema.feature_column:
        return False
    preds = _predictions(home, run_predictions)
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE _item_days AS
SELECT {ITEM_KEY}, {FEATURE}, {DATE}, max(predicted_at) AS last_at
FROM ({preds}) p
WHERE {ITEM_KEY} IN (SELECT {ITEM_KEY} FROM _checked WHERE _reason IS NULL)
GROUP BY ALL
""")
    # The item's feature is that of its latest prediction; its days, that feature's first and
    # last prediction day (contract.PRED_FIRST).
    con.execute(f"""
CREATE OR REPLACE TABLE _item_feature AS
WITH chosen AS (
  SELECT {ITEM_KEY}, arg_max({FEATURE}, last_at) AS {FEATURE} FROM _item_days GROUP BY {ITEM_KEY}
)
SELECT {ITEM_KEY}, {FEATURE}, min(d.{DATE}) AS {PRED_FIRST}, max(d.{DATE}) AS {PRED_LAST}
FROM chosen JOIN _item_days d USING ({ITEM_KEY}, {FEATURE})
GROUP BY {ITEM_KEY}, {FEATURE}
""")
    return True


def _decided_before(con: duckdb.DuckDBPyConnection, home: Home, schema: Schema) -> bool:
    """Predictions: temp table `_late` (item_key, feature, date) of the staged rows whose item
    already has a decision in the lake that does not cover their feature and day
    (contract.DECIDED_BEFORE); False (and no table) when there is none, the usual case."""
    if schema.kind is not Kind.PREDICTIONS:
        return False
    decisions = relations(home)[Kind.DECISIONS.value]
    time_col = quote_ident(schema.time_column)
    con.execute(f"""
CREATE OR REPLACE TABLE _late AS
WITH staged AS (
  SELECT DISTINCT {ITEM_KEY}, {quote_ident(FEATURE)} AS {FEATURE},
         CAST({time_col} AS DATE) AS {DATE}
  FROM _checked WHERE _reason IS NULL
),
-- (a CTE of its own: inside a joined subquery, DuckDB would see staged's `date` in the lake
-- relation's hive_types as a lateral column)
dec AS (
  SELECT {ITEM_KEY}, {FEATURE}, {PRED_FIRST}, {PRED_LAST} FROM ({decisions}) d
  WHERE {PRED_FIRST} IS NOT NULL AND {ITEM_KEY} IN (SELECT {ITEM_KEY} FROM staged)
)
SELECT DISTINCT s.{ITEM_KEY}, s.{FEATURE}, s.{DATE}
FROM staged s JOIN dec d USING ({ITEM_KEY})
WHERE d.{FEATURE} <> s.{FEATURE} OR s.{DATE} NOT BETWEEN d.{PRED_FIRST} AND d.{PRED_LAST}
""")
    return con.execute("SELECT count(*) FROM _late").fetchall()[0][0] > 0


def _kept(con: duckdb.DuckDBPyConnection) -> str:
    """The condition on `_checked c` of the rows that land (the anti-join only when needed)."""
    if con.execute("SELECT count(*) FROM _not_new").fetchall()[0][0] == 0:
        return "c._reason IS NULL"
    return (
        f"c._reason IS NULL AND NOT EXISTS "
        f"(SELECT 1 FROM _not_new n WHERE n.{FILE} = c.{FILE} AND n.{ROW} = c.{ROW})"
    )


def _landing(
    schema: Schema, features: bool, sources: Sequence[str], kept: str, late: bool = False
) -> str:
    """SQL of the rows that land, with their `_source`, feature and date partitions."""
    time_col = quote_ident(schema.time_column)
    derived = {
        ROW_HASH: f"CAST(NULL AS UBIGINT) AS {ROW_HASH}",
        PRED_FIRST: f"m.{PRED_FIRST}",
        PRED_LAST: f"m.{PRED_LAST}",
        DECIDED_BEFORE: (
            f"l.{ITEM_KEY} IS NOT NULL AS {DECIDED_BEFORE}"
            if late
            else f"FALSE AS {DECIDED_BEFORE}"
        ),
    }
    cols = ", ".join(derived.get(n, f"c.{quote_ident(n)}") for n, _ in lake_columns(schema))
    if features:
        feature = f"coalesce(m.{FEATURE}, {quote_literal(UNMATCHED_FEATURE)})"
        join = f"LEFT JOIN _item_feature m ON m.{ITEM_KEY} = c.{ITEM_KEY}"
    else:
        assert schema.feature_column is not None
        feature = f"c.{quote_ident(schema.feature_column)}"
        join = ""
    if late:
        join += (
            f" LEFT JOIN _late l ON l.{ITEM_KEY} = c.{ITEM_KEY} "
            f"AND l.{FEATURE} = c.{quote_ident(FEATURE)} AND l.{DATE} = CAST(c.{time_col} AS DATE)"
        )
    # The content hashes of the run's files, by position (hex digits of ours, not data).
    source = f"[{', '.join(quote_literal(x) for x in sources)}][c.{FILE} + 1]"
    return (
        f"SELECT {cols}, {source} AS {SOURCE}, {feature} AS {FEATURE}, "
        f"CAST(c.{time_col} AS DATE) AS {DATE}, c.{FILE} "
        f"FROM _checked c {join} WHERE {kept}"
    )


def _count(con: duckdb.DuckDBPyConnection, staged: dict[int, StagedFile]) -> None:
    rows = con.execute(f"""
SELECT c.{FILE}, count(*) AS n,
       count(*) FILTER (WHERE c._reason IS NULL AND n.{ROW} IS NULL) AS new
FROM _checked c LEFT JOIN _not_new n ON n.{FILE} = c.{FILE} AND n.{ROW} = c.{ROW}
GROUP BY c.{FILE}
""").fetchall()
    for i, n, new in rows:
        staged[i].rows_read = int(n)
        staged[i].rows_new = int(new)


def _write_parts(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    out: Path,
    staged: dict[int, StagedFile],
    landing: str,
) -> None:
    """The landing rows (`_landing`) of each file: `out/_file=<i>/feature=<f>/date=<d>/*.parquet`.

    One write per file (the filter on `_file` skips the other files' row groups): one write for
    the whole kind partitioned by file too is slower on large runs, where DuckDB's partitioned
    writer keeps too many partitions open at once for its memory. A file whose rows all land in
    one (feature, date) partition, the usual daily file, is written by a plain COPY into that
    partition's folder, in row groups as large as the partitioned write's: the partitioned
    writer costs ~70 % more CPU for the same rows. The plain writes run side by side
    (`_copy_plain`).
    """
    default = con.execute("SELECT current_setting('partitioned_write_flush_threshold')")
    flush = int(default.fetchall()[0][0])
    layouts = _layouts(con, schema, landing)
    plain: list[tuple[int, Path]] = []
    for i, s in staged.items():
        if s.rows_new:
            s.parts_dir = out / f"{FILE}={i}"
            one, text = layouts.get(i, (None, 0.0))
            wide = _wide_flush_rows(text, flush)
            if wide is None and one is not None:
                dest = s.parts_dir / f"{FEATURE}={one[0]}" / f"{DATE}={one[1].isoformat()}"
                plain.append((i, dest / "data_0.parquet"))
                continue
            if wide is not None:
                con.execute(f"SET partitioned_write_flush_threshold = {wide}")
            try:
                _copy_file_rows(
                    con,
                    landing,
                    i,
                    s.parts_dir,
                    f"FORMAT parquet, PARTITION_BY ({FEATURE}, {DATE}), COMPRESSION zstd",
                )
            finally:
                if wide is not None:
                    con.execute(f"SET partitioned_write_flush_threshold = {flush}")
    rows = min(2 * flush, PLAIN_ROW_GROUP_ROWS)
    options = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {rows}"
    relation = f"SELECT * EXCLUDE ({FEATURE}, {DATE}) FROM ({landing})"
    _copy_plain(con, [(relation, i, dest, options) for i, dest in plain])


def _copy_plain(
    con: duckdb.DuckDBPyConnection, copies: Sequence[tuple[str, int, Path, str]]
) -> None:
    """The plain lake writes (`_copy_file_rows` arguments), on as many connections to the
    database as DuckDB has threads (at most `PLAIN_WRITERS`): one file's write, a row group or a
    few, runs on one thread, so one write after another would leave the other cores idle. The
    staging tables the writes read are the database's (not a connection's temp tables), so that
    every connection sees them."""
    threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    writers = max(1, min(threads, PLAIN_WRITERS, len(copies)))
    if writers == 1:
        for copy in copies:
            _copy_file_rows(con, *copy)
        return
    zone = con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]
    cursors = [con.cursor() for _ in range(writers)]
    try:
        for c in cursors:
            c.execute("SET TimeZone = ?", [zone])  # the landing rows' dates are in UTC

        def write(k: int) -> None:
            for copy in copies[k::writers]:
                _copy_file_rows(cursors[k], *copy)

        with ThreadPoolExecutor(writers, thread_name_prefix="trustramp-write") as pool:
            for done in [pool.submit(write, k) for k in range(writers)]:
                done.result()
    finally:
        for c in cursors:
            c.close()


PLAIN_WRITERS = 4
"""Most lake writes at a time (`_copy_plain`)."""
PLAIN_ROW_GROUP_ROWS = 122_880
"""Largest row group of a file's plain (single-partition) lake write: DuckDB's default."""
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
"""A feature name that is its own partition folder name (DuckDB escapes no character of it)."""


def _layouts(
    con: duckdb.DuckDBPyConnection, schema: Schema, landing: str
) -> dict[int, tuple[tuple[str, dt.date] | None, float]]:
    """Per file with landing rows: the (feature, date) partition when all of them fall in that
    one (else None), and their average bytes of text (one scan of the landing rows)."""
    texts = [quote_ident(n) for n, t in lake_columns(schema) if t == "VARCHAR"]
    width = " + ".join(f"coalesce(strlen({t}), 0)" for t in texts) or "0"
    rows = con.execute(f"""
SELECT {FILE}, min({FEATURE}) = max({FEATURE}) AND min({DATE}) = max({DATE}),
       min({FEATURE}), min({DATE}), avg({width})
FROM ({landing})
GROUP BY {FILE}
""").fetchall()
    out: dict[int, tuple[tuple[str, dt.date] | None, float]] = {}
    for i, one, feature, day, text in rows:
        plain = one and isinstance(feature, str) and _PLAIN_VALUE.fullmatch(feature) and day
        out[int(i)] = ((feature, day) if plain else None, float(text or 0.0))
    return out


TYPICAL_ROW_BYTES = 130
"""Bytes of a buffered lake row that `duck.partitioned_write_flush_rows` is sized for."""


def _wide_flush_rows(text: float, flush: int) -> int | None:
    """A smaller flush threshold for the lake write of a file whose rows carry `text` bytes of
    text on average, much more than the threshold was sized for (the write's buffers count rows,
    not bytes: 8,000 rows of 16 KB ran out of memory under 64 MB); None for rows of the usual
    size."""
    if text <= TYPICAL_ROW_BYTES * 4:
        return None
    return max(16, int(flush * TYPICAL_ROW_BYTES / text))


def _copy_file_rows(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    i: int,
    dest: Path,
    options: str,
    order: str = "",
) -> None:
    """Write the rows of file `i` in `relation` (without their `_file` tag) to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    order_by = f" ORDER BY {order}" if order else ""
    con.execute(
        f"COPY (SELECT * EXCLUDE ({FILE}) FROM ({relation}) WHERE {FILE} = {int(i)}{order_by}) "
        f"TO {quote_literal(str(dest))} ({options})"
    )


def _dirty_days(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    staged: dict[int, StagedFile],
    features: bool,
    kept: str,
) -> None:
    """The (feature, prediction date) days whose aggregates each file's landing rows change."""
    if schema.kind not in (Kind.PREDICTIONS, Kind.DECISIONS):
        return
    landing = f"FROM _checked c WHERE {kept}"
    if schema.kind is Kind.PREDICTIONS:
        query = (
            f"SELECT DISTINCT c.{FILE}, c.{quote_ident(FEATURE)}, "
            f"CAST(c.{quote_ident(schema.time_column)} AS DATE) {landing}"
        )
    else:
        assert features
        query = (
            f"SELECT DISTINCT k.{FILE}, d.{FEATURE}, d.{DATE} FROM _item_days d JOIN "
            f"(SELECT DISTINCT c.{FILE}, c.{ITEM_KEY} {landing}) k USING ({ITEM_KEY})"
        )
    for i, feature, day in con.execute(query).fetchall():
        staged[i].dirty.add((feature, day))


AUDIT_ROWS = 200_000
"""Rows per kind and run that the Great Expectations audit sees by default (a seeded sample)."""
AUDIT_TEXT_CHARS = 36
"""Longest text the audit sees: a longer value is replaced by `md5:` and its MD5 (36 characters),
which keeps what the suite checks (null or not, equality for the id's uniqueness, membership of an
enum's set) and bounds the sample's bytes (rows x columns x 36) however long the values are: a
Parquet file of a few MB can hold GBs of repeated long text."""
AUDIT_CHUNK_ROWS = 100_000


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
    variable TRUSTRAMP_GX_AUDIT_ROWS to `all` to audit every row. Text values are cut to
    `AUDIT_TEXT_CHARS` (by hashing) before sampling, so the sample's bytes are bounded too. The
    row-level SQL checks, which decide the quarantine, always see every row.
    """
    files = [str(p / "*" / "*" / "*.parquet") for p in parts_dirs]
    if not files:
        return []
    limit = _audit_limit()
    sample = "" if limit is None else f" USING SAMPLE reservoir({limit} ROWS) REPEATABLE (7)"
    query = (
        f"SELECT * FROM (SELECT {', '.join(_audit_columns(schema))} FROM read_parquet("
        f"[{', '.join(quote_literal(f) for f in files)}], union_by_name = true)){sample}"
    )
    failed: list[str] = []
    with translated(f"auditing staged {schema.kind.value}"):
        for batch in con.sql(query).to_arrow_reader(AUDIT_CHUNK_ROWS):
            failed += [f for f in audit(schema.kind, batch.to_pandas()) if f not in failed]
    return failed


def _audit_limit() -> int | None:
    """Rows the audit samples per kind (TRUSTRAMP_GX_AUDIT_ROWS); None for every row."""
    limit = os.environ.get("TRUSTRAMP_GX_AUDIT_ROWS", str(AUDIT_ROWS)).strip().lower()
    return None if limit == "all" else int(limit)


def _audit_columns(schema: Schema) -> list[str]:
    """The audited columns, text cut to `AUDIT_TEXT_CHARS` (the feature is a partition)."""
    cols = []
    for c in schema.columns:
        if c.name == FEATURE:
            continue
        ident = quote_ident(c.name)
        if c.type in (ColType.STRING, ColType.ENUM, ColType.JSON):
            cols.append(
                f"CASE WHEN length({ident}) <= {AUDIT_TEXT_CHARS} THEN {ident} "
                f"ELSE 'md5:' || md5({ident}) END AS {ident}"
            )
        else:
            cols.append(ident)
    return cols


AuditSample = Callable[["pa.Table | BaseException"], None]
"""Takes the audit's sample of a kind's landing rows (or why it could not be drawn)."""


def _sample_for_audit(
    con: duckdb.DuckDBPyConnection, schema: Schema, kept: str, rows: int, take: AuditSample
) -> None:
    """Draw the audit's sample of the `rows` landing rows from `_checked`, before the lake write,
    and hand it to `take` (which audits it while staging goes on): the same columns as
    `audit_staged` reads back from the parts. Not when every row is to be audited
    (TRUSTRAMP_GX_AUDIT_ROWS=all): then the parts are audited as they are read.

    The seeded reservoir sample of `AUDIT_ROWS` rows (every row when there are fewer) is drawn
    from the rows whose id hashes below a threshold set for about 5 % more rows than that: a
    reservoir over every row costs ~0.8 CPU s per 1M rows, in one thread. The reservoir holds
    its rows in DuckDB, within its memory limit.
    """
    limit = _audit_limit()
    if limit is None:
        return
    where = kept
    if rows > 1.05 * limit + 1_000:
        below = int(2**64 * ((1.05 * limit + 1_000) / rows))
        where += f" AND hash(c.{quote_ident(schema.id_column)}) < {below}::UBIGINT"
    query = (
        f"SELECT * FROM (SELECT {', '.join(_audit_columns(schema))} FROM _checked c "
        f"WHERE {where}) USING SAMPLE reservoir({limit} ROWS) REPEATABLE (7)"
    )
    try:
        with translated(f"auditing staged {schema.kind.value}"):
            sample = con.sql(query).to_arrow_table()
    except (TrustrampError, MemoryError) as e:
        take(e)
        return
    take(sample)


def audit_rows(
    schema: Schema, rows: pa.Table, audit: Callable[[Kind, pd.DataFrame], list[str]]
) -> list[str]:
    """The contract audit of rows drawn by `_sample_for_audit`, in chunks; failed expectations."""
    failed: list[str] = []
    for batch in rows.to_batches(max_chunksize=AUDIT_CHUNK_ROWS):
        failed += [f for f in audit(schema.kind, batch.to_pandas()) if f not in failed]
    return failed


def _write_quarantine(
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    out: Path,
    staged: dict[int, StagedFile],
) -> None:
    """Temp table `_quarantine` of the kind's rejected rows; one file per source that has any."""
    id_name = schema.id_column
    names = [ROW, LINE, *schema.names, "_extra", "_reason", "_detail", ITEM_KEY, "_raw"]
    row = ", ".join(f"{quote_literal(n)}: c.{quote_ident(n)}" for n in names)
    conflicts = f"""
SELECT c.{FILE}, c.{ROW}, c.{LINE}, 'conflict:{id_name}' AS _reason,
       CASE WHEN n.fate = 'conflict_lake'
            THEN '{id_name} ' || '''' || n.id || '''' ||
                 ' is already in the lake with different content; not overwritten'
            ELSE '{id_name} ' || '''' || n.id || '''' || ' repeats row ' || n.first_row ||
                 ' of this file with different content; the first one was kept' END AS _detail,
       CAST(to_json({{{row}}}) AS VARCHAR) AS _raw
FROM _checked c JOIN _not_new n ON n.{FILE} = c.{FILE} AND n.{ROW} = c.{ROW}
WHERE n.fate IN ('conflict_lake', 'conflict_file')
"""
    bad = f"SELECT {FILE}, {ROW}, {LINE}, _reason, _detail, _raw FROM _checked WHERE _reason IS NOT NULL"
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE _quarantine AS
SELECT q.{FILE}, f.src AS source, f.file AS file, {quote_literal(schema.kind.value)} AS kind,
       q.{ROW} AS row_number, q.{LINE} AS line, q._reason AS reason, q._detail AS detail,
       left(q._raw, 4096) AS raw, now() AS quarantined_at
FROM ({bad} UNION ALL {conflicts}) q JOIN _files f USING ({FILE})
""")
    rows = con.execute(f"SELECT {FILE}, reason, count(*) FROM _quarantine GROUP BY ALL").fetchall()
    for i, reason, n in rows:
        staged[i].reasons[reason] = int(n)
    for i, s in staged.items():
        s.rows_quarantined = sum(s.reasons.values())
        if s.rows_quarantined:
            s.quarantine_file = out / f"{s.src}.parquet"
            q = "SELECT * FROM _quarantine"
            _copy_file_rows(con, q, i, s.quarantine_file, "FORMAT parquet", order="row_number")


def _write_log(out: Path, staged: StagedFile) -> Path:
    out.mkdir(parents=True, exist_ok=True)
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
    dest = out / f"{staged.src}.parquet"
    pq.write_table(record, dest)
    return dest


def discard_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
