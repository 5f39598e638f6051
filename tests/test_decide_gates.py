"""Phase gates: the proportion judge, criteria, the phase state machine and the segment plan."""

from __future__ import annotations

import datetime as dt
import doctest
import math
from typing import Any

import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import proportion_confint

from trustramp.config import Phase, RolloutConfig, parse_config
from trustramp.decide import gates
from trustramp.decide.evidence import Count, Evidence, Incident, SegmentFlag
from trustramp.decide.gates import (
    NextStep,
    Outcome,
    evaluate_phase,
    items_needed,
    judge_proportion,
    next_step,
    segment_plan,
)
from trustramp.errors import ConfigError

AS_OF = dt.date(2026, 11, 20)
SEGS = ("internal", "smb", "mid_market", "enterprise")


def config(**over: Any) -> RolloutConfig:
    return parse_config({"feature": "f", "phase_started": "2026-10-01", **over})


def evidence(**over: Any) -> Evidence:
    base: dict[str, Any] = dict(
        feature="f",
        as_of=AS_OF,
        window_start=dt.date(2026, 11, 1),
        window_end=dt.date(2026, 11, 13),
        model_version="v7",
        accuracy={"all": Count(9_700, 10_000), **{s: Count(2_425, 2_500) for s in SEGS}},
        error={"all": Count(20, 10_000), **{s: Count(5, 2_500) for s in SEGS}},
        override={"all": Count(1_000, 10_000), **{s: Count(250, 2_500) for s in SEGS}},
        positive_feedback=Count(450, 500),
        incidents=[],
        bias={s: SegmentFlag(s, "ok", "", 2_500) for s in SEGS},
    )
    base.update(over)
    return Evidence(**base)


# --------------------------------------------------------------------------- the judge


def reference_e_value(k: int, n: int, p0: float) -> float:
    """Uniform prior over (p0, 1], integrated numerically."""
    num, _ = integrate.quad(
        lambda p: (p / p0) ** k * ((1 - p) / (1 - p0)) ** (n - k),
        p0,
        1,
        epsabs=0,
        epsrel=1e-10,
        limit=500,
    )
    return num / (1 - p0)


@pytest.mark.parametrize(
    "k, n, threshold, comparator",
    [
        (190, 200, 0.90, ">="),
        (185, 200, 0.90, ">="),
        (170, 200, 0.90, ">="),
        (199, 199, 0.9, ">"),
        (95, 100, 0.90, ">="),
        (2, 400, 0.02, "<="),
        (4, 400, 0.02, "<="),
        (12, 400, 0.02, "<"),
        (30, 300, 0.30, "<="),
        (120, 300, 0.30, "<="),
        (450, 500, 0.80, ">="),
    ],
)
@pytest.mark.parametrize("confidence_level, min_samples", [(0.95, 200), (0.99, 100)])
def test_judge_proportion_against_independent_references(
    k: int, n: int, threshold: float, comparator: str, confidence_level: float, min_samples: int
) -> None:
    alpha = 1 - confidence_level
    lo, hi = proportion_confint(k, n, alpha=2 * alpha, method="beta")  # one-sided 1-alpha each
    lower = comparator in (">=", ">")
    if lower:
        e = reference_e_value(k, n, threshold)
        bound_ok = lo >= threshold if comparator == ">=" else lo > threshold
        point_ok = k / n >= threshold if comparator == ">=" else k / n > threshold
    else:
        e = reference_e_value(n - k, n, 1 - threshold)
        bound_ok = hi <= threshold if comparator == "<=" else hi < threshold
        point_ok = k / n <= threshold if comparator == "<=" else k / n < threshold
    if n >= min_samples and bound_ok and e >= 1 / alpha:
        expected = Outcome.PASS
    elif n >= min_samples and not point_ok:
        expected = Outcome.FAIL
    else:
        expected = Outcome.INSUFFICIENT
    j = judge_proportion(
        k,
        n,
        threshold=threshold,
        comparator=comparator,
        confidence_level=confidence_level,
        min_samples=min_samples,
    )
    assert j.outcome is expected
    assert j.value == k / n and j.n == n
    assert j.ci_low == pytest.approx(lo, abs=1e-12) and j.ci_high == pytest.approx(hi, abs=1e-12)
    assert j.statistic == pytest.approx(e, rel=1e-8)


