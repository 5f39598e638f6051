"""The HTML readiness report and the index (SPEC 4): sections, escaping, size, self-containment;
and, marked slow, the page in a headless Chromium with no network.

`build_inputs` simulates a realistic run (seeded): a few weeks of predictions per segment with the
demo's planted effects (a weak segment, an over-confident band, a bad day), reduced the way the
pipeline does it to the tidy metrics table, a verdict decided by `trustramp.decide`, thresholds
certified by `trustramp.decide.thresholds`, and the small frames the report draws.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from trustramp.config import RolloutConfig, default_config_text, parse_config
from trustramp.decide.evidence import (
    Calibration,
    Count,
    DataSummary,
    Evidence,
    Incident,
    Observed,
    Regression,
    SegmentFlag,
)
from trustramp.decide.thresholds import (
    Stage,
    apply_progression,
    grid_counts,
    recommend_by_group,
    recommend_thresholds,
    replay_policy,
)
from trustramp.decide.verdict import decide
from trustramp.report import METRIC_COLUMNS, ReportInputs, render_report, write_index, write_report
from trustramp.report.render import CHART_IDS, SECTIONS, fmt_datetime, fmt_span

AS_OF = dt.date(2026, 11, 20)
SEGMENTS = ("internal", "smb", "mid_market", "enterprise")
CUSTOMERS = {"internal": 3, "smb": 30, "mid_market": 12, "enterprise": 5}
LEVEL = 0.95
XSS = {
    "segment": "<script>window.__xss=1;document.title='pwned'</script>",
    "customer": '"><img src=x onerror="window.__xss=2">',
    "reason": '<svg onload="window.__xss=3"></svg><b>bold?</b>',
    "title": "</td><script>window.__xss=4</script>",
    "comment": '</blockquote><iframe src="javascript:window.__xss=5"></iframe>',
    "feature": "feat<script>window.__xss=6</script>",
}
"""Payloads that would set ``window.__xss`` or change ``document.title`` if they ran."""


# --------------------------------------------------------------------------------------------
# A realistic run, simulated
# --------------------------------------------------------------------------------------------


def simulate(
    *, segments: tuple[str, ...] = SEGMENTS, days: int = 28, per_day: int = 300, seed: int = 7
) -> pd.DataFrame:
    """One row per prediction: day, segment, customer, mode, confidence, outcome, latency."""
    rng = np.random.default_rng(seed)
    first = AS_OF - dt.timedelta(days=days - 1)
    d_idx = np.repeat(np.arange(days), len(segments) * per_day)
    s_idx = np.tile(np.repeat(np.arange(len(segments)), per_day), days)
    n = d_idx.size
    seg = np.asarray(segments, dtype=object)[s_idx]
    n_cust = np.array([CUSTOMERS.get(s, 8) for s in segments])[s_idx]
    cust = np.array(
        [f"{s}-{c:03d}" for s, c in zip(seg, rng.integers(0, 1 << 30, n) % n_cust, strict=True)]
    )
    conf = np.clip(rng.beta(20, 0.9, n), 0.3, 1.0)
    p = conf.copy()
    p[(conf >= 0.80) & (conf < 0.95)] -= 0.06  # over-confident confirm band
    p[seg == segments[-1]] -= 0.05  # weak segment
    correct = rng.random(n) < np.clip(p, 0, 1)
    age = days - 1 - d_idx
    labeled = rng.random(n) < 0.93 * np.minimum(1.0, (age + 1) / 4)  # labels still arriving
    shown = (d_idx >= days // 2) & (rng.random(n) >= 0.1)  # second half: 10 % blind hold-out
    mode = np.where(shown, np.where(rng.random(n) < 0.8, "suggestion", "confirmation"), "shadow")
    bad_day = d_idx == days - 5
    failed = rng.random(n) < np.where(bad_day, 0.10, 0.004)
    latency = rng.lognormal(np.log(700), 0.5, n) * np.where(bad_day, 12, 1)
    overridden = shown & labeled & ~correct & (rng.random(n) < 0.7)
    version = np.where(d_idx < days // 3, "v6", "v7")
    return pd.DataFrame(
        {
            "day": [first + dt.timedelta(days=int(i)) for i in d_idx],
            "segment": seg,
            "customer_id": cust,
            "model_version": version,
            "mode": mode,
            "confidence": conf,
            "correct": np.where(labeled & ~failed, correct.astype(float), np.nan),
            "labeled": labeled & ~failed,
            "failed": failed,
            "shown": shown,
            "overridden": overridden,
            "latency_ms": latency,
        }
    )


def _wilson(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = proportion_confint(k, np.maximum(n, 1), alpha=1 - LEVEL, method="wilson")
    return np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)


def _rate(g: pd.DataFrame, keys: list[str], metric: str, k: str, n: str) -> pd.DataFrame:
    s = (
        g.groupby(keys, dropna=False)[[k, n]].sum().reset_index()
        if keys
        else g[[k, n]].sum().to_frame().T
    )
    s = s[s[n] > 0]
    kk, nn = s[k].to_numpy(float), s[n].to_numpy(float)
    lo, hi = _wilson(kk, nn)
    out = s[keys].copy() if keys else pd.DataFrame(index=range(len(s)))
    out["metric"], out["value"], out["ci_low"], out["ci_high"] = metric, kk / nn, lo, hi
    out["n"] = nn.astype(int)
    return out


def _ece(g: pd.DataFrame, keys: list[str], bins: int = 15) -> pd.DataFrame:
    lab = g[g["labeled"] & (g["mode"] == "shadow")]
    b = np.clip(np.ceil(lab["confidence"] * bins) - 1, 0, bins - 1)
    t = lab.assign(bin=b, hit=lab["correct"])
    per = t.groupby([*keys, "bin"]).agg(
        n=("hit", "size"), hit=("hit", "sum"), conf=("confidence", "sum")
    )
    per["gap"] = (per["hit"] - per["conf"]).abs()
    agg = (
        per.groupby(keys).agg(n=("n", "sum"), gap=("gap", "sum")).reset_index()
        if keys
        else (pd.DataFrame({"n": [per["n"].sum()], "gap": [per["gap"].sum()]}))
    )
    out = agg[keys].copy() if keys else pd.DataFrame(index=range(len(agg)))
    out["metric"], out["value"], out["n"] = (
        "ece",
        (agg["gap"] / agg["n"]).to_numpy(),
        agg["n"].to_numpy(),
    )
    out["ci_low"] = out["ci_high"] = np.nan
    return out


def metrics_frame(items: pd.DataFrame) -> pd.DataFrame:
    """The tidy metrics table (SPEC 2 columns) of simulated items, as the pipeline shapes it."""
    x = items.assign(
        hit=items["correct"].fillna(0.0),
        unshown_lab=items["labeled"] & ~items["shown"],
        shown_lab=items["labeled"] & items["shown"],
        one=1,
    )
    x["hit_unshown"] = x["hit"] * x["unshown_lab"]
    frames = []
    for window, keys in (
        ("day", ["day"]),
        ("day", ["day", "segment"]),
        ("window", []),
        ("window", ["segment"]),
        ("window", ["mode"]),
        ("window", ["model_version"]),
    ):
        parts = [
            _rate(x, keys, "accuracy", "hit_unshown", "unshown_lab"),
            _rate(x, keys, "label_coverage", "labeled", "one"),
            _rate(x, keys, "error_rate", "failed", "one"),
            _rate(x, keys, "override_rate", "overridden", "shown_lab"),
        ]
        if keys == ["mode"]:
            x2 = x.assign(hit_all=x["hit"] * x["labeled"])
            parts[0] = _rate(x2, keys, "accuracy", "hit_all", "labeled")
        lat = (
            x.groupby(keys)["latency_ms"]
            .agg(value=lambda v: float(np.percentile(v, 95)), n="size")
            .reset_index()
            if keys
            else pd.DataFrame({"value": [float(np.percentile(x["latency_ms"], 95))], "n": [len(x)]})
        )
        lat["metric"], lat["ci_low"], lat["ci_high"] = "latency_p95", np.nan, np.nan
        parts.append(lat)
        if window == "window" and keys in ([], ["segment"]):
            parts.append(_ece(x, keys))
        for part in parts:
            part["window"] = window
        frames += parts
    cust = _rate(x, ["customer_id", "segment"], "accuracy", "hit_unshown", "unshown_lab")
    cust["window"] = "window"
    frames.append(cust)
    table = pd.concat(frames, ignore_index=True)
    table["feature"] = "triage"
    for col in METRIC_COLUMNS:
        if col not in table:
            table[col] = None
    return table[list(METRIC_COLUMNS)]


def _config(**over: Any) -> RolloutConfig:
    data = yaml.safe_load(default_config_text())
    for name in ("infrastructure", "user"):
        for i, a in enumerate(data["attestations"][name]):
            a.update(done=i % 3 != 2, owner="ops", evidence="https://wiki.example/runbook")
    data.update(feature="triage", phase="controlled", step=25, phase_started="2026-10-20")
    data.update(over)
    data.pop("segment_priority")  # parse_config keeps the default scores of configured segments
    return parse_config(data)


def _count(frame: pd.DataFrame, k: str, n: str) -> Count:
    return Count(int(frame[k].sum()), int(frame[n].sum()))


def _audit(groups: dict[str, pd.DataFrame], segs: list[str]) -> pd.DataFrame:
    """The bias audit's table on the gate window's unshown accuracy, in ``segs`` order."""
    from trustramp.metrics import bias_audit

    counts = pd.DataFrame(
        {
            "segment": segs,
            "k": [int(groups[s]["hit"].sum()) for s in segs],
            "n": [int(groups[s]["unshown"].sum()) for s in segs],
        }
    )
    return bias_audit(counts).table.set_index("segment").loc[segs].reset_index()


def evidence_from(items: pd.DataFrame, **over: Any) -> Evidence:
    """Evidence for `decide` from the simulated items (matured window: up to 7 days ago)."""
    end = AS_OF - dt.timedelta(days=7)
    w = items[(items["day"] <= end) & (items["model_version"] == "v7")]
    w = w.assign(
        unshown=w["labeled"] & ~w["shown"],
        hit=w["correct"].fillna(0) * (w["labeled"] & ~w["shown"]),
        shown_lab=w["labeled"] & w["shown"],
        one=1,
    )
    last = items[items["day"] == AS_OF].assign(
        hit=lambda f: f["correct"].fillna(0) * f["labeled"],
        one=1,
        shown_lab=lambda f: f["labeled"] & f["shown"],
    )
    segs = [str(s) for s in pd.unique(items["segment"])]
    groups = {"all": w, **{s: w[w["segment"] == s] for s in segs}}
    lgroups = {"all": last, **{s: last[last["segment"] == s] for s in segs}}
    rolling: dict[tuple[str, str], Count | Observed] = {}
    for g, f in lgroups.items():
        rolling[("accuracy", g)] = _count(f, "hit", "labeled")
        rolling[("error_rate", g)] = _count(f, "failed", "one")
        rolling[("override_rate", g)] = _count(f, "overridden", "shown_lab")
        rolling[("latency_p95", g)] = Observed(float(np.percentile(f["latency_ms"], 95)), len(f))
    rolling[("availability", "all")] = Count(int((~last["failed"]).sum()), len(last))
    base: dict[str, Any] = dict(
        feature="triage",
        as_of=AS_OF,
        window_start=min(w["day"]),
        window_end=end,
        model_version="v7",
        accuracy={g: _count(f, "hit", "unshown") for g, f in groups.items()},
        error={g: _count(f, "failed", "one") for g, f in groups.items()},
        override={g: _count(f, "overridden", "shown_lab") for g, f in groups.items()},
        rolling_24h=rolling,
        positive_feedback=Count(170, 200),
        nps=31.0,
        incidents=[],
        calibration=Calibration(
            ece=0.061,
            p_value=0.002,
            noise_floor=0.008,
            n=int(w["unshown"].sum()),
            ece_debiased_l2=0.047,
            smece=0.052,
            smece_sigma=0.041,
        ),
        regression=Regression("v7", "v6", 3_000, 0.91, 0.90, 0.2, False),
        bias={
            s: SegmentFlag(
                s,
                "worse" if s == segs[-1] else "ok",
                "7.9 pp below overall (Holm p < 0.001)" if s == segs[-1] else "",
                2_000,
                p_holm=float(r.p_adjusted),
                q_bh=float(r.p_bh),
            )
            for s, r in zip(segs, _audit(groups, segs).itertuples(), strict=True)
        },
        data=DataSummary(
            predictions=len(items), labeled=int(items["labeled"].sum()), quarantined=37
        ),
    )
    base.update(over)
    return Evidence(**base)


def _tradeoff(cells: pd.DataFrame, target: float) -> pd.DataFrame:
    c = cells.sort_values("lo", ascending=False)
    n, k, tot = (
        c["n"].cumsum().to_numpy(),
        c["correct"].cumsum().to_numpy(),
        c["total"].cumsum().to_numpy(),
    )
    lo, hi = _wilson(k.astype(float), n.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    return pd.DataFrame(
        {
            "threshold": c["lo"].round(2).to_numpy(),
            "share": tot / cells["total"].sum(),
            "accuracy": acc,
            "ci_low": lo,
            "ci_high": hi,
            "p_value": np.where(n > 0, stats.binom.sf(k - 1, n, target), 1.0),
        }
    )


def _hist(conf: np.ndarray, bins: int = 15) -> np.ndarray:
    idx = np.clip(np.ceil(conf * bins) - 1, 0, bins - 1).astype(int)
    return np.bincount(idx, minlength=bins) / max(len(conf), 1)


def build_inputs(
    *,
    segments: tuple[str, ...] = SEGMENTS,
    days: int = 28,
    per_day: int = 300,
    config: RolloutConfig | None = None,
    evidence: dict[str, Any] | None = None,
    payloads: bool = False,
) -> ReportInputs:
    """A realistic `ReportInputs` (optionally with XSS payloads in every data-borne string)."""
    if payloads:
        segments = (*segments[:-1], XSS["segment"])
    items = simulate(segments=segments, days=days, per_day=per_day)
    if payloads:
        weak = (
            items["customer_id"] == items.loc[items["segment"] == segments[-1], "customer_id"].min()
        )
        items.loc[weak, "customer_id"] = XSS["customer"]  # a big customer of the weak segment
    cfg = config or _config(segments=list(segments))
    ev = evidence_from(items, **(evidence or {}))
    verdict = decide(ev, cfg, trustramp_version="0.1.0").to_dict()
    verdict["data"]["quarantined_by_reason"] = {"confidence outside [0, 1]": 21, "unknown mode": 16}
    verdict["run_id"] = "0123456789ab"
    unshown = items[items["labeled"] & ~items["shown"] & (items["model_version"] == "v7")]
    grid = grid_counts(unshown["confidence"], unshown["correct"], dims={"day": unshown["day"]})
    certified = recommend_thresholds(grid, cfg.routing, min_labels=200, confidence_level=LEVEL)
    rec = apply_progression(certified, Stage.OPTIMIZED)
    by_seg = recommend_by_group(
        grid_counts(
            unshown["confidence"], unshown["correct"], dims={"segment": unshown["segment"]}
        ),
        cfg.routing,
        by="segment",
    )
    recent = items[items["day"] > AS_OF - dt.timedelta(days=14)]
    traffic = grid_counts(recent["confidence"], recent["correct"], dims={"day": recent["day"]})
    current = {
        "auto": cfg.routing.auto,
        "confirm": cfg.routing.confirm,
        "review": cfg.routing.review,
    }
    whatif = replay_policy(traffic, rec.thresholds, current=current, confidence_level=LEVEL)
    lab = unshown
    b = np.clip(np.ceil(lab["confidence"] * 15) - 1, 0, 14).astype(int)
    rel = (
        lab.assign(bin=b)
        .groupby("bin")
        .agg(
            n=("correct", "size"),
            accuracy=("correct", "mean"),
            mean_confidence=("confidence", "mean"),
        )
        .reindex(range(15))
        .reset_index()
    )
    rel["n"] = rel["n"].fillna(0).astype(int)
    rel["lo"], rel["hi"] = rel["bin"] / 15, (rel["bin"] + 1) / 15
    cur = items[items["day"] > AS_OF - dt.timedelta(days=7)]["confidence"].to_numpy()
    base = (
        items[items["day"] < min(items["day"]) + dt.timedelta(days=7)]["confidence"].to_numpy()
        ** 1.3
    )
    hist = pd.DataFrame(
        {
            "bin": range(15),
            "lo": np.arange(15) / 15,
            "hi": np.arange(1, 16) / 15,
            "current": _hist(cur),
            "baseline": _hist(base),
        }
    )
    metrics = metrics_frame(items)
    feedback: dict[str, Any] = {
        "positive": 170,
        "ratings": 200,
        "nps": 31.0,
        "comments": [
            {
                "submitted_at": "2026-11-19T10:02:00Z",
                "segment": "internal",
                "customer_id": "internal-001",
                "rating": "negative",
                "comment": "Suggested the wrong queue for a refund ticket.",
            },
        ],
    }
    incidents: list[dict[str, Any]] = [
        {
            "incident_id": "INC-7",
            "severity": "minor",
            "kind": "bug",
            "title": "Tooltip overlaps button",
            "opened_at": "2026-11-12T08:00:00Z",
            "resolved_at": None,
        },
    ]
    if payloads:
        verdict["reasons"].append(XSS["reason"])
        verdict["feature"] = XSS["feature"]
        feedback["comments"].append(
            {
                "submitted_at": "2026-11-19",
                "segment": XSS["segment"],
                "customer_id": XSS["customer"],
                "rating": "negative",
                "comment": XSS["comment"],
            }
        )
        incidents.append(
            {
                "incident_id": "INC-9",
                "severity": "critical",
                "kind": "security",
                "title": XSS["title"],
                "opened_at": "2026-11-20T01:00:00Z",
                "resolved_at": None,
            }
        )
    return ReportInputs(
        verdict=verdict,
        metrics=metrics,
        thresholds=rec,
        segment_thresholds=by_seg,
        whatif=whatif,
        stage=str(Stage.OPTIMIZED),
        reliability=rel[["bin", "lo", "hi", "n", "accuracy", "mean_confidence"]],
        confidence_hist=hist,
        tradeoff=_tradeoff(certified.cells, cfg.routing.targets["auto"]),
        alert_levels={r.metric: (r.warning, r.critical) for r in cfg.alerts.rules},
        ingest={
            "ingested": {
                "predictions": len(items),
                "decisions": int(items["labeled"].sum()),
                "feedback": 200,
                "incidents": len(incidents),
            }
        },
        provenance={
            "run_id": "0123456789ab",
            "generated_at": "2026-11-21T03:00:00Z",
            "config_hash": cfg.hash(),
            "trustramp_version": "0.1.0",
            "data_window": f"{min(items['day'])}..{AS_OF}",
            "home": "/srv/trustramp/data",
        },
        escalation=[e.model_dump(mode="json") for e in cfg.escalation],
        feedback=feedback,
        incidents=incidents,
        windows={  # the simulated table's "window" rows span every simulated day
            "monitoring": (min(items["day"]), AS_OF),
            "rolling_24h": (AS_OF, AS_OF),
            "aggregated": (min(items["day"]), AS_OF),
        },
    )


@pytest.fixture(scope="module")
def inputs() -> ReportInputs:
    return build_inputs()


@pytest.fixture(scope="module")
def page(inputs: ReportInputs) -> str:
    return render_report(inputs)


@pytest.fixture(scope="module")
def hostile() -> ReportInputs:
    security = Incident("INC-9", "critical", "security", XSS["title"], dt.datetime(2026, 11, 20, 1))
    return build_inputs(payloads=True, evidence={"incidents": [security]})


@pytest.fixture(scope="module")
def hostile_page(hostile: ReportInputs) -> str:
    return render_report(hostile)


# --------------------------------------------------------------------------------------------
# An independent look at the HTML: Python's own parser
# --------------------------------------------------------------------------------------------


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text outside tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    p = Elements()
    p.feed(html)
    p.close()
    return p


# --------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("section", [s for s, _ in SECTIONS])
def test_every_section_is_present(page: str, section: str) -> None:
    ids = [a.get("id") for _, a in parse(page).tags]
    assert ids.count(section) == 1


@pytest.mark.parametrize("chart", CHART_IDS)
def test_every_chart_is_a_captioned_figure_with_an_svg(page: str, chart: str) -> None:
    m = re.search(rf'<figure id="{chart}"[^>]*>(.*?)</figure>', page, re.S)
    assert m, chart
    body = m.group(1)
    assert "<svg" in body and "<figcaption>" in body
    assert "No data" not in body and "No labeled" not in body  # realistic inputs fill every chart


def test_every_svg_is_well_formed_xml_with_a_title(page: str) -> None:
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(svgs) >= len(CHART_IDS)
    for s in svgs:
        root = ET.fromstring(s)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None


def test_marker_ids_are_unique_across_the_page(page: str) -> None:
    ids = [a["id"] for _, a in parse(page).tags if a.get("id")]
    assert len(ids) == len(set(ids))


def test_accuracy_chart_has_one_panel_per_segment_plus_overall(page: str) -> None:
    fig = re.search(r'<figure id="chart-accuracy"[^>]*>(.*?)</figure>', page, re.S).group(1)
    titles = re.findall(r"<title>(.*?)</title>", fig)
    assert len(titles) == 1 + len(SEGMENTS)
    for s in ("all segments", *SEGMENTS):
        assert any(f", {s}, " in t for t in titles)


@pytest.mark.parametrize(
    "chart, levels",
    [
        ("chart-latency", ["warning 5", "critical 10"]),
        ("chart-error-rate", ["warning 2", "critical 5"]),
        ("chart-override-rate", ["warning 30", "critical 50"]),
    ],
)
def test_alert_levels_are_drawn_and_named(page: str, chart: str, levels: list[str]) -> None:
    fig = re.search(rf'<figure id="{chart}"[^>]*>(.*?)</figure>', page, re.S).group(1)
    text = " ".join(parse(fig).text)
    for level in levels:
        assert level in text


def test_reliability_chart_shows_every_nonempty_bin_count(inputs: ReportInputs, page: str) -> None:
    from trustramp.report.charts import compact

    fig = re.search(r'<figure id="chart-reliability"[^>]*>(.*?)</figure>', page, re.S).group(1)
    text = parse(fig).text
    counts = inputs.reliability.loc[inputs.reliability["n"] > 0, "n"]
    for n in counts:
        assert compact(float(n)) in text


def test_tradeoff_chart_marks_current_and_recommended(inputs: ReportInputs, page: str) -> None:
    fig = re.search(r'<figure id="chart-tradeoff"[^>]*>(.*?)</figure>', page, re.S).group(1)
    text = " ".join(parse(fig).text)
    auto = inputs.thresholds.band("auto")
    assert f"current {auto.current_threshold:.2f}" in text
    assert f"recommended {auto.threshold:.2f}" in text


def test_threshold_table_shows_each_band_change_and_guarantee(
    inputs: ReportInputs, page: str
) -> None:
    sec = re.search(r'<section id="thresholds">(.*?)</section>', page, re.S).group(1)
    text = " ".join(parse(sec).text)
    for b in inputs.thresholds.bands:
        if b.band != "human":
            assert b.change in text
        if b.guarantee:
            assert b.guarantee in text
    for name in inputs.segment_thresholds.by_group:
        assert name in text


def test_criteria_table_lists_every_criterion_with_n(inputs: ReportInputs, page: str) -> None:
    sec = re.search(r'<section id="criteria"[^>]*>(.*?)</section>', page, re.S).group(1)
    rows = re.findall(r"<tr><td>.*?</tr>", sec, re.S)
    assert len(rows) == len(inputs.verdict["criteria"])
    for row, c in zip(rows, inputs.verdict["criteria"], strict=True):
        assert f"{c['n']:,}" in row and c["outcome"] in row


def test_segment_table_flags_the_weak_segment(page: str) -> None:
    sec = re.search(r'<section id="segments">(.*?)</section>', page, re.S).group(1)
    m = re.search(
        r'<tr class="main"><td><strong>enterprise</strong>.*?</tr>\s*<tr class="sub">(.*?)</tr>',
        sec,
        re.S,
    )
    assert m, "the weak segment's row with its reason below it"
    assert 'class="badge worse"' in m.group(0) and "flagged by the bias audit" in m.group(1)
    others = re.findall(r"<tr class=\"\"><td><strong>(\w+)</strong>.*?badge ok", sec, re.S)
    assert sorted(others) == ["internal", "mid_market", "smb"]


def test_segment_table_shows_the_bias_audits_holm_p_and_bh_q(
    inputs: ReportInputs, page: str
) -> None:
    sec = re.search(r'<section id="segments">(.*?)</section>', page, re.S).group(1)
    assert '<th class="num">Holm p</th><th class="num">BH q</th>' in sec
    plan = {s["segment"]: s for s in inputs.verdict["segments"]["segments"]}
    assert all(s["q_bh"] is not None for s in plan.values())
    for name, s in plan.items():
        row = re.search(rf"<td><strong>{name}</strong>.*?</tr>", sec, re.S).group(0)
        cells = [html.unescape(c) for c in re.findall(r'<td class="num">([^<]*)</td>', row)]
        shown = [c for c in cells if c == "< 0.001" or re.fullmatch(r"[01]\.\d{3}", c)]
        expected = ["< 0.001" if x < 0.001 else f"{x:.3f}" for x in (s["p_holm"], s["q_bh"])]
        assert shown[-2:] == expected, name
        assert s["q_bh"] <= s["p_holm"] + 1e-12  # BH never rejects less than Holm


def test_alerts_show_their_bound_and_model_version() -> None:
    # The version being rolled out at 83.1% on 356 in the last 24 h: the row names the version
    # and the alert's one-sided 95% bound (Clopper-Pearson, statsmodels' two-sided 90%).
    v7 = {("accuracy", "all"): Count(296, 356), ("error_rate", "all"): Count(2, 400)}
    inputs = build_inputs(evidence={"rolling_24h_by_version": {"v7": v7}})
    sec = re.search(r'<section id="alerts".*?</section>', render_report(inputs), re.S).group(0)
    _, upper = proportion_confint(296, 356, alpha=0.10, method="beta")
    assert '<th class="num">bound (95%)</th>' in sec
    row = re.search(r"<tr><td><span class=\"badge critical\">.*?</tr>", sec, re.S).group(0)
    assert "<code>v7</code>" in row and f"≤ {100 * upper:.1f}%" in row and ">83.1%<" in row


def test_a_required_recertification_shows_above_the_thresholds(page: str) -> None:
    from trustramp.decide.evidence import Drift

    drift = Drift("v7", 0.41, 0.1, 0.25, "critical", n_baseline=5_000, n_current=3_000)
    inputs = build_inputs(evidence={"drift": [drift]})
    assert inputs.verdict["thresholds_recertify"]["required"]
    sec = re.search(r'<section id="thresholds">(.*?)</section>', render_report(inputs), re.S)
    line = re.search(r'<p class="recertify">(.*?)</p>', sec.group(1), re.S)
    assert line and "Re-certify the routing thresholds" in line.group(1)
    assert "confidence drift (PSI) of model v7 overall is 0.410" in line.group(1)
    assert sec.group(1).index("recertify") < sec.group(1).index("<table")
    assert 'class="recertify"' not in page  # not required: no line


def test_calibration_shows_the_debiased_and_smooth_ece_with_their_window(
    inputs: ReportInputs, page: str
) -> None:
    cal = inputs.verdict["calibration"]
    found = {(name, window): value for name, window, value, _ in quantities(page).found}
    for metric in ("ece", "ece_debiased_l2", "smece"):
        assert found[(metric, "gate")] == f"{cal[metric]:.3f}", metric
    sec = re.search(r'<section id="calibration">(.*?)</section>', page, re.S).group(1)
    assert f"(bandwidth {cal['smece_sigma']:.3f})" in sec


def test_print_stylesheet_and_no_external_resources(page: str) -> None:
    assert "@media print" in page
    p = parse(page)
    for tag, attrs in p.tags:
        assert tag not in {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in {"src", "href"} and value:
                assert value.startswith("#") or value.startswith("url(#"), (tag, name, value)
    assert "url(http" not in page and "@import" not in page and "@font-face" not in page


# --------------------------------------------------------------------------------------------
# One number per quantity per window, each named with its window; readable dates
# --------------------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Quantities(HTMLParser):
    """The page's ``data-q`` numbers, each with the window its nearest ``.windowed`` block
    names, and the window labels (``.win``) that block shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[dict[str, Any]] = []
        self.found: list[tuple[str, str | None, str, dict[str, Any] | None]] = []
        self.labels: dict[str, str] = {}  # window key -> label text shown

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        node = {"tag": tag, "attrs": a, "windowed": "windowed" in classes, "wins": set()}
        node["text"] = []
        if "win" in classes:
            for n in self.stack:
                if n["windowed"]:
                    n["wins"].add(a.get("data-window"))
            node["label_of"] = a.get("data-window")
        if tag not in VOID:
            self.stack.append(node)

    def handle_data(self, data: str) -> None:
        for n in self.stack:
            if "data-q" in n["attrs"] or "label_of" in n:
                n["text"].append(data)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            n = self.stack.pop()
            if "data-q" in n["attrs"]:
                block = next((b for b in reversed([*self.stack, n]) if b["windowed"]), None)
                window = block["attrs"].get("data-window") if block else None
                value = " ".join("".join(n["text"]).split())
                self.found.append((n["attrs"]["data-q"], window, value, block))
            if "label_of" in n:
                self.labels[n["label_of"]] = " ".join("".join(n["text"]).split())
            if n["tag"] == tag:
                return


