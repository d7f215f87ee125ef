"""One call that scores generated reports against references with every offline metric.

    from rrg_lite.metrics.report import score_reports
    results = score_reports(preds, refs, labeler="chexpert")      # dict name -> MetricResult
    results_table(results)                                         # DataFrame: metric, value, n, convention

Which metrics run is chosen by ``metrics`` (names below). A metric that cannot run offline in this environment
(METEOR without Java) is skipped with the reason in ``results["_skipped"].notes`` — the others still run.
"""
from __future__ import annotations

from typing import Sequence

from .result import MetricResult, results_table
from .text import check_pairs, looks_non_english

__all__ = ["ALL_METRICS", "score_reports", "results_table"]

#: Metric groups that :func:`score_reports` knows.
ALL_METRICS = ("bleu", "meteor", "rouge_l", "cider", "rouge_score", "bertscore", "clinical", "green",
               "hallucination", "length")
DEFAULT_METRICS = ("bleu", "meteor", "rouge_l", "cider", "rouge_score", "clinical", "green", "hallucination", "length")


def score_reports(preds, refs, metrics: Sequence[str] = DEFAULT_METRICS, normalize_as: str = "r2gen",
                  labeler: str = "chexpert", uncertain: str = "positive", bertscore_model: str = "minilm",
                  bertscore_path: str | None = None, on_none: str = "error",
                  meteor_timeout_s: float | None = 300.0) -> dict[str, MetricResult]:
    """Score generated reports ``preds`` against ``refs``.

    Args:
        metrics: any of :data:`ALL_METRICS` ("bertscore" is off by default: it loads a model).
        normalize_as: text convention of the pycocoevalcap metrics ("r2gen", "m4cxr", "whitespace").
        labeler: "chexpert" (chest X-ray) or "ctrate" (chest CT) for clinical efficacy and the offline GREEN
            ("ct" is also accepted for GREEN and means CT-RATE + findings outside its labels; CE then uses "ctrate").
        uncertain: how uncertain labels count in clinical efficacy ("positive" default, or "negative").
        bertscore_model: "minilm" (offline default), "radeval" or "default" (need ``bertscore_path``).
        meteor_timeout_s: METEOR's Java process is stopped after this long and METEOR is recorded as skipped.
    """
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {ALL_METRICS}")
    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    if not p:
        raise ValueError("score_reports: no report pairs")
    out: dict[str, MetricResult] = {}
    skipped = []
    from . import nlg

    if "bleu" in metrics:
        out.update(nlg.bleu(p, r, normalize_as))
    if "meteor" in metrics:
        try:
            out["METEOR"] = nlg.meteor(p, r, normalize_as, timeout_s=meteor_timeout_s)
        except (nlg.JavaNotFoundError, nlg.MetricTimeoutError) as err:
            skipped.append(f"METEOR: {err}")
    if "rouge_l" in metrics:
        out["ROUGE-L"] = nlg.rouge_l(p, r, normalize_as)
    if "cider" in metrics:
        out["CIDEr"] = nlg.cider(p, r, normalize_as)
    if "rouge_score" in metrics:
        out.update(nlg.rouge_score_f(p, r))
    if "bertscore" in metrics:
        from .bertscore import bert_score
        out["BERTScore"] = bert_score(p, r, model=bertscore_model, model_path=bertscore_path)
    if "clinical" in metrics:
        from .clinical import clinical_efficacy_reports
        out.update(clinical_efficacy_reports(p, r, "ctrate" if labeler == "ct" else labeler, uncertain))
    if "green" in metrics:
        from .green import green_offline
        out["GREEN (offline)"] = green_offline(p, r, labeler)
        out["GREEN (offline)"].name = "GREEN (offline)"
    if "hallucination" in metrics:
        from .hallucination import hallucination_rate
        out.update(hallucination_rate(p))
    if "length" in metrics:
        from .lengths import length_kl
        out["length KL"] = length_kl(p, r)
    non_en = sum(looks_non_english(t) for t in p + r)
    if non_en:
        notes = notes + [f"{non_en} reports look non-English: the rule-based labelers, the offline GREEN judge and "
                         "rouge-score's default tokenizer only read English"]
    for res in out.values():
        for note in notes:
            if note not in res.notes:
                res.notes.append(note)
    if skipped:
        out["_skipped"] = MetricResult("_skipped", float(len(skipped)), "metrics that could not run", None, len(p),
                                       skipped)
    return out
