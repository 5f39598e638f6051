"""Prefect flow `nightly`: ingest the landing folder, then evaluate and publish every feature.

One broken feature does not stop the others; the run ends Failed (after all of them) when a
feature's evaluation or publication broke, or an input file could not be read.
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


@flow(name="nightly")
def nightly(
    landing: Annotated[Path, Field(description="Folder where the day's log files land.")] = Path(
        "data/landing"
    ),
    configs: Annotated[
        list[Path] | None, Field(description="One rollout config per feature (default: playbook).")
    ] = None,
    home: Annotated[Path, Field(description="trustramp home: lake and catalog.")] = Path("data"),
    reports: Annotated[Path, Field(description="Folder for per-run outputs.")] = Path("reports"),
    as_of: Annotated[dt.date | None, Field(description="Default: yesterday, UTC.")] = None,
    wait_seconds: Annotated[float, Field(ge=0)] = 600.0,
) -> NightlyResult:
    """Ingest, then for every configured feature: evaluate, report, notify."""
    paths = list(configs or []) or [None]
    features = [load_config(p).feature for p in paths]
    if len(set(features)) < len(features):
        raise ConfigError(f"configs: two files configure the same feature ({features})")
    out = NightlyResult(
        ingest_flow([landing], home=home, configs=list(configs or []), wait_seconds=wait_seconds)
    )
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
    if out.failures:
        raise TrustrampError(
            f"nightly: {len(out.failures)} of {len(paths)} features broke: "
            + "; ".join(f"{f}: {m}" for f, m in out.failures.items())
        )
    if out.ingest.failed:
        raise InputFileError(
            f"nightly: {len(out.ingest.failed)} input files could not be read: "
            + "; ".join(f"{f.path}: {f.error}" for f in out.ingest.failed)
        )
    return out
