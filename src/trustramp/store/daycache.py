"""Per-day cache of the stage-1 aggregates: a nightly run recomputes only the days that changed.

A day's aggregates depend on that day's predictions and on the decisions for their items (which
may arrive days later). Ingest therefore marks days dirty when it commits a file:
- a predictions file dirties the (feature, date) partitions it wrote;
- a decisions file dirties the prediction days of the items it decided.
The marks (`HOME/state/dirty/<feature>/<date>__<source>`) are written before the file's commit
record, so a committed file's days are always marked. `refresh` recomputes the days of a range
that are dirty or were never computed, in one SQL pass — or, for a day that only decisions files
marked, updates its frames by sums (`_updatable`) — writes each day's frames with atomic renames,
each day recording the files its frames include (`_sources`: a day updated or recomputed again
after a crash before its marks were removed does not count them twice), and only then removes
the marks it saw; a file committed meanwhile leaves its mark.

Layout: `HOME/aggregates/<feature>/v4-b<bins>-g<grid>[-s<seed>]/<date>/<frame>.arrow` (v2: the
gate window's statistics are day frames too; v3: Arrow IPC files, LZ4-compressed, instead of
Parquet — an evaluation reads ten small files per day, and Parquet's per-file cost was most of a
cached run's reading; v4: the confusion frame's row counts, for updates by sums; a cache of
another layout is not read, its days are recomputed).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trustramp.store.aggregates import (
    CELL_FRAMES,
    DELTA_FRAMES,
    GATE_FRAMES,
    Aggregates,
    compute_aggregates,
    days_with_class_probabilities,
    decision_delta,
    empty_frame,
    empty_gate,
    merge_delta,
    merge_sample,
    merging,
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
SOURCES = "_sources"
"""The input files whose marks the day's last refresh saw, one per line: its frames include
them (a mark that outlives a crash of that refresh is then not applied twice)."""
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


LAYOUT = "v4"
"""The day cache's layout version: part of its folder name, so that a cache written by another
version of trustramp (other frames) is recomputed rather than read. (v4: the confusion frame
carries its groups' row counts, `rows`, which updating a day by sums needs.)"""


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
    """What a refresh did: the days recomputed, the days updated with new decisions only (see
    `refresh`), and the days read from the cache as they were."""

    recomputed: tuple[dt.date, ...]
    cached: tuple[dt.date, ...]
    updated: tuple[dt.date, ...] = ()


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
    if todo and engine is not None:  # under the same lock: it sees the same commits as `con`
        engine.attach(home)
    for day in todo:  # a killed refresh's temporaries, also of days with nothing left to do
        sweep_siblings(base / day.isoformat())
    seen = {day: {_mark_source(m) for m in marks.get(day, [])} for day in todo}
    pending = {day: seen[day] - _included(base / day.isoformat()) for day in todo}
    updated = [] if full or gate is None else _updatable(home, base, pending, todo, gate)
    in_gate = [d for d in updated if gate is not None and gate[0] <= d <= gate[1]]
    if in_gate:  # their class-wise bins are not sums to update: recomputed
        probs = days_with_class_probabilities(engine or con, feature, in_gate)
        updated = [d for d in updated if d not in probs]
        in_gate = [d for d in in_gate if d not in probs]
    recompute = [d for d in todo if d not in updated]
    if recompute:
        aggs = compute_aggregates(
            engine or con,
            feature,
            min(recompute),
            max(recompute),
            bins=key.bins,
            grid_step=key.grid_step,
            days=recompute,
            seed=key.seed,
            gate_days=None if gate is None else [d for d in recompute if gate[0] <= d <= gate[1]],
        )
        for day, tables in _split_days(aggs, recompute).items():
            _write_day(base / day.isoformat(), tables, gated=day in aggs.gated, sources=seen[day])
    if updated:
        _update_days(engine or con, base, feature, updated, pending, seen, key, gated=in_gate)
    for day in todo:
        for mark in marks.get(day, []):
            mark.unlink(missing_ok=True)
    return Refresh(tuple(recompute), tuple(d for d in days if d not in todo), tuple(updated))


def _included(folder: Path) -> set[str]:
    """The input files a cached day's frames include, of those whose marks it saw (SOURCES)."""
    try:
        return set((folder / SOURCES).read_text().split())
    except FileNotFoundError:
        return set()


def _updatable(
    home: Home,
    base: Path,
    pending: dict[dt.date, set[str]],
    todo: list[dt.date],
    gate: tuple[dt.date, dt.date],
) -> list[dt.date]:
    """The stale days that new decisions alone made stale, cached with the frames they need:
    they are updated by sums (`_update_days`) rather than recomputed. Outside the gate window
    only their cells frames are (gate frames they may have are dropped: not read there, and a
    day entering the window without them is recomputed); inside it, the gate frames too, unless
    the day has class-wise bins (`refresh` checks that).

    Why that is exact: a day's cached frames were computed from the lake as it was then, and
    every file committed since that changes the day left a mark on it (ingest marks the days
    of a decisions file's items, and the day of every prediction): so the lake then is the lake
    now without the files of the day's marks. When those are all decisions files, the day's
    predictions are the same, and only the items those files decided changed their latest
    decision."""
    kinds: dict[str, str | None] = {}
    out = []
    for day in todo:
        folder = base / day.isoformat()
        if day not in pending or not (folder / DONE).exists():
            continue
        if gate[0] <= day <= gate[1] and not (folder / GATED).exists():
            continue  # stale for want of gate frames
        if all(_source_kind(home, src, kinds) == "decisions" for src in pending[day]):
            out.append(day)  # (no pending file: a crashed refresh's marks, already included)
    return out


def _mark_source(mark: Path) -> str:
    return mark.name.split("__", 1)[1]


def _source_kind(home: Home, src: str, seen: dict[str, str | None]) -> str | None:
    """The kind of committed input file `src` (None when it has no commit record)."""
    if src not in seen:
        try:
            record = pq.read_table(home.ingest_log / f"{src}.parquet", columns=["kind"])
            seen[src] = str(record["kind"][0].as_py())
        except (OSError, KeyError, IndexError):  # not committed (yet), or unreadable
            seen[src] = None
    return seen[src]


def _update_days(
    con: duckdb.DuckDBPyConnection | Engine,
    base: Path,
    feature: str,
    days: list[dt.date],
    pending: dict[dt.date, set[str]],
    seen: dict[dt.date, set[str]],
    key: Key,
    *,
    gated: list[dt.date],
) -> None:
    """Add what the pending decisions files changed to the cached frames of `days`: every frame
    of the `gated` days (gate-window days with gate frames), the cells frames of the others
    (their gate frames dropped). Days are grouped by their pending files (one group, but after
    a crash), since a day's old frames are the lake without exactly its own; each group's
    decided items are read once (`decision_delta`), the gated days' join held, the others'
    streamed into the cells."""
    groups: dict[frozenset[str], list[dt.date]] = {}
    for day in days:
        groups.setdefault(frozenset(pending[day]), []).append(day)
    for sources, group in groups.items():
        if not sources:
            continue  # included already: only the marks are left to remove
        gate = [day for day in group if day in gated]
        delta = decision_delta(
            con,
            feature,
            group,
            sorted(sources),
            bins=key.bins,
            grid_step=key.grid_step,
            seed=key.seed,
            gate=gate,
        )
        # (gate frames outside the window: dropped)
        tables = {
            day: _read_day(base / day.isoformat(), FRAMES if day in gate else DAY_FRAMES)
            for day in group
        }
        with merging() as summing:
            for name in DELTA_FRAMES:  # each frame of the days merged at once
                some = group if name in CELL_FRAMES else gate
                if not some:
                    continue
                parts = [tables[day][name] for day in some if name in tables[day]]
                cached = (
                    pa.concat_tables(parts, promote_options="permissive")
                    if parts
                    else delta.new[name].slice(0, 0)
                )
                merged = merge_delta(name, cached, delta.new[name], delta.old[name], summing)
                for day, rows in _by_day(merged, some).items():
                    tables[day][name] = rows
        if gate:
            for day, rows in _by_day(delta.new["sample"], gate).items():
                tables[day]["sample"] = merge_sample(tables[day]["sample"], rows)
        for day in group:
            _write_day(base / day.isoformat(), tables[day], gated=day in gate, sources=seen[day])


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
        for day, rows in _by_day(frame, days).items():
            out[day][name] = rows
    return out


def _by_day(table: pa.Table, days: list[dt.date]) -> dict[dt.date, pa.Table]:
    """Each day's rows of `table` (sorted by day, stably, and sliced: no copy per day)."""
    table = table.sort_by("day")
    ends = table["day"].to_numpy().astype("datetime64[D]")
    out = {}
    for day in days:
        at = np.datetime64(day, "D")
        lo, hi = np.searchsorted(ends, at, "left"), np.searchsorted(ends, at, "right")
        out[day] = table.slice(lo, hi - lo)
    return out


def _write_day(
    folder: Path, tables: dict[str, pa.Table], *, gated: bool, sources: Collection[str] = ()
) -> None:
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
    if sources:
        (tmp / SOURCES).write_text("".join(f"{s}\n" for s in sorted(sources)))
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
