"""Ingest: formats, every quarantine reason, idempotency, conflicts, UTC, file-level failures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PRED_COLUMNS, pred_row, write_rows

from trustramp.ingest import ingest_paths
from trustramp.store.lake import Home, reader


def lake_rows(home: Path, kind: str = "predictions") -> list[dict]:
    con = reader(Home.at(home))
    try:
        return con.sql(f"SELECT * FROM {kind} ORDER BY 1").to_arrow_table().to_pylist()
    finally:
        con.close()


def quarantine(home: Path) -> list[dict]:
    con = reader(Home.at(home))
    try:
        return (
            con.sql("SELECT * FROM quarantine ORDER BY file, row_number")
            .to_arrow_table()
            .to_pylist()
        )
    finally:
        con.close()


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_each_format_lands_the_same_typed_rows(tmp_path: Path, ext: str) -> None:
    rows = [pred_row(i, confidence=0.5 + i / 100) for i in range(20)]
    f = write_rows(tmp_path / f"in{ext}", rows, PRED_COLUMNS)
    report = ingest_paths([f], tmp_path / "home")
    assert report.failed == []
    assert report.total("rows_new") == 20
    got = lake_rows(tmp_path / "home")
    assert [r["prediction_id"] for r in got] == sorted(r["prediction_id"] for r in rows)
    by_id = {r["prediction_id"]: r for r in got}
    assert by_id["p3"]["confidence"] == pytest.approx(0.53)
    assert by_id["p3"]["predicted_at"] == dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    assert by_id["p3"]["feature"] == "feat" and by_id["p3"]["date"] == dt.date(2026, 11, 1)
    assert by_id["p3"]["item_key"] is not None


def test_formats_agree_on_row_hashes(tmp_path: Path) -> None:
    """The same rows from CSV and from Parquet are identical repeats, not conflicts."""
    rows = [pred_row(i) for i in range(10)]
    ingest_paths([write_rows(tmp_path / "a.csv", rows, PRED_COLUMNS)], tmp_path / "home")
    report = ingest_paths(
        [write_rows(tmp_path / "b.parquet", rows, PRED_COLUMNS)], tmp_path / "home"
    )
    assert report.total("rows_duplicate") == 10
    assert report.total("rows_quarantined") == 0


@pytest.mark.parametrize(
    ("override", "reason", "detail"),
    [
        ({"confidence": 1.7}, "out_of_range:confidence", "confidence '1.7' is outside [0, 1]"),
        ({"confidence": -0.1}, "out_of_range:confidence", "outside [0, 1]"),
        ({"confidence": "nan"}, "not_finite:confidence", "is not a finite number"),
        ({"confidence": "inf"}, "not_finite:confidence", "is not a finite number"),
        ({"confidence": "high"}, "unparseable:confidence", "'high' is not a number"),
        ({"confidence": ""}, "missing:confidence", "missing required value: confidence"),
        ({"latency_ms": -5}, "out_of_range:latency_ms", "outside [0, inf]"),
        ({"predicted_at": "yesterday"}, "unparseable:predicted_at", "not an ISO 8601 timestamp"),
        (
            {"predicted_at": "2999-01-01T00:00:00Z"},
            "future_timestamp:predicted_at",
            "in the future",
        ),
        ({"mode": "telepathic"}, "unknown_value:mode", "'telepathic' is not one of shadow"),
        ({"status": "exploded"}, "unknown_value:status", "is not one of ok, error"),
        ({"segment": "mars"}, "unknown_value:segment", "not one of the configured segments"),
        ({"feature": "../../etc"}, "invalid_name:feature", "is not a valid name"),
        ({"prediction_id": ""}, "missing:prediction_id", "missing required value"),
        ({"item_id": "  "}, "missing:item_id", "missing required value"),
    ],
)
def test_every_row_reason_is_quarantined_with_line(
    tmp_path: Path, override: dict, reason: str, detail: str
) -> None:
    rows = [pred_row(0), pred_row(1, **override), pred_row(2)]
    f = write_rows(tmp_path / "in.csv", rows, PRED_COLUMNS)
    report = ingest_paths([f], tmp_path / "home", validate_with_gx=False)
    assert report.total("rows_new") == 2
    assert report.reasons == {reason: 1}
    [q] = quarantine(tmp_path / "home")
    assert q["reason"] == reason and detail in q["detail"]
    assert q["row_number"] == 2 and q["line"] == 3 and q["file"] == str(f)
    assert q["raw"] and '"c1"' in q["raw"]  # the original row, as read


def test_error_status_needs_no_label_or_confidence(tmp_path: Path) -> None:
    rows = [
        pred_row(0, status="error", predicted_label=None, confidence=None),
        pred_row(1, status="ok", predicted_label=None, confidence=None),
    ]
    report = ingest_paths(
        [write_rows(tmp_path / "in.csv", rows, PRED_COLUMNS)],
        tmp_path / "home",
        validate_with_gx=False,
    )
    assert report.total("rows_new") == 1
    assert report.reasons == {"missing:predicted_label": 1}


def test_status_defaults_to_ok_and_enums_are_case_insensitive(tmp_path: Path) -> None:
    rows = [pred_row(0, status=None, mode="SHADOW")]
    ingest_paths(
        [write_rows(tmp_path / "in.csv", rows, PRED_COLUMNS)],
        tmp_path / "home",
        validate_with_gx=False,
    )
    [r] = lake_rows(tmp_path / "home")
    assert r["status"] == "ok" and r["mode"] == "shadow"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-01T10:00:00Z", dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)),
        ("2026-11-01T10:00:00", dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)),  # no offset: UTC
        ("2026-11-01T12:00:00+02:00", dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)),
        ("2026-11-01T23:30:00-02:00", dt.datetime(2026, 11, 2, 1, 30, tzinfo=dt.UTC)),
        (
            "2026-11-01 10:00:00.250+00:00",
            dt.datetime(2026, 11, 1, 10, 0, 0, 250000, tzinfo=dt.UTC),
        ),
    ],
)
def test_timestamps_are_normalized_to_utc(
    tmp_path: Path, stamp: str, expected: dt.datetime
) -> None:
    ingest_paths(
        [write_rows(tmp_path / "in.csv", [pred_row(0, predicted_at=stamp)], PRED_COLUMNS)],
        tmp_path / "home",
        validate_with_gx=False,
    )
    [r] = lake_rows(tmp_path / "home")
    assert r["predicted_at"] == expected
    assert r["date"] == expected.date()  # the partition is the UTC date


def test_parquet_naive_timestamps_are_utc(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([pred_row(0)]).set_column(
        4, "predicted_at", pa.array([dt.datetime(2026, 11, 1, 23, 0)], pa.timestamp("us"))
    )
    pq.write_table(table, tmp_path / "in.parquet")
    ingest_paths([tmp_path / "in.parquet"], tmp_path / "home", validate_with_gx=False)
    [r] = lake_rows(tmp_path / "home")
    assert r["predicted_at"] == dt.datetime(2026, 11, 1, 23, tzinfo=dt.UTC)


def test_reingest_is_idempotent(tmp_path: Path) -> None:
    rows = [pred_row(i) for i in range(30)]
    f = write_rows(tmp_path / "in.csv", rows, PRED_COLUMNS)
    first = ingest_paths([f], tmp_path / "home")
    files_before = sorted((tmp_path / "home" / "lake").rglob("*.parquet"))
    second = ingest_paths([f], tmp_path / "home")
    assert first.total("rows_new") == 30
    assert [r.status for r in second.files] == ["skipped"]
    assert sorted((tmp_path / "home" / "lake").rglob("*.parquet")) == files_before
    # A different file repeating the same rows changes nothing either.
    g = write_rows(tmp_path / "copy.jsonl", rows, PRED_COLUMNS)
    third = ingest_paths([g], tmp_path / "home")
    assert third.total("rows_duplicate") == 30 and third.total("rows_new") == 0
    assert len(lake_rows(tmp_path / "home")) == 30


def test_conflicting_duplicate_is_quarantined_never_overwritten(tmp_path: Path) -> None:
    ingest_paths(
        [write_rows(tmp_path / "a.csv", [pred_row(0), pred_row(1)], PRED_COLUMNS)],
        tmp_path / "home",
        validate_with_gx=False,
    )
    changed = [
        pred_row(0, confidence=0.42),
        pred_row(1),
        pred_row(2),
        pred_row(2, predicted_label="b"),
        pred_row(2),
    ]
    report = ingest_paths(
        [write_rows(tmp_path / "b.csv", changed, PRED_COLUMNS)],
        tmp_path / "home",
        validate_with_gx=False,
    )
    f = report.files[0]
    assert (f.rows_read, f.rows_new, f.rows_duplicate, f.rows_quarantined) == (5, 1, 2, 2)
    assert f.reasons == {"conflict:prediction_id": 2}
    by_id = {r["prediction_id"]: r for r in lake_rows(tmp_path / "home")}
    assert by_id["p0"]["confidence"] == 0.9  # the lake's version stays
    assert by_id["p2"]["predicted_label"] == "a"  # the first in the file wins
    details = sorted(q["detail"] for q in quarantine(tmp_path / "home"))
    assert "already in the lake" in details[0] or "already in the lake" in details[1]
    assert any("repeats row 3 of this file" in d for d in details)


def test_missing_required_column_fails_the_file_alone(tmp_path: Path) -> None:
    good = write_rows(tmp_path / "good.csv", [pred_row(0)], PRED_COLUMNS)
    cols = [c if c != "confidence" else "conf" for c in PRED_COLUMNS]
    bad_rows = [{("conf" if k == "confidence" else k): v for k, v in pred_row(1).items()}]
    bad = write_rows(tmp_path / "bad.csv", bad_rows, cols)
    report = ingest_paths([good, bad], tmp_path / "home", validate_with_gx=False)
    statuses = {r.path.name: r for r in report.files}
    assert statuses["good.csv"].status == "ingested"
    assert statuses["bad.csv"].status == "failed"
    assert "bad.csv" in statuses["bad.csv"].error and "confidence" in statuses["bad.csv"].error
    assert [r["prediction_id"] for r in lake_rows(tmp_path / "home")] == ["p0"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00garbage\x00\x01", "UTF-8"),
        (b"x,y\n1,2\n", "cannot tell the kind"),
    ],
)
def test_unreadable_files_fail_with_a_message_naming_them(
    tmp_path: Path, content: bytes, message: str
) -> None:
    f = tmp_path / "weird.csv"
    f.write_bytes(content)
    report = ingest_paths([f], tmp_path / "home", validate_with_gx=False)
    [r] = report.files
    assert r.status == "failed" and "weird.csv" in r.error and message in r.error
    assert lake_rows(tmp_path / "home") == []


def test_truncated_parquet_fails_cleanly(tmp_path: Path) -> None:
    f = write_rows(tmp_path / "in.parquet", [pred_row(i) for i in range(100)], PRED_COLUMNS)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    [r] = ingest_paths([f], tmp_path / "home", validate_with_gx=False).files
    assert r.status == "failed" and "in.parquet" in r.error
    assert not list((tmp_path / "home" / "lake").rglob("*.parquet"))


def test_malformed_csv_rows_are_quarantined_with_exact_lines(tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    good = ",".join(str(pred_row(0)[c]) for c in PRED_COLUMNS)
    other = ",".join(str(pred_row(1)[c]) for c in PRED_COLUMNS)
    f.write_text(",".join(PRED_COLUMNS) + "\n" + good + "\n" + "too,few\n" + "\n" + other + "\n")
    [r] = ingest_paths([f], tmp_path / "home", validate_with_gx=False).files
    assert (r.rows_read, r.rows_new, r.rows_quarantined) == (4, 2, 2)
    q = {x["line"]: x["reason"] for x in quarantine(tmp_path / "home")}
    assert q == {3: "malformed_row", 4: "empty_row"}


def test_csv_lines_count_embedded_newlines(tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    rows = [pred_row(0, predicted_label="multi\nline\nlabel"), pred_row(1, confidence=3)]
    write_rows(f, rows, PRED_COLUMNS)
    ingest_paths([f], tmp_path / "home", validate_with_gx=False)
    [q] = quarantine(tmp_path / "home")
    assert (q["row_number"], q["line"]) == (2, 5)


def test_jsonl_bad_lines_are_rows_not_file_failures(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    import json

    lines = [
        json.dumps(pred_row(0)),
        "{not json",
        "[1, 2]",
        json.dumps(pred_row(1, confidence={"nested": [1]})),
        json.dumps(pred_row(2)),
    ]
    f.write_bytes(("\n".join(lines) + "\n").encode() + b'{"prediction_id": "\xff"}\n')
    [r] = ingest_paths([f], tmp_path / "home", validate_with_gx=False).files
    assert r.rows_read == 6 and r.rows_new == 2
    assert r.reasons == {"malformed_json": 2, "unparseable:confidence": 1, "invalid_utf8": 1}
    assert {q["line"] for q in quarantine(tmp_path / "home")} == {2, 3, 4, 6}


def test_extra_columns_are_kept(tmp_path: Path) -> None:
    rows = [dict(pred_row(0), doc_type="long")]
    ingest_paths([write_rows(tmp_path / "in.csv", rows)], tmp_path / "home", validate_with_gx=False)
    [r] = lake_rows(tmp_path / "home")
    assert r["_extra"] == '{"doc_type":"long"}'


def test_decisions_land_under_their_items_feature(tmp_path: Path) -> None:
    preds = write_rows(tmp_path / "p.csv", [pred_row(0), pred_row(1)], PRED_COLUMNS)
    decisions = [
        {
            "decision_id": "d0",
            "item_id": "i0",
            "decided_at": "2026-11-03T09:00:00Z",
            "human_label": "a",
            "action": "manual",
        },
        {
            "decision_id": "d9",
            "item_id": "i-unknown",
            "decided_at": "2026-11-03T09:00:00Z",
            "human_label": "a",
            "action": None,
        },
    ]
    dfile = write_rows(tmp_path / "d.jsonl", decisions)
    report = ingest_paths([dfile, preds], tmp_path / "home")  # kinds ordered: predictions first
    assert report.failed == []
    got = {r["decision_id"]: r["feature"] for r in lake_rows(tmp_path / "home", "decisions")}
    assert got == {"d0": "feat", "d9": "_unmatched"}


def test_kind_is_inferred_or_given(tmp_path: Path) -> None:
    fb = [
        {
            "feedback_id": "f1",
            "submitted_at": "2026-11-01T00:00:00Z",
            "feature": "feat",
            "customer_id": "c1",
            "segment": "internal",
            "user_id": "u1",
            "rating": "positive",
            "nps_score": 9,
            "comment": "<b>nice</b>",
        }
    ]
    ingest_paths([write_rows(tmp_path / "fb.csv", fb)], tmp_path / "home")
    assert lake_rows(tmp_path / "home", "feedback")[0]["nps_score"] == 9
    report = ingest_paths(
        [write_rows(tmp_path / "fb2.csv", fb)], tmp_path / "home2", kind="incidents"
    )
    assert report.files[0].status == "failed" and "incident_id" in report.files[0].error


def test_counts_add_up(tmp_path: Path) -> None:
    rows = [pred_row(i, confidence=(2 if i % 7 == 0 else 0.5)) for i in range(50)] + [pred_row(1)]
    [r] = ingest_paths(
        [write_rows(tmp_path / "in.parquet", rows, PRED_COLUMNS)],
        tmp_path / "home",
        validate_with_gx=False,
    ).files
    assert r.rows_read == r.rows_new + r.rows_duplicate + r.rows_quarantined == 51
    assert len(lake_rows(tmp_path / "home")) == r.rows_new
    assert len(quarantine(tmp_path / "home")) == r.rows_quarantined


def test_great_expectations_suite_states_the_contract() -> None:
    """The audit suite passes clean rows and catches what the SQL checks must never let through."""
    import pandas as pd

    from trustramp.contract import Kind
    from trustramp.ingest.expectations import audit

    good = pd.DataFrame([pred_row(i) for i in range(3)]).drop(columns=["feature"])
    good["predicted_at"] = pd.to_datetime(good["predicted_at"], utc=True)
    for col in ("class_probabilities", "routed_to"):
        good[col] = None
    assert audit(Kind.PREDICTIONS, good) == []
    bad = good.copy()
    bad.loc[0, "confidence"] = 1.5
    bad.loc[1, "mode"] = "telepathic"
    bad.loc[2, "prediction_id"] = "p0"
    failed = audit(Kind.PREDICTIONS, bad)
    assert "expect_column_values_to_be_between(confidence)" in failed
    assert "expect_column_values_to_be_in_set(mode)" in failed
    assert "expect_column_values_to_be_unique(prediction_id)" in failed


def test_audit_samples_by_default_and_audits_all_rows_on_request(
    tmp_path: Path, monkeypatch
) -> None:
    """The Great Expectations audit sees a bounded seeded sample unless asked for every row."""
    import duckdb

    from trustramp.contract import PREDICTIONS
    from trustramp.ingest import staging

    parts = tmp_path / "parts" / "feature=feat" / "date=2026-11-01"
    parts.mkdir(parents=True)
    rows = [pred_row(i, class_probabilities=None, routed_to=None) for i in range(500)]
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "feature"} for r in rows])
    pq.write_table(table, parts / "part.parquet")
    seen: list[int] = []

    def audit(kind, frame):
        seen.append(len(frame))
        return []

    con = duckdb.connect()
    monkeypatch.setattr(staging, "AUDIT_ROWS", 100)
    staging.audit_staged(con, PREDICTIONS, [tmp_path / "parts"], audit)
    monkeypatch.setenv("TRUSTRAMP_GX_AUDIT_ROWS", "all")
    staging.audit_staged(con, PREDICTIONS, [tmp_path / "parts"], audit)
    assert seen == [100, 500]
