"""Stage 1 on Spark (the optional extra `trustramp[spark]`): the same SQL over the same files.

Spark reads the lake's committed Parquet files, listed by a `lake.Snapshot` (never a glob of the
lake, which would see the parts of a file whose commit record is not written yet), with their
hive partitions `feature` (string) and `date` (date), as temporary views named like DuckDB's.
Queries come in DuckDB's dialect and are transpiled (`store.transpile`); results come back
through Arrow and are typed by DuckDB's own pandas conversion, so the frames match DuckDB's.

pyspark is imported only here, and only when the Spark engine is asked for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from trustramp.contract import DATE, FEATURE, SCHEMAS, Kind
from trustramp.errors import StoreError
from trustramp.store.lake import Home, Snapshot
from trustramp.store.transpile import to_spark

# pyspark 4.3 warns on every pandas 3 conversion; ours go through Arrow and DuckDB, not pyspark's
# pandas code, and the parity tests compare the results.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

JAVA_MAJORS = (17, 21)
"""The Java versions Spark 4 runs on."""

_SPARK_TYPES = {
    "VARCHAR": "STRING",
    "DOUBLE": "DOUBLE",
    "BIGINT": "BIGINT",
    "UBIGINT": "DECIMAL(20,0)",  # how Spark reads Parquet's unsigned 64-bit integers
    "TIMESTAMPTZ": "TIMESTAMP",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
}


def java_major(home: str | Path) -> int | None:
    """The major version of `home/bin/java`, or None when there is none that runs."""
    java = Path(home) / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)', out.stderr + out.stdout)
    return int(m.group(1)) if m else None


def find_java_home() -> str | None:
    """A Java home Spark 4 runs on: JAVA_HOME if it is one, else that of `java` on PATH, else
    one under /usr/lib/jvm (newest first). None when the machine has none."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(os.environ["JAVA_HOME"])
    on_path = shutil.which("java")
    if on_path:
        candidates.append(str(Path(os.path.realpath(on_path)).parent.parent))
    candidates += sorted(glob.glob("/usr/lib/jvm/*"), reverse=True)
    for home in candidates:
        if java_major(home) in JAVA_MAJORS:
            return home
    return None


class SparkEngine:
    """Stage 1 on a SparkSession (local, a cluster's master, or a Spark Connect server)."""

    name = "spark"

    def __init__(self, session: Any, *, owned: bool = False) -> None:
        self.spark = session
        self._owned = owned

    @classmethod
    def start(cls, *, remote: str | None = None, master: str | None = None) -> SparkEngine:
        """Start (or join) a session: Spark Connect at `remote`, else `master` (default
        `local[*]`, which needs Java 17 or 21 on this machine)."""
        try:
            from pyspark.sql import SparkSession
        except ImportError as e:
            raise StoreError(
                "the Spark engine needs pyspark: pip install 'trustramp[spark]' "
                "(or run without --engine spark)"
            ) from e
        builder = SparkSession.builder.appName("trustramp")
        if remote:
            if importlib.util.find_spec("grpc") is None:
                raise StoreError(
                    f"Spark Connect ({remote}) needs its client: pip install 'pyspark[connect]'"
                )
            builder = builder.remote(remote)
        else:
            java = find_java_home()
            if java is None:
                raise StoreError(
                    "the Spark engine needs Java 17 or 21: install one or set JAVA_HOME to it"
                )
            os.environ["JAVA_HOME"] = java
            master = master or "local[*]"
            builder = builder.master(master).config("spark.ui.enabled", "false")
            builder = builder.config("spark.ui.showConsoleProgress", "false")
            builder = builder.config("spark.sql.shuffle.partitions", str(_local_partitions(master)))
        try:
            # A session this process already runs is joined, and left running by `stop`.
            joined = not remote and SparkSession.getActiveSession() is not None
            session = builder.getOrCreate()
            if not remote:
                session.sparkContext.setLogLevel("ERROR")
            session.conf.set("spark.sql.session.timeZone", "UTC")  # SPEC 1.1: timestamps in UTC
            # `feature` and `date` stay strings until typed below (a feature named like a
            # number must not become one).
            session.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        except Exception as e:  # pyspark raises many kinds here (gateway, connect, config)
            raise StoreError(f"cannot start Spark ({remote or master}): {_first_line(e)}") from e
        return cls(session, owned=not joined)

    def stop(self) -> None:
        if self._owned:
            self.spark.stop()

    def attach(self, home: Home) -> None:
        snap = Snapshot.take(home)
        with self.translated("reading the lake with Spark"):
            for kind in Kind:
                self._relation(home, snap, kind).createOrReplaceTempView(kind.value)

    def _relation(self, home: Home, snap: Snapshot, kind: Kind) -> Any:
        from pyspark.sql import functions as F

        files = snap.parts[kind]
        if not files:
            return self.spark.createDataFrame([], schema=_empty_schema(kind))
        frame = (
            self.spark.read.option("basePath", str(home.kind_dir(kind)))
            .option("mergeSchema", "true")
            .parquet(*(str(p) for p in files))
        )
        return frame.withColumn(DATE, F.col(DATE).cast("date"))

    def arrow(self, text: str, params: Mapping[str, object]) -> pa.Table:
        return self.spark.sql(to_spark(text), args=_args(params)).toArrow()

    def query(self, text: str, params: Mapping[str, object]) -> pd.DataFrame:
        table = self.arrow(text, params)
        con = duckdb.connect()
        try:
            return con.from_arrow(table).df()
        finally:
            con.close()

    @contextlib.contextmanager
    def held(self, name: str, text: str, params: Mapping[str, object]) -> Iterator[None]:
        frame = self.spark.sql(to_spark(text), args=_args(params)).cache()
        frame.createOrReplaceTempView(name)
        try:
            yield
        finally:
            self.spark.catalog.dropTempView(name)
            frame.unpersist()

    @contextlib.contextmanager
    def translated(self, what: str) -> Iterator[None]:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        try:
            yield
        except (PySparkException, Py4JError) as e:
            raise StoreError(f"{what} (Spark): {_first_line(e)}") from e


def _local_partitions(master: str) -> int:
    """Shuffle partitions for a local master: a few per core, not Spark's cluster default 200
    (each one a task: on small data the tasks, not the rows, would take the time)."""
    m = re.fullmatch(r"local\[(\d+)(?:,\d+)?\]", master)
    cores = int(m.group(1)) if m else (os.cpu_count() or 2)
    return max(2, 2 * cores)


def _args(params: Mapping[str, object]) -> dict[str, Any]:
    """Spark's named parameters: lists become array literals, the rest Spark literals."""
    from pyspark.sql import functions as F

    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, list | tuple):
            out[key] = F.array(*(F.lit(v) for v in value))
        elif isinstance(value, dt.datetime):
            raise StoreError(f"parameter {key}: timestamps are not bound for Spark yet")
        else:
            out[key] = value
    return out


def _empty_schema(kind: Kind) -> str:
    """A DDL schema of a kind's lake rows, for the empty relation of a kind with no files."""
    from trustramp.store.columns import lake_columns

    cols = [(n, _SPARK_TYPES.get(t, "STRING")) for n, t in lake_columns(SCHEMAS[kind])]
    cols += [("_source", "STRING"), (FEATURE, "STRING"), (DATE, "DATE")]
    return ", ".join(f"`{n}` {t}" for n, t in cols)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:400]
