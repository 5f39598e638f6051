"""Installing the optional Spark engine (pyspark) leaves the rest of trustramp working."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow  # a subprocess that imports Great Expectations (~5 s)
def test_great_expectations_imports_in_a_python_c_process() -> None:
    """pyspark without grpc used to end a `python -c` process (status 0, silently) in the middle
    of Great Expectations' import: an ingest run that way did nothing and reported success."""
    code = (
        "from trustramp.ingest.expectations import _context\n"
        "ctx = _context()\n"
        "print('context', type(ctx).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert "context " in out.stdout, out.stderr[-2000:]
    assert "Skipping doctests" not in out.stderr


def test_the_duckdb_path_imports_neither_pyspark_nor_sqlglot() -> None:
    """The extra stays optional: stage 1, the day cache, the pipeline and the CLI import without
    pyspark or sqlglot (they come in only when the Spark engine is asked for)."""
    code = (
        "import sys\n"
        "import trustramp.cli, trustramp.pipeline, trustramp.store.daycache\n"
        "print(sorted(m for m in ('pyspark', 'sqlglot', 'py4j') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
