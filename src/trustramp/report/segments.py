"""The segments section's tables: accuracy per segment against the overall, in rollout order,
with the bias audit's flag, Holm p and BH q values and the operational rates beside it; then per
mode, per model version, and the customers with the lowest accuracy.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from trustramp.report.formatting import (
    MAX_SEGMENT_ROWS,
    _finite,
    _text,
    fmt_int,
    fmt_interval,
    fmt_pct,
    fmt_value,
    readable,
)
from trustramp.report.frames import _by, _rows

if TYPE_CHECKING:
    from trustramp.report import ReportInputs


MAX_CUSTOMER_ROWS = 12


def _fmt_p(v: object) -> str:
    """A p- or q-value: three decimals, ``< 0.001`` below that, '' when missing."""
    if not _finite(v):
        return ""
    return "< 0.001" if float(v) < 0.001 else f"{float(v):.3f}"


def _segment_table(inputs: ReportInputs) -> dict[str, Any]:
    m = inputs.metrics
    v = inputs.verdict
    per = _by(_rows(m, window="window", present=("segment",)), "segment")
    overall = _by(_rows(m, window="window"), None).get(None, {})
    plan = {s.get("segment"): s for s in (v.get("segments") or {}).get("segments") or []}
    names = list(dict.fromkeys([*[s for s in plan if s in per], *per]))
    names.sort(  # rollout order first, then the segments outside the plan by labeled items
        key=lambda s: (
            float(plan[s]["rank"]) if _finite(plan.get(s, {}).get("rank")) else math.inf,
            -float(per[s].get("accuracy", {}).get("n") or 0),
        )
    )
    base = overall.get("accuracy", {}).get("value")
    rows = []
    for s in names[:MAX_SEGMENT_ROWS]:
        mm = per[s]
        acc = mm.get("accuracy", {})
        p = plan.get(s, {})
        gap = ""
        if _finite(acc.get("value")) and _finite(base):
            gap = f"{100 * (float(acc['value']) - float(base)):+.1f} pp"
        rows.append(
            {
                "segment": str(s),
                "rank": _text(p.get("rank")),
                "accuracy": fmt_pct(acc.get("value")),
                "interval": fmt_interval("accuracy", acc.get("ci_low"), acc.get("ci_high")),
                "n": fmt_int(acc.get("n")),
                "gap": gap,
                "coverage": fmt_pct(mm.get("label_coverage", {}).get("value")),
                "ece": fmt_value("ece", mm.get("ece", {}).get("value")),
                "error_rate": fmt_pct(mm.get("error_rate", {}).get("value"), 2),
                "override_rate": fmt_pct(mm.get("override_rate", {}).get("value")),
                "latency": fmt_value("latency_p95", mm.get("latency_p95", {}).get("value")),
                "flag": _text(p.get("flag")) or "not audited",
                "p_holm": _fmt_p(p.get("p_holm")),
                "q_bh": _fmt_p(p.get("q_bh")),
                "flag_css": (_text(p.get("flag")) or "none").replace(" ", "-"),
                "eligible": "yes" if p.get("eligible") else ("no" if p else ""),
                "detail": readable(p.get("detail")),
                "opted_out": bool(p.get("opted_out")),
            }
        )
    overall_row = {
        "accuracy": fmt_pct(base),
        "interval": fmt_interval(
            "accuracy",
            overall.get("accuracy", {}).get("ci_low"),
            overall.get("accuracy", {}).get("ci_high"),
        ),
        "n": fmt_int(overall.get("accuracy", {}).get("n")),
        "coverage": fmt_pct(overall.get("label_coverage", {}).get("value")),
        "ece": fmt_value("ece", overall.get("ece", {}).get("value")),
        "error_rate": fmt_pct(overall.get("error_rate", {}).get("value"), 2),
        "override_rate": fmt_pct(overall.get("override_rate", {}).get("value")),
        "latency": fmt_value("latency_p95", overall.get("latency_p95", {}).get("value")),
    }
    seg_info = v.get("segments") or {}
    return {
        "tested": any(r["q_bh"] for r in rows),
        "rows": rows,
        "overall": overall_row,
        "omitted": max(0, len(names) - MAX_SEGMENT_ROWS),
        "next": _text(seg_info.get("next")),
        "order": [str(s) for s in seg_info.get("order") or []],
    }


def _modes_view(m: pd.DataFrame) -> list[dict[str, str]]:
    rows = _rows(m, window="window", metrics=("accuracy", "override_rate"), present=("mode",))
    out = []
    for mode, mm in _by(rows, "mode").items():
        acc = mm.get("accuracy", {})
        out.append(
            {
                "mode": str(mode),
                "accuracy": fmt_pct(acc.get("value")),
                "interval": fmt_interval("accuracy", acc.get("ci_low"), acc.get("ci_high")),
                "n": fmt_int(acc.get("n")),
                "override_rate": fmt_pct(mm.get("override_rate", {}).get("value")),
                "shown": "no" if str(mode) == "shadow" else "yes",
            }
        )
    return out


def _versions_view(m: pd.DataFrame) -> list[dict[str, str]]:
    rows = _rows(
        m,
        window="window",
        metrics=("accuracy", "ece", "kappa", "psi", "error_rate"),
        present=("model_version",),
    )
    out = []
    for version, mm in sorted(_by(rows, "model_version").items(), key=lambda kv: str(kv[0])):
        acc = mm.get("accuracy", {})
        out.append(
            {
                "version": str(version),
                "accuracy": fmt_pct(acc.get("value")),
                "interval": fmt_interval("accuracy", acc.get("ci_low"), acc.get("ci_high")),
                "n": fmt_int(acc.get("n")),
                "ece": fmt_value("ece", mm.get("ece", {}).get("value")),
                "kappa": fmt_value("kappa", mm.get("kappa", {}).get("value")),
                "psi": fmt_value("psi", mm.get("psi", {}).get("value")),
                "error_rate": fmt_pct(mm.get("error_rate", {}).get("value"), 2),
            }
        )
    return out[:MAX_SEGMENT_ROWS]


def _customers_view(m: pd.DataFrame) -> dict[str, Any]:
    acc = m[(m["window"] == "window") & (m["metric"] == "accuracy") & m["customer_id"].notna()]
    acc = acc[acc["model_version"].isna() & acc["mode"].isna()]
    total = len(acc)
    key = acc["ci_high"].where(acc["ci_high"].notna(), acc["value"]).astype(float)
    worst = acc.assign(_key=key).sort_values(["_key", "customer_id"]).head(MAX_CUSTOMER_ROWS)
    rows = [
        {
            "customer": _text(r["customer_id"]),
            "segment": _text(r["segment"]),
            "accuracy": fmt_pct(r["value"]),
            "interval": fmt_interval("accuracy", r["ci_low"], r["ci_high"]),
            "n": fmt_int(r["n"]),
        }
        for r in worst.to_dict("records")
    ]
    return {"rows": rows, "total": total}