def quantities(html: str) -> Quantities:
    q = Quantities()
    q.feed(html)
    q.close()
    return q


def test_every_quantity_names_its_window_with_one_value_per_window(
    inputs: ReportInputs, page: str
) -> None:
    q = quantities(page)
    assert len(q.found) > 20
    values: dict[tuple[str, str], set[str]] = {}
    for name, window, value, block in q.found:
        assert window is not None and block is not None, (name, value)  # inside a windowed block
        assert window in block["wins"], (name, window)  # ... which shows that window's label
        values.setdefault((name, window), set()).add(value)
    assert {k: v for k, v in values.items() if len(v) > 1} == {}
    windows_of: dict[str, set[str]] = {}
    for name, window in values:
        windows_of.setdefault(name, set()).add(window)
    # The pairs that used to sit side by side unlabelled now name different windows.
    assert windows_of["human_workload:proposed"] == {"gate", "replay"}
    assert windows_of["human_workload:current"] == {"gate", "replay"}
    assert {"gate", "monitoring", "rolling_24h"} <= windows_of["accuracy:enterprise"]
    assert {"gate", "monitoring"} <= windows_of["label_coverage"]
    # Each label carries the window's days, and the legend at the top lists them.
    data = inputs.verdict["data"]  # the gate window: the verdict's label-matured window
    assert q.labels["gate"] == f"gate window, {fmt_span(data['window_start'], data['window_end'])}"
    assert q.labels["rolling_24h"] == "last 24 h, 20 Nov 2026"
    assert q.labels["monitoring"] == "monitoring window, 24 Oct – 20 Nov 2026"
    legend = re.search(r'<div class="windows">(.*?)</div>', page, re.S).group(1)
    for key in ("gate", "rolling_24h", "monitoring", "replay"):
        name, dates = q.labels[key].split(", ", 1)
        assert re.search(rf"<dt>{name}</dt><dd>{dates} ", legend), key


