"""Alert notifications: each new alert is sent once, to a Slack-compatible webhook (or any channel).

An alert is identified by its key (metric, segment, level), the segment qualified by the alert's
model version when it names one (alerts are per version). What was sent is remembered per feature
and per channel in `HOME/state/notified/<feature>.json`; an alert that is still open is not sent
again, an alert that cleared and fires again is new. A level change (warning to critical) is a new
alert. A check that lacks data this run neither clears nor re-sends an open alert.

Delivery is retried a bounded number of times with exponential back-off; a failure is logged and
reported, never raised: notifying must not fail the run that found the alert. An alert that could
not be delivered stays unsent, so the next run tries it again. Only the standard library is used.
No Prefect here (a Prefect notification block is wrapped into a `Channel` by the flow).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustramp.config import RolloutConfig

log = logging.getLogger(__name__)

__all__ = [
    "Channel",
    "Notice",
    "NotifyReport",
    "notify_alerts",
    "notify_verdict",
    "pending_notices",
    "state_path",
    "webhook_channel",
]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
Key = tuple[str, str, str]
"""(metric, segment, level): what identifies an alert across runs; the segment reads
`smb @ v2` for an alert of model version v2 (see `_scope`)."""


def _scope(segment: str, model_version: object) -> str:
    """The segment part of a key: two versions' alerts on one segment are two alerts."""
    return f"{segment} @ {model_version}" if model_version else segment


@dataclass(frozen=True)
class Notice:
    """One firing alert (or fired rollback trigger) of one evaluation, ready to be sent."""

    feature: str
    as_of: str
    verdict: str
    phase: str
    metric: str
    segment: str
    level: str
    message: str
    action: str
    value: float | None = None
    threshold: float | None = None
    escalation: tuple[Mapping[str, Any], ...] = ()
    report: str | None = None
    model_version: str | None = None

    @property
    def key(self) -> Key:
        return (self.metric, _scope(self.segment, self.model_version), self.level)

    @property
    def title(self) -> str:
        where = "overall" if self.segment == "all" else self.segment
        if self.model_version:
            where += f", model {self.model_version}"
        return f"{self.level.capitalize()} alert: {self.feature} {self.metric} ({where})"

    @property
    def text(self) -> str:
        """The plain-text message (also Slack's fallback text)."""
        return (
            f"[{self.level.upper()}] {self.feature}: {self.message} "
            f"Verdict {self.verdict} ({self.phase}) as of {self.as_of}. "
            f"Escalation: {escalation_text(self.escalation, sep='; ') or 'none configured'}."
        )

    def payload(self) -> dict[str, Any]:
        """A Slack-compatible JSON body: `text` (fallback) and `blocks` (the layout)."""
        fields = [
            ("Action", self.action),
            ("Verdict", f"{self.verdict} ({self.phase})"),
            ("Level", self.level),
            ("Segment", self.segment),
        ]
        context = f"trustramp · {self.feature} · as of {self.as_of}"
        if self.report:
            context += f" · report: {self.report}"
        return {
            "text": self.text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(self.message)}},
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": f"*{name}*\n{_mrkdwn(value)}"}
                        for name, value in fields
                    ],
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": "*Escalation*\n"
                        + _mrkdwn(escalation_text(self.escalation) or "none configured"),
                    },
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(context)}]},
            ],
        }


@dataclass(frozen=True)
class Channel:
    """A named way to deliver a notice; `send` raises on failure."""

    name: str
    send: Callable[[Notice], None]


@dataclass
class NotifyReport:
    """What one notification round did, per channel."""

    feature: str
    as_of: str
    firing: list[Notice] = field(default_factory=list)
    sent: list[tuple[str, Notice]] = field(default_factory=list)
    failed: list[tuple[str, Notice, str]] = field(default_factory=list)
    still_open: list[tuple[str, Key]] = field(default_factory=list)
    cleared: list[tuple[str, Key]] = field(default_factory=list)
    stale: bool = False
    """True when a newer as-of date was already notified: nothing was sent or changed."""

    def summary_lines(self) -> list[str]:
        if self.stale:
            return [
                f"notifications: skipped, {self.feature} was already notified for a later date "
                f"than {self.as_of}"
            ]
        lines = [
            f"notifications: {len(self.firing)} firing, {len(self.sent)} sent, "
            f"{len(self.still_open)} still open (not resent), {len(self.cleared)} cleared, "
            f"{len(self.failed)} failed"
        ]
        lines += [f"  sent via {ch}: {n.title}" for ch, n in self.sent]
        lines += [f"  FAILED via {ch}: {n.title}: {err}" for ch, n, err in self.failed]
        return lines


# -- building notices ----------------------------------------------------------------------------


def escalation_text(steps: Sequence[Mapping[str, Any]], *, sep: str = "\n") -> str:
    """The escalation path as text: `1. On-call engineer: automated alert (immediately)` ..."""
    out = []
    for s in steps:
        minutes = s.get("within_minutes")
        when = "immediately" if not minutes else f"within {minutes} min"
        out.append(f"{s.get('step')}. {s.get('role')}: {s.get('what')} ({when})")
    return sep.join(out)


