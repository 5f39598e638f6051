"""The rollout configuration (SPEC 1.2): pydantic models, loaded from YAML.

`load_config(None)` gives the playbook's defaults (package data `defaults/rollout.yaml`); a user's
file is merged over them key by key, so a config need only say what differs. Unknown keys and
out-of-range values raise `ConfigError` naming the key's path, e.g. `alerts.rules.1.warning`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from trustramp.contract import DEFAULT_SEGMENTS, Mode
from trustramp.errors import ConfigError

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Score = Annotated[int, Field(ge=1, le=5)]

_PROBABILITY: TypeAdapter[float] = TypeAdapter(Probability)

BANDS: tuple[str, ...] = ("auto", "confirm", "review")
"""The routing bands with a threshold, highest first."""


def _band(value: Any, _handler: ValidatorFunctionWrapHandler) -> float | Literal[False]:
    # False closes the band; anything else must be a probability. Checked here rather than by a
    # union, since 0 == False in Python (a union would take review: 0 for a closed band).
    if value is False:
        return False
    if value is True:
        raise PydanticCustomError("band", "Input should be a threshold in [0, 1], or false")
    try:
        return _PROBABILITY.validate_python(value)
    except ValidationError as e:
        msg = e.errors()[0]["msg"]
        raise PydanticCustomError(
            "band", "{msg} (or false to close the band)", {"msg": msg}
        ) from None


Band = Annotated[float | Literal[False], WrapValidator(_band)]
"""A band's lower confidence threshold, or False: the band is not offered (its items fall to
the next offered band down)."""


def offered(value: float | Literal[False] | None) -> float | None:
    """A band setting as a threshold: None when the band is closed (False) or unset (None)."""
    return None if value is None or value is False else float(value)


class Phase(StrEnum):
    SHADOW = "shadow"
    DOGFOOD = "dogfood"
    LIMITED_BETA = "limited_beta"
    CONTROLLED = "controlled"
    GA = "ga"


PHASE_ORDER: tuple[Phase, ...] = tuple(Phase)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Override(_Model):
    """A segment's or customer's own routing: opt out, own thresholds, own mode.

    A band left None inherits the global threshold; False closes the band for this group.
    """

    opt_out: bool = False
    auto: Band | None = None
    confirm: Band | None = None
    review: Band | None = None
    mode: Mode | None = None


class Routing(_Model):
    """Confidence routing: each band's lower threshold, or False where the band is not offered
    (its items go to the next offered band down; below every offered band, to a human)."""

    auto: Band = 0.95
    confirm: Band = 0.80
    review: Band = 0.60
    targets: dict[Literal["auto", "confirm", "review"], Probability] = Field(
        default_factory=lambda: {"auto": 0.95, "confirm": 0.80, "review": 0.60}
    )
    delta: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    grid_step: Annotated[float, Field(gt=0.0, le=0.1)] = 0.01
    segment_overrides: dict[str, Override] = Field(default_factory=dict)
    customer_overrides: dict[str, Override] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> Routing:
        given = [t for t in self.thresholds().values() if t is not None]  # highest band first
        if any(lo > hi for hi, lo in itertools.pairwise(given)):
            shown = ", ".join(
                f"{b}={'false' if getattr(self, b) is False else getattr(self, b)}"
                for b in reversed(BANDS)
            )
            raise ValueError(
                f"bands must be ordered review <= confirm <= auto (closed bands aside), got {shown}"
            )
        return self

    def thresholds(self, override: Override | None = None) -> dict[str, float | None]:
        """Each band's threshold, highest band first, None where the band is not offered;
        with ``override`` (a segment's or customer's), its set bands over the global ones."""
        out = {}
        for b in BANDS:
            own = None if override is None else getattr(override, b)
            out[b] = offered(getattr(self, b) if own is None else own)
        return out


Comparator = Literal[">=", ">", "<=", "<"]


class Criterion(_Model):
    """A go criterion: `metric comparator threshold`, judged at the confidence bound.

    `threshold: baseline` means the configured baseline (statistics.baseline). `segment` is `all`
    (overall), `each` (every configured segment must pass) or one segment's name.
    """

    name: str
    metric: str
    comparator: Comparator
    threshold: float | Literal["baseline"]
    segment: str = "all"


class PhaseSpec(_Model):
    min_days: Annotated[int, Field(ge=0)]
    mode: Mode
    audience: str
    criteria: list[Criterion]
    steps: list[Annotated[int, Field(gt=0, le=100)]] | None = None


class AlertRule(_Model):
    metric: Literal["accuracy", "latency_p95", "error_rate", "override_rate"]
    direction: Literal["below", "above"]
    warning: float
    critical: float
    action: str

    @model_validator(mode="after")
    def _levels(self) -> AlertRule:
        worse = (
            self.critical <= self.warning
            if self.direction == "below"
            else (self.critical >= self.warning)
        )
        if not worse:
            raise ValueError(
                f"critical ({self.critical}) must be beyond warning ({self.warning}) for an "
                f"alert that fires {self.direction}"
            )
        return self


class Alerts(_Model):
    min_n: Annotated[int, Field(ge=1)] = 100
    rules: list[AlertRule]


class EscalationStep(_Model):
    step: Annotated[int, Field(ge=1)]
    role: str
    what: str
    within_minutes: Annotated[int, Field(ge=0)]


class Rollback(_Model):
    accuracy_min: Probability = 0.90
    error_rate_max: Probability = 0.05
    availability_sla: Probability = 0.99
    on_security_incident: bool = True
    procedure: list[str]


class Baseline(_Model):
    accuracy: Probability | None = None
    model_version: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Baseline:
        if (self.accuracy is None) == (self.model_version is None):
            raise ValueError("give exactly one of accuracy or model_version")
        return self


class EdgeCaseSlice(_Model):
    name: str
    column: str
    value: str


class Statistics(_Model):
    confidence_level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    min_samples: Annotated[int, Field(ge=1)] = 200
    ece_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    ece_bins: Annotated[int, Field(ge=2, le=100)] = 15
    maturation_days: Annotated[int, Field(ge=0, le=90)] = 7
    window_days: Annotated[int, Field(ge=1, le=365)] = 14
    baseline: Baseline = Baseline(accuracy=0.90)
    min_segment_n: Annotated[int, Field(ge=1)] = 200
    bootstrap_reps: Annotated[int, Field(ge=100, le=100_000)] = 1000
    seed: int = 20261127
    psi_min_n: Annotated[int, Field(ge=1)] = 500
    min_effect: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.02
    """Bias audit: the smallest absolute gap to the other segments that can flag one worse."""
    positive_label: str | None = None
    """Fairness rates (selection rate, TPR, FPR): the label counted as positive; None: each
    label one-vs-rest."""
    slices: list[str] = Field(default_factory=list)
    edge_case_slices: list[EdgeCaseSlice] = Field(default_factory=list)


class SegmentScores(_Model):
    risk: Score
    value: Score
    feedback_quality: Score
    technical_sophistication: Score


class Attestation(_Model):
    item: str
    done: bool = False
    owner: str | None = None
    evidence: str | None = None
    date: dt.date | None = None


class Attestations(_Model):
    infrastructure: list[Attestation]
    user: list[Attestation]


class Notifications(_Model):
    webhook_url: str | None = None
    prefect_block: str | None = None


class RolloutConfig(_Model):
    """One feature's rollout configuration; the defaults are the playbook's numbers."""

    feature: Annotated[str, Field(min_length=1, max_length=200)]
    phase: Phase = Phase.SHADOW
    step: int | None = None
    phase_started: dt.date | None = None
    kill_switch: bool = False
    model_version: str | None = None
    """The version under evaluation; None: the newest version in the data."""
    segments: list[str] = Field(default_factory=lambda: list(DEFAULT_SEGMENTS), min_length=1)
    routing: Routing = Routing()
    phases: dict[Phase, PhaseSpec]
    alerts: Alerts
    escalation: list[EscalationStep]
    rollback: Rollback
    statistics: Statistics = Statistics()
    segment_priority: dict[str, SegmentScores] = Field(default_factory=dict)
    segment_order: list[str] | None = None
    attestations: Attestations
    notifications: Notifications = Notifications()

    @model_validator(mode="after")
    def _consistent(self) -> RolloutConfig:
        missing = [p.value for p in Phase if p not in self.phases]
        if missing:
            raise ValueError(f"phases: missing {', '.join(missing)}")
        steps = self.phases[Phase.CONTROLLED].steps or []
        if self.phase is Phase.CONTROLLED:
            if self.step not in steps:
                raise ValueError(
                    f"step must be one of {steps} while phase is controlled, got {self.step}"
                )
        elif self.step is not None:
            raise ValueError(f"step is only set in the controlled phase, got {self.step}")
        for name in (
            *self.routing.segment_overrides,
            *self.segment_priority,
            *(self.segment_order or []),
        ):
            if name not in self.segments:
                raise ValueError(f"segment {name!r} is not in segments {self.segments}")
        return self

    def hash(self) -> str:
        """A short, stable hash of the effective config (for provenance in every output)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def ordered_segments(self) -> list[str]:
        """Rollout order: explicit `segment_order`, else by score (low risk, high benefit first)."""
        if self.segment_order:
            return list(self.segment_order)

        def key(seg: str) -> tuple[float, int]:
            s = self.segment_priority.get(seg)
            if s is None:
                return (float("inf"), self.segments.index(seg))
            benefit = s.value + s.feedback_quality + s.technical_sophistication
            return (s.risk * 3 - benefit, self.segments.index(seg))

        return sorted(self.segments, key=key)


