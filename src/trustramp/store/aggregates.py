"""Stage 1 of the metrics engine: DuckDB reduces the lake to small tables of sufficient statistics.

Nothing here returns raw rows (except the feature's incidents, a handful): every frame has one row
per group, so its size depends on the number of days, versions, segments, customers and bins,
never on the number of predictions.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from dataclasses import dataclass

import duckdb
import pandas as pd

from trustramp.store.duck import memory_limit_bytes, sql, translated
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


def _params(feature: str, start: dt.date, end: dt.date) -> dict[str, object]:
    return {"feature": feature, "start": start, "end": end}


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


def _with_latest(query: str, *, items: str = "TRUE", days: str = "TRUE", few: bool = False) -> str:
    """`query` with latest_decisions.sql spliced in (`__LATEST__`), restricted to `items` (a
    condition on decisions.item_key), and its `__DAYS__` filter. `few`: `items` keeps a small
    share of the decisions (a chunk's), which are then held once instead of read twice."""
    hold = "MATERIALIZED" if few else "NOT MATERIALIZED"
    latest = sql("latest_decisions").replace("__ITEMS__", items).replace("__DEC__", hold)
    query = query.replace("__LATEST__", latest).replace("__DAYS__", days)
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
) -> Aggregates:
    """Run the stage-1 queries on a connection that has the catalog's views, or on an engine
    (`store.engine`) that has the lake attached.

    `days` restricts the work to those prediction days within [start, end] (default: all).
    DuckDB runs them in day chunks bounded by its memory limit; Spark in one job.
    """
    engine = as_engine(con)
    p = {
        **_params(feature, start, end),
        "days": days,
        "bins": bins,
        "grid_scale": round(grid_step * 1e6),
        "n_grid": round(1 / grid_step),
        "eps": LOG_LOSS_EPS,
        "n_log": LATENCY_LOG_BINS,
        "max_ms": LATENCY_MAX_MS,
    }
    day_filter = _days_filter(start, end, days)
    lat_sql = _with_latest(sql("latency"), days=day_filter)
    conf_sql = _with_latest(sql("confidence_hist"), days=day_filter)
    wanted = sorted(
        _all_days(start, end) if days is None else {d for d in days if start <= d <= end}
    )
    day_rows = _day_rows(engine, feature)
    chunk_rows = _chunk_rows(engine.con) if isinstance(engine, DuckEngine) else sys.maxsize
    with engine.translated(f"aggregating {feature} {start}..{end}"):
        chunks = _chunks(wanted, day_rows, chunk_rows)
        parts = [_grouping_sets(engine, p, c, len(day_rows)) for c in chunks]
        # (an empty part, of days without predictions, would turn the dtypes into object)
        raw = pd.concat([f for f in parts if len(f)] or parts[:1], ignore_index=True)
        lat = engine.query(lat_sql, _bound(lat_sql, p))
        conf = engine.query(conf_sql, _bound(conf_sql, p))
    gid = raw.pop("grouping_id")
    cells = raw[gid == GROUPING["cells"]][
        ["model_version", "segment", "mode", "day", "ece_bin", "grid_bin", *CELL_MEASURES]
    ]
    customers = raw[gid == GROUPING["customers"]][
        ["model_version", "customer_id", "segment", "shown", "day", *CELL_MEASURES]
    ]
    confusion = raw[
        (gid == GROUPING["confusion"]) & raw["human_label"].notna() & raw["predicted_label"].notna()
    ][
        ["model_version", "segment", "shown", "day", "predicted_label", "human_label", "labeled"]
    ].rename(columns={"labeled": "n"})
    return Aggregates(
        feature=feature,
        start=start,
        end=end,
        bins=bins,
        grid_step=grid_step,
        cells=_tidy(cells),
        customers=_tidy(customers),
        confusion=_tidy(confusion),
        latency=_tidy(lat),
        confidence=_tidy(conf),
    )


