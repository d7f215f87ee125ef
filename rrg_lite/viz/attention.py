"""Where a text-conditioned tokenizer looks: question-to-CT attention mapped back onto the volume (μ² Fig. 5).

:class:`rrg_lite.systems.mu2.tokenizer.Mu2Tokenizer` returns ``token_weights`` (B, Q, T·N): how much of each input
token position ends up in each output token (aggregation × pooling × selection — all linear). Each position is
one ViT patch of one frame, so the weights are a heat map over the volume once they are put back in place:

    token index  t·N + n,   n = (d·nh + h)·nw + w   (patch grid nd × nh × nw inside a frame of K × H × W)
    voxel        z = t·K + d·pd + ..., y = h·ph + ..., x = w·pw + ...   (pd, ph, pw = patch size)

:func:`attention_volume` does that (each patch's weight fills its block of voxels; padded slices beyond the
real depth are cut off), :func:`plot_attention_overlay` draws it over CT slices, and
:func:`plot_selection` contrasts hard top-k with soft selection weights on a toy example.
"""
from __future__ import annotations

import numpy as np

from rrg_lite.viz.style import FULL_WIDTH
import torch

__all__ = ["attention_volume", "body_part_mass", "plot_attention_overlay", "plot_selection"]


def attention_volume(weights, num_frames: int, patch_grid, frame_shape, depth: int | None = None) -> np.ndarray:
    """Spread per-token weights over the voxels of their patches: (T·N,) or (Q, T·N) → (D, H, W) float array.

    ``patch_grid`` = (nd, nh, nw) patches per frame, ``frame_shape`` = (K, H, W) voxels per frame; a (Q, T·N)
    input is first summed over the queries. ``depth`` (default T·K) crops the padding of the last frame.
    """
    w = torch.as_tensor(weights, dtype=torch.float32).detach().cpu()
    if w.ndim == 2:
        w = w.sum(0)
    nd, nh, nw = patch_grid
    K, H, W = frame_shape
    if w.ndim != 1 or w.numel() != num_frames * nd * nh * nw:
        raise ValueError(
            f"weights of shape {tuple(torch.as_tensor(weights).shape)} do not match {num_frames} frames × "
            f"{nd}×{nh}×{nw} patches"
        )
    if K % nd or H % nh or W % nw:
        raise ValueError(f"frame {frame_shape} is not a whole number of patches of the grid {patch_grid}")
    grid = w.view(num_frames * nd, nh, nw)  # z-order: frame t, then the patch row d inside it
    vol = grid.repeat_interleave(K // nd, 0).repeat_interleave(H // nh, 1).repeat_interleave(W // nw, 2)
    depth = num_frames * K if depth is None else depth
    return vol[:depth].numpy()


def body_part_mass(heat: np.ndarray, z_ranges: dict) -> dict:
    """Share of the heat map's total mass inside each body part's slice range ``{part: (z0, z1)}`` (z1 excluded)."""
    total = float(heat.sum())
    if total <= 0:
        raise ValueError("the attention map has no mass")
    return {part: float(heat[z0:z1].sum()) / total for part, (z0, z1) in z_ranges.items()}


def plot_attention_overlay(ct: np.ndarray, heat: np.ndarray, slices=None, axes=None, title: str = "",
                           window=(-160.0, 240.0), coronal: bool = True):
    """CT slices (HU, soft-tissue window) with the heat map on top; optionally a coronal view with the z profile.

    ``ct`` and ``heat`` are (D, H, W). ``slices`` defaults to 4 axial slices where the heat is highest.
    """
    import matplotlib.pyplot as plt

    if ct.shape != heat.shape:
        raise ValueError(f"CT {ct.shape} and heat map {heat.shape} differ in shape")
    if slices is None:
        per_slice = heat.reshape(heat.shape[0], -1).sum(1)
        slices = sorted(np.argsort(per_slice)[-4:].tolist())
    n = len(slices) + int(coronal)
    if axes is None:
        panel = FULL_WIDTH / n  # n panels share the column
        _, axes = plt.subplots(1, n, figsize=(FULL_WIDTH, panel + 0.7))
    lo, hi = window
    vmax = float(heat.max()) or 1.0
    for ax, z in zip(axes, slices):
        ax.imshow(np.clip((ct[z] - lo) / (hi - lo), 0, 1), cmap="gray")
        ax.imshow(heat[z], cmap="inferno", alpha=0.45, vmin=0, vmax=vmax)
        ax.set_title(f"z = {z}", fontsize=9)
        ax.axis("off")
    if coronal:
        ax = axes[len(slices)]
        y = ct.shape[1] // 2
        ax.imshow(np.clip((ct[:, y] - lo) / (hi - lo), 0, 1), cmap="gray", aspect="auto")
        ax.imshow(heat.sum(1), cmap="inferno", alpha=0.5, aspect="auto")
        ax.set_title("coronal (heat summed over y)", fontsize=9)
        ax.set_ylabel("z (slice)")
        ax.set_xticks([])
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    return axes


def plot_selection(hard_index, alpha, num_tokens: int, axes=None):
    """Toy picture of token selection: which of ``num_tokens`` tokens hard top-k keeps vs the soft weights α.

    ``hard_index`` (k,) kept indices; ``alpha`` (k, num_tokens) soft weights (rows sum to one).
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(FULL_WIDTH, 3.6), sharex=True)
    kept = np.zeros((1, num_tokens))
    kept[0, np.asarray(hard_index)] = 1
    axes[0].imshow(kept, aspect="auto", cmap="Greys", vmin=0, vmax=1)
    axes[0].set_title("hard top-k: kept tokens (black); the rest get no gradient", fontsize=9)
    axes[0].set_yticks([])
    im = axes[1].imshow(np.asarray(alpha), aspect="auto", cmap="viridis")
    axes[1].set_title("soft top-k: α for each soft token (rows sum to 1); every token gets gradient", fontsize=9)
    axes[1].set_ylabel("soft token r")
    axes[1].set_xlabel("token index (frame-major)")
    axes[1].figure.colorbar(im, ax=axes[1], fraction=0.02)
    return axes
