"""A rule-based labeler for CheXpert's 14 chest X-ray observations (in the spirit of the CheXpert labeler).

Output per report: 1 positive, 0 negative, -1 uncertain, NaN not mentioned, in CheXpert/CheXbert order
(:data:`CHEXPERT_LABELS`). "No Finding" is derived as in CheXpert: 1 when none of the 12 pathology labels
(all except Support Devices and No Finding itself) is positive or uncertain, otherwise blank.

The mention phrases follow the observation lists of the CheXpert labeler (Irvin et al. 2019) written for
real MIMIC-CXR / CheXpert report language ("no acute cardiopulmonary process", "blunting of the
costophrenic angle", "lines and tubes", "cannot be excluded") — not only for the synthetic world's grammar.
Negation and uncertainty are handled by :mod:`rrg_lite.metrics.rules`.

This is an offline stand-in for CheXbert (``f1chexbert``), which the field uses at full scale
(:func:`rrg_lite.metrics.neural_labelers.chexbert_label`); numbers from the two are not interchangeable.
"""
from __future__ import annotations

import numpy as np

from .rules import MENTION, NEG_PHRASE, UNC_PHRASE, RuleLabeler

CHEXPERT_LABELS = (
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices", "No Finding",
)
#: The 5-label subset of CheXbert F1-5 (M4CXR, MIMIC-CXR papers).
CHEXPERT_5 = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")

_SIZE_WORDS = r"(?:enlarged|enlargement|large|larger|increased|prominent|widened|widening)"
_NORMAL = r"(?:normal|within (?:the\s+)?(?:normal\s+limits|limits\s+of\s+normal)|unremarkable|not enlarged|upper (?:limits? )?(?:of )?normal|top(?:-| )normal|(?:in|of) normal (?:size|range)|stable in size|normal in size)"
_HEART = r"(?:heart|cardiac silhouette|cardiac size|cardiac contours?|cardiac shadow|heart size|cardiac)"
# what sits in an organ other than the lung ("parenchymal density of the liver", "vertebral body opacities");
# not the ribs or spine, which lung opacities are often described against ("opacity projecting over the spine")
_OTHER_ORGAN = (r"(?:liver|hepat\w*|spleen|splenic|pancrea\w*|kidneys?|renal|adrenals?|thyroid|bones?|bony|osseous|"
                r"vertebra\w*|clavicles?|scapula\w*|humer\w*|muscles?|breasts?|soft tissues?|"
                r"nipples?|gall ?bladder|stomach|bowel|abdomen|abdominal)")
_CM = r"(?:cardiomediastinal|cardio-mediastinal|mediastinal|mediastinum|mediastinal contours?|hilar and mediastinal)"

