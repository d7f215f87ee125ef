"""ViPET-VLM §3.2.4: the attention-alignment loss that pulls the LLM's attention toward high-SUV image tokens.

The LLM reads ``[… T image tokens … text tokens …]``; layer l, head h has an attention map M_l^h (S, S). The
*visual attention map* is its sub-matrix of text rows (the tokens after the image) × image columns, averaged over
layers and heads (Eq. 10), then over the text rows so that there is one number per image token::

    M^v_c = 1/(L·H·R) Σ_l Σ_h Σ_{r ∈ text} M_l^h[r, c]                  c = 1..T       (10)
    share(S) = Σ_{c∈S} M^v_c / Σ_{c'=1..T} M^v_{c'}                     attention mass on the ROI
    L_align = (1 − share(S))²                                           union reading   (11)
    L = L_llm + λ · L_align                                                              (12)

S is the set of image tokens inside a thresholded PET mask (high SUV). The pieces, top to bottom:

- :func:`high_suv_mask` — SUV volume -> boolean mask (the "simple thresholding" of the paper).
- :func:`token_roi_fraction`, :func:`token_roi_mask` — voxel mask (D, H, W) -> per-token ROI on the encoder's
  patch grid, in the encoder's token order (row-major over (gd, gh, gw), as :mod:`rrg_lite.encoders.vit`).
- :func:`visual_attention_map` — Eq. 10 from the LLM's attentions ((L, B, H, S, S) or a list of (B, H, S, S),
  e.g. ``outputs.attentions`` of a 🤗 model run with ``attn_implementation="eager"``).
- :func:`roi_attention_share`, :func:`roi_components`, :func:`attention_alignment_loss`, :func:`final_loss` —
  Eq. 11–12.
- :func:`random_roi_like` — the control: a random ROI of the same size per image (seeded).

Where the paper is open, and what we chose (SYSTEMS.md §1: "Not stated: SUV threshold, λ, voxel→token mapping,
aggregation over text rows"; Eq. 11 "an index inconsistency"):

- *Eq. 11 as printed* sums over ``s ∈ S`` outside and over ``c ∈ S`` inside, so the summand does not depend on
  s. ``reading="union"`` (default, as SYSTEMS.md says) drops the outer sum: one term per image, S the union of
  all high-SUV tokens. ``reading="components"`` reads s as a *region* (a connected component of S on the token
  grid) and c ∈ s inside: Σ_s (1 − share(s))². Its minimum is not "all attention on S": with K regions it is
  (K − 1)²/K, reached by splitting the attention equally over the regions, so it also asks for balance between
  lesions. ``reading="literal"`` is the printed sum, |S|·(1 − share(S))² (larger ROIs weigh more).
- *Text rows* are averaged. Every reading is a ratio of sums over image tokens, so mean or sum over rows, layers
  and heads gives the same loss; only a per-row renormalisation would differ, and the paper has none.
- *Voxel → token*: a token is in the ROI when ``rule="any"`` of its voxels is (the default: small lesions, ≤ 2 %
  of tokens in the world, must not vanish, and PET is blurred anyway), or when at least a fraction ``rule=f`` of
  them is. Components are taken on the token grid, 6-neighbour by default.
- *SUV threshold* 2.5 by default (the classic malignancy cut-off; the world's benign twins stay below it).
  Physiological uptake (brain, heart, bladder) is above it too: that is the paper's method, not a bug here.
- *Images without ROI*: ``share`` is 0 and the loss a constant 1 with no gradient; they are left out of the
  batch mean (``reduction="none"`` gives 0 for them; count them with ``roi.any(-1)``).
- *λ* is not stated: :func:`final_loss` takes it explicitly, with no default.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from rrg_lite.mllm.attention import mean_attention_to

__all__ = [
    "high_suv_mask",
    "token_roi_fraction",
    "token_roi_mask",
    "visual_attention_map",
    "roi_attention_share",
    "roi_components",
    "attention_alignment_loss",
    "final_loss",
    "random_roi_like",
    "READINGS",
]

#: The readings of Eq. 11 that :func:`attention_alignment_loss` offers (the first is the default).
READINGS = ("union", "components", "literal")

_EPS = 1e-12  # guards Σ_c' M^v_c' = 0 (text rows that cannot see the image): share 0 instead of NaN


# ---- the ROI: SUV -> voxel mask -> token mask ------------------------------------------------------------------
def high_suv_mask(suv: torch.Tensor | np.ndarray, threshold: float = 2.5) -> torch.Tensor:
    """The paper's "simple thresholding": SUV (…, D, H, W) -> bool mask ``suv >= threshold`` of the same shape."""
    suv = torch.as_tensor(suv)
    if not suv.is_floating_point():
        suv = suv.float()
    return suv >= threshold


