-- Latency histogram on fixed log-spaced bins (mergeable across days and runs); the same bins as
-- trustramp.metrics.latency: bin 0 below 1 ms, bins 1..$n_log log-spaced from 1 ms to $max_ms,
-- bin $n_log + 1 at or above $max_ms. Grain: model_version x segment x mode x day x lat_bin.
-- Parameters: $feature, $start, $end, $days, $n_log, $max_ms.
SELECT model_version, segment, mode, date AS day,
       CAST(CASE WHEN latency_ms < 1 THEN 0
                 WHEN latency_ms >= $max_ms THEN $n_log + 1
                 ELSE least(floor($n_log * ln(latency_ms) / ln($max_ms)) + 1, $n_log) END AS INTEGER) AS lat_bin,
       count(*) AS n
FROM predictions
WHERE feature = $feature AND date BETWEEN $start AND $end AND __DAYS__ AND latency_ms IS NOT NULL
GROUP BY ALL
