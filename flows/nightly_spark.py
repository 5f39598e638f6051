"""Prefect flow `nightly-spark`: ingest, recompute every dirty day on Spark, then evaluate.

The scale-out variant of `nightly`: after the ingest, one Spark application recomputes the
day statistics of every configured feature's stale days (new predictions, late decisions) into
the day cache; each feature's evaluation then runs on DuckDB as usual, reading those days from
the cache, and its report and alerts are published. One broken feature does not stop the others;
a failed Spark step does not stop the evaluations either (they compute their days on DuckDB),
but the run ends Failed, naming it.
Deployed as `nightly-spark` (prefect.yaml); needs `trustramp[spark]` on the worker.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from evaluate_flow import evaluate_flow
from ingest_flow import ingest_flow
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from publish_flow import publish_flow
from pydantic import Field

from trustramp import pipeline
from trustramp.config import load_config
from trustramp.errors import ConfigError, InputFileError, TrustrampError
from trustramp.orchestrate import NightlyResult
from trustramp.pipeline import NoDataResult
from trustramp.store.engine import EngineSpec


@task(name="refresh-days-on-spark", cache_policy=NO_CACHE)
def refresh_days_on_spark(
    configs: list[Path | None],
    home: Path,
    as_of: dt.date | None,
    engine: EngineSpec,
    wait_seconds: float,
) -> dict[str, list[dt.date]]:
    """Every feature's stale days, recomputed in one Spark application: feature -> days (the
    pipeline logs a line per feature, which the trustramp logger brings to the run's logs)."""
    done = pipeline.refresh_day_statistics(
        configs, home=home, as_of=as_of, engine=engine, wait_seconds=wait_seconds
    )
    return {feature: list(r.recomputed) for feature, r in done.items()}


@flow(name="nightly-spark")
def nightly_spark(
    landing: Annotated[Path, Field(description="Folder where the day's log files land.")] = Path(
        "data/landing"
    ),
    configs: Annotated[
        list[Path] | None, Field(description="One rollout config per feature (default: playbook).")
    ] = None,
    home: Annotated[Path, Field(description="trustramp home: lake and catalog.")] = Path("data"),
    reports: Annotated[Path, Field(description="Folder for per-run outputs.")] = Path("reports"),
    as_of: Annotated[dt.date | None, Field(description="Default: yesterday, UTC.")] = None,
    wait_seconds: Annotated[float, Field(ge=0)] = 600.0,
    spark_remote: Annotated[
        str | None, Field(description="Spark Connect URL sc://HOST:PORT (sees the same home).")
    ] = None,
    spark_master: Annotated[
        str | None, Field(description="Spark master, e.g. local[4] (default local[*]).")
    ] = None,
) -> NightlyResult:
    """Ingest; recompute every feature's dirty days on Spark; evaluate, report, notify each."""
    engine = EngineSpec.of("spark", spark_remote=spark_remote, spark_master=spark_master)
    paths = list(configs or []) or [None]
    features = [load_config(p).feature for p in paths]
    if len(set(features)) < len(features):
        raise ConfigError(f"configs: two files configure the same feature ({features})")
    out = NightlyResult(
        ingest_flow([landing], home=home, configs=list(configs or []), wait_seconds=wait_seconds)
    )
    spark = refresh_days_on_spark(paths, home, as_of, engine, wait_seconds, return_state=True)
    spark_error = None if spark.is_completed() else str(spark.message or spark.name)
    if spark_error:  # the evaluations still run: they compute their stale days on DuckDB
        get_run_logger().error("Spark step failed, evaluating on DuckDB: %s", spark_error)
    for path, feature in zip(paths, features, strict=True):
        state = evaluate_flow(
            config=path,
            as_of=as_of,
            home=home,
            reports=reports,
            publish=False,
            wait_seconds=wait_seconds,
            return_state=True,
        )
        if state.is_completed() and isinstance(result := state.result(), NoDataResult):
            out.no_data[feature] = result.message  # nothing to evaluate is not a failure
            get_run_logger().warning("%s: %s", feature, result.message)
            continue
        if state.is_completed():
            out.evaluations[feature] = result
            pub = publish_flow(result, config=path, home=home, reports=reports, return_state=True)
            if pub.is_completed():
                out.published[feature] = pub.result()
                continue
            state = pub
        out.failures[feature] = str(state.message or state.name)
        get_run_logger().error("%s: %s", feature, out.failures[feature])
    if out.failures:
        raise TrustrampError(
            f"nightly-spark: {len(out.failures)} of {len(paths)} features broke: "
            + "; ".join(f"{f}: {m}" for f, m in out.failures.items())
        )
    if spark_error:
        raise TrustrampError(
            f"nightly-spark: the Spark step failed ({spark_error}); every feature was "
            "evaluated and published on DuckDB instead"
        )
    if out.ingest.failed:
        raise InputFileError(
            f"nightly-spark: {len(out.ingest.failed)} input files could not be read: "
            + "; ".join(f"{f.path}: {f.error}" for f in out.ingest.failed)
        )
    return out