def _patch_size(patch_size, what: str) -> tuple[int, int, int]:
    ps = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(int(p) for p in patch_size)
    if len(ps) != 3 or min(ps) < 1:
        raise ValueError(f"{what}: patch_size must be an int or 3 positive ints, got {patch_size}")
    return ps


def token_roi_fraction(mask: torch.Tensor | np.ndarray, patch_size: int | Sequence[int]) -> torch.Tensor:
    """Share of each patch's voxels that are in the mask: (D, H, W) -> (T,), or (B, D, H, W) -> (B, T), float.

    The mask must already be at the encoder's input resolution (resize it as the volume was, nearest-neighbour).
    T = (D/pd)(H/ph)(W/pw); token t = (i·gh + j)·gw + k for patch (i, j, k), the encoder's row-major order.
    """
    m = torch.as_tensor(mask)
    pd, ph, pw = _patch_size(patch_size, "token_roi_fraction")
    if m.ndim not in (3, 4):
        raise ValueError(f"token_roi_fraction: mask must be (D, H, W) or (B, D, H, W), got {tuple(m.shape)}")
    batched = m.ndim == 4
    m = (m if batched else m[None]).float()
    B, D, H, W = m.shape
    if D % pd or H % ph or W % pw:
        raise ValueError(f"token_roi_fraction: patch size {(pd, ph, pw)} must divide the mask's volume shape "
                         f"{(D, H, W)} (mask shape {tuple(m.shape if batched else m.shape[1:])})")
    gd, gh, gw = D // pd, H // ph, W // pw
    frac = m.reshape(B, gd, pd, gh, ph, gw, pw).mean(dim=(2, 4, 6)).reshape(B, gd * gh * gw)
    return frac if batched else frac[0]


def token_roi_mask(mask: torch.Tensor | np.ndarray, patch_size: int | Sequence[int],
                   rule: str | float = "any") -> torch.Tensor:
    """Voxel mask -> token ROI: (D, H, W) -> (T,) bool, or (B, D, H, W) -> (B, T) bool.

    ``rule="any"``: a token is ROI when any of its voxels is in the mask. ``rule=f`` (0 < f ≤ 1): when at least a
    fraction f of its voxels is (``1.0`` = all of them, ``0.5`` = majority).
    """
    frac = token_roi_fraction(mask, patch_size)
    if isinstance(rule, str):
        if rule != "any":
            raise ValueError(f"token_roi_mask: rule must be 'any' or a fraction in (0, 1], got {rule!r}")
        return frac > 0
    if not 0.0 < float(rule) <= 1.0:
        raise ValueError(f"token_roi_mask: rule must be 'any' or a fraction in (0, 1], got {rule!r}")
    return frac >= float(rule) - 1e-9    # the voxel share is a multiple of 1/|patch|; tolerate float error


def roi_components(roi: torch.Tensor, grid: Sequence[int], connectivity: int = 1) -> torch.Tensor:
    """Connected regions of a token ROI on its grid: (T,) or (B, T) bool -> long labels of the same shape.

    0 = not ROI, 1..K = region k (numbered in token order). ``grid`` = (gd, gh, gw) with gd·gh·gw = T (2-D grids
    work too). ``connectivity`` is SciPy's: 1 = faces (6 neighbours in 3-D), 3 = faces, edges and corners (26).
    """
    from scipy import ndimage

    grid = tuple(int(g) for g in grid)
    roi = torch.as_tensor(roi)
    batched = roi.ndim == 2
    r = roi if batched else roi[None]
    if r.ndim != 2 or int(np.prod(grid)) != r.shape[1]:
        raise ValueError(f"roi_components: roi must be (T,) or (B, T) with T = prod(grid) = {int(np.prod(grid))}, "
                         f"got roi {tuple(roi.shape)} and grid {grid}")
    if not 1 <= connectivity <= len(grid):
        raise ValueError(f"roi_components: connectivity must be in 1..{len(grid)}, got {connectivity}")
    structure = ndimage.generate_binary_structure(len(grid), connectivity)
    out = np.zeros(tuple(r.shape), np.int64)
    for b, row in enumerate(r.detach().cpu().numpy()):
        labels, _ = ndimage.label(row.astype(bool).reshape(grid), structure=structure)
        out[b] = labels.reshape(-1)
    out = torch.from_numpy(out).to(roi.device)
    return out if batched else out[0]


