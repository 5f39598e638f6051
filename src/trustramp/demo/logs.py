"""The two small logs: feedback from internal users, and the incidents.

Feedback rows are drawn block by block (`_feedback_rows`, mostly positive, more so when the shown
suggestion was right) and turned into columns once (`_feedback_columns`); the incidents are
fixed: a resolved major bug on the bad day, an open minor one, and with `open_critical` an open
critical bug.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trustramp.contract import FEEDBACK, IncidentKind, Rating, Severity
from trustramp.demo._common import _DAY_US, _Plan

_COMMENTS = {
    True: (
        "Saved me a lot of time",
        "Spot on, as usual",
        'Picked "refund" before I did, nice',
        "Très utile, merci",
        None,
    ),
    False: (
        "Wrong queue again",
        "Suggested billing, it was clearly a refund",
        'Confidence said 0.9 but the label was wrong, "again"',
        "Too slow today",
        None,
    ),
}


def _feedback_rows(
    plan: _Plan,
    rng: np.random.Generator,
    items: np.ndarray,
    arrival_us: np.ndarray,
    cust: np.ndarray,
    seg: np.ndarray,
    truth: np.ndarray,
    live: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Feedback from internal users on some of their items, mostly positive."""
    pool = np.flatnonzero(seg == plan.feedback_segment)
    k = int(rng.binomial(len(pool), plan.feedback_rate)) if len(pool) else 0
    pick = np.sort(rng.choice(pool, size=k, replace=False)) if k else pool[:0]
    right = live["label"][pick] == truth[pick]
    positive = rng.random(k) < np.where(right, 0.89, 0.40)
    nps = np.where(
        positive,
        rng.choice([7, 8, 9, 10], k, p=[0.1, 0.25, 0.35, 0.3]),
        rng.choice(7, k, p=[0.05, 0.05, 0.1, 0.15, 0.2, 0.2, 0.25]),
    )
    nps = np.where(rng.random(k) < 0.2, -1, nps)
    comment = rng.integers(0, len(_COMMENTS[True]), k) + np.where(rng.random(k) < 0.6, 99, 0)
    delay_us = rng.integers(600, 36 * 3600, k) * 1_000_000
    return {
        "t": arrival_us[pick] + delay_us,
        "inum": items[pick],
        "linked": rng.random(k) < 0.7,
        "cust": cust[pick],
        "user": cust[pick].astype(np.int64) * 10 + rng.integers(0, 10, k),
        "positive": positive,
        "nps": nps.astype(np.int64),
        "comment": comment,
    }


def _feedback_columns(plan: _Plan, chunks: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    fb = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]} if chunks else {}
    if not fb or not len(fb["t"]):
        return {name: [] for name in FEEDBACK.names}
    keep = fb["t"] < plan.end_us
    order = np.lexsort((fb["inum"][keep], fb["t"][keep]))
    fb = {k: a[keep][order] for k, a in fb.items()}
    n = len(fb["t"])
    item_ids = [
        f"i-{plan.tag}-{i:0{plan.width}d}" if linked else None
        for i, linked in zip(fb["inum"].tolist(), fb["linked"].tolist(), strict=True)
    ]
    comments = []
    for positive, c in zip(fb["positive"].tolist(), fb["comment"].tolist(), strict=True):
        comments.append(_COMMENTS[positive][c] if c < 99 else None)
    return {
        "feedback_id": [f"fb-{plan.tag}-{i:06d}" for i in range(1, n + 1)],
        "submitted_at": fb["t"],
        "feature": [plan.feature] * n,
        "customer_id": [_customer_id(plan, c) for c in fb["cust"].tolist()],
        "segment": [plan.segments[plan.feedback_segment]] * n,
        "user_id": [f"u-{plan.tag}-{u:07d}" for u in fb["user"].tolist()],
        "rating": [
            Rating.POSITIVE.value if p else Rating.NEGATIVE.value for p in fb["positive"].tolist()
        ],
        "nps_score": [None if x < 0 else x for x in fb["nps"].tolist()],
        "comment": comments,
        "item_id": item_ids,
    }


def _incident_columns(plan: _Plan, open_critical: bool) -> dict[str, Any]:
    day0 = plan.start_us
    bad = plan.bad_day

    def at(day: int, hour: float) -> int:
        minutes = round(hour * 60)
        return day0 + min(max(day, 0), plan.days - 1) * _DAY_US + minutes * 60_000_000

    rows = [
        (
            at(bad, 9.2),
            at(bad + 1, 15.7),
            Severity.MAJOR,
            IncidentKind.BUG,
            "Model server returns 5xx and times out under load after a bad deploy",
        ),
        (
            at(plan.days - 3, 11.5),
            None,
            Severity.MINOR,
            IncidentKind.BUG,
            "Suggestion panel shows the label's internal code instead of its name",
        ),
    ]
    if open_critical:
        rows.append(
            (
                at(plan.days - 2, 8.0),
                None,
                Severity.CRITICAL,
                IncidentKind.BUG,
                "Suggestions shown for the wrong ticket after a page reload",
            )
        )
    return {
        "incident_id": [f"inc-{plan.tag}-{i:03d}" for i in range(1, len(rows) + 1)],
        "feature": [plan.feature] * len(rows),
        "opened_at": np.array([r[0] for r in rows], dtype=np.int64),
        "resolved_at": np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64),
        "severity": [r[2].value for r in rows],
        "kind": [r[3].value for r in rows],
        "title": [r[4] for r in rows],
    }


def _customer_id(plan: _Plan, number: int) -> str:
    return f"c-{plan.tag}-{number:0{plan.cust_width}d}"
