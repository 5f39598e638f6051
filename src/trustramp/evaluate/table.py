"""Stage 2: the tidy metrics table (`metrics.parquet`, SPEC 2's columns) from the day statistics.

Every metric by window (`window`, `day`, `rolling_24h`) and grouping: accuracy and calibration
(Brier, log loss, ECE, MCE), label coverage, error rate, availability, override and
accepted-wrong rates, latency quantiles, per-customer rows, Cohen's kappa and each version's
confidence PSI. Pure pandas/numpy on small frames (one row per group and bin); the statistics
themselves live in `trustramp.metrics`. In the table, `accuracy` on a row whose `mode` is null is
measured on unshown items; a row with a shown mode (suggestion, confirmation, autonomous) gives
the agreement on shown items there; operational metrics (error rate, availability, latency,
overrides) cover all versions' traffic.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from trustramp import metrics as m
from trustramp.config import RolloutConfig
from trustramp.contract import METRIC_COLUMNS as _METRIC_COLUMNS
from trustramp.evaluate.windows import UNSHOWN, Windows, _between
from trustramp.store.aggregates import CELL_MEASURES, Aggregates

METRIC_COLUMNS = list(_METRIC_COLUMNS)
SUMS = CELL_MEASURES

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
        unshown = span[span["mode"] == UNSHOWN]  # once per span, not per grouping
        for keys in groupings:
            _group_metrics(
                rows,
                span,
                keys,
                window=window,
                confidence=confidence,
                ece_min_n=ece_min_n,
                unshown=unshown,
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
    unshown: pd.DataFrame | None = None,
) -> None:
    """`unshown`: the span's unshown rows, when the caller has them already."""
    if span.empty:
        return
    sums = _sum_by(span, keys)
    # Accuracy and calibration: unshown items, except on rows that name a shown mode.
    if "mode" in keys:
        quality_src = span
    else:
        quality_src = unshown if unshown is not None else span[span["mode"] == UNSHOWN]
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


def run_metrics_table(
    aggs: Aggregates, win: Windows, config: RolloutConfig, gate_rows: pd.DataFrame | None
) -> pd.DataFrame:
    """The run's table: `metrics_table` with the certified population's rows (`gate_rows`,
    from `evaluate.gate_metrics`) appended."""
    table = metrics_table(
        aggs,
        win,
        confidence=config.statistics.confidence_level,
        psi_min_n=config.statistics.psi_min_n,
    )
    if gate_rows is not None and len(gate_rows):
        table = pd.concat([table, gate_rows], ignore_index=True)
    return table
