-- The recalibration sample's candidates: per version and day, the $cap labeled, unshown,
-- successful predictions with a confidence whose sample key is smallest. The key is the item's
-- md5 key (item_key, the lower 64 bits of md5(item_id), so the same on every engine) shifted by
-- the seed: (item_key mod 2^63 + $shift) mod 2^63. Summing days keeps the smallest keys overall
-- (`aggregates.labeled_sample`). Keys are uniform, so only the rows below a cut that keeps about
-- $margin x $cap (1.25x) of each version-day are sorted; `n` and `kept` (the group's rows, and its rows
-- under the cut) let the caller check that the cut kept at least min($cap, n) (else it runs the
-- query again with $margin = 0: no cut). Grain: one row per prediction, at most $cap per version
-- and day. Reads `joined` (joined.sql). Parameters: $shift (0 <= shift < 2^63), $cap, $margin.
WITH keyed AS (  -- (k + $shift) mod 2^63 in BIGINT, without a wider type (10x cheaper on DuckDB)
  SELECT model_version, day, confidence, correct,
         CASE WHEN k > 9223372036854775807 - $shift THEN k - (9223372036854775807 - $shift) - 1
              ELSE k + $shift END AS sample_key
  FROM (
    SELECT model_version, day, confidence,
           CAST(human_label = predicted_label AS INTEGER) AS correct,
           CAST(item_key % 9223372036854775808 AS BIGINT) AS k
    FROM joined
    WHERE mode = 'shadow' AND NOT failed AND human_label IS NOT NULL AND confidence IS NOT NULL
  ) labeled
),
sizes AS (
  SELECT model_version, day, count(*) AS n,
         CASE WHEN $margin <= 0 OR count(*) <= $cap THEN 9.3e18
              ELSE 9223372036854775807.0 * ($margin * $cap / count(*)) END AS cut
  FROM keyed
  GROUP BY model_version, day
),
under AS (
  SELECT k.model_version, k.day, k.confidence, k.correct, k.sample_key, s.n,
         count(*) OVER (PARTITION BY k.model_version, k.day) AS kept,
         row_number() OVER (PARTITION BY k.model_version, k.day ORDER BY k.sample_key) AS r
  FROM keyed k JOIN sizes s ON s.model_version = k.model_version AND s.day = k.day
  WHERE k.sample_key < s.cut
)
SELECT model_version, day, confidence, correct, sample_key, n, kept
FROM under
WHERE r <= $cap
