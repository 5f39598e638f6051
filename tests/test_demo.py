"""The demo / benchmark data generator: reproducible, on contract, with its planted effects."""

from __future__ import annotations

import datetime as dt
import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from trustramp.config import Routing, parse_config
from trustramp.contract import (
    DEFAULT_SEGMENTS,
    FAILED_STATUSES,
    SCHEMAS,
    SHOWN_MODES,
    ColType,
    Kind,
)
from trustramp.demo import DemoManifest, demo_config, generate, is_blind_holdout

END = dt.date(2026, 11, 20)
BAD_DAY = END - dt.timedelta(days=5)


# --- loading the written files back, independently of the generator ------------------------


def _read_raw(path: Path) -> pd.DataFrame:
    """A file as written: text cells for CSV / JSON Lines, typed columns for Parquet."""
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        if not rows:
            return pd.DataFrame(columns=list(SCHEMAS[Kind(path.parent.name)].names))
        assert len({tuple(row) for row in rows}) == 1, f"{path}: rows with different keys"
        return pd.DataFrame.from_records(rows)
    return pd.read_parquet(path)


def _load(manifest: DemoManifest, kind: str) -> pd.DataFrame:
    """All files of a kind, typed as the contract says (timestamps in UTC), with `_file`."""
    return _load_files(tuple(manifest.files[kind]), kind).copy(deep=False)


@functools.cache
def _load_files(paths: tuple[Path, ...], kind: str) -> pd.DataFrame:
    schema = SCHEMAS[Kind(kind)]
    frames = []
    for path in paths:
        frame = _read_raw(path)
        frame["_file"] = path.name
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    for column in schema.columns:
        if column.type is ColType.TIMESTAMP:
            df[column.name] = pd.to_datetime(df[column.name], utc=True, format="ISO8601")
        elif column.type is ColType.FLOAT:
            df[column.name] = pd.to_numeric(df[column.name]).astype("float64")
        elif column.type is ColType.INT:
            df[column.name] = pd.to_numeric(df[column.name]).astype("Int64")
    return df


def _final_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """The latest decision per item (ties: greatest decision_id), as SPEC 1.1 says."""
    ordered = decisions.sort_values(["decided_at", "decision_id"])
    return ordered.groupby("item_id", sort=False).tail(1)


def _labeled(manifest: DemoManifest) -> pd.DataFrame:
    """Successful predictions with their final human label and a `correct` flag."""
    predictions, decisions = manifest.files["predictions"], manifest.files["decisions"]
    return _labeled_files(tuple(predictions), tuple(decisions)).copy(deep=False)


@functools.cache
def _labeled_files(predictions: tuple[Path, ...], decisions: tuple[Path, ...]) -> pd.DataFrame:
    preds = _load_files(predictions, "predictions")
    final = _final_decisions(_load_files(decisions, "decisions"))[["item_id", "human_label"]]
    joined = preds.merge(final, on="item_id")
    joined = joined[~joined["status"].isin(FAILED_STATUSES)].copy()
    joined["correct"] = joined["predicted_label"] == joined["human_label"]
    return joined


def _band(confidence: pd.Series) -> pd.Series:
    r = Routing()
    return pd.Series(
        np.select(
            [confidence >= r.auto, confidence >= r.confirm, confidence >= r.review],
            ["auto", "confirm", "review"],
            "human",
        ),
        index=confidence.index,
    )


# --- shared data sets (module-scoped: generated once) ----------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    return generate(
        tmp_path_factory.mktemp("planted"), n_predictions=50_000, seed=11, fmt="parquet"
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    return generate(
        tmp_path_factory.mktemp("clean"),
        n_predictions=50_000,
        seed=11,
        fmt="parquet",
        effects=False,
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoManifest]:
    """The same small data set in every format."""
    root = tmp_path_factory.mktemp("small")
    return {
        fmt: generate(root / fmt, n_predictions=6_000, days=12, seed=3, fmt=fmt)
        for fmt in ("csv", "jsonl", "parquet")
    }


# --- reproducibility -------------------------------------------------------------------------


