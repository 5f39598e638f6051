"""Read input files as a stream of Arrow record batches, in file order, with row and line numbers.

Every batch carries the file's columns plus `_row` (1-based record number) and `_line` (the physical
line where the record starts; the row number for Parquet). The file's columns are named by position,
`_c0`, `_c1`, ..., with the file's own name in the field's metadata (`source_names`): no header can
collide with a column of ours (`_line`, `_row`, ...) or with another header that differs only by
case (DuckDB's identifiers are case-insensitive). CSV and JSON Lines values arrive as strings:
typing and validation happen in SQL, where a bad value becomes a quarantine reason instead of an
exception. Memory is bounded by the batch size and the field size limit, never by the file size.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustramp.errors import InputFileError

ROW = "_row"
LINE = "_line"
FILE = "_file"
"""Set by ingest when several files share one query: the file's position in the run."""
JSON_LINE = "_json"
"""The single text column of a JSON Lines batch (the raw line); `None` where it was not UTF-8."""
FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
BATCH_ROWS = 262_144
NAME_KEY = b"trustramp.name"
"""Field metadata of a data column: the column's name in the file (empty for an unnamed column)."""
MAX_COLUMNS = 1_000
"""Most columns a CSV or Parquet file may have (the contract has at most 14; the rest are kept in
`_extra`). Checked on the header, before any row is read. TRUSTRAMP_MAX_COLUMNS overrides it."""


def max_columns() -> int:
    value = os.environ.get("TRUSTRAMP_MAX_COLUMNS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else MAX_COLUMNS


def data_field(i: int, name: str, typ: pa.DataType) -> pa.Field:
    """The batch field of the file's column `i` (named `name` in the file)."""
    return pa.field(f"_c{i}", typ, metadata={NAME_KEY: name.encode("utf-8", "surrogatepass")})


def source_names(schema: pa.Schema) -> dict[str, str]:
    """The data columns of a reader's batch schema: batch column -> the file's name for it."""
    return {
        f.name: f.metadata[NAME_KEY].decode("utf-8", "surrogatepass")
        for f in schema
        if f.metadata and NAME_KEY in f.metadata
    }


def _check_width(path: Path, n: int) -> None:
    limit = max_columns()
    if n > limit:
        raise InputFileError(
            f"{path}: the file has {n:,} columns, more than the {limit:,} accepted "
            f"(TRUSTRAMP_MAX_COLUMNS); keep the contract's columns and a few extras"
        )


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InputFileError(
            f"{path}: unknown file type {path.suffix!r}; expected one of "
            f"{', '.join(sorted(FORMATS))}"
        ) from None


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes (first 32 hex digits): the file's identity for idempotency."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:32]


@dataclass
class Source:
    """An opened input file: its columns and a one-shot iterator of batches."""

    path: Path
    fmt: str
    columns: list[str]
    batches: Iterator[pa.RecordBatch]


def open_source(path: Path, *, batch_rows: int = BATCH_ROWS, exact: bool = False) -> Source:
    """Open `path`; `exact` selects the slower CSV reader that keeps malformed rows."""
    fmt = file_format(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from None
    if size == 0:
        raise InputFileError(f"{path}: the file is empty (no header, no rows)")
    if fmt == "csv":
        return _open_csv(path, batch_rows, exact=exact)
    if fmt == "jsonl":
        return _open_jsonl(path, batch_rows)
    return _open_parquet(path, batch_rows)


# -- CSV ---------------------------------------------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    """The header's names, stripped; "" for an unnamed column (e.g. after a trailing comma)."""
    _field_limit()
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(_bounded_lines(path, f)), None)
    except UnicodeDecodeError as e:
        # The decoder reads ahead, so the bad byte may be in a data row: speak of the file.
        raise InputFileError(
            f"{path}: the file is not valid UTF-8 text ({e.reason}); re-save it as UTF-8"
        ) from None
    except csv.Error as e:
        raise InputFileError(f"{path}: cannot parse the CSV header ({e})") from None
    if not header or not any(h.strip() for h in header):
        raise InputFileError(f"{path}: no header row")
    _check_width(path, len(header))
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if n and names.count(n) > 1})
    if dupes:
        raise InputFileError(f"{path}: duplicate column names in the header: {', '.join(dupes)}")
    return names


