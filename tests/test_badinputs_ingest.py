"""Ingest hardening (issue 15): what lands, what is quarantined and what fails, beyond the counts
that the table in `test_reliability_inputs.py` checks for the same inputs.

Expected values come from the input files and independent parsers (Python's json and datetime),
not from what ingest happens to do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PRED_COLUMNS, pred_row, write_rows
from test_reliability_inputs import (
    HEADER,
    PLAIN_LOOKALIKES,
    corpus,
    csv_line,
    ingest_one,
    lake,
    parquet_internal_names,
    parquet_plain_lookalikes,
    quarantined,
)
from test_reliability_support import check_accounting

from trustramp.errors import NotWritableError
from trustramp.ingest import IngestReport, ingest_paths
from trustramp.ingest.readers import CSV_FIELD_LIMIT

MB = 1_000_000


def test_columns_named_like_ours_are_kept_whole_in_extra(tmp_path: Path) -> None:
    home = tmp_path / "csv"
    ingest_one(corpus("internal_names.csv")(tmp_path), home)
    got = lake(home)
    names = ["_line", "_row", "_file", "_malformed", "_extra", "_reason", "_json", "_c0"]
    names += ["s_confidence", "_source"]
    values = ["L", "R", "F", "M", "E", "Q", "J", "C", "S", "src"]
    assert json.loads(got["n1"]["_extra"]) == dict(zip(names, values, strict=True))
    assert json.loads(got["n2"]["_extra"]) == dict.fromkeys(names, "")
    assert got["n1"]["confidence"] == 0.9 and len(got["n1"]["_source"]) == 32  # ours, not "src"
    q = quarantined(home)[3]  # row 3 (line 4) has confidence 7: our row and line numbers hold
    assert (q["line"], q["reason"]) == (4, "out_of_range:confidence")
    assert json.loads(q["raw"])["_row"] == "" and json.loads(q["raw"])["confidence"] == "7"

    home = tmp_path / "parquet"
    ingest_one(parquet_internal_names(tmp_path), home)
    got = lake(home)
    for i in range(3):
        extra = json.loads(got[f"p{i}"]["_extra"])
        assert extra == {
            n: f"{n}{i}" for n in ("_line", "_row", "_file", "_extra", "filename", "a", "A")
        }

    home = tmp_path / "plain"
    ingest_one(parquet_plain_lookalikes(tmp_path), home)
    got = lake(home)
    assert {json.loads(r["_extra"]) == PLAIN_LOOKALIKES for r in got.values()} == {True}
    assert {(r["confidence"], r["date"]) for r in got.values()} == {(0.9, dt.date(2026, 11, 1))} | {
        (0.9, dt.date(2026, 11, d)) for d in (2, 3)
    }

    home = tmp_path / "jsonl"
    ingest_one(corpus("duplicate_keys.jsonl")(tmp_path), home)
    extra = json.loads(lake(home)["d7"]["_extra"])
    assert extra == {"_line": 99, "_row": 1, "_file": "f", "_json": "j", "_extra": {"k": 1}}


def test_trailing_commas_are_an_unnamed_column_that_must_stay_empty(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ingest_one(corpus("trailing_commas.csv")(tmp_path), home)
    got = lake(home)
    assert sorted(got) == ["t1", "t2", "t5"]
    assert all(r["_extra"] is None for r in got.values())  # the unnamed column is no extra
    q = quarantined(home)
    assert q[4]["reason"] == "malformed_row" and "column 13" in q[4]["detail"]
    assert "'stray'" in q[4]["detail"]  # a value there is quarantined, never dropped


def test_case_only_differences(tmp_path: Path) -> None:
    path = corpus("case_headers.csv")(tmp_path)
    report = ingest_paths([path], tmp_path / "home", validate_with_gx=False)
    [f] = report.files
    assert f.status == "failed" and "'Confidence' is not 'confidence'" in f.error
    assert "\n" not in f.error
    check_accounting(tmp_path / "home", report)

    home = tmp_path / "extras"
    ingest_one(corpus("case_extras.csv")(tmp_path), home)
    got = lake(home)
    assert json.loads(got["k1"]["_extra"]) == {"a": "low", "A": "UP", "note": "x", "NOTE": "X"}
    assert json.loads(got["k2"]["_extra"]) == {"a": "", "A": "UP", "note": "", "NOTE": ""}

    both = tmp_path / "both.csv"  # the contract's name and a case variant of it, side by side
    both.write_text(HEADER + ",CONFIDENCE\n" + csv_line(0) + ",0.1\n")
    [f] = ingest_paths([both], tmp_path / "home", validate_with_gx=False).files
    assert f.status == "failed" and "'CONFIDENCE' is not 'confidence'" in f.error

    # An id column that differs by case: the kind cannot be told, and the message says why.
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(HEADER.replace("prediction_id", "Prediction_ID") + "\n" + csv_line(0) + "\n")
    [f] = ingest_paths([mixed], tmp_path / "home", validate_with_gx=False).files
    assert "cannot tell the kind" in f.error and "'Prediction_ID' differs only by case" in f.error


def _offset_ok(text: str) -> bool:
    """Independent oracle: Python parses the value, the offset's minutes are below 60 (Python
    carries them over, as DuckDB does) and the offset is one in use (-12h..+14h)."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    minutes = re.search(r"[+-]\d\d:?(\d\d)$", text)
    if minutes and int(minutes.group(1)) >= 60:
        return False
    offset = t.utcoffset()
    return offset is None or dt.timedelta(hours=-12) <= offset <= dt.timedelta(hours=14)