MAX_CONFIG_BYTES = 1_000_000
"""A rollout config is a page of YAML; anything larger is refused before parsing."""

_ECHO_CHARS = 120
"""Errors echo at most this much of an offending value."""


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loading that also refuses anchors and aliases (`&a` / `*a`).

    A config has no use for them, and nested aliases expand exponentially (a "billion laughs"
    document of a few hundred bytes would hang the loader and fill memory)."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not allowed in a trustramp config",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # type: ignore[override]
        """Refuse a key given twice in one mapping (YAML would keep the last one silently)."""
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # complex keys: left to the loader (and to validation)
            key = self.construct_scalar(key_node)
            line = key_node.start_mark.line + 1
            if key in first:
                raise DuplicateKeyError(key, line, first[key])
            first[key] = line
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    """A mapping in a config names the same key twice."""

    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(f"line {line}: duplicate key {key!r} (first given on line {first})")
        self.key, self.line, self.first = key, line, first


def _safe_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_NoAliasLoader)


def _echo(value: Any) -> str:
    text = repr(value)
    if len(text) <= _ECHO_CHARS:
        return text
    return f"{text[:_ECHO_CHARS]}... ({len(text):,} characters)"


def default_config_text() -> str:
    return resources.files("trustramp").joinpath("defaults/rollout.yaml").read_text("utf-8")