# ---- Eq. 10: the visual attention map --------------------------------------------------------------------------
def _index_list(spec, S: int, what: str) -> list[int]:
    """One index spec -> a list of positions. range / slice / (start, stop) tuple = a half-open range;
    a list or 1-D tensor of ints = the positions themselves."""
    if isinstance(spec, slice):
        if spec.start is None or spec.stop is None:
            raise ValueError(f"visual_attention_map: {what} slice needs explicit start and stop, got {spec}")
        idx = list(range(spec.start, spec.stop, spec.step or 1))
    elif isinstance(spec, range):
        idx = list(spec)
    elif isinstance(spec, tuple):
        if len(spec) != 2 or not all(isinstance(i, (int, np.integer)) for i in spec):
            raise ValueError(f"visual_attention_map: a tuple {what} is a (start, stop) range, got {spec}")
        idx = list(range(int(spec[0]), int(spec[1])))
    elif isinstance(spec, torch.Tensor) and spec.ndim == 1 and not spec.is_floating_point():
        idx = [int(i) for i in spec.tolist()]
    elif isinstance(spec, (list, np.ndarray)) and all(isinstance(i, (int, np.integer)) for i in spec):
        idx = [int(i) for i in spec]
    else:
        raise ValueError(f"visual_attention_map: cannot read {what} index {spec!r}; give a range, a slice, a "
                         "(start, stop) tuple, a list/1-D tensor of positions, or a list of these (one per sample)")
    if not idx:
        raise ValueError(f"visual_attention_map: {what} index {spec!r} is empty")
    bad = [i for i in idx if not 0 <= i < S]
    if bad:
        raise ValueError(f"visual_attention_map: {what} positions {bad[:5]} are outside the sequence of length {S}")
    return idx


def _per_sample(spec, B: int, S: int, what: str) -> list[list[int]]:
    is_list_of_specs = isinstance(spec, list) and spec and not all(isinstance(i, (int, np.integer)) for i in spec)
    if not is_list_of_specs:
        return [_index_list(spec, S, what)] * B
    if len(spec) != B:
        raise ValueError(f"visual_attention_map: {len(spec)} per-sample {what} indices for a batch of {B}")
    return [_index_list(s, S, what) for s in spec]


def _layers(attentions) -> list[torch.Tensor]:
    if isinstance(attentions, torch.Tensor):
        if attentions.ndim != 5:
            raise ValueError(f"visual_attention_map: an attention tensor must be (L, B, H, S, S), "
                             f"got {tuple(attentions.shape)}")
        layers = list(attentions.unbind(0))
    elif isinstance(attentions, (list, tuple)) and attentions:
        layers = list(attentions)
    else:
        raise ValueError("visual_attention_map: attentions must be an (L, B, H, S, S) tensor or a non-empty list "
                         f"of (B, H, S, S) tensors, got {type(attentions).__name__}")
    if any(a is None for a in layers):
        raise ValueError("visual_attention_map: some layers gave no attention (None); run the LLM with "
                         "attn_implementation='eager' and output_attentions=True")
    shape = tuple(layers[0].shape)
    for l, a in enumerate(layers):
        if not isinstance(a, torch.Tensor) or a.ndim != 4 or a.shape[-1] != a.shape[-2] or tuple(a.shape) != shape:
            got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise ValueError(f"visual_attention_map: layer {l} attention is {got}; every layer must be "
                             f"(B, H, S, S) and of one shape (layer 0 is {shape})")
    return layers


