"""One writer at a time: an advisory `fcntl` lock on `HOME/.writer.lock`.

Readers never take it: they read committed Parquet through the catalog's views, which a writer
replaces atomically, so a reader is never blocked and never sees half a run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from trustramp.errors import LockTimeout

LOCK_NAME = ".writer.lock"


@contextlib.contextmanager
def writer_lock(home: Path, *, wait_seconds: float = 600.0, poll: float = 0.2) -> Iterator[None]:
    """Hold the writer lock of `home`, waiting up to `wait_seconds` for another writer to finish."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    raise LockTimeout(
                        f"{home}: another trustramp run holds the writer lock ({holder or 'unknown'}); "
                        f"waited {wait_seconds:g} s. Let it finish, or raise --wait."
                    ) from None
                time.sleep(poll)
        stamp = f"pid {os.getpid()} since {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, stamp.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
