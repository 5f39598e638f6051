-- Paired comparison of model versions on the same labeled, unshown items of one day (McNemar's
-- tables): per item (item_key, id_hash) and day, the versions that predicted it (`predicted`) and
-- those whose prediction was right (`hits`; an OR over a version's predictions of the item that
-- day), as bit masks over $versions. Grain: day x predicted x hits, items of two versions or more;
-- `aggregates` expands each mask into the pairs of versions it holds. Pairs are formed within a
-- prediction day: summing days gives the window's tables for items whose versions predicted them
-- on the same day. Reads `joined` (joined.sql). Parameters: $versions (sorted, at most 62).
WITH per_item AS (
  SELECT day,
         bit_or(CAST(1 AS BIGINT) << v) AS predicted,
         bit_or(CASE WHEN hit THEN CAST(1 AS BIGINT) << v ELSE CAST(0 AS BIGINT) END) AS hits
  FROM (
    SELECT day, item_key, id_hash, CAST(list_position($versions, model_version) - 1 AS INTEGER) AS v,
           human_label = predicted_label AS hit
    FROM joined
    WHERE mode = 'shadow' AND NOT failed AND human_label IS NOT NULL
      AND predicted_label IS NOT NULL
  ) labeled
  GROUP BY day, item_key, id_hash
)
SELECT day, predicted, hits, count(*) AS n
FROM per_item
WHERE predicted & (predicted - 1) <> 0
GROUP BY day, predicted, hits
