-- Equal-mass calibration bins for one population: stable sort by confidence, then M near-equal
-- contiguous groups (the first groups one larger, as numpy.array_split). Grain: one row per group.
-- Parameters: $feature, $start, $end, $version, $bins.
WITH labeled AS (
  SELECT p.confidence, l.human_label = p.predicted_label AS hit, p.prediction_id
  FROM predictions p
  JOIN (SELECT item_key, item_id, arg_max(human_label, (decided_at, decision_id)) AS human_label
        FROM decisions WHERE feature IN ($feature, '_unmatched') GROUP BY item_key, item_id) l
    ON l.item_key = p.item_key AND l.item_id = p.item_id
  WHERE p.feature = $feature AND p.date BETWEEN $start AND $end AND p.model_version = $version
    AND p.mode = 'shadow' AND p.status NOT IN ('error', 'timeout') AND p.confidence IS NOT NULL
)
SELECT grp, count(*) AS n, count(*) FILTER (WHERE hit) AS correct, sum(confidence) AS conf_sum
FROM (SELECT confidence, hit,
             ntile($bins) OVER (ORDER BY confidence, prediction_id) - 1 AS grp FROM labeled)
GROUP BY grp ORDER BY grp
