-- Confidence distribution on frozen equal-width bins for drift (PSI), all traffic with a confidence.
-- Grain: model_version x day x bin. Parameters: $feature, $start, $end, $bins.
SELECT model_version, date AS day,
       CAST(greatest(least(ceil(confidence * $bins - 1e-9) - 1, $bins - 1), 0) AS INTEGER) AS bin,
       count(*) AS n
FROM predictions
WHERE feature = $feature AND date BETWEEN $start AND $end AND __DAYS__ AND confidence IS NOT NULL
GROUP BY ALL
