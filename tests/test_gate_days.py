"""The gate window's statistics are per-day frames of stage 1 (issue 17): computing the days in
two halves gives the frames of one run over all days, and the window's paired table, customer
grid, class-wise bins and md5 sample summed from them equal a plain pandas computation on the
raw joined rows (equal-mass bins: test_metrics_engine)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import demo_gate, raw_joined

from trustramp.store import aggregates as agg
from trustramp.store import daycache
from trustramp.store.lake import Home, reader


def _sorted(frame: pd.DataFrame | pa.Table) -> pd.DataFrame:
    if isinstance(frame, pa.Table):
        frame = frame.to_pandas()
    cols = list(frame.columns)
    return frame.sort_values(cols, na_position="first").reset_index(drop=True)


def _concat(parts: list[pd.DataFrame | pa.Table]) -> pd.DataFrame | pa.Table:
    if isinstance(parts[0], pa.Table):
        return pa.concat_tables(parts)
    return pd.concat(parts, ignore_index=True)


def test_two_halves_of_the_days_sum_to_one_run(demo_lake: dict) -> None:
    cfg = demo_lake["config"]
    end = demo_lake["manifest"].end
    start = end - dt.timedelta(days=13)
    days = [start + dt.timedelta(days=i) for i in range(14)]
    con = reader(Home.at(demo_lake["home"]))
    try:
        whole = agg.compute_aggregates(con, cfg.feature, start, end, seed=3)
        halves = [
            agg.compute_aggregates(con, cfg.feature, start, end, days=part, seed=3)
            for part in (days[::2], days[1::2])  # interleaved: each half's days are scattered
        ]
    finally:
        con.close()
    for name in daycache.FRAMES:
        a = getattr(whole, name)
        b = _concat([getattr(h, name) for h in halves])
        if name != "classwise":
            assert len(a) > 0, name
        pd.testing.assert_frame_equal(_sorted(a), _sorted(b), check_dtype=False, obj=name)
    # and the window's statistics summed from the halves are the whole run's
    merged = agg.Aggregates(
        feature=cfg.feature,
        start=start,
        end=end,
        bins=whole.bins,
        grid_step=whole.grid_step,
        **{n: _concat([getattr(h, n) for h in halves]) for n in daycache.FRAMES},
    )
    versions = sorted(set(whole.grid["model_version"].to_pylist()))
    assert len(versions) >= 2
    v, prev = versions[-1], versions[-2]
    assert agg.paired_table(merged, start, end, v, prev) == agg.paired_table(
        whole, start, end, v, prev
    )
    for fn in (agg.customer_grid, agg.labeled_sample):
        pd.testing.assert_frame_equal(
            _sorted(fn(merged, start, end, v)), _sorted(fn(whole, start, end, v))
        )
    pd.testing.assert_frame_equal(
        agg.equal_mass_bins(merged, start, end, v, 15),
        agg.equal_mass_bins(whole, start, end, v, 15),
    )


@pytest.fixture(scope="module")
def gate(demo_lake: dict) -> dict:
    win, aggs, pop = demo_gate(demo_lake)
    raw = raw_joined(demo_lake["home"], demo_lake["config"].feature)
    raw["day"] = pd.to_datetime(raw["date"]).dt.date
    raw = raw[
        (raw["day"] >= win.gate_start)
        & (raw["day"] <= win.gate_end)
        & (raw["mode"] == "shadow")
        & ~raw["status"].isin(["error", "timeout"])
    ]
    return {"win": win, "aggs": aggs, "pop": pop, "raw": raw}


def test_paired_table_equals_pandas_on_items_both_versions_predicted(gate: dict) -> None:
    win, aggs, pop, raw = gate["win"], gate["aggs"], gate["pop"], gate["raw"]
    assert pop.version and pop.previous
    got = agg.paired_table(aggs, win.gate_start, win.gate_end, pop.version, pop.previous)
    lab = raw[raw["human_label"].notna()].assign(
        hit=lambda f: f["human_label"] == f["predicted_label"]
    )
    per = lab.groupby(["day", "item_id", "model_version"])["hit"].any().unstack("model_version")
    per = per[[pop.version, pop.previous]].dropna()
    want = per.groupby([pop.version, pop.previous]).size()
    assert got == {(bool(c), bool(p)): int(n) for (c, p), n in want.items()}
    assert sum(got.values()) > 1000


def test_customer_grid_equals_pandas(gate: dict) -> None:
    win, aggs, pop, raw = gate["win"], gate["aggs"], gate["pop"], gate["raw"]
    got = agg.customer_grid(aggs, win.gate_start, win.gate_end, pop.version)
    rows = raw[(raw["model_version"] == pop.version) & raw["confidence"].notna()]
    rows = rows.assign(
        grid_bin=np.minimum(np.floor(np.round(rows["confidence"] * 1e6) / 10_000), 99).astype(int),
        labeled=rows["human_label"].notna(),
        correct=rows["human_label"] == rows["predicted_label"],
        n=1,
    )
    want = (
        rows.groupby(["customer_id", "grid_bin"], dropna=False)[["labeled", "correct", "n"]]
        .sum()
        .reset_index()
    )
    pd.testing.assert_frame_equal(_sorted(got), _sorted(want), check_dtype=False)


def test_classwise_bins_equal_pandas_with_classes_missing_from_some_days(gate: dict) -> None:
    """Items whose objects omit a class count at probability 0 for it, across days too."""
    win, aggs, pop, raw = gate["win"], gate["aggs"], gate["pop"], gate["raw"]
    got = agg.classwise_bins(aggs, win.gate_start, win.gate_end, pop.version)
    rows = raw[
        (raw["model_version"] == pop.version)
        & raw["human_label"].notna()
        & raw["class_probabilities"].notna()
    ]
    assert len(rows) > 1000 and len(got) > 0
    maps = [json.loads(x) for x in rows["class_probabilities"]]
    classes = sorted({k for m in maps for k in m})
    labels = rows["human_label"].to_numpy()
    out = []
    for c in classes:
        p = np.clip(np.array([m.get(c, 0.0) for m in maps]), 0, 1)
        b = np.clip(np.ceil(p * 15 - 1e-9) - 1, 0, 14).astype(int)
        for k in np.unique(b):
            at = b == k
            out.append((c, k, int(at.sum()), int((labels[at] == c).sum()), float(p[at].sum())))
    want = pd.DataFrame(out, columns=["class", "bin", "n", "hits", "prob_sum"])
    got = got.sort_values(["class", "bin"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


def test_sample_is_the_smallest_md5_keys(gate: dict) -> None:
    """The recalibration sample: the `limit` labeled unshown items of smallest key, the key
    computed here from md5(item_id) alone (no engine hash)."""
    win, aggs, pop, raw = gate["win"], gate["aggs"], gate["pop"], gate["raw"]
    got = agg.labeled_sample(aggs, win.gate_start, win.gate_end, pop.version, limit=500)
    rows = raw[
        (raw["model_version"] == pop.version)
        & raw["human_label"].notna()
        & raw["confidence"].notna()
    ]
    # DuckDB's md5_number_lower (the lake's item_key): the digest's last 8 bytes, little-endian
    low64 = [
        int.from_bytes(hashlib.md5(i.encode()).digest()[8:], "little") for i in rows["item_id"]
    ]
    shift = agg.sample_shift(0)  # demo_gate's aggregates use the default seed, 0
    key = [(k % 2**63 + shift) % 2**63 for k in low64]
    want = rows.assign(sample_key=key).sort_values("sample_key").head(500)
    assert list(got["sample_key"]) == list(want["sample_key"])
    assert list(got["confidence"]) == list(want["confidence"])
    assert list(got["correct"]) == list(
        (want["human_label"] == want["predicted_label"]).astype(int)
    )


def test_sample_cut_that_falls_short_is_taken_again_whole(
    demo_lake: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sample_days.sql sorts only keys under a cut; a cut too tight for some version-day (here
    forced: half the cap) is detected and that chunk's sample recomputed without it, so the
    result is still each day's `cap` smallest keys."""
    cfg = demo_lake["config"]
    end = demo_lake["manifest"].end
    start = end - dt.timedelta(days=3)
    monkeypatch.setattr(agg, "SAMPLE_PER_DAY", 50)
    con = reader(Home.at(demo_lake["home"]))
    try:
        got = {}
        for margin in (0.5, 3.0):
            monkeypatch.setattr(agg, "SAMPLE_MARGIN", margin)
            got[margin] = agg.compute_aggregates(con, cfg.feature, start, end).sample.to_pandas()
    finally:
        con.close()
    per_day = got[0.5].groupby(["model_version", "day"]).size()
    assert (per_day <= 50).all() and (per_day == 50).sum() >= 4
    pd.testing.assert_frame_equal(_sorted(got[0.5]), _sorted(got[3.0]))


