"""Stage 1 of the metrics engine: DuckDB reduces the lake to small tables of sufficient statistics.

Every output is a per-day sufficient statistic (issue 17), computed once per (feature, day) from
one join of the day's predictions to their latest decisions (joined.sql), cached per day
(`daycache`), and merged by summing: the gate window's paired table, customer grid, equal-mass
and class-wise bins and recalibration sample are sums of its days (the functions at the end).
Nothing here returns raw rows, except the recalibration sample's candidates (at most
SAMPLE_PER_DAY per version and day) and the feature's incidents (a handful): a frame's size
depends on the number of days, versions, segments, customers and bins, not on the predictions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from trustramp.contract import DECIDED_BEFORE, PRED_FIRST, PRED_LAST
from trustramp.errors import StoreError
from trustramp.store.duck import memory_limit_bytes, quote_ident, sql, translated
from trustramp.store.engine import DuckEngine, Engine, as_engine

LATENCY_LOG_BINS = 672
LATENCY_MAX_MS = 600_000.0
"""Latency bins: log-spaced, 1 ms to 10 min, ~2 % wide (the same as trustramp.metrics.latency)."""
from trustramp.metrics import LOG_LOSS_EPS  # noqa: E402 - the same clipping as the metrics

GROUPING = {"cells": 0b00001111, "customers": 0b01110011, "confusion": 0b01111000}
"""GROUPING(segment, mode, ece_bin, grid_bin, customer_id, shown, predicted_label, human_label):
a bit is 1 when that column is NOT grouped in the set."""

CELL_MEASURES = [
    "n",
    "errors",
    "fallbacks",
    "labeled",
    "correct",
    "conf_sum",
    "conf_sq_sum",
    "conf_hit_sum",
    "nll_sum",
    "shown_labeled",
    "overridden",
    "accepted_wrong",
]


FLOAT_MEASURES = frozenset({"conf_sum", "conf_sq_sum", "conf_hit_sum", "nll_sum"})
INT_MEASURES = (frozenset(CELL_MEASURES) - FLOAT_MEASURES) | {"rows"}
"""Count columns (int64 in every frame, whatever the engine returned)."""

CELL_FRAMES: dict[str, tuple[list[str], list[str]]] = {
    "cells": (["model_version", "segment", "mode", "day", "ece_bin", "grid_bin"], CELL_MEASURES),
    "customers": (["model_version", "customer_id", "segment", "shown", "day"], CELL_MEASURES),
    "confusion": (
        ["model_version", "segment", "shown", "day", "predicted_label", "human_label"],
        ["n", "rows"],
    ),
}
"""The frames of cells.sql's grouping sets: (keys, measures). A group exists while it counts a
row (`n`; in the confusion, `rows`: its `n` counts the labeled rows only), so frames updated by
sums (`merge_delta`) drop the groups brought to zero, as a recomputation would not have them."""


@dataclass(frozen=True)
class Aggregates:
    """Sufficient statistics of one feature over [start, end] (dates inclusive)."""

    feature: str
    start: dt.date
    end: dt.date
    bins: int
    grid_step: float
    cells: pd.DataFrame
    """model_version, segment, mode, day, ece_bin, grid_bin + CELL_MEASURES."""
    customers: pd.DataFrame
    """model_version, customer_id, segment, shown, day + CELL_MEASURES."""
    confusion: pd.DataFrame
    """model_version, segment, shown, day, predicted_label, human_label, n (labeled rows)."""
    latency: pd.DataFrame
    """model_version, segment, mode, day, lat_bin, n (bins of trustramp.metrics.latency)."""
    confidence: pd.DataFrame
    """model_version, day, bin, n: all traffic with a confidence, on `bins` equal-width bins."""
    grid: pa.Table = field(default_factory=lambda: empty_gate("grid"))
    """model_version, customer_id, day, grid_bin, labeled, correct, n: unshown, successful
    predictions with a confidence (the thresholds' customers as clusters)."""
    paired: pa.Table = field(default_factory=lambda: empty_gate("paired"))
    """day, version_a, version_b, hit_a, hit_b, n: labeled unshown items two versions predicted
    on the same day (version_a < version_b)."""
    mass: pa.Table = field(default_factory=lambda: empty_gate("mass"))
    """model_version, day, cell, n, correct, conf_sum: labeled unshown predictions on cells of
    1e-4 of confidence (equal-mass bins are cut from it)."""
    classwise: pa.Table = field(default_factory=lambda: empty_gate("classwise"))
    """model_version, day, class, bin, n, hits, prob_sum (bin -1: items by human label)."""
    sample: pa.Table = field(default_factory=lambda: empty_gate("sample"))
    """model_version, day, confidence, correct, sample_key: each version and day's SAMPLE_PER_DAY
    labeled unshown predictions of smallest md5 key (the recalibration sample's candidates).

    The five gate frames (GATE_SCHEMAS) stay Arrow tables from the engine to the day cache and
    back: they are large (about a row per customer, version, day and grid cell), and only the
    gate window's sums below read them, after filtering."""
    gated: frozenset[dt.date] = frozenset()
    """The days whose gate frames `compute_aggregates(gate_days=...)` computed (the day cache
    records them as `_gate` marks; `daycache.load` leaves this empty)."""


def empty_frame(name: str) -> pd.DataFrame:
    """A frame of `Aggregates` with its columns and no rows."""
    cols = {
        **{n: [*keys, *measures] for n, (keys, measures) in CELL_FRAMES.items()},
        "latency": ["model_version", "segment", "mode", "day", "lat_bin", "n"],
        "confidence": ["model_version", "day", "bin", "n"],
    }[name]
    return pd.DataFrame(
        {
            c: pd.Series(
                dtype="float64" if c in FLOAT_MEASURES else "int64" if c in INT_MEASURES else object
            )
            for c in cols
        }
    )


_S, _D, _I32, _I64, _F = pa.string(), pa.date32(), pa.int32(), pa.int64(), pa.float64()
GATE_SCHEMAS: dict[str, pa.Schema] = {
    "grid": pa.schema(
        [
            ("model_version", _S),
            ("customer_id", _S),
            ("day", _D),
            ("grid_bin", _I32),
            ("labeled", _I64),
            ("correct", _I64),
            ("n", _I64),
        ]
    ),
    "paired": pa.schema(
        [
            ("day", _D),
            ("version_a", _S),
            ("version_b", _S),
            ("hit_a", pa.bool_()),
            ("hit_b", pa.bool_()),
            ("n", _I64),
        ]
    ),
    "mass": pa.schema(
        [
            ("model_version", _S),
            ("day", _D),
            ("cell", _I32),
            ("n", _I64),
            ("correct", _I64),
            ("conf_sum", _F),
        ]
    ),
    "classwise": pa.schema(
        [
            ("model_version", _S),
            ("day", _D),
            ("class", _S),
            ("bin", _I32),
            ("n", _I64),
            ("hits", _I64),
            ("prob_sum", _F),
        ]
    ),
    "sample": pa.schema(
        [
            ("model_version", _S),
            ("day", _D),
            ("confidence", _F),
            ("correct", _I64),
            ("sample_key", _I64),
        ]
    ),
}
"""The gate frames' columns and types, whichever engine computed them."""
GATE_FRAMES = frozenset(GATE_SCHEMAS)


def empty_gate(name: str) -> pa.Table:
    """A gate frame with its columns and no rows."""
    return GATE_SCHEMAS[name].empty_table()


def _gate_table(table: pa.Table, name: str) -> pa.Table:
    """An engine's result as gate frame `name` (its columns in order, its types)."""
    schema = GATE_SCHEMAS[name]
    return table.select(schema.names).cast(schema)


def _params(feature: str, start: dt.date, end: dt.date) -> dict[str, object]:
    return {"feature": feature, "start": start, "end": end}


def _stage1_params(
    feature: str,
    start: dt.date,
    end: dt.date,
    days: list[dt.date] | None,
    *,
    bins: int,
    grid_step: float,
    seed: int,
) -> dict[str, object]:
    """The bound parameters of the stage-1 queries (each query takes those it uses: `_bound`)."""
    return {
        **_params(feature, start, end),
        "days": days,
        "bins": bins,
        "grid_scale": round(grid_step * 1e6),
        "n_grid": round(1 / grid_step),
        "eps": LOG_LOSS_EPS,
        "n_log": LATENCY_LOG_BINS,
        "max_ms": LATENCY_MAX_MS,
        "shift": sample_shift(seed),
        "cap": SAMPLE_PER_DAY,
    }


def _all_days(start: dt.date, end: dt.date) -> set[dt.date]:
    return {start + dt.timedelta(days=i) for i in range((end - start).days + 1)}


def _days_filter(start: dt.date, end: dt.date, days: list[dt.date] | None) -> str:
    """SQL condition on `date` for the wanted days: none when they are all of [start, end] (a
    list filter would read every partition of the range; the range alone prunes files)."""
    if days is None or set(days) >= _all_days(start, end):
        return "TRUE"
    return "list_contains($days, date)"


def _items_predicted(where: str) -> str:
    """A condition on decisions' item_key: the items of the feature's predictions of
    [$start, $end] that also meet `where` (the restriction latest_decisions.sql takes)."""
    return (
        "item_key IN (SELECT item_key FROM predictions WHERE feature = $feature "
        f"AND date BETWEEN $start AND $end AND {where})"
    )


def _lake_columns(engine: Engine, relation: str) -> set[str]:
    with engine.translated("reading the lake"):
        return set(engine.query(f"SELECT * FROM {relation} LIMIT 0", {}).columns)


def _chunk_items(
    engine: Engine, params: dict[str, object], index: tuple[bool, bool]
) -> str | tuple[str, ...]:
    """A condition on decisions that keeps every decision of the items predicted on the days
    of `params` (and some others), read from the days each decision stored at ingest
    (contract.PRED_FIRST): decisions of other days are skipped by their files' statistics, not
    joined. `index`: whether the lake's decisions have those days, and its predictions the
    DECIDED_BEFORE mark; a lake without days (an older layout not yet migrated) finds the items
    by a semi-join on the chunk's predictions instead.

    With days, the condition comes as disjoint parts (`_with_latest` reads the decisions once
    per part): DuckDB skips row groups by their statistics only for a part that is a plain
    conjunction of ranges, not for an OR of them (measured: the decisions of a 2-day chunk read
    0.15 s as one OR over the 3.7M decisions of a 10M-prediction lake, 0.05 s as parts)."""
    days, marked = index
    if not days:
        return _items_predicted("__DAYS__")
    meet = f"{PRED_FIRST} <= $end AND {PRED_LAST} >= $start"
    parts = [meet, f"{PRED_FIRST} IS NULL"]
    if marked:
        # Predictions that landed after a decision of their item that does not cover their day
        # (rare: a late or backfilled prediction): those decisions are found by item.
        late = (
            "SELECT item_key FROM predictions WHERE feature = $feature AND date BETWEEN $start "
            f"AND $end AND {DECIDED_BEFORE}"
        )
        day_filter = _days_filter(params["start"], params["end"], params["days"])  # type: ignore[arg-type]
        any_late = f"SELECT count(*) AS n FROM ({late} AND {day_filter})"
        if int(engine.query(any_late, _bound(any_late, params))["n"].iloc[0]):
            parts.append(
                f"{PRED_FIRST} IS NOT NULL AND NOT coalesce({meet}, FALSE) "
                f"AND item_key IN ({late} AND __DAYS__)"
            )
    return tuple(parts)


def _with_latest(
    query: str,
    *,
    items: str | tuple[str, ...] = "TRUE",
    days: str = "TRUE",
    few: bool = False,
    predictions: str = "predictions",
    decisions: str = "decisions",
    held: str | None = None,
) -> str:
    """`query` with latest_decisions.sql spliced in (`__LATEST__`), restricted to `items` (a
    condition on decisions.item_key, or disjoint conditions whose decisions are read apart and
    put together: `_chunk_items`), its `__DAYS__` filter, and its `__PREDICTIONS__` and
    `__DECISIONS__` relations. `few`: `items` keeps a small share of the decisions (a chunk's)
    that is costly to find again, which is then held once instead of read twice. `held`: a
    relation the engine holds with the latest decisions (chunk_latest.sql), read instead."""
    hold = "MATERIALIZED" if few else "NOT MATERIALIZED"
    latest = sql("latest_decisions").replace("__DEC__", hold)
    latest = latest.replace("__DECISIONS__", decisions)
    if held is not None:
        latest = f"latest AS (SELECT * FROM {held})"
    elif isinstance(items, str):
        latest = latest.replace("__ITEMS__", items)
    else:
        head, rest = latest.split("  SELECT item_key, item_id", 1)
        body, tail = rest.split("\n),", 1)
        select = "  SELECT item_key, item_id" + body
        union = "\n  UNION ALL\n".join(select.replace("__ITEMS__", f"({i})") for i in items)
        latest = f"{head}{union}\n),{tail}"
    query = query.replace("__LATEST__", latest).replace("__DAYS__", days)
    query = query.replace("__PREDICTIONS__", predictions)
    # Without the comments, so that `_bound` sees only the parameters the statement uses.
    return "\n".join(line for line in query.splitlines() if not line.lstrip().startswith("--"))


def _bound(query: str, params: dict[str, object]) -> dict[str, object]:
    """The parameters `query` uses (DuckDB refuses named parameters a statement does not use;
    a whole name: `$versions` does not use `version`)."""
    used = set(re.findall(r"\$([A-Za-z_]\w*)", query))
    return {k: v for k, v in params.items() if k in used}


CHUNK_ROWS = 2_000_000
"""Stage 1 joins and groups about this many predictions per GB of DuckDB's memory limit at a
time (whole days): the grouping sets keep their input in memory, so the peak follows the chunk,
not the window. Each chunk aggregates only its own items' decisions, but finding them scans the
feature's decisions: fewer, larger chunks when the limit allows keep that scan from growing
with the square of the lake."""


def _chunk_rows(con: duckdb.DuckDBPyConnection) -> int:
    gb = memory_limit_bytes(con) / 1e9
    return max(int(CHUNK_ROWS * min(gb, 8.0)), 1)


def _day_rows(con: duckdb.DuckDBPyConnection | Engine, feature: str) -> dict[dt.date, int]:
    """Predictions per day of a feature (cheap: DuckDB counts them from the Parquet metadata)."""
    engine = as_engine(con)
    with engine.translated("reading the lake"):
        rows = engine.query(
            "SELECT date, count(*) AS n FROM predictions WHERE feature = $feature GROUP BY date",
            {"feature": feature},
        )
    return dict(zip(pd.to_datetime(rows["date"]).dt.date, rows["n"].astype(int), strict=True))


def _chunks(
    days: list[dt.date], day_rows: dict[dt.date, int], chunk_rows: int
) -> list[list[dt.date]]:
    """Consecutive runs of `days` (sorted) of about `chunk_rows` predictions each."""
    chunks: list[list[dt.date]] = []
    rows = 0
    for day in days:
        if not chunks or rows >= chunk_rows:
            chunks.append([])
            rows = 0
        chunks[-1].append(day)
        rows += day_rows.get(day, 0)
    return chunks or [[]]


def compute_aggregates(
    con: duckdb.DuckDBPyConnection | Engine,
    feature: str,
    start: dt.date,
    end: dt.date,
    *,
    bins: int = 15,
    grid_step: float = 0.01,
    days: list[dt.date] | None = None,
    seed: int = 0,
    gate_days: Collection[dt.date] | None = None,
) -> Aggregates:
    """Run the stage-1 queries on a connection that has the catalog's views, or on an engine
    (`store.engine`) that has the lake attached.

    `days` restricts the work to those prediction days within [start, end] (default: all).
    DuckDB runs them in day chunks bounded by its memory limit; Spark in one job.
    `gate_days`: the days that need the gate frames (default: all); a chunk without one of them
    skips those queries, and `gated` says which days have them.
    """
    engine = as_engine(con)
    p = _stage1_params(feature, start, end, days, bins=bins, grid_step=grid_step, seed=seed)
    day_filter = _days_filter(start, end, days)
    lat_sql = _with_latest(sql("latency"), days=day_filter)
    conf_sql = _with_latest(sql("confidence_hist"), days=day_filter)
    wanted = sorted(
        _all_days(start, end) if days is None else {d for d in days if start <= d <= end}
    )
    day_rows = _day_rows(engine, feature)
    index = (
        PRED_FIRST in _lake_columns(engine, "decisions"),
        DECIDED_BEFORE in _lake_columns(engine, "predictions"),
    )
    chunk_rows = _chunk_rows(engine.con) if isinstance(engine, DuckEngine) else sys.maxsize
    with engine.translated(f"aggregating {feature} {start}..{end}"):
        chunks = _chunks(wanted, day_rows, chunk_rows)
        parts: dict[str, list[pd.DataFrame | pa.Table]] = {name: [] for name in JOINED_FRAMES}
        gated: set[dt.date] = set()
        need = None if gate_days is None else set(gate_days)
        for c in chunks:
            gate = need is None or not need.isdisjoint(c)
            if gate:
                gated |= set(c or wanted)
            frames = _chunk_frames(engine, p, c, len(day_rows), gate=gate, index=index)
            for name, frame in frames.items():
                parts[name].append(frame)
        # (an empty part, of days without predictions, would turn the dtypes into object)
        cells = parts.pop("cells")
        got: dict[str, Any] = {
            "cells": pd.concat([f for f in cells if len(f)] or cells[:1], ignore_index=True)
        }
        got |= {n: pa.concat_tables(fs) for n, fs in parts.items()}
        lat = engine.query(lat_sql, _bound(lat_sql, p))
        conf = engine.query(conf_sql, _bound(conf_sql, p))
    split = _split_cells(got["cells"])
    return Aggregates(
        feature=feature,
        start=start,
        end=end,
        bins=bins,
        grid_step=grid_step,
        cells=split["cells"],
        customers=split["customers"],
        confusion=split["confusion"],
        latency=_tidy(lat),
        confidence=_tidy(conf),
        grid=got["grid"],
        paired=got["paired"],
        mass=got["mass"],
        classwise=got["classwise"],
        sample=got["sample"],
        gated=frozenset(gated),
    )


def _split_cells(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """cells.sql's grouping sets as the frames `cells`, `customers` and `confusion`."""
    gid = raw.pop("grouping_id")
    out = {}
    for name in ("cells", "customers"):
        keys, measures = CELL_FRAMES[name]
        out[name] = _tidy(raw[gid == GROUPING[name]][[*keys, *measures]])
    keys, _ = CELL_FRAMES["confusion"]
    confusion = raw[
        (gid == GROUPING["confusion"]) & raw["human_label"].notna() & raw["predicted_label"].notna()
    ]
    out["confusion"] = _tidy(
        confusion[[*keys, "labeled", "n"]].rename(columns={"labeled": "n", "n": "rows"})
    )
    return out


@dataclass(frozen=True)
class Delta:
    """What some decisions files changed in some days' frames (`decision_delta`): the frames of
    the days' predictions of the items they decided, with every decision (`new`) and without
    theirs (`old`); the gate frames of the days that asked for them (no class-wise bins)."""

    new: dict[str, pa.Table]
    old: dict[str, pa.Table]


def decision_delta(
    con: duckdb.DuckDBPyConnection | Engine,
    feature: str,
    days: list[dt.date],
    sources: list[str],
    *,
    bins: int = 15,
    grid_step: float = 0.01,
    seed: int = 0,
    gate: Collection[dt.date] = (),
) -> Delta:
    """What the decisions files `sources` changed in the frames of some prediction days: the
    cells frames of every day, the gate frames of the days in `gate` too.

    A day's frames computed before they landed, plus `new`, minus `old` (`merge_delta`), are its
    frames now: the cells frames, the customer grid, the confidence histogram and the paired
    tables are sums over predictions (or items) of counts that depend on an item's latest
    decision only, and only the items these files decided changed it. The sample is merged by
    key instead (`merge_sample`). The class-wise bins are not sums of this kind (each day's
    classes come from all its labeled items): days that have them are recomputed instead
    (`daycache.refresh`). The decided items, their decisions and the days' predictions of them
    are read from the lake once, for both passes and both kinds of days."""
    engine = as_engine(con)
    days = sorted(days)
    wanted = set(gate)
    gated = [d for d in days if d in wanted]
    plain = [d for d in days if d not in wanted]
    p = _stage1_params(
        feature, days[0], days[-1], days, bins=bins, grid_step=grid_step, seed=seed
    ) | {"sources": sources}
    decided = "item_key IN (SELECT item_key FROM decided_items)"
    items_sql = "SELECT DISTINCT item_key FROM decisions WHERE list_contains($sources, _source)"
    decisions_sql = (
        "SELECT feature, item_key, item_id, human_label, action, decided_at, decision_id, _source "
        f"FROM decisions WHERE feature IN ($feature, '_unmatched') AND {decided}"
    )
    preds_sql = (
        f"SELECT {', '.join(DELTA_PREDICTION_COLUMNS)} FROM predictions WHERE feature = $feature "
        f"AND date BETWEEN $start AND $end AND list_contains($days, date) AND {decided}"
    )
    out: list[dict[str, pa.Table]] = []
    with (
        engine.translated(f"updating {feature}'s days with new decisions"),
        engine.held("decided_items", items_sql, _bound(items_sql, p)),
        engine.held("decided_decisions", decisions_sql, _bound(decisions_sql, p)),
        engine.held("decided_predictions", preds_sql, _bound(preds_sql, p)),
    ):
        for mine in ("TRUE", "NOT list_contains($sources, _source)"):
            restrict = ("decided_predictions", "decided_decisions", mine)
            parts: dict[str, list[pa.Table]] = {}
            for subset, g in ((gated, True), (plain, False)):
                if not subset:
                    continue
                frames = _chunk_frames(engine, p, subset, 0, gate=g, restrict=restrict)
                split = _split_cells(frames.pop("cells"))  # type: ignore[arg-type]
                for name, f in split.items():
                    parts.setdefault(name, []).append(pa.Table.from_pandas(f, preserve_index=False))
                for name, f in frames.items() if g else ():
                    parts.setdefault(name, []).append(f)  # type: ignore[arg-type]
            out.append(
                {n: pa.concat_tables(fs, promote_options="permissive") for n, fs in parts.items()}
            )
    return Delta(out[0], out[1])


DELTA_PREDICTION_COLUMNS = (
    "feature",
    "date",
    "item_key",
    "item_id",
    "model_version",
    "segment",
    "customer_id",
    "mode",
    "predicted_label",
    "confidence",
    "status",
)
"""The predictions' columns joined.sql reads (class probabilities aside)."""


DELTA_FRAMES: dict[str, tuple[list[str], list[str], str]] = {
    **{
        name: (keys, measures, "rows" if "rows" in measures else "n")
        for name, (keys, measures) in CELL_FRAMES.items()
    },
    **{
        name: ([c for c in GATE_SCHEMAS[name].names if c not in measures], measures, "n")
        for name, measures in {
            "grid": ["labeled", "correct", "n"],
            "mass": ["n", "correct", "conf_sum"],
            "paired": ["n"],
        }.items()
    },
}
"""The frames a day's update adds by group: (keys, measures, the count that says a group exists).
A group brought to zero is dropped, as a recomputation would not have it."""


def merge_delta(
    name: str,
    frame: pa.Table,
    new: pa.Table,
    old: pa.Table,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Frame `name` (DELTA_FRAMES) of some days plus `new` minus `old` (`decision_delta`), by
    group, without the groups whose count comes to zero; `frame`'s columns and types. (Summed
    by an in-memory DuckDB: Arrow's group-by took seconds on string keys.) `con`: a
    `merging()` connection to sum on, for several frames (a new one per call costs ~10 ms)."""
    if con is None:
        with merging() as con:
            return merge_delta(name, frame, new, old, con)
    keys, measures, exists = DELTA_FRAMES[name]
    schema = frame.schema
    q = [quote_ident(c) for c in schema.names]  # the frames' own column names, not data
    sums = ", ".join(f"sum({quote_ident(m)}) AS {quote_ident(m)}" for m in measures)
    negated = ", ".join(
        f"-{quote_ident(c)} AS {quote_ident(c)}" if c in measures else quote_ident(c)
        for c in schema.names
    )
    parts = {"frame": frame, "new": new.select(schema.names).cast(schema)}
    parts["old"] = old.select(schema.names).cast(schema)
    for part, table in parts.items():
        con.register(part, table)
    try:
        summed = con.sql(f"""
SELECT {", ".join(quote_ident(k) for k in keys)}, {sums}
FROM (SELECT {", ".join(q)} FROM frame UNION ALL SELECT {", ".join(q)} FROM new
      UNION ALL SELECT {negated} FROM old)
GROUP BY ALL HAVING sum({quote_ident(exists)}) > 0
""").to_arrow_table()
    finally:
        for part in parts:
            con.unregister(part)
    return summed.select(schema.names).cast(schema)


@contextlib.contextmanager
def merging() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection for `merge_delta`, on one thread: the sums then add in the
    same order on every run (a day updated twice from the same state gives the same bits, as a
    recomputation of a small day does)."""
    con = duckdb.connect(config={"threads": 1})
    try:
        yield con
    finally:
        con.close()


def merge_sample(frame: pa.Table, new: pa.Table, cap: int | None = None) -> pa.Table:
    """A day's sample candidates (sample_days.sql) with the decided items' rows replaced by
    `new` (`decision_delta`: their rows now, at most `cap` per version), then the `cap`
    smallest keys per version and day again. Exact: labels are only added or changed, never
    taken away, and a decided item that `new` left out has `cap` decided items of smaller key
    before it, so it is past the cap either way."""
    cap = SAMPLE_PER_DAY if cap is None else cap
    schema = frame.schema
    new = new.select(schema.names).cast(schema)
    if not new.num_rows:
        return frame
    kept = frame.filter(pc.invert(pc.is_in(frame["sample_key"], value_set=new["sample_key"])))
    both = pa.concat_tables([kept, new]).to_pandas()
    both = both.sort_values(["model_version", "day", "sample_key"], kind="stable")
    top = both.groupby(["model_version", "day"], sort=False, dropna=False).head(cap)
    return pa.Table.from_pandas(top, schema=schema, preserve_index=False)


JOINED_FRAMES = {
    "cells": "cells",
    "grid": "grid",
    "paired": "paired_days",
    "mass": "mass",
    "classwise": "classwise_days",
    "sample": "sample_days",
}
"""The per-day frames read from one chunk's `joined` relation, and their queries."""

SAMPLE_PER_DAY = 25_000
"""Recalibration-sample candidates kept per version and day (sample_days.sql). The sample of a
window is its `limit` (200,000) smallest keys; it is the same as over the window's rows whenever
no day holds more than SAMPLE_PER_DAY of them (e.g. a gate window of 8 or more days of even
traffic)."""

_SHIFT = 0x9E3779B97F4A7C15 % 2**63  # 2^64 / golden ratio, mod 2^63


def sample_shift(seed: int) -> int:
    """The recalibration sample's key shift for a seed (an integer in [0, 2^63))."""
    return (int(seed) * _SHIFT) % 2**63


def _chunk_frames(
    engine: Engine,
    params: dict[str, object],
    days: list[dt.date],
    lake_days: int,
    *,
    gate: bool,
    index: tuple[bool, bool] = (False, False),
    restrict: tuple[str, str, str] | None = None,
) -> dict[str, pd.DataFrame | pa.Table]:
    """Every per-day frame of some prediction days (all of [start, end] in `params` when `days`
    is empty): their latest decisions held (chunk_latest.sql), the join of the predictions to
    them (joined.sql) streamed into cells.sql and, with `gate`, its unshown rows held for the
    gate frames' queries (without `gate` they are empty). `restrict`: a relation of some
    predictions, one of some decisions, and a condition on those decisions, that replace the
    chunk's own (`decision_delta`: some items only; no class-wise bins then)."""
    p = dict(params)
    if days:
        p.update(start=days[0], end=days[-1], days=days)
    day_filter = _days_filter(p["start"], p["end"], p["days"])  # type: ignore[arg-type]
    # Aggregate only the decisions of these days' items when they are a small share of the
    # lake (a chunk, an incremental run's few days); otherwise nearly every decision is needed,
    # and the restriction would cost more than it saves.
    n_days = len(days) if days else (p["end"] - p["start"]).days + 1  # type: ignore[operator]
    few = 2 * n_days < lake_days
    items = _chunk_items(engine, p, index) if few or index[0] else "TRUE"
    predictions, decisions = "predictions", "decisions"
    if restrict is not None:
        (predictions, decisions, items), few = restrict, True
    # A small share of the decisions found by a semi-join (an older lake, `restrict`) is held
    # once; found by their days, it is read twice, each read skipping the files of other days:
    # cheaper than holding them (the 10M lake's chunks, DuckDB's profile on one thread: 0.23-0.68
    # s of CPU for a chunk's latest decisions instead of 0.39-1.99 s).
    few = few and isinstance(items, str)
    probs = gate and restrict is None and _has_class_probabilities(engine, p, day_filter)

    joined = _with_latest(
        sql("joined"), days=day_filter, predictions=predictions, held="chunk_latest"
    ).replace("__CLASSPROB__", "class_probabilities" if probs else "CAST(NULL AS VARCHAR)")

    def cells(join: str) -> pd.DataFrame:  # the join streams into the grouping sets
        query = _with_latest(sql("cells")).replace(
            "WITH flags AS (", f"WITH joined AS (\n{join}\n),\nflags AS (", 1
        )
        return engine.query(query, _bound(query, p))

    # The chunk's latest decisions are held, then joined to its predictions: streamed into the
    # cells and, with `gate`, once more for the unshown rows the gate frames read (shadow.sql),
    # held while they read them (a second join costs less than holding every row of one).
    latest = _with_latest(
        sql("chunk_latest"), items=items, days=day_filter, few=few, decisions=decisions
    )
    with engine.held("chunk_latest", latest, _bound(latest, p)):
        out: dict[str, pd.DataFrame | pa.Table] = {"cells": cells(joined)}
        if not gate:
            return out | {name: empty_gate(name) for name in JOINED_FRAMES if name != "cells"}
        shadow = f"WITH joined AS (\n{joined}\n)\n{_with_latest(sql('shadow'))}"
        with engine.held("joined", shadow, _bound(shadow, p)):
            for name, query_name in JOINED_FRAMES.items():
                if name == "cells":
                    continue  # streamed above
                query = _with_latest(sql(query_name))
                if name == "classwise" and not probs:
                    out[name] = empty_gate("classwise")
                elif name == "paired":
                    versions = sorted(set(out["cells"]["model_version"].dropna()))
                    out[name] = _paired_pairs(engine, query, {**p, "versions": versions}, versions)
                elif name == "sample":
                    out[name] = _sample(engine, query, p)
                else:
                    out[name] = _gate_table(engine.arrow(query, _bound(query, p)), name)
    return out


MAX_PAIRED_VERSIONS = 62
"""paired_days.sql marks an item's versions as bits of a 64-bit integer."""


def _paired_pairs(
    engine: Engine, query: str, params: dict[str, object], versions: list[str]
) -> pa.Table:
    """paired_days.sql's bit masks expanded into (day, version_a, version_b, hit_a, hit_b, n)."""
    if len(versions) < 2:
        return empty_gate("paired")
    if len(versions) > MAX_PAIRED_VERSIONS:
        raise StoreError(
            f"{len(versions)} model versions in a few days of one feature: paired comparisons "
            f"handle at most {MAX_PAIRED_VERSIONS}"
        )
    masks = engine.query(query, _bound(query, params))
    rows: dict[tuple[object, str, str, bool, bool], int] = {}
    for day, predicted, hits, n in masks.itertuples(index=False):
        bits = [i for i in range(len(versions)) if int(predicted) >> i & 1]
        for a, i in enumerate(bits):
            for j in bits[a + 1 :]:
                key = (
                    day,
                    versions[i],
                    versions[j],
                    bool(int(hits) >> i & 1),
                    bool(int(hits) >> j & 1),
                )
                rows[key] = rows.get(key, 0) + int(n)
    names = GATE_SCHEMAS["paired"].names
    table = pa.Table.from_pylist(
        [
            dict(zip(names, (pd.Timestamp(k[0]).date(), *k[1:], n), strict=True))
            for k, n in rows.items()
        ],
        schema=GATE_SCHEMAS["paired"],
    )
    return table


SAMPLE_MARGIN = 1.25
"""sample_days.sql sorts only the keys below a cut that keeps about this many times the cap of
each version and day (keys are uniform: with a cap of 25,000 the rows kept are binomial with mean
31,250 and a standard deviation under 180, so falling short of the cap is a 35-sigma event); a
group the cut left short is taken again whole."""


def _sample(engine: Engine, query: str, params: dict[str, object]) -> pa.Table:
    table = engine.arrow(query, _bound(query, {**params, "margin": SAMPLE_MARGIN}))
    cap = int(params["cap"])  # type: ignore[call-overload]
    n, kept = (table[c].to_numpy().astype(np.int64) for c in ("n", "kept"))
    if (kept < np.minimum(n, cap)).any():
        table = engine.arrow(query, _bound(query, {**params, "margin": 0.0}))
    return _gate_table(table, "sample")


def days_with_class_probabilities(
    con: duckdb.DuckDBPyConnection | Engine, feature: str, days: list[dt.date]
) -> set[dt.date]:
    """The days among `days` with an unshown prediction that carries class_probabilities (their
    class-wise bins cannot be updated by sums: `decision_delta`)."""
    engine = as_engine(con)
    query = (
        "SELECT DISTINCT date FROM predictions WHERE feature = $feature "
        "AND date BETWEEN $start AND $end AND list_contains($days, date) AND mode = 'shadow' "
        "AND class_probabilities IS NOT NULL"
    )
    p = {**_params(feature, min(days), max(days)), "days": days}
    with engine.translated(f"reading {feature}'s predictions"):
        rows = engine.query(query, p)
    return set(pd.to_datetime(rows["date"]).dt.date)


def _has_class_probabilities(engine: Engine, params: dict[str, object], day_filter: str) -> bool:
    """Whether any unshown prediction of these days carries class_probabilities (the class-wise
    bins are computed only then)."""
    query = (
        "SELECT count(*) AS n FROM (SELECT 1 FROM predictions WHERE feature = $feature "
        f"AND date BETWEEN $start AND $end AND {day_filter} AND mode = 'shadow' "
        "AND class_probabilities IS NOT NULL LIMIT 1)"
    )
    return bool(engine.query(query, _bound(query, params))["n"].iloc[0])


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "day" in frame:
        frame["day"] = pd.to_datetime(frame["day"]).dt.date
    for c in frame.columns:
        if c in INT_MEASURES:
            frame[c] = frame[c].astype("int64")
    return frame


def feedback_counts(
    con: duckdb.DuckDBPyConnection, feature: str, start: dt.date, end: dt.date
) -> dict[str, float | int | None]:
    """Positive-feedback count, total ratings and NPS (promoters - detractors, in %)."""
    with translated("reading feedback"):
        rows = con.execute(
            """SELECT count(*) FILTER (WHERE rating = 'positive'), count(*),
                      count(nps_score), count(*) FILTER (WHERE nps_score >= 9),
                      count(*) FILTER (WHERE nps_score <= 6)
               FROM feedback WHERE feature = $feature AND date BETWEEN $start AND $end""",
            _params(feature, start, end),
        ).fetchall()
    pos, total, n_nps, promoters, detractors = rows[0]
    nps = None if not n_nps else 100.0 * (promoters - detractors) / n_nps
    return {"positive": int(pos), "total": int(total), "nps": nps, "nps_n": int(n_nps)}


def incidents_of(con: duckdb.DuckDBPyConnection, feature: str) -> pd.DataFrame:
    """All incidents of a feature (a small table)."""
    with translated("reading incidents"):
        return con.execute(
            "SELECT incident_id, severity, kind, title, opened_at, resolved_at FROM incidents "
            "WHERE feature = $feature ORDER BY opened_at",
            {"feature": feature},
        ).df()


def data_window(con: duckdb.DuckDBPyConnection, feature: str) -> tuple[dt.date, dt.date] | None:
    """First and last day with predictions of a feature, or None when it has none."""
    with translated("reading the lake"):
        lo, hi = con.execute(
            "SELECT min(date), max(date) FROM predictions WHERE feature = $feature",
            {"feature": feature},
        ).fetchall()[0]
    return None if lo is None else (lo, hi)


def features(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The features that have predictions in the lake, sorted."""
    with translated("reading the lake"):
        rows = con.execute("SELECT DISTINCT feature FROM predictions ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def quarantine_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    with translated("reading the quarantine"):
        rows = con.execute(
            "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason"
        ).fetchall()
    return {r: int(n) for r, n in rows}


def slice_counts(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    version: str,
    column: str,
) -> pd.DataFrame:
    """(value, k correct, n labeled) per value of an extra column, for one version's unshown
    labels. The column name comes from the user's config: it is bound as a JSON path."""
    from trustramp.contract import PREDICTIONS
    from trustramp.store.duck import quote_ident

    query = _with_latest(
        sql("slice_counts"),
        items=_items_predicted("model_version = $version AND mode = 'shadow'"),
    )
    if column in PREDICTIONS.names:  # a contract column: its identifier is known, not user text
        query = query.replace(
            "json_extract_string(p._extra, $path)", f"CAST(p.{quote_ident(column)} AS VARCHAR)"
        )
    path = "$." + '"' + column.replace("\\", "\\\\").replace('"', '\\"') + '"'
    params = {**_params(feature, start, end), "version": version}
    if "$path" in query:
        params["path"] = path
    with translated(f"slicing by {column!r}"):
        return con.execute(query, params).df()


def ingest_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows landed per kind, from the ingest log."""
    with translated("reading the ingest log"):
        rows = con.execute(
            "SELECT kind, sum(rows_new) FROM ingest_log GROUP BY kind ORDER BY kind"
        ).fetchall()
    return {k: int(n or 0) for k, n in rows}


def feedback_comments(
    con: duckdb.DuckDBPyConnection, feature: str, start: dt.date, end: dt.date, *, limit: int = 8
) -> list[dict[str, object]]:
    """The latest few feedback comments of a feature (for the report; shown escaped)."""
    with translated("reading feedback comments"):
        frame = con.execute(
            "SELECT submitted_at, segment, customer_id, rating, comment FROM feedback "
            "WHERE feature = $feature AND date BETWEEN $start AND $end AND comment IS NOT NULL "
            "ORDER BY submitted_at DESC, feedback_id LIMIT $limit",
            {**_params(feature, start, end), "limit": limit},
        ).df()
    return frame.to_dict("records")


# -- the gate window's statistics, summed from the day frames (no row-level pass) ---------------


def _gate_rows(
    table: pa.Table,
    start: dt.date,
    end: dt.date,
    version: str | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """The rows of a gate frame in [start, end] (and of one model version), only `columns`."""
    day = table["day"]
    mask = pc.and_(
        pc.greater_equal(day, pa.scalar(start, pa.date32())),
        pc.less_equal(day, pa.scalar(end, pa.date32())),
    )
    if version is not None:
        mask = pc.and_(mask, pc.equal(table["model_version"], pa.scalar(version, pa.string())))
    out = table.filter(mask)
    return out if columns is None else out.select(columns)


def paired_table(
    aggs: Aggregates, start: dt.date, end: dt.date, candidate: str, previous: str
) -> dict[tuple[bool, bool], int]:
    """(candidate correct, previous correct) -> items, on unshown labeled items both versions
    predicted on the same day of [start, end]."""
    f = _gate_rows(aggs.paired, start, end).to_pandas()
    if candidate < previous:
        f = f[(f["version_a"] == candidate) & (f["version_b"] == previous)]
        cand, prev = "hit_a", "hit_b"
    else:
        f = f[(f["version_a"] == previous) & (f["version_b"] == candidate)]
        cand, prev = "hit_b", "hit_a"
    g = f.groupby([cand, prev])["n"].sum()
    return {(bool(c), bool(p)): int(n) for (c, p), n in g.items() if n}


def customer_grid(aggs: Aggregates, start: dt.date, end: dt.date, version: str) -> pd.DataFrame:
    """customer_id, grid_bin, labeled, correct, n: one version's per-customer threshold counts
    (items without a customer id kept, under a missing customer_id, last)."""
    cols = ["labeled", "correct", "n"]
    rows = _gate_rows(aggs.grid, start, end, version, ["customer_id", "grid_bin", *cols])
    # on this thread: a few 10k rows, where Arrow's thread pool costs more than the sums (and
    # far more when other processes keep the cores busy); sorted below either way
    summed = rows.group_by(["customer_id", "grid_bin"], use_threads=False).aggregate(
        [(c, "sum") for c in cols]
    )
    summed = summed.rename_columns(
        [{f"{c}_sum": c for c in cols}.get(c, c) for c in summed.column_names]
    )
    summed = summed.sort_by([("customer_id", "ascending"), ("grid_bin", "ascending")])
    frame = summed.select(["customer_id", "grid_bin", *cols]).to_pandas()
    return frame.astype({"grid_bin": "int64"})


def equal_mass_bins(
    aggs: Aggregates, start: dt.date, end: dt.date, version: str, bins: int
) -> pd.DataFrame:
    """Equal-mass calibration groups (grp, n, correct, conf_sum) of one version's labeled unshown
    predictions, cut from the summed 1e-4 histogram.

    Group sizes are exact (as numpy.array_split of the rows sorted by confidence: the first
    groups one larger); a group boundary that falls inside a histogram cell takes that cell's
    correct count and confidence sum in proportion to the rows it takes. So the bins equal a
    row-level sort's whenever no boundary cell mixes correct and wrong predictions of different
    confidences (ties at a boundary are split arbitrarily by any sort as well).
    """
    f = _gate_rows(aggs.mass, start, end, version, ["cell", "n", "correct", "conf_sum"])
    h = f.to_pandas().groupby("cell", sort=True)[["n", "correct", "conf_sum"]].sum()
    total = int(h["n"].sum())
    empty = pd.DataFrame({"grp": [], "n": [], "correct": [], "conf_sum": []})
    if total == 0 or bins < 1:
        return empty.astype({"grp": "int64", "n": "int64"})
    q, r = divmod(total, bins)
    sizes = np.array([q + 1] * r + [q] * (bins - r), dtype=np.int64)
    sizes = sizes[sizes > 0]
    edges = np.concatenate([[0], np.cumsum(sizes)])
    n = h["n"].to_numpy(np.int64)
    cum_n = np.concatenate([[0], np.cumsum(n)])

    def at(values: np.ndarray) -> np.ndarray:
        """The cumulative sum of `values` up to rank x, interpolated inside a cell."""
        cum = np.concatenate([[0.0], np.cumsum(values, dtype=float)])
        i = np.clip(np.searchsorted(cum_n, edges, side="right") - 1, 0, len(n) - 1)
        inside = np.where(n[i] > 0, (edges - cum_n[i]) / np.maximum(n[i], 1), 0.0)
        return cum[i] + inside * values[i]

    correct = np.diff(at(h["correct"].to_numpy(float)))
    conf = np.diff(at(h["conf_sum"].to_numpy(float)))
    return pd.DataFrame(
        {"grp": np.arange(len(sizes)), "n": sizes, "correct": correct, "conf_sum": conf}
    )


def classwise_bins(aggs: Aggregates, start: dt.date, end: dt.date, version: str) -> pd.DataFrame:
    """Per (class, bin): n, hits, prob_sum of one version's labeled unshown predictions with
    class_probabilities (empty when none are logged). A class absent from some day's objects
    is probability 0 for that day's items: they are added to its bin 0 here."""
    f = _gate_rows(aggs.classwise, start, end, version).to_pandas()
    if not len(f):
        return pd.DataFrame({"class": [], "bin": [], "n": [], "hits": [], "prob_sum": []})
    labels = f[f["bin"] < 0].groupby("class")["n"].sum()
    binned = f[f["bin"] >= 0].groupby(["class", "bin"], sort=True)[["n", "hits", "prob_sum"]].sum()
    binned = binned.reset_index()
    items = int(labels.sum())
    per_class = binned.groupby("class")[["n", "hits"]].sum()
    missing = pd.DataFrame(
        {
            "class": per_class.index,
            "bin": 0,
            "n": items - per_class["n"].to_numpy(),
            "hits": labels.reindex(per_class.index, fill_value=0).to_numpy() - per_class["hits"],
            "prob_sum": 0.0,
        }
    )
    missing = missing[missing["n"] > 0]
    out = pd.concat([binned, missing], ignore_index=True)
    out = out.groupby(["class", "bin"], sort=True)[["n", "hits", "prob_sum"]].sum().reset_index()
    return out.astype({"n": "int64", "hits": "int64"})


def labeled_sample(
    aggs: Aggregates, start: dt.date, end: dt.date, version: str, *, limit: int = 200_000
) -> pd.DataFrame:
    """At most `limit` labeled unshown predictions (confidence, correct, sample_key) of one
    version: those of smallest md5 key (sample_days.sql; at most SAMPLE_PER_DAY per day)."""
    rows = _gate_rows(aggs.sample, start, end, version, ["confidence", "correct", "sample_key"])
    rows = rows.sort_by("sample_key").slice(0, limit)
    return rows.to_pandas()
