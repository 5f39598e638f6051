"""Phase gates (SPEC 3.2, playbook sections 3 and 10): may the rollout take its next step?

The phases run shadow → dogfood → limited_beta → controlled 10 % → 25 % → 50 % → ga, each with
the config's minimum duration, audience, mode and criteria. `evaluate_phase` judges the current
phase's criteria on the evidence; `next_step` says where a GO leads; `segment_plan` orders the
segments and names the first one eligible to expand.

How a proportion criterion is judged (`judge_proportion`)
--------------------------------------------------------
With ``alpha = 1 - statistics.confidence_level``, a criterion such as "accuracy >= 0.90" passes only
when all three hold:

1. ``n >= statistics.min_samples`` (per segment for segment criteria);
2. the exact one-sided Clopper–Pearson bound clears the threshold (the lower bound for ``>=``/``>``,
   the upper bound for ``<=``/``<``);
3. the beta-binomial mixture e-value against the threshold is ``>= 1/alpha``, so that looking
   every night keeps the false-GO rate at ``alpha`` (see `trustramp.decide.eprocess`). For an
   upper-bounded rate the test runs on the complementary count (``n - k`` against ``1 - t``).

Items cluster by customer (some customers are easy, some hard), so pooled counts overstate the
evidence. A `Count` carries the customers' design effect ``deff``
(`trustramp.metrics.intervals.design_effect`); the bound and the e-value of 2. and 3. are
taken on the deflated counts ``n_eff = floor(n / deff)``, ``k_eff = k n_eff / n`` rounded
against passing (`effective_trials`). ``n >= min_samples`` in 1. counts items, not effective
ones. Items from a single customer (``deff`` infinite) never pass: nothing is shown about
customers in general. docs/STATISTICS.md has the rule and its measured false-GO rates.

Otherwise the outcome is ``fail`` when there are enough samples and the point estimate itself is on
the wrong side of the threshold, and ``insufficient`` when the data are too few or point the right
way without yet proving it (more data may settle it). Insufficient criteria say, in words, about how
many more items would make them pass if the observed rate held (`items_needed`).

Count criteria (``open_critical_bugs``, ``open_critical_incidents``, ``open_security_incidents``)
count incidents open at the end of the as-of day and compare directly; without an incident log
they are insufficient.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from trustramp.config import PHASE_ORDER, Criterion, Phase, RolloutConfig
from trustramp.contract import IncidentKind, Severity
from trustramp.decide.eprocess import (
    anytime_lower_bound,
    anytime_upper_bound,
    clopper_pearson_lower,
    clopper_pearson_upper,
    e_value,
)
from trustramp.decide.evidence import ALL, Count, Evidence
from trustramp.errors import ConfigError

__all__ = [
    "COUNT_METRICS",
    "PROPORTION_METRICS",
    "CriterionResult",
    "NextStep",
    "Outcome",
    "PhaseDecision",
    "ProportionJudgement",
    "SegmentPlan",
    "SegmentStatus",
    "effective_trials",
    "evaluate_criterion",
    "evaluate_phase",
    "items_needed",
    "judge_proportion",
    "next_step",
    "segment_plan",
]


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class _Metric:
    noun: str
    unit: str
    """What ``n`` counts, in words."""


PROPORTION_METRICS: dict[str, _Metric] = {
    "accuracy": _Metric("accuracy", "labeled unshown items"),
    "error_rate": _Metric("the error rate", "predictions"),
    "override_rate": _Metric("the override rate", "shown suggestions"),
    "positive_feedback_share": _Metric("the share of positive feedback", "feedback ratings"),
}
"""Metrics judged as proportions at their confidence bound."""

COUNT_METRICS: dict[str, tuple[str, str | None, str]] = {
    "open_critical_bugs": (Severity.CRITICAL, IncidentKind.BUG, "critical bug"),
    "open_critical_incidents": (Severity.CRITICAL, None, "critical incident"),
    "open_security_incidents": ("", IncidentKind.SECURITY, "security incident"),
}
"""Metrics that count open incidents: (severity or "" for any, kind or None for any, noun)."""

_BY_SEGMENT = frozenset({"accuracy", "error_rate", "override_rate"})
"""Metrics measured per segment; feedback and incident counts are feature-wide."""

_WORDS = {">=": "at or above", ">": "above", "<=": "at or below", "<": "below"}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
_SEARCH_CAP = 1_000_000_000


def _pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    text = f"{100 * x:.1f}"
    if text in ("0.0", "100.0") and 0.0 < x < 1.0:  # keep tiny differences visible
        text = f"{100 * x:.3g}" if x < 0.5 else f"{100 - 100 * (1 - x):.4f}"
    return f"{text}%"


def _int(n: int) -> str:
    return f"{n:,}"


def _about(n: int) -> str:
    """Round up to two significant figures: an estimate should not look precise."""
    if n < 100:
        return _int(n)
    scale = 10 ** (len(str(n)) - 2)
    return _int(math.ceil(n / scale) * scale)


def _where(segment: str) -> str:
    return "overall" if segment == ALL else f"in {segment}"


# --------------------------------------------------------------------------- proportion judge


@dataclass(frozen=True)
class ProportionJudgement:
    """One proportion against one threshold: the outcome and its numbers.

    ``ci_low``/``ci_high`` are exact one-sided Clopper–Pearson bounds at the confidence level
    (each on its own; the comparator decides which one the gate uses), on the counts deflated
    by the design effect. ``statistic`` is the e-value on the same counts (None when the
    threshold is 0 or 1 and no test is needed). ``n`` counts items, ``n_effective`` the
    deflated trials the bounds rest on.
    """

    outcome: Outcome
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    statistic: float | None
    n_effective: int = 0
    design_effect: float = 1.0


def _lower_side(comparator: str) -> bool:
    if comparator not in _COMPARE:
        raise ValueError(f"comparator must be one of >=, >, <=, <; got {comparator!r}")
    return comparator in (">=", ">")


def effective_trials(k: int, n: int, design_effect: float, *, lower: bool) -> tuple[int, int]:
    """``k`` of ``n`` clustered items as ``(k_eff, n_eff)`` independent ones.

    ``n_eff = floor(n / design_effect)`` and ``k_eff = k n_eff / n`` rounded against the claim
    (down when the claim is "rate above", ``lower``; up for "rate below"), in whole-number
    arithmetic; ``(k, n)`` when the design effect is 1, ``(0, 0)`` when it is infinite. The
    scalar twin of `trustramp.metrics.intervals.deflate_counts`.

    Examples
    --------
    >>> effective_trials(900, 1000, 3.0, lower=True)
    (299, 333)
    >>> effective_trials(900, 1000, 1.0, lower=True)
    (900, 1000)
    """
    if not design_effect >= 1.0:
        raise ValueError(f"design_effect must be >= 1, got {design_effect!r}")
    if design_effect == 1.0:
        return k, n
    if n == 0 or math.isinf(design_effect):
        return 0, 0
    n_eff = math.floor(n / design_effect)
    return (k * n_eff // n if lower else -(-k * n_eff // n)), n_eff


def judge_proportion(
    k: int,
    n: int,
    *,
    threshold: float,
    comparator: str,
    confidence_level: float,
    min_samples: int,
    design_effect: float = 1.0,
) -> ProportionJudgement:
    """Judge ``k / n  comparator  threshold`` as a gate does (see the module docstring).

    Parameters
    ----------
    k, n : int
        Events and trials (correct of labeled, failed of predictions, ...).
    threshold : float, keyword-only
        In ``[0, 1]``.
    comparator : {">=", ">", "<=", "<"}, keyword-only
    confidence_level : float, keyword-only
        ``1 - alpha``.
    min_samples : int, keyword-only
        Fewer trials than this is ``insufficient`` whatever the data say.
    design_effect : float, keyword-only, default 1
        The items' clustering (1: independent); the bound and the e-value are taken on the
        counts deflated by it (`effective_trials`).

    Returns
    -------
    ProportionJudgement

    Examples
    --------
    >>> judge_proportion(192, 200, threshold=0.9, comparator=">=", confidence_level=0.95,
    ...                  min_samples=200).outcome
    <Outcome.PASS: 'pass'>
    >>> judge_proportion(185, 200, threshold=0.9, comparator=">=", confidence_level=0.95,
    ...                  min_samples=200).outcome  # 92.5% but the bound is below 90%
    <Outcome.INSUFFICIENT: 'insufficient'>
    """
    lower = _lower_side(comparator)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1] for a proportion, got {threshold!r}")
    if not 0.5 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0.5, 1), got {confidence_level!r}")
    alpha = 1.0 - confidence_level
    if n == 0:
        return ProportionJudgement(Outcome.INSUFFICIENT, None, None, None, 0, None)
    value = k / n
    ke, ne = effective_trials(k, n, design_effect, lower=lower)
    ci_low = clopper_pearson_lower(ke, ne, alpha=alpha)
    ci_high = clopper_pearson_upper(ke, ne, alpha=alpha)
    compare = _COMPARE[comparator]
    bound_ok = ne > 0 and compare(ci_low if lower else ci_high, threshold)
    p0 = threshold if lower else 1.0 - threshold
    statistic = e_value(ke if lower else ne - ke, ne, p0) if 0.0 < p0 < 1.0 else None
    e_ok = statistic is None or statistic >= 1.0 / alpha
    if n >= min_samples and bound_ok and e_ok:
        outcome = Outcome.PASS
    elif n >= min_samples and not compare(value, threshold):
        outcome = Outcome.FAIL
    else:
        outcome = Outcome.INSUFFICIENT
    return ProportionJudgement(
        outcome, value, ci_low, ci_high, n, statistic, ne, float(design_effect)
    )


def items_needed(
    k: int,
    n: int,
    *,
    threshold: float,
    comparator: str,
    confidence_level: float,
    min_samples: int,
    design_effect: float = 1.0,
) -> int | None:
    """How many more trials would make the criterion pass if the observed rate ``k/n`` held.

    Searches the smallest total ``N >= n`` at which `judge_proportion` passes with the count
    scaled to ``N`` (rounded against passing), and returns ``N - n``; 0 when it passes already.
    None when ``n == 0`` or when no amount of data at this rate would pass (the rate is not
    strictly on the passing side of the threshold, or the items come from one customer). The
    design effect is assumed to hold too (more items from the same few customers would
    raise it: then the estimate is optimistic).

    Examples
    --------
    >>> extra = items_needed(185, 200, threshold=0.9, comparator=">=", confidence_level=0.95,
    ...                      min_samples=200)
    >>> extra > 0
    True
    """
    lower = _lower_side(comparator)
    if n == 0 or math.isinf(design_effect):
        return None
    rate = k / n
    if not (rate > threshold if lower else rate < threshold):
        return None

    def passes_with(events: int, total: int) -> bool:
        judgement = judge_proportion(
            events,
            total,
            threshold=threshold,
            comparator=comparator,
            confidence_level=confidence_level,
            min_samples=min_samples,
            design_effect=design_effect,
        )
        return judgement.outcome is Outcome.PASS

    def passes(total: int) -> bool:
        scaled = math.floor(rate * total) if lower else math.ceil(rate * total)
        return passes_with(min(max(scaled, 0), total), total)

    if n >= min_samples and passes_with(k, n):
        return 0
    low, high = n, max(n + 1, min_samples)
    while not passes(high):
        low, high = high, high * 2
        if high > _SEARCH_CAP:
            return None
    while high - low > 1:  # invariant: fails at low (or low == n), passes at high
        mid = (low + high) // 2
        if passes(mid):
            high = mid
        else:
            low = mid
    return high - n


# --------------------------------------------------------------------------- criteria


@dataclass(frozen=True)
class CriterionResult:
    """One criterion for one segment, as verdict.json reports it.

    ``threshold`` is the number compared with (a ``baseline`` threshold resolved; None when no
    baseline is known). ``statistic`` is the e-value, ``anytime_bound`` the confidence-sequence
    bound on the side that decides, and ``needed`` the estimated further items to pass.
    ``design_effect`` and ``n_effective`` say how the customers' clustering deflated ``n``
    for the bounds (1 and ``n`` for independent items; None for count criteria).
    """

    name: str
    metric: str
    segment: str
    comparator: str
    threshold: float | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    outcome: Outcome
    statistic: float | None
    detail: str
    anytime_bound: float | None = None
    needed: int | None = None
    design_effect: float | None = None
    n_effective: int | None = None


def _proportion_count(evidence: Evidence, metric: str, segment: str) -> Count | None:
    if metric == "positive_feedback_share":
        return evidence.positive_feedback if segment == ALL else None
    source = {
        "accuracy": evidence.accuracy,
        "error_rate": evidence.error,
        "override_rate": evidence.override,
    }[metric]
    return source.get(segment, Count(0, 0))


def _baseline(evidence: Evidence, config: RolloutConfig) -> float | None:
    if evidence.baseline_accuracy is not None:
        return evidence.baseline_accuracy
    return config.statistics.baseline.accuracy


def _proportion_detail(
    crit: Criterion,
    segment: str,
    threshold: float,
    j: ProportionJudgement,
    needed: int | None,
    anytime: float | None,
    confidence_level: float,
    min_samples: int,
    clusters: int | None = None,
) -> str:
    m = PROPORTION_METRICS[crit.metric]
    noun, unit, where = m.noun, m.unit, _where(segment)
    customers = f"{_int(clusters)} customers" if clusters is not None else "the customers"
    if math.isinf(j.design_effect) and j.n and j.outcome is not Outcome.FAIL:
        return (
            f"{noun[0].upper() + noun[1:]} {where} is {_pct(j.value)} on {_int(j.n)} {unit}, "
            f"all from one customer, so nothing can be shown about customers in general."
        )
    spread = (
        f" (as informative as {_int(j.n_effective)} independent ones: {customers} differ)"
        if j.design_effect > 1.0 and j.n
        else ""
    )
    lower = _lower_side(crit.comparator)
    want = f"{_WORDS[crit.comparator]} {_pct(threshold)}"
    conf = f"{round(100 * confidence_level)}%"
    # Sentences quote the anytime-valid bound: it is the one that binds (it is never tighter
    # than the exact fixed-n bound in ci_low / ci_high).
    bound_word, bound = ("at least" if lower else "at most"), anytime
    looks = "allowing for checking every night"
    more = ""
    if needed:
        holds = "the rate and the customers' spread hold" if spread else "the rate holds"
        more = f"; about {_about(needed)} more {unit} would settle it if {holds}"
    elif needed is None and j.value is not None and j.outcome is not Outcome.PASS:
        more = f"; at the current rate it would not be shown {want} however much data came in"
    cap = noun[0].upper() + noun[1:]
    if j.outcome is Outcome.PASS:
        return (
            f"{cap} {where} holds: {_pct(j.value)} on {_int(j.n)} {unit}{spread}, {bound_word} "
            f"{_pct(bound)} with {conf} confidence {looks} (required: {want})."
        )
    if j.n == 0:
        return (
            f"There are no {unit} {where} yet to measure {noun}; at least "
            f"{_int(min_samples)} are needed."
        )
    if j.n < min_samples:
        return (
            f"{cap} {where} cannot be judged yet: {_int(j.n)} {unit} ({_pct(j.value)}) of "
            f"the {_int(min_samples)} needed{more}."
        )
    if j.outcome is Outcome.FAIL:
        return f"{cap} {where} is {_pct(j.value)} on {_int(j.n)} {unit}, not {want} as required."
    return (
        f"{cap} {where} is {_pct(j.value)} on {_int(j.n)} {unit}{spread}, but that is not yet "
        f"shown {want} with {conf} confidence {looks} ({bound_word} {_pct(bound)}){more}."
    )


# The same counts are judged by the gate, the segment plan and the checklists; the bound and the
# search are the costly parts (root finding), so they are memoized on their plain-number inputs.
@functools.lru_cache(maxsize=4096)
def _judge_cached(
    k: int,
    n: int,
    threshold: float,
    comparator: str,
    confidence_level: float,
    min_samples: int,
    design_effect: float,
) -> ProportionJudgement:
    return judge_proportion(
        k,
        n,
        threshold=threshold,
        comparator=comparator,
        confidence_level=confidence_level,
        min_samples=min_samples,
        design_effect=design_effect,
    )


@functools.lru_cache(maxsize=4096)
def _needed_cached(
    k: int,
    n: int,
    threshold: float,
    comparator: str,
    confidence_level: float,
    min_samples: int,
    design_effect: float,
) -> int | None:
    return items_needed(
        k,
        n,
        threshold=threshold,
        comparator=comparator,
        confidence_level=confidence_level,
        min_samples=min_samples,
        design_effect=design_effect,
    )


@functools.lru_cache(maxsize=4096)
def _anytime_cached(k: int, n: int, alpha: float, lower: bool) -> float:
    if lower:
        return anytime_lower_bound(k, n, alpha=alpha)
    return anytime_upper_bound(k, n, alpha=alpha)


def _evaluate_proportion(
    crit: Criterion, segment: str, evidence: Evidence, config: RolloutConfig
) -> CriterionResult:
    stats_cfg = config.statistics
    threshold = _baseline(evidence, config) if crit.threshold == "baseline" else crit.threshold
    count = _proportion_count(evidence, crit.metric, segment)

    def result(outcome: Outcome, detail: str, **kw: object) -> CriterionResult:
        base: dict[str, object] = dict(value=None, ci_low=None, ci_high=None, n=0, statistic=None)
        base.update(kw)
        return CriterionResult(
            crit.name,
            crit.metric,
            segment,
            crit.comparator,
            threshold,
            outcome=outcome,
            detail=detail,
            **base,
        )  # type: ignore[arg-type]

    if threshold is None:
        return result(
            Outcome.INSUFFICIENT,
            "No baseline accuracy is known to compare with; set statistics.baseline "
            "to a human-baseline accuracy or evaluate the previous model version.",
        )
    if count is None:
        what = PROPORTION_METRICS[crit.metric]
        return result(
            Outcome.INSUFFICIENT,
            f"No {what.unit} were collected {_where(segment)}, so {what.noun} cannot be judged.",
        )
    key = (
        count.k,
        count.n,
        float(threshold),
        crit.comparator,
        stats_cfg.confidence_level,
        stats_cfg.min_samples,
        count.design_effect,
    )
    j = _judge_cached(*key)
    needed = None if j.outcome is Outcome.PASS else _needed_cached(*key)
    lower = _lower_side(crit.comparator)
    ke, ne = effective_trials(count.k, count.n, count.design_effect, lower=lower)
    # The anytime bound on the deflated counts, like the bound and the e-value that decide.
    anytime = _anytime_cached(ke, ne, 1.0 - stats_cfg.confidence_level, lower) if ne else None
    detail = _proportion_detail(
        crit,
        segment,
        float(threshold),
        j,
        needed,
        anytime,
        stats_cfg.confidence_level,
        stats_cfg.min_samples,
        count.clusters,
    )
    return result(
        j.outcome,
        detail,
        value=j.value,
        ci_low=j.ci_low if ne else None,
        ci_high=j.ci_high if ne else None,
        n=j.n,
        statistic=j.statistic,
        anytime_bound=anytime,
        needed=needed,
        design_effect=j.design_effect if j.n else None,
        n_effective=ne if j.n else None,
    )


def _evaluate_count(crit: Criterion, segment: str, evidence: Evidence) -> CriterionResult:
    severity, kind, noun = COUNT_METRICS[crit.metric]
    threshold = float(crit.threshold)  # validated by evaluate_criterion
    found = evidence.open_incidents(severity=severity or None, kind=kind)
    if found is None:
        return CriterionResult(
            crit.name,
            crit.metric,
            segment,
            crit.comparator,
            threshold,
            None,
            None,
            None,
            0,
            Outcome.INSUFFICIENT,
            None,
            f"No incident log was provided, so whether a {noun} is open cannot be shown.",
        )
    value = len(found)
    ok = _COMPARE[crit.comparator](value, threshold)
    if value == 0:
        detail = f"No {noun} is open."
    else:
        listed = "; ".join(f"{i.incident_id} ({i.title})" for i in found[:5])
        more = f" and {value - 5} more" if value > 5 else ""
        detail = f"{value} {noun}{'s are' if value > 1 else ' is'} open: {listed}{more}."
    if not ok:
        detail += f" Required: {_WORDS[crit.comparator]} {threshold:g}."
    n = len(evidence.incidents or ())
    return CriterionResult(
        crit.name,
        crit.metric,
        segment,
        crit.comparator,
        threshold,
        float(value),
        None,
        None,
        n,
        Outcome.PASS if ok else Outcome.FAIL,
        None,
        detail,
    )


def evaluate_criterion(
    crit: Criterion, segment: str, evidence: Evidence, config: RolloutConfig
) -> CriterionResult:
    """Judge one criterion for one segment (``"all"`` or a configured segment's name)."""
    if crit.metric in PROPORTION_METRICS:
        if crit.threshold != "baseline" and not 0.0 <= crit.threshold <= 1.0:
            raise ConfigError(
                f"criterion {crit.name!r}: threshold {crit.threshold!r} for "
                f"{crit.metric} must be in [0, 1]"
            )
        if crit.threshold == "baseline" and crit.metric != "accuracy":
            raise ConfigError(
                f"criterion {crit.name!r}: threshold 'baseline' only applies to "
                f"accuracy, not {crit.metric}"
            )
        return _evaluate_proportion(crit, segment, evidence, config)
    if crit.metric in COUNT_METRICS:
        if crit.threshold == "baseline":
            raise ConfigError(
                f"criterion {crit.name!r}: threshold 'baseline' does not apply to {crit.metric}"
            )
        return _evaluate_count(crit, segment, evidence)
    known = ", ".join([*PROPORTION_METRICS, *COUNT_METRICS])
    raise ConfigError(
        f"criterion {crit.name!r}: unknown metric {crit.metric!r}; trustramp can judge {known}"
    )


def _segments_of(crit: Criterion, config: RolloutConfig, phase: Phase) -> list[str]:
    if crit.segment == "each":
        return list(config.segments)
    if crit.segment == ALL or crit.segment in config.segments:
        return [crit.segment]
    raise ConfigError(
        f"phases.{phase.value}: criterion {crit.name!r} has segment "
        f"{crit.segment!r}; expected all, each or one of {config.segments}"
    )


# --------------------------------------------------------------------------- phases


@dataclass(frozen=True)
class NextStep:
    """Where a GO leads: a phase and, in the controlled phase, the rollout percentage."""

    phase: Phase
    step: int | None = None

    def label(self) -> str:
        return f"{self.phase.value} {self.step}%" if self.step is not None else self.phase.value


def next_step(config: RolloutConfig) -> NextStep:
    """The phase and step a GO advances to from the config's current phase and step.

    Controlled steps advance one at a time (10 → 25 → 50), the last to ``ga``; ``ga`` is final,
    so a GO there means "stay": metrics are sustained.
    """
    phase = config.phase
    steps = config.phases[Phase.CONTROLLED].steps or []
    if phase is Phase.CONTROLLED and config.step is not None:
        i = steps.index(config.step)
        return (
            NextStep(Phase.CONTROLLED, steps[i + 1]) if i + 1 < len(steps) else NextStep(Phase.GA)
        )
    if phase is Phase.GA:
        return NextStep(Phase.GA)
    target = PHASE_ORDER[PHASE_ORDER.index(phase) + 1]
    if target is Phase.CONTROLLED:
        return NextStep(target, steps[0]) if steps else NextStep(Phase.GA)
    return NextStep(target)


@dataclass(frozen=True)
class PhaseDecision:
    """The current phase's gate: criteria, minimum duration, one model version.

    ``passed`` is True when nothing in the gate itself blocks a GO; ``blockers`` are the plain
    sentences saying what does. Alerts, rollback triggers and checklists are combined with this
    in `trustramp.decide.verdict.decide`.
    """

    phase: Phase
    step: int | None
    mode: str
    audience: str
    min_days: int
    days_in_phase: int | None
    criteria: tuple[CriterionResult, ...]
    passed: bool
    blockers: tuple[str, ...]
    next: NextStep


def _phase_label(phase: Phase, step: int | None) -> str:
    return f"the {phase.value} phase" + (f" at {step}%" if step is not None else "")


def _duration_blocker(
    evidence: Evidence, config: RolloutConfig, min_days: int
) -> tuple[int | None, str | None]:
    label = _phase_label(config.phase, config.step)
    if config.phase_started is None:
        if min_days == 0:
            return None, None
        return None, (
            f"The start date of {label} (phase_started) is not set, so its "
            f"{min_days}-day minimum cannot be checked."
        )
    days = (evidence.as_of - config.phase_started).days
    if days < 0:
        return days, (
            f"phase_started ({config.phase_started.isoformat()}) is after the "
            f"evaluated day ({evidence.as_of.isoformat()})."
        )
    if days < min_days:
        return days, (
            f"Only {days} of the {min_days} days {label} needs have passed "
            f"({min_days - days} to go)."
        )
    return days, None


def evaluate_phase(evidence: Evidence, config: RolloutConfig) -> PhaseDecision:
    """Judge the current phase's gate on the evidence.

    Parameters
    ----------
    evidence : Evidence
    config : RolloutConfig
        Its ``phase``, ``step`` and ``phase_started`` say where the rollout stands.

    Returns
    -------
    PhaseDecision
        One `CriterionResult` per criterion and segment (``segment: each`` expands to every
        configured segment); ``passed`` when every criterion passes, the phase's minimum days
        have elapsed and the evidence is of one model version.
    """
    spec = config.phases[config.phase]
    results: list[CriterionResult] = []
    for crit in spec.criteria:
        for segment in _segments_of(crit, config, config.phase):
            results.append(evaluate_criterion(crit, segment, evidence, config))
    blockers = [r.detail for r in results if r.outcome is not Outcome.PASS]
    days, duration = _duration_blocker(evidence, config, spec.min_days)
    if duration:
        blockers.append(duration)
    if evidence.model_version is None:
        blockers.append(
            "The evidence does not come from a single model version, and a gate "
            "certifies one version at a time."
        )
    return PhaseDecision(
        phase=config.phase,
        step=config.step,
        mode=spec.mode.value,
        audience=spec.audience,
        min_days=spec.min_days,
        days_in_phase=days,
        criteria=tuple(results),
        passed=not blockers,
        blockers=tuple(blockers),
        next=next_step(config),
    )


# --------------------------------------------------------------------------- segments


@dataclass(frozen=True)
class SegmentStatus:
    """One segment in the rollout order (rank 1 goes first)."""

    segment: str
    rank: int
    opted_out: bool
    flag: str | None
    """The bias audit's flag (ok | worse | insufficient), None when not audited."""
    criteria_pass: bool
    eligible: bool
    detail: str
    p_holm: float | None = None
    """The bias audit's Holm-adjusted p-value (the flag's), None when not tested."""
    q_bh: float | None = None
    """The bias audit's Benjamini–Hochberg q-value, for display."""


@dataclass(frozen=True)
class SegmentPlan:
    """The segment rollout order and the first segment eligible to expand."""

    order: tuple[str, ...]
    next_segment: str | None
    segments: tuple[SegmentStatus, ...]


def segment_plan(evidence: Evidence, config: RolloutConfig) -> SegmentPlan:
    """Order the segments (``config.ordered_segments()``) and find the next one to expand.

    A segment is eligible when it has not opted out (``routing.segment_overrides``), every
    criterion of the current phase passes on its own data (accuracy, error and override rates
    measured in that segment; feedback and incident counts are feature-wide) and the bias
    audit flagged it ``ok`` (not ``worse``, not ``insufficient``, not missing).
    ``next_segment`` is the first eligible one in order. The config does not record which
    segments are already enabled, so the plan ranks all of them.
    """
    spec = config.phases[config.phase]
    statuses = []
    for rank, segment in enumerate(config.ordered_segments(), start=1):
        override = config.routing.segment_overrides.get(segment)
        opted_out = bool(override and override.opt_out)
        results = [
            evaluate_criterion(c, segment if c.metric in _BY_SEGMENT else ALL, evidence, config)
            for c in spec.criteria
        ]
        criteria_pass = all(r.outcome is Outcome.PASS for r in results)
        audit = evidence.bias.get(segment)
        flag = audit.flag if audit else None
        eligible = not opted_out and criteria_pass and flag == "ok"
        if opted_out:
            detail = f"{segment} has opted out."
        elif flag == "worse":
            detail = f"{segment} is flagged by the bias audit: {audit.reason}"  # type: ignore[union-attr]
        elif not criteria_pass:
            detail = next(r.detail for r in results if r.outcome is not Outcome.PASS)
        elif flag is None:
            detail = f"{segment} has no bias audit result."
        elif flag == "insufficient":
            detail = f"{segment} has too little data for the bias audit: {audit.reason}"  # type: ignore[union-attr]
        else:
            detail = f"{segment} holds every criterion of the current phase."
        statuses.append(
            SegmentStatus(
                segment,
                rank,
                opted_out,
                flag,
                criteria_pass,
                eligible,
                detail,
                p_holm=audit.p_holm if audit else None,
                q_bh=audit.q_bh if audit else None,
            )
        )
    nxt = next((s.segment for s in statuses if s.eligible), None)
    return SegmentPlan(tuple(config.ordered_segments()), nxt, tuple(statuses))
