"""Crash safety: SIGKILL the ingest and the evaluate processes at many seeded points, then rerun.

How the kills are placed. A driver process (this file run as a script) imports trustramp once and
forks one child per run, so a run costs no import time. Two kinds of kill points, all seeded:
- at the k-th file-system mutation (rename, unlink, mkdir, fsync, an open for writing...): the
  child arms a counter on those `os`/`io` functions and SIGKILLs itself just before the k-th one.
  A probe run counts the mutations of one clean run; the points are drawn one per stratum of
  that count, so every phase of the run (staging, moving parts, commit records, day cache,
  publishing, history, catalog) gets hit;
- after a seeded delay (a share of the probe's duration), from the parent: these land inside
  DuckDB and pyarrow writes, where no Python function runs.
Kills are chained: a kill at a stratified point, then kills early in the reruns (crashes during
recovery), then a timed kill, then the final, unkilled rerun. Ingest: 2 drivers x 6 chains x 3
kills; evaluate: 2 drivers x 4 chains x 4 kills (the drivers run in parallel, separate homes).

What is checked. After every kill, a copy of the home (and reports) is checked: readers see only
whole files (`check_consistent`), a subset of the clean run; the report folder is either the
previous run's or the new run's, complete; a day cache that differs from the clean one is marked
dirty. After the final rerun, the lake, the catalog (views and the catalog file) and the outputs
equal those of one clean run, and no temporary leftovers remain.
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import PRED_COLUMNS, pred_row, write_rows
from test_reliability_support import KINDS, canonical, check_consistent, visible_state

HERE = Path(__file__).resolve()
EVENTS = ("replace", "rename", "unlink", "remove", "rmdir", "mkdir", "fsync", "ftruncate", "open")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


# -- the driver: this file run as a script ------------------------------------------------------


def _arm(kill_at: int | None, note_fd: int) -> None:
    """Count file-system mutations; SIGKILL this process just before mutation `kill_at`.

    Without `kill_at` (the probe) every mutation is written to `note_fd`.
    """
    import builtins
    import io

    count = 0

    def wrap(name: str, real: Any) -> Any:
        def mutation(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            if name == "open":
                flags = args[1] if len(args) > 1 else kwargs.get("flags", kwargs.get("mode", "r"))
                writes = (
                    (flags & WRITE_FLAGS)
                    if isinstance(flags, int)
                    else any(c in flags for c in "wax+")
                )
                if not writes:
                    return real(*args, **kwargs)
            count += 1
            if kill_at is None or count >= kill_at:
                os.write(note_fd, f"{count}\t{name}\t{args[0] if args else ''}\n".encode())
            if kill_at is not None and count >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return mutation

    for name in EVENTS:
        setattr(os, name, wrap(name, getattr(os, name)))
    io.open = wrap("open", io.open)  # type: ignore[assignment]
    builtins.open = wrap("open", builtins.open)  # type: ignore[assignment]


def _job(spec: dict[str, Any], home: str, reports: str, gx: bool) -> None:
    if spec["job"] == "ingest":
        from trustramp.ingest import ingest_paths

        ingest_paths(spec["paths"], home, validate_with_gx=gx)
    else:
        from trustramp.pipeline import evaluate

        evaluate(
            home=home,
            reports=reports,
            as_of=dt.date.fromisoformat(spec["as_of"]),
            config=spec["config"],
        )


def _run(
    spec: dict[str, Any],
    home: str,
    reports: str,
    note: str,
    *,
    event: int | None = None,
    delay: float | None = None,
    gx: bool = False,
    probe: bool = False,
) -> dict[str, Any]:
    """Fork one run; kill it at mutation `event` or after `delay` seconds; report how it ended."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if probe or event is not None:
                _arm(event, fd)
            _job(spec, home, reports, gx)
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    status = None
    if delay is not None:
        while time.monotonic() - start < delay:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
        else:
            os.kill(pid, signal.SIGKILL)
            status = None
    if status is None:
        _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    outcome = "killed" if killed else ("completed" if os.WEXITSTATUS(status) == 0 else "error")
    return {"outcome": outcome, "seconds": time.monotonic() - start, "event": event, "delay": delay}