@pytest.mark.parametrize(
    "k, n, expected",
    [
        (192, 200, Outcome.PASS),  # 96%: both the exact bound and the e-test clear 90%
        (190, 200, Outcome.INSUFFICIENT),  # 95%: the exact bound (91.7%) clears, the e-test not yet
        (185, 200, Outcome.INSUFFICIENT),  # 92.5% above the target, bound below: not shown yet
        (180, 200, Outcome.INSUFFICIENT),  # exactly at the target: cannot be shown
        (170, 200, Outcome.FAIL),  # 85%: wrong side
        (99, 100, Outcome.INSUFFICIENT),  # great, but fewer than min_samples
        (50, 100, Outcome.INSUFFICIENT),  # bad, but fewer than min_samples: still insufficient
        (0, 0, Outcome.INSUFFICIENT),
    ],
)
def test_outcome_conventions(k: int, n: int, expected: Outcome) -> None:
    j = judge_proportion(
        k, n, threshold=0.9, comparator=">=", confidence_level=0.95, min_samples=200
    )
    assert j.outcome is expected


@pytest.mark.parametrize(
    "k, n, threshold, comparator, expected",
    [
        (0, 200, 0.0, ">=", Outcome.PASS),  # trivially true
        (0, 200, 0.0, ">", Outcome.FAIL),  # no success: not above 0
        (200, 200, 1.0, ">=", Outcome.INSUFFICIENT),  # perfection can never be shown at a bound
        (0, 200, 1.0, "<=", Outcome.PASS),
    ],
)
def test_degenerate_thresholds_skip_the_e_test(
    k: int, n: int, threshold: float, comparator: str, expected: Outcome
) -> None:
    j = judge_proportion(
        k, n, threshold=threshold, comparator=comparator, confidence_level=0.95, min_samples=200
    )
    assert j.outcome is expected and j.statistic is None


@pytest.mark.parametrize(
    "k, n, threshold, comparator",
    [
        (185, 200, 0.90, ">="),
        (97, 100, 0.90, ">="),
        (460, 500, 0.90, ">"),
        (3, 300, 0.02, "<="),
        (55, 250, 0.30, "<="),
        (1_850, 2_000, 0.92, ">="),
    ],
)
def test_items_needed_is_the_smallest_total_that_passes_at_the_same_rate(
    k: int, n: int, threshold: float, comparator: str
) -> None:
    kw = dict(threshold=threshold, comparator=comparator, confidence_level=0.95, min_samples=200)
    extra = items_needed(k, n, **kw)  # type: ignore[arg-type]
    assert extra is not None and extra > 0
    rate, lower = k / n, comparator in (">=", ">")

    def at(total: int) -> Outcome:
        scaled = math.floor(rate * total) if lower else math.ceil(rate * total)
        return judge_proportion(scaled, total, **kw).outcome  # type: ignore[arg-type]

    assert at(n + extra) is Outcome.PASS
    assert at(n + extra - 1) is not Outcome.PASS
    # the exact bound at that size clears the threshold (statsmodels as the reference)
    total = n + extra
    scaled = math.floor(rate * total) if lower else math.ceil(rate * total)
    lo, hi = proportion_confint(scaled, total, alpha=0.10, method="beta")
    assert (lo >= threshold) if lower else (hi <= threshold)


@pytest.mark.parametrize("k, n, threshold", [(180, 200, 0.90), (170, 200, 0.90), (0, 0, 0.90)])
def test_items_needed_is_none_when_no_amount_of_data_would_do(
    k: int, n: int, threshold: float
) -> None:
    assert (
        items_needed(
            k, n, threshold=threshold, comparator=">=", confidence_level=0.95, min_samples=200
        )
        is None
    )


