"""GREEN: Generative Radiology Report Evaluation and Error Notation (Ostmeier et al. 2024).

A judge (the fine-tuned GREEN LLM) reads a reference and a candidate report and writes counts of

* **matched findings**, and
* **clinically significant errors** in six categories:
  (a) false report of a finding in the candidate, (b) missing a finding present in the reference,
  (c) misidentification of a finding's anatomic location/position, (d) misassessment of the severity of a
  finding, (e) mentioning a comparison that isn't in the reference, (f) omitting a comparison detailing a
  change from a prior study.

The score is ``matched / (matched + sum of significant errors)``, and 0 when nothing matches.

This module has three parts:

1. :func:`green_from_counts` — the formula;
2. :func:`parse_green_output` — reading a judge's text (the GREEN template with ``[Clinically Significant
   Errors]:`` and ``[Matched Findings]:`` sections). Malformed output never raises: it is marked, counted and
   left out of the mean (and reported in the result's notes);
3. judges: :func:`green_official` runs the official GREEN model through the ``green_score`` package when the
   user gives local weights; :func:`green_offline` is an **offline approximation** that derives the six error
   categories and the matched findings from *structured findings* — the world's ground-truth records, or the
   rule-based labelers' mentions (label, laterality, severity, location words, change words) for free text.
   It is fast (hundreds of pairs per second) so that the DPO chapter can rank sampled reports with it, but it
   only sees what the labelers see: it is not the LLM judge and its numbers are not GREEN numbers from a paper.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from .result import MetricResult
from .text import check_pairs

__all__ = ["GREEN_CATEGORIES", "GreenCounts", "green_from_counts", "parse_green_output", "green_from_outputs",
           "StructFinding", "findings_from_text", "findings_from_records", "compare_findings", "green_offline",
           "green_offline_findings", "green_official", "green_with_judge"]

GREEN_CATEGORIES = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)


@dataclass
class GreenCounts:
    """Matched findings and the six significant-error counts of one pair (``errors`` in GREEN's order a-f)."""

    matched: int
    errors: tuple[int, int, int, int, int, int]
    ok: bool = True
    problem: str = ""
    details: list[str] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        return green_from_counts(self.matched, self.errors) if self.ok else None


def green_from_counts(matched: int, errors: Sequence[int]) -> float:
    """GREEN = matched / (matched + sum(errors)); 0 when ``matched`` is 0."""
    if len(errors) != 6:
        raise ValueError(f"GREEN has six significant-error categories, got {len(errors)} counts")
    if matched < 0 or any(e < 0 for e in errors):
        raise ValueError(f"GREEN counts must be non-negative, got matched={matched}, errors={list(errors)}")
    if matched == 0:
        return 0.0
    return matched / (matched + sum(errors))


# ----------------------------------------------------------------------------------------------- parsing
_SECTION = r"\[\s*{name}\s*\]\s*:?(.*?)(?=\n\s*\[[A-Za-z ]+\]\s*:|\Z)"
_SUB = re.compile(r"\(\s*([a-f1-6])\s*\)[^:\n]*:\s*(\d+)", re.IGNORECASE)
_FIRST_INT = re.compile(r"^\s*(\d+)")


def parse_green_output(text) -> GreenCounts:
    """Read a GREEN judge's output into counts; never raises on malformed text.

    Accepts the GREEN template (sub-categories ``(a)``-``(f)``, or ``(1)``-``(6)`` as GPT-4 writes them).
    ``ok`` is False (score None) when the text is not a string or has no ``[Clinically Significant Errors]``
    section, as in the official implementation; a missing ``[Matched Findings]`` section counts 0 matches
    (score 0) and is noted in ``problem``.
    """
    if not isinstance(text, str):
        return GreenCounts(0, (0,) * 6, ok=False, problem=f"judge output is {type(text).__name__}, not text")
    sig = re.search(_SECTION.format(name="Clinically Significant Errors"), text, re.DOTALL | re.IGNORECASE)
    if sig is None:
        return GreenCounts(0, (0,) * 6, ok=False, problem="no [Clinically Significant Errors] section")
    errors = [0] * 6
    body = sig.group(1).strip()
    if not body.lower().startswith("no"):
        for key, count in _SUB.findall(body):
            idx = "abcdef".index(key.lower()) if key.isalpha() else int(key) - 1
            errors[idx] = int(count)
    problem = ""
    mat = re.search(_SECTION.format(name="Matched Findings"), text, re.DOTALL | re.IGNORECASE)
    matched = 0
    if mat is None:
        problem = "no [Matched Findings] section (counted as 0 matches)"
    else:
        m = _FIRST_INT.match(mat.group(1))
        if m:
            matched = int(m.group(1))
        elif not mat.group(1).strip().lower().startswith("no"):
            problem = "[Matched Findings] without a leading count (counted as 0 matches)"
    return GreenCounts(matched, tuple(errors), ok=True, problem=problem)


def green_from_outputs(outputs: Sequence, convention: str = "GREEN judge output") -> MetricResult:
    """Mean GREEN over parseable judge outputs; malformed outputs are counted in ``notes`` and excluded."""
    counts = [parse_green_output(o) for o in outputs]
    return _result(counts, convention)


def _result(counts: list[GreenCounts], convention: str) -> MetricResult:
    scores = np.array([c.score if c.ok else np.nan for c in counts], dtype=float)
    bad = [i for i, c in enumerate(counts) if not c.ok]
    notes = []
    if bad:
        notes.append(f"{len(bad)} malformed judge outputs excluded from the mean (indices {bad[:10]})")
    warned = sum(1 for c in counts if c.ok and c.problem)
    if warned:
        notes.append(f"{warned} outputs lacked a matched-findings count (scored 0)")
    valid = scores[~np.isnan(scores)]
    err = np.array([c.errors for c in counts], dtype=float).reshape(len(counts), 6)
    extra = {"matched": np.array([c.matched for c in counts]), "errors": err, "counts": counts}
    return MetricResult("GREEN", float(valid.mean()) if len(valid) else float("nan"),
                        convention + "; score = matched / (matched + significant errors a-f), 0 if no match",
                        scores, len(counts), notes, extra)


# ---------------------------------------------------------------------------------------- offline judge
@dataclass(frozen=True)
class StructFinding:
    """A finding as the offline judge compares it.

    key: what the finding is (a label such as "Pleural effusion", or a world kind outside the label space)
    status: 1 present, -1 uncertain, 0 explicitly absent
    side: "left", "right", "bilateral" or None;  severity: 1, 2, 3 or None
    location: coarse zones ("upper", "middle", "lower") from the location words;
    change: "new", "worse", "better", "same" or None
    """

    key: str
    status: int = 1
    side: str | None = None
    severity: int | None = None
    location: frozenset = frozenset()
    change: str | None = None


_SEV = {"mild": 1, "moderate": 2, "severe": 3}
# Location words are compared as coarse zones so that "left base" and "left lower lobe" agree; words without a
# zone ("lobe", "aorta", "pleural space") never create a location error.
_ZONE = {"upper": "upper", "apex": "upper", "apical": "upper", "apices": "upper",
         "middle": "middle", "mid": "middle", "lingula": "middle", "lingular": "middle", "perihilar": "middle",
         "hilar": "middle", "lower": "lower", "base": "lower", "bases": "lower", "basal": "lower",
         "basilar": "lower", "costophrenic": "lower", "retrocardiac": "lower"}


def _zones(words) -> frozenset:
    return frozenset(_ZONE[w] for w in words if w in _ZONE)
_CHG = {"new": "new", "increased": "worse", "decreased": "better", "unchanged": "same", "resolved": "better"}


def findings_from_records(records: Iterable, key: str = "label") -> list[StructFinding]:
    """Structured findings from world records (objects or dicts with kind/label/side/severity/location/change).

    ``key="label"`` keys findings by their label-space name (falling back to ``kind`` for findings outside the
    label space), which is what the text labelers produce, so records can be compared with free text.
    """
    out = []
    for r in records:
        get = r.get if isinstance(r, dict) else (lambda k, d=None, r=r: getattr(r, k, d))
        name = get(key) or get("kind")
        if name is None:
            raise ValueError(f"finding record without {key!r} or 'kind': {r!r}")
        change = get("change")
        status = 0 if change == "resolved" else (-1 if get("certainty", "definite") == "uncertain" else 1)
        loc = get("location") or ""
        out.append(StructFinding(str(name), status, get("side"), _SEV.get(get("severity")),
                                 _zones(re.findall(r"[a-z]+", str(loc).lower())), _CHG.get(change)))
    return out


def findings_from_text(text: str, labeler: str = "chexpert") -> list[StructFinding]:
    """Structured findings of a free-text report, from a rule-based labeler's mentions (one per label).

    Results are cached per (text, labeler): ranking many sampled candidates against one reference labels the
    reference once.
    """
    return list(_findings_from_text(text, labeler))


@lru_cache(maxsize=50_000)
def _findings_from_text(text: str, labeler: str) -> tuple[StructFinding, ...]:
    mentions = _mention_fn(labeler)(text)
    best: dict[str, list] = {}
    rank = {1: 3, -1: 2, 0: 1}
    for m in mentions:
        cur = best.get(m.label)
        if cur is None or rank[m.status] > rank[cur[0].status]:
            best[m.label] = [m]
        elif rank[m.status] == rank[cur[0].status]:
            cur.append(m)
    out = []
    for label, ms in best.items():
        sides = {m.laterality for m in ms if m.laterality}
        side = None if not sides else ("bilateral" if len(sides) > 1 or "bilateral" in sides else sides.pop())
        sev = [m.severity for m in ms if m.severity]
        chg = [m.change for m in ms if m.change]
        loc = _zones(w for m in ms for w in m.location)
        out.append(StructFinding(label, ms[0].status, side, max(sev) if sev else None, loc, chg[0] if chg else None))
    return tuple(out)


def _mention_fn(labeler: str) -> Callable:
    if labeler == "chexpert":
        from .chexpert_labeler import CHEXPERT_LABELER
        return CHEXPERT_LABELER.mentions
    if labeler == "ctrate":
        from .ctrate_labeler import CTRATE_LABELER
        return CTRATE_LABELER.mentions
    if labeler == "ct":
        from .ct_findings import CT_FINDINGS_LABELER
        return CT_FINDINGS_LABELER.mentions
    raise ValueError(f"labeler must be 'chexpert', 'ctrate' or 'ct', got {labeler!r}")


_COMPARISON = re.compile(r"\b(?:compared (?:to|with)|comparison|prior (?:study|exam|examination|radiograph|ct|film)|"
                         r"previous (?:study|exam|examination|radiograph|ct|film)|since the (?:prior|previous|last)|"
                         r"interval(?:ly)?|unchanged|stable|increased|decreased|improved|worsened|new(?:ly)?|"
                         r"resolved|again (?:seen|noted|demonstrated))\b", re.IGNORECASE)


def compare_findings(ref: Sequence[StructFinding], cand: Sequence[StructFinding], count_negatives: bool = True,
                     ref_text: str | None = None, cand_text: str | None = None) -> GreenCounts:
    """Count GREEN's categories between two lists of structured findings.

    Rules (documented approximation of the LLM judge):

    * a key present or uncertain on both sides is a **matched finding**; on top of the match,
      (c) if both give a side and the sides differ, or both give location words and share none;
      (d) if both give a severity and they differ;
      (f) if the reference states a change (new / worse / better) and the candidate states none or another;
      (e) if the candidate states a change (new / worse / better) that the reference does not have;
    * present in the candidate but absent or unmentioned in the reference: (a);
    * present in the reference but absent or unmentioned in the candidate: (b);
    * explicitly absent on both sides: a matched (negative) finding when ``count_negatives``;
    * with texts given, a candidate that talks about a prior study while the reference has no comparison
      language at all gets one (e) (if no per-finding (e) was counted).
    """
    def index(fs):
        d = {}
        for f in fs:
            old = d.get(f.key)
            if old is None or (old.status == 0 and f.status != 0):
                d[f.key] = f
        return d

    R, C = index(ref), index(cand)
    matched, e = 0, [0] * 6
    details = []
    for key in sorted(set(R) | set(C)):
        r, c = R.get(key), C.get(key)
        r_pos = r is not None and r.status != 0
        c_pos = c is not None and c.status != 0
        if r_pos and c_pos:
            matched += 1
            if (r.side and c.side and r.side != c.side) or (r.location and c.location and not (r.location & c.location)):
                e[2] += 1
                details.append(f"(c) {key}: location {r.side or ''} {sorted(r.location)} vs {c.side or ''} {sorted(c.location)}")
            if r.severity and c.severity and r.severity != c.severity:
                e[3] += 1
                details.append(f"(d) {key}: severity {r.severity} vs {c.severity}")
            r_chg = r.change if r.change in ("new", "worse", "better") else None
            c_chg = c.change if c.change in ("new", "worse", "better") else None
            if r_chg and c_chg != r_chg:
                e[5] += 1
                details.append(f"(f) {key}: change {r_chg} reported as {c_chg}")
            elif c_chg and not r_chg:
                e[4] += 1
                details.append(f"(e) {key}: comparison '{c_chg}' not in the reference")
        elif c_pos:
            e[0] += 1
            details.append(f"(a) {key}")
        elif r_pos:
            e[1] += 1
            details.append(f"(b) {key}")
        elif count_negatives and r is not None and c is not None:
            matched += 1
    if cand_text is not None and ref_text is not None and e[4] == 0:
        if _COMPARISON.search(cand_text) and not _COMPARISON.search(ref_text):
            e[4] += 1
            details.append("(e) candidate refers to a prior study; the reference does not")
    return GreenCounts(matched, tuple(e), details=details)


def green_offline(preds, refs, labeler: str = "chexpert", count_negatives: bool = True,
                  on_none: str = "error") -> MetricResult:
    """Offline GREEN approximation on free text: both reports -> labeler mentions -> :func:`compare_findings`.

    ``labeler``: "chexpert" (chest X-ray, 14 labels), "ctrate" (chest CT, 18 labels) or "ct" (CT-RATE's 18 plus
    the world's findings outside that label space: thyroid, breast, bone, liver, kidney, ...).
    """
    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    counts = [compare_findings(findings_from_text(rr, labeler), findings_from_text(pp, labeler), count_negatives,
                               rr, pp) for pp, rr in zip(p, r)]
    res = _result(counts, f"offline GREEN approximation (rule-based '{labeler}' labeler findings, not the LLM judge)")
    res.notes.extend(notes)
    return res


def green_offline_findings(ref_findings: Sequence[Sequence[StructFinding]],
                           cand_findings: Sequence[Sequence[StructFinding]], count_negatives: bool = True) -> MetricResult:
    """Offline GREEN between lists of structured findings (e.g. world records vs labeler output)."""
    if len(ref_findings) != len(cand_findings):
        raise ValueError(f"reference and candidate finding lists differ in length: {len(ref_findings)} vs "
                         f"{len(cand_findings)}")
    counts = [compare_findings(r, c, count_negatives) for r, c in zip(ref_findings, cand_findings)]
    return _result(counts, "offline GREEN approximation on structured findings (not the LLM judge)")


# -------------------------------------------------------------------------------------------- LLM judges
def green_with_judge(preds, refs, judge: Callable[[str, str], str], on_none: str = "error") -> MetricResult:
    """GREEN with any judge: ``judge(reference, candidate) -> text`` in the GREEN template, parsed here."""
    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    outputs = [judge(rr, pp) for pp, rr in zip(p, r)]
    res = green_from_outputs(outputs, "GREEN from a user-given judge, parsed by rrg_lite")
    res.extra["outputs"] = outputs
    res.notes.extend(notes)
    return res


def green_official(preds, refs, model_path: str, batch_size: int = 8, cuda: bool | None = None,
                   allow_download: bool = False) -> MetricResult:
    """The official GREEN model through the ``green_score`` package (pip install green-score).

    Args:
        model_path: a local directory with the GREEN weights (e.g. a copy of StanfordAIMI/GREEN-RadLlama2-7b).
            A hub id is refused unless ``allow_download=True`` — nothing is downloaded by default.
        cuda: run on GPU (default: if available).
    """
    if not allow_download and not os.path.isdir(model_path):
        raise FileNotFoundError(f"GREEN weights: {model_path!r} is not a local directory; download the model "
                                f"yourself (e.g. StanfordAIMI/GREEN-RadLlama2-7b) or pass allow_download=True")
    try:
        from green_score import GREEN
    except ImportError as err:
        raise ImportError("green_official needs the 'green-score' package (pip install green-score); the offline "
                          "approximation green_offline() needs nothing") from err
    p, r, notes = check_pairs(preds, refs)
    if cuda is None:
        import torch
        cuda = torch.cuda.is_available()
    scorer = GREEN(model_id_or_path=model_path, do_sample=False, batch_size=batch_size,
                   return_0_if_no_green_score=True, cuda=cuda)
    result = scorer(r, p)
    mean, _, scores = result[0], result[1], result[2]
    res = MetricResult("GREEN", float(mean), f"official GREEN model ({os.path.basename(model_path.rstrip('/'))}) via "
                       "the green_score package", np.asarray(scores, dtype=float), len(p), notes)
    if len(result) > 4:
        res.extra["table"] = result[4]
    return res
