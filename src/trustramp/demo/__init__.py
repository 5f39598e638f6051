"""Seeded demo and benchmark data: input logs with planted effects (SPEC 1.1 and 5).

`generate` writes the four input kinds of the data contract for one AI feature, day by day and
in blocks of items, so memory follows one day's traffic, never the whole set; everything is
vectorized numpy/pyarrow (a background thread writes while the next block is simulated), so
benchmark sizes (10M+ predictions) take seconds to a minute, not hours.

The story the data tells
------------------------
Work items arrive over `days` days (fewer at weekends, peaking in the afternoon, UTC) for
customers in segments (internal: few customers; smb: many small ones; enterprise: few, big ones).
Every item gets one prediction from each active model version: the first version predicts every
day; the last one is a candidate that predicts the same items in shadow from about a third of
the window on (so the two can be compared on the same items); each version is a little better
than the one before. The first half of the window is all shadow; in the second half the first
version's suggestions are shown (mode suggestion, or confirmation for some customers), except a
blind hold-out arm of items, picked by a stable hash of item_id (`is_blind_holdout`), that stays
in shadow. About 93 % of items get a human decision, mostly within two days; humans who see a
wrong suggestion accept it 30 % of the time (automation bias); 3 % of items get a later
correction. Internal users leave feedback; there is one resolved major and one open minor bug.

The model is calibrated (the chance a prediction is right equals its confidence) except where
the planted effects say otherwise (`effects=True`):

1. over-confident band: in the confirm band [0.80, 0.95) the chance is 0.10 below confidence;
2. weak segment: for `enterprise` (else the last segment) it is 0.08 below, at every confidence;
3. bad day: the 5th day before `end` (the first day of a shorter window) has ~10 % errors and
   timeouts and a ~12 s latency p95.

Ground truth is exact where the human did not see a suggestion (shadow and hold-out items):
there `human_label` is the true label. The manifest describes each effect with its numbers.

The package
-----------
It owns the generator and its planted effects, one concern per module, importing downwards only:

- `generator`: `generate` (day by day) and `is_blind_holdout`, the entry points;
- `manifest`: `DemoManifest`, what a run hands back, and `demo_config`, the rollout config;
- `plan`: argument checks, and everything fixed before the first day (customers, volumes,
  versions, bands); `_blocks`, a day's items in arrival order;
- `simulate`: one block of items -> predictions, decisions, feedback draws;
- `effects`: the planted effects (where, how much) and the realized truths that check them;
- `logs`: the feedback and incidents logs;
- `tables`: simulated numbers -> Arrow tables in the contract's columns;
- `write`: files per kind and day (CSV, JSON Lines, Parquet) on a background thread;
- `_common`: the plan, the random streams and the enum orders, at the bottom.

It imports numpy, pyarrow, trustramp.contract and trustramp.config (the default routing); never
DuckDB, Prefect, trustramp.store, trustramp.ingest or trustramp.pipeline.
"""

from trustramp.demo._common import DEFAULT_LABELS, FORMATS, Format
from trustramp.demo.generator import generate, is_blind_holdout
from trustramp.demo.manifest import DemoManifest, demo_config

__all__ = [
    "DEFAULT_LABELS",
    "FORMATS",
    "DemoManifest",
    "Format",
    "demo_config",
    "generate",
    "is_blind_holdout",
]