def test_window_pairs_of_the_same_quantity_differ_only_across_windows(
    inputs: ReportInputs, page: str
) -> None:
    """The workloads: the recommendation's over the gate window, the replay's over the replay
    window, each equal to its own source."""
    q = quantities(page)
    got = {(n, w): v for n, w, v, _ in q.found}
    rec, rp = inputs.thresholds, inputs.whatif
    assert got[("human_workload:proposed", "gate")] == f"{rec.human_workload_per_day:,.0f}"
    assert got[("human_workload:current", "gate")] == f"{rec.current_human_workload_per_day:,.0f}"
    load = rp.workload.groupby("policy")["human_workload"].mean()
    assert got[("human_workload:proposed", "replay")] == f"{load['proposed']:,.0f}"
    assert got[("human_workload:current", "replay")] == f"{load['current']:,.0f}"
    replay = rp.workload["day"]
    assert quantities(page).labels["replay"] == (
        f"replay window, {fmt_span(min(replay), max(replay))}"
    )


def test_dates_read_as_dates(page: str) -> None:
    text = " ".join(parse(page).text)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d", text)  # no raw timestamps
    assert not re.search(r"\b(NaT|nan|None)\b", text)
    assert "As of 20 Nov 2026" in text
    assert "2026-11-19 10:02 UTC" in text  # a feedback comment's time, in UTC to the minute
    incidents = re.search(r"<h3>Open incidents</h3>(.*?)</table>", page, re.S).group(1)
    assert "12 Nov 2026" not in incidents and "2026-11-12 08:00 UTC" in incidents
    assert re.search(r"<td>open</td></tr>", incidents)  # no resolution time yet
    prov = re.search(r'<section id="provenance">(.*?)</section>', page, re.S).group(1)
    assert "2026-11-21 03:00 UTC" in prov and "/srv/trustramp/data" in prov


