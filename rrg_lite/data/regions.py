"""Region utilities: an organ mask → its tight box → the masked, cropped, resized region an encoder reads.

Reg2RG's texture input (Eq. 3) is ``Crop(M ⊙ V)`` resized to the encoder's input shape; its geometry input
(Eq. 4) is the *uncropped* mask M resized the same way as the whole volume. The steps, for a volume
V (C, D, H, W) and a bool mask M (D, H, W) on the same grid::

    tight_box(M)                       -> (z0, z1, y0, y1, x0, x1)   half-open: M[z0:z1, y0:y1, x0:x1] holds all of M
    expand_box(box, margin, shape)     -> the box grown by ``margin`` voxels per side, clipped to the volume
    mask_volume(V, M, fill)            -> V where M, ``fill`` elsewhere                       (C, D, H, W)
    crop_region(V, M, out_shape, ...)  -> resize(crop(mask_volume(V, M), box))               (C, *out_shape)
    crop_regions(V, masks, out_shape)  -> one crop per mask                                (R, C, *out_shape)
    resize_mask(M, out_shape)          -> M as float occupancy (or bool, nearest) at out_shape   (*out_shape)

Conventions:

- *Boxes* are half-open voxel index ranges in (z, y, x) = (D, H, W) order, ready for slicing. (The world's
  :func:`rrg_lite.world.ct.bbox3d` gives the same box as ``[z0, y0, x0, z1, y1, x1]``; :func:`tight_box` is that
  function with the axes grouped per axis and an error instead of ``None`` for an empty mask.)
- *Fill* is the value outside the mask, i.e. "background" in the volume's own units. ``fill=0`` is M ⊙ V as Eq. 3
  writes it (and air in a [0, 1] mediastinal or bone window); the official code sets outside-mask voxels to
  −1024 HU (air) before its [−1000, 200] clamp, so in HU pass ``fill=-1024``; for multi-window inputs pass one
  value per channel (air in the lung window (−600, 1500) is 0.217, not 0).
- *Resize* is the package's :func:`rrg_lite.data.transforms.resize` with ``order=1``: trilinear interpolation
  with cell-centred grids (scipy ``zoom(grid_mode=True)``, the same geometry as PyTorch's
  ``interpolate(mode="trilinear", align_corners=False)``), so halving an axis averages voxel pairs and a crop
  already at ``out_shape`` is returned unchanged. It is the resize that :func:`rrg_lite.encoders.data.preprocess_ct`
  applies to whole volumes, so a region crop and the global view reach the encoder through one pipeline. The
  aspect ratio is not kept: crop-and-resize erases the region's size — the reason Reg2RG adds a geometry token.
- *Margin* grows the box before the crop (context around the organ); voxels in the margin are outside the mask,
  so they are ``fill`` too unless ``mask_first=False`` (a plain box crop of the raw volume, a control).

Inputs may be NumPy arrays or torch tensors; outputs are of the same kind as the volume (float32).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from rrg_lite.data.transforms import resize
from rrg_lite.world.ct import bbox3d

__all__ = ["tight_box", "expand_box", "mask_volume", "crop_region", "crop_regions", "resize_mask"]

Box = tuple[int, int, int, int, int, int]


def _as_numpy(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{what} must be a NumPy array or a torch tensor, got {type(x).__name__}")


def _check_mask(mask, what: str = "mask") -> np.ndarray:
    m = _as_numpy(mask, what)
    if m.ndim != 3:
        raise ValueError(f"{what} must be (D, H, W), got shape {m.shape}")
    if m.dtype != bool:
        values = np.unique(m)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{what} must be bool or 0/1, got values {values[:5].tolist()}...")
        m = m.astype(bool)
    return m


def _check_volume(volume, mask: np.ndarray | None = None) -> np.ndarray:
    v = _as_numpy(volume, "volume")
    if v.ndim != 4:
        raise ValueError(f"volume must be (C, D, H, W), got shape {v.shape} (add a channel axis with volume[None])")
    if mask is not None and v.shape[1:] != mask.shape:
        raise ValueError(f"volume {v.shape} and mask {mask.shape} are not on one grid: (C, D, H, W) vs (D, H, W)")
    return v


def _shape3(shape, what: str) -> tuple[int, int, int]:
    out = tuple(int(s) for s in shape)
    if len(out) != 3 or min(out) < 1:
        raise ValueError(f"{what} must be three positive sizes (D, H, W), got {tuple(shape)}")
    return out


def _fill_per_channel(fill, channels: int) -> np.ndarray:
    f = np.asarray(fill, dtype=np.float32).reshape(-1)
    if f.size == 1:
        return np.full(channels, f[0], np.float32)
    if f.size != channels:
        raise ValueError(f"fill must be one value or one per channel ({channels}), got {f.size} values")
    return f


def _same_kind(out: np.ndarray, like):
    return torch.from_numpy(np.ascontiguousarray(out)) if isinstance(like, torch.Tensor) else out


def tight_box(mask) -> Box:
    """The smallest box holding every True voxel of a (D, H, W) mask: ``(z0, z1, y0, y1, x0, x1)``, half-open.

    Raises ``ValueError`` for an empty mask (it has no box; RadGenome drops such regions, so should the caller).
    """
    m = _check_mask(mask)
    b = bbox3d(m)
    if b is None:
        raise ValueError(f"tight_box: the mask {m.shape} is empty (no True voxel), so it has no box")
    return (b[0], b[3], b[1], b[4], b[2], b[5])


def expand_box(box: Sequence[int], margin: int | Sequence[int], shape: Sequence[int]) -> Box:
    """Grow a half-open box by ``margin`` voxels on each side (one int, or one per axis (z, y, x)), clipped to
    ``shape`` (D, H, W)."""
    if len(box) != 6:
        raise ValueError(f"expand_box: a box is (z0, z1, y0, y1, x0, x1), got {tuple(box)}")
    mz, my, mx = (margin,) * 3 if isinstance(margin, (int, np.integer)) else tuple(margin)
    if min(mz, my, mx) < 0:
        raise ValueError(f"expand_box: margin must be >= 0, got {margin}")
    D, H, W = _shape3(shape, "expand_box: shape")
    z0, z1, y0, y1, x0, x1 = (int(v) for v in box)
    if not (0 <= z0 < z1 <= D and 0 <= y0 < y1 <= H and 0 <= x0 < x1 <= W):
        raise ValueError(f"expand_box: box {tuple(box)} is empty or outside the volume {(D, H, W)}")
    return (max(0, z0 - mz), min(D, z1 + mz), max(0, y0 - my), min(H, y1 + my), max(0, x0 - mx), min(W, x1 + mx))


def mask_volume(volume, mask, fill: float | Sequence[float] = 0.0):
    """M ⊙ V with a chosen background: (C, D, H, W) volume, (D, H, W) mask -> (C, D, H, W), ``fill`` outside M."""
    m = _check_mask(mask)
    v = _check_volume(volume, m).astype(np.float32)
    f = _fill_per_channel(fill, v.shape[0])
    out = np.where(m[None], v, f[:, None, None, None]).astype(np.float32)
    return _same_kind(out, volume)


def crop_region(volume, mask, out_shape: Sequence[int], margin: int | Sequence[int] = 0,
                fill: float | Sequence[float] = 0.0, mask_first: bool = True):
    """Reg2RG's texture input ``Resize(Crop(M ⊙ V))``: (C, D, H, W) volume, (D, H, W) mask -> (C, *out_shape).

    The box is the mask's tight box grown by ``margin``; outside-mask voxels get ``fill`` before the crop
    (``mask_first=False``: crop the raw volume, no masking); each channel is resized trilinearly to ``out_shape``.
    Raises ``ValueError`` for an empty mask, shapes that do not match, or a bad ``out_shape``/``fill``.
    """
    m = _check_mask(mask)
    v = _check_volume(volume, m)
    out_shape = _shape3(out_shape, "crop_region: out_shape")
    z0, z1, y0, y1, x0, x1 = expand_box(tight_box(m), margin, m.shape)
    src = _as_numpy(mask_volume(v, m, fill), "volume") if mask_first else v.astype(np.float32)
    crop = src[:, z0:z1, y0:y1, x0:x1]
    out = np.stack([resize(c, out_shape, order=1) for c in crop]).astype(np.float32)
    return _same_kind(out, volume)


def crop_regions(volume, masks, out_shape: Sequence[int], margin: int | Sequence[int] = 0,
                 fill: float | Sequence[float] = 0.0, mask_first: bool = True):
    """:func:`crop_region` for each of R masks (R, D, H, W) (or a sequence of (D, H, W)) -> (R, C, *out_shape)."""
    if isinstance(masks, (np.ndarray, torch.Tensor)) and masks.ndim != 4:
        raise ValueError(f"crop_regions: masks must be (R, D, H, W), got shape {tuple(masks.shape)}")
    ms = list(masks)
    if not ms:
        raise ValueError("crop_regions: no masks given (R = 0)")
    crops = []
    for i, m in enumerate(ms):
        try:
            crops.append(_as_numpy(crop_region(volume, m, out_shape, margin, fill, mask_first), "crop"))
        except ValueError as err:
            raise ValueError(f"crop_regions: mask {i}: {err}") from None
    return _same_kind(np.stack(crops), volume)


def resize_mask(mask, out_shape: Sequence[int], soft: bool = True):
    """The uncropped mask at another grid: (D, H, W) -> (*out_shape).

    ``soft=True``: float32 occupancy in [0, 1] (trilinear, so an organ thinner than a voxel of the new grid keeps
    a partial value instead of vanishing); ``soft=False``: bool, nearest neighbour. Same kind as the input.
    """
    m = _check_mask(mask)
    out_shape = _shape3(out_shape, "resize_mask: out_shape")
    if soft:
        out = np.clip(resize(m.astype(np.float32), out_shape, order=1), 0.0, 1.0).astype(np.float32)
    else:
        out = resize(m.astype(np.uint8), out_shape, order=0).astype(bool)
    return _same_kind(out, mask)