def visual_attention_map(attentions, image_index, text_index) -> torch.Tensor:
    """Eq. 10: M^v (B, T), the attention of the text tokens after the image to each of the T image tokens.

    ``attentions``: (L, B, H, S, S) or a list/tuple of L tensors (B, H, S, S) (row = query, column = key).
    ``image_index`` / ``text_index``: positions in the sequence — a range, a slice, a (start, stop) tuple, a list
    or 1-D tensor of positions, shared by the batch; or a list of B of those, one per sample (left padding, several
    turns). Every sample needs the same number T of image tokens; text rows may differ. Text tokens must come
    after the last image token (in a causal LM earlier rows cannot see the image).

    Averaged over layers, heads and text rows (see the module docstring); differentiable in ``attentions``;
    float32 whatever the attentions' dtype.
    """
    layers = _layers(attentions)
    B, H, S, _ = layers[0].shape
    images = _per_sample(image_index, B, S, "image")
    texts = _per_sample(text_index, B, S, "text")
    if len({len(i) for i in images}) != 1:
        raise ValueError(f"visual_attention_map: samples have different image token counts "
                         f"{[len(i) for i in images]}; M^v needs one T")
    for b, (img, txt) in enumerate(zip(images, texts)):
        if min(txt) <= max(img):
            raise ValueError(f"visual_attention_map: sample {b}: text positions must all follow the image "
                             f"(image {min(img)}..{max(img)}, text {min(txt)}..{max(txt)})")
    ref = layers[0]
    query_mask = torch.zeros(B, S, dtype=torch.bool, device=ref.device)   # (B, S) the text rows
    for b, txt in enumerate(texts):
        query_mask[b, txt] = True
    # the average itself is the shared MLLM's (one implementation for every system that reads attention)
    return mean_attention_to(layers, query_mask, torch.tensor(images, device=ref.device))


