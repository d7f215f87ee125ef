"""CT findings beyond CT-RATE's 18 labels, for the offline GREEN judge on CT reports.

GREEN counts every clinically significant finding, not only the 18 that CT-RATE labels. This labeler adds
mention rules for findings that chest/abdomen CT reports (and the synthetic world) describe per region —
thyroid and breast lesions, bone lesions, liver cysts and masses, steatosis, organ enlargement, renal cysts and
stones, gallstones, pelvic nodes and free fluid — to the CT-RATE rules. The extra label names are the world's
finding kinds, so :func:`rrg_lite.metrics.green.findings_from_records` output can be compared with text.
"""
from __future__ import annotations

from .ctrate_labeler import CTRATE_LABELS, EXCLUSIONS, PATTERNS
from .rules import MENTION, RuleLabeler

EXTRA_PATTERNS = {
    "thyroid_nodule": [(r"\b(?:lesion|nodule|cyst|mass)\b[^.;]{0,40}\bthyroid\b|\bthyroid\s+(?:\w+\s+)?(?:lesion|nodule|mass)s?\b", MENTION)],
    "breast_nodule": [(r"\b(?:mass|nodule|lesion)\b[^.;]{0,30}\bbreast\b|\bbreast\s+(?:mass|nodule|lesion)s?\b", MENTION)],
    "bone_lesion": [(r"\b(?:sclerotic|lytic|blastic|osteolytic|osteoblastic)\s+(?:lesions?|focus|foci|metasta\w+)\b"
                     r"|\b(?:lesion|focus)\b[^.;]{0,30}\b(?:vertebra\w*|rib|sternum|bone|osseous)\b", MENTION)],
    "liver_cyst": [(r"\bcysts?\b[^.;]{0,40}\b(?:hepatic|liver)\b|\b(?:hepatic|liver)\s+cysts?\b", MENTION)],
    "liver_lesion": [(r"\b(?:lesion|mass)\b[^.;]{0,40}\b(?:hepatic|liver)\b|\b(?:liver|hepatic)\s+(?:\w+\s+)?(?:lesion|mass)s?\b", MENTION)],
    "hepatic_steatosis": [(r"\b(?:hepatic\s+)?steatosis\b|\bfatty\s+(?:liver|infiltration)\b", MENTION)],
    "hepatomegaly": [(r"\bhepatomegaly\b|\bliver\s+(?:is\s+)?(?:\w+\s+)?enlarged\b|\benlarged\s+liver\b", MENTION)],
    "splenomegaly": [(r"\bsplenomegaly\b|\bspleen\s+(?:is\s+)?(?:\w+\s+)?enlarged\b|\benlarged\s+spleen\b", MENTION)],
    "renal_cyst": [(r"\bcysts?\b[^.;]{0,40}\b(?:kidneys?|renal)\b|\brenal\s+cysts?\b", MENTION)],
    "renal_calculus": [(r"\b(?:calculus|calculi|stones?|nephrolithiasis)\b[^.;]{0,40}\b(?:kidneys?|renal)\b"
                        r"|\b(?:renal|kidney)\s+(?:calculus|calculi|stones?)\b|\bnephrolithiasis\b", MENTION)],
    "cholelithiasis": [(r"\bcholelithiasis\b|\bgallstones?\b|\bstones?\s+in\s+the\s+gallbladder\b", MENTION)],
    "pelvic_lymphadenopathy": [(r"\blymph\s+nodes?\b[^.;]{0,50}\b(?:iliac|pelvic|inguinal|obturator)\b"
                                r"|\b(?:iliac|pelvic|inguinal|obturator)\s+(?:\w+\s+)?(?:lymph\s+nodes?|lymphadenopathy)", MENTION)],
    "pelvic_free_fluid": [(r"\bfree\s+fluid\b|\bascites\b", MENTION)],
}

CT_FINDINGS_LABELS = tuple(CTRATE_LABELS) + tuple(EXTRA_PATTERNS)
_EXTRA_EXCLUSIONS = {"liver_lesion": r"[^.;]*\bcysts?\b[^.;]*"}  # a "cyst" sentence is the cyst finding
CT_FINDINGS_LABELER = RuleLabeler(CT_FINDINGS_LABELS, {**PATTERNS, **EXTRA_PATTERNS}, name="rule-based CT findings labeler",
                                  exclusions={**EXCLUSIONS, **_EXTRA_EXCLUSIONS})
