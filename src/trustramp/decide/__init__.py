"""Pure decisions: phase gates, alerts, rollback triggers, threshold recommendations.

It owns what the evidence means: the verdict, its gates and checklists, the alerts, the
e-process, the recalibration fit and the routing thresholds (`thresholds/`). It imports numpy,
pandas and scipy, and of trustramp only `metrics`, `contract`, `config`, `errors` and `_dist`;
never DuckDB, Prefect, `trustramp.store` or the pipeline.
"""
