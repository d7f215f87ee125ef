"""Controlled-error pairs: each perturbation makes the one change it names."""
import numpy as np

from rrg_lite.metrics.chexpert_labeler import CHEXPERT_LABELS, label_reports_chexpert
from rrg_lite.metrics.perturb import KINDS, controlled_pairs, perturb, score_pairs_table

REF = "There is a small left pleural effusion. The heart is enlarged. No pneumothorax."


def test_each_kind_changes_what_it_says():
    rng = np.random.default_rng(0)
    eff, card = CHEXPERT_LABELS.index("Pleural Effusion"), CHEXPERT_LABELS.index("Cardiomegaly")
    neg = perturb(REF, "negate", rng)
    row = label_reports_chexpert([neg])[0]
    assert (row[eff], row[card]).count(0) == 1  # exactly one positive finding negated
    assert "right" in perturb(REF, "laterality", np.random.default_rng(0))
    assert "large" in perturb(REF, "severity", np.random.default_rng(0))
    assert len(perturb(REF, "omit", rng)) < len(REF)
    comp = perturb(REF, "comparison", rng)
    assert comp.startswith(REF) and ("prior" in comp or "previous" in comp)
    assert perturb("Lungs are clear.", "laterality", rng) is None


def test_pairs_are_seeded_and_scored():
    a = controlled_pairs([REF, "Mild cardiomegaly. Right basilar atelectasis."], seed=3)
    b = controlled_pairs([REF, "Mild cardiomegaly. Right basilar atelectasis."], seed=3)
    assert a == b and {p["kind"] for p in a} <= set(KINDS)
    df = score_pairs_table([p["cand"] for p in a], [p["ref"] for p in a], [p["kind"] for p in a],
                           bertscore_model=None, use_meteor=False)
    assert {"BLEU-4", "ROUGE-L", "CE example-F1", "GREEN (offline)", "kind"} <= set(df.columns)
    para = df[df.kind == "paraphrase"]["GREEN (offline)"].mean()
    negated = df[df.kind == "negate"]["GREEN (offline)"].mean()
    assert para > negated
