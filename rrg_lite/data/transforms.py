"""Intensity and shape transforms for CT volumes and X-ray images.

Plain functions do the work on NumPy arrays; small dictionary transforms (MONAI's style: each one reads and
writes named ``keys`` of a sample dict) compose them into a pipeline::

    pipeline = Compose([ClipAndScale("ct", lo=-1000, hi=200), Resize("ct", (64, 128, 128)),
                        SplitFrames("ct", k=32)])
    sample = pipeline({"ct": volume_hu, "report": "..."})

Why windowing matters: a CT spans about −1000 HU (air) to +3000 HU (dense bone), but a screen and a network
see only a few hundred levels well. A *window* (centre, width) picks the HU range of one tissue class and maps
it to [0, 1]; everything outside saturates.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "WINDOWS", "window", "clip_and_scale", "minmax", "resample_to_spacing", "resize", "pad_or_crop",
    "split_into_frames", "Compose", "Window", "ClipAndScale", "MinMax", "Resize", "PadOrCrop", "SplitFrames",
]

#: Common CT display windows as (centre, width) in HU.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "abdomen": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}


def window(hu: np.ndarray, center: float | str, width: float | None = None) -> np.ndarray:
    """Map HU in [center − width/2, center + width/2] linearly to [0, 1], clipping outside.

    ``window(x, "lung")`` uses :data:`WINDOWS`. Example: mediastinum (40, 400) sends −160 HU → 0, 40 → 0.5, 240 → 1.
    """
    if isinstance(center, str):
        if center not in WINDOWS:
            raise KeyError(f"unknown window {center!r}; known: {', '.join(WINDOWS)}")
        center, width = WINDOWS[center]
    if width is None or width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    lo = center - width / 2.0
    return np.clip((np.asarray(hu, dtype=np.float32) - lo) / width, 0.0, 1.0)


def clip_and_scale(x: np.ndarray, lo: float, hi: float, out: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Clip to [lo, hi] and map linearly to ``out`` (Reg2RG: lo=−1000, hi=200 then (x+400)/600 is out=(−1, 1))."""
    if hi <= lo:
        raise ValueError(f"clip_and_scale needs lo < hi, got lo={lo}, hi={hi}")
    x = np.clip(np.asarray(x, dtype=np.float32), lo, hi)
    return (x - lo) / (hi - lo) * (out[1] - out[0]) + out[0]