def strata(n_events: int, k: int, rng: random.Random) -> list[int]:
    """One kill point per stratum of [1, n_events]: every phase of the run is hit."""
    edges = [1 + round(i * n_events / k) for i in range(k + 1)]
    return [rng.randrange(lo, max(lo + 1, hi)) for lo, hi in itertools.pairwise(edges)]


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Probe one clean run, then run this driver's chains of kills, each with a final rerun."""
    for module in ("trustramp.pipeline", "trustramp.evaluate.outputs", "trustramp.decide.verdict"):
        importlib.import_module(module)  # preload: a forked run pays no import time

    root = Path(spec["root"])
    probe_dir = root / f"probe-{spec['driver']}"
    shutil.copytree(root / "base", probe_dir)
    note = str(probe_dir / "events.tsv")
    probe = _run(spec, str(probe_dir / "home"), str(probe_dir / "reports"), note, probe=True)
    assert probe["outcome"] == "completed", probe
    n_events = len(Path(note).read_text().splitlines())
    rng = random.Random(spec["seed"])
    # A chain: a kill at a stratified point of a clean run, then kills early in the reruns,
    # where recovery (sweeping, discarding, recomputing) happens; then one run to the end.
    # Last, a kill after a seeded delay, which lands wherever the run is (often in DuckDB).
    recovery = max(5, n_events // 6)
    chains = [
        [{"event": e}]
        + [{"event": rng.randint(1, recovery)} for _ in range(spec["recovery_kills"])]
        + [{"delay": rng.uniform(0.02, 0.6) * probe["seconds"]} for _ in range(spec["timed_kills"])]
        for e in strata(n_events, spec["chains"], rng)
    ]
    out: dict[str, Any] = {
        "n_events": n_events,
        "probe_seconds": probe["seconds"],
        "probe": str(probe_dir),
        "chains": [],
    }
    for i, chain in enumerate(chains):
        work = root / f"d{spec['driver']}-c{i}"
        shutil.copytree(root / "base", work)
        home, reports = str(work / "home"), str(work / "reports")
        runs = []
        for j, kill in enumerate(chain):
            note = str(work / f"kill-{j}.tsv")
            result = _run(spec, home, reports, note, **kill)
            result["note"] = Path(note).read_text().strip() if Path(note).exists() else ""
            snap = root / f"snap-d{spec['driver']}-c{i}-{j}"
            for name in ("home", "reports"):
                if (work / name).exists():
                    shutil.copytree(
                        work / name, snap / name, ignore=shutil.ignore_patterns(".writer.lock")
                    )
            result["snapshot"] = str(snap)
            runs.append(result)
        gx = spec["job"] == "ingest" and spec["driver"] == 0 and i == 0  # one run audits with GX
        final = _run(spec, home, reports, str(work / "final.tsv"), gx=gx)
        out["chains"].append({"dir": str(work), "runs": runs, "final": final, "gx": gx})
    return out


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = drive(spec)
    Path(spec["result"]).write_text(json.dumps(result, indent=1))
    sys.exit(0)


# -- the tests ---------------------------------------------------------------------------------


def launch(root: Path, job: dict[str, Any], *, drivers: int = 2, **plan: int) -> list[dict]:
    """Start the drivers (in parallel: separate homes); `collect` waits for their results."""
    procs = []
    for d in range(drivers):
        spec = {
            **job,
            **plan,
            "root": str(root),
            "driver": d,
            "seed": 9000 + d,
            "result": str(root / f"result-{d}.json"),
        }
        (root / f"spec-{d}.json").write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE), str(root / f"spec-{d}.json")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def collect(root: Path, procs: list) -> list[dict]:  # type: ignore[type-arg]
    results = []
    for d, p in enumerate(procs):
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-4000:]
        results.append(json.loads((root / f"result-{d}.json").read_text()))
    return results


