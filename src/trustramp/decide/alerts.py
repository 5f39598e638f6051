"""Alerts and automatic rollback triggers on the rolling 24 h evidence (SPEC 3.3, playbook 7-8).

Alerts follow the config's table (accuracy below, latency p95 / error rate / override rate above a
warning and a critical level), overall and for every configured segment, **per model version**:
the version being rolled out and production (`Evidence.rolling_24h_by_version`), never pooled —
a day that mixes v1 predictions with v2 shadow predictions says nothing about either. Evidence
without a per-version breakdown falls back to the pooled ``rolling_24h`` (``model_version`` None).

Alerts are graded by evidence. With at least ``alerts.min_n`` observations:

- **critical** when the critical level is crossed *with confidence*: for a metric that alerts
  below (accuracy) the exact one-sided Clopper–Pearson upper bound at
  ``statistics.confidence_level`` is below the critical level; for one that alerts above
  (latency, error rate, override rate) the lower bound is above it. So a version whose true
  accuracy sits on the line raises a critical alert (and a PAUSE) on at most 1 - confidence of
  nights instead of every other night. Latency's bound is a distribution-free order-statistic
  bound on the p95 (an `Observed` with ``ci_low``/``ci_high``); an `Observed` without an interval
  is graded on its point estimate.
- **warning** when the point estimate is past the warning level (or past the critical level
  without the confidence to call it critical: such a warning, `Alert.past_critical`, does not
  pause the rollout but blocks a GO).

Below ``alerts.min_n`` the alert reports ``insufficient data`` — it neither fires nor stays silent.
Override-rate alerts are skipped in a shadow-mode phase, where nothing is shown to override.

A critical confidence drift (`Evidence.drift`: PSI against the baseline week past the
sample-size-aware critical level) raises a ``psi`` alert whose action is to investigate and
re-certify the routing thresholds; the verdict marks the thresholds for re-certification.

Rollback triggers are stricter, because they recommend the kill switch: a proportion fires when its
exact one-sided bound at the confidence level is past the limit (accuracy's upper bound below
``rollback.accuracy_min``, the error rate's lower bound above ``rollback.error_rate_max``,
availability's upper bound below the SLA). Accuracy and error rate judge the version being rolled
out (`Evidence.model_version` when it has per-version figures, else the first version of
``rolling_24h_by_version``), named with its n in the evidence; the pooled ``rolling_24h`` serves
only a metric without per-version figures (availability, the service's) or evidence without a
per-version breakdown. When only a point estimate is available (an `Observed`
without interval) it fires on the point estimate, and only with ``alerts.min_n`` observations.
Any security incident active on the as-of day fires the security trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from trustramp.config import AlertRule, EscalationStep, RolloutConfig
from trustramp.contract import IncidentKind, Mode
from trustramp.decide.eprocess import clopper_pearson_lower, clopper_pearson_upper
from trustramp.decide.evidence import ALL, Count, Drift, Evidence, Observed

__all__ = [
    "DRIFT_ACTION",
    "Alert",
    "AlertLevel",
    "AlertStatus",
    "RollbackTrigger",
    "evaluate_alerts",
    "evaluate_drift",
    "evaluate_rollback",
]

DRIFT_ACTION = (
    "investigate the shift in the model's confidence distribution and re-certify the routing "
    "thresholds before relying on them"
)
"""The action of a confidence-drift (PSI) alert."""


class AlertLevel(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    FIRING = "firing"
    OK = "ok"
    INSUFFICIENT = "insufficient data"


_NAMES = {
    "accuracy": "accuracy",
    "latency_p95": "p95 latency",
    "error_rate": "error rate",
    "override_rate": "override rate",
    "availability": "availability",
    "psi": "confidence drift (PSI)",
}


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric == "latency_p95":
        return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"
    if metric == "availability":
        return f"{100 * value:.2f}%"
    if metric == "psi":
        return f"{value:.3f}"
    return f"{100 * value:.1f}%"


def _where(segment: str) -> str:
    return "overall" if segment == ALL else f"in {segment}"


@dataclass(frozen=True)
class Alert:
    """One alert rule checked for one segment of one model version on the last 24 h.

    ``threshold`` is the level's (the warning level when not firing); ``bound`` is the one-sided
    confidence bound on the side that alerts (the upper bound for accuracy, the lower bound for
    the others; None without one); ``escalation`` is the config's escalation path, with timings.
    """

    metric: str
    segment: str
    status: AlertStatus
    level: AlertLevel | None
    value: float | None
    threshold: float
    n: int
    action: str
    escalation: tuple[EscalationStep, ...]
    model_version: str | None = None
    bound: float | None = None
    below: bool = False
    """True when the metric alerts below its levels (accuracy)."""
    confidence: float = 0.95
    critical: float | None = None
    """The rule's critical level."""

    @property
    def past_critical(self) -> bool:
        """A warning whose point estimate is past the critical level (not yet with confidence):
        it does not pause, but it blocks a GO."""
        if self.level is not AlertLevel.WARNING or self.critical is None or self.value is None:
            return False
        return self.value < self.critical if self.below else self.value > self.critical

    def _subject(self) -> str:
        name, where = _NAMES[self.metric], _where(self.segment)
        version = f" of model {self.model_version}" if self.model_version is not None else ""
        return f"{name}{version} {where}"

    def _bound_words(self) -> str:
        if self.bound is None:
            return "point estimate"
        word = "at most" if self.below else "at least"
        conf = f"{round(100 * self.confidence)}%"
        return f"{word} {_fmt(self.metric, self.bound)} at {conf} confidence"

    @property
    def sentence(self) -> str:
        subject = self._subject()
        if self.status is AlertStatus.INSUFFICIENT:
            span = "7 days" if self.metric == "psi" else "24 h"
            return f"The {subject} cannot be checked: {self.n:,} observations in the last {span}."
        if self.level is None:
            return f"The {subject} is {_fmt(self.metric, self.value)}: no alert."
        word = "below" if self.below else "above"
        if self.metric == "psi":
            return (
                f"{self.level.value.capitalize()} alert: {subject} is "
                f"{_fmt(self.metric, self.value)} over the last 7 days against the baseline "
                f"week ({word} the {self.level.value} level {_fmt(self.metric, self.threshold)} "
                f"for these sample sizes, n = {self.n:,}); action: {self.action}."
            )
        unproven = (
            f", past the critical {_fmt(self.metric, self.critical)} on the point estimate only"
            if self.past_critical
            else ""
        )
        return (
            f"{self.level.value.capitalize()} alert: {subject} is "
            f"{_fmt(self.metric, self.value)} in the last 24 h ({word} "
            f"{_fmt(self.metric, self.threshold)}; n = {self.n:,}, {self._bound_words()}"
            f"{unproven}); action: {self.action}."
        )


