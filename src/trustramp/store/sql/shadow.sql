-- The rows of `joined` (joined.sql) that the gate frames read, and their columns: unshown
-- (shadow), successful predictions. The engine holds these (about 80 % of a chunk's rows, 11 of
-- its 15 columns) while grid.sql, paired_days.sql, mass.sql, classwise_days.sql and
-- sample_days.sql read them as `joined`: their own conditions keep no other row, so they give
-- the same frames as over the whole of joined.sql. Grain: one row per unshown prediction.
SELECT model_version, customer_id, mode, day, predicted_label, confidence, item_key, id_hash,
       human_label, class_probabilities, failed
FROM joined
WHERE mode = 'shadow' AND NOT failed
