"""Readiness checklists (playbook section 2): model readiness from the data, infrastructure and
user readiness from the config's attestations.

Every item has a status — ``done``, ``not done`` (nobody attested it, or nothing is configured to
check), ``failed`` (the data show it is not met) or ``insufficient`` (too little data to tell) —
plain-sentence evidence, an owner, and the first phase it blocks: a GO into that phase or any
later one needs the item ``done``.

Which phase each checklist blocks, and why:

- **model** blocks ``dogfood`` onward, i.e. leaving shadow mode. The playbook calls it pre-launch
  validation, and everything on it (accuracy, calibration, edge cases, regression, bias by
  segment) is measurable from shadow traffic before anybody sees a suggestion.
- **infrastructure** blocks ``limited_beta`` onward: once real customers see the feature,
  monitoring, alerting, fallbacks, a tested rollback and an on-call rotation must exist.
  Internal dogfooding may run without them.
- **user** blocks ``controlled`` onward: documentation, a trained support team, FAQs and a
  feedback channel matter once the feature reaches users who did not opt in; beta customers
  work with the team directly.

Model items:

- accuracy meets the minimum (``rollback.accuracy_min``), judged like a gate criterion (exact
  bound, e-value, ``min_samples``);
- calibration: ``done`` when ECE is at or below ``statistics.ece_threshold``; ``failed`` only when
  the consistency test rejects (p < 0.01) *and* ECE exceeds the threshold (SPEC 3.5);
  ``insufficient`` when ECE is not shown (too few labels) or exceeds the threshold without the test
  rejecting (the excess may be noise);
- one item per configured edge-case slice (``statistics.edge_case_slices``), judged like the
  accuracy item; ``not done`` when no slice is configured (edge cases must be documented);
- no regression against the previous version (``done`` when there is no previous version and the
  baseline is not a model version);
- bias audit complete for every configured segment: any ``insufficient`` (or missing) segment
  makes it ``insufficient``, any ``worse`` segment makes it ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from trustramp.config import PHASE_ORDER, Attestation, Phase, RolloutConfig
from trustramp.decide.evidence import ALL, Count, Evidence
from trustramp.decide.gates import Outcome, judge_proportion

__all__ = [
    "BLOCKS",
    "ChecklistItem",
    "Checklists",
    "ItemStatus",
    "evaluate_checklists",
]

MISCALIBRATION_P = 0.01
"""The consistency test must reject at this level for a model to be judged miscalibrated."""


class ItemStatus(StrEnum):
    DONE = "done"
    NOT_DONE = "not done"
    FAILED = "failed"
    INSUFFICIENT = "insufficient"


BLOCKS: dict[str, Phase] = {
    "model": Phase.DOGFOOD,
    "infrastructure": Phase.LIMITED_BETA,
    "user": Phase.CONTROLLED,
}
"""The first phase each checklist blocks (a GO into it or any later phase needs it done)."""


@dataclass(frozen=True)
class ChecklistItem:
    item: str
    status: ItemStatus
    evidence: str
    owner: str | None
    blocks: Phase

    def blocks_entry_to(self, phase: Phase) -> bool:
        """True when this item, not done, stops a GO into ``phase``."""
        return self.status is not ItemStatus.DONE and PHASE_ORDER.index(phase) >= PHASE_ORDER.index(
            self.blocks
        )


@dataclass(frozen=True)
class Checklists:
    model: tuple[ChecklistItem, ...]
    infrastructure: tuple[ChecklistItem, ...]
    user: tuple[ChecklistItem, ...]

    def blocking(self, phase: Phase) -> dict[str, list[ChecklistItem]]:
        """The items that stop a GO into ``phase``, by checklist (empty lists left out)."""
        out = {}
        for name in ("model", "infrastructure", "user"):
            items = [i for i in getattr(self, name) if i.blocks_entry_to(phase)]
            if items:
                out[name] = items
        return out


_FROM_OUTCOME = {
    Outcome.PASS: ItemStatus.DONE,
    Outcome.FAIL: ItemStatus.FAILED,
    Outcome.INSUFFICIENT: ItemStatus.INSUFFICIENT,
}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _accuracy_item(
    item: str, count: Count | None, what: str, config: RolloutConfig
) -> ChecklistItem:
    minimum = config.rollback.accuracy_min
    st = config.statistics
    blocks = BLOCKS["model"]
    if count is None or count.n == 0:
        return ChecklistItem(
            item, ItemStatus.INSUFFICIENT, f"No labeled unshown items for {what}.", None, blocks
        )
    j = judge_proportion(
        count.k,
        count.n,
        threshold=minimum,
        comparator=">=",
        confidence_level=st.confidence_level,
        min_samples=st.min_samples,
    )
    conf = f"{round(100 * st.confidence_level)}%"
    text = (
        f"Accuracy for {what} is {_pct(j.value or 0.0)} on {count.n:,} labeled unshown items, "
        f"at least {_pct(j.ci_low or 0.0)} at {conf} confidence; the minimum is "
        f"{_pct(minimum)}"
    )
    if count.n < st.min_samples:
        text += f" and at least {st.min_samples:,} items are needed"
    return ChecklistItem(item, _FROM_OUTCOME[j.outcome], text + ".", None, blocks)


def _calibration_item(evidence: Evidence, config: RolloutConfig) -> ChecklistItem:
    threshold = config.statistics.ece_threshold
    item = f"Confidence calibration validated (ECE below {threshold:g})"
    blocks = BLOCKS["model"]
    cal = evidence.calibration
    if cal is None or cal.ece is None:
        n = 0 if cal is None else cal.n
        return ChecklistItem(
            item,
            ItemStatus.INSUFFICIENT,
            f"ECE is not shown with {n:,} labeled items (it needs 500).",
            None,
            blocks,
        )
    text = f"ECE {cal.ece:.3f} on {cal.n:,} labeled items"
    if cal.noise_floor is not None:
        text += f" (noise floor {cal.noise_floor:.3f})"
    if cal.p_value is not None:
        text += f", consistency test p = {cal.p_value:.3g}"
    noisy = " ECE is noisy below 1,000 labeled items." if cal.n < 1000 else ""
    if cal.ece <= threshold:
        return ChecklistItem(
            item, ItemStatus.DONE, f"{text}; at or below {threshold:g}.{noisy}", None, blocks
        )
    if cal.p_value is not None and cal.p_value < MISCALIBRATION_P:
        return ChecklistItem(
            item,
            ItemStatus.FAILED,
            f"{text}: miscalibrated (above {threshold:g} and the test rejects "
            f"at {MISCALIBRATION_P:g}); consider the recommended recalibration."
            f"{noisy}",
            None,
            blocks,
        )
    return ChecklistItem(
        item,
        ItemStatus.INSUFFICIENT,
        f"{text}: above {threshold:g}, but the test does not show real "
        f"miscalibration; more labels will tell.{noisy}",
        None,
        blocks,
    )


def _edge_case_items(evidence: Evidence, config: RolloutConfig) -> list[ChecklistItem]:
    slices = config.statistics.edge_case_slices
    if not slices:
        return [
            ChecklistItem(
                "Edge cases documented and handled",
                ItemStatus.NOT_DONE,
                "No edge-case slices are configured "
                "(statistics.edge_case_slices); document them so each is checked.",
                None,
                BLOCKS["model"],
            )
        ]
    return [
        _accuracy_item(
            f"Edge case handled: {s.name}",
            evidence.edge_cases.get(s.name),
            f"the edge case {s.name} ({s.column} = {s.value})",
            config,
        )
        for s in slices
    ]


def _regression_item(evidence: Evidence, config: RolloutConfig) -> ChecklistItem:
    item = "Performance regression tests passing"
    blocks = BLOCKS["model"]
    reg = evidence.regression
    baseline_version = config.statistics.baseline.model_version
    if reg is None:
        if baseline_version is not None:
            return ChecklistItem(
                item,
                ItemStatus.INSUFFICIENT,
                f"No comparison with the baseline version {baseline_version} is available.",
                None,
                blocks,
            )
        return ChecklistItem(
            item,
            ItemStatus.DONE,
            "There is no previous model version to regress against.",
            None,
            blocks,
        )
    text = (
        f"{reg.candidate} {_pct(reg.acc_candidate)} vs {reg.previous} "
        f"{_pct(reg.acc_previous)} on {reg.n:,} shared items (p = {reg.p_value:.3g})"
    )
    if reg.regression:
        return ChecklistItem(
            item, ItemStatus.FAILED, f"{text}: a significant regression.", None, blocks
        )
    if reg.n < config.statistics.min_samples:
        return ChecklistItem(
            item,
            ItemStatus.INSUFFICIENT,
            f"{text}: fewer than {config.statistics.min_samples:,} shared items.",
            None,
            blocks,
        )
    return ChecklistItem(item, ItemStatus.DONE, f"{text}: no regression.", None, blocks)


def _bias_item(evidence: Evidence, config: RolloutConfig) -> ChecklistItem:
    item = "Bias audit completed for all segments"
    blocks = BLOCKS["model"]
    missing = [s for s in config.segments if s not in evidence.bias]
    worse = [
        evidence.bias[s]
        for s in config.segments
        if s in evidence.bias and evidence.bias[s].flag == "worse"
    ]
    thin = [
        evidence.bias[s]
        for s in config.segments
        if s in evidence.bias and evidence.bias[s].flag == "insufficient"
    ]
    parts = []
    if worse:
        parts.append(
            "worse than the rest: " + "; ".join(f"{f.segment} ({f.reason})" for f in worse)
        )
    if thin:
        parts.append("too little data: " + "; ".join(f"{f.segment} (n = {f.n:,})" for f in thin))
    if missing:
        parts.append("not audited: " + ", ".join(missing))
    if worse:
        return ChecklistItem(
            item, ItemStatus.FAILED, "Segments " + "; ".join(parts) + ".", None, blocks
        )
    if thin or missing:
        return ChecklistItem(
            item,
            ItemStatus.INSUFFICIENT,
            "Incomplete. Segments " + "; ".join(parts) + ".",
            None,
            blocks,
        )
    return ChecklistItem(
        item,
        ItemStatus.DONE,
        f"All {len(config.segments)} segments audited; none is flagged.",
        None,
        blocks,
    )


def _attested(att: Attestation, blocks: Phase) -> ChecklistItem:
    if att.done:
        bits = ["Attested done"]
        if att.date is not None:
            bits.append(f"on {att.date.isoformat()}")
        if att.owner:
            bits.append(f"by {att.owner}")
        text = " ".join(bits) + (f": {att.evidence}" if att.evidence else " (no evidence link)")
        return ChecklistItem(att.item, ItemStatus.DONE, text + ".", att.owner, blocks)
    text = "Not attested yet" + (f" (see {att.evidence})" if att.evidence else "") + "."
    return ChecklistItem(att.item, ItemStatus.NOT_DONE, text, att.owner, blocks)


def evaluate_checklists(evidence: Evidence, config: RolloutConfig) -> Checklists:
    """Build the three readiness checklists (see the module docstring for every rule)."""
    model = (
        _accuracy_item(
            "Accuracy meets the minimum threshold",
            evidence.accuracy.get(ALL),
            "the model overall",
            config,
        ),
        _calibration_item(evidence, config),
        *_edge_case_items(evidence, config),
        _regression_item(evidence, config),
        _bias_item(evidence, config),
    )
    att = config.attestations
    return Checklists(
        model=model,
        infrastructure=tuple(_attested(a, BLOCKS["infrastructure"]) for a in att.infrastructure),
        user=tuple(_attested(a, BLOCKS["user"]) for a in att.user),
    )
