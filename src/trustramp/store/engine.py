"""The engine boundary of stage 1: who runs `store/sql/*.sql` over the lake.

- `DuckEngine` (the default): the embedded DuckDB connection every command already has.
- `SparkEngine` (`store.spark`, the optional extra `trustramp[spark]`): the same queries,
  transpiled to Spark SQL (`store.transpile`), over the same committed Parquet files.

An engine attaches a snapshot of the lake's committed files as relations named like the
catalog's views (`predictions`, `decisions`, …), runs a DuckDB-dialect query with bound
parameters, and returns a pandas frame typed as DuckDB would type it, so whatever consumes the
stage-1 frames (the day cache, the metrics) cannot tell the engines apart. Only stage 1 (the day
statistics) goes through an engine; what follows reads the cached days.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import duckdb
import pandas as pd
import pyarrow as pa

from trustramp.errors import UsageError
from trustramp.store.duck import translated
from trustramp.store.lake import Home, attach_views

if TYPE_CHECKING:
    from trustramp.store.spark import SparkEngine

ENGINES = ("duckdb", "spark")
ENGINE_ENV = "TRUSTRAMP_ENGINE"
"""Environment variable naming the stage-1 engine when no option does (default: duckdb)."""
REMOTE_ENV = "TRUSTRAMP_SPARK_REMOTE"
MASTER_ENV = "TRUSTRAMP_SPARK_MASTER"
"""Where Spark runs when the engine is spark and no option says (remote first)."""


class Engine(Protocol):
    """What stage 1 needs from an engine."""

    name: str

    def attach(self, home: Home) -> None:
        """Expose the lake's committed files (a `lake.Snapshot` taken now) as relations."""

    def query(self, text: str, params: Mapping[str, object]) -> pd.DataFrame:
        """Run one DuckDB-dialect query with `params` bound (`$name`); its whole result."""

    def arrow(self, text: str, params: Mapping[str, object]) -> pa.Table:
        """The same, as an Arrow table (for large results that are not read as pandas)."""

    def translated(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Turn the engine's errors into StoreError naming what we were doing."""

    def held(
        self, name: str, text: str, params: Mapping[str, object]
    ) -> contextlib.AbstractContextManager[None]:
        """The result of one query kept as relation `name` for the duration (computed once,
        read by several queries), then dropped."""


@dataclass
class DuckEngine:
    """Stage 1 on an embedded DuckDB connection (the caller owns and closes it)."""

    con: duckdb.DuckDBPyConnection
    name: str = "duckdb"

    def attach(self, home: Home) -> None:
        attach_views(self.con, home)

    def query(self, text: str, params: Mapping[str, object]) -> pd.DataFrame:
        return self.con.execute(text, dict(params)).df()

    def arrow(self, text: str, params: Mapping[str, object]) -> pa.Table:
        return self.con.sql(text, params=dict(params)).to_arrow_table()

    @contextlib.contextmanager
    def held(self, name: str, text: str, params: Mapping[str, object]) -> Iterator[None]:
        # `name` is ours (a constant of the caller), never user text.
        self.con.execute(f"CREATE OR REPLACE TEMPORARY TABLE {name} AS {text}", dict(params))
        try:
            yield
        finally:
            self.con.execute(f"DROP TABLE IF EXISTS {name}")

    @contextlib.contextmanager
    def translated(self, what: str) -> Iterator[None]:
        with translated(what):
            yield


def as_engine(con_or_engine: duckdb.DuckDBPyConnection | Engine) -> Engine:
    """An engine for a DuckDB connection (wrapped) or an engine (as is)."""
    if isinstance(con_or_engine, duckdb.DuckDBPyConnection):
        return DuckEngine(con_or_engine)
    return con_or_engine


def engine_name(name: str | None = None) -> str:
    """The engine asked for: `name`, else TRUSTRAMP_ENGINE, else duckdb (checked)."""
    chosen = (name or os.environ.get(ENGINE_ENV) or "duckdb").strip().lower()
    if chosen not in ENGINES:
        raise UsageError(
            f"engine {chosen[:40]!r} is not one of {', '.join(ENGINES)} (--engine or {ENGINE_ENV})"
        )
    return chosen


@dataclass(frozen=True)
class EngineSpec:
    """Which stage-1 engine an evaluation uses, and where Spark runs (picklable: it crosses
    into Prefect tasks, where the engine itself is started)."""

    name: str = "duckdb"
    spark_remote: str | None = None
    """Spark Connect URL, `sc://HOST:PORT`: the server must see the same home folder."""
    spark_master: str | None = None
    """A classic Spark master, e.g. `local[4]` (default for spark: `local[*]`)."""

    @classmethod
    def of(
        cls,
        name: str | None = None,
        *,
        spark_remote: str | None = None,
        spark_master: str | None = None,
    ) -> EngineSpec:
        """The engine asked for (else TRUSTRAMP_ENGINE, TRUSTRAMP_SPARK_REMOTE/_MASTER),
        its flags checked together."""
        chosen = engine_name(name)
        if chosen == "spark" and not (spark_remote or spark_master):
            spark_remote = os.environ.get(REMOTE_ENV) or None
            spark_master = None if spark_remote else os.environ.get(MASTER_ENV) or None
        if chosen != "spark" and (spark_remote or spark_master):
            flag = "--spark-remote" if spark_remote else "--spark-master"
            raise UsageError(f"{flag} needs --engine spark (the engine is {chosen})")
        if spark_remote and spark_master:
            raise UsageError("--spark-remote and --spark-master exclude each other: give one")
        if spark_remote and not spark_remote.startswith("sc://"):
            raise UsageError(
                f"--spark-remote {spark_remote[:60]!r} is not a Spark Connect URL (sc://HOST:PORT)"
            )
        return cls(chosen, spark_remote, spark_master)

    def for_work(self, stale: bool) -> EngineSpec:
        """This engine when there are stale days to compute, else DuckDB: no Spark session is
        started for nothing (days an ingest adds meanwhile are computed on DuckDB)."""
        return self if stale else EngineSpec()

    def export(self) -> None:
        """Put this choice in the environment, for code that reads it there (a flow run)."""
        os.environ[ENGINE_ENV] = self.name
        for var, value in ((REMOTE_ENV, self.spark_remote), (MASTER_ENV, self.spark_master)):
            if value:
                os.environ[var] = value
            else:
                os.environ.pop(var, None)

    @contextlib.contextmanager
    def started(self) -> Iterator[SparkEngine | None]:
        """The Spark engine for the duration (None for duckdb: callers use their connection)."""
        if self.name != "spark":
            yield None
            return
        from trustramp.store.spark import SparkEngine

        engine = SparkEngine.start(remote=self.spark_remote, master=self.spark_master)
        try:
            yield engine
        finally:
            engine.stop()
