"""Fact-level PET/CT metrics: lesion F1s of the ViMed-PET dataset paper, malignancy F1, SUV-bin accuracy, size error.

ViPET-VLM reports only NLG scores (BLEU-4, ROUGE, BERTScore); its dataset paper scores lesions: F1-T (lesion
type), F1-TP (type + position), F1-TF (type + FDG uptake), F1-TPF (all three). A report is reduced to a multiset
of :class:`~rrg_lite.world.petct.LesionFact` — from the world's record (:func:`rrg_lite.world.petct.lesion_facts`)
or from text by :func:`parse_facts` — and two multisets are compared.

Conventions (they are in every :class:`~rrg_lite.metrics.result.MetricResult`'s ``convention``):

* F1-T / -TP / -TF / -TPF: facts reduced to the fields; per report ``tp = |P ∩ R|`` on multisets (a lesion said
  twice counts twice); corpus value *micro*: ``2·Σtp / (2·Σtp + Σfp + Σfn)``; a report with no lesion on either
  side scores 1 per example (nothing to find, nothing claimed), a corpus without any lesion 1 with a note.
* malignancy F1: the same micro F1 on the malignant facts only, keyed by (type, position).
* SUV-bin accuracy: predicted and reference lesions paired within a (type, position) key — in order of size, then
  SUV (for identical twins the most favourable pairing) — and the share of pairs whose SUVmax bin agrees. Bins:
  < 2.5 (also a lesion read "not increased" without a number), 2.5–4, 4–8, ≥ 8 (:data:`SUV_BINS`). Unpaired
  lesions are left to the F1s; a pair whose prediction has no SUV and no uptake counts as wrong.
* size error: mean absolute difference (mm) over the same pairs where both give a size (reports round to 1 mm,
  so a perfect report scores ≤ 0.5).

:func:`parse_facts` reads the world's grammar in English (the CT sentences of
:data:`rrg_lite.world.grammar.CT_POSITIVE`, the PET sentences of :data:`~rrg_lite.world.grammar.PET_HOT` /
``PET_COLD``, the graded impression of :data:`rrg_lite.world.petct_grammar.IMPRESSION`) or in Vietnamese
(:mod:`rrg_lite.world.petct_grammar`). Impression sentences carry whole facts; PET and CT sentences are merged
by (type, position) for a text without an impression (a region crop's halves). Sentences it does not know are
ignored, so it is a fact *extractor*, exact on the world's reports (a test checks the round trip), not a labeler
for free text.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Sequence

import numpy as np

from rrg_lite.world import grammar as G
from rrg_lite.world import petct_grammar as PG
from rrg_lite.world.petct import UPTAKES, LesionFact

from .result import MetricResult

__all__ = ["parse_facts", "fact_f1", "malignancy_f1", "suv_bin", "suv_bin_accuracy", "size_error",
           "petct_fact_metrics", "F1_FIELDS", "SUV_BINS"]

#: ViMed-PET's lesion F1s and the fact fields each compares.
F1_FIELDS: dict[str, tuple[str, ...]] = {
    "F1-T": ("lesion_type",), "F1-TP": ("lesion_type", "position"), "F1-TF": ("lesion_type", "uptake"),
    "F1-TPF": ("lesion_type", "position", "uptake"),
}
#: SUVmax bin edges: < 2.5 | 2.5–4 | 4–8 | ≥ 8.
SUV_BINS: tuple[float, ...] = (2.5, 4.0, 8.0)
_LANGUAGES = ("en", "vi")

# ---------------------------------------------------------------------------------------------------------------
# Parsing the world's grammar
# ---------------------------------------------------------------------------------------------------------------
_SPLIT = re.compile(r"(?<=[.!?])\s+")
_HEADER = re.compile(r"^[A-Z][A-Z ]*:\s*")


def _alternation(options) -> str:
    return "(?:" + "|".join(re.escape(o) for o in sorted(set(options), key=len, reverse=True)) + ")"


def _compile(template: str, slots: dict[str, str]) -> re.Pattern:
    """A template with ``{slot}`` fields → a full-sentence regex; each slot becomes its named group."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out.append(re.escape(template[pos:m.start()]))
        name = m.group(1)
        if name.lower() not in slots:
            raise KeyError(f"template {template!r}: no pattern for slot {name!r}")
        out.append(f"(?P<{name.lower()}>{slots[name.lower()]})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out), re.IGNORECASE)


@lru_cache(maxsize=None)
def _grammar(language: str):
    """(noun → (type, position), [(regex, sentence role, grade | None)]) for one language."""
    nouns: dict[str, tuple[str, str]] = {}
    for t, locs in PG.LOCATIONS.items():
        for loc in locs:
            shown = PG.LOCATION_VI.get(loc, loc) if language == "vi" else loc
            nouns[PG.nfc(PG.TYPE_NOUN[language][t].format(loc=shown)).lower()] = (t, loc)
    noun_re = _alternation(nouns)
    slots = {"noun": noun_re, "size": r"\d+ mm", "suv": r"\d+(?:\.\d+)?"}
    rules = []
    for grade, tpl in PG.IMPRESSION[language].items():
        if grade != "none":
            rules.append((_compile(PG.nfc(tpl), slots), "impression", grade))
    if language == "en":
        rules += [(_compile(t, slots), "pet_hot", None) for t in G.PET_HOT]
        rules += [(_compile(t, slots), "pet_cold", None) for t in G.PET_COLD]
        for kind, t in PG.LESION_TYPE.items():
            for key in (k for k in G.CT_POSITIVE if k == kind or k.startswith(kind + "/")):
                loc_slots = dict(slots, loc=_alternation(PG.LOCATIONS[t]))
                for tpl in G.CT_POSITIVE[key]:
                    rules.append((_compile(tpl, loc_slots), f"ct:{t}", None))
    else:
        rules += [(_compile(PG.nfc(PG.PET_VI["hot"]), slots), "pet_hot", None),
                  (_compile(PG.nfc(PG.PET_VI["cold"]), slots), "pet_cold", None),
                  (_compile(PG.nfc(PG.CT_VI), slots), "ct", None)]
    return nouns, rules


def _sentences(text: str) -> list[str]:
    out = []
    for s in _SPLIT.split(PG.nfc(text).strip()):
        s = _HEADER.sub("", s.strip())
        if s:
            out.append(s)
    return out


def _num(m: re.Match, name: str) -> float | None:
    v = m.groupdict().get(name)
    if v is None:
        return None
    return float(v.split()[0])


def parse_facts(text: str, language: str = "en") -> list[LesionFact]:
    """Lesion facts from a report written in the world's grammar (see the module docstring).

    Facts from text have ``region``, ``finding_id`` and ``twin_group`` None; ``malignant`` is the impression's
    grade (``PG.MALIGNANT_GRADES``) or, without an impression, "uptake increased" (the world's reading rule).
    """
    if not isinstance(text, str):
        raise ValueError(f"parse_facts: expected report text (str), got {type(text).__name__}")
    if language not in _LANGUAGES:
        raise ValueError(f"parse_facts: language must be one of {_LANGUAGES}, got {language!r}")
    nouns, rules = _grammar(language)
    imp, pet, ct = [], [], []
    for s in _sentences(text):
        for rx, role, grade in rules:
            m = rx.fullmatch(s)
            if m is None:
                continue
            if role.startswith("ct:"):      # English CT sentences name the location, the rule names the type
                t, loc = role[3:], m.group("loc").lower()
                ct.append((t, loc, _num(m, "size")))
                break
            t, loc = nouns[m.group("noun").lower()]
            if role == "impression":
                hot = grade in PG.MALIGNANT_GRADES
                imp.append(LesionFact(t, loc, None, UPTAKES[0] if hot else UPTAKES[1],
                                      _num(m, "suv"), _num(m, "size"), hot, grade))
            elif role in ("pet_hot", "pet_cold"):
                pet.append((t, loc, role == "pet_hot", _num(m, "suv")))
            else:
                ct.append((t, loc, _num(m, "size")))
            break
    # PET and CT sentences the impression already covers are consumed; the rest are merged by (type, position)
    have = Counter((f.lesion_type, f.position) for f in imp)
    left_pet, left_ct = [], []
    for items, left in ((pet, left_pet), (ct, left_ct)):
        budget = Counter(have)
        for it in items:
            if budget[it[:2]] > 0:
                budget[it[:2]] -= 1
            else:
                left.append(it)
    facts = list(imp)
    ct_pool = sorted(left_ct, key=lambda c: -(c[2] or 0))
    for t, loc, hot, suv in sorted(left_pet, key=lambda p: not p[2]):
        size = None
        for i, c in enumerate(ct_pool):
            if c[:2] == (t, loc):
                size = ct_pool.pop(i)[2]
                break
        facts.append(LesionFact(t, loc, None, UPTAKES[0] if hot else UPTAKES[1], suv, size, hot))
    for t, loc, size in ct_pool:          # described on CT only: no uptake said (the world's cold cysts)
        facts.append(LesionFact(t, loc, None, UPTAKES[1], None, size, False))
    return facts


# ---------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------
def _as_fact_lists(items, what: str, language: str) -> list[list[LesionFact]]:
    if isinstance(items, (str, bytes)):
        raise ValueError(f"{what} must be a list of reports (texts or fact lists), got a single string")
    out = []
    for i, it in enumerate(items):
        if isinstance(it, str):
            out.append(parse_facts(it, language))
        elif isinstance(it, (list, tuple)) and all(isinstance(f, LesionFact) for f in it):
            out.append(list(it))
        else:
            raise ValueError(f"{what}[{i}] must be report text or a list of LesionFact, got {type(it).__name__}")
    return out


def _pairs(preds, refs, what_p="predictions", what_r="references", language="en"):
    P = _as_fact_lists(preds, what_p, language)
    R = _as_fact_lists(refs, what_r, language)
    if len(P) != len(R):
        raise ValueError(f"{what_p} and {what_r} differ in length: {len(P)} vs {len(R)}")
    if not P:
        raise ValueError("no reports to score")
    return P, R


def _f1(P, R, keyf, name: str, convention: str) -> MetricResult:
    tp = fp = fn = 0
    per = []
    for p, r in zip(P, R):
        cp, cr = Counter(keyf(f) for f in p if keyf(f) is not None), Counter(keyf(f) for f in r if keyf(f) is not None)
        t = sum((cp & cr).values())
        a, b = sum(cp.values()) - t, sum(cr.values()) - t
        tp, fp, fn = tp + t, fp + a, fn + b
        per.append(1.0 if t + a + b == 0 else 2 * t / (2 * t + a + b))
    notes = []
    if 2 * tp + fp + fn == 0:
        value = 1.0
        notes.append("no lesion in any report: F1 set to 1")
    else:
        value = 2 * tp / (2 * tp + fp + fn)
    return MetricResult(name, float(value), convention, np.array(per, float), len(P), notes,
                        {"tp": tp, "fp": fp, "fn": fn})


def fact_f1(preds, refs, fields: Sequence[str] = ("lesion_type",), name: str | None = None,
            language: str = "en") -> MetricResult:
    """Micro lesion F1 on facts reduced to ``fields`` (``F1_FIELDS`` names ViMed-PET's four)."""
    bad = [f for f in fields if f not in LesionFact.__dataclass_fields__]
    if not fields or bad:
        raise ValueError(f"fact_f1: unknown fact fields {bad or list(fields)}; choose from "
                         f"{list(LesionFact.__dataclass_fields__)}")
    P, R = _pairs(preds, refs, language=language)
    fields = tuple(fields)
    name = name or next((k for k, v in F1_FIELDS.items() if v == fields), "F1-" + "+".join(fields))
    conv = (f"lesion facts on ({', '.join(fields)}), multiset match per report, micro-averaged F1 over the "
            f"corpus; empty vs empty = 1 per report; text parsed with the world's {language} grammar")
    return _f1(P, R, lambda f: f.key(fields), name, conv)


def malignancy_f1(preds, refs, language: str = "en") -> MetricResult:
    """Micro F1 of the malignant (suspicious) lesions, keyed by (type, position)."""
    P, R = _pairs(preds, refs, language=language)
    conv = ("malignant lesion facts keyed by (lesion_type, position), multiset match, micro F1; text: impression "
            "grade high/nodal/moderate, or uptake increased without impression")
    return _f1(P, R, lambda f: (f.lesion_type, f.position) if f.malignant else None, "malignancy F1", conv)


def suv_bin(fact: LesionFact) -> int | None:
    """SUVmax bin 0–3 (:data:`SUV_BINS`); a lesion read "not increased" without a number is bin 0; else None."""
    if fact.suv_max is not None:
        return int(np.searchsorted(SUV_BINS, fact.suv_max, side="right"))
    return 0 if fact.uptake == UPTAKES[1] else None


def _matched(P, R):
    """(pred, ref) fact pairs within each (type, position) key, in order of size then SUV."""
    out = []
    order = lambda f: (f.size_mm or 0.0, f.suv_max or 0.0)  # noqa: E731
    for p, r in zip(P, R):
        keys = {(f.lesion_type, f.position) for f in r}
        for k in keys:
            ps = sorted((f for f in p if (f.lesion_type, f.position) == k), key=order)
            rs = sorted((f for f in r if (f.lesion_type, f.position) == k), key=order)
            out += list(zip(ps, rs))
    return out


def suv_bin_accuracy(preds, refs, language: str = "en") -> MetricResult:
    """Share of paired lesions whose SUVmax bin agrees (pairs: see the module docstring)."""
    P, R = _pairs(preds, refs, language=language)
    pairs = [(p, r) for p, r in _matched(P, R) if suv_bin(r) is not None]
    hits = [float(suv_bin(p) == suv_bin(r)) for p, r in pairs]
    notes = [] if pairs else ["no paired lesion with a reference SUV: accuracy set to NaN"]
    conv = (f"lesions paired within (type, position) by size then SUV; SUVmax bins <{SUV_BINS[0]}, "
            f"{SUV_BINS[0]}-{SUV_BINS[1]}, {SUV_BINS[1]}-{SUV_BINS[2]}, >={SUV_BINS[2]} ('not increased' without "
            f"a value = lowest bin); accuracy over pairs")
    return MetricResult("SUV-bin accuracy", float(np.mean(hits)) if hits else float("nan"), conv,
                        np.array(hits, float), len(pairs), notes)


def size_error(preds, refs, language: str = "en") -> MetricResult:
    """Mean absolute size error (mm) over paired lesions where both give a size (lower is better)."""
    P, R = _pairs(preds, refs, language=language)
    pairs = [(p, r) for p, r in _matched(P, R) if p.size_mm is not None and r.size_mm is not None]
    errs = [abs(p.size_mm - r.size_mm) for p, r in pairs]
    notes = [] if pairs else ["no paired lesion with both sizes: error set to NaN"]
    conv = "lesions paired within (type, position) by size then SUV; mean |size_pred - size_ref| in mm"
    return MetricResult("size error (mm)", float(np.mean(errs)) if errs else float("nan"), conv,
                        np.array(errs, float), len(pairs), notes)


def petct_fact_metrics(preds, refs, language: str = "en") -> dict[str, MetricResult]:
    """All of them: F1-T, F1-TP, F1-TF, F1-TPF, malignancy F1, SUV-bin accuracy, size error (mm).

    ``preds`` / ``refs``: equal-length lists whose items are report texts (parsed with :func:`parse_facts`) or
    lists of :class:`~rrg_lite.world.petct.LesionFact` (e.g. ``lesion_facts(study)``, the world's truth).
    """
    P, R = _pairs(preds, refs, language=language)
    out = {name: fact_f1(P, R, fields, name) for name, fields in F1_FIELDS.items()}
    out["malignancy F1"] = malignancy_f1(P, R)
    out["SUV-bin accuracy"] = suv_bin_accuracy(P, R)
    out["size error (mm)"] = size_error(P, R)
    return out
