-- Class-wise calibration bins from class_probabilities, for one version's labeled unshown
-- predictions that carry them. Every item is binned once per class, by its probability for that
-- class (0 when its object omits the class). Grain: class x bin (right-closed equal-width bins).
-- Reads the temporary `gate_rows` (gate_rows.sql). Parameters: $version, $bins.
WITH items AS (
  SELECT human_label, json_transform(class_probabilities, '"MAP(VARCHAR, DOUBLE)"') AS m
  FROM gate_rows
  WHERE model_version = $version AND labeled AND class_probabilities IS NOT NULL
),
classes AS (SELECT DISTINCT unnest(map_keys(m)) AS class FROM items),
probs AS (
  SELECT c.class, i.human_label, greatest(least(coalesce(i.m[c.class], 0), 1), 0) AS prob
  FROM items i CROSS JOIN classes c
)
SELECT class,
       CAST(greatest(least(ceil(prob * $bins - 1e-9) - 1, $bins - 1), 0) AS INTEGER) AS bin,
       count(*) AS n, count(*) FILTER (WHERE human_label = class) AS hits, sum(prob) AS prob_sum
FROM probs
GROUP BY ALL
