"""The thresholds section: the recommended routing bands against the current ones (with the
playbook's progression stage, and a re-certification a confidence drift requires), the
per-segment recommendations, the automation/accuracy trade-off chart, and the what-if replay of
the logged traffic under both policies (its table and its human-workload chart).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from trustramp.report import charts as ch
from trustramp.report.formatting import (
    MAX_DAYS,
    MAX_SEGMENT_ROWS,
    _date,
    fmt_int,
    fmt_interval,
    fmt_pct,
    fmt_threshold,
    readable,
)
from trustramp.report.frames import _frame_records

if TYPE_CHECKING:
    from trustramp.report import ReportInputs


STAGE_TEXT: dict[str, str] = {
    "conservative": "weeks 1–2 of the phase: conservative, everything to human review",
    "moderate": "weeks 3–4 of the phase: moderate, auto-process only at high confidence",
    "optimized": "week 5 on: optimized from observed performance",
}


def _band_row(b: Any) -> dict[str, str]:
    offered = b.threshold is not None
    if b.band == "human":
        rng = f"below {fmt_threshold(b.upper)}" if b.upper is not None else "everything"
    elif not offered:
        rng = "not offered"
    else:
        rng = f"[{fmt_threshold(b.threshold)}, {fmt_threshold(b.upper) if b.upper is not None else '1.00'}]"
    return {
        "band": b.band,
        "change": b.change if b.band != "human" else "",
        "range": rng,
        "target": fmt_pct(b.target) if b.target is not None else "",
        "share": fmt_pct(b.share),
        "current_share": fmt_pct(b.current_share),
        "per_day": fmt_int(b.items_per_day) if b.items_per_day is not None else "",
        "accuracy": fmt_pct(b.accuracy) if b.n else "n/a",
        "interval": fmt_interval("accuracy", b.ci_low, b.ci_high) if b.n else "",
        "n": fmt_int(b.n),
        "current_accuracy": fmt_pct(b.current_accuracy),
        "words": readable(b.guarantee or b.reason or ""),
        "certified": bool(b.guarantee),
    }


def _recertify(v: Mapping[str, Any]) -> str:
    """The verdict's re-certification reason when a critical confidence drift requires it."""
    rc = v.get("thresholds_recertify")
    if not isinstance(rc, Mapping) or not rc.get("required"):
        return ""
    return readable(rc.get("reason") or "a critical confidence drift")


def _thresholds_view(inputs: ReportInputs) -> dict[str, Any] | None:
    rec = inputs.thresholds
    if rec is None:
        return None
    stage = str(inputs.stage or (rec.stage.value if rec.stage is not None else "") or "")
    workload = current_workload = ""
    if rec.human_workload_per_day is not None:
        workload = fmt_int(rec.human_workload_per_day)
        if rec.current_human_workload_per_day is not None:
            current_workload = fmt_int(rec.current_human_workload_per_day)
    return {
        "rows": [_band_row(b) for b in rec.bands],
        "guarantee": readable(rec.guarantee),
        "notes": [readable(n) for n in rec.notes],
        "population": readable(rec.population),
        "n_labeled": fmt_int(rec.n_labeled),
        "n_total": fmt_int(rec.n_total),
        "stage": stage,
        "stage_text": STAGE_TEXT.get(stage, ""),
        "workload": workload,
        "current_workload": current_workload,
        "delta": fmt_pct(rec.delta, 0),
    }


def _segment_thresholds_view(inputs: ReportInputs) -> dict[str, Any] | None:
    grp = inputs.segment_thresholds
    if grp is None:
        return None
    rows = []
    for name, rec in list(grp.by_group.items())[:MAX_SEGMENT_ROWS]:
        cells = {}
        for band in ("auto", "confirm", "review"):
            b = rec.band(band)
            cells[band] = {
                "change": b.change,
                "share": fmt_pct(b.share),
                "accuracy": fmt_pct(b.accuracy) if b.n else "n/a",
                "certified": bool(b.guarantee),
            }
        note = "; ".join(rec.notes) if rec.notes else ""
        rows.append({"segment": str(name), "n": fmt_int(rec.n_labeled), "note": note, **cells})
    return {
        "rows": rows,
        "omitted": max(0, len(grp.by_group) - MAX_SEGMENT_ROWS) + grp.omitted,
        "min_labels": fmt_int(grp.min_labels),
        "by": grp.by,
    }


def _tradeoff_chart(inputs: ReportInputs) -> Markup:
    rec = inputs.thresholds
    target = current = recommended = None
    if rec is not None:
        auto = rec.band("auto")
        target, current, recommended = auto.target, auto.current_threshold, auto.threshold
    return ch.tradeoff_chart(
        "chart-tradeoff",
        _frame_records(inputs.tradeoff),
        target=target,
        current=current,
        recommended=recommended,
    )


def _whatif_view(inputs: ReportInputs) -> dict[str, Any] | None:
    rp = inputs.whatif
    if rp is None:
        return None
    summary = rp.summary
    policies = [p for p in ("current", "proposed") if p in set(summary["policy"])]
    rows = []
    for band in ("auto", "confirm", "review", "human"):
        row: dict[str, Any] = {"band": band}
        for p in policies:
            r = summary[(summary["policy"] == p) & (summary["band"] == band)]
            if r.empty:
                row[p] = None
                continue
            r0 = r.iloc[0]
            n = r0["n"]
            row[p] = {
                "threshold": fmt_threshold(r0["threshold"]) if band != "human" else "",
                "per_day": fmt_int(r0["items_per_day"]),
                "share": fmt_pct(r0["share"]),
                "accuracy": fmt_pct(r0["accuracy"]) if n else "n/a",
                "interval": fmt_interval("accuracy", r0["ci_low"], r0["ci_high"]) if n else "",
            }
        rows.append(row)
    load = rp.workload.groupby("policy")["human_workload"].mean()
    days = rp.workload["day"].nunique()
    workload = {p: fmt_int(load.get(p)) for p in policies}
    diff = ""
    if {"current", "proposed"} <= set(load.index):
        delta = float(load["proposed"] - load["current"])
        word = "fewer" if delta < 0 else "more"
        diff = f"{abs(delta):,.0f} {word} items per day for people under the proposed policy"
    return {"policies": policies, "rows": rows, "workload": workload, "diff": diff, "days": days}


def _workload_chart(inputs: ReportInputs) -> Markup:
    rp = inputs.whatif
    if rp is None or rp.workload.empty:
        return ch.empty_chart("chart-workload", "No what-if replay.")
    series = []
    for i, p in enumerate(("proposed", "current")):
        w = rp.workload[rp.workload["policy"] == p]
        if w.empty:
            continue
        w = w.assign(day=w["day"].map(_date)).dropna(subset=["day"]).sort_values("day")
        w = w.tail(MAX_DAYS)
        st = {"colour": ch.PALETTE[2 * i], "dash": "" if i == 0 else "6 3", "marker": ch.MARKERS[i]}
        series.append(
            ch.Series(
                label=f"{p} policy",
                x=list(w["day"]),
                y=w["human_workload"].astype(float).tolist(),
                colour=st["colour"],
                dash=st["dash"],
                marker=st["marker"],
                width=2,
            )
        )
    return ch.line_chart(
        "chart-workload",
        series,
        title="Human workload per day under each policy",
        y_label="items not auto-processed",
        y_format="num",
        y_range=(0.0, None),
        height=260,
    )