def _open_csv(path: Path, batch_rows: int, *, exact: bool = False) -> Source:
    names = _csv_header(path)
    fields = [data_field(i, n, pa.string()) for i, n in enumerate(names)]
    batches = _csv_exact(path, fields, batch_rows) if exact else _csv_fast(path, fields)
    return Source(path, "csv", [n for n in names if n], batches)


CSV_BLOCK_BYTES = 1 << 20
"""Bytes of CSV text per batch of the fast reader. pyarrow's streaming reader keeps up to ~40
blocks in flight: 8 MB blocks held 314 MB for a 10M-row file (138 MB at 1M rows), 1 MB blocks
39 MB. A row longer than a block goes to the exact reader."""


class NeedsExactReader(Exception):
    """A CSV row has the wrong number of fields: restart the file on the exact reader."""


def _csv_fast(path: Path, fields: list[pa.Field]) -> Iterator[pa.RecordBatch]:
    """pyarrow's streaming reader. Line numbers count embedded newlines; blank lines stay rows.

    A row with the wrong field count raises NeedsExactReader: the caller discards what it staged
    and reads the file again with `_csv_exact`, which keeps such rows (to quarantine them).
    """
    row = 0
    line = 2  # the header is line 1
    names = [f.name for f in fields]
    schema = pa.schema([*fields, pa.field(ROW, pa.int64()), pa.field(LINE, pa.int64())])
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, block_size=CSV_BLOCK_BYTES
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            n = batch.num_rows
            if n == 0:
                continue
            newlines = np.zeros(n, dtype=np.int64)
            for col in batch.columns:
                if _may_hold_newline(col):
                    newlines += pc.fill_null(pc.count_substring(col, "\n"), 0).to_numpy()
            starts = line + np.concatenate(([0], np.cumsum(1 + newlines)[:-1]))
            line = int(starts[-1] + 1 + newlines[-1])
            rows = np.arange(row + 1, row + n + 1, dtype=np.int64)
            row += n
            arrays = [*batch.columns, pa.array(rows), pa.array(starts)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    except pa.ArrowInvalid as e:
        if "Expected" in str(e) and "columns" in str(e):
            raise NeedsExactReader(str(e)) from None
        if "Could not skip initial" in str(e):  # a header without a line break after it
            raise NeedsExactReader(str(e)) from None
        if "straddl" in str(e):  # a row longer than a block
            raise NeedsExactReader(str(e)) from None
        raise InputFileError(f"{path}: cannot read as CSV: {_arrow_reason(e)}") from None


def _may_hold_newline(col: pa.Array) -> bool:
    """False when no value of the string column `col` holds a line break: its data buffer (all
    its values' bytes, one scan at memory speed) has none. Counting per value costs ~20x more,
    and line breaks inside values are rare."""
    data = col.buffers()[2]
    if data is None:
        return False
    return bool((np.frombuffer(data, dtype=np.uint8) == 10).any())


def _arrow_reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "UTF8" in text or "utf8" in text.lower():
        return "the file is not valid UTF-8 text; re-save it as UTF-8"
    return text


CSV_FIELD_LIMIT = 16 << 20
"""Largest CSV field (characters) the exact reader accepts: a longer one fails the file, naming its
line, instead of holding hundreds of MB. (Python's default, 128 KiB, would fail a whole file for one
long field that the fast reader reads fine.) A field longer than a fast-reader block is read by
the exact reader, so this is the limit for every field."""


def _field_limit() -> None:
    if csv.field_size_limit() != CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)


CSV_LINE_LIMIT = 2 * CSV_FIELD_LIMIT
"""Longest physical line (characters) the exact reader reads: the csv module takes whole lines,
so without it a 150 MB field is a 150 MB line in memory before the field limit is checked."""


