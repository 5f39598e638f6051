"""DuckDB connections: bounded memory, UTC, spill space inside HOME, errors translated here."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb

from trustramp.errors import StoreError

DEFAULT_MEMORY_LIMIT = os.environ.get("TRUSTRAMP_MEMORY_LIMIT", "1GB")


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
        "memory_limit": memory_limit or DEFAULT_MEMORY_LIMIT,
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
        return con
    except duckdb.Error as e:
        raise StoreError(f"cannot open DuckDB database {database}: {e}") from e


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
