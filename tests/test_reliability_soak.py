"""Soak: 30 simulated nights in a row in one long-lived process, at a small size.

Each night a new day's files land in the landing folder (predictions, and decisions that include
late ones for earlier days), the whole landing folder is ingested (yesterday's files are skipped
by content hash) and the day is evaluated. Night 12 is a bad night: a file that is not UTF-8
(it fails alone, night after night, until it is replaced by a fixed one on night 15) and a file
with bad rows (quarantined). Night 20 brings a late decision for a day inside the window.

Checked: every night completed; each file landed once; the run history holds one consistent
record per night; the quarantine shows up in the verdicts from the bad night on; sampled nights'
verdicts are reproduced from the lake as it was that night (its committed files only, the day
cache rebuilt from scratch); the nightly process's memory stays flat.

The reproductions run in this process while the soak process goes on (two cores, two processes).
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PRED_COLUMNS, pred_row, write_rows
from test_reliability_support import check_consistent

NIGHTS = 30
BAD_NIGHT, FIXED_NIGHT, LATE_NIGHT = 12, 15, 20
BAD_ROWS = 3  # in badrows.csv, each quarantined
HERE = Path(__file__).resolve()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def night_files(spec: dict[str, Any], night: int) -> list[Path]:
    """The files that land on `night` (1-based)."""
    day = dt.date.fromisoformat(spec["start"]) + dt.timedelta(days=night - 1)
    out = [Path(p) for p in spec["by_day"][day.isoformat()]]
    if night == 1:
        out += [Path(p) for p in spec["once"]]
    out += [Path(p) for p in spec["extra"].get(str(night), [])]
    return out


def soak(spec: dict[str, Any]) -> None:
    """The nightly process: land, ingest, evaluate, record; 30 times."""
    from trustramp.ingest import ingest_paths
    from trustramp.pipeline import evaluate

    root = Path(spec["root"])
    landing, home, reports, log = (root / n for n in ("landing", "home", "reports", "nights"))
    log.mkdir()
    segments = yaml.safe_load(Path(spec["config"]).read_text())["segments"]
    for night in range(1, NIGHTS + 1):
        for f in night_files(spec, night):
            target = landing / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)  # a fixed file replaces its broken version
        t0 = time.monotonic()
        report = ingest_paths([landing], home, segments=segments, validate_with_gx=False)
        t1 = time.monotonic()
        as_of = dt.date.fromisoformat(spec["start"]) + dt.timedelta(days=night - 1)
        result = evaluate(home=home, reports=reports, as_of=as_of, config=spec["config"])
        shutil.copy(result.run_dir / "verdict.json", log / f"{night}-verdict.json")
        gc.collect()
        record = {
            "night": night,
            "as_of": as_of.isoformat(),
            "rss_mb": rss_mb(),
            "sources": sorted(p.stem for p in (home / "state" / "ingest_log").glob("*.parquet")),
            "files": {f.path.name: [f.status, f.source, f.error] for f in report.files},
            "recomputed": [d.isoformat() for d in result.extras["recomputed_days"]],
            "updated": [d.isoformat() for d in result.extras["updated_days"]],
            "seconds": {"ingest": t1 - t0, "evaluate": time.monotonic() - t1},
        }
        tmp = log / f"{night}.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, log / f"{night}.json")


if __name__ == "__main__":
    soak(json.loads(Path(sys.argv[1]).read_text()))
    sys.exit(0)


# -- the test ----------------------------------------------------------------------------------


def prepare(root: Path) -> dict[str, Any]:
    from trustramp.demo import demo_config, generate

    m = generate(
        root / "gen",
        n_predictions=1200,
        days=NIGHTS,
        seed=17,
        n_customers=4,
        n_feedback=20,
        segments=("smb", "enterprise"),
        model_versions=("v1", "v2"),
        n_classes=2,
    )
    raw = demo_config(m)
    raw["statistics"] = {**raw.get("statistics", {}), "bootstrap_reps": 100}
    cfg = root / "rollout.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    by_day: dict[str, list[str]] = {}
    for kind in ("predictions", "decisions"):
        for f in m.files[kind]:
            by_day.setdefault(f.stem.split("-", 1)[1], []).append(str(f))
    extra = root / "extra"
    header = ",".join(PRED_COLUMNS)
    (extra / "bad").mkdir(parents=True)
    (extra / "bad" / "broken.csv").write_bytes(
        (
            header
            + "\n"
            + ",".join(str(v) for v in pred_row(900, predicted_label="café").values())
            + "\n"
        ).encode("latin-1")
    )
    (extra / "fixed").mkdir()
    fixed_row = pred_row(900, feature=m.feature, segment="smb", predicted_at=f"{m.start}T12:00:00Z")
    write_rows(extra / "fixed" / "broken.csv", [fixed_row], PRED_COLUMNS)
    bad_day = m.start + dt.timedelta(days=BAD_NIGHT - 1)
    ok = {"feature": m.feature, "predicted_at": f"{bad_day}T08:00:00Z", "segment": "smb"}
    badrows = [
        pred_row(910, **ok),
        pred_row(911, **{**ok, "confidence": 1.5}),
        pred_row(912, **{**ok, "segment": "mars"}),
        pred_row(913, **{**ok, "mode": "x"}),
    ]
    write_rows(extra / "bad" / "badrows.csv", badrows, PRED_COLUMNS)
    # A late decision for an item of a day inside the window of the late night.
    late_day = m.start + dt.timedelta(days=LATE_NIGHT - 6)
    with Path(by_day[late_day.isoformat()][0]).open(newline="") as f:
        item = next(csv.DictReader(f))["item_id"]
    write_rows(
        extra / "late" / "late-decision.csv",
        [
            {
                "decision_id": "d-late-1",
                "item_id": item,
                "decided_at": f"{m.start + dt.timedelta(days=LATE_NIGHT - 1)}T23:00:00Z",
                "human_label": "late-label",
                "action": "manual",
            }
        ],
    )
    return {
        "root": str(root),
        "config": str(cfg),
        "feature": m.feature,
        "start": m.start.isoformat(),
        "by_day": by_day,
        "once": [str(p) for k in ("feedback", "incidents") for p in m.files[k]],
        "extra": {
            str(BAD_NIGHT): [str(extra / "bad" / "broken.csv"), str(extra / "bad" / "badrows.csv")],
            str(FIXED_NIGHT): [str(extra / "fixed" / "broken.csv")],
            str(LATE_NIGHT): [str(extra / "late" / "late-decision.csv")],
        },
        "late_day": late_day.isoformat(),
    }


def wait_for(path: Path, proc: subprocess.Popen, err: Path) -> dict[str, Any]:  # type: ignore[type-arg]
    while not path.exists():
        if proc.poll() is not None and not path.exists():
            raise AssertionError(err.read_text()[-4000:])
        time.sleep(0.2)
    return json.loads(path.read_text())


def parquet_files(root: Path) -> list[Path]:
    """The Parquet files under `root`, while another process writes there.

    `os.walk`, not `Path.rglob`: the soak process creates and deletes folders meanwhile (its
    ingest's `tmp/run-<id>` staging, the day cache's dirty marks), and rglob (Python 3.11)
    raises FileNotFoundError when a folder vanishes under it; os.walk skips it.
    """
    return sorted(
        Path(folder) / name
        for folder, _, names in os.walk(root)
        for name in names
        if name.endswith(".parquet")
    )


def lake_as_of(home: Path, sources: list[str], dest: Path) -> Path:
    """A new home holding only the committed files of `sources`: the lake as it was that night.

    Only the lake and the commit records are read (no day cache, no history: recomputed from
    scratch); the soak process goes on writing beside them.
    """
    keep = set(sources)
    for sub in ("lake", "state/ingest_log", "state/quarantine"):
        for f in parquet_files(home / sub):
            rel = f.relative_to(home)
            src = f.name[len("part-") :].rsplit("-", 1)[0] if sub == "lake" else f.stem
            if src in keep:  # committed files are never removed: the copy cannot miss them
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, dest / rel)
    return dest


def without_run_id(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    doc.pop("run_id")
    return doc


@pytest.mark.slow
def test_thirty_nights(tmp_path: Path) -> None:
    from trustramp.pipeline import evaluate
    from trustramp.store.lake import Home, reader

    spec = prepare(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    stderr = (tmp_path / "soak.err").open("w")  # a file, not a pipe nobody reads meanwhile
    proc = subprocess.Popen(
        [sys.executable, str(HERE), str(tmp_path / "spec.json")],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )
    home, log = tmp_path / "home", tmp_path / "nights"
    try:
        # Reproduce sampled nights from the lake as it was then, while the soak goes on.
        sampled = sorted({BAD_NIGHT, random.Random(5).randrange(BAD_NIGHT + 1, NIGHTS + 1)})
        for night in sampled:
            rec = wait_for(log / f"{night}.json", proc, tmp_path / "soak.err")
            again = lake_as_of(home, rec["sources"], tmp_path / f"asof-{night}" / "home")
            result = evaluate(
                home=again,
                reports=tmp_path / f"asof-{night}" / "reports",
                as_of=dt.date.fromisoformat(rec["as_of"]),
                config=spec["config"],
            )
            assert without_run_id(result.run_dir / "verdict.json") == without_run_id(
                log / f"{night}-verdict.json"
            ), f"night {night} is not reproducible from the lake"
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr.close()
    assert proc.returncode == 0, (tmp_path / "soak.err").read_text()[-4000:]
    nights = [json.loads((log / f"{n}.json").read_text()) for n in range(1, NIGHTS + 1)]

    # Each file landed once; the broken file failed alone until it was fixed.
    landed: dict[str, int] = {}
    for rec in nights:
        for name, (status, _, error) in rec["files"].items():
            if status == "ingested":
                landed[name] = landed.get(name, 0) + 1
            if status == "failed":
                assert name == "broken.csv" and BAD_NIGHT <= rec["night"] < FIXED_NIGHT, rec
                assert "not valid UTF-8" in error
        if BAD_NIGHT <= rec["night"] < FIXED_NIGHT:
            assert rec["files"]["broken.csv"][0] == "failed"
    assert all(n == 1 for n in landed.values()), landed
    assert nights[FIXED_NIGHT - 1]["files"]["broken.csv"][0] == "ingested"
    # The late decision made its prediction day stale (recomputed, or updated by sums), and
    # only the days it touched.
    late = nights[LATE_NIGHT - 1]
    assert spec["late_day"] in late["recomputed"] + late["updated"]

    # The history: one record per night, consistent with each night's verdict.json.
    con = reader(Home.at(home))
    try:
        runs = con.sql("SELECT as_of, run_id, verdict, report FROM runs ORDER BY as_of").fetchall()
        check_consistent(home)
        quarantined = con.sql("SELECT count(*) FROM quarantine").fetchall()[0][0]
    finally:
        con.close()
    assert [r[0].isoformat() for r in runs] == [rec["as_of"] for rec in nights]
    for (as_of, run_id, verdict, report), rec in zip(runs, nights, strict=True):
        doc = json.loads((log / f"{rec['night']}-verdict.json").read_text())
        assert (doc["run_id"], doc["verdict"]) == (run_id, verdict)
        assert Path(report).name == as_of.isoformat() and Path(report).exists()
    assert quarantined == BAD_ROWS
    for rec in nights:
        doc = json.loads((log / f"{rec['night']}-verdict.json").read_text())
        assert doc["data"]["quarantined"] == (BAD_ROWS if rec["night"] >= BAD_NIGHT else 0)

    # Memory: flat once warm (the lake grows thirtyfold meanwhile). Warm = every code path has
    # run once: the first night with a label-matured gate window (night 8) imports the
    # threshold and recalibration machinery lazily, a one-time step of ~20 MB.
    rss = [rec["rss_mb"] for rec in nights]
    warm, late = sorted(rss[10:15])[2], sorted(rss[-5:])[2]  # medians of nights 11-15, 26-30
    slope = statistics.linear_regression(range(10, NIGHTS), rss[10:]).slope
    print(f"soak memory: {warm:.0f} -> {late:.0f} MB, slope {slope:.2f} MB/night, {rss}")
    assert late - warm < 32 and slope < 1.0, (slope, rss)  # MB, MB per night
