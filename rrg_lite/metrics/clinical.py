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

__all__ = ["binarize", "prf_counts", "clinical_efficacy", "clinical_efficacy_reports", "micro_f1_from_binary",
           "per_label_prf", "harmonic_f1", "weighted_prf", "clinical_efficacy_weighted"]


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


# ---------------------------------------------------------------------------------------------------------------
# Support-weighted P / R and Reg2RG's two F1 conventions
# ---------------------------------------------------------------------------------------------------------------
# Per label l: P_l = TP_l / (TP_l + FP_l), R_l = TP_l / (TP_l + FN_l), F1_l = 2 TP_l / (2 TP_l + FP_l + FN_l), and
# the support n_l = TP_l + FN_l (reference positives). With weights w_l = n_l / Σ n:
#
#     P_w = Σ w_l P_l          R_w = Σ w_l R_l                                    (sklearn average="weighted")
#     F1 (paper)     = 2 P_w R_w / (P_w + R_w)       Reg2RG's tables: harmonic mean of the weighted P and R
#     F1 (evaluator) = Σ w_l F1_l                    Reg2RG's released evaluator, sklearn average="weighted"
#
# The two differ whenever the per-label P and R are not proportional (e.g. a label that is never predicted).
# Reg2RG's full model reads P .4257 R .1805 with the evaluator's F1 .2379, while its paper prints
# 2PR/(P+R) = .253; every row of its Table II is the harmonic mean of that row's P and R.

def _check_binary_pair(pred, ref, who: str) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape or pred.ndim != 2:
        raise ValueError(f"{who}: prediction {pred.shape} and reference {ref.shape} must be two (N, L) arrays "
                         "of one shape")
    for name, a in (("prediction", pred), ("reference", ref)):
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"{who}: the {name} array must be binary (0/1 or bool); binarise label codes first")
    return pred.astype(bool), ref.astype(bool)


def per_label_prf(pred: np.ndarray, ref: np.ndarray, zero_division: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-label precision, recall, F1 and support (reference positives) of binary (N, L) arrays -> four (L,)."""
    pred, ref = _check_binary_pair(pred, ref, "per_label_prf")
    tp, fp, fn = (x.sum(0) for x in prf_counts(pred, ref))
    p = _safe_div(tp, tp + fp, zero_division)
    r = _safe_div(tp, tp + fn, zero_division)
    f = _safe_div(2 * tp, 2 * tp + fp + fn, zero_division)
    return p, r, f, (tp + fn).astype(np.int64)


def harmonic_f1(precision: float, recall: float, zero_division: float = 0.0) -> float:
    """2PR / (P + R) — the F1 Reg2RG's paper prints, applied to its (weighted) P and R."""
    return float(_f1(precision, recall, zero_division))


def weighted_prf(pred: np.ndarray, ref: np.ndarray, zero_division: float = 0.0) -> dict[str, float]:
    """Support-weighted P and R of binary (N, L) arrays and F1 both ways (see the section comment).

    Returns ``{"P", "R", "F1_harmonic", "F1_weighted"}``. Labels without reference positives weigh 0; when no
    label has any, every value is ``zero_division`` (as sklearn).
    """
    p, r, f, n = per_label_prf(pred, ref, zero_division)
    total = n.sum()
    if total == 0:
        z = float(zero_division)
        return {"P": z, "R": z, "F1_harmonic": z, "F1_weighted": z}
    w = n / total
    wp, wr = float(w @ p), float(w @ r)
    return {"P": wp, "R": wr, "F1_harmonic": harmonic_f1(wp, wr, zero_division), "F1_weighted": float(w @ f)}


def _binary_from(values: np.ndarray, uncertain: str, threshold: float | None, who: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if threshold is not None:
        if np.isnan(values).any():
            raise ValueError(f"{who}: scores contain NaN; a classifier's probabilities cannot be blank")
        return values >= threshold
    known = np.isnan(values) | np.isin(values, (1.0, 0.0, -1.0))
    if not known.all():
        raise ValueError(f"{who}: values other than 1 / 0 / -1 / NaN (e.g. {values[~known][0]!r}) look like "
                         "classifier scores; pass threshold=0.5 (Reg2RG's) to binarise them")
    return binarize(values, uncertain).astype(bool)


def clinical_efficacy_weighted(pred: np.ndarray, ref: np.ndarray, labels: Sequence[str] = CTRATE_LABELS,
                               uncertain: str = "positive", threshold: float | None = None,
                               zero_division: float = 0.0, prefix: str = "") -> dict[str, MetricResult]:
    """Reg2RG's CE: support-weighted P and R over (by default) CT-RATE's 18 labels, and F1 both ways.

    Args:
        pred, ref: (N, L) label codes (1 / 0 / -1 / NaN, as :func:`binarize` reads them) or, with ``threshold``,
            classifier scores (CT-CLIP's RadBERT probabilities; score ≥ threshold is positive, the paper: 0.5).
        labels: the L column names. uncertain: how -1 counts (codes only). zero_division: value of 0/0.

    Returns ``{"weighted-P-L", "weighted-R-L", "F1-of-weighted-PR-L", "weighted-F1-L"}`` (L = number of
    labels): the paper's F1 is ``F1-of-weighted-PR``, the released evaluator's ``weighted-F1``.
    ``extra["per_label"]`` of each holds {label: (P, R, F1, support)}.
    """
    pred_b = _binary_from(pred, uncertain, threshold, "clinical_efficacy_weighted")
    ref_b = _binary_from(ref, uncertain, threshold, "clinical_efficacy_weighted")
    if pred_b.shape != ref_b.shape or pred_b.ndim != 2 or pred_b.shape[1] != len(labels):
        raise ValueError(f"clinical_efficacy_weighted: expected two (N, {len(labels)}) arrays, got prediction "
                         f"{pred_b.shape} and reference {ref_b.shape}")
    p, r, f, n = per_label_prf(pred_b, ref_b, zero_division)
    vals = weighted_prf(pred_b, ref_b, zero_division)
    k, N = len(labels), len(pred_b)
    how = (f"threshold {threshold} on scores" if threshold is not None else
           f"binary labels ({'uncertain as positive' if uncertain == 'positive' else 'uncertain as negative'}, "
           "blank as negative)")
    conv = f"{how} over {k} labels, weights = reference positives per label; zero_division={zero_division}"
    extra = {"per_label": {name: (float(a), float(b), float(c), int(d)) for name, a, b, c, d in
                           zip(labels, p, r, f, n)}, "labels": list(labels)}
    rows = (("weighted-P", vals["P"], "support-weighted precision"),
            ("weighted-R", vals["R"], "support-weighted recall"),
            ("F1-of-weighted-PR", vals["F1_harmonic"],
             "2PR/(P+R) of the weighted P and R (Reg2RG's paper tables)"),
            ("weighted-F1", vals["F1_weighted"],
             "support-weighted mean of per-label F1 (Reg2RG's released evaluator, sklearn average='weighted')"))
    return {f"{prefix}{name}-{k}": MetricResult(f"{prefix}{name}-{k}", v, f"{what}; {conv}", None, N, extra=extra)
            for name, v, what in rows}
