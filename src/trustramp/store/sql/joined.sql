-- The row-level relation of stage 1: one feature's predictions of some days, each joined to its
-- item's latest decision. Streamed into cells.sql; where a chunk needs the gate frames, its
-- unshown, successful rows are held (shadow.sql: a temporary table on DuckDB, a cached view on
-- Spark) while grid.sql, paired_days.sql, mass.sql, classwise_days.sql and sample_days.sql read
-- them. In stage 1, `latest` is the chunk's latest decisions, held once for the chunk's joins
-- (chunk_latest.sql; `aggregates._chunk_frames`).
-- Grain: one row per prediction. `id_hash` is the latest decision's hash(item_id) (NULL when the
-- item has none); `class_probabilities` is kept only for unshown rows, and only when the days have
-- any (`__CLASSPROB__`: the column, or a NULL).
-- Parameters: $feature, $start, $end (dates, inclusive); `latest` is latest_decisions.sql;
-- `__PREDICTIONS__` is `predictions`, or a relation of some of them (aggregates.decision_delta).
WITH __LATEST__,
preds AS (
  SELECT item_key, item_id, model_version, segment, customer_id, mode, date, predicted_label,
         confidence, status, __CLASSPROB__ AS class_probabilities
  FROM __PREDICTIONS__
  WHERE feature = $feature AND date BETWEEN $start AND $end AND __DAYS__
)
SELECT p.model_version, p.segment, p.customer_id, p.mode, p.date AS day, p.predicted_label,
       p.confidence, p.item_key, l.id_hash, l.human_label,
       CASE WHEN p.mode = 'shadow' THEN p.class_probabilities END AS class_probabilities,
       p.status IN ('error', 'timeout') AS failed,
       p.status = 'fallback' AS fallback,
       coalesce(l.action IN ('overridden', 'edited'),
                l.human_label <> p.predicted_label) AS overridden,
       (l.first_action = 'accepted' AND l.n_decisions > 1
        AND l.human_label <> p.predicted_label) AS accepted_wrong
FROM preds p LEFT JOIN latest l ON l.item_key = p.item_key AND l.id_hash = hash(p.item_id)
