"""Plain-Python pipeline steps: ingest(), evaluate(), publish(). No Prefect here.

The CLI, the Prefect flows in `flows/`, tests and notebooks all call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from trustramp.config import RolloutConfig, load_config
from trustramp.ingest import IngestReport, ingest_paths

log = logging.getLogger(__name__)


def configured_segments(configs: Sequence[RolloutConfig]) -> list[str]:
    """The union of the configs' segment lists, in first-seen order."""
    seen: dict[str, None] = {}
    for cfg in configs:
        seen.update(dict.fromkeys(cfg.segments))
    return list(seen)


def ingest(
    paths: Sequence[str | Path],
    *,
    home: str | Path,
    kind: str | None = None,
    configs: Sequence[str | Path | RolloutConfig] = (),
    wait_seconds: float = 600.0,
    memory_limit: str | None = None,
    progress: Callable[[int, int, Path], None] | None = None,
) -> IngestReport:
    """Ingest files or folders into the lake at `home` (see `trustramp.ingest.ingest_paths`)."""
    loaded = [c if isinstance(c, RolloutConfig) else load_config(c) for c in configs] or [
        load_config(None)
    ]
    return ingest_paths(
        paths,
        home,
        kind=kind,
        segments=configured_segments(loaded),
        wait_seconds=wait_seconds,
        memory_limit=memory_limit,
        on_file=progress,
    )


def run_demo(*, out: Path, rows: int, seed: int, home: Path, reports: Path) -> list[str]:
    """Generate the demo dataset, ingest it, and return the summary lines to show."""
    import yaml

    from trustramp.demo import demo_config, generate

    manifest = generate(out, n_predictions=rows, seed=seed)
    cfg_path = out / "rollout.yaml"
    cfg_path.write_text(yaml.safe_dump(demo_config(manifest), sort_keys=False), "utf-8")
    report = ingest([out], home=home, configs=[cfg_path])
    lines = [
        f"demo data: {sum(manifest.counts.values()):,} rows in {out} "
        f"({manifest.start} .. {manifest.end}, seed {seed})"
    ]
    lines += report.summary_lines()
    lines.append("planted effects:")
    lines += [f"  {name}: {text}" for name, text in manifest.planted.items()]
    lines.append(f"lake and catalog: {Path(home).resolve()}")
    return lines