def _file_bytes(manifest: DemoManifest) -> dict[str, bytes]:
    return {
        str(p.relative_to(manifest.out_dir)): p.read_bytes()
        for paths in manifest.files.values()
        for p in paths
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_same_seed_gives_the_same_bytes(tmp_path: Path, fmt: str) -> None:
    args = {"n_predictions": 3_000, "days": 10, "seed": 5, "fmt": fmt}
    first, second = generate(tmp_path / "a", **args), generate(tmp_path / "b", **args)
    assert _file_bytes(first) == _file_bytes(second)
    assert first.counts == second.counts and first.planted == second.planted


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", n_predictions=3_000, days=10, seed=5)
    b = generate(tmp_path / "b", n_predictions=3_000, days=10, seed=6)
    for path_a, path_b in zip(a.files["predictions"], b.files["predictions"], strict=True):
        assert path_a.name == path_b.name
        assert path_a.read_bytes() != path_b.read_bytes()
    # ids differ too, so two demos can land in one lake without id conflicts
    ids_a = set(_load(a, "predictions")["prediction_id"])
    assert ids_a.isdisjoint(_load(b, "predictions")["prediction_id"])


def test_formats_hold_the_same_data(small: dict[str, DemoManifest]) -> None:
    frames = {}
    for fmt, manifest in small.items():
        frames[fmt] = {
            kind: _load(manifest, kind).drop(columns="_file")
            for kind in ("predictions", "decisions", "feedback", "incidents")
        }
    for kind in frames["parquet"]:
        reference = frames["parquet"][kind]
        for fmt in ("csv", "jsonl"):
            other = frames[fmt][kind]
            for column in reference.columns:
                left, right = reference[column], other[column]
                if left.dtype.kind in "fiu" or str(left.dtype) == "Int64":
                    np.testing.assert_array_equal(
                        left.to_numpy(dtype="float64", na_value=np.nan),
                        right.to_numpy(dtype="float64", na_value=np.nan),
                    )
                else:
                    assert left.isna().tolist() == right.isna().tolist(), (fmt, kind, column)
                    assert left.dropna().tolist() == right.dropna().tolist(), (fmt, kind, column)


# --- the data contract -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("kind", [k.value for k in Kind])
def test_files_follow_the_contract(small: dict[str, DemoManifest], fmt: str, kind: str) -> None:
    manifest = small[fmt]
    schema = SCHEMAS[Kind(kind)]
    expected_files = 12 if kind in ("predictions", "decisions") else 1
    assert len(manifest.files[kind]) == expected_files
    assert all(p.suffix == f".{fmt}" and p.parent.name == kind for p in manifest.files[kind])
    for path in manifest.files[kind]:
        assert list(_read_raw(path).columns) == list(schema.names), path
    df = _load(manifest, kind)
    assert len(df) == manifest.counts[kind] > 0
    assert df[schema.id_column].is_unique
    failed = df["status"].isin(FAILED_STATUSES) if kind == "predictions" else False
    for column in schema.columns:
        values = df[column.name]
        if column.required is True:
            assert values.notna().all(), column.name
        elif column.required == "unless_failed":
            assert values[~failed].notna().all() and values[failed].isna().all(), column.name
        present = values.dropna()
        if column.enum is not None:
            assert set(present) <= set(column.enum), column.name
        if column.low is not None:
            assert (present >= column.low).all(), column.name
        if column.high is not None:
            assert (present <= column.high).all(), column.name
        if column.type is ColType.TIMESTAMP:
            assert str(values.dtype).startswith("datetime64") and str(values.dt.tz) == "UTC"
    if schema.feature_column is not None:
        assert set(df[schema.feature_column]) == {manifest.feature}


@pytest.mark.parametrize(
    ("kind", "column", "prefix"),
    [
        ("predictions", "prediction_id", "p-"),
        ("predictions", "item_id", "i-"),
        ("predictions", "customer_id", "c-"),
        ("decisions", "decision_id", "d-"),
        ("decisions", "item_id", "i-"),
    ],
)
def test_ids_carry_their_prefix(
    small: dict[str, DemoManifest], kind: str, column: str, prefix: str
) -> None:
    assert _load(small["parquet"], kind)[column].str.startswith(prefix).all()


def test_parquet_columns_are_typed(small: dict[str, DemoManifest]) -> None:
    expected = {
        ColType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        ColType.FLOAT: pa.float64(),
        ColType.INT: pa.int64(),
        ColType.STRING: pa.string(),
        ColType.ENUM: pa.string(),
        ColType.JSON: pa.string(),
    }
    manifest = small["parquet"]
    for kind, paths in manifest.files.items():
        schema = SCHEMAS[Kind(kind)]
        for path in paths:
            arrow = pq.read_schema(path)
            for column in schema.columns:
                assert arrow.field(column.name).type == expected[column.type], (path, column)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_timestamps_carry_offsets(small: dict[str, DemoManifest], fmt: str) -> None:
    raw = pd.concat([_read_raw(p) for p in small[fmt].files["predictions"]])["predicted_at"]
    utc = raw.str.endswith("Z") | raw.str.endswith("+00:00")
    no_offset = ~raw.str.contains(r"(?:Z|[+-]\d\d:\d\d)$")
    other = ~utc & ~no_offset
    assert 0.07 < other.mean() < 0.13
    assert 0.005 < no_offset.mean() < 0.04
    assert raw.str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}").all()
    # An offset changes the wall clock, not the instant: the UTC day is the file's day.
    frame = _load(small[fmt], "predictions")
    utc_day = frame["predicted_at"].dt.strftime("predictions-%Y-%m-%d")
    assert (utc_day == frame["_file"].str.replace(f".{fmt}", "")).all()
    local_day = raw.str[:10].to_numpy()
    assert (local_day != frame["predicted_at"].dt.strftime("%Y-%m-%d").to_numpy()).any()


