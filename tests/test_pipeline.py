"""The evaluate pipeline end to end on small hand-made data where the right answers are known."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import write_rows

from trustramp.config import Routing, parse_config
from trustramp.errors import NoDataError, NotWritableError, UsageError
from trustramp.pipeline import (
    ThresholdsResult,
    WhatIfResult,
    evaluate,
    ingest,
    recommend_thresholds,
    whatif,
)

AS_OF = dt.date(2026, 11, 20)


def make_logs(root: Path, *, n: int = 3000, seed: int = 3) -> dict[str, int]:
    """Shadow predictions with an extra `doc_type` column; long documents are worse."""
    rng = np.random.default_rng(seed)
    preds, decs = [], []
    truth = {"short": 0, "long": 0}
    for i in range(n):
        day = dt.date(2026, 11, 5) + dt.timedelta(days=i % 8)
        doc = "long" if i % 4 == 0 else "short"
        conf = float(np.round(rng.uniform(0.85, 1.0), 3))
        right = rng.random() < (conf - (0.25 if doc == "long" else 0.0))
        truth[doc] += int(right)
        preds.append(
            {
                "prediction_id": f"p{i}",
                "item_id": f"i{i}",
                "feature": "docs",
                "model_version": "v1",
                "predicted_at": f"{day.isoformat()}T10:00:00Z",
                "segment": ["smb", "enterprise"][i % 2],
                "customer_id": f"c{i % 40}",
                "mode": "shadow",
                "predicted_label": "a",
                "confidence": conf,
                "latency_ms": 200.0,
                "status": "ok",
                "doc_type": doc,
            }
        )
        decs.append(
            {
                "decision_id": f"d{i}",
                "item_id": f"i{i}",
                "decided_at": f"{(day + dt.timedelta(days=1)).isoformat()}T09:00:00Z",
                "human_label": "a" if right else "b",
                "action": "manual",
            }
        )
    write_rows(root / "p.csv", preds)
    write_rows(root / "d.csv", decs)
    return truth


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pipe")
    truth = make_logs(root / "in")
    cfg = parse_config(
        {
            "feature": "docs",
            "phase": "shadow",
            "phase_started": "2026-11-01",
            "segments": ["smb", "enterprise"],
            "statistics": {
                "edge_case_slices": [
                    {"name": "long documents", "column": "doc_type", "value": "long"}
                ],
                "slices": ["doc_type", 'no_such_column"); DROP TABLE x; --'],
            },
        }
    )
    ingest([root / "in"], home=root / "home", configs=[cfg])
    result = evaluate(home=root / "home", reports=root / "reports", as_of=AS_OF, config=cfg)
    return {"result": result, "truth": truth, "root": root, "cfg": cfg, "home": root / "home"}


def test_edge_case_slices_are_checked_from_the_data(run: dict) -> None:
    v = json.loads((run["result"].run_dir / "verdict.json").read_text())
    [item] = [i for i in v["checklists"]["model"] if i["item"].startswith("Edge case")]
    assert "long documents" in item["evidence"]
    assert run["result"].evidence.edge_cases["long documents"].k == run["truth"]["long"]
    assert run["result"].evidence.edge_cases["long documents"].n == 750


def test_slice_audit_flags_the_worse_slice(run: dict) -> None:
    v = json.loads((run["result"].run_dir / "verdict.json").read_text())
    audit = {(r["column"], r["value"]): r for r in v["slice_audit"]}
    assert audit[("doc_type", "long")]["flag"] == "worse"
    assert audit[("doc_type", "short")]["flag"] == "ok"
    assert audit[("doc_type", "long")]["n"] == 750
    # A hostile column name is just a name: every row is "(missing)", nothing else happens.
    hostile = [r for r in v["slice_audit"] if r["column"].startswith("no_such_column")]
    assert [r["value"] for r in hostile] == ["(missing)"] and hostile[0]["n"] == 3000


def test_accuracy_criterion_counts_equal_the_data(run: dict) -> None:
    ev = run["result"].evidence
    assert ev.accuracy["all"].n == 3000
    assert ev.accuracy["all"].k == run["truth"]["long"] + run["truth"]["short"]
    assert ev.model_version == "v1"


def test_default_config_without_phase_start_evaluates(tmp_path: Path) -> None:
    """The playbook defaults have no phase_started: the verdict holds (duration unknown) and the
    thresholds are the certified ones, with the progression marked as not applied."""
    make_logs(tmp_path / "in", n=600)
    cfg = parse_config({"feature": "docs", "segments": ["smb", "enterprise"]})
    ingest([tmp_path / "in"], home=tmp_path / "home", configs=[cfg])
    result = evaluate(home=tmp_path / "home", reports=tmp_path / "r", as_of=AS_OF, config=cfg)
    assert result.verdict.to_dict()["verdict"] == "HOLD"
    assert result.thresholds.stage.startswith("not applied")
    assert "stage: not applied" in (result.run_dir / "thresholds.yaml").read_text()


# -- the notebook API: dates as strings, typed results that show themselves -------------------------

DATA_DAYS = (dt.date(2026, 11, 5), dt.date(2026, 11, 12))
"""make_logs' prediction days (i % 8 days from Nov 5)."""


