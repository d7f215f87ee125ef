"""M4CXR's metrics: grounding IoU / mIoU / Acc@0.5, VQA accuracy / recall / BLEU-1, report NLG, turn-1 F1."""

import numpy as np
import pytest

from rrg_lite.metrics.grounding import box_iou, grounding_results, mean_box, mean_box_baseline, pairwise_iou
from rrg_lite.metrics.result import MetricResult
from rrg_lite.metrics.text import normalize_m4cxr
from rrg_lite.metrics.vqa import bleu1, exact_match, normalize_answer, token_recall, vqa_scores, wordpunct
from rrg_lite.systems.m4cxr.evaluation import report_nlg, turn1_codes, turn1_scores
from rrg_lite.world.vocab import CHEXPERT_LABELS


# ---- grounding ---------------------------------------------------------------------------------------------------
def test_iou_by_hand():
    # overlap 5×10 = 50, union 100 + 100 − 50 = 150
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    # overlap 2×2 = 4, union 16 + 16 − 4 = 28
    assert box_iou([0, 0, 4, 4], [2, 2, 6, 6]) == pytest.approx(1 / 7)


def test_pairwise_iou_matrix_by_hand():
    a = [[0, 0, 10, 10], [0, 0, 4, 4]]
    b = [[5, 0, 15, 10], [2, 2, 6, 6], [20, 20, 30, 30]]
    # [0,0,10,10] vs [2,2,6,6]: the small box lies inside, 16 / 100
    expected = [[1 / 3, 16 / 100, 0.0], [0.0, 1 / 7, 0.0]]
    np.testing.assert_allclose(pairwise_iou(a, b), expected, atol=1e-12)
    assert pairwise_iou([1, 1, 1, 1], [1, 1, 1, 1]).tolist() == [[0.0]]        # zero-area union -> 0
    for x, y in [([[0, 0, 1, 1]], [[0, 0, 2, 2]]), ([[3, 1, 9, 4]], [[2, 2, 5, 8]])]:
        assert pairwise_iou(x, y)[0, 0] == pytest.approx(box_iou(x[0], y[0]))
    with pytest.raises(ValueError, match=r"box 0 \[5.0, 0.0, 1.0, 1.0\] has x2 < x1"):
        pairwise_iou([[5, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        pairwise_iou([[0, 0, 1], [0, 0, 1]], [[0, 0, 1, 1]])


def test_grounding_results_from_answers_by_hand():
    answers = ["[0,0,10,10].", "Yes. [ 5, 0,15,10 ]", "no idea", "[0,0,4,4], [50,50,60,60]"]
    true = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4]]
    out = grounding_results(answers, true)
    # IoUs 1, 1/3, 0 (no box), 1 (first box): mIoU = (7/3) / 4 = 7/12; Acc@0.5 = 2/4
    assert isinstance(out["mIoU"], MetricResult)
    assert out["mIoU"].value == pytest.approx(7 / 12) and out["Acc@0.5"].value == 0.5
    np.testing.assert_allclose(out["mIoU"].per_example, [1, 1 / 3, 0, 1])
    assert any("1 predictions without a parseable box" in n for n in out["mIoU"].notes)
    assert any("1 answers with several boxes" in n for n in out["mIoU"].notes)
    # the official code scores an answer with several boxes as 0: IoUs 1, 1/3, 0, 0
    strict = grounding_results(answers, true, several="zero")
    assert strict["mIoU"].value == pytest.approx(1 / 3) and strict["Acc@0.5"].value == 0.25
    # boxes (not text) pass straight through
    assert grounding_results([[0, 0, 10, 10]], [[5, 0, 15, 10]])["mIoU"].value == pytest.approx(1 / 3)


def test_grounding_errors():
    with pytest.raises(ValueError, match="2 predictions vs 1 true boxes"):
        grounding_results(["[0,0,1,1]", "x"], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="several"):
        grounding_results([], [], several="mean")


def test_mean_box_baseline_by_hand():
    train = [[0, 0, 10, 10], [10, 10, 20, 20]]
    assert mean_box(train) == [5, 5, 15, 15]
    # answer [5,5,15,15]: IoU 1 with itself; with [0,0,10,10] overlap 25, union 175 -> 1/7
    out = mean_box_baseline(train, [[5, 5, 15, 15], [0, 0, 10, 10]])
    assert out["mIoU"].value == pytest.approx((1 + 1 / 7) / 2) and out["Acc@0.5"].value == 0.5
    assert "mean training box" in out["mIoU"].name
    # per key: "a" answers its own mean [0,0,10,10] (IoU 1); unseen "c" falls back to the overall mean (1/7)
    keyed = mean_box_baseline(train, [[0, 0, 10, 10], [0, 0, 10, 10]], train_keys=["a", "b"], test_keys=["a", "c"])
    assert keyed["mIoU"].value == pytest.approx((1 + 1 / 7) / 2)
    assert any("1 test keys unseen" in n for n in keyed["mIoU"].notes)
    with pytest.raises(ValueError, match="both train_keys and test_keys"):
        mean_box_baseline(train, train, train_keys=["a", "b"])
    with pytest.raises(ValueError, match="no boxes"):
        mean_box(np.zeros((0, 4)))


# ---- VQA ---------------------------------------------------------------------------------------------------------
PREDS = ["Yes.", "left lower lobe", "right", "The 1.5 cm nodule."]
REFS = ["yes", "left upper lobe", "left upper lobe", "1.5 cm"]


def test_normalisation_and_wordpunct():
    assert normalize_answer("  Yes. ") == "yes"
    assert normalize_answer("The 1.5 cm nodule.") == "the 15 cm nodule"        # every "." goes, as the official code
    assert wordpunct("no effusion...(stable).") == ["no", "effusion", "...(", "stable", ")."]
    try:
        from nltk.tokenize import wordpunct_tokenize
    except ImportError:  # pragma: no cover - nltk is optional
        return
    for s in ["no effusion...(stable).", "ET tube 4.5 cm above the carina;", "a--b  c!!d", "¿qué? 3/4 '' x"]:
        assert wordpunct(s) == wordpunct_tokenize(s)


def test_vqa_by_hand():
    out = vqa_scores(PREDS, REFS)
    # exact match: only "yes" == "yes"
    assert out["VQA accuracy"].value == pytest.approx(1 / 4)
    # recall: 1, {left, lobe} of {left, upper, lobe} = 2/3, 0, {15, cm} of {15, cm} = 1 -> (8/3) / 4
    np.testing.assert_allclose(out["VQA recall"].per_example, [1, 2 / 3, 0, 1])
    assert out["VQA recall"].value == pytest.approx(2 / 3)
    # BLEU-1: 1; 2/3 matched, equal length; 0 matched; "the 15 cm nodule" vs "15 cm": 2/4, longer so no penalty
    np.testing.assert_allclose(out["VQA BLEU-1"].per_example, [1, 2 / 3, 0, 1 / 2], atol=1e-6)
    assert out["VQA BLEU-1"].value == pytest.approx(13 / 24, abs=1e-6)
    assert all(r.n == 4 for r in out.values())


def test_recall_counts_distinct_words():
    # reference words {left, lung}: "left" covers 1 of 2 (counting the repeat would give 2 of 3)
    assert token_recall(["left"], ["left left lung"]).value == pytest.approx(1 / 2)
    assert token_recall(["lung left"], ["left left lung"]).value == 1.0


def test_bleu1_equals_one_official_call_per_sample():
    from pycocoevalcap.bleu.bleu import Bleu

    rng = np.random.default_rng(0)
    words = ["left", "right", "lower", "upper", "lobe", "yes", "no", "effusion", "small", "."]
    preds = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(25)]
    refs = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(25)]
    ours = bleu1(preds, refs).per_example
    for i, (p, r) in enumerate(zip(preds, refs)):
        tp, tr = " ".join(wordpunct(normalize_answer(p))), " ".join(wordpunct(normalize_answer(r)))
        if not tp:  # pycocoevalcap cannot score an empty hypothesis on its own either way; both give ~0
            continue
        score, _ = Bleu(1).compute_score({0: [tr]}, {0: [tp]}, verbose=0)
        assert ours[i] == pytest.approx(score[0], abs=1e-12)


