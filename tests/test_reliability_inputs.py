"""The bad-input corpus: every file has a defined outcome, and rows in = landed + repeats + quarantined.

Small text files live in `tests/badinputs/`; binary, encoding-sensitive, time-relative and big
files are generated here (a 1 MB field is not committed). Each case names its expected outcome —
the file lands with these new rows, identical repeats and quarantine reasons, or the file fails
with a message naming it — and `check_accounting` checks the invariant and the catalog for it.

Wrong encoding, decided: a CSV that is not UTF-8 (latin-1, UTF-16, binary) fails as a file with
"not valid UTF-8 text; re-save it as UTF-8" (encoding is a property of the file, not of a row);
in JSON Lines each line stands alone, so a non-UTF-8 line is one row quarantined `invalid_utf8`.
A UTF-8 BOM is accepted in both.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PRED_COLUMNS, pred_row, write_rows
from test_reliability_support import check_accounting, visible_state

from trustramp.ingest import ingest_paths
from trustramp.store.lake import Home, reader

CORPUS = Path(__file__).parent / "badinputs"
HEADER = ",".join(PRED_COLUMNS)
MB = 1_000_000


def csv_line(i: int, **over: object) -> str:
    row = pred_row(i, **over)
    return ",".join("" if row[c] is None else str(row[c]) for c in PRED_COLUMNS)


# -- generated inputs ---------------------------------------------------------------------------


def crlf(d: Path) -> Path:
    body = [
        HEADER,
        csv_line(0),
        csv_line(1, predicted_label='"multi\r\nline"'),
        csv_line(2, confidence=2),
    ]
    return _write(d / "crlf.csv", ("\r\n".join(body) + "\r\n").encode())


def big_field(d: Path) -> Path:
    body = [
        HEADER,
        csv_line(0, predicted_label="x" * MB),
        csv_line(1, customer_id="y" * MB, confidence=1.5),
    ]
    return _write(d / "big_field.csv", ("\n".join(body) + "\n").encode())


def huge_row(d: Path) -> Path:
    """A 5 MB field: a row longer than the fast CSV reader's block (read by the exact reader)."""
    body = [HEADER, csv_line(0), csv_line(1, predicted_label="w" * 5 * MB), csv_line(2)]
    return _write(d / "huge_row.csv", ("\n".join(body) + "\n").encode())


def big_field_malformed(d: Path) -> Path:
    """A 1 MB field in a file that also has a malformed row (read by the exact CSV reader)."""
    body = [HEADER, csv_line(0, predicted_label="x" * MB), "too,few", csv_line(2)]
    return _write(d / "big_field_malformed.csv", ("\n".join(body) + "\n").encode())


def big_field_jsonl(d: Path) -> Path:
    return write_rows(d / "big_field.jsonl", [pred_row(0, predicted_label="z" * MB), pred_row(1)])


def garbage(d: Path, name: str) -> Path:
    rng = random.Random(name)
    return _write(d / name, bytes(rng.randrange(256) for _ in range(4096)))


def garbage_jsonl(d: Path) -> Path:
    """One good line (it tells the columns), then 4 KB of random bytes."""
    good = json.dumps(pred_row(0)).encode() + b"\n"
    return _write(d / "garbage_lines.jsonl", good + garbage(d, "garbage.jsonl").read_bytes())


def latin1(d: Path, *, row: int = 0) -> Path:
    """latin-1 text: a café in data row `row` (row 5000 is past the readers' first block)."""
    rows = [csv_line(i, predicted_label="café" if i == row else "a") for i in range(row + 2)]
    return _write(d / f"latin1_{row}.csv", ("\n".join([HEADER, *rows]) + "\n").encode("latin-1"))


def utf16(d: Path) -> Path:
    return _write(d / "utf16.csv", ("\n".join([HEADER, csv_line(0)]) + "\n").encode("utf-16"))


def future_relative(d: Path) -> Path:
    now = dt.datetime.now(dt.UTC)
    stamps = {
        0: now - dt.timedelta(hours=1),  # landed
        1: now + dt.timedelta(hours=1),  # within the tolerance of one day: clock skew, landed
        2: now + dt.timedelta(days=2),  # future
    }
    rows = [pred_row(i, predicted_at=t.isoformat()) for i, t in stamps.items()]
    return write_rows(d / "future_relative.csv", rows, PRED_COLUMNS)


