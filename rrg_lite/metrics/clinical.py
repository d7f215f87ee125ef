"""Clinical efficacy (CE): precision / recall / F1 between the labels of generated and reference reports.

"F1" in an RRG paper can mean three different averages (M4CXR defines all three):

* **micro** (mF1): true/false positives and false negatives summed over all labels and reports, then P/R/F1;
* **macro** (MF1): P/R/F1 per label, then the plain mean over labels (a label with no positives in either
  reports gets 0, sklearn's ``zero_division=0``);
* **example-based** (eF1): P/R/F1 per report, then the mean over reports (sklearn ``average="samples"``;
  a report with no positive label in either prediction or reference gets ``zero_division``, 0 by default).

...over the 14 CheXpert labels ("-14") or the 5-label subset ("-5": cardiomegaly, edema, consolidation,
atelectasis, pleural effusion), or CT-RATE's 18. The labels are binarised first, and the **uncertain**
(-1) label is a convention of its own:

* ``uncertain="positive"`` (**default**): -1 counts as 1 — what ``f1chexbert`` does in its "rrg" mode, which
  RadEval and most LLM-based RRG papers (LLM-RG4 via Jin et al. 2024) report;
* ``uncertain="negative"``: -1 counts as 0 — M4CXR: "all non-positive classes are treated as negative".

Blank (NaN) and negative (0) are always 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .chexpert_labeler import CHEXPERT_5, CHEXPERT_LABELS, label_reports_chexpert
from .ctrate_labeler import CTRATE_LABELS, binarize, label_reports_ctrate
from .result import MetricResult
from .text import check_pairs

__all__ = ["binarize", "prf_counts", "clinical_efficacy", "clinical_efficacy_reports", "micro_f1_from_binary"]


def _safe_div(a, b, zero: float = 0.0):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    out = np.full(np.broadcast(a, b).shape, zero, dtype=float)
    np.divide(a, b, out=out, where=b != 0)
    return out


def prf_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-(report, label) true positives, false positives, false negatives of binary (N, L) arrays."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    return pred & ref, pred & ~ref, ~pred & ref


def _f1(p, r, zero=0.0):
    return _safe_div(2 * p * r, p + r, zero)


def micro_f1_from_binary(pred: np.ndarray, ref: np.ndarray) -> float:
    """Micro F1 of binary (N, L) arrays (used for resampling)."""
    tp, fp, fn = (x.sum() for x in prf_counts(pred, ref))
    return float(_safe_div(2 * tp, 2 * tp + fp + fn))


def clinical_efficacy(pred_codes: np.ndarray, ref_codes: np.ndarray, labels: Sequence[str] = CHEXPERT_LABELS,
                      subset: Sequence[str] | None = None, uncertain: str = "positive", zero_division: float = 0.0,
                      prefix: str = "") -> dict[str, MetricResult]:
    """P/R/F1 micro, macro and example-based from label codes.

    Args:
        pred_codes, ref_codes: (N, L) arrays with 1 / 0 / -1 / NaN (a labeler's output) or already binary.
        labels: names of the L columns.
        subset: evaluate only these labels (e.g. :data:`CHEXPERT_5`).
        uncertain: "positive" (default) or "negative" — how -1 is counted (see the module docstring).
        zero_division: value of an undefined ratio (0/0), as sklearn's argument.
        prefix: put in front of the result names, e.g. "CheXpert " -> "CheXpert micro-F1-14".

    Returns:
        ``{"micro-P-14", "micro-R-14", "micro-F1-14", "macro-...", "example-..."}`` plus ``"per-label-F1-14"``
        (value = macro F1, ``extra["per_label"]`` = {label: F1}); the suffix is the number of labels.
    """
    pred_codes = np.asarray(pred_codes, dtype=float)
    ref_codes = np.asarray(ref_codes, dtype=float)
    if pred_codes.shape != ref_codes.shape:
        raise ValueError(f"clinical_efficacy: prediction labels {pred_codes.shape} and reference labels "
                         f"{ref_codes.shape} differ in shape")
    if pred_codes.ndim != 2 or pred_codes.shape[1] != len(labels):
        raise ValueError(f"clinical_efficacy: expected (N, {len(labels)}) label arrays, got {pred_codes.shape}")
    cols = list(range(len(labels)))
    if subset is not None:
        missing = [s for s in subset if s not in labels]
        if missing:
            raise ValueError(f"clinical_efficacy: subset labels {missing} are not among {list(labels)}")
        cols = [list(labels).index(s) for s in subset]
    names = [labels[c] for c in cols]
    pred = binarize(pred_codes[:, cols], uncertain).astype(bool)
    ref = binarize(ref_codes[:, cols], uncertain).astype(bool)
    tp, fp, fn = prf_counts(pred, ref)
    k = len(cols)
    conv = (f"binary labels ({'uncertain as positive' if uncertain == 'positive' else 'uncertain as negative'}, "
            f"blank as negative) over {k} labels; zero_division={zero_division}")
    out: dict[str, MetricResult] = {}
    n = len(pred)
    # micro: sum everything first
    TP, FP, FN = tp.sum(), fp.sum(), fn.sum()
    mp, mr = float(_safe_div(TP, TP + FP, zero_division)), float(_safe_div(TP, TP + FN, zero_division))
    mf = float(_safe_div(2 * TP, 2 * TP + FP + FN, zero_division))
    extra = {"pred": pred, "ref": ref, "labels": names}
    for name, v in (("P", mp), ("R", mr), ("F1", mf)):
        out[f"{prefix}micro-{name}-{k}"] = MetricResult(f"{prefix}micro-{name}-{k}", v, "micro average; " + conv, None, n,
                                                         extra=extra)
    # macro: per label then mean
    lp = _safe_div(tp.sum(0), tp.sum(0) + fp.sum(0), zero_division)
    lr = _safe_div(tp.sum(0), tp.sum(0) + fn.sum(0), zero_division)
    lf = _safe_div(2 * tp.sum(0), 2 * tp.sum(0) + fp.sum(0) + fn.sum(0), zero_division)
    for name, v in (("P", lp), ("R", lr), ("F1", lf)):
        out[f"{prefix}macro-{name}-{k}"] = MetricResult(f"{prefix}macro-{name}-{k}", float(v.mean()),
                                                         "macro average (per label, then mean); " + conv, None, n,
                                                         extra={**extra, "per_label": dict(zip(names, v.tolist()))})
    # example-based: per report then mean
    ep = _safe_div(tp.sum(1), tp.sum(1) + fp.sum(1), zero_division)
    er = _safe_div(tp.sum(1), tp.sum(1) + fn.sum(1), zero_division)
    ef = _safe_div(2 * tp.sum(1), 2 * tp.sum(1) + fp.sum(1) + fn.sum(1), zero_division)
    for name, v in (("P", ep), ("R", er), ("F1", ef)):
        out[f"{prefix}example-{name}-{k}"] = MetricResult(f"{prefix}example-{name}-{k}", float(v.mean()) if n else float("nan"),
                                                           "example-based (per report, then mean); " + conv, v, n)
    return out


def clinical_efficacy_reports(preds, refs, labeler: str = "chexpert", uncertain: str = "positive",
                              on_none: str = "error") -> dict[str, MetricResult]:
    """Label both sides with a rule-based labeler, then :func:`clinical_efficacy`.

    ``labeler="chexpert"`` gives the 14-label and 5-label numbers (as M4CXR's mF1-14, mF1-5, MF1-14, MF1-5,
    eF1-14); ``labeler="ctrate"`` the 18 CT-RATE labels (as Reg2RG's P/R/F1, which are micro-averaged here).
    """
    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    if labeler == "chexpert":
        lp, lr = label_reports_chexpert(p), label_reports_chexpert(r)
        out = clinical_efficacy(lp, lr, CHEXPERT_LABELS, None, uncertain, prefix="CheXpert ")
        out.update(clinical_efficacy(lp, lr, CHEXPERT_LABELS, CHEXPERT_5, uncertain, prefix="CheXpert "))
        what = "rule-based CheXpert labeler (offline stand-in for CheXbert)"
    elif labeler == "ctrate":
        lp, lr = label_reports_ctrate(p), label_reports_ctrate(r)
        out = clinical_efficacy(lp, lr, CTRATE_LABELS, None, uncertain, prefix="CT-RATE ")
        what = "rule-based CT-RATE labeler (offline stand-in for CT-CLIP's RadBERT classifier)"
    else:
        raise ValueError(f"labeler must be 'chexpert' or 'ctrate', got {labeler!r}")
    for res in out.values():
        res.convention = f"{what}; {res.convention}"
        res.notes.extend(notes)
    return out
