"""`trustramp evaluate --engine/--spark-remote/--spark-master` and TRUSTRAMP_ENGINE: flag
combinations are checked before any work, each refusal one line naming the flags (no Spark)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from trustramp.cli import main
from trustramp.errors import UsageError
from trustramp.store.engine import ENGINE_ENV, MASTER_ENV, REMOTE_ENV, EngineSpec


@pytest.fixture(autouse=True)
def _no_engine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (ENGINE_ENV, REMOTE_ENV, MASTER_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--spark-master", "local[1]"], "--spark-master needs --engine spark"),
        (["--engine", "duckdb", "--spark-remote", "sc://h:15002"], "--spark-remote needs --engine"),
        (
            ["--engine", "spark", "--spark-remote", "sc://h:15002", "--spark-master", "local[1]"],
            "--spark-remote and --spark-master exclude each other",
        ),
        (["--engine", "spark", "--spark-remote", "http://h:15002"], "not a Spark Connect URL"),
    ],
)
def test_flag_combinations_are_refused_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    r = CliRunner().invoke(main, ["evaluate", "--home", str(home), *args])
    assert r.exit_code == UsageError.exit_code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not (home / "lake").exists()  # refused before the home was touched


def test_an_unknown_engine_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENGINE_ENV, "oracle")
    r = CliRunner().invoke(main, ["evaluate", "--home", str(tmp_path)])
    assert r.exit_code == 2 and "oracle" in r.output and "Traceback" not in r.output
    with pytest.raises(UsageError, match="TRUSTRAMP_ENGINE"):
        EngineSpec.of()


def test_the_environment_chooses_engine_and_master(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EngineSpec.of() == EngineSpec("duckdb")
    monkeypatch.setenv(ENGINE_ENV, "Spark")
    monkeypatch.setenv(MASTER_ENV, "local[2]")
    assert EngineSpec.of() == EngineSpec("spark", None, "local[2]")
    # an option wins over the environment, and a duckdb run ignores Spark's variables
    assert EngineSpec.of("duckdb") == EngineSpec("duckdb")
    assert EngineSpec.of("spark", spark_master="local[1]").spark_master == "local[1]"
    monkeypatch.setenv(REMOTE_ENV, "sc://h:15002")
    assert EngineSpec.of("spark") == EngineSpec("spark", "sc://h:15002", None)


def test_duckdb_starts_no_engine() -> None:
    with EngineSpec.of("duckdb").started() as engine:
        assert engine is None


def test_spark_without_pyspark_is_one_line_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pyspark is not installed (marked missing here), `--engine spark` stops with one line
    naming the extra to install (exit 5), after the data was found and before any work; where
    no day needs computing it does not need Spark at all."""
    import sys

    from conftest import PRED_COLUMNS, pred_row, write_rows

    from trustramp.errors import StoreError
    from trustramp.ingest import ingest_paths

    path = write_rows(tmp_path / "in" / "p.csv", [pred_row(i) for i in range(30)], PRED_COLUMNS)
    assert not ingest_paths([path], tmp_path / "home", validate_with_gx=False).failed
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    folders = ["--home", str(tmp_path / "home"), "--reports", str(tmp_path / "r")]
    r = CliRunner().invoke(
        main,
        ["evaluate", *folders, "--feature", "feat", "--as-of", "2026-11-03", "--engine", "spark"],
    )
    assert r.exit_code == StoreError.exit_code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'trustramp[spark]'" in lines[0], r.output
    assert not (tmp_path / "r").exists()

    # Once DuckDB has computed every day, an evaluation with --engine spark has nothing for
    # Spark to do and starts no session: it runs (and would without pyspark).
    args = ["evaluate", *folders, "--feature", "feat", "--as-of", "2026-11-03"]
    assert CliRunner().invoke(main, args).exit_code == 0
    again = CliRunner().invoke(main, [*args, "--engine", "spark"])
    assert again.exit_code == 0, again.output


def test_spark_connect_without_its_client_names_what_to_install() -> None:
    """Where grpc (pyspark's Spark Connect client) is missing, --spark-remote says what to install
    instead of failing inside pyspark (no server is contacted)."""
    import importlib.util

    from trustramp.errors import StoreError

    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if importlib.util.find_spec("grpc") is not None:
        pytest.skip("grpc is installed: the Spark Connect client would try the server")
    from trustramp.store.spark import SparkEngine

    with pytest.raises(StoreError, match=r"pip install 'pyspark\[connect\]'"):
        SparkEngine.start(remote="sc://127.0.0.1:1")