def test_impossible_utc_offsets_are_quarantined_and_valid_ones_land(tmp_path: Path) -> None:
    path = corpus("bad_offsets.csv")(tmp_path)
    home = tmp_path / "home"
    ingest_one(path, home)
    got = lake(home)
    q = {r["raw"] and json.loads(r["raw"])["prediction_id"]: r for r in quarantined(home).values()}
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    stamps = {r[0]: r[4] for r in rows}
    assert {k for k, v in stamps.items() if _offset_ok(v)} == set(got)
    for pid, text in stamps.items():
        if pid in got:
            expected = dt.datetime.fromisoformat(text)
            if expected.tzinfo is None:
                expected = expected.replace(tzinfo=dt.UTC)
            assert got[pid]["predicted_at"] == expected.astimezone(dt.UTC)
            assert got[pid]["date"] == expected.astimezone(dt.UTC).date()
        else:
            assert q[pid]["reason"] == "unparseable:predicted_at"
            assert f"'{text}'" in q[pid]["detail"]


def _duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise KeyError("repeated")
    return dict(pairs)


def test_repeated_json_keys_quarantine_the_row(tmp_path: Path) -> None:
    path = corpus("duplicate_keys.jsonl")(tmp_path)
    home = tmp_path / "home"
    ingest_one(path, home)
    expected_ok = set()
    for line in path.read_text().splitlines():
        try:
            expected_ok.add(json.loads(line, object_pairs_hook=_duplicate_keys)["prediction_id"])
        except KeyError:
            continue
    assert set(lake(home)) == expected_ok  # d2's confidence is neither its first nor last value
    q = quarantined(home)
    assert q[2]["reason"] == "duplicate_key" and "repeats a key" in q[2]["detail"]
    assert q[6]["reason"] == "duplicate_key:class_probabilities"


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (opening a FIFO for reading blocks until a writer comes)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("ingest blocked")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_dangling_links_loops_and_fifos_are_named_as_skipped(tmp_path: Path) -> None:
    inputs = tmp_path / "landing"
    inputs.mkdir()
    write_rows(inputs / "good.csv", [pred_row(i) for i in range(3)], PRED_COLUMNS)
    (inputs / "dangling.csv").symlink_to(tmp_path / "gone.csv")
    (inputs / "loop.jsonl").symlink_to(inputs / "loop.jsonl")
    os.mkfifo(inputs / "pipe.csv")
    os.mkfifo(inputs / "pipe-without-suffix")  # not named like data: ignored like any other file
    home = tmp_path / "home"
    with _deadline(120):
        report = ingest_paths([inputs], home, validate_with_gx=False)
        direct = ingest_paths([inputs / "pipe.csv"], home, validate_with_gx=False)
    by_name = {f.path.name: f for f in report.files}
    assert set(by_name) == {"good.csv", "dangling.csv", "loop.jsonl", "pipe.csv"}
    assert by_name["good.csv"].status == "ingested" and by_name["good.csv"].rows_new == 3
    assert "dangling symbolic link" in by_name["dangling.csv"].skip_reason
    assert "symbolic link loop" in by_name["loop.jsonl"].skip_reason
    assert "FIFO" in by_name["pipe.csv"].skip_reason
    assert report.failed == []
    lines = report.summary_lines(per_file=False)  # the pipeline's short form names them too
    for name in ("dangling.csv", "loop.jsonl", "pipe.csv"):
        assert sum(name in line and line.startswith("skipped") for line in lines) == 1
    [f] = direct.files  # named directly, it fails (exit 3) instead, with the same reason
    assert (
        f.status == "failed"
        and f.error == f"{inputs / 'pipe.csv'}: {by_name['pipe.csv'].skip_reason}"
    )
    check_accounting(home, IngestReport([by_name["good.csv"]]))