@pytest.mark.parametrize(
    "value, expected",
    [
        (dt.date(2026, 11, 20), "20 Nov 2026"),
        ("2026-01-02T23:59:59-02:00", "2026-01-03 01:59 UTC"),
        (pd.Timestamp("2026-11-20 14:03:30", tz="Europe/Paris"), "2026-11-20 13:03 UTC"),
        (dt.datetime(2026, 11, 20, 14, 3), "2026-11-20 14:03 UTC"),  # naive: UTC (SPEC 1.1)
        (None, "—"),
        (pd.NaT, "—"),
        (float("nan"), "—"),
        ("", "—"),
    ],
)
def test_fmt_datetime(value: object, expected: str) -> None:
    assert fmt_datetime(value) == expected


def test_fmt_span_against_the_calendar() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = dt.date(2025, 1, 1) + dt.timedelta(days=int(rng.integers(0, 800)))
        b = a + dt.timedelta(days=int(rng.integers(0, 70)))
        text = fmt_span(a, b)
        if a == b:
            assert text == f"{a.day} {a:%b} {a.year}"
            continue
        first, last = re.split(r"–| – ", text)
        parts_first = first.split()
        year = int(last.split()[-1])
        month = parts_first[1] if len(parts_first) > 1 else last.split()[1]
        year_a = int(parts_first[2]) if len(parts_first) > 2 else year
        assert dt.datetime.strptime(f"{parts_first[0]} {month} {year_a}", "%d %b %Y").date() == a
        assert dt.datetime.strptime(last.strip(), "%d %b %Y").date() == b


