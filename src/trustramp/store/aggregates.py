"""Stage 1 of the metrics engine: DuckDB reduces the lake to small tables of sufficient statistics.

Nothing here returns raw rows (except the feature's incidents, a handful): every frame has one row
per group, so its size depends on the number of days, versions, segments, customers and bins,
never on the number of predictions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd

from trustramp.store.duck import sql, translated

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


def compute_aggregates(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    *,
    bins: int = 15,
    grid_step: float = 0.01,
    days: list[dt.date] | None = None,
) -> Aggregates:
    """Run the stage-1 queries on a connection that has the catalog's views.

    `days` restricts the work to those prediction days within [start, end] (default: all).
    """
    grid_scale = round(grid_step * 1e6)
    n_grid = round(1 / grid_step)
    if days is None:
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    p = {**_params(feature, start, end), "days": days}
    with translated(f"aggregating {feature} {start}..{end}"):
        raw = con.execute(
            sql("cells"),
            {**p, "bins": bins, "grid_scale": grid_scale, "n_grid": n_grid, "eps": LOG_LOSS_EPS},
        ).df()
        lat = con.execute(
            sql("latency"), {**p, "n_log": LATENCY_LOG_BINS, "max_ms": LATENCY_MAX_MS}
        ).df()
        conf = con.execute(sql("confidence_hist"), {**p, "bins": bins}).df()
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


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "day" in frame:
        frame["day"] = pd.to_datetime(frame["day"]).dt.date
    for c in frame.columns:
        if c in CELL_MEASURES and c not in ("conf_sum", "conf_sq_sum", "conf_hit_sum", "nll_sum"):
            frame[c] = frame[c].astype("int64")
    return frame


def paired_table(
    con: duckdb.DuckDBPyConnection,
    feature: str,
    start: dt.date,
    end: dt.date,
    candidate: str,
    previous: str,
) -> dict[tuple[bool, bool], int]:
    """(candidate correct, previous correct) -> items, on unshown labeled items both predicted."""
    with translated("comparing model versions"):
        rows = con.execute(
            sql("paired"),
            {**_params(feature, start, end), "candidate": candidate, "previous": previous},
        ).fetchall()
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
    with translated("equal-mass calibration bins"):
        return con.execute(
            sql("equal_mass"), {**_params(feature, start, end), "version": version, "bins": bins}
        ).df()


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


def quarantine_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    with translated("reading the quarantine"):
        rows = con.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall()
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
    with translated("sampling labeled predictions"):
        return con.execute(
            sql("labeled_sample"),
            {**_params(feature, start, end), "version": version, "limit": limit, "seed": seed},
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
    with translated("class-wise calibration bins"):
        return con.execute(
            sql("classwise"), {**_params(feature, start, end), "version": version, "bins": bins}
        ).df()


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

    query = sql("slice_counts")
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
    with translated("per-customer threshold counts"):
        return con.execute(
            sql("customer_grid"),
            {
                **_params(feature, start, end),
                "version": version,
                "grid_scale": round(grid_step * 1e6),
                "n_grid": round(1 / grid_step),
            },
        ).df()


def ingest_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows landed per kind, from the ingest log."""
    with translated("reading the ingest log"):
        rows = con.execute("SELECT kind, sum(rows_new) FROM ingest_log GROUP BY kind").fetchall()
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
