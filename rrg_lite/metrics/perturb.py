"""Report pairs with controlled errors: how do metrics react to one known mistake?

Each function takes a reference report and returns a candidate with exactly one kind of change, so that a
plot of metric values per kind shows which metrics notice which error (Chapter 3's "where metrics disagree"):

* ``paraphrase`` — same content, other words and sentence order (no clinical error);
* ``negate`` — one positive finding turned negative ("the heart is enlarged" -> "the heart is not enlarged");
* ``laterality`` — left and right swapped in one sentence;
* ``severity`` — one severity word changed (small <-> large, mild <-> severe);
* ``omit`` — one positive finding sentence dropped;
* ``false_finding`` — a finding that is not there added;
* ``comparison`` — a comparison with a prior study added (an input-agnostic hallucination).

All choices are drawn from a seeded generator. A perturbation that does not apply (no laterality word to swap)
returns None so callers can count it.
"""
from __future__ import annotations

import re

import numpy as np

from .chexpert_labeler import chexpert_mentions
from .text import split_sentences

KINDS = ("paraphrase", "negate", "laterality", "severity", "omit", "false_finding", "comparison")

_PARAPHRASE = [(r"\bis seen\b", "is noted"), (r"\bis noted\b", "is seen"), (r"\bis present\b", "is seen"),
               (r"\bThere is a\b", "A"), (r"\bNo evidence of\b", "No"), (r"\bthe heart is enlarged\b", "cardiomegaly is present"),
               (r"\bHeart size is normal\b", "The heart is of normal size"), (r"\bNo pneumothorax\b", "There is no pneumothorax")]
_SEVERITY = {"small": "large", "large": "small", "mild": "severe", "severe": "mild", "moderate": "mild",
             "minimal": "large", "tiny": "large", "trace": "large"}
_FALSE = (("Pneumothorax", "There is a large right pneumothorax."),
          ("Pleural Effusion", "There is a moderate left pleural effusion."),
          ("Cardiomegaly", "Cardiomegaly is present."),
          ("Consolidation", "There is consolidation in the right lower lobe."),
          ("Fracture", "A rib fracture is seen."),
          ("Edema", "There is mild pulmonary edema."))
_COMPARISON = ("Compared with the prior study, there is no significant interval change.",
               "The findings are unchanged since the previous examination.")


def _positive_sentences(sents: list[str]) -> list[int]:
    out = []
    for i, s in enumerate(sents):
        if any(m.status == 1 and m.label != "Support Devices" for m in chexpert_mentions(s)):
            out.append(i)
    return out


def perturb(report: str, kind: str, rng: np.random.Generator) -> str | None:
    """One controlled change of ``kind`` (see :data:`KINDS`) to ``report``; None when it does not apply."""
    if kind not in KINDS:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {KINDS}")
    sents = split_sentences(report)
    if not sents:
        return None
    pos = _positive_sentences(sents)
    if kind == "paraphrase":
        out = list(sents)
        for i, s in enumerate(out):
            for pat, rep in _PARAPHRASE:
                if re.search(pat, s, flags=re.IGNORECASE):
                    s = re.sub(pat, rep, s, count=1, flags=re.IGNORECASE)
                    break
            out[i] = s[0].upper() + s[1:] if s else s
        if len(out) > 1:
            i = int(rng.integers(0, len(out) - 1))
            out[i], out[i + 1] = out[i + 1], out[i]
        return " ".join(out)
    if kind == "negate":
        if not pos:
            return None
        i = pos[int(rng.integers(len(pos)))]
        s = sents[i]
        if re.match(r"(?i)there (is|are) (a |an )?", s):
            s = re.sub(r"(?i)^there (is|are) (an? )?(small |large |mild |moderate |severe |tiny )?", r"There \1 no ", s)
        elif re.search(r"\b(is|are)\b", s):
            s = re.sub(r"\b(is|are)\b", r"\1 not", s, count=1)
        else:
            s = "No " + s[0].lower() + s[1:]
        sents[i] = s
        return " ".join(sents)
    if kind == "laterality":
        cand = [i for i in pos if re.search(r"\b(left|right)\b", sents[i], flags=re.IGNORECASE)]
        if not cand:
            return None
        i = cand[int(rng.integers(len(cand)))]
        sents[i] = re.sub(r"\b(left|right)\b", lambda m: "right" if m.group(1).lower() == "left" else "left",
                          sents[i], flags=re.IGNORECASE)
        return " ".join(sents)
    if kind == "severity":
        word = r"\b(" + "|".join(_SEVERITY) + r")\b"
        cand = [i for i in pos if re.search(word, sents[i], flags=re.IGNORECASE)]
        if not cand:
            return None
        i = cand[int(rng.integers(len(cand)))]
        sents[i] = re.sub(word, lambda m: _SEVERITY[m.group(1).lower()], sents[i], count=1, flags=re.IGNORECASE)
        return " ".join(sents)
    if kind == "omit":
        if not pos:
            return None
        i = pos[int(rng.integers(len(pos)))]
        return " ".join(s for j, s in enumerate(sents) if j != i) or None
    if kind == "false_finding":  # a finding the report does not already describe
        present = {m.label for m in chexpert_mentions(report) if m.status != 0}
        options = [sent for label, sent in _FALSE if label not in present]
        if not options:
            return None
        return " ".join(sents + [options[int(rng.integers(len(options)))]])
    return " ".join(sents + [_COMPARISON[int(rng.integers(len(_COMPARISON)))]])


def controlled_pairs(references, kinds=KINDS, seed: int = 0) -> list[dict]:
    """For every reference and kind, a candidate with that one error: ``[{"ref", "cand", "kind", "index"}]``
    (perturbations that do not apply are left out)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, ref in enumerate(references):
        for kind in kinds:
            cand = perturb(ref, kind, rng)
            if cand is not None and cand != ref:
                out.append({"ref": ref, "cand": cand, "kind": kind, "index": i})
    return out


def score_pairs_table(cands, refs, kinds=None, bertscore_model: str | None = "minilm", bertscore_path=None,
                      use_meteor: bool = True, labeler: str = "chexpert"):
    """Per-pair scores of several metrics in one DataFrame (one row per pair, metrics in [0, 1]).

    Columns: BLEU-4 (pycocoevalcap's smoothed per-sentence BLEU-4), METEOR (if Java), ROUGE-L, BERTScore (if a
    model is named), CE example-F1 (14 CheXpert labels, uncertain as positive), GREEN (offline), and ``kind``.
    """
    import pandas as pd

    from . import nlg
    from .clinical import clinical_efficacy_reports
    from .green import green_offline

    table = {"BLEU-4": nlg.bleu(cands, refs)["BLEU-4"].per_example, "ROUGE-L": nlg.rouge_l(cands, refs).per_example}
    if use_meteor and nlg.java_available():
        table["METEOR"] = nlg.meteor(cands, refs).per_example
    if bertscore_model is not None:
        from .bertscore import bert_score
        table["BERTScore"] = bert_score(cands, refs, model=bertscore_model, model_path=bertscore_path).per_example
    ce = clinical_efficacy_reports(cands, refs, labeler="ctrate" if labeler == "ct" else labeler)
    key = [k for k in ce if k.endswith("example-F1-14") or k.endswith("example-F1-18")][0]
    table["CE example-F1"] = ce[key].per_example
    table["GREEN (offline)"] = green_offline(cands, refs, labeler).per_example
    df = pd.DataFrame(table)
    if kinds is not None:
        df.insert(0, "kind", list(kinds))
    return df