def test_vqa_errors():
    with pytest.raises(ValueError, match="differ in length"):
        exact_match(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        exact_match([], [])
    with pytest.raises(ValueError, match=r"reference 0 has no words"):
        token_recall(["x"], ["..."])
    with pytest.raises(ValueError, match="None"):
        bleu1([None], ["yes"])


# ---- report NLG convention and CoT turn 1 --------------------------------------------------------------------------
def test_m4cxr_tokenisation_keeps_punctuation_runs():
    # NLTK's wordpunct: a run of punctuation stays one token ("...", ").")
    assert normalize_m4cxr("No effusion... (Stable).") == "no effusion ... ( stable )."


def test_report_nlg_by_hand():
    out = report_nlg(["The heart is normal."], ["The heart is enlarged."])
    # tokens: the heart is normal .  /  the heart is enlarged .  -> 4 of 5 unigrams match, equal lengths
    assert out["BLEU-1"].value == pytest.approx(4 / 5, abs=1e-6)
    # LCS "the heart is ." = 4: P = R = 4/5, so the F-measure is 4/5 whatever beta
    assert out["ROUGE-L"].value == pytest.approx(4 / 5, abs=1e-6)
    assert "m4cxr" in out["BLEU-4"].convention


def test_turn1_codes_and_no_finding():
    codes = turn1_codes(["atelectasis, support devices.", "Not found.", "support devices.", "Edema"])
    L = [l.lower() for l in CHEXPERT_LABELS]
    at, sd, nf, ed = L.index("atelectasis"), L.index("support devices"), L.index("no finding"), L.index("edema")
    assert codes.shape == (4, 14)
    assert codes[0, at] == codes[0, sd] == 1 and codes[0, nf] == 0
    assert codes[1].sum() == 1 and codes[1, nf] == 1             # nothing named -> No Finding
    assert codes[2, sd] == 1 and codes[2, nf] == 1               # devices alone still "no finding" (official rule)
    assert codes[3, ed] == 1 and codes[3, nf] == 0


def test_turn1_scores_by_hand_with_uncertain_as_negative():
    L = [l.lower() for l in CHEXPERT_LABELS]
    ref = np.zeros((2, 14))
    ref[0, L.index("atelectasis")] = 1
    ref[0, L.index("pleural effusion")] = 1
    ref[1, L.index("no finding")] = 1
    ref[1, L.index("edema")] = -1                   # uncertain counts as negative (the paper's convention)
    out = turn1_scores(["atelectasis, support devices.", "Not found."], ref)
    # TP: atelectasis, no finding (row 2); FP: support devices; FN: pleural effusion -> F1 = 2·2 / (2·2 + 1 + 1)
    assert out["turn-1 micro-F1-14"].value == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"must be \(2, 14\)"):
        turn1_scores(["a", "b"], np.zeros((2, 13)))
    with pytest.raises(ValueError, match="not CheXpert labels"):
        turn1_codes(["x"], candidates=["nodule"])
