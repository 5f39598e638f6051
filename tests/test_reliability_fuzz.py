"""Property-based fuzzing of the CSV and JSON Lines paths (hypothesis, derandomized, bounded).

Whatever the bytes, ingest never raises: a file either lands (rows in = landed + identical
repeats + quarantined, each count equal to what the catalog shows) or fails alone with a message
naming it. Valid rows land verbatim; nothing of a failed file is visible.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import tempfile
from pathlib import Path

from conftest import PRED_COLUMNS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability_support import check_accounting, check_consistent

from trustramp.ingest import ingest_paths
from trustramp.store.lake import Home, reader

FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values that are valid for each column, to mix with hostile text.
VALID: dict[str, list[str]] = {
    "prediction_id": ["p0", "p1", "p2", "p3"],  # a small pool: repeats and conflicts happen
    "item_id": ["i0", "i1", "i2"],
    "feature": ["feat", "other-feature"],
    "model_version": ["v1", "v2"],
    "predicted_at": ["2026-11-01T10:00:00Z", "2026-11-02 23:59:59+02:00", "2026-11-03"],
    "segment": ["smb", "enterprise", "internal", "mid_market"],
    "customer_id": ["c0", "c1"],
    "mode": ["shadow", "suggestion", "AUTONOMOUS"],
    "predicted_label": ["a", "b"],
    "confidence": ["0", "0.5", "1", "0.99"],
    "latency_ms": ["0", "12.5", ""],
    "status": ["ok", "error", "timeout", "fallback", ""],
}
NASTY = [
    "NaN",
    "-inf",
    "1e309",
    "-0.0",
    "'); DROP TABLE predictions; --",
    "../../etc/passwd",
    '"',
    ",",
    "\n",
    "\r\n",
    "\x00",
    "\ufeff",
    "  ",
    "é",
    "🙂",
    "9" * 40,
]
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


def field_value(column: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(VALID[column]), st.sampled_from(NASTY), text)


row = st.fixed_dictionaries({c: field_value(c) for c in PRED_COLUMNS})


def ingest_file(data: bytes, suffix: str, **kw: object) -> tuple[Path, dict]:
    """Ingest `data` as one file into a fresh home; assert the invariant; return what landed."""
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-"))
    path = tmp / f"in{suffix}"
    path.write_bytes(data)
    home = tmp / "home"
    report = ingest_paths([path], home, validate_with_gx=False, **kw)  # must not raise
    [f] = report.files
    assert f.status in ("ingested", "failed"), f
    check_accounting(home, report)
    check_consistent(home)
    con = reader(Home.at(home))
    try:
        landed = {
            r[0]: r
            for r in con.sql("SELECT prediction_id, item_id, feature FROM predictions").fetchall()
        }
    finally:
        con.close()
    return path, {"file": f, "landed": landed}


def csv_bytes(rows: list[dict[str, str]], line_end: str) -> bytes:
    """Every field quoted: Python's minimal quoting leaves a bare \r unquoted, which any CSV
    reader (ours included) rightly takes for a line break."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=line_end, quoting=csv.QUOTE_ALL)
    w.writerow(PRED_COLUMNS)
    for r in rows:
        w.writerow([r[c] for c in PRED_COLUMNS])
    return buf.getvalue().encode("utf-8")


@FUZZ
@given(st.lists(row, max_size=12), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_fuzzed_well_quoted_csv(rows: list[dict[str, str]], line_end: str, bom: bool) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + csv_bytes(rows, line_end)
    _, out = ingest_file(data, ".csv")
    f = out["file"]
    assert f.status == "ingested", f.error  # properly quoted UTF-8 CSV always reads
    assert f.rows_read == len(rows)
    given_ids = {r["prediction_id"].strip() for r in rows}
    for pid, item, _feature in out["landed"].values():
        assert pid in given_ids  # verbatim (trimmed), never altered
        assert any(r["prediction_id"].strip() == pid and r["item_id"].strip() == item for r in rows)


raw_line = st.lists(
    st.one_of(
        st.sampled_from(list(itertools.chain(*VALID.values()))), st.sampled_from(NASTY), text
    ),
    min_size=0,
    max_size=15,
).map(",".join)


@FUZZ
@given(st.lists(raw_line, max_size=12), st.sampled_from(["\n", "\r\n", "\r"]))
def test_fuzzed_raw_csv_lines(lines: list[str], line_end: str) -> None:
    """Unquoted fields with stray quotes, separators and line breaks: any structure at all."""
    data = line_end.join([",".join(PRED_COLUMNS), *lines]).encode("utf-8")
    _, out = ingest_file(data, ".csv")
    f = out["file"]
    assert f.status == "ingested" or "cannot parse" in (f.error or "") or "UTF-8" in (f.error or "")


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    text,
    st.sampled_from(NASTY),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
json_row = st.fixed_dictionaries(
    {c: st.one_of(st.sampled_from(VALID[c]), json_value) for c in PRED_COLUMNS},
    optional={"extra": json_value},
)
json_line = st.one_of(
    json_row.map(json.dumps),
    json_value.map(json.dumps),
    text,
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


@FUZZ
@given(st.lists(json_line, max_size=12), st.binary(max_size=8))
def test_fuzzed_json_lines(lines: list[str], tail: bytes) -> None:
    """A good first line tells the columns; after it, any JSON, any text, any bytes."""
    first = json.dumps({c: VALID[c][0] for c in PRED_COLUMNS})
    body = "\n".join([first, *lines]).encode("utf-8", "surrogatepass") + b"\n" + tail
    _, out = ingest_file(body, ".jsonl")
    f = out["file"]
    assert f.status == "ingested", f.error
    assert "p0" in out["landed"] or f.reasons  # the first line landed, unless a repeat conflicted