def test_gate_frames_only_for_the_gate_window_days(demo_lake: dict, tmp_path: Path) -> None:
    """A refresh computes the gate frames only for the chunks that hold a day of the gate window
    (marked `_gate`); a later refresh whose gate window takes in a day cached without them
    recomputes exactly that day; the window's sums equal those of a run that computed the
    gate frames for every day; and `load` given a gate window reads the gate frames of its days
    only, with the same sums."""
    import shutil

    cfg = demo_lake["config"]
    home = tmp_path / "home"
    shutil.copytree(demo_lake["home"], home, ignore=shutil.ignore_patterns("aggregates"))
    h = Home.at(home)
    key = daycache.Key.of(cfg)
    end = demo_lake["manifest"].end
    start = end - dt.timedelta(days=20)
    gate = (end - dt.timedelta(days=12), end - dt.timedelta(days=7))
    con = reader(h)
    try:
        # one day per chunk, so that chunks outside the gate window exist
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(agg, "CHUNK_ROWS", 1)
            first = daycache.refresh(con, h, cfg.feature, start, end, key, gate=gate)
            base = daycache.cache_dir(h, cfg.feature, key)
            gated = {d for d in first.recomputed if (base / d.isoformat() / "_gate").exists()}
            assert gated == {d for d in first.recomputed if gate[0] <= d <= gate[1]}
            later = (gate[0] - dt.timedelta(days=2), gate[1])
            assert daycache.stale_days(h, cfg.feature, start, end, key, gate=later) == [
                later[0],
                later[0] + dt.timedelta(days=1),
            ]
            again = daycache.refresh(con, h, cfg.feature, start, end, key, gate=later)
            assert list(again.recomputed) == [later[0], later[0] + dt.timedelta(days=1)]
            cached = daycache.load(h, cfg.feature, start, end, key)
            windowed = daycache.load(
                h, cfg.feature, start, end, key, gate=(later[0] + dt.timedelta(days=1), later[1])
            )
        whole = agg.compute_aggregates(
            con, cfg.feature, start, end, bins=key.bins, grid_step=key.grid_step, seed=key.seed
        )
    finally:
        con.close()
    lo, hi = later
    versions = sorted(set(whole.grid["model_version"].to_pylist()))
    v, prev = versions[-1], versions[-2]
    assert agg.paired_table(cached, lo, hi, v, prev) == agg.paired_table(whole, lo, hi, v, prev)
    for fn in (agg.customer_grid, agg.labeled_sample):
        pd.testing.assert_frame_equal(_sorted(fn(cached, lo, hi, v)), _sorted(fn(whole, lo, hi, v)))
    # loaded for a gate window (here a day shorter than the gated days): its gate frames hold
    # exactly the window's days, the gated day before it left unread, with the same sums
    narrow = (lo + dt.timedelta(days=1), hi)
    for name in agg.GATE_FRAMES:
        days = set(getattr(windowed, name)["day"].to_pylist())
        assert days <= {narrow[0] + dt.timedelta(days=i) for i in range((hi - narrow[0]).days + 1)}
    assert lo in set(cached.grid["day"].to_pylist())
    assert agg.paired_table(windowed, *narrow, v, prev) == agg.paired_table(
        cached, *narrow, v, prev
    )
    for fn in (agg.customer_grid, agg.labeled_sample):
        pd.testing.assert_frame_equal(fn(windowed, *narrow, v), fn(cached, *narrow, v))
    pd.testing.assert_frame_equal(
        agg.equal_mass_bins(windowed, *narrow, v, 10), agg.equal_mass_bins(cached, *narrow, v, 10)
    )
    for name in ("cells", "customers", "confusion", "latency", "confidence"):
        pd.testing.assert_frame_equal(getattr(windowed, name), getattr(cached, name))
    for name in ("cells", "customers", "confusion"):  # every day has these, gated or not
        pd.testing.assert_frame_equal(
            _sorted(getattr(cached, name)), _sorted(getattr(whole, name)), check_dtype=False
        )


def test_day_files_are_feathers_byte_for_byte(tmp_path: Path) -> None:
    """The day cache writes its files in memory (`daycache._arrow_bytes`) and reads them whole
    (`_read_arrow`): the bytes are those `feather.write_feather` writes (empty, sliced and
    multi-batch tables alike), and reading gives back the table."""
    import pyarrow as pa
    import pyarrow.feather as feather

    n = 3 * daycache.FEATHER_CHUNK_ROWS + 17
    table = pa.table(
        {
            "model_version": pa.array([f"v{i % 3}" for i in range(n)]),
            "day": pa.array([dt.date(2026, 11, 1 + i % 20) for i in range(n)], pa.date32()),
            "n": pa.array(range(n), pa.int64()),
            "conf_sum": pa.array([i / 7 for i in range(n)]),
        }
    )
    chunked = pa.concat_tables(
        [table.slice(0, 70_000), table.slice(70_000, 5), table.slice(70_005)]
    )
    for t in (table, table.slice(0, 0), table.slice(11, 1000), chunked):
        path = tmp_path / "f.arrow"
        feather.write_feather(t, path, compression="lz4")
        assert daycache._arrow_bytes(t).to_pybytes() == path.read_bytes()
        assert daycache._read_arrow(path).equals(t)