def test_json_lines_keep_floats_floats(small: dict[str, DemoManifest]) -> None:
    rows = [
        json.loads(line)
        for p in small["jsonl"].files["predictions"]
        for line in p.read_text("utf-8").splitlines()
    ]
    for column in ("confidence", "latency_ms"):
        values = [row[column] for row in rows if row[column] is not None]
        assert values and all(isinstance(v, float) for v in values), column
    assert any(row["confidence"] == 1.0 for row in rows)  # written as 1.0, not 1


def test_class_probabilities_are_consistent(small: dict[str, DemoManifest]) -> None:
    preds = _load(small["csv"], "predictions")
    ok = preds[preds["class_probabilities"].notna()]
    assert len(ok) == (~preds["status"].isin(FAILED_STATUSES)).sum()
    for text, label, confidence in ok[
        ["class_probabilities", "predicted_label", "confidence"]
    ].itertuples(index=False):
        probs = json.loads(text)
        assert list(probs) == list(small["csv"].labels)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
        assert probs[label] == confidence
        assert all(p < confidence for name, p in probs.items() if name != label)


def test_class_probabilities_can_be_left_out(tmp_path: Path) -> None:
    m = generate(tmp_path, n_predictions=1_000, days=5, class_probabilities=False)
    assert _load(m, "predictions")["class_probabilities"].isna().all()


# --- sizes, arrival pattern, segments ------------------------------------------------------


def test_counts_are_roughly_as_asked(planted: DemoManifest) -> None:
    preds = _load(planted, "predictions")
    assert len(preds) == pytest.approx(50_000, rel=0.01)
    items = preds["item_id"].nunique()
    decisions = _load(planted, "decisions")
    assert 0.85 * items < decisions["item_id"].nunique() < 0.93 * items
    assert 0.02 < decisions["item_id"].duplicated().sum() / items < 0.04
    assert 150 < planted.counts["feedback"] < 450
    assert planted.counts == {k: len(_load(planted, k)) for k in planted.files}


def test_weekends_are_quieter(planted: DemoManifest) -> None:
    preds = _load(planted, "predictions")
    v1 = preds[preds["model_version"] == "v1"]
    per_day = v1.groupby(v1["predicted_at"].dt.date).size()
    weekend = np.array([d.weekday() >= 5 for d in per_day.index])
    assert per_day[weekend].mean() < 0.7 * per_day[~weekend].mean()


def test_segments_have_their_shape(planted: DemoManifest) -> None:
    preds = _load(planted, "predictions")
    assert preds.groupby("customer_id")["segment"].nunique().max() == 1
    customers = preds.groupby("segment")["customer_id"].nunique()
    assert set(customers.index) == set(DEFAULT_SEGMENTS)
    assert customers["smb"] > customers["mid_market"] > customers["enterprise"]
    assert customers["internal"] < customers["enterprise"]
    volume = preds.groupby("segment").size() / customers
    assert volume["enterprise"] > 3 * volume["smb"]


