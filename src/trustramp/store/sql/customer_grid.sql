-- The thresholds' grid per customer for one version's unshown predictions (labeled counts and all
-- items). Grain: customer_id x grid cell. Reads the temporary `gate_rows` (gate_rows.sql).
-- Parameters: $version, $grid_scale, $n_grid.
SELECT customer_id,
       CAST(least(floor(round(confidence * 1e6) / $grid_scale), $n_grid - 1) AS INTEGER) AS grid_bin,
       count(*) FILTER (WHERE labeled) AS labeled,
       count(*) FILTER (WHERE hit) AS correct,
       count(*) AS n
FROM gate_rows
WHERE model_version = $version AND confidence IS NOT NULL
GROUP BY ALL