def _value_n_bounds(
    obs: Count | Observed | None, alpha: float
) -> tuple[float | None, int, float | None, float | None]:
    """(value, n, lower bound, upper bound): exact one-sided bounds for a Count."""
    if obs is None:
        return None, 0, None, None
    if isinstance(obs, Count):
        if obs.n == 0:
            return None, 0, None, None
        return (
            obs.rate,
            obs.n,
            clopper_pearson_lower(obs.k, obs.n, alpha=alpha),
            clopper_pearson_upper(obs.k, obs.n, alpha=alpha),
        )
    return obs.value, obs.n, obs.ci_low, obs.ci_high


def _check(
    rule: AlertRule,
    segment: str,
    obs: Count | Observed | None,
    config: RolloutConfig,
    version: str | None = None,
) -> Alert:
    level_conf = config.statistics.confidence_level
    value, n, low, high = _value_n_bounds(obs, 1.0 - level_conf)
    below = rule.direction == "below"
    bound = high if below else low
    common = {
        "metric": rule.metric,
        "segment": segment,
        "value": value,
        "n": n,
        "action": rule.action,
        "escalation": tuple(config.escalation),
        "model_version": version,
        "bound": bound,
        "below": below,
        "confidence": level_conf,
        "critical": rule.critical,
    }
    if value is None or n < config.alerts.min_n:
        return Alert(status=AlertStatus.INSUFFICIENT, level=None, threshold=rule.warning, **common)

    def beyond(x: float, t: float) -> bool:
        return x < t if below else x > t

    # Critical needs the bound past the critical level; without a bound, the point estimate.
    if beyond(value if bound is None else bound, rule.critical):
        return Alert(
            status=AlertStatus.FIRING, level=AlertLevel.CRITICAL, threshold=rule.critical, **common
        )
    if beyond(value, rule.warning) or beyond(value, rule.critical):
        return Alert(
            status=AlertStatus.FIRING, level=AlertLevel.WARNING, threshold=rule.warning, **common
        )
    return Alert(status=AlertStatus.OK, level=None, threshold=rule.warning, **common)


