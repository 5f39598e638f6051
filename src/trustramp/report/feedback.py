"""The feedback and incidents section: the share of positive ratings and the NPS, the first
comments, and the open incidents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustramp.report.formatting import (
    _finite,
    _missing,
    _text,
    fmt_datetime,
    fmt_int,
    fmt_pct,
)

if TYPE_CHECKING:
    from trustramp.report import ReportInputs


MAX_COMMENTS = 8
MAX_INCIDENTS = 10


def _feedback_view(inputs: ReportInputs) -> dict[str, Any]:
    fb = inputs.feedback or {}
    positive, ratings = fb.get("positive"), fb.get("ratings")
    share = (
        fmt_pct(float(positive) / float(ratings))
        if _finite(positive) and _finite(ratings) and float(ratings) > 0
        else "n/a"
    )
    comments = [
        {
            "when": fmt_datetime(c.get("submitted_at")),
            "segment": _text(c.get("segment")),
            "customer": _text(c.get("customer_id")),
            "rating": _text(c.get("rating")),
            "comment": _text(c.get("comment")),
        }
        for c in list(fb.get("comments") or [])[:MAX_COMMENTS]
    ]
    incidents = [
        {
            "id": _text(i.get("incident_id")),
            "severity": _text(i.get("severity")),
            "kind": _text(i.get("kind")),
            "title": _text(i.get("title")),
            "opened": fmt_datetime(i.get("opened_at")),
            "resolved": "open"
            if _missing(i.get("resolved_at"))
            else fmt_datetime(i["resolved_at"]),
        }
        for i in list(inputs.incidents)[:MAX_INCIDENTS]
    ]
    nps = fb.get("nps")
    return {
        "present": bool(fb),
        "share": share,
        "ratings": fmt_int(ratings),
        "nps": f"{float(nps):+.0f}" if _finite(nps) else "n/a",
        "comments": comments,
        "incidents": incidents,
        "incidents_omitted": max(0, len(inputs.incidents) - MAX_INCIDENTS),
    }
