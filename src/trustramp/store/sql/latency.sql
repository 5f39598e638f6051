-- Latency histogram on fixed log-spaced bins (mergeable across days and runs).
-- Grain: model_version x segment x mode x day x lat_bin. Bin b covers (r^(b-1), r^b] ms with
-- r = $ratio; bin 0 holds latencies <= 1 ms. Parameters: $feature, $start, $end, $ratio.
SELECT model_version, segment, mode, date AS day,
       CAST(CASE WHEN latency_ms <= 1 THEN 0 ELSE ceil(ln(latency_ms) / ln($ratio)) END AS INTEGER) AS lat_bin,
       count(*) AS n
FROM predictions
WHERE feature = $feature AND date BETWEEN $start AND $end AND latency_ms IS NOT NULL
GROUP BY ALL