def minmax(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Min–max normalisation to [0, 1] (μ²-LLM's preprocessing). A constant volume maps to zeros."""
    x = np.asarray(x, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / max(hi - lo, eps)


def resample_to_spacing(array: np.ndarray, spacing: Sequence[float], target_spacing: Sequence[float],
                        order: int = 1) -> np.ndarray:
    """Resample to a new voxel size (mm); the physical extent is kept, so the shape changes.

    Shape (n_0, n_1, n_2) with spacing s → round(n_i · s_i / t_i) voxels of size t. ``order`` 0 for masks
    (nearest neighbour keeps labels), 1 (trilinear) for intensities.
    """
    from scipy import ndimage

    if len(spacing) != array.ndim or len(target_spacing) != array.ndim:
        raise ValueError(f"spacing {spacing} / target {target_spacing} do not match a {array.ndim}-D array")
    if min(spacing) <= 0 or min(target_spacing) <= 0:
        raise ValueError(f"spacings must be positive, got {spacing} → {target_spacing}")
    new_shape = [max(1, int(round(n * s / t))) for n, s, t in zip(array.shape, spacing, target_spacing)]
    return resize(array, new_shape, order=order)


def resize(array: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """Resize to exactly ``shape`` by spline interpolation (aspect ratio is NOT kept: that is the point of it)."""
    from scipy import ndimage

    array = np.asarray(array)
    if len(shape) != array.ndim:
        raise ValueError(f"target shape {tuple(shape)} has {len(shape)} axes, array has {array.ndim}")
    factors = [t / n for t, n in zip(shape, array.shape)]
    out = ndimage.zoom(array.astype(np.float32) if order > 0 else array, factors, order=order, grid_mode=True,
                       mode="nearest")
    if out.shape != tuple(shape):  # zoom may round one voxel off; fix by pad/crop
        out = pad_or_crop(out, shape, value=float(out.min()) if out.size else 0.0)
    return out


def pad_or_crop(array: np.ndarray, shape: Sequence[int], value: float = 0.0) -> np.ndarray:
    """Centre-crop axes that are too long and pad (with ``value``) axes that are too short, to ``shape``."""
    array = np.asarray(array)
    if len(shape) != array.ndim:
        raise ValueError(f"target shape {tuple(shape)} has {len(shape)} axes, array has {array.ndim}")
    slices, pads = [], []
    for n, t in zip(array.shape, shape):
        if n >= t:
            start = (n - t) // 2
            slices.append(slice(start, start + t))
            pads.append((0, 0))
        else:
            slices.append(slice(0, n))
            before = (t - n) // 2
            pads.append((before, t - n - before))
    out = array[tuple(slices)]
    if any(p != (0, 0) for p in pads):
        out = np.pad(out, pads, mode="constant", constant_values=value)
    return out


def split_into_frames(volume: np.ndarray, k: int, pad_value: float | None = None) -> np.ndarray:
    """(D, H, W) → (T, k, H, W) with T = ceil(D / k); the last frame is padded with ``pad_value``.

    ``pad_value`` defaults to the volume's minimum (air after normalisation), so padding looks like empty space.
    This is how μ²-LLM feeds a CT of any depth to a tokenizer that sees ``k`` slices at a time.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"split_into_frames expects a (D, H, W) volume, got shape {volume.shape}")
    if k < 1:
        raise ValueError(f"frame size k must be ≥ 1, got {k}")
    depth = volume.shape[0]
    t = -(-depth // k)
    if pad_value is None:
        pad_value = float(volume.min())
    padded = np.full((t * k, *volume.shape[1:]), pad_value, dtype=volume.dtype)
    padded[:depth] = volume
    return padded.reshape(t, k, *volume.shape[1:])


# --------------------------------------------------------------------------------------------------------------
# Dictionary transforms: each reads ``keys`` from a sample dict and writes the result back under the same keys.


class _KeyTransform:
    """Apply ``fn`` to each key of a sample dict; missing keys fail loudly unless ``allow_missing``."""

    def __init__(self, keys: str | Iterable[str], allow_missing: bool = False):
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.allow_missing = allow_missing

    def fn(self, x):  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, sample: dict) -> dict:
        out = dict(sample)
        for key in self.keys:
            if key not in out or out[key] is None:
                if self.allow_missing:
                    continue
                where = f" (study {sample.get('study_id')})" if "study_id" in sample else ""
                raise KeyError(f"{type(self).__name__}: sample has no {key!r}{where}")
            out[key] = self.fn(out[key])
        return out

    def __repr__(self) -> str:
        args = {k: v for k, v in vars(self).items() if k not in ("keys", "allow_missing")}
        return f"{type(self).__name__}(keys={self.keys}, {args})"


class Window(_KeyTransform):
    def __init__(self, keys, center: float | str, width: float | None = None, **kw):
        super().__init__(keys, **kw)
        self.center, self.width = center, width

    def fn(self, x):
        return window(x, self.center, self.width)


class ClipAndScale(_KeyTransform):
    def __init__(self, keys, lo: float, hi: float, out: tuple[float, float] = (0.0, 1.0), **kw):
        super().__init__(keys, **kw)
        self.lo, self.hi, self.out = lo, hi, out

    def fn(self, x):
        return clip_and_scale(x, self.lo, self.hi, self.out)


class MinMax(_KeyTransform):
    def fn(self, x):
        return minmax(x)


class Resize(_KeyTransform):
    def __init__(self, keys, shape: Sequence[int], order: int = 1, **kw):
        super().__init__(keys, **kw)
        self.shape, self.order = tuple(shape), order

    def fn(self, x):
        return resize(x, self.shape, self.order)


class PadOrCrop(_KeyTransform):
    def __init__(self, keys, shape: Sequence[int], value: float = 0.0, **kw):
        super().__init__(keys, **kw)
        self.shape, self.value = tuple(shape), value

    def fn(self, x):
        return pad_or_crop(x, self.shape, self.value)


class SplitFrames(_KeyTransform):
    def __init__(self, keys, k: int, pad_value: float | None = None, **kw):
        super().__init__(keys, **kw)
        self.k, self.pad_value = k, pad_value

    def fn(self, x):
        return split_into_frames(x, self.k, self.pad_value)


class Compose:
    """Run transforms in order: ``Compose([t1, t2])(sample) == t2(t1(sample))``."""

    def __init__(self, transforms: Sequence[Callable[[dict], dict]]):
        self.transforms = list(transforms)

    def __call__(self, sample: dict) -> dict:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return "Compose([\n" + "".join(f"  {t!r},\n" for t in self.transforms) + "])"