def _bounded_lines(path: Path, f: io.TextIOBase) -> Iterator[str]:
    n = 0
    while line := f.readline(CSV_LINE_LIMIT + 1):
        n += 1
        if len(line) > CSV_LINE_LIMIT:
            raise InputFileError(
                f"{path}: line {n}: longer than {CSV_LINE_LIMIT >> 20} MiB characters "
                f"(a field may be at most {CSV_FIELD_LIMIT >> 20} MiB); nothing of the file was "
                f"ingested"
            )
        yield line


MALFORMED = "_malformed"
"""Column set by the exact CSV reader: the field count of a row that does not match the header."""


def _csv_exact(path: Path, fields: list[pa.Field], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Python's csv module: exact line numbers, malformed rows kept (flagged) rather than lost."""
    width = len(fields)
    schema = pa.schema(
        [
            *fields,
            pa.field(ROW, pa.int64()),
            pa.field(LINE, pa.int64()),
            pa.field(MALFORMED, pa.int64()),
        ]
    )
    cols: list[list[str | None]] = [[] for _ in range(width)]
    rows: list[int] = []
    lines: list[int] = []
    bad: list[int | None] = []

    def flush() -> pa.RecordBatch:
        arrays = [pa.array(c, type=pa.string()) for c in cols]
        arrays += [
            pa.array(rows, pa.int64()),
            pa.array(lines, pa.int64()),
            pa.array(bad, pa.int64()),
        ]
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        for c in cols:
            c.clear()
        rows.clear()
        lines.clear()
        bad.clear()
        return batch

    _field_limit()
    start = 2
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(_bounded_lines(path, f))
            next(reader, None)
            start = reader.line_num + 1
            for i, record in enumerate(reader, start=1):
                if not record:  # a blank line: an empty row, quarantined as such
                    record = [""] * width
                ok = len(record) == width
                for j in range(width):
                    cols[j].append(record[j] if ok else None)
                rows.append(i)
                lines.append(start)
                bad.append(None if ok else len(record))
                start = reader.line_num + 1
                if len(rows) >= batch_rows:
                    yield flush()
    except UnicodeDecodeError as e:
        raise InputFileError(
            f"{path}: the file is not valid UTF-8 text ({e.reason}); re-save it as UTF-8"
        ) from None
    except csv.Error as e:
        where = f"line {start}: "
        if "field larger than field limit" in str(e):
            raise InputFileError(
                f"{path}: {where}a field is longer than {CSV_FIELD_LIMIT >> 20} MiB characters, "
                f"the limit; nothing of the file was ingested"
            ) from None
        raise InputFileError(f"{path}: {where}cannot parse as CSV ({e})") from None
    if rows:
        yield flush()


# -- JSON Lines --------------------------------------------------------------------------------


_WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def _open_jsonl(path: Path, batch_rows: int) -> Source:
    _check_jsonl_encoding(path)
    return Source(path, "jsonl", [], _jsonl_batches(path, batch_rows))


def _check_jsonl_encoding(path: Path) -> None:
    """A UTF-16 or UTF-32 file (a byte order mark, or NUL bytes in its first line) fails as a file,
    as a CSV does: every one of its lines would be a junk row. Other bytes that are not UTF-8 stay
    a property of their line (quarantined `invalid_utf8`)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from None
    encoding = next((enc for bom, enc in _WIDE_BOMS.items() if head.startswith(bom)), None)
    first = head.split(b"\n", 1)[0]
    if encoding is None and first.count(b"\x00") * 4 >= len(first) > 0:
        encoding = "UTF-16 or UTF-32"  # ASCII text in a wide encoding: every other byte is NUL
    if encoding:
        raise InputFileError(
            f"{path}: the file is not valid UTF-8 text (it is {encoding}); re-save it as UTF-8"
        )


JSONL_LINE_LIMIT = 2 * CSV_FIELD_LIMIT
"""Longest JSON Lines line (bytes): a longer one fails the file, naming its line, in bounded memory."""
JSONL_BATCH_BYTES = 16 << 20
"""Bytes of text per JSON Lines batch (lines can be long: rows alone do not bound a batch)."""


def jsonl_lines(path: Path, f: io.BufferedIOBase) -> Iterator[bytes]:
    """The lines of an open JSON Lines file, each at most JSONL_LINE_LIMIT bytes."""
    n = 0
    while raw := f.readline(JSONL_LINE_LIMIT + 1):
        n += 1
        if len(raw) > JSONL_LINE_LIMIT:
            raise InputFileError(
                f"{path}: line {n}: longer than {JSONL_LINE_LIMIT >> 20} MiB, the limit; "
                f"nothing of the file was ingested"
            )
        yield raw


def _jsonl_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """One row per non-blank line; JSON parsing happens in SQL, so a bad line is one bad row."""
    texts: list[str | None] = []
    rows: list[int] = []
    lines: list[int] = []
    row = 0
    size = 0

    def flush() -> pa.RecordBatch:
        batch = pa.RecordBatch.from_arrays(
            [pa.array(texts, pa.string()), pa.array(rows, pa.int64()), pa.array(lines, pa.int64())],
            names=[JSON_LINE, ROW, LINE],
        )
        texts.clear()
        rows.clear()
        lines.clear()
        return batch

    with path.open("rb", buffering=1 << 20) as f:
        for lineno, raw in enumerate(jsonl_lines(path, f), start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            stripped = raw.strip()
            if not stripped:
                continue
            row += 1
            try:
                texts.append(stripped.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
            rows.append(row)
            lines.append(lineno)
            size += len(stripped)
            if len(rows) >= batch_rows or size >= JSONL_BATCH_BYTES:
                size = 0
                yield flush()
    if rows:
        yield flush()


# -- Parquet -----------------------------------------------------------------------------------


def _open_parquet(path: Path, batch_rows: int) -> Source:
    try:
        pf = pq.ParquetFile(path)
        arrow_schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as e:
        raise InputFileError(f"{path}: cannot read as Parquet: {e}") from None
    names = list(arrow_schema.names)
    _check_width(path, len(names))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(f"{path}: duplicate column names: {', '.join(dupes)}")
    fields = [data_field(i, f.name, f.type) for i, f in enumerate(arrow_schema)]
    schema = pa.schema([*fields, pa.field(ROW, pa.int64()), pa.field(LINE, pa.int64())])
    return Source(path, "parquet", names, _parquet_batches(path, pf, schema, batch_rows))


PARQUET_BATCH_BYTES = 16 << 20
"""Bytes of Arrow memory per batch read from a Parquet file: a few MB on disk can be GBs of
repeated long text (dictionary-encoded, compressed), so rows alone do not bound a batch."""


def _parquet_batch_rows(pf: pq.ParquetFile, batch_rows: int) -> int:
    """Rows per batch: `batch_rows`, fewer when a sample of the first rows says that many would
    take more than PARQUET_BATCH_BYTES."""
    if pf.metadata.num_rows == 0 or pf.num_row_groups == 0:
        return batch_rows
    probe = next(pf.iter_batches(batch_size=1024, row_groups=[0]), None)
    if probe is None or probe.num_rows == 0:
        return batch_rows
    per_row = max(1.0, probe.nbytes / probe.num_rows)
    return max(1, min(batch_rows, int(PARQUET_BATCH_BYTES / per_row)))


def _parquet_batches(
    path: Path, pf: pq.ParquetFile, schema: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=_parquet_batch_rows(pf, batch_rows)):
            n = batch.num_rows
            rows = pa.array(np.arange(row + 1, row + n + 1, dtype=np.int64))
            row += n
            yield pa.RecordBatch.from_arrays([*batch.columns, rows, rows], schema=schema)
    except (pa.ArrowException, OSError) as e:
        raise InputFileError(f"{path}: cannot read as Parquet (row {row + 1} on): {e}") from None
