-- The rows behind the gate window's population queries (paired, equal-mass, customer grid,
-- class-wise, labeled sample), joined to their latest decision once per evaluation and kept in a
-- temporary table: the unshown (shadow), successful predictions of some model versions.
-- Grain: one row per prediction; `labeled`: its item has a decision; `hit`: the decision equals
-- the predicted label (NULL when unlabeled); human_label is kept only where class-wise bins
-- need it (rows with class_probabilities), to keep the table narrow.
-- Parameters: $feature, $start, $end (dates, inclusive), $versions (a list of model versions).
-- `latest` is latest_decisions.sql, restricted to these predictions' items.
WITH __LATEST__
SELECT p.model_version, p.item_key, hash(p.item_id) AS id_hash, p.prediction_id, p.customer_id,
       p.confidence, l.human_label IS NOT NULL AS labeled, l.human_label = p.predicted_label AS hit,
       p.class_probabilities,
       CASE WHEN p.class_probabilities IS NOT NULL THEN l.human_label END AS human_label
FROM predictions p
LEFT JOIN latest l ON l.item_key = p.item_key AND l.id_hash = hash(p.item_id)
WHERE p.feature = $feature AND p.date BETWEEN $start AND $end
  AND list_contains($versions, p.model_version)
  AND p.mode = 'shadow' AND p.status NOT IN ('error', 'timeout')
