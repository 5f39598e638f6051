-- Class-wise calibration bins from class_probabilities, per version and day, for the labeled,
-- unshown, successful predictions that carry them. Every item is binned once per class of its
-- day, by its probability for that class (0 when its object omits the class); right-closed
-- equal-width bins. Rows with bin = -1 count the items by human label (n = hits = items), so
-- that summing days can bin at 0 the items of days where a class did not appear
-- (`aggregates.classwise`). Grain: model_version x day x class x bin. Reads `joined`.
-- Parameters: $bins.
WITH items AS (
  SELECT model_version, day, human_label,
         json_transform(class_probabilities, '"MAP(VARCHAR, DOUBLE)"') AS m
  FROM joined
  WHERE mode = 'shadow' AND NOT failed AND human_label IS NOT NULL
    AND class_probabilities IS NOT NULL
),
classes AS (SELECT DISTINCT model_version, day, unnest(map_keys(m)) AS class FROM items),
probs AS (
  SELECT i.model_version, i.day, c.class, i.human_label,
         greatest(least(coalesce(i.m[c.class], 0), 1), 0) AS prob
  FROM items i JOIN classes c ON c.model_version = i.model_version AND c.day = i.day
)
SELECT model_version, day, class,
       CAST(greatest(least(ceil(prob * $bins - 1e-9) - 1, $bins - 1), 0) AS INTEGER) AS bin,
       count(*) AS n, count(*) FILTER (WHERE human_label = class) AS hits, sum(prob) AS prob_sum
FROM probs
GROUP BY ALL
UNION ALL
SELECT model_version, day, human_label AS class, -1 AS bin, count(*) AS n, count(*) AS hits,
       0.0 AS prob_sum
FROM items
GROUP BY ALL
