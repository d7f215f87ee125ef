"""A small NegEx-style engine for rule-based report labelers.

A labeler is a table ``label -> list of (regex, polarity)``. For every sentence of a report the engine

1. finds **mentions** of each label (regexes over lower-cased text; a pattern's polarity says whether a match
   is a plain mention, whose status the context decides, or a phrase that is negative or uncertain in itself,
   such as "heart size is normal" or "borderline cardiomegaly");
2. finds **triggers** in the sentence: negation before a mention ("no", "without", "no evidence of",
   "resolution of"), negation after it ("was not detected", "has resolved", "has been removed"), uncertainty
   before ("may", "possible", "could represent", "concerning for", "X or Y") and after ("cannot be excluded",
   "is suspected"), and pseudo-negations that must not count ("no change in", "not significantly changed");
3. cuts the sentence into **clauses** at terminators ("but", "however", "which", "there is", "... is present")
   so that a trigger only reaches mentions in its own clause;
4. decides each mention's status with the precedence of the CheXpert labeler: a negated uncertainty
   ("cannot be excluded", "not ruled out") is *uncertain*; otherwise negation wins over uncertainty
   ("no findings concerning for pneumonia" is negative); otherwise uncertain; otherwise positive;
5. aggregates per label over the report: positive if any mention is positive, else uncertain if any is
   uncertain, else negative if any is negative, else blank (NaN).

Statuses use CheXpert's codes: 1 positive, 0 negative, -1 uncertain, NaN not mentioned.
Mentions also carry simple attributes (laterality, severity, change words, location words from the clause) that
the offline GREEN judge compares.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .text import looks_non_english

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
MENTION, NEG_PHRASE, UNC_PHRASE = "mention", "negative", "uncertain"

# ---------------------------------------------------------------------------------------------- triggers
_NEG_UNC = re.compile(
    r"\b(?:cannot|can ?not|can't|could not|couldn't|not|difficult to|hard to|unable to|impossible to)\s+"
    r"(?:be\s+)?(?:entirely\s+|completely\s+|definitely\s+|totally\s+|fully\s+|reliably\s+|confidently\s+)?"
    r"(?:excluded|exclude|ruled out|rule out|r/o|distinguished|differentiated|assessed|evaluated)\b"
    r"|\bnot\s+(?:entirely\s+|completely\s+)?(?:certain|sure|clear)\b"
)
_NEG_PRE = re.compile(
    r"\b(?:no|not|without|absence of|absent|negative for|free of|clear of|resolution of|resolved|removal of|"
    r"removed|rather than|instead of|never|neither|nor|lack of|lacks|ruled out|excluded|exclusion of|"
    r"interval clearing of|has cleared|disappearance of|nonvisualization of|non-visualization of)\b"
)
_NEG_POST = re.compile(
    r"\b(?:(?:is|are|was|were|has been|have been|be|being)\s+)?(?:also\s+)?"
    r"(?:not\s+(?:seen|identified|present|detected|observed|visualized|visualised|appreciated|evident|noted|"
    r"demonstrated|visible|apparent|found|shown|depicted|recognized|recognised|included|monitored|encountered)"
    r"|(?:has|have)\s+(?:since\s+|now\s+|completely\s+|nearly\s+)?(?:resolved|cleared|been removed|disappeared|been excluded|been withdrawn)"
    r"|resolved|absent|removed|no longer\s+\w+|(?:now\s+)?gone|excluded|ruled out|negative)\b"
)
_UNC_PRE = re.compile(
    r"\b(?:may|might|could|possible|possibly|probable|probably|likely|questionable|question of|questioned|"
    r"suspect|suspected|suspicious|suspicion|concern|concerning|worrisome|suggest|suggests|suggested|"
    r"suggestive|suggesting|differential|equivocal|borderline|indeterminate|uncertain|presumed|presumably|"
    r"perhaps|versus|vs|either|raises? the (?:possibility|question)|consider|considered|cannot be distinguished|"
    r"evaluate for|evaluation for|assess for|rule out|r/o|to exclude|eval for|"
    r"potential|potentially|may represent|could represent|can represent|ddx|not clearly|unclear)\b"
)
_UNC_POST = re.compile(
    r"\b(?:(?:is|are|was|were)\s+)?(?:also\s+)?(?:possible|probable|likely|suspected|questioned|not excluded|"
    r"considered|in the differential|a consideration|favou?red|not entirely excluded|difficult to exclude|"
    r"cannot be (?:excluded|ruled out)|not ruled out|(?:may|might|could)\s+(?:be\s+)?(?:present|seen|exist))\b"
    r"|\?"
)
_OR = re.compile(r"\b(?:or|and/or|versus|vs)\b")
_PSEUDO = re.compile(
    r"\bno\s+(?:(?:significant|substantial|appreciable|definite|major|interval|further|other|acute|"
    r"significant interval|real|notable|marked)\s+)*(?:change|changes|increase|decrease|progression|worsening|"
    r"improvement|difference|growth)\b"
    r"|\bnot\s+(?:significantly\s+|substantially\s+|appreciably\s+|markedly\s+|much\s+)?(?:changed|increased|"
    r"decreased|improved|worsened|enlarging|grown)\b"
    r"|\bwithout\s+(?:significant\s+|interval\s+|appreciable\s+)?(?:change|changes)\b"
    r"|\bgram[- ]negative\b|\bnot only\b|\bnot well (?:seen|visualized|evaluated|assessed)\b"
    r"|\bif not\b|\bwhether or not\b|\bno\s+(?:other|additional)\s+(?:change|changes)\b"
    r"|\bnot\s+(?:present|seen|visible|identified|evident|apparent)\s+(?:on|in)\s+(?:the\s+)?(?:prior|previous|earlier|"
    r"last|preceding|comparison)\b"
)
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


def _spans(regex: re.Pattern, text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in regex.finditer(text)]


def _overlaps(a: tuple[int, int], spans: Sequence[tuple[int, int]]) -> bool:
    return any(a[0] < e and s < a[1] for s, e in spans)


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
        pseudo = _spans(_PSEUDO, s)
        neg_unc = _spans(_NEG_UNC, s)
        blocked = pseudo + neg_unc

        def clean(spans):
            return [sp for sp in spans if not _overlaps(sp, blocked)]

        neg_pre, neg_post = clean(_spans(_NEG_PRE, s)), clean(_spans(_NEG_POST, s))
        unc_pre, unc_post = clean(_spans(_UNC_PRE, s)), _spans(_UNC_POST, s)
        ors = _spans(_OR, s)
        terms = _spans(_TERMINATORS, s)
        out = []
        for label, (a, b), polarity in found:
            # clause = between the last terminator ending before the mention and the first starting after it
            c0 = max([e for st, e in terms if e <= a] + [0])
            c1 = min([st for st, e in terms if st >= b] + [len(s)])

            def pre(spans, c0=c0, a=a, b=b):
                # a pre-trigger reaches mentions after it in its clause, and mentions that contain it
                # ("the heart is not enlarged"); it must not sit inside another label's mention.
                return any(c0 <= st < b and (st < a or (a <= st and e <= b)) for st, e in spans)

            def post(spans, c1=c1, b=b, comma_stops=False):
                # an uncertainty word after a comma belongs to what follows ("opacity, likely atelectasis")
                return any(b <= st and e <= c1 and not (comma_stops and "," in s[b:st]) for st, e in spans)

            near_or = any((0 <= a - e <= 12) or (0 <= st - b <= 6) for st, e in ors if c0 <= st < c1)
            in_neg_unc = any(c0 <= st and e <= c1 for st, e in neg_unc)
            if in_neg_unc:
                status = UNCERTAIN
            elif pre(neg_pre) or post(neg_post):
                status = NEGATIVE
            elif pre(unc_pre) or post(unc_post, comma_stops=True) or polarity == UNC_PHRASE or near_or:
                status = UNCERTAIN
            elif polarity == NEG_PHRASE:
                status = NEGATIVE
            else:
                status = POSITIVE
            # attributes may sit in the verb that ends the clause ("the effusion has increased since ...")
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