@pytest.mark.parametrize(
    "as_of",
    [
        "2026-11-20",
        " 2026-11-20 ",
        "2026-11-19T23:30:00-05:00",  # 04:30 UTC on the 20th
        dt.datetime(2026, 11, 20, 17, 5),
        dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    ],
)
def test_the_api_takes_dates_as_iso_strings_and_datetimes(
    run: dict, tmp_path: Path, as_of: object
) -> None:
    by_date = recommend_thresholds(home=run["home"], as_of=AS_OF, config=run["cfg"])
    th = recommend_thresholds(home=run["home"], as_of=as_of, config=run["cfg"])
    assert isinstance(th, ThresholdsResult) and th.as_of == AS_OF
    assert th.to_yaml() == by_date.to_yaml()
    w = whatif({"auto": 0.9}, home=run["home"], as_of=as_of, config=run["cfg"])
    assert isinstance(w, WhatIfResult) and w.as_of == AS_OF and w.policy["auto"] == 0.9
    assert set(w.summary["policy"]) == {"proposed", "current"}


def test_evaluate_takes_a_string_and_its_result_shows_itself(run: dict, tmp_path: Path) -> None:
    result = evaluate(home=run["home"], reports=tmp_path, as_of="2026-11-20", config=run["cfg"])
    assert result.as_of == AS_OF and result.run_dir == tmp_path / "docs" / "2026-11-20"
    v = result.verdict.to_dict()
    text = repr(result)
    assert "\n" not in text and len(text) < 300
    assert f"feature='docs', as_of=2026-11-20, verdict={v['verdict']}, phase=shadow" in text
    page = result._repr_html_()
    assert f"docs as of 2026-11-20: {v['verdict']}" in page
    firing = [a for a in v["alerts"] if a.get("level")]
    assert page.count("<table") == 1 + bool(firing)  # the criteria, and the alerts firing
    assert ("<h4>Alerts firing</h4><p><em>none</em></p>" in page) == (not firing)
    for c in v["criteria"]:
        assert html.escape(c["name"]) in page
    assert f"{v['data']['predictions']:,} predictions" in page


def test_threshold_and_whatif_results_show_themselves(run: dict) -> None:
    th = recommend_thresholds(home=run["home"], as_of=AS_OF, config=run["cfg"])
    line = repr(th)
    assert line.startswith("ThresholdsResult(feature='docs', as_of=2026-11-20, stage=")
    assert "\n" not in line
    bands = th.bands()
    assert list(bands["band"]) == ["auto", "confirm", "review", "human"]
    page = th._repr_html_()
    assert "<table" in page and all(f"<td>{b}</td>" in page for b in bands["band"])
    w = whatif({"auto": 0.9, "confirm": 0.7}, home=run["home"], as_of=AS_OF, config=run["cfg"])
    per_day = w.workload.groupby("policy")["human_workload"].mean()
    assert w.workload_per_day() == pytest.approx(per_day.to_dict())
    line = repr(w)
    assert "\n" not in line and "auto=0.9 confirm=0.7 review=0.6" in line
    assert f"proposed {per_day['proposed']:,.0f}" in line
    assert w._repr_html_().count("<table") == 2


