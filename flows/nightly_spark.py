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

from ingest_flow import ingest_flow
from nightly import (
    AsOf,
    Configs,
    HomeFolder,
    Landing,
    Reports,
    WaitSeconds,
    evaluate_and_publish_each,
    feature_configs,
    raise_if_features_broke,
    raise_if_files_unread,
)
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from trustramp import pipeline
from trustramp.errors import TrustrampError
from trustramp.orchestrate import NightlyResult
from trustramp.store.engine import EngineSpec


@task(name="refresh-days-on-spark", cache_policy=NO_CACHE)
def refresh_days_on_spark(
    configs: list[Path | None],
    home: Path,
    as_of: dt.date | None,
    engine: EngineSpec,
    wait_seconds: float,
) -> dict[str, list[dt.date]]:
    """Every feature's stale days, recomputed (or updated with late decisions) in one Spark
    application: feature -> days (the pipeline logs a line per feature, which the trustramp
    logger brings to the run's logs)."""
    done = pipeline.refresh_day_statistics(
        configs, home=home, as_of=as_of, engine=engine, wait_seconds=wait_seconds
    )
    return {feature: sorted([*r.recomputed, *r.updated]) for feature, r in done.items()}


@flow(name="nightly-spark")
def nightly_spark(
    landing: Landing = Path("data/landing"),
    configs: Configs = None,
    home: HomeFolder = Path("data"),
    reports: Reports = Path("reports"),
    as_of: AsOf = None,
    wait_seconds: WaitSeconds = 600.0,
    spark_remote: Annotated[
        str | None, Field(description="Spark Connect URL sc://HOST:PORT (sees the same home).")
    ] = None,
    spark_master: Annotated[
        str | None, Field(description="Spark master, e.g. local[4] (default local[*]).")
    ] = None,
) -> NightlyResult:
    """Ingest; recompute every feature's dirty days on Spark; evaluate, report, notify each."""
    engine = EngineSpec.of("spark", spark_remote=spark_remote, spark_master=spark_master)
    paths, features = feature_configs(configs)
    out = NightlyResult(
        ingest_flow([landing], home=home, configs=list(configs or []), wait_seconds=wait_seconds)
    )
    spark = refresh_days_on_spark(paths, home, as_of, engine, wait_seconds, return_state=True)
    spark_error = None if spark.is_completed() else str(spark.message or spark.name)
    if spark_error:  # the evaluations still run: they compute their stale days on DuckDB
        get_run_logger().error("Spark step failed, evaluating on DuckDB: %s", spark_error)
    evaluate_and_publish_each(
        out, paths, features, as_of=as_of, home=home, reports=reports, wait_seconds=wait_seconds
    )
    raise_if_features_broke("nightly-spark", out, len(paths))
    if spark_error:
        raise TrustrampError(
            f"nightly-spark: the Spark step failed ({spark_error}); every feature was "
            "evaluated and published on DuckDB instead"
        )
    raise_if_files_unread("nightly-spark", out)
    return out
