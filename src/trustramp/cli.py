"""The `trustramp` command. One error boundary: a TrustrampError prints `Error: ...` and exits non-zero."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trustramp import __version__
from trustramp.errors import TrustrampError

EXIT_BAD_INPUT = 3


def _quiet_dependencies() -> None:
    """No telemetry from our dependencies in our runs (set before they are imported)."""
    for key, value in {
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, value)
    # Great Expectations imports pyspark when it is installed (the optional Spark engine), and
    # pyspark warns about pandas 3 on import: nothing a trustramp user can act on.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support", category=FutureWarning
    )


def _boundary(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TrustrampError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(e.exit_code)
        except BrokenPipeError:  # the reader of our output went away (`| head`): no message
            with contextlib.suppress(OSError, ValueError, AttributeError):  # no real stdout
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except OSError as e:  # the file system said no (read-only, full, a file for a folder)
            from trustramp.store.outputs import storage_error

            err = storage_error("files", Path(e.filename or "."), e)
            click.echo(f"Error: {err}", err=True)
            sys.exit(err.exit_code)

    return wrapper


THIRD_PARTY_LOGGERS = ("great_expectations", "prefect", "httpx", "urllib3", "asyncio", "numexpr")
"""Loggers kept at WARNING even with -v: -v shows trustramp's progress, not its dependencies'."""


class _EchoHandler(logging.Handler):
    """Log records to the current stderr (click.echo: also under a test runner)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.name != "trustramp.progress":
                text = f"{record.levelname.lower()}: {record.name}: {text}"
            click.echo(text, err=True)
        except Exception:  # a log line must never break the run
            self.handleError(record)


def _setup_logging(verbose: bool) -> None:
    """-v: trustramp's INFO lines (stages, rows, seconds); on a terminal (or with
    TRUSTRAMP_PROGRESS set) the stage lines alone; warnings always. Restored when the command ends.
    """
    ours, stages = logging.getLogger("trustramp"), logging.getLogger("trustramp.progress")
    saved = (ours.level, ours.propagate, stages.level)
    handler = _EchoHandler()
    ours.addHandler(handler)
    ours.propagate = False
    ours.setLevel(logging.INFO if verbose else logging.WARNING)
    show_stages = verbose or sys.stderr.isatty() or bool(os.environ.get("TRUSTRAMP_PROGRESS"))
    stages.setLevel(logging.INFO if show_stages else logging.WARNING)
    quiet = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def restore() -> None:
        ours.removeHandler(handler)
        ours.setLevel(saved[0])
        ours.propagate = saved[1]
        stages.setLevel(saved[2])
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)

    click.get_current_context().call_on_close(restore)


