-- Sufficient statistics of one feature's predictions joined to their item's latest decision.
-- Grain (GROUPING SETS, told apart by `grouping_set`):
--   0 cells:     model_version x segment x mode x day x ece_bin x grid_bin
--   1 customers: model_version x customer_id x segment x shown x day
--   2 confusion: model_version x segment x shown x day x predicted_label x human_label
-- Reads `joined` (joined.sql: the predictions of some days, each with its latest decision).
-- Parameters: $bins (ECE bins M), $grid_scale (grid step in millionths, e.g. 10000 for 0.01),
-- $n_grid (grid cells), $eps (log-loss clipping). Rows are per prediction day, so days can be
-- cached apart.
WITH flags AS (  -- as few and as narrow columns as possible: the grouping sets read them three times
  SELECT model_version, segment, customer_id, mode, day, shown, predicted_label, human_label,
         ece_bin, grid_bin, failed, fallback, labeled, labeled AND hit AS correct,
         CASE WHEN labeled THEN confidence END AS conf_l,
         CASE WHEN labeled AND hit THEN confidence END AS conf_hit,
         CASE WHEN NOT labeled THEN NULL WHEN hit THEN -ln(c_clip) ELSE -ln(1 - c_clip) END AS nll,
         shown AND labeled AS shown_labeled,
         shown AND labeled AND overridden AS overridden,
         shown AND labeled AND accepted_wrong AS accepted_wrong
  FROM (
    SELECT model_version, segment, customer_id, mode, day, predicted_label, confidence,
           human_label, failed, fallback, overridden, accepted_wrong,
           mode <> 'shadow' AS shown,
           (human_label IS NOT NULL AND NOT failed AND confidence IS NOT NULL) AS labeled,
           human_label = predicted_label AS hit,
           CAST(greatest(least(ceil(confidence * $bins - 1e-9) - 1, $bins - 1), 0) AS INTEGER) AS ece_bin,
           CAST(least(floor(round(confidence * 1e6) / $grid_scale), $n_grid - 1) AS INTEGER) AS grid_bin,
           greatest(least(confidence, 1 - $eps), $eps) AS c_clip
    FROM joined
  )
)
SELECT
  CAST(GROUPING(segment, mode, ece_bin, grid_bin, customer_id, shown, predicted_label, human_label) AS INTEGER) AS grouping_id,
  model_version, segment, mode, day, ece_bin, grid_bin, customer_id, shown, predicted_label, human_label,
  count(*) AS n,
  count(*) FILTER (WHERE failed) AS errors,
  count(*) FILTER (WHERE fallback) AS fallbacks,
  count(*) FILTER (WHERE labeled) AS labeled,
  count(*) FILTER (WHERE correct) AS correct,
  coalesce(sum(conf_l), 0) AS conf_sum,
  coalesce(sum(conf_l * conf_l), 0) AS conf_sq_sum,
  coalesce(sum(conf_hit), 0) AS conf_hit_sum,
  coalesce(sum(nll), 0) AS nll_sum,
  count(*) FILTER (WHERE shown_labeled) AS shown_labeled,
  count(*) FILTER (WHERE overridden) AS overridden,
  count(*) FILTER (WHERE accepted_wrong) AS accepted_wrong
FROM flags
GROUP BY GROUPING SETS (
  (model_version, segment, mode, day, ece_bin, grid_bin),
  (model_version, customer_id, segment, shown, day),
  (model_version, segment, shown, day, predicted_label, human_label)
)
