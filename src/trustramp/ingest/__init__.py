"""Ingest: input files -> row checks -> contract audit -> quarantine + Parquet lake, idempotently.

`ingest_paths` is the one entry point (the CLI, the Prefect flow and tests call it). Each file is its
own unit of work: it lands whole or not at all, and a file that cannot be read fails alone.

It owns reading the input files (`readers`), the row checks in SQL (`checks`), the contract
audit (`expectations`, Great Expectations) and staging a kind's files into lake parts and
quarantine (`staging`). It imports pyarrow, pandas, DuckDB and Great Expectations, and of
trustramp `contract`, `errors` and `store` (connections, the lake, its lock and columns); never
the pipeline, the evaluation, `decide`, `report` or Prefect. `store` never imports it.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import stat
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustramp.contract import DEFAULT_SEGMENTS, Kind, infer_kind, schema_for
from trustramp.errors import InputFileError, NotWritableError, TrustrampError
from trustramp.ingest.checks import case_mismatches, missing_columns
from trustramp.ingest.expectations import warm_up
from trustramp.ingest.readers import (
    FORMATS,
    Source,
    content_hash,
    file_format,
    jsonl_lines,
    open_source,
)
from trustramp.ingest.staging import (
    SourceFile,
    StagedFile,
    StagedKind,
    audit_rows,
    audit_staged,
    discard_run,
    new_run_dir,
    stage_kind,
)
from trustramp.store.duck import connect
from trustramp.store.lake import Home, StagedSource, commit_sources, rebuild_catalog, sweep
from trustramp.store.lock import LOCK_NAME, writer_lock
from trustramp.store.migrate import migrate

log = logging.getLogger(__name__)

KIND_ORDER = (Kind.PREDICTIONS, Kind.DECISIONS, Kind.FEEDBACK, Kind.INCIDENTS)
"""Predictions land first so that decisions in the same run find their item's feature."""


@dataclass
class FileResult:
    path: Path
    status: str  # ingested | skipped | failed
    kind: Kind | None = None
    source: str | None = None
    rows_read: int = 0
    rows_new: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    skip_reason: str | None = None
    """Why a file was skipped when it was not read at all (a dangling link, a FIFO, ...);
    None for a file skipped because it was already ingested."""


@dataclass
class IngestReport:
    """The run summary: per file, and totals with quarantine counts per reason."""

    files: list[FileResult]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    def __repr__(self) -> str:  # one line; the files are in `files` and `_repr_html_`
        return (
            f"IngestReport(files={len(self.files)}, failed={len(self.failed)}, "
            f"rows_read={self.total('rows_read'):,}, new={self.total('rows_new'):,}, "
            f"duplicate={self.total('rows_duplicate'):,}, "
            f"quarantined={self.total('rows_quarantined'):,})"
        )

    def _repr_html_(self) -> str:
        """One row per file (status, kind, rows, error) as an HTML table, values escaped."""
        import html

        cols = ("path", "status", "kind", "read", "new", "duplicate", "quarantined", "error")
        rows = [
            (
                f.path,
                f.status,
                f.kind or "",
                f"{f.rows_read:,}",
                f"{f.rows_new:,}",
                f"{f.rows_duplicate:,}",
                f"{f.rows_quarantined:,}",
                f.error or f.skip_reason or "",
            )
            for f in self.files
        ]
        head = "".join(f"<th>{c}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows
        )
        return f"<p>{html.escape(repr(self))}</p><table><tr>{head}</tr>{body}</table>"

    @property
    def reasons(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for f in self.files:
            out.update(f.reasons)
        return out

    def summary_lines(self, *, per_file: bool = True) -> list[str]:
        lines = []
        for f in self.files:
            if not per_file and f.status != "failed" and f.skip_reason is None:
                continue
            if f.status == "failed":
                lines.append(f"FAILED   {f.path}: {f.error}")
            elif f.status == "skipped":
                lines.append(f"skipped  {f.path} ({f.skip_reason or 'already ingested'})")
            else:
                lines.append(
                    f"ingested {f.path} [{f.kind}]: {f.rows_read:,} read, {f.rows_new:,} new, "
                    f"{f.rows_duplicate:,} duplicate, {f.rows_quarantined:,} quarantined"
                )
        lines.append(
            f"total: {len(self.files)} files ({len(self.failed)} failed), "
            f"{self.total('rows_read'):,} rows read, {self.total('rows_new'):,} new, "
            f"{self.total('rows_duplicate'):,} duplicate, "
            f"{self.total('rows_quarantined'):,} quarantined"
        )
        for reason, n in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  quarantined {n:,} x {reason}")
        return lines


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, and the entries named like data files (by extension) under named
    folders, sorted; entries that are not regular files are kept, for `_plan` to skip by name."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in _walk(p)
                    if f.suffix.lower() in FORMATS and not f.name.startswith(".") and not _is_dir(f)
                )
            )
        else:
            out.append(p)
    return out


