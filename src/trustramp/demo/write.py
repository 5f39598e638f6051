"""Writing: one file per kind and day, in CSV, JSON Lines or Parquet, on a background thread.

`_prepare` makes the folders (and refuses, or with `overwrite` deletes, an earlier run's files);
`_Writer` appends tables to one file; `_Background` writes while the next block is simulated;
`_write_decisions` writes a day's decisions in time order; `_write_small` the feedback and
incidents files.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustramp.contract import DECISIONS, ColType, Kind, Schema
from trustramp.demo._common import _BLOCK_ITEMS, FORMATS, _Plan, _rng
from trustramp.demo.tables import (
    _assemble,
    _decisions_table,
    _predictions_table,
    _schema,
    _timestamps,
)

# Parquet columns with few distinct values (enums are added): dictionary-encoded.
_DICTIONARY_COLUMNS = frozenset(
    {
        "feature",
        "model_version",
        "segment",
        "customer_id",
        "predicted_label",
        "human_label",
        "reviewer_id",
    }
)
_ID_COLUMNS = frozenset(
    {"prediction_id", "item_id", "decision_id", "customer_id", "reviewer_id", "user_id"}
)


def _prepare(out: Path, *, overwrite: bool) -> None:
    """Create the sub-folders; find (and with `overwrite`, delete) files of an earlier run."""
    stale: list[Path] = []
    for kind in Kind:
        folder = out / kind.value
        folder.mkdir(parents=True, exist_ok=True)
        for ext in FORMATS:
            stale += sorted(folder.glob(f"{kind.value}-????-??-??.{ext}"))
            stale += sorted(folder.glob(f"{kind.value}.{ext}"))
    if stale and not overwrite:
        raise FileExistsError(
            f"{stale[0].parent} already holds demo files (e.g. {stale[0].name}); "
            f"pass overwrite=True to replace them, or choose another out_dir"
        )
    for path in stale:
        path.unlink()


@dataclass
class _Output:
    """What a run has written so far, and what waits to be written."""

    out: Path
    fmt: str
    files: dict[str, list[Path]] = field(default_factory=lambda: {k.value: [] for k in Kind})
    counts: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in Kind})
    pending: dict[int, list[dict[str, np.ndarray]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """Decisions by the day they are made, until that day's file is written."""
    feedback: list[dict[str, np.ndarray]] = field(default_factory=list)