# --------------------------------------------------------------------------------------------
# The verdict in plain words
# --------------------------------------------------------------------------------------------


def _verdict_inputs(kind: str) -> ReportInputs:
    """The realistic run turned into a HOLD (as simulated), a PAUSE or a ROLLBACK."""
    items = simulate(per_day=120)
    ev = evidence_from(items)
    config = _config()
    if kind == "PAUSE":  # a critical accuracy alert: 87 % on 1,000, surely below 90 % ...
        rolling = dict(ev.rolling_24h)
        rolling[("accuracy", "all")] = Count(870, 1_000)
        ev = dataclasses.replace(ev, rolling_24h=rolling)
        # ... with the rollback trigger's minimum at 85 %, which it is not surely below
        rollback = yaml.safe_load(default_config_text())["rollback"] | {"accuracy_min": 0.85}
        config = _config(rollback=rollback)
    if kind == "ROLLBACK":
        leak = Incident("INC-1", "critical", "security", "token leak", dt.datetime(2026, 11, 20))
        ev = dataclasses.replace(ev, incidents=[leak])
    verdict = decide(ev, config, trustramp_version="t").to_dict()
    return ReportInputs(verdict=verdict, metrics=metrics_frame(items))


@pytest.mark.parametrize("kind", ["HOLD", "PAUSE", "ROLLBACK"])
def test_verdict_banner_says_what_to_do(kind: str) -> None:
    inp = _verdict_inputs(kind)
    assert inp.verdict["verdict"] == kind, inp.verdict["reasons"]
    html = render_report(inp)
    banner = re.search(
        r'<section id="verdict" class="verdict (\w+)"[^>]*>(.*?)</section>', html, re.S
    )
    assert banner.group(1) == kind.lower()
    text = " ".join(" ".join(parse(banner.group(2)).text).split())
    assert text.startswith(kind)
    for r in inp.verdict["reasons"]:
        if r.startswith("Rollback ("):  # shown as "trigger: evidence" in the rollback block
            r = r.split("): ", 1)[1]
        if not r.startswith(("The rollout holds", "Engage the kill switch")):
            assert " ".join(r.split()) in text
    if kind == "HOLD":
        assert "stay in Controlled rollout 25%" in text and "Controlled rollout 50%" in text
    if kind == "PAUSE":
        assert "do not widen the audience" in text
    if kind == "ROLLBACK":
        fired = [t for t in inp.verdict["rollback_triggers"] if t["fired"]]
        assert fired and all(t["trigger"] in text for t in fired)
        assert "engage the kill switch now" in text
        for step in inp.verdict["procedure"]:
            assert step in text


