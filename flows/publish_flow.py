"""Prefect flow `publish`: the readiness report, the index of runs, and alert notifications."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from trustramp import pipeline
from trustramp.config import RolloutConfig
from trustramp.notify import Channel, Notice, NotifyReport, notify_verdict
from trustramp.orchestrate import IO_RETRY, PublishOutcome, artifact_key, effective_config
from trustramp.pipeline import EvaluationResult

log = logging.getLogger(
    "trustramp.flows.publish"
)  # shown in the UI (PREFECT_LOGGING_EXTRA_LOGGERS)
NOT_WIRED = "report not wired yet: no readiness.html was rendered for this run"


@task(name="write report", cache_policy=NO_CACHE, **IO_RETRY)
def write_report(result: EvaluationResult, reports: Path) -> Path | None:
    """`trustramp.pipeline.publish` (the index; the report itself is rendered by evaluate), then
    the run's readiness.html if it exists: None, never a link to nothing, when it does not."""
    publish = getattr(pipeline, "publish", None)
    written: Any = publish(result, reports=reports) if publish is not None else None
    report = Path(written) if isinstance(written, str | Path) else None
    report = report or Path(result.run_dir) / "readiness.html"
    return report if report.is_file() else None


def block_channel(name: str) -> Channel | None:
    """A Prefect notification block (`type-slug/name`) as a channel; None if it cannot be loaded."""
    from prefect.blocks.core import Block

    try:
        block: Any = Block.load(name)
    except Exception as e:  # a missing block must not fail the run that found the alerts
        log.error("notification block %r cannot be loaded: %s", name, e)
        return None

    def send(notice: Notice) -> None:
        block.notify(notice.text, subject=notice.title)

    return Channel(f"prefect-block:{name}", send)


@task(name="notify alerts", cache_policy=NO_CACHE)
def send_notifications(
    result: EvaluationResult, config: RolloutConfig, home: Path, report: str | None
) -> NotifyReport:
    """Never fails: delivery problems are retried, logged and reported (see trustramp.notify)."""
    block = config.notifications.prefect_block
    extra = [c for c in [block_channel(block) if block else None] if c is not None]
    return notify_verdict(
        result.verdict.to_dict(), home=home, config=config, report=report, extra_channels=extra
    )


def record_report(result: EvaluationResult, report: Path | None) -> None:
    """Artifact: a link to the report, or a visible note that there is none yet."""
    key = artifact_key("report", result.feature)
    if report is None:
        get_run_logger().warning("%s (%s as of %s)", NOT_WIRED, result.feature, result.as_of)
        create_markdown_artifact(
            f"**{NOT_WIRED}.** The run's outputs are in `{result.run_dir}`.",
            key=key,
            description=NOT_WIRED,
        )
    else:
        create_link_artifact(
            report.resolve().as_uri(),
            key=key,
            link_text=f"{result.feature} readiness report, {result.as_of}",
        )


def record_notifications(result: EvaluationResult, sent: NotifyReport) -> None:
    lines = sent.summary_lines()
    for line in lines:
        get_run_logger().info(line)
    create_markdown_artifact(
        "\n".join(f"- {line}" for line in lines), key=artifact_key("notifications", result.feature)
    )


# `result` is the evaluate flow's own result object, passed through as is: pydantic would
# rebuild it field by field (and resolve every annotation of the verdict's dataclasses).
@flow(name="publish", validate_parameters=False)
def publish_flow(
    result: EvaluationResult,
    config: Path | None = None,
    feature: str | None = None,
    window_days: int | None = None,
    home: Path = Path("data"),
    reports: Path = Path("reports"),
) -> PublishOutcome:
    """The run's report and the index of runs (when rendered), then notifications of new alerts."""
    cfg = effective_config(config, feature=feature or result.feature, window_days=window_days)
    report = write_report(result, reports)
    record_report(result, report)
    sent = send_notifications(result, cfg, home, str(report or result.run_dir))
    record_notifications(result, sent)
    index = Path(reports) / "index.html"
    return PublishOutcome(
        report=report,
        index=index if index.is_file() else None,
        wired=report is not None,
        notifications=sent,
    )
