"""Figures for the synthetic world (chapter 2): masks over CT, PET over CT, X-rays with boxes, prior vs current."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rrg_lite.data.transforms import window
from rrg_lite.viz.style import FULL_WIDTH


def _pick_slices(study, n: int) -> list[int]:
    """Slices through the findings first, then evenly spaced ones."""
    idx = []
    for f in study.findings:
        if f.present:
            m = study.finding_mask(f.id)
            if m.any():
                z = np.nonzero(m.any(axis=(1, 2)))[0]
                idx.append(int(z[len(z) // 2]))
    idx = list(dict.fromkeys(idx))[:n]
    for k in np.linspace(2, study.ct.shape[0] - 3, n).astype(int):
        if len(idx) >= n:
            break
        if int(k) not in idx:
            idx.append(int(k))
    return sorted(idx)


def show_ct_with_masks(study, n: int = 4, regions: Sequence[str] = ("lung", "heart", "mediastinum", "abdomen", "bone"),
                       win=(-400.0, 1600.0)):
    """Top row: CT slices (lung-ish window) with finding outlines; bottom: the same with region masks in colour."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    idx = _pick_slices(study, n)
    panel = FULL_WIDTH / len(idx)  # the column shared by the slices: panels as large as the page allows
    fig, axes = plt.subplots(2, len(idx), figsize=(FULL_WIDTH, 2 * panel + 0.9), squeeze=False)
    masks = study.region_masks
    colours = plt.cm.tab10(np.arange(len(regions)))
    for c, k in enumerate(idx):
        img = window(study.ct[k], *win)
        for r in range(2):
            axes[r, c].imshow(img, cmap="gray")
            axes[r, c].axis("off")
        lesion = study.lesion_map[k] > 0
        if lesion.any():
            axes[0, c].contour(lesion, levels=[0.5], colors="red", linewidths=1)
        for j, name in enumerate(regions):
            m = masks[name][k]
            if m.any():
                axes[1, c].imshow(np.ma.masked_where(~m, m), cmap=ListedColormap([colours[j]]), alpha=0.45)
        axes[0, c].set_title(f"slice {k}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[j]) for j in range(len(regions))]
    fig.legend(handles, regions, loc="lower center", ncol=len(regions), frameon=False)
    fig.suptitle(f"{study.study_id}: findings outlined in red (top), Reg2RG region masks (bottom)")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def show_pet_over_ct(study, n: int = 4, suv_max: float = 8.0):
    """PET (SUV, hot colours) over CT: coronal projection of the PET plus axial fused slices."""
    import matplotlib.pyplot as plt

    if study.pet is None:
        raise ValueError(f"study {study.study_id} has no PET")
    idx = _pick_slices(study, n)
    panel = FULL_WIDTH / (len(idx) + 1)
    fig, axes = plt.subplots(1, len(idx) + 1, figsize=(FULL_WIDTH, 1.15 * panel + 0.8))
    mip = study.pet.max(axis=1)  # coronal maximum-intensity projection, as PET readers look at it first
    aspect = study.spacing[0] / study.spacing[2]
    axes[0].imshow(mip, cmap="gray_r", vmin=0, vmax=suv_max, aspect=aspect)
    axes[0].set_title("PET MIP (coronal)", fontsize=9)
    for a, k in zip(axes[1:], idx):
        a.imshow(window(study.ct[k], 40, 400), cmap="gray")
        a.imshow(np.ma.masked_less(study.pet[k], 1.5), cmap="hot", vmin=0, vmax=suv_max, alpha=0.6)
        a.set_title(f"fused, slice {k}", fontsize=9)
    for a in axes:
        a.axis("off")
    fig.suptitle(f"{study.study_id}: hot = physiological uptake (brain, heart, kidneys, bladder)\n"
                 "or a hypermetabolic lesion", fontsize=10)
    fig.tight_layout()
    return fig


def show_xray(study, axes=None, kinds=("finding",), title: str | None = None):
    """Frontal (and lateral) with boxes of the chosen kinds (finding / organ / region)."""
    import matplotlib.pyplot as plt

    views = list(study.images)
    if axes is None:
        panel = FULL_WIDTH / max(len(views), 2)
        fig, axes = plt.subplots(1, len(views), figsize=(panel * len(views), panel + 0.6), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    colours = {"finding": "red", "organ": "cyan", "region": "yellow"}
    for a, view in zip(axes, views):
        a.imshow(study.images[view], cmap="gray", vmin=0, vmax=1)
        for b in study.boxes:
            if b["view"] == view and b["kind"] in kinds:
                x1, y1, x2, y2 = b["box"]
                a.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colours[b["kind"]], lw=1.2))
                # 8 pt (the style's floor) on a dark chip, so a label stays readable over bone and over other boxes
                a.text(x1, y1 - 1, b["label"], color=colours[b["kind"]], fontsize=8, va="bottom",
                       bbox=dict(facecolor="black", alpha=0.55, pad=0.5, linewidth=0))
        a.set_title(f"{view} ({study.views[view]})", fontsize=9)
        a.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def show_prior_vs_current(study):
    """The prior and the current frontal view side by side, each with its finding boxes."""
    import matplotlib.pyplot as plt

    if study.prior is None:
        raise ValueError(f"study {study.study_id} has no prior")
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, FULL_WIDTH / 2 + 0.7))
    for a, s, name in ((axes[0], study.prior, "prior"), (axes[1], study, "current")):
        show_xray(s, axes=[a], kinds=("finding",))
        a.set_title(f"{name}, day {s.days}", fontsize=9)
    changes = ", ".join(f"{f.kind.replace('_', ' ')}: {f.change}" for f in study.findings if f.change)
    fig.suptitle(changes or "no changes", fontsize=10)
    fig.tight_layout()
    return fig


def label_bars(freqs: dict[str, dict[str, float]], ax=None, title: str = ""):
    """Stacked bars: positive / uncertain / negative-stated / not-mentioned per label."""
    import matplotlib.pyplot as plt

    names = list(freqs)
    if ax is None:
        _, ax = plt.subplots(figsize=(FULL_WIDTH, 0.26 * len(names) + 1.2))
    left = np.zeros(len(names))
    for key, colour in (("positive", "tab:red"), ("uncertain", "tab:orange"), ("negative", "tab:blue"),
                        ("missing", "lightgray")):
        vals = np.array([freqs[n][key] for n in names])
        ax.barh(names, vals, left=left, color=colour, label=key)
        left += vals
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of studies")
    # the legend sits above the bars (it used to cover them), the title above the legend
    ax.set_title(title, pad=22)
    ax.legend(ncol=4, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, borderaxespad=0.2)
    return ax
