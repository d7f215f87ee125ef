"""Every phrase the world's reports are made of, in one place.

The report writer (:mod:`rrg_lite.world.report`) picks among these with the study's seed. Keeping them here lets
a reader (and the rule-based labelers in :mod:`rrg_lite.metrics`) see the whole language of the world at once.

Conventions that keep the reports labelable, as real radiology mostly is:

* a positive sentence for a labelled kind always contains that label's keyword (``nodule`` only for lung
  nodules: other focal lesions are "lesion", "cyst", "mass"; ``effusion`` always with "pleural"/"pericardial";
  ``calcification`` with "coronary" for the coronary label);
* a negative sentence starts with "No ..." or says "... is not seen / was not detected";
* uncertain (hedged) X-ray sentences use "possible", "may represent" or "cannot be excluded";
* input-agnostic sentences never mention a finding's keyword.

Slots: ``{size}`` "12 mm", ``{loc}`` location words, ``{side}`` right/left, ``{sev}`` mild/moderate/severe,
``{suv}`` SUVmax, ``{prior}`` prior size.
"""
from __future__ import annotations

# ---------------------------------------------------------------------------------------------------------------
# CT: positive sentences per finding kind (several phrasings each)
# ---------------------------------------------------------------------------------------------------------------
CT_POSITIVE: dict[str, tuple[str, ...]] = {
    "lung_nodule": ("A {size} nodule is seen in the {loc}.", "There is a {size} nodule in the {loc}.",
                    "A nodule measuring {size} is noted in the {loc}.", "{Size} pulmonary nodule in the {loc}."),
    "lung_opacity": ("There is a {size} ground-glass opacity in the {loc}.",
                     "A ground-glass opacity measuring {size} is seen in the {loc}.",
                     "Patchy ground-glass opacity is noted in the {loc}."),
    "consolidation": ("There is a {size} area of consolidation in the {loc}.", "Consolidation is seen in the {loc}.",
                      "A consolidation measuring {size} is present in the {loc}."),
    "atelectasis": ("{Sev} atelectasis is seen in the {loc}.", "There is subsegmental atelectasis in the {loc}.",
                    "Atelectatic changes are noted in the {loc}."),
    "pleural_effusion": ("There is a {sev} {side} pleural effusion measuring {size} in depth.",
                         "A {side} pleural effusion with a depth of {size} is noted.",
                         "{Sev} {side} pleural effusion is seen."),
    "pleural_effusion_bilateral": ("There are bilateral pleural effusions measuring up to {size} in depth.",
                                   "{Sev} bilateral pleural effusion is seen.",
                                   "Pleural effusion is present on both sides, up to {size} in depth."),
    "emphysema": ("{Sev} emphysematous changes are seen in {loc}.", "There is {sev} centrilobular emphysema in {loc}.",
                  "{Sev} emphysema is noted in {loc}."),
    "fibrotic_sequela": ("Fibrotic sequelae are seen in {loc}.", "There are sequelae fibrotic changes in {loc}.",
                         "Fibrotic bands consistent with sequela are noted in {loc}."),
    "mosaic_attenuation": ("A mosaic attenuation pattern is seen in {loc}.", "There is mosaic attenuation in {loc}.",
                           "Mosaic attenuation pattern is noted throughout {loc}."),
    "septal_thickening": ("Interlobular septal thickening is seen in {loc}.",
                          "There is smooth interlobular septal thickening in {loc}."),
    "bronchiectasis": ("Bronchiectasis is seen in the {loc}.", "There are bronchiectatic changes in the {loc}.",
                       "Cylindrical bronchiectasis is noted in the {loc}."),
    "peribronchial_thickening": ("Peribronchial thickening is seen around {loc}.",
                                 "There is peribronchial wall thickening involving {loc}."),
    "lymphadenopathy": ("A {size} lymph node is seen in the {loc} station, consistent with lymphadenopathy.",
                        "There is {loc} lymphadenopathy measuring {size} in short axis.",
                        "Lymphadenopathy is present in the {loc} region, the largest node measuring {size}."),
    "cardiomegaly": ("Heart size is enlarged.", "Cardiomegaly is present.", "There is {sev} cardiomegaly."),
    "pericardial_effusion": ("Pericardial effusion measuring {size} in thickness is seen.",
                             "There is a {sev} pericardial effusion.",
                             "A pericardial effusion with a thickness of {size} is noted."),
    "coronary_calcification": ("Calcific plaques are seen in the coronary arteries.",
                               "There is coronary artery wall calcification.", "Coronary artery calcification is noted."),
    "arterial_calcification": ("Atherosclerotic calcifications are seen in the wall of the thoracic aorta.",
                               "There is calcification of the aortic wall.",
                               "Arterial wall calcification is noted in the thoracic aorta."),
    "medical_material/pacemaker": ("A cardiac pacemaker is present with its lead in the right ventricle.",
                                   "Pacemaker generator in the left chest wall with a lead in the right ventricle."),
    "medical_material/sternotomy wires": ("Sternotomy wires are present.", "Median sternotomy wires are noted."),
    "hiatal_hernia": ("A hiatal hernia is seen.", "There is a sliding hiatal hernia.", "Hiatal hernia is noted."),
    "thyroid_nodule": ("A {size} hypodense lesion is seen in the {loc}.", "There is a {size} hypodense lesion in the {loc}."),
    "breast_nodule": ("A {size} soft tissue mass is seen in the {loc}.", "There is a {size} mass in the {loc}."),
    "bone_lesion/sclerotic": ("A {size} sclerotic lesion is seen in a {loc}.", "There is a {size} sclerotic focus in a {loc}."),
    "bone_lesion/lytic": ("A {size} lytic lesion is seen in a {loc}.", "There is a {size} lytic focus in a {loc}."),
    "liver_cyst": ("A {size} simple cyst is seen in the {loc}.", "There is a {size} hypodense cyst in the {loc}."),
    "liver_lesion": ("A {size} hypodense lesion is seen in the {loc}.", "There is a {size} hypoattenuating mass in the {loc}."),
    "hepatic_steatosis": ("{Sev} hepatic steatosis is noted.", "The liver shows {sev} diffuse hypodensity consistent with hepatic steatosis."),
    "hepatomegaly": ("Hepatomegaly is noted.", "The liver is enlarged."),
    "splenomegaly": ("Splenomegaly is present.", "The spleen is enlarged."),
    "renal_cyst": ("A {size} cortical cyst is seen in the {loc}.", "There is a {size} simple cyst in the {loc}."),
    "renal_calculus": ("A {size} calculus is seen in the {loc}.", "There is a {size} non-obstructing stone in the {loc}."),
    "cholelithiasis": ("Gallstones are seen in the gallbladder.", "There is cholelithiasis."),
    "pelvic_lymphadenopathy": ("A {size} lymph node is seen along the {loc} vessels.",
                               "There is a {size} enlarged lymph node in the {loc} chain."),
    "pelvic_free_fluid": ("A small amount of free fluid is seen in the pelvis.", "There is trace free fluid in the pelvis."),
}