def _grouping_sets(
    engine: Engine, params: dict[str, object], days: list[dt.date], lake_days: int
) -> pd.DataFrame:
    """cells.sql on some prediction days (all of [start, end] in `params` when `days` is empty)."""
    p = dict(params)
    if days:
        p.update(start=days[0], end=days[-1], days=days)
    day_filter = _days_filter(p["start"], p["end"], p["days"])  # type: ignore[arg-type]
    # Aggregate only the decisions of these days' items when they are a small share of the
    # lake (a chunk, an incremental run's few days); otherwise nearly every decision is needed,
    # and the restriction would cost more than it saves.
    n_days = len(days) if days else (p["end"] - p["start"]).days + 1  # type: ignore[operator]
    items = _items_predicted("__DAYS__") if 2 * n_days < lake_days else "TRUE"
    query = _with_latest(sql("cells"), items=items, days=day_filter, few=items != "TRUE")
    return engine.query(query, _bound(query, p))


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "day" in frame:
        frame["day"] = pd.to_datetime(frame["day"]).dt.date
    for c in frame.columns:
        if c in CELL_MEASURES and c not in ("conf_sum", "conf_sq_sum", "conf_hit_sum", "nll_sum"):
            frame[c] = frame[c].astype("int64")
    return frame


GATE_ITEMS = _items_predicted("list_contains($versions, model_version) AND mode = 'shadow'")


def prepare_gate_rows(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    versions: list[str],
) -> None:
    """Join the gate window's unshown predictions of `versions` to their latest decisions once,
    into the connection's temporary table `gate_rows` (gate_rows.sql), unless it already holds
    them; the gate-window queries below all read it instead of joining the lake again."""
    wanted = sorted(set(versions))
    window = [feature, start.isoformat(), end.isoformat()]
    try:
        have = con.execute("SELECT win, versions FROM gate_rows_key").fetchone()
    except duckdb.CatalogException:
        have = None
    if have is not None and have[0] == window and set(wanted) <= set(have[1]):
        return
    query = _with_latest(sql("gate_rows"), items=GATE_ITEMS)
    params = {**_params(feature, start, end), "versions": wanted}
    with translated("joining the gate window's predictions to their decisions"):
        con.execute("DROP TABLE IF EXISTS gate_rows_key")
        con.execute(f"CREATE OR REPLACE TEMPORARY TABLE gate_rows AS {query}", params)
        con.execute(
            "CREATE TEMPORARY TABLE gate_rows_key AS SELECT $win AS win, $versions AS versions",
            {"win": window, "versions": wanted},
        )


def paired_table(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    candidate: str,
    previous: str,
) -> dict[tuple[bool, bool], int]:
    """(candidate correct, previous correct) -> items, on unshown labeled items both predicted."""
    prepare_gate_rows(con, feature, start, end, [candidate, previous])
    with translated("comparing model versions"):
        rows = con.execute(sql("paired"), {"candidate": candidate, "previous": previous}).fetchall()
    return {(bool(c), bool(p)): int(n) for c, p, n in rows}


def equal_mass_bins(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    version: str,
    bins: int,
) -> pd.DataFrame:
    """Equal-mass calibration groups (n, correct, conf_sum) for one version's unshown labels."""
    prepare_gate_rows(con, feature, start, end, [version])
    with translated("equal-mass calibration bins"):
        return con.execute(sql("equal_mass"), {"version": version, "bins": bins}).df()


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
        rows = con.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason").fetchall()
    return {r: int(n) for r, n in rows}


def labeled_sample(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    version: str,
    *,
    limit: int = 200_000,
    seed: int = 0,
) -> pd.DataFrame:
    """At most `limit` labeled unshown rows (confidence, correct, item_key), chosen by item hash."""
    prepare_gate_rows(con, feature, start, end, [version])
    with translated("sampling labeled predictions"):
        return con.execute(
            sql("labeled_sample"), {"version": version, "limit": limit, "seed": seed}
        ).df()


def classwise_bins(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    version: str,
    bins: int,
) -> pd.DataFrame:
    """Per (class, bin): n, hits, prob_sum from class_probabilities (empty when none are logged)."""
    prepare_gate_rows(con, feature, start, end, [version])
    with translated("class-wise calibration bins"):
        return con.execute(sql("classwise"), {"version": version, "bins": bins}).df()


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


def customer_grid(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    version: str,
    *,
    grid_step: float = 0.01,
) -> pd.DataFrame:
    """customer_id, grid_bin, labeled, correct, n: per-customer threshold counts."""
    prepare_gate_rows(con, feature, start, end, [version])
    with translated("per-customer threshold counts"):
        return con.execute(
            sql("customer_grid"),
            {
                "version": version,
                "grid_scale": round(grid_step * 1e6),
                "n_grid": round(1 / grid_step),
            },
        ).df()


def ingest_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows landed per kind, from the ingest log."""
    with translated("reading the ingest log"):
        rows = con.execute("SELECT kind, sum(rows_new) FROM ingest_log GROUP BY kind ORDER BY kind").fetchall()
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