def test_whatif_takes_a_closed_band_in_the_config_as_not_offered(run: dict) -> None:
    cfg = run["cfg"].model_copy(update={"routing": Routing(auto=False)})
    w = whatif({"confirm": 0.7}, home=run["home"], as_of=AS_OF, config=cfg)
    assert w.current["auto"] is None and w.policy["auto"] is None
    auto = w.summary[w.summary["band"] == "auto"]
    assert set(auto["policy"]) == {"proposed", "current"} and (auto["items"] == 0).all()
    # everything reaches people; the confirm band takes what auto would have
    total = w.summary[w.summary["policy"] == "current"]["items"].sum()
    assert w.workload_per_day()["current"] * w.workload["day"].nunique() == pytest.approx(total)
    assert "auto=closed confirm=0.7 review=0.6" in repr(w)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("20-11-2026", "as_of '20-11-2026' is not a date; expected YYYY-MM-DD"),
        ("yesterday", "is not a date"),
        (20261120, "as_of must be a date or a YYYY-MM-DD string, got int"),
        ("0001-01-05", "as-of 0001-01-05 is too early"),
    ],
)
def test_a_bad_as_of_is_a_usage_error(run: dict, tmp_path: Path, value: object, match: str) -> None:
    with pytest.raises(UsageError, match=match) as e:
        evaluate(home=run["home"], reports=tmp_path, as_of=value, config=run["cfg"])  # type: ignore[arg-type]
    assert isinstance(e.value, ValueError) and e.value.exit_code == 2
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "as_of", [dt.date(2027, 1, 1), dt.date(2026, 10, 1), dt.date(9999, 12, 31)]
)
def test_a_window_without_predictions_names_the_data_range(
    run: dict, tmp_path: Path, as_of: dt.date
) -> None:
    """Before the first or long after the last data day: exit 6 with the range, not a crash."""
    first, last = DATA_DAYS
    start = as_of - dt.timedelta(days=run["cfg"].statistics.window_days - 1)
    expected = (
        f"no predictions for docs in the window {start}..{as_of}; "
        f"the data covers {first}..{last}: pass --as-of {last}"
    )
    for call in (
        lambda: evaluate(home=run["home"], reports=tmp_path, as_of=as_of, config=run["cfg"]),
        lambda: recommend_thresholds(home=run["home"], as_of=as_of, config=run["cfg"]),
        lambda: whatif({"auto": 0.9}, home=run["home"], as_of=as_of, config=run["cfg"]),
    ):
        with pytest.raises(NoDataError) as e:
            call()
        assert str(e.value) == expected and e.value.exit_code == 6
    assert not any(tmp_path.iterdir())


