"""Fact-level PET/CT metrics (ViMed-PET's F1-T/TP/TF/TPF, malignancy F1, SUV bins, size error) and the parser.

Formulas on cases small enough to check by hand; the parser by a round trip on a generated cohort (world report
→ parsed facts == the record's facts), in English and Vietnamese; and a check that the NLG metrics keep Vietnamese.
"""
import math

import pytest

from rrg_lite.metrics.petct_facts import (fact_f1, malignancy_f1, parse_facts, petct_fact_metrics, size_error,
                                          suv_bin, suv_bin_accuracy)
from rrg_lite.world.ct import generate_petct_cohort
from rrg_lite.world.petct import LesionFact, PetCtConfig, lesion_facts, split_regions, vietnamese_report

INC, NOT = "increased", "not increased"


def F(t, pos, up=INC, suv=None, size=None, mal=None):
    return LesionFact(t, pos, None, up, suv, size, up == INC if mal is None else mal)


@pytest.fixture(scope="module")
def cohort():
    return generate_petct_cohort(16, seed=5)


# ---- F1s by hand -----------------------------------------------------------------------------------------------
def test_four_f1s_by_hand():
    ref = [[F("lung_nodule", "right upper lobe"), F("lymph_node", "subcarinal", NOT)]]
    pred = [[F("lung_nodule", "left lower lobe"), F("lymph_node", "subcarinal", INC)]]
    # F1-T: {nodule, node} vs {nodule, node}: tp 2 -> 1
    assert fact_f1(pred, ref, ("lesion_type",)).value == 1.0
    # F1-TP: the node matches, the nodule's lobe does not: tp 1, fp 1, fn 1 -> 2/(2+1+1) = 0.5
    assert fact_f1(pred, ref, ("lesion_type", "position")).value == 0.5
    # F1-TF: (nodule, inc) matches, (node, inc) vs (node, not) does not -> 0.5
    assert fact_f1(pred, ref, ("lesion_type", "uptake")).value == 0.5
    # F1-TPF: neither matches on all three -> 0
    r = fact_f1(pred, ref, ("lesion_type", "position", "uptake"))
    assert r.name == "F1-TPF" and r.value == 0.0 and r.extra == {"tp": 0, "fp": 2, "fn": 2}


def test_micro_average_and_empty_reports_by_hand():
    ref = [[F("lung_nodule", "right upper lobe"), F("cyst", "left kidney", NOT)], []]
    pred = [[F("lung_nodule", "right upper lobe")], []]
    r = fact_f1(pred, ref, ("lesion_type", "position"))
    # report 1: tp 1, fn 1 -> 2/3; report 2: nothing on either side -> 1 per example; corpus 2/(2+0+1) = 2/3
    assert r.value == pytest.approx(2 / 3) and r.per_example.tolist() == pytest.approx([2 / 3, 1.0])
    # a corpus without any lesion: 1, with a note
    r0 = fact_f1([[], []], [[], []])
    assert r0.value == 1.0 and r0.notes


def test_multiset_counts_duplicates():
    # the reference has twins (two liver lesions at one position); saying it once finds one of two
    ref = [[F("liver_lesion", "right hepatic lobe", INC), F("liver_lesion", "right hepatic lobe", NOT)]]
    pred = [[F("liver_lesion", "right hepatic lobe", INC)]]
    r = fact_f1(pred, ref, ("lesion_type", "position"))
    assert r.extra == {"tp": 1, "fp": 0, "fn": 1} and r.value == pytest.approx(2 / 3)


def test_malignancy_f1_by_hand():
    ref = [[F("lung_nodule", "right upper lobe", INC), F("lymph_node", "subcarinal", NOT),
            F("bone_lesion", "thoracic vertebral body", INC)]]
    pred = [[F("lung_nodule", "right upper lobe", INC), F("lymph_node", "subcarinal", INC)]]
    # malignant ref {nodule RUL, bone}; malignant pred {nodule RUL, node}: tp 1, fp 1, fn 1 -> 0.5
    assert malignancy_f1(pred, ref).value == 0.5
    # a report that says no lesion is malignant scores 0 (2·0 / (0 + 0 + 2))
    assert malignancy_f1([[F("lung_nodule", "right upper lobe", NOT)]], ref).value == 0.0


