"""Profile one benchmark task with py-spy and print where its time goes.

    .venv/bin/pip install py-spy      # once; not a project dependency
    .venv/bin/python benchmarks/profile_task.py evaluate --rows 1000000 [--cached]
    .venv/bin/python benchmarks/profile_task.py ingest --rows 1000000 [--fmt csv]
    .venv/bin/python benchmarks/profile_task.py queries --rows 10000000   # DuckDB side, per query

Runs the same child task as the benchmarks under `py-spy record` (100 samples/s; idle threads
excluded; time spent inside DuckDB is attributed to the Python line that called it) and prints the
functions with the largest inclusive and self share of samples. Raw stacks go to
`benchmarks/out/profile-<name>.txt` (collapsed format: `flamegraph.pl` or speedscope read it).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def summarize(path: Path, top: int = 30, match: str = "") -> str:
    """Inclusive and self shares of the frames in a collapsed-stack file."""
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        for f in set(frames):
            incl[f] += n
        self_[frames[-1]] += n
    out = [f"{total} samples"]
    out.append("inclusive (frames containing '%s'):" % (match or ""))
    shown = 0
    for f, n in incl.most_common():
        if match and match not in f:
            continue
        out.append(f"  {n / total:6.1%}  {f[:150]}")
        shown += 1
        if shown >= top:
            break
    out.append("self:")
    for f, n in self_.most_common(15):
        out.append(f"  {n / total:6.1%}  {f[:150]}")
    return "\n".join(out)


def queries(rows: int) -> None:
    """Time every query evaluate sends to the lake, with DuckDB operator profiles of two."""
    data = c.dataset(rows)
    home = c.lake(data)
    r = c.run_child(
        "lake_queries",
        {
            "home": str(home),
            "config": str(data.config),
            "as_of": data.end.isoformat(),
            "version": c.VERSIONS[-1],
            "previous": c.VERSIONS[-2],
            "profile_dir": str(c.OUT / f"duckdb-profile-{rows}"),
        },
    )
    lines = [
        f"lake queries of one evaluate at {rows:,} predictions (peak RSS "
        f"{r['peak_rss_mb']:.0f} MB, load {r['load1_before']:.1f}):"
    ]
    lines += [f"  {sec:8.2f} s  {name}" for name, sec in r["calls"].items()]
    for name, prof in r["profiles"].items():
        lines.append(
            f"{name}: {prof['seconds']:.2f} s, DuckDB CPU {prof['cpu_time']:.1f} s, peak buffer "
            f"{prof['peak_buffer_memory_mb']:.0f} MB, spilled {prof['spilled_mb']:.0f} MB; top operators:"
        )
        lines += [
            f"  {o['share']:6.1%} {o['seconds']:7.2f} s  {o['op']}  {o['detail'][:110]}"
            for o in prof["operators"]
        ]
    text = "\n".join(lines)
    (c.OUT / f"profile-queries-{rows}.txt").write_text(text)
    (c.OUT / f"profile-queries-{rows}.json").write_text(json.dumps(r, indent=1))
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["evaluate", "ingest", "pandas", "stage1", "queries"])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--fmt", default="parquet", choices=["parquet", "csv"])
    ap.add_argument("--cached", action="store_true", help="evaluate with every day cached")
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--match", default="trustramp", help="only frames containing this")
    a = ap.parse_args()
    if a.what == "queries":
        queries(a.rows)
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    data = c.dataset(a.rows, a.fmt)
    name = f"{a.what}{'-cached' if a.cached else ''}-{a.fmt}-{a.rows}"
    if a.what == "ingest":
        task, args = (
            "ingest",
            {
                "folders": [str(data.folder)],
                "home": str(c.DATA / f"profile-home-{a.rows}"),
                "config": str(data.config),
                "cleanup": True,
            },
        )
    elif a.what == "pandas":
        task, args = "pandas_metrics", {"folder": str(data.folder), "as_of": data.end.isoformat()}
    else:
        home = c.lake(data)
        if a.what == "stage1":
            task, args = (
                "stage1",
                {
                    "home": str(home),
                    "feature": c.FEATURE,
                    "start": data.start.isoformat(),
                    "end": data.end.isoformat(),
                },
            )
        else:
            task, args = (
                "evaluate",
                {
                    "home": str(home),
                    "reports": str(c.DATA / "profile-reports"),
                    "as_of": data.end.isoformat(),
                    "config": str(data.config),
                    "full_recompute": not a.cached,
                    "cleanup_reports": True,
                },
            )
    c.OUT.mkdir(parents=True, exist_ok=True)
    raw = c.OUT / f"profile-{name}.txt"
    cmd = [spy, "record", "-r", str(a.rate), "-f", "raw", "-o", str(raw), "--"]
    cmd += [c.PYTHON, str(c.CHILD), task, json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=c.ROOT)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    result = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    print(f"{name}: {result[-1] if result else '(no result)'}")
    text = summarize(raw, a.top, a.match)
    (c.OUT / f"profile-{name}.summary.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
