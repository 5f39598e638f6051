"""A real deployment: Prefect server, process work pool, `prefect deploy --all` from prefect.yaml, a
worker, and the `on-demand` deployment run with parameters pointing at demo data in tmp_path.

Every process is started in its own process group and stopped by its id in a `finally`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "trustramp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Background processes, each the leader of its own process group."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], **kw: object) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw
        )  # type: ignore[call-overload]
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            _stop_group(proc)

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text("utf-8", "replace")[-3000:]
            for p in sorted(self.logs.glob("*.log"))
        )


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group whose leader we started (pgid == its pid), then SIGKILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader, or a stuck leader
    proc.wait(timeout=10)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"prefect server not healthy after {timeout:g} s")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    p = Processes(logs)
    try:
        yield p
    finally:
        p.stop_all()


def test_on_demand_deployment_runs_on_a_worker(tmp_path: Path, procs: Processes) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_CLI_COLORS": "false",
        # The nightly deployment is registered with its cron schedule, but must not run here.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    env.pop("PREFECT_PROFILES_PATH", None)
    server = procs.start(
        "server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env
    )

    # While the server comes up: demo data, ingested into a home in tmp_path.
    data, errors = tmp_path / "data", []

    def prepare() -> None:
        try:
            from trustramp.demo import demo_config, generate
            from trustramp.pipeline import ingest

            manifest = generate(data / "landing", n_predictions=3_000, days=10, seed=5)
            (data / "rollout.yaml").write_text(yaml.safe_dump(demo_config(manifest)), "utf-8")
            report = ingest([data / "landing"], home=data / "home", configs=[data / "rollout.yaml"])
            assert not report.failed
            (data / "end").write_text(manifest.end.isoformat())
        except BaseException as e:  # surfaced below
            errors.append(e)

    preparing = threading.Thread(target=prepare)
    preparing.start()

    # The deployment is made from a copy of the project's prefect.yaml and flows/, so that nothing
    # `prefect deploy` writes lands in the source tree.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "prefect.yaml", project / "prefect.yaml")
    shutil.copytree(ROOT / "flows", project / "flows", ignore=shutil.ignore_patterns("__pycache__"))

    def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [PREFECT, *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (
            f"prefect {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}\n"
            + procs.tail()
        )
        return done

    try:
        wait_healthy(api, server, timeout=90)
        cli("work-pool", "create", POOL, "--type", "process")
        cli("--no-prompt", "deploy", "--all")
        nightly = cli("deployment", "inspect", "nightly/nightly").stdout
        spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        cron = next(d for d in spec["deployments"] if d["name"] == "nightly")["schedules"][0][
            "cron"
        ]
        assert cron in nightly and "'timezone': 'UTC'" in nightly, nightly
        procs.start(
            "worker",
            [PREFECT, "worker", "start", "--pool", POOL, "--limit", "1"],
            cwd=project,
            env=env,
        )
        preparing.join(timeout=120)
        assert not errors, errors
        end = (data / "end").read_text()
        reports = tmp_path / "reports"
        run = cli(
            "deployment",
            "run",
            "evaluate/on-demand",
            "--param",
            f"config={json.dumps(str(data / 'rollout.yaml'))}",
            "--param",
            f"as_of={json.dumps(end)}",
            "--param",
            "window_days=7",
            "--param",
            f"home={json.dumps(str(data / 'home'))}",
            "--param",
            f"reports={json.dumps(str(reports))}",
            "--watch",
            "--watch-interval",
            "2",
            "--watch-timeout",
            "150",
            timeout=170,
        )
        assert "Completed" in run.stdout, run.stdout
    finally:
        preparing.join(timeout=120)

    # What the run wrote, from inside the worker's flow-run process.
    out = reports / "demo-triage" / end
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["feature"] == "demo-triage" and verdict["as_of"] == end
    assert verdict["verdict"] in {"GO", "HOLD", "PAUSE", "ROLLBACK"}
    assert (out / "metrics.parquet").stat().st_size > 0
    assert (out / "thresholds.yaml").is_file()
    # the run was recorded in the home it was pointed at
    assert any((data / "home" / "state" / "runs").glob("demo-triage__*.parquet"))
    # nothing was written to the source tree's flows/ by the deployment
    assert not (ROOT / "flows" / ".prefect").exists()