def test_suv_bins_by_hand():
    assert [suv_bin(F("lung_nodule", "x", INC, s)) for s in (2.4, 2.5, 3.9, 4.0, 7.99, 8.0, 14.0)] == \
        [0, 1, 1, 2, 2, 3, 3]
    assert suv_bin(F("cyst", "left kidney", NOT)) == 0           # "no uptake" without a number: lowest bin
    assert suv_bin(F("lung_nodule", "x", INC)) is None           # "increased" without a number: no bin


def test_suv_bin_accuracy_and_size_error_by_hand():
    ref = [[F("lung_nodule", "right upper lobe", INC, 9.1, 12.0), F("lymph_node", "subcarinal", INC, 5.0, 20.0),
            F("cyst", "left kidney", NOT, 0.6, 30.0)]]
    pred = [[F("lung_nodule", "right upper lobe", INC, 8.4, 15.0),    # bin 3 vs 3: right; size off by 3
             F("lymph_node", "subcarinal", INC, 3.0, 20.0),           # bin 1 vs 2: wrong; size exact
             F("cyst", "left kidney", NOT, None, None)]]              # bin 0 vs 0: right; no size
    acc = suv_bin_accuracy(pred, ref)
    assert acc.value == pytest.approx(2 / 3) and acc.n == 3
    err = size_error(pred, ref)
    assert err.value == pytest.approx(1.5) and err.n == 2            # (3 + 0) / 2
    # no pairs at all: NaN with a note (not a silent 0)
    none = size_error([[F("cyst", "right kidney", NOT)]], ref)
    assert math.isnan(none.value) and none.notes


def test_twins_pair_in_the_favourable_order():
    rhl = "right hepatic lobe"
    ref = [[F("liver_lesion", rhl, INC, 6.0, 17.0), F("liver_lesion", rhl, NOT, 1.0, 17.0)]]
    pred = [[F("liver_lesion", rhl, NOT, None, 17.0), F("liver_lesion", rhl, INC, 6.2, 17.0)]]
    assert suv_bin_accuracy(pred, ref).value == 1.0                  # sorted by size, then SUV: hot with hot


# ---- clear errors ----------------------------------------------------------------------------------------------
def test_errors_name_the_problem():
    ref = [[F("lung_nodule", "right upper lobe")]]
    with pytest.raises(ValueError, match="differ in length"):
        petct_fact_metrics([[], []], ref)
    with pytest.raises(ValueError, match="unknown fact fields"):
        fact_f1(ref, ref, ("colour",))
    with pytest.raises(ValueError, match="single string"):
        fact_f1("A 12 mm nodule.", ref)
    with pytest.raises(ValueError, match=r"predictions\[0\]"):
        fact_f1([42], ref)
    with pytest.raises(ValueError, match="no reports"):
        fact_f1([], [])
    with pytest.raises(ValueError, match="report text"):
        parse_facts(None)
    with pytest.raises(ValueError, match="language"):
        parse_facts("x", language="fr")


# ---- the parser ------------------------------------------------------------------------------------------------
def test_parse_by_hand():
    text = ("FINDINGS: A 12 mm nodule is seen in the right upper lobe. The heart is enlarged. "
            "The pulmonary nodule in the right upper lobe shows increased FDG uptake with an SUVmax of 6.3. "
            "A 22 mm simple cyst is seen in the left hepatic lobe.")
    facts = parse_facts(text)
    assert sorted(facts, key=lambda f: f.lesion_type) == [
        F("cyst", "left hepatic lobe", NOT, None, 22.0),                # CT only: no uptake said
        F("lung_nodule", "right upper lobe", INC, 6.3, 12.0)]           # CT size + PET uptake merged
    imp = parse_facts("IMPRESSION: 8 mm pulmonary nodule in the left lower lobe with an SUVmax of 4.9: suspicious "
                      "for malignancy despite its small size.")
    assert imp == [LesionFact("lung_nodule", "left lower lobe", None, INC, 4.9, 8.0, True, "moderate")]
    assert parse_facts("The heart is enlarged. No pleural effusion.") == []


