"""The home folder: lake layout, commit records, quarantine, and the catalog's views.

Commit protocol for one input file (content hash `src`):
1. everything is written under `HOME/tmp/<src>/` first;
2. lake parts are renamed into `HOME/lake/...` as `part-<src>-<n>.parquet`, the quarantine file into
   `HOME/state/quarantine/<src>.parquet`;
3. the commit record `HOME/state/ingest_log/<src>.parquet` is renamed into place last.
Rows are visible through the catalog only when their `_source` has a commit record, so a crash at any
point leaves nothing visible; the rerun deletes the leftovers of the uncommitted `src` and redoes it.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from trustramp.contract import DATE, FEATURE, ITEM_KEY, SCHEMAS, SOURCE, Kind
from trustramp.store.duck import connect, quote_literal, translated

CATALOG_NAME = "catalog.duckdb"


@dataclass(frozen=True)
class Home:
    """Paths inside a trustramp home folder."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Home:
        home = cls(Path(root).resolve())
        for d in (home.lake, home.ingest_log, home.quarantine, home.tmp):
            d.mkdir(parents=True, exist_ok=True)
        return home

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def ingest_log(self) -> Path:
        return self.state / "ingest_log"

    @property
    def quarantine(self) -> Path:
        return self.state / "quarantine"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def catalog(self) -> Path:
        return self.root / CATALOG_NAME

    def kind_dir(self, kind: Kind) -> Path:
        return self.lake / kind.value

    def is_committed(self, src: str) -> bool:
        return (self.ingest_log / f"{src}.parquet").exists()

    def committed_sources(self) -> set[str]:
        return {p.stem for p in self.ingest_log.glob("*.parquet")}

    def lake_files(self, kind: Kind) -> list[Path]:
        return sorted(self.kind_dir(kind).glob("*/*/*.parquet"))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's renameat2 (Linux 3.15+), or None where there is none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (RENAME_EXCHANGE); False where the OS or file system can't."""
    fn = _renameat2()
    at_fdcwd, rename_exchange = -100, 2
    return (
        fn is not None
        and fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
    )


def replace_dir(new: Path, final: Path) -> None:
    """Make folder `new` the folder `final`; the previous `final` is deleted.

    Where the OS can swap two paths atomically (Linux), `final` never stops existing: a reader
    finds the old folder or the new one. Elsewhere the old folder is moved aside first, which
    leaves a moment without `final`. Either way a crash leaves only hidden `.name.*` siblings,
    which the next writer removes (`sweep_siblings`).
    """
    if final.exists() and _exchange(new, final):
        fsync_dir(final.parent)
        shutil.rmtree(new, ignore_errors=True)  # it now holds the previous folder
        return
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def sweep_siblings(final: Path) -> None:
    """Remove the hidden temporaries (`.name.*`) a killed writer left next to `final`."""
    for stale in final.parent.glob(f".{final.name}.*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def sweep(home: Home) -> int:
    """Remove what crashed writers left behind; call it holding the writer lock.

    Readers never see any of it: lake parts and quarantine files of uncommitted sources, and
    the scratch files under `HOME/tmp` (staging folders, temporary catalogs), except DuckDB's
    spill folder, which readers share. Returns the number of entries removed.
    """
    committed = home.committed_sources()
    removed = 0
    for part in home.lake.glob("*/*/*/part-*.parquet"):
        if part_source(part) not in committed:
            part.unlink(missing_ok=True)
            removed += 1
    for q in home.quarantine.glob("*.parquet"):
        if q.stem not in committed:
            q.unlink(missing_ok=True)
            removed += 1
    for entry in home.tmp.iterdir():
        if entry.name == "duckdb":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def dirty_dir(home: Home, feature: str) -> Path:
    """Where the day cache's dirty marks of one feature live (see `store.daycache`)."""
    return home.state / "dirty" / feature


def mark_dirty(home: Home, src: str, days: Iterable[tuple[str, dt.date]]) -> int:
    """Mark (feature, date) prediction days dirty on behalf of source `src`."""
    n = 0
    for feature, day in set(days):
        d = dirty_dir(home, feature)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{day.isoformat()}__{src}").touch()
        n += 1
    return n


