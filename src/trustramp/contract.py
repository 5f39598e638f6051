"""The data contract (SPEC 1.1): the columns, types, enums and defaults of every input kind.

This module is the single place where input column names live. Everything that touches
columns (ingest SQL, metrics SQL, the Great Expectations suites) derives them from here, so
an identifier that reaches SQL always comes from this contract and never from the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    PREDICTIONS = "predictions"
    DECISIONS = "decisions"
    FEEDBACK = "feedback"
    INCIDENTS = "incidents"


class Mode(StrEnum):
    SHADOW = "shadow"
    SUGGESTION = "suggestion"
    CONFIRMATION = "confirmation"
    AUTONOMOUS = "autonomous"


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    FALLBACK = "fallback"


class Band(StrEnum):
    AUTO = "auto"
    CONFIRM = "confirm"
    REVIEW = "review"
    HUMAN = "human"


class Action(StrEnum):
    ACCEPTED = "accepted"
    OVERRIDDEN = "overridden"
    EDITED = "edited"
    MANUAL = "manual"


class Rating(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"


class IncidentKind(StrEnum):
    BUG = "bug"
    SECURITY = "security"
    AVAILABILITY = "availability"
    OTHER = "other"


class ColType(StrEnum):
    """Logical column types; `store` maps them to DuckDB types."""

    STRING = "string"
    TIMESTAMP = "timestamp"
    FLOAT = "float"
    INT = "int"
    ENUM = "enum"
    JSON = "json"


DEFAULT_SEGMENTS: tuple[str, ...] = ("internal", "smb", "mid_market", "enterprise")
SHOWN_MODES: tuple[str, ...] = (Mode.SUGGESTION, Mode.CONFIRMATION, Mode.AUTONOMOUS)
FAILED_STATUSES: tuple[str, ...] = (Status.ERROR, Status.TIMEOUT)
UNMATCHED_FEATURE = "_unmatched"
"""Partition value for decisions whose item has no prediction in the lake yet."""


@dataclass(frozen=True)
class Column:
    """One contract column.

    `required` is True, False, or "unless_failed" (required unless the prediction's status is
    error or timeout). `enum` lists allowed values; `low`/`high` bound numeric values
    (inclusive); `default` fills an absent or empty optional value.
    """

    name: str
    type: ColType
    required: bool | str = True
    enum: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    default: str | None = None
    doc: str = ""


@dataclass(frozen=True)
class Schema:
    kind: Kind
    id_column: str
    time_column: str
    """Its UTC date is the lake's `date` partition."""
    feature_column: str | None
    """None for decisions: their feature is taken from the item's prediction at ingest."""
    columns: tuple[Column, ...] = field(default_factory=tuple)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        """Columns a file must have (a conditionally required column must exist too)."""
        return tuple(c.name for c in self.columns if c.required)

    @property
    def identifying(self) -> frozenset[str]:
        """Columns whose presence, beyond the shared ones, tells this kind from the others."""
        return frozenset({self.id_column})

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_S, _T, _F, _E, _J, _I = (
    ColType.STRING,
    ColType.TIMESTAMP,
    ColType.FLOAT,
    ColType.ENUM,
    ColType.JSON,
    ColType.INT,
)


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(e.value for e in enum)


PREDICTIONS = Schema(
    kind=Kind.PREDICTIONS,
    id_column="prediction_id",
    time_column="predicted_at",
    feature_column="feature",
    columns=(
        Column("prediction_id", _S, doc="unique id; the idempotency key"),
        Column("item_id", _S, doc="the work item; joins to decisions"),
        Column("feature", _S, doc="the AI feature's name"),
        Column("model_version", _S),
        Column("predicted_at", _T),
        Column("segment", _S, doc="customer segment, from the configured list"),
        Column("customer_id", _S),
        Column("mode", _E, enum=_values(Mode)),
        Column("predicted_label", _S, required="unless_failed"),
        Column(
            "confidence",
            _F,
            required="unless_failed",
            low=0.0,
            high=1.0,
            doc="top-label probability",
        ),
        Column("class_probabilities", _J, required=False, doc="JSON object label -> prob"),
        Column("latency_ms", _F, required=False, low=0.0),
        Column("status", _E, required=False, enum=_values(Status), default=Status.OK),
        Column("routed_to", _E, required=False, enum=_values(Band)),
    ),
)