def _merge(base: Any, over: Any) -> Any:
    """Deep-merge mappings; lists and scalars in `over` replace those in `base`."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def _key_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_config(data: Any, *, source: str = "config") -> RolloutConfig:
    """Validate a mapping merged over the defaults; errors name every offending key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}"
        )
    merged = _merge(yaml.safe_load(default_config_text()), data)
    if "segments" in data and "segment_priority" not in data and isinstance(data["segments"], list):
        # The default scores name the default segments; keep only those still configured.
        merged["segment_priority"] = {
            k: v for k, v in merged["segment_priority"].items() if k in data["segments"]
        }
    try:
        return RolloutConfig.model_validate(merged)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = _key_path(err["loc"])
            if err["type"] == "extra_forbidden":
                lines.append(f"{key}: unknown key")
            else:
                lines.append(f"{key}: {err['msg']} (got {_echo(err.get('input'))})")
        raise ConfigError(f"{source}: invalid config\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path | None = None) -> RolloutConfig:
    """Load a rollout config from YAML (safe loading: no custom tags), or the defaults if None."""
    if path is None:
        return parse_config({}, source="defaults")
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{p}: config is {size:,} bytes; a rollout config is at most {MAX_CONFIG_BYTES:,}"
            )
        text = p.read_text("utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: config is not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = _safe_yaml(text)
    except DuplicateKeyError as e:
        raise ConfigError(f"{p}: {e}; give each key once") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_config(data, source=str(p))
