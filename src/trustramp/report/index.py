"""The index page of past runs: every feature's runs found under
``<feature>/<as-of>/verdict.json``, newest first, with the verdict history chart and links to
each run's page and verdict document.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

from trustramp.report import charts as ch
from trustramp.report.formatting import _date, _text, fmt_date, phase_label, readable
from trustramp.report.page import _env
from trustramp.report.verdict import _next_label

log = logging.getLogger(__name__)


MAX_INDEX_RUNS = 120
"""Runs listed per feature on the index page (newest first)."""


def _scan_runs(reports: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """``{feature: [run, ...]}`` newest first, and the verdict files that could not be read."""
    runs: dict[str, list[dict[str, Any]]] = {}
    bad: list[str] = []
    for vpath in sorted(reports.glob("*/*/verdict.json")):
        run_dir, feature_dir = vpath.parent, vpath.parent.parent
        if run_dir.name.startswith(".") or feature_dir.name.startswith("."):
            continue  # a run being written or replaced
        try:
            doc = json.loads(vpath.read_text("utf-8"))
            as_of = _date(doc.get("as_of")) or _date(run_dir.name)
            if (
                not isinstance(doc, dict)
                or as_of is None
                or doc.get("verdict") not in ch.VERDICT_COLOURS
            ):
                raise ValueError("not a verdict document")
        except (OSError, ValueError, AttributeError) as e:
            log.warning("index: skipping %s: %s", vpath, e)
            bad.append(vpath.relative_to(reports).as_posix())
            continue
        rel = run_dir.relative_to(reports).as_posix()
        html = run_dir / "readiness.html"
        reasons = [readable(r) for r in doc.get("reasons") or []]
        runs.setdefault(feature_dir.name, []).append(
            {
                "as_of": as_of,
                "as_of_text": fmt_date(as_of),
                "verdict": doc["verdict"],
                "css": str(doc["verdict"]).lower(),
                "where": phase_label(doc.get("phase"), doc.get("step")),
                "next": _next_label(doc),
                "reason": reasons[1]
                if len(reasons) > 1 and reasons[0].startswith("The rollout holds")
                else (reasons[0] if reasons else ""),
                "href": urllib.parse.quote(f"{rel}/readiness.html") if html.exists() else None,
                "json": urllib.parse.quote(f"{rel}/verdict.json"),
                "version": _text(doc.get("model_version")),
            }
        )
    for rs in runs.values():
        rs.sort(key=lambda r: r["as_of"], reverse=True)
    return dict(sorted(runs.items())), bad


def render_index(reports_dir: str | os.PathLike[str]) -> str:
    """The index page of ``reports_dir``: every feature's runs, newest first, with links."""
    reports = Path(reports_dir)
    runs, bad = _scan_runs(reports)
    history = [
        (f, [(r["as_of"], r["verdict"]) for r in rs[:MAX_INDEX_RUNS]]) for f, rs in runs.items()
    ]
    features = [
        {
            "name": f,
            "runs": rs[:MAX_INDEX_RUNS],
            "omitted": max(0, len(rs) - MAX_INDEX_RUNS),
            "latest": rs[0],
        }
        for f, rs in runs.items()
    ]
    chart = ch.history_chart("chart-verdict-history", history)
    return (
        _env()
        .get_template("index.html.j2")
        .render(
            features=features,
            chart=chart,
            bad=bad,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            colours=ch.VERDICT_COLOURS,
        )
    )


def write_index(reports_dir: str | os.PathLike[str]) -> Path:
    """Write ``reports_dir/index.html`` listing the runs under ``<feature>/<as-of>/verdict.json``.

    Returns
    -------
    pathlib.Path
        The written ``index.html``.
    """
    reports = Path(reports_dir)
    if not reports.is_dir():
        raise FileNotFoundError(f"reports_dir {str(reports)!r} is not a folder")
    html = render_index(reports)
    target = reports / "index.html"
    tmp = reports / ".index.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target