def _memory_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check a --memory-limit and hand it to every DuckDB connection of this process."""
    if value is None:
        return None
    from trustramp.store.duck import memory_bytes

    percent = value.strip().removesuffix("%")
    if value.strip().endswith("%") and percent.isdigit() and 0 < int(percent) <= 100:
        os.environ["TRUSTRAMP_MEMORY_LIMIT"] = value  # DuckDB: a share of the machine's RAM
        return value
    try:
        if memory_bytes(value) < 16 * 2**20:
            raise click.BadParameter(f"{value!r} is below 16MB, too little to run", ctx, param)
    except ValueError:
        raise click.BadParameter(
            f"{value[:40]!r} is not a size like 512MB, 2GB or 50%", ctx, param
        ) from None
    os.environ["TRUSTRAMP_MEMORY_LIMIT"] = value
    return value


home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TRUSTRAMP_HOME",
    default=Path("data"),
    show_default=True,
    help="Folder of the lake and catalog (or TRUSTRAMP_HOME).",
)
reports_option = click.option(
    "--reports",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Folder for per-run outputs (verdict, metrics, report).",
)
prefect_option = click.option(
    "--prefect",
    "use_prefect",
    is_flag=True,
    help="Run as a Prefect flow run (also when PREFECT_API_URL is set); default: run directly, "
    "without paying Prefect's start-up.",
)
wait_option = click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds to wait for another writer (ingest or evaluate) to finish.",
)


EXIT_CODES = """\b
Exit codes:
  0      success, whatever the verdict
  10-13  --fail-on named the verdict: GO 10, HOLD 11, PAUSE 12, ROLLBACK 13
  2      bad config or usage (a bad date, bands out of order, a path that does not exist)
  3      an input file failed (the others still landed)
  4      another writer held the lock too long
  5      a store error (the lake or catalog is missing or corrupt)
  6      no data for the feature (none in the lake, or none in the window: pass --as-of)
  7      a folder cannot be written (read-only, full disk, a file where a folder should be)
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, prog_name="trustramp")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show trustramp's progress on stderr: stages, rows, seconds (on a terminal the stage "
    "lines show anyway).",
)
@click.option(
    "--memory-limit",
    envvar="TRUSTRAMP_MEMORY_LIMIT",
    callback=_memory_limit,
    metavar="SIZE",
    help="DuckDB's memory limit, e.g. 512MB, 2GB or 50% of RAM (or TRUSTRAMP_MEMORY_LIMIT; "
    "default 1GB). "
    "Work beyond it spills to HOME/tmp; a run peaks near the limit plus ~300 MB.",
)
def main(verbose: bool, memory_limit: str | None) -> None:
    """trustramp: is an AI feature ready for the next step of its rollout, and at which
    confidence thresholds?

    Ingest the model's predictions and the humans' decisions into a Parquet lake, then evaluate
    them into go / hold / pause / roll-back verdicts, alerts and threshold recommendations.
    Start with `trustramp demo`.
    """
    _quiet_dependencies()
    _setup_logging(verbose)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["predictions", "decisions", "feedback", "incidents"]),
    help="Kind of every file; inferred from each file's columns when omitted.",
)
@click.option(
    "--config",
    "config_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rollout config(s) whose segment lists are accepted (default: the playbook's).",
)
@home_option
@wait_option
@prefect_option
@_boundary
def ingest(
    paths: tuple[Path, ...],
    kind: str | None,
    config_paths: tuple[Path, ...],
    home: Path,
    wait_seconds: float,
    use_prefect: bool,
) -> None:
    """Validate and load CSV, JSON Lines or Parquet files (or folders of them) into the lake.

    Rows that break the data contract are quarantined with file, line and reason; a file that
    cannot be read, or lacks a required column, fails alone and nothing of it lands. Re-ingesting
    a file, or rows already in the lake, changes nothing. Exits 3 when any file failed.
    """
    from trustramp.orchestrate import prefect_requested, run_flow
    from trustramp.pipeline import ingest as run_ingest

    if prefect_requested(use_prefect):
        report = run_flow(
            "ingest",
            paths=list(paths),
            home=home,
            configs=list(config_paths),
            kind=kind,
            wait_seconds=wait_seconds,
        )
    else:
        report = run_ingest(
            list(paths),
            home=home,
            kind=kind,
            configs=list(config_paths),
            wait_seconds=wait_seconds,
            progress=_file_progress,
        )
    for line in report.summary_lines():
        click.echo(line)
    if report.failed:
        sys.exit(EXIT_BAD_INPUT)


def _file_progress(i: int, n: int, path: Path) -> None:
    if sys.stderr.isatty() or os.environ.get("TRUSTRAMP_PROGRESS"):
        click.echo(f"[{i + 1}/{n}] {path}", err=True)


@main.group()
def config() -> None:
    """Show or validate rollout configurations."""


@config.command("show")
@click.argument(
    "path", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@_boundary
def config_show(path: Path | None) -> None:
    """Print the effective config: PATH merged over the playbook defaults (or the defaults)."""
    import yaml

    from trustramp.config import default_config_text, load_config

    if path is None:
        click.echo(default_config_text(), nl=False)
        return
    cfg = load_config(path)
    click.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), nl=False)


@config.command("validate")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@_boundary
def config_validate(paths: tuple[Path, ...]) -> None:
    """Check config files; errors name the key, e.g. `alerts.rules.0.warning`."""
    from trustramp.config import load_config

    for p in paths:
        cfg = load_config(p)
        click.echo(f"{p}: ok (feature {cfg.feature}, phase {cfg.phase.value}, hash {cfg.hash()})")


VERDICT_EXIT = {"GO": 10, "HOLD": 11, "PAUSE": 12, "ROLLBACK": 13}


def _fail_on(value: str | None) -> set[str]:
    if not value:
        return set()
    names = {v.strip().upper() for v in value.split(",") if v.strip()}
    unknown = names - set(VERDICT_EXIT)
    if unknown:
        raise click.BadParameter(
            f"unknown verdict(s) {', '.join(sorted(unknown))}; "
            f"choose from go, hold, pause, rollback",
            param_hint="--fail-on",
        )
    return names


