"""Bring a lake written by an older trustramp to the current layout, in place.

One migration so far: decisions written before each decision stored its item's prediction days
(`contract.PRED_FIRST`, `PRED_LAST`) get them. Stage 1 reads such a file anyway (a decision
without days is read for every chunk: correct, only slower), so the migration only buys speed,
and nothing reads a half-migrated lake wrongly.

It runs under the writer lock (ingest calls it first). Each old file is rewritten whole — the same
rows in the same order, the two columns added, computed from the committed predictions as ingest
computes them — to `HOME/tmp` and renamed over the original (atomic: a reader sees the old file or
the new one, never a mix). A crash leaves some files migrated and the rest as they were; the next
run finishes the job. `HOME/state/layout/<name>` records a finished migration, so that a migrated
lake is not searched again.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from trustramp.contract import DATE, FEATURE, ITEM_KEY, PRED_FIRST, PRED_LAST, Kind
from trustramp.store.duck import quote_literal, translated
from trustramp.store.lake import Home, fsync_dir, relations

__all__ = ["PRED_DAYS", "migrate"]

log = logging.getLogger(__name__)

PRED_DAYS = "decisions-pred-days"
"""The migration adding each decision's prediction days (its record under state/layout)."""


def migrate(con: duckdb.DuckDBPyConnection, home: Home) -> int:
    """Run the migrations this lake has not had; returns the number of files rewritten.
    Call it holding the writer lock."""
    done = home.state / "layout" / PRED_DAYS
    if done.exists():
        return 0
    old = [p for p in home.lake_files(Kind.DECISIONS) if PRED_FIRST not in _columns(p)]
    if old:
        with translated("migrating the lake: adding prediction days to decisions"):
            _add_pred_days(con, home, old)
        log.info("migrated %d decisions files: prediction days added", len(old))
    done.parent.mkdir(parents=True, exist_ok=True)
    done.touch()
    fsync_dir(done.parent)
    return len(old)


def _columns(path: Path) -> list[str]:
    return pq.read_schema(path).names


def _add_pred_days(con: duckdb.DuckDBPyConnection, home: Home, files: list[Path]) -> None:
    predictions = relations(home)[Kind.PREDICTIONS.value]
    # Every item's prediction days by feature, for the items of the files to migrate.
    listed = "[" + ", ".join(quote_literal(str(p)) for p in files) + "]"
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE _pred_days AS
SELECT {ITEM_KEY}, {FEATURE}, min({DATE}) AS {PRED_FIRST}, max({DATE}) AS {PRED_LAST}
FROM ({predictions}) p
WHERE {ITEM_KEY} IN (SELECT {ITEM_KEY} FROM read_parquet({listed}, union_by_name = true))
GROUP BY ALL
""")
    home.tmp.mkdir(parents=True, exist_ok=True)
    try:
        for path in files:
            feature = _partition(path, FEATURE)
            tmp = home.tmp / f"migrate-{uuid.uuid4().hex[:12]}.parquet"
            # The days of the decision's own feature (its partition); none for `_unmatched`,
            # which no prediction's feature can be (ingest.checks.FEATURE_NAME_PATTERN).
            con.execute(
                f"""
COPY (
  SELECT d.* EXCLUDE (file_row_number), p.{PRED_FIRST}, p.{PRED_LAST}
  FROM read_parquet(?, file_row_number = true, hive_partitioning = false) d
  LEFT JOIN _pred_days p ON p.{ITEM_KEY} = d.{ITEM_KEY} AND p.{FEATURE} = ?
  ORDER BY d.file_row_number
) TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)
""",
                [str(path), feature],
            )
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
    finally:
        con.execute("DROP TABLE IF EXISTS _pred_days")


def _partition(path: Path, name: str) -> str:
    """The value of Hive partition `name` in a lake file's path."""
    for part in path.parts:
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
    raise ValueError(f"{path}: no {name}= folder")
