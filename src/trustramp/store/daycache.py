"""Per-day cache of the stage-1 aggregates: a nightly run recomputes only the days that changed.

A day's aggregates depend on that day's predictions and on the decisions for their items (which
may arrive days later). Ingest therefore marks days dirty when it commits a file:
- a predictions file dirties the (feature, date) partitions it wrote;
- a decisions file dirties the prediction days of the items it decided.
The marks (`HOME/state/dirty/<feature>/<date>__<source>`) are written before the file's commit
record, so a committed file's days are always marked. `refresh` recomputes the days of a range
that are dirty or were never computed, in one SQL pass, writes each day's frames with atomic
renames, and only then removes the marks it saw; a file committed meanwhile leaves its mark.

Layout: `HOME/aggregates/<feature>/v3-b<bins>-g<grid>[-s<seed>]/<date>/<frame>.arrow` (v2: the
gate window's statistics are day frames too; v3: Arrow IPC files, LZ4-compressed, instead of
Parquet — an evaluation reads ten small files per day, and Parquet's per-file cost was most of a
cached run's reading; a cache of another layout is not read, its days are recomputed).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from trustramp.store.aggregates import (
    GATE_FRAMES,
    Aggregates,
    compute_aggregates,
    empty_frame,
    empty_gate,
)
from trustramp.store.engine import Engine
from trustramp.store.lake import (
    Home,
    attach_views,
    dirty_dir,
    mark_dirty,
    replace_dir,
    sweep_siblings,
)

if TYPE_CHECKING:
    from trustramp.config import RolloutConfig

__all__ = ["Key", "Refresh", "load", "mark_dirty", "refresh", "stale_days"]

FRAMES = (
    "cells",
    "customers",
    "confusion",
    "latency",
    "confidence",
    "grid",
    "paired",
    "mass",
    "classwise",
    "sample",
)
DAY_FRAMES = tuple(name for name in FRAMES if name not in GATE_FRAMES)
"""The frames every cached day has (the others are the gate frames)."""
DONE = "_done"
GATED = "_gate"
"""Marks a day whose gate frames were computed: only days a gate window reads need them
(label-matured days of the phase), so the others are cached without them (see `refresh`)."""


def _dirty_marks(home: Home, feature: str) -> dict[dt.date, list[Path]]:
    out: dict[dt.date, list[Path]] = {}
    d = dirty_dir(home, feature)
    if not d.exists():
        return out
    for p in d.iterdir():
        day = p.name.split("__", 1)[0]
        try:
            out.setdefault(dt.date.fromisoformat(day), []).append(p)
        except ValueError:
            continue
    return out


LAYOUT = "v3"
"""The day cache's layout version: part of its folder name, so that a cache written by another
version of trustramp (other frames) is recomputed rather than read."""


@dataclass(frozen=True)
class Key:
    """What a feature's day statistics depend on besides the lake: the ECE bins, the threshold
    grid's step and the sample's seed (a config's `statistics.ece_bins`, `routing.grid_step`,
    `statistics.seed`). Each key has its own cache folder."""

    bins: int = 15
    grid_step: float = 0.01
    seed: int = 0

    @classmethod
    def of(cls, cfg: RolloutConfig) -> Key:
        return cls(cfg.statistics.ece_bins, cfg.routing.grid_step, cfg.statistics.seed)


def cache_dir(home: Home, feature: str, key: Key) -> Path:
    name = f"{LAYOUT}-b{key.bins}-g{round(key.grid_step * 1e6)}"
    return home.root / "aggregates" / feature / (name + (f"-s{key.seed}" if key.seed else ""))


@dataclass(frozen=True)
class Refresh:
    """What a refresh did: the days recomputed (the rest were read from the cache)."""

    recomputed: tuple[dt.date, ...]
    cached: tuple[dt.date, ...]


def refresh(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    feature: str,
    start: dt.date,
    end: dt.date,
    key: Key,
    *,
    gate: tuple[dt.date, dt.date] | None = None,
    full: bool = False,
    engine: Engine | None = None,
) -> Refresh:
    """Recompute the dirty or missing days of [start, end] (all of them with `full`), on
    `engine` when given (e.g. Spark; default: DuckDB on `con`).

    `gate`: the gate window (first and last day). The gate frames (paired tables, customer
    grid, histogram, class-wise bins, sample) are computed only for the stale days' chunks that
    hold a day of it, and a cached day of it without them is stale: the days still maturing
    (late decisions dirty them night after night) and the days before the phase never pay for
    them. None: every recomputed day gets them."""
    # Called under the writer lock: move the connection's views to the current commits, so
    # the days recomputed include every file whose marks are cleared below, and the caller's
    # later reads on `con` see the same state as these aggregates.
    attach_views(con, home)
    base = cache_dir(home, feature, key)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    marks = _dirty_marks(home, feature)
    todo = stale_days(home, feature, start, end, key, gate=gate, full=full)
    if todo:
        if engine is not None:  # under the same lock: it sees the same commits as `con`
            engine.attach(home)
        aggs = compute_aggregates(
            engine or con,
            feature,
            min(todo),
            max(todo),
            bins=key.bins,
            grid_step=key.grid_step,
            days=todo,
            seed=key.seed,
            gate_days=None if gate is None else [d for d in todo if gate[0] <= d <= gate[1]],
        )
        for day, tables in _split_days(aggs, todo).items():
            _write_day(base / day.isoformat(), tables, gated=day in aggs.gated)
        for day in todo:
            for mark in marks.get(day, []):
                mark.unlink(missing_ok=True)
    return Refresh(tuple(todo), tuple(d for d in days if d not in todo))


def stale_days(
    home: Home,
    feature: str,
    start: dt.date,
    end: dt.date,
    key: Key,
    *,
    gate: tuple[dt.date, dt.date] | None = None,
    full: bool = False,
) -> list[dt.date]:
    """The days of [start, end] a refresh would recompute now: dirty or never computed, or in
    the `gate` window and cached without gate frames (all of them with `full`). Without the
    writer lock, a hint: an ingest may add some before the refresh."""
    base = cache_dir(home, feature, key)
    marks = _dirty_marks(home, feature)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

    def stale(day: dt.date) -> bool:
        folder = base / day.isoformat()
        if full or day in marks or not (folder / DONE).exists():
            return True
        in_gate = gate is None or gate[0] <= day <= gate[1]
        return in_gate and not (folder / GATED).exists()

    return [d for d in days if stale(d)]


def _split_days(aggs: Aggregates, days: list[dt.date]) -> dict[dt.date, dict[str, pa.Table]]:
    """Each day's rows of every frame, as Arrow tables: each frame (the day frames converted
    once, on this thread) sorted by day, stably (a day's rows keep their order), and sliced;
    no copy per frame and day."""
    out: dict[dt.date, dict[str, pa.Table]] = {day: {} for day in days}
    for name in FRAMES:
        frame = getattr(aggs, name)
        if name not in GATE_FRAMES:
            frame = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
        table = frame.sort_by("day")
        ends = table["day"].to_numpy().astype("datetime64[D]")
        for day in days:
            at = np.datetime64(day, "D")
            lo, hi = np.searchsorted(ends, at, "left"), np.searchsorted(ends, at, "right")
            out[day][name] = table.slice(lo, hi - lo)
    return out


def _write_day(folder: Path, tables: dict[str, pa.Table], *, gated: bool) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    sweep_siblings(folder)  # a killed run's temporaries (refresh runs under the writer lock)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    for name, table in tables.items():
        if name in GATE_FRAMES and not gated:
            continue  # none computed: `load` reads a missing gate frame as empty
        (tmp / f"{name}.arrow").write_bytes(_arrow_bytes(table))
    if gated:
        (tmp / GATED).touch()
    (tmp / DONE).touch()
    replace_dir(tmp, folder)


_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
FEATHER_CHUNK_ROWS = 64 * 1024
"""`feather.write_feather`'s record batch size (its default)."""


def _arrow_bytes(table: pa.Table) -> pa.Buffer:
    """The bytes `feather.write_feather(table, path, compression="lz4")` writes (the same Arrow
    IPC file, byte for byte), built in memory on this thread: Arrow's file writer and its
    thread pool cost ~1 s of a full recompute's ~300 small files on a busy machine."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=_WRITE_OPTIONS) as writer:
        writer.write_table(table, max_chunksize=FEATHER_CHUNK_ROWS)
    return sink.getvalue()


def load(
    home: Home,
    feature: str,
    start: dt.date,
    end: dt.date,
    key: Key,
    *,
    gate: tuple[dt.date, dt.date] | None = None,
) -> Aggregates:
    """The cached aggregates of [start, end]; the gate frames only of the days in `gate` (the
    gate window: the only days their sums read, and the only days `refresh` guarantees to have
    them), or of every day that has them when None.

    Call `refresh` first, and call both under the same hold of the writer lock: then no other
    evaluation can recompute a day (from a lake an ingest changed meanwhile) between the two,
    and every day read comes from the lake state that refresh saw.
    """
    base = cache_dir(home, feature, key)
    parts: dict[str, list[pa.Table]] = {name: [] for name in FRAMES}
    for i in range((end - start).days + 1):
        day = start + dt.timedelta(days=i)
        names = FRAMES if gate is None or gate[0] <= day <= gate[1] else DAY_FRAMES
        for name, table in _read_day(base / day.isoformat(), names).items():
            if table.num_rows:
                parts[name].append(table)
    # One conversion per frame, not per frame and day (pandas' per-frame overhead dominates
    # the small days); the gate frames stay Arrow (GATE_SCHEMAS: every day file has it). The
    # days' chunks are combined first: pandas keeps an Arrow column's chunks, and every filter
    # or group-by of stage 2 would otherwise take from 30 chunks (twice the cost).
    frames: dict[str, Any] = {}
    for name, got in parts.items():
        if name in GATE_FRAMES:
            frames[name] = pa.concat_tables(got) if got else empty_gate(name)
        elif got:
            table = pa.concat_tables(got, promote_options="permissive").combine_chunks()
            frames[name] = table.to_pandas()
        else:
            frames[name] = empty_frame(name)
    return Aggregates(
        feature=feature, start=start, end=end, bins=key.bins, grid_step=key.grid_step, **frames
    )


def _read_day(
    folder: Path, names: tuple[str, ...] = FRAMES, attempts: int = 5
) -> dict[str, pa.Table]:
    """One day's frames (of `names`), all from the same version of its folder (a writer may
    swap it while we read: then read it again)."""
    frames: dict[str, pa.Table] = {}
    for _ in range(attempts):
        before = _inode(folder)
        frames = {}
        for name in names:
            try:
                frames[name] = _read_arrow(folder / f"{name}.arrow")
            except FileNotFoundError:
                continue
        if before == _inode(folder):
            break
    return frames


_ON_THIS_THREAD = pa.ipc.IpcReadOptions(use_threads=False)


def _read_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file (as `feather.write_feather` wrote it), read whole into memory and
    decoded on this thread. The files are small (up to a few hundred kB): Arrow's own file
    reader and its thread pools cost more than the reading itself for each of a run's ~300
    files (some 9,000 futex calls; seconds of system time when other processes kept the
    cores busy)."""
    return pa.ipc.open_file(pa.py_buffer(path.read_bytes()), options=_ON_THIS_THREAD).read_all()


def _inode(folder: Path) -> int | None:
    try:
        return folder.stat().st_ino
    except FileNotFoundError:
        return None