PATTERNS: dict[str, list[tuple[str, str]]] = {
    "Enlarged Cardiomediastinum": [
        (r"\b(?:widen(?:ed|ing)|enlarged|prominent|enlargement of the|wide)\s+(?:superior\s+)?(?:cardio-?mediastin\w*|mediastin\w*)", MENTION),
        (r"\b(?:cardio-?mediastin\w*|mediastin\w*)\s+(?:silhouette\s+|contours?\s+|width\s+|shadow\s+)?(?:\w+\s+){0,3}?(?:widen\w*|enlarg\w*|prominen\w*|wide)\b", MENTION),
        (r"\b(?:cardio-?mediastinal|mediastinal)\s+(?:silhouette|contours?|width|shadow|structures|configuration)\s+(?:is\s+|are\s+|appears?\s+|remains?\s+)?(?:\w+\s+){0,2}?" + _NORMAL, NEG_PHRASE),
        (r"\bnormal\s+(?:cardio-?mediastinal|mediastinal)\s+(?:silhouette|contours?|width|structures)", NEG_PHRASE),
        (r"\b(?:heart|cardiac silhouette),?\s+(?:and|&)\s+mediastin\w*\s+(?:\w+\s+){0,4}?(?:normal|within normal limits|unremarkable)", NEG_PHRASE),
        (r"\b(?:widening|enlargement)\s+of\s+the\s+(?:superior\s+)?(?:cardio-?)?mediastin\w*", MENTION),
        (r"\bpneumomediastinum\b", MENTION),
    ],
    "Cardiomegaly": [
        (r"\bcardiomegaly\b", MENTION),
        (r"\bcardiac (?:enlargement|hypertrophy)\b", MENTION),
        (r"\benlarge(?:d|ment of the)\s+(?:cardiac\s+silhouette|heart|cardiac\s+size|cardiac\s+contour)", MENTION),
        (r"\bincrease\s+in\s+(?:the\s+)?(?:heart|cardiac)\s+(?:size|silhouette)|\bincreased\s+(?:heart|cardiac)\s+size", MENTION),
        (r"\b" + _HEART + r"\b(?:\s+size)?\s+(?:is\s+|are\s+|appears?\s+|remains?\s+|was\s+|seems\s+)?(?:not\s+)?(?:\w+\s+){0,2}?" + _SIZE_WORDS + r"\b", MENTION),
        (r"\b(?:heart|cardiac)\s+size\s+(?:is\s+)?(?:at\s+the\s+)?(?:\w+\s+){0,2}?" + _NORMAL, NEG_PHRASE),
        (r"\b(?:heart|cardiac silhouette|cardiac contours?)\s+(?:is\s+|are\s+|appears?\s+|remains?\s+)?(?:\w+\s+){0,1}?" + _NORMAL + r"(?:\s+in\s+size)?", NEG_PHRASE),
        (r"\b(?:normal|unremarkable)\s+(?:heart|cardiac)\s+(?:size|silhouette|contours?)\b", NEG_PHRASE),
        (r"\bheart\s+(?:is\s+)?(?:of\s+)?normal\s+size\b", NEG_PHRASE),
        (r"\bheart (?:contour|silhouette)?,?\s*(?:and\s+)?size\s+(?:is|are)\s+normal\b", NEG_PHRASE),
        (r"\bborderline\s+(?:heart\s+size|cardiomegaly|enlarge\w*\s+(?:of\s+the\s+)?(?:heart|cardiac))", UNC_PHRASE),
        (r"\b(?:heart|cardiac)\s+(?:size|silhouette)\s+(?:is\s+)?borderline\b", UNC_PHRASE),
        (r"\b(?:heart|cardiac silhouette)\s+(?:is\s+|appears\s+)?borderline\s+(?:in\s+size|enlarged)", UNC_PHRASE),
    ],
    "Lung Opacity": [
        (r"\bopaci(?:ty|ties|fication|fications|fied)\b", MENTION),
        (r"\binfiltrat(?:e|es|ion|ive)\b", MENTION),
        (r"\bair[- ]?space (?:disease|process|opacit\w*)\b", MENTION),
        (r"\bground[- ]glass\b", MENTION),
        (r"\b(?:parenchymal|pulmonary|lung|patchy|basilar|basal|retrocardiac|focal|hazy|streaky|linear|reticular|nodular|interstitial|alveolar|increased)\s+(?:densit(?:y|ies)|markings|abnormalit(?:y|ies))\b", MENTION),
        # CheXpert's Lung Opacity list also holds densities, interstitial markings and scarring
        (r"\b(?:round|rounded|triangular|ill-defined|hazy|patchy|focal|vague)\s+(?:area\s+of\s+)?densit(?:y|ies)\b|\barea\s+of\s+(?:increased\s+)?densit(?:y|ies)\b"
         r"|\bdensit(?:y|ies)\s+(?:within|in|at|projected|projecting|over)\s+(?:the\s+)?(?:\w+\s+){0,4}?(?:lobe|lung|base|bases|apex|apices|lingula|heart|hilum|zone)\b", MENTION),
        (r"\binterstitial\s+(?:markings?|changes?|disease|prominence|pattern|thickening|lung\s+\w+|infiltrates?|opacit\w+)\b|\binterstitium\b"
         r"|\breticula(?:r|tion)\b", MENTION),
        (r"\bscar(?:s|ring|red)?\b", MENTION),
        (r"\b(?:opaque|opacified)\b", MENTION),
    ],
    "Lung Lesion": [
        (r"\bnodul(?:e|es|ar|arity)\b", MENTION),
        (r"\b(?:micro)?nodules?\b", MENTION),
        (r"\bmass(?:es|like)?\b", MENTION),
        (r"\b(?:cavitary|cavitating|pulmonary|lung|spiculated)\s+lesions?\b", MENTION),
        (r"\b(?:tumou?r|neoplasm|carcinoma|malignan\w+|metasta\w+|lump)\b", MENTION),
    ],
    "Edema": [
        (r"\bedema\b", MENTION),
        (r"\boedema\b", MENTION),
        (r"\b(?:vascular|venous|pulmonary)\s+(?:congestion|engorgement|redistribution)\b", MENTION),
        (r"\bcongestion\b", MENTION),
        (r"\b(?:congestive\s+)?heart failure\b|\bchf\b", MENTION),
        (r"\bfluid overload\b|\bcephalization\b|\bkerley\s*b?\b", MENTION),
        (r"\bvolume overload\b", MENTION),
    ],
    "Consolidation": [
        (r"\bconsolidat(?:ion|ions|ive|ed)\b", MENTION),
        (r"\bair bronchogram", MENTION),
    ],
    "Pneumonia": [
        (r"\b(?:broncho)?pneumonias?\b", MENTION),
        (r"\binfect(?:ion|ions|ious|ive)\b", MENTION),
        (r"\baspiration\b", MENTION),
        (r"\bpneumonitis\b", MENTION),
    ],
    "Atelectasis": [
        (r"\batelecta\w*", MENTION),
        (r"\bfibroatelecta\w*", MENTION),
        # plurals and long gaps: "collapse of the left upper and lower lobes"
        (r"\b(?:lobar|lobe|segmental|lung)\s+collapse\b|\bcollapse\s+of\s+the\s+(?:\w+\s+){0,5}?(?:lobes?|lungs?|segments?|lingula)\b", MENTION),
        (r"\b(?:lobes?|lungs?|segments?)\s+(?:is\s+|are\s+|has\s+|have\s+)?collapsed\b", MENTION),
    ],
    "Pneumothorax": [
        (r"\b(?:hydro)?pneumothora(?:x|ces|xes)\b", MENTION),
        (r"\bpleural\s+air(?:\s+collections?)?\b|\bair\s+(?:collection\s+)?in\s+the\s+pleural\s+space", MENTION),
        (r"\bptx\b", MENTION),
    ],
    "Pleural Effusion": [
        (r"\beffusions?\b", MENTION),
        (r"\bhydro(?:pneumo)?thorax\b", MENTION),
        (r"\bpleural\s+(?:fluid|effusion)", MENTION),
        (r"\bfluid\s+(?:in|within)\s+the\s+(?:pleural|costophrenic|fissure)", MENTION),
        (r"\b(?:localized|loculated|layering|subpulmonic)\s+(?:pleural\s+)?fluid\b", MENTION),
        (r"\bblunt(?:ing|ed)\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+){0,2}?costophrenic", MENTION),
        (r"\bcostophrenic\s+(?:angles?|sulci|sulcus)\s+(?:is\s+|are\s+)?(?:\w+\s+){0,2}?blunt(?:ing|ed)", MENTION),
        (r"\b(?:pleural effusion-thickening|effusion-thickening)\b", MENTION),
    ],
    "Pleural Other": [
        (r"\bpleural\s+(?:thickening|plaques?|scarring|calcification|abnormalit\w*|reaction|disease)\b", MENTION),
        (r"\b(?:effusion-thickening)\b", MENTION),
        (r"\bfibrothorax\b", MENTION),
        (r"\b(?:apical|pleural)\s+cap", MENTION),
        (r"\bpleural(?:-|\s+)parenchymal\s+(?:scarring|thickening)", MENTION),
    ],
    "Fracture": [
        (r"\bfractur(?:e|es|ed)\b", MENTION),
        (r"\bfx\b", MENTION),
    ],
    "Support Devices": [
        (r"\b(?:endotracheal|et|enteric|feeding|nasogastric|ng|orogastric|og|chest|tracheostomy|trach|dobhoff|"
         r"dubhoff|gastric|thoracostomy|pigtail|mediastinal|pleural)\s+(?:tubes?|catheters?|drains?)\b", MENTION),
        (r"\btubes?\b", MENTION),
        (r"\b(?:central\s+venous|central|venous|picc|midline|arterial|swan[- ]ganz|pulmonary artery|ij|internal jugular|"
         r"subclavian|jugular|dialysis|hemodialysis|port-a-cath|support|monitoring|double[- ]lumen)\s+(?:lines?|catheters?)\b", MENTION),
        (r"\blines?\s+(?:and|or|&)\s+tubes?\b|\btubes?\s+(?:and|or|&)\s+lines?\b", MENTION),
        (r"\b(?:catheters?|picc|cvc|pacemakers?|pacer|pacing (?:wires?|leads?)|leads?\s+(?:terminat|project|in\s+the)|"
         r"defibrillator|aicd|icd|port-?a-?cath|portacath|mediport|stents?|prosthe(?:sis|tic)\s+valves?|valve replacement|"
         r"sternotomy wires?|sternal wires?|cerclage|hardware|coils?|drains?|cannula|impella|balloon pump|iabp|"
         r"lvad|ecmo|electrodes?|devices?|prosthesis|arthroplast\w*|(?:fixation|orthopedic|surgical|metallic)\s+plates?|screws?|orthopedic hardware)\b", MENTION),
    ],
    "No Finding": [],
}

