"""The CLI end to end on a small demo lake: evaluate, --fail-on, thresholds recommend and whatif."""

from __future__ import annotations

import datetime as dt
import json
import re
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


def lake_args(cli_lake: dict, reports: Path | None = None) -> list[str]:
    """--home, --reports (when given), --config and --as-of (the lake's last day) for cli_lake."""
    return [
        "--home",
        str(cli_lake["home"]),
        *(["--reports", str(reports)] if reports is not None else []),
        "--config",
        str(cli_lake["cfg"]),
        "--as-of",
        cli_lake["manifest"].end.isoformat(),
    ]


def test_evaluate_writes_the_run_and_fail_on_gates(cli_lake: dict, tmp_path: Path) -> None:
    as_of = cli_lake["manifest"].end.isoformat()
    common = lake_args(cli_lake, tmp_path)
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
    common = lake_args(cli_lake)
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
    r = run("report", *lake_args(cli_lake, tmp_path))
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


# -- one clear line for what the user can fix ---------------------------------------------------------


def _one_error_line(r: object) -> str:
    """The output is one `Error: ...` line (no traceback, no usage block)."""
    lines = r.output.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output  # type: ignore[attr-defined]
    return lines[0]


@pytest.mark.parametrize("command", [["evaluate"], ["report"], ["thresholds", "recommend"]])
def test_a_window_without_data_is_exit_6_with_the_as_of_to_pass(
    cli_lake: dict, tmp_path: Path, command: list[str]
) -> None:
    end = cli_lake["manifest"].end
    extra = ["--reports", str(tmp_path)] if command[0] != "thresholds" else []
    for as_of in (end + dt.timedelta(days=40), cli_lake["manifest"].start - dt.timedelta(days=30)):
        args = ["--home", str(cli_lake["home"]), "--config", str(cli_lake["cfg"])]
        r = CliRunner().invoke(main, [*command, *args, *extra, "--as-of", as_of.isoformat()])
        assert r.exit_code == 6
        line = _one_error_line(r)
        assert f"no predictions for {cli_lake['config'].feature} in the window" in line
        assert line.endswith(
            f"the data covers {cli_lake['manifest'].start}..{end}: pass --as-of {end}"
        )
    assert not any(tmp_path.iterdir())


def test_an_as_of_whose_window_overflows_is_a_usage_error(cli_lake: dict, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--home",
            str(cli_lake["home"]),
            "--reports",
            str(tmp_path),
            "--config",
            str(cli_lake["cfg"]),
            "--as-of",
            "0001-01-01",
        ],
    )
    assert r.exit_code == 2 and "as-of 0001-01-01 is too early" in _one_error_line(r)


def test_without_feature_a_lake_without_the_default_feature_names_its_features(
    cli_lake: dict, tmp_path: Path
) -> None:
    """A --feature the lake lacks: the line names the one it has (no --feature: test_pipeline)."""
    feature = cli_lake["config"].feature
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--home",
            str(cli_lake["home"]),
            "--reports",
            str(tmp_path),
            "--feature",
            "not-in-the-lake",
            "--as-of",
            cli_lake["manifest"].end.isoformat(),
        ],
    )
    assert r.exit_code == 6
    assert f"the lake has {feature!r}: pass --feature NAME" in _one_error_line(r)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--auto", "0.7", "--confirm", "0.9"], "--confirm 0.9 is above --auto 0.7"),
        (["--review", "0.9"], "--review 0.9 is above the config's confirm"),
    ],
)
def test_whatif_bands_out_of_order_name_the_flags(
    cli_lake: dict, flags: list[str], message: str
) -> None:
    r = CliRunner().invoke(
        main,
        [
            "thresholds",
            "whatif",
            *flags,
            "--home",
            str(cli_lake["home"]),
            "--config",
            str(cli_lake["cfg"]),
            "--as-of",
            cli_lake["manifest"].end.isoformat(),
        ],
    )
    assert r.exit_code == 2 and message in _one_error_line(r)


def test_ingest_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["ingest", "--home", str(tmp_path / "h"), str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in r.output


@pytest.mark.slow  # the ingest imports and runs Great Expectations (~5 s in a fresh process)
def test_verbose_shows_our_stages_not_great_expectations(cli_lake: dict, tmp_path: Path) -> None:
    """-v: trustramp's stage lines with rows and seconds; Great Expectations (which the ingest
    imports and runs) stays quiet."""
    from conftest import pred_row, write_rows

    rows = [pred_row(i, segment="smb") for i in range(30)]
    write_rows(tmp_path / "in" / "p.csv", rows)
    r = CliRunner().invoke(
        main, ["-v", "ingest", "--home", str(tmp_path / "h"), str(tmp_path / "in")]
    )
    assert r.exit_code == 0, r.output
    assert re.search(r"^ingest: files 1, failed 0, rows read 30, new 30, .*\d s$", r.output, re.M)
    assert "great_expectations" not in r.output.lower() and "Calculating Metrics" not in r.output
    r = CliRunner().invoke(main, ["-v", "evaluate", *lake_args(cli_lake, tmp_path / "r")])
    assert r.exit_code == 0, r.output
    for stage in ("aggregates: days", "evidence: version", "decide: verdict", "publish: outputs"):
        assert re.search(rf"^{stage}.*\d s$", r.output, re.M), (stage, r.output)
    assert f"evaluate {cli_lake['config'].feature} as of" in r.output
    quiet = CliRunner().invoke(main, ["evaluate", *lake_args(cli_lake, tmp_path / "r")])
    assert quiet.exit_code == 0 and "aggregates:" not in quiet.output  # not a terminal, no -v


def test_help_lists_the_exit_codes() -> None:
    r = run("--help")
    for code in ("0 ", "2 ", "3 ", "4 ", "5 ", "6 ", "10-13"):
        assert code in r.output


@pytest.mark.parametrize("where", ["--home", "--reports"])
def test_a_folder_that_cannot_be_written_is_exit_7_in_one_line(
    cli_lake: dict, tmp_path: Path, where: str
) -> None:
    """A file where the home or reports folder should be (tests run as root: chmod stops nothing)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    paths = {
        "--home": str(cli_lake["home"]),
        "--reports": str(tmp_path / "r"),
        where: str(blocker / "x"),
    }
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            *(a for kv in paths.items() for a in kv),
            "--config",
            str(cli_lake["cfg"]),
            "--as-of",
            cli_lake["manifest"].end.isoformat(),
        ],
    )
    assert r.exit_code == 7
    assert "Not a directory (a file stands where a folder is expected" in _one_error_line(r)