def test_go_banner_names_the_next_phase() -> None:
    cfg = yaml.safe_load(default_config_text())
    for name in ("infrastructure", "user"):
        for a in cfg["attestations"][name]:
            a.update(done=True)
    items = simulate(per_day=120)
    ev = evidence_from(items)
    strong = {g: Count(int(c.n * 0.97), max(c.n, 2_000)) for g, c in ev.accuracy.items()}
    ev = dataclasses.replace(
        ev,
        accuracy=strong,
        bias={s: SegmentFlag(s, "ok", "", 2_000) for s in SEGMENTS},
        calibration=Calibration(ece=0.02, p_value=0.5, noise_floor=0.01, n=8_000),
        edge_cases={"long": Count(970, 1_000)},
    )
    cfg.update(
        feature="triage",
        phase="shadow",
        phase_started="2026-10-01",
        statistics={"edge_case_slices": [{"name": "long", "column": "doc_type", "value": "long"}]},
    )
    verdict = decide(ev, parse_config(cfg), trustramp_version="t").to_dict()
    assert verdict["verdict"] == "GO", verdict["reasons"]
    html = render_report(ReportInputs(verdict=verdict, metrics=metrics_frame(items)))
    banner = re.search(r'<section id="verdict"[^>]*>(.*?)</section>', html, re.S).group(1)
    text = " ".join(" ".join(parse(banner).text).split())
    assert text.startswith("GO advance from Shadow mode to Internal dogfood")
    timeline = re.search(r'<section id="timeline">(.*?)</section>', html, re.S).group(1)
    assert re.search(r'<li class="current">.*?Shadow mode', timeline, re.S)
    assert re.search(r'<li class="next">.*?Internal dogfood', timeline, re.S)


def test_timeline_marks_passed_current_and_next_steps(page: str) -> None:
    tl = re.search(r'<ol class="timeline">(.*?)</ol>', page, re.S).group(1)
    states = re.findall(r'<li class="(\w+)">.*?<span class="label">(.*?)</span>', tl, re.S)
    assert states == [
        ("done", "Shadow mode"),
        ("done", "Internal dogfood"),
        ("done", "Limited beta"),
        ("done", "Controlled rollout 10%"),
        ("current", "Controlled rollout 25%"),
        ("next", "Controlled rollout 50%"),
        ("later", "General availability"),
    ]


@pytest.mark.parametrize(
    "steps, phase, step, nxt, expected",
    [
        (
            (20, 60),
            "controlled",
            20,
            ("controlled", 60),
            "done done done current next later",
        ),
        ((10, 25, 50), "ga", None, ("ga", None), "done done done done done done current"),
        (
            (10, 25, 50),
            "shadow",
            None,
            ("dogfood", None),
            "current next later later later later later",
        ),
        ((10, 25, 50), "controlled", 50, ("ga", None), "done done done done done current next"),
    ],
)
def test_timeline_follows_the_configured_steps(
    inputs: ReportInputs,
    steps: tuple[int, ...],
    phase: str,
    step: int | None,
    nxt: tuple[str, int | None],
    expected: str,
) -> None:
    v = {
        **inputs.verdict,
        "phase": phase,
        "step": step,
        "next": dict(zip(("phase", "step"), nxt, strict=True)),
    }
    html = render_report(
        ReportInputs(verdict=v, metrics=inputs.metrics.iloc[0:0], controlled_steps=steps)
    )
    tl = re.search(r'<ol class="timeline">(.*?)</ol>', html, re.S).group(1)
    labels = re.findall(r'<li class="(\w+)">.*?<span class="label">(.*?)</span>', tl, re.S)
    assert " ".join(state for state, _ in labels) == expected
    assert [label for _, label in labels if "Controlled" in label] == [
        f"Controlled rollout {s}%" for s in steps
    ]
    final = "General availability is the last phase" in html
    assert final == (phase == "ga")


# --------------------------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------------------------


def test_payloads_appear_as_text_and_never_as_markup(hostile_page: str) -> None:
    html = hostile_page
    assert "<script" not in html.lower()
    assert "<iframe" not in html.lower() and "<img" not in html.lower()
    assert not re.search(r"<svg[^>]*onload", html, re.I)
    p = parse(html)
    assert [t for t, _ in p.tags if t in {"script", "iframe", "img", "b"}] == []
    assert not [(t, k) for t, a in p.tags for k in a if k.startswith("on")]
    text = "".join(p.text)
    for key, payload in XSS.items():
        assert payload in text, key  # shown, literally, as text


