"""M4CXR's evaluation conventions that are not plain library calls (Sec. IV-C, Tables III–VIII).

- :func:`report_nlg` — BLEU-1..4 and ROUGE-L of reports after M4CXR's text handling: lower-case, then NLTK
  wordpunct tokens joined by spaces (official code), then pycocoevalcap: the package's
  :func:`rrg_lite.metrics.nlg.bleu` / :func:`~rrg_lite.metrics.nlg.rouge_l` with ``normalize_as="m4cxr"``
  (:func:`rrg_lite.metrics.text.normalize_m4cxr`).
  (The official code also cleans the *references* with its MIMIC-CXR report cleaner before NLG metrics; the
  world's references need no cleaning, so that step is not reproduced.)
- :func:`turn1_codes` / :func:`turn1_scores` — the CoT turn-1 answer ("atelectasis, pleural effusion.") read back
  into CheXpert-order label codes and scored with the package's micro / macro / example-based F1, uncertain
  counted as negative (the paper's headline convention). The risk the chapter must report: the report is
  conditioned on the model's *own* turn 1, so turn-1 F1 is measured on its own.
  "No Finding" is derived as the official code does: positive when none of the 12 findings other than "Support
  Devices" is named.

The clinical F1s of the reports themselves are :func:`rrg_lite.metrics.clinical.clinical_efficacy_reports` with
``uncertain="negative"``; grounding and VQA are :mod:`rrg_lite.metrics.grounding` and :mod:`rrg_lite.metrics.vqa`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rrg_lite.metrics.clinical import clinical_efficacy
from rrg_lite.metrics.nlg import bleu, rouge_l
from rrg_lite.metrics.result import MetricResult
from rrg_lite.metrics.text import check_pairs
from rrg_lite.world.vocab import CHEXPERT_LABELS

from .instructions import CXR_CONDITIONS, parse_findings_list

__all__ = ["report_nlg", "turn1_codes", "turn1_scores"]


def report_nlg(preds, refs, on_none: str = "error") -> dict[str, MetricResult]:
    """BLEU-1..4 (corpus) and ROUGE-L of reports in M4CXR's convention (see the module docstring)."""
    p, r, _ = check_pairs(preds, refs, on_none=on_none)
    out = dict(bleu(p, r, normalize_as="m4cxr"))
    out["ROUGE-L"] = rouge_l(p, r, normalize_as="m4cxr")
    return out


def turn1_codes(answers: Sequence[str], candidates: Sequence[str] = CXR_CONDITIONS) -> np.ndarray:
    """(N, 14) codes in CheXpert order (1 named, 0 not) from turn-1 answers; "No Finding" derived (see above)."""
    labels = [l.lower() for l in CHEXPERT_LABELS]
    unknown = [c for c in candidates if c.lower() not in labels]
    if unknown:
        raise ValueError(f"turn1_codes: candidates {unknown} are not CheXpert labels")
    out = np.zeros((len(answers), len(labels)))
    nf, sd = labels.index("no finding"), labels.index("support devices")
    for i, a in enumerate(answers):
        for name in parse_findings_list(a, candidates):
            out[i, labels.index(name.lower())] = 1
        findings = [j for j in range(len(labels)) if j not in (nf, sd)]
        out[i, nf] = float(out[i, findings].sum() == 0)
    return out


def turn1_scores(answers: Sequence[str], ref_codes: np.ndarray, subset: Sequence[str] | None = None,
                 candidates: Sequence[str] = CXR_CONDITIONS) -> dict[str, MetricResult]:
    """Micro / macro / example P, R, F1 of turn-1 answers against reference codes (N, 14), uncertain = negative."""
    ref_codes = np.asarray(ref_codes, dtype=float)
    if ref_codes.shape != (len(answers), len(CHEXPERT_LABELS)):
        raise ValueError(f"turn1_scores: reference codes must be ({len(answers)}, {len(CHEXPERT_LABELS)}), "
                         f"got {ref_codes.shape}")
    return clinical_efficacy(turn1_codes(answers, candidates), ref_codes, CHEXPERT_LABELS, subset=subset,
                             uncertain="negative", prefix="turn-1 ")
