"""Prefect flow `ingest`: files or landing folders -> lake (`trustramp.pipeline.ingest`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from trustramp import pipeline
from trustramp.ingest import IngestReport
from trustramp.orchestrate import IO_RETRY, artifact_key, quiet_telemetry

Kind = Literal["predictions", "decisions", "feedback", "incidents"]


@task(name="ingest files", cache_policy=NO_CACHE, **IO_RETRY)
def ingest_files(
    paths: list[Path], home: Path, configs: list[Path], kind: str | None, wait_seconds: float
) -> IngestReport:
    quiet_telemetry()  # before Great Expectations is imported
    return pipeline.ingest(paths, home=home, kind=kind, configs=configs, wait_seconds=wait_seconds)


@flow(name="ingest")
def ingest_flow(
    paths: Annotated[list[Path], Field(description="Files or landing folders to ingest.")],
    home: Annotated[Path, Field(description="trustramp home: lake and catalog.")] = Path("data"),
    configs: Annotated[
        list[Path] | None, Field(description="Rollout configs whose segments are accepted.")
    ] = None,
    kind: Annotated[
        Kind | None, Field(description="Kind of every file (default: inferred).")
    ] = None,
    wait_seconds: Annotated[float, Field(ge=0)] = 600.0,
) -> IngestReport:
    """Validate and load new input files into the lake; files already ingested are skipped."""
    report = ingest_files(list(paths), home, list(configs or []), kind, wait_seconds)
    logger = get_run_logger()
    for line in report.summary_lines():
        logger.info(line)
    for f in report.failed:
        logger.error("input file failed: %s: %s", f.path, f.error)
    create_markdown_artifact(
        "# Ingest\n\n```\n" + "\n".join(report.summary_lines()) + "\n```\n",
        key=artifact_key("ingest"),
        description=f"{len(report.files)} files, {len(report.failed)} failed",
    )
    return report
