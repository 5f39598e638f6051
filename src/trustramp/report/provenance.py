"""The page's last two sections: data quality (the gate window's predictions, labels and label
coverage, the rows landed by kind and the rows quarantined by reason) and provenance (run id,
config hash, version and whatever else says where the page came from).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustramp.report.formatting import (
    MAX_SEGMENT_ROWS,
    _finite,
    _text,
    fmt_date,
    fmt_int,
    fmt_pct,
    fmt_span,
    readable,
)

if TYPE_CHECKING:
    from trustramp.report import ReportInputs


def _data_view(inputs: ReportInputs) -> dict[str, Any]:
    v = inputs.verdict
    data = v.get("data") or {}
    ingest = inputs.ingest or {}
    quarantined = ingest.get("quarantined")
    if quarantined is None:
        quarantined = data.get("quarantined_by_reason") or {}
    q_rows = sorted(
        ((str(k), int(n)) for k, n in quarantined.items() if _finite(n)), key=lambda kv: -kv[1]
    )
    ingested = ingest.get("ingested") or {}
    return {
        "window": fmt_span(data.get("window_start"), data.get("window_end")),
        "predictions": fmt_int(data.get("predictions")),
        "labeled": fmt_int(data.get("labeled")),
        "coverage": fmt_pct(data.get("label_coverage")),
        "quarantined": fmt_int(data.get("quarantined")),
        "ingested": [(str(k), fmt_int(n)) for k, n in ingested.items()],
        "quarantine": [(k, fmt_int(n)) for k, n in q_rows[:MAX_SEGMENT_ROWS]],
        "quarantine_omitted": max(0, len(q_rows) - MAX_SEGMENT_ROWS),
    }


_PROVENANCE_ORDER = (
    ("run_id", "run id"),
    ("generated_at", "generated at"),
    ("config_hash", "config hash"),
    ("trustramp_version", "trustramp version"),
    ("data_window", "data window"),
    ("home", "home"),
)


def _provenance_view(inputs: ReportInputs) -> list[tuple[str, str]]:
    v = inputs.verdict
    prov = dict(inputs.provenance or {})
    prov.setdefault("config_hash", v.get("config_hash"))
    prov.setdefault("trustramp_version", v.get("trustramp_version"))
    if "run_id" in v:
        prov.setdefault("run_id", v.get("run_id"))
    out = [("feature", _text(v.get("feature"))), ("as of", fmt_date(v.get("as_of")))]
    if v.get("model_version"):
        out.append(("model version", _text(v.get("model_version"))))
    for key, label in _PROVENANCE_ORDER:
        if prov.get(key) is not None:
            out.append((label, _provenance_text(prov.pop(key))))
        else:
            prov.pop(key, None)
    out += [(str(k).replace("_", " "), _provenance_text(val)) for k, val in prov.items()]
    return out


def _provenance_text(v: object) -> str:
    """Dates and times readable; paths (which may hold dates) as they are."""
    text = _text(v)
    return text if "/" in text or "\\" in text else readable(text)
