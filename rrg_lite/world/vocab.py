"""Names shared by the world, the readers and the metrics: label spaces, regions, organs, views.

The label names are the real datasets' column names, character for character, so a model trained on the world
can be evaluated with the same code on CT-RATE or MIMIC-CXR.
"""
from __future__ import annotations

#: CT-RATE's 18 abnormality columns, in the order of ``multi_abnormality_labels/*_predicted_labels.csv``.
CT_RATE_LABELS: tuple[str, ...] = (
    "Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
    "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
    "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion", "Mosaic attenuation pattern",
    "Peribronchial thickening", "Consolidation", "Bronchiectasis", "Interlobular septal thickening",
)

#: CheXpert's 14 observations, in the column order of ``mimic-cxr-2.0.0-chexpert.csv`` (alphabetical there);
#: this tuple keeps the order of the CheXpert paper, which the book's tables use.
CHEXPERT_LABELS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices", "No Finding",
)

#: RadGenome-ChestCT's ten regions as written in its ``Anatomy`` column ("bronchie" is the dataset's spelling).
REGIONS: tuple[str, ...] = (
    "abdomen", "bone", "breast", "esophagus", "heart", "lung", "mediastinum", "pleura", "thyroid",
    "trachea and bronchie",
)

#: Abdominal and pelvic organs with their own masks (AMOS-style names).
ABDOMINAL_ORGANS: tuple[str, ...] = (
    "liver", "spleen", "kidney_left", "kidney_right", "gallbladder", "pancreas", "stomach", "aorta", "bladder",
)

#: AMOS-MM's body parts for per-part findings.
BODY_PARTS: tuple[str, ...] = ("chest", "abdomen", "pelvis")

#: ViPET-VLM splits a whole-body PET/CT into three overlapping regions.
PET_REGIONS: tuple[str, ...] = ("head_neck", "chest", "abdomen_pelvis")

#: MIMIC-CXR ``ViewPosition`` values the world writes (frontal: PA or AP; lateral: LL or LATERAL).
FRONTAL_VIEWS: tuple[str, ...] = ("PA", "AP")
LATERAL_VIEWS: tuple[str, ...] = ("LATERAL", "LL")

#: Longitudinal change of a finding relative to the prior study.
CHANGES: tuple[str, ...] = ("new", "increased", "decreased", "unchanged", "resolved")

#: Tags of sentences that an image-only model cannot know (LLM-RG4's "input-agnostic" content).
AGNOSTIC_TAGS: tuple[str, ...] = ("prior_comparison", "prior_procedure", "view", "communication", "recommendation")
