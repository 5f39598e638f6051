"""The orchestration helpers and prefect.yaml, without starting Prefect (fast)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from trustramp.config import load_config
from trustramp.errors import (
    ConfigError,
    InputFileError,
    LockTimeout,
    NoDataError,
    StoreError,
    TrustrampError,
)
from trustramp.orchestrate import (
    FLOWS,
    TELEMETRY_OFF,
    artifact_key,
    criteria_rows,
    effective_config,
    find_flows_dir,
    is_transient,
    load_flow,
    prefect_requested,
    quiet_telemetry,
    verdict_markdown,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("flag", "api_url", "expected"),
    [
        (False, None, False),
        (True, None, True),
        (False, "http://127.0.0.1:4200/api", True),
        (True, "http://127.0.0.1:4200/api", True),
        (False, "  ", False),  # blank is not configured
    ],
)
def test_prefect_requested(
    monkeypatch: pytest.MonkeyPatch, flag: bool, api_url: str | None, expected: bool
) -> None:
    if api_url is None:
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
    else:
        monkeypatch.setenv("PREFECT_API_URL", api_url)
    assert prefect_requested(flag) is expected


def test_quiet_telemetry_sets_defaults_but_keeps_user_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in TELEMETRY_OFF:  # setenv first, so that undo restores the session's own values
        monkeypatch.setenv(key, "placeholder")
        monkeypatch.delenv(key)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    quiet_telemetry()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"
    assert float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 60
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"


def test_core_modules_do_not_import_prefect() -> None:
    code = (
        "import sys, trustramp.orchestrate, trustramp.notify, trustramp.pipeline;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'great_expectations'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError("disk full"), True),
        (TimeoutError(), True),  # an OSError
        (LockTimeout("another writer"), True),
        (ConfigError("bad key"), False),
        (NoDataError("no predictions"), False),
        (InputFileError("bad file"), False),
        (StoreError("corrupt"), False),
        (ValueError("bug"), False),
        (None, False),
    ],
)
def test_only_io_failures_are_transient(exc: BaseException | None, expected: bool) -> None:
    assert is_transient(exc) is expected


@pytest.mark.parametrize(
    ("feature", "window_days", "expect_feature", "expect_window"),
    [
        (None, None, "demo-triage", 14),
        ("other", None, "other", 14),
        (None, 7, "demo-triage", 7),
        ("other", 30, "other", 30),
    ],
)
def test_effective_config_overrides(
    feature: str | None, window_days: int | None, expect_feature: str, expect_window: int
) -> None:
    base = load_config(None)
    cfg = effective_config(None, feature=feature, window_days=window_days)
    assert (cfg.feature, cfg.statistics.window_days) == (expect_feature, expect_window)
    # everything else is the file's, and a changed config has a changed hash
    assert cfg.alerts == base.alerts and cfg.phases == base.phases
    assert (cfg.hash() == base.hash()) is (feature is None and window_days is None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_days": 0}, r"statistics\.window_days: .*greater than or equal to 1 \(got 0\)"),
        ({"window_days": 1000}, r"statistics\.window_days: .*less than or equal to 365"),
        ({"feature": "x" * 201}, r"feature: .*at most 200"),
    ],
)
def test_effective_config_errors_name_the_key(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        effective_config(None, **kwargs)


def _doc() -> dict[str, Any]:
    return {
        "feature": "feat",
        "as_of": "2026-11-20",
        "phase": "controlled",
        "step": 25,
        "verdict": "PAUSE",
        "next": {"phase": "controlled", "step": 50},
        "reasons": ["Accuracy in <b>smb</b> | fell."],
        "criteria": [
            {
                "name": "acc",
                "metric": "accuracy",
                "segment": "each",
                "comparator": ">=",
                "threshold": 0.9,
                "value": 0.88,
                "ci_low": 0.86,
                "ci_high": 0.9,
                "n": 800,
                "outcome": "fail",
                "statistic": 0.1,
                "detail": "...",
            }
        ],
        "alerts": [
            {
                "metric": "accuracy",
                "segment": "smb",
                "level": "critical",
                "value": 0.88,
                "threshold": 0.9,
                "action": "pause rollout",
            },
            {
                "metric": "error_rate",
                "segment": "all",
                "level": None,
                "value": None,
                "threshold": 0.02,
                "action": "roll back",
            },
        ],
        "rollback_triggers": [{"trigger": "security incident", "fired": False, "evidence": "-"}],
        "data": {
            "window_start": "2026-11-07",
            "window_end": "2026-11-20",
            "predictions": 1234,
            "labeled": 1000,
            "label_coverage": 0.81,
            "quarantined": 3,
        },
        "config_hash": "abc",
        "trustramp_version": "0.1.0",
    }


def test_verdict_markdown_summarizes_and_escapes() -> None:
    md = verdict_markdown(_doc(), report="/r/x.html")
    assert md.startswith("# feat: **PAUSE**")
    assert "Phase **controlled 25%** as of 2026-11-20; next: controlled 50%." in md
    assert "Accuracy in &lt;b&gt;smb&lt;/b&gt; \\| fell." in md  # no HTML, no table break
    assert "## Alerts (1 firing)" in md
    assert "| critical | accuracy | smb | 0.88 | 0.9 | pause rollout |" in md
    assert "error_rate" not in md  # not firing
    assert "1,234 predictions, 1,000 labeled (coverage 81.0%), 3 rows quarantined" in md
    assert "Rollback triggers" not in md and "Report: /r/x.html" in md


def test_criteria_rows_keep_the_fixed_names() -> None:
    (row,) = criteria_rows(_doc())
    assert list(row) == [
        "name",
        "metric",
        "segment",
        "comparator",
        "threshold",
        "value",
        "ci_low",
        "ci_high",
        "n",
        "outcome",
    ]
    assert row["outcome"] == "fail"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("verdict", "demo-triage"), "verdict-demo-triage"),
        (("report", "My_Feature.v2"), "report-my-feature-v2"),
        (("x", "--a  b--"), "x-a-b"),
        (("ünïcode",), "n-code"),
        (("",), "trustramp"),
    ],
)
def test_artifact_key_is_valid_for_prefect(parts: tuple[str, ...], expected: str) -> None:
    key = artifact_key(*parts)
    assert key == expected
    assert all(c.islower() or c.isdigit() or c == "-" for c in key)


def test_flows_dir_is_found_and_can_be_pointed_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRUSTRAMP_FLOWS_DIR", raising=False)
    assert find_flows_dir() == ROOT / "flows"
    other = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", other)
    monkeypatch.setenv("TRUSTRAMP_FLOWS_DIR", str(other))
    assert find_flows_dir() == other.resolve()


def test_unknown_flow_is_a_clear_error() -> None:
    with pytest.raises(TrustrampError, match="unknown flow 'nope'; expected one of ingest"):
        load_flow("nope")


# -- flows/ and prefect.yaml, read as text (no Prefect import) ---------------------------------------


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text("utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _params(fn: ast.FunctionDef) -> list[str]:
    return [a.arg for a in [*fn.args.args, *fn.args.kwonlyargs]]


def test_every_flow_file_defines_its_flow() -> None:
    for file, function in FLOWS.values():
        fns = _functions(ROOT / "flows" / file)
        assert function in fns, f"{file} lacks {function}"
        decorators = [ast.unparse(d) for d in fns[function].decorator_list]
        assert any(d.startswith("flow") for d in decorators), decorators


def test_only_flows_import_prefect() -> None:
    for path in (ROOT / "src" / "trustramp").rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not any(m.split(".")[0] == "prefect" for m in names), path


@pytest.fixture(scope="module")
def prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text("utf-8"))


def test_prefect_yaml_deployments(prefect_yaml: dict[str, Any]) -> None:
    deps = {d["name"]: d for d in prefect_yaml["deployments"]}
    assert set(deps) == {"nightly", "nightly-spark", "on-demand"}
    nightly, on_demand = deps["nightly"], deps["on-demand"]
    (schedule,) = nightly["schedules"]
    assert len(schedule["cron"].split()) == 5 and schedule["timezone"] and schedule["active"]
    assert not on_demand.get("schedules")
    assert set(nightly["parameters"]) >= {"landing", "configs", "home", "reports"}
    assert set(on_demand["parameters"]) >= {"feature", "as_of", "window_days", "config"}
    for d in deps.values():
        assert d["work_pool"]["name"] == "trustramp"
        assert d["work_pool"]["job_variables"]["env"]["DO_NOT_TRACK"] == "1"
        file, function = d["entrypoint"].split(":")
        fn = _functions(ROOT / file)[function]
        assert set(d["parameters"]) <= set(_params(fn)), d["name"]


def test_prefect_yaml_names_no_hosts() -> None:
    text = (ROOT / "prefect.yaml").read_text("utf-8")
    assert "://" not in text
    assert "image" not in text.lower() and "registry" not in text.lower()