# --- versions, modes, routing ----------------------------------------------------------------


def test_candidate_predicts_the_same_items_from_a_third_of_the_window(
    planted: DemoManifest,
) -> None:
    preds = _load(planted, "predictions")
    day = preds["predicted_at"].dt.date
    first_v2 = day[preds["model_version"] == "v2"].min()
    assert first_v2 == planted.start + dt.timedelta(days=10)
    later = preds[day >= first_v2]
    versions = later.groupby("item_id")["model_version"].apply(frozenset)
    assert (versions == frozenset({"v1", "v2"})).all()
    assert set(preds.loc[day < first_v2, "model_version"]) == {"v1"}
    assert set(preds.loc[preds["model_version"] == "v2", "mode"]) == {"shadow"}


def test_candidate_is_better_on_the_same_unshown_items(planted: DemoManifest) -> None:
    labeled = _labeled(planted)
    unshown = labeled[labeled["mode"] == "shadow"]
    paired = (
        unshown.pivot_table(
            index="item_id", columns="model_version", values="correct", aggfunc="first"
        )
        .dropna()
        .astype(bool)
    )
    assert len(paired) > 3_000
    assert paired["v2"].mean() > paired["v1"].mean()
    table = pd.crosstab(paired["v1"], paired["v2"]).to_numpy()
    assert mcnemar(table, exact=True).pvalue < 0.05


def test_modes_follow_the_rollout(planted: DemoManifest) -> None:
    preds = _load(planted, "predictions")
    live = preds[preds["model_version"] == "v1"]
    second_half = live["predicted_at"].dt.date >= planted.start + dt.timedelta(days=15)
    assert set(live.loc[~second_half, "mode"]) == {"shadow"}
    modes = live.loc[second_half, "mode"].value_counts(normalize=True)
    assert modes["suggestion"] > 0.6 and 0.05 < modes["confirmation"] < 0.35
    assert 0.03 < modes["shadow"] < 0.07
    holdout = is_blind_holdout(live.loc[second_half, "item_id"].tolist(), share=0.05)
    assert ((live.loc[second_half, "mode"] == "shadow").to_numpy() == holdout).all()


def test_routing_follows_the_default_bands(planted: DemoManifest) -> None:
    preds = _load(planted, "predictions")
    shadow = preds["mode"] == "shadow"
    assert preds.loc[shadow, "routed_to"].isna().all()
    shown = preds[~shadow]
    failed = shown["status"].isin(FAILED_STATUSES)
    assert (shown.loc[failed, "routed_to"] == "human").all()
    ok = shown[~failed]
    assert (ok["routed_to"] == _band(ok["confidence"])).all()


def test_status_and_latency_on_normal_days(planted: DemoManifest) -> None:
    preds = _load(planted, "predictions")
    normal = preds[preds["predicted_at"].dt.date != BAD_DAY]
    rates = normal["status"].value_counts(normalize=True)
    assert rates["ok"] > 0.98
    assert 0.002 < rates[["error", "timeout"]].sum() < 0.01
    assert 0 < rates["fallback"] < 0.01
    assert 600 < normal.loc[normal["status"] == "ok", "latency_ms"].median() < 1000


# --- decisions ----------------------------------------------------------------------------


def test_decisions_are_filed_by_the_day_they_were_made(planted: DemoManifest) -> None:
    decisions = _load(planted, "decisions")
    filed = decisions["_file"].str.slice(10, 20)
    assert (decisions["decided_at"].dt.strftime("%Y-%m-%d") == filed).all()
    assert decisions["decided_at"].max() < pd.Timestamp(END + dt.timedelta(days=1), tz="UTC")
    predicted = _load(planted, "predictions").groupby("item_id")["predicted_at"].max()
    late = decisions["decided_at"] - decisions["item_id"].map(predicted)
    assert (late > pd.Timedelta(0)).all()
    days_late = (
        decisions["decided_at"].dt.normalize() - decisions["item_id"].map(predicted).dt.normalize()
    ).dt.days
    assert (days_late >= 1).mean() > 0.2
    assert (days_late <= 2).mean() > 0.75
    assert days_late.max() <= 10


