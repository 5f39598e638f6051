-- The thresholds' grid per customer for one version's unshown predictions (labeled counts and all
-- items). Grain: customer_id x grid cell. Parameters: $feature, $start, $end, $version,
-- $grid_scale, $n_grid.
WITH latest AS (
  SELECT item_key, item_id, arg_max(human_label, (decided_at, decision_id)) AS human_label
  FROM decisions WHERE feature IN ($feature, '_unmatched') GROUP BY item_key, item_id
)
SELECT p.customer_id,
       CAST(least(floor(round(p.confidence * 1e6) / $grid_scale), $n_grid - 1) AS INTEGER) AS grid_bin,
       count(l.human_label) AS labeled,
       count(*) FILTER (WHERE l.human_label = p.predicted_label) AS correct,
       count(*) AS n
FROM predictions p LEFT JOIN latest l ON l.item_key = p.item_key AND l.item_id = p.item_id
WHERE p.feature = $feature AND p.date BETWEEN $start AND $end AND p.model_version = $version
  AND p.mode = 'shadow' AND p.status NOT IN ('error', 'timeout') AND p.confidence IS NOT NULL
GROUP BY ALL
