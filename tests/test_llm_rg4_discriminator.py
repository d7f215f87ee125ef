"""LLM-RG4's DiscBERT-like input-agnostic detector and the hall. rate with scenario-dependent allowed categories."""
import numpy as np
import pytest

from rrg_lite.metrics.hallucination import CATEGORIES as RULE_CATEGORIES
from rrg_lite.systems.llm_rg4.discriminator import (
    CATEGORIES,
    DetectorConfig,
    InputAgnosticDetector,
    allowed_categories,
    fit_detector,
    hall_rate_from_flags,
    hallucination_rate,
    head_scores,
    tags_to_array,
    world_sentence_tags,
)


def test_categories_are_the_rule_based_detectors():
    assert CATEGORIES == RULE_CATEGORIES == ("comparison", "prior_procedure", "view", "communication")


def test_allowed_categories_per_scenario():
    assert allowed_categories("sn") == ()
    assert allowed_categories("sw") == ("comparison",)
    assert allowed_categories("mn") == ("view",)
    assert set(allowed_categories("mw")) == {"comparison", "view"}
    with pytest.raises(ValueError, match="unknown scenario"):
        allowed_categories("s")


def test_tags_to_array():
    t = tags_to_array([{"view"}, (), ["comparison", "communication"], [False, True, False, False]])
    assert t.tolist() == [[False, False, True, False], [False] * 4, [True, False, False, True],
                          [False, True, False, False]]
    with pytest.raises(ValueError, match=r"unknown categories \['views'\]"):
        tags_to_array([{"views"}])
    with pytest.raises(ValueError, match="is a string 'view'"):
        tags_to_array(["view"])


def test_head_scores_by_hand():
    # comparison head: predicted on sentences 0, 1, 2; true on 0, 1, 3 -> TP 2, FP 1, FN 1: P = R = F1 = 2/3
    # view head: predicts nothing, one true -> P 0, R 0, F1 0; prior_procedure / communication: no sentence at all
    pred = np.zeros((4, 4), dtype=bool)
    true = np.zeros((4, 4), dtype=bool)
    pred[[0, 1, 2], 0] = True
    true[[0, 1, 3], 0] = True
    true[2, 2] = True
    s = head_scores(pred, true)
    assert s["comparison"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert s["view"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["communication"]["support"] == 0
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 3\)"):
        head_scores(pred, true[:, :3])


def test_hall_rate_from_flags_by_hand():
    # columns: comparison, prior_procedure, view, communication
    cmp_, view, comm = [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]
    flags = [np.array([cmp_, [0] * 4]),            # report 0: a comparison
             np.array([view]),                     # report 1: a view sentence
             np.array([cmp_, view]),               # report 2: both
             np.zeros((0, 4)),                     # report 3: no sentence at all
             np.array([comm])]                     # report 4: a communication (never allowed)
    # sn allows nothing: reports 0, 1, 2, 4 count -> 4/5
    assert hall_rate_from_flags(flags, "sn")["hall."].value == pytest.approx(0.8)
    # sw allows comparisons: 1, 2, 4 -> 3/5; mn allows views: 0, 2, 4 -> 3/5; mw allows both: only 4 -> 1/5
    assert hall_rate_from_flags(flags, "sw")["hall."].value == pytest.approx(0.6)
    assert hall_rate_from_flags(flags, "mn")["hall."].value == pytest.approx(0.6)
    mw = hall_rate_from_flags(flags, "mw")
    assert mw["hall."].value == pytest.approx(0.2) and mw["hall. view"].value == 0.0
    assert mw["hall."].per_example.tolist() == [0, 0, 0, 0, 1]
    # one scenario per report: sn, sw, mn, mw, sn -> 0 (sn: comparison), 1 (sw: view), 2 (mn: comparison), 4 (sn:
    # communication) count, 3 (no sentence) does not -> 4/5; comparisons count in reports 0 and 2 only -> 2/5
    mixed = hall_rate_from_flags(flags, ["sn", "sw", "mn", "mw", "sn"])
    assert mixed["hall."].per_example.tolist() == [1, 1, 1, 0, 1]
    assert mixed["hall. comparison"].value == pytest.approx(0.4)
    assert mixed["hall. view"].value == pytest.approx(0.2)             # report 1 only (report 2 is in mn)
    with pytest.raises(ValueError, match="5 reports but 2 scenarios"):
        hall_rate_from_flags(flags, ["sn", "sw"])


@pytest.fixture(scope="module")
def world():
    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.xray import generate_xray_cohort

    return generate_xray_cohort(140, seed=3, cfg=WorldConfig(p_input_agnostic_xray=0.8, xray_size=64))


@pytest.fixture(scope="module")
def trained(world):
    sentences, tags = world_sentence_tags(world[:90])
    det, history = fit_detector(sentences, tags, DetectorConfig(buckets=2 ** 12, epochs=15, seed=0))
    assert history[-1] < 0.2 * history[0]
    return det


def test_world_sentence_tags(world):
    sentences, tags = world_sentence_tags(world[:10])
    assert tags.shape == (len(sentences), 4) and tags.sum(1).max() <= 1
    by_text = {s.text: s.tag for st in world[:10] for s in st.report.sentences}
    for text, row in zip(sentences, tags):
        if by_text[text] in ("finding", "negative", "normal", "recommendation"):
            assert not row.any(), text


def test_detector_heads_on_held_out_world_sentences(trained, world):
    sentences, tags = world_sentence_tags(world[90:])
    assert trained.predict_proba(sentences).shape == (len(sentences), 4)
    scores = head_scores(trained.flag_sentences(sentences), tags)
    for c in CATEGORIES:
        assert scores[c]["support"] > 0, c
        assert scores[c]["f1"] > 0.85, (c, scores[c])


def test_hall_rate_of_original_and_clean_reports(trained, world):
    # no-prior studies in sn: original reports carry the world's input-agnostic sentences, clean ones do not
    studies = [st for st in world[90:] if st.prior is None]

    def text(st, clean):
        return " ".join(st.report.section(s, include_agnostic=not clean) for s in ("findings", "impression"))

    truth = np.mean([any(s.tag in ("prior_comparison", "prior_procedure", "view", "communication")
                         for s in st.report.sentences) for st in studies])
    original = hallucination_rate([text(st, False) for st in studies], trained, "sn")["hall."].value
    clean = hallucination_rate([text(st, True) for st in studies], trained, "sn")["hall."].value
    assert truth > 0.3 and abs(original - truth) < 0.1
    assert clean < 0.1 < original
    with pytest.raises(ValueError, match="must be a string"):
        trained.flag_reports([None])


def test_detector_config_errors():
    with pytest.raises(ValueError, match="threshold"):
        DetectorConfig(threshold=1.0)
    with pytest.raises(ValueError, match="not both"):
        InputAgnosticDetector(DetectorConfig(), dim=8)
    with pytest.raises(ValueError, match="3 sentences and 2 tag rows"):
        fit_detector(["a", "b", "c"], [(), ()])
