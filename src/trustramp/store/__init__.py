"""The lake and its engines: the Parquet lake under HOME (files, commit records, catalog, writer
lock), DuckDB connections, the stage-1 SQL statistics (`aggregates`, `sql/*.sql`) and their day
cache, the published outputs, and the optional Spark engine.

Besides ingest's staging (which writes a run's new lake parts through `store.duck` and
`store.lake`), the only package that talks to DuckDB or writes Parquet. It imports duckdb,
pyarrow, pandas, sqlglot (and pyspark when installed), and of trustramp only `contract`,
`errors` and `metrics` (the log-loss clipping constant); never `trustramp.ingest`, the pipeline
or Prefect.
"""
