"""Running the pipeline through the Prefect flows in `flows/` (imports Prefect only when asked).

The CLI calls `prefect_requested(flag)` and, when it is true, `run_flow(name, **params)` instead of
the plain `trustramp.pipeline` functions; both return the same result objects. Without a server
(`PREFECT_API_URL` unset) a flow run starts a temporary local server, which costs ~12 s per process,
so plain runs call the pipeline directly unless `--prefect` is given.

The pure helpers here (`verdict_markdown`, `criteria_rows`, `effective_config`, `is_transient`) are
what the flows use to build artifacts and to decide on retries; they are tested without Prefect.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from trustramp.config import RolloutConfig, load_config, parse_config
from trustramp.errors import LockTimeout, TrustrampError

if TYPE_CHECKING:
    from trustramp.ingest import IngestReport
    from trustramp.notify import NotifyReport
    from trustramp.pipeline import EvaluationResult

log = logging.getLogger(__name__)

__all__ = [
    "FLOWS",
    "IO_RETRY",
    "NightlyResult",
    "PublishOutcome",
    "artifact_key",
    "criteria_rows",
    "effective_config",
    "find_flows_dir",
    "is_transient",
    "load_flow",
    "prefect_requested",
    "quiet_telemetry",
    "retry_if_transient",
    "run_flow",
    "verdict_markdown",
]

FLOWS: dict[str, tuple[str, str]] = {
    "ingest": ("ingest_flow.py", "ingest_flow"),
    "evaluate": ("evaluate_flow.py", "evaluate_flow"),
    "publish": ("publish_flow.py", "publish_flow"),
    "nightly": ("nightly.py", "nightly"),
    "nightly-spark": ("nightly_spark.py", "nightly_spark"),
}
"""Flow name -> (file in `flows/`, function)."""

TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # A loaded 2-core machine needs more than the default 20 s to start the temporary server.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def quiet_telemetry() -> None:
    """Turn off Prefect's and Great Expectations' telemetry (must run before they are imported).

    Values the user set already are kept.
    """
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def prefect_requested(flag: bool = False) -> bool:
    """Whether to run through Prefect: `--prefect` was given, or a server is configured."""
    return bool(flag) or bool(os.environ.get("PREFECT_API_URL", "").strip())


def find_flows_dir() -> Path:
    """The project's `flows/` folder: `TRUSTRAMP_FLOWS_DIR`, else beside `src/` of this checkout,
    else `./flows`.

    Raises
    ------
    TrustrampError
        When none of them holds the flow files.
    """
    candidates = []
    if os.environ.get("TRUSTRAMP_FLOWS_DIR"):
        candidates.append(Path(os.environ["TRUSTRAMP_FLOWS_DIR"]))
    candidates += [Path(__file__).resolve().parents[2] / "flows", Path.cwd() / "flows"]
    for c in candidates:
        if all((c / file).is_file() for file, _ in FLOWS.values()):
            return c.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise TrustrampError(
        f"cannot find the Prefect flows (looked in {tried}); run from the trustramp project "
        "folder or set TRUSTRAMP_FLOWS_DIR to its flows/ folder"
    )


def _load_module(path: Path) -> ModuleType:
    """Import a flow file under its plain name, as Prefect's own loader lets them import each other."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.import_module(path.stem)
    if Path(module.__file__ or "").resolve() != path.resolve():
        raise TrustrampError(
            f"module {path.stem!r} resolves to {module.__file__}, not {path}; a module of the "
            "same name shadows the flow file"
        )
    return module


def load_flow(name: str) -> Any:
    """The Prefect flow object called `name` (one of `FLOWS`), loaded from the flows folder."""
    if name not in FLOWS:
        raise TrustrampError(f"unknown flow {name!r}; expected one of {', '.join(FLOWS)}")
    quiet_telemetry()
    file, function = FLOWS[name]
    module = _load_module(find_flows_dir() / file)
    return getattr(module, function)


def run_flow(name: str, **params: Any) -> Any:
    """Run flow `name` with `params` and return what it returns (the pipeline's result objects).

    `ingest` returns an `IngestReport`, `evaluate` an `EvaluationResult`, `publish` a
    `PublishOutcome`, `nightly` a `NightlyResult`. A failed run raises its exception (a
    `TrustrampError` stays one, so the CLI's exit codes hold).
    """
    flow = load_flow(name)
    log.info("running Prefect flow %s", name)
    return flow(**params)


# -- what the flows return (besides the pipeline's own results) ------------------------------------


@dataclass
class PublishOutcome:
    """What the publish flow did for one evaluation.

    Attributes
    ----------
    report : Path or None
        The readiness report (`readiness.html`), or None while the report step is not wired.
    index : Path or None
        The index page of past runs (`reports/index.html`), when it exists.
    wired : bool
        False while `trustramp.pipeline.publish` does not exist yet (nothing was rendered).
    notifications : NotifyReport
        What was sent, skipped as still open, or failed.
    """

    report: Path | None
    index: Path | None
    wired: bool
    notifications: NotifyReport


