"""The comparison implementations: the same metric set in plain pandas, and with fairlearn.

This is what a user without trustramp would write: load the logs' Parquet files with pandas, pick
each item's latest decision, join, then group by. It follows trustramp's conventions (SPEC 3.5) so
that the numbers agree: accuracy and calibration on unshown (shadow) labeled rows, operational rates
on all traffic, overrides on shown labeled rows, right-closed equal-width ECE bins, top-label Brier
and log loss, exact latency quantiles (trustramp uses a fine log-spaced histogram).

Groupings, as trustramp's `metrics.parquet`: over the window, overall / segment / model_version /
mode / version x segment / version x segment x mode; over the last day, overall / segment; per day,
day / day x segment / day x version x segment x mode; per customer (accuracy, label coverage); plus
Cohen's kappa (overall, segment, version) and confidence PSI per version.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BINS = 15
EPS = float(np.finfo(np.float64).eps)  # trustramp.metrics.LOG_LOSS_EPS
Z = 1.959963984540054

PRED_COLS = [
    "item_id",
    "model_version",
    "predicted_at",
    "segment",
    "customer_id",
    "mode",
    "predicted_label",
    "confidence",
    "latency_ms",
    "status",
]
DEC_COLS = ["decision_id", "item_id", "decided_at", "human_label", "action"]

WINDOW_GROUPINGS: list[list[str]] = [
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


# -- loading and joining -------------------------------------------------------------------------


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The predictions and decisions of a generated folder, as a user would read them."""
    preds = pd.read_parquet(folder / "predictions", columns=PRED_COLS)
    decs = pd.read_parquet(folder / "decisions", columns=DEC_COLS)
    return preds, decs