def test_items_needed_is_zero_when_it_passes() -> None:
    assert (
        items_needed(
            192, 200, threshold=0.9, comparator=">=", confidence_level=0.95, min_samples=200
        )
        == 0
    )


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(threshold=1.5, comparator=">="), r"threshold must be in \[0, 1\].*1.5"),
        (dict(threshold=0.9, comparator="=="), "comparator must be one of .*'=='"),
    ],
)
def test_judge_errors_name_the_argument(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        judge_proportion(1, 2, confidence_level=0.95, min_samples=1, **kw)


# --------------------------------------------------------------------------- state machine


@pytest.mark.parametrize(
    "phase, step, expected",
    [
        ("shadow", None, NextStep(Phase.DOGFOOD)),
        ("dogfood", None, NextStep(Phase.LIMITED_BETA)),
        ("limited_beta", None, NextStep(Phase.CONTROLLED, 10)),
        ("controlled", 10, NextStep(Phase.CONTROLLED, 25)),
        ("controlled", 25, NextStep(Phase.CONTROLLED, 50)),
        ("controlled", 50, NextStep(Phase.GA)),
        ("ga", None, NextStep(Phase.GA)),
    ],
)
def test_next_step(phase: str, step: int | None, expected: NextStep) -> None:
    assert next_step(config(phase=phase, step=step)) == expected


@pytest.mark.parametrize(
    "phase, step, n_criteria, min_days",
    [
        ("shadow", None, 1, 14),
        ("dogfood", None, 2, 7),
        ("limited_beta", None, 2, 14),
        ("controlled", 10, 12, 7),
        ("controlled", 50, 12, 7),
        ("ga", None, 4, 0),
    ],
)
def test_every_phase_passes_on_good_evidence(
    phase: str, step: int | None, n_criteria: int, min_days: int
) -> None:
    d = evaluate_phase(evidence(), config(phase=phase, step=step))
    assert d.passed, d.blockers
    assert len(d.criteria) == n_criteria  # `segment: each` expands to the 4 segments
    assert all(c.outcome is Outcome.PASS for c in d.criteria)
    assert d.min_days == min_days and d.days_in_phase == 50


def test_each_expands_in_segment_order_and_judges_per_segment_minimum() -> None:
    ev = evidence(
        accuracy={
            "all": Count(9_700, 10_000),
            "internal": Count(2_425, 2_500),
            "smb": Count(2_425, 2_500),
            "mid_market": Count(2_425, 2_500),
            "enterprise": Count(150, 150),
        }
    )
    d = evaluate_phase(ev, config(phase="controlled", step=10))
    acc = [c for c in d.criteria if c.metric == "accuracy"]
    assert [c.segment for c in acc] == list(SEGS)
    assert [c.outcome for c in acc] == [Outcome.PASS] * 3 + [Outcome.INSUFFICIENT]
    assert not d.passed
    assert "150 labeled unshown items (100.0%) of the 200 needed" in acc[3].detail


def test_too_few_samples_says_how_many_more_in_words() -> None:
    ev = evidence(accuracy={**evidence().accuracy, "enterprise": Count(97, 100)})
    d = evaluate_phase(ev, config(phase="controlled", step=10))
    c = next(c for c in d.criteria if c.metric == "accuracy" and c.segment == "enterprise")
    needed = items_needed(
        97, 100, threshold=0.9, comparator=">=", confidence_level=0.95, min_samples=200
    )
    assert c.outcome is Outcome.INSUFFICIENT and c.needed == needed
    assert needed is not None and 100 <= needed < 1_000
    rounded = math.ceil(needed / 10) * 10
    assert f"about {rounded:,} more labeled unshown items would settle it" in c.detail
    assert "in enterprise" in c.detail


def test_point_estimate_above_target_with_bound_below_holds() -> None:
    ev = evidence(accuracy={**evidence().accuracy, "all": Count(185, 200)})  # 92.5%
    d = evaluate_phase(ev, config(phase="limited_beta"))
    c = d.criteria[0]
    assert c.value > 0.90 and c.ci_low < 0.90
    assert c.outcome is Outcome.INSUFFICIENT and not d.passed
    assert (
        "not yet shown above 90.0% with 95% confidence allowing for checking every "
        "night" in c.detail
    )
    assert c.anytime_bound is not None and c.anytime_bound < c.ci_low


def test_baseline_threshold_comes_from_evidence_then_config() -> None:
    cfg = config()
    assert evaluate_phase(evidence(), cfg).criteria[0].threshold == 0.90  # config's baseline
    d = evaluate_phase(evidence(baseline_accuracy=0.98), cfg)
    assert d.criteria[0].threshold == 0.98 and d.criteria[0].outcome is Outcome.FAIL
    cfg_v = config(statistics={"baseline": {"accuracy": None, "model_version": "v6"}})
    c = evaluate_phase(evidence(), cfg_v).criteria[0]
    assert c.outcome is Outcome.INSUFFICIENT and c.threshold is None
    assert "No baseline accuracy" in c.detail


def _incident(kind: str, severity: str, opened: str, resolved: str | None = None) -> Incident:
    def ts(s: str) -> dt.datetime:
        return dt.datetime.fromisoformat(s)

    return Incident(
        f"INC-{kind}-{opened}",
        severity,
        kind,
        f"{severity} {kind}",
        ts(opened),
        ts(resolved) if resolved else None,
    )


@pytest.mark.parametrize(
    "incidents, outcome",
    [
        ([], Outcome.PASS),
        (None, Outcome.INSUFFICIENT),
        ([_incident("bug", "critical", "2026-11-10T08:00:00")], Outcome.FAIL),
        (
            [_incident("bug", "critical", "2026-11-10T08:00:00", "2026-11-19T23:00:00")],
            Outcome.PASS,
        ),
        (
            [_incident("bug", "critical", "2026-11-10T08:00:00", "2026-11-21T01:00:00")],
            Outcome.FAIL,
        ),
        ([_incident("bug", "critical", "2026-11-21T08:00:00")], Outcome.PASS),  # after as_of
        ([_incident("bug", "major", "2026-11-10T08:00:00")], Outcome.PASS),
        ([_incident("security", "critical", "2026-11-10T08:00:00")], Outcome.PASS),  # not a bug
        # resolved 2026-11-20 23:30 in UTC-5 is 2026-11-21 04:30 UTC: still open at the end of as_of
        (
            [
                Incident(
                    "I",
                    "critical",
                    "bug",
                    "t",
                    dt.datetime(2026, 11, 1),
                    dt.datetime(2026, 11, 20, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
                )
            ],
            Outcome.FAIL,
        ),
    ],
)
def test_open_critical_bugs_at_the_end_of_the_as_of_day(
    incidents: list[Incident] | None, outcome: Outcome
) -> None:
    d = evaluate_phase(evidence(incidents=incidents), config(phase="dogfood"))
    bugs = next(c for c in d.criteria if c.metric == "open_critical_bugs")
    assert bugs.outcome is outcome


def test_open_critical_incidents_counts_any_kind() -> None:
    inc = [
        _incident("security", "critical", "2026-11-10T08:00:00"),
        _incident("availability", "critical", "2026-11-11T08:00:00"),
    ]
    d = evaluate_phase(evidence(incidents=inc), config(phase="limited_beta"))
    c = next(c for c in d.criteria if c.metric == "open_critical_incidents")
    assert c.outcome is Outcome.FAIL and c.value == 2
    assert c.detail.startswith("2 critical incidents are open")


def test_dogfood_needs_feedback() -> None:
    d = evaluate_phase(evidence(positive_feedback=None), config(phase="dogfood"))
    c = next(c for c in d.criteria if c.metric == "positive_feedback_share")
    assert c.outcome is Outcome.INSUFFICIENT and "feedback ratings" in c.detail
    d = evaluate_phase(evidence(positive_feedback=Count(350, 500)), config(phase="dogfood"))
    assert (
        next(c for c in d.criteria if c.metric == "positive_feedback_share").outcome is Outcome.FAIL
    )


@pytest.mark.parametrize(
    "over, text",
    [
        (dict(phase_started="2026-11-17"), "Only 3 of the 14 days the shadow phase needs"),
        (dict(phase_started=None), "phase_started) is not set"),
        (dict(phase_started="2026-12-01"), "is after the evaluated day"),
    ],
)
def test_minimum_duration_blocks(over: dict[str, Any], text: str) -> None:
    d = evaluate_phase(evidence(), config(**over))
    assert not d.passed and any(text in b for b in d.blockers)


def test_minimum_duration_counts_days_since_the_start() -> None:
    assert evaluate_phase(evidence(), config(phase_started="2026-11-06")).passed  # 14 days
    assert not evaluate_phase(evidence(), config(phase_started="2026-11-07")).passed
    assert evaluate_phase(evidence(), config(phase="ga", phase_started=None)).passed  # 0 days


def test_pooled_versions_never_pass() -> None:
    d = evaluate_phase(evidence(model_version=None), config())
    assert not d.passed and "single model version" in d.blockers[-1]


@pytest.mark.parametrize(
    "criteria, match",
    [
        (
            [{"name": "x", "metric": "nps", "comparator": ">=", "threshold": 0.5}],
            "unknown metric 'nps'",
        ),
        (
            [
                {
                    "name": "x",
                    "metric": "accuracy",
                    "comparator": ">=",
                    "threshold": 0.9,
                    "segment": "mars",
                }
            ],
            "segment 'mars'",
        ),
        (
            [{"name": "x", "metric": "accuracy", "comparator": ">=", "threshold": 90}],
            r"threshold 90.* must be in \[0, 1\]",
        ),
        (
            [{"name": "x", "metric": "error_rate", "comparator": "<=", "threshold": "baseline"}],
            "only applies to accuracy",
        ),
    ],
)
def test_bad_criteria_raise_config_errors(criteria: list[dict[str, Any]], match: str) -> None:
    cfg = config(phases={"shadow": {"criteria": criteria}})
    with pytest.raises(ConfigError, match=match):
        evaluate_phase(evidence(), cfg)


# --------------------------------------------------------------------------- segment plan


def test_segment_order_and_the_first_eligible_segment() -> None:
    cfg = config(phase="controlled", step=10)
    plan = segment_plan(evidence(), cfg)
    assert plan.order == tuple(cfg.ordered_segments()) == SEGS
    assert plan.next_segment == "internal"
    assert [s.rank for s in plan.segments] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "over, cfg_over, next_segment",
    [
        (
            dict(
                bias={
                    **{s: SegmentFlag(s, "ok", "", 2_500) for s in SEGS},
                    "internal": SegmentFlag("internal", "worse", "accuracy 85% vs 97%", 2_500),
                }
            ),
            {},
            "smb",
        ),
        (
            dict(
                accuracy={
                    **evidence().accuracy,
                    "internal": Count(2_100, 2_500),
                    "smb": Count(90, 100),
                }
            ),
            {},
            "mid_market",
        ),
        (dict(bias={s: SegmentFlag(s, "insufficient", "n < 200", 50) for s in SEGS}), {}, None),
        ({}, {"routing": {"segment_overrides": {"internal": {"opt_out": True}}}}, "smb"),
        ({}, {"segment_order": ["enterprise", "smb", "internal", "mid_market"]}, "enterprise"),
    ],
)
def test_segment_plan_skips_flagged_failing_and_opted_out(
    over: dict[str, Any], cfg_over: dict[str, Any], next_segment: str | None
) -> None:
    plan = segment_plan(evidence(**over), config(phase="controlled", step=10, **cfg_over))
    assert plan.next_segment == next_segment
    first = plan.segments[0]
    if next_segment != plan.order[0]:
        assert not first.eligible and first.detail


def test_feedback_and_incidents_are_feature_wide_in_the_segment_plan() -> None:
    plan = segment_plan(evidence(), config(phase="dogfood"))
    assert plan.next_segment == "internal" and all(s.criteria_pass for s in plan.segments)


def test_weak_segment_blocks_the_controlled_step_but_not_the_plan() -> None:
    ev = evidence(accuracy={**evidence().accuracy, "enterprise": Count(2_125, 2_500)})
    d = evaluate_phase(ev, config(phase="controlled", step=25))
    failing = [c for c in d.criteria if c.outcome is not Outcome.PASS]
    assert [(c.metric, c.segment, c.outcome) for c in failing] == [
        ("accuracy", "enterprise", Outcome.FAIL)
    ]
    assert not d.passed
    plan = segment_plan(ev, config(phase="controlled", step=25))
    assert plan.next_segment == "internal"
    assert not plan.segments[3].eligible and "85.0%" in plan.segments[3].detail


def test_doctests() -> None:
    assert doctest.testmod(gates, raise_on_error=False).failed == 0


def test_clopper_pearson_bound_used_by_the_judge_is_scipys_beta_quantile() -> None:
    j = judge_proportion(
        185, 200, threshold=0.9, comparator=">=", confidence_level=0.95, min_samples=200
    )
    assert j.ci_low == pytest.approx(stats.beta.ppf(0.05, 185, 16))


# --------------------------------------------------------------------------- customers as clusters


def test_clustered_counts_are_judged_on_their_effective_size() -> None:
    from trustramp.decide.eprocess import anytime_lower_bound

    plain = evaluate_phase(evidence(), config(phase="limited_beta")).criteria[0]
    ev = evidence(accuracy={"all": Count(9_700, 10_000, design_effect=20.0, clusters=30)})
    c = evaluate_phase(ev, config(phase="limited_beta")).criteria[0]
    assert plain.outcome is c.outcome is Outcome.PASS
    assert (c.n, c.n_effective, c.design_effect) == (10_000, 500, 20.0)
    assert c.ci_low == pytest.approx(stats.beta.ppf(0.05, 485, 16), rel=1e-12)
    assert c.anytime_bound == pytest.approx(anytime_lower_bound(485, 500, alpha=0.05))
    assert c.ci_low < plain.ci_low and c.anytime_bound < plain.anytime_bound
    assert "as informative as 500 independent ones: 30 customers differ" in c.detail
    assert plain.design_effect == 1.0 and "independent ones" not in plain.detail


def test_a_large_design_effect_holds_what_pooled_counts_would_pass() -> None:
    ev = evidence(accuracy={"all": Count(2_850, 3_000, design_effect=40.0, clusters=30)})
    c = evaluate_phase(ev, config(phase="limited_beta")).criteria[0]
    pooled = judge_proportion(
        2_850, 3_000, threshold=0.9, comparator=">=", confidence_level=0.95, min_samples=200
    )
    assert pooled.outcome is Outcome.PASS
    assert c.outcome is Outcome.INSUFFICIENT and c.n_effective == 75
    assert "as informative as 75 independent ones" in c.detail
    assert "if the rate and the customers' spread hold" in c.detail
    # how many more items, if the rate and the design effect hold
    assert c.needed == items_needed(
        2_850,
        3_000,
        threshold=0.9,
        comparator=">=",
        confidence_level=0.95,
        min_samples=200,
        design_effect=40.0,
    )
    assert c.needed is not None and c.needed > 0
    j = judge_proportion(
        2_850 + round(0.95 * c.needed),
        3_000 + c.needed,
        threshold=0.9,
        comparator=">=",
        confidence_level=0.95,
        min_samples=200,
        design_effect=40.0,
    )
    assert j.outcome is Outcome.PASS


def test_items_from_one_customer_never_pass() -> None:
    ev = evidence(accuracy={"all": Count(9_990, 10_000, design_effect=math.inf, clusters=1)})
    c = evaluate_phase(ev, config(phase="limited_beta")).criteria[0]
    assert c.outcome is Outcome.INSUFFICIENT and c.needed is None
    assert c.ci_low is None and c.anytime_bound is None and c.n_effective == 0
    assert "all from one customer" in c.detail
    bad = evidence(accuracy={"all": Count(8_000, 10_000, design_effect=math.inf, clusters=1)})
    failed = evaluate_phase(bad, config(phase="limited_beta")).criteria[0]
    assert failed.outcome is Outcome.FAIL and "not above 90.0% as required" in failed.detail


def test_an_error_rate_is_deflated_with_its_events_rounded_up() -> None:
    ev = evidence(error={**evidence().error, "smb": Count(20, 10_000, design_effect=3.0)})
    d = evaluate_phase(ev, config(phase="controlled", step=10))
    c = next(c for c in d.criteria if c.metric == "error_rate" and c.segment == "smb")
    assert c.n_effective == 3_333  # 20 * 3333 / 10000 = 6.67 events -> 7
    assert c.ci_high == pytest.approx(stats.beta.ppf(0.95, 8, 3_326), rel=1e-12)


@pytest.mark.parametrize("deff", [0.5, float("nan"), True])
def test_count_refuses_a_design_effect_below_one(deff: object) -> None:
    with pytest.raises(ValueError, match="design_effect must be >= 1"):
        Count(5, 10, design_effect=deff)  # type: ignore[arg-type]
