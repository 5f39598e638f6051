"""The two-stage engine (SQL aggregates -> tidy metrics) against independent references on raw rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import raw_joined
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, brier_score_loss, cohen_kappa_score, log_loss

from trustramp.evaluate.table import metrics_table
from trustramp.evaluate.windows import windows_for
from trustramp.metrics import expected_calibration_error
from trustramp.store.aggregates import compute_aggregates
from trustramp.store.lake import Home, reader


@pytest.fixture(scope="module")
def engine(demo_lake: dict) -> dict:
    cfg = demo_lake["config"]
    manifest = demo_lake["manifest"]
    as_of = manifest.end
    win = windows_for(cfg, as_of)
    con = reader(Home.at(demo_lake["home"]))
    try:
        aggs = compute_aggregates(con, cfg.feature, win.first, as_of)
    finally:
        con.close()
    table = metrics_table(aggs, win)
    raw = raw_joined(demo_lake["home"], cfg.feature)
    raw["date"] = pd.to_datetime(raw["date"]).dt.date
    raw = raw[(raw["date"] >= win.first) & (raw["date"] <= as_of)]
    return {"aggs": aggs, "table": table, "raw": raw, "win": win, "cfg": cfg}


def pick(table: pd.DataFrame, metric: str, window: str = "window", **dims: object) -> pd.Series:
    t = table[(table["metric"] == metric) & (table["window"] == window)]
    for col in ("model_version", "segment", "customer_id", "mode", "day"):
        t = t[t[col].isna()] if col not in dims else t[t[col] == dims[col]]
    assert len(t) == 1, (metric, window, dims, len(t))
    return t.iloc[0]


def labeled_unshown(raw: pd.DataFrame) -> pd.DataFrame:
    ok = ~raw["status"].isin(["error", "timeout"]) & raw["confidence"].notna()
    return raw[ok & raw["human_label"].notna() & (raw["mode"] == "shadow")]


def in_window(raw: pd.DataFrame, win) -> pd.DataFrame:
    return raw[(raw["date"] >= win.monitor_start) & (raw["date"] <= win.as_of)]


def test_accuracy_by_segment_matches_fairlearn(engine: dict) -> None:
    lab = labeled_unshown(in_window(engine["raw"], engine["win"]))
    frame = MetricFrame(
        metrics=accuracy_score,
        y_true=lab["human_label"].astype(str),
        y_pred=lab["predicted_label"].astype(str),
        sensitive_features=lab["segment"],
    )
    for seg, ref in frame.by_group.items():
        row = pick(engine["table"], "accuracy", segment=seg)
        assert row["value"] == pytest.approx(ref, abs=1e-12)
        assert row["n"] == (lab["segment"] == seg).sum()
        assert row["ci_low"] < row["value"] < row["ci_high"]
    assert pick(engine["table"], "accuracy")["value"] == pytest.approx(frame.overall, abs=1e-12)


def test_calibration_metrics_match_references(engine: dict) -> None:
    lab = labeled_unshown(in_window(engine["raw"], engine["win"]))
    correct = (lab["human_label"] == lab["predicted_label"]).to_numpy(int)
    conf = lab["confidence"].to_numpy(float)
    t = engine["table"]
    assert pick(t, "brier")["value"] == pytest.approx(brier_score_loss(correct, conf), rel=1e-9)
    assert pick(t, "log_loss")["value"] == pytest.approx(
        log_loss(correct, conf, labels=[0, 1]), rel=1e-9
    )
    assert pick(t, "ece")["value"] == pytest.approx(
        expected_calibration_error(correct, conf, n_bins=15), abs=1e-12
    )


def test_operational_metrics_match_raw_rows(engine: dict) -> None:
    raw = in_window(engine["raw"], engine["win"])
    t = engine["table"]
    failed = raw["status"].isin(["error", "timeout"])
    assert pick(t, "error_rate")["value"] == pytest.approx(failed.mean(), abs=1e-12)
    assert pick(t, "availability")["value"] == pytest.approx(1 - failed.mean(), abs=1e-12)
    labeled = raw["human_label"].notna() & ~failed & raw["confidence"].notna()
    assert pick(t, "label_coverage")["value"] == pytest.approx(labeled.mean(), abs=1e-12)
    shown = raw[labeled & (raw["mode"] != "shadow")]
    over = shown["action"].isin(["overridden", "edited"]) | (
        shown["action"].isna() & (shown["human_label"] != shown["predicted_label"])
    )
    assert pick(t, "override_rate")["value"] == pytest.approx(over.mean(), abs=1e-12)
    lat = raw["latency_ms"].dropna().to_numpy()
    for q, name in ((50, "latency_p50"), (95, "latency_p95"), (99, "latency_p99")):
        assert pick(t, name)["value"] == pytest.approx(np.percentile(lat, q), rel=0.02)


def test_kappa_matches_sklearn(engine: dict) -> None:
    lab = labeled_unshown(engine["raw"])
    ref = cohen_kappa_score(lab["human_label"].astype(str), lab["predicted_label"].astype(str))
    assert pick(engine["table"], "kappa")["value"] == pytest.approx(ref, abs=1e-12)


def test_daily_rows_match_raw_rows(engine: dict) -> None:
    raw = engine["raw"]
    t = engine["table"]
    day = engine["win"].as_of - dt.timedelta(days=3)
    d = raw[raw["date"] == day]
    assert pick(t, "error_rate", "day", day=day)["value"] == pytest.approx(
        d["status"].isin(["error", "timeout"]).mean()
    )
    assert pick(t, "error_rate", "day", day=day)["n"] == len(d)


def test_metrics_table_has_the_fixed_columns(engine: dict) -> None:
    assert list(engine["table"].columns) == [
        "metric",
        "value",
        "ci_low",
        "ci_high",
        "n",
        "feature",
        "model_version",
        "segment",
        "customer_id",
        "mode",
        "day",
        "window",
    ]
    assert set(engine["table"]["window"]) == {"day", "rolling_24h", "window"}


def test_planted_effects_show_up(engine: dict, demo_lake: dict) -> None:
    t = engine["table"]
    manifest = demo_lake["manifest"]
    seg = {s: pick(t, "accuracy", segment=s)["value"] for s in demo_lake["config"].segments}
    assert min(seg, key=seg.get) == "enterprise"
    assert seg["enterprise"] < min(v for k, v in seg.items() if k != "enterprise") - 0.04
    bad_day = manifest.end - dt.timedelta(days=5)
    daily = t[
        (t["metric"] == "error_rate")
        & (t["window"] == "day")
        & t["segment"].isna()
        & t["model_version"].isna()
        & t["mode"].isna()
    ]
    worst = daily.loc[daily["value"].idxmax()]
    assert worst["day"] == bad_day and worst["value"] > 0.05
    p95 = t[
        (t["metric"] == "latency_p95")
        & (t["window"] == "day")
        & t["segment"].isna()
        & t["model_version"].isna()
        & t["mode"].isna()
    ]
    assert p95.loc[p95["value"].idxmax()]["day"] == bad_day
    # The over-confident band: accuracy well below mean confidence in [0.80, 0.95) only.
    cells = engine["aggs"].cells
    cells = cells[(cells["mode"] == "shadow") & (cells["segment"] != "enterprise")]
    band = cells[(cells["grid_bin"] >= 80) & (cells["grid_bin"] < 95)]
    top = cells[cells["grid_bin"] >= 95]
    gap_band = (
        band["conf_sum"].sum() / band["labeled"].sum()
        - band["correct"].sum() / band["labeled"].sum()
    )
    gap_top = (
        top["conf_sum"].sum() / top["labeled"].sum() - top["correct"].sum() / top["labeled"].sum()
    )
    assert gap_band > 0.06 and abs(gap_top) < 0.03


def test_gate_population_metrics_match_array_references(demo_lake: dict) -> None:
    """Equal-mass and class-wise ECE from SQL equal the array implementations on raw rows."""
    import json

    from trustramp.evaluate.gate_metrics import gate_metric_rows
    from trustramp.evaluate.windows import gate_population
    from trustramp.metrics import classwise_ece
    from trustramp.store import aggregates as agg

    cfg = demo_lake["config"]
    win = windows_for(cfg, demo_lake["manifest"].end)
    con = reader(Home.at(demo_lake["home"]))
    try:
        aggs = compute_aggregates(con, cfg.feature, win.first, win.as_of)
        pop = gate_population(aggs, win, cfg)
        rows = gate_metric_rows(
            aggs,
            win,
            pop,
            cfg,
            equal_mass=agg.equal_mass_bins(aggs, win.gate_start, win.gate_end, pop.version, 15),
            classwise=agg.classwise_bins(aggs, win.gate_start, win.gate_end, pop.version),
        )
    finally:
        con.close()
    raw = raw_joined(demo_lake["home"], cfg.feature)
    raw["date"] = pd.to_datetime(raw["date"]).dt.date
    gate = labeled_unshown(
        raw[
            (raw["date"] >= win.gate_start)
            & (raw["date"] <= win.gate_end)
            & (raw["model_version"] == pop.version)
        ]
    )
    gate = gate.sort_values(["confidence", "prediction_id"], kind="stable")
    correct = (gate["human_label"] == gate["predicted_label"]).to_numpy(int)
    got = rows.set_index("metric")["value"]
    assert got["ece_equal_mass"] == pytest.approx(
        expected_calibration_error(
            correct, gate["confidence"].to_numpy(float), n_bins=15, strategy="quantile"
        ),
        abs=1e-12,
    )
    probs = [json.loads(p) for p in gate["class_probabilities"]]
    classes = sorted({k for p in probs for k in p})
    matrix = np.array([[p.get(c, 0.0) for c in classes] for p in probs])
    assert got["ece_classwise"] == pytest.approx(
        classwise_ece(
            gate["human_label"].astype(str).to_numpy(), matrix, n_bins=15, classes=classes
        ),
        abs=1e-9,
    )
    clustered = rows[(rows["metric"] == "accuracy_clustered") & rows["segment"].isna()].iloc[0]
    assert clustered["value"] == pytest.approx(correct.mean(), abs=1e-12)
    assert clustered["ci_low"] < clustered["value"] < clustered["ci_high"]
