"""Prefect flow `evaluate`: metrics -> verdict -> thresholds for one feature and as-of date.

A HOLD, PAUSE or ROLLBACK verdict is a successful run that returns the verdict as data; a Failed
run means the pipeline broke. Deployed as `on-demand` (see prefect.yaml).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from publish_flow import publish_flow
from pydantic import Field

from trustramp import pipeline
from trustramp.config import RolloutConfig
from trustramp.errors import NoDataError
from trustramp.orchestrate import artifact_key, criteria_rows, effective_config, verdict_markdown
from trustramp.pipeline import EvaluationResult, NoDataResult


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_feature(
    config: RolloutConfig,
    home: Path,
    reports: Path,
    as_of: dt.date | None,
    wait_seconds: float,
    full_recompute: bool,
) -> EvaluationResult | NoDataResult:
    """The evaluation; no predictions in the window is data (NoDataResult), not a failure."""
    try:
        return pipeline.evaluate(
            home=home,
            reports=reports,
            as_of=as_of,
            config=config,
            wait_seconds=wait_seconds,
            full_recompute=full_recompute,
        )
    except NoDataError as e:
        return NoDataResult(config.feature, as_of or pipeline.yesterday(), str(e))


def record_no_data(result: NoDataResult) -> None:
    """Artifact and log line: nothing to evaluate, and which as-of would have data."""
    get_run_logger().warning("%s", result.message)
    create_markdown_artifact(
        f"# {result.feature}: no data\n\n{result.message}\n",
        key=artifact_key("verdict", result.feature),
        description=f"{result.feature} as of {result.as_of}: no predictions in the window",
    )


def record_verdict(result: EvaluationResult) -> None:
    """Artifacts: the verdict in markdown, the criteria as a table, a link to the run's outputs."""
    doc = result.verdict.to_dict()
    feature, as_of = result.feature, result.as_of
    get_run_logger().info("%s as of %s: %s", feature, as_of, doc["verdict"])
    create_markdown_artifact(
        verdict_markdown(doc),
        key=artifact_key("verdict", feature),
        description=f"{feature} as of {as_of}: {doc['verdict']}",
    )
    rows = criteria_rows(doc) or [{"name": "(no criteria in this phase)"}]
    create_table_artifact(
        rows,
        key=artifact_key("criteria", feature),
        description=f"{feature} phase criteria as of {as_of}",
    )
    create_link_artifact(
        Path(result.run_dir).resolve().as_uri(),
        link_text=f"{feature} {as_of}: verdict.json, metrics, thresholds",
        key=artifact_key("outputs", feature),
    )


@flow(name="evaluate")
def evaluate_flow(
    feature: Annotated[str | None, Field(description="Feature (default: the config's).")] = None,
    as_of: Annotated[
        dt.date | None, Field(description="Evaluated day (default: yesterday, UTC).")
    ] = None,
    window_days: Annotated[
        int | None, Field(ge=1, le=365, description="Evaluated window in days (default: config).")
    ] = None,
    config: Annotated[
        Path | None, Field(description="Rollout config file (default: playbook).")
    ] = None,
    home: Path = Path("data"),
    reports: Path = Path("reports"),
    publish: Annotated[
        bool, Field(description="Also link the report and notify new alerts.")
    ] = True,
    wait_seconds: Annotated[float, Field(ge=0)] = 600.0,
    full_recompute: Annotated[
        bool, Field(description="Recompute every day's aggregates, not only changed days.")
    ] = False,
) -> EvaluationResult | NoDataResult:
    """Evaluate one feature as of a date: verdict.json, metrics, thresholds, readiness.html.

    A window without predictions completes with a NoDataResult that says which as-of has data.
    """
    cfg = effective_config(config, feature=feature, window_days=window_days)
    result = evaluate_feature(cfg, home, reports, as_of, wait_seconds, full_recompute)
    if isinstance(result, NoDataResult):
        record_no_data(result)
        return result
    record_verdict(result)
    if publish:
        publish_flow(
            result,
            config=config,
            feature=cfg.feature,
            window_days=window_days,
            home=home,
            reports=reports,
        )
    return result
