"""Per-run outputs: written to a temporary folder, then swapped in whole, and recorded in history.

Readers of `reports/<feature>/<as-of>/` see either the previous run's complete folder or this
run's complete folder, never a mix; the run history (`HOME/state/runs/*.parquet`, the catalog's
`runs` view) gets its record after the folder is in place.

A run that read an older lake than the run already published for the same feature and day (an
on-demand evaluation that started before a nightly ingest and finished after the nightly run)
does not replace it: its outputs go to `<feature>/superseded/<as-of>-<run id>/` instead.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trustramp.errors import NotWritableError, StoreError
from trustramp.store.lake import Home, replace_dir, sweep_siblings

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and run again",
    errno.EDQUOT: "the disk quota is used up; free some space and run again",
    errno.EROFS: "the file system is read-only; pass a writable --home / --reports",
    errno.EACCES: "no permission to write there; pass a writable --home / --reports",
    errno.EPERM: "no permission to write there; pass a writable --home / --reports",
    errno.ENOTDIR: "a file stands where a folder is expected; pass a folder",
}


def storage_error(what: str, path: Path, e: OSError) -> NotWritableError:
    """One line for a file-system failure: what was being written, where, why, what to do."""
    where = e.filename if e.filename else path
    reason = e.strerror or type(e).__name__
    hint = _HINTS.get(e.errno or 0)
    return NotWritableError(
        f"cannot write {what} at {where}: {reason}" + (f" ({hint})" if hint else "")
    )


@contextmanager
def writing(what: str, path: Path) -> Iterator[None]:
    """Translate an OSError inside the block into a NotWritableError naming `what` and the
    path (exit 7); nothing half-written stays visible (`publish_run` swaps folders whole)."""
    try:
        yield
    except OSError as e:
        raise storage_error(what, path, e) from e


def run_dir(reports: Path, feature: str, as_of: dt.date) -> Path:
    """`reports/<feature>/<as-of>/`; the feature name is checked so it cannot leave `reports`."""
    if not SAFE_NAME.fullmatch(feature):
        raise StoreError(
            f"feature {feature!r} is not a valid name for a report folder "
            "(letters, digits, . _ -; not starting with . or -)"
        )
    return reports / feature / as_of.isoformat()


def published_lake_commits(folder: Path) -> int | None:
    """How many ingest commits the run published in `folder` had seen (None: unknown, no run)."""
    try:
        seen = json.loads((folder / "verdict.json").read_text("utf-8")).get("lake_commits")
    except (OSError, ValueError, AttributeError):
        return None
    return seen if isinstance(seen, int) else None


def superseded_dir(reports: Path, feature: str, as_of: dt.date, run_id: str) -> Path:
    return run_dir(reports, feature, as_of).parent / "superseded" / f"{as_of.isoformat()}-{run_id}"


def publish_run(
    reports: Path,
    feature: str,
    as_of: dt.date,
    write: Callable[[Path], None],
    *,
    lake_commits: int | None = None,
    run_id: str | None = None,
) -> Path:
    """Call `write(tmp_dir)`, then make tmp_dir the run folder in one step (hold the writer lock).

    With `lake_commits` (the number of ingest commits the run's data snapshot held) and
    `run_id`: when the folder already holds a run that saw more commits, this run is published
    to `superseded_dir` instead, and that path is returned.
    """
    final = run_dir(reports, feature, as_of)
    seen = published_lake_commits(final)
    if lake_commits is not None and run_id and seen is not None and seen > lake_commits:
        final = superseded_dir(reports, feature, as_of, run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_siblings(final)  # a killed run's temporaries
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_metrics(frame: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")


def write_json(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", "utf-8")


def record_run(home: Home, record: dict[str, object]) -> Path:
    """Append one verdict to the history (a small Parquet file, renamed into place)."""
    runs = home.state / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    name = f"{record['feature']}__{record['as_of']}__{record['run_id']}.parquet"
    for stale in home.tmp.glob("*.parquet.tmp"):  # a killed run's record (hold the writer lock)
        stale.unlink(missing_ok=True)
    tmp = home.tmp / f"{name}.tmp"
    pq.write_table(pa.Table.from_pylist([record]), tmp)
    os.replace(tmp, runs / name)
    return runs / name
