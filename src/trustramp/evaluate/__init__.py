"""Evaluate: turning the day statistics into evidence, a verdict's inputs, the metrics table,
the recommended thresholds and the run's outputs. `trustramp.pipeline.evaluate` sequences the
stages; each file here is one of them, in the order a run takes them:

1. `windows`      which days and which items: the windows, the version to certify, the
                  certified population (unshown items of that version in the gate window);
2. `stage1`       read from the store: refresh the day cache, load the window's day statistics
                  (`store.aggregates.Aggregates`) and the run's records (feedback, incidents,
                  slices, ingest commits, quarantine);
3. `evidence`     the verdict's evidence (counts with customers as clusters, calibration, last
                  24 h, drift, bias, regression); `trustramp.decide` then decides the verdict;
4. `table`        the tidy metrics table (metrics.parquet), and `gate_metrics` the certified
                  population's own rows (clustered accuracy, ECE variants, fairness, automation
                  bias) and the slice audits;
5. `thresholds`   the recommended routing thresholds (thresholds.yaml), with a recalibration map
                  when calibration is poor;
6. `outputs`      write verdict.json, metrics.parquet, thresholds.yaml and readiness.html into
                  the run folder, publish it, record the run, rewrite the index.
`results` holds what the pipeline's entry points return.

May import pandas/numpy, `trustramp.metrics`, `trustramp.decide`, `trustramp.config`,
`trustramp.contract`, `trustramp.store` (reading the day statistics and the catalog, and the
outputs' writers) and `trustramp.report` (rendering the page); never Prefect, never
`trustramp.pipeline`. DuckDB only through `trustramp.store`. The modules import one another
downwards only: windows <- table <- evidence <- gate_metrics, thresholds <- outputs; stage1 on
windows; results on nothing here.

The public names below are re-exported lazily (PEP 562): importing one module of the package
(`trustramp.pipeline` imports `results`) does not load the others and the statistics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trustramp.evaluate.evidence import (
        build_evidence,
        calibration_evidence,
        confidence_drift,
        gate_evidence,
        miscalibrated,
        rolling_by_version,
    )
    from trustramp.evaluate.gate_metrics import gate_metric_rows, gate_rows, slice_audits
    from trustramp.evaluate.outputs import (
        RunResults,
        publish_outputs,
        report_inputs,
        write_run_files,
    )
    from trustramp.evaluate.results import (
        EvaluationResult,
        NoDataResult,
        ThresholdsResult,
        WhatIfResult,
    )
    from trustramp.evaluate.stage1 import (
        RunRecords,
        load_day_statistics,
        open_home,
        read_run_records,
    )
    from trustramp.evaluate.table import METRIC_COLUMNS, metrics_table, run_metrics_table
    from trustramp.evaluate.thresholds import (
        Thresholds,
        fit_recalibration_if_miscalibrated,
        grid_frame,
        recommend,
        run_thresholds,
    )
    from trustramp.evaluate.windows import (
        GatePopulation,
        Windows,
        choose_versions,
        gate_population,
        windows_for,
    )

_HOMES = {
    "windows": (
        "GatePopulation",
        "Windows",
        "choose_versions",
        "gate_population",
        "windows_for",
    ),
    "stage1": ("RunRecords", "load_day_statistics", "open_home", "read_run_records"),
    "evidence": (
        "build_evidence",
        "calibration_evidence",
        "confidence_drift",
        "gate_evidence",
        "miscalibrated",
        "rolling_by_version",
    ),
    "table": ("METRIC_COLUMNS", "metrics_table", "run_metrics_table"),
    "gate_metrics": ("gate_metric_rows", "gate_rows", "slice_audits"),
    "thresholds": (
        "Thresholds",
        "fit_recalibration_if_miscalibrated",
        "grid_frame",
        "recommend",
        "run_thresholds",
    ),
    "outputs": ("RunResults", "publish_outputs", "report_inputs", "write_run_files"),
    "results": ("EvaluationResult", "NoDataResult", "ThresholdsResult", "WhatIfResult"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "METRIC_COLUMNS",
    "EvaluationResult",
    "GatePopulation",
    "NoDataResult",
    "RunRecords",
    "RunResults",
    "Thresholds",
    "ThresholdsResult",
    "WhatIfResult",
    "Windows",
    "build_evidence",
    "calibration_evidence",
    "choose_versions",
    "confidence_drift",
    "fit_recalibration_if_miscalibrated",
    "gate_evidence",
    "gate_metric_rows",
    "gate_population",
    "gate_rows",
    "grid_frame",
    "load_day_statistics",
    "metrics_table",
    "miscalibrated",
    "open_home",
    "publish_outputs",
    "read_run_records",
    "recommend",
    "report_inputs",
    "rolling_by_version",
    "run_metrics_table",
    "run_thresholds",
    "slice_audits",
    "windows_for",
    "write_run_files",
]


def __getattr__(name: str) -> object:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
