"""Incremental evaluation: only days touched by new predictions or late decisions are recomputed,
and the result equals a full recompute."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_rows

from trustramp.demo import demo_config, generate
from trustramp.pipeline import evaluate, ingest


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("incr")
    manifest = generate(root / "all", n_predictions=6_000, days=20, seed=5)
    cfg = root / "rollout.yaml"
    cfg.write_text(yaml.safe_dump(demo_config(manifest)))
    return {"root": root, "manifest": manifest, "cfg": cfg}


def _copy_until(src: Path, dst: Path, last: dt.date) -> None:
    for f in sorted(src.rglob("*.csv")):
        stamp = f.stem.rsplit("-", 3)[-3:]
        day = dt.date(*map(int, stamp)) if len(stamp) == 3 and stamp[0].isdigit() else None
        if day is None or day <= last:
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst / f.relative_to(src))


def _frame(result) -> pd.DataFrame:
    return result.metrics.sort_values(
        [
            *list(result.metrics.columns[:1]),
            "window",
            "day",
            "segment",
            "model_version",
            "mode",
            "customer_id",
        ],
        na_position="first",
    ).reset_index(drop=True)


@pytest.mark.slow
def test_nightly_recomputes_only_touched_days(landing: dict, tmp_path: Path) -> None:
    m = landing["manifest"]
    home, reports, land = tmp_path / "home", tmp_path / "reports", tmp_path / "landing"
    day_before = m.end - dt.timedelta(days=1)
    _copy_until(m.out_dir, land, day_before)
    ingest([land], home=home, configs=[landing["cfg"]])
    first = evaluate(home=home, reports=reports, as_of=m.end, config=landing["cfg"])
    assert len(first.extras["recomputed_days"]) >= 14  # a cold cache computes every day

    again = evaluate(home=home, reports=reports, as_of=m.end, config=landing["cfg"])
    assert again.extras["recomputed_days"] == []  # nothing new: nothing recomputed

    # The last day arrives: its predictions, and decisions (some late, for earlier days).
    _copy_until(m.out_dir, land, m.end)
    ingest([land], home=home, configs=[landing["cfg"]])
    nightly = evaluate(home=home, reports=reports, as_of=m.end, config=landing["cfg"])
    touched = set(nightly.extras["recomputed_days"])
    updated = set(nightly.extras["updated_days"])
    # the new day is computed; the days only its late decisions touched are updated by sums
    assert m.end in touched and updated and not touched & updated
    assert len(touched | updated) < len(first.extras["recomputed_days"])
    full = evaluate(
        home=home, reports=reports, as_of=m.end, config=landing["cfg"], full_recompute=True
    )
    pd.testing.assert_frame_equal(_frame(nightly), _frame(full))
    assert nightly.verdict.to_dict()["criteria"] == full.verdict.to_dict()["criteria"]

    # One late decision for an old item recomputes just that item's prediction day.
    old_day = m.end - dt.timedelta(days=9)
    preds = pd.read_csv(next((m.out_dir / "predictions").glob(f"*{old_day.isoformat()}*.csv")))
    item = preds["item_id"].iloc[0]
    write_rows(
        land / "late" / "late-decision.csv",
        [
            {
                "decision_id": "d-late-correction-1",
                "item_id": item,
                "decided_at": f"{m.end.isoformat()}T23:00:00Z",
                "human_label": "late-label",
                "action": "manual",
            }
        ],
    )
    ingest([land], home=home, configs=[landing["cfg"]])
    late = evaluate(home=home, reports=reports, as_of=m.end, config=landing["cfg"])
    assert late.extras["recomputed_days"] == [old_day]
