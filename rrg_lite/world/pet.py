"""PET (SUV) co-registered with the CT: physiological uptake plus lesions that are, or are not, FDG-avid.

The point for ViPET-VLM: "hot" ≠ "lesion". The brain, a fasting-independent myocardium, the kidneys and the
bladder are bright on every FDG PET; a lesion is hypermetabolic only if its record says so. A model that reads only
the CT cannot tell an active from an inactive nodule; a model that reads only PET cannot tell a tumour from the
bladder or say how big the nodule is.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .findings import Finding
from .phantom import STRUCTURES, Anatomy

#: Mean SUV of each structure (body-weight SUV, typical FDG values).
BASE_SUV: dict[str, float] = {
    "background": 0.0, "fat": 0.35, "soft_tissue": 0.8, "breast": 0.6, "rib": 0.9, "sternum": 1.0, "spine": 1.3,
    "pelvic_bone": 1.1, "skull": 0.9, "brain": 8.0, "lung_right": 0.45, "lung_left": 0.45, "mediastinum": 0.7,
    "heart": 1.8, "aorta": 1.7, "esophagus": 1.3, "trachea": 0.0, "bronchi": 0.0, "thyroid": 1.2, "liver": 2.3,
    "gallbladder": 0.6, "stomach": 1.8, "spleen": 1.9, "kidney_right": 4.0, "kidney_left": 4.0, "pancreas": 1.5,
    "bowel": 1.6, "bladder": 15.0, "pleural_fluid": 0.5, "pericardial_fluid": 0.5, "stomach_gas": 0.0,
}


def make_pet(rng: np.random.Generator, anatomy: Anatomy, labels: np.ndarray, findings: list[Finding],
             finding_masks: dict[int, np.ndarray], cfg) -> tuple[np.ndarray, dict[str, bool]]:
    """SUV volume (D, H, W) float32 and the physiological uptake present (organ → bool).

    Lesion SUVmax is *measured* on the final (blurred, noisy) PET inside the lesion mask and written back to each
    finding's ``suv_max``, so a small hot lesion reads lower than its true uptake (partial-volume effect), as on a
    real scanner; one that ends below SUV 2.5 is recorded as not hypermetabolic (it would not read as hot).
    """
    suv_of = dict(BASE_SUV)
    suv_of["brain"] = float(rng.uniform(6.0, 11.0))
    hot_heart = bool(rng.random() < 0.6)
    suv_of["heart"] = float(rng.uniform(4.0, 9.0)) if hot_heart else float(rng.uniform(1.5, 2.2))
    suv_of["bladder"] = float(rng.uniform(8.0, 25.0))
    suv_of["liver"] = float(rng.uniform(1.9, 2.7))
    lut = np.array([suv_of[s] for s in STRUCTURES], np.float32)
    suv = lut[labels]
    for f in findings:
        m = finding_masks.get(f.id)
        if not f.present or m is None or not m.any() or f.hypermetabolic is None:
            continue
        if f.hypermetabolic:
            suv[m] = np.maximum(suv[m], rng.uniform(5.0, 15.0))
        else:  # FDG-negative lesion: like quiet soft tissue (cysts: like water)
            suv[m] = 0.6 if f.kind in ("liver_cyst", "renal_cyst") else 0.9
    if cfg.pet_blur_vox > 0:
        suv = ndimage.gaussian_filter(suv, cfg.pet_blur_vox, mode="nearest")
    suv = suv * (1.0 + cfg.pet_noise * rng.standard_normal(suv.shape).astype(np.float32))
    suv = np.clip(suv, 0.0, None).astype(np.float32)
    for f in findings:
        m = finding_masks.get(f.id)
        if f.present and m is not None and m.any() and f.hypermetabolic is not None:
            f.suv_max = float(np.round(suv[m].max(), 1))
            if f.hypermetabolic and f.suv_max < 2.5:   # below PET resolution: it does not read as hot
                f.hypermetabolic = False
    present = {"brain": bool((labels == STRUCTURES.index("brain")).any()), "myocardium": hot_heart,
               "kidneys": bool(np.isin(labels, [STRUCTURES.index("kidney_right"), STRUCTURES.index("kidney_left")]).any()),
               "urinary bladder": bool((labels == STRUCTURES.index("bladder")).any())}
    if not (labels == STRUCTURES.index("heart")).any():
        present["myocardium"] = False
    return suv, present
