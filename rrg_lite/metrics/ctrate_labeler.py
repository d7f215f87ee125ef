"""A rule-based labeler for CT-RATE's 18 chest-CT abnormalities.

CT-RATE's labels (``multi_abnormality_labels/*_predicted_labels.csv``) are binary and were produced by a
RadBERT text classifier; Reg2RG's clinical-efficacy numbers come from that classifier
(:func:`rrg_lite.metrics.neural_labelers.ctclip_radbert_label` loads it from a local checkpoint). This module
is the offline stand-in: mention phrases written for CT-RATE's translated report style ("Pleural
effusion-thickening was not detected.", "No lymph node in pathological size and appearance was observed in
the mediastinum.", "Calcific atherosclerotic changes are observed in the aorta and coronary arteries.",
"fibroatelectatic sequelae", "ground-glass densities") with the negation and uncertainty rules of
:mod:`rrg_lite.metrics.rules`.

:func:`label_reports_ctrate` returns codes 1 / 0 / -1 / NaN like the CheXpert labeler;
:func:`binarize` maps them to CT-RATE's 0/1 (uncertain counted as positive by default, blank as 0).
"""
from __future__ import annotations

import numpy as np

from .rules import MENTION, NEG_PHRASE, UNC_PHRASE, RuleLabeler

CTRATE_LABELS = (
    "Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
    "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
    "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion", "Mosaic attenuation pattern",
    "Peribronchial thickening", "Consolidation", "Bronchiectasis", "Interlobular septal thickening",
)

_CALC = r"(?:calcif\w*|atheroscleros\w*|atherosclerotic|atheroma\w*|calcific|plaques?)"
_NORMAL = r"(?:normal|within (?:the\s+)?(?:normal\s+limits|limits\s+of\s+normal)|unremarkable|natural|not enlarged|of normal size)"
# what sits in an organ other than the lung ("parenchymal density of the liver"): not a lung finding
_OTHER_ORGAN = r"(?:liver|hepat\w*|spleen|splenic|pancrea\w*|kidneys?|renal|adrenals?|thyroid|bones?|bony|osseous|"\
               r"vertebra\w*|spine|ribs?|muscles?|breasts?|soft tissues?|gall ?bladder|prostate|uterus|bladder)"

