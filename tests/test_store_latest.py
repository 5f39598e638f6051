"""Stage 1's latest-decision rule (SPEC 1.1) on the edge cases its fast path splits apart: one
decision, several at different times, a tie on decided_at, three decisions out of order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from conftest import pred_row, raw_joined, write_rows

from trustramp.store import aggregates as agg
from trustramp.store import daycache
from trustramp.store.lake import Home, reader

DAY = dt.date(2026, 11, 1)
# item -> decisions (decision_id, decided_at, human_label, action); predicted label is "a"
DECISIONS = {
    0: [("d0", "2026-11-02T10:00:00Z", "a", "accepted")],
    1: [
        ("d1a", "2026-11-02T10:00:00Z", "b", "accepted"),
        ("d1b", "2026-11-03T10:00:00Z", "a", "edited"),
    ],
    2: [
        ("d2a", "2026-11-02T10:00:00Z", "a", "accepted"),
        ("d2b", "2026-11-02T10:00:00Z", "b", "overridden"),
    ],
    3: [
        ("d3a", "2026-11-02T10:00:00Z", "b", "manual"),
        ("d3c", "2026-11-04T10:00:00Z", "a", "manual"),
        ("d3b", "2026-11-03T10:00:00Z", "b", "manual"),
    ],
    4: [
        ("d4b", "2026-11-02T10:00:00Z", "b", "accepted"),
        ("d4a", "2026-11-03T10:00:00Z", "c", "overridden"),
    ],
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trustramp.ingest import ingest_paths

    root = tmp_path_factory.mktemp("latest")
    preds = [
        pred_row(i, predicted_at="2026-11-01T10:00:00Z", confidence=0.5 + i / 20) for i in range(6)
    ]
    shown = [
        pred_row(i + 10, item_id=f"i{i}", predicted_at="2026-11-01T11:00:00Z", mode="suggestion")
        for i in range(6)
    ]
    later = [pred_row(20 + i, predicted_at=f"2026-11-0{5 + i}T10:00:00Z") for i in range(3)]
    write_rows(root / "in" / "predictions.csv", preds + shown + later)
    rows = [
        {"decision_id": d, "item_id": f"i{i}", "decided_at": t, "human_label": h, "action": a}
        for i, ds in DECISIONS.items()
        for d, t, h, a in ds
    ]
    write_rows(root / "in" / "decisions.csv", rows)
    report = ingest_paths([root / "in"], root / "home", validate_with_gx=False)
    assert not report.failed
    return root / "home"


def test_latest_decision_per_item_matches_the_rule(lake: Path) -> None:
    raw = raw_joined(lake, "feat")
    unshown = raw[raw["mode"] == "shadow"].set_index("item_id")["human_label"].dropna()
    # i1: the later decision; i2: a tie on decided_at goes to the greatest decision_id;
    # i3: the latest of three; i5 has no decision.
    assert unshown.to_dict() == {"i0": "a", "i1": "a", "i2": "b", "i3": "a", "i4": "c"}
    con = reader(Home.at(lake))
    try:
        aggs = agg.compute_aggregates(con, "feat", DAY, DAY)
        grid = agg.customer_grid(aggs, DAY, DAY, "v1")
        sample = agg.labeled_sample(aggs, DAY, DAY, "v1")
    finally:
        con.close()
    cells = aggs.cells
    shadow = cells[cells["mode"] == "shadow"]
    shadow = shadow[shadow["day"] == DAY]
    assert (shadow["labeled"].sum(), shadow["correct"].sum()) == (5, 3)  # i0, i1, i3 right
    assert (grid["labeled"].sum(), grid["correct"].sum(), grid["n"].sum()) == (5, 3, 6)
    assert sorted(sample["correct"]) == [0, 0, 1, 1, 1]
    shown = cells[cells["mode"] == "suggestion"]
    # Overridden or edited last: i1, i2 (the tie goes to d2b), i4. Accepted first and wrong in
    # the end: i2 (d2a comes first in the tie) and i4; not i1 (its last label is right).
    assert shown["overridden"].sum() == 3
    assert shown["accepted_wrong"].sum() == 2
    confusion = aggs.confusion[~aggs.confusion["shown"]]
    pairs = {(r.predicted_label, r.human_label): r.n for r in confusion.itertuples()}
    assert pairs == {("a", "a"): 3, ("a", "b"): 1, ("a", "c"): 1}


def test_only_some_days_restricts_the_decisions_but_not_the_result(lake: Path) -> None:
    con = reader(Home.at(lake))
    try:
        # one day of a four-day lake: only its items' decisions are aggregated
        whole = agg.compute_aggregates(con, "feat", DAY, DAY + dt.timedelta(days=6))
        some = agg.compute_aggregates(con, "feat", DAY, DAY, days=[DAY])
    finally:
        con.close()
    for name in daycache.FRAMES:
        a, b = getattr(whole, name), getattr(some, name)
        if isinstance(a, pa.Table):
            a, b = agg._gate_rows(a, DAY, DAY).to_pandas(), b.to_pandas()
        else:
            a = a[a["day"] == DAY]
        cols = list(a.columns)
        assert (
            a.sort_values(cols)
            .reset_index(drop=True)
            .equals(b.sort_values(cols).reset_index(drop=True))
        ), name


def test_chunks_of_days_give_the_frames_of_one_pass(
    demo_lake: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage 1 in chunks of days (to bound memory) equals one pass over the window."""
    from trustramp.store.aggregates import CELL_MEASURES

    cfg, end = demo_lake["config"], demo_lake["manifest"].end
    start = end - dt.timedelta(days=9)
    con = reader(Home.at(demo_lake["home"]))
    try:
        one = agg.compute_aggregates(con, cfg.feature, start, end)
        monkeypatch.setattr(agg, "CHUNK_ROWS", 1500)  # a few days per chunk
        days, rows = sorted(set(one.cells["day"])), agg._day_rows(con, cfg.feature)
        assert len(agg._chunks(days, rows, agg._chunk_rows(con))) > 2
        chunked = agg.compute_aggregates(con, cfg.feature, start, end)
    finally:
        con.close()
    for name in ("cells", "customers", "confusion"):
        a, b = getattr(one, name), getattr(chunked, name)
        keys = [c for c in a.columns if c not in CELL_MEASURES and c != "n"]
        a = a.sort_values(keys).reset_index(drop=True)
        b = b.sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_chunks_grow_with_the_memory_limit(tmp_path: Path) -> None:
    """Twice the memory, chunks of twice the predictions (so half as many decision scans)."""
    from trustramp.store.duck import connect

    one = agg._chunk_rows(connect(memory_limit="1GB", temp_directory=tmp_path))
    two = agg._chunk_rows(connect(memory_limit="2GB", temp_directory=tmp_path))
    assert one == pytest.approx(agg.CHUNK_ROWS * 953.6 * 2**20 / 1e9, rel=1e-3)
    assert two == pytest.approx(2 * one, rel=0.05)  # (DuckDB shows 2GB as 1.8 GiB)
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(30)]
    rows = {d: one // 3 + 1 for d in days}
    assert [len(c) for c in agg._chunks(days, rows, one)] == [3] * 10
    assert [len(c) for c in agg._chunks(days, rows, two)] == [6] * 5
