"""Prefect flow `nightly`: ingest the landing folder, then evaluate and publish every feature.

One broken feature does not stop the others; the run ends Failed (after all of them) when a
feature's evaluation or publication broke, or an input file could not be read. The per-feature
steps here (`feature_configs`, `evaluate_and_publish_each`, `raise_if_features_broke`,
`raise_if_files_unread`) serve `nightly-spark` too.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from evaluate_flow import evaluate_flow
from ingest_flow import ingest_flow
from prefect import flow, get_run_logger
from publish_flow import publish_flow
from pydantic import Field

from trustramp.config import load_config
from trustramp.errors import ConfigError, InputFileError, TrustrampError
from trustramp.orchestrate import NightlyResult
from trustramp.pipeline import NoDataResult

Landing = Annotated[Path, Field(description="Folder where the day's log files land.")]
Configs = Annotated[
    list[Path] | None, Field(description="One rollout config per feature (default: playbook).")
]
HomeFolder = Annotated[Path, Field(description="trustramp home: lake and catalog.")]
Reports = Annotated[Path, Field(description="Folder for per-run outputs.")]
AsOf = Annotated[dt.date | None, Field(description="Default: yesterday, UTC.")]
WaitSeconds = Annotated[float, Field(ge=0)]
"""The nightly flows' parameters (`nightly` and `nightly-spark` take the same ones)."""


def feature_configs(configs: list[Path] | None) -> tuple[list[Path | None], list[str]]:
    """The config paths (None: the playbook) and the feature each configures, all different."""
    paths = list(configs or []) or [None]
    features = [load_config(p).feature for p in paths]
    if len(set(features)) < len(features):
        raise ConfigError(f"configs: two files configure the same feature ({features})")
    return paths, features


def evaluate_and_publish_each(
    out: NightlyResult,
    paths: list[Path | None],
    features: list[str],
    *,
    as_of: dt.date | None,
    home: Path,
    reports: Path,
    wait_seconds: float,
) -> None:
    """Evaluate and publish every feature, recording each outcome in `out`; one that breaks is
    logged and recorded, and the others still run."""
    for path, feature in zip(paths, features, strict=True):
        state = evaluate_flow(
            config=path,
            as_of=as_of,
            home=home,
            reports=reports,
            publish=False,
            wait_seconds=wait_seconds,
            return_state=True,
        )
        if state.is_completed() and isinstance(result := state.result(), NoDataResult):
            out.no_data[feature] = result.message  # nothing to evaluate is not a failure
            get_run_logger().warning("%s: %s", feature, result.message)
            continue
        if state.is_completed():
            out.evaluations[feature] = result
            pub = publish_flow(result, config=path, home=home, reports=reports, return_state=True)
            if pub.is_completed():
                out.published[feature] = pub.result()
                continue
            state = pub
        out.failures[feature] = str(state.message or state.name)
        get_run_logger().error("%s: %s", feature, out.failures[feature])


def raise_if_features_broke(flow_name: str, out: NightlyResult, n_features: int) -> None:
    """Fail the run, naming each feature whose evaluation or publication broke."""
    if out.failures:
        raise TrustrampError(
            f"{flow_name}: {len(out.failures)} of {n_features} features broke: "
            + "; ".join(f"{f}: {m}" for f, m in out.failures.items())
        )


def raise_if_files_unread(flow_name: str, out: NightlyResult) -> None:
    """Fail the run, naming each input file the ingest could not read."""
    if out.ingest.failed:
        raise InputFileError(
            f"{flow_name}: {len(out.ingest.failed)} input files could not be read: "
            + "; ".join(f"{f.path}: {f.error}" for f in out.ingest.failed)
        )


@flow(name="nightly")
def nightly(
    landing: Landing = Path("data/landing"),
    configs: Configs = None,
    home: HomeFolder = Path("data"),
    reports: Reports = Path("reports"),
    as_of: AsOf = None,
    wait_seconds: WaitSeconds = 600.0,
) -> NightlyResult:
    """Ingest, then for every configured feature: evaluate, report, notify."""
    paths, features = feature_configs(configs)
    out = NightlyResult(
        ingest_flow([landing], home=home, configs=list(configs or []), wait_seconds=wait_seconds)
    )
    evaluate_and_publish_each(
        out, paths, features, as_of=as_of, home=home, reports=reports, wait_seconds=wait_seconds
    )
    raise_if_features_broke("nightly", out, len(paths))
    raise_if_files_unread("nightly", out)
    return out
