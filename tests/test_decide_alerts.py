"""The alert table (playbook section 7) and the automatic rollback triggers (section 8)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from statsmodels.stats.proportion import proportion_confint

from trustramp.config import RolloutConfig, parse_config
from trustramp.decide.alerts import (
    Alert,
    AlertLevel,
    AlertStatus,
    RollbackTrigger,
    evaluate_alerts,
    evaluate_rollback,
)
from trustramp.decide.evidence import Count, Evidence, Incident, Observed

AS_OF = dt.date(2026, 11, 20)
SEGS = ("internal", "smb", "mid_market", "enterprise")


def config(**over: Any) -> RolloutConfig:
    return parse_config(
        {"feature": "f", "phase": "controlled", "step": 10, "phase_started": "2026-10-01", **over}
    )


def evidence(
    rolling: dict[tuple[str, str], Count | Observed] | None = None, **over: Any
) -> Evidence:
    return Evidence(
        feature="f",
        as_of=AS_OF,
        window_start=dt.date(2026, 11, 1),
        window_end=dt.date(2026, 11, 13),
        model_version="v7",
        rolling_24h=rolling or {},
        **over,
    )


def rate(value: float, n: int = 1_000) -> Count:
    return Count(round(value * n), n)


def one(alerts: list[Alert], metric: str, segment: str = "all") -> Alert:
    (found,) = [a for a in alerts if a.metric == metric and a.segment == segment]
    return found


# --------------------------------------------------------------------------- alerts

F, OK_, NA = AlertStatus.FIRING, AlertStatus.OK, AlertStatus.INSUFFICIENT
W, C = AlertLevel.WARNING, AlertLevel.CRITICAL


@pytest.mark.parametrize(
    "metric, obs, status, level, threshold",
    [
        # accuracy: warning < 93%, critical < 90%
        ("accuracy", rate(0.95), OK_, None, 0.93),
        ("accuracy", rate(0.93), OK_, None, 0.93),  # at the level: not below it
        ("accuracy", rate(0.929), F, W, 0.93),
        ("accuracy", rate(0.90), F, W, 0.93),  # at critical: still only a warning
        # critical needs the 95% upper bound below 90%: 89.9% on 1,000 (bound 91.4%) is a
        # warning past the critical level on the point estimate only; 87% (bound 88.7%) critical
        ("accuracy", rate(0.899), F, W, 0.93),
        ("accuracy", rate(0.87), F, C, 0.90),
        ("accuracy", rate(0.95, 99), NA, None, 0.93),  # below min_n = 100
        ("accuracy", rate(0.50, 99), NA, None, 0.93),  # even when terrible
        ("accuracy", rate(0.50, 100), F, C, 0.90),  # min_n is inclusive
        # latency p95 (ms): warning > 5 s, critical > 10 s
        ("latency_p95", Observed(4_000.0, 1_000), OK_, None, 5_000),
        ("latency_p95", Observed(5_000.0, 1_000), OK_, None, 5_000),
        ("latency_p95", Observed(5_001.0, 1_000), F, W, 5_000),
        ("latency_p95", Observed(10_001.0, 1_000), F, C, 10_000),
        ("latency_p95", Observed(20_000.0, 50), NA, None, 5_000),
        ("latency_p95", Observed(None, 1_000), NA, None, 5_000),
        # error rate: warning > 2%, critical > 5%
        ("error_rate", rate(0.01), OK_, None, 0.02),
        ("error_rate", rate(0.02), OK_, None, 0.02),
        ("error_rate", rate(0.021), F, W, 0.02),
        ("error_rate", rate(0.051), F, W, 0.02),  # lower bound 4.0%: not above 5%
        ("error_rate", rate(0.07), F, C, 0.05),  # lower bound 5.8%
        ("error_rate", rate(0.30, 60), NA, None, 0.02),
        # override rate: warning > 30%, critical > 50%
        ("override_rate", rate(0.20), OK_, None, 0.30),
        ("override_rate", rate(0.31), F, W, 0.30),
        ("override_rate", rate(0.51), F, W, 0.30),  # lower bound 48.4%
        ("override_rate", rate(0.56), F, C, 0.50),  # lower bound 53.4%
        ("override_rate", rate(0.90, 10), NA, None, 0.30),
    ],
)
def test_every_alert_row(
    metric: str,
    obs: Count | Observed,
    status: AlertStatus,
    level: AlertLevel | None,
    threshold: float,
) -> None:
    alerts = evaluate_alerts(evidence({(metric, "all"): obs}), config())
    a = one(alerts, metric)
    assert (a.status, a.level, a.threshold) == (status, level, threshold)
    assert a.n == obs.n
    action = {
        "accuracy": "pause rollout",
        "latency_p95": "scale up",
        "error_rate": "roll back",
        "override_rate": "investigate",
    }[metric]
    assert a.action == action
    if status is F:
        assert f"action: {action}" in a.sentence
        assert a.sentence.startswith(f"{level.value.capitalize()} alert")  # type: ignore[union-attr]
    if status is NA:
        assert "cannot be checked" in a.sentence


def test_alerts_are_checked_per_segment_with_the_escalation_path() -> None:
    rolling = {("accuracy", s): rate(0.97) for s in ("all", *SEGS)}
    rolling[("accuracy", "enterprise")] = rate(0.85, 400)
    alerts = evaluate_alerts(evidence(rolling), config())
    firing = [a for a in alerts if a.status is F]
    assert [(a.metric, a.segment, a.level) for a in firing] == [("accuracy", "enterprise", C)]
    esc = firing[0].escalation
    assert [(e.step, e.role, e.within_minutes) for e in esc] == [
        (1, "On-call engineer", 0),
        (2, "ML Lead", 15),
        (3, "Product Lead + Engineering Lead", 60),
        (4, "VP Engineering", 120),
    ]
    # every rule × (all + 4 segments); no data counts as insufficient, never as fine
    assert len(alerts) == 4 * 5
    assert one(alerts, "error_rate", "smb").status is NA


def test_override_alerts_are_skipped_in_shadow_mode() -> None:
    alerts = evaluate_alerts(
        evidence({("override_rate", "all"): rate(0.9)}), config(phase="shadow", step=None)
    )
    assert not [a for a in alerts if a.metric == "override_rate"]


def test_configured_levels_and_min_n_are_used() -> None:
    cfg = config(
        alerts={
            "min_n": 10,
            "rules": [
                {
                    "metric": "accuracy",
                    "direction": "below",
                    "warning": 0.8,
                    "critical": 0.7,
                    "action": "pause",
                }
            ],
        }
    )
    a = one(evaluate_alerts(evidence({("accuracy", "all"): rate(0.75, 20)}), cfg), "accuracy")
    assert (a.status, a.level, a.threshold, a.action) == (F, W, 0.8, "pause")


# --------------------------------------------------------------------------- rollback


def trigger(triggers: list[RollbackTrigger], name: str) -> RollbackTrigger:
    (t,) = [t for t in triggers if t.trigger == name]
    return t


@pytest.mark.parametrize(
    "k, n",
    [
        (800, 1_000),
        (880, 1_000),
        (883, 1_000),
        (265, 300),
        (85, 100),
        (0, 5),
        (2, 5),
        (890, 1_000),
        (950, 1_000),
    ],
)
def test_accuracy_trigger_fires_when_the_exact_upper_bound_is_below_the_minimum(
    k: int, n: int
) -> None:
    _, upper = proportion_confint(k, n, alpha=0.10, method="beta")  # one-sided 95%
    t = trigger(
        evaluate_rollback(evidence({("accuracy", "all"): Count(k, n)}), config()),
        "accuracy below minimum",
    )
    assert t.fired == (upper < 0.90)
    if t.fired:
        assert t.segments == ("all",) and "at most" in t.evidence


@pytest.mark.parametrize(
    "obs, fired",
    [
        (Observed(0.85, 150), True),  # no interval: point estimate with n >= min_n
        (Observed(0.85, 99), False),  # ... but not below min_n
        (Observed(0.85, 20, 0.70, 0.89), True),  # an interval: its upper bound decides
        (Observed(0.85, 20, 0.70, 0.95), False),
        (Observed(None, 0), False),
    ],
)
def test_accuracy_trigger_with_observed_values(obs: Observed, fired: bool) -> None:
    t = trigger(
        evaluate_rollback(evidence({("accuracy", "smb"): obs}), config()), "accuracy below minimum"
    )
    assert t.fired is fired
    if fired:
        assert t.segments == ("smb",) and "in smb" in t.evidence


@pytest.mark.parametrize("k, n", [(80, 1_000), (60, 1_000), (55, 1_000), (10, 100), (3, 20)])
def test_error_trigger_fires_when_the_exact_lower_bound_is_above_critical(k: int, n: int) -> None:
    lower, _ = proportion_confint(k, n, alpha=0.10, method="beta")
    t = trigger(
        evaluate_rollback(evidence({("error_rate", "enterprise"): Count(k, n)}), config()),
        "error rate above critical",
    )
    assert t.fired == (lower > 0.05)


@pytest.mark.parametrize(
    "obs, fired",
    [
        (Count(98_500, 100_000), True),  # the default SLA is 0.99
        (Count(99_600, 100_000), False),
        (Observed(0.985, 1_000), True),
        (Observed(0.985, 10), False),
    ],
)
def test_availability_trigger(obs: Count | Observed, fired: bool) -> None:
    t = trigger(
        evaluate_rollback(evidence({("availability", "all"): obs}), config()),
        "availability below SLA",
    )
    assert t.fired is fired


def _security(opened: str, resolved: str | None) -> Incident:
    return Incident(
        "SEC-1",
        "minor",
        "security",
        "token leak",
        dt.datetime.fromisoformat(opened),
        dt.datetime.fromisoformat(resolved) if resolved else None,
    )


@pytest.mark.parametrize(
    "incidents, cfg_over, fired",
    [
        ([_security("2026-11-19T10:00:00", None)], {}, True),
        ([_security("2026-11-20T10:00:00", "2026-11-20T11:00:00")], {}, True),  # detected that day
        ([_security("2026-11-10T10:00:00", "2026-11-19T11:00:00")], {}, False),  # resolved before
        ([_security("2026-11-21T10:00:00", None)], {}, False),  # after as_of
        (
            [_security("2026-11-19T10:00:00", None)],
            {"rollback": {"on_security_incident": False}},
            False,
        ),
        (None, {}, False),
        ([], {}, False),
    ],
)
def test_security_trigger(
    incidents: list[Incident] | None, cfg_over: dict[str, Any], fired: bool
) -> None:
    t = trigger(
        evaluate_rollback(evidence(incidents=incidents), config(**cfg_over)), "security incident"
    )
    assert t.fired is fired
    if incidents is None:
        assert t.evidence == "No incident log was provided."


def test_triggers_are_always_listed_and_quiet_without_data() -> None:
    triggers = evaluate_rollback(evidence(), config())
    assert [t.trigger for t in triggers] == [
        "accuracy below minimum",
        "error rate above critical",
        "availability below SLA",
        "security incident",
    ]
    assert not any(t.fired for t in triggers)
    assert triggers[0].evidence == "No accuracy data in the last 24 h."


def test_trigger_limits_come_from_the_config() -> None:
    ev = evidence({("accuracy", "all"): Count(900, 1_000)})
    assert not trigger(evaluate_rollback(ev, config()), "accuracy below minimum").fired
    cfg = config(rollback={"accuracy_min": 0.95})
    assert trigger(evaluate_rollback(ev, cfg), "accuracy below minimum").fired
