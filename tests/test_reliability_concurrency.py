"""Concurrency: writers serialize, nothing is corrupted, readers never see half a run.

Real processes on one home: two ingests at once; a nightly (ingest, then evaluate) with an
on-demand evaluate at the same time. Meanwhile a reader in this process polls the catalog (its
own connections and the catalog file, as an outside client would) and the run folder, and checks
every state it sees: each committed file whole, counts never going back, the run folder complete.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import yaml
from conftest import PRED_COLUMNS, pred_row, write_rows
from test_reliability_support import canonical, check_consistent, visible_state

from trustramp.store.lake import Home, open_catalog, reader

BARRIER = """
import json, sys, time
from pathlib import Path
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
{imports}
ready.touch()
while not go.exists():
    time.sleep(0.01)
"""


def start(code: str, tmp: Path, name: str, imports: str) -> tuple[subprocess.Popen, Path]:
    """Start a Python process that imports, says it is ready, waits for `go`, then runs `code`."""
    ready = tmp / f"ready-{name}"
    script = BARRIER.format(imports=imports) + textwrap.dedent(code)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ready), str(tmp / "go")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, ready


def run_together(
    procs: list[tuple[subprocess.Popen, Path]], tmp: Path, poll: Callable[[], None]
) -> tuple[list[str], int]:
    """Release the processes at once; poll until all have finished; return their outputs."""
    deadline = time.monotonic() + 120
    while not all(r.exists() for _, r in procs):
        assert time.monotonic() < deadline, [p.poll() for p, _ in procs]
        time.sleep(0.02)
    (tmp / "go").touch()
    polls = 0
    errors: list[BaseException] = []

    def poller() -> None:
        nonlocal polls
        try:
            while any(p.poll() is None for p, _ in procs):
                poll()
                polls += 1
        except BaseException as e:  # surfaced below
            errors.append(e)

    t = threading.Thread(target=poller)
    t.start()
    outs = []
    for p, _ in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(out)
    t.join()
    if errors:
        raise errors[0]
    poll()  # and once more at rest
    return outs, polls


def whole_files(con: duckdb.DuckDBPyConnection) -> int:
    """Assert every committed file is wholly visible on `con`; return the rows visible."""
    log = {
        s: (kind, new, quarantined)
        for s, kind, new, quarantined in con.sql(
            "SELECT source, kind, rows_new, rows_quarantined FROM ingest_log"
        ).fetchall()
    }
    total = 0
    for kind in ("predictions", "decisions"):
        for src, n in con.sql(f"SELECT _source, count(*) FROM {kind} GROUP BY ALL").fetchall():
            assert src in log and log[src][0] == kind and log[src][1] == n, (kind, src, n)
            total += n
    for src, (kind, new, _) in log.items():
        if kind in ("predictions", "decisions") and new:
            seen = con.execute(f"SELECT count(*) FROM {kind} WHERE _source = ?", [src]).fetchall()
            assert seen == [(new,)], (src, seen, new)  # a commit record and all of its rows
    for src, n in con.sql("SELECT source, count(*) FROM quarantine GROUP BY ALL").fetchall():
        assert log[src][2] == n, (src, n)
    return total


def test_a_reader_sees_one_snapshot_until_it_attaches_again(tmp_path: Path) -> None:
    """The property behind "never half a file": a reader's views list the commit records first,
    then only their files, and keep that list (globbing inside each query could pair a new
    commit record with a partial listing of its parts)."""
    from trustramp.ingest import ingest_paths
    from trustramp.store.lake import attach_views

    home = tmp_path / "home"
    ingest_paths(
        [write_rows(tmp_path / "a.csv", [pred_row(0)], PRED_COLUMNS)], home, validate_with_gx=False
    )
    con = reader(Home.at(home))
    try:
        ingest_paths(
            [
                write_rows(
                    tmp_path / "b.csv", [pred_row(1), pred_row(2, confidence=9)], PRED_COLUMNS
                )
            ],
            home,
            validate_with_gx=False,
        )
        count = (
            "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM quarantine), "
            "(SELECT count(*) FROM ingest_log)"
        )
        assert con.sql(count).fetchall() == [(1, 0, 1)]  # as it was when the reader opened
        attach_views(con, Home.at(home))
        assert con.sql(count).fetchall() == [(2, 1, 2)]
        assert whole_files(con) == 2
    finally:
        con.close()


# -- two ingests -------------------------------------------------------------------------------


def ingest_inputs(d: Path) -> list[Path]:
    """Files whose rows spread over many days: many parts per file, a long commit to watch."""
    files = []
    for f in range(8):
        rows = [
            pred_row(
                f * 1000 + i,
                predicted_at=f"2026-10-{1 + i % 28:02d}T10:00:00Z",
                confidence=1.5 if i % 17 == 0 else 0.7,
            )
            for i in range(120)
        ]
        files.append(write_rows(d / f"p{f}.csv", rows, PRED_COLUMNS))
    decisions = [
        {
            "decision_id": f"d{i}",
            "item_id": f"i{i}",
            "decided_at": "2026-10-29T00:00:00Z",
            "human_label": "a",
        }
        for i in range(3000, 3120, 3)
    ]
    files.append(write_rows(d / "decisions.csv", decisions))
    return files


INGEST = """
from trustramp.ingest import ingest_paths
stamps = []
report = ingest_paths({paths!r}, {home!r}, validate_with_gx=False,
                      on_file=lambda i, n, p: stamps.append(time.time()))