def test_corrections_come_later_with_a_greater_id(planted: DemoManifest) -> None:
    decisions = _load(planted, "decisions").sort_values(["item_id", "decided_at"])
    twice = decisions[decisions["item_id"].duplicated(keep=False)]
    first, last = twice.groupby("item_id").head(1), twice.groupby("item_id").tail(1)
    assert (first["decision_id"].to_numpy() < last["decision_id"].to_numpy()).all()
    assert (first["human_label"].to_numpy() != last["human_label"].to_numpy()).all()


def test_humans_lean_towards_shown_suggestions(planted: DemoManifest) -> None:
    labeled = _labeled(planted)
    live = labeled[labeled["model_version"] == "v1"]
    shown = live["mode"].isin(SHOWN_MODES)
    agreement_shown = live.loc[shown, "correct"].mean()
    agreement_unshown = live.loc[~shown, "correct"].mean()
    assert agreement_shown - agreement_unshown > 0.01
    decisions = _final_decisions(_load(planted, "decisions"))
    actions = live.merge(decisions[["item_id", "action"]], on="item_id")
    is_shown = actions["mode"].isin(SHOWN_MODES)
    assert (actions.loc[~is_shown, "action"] == "manual").all()
    accepted = actions.loc[is_shown, "action"] == "accepted"
    assert (accepted == actions.loc[is_shown, "correct"]).all()
    changed = actions.loc[is_shown & ~actions["correct"], "action"].value_counts(normalize=True)
    assert changed["overridden"] > changed["edited"] > 0


# --- planted effects -------------------------------------------------------------------------


def _calibration_gaps(manifest: DemoManifest) -> pd.DataFrame:
    """Accuracy minus mean confidence per band, on unshown items outside the weak segment."""
    labeled = _labeled(manifest)
    clean = labeled[(labeled["mode"] == "shadow") & (labeled["segment"] != "enterprise")]
    grouped = clean.groupby(_band(clean["confidence"]))
    return pd.DataFrame(
        {"gap": grouped["correct"].mean() - grouped["confidence"].mean(), "n": grouped.size()}
    )


def test_overconfident_band_is_planted(planted: DemoManifest, clean: DemoManifest) -> None:
    gaps = _calibration_gaps(planted)
    assert gaps.loc["confirm", "n"] > 1_000
    assert gaps.loc["confirm", "gap"] < -0.06
    assert abs(gaps.loc["auto", "gap"]) < 0.02
    assert abs(gaps.loc["review", "gap"]) < 0.05
    assert abs(_calibration_gaps(clean).loc["confirm", "gap"]) < 0.03


def _segment_accuracy(manifest: DemoManifest) -> pd.Series:
    labeled = _labeled(manifest)
    return labeled[labeled["mode"] == "shadow"].groupby("segment")["correct"].mean()


def test_weak_segment_is_planted(planted: DemoManifest, clean: DemoManifest) -> None:
    accuracy = _segment_accuracy(planted)
    others = accuracy.drop("enterprise")
    assert others.min() - accuracy["enterprise"] > 0.05
    assert others.max() - others.min() < 0.03
    flat = _segment_accuracy(clean)
    assert flat.max() - flat.min() < 0.03


def _daily_health(manifest: DemoManifest) -> pd.DataFrame:
    preds = _load(manifest, "predictions")
    by_day = preds.groupby(preds["predicted_at"].dt.date)
    return pd.DataFrame(
        {
            "error_rate": by_day["status"].apply(lambda s: s.isin(FAILED_STATUSES).mean()),
            "p95": by_day["latency_ms"].quantile(0.95),
        }
    )


def test_bad_day_is_planted(planted: DemoManifest, clean: DemoManifest) -> None:
    health = _daily_health(planted)
    others = health.drop(index=BAD_DAY)
    assert health.loc[BAD_DAY, "error_rate"] > 0.07
    assert others["error_rate"].max() < 0.02
    assert 10_000 < health.loc[BAD_DAY, "p95"] < 15_000
    assert others["p95"].max() < 3_000
    assert _daily_health(clean)["error_rate"].max() < 0.02
    # the manifest's realized numbers are what the files hold
    assert planted.stats["error_rate_bad_day"] == pytest.approx(health.loc[BAD_DAY, "error_rate"])
    assert planted.stats["latency_p95_ms_bad_day"] == pytest.approx(
        health.loc[BAD_DAY, "p95"], rel=0.01
    )


