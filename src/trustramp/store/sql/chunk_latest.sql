-- A chunk's latest decisions (latest_decisions.sql, restricted to the chunk's items), held by
-- the engine while the chunk's predictions are joined to them (joined.sql): streamed into
-- cells.sql, and again for the unshown rows the gate frames read (shadow.sql) when the chunk
-- needs them. Grain: one row per (item_key, id_hash). Parameters: $feature (and those of the
-- restriction).
WITH __LATEST__
SELECT item_key, id_hash, human_label, action, first_action, n_decisions
FROM latest
