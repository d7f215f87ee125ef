"""Clinical efficacy: micro / macro / example-based P, R, F1 by hand and against sklearn; uncertain conventions."""
import numpy as np
import pytest

from rrg_lite.metrics.chexpert_labeler import CHEXPERT_5, CHEXPERT_LABELS
from rrg_lite.metrics.clinical import clinical_efficacy, clinical_efficacy_reports

LABELS3 = ("A", "B", "C")


def test_by_hand():
    # report 1: pred {A, B}, ref {A}; report 2: pred {}, ref {C}
    pred = np.array([[1, 1, 0], [0, 0, np.nan]])
    ref = np.array([[1, 0, np.nan], [0, np.nan, 1]])
    out = clinical_efficacy(pred, ref, LABELS3)
    # micro: TP=1, FP=1, FN=1 -> P = R = F1 = 0.5
    assert out["micro-P-3"].value == 0.5 and out["micro-R-3"].value == 0.5 and out["micro-F1-3"].value == 0.5
    # macro F1: A: 1, B: 0 (FP only), C: 0 (FN only) -> 1/3
    assert abs(out["macro-F1-3"].value - 1 / 3) < 1e-12
    # example F1: report 1: 2*1/(2+1) = 2/3; report 2: 0 -> 1/3
    assert abs(out["example-F1-3"].value - 1 / 3) < 1e-12


def test_uncertain_conventions():
    pred = np.array([[-1.0, 0, 0]])
    ref = np.array([[1.0, 0, 0]])
    assert clinical_efficacy(pred, ref, LABELS3)["micro-F1-3"].value == 1.0
    assert clinical_efficacy(pred, ref, LABELS3, uncertain="negative")["micro-F1-3"].value == 0.0
    assert "uncertain as positive" in clinical_efficacy(pred, ref, LABELS3)["micro-F1-3"].convention


def test_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    pred = rng.choice([1.0, 0.0, -1.0, np.nan], size=(200, 14), p=[0.3, 0.3, 0.1, 0.3])
    ref = rng.choice([1.0, 0.0, -1.0, np.nan], size=(200, 14), p=[0.3, 0.3, 0.1, 0.3])
    out = clinical_efficacy(pred, ref, CHEXPERT_LABELS)
    yp, yr = ((pred == 1) | (pred == -1)).astype(int), ((ref == 1) | (ref == -1)).astype(int)
    for avg, key in (("micro", "micro"), ("macro", "macro"), ("samples", "example")):
        p, r, f, _ = sk.precision_recall_fscore_support(yr, yp, average=avg, zero_division=0)
        assert abs(out[f"{key}-P-14"].value - p) < 1e-12
        assert abs(out[f"{key}-R-14"].value - r) < 1e-12
        assert abs(out[f"{key}-F1-14"].value - f) < 1e-12
    five = clinical_efficacy(pred, ref, CHEXPERT_LABELS, subset=CHEXPERT_5)
    cols = [CHEXPERT_LABELS.index(c) for c in CHEXPERT_5]
    assert abs(five["micro-F1-5"].value - sk.f1_score(yr[:, cols], yp[:, cols], average="micro")) < 1e-12


def test_reports_and_bad_input():
    out = clinical_efficacy_reports(["The heart is not enlarged.", "Small left effusion."],
                                    ["The heart is enlarged.", "Small left effusion."])
    assert "CheXpert micro-F1-14" in out and "CheXpert micro-F1-5" in out
    assert out["CheXpert micro-R-14"].value == 0.5
    with pytest.raises(ValueError, match="differ in shape"):
        clinical_efficacy(np.zeros((2, 3)), np.zeros((3, 3)), LABELS3)
    with pytest.raises(ValueError, match="not among"):
        clinical_efficacy(np.zeros((2, 3)), np.zeros((2, 3)), LABELS3, subset=["Z"])
    with pytest.raises(ValueError, match="labeler must be"):
        clinical_efficacy_reports(["a"], ["b"], labeler="radgraph")
