"""Collators: lists of sample dicts → batches of tensors, with padding for volumes of different depth.

:func:`collate_studies` handles the samples of :mod:`rrg_lite.data.datasets`:

* arrays of equal shape are stacked into one tensor;
* volumes of different depth (CT ``(D, H, W)``, frames ``(T, k, H, W)``, masks ``(R, D, H, W)``) are padded at the
  end of their first varying axis with ``pad_values[key]`` (default: the batch minimum, i.e. air after
  normalisation), and a bool ``<key>_mask`` says which positions are real;
* a key that is None in some samples (no lateral view, no prior) becomes a zero tensor there plus a bool
  ``<key>_present`` (B,) — LLM-RG4's "zeros for missing inputs";
* strings, dicts and lists stay Python lists.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def _pad_stack(arrays: list[np.ndarray], pad_value: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return torch.from_numpy(np.stack(arrays)), None
    ndims = {a.ndim for a in arrays}
    if len(ndims) != 1:
        raise ValueError(f"cannot batch arrays with different numbers of axes: {sorted(s for s in shapes)}")
    target = tuple(max(s[i] for s in shapes) for i in range(arrays[0].ndim))
    out = np.full((len(arrays), *target), pad_value, dtype=arrays[0].dtype)
    valid = np.zeros((len(arrays), *target), bool)
    for i, a in enumerate(arrays):
        sl = (i, *tuple(slice(0, n) for n in a.shape))
        out[sl] = a
        valid[sl] = True
    # one validity flag per position along the first axis is what models need (slices / frames)
    first_var = next(i for i in range(len(target)) if len({s[i] for s in shapes}) > 1)
    reduce_axes = tuple(j + 1 for j in range(len(target)) if j != first_var)
    return torch.from_numpy(out), torch.from_numpy(valid.any(axis=reduce_axes))


def collate_studies(batch: Sequence[dict], pad_values: dict[str, float] | None = None) -> dict[str, Any]:
    """Batch sample dicts (see module docstring). ``pad_values`` per key overrides the batch-minimum padding."""
    if not batch:
        raise ValueError("collate_studies got an empty batch")
    pad_values = pad_values or {}
    out: dict[str, Any] = {}
    keys = list(batch[0].keys())
    for key in keys:
        values = [b.get(key) for b in batch]
        arrays = [v for v in values if isinstance(v, (np.ndarray, torch.Tensor))]
        if arrays and len(arrays) == len(values):
            arrs = [np.asarray(v) for v in values]
            pad = pad_values.get(key, float(min(a.min() for a in arrs)) if arrs[0].dtype != bool else False)
            out[key], valid = _pad_stack(arrs, pad)
            if valid is not None:
                out[f"{key}_mask"] = valid
        elif arrays:   # some samples lack it (None): zeros + presence flag
            ref = np.asarray(arrays[0])
            if any(np.asarray(a).shape != ref.shape for a in arrays):
                raise ValueError(f"key {key!r}: present arrays differ in shape; resize them in the transform first")
            filled = [np.asarray(v) if v is not None else np.zeros_like(ref) for v in values]
            out[key] = torch.from_numpy(np.stack(filled))
            out[f"{key}_present"] = torch.tensor([v is not None for v in values])
        elif all(isinstance(v, (int, float, np.number)) for v in values):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out
