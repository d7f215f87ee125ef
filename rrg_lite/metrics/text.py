"""Input checks and the named text normalisations that NLG metrics are computed on.

Scores such as BLEU depend on how text is split into words, so the normalisation is part of a metric's
name. Three conventions are offered:

``"r2gen"`` (default)
    The cleaning used by R2Gen and most chest X-ray RRG code that followed it: whitespace and runs of
    ``_``/``.`` collapsed, list numbers ("1. ", " 2. ") removed, lower-cased, split into sentences at
    ". ", the punctuation ``. , ? ; * ! % ^ & _ + ( ) : < = > @ [ ] { }`` and quotes, slashes and
    backslashes deleted inside each sentence (hyphens and digits are kept), sentences re-joined as
    ``"s1 . s2 . s3 ."``. The scorers are then called directly on this text — **no PTBTokenizer** (the
    COCO-caption pipeline tokenises with Stanford CoreNLP first; R2Gen-style RRG evaluation does not).
``"m4cxr"``
    Lower-case, then split words from punctuation (``\\w+`` or one non-space symbol per token), joined with
    single spaces.
``"whitespace"``
    The text as given, only stripped and with every whitespace run (newlines included) collapsed to one
    space. Needed because pycocoevalcap's ROUGE-L splits on single spaces and its METEOR talks to Java one
    line at a time.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, Sequence

__all__ = ["NORMALIZERS", "normalize", "normalize_r2gen", "normalize_m4cxr", "normalize_whitespace", "wordpunct",
           "check_pairs", "check_texts", "looks_non_english", "split_sentences"]

_WS = re.compile(r"\s+")


def normalize_whitespace(text: str) -> str:
    return _WS.sub(" ", text).strip()


# R2Gen's sentence cleaner deletes these characters (written out explicitly: the original regex hides several
# of them inside the range ":-\[" ) and also quotes, slashes and backslashes.
_R2GEN_DELETE = re.compile(r"[.,?;*!%^&_+():<=>@\[\]{}\"'/\\]")


def normalize_r2gen(text: str) -> str:
    """R2Gen-style report cleaning (see the module docstring); ``""`` stays ``""``."""
    t = text.replace("\n", " ")
    t = re.sub(r"_{2,}", "_", t)
    t = re.sub(r" {2,}", " ", t)
    t = re.sub(r"\.{2,}", ".", t)
    # list numbering: "1. " anywhere, and " 2. " ... " 5. " (R2Gen also turns ". 2. " into ". ")
    t = t.replace("1. ", "")
    t = re.sub(r"\. [2-5]\. ", ". ", t)
    t = re.sub(r" [2-5]\. ", ". ", t)
    t = t.strip().lower()
    if not t:
        return ""
    sentences = [_R2GEN_DELETE.sub("", s.strip()) for s in t.split(". ")]
    return " . ".join(sentences) + " ."


# NLTK's ``wordpunct_tokenize`` regular expression (written here so the metrics run without NLTK): runs of word
# characters, or runs of other non-space characters ("..." and ")." stay one token each).
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")


def wordpunct(text: str) -> list[str]:
    """NLTK's wordpunct tokens: ``"no effusion..."`` -> ``["no", "effusion", "..."]``."""
    return _WORDPUNCT.findall(text)


def normalize_m4cxr(text: str) -> str:
    """M4CXR's official text handling: lower-case, then wordpunct tokens joined by spaces
    (``"No effusion... (Stable)."`` -> ``"no effusion ... ( stable )."``)."""
    return " ".join(wordpunct(text.lower()))


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "r2gen": normalize_r2gen,
    "m4cxr": normalize_m4cxr,
    "whitespace": normalize_whitespace,
}


def normalize(texts: Sequence[str], convention: str = "r2gen") -> list[str]:
    """Apply a named normalisation to every text (after :func:`check_texts`)."""
    if convention not in NORMALIZERS:
        raise ValueError(f"unknown text normalisation {convention!r}; choose one of {sorted(NORMALIZERS)}")
    if isinstance(texts, str):
        raise TypeError("normalize takes a list of texts, got one string (it would be read character by character)")
    fn = NORMALIZERS[convention]
    # every convention ends with a single-spaced, stripped string (pycocoevalcap splits on single spaces)
    return [normalize_whitespace(fn(t)) for t in texts]


def check_texts(texts, what: str = "texts", on_none: str = "error") -> tuple[list[str], list[int]]:
    """Validate a sequence of reports.

    Args:
        texts: a list/tuple (or other non-string sequence) of ``str``.
        what: a name for error messages ("predictions", "references").
        on_none: ``"error"`` (default) raises on ``None`` entries; ``"empty"`` scores them as empty reports
            and returns their indices so that callers can count them.

    Returns:
        (list of str, indices that were None)
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a list of reports, got a single {type(texts).__name__}; wrap it in a list")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"{what} must be a list of reports, got {type(texts).__name__}") from None
    none_idx = [i for i, t in enumerate(items) if t is None]
    if none_idx and on_none == "error":
        raise ValueError(f"{what} contain None at index {none_idx[:10]}{' ...' if len(none_idx) > 10 else ''}; "
                         f"pass on_none='empty' to score them as empty reports (they are then counted)")
    if on_none not in ("error", "empty"):
        raise ValueError(f"on_none must be 'error' or 'empty', got {on_none!r}")
    bad = [(i, type(t).__name__) for i, t in enumerate(items) if t is not None and not isinstance(t, str)]
    if bad:
        raise TypeError(f"{what} must be strings; index {bad[0][0]} is {bad[0][1]}")
    return ["" if t is None else t for t in items], none_idx


def check_pairs(preds, refs, on_none: str = "error") -> tuple[list[str], list[str], list[str]]:
    """Validate predictions and references together; returns (preds, refs, notes).

    Lists of different lengths raise ``ValueError`` naming both lengths. Notes count empty and None reports.
    """
    p, p_none = check_texts(preds, "predictions", on_none)
    r, r_none = check_texts(refs, "references", on_none)
    if len(p) != len(r):
        raise ValueError(f"predictions and references differ in length: {len(p)} predictions, {len(r)} references")
    notes = []
    if p_none:
        notes.append(f"{len(p_none)} predictions were None (scored as empty)")
    if r_none:
        notes.append(f"{len(r_none)} references were None (scored as empty)")
    n_empty_p = sum(1 for i, t in enumerate(p) if not t.strip() and i not in set(p_none))
    n_empty_r = sum(1 for i, t in enumerate(r) if not t.strip() and i not in set(r_none))
    if n_empty_p:
        notes.append(f"{n_empty_p} empty predictions")
    if n_empty_r:
        notes.append(f"{n_empty_r} empty references")
    return p, r, notes


def looks_non_english(text: str, threshold: float = 0.15) -> bool:
    """True when a large share of the letters carry diacritics or are not Latin (e.g. Vietnamese reports).

    The rule-based labelers only know English, so callers use this to warn instead of returning a silent
    "nothing found".
    """
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    foreign = 0
    for c in letters:
        if not c.isascii():
            foreign += 1
    return foreign / len(letters) > threshold or _has_vietnamese_marks(text)


def _has_vietnamese_marks(text: str) -> bool:
    decomposed = unicodedata.normalize("NFD", text)
    marks = sum(1 for c in decomposed if unicodedata.category(c) == "Mn")
    return marks >= 3 and marks / max(1, len(text.split())) > 0.3


_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Split a report into sentences at ., !, ?, ; and newlines (decimal points such as "1.5 cm" survive)."""
    parts = _SENT_SPLIT.split(text)
    return [p.strip() for p in parts if p and p.strip()]
