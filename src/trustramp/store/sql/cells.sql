-- Sufficient statistics of one feature's predictions joined to their item's latest decision.
-- Grain (GROUPING SETS, told apart by `grouping_set`):
--   0 cells:     model_version x segment x mode x day x ece_bin x grid_bin
--   1 customers: model_version x customer_id x segment x shown x day
--   2 confusion: model_version x segment x shown x day x predicted_label x human_label
-- Parameters: $feature, $start, $end (dates, inclusive), $days (the days wanted within them),
-- $bins (ECE bins M), $grid_scale (grid step in millionths, e.g. 10000 for 0.01), $n_grid (grid
-- cells), $eps (log-loss clipping). Rows are per prediction day, so days can be cached apart.
-- Latest decision per item: greatest decided_at, ties broken by greatest decision_id (SPEC 1.1).
WITH preds AS (
  SELECT * FROM predictions
  WHERE feature = $feature AND date BETWEEN $start AND $end AND list_contains($days, date)
),
latest AS (
  SELECT item_key, item_id,
         arg_max(human_label, (decided_at, decision_id)) AS human_label,
         arg_max(action, (decided_at, decision_id)) AS action,
         arg_min(action, (decided_at, decision_id)) AS first_action,
         count(*) AS n_decisions
  FROM decisions
  WHERE feature IN ($feature, '_unmatched')
    AND item_key IN (SELECT item_key FROM preds)
  GROUP BY item_key, item_id
),
joined AS (
  SELECT p.model_version, p.segment, p.customer_id, p.mode, p.date AS day,
         p.predicted_label, p.confidence, p.status,
         p.mode <> 'shadow' AS shown,
         p.status IN ('error', 'timeout') AS failed,
         l.human_label,
         (l.human_label IS NOT NULL AND p.status NOT IN ('error', 'timeout')
          AND p.confidence IS NOT NULL) AS labeled,
         l.human_label = p.predicted_label AS hit,
         coalesce(l.action IN ('overridden', 'edited'),
                  l.human_label <> p.predicted_label) AS overridden,
         (l.first_action = 'accepted' AND l.n_decisions > 1
          AND l.human_label <> p.predicted_label) AS accepted_wrong,
         CAST(greatest(least(ceil(p.confidence * $bins - 1e-9) - 1, $bins - 1), 0) AS INTEGER) AS ece_bin,
         CAST(least(floor(round(p.confidence * 1e6) / $grid_scale), $n_grid - 1) AS INTEGER) AS grid_bin,
         greatest(least(p.confidence, 1 - $eps), $eps) AS c_clip
  FROM preds p LEFT JOIN latest l ON l.item_key = p.item_key AND l.item_id = p.item_id
)
SELECT
  CAST(GROUPING(segment, mode, ece_bin, grid_bin, customer_id, shown, predicted_label, human_label) AS INTEGER) AS grouping_id,
  model_version, segment, mode, day, ece_bin, grid_bin, customer_id, shown, predicted_label, human_label,
  count(*) AS n,
  count(*) FILTER (WHERE failed) AS errors,
  count(*) FILTER (WHERE status = 'fallback') AS fallbacks,
  count(*) FILTER (WHERE labeled) AS labeled,
  count(*) FILTER (WHERE labeled AND hit) AS correct,
  coalesce(sum(confidence) FILTER (WHERE labeled), 0) AS conf_sum,
  coalesce(sum(confidence * confidence) FILTER (WHERE labeled), 0) AS conf_sq_sum,
  coalesce(sum(confidence) FILTER (WHERE labeled AND hit), 0) AS conf_hit_sum,
  coalesce(sum(CASE WHEN hit THEN -ln(c_clip) ELSE -ln(1 - c_clip) END) FILTER (WHERE labeled), 0) AS nll_sum,
  count(*) FILTER (WHERE shown AND labeled) AS shown_labeled,
  count(*) FILTER (WHERE shown AND labeled AND overridden) AS overridden,
  count(*) FILTER (WHERE shown AND labeled AND accepted_wrong) AS accepted_wrong
FROM joined
GROUP BY GROUPING SETS (
  (model_version, segment, mode, day, ece_bin, grid_bin),
  (model_version, customer_id, segment, shown, day),
  (model_version, segment, shown, day, predicted_label, human_label)
)
