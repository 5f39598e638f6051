"""The verdict (SPEC 2 `verdict.json`, 3.2, 3.3): GO, HOLD, PAUSE or ROLLBACK, and why.

`decide` combines the phase gate, the alerts, the rollback triggers, the readiness checklists and
the segment plan, in this order of precedence:

1. **ROLLBACK** when any automatic rollback trigger fired. The verdict recommends the kill switch
   and lists the manual procedure; if the kill switch is already engaged it says so.
2. **PAUSE** on a critical accuracy alert (overall or in any segment): do not widen the audience.
3. **GO** when the phase gate passes (every criterion at its confidence bound with enough data,
   minimum days elapsed, one model version), no other critical alert fires, every checklist
   item that blocks the target phase is done, and the kill switch is off.
4. **HOLD** otherwise, with every blocking reason as a plain sentence.

Warnings and alerts without enough data never block; they are listed after the blocking reasons.
Alerts are per model version (see `trustramp.decide.alerts`). A critical confidence drift (PSI)
is a critical alert — it blocks a GO like any other — and marks the routing thresholds for
re-certification (``thresholds_recertify``).
`Verdict.to_dict` gives exactly the SPEC keys plus extras under new keys (``model_version``,
``kill_switch``, ``confidence_level``, ``mode``, ``audience``, ``min_days``, ``days_in_phase``,
``segments``, ``procedure``, ``thresholds_recertify``, ``calibration``; each criterion's
``design_effect`` and ``n_effective`` (the customers' clustering behind its bound); each alert's
``model_version``, ``bound``, ``status``, ``n`` and ``message``; each rollback trigger's
``model_version``; each segment's bias-audit ``p_holm`` and ``q_bh``); the JSON Schema is
package data ``verdict.schema.json`` (`verdict_schema`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

from trustramp.config import Phase, RolloutConfig
from trustramp.decide.alerts import (
    Alert,
    AlertLevel,
    AlertStatus,
    RollbackTrigger,
    evaluate_alerts,
    evaluate_rollback,
)
from trustramp.decide.checklists import ChecklistItem, Checklists, evaluate_checklists
from trustramp.decide.evidence import Calibration, DataSummary, Evidence
from trustramp.decide.gates import (
    CriterionResult,
    NextStep,
    PhaseDecision,
    SegmentPlan,
    evaluate_phase,
    segment_plan,
)

__all__ = [
    "VERDICT_RANK",
    "Verdict",
    "VerdictKind",
    "decide",
    "verdict_schema",
]

_E_CAP = 1e300
"""e-values beyond this (they overflow to inf) are written as this number in JSON."""


class VerdictKind(StrEnum):
    GO = "GO"
    HOLD = "HOLD"
    PAUSE = "PAUSE"
    ROLLBACK = "ROLLBACK"


VERDICT_RANK: dict[VerdictKind, int] = {
    VerdictKind.ROLLBACK: 0,
    VerdictKind.PAUSE: 1,
    VerdictKind.HOLD: 2,
    VerdictKind.GO: 3,
}
"""Worst to best: more failing evidence never raises a verdict's rank."""