@pytest.mark.parametrize(
    "where",
    [
        "segment table",
        "chart legend",
        "customer table",
        "reasons",
        "trigger evidence",
        "feedback",
        "incident",
        "title",
    ],
)
def test_each_payload_is_escaped_where_it_lands(
    hostile: ReportInputs, hostile_page: str, where: str
) -> None:
    html = hostile_page
    escaped = {
        "segment table": "&lt;script&gt;window.__xss=1;document.title=&#39;pwned&#39;&lt;/script&gt;",
        "chart legend": "&lt;script&gt;window.__xss=1",
        "customer table": "&#34;&gt;&lt;img src=x onerror=&#34;window.__xss=2&#34;&gt;",
        "reasons": "&lt;svg onload=&#34;window.__xss=3&#34;&gt;&lt;/svg&gt;&lt;b&gt;bold?&lt;/b&gt;",
        "trigger evidence": "&lt;/td&gt;&lt;script&gt;window.__xss=4&lt;/script&gt;",
        "feedback": "&lt;/blockquote&gt;&lt;iframe src=&#34;javascript:window.__xss=5&#34;&gt;",
        "incident": "&lt;/td&gt;&lt;script&gt;window.__xss=4",
        "title": "<title>HOLD · feat&lt;script&gt;window.__xss=6&lt;/script&gt;",
    }[where]
    if where == "title":
        escaped = escaped.replace("HOLD", hostile.verdict["verdict"])
    region = {
        "segment table": r'<section id="segments">.*?</table>',
        "chart legend": r'<figure id="chart-latency"[^>]*>.*?</figure>',
        "customer table": r"Customers with the lowest accuracy.*?</table>",
        "reasons": r'<section id="verdict".*?</section>',
        "trigger evidence": r'<ul class="triggers">.*?</ul>',
        "feedback": r'<section id="feedback">.*?</section>',
        "incident": r"Open incidents.*?</table>",
        "title": r"<head>.*?</head>",
    }[where]
    assert escaped in re.search(region, html, re.S).group(0)


# --------------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------------


def test_size_stays_small_and_does_not_grow_with_segment_days(page: str) -> None:
    base = len(page.encode())
    more_days = len(render_report(build_inputs(days=280, per_day=30)).encode())
    many = tuple(f"seg{i:02d}" for i in range(40))
    more_segments = len(render_report(build_inputs(segments=many, per_day=30)).encode())
    sizes = {"base": base, "10x days": more_days, "10x segments": more_segments}
    assert base < 300_000, sizes
    assert max(sizes.values()) < 2_000_000, sizes
    assert more_days < 2 * base and more_segments < 2 * base, sizes


# --------------------------------------------------------------------------------------------
# Degraded inputs and validation
# --------------------------------------------------------------------------------------------


def test_minimal_inputs_render_every_section_with_placeholders(inputs: ReportInputs) -> None:
    html = render_report(ReportInputs(verdict=inputs.verdict, metrics=inputs.metrics.iloc[0:0]))
    ids = {a.get("id") for _, a in parse(html).tags}
    assert {s for s, _ in SECTIONS} <= ids and set(CHART_IDS) <= ids
    assert "No threshold recommendation in this run." in html
    assert "No daily accuracy in the metrics table." in html


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"verdict": {"feature": "f"}}, ValueError, r"verdict is missing key\(s\) \['as_of'"),
        ({"verdict": "GO"}, TypeError, "verdict must be a mapping"),
        (
            "bad verdict",
            ValueError,
            r"verdict\['verdict'\] must be one of GO, HOLD, PAUSE, ROLLBACK, got 'MAYBE'",
        ),
        (
            {"metrics": pd.DataFrame({"metric": []})},
            ValueError,
            r"metrics is missing column\(s\) \['value'",
        ),
        ({"metrics": [1, 2]}, TypeError, "metrics must be a pandas DataFrame, got list"),
        (
            {"tradeoff": pd.DataFrame({"threshold": [0.9]})},
            ValueError,
            r"tradeoff is missing column\(s\) \['share'",
        ),
        (
            {"alert_levels": {"accuracy": 0.9}},
            ValueError,
            r"alert_levels\['accuracy'\] must be \(warning, critical\), got 0.9",
        ),
    ],
)
def test_inputs_are_validated(inputs: ReportInputs, change: Any, error: type, match: str) -> None:
    if change == "bad verdict":
        change = {"verdict": {**inputs.verdict, "verdict": "MAYBE"}}
    with pytest.raises(error, match=match):
        dataclasses.replace(inputs, **change)


def test_render_report_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="inputs must be a ReportInputs, got dict"):
        render_report({})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Files and the index
# --------------------------------------------------------------------------------------------


def _write_run(reports: Path, feature: str, as_of: str, verdict: str, *, html: bool = True) -> None:
    run = reports / feature / as_of
    run.mkdir(parents=True)
    doc = {
        "feature": feature,
        "as_of": as_of,
        "verdict": verdict,
        "phase": "controlled",
        "step": 25,
        "next": {"phase": "controlled", "step": 50},
        "reasons": [f"{verdict} <because> & why"],
        "model_version": "v7",
    }
    (run / "verdict.json").write_text(json.dumps(doc), "utf-8")
    if html:
        (run / "readiness.html").write_text("<!DOCTYPE html><title>r</title>", "utf-8")


def test_write_report_writes_one_file(inputs: ReportInputs, tmp_path: Path) -> None:
    out = write_report(inputs, tmp_path / "triage" / "2026-11-20")
    assert out == tmp_path / "triage" / "2026-11-20" / "readiness.html"
    assert out.read_text("utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["readiness.html"]


def test_index_lists_runs_per_feature_with_relative_links(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    for as_of, verdict in (("2026-11-18", "HOLD"), ("2026-11-19", "PAUSE"), ("2026-11-20", "GO")):
        _write_run(reports, "triage", as_of, verdict)
    _write_run(reports, "summarize", "2026-11-20", "ROLLBACK", html=False)
    (reports / "triage" / ".2026-11-21.tmp-abc").mkdir()  # a run being written: ignored
    (reports / "broken" / "2026-11-20").mkdir(parents=True)
    (reports / "broken" / "2026-11-20" / "verdict.json").write_text("{not json", "utf-8")
    out = write_index(reports)
    assert out == reports / "index.html"
    html = out.read_text("utf-8")
    p = parse(html)
    hrefs = [a["href"] for t, a in p.tags if t == "a" and not a["href"].startswith("#")]
    assert hrefs, html
    for h in hrefs:
        assert not h.startswith(("/", "http:", "https:", "file:"))
        assert (reports / h).exists(), h
    triage = re.search(r'<section id="feature-triage".*?</section>', html, re.S).group(0)
    assert re.findall(r"<tr><td class=\"nowrap\"><a href=\"[^\"]+\">([^<]+)</a>", triage) == [
        "20 Nov 2026",
        "19 Nov 2026",
        "18 Nov 2026",
    ]
    assert "summarize/2026-11-20/readiness.html" not in html  # no report, no link
    assert "&lt;because&gt; &amp; why" in html and "<because>" not in html
    assert "broken/2026-11-20/verdict.json" in html  # listed as unreadable
    svg = re.search(r'<figure id="chart-verdict-history"[^>]*>(.*?)</figure>', html, re.S).group(1)
    ET.fromstring(re.search(r"<svg .*?</svg>", svg, re.S).group(0))
    assert "triage" in svg and "summarize" in svg


def test_index_of_an_empty_folder_and_a_missing_one(tmp_path: Path) -> None:
    html = write_index(tmp_path).read_text("utf-8")
    assert "No runs yet" in html
    with pytest.raises(FileNotFoundError, match=r"reports_dir .* is not a folder"):
        write_index(tmp_path / "nope")


# --------------------------------------------------------------------------------------------
# In a real browser, offline
# --------------------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
]


@pytest.fixture(scope="module")
def browser_context_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium contexts with a fresh profile each, no network (proxy to a closed port)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is required in CI (apt-get install -y chromium)")
        pytest.skip(
            "/usr/bin/chromium is not installed (apt-get install -y chromium); CI runs this"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("the playwright package is not installed (pip install playwright)")
    pw = sync_playwright().start()
    contexts = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1200, "height": 900})
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_ARGS,
            **options,
        )
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()
    pw.stop()