def test_a_feature_the_lake_lacks_names_the_features_it_has(run: dict, tmp_path: Path) -> None:
    with pytest.raises(
        NoDataError, match=r"no predictions for feature 'nope' .* the lake has 'docs'"
    ):
        evaluate("nope", home=run["home"], reports=tmp_path, as_of=AS_OF, config=run["cfg"])


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        ({"auto": 0.7, "confirm": 0.9}, "confirm 0.9 is above auto 0.7"),
        ({"auto": 0.7}, "the config's confirm 0.8 is above auto 0.7"),
        ({"review": 0.85}, "review 0.85 is above the config's confirm 0.8"),
        ({"manual": 0.5}, "unknown band"),
    ],
)
def test_whatif_bands_out_of_order_are_a_usage_error(
    run: dict, policy: dict[str, float], match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        whatif(policy, home=run["home"], as_of=AS_OF, config=run["cfg"])


def test_ingest_of_a_path_that_does_not_exist_says_so(tmp_path: Path) -> None:
    """The nightly deployment's landing folder missing was "unknown file type ''"."""
    missing = tmp_path / "data" / "landing"
    with pytest.raises(UsageError, match=rf"not found: {missing} \(no such file or folder\)"):
        ingest([missing], home=tmp_path / "home")
    assert not (tmp_path / "home").exists()  # refused before anything was created


# -- a home or reports folder that cannot be written --------------------------------------------------


def _blocked(tmp_path: Path) -> Path:
    """A regular file where a folder is expected: writes under it fail for every user (tests
    run as root here, for whom a read-only mode stops nothing)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker


def test_reports_that_cannot_be_written_are_one_clear_error(run: dict, tmp_path: Path) -> None:
    reports = _blocked(tmp_path) / "reports"
    with pytest.raises(NotWritableError) as e:
        evaluate(home=run["home"], reports=reports, as_of=AS_OF, config=run["cfg"])
    message = str(e.value)
    assert "\n" not in message and e.value.exit_code == 7
    assert message.startswith("cannot write the run's outputs at ")
    assert "Not a directory (a file stands where a folder is expected" in message


def test_a_home_that_cannot_be_created_is_one_clear_error(run: dict, tmp_path: Path) -> None:
    home = _blocked(tmp_path) / "home"
    for call in (
        lambda: evaluate(home=home, reports=tmp_path / "r", as_of=AS_OF, config=run["cfg"]),
        lambda: recommend_thresholds(home=home, as_of=AS_OF, config=run["cfg"]),
    ):
        with pytest.raises(NotWritableError, match=r"cannot write the home folder .*a-file"):
            call()


@contextlib.contextmanager
def _mounted(target: Path, *steps: tuple[str, ...]) -> Iterator[Path]:
    """Mount a real file system at ``target`` (each step is one ``mount`` call), or skip.

    Needs root with CAP_SYS_ADMIN, which this machine and CI have; elsewhere the test is skipped
    with the reason.
    """
    target.mkdir(parents=True, exist_ok=True)
    mounted = 0
    try:
        for step in steps:
            done = subprocess.run(["mount", *step, str(target)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot mount here: {done.stderr.strip() or 'mount failed'}")
            mounted += 1
        yield target
    finally:
        for _ in range(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


def test_a_read_only_reports_folder_is_one_clear_error(run: dict, tmp_path: Path) -> None:
    """A reports folder on a read-only file system (a bind mount, remounted read-only: root
    is refused there too), or one without write permission for other users."""
    reports = tmp_path / "reports"
    reports.mkdir()
    if os.geteuid() != 0:
        reports.chmod(0o500)
        try:
            with pytest.raises(NotWritableError, match="Permission denied"):
                evaluate(home=run["home"], reports=reports, as_of=AS_OF, config=run["cfg"])
        finally:
            reports.chmod(0o700)
        return
    source = tmp_path / "source"
    source.mkdir()
    with (
        _mounted(reports, ("--bind", str(source)), ("-o", "remount,bind,ro")),
        pytest.raises(NotWritableError) as e,
    ):
        evaluate(home=run["home"], reports=reports, as_of=AS_OF, config=run["cfg"])
    message = str(e.value)
    assert "\n" not in message and e.value.exit_code == 7
    assert message.startswith("cannot write the run's outputs at ")
    assert "Read-only file system" in message
    assert not any(source.iterdir())  # nothing half-written reached the folder


def test_a_full_disk_while_publishing_leaves_the_published_run_whole(
    run: dict, tmp_path: Path
) -> None:
    """A real full disk (ENOSPC) while a run's outputs are written.

    The reports folder is a tiny tmpfs: the first run publishes, then a filler file takes all
    but a few kilobytes, so the next run's outputs hit "No space left on device" partway. The
    run published before must stay whole, nothing half-written may remain, and the history
    must not record the failed run.
    """
    reports = tmp_path / "reports"
    with _mounted(reports, ("-t", "tmpfs", "-o", "size=4m", "tmpfs")):
        first = evaluate(home=run["home"], reports=reports, as_of=AS_OF, config=run["cfg"])
        before = {p.name: p.read_bytes() for p in first.run_dir.iterdir()}
        runs_before = sorted((run["home"] / "state" / "runs").iterdir())
        free = os.statvfs(reports)
        filler = reports / "filler"
        with filler.open("wb") as f:  # leave about 8 KiB: less than one run's outputs
            f.write(b"\0" * max(0, free.f_bavail * free.f_frsize - 8192))
        with pytest.raises(NotWritableError) as e:
            evaluate(home=run["home"], reports=reports, as_of=AS_OF, config=run["cfg"])
        assert re.fullmatch(
            r"cannot write the run's outputs at \S+: No space left on device "
            r"\(the disk is full; free some space and run again\)",
            str(e.value),
        )
        assert {p.name: p.read_bytes() for p in first.run_dir.iterdir()} == before
        assert [p.name for p in (reports / "docs").iterdir()] == ["2026-11-20"]  # no temporaries
        assert sorted((run["home"] / "state" / "runs").iterdir()) == runs_before


def test_a_landing_folder_that_changes_during_the_walk(tmp_path: Path) -> None:
    """Another process adds and removes sub-folders while the files are listed (an upstream
    writer's temporaries): the listing skips what vanished instead of raising FileNotFoundError
    (Path.rglob did in 28 of 150 walks in this set-up)."""
    import shutil
    import threading

    from trustramp.ingest import expand_paths

    landing = tmp_path / "landing"
    for i in range(40):
        write_rows(landing / f"day{i}" / "p.csv", [{"prediction_id": f"p{i}"}])
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            tmp = landing / f".upload-{n}" / "a" / "b"
            tmp.mkdir(parents=True)
            (tmp / "x.csv").write_text("prediction_id\n")
            shutil.rmtree(landing / f".upload-{n}")
            n += 1

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        listings = [expand_paths([landing]) for _ in range(150)]
    finally:
        stop.set()
        writer.join()
    expected = sorted(landing / f"day{i}" / "p.csv" for i in range(40))
    for files in listings:
        assert [f for f in files if ".upload-" not in str(f)] == expected


def test_the_ingest_report_shows_itself(tmp_path: Path) -> None:
    from conftest import pred_row

    write_rows(tmp_path / "in" / "p<b>.csv", [pred_row(i) for i in range(12)])
    (tmp_path / "in" / "empty.csv").write_text("")
    report = ingest([tmp_path / "in"], home=tmp_path / "home")
    line = repr(report)
    assert "\n" not in line
    assert (
        line == "IngestReport(files=2, failed=1, rows_read=12, new=12, duplicate=0, quarantined=0)"
    )
    page = report._repr_html_()
    assert page.count("<tr>") == 3 and "p&lt;b&gt;.csv" in page and "<b>" not in page
    (failed,) = report.failed
    assert html.escape(failed.error or "") in page


@pytest.mark.parametrize("command", [["evaluate"], ["thresholds", "recommend"]])
def test_the_cli_without_feature_on_a_lake_without_the_default_one(
    run: dict, tmp_path: Path, command: list[str]
) -> None:
    """No --feature, no --config: the playbook's feature (demo-triage) is not in this lake."""
    from click.testing import CliRunner

    from trustramp.cli import main

    reports = ["--reports", str(tmp_path)] if command == ["evaluate"] else []
    args = [*command, "--home", str(run["home"]), *reports, "--as-of", "2026-11-20"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 6
    assert r.output.strip() == (
        f"Error: no predictions for feature 'demo-triage' in {run['home'].resolve()}; the lake "
        "has 'docs': pass --feature NAME (or a --config whose feature is one of them)"
    )
