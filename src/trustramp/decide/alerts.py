"""Alerts and automatic rollback triggers on the rolling 24 h evidence (SPEC 3.3, playbook 7-8).

Alerts follow the config's table (accuracy below, latency p95 / error rate / override rate above a
warning and a critical level), overall and for every configured segment. They are monitoring
signals on point estimates: with at least ``alerts.min_n`` observations the value is compared with
the levels; below that the alert reports ``insufficient data`` — it neither fires nor stays silent.
Override-rate alerts are skipped in a shadow-mode phase, where nothing is shown to override.

Rollback triggers are stricter, because they recommend the kill switch: a proportion fires when its
exact one-sided bound at the confidence level is past the limit (accuracy's upper bound below
``rollback.accuracy_min``, the error rate's lower bound above ``rollback.error_rate_max``,
availability's upper bound below the SLA). When only a point estimate is available (an `Observed`
without interval) it fires on the point estimate, and only with ``alerts.min_n`` observations.
Any security incident active on the as-of day fires the security trigger. So a day at 88 % accuracy
on a few hundred items raises a critical alert (PAUSE) without yet proving a rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from trustramp.config import AlertRule, EscalationStep, RolloutConfig
from trustramp.contract import IncidentKind, Mode
from trustramp.decide.eprocess import clopper_pearson_lower, clopper_pearson_upper
from trustramp.decide.evidence import ALL, Count, Evidence, Observed

__all__ = [
    "Alert",
    "AlertLevel",
    "AlertStatus",
    "RollbackTrigger",
    "evaluate_alerts",
    "evaluate_rollback",
]


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
}


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric == "latency_p95":
        return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"
    if metric == "availability":
        return f"{100 * value:.2f}%"
    return f"{100 * value:.1f}%"


def _where(segment: str) -> str:
    return "overall" if segment == ALL else f"in {segment}"


@dataclass(frozen=True)
class Alert:
    """One alert rule checked for one segment on the last 24 h.

    ``threshold`` is the level's (the warning level when not firing); ``escalation`` is the
    config's escalation path, with timings.
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

    @property
    def sentence(self) -> str:
        name, where = _NAMES[self.metric], _where(self.segment)
        if self.status is AlertStatus.INSUFFICIENT:
            return (
                f"The {name} {where} cannot be checked: {self.n:,} observations in the last 24 h."
            )
        word = "below" if self.metric == "accuracy" else "above"
        if self.level is None:
            return f"The {name} {where} is {_fmt(self.metric, self.value)}: no alert."
        return (
            f"{self.level.value.capitalize()} alert: {name} {where} is "
            f"{_fmt(self.metric, self.value)} in the last 24 h ({word} "
            f"{_fmt(self.metric, self.threshold)}, n = {self.n:,}); action: {self.action}."
        )


def _value_n(obs: Count | Observed | None) -> tuple[float | None, int]:
    if obs is None:
        return None, 0
    if isinstance(obs, Count):
        return obs.rate, obs.n
    return obs.value, obs.n


def _check(
    rule: AlertRule, segment: str, obs: Count | Observed | None, config: RolloutConfig
) -> Alert:
    value, n = _value_n(obs)
    escalation = tuple(config.escalation)
    if value is None or n < config.alerts.min_n:
        return Alert(
            rule.metric,
            segment,
            AlertStatus.INSUFFICIENT,
            None,
            value,
            rule.warning,
            n,
            rule.action,
            escalation,
        )
    beyond = (lambda t: value < t) if rule.direction == "below" else (lambda t: value > t)
    if beyond(rule.critical):
        level, threshold = AlertLevel.CRITICAL, rule.critical
    elif beyond(rule.warning):
        level, threshold = AlertLevel.WARNING, rule.warning
    else:
        return Alert(
            rule.metric,
            segment,
            AlertStatus.OK,
            None,
            value,
            rule.warning,
            n,
            rule.action,
            escalation,
        )
    return Alert(
        rule.metric,
        segment,
        AlertStatus.FIRING,
        level,
        value,
        threshold,
        n,
        rule.action,
        escalation,
    )


def evaluate_alerts(evidence: Evidence, config: RolloutConfig) -> list[Alert]:
    """Check every alert rule overall and for every configured segment.

    Returns every check (firing, ok and insufficient data), rules in config order and, within a
    rule, ``"all"`` first then the configured segments.
    """
    shadow = config.phases[config.phase].mode is Mode.SHADOW
    out = []
    for rule in config.alerts.rules:
        if rule.metric == "override_rate" and shadow:
            continue
        for segment in (ALL, *config.segments):
            out.append(
                _check(rule, segment, evidence.rolling_24h.get((rule.metric, segment)), config)
            )
    return out


# --------------------------------------------------------------------------- rollback


@dataclass(frozen=True)
class RollbackTrigger:
    """One automatic rollback trigger: did it fire, and on what evidence (a plain sentence)."""

    trigger: str
    fired: bool
    evidence: str
    segments: tuple[str, ...] = ()
    """The segments (or ``"all"``) where it fired."""


@dataclass(frozen=True)
class _Bounded:
    segment: str
    value: float | None
    low: float | None
    high: float | None
    n: int


def _bounded(evidence: Evidence, metric: str, segment: str, alpha: float) -> _Bounded | None:
    obs = evidence.rolling_24h.get((metric, segment))
    if obs is None:
        return None
    if isinstance(obs, Count):
        if obs.n == 0:
            return _Bounded(segment, None, None, None, 0)
        return _Bounded(
            segment,
            obs.rate,
            clopper_pearson_lower(obs.k, obs.n, alpha=alpha),
            clopper_pearson_upper(obs.k, obs.n, alpha=alpha),
            obs.n,
        )
    return _Bounded(segment, obs.value, obs.ci_low, obs.ci_high, obs.n)


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
    name, side = _NAMES[metric], ("below" if below else "above")
    fired: list[str] = []
    sentences: list[str] = []
    seen: list[_Bounded] = []
    for segment in groups:
        b = _bounded(evidence, metric, segment, alpha)
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
        return RollbackTrigger(trigger, True, text[0].upper() + text[1:] + ".", tuple(fired))
    if not seen:
        return RollbackTrigger(trigger, False, f"No {name} data in the last 24 h.")
    overall = next((b for b in seen if b.segment == ALL), seen[0])
    return RollbackTrigger(
        trigger,
        False,
        f"Not {side} the {_fmt(metric, limit)} limit with confidence anywhere ({name} "
        f"{_where(overall.segment)} {_fmt(metric, overall.value)} on {overall.n:,}).",
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
