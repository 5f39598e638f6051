"""Alert notifications against a real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from trustramp.config import parse_config
from trustramp.decide.verdict import verdict_schema
from trustramp.notify import (
    Channel,
    Notice,
    notify_alerts,
    notify_verdict,
    pending_notices,
    state_path,
    webhook_channel,
)

ESCALATION = [
    {"step": 1, "role": "On-call engineer", "what": "automated alert", "within_minutes": 0},
    {"step": 2, "role": "ML Lead", "what": "investigation", "within_minutes": 15},
]
ACTIONS = {"accuracy": "pause rollout", "error_rate": "roll back", "latency_p95": "scale up"}


def alert(metric: str, segment: str = "all", level: str | None = "critical") -> dict[str, Any]:
    """One entry of verdict.json's `alerts` (level None: the check lacked data)."""
    return {
        "metric": metric,
        "segment": segment,
        "level": level,
        "status": "firing" if level else "insufficient data",
        "value": 0.8,
        "threshold": 0.9,
        "n": 500 if level else 3,
        "action": ACTIONS[metric],
        "escalation": ESCALATION,
        "message": f"{(level or 'no').capitalize()} alert: {metric} in {segment} is 80.0%.",
    }


def verdict(
    as_of: str = "2026-11-20",
    alerts: Sequence[dict[str, Any]] = (),
    triggers: Sequence[dict[str, Any]] = (),
    feature: str = "feat",
) -> dict[str, Any]:
    """A verdict.json document, checked against the published schema (so it is a real shape)."""
    doc = {
        "feature": feature,
        "as_of": as_of,
        "trustramp_version": "0.1.0",
        "config_hash": "0123456789abcdef",
        "phase": "controlled",
        "step": 25,
        "verdict": "ROLLBACK" if triggers else ("PAUSE" if alerts else "HOLD"),
        "next": {"phase": "controlled", "step": 50},
        "reasons": ["Some reason."],
        "criteria": [],
        "alerts": list(alerts),
        "rollback_triggers": list(triggers),
        "checklists": {"model": [], "infrastructure": [], "user": []},
        "data": {
            "window_start": "2026-11-07",
            "window_end": as_of,
            "predictions": 1000,
            "labeled": 900,
            "label_coverage": 0.9,
            "quarantined": 0,
        },
        "procedure": ["Execute the kill switch (immediate)", "Notify affected users"]
        if triggers
        else [],
    }
    jsonschema.validate(doc, verdict_schema())
    return doc


