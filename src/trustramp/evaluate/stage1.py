"""Stage 1, read from the store: the day statistics an evaluation works on, and the run's records.

Opens the home, refuses early when the feature has no predictions in the window, refreshes the
day cache (the stale days, on the configured stage-1 engine, under the writer lock) and reads the
window's day statistics (`store.aggregates.Aggregates`); then reads what the store holds beside
them (`RunRecords`: ingest commits, slice counts, feedback, incidents, quarantine). Everything
else in `evaluate/` works on those frames. The store is imported inside the functions (DuckDB and
the engines load when a run needs them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from trustramp.config import RolloutConfig
from trustramp.errors import NoDataError
from trustramp.evaluate.windows import GatePopulation, Windows, checked_windows
from trustramp.progress import stage

if TYPE_CHECKING:
    import duckdb

    from trustramp.store.aggregates import Aggregates
    from trustramp.store.daycache import Refresh
    from trustramp.store.engine import Engine, EngineSpec
    from trustramp.store.lake import Home


def open_home(
    home: str | Path, *, memory_limit: str | None = None
) -> tuple[Home, duckdb.DuckDBPyConnection]:
    """The home folder (created if missing) and a reader on its catalog; a home that cannot
    be created or written is a StoreError naming it."""
    from trustramp.store.lake import Home, reader
    from trustramp.store.outputs import writing

    with writing("the home folder (lake and catalog)", Path(home)):
        h = Home.at(home)
        return h, reader(h, memory_limit=memory_limit)


def check_data(
    con: duckdb.DuckDBPyConnection, home: Home, cfg: RolloutConfig, win: Windows
) -> None:
    """Refuse early (NoDataError, exit 6) when the feature has no predictions in the window."""
    from trustramp.store import aggregates as agg

    span = agg.data_window(con, cfg.feature)
    if span is None:
        present = agg.features(con)
        if present:
            raise NoDataError(
                f"no predictions for feature {cfg.feature!r} in {home.root}; the lake has "
                f"{', '.join(repr(f) for f in present[:10])}"
                + (f" and {len(present) - 10} more" if len(present) > 10 else "")
                + ": pass --feature NAME (or a --config whose feature is one of them)"
            )
        raise NoDataError(
            f"no predictions for feature {cfg.feature!r} in {home.root}; "
            "ingest some first (trustramp ingest PATH)"
        )
    first, last = span
    if last < win.monitor_start or first > win.as_of:
        raise NoDataError(
            f"no predictions for {cfg.feature} in the window {win.monitor_start}..{win.as_of}; "
            f"the data covers {first}..{last}: pass --as-of {last}"
        )


def load_day_statistics(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    cfg: RolloutConfig,
    as_of: dt.date,
    *,
    wait_seconds: float,
    full_recompute: bool = False,
    engine: EngineSpec | None = None,
) -> tuple[Windows, Aggregates, Refresh]:
    """(windows, aggregates, refresh) for an evaluation: refresh the day cache (on `engine`'s
    stage-1 engine; default: TRUSTRAMP_ENGINE, else DuckDB), then read it."""
    from trustramp.store import daycache
    from trustramp.store.engine import EngineSpec
    from trustramp.store.lock import writer_lock

    win = checked_windows(cfg, as_of)
    check_data(con, home, cfg, win)
    key = daycache.Key.of(cfg)
    # The day cache is written, then read, under the lock: another writer (an ingest, another
    # evaluation) cannot change a day between the two, so every day comes from the lake state
    # that `con`'s views show (refresh moved them to it).
    spec = engine if engine is not None else EngineSpec.of()
    gate = (win.gate_start, win.gate_end)  # the days that need the gate frames
    stale = daycache.stale_days(
        home, cfg.feature, win.first, as_of, key, gate=gate, full=full_recompute
    )
    spec = spec.for_work(bool(stale))
    # Spark starts (seconds) before the lock is taken, not while holding it.
    with stage("aggregates", days=(as_of - win.first).days + 1) as line, spec.started() as eng:
        with writer_lock(home.root, wait_seconds=wait_seconds):
            refreshed = daycache.refresh(
                con,
                home,
                cfg.feature,
                win.first,
                as_of,
                key,
                gate=gate,
                full=full_recompute,
                engine=eng,
            )
            aggs = daycache.load(home, cfg.feature, win.first, as_of, key, gate=gate)
        line.update(
            recomputed=len(refreshed.recomputed),
            updated=len(refreshed.updated),
            cells=len(aggs.cells),
        )
    return win, aggs, refreshed


def any_stale_days(home: Home, cfgs: list[RolloutConfig], day: dt.date) -> bool:
    """Whether any of the features' evaluation windows has a day the day cache lacks."""
    from trustramp.store import daycache

    return any(
        daycache.stale_days(
            home,
            cfg.feature,
            (win := checked_windows(cfg, day)).first,
            day,
            daycache.Key.of(cfg),
            gate=(win.gate_start, win.gate_end),
        )
        for cfg in cfgs
    )