@dataclass
class NightlyResult:
    """What the nightly flow did: the ingest, and per feature its evaluation and publication."""

    ingest: IngestReport
    evaluations: dict[str, EvaluationResult] = field(default_factory=dict)
    published: dict[str, PublishOutcome] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """Per feature whose evaluation or publication broke, the error."""
    no_data: dict[str, str] = field(default_factory=dict)
    """Per feature without predictions in the window (not a failure), the message."""

    def __repr__(self) -> str:  # the full results are large; show what a person checks first
        verdicts = {f: r.verdict.verdict.value for f, r in self.evaluations.items()}
        return (
            f"NightlyResult(files={len(self.ingest.files)}, "
            f"failed_files={len(self.ingest.failed)}, verdicts={verdicts}, "
            f"no_data={sorted(self.no_data)}, failures={self.failures})"
        )


# -- helpers the flows use -------------------------------------------------------------------------


def is_transient(exc: BaseException | None) -> bool:
    """Worth retrying: an I/O failure or another writer holding the lock, not a logic error."""
    if exc is None:
        return False
    if isinstance(exc, LockTimeout):
        return True
    if isinstance(exc, TrustrampError):
        return False
    return isinstance(exc, OSError)


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect `retry_condition_fn`: retry a failed task run only on a transient error."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # the result itself could not be read
        exc = e
    return is_transient(exc if isinstance(exc, BaseException) else None)


IO_RETRY: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [10, 30, 90],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}
"""Task options of the I/O tasks (reading inputs, writing outputs): bounded retries, back-off."""


def effective_config(
    config: str | Path | RolloutConfig | None = None,
    *,
    feature: str | None = None,
    window_days: int | None = None,
) -> RolloutConfig:
    """The config a run uses: the file (or the defaults), with the feature and window overridden.

    >>> effective_config(None, feature="x", window_days=7).statistics.window_days
    7
    """
    cfg = config if isinstance(config, RolloutConfig) else load_config(config)
    new_feature = bool(feature) and feature != cfg.feature
    new_window = window_days is not None and window_days != cfg.statistics.window_days
    if not (new_feature or new_window):
        return cfg
    data = cfg.model_dump(mode="json")
    if new_feature:
        data["feature"] = feature
    if new_window:
        data["statistics"]["window_days"] = window_days
    # Through parse_config, so a bad override is a ConfigError that names the key.
    return parse_config(data, source="run parameters")


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def _num(x: Any) -> str:
    if x is None:
        return "n/a"
    x = float(x)
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:,.0f}"


def _md(text: Any) -> str:
    """Data that goes into markdown: no HTML, no table breaks."""
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\n", " ")
    )


def verdict_markdown(verdict: Mapping[str, Any], *, report: str | None = None) -> str:
    """A markdown summary of a `verdict.json` document: verdict, reasons, alerts, data window."""
    data = verdict.get("data", {})
    step = f" {verdict['step']}%" if verdict.get("step") else ""
    lines = [
        f"# {_md(verdict['feature'])}: **{verdict['verdict']}**",
        "",
        f"Phase **{_md(verdict['phase'])}{step}** as of {verdict['as_of']}; "
        f"next: {_md(verdict['next']['phase'])}"
        + (f" {verdict['next']['step']}%" if verdict["next"].get("step") else "")
        + ".",
        "",
        "## Why",
        *[f"- {_md(r)}" for r in verdict.get("reasons", [])],
        "",
    ]
    firing = [a for a in verdict.get("alerts", []) if a.get("level")]
    lines.append(f"## Alerts ({len(firing)} firing)")
    if firing:
        lines += [
            "",
            "| level | metric | segment | value | threshold | action |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {a['level']} | {_md(a['metric'])} | {_md(a['segment'])} | {_num(a.get('value'))} "
            f"| {_num(a.get('threshold'))} | {_md(a.get('action', ''))} |"
            for a in firing
        ]
    else:
        lines.append("None firing.")
    fired = [t for t in verdict.get("rollback_triggers", []) if t.get("fired")]
    if fired:
        lines += ["", "## Rollback triggers fired"]
        lines += [f"- **{_md(t['trigger'])}**: {_md(t.get('evidence', ''))}" for t in fired]
    lines += [
        "",
        "## Data",
        f"Window {data.get('window_start')} .. {data.get('window_end')}: "
        f"{data.get('predictions', 0):,} predictions, {data.get('labeled', 0):,} labeled "
        f"(coverage {_pct(data.get('label_coverage'))}), {data.get('quarantined', 0):,} "
        "rows quarantined.",
        "",
        f"Config hash `{verdict.get('config_hash')}`, trustramp {verdict.get('trustramp_version')}.",
    ]
    if report:
        lines += ["", f"Report: {report}"]
    return "\n".join(lines) + "\n"


def criteria_rows(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The phase criteria as table rows (for a Prefect table artifact)."""
    keys = (
        "name",
        "metric",
        "segment",
        "comparator",
        "threshold",
        "value",
        "ci_low",
        "ci_high",
        "n",
        "outcome",
    )
    return [{k: c.get(k) for k in keys} for c in verdict.get("criteria", [])]


def artifact_key(*parts: str | dt.date) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes) from names and dates."""
    raw = "-".join(str(p) for p in parts).lower()
    key = "".join(ch if ch.isalnum() and ch.isascii() else "-" for ch in raw)
    return "-".join(filter(None, key.split("-")))[:100] or "trustramp"
