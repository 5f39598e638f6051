"""Hostile data: SQL injection, path traversal, YAML tags and markup. None may escape its place.

Every value reaches SQL as a bound parameter or a column of a registered batch; identifiers come
from the contract; names that become paths (feature names) are checked against one pattern; YAML
is loaded safely; the report escapes what it shows. Each test asserts where the hostile string
ended up: verbatim as data, or quarantined / rejected with a reason — and that no file appeared
outside the home and reports folders.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import PRED_COLUMNS, pred_row, write_rows
from test_reliability_support import check_accounting, check_consistent, files_under

from trustramp.config import load_config, parse_config
from trustramp.contract import SCHEMAS, ColType, Kind
from trustramp.errors import ConfigError, StoreError
from trustramp.ingest import ingest_paths
from trustramp.ingest.checks import FEATURE_NAME_PATTERN
from trustramp.store.lake import Home, reader


def injections(tmp_path: Path) -> list[str]:
    """SQL injection attempts (no leading or trailing blanks: values are trimmed by contract)."""
    return [
        "'); DROP TABLE predictions; --",
        "' OR 1=1 --",
        '"; DROP VIEW quarantine; --',
        f"x'); COPY (SELECT 42) TO '{tmp_path / 'pwned.csv'}'; --",
        f"'; ATTACH '{tmp_path / 'pwned.duckdb'}' AS p; --",
        "' || (SELECT version()) || '",
        "Robert'); DROP TABLE students;--",
        "$1",
        "?",
        "%s",
        "{0}",
        "\\'; SELECT 1; --",
    ]


TRAVERSALS = [
    "../escaped",
    "../../../../tmp/escaped",
    "/tmp/escaped-absolute",
    "a/b",
    "..",
    ".",
    ".hidden",
    "-dash",
    "x\x00y",
    "C:\\escaped",
    "a" * 101,
    "feat/../../escaped",
]

BASE = {
    Kind.PREDICTIONS: pred_row(0),
    Kind.DECISIONS: {
        "decision_id": "d0",
        "item_id": "i0",
        "decided_at": "2026-11-02T10:00:00Z",
        "human_label": "a",
        "reviewer_id": "r0",
        "action": "accepted",
        "review_seconds": 30,
    },
    Kind.FEEDBACK: {
        "feedback_id": "f0",
        "submitted_at": "2026-11-02T10:00:00Z",
        "feature": "feat",
        "customer_id": "c0",
        "segment": "smb",
        "user_id": "u0",
        "rating": "positive",
        "nps_score": 9,
        "comment": "ok",
        "item_id": "i0",
    },
    Kind.INCIDENTS: {
        "incident_id": "n0",
        "feature": "feat",
        "opened_at": "2026-11-02T10:00:00Z",
        "resolved_at": None,
        "severity": "minor",
        "kind": "bug",
        "title": "t",
    },
}


def expected_fate(kind: Kind, column: str, value: str) -> str | None:
    """Oracle from the contract: None when the row lands, else the quarantine reason."""
    schema = SCHEMAS[kind]
    col = schema.column(column)
    if col.type is ColType.ENUM:
        return f"unknown_value:{column}"
    if column == schema.feature_column:
        import re

        return None if re.fullmatch(FEATURE_NAME_PATTERN, value) else "invalid_name:feature"
    if column == "segment":
        return "unknown_value:segment"  # not a configured segment
    return None


def hostile_rows(kind: Kind, payloads: list[str]) -> list[tuple[dict, str, str | None]]:
    """(row, column, expected reason) for every string or enum column and every payload."""
    schema = SCHEMAS[kind]
    out = []
    for column in (c.name for c in schema.columns if c.type in (ColType.STRING, ColType.ENUM)):
        for k, payload in enumerate(payloads):
            row = dict(BASE[kind])
            row[schema.id_column] = f"{column}-{k}"
            row[column] = payload
            out.append((row, column, expected_fate(kind, column, payload)))
    return out


def frame(home: Path, query: str, params: list | None = None) -> list[tuple]:
    con = reader(Home.at(home))
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("kind", list(Kind), ids=[k.value for k in Kind])
def test_sql_injection_in_every_string_column_is_data(tmp_path: Path, kind: Kind, ext: str) -> None:
    payloads = injections(tmp_path)
    cases = hostile_rows(kind, payloads)
    columns = list(SCHEMAS[kind].names)
    f = write_rows(tmp_path / "in" / f"hostile{ext}", [r for r, _, _ in cases], columns)
    home = tmp_path / "home"
    before = files_under(tmp_path)
    report = ingest_paths([f], home, validate_with_gx=False)
    check_accounting(home, report)
    check_consistent(home)
    schema = SCHEMAS[kind]
    idc = schema.id_column
    landed = {r[0]: r[1:] for r in frame(home, f"SELECT {idc}, * FROM {kind.value}")}
    names = [d[0] for d in reader(Home.at(home)).execute(f"SELECT * FROM {kind.value}").description]
    reasons = dict(frame(home, "SELECT row_number, reason FROM quarantine"))
    for i, (row, column, fate) in enumerate(cases, start=1):
        if fate is None:
            got = landed[row[idc]][names.index(column)]
            assert got == row[column], (column, row[column], got)  # verbatim
        else:
            assert row[idc] not in landed and reasons[i] == fate, (column, row[column])
    # Nothing was dropped, attached or written: every view still answers, no file appeared.
    assert len(landed) == report.files[0].rows_new
    assert not (tmp_path / "pwned.csv").exists() and not (tmp_path / "pwned.duckdb").exists()
    created = files_under(tmp_path) - before
    assert all(p.startswith("home") for p in created), sorted(created)


def test_injection_in_configured_segments_is_bound_not_formatted(tmp_path: Path) -> None:
    evil = "smb'); DROP TABLE predictions; --"
    rows = [pred_row(0, segment=evil), pred_row(1, segment="' OR 1=1 --"), pred_row(2)]
    f = write_rows(tmp_path / "in.csv", rows, PRED_COLUMNS)
    report = ingest_paths([f], tmp_path / "home", segments=[evil, "smb"], validate_with_gx=False)
    check_accounting(tmp_path / "home", report)
    assert frame(
        tmp_path / "home", "SELECT prediction_id, segment FROM predictions ORDER BY 1"
    ) == [
        ("p0", evil),
        ("p2", "smb"),
    ]
    assert report.files[0].reasons == {"unknown_value:segment": 1}  # `OR 1=1` matched nothing


def test_hostile_file_names_headers_and_home_paths_stay_data(tmp_path: Path) -> None:
    home = tmp_path / "ho'me\"; DROP TABLE x; --"
    evil_col = 'x"); DROP TABLE predictions; --'
    rows = [dict(pred_row(0), **{evil_col: "v'); --"}), pred_row(1, confidence=7)]
    f = write_rows(tmp_path / "in'); DROP TABLE quarantine; --.csv", rows)
    report = ingest_paths([f], home, validate_with_gx=False)
    check_accounting(home, report)
    [(extra,)] = frame(home, "SELECT _extra FROM predictions")
    assert json.loads(extra) == {evil_col: "v'); --"}
    assert frame(home, "SELECT file, reason FROM quarantine") == [
        (str(f), "out_of_range:confidence")
    ]
    assert {p.split("/")[0] for p in files_under(tmp_path)} == {home.name, f.name}


def test_path_traversal_in_data_never_becomes_a_path(tmp_path: Path) -> None:
    rows = [pred_row(i, feature=t) for i, t in enumerate(TRAVERSALS)]
    n = len(rows)
    rows += [
        pred_row(n + i, prediction_id=t, item_id=t, customer_id=t, model_version=t)
        for i, t in enumerate(TRAVERSALS)
    ]
    f = write_rows(tmp_path / "in" / "p.jsonl", rows, PRED_COLUMNS)
    decisions = [
        {"decision_id": t, "item_id": t, "decided_at": "2026-11-03T00:00:00Z", "human_label": "a"}
        for t in TRAVERSALS
    ]
    d = write_rows(tmp_path / "in" / "d.csv", decisions)
    home, reports = tmp_path / "home", tmp_path / "reports"
    report = ingest_paths([f, d], home, validate_with_gx=False)
    check_accounting(home, report)
    assert report.files[0].reasons == {"invalid_name:feature": n}
    ids = {r[0] for r in frame(home, "SELECT prediction_id FROM predictions")}
    assert ids == set(TRAVERSALS)  # as ids they are data, verbatim
    decided = frame(home, "SELECT decision_id, feature FROM decisions")
    assert {r[0] for r in decided} == set(TRAVERSALS) and {r[1] for r in decided} == {"feat"}
    partitions = {p.relative_to(home / "lake") for p in (home / "lake").glob("*/*")}
    assert {str(p) for p in partitions} == {"predictions/feature=feat", "decisions/feature=feat"}

    from trustramp.pipeline import evaluate

    result = evaluate(
        home=home,
        reports=reports,
        as_of=dt.date(2026, 11, 3),
        config=parse_config({"feature": "feat"}),
    )
    assert result.run_dir == reports / "feat" / "2026-11-03"
    top = {p.split("/")[0] for p in files_under(tmp_path)}
    assert top == {"in", "home", "reports"}
    assert all(".." not in p.parts for p in (home.rglob("*"))) and not Path("/tmp/escaped").exists()


@pytest.mark.parametrize("feature", [*TRAVERSALS, "x'); DROP TABLE predictions; --"])
def test_hostile_config_feature_is_rejected_before_any_file_is_written(
    tmp_path: Path, feature: str
) -> None:
    from trustramp.pipeline import evaluate

    with pytest.raises((StoreError, ConfigError), match="feature"):
        evaluate(
            home=tmp_path / "home",
            reports=tmp_path / "reports",
            as_of=dt.date(2026, 11, 3),
            config=parse_config({"feature": feature}),
        )
    assert files_under(tmp_path) == set()


YAML_ATTACKS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "feature: !!python/object/apply:os.system ['touch {marker}']",
    "feature: !!python/object/apply:subprocess.check_output [['touch', '{marker}']]",
    "feature: !!python/name:os.system",
    "feature: !!python/object/new:builtins.str ['x']",
    "feature: !!python/module:os",
    "feature: !custom x",
    "segments: !!set {{a: null}}",
]


@pytest.mark.parametrize("text", YAML_ATTACKS)
def test_yaml_with_custom_tags_is_refused_and_runs_nothing(tmp_path: Path, text: str) -> None:
    marker = tmp_path / "pwned"
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text(text.format(marker=marker))
    with pytest.raises(ConfigError, match=r"rollout\.yaml"):
        load_config(cfg)
    assert not marker.exists()


def _alias_bomb(levels: int) -> str:
    """The "billion laughs" of YAML: each level lists the previous one ten times."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    lines.append(f"segments: *a{levels}")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """10^7 strings behind 600 bytes: refused at the first alias, with a short message."""
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text(_alias_bomb(6))
    with pytest.raises(ConfigError, match=r"rollout\.yaml: not valid YAML: .*aliases") as err:
        load_config(cfg)
    assert len(str(err.value)) < 1000


def test_a_single_anchor_and_alias_is_refused_too(tmp_path: Path) -> None:
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text("feature: &f triage\nsegments: [*f]\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_config(cfg)


def test_oversized_config_is_refused_unread(tmp_path: Path) -> None:
    from trustramp.config import MAX_CONFIG_BYTES

    cfg = tmp_path / "rollout.yaml"
    cfg.write_text("feature: triage\n" + "#" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"at most 1,000,000"):
        load_config(cfg)


def test_config_errors_echo_a_bounded_piece_of_a_huge_value(tmp_path: Path) -> None:
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text("routing:\n  auto: '" + "9" * 500_000 + "x'\n")
    with pytest.raises(ConfigError, match=r"routing\.auto") as err:
        load_config(cfg)
    message = str(err.value)
    assert len(message) < 1000 and "500,003 characters" in message


def test_markup_in_data_and_config_is_escaped_in_the_report(tmp_path: Path) -> None:
    """End to end: hostile segment and model-version names from the input files to the HTML."""
    from trustramp.demo import demo_config, generate
    from trustramp.pipeline import evaluate
    from trustramp.report import ReportInputs, render_report

    seg = "<script>alert('segment')</script>"
    version = "<img src=x onerror=alert(1)>'; DROP TABLE predictions; --"
    manifest = generate(
        tmp_path / "in",
        n_predictions=1200,
        days=6,
        seed=3,
        n_customers=6,
        n_feedback=10,
        segments=("smb", seg),
        model_versions=("v1", version),
    )
    raw = demo_config(manifest)
    raw["statistics"] = {**raw.get("statistics", {}), "bootstrap_reps": 100}
    cfg = parse_config(raw)
    home, reports = tmp_path / "home", tmp_path / "reports"
    check_accounting(
        home, ingest_paths([tmp_path / "in"], home, segments=cfg.segments, validate_with_gx=False)
    )
    result = evaluate(home=home, reports=reports, as_of=manifest.end, config=cfg)
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert seg in verdict["segments"]["order"] and verdict["model_version"] == version  # verbatim
    metrics = pd.read_parquet(result.run_dir / "metrics.parquet")
    assert seg in set(metrics["segment"].dropna()) and version in set(
        metrics["model_version"].dropna()
    )
    html = render_report(ReportInputs(verdict=verdict, metrics=metrics))
    assert "<script" not in html.lower() and "<img" not in html.lower()  # no live markup
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert {p.split("/")[0] for p in files_under(tmp_path)} == {"in", "home", "reports"}