#: Short noun phrases (impressions, comparisons, questions). ``{loc}`` and ``{size}`` allowed.
CT_NOUN: dict[str, str] = {
    "lung_nodule": "{loc} nodule", "lung_opacity": "{loc} ground-glass opacity", "consolidation": "{loc} consolidation",
    "atelectasis": "{loc} atelectasis", "pleural_effusion": "{side} pleural effusion", "emphysema": "emphysema",
    "fibrotic_sequela": "fibrotic sequelae", "mosaic_attenuation": "mosaic attenuation pattern",
    "septal_thickening": "interlobular septal thickening", "bronchiectasis": "bronchiectasis",
    "peribronchial_thickening": "peribronchial thickening", "lymphadenopathy": "{loc} lymphadenopathy",
    "cardiomegaly": "cardiomegaly", "pericardial_effusion": "pericardial effusion",
    "coronary_calcification": "coronary artery calcification", "arterial_calcification": "aortic wall calcification",
    "medical_material": "{subtype}", "hiatal_hernia": "hiatal hernia", "thyroid_nodule": "{loc} hypodense lesion",
    "breast_nodule": "{loc} mass", "bone_lesion": "{subtype} vertebral lesion", "liver_cyst": "hepatic cyst",
    "liver_lesion": "hypodense liver lesion", "hepatic_steatosis": "hepatic steatosis", "hepatomegaly": "hepatomegaly",
    "splenomegaly": "splenomegaly", "renal_cyst": "{loc} cyst", "renal_calculus": "{loc} calculus",
    "cholelithiasis": "cholelithiasis", "pelvic_lymphadenopathy": "{loc} lymph node",
    "pelvic_free_fluid": "pelvic free fluid",
}