@dataclass(frozen=True)
class Verdict:
    """A decided verdict with all its evidence; `to_dict` is ``verdict.json``."""

    feature: str
    as_of: dt.date
    trustramp_version: str
    config_hash: str
    phase: Phase
    step: int | None
    verdict: VerdictKind
    next: NextStep
    reasons: tuple[str, ...]
    criteria: tuple[CriterionResult, ...]
    alerts: tuple[Alert, ...]
    """Alerts that fire or lack data (checks that came out fine are left out)."""
    rollback_triggers: tuple[RollbackTrigger, ...]
    checklists: Checklists
    data: DataSummary
    window_start: dt.date
    window_end: dt.date
    model_version: str | None
    kill_switch: bool
    confidence_level: float
    gate: PhaseDecision
    segments: SegmentPlan
    procedure: tuple[str, ...]
    """The manual rollback procedure (only on ROLLBACK)."""
    thresholds_recertify: tuple[bool, str | None] = (False, None)
    """(required, reason): a critical confidence drift asks for the thresholds' re-certification."""
    calibration: Calibration | None = None
    """The certified population's calibration evidence (ECE and its companions)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready ``verdict.json`` document (dates ISO, no NaN or infinity)."""
        return {
            "feature": self.feature,
            "as_of": self.as_of.isoformat(),
            "trustramp_version": self.trustramp_version,
            "config_hash": self.config_hash,
            "phase": self.phase.value,
            "step": self.step,
            "verdict": self.verdict.value,
            "next": {"phase": self.next.phase.value, "step": self.next.step},
            "reasons": list(self.reasons),
            "criteria": [_criterion(c) for c in self.criteria],
            "alerts": [_alert(a) for a in self.alerts],
            "rollback_triggers": [
                {
                    "trigger": t.trigger,
                    "fired": t.fired,
                    "evidence": t.evidence,
                    "segments": list(t.segments),
                    "model_version": t.model_version,
                }
                for t in self.rollback_triggers
            ],
            "checklists": {
                name: [_item(i) for i in getattr(self.checklists, name)]
                for name in ("model", "infrastructure", "user")
            },
            "data": {
                "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(),
                "predictions": self.data.predictions,
                "labeled": self.data.labeled,
                "label_coverage": _num(self.data.coverage),
                "quarantined": self.data.quarantined,
            },
            "model_version": self.model_version,
            "kill_switch": self.kill_switch,
            "confidence_level": self.confidence_level,
            "mode": self.gate.mode,
            "audience": self.gate.audience,
            "min_days": self.gate.min_days,
            "days_in_phase": self.gate.days_in_phase,
            "segments": {
                "order": list(self.segments.order),
                "next": self.segments.next_segment,
                "segments": [
                    {
                        "segment": s.segment,
                        "rank": s.rank,
                        "opted_out": s.opted_out,
                        "flag": s.flag,
                        "criteria_pass": s.criteria_pass,
                        "eligible": s.eligible,
                        "detail": s.detail,
                        "p_holm": _num(s.p_holm),
                        "q_bh": _num(s.q_bh),
                    }
                    for s in self.segments.segments
                ],
            },
            "procedure": list(self.procedure),
            "thresholds_recertify": {
                "required": self.thresholds_recertify[0],
                "reason": self.thresholds_recertify[1],
            },
            "calibration": _calibration(self.calibration),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _num(x: float | None, *, cap: float | None = None) -> float | None:
    if x is None or math.isnan(x):
        return None
    if cap is not None:
        return min(float(x), cap)
    return float(x) if math.isfinite(x) else None


def _criterion(c: CriterionResult) -> dict[str, Any]:
    return {
        "name": c.name,
        "metric": c.metric,
        "segment": c.segment,
        "comparator": c.comparator,
        "threshold": _num(c.threshold),
        "value": _num(c.value),
        "ci_low": _num(c.ci_low),
        "ci_high": _num(c.ci_high),
        "n": c.n,
        "outcome": c.outcome.value,
        "statistic": _num(c.statistic, cap=_E_CAP),
        "anytime_bound": _num(c.anytime_bound),
        "needed": c.needed,
        "design_effect": _num(c.design_effect),
        "n_effective": c.n_effective,
        "detail": c.detail,
    }


def _calibration(c: Calibration | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "n": c.n,
        "ece": _num(c.ece),
        "noise_floor": _num(c.noise_floor),
        "p_value": _num(c.p_value),
        "ece_debiased_l2": _num(c.ece_debiased_l2),
        "smece": _num(c.smece),
        "smece_sigma": _num(c.smece_sigma),
    }


def _alert(a: Alert) -> dict[str, Any]:
    return {
        "metric": a.metric,
        "segment": a.segment,
        "model_version": a.model_version,
        "level": a.level.value if a.level else None,
        "status": a.status.value,
        "value": _num(a.value),
        "threshold": a.threshold,
        "bound": _num(a.bound),
        "n": a.n,
        "action": a.action,
        "escalation": [e.model_dump(mode="json") for e in a.escalation],
        "message": a.sentence,
    }


def _item(i: ChecklistItem) -> dict[str, Any]:
    return {
        "item": i.item,
        "status": i.status.value,
        "evidence": i.evidence,
        "owner": i.owner,
        "blocks": i.blocks.value,
    }


def verdict_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every `Verdict.to_dict` validates against."""
    text = resources.files("trustramp").joinpath("verdict.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- decide

_CHECKLIST_NAMES = {
    "model": "Model readiness",
    "infrastructure": "Infrastructure readiness",
    "user": "User readiness",
}


def _checklist_reasons(checklists: Checklists, target: NextStep) -> list[str]:
    out = []
    for name, items in checklists.blocking(target.phase).items():
        listed = "; ".join(f"{i.item} ({i.status.value})" for i in items)
        count = f"{len(items)} item{'s' if len(items) > 1 else ''}"
        out.append(
            f"{_CHECKLIST_NAMES[name]} is not complete for {target.label()}: {count} "
            f"not done — {listed}."
        )
    return out


def _insufficient_summary(alerts: list[Alert], min_n: int) -> str | None:
    thin = [a for a in alerts if a.status is AlertStatus.INSUFFICIENT]
    if not thin:
        return None
    listed = ", ".join(
        f"{a.metric}"
        + (f" of model {a.model_version}" if a.model_version is not None else "")
        + f" {'overall' if a.segment == 'all' else 'in ' + a.segment}"
        for a in thin
    )
    return (
        f"{len(thin)} alert check{'s' if len(thin) > 1 else ''} had fewer than {min_n:,} "
        f"observations in the last 24 h and could not be checked: {listed}."
    )


def _escalation_sentence(config: RolloutConfig) -> str:
    steps = [f"{e.role} ({e.what}, within {e.within_minutes} min)" for e in config.escalation]
    return "Escalate: " + " → ".join(steps) + "."


def _shadow_trigger(t: RollbackTrigger) -> RollbackTrigger:
    if not t.fired or t.trigger.startswith("security"):
        return t
    return dataclasses.replace(
        t,
        fired=False,
        evidence=f"Not applied in shadow mode (nothing is shown to users); once live this would "
        f"fire: {t.evidence}",
    )


def decide(
    evidence: Evidence,
    config: RolloutConfig,
    *,
    trustramp_version: str | None = None,
    config_hash: str | None = None,
) -> Verdict:
    """Decide the verdict for ``evidence`` under ``config``.

    Parameters
    ----------
    evidence : Evidence
        For ``config.feature`` (checked).
    config : RolloutConfig
    trustramp_version : str, keyword-only
        Recorded for provenance; defaults to the installed package's version.
    config_hash : str, keyword-only
        Recorded for provenance; defaults to ``config.hash()``.

    Returns
    -------
    Verdict
    """
    if evidence.feature != config.feature:
        raise ValueError(
            f"evidence.feature {evidence.feature!r} does not match config.feature "
            f"{config.feature!r}"
        )
    if trustramp_version is None:
        from trustramp import __version__ as trustramp_version
    gate = evaluate_phase(evidence, config)
    checks = evaluate_alerts(evidence, config)
    triggers = evaluate_rollback(evidence, config)
    checklists = evaluate_checklists(evidence, config)
    plan = segment_plan(evidence, config)

    firing = [a for a in checks if a.status is AlertStatus.FIRING]
    critical = [a for a in firing if a.level is AlertLevel.CRITICAL]
    warnings = [a for a in firing if a.level is AlertLevel.WARNING]
    notes = [a.sentence for a in warnings]
    thin = _insufficient_summary(checks, config.alerts.min_n)
    if thin:
        notes.append(thin)

    shadow = config.phase is Phase.SHADOW
    if shadow:
        # Nothing is shown in shadow mode: quality and service triggers inform, they do not roll
        # anything back (a security incident still does); a critical accuracy alert holds the
        # rollout instead of pausing it (there is nothing to pause).
        triggers = [_shadow_trigger(t) for t in triggers]
    fired = [t for t in triggers if t.fired]
    procedure: tuple[str, ...] = ()
    if fired:
        kind = VerdictKind.ROLLBACK
        reasons = [f"Rollback ({t.trigger}): {t.evidence}" for t in fired]
        if config.kill_switch:
            reasons.append(
                "The kill switch is already engaged: keep it on and finish the manual "
                "rollback procedure."
            )
        else:
            reasons.append("Engage the kill switch now, then follow the manual rollback procedure.")
        procedure = tuple(config.rollback.procedure)
        reasons += [a.sentence for a in critical]
    elif not shadow and (accuracy_critical := [a for a in critical if a.metric == "accuracy"]):
        kind = VerdictKind.PAUSE
        reasons = [a.sentence for a in accuracy_critical]
        reasons.append(
            "Pause the rollout: do not widen the audience until accuracy recovers. "
            + _escalation_sentence(config)
        )
        reasons += [a.sentence for a in critical if a.metric != "accuracy"]
        if config.kill_switch:
            reasons.append("The kill switch is engaged: the AI feature is off for everyone.")
    else:
        blockers = []
        if config.kill_switch:
            blockers.append(
                "The kill switch is engaged: the AI feature is off for everyone. "
                "Recover as the playbook says (root cause, fix validated in shadow "
                "mode, gradual re-rollout) and turn it off before advancing."
            )
        blockers += [a.sentence for a in critical]
        # Past the critical level on the point estimate only: no pause, but no GO either.
        unproven = [a.sentence for a in warnings if a.past_critical]
        blockers += unproven
        notes = [x for x in notes if x not in unproven]
        blockers += gate.blockers
        blockers += _checklist_reasons(checklists, gate.next)
        if blockers:
            kind = VerdictKind.HOLD
            reasons = [
                f"The rollout holds in {_where_phase(gate)}; what stands between it and "
                f"{gate.next.label()}:",
                *blockers,
            ]
        else:
            kind = VerdictKind.GO
            reasons = [_go_sentence(gate, config, evidence.model_version)]
    reasons += notes
    drifted = [a for a in critical if a.metric == "psi"]
    recertify = (
        (True, " ".join(a.sentence for a in drifted) + " " + _escalation_sentence(config))
        if drifted
        else (False, None)
    )
    return Verdict(
        feature=evidence.feature,
        as_of=evidence.as_of,
        trustramp_version=trustramp_version,
        config_hash=config_hash or config.hash(),
        phase=config.phase,
        step=config.step,
        verdict=kind,
        next=gate.next,
        reasons=tuple(reasons),
        criteria=gate.criteria,
        alerts=tuple(a for a in checks if a.status is not AlertStatus.OK),
        rollback_triggers=tuple(triggers),
        checklists=checklists,
        data=evidence.data,
        window_start=evidence.window_start,
        window_end=evidence.window_end,
        model_version=evidence.model_version,
        kill_switch=config.kill_switch,
        confidence_level=config.statistics.confidence_level,
        gate=gate,
        segments=plan,
        procedure=procedure,
        thresholds_recertify=recertify,
        calibration=evidence.calibration,
    )


def _where_phase(gate: PhaseDecision) -> str:
    return gate.phase.value + (f" at {gate.step}%" if gate.step is not None else "")


def _go_sentence(gate: PhaseDecision, config: RolloutConfig, version: str | None) -> str:
    conf = f"{round(100 * config.statistics.confidence_level)}%"
    if gate.phase is Phase.GA:
        return (
            f"Sustained at GA: every criterion holds at {conf} confidence for model version "
            f"{version}; stay at 100%."
        )
    days = (
        f"after {gate.days_in_phase} days (minimum {gate.min_days})"
        if gate.days_in_phase is not None
        else "with no minimum duration"
    )
    return (
        f"GO from {_where_phase(gate)} to {gate.next.label()} for model version {version}: "
        f"every criterion holds at {conf} confidence with enough data, {days}, and nothing "
        f"blocks."
    )
