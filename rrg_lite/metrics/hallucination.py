"""Input-agnostic hallucination rate (LLM-RG4).

Some report content cannot be inferred from the images a model sees: **comparisons** with a prior study,
**prior procedures**, the **view** of the image and **communications** with clinicians (Nguyen et al. 2023's
categories, used by LLM-RG4). LLM-RG4 measures "hall." = the share of generated reports that contain any of
these, with a BERT classifier (DiscBERT). This module is a rule-based, offline detector of the same four
categories (regexes over sentences); it gives the same kind of number, not DiscBERT's.

When the model *is* given a prior study (scenarios "sw"/"mw"), comparisons are inferable: pass
``allowed=("comparison",)`` to leave them out of the rate.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .result import MetricResult
from .text import check_texts

CATEGORIES = ("comparison", "prior_procedure", "view", "communication")

_PATTERNS = {
    "comparison": re.compile(
        r"\b(?:compared (?:to|with)|in comparison|comparison (?:is made |was made )?(?:to|with)|prior (?:study|studies|exam|"
        r"examination|radiograph|film|ct|image|imaging)|previous (?:study|exam|examination|radiograph|film|ct|image)|"
        r"since the (?:prior|previous|last|recent)|since \w+ (?:study|exam)|interval(?:ly)? (?:increase|decrease|"
        r"development|change|improvement|worsening|resolution|placement|removal|growth)|no interval change|"
        r"(?:is|are|remains?|appears?) (?:unchanged|stable)|unchanged|stable|again (?:seen|noted|demonstrated|visualized)|"
        r"(?:has|have) (?:increased|decreased|improved|worsened|resolved|progressed)|newly|new since|"
        r"(?:slightly |mildly )?(?:increased|decreased|improved|worsened) (?:from|since|compared)|persistent|persists|"
        r"redemonstrat\w+|as before|previously (?:seen|noted|described))\b", re.IGNORECASE),
    "prior_procedure": re.compile(
        r"\b(?:status post|s/p|post-?operative|post-?surgical|has undergone|underwent|after (?:the )?(?:surgery|resection|"
        r"lobectomy|decortication|placement|removal|procedure|thoracentesis)|(?:has|have) been (?:placed|removed|inserted|"
        r"repositioned|advanced|withdrawn|exchanged)|interval (?:placement|removal|insertion)|since (?:placement|"
        r"removal|surgery)|following (?:surgery|resection|removal|placement))\b", re.IGNORECASE),
    "view": re.compile(
        r"\b(?:pa and lateral|ap and lateral|frontal and lateral|(?:single |portable )?(?:ap|pa|frontal|lateral) "
        r"(?:view|views|radiograph|image|projection)s?|portable (?:ap |upright |semi-upright |supine )?(?:chest|view|"
        r"radiograph|film)|(?:upright|supine|semi-?upright|semi-?erect) (?:ap |pa |portable )?(?:view|position|"
        r"radiograph|film|chest)|views? of the chest|lateral view|single view|two views)\b", re.IGNORECASE),
    "communication": re.compile(
        r"\b(?:discussed with|communicated (?:to|with|by)|notified|telephone|telephoned|paged|called (?:to|the)|"
        r"spoke (?:with|to)|conveyed to|informed|dr\.? [a-z]+|at \d{1,2}:\d{2}|findings? (?:was|were) (?:discussed|"
        r"communicated|relayed)|by phone|via phone|reported to)\b", re.IGNORECASE),
}


def detect_input_agnostic(text: str) -> dict[str, bool]:
    """Which of the four input-agnostic categories a report contains."""
    return {c: bool(_PATTERNS[c].search(text)) for c in CATEGORIES}


def hallucination_rate(reports, allowed: Sequence[str] = (), on_none: str = "error") -> dict[str, MetricResult]:
    """Share of reports with comparison / prior-procedure / view / communication content.

    Returns ``{"hall.": rate over any not-allowed category, "hall. comparison": ..., ...}``.
    """
    unknown = set(allowed) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; choose from {CATEGORIES}")
    texts, none_idx = check_texts(reports, "reports", on_none)
    flags = np.array([[detect_input_agnostic(t)[c] for c in CATEGORIES] for t in texts], dtype=bool).reshape(len(texts), 4)
    keep = [i for i, c in enumerate(CATEGORIES) if c not in allowed]
    any_ = flags[:, keep].any(axis=1).astype(float)
    notes = [f"{len(none_idx)} reports were None (scored as empty)"] if none_idx else []
    conv = ("rule-based detector of LLM-RG4's input-agnostic categories (comparison, prior procedure, view, "
            f"communication){'; allowed: ' + ', '.join(allowed) if allowed else ''}; share of reports")
    out = {"hall.": MetricResult("hall.", float(any_.mean()) if len(texts) else float("nan"), conv, any_, len(texts), notes)}
    for i, c in enumerate(CATEGORIES):
        v = flags[:, i].astype(float)
        out[f"hall. {c}"] = MetricResult(f"hall. {c}", float(v.mean()) if len(texts) else float("nan"), conv, v, len(texts))
    return out