def _walk(folder: Path) -> Iterator[Path]:
    """Every entry under `folder`, while other processes may change it: a sub-folder that
    vanishes mid-walk is skipped (Path.rglob raises FileNotFoundError then, Python 3.11)."""
    for parent, dirs, names in os.walk(folder):
        for name in (*dirs, *names):
            yield Path(parent) / name


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def not_a_file(path: Path) -> str | None:
    """Why `path` cannot be read as a file without opening it (a FIFO is never opened: reading
    one blocks until something writes to it); None for a regular file or a link to one."""
    try:
        st = path.stat()
    except OSError as e:
        if path.is_symlink():
            if e.errno == errno.ELOOP:
                return "a symbolic link loop"
            return f"a dangling symbolic link (to {os.readlink(path)})"
        return None  # not there at all: the caller says so
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISFIFO(st.st_mode):
        return "a FIFO (named pipe), not a regular file; not opened"
    if stat.S_ISSOCK(st.st_mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "a device, not a regular file"
    if stat.S_ISDIR(st.st_mode):
        return "a folder named like a data file"
    return "not a regular file"


def peek_columns(path: Path) -> list[str]:
    """The file's column names (for JSON Lines: the keys of its first objects)."""
    source = open_source(path)
    if source.fmt != "jsonl":
        return source.columns
    keys: dict[str, None] = {}
    with path.open("rb") as f:
        for i, line in enumerate(jsonl_lines(path, f)):
            if i >= 1000:
                break
            try:
                obj = json.loads(line)
            except (ValueError, UnicodeDecodeError, RecursionError):  # a bad line is a bad row
                continue
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
    return list(keys)


def resolve_kind(path: Path, columns: Sequence[str], kind: Kind | None) -> Kind:
    if kind is not None:
        return kind
    inferred = infer_kind(list(columns))
    if inferred is None:
        ids = ", ".join(f"{schema_for(k).id_column} ({k})" for k in Kind)
        id_names = {schema_for(k).id_column for k in Kind}
        by_case = [c for c in columns if c not in id_names and c.lower() in id_names]
        hint = f" ({', '.join(map(repr, by_case))} differs only by case)" if by_case else ""
        raise InputFileError(
            f"{path}: cannot tell the kind of data from its columns; expected "
            f"one id column of: {ids}{hint}. Pass --kind to say it."
        )
    return inferred


def ingest_paths(
    paths: Iterable[str | Path],
    home: str | Path,
    *,
    kind: Kind | str | None = None,
    segments: Sequence[str] = DEFAULT_SEGMENTS,
    wait_seconds: float = 600.0,
    memory_limit: str | None = None,
    validate_with_gx: bool = True,
    on_file: Callable[[int, int, Path], None] | None = None,
    crash_after: str | None = None,
) -> IngestReport:
    """Ingest files and folders into the lake under `home`; rerunning changes nothing.

    Parameters
    ----------
    paths : files (CSV, JSON Lines, Parquet) or folders of them.
    home : the trustramp home folder (lake, state, catalog).
    kind : the kind of every file; inferred from each file's columns when None.
    segments : the configured segment names; other values are quarantined.
    wait_seconds : how long to wait for another writer's lock.
    crash_after : testing hook, one of "stage", "parts": exit the process abruptly at that point.
    """
    h = open_home(home)
    fixed_kind = Kind(kind) if kind is not None else None
    paths = list(paths)
    files = expand_paths(paths)
    named = {Path(p) for p in paths if not _is_dir(Path(p))}
    results: list[FileResult] = []
    if validate_with_gx:
        warm_up()  # Great Expectations imports (seconds) in the background meanwhile
    with writer_lock(h.root, wait_seconds=wait_seconds):
        sweep(h)  # what a killed run left behind (never visible) goes first
        run_dir = new_run_dir(h)
        con = connect(memory_limit=memory_limit, temp_directory=h.tmp / "duckdb")
        audits = _Audits() if validate_with_gx else None
        try:
            migrate(con, h)  # an older lake's layout first: staging reads the current one
            planned = _plan(files, fixed_kind, results, named)
            staged: list[StagedFile] = []
            done = 0
            for k in KIND_ORDER:
                group = _sources(h, [(p, pk) for p, pk in planned if pk == k], results)
                if on_file:
                    for n, f in enumerate(group):
                        on_file(done + n, len(planned), f.path)
                done += len(group)
                if not group:
                    continue
                staged += _stage_group(con, h, run_dir, k, group, segments, staged, results, audits)
                if crash_after == "stage":
                    _crash()
            if audits is not None:
                staged = _audit(con, staged, results, audits)
            commits = []
            for s in staged:
                assert s.log_file is not None
                commits.append(
                    StagedSource(
                        s.src,
                        s.kind,
                        s.parts_dir,
                        s.quarantine_file,
                        s.log_file,
                        frozenset(s.dirty),
                    )
                )
            by_src = {s.src: s for s in staged}
            commit_sources(
                h,
                commits,
                crash_hook=_crash if crash_after == "parts" and commits else None,
                on_commit=lambda c: results.append(_result(by_src[c.src])),
            )
        finally:
            if audits is not None:
                audits.close()
            con.close()
            discard_run(run_dir)
        rebuild_catalog(h)
    order = {str(p): i for i, p in enumerate(files)}
    results.sort(key=lambda r: order.get(str(r.path), len(order)))
    return IngestReport(results)


_EFFECTIVE = os.access in os.supports_effective_ids


def open_home(home: str | Path) -> Home:
    """The home, its folders created; NotWritableError (one line: which folder, and the fix)
    when this process cannot write there, before anything else is done."""
    try:
        h = Home.at(home)
        folders = (h.root, h.lake, h.ingest_log, h.quarantine, h.tmp)
        checks = [(d, os.W_OK | os.X_OK) for d in folders] + [(h.root / LOCK_NAME, os.W_OK)]
        for d, mode in checks:
            # access(2), not a probe file: a run killed between writing and removing a probe
            # would leave it behind. It answers for root too (EROFS on a read-only mount).
            if d.exists() and not os.access(d, mode, effective_ids=_EFFECTIVE):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(d))
    except OSError as e:
        where = e.filename or home
        raise NotWritableError(
            f"cannot write to {where} ({e.strerror}): the trustramp home {Path(home)} must be "
            f"writable by this user; fix its permissions, or pass another --home "
            f"(or TRUSTRAMP_HOME)"
        ) from None
    return h