PATTERNS: dict[str, list[tuple[str, str]]] = {
    "Medical material": [
        (r"\b(?:catheters?|port(?:-a-cath)?s?|pacemakers?|pacemaker leads?|defibrillator|icd|stents?|"
         r"prosthe(?:sis|tic)\s+(?:heart\s+)?valves?|valve (?:replacement|prosthesis)|sternotomy|sternal (?:wires?|sutures?)|"
         r"cerclage wires?|surgical (?:clips?|sutures?|material)|metallic (?:clips?|material|density|artifact)|"
         r"(?:chest|endotracheal|tracheostomy|nasogastric|thoracostomy|drainage)\s+tubes?|tubes?|drains?|"
         r"electrodes?|medical (?:material|device)s?|implants?|cardiac devices?|coils?|grafts?|"
         r"anastomosis sutures?|embolization material|wires?|sutures?(?:\s+materials?)?|staples?|"
         r"(?:surgical|metallic|vascular)\s+clips?)\b", MENTION),
    ],
    "Arterial wall calcification": [
        (r"\b" + _CALC + r"[^.;]{0,60}?\b(?:aort\w*|(?<!coronary )arter\w*|arch|carotid|subclavian|vascular|vessels?|brachiocephalic|"
         r"iliac|innominate)\b", MENTION),
        (r"\b(?:aort\w*|arterial|vascular|arch|carotid|subclavian|brachiocephalic)\s+(?:wall\s+)?(?:\w+\s+){0,2}?" + _CALC, MENTION),
    ],
    "Cardiomegaly": [
        (r"\bcardiomegaly\b", MENTION),
        (r"\b(?:heart|cardiac)\s+(?:size|dimensions?|silhouette|contour)?\s*(?:is\s+|are\s+|was\s+)?(?:\w+\s+){0,2}?"
         r"(?:increased|enlarged|large|enlargement)\b", MENTION),
        (r"\benlarge(?:d|ment of the)\s+(?:heart|cardiac)", MENTION),
        (r"\bincrease\s+in\s+(?:the\s+)?(?:heart|cardiac)\s+(?:size|dimensions?|volume)|\bincreased\s+(?:heart|cardiac)\s+size", MENTION),
        (r"\b(?:heart|cardiac)\s+(?:size\s+|silhouette\s+)?(?:is\s+|was\s+|appears\s+)?borderline(?:\s+in\s+size)?"
         r"|\bborderline\s+(?:cardiomegaly|heart size|cardiac size|enlarge\w*)", UNC_PHRASE),
        (r"\bheart\s+(?:contour,?\s+)?(?:and\s+)?size\s+(?:is|are|was|were)\s+" + _NORMAL, NEG_PHRASE),
        (r"\bheart (?:contour|size)[^.;]{0,30}?\b(?:is|are|was|were)\s+" + _NORMAL, NEG_PHRASE),
        (r"\b(?:heart|cardiac)\s+(?:size|dimensions?|silhouette|contours?)\s+(?:is\s+|are\s+|appears?\s+)?(?:within\s+)?" + _NORMAL, NEG_PHRASE),
        (r"\bnormal\s+(?:heart|cardiac)\s+(?:size|dimensions?)", NEG_PHRASE),
    ],
    "Pericardial effusion": [
        (r"\bpericardial\s+(?:effusion|fluid|thickening|effusion-thickening)s?\b", MENTION),
        (r"\bfluid\s+(?:in|within)\s+the\s+pericard\w*", MENTION),
        (r"\bpericardial\s+(?:recess\s+)?(?:effusion|thickening)", MENTION),
        (r"\bpericardial\b[^.;]{0,20}\beffusion\b", MENTION),
        # reversed order: "effusion is observed in the pericardial space"
        (r"(?<!pleural )\b(?:effusion|fluid)\b[^.;,]{0,40}?\bpericardi\w*", MENTION),
    ],
    "Coronary artery wall calcification": [
        # long distance: "calcified changes, most prominent in the arch, are observed in the wall of the ... coronary artery"
        (r"\b" + _CALC + r"[^.;]{0,120}?\bcoronar\w*", MENTION),
        (r"\bcoronar\w*\s+(?:arter\w*\s+)?(?:wall\s+)?(?:\w+\s+){0,2}?" + _CALC, MENTION),
        (r"\bcoronary\s+(?:artery\s+)?(?:disease|calcium)\b", MENTION),
    ],
    "Hiatal hernia": [
        (r"\bhiat(?:al|us)\s+hernia\w*\b", MENTION),
        (r"\b(?:sliding|paraesophageal)\s+(?:type\s+)?hernia\b", MENTION),
        (r"\bhernia\w*\s+(?:of\s+the\s+)?(?:stomach\s+)?(?:through|at)\s+the\s+(?:esophageal\s+)?hiatus", MENTION),
    ],
    "Lymphadenopathy": [
        (r"\b(?:lymphadenopath\w+|adenopath\w+)\b", MENTION),
        (r"\blymph\s+nodes?\b[^.;]{0,60}?\b(?:pathologic\w*\s+(?:size|dimension)|enlarged|enlargement|increased\s+in\s+size|"
         r"(?:short|long)\s+axis\s+(?:of\s+)?(?:up\s+to\s+)?(?:1\d|[2-9]\d)\s*mm|conglomerat\w*|pathological)", MENTION),
        (r"\b(?:enlarged|pathologic\w*|bulky|conglomerate|necrotic)\s+(?:\w+\s+){0,2}?lymph\s+nodes?\b", MENTION),
        (r"\blymph\s+nodes?\s+(?:of|with|in|at)\s+pathologic\w*", MENTION),
        # CT-RATE's convention (its manually labelled reports): lymph nodes reported as present count, whatever
        # their size ("a few lymph nodes with a short axis of up to 7 mm are observed"), in the chest and upper
        # abdomen; "no lymph node in pathological size" is a negation.
        (r"\blymph\s*nodes?\b|\blymphadenomegal\w*|\blymphadenitis\b", MENTION),
    ],
    "Emphysema": [
        (r"\bemphysema\w*\b", MENTION),
        (r"\bbull(?:a|ae|ous)\b|\bblebs?\b", MENTION),
    ],
    "Atelectasis": [
        (r"\batelecta\w*", MENTION),
        (r"\bfibroatelecta\w*", MENTION),
        (r"\b(?:lobar|lobe|segmental|lung)\s+collapse\b", MENTION),
        (r"\bcollapse\s+of\s+the\s+(?:\w+\s+){0,5}?(?:lobes?|lungs?|segments?|lingula)\b", MENTION),
        (r"\b(?:lobes?|lungs?|segments?)\s+(?:is\s+|are\s+|has\s+|have\s+)?collapsed\b", MENTION),
    ],
    "Lung nodule": [
        (r"\b(?:micro)?nodul(?:e|es|ar)\b", MENTION),
        (r"\bnodular\s+(?:lesions?|opacit\w+|densit\w+)", MENTION),
        (r"\b(?:pulmonary|lung|parenchymal|spiculated)\s+(?:mass|masses|lesion|lesions)\b", MENTION),
        (r"\bmass(?:es)?\s+(?:in|within)\s+the\s+(?:\w+\s+){0,2}?(?:lungs?|(?:upper|middle|lower)\s+lobe|lingula|parenchyma)", MENTION),
    ],
    "Lung opacity": [
        (r"\bopaci(?:ty|ties|fication|fications)\b", MENTION),
        (r"\bground[- ]glass\b", MENTION),
        (r"\binfiltrat(?:e|es|ion|ive)\b", MENTION),
        (r"\b(?:increased\s+)?densit(?:y|ies)\s+increase\w*\b|\bdensity increases?\b|\bareas? of increased density\b", MENTION),
        (r"\b(?:parenchymal|patchy|ground-glass|pulmonary)\s+densit(?:y|ies)\b", MENTION),
    ],
    "Pulmonary fibrotic sequela": [
        (r"\bfibro(?:sis|tic)\b", MENTION),
        (r"\bfibroatelecta\w*", MENTION),
        (r"\bsequela\w*\b", MENTION),
        (r"\b(?:parenchymal|fibrous|linear|band-like)\s+bands?\b|\bband-like\b", MENTION),
        (r"\bscar(?:ring|s)?\b", MENTION),
        (r"\bhoneycomb\w*\b|\breticulation\b|\breticular\s+(?:changes|opacit\w+|pattern)", MENTION),
    ],
    "Pleural effusion": [
        (r"\bpleural\s+(?:effusion|fluid|effusion-thickening)s?\b", MENTION),
        (r"\beffusions?\b", MENTION),
        (r"\bhydrothorax\b", MENTION),
        (r"\bfluid\s+(?:in|within)\s+the\s+(?:\w+\s+)?pleural", MENTION),
    ],
    "Mosaic attenuation pattern": [
        (r"\bmosaic\s+(?:attenuation|perfusion|pattern|oligemia|appearance)\b", MENTION),
        (r"\bmosaic\b", MENTION),
        (r"\bair[- ]trapping\b", MENTION),
    ],
    "Peribronchial thickening": [
        (r"\bperibronchial\s+(?:wall\s+)?(?:thickening|thickenings|cuffing|interstitial thickening)\b", MENTION),
        (r"\bbronchial\s+wall\s+thicken\w*", MENTION),
        (r"\bthickening\s+of\s+the\s+(?:peri)?bronchial\s+walls?", MENTION),
        (r"\bperibronchial\b", MENTION),
        (r"\bperibronchovascular\s+(?:interstitial\s+)?(?:thickening|thickenings|cuffing|interstitial thickening)\b", MENTION),
    ],
    "Consolidation": [
        (r"\bconsolidat(?:ion|ions|ive|ed)\b", MENTION),
        (r"\bair bronchogram", MENTION),
    ],
    "Bronchiectasis": [
        (r"\bbronchiecta\w*", MENTION),
        (r"\bbronchial\s+(?:dilatation|dilation|dilatations)\b", MENTION),
        (r"\bdilat(?:ed|ation of the)\s+bronch\w*", MENTION),
    ],
    "Interlobular septal thickening": [
        (r"\b(?:interlobular\s+)?septal\s+thicken\w*", MENTION),
        (r"\bthicken(?:ing|ed)\s+(?:of\s+)?(?:the\s+)?interlobular\s+sept\w*", MENTION),
        (r"\binterlobular\s+sept(?:a|al|um)\b[^.;]{0,30}?\bthicken\w*", MENTION),
        (r"\bcrazy[- ]paving\b", MENTION),
    ],
}

