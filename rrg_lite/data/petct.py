"""PET DICOM → SUV, PET resampled onto the CT grid, and the three overlapping z-regions (real PET/CT, ViMed-PET).

Body-weight SUV of a voxel::

    SUV = C(t) [Bq/mL] × weight [g] / (injected dose [Bq] × 2^(−Δt / T½))

C comes from the pixel values after RescaleSlope/Intercept when ``Units`` (0054,1001) is ``BQML``; the dose,
the half-life and the injection time come from ``RadiopharmaceuticalInformationSequence`` (0054,0016); Δt runs from
the injection to the time the images are decay-corrected to (``SeriesTime`` when ``DecayCorrection`` is ``START``,
the standard case; ``AcquisitionTime`` otherwise). Only these numbers are read: no identifying tag leaves the header.

ViMed-PET splits every whole-body study into head-neck, chest and abdomen-pelvis "with a 20-slice overlap to
prevent information loss at the boundaries" (ViPET-VLM §4.1.1). :func:`region_slices` turns two boundary slices
into the three overlapping ranges, :func:`crop_regions` cuts co-registered volumes with them and
:func:`scaled_overlap` scales the 20 slices to a smaller volume. Where the boundaries come from is the caller's
choice (the world takes them from its anatomy: :func:`rrg_lite.world.pet.region_boundaries`; study-level crops
with findings and reports: :func:`rrg_lite.world.petct.split_regions`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import ImageFileError, Volume, read_dicom_series


def _seconds(t) -> float:
    """DICOM TM ``HHMMSS.FFFFFF`` → seconds after midnight."""
    s = str(t).strip()
    if len(s) < 2 or not s[:2].isdigit():
        raise ValueError(f"not a DICOM time: {t!r}")
    hh = int(s[:2])
    mm = int(s[2:4]) if len(s) >= 4 else 0
    ss = float(s[4:]) if len(s) > 4 else 0.0
    return hh * 3600 + mm * 60 + ss


def suv_factor(ds, path: str | Path = "PET header") -> float:
    """Multiply activity concentration (Bq/mL) by this to get body-weight SUV; errors name the missing tag."""
    units = str(getattr(ds, "Units", "")).upper()
    if units != "BQML":
        raise ImageFileError(f"{path}: PET Units is {units!r}; SUV conversion needs BQML")
    weight = getattr(ds, "PatientWeight", None)
    if not weight or float(weight) <= 0:
        raise ImageFileError(f"{path}: PatientWeight (0010,1030) missing or zero; cannot compute SUV")
    seq = getattr(ds, "RadiopharmaceuticalInformationSequence", None)
    if not seq:
        raise ImageFileError(f"{path}: RadiopharmaceuticalInformationSequence (0054,0016) missing")
    info = seq[0]
    try:
        dose = float(info.RadionuclideTotalDose)
        half_life = float(info.RadionuclideHalfLife)
        t_inj = _seconds(info.RadiopharmaceuticalStartTime)
    except (AttributeError, ValueError) as exc:
        raise ImageFileError(f"{path}: incomplete radiopharmaceutical information ({exc})") from exc
    decay_ref = "START"
    if getattr(ds, "DecayCorrection", None):
        decay_ref = str(ds.DecayCorrection).upper()
    t_ref = getattr(ds, "SeriesTime", None) if decay_ref == "START" else getattr(ds, "AcquisitionTime", None)
    if t_ref is None:
        t_ref = getattr(ds, "AcquisitionTime", None) or getattr(ds, "SeriesTime", None)
    if t_ref is None:
        raise ImageFileError(f"{path}: no SeriesTime/AcquisitionTime to decay-correct the dose to")
    dt = _seconds(t_ref) - t_inj
    if dt < 0:   # scan after midnight
        dt += 24 * 3600
    decayed = dose * 2.0 ** (-dt / half_life)
    return float(weight) * 1000.0 / decayed


def read_pet_suv(folder: str | Path) -> Volume:
    """A PET DICOM series → :class:`~rrg_lite.data.io.Volume` in SUV (body weight), (slice, row, col) order."""
    import pydicom

    folder = Path(folder)
    vol = read_dicom_series(folder)
    first = next(p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("."))
    ds = pydicom.dcmread(str(first), stop_before_pixels=True)
    factor = suv_factor(ds, first)
    meta = dict(vol.meta, units="SUVbw", suv_factor=factor)
    return Volume(array=(vol.array * factor).astype(np.float32), affine=vol.affine, spacing=vol.spacing,
                  path=vol.path, meta=meta)


def resample_like(moving: Volume, reference: Volume, order: int = 1, fill: float = 0.0) -> np.ndarray:
    """``moving`` resampled onto ``reference``'s voxel grid using both affines (same world frame, e.g. both DICOM
    LPS). Returns an array of ``reference.shape``; points outside ``moving`` get ``fill``."""
    from scipy import ndimage

    ref_idx = np.indices(reference.shape).reshape(3, -1).astype(np.float64)
    world = reference.affine[:3, :3] @ ref_idx + reference.affine[:3, 3:4]
    mov_idx = np.linalg.solve(moving.affine[:3, :3], world - moving.affine[:3, 3:4])
    out = ndimage.map_coordinates(moving.array, mov_idx, order=order, mode="constant", cval=fill)
    return out.reshape(reference.shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# ViPET-VLM's three z-regions (ViMed-PET §4.1.1: head-neck, chest, abdomen-pelvis, 20-slice overlap)
# ---------------------------------------------------------------------------------------------------------------
#: ViMed-PET's regions, head to feet (the same names as :data:`rrg_lite.world.vocab.PET_REGIONS`).
REGION_ORDER: tuple[str, ...] = ("head_neck", "chest", "abdomen_pelvis")

#: The paper's overlap (slices) and a typical ViMed-PET depth (250–500 slices: the middle, 375).
PAPER_OVERLAP, PAPER_DEPTH = 20, 375


def scaled_overlap(depth: int, overlap: int = PAPER_OVERLAP, reference_depth: int = PAPER_DEPTH) -> int:
    """The paper's overlap scaled to a volume of ``depth`` slices: ``round(overlap · depth / reference_depth)``.

    20 of ~375 slices is ~5 % of the body; a 36-slice world volume gets 2 slices, a real 375-slice one 20. At least
    1 whenever ``overlap > 0`` (an overlap that rounds away would drop the boundary protection the paper wants).
    """
    if depth < 1 or reference_depth < 1 or overlap < 0:
        raise ValueError(f"scaled_overlap: need depth ≥ 1, reference_depth ≥ 1, overlap ≥ 0; got {depth}, "
                         f"{reference_depth}, {overlap}")
    if overlap == 0:
        return 0
    return max(1, int(round(overlap * depth / reference_depth)))


def region_slices(depth: int, boundaries: tuple[int, int], overlap: int) -> dict[str, tuple[int, int]]:
    """Slice ranges ``[z0, z1)`` of the three regions, neighbours sharing ``overlap`` slices at each boundary.

    ``boundaries = (b1, b2)``: the first slice of the chest and the first slice of the abdomen-pelvis, so without
    overlap the regions are ``[0, b1)``, ``[b1, b2)``, ``[b2, depth)``. The shared slices are centred on each
    boundary: the upper region runs ``ceil(overlap / 2)`` slices past it, the lower one starts ``floor(overlap / 2)``
    before it (clipped to the volume). Example: depth 10, boundaries (3, 7), overlap 2 →
    head_neck [0, 4), chest [2, 8), abdomen_pelvis [6, 10); slices 2–3 and 6–7 are in two crops.
    """
    b1, b2 = (int(b) for b in boundaries)
    if not 0 < b1 < b2 < depth:
        raise ValueError(f"region_slices: boundaries must satisfy 0 < b1 < b2 < depth={depth}, got {boundaries}")
    if overlap < 0:
        raise ValueError(f"region_slices: overlap must be ≥ 0 slices, got {overlap}")
    up, down = (overlap + 1) // 2, overlap // 2
    return {"head_neck": (0, min(depth, b1 + up)),
            "chest": (max(0, b1 - down), min(depth, b2 + up)),
            "abdomen_pelvis": (max(0, b2 - down), depth)}


def crop_regions(volumes: dict[str, np.ndarray], boundaries: tuple[int, int],
                 overlap: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Cut co-registered volumes (name → array (D, ...), e.g. ``{"CT": ct, "PET": suv, "liver": mask}``) into the
    three regions: region → name → array (z1 − z0, ...), views into the inputs (copy them to keep them apart).

    ``overlap=None`` scales the paper's 20 slices to D (:func:`scaled_overlap`); pass ``overlap=20`` for a real
    ViMed-PET volume. All volumes must have the same depth (the same z grid, as after :func:`resample_like`).
    """
    if not volumes:
        raise ValueError("crop_regions: no volumes given")
    depths = {k: int(np.shape(v)[0]) if np.ndim(v) >= 1 else None for k, v in volumes.items()}
    if None in depths.values() or len(set(depths.values())) != 1:
        raise ValueError(f"crop_regions: volumes must share their first (z) axis, got depths {depths}")
    depth = next(iter(depths.values()))
    if overlap is None:
        overlap = scaled_overlap(depth)
    spans = region_slices(depth, boundaries, overlap)
    return {r: {k: v[z0:z1] for k, v in volumes.items()} for r, (z0, z1) in spans.items()}
