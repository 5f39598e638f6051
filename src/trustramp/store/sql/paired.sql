-- Paired comparison of two model versions on the same labeled, unshown items (McNemar's table).
-- Grain: one row per (candidate correct, previous correct). Parameters: $feature, $start, $end,
-- $candidate, $previous.
WITH preds AS (
  SELECT item_key, item_id, model_version, predicted_label
  FROM predictions
  WHERE feature = $feature AND date BETWEEN $start AND $end AND mode = 'shadow'
    AND status NOT IN ('error', 'timeout') AND model_version IN ($candidate, $previous)
),
latest AS (
  SELECT item_key, item_id, arg_max(human_label, (decided_at, decision_id)) AS human_label
  FROM decisions
  WHERE feature IN ($feature, '_unmatched') AND item_key IN (SELECT item_key FROM preds)
  GROUP BY item_key, item_id
),
per_item AS (
  SELECT p.item_key, p.item_id,
         bool_or(p.predicted_label = l.human_label) FILTER (WHERE p.model_version = $candidate) AS cand,
         bool_or(p.predicted_label = l.human_label) FILTER (WHERE p.model_version = $previous) AS prev
  FROM preds p JOIN latest l ON l.item_key = p.item_key AND l.item_id = p.item_id
  GROUP BY p.item_key, p.item_id
)
SELECT cand, prev, count(*) AS n FROM per_item
WHERE cand IS NOT NULL AND prev IS NOT NULL
GROUP BY ALL