def test_overall_accuracy_is_realistic(planted: DemoManifest) -> None:
    labeled = _labeled(planted)
    unshown = labeled[labeled["mode"] == "shadow"]
    # Calibrated >= 0.95 (~70 % of traffic) and the planted band 15 points below its confidence.
    assert 0.85 < unshown["correct"].mean() < 0.93


def test_manifest_describes_the_planted_effects(planted: DemoManifest, clean: DemoManifest) -> None:
    assert set(planted.planted) == {"overconfident_band", "weak_segment", "bad_day"}
    assert "[0.80, 0.95)" in planted.planted["overconfident_band"]
    assert "'enterprise'" in planted.planted["weak_segment"]
    assert BAD_DAY.isoformat() in planted.planted["bad_day"]
    assert clean.planted == {}
    assert planted.start == END - dt.timedelta(days=29) and planted.end == END


# --- feedback and incidents ------------------------------------------------------------------


def test_feedback_comes_from_internal_users(planted: DemoManifest) -> None:
    feedback = _load(planted, "feedback")
    assert set(feedback["segment"]) == {"internal"}
    assert 0.78 < (feedback["rating"] == "positive").mean() < 0.92
    positive = feedback["rating"] == "positive"
    assert feedback.loc[positive, "nps_score"].mean() > feedback.loc[~positive, "nps_score"].mean()
    items = set(_load(planted, "predictions")["item_id"])
    assert set(feedback["item_id"].dropna()) <= items


@pytest.mark.parametrize(
    ("open_critical", "open_severities"), [(False, ["minor"]), (True, ["minor", "critical"])]
)
def test_incidents(tmp_path: Path, open_critical: bool, open_severities: list[str]) -> None:
    m = generate(tmp_path, n_predictions=1_000, days=10, open_critical=open_critical)
    incidents = _load(m, "incidents")
    resolved = incidents[incidents["resolved_at"].notna()]
    assert resolved[["severity", "kind"]].values.tolist() == [["major", "bug"]]
    assert (resolved["resolved_at"] > resolved["opened_at"]).all()
    assert incidents.loc[incidents["resolved_at"].isna(), "severity"].tolist() == open_severities


# --- config, options, errors -------------------------------------------------------------------


def test_demo_config_is_a_valid_rollout_config(planted: DemoManifest) -> None:
    config = parse_config(demo_config(planted))
    assert config.feature == planted.feature
    assert config.phase.value == "shadow"
    assert config.phase_started == END - dt.timedelta(days=16)
    assert tuple(config.segments) == DEFAULT_SEGMENTS


def test_custom_segments_versions_and_labels(tmp_path: Path) -> None:
    m = generate(
        tmp_path,
        n_predictions=4_000,
        days=9,
        segments=("retail", "wholesale"),
        model_versions=("a", "b", "c"),
        n_classes=10,
        feature="my feature",
    )
    preds = _load(m, "predictions")
    assert set(preds["segment"]) == {"retail", "wholesale"}
    assert set(preds["model_version"]) == {"a", "b", "c"}
    labels = set(preds["predicted_label"].dropna())
    assert labels <= set(m.labels) and "class_9" in m.labels and "billing" in m.labels
    assert "'wholesale'" in m.planted["weak_segment"]
    assert demo_config(m)["segments"] == ["retail", "wholesale"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_predictions": 1, "days": 1},
        {"n_predictions": 7, "days": 3, "model_versions": ("only",), "n_classes": 2},
        {"n_predictions": 300, "days": 2, "n_customers": 4, "blind_share": 1.0},
        {"n_predictions": 300, "days": 8, "n_classes": 50, "n_feedback": 0, "effects": False},
    ],
)
def test_edge_sizes_still_follow_the_contract(tmp_path: Path, kwargs: dict) -> None:
    m = generate(tmp_path, fmt="jsonl", **kwargs)
    preds = _load(m, "predictions")
    assert len(preds) == m.counts["predictions"] >= 1
    assert len(m.files["predictions"]) == len(m.files["decisions"]) == kwargs["days"]
    assert preds["confidence"].dropna().between(0, 1).all()
    for text, label in preds[["class_probabilities", "predicted_label"]].dropna().values:
        probs = json.loads(text)
        assert max(probs, key=probs.get) == label and sum(probs.values()) == pytest.approx(1)
    if kwargs.get("n_feedback") == 0:
        assert m.counts["feedback"] == 0 and _read_raw(m.files["feedback"][0]).empty


