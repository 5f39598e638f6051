"""Confidence thresholds for the routing bands (SPEC 3.4, 3.5; playbook section 5).

The input is a *grid frame*: one row per confidence cell ``[lo, lo + step)`` (the last cell
includes 1.0) with ``n`` labeled items and ``correct`` of them right, optionally ``total`` (all
items, labeled or not, for traffic shares) and dimension columns (``segment``, ``customer_id``,
``day``, ``model_version``) that are summed over unless a function groups by them. `grid_counts`
builds the same frame from arrays.

Thresholds are certified with Learn-then-Test over the fixed descending grid: for each candidate
``t`` the null hypothesis "the items the band would route are less than ``target`` accurate" is
tested with the exact binomial p-value ``P(Binom(n_t, target) >= k_t)`` on integer counts, in
descending order by fixed-sequence testing with fallback: δ is spread over checkpoints chosen by
counts alone (the highest thresholds with ``m``, ``2m``, ``4m``, ... labeled items, ``m`` from
`min_labels_to_start`), and a failure pauses the walk until the next checkpoint instead of ending
it (`certify_threshold` says why). Given per-customer counts (``clusters=``), each test runs on
its band's counts deflated by the customers' design effect, as the gates do. A band's items are
those it would route (SPEC 3.4): auto ``[t, 1]``, confirm ``[t, t_auto)``, review
``[t, t_confirm)``, so the bands are certified top-down; a band under another one narrower than
`MIN_BAND_WIDTH` is not offered. The three bands split δ Bonferroni: all their statements hold
together with probability at least ``1 - δ``.

Confidences are resolved at 1e-6 with integer arithmetic, so a cell never depends on how a float
rounds at its edge: ``cell = floor(c * 1e6 + 0.5) // round(step * 1e6)``, clipped to the last cell
(DuckDB: ``least(CAST(round(confidence * 1e6) AS BIGINT) // 10000, 99)`` for step 0.01).

The package, bottom up (each module imports only those above it in this list):

- `grid`: the shared vocabulary (bands, `Stage`, column names), integer cells, `grid_counts`,
  the collapsed per-cell counts (also per customer) and band cell ranges with Wilson intervals;
- `certify`: Learn-then-Test, fixed sequence with fallback (`certify_threshold`,
  `min_labels_to_certify`, `min_labels_to_start`);
- `plan`: the bands certified top-down and assembled into a recommendation
  (`recommend_thresholds`);
- `groups` (`recommend_by_group`), `progression` (`progression_stage`, `apply_progression`),
  `replay` (`replay_policy`) and `patch` (`to_config_patch`), each on top of `plan`.

It imports numpy, pandas and `trustramp._dist`, and `trustramp.metrics.intervals` inside the
functions that allow for customers as clusters; never DuckDB, Prefect, `trustramp.store` or
`trustramp.config` (a ``routing`` argument is any object with `trustramp.config.Routing`'s
attributes). Everything public is importable from here, as before the split.
"""

from __future__ import annotations

from trustramp.decide.thresholds.certify import (
    FIRST_SHARE as FIRST_SHARE,
)
from trustramp.decide.thresholds.certify import (
    Certified,
    certify_threshold,
    min_labels_to_certify,
    min_labels_to_start,
)
from trustramp.decide.thresholds.grid import (
    ALL_BANDS,
    BANDS,
    Stage,
    grid_counts,
)
from trustramp.decide.thresholds.grid import (
    HUMAN as HUMAN,
)
from trustramp.decide.thresholds.grid import (
    RESOLUTION as RESOLUTION,
)
from trustramp.decide.thresholds.groups import GroupRecommendation, recommend_by_group
from trustramp.decide.thresholds.patch import to_config_patch
from trustramp.decide.thresholds.plan import (
    MIN_BAND_WIDTH as MIN_BAND_WIDTH,
)
from trustramp.decide.thresholds.plan import (
    BandRecommendation,
    ThresholdRecommendation,
    recommend_thresholds,
)
from trustramp.decide.thresholds.progression import apply_progression, progression_stage
from trustramp.decide.thresholds.replay import Replay, replay_policy

__all__ = [
    "ALL_BANDS",
    "BANDS",
    "BandRecommendation",
    "Certified",
    "GroupRecommendation",
    "Replay",
    "Stage",
    "ThresholdRecommendation",
    "apply_progression",
    "certify_threshold",
    "grid_counts",
    "min_labels_to_certify",
    "min_labels_to_start",
    "progression_stage",
    "recommend_by_group",
    "recommend_thresholds",
    "replay_policy",
    "to_config_patch",
]
