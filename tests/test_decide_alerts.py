"""The alert table (playbook section 7) and the automatic rollback triggers (section 8)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
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
from trustramp.decide.evidence import Count, Drift, Evidence, Incident, Observed

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


# --------------------------------------------------------------------------- evidence grading


def _critical_by_k(n: int, cfg: RolloutConfig) -> np.ndarray:
    """For every k in 0..n, whether k correct of n raises a critical accuracy alert."""
    out = np.zeros(n + 1, dtype=bool)
    for k in range(n + 1):
        a = one(evaluate_alerts(evidence({("accuracy", "all"): Count(k, n)}), cfg), "accuracy")
        out[k] = a.level is C
    return out


@pytest.mark.parametrize("true_accuracy", [0.90, 0.93])
def test_critical_accuracy_alerts_fire_at_most_at_the_nominal_rate(true_accuracy: float) -> None:
    # A version whose true accuracy sits exactly on the critical line (90%), or on the warning
    # line (93%), over n = 756 items a night: the point estimate is below 90% on about half of
    # the nights at 90%; the critical alert (exact upper bound below 90%) on at most 5%.
    cfg, n = config(), 756
    critical = _critical_by_k(n, cfg)
    exact = float(stats.binom.pmf(np.arange(n + 1), n, true_accuracy) @ critical)
    nights = np.random.default_rng(16).binomial(n, true_accuracy, size=20_000)
    simulated = float(critical[nights].mean())
    point = float((nights / n < 0.90).mean())  # the old rule: point estimate below critical
    nominal = 1 - cfg.statistics.confidence_level
    print(
        f"true accuracy {true_accuracy:.2f}, n={n}: critical alerts exact {exact:.4f}, "
        f"simulated {simulated:.4f} (nominal {nominal:.2f}); point-estimate rule {point:.4f}"
    )
    assert exact <= nominal
    assert simulated <= nominal + 3 * np.sqrt(nominal * (1 - nominal) / nights.size)
    if true_accuracy == 0.90:
        assert point > 0.4  # what the old rule did: a critical alert every other night


def test_critical_alerts_need_the_bound_past_the_level() -> None:
    # Clopper–Pearson's one-sided 95% bound (statsmodels' two-sided 90% interval).
    cfg = config()
    for k, n in [(880, 1_000), (260, 300), (9_000, 10_100)]:
        a = one(evaluate_alerts(evidence({("accuracy", "all"): Count(k, n)}), cfg), "accuracy")
        _, upper = proportion_confint(k, n, alpha=0.10, method="beta")
        assert a.bound == pytest.approx(upper, rel=1e-9)
        assert (a.level is C) == (upper < 0.90)
        assert f"n = {n:,}" in a.sentence and "at 95% confidence" in a.sentence
    err = one(
        evaluate_alerts(evidence({("error_rate", "all"): Count(62, 1_000)}), cfg), "error_rate"
    )
    lower, _ = proportion_confint(62, 1_000, alpha=0.10, method="beta")
    assert err.bound == pytest.approx(lower, rel=1e-9)
    assert err.level is (C if lower > 0.05 else W)
    assert "at least" in err.sentence


def test_latency_alert_uses_its_bound() -> None:
    cfg = config()
    unproven = Observed(10_500.0, 400, ci_low=9_200.0, ci_high=11_900.0)
    proven = Observed(12_000.0, 400, ci_low=10_400.0, ci_high=13_900.0)
    a = one(evaluate_alerts(evidence({("latency_p95", "all"): unproven}), cfg), "latency_p95")
    assert (a.level, a.past_critical) == (W, True)
    b = one(evaluate_alerts(evidence({("latency_p95", "all"): proven}), cfg), "latency_p95")
    assert b.level is C and "at least 10.4 s at 95% confidence" in b.sentence


def test_alerts_are_per_model_version_not_pooled() -> None:
    # The issue's night: 756 labeled items in the last 24 h, 89.6% pooled, mixing v1's production
    # predictions (shown, nothing unshown to measure) and v2's shadow predictions. Pooled, the
    # accuracy alert is a warning about nobody; per version, v2 is proven below 90% and v1's
    # error rate is fine.
    v2 = {("accuracy", "all"): Count(296, 356), ("error_rate", "all"): Count(2, 400)}
    v1 = {("accuracy", "all"): Count(381, 400), ("error_rate", "all"): Count(40, 1_000)}
    pooled = {("accuracy", "all"): Count(677, 756), ("error_rate", "all"): Count(42, 1_400)}
    cfg = config()
    mixed = one(evaluate_alerts(evidence(pooled), cfg), "accuracy")
    assert mixed.model_version is None and mixed.level is W
    alerts = evaluate_alerts(evidence(pooled, rolling_24h_by_version={"v2": v2, "v1": v1}), cfg)
    acc = {a.model_version: a for a in alerts if a.metric == "accuracy" and a.segment == "all"}
    assert set(acc) == {"v2", "v1"}
    assert acc["v2"].level is C and acc["v2"].n == 356
    assert "accuracy of model v2 overall is 83.1%" in acc["v2"].sentence
    assert acc["v1"].status is OK_
    err = {a.model_version: a for a in alerts if a.metric == "error_rate" and a.segment == "all"}
    assert err["v1"].level is W and err["v2"].status is OK_
    # v2 (the version being rolled out) first.
    assert alerts[0].model_version == "v2"


def test_rollback_triggers_judge_the_version_being_rolled_out() -> None:
    # The demo's night: pooled over v1 and v2 the accuracy is 84.9% on 2,777, while the version
    # being rolled out (v2) is 85.0% on 2,638; v1's 139 shown-and-labeled items say nothing about
    # v2. With rollback.accuracy_min 0.87 the trigger judges v2 alone and names it with its n.
    v2 = {("accuracy", "all"): Count(2_242, 2_638), ("error_rate", "all"): Count(30, 3_000)}
    v1 = {("accuracy", "all"): Count(116, 139), ("error_rate", "all"): Count(400, 3_000)}
    pooled = {
        ("accuracy", "all"): Count(2_358, 2_777),
        ("error_rate", "all"): Count(430, 6_000),
        ("availability", "all"): Count(5_570, 6_000),
    }
    cfg = config(rollback={"accuracy_min": 0.87})
    ev = Evidence(
        feature="f",
        as_of=AS_OF,
        window_start=dt.date(2026, 11, 1),
        window_end=dt.date(2026, 11, 13),
        model_version="v2",
        rolling_24h=pooled,
        rolling_24h_by_version={"v1": v1, "v2": v2},  # the certified version need not be first
    )
    triggers = {t.trigger: t for t in evaluate_rollback(ev, cfg)}
    acc = triggers["accuracy below minimum"]
    _, upper = proportion_confint(2_242, 2_638, alpha=0.10, method="beta")
    assert acc.fired == (upper < 0.87) and acc.model_version == "v2"
    assert "Accuracy of model v2 overall is 85.0% on 2,638" in acc.evidence
    assert "2,777" not in acc.evidence
    # v1's error rate (13.3%) is past the 5% limit, v2's (1.0%) is not: v2 is judged.
    err = triggers["error rate above critical"]
    assert not err.fired and err.model_version == "v2"
    assert "error rate of model v2 overall 1.0% on 3,000" in err.evidence
    # Availability is the service's: no per-version figures, the pooled count is judged.
    avail = triggers["availability below SLA"]
    assert avail.fired and avail.model_version is None and "on 6,000" in avail.evidence
    # Without per-version figures the pooled counts are judged, as before.
    pooled_only = {t.trigger: t for t in evaluate_rollback(evidence(pooled), cfg)}
    assert pooled_only["error rate above critical"].fired
    assert pooled_only["accuracy below minimum"].model_version is None
    assert "Accuracy overall is 84.9% on 2,777" in pooled_only["accuracy below minimum"].evidence


def test_verdict_alerts_carry_the_model_version() -> None:
    from trustramp.decide.verdict import decide, verdict_schema

    jsonschema = pytest.importorskip("jsonschema")
    v2 = {("accuracy", "all"): Count(306, 356)}
    ev = evidence({}, rolling_24h_by_version={"v2": v2})
    doc = decide(ev, config(), trustramp_version="t").to_dict()
    jsonschema.validate(doc, verdict_schema())
    (acc,) = [a for a in doc["alerts"] if a["metric"] == "accuracy" and a["segment"] == "all"]
    assert acc["model_version"] == "v2" and acc["level"] == "critical"
    assert acc["bound"] == pytest.approx(proportion_confint(306, 356, 0.10, "beta")[1])


# --------------------------------------------------------------------------- drift


def _drift(status: str, psi: float = 0.4) -> Drift:
    return Drift("v2", psi, 0.1, 0.25, status, n_baseline=5_000, n_current=3_000)


def test_critical_drift_alerts_and_asks_to_recertify_the_thresholds() -> None:
    from trustramp.decide.verdict import decide, verdict_schema

    jsonschema = pytest.importorskip("jsonschema")
    cfg = config()
    (a,) = evaluate_alerts(evidence({}, drift=[_drift("critical")]), cfg)[-1:]
    assert (a.metric, a.model_version, a.level, a.threshold) == ("psi", "v2", C, 0.25)
    assert "re-certify the routing thresholds" in a.action
    assert [e.role for e in a.escalation][:2] == ["On-call engineer", "ML Lead"]
    doc = decide(evidence({}, drift=[_drift("critical")]), cfg, trustramp_version="t").to_dict()
    jsonschema.validate(doc, verdict_schema())
    assert doc["thresholds_recertify"]["required"] is True
    assert "confidence drift (PSI) of model v2" in doc["thresholds_recertify"]["reason"]
    assert "Escalate: On-call engineer" in doc["thresholds_recertify"]["reason"]
    assert doc["verdict"] != "GO"
    calm = decide(evidence({}, drift=[_drift("warning", 0.15)]), cfg, trustramp_version="t")
    assert calm.to_dict()["thresholds_recertify"] == {"required": False, "reason": None}
    (w,) = [x for x in calm.alerts if x.metric == "psi"]
    assert w.level is W


def test_confidence_drift_from_aggregates_uses_the_sample_size_aware_levels() -> None:
    from trustramp.evaluate.evidence import confidence_drift
    from trustramp.evaluate.windows import windows_for
    from trustramp.metrics import psi_result
    from trustramp.store.aggregates import Aggregates

    cfg = config()
    win = windows_for(cfg, AS_OF)
    rng = np.random.default_rng(3)
    base = rng.multinomial(4_000, np.full(10, 0.1))
    shifted = rng.multinomial(900, np.r_[np.full(5, 0.02), np.full(5, 0.18)])
    same = rng.multinomial(900, np.full(10, 0.1))
    rows = []
    for version, current in (("v2", shifted), ("v1", same)):
        for b in range(10):
            rows.append((version, win.baseline_start, b, int(base[b])))
            rows.append((version, AS_OF, b, int(current[b])))
    conf = pd.DataFrame(rows, columns=["model_version", "day", "bin", "n"])
    empty = pd.DataFrame()
    aggs = Aggregates("f", win.first, AS_OF, 10, 0.01, empty, empty, empty, empty, conf)
    drift = {d.model_version: d for d in confidence_drift(aggs, win, 500)}
    for version, current in (("v2", shifted), ("v1", same)):
        ref = psi_result(base, current, min_n=500)
        assert drift[version].psi == pytest.approx(ref.value)
        assert drift[version].status == ref.status.value
    assert drift["v2"].status == "critical" and drift["v1"].status == "ok"
    assert confidence_drift(aggs, win, 1_000) == []  # fewer current items than psi_min_n


def test_latency_p95_bounds_cover_at_the_nominal_rate() -> None:
    # Order-statistic bounds on the p95, read off the fixed latency histogram: how often is the
    # true p95 of a lognormal below the lower bound (a false critical)?
    from trustramp.evaluate.evidence import _quantile_bounds
    from trustramp.metrics import N_LATENCY_BINS, latency_bin

    rng = np.random.default_rng(5)
    mu, sigma, n, sims = np.log(2_000.0), 0.8, 400, 1_000
    true_p95 = float(np.exp(mu + sigma * stats.norm.ppf(0.95)))
    draws = rng.lognormal(mu, sigma, size=(sims, n))
    bins = np.asarray(latency_bin(draws), dtype=np.int64)
    over = under = 0
    for row in bins:
        lo, hi = _quantile_bounds(np.bincount(row, minlength=N_LATENCY_BINS), 0.95, 0.05)
        over += lo > true_p95
        under += hi < true_p95
    print(
        f"p95 bounds, n={n}: lower above the truth {over / sims:.3f}, upper below "
        f"{under / sims:.3f} (nominal 0.05 each)"
    )
    assert over / sims <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / sims)
    assert under / sims <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / sims)


def test_rolling_by_version_matches_raw_rows(demo_lake: dict) -> None:
    """The per-version 24 h evidence equals counts on the raw rows of that version and day."""
    from conftest import demo_gate, raw_joined

    from trustramp.evaluate.evidence import rolling_by_version

    cfg = demo_lake["config"]
    win, aggs, pop = demo_gate(demo_lake)
    got = rolling_by_version(aggs, win, cfg, [pop.version, pop.previous])
    raw = raw_joined(demo_lake["home"], cfg.feature)
    raw = raw[pd.to_datetime(raw["date"]).dt.date == win.as_of]
    assert list(got) == [v for v in (pop.version, pop.previous) if v in set(raw["model_version"])]
    for version, rolling in got.items():
        r = raw[raw["model_version"] == version]
        failed = r["status"].isin(["error", "timeout"])
        ok = ~failed & r["confidence"].notna() & r["human_label"].notna()
        unshown = r[ok & (r["mode"] == "shadow")]
        for seg in ("all", *cfg.segments):
            u = unshown if seg == "all" else unshown[unshown["segment"] == seg]
            s = r if seg == "all" else r[r["segment"] == seg]
            acc = rolling[("accuracy", seg)]
            assert (acc.k, acc.n) == (int((u["human_label"] == u["predicted_label"]).sum()), len(u))
            err = rolling[("error_rate", seg)]
            assert (err.k, err.n) == (int(s["status"].isin(["error", "timeout"]).sum()), len(s))
        lat = rolling[("latency_p95", "all")]
        assert lat.n == int(r["latency_ms"].notna().sum())
        assert lat.ci_low <= lat.value <= lat.ci_high