print(json.dumps({{"stamps": stamps, "status": [f.status for f in report.files]}}))
"""


@pytest.mark.slow
def test_two_ingests_at_once_serialize_and_readers_see_whole_files(tmp_path: Path) -> None:
    files = ingest_inputs(tmp_path / "in")
    home = tmp_path / "home"
    a = [*files[:5], files[8]]  # file p3 (the decisions' items), p4 in both
    b = files[3:8]
    imports = "import trustramp.ingest"
    procs = [
        start(INGEST.format(paths=[str(p) for p in x], home=str(home)), tmp_path, n, imports)
        for n, x in (("a", a), ("b", b))
    ]
    seen: list[int] = []

    def poll() -> None:
        con = reader(Home.at(home))
        try:
            seen.append(whole_files(con))
        finally:
            con.close()
        if (home / "catalog.duckdb").exists():  # an outside client of the catalog file
            cat = open_catalog(home)  # its views' paths are relative to the home
            try:
                whole_files(cat)
            finally:
                cat.close()

    outs, polls = run_together(procs, tmp_path, poll)
    runs = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    first, second = sorted(runs, key=lambda r: r["stamps"][0])
    assert max(first["stamps"]) < min(second["stamps"])  # one writer at a time
    assert polls >= 5 and seen == sorted(seen)  # readers saw progress, never a step back
    # p3 and p4 were offered twice: one run ingested them, the other skipped them.
    assert sorted(runs[0]["status"] + runs[1]["status"]).count("skipped") == 2
    from trustramp.ingest import ingest_paths

    ingest_paths(files, tmp_path / "clean", validate_with_gx=False)
    assert visible_state(home) == visible_state(tmp_path / "clean")
    check_consistent(home)


# -- a nightly and an on-demand evaluate -------------------------------------------------------


EVALUATE = """
import datetime as dt
from trustramp.pipeline import evaluate, ingest
if {ingest!r}:
    ingest({ingest!r}, home={home!r}, configs=[{config!r}])
result = evaluate(home={home!r}, reports={reports!r}, as_of=dt.date.fromisoformat({as_of!r}),
                  config={config!r})
doc = result.verdict.to_dict()
print(json.dumps({{"run_id": json.loads((result.run_dir / "verdict.json").read_text())["run_id"],
                   "verdict": doc}}, default=str))