class Hook:
    """A webhook endpoint: records every POST; answers with queued status codes (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: deque[int] = deque()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                status = hook.statuses.popleft() if hook.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0/B0"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def texts(self) -> list[str]:
        return [r["json"]["text"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    try:
        yield h
    finally:
        h.close()


def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def run(doc: dict[str, Any], home: Path, url: str, **kw: Any) -> Any:
    return notify_alerts(
        doc,
        home=home,
        channels=[webhook_channel(url, timeout=5)],
        backoff=kw.pop("backoff", 0.01),
        **kw,
    )


# -- payload ---------------------------------------------------------------------------------------


def test_payload_is_slack_compatible_with_action_and_escalation(hook: Hook, tmp_path: Path) -> None:
    doc = verdict(alerts=[alert("accuracy", "smb")])
    report = run(doc, tmp_path, hook.url)
    assert len(hook.requests) == 1 and len(report.sent) == 1
    req = hook.requests[0]
    assert req["path"] == "/hooks/T0/B0"
    assert req["headers"]["Content-Type"].startswith("application/json")
    body = req["json"]
    assert set(body) == {"text", "blocks"}
    text = body["text"]
    for part in (
        "feat",
        "Critical alert: accuracy in smb is 80.0%.",
        "PAUSE",
        "2026-11-20",
        "On-call engineer",
        "ML Lead",
        "within 15 min",
    ):
        assert part in text
    assert body["blocks"][0]["type"] == "header"
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    flat = json.dumps(body["blocks"])
    assert "*Action*\\npause rollout" in flat
    escalation = next(
        b for b in body["blocks"] if "*Escalation*" in b.get("text", {}).get("text", "")
    )
    lines = escalation["text"]["text"].splitlines()
    assert lines[1:] == [
        "1. On-call engineer: automated alert (immediately)",
        "2. ML Lead: investigation (within 15 min)",
    ]


def test_payload_escapes_slack_markup(tmp_path: Path) -> None:
    doc = verdict(alerts=[alert("accuracy", "<!channel> & co")])
    (notice,) = pending_notices(doc)
    mrkdwn = [
        t["text"]
        for block in notice.payload()["blocks"]
        for t in [block.get("text", {}), *block.get("fields", []), *block.get("elements", [])]
        if t.get("type") == "mrkdwn"
    ]
    assert not any("<!channel>" in t for t in mrkdwn)
    assert any("&lt;!channel&gt; &amp; co" in t for t in mrkdwn)


def test_fired_rollback_trigger_is_a_critical_notice_naming_the_kill_switch() -> None:
    doc = verdict(
        triggers=[
            {
                "trigger": "error rate above critical",
                "fired": True,
                "evidence": "Error rate 9% on 800.",
                "segments": ["all"],
            },
            {"trigger": "security incident", "fired": False, "evidence": "None.", "segments": []},
        ]
    )
    (notice,) = pending_notices(doc, escalation=ESCALATION)
    assert notice.key == ("rollback: error rate above critical", "all", "critical")
    assert "kill switch" in notice.action and "Notify affected users" in notice.action
    assert "ML Lead" in notice.text and "ROLLBACK" in notice.text


# -- once per new alert ----------------------------------------------------------------------------

A, B = alert("accuracy", "smb"), alert("error_rate")
A_V1, A_V2 = ({**A, "model_version": "v1"}, {**A, "model_version": "v2"})


@pytest.mark.parametrize(
    ("runs", "expected_posts"),
    [
        # the same alerts on consecutive runs: sent once
        ([[A, B], [A, B], [A, B]], [2, 0, 0]),
        # one more alert fires: only that one is sent
        ([[A], [A, B]], [1, 1]),
        # cleared, then fires again: new
        ([[A], [], [A]], [1, 0, 1]),
        # warning -> critical is a new alert; critical -> warning too
        (
            [[alert("accuracy", "smb", "warning")], [A], [alert("accuracy", "smb", "warning")]],
            [1, 1, 1],
        ),
        # a run that could not check the metric neither clears nor re-sends it
        ([[A], [alert("accuracy", "smb", None)], [A]], [1, 0, 0]),
        # another segment's alert is another alert
        ([[A], [A, alert("accuracy", "enterprise")]], [1, 1]),
        # alerts are per model version: two versions failing one check are two alerts, and
        # the one that clears fires anew later while the other stays open
        ([[A_V2, A_V1], [A_V2], [A_V2, A_V1]], [2, 0, 1]),
    ],
)
def test_alert_is_sent_once_until_it_clears(
    hook: Hook, tmp_path: Path, runs: list[list[dict[str, Any]]], expected_posts: list[int]
) -> None:
    posts = []
    for day, alerts in enumerate(runs, start=10):
        before = len(hook.requests)
        run(verdict(as_of=f"2026-11-{day}", alerts=alerts), tmp_path, hook.url)
        posts.append(len(hook.requests) - before)
    assert posts == expected_posts


def test_state_file_remembers_open_alerts_per_channel(hook: Hook, tmp_path: Path) -> None:
    run(verdict(alerts=[A, B]), tmp_path, hook.url)
    report = run(verdict(alerts=[A]), tmp_path, hook.url)
    assert report.cleared == [("webhook", ("error_rate", "all", "critical"))]
    assert report.still_open == [("webhook", ("accuracy", "smb", "critical"))]
    state = json.loads(state_path(tmp_path, "feat").read_text())
    assert state_path(tmp_path, "feat") == tmp_path / "state" / "notified" / "feat.json"
    assert state["as_of"] == "2026-11-20"
    assert [(e["metric"], e["segment"], e["level"]) for e in state["channels"]["webhook"]] == [
        ("accuracy", "smb", "critical")
    ]


def test_an_older_as_of_date_does_not_disturb_the_newest_state(hook: Hook, tmp_path: Path) -> None:
    run(verdict(as_of="2026-11-20", alerts=[A]), tmp_path, hook.url)
    before = state_path(tmp_path, "feat").read_text()
    report = run(verdict(as_of="2026-11-01", alerts=[B]), tmp_path, hook.url)
    assert report.stale and len(hook.requests) == 1
    assert state_path(tmp_path, "feat").read_text() == before


def test_concurrent_runs_send_each_alert_once(hook: Hook, tmp_path: Path) -> None:
    doc = verdict(alerts=[A, B])
    threads = [threading.Thread(target=run, args=(doc, tmp_path, hook.url)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(hook.texts()) == sorted(n.text for n in pending_notices(doc))


def test_no_channel_sends_nothing_and_keeps_no_state(tmp_path: Path) -> None:
    report = notify_alerts(verdict(alerts=[A]), home=tmp_path, channels=[])
    assert len(report.firing) == 1 and not report.sent
    assert not state_path(tmp_path, "feat").exists()


# -- failures: retried, logged, never raised ---------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "attempts", "requests", "delivered"),
    [
        ([500, 500], 3, 3, True),  # server errors are retried
        ([503], 3, 2, True),
        ([429], 3, 2, True),  # throttled: retried
        ([500, 500], 2, 2, False),  # bounded
        ([400], 3, 1, False),  # a client error is not retried
        ([404], 3, 1, False),
    ],
)
def test_delivery_is_retried_on_server_errors_only(
    hook: Hook,
    tmp_path: Path,
    statuses: list[int],
    attempts: int,
    requests: int,
    delivered: bool,
) -> None:
    hook.statuses.extend(statuses)
    report = run(verdict(alerts=[A]), tmp_path, hook.url, attempts=attempts)
    assert len(hook.requests) == requests
    assert bool(report.sent) is delivered and bool(report.failed) is not delivered


def test_backoff_doubles_between_tries(hook: Hook, tmp_path: Path) -> None:
    hook.statuses.extend([500, 500, 500])
    start = time.monotonic()
    run(verdict(alerts=[A]), tmp_path, hook.url, attempts=3, backoff=0.2)
    assert time.monotonic() - start >= 0.2 + 0.4


def test_undelivered_alert_is_tried_again_next_run(hook: Hook, tmp_path: Path) -> None:
    hook.statuses.extend([500, 500])
    first = run(verdict(as_of="2026-11-19", alerts=[A]), tmp_path, hook.url, attempts=2)
    assert first.failed and "HTTP 500" in first.failed[0][2]
    second = run(verdict(as_of="2026-11-20", alerts=[A]), tmp_path, hook.url, attempts=2)
    assert len(second.sent) == 1 and len(hook.requests) == 3


def test_endpoint_down_never_raises_and_defers_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = [A, B, alert("latency_p95")]
    start = time.monotonic()
    report = run(verdict(alerts=alerts), tmp_path, refused_url(), attempts=3, backoff=0.01)
    assert time.monotonic() - start < 5
    assert not report.sent and len(report.failed) == 3
    assert "cannot connect" in report.failed[0][2]
    assert all("not tried" in err for _, _, err in report.failed[1:])  # endpoint known down
    assert any("not delivered" in r.message and r.levelname == "ERROR" for r in caplog.records)
    # nothing was recorded as sent, so everything goes out once the endpoint is back
    state = json.loads(state_path(tmp_path, "feat").read_text())
    assert state["channels"]["webhook"] == []


@pytest.mark.parametrize("url", ["ftp://example.invalid/hook", "file:///etc/passwd", "hooks"])
def test_non_http_webhook_url_fails_the_notice_not_the_run(tmp_path: Path, url: str) -> None:
    report = run(verdict(alerts=[A]), tmp_path, url)
    assert len(report.failed) == 1 and "http(s) URL" in report.failed[0][2]


def test_a_failing_channel_does_not_stop_another(hook: Hook, tmp_path: Path) -> None:
    def broken(notice: Notice) -> None:
        raise RuntimeError("block is misconfigured")

    report = notify_alerts(
        verdict(alerts=[A]),
        home=tmp_path,
        channels=[Channel("broken", broken), webhook_channel(hook.url)],
        attempts=2,
        backoff=0.0,
    )
    assert [ch for ch, _ in report.sent] == ["webhook"]
    assert [(ch, err) for ch, _, err in report.failed] == [
        ("broken", "RuntimeError: block is misconfigured")
    ]


# -- from a rollout config -------------------------------------------------------------------------


def test_notify_verdict_uses_the_configs_webhook_and_escalation(hook: Hook, tmp_path: Path) -> None:
    cfg = parse_config({"feature": "feat", "notifications": {"webhook_url": hook.url}})
    doc = verdict(
        triggers=[
            {
                "trigger": "availability below SLA",
                "fired": True,
                "evidence": "Availability 98%.",
                "segments": ["smb"],
            }
        ]
    )
    report = notify_verdict(doc, home=tmp_path, config=cfg, report="reports/feat/2026-11-20")
    assert len(report.sent) == 1
    text = hook.requests[0]["json"]["text"]
    assert "VP Engineering" in text  # the config's (default) escalation path, last step
    assert "reports/feat/2026-11-20" in json.dumps(hook.requests[0]["json"]["blocks"])


def test_notify_verdict_without_webhook_sends_nothing(tmp_path: Path) -> None:
    cfg = parse_config({"feature": "feat"})
    report = notify_verdict(verdict(alerts=[A]), home=tmp_path, config=cfg)
    assert not report.sent and not report.failed


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attempts": 0}, ValueError, "attempts must be at least 1, got 0"),
        ({"backoff": -1.0}, ValueError, "backoff must be >= 0, got -1.0"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        notify_alerts(verdict(alerts=[A]), home=tmp_path, channels=[], **kwargs)


@pytest.mark.parametrize("feature", ["../evil", ".hidden", "a/b", ""])
def test_state_path_rejects_names_that_leave_the_folder(tmp_path: Path, feature: str) -> None:
    with pytest.raises(ValueError, match="not a valid name for a state file"):
        state_path(tmp_path, feature)
