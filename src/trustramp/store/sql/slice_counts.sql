-- Accuracy counts of one version's labeled unshown predictions per value of one slice column
-- (a non-contract column, kept in _extra). The JSON path is a bound parameter, never formatted in.
-- Grain: one row per slice value. Parameters: $feature, $start, $end, $version, $path.
WITH latest AS (
  SELECT item_key, item_id, arg_max(human_label, (decided_at, decision_id)) AS human_label
  FROM decisions WHERE feature IN ($feature, '_unmatched') GROUP BY item_key, item_id
)
SELECT json_extract_string(p._extra, $path) AS value,
       count(*) FILTER (WHERE l.human_label = p.predicted_label) AS k, count(*) AS n
FROM predictions p JOIN latest l ON l.item_key = p.item_key AND l.item_id = p.item_id
WHERE p.feature = $feature AND p.date BETWEEN $start AND $end AND p.model_version = $version
  AND p.mode = 'shadow' AND p.status NOT IN ('error', 'timeout') AND p.confidence IS NOT NULL
GROUP BY ALL
