"""The metrics package as a whole: its public API, its examples, its dependency direction."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import trustramp.metrics as metrics

MODULES = ["intervals", "calibration", "agreement", "drift", "latency", "bias", "comparison"]


def test_public_names_exist() -> None:
    missing = [name for name in metrics.__all__ if not hasattr(metrics, name)]
    assert not missing
    assert len(set(metrics.__all__)) == len(metrics.__all__)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_hold(module: str) -> None:
    mod = importlib.import_module(f"trustramp.metrics.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize("module", MODULES)
def test_public_functions_have_docstrings(module: str) -> None:
    mod = importlib.import_module(f"trustramp.metrics.{module}")
    for name in mod.__all__:
        obj = getattr(mod, name)
        if callable(obj):
            assert obj.__doc__, f"{module}.{name} has no docstring"


def test_metrics_import_only_numpy_scipy_pandas() -> None:
    code = (
        "import sys, trustramp.metrics\n"
        "bad = [m for m in ('duckdb', 'prefect', 'sklearn', 'statsmodels', 'great_expectations'"
        ") if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
