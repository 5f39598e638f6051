"""Stage lines: what runs, on how many rows, in how many seconds (`trustramp.progress`).

Shown with `-v`, and on a terminal. The pipeline's entry points and the stages of `evaluate/` log
through `stage`; this module imports nothing of trustramp's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

progress_log = logging.getLogger("trustramp.progress")
"""Stage lines (what runs, rows, seconds): shown with `-v`, and on a terminal."""


@contextmanager
def stage(name: str, **details: object) -> Iterator[dict[str, object]]:
    """Log a stage line on the way out: `name: k v, ..., 1.2 s` (details may be added inside)."""
    t0 = time.perf_counter()
    yield details
    parts = [f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in details.items()]
    progress_log.info("%s: %s", name, ", ".join([*parts, f"{time.perf_counter() - t0:.1f} s"]))


def _fmt(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
