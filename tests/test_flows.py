"""The Prefect flows on small demo data, under `prefect_test_harness` (a temporary local server).

Slow: the harness costs ~10 s once per session, the first ingest a few more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from trustramp.cli import main
from trustramp.errors import InputFileError, NotWritableError
from trustramp.ingest import IngestReport
from trustramp.orchestrate import NightlyResult, PublishOutcome, effective_config, run_flow
from trustramp.pipeline import EvaluationResult, NoDataResult

pytestmark = pytest.mark.slow

FEATURE = "demo-triage"


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary Prefect server and database for the session (imported only when needed)."""
    from trustramp.orchestrate import quiet_telemetry

    quiet_telemetry()
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@dataclass
class Demo:
    root: Path
    landing: Path
    home: Path
    reports: Path
    config: Path
    end: dt.date
    bad_day: dt.date


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    from trustramp.demo import demo_config, generate

    root = tmp_path_factory.mktemp("flows")
    manifest = generate(root / "landing", n_predictions=5_000, days=14, seed=3)
    config = root / "rollout.yaml"
    config.write_text(yaml.safe_dump(demo_config(manifest)), "utf-8")
    return Demo(
        root,
        root / "landing",
        root / "home",
        root / "reports",
        config,
        manifest.end,
        manifest.end - dt.timedelta(days=5),
    )


def lake_files(home: Path) -> dict[str, int]:
    """Every file of the lake and the ingest log, with its modification time (ns)."""
    out = {}
    for sub in ("lake", "state/ingest_log", "state/quarantine"):
        for p in sorted((home / sub).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(home))] = p.stat().st_mtime_ns
    return out


@pytest.fixture(scope="module")
def nightly_run(prefect_harness: None, demo: Demo) -> tuple[Any, dict[str, int]]:
    """The first nightly run on the landing folder: its final state and the lake right after."""
    from trustramp.orchestrate import load_flow

    state = load_flow("nightly")(
        landing=demo.landing,
        configs=[demo.config],
        home=demo.home,
        reports=demo.reports,
        as_of=demo.end,
        return_state=True,
    )
    return state, lake_files(demo.home)


# -- nightly -----------------------------------------------------------------------------------------


def test_nightly_ingests_evaluates_and_publishes(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo
) -> None:
    state, lake = nightly_run
    assert state.is_completed(), state.message
    out = state.result()
    assert isinstance(out, NightlyResult)
    assert out.ingest.files and {f.status for f in out.ingest.files} == {"ingested"}
    assert out.ingest.total("rows_new") > 5_000 and any(k.startswith("lake/") for k in lake)
    assert set(out.evaluations) == {FEATURE} and not out.failures
    result = out.evaluations[FEATURE]
    assert isinstance(result, EvaluationResult) and result.as_of == demo.end
    # the verdict comes back as data, and is what the run wrote
    written = json.loads((result.run_dir / "verdict.json").read_text())
    assert written["verdict"] == result.verdict.to_dict()["verdict"]
    assert written["as_of"] == demo.end.isoformat()
    assert {p.name for p in result.run_dir.iterdir()} >= {
        "verdict.json",
        "metrics.parquet",
        "thresholds.yaml",
    }
    published = out.published[FEATURE]
    assert isinstance(published, PublishOutcome)
    assert published.wired and published.report == result.run_dir / "readiness.html"
    assert published.report.is_file() and published.index == demo.reports / "index.html"
    assert published.index.is_file()


def test_second_nightly_reads_nothing_new_and_rewrites_nothing(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo
) -> None:
    _, lake_before = nightly_run
    out = run_flow(
        "nightly",
        landing=demo.landing,
        configs=[demo.config],
        home=demo.home,
        reports=demo.reports,
        as_of=demo.end,
    )
    assert {f.status for f in out.ingest.files} == {"skipped"}
    assert len(out.ingest.files) == len(nightly_run[0].result().ingest.files)
    assert out.ingest.total("rows_read") == 0 and out.ingest.total("rows_new") == 0
    assert lake_files(demo.home) == lake_before  # same files, same mtimes


