-- Each item's latest decision (SPEC 1.1: greatest decided_at, ties broken by greatest
-- decision_id), as CTEs
-- (`dec`, `counted`, `latest`) that other queries include (`aggregates._with_latest`).
-- Grain: one row per (item_key, item_id); `id_hash` = hash(item_id), so that the big join with
-- the predictions runs on two integers instead of a string (a false match needs both 64-bit
-- hashes to collide: about 1e-25 at 10M items).
-- Most items have one decision: they need no ordering at all, and the expensive struct-keyed
-- arg_max runs only on the few items with several decisions (or a shared item_key).
-- `__DECISIONS__` is `decisions`, or a relation of some of them (aggregates.decision_delta);
-- `__ITEMS__` is replaced by a condition on item_key that keeps the items wanted (or by TRUE);
-- given disjoint conditions, `dec` reads the decisions once per condition, a UNION ALL of
-- this SELECT (`aggregates._with_latest`: the lake's statistics then skip files per part);
-- `__DEC__` by MATERIALIZED when that condition keeps a small share of the decisions found by a
-- semi-join (read from the lake once instead of twice), else by NOT MATERIALIZED (streamed
-- twice: decisions found by their days skip the other days' files on each read).
-- Parameters: $feature.
dec AS __DEC__ (
  SELECT item_key, item_id, human_label, action, decided_at, decision_id
  FROM __DECISIONS__
  WHERE feature IN ($feature, '_unmatched') AND __ITEMS__
),
counted AS MATERIALIZED (  -- read twice below: computed once
  SELECT item_key, count(*) AS n, first(item_id) AS item_id, first(human_label) AS human_label,
         first(action) AS action
  FROM dec
  GROUP BY item_key
),
latest AS (
  SELECT item_key, item_id, hash(item_id) AS id_hash, human_label, action,
         action AS first_action, 1 AS n_decisions
  FROM counted
  WHERE n = 1
  UNION ALL
  SELECT item_key, item_id, hash(item_id) AS id_hash,
         arg_max(human_label, (decided_at, decision_id)) AS human_label,
         arg_max(action, (decided_at, decision_id)) AS action,
         arg_min(action, (decided_at, decision_id)) AS first_action,
         count(*) AS n_decisions
  FROM dec
  WHERE item_key IN (SELECT item_key FROM counted WHERE n > 1)
  GROUP BY item_key, item_id
)
