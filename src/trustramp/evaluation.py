"""Stage 2 wiring: from stage-1 aggregates to the tidy metrics table and the verdict's evidence.

Pure pandas/numpy on small frames (one row per group and bin); the statistics themselves live in
`trustramp.metrics` and `trustramp.decide`. Conventions (SPEC 3.5):
- accuracy and calibration for gates come from unshown items (mode `shadow`, which includes the blind
  hold-out arm) of one model version, on the label-matured window;
- in `metrics.parquet`, `accuracy` on a row whose `mode` is null is measured on unshown items; a row
  with a shown mode (suggestion, confirmation, autonomous) gives the agreement on shown items there;
- operational metrics (error rate, availability, latency, overrides) cover all versions' traffic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trustramp import _dist
from trustramp import metrics as m
from trustramp.config import RolloutConfig
from trustramp.contract import METRIC_COLUMNS as _METRIC_COLUMNS
from trustramp.contract import Mode
from trustramp.decide.evidence import (
    Calibration,
    Count,
    DataSummary,
    Drift,
    Evidence,
    Incident,
    Observed,
    Regression,
    SegmentFlag,
)
from trustramp.errors import ConfigError
from trustramp.store.aggregates import CELL_MEASURES, Aggregates

METRIC_COLUMNS = list(_METRIC_COLUMNS)
SUMS = CELL_MEASURES
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
    return frame[(frame["day"] >= start) & (frame["day"] <= end)]


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


# -- the tidy metrics table -----------------------------------------------------------------------

SORT_COLUMNS = ["window", "day", "model_version", "segment", "mode", "customer_id", "metric"]
"""The table's row order: fixed, so that two runs on the same lake write identical files."""
_STR_COLUMNS = ("metric", "feature", "model_version", "segment", "customer_id", "mode", "window")


class _Rows:
    """Metric rows collected as column arrays, one block per (grouping, metric); `frame()` builds
    the table once (thousands of tiny DataFrames and their concat cost more than the math)."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, np.ndarray]] = []

    def add(
        self,
        groups: pd.DataFrame,
        keys: Sequence[str],
        metric: str,
        value: np.ndarray,
        n: np.ndarray,
        *,
        window: str,
        ci: tuple[np.ndarray, np.ndarray] | None = None,
        keep: np.ndarray | None = None,
    ) -> None:
        """One row per row of `groups` (their `keys` columns) where `keep` is true."""
        size = len(groups)
        cols = {k: groups[k].to_numpy(dtype=object) for k in keys}
        cols["value"] = np.asarray(value, dtype=float).reshape(size)
        lo, hi = (np.full(size, np.nan), np.full(size, np.nan)) if ci is None else ci
        cols["ci_low"], cols["ci_high"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        cols["n"] = np.asarray(n).astype("int64").reshape(size)
        if keep is not None:
            cols = {c: a[keep] for c, a in cols.items()}
            size = int(np.count_nonzero(keep))
        cols["metric"] = np.full(size, metric, dtype=object)
        cols["window"] = np.full(size, window, dtype=object)
        self.blocks.append(cols)

    def frame(self, feature: str) -> pd.DataFrame:
        sizes = [len(b["metric"]) for b in self.blocks]
        out: dict[str, object] = {}
        for col in METRIC_COLUMNS:
            if col == "feature":
                out[col] = np.full(sum(sizes), feature, dtype=object)
                continue
            fill = np.nan if col in ("value", "ci_low", "ci_high") else None
            parts = [
                b[col] if col in b else np.full(size, fill, dtype=object)
                for b, size in zip(self.blocks, sizes, strict=True)
            ]
            out[col] = np.concatenate(parts) if parts else np.array([], dtype=object)
        table = pd.DataFrame(out)
        for col in _STR_COLUMNS:
            table[col] = table[col].astype("str")
        for col in ("value", "ci_low", "ci_high"):
            table[col] = table[col].astype("float64")
        table["n"] = table["n"].astype("int64")
        return table


def _rate(
    rows: _Rows,
    g: pd.DataFrame,
    keys: Sequence[str],
    metric: str,
    k: str,
    n: str,
    *,
    window: str,
    confidence: float,
    complement: bool = False,
    drop_empty: bool = True,
) -> None:
    """A rate k / n with its Wilson interval, per group (with n > 0 if `drop_empty`)."""
    kk = g[k].to_numpy(dtype=float)
    nn = g[n].to_numpy(dtype=float)
    if complement:
        kk = nn - kk
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(nn > 0, kk / np.where(nn > 0, nn, 1), np.nan)
    lo, hi = m.wilson_interval(kk.astype(int), nn.astype(int), confidence=confidence)
    ci = (np.atleast_1d(lo), np.atleast_1d(hi))
    keep = nn.astype("int64") > 0 if drop_empty else None
    rows.add(g, keys, metric, value, nn, window=window, ci=ci, keep=keep)


def _calibration(rows: _Rows, g: pd.DataFrame, keys: Sequence[str], *, window: str) -> None:
    """Brier and log loss per group (no interval: these are scores, not rates)."""
    n = g["labeled"].to_numpy(dtype=float)
    safe = np.where(n > 0, n, 1)
    brier = (g["conf_sq_sum"] - 2 * g["conf_hit_sum"] + g["correct"]).to_numpy() / safe
    nll = g["nll_sum"].to_numpy() / safe
    keep = n.astype("int64") > 0
    for metric, value in (("brier", brier), ("log_loss", nll)):
        rows.add(g, keys, metric, np.where(n > 0, value, np.nan), n, window=window, keep=keep)


def _ece(rows: _Rows, cells: pd.DataFrame, keys: Sequence[str], min_n: int, *, window: str) -> None:
    """Top-label ECE and MCE per group from the right-closed bins (shown from `min_n` labels)."""
    keys = list(keys)
    by_bin = (
        cells.groupby([*keys, "ece_bin"], dropna=False, observed=True)[
            ["labeled", "correct", "conf_sum"]
        ]
        .sum()
        .reset_index()
    )
    by_bin = by_bin[by_bin["labeled"] > 0]
    by_bin["gap_abs"] = (by_bin["correct"] - by_bin["conf_sum"]).abs()
    by_bin["gap"] = by_bin["gap_abs"] / by_bin["labeled"]
    if keys:
        grouped = by_bin.groupby(keys, dropna=False, observed=True)
        agg = grouped[["labeled", "gap_abs"]].sum()
        agg["mce"] = grouped["gap"].max()
        agg = agg.reset_index()
    else:
        agg = pd.DataFrame(
            {
                "labeled": [by_bin["labeled"].sum()],
                "gap_abs": [by_bin["gap_abs"].sum()],
                "mce": [by_bin["gap"].max() if len(by_bin) else np.nan],
            }
        )
    agg = agg[agg["labeled"] >= min_n]
    n = agg["labeled"].to_numpy()
    keep = n.astype("int64") > 0
    for metric, value in (("ece", agg["gap_abs"] / agg["labeled"]), ("mce", agg["mce"])):
        rows.add(agg, keys, metric, value.to_numpy(), n, window=window, keep=keep)


def _latency_quantiles(lat: pd.DataFrame, qs: Sequence[float]) -> tuple[list[float], int]:
    """Quantiles of a latency histogram frame (lat_bin, n), merged over its rows."""
    counts = np.bincount(
        lat["lat_bin"].to_numpy(int), weights=lat["n"].to_numpy(float), minlength=m.N_LATENCY_BINS
    )
    values = m.quantile_from_histogram(counts, list(qs))
    return [float(v) for v in np.atleast_1d(values)], int(counts.sum())


LATENCY_METRICS = (("latency_p50", 0.50), ("latency_p95", 0.95), ("latency_p99", 0.99))


def _group_codes(frame: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(group index of each row, the groups' key values): one code per key column, combined."""
    if not keys:
        return np.zeros(len(frame), dtype=np.int64), pd.DataFrame(index=[0])
    code = np.zeros(len(frame), dtype=np.int64)
    uniques = []
    for k in keys:
        c, u = pd.factorize(frame[k], use_na_sentinel=False)
        code = code * max(len(u), 1) + c
        uniques.append(np.asarray(u, dtype=object))
    present, inverse = np.unique(code, return_inverse=True)
    values = {}
    rest = present
    for k, u in zip(reversed(keys), reversed(uniques), strict=True):
        rest, c = np.divmod(rest, max(len(u), 1))
        values[k] = u[c]
    return inverse.reshape(-1), pd.DataFrame({k: values[k] for k in keys})