#: Stated negatives for the 18 CT-RATE labels (only used when the label is absent).
CT_NEGATIVE: dict[str, tuple[str, ...]] = {
    "Medical material": ("No medical device is seen.",),
    "Arterial wall calcification": ("No aortic wall calcification is seen.",),
    "Cardiomegaly": ("Heart size is normal.", "The heart is of normal size."),
    "Pericardial effusion": ("No pericardial effusion is seen.", "Pericardial effusion was not detected."),
    "Coronary artery wall calcification": ("No coronary artery calcification is seen.",),
    "Hiatal hernia": ("No hiatal hernia is seen.",),
    "Lymphadenopathy": ("No mediastinal lymphadenopathy is seen.", "Lymph nodes of pathological size were not detected."),
    "Emphysema": ("No emphysema is seen.",),
    "Atelectasis": ("No atelectasis is seen.",),
    "Lung nodule": ("No lung nodule is seen.", "No pulmonary nodule was detected."),
    "Lung opacity": ("No lung opacity is seen.",),
    "Pulmonary fibrotic sequela": ("No fibrotic sequela is seen.",),
    "Pleural effusion": ("No pleural effusion is seen.", "Pleural effusion was not detected.", "There is no pleural effusion."),
    "Mosaic attenuation pattern": ("No mosaic attenuation pattern is seen.",),
    "Peribronchial thickening": ("No peribronchial thickening is seen.",),
    "Consolidation": ("No consolidation is seen.", "There is no consolidation."),
    "Bronchiectasis": ("No bronchiectasis is seen.",),
    "Interlobular septal thickening": ("No interlobular septal thickening is seen.",),
}

#: Sentences for a region with nothing to report (no label keyword in them).
CT_NORMAL: dict[str, tuple[str, ...]] = {
    "trachea and bronchie": ("Trachea and both main bronchi are patent.", "The trachea and main bronchi are open.",
                             "Trachea and both main bronchi are of normal caliber."),
    "mediastinum": ("Mediastinal structures are unremarkable.", "Mediastinal vascular structures are of normal caliber."),
    "heart": ("Heart contour is normal.", "The cardiac silhouette is unremarkable."),
    "esophagus": ("The esophagus is unremarkable.", "Esophageal wall thickness is normal."),
    "thyroid": ("Thyroid gland is unremarkable.", "The thyroid gland is normal in size and attenuation."),
    "lung": ("Both lungs are clear.", "Lung parenchyma is within normal limits."),
    "pleura": ("Pleural surfaces are smooth.", "The pleura is unremarkable."),
    "bone": ("Bony structures are intact.", "Vertebral body heights are preserved."),
    "breast": ("Breast tissue is unremarkable.", "Both breasts are unremarkable."),
    "abdomen": ("Upper abdominal organs are unremarkable within the scan field.",
                "The visualized upper abdominal organs are normal."),
    "abdomen/cap": ("The liver, spleen, pancreas and kidneys are unremarkable.",
                    "Abdominal solid organs are unremarkable."),
    "pelvis": ("The urinary bladder and pelvic structures are unremarkable.", "Pelvic organs are unremarkable."),
}

#: The order in which CT-RATE-style reports visit the regions (the writer swaps neighbours for variety).
CT_REGION_ORDER: tuple[str, ...] = (
    "trachea and bronchie", "mediastinum", "heart", "esophagus", "thyroid", "lung", "pleura", "breast", "abdomen",
    "bone",
)