def join_latest(preds: pd.DataFrame, decs: pd.DataFrame) -> pd.DataFrame:
    """Each prediction with its item's latest decision (greatest decided_at, then decision_id)."""
    decs = decs.sort_values(["item_id", "decided_at", "decision_id"], kind="stable")
    g = decs.groupby("item_id", sort=False)
    latest = g[["human_label", "action"]].last()
    latest["first_action"] = g["action"].first()
    latest["n_decisions"] = g.size()
    df = preds.merge(latest, left_on="item_id", right_index=True, how="left")
    df["day"] = df["predicted_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    return df


def derive(df: pd.DataFrame) -> pd.DataFrame:
    """Per-row indicator columns (the same definitions as trustramp's stage 1)."""
    conf = df["confidence"].to_numpy(dtype=float, na_value=np.nan)
    failed = df["status"].isin(["error", "timeout"]).to_numpy()
    human = df["human_label"]
    labeled = (human.notna().to_numpy()) & ~failed & ~np.isnan(conf)
    hit = (human == df["predicted_label"]).fillna(False).to_numpy(dtype=bool)
    shown = (df["mode"] != "shadow").to_numpy()
    by_action = df["action"].isin(["overridden", "edited"]).to_numpy()
    overridden = np.where(df["action"].notna().to_numpy(), by_action, ~hit)
    accepted_wrong = (
        (df["first_action"] == "accepted").fillna(False).to_numpy(dtype=bool)
        & (df["n_decisions"].fillna(0).to_numpy() > 1)
        & ~hit
    )
    c = np.clip(conf, EPS, 1 - EPS)
    out = pd.DataFrame(
        {
            # Group keys as categoricals: the usual pandas idiom for repeated groupbys.
            "model_version": df["model_version"].astype("category"),
            "segment": df["segment"].astype("category"),
            "mode": df["mode"].astype("category"),
            "customer_id": df["customer_id"].astype("category"),
            "day": df["day"],
            "latency_ms": df["latency_ms"],
            "predicted_label": df["predicted_label"],
            "human_label": human,
            "confidence": conf,
            "n": 1,
            "errors": failed.astype(int),
            "labeled": labeled.astype(int),
            "correct": (labeled & hit).astype(int),
            "conf_l": np.where(labeled, conf, 0.0),
            "sq_err": np.where(labeled, (conf - hit) ** 2, 0.0),
            "nll": np.where(labeled, np.where(hit, -np.log(c), -np.log(1 - c)), 0.0),
            "shown_labeled": (shown & labeled).astype(int),
            "overridden": (shown & labeled & overridden).astype(int),
            "accepted_wrong": (shown & labeled & accepted_wrong).astype(int),
            "shown": shown,
        }
    )
    out["ece_bin"] = np.clip(np.ceil(conf * BINS - 1e-9) - 1, 0, BINS - 1)
    return out


# -- metrics -------------------------------------------------------------------------------------

SUMS = [
    "n",
    "errors",
    "labeled",
    "correct",
    "conf_l",
    "sq_err",
    "nll",
    "shown_labeled",
    "overridden",
    "accepted_wrong",
]


def wilson(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n, float)
    safe = np.where(n > 0, n, 1)
    p = np.asarray(k, float) / safe
    den = 1 + Z**2 / safe
    mid = (p + Z**2 / (2 * safe)) / den
    half = Z * np.sqrt(p * (1 - p) / safe + Z**2 / (4 * safe**2)) / den
    return mid - half, mid + half


def _sum(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if keys:
        return frame.groupby(keys, observed=True, sort=False)[SUMS].sum()
    return frame[SUMS].sum().to_frame().T


def _rates(s: pd.DataFrame, q: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out = {}
    for name, frame, k, n in (
        ("accuracy", q, "correct", "labeled"),
        ("label_coverage", s, "labeled", "n"),
        ("error_rate", s, "errors", "n"),
        ("override_rate", s, "overridden", "shown_labeled"),
        ("accepted_wrong_rate", s, "accepted_wrong", "shown_labeled"),
    ):
        nn = frame[n].to_numpy(float)
        kk = frame[k].to_numpy(float)
        lo, hi = wilson(kk, nn)
        out[name] = pd.DataFrame(
            {"value": kk / np.where(nn > 0, nn, np.nan), "ci_low": lo, "ci_high": hi, "n": nn},
            index=frame.index,
        )
    avail = out["error_rate"].copy()
    avail["value"] = 1 - avail["value"]
    avail["ci_low"], avail["ci_high"] = (
        1 - out["error_rate"]["ci_high"],
        1 - out["error_rate"]["ci_low"],
    )
    out["availability"] = avail
    nq = q["labeled"].to_numpy(float)
    nq = np.where(nq > 0, nq, np.nan)
    out["brier"] = pd.DataFrame({"value": q["sq_err"] / nq, "n": q["labeled"]}, index=q.index)
    out["log_loss"] = pd.DataFrame({"value": q["nll"] / nq, "n": q["labeled"]}, index=q.index)
    return out


def _ece(qrows: pd.DataFrame, keys: list[str]) -> dict[str, pd.DataFrame]:
    # Unlabeled rows add zero to every sum here; bins without labels are dropped below.
    b = qrows.groupby([*keys, "ece_bin"], observed=True, sort=False)[
        ["labeled", "correct", "conf_l"]
    ]
    b = b.sum().reset_index()
    b = b[b["labeled"] > 0]
    b["gap_abs"] = (b["correct"] - b["conf_l"]).abs()
    b["gap"] = b["gap_abs"] / b["labeled"]
    if keys:
        g = b.groupby(keys, observed=True, sort=False).agg(
            n=("labeled", "sum"), gap_abs=("gap_abs", "sum"), mce=("gap", "max")
        )
    else:
        g = pd.DataFrame(
            {"n": [b["labeled"].sum()], "gap_abs": [b["gap_abs"].sum()], "mce": [b["gap"].max()]}
        )
    return {
        "ece": pd.DataFrame({"value": g["gap_abs"] / g["n"], "n": g["n"]}),
        "mce": pd.DataFrame({"value": g["mce"], "n": g["n"]}),
    }


def _latency(rows: pd.DataFrame, keys: list[str]) -> dict[str, pd.DataFrame]:
    lat = rows[["latency_ms", *keys]].dropna(subset=["latency_ms"])
    if keys:
        q = lat.groupby(keys, observed=True, sort=False)["latency_ms"].quantile([0.5, 0.95, 0.99])
        q = q.unstack()
    else:
        q = lat["latency_ms"].quantile([0.5, 0.95, 0.99]).to_frame().T
    return {f"latency_p{int(p * 100)}": pd.DataFrame({"value": q[p]}) for p in (0.5, 0.95, 0.99)}


def group_metrics(rows: pd.DataFrame, keys: list[str]) -> dict[str, pd.DataFrame]:
    """Every metric for one grouping of the rows (quality on unshown rows unless by mode)."""
    qrows = rows if "mode" in keys else rows.loc[~rows["shown"], [*keys, *SUMS, "ece_bin"]]
    out = _rates(_sum(rows, keys), _sum(qrows, keys))
    out.update(_ece(qrows, keys))
    out.update(_latency(rows, keys))
    return out


def kappa(rows: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Cohen's kappa of model and human labels on unshown labeled rows, per group."""
    lab = rows[(~rows["shown"]) & (rows["labeled"] == 1)]
    out = {}
    for key, g in lab.groupby(keys, observed=True) if keys else [((), lab)]:
        cm = pd.crosstab(g["predicted_label"], g["human_label"])
        labels = sorted(set(cm.index) | set(cm.columns))
        cm = cm.reindex(index=labels, columns=labels, fill_value=0).to_numpy(float)
        n = cm.sum()
        po = np.trace(cm) / n
        pe = (cm.sum(0) * cm.sum(1)).sum() / n**2
        out[key] = (po - pe) / (1 - pe) if pe < 1 else np.nan
    return pd.Series(out, dtype=float)


def psi(rows: pd.DataFrame, as_of: dt.date) -> pd.Series:
    """Confidence PSI per version: the last 7 days against days 7..13 before as_of."""
    conf = rows.loc[rows["confidence"].notna(), ["model_version", "day", "confidence"]]
    b = np.clip(np.ceil(conf["confidence"].to_numpy() * BINS - 1e-9) - 1, 0, BINS - 1)
    conf = conf.assign(bin=b)
    day = pd.Timestamp(as_of)
    base = conf[
        (conf["day"] >= day - pd.Timedelta(days=13)) & (conf["day"] <= day - pd.Timedelta(days=7))
    ]
    cur = conf[conf["day"] >= day - pd.Timedelta(days=6)]
    e = base.groupby(["model_version", "bin"]).size().unstack(fill_value=0)
    a = cur.groupby(["model_version", "bin"]).size().unstack(fill_value=0)
    e, a = e.align(a, fill_value=0)
    pe = (e.T / e.sum(1)).T.clip(lower=1e-4)
    pa = (a.T / a.sum(1)).T.clip(lower=1e-4)
    return ((pa - pe) * np.log(pa / pe)).sum(1)


def metric_set(rows: pd.DataFrame, as_of: dt.date) -> dict[tuple[str, str], Any]:
    """The whole metric set: {(window, grouping): {metric: frame}} plus kappa and PSI."""
    out: dict[tuple[str, str], Any] = {}
    last = rows[rows["day"] == pd.Timestamp(as_of)]
    for keys in WINDOW_GROUPINGS:
        out[("window", "x".join(keys) or "all")] = group_metrics(rows, keys)
    for keys in ([], ["segment"]):
        out[("rolling_24h", "x".join(keys) or "all")] = group_metrics(last, keys)
    for keys in DAY_GROUPINGS:
        out[("day", "x".join(keys))] = group_metrics(rows, keys)
    unshown = _sum(rows[~rows["shown"]], ["customer_id", "segment"])
    allc = _sum(rows, ["customer_id", "segment"])
    cust = _rates(allc, unshown)
    out[("window", "customer")] = {k: cust[k] for k in ("accuracy", "label_coverage")}
    out[("window", "kappa")] = {
        "all": kappa(rows, []),
        "segment": kappa(rows, ["segment"]),
        "model_version": kappa(rows, ["model_version"]),
    }
    out[("window", "psi")] = psi(rows, as_of)
    return out


def run_pandas(folder: Path, as_of: dt.date) -> tuple[dict[str, float], dict[tuple[str, str], Any]]:
    """Load, join, derive, compute; returns the seconds of each step and the metrics."""
    t = [time.perf_counter()]
    preds, decs = load(folder)
    t.append(time.perf_counter())
    df = join_latest(preds, decs)
    del preds, decs
    t.append(time.perf_counter())
    rows = derive(df)
    del df
    t.append(time.perf_counter())
    metrics = metric_set(rows, as_of)
    t.append(time.perf_counter())
    steps = dict(
        zip(("load", "join", "derive", "metrics"), np.diff(t).round(3).tolist(), strict=True)
    )
    return steps, metrics


# -- fairlearn -----------------------------------------------------------------------------------


def _ece_metric(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Top-label ECE on 15 right-closed equal-width bins (y_true: hit 0/1, y_prob: confidence)."""
    y_true = np.asarray(y_true, float)
    y_prob = np.asarray(y_prob, float)
    b = np.clip(np.ceil(y_prob * BINS - 1e-9) - 1, 0, BINS - 1).astype(int)
    n = np.bincount(b, minlength=BINS)
    gap = np.abs(np.bincount(b, y_true, BINS) - np.bincount(b, y_prob, BINS))
    return float(gap.sum() / n.sum()) if n.sum() else float("nan")


def run_fairlearn(folder: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """The metric set as a fairlearn user would get it: MetricFrame with sklearn metrics.

    Labels are passed as integer codes (sklearn is much slower on pandas string columns), which
    favours fairlearn. One MetricFrame per (population, grouping): quality on unshown labeled rows
    (accuracy, Brier, log loss, ECE), operations on all rows (error rate, label coverage, latency
    p50/p95/p99), overrides on shown labeled rows.
    """
    from functools import partial

    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

    t = [time.perf_counter()]
    preds, decs = load(folder)
    df = join_latest(preds, decs)
    del preds, decs
    rows = derive(df)
    del df
    codes = pd.Categorical(
        pd.concat([rows["predicted_label"], rows["human_label"]]).dropna().unique()
    ).categories
    rows["pred_code"] = pd.Categorical(rows["predicted_label"], categories=codes).codes
    rows["human_code"] = pd.Categorical(rows["human_label"], categories=codes).codes
    rows["hit"] = (rows["correct"] == 1).astype(int)
    t.append(time.perf_counter())

    def mean_true(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean(y_true))

    def mean_pred(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean(y_pred))

    def q(p: float) -> Any:
        def quantile(y_true: np.ndarray, y_pred: np.ndarray) -> float:
            y = np.asarray(y_pred, float)
            y = y[~np.isnan(y)]
            return float(np.quantile(y, p)) if len(y) else float("nan")

        return quantile

    groupings = [*WINDOW_GROUPINGS[1:], *DAY_GROUPINGS, ["customer_id"]]
    unshown = rows[(~rows["shown"]) & (rows["labeled"] == 1)]
    shown = rows[rows["shown_labeled"] == 1]
    out: dict[str, Any] = {}
    per_grouping: dict[str, float] = {}
    for keys in groupings:
        name = "x".join(keys)
        t_group = time.perf_counter()
        out[f"{name}/accuracy"] = MetricFrame(
            metrics={"accuracy": accuracy_score},
            y_true=unshown["human_code"],
            y_pred=unshown["pred_code"],
            sensitive_features=unshown[keys],
        )
        if keys == ["customer_id"]:
            out[f"{name}/coverage"] = MetricFrame(
                metrics={"label_coverage": mean_true},
                y_true=rows["labeled"],
                y_pred=rows["errors"],
                sensitive_features=rows[keys],
            )
            per_grouping[name] = round(time.perf_counter() - t_group, 2)
            continue
        out[f"{name}/calibration"] = MetricFrame(
            metrics={
                "brier": brier_score_loss,
                "log_loss": partial(log_loss, labels=[0, 1]),
                "ece": _ece_metric,
            },
            y_true=unshown["hit"],
            y_pred=unshown["confidence"],
            sensitive_features=unshown[keys],
        )
        out[f"{name}/operations"] = MetricFrame(
            metrics={
                "label_coverage": mean_true,
                "error_rate": mean_pred,
            },
            y_true=rows["labeled"],
            y_pred=rows["errors"],
            sensitive_features=rows[keys],
        )
        out[f"{name}/latency"] = MetricFrame(
            metrics={"latency_p50": q(0.5), "latency_p95": q(0.95), "latency_p99": q(0.99)},
            y_true=rows["n"],
            y_pred=rows["latency_ms"],
            sensitive_features=rows[keys],
        )
        out[f"{name}/overrides"] = MetricFrame(
            metrics={"override_rate": mean_true},
            y_true=shown["overridden"],
            y_pred=shown["overridden"],
            sensitive_features=shown[keys],
        )
        per_grouping[name] = round(time.perf_counter() - t_group, 2)
    t.append(time.perf_counter())
    steps: dict[str, Any] = dict(
        zip(("prepare", "metricframes"), np.diff(t).round(3).tolist(), strict=True)
    )
    steps["by_grouping"] = per_grouping
    return steps, out