def _open(ctx: Any, url: str) -> tuple[Any, list[str], list[str]]:
    page = ctx.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url, wait_until="load")
    return page, errors, requests


@pytest.mark.slow
def test_report_in_headless_chromium_offline(
    browser_context_factory: Any, inputs: ReportInputs, tmp_path: Path
) -> None:
    path = write_report(inputs, tmp_path / "readiness.html")
    url = path.as_uri()
    ctx = browser_context_factory()
    page, errors, requests = _open(ctx, url)
    assert errors == []
    assert requests == [url]
    banner = page.locator("#verdict")
    assert banner.is_visible() and banner.inner_text().split()[0] == "HOLD"
    for section, _ in SECTIONS:
        assert page.locator(f"#{section}").is_visible(), section
    for chart in CHART_IDS:
        box = page.locator(f"#{chart} svg").first.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, chart
    page.screenshot(path=str(tmp_path / "readiness.png"), full_page=True)
    if os.environ.get("TRUSTRAMP_SCREENSHOT_DIR"):
        page.screenshot(
            path=str(Path(os.environ["TRUSTRAMP_SCREENSHOT_DIR"]) / "readiness.png"), full_page=True
        )
    page.emulate_media(media="print")
    assert page.locator("nav.toc").is_hidden()
    assert (tmp_path / "readiness.png").stat().st_size > 10_000


WIDTHS = {"desktop": 1280, "phone": 390}

_INK = """async (src) => {
  const img = new Image(); img.src = src; await img.decode();
  const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let ink = 0, seen = 0; const colours = new Set();
  for (let i = 0; i < d.length; i += 4 * 7) {
    seen++;
    if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) ink++;
    if (colours.size < 2000) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  }
  return {ink: ink / seen, colours: colours.size, width: img.width, height: img.height};
}"""

_OVERFLOW = """(w) => {
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.right <= w + 0.5 || r.left < 0) continue;
    let a = e.parentElement, clipped = false;
    for (; a; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') { clipped = true; break; }
    }
    if (!clipped) out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : ''));
  }
  return out.slice(0, 10);
}"""


def check_layout(ctx: Any, page: Any, width: int, png: Path) -> dict[str, Any]:
    """No horizontal page overflow at `width`; a full-page screenshot that is not blank."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("document.body.scrollWidth") <= width
    assert page.evaluate(_OVERFLOW, width) == []  # only inside scrolling containers
    page.screenshot(path=str(png), full_page=True)
    if os.environ.get("TRUSTRAMP_SCREENSHOT_DIR"):
        page.screenshot(
            path=str(Path(os.environ["TRUSTRAMP_SCREENSHOT_DIR"]) / png.name), full_page=True
        )
    # Read the PNG back in a blank page: its pixels, not just its size.
    viewer = ctx.new_page()
    src = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    ink = viewer.evaluate(_INK, src)
    viewer.close()
    assert ink["width"] == width and ink["height"] > 2000
    assert ink["ink"] > 0.03 and ink["colours"] > 40, ink  # text, tables, charts, colours
    return ink


@pytest.mark.slow
@pytest.mark.parametrize("device", list(WIDTHS))
def test_report_fits_desktop_and_phone_widths(
    browser_context_factory: Any, inputs: ReportInputs, tmp_path: Path, device: str
) -> None:
    width = WIDTHS[device]
    path = write_report(inputs, tmp_path / "readiness.html")
    ctx = browser_context_factory(viewport={"width": width, "height": 900})
    page, errors, requests = _open(ctx, path.as_uri())
    assert errors == [] and requests == [path.as_uri()]
    check_layout(ctx, page, width, tmp_path / f"readiness-{device}.png")
    # Wide tables scroll inside their own container; every chart stays inside its figure.
    for t in page.locator("table").all():
        inside = t.evaluate("e => !!e.closest('.table-wrap')")
        assert inside or t.bounding_box()["width"] <= width, t.inner_text()[:60]
    for fig in page.locator("figure").all():
        box = fig.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5
    assert float(page.evaluate("getComputedStyle(document.body).fontSize")[:-2]) >= 13


@pytest.mark.slow
def test_payloads_do_not_run_in_the_browser_even_without_the_csp(
    browser_context_factory: Any, hostile: ReportInputs, tmp_path: Path
) -> None:
    path = write_report(hostile, tmp_path / "readiness.html")
    # The page's Content-Security-Policy would stop inline scripts anyway; bypass it so the test
    # shows that escaping alone keeps the payloads inert.
    ctx = browser_context_factory(bypass_csp=True)
    page, errors, requests = _open(ctx, path.as_uri())
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert (
        page.title() == f"{hostile.verdict['verdict']} · {XSS['feature']} · readiness 20 Nov 2026"
    )
    assert requests == [path.as_uri()]
    assert errors == []
    body = page.locator("body").inner_text()
    for key in ("segment", "customer", "reason", "comment"):
        assert XSS[key] in body, key
    assert page.locator("script, iframe, img").count() == 0


@pytest.mark.slow
def test_index_in_headless_chromium(
    browser_context_factory: Any, inputs: ReportInputs, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    for as_of, kind in (("2026-11-18", "HOLD"), ("2026-11-19", "PAUSE"), ("2026-11-20", "GO")):
        run = reports / "triage" / as_of
        v = {**inputs.verdict, "as_of": as_of, "verdict": kind}
        write_report(dataclasses.replace(inputs, verdict=v), run)
        (run / "verdict.json").write_text(json.dumps(v), "utf-8")
    index = write_index(reports)
    ctx = browser_context_factory()
    page, errors, requests = _open(ctx, index.as_uri())
    assert errors == [] and requests == [index.as_uri()]
    box = page.locator("#chart-verdict-history svg").bounding_box()
    assert box and box["height"] > 50
    page.locator('a:text("19 Nov 2026")').first.click()
    page.wait_for_load_state("load")
    assert page.url == (reports / "triage" / "2026-11-19" / "readiness.html").as_uri()
    assert page.locator("#verdict .word").inner_text() == "PAUSE"