EXCLUSIONS = {
    "Pleural effusion": r"\bpericardial\s+(?:\w+\s+)?effusion\w*|\bjoint\s+effusion\w*|\bpericardial\b[^.;]{0,20}\beffusion\b"
                        r"|(?<!pleural )\beffusion\b(?=[^.;,]{0,40}?\bpericardi)",
    # a sentence about another organ's nodule ("a nodule in the right lobe of the thyroid gland")
    "Lung nodule": r"[^.;]*\b(?:thyroid|adrenal|breast|hepatic|liver|renal|kidneys?|pancrea\w*|spleen|splenic|lymph)\b[^.;]*",
    "Medical material": r"\beustachian\s+tubes?\b|\bfallopian\s+tubes?\b|\bbronchial\s+tubes?\b",
    "Pulmonary fibrotic sequela": r"\bmyelofibrosis\b|\bfibroadenoma\b|\bfibroid\w*",
    "Lung opacity": r"\bbone\s+densit\w*|\bsclerotic\s+densit\w*|\b(?:densit\w*|opaci\w*)(?=[^.;,]{0,50}?\b" + _OTHER_ORGAN + r"\b)"
                    r"|\b" + _OTHER_ORGAN + r"\b[^.;,]{0,40}?\b(?:densit\w*|opaci\w*)",
    # Pelvic nodes (iliac, inguinal, obturator) are left out, as in the synthetic world's labels; note that CT-RATE's
    # manually labelled reports also count abdominal (mesenteric) nodes, which are kept here.
    "Lymphadenopathy": r"[^.;]*\b(?:iliac|inguinal|pelvic|pelvis|obturator)\b[^.;]*",
}

CTRATE_LABELER = RuleLabeler(CTRATE_LABELS, PATTERNS, name="rule-based CT-RATE labeler", exclusions=EXCLUSIONS)


def label_reports_ctrate(texts) -> np.ndarray:
    """(N, 18) codes 1 / 0 / -1 / NaN for N chest CT reports, columns :data:`CTRATE_LABELS`."""
    return CTRATE_LABELER.label(texts)


def ctrate_mentions(text: str):
    """The mentions (status, laterality, severity, change, location) in one CT report."""
    return CTRATE_LABELER.mentions(text)


def binarize(codes: np.ndarray, uncertain: str = "positive") -> np.ndarray:
    """Map 1 / 0 / -1 / NaN codes to 0/1 ints: 1 stays 1; -1 becomes 1 (``uncertain="positive"``, default) or 0
    (``"negative"``); 0 and NaN become 0."""
    if uncertain not in ("positive", "negative"):
        raise ValueError(f"uncertain must be 'positive' or 'negative', got {uncertain!r}")
    codes = np.asarray(codes, dtype=float)
    out = (codes == 1)
    if uncertain == "positive":
        out = out | (codes == -1)
    return out.astype(np.int64)
