from __future__ import annotations

import csv
import json
import os
from pathlib import Path

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
