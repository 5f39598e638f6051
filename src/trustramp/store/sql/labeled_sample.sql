-- A bounded, reproducible sample of one version's labeled, unshown predictions (for fitting a
-- recalibration map: at most $limit rows, never the whole log). Grain: one row per prediction.
-- Reads the temporary `gate_rows` (gate_rows.sql). Parameters: $version, $limit, $seed.
SELECT confidence, CAST(hit AS INTEGER) AS correct, item_key
FROM gate_rows
WHERE model_version = $version AND labeled AND confidence IS NOT NULL
ORDER BY hash(item_key + $seed)
LIMIT $limit
