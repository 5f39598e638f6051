"""The alerts section: the alerts of the last 24 hours (critical first, each with its one-sided
bound and action), the rollback triggers with their evidence, and the escalation path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trustramp.report.formatting import _finite, _text, fmt_int, fmt_value, readable

MAX_ALERT_ROWS = 40


_LEVEL_ORDER = {"critical": 0, "warning": 1}


def _escalation_steps(steps: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for e in steps:
        within = e.get("within_minutes")
        out.append(
            {
                "role": _text(e.get("role")),
                "what": _text(e.get("what")),
                "within": (
                    "immediately"
                    if within == 0
                    else (f"within {int(within)} min" if _finite(within) else "")
                ),
            }
        )
    return out


def _bound(a: Mapping[str, Any]) -> str:
    """An alert's one-sided bound on its alerting side: ``≤ 86.1%`` for accuracy (the upper
    bound), ``≥ 4.0%`` for the others; '' without one."""
    if not _finite(a.get("bound")):
        return ""
    return ("≤ " if a.get("metric") == "accuracy" else "≥ ") + fmt_value(
        a.get("metric"), a["bound"]
    )


def _alerts_view(v: Mapping[str, Any], escalation: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    alerts = list(v.get("alerts") or [])
    alerts.sort(key=lambda a: (_LEVEL_ORDER.get(a.get("level") or "", 2), str(a.get("metric"))))
    rows = []
    for a in alerts[:MAX_ALERT_ROWS]:
        metric = a.get("metric")
        firing = a.get("level") in ("warning", "critical")
        rows.append(
            {
                "level": _text(a.get("level")) if firing else "no data",
                "css": _text(a.get("level")) if firing else "insufficient",
                "metric": _text(metric),
                "segment": _text(a.get("segment")),
                "model_version": _text(a.get("model_version")),
                "value": fmt_value(metric, a.get("value")),
                "threshold": fmt_value(metric, a.get("threshold")),
                "bound": _bound(a),
                "n": fmt_int(a.get("n")),
                "action": _text(a.get("action")) if firing else "collect more data",
                "message": readable(a.get("message")),
            }
        )
    path = next((a.get("escalation") for a in alerts if a.get("escalation")), None) or escalation
    triggers = [
        {
            "trigger": _text(t.get("trigger")),
            "fired": bool(t.get("fired")),
            "evidence": readable(t.get("evidence")),
        }
        for t in v.get("rollback_triggers") or []
    ]
    return {
        "rows": rows,
        "versions": any(r["model_version"] for r in rows),
        "bounds": any(r["bound"] for r in rows),
        "omitted": max(0, len(alerts) - MAX_ALERT_ROWS),
        "firing": sum(r["css"] in ("warning", "critical") for r in rows),
        "escalation": _escalation_steps(path or []),
        "triggers": triggers,
    }
