"""Shared checks of the reliability tests (this module holds no tests).

- `count_input_rows`: an independent count of a file's records (Python's csv and json modules,
  pyarrow's metadata), the left side of the invariant rows in = landed + duplicates + quarantined.
- `check_accounting`: that invariant and the rest of an ingest report, checked against what the
  catalog shows, for every file of a run.
- `visible_state` / `check_consistent`: what readers see, and that it is never half a file.
- `files_under`: every path under a folder, to prove that nothing escaped its place.
- `canonical`: a metrics table in a fixed row order, to compare content (DuckDB keeps no row
  order, and the table's order follows the aggregates').
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from trustramp.contract import Kind
from trustramp.ingest import IngestReport
from trustramp.ingest.readers import content_hash, file_format
from trustramp.store.lake import Home, reader

KINDS = tuple(k.value for k in Kind)


def count_input_rows(path: Path) -> int:
    """Records in a readable input file, counted without trustramp's readers.

    CSV: records after the header as Python's csv module splits them (a blank line is an empty
    record); JSON Lines: non-blank lines; Parquet: the row count in the footer.
    """
    fmt = file_format(path)
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    data = path.read_bytes()
    if fmt == "jsonl":
        return sum(1 for line in data.split(b"\n") if line.strip())
    limit = csv.field_size_limit()
    csv.field_size_limit(1 << 30)
    try:
        text = io.StringIO(data.decode("utf-8-sig"), newline="")
        return sum(1 for _ in csv.reader(text)) - 1  # minus the header
    finally:
        csv.field_size_limit(limit)


def _one(con, query: str, params: list) -> int:  # type: ignore[no-untyped-def]
    return int(con.execute(query, params).fetchall()[0][0])


def check_accounting(home: Path, report: IngestReport) -> dict[str, Counter[str]]:
    """Assert, for every file of `report`, what the lake, the quarantine and the log show.

    Ingested: rows in (counted independently) = rows landed + identical repeats + rows
    quarantined, each count equal to the catalog's; every quarantined row has a reason, a detail,
    the file's name and a distinct row number. Failed: the error names the file, and nothing of
    the file is visible or left in the lake. Returns the quarantine reasons per file name.
    """
    h = Home.at(home)
    con = reader(h)
    reasons: dict[str, Counter[str]] = {}
    try:
        for f in report.files:
            if f.status == "failed":
                assert f.error and str(f.path) in f.error, f.error
                src = f.source or (content_hash(f.path) if f.path.is_file() else None)
                if src is not None:
                    assert not h.is_committed(src)
                    assert not list(h.lake.glob(f"*/*/*/part-{src}-*.parquet"))
                    assert not (h.quarantine / f"{src}.parquet").exists()
                continue
            assert f.source is not None and h.is_committed(f.source), f
            if f.status == "skipped":
                continue
            kind = f.kind.value if f.kind else ""
            rows_in = count_input_rows(f.path)
            landed = _one(con, f'SELECT count(*) FROM "{kind}" WHERE _source = ?', [f.source])
            quarantined = con.execute(
                "SELECT reason, detail, file, row_number, line FROM quarantine WHERE source = ?",
                [f.source],
            ).fetchall()
            assert f.rows_read == rows_in, (f.path, f.rows_read, rows_in)
            assert f.rows_new == landed, (f.path, f.rows_new, landed)
            assert f.rows_quarantined == len(quarantined), (f.path, f.rows_quarantined)
            assert f.rows_duplicate >= 0
            assert rows_in == landed + f.rows_duplicate + len(quarantined), f
            for reason, detail, file, row, line in quarantined:
                assert reason and detail and file == str(f.path), (reason, detail, file)
                assert 1 <= row <= rows_in and line >= 1
            assert len({q[3] for q in quarantined}) == len(quarantined)  # one reason per row
            logged = con.execute(
                "SELECT rows_read, rows_new, rows_duplicate, rows_quarantined FROM ingest_log "
                "WHERE source = ?",
                [f.source],
            ).fetchall()
            assert logged == [(rows_in, landed, f.rows_duplicate, len(quarantined))]
            got = Counter(q[0] for q in quarantined)
            assert got == f.reasons
            reasons[f.path.name] = got
    finally:
        con.close()
    return reasons


def visible_state(home: Path) -> dict[str, list[tuple]]:
    """Everything the catalog's views show, minus wall-clock columns, sorted."""
    con = reader(Home.at(home))
    try:
        out = {k: con.sql(f'SELECT * FROM "{k}" ORDER BY ALL').fetchall() for k in KINDS}
        out["quarantine"] = con.sql(
            "SELECT * EXCLUDE (quarantined_at) FROM quarantine ORDER BY ALL"
            if "quarantined_at" in con.sql("SELECT * FROM quarantine LIMIT 0").columns
            else "SELECT * FROM quarantine ORDER BY ALL"
        ).fetchall()
        out["ingest_log"] = con.sql(
            "SELECT source, file, kind, rows_read, rows_new, rows_duplicate, rows_quarantined "
            "FROM ingest_log ORDER BY ALL"
        ).fetchall()
        return out
    finally:
        con.close()


def check_consistent(home: Path) -> None:
    """Readers see whole files only: each committed file's rows are all visible, and nothing else.

    Counts the lake rows and quarantined rows per source straight from the Parquet files (not
    through the views) and compares them with each commit record.
    """
    h = Home.at(home)
    con = reader(h)
    try:
        log = {
            src: (kind, new, quarantined)
            for src, kind, new, quarantined in con.sql(
                "SELECT source, kind, rows_new, rows_quarantined FROM ingest_log"
            ).fetchall()
        }
        for src, (kind, new, quarantined) in log.items():
            parts = sorted(h.lake.glob(f"{kind}/*/*/part-{src}-*.parquet"))
            in_parts = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
            assert in_parts == new, (src, kind, in_parts, new)
            q = h.quarantine / f"{src}.parquet"
            assert (pq.ParquetFile(q).metadata.num_rows if q.exists() else 0) == quarantined
        for kind in KINDS:
            seen = con.sql(f'SELECT _source, count(*) FROM "{kind}" GROUP BY ALL').fetchall()
            assert {s for s, _ in seen} <= set(log), kind  # nothing of an uncommitted file
            for src, n in seen:
                assert log[src][0] == kind and log[src][1] == n, (kind, src, n)
    finally:
        con.close()


def files_under(root: Path) -> set[str]:
    """Every file and folder under `root`, as paths relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` sorted by all its columns, float columns last, with a fresh index.

    Floats last: two runs' float sums may differ in the last bits (DuckDB sums in parallel), and
    two rows that differ only in a key column can hold the same value (a version seen only in
    shadow mode has the same Brier score with and without `mode`): sorted by the float first,
    their order would follow those last bits and misalign the rows of two equal tables."""
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    keys = [c for c in frame.columns if c not in floats] + floats
    return frame.sort_values(keys, na_position="first", ignore_index=True)
