"""What a demo run hands back: the `DemoManifest`, and the rollout config for its feature."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustramp.contract import DEFAULT_SEGMENTS


@dataclass(frozen=True)
class DemoManifest:
    """What `generate` wrote, and what it planted.

    Attributes
    ----------
    out_dir : Path
        The folder holding `predictions/`, `decisions/`, `feedback/` and `incidents/`.
    feature : str
        The AI feature's name in every row.
    start, end : datetime.date
        The first and last day of predictions (UTC, inclusive).
    files : dict of str to list of Path
        Per kind (`predictions`, `decisions`, `feedback`, `incidents`), the files written.
    counts : dict of str to int
        Per kind, the rows written.
    planted : dict of str to str
        Per planted effect (`overconfident_band`, `weak_segment`, `bad_day`), a plain-words
        description with its numbers; empty when generated with `effects=False`.
    seed : int
        The seed everything was drawn from.
    fmt : str
        `csv`, `jsonl` or `parquet`.
    segments, model_versions, labels : tuple of str
        The segments, model versions (the last is the candidate) and labels used.
    stats : dict of str to float
        Realized truths of the generated data (accuracy against the true label by band and
        segment, error rates and latency p95 of the bad day and the others), for checks.
    """

    out_dir: Path
    feature: str
    start: dt.date
    end: dt.date
    files: dict[str, list[Path]]
    counts: dict[str, int]
    planted: dict[str, str]
    seed: int
    fmt: str = "csv"
    segments: tuple[str, ...] = DEFAULT_SEGMENTS
    model_versions: tuple[str, ...] = ("v1", "v2")
    labels: tuple[str, ...] = ()
    stats: dict[str, float] = field(default_factory=dict)


def demo_config(manifest: DemoManifest) -> dict[str, Any]:
    """A rollout-config mapping for the demo's feature, for `trustramp.config.parse_config`.

    The feature is in shadow since 16 days before the last day; the team's current routing
    auto-processes from 0.90 (trusting the stated confidence, which the over-confident band
    makes wrong); everything else is the playbook's default (plus the segments, when the demo
    used other than the default ones).

    Parameters
    ----------
    manifest : DemoManifest
        What `generate` returned.

    Returns
    -------
    dict
        JSON- and YAML-serializable keys: `feature`, `phase`, `phase_started` (ISO date),
        `routing` and, for non-default segments, `segments`.
    """
    if not isinstance(manifest, DemoManifest):
        raise TypeError(f"manifest must be a DemoManifest, got {type(manifest).__name__}")
    config: dict[str, Any] = {
        "feature": manifest.feature,
        "phase": "shadow",
        "phase_started": (manifest.end - dt.timedelta(days=16)).isoformat(),
        "routing": {"auto": 0.90},
    }
    if tuple(manifest.segments) != DEFAULT_SEGMENTS:
        config["segments"] = list(manifest.segments)
    return config