def commit_source(
    home: Home,
    src: str,
    kind: Kind,
    staged_parts: Path | None,
    staged_quarantine: Path | None,
    staged_log: Path,
    *,
    dirty: Iterable[tuple[str, dt.date]] = (),
    crash_hook: Callable[[], None] | None = None,
) -> None:
    """Move a source's staged files into place; the commit record goes last."""
    touched: set[Path] = set()
    if staged_parts is not None and staged_parts.exists():
        for i, part in enumerate(sorted(staged_parts.glob("*/*/*.parquet"))):
            rel = part.parent.relative_to(staged_parts)
            dest_dir = home.kind_dir(kind) / rel
            dest_dir.mkdir(parents=True, exist_ok=True)
            os.replace(part, dest_dir / f"part-{src}-{i}.parquet")
            touched.add(dest_dir)
    if staged_quarantine is not None and staged_quarantine.exists():
        os.replace(staged_quarantine, home.quarantine / f"{src}.parquet")
        touched.add(home.quarantine)
    for d in touched:
        fsync_dir(d)
    mark_dirty(home, src, dirty)  # before the commit record: a committed file's days are marked
    if crash_hook is not None:  # tests: die between moving the data and writing the commit record
        crash_hook()
    os.replace(staged_log, home.ingest_log / f"{src}.parquet")
    fsync_dir(home.ingest_log)


def _glob(path: Path) -> str:
    return quote_literal(str(path))


def part_source(part: Path) -> str:
    """The source hash in a lake part's name, `part-<source>-<n>.parquet`."""
    return part.name[len("part-") :].rsplit("-", 1)[0]


@dataclass(frozen=True)
class Snapshot:
    """The committed files at one moment, listed commit records first.

    A file's parts and quarantine rows are moved into place before its commit record, and
    committed files never change; so the files of the records listed first are all there when
    listed next, and stay. (Globbing the lake inside a query is not enough: DuckDB expands the
    lake's glob before the records', and could see a record without all of its parts.)
    """

    logs: tuple[Path, ...]
    parts: dict[Kind, tuple[Path, ...]]
    quarantine: tuple[Path, ...]

    @classmethod
    def take(cls, home: Home) -> Snapshot:
        logs = tuple(sorted(home.ingest_log.glob("*.parquet")))
        committed = {p.stem for p in logs}
        parts = {
            k: tuple(p for p in home.lake_files(k) if part_source(p) in committed) for k in Kind
        }
        quarantine = tuple(
            q for q in sorted(home.quarantine.glob("*.parquet")) if q.stem in committed
        )
        return cls(logs, parts, quarantine)


def _files(paths: Iterable[Path]) -> str:
    return "[" + ", ".join(quote_literal(str(p)) for p in paths) + "]"


def _kind_relation(snap: Snapshot, kind: Kind) -> str:
    """SQL for the committed rows of one kind (empty, typed, when nothing has landed yet)."""
    if not snap.parts[kind]:
        return _empty_kind(kind)
    return (
        f"SELECT * FROM read_parquet({_files(snap.parts[kind])}, hive_partitioning = true, "
        f"union_by_name = true, hive_types = {{'{FEATURE}': VARCHAR, '{DATE}': DATE}})"
    )


def _empty_kind(kind: Kind) -> str:
    from trustramp.ingest.checks import lake_columns

    cols = ", ".join(f"CAST(NULL AS {t}) AS {n}" for n, t in lake_columns(SCHEMAS[kind]))
    return (
        f"SELECT {cols}, CAST(NULL AS VARCHAR) AS {SOURCE}, CAST(NULL AS VARCHAR) AS {FEATURE}, "
        f"CAST(NULL AS DATE) AS {DATE} LIMIT 0"
    )


