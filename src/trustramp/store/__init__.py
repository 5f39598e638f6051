"""The only package that talks to DuckDB or writes Parquet."""
