"""The evaluate pipeline end to end on small hand-made data where the right answers are known."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_rows

from trustramp.config import parse_config
from trustramp.pipeline import evaluate, ingest

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
    return {"result": result, "truth": truth, "root": root}


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
