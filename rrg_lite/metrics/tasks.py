"""Metrics of the tasks around report generation: grounding boxes and region recognition.

* Grounding (M4CXR): IoU between predicted and true boxes ``[x1, y1, x2, y2]`` (x1 < x2, y1 < y2, any unit
  as long as both use the same one — M4CXR writes integers 0-100); **mIoU** = mean IoU over all samples;
  **accuracy@0.5** = share of samples with IoU >= 0.5. Boxes that cannot be parsed from text count IoU 0 and
  are counted in the notes.
* VQA (M4CXR's accuracy, recall, BLEU-1) is :mod:`rrg_lite.metrics.vqa`.
* Region recognition (Reg2RG): which regions a model names for its region reports, against the true ones;
  precision / recall / F1 over (sample, region) pairs (micro) or per region then averaged (macro).
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .result import MetricResult

__all__ = ["box_iou", "parse_box_text", "grounding_metrics", "region_recognition"]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes ``[x1, y1, x2, y2]``; degenerate (zero-area) boxes give 0 unless identical points."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != (4,) or b.shape != (4,):
        raise ValueError(f"boxes must be [x1, y1, x2, y2], got shapes {a.shape} and {b.shape}")
    for name, box in (("first", a), ("second", b)):
        if box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"{name} box {box.tolist()} has x2 < x1 or y2 < y1")
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


_BOX = re.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\]")


def parse_box_text(text: str) -> list[float] | None:
    """The first ``[x1,y1,x2,y2]`` in a model's answer, or None when there is none or it is inverted."""
    if not isinstance(text, str):
        return None
    m = _BOX.search(text)
    if not m:
        return None
    box = [float(v) for v in m.groups()]
    if box[2] < box[0] or box[3] < box[1]:
        return None
    return box


def grounding_metrics(pred_boxes, true_boxes, threshold: float = 0.5) -> dict[str, MetricResult]:
    """mIoU and accuracy@threshold. ``pred_boxes`` may be boxes or model answers (text with ``[x1,y1,x2,y2]``)."""
    pred_boxes, true_boxes = list(pred_boxes), list(true_boxes)
    if len(pred_boxes) != len(true_boxes):
        raise ValueError(f"grounding: {len(pred_boxes)} predicted boxes vs {len(true_boxes)} true boxes")
    ious, unparsed = np.zeros(len(true_boxes)), 0
    for i, (p, t) in enumerate(zip(pred_boxes, true_boxes)):
        box = parse_box_text(p) if isinstance(p, str) or p is None else p
        if box is None:
            unparsed += 1
            continue
        ious[i] = box_iou(box, t)
    notes = [f"{unparsed} predictions without a parseable box (IoU 0)"] if unparsed else []
    conv = "IoU of [x1,y1,x2,y2] boxes"
    return {
        "mIoU": MetricResult("mIoU", float(ious.mean()) if len(ious) else float("nan"), conv + ", mean over samples",
                             ious, len(ious), notes),
        f"Acc@{threshold}": MetricResult(f"Acc@{threshold}", float((ious >= threshold).mean()) if len(ious) else float("nan"),
                                         conv + f", share with IoU >= {threshold}", (ious >= threshold).astype(float),
                                         len(ious), list(notes)),
    }


def region_recognition(pred_regions, true_regions, average: str = "micro") -> dict[str, MetricResult]:
    """Precision / recall / F1 of recognised regions.

    Args:
        pred_regions, true_regions: per sample, a region name or a collection of region names.
        average: "micro" (over all (sample, region) pairs) or "macro" (per region, then mean over the regions
            that occur in either side).
    """
    pred_regions, true_regions = list(pred_regions), list(true_regions)
    if len(pred_regions) != len(true_regions):
        raise ValueError(f"region recognition: {len(pred_regions)} predictions vs {len(true_regions)} references")
    as_set = lambda x: {x.strip().lower()} if isinstance(x, str) else {str(v).strip().lower() for v in (x or [])}  # noqa: E731
    P, T = [as_set(x) for x in pred_regions], [as_set(x) for x in true_regions]
    if average == "micro":
        tp = sum(len(p & t) for p, t in zip(P, T))
        fp = sum(len(p - t) for p, t in zip(P, T))
        fn = sum(len(t - p) for p, t in zip(P, T))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    elif average == "macro":
        regions = sorted(set().union(*P, *T)) if P else []
        ps, rs, fs = [], [], []
        for g in regions:
            tp = sum(g in p and g in t for p, t in zip(P, T))
            fp = sum(g in p and g not in t for p, t in zip(P, T))
            fn = sum(g not in p and g in t for p, t in zip(P, T))
            ps.append(tp / (tp + fp) if tp + fp else 0.0)
            rs.append(tp / (tp + fn) if tp + fn else 0.0)
            fs.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        prec, rec, f1 = (float(np.mean(v)) if v else 0.0 for v in (ps, rs, fs))
    else:
        raise ValueError(f"average must be 'micro' or 'macro', got {average!r}")
    conv = f"{average} average over (sample, region) pairs" if average == "micro" else "macro average over regions"
    return {f"Region {k}": MetricResult(f"Region {k}", float(v), conv, None, len(P))
            for k, v in (("P", prec), ("R", rec), ("F1", f1))}