def _plan(
    files: list[Path], kind: Kind | None, results: list[FileResult], named: Collection[Path] = ()
) -> list[tuple[Path, Kind]]:
    """The files to read, with their kinds. An entry of a folder that is not a regular file is
    skipped (named in the report, with the reason); a path named directly fails instead."""
    planned: list[tuple[Path, Kind]] = []
    for path in files:
        why = not_a_file(path)
        if why is not None and path in named:
            results.append(FileResult(path=path, status="failed", error=f"{path}: {why}"))
            continue
        if why is not None:  # a run does not fail for it: the entry is named in the report
            log.warning("skipped %s: %s", path, why)
            results.append(FileResult(path=path, status="skipped", skip_reason=why))
            continue
        try:
            file_format(path)
            if not path.is_file():
                raise InputFileError(f"{path}: no such file")
            k = resolve_kind(path, peek_columns(path), kind)
            planned.append((path, k))
        except InputFileError as e:
            results.append(FileResult(path=path, status="failed", error=str(e)))
    planned.sort(key=lambda pk: KIND_ORDER.index(pk[1]))
    return planned


def _sources(
    home: Home, planned: list[tuple[Path, Kind]], results: list[FileResult]
) -> list[SourceFile]:
    """The files of one kind to stage: hashed, not yet ingested, with the required columns."""
    out: list[SourceFile] = []
    seen: set[str] = {r.source for r in results if r.source}
    for path, kind in planned:
        try:
            src = content_hash(path)
        except OSError as e:
            results.append(
                FileResult(path=path, status="failed", kind=kind, error=f"{path}: {e.strerror}")
            )
            continue
        if home.is_committed(src) or src in seen:
            results.append(FileResult(path=path, status="skipped", kind=kind, source=src))
            continue
        seen.add(src)
        schema = schema_for(kind)
        try:
            columns = peek_columns(path)
            mismatched = case_mismatches(schema, columns)
            if mismatched:
                named = "; ".join(f"{c!r} is not {n!r}" for c, n in mismatched)
                raise InputFileError(
                    f"{path}: column names differ from the {kind} contract only by case "
                    f"({named}); contract names are lower-case: rename the column"
                    f"{'s' if len(mismatched) > 1 else ''}"
                )
            missing = missing_columns(schema, columns)
            if missing:
                raise InputFileError(
                    f"{path}: missing required column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)} for {kind} (has: {', '.join(columns) or 'none'})"
                )
        except TrustrampError as e:
            results.append(
                FileResult(path=path, status="failed", kind=kind, source=src, error=str(e))
            )
            continue
        out.append(SourceFile(src, path, functools.partial(_opener, path)))
    return out


