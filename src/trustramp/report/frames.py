"""Reading the tidy metrics table and the small frames the pipeline hands the report.

`_rows` picks one window's rows at one level of the dimensions (those in ``present`` set, the
others null), `_by` groups them as ``{key: {metric: row}}``, and `_frame_records` turns an
optional frame into plain records for the charts. Imports numpy and pandas only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

DIMS: tuple[str, ...] = ("model_version", "segment", "customer_id", "mode")


def _rows(
    m: pd.DataFrame,
    *,
    window: str,
    metrics: str | Sequence[str] | None = None,
    present: Sequence[str] = (),
) -> pd.DataFrame:
    """Rows of one window whose dimensions in ``present`` are set and all others null."""
    mask = m["window"] == window
    if metrics is not None:
        mask &= m["metric"].isin([metrics] if isinstance(metrics, str) else list(metrics))
    for d in DIMS:
        mask &= m[d].notna() if d in present else m[d].isna()
    return m[mask]


def _by(frame: pd.DataFrame, key: str | None) -> dict[Any, dict[str, dict[str, Any]]]:
    """``{key value: {metric: {value, ci_low, ci_high, n}}}`` (key None: one group)."""
    out: dict[Any, dict[str, dict[str, Any]]] = {}
    for rec in frame.to_dict("records"):
        k = rec[key] if key else None
        out.setdefault(k, {})[rec["metric"]] = rec
    return out


def _frame_records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return frame.replace({np.nan: None}).to_dict("records")
