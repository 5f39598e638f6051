-- Equal-mass calibration bins for one population: stable sort by confidence, then M near-equal
-- contiguous groups (the first groups one larger, as numpy.array_split). Grain: one row per group.
-- Reads the temporary `gate_rows` (gate_rows.sql). Parameters: $version, $bins.
WITH labeled AS (
  SELECT confidence, hit, prediction_id
  FROM gate_rows
  WHERE model_version = $version AND labeled AND confidence IS NOT NULL
)
SELECT grp, count(*) AS n, count(*) FILTER (WHERE hit) AS correct, sum(confidence) AS conf_sum
FROM (SELECT confidence, hit,
             ntile($bins) OVER (ORDER BY confidence, prediction_id) - 1 AS grp FROM labeled)
GROUP BY grp ORDER BY grp
