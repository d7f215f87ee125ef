"""Rule-based labelers: negation/uncertainty rules, hand-written real-style sentences, the world's true labels."""
from pathlib import Path

import numpy as np
import pytest

from rrg_lite.metrics.chexpert_labeler import CHEXPERT_LABELS, chexpert_mentions, label_reports_chexpert
from rrg_lite.metrics.ctrate_labeler import CTRATE_LABELS, binarize, label_reports_ctrate
from rrg_lite.metrics.labeler_eval import label_agreement, sentence_set_agreement

SENTENCES = Path(__file__).parent / "data" / "labeler_sentences.csv"


def code(text, label, labels=CHEXPERT_LABELS, fn=label_reports_chexpert):
    v = fn([text])[0][labels.index(label)]
    return "blank" if np.isnan(v) else int(v)


@pytest.mark.parametrize("text,label,expected", [
    ("The heart is enlarged.", "Cardiomegaly", 1),
    ("The heart is not enlarged.", "Cardiomegaly", 0),
    ("No evidence of pneumothorax.", "Pneumothorax", 0),
    ("Pneumothorax cannot be excluded.", "Pneumothorax", -1),
    ("No findings concerning for pneumonia.", "Pneumonia", 0),   # negation wins over uncertainty
    ("No change in the small left pleural effusion.", "Pleural Effusion", 1),  # pseudo-negation
    ("The endotracheal tube has been removed.", "Support Devices", 0),
    ("Resolved right middle lobe pneumonia.", "Pneumonia", 0),
    ("Opacity may represent atelectasis.", "Lung Opacity", 1),   # the hedge reaches only what follows
    ("Opacity may represent atelectasis.", "Atelectasis", -1),
    ("No pneumothorax, but there is a small effusion.", "Pleural Effusion", 1),  # "but" ends the negation
])
def test_rules_by_hand(text, label, expected):
    assert code(text, label) == expected


def test_aggregation_positive_beats_uncertain_beats_negative():
    assert code("No effusion. Possible small effusion.", "Pleural Effusion") == -1
    assert code("Possible effusion. Small left effusion.", "Pleural Effusion") == 1
    assert code("Nothing to see here.", "Pleural Effusion") == "blank"


def test_no_finding_is_derived():
    rows = label_reports_chexpert(["No acute cardiopulmonary process.", "Small effusion.",
                                   "Endotracheal tube in place. Lungs are clear."])
    nf = CHEXPERT_LABELS.index("No Finding")
    assert rows[0, nf] == 1 and np.isnan(rows[1, nf]) and rows[2, nf] == 1


def test_mentions_carry_attributes():
    (m,) = [m for m in chexpert_mentions("There is a large right pleural effusion, increased since the prior.")
            if m.label == "Pleural Effusion"]
    assert (m.status, m.laterality, m.severity, m.change) == (1, "right", 3, "worse")


def test_ctrate_style_sentences():
    assert code("Pleural effusion-thickening was not detected.", "Pleural effusion", CTRATE_LABELS,
                label_reports_ctrate) == 0
    assert code("No lymph node in pathological size and appearance was observed in the mediastinum.",
                "Lymphadenopathy", CTRATE_LABELS, label_reports_ctrate) == 0
    row = label_reports_ctrate(["Calcific atherosclerotic changes are observed in the aorta and coronary arteries."])[0]
    assert row[CTRATE_LABELS.index("Arterial wall calcification")] == 1
    assert row[CTRATE_LABELS.index("Coronary artery wall calcification")] == 1
    assert binarize(np.array([[1, -1, 0, np.nan]])).tolist() == [[1, 1, 0, 0]]
    assert binarize(np.array([[1, -1, 0, np.nan]]), "negative").tolist() == [[1, 0, 0, 0]]


def test_hand_written_sentence_set():
    per_label, rows = sentence_set_agreement(str(SENTENCES))
    assert rows["sentence"].nunique() >= 100
    print(per_label.to_string())
    assert rows["ok"].mean() >= 0.97
    assert (per_label["agreement"] >= 0.75).all()


def test_bad_input():
    with pytest.raises(TypeError, match="not a single string"):
        label_reports_chexpert("No effusion.")
    with pytest.raises(TypeError, match="report 1 is NoneType"):
        label_reports_chexpert(["ok", None])
    assert label_reports_chexpert([]).shape == (0, 14)
    # Vietnamese text: nothing recognised, flagged as non-English instead of silently "normal"
    from rrg_lite.metrics.chexpert_labeler import CHEXPERT_LABELER
    vi = "Tràn dịch màng phổi phải lượng ít. Không thấy tổn thương khu trú."
    row = label_reports_chexpert([vi])[0]
    assert np.isnan(row[:13]).all()
    assert CHEXPERT_LABELER.non_english([vi, "No effusion."]) == [0]


def test_world_reports_agree_with_true_labels():
    world = pytest.importorskip("rrg_lite.world.xray")
    from rrg_lite.world.ct import make_ct_study

    cxr = [world.make_xray_study(i) for i in range(80)]
    res = label_agreement(label_reports_chexpert([s.report.text() for s in cxr]),
                          np.array([s.labels for s in cxr], dtype=float), CHEXPERT_LABELS)
    assert res["micro_f1_binary"] >= 0.99, res
    ct = [make_ct_study(i) for i in range(40)]
    pred = binarize(label_reports_ctrate([s.report.text() for s in ct]))
    true = np.array([s.labels for s in ct]).astype(int)
    tp = (pred & true).sum()
    f1 = 2 * tp / (2 * tp + (pred & ~true.astype(bool)).sum() + (~pred.astype(bool) & true.astype(bool)).sum())
    assert f1 >= 0.99


def test_request_sections_are_skipped_with_or_without_newlines():
    for sep in ("\n\n", " "):
        t = sep.join(["INDICATION: Evaluate for pneumonia.", "COMPARISON: None.", "FINDINGS: Small left effusion.",
                      "IMPRESSION: Effusion."])
        row = label_reports_chexpert([t])[0]
        assert row[CHEXPERT_LABELS.index("Pleural Effusion")] == 1
        assert np.isnan(row[CHEXPERT_LABELS.index("Pneumonia")])