def parquet_with(d: Path, name: str, column: str, values: list, typ: pa.DataType) -> Path:
    rows = [pred_row(i) for i in range(len(values))]
    table = pa.Table.from_pylist(rows).drop_columns([column])
    table = table.append_column(pa.field(column, typ), pa.array(values, typ))
    pq.write_table(table, d / name)
    return d / name


def truncated_parquet(d: Path) -> Path:
    f = write_rows(d / "truncated.parquet", [pred_row(i) for i in range(200)], PRED_COLUMNS)
    f.write_bytes(f.read_bytes()[: f.stat().st_size * 2 // 3])
    return f


def empty_parquet(d: Path) -> Path:
    return _write(d / "empty.parquet", b"")


def utf16_jsonl(d: Path, *, bom: bool = True) -> Path:
    """JSON Lines saved as UTF-16 (with a byte order mark, or little-endian without one)."""
    text = "\n".join(json.dumps(pred_row(i)) for i in range(3)) + "\n"
    name = "utf16.jsonl" if bom else "utf16le.jsonl"
    return _write(d / name, text.encode("utf-16" if bom else "utf-16-le"))


def wide_csv(d: Path, extra: int = 20_000) -> Path:
    """The contract's columns and 20,000 more: refused on its header, before any row is read."""
    header = HEADER + "," + ",".join(f"x{i}" for i in range(extra))
    rows = [csv_line(i) + "," * extra for i in range(3)]
    return _write(d / "wide.csv", ("\n".join([header, *rows]) + "\n").encode())


def wide_parquet(d: Path) -> Path:
    table = pa.Table.from_pylist([pred_row(0)])
    for i in range(1_000):
        table = table.append_column(f"x{i}", pa.array([i]))
    pq.write_table(table, d / "wide.parquet")
    return d / "wide.parquet"


def parquet_internal_names(d: Path) -> Path:
    """Extra Parquet columns named like ours (and two that differ only by case)."""
    table = pa.Table.from_pylist([pred_row(i) for i in range(3)])
    for name in ("_line", "_row", "_file", "_extra", "filename", "a", "A"):
        table = table.append_column(name, pa.array([f"{name}{i}" for i in range(3)]))
    pq.write_table(table, d / "internal_names.parquet")
    return d / "internal_names.parquet"


PLAIN_LOOKALIKES = {
    "s_predicted_at": "2026-11-01T10:00:00+99",
    "v_confidence": "7",
    "o_predicted_at": "x",
    "item_key": "k",
    "date": "1999-01-01",
}


def parquet_plain_lookalikes(d: Path) -> Path:
    """Plain Parquet (read by DuckDB directly) with extras named like the checking query's own
    columns (`s_<col>`, `v_<col>`, `o_<col>`) and the lake's (`item_key`, `date`)."""
    table = pa.Table.from_pylist([pred_row(i) for i in range(3)])
    for name, value in PLAIN_LOOKALIKES.items():
        table = table.append_column(name, pa.array([value] * 3))
    pq.write_table(table, d / "lookalikes.parquet")
    return d / "lookalikes.parquet"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def corpus(name: str) -> Callable[[Path], Path]:
    def copy(d: Path) -> Path:
        return Path(shutil.copy(CORPUS / name, d / name))

    return copy


# -- the table ------------------------------------------------------------------------------------


@dataclass
class Case:
    """One input file and its defined outcome."""

    id: str
    make: Callable[[Path], Path]
    status: str = "ingested"
    new: int = 0
    dup: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    kind: str | None = None
    preload: tuple[str, ...] = ()


FAILED = "failed"
CASES = [
    Case("empty csv", corpus("empty.csv"), FAILED, error="the file is empty"),
    Case("empty jsonl", corpus("empty.jsonl"), FAILED, error="the file is empty"),
    Case("empty parquet", empty_parquet, FAILED, error="the file is empty"),
    Case("header only", corpus("header_only.csv")),
    Case("header only, no line break", lambda d: _write(d / "header_no_eol.csv", HEADER.encode())),
    Case(
        "binary garbage csv", lambda d: garbage(d, "garbage.csv"), FAILED, error="not valid UTF-8"
    ),
    Case(
        "binary garbage parquet",
        lambda d: garbage(d, "garbage.parquet"),
        FAILED,
        error="cannot read as Parquet",
    ),
    Case("latin-1 in the first rows", latin1, FAILED, error="not valid UTF-8 text"),
    Case(
        "latin-1 past the first block",
        lambda d: latin1(d, row=5000),
        FAILED,
        error="not valid UTF-8",
    ),
    Case("utf-16", utf16, FAILED, error="not valid UTF-8"),
    Case("utf-8 BOM", corpus("bom.csv"), new=2),
    Case("CRLF, embedded CRLF", crlf, new=2, reasons={"out_of_range:confidence": 1}),
    Case("1 MB fields", big_field, new=1, reasons={"out_of_range:confidence": 1}),
    Case("1 MB field, exact reader", big_field_malformed, new=2, reasons={"malformed_row": 1}),
    Case("5 MB field, longer than a CSV block", huge_row, new=3),
    Case("1 MB field, JSON Lines", big_field_jsonl, new=2),
    Case(
        "NaN, inf, negative, >1 confidences",
        corpus("confidences.csv"),
        new=7,
        reasons={
            "not_finite:confidence": 5,
            "out_of_range:confidence": 3,
            "unparseable:confidence": 2,
            "missing:confidence": 1,
        },
    ),
    Case(
        "negative latency",
        corpus("latency.csv"),
        new=4,
        reasons={
            "out_of_range:latency_ms": 2,
            "unparseable:latency_ms": 1,
            "not_finite:latency_ms": 1,
        },
    ),
    Case(
        "unparseable, future and pre-1970 timestamps",
        corpus("timestamps.csv"),
        new=3,
        reasons={
            "unparseable:predicted_at": 4,
            "future_timestamp:predicted_at": 2,
            "out_of_range:predicted_at": 3,
            "missing:predicted_at": 1,
        },
    ),
    Case(
        "timestamps relative to now",
        future_relative,
        new=2,
        reasons={"future_timestamp:predicted_at": 1},
    ),
    Case("mixed offsets", corpus("offsets.csv"), new=8),
    Case(
        "unknown enum values",
        corpus("enums.csv"),
        new=4,
        reasons={
            "unknown_value:mode": 1,
            "unknown_value:status": 1,
            "unknown_value:segment": 2,
            "unknown_value:routed_to": 1,
        },
    ),
    Case(
        "duplicate and conflicting ids",
        corpus("ids.csv"),
        new=3,
        dup=2,
        reasons={"conflict:prediction_id": 2},
    ),
    Case(
        "ids already in the lake",
        corpus("ids_again.csv"),
        new=1,
        dup=1,
        reasons={"conflict:prediction_id": 1},
        preload=("ids.csv",),
    ),
    Case(
        "renamed required column",
        corpus("renamed_column.csv"),
        FAILED,
        error="missing required column confidence",
    ),
    Case("extra columns", corpus("extra_columns.csv"), new=2),
    Case(
        "malformed rows",
        corpus("malformed.csv"),
        new=2,
        reasons={"malformed_row": 3, "empty_row": 1},
    ),
    Case(
        "JSON Lines with nested garbage",
        corpus("nested.jsonl"),
        new=5,
        reasons={
            "malformed_json": 7,
            "unparseable:prediction_id": 1,
            "unparseable:predicted_label": 1,
            "unparseable:confidence": 1,
            "unparseable:class_probabilities": 1,
        },
    ),
    Case(
        "binary garbage as JSON Lines",
        lambda d: garbage_jsonl(d),
        new=1,
        reasons={"from the bytes": 0},  # computed in the test: each garbage line is one bad row
    ),
    Case(
        "only binary garbage as JSON Lines",
        lambda d: garbage(d, "garbage.jsonl"),
        FAILED,
        error="cannot tell the kind of data",
    ),
    Case(
        "only binary garbage as JSON Lines, kind given",
        lambda d: garbage(d, "garbage.jsonl"),
        FAILED,
        kind="predictions",
        error="missing required columns prediction_id",
    ),
    Case(
        "Parquet: confidence as string",
        lambda d: parquet_with(
            d, "conf_str.parquet", "confidence", ["0.5", "1", "high", "NaN"], pa.string()
        ),
        new=2,
        reasons={"unparseable:confidence": 1, "not_finite:confidence": 1},
    ),
    Case(
        "Parquet: confidence as a list",
        lambda d: parquet_with(
            d, "conf_list.parquet", "confidence", [[0.5], [0.9, 0.1], None], pa.list_(pa.float64())
        ),
        reasons={"unparseable:confidence": 2, "missing:confidence": 1},
    ),
    Case(
        "Parquet: label as a list",
        lambda d: parquet_with(
            d, "label_list.parquet", "predicted_label", [["a"], ["a", "b"]], pa.list_(pa.string())
        ),
        reasons={"unparseable:predicted_label": 2},
    ),
    Case(
        "Parquet: label as a struct",
        lambda d: parquet_with(
            d, "label_struct.parquet", "predicted_label", [{"x": 1}], pa.struct([("x", pa.int64())])
        ),
        reasons={"unparseable:predicted_label": 1},
    ),
    Case(
        "Parquet: timestamp as integer",
        lambda d: parquet_with(d, "ts_int.parquet", "predicted_at", [1_700_000_000, 1], pa.int64()),
        reasons={"unparseable:predicted_at": 2},
    ),
    Case(
        "Parquet: confidence as boolean",
        lambda d: parquet_with(d, "conf_bool.parquet", "confidence", [True, False], pa.bool_()),
        reasons={"unparseable:confidence": 2},
    ),
    Case(
        "Parquet: id as integer",
        lambda d: parquet_with(d, "id_int.parquet", "prediction_id", [7, 8, 9], pa.int64()),
        new=3,
    ),
    Case("truncated Parquet", truncated_parquet, FAILED, error="cannot read as Parquet"),
    Case(
        "columns named like ingest's own (_line, _row, _file, _malformed, _extra, ...)",
        corpus("internal_names.csv"),
        new=2,
        reasons={"out_of_range:confidence": 1},
    ),
    Case("Parquet columns named like ours, and a / A", parquet_internal_names, new=3),
    Case("plain Parquet, columns named like the query's", parquet_plain_lookalikes, new=3),
    Case(
        "trailing commas (an unnamed empty last column)",
        corpus("trailing_commas.csv"),
        new=3,
        reasons={"out_of_range:confidence": 1, "malformed_row": 1},
    ),
    Case(
        "header differing from the contract only by case",
        corpus("case_headers.csv"),
        FAILED,
        error="'Confidence' is not 'confidence'",
    ),
    Case("extra columns differing only by case", corpus("case_extras.csv"), new=2),
    Case(
        "impossible UTC offsets",
        corpus("bad_offsets.csv"),
        new=8,
        reasons={"unparseable:predicted_at": 6},
    ),
    Case(
        "JSON Lines with repeated keys",
        corpus("duplicate_keys.jsonl"),
        new=4,
        reasons={"duplicate_key": 3, "duplicate_key:class_probabilities": 1},
    ),
    Case("UTF-16 JSON Lines with a BOM", utf16_jsonl, FAILED, error="not valid UTF-8 text"),
    Case(
        "UTF-16 JSON Lines without a BOM",
        lambda d: utf16_jsonl(d, bom=False),
        FAILED,
        error="re-save it as UTF-8",
    ),
    Case("20,000 columns", wide_csv, FAILED, error="20,012 columns, more than the 1,000"),
    Case("1,012 Parquet columns", wide_parquet, FAILED, error="1,012 columns, more than"),
    Case(
        "decisions",
        corpus("decisions_bad.csv"),
        new=2,
        reasons={
            "missing:human_label": 1,
            "unknown_value:action": 1,
            "out_of_range:review_seconds": 1,
            "unparseable:decided_at": 1,
        },
    ),
    Case(
        "feedback",
        corpus("feedback_bad.csv"),
        new=2,
        reasons={
            "out_of_range:nps_score": 1,
            "unparseable:nps_score": 1,
            "unknown_value:rating": 1,
            "invalid_name:feature": 1,
        },
    ),
    Case(
        "incidents",
        corpus("incidents_bad.csv"),
        new=1,
        reasons={
            "unknown_value:severity": 1,
            "unknown_value:kind": 1,
            "unparseable:resolved_at": 1,
            "missing:title": 1,
        },
    ),
]


def expected_jsonl_reasons(path: Path) -> Counter[str]:
    """Oracle for JSON Lines of garbage after one good line: each other line is one bad row."""
    out: Counter[str] = Counter()
    for i, line in enumerate(path.read_bytes().split(b"\n")):
        line = line[3:] if i == 0 and line.startswith(b"\xef\xbb\xbf") else line
        if not line.strip():
            continue
        try:
            obj = json.loads(line.strip().decode("utf-8"))
        except UnicodeDecodeError:
            out["invalid_utf8"] += 1
            continue
        except ValueError:
            obj = None
        if i == 0:
            assert isinstance(obj, dict)
            continue
        assert not isinstance(obj, dict), "random bytes made a JSON object"
        out["malformed_json"] += 1
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_bad_input_has_its_defined_outcome(tmp_path: Path, case: Case) -> None:
    home = tmp_path / "home"
    for name in case.preload:
        check_accounting(home, ingest_paths([corpus(name)(tmp_path)], home, validate_with_gx=False))
    path = case.make(tmp_path)
    report = ingest_paths([path], home, kind=case.kind, validate_with_gx=False)
    [f] = report.files
    reasons = check_accounting(home, report)  # the invariant, against the catalog
    assert f.status == case.status, f.error
    if case.status == FAILED:
        assert case.error is not None and case.error in f.error
        assert path.name in f.error
        return
    expected = case.reasons
    if "from the bytes" in expected:
        expected = expected_jsonl_reasons(path)
    assert reasons[path.name] == Counter(expected)
    assert (f.rows_new, f.rows_duplicate) == (case.new, case.dup)
    assert f.rows_read == case.new + case.dup + sum(expected.values())


# -- what landed, where it matters --------------------------------------------------------------


def lake(home: Path, kind: str = "predictions") -> dict[str, dict]:
    con = reader(Home.at(home))
    try:
        rows = con.sql(f"SELECT * FROM {kind}").to_arrow_table().to_pylist()
    finally:
        con.close()
    id_col = {"predictions": "prediction_id", "decisions": "decision_id"}[kind]
    return {r[id_col]: r for r in rows}


def quarantined(home: Path) -> dict[int, dict]:
    con = reader(Home.at(home))
    try:
        rows = con.sql("SELECT * FROM quarantine").to_arrow_table().to_pylist()
    finally:
        con.close()
    return {r["row_number"]: r for r in rows}


def ingest_one(path: Path, home: Path, **kw: object) -> None:
    report = ingest_paths([path], home, validate_with_gx=False, **kw)
    assert report.failed == []
    check_accounting(home, report)


def test_mixed_offsets_land_as_the_same_utc_instant(tmp_path: Path) -> None:
    ingest_one(corpus("offsets.csv")(tmp_path), tmp_path / "home")
    got = lake(tmp_path / "home")
    ten = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    assert {got[f"o{i}"]["predicted_at"] for i in range(1, 7)} == {ten}
    assert got["o7"]["predicted_at"] == dt.datetime(2026, 11, 2, 1, 30, tzinfo=dt.UTC)
    assert got["o7"]["date"] == dt.date(2026, 11, 2)  # the partition is the UTC date
    assert got["o8"]["predicted_at"] == dt.datetime(2026, 11, 1, 23, 30, tzinfo=dt.UTC)
    assert got["o8"]["date"] == dt.date(2026, 11, 1)


def test_one_megabyte_fields_land_verbatim_and_quarantine_stays_bounded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ingest_one(big_field(tmp_path), home)
    assert lake(home)["p0"]["predicted_label"] == "x" * MB
    q = quarantined(home)[2]
    assert q["reason"] == "out_of_range:confidence" and "'1.5'" in q["detail"]
    assert len(q["raw"]) <= 4096 and len(q["detail"]) < 200  # the echo is cut, not the data
    ingest_one(big_field_malformed(tmp_path), tmp_path / "home2")
    assert lake(tmp_path / "home2")["p2"]["predicted_label"] == "a"


def test_bom_and_crlf_change_nothing_but_the_bytes(tmp_path: Path) -> None:
    ingest_one(corpus("bom.csv")(tmp_path), tmp_path / "bom")
    assert sorted(lake(tmp_path / "bom")) == ["b1", "b2"]  # the first column is prediction_id
    home = tmp_path / "crlf"
    ingest_one(crlf(tmp_path), home)
    got = lake(home)
    assert got["p1"]["predicted_label"] == "multi\r\nline"  # a quoted newline is data
    assert got["p0"]["status"] == "ok"  # no stray \r at the end of a line
    assert quarantined(home)[3]["line"] == 5  # the embedded line break counts


def test_extra_columns_and_nested_extras_are_kept_as_json(tmp_path: Path) -> None:
    ingest_one(corpus("extra_columns.csv")(tmp_path), tmp_path / "a")
    got = lake(tmp_path / "a")
    assert json.loads(got["x1"]["_extra"]) == {"doc_type": "long", "notes": "kept, verbatim"}
    ingest_one(corpus("nested.jsonl")(tmp_path), tmp_path / "b")
    got = lake(tmp_path / "b")
    assert json.loads(got["j11"]["_extra"]) == {"meta": {"deep": [1, {"x": None}]}}
    assert got["j10"]["confidence"] == 0.5  # a number written as a JSON string is a number
    assert got["17"]["item_id"] == "i17"  # a JSON number as an id is its text, as in CSV
    assert json.loads(got["j13"]["class_probabilities"]) == {"a": 0.9, "b": 0.1}


def test_enum_case_and_whitespace_are_normalized_defaults_filled(tmp_path: Path) -> None:
    ingest_one(corpus("enums.csv")(tmp_path), tmp_path / "home")
    got = lake(tmp_path / "home")
    assert got["e2"]["mode"] == "shadow" and got["e8"]["mode"] == "suggestion"
    assert got["e5"]["status"] == "ok" and got["e8"]["routed_to"] == "auto"


def test_conflicts_keep_the_first_version_and_say_which(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ingest_one(corpus("ids.csv")(tmp_path), home)
    ingest_one(corpus("ids_again.csv")(tmp_path), home)
    got = lake(home)
    assert got["p2"]["confidence"] == 0.9 and got["p3"]["predicted_label"] == "a"
    details = sorted(q["detail"] for q in quarantined(home).values())
    assert any("repeats row 3 of this file" in d for d in details)
    assert any("'p2' is already in the lake" in d for d in details)


def test_the_whole_corpus_at_once_lands_each_file_alone_and_reruns_change_nothing(
    tmp_path: Path,
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case in CASES:
        if case.kind is None and not case.preload:
            case.make(inputs)
    home = tmp_path / "home"
    report = ingest_paths([inputs], home, validate_with_gx=False)
    check_accounting(home, report)
    failed = {f.path.name for f in report.failed}
    assert failed == {
        "empty.csv",
        "empty.jsonl",
        "empty.parquet",
        "garbage.csv",
        "garbage.jsonl",
        "garbage.parquet",
        "latin1_0.csv",
        "latin1_5000.csv",
        "utf16.csv",
        "renamed_column.csv",
        "truncated.parquet",
        "case_headers.csv",
        "utf16.jsonl",
        "utf16le.jsonl",
        "wide.csv",
        "wide.parquet",
    }
    before = visible_state(home)
    again = ingest_paths([inputs], home, validate_with_gx=False)
    assert {f.path.name for f in again.failed} == failed
    assert {f.status for f in again.files if f.path.name not in failed} == {"skipped"}
    assert visible_state(home) == before
