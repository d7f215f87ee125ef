"""Training curves: loss per optimizer step for one or several runs (stages) on one axis."""
from __future__ import annotations

from typing import Mapping

from rrg_lite.viz.style import figsize


def plot_losses(histories: Mapping[str, list[dict]], ax=None, consecutive: bool = True, title: str = "training loss"):
    """Plot ``history`` lists from :func:`rrg_lite.train.loop.train` (entries with a ``loss``).

    ``consecutive=True`` places stages one after another on the step axis (stage 2 starts where stage 1 ended).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize(1.0, 0.45))
    offset = 0
    for name, history in histories.items():
        rows = [h for h in history if "loss" in h]
        if not rows:
            continue
        steps = [h["step"] + (offset if consecutive else 0) for h in rows]
        ax.plot(steps, [h["loss"] for h in rows], marker=".", label=name)
        if consecutive:
            offset = steps[-1]
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy per target token")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
