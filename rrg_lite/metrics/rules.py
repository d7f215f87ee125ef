"""A small rule engine for report labelers: lexicon mentions, with medspaCy's ConText for their context.

A labeler is a table ``label -> list of (regex, polarity)``. For every sentence of a report the engine

1. finds **mentions** of each label (regexes over lower-cased text; a pattern's polarity says whether a match
   is a plain mention, whose status the context decides, or a phrase that is negative or uncertain in itself,
   such as "heart size is normal" or "borderline cardiomegaly");
2. asks medspaCy's **ConText** (:mod:`rrg_lite.metrics.context`) which trigger phrases reach each mention:
   negation ("no", "without", "was not detected", "has resolved"), uncertainty ("may", "possible", "X or Y",
   "is suspected"), negated uncertainty ("cannot be excluded"), requests and conditions ("correlate clinically
   for", "to rule out", "if") and the past ("history of", "sequelae of prior"); pseudo-negations ("without
   significant interval change of") count for nothing, and a trigger's scope ends at clause terminations ("but",
   "there is", "..., cardiomegaly is present", "..., and the heart size is natural");
3. drops mentions that are hypothetical or historical (not a current finding);
4. decides each remaining mention's status with the precedence of the CheXpert labeler: a negated uncertainty
   ("cannot be excluded", "not ruled out") is *uncertain*; otherwise negation wins over uncertainty
   ("no findings concerning for pneumonia" is negative); otherwise uncertain; otherwise the pattern's own
   polarity ("heart size is normal" is negative, "borderline cardiomegaly" uncertain); otherwise positive;
5. aggregates per label over the report: positive if any mention is positive, else uncertain if any is
   uncertain, else negative if any is negative, else blank (NaN).

Statuses use CheXpert's codes: 1 positive, 0 negative, -1 uncertain, NaN not mentioned.
Mentions also carry simple attributes (laterality, severity, change words, location words from the clause) that
the offline GREEN judge compares.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from .context import HIST, HYPO, NEG, NEG_UNC, UNC, classify
from .text import looks_non_english

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
MENTION, NEG_PHRASE, UNC_PHRASE = "mention", "negative", "uncertain"

# Clause boundaries for the mention attributes (laterality, severity, ...); status comes from ConText.
_TERMINATORS = re.compile(
    r"\b(?:but|however|although|though|which|whereas|while|yet|except|aside from|apart from|other than|"
    r"with the exception of|nevertheless|otherwise|there (?:is|are|has been|have been|was|were)|"
    r"(?:is|are|was|were|has|have)\s+(?:again\s+|also\s+|now\s+|still\s+|newly\s+)?(?:present|seen|noted|"
    r"identified|demonstrated|observed|detected|visualized|evident|appreciated|increased|decreased|"
    r"worsened|improved|unchanged|stable|similar|new|persistent))\b"
)

_LATERALITY = re.compile(r"\b(left|right|bilateral|bilaterally|both|unilateral)\b")
_SEVERITY = re.compile(r"\b(minimal|trace|tiny|small|mild|mildly|slight|slightly|moderate|moderately|large|"
                       r"severe|severely|marked|markedly|extensive|massive|significant|huge|borderline|subtle)\b")
_CHANGE = re.compile(r"\b(new|newly|increased|increasing|increase|enlarging|enlarged since|worsened|worsening|worse|"
                     r"progressed|progression|decreased|decreasing|decrease|improved|improving|improvement|smaller|"
                     r"unchanged|stable|persistent|persists|again|similar|resolved|resolving|interval)\b")
_LOCATION = re.compile(r"\b(upper|middle|mid|lower|apex|apical|apices|base|bases|basal|basilar|perihilar|hilar|"
                       r"retrocardiac|lingula|lingular|lobe|lobar|subpleural|peripheral|central|costophrenic|"
                       r"mediastinal|mediastinum|paratracheal|subcarinal|axillary|aortic|coronary|anterior|"
                       r"posterior|lateral|medial|segment|superior|inferior)\b")

_NOT_ON_PRIOR = re.compile(r"\bnot\s+(?:present|seen|visible|identified|evident)\s+(?:on|in)\s+(?:the\s+)?"
                           r"(?:prior|previous|earlier|last|preceding)\b")
_SEVERITY_LEVEL = {"minimal": 1, "trace": 1, "tiny": 1, "small": 1, "mild": 1, "mildly": 1, "slight": 1,
                   "slightly": 1, "subtle": 1, "borderline": 1, "moderate": 2, "moderately": 2, "significant": 2,
                   "large": 3, "severe": 3, "severely": 3, "marked": 3, "markedly": 3, "extensive": 3,
                   "massive": 3, "huge": 3}
_CHANGE_KIND = {"new": "new", "newly": "new", "increased": "worse", "increasing": "worse", "increase": "worse",
                "enlarging": "worse", "enlarged since": "worse", "worsened": "worse", "worsening": "worse",
                "worse": "worse", "progressed": "worse", "progression": "worse", "decreased": "better",
                "decreasing": "better", "decrease": "better", "improved": "better", "improving": "better",
                "improvement": "better", "smaller": "better", "unchanged": "same", "stable": "same",
                "persistent": "same", "persists": "same", "again": "same", "similar": "same",
                "resolved": "better", "resolving": "better", "interval": None}


@dataclass
class Mention:
    """One mention of a label in a report.

    ``status`` uses CheXpert codes (1, 0, -1). ``laterality`` is "left", "right", "bilateral" or None;
    ``severity`` 1 (mild/small), 2 (moderate), 3 (large/severe) or None; ``change`` "new", "worse", "better",
    "same" or None; ``location`` a sorted tuple of location words from the clause.
    """

    label: str
    status: int
    sentence: int
    start: int
    end: int
    text: str
    laterality: str | None = None
    severity: int | None = None
    change: str | None = None
    location: tuple[str, ...] = field(default_factory=tuple)


@lru_cache(maxsize=65536)
def _context_of(sentence: str, mentions: tuple) -> list[set[str]]:
    # Reports repeat sentences ("No pneumothorax."): the ConText result is a pure function of the sentence and
    # its mentions, so it is cached.
    return classify(sentence, list(mentions))


def _spans(regex: re.Pattern, text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in regex.finditer(text)]


class RuleLabeler:
    """Rule-based labeler over a fixed label list (see the module docstring for the algorithm).

    Args:
        labels: label names in output order.
        patterns: ``{label: [(regex string, polarity), ...]}`` with polarity ``"mention"``, ``"negative"`` or
            ``"uncertain"``.
        derived: optional function ``(row: np.ndarray) -> None`` that fills computed labels (e.g. No Finding).
        name: used in conventions and messages.
    """

    def __init__(self, labels: Sequence[str], patterns: dict[str, list[tuple[str, str]]], name: str,
                 derived=None, exclusions: dict[str, str] | None = None):
        unknown = set(patterns) - set(labels)
        if unknown:
            raise ValueError(f"{name}: patterns for unknown labels {sorted(unknown)}")
        self.labels = tuple(labels)
        self.name = name
        self.derived = derived
        # per label: one combined regex to test the sentence quickly, then the individual patterns
        self._compiled = []
        for label in labels:
            pats = patterns.get(label, [])
            for regex, polarity in pats:
                if polarity not in (MENTION, NEG_PHRASE, UNC_PHRASE):
                    raise ValueError(f"{name}: bad polarity {polarity!r} for {label}")
            if pats:
                quick = re.compile("|".join(f"(?:{r})" for r, _ in pats))
                self._compiled.append((label, quick, [(re.compile(r), pol) for r, pol in pats]))
        # text that must not count as a mention of a label even though a pattern matches inside it
        self._exclusions = {k: re.compile(v) for k, v in (exclusions or {}).items()}
        self._index = {label: i for i, label in enumerate(self.labels)}

    # ------------------------------------------------------------------------------------------- mentions
    def mentions(self, text: str) -> list[Mention]:
        """All mentions in ``text`` with their status and attributes."""
        out: list[Mention] = []
        for si, sentence in enumerate(_sentences(text)):
            out.extend(self._sentence_mentions(sentence, si))
        return out

    def _sentence_mentions(self, s: str, si: int) -> list[Mention]:
        found = []
        for label, quick, pats in self._compiled:
            if quick.search(s) is None:
                continue
            for regex, polarity in pats:
                for m in regex.finditer(s):
                    span = (m.start(), m.end())
                    excl = self._exclusions.get(label)
                    if excl is not None and any(e.start() < span[1] and span[0] < e.end() for e in excl.finditer(s)):
                        continue
                    found.append((label, span, polarity))
        if not found:
            return []
        # one mention per place: drop a match that lies inside a longer match of the same label
        found.sort(key=lambda x: (x[1][0], -(x[1][1] - x[1][0])))
        kept = []
        for item in found:
            if not any(k[0] == item[0] and k[1][0] <= item[1][0] and item[1][1] <= k[1][1] for k in kept):
                kept.append(item)
        found = kept
        cats = _context_of(s, tuple((label, a, b) for label, (a, b), _ in found))
        terms = _spans(_TERMINATORS, s)
        out = []
        for (label, (a, b), polarity), c in zip(found, cats):
            if HYPO in c or HIST in c:
                continue  # a request, a condition or the past: not a current finding
            if NEG_UNC in c:
                status = UNCERTAIN
            elif NEG in c:  # ConText also counts a trigger inside the mention ("the heart is not enlarged")
                status = NEGATIVE
            elif UNC in c or polarity == UNC_PHRASE:
                status = UNCERTAIN
            elif polarity == NEG_PHRASE:
                status = NEGATIVE
            else:
                status = POSITIVE
            # attributes come from the mention's clause, and may sit in the verb that ends it
            # ("the effusion has increased since ...")
            c0 = max([e for st, e in terms if e <= a] + [0])
            c1 = min([st for st, e in terms if st >= b] + [len(s)])
            after = [st for st, e in terms if st > c1]
            clause = s[c0:(after[0] if after else len(s))]
            out.append(Mention(label, status, si, a, b, s[a:b], *_attributes(clause)))
        return out

    # --------------------------------------------------------------------------------------------- labels
    def label_one(self, text: str) -> np.ndarray:
        """(L,) float array of 1 / 0 / -1 / NaN for one report."""
        row = np.full(len(self.labels), np.nan)
        for m in self.mentions(text):
            j = self._index[m.label]
            row[j] = _combine(row[j], m.status)
        if self.derived is not None:
            self.derived(row)
        return row

    def __call__(self, texts: Iterable[str]) -> np.ndarray:
        return self.label(texts)

    def label(self, texts: Iterable[str]) -> np.ndarray:
        """(N, L) float array of CheXpert codes (1, 0, -1, NaN) for N reports.

        ``None`` and non-strings raise ``TypeError``; empty reports give an all-blank row (plus derived labels).
        """
        if isinstance(texts, str):
            raise TypeError(f"{self.name}: pass a list of reports, not a single string")
        rows = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{self.name}: report {i} is {type(t).__name__}, expected str")
            rows.append(self.label_one(t))
        return np.array(rows).reshape(len(rows), len(self.labels))

    def non_english(self, texts: Iterable[str]) -> list[int]:
        """Indices of reports that look non-English (their rows are blank because the rules are English)."""
        return [i for i, t in enumerate(texts) if isinstance(t, str) and looks_non_english(t)]


def _combine(old: float, new: int) -> float:
    """Aggregate two statuses of one label: positive > uncertain > negative > blank."""
    rank = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}
    if np.isnan(old):
        return float(new)
    return float(new) if rank[new] > rank[int(old)] else old


def _attributes(clause: str):
    lat = _LATERALITY.findall(clause)
    laterality = None
    if lat:
        sides = {"left" if w == "left" else "right" if w == "right" else "bilateral" for w in lat if w != "unilateral"}
        laterality = "bilateral" if ("bilateral" in sides or len(sides) > 1) else (sides.pop() if sides else None)
    sev = [_SEVERITY_LEVEL[w] for w in _SEVERITY.findall(clause)]
    severity = max(sev) if sev else None
    change = None
    if _NOT_ON_PRIOR.search(clause):  # "was not present on the prior study" = new
        change = "new"
    for w in ([] if change else _CHANGE.findall(clause)):
        kind = _CHANGE_KIND.get(w)
        if kind is not None:
            change = kind
            break
    location = tuple(sorted(set(_LOCATION.findall(clause))))
    return laterality, severity, change, location


_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+|(?<=[a-z])\.(?=[A-Z])")
_HEADER = re.compile(r"^\s*[A-Z][A-Z /&]{2,}:\s*")


# Sections that describe the request, not the image: real labelers (CheXpert, CheXbert) read findings/impression.
_SKIP_SECTIONS = re.compile(r"(?:^|(?<=\s))(?:INDICATION|INDICATIONS|HISTORY|CLINICAL HISTORY|CLINICAL INFORMATION|"
                            r"REASON FOR EXAM(?:INATION)?|REASON FOR STUDY|COMPARISON|COMPARISONS|TECHNIQUE|EXAMINATION|"
                            r"EXAM|PROCEDURE|NOTIFICATION|RECOMMENDATION\(S\)|RECOMMENDATIONS?)\s*:.*?"
                            r"(?=\s[A-Z][A-Z /&()]{2,}:|\Z)", re.DOTALL)


def _sentences(text: str) -> list[str]:
    """Lower-cased sentences; section headers such as 'FINDINGS:' are dropped, decimals ("1.5 cm") survive.

    Sections about the request rather than the image (INDICATION, HISTORY, COMPARISON, TECHNIQUE, ...) are skipped
    when the report has upper-case section headers.
    """
    out = []
    text = _SKIP_SECTIONS.sub("\n", text)
    for part in _SPLIT.split(text):
        if not part:
            continue
        part = _HEADER.sub("", part.strip())
        if part:
            out.append(part.lower())
    return out