QUARANTINE_EMPTY = (
    "SELECT CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS file, "
    "CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS BIGINT) AS row_number, "
    "CAST(NULL AS BIGINT) AS line, CAST(NULL AS VARCHAR) AS reason, "
    "CAST(NULL AS VARCHAR) AS detail, CAST(NULL AS VARCHAR) AS raw LIMIT 0"
)


def relations(home: Home) -> dict[str, str]:
    """Name -> SQL of every relation the catalog exposes, over a `Snapshot` of the committed
    files taken now (later commits are not seen: attach the views again to see them)."""
    snap = Snapshot.take(home)
    rel = {k.value: _kind_relation(snap, k) for k in Kind}
    rel["ingest_log"] = (
        f"SELECT * FROM read_parquet({_files(snap.logs)}, union_by_name = true)"
        if snap.logs
        else "SELECT CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS file, "
        "CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS BIGINT) AS rows_read, "
        "CAST(NULL AS BIGINT) AS rows_new, CAST(NULL AS BIGINT) AS rows_duplicate, "
        "CAST(NULL AS BIGINT) AS rows_quarantined, CAST(NULL AS TIMESTAMPTZ) AS ingested_at LIMIT 0"
    )
    rel["quarantine"] = (
        f"SELECT * FROM read_parquet({_files(snap.quarantine)}, union_by_name = true)"
        if snap.quarantine
        else QUARANTINE_EMPTY
    )
    runs = home.state / "runs"
    rel["runs"] = (
        f"SELECT * FROM read_parquet({_glob(runs / '*.parquet')}, union_by_name = true)"
        if runs.exists() and any(runs.glob("*.parquet"))
        else RUNS_EMPTY
    )
    return rel


RUNS_EMPTY = (
    "SELECT CAST(NULL AS VARCHAR) AS run_id, CAST(NULL AS VARCHAR) AS feature, "
    "CAST(NULL AS DATE) AS as_of, CAST(NULL AS VARCHAR) AS verdict, CAST(NULL AS VARCHAR) AS phase, "
    "CAST(NULL AS BIGINT) AS step, CAST(NULL AS VARCHAR) AS config_hash, "
    "CAST(NULL AS TIMESTAMPTZ) AS run_at, CAST(NULL AS VARCHAR) AS reasons, "
    "CAST(NULL AS VARCHAR) AS report LIMIT 0"
)


def attach_views(con: duckdb.DuckDBPyConnection, home: Home, *, temporary: bool = True) -> None:
    """Create the catalog's views on a connection (temporary views on a reader's connection)."""
    kw = "TEMPORARY VIEW" if temporary else "VIEW"
    with translated("creating catalog views"):
        rels = relations(home)
        con.execute(f"CREATE OR REPLACE {kw} ingest_log AS {rels.pop('ingest_log')}")
        for name, query in rels.items():
            con.execute(f"CREATE OR REPLACE {kw} {name} AS {query}")


def rebuild_catalog(home: Home) -> Path:
    """Write the catalog file anew (views over the lake) and swap it in atomically."""
    tmp = home.tmp / f"{CATALOG_NAME}.{os.getpid()}.tmp"
    for leftover in home.tmp.glob(f"{CATALOG_NAME}.*.tmp*"):  # ours, or a killed writer's
        leftover.unlink(missing_ok=True)
    con = connect(tmp)
    try:
        attach_views(con, home, temporary=False)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, home.catalog)
    return home.catalog


def reader(home: Home, *, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the catalog's views: never blocks, never blocks a writer.

    Its views show the committed data as of this call (a consistent snapshot, never half a
    file); `attach_views(con, home)` moves them to the current state.
    """
    con = connect(memory_limit=memory_limit, temp_directory=home.tmp / "duckdb")
    attach_views(con, home)
    return con


def item_key_sql(column: str = "item_id") -> str:
    return f"md5_number_lower({column})"


__all__ = [
    "ITEM_KEY",
    "Home",
    "Snapshot",
    "attach_views",
    "commit_source",
    "reader",
    "rebuild_catalog",
    "relations",
    "replace_dir",
    "sweep",
    "sweep_siblings",
]
