"""VQA metrics in M4CXR's convention (Sec. IV-C-3, Table VI): exact-match accuracy, recall, per-sample BLEU-1.

The paper: "Exact matches between predictions and ground truth are counted to calculate the accuracy ... recall
is calculated by measuring the proportion of ground-truth words present in the generated sequences ... BLEU-1
scores are also calculated for each test sample and then averaged." The official evaluation fixes the details,
and this module follows it:

    normalise(a)  = a.strip() with every "." deleted, lower-cased        ("Yes." -> "yes"; also "1.5 cm" -> "15 cm")
    words(a)      = NLTK wordpunct tokens of a: runs of \\w, or runs of other non-space characters
    accuracy      = mean_i [ normalise(pred_i) == normalise(ref_i) ]
    recall_i      = |set(words(ref_i)) ∩ set(words(pred_i))| / |set(words(ref_i))|    (distinct words)
    BLEU-1_i      = pycocoevalcap BLEU-1 of " ".join(words(pred_i)) against " ".join(words(ref_i)), mean over i

BLEU-1 is the package's :func:`rrg_lite.metrics.nlg.bleu` on the pre-tokenised text (``normalize_as=
"whitespace"``); its per-report BLEU-1 is pycocoevalcap's per-sentence score, which does not depend on the
other pairs, so it equals one ``Bleu(1)`` call per sample as the official code makes.

:func:`~rrg_lite.metrics.text.wordpunct` is NLTK's ``wordpunct_tokenize`` (the same regular expression). M4CXR
also lower-cases reports and tokenises them this way before report BLEU/ROUGE-L: ``normalize_as="m4cxr"``.
"""
from __future__ import annotations

import numpy as np

from .nlg import bleu
from .result import MetricResult
from .text import check_pairs, wordpunct

__all__ = ["normalize_answer", "wordpunct", "exact_match", "token_recall", "bleu1", "vqa_scores"]

def normalize_answer(text: str) -> str:
    """M4CXR's answer normalisation: strip, delete every ".", lower-case."""
    return text.strip().replace(".", "").lower()


def _prepared(preds, refs, on_none: str):
    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    if not p:
        raise ValueError("VQA metrics need at least one (prediction, reference) pair, got empty lists")
    return [normalize_answer(x) for x in p], [normalize_answer(x) for x in r], notes


def _mean(x: np.ndarray) -> float:
    return float(x.mean())


def exact_match(preds, refs, on_none: str = "error") -> MetricResult:
    """Share of answers equal to the reference after :func:`normalize_answer`."""
    p, r, notes = _prepared(preds, refs, on_none)
    acc = np.array([float(a == b) for a, b in zip(p, r)])
    return MetricResult("VQA accuracy", _mean(acc), "exact match after M4CXR normalisation (strip, every '.' "
                        "deleted, lower-case), mean over samples", acc, len(p), notes)


def token_recall(preds, refs, on_none: str = "error") -> MetricResult:
    """Share of the reference's distinct wordpunct tokens that the answer contains, averaged over samples.

    A reference with no token after normalisation has no recall to measure: ValueError naming its index.
    """
    p, r, notes = _prepared(preds, refs, on_none)
    rec = np.empty(len(p))
    for i, (a, b) in enumerate(zip(p, r)):
        ref_words = set(wordpunct(b))
        if not ref_words:
            raise ValueError(f"token_recall: reference {i} has no words after normalisation ({b!r})")
        rec[i] = len(ref_words & set(wordpunct(a))) / len(ref_words)
    return MetricResult("VQA recall", _mean(rec), "distinct reference wordpunct tokens found in the answer / distinct "
                        "reference tokens, after M4CXR normalisation; mean over samples", rec, len(p), notes)


def bleu1(preds, refs, on_none: str = "error") -> MetricResult:
    """Per-sample pycocoevalcap BLEU-1 on wordpunct tokens of the normalised answers, averaged over samples."""
    p, r, notes = _prepared(preds, refs, on_none)
    tok = lambda s: " ".join(wordpunct(s))  # noqa: E731
    res = bleu([tok(a) for a in p], [tok(b) for b in r], normalize_as="whitespace")["BLEU-1"]
    per = res.per_example
    return MetricResult("VQA BLEU-1", _mean(per), "pycocoevalcap BLEU-1 per sample (metrics.nlg.bleu) on wordpunct "
                        "tokens after M4CXR normalisation, mean over samples (not corpus BLEU)", per, len(p),
                        list(notes) + list(res.notes))


def vqa_scores(preds, refs, on_none: str = "error") -> dict[str, MetricResult]:
    """The three numbers of Table VI: ``{"VQA accuracy", "VQA recall", "VQA BLEU-1"}``."""
    return {"VQA accuracy": exact_match(preds, refs, on_none), "VQA recall": token_recall(preds, refs, on_none),
            "VQA BLEU-1": bleu1(preds, refs, on_none)}
