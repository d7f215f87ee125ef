"""Report-length distributions: do generated reports have the reference's length profile?

Lengths are counted in whitespace words (after an optional normalisation). The distributions are smoothed with a
Gaussian kernel density estimate (scipy's ``gaussian_kde``, Scott's bandwidth) on a shared grid, and compared
with the Kullback-Leibler divergence **KL(reference || generated)** of the two densities on that grid
(densities floored at ``eps`` and renormalised so the divergence stays finite when a system never writes some
lengths).
"""
from __future__ import annotations

import numpy as np

from .result import MetricResult
from .text import check_texts, normalize

__all__ = ["report_lengths", "length_kde", "length_kl"]


def report_lengths(texts, normalize_as: str | None = None) -> np.ndarray:
    """(N,) word counts of the reports."""
    t, _ = check_texts(texts, "reports", on_none="empty")
    if normalize_as is not None:
        t = normalize(t, normalize_as)
    return np.array([len(x.split()) for x in t], dtype=float)


def length_kde(lengths: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian KDE of ``lengths`` evaluated on ``grid`` (a point mass when all lengths are equal)."""
    from scipy.stats import gaussian_kde

    lengths = np.asarray(lengths, dtype=float)
    if len(lengths) == 0:
        raise ValueError("length_kde: no reports")
    if np.ptp(lengths) == 0 or len(lengths) < 2:
        # gaussian_kde cannot fit a zero-variance sample; use a narrow bump of width 1 word
        return np.exp(-0.5 * (grid - lengths.mean()) ** 2) / np.sqrt(2 * np.pi)
    return gaussian_kde(lengths)(grid)


def length_kl(preds, refs, eps: float = 1e-8, grid_points: int = 512, normalize_as: str | None = None) -> MetricResult:
    """KL(reference || generated) between smoothed length distributions (0 = same profile).

    ``extra`` holds the grid and both densities for plotting, and the raw lengths.
    """
    lp, lr = report_lengths(preds, normalize_as), report_lengths(refs, normalize_as)
    if len(lp) == 0 or len(lr) == 0:
        raise ValueError("length_kl: both sides need at least one report")
    hi = max(lp.max(), lr.max())
    grid = np.linspace(0, hi * 1.25 + 5, grid_points)
    dp, dr = length_kde(lp, grid), length_kde(lr, grid)
    p = np.maximum(dr, eps)
    q = np.maximum(dp, eps)
    p, q = p / p.sum(), q / q.sum()
    kl = float(np.sum(p * np.log(p / q)))
    return MetricResult("length KL", kl, "KL(reference || generated) of Gaussian KDEs (Scott bandwidth) of word "
                        f"counts on a {grid_points}-point grid, floor {eps}", None, len(lp),
                        extra={"grid": grid, "density_pred": dp, "density_ref": dr, "len_pred": lp, "len_ref": lr,
                               "mean_pred": float(lp.mean()), "mean_ref": float(lr.mean())})