def test_a_home_that_is_not_writable_is_one_clear_error(tmp_path: Path) -> None:
    # root ignores permissions: drop to nobody for the ingest (the real check, not a mock).
    base = Path(tempfile.mkdtemp(prefix="trustramp-ro-"))
    try:
        base.chmod(0o755)
        data = write_rows(base / "in.csv", [pred_row(0)], PRED_COLUMNS)
        data.chmod(0o644)
        home = base / "home"
        home.mkdir(mode=0o555)
        home.chmod(0o555)
        used = base / "used"  # a home made by an earlier run: its folders exist, not writable
        ingest_paths([data], used, validate_with_gx=False)
        for d in [used, *used.rglob("*")]:
            d.chmod(0o555 if d.is_dir() else 0o444)
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            with pytest.raises(NotWritableError) as e:
                ingest_paths([data], home, validate_with_gx=False)
            with pytest.raises(NotWritableError) as e_used:
                ingest_paths([data], used, validate_with_gx=False)
        finally:
            if as_root:
                os.seteuid(0)
        assert str(used) in str(e_used.value) and "\n" not in str(e_used.value)
        message = str(e.value)
        assert str(home) in message and "writable" in message and "--home" in message
        assert "\n" not in message and e.value.exit_code == 7
        assert list(home.iterdir()) == []  # nothing half-made
    finally:
        for d in [base, *base.rglob("*")]:
            d.chmod(0o755 if d.is_dir() else 0o644)
        for p in sorted(base.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        base.rmdir()


def test_a_150_mb_field_fails_its_file_alone(tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("w") as f:
        f.write(HEADER + "\n" + csv_line(0) + "\n")
        f.write(csv_line(1, predicted_label="x" * (150 * MB)) + "\n")
    good = write_rows(tmp_path / "good.csv", [pred_row(i) for i in range(5, 8)], PRED_COLUMNS)
    rows = [pred_row(10), pred_row(11, predicted_label="y" * (40 * MB)), pred_row(12)]
    long_line = write_rows(tmp_path / "long_line.jsonl", rows)
    home = tmp_path / "home"
    report = ingest_paths([huge, good, long_line], home, validate_with_gx=False)
    check_accounting(home, report)
    by_name = {f.path.name: f for f in report.files}
    error = by_name["huge.csv"].error
    assert by_name["huge.csv"].status == "failed" and "\n" not in error
    assert "line 3" in error and f"{CSV_FIELD_LIMIT >> 20} MiB" in error
    assert by_name["good.csv"].rows_new == 3
    error = by_name["long_line.jsonl"].error
    assert by_name["long_line.jsonl"].status == "failed" and "line 2: longer than" in error


def _bomb(d: Path, rows: int = 20_000, width: int = 10_000) -> Path:
    """A Parquet file of ~0.1 MB whose labels expand to rows x width bytes (200 MB)."""
    table = pa.Table.from_pylist([pred_row(i) for i in range(rows)])
    i = table.schema.get_field_index("predicted_label")
    table = table.set_column(i, "predicted_label", pa.array(["x" * width] * rows))
    pq.write_table(table, d / "bomb.parquet", use_dictionary=True, compression="zstd")
    return d / "bomb.parquet"


@pytest.mark.slow
def test_a_parquet_file_that_expands_in_memory_never_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = _bomb(tmp_path)
    assert bomb.stat().st_size < 2 * MB
    good = write_rows(tmp_path / "good.csv", [pred_row(i) for i in range(10**6, 10**6 + 4)])
    # 200 MB of text under a 128 MB limit: the audit's sample holds it whole unless it bounds
    # the text's bytes (it does: every row lands).
    home = tmp_path / "home"
    report = ingest_paths([bomb, good], home, memory_limit="128MB")
    check_accounting(home, report)
    assert [(f.path.name, f.status, f.rows_new) for f in report.files] == [
        ("bomb.parquet", "ingested", 20_000),
        ("good.csv", "ingested", 4),
    ]
    # Without the bound the audit of the kind runs out of memory: the file that cannot be
    # audited alone fails alone, with one line, and the other file still lands.
    import trustramp.ingest.staging as staging

    monkeypatch.setattr(staging, "AUDIT_TEXT_CHARS", 10**9)
    home = tmp_path / "home2"
    report = ingest_paths([bomb, good], home, memory_limit="128MB")
    check_accounting(home, report)
    by_name = {f.path.name: f for f in report.files}
    assert by_name["good.csv"].status == "ingested" and by_name["good.csv"].rows_new == 4
    assert by_name["bomb.parquet"].status == "failed"
    assert "contract audit could not run" in by_name["bomb.parquet"].error
    assert "\n" not in by_name["bomb.parquet"].error


@pytest.mark.slow
def test_wide_rows_land_under_a_small_memory_limit_and_huge_ones_fail_alone(
    tmp_path: Path,
) -> None:
    # 128 MB of repeated text (8,000 rows of 16 KB) under a 64 MB limit: the lake write's
    # buffers count rows, so a file of wide rows gets a smaller flush threshold, and lands.
    (tmp_path / "a").mkdir()
    wide = _bomb(tmp_path / "a", rows=8_000, width=16_000)
    # 6 values of 30 MB each: too big for 64 MB whatever the threshold.
    (tmp_path / "b").mkdir()
    huge = _bomb(tmp_path / "b", rows=6, width=30 * MB)
    good = write_rows(tmp_path / "good.csv", [pred_row(i) for i in range(10**6, 10**6 + 4)])
    home = tmp_path / "home"
    report = ingest_paths([wide, huge, good], home, memory_limit="64MB", validate_with_gx=False)
    check_accounting(home, report)
    got = [(f.path.parent.name, f.path.name, f.status, f.rows_new) for f in report.files]
    errors = [f.error for f in report.files]
    assert got[0] == ("a", "bomb.parquet", "ingested", 8_000), errors
    g = report.files[2]
    if g.status == "failed":
        # Staged beside the wide file, the set sits at the limit's edge, and where memory runs
        # out is DuckDB's call (2 of ~6 full-suite runs, never alone): then the file fails
        # whole, says that alone it lands, and it does in a run of its own.
        assert "alone, in a run of its own, it can" in (g.error or ""), errors
        again = ingest_paths([good], home, memory_limit="64MB", validate_with_gx=False)
        assert [(f.status, f.rows_new) for f in again.files] == [("ingested", 4)]
    else:
        assert got[2] == (tmp_path.name, "good.csv", "ingested", 4), errors
    h = report.files[1]
    if h.status == "failed":  # where memory runs out is DuckDB's call: either outcome is whole
        assert "\n" not in h.error and "memory" in h.error.lower()
    else:
        assert (h.status, h.rows_new) == ("ingested", 6)
