"""Grounding, VQA, region recognition, hallucination rate, lengths, significance tests, BERTScore, score_reports."""
import numpy as np
import pytest

from rrg_lite.metrics.hallucination import detect_input_agnostic, hallucination_rate
from rrg_lite.metrics.lengths import length_kl
from rrg_lite.metrics.nlg import bleu
from rrg_lite.metrics.significance import approximate_randomization, bootstrap_ci, paired_bootstrap
from rrg_lite.metrics.tasks import box_iou, grounding_metrics, parse_box_text, region_recognition
from rrg_lite.metrics.vqa import vqa_scores


def test_iou_by_hand():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == 50 / 150
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    with pytest.raises(ValueError, match="x2 < x1"):
        box_iou([5, 0, 1, 1], [0, 0, 1, 1])
    assert parse_box_text("The opacity is at [10, 20, 30, 40].") == [10, 20, 30, 40]
    assert parse_box_text("no box") is None
    out = grounding_metrics(["[0,0,10,10]", "[5,0,15,10]", "nothing"], [[0, 0, 10, 10]] * 3)
    assert abs(out["mIoU"].value - (1 + 1 / 3) / 3) < 1e-12
    assert abs(out["Acc@0.5"].value - 1 / 3) < 1e-12 and "1 predictions without" in out["mIoU"].notes[0]


def test_vqa_by_hand():
    out = vqa_scores(["Yes.", "left lower lobe", "right"], ["yes", "left lower lobe", "left upper lobe"])
    assert abs(out["VQA accuracy"].value - 2 / 3) < 1e-12
    assert abs(out["VQA recall"].value - (1 + 1 + 0) / 3) < 1e-12
    # BLEU-1 of "right" vs "left upper lobe": 0 matches; the others are exact copies -> ~1
    assert abs(out["VQA BLEU-1"].per_example[1] - 1.0) < 1e-6 and out["VQA BLEU-1"].per_example[2] < 1e-6


def test_region_recognition():
    out = region_recognition([["lung", "heart"], "pleura"], [["lung"], "bone"])
    # micro: TP=1 (lung), FP=2 (heart, pleura), FN=1 (bone)
    assert out["Region P"].value == 1 / 3 and out["Region R"].value == 1 / 2
    assert abs(out["Region F1"].value - 2 / 5) < 1e-12
    with pytest.raises(ValueError, match="average"):
        region_recognition(["a"], ["a"], average="weighted")


def test_hallucination():
    flags = detect_input_agnostic("Compared with the prior study, the effusion is unchanged. Discussed with Dr. Smith "
                                  "at 10:30. PA and lateral views of the chest.")
    assert flags == {"comparison": True, "prior_procedure": False, "view": True, "communication": True}
    out = hallucination_rate(["Small left effusion.", "The patient has undergone VATS decortication.",
                              "Stable cardiomegaly."])
    assert abs(out["hall."].value - 2 / 3) < 1e-12
    assert out["hall. comparison"].value == 1 / 3
    assert hallucination_rate(["Stable cardiomegaly."], allowed=("comparison",))["hall."].value == 0.0


def test_lengths():
    same = length_kl(["a b c", "a b c d"] * 10, ["x y z", "x y z w"] * 10)
    diff = length_kl(["a"] * 20, ["x y z w v u t s r q"] * 20)
    assert same.value < 1e-9 and diff.value > 1.0


def test_bootstrap_and_randomization():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 300)
    b = a + 0.05
    ci = bootstrap_ci(a, n_boot=300, seed=1)
    assert ci["low"] < a.mean() < ci["high"]
    assert bootstrap_ci(a, n_boot=300, seed=1) == ci  # seeded
    pb = paired_bootstrap(a, b, n_boot=300)
    assert abs(pb["delta"] - 0.05) < 1e-12 and pb["low"] > 0 and pb["p_value"] < 0.01
    ar = approximate_randomization(a, b, trials=300)
    assert ar["p_value"] < 0.01
    ar0 = approximate_randomization(a, a + rng.normal(0, 0.1, 300), trials=300)
    assert ar0["p_value"] > 0.01


def test_bootstrap_on_corpus_bleu():
    preds = ["the heart is enlarged", "no effusion", "small left effusion", "lungs are clear"] * 20
    refs = ["the heart is not enlarged", "no pleural effusion", "small left pleural effusion", "clear lungs"] * 20
    res = bleu(preds, refs)["BLEU-4"]
    ci = bootstrap_ci(res, n_boot=200)
    assert abs(ci["value"] - res.value) < 1e-12 and ci["low"] <= res.value <= ci["high"]


def test_score_reports_all_offline(monkeypatch):
    from rrg_lite.metrics import nlg
    from rrg_lite.metrics.report import score_reports

    monkeypatch.setattr(nlg.shutil, "which", lambda name: None)  # no Java: METEOR skipped, the rest runs
    preds = ["The heart is enlarged. No effusion.", "Possible small right pneumothorax.", ""]
    refs = ["The heart is not enlarged. No effusion.", "Small right pneumothorax.", "Lungs are clear."]
    out = score_reports(preds, refs)
    assert "METEOR" not in out and "METEOR" in out["_skipped"].notes[0]
    for key in ("BLEU-4", "ROUGE-L", "CIDEr", "ROUGE-1", "CheXpert micro-F1-14", "GREEN (offline)", "hall.", "length KL"):
        assert key in out and out[key].convention
    vi = score_reports(["Tràn dịch màng phổi phải lượng ít."], ["Không thấy tràn dịch màng phổi."])
    assert any("non-English" in n for n in vi["BLEU-4"].notes)
    with pytest.raises(ValueError, match="unknown metrics"):
        score_reports(preds, refs, metrics=("radgraph",))


@pytest.mark.slow
def test_bertscore_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from rrg_lite.metrics.bertscore import bert_score

    res = bert_score(["the heart is enlarged", "no effusion"], ["the heart is enlarged", "large effusion"])
    assert abs(res.per_example[0] - 1.0) < 1e-4 and res.per_example[1] < 0.99
    assert "MiniLM" in res.convention and "not rescaled" in res.convention
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        bert_score(["a"], ["b"], model="radeval")
