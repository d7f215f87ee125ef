"""Support-weighted P/R and Reg2RG's two F1 conventions (paper: harmonic of weighted P, R; code: weighted F1)."""
import numpy as np
import pytest

from rrg_lite.metrics.clinical import (
    clinical_efficacy_weighted,
    harmonic_f1,
    per_label_prf,
    weighted_prf,
)
from rrg_lite.world.vocab import CT_RATE_LABELS

# Three labels over four reports (rows = reports, columns = labels A, B, C):
#   A: reference [1,1,0,0], predicted [1,1,1,1] -> TP 2, FP 2, FN 0: P = 1/2, R = 1, F1 = 2/3, support 2
#   B: reference [0,0,1,0], predicted [0,0,0,0] -> TP 0, FP 0, FN 1: P = 0 (0/0), R = 0, F1 = 0, support 1
#   C: reference [0,0,0,1], predicted [0,0,0,1] -> TP 1:               P = 1,   R = 1, F1 = 1,   support 1
# weights 2/4, 1/4, 1/4:
#   P_w = 1/2·1/2 + 0 + 1/4·1 = 1/2          R_w = 1/2·1 + 0 + 1/4·1 = 3/4
#   paper F1 = 2·(1/2)(3/4) / (1/2 + 3/4) = (3/4) / (5/4) = 3/5 = 0.6
#   evaluator F1 = 1/2·2/3 + 0 + 1/4·1 = 1/3 + 1/4 = 7/12 ≈ 0.5833
REF = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
PRED = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1]])


def test_per_label_by_hand():
    p, r, f, n = per_label_prf(PRED, REF)
    assert np.allclose(p, [0.5, 0.0, 1.0]) and np.allclose(r, [1.0, 0.0, 1.0])
    assert np.allclose(f, [2 / 3, 0.0, 1.0]) and n.tolist() == [2, 1, 1]
    p1, *_ = per_label_prf(PRED, REF, zero_division=1.0)      # B was never predicted: 0/0 -> zero_division
    assert p1[1] == 1.0


def test_two_f1_conventions_by_hand_differ():
    out = weighted_prf(PRED, REF)
    assert out["P"] == pytest.approx(0.5) and out["R"] == pytest.approx(0.75)
    assert out["F1_harmonic"] == pytest.approx(0.6)             # the paper's
    assert out["F1_weighted"] == pytest.approx(7 / 12)          # the released evaluator's
    assert out["F1_harmonic"] != pytest.approx(out["F1_weighted"])


def test_against_sklearn_weighted():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(5):
        ref = rng.random((40, 18)) < rng.uniform(0.05, 0.5, 18)
        pred = rng.random((40, 18)) < rng.uniform(0.0, 0.5, 18)
        ref[:, 0] = False                                       # a label without support weighs 0
        pred[:, 1] = False                                      # a label never predicted: P = 0 (zero_division)
        p, r, f, _ = sk.precision_recall_fscore_support(ref, pred, average="weighted", zero_division=0)
        ours = weighted_prf(pred, ref)
        assert ours["P"] == pytest.approx(p) and ours["R"] == pytest.approx(r)
        assert ours["F1_weighted"] == pytest.approx(f)          # sklearn's weighted F1 = the evaluator's
    p, r, f, _ = sk.precision_recall_fscore_support(REF, PRED, average="weighted", zero_division=0)
    assert (p, r, f) == pytest.approx((0.5, 0.75, 7 / 12))


def test_paper_table_ii_f1_is_the_harmonic_mean_of_its_p_and_r():
    # Reg2RG Table II (RadGenome CE): every F1 is 2PR/(P+R) of the printed P and R (to rounding)
    rows = {"R2GenGPT": (.340, .066, .110), "MedVInT": (.377, .148, .212), "RadFM": (.382, .131, .195),
            "CT2Rep": (.317, .089, .139), "M3D": (.407, .090, .148), "Reg2RG": (.423, .181, .253)}
    for name, (p, r, f1) in rows.items():
        assert harmonic_f1(p, r) == pytest.approx(f1, abs=1.5e-3), name
    # the released evaluator's numbers for the full model: P .4257, R .1805 -> paper-style F1 .2535, not its .2379
    assert harmonic_f1(0.4257, 0.1805) == pytest.approx(0.2535, abs=1e-4)
    assert harmonic_f1(0.0, 0.0) == 0.0


def test_clinical_efficacy_weighted_results_and_conventions():
    labels = ("A", "B", "C")
    out = clinical_efficacy_weighted(PRED, REF, labels=labels)
    assert set(out) == {"weighted-P-3", "weighted-R-3", "F1-of-weighted-PR-3", "weighted-F1-3"}
    assert out["F1-of-weighted-PR-3"].value == pytest.approx(0.6)
    assert out["weighted-F1-3"].value == pytest.approx(7 / 12)
    assert "paper" in out["F1-of-weighted-PR-3"].convention and "evaluator" in out["weighted-F1-3"].convention
    assert out["weighted-P-3"].extra["per_label"]["A"] == pytest.approx((0.5, 1.0, 2 / 3, 2))
    # label codes: -1 counts as positive by default, as negative on request (B's reference becomes -1)
    codes = REF.astype(float)
    codes[2, 1] = -1
    assert clinical_efficacy_weighted(PRED, codes, labels=labels)["weighted-R-3"].value == pytest.approx(0.75)
    neg = clinical_efficacy_weighted(PRED, codes, labels=labels, uncertain="negative")
    # B has no support any more: weights 2/3, 0, 1/3 -> R_w = 2/3·1 + 1/3·1 = 1
    assert neg["weighted-R-3"].value == pytest.approx(1.0)
    # classifier scores with the paper's 0.5 threshold give the same as the binary arrays
    scores = np.where(PRED == 1, 0.8, 0.2)
    thr = clinical_efficacy_weighted(scores, REF * 0.9, labels=labels, threshold=0.5)
    assert thr["weighted-F1-3"].value == pytest.approx(7 / 12)
    # defaults: CT-RATE's 18 labels
    z = np.zeros((2, 18))
    assert set(clinical_efficacy_weighted(z, z)) == {f"{n}-18" for n in
                                                    ("weighted-P", "weighted-R", "F1-of-weighted-PR", "weighted-F1")}
    assert len(CT_RATE_LABELS) == 18


def test_no_support_gives_zero_division():
    z = np.zeros((3, 2), int)
    assert weighted_prf(z, z) == {"P": 0.0, "R": 0.0, "F1_harmonic": 0.0, "F1_weighted": 0.0}
    assert weighted_prf(z, z, zero_division=1.0)["F1_weighted"] == 1.0


def test_clear_errors():
    with pytest.raises(ValueError, match="one shape"):
        weighted_prf(PRED, REF[:2])
    with pytest.raises(ValueError, match="binary"):
        per_label_prf(PRED * 2, REF)
    with pytest.raises(ValueError, match="threshold=0.5"):
        clinical_efficacy_weighted(np.full((4, 3), 0.7), REF, labels=("A", "B", "C"))
    with pytest.raises(ValueError, match=r"\(N, 18\)"):
        clinical_efficacy_weighted(PRED, REF)
    with pytest.raises(ValueError, match="NaN"):
        clinical_efficacy_weighted(np.full((4, 3), np.nan), REF, labels=("A", "B", "C"), threshold=0.5)
