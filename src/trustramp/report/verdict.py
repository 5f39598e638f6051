"""The page's first sections, read from the verdict document (``verdict.json``): the verdict
banner (what to do, and why), the phase timeline (where the rollout is, what the next step needs),
the criteria table of the gate window and the three readiness checklists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustramp.report.formatting import (
    PHASES,
    _finite,
    _text,
    fmt_date,
    fmt_int,
    fmt_interval,
    fmt_pct,
    fmt_value,
    phase_label,
    readable,
)

MAX_CRITERIA_ROWS = 60


MAX_REASONS = 30


PHASE_NOTES: dict[str, str] = {
    "shadow": "AI runs silently on all traffic",
    "dogfood": "internal users",
    "limited_beta": "5–10 opted-in customers, suggestion mode",
    "controlled": "of eligible users",
    "ga": "100% of eligible users",
}
CHECKLIST_TITLES: dict[str, str] = {
    "model": "Model readiness",
    "infrastructure": "Infrastructure readiness",
    "user": "User readiness",
}


COMPARATORS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "="}


def _next_label(v: Mapping[str, Any]) -> str:
    nxt = v.get("next") or {}
    return phase_label(nxt.get("phase"), nxt.get("step"))


_SHOWN_IN_ROLLBACK_BLOCK = (
    "Rollback (",
    "Engage the kill switch now",
    "The kill switch is already engaged",
)


def _verdict_view(v: Mapping[str, Any]) -> dict[str, Any]:
    kind = v["verdict"]
    here = phase_label(v.get("phase"), v.get("step"))
    nxt = _next_label(v)
    reasons = [readable(r) for r in v.get("reasons") or []]
    lead = ""
    fired = [t for t in v.get("rollback_triggers") or [] if t.get("fired")]
    procedure = [str(p) for p in v.get("procedure") or []]
    kill = bool(v.get("kill_switch"))
    if kind == "GO":
        if v.get("phase") == "ga":
            headline = "sustained at general availability; stay at 100%"
        else:
            headline = f"advance from {here} to {nxt}"
    elif kind == "HOLD":
        headline = f"stay in {here}; do not advance to {nxt} yet"
        if reasons and reasons[0].startswith("The rollout holds"):
            lead, reasons = reasons[0], reasons[1:]
    elif kind == "PAUSE":
        headline = f"do not widen the audience beyond {here}"
    else:
        headline = (
            "keep the kill switch engaged and finish the manual rollback procedure"
            if kill
            else "engage the kill switch now and roll back"
        )
        # The triggers and the kill-switch instruction have their own block above the reasons.
        reasons = [r for r in reasons if not r.startswith(_SHOWN_IN_ROLLBACK_BLOCK)]
    return {
        "kind": kind,
        "css": kind.lower(),
        "headline": headline,
        "lead": lead,
        "reasons": reasons[:MAX_REASONS],
        "more_reasons": max(0, len(reasons) - MAX_REASONS),
        "triggers": [
            {"trigger": _text(t.get("trigger")), "evidence": readable(t.get("evidence"))}
            for t in fired
        ],
        "procedure": procedure,
        "kill_switch": kill,
        "feature": _text(v.get("feature")),
        "as_of": fmt_date(v.get("as_of")),
        "where": here,
        "model_version": _text(v.get("model_version")),
    }


def _timeline_steps(
    phase: str, step: object, nxt: Mapping[str, Any], configured: Sequence[int]
) -> list[tuple[str, Any]]:
    steps: list[int] = [int(s) for s in configured]
    for s in (step if phase == "controlled" else None, nxt.get("step")):
        if _finite(s) and int(s) not in steps:
            steps.append(int(s))
    out: list[tuple[str, Any]] = []
    for p in PHASES:
        if p == "controlled":
            out += [(p, s) for s in sorted(steps)]
        else:
            out.append((p, None))
    return out


def _blocking_items(v: Mapping[str, Any], target_phase: str | None) -> list[dict[str, str]]:
    if target_phase not in PHASES:
        return []
    t = PHASES.index(target_phase)
    out = []
    for name, items in (v.get("checklists") or {}).items():
        for i in items or []:
            blocks = i.get("blocks")
            if i.get("status") != "done" and blocks in PHASES and t >= PHASES.index(blocks):
                out.append(
                    {
                        "checklist": CHECKLIST_TITLES.get(name, str(name)),
                        "item": _text(i.get("item")),
                        "status": _text(i.get("status")),
                    }
                )
    return out


def _timeline_view(v: Mapping[str, Any], controlled_steps: Sequence[int]) -> dict[str, Any]:
    phase, step = v.get("phase"), v.get("step")
    nxt = v.get("next") or {}
    steps = _timeline_steps(str(phase), step, nxt, controlled_steps)
    here = (phase, int(step) if phase == "controlled" and _finite(step) else None)
    there = (nxt.get("phase"), int(nxt["step"]) if _finite(nxt.get("step")) else None)
    cur = steps.index(here) if here in steps else -1
    out = []
    for i, (p, s) in enumerate(steps):
        if i == cur:
            state = "current"
        elif (p, s) == there and i > cur:
            state = "next"
        elif i < cur:
            state = "done"
        else:
            state = "later"
        note = f"{s}% {PHASE_NOTES[p]}" if p == "controlled" else PHASE_NOTES.get(p, "")
        out.append({"label": phase_label(p, s), "note": note, "state": state})
    criteria = [
        {
            "name": _text(c.get("name")),
            "segment": _text(c.get("segment")),
            "outcome": _text(c.get("outcome")),
        }
        for c in v.get("criteria") or []
    ]
    days, min_days = v.get("days_in_phase"), v.get("min_days")
    if _finite(min_days):
        so_far = f"{int(days)} so far" if _finite(days) else "phase start unknown"
        duration = f"at least {int(min_days)} days in the phase ({so_far})"
    else:
        duration = ""
    final = phase == "ga"
    return {
        "steps": out,
        "next": _next_label(v),
        "final": final,
        "criteria": _summarize_criteria(criteria),
        "duration": duration,
        "blocking": _blocking_items(v, nxt.get("phase")),
        "mode": _text(v.get("mode")),
        "audience": _text(v.get("audience")),
    }


def _summarize_criteria(criteria: list[dict[str, str]]) -> list[dict[str, str]]:
    """Per criterion name: how many segments pass (so 'each segment' rows read as one line)."""
    by_name: dict[str, list[str]] = {}
    for c in criteria:
        by_name.setdefault(c["name"], []).append(c["outcome"])
    out = []
    for name, outcomes in by_name.items():
        n_pass = sum(o == "pass" for o in outcomes)
        if len(outcomes) == 1:
            status = outcomes[0]
        elif n_pass == len(outcomes):
            status = "pass"
        else:
            status = "fail" if "fail" in outcomes else "insufficient"
        detail = f"{n_pass} of {len(outcomes)} segments pass" if len(outcomes) > 1 else ""
        out.append({"name": name, "outcome": status, "detail": detail})
    return out


def _criterion_row(c: Mapping[str, Any]) -> dict[str, str]:
    metric = c.get("metric")
    comp = COMPARATORS.get(str(c.get("comparator")), _text(c.get("comparator")))
    needed = c.get("needed")
    return {
        "name": _text(c.get("name")),
        "metric": _text(metric),
        "segment": _text(c.get("segment")),
        "value": fmt_value(metric, c.get("value")),
        "interval": fmt_interval(metric, c.get("ci_low"), c.get("ci_high")),
        "n": fmt_int(c.get("n")),
        "requirement": f"{comp} {fmt_value(metric, c.get('threshold'))}",
        "outcome": _text(c.get("outcome")),
        "detail": readable(c.get("detail")),
        "window": _text(c.get("window")),
        "needed": f"needs ≈{int(needed):,} items" if _finite(needed) else "",
    }


_OUTCOME_ORDER = {"fail": 0, "insufficient": 1, "pass": 2}


def _criteria_view(v: Mapping[str, Any]) -> dict[str, Any]:
    rows = [_criterion_row(c) for c in v.get("criteria") or []]
    omitted: dict[str, int] = {}
    if len(rows) > MAX_CRITERIA_ROWS:  # keep what blocks; leave out passing rows first
        rows.sort(key=lambda r: _OUTCOME_ORDER.get(r["outcome"], 3))
        for r in rows[MAX_CRITERIA_ROWS:]:
            omitted[r["outcome"]] = omitted.get(r["outcome"], 0) + 1
        rows = rows[:MAX_CRITERIA_ROWS]
    level = v.get("confidence_level")
    return {
        "rows": rows,
        "omitted": ", ".join(f"{n} {o}" for o, n in omitted.items()),
        "level": fmt_pct(level, 0) if _finite(level) else "the configured",
    }


def _checklists_view(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    lists = v.get("checklists") or {}
    for name in ("model", "infrastructure", "user"):
        items = [
            {
                "item": _text(i.get("item")),
                "status": _text(i.get("status")),
                "css": _text(i.get("status")).replace(" ", "-"),
                "evidence": readable(i.get("evidence")),
                "owner": _text(i.get("owner")),
                "blocks": phase_label(i.get("blocks")),
            }
            for i in lists.get(name) or []
        ]
        done = sum(i["status"] == "done" for i in items)
        out.append(
            {"title": CHECKLIST_TITLES[name], "entries": items, "done": done, "total": len(items)}
        )
    return out