def kills(results: list[dict]) -> list[dict]:
    return [r for res in results for chain in res["chains"] for r in chain["runs"]]


def catalog_file_state(home: Path) -> dict[str, list[tuple]]:
    """What an outside DuckDB client sees in the catalog file (wall-clock columns left out)."""
    from trustramp.store.lake import open_catalog

    con = open_catalog(home)  # its views' paths are relative to the home
    try:
        out = {k: con.sql(f'SELECT * FROM "{k}" ORDER BY ALL').fetchall() for k in KINDS}
        out["quarantine"] = con.sql(
            "SELECT source, file, row_number, reason, detail FROM quarantine ORDER BY ALL"
        ).fetchall()
        out["ingest_log"] = con.sql(
            "SELECT source, rows_read, rows_new, rows_duplicate, rows_quarantined FROM ingest_log "
            "ORDER BY ALL"
        ).fetchall()
        out["runs"] = con.sql("SELECT run_id FROM runs ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


def state_files(home: Path) -> set[str]:
    """The files that make the lake and its state (not the catalog, lock or scratch space)."""
    return {
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and p.parts[len(home.parts)] in ("lake", "state") and "runs" not in p.parts
    }


def leftovers(home: Path, reports: Path | None = None) -> list[str]:
    """Temporary files a crash may leave, that a rerun must have cleaned up."""
    found = [str(p) for p in home.joinpath("tmp").glob("*") if p.name != "duckdb"]
    found += [str(p) for p in home.rglob(".*") if p.name != ".writer.lock"]
    if reports is not None and reports.exists():
        found += [str(p) for p in reports.rglob(".*")]
    return found


# -- ingest ------------------------------------------------------------------------------------


def ingest_inputs(d: Path) -> list[Path]:
    preds = [pred_row(i, confidence=(1.5 if i % 11 == 0 else 0.5 + i / 200)) for i in range(60)]
    decisions = [
        {
            "decision_id": f"d{i}",
            "item_id": f"i{i}",
            "decided_at": "2026-11-03T12:00:00Z",
            "human_label": "a" if i % 3 else "b",
            "action": "accepted",
        }
        for i in range(0, 90, 2)
    ]
    feedback = [
        {
            "feedback_id": f"f{i}",
            "submitted_at": "2026-11-02T10:00:00Z",
            "feature": "feat",
            "customer_id": "c1",
            "segment": "smb",
            "user_id": f"u{i}",
            "rating": "positive",
            "nps_score": 11 if i == 3 else 8,
        }
        for i in range(6)
    ]
    files = [
        write_rows(d / "a-preds.csv", [*preds[:30], pred_row(3, confidence=0.1)], PRED_COLUMNS),
        write_rows(d / "b-preds.jsonl", preds[30:], PRED_COLUMNS),
        write_rows(d / "c-preds.parquet", [pred_row(i) for i in range(60, 90)], PRED_COLUMNS),
        write_rows(d / "d-decisions.csv", decisions),
        write_rows(d / "e-feedback.csv", feedback),
        write_rows(d / "f-broken.parquet", [pred_row(i) for i in range(90, 200)], PRED_COLUMNS),
    ]
    broken = files[-1]
    broken.write_bytes(broken.read_bytes()[:300])
    return files


def check_ingest_snapshot(snap: Path, clean: dict[str, list[tuple]]) -> None:
    """After a kill: only whole files are visible, and all of it is part of the clean result."""
    home = snap / "home"
    if not (home / "state").exists():
        return  # killed before the home was laid out
    check_consistent(home)
    seen = visible_state(home)
    for name, rows in seen.items():
        assert set(rows) <= set(clean[name]), name


@pytest.mark.slow
def test_sigkill_ingest_at_many_points_then_rerun_equals_one_clean_run(tmp_path: Path) -> None:
    from trustramp.ingest import ingest_paths

    inputs = ingest_inputs(tmp_path / "in")
    (tmp_path / "base" / "home").mkdir(parents=True)
    job = {"job": "ingest", "paths": [str(p) for p in inputs]}
    procs = launch(tmp_path, job, chains=6, recovery_kills=1, timed_kills=1)
    clean_home = tmp_path / "clean"
    report = ingest_paths(inputs, clean_home, validate_with_gx=False)
    assert [f.path.name for f in report.failed] == ["f-broken.parquet"]
    clean = visible_state(clean_home)
    results = collect(tmp_path, procs)

    runs = kills(results)
    assert sum(r["outcome"] == "killed" for r in runs) >= 20, runs
    assert all(r["outcome"] in ("killed", "completed") for r in runs), runs
    for r in runs:
        check_ingest_snapshot(Path(r["snapshot"]), clean)
    for res in results:
        for chain in res["chains"]:
            assert chain["final"]["outcome"] == "completed", chain
            home = Path(chain["dir"]) / "home"
            assert visible_state(home) == clean
            assert catalog_file_state(home) == catalog_file_state(clean_home)
            assert state_files(home) == state_files(clean_home)
            assert leftovers(home) == []


# -- evaluate ----------------------------------------------------------------------------------


def evaluate_base(root: Path) -> dict[str, Any]:
    """A home with a previous run for the day, and late decisions since: a real nightly's start."""
    from trustramp.demo import demo_config, generate
    from trustramp.ingest import ingest_paths
    from trustramp.pipeline import evaluate

    m = generate(
        root / "in",
        n_predictions=800,
        days=6,
        seed=3,
        n_customers=6,
        n_feedback=10,
        segments=("smb", "enterprise"),
    )
    raw = demo_config(m)
    raw["statistics"] = {**raw.get("statistics", {}), "bootstrap_reps": 100}
    cfg = root / "rollout.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    late = sorted(m.files["decisions"])[-1]
    early = [p for files in m.files.values() for p in files if p != late]
    home, reports = root / "base" / "home", root / "base" / "reports"
    segments = raw["segments"]
    assert not ingest_paths(early, home, segments=segments, validate_with_gx=False).failed
    old = evaluate(home=home, reports=reports, as_of=m.end, config=cfg)
    assert not ingest_paths([late], home, segments=segments, validate_with_gx=False).failed
    return {"as_of": m.end, "config": cfg, "old": old}


def verdict_doc(run_dir: Path) -> dict[str, Any]:
    doc = json.loads((run_dir / "verdict.json").read_text())
    doc.pop("run_id")
    return doc


def outputs(run_dir: Path) -> tuple[dict, pd.DataFrame, str]:
    return (
        verdict_doc(run_dir),
        pd.read_parquet(run_dir / "metrics.parquet"),
        (run_dir / "thresholds.yaml").read_text(),
    )


def cache(home: Path) -> dict[str, pa.Table]:
    """Every day's aggregates in the day cache, by relative path (only finished days), in a
    canonical row order (DuckDB does not preserve one; the content is what must match)."""
    out = {}
    for done in sorted(home.glob("aggregates/*/*/[!.]*/_done")):
        for f in sorted(done.parent.glob("*.arrow")):
            table = feather.read_table(f)
            out[str(f.relative_to(home))] = table.sort_by(
                [(c, "ascending") for c in table.column_names]
            )
    return out


def marked_days(home: Path) -> set[str]:
    return {p.name.split("__")[0] for p in home.glob("state/dirty/*/*")}


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(canonical(a), canonical(b))
        return True
    except AssertionError:
        return False


def check_evaluate_snapshot(snap: Path, ctx: dict[str, Any]) -> None:
    home, run = snap / "home", snap / "reports" / ctx["feature"] / ctx["as_of"]
    # The run folder is never missing and never mixed: the previous run's, or the new one.
    assert (run / "verdict.json").exists(), f"{snap}: the run folder is missing"
    doc, metrics, thresholds = outputs(run)
    run_id = json.loads((run / "verdict.json").read_text())["run_id"]
    expected = ctx["old"] if run_id == ctx["old_run_id"] else ctx["clean"]
    assert doc == expected[0] and thresholds == expected[2]
    pd.testing.assert_frame_equal(canonical(metrics), canonical(expected[1]))
    # A cached day that differs from the clean result is marked dirty, so it will be recomputed.
    stale = {
        Path(name).parent.name
        for name, table in cache(home).items()
        if name not in ctx["cache"] or not table.equals(ctx["cache"][name])
    }
    assert stale <= marked_days(home), (snap, sorted(stale - marked_days(home)))
    check_consistent(home)  # evaluate never touches the lake
    # Every recorded run has its folder in place (the record is written after the folder).
    runs = list((home / "state" / "runs").glob("*.parquet"))
    for f in runs:
        assert Path(pq.read_table(f).to_pylist()[0]["report"]).name == ctx["as_of"]


@pytest.mark.slow
def test_sigkill_evaluate_at_many_points_then_rerun_equals_one_clean_run(tmp_path: Path) -> None:
    base = evaluate_base(tmp_path)
    job = {"job": "evaluate", "as_of": base["as_of"].isoformat(), "config": str(base["config"])}
    results = collect(tmp_path, launch(tmp_path, job, chains=4, recovery_kills=2, timed_kills=1))
    # The clean run: each driver's probe (the counter only watches). Both agree.
    feature = yaml.safe_load(base["config"].read_text())["feature"]
    clean_dir = Path(results[0]["probe"])
    runs_of = [Path(r["probe"]) / "reports" / feature / base["as_of"].isoformat() for r in results]
    assert outputs(runs_of[0])[0] == outputs(runs_of[1])[0]
    old_dir = tmp_path / "base" / "reports" / feature / base["as_of"].isoformat()
    ctx = {
        "feature": feature,
        "as_of": base["as_of"].isoformat(),
        "old": outputs(old_dir),
        "old_run_id": json.loads((old_dir / "verdict.json").read_text())["run_id"],
        "clean": outputs(runs_of[0]),
        "cache": cache(clean_dir / "home"),
    }
    assert not same(ctx["old"][1], ctx["clean"][1])  # the late decisions changed the metrics

    runs = kills(results)
    assert sum(r["outcome"] == "killed" for r in runs) >= 20, runs
    assert all(r["outcome"] in ("killed", "completed") for r in runs), runs
    for r in runs:
        check_evaluate_snapshot(Path(r["snapshot"]), ctx)
    clean_state = visible_state(clean_dir / "home")
    for res in results:
        for chain in res["chains"]:
            assert chain["final"]["outcome"] == "completed", chain
            work = Path(chain["dir"])
            home, run = work / "home", work / "reports" / ctx["feature"] / ctx["as_of"]
            doc, metrics, thresholds = outputs(run)
            assert doc == ctx["clean"][0] and thresholds == ctx["clean"][2]
            pd.testing.assert_frame_equal(canonical(metrics), canonical(ctx["clean"][1]))
            got = cache(home)
            assert got.keys() == ctx["cache"].keys()
            for name, table in got.items():
                assert table.equals(ctx["cache"][name]), name
            assert marked_days(home) == marked_days(clean_dir / "home")
            assert visible_state(home) == clean_state
            # The history holds the final run, and the catalog file shows it.
            run_id = json.loads((run / "verdict.json").read_text())["run_id"]
            history = {
                r["run_id"]: r
                for f in (home / "state" / "runs").glob("*.parquet")
                for r in pq.read_table(f).to_pylist()
            }
            assert run_id in history and history[run_id]["verdict"] == ctx["clean"][0]["verdict"]
            assert (run_id,) in catalog_file_state(home)["runs"]
            assert leftovers(home, work / "reports") == []