"""


def verdict_of(run_dir: Path) -> tuple[str, str]:
    """(run id, the rest of verdict.json as canonical JSON) of a run folder."""
    doc = json.loads((run_dir / "verdict.json").read_text())
    return doc.pop("run_id"), canon(doc)


def canon(doc: dict[str, Any]) -> str:
    return json.dumps(json.loads(json.dumps(doc, default=str)), sort_keys=True)


@pytest.mark.slow
def test_nightly_and_on_demand_evaluate_at_once(tmp_path: Path) -> None:
    from trustramp.demo import demo_config, generate
    from trustramp.ingest import ingest_paths
    from trustramp.pipeline import evaluate

    m = generate(
        tmp_path / "in",
        n_predictions=800,
        days=6,
        seed=3,
        n_customers=6,
        n_feedback=10,
        segments=("smb", "enterprise"),
    )
    raw = demo_config(m)
    raw["statistics"] = {**raw.get("statistics", {}), "bootstrap_reps": 100}
    cfg = tmp_path / "rollout.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    last_day = [sorted(m.files[k])[-1] for k in ("predictions", "decisions")]
    earlier = [p for fs in m.files.values() for p in fs if p not in last_day]
    home, reports = tmp_path / "home", tmp_path / "reports"
    assert not ingest_paths(earlier, home, segments=raw["segments"], validate_with_gx=False).failed
    before = evaluate(home=home, reports=reports, as_of=m.end, config=cfg)
    run = before.run_dir
    before_written = verdict_of(run)[1]

    fmt = {
        "home": str(home),
        "reports": str(reports),
        "as_of": m.end.isoformat(),
        "config": str(cfg),
    }
    imports = "import trustramp.pipeline, trustramp.evaluate.outputs, trustramp.decide.verdict"
    nightly_code = EVALUATE.format(ingest=[str(p) for p in last_day], **fmt)
    procs = [
        start(nightly_code, tmp_path, "nightly", imports),
        start(EVALUATE.format(ingest=[], **fmt), tmp_path, "on-demand", imports),
    ]
    seen_runs: set[str] = set()

    def poll() -> None:
        # The run folder never goes missing and is always one run's complete output.
        run_id, _ = verdict_of(run)
        # One open of the file (pyarrow opens a path twice, footer then pages, and the folder
        # may be swapped for the next run's in between: two versions, not a torn one).
        pd.read_parquet(io.BytesIO((run / "metrics.parquet").read_bytes()))
        assert (run / "thresholds.yaml").read_text()
        seen_runs.add(run_id)
        con = reader(Home.at(home))
        try:
            whole_files(con)
            for (report,) in con.sql("SELECT report FROM runs").fetchall():
                assert Path(report).exists()  # history points at published folders only
        finally:
            con.close()

    outs, polls = run_together(procs, tmp_path, poll)
    nightly, on_demand = (json.loads(o.strip().splitlines()[-1]) for o in outs)
    assert polls >= 5

    # After: an evaluation now (day cache and all) agrees with one on a fresh copy of the lake:
    # no dirty mark was lost to the race, no cached day is stale.
    clean = tmp_path / "clean"
    shutil.copytree(home, clean / "home", ignore=shutil.ignore_patterns("aggregates", "dirty"))
    again = evaluate(home=home, reports=tmp_path / "again", as_of=m.end, config=cfg)
    fresh = evaluate(home=clean / "home", reports=clean / "reports", as_of=m.end, config=cfg)
    after = canon(fresh.verdict.to_dict())
    assert canon(again.verdict.to_dict()) == after
    pd.testing.assert_frame_equal(canonical(again.metrics), canonical(fresh.metrics))
    # The nightly evaluated after its ingest; the on-demand run saw one whole state or the other.
    assert canon(nightly["verdict"]) == after
    assert canon(on_demand["verdict"]) in {canon(before.verdict.to_dict()), after}
    final_id, final_doc = verdict_of(run)
    assert final_id in {nightly["run_id"], on_demand["run_id"]}
    # Whichever finished last, the folder holds a run on the newest data (a stale on-demand run
    # that finished after the nightly went to `superseded/`).
    assert final_doc == verdict_of(fresh.run_dir)[1] != before_written
    con = reader(Home.at(home))
    try:
        history = {r[0] for r in con.sql("SELECT run_id FROM runs").fetchall()}
    finally:
        con.close()
    assert {nightly["run_id"], on_demand["run_id"]} <= history
    assert seen_runs <= history


@pytest.mark.slow
def test_a_run_on_an_older_lake_never_replaces_a_published_run_on_a_newer_one(
    tmp_path: Path,
) -> None:
    """The on-demand run that read the lake before the nightly ingest and publishes after the
    nightly evaluation: made deterministic with a copy of the lake taken before the ingest."""
    from trustramp.config import parse_config
    from trustramp.demo import demo_config, generate
    from trustramp.ingest import ingest_paths
    from trustramp.pipeline import evaluate

    m = generate(tmp_path / "in", n_predictions=600, days=5, seed=4, n_customers=5, n_feedback=5)
    raw = demo_config(m)
    raw["statistics"] = {**raw.get("statistics", {}), "bootstrap_reps": 100}
    cfg = parse_config(raw)
    last_day = [sorted(m.files[k])[-1] for k in ("predictions", "decisions")]
    earlier = [p for fs in m.files.values() for p in fs if p not in last_day]
    home, old_home, reports = tmp_path / "home", tmp_path / "old-home", tmp_path / "reports"
    assert not ingest_paths(earlier, home, segments=cfg.segments, validate_with_gx=False).failed
    shutil.copytree(home, old_home)  # what the on-demand run read
    assert not ingest_paths(last_day, home, segments=cfg.segments, validate_with_gx=False).failed

    nightly = evaluate(home=home, reports=reports, as_of=m.end, config=cfg)
    stale = evaluate(home=old_home, reports=reports, as_of=m.end, config=cfg)

    published = json.loads((nightly.run_dir / "verdict.json").read_text())
    stale_doc = json.loads((stale.run_dir / "verdict.json").read_text())
    assert published["lake_commits"] > stale_doc["lake_commits"]
    assert stale.run_dir == reports / cfg.feature / "superseded" / f"{m.end}-{stale_doc['run_id']}"
    assert nightly.run_dir == reports / cfg.feature / m.end.isoformat()
    assert verdict_of(nightly.run_dir)[0] != stale_doc["run_id"]  # the nightly's folder stands
    # Nothing lost: the stale run's outputs are whole, and both runs are in their history.
    assert {"verdict.json", "metrics.parquet", "thresholds.yaml", "readiness.html"} <= {
        p.name for p in stale.run_dir.iterdir()
    }
    # A run on the same lake state as the published one replaces it (last publish wins).
    again = evaluate(home=home, reports=reports, as_of=m.end, config=cfg)
    assert again.run_dir == nightly.run_dir
    assert (
        verdict_of(nightly.run_dir)[0]
        == json.loads((again.run_dir / "verdict.json").read_text())["run_id"]
    )
    assert verdict_of(nightly.run_dir)[0] != published["run_id"]
