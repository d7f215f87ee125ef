"""PET DICOM → SUV, and PET resampled onto the CT grid (for real PET/CT studies such as ViMed-PET).

Body-weight SUV of a voxel::

    SUV = C(t) [Bq/mL] × weight [g] / (injected dose [Bq] × 2^(−Δt / T½))

C comes from the pixel values after RescaleSlope/Intercept when ``Units`` (0054,1001) is ``BQML``; the dose,
the half-life and the injection time come from ``RadiopharmaceuticalInformationSequence`` (0054,0016); Δt runs from
the injection to the time the images are decay-corrected to (``SeriesTime`` when ``DecayCorrection`` is ``START``,
the standard case; ``AcquisitionTime`` otherwise). Only these numbers are read: no identifying tag leaves the header.
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