def _by_version(evidence: Evidence) -> list[tuple[str | None, object]]:
    if evidence.rolling_24h_by_version:
        return list(evidence.rolling_24h_by_version.items())
    return [(None, evidence.rolling_24h)]


def evaluate_alerts(evidence: Evidence, config: RolloutConfig) -> list[Alert]:
    """Check every alert rule overall and for every configured segment, per model version,
    then the confidence drift of each version (`evaluate_drift`).

    Returns every check (firing, ok and insufficient data): versions in evidence order (the
    one being rolled out first), within a version rules in config order and, within a rule,
    ``"all"`` first then the configured segments.
    """
    shadow = config.phases[config.phase].mode is Mode.SHADOW
    out = []
    for version, rolling in _by_version(evidence):
        for rule in config.alerts.rules:
            if rule.metric == "override_rate" and shadow:
                continue
            for segment in (ALL, *config.segments):
                obs = rolling.get((rule.metric, segment))  # type: ignore[attr-defined]
                out.append(_check(rule, segment, obs, config, version))
    out += evaluate_drift(evidence, config)
    return out


def evaluate_drift(evidence: Evidence, config: RolloutConfig) -> list[Alert]:
    """One ``psi`` check per model version in `Evidence.drift`: critical past the
    sample-size-aware critical level, warning past the warning level, else ok; insufficient
    below ``statistics.psi_min_n`` current items or without a baseline."""
    return [_drift_alert(d, config) for d in evidence.drift]


def _drift_alert(d: Drift, config: RolloutConfig) -> Alert:
    common = {
        "metric": "psi",
        "segment": ALL,
        "value": d.psi,
        "n": d.n_current,
        "action": DRIFT_ACTION,
        "escalation": tuple(config.escalation),
        "model_version": d.model_version,
        "confidence": config.statistics.confidence_level,
    }
    if d.status == "critical":
        return Alert(
            status=AlertStatus.FIRING, level=AlertLevel.CRITICAL, threshold=d.critical, **common
        )
    if d.status == "warning":
        return Alert(
            status=AlertStatus.FIRING, level=AlertLevel.WARNING, threshold=d.warning, **common
        )
    status = AlertStatus.INSUFFICIENT if d.status == "insufficient" else AlertStatus.OK
    # NaN when insufficient: show the plain (large-sample) warning level instead. Imported
    # here: the metrics package imports pandas (and with it pyarrow), which decide does not load.
    from trustramp.metrics.drift import PSI_WARNING

    threshold = d.warning if d.warning == d.warning else PSI_WARNING
    return Alert(status=status, level=None, threshold=threshold, **common)


# --------------------------------------------------------------------------- rollback


@dataclass(frozen=True)
class RollbackTrigger:
    """One automatic rollback trigger: did it fire, and on what evidence (a plain sentence)."""

    trigger: str
    fired: bool
    evidence: str
    segments: tuple[str, ...] = ()
    """The segments (or ``"all"``) where it fired."""
    model_version: str | None = None
    """The model version judged; None when versions were pooled (or no data)."""


@dataclass(frozen=True)
class _Bounded:
    segment: str
    value: float | None
    low: float | None
    high: float | None
    n: int


def _rollout_figures(
    evidence: Evidence, metric: str
) -> tuple[str | None, Mapping[tuple[str, str], Count | Observed]]:
    """(version, its last 24 h) for ``metric``: the version being rolled out when the evidence
    has per-version figures for the metric, else (None, the pooled ``rolling_24h``)."""
    by_version = evidence.rolling_24h_by_version
    if by_version:
        version = (
            evidence.model_version
            if evidence.model_version in by_version
            else next(iter(by_version))
        )
        figures = by_version[version]
        if any(m == metric for m, _ in figures):
            return version, figures
    return None, evidence.rolling_24h


def _bounded(
    figures: Mapping[tuple[str, str], Count | Observed], metric: str, segment: str, alpha: float
) -> _Bounded | None:
    obs = figures.get((metric, segment))
    if obs is None:
        return None
    value, n, low, high = _value_n_bounds(obs, alpha)
    return _Bounded(segment, value, low, high, n)


