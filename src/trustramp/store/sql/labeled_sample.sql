-- A bounded, reproducible sample of one version's labeled, unshown predictions (for fitting a
-- recalibration map: at most $limit rows, never the whole log). Grain: one row per prediction.
-- Parameters: $feature, $start, $end, $version, $limit, $seed.
WITH latest AS (
  SELECT item_key, item_id, arg_max(human_label, (decided_at, decision_id)) AS human_label
  FROM decisions WHERE feature IN ($feature, '_unmatched') GROUP BY item_key, item_id
),
labeled AS (
  SELECT p.confidence, CAST(l.human_label = p.predicted_label AS INTEGER) AS correct, p.item_key
  FROM predictions p JOIN latest l ON l.item_key = p.item_key AND l.item_id = p.item_id
  WHERE p.feature = $feature AND p.date BETWEEN $start AND $end AND p.model_version = $version
    AND p.mode = 'shadow' AND p.status NOT IN ('error', 'timeout') AND p.confidence IS NOT NULL
)
SELECT confidence, correct, item_key FROM labeled
ORDER BY hash(item_key + $seed)
LIMIT $limit