def pending_notices(
    verdict: Mapping[str, Any],
    *,
    escalation: Sequence[Mapping[str, Any]] = (),
    report: str | None = None,
) -> list[Notice]:
    """The notices a verdict calls for: every firing alert and every fired rollback trigger.

    Parameters
    ----------
    verdict : mapping
        The `verdict.json` document (`Verdict.to_dict()`).
    escalation : sequence of mapping
        The escalation path (config `escalation`), used for rollback triggers; alerts carry their own.
    report : str, optional
        Where the report is (a path or URL), quoted in every notice.
    """
    common = {
        "feature": str(verdict["feature"]),
        "as_of": str(verdict["as_of"]),
        "verdict": str(verdict["verdict"]),
        "phase": str(verdict["phase"]),
        "report": report,
    }
    notices = []
    for a in verdict.get("alerts", []):
        if not a.get("level"):  # ok or insufficient data: nothing to notify
            continue
        notices.append(
            Notice(
                metric=str(a["metric"]),
                segment=str(a["segment"]),
                level=str(a["level"]),
                message=str(a.get("message") or f"{a['metric']} alert"),
                action=str(a.get("action") or ""),
                value=a.get("value"),
                threshold=a.get("threshold"),
                escalation=tuple(a.get("escalation") or escalation),
                model_version=str(a["model_version"]) if a.get("model_version") else None,
                **common,
            )
        )
    procedure = "; ".join(verdict.get("procedure") or [])
    for t in verdict.get("rollback_triggers", []):
        if not t.get("fired"):
            continue
        notices.append(
            Notice(
                metric=f"rollback: {t['trigger']}",
                segment=",".join(t.get("segments") or ["all"]),
                level="critical",
                message=f"Rollback trigger fired: {t['trigger']}. {t.get('evidence', '')}".strip(),
                action="roll back: execute the kill switch"
                + (f" ({procedure})" if procedure else ""),
                escalation=tuple(escalation),
                **common,
            )
        )
    return notices


