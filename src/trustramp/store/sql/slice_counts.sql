-- Accuracy counts of one version's labeled unshown predictions per value of one slice column
-- (a non-contract column, kept in _extra). The JSON path is a bound parameter, never formatted in.
-- Grain: one row per slice value. Parameters: $feature, $start, $end, $version, $path.
-- `latest` is latest_decisions.sql, restricted to the items of the population.
WITH __LATEST__
SELECT json_extract_string(p._extra, $path) AS value,
       count(*) FILTER (WHERE l.human_label = p.predicted_label) AS k, count(*) AS n
FROM predictions p JOIN latest l ON l.item_key = p.item_key AND l.id_hash = hash(p.item_id)
WHERE p.feature = $feature AND p.date BETWEEN $start AND $end AND p.model_version = $version
  AND p.mode = 'shadow' AND p.status NOT IN ('error', 'timeout') AND p.confidence IS NOT NULL
GROUP BY ALL