@main.command()
@click.option("--feature", help="Feature to evaluate (default: the config's `feature`).")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Evaluated day, YYYY-MM-DD (default: yesterday, UTC).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rollout config (default: the playbook defaults).",
)
@click.option(
    "--fail-on",
    "fail_on",
    metavar="VERDICTS",
    help="Comma-separated verdicts that make the exit code non-zero, e.g. "
    "rollback,pause,hold (exit 13/12/11; GO 10).",
)
@click.option(
    "--full",
    "full_recompute",
    is_flag=True,
    help="Recompute every day's aggregates (default: only days with new data).",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"], case_sensitive=False),
    envvar="TRUSTRAMP_ENGINE",
    help="Engine that recomputes the day statistics: duckdb, embedded (default), or spark "
    "(pip install 'trustramp[spark]'); or TRUSTRAMP_ENGINE. The rest runs on DuckDB.",
)
@click.option(
    "--spark-remote",
    metavar="sc://HOST:PORT",
    help="With --engine spark: a Spark Connect server that sees the same home folder.",
)
@click.option(
    "--spark-master",
    metavar="MASTER",
    help="With --engine spark: a Spark master such as local[4] (default local[*]; a local "
    "master needs Java 17 or 21).",
)
@home_option
@reports_option
@wait_option
@prefect_option
@_boundary
def evaluate(
    feature: str | None,
    as_of: dt.datetime | None,
    config_path: Path | None,
    fail_on: str | None,
    full_recompute: bool,
    engine: str | None,
    spark_remote: str | None,
    spark_master: str | None,
    home: Path,
    reports: Path,
    wait_seconds: float,
    use_prefect: bool,
) -> None:
    """Measure a feature and decide its verdict: GO, HOLD, PAUSE or ROLLBACK.

    Writes reports/<feature>/<as-of>/ with verdict.json, metrics.parquet and thresholds.yaml, and
    records the verdict in the catalog's `runs` history. Exits 0 whatever the verdict unless
    --fail-on names it.
    """
    from trustramp.errors import NoDataError
    from trustramp.orchestrate import prefect_requested, run_flow
    from trustramp.pipeline import NoDataResult
    from trustramp.pipeline import evaluate as run_evaluate
    from trustramp.store.engine import EngineSpec

    failing = _fail_on(fail_on)
    spec = EngineSpec.of(engine, spark_remote=spark_remote, spark_master=spark_master)
    day = as_of.date() if as_of else None
    if prefect_requested(use_prefect):
        spec.export()  # the flow runs in this process: its evaluation reads the engine from env
        result = run_flow(
            "evaluate",
            feature=feature,
            as_of=day,
            config=config_path,
            home=home,
            reports=reports,
            window_days=None,
            publish=True,
            wait_seconds=wait_seconds,
            full_recompute=full_recompute,
        )
        if isinstance(result, NoDataResult):  # data for the flow run, exit 6 here
            raise NoDataError(result.message)
    else:
        result = run_evaluate(
            feature,
            home=home,
            reports=reports,
            as_of=day,
            config=config_path,
            wait_seconds=wait_seconds,
            full_recompute=full_recompute,
            engine=spec,
        )
    v = result.verdict.to_dict()
    click.echo(
        f"{v['feature']} as of {v['as_of']}: {v['verdict']} (phase {v['phase']}"
        + (f", step {v['step']} %" if v.get("step") else "")
        + ")"
    )
    for reason in v["reasons"]:
        click.echo(f"  - {reason}")
    click.echo(f"outputs: {result.run_dir}")
    if config_path is not None and not prefect_requested(use_prefect):
        from trustramp.config import load_config
        from trustramp.pipeline import notify

        if load_config(config_path).notifications.webhook_url:
            for line in notify(result, home=home, config=config_path).summary_lines():
                click.echo(line)
    if v["verdict"] in failing:
        sys.exit(VERDICT_EXIT[v["verdict"]])


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/demo-input"),
    show_default=True,
    help="Where the generated input files are written.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1000),
    default=200_000,
    show_default=True,
    help="Number of predictions to generate.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@home_option
@reports_option
@prefect_option
@_boundary
def demo(out: Path, rows: int, seed: int, home: Path, reports: Path, use_prefect: bool) -> None:
    """Generate the demo dataset (with planted effects: an over-confident 0.80-0.95 band, a weaker
    segment, a bad day), ingest it, evaluate its last day, and write the readiness report."""
    from trustramp.orchestrate import prefect_requested, run_flow
    from trustramp.pipeline import demo_lines, generate_demo, run_demo

    if not prefect_requested(use_prefect):
        lines = run_demo(out=out, rows=rows, seed=seed, home=home, reports=reports)
    else:  # the same steps as Prefect flow runs (they show in the server's UI)
        data = generate_demo(out=out, rows=rows, seed=seed)
        report = run_flow("ingest", paths=[out], home=home, configs=[data.config])
        result = run_flow(
            "evaluate",
            as_of=data.end,
            config=data.config,
            home=home,
            reports=reports,
            publish=True,
        )
        lines = demo_lines(data, report, result, home=home)
    for line in lines:
        click.echo(line)


