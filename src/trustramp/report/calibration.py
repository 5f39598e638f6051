"""The calibration section's numbers: the calibration scores of the monitoring window, the gate's
debiased and smooth ECE, PSI per model version, and the recalibration map when one is recommended
(the reliability and confidence charts are drawn by `trustramp.report.charts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trustramp.report.formatting import MAX_SEGMENT_ROWS, SCORES, _finite, _text, fmt_int, fmt_value
from trustramp.report.frames import _by, _rows

if TYPE_CHECKING:
    from trustramp.report import ReportInputs


def _calibration_view(inputs: ReportInputs) -> dict[str, Any]:
    m = inputs.metrics
    overall = _by(_rows(m, window="window", metrics=tuple(SCORES)), None).get(None, {})
    items = []
    for metric, name in (
        ("ece", "ECE (top-label)"),
        ("ece_equal_mass", "ECE (equal-mass bins)"),
        ("mce", "MCE"),
        ("brier", "Brier score"),
        ("log_loss", "log loss"),
    ):
        r = overall.get(metric)
        if r is None:
            continue
        n = r.get("n")
        note = ""
        if metric.startswith("ece") and _finite(n) and float(n) < 1000:
            note = "noisy: fewer than 1,000 labeled items"
        items.append(
            {
                "name": name,
                "metric": metric,
                "value": fmt_value(metric, r.get("value")),
                "n": fmt_int(n),
                "note": note,
            }
        )
    psi = _rows(m, window="window", metrics="psi", present=("model_version",))
    psi_rows = [
        {
            "version": _text(r["model_version"]),
            "value": fmt_value("psi", r["value"]),
            "n": fmt_int(r["n"]),
        }
        for r in psi.to_dict("records")
    ][:MAX_SEGMENT_ROWS]
    recal = None
    rc = inputs.recalibration
    if rc is not None:
        chosen = getattr(getattr(rc, "chosen", None), "name", None)
        recal = {
            "map": _text(chosen) or "identity",
            "before": fmt_value("ece", getattr(rc, "ece_before", None)),
            "after": fmt_value("ece", getattr(rc, "ece_after", None)),
            "n": fmt_int(getattr(rc, "n_holdout", None)),
            "recommended": chosen not in (None, "identity"),
        }
    n_bins = 0 if inputs.reliability is None else len(inputs.reliability)
    gate = None
    cal = inputs.verdict.get("calibration")
    if isinstance(cal, Mapping) and _finite(cal.get("ece")):
        gate = {
            "n": fmt_int(cal.get("n")),
            "ece": fmt_value("ece", cal.get("ece")),
            "debiased": fmt_value("ece", cal.get("ece_debiased_l2")),
            "smece": fmt_value("ece", cal.get("smece")),
            "sigma": f"{float(cal['smece_sigma']):.3f}" if _finite(cal.get("smece_sigma")) else "",
        }
    return {
        "entries": items,
        "psi": psi_rows,
        "recalibration": recal,
        "bins": n_bins,
        "gate": gate,
    }
