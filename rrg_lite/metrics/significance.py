"""Uncertainty of a metric and significance of a difference between two systems.

Three tools, all seeded:

* :func:`bootstrap_ci` — percentile bootstrap confidence interval of one system's score: resample the report
  pairs with replacement, recompute the *corpus-level* statistic on each resample (for BLEU from summed n-gram
  counts, for micro-F1 from summed TP/FP/FN, for averaged metrics the mean), take the alpha/2 and 1-alpha/2
  quantiles.
* :func:`paired_bootstrap` — the same resamples for two systems scored on the same references; reports the
  difference B - A, its interval and a two-sided p-value (share of resamples on the other side of 0, doubled).
* :func:`approximate_randomization` — permutation test: swap the two systems' outputs per report with
  probability 1/2, recompute the difference; p = (1 + #|diff| >= |observed|) / (1 + trials).

Over seeds (few runs, each a number): :func:`t_interval` — the mean and its Student-t interval,
mean ± t_{(1+c)/2, n-1}·s/√n; :func:`summarize_seeds` — that interval per variant and metric of an ablation's rows.

Each takes either :class:`MetricResult` objects (their per-report material is used; see
:func:`resampling_view`) or raw per-report arrays with a statistic function ``stat(rows) -> float``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .result import MetricResult

__all__ = ["resampling_view", "bootstrap_ci", "paired_bootstrap", "approximate_randomization", "t_interval",
           "summarize_seeds"]


def _mean_stat(rows: np.ndarray) -> float:
    return float(np.nanmean(rows)) if len(rows) else float("nan")


def _micro_f1_stat(rows: np.ndarray) -> float:
    k = rows.shape[1] // 2
    pred, ref = rows[:, :k].astype(bool), rows[:, k:].astype(bool)
    tp = (pred & ref).sum()
    fp = (pred & ~ref).sum()
    fn = (~pred & ref).sum()
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def resampling_view(result: MetricResult) -> tuple[np.ndarray, Callable[[np.ndarray], float]]:
    """Per-report rows and the statistic that turns any resample of them into the corpus score.

    * BLEU-n: rows = n-gram sufficient statistics, stat = :func:`~rrg_lite.metrics.nlg.bleu_from_stats`;
    * micro-F1: rows = [binary predicted labels | binary reference labels], stat = micro F1;
    * anything with ``per_example``: rows = per-report scores, stat = mean (NaN-skipping: malformed GREEN).
    """
    from .nlg import bleu_from_stats

    if "stats" in result.extra:
        order = result.extra["order"]
        return result.extra["stats"], lambda rows: bleu_from_stats(rows, order)
    if result.name.split(" ")[-1].startswith("micro-F1") and "pred" in result.extra:
        return np.concatenate([result.extra["pred"], result.extra["ref"]], axis=1), _micro_f1_stat
    if result.per_example is not None:
        return np.asarray(result.per_example, dtype=float), _mean_stat
    raise ValueError(f"{result.name}: no per-report material to resample (convention: {result.convention})")


def _as_view(x, stat):
    if isinstance(x, MetricResult):
        return resampling_view(x)
    return np.asarray(x), (stat or _mean_stat)


def bootstrap_ci(x, stat: Callable | None = None, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Percentile bootstrap CI: ``{"value", "low", "high", "n_boot", "alpha"}``."""
    rows, fn = _as_view(x, stat)
    n = len(rows)
    if n == 0:
        raise ValueError("bootstrap_ci: nothing to resample")
    rng = np.random.default_rng(seed)
    vals = np.array([fn(rows[rng.integers(0, n, n)]) for _ in range(n_boot)])
    lo, hi = np.nanquantile(vals, [alpha / 2, 1 - alpha / 2])
    return {"value": fn(rows), "low": float(lo), "high": float(hi), "n_boot": n_boot, "alpha": alpha}


def paired_bootstrap(a, b, stat: Callable | None = None, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Paired bootstrap of the difference B - A on the same reports.

    Returns ``{"a", "b", "delta", "low", "high", "p_value", "n_boot"}``.
    """
    ra, fa = _as_view(a, stat)
    rb, fb = _as_view(b, stat)
    if len(ra) != len(rb):
        raise ValueError(f"paired_bootstrap: the systems were scored on {len(ra)} and {len(rb)} reports")
    n = len(ra)
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        deltas[i] = fb(rb[idx]) - fa(ra[idx])
    lo, hi = np.nanquantile(deltas, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    va, vb = fa(ra), fb(rb)
    return {"a": va, "b": vb, "delta": vb - va, "low": float(lo), "high": float(hi), "p_value": float(p),
            "n_boot": n_boot}


def approximate_randomization(a, b, stat: Callable | None = None, trials: int = 1000, seed: int = 0) -> dict:
    """Approximate randomization test of B - A: ``{"delta", "p_value", "trials"}``."""
    ra, fa = _as_view(a, stat)
    rb, fb = _as_view(b, stat)
    if len(ra) != len(rb) or ra.shape[1:] != rb.shape[1:]:
        raise ValueError(f"approximate_randomization: per-report rows differ: {ra.shape} vs {rb.shape}")
    observed = fb(rb) - fa(ra)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        swap = rng.random(len(ra)) < 0.5
        shape = (-1,) + (1,) * (ra.ndim - 1)
        m = swap.reshape(shape)
        xa, xb = np.where(m, rb, ra), np.where(m, ra, rb)
        if abs(fb(xb) - fa(xa)) >= abs(observed) - 1e-12:
            hits += 1
    return {"delta": float(observed), "p_value": (hits + 1) / (trials + 1), "trials": trials}


def t_interval(x, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of the finite values of ``x``: mean ± t_{(1+c)/2, n−1} · s / √n (s with ddof 1).

    One value gives NaN bounds; none gives NaN everywhere (a run that produced no number is not a zero).
    """
    from scipy import stats

    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def summarize_seeds(rows, metrics=None, by: str = "variant", confidence: float = 0.95):
    """Mean over seeds and a t-interval (:func:`t_interval`) per ``by`` group and metric.

    ``rows``: [{by: ..., "seed": ..., metric: value, ...}]. Returns a DataFrame indexed by the groups (in first-seen
    order) with ``<metric>``, ``<metric> lo``, ``<metric> hi`` and ``n seeds``; metrics a group lacks are left out.
    """
    import pandas as pd

    df = pd.DataFrame(rows)
    metrics = list(metrics or [c for c in df.columns if c not in (by, "seed")])
    out = {}
    for key, group in df.groupby(by, sort=False):
        row = {"n seeds": len(group)}
        for m in metrics:
            if m in group:
                row[m], row[f"{m} lo"], row[f"{m} hi"] = t_interval(group[m].to_numpy(dtype=float), confidence)
        out[key] = row
    return pd.DataFrame.from_dict(out, orient="index")
