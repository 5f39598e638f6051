"""Atomicity and one-writer: killed ingests, then reruns; concurrent ingests; readers never blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PRED_COLUMNS, pred_row, write_rows

from trustramp.errors import LockTimeout
from trustramp.ingest import ingest_paths
from trustramp.store.lake import Home, reader
from trustramp.store.lock import writer_lock


def snapshot(home: Path, *, index: bool = True) -> dict[str, list[tuple]]:
    """Everything visible through the catalog, minus wall-clock columns (and minus the columns
    ingest derives from what the lake held, with `index=False`)."""
    con = reader(Home.at(home))
    pred = "" if index else ", _decided_before"
    dec = "" if index else ", _pred_first, _pred_last"
    try:
        return {
            "predictions": con.sql(
                f"SELECT * EXCLUDE (_source{pred}) FROM predictions ORDER BY ALL"
            ).fetchall(),
            "decisions": con.sql(
                f"SELECT * EXCLUDE (_source{dec}) FROM decisions ORDER BY ALL"
            ).fetchall(),
            "quarantine": con.sql(
                "SELECT file, row_number, line, reason, detail FROM quarantine ORDER BY ALL"
            ).fetchall(),
            "log": con.sql(
                "SELECT source, rows_read, rows_new, rows_duplicate, rows_quarantined "
                "FROM ingest_log ORDER BY ALL"
            ).fetchall(),
        }
    finally:
        con.close()


def run_ingest(paths: list[Path], home: Path, **kwargs: object) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        from trustramp.ingest import ingest_paths
        r = ingest_paths({[str(p) for p in paths]!r}, {str(home)!r}, validate_with_gx=False,
                         **{kwargs!r})
        print([f.status for f in r.files])
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def inputs(tmp_path: Path) -> list[Path]:
    a = write_rows(
        tmp_path / "in" / "a.csv",
        [pred_row(i, confidence=(1.5 if i % 9 == 0 else 0.8)) for i in range(60)],
        PRED_COLUMNS,
    )
    b = write_rows(tmp_path / "in" / "b.jsonl", [pred_row(i) for i in range(60, 100)], PRED_COLUMNS)
    c = write_rows(
        tmp_path / "in" / "d.csv",
        [
            {
                "decision_id": f"d{i}",
                "item_id": f"i{i}",
                "decided_at": "2026-11-03T00:00:00Z",
                "human_label": "a",
            }
            for i in range(40)
        ],
    )
    return [a, b, c]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["stage", "parts"])
def test_killed_ingest_then_rerun_equals_one_clean_run(tmp_path: Path, point: str) -> None:
    files = inputs(tmp_path)
    clean = tmp_path / "clean"
    ingest_paths(files, clean, validate_with_gx=False)
    expected = snapshot(clean)

    crashed = tmp_path / "crashed"
    proc = run_ingest(files, crashed, crash_after=point)
    assert proc.returncode == -9, proc.stderr  # SIGKILL, mid-file
    # Nothing of the killed file is visible, whatever it left on disk.
    partial = snapshot(crashed)
    assert all(len(v) < len(expected[k]) or not expected[k] for k, v in partial.items())
    assert partial["predictions"] == [] and partial["log"] == []

    proc = run_ingest(files, crashed)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(crashed) == expected
    assert not list((crashed / "tmp").glob("*/checked"))  # staging cleaned up


@pytest.mark.slow
def test_two_concurrent_ingests_serialize(tmp_path: Path) -> None:
    files = inputs(tmp_path)
    home = tmp_path / "home"
    code = (
        "from trustramp.ingest import ingest_paths; import sys; "
        "r = ingest_paths(sys.argv[2:], sys.argv[1], validate_with_gx=False); "
        "print(sum(f.rows_new for f in r.files))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(home), *map(str, fs)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for fs in (files[:2], files[1:])
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    clean = tmp_path / "clean"
    ingest_paths(files, clean, validate_with_gx=False)
    # Which run landed first decides the index columns (a decision landing before its item's
    # prediction stores no prediction days, and the prediction is marked instead;
    # tests/test_decision_days.py shows both orders give the same statistics): the rows compare
    # without them.
    got, want = snapshot(home, index=False), snapshot(clean, index=False)
    assert got["predictions"] == want["predictions"]
    # Decisions may have landed before their predictions (then filed under _unmatched): same rows.
    assert [d[:-1] for d in got["decisions"]] == [d[:-1] for d in want["decisions"]]
    # b.jsonl was offered twice: landed once, the second run skipped it.
    assert sorted(r[0] for r in got["log"]) == sorted(r[0] for r in want["log"])


def test_second_writer_waits_then_fails_clearly_and_readers_are_not_blocked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    f = write_rows(tmp_path / "a.csv", [pred_row(0)], PRED_COLUMNS)
    ingest_paths([f], home, validate_with_gx=False)
    with writer_lock(home):
        with pytest.raises(LockTimeout, match="another trustramp run holds the writer lock"):
            ingest_paths(
                [write_rows(tmp_path / "b.csv", [pred_row(1)], PRED_COLUMNS)],
                home,
                wait_seconds=0.3,
                validate_with_gx=False,
            )
        assert len(snapshot(home)["predictions"]) == 1  # a reader during a write: not blocked


def test_catalog_file_opens_in_any_duckdb_client(tmp_path: Path) -> None:
    import duckdb

    home = tmp_path / "home"
    ingest_paths(
        [write_rows(tmp_path / "a.csv", [pred_row(0), pred_row(1, confidence=9)], PRED_COLUMNS)],
        home,
        validate_with_gx=False,
    )
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    con.execute("SET file_search_path = ?", [str(home)])  # views' paths are relative to home
    assert con.sql("SELECT count(*) FROM predictions").fetchall() == [(1,)]
    assert con.sql("SELECT reason FROM quarantine").fetchall() == [("out_of_range:confidence",)]
    assert con.sql("SELECT rows_read FROM ingest_log").fetchall() == [(2,)]
