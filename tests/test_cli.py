"""The CLI end to end on a small demo lake: evaluate, --fail-on, thresholds recommend and whatif."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from trustramp.cli import main
from trustramp.config import parse_config


@pytest.fixture(scope="module")
def cli_lake(demo_lake: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = tmp_path_factory.mktemp("cli") / "rollout.yaml"
    cfg.write_text(yaml.safe_dump(demo_lake["config"].model_dump(mode="json")))
    return {**demo_lake, "cfg": cfg}


def run(*args: str) -> object:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


def test_evaluate_writes_the_run_and_fail_on_gates(cli_lake: dict, tmp_path: Path) -> None:
    as_of = cli_lake["manifest"].end.isoformat()
    common = [
        "--home",
        str(cli_lake["home"]),
        "--reports",
        str(tmp_path),
        "--config",
        str(cli_lake["cfg"]),
        "--as-of",
        as_of,
    ]
    r = run("evaluate", *common)
    assert r.exit_code == 0, r.output
    out = tmp_path / cli_lake["config"].feature / as_of
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["verdict"] in ("GO", "HOLD", "PAUSE", "ROLLBACK")
    assert f": {verdict['verdict']} (phase" in r.output
    assert {"metrics.parquet", "thresholds.yaml", "verdict.json"} <= {p.name for p in out.iterdir()}
    routing = yaml.safe_load((out / "thresholds.yaml").read_text())
    parse_config({"feature": "x", **routing})  # the patch merges into a valid config
    r = run("evaluate", *common, "--fail-on", verdict["verdict"].lower())
    assert r.exit_code == {"GO": 10, "HOLD": 11, "PAUSE": 12, "ROLLBACK": 13}[verdict["verdict"]]
    r = CliRunner().invoke(main, ["evaluate", *common, "--fail-on", "maybe"])
    assert r.exit_code == 2 and "unknown verdict" in r.output


def test_thresholds_commands(cli_lake: dict) -> None:
    common = [
        "--home",
        str(cli_lake["home"]),
        "--config",
        str(cli_lake["cfg"]),
        "--as-of",
        cli_lake["manifest"].end.isoformat(),
    ]
    r = run("thresholds", "recommend", *common)
    assert r.exit_code == 0 and "routing:" in r.output and "With probability at least" in r.output
    r = run("thresholds", "whatif", "--auto", "0.92", "--confirm", "0.8", *common)
    assert r.exit_code == 0, r.output
    assert "proposed" in r.output and "current" in r.output and "human workload per day" in r.output
    r = CliRunner().invoke(main, ["thresholds", "whatif", *common])
    assert r.exit_code == 2 and "at least one of" in r.output


def test_evaluate_without_data_says_what_to_do(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--home",
            str(tmp_path / "empty"),
            "--reports",
            str(tmp_path / "r"),
            "--feature",
            "nothing-here",
        ],
    )
    assert r.exit_code == 6 and "ingest some first" in r.output


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["ingest", "--help"],
        ["evaluate", "--help"],
        ["demo", "--help"],
        ["config", "--help"],
        ["thresholds", "recommend", "--help"],
        ["thresholds", "whatif", "--help"],
    ):
        r = run(*args)
        assert r.exit_code == 0 and "Usage:" in r.output


def test_report_command_writes_the_page_and_the_index(cli_lake: dict, tmp_path: Path) -> None:
    r = run(
        "report",
        "--home",
        str(cli_lake["home"]),
        "--reports",
        str(tmp_path),
        "--config",
        str(cli_lake["cfg"]),
        "--as-of",
        cli_lake["manifest"].end.isoformat(),
    )
    assert r.exit_code == 0, r.output
    page = Path(r.output.split("report: ")[1].split()[0])
    assert page.name == "readiness.html" and page.stat().st_size > 10_000
    assert (tmp_path / "index.html").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [("lots", "is not a size like 512MB"), ("1MB", "below 16MB"), ("150%", "is not a size")],
)
def test_memory_limit_refuses_what_duckdb_cannot_run_with(value: str, message: str) -> None:
    r = CliRunner().invoke(main, ["--memory-limit", value, "config", "show"])
    assert r.exit_code == 2
    assert message in r.output


def test_memory_limit_reaches_every_connection_of_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from trustramp.store.duck import connect, memory_bytes

    # (setenv first, so that the variable the CLI sets is removed after the test)
    monkeypatch.setenv("TRUSTRAMP_MEMORY_LIMIT", "1GB")
    monkeypatch.delenv("TRUSTRAMP_MEMORY_LIMIT")
    assert memory_bytes(_limit_of(connect())) == pytest.approx(10**9, rel=1e-3)
    r = CliRunner().invoke(main, ["--memory-limit", "300MB", "config", "show"])
    assert r.exit_code == 0, r.output
    assert memory_bytes(_limit_of(connect())) == pytest.approx(300 * 10**6, rel=1e-3)
    monkeypatch.setenv("TRUSTRAMP_MEMORY_LIMIT", "50%")
    r = CliRunner().invoke(main, ["config", "show"])  # the variable alone works too
    assert r.exit_code == 0, r.output
    assert memory_bytes(_limit_of(connect())) > 300 * 10**6


def _limit_of(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
