"""Shared plumbing of the benchmarks: data sets, the machine record, and measured child processes.

Every measured thing runs in a fresh Python process (`_child.py TASK ARGS`), one per repetition, so
that peak memory is that run's alone: the parent reaps the child with `os.wait4` and reads its
`ru_maxrss` (peak resident set, KiB on Linux) and CPU time. The child reports the wall time of the
measured call itself (imports excluded) on its last stdout line as JSON.

Generated inputs live in `benchmarks/data/` and raw results in `benchmarks/out/` (both git-ignored).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / "data"
OUT = BENCH / "out"
CHILD = BENCH / "_child.py"
PYTHON = sys.executable

SEED = 7
DAYS = 30
N_CUSTOMERS = 1000
VERSIONS = ("v1", "v2", "v3")
N_CLASSES = 5
END = dt.date(2026, 11, 20)
FEATURE = "demo-triage"
WINDOW_DAYS = 30
"""The benchmarks' config evaluates all 30 days (the playbook default window is 14 days)."""


# -- the machine --------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    code = (
        "import json, duckdb, pandas, numpy, pyarrow, sklearn, trustramp; "
        "print(json.dumps({'duckdb': duckdb.__version__, 'pandas': pandas.__version__, "
        "'numpy': numpy.__version__, 'pyarrow': pyarrow.__version__, "
        "'scikit-learn': sklearn.__version__, 'trustramp': trustramp.__version__}))"
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    out.update(json.loads(done.stdout))
    try:
        import importlib.metadata as md

        out["fairlearn"] = md.version("fairlearn")
    except Exception:
        pass
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_digest() -> str:
    """A short hash of trustramp's source files: which code the numbers measured (no git here)."""
    import hashlib

    h = hashlib.sha256()
    src = ROOT / "src" / "trustramp"
    for p in sorted(src.rglob("*")):
        if p.suffix in (".py", ".sql", ".yaml", ".html", ".j2", ".css") and p.is_file():
            h.update(str(p.relative_to(src)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def machine() -> dict[str, Any]:
    """What the numbers came from: cores, memory, disk, versions, load average now."""
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.strip()
    mem_total = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 + 0.5)
    disk = shutil.disk_usage(ROOT)
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "mem_total_gib": mem_total,
        "free_g": free,
        "disk_free_gib": round(disk.free / 2**30, 1),
        "loadavg": os.getloadavg(),
        "versions": _versions(),
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "memory_limit_env": os.environ.get("TRUSTRAMP_MEMORY_LIMIT"),
        "source_digest": source_digest(),
    }


# -- data sets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """One generated input folder (the project's own generator) and its rollout config."""

    folder: Path
    n: int
    fmt: str
    days: int
    counts: dict[str, int]
    start: dt.date
    end: dt.date
    config: Path


def _config_mapping(end: dt.date) -> dict[str, Any]:
    from trustramp.demo import DemoManifest, demo_config

    manifest = DemoManifest(
        out_dir=DATA,
        feature=FEATURE,
        start=end,
        end=end,
        files={},
        counts={},
        planted={},
        seed=SEED,
    )
    cfg = demo_config(manifest)
    cfg["statistics"] = {"window_days": WINDOW_DAYS}
    return cfg


def dataset(n: int, fmt: str = "parquet", *, days: int = DAYS, end: dt.date = END) -> Dataset:
    """The generated data for `n` predictions (generated once, then reused)."""
    import yaml

    folder = DATA / f"gen-{fmt}-{n}-{days}d"
    # Beside the folder, not in it: ingest reads every file of the folder.
    marker = DATA / f"{folder.name}.manifest.json"
    config = DATA / f"{folder.name}.rollout.yaml"
    if not marker.exists():
        from trustramp.demo import generate

        t0 = time.perf_counter()
        log(f"generating {n:,} predictions as {fmt} ({days} days) into {folder} ...")
        m = generate(
            folder,
            n_predictions=n,
            days=days,
            end=end,
            seed=SEED,
            n_customers=N_CUSTOMERS,
            model_versions=VERSIONS,
            n_classes=N_CLASSES,
            fmt=fmt,  # type: ignore[arg-type]
            class_probabilities=False,
            overwrite=True,
        )
        config.write_text(yaml.safe_dump(_config_mapping(m.end), sort_keys=False), "utf-8")
        marker.write_text(
            json.dumps(
                {
                    "n": n,
                    "fmt": fmt,
                    "days": days,
                    "counts": m.counts,
                    "start": m.start.isoformat(),
                    "end": m.end.isoformat(),
                    "generate_seconds": round(time.perf_counter() - t0, 1),
                }
            )
        )
        log(f"  done in {time.perf_counter() - t0:.0f} s: {m.counts}")
    info = json.loads(marker.read_text())
    return Dataset(
        folder=folder,
        n=n,
        fmt=fmt,
        days=days,
        counts=info["counts"],
        start=dt.date.fromisoformat(info["start"]),
        end=dt.date.fromisoformat(info["end"]),
        config=config,
    )