feature_options = [
    click.option("--feature", help="Feature (default: the config's `feature`)."),
    click.option(
        "--as-of",
        "as_of",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        help="Last day of the data to use, YYYY-MM-DD (default: yesterday, UTC).",
    ),
    click.option(
        "--config",
        "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Rollout config (default: the playbook defaults).",
    ),
]


def _feature_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(feature_options):
        fn = option(fn)
    return fn


@main.group()
def thresholds() -> None:
    """Recommend routing thresholds, or replay a policy on logged traffic."""


@thresholds.command("recommend")
@_feature_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the thresholds.yaml patch here (default: print it).",
)
@home_option
@wait_option
@_boundary
def thresholds_recommend(
    feature: str | None,
    as_of: dt.datetime | None,
    config_path: Path | None,
    out: Path | None,
    home: Path,
    wait_seconds: float,
) -> None:
    """Recommend the lowest thresholds per band that meet each band's accuracy target with
    probability at least 1 - delta (Learn-then-Test on unshown labeled items of one version),
    globally and per segment, staged by the playbook's week-by-week progression."""
    from trustramp.pipeline import recommend_thresholds

    result = recommend_thresholds(
        feature,
        home=home,
        as_of=as_of.date() if as_of else None,
        config=config_path,
        wait_seconds=wait_seconds,
    )
    text = result.to_yaml()
    if out:
        out.write_text(text, "utf-8")
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@thresholds.command("whatif")
@click.option("--auto", type=click.FloatRange(0, 1), help="Auto-process at or above this.")
@click.option("--confirm", type=click.FloatRange(0, 1), help="Suggest & confirm from this.")
@click.option("--review", type=click.FloatRange(0, 1), help="Suggest & review from this.")
@_feature_options
@home_option
@wait_option
@_boundary
def thresholds_whatif(
    auto: float | None,
    confirm: float | None,
    review: float | None,
    feature: str | None,
    as_of: dt.datetime | None,
    config_path: Path | None,
    home: Path,
    wait_seconds: float,
) -> None:
    """Replay a routing policy on the logged traffic of the monitoring window: items and
    accuracy per band, human workload per day, against the config's current policy.
    Bands not given keep the config's thresholds."""
    from trustramp.config import load_config
    from trustramp.pipeline import check_policy, whatif

    policy = {
        k: v for k, v in (("auto", auto), ("confirm", confirm), ("review", review)) if v is not None
    }
    if not policy:
        raise click.UsageError("give at least one of --auto, --confirm, --review")
    routing = load_config(config_path).routing
    check_policy(policy, routing.thresholds(), flag="--{}")
    replay = whatif(
        policy,
        feature,
        home=home,
        as_of=as_of.date() if as_of else None,
        config=config_path,
        wait_seconds=wait_seconds,
    )
    summary = replay.summary
    cols = [
        c
        for c in (
            "policy",
            "band",
            "threshold",
            "items",
            "items_per_day",
            "share",
            "accuracy",
            "ci_low",
            "ci_high",
        )
        if c in summary.columns
    ]
    click.echo(summary[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    work = replay.workload.groupby("policy")["human_workload"].mean()
    click.echo("human workload per day: " + ", ".join(f"{p} {w:,.0f}" for p, w in work.items()))


@main.command()
@_feature_options
@home_option
@reports_option
@wait_option
@_boundary
def report(
    feature: str | None,
    as_of: dt.datetime | None,
    config_path: Path | None,
    home: Path,
    reports: Path,
    wait_seconds: float,
) -> None:
    """Write the readiness report (readiness.html) for a feature and day, and reports/index.html.

    The report is one self-contained offline HTML page: the verdict and why, the phase timeline,
    criteria with their evidence, checklists, alerts, thresholds, per-segment tables and charts.
    It is written together with the run's other outputs (the same evaluation), so the page and
    verdict.json always agree.
    """
    from trustramp.pipeline import evaluate as run_evaluate

    result = run_evaluate(
        feature,
        home=home,
        reports=reports,
        as_of=as_of.date() if as_of else None,
        config=config_path,
        wait_seconds=wait_seconds,
    )
    click.echo(f"verdict: {result.verdict.to_dict()['verdict']}")
    click.echo(f"report: {result.run_dir / 'readiness.html'}")
    click.echo(f"index: {Path(reports) / 'index.html'}")


if __name__ == "__main__":  # pragma: no cover
    main()