def refresh_feature(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    cfg: RolloutConfig,
    day: dt.date,
    *,
    engine: Engine,
    engine_name: str,
    wait_seconds: float,
) -> Refresh | None:
    """Recompute the stale days of one feature's evaluation window on a started `engine`
    (None when the feature has no predictions)."""
    from trustramp.store import aggregates as agg
    from trustramp.store import daycache
    from trustramp.store.lock import writer_lock

    if agg.data_window(con, cfg.feature) is None:
        return None
    win = checked_windows(cfg, day)
    with stage("aggregates", feature=cfg.feature, engine=engine_name) as line:
        with writer_lock(home.root, wait_seconds=wait_seconds):
            refreshed = daycache.refresh(
                con,
                home,
                cfg.feature,
                win.first,
                day,
                daycache.Key.of(cfg),
                gate=(win.gate_start, win.gate_end),
                engine=engine,
            )
        line.update(recomputed=len(refreshed.recomputed), updated=len(refreshed.updated))
    return refreshed


@dataclass(frozen=True)
class RunRecords:
    """What the store holds for a run beside the day statistics."""

    lake_commits: int
    """Ingest commits the run's snapshot holds: how fresh it is (a stale run never replaces a
    fresher one's folder)."""
    slices: dict[str, pd.DataFrame]
    """Per configured slice column (edge cases and audited slices): k, n per value of the
    certified population (empty without a version)."""
    feedback: dict[str, float | int | None]
    incidents: pd.DataFrame
    comments: list[dict]
    ingested: dict[str, int]
    quarantine: dict[str, int]
    """Rows quarantined, by reason."""


def read_run_records(
    con: duckdb.DuckDBPyConnection, cfg: RolloutConfig, win: Windows, pop: GatePopulation
) -> RunRecords:
    """The run's records from the catalog: ingest commits, slice counts, the monitoring
    window's feedback and comments, incidents, ingested and quarantined rows."""
    from trustramp.store import aggregates as agg

    # How fresh the snapshot this run reads is (the day-cache refresh moved the views to the
    # commits current under the lock): a stale run never replaces a fresher one's folder.
    (lake_commits,) = con.sql("SELECT count(DISTINCT source) FROM ingest_log").fetchall()[0]
    slices: dict[str, pd.DataFrame] = {}
    if pop.version:
        st = cfg.statistics
        for column in {e.column for e in st.edge_case_slices} | set(st.slices):
            slices[column] = agg.slice_counts(
                con, cfg.feature, win.gate_start, win.gate_end, pop.version, column
            )
    return RunRecords(
        lake_commits=lake_commits,
        slices=slices,
        feedback=agg.feedback_counts(con, cfg.feature, win.monitor_start, win.as_of),
        incidents=agg.incidents_of(con, cfg.feature),
        comments=agg.feedback_comments(con, cfg.feature, win.monitor_start, win.as_of),
        ingested=agg.ingest_counts(con),
        quarantine=agg.quarantine_counts(con),
    )