def lake_home(data: Dataset) -> Path:
    return DATA / f"home-{data.fmt}-{data.n}-{data.days}d"


def lake_marker(data: Dataset) -> Path:
    return DATA / f"{lake_home(data).name}.ok"


def adopt_lake(data: Dataset, home: Path, result: Mapping[str, Any]) -> None:
    """Keep a measured ingest's home as the lake of `data` (same inputs, same lake)."""
    target = lake_home(data)
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(home / "tmp", ignore_errors=True)
    home.rename(target)
    lake_marker(data).write_text(json.dumps(dict(result)))


def lake(data: Dataset) -> Path:
    """A trustramp home with `data` ingested (built once in a child process, then reused)."""
    home = lake_home(data)
    marker = lake_marker(data)
    if not marker.exists():
        shutil.rmtree(home, ignore_errors=True)
        log(f"ingesting {data.folder.name} into {home} (not measured) ...")
        r = run_child(
            "ingest",
            {"folders": [str(data.folder)], "home": str(home), "config": str(data.config)},
        )
        if r["failed"]:
            raise ChildFailed(f"ingest into {home} failed: {r['failed']}")
        marker.write_text(json.dumps(r))
        log(f"  done in {r['seconds']:.0f} s")
    return home


# -- measured child processes --------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class ChildFailed(RuntimeError):
    pass


def run_child(
    task: str,
    args: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run one task in a fresh process; its result plus peak RSS, CPU time and load average."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONHASHSEED", "0")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, str(CHILD), task, json.dumps(dict(args))],
            stdout=out,
            stderr=err,
            env=full_env,
            cwd=ROOT,
        )
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.perf_counter() - t0 > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise ChildFailed(f"{task} timed out after {timeout:.0f} s")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise ChildFailed(f"{task} exited {proc.returncode}:\n{stderr[-4000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1])
    result.update(
        process_seconds=round(wall, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2),
        load1_before=round(load_before, 2),
        load1_after=round(os.getloadavg()[0], 2),
    )
    return result


def repeat(
    task: str,
    args: Mapping[str, Any],
    reps: int,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    label: str = "",
) -> list[dict[str, Any]]:
    """`reps` runs of one task, each in its own process, one after the other."""
    runs = []
    for i in range(reps):
        r = run_child(task, args, env=env, timeout=timeout)
        log(
            f"  {label or task} run {i + 1}/{reps}: {r['seconds']:.2f} s, "
            f"peak {r['peak_rss_mb']:.0f} MB, cpu {r['cpu_seconds']:.1f} s, "
            f"load {r['load1_before']:.1f}"
        )
        runs.append(r)
    return runs


def summary(runs: Sequence[Mapping[str, Any]], key: str = "seconds") -> dict[str, float]:
    """Median, min and max of one measure over runs."""
    values = [float(r[key]) for r in runs]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def save(name: str, record: Mapping[str, Any]) -> Path:
    """Write the raw results to `benchmarks/out/<name>-<time>.json` and `<name>-latest.json`."""
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    text = json.dumps(record, indent=1, default=str)
    path = OUT / f"{name}-{stamp}.json"
    path.write_text(text)
    (OUT / f"{name}-latest.json").write_text(text)
    return path


def fmt_time(s: Mapping[str, float]) -> str:
    """`median (min–max)` in seconds."""
    return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"


def fmt_mb(s: Mapping[str, float]) -> str:
    return f"{s['median']:.0f} ({s['min']:.0f}–{s['max']:.0f})"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_lines(m: Mapping[str, Any]) -> list[str]:
    v = m["versions"]
    return [
        f"- {m['when']}: {m['nproc']} cores ({m['cpu']}), {m['mem_total_gib']} GiB RAM, "
        f"{m['disk_free_gib']} GiB disk free, load average {m['loadavg'][0]:.2f} / "
        f"{m['loadavg'][1]:.2f} / {m['loadavg'][2]:.2f} at the start",
        "- "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f"; trustramp source digest {m.get('source_digest', '?')}",
    ]
