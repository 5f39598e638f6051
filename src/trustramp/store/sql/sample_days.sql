-- The recalibration sample's candidates: per version and day, the $cap labeled, unshown,
-- successful predictions with a confidence whose sample key is smallest. The key is the item's
-- md5 key (item_key, the lower 64 bits of md5(item_id), so the same on every engine) shifted by
-- the seed: (item_key mod 2^63 + $shift) mod 2^63. Summing days keeps the smallest keys overall
-- (`aggregates.labeled_sample`). Grain: one row per prediction, at most $cap per version and day.
-- Reads `joined` (joined.sql). Parameters: $shift (0 <= shift < 2^63), $cap.
SELECT model_version, day, confidence, correct, sample_key
FROM (
  SELECT model_version, day, confidence, correct, sample_key,
         row_number() OVER (PARTITION BY model_version, day ORDER BY sample_key) AS r
  FROM (
    SELECT model_version, day, confidence,
           CAST(human_label = predicted_label AS INTEGER) AS correct,
           CAST((item_key % 9223372036854775808 + $shift) % 9223372036854775808 AS BIGINT) AS sample_key
    FROM joined
    WHERE mode = 'shadow' AND NOT failed AND human_label IS NOT NULL AND confidence IS NOT NULL
  ) keyed
) ranked
WHERE r <= $cap