# "tube" in anatomy or idiom that is not a device; "mass" as a word in other senses.
EXCLUSIONS = {
    "Support Devices": r"\b(?:eustachian|fallopian|neural)\s+tubes?\b|\bventricular\s+assist\b(?!\s+device)|\bskin\s+fold",
    "Lung Lesion": r"\b(?:soft[- ]tissue|body|muscle)\s+mass\b|\bmass\s+effect\b|\bbreast\s+(?:mass|nodul\w+)|\bthyroid\s+(?:mass|nodul\w+)",
    # reversed order too: "effusion is observed in the pericardial space"
    "Pleural Effusion": r"\bpericardial\s+effusions?\b|\bjoint\s+effusions?\b|(?<!pleural )\beffusions?\b(?=[^.;,]{0,40}?\bpericardi)",
    "Edema": r"\b(?:soft[- ]tissue|subcutaneous|chest wall|extremity|peripheral)\s+(?:edema|oedema)\b",
    "Pneumonia": r"\b(?:urinary|urine|wound|line|skin)\s+infect\w*|\baspiration\s+(?:precautions|risk)\b",
    "Lung Opacity": (r"\bbreast\s+(?:tissue\s+)?opaci\w+|\bnipple\s+shadow|\bpleural\s+(?:\w+\s*/\s*)?(?:densit\w*|scar\w*|opaci\w*)"
                     r"|\b(?:densit\w*|opaci\w*|scar\w*)(?=[^.;,]{0,50}?\b" + _OTHER_ORGAN + r"\b)"
                     r"|\b" + _OTHER_ORGAN + r"\b[^.;,]{0,40}?\b(?:densit\w*|opaci\w*|scar\w*)"),
    "Fracture": r"\bfracture\s+(?:fixation|hardware)\b",
}

_PATHOLOGY_IDX = [i for i, name in enumerate(CHEXPERT_LABELS) if name not in ("Support Devices", "No Finding")]
_NO_FINDING = CHEXPERT_LABELS.index("No Finding")


def _derive_no_finding(row: np.ndarray) -> None:
    """CheXpert's rule: No Finding = 1 if no pathology is positive or uncertain, else blank."""
    pathologies = row[_PATHOLOGY_IDX]
    if not np.any((pathologies == 1) | (pathologies == -1)):
        row[_NO_FINDING] = 1.0
    else:
        row[_NO_FINDING] = np.nan


CHEXPERT_LABELER = RuleLabeler(CHEXPERT_LABELS, PATTERNS, name="rule-based CheXpert labeler",
                               derived=_derive_no_finding, exclusions=EXCLUSIONS)


def label_reports_chexpert(texts) -> np.ndarray:
    """(N, 14) CheXpert codes (1 / 0 / -1 / NaN) for N chest X-ray reports, columns :data:`CHEXPERT_LABELS`."""
    return CHEXPERT_LABELER.label(texts)


def chexpert_mentions(text: str):
    """The mentions (with status and attributes) found in one report; for explanations and the GREEN judge."""
    return CHEXPERT_LABELER.mentions(text)
