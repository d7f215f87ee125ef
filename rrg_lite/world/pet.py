"""PET (SUV) co-registered with the CT: physiological uptake plus lesions that are, or are not, FDG-avid.

The point for ViPET-VLM: "hot" ≠ "lesion", and "lesion" ≠ "malignant". The brain, a fasting-independent
myocardium, the kidneys and the bladder are bright on every FDG PET (they fill a plain SUV-threshold mask); a lesion
is hypermetabolic only if its record says so. A model that reads only the CT cannot tell an active from an inactive
nodule; a model that reads only PET cannot tell a tumour from the bladder or say how big the nodule is.

How the SUV volume is made (:func:`make_pet`), and why:

1. *Tracer map* on the CT grid: each structure's SUV (:data:`BASE_SUV`, brain/heart/bladder/liver drawn per
   patient); a lesion's voxels are set to quiet tissue (0.9, cysts 0.5 like water).
2. *Scanner*: a Gaussian PSF of ``cfg.pet_blur_vox`` voxels (σ; FWHM ≈ 2.4 voxels), then block averaging onto a
   coarser grid (:data:`PET_VOXEL_FACTOR` × in-plane: 12.5 mm PET voxels under 6.25 mm CT voxels), multiplicative
   noise ``cfg.pet_noise`` on the coarse voxels, and nearest-neighbour upsampling back to the CT grid. So PET stays
   co-registered voxel for voxel but is coarser and blurrier than CT: size and margins are readable only on CT.
3. *Lesion uptake*: every PET-relevant lesion gets a drawn SUVmax — malignant (hypermetabolic) ones
   :data:`MALIGNANT_SUV` (4–15), the others at most :data:`BENIGN_SUV_CAP` (< 2.5). Because steps 1–2 are linear
   before the noise, the lesion's extra activity ``a`` is solved so that the blurred lesion reaches its SUVmax
   exactly (``max_v B_v + a·E_v = t`` over the coarse voxels v the lesion touches; B = the blurred map without
   the lesion, E = the blurred lesion indicator: ``a = min_v (t − B_v) / E_v``), a hot spot with a real halo;
   after the noise those voxels are rescaled so that the SUVmax a reader measures is the drawn one. Benign
   lesions are only capped (a rim of hot neighbours is scaled down to the cap).

The measured SUVmax (one decimal) is written to each finding's ``suv_max``; ``hypermetabolic`` stays the drawn
truth (it now always agrees with SUVmax ≥ 2.5). Each finding's PET region (head-neck / chest / abdomen-pelvis)
is set here from the slice of its mask (:func:`region_boundaries`), so the region crops
(:mod:`rrg_lite.world.petct`) always contain what their report halves say.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .findings import Finding
from .phantom import LABEL, STRUCTURES, Anatomy

#: Mean SUV of each structure (body-weight SUV, typical FDG values).
BASE_SUV: dict[str, float] = {
    "background": 0.0, "fat": 0.35, "soft_tissue": 0.8, "breast": 0.6, "rib": 0.9, "sternum": 1.0, "spine": 1.3,
    "pelvic_bone": 1.1, "skull": 0.9, "brain": 8.0, "lung_right": 0.45, "lung_left": 0.45, "mediastinum": 0.7,
    "heart": 1.8, "aorta": 1.7, "esophagus": 1.3, "trachea": 0.0, "bronchi": 0.0, "thyroid": 1.2, "liver": 2.3,
    "gallbladder": 0.6, "stomach": 1.8, "spleen": 1.9, "kidney_right": 4.0, "kidney_left": 4.0, "pancreas": 1.5,
    "bowel": 1.6, "bladder": 15.0, "pleural_fluid": 0.5, "pericardial_fluid": 0.5, "stomach_gas": 0.0,
}

#: In-plane block size of a PET voxel in CT voxels (ViMed-PET's GE Discovery: ~4 mm PET under ~1 mm CT pixels).
PET_VOXEL_FACTOR = 2
#: SUVmax range of a malignant (hypermetabolic) lesion, and the cap of every other lesion (SYSTEMS.md §1).
MALIGNANT_SUV = (4.0, 15.0)
BENIGN_SUV_CAP = (1.0, 2.4)
#: Lesions whose tracer value is water-like.
CYST_KINDS = ("liver_cyst", "renal_cyst")
#: A lesion reads "hot" at or above this SUVmax (the world's and the reports' threshold).
HOT_SUV = 2.5


def region_boundaries(labelmap: np.ndarray) -> tuple[int, int]:
    """The two region boundaries of a whole-body volume from its anatomy: ``(b1, b2)`` slice indices.

    b1 = the first slice that contains lung (the lung apices: head-neck above), b2 = one past the last slice that
    contains lung (the lung bases: abdomen-pelvis below). So the chest region is exactly the slices with lung, and
    every lung and mediastinal finding lies in it. Raises ValueError when the volume has no lung or no slice above
    or below it (not a whole-body scan).
    """
    lung = np.isin(labelmap, [LABEL["lung_right"], LABEL["lung_left"]]).any(axis=(1, 2))
    idx = np.nonzero(lung)[0]
    if idx.size == 0:
        raise ValueError("region_boundaries: the label map has no lung; cannot place the chest region")
    b1, b2 = int(idx[0]), int(idx[-1]) + 1
    if not 0 < b1 < b2 < labelmap.shape[0]:
        raise ValueError(f"region_boundaries: lung spans slices [{b1}, {b2}) of {labelmap.shape[0]}; a whole-body "
                         f"scan needs slices above and below it")
    return b1, b2


def region_of_slice(z: float, boundaries: tuple[int, int]) -> str:
    """"head_neck", "chest" or "abdomen_pelvis" for slice index ``z`` (a centroid may be fractional)."""
    b1, b2 = boundaries
    return "head_neck" if z < b1 else "chest" if z < b2 else "abdomen_pelvis"


def _coarse(x: np.ndarray, k: int) -> np.ndarray:
    """Block-average (D, H, W) → (D, ⌈H/k⌉, ⌈W/k⌉) (edge-padded), the PET detector grid."""
    if k == 1:
        return x.astype(np.float32)
    d, h, w = x.shape
    ph, pw = (-h) % k, (-w) % k
    x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return x.reshape(d, (h + ph) // k, k, (w + pw) // k, k).mean(axis=(2, 4)).astype(np.float32)


def _fine(x: np.ndarray, k: int, shape) -> np.ndarray:
    """Nearest-neighbour upsampling back to the CT grid ``shape``."""
    if k == 1:
        return x
    return np.repeat(np.repeat(x, k, axis=1), k, axis=2)[:, : shape[1], : shape[2]]


def make_pet(rng: np.random.Generator, anatomy: Anatomy, labels: np.ndarray, findings: list[Finding],
             finding_masks: dict[int, np.ndarray], cfg) -> tuple[np.ndarray, dict[str, bool]]:
    """SUV volume (D, H, W) float32 on the CT grid and the physiological uptake present (organ → bool).

    See the module docstring for the steps. Side effects on ``findings``: ``suv_max`` (measured) for PET-relevant
    lesions (``hypermetabolic is not None``) and ``params["pet_region"]`` for every finding with a mask.
    """
    k = int(getattr(cfg, "pet_voxel_factor", PET_VOXEL_FACTOR))
    suv_of = dict(BASE_SUV)
    suv_of["brain"] = float(rng.uniform(6.0, 11.0))
    hot_heart = bool(rng.random() < 0.6)
    suv_of["heart"] = float(rng.uniform(4.0, 9.0)) if hot_heart else float(rng.uniform(1.5, 2.2))
    suv_of["bladder"] = float(rng.uniform(8.0, 25.0))
    suv_of["liver"] = float(rng.uniform(1.9, 2.7))
    lut = np.array([suv_of[s] for s in STRUCTURES], np.float32)
    tracer = lut[labels]
    lesions = [f for f in findings if f.present and f.hypermetabolic is not None
               and finding_masks.get(f.id) is not None and finding_masks[f.id].any()]
    for f in lesions:
        tracer[finding_masks[f.id]] = 0.5 if f.kind in CYST_KINDS else 0.9

    def scanner(x):   # linear part of the scanner: PSF, then the coarse detector grid
        if cfg.pet_blur_vox > 0:
            x = ndimage.gaussian_filter(x.astype(np.float32), cfg.pet_blur_vox, mode="nearest")
        return _coarse(x, k)

    clean = scanner(tracer)
    targets, cells = {}, {}
    for f in lesions:
        m = finding_masks[f.id]
        cells[f.id] = _coarse(m.astype(np.float32), k) > 0          # coarse voxels the lesion touches
        if f.hypermetabolic:
            t = float(rng.uniform(*MALIGNANT_SUV))
            e = scanner(m.astype(np.float32))
            c = cells[f.id] & (e > 1e-6)
            if c.any():
                a = float(np.min((t - clean[c]) / e[c]))
                clean = clean + max(a, 0.0) * e
        else:
            t = float(rng.uniform(*BENIGN_SUV_CAP))
        targets[f.id] = t
    noisy = clean * (1.0 + cfg.pet_noise * rng.standard_normal(clean.shape).astype(np.float32))
    noisy = np.clip(noisy, 0.0, None).astype(np.float32)
    # what a reader measures is what the record says: benign caps first, malignant SUVmax last (they win overlaps)
    for f in sorted(lesions, key=lambda g: bool(g.hypermetabolic)):
        c, t = cells[f.id], targets[f.id]
        cur = float(noisy[c].max())
        if f.hypermetabolic or cur > t:
            noisy[c] *= t / max(cur, 1e-6)
    suv = _fine(noisy, k, labels.shape).astype(np.float32)
    for f in lesions:
        f.suv_max = round(float(suv[finding_masks[f.id]].max()), 1)
    try:
        bounds = region_boundaries(labels)
    except ValueError:   # not a whole-body scan: no PET regions to assign
        bounds = None
    if bounds is not None:
        for f in findings:
            m = finding_masks.get(f.id)
            if m is not None and m.any():
                zc = float(np.nonzero(m.any(axis=(1, 2)))[0].mean())
                f.params["pet_region"] = region_of_slice(zc, bounds)
    present = {"brain": bool((labels == STRUCTURES.index("brain")).any()), "myocardium": hot_heart,
               "kidneys": bool(np.isin(labels, [STRUCTURES.index("kidney_right"), STRUCTURES.index("kidney_left")]).any()),
               "urinary bladder": bool((labels == STRUCTURES.index("bladder")).any())}
    if not (labels == STRUCTURES.index("heart")).any():
        present["myocardium"] = False
    return suv, present