# ---- Eq. 11–12: the loss ---------------------------------------------------------------------------------------
def _check_map_and_roi(mv: torch.Tensor, roi: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(mv, torch.Tensor) or mv.ndim != 2:
        raise ValueError(f"{what}: the attention map M^v must be (B, T), got "
                         f"{tuple(mv.shape) if isinstance(mv, torch.Tensor) else type(mv).__name__}")
    roi = torch.as_tensor(roi, device=mv.device)
    if roi.is_floating_point():
        raise ValueError(f"{what}: roi must be bool (ROI or not) or integer region labels, got {roi.dtype}")
    if roi.ndim == 1:
        roi = roi.expand(mv.shape[0], -1)
    if tuple(roi.shape) != tuple(mv.shape):
        raise ValueError(f"{what}: roi {tuple(roi.shape)} does not match the attention map M^v {tuple(mv.shape)} "
                         "(one entry per image token, (T,) or (B, T))")
    return mv, roi


def roi_attention_share(mv: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """share(S) = Σ_{c∈S} M^v_c / Σ_c' M^v_c': (B, T) map, (T,) or (B, T) ROI -> (B,) in [0, 1].

    The read-out for "attention mass on ROI tokens before/after"; non-zero labels count as ROI.
    """
    mv, roi = _check_map_and_roi(mv, roi, "roi_attention_share")
    return (mv * (roi != 0).to(mv.dtype)).sum(-1) / mv.sum(-1).clamp_min(_EPS)


def attention_alignment_loss(mv: torch.Tensor, roi: torch.Tensor, reading: str = "union",
                             grid: Sequence[int] | None = None, connectivity: int = 1,
                             reduction: str = "mean") -> torch.Tensor:
    """Eq. 11: L_align from the visual attention map M^v (B, T) and the token ROI.

    ``roi``: (T,) or (B, T), bool (ROI or not) or long region labels (0 = outside, k = region k, e.g. from
    :func:`roi_components`). ``reading``: ``"union"`` (default) (1 − share(S))²; ``"components"`` Σ_s (1 −
    share(s))² over regions s — from the labels, or from a bool ROI's connected components on ``grid`` with
    ``connectivity``; ``"literal"`` |S|·(1 − share(S))², the printed index structure. ``reduction``: ``"mean"``
    over the images that have an ROI (images without one are left out; 0 when none has), ``"sum"``, or ``"none"``
    (B,), 0 where there is no ROI.
    """
    if reading not in READINGS:
        raise ValueError(f"attention_alignment_loss: reading must be one of {READINGS}, got {reading!r}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"attention_alignment_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    mv, roi = _check_map_and_roi(mv, roi, "attention_alignment_loss")
    has_roi = (roi != 0).any(-1)                                           # (B,)
    total = mv.sum(-1, keepdim=True).clamp_min(_EPS)                       # Σ_c' M^v_c'  (B, 1)
    if reading in ("union", "literal"):
        inside = roi != 0
        share = (mv * inside.to(mv.dtype)).sum(-1, keepdim=True) / total
        per_image = (1 - share[:, 0]) ** 2
        if reading == "literal":
            per_image = per_image * inside.sum(-1).to(mv.dtype)
    else:
        if roi.dtype == torch.bool:
            if grid is None:
                raise ValueError("attention_alignment_loss(reading='components') needs region labels or a bool "
                                 "roi with its token grid=(gd, gh, gw) to find the regions")
            roi = roi_components(roi, grid, connectivity)
        roi = roi.long()
        if roi.numel() and int(roi.min()) < 0:
            raise ValueError(f"attention_alignment_loss: region labels must be >= 0 (0 = outside), "
                             f"got {int(roi.min())}")
        K = int(roi.max()) if roi.numel() else 0
        onehot = torch.nn.functional.one_hot(roi, K + 1)[..., 1:].to(mv.dtype)   # (B, T, K), region 0 dropped
        share = torch.einsum("bt,btk->bk", mv, onehot) / total             # share(s) per region (B, K)
        present = onehot.sum(1) > 0                                        # label numbers may skip in a sample
        per_image = (((1 - share) ** 2) * present.to(mv.dtype)).sum(-1)
    per_image = per_image * has_roi.to(mv.dtype)
    if reduction == "none":
        return per_image
    if reduction == "sum":
        return per_image.sum()
    return per_image.sum() / has_roi.sum().clamp_min(1)


def final_loss(llm_loss: torch.Tensor, align_loss: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 12: L_final = L_llm + λ·L_align. λ is not given by the paper, so it has no default here."""
    if float(lam) < 0:
        raise ValueError(f"final_loss: λ must be >= 0, got {lam}")
    return llm_loss + lam * align_loss


# ---- the control: a random ROI of the same size ----------------------------------------------------------------
def random_roi_like(roi: torch.Tensor, seed: int | torch.Generator, mode: str = "scatter",
                    grid: Sequence[int] | None = None, exclude_roi: bool = False) -> torch.Tensor:
    """A random token ROI with as many tokens as ``roi`` in every image: (T,) or (B, T) -> same shape.

    ``mode="scatter"``: the same number of tokens drawn uniformly without replacement (bool out); with
    ``exclude_roi`` only from tokens outside the true ROI (a ValueError if there are too few). ``mode="shift"``:
    the ROI itself moved by a random cyclic offset on ``grid`` — the same size *and* shape, so the per-component
    reading sees the same regions (a region crossing the grid's edge wraps around and may split); region labels
    are kept. ``seed``: an int or a ``torch.Generator``; the same seed gives the same ROI.
    """
    if mode not in ("scatter", "shift"):
        raise ValueError(f"random_roi_like: mode must be 'scatter' or 'shift', got {mode!r}")
    roi = torch.as_tensor(roi)
    if roi.ndim not in (1, 2) or roi.is_floating_point():
        raise ValueError(f"random_roi_like: roi must be a bool or integer (T,) or (B, T) tensor, "
                         f"got {roi.dtype} {tuple(roi.shape)}")
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    batched = roi.ndim == 2
    r = roi if batched else roi[None]
    B, T = r.shape
    if mode == "shift":
        if exclude_roi:
            raise ValueError("random_roi_like: exclude_roi works with mode='scatter' only")
        if grid is None or int(np.prod(grid)) != T:
            raise ValueError(f"random_roi_like(mode='shift') needs grid with prod(grid) = T = {T}, got {grid}")
        grid = tuple(int(g) for g in grid)
        out = torch.empty_like(r)
        for b in range(B):
            shifts = tuple(int(torch.randint(g, (1,), generator=gen)) for g in grid)
            out[b] = torch.roll(r[b].reshape(grid), shifts, dims=tuple(range(len(grid)))).reshape(-1)
    else:
        inside = (r != 0).cpu()
        out = torch.zeros(B, T, dtype=torch.bool)
        for b in range(B):
            n = int(inside[b].sum())
            pool = torch.nonzero(~inside[b]).squeeze(1) if exclude_roi else torch.arange(T)
            if n > len(pool):
                raise ValueError(f"random_roi_like: sample {b} has an ROI of {n} tokens but only {len(pool)} of "
                                 f"{T} tokens lie outside it (exclude_roi=True)")
            out[b, pool[torch.randperm(len(pool), generator=gen)[:n]]] = True
        out = out.to(roi.device)
    return out if batched else out[0]