def _norm(facts, sizes=True):
    """What a report says: SUV only for hot lesions, sizes in whole mm."""
    return sorted((f.lesion_type, f.position, f.uptake, f.malignant,
                   None if (f.size_mm is None or not sizes) else int(round(f.size_mm)),
                   f.suv_max if f.malignant else None) for f in facts)


def test_round_trip_world_reports(cohort):
    n = 0
    for st in cohort:
        truth = lesion_facts(st)
        n += len(truth)
        assert _norm(parse_facts(st.report.text())) == _norm(truth), st.study_id
        for c in split_regions(st):
            assert _norm(parse_facts(c.text())) == _norm(c.facts)
            # the halves alone: a normal-size node's size is in no half (CT does not report it)
            halves = parse_facts(c.ct_text + " " + c.pet_text)
            assert _norm(halves, sizes=False) == _norm(c.facts, sizes=False)
    assert n >= 20


def test_round_trip_vietnamese(cohort):
    for st in cohort:
        truth = lesion_facts(st)
        assert _norm(parse_facts(vietnamese_report(st)["Kết luận"], "vi")) == _norm(truth)
        for c in split_regions(st, PetCtConfig(language="vi")):
            assert _norm(parse_facts(c.text(), "vi")) == _norm(c.facts)


def test_perfect_and_degraded_reports(cohort):
    refs = [lesion_facts(s) for s in cohort]
    m = petct_fact_metrics([s.report.text() for s in cohort], refs)
    for name in ("F1-T", "F1-TP", "F1-TF", "F1-TPF", "malignancy F1", "SUV-bin accuracy"):
        assert m[name].value == 1.0, name
    assert m["size error (mm)"].value <= 0.5                         # reports round to whole mm
    # a CT-only reader: the CT halves alone (no PET sentence, no impression) know type, place and size only
    ct_only = [" ".join(p["ct"] for p in s.report.pet_ct_parts.values()) for s in cohort]
    d = petct_fact_metrics(ct_only, refs)
    assert d["malignancy F1"].value == 0.0                           # malignancy is only in PET
    assert d["F1-TF"].value < 1.0 and d["F1-TP"].value < 1.0          # misses the PET-only nodes as well
    assert d["size error (mm)"].value <= 0.5                          # but sizes are right


# ---- Vietnamese through the NLG metrics -------------------------------------------------------------------------
VI = "Hạch thượng đòn trái tăng hấp thu FDG, SUVmax 7.9. Tổn thương ở thùy gan phải kích thước 16 mm."


def test_text_normalisation_keeps_vietnamese():
    from rrg_lite.metrics.text import normalize
    (r2gen,) = normalize([VI], "r2gen")
    assert "hạch thượng đòn trái tăng hấp thu fdg" in r2gen and "thùy gan phải kích thước 16 mm" in r2gen
    m4 = normalize([VI], "m4cxr")[0].split()
    assert "thượng" in m4 and "đòn" in m4 and "phải" in m4
    assert normalize([VI], "whitespace") == [VI]


def test_nlg_scores_vietnamese():
    from rrg_lite.metrics.nlg import bleu, rouge_l
    other = "Nốt phổi ở thùy trên phổi trái không tăng hấp thu FDG."
    assert bleu([VI], [VI])["BLEU-4"].value == pytest.approx(1.0)
    assert rouge_l([VI], [VI]).value == pytest.approx(1.0)
    assert rouge_l([other], [VI]).value < 0.5                         # different words are different
    # "phải" vs "phai": a diacritic is a different word, not stripped away
    assert rouge_l([VI.replace("phải", "phai")], [VI]).value < 1.0