CT_IMPRESSION_NORMAL: tuple[str, ...] = ("No acute abnormality.", "Normal chest CT.", "No significant abnormality is seen.")

# ---------------------------------------------------------------------------------------------------------------
# Comparison with a prior study (visible to the model when it is given the prior)
# ---------------------------------------------------------------------------------------------------------------
COMPARISON: dict[str, tuple[str, ...]] = {
    "new": ("The {noun} is new compared with the prior study.", "The {noun} was not present on the prior study."),
    "increased": ("The {noun} has increased since the prior study (previously {prior}).",
                  "Compared with the prior study, the {noun} has increased."),
    "decreased": ("The {noun} has decreased since the prior study (previously {prior}).",
                  "Compared with the prior study, the {noun} has decreased."),
    "unchanged": ("The {noun} is unchanged compared with the prior study.", "The {noun} is stable since the prior study."),
    "resolved": ("The previously seen {noun} has resolved.", "The {noun} seen on the prior study has resolved."),
}

# ---------------------------------------------------------------------------------------------------------------
# PET (the PET part of a PET/CT report)
# ---------------------------------------------------------------------------------------------------------------
PET_HOT: tuple[str, ...] = (
    "The {noun} shows increased FDG uptake with an SUVmax of {suv}.",
    "Hypermetabolic {noun} with an SUVmax of {suv}.",
    "Intense FDG avidity is seen in the {noun} (SUVmax {suv}).",
)
PET_COLD: tuple[str, ...] = (
    "The {noun} shows no significant FDG uptake.",
    "No increased FDG uptake is seen in the {noun}.",
)
PET_PHYSIOLOGICAL: tuple[str, ...] = (
    "Physiological FDG uptake is seen in the {organs}.",
    "Normal physiological FDG distribution in the {organs}.",
)
PET_REGION_NORMAL: dict[str, tuple[str, ...]] = {
    "head_neck": ("No abnormal hypermetabolic focus is seen in the head and neck.",),
    "chest": ("No abnormal hypermetabolic focus is seen in the chest.",),
    "abdomen_pelvis": ("No abnormal hypermetabolic focus is seen in the abdomen and pelvis.",),
}

