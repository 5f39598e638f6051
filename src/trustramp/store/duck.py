"""DuckDB connections: bounded memory, UTC, spill space inside HOME, errors translated here."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb

from trustramp.errors import StoreError

DEFAULT_MEMORY_LIMIT = "1GB"
"""DuckDB's memory limit unless a caller passes one or TRUSTRAMP_MEMORY_LIMIT is set (read when
a connection opens). A process holds about 300 MB beside it (Python, pandas, Arrow, and Great
Expectations in an ingest): ingest and evaluate peak near that plus the limit, whatever the
size of the files or the lake."""


def memory_limit_setting(memory_limit: str | None = None) -> str:
    """The memory limit a connection gets: `memory_limit`, else TRUSTRAMP_MEMORY_LIMIT, else 1GB."""
    return memory_limit or os.environ.get("TRUSTRAMP_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def connect(
    database: str | Path = ":memory:",
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    temp_directory: Path | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with trustramp's settings: memory bounded, spill to `temp_directory`."""
    config: dict[str, str | int | bool] = {
        "memory_limit": memory_limit_setting(memory_limit),
        "preserve_insertion_order": False,
        # No network here or in CI: never try to download an extension.
        "autoinstall_known_extensions": False,
    }
    if threads:
        config["threads"] = threads
    if temp_directory is not None:
        temp_directory.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    try:
        con = duckdb.connect(str(database), read_only=read_only, config=config)
        con.execute("SET TimeZone = 'UTC'")  # timestamps without offset are UTC (SPEC 1.1)
        con.execute("SET enable_progress_bar = false")
        flush = partitioned_write_flush_rows(_limit_setting(con))
        con.execute(f"SET partitioned_write_flush_threshold = {flush}")
        con.execute(f"SET partitioned_write_max_open_files = {PARTITIONS_OPEN}")
        return con
    except duckdb.Error as e:
        raise StoreError(f"cannot open DuckDB database {database}: {e}") from e


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_bytes(limit: str) -> int:
    """Bytes of a DuckDB memory size such as '1GB', '512 MiB' or '953.6 MiB'."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", limit)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a memory size: {limit!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _limit_setting(con: duckdb.DuckDBPyConnection) -> str:
    """The connection's memory limit as DuckDB understood it, e.g. '953.6 MiB' for '1GB'."""
    return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def _limit_bytes(limit: str) -> int:
    """`memory_bytes` of a limit setting, or 1 GB when it is not a plain size."""
    try:
        return memory_bytes(limit)
    except ValueError:
        return 10**9


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The connection's memory limit in bytes (1 GB when DuckDB shows something else)."""
    return _limit_bytes(_limit_setting(con))


PARTITIONS_OPEN = 32
"""Partitions a partitioned COPY keeps open at once (DuckDB's default is 100); a file of more
days than this closes some and opens new files for them as its rows come."""


def partitioned_write_flush_rows(memory_limit: str) -> int:
    """Rows a thread buffers per open partition before a partitioned COPY flushes them.

    DuckDB's default (524,288 rows) makes the lake write of a big file hold up to that many
    rows per thread and partition, memory it cannot spill: writing a 10M-row, 30-day file
    peaked at 1.1 GB under a 1 GB limit, and failed under 100 MB. Measured at about 130 bytes
    per buffered row, one row per 30 KB of the limit keeps the buffers of 2 threads and
    `PARTITIONS_OPEN` partitions within about a quarter of the limit (33k rows at 1 GB);
    between 2,048 and 131,072 rows. The lake's row groups come out about twice that size."""
    return int(min(max(_limit_bytes(memory_limit) // 30_000, 2048), 131_072))


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn DuckDB errors into StoreError naming what we were doing."""
    try:
        yield
    except duckdb.Error as e:
        raise StoreError(f"{what}: {e}") from e


def sql(name: str) -> str:
    """The text of `store/sql/<name>.sql`."""
    return resources.files("trustramp.store").joinpath(f"sql/{name}.sql").read_text("utf-8")


def quote_ident(name: str) -> str:
    """Quote an identifier (identifiers come only from the contract; this guards the quoting)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal; only for DDL where DuckDB cannot bind parameters (file paths in views)."""
    return "'" + text.replace("'", "''") + "'"
