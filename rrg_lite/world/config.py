"""The world's difficulty knobs, with the defaults the CPU profile uses and why.

Every knob is a field of :class:`WorldConfig`; ``WorldConfig(**overrides)`` or ``cfg.replace(...)`` changes them.
The defaults are chosen so that each paper's mechanism has something to do on a 64×64×(24–48) volume:

* ``lesion_size_scale = 1.0`` with nodules of 6–30 mm on 6.25 mm voxels: the big ones are obvious, the small
  ones cover one or two voxels and vanish when a volume is average-pooled 2× (μ²'s argument for keeping
  resolution; Reg2RG's for cropping regions at higher resolution).
* ``lesion_contrast = 1.0``: a solid nodule is about +900 HU over lung, a liver lesion −35 HU under liver. The
  abdominal lesions are the hard ones on purpose (soft-tissue contrast, like on a real non-contrast CT).
* ``noise_hu = 12``: enough to hide the faintest partial-volume specks, far below the lesion contrasts.
* ``label_balance = 0.25``: prevalences move a quarter of the way from CT-RATE/MIMIC-like values toward 0.5,
  so that rare labels (mosaic attenuation, septal thickening) still appear often enough to be learned and scored.
* ``p_hypermetabolic = 0.5``: half of the lesions that can be active are; only PET tells which (ViPET-VLM).
* ``p_normal_xray = 0.3``: about a third of X-ray studies are normal (MIMIC-CXR has ~30 % "No Finding"), so
  a model cannot win by always reporting something.
* ``p_one_view_only = 0.35``: of the X-ray findings that can hide (small effusions in the posterior recess,
  retrocardiac opacities, rib fractures, apical pneumothoraces) about a third are visible on one view only, so a
  lateral view adds information (LLM-RG4's multi-view scenarios).
* ``p_prior_xray = 0.5``: half of the X-ray studies have a prior study of the same patient; changes between the two
  (new, increased, decreased, resolved, unchanged) are only knowable from the prior (LLM-RG4's "with prior").
* ``p_input_agnostic_xray = 0.3``: a third of X-ray reports carry one or two sentences that no image can support
  (a comparison with an unseen study, a phone call, a recommendation), each tagged, for LLM-RG4's rewriting story.

Chapter 4's encoders (:mod:`rrg_lite.profiles.encoders`) read the world with one departure from these defaults:
CT lesions 1.5x larger (``lesion_size_scale=1.5``, as chapter 5 does) on a chest scan range; they also resize every
CT to 32×64×64 and standardise each voxel against the training studies — preprocessing, not world, changes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class WorldConfig:
    # --- CT geometry -----------------------------------------------------------------------------------------
    ct_size: int = 64                     # in-plane pixels (H = W)
    ct_depth: tuple[int, int] = (24, 48)  # slice count drawn uniformly per study (inclusive)
    fov_mm: float = 400.0                 # in-plane field of view (mm); 400/64 = 6.25 mm pixels
    scan_range: str = "cap"               # "chest" (CT-RATE-like), "cap" (AMOS-MM-like), "whole_body" (PET/CT)
    noise_hu: float = 12.0                # Gaussian scanner noise (HU)
    blur_vox: float = 0.5                 # partial-volume blur (voxels)
    # --- lesions and labels ------------------------------------------------------------------------------------
    lesion_size_scale: float = 1.0        # multiplies every lesion size
    lesion_contrast: float = 1.0          # multiplies every lesion's HU difference to its background
    label_balance: float = 0.25           # 0 = real-like prevalence, 1 = every finding kind at 50 %
    prevalence_scale: float = 1.0         # multiplies all prevalences (before balancing)
    p_hypermetabolic: float = 0.5         # chance that a lesion that can be active is hypermetabolic on PET
    p_prior_ct: float = 0.0               # chance a CT study gets a prior (doubles its cost)
    # --- PET -------------------------------------------------------------------------------------------------
    pet: bool = False                     # generate a co-registered SUV volume
    pet_noise: float = 0.15               # relative (multiplicative) PET noise
    pet_blur_vox: float = 1.0             # PET resolution (Gaussian sigma in voxels)
    # --- X-ray -------------------------------------------------------------------------------------------------
    xray_size: int = 128                  # output image side (pixels)
    xray_grid: int = 64                   # voxels across the chest phantom that is projected
    xray_noise: float = 0.01              # additive noise on the [0, 1] image
    p_lateral: float = 0.7                # chance a study also has a lateral view
    p_one_view_only: float = 0.35         # chance a hideable finding shows on one view only
    p_prior_xray: float = 0.5             # chance an X-ray study has a prior study
    p_uncertain: float = 0.1              # chance an X-ray finding is reported with hedging (label −1)
    p_normal_xray: float = 0.3            # chance an X-ray study has no pathology at all (devices allowed)
    # --- reports ---------------------------------------------------------------------------------------------
    p_input_agnostic_ct: float = 0.0      # chance a CT report carries input-agnostic sentences
    p_input_agnostic_xray: float = 0.3    # same for X-ray reports
    p_state_negative: float = 0.5         # chance a normal region/label is stated as a negative sentence
    qa_per_study: int = 6                 # questions per study (closed and open mixed)

    def replace(self, **changes) -> "WorldConfig":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = WorldConfig()


def study_seeds(seed: int, n: int) -> list[np.random.SeedSequence]:
    """Independent per-study seeds: study i is the same whatever ``n`` is and whichever worker makes it."""
    return np.random.SeedSequence(seed).spawn(n)
