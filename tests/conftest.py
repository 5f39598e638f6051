from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

PRED_COLUMNS = [
    "prediction_id",
    "item_id",
    "feature",
    "model_version",
    "predicted_at",
    "segment",
    "customer_id",
    "mode",
    "predicted_label",
    "confidence",
    "latency_ms",
    "status",
]


def pred_row(i: int, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "prediction_id": f"p{i}",
        "item_id": f"i{i}",
        "feature": "feat",
        "model_version": "v1",
        "predicted_at": f"2026-11-0{1 + i % 3}T10:00:00Z",
        "segment": "smb",
        "customer_id": f"c{i % 5}",
        "mode": "shadow",
        "predicted_label": "a",
        "confidence": 0.9,
        "latency_ms": 100.0,
        "status": "ok",
    }
    row.update(over)
    return row


def write_rows(path: Path, rows: list[dict[str, object]], columns: list[str] | None = None) -> Path:
    """Write rows as CSV, JSON Lines or Parquet by the file's extension."""
    columns = columns or list(rows[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for r in rows:
                w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    elif path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({c: r.get(c) for c in columns}) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def ingested_demo(root: Path, n_predictions: int) -> dict[str, object]:
    """Demo data (seed 11) generated in root/input and ingested into root/home, without Great
    Expectations: its root, home, manifest and (parsed) config."""
    from trustramp.config import parse_config
    from trustramp.demo import demo_config, generate
    from trustramp.ingest import ingest_paths

    manifest = generate(root / "input", n_predictions=n_predictions, seed=11)
    config = parse_config(demo_config(manifest))
    report = ingest_paths(
        [root / "input"], root / "home", segments=config.segments, validate_with_gx=False
    )
    assert not report.failed
    return {"root": root, "home": root / "home", "manifest": manifest, "config": config}


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A small demo dataset (20k predictions), ingested once per test session."""
    return ingested_demo(tmp_path_factory.mktemp("demo"), 20_000)


def demo_gate(demo_lake: dict) -> tuple[Any, Any, Any]:
    """The demo lake's windows as of its last day, its aggregates over them, and the certified
    population evaluation takes from them: ``(windows, aggregates, population)``."""
    from trustramp.evaluate.windows import gate_population, windows_for
    from trustramp.store.aggregates import compute_aggregates
    from trustramp.store.lake import Home, reader

    cfg = demo_lake["config"]
    win = windows_for(cfg, demo_lake["manifest"].end)
    con = reader(Home.at(demo_lake["home"]))
    try:
        aggs = compute_aggregates(con, cfg.feature, win.first, win.as_of)
    finally:
        con.close()
    return win, aggs, gate_population(aggs, win, cfg)


def raw_joined(home: Path, feature: str) -> pd.DataFrame:
    """Test oracle input: predictions joined to their latest decision, as raw rows (small data)."""
    from trustramp.store.lake import Home, reader

    con = reader(Home.at(home))
    try:
        return con.execute(
            """SELECT p.*, l.human_label, l.action FROM predictions p LEFT JOIN (
                 SELECT item_id, arg_max(human_label, (decided_at, decision_id)) AS human_label,
                        arg_max(action, (decided_at, decision_id)) AS action
                 FROM decisions GROUP BY item_id) l USING (item_id)
               WHERE p.feature = ?""",
            [feature],
        ).df()
    finally:
        con.close()


def raw_gate_rows(demo_lake: dict, win: Any, version: str) -> pd.DataFrame:
    """`raw_joined` rows of the gate window's days, of model `version`, in shadow mode."""
    raw = raw_joined(demo_lake["home"], demo_lake["config"].feature)
    day = pd.to_datetime(raw["date"]).dt.date
    return raw[
        (day >= win.gate_start)
        & (day <= win.gate_end)
        & (raw["model_version"] == version)
        & (raw["mode"] == "shadow")
    ]
