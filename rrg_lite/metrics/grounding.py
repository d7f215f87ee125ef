"""Grounding metrics as M4CXR reports them (Sec. IV-C-2, Table V): IoU, mIoU, accuracy at IoU >= 0.5.

For boxes ``a = [x1, y1, x2, y2]`` and ``b`` (corners, x1 < x2, y1 < y2, one unit for both — M4CXR's 0–100)::

    I    = max(0, min(a_x2, b_x2) − max(a_x1, b_x1)) · max(0, min(a_y2, b_y2) − max(a_y1, b_y1))
    IoU  = I / (|a| + |b| − I)
    mIoU = mean over test samples of IoU(predicted, true)
    Acc  = share of test samples with IoU >= 0.5

The scalar IoU and the mIoU / Acc@t pair are the package's :func:`rrg_lite.metrics.tasks.box_iou` and
:func:`~rrg_lite.metrics.tasks.grounding_metrics`; this module adds what M4CXR's evaluation needs around them:

- :func:`grounding_results` reads the model's *answers*: the first valid 0–100 box of each answer
  (:func:`rrg_lite.data.boxes.parse_boxes`; tolerant of spaces and text around it). An answer without one counts
  IoU 0 and is counted in the notes — the official code gives IoU 0 too. One difference, named: the official code
  also gives 0 to an answer with more than one box (it splits on commas and needs exactly four fields); pass
  ``several="zero"`` for that, the default ``"first"`` scores the first box.
- :func:`pairwise_iou` — the (N, M) IoU matrix of two box sets (vectorised; for matching and for baselines).
- :func:`mean_box` / :func:`mean_box_baseline` — the chance baseline a chapter must beat: always answer the mean
  training box (overall, or per key such as the finding name, falling back to the overall mean).
"""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np

from rrg_lite.data.boxes import parse_boxes

from .result import MetricResult
from .tasks import box_iou, grounding_metrics

__all__ = ["box_iou", "pairwise_iou", "grounding_results", "mean_box", "mean_box_baseline"]


def _as_boxes(boxes, what: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=float)
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must be boxes [x1, y1, x2, y2] of shape (N, 4), got shape {arr.shape}")
    bad = np.nonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))[0]
    if bad.size:
        raise ValueError(f"{what}: box {int(bad[0])} {arr[bad[0]].tolist()} has x2 < x1 or y2 < y1")
    return arr


def pairwise_iou(a, b) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4) -> (N, M); zero-area unions give 0."""
    A, B = _as_boxes(a, "first boxes"), _as_boxes(b, "second boxes")
    iw = np.clip(np.minimum(A[:, None, 2], B[None, :, 2]) - np.maximum(A[:, None, 0], B[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(A[:, None, 3], B[None, :, 3]) - np.maximum(A[:, None, 1], B[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (A[:, 2] - A[:, 0]) * (A[:, 3] - A[:, 1])
    area_b = (B[:, 2] - B[:, 0]) * (B[:, 3] - B[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def grounding_results(preds, true_boxes, threshold: float = 0.5, several: str = "first") -> dict[str, MetricResult]:
    """mIoU and Acc@threshold of model answers (text) or boxes against the true boxes.

    Args:
        preds: per sample a model answer (str, e.g. ``"[12,30,45,70]."``), a box, or None (no answer).
        true_boxes: per sample the true box ``[x1, y1, x2, y2]`` on the same scale.
        several: an answer with more than one box: ``"first"`` scores its first box, ``"zero"`` scores 0
            (the official M4CXR evaluation).
    Returns ``{"mIoU": ..., "Acc@0.5": ...}`` with per-sample IoUs; notes count answers without a box and
    answers with several.
    """
    if several not in ("first", "zero"):
        raise ValueError(f"several must be 'first' or 'zero', got {several!r}")
    preds, true_boxes = list(preds), list(true_boxes)
    if len(preds) != len(true_boxes):
        raise ValueError(f"grounding: {len(preds)} predictions vs {len(true_boxes)} true boxes")
    parsed, n_several = [], 0
    for p in preds:
        if p is None or isinstance(p, str):
            boxes = parse_boxes(p) if isinstance(p, str) else []
            if len(boxes) > 1:
                n_several += 1
                parsed.append(None if several == "zero" else boxes[0])
            else:
                parsed.append(boxes[0] if boxes else None)
        else:
            parsed.append(list(p))
    out = grounding_metrics(parsed, true_boxes, threshold)
    for r in out.values():
        r.convention += "; answers parsed with data.boxes.parse_boxes (first valid 0–100 box)"
        if n_several:
            r.notes.append(f"{n_several} answers with several boxes ("
                           f"{'first box scored' if several == 'first' else 'scored 0, as the official code'})")
    return out


def mean_box(boxes) -> list[float]:
    """Coordinate-wise mean of boxes (N, 4) -> [x1, y1, x2, y2] (a valid box whenever the inputs are)."""
    arr = _as_boxes(boxes, "mean_box")
    if len(arr) == 0:
        raise ValueError("mean_box: no boxes")
    return arr.mean(axis=0).tolist()


def mean_box_baseline(train_boxes, test_boxes, threshold: float = 0.5,
                      train_keys: Sequence[Hashable] | None = None,
                      test_keys: Sequence[Hashable] | None = None) -> dict[str, MetricResult]:
    """Grounding scores of answering the mean training box for every test sample (a chance baseline).

    With ``train_keys``/``test_keys`` (e.g. finding names) the answer is the mean box of the training boxes with
    the same key, or the overall mean when the key was never seen in training (counted in the notes).
    """
    train = _as_boxes(train_boxes, "train_boxes")
    overall = mean_box(train)
    test = list(test_boxes)
    if (train_keys is None) != (test_keys is None):
        raise ValueError("mean_box_baseline: pass both train_keys and test_keys, or neither")
    if train_keys is None:
        preds = [overall] * len(test)
        unseen = 0
    else:
        train_keys, test_keys = list(train_keys), list(test_keys)
        if len(train_keys) != len(train) or len(test_keys) != len(test):
            raise ValueError(f"mean_box_baseline: {len(train_keys)} train keys for {len(train)} boxes, "
                             f"{len(test_keys)} test keys for {len(test)} boxes")
        per_key = {k: mean_box(train[[i for i, kk in enumerate(train_keys) if kk == k]]) for k in set(train_keys)}
        preds = [per_key.get(k, overall) for k in test_keys]
        unseen = sum(k not in per_key for k in test_keys)
    out = grounding_metrics(preds, test, threshold)
    how = "mean training box" + (" per key" if train_keys is not None else "")
    for r in out.values():
        r.name = f"{r.name} ({how})"
        r.convention += f"; baseline: every answer is the {how}"
        if unseen:
            r.notes.append(f"{unseen} test keys unseen in training got the overall mean box")
    return {k: v for k, v in out.items()}
