-- A fine confidence histogram (cells of 1e-4) of the labeled, unshown, successful predictions:
-- equal-mass calibration bins are cut from it after summing the days (`aggregates.equal_mass`).
-- Grain: model_version x day x cell. Reads `joined` (joined.sql).
SELECT model_version, day,
       CAST(greatest(least(floor(confidence * 10000), 9999), 0) AS INTEGER) AS cell,
       count(*) AS n,
       count(*) FILTER (WHERE human_label = predicted_label) AS correct,
       sum(confidence) AS conf_sum
FROM joined
WHERE mode = 'shadow' AND NOT failed AND human_label IS NOT NULL AND confidence IS NOT NULL
GROUP BY ALL
