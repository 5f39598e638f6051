"""The columns of lake files: the DuckDB type of each contract column type, and the columns a lake
file of a kind stores (the contract's columns, and the ones ingest adds).

Imports only `trustramp.contract`: both the lake's readers (`store.lake`, `store.spark`) and
ingest's row checks (`ingest.checks`) derive their columns from here.
"""

from __future__ import annotations

from trustramp.contract import (
    DECIDED_BEFORE,
    EXTRA,
    ITEM_KEY,
    PRED_FIRST,
    PRED_LAST,
    ROW_HASH,
    ColType,
    Kind,
    Schema,
)

DUCK_TYPES = {
    ColType.STRING: "VARCHAR",
    ColType.ENUM: "VARCHAR",
    ColType.JSON: "VARCHAR",
    ColType.FLOAT: "DOUBLE",
    ColType.INT: "BIGINT",
    ColType.TIMESTAMP: "TIMESTAMPTZ",
}


def lake_columns(schema: Schema) -> list[tuple[str, str]]:
    """(name, DuckDB type) of the columns stored in lake files (feature and date are partitions)."""
    cols = [(c.name, DUCK_TYPES[c.type]) for c in schema.columns if c.name != "feature"]
    return [
        *cols,
        (ITEM_KEY, "UBIGINT"),
        (ROW_HASH, "UBIGINT"),
        (EXTRA, "VARCHAR"),
        *INDEX_COLUMNS.get(schema.kind, ()),
    ]


INDEX_COLUMNS: dict[Kind, tuple[tuple[str, str], ...]] = {
    Kind.PREDICTIONS: ((DECIDED_BEFORE, "BOOLEAN"),),
    Kind.DECISIONS: ((PRED_FIRST, "DATE"), (PRED_LAST, "DATE")),
}
"""Columns ingest derives from the lake (not from the row): how stage 1 finds a chunk's decisions
(see `contract.PRED_FIRST`, `contract.DECIDED_BEFORE`). Lake files written before them lack them;
`store.lake.migrate` adds them to the decisions."""
