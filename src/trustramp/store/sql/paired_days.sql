-- Paired comparison of every two model versions on the same labeled, unshown items of one day
-- (McNemar's table; an item is (item_key, id_hash), its hit the OR over its predictions by that
-- version that day). Grain: day x version_a x version_b x hit_a x hit_b, version_a < version_b.
-- Reads `joined` (joined.sql). Pairs are formed within a prediction day: summing days gives the
-- window's table for items whose two versions predicted them on the same day.
WITH per_item AS (
  SELECT day, item_key, id_hash, model_version, bool_or(human_label = predicted_label) AS hit
  FROM joined
  WHERE mode = 'shadow' AND NOT failed AND human_label IS NOT NULL
  GROUP BY day, item_key, id_hash, model_version
)
SELECT a.day, a.model_version AS version_a, b.model_version AS version_b,
       a.hit AS hit_a, b.hit AS hit_b, count(*) AS n
FROM per_item a
JOIN per_item b ON a.day = b.day AND a.item_key = b.item_key AND a.id_hash = b.id_hash
  AND a.model_version < b.model_version
WHERE a.hit IS NOT NULL AND b.hit IS NOT NULL
GROUP BY a.day, a.model_version, b.model_version, a.hit, b.hit
