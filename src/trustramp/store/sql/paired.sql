-- Paired comparison of two model versions on the same labeled, unshown items (McNemar's table).
-- Grain: one row per (candidate correct, previous correct). Reads the temporary `gate_rows`
-- (gate_rows.sql; an item is (item_key, id_hash)). Parameters: $candidate, $previous.
WITH per_item AS (
  SELECT item_key, id_hash,
         bool_or(hit) FILTER (WHERE model_version = $candidate) AS cand,
         bool_or(hit) FILTER (WHERE model_version = $previous) AS prev
  FROM gate_rows
  WHERE labeled AND model_version IN ($candidate, $previous)
  GROUP BY item_key, id_hash
)
SELECT cand, prev, count(*) AS n FROM per_item
WHERE cand IS NOT NULL AND prev IS NOT NULL
GROUP BY ALL