def test_existing_files_are_kept_unless_overwrite(tmp_path: Path) -> None:
    generate(tmp_path, n_predictions=500, days=3, fmt="csv")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate(tmp_path, n_predictions=500, days=3, fmt="parquet")
    m = generate(tmp_path, n_predictions=500, days=3, fmt="parquet", overwrite=True)
    on_disk = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(p for paths in m.files.values() for p in paths)


def test_progress_is_reported_per_day(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    generate(
        tmp_path, n_predictions=500, days=4, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_predictions": 0}, "n_predictions must be an integer >= 1, got 0"),
        ({"n_predictions": 1.5}, "n_predictions must be an integer"),
        ({"days": 0}, "days must be an integer >= 1, got 0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"n_classes": 1}, r"n_classes must be an integer in \[2, 50\], got 1"),
        ({"n_customers": 2}, "n_customers must be an integer >= the number of segments"),
        ({"segments": ("a", "a")}, "segments must be a non-empty sequence of distinct names"),
        ({"segments": "smb"}, "segments must be a non-empty sequence"),
        ({"model_versions": ()}, "model_versions must be a non-empty sequence"),
        ({"feature": ""}, "feature must hold non-empty printable strings"),
        ({"feature": "a\nb"}, "feature must hold non-empty printable strings"),
        ({"fmt": "xlsx"}, "fmt must be one of csv, jsonl, parquet, got 'xlsx'"),
        ({"blind_share": 1.5}, r"blind_share must be a number in \[0, 1\], got 1.5"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate(tmp_path, **kwargs)


def test_end_must_be_a_date(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"end must be a datetime\.date"):
        generate(tmp_path, end=dt.datetime(2026, 11, 20))  # type: ignore[arg-type]


# --- the hold-out hash -------------------------------------------------------------------------


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return h


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # published FNV-1a 64-bit test vectors
        ("", 0xCBF29CE484222325),
        ("a", 0xAF63DC4C8601EC8C),
        ("foobar", 0x85944171F73967E8),
    ],
)
def test_reference_fnv1a_matches_published_vectors(text: str, expected: int) -> None:
    assert _fnv1a64(text.encode()) == expected


def test_blind_holdout_is_a_stable_hash_of_the_item_id() -> None:
    ids = ["i-1", "i-22", "ticket-ü-333", "", "x" * 40] + [f"i-{n}" for n in range(2_000)]
    expected = [_fnv1a64(s.encode()) % 10_000 < 500 for s in ids]
    assert is_blind_holdout(ids, share=0.05).tolist() == expected
    assert 0.03 < np.mean(expected) < 0.07
    assert not is_blind_holdout(ids, share=0.0).any()
    assert is_blind_holdout(ids, share=1.0).all()
    assert is_blind_holdout([], share=0.05).shape == (0,)


# --- speed and memory (slow) ---------------------------------------------------------------


_MEASURE = """
import resource, sys, time
from trustramp.demo import generate
start = time.perf_counter()
generate(sys.argv[1], n_predictions=int(sys.argv[2]), days=int(sys.argv[3]), fmt="parquet")
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _measure(out: Path, n: int, days: int) -> tuple[float, float]:
    """Seconds and peak resident memory (MB) of a fresh process generating `n` predictions."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(out), str(n), str(days)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, max_rss_kb = result.stdout.split()
    return float(seconds), float(max_rss_kb) / 1024


@pytest.mark.slow
def test_speed_and_memory_are_bounded(tmp_path: Path) -> None:
    # The same traffic per day over 4x the days: memory follows a day's data, not the total.
    _, short_mb = _measure(tmp_path / "short", 800_000, 6)
    seconds, long_mb = _measure(tmp_path / "long", 3_200_000, 24)
    assert seconds < 60, f"3.2M predictions took {seconds:.1f} s"
    assert long_mb < 600 and long_mb < 1.25 * short_mb, (short_mb, long_mb)
    assert sum(p.stat().st_size for p in (tmp_path / "long").rglob("*.parquet")) > 50e6