class _Writer:
    """Appends tables of one kind to one file in the chosen format."""

    def __init__(self, path: Path, schema: Schema, fmt: str) -> None:
        self.fmt = fmt
        self.schema = _schema(schema, fmt)
        # Columns whose text never needs JSON escaping: enums, timestamps and generated ids.
        self._plain = frozenset(
            c.name
            for c in schema.columns
            if c.type in (ColType.ENUM, ColType.TIMESTAMP) or c.name in _ID_COLUMNS
        )
        if fmt == "parquet":
            dictionary = [
                c.name
                for c in schema.columns
                if c.type is ColType.ENUM or c.name in _DICTIONARY_COLUMNS
            ]
            self._sink: Any = pq.ParquetWriter(
                path, self.schema, compression="zstd", use_dictionary=dictionary
            )
        elif fmt == "csv":
            self._sink = pacsv.CSVWriter(path, self.schema)
        else:
            self._sink = path.open("wb")

    def write(self, table: pa.Table) -> None:
        if self.fmt == "jsonl":
            self._sink.write(_json_lines(table, plain=self._plain))
        elif table.num_rows:
            self._sink.write_table(table)

    def close(self) -> None:
        self._sink.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_lines(table: pa.Table, *, plain: frozenset[str] = frozenset()) -> pa.Buffer:
    """One JSON object per row, built column-wise in Arrow (nulls as null; strings escaped,
    except in the `plain` columns, which hold no quote, backslash or control character)."""
    if table.num_rows == 0:
        return pa.py_buffer(b"")
    pieces: list[Any] = []
    for i, column_field in enumerate(table.schema):
        column = table.column(i).combine_chunks()
        if pa.types.is_string(column_field.type):
            if column_field.name not in plain:
                column = pc.replace_substring(
                    pc.replace_substring(column, "\\", "\\\\"), '"', '\\"'
                )
            value = pc.binary_join_element_wise('"', column, '"', "")
        else:
            value = pc.cast(column, pa.string())
            if pa.types.is_floating(column_field.type):  # 1.0 prints as "1": keep it a float
                whole = pc.invert(pc.match_substring_regex(value, "[.eEn]"))
                value = pc.if_else(whole, pc.binary_join_element_wise(value, ".0", ""), value)
        pieces += [
            ("{" if i == 0 else ", ") + json.dumps(column_field.name) + ": ",
            pc.fill_null(value, "null"),
        ]
    lines = pc.binary_join_element_wise(*pieces, "}\n", "").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _write_predictions(
    writer: _Writer, plan: _Plan, pred: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> None:
    writer.write(_predictions_table(plan, pred, fmt, rng))


def _write_decisions(
    plan: _Plan,
    day: int,
    chunks: list[dict[str, np.ndarray]],
    output: _Output,
    background: _Background,
) -> int:
    """The decisions made on `day`, in time order."""
    date = plan.start + dt.timedelta(days=day)
    fmt = output.fmt
    path = output.out / "decisions" / f"decisions-{date.isoformat()}.{fmt}"
    writer = _Writer(path, DECISIONS, fmt)
    rows = 0
    if chunks:
        dec = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        order = np.lexsort((dec["dnum"], dec["t"]))
        rows = len(order)
        for block, lo in enumerate(range(0, rows, 2 * _BLOCK_ITEMS)):
            part = {k: a[order[lo : lo + 2 * _BLOCK_ITEMS]] for k, a in dec.items()}
            background.submit(
                _write_decisions_part, writer, plan, part, fmt, _rng(plan.seed, 5, day, block)
            )
    background.submit(writer.close, cleanup=True)
    output.files["decisions"].append(path)
    return rows


def _write_decisions_part(
    writer: _Writer, plan: _Plan, part: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> None:
    writer.write(_decisions_table(plan, part, fmt, rng))


_Task = tuple[Callable[..., None], tuple[Any, ...], bool]


class _Background:
    """Runs writes in order on one background thread, so that Arrow (which releases the GIL)
    renders and writes a block while numpy simulates the next one. At most two tasks wait,
    which bounds memory; the first failure is raised in the caller."""

    def __init__(self) -> None:
        self._tasks: queue.Queue[_Task | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="trustramp-demo-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            fn, args, cleanup = task
            if self._error is None or cleanup:  # after a failure, only close files
                try:
                    fn(*args)
                except BaseException as e:  # handed to the caller
                    self._error = self._error or e

    def submit(self, fn: Callable[..., None], *args: Any, cleanup: bool = False) -> None:
        """Queue `fn(*args)`; `cleanup` tasks (closing files) run even after a failure."""
        self._raise()
        self._tasks.put((fn, args, cleanup))

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._tasks.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise()


def _write_small(
    plan: _Plan,
    schema: Schema,
    columns: dict[str, Any],
    out: Path,
    fmt: str,
    files: dict[str, list[Path]],
    *,
    seed_key: int,
) -> int:
    rng = _rng(plan.seed, seed_key)
    for column in schema.columns:
        if column.type is ColType.TIMESTAMP:
            columns[column.name] = _timestamps(
                np.asarray(columns[column.name], dtype=np.int64), fmt, rng
            )
    table = _assemble(schema, fmt, columns)
    path = out / schema.kind.value / f"{schema.kind.value}.{fmt}"
    with _Writer(path, schema, fmt) as writer:
        writer.write(table)
    files[schema.kind.value].append(path)
    return table.num_rows