# ---------------------------------------------------------------------------------------------------------------
# Chest X-ray (MIMIC-CXR style)
# ---------------------------------------------------------------------------------------------------------------
CXR_POSITIVE: dict[str, tuple[str, ...]] = {
    "enlarged_cardiomediastinum": ("The cardiomediastinal silhouette is enlarged.", "The mediastinum is widened."),
    "cardiomegaly": ("The heart is enlarged.", "There is {sev} cardiomegaly.", "Cardiomegaly is present."),
    "lung_opacity": ("There is a hazy opacity in the {loc}.", "An opacity is seen in the {loc}."),
    "lung_lesion": ("A {size} nodule is seen in the {loc}.", "There is a {size} mass in the {loc}."),
    "edema": ("There is {sev} pulmonary edema.", "Perihilar haziness is consistent with {sev} pulmonary edema."),
    "consolidation": ("Focal consolidation is present in the {loc}.", "There is consolidation in the {loc}."),
    "pneumonia": ("Findings are consistent with pneumonia in the {loc}.", "There is a {loc} pneumonia."),
    "atelectasis": ("There is {side} basilar atelectasis.", "Plate-like atelectasis is seen at the {side} base."),
    "pleural_effusion_bilateral": ("There are bilateral pleural effusions.",
                                   "{Sev} bilateral pleural effusions are present."),
    "pneumothorax": ("There is a small {side} apical pneumothorax.", "A {side} pneumothorax is present."),
    "pleural_effusion": ("There is a {sev} {side} pleural effusion.",
                         "Blunting of the {side} costophrenic angle is consistent with a {sev} pleural effusion."),
    "pleural_other": ("Pleural thickening is seen along the {side} lateral chest wall.",
                      "There is {side} pleural thickening."),
    "fracture": ("There is a healing fracture of a {side} lateral rib.", "A {side} rib fracture is seen."),
    "support_devices/endotracheal tube": ("An endotracheal tube terminates {cm} cm above the carina.",
                                          "The endotracheal tube is in standard position."),
    "support_devices/central venous catheter": ("A right internal jugular central venous catheter terminates in the superior vena cava.",
                                                "Right-sided central line tip is in the superior vena cava."),
    "support_devices/pacemaker": ("A left chest wall pacemaker is present with a lead in the right ventricle.",
                                  "Left-sided pacemaker device with lead in the right ventricle."),
}
CXR_UNCERTAIN: tuple[str, ...] = ("Possible {noun}.", "{Noun} cannot be excluded.", "This may represent {noun}.")
CXR_NOUN: dict[str, str] = {
    "enlarged_cardiomediastinum": "widened mediastinum", "cardiomegaly": "cardiomegaly",
    "lung_opacity": "{loc} opacity", "lung_lesion": "{loc} nodule", "edema": "pulmonary edema",
    "consolidation": "{loc} consolidation", "pneumonia": "pneumonia in the {loc}",
    "atelectasis": "{side} basilar atelectasis", "pneumothorax": "{side} pneumothorax",
    "pleural_effusion": "{side} pleural effusion", "pleural_other": "{side} pleural thickening",
    "fracture": "{side} rib fracture", "support_devices": "{subtype}",
}
CXR_NEGATIVE: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": ("The cardiomediastinal silhouette is normal.", "The mediastinum is not widened."),
    "Cardiomegaly": ("Heart size is normal.", "No cardiomegaly."),
    "Lung Opacity": ("No focal opacity.",),
    "Lung Lesion": ("No pulmonary nodule or mass.",),
    "Edema": ("No pulmonary edema.", "There is no pulmonary edema."),
    "Consolidation": ("No focal consolidation.", "There is no consolidation."),
    "Pneumonia": ("No evidence of pneumonia.",),
    "Atelectasis": ("No atelectasis.",),
    "Pneumothorax": ("No pneumothorax.", "There is no pneumothorax."),
    "Pleural Effusion": ("No pleural effusion.", "There is no pleural effusion."),
    "Pleural Other": ("No pleural thickening.",),
    "Fracture": ("No acute fracture.", "No displaced rib fracture is seen."),
}
#: A negative sentence covering two labels at once (real reports do this all the time).
CXR_NEGATIVE_PAIR = ("Pleural Effusion", "Pneumothorax", ("No pleural effusion or pneumothorax.",
                                                           "There is no pleural effusion or pneumothorax."))
CXR_IMPRESSION_NORMAL: tuple[str, ...] = ("No acute cardiopulmonary process.", "No acute intrathoracic abnormality.")
CXR_CLEAR_LUNGS: tuple[str, ...] = ("The lungs are clear.", "Lungs are well expanded and clear.")

# ---------------------------------------------------------------------------------------------------------------
# Input-agnostic sentences (no image supports them; LLM-RG4 removes them). Each list is one tag.
# ---------------------------------------------------------------------------------------------------------------
AGNOSTIC: dict[str, tuple[str, ...]] = {
    "prior_comparison": ("Comparison is made to the outside study from {days} days earlier.",
                         "Compared to the radiograph from {days} days ago, there is no substantial interval change."),
    "prior_procedure": ("The patient has a history of prior cholecystectomy.",
                        "Per clinical records, the patient underwent appendectomy in the past."),
    "view": ("PA and lateral views of the chest were obtained.", "Single portable AP view of the chest.",
             "Frontal and lateral radiographs of the chest are provided."),
    "communication": ("Findings were discussed with the referring physician by telephone.",
                      "These results were communicated to the care team at the time of the study."),
    "recommendation": ("Recommend follow-up radiograph in six weeks.", "Clinical correlation is recommended.",
                       "Follow-up imaging is recommended as clinically indicated."),
}

INDICATIONS: tuple[str, ...] = ("Shortness of breath.", "Cough and fever.", "Chest pain.", "Follow-up.",
                                "Preoperative evaluation.", "Evaluate for pneumonia.")
