"""Which days and which items an evaluation looks at: its windows (monitoring, label-matured gate
window, drift baseline), the model version it certifies and the previous one, and the certified
population (unshown items of that version in the gate window).

Conventions (SPEC 3.5): accuracy and calibration for gates come from unshown items (mode `shadow`,
which includes the blind hold-out arm) of one model version, on the label-matured window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from trustramp.config import RolloutConfig
from trustramp.contract import Mode
from trustramp.errors import ConfigError, UsageError
from trustramp.store.aggregates import Aggregates

UNSHOWN = Mode.SHADOW.value


@dataclass(frozen=True)
class Windows:
    """The days an evaluation looks at (all inclusive)."""

    as_of: dt.date
    monitor_start: dt.date
    """Start of the monitoring window (ends at as_of): operational metrics, alerts, the table."""
    gate_start: dt.date
    gate_end: dt.date
    """The label-matured window the gates certify on (ends maturation_days before as_of)."""
    baseline_start: dt.date
    baseline_end: dt.date
    """The confidence-drift baseline: the week before the last week."""

    @property
    def first(self) -> dt.date:
        return min(self.monitor_start, self.gate_start, self.baseline_start)


def windows_for(config: RolloutConfig, as_of: dt.date) -> Windows:
    st = config.statistics
    gate_end = as_of - dt.timedelta(days=st.maturation_days)
    gate_start = gate_end - dt.timedelta(days=st.window_days - 1)
    if config.phase_started is not None:
        gate_start = max(gate_start, config.phase_started)
    return Windows(
        as_of=as_of,
        monitor_start=as_of - dt.timedelta(days=st.window_days - 1),
        gate_start=min(gate_start, gate_end),
        gate_end=gate_end,
        baseline_start=as_of - dt.timedelta(days=13),
        baseline_end=as_of - dt.timedelta(days=7),
    )


def _between(frame: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The rows whose `day` is in [start, end]."""
    day = frame["day"]
    if day.dtype == object:  # dates from the day cache: numpy compares the objects 4x faster
        days = day.to_numpy()
        try:
            keep = (days >= start) & (days <= end)
        except TypeError:  # a missing day (None): pandas' comparison counts it out
            pass
        else:
            return frame[keep]
    return frame[(day >= start) & (day <= end)]


def choose_versions(
    aggs: Aggregates, win: Windows, config_version: str | None
) -> tuple[str | None, str | None]:
    """(version to certify, previous version): the configured one, else the newest to appear.

    A configured version with no predictions in the evaluated days is a ConfigError (exit 2)
    naming the versions there are: certifying another version in its place would be wrong.
    """
    cells = aggs.cells
    if cells.empty:
        return None, None
    first_seen = cells.groupby("model_version")["day"].min().sort_values(kind="stable")
    order = sorted(first_seen.index, key=lambda v: (first_seen[v], v))
    if config_version is not None and config_version not in order:
        shown = ", ".join(repr(str(v)[:80]) for v in order[-10:])
        more = f" (and {len(order) - 10} older)" if len(order) > 10 else ""
        raise ConfigError(
            f"model_version {config_version[:80]!r} has no predictions of feature "
            f"{aggs.feature[:80]!r} from {win.first} to {win.as_of}; the versions there are "
            f"{shown}{more}, oldest first. Set model_version to one of them, or to null for "
            "the newest."
        )
    candidate = config_version if config_version is not None else (order[-1] if order else None)
    if candidate is None:
        return None, None
    i = order.index(candidate)
    return candidate, (order[i - 1] if i > 0 else None)


def checked_windows(cfg: RolloutConfig, as_of: dt.date) -> Windows:
    """The evaluation's windows; an as-of whose window starts before year 1 is a usage error."""
    try:
        return windows_for(cfg, as_of)
    except OverflowError:
        st = cfg.statistics
        raise UsageError(
            f"as-of {as_of} is too early: its windows reach "
            f"{max(st.window_days, st.maturation_days + st.window_days, 14)} days back, "
            "before the first representable date"
        ) from None


@dataclass(frozen=True)
class GatePopulation:
    """The certified population: unshown, labeled, one version, matured window."""

    version: str | None
    previous: str | None
    cells: pd.DataFrame
    customers: pd.DataFrame
    """The same items by customer (the day statistics' `customers` rows of the version,
    unshown, in the gate window): what the gates' design effects, the clustered accuracy and
    the thresholds' clusters read."""
    memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)
    """Results computed from this population once per run and read twice (the calibration
    evidence: the verdict's and the metrics table's), keyed by what else they depend on."""

    def ece_bins(self, bins: int) -> pd.DataFrame:
        """labeled, correct, conf_sum per ECE bin 0..bins-1 (zeros where a bin is empty): what
        the calibration test and the report's reliability table both read."""
        return (
            self.cells.groupby("ece_bin")[["labeled", "correct", "conf_sum"]]
            .sum()
            .reindex(range(bins), fill_value=0)
        )


def gate_population(aggs: Aggregates, win: Windows, config: RolloutConfig) -> GatePopulation:
    version, previous = choose_versions(aggs, win, getattr(config, "model_version", None))
    cells = _between(aggs.cells, win.gate_start, win.gate_end)
    cells = cells[(cells["model_version"] == version) & (cells["mode"] == UNSHOWN)]
    cust = _between(aggs.customers, win.gate_start, win.gate_end)
    cust = cust[(cust["model_version"] == version) & ~cust["shown"].astype(bool)]
    return GatePopulation(version, previous, cells, cust)
