"""Great Expectations suites for the contract, built in code, run in an ephemeral context.

The row-level SQL checks decide which rows are quarantined (they give reasons per row). Before a
file's rows land, the rows about to land are validated once more against a Great Expectations suite
per kind: a contract audit at the boundary. A failing audit means the checks let something through;
the file is rejected whole rather than landing data that breaks the contract.

Great Expectations is imported lazily (about 4 s), with its telemetry and progress bars off; the
ephemeral context writes no files.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
import threading
from typing import Any

import pandas as pd

from trustramp.contract import ColType, Kind, Schema, schema_for

log = logging.getLogger(__name__)


def quiet_environment() -> None:
    """Turn off dependencies' telemetry for this process (set before they are imported)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _no_spark_connect_without_grpc()


def _no_spark_connect_without_grpc() -> None:
    """Great Expectations imports pyspark's Spark Connect modules when pyspark is installed (the
    optional Spark engine). Without grpc, pyspark takes a process whose `__main__` has no file
    (`python -c`, a script on stdin) for its own doctest run and exits it, status 0, in the
    middle of the import (`pyspark.sql.connect.utils.check_dependencies`). Without grpc Spark
    Connect cannot work anyway: mark those modules missing, so GX gets the ImportError it
    handles. (Classic pyspark imports them only for a Spark Connect session.)"""
    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("grpc") is not None:
        return
    for name in ("pyspark.sql.connect.dataframe", "pyspark.sql.connect.session"):
        sys.modules.setdefault(name, None)  # type: ignore[assignment]


_warm: list[threading.Thread] = []
_warm_lock = threading.Lock()


def warm_up() -> None:
    """Import Great Expectations and build the suites in a background thread (once per process).

    The import takes seconds of pure Python; ingest starts it first, and its DuckDB work (which
    releases the GIL) runs meanwhile. `audit` waits for it.
    """
    with _warm_lock:
        if not _warm:
            t = threading.Thread(target=_build_all, name="trustramp-gx-warm-up", daemon=True)
            _warm.append(t)
            t.start()


def _build_all() -> None:
    try:
        for kind in Kind:
            _validator(kind)
    except Exception:  # audit() builds again in the foreground and raises there
        log.debug("warming up Great Expectations failed", exc_info=True)


def _wait_for_warm_up() -> None:
    with _warm_lock:
        threads = list(_warm)
    for t in threads:
        if t is not threading.current_thread():
            t.join()


@functools.cache
def _context() -> Any:
    quiet_environment()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every pandas batch below this size (hashing the whole frame) for its
    # batch markers; nothing here persists results, so the fingerprint is work thrown away.
    pandas_execution_engine.HASH_THRESHOLD = 0

    for name in (
        "great_expectations",
        "great_expectations.core",
        "great_expectations._docs_decorators",
        "great_expectations.data_context.types.base",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def build_suite(schema: Schema) -> Any:
    """The expectation suite of one kind (the contract, as Great Expectations states it)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"trustramp_{schema.kind.value}")
    for c in schema.columns:
        if c.name == "feature":
            continue  # a partition of the lake, not a column of its files
        suite.add_expectation(gxe.ExpectColumnToExist(column=c.name))
        if c.required is True:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=c.name))
        if c.enum:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeInSet(column=c.name, value_set=list(c.enum))
            )
        if c.type in (ColType.FLOAT, ColType.INT) and (c.low is not None or c.high is not None):
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=c.low, max_value=c.high)
            )
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column=schema.id_column))
    return suite


@functools.cache
def _validator(kind: Kind) -> tuple[Any, Any]:
    """(batch definition, suite) of one kind; validating a batch directly avoids the context's
    persistence of suites and validation definitions, which costs seconds per kind."""
    ctx = _context()
    source = ctx.data_sources.add_pandas(f"trustramp_{kind.value}")
    asset = source.add_dataframe_asset(name=f"{kind.value}_rows")
    batch_def = asset.add_batch_definition_whole_dataframe(f"{kind.value}_batch")
    return batch_def, build_suite(schema_for(kind))


def audit(kind: Kind, frame: pd.DataFrame) -> list[str]:
    """Validate rows about to land; returns the failed expectations (empty when all pass)."""
    if frame.empty:
        return []
    _wait_for_warm_up()
    batch_def, suite = _validator(kind)
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="BOOLEAN_ONLY")
    if result.success:
        return []
    failed = []
    for r in result.results:
        if not r.success:
            cfg = r.expectation_config
            failed.append(f"{cfg.type}({cfg.kwargs.get('column', '')})")
    return failed