def _latency(rows: _Rows, lat: pd.DataFrame, keys: Sequence[str], *, window: str) -> None:
    """p50/p95/p99 per group: one dense (groups x bins) histogram, one vectorized quantile call."""
    if lat.empty:
        return
    codes, groups = _group_codes(lat, keys)
    size = m.N_LATENCY_BINS
    counts = np.bincount(
        codes * size + lat["lat_bin"].to_numpy(np.int64),
        weights=lat["n"].to_numpy(float),
        minlength=len(groups) * size,
    ).reshape(len(groups), size)
    values = np.atleast_2d(m.quantile_from_histogram(counts, [q for _, q in LATENCY_METRICS]))
    total = counts.sum(axis=1).astype("int64")
    for j, (metric, _) in enumerate(LATENCY_METRICS):
        rows.add(groups, keys, metric, values[:, j], total, window=window)


GROUPINGS: list[list[str]] = [
    [],
    ["segment"],
    ["model_version"],
    ["mode"],
    ["model_version", "segment"],
    ["model_version", "segment", "mode"],
]
DAY_GROUPINGS: list[list[str]] = [
    ["day"],
    ["day", "segment"],
    ["day", "model_version", "segment", "mode"],
]


def metrics_table(
    aggs: Aggregates,
    win: Windows,
    *,
    confidence: float = 0.95,
    ece_min_n: int = 500,
    psi_min_n: int = 500,
) -> pd.DataFrame:
    """Every metric by window (`window`, `day`, `rolling_24h`) and grouping, in SPEC 2's columns.

    Rows are sorted by `SORT_COLUMNS` (nulls, i.e. "all", first). The cost depends on the
    number of groups (days x versions x segments x modes, customers), not of predictions.
    """
    rows = _Rows()
    cells, lat = aggs.cells, aggs.latency
    spans = [
        ("window", win.monitor_start, GROUPINGS),
        ("rolling_24h", win.as_of, [[], ["segment"]]),
        ("day", win.first, DAY_GROUPINGS),
    ]
    for window, first, groupings in spans:
        span, lat_span = _between(cells, first, win.as_of), _between(lat, first, win.as_of)
        for keys in groupings:
            _group_metrics(
                rows, span, keys, window=window, confidence=confidence, ece_min_n=ece_min_n
            )
            _latency(rows, lat_span, keys, window=window)
    _customer_rows(rows, aggs, win, confidence=confidence)
    _kappa_rows(rows, aggs, win)
    _psi_rows(rows, aggs, win, psi_min_n)
    table = rows.frame(aggs.feature)
    return table.sort_values(SORT_COLUMNS, kind="stable", na_position="first").reset_index(
        drop=True
    )