def _opener(path: Path, exact: bool) -> Source:
    return open_source(path, exact=exact)


def _stage_group(
    con,  # type: ignore[no-untyped-def]
    home: Home,
    run_dir: Path,
    kind: Kind,
    group: list[SourceFile],
    segments: Sequence[str],
    staged: list[StagedFile],
    results: list[FileResult],
    audits: _Audits | None = None,
) -> list[StagedFile]:
    """Stage the files of one kind together; files that fail are reported and left out.

    When the set-based steps break (out of memory, say), each file is staged alone to find the
    ones that break them, its output thrown away; the others are staged together again (their
    deduplication must see each other), in a fresh folder. Only the files that break alone fail.
    The audit of the kind starts on its sample while staging goes on (`audits`); on the retry
    path it is left to `_audit`, which reads the parts staged in the end.
    """
    preds = [s.parts_dir for s in staged if s.kind == Kind.PREDICTIONS and s.parts_dir]

    def stage(
        files: list[SourceFile], folder: Path, sample: Callable[..., None] | None = None
    ) -> StagedKind:
        return stage_kind(
            con,
            home,
            folder,
            schema_for(kind),
            files,
            segments=segments,
            run_predictions=preds,
            audit_sample=sample,
        )

    try:
        out = stage(group, run_dir, None if audits is None else audits.starter(kind))
    except (TrustrampError, MemoryError) as e:
        if audits is not None:
            audits.forget(kind)
        out, bad = StagedKind([], []), {}
        if len(group) > 1:
            out, bad = _stage_greedily(stage, run_dir, kind, group)
        for f in group:
            if not _has(out, f):
                results.append(
                    FileResult(
                        path=f.path,
                        status="failed",
                        kind=kind,
                        source=f.src,
                        error=f"{f.path}: nothing of it was ingested: "
                        f"{bad.get(f.src, _one_line(e))}",
                    )
                )
    for f, error in out.failed:
        results.append(
            FileResult(
                path=f.path, status="failed", kind=kind, source=f.src, error=_one_line(error)
            )
        )
    return out.staged


def _stage_greedily(
    stage: Callable[[list[SourceFile], Path], StagedKind],
    run_dir: Path,
    kind: Kind,
    group: list[SourceFile],
) -> tuple[StagedKind, dict[str, str]]:
    """After the kind's files broke staging together: add them one at a time, in run order, to
    the set staged together (deduplication must see them all); a file that breaks the set is left
    out, with why (alone, or only with the others). Costs more stagings, only on this path."""
    accepted: list[SourceFile] = []
    out = StagedKind([], [])
    kept: Path | None = None
    bad: dict[str, str] = {}
    for n, f in enumerate(group):
        folder = run_dir / f"retry-{kind.value}-{n}"
        try:
            attempt = stage([*accepted, f], folder)
        except (TrustrampError, MemoryError) as e_more:
            discard_run(folder)
            bad[f.src] = _one_line(e_more)
            if accepted:
                probe = run_dir / f"probe-{kind.value}-{n}"
                try:
                    stage([f], probe)
                    bad[f.src] = (
                        f"it cannot be staged together with the run's other {kind} files "
                        f"({bad[f.src]}); alone, in a run of its own, it can"
                    )
                except (TrustrampError, MemoryError):
                    pass
                finally:
                    discard_run(probe)
            continue
        accepted.append(f)
        if kept is not None:
            discard_run(kept)
        out, kept = attempt, folder
    return out, bad


def _has(out: StagedKind, f: SourceFile) -> bool:
    return any(s.src == f.src for s in out.staged) or any(g.src == f.src for g, _ in out.failed)


def _one_line(e: BaseException | str) -> str:
    """An error's first line (DuckDB appends paragraphs of advice)."""
    if isinstance(e, MemoryError):
        return "out of memory"
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    if "Out of Memory" in line:
        line += "; a larger --memory-limit may let it land"
    return line


