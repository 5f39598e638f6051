-- The thresholds' grid per customer: unshown (shadow), successful predictions with a confidence,
-- their labeled and correct counts and all items. Grain: model_version x customer_id x day x
-- grid cell. Reads `joined` (joined.sql). Parameters: $grid_scale, $n_grid.
SELECT model_version, customer_id, day,
       CAST(least(floor(round(confidence * 1e6) / $grid_scale), $n_grid - 1) AS INTEGER) AS grid_bin,
       count(*) FILTER (WHERE human_label IS NOT NULL) AS labeled,
       count(*) FILTER (WHERE human_label = predicted_label) AS correct,
       count(*) AS n
FROM joined
WHERE mode = 'shadow' AND NOT failed AND confidence IS NOT NULL
GROUP BY ALL