def _proportion_trigger(
    evidence: Evidence,
    config: RolloutConfig,
    *,
    trigger: str,
    metric: str,
    limit: float,
    below: bool,
    groups: tuple[str, ...],
) -> RollbackTrigger:
    alpha = 1.0 - config.statistics.confidence_level
    conf = f"{round(100 * config.statistics.confidence_level)}%"
    side = "below" if below else "above"
    version, figures = _rollout_figures(evidence, metric)
    name = _NAMES[metric] + (f" of model {version}" if version is not None else "")
    fired: list[str] = []
    sentences: list[str] = []
    seen: list[_Bounded] = []
    for segment in groups:
        b = _bounded(figures, metric, segment, alpha)
        if b is None or b.value is None:
            continue
        seen.append(b)
        bound = b.high if below else b.low
        where = _where(segment)
        if bound is not None:
            if (bound < limit) if below else (bound > limit):
                fired.append(segment)
                word = "at most" if below else "at least"
                sentences.append(
                    f"{name} {where} is {_fmt(metric, b.value)} on {b.n:,} in the "
                    f"last 24 h, {word} {_fmt(metric, bound)} at {conf} confidence, "
                    f"{side} the {_fmt(metric, limit)} limit"
                )
        elif b.n >= config.alerts.min_n and ((b.value < limit) if below else (b.value > limit)):
            fired.append(segment)
            sentences.append(
                f"{name} {where} is {_fmt(metric, b.value)} on {b.n:,} in the last "
                f"24 h (point estimate), {side} the {_fmt(metric, limit)} limit"
            )
    if fired:
        text = "; ".join(sentences)
        return RollbackTrigger(
            trigger, True, text[0].upper() + text[1:] + ".", tuple(fired), version
        )
    if not seen:
        data = f"{_NAMES[metric]} data" + (f" of model {version}" if version is not None else "")
        return RollbackTrigger(trigger, False, f"No {data} in the last 24 h.", (), version)
    overall = next((b for b in seen if b.segment == ALL), seen[0])
    return RollbackTrigger(
        trigger,
        False,
        f"Not {side} the {_fmt(metric, limit)} limit with confidence anywhere ({name} "
        f"{_where(overall.segment)} {_fmt(metric, overall.value)} on {overall.n:,}).",
        (),
        version,
    )


def _security_trigger(evidence: Evidence, config: RolloutConfig) -> RollbackTrigger:
    trigger = "security incident"
    if not config.rollback.on_security_incident:
        return RollbackTrigger(
            trigger, False, "Disabled in the config (rollback.on_security_incident: false)."
        )
    if evidence.incidents is None:
        return RollbackTrigger(trigger, False, "No incident log was provided.")
    active = [
        i
        for i in evidence.incidents
        if i.kind == IncidentKind.SECURITY and i.active_on(evidence.as_of)
    ]
    if not active:
        return RollbackTrigger(trigger, False, "No security incident is active.")
    listed = "; ".join(
        f"{i.incident_id} ({i.severity.value}: {i.title})"  # type: ignore[union-attr]
        for i in active
    )
    return RollbackTrigger(trigger, True, f"Security incident active: {listed}.", (ALL,))


def evaluate_rollback(evidence: Evidence, config: RolloutConfig) -> list[RollbackTrigger]:
    """The four automatic rollback triggers of playbook section 8, each fired or not.

    Accuracy and error rate are checked overall and in every configured segment, availability
    overall and wherever it is given; see the module docstring for when each fires.
    """
    rb = config.rollback
    groups = (ALL, *config.segments)
    return [
        _proportion_trigger(
            evidence,
            config,
            trigger="accuracy below minimum",
            metric="accuracy",
            limit=rb.accuracy_min,
            below=True,
            groups=groups,
        ),
        _proportion_trigger(
            evidence,
            config,
            trigger="error rate above critical",
            metric="error_rate",
            limit=rb.error_rate_max,
            below=False,
            groups=groups,
        ),
        _proportion_trigger(
            evidence,
            config,
            trigger="availability below SLA",
            metric="availability",
            limit=rb.availability_sla,
            below=True,
            groups=groups,
        ),
        _security_trigger(evidence, config),
    ]
