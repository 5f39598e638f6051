"""Rendering to Arrow tables: the simulated numbers become the contract's columns.

Ids, labels and the `class_probabilities` JSON are built as byte matrices (no Python strings);
CSV and JSON Lines get ISO 8601 text timestamps with a mix of offsets, Parquet typed UTC ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trustramp.contract import DECISIONS, PREDICTIONS, ColType, Schema
from trustramp.demo._common import _ACTIONS, _BANDS, _MODES, _STATUSES, _Plan

# Timestamp suffixes in CSV / JSON Lines: 10 % carry a non-UTC offset, 2 % none (meaning UTC).
_SUFFIXES = ("Z", "+00:00", "+02:00", "-05:00", "+05:30", "+09:00", "-08:00", "")
_SUFFIX_MINUTES = np.array([0, 0, 120, -300, 330, 540, -480, 0], dtype=np.int64)
_SUFFIX_P = np.array([0.85, 0.03, 0.03, 0.025, 0.015, 0.015, 0.015, 0.02])
_DECIMALS = (
    np.array([f"{u / 10_000:.4f}".encode() for u in range(10_001)], dtype="S6")
    .view(np.uint8)
    .reshape(-1, 6)
)  # units of 1e-4 as "0.0123" .. "1.0000"


def _fixed_width_ids(prefix: str, numbers: np.ndarray, width: int) -> tuple[pa.Array, np.ndarray]:
    """`prefix` + zero-padded numbers as an Arrow string array, built without Python strings;
    also returns the (n, length) byte matrix."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    n, length = len(numbers), len(head) + width
    matrix = np.empty((n, length), dtype=np.uint8)
    matrix[:, : len(head)] = head
    q = numbers.astype(np.uint64)
    for j in range(length - 1, len(head) - 1, -1):
        q, r = np.divmod(q, np.uint64(10))
        matrix[:, j] = r + 48
    return _string_array(matrix), matrix


def _string_array(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow string array whose i-th value is the bytes of `matrix[i]` (zero-copy)."""
    n, length = matrix.shape
    offsets = pa.py_buffer(np.arange(0, (n + 1) * length, length, dtype=np.int64))
    data = pa.py_buffer(np.ascontiguousarray(matrix))
    if valid is None or valid.all():
        array = pa.LargeStringArray.from_buffers(n, offsets, data)
    else:
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        array = pa.LargeStringArray.from_buffers(
            n, offsets, data, bitmap, null_count=int((~valid).sum())
        )
    return array.cast(pa.string())


def _probability_json(plan: _Plan, units: np.ndarray, valid: np.ndarray) -> pa.Array:
    """`{"billing": 0.0123, ...}` per row from units of 1e-4, built as a fixed-width byte
    matrix (every value has four decimals), null where `valid` is False."""
    pieces: list[bytes | int] = []
    for k, label in enumerate(plan.labels):
        pieces.append((("{" if k == 0 else ", ") + json.dumps(label) + ": ").encode())
        pieces.append(k)
    pieces.append(b"}")
    length = sum(6 if isinstance(p, int) else len(p) for p in pieces)
    matrix = np.empty((len(units), length), dtype=np.uint8)
    pos = 0
    for piece in pieces:
        if isinstance(piece, bytes):
            matrix[:, pos : pos + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            pos += len(piece)
        else:
            matrix[:, pos : pos + 6] = _DECIMALS[units[:, piece]]
            pos += 6
    return _string_array(matrix, valid)


def _take(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """Strings by index; a negative index is null."""
    return pa.array(list(values), type=pa.string()).take(pa.array(index, mask=index < 0))


def _timestamps(us: np.ndarray, fmt: str, rng: np.random.Generator) -> pa.Array:
    """Typed UTC timestamps for Parquet; ISO 8601 text for CSV and JSON Lines, most in UTC
    (`Z` or `+00:00`), 10 % at another offset (same instant) and 2 % without an offset.
    A negative value is null."""
    missing = us < 0
    if fmt == "parquet":
        return pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=missing)
    choice = rng.choice(len(_SUFFIXES), size=len(us), p=_SUFFIX_P)
    local_ms = us // 1000 + _SUFFIX_MINUTES[choice] * 60_000
    text = pc.cast(pa.array(local_ms, type=pa.timestamp("ms"), mask=missing), pa.string())
    text = pc.utf8_replace_slice(text, start=10, stop=11, replacement="T")
    return pc.binary_join_element_wise(text, _take(_SUFFIXES, choice), "")


def _predictions_table(
    plan: _Plan, p: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> pa.Table:
    valid = p["conf"] >= 0
    probs = (
        _probability_json(plan, p["probs"], valid)
        if "probs" in p
        else pa.nulls(len(valid), pa.string())
    )
    return _assemble(
        PREDICTIONS,
        fmt,
        {
            "prediction_id": _fixed_width_ids(f"p-{plan.tag}-", p["pnum"], plan.width)[0],
            "item_id": _fixed_width_ids(f"i-{plan.tag}-", p["inum"], plan.width)[0],
            "feature": pa.repeat(plan.feature, len(valid)).cast(pa.string()),
            "model_version": _take(plan.versions, p["ver"]),
            "predicted_at": _timestamps(p["t"], fmt, rng),
            "segment": _take(plan.segments, p["seg"]),
            "customer_id": _fixed_width_ids(f"c-{plan.tag}-", p["cust"], plan.cust_width)[0],
            "mode": _take([m.value for m in _MODES], p["mode"]),
            "predicted_label": _take(plan.labels, p["label"]),
            "confidence": pa.array(p["conf"] / 10_000, mask=~valid),
            "class_probabilities": probs,
            "latency_ms": pa.array(p["latency"]),
            "status": _take([s.value for s in _STATUSES], p["status"]),
            "routed_to": _take([b.value for b in _BANDS], p["routed"]),
        },
    )


def _decisions_table(
    plan: _Plan, d: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> pa.Table:
    return _assemble(
        DECISIONS,
        fmt,
        {
            "decision_id": _fixed_width_ids(f"d-{plan.tag}-", d["dnum"], plan.width)[0],
            "item_id": _fixed_width_ids(f"i-{plan.tag}-", d["inum"], plan.width)[0],
            "decided_at": _timestamps(d["t"], fmt, rng),
            "human_label": _take(plan.labels, d["label"]),
            "reviewer_id": _fixed_width_ids(f"r-{plan.tag}-", d["reviewer"], 3)[0],
            "action": _take([a.value for a in _ACTIONS], d["action"]),
            "review_seconds": pa.array(d["review_s"]),
        },
    )


def _arrow_type(col_type: ColType, fmt: str) -> pa.DataType:
    if col_type is ColType.TIMESTAMP:
        return pa.timestamp("us", tz="UTC") if fmt == "parquet" else pa.string()
    return {ColType.FLOAT: pa.float64(), ColType.INT: pa.int64()}.get(col_type, pa.string())


def _schema(schema: Schema, fmt: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c.type, fmt)) for c in schema.columns])


def _assemble(schema: Schema, fmt: str, columns: dict[str, Any]) -> pa.Table:
    """A table with exactly the contract's columns, in its order, with the format's types."""
    if set(columns) != set(schema.names):
        raise AssertionError(
            f"demo {schema.kind} columns {sorted(columns)} differ from the "
            f"contract's {sorted(schema.names)}"
        )
    target = _schema(schema, fmt)
    arrays = [
        pa.array(columns[f.name], type=f.type)
        if not isinstance(columns[f.name], pa.Array)
        else columns[f.name].cast(f.type)
        for f in target
    ]
    return pa.Table.from_arrays(arrays, schema=target)