def _unknown(verdict: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(metric, segment) checks that lacked data this run: their open alerts stay open."""
    return {
        (str(a["metric"]), _scope(str(a["segment"]), a.get("model_version")))
        for a in verdict.get("alerts", [])
        if not a.get("level") and a.get("status") == "insufficient data"
    }


# -- channels ------------------------------------------------------------------------------------


def webhook_channel(url: str, *, timeout: float = 10.0, name: str = "webhook") -> Channel:
    """A channel that POSTs each notice's `payload()` as JSON to `url` (Slack incoming webhooks)."""

    def send(notice: Notice) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"notifications.webhook_url must be an http(s) URL, got {url[:60]!r}")
        from trustramp import __version__

        request = urllib.request.Request(
            url,
            data=json.dumps(notice.payload()).encode("utf-8"),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": f"trustramp/{__version__}",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()

    return Channel(name, send)


def _retryable(exc: BaseException) -> bool:
    """Server errors, throttling, timeouts and connection problems are worth another try."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return not isinstance(exc, ValueError | TypeError)


def _unreachable(exc: BaseException) -> bool:
    """The endpoint cannot be reached at all (so later notices of this run need not try)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    return isinstance(exc, urllib.error.URLError | ConnectionError | TimeoutError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    return f"{type(exc).__name__}: {exc}"


def _deliver(
    channel: Channel, notice: Notice, *, attempts: int, backoff: float
) -> BaseException | None:
    """Send with bounded retries and exponential back-off; the last error, or None when sent."""
    error: BaseException | None = None
    for attempt in range(attempts):
        try:
            channel.send(notice)
            return None
        except Exception as exc:
            error = exc
            log.warning(
                "notification %r via %s failed (attempt %d of %d): %s",
                notice.title,
                channel.name,
                attempt + 1,
                attempts,
                _describe(exc),
            )
            if not _retryable(exc):
                break
            if attempt + 1 < attempts:
                time.sleep(backoff * 2**attempt)
    return error


# -- state ---------------------------------------------------------------------------------------


def state_path(home: str | Path, feature: str) -> Path:
    """`HOME/state/notified/<feature>.json`; the name is checked so it cannot leave that folder."""
    if not _SAFE_NAME.fullmatch(feature):
        raise ValueError(
            f"feature {feature!r} is not a valid name for a state file "
            "(letters, digits, . _ -; not starting with . or -)"
        )
    return Path(home) / "state" / "notified" / f"{feature}.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One notifier per feature at a time (a nightly and an on-demand run may overlap)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {"channels": {}}
    except (OSError, ValueError) as e:
        # A damaged state file must not stop alerts: start afresh (at worst, one resend).
        log.error("%s: unreadable notification state (%s); starting afresh", path, e)
        return {"channels": {}}
    return data if isinstance(data, dict) else {"channels": {}}


def _write_state(path: Path, state: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, path)


def _entry_key(entry: Mapping[str, Any]) -> Key:
    segment = _scope(str(entry["segment"]), entry.get("model_version"))
    return (str(entry["metric"]), segment, str(entry["level"]))


# -- the round -----------------------------------------------------------------------------------


def notify_alerts(
    verdict: Mapping[str, Any],
    *,
    home: str | Path,
    channels: Sequence[Channel],
    escalation: Sequence[Mapping[str, Any]] = (),
    report: str | None = None,
    attempts: int = 3,
    backoff: float = 1.0,
) -> NotifyReport:
    """Send every new alert of a verdict once through every channel; remember what was sent.

    Parameters
    ----------
    verdict : mapping
        The `verdict.json` document.
    home : str or Path
        The trustramp home; the state is `HOME/state/notified/<feature>.json`.
    channels : sequence of Channel
        Where to send. With none, nothing is sent and the state is left as it is.
    escalation, report : see `pending_notices`.
    attempts : int
        Tries per notice and channel (at least 1); 5xx, 408, 429 and connection errors are retried.
    backoff : float
        Seconds before the second try; doubled before each further one.

    Returns
    -------
    NotifyReport
        Never raises for a delivery failure: failures are logged and listed in the report.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts!r}")
    if backoff < 0:
        raise ValueError(f"backoff must be >= 0, got {backoff!r}")
    notices = pending_notices(verdict, escalation=escalation, report=report)
    result = NotifyReport(str(verdict["feature"]), str(verdict["as_of"]), firing=notices)
    if not channels:
        return result
    path = state_path(home, result.feature)
    unknown = _unknown(verdict)
    with _locked(path):
        state = _read_state(path)
        if str(state.get("as_of") or "") > result.as_of:  # ISO dates compare as strings
            log.info(
                "notifications for %s skipped: already sent for %s", result.feature, state["as_of"]
            )
            result.stale = True
            return result
        by_channel: dict[str, list[dict[str, Any]]] = dict(state.get("channels") or {})
        for channel in channels:
            by_channel[channel.name] = _round(
                channel,
                notices,
                by_channel.get(channel.name, []),
                unknown,
                result,
                attempts=attempts,
                backoff=backoff,
            )
        _write_state(
            path, {"feature": result.feature, "as_of": result.as_of, "channels": by_channel}
        )
    for line in result.summary_lines():
        log.info("%s", line)
    return result


def _round(
    channel: Channel,
    notices: Sequence[Notice],
    sent_before: Sequence[Mapping[str, Any]],
    unknown: set[tuple[str, str]],
    result: NotifyReport,
    *,
    attempts: int,
    backoff: float,
) -> list[dict[str, Any]]:
    """One channel's round; returns its open alerts after the round."""
    open_before = {_entry_key(e): dict(e) for e in sent_before}
    current = {n.key for n in notices}
    still: dict[Key, dict[str, Any]] = {}
    for key, entry in open_before.items():
        if key in current or key[:2] in unknown:
            still[key] = entry
        else:
            result.cleared.append((channel.name, key))
    unreachable: str | None = None
    for notice in notices:
        if notice.key in still:
            result.still_open.append((channel.name, notice.key))
            continue
        if unreachable is not None:
            result.failed.append((channel.name, notice, f"not tried: {unreachable}"))
            continue
        error = _deliver(channel, notice, attempts=attempts, backoff=backoff)
        if error is None:
            result.sent.append((channel.name, notice))
            still[notice.key] = {
                "metric": notice.metric,
                "segment": notice.segment,
                "model_version": notice.model_version,
                "level": notice.level,
                "since": notice.as_of,
                "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        else:
            log.error(
                "notification %r via %s not delivered: %s (will retry next run)",
                notice.title,
                channel.name,
                _describe(error),
            )
            result.failed.append((channel.name, notice, _describe(error)))
            if _unreachable(error):
                unreachable = f"{channel.name} unreachable ({_describe(error)})"
    return list(still.values())


def notify_verdict(
    verdict: Mapping[str, Any],
    *,
    home: str | Path,
    config: RolloutConfig,
    report: str | None = None,
    extra_channels: Sequence[Channel] = (),
    attempts: int = 3,
    backoff: float = 1.0,
    timeout: float = 10.0,
) -> NotifyReport:
    """`notify_alerts` through the config's channels (`notifications.webhook_url`) and any extra."""
    channels = list(extra_channels)
    if config.notifications.webhook_url:
        channels.insert(0, webhook_channel(config.notifications.webhook_url, timeout=timeout))
    return notify_alerts(
        verdict,
        home=home,
        channels=channels,
        escalation=[s.model_dump(mode="json") for s in config.escalation],
        report=report,
        attempts=attempts,
        backoff=backoff,
    )


def _mrkdwn(text: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:2900]