def test_nightly_with_an_unreadable_file_evaluates_then_fails(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "predictions-bad.csv").write_text("prediction_id,item_id\np1,i1\n", "utf-8")
    reports = tmp_path / "reports"
    from trustramp.orchestrate import load_flow

    state = load_flow("nightly")(
        landing=landing,
        configs=[demo.config],
        home=demo.home,
        reports=reports,
        as_of=demo.end,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(InputFileError, match=r"predictions-bad\.csv"):
        state.result()
    # the good data was still evaluated and its outputs written
    assert (reports / FEATURE / demo.end.isoformat() / "verdict.json").is_file()


# -- on demand ---------------------------------------------------------------------------------------


@dataclass
class OnDemand:
    first: Any  # the final state of the first run
    second: Any  # the same request again
    posts_after_first: list[dict[str, Any]]
    posts_after_second: list[dict[str, Any]]
    reports: Path


@pytest.fixture(scope="module")
def on_demand(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo, tmp_path_factory: pytest.TempPathFactory
) -> OnDemand:
    """The on-demand flow run twice on the demo's bad day, with a webhook configured."""
    from test_notify import Hook

    from trustramp.orchestrate import load_flow

    tmp = tmp_path_factory.mktemp("on-demand")
    hook = Hook()
    try:
        config = tmp / "rollout.yaml"
        data = yaml.safe_load(demo.config.read_text())
        # Alerts are per model version now: at this size (~180 items a day per version) the
        # bad day's alerts need a smaller minimum than the playbook's 100 observations.
        alerts = {**data.get("alerts", {}), "min_n": 20}
        config.write_text(
            yaml.safe_dump({**data, "alerts": alerts, "notifications": {"webhook_url": hook.url}})
        )
        params = dict(
            config=config,
            as_of=demo.bad_day,
            window_days=7,
            home=demo.home,
            reports=tmp / "reports",
            return_state=True,
        )
        evaluate = load_flow("evaluate")
        first = evaluate(**params)
        posts = list(hook.requests)
        second = evaluate(**params)
        return OnDemand(first, second, posts, list(hook.requests), tmp / "reports")
    finally:
        hook.close()


def test_on_demand_returns_a_non_go_verdict_as_a_completed_run(
    on_demand: OnDemand, demo: Demo
) -> None:
    assert on_demand.first.is_completed(), on_demand.first.message
    result = on_demand.first.result()
    assert isinstance(result, EvaluationResult)
    verdict = result.verdict.to_dict()
    assert verdict["verdict"] in {"HOLD", "PAUSE", "ROLLBACK"}  # not GO, and still a success
    assert result.run_dir == on_demand.reports / FEATURE / demo.bad_day.isoformat()
    written = json.loads((result.run_dir / "verdict.json").read_text())
    assert written["verdict"] == verdict["verdict"]
    # the window parameter reached the evaluation (it is part of the effective config's hash)
    config = on_demand.reports.parent / "rollout.yaml"
    assert verdict["config_hash"] == effective_config(config, window_days=7).hash()
    assert verdict["config_hash"] != effective_config(config).hash()


def test_on_demand_creates_artifacts(on_demand: OnDemand) -> None:
    result = on_demand.first.result()
    verdict = result.verdict.to_dict()
    by_key = {a.key: a for a in _artifacts_of(on_demand.first.state_details.flow_run_id)}
    assert {
        "verdict-demo-triage",
        "criteria-demo-triage",
        "outputs-demo-triage",
        "report-demo-triage",
        "notifications-demo-triage",
    } <= set(by_key)
    summary = by_key["verdict-demo-triage"]
    assert summary.type == "markdown" and f"**{verdict['verdict']}**" in summary.data
    firing = [a for a in verdict["alerts"] if a["level"]]
    assert f"## Alerts ({len(firing)} firing)" in summary.data
    assert by_key["criteria-demo-triage"].type == "table"
    table = json.loads(by_key["criteria-demo-triage"].data)
    assert [row["name"] for row in table] == [c["name"] for c in verdict["criteria"]]
    assert [row["outcome"] for row in table] == [c["outcome"] for c in verdict["criteria"]]
    # a link artifact is stored as markdown: [text](link)
    assert f"]({result.run_dir.resolve().as_uri()})" in by_key["outputs-demo-triage"].data
    report = by_key["report-demo-triage"]
    assert f"]({(result.run_dir / 'readiness.html').resolve().as_uri()})" in report.data


def test_on_demand_alerts_reach_the_webhook_once(on_demand: OnDemand) -> None:
    firing = [a for a in on_demand.first.result().verdict.to_dict()["alerts"] if a["level"]]
    assert firing, "the demo's bad day should fire alerts"
    texts = [r["json"]["text"] for r in on_demand.posts_after_first]
    assert len(texts) == len(firing)
    for a, text in zip(firing, texts, strict=True):
        assert text.startswith(f"[{a['level'].upper()}] {FEATURE}: {a['message']}")
    # the second run finds the same alerts, still open: nothing is sent again
    assert on_demand.second.is_completed()
    assert (
        on_demand.second.result().verdict.to_dict()["alerts"]
        == (on_demand.first.result().verdict.to_dict()["alerts"])
    )
    assert on_demand.posts_after_second == on_demand.posts_after_first


def test_publish_without_a_rendered_report_says_so(on_demand: OnDemand, tmp_path: Path) -> None:
    from trustramp.orchestrate import load_flow

    bare = tmp_path / "run"
    bare.mkdir()
    result = dataclasses.replace(on_demand.first.result(), run_dir=bare)
    state = load_flow("publish")(
        result, home=tmp_path / "home", reports=tmp_path, return_state=True
    )
    out = state.result()
    assert not out.wired and out.report is None and not (bare / "readiness.html").exists()
    (artifact,) = [
        a for a in _artifacts_of(state.state_details.flow_run_id) if a.key == "report-demo-triage"
    ]
    assert "report not wired yet" in artifact.data


def test_run_flow_ingest_returns_the_ingest_report(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo
) -> None:
    report = run_flow("ingest", paths=[demo.landing], home=demo.home, configs=[demo.config])
    assert isinstance(report, IngestReport) and not report.failed
    assert {f.status for f in report.files} == {"skipped"}


def test_a_broken_pipeline_is_a_failed_run(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo, tmp_path: Path
) -> None:
    """Reports that cannot be written (a file where the folder should be): the run fails, and
    run_flow raises the error the CLI turns into exit 7."""
    from trustramp.orchestrate import load_flow

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    params = dict(config=demo.config, as_of=demo.end, home=demo.home, reports=blocker / "r")
    state = load_flow("evaluate")(**params, return_state=True)
    assert state.is_failed()
    with pytest.raises(NotWritableError, match=r"cannot write the run's outputs at .*a-file"):
        run_flow("evaluate", **params)


def test_no_data_is_a_completed_run_that_says_which_as_of_has_data(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo, tmp_path: Path
) -> None:
    """The README's on-demand example without as_of (yesterday, long after the demo data):
    not a crash, not a Failed run, but a result that names the data's last day."""
    from trustramp.orchestrate import load_flow

    later = demo.end + dt.timedelta(days=60)
    state = load_flow("evaluate")(
        config=demo.config, as_of=later, home=demo.home, reports=tmp_path, return_state=True
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, NoDataResult) and result.as_of == later
    assert f"pass --as-of {demo.end}" in result.message
    unknown = run_flow(
        "evaluate",
        feature="no-such-feature",
        config=demo.config,
        as_of=demo.end,
        home=demo.home,
        reports=tmp_path,
    )
    assert isinstance(unknown, NoDataResult)
    assert "no predictions for feature 'no-such-feature'" in unknown.message
    assert repr(FEATURE) in unknown.message  # names the feature the lake does have
    assert not any(tmp_path.iterdir())  # nothing was written
    # through the CLI: the flow's data becomes exit 6 and the same one line
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--prefect",
            "--config",
            str(demo.config),
            "--as-of",
            later.isoformat(),
            "--home",
            str(demo.home),
            "--reports",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 6 and r.output.strip() == f"Error: {result.message}"


def test_nightly_without_data_in_the_window_completes_and_says_so(
    nightly_run: tuple[Any, dict[str, int]], demo: Demo, tmp_path: Path
) -> None:
    from trustramp.orchestrate import load_flow

    state = load_flow("nightly")(
        landing=demo.landing,
        configs=[demo.config],
        home=demo.home,
        reports=tmp_path,
        as_of=demo.end + dt.timedelta(days=60),
        return_state=True,
    )
    assert state.is_completed(), state.message
    out = state.result()
    assert not out.evaluations and not out.failures
    assert f"pass --as-of {demo.end}" in out.no_data[FEATURE]


def test_a_prefect_notification_block_is_a_channel(
    prefect_harness: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from test_notify import A, Hook, verdict

    from trustramp.notify import notify_alerts
    from trustramp.orchestrate import load_flow

    load_flow("publish")
    from publish_flow import block_channel

    hook = Hook()
    try:
        CustomWebhookNotificationBlock(
            name="oncall", url=hook.url, json_data={"subject": "{{subject}}", "text": "{{body}}"}
        ).save("trustramp-test-oncall", overwrite=True)
        channel = block_channel("custom-webhook/trustramp-test-oncall")
        assert channel is not None
        report = notify_alerts(verdict(alerts=[A]), home=tmp_path, channels=[channel], backoff=0)
        assert [ch for ch, _ in report.sent] == [
            "prefect-block:custom-webhook/trustramp-test-oncall"
        ]
        (request,) = hook.requests
        assert request["json"]["subject"] == report.sent[0][1].title
        assert request["json"]["text"] == report.sent[0][1].text
    finally:
        hook.close()
    logger = logging.getLogger("trustramp.flows.publish")  # Prefect may stop its propagation
    logger.addHandler(caplog.handler)
    try:
        assert block_channel("custom-webhook/no-such-block") is None
    finally:
        logger.removeHandler(caplog.handler)
    assert "'custom-webhook/no-such-block' cannot be loaded" in caplog.text


def _artifacts_of(flow_run_id: Any) -> list[Any]:
    """Artifacts of a flow run and of its subflow runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    with get_client(sync_client=True) as client:
        own = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        children = client.read_artifacts(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )
    return [*own, *children]