DECISIONS = Schema(
    kind=Kind.DECISIONS,
    id_column="decision_id",
    time_column="decided_at",
    feature_column=None,
    columns=(
        Column("decision_id", _S),
        Column("item_id", _S),
        Column("decided_at", _T),
        Column("human_label", _S, doc="the final decision; ground truth"),
        Column("reviewer_id", _S, required=False),
        Column("action", _E, required=False, enum=_values(Action)),
        Column("review_seconds", _F, required=False, low=0.0),
    ),
)

FEEDBACK = Schema(
    kind=Kind.FEEDBACK,
    id_column="feedback_id",
    time_column="submitted_at",
    feature_column="feature",
    columns=(
        Column("feedback_id", _S),
        Column("submitted_at", _T),
        Column("feature", _S),
        Column("customer_id", _S),
        Column("segment", _S),
        Column("user_id", _S),
        Column("rating", _E, enum=_values(Rating)),
        Column("nps_score", _I, required=False, low=0, high=10),
        Column("comment", _S, required=False),
        Column("item_id", _S, required=False),
    ),
)

INCIDENTS = Schema(
    kind=Kind.INCIDENTS,
    id_column="incident_id",
    time_column="opened_at",
    feature_column="feature",
    columns=(
        Column("incident_id", _S),
        Column("feature", _S),
        Column("opened_at", _T),
        Column("resolved_at", _T, required=False, doc="empty while open"),
        Column("severity", _E, enum=_values(Severity)),
        Column("kind", _E, enum=_values(IncidentKind)),
        Column("title", _S),
    ),
)

SCHEMAS: dict[Kind, Schema] = {s.kind: s for s in (PREDICTIONS, DECISIONS, FEEDBACK, INCIDENTS)}

# Columns that ingest adds to every lake row.
ROW_HASH = "_row_hash"
"""Hash of the row's contract values: tells an identical repeat from a conflicting one."""
SOURCE = "_source"
"""Content hash of the file the row came from; a row is visible once that file is committed."""
EXTRA = "_extra"
"""JSON object of the non-contract columns, kept but ignored."""
ITEM_KEY = "item_key"
"""A 64-bit key derived from item_id at ingest: the cheap integer join of predictions and decisions."""
DATE = "date"
FEATURE = "feature"
PRED_FIRST = "_pred_first"
PRED_LAST = "_pred_last"
"""Decisions: the first and last day on which the item's feature predicted it, as the lake held
when the decision landed (NULL when it held none): a chunk of prediction days reads only the
decisions whose days meet it (`store.aggregates`)."""
DECIDED_BEFORE = "_decided_before"
"""Predictions: TRUE when, as the row landed, its item already had a decision whose
`_pred_first`..`_pred_last` (or feature) left out this row's day: such decisions are read by
item for the chunk of this day, so that a prediction landing after its item's decisions still
meets them."""


def schema_for(kind: str | Kind) -> Schema:
    try:
        return SCHEMAS[Kind(kind)]
    except ValueError:
        raise ValueError(
            f"unknown kind {kind!r}; expected one of {', '.join(k.value for k in Kind)}"
        ) from None


def infer_kind(columns: list[str] | tuple[str, ...]) -> Kind | None:
    """The kind whose id column is among `columns`; None when none or several match."""
    present = set(columns)
    matches = [s.kind for s in SCHEMAS.values() if s.id_column in present]
    return matches[0] if len(matches) == 1 else None


METRIC_COLUMNS: tuple[str, ...] = (
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "feature",
    "model_version",
    "segment",
    "customer_id",
    "mode",
    "day",
    "window",
)
"""The columns of the output `metrics.parquet` (SPEC 2); a null dimension means "all"."""