def _sum_by(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    if keys:
        return frame.groupby(list(keys), dropna=False, observed=True)[SUMS].sum().reset_index()
    return frame[SUMS].sum().to_frame().T


def _group_metrics(
    rows: _Rows,
    span: pd.DataFrame,
    keys: list[str],
    *,
    window: str,
    confidence: float,
    ece_min_n: int,
) -> None:
    if span.empty:
        return
    sums = _sum_by(span, keys)
    # Accuracy and calibration: unshown items, except on rows that name a shown mode.
    quality_src = span if "mode" in keys else span[span["mode"] == UNSHOWN]
    quality = sums if quality_src is span else _sum_by(quality_src, keys)
    rate = functools.partial(_rate, rows, keys=keys, window=window, confidence=confidence)
    rate(quality, metric="accuracy", k="correct", n="labeled")
    rate(sums, metric="label_coverage", k="labeled", n="n")
    rate(sums, metric="error_rate", k="errors", n="n")
    rate(sums, metric="availability", k="errors", n="n", complement=True)
    rate(sums, metric="override_rate", k="overridden", n="shown_labeled")
    rate(sums, metric="accepted_wrong_rate", k="accepted_wrong", n="shown_labeled")
    _calibration(rows, quality, keys, window=window)
    _ece(rows, quality_src, keys, ece_min_n, window=window)


def _customer_rows(rows: _Rows, aggs: Aggregates, win: Windows, *, confidence: float) -> None:
    """Per customer: accuracy (unshown) and label coverage over the monitoring window."""
    cust = _between(aggs.customers, win.monitor_start, win.as_of)
    keys = ["customer_id", "segment"]
    unshown = cust[~cust["shown"].astype(bool)].groupby(keys)[SUMS].sum().reset_index()
    allc = cust.groupby(keys)[SUMS].sum().reset_index()
    if len(allc):
        rate = functools.partial(
            _rate, rows, keys=keys, window="window", confidence=confidence, drop_empty=False
        )
        rate(unshown, metric="accuracy", k="correct", n="labeled")
        rate(allc, metric="label_coverage", k="labeled", n="n")


def _confusion_matrix(g: pd.DataFrame) -> np.ndarray:
    """Counts by (predicted_label, human_label) over the sorted union of labels (rows with a
    missing label left out), as `pivot_table` + `reindex` would give, without their cost."""
    g = g[g["predicted_label"].notna() & g["human_label"].notna()]
    pred = g["predicted_label"].to_numpy(dtype=object)
    human = g["human_label"].to_numpy(dtype=object)
    labels = sorted(set(pred) | set(human))
    pos = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(
        matrix,
        (
            np.array([pos[x] for x in pred], dtype=np.intp),
            np.array([pos[x] for x in human], dtype=np.intp),
        ),
        g["n"].to_numpy(dtype=np.int64),
    )
    return matrix


def _kappa_rows(rows: _Rows, aggs: Aggregates, win: Windows) -> None:
    """Cohen's kappa of model and human labels on unshown items (the whole aggregated span)."""
    conf = aggs.confusion
    unshown = conf[~conf["shown"].astype(bool)]
    for keys in ([], ["segment"], ["model_version"]):
        groups = unshown.groupby(keys) if keys else [((), unshown)]
        found, values, counts = [], [], []
        for key, g in groups:
            if g["n"].sum() == 0:
                continue
            found.append(key if isinstance(key, tuple) else (key,))
            values.append(m.cohen_kappa_from_confusion(_confusion_matrix(g)))
            counts.append(int(g["n"].sum()))
        if found:
            frame = pd.DataFrame([dict(zip(keys, f, strict=False)) for f in found], columns=keys)
            rows.add(
                frame,
                keys,
                "kappa",
                np.array(values, dtype=float),
                np.array(counts),
                window="window",
            )


def _psi_by_version(aggs: Aggregates, win: Windows, min_n: int) -> list[tuple[str, object]]:
    """PSI of each version's last 7 days against its baseline week (versions with a baseline and
    at least `min_n` current items)."""
    out = []
    for version, g in aggs.confidence.groupby("model_version"):
        base = _between(g, win.baseline_start, win.baseline_end).groupby("bin")["n"].sum()
        cur = _between(g, win.as_of - dt.timedelta(days=6), win.as_of).groupby("bin")["n"].sum()
        bins = np.arange(aggs.bins)
        e = base.reindex(bins, fill_value=0).to_numpy()
        a = cur.reindex(bins, fill_value=0).to_numpy()
        if e.sum() == 0 or a.sum() < min_n:
            continue
        out.append((str(version), m.psi_result(e, a, min_n=min_n)))
    return out


def confidence_drift(aggs: Aggregates, win: Windows, min_n: int) -> list[Drift]:
    """The verdict's drift evidence: one `Drift` per version `_psi_by_version` judges."""
    return [
        Drift(
            model_version=v,
            psi=float(r.value),  # type: ignore[attr-defined]
            warning=float(r.warning),  # type: ignore[attr-defined]
            critical=float(r.critical),  # type: ignore[attr-defined]
            status=str(r.status.value),  # type: ignore[attr-defined]
            n_baseline=int(r.n_expected),  # type: ignore[attr-defined]
            n_current=int(r.n_actual),  # type: ignore[attr-defined]
        )
        for v, r in _psi_by_version(aggs, win, min_n)
    ]


def _quantile_bounds(counts: np.ndarray, q: float, alpha: float) -> tuple[float, float]:
    """Distribution-free one-sided bounds on the q-quantile of a latency histogram: the order
    statistics X_(r) <= xi_q <= X_(s) with P(Binom(N, q) < r) <= alpha and P(Binom(N, q) >= s)
    <= alpha, read off the histogram at levels r/N and s/N."""
    total = int(counts.sum())
    if total == 0:
        return math.nan, math.nan
    j = np.arange(total + 1)
    cdf = np.asarray(_dist.binom_cdf(j, total, q), dtype=float)
    r = int(np.searchsorted(cdf, alpha, side="right"))  # P(B <= r - 1) <= alpha
    s = int(np.searchsorted(cdf, 1.0 - alpha, side="left")) + 1  # P(B >= s) <= alpha
    levels = [max(r, 1) / total, min(s, total) / total]
    lo, hi = np.atleast_1d(m.quantile_from_histogram(counts, levels))
    return float(lo), float(hi)


def rolling_by_version(
    aggs: Aggregates, win: Windows, config: RolloutConfig, versions: Sequence[str | None]
) -> dict[str, dict[tuple[str, str], Count | Observed]]:
    """The last 24 h per model version (alerts): accuracy on its unshown items, its error and
    override rates, and its p95 latency with order-statistic bounds; versions without traffic
    that day are left out."""
    day = _between(aggs.cells, win.as_of, win.as_of)
    lat_day = _between(aggs.latency, win.as_of, win.as_of)
    alpha = 1.0 - config.statistics.confidence_level
    out: dict[str, dict[tuple[str, str], Count | Observed]] = {}
    for version in dict.fromkeys(v for v in versions if v is not None):
        d_v = day[day["model_version"] == version]
        if d_v["n"].sum() == 0:
            continue
        lat_v = lat_day[lat_day["model_version"] == version]
        rolling: dict[tuple[str, str], Count | Observed] = {}
        for seg in ["all", *config.segments]:
            d = d_v if seg == "all" else d_v[d_v["segment"] == seg]
            u = d[d["mode"] == UNSHOWN]
            rolling[("accuracy", seg)] = Count(int(u["correct"].sum()), int(u["labeled"].sum()))
            rolling[("error_rate", seg)] = Count(int(d["errors"].sum()), int(d["n"].sum()))
            rolling[("override_rate", seg)] = Count(
                int(d["overridden"].sum()), int(d["shown_labeled"].sum())
            )
            lat = lat_v if seg == "all" else lat_v[lat_v["segment"] == seg]
            counts = np.bincount(
                lat["lat_bin"].to_numpy(np.int64),
                weights=lat["n"].to_numpy(float),
                minlength=m.N_LATENCY_BINS,
            )
            if counts.sum() > 0:
                p95 = float(m.quantile_from_histogram(counts, 0.95))
                lo, hi = _quantile_bounds(counts, 0.95, alpha)
                rolling[("latency_p95", seg)] = Observed(p95, int(counts.sum()), lo, hi)
            else:
                rolling[("latency_p95", seg)] = Observed(None, 0)
        out[str(version)] = rolling
    return out


def _psi_rows(rows: _Rows, aggs: Aggregates, win: Windows, min_n: int) -> None:
    for version, r in _psi_by_version(aggs, win, min_n):
        frame = pd.DataFrame({"model_version": [version]})
        for name, value in (
            ("psi", r.value),  # type: ignore[attr-defined]
            ("psi_warning_level", r.warning),  # type: ignore[attr-defined]
            ("psi_critical_level", r.critical),  # type: ignore[attr-defined]
        ):
            rows.add(
                frame,
                ["model_version"],
                name,
                np.array([value], dtype=float),
                np.array([r.n_actual]),  # type: ignore[attr-defined]
                window="window",
            )


# -- evidence for the verdict ---------------------------------------------------------------------


def _counts(frame: pd.DataFrame, k: str, n: str, segments: Sequence[str]) -> dict[str, Count]:
    out = {"all": Count(int(frame[k].sum()), int(frame[n].sum()))}
    by = frame.groupby("segment")[[k, n]].sum()
    for seg in segments:
        if seg in by.index:
            out[seg] = Count(int(by.loc[seg, k]), int(by.loc[seg, n]))
        else:
            out[seg] = Count(0, 0)
    return out


def _clustered(
    counts: dict[str, Count], customers: pd.DataFrame, k: str, n: str, confidence: float
) -> dict[str, Count]:
    """`counts` with their customers' design effect: the gates take their bounds on the counts
    deflated by it (items cluster by customer; docs/STATISTICS.md). `customers` holds the same
    items by customer_id (and segment); items without a customer id count as independent."""
    from trustramp.metrics.intervals import design_effect

    loose = customers["customer_id"].isna()
    # one grouping by (segment, customer); "all" sums a customer's segments
    by = customers[~loose].groupby(["segment", "customer_id"], sort=True)[[k, n]].sum()
    by = by[by[n] > 0]
    unclustered = customers[loose].groupby("segment", sort=True)[[k, n]].sum()
    segments = by.index.get_level_values("segment")
    out: dict[str, Count] = {}
    for seg, count in counts.items():
        if seg == "all":
            g = by.groupby(level="customer_id", sort=True).sum()
            lk, ln = unclustered[k].sum(), unclustered[n].sum()
        else:
            g = by[segments == seg]
            lk, ln = unclustered.loc[seg] if seg in unclustered.index else (0, 0)
        deff = design_effect(
            g[k].to_numpy(dtype=float),
            g[n].to_numpy(dtype=float),
            confidence=confidence,
            unclustered=(float(lk), float(ln)),
        )
        out[seg] = Count(count.k, count.n, design_effect=deff, clusters=len(g))
    return out


@dataclass(frozen=True)
class GatePopulation:
    """The certified population: unshown, labeled, one version, matured window."""

    version: str | None
    previous: str | None
    cells: pd.DataFrame


def gate_population(aggs: Aggregates, win: Windows, config: RolloutConfig) -> GatePopulation:
    version, previous = choose_versions(aggs, win, getattr(config, "model_version", None))
    cells = _between(aggs.cells, win.gate_start, win.gate_end)
    cells = cells[(cells["model_version"] == version) & (cells["mode"] == UNSHOWN)]
    return GatePopulation(version, previous, cells)


def calibration_evidence(pop: GatePopulation, config: RolloutConfig) -> tuple[Calibration, object]:
    bins = (
        pop.cells.groupby("ece_bin")[["labeled", "correct", "conf_sum"]]
        .sum()
        .reindex(range(config.statistics.ece_bins), fill_value=0)
    )
    test = m.calibration_test(
        bins["labeled"].to_numpy(),
        bins["correct"].to_numpy(),
        bins["conf_sum"].to_numpy(),
        reps=config.statistics.bootstrap_reps,
        seed=config.statistics.seed,
    )
    n = int(bins["labeled"].sum())
    debiased = smece = sigma = None
    if n >= m.MIN_SHOWN_N:
        debiased = float(
            m.debiased_l2_ece_from_bins(
                bins["labeled"].to_numpy(), bins["correct"].to_numpy(), bins["conf_sum"].to_numpy()
            )
        )
        # smECE from the threshold grid's cells (0.01 wide), each at its mean confidence.
        grid = pop.cells.groupby("grid_bin")[["labeled", "correct", "conf_sum"]].sum()
        smece, sigma = m.smooth_ece_from_cells(
            grid["labeled"].to_numpy(), grid["correct"].to_numpy(), grid["conf_sum"].to_numpy()
        )
    return Calibration(
        ece=test.ece if n else None,
        p_value=test.p_value if n else None,
        noise_floor=test.noise_floor if n else None,
        n=n,
        ece_debiased_l2=debiased,
        smece=smece,
        smece_sigma=sigma,
    ), test


def build_evidence(
    aggs: Aggregates,
    win: Windows,
    config: RolloutConfig,
    *,
    pop: GatePopulation,
    paired: dict[tuple[bool, bool], int] | None,
    feedback: dict[str, float | int | None],
    incidents: pd.DataFrame,
    quarantined: int,
    edge_cases: dict[str, Count] | None = None,
) -> Evidence:
    """Everything the verdict needs, from the aggregates (counts, never raw rows)."""
    segs = list(config.segments)
    monitor = _between(aggs.cells, win.monitor_start, win.as_of)
    day = _between(aggs.cells, win.as_of, win.as_of)
    calibration, _ = calibration_evidence(pop, config)
    st = config.statistics
    rolling: dict[tuple[str, str], Count | Observed] = {}
    unshown_day = day[day["mode"] == UNSHOWN]
    for seg in ["all", *segs]:
        d = day if seg == "all" else day[day["segment"] == seg]
        u = unshown_day if seg == "all" else unshown_day[unshown_day["segment"] == seg]
        # Unshown items only: shown ones lean towards the suggestion (SPEC 3.5).
        rolling[("accuracy", seg)] = Count(int(u["correct"].sum()), int(u["labeled"].sum()))
        rolling[("error_rate", seg)] = Count(int(d["errors"].sum()), int(d["n"].sum()))
        if seg == "all":  # availability is the service's, not a segment's
            rolling[("availability", seg)] = Count(
                int(d["n"].sum() - d["errors"].sum()), int(d["n"].sum())
            )
        rolling[("override_rate", seg)] = Count(
            int(d["overridden"].sum()), int(d["shown_labeled"].sum())
        )
        lat = _between(aggs.latency, win.as_of, win.as_of)
        lat = lat if seg == "all" else lat[lat["segment"] == seg]
        if len(lat):
            (p95,), n_lat = _latency_quantiles(lat, (0.95,))
            rolling[("latency_p95", seg)] = Observed(p95, n_lat)
        else:
            rolling[("latency_p95", seg)] = Observed(None, 0)
    bias_frame = (
        pop.cells.groupby("segment")[["correct", "labeled"]].sum().reindex(segs, fill_value=0)
    )
    audit = m.bias_audit(
        pd.DataFrame(
            {
                "segment": segs,
                "k": bias_frame["correct"].to_numpy(),
                "n": bias_frame["labeled"].to_numpy(),
            }
        ),
        min_n=st.min_segment_n,
        confidence=st.confidence_level,
        min_effect=st.min_effect,
    )
    bias = {
        r.segment: SegmentFlag(
            r.segment,
            r.flag,
            r.reason,
            int(r.n),
            p_holm=float(r.p_adjusted) if math.isfinite(r.p_adjusted) else None,
            q_bh=float(r.p_bh) if math.isfinite(r.p_bh) else None,
        )
        for r in audit.table.itertuples()
    }
    regression = None
    if paired and pop.previous:
        both, cand_only = paired.get((True, True), 0), paired.get((True, False), 0)
        prev_only, neither = paired.get((False, True), 0), paired.get((False, False), 0)
        if both + cand_only + prev_only + neither:
            cmp = m.compare_versions(both, cand_only, prev_only, neither)
            regression = Regression(
                candidate=pop.version or "",
                previous=pop.previous,
                n=both + cand_only + prev_only + neither,
                acc_candidate=cmp.candidate_accuracy,
                acc_previous=cmp.previous_accuracy,
                p_value=cmp.p_value,
                regression=cmp.verdict == "regression",
            )
    baseline = st.baseline.accuracy
    if st.baseline.model_version:
        b = _between(aggs.cells, win.gate_start, win.gate_end)
        b = b[(b["model_version"] == st.baseline.model_version) & (b["mode"] == UNSHOWN)]
        baseline = float(b["correct"].sum() / b["labeled"].sum()) if b["labeled"].sum() else None
    incs = [
        Incident(
            incident_id=r.incident_id,
            severity=r.severity,
            kind=r.kind,
            title=r.title,
            opened_at=r.opened_at.to_pydatetime(),
            resolved_at=None if pd.isna(r.resolved_at) else r.resolved_at.to_pydatetime(),
        )
        for r in incidents.itertuples()
    ]
    n_all = int(monitor["n"].sum())
    labeled = int(monitor["labeled"].sum())
    # Customers as clusters: the gate population's and the monitoring window's items by customer.
    cust_gate = _between(aggs.customers, win.gate_start, win.gate_end)
    cust_gate = cust_gate[
        (cust_gate["model_version"] == pop.version) & ~cust_gate["shown"].astype(bool)
    ]
    cust_monitor = _between(aggs.customers, win.monitor_start, win.as_of)
    level = st.confidence_level
    return Evidence(
        feature=config.feature,
        as_of=win.as_of,
        window_start=win.gate_start,
        window_end=win.gate_end,
        model_version=pop.version,
        accuracy=_clustered(
            _counts(pop.cells, "correct", "labeled", segs), cust_gate, "correct", "labeled", level
        ),
        error=_clustered(_counts(monitor, "errors", "n", segs), cust_monitor, "errors", "n", level),
        override=_clustered(
            _counts(monitor, "overridden", "shown_labeled", segs),
            cust_monitor,
            "overridden",
            "shown_labeled",
            level,
        ),
        rolling_24h=rolling,
        positive_feedback=(
            Count(int(feedback["positive"]), int(feedback["total"])) if feedback["total"] else None
        ),
        nps=feedback["nps"],
        incidents=incs,
        calibration=calibration,
        regression=regression,
        bias=bias,
        edge_cases=edge_cases or {},
        baseline_accuracy=baseline,
        rolling_24h_by_version=rolling_by_version(aggs, win, config, [pop.version, pop.previous]),
        drift=confidence_drift(aggs, win, st.psi_min_n),
        data=DataSummary(
            predictions=n_all,
            labeled=labeled,
            quarantined=quarantined,
            label_coverage=labeled / n_all if n_all else None,
        ),
    )


# -- thresholds -----------------------------------------------------------------------------------


def grid_frame(cells: pd.DataFrame, step: float, by: Sequence[str] = ()) -> pd.DataFrame:
    """The thresholds' grid frame (lo, n labeled, correct, total) from stage-1 cells."""
    keys = [*by, "grid_bin"]
    g = cells.groupby(keys, observed=True)[["labeled", "correct", "n"]].sum().reset_index()
    g = g.rename(columns={"n": "total"}).rename(columns={"labeled": "n"})
    g["lo"] = g["grid_bin"] * step
    return g.drop(columns=["grid_bin"])


@dataclass(frozen=True)
class Thresholds:
    """Recommended routing thresholds, per segment, the what-if of the current policy."""

    recommended: object
    """ThresholdRecommendation after the playbook's progression stage."""
    certified: object
    """The certified (optimized) thresholds before staging."""
    segments: object
    """GroupRecommendation by segment."""
    stage: str
    whatif: object
    """Replay of the recommended policy against the current one on the monitoring window."""
    recalibration: object | None = None
    customers: object | None = None
    """GroupRecommendation by customer (only customers with enough labels)."""

    def mapped_thresholds(self) -> dict[str, float | None]:
        """The recommended thresholds shown on the recalibrated scale (certified on raw)."""
        from trustramp.decide.recalibration import map_threshold

        raw = {b.band: b.threshold for b in self.recommended.bands if b.band != "human"}
        if self.recalibration is None:
            return raw
        return {
            k: (None if v is None else round(v, 4))
            for k, v in map_threshold(self.recalibration, raw).items()
        }

    def to_patch(self) -> dict:
        from trustramp.decide.thresholds import to_config_patch

        groups = [g for g in (self.segments, self.customers) if g is not None]
        return to_config_patch(self.recommended, groups=groups)

    def to_yaml(self) -> str:
        import yaml

        rec = self.recommended
        lines = [
            "# trustramp threshold recommendation: a patch to the rollout config (merge it in).",
            f"# stage: {self.stage} (the playbook's progression, from phase_started)",
            f"# population: {rec.population}",
        ]
        for b in rec.bands:
            if b.band == "human":
                continue
            acc = "n/a" if b.n == 0 else f"{b.accuracy:.3f} [{b.ci_low:.3f}, {b.ci_high:.3f}]"
            share = "   n/a" if b.share is None or math.isnan(b.share) else f"{b.share:6.1%}"
            lines.append(f"# {b.band:8s} {b.change:16s} share {share}  accuracy {acc}  n={b.n}")
            if b.guarantee:
                lines.append(f"#   {b.guarantee}")
            elif b.reason:
                lines.append(f"#   {b.reason}")
        if rec.human_workload_per_day is not None:
            cur = rec.current_human_workload_per_day
            lines.append(
                f"# human workload per day: {rec.human_workload_per_day:,.0f}"
                + (f" (current policy: {cur:,.0f})" if cur is not None else "")
            )
        if self.recalibration is not None:
            r = self.recalibration
            lines.append(
                f"# calibration is poor: recalibration map {r.chosen.name} fitted on "
                f"{r.n_fit:,} labels; held-out ECE {r.ece_before:.3f} -> "
                f"{r.ece_after:.3f} (n = {r.n_holdout:,})"
            )
            lines.append(f"# thresholds on the recalibrated scale: {self.mapped_thresholds()}")
        # libyaml's emitter when present: the same text as safe_dump, 5x faster (a patch with a
        # thousand customer overrides took 0.3 s in Python).
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return "\n".join(lines) + "\n" + yaml.dump(self.to_patch(), Dumper=dumper, sort_keys=False)


def _threshold_clusters(
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    customer_grid: pd.DataFrame | None,
    step: float,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The certified items by customer for the thresholds (customers as clusters, as the gates).

    The customer grid as a threshold grid frame (items without a customer id kept, as items of
    their own), and the same with each customer's segment when every labeled customer of the
    gate population lies in one segment (None otherwise: segments are then certified without
    the adjustment, since the customer grid has no segment to split a customer by).
    """
    if customer_grid is None or not len(customer_grid):
        return None, None
    keys = ["customer_id", "grid_bin"]
    g = customer_grid.groupby(keys, dropna=False)[["labeled", "correct", "n"]].sum().reset_index()
    clusters = g.rename(columns={"labeled": "n", "n": "total"}).assign(lo=g["grid_bin"] * step)
    clusters = clusters.drop(columns="grid_bin")
    cust = _between(aggs.customers, win.gate_start, win.gate_end)
    cust = cust[
        (cust["model_version"] == pop.version) & ~cust["shown"].astype(bool) & (cust["labeled"] > 0)
    ]
    segments = cust.dropna(subset=["customer_id"]).groupby("customer_id")["segment"]
    if not len(cust) or (segments.nunique() > 1).any():
        return clusters, None
    # Items without a customer id have no segment here: left out of the segments' design
    # effects (they would only lower them, as independent items).
    by_customer = clusters.assign(segment=clusters["customer_id"].map(segments.first()))
    return clusters, by_customer


def recommend(
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    config: RolloutConfig,
    *,
    customer_grid: pd.DataFrame | None = None,
) -> Thresholds:
    from trustramp.decide import thresholds as th

    step = config.routing.grid_step
    current = config.routing.thresholds()  # a closed band (false): None, not offered
    days = max((win.gate_end - win.gate_start).days + 1, 1)
    model = f"model {pop.version}" if pop.version else "no model version"
    population = f"unshown labeled items of {model}, {win.gate_start}..{win.gate_end}"
    grid = grid_frame(pop.cells, step)
    level = config.statistics.confidence_level
    clusters, segment_clusters = _threshold_clusters(aggs, win, pop, customer_grid, step)
    certified = th.recommend_thresholds(
        grid,
        config.routing,
        min_labels=config.statistics.min_samples,
        current=current,
        days=days,
        confidence_level=level,
        population=population,
        clusters=clusters,
    )
    stage: object
    if config.phase_started is None:
        stage = "not applied (phase_started is not set)"  # certified thresholds, unstaged
    elif win.as_of < config.phase_started:
        stage = th.Stage.CONSERVATIVE  # the phase has not begun: nothing automated yet
    else:
        stage = th.progression_stage(config.phase_started, win.as_of)

    def staged_rec(r: object) -> object:
        return (
            r
            if isinstance(stage, str) and stage.startswith("not")
            else th.apply_progression(r, stage)
        )

    staged = staged_rec(certified)
    segments = th.recommend_by_group(
        grid_frame(pop.cells, step, ["segment"]),
        config.routing,
        by="segment",
        min_labels=config.statistics.min_samples,
        confidence_level=level,
        population=population,
        clusters=segment_clusters,
    )
    customers = None
    if customer_grid is not None and len(customer_grid):
        cgrid = grid_frame(customer_grid, step, ["customer_id"])
        customers = th.recommend_by_group(
            cgrid,
            config.routing,
            by="customer_id",
            min_labels=config.statistics.min_samples,
            confidence_level=level,
            population=population,
        )
        customers = dataclasses.replace(
            customers,
            by_group={g: staged_rec(r) for g, r in customers.by_group.items()},
        )
    segments = dataclasses.replace(
        segments, by_group={g: staged_rec(r) for g, r in segments.by_group.items()}
    )
    traffic = _between(aggs.cells, win.monitor_start, win.as_of)
    traffic = traffic[traffic["model_version"] == pop.version]  # one version: items not doubled
    by_day = grid_frame(traffic, step, ["day"])
    policy = {b.band: b.threshold for b in staged.bands if b.band != "human"}
    whatif = th.replay_policy(by_day, policy, current=current, step=step, confidence_level=level)
    return Thresholds(
        recommended=staged,
        certified=certified,
        segments=segments,
        stage=str(stage),
        whatif=whatif,
        customers=customers,
    )


def gate_metric_rows(
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    config: RolloutConfig,
    *,
    equal_mass: pd.DataFrame | None = None,
    classwise: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Metrics of the certified population (one version, unshown, matured window) and of the
    automation-bias gap, with cluster-bootstrap intervals where items cluster by customer."""
    st = config.statistics
    base = {
        "feature": aggs.feature,
        "model_version": pop.version,
        "mode": UNSHOWN,
        "window": "window",
        "segment": None,
        "customer_id": None,
        "day": None,
    }
    rows: list[dict] = []
    # Accuracy with a cluster bootstrap over customers (items cluster by customer).
    cust = _between(aggs.customers, win.gate_start, win.gate_end)
    cust = cust[(cust["model_version"] == pop.version) & ~cust["shown"].astype(bool)]
    for seg in [None, *config.segments]:
        c = cust if seg is None else cust[cust["segment"] == seg]
        g = c.groupby("customer_id")[["correct", "labeled"]].sum()
        g = g[g["labeled"] > 0]
        if len(g) >= 2:
            est, lo, hi = m.cluster_bootstrap_interval(
                g["correct"].to_numpy(),
                g["labeled"].to_numpy(),
                confidence=st.confidence_level,
                reps=st.bootstrap_reps,
                seed=st.seed,
            )
            rows.append(
                {
                    **base,
                    "segment": seg,
                    "metric": "accuracy_clustered",
                    "value": est,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": int(g["labeled"].sum()),
                }
            )
    # The ECE's noise floor and consistency-test p-value at this n (value, n; no interval).
    cal, test = calibration_evidence(pop, config)
    if cal.n >= m.MIN_SHOWN_N:
        rows += [
            {
                **base,
                "metric": "ece_noise_floor",
                "value": test.noise_floor,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": cal.n,
            },
            {
                **base,
                "metric": "ece_p_value",
                "value": test.p_value,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": cal.n,
            },
        ]
        rows += [
            {
                **base,
                "metric": name,
                "value": value,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": cal.n,
            }
            for name, value in (
                ("ece_debiased_l2", cal.ece_debiased_l2),
                ("smece", cal.smece),
                ("smece_sigma", cal.smece_sigma),
            )
        ]
    if equal_mass is not None and equal_mass["n"].sum() >= m.MIN_SHOWN_N:
        rows.append(
            {
                **base,
                "metric": "ece_equal_mass",
                "value": float(
                    m.ece_from_bins(
                        equal_mass["n"].to_numpy(),
                        equal_mass["correct"].to_numpy(),
                        equal_mass["conf_sum"].to_numpy(),
                    )
                ),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": int(equal_mass["n"].sum()),
            }
        )
    if classwise is not None and len(classwise):
        wide = {
            col: classwise.pivot_table(
                index="class", columns="bin", values=col, aggfunc="sum", fill_value=0
            )
            for col in ("n", "hits", "prob_sum")
        }
        n_items = int(wide["n"].sum(axis=1).iloc[0])
        if n_items >= m.MIN_SHOWN_N:
            rows.append(
                {
                    **base,
                    "metric": "ece_classwise",
                    "value": float(
                        m.classwise_ece_from_bins(
                            wide["n"].to_numpy(),
                            wide["hits"].to_numpy(),
                            wide["prob_sum"].to_numpy(),
                        )
                    ),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": n_items,
                }
            )
    rows += _fairness_rows(aggs, win, pop, config, base)
    # Automation bias: agreement on shown vs unshown items (monitoring window, all versions).
    mon = _between(aggs.cells, win.monitor_start, win.as_of)
    shown, unshown = mon[mon["mode"] != UNSHOWN], mon[mon["mode"] == UNSHOWN]
    ks, ns = int(shown["correct"].sum()), int(shown["labeled"].sum())
    ku, nu = int(unshown["correct"].sum()), int(unshown["labeled"].sum())
    if ns and nu:
        gap = m.agreement_gap(ks, ns, ku, nu, confidence=st.confidence_level)
        rows.append(
            {
                **base,
                "model_version": None,
                "mode": None,
                "metric": "automation_bias_gap",
                "value": gap.difference,
                "ci_low": gap.ci_low,
                "ci_high": gap.ci_high,
                "n": ns + nu,
            }
        )
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    frame["n"] = frame["n"].astype("int64")
    return frame


FAIRNESS_RATES = (
    ("selection_rate", "selection_rate"),
    ("tpr", "true_positive_rate"),
    ("fpr", "false_positive_rate"),
)
FAIRNESS_GAPS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)


def _fairness_rows(
    aggs: Aggregates, win: Windows, pop: GatePopulation, config: RolloutConfig, base: dict
) -> list[dict]:
    """fairlearn's rates per segment and their gaps over segments, for the certified population
    (unshown, one version, matured window), from its confusion counts. With
    ``statistics.positive_label`` the metrics are named plainly; otherwise each label is the
    positive class in turn and the names carry it: ``selection_rate[approve]``."""
    conf = _between(aggs.confusion, win.gate_start, win.gate_end)
    conf = conf[(conf["model_version"] == pop.version) & ~conf["shown"].astype(bool)]
    if conf.empty:
        return []
    positive = config.statistics.positive_label
    fair = m.fairness_rates(conf, positive_label=positive)

    def name(metric: str, label: object) -> str:
        return metric if positive is not None else f"{metric}[{label}]"

    rows = []
    for r in fair.by_group.itertuples():
        for column, metric in FAIRNESS_RATES:
            n = {"selection_rate": r.n, "tpr": r.positives, "fpr": r.n - r.positives}[column]
            rows.append(
                {
                    **base,
                    "segment": r.segment,
                    "metric": name(metric, r.label),
                    "value": getattr(r, column),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": int(n),
                }
            )
    total = int(conf["n"].sum())
    for r in fair.summary.itertuples():
        for metric in FAIRNESS_GAPS:
            rows.append(
                {
                    **base,
                    "metric": name(metric, r.label),
                    "value": getattr(r, metric),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": total,
                }
            )
    return rows


def slice_audits(slices: dict[str, pd.DataFrame], config: RolloutConfig) -> list[dict]:
    """The bias audit over each configured extra slice column (accuracy, unshown, one version)."""
    out = []
    st = config.statistics
    for column, counts in slices.items():
        frame = counts.assign(segment=counts["value"].fillna("(missing)"))[["segment", "k", "n"]]
        if frame["n"].sum() == 0:
            continue
        audit = m.bias_audit(
            frame,
            min_n=st.min_segment_n,
            confidence=st.confidence_level,
            min_effect=st.min_effect,
        )
        for r in audit.table.itertuples():
            out.append(
                {
                    "column": column,
                    "value": r.segment,
                    "n": int(r.n),
                    "accuracy": float(r.value),
                    "ci_low": float(r.ci_low),
                    "ci_high": float(r.ci_high),
                    "flag": r.flag,
                    "reason": r.reason,
                }
            )
    return out


def report_inputs(
    verdict: dict,
    table: pd.DataFrame,
    thresholds: Thresholds,
    aggs: Aggregates,
    win: Windows,
    pop: GatePopulation,
    config: RolloutConfig,
    *,
    ingested: dict[str, int],
    quarantined: dict[str, int],
    feedback: dict,
    comments: list[dict],
    incidents: pd.DataFrame,
    provenance: dict,
) -> object:
    """The readiness report's inputs, from computed results only (no raw rows)."""
    from trustramp.config import Phase
    from trustramp.report import ReportInputs

    bins = (
        pop.cells.groupby("ece_bin")[["labeled", "correct", "conf_sum"]]
        .sum()
        .reindex(range(config.statistics.ece_bins), fill_value=0)
    )
    reliability = m.reliability_table(
        bins["labeled"].to_numpy(),
        bins["correct"].to_numpy(),
        bins["conf_sum"].to_numpy(),
        confidence=config.statistics.confidence_level,
    )
    conf = aggs.confidence[aggs.confidence["model_version"] == pop.version]
    edges = np.linspace(0, 1, aggs.bins + 1)
    shares = {}
    for name, (lo, hi) in {
        "current": (win.as_of - dt.timedelta(days=6), win.as_of),
        "baseline": (win.baseline_start, win.baseline_end),
    }.items():
        counts = (
            _between(conf, lo, hi)
            .groupby("bin")["n"]
            .sum()
            .reindex(range(aggs.bins), fill_value=0)
            .to_numpy(float)
        )
        shares[name] = counts / counts.sum() if counts.sum() else np.full(aggs.bins, np.nan)
    confidence_hist = pd.DataFrame(
        {"bin": range(aggs.bins), "lo": edges[:-1], "hi": edges[1:], **shares}
    )
    tradeoff = None
    auto = thresholds.certified.band("auto").certified
    if auto is not None and len(auto.curve):
        c = auto.curve
        total = max(thresholds.certified.n_total, 1)
        lo, hi = m.wilson_interval(
            c["correct"].to_numpy(int),
            c["n"].to_numpy(int),
            confidence=config.statistics.confidence_level,
        )
        tradeoff = pd.DataFrame(
            {
                "threshold": c["threshold"],
                "share": c["total"] / total,
                "accuracy": c["accuracy"],
                "ci_low": lo,
                "ci_high": hi,
                "p_value": c["p_value"],
            }
        )
    inc = incidents[incidents["resolved_at"].isna()] if len(incidents) else incidents
    return ReportInputs(
        verdict=verdict,
        metrics=table,
        thresholds=thresholds.recommended,
        segment_thresholds=thresholds.segments,
        whatif=thresholds.whatif,
        stage=thresholds.stage,
        reliability=reliability,
        confidence_hist=confidence_hist,
        tradeoff=tradeoff,
        alert_levels={r.metric: (r.warning, r.critical) for r in config.alerts.rules},
        ingest={"ingested": ingested, "quarantined": quarantined},
        provenance=provenance,
        escalation=[e.model_dump(mode="json") for e in config.escalation],
        feedback={
            "positive": feedback["positive"],
            "ratings": feedback["total"],
            "nps": feedback["nps"],
            "comments": comments,
        },
        incidents=inc.to_dict("records"),
        recalibration=thresholds.recalibration,
        controlled_steps=tuple(config.phases[Phase.CONTROLLED].steps or ()),
        windows={  # the page names each number's window with these days
            "gate": (win.gate_start, win.gate_end),
            "monitoring": (win.monitor_start, win.as_of),
            "rolling_24h": (win.as_of, win.as_of),
            "recent": (win.as_of - dt.timedelta(days=6), win.as_of),
            "baseline": (win.baseline_start, win.baseline_end),
            "aggregated": (win.first, win.as_of),
        },
    )
