-- Class-wise calibration bins from class_probabilities, for one version's labeled unshown
-- predictions that carry them. Every item is binned once per class, by its probability for that
-- class (0 when its object omits the class). Grain: class x bin (right-closed equal-width bins).
-- Parameters: $feature, $start, $end, $version, $bins.
WITH latest AS (
  SELECT item_key, item_id, arg_max(human_label, (decided_at, decision_id)) AS human_label
  FROM decisions WHERE feature IN ($feature, '_unmatched') GROUP BY item_key, item_id
),
items AS (
  SELECT l.human_label,
         json_transform(p.class_probabilities, '"MAP(VARCHAR, DOUBLE)"') AS m
  FROM predictions p JOIN latest l ON l.item_key = p.item_key AND l.item_id = p.item_id
  WHERE p.feature = $feature AND p.date BETWEEN $start AND $end AND p.model_version = $version
    AND p.mode = 'shadow' AND p.status NOT IN ('error', 'timeout')
    AND p.class_probabilities IS NOT NULL
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
