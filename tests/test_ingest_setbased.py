"""Set-based staging: the files of one run, checked and deduplicated together, give the same lake
as ingesting them one run at a time, and a file that breaks still fails alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import PRED_COLUMNS, pred_row, write_rows

from trustramp.ingest import ingest_paths
from trustramp.store.lake import Home, reader


def visible(home: Path) -> dict[str, list[tuple]]:
    con = reader(Home.at(home))
    try:
        return {
            "predictions": con.sql(
                "SELECT * EXCLUDE (_source, _row_hash) FROM predictions ORDER BY ALL"
            ).fetchall(),
            "decisions": con.sql(
                "SELECT * EXCLUDE (_source, _row_hash) FROM decisions ORDER BY ALL"
            ).fetchall(),
            "quarantine": con.sql(
                "SELECT file, row_number, line, reason, detail FROM quarantine ORDER BY ALL"
            ).fetchall(),
            "log": con.sql(
                "SELECT file, rows_read, rows_new, rows_duplicate, rows_quarantined "
                "FROM ingest_log ORDER BY ALL"
            ).fetchall(),
        }
    finally:
        con.close()


def inputs(folder: Path) -> list[Path]:
    a = write_rows(folder / "a.parquet", [pred_row(i) for i in range(10)], PRED_COLUMNS)
    b_rows = [pred_row(i) for i in range(5, 15)]
    b_rows[1] = pred_row(6, confidence=0.2)  # p6 again, other content: a conflict
    b_rows.append(pred_row(12, confidence=0.3))  # p12 twice in b: a conflict inside b
    b_rows.append(pred_row(13))  # p13 twice in b, identical: a duplicate
    b = write_rows(folder / "b.csv", b_rows, PRED_COLUMNS)
    # Same rows as a, another Parquet shape (an extra column): its own query, all duplicates.
    c = folder / "c.parquet"
    table = pa.Table.from_pylist([{**pred_row(i), "note": "x"} for i in range(3)])
    pq.write_table(table, c)
    bad = folder / "d.parquet"
    bad.write_bytes(a.read_bytes()[:200])  # truncated: fails alone
    d = write_rows(
        folder / "e.jsonl",
        [
            {
                "decision_id": f"d{i}",
                "item_id": f"i{i}",
                "decided_at": "2026-11-03T00:00:00Z",
                "human_label": "a",
            }
            for i in (1, 2, 14, 99)
        ],
    )
    return [a, b, c, bad, d]


def test_one_run_equals_one_run_per_file(tmp_path: Path) -> None:
    files = inputs(tmp_path / "in")
    together = ingest_paths(files, tmp_path / "together", validate_with_gx=False)
    for f in files:
        ingest_paths([f], tmp_path / "apart", validate_with_gx=False)
    assert visible(tmp_path / "together") == visible(tmp_path / "apart")
    by_name = {r.path.name: r for r in together.files}
    assert by_name["d.parquet"].status == "failed" and "d.parquet" in str(
        by_name["d.parquet"].error
    )
    b = by_name["b.csv"]
    assert (b.rows_read, b.rows_new, b.rows_duplicate, b.rows_quarantined) == (12, 5, 5, 2)
    assert by_name["c.parquet"].rows_duplicate == 3
    details = [q[4] for q in visible(tmp_path / "together")["quarantine"]]
    assert any("'p6' is already in the lake" in d for d in details)
    assert any("'p12' repeats row 8 of this file" in d for d in details)
    decisions = visible(tmp_path / "together")["decisions"]
    assert len(decisions) == 4  # i99 has no prediction: filed under _unmatched


def test_a_file_that_breaks_mid_stream_fails_alone(tmp_path: Path) -> None:
    """A CSV that is not UTF-8 past its first block fails; the other CSVs of the run land."""
    good = write_rows(tmp_path / "a.csv", [pred_row(i) for i in range(5)], PRED_COLUMNS)
    bad = write_rows(tmp_path / "b.csv", [pred_row(i) for i in range(5, 10)], PRED_COLUMNS)
    bad.write_bytes(bad.read_bytes() + b"p99,i99,feat,v1,2026-11-01T00:00:00Z,smb,c\xff\n")
    more = write_rows(tmp_path / "c.csv", [pred_row(i) for i in range(10, 15)], PRED_COLUMNS)
    report = ingest_paths([good, bad, more], tmp_path / "home", validate_with_gx=False)
    status = {r.path.name: r.status for r in report.files}
    assert status == {"a.csv": "ingested", "b.csv": "failed", "c.csv": "ingested"}
    assert len(visible(tmp_path / "home")["predictions"]) == 10


def test_the_audit_sees_the_landing_rows_and_a_failure_blocks_its_kind(
    tmp_path: Path, monkeypatch
) -> None:
    """The Great Expectations audit runs beside staging, on the rows about to land (not the
    duplicates, conflicts or quarantined rows), and a failed audit still stops every file of its
    kind before anything of them commits, while the other kinds land; a rerun lands them."""
    from trustramp.contract import Kind
    from trustramp.ingest import expectations

    real = expectations.audit
    seen: dict[Kind, list[str]] = {}

    def audit(kind, frame):  # the real suite, plus one failure planted for decisions
        seen.setdefault(kind, []).extend(frame[frame.columns[0]].tolist())
        failed = real(kind, frame)
        return [*failed, "planted(decision_id)"] if kind is Kind.DECISIONS else failed

    monkeypatch.setattr(expectations, "audit", audit)
    files = [f for f in inputs(tmp_path / "in") if f.name != "d.parquet"]
    report = ingest_paths(files, tmp_path / "home")
    status = {r.path.name: r.status for r in report.files}
    assert status == {n: "ingested" for n in ("a.parquet", "b.csv", "c.parquet")} | {
        "e.jsonl": "failed"
    }
    error = next(r.error for r in report.files if r.path.name == "e.jsonl")
    assert "failed the contract audit (planted(decision_id))" in str(error)
    landed = visible(tmp_path / "home")
    assert landed["decisions"] == []
    assert sorted(seen[Kind.PREDICTIONS]) == sorted(p[0] for p in landed["predictions"])
    assert sorted(seen[Kind.DECISIONS]) == ["d1", "d14", "d2", "d99"]

    monkeypatch.setattr(expectations, "audit", real)
    again = ingest_paths(files, tmp_path / "home")
    assert {r.path.name: r.status for r in again.files}["e.jsonl"] == "ingested"
    assert len(visible(tmp_path / "home")["decisions"]) == 4


def test_an_audit_that_cannot_run_fails_only_the_file_it_cannot_audit(
    tmp_path: Path, monkeypatch
) -> None:
    """When the kind's audit breaks (here: out of memory on the rows of one file), each file is
    audited alone and only the file whose own audit breaks fails, with one line."""
    from trustramp.ingest import expectations

    real = expectations.audit

    def audit(kind, frame):
        if "p12" in set(frame[frame.columns[0]]):  # a row only b.csv lands
            raise MemoryError
        return real(kind, frame)

    monkeypatch.setattr(expectations, "audit", audit)
    files = [f for f in inputs(tmp_path / "in") if f.name in ("a.parquet", "b.csv")]
    report = ingest_paths(files, tmp_path / "home")
    by_name = {r.path.name: r for r in report.files}
    assert by_name["a.parquet"].status == "ingested"
    assert by_name["b.csv"].status == "failed"
    assert "the contract audit could not run on its rows (out of memory)" in str(
        by_name["b.csv"].error
    )
    assert len(visible(tmp_path / "home")["predictions"]) == 10


def test_side_by_side_lake_writes_see_the_staging_tables_and_time_zone(tmp_path: Path) -> None:
    """The single-partition lake writes run on other connections of the staging database
    (`staging._copy_plain`): they read its tables and compute dates in its time zone (UTC, as
    `duck.connect` sets it), not in the machine's."""
    import datetime as dt

    from trustramp.ingest import staging
    from trustramp.store.duck import connect

    con = connect(threads=4)
    con.execute("SET TimeZone = 'Pacific/Kiritimati'")  # UTC+14: noon UTC is the next day there
    con.execute(
        "CREATE TABLE t AS SELECT CAST(i AS INTEGER) AS _file, "
        "TIMESTAMPTZ '2026-01-01 12:00:00+00' AS ts FROM range(6) r(i)"
    )
    relation = "SELECT _file, CAST(ts AS DATE) AS d FROM t"
    copies = [
        (relation, i, tmp_path / f"{i}" / "data_0.parquet", "FORMAT parquet") for i in range(6)
    ]
    staging._copy_plain(con, copies)
    for i in range(6):
        assert pq.read_table(copies[i][2]).to_pylist() == [{"d": dt.date(2026, 1, 2)}]
    con.close()