class _Audits:
    """The contract audits of a run's kinds, each in a background thread as soon as its sample
    is drawn (`staging._sample_for_audit`, before the kind's lake write), so that Great
    Expectations' Python work overlaps DuckDB's, which releases the GIL. One worker: the audits
    run one at a time, in kind order. `_audit` waits for the results before anything commits.
    """

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trustramp-audit")
        self._pending: dict[Kind, Any] = {}

    def starter(self, kind: Kind) -> Callable[[Any], None]:
        """What staging hands the kind's sample (or the error that kept it from being drawn)."""

        def start(sample: Any) -> None:
            if isinstance(sample, BaseException):
                self._pending[kind] = sample
            else:
                self._pending[kind] = self._pool.submit(_audit_sample, kind, sample)

        return start

    def forget(self, kind: Kind) -> None:
        """The kind's staging broke after its sample was drawn: audit its final parts instead."""
        self._pending.pop(kind, None)

    def started(self, kind: Kind) -> bool:
        return kind in self._pending

    def failed(self, kind: Kind) -> list[str]:
        """The failed expectations of the kind's audit; raises what kept it from running."""
        pending = self._pending.pop(kind)
        if isinstance(pending, BaseException):
            raise pending
        failed: list[str] = pending.result()
        return failed

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _audit_sample(kind: Kind, sample: Any) -> list[str]:
    from trustramp.ingest.expectations import audit

    return audit_rows(schema_for(kind), sample, audit)


def _audit(
    con, staged: list[StagedFile], results: list[FileResult], audits: _Audits
) -> list[StagedFile]:  # type: ignore[no-untyped-def]
    """Great Expectations audit of everything staged to land, once per kind (its overhead is per call).

    A failure means the row checks let something through: every staged file of that kind fails
    (their deduplication saw each other), with the failed expectations named; nothing of them lands.
    When the audit cannot run at all (out of memory, a DuckDB error), each file of the kind is
    audited alone, and only the files whose own audit cannot run fail: the others still land.
    """
    from trustramp.ingest.expectations import audit

    keep: list[StagedFile] = []
    for kind in KIND_ORDER:
        group = [s for s in staged if s.kind == kind]
        parts = [s.parts_dir for s in group if s.parts_dir is not None]
        try:
            if audits.started(kind):  # its sample, drawn while staging
                failed = audits.failed(kind) if parts else []
            else:
                failed = audit_staged(con, schema_for(kind), parts, audit) if parts else []
        except (TrustrampError, MemoryError) as e:
            log.warning("the %s audit could not run (%s); auditing each file alone", kind, e)
            keep += _audit_alone(con, kind, group, audit, results)
            continue
        if not failed:
            keep += group
            continue
        for s in group:
            results.append(
                FileResult(
                    path=s.path,
                    status="failed",
                    kind=kind,
                    source=s.src,
                    error=f"{s.path}: the {kind} staged in this run failed the contract audit "
                    f"({', '.join(failed)}); nothing of them was ingested",
                )
            )
    return keep


def _audit_alone(
    con, kind: Kind, group: list[StagedFile], audit, results: list[FileResult]
) -> list[StagedFile]:  # type: ignore[no-untyped-def]
    keep: list[StagedFile] = []
    for s in group:
        error = None
        try:
            parts = [s.parts_dir] if s.parts_dir is not None else []
            failed = audit_staged(con, schema_for(kind), parts, audit) if parts else []
            if failed:
                error = f"failed the contract audit ({', '.join(failed)})"
        except (TrustrampError, MemoryError) as e:
            reason = "out of memory" if isinstance(e, MemoryError) else str(e).splitlines()[0]
            error = f"the contract audit could not run on its rows ({reason})"
        if error is None:
            keep.append(s)
            continue
        results.append(
            FileResult(
                path=s.path,
                status="failed",
                kind=kind,
                source=s.src,
                error=f"{s.path}: {error}; nothing of it was ingested",
            )
        )
    return keep


def _result(s: StagedFile) -> FileResult:
    return FileResult(
        path=s.path,
        status="ingested",
        kind=s.kind,
        source=s.src,
        rows_read=s.rows_read,
        rows_new=s.rows_new,
        rows_duplicate=s.rows_duplicate,
        rows_quarantined=s.rows_quarantined,
        reasons=s.reasons,
    )


def _crash() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
