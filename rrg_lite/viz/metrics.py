"""Plots for Chapter 3: metric values per controlled error kind, and report-length distributions."""
from __future__ import annotations

import numpy as np

from rrg_lite.viz.style import figsize


def plot_metric_by_error(table, metrics, kind_col: str = "kind", ax=None, order=None):
    """Grouped bars: mean of each metric (columns of ``table``) per error kind, with 95% normal-approx. error bars.

    Args:
        table: pandas DataFrame, one row per report pair, a ``kind`` column and one column per metric in [0, 1].
        metrics: the metric columns to draw.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize(1.0, 0.6))
    kinds = list(order) if order is not None else list(dict.fromkeys(table[kind_col]))
    width = 0.8 / len(metrics)
    x = np.arange(len(kinds))
    for j, m in enumerate(metrics):
        g = table.groupby(kind_col)[m]
        mean = np.array([g.get_group(k).mean() for k in kinds])
        sem = np.array([g.get_group(k).std(ddof=1) / np.sqrt(max(len(g.get_group(k)), 1)) for k in kinds])
        ax.bar(x + (j - (len(metrics) - 1) / 2) * width, mean, width, yerr=1.96 * np.nan_to_num(sem), label=m,
               capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels(kinds, rotation=20, ha="right")
    ax.set_ylabel("score vs the reference")
    ax.set_ylim(0, 1.05)
    # below the axes: inside, it covered the bars
    ax.legend(ncol=min(len(metrics), 4), loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax.set_title("One controlled error per pair: which metric notices it?")
    return ax


def plot_lengths(length_result, ax=None, labels=("generated", "reference")):
    """Histogram + KDE of report lengths from :func:`rrg_lite.metrics.lengths.length_kl`'s result."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize(0.85, 0.55))
    ex = length_result.extra
    bins = np.arange(0, ex["grid"].max() + 2, 2)
    ax.hist(ex["len_pred"], bins=bins, density=True, alpha=0.3, label=f"{labels[0]} (histogram)")
    ax.hist(ex["len_ref"], bins=bins, density=True, alpha=0.3, label=f"{labels[1]} (histogram)")
    ax.plot(ex["grid"], ex["density_pred"], label=f"{labels[0]} KDE")
    ax.plot(ex["grid"], ex["density_ref"], label=f"{labels[1]} KDE")
    ax.set_xlabel("words per report")
    ax.set_title(f"Report lengths: KL(ref || gen) = {length_result.value:.3f}")
    ax.legend()
    return ax
