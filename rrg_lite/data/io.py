"""Reading and writing the two file formats of 3-D radiology: NIfTI volumes and DICOM slices.

Both readers return a :class:`Volume`: the voxels as float32 plus the geometry (``affine``, ``spacing``) that
says where each voxel sits in millimetres. Errors name the file and the problem, because a radiology pipeline
fails on real data far more often on a bad file than on a bug.

Conventions
- ``Volume.array`` keeps the **file's voxel order** (NIfTI: ``(i, j, k)``; DICOM series: ``(slice, row, col)``).
  :func:`as_canonical` reorders a NIfTI volume to RAS+ (nibabel's closest canonical orientation) when a
  chapter needs one orientation for all scans.
- Intensities: NIfTI ``scl_slope``/``scl_inter`` and DICOM ``RescaleSlope``/``RescaleIntercept`` are applied,
  so a CT comes out in Hounsfield units (HU).
- Nothing that identifies a patient is copied out of a DICOM header: :func:`read_dicom_slice` keeps only
  geometry and intensity tags (see :data:`DICOM_KEPT_TAGS`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = [
    "zyx_affine", "Volume", "ImageFileError", "load_nifti", "save_nifti", "as_canonical",
    "read_dicom_slice", "read_dicom_series", "DICOM_KEPT_TAGS",
]


class ImageFileError(ValueError):
    """A volume or image file that cannot be used; the message names the file and the problem."""


@dataclass
class Volume:
    """A 3-D image with its geometry.

    array:   float32, shape (X, Y, Z) for NIfTI or (Z, Y, X) = (slice, row, col) for a DICOM series.
    affine:  4×4 voxel-index → patient/world millimetres (NIfTI: RAS+; DICOM: LPS+, as the standard defines).
    spacing: voxel size in mm along the array's three axes.
    meta:    non-identifying header values (modality, units, rescale, ...).
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)


def zyx_affine(spacing: Sequence[float], origin_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The NIfTI (RAS+) affine of an array indexed (z, y, x) in the world's patient frame.

    The world (and the radiological display convention) indexes volumes as (z: head→feet, y: anterior→posterior,
    x: patient's right→left) with ``spacing = (sz, sy, sx)``. In RAS+ those axes point to Inferior, Posterior and
    Left, so each column of the affine is a *negative* unit vector: the file's orientation code is "IPL".
    ``origin_mm`` is the (z, y, x) position in mm of voxel (0, 0, 0).
    """
    sz, sy, sx = (float(s) for s in spacing)
    z0, y0, x0 = (float(o) for o in origin_mm)
    affine = np.zeros((4, 4))
    affine[0, 2] = -sx  # array axis 2 (x, towards the left) decreases R
    affine[1, 1] = -sy  # array axis 1 (y, towards the back) decreases A
    affine[2, 0] = -sz  # array axis 0 (z, towards the feet) decreases S
    affine[:3, 3] = (-x0, -y0, -z0)
    affine[3, 3] = 1.0
    return affine


def _check_voxels(array: np.ndarray, path: str | Path, allow_nan: bool = False) -> np.ndarray:
    if array.ndim != 3:
        raise ImageFileError(f"{path}: expected a 3-D volume, got {array.ndim}-D data of shape {array.shape}")
    if min(array.shape) < 1:
        raise ImageFileError(f"{path}: volume has an empty axis, shape {array.shape}")
    if not allow_nan and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ImageFileError(f"{path}: {bad} voxels are NaN or infinite")
    return array


def load_nifti(path: str | Path, allow_nan: bool = False) -> Volume:
    """Read a ``.nii``/``.nii.gz`` file; scaling (``scl_slope``/``scl_inter``) applied; float32 voxels.

    A 4-D file with a single volume (shape ``(X, Y, Z, 1)``) is accepted and squeezed; anything else that is not
    3-D raises :class:`ImageFileError`, as does a missing or unreadable file or NaN voxels (unless ``allow_nan``).
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise ImageFileError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for truncated or foreign files
        raise ImageFileError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    data = _check_voxels(data, path, allow_nan)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return Volume(array=data, affine=np.asarray(img.affine, dtype=np.float64), spacing=zooms, path=str(path),
                  meta={"format": "nifti", "orientation": "".join(nib.aff2axcodes(img.affine))})


def save_nifti(array: np.ndarray, path: str | Path, affine: np.ndarray | None = None,
               spacing: Sequence[float] | None = None, dtype: Any = None) -> Path:
    """Write ``array`` (X, Y, Z) to ``path``. Give ``affine``, or ``spacing`` for a diagonal (RAS) affine.

    Integer dtypes (e.g. ``np.int16`` for HU, ``np.uint8`` for masks) keep files small and byte-reproducible.
    """
    import nibabel as nib

    array = np.asarray(array)
    if array.ndim != 3:
        raise ImageFileError(f"{path}: can only write 3-D volumes, got shape {array.shape}")
    if affine is None:
        affine = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
    if dtype is not None:
        array = array.astype(dtype)
    img = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def as_canonical(volume: Volume) -> Volume:
    """The same NIfTI volume with its axes flipped/permuted to RAS+ (affine updated accordingly)."""
    import nibabel as nib

    img = nib.Nifti1Image(volume.array, volume.affine)
    canon = nib.as_closest_canonical(img)
    data = np.asarray(canon.dataobj, dtype=np.float32)
    spacing = tuple(float(z) for z in canon.header.get_zooms()[:3])
    meta = dict(volume.meta, orientation="RAS")
    return Volume(array=data, affine=np.asarray(canon.affine), spacing=spacing, path=volume.path, meta=meta)


# Geometry and intensity only: names, IDs, dates, institutions and physicians never leave the header.
DICOM_KEPT_TAGS = (
    "Modality", "Rows", "Columns", "PixelSpacing", "SliceThickness", "ImagePositionPatient",
    "ImageOrientationPatient", "RescaleSlope", "RescaleIntercept", "Units", "BitsStored",
    "PhotometricInterpretation",
)


def read_dicom_slice(path: str | Path):
    """One DICOM image → (float32 array (rows, cols) after rescale, dict of non-identifying tags)."""
    import pydicom

    path = Path(path)
    if not path.exists():
        raise ImageFileError(f"{path}: file not found")
    try:
        ds = pydicom.dcmread(str(path))
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as exc:
        raise ImageFileError(f"{path}: not a readable DICOM image ({type(exc).__name__}: {exc})") from exc
    if pixels.ndim != 2:
        raise ImageFileError(f"{path}: expected a single 2-D slice, got pixel data of shape {pixels.shape}")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    tags: dict[str, Any] = {}
    for name in DICOM_KEPT_TAGS:
        value = getattr(ds, name, None)
        if value is None:
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = [float(v) for v in value]
        elif isinstance(value, (int, str)):
            value = value
        elif isinstance(value, float):
            value = float(value)
        else:
            value = str(value)
        tags[name] = value
    return pixels * slope + intercept, tags


def read_dicom_series(folder: str | Path, pattern: str = "*") -> Volume:
    """All DICOM slices of one series in ``folder`` → a (Z, Y, X) volume in HU, sorted along the slice normal.

    Slices are ordered by their position projected on the normal of ``ImageOrientationPatient`` (the robust
    rule; file names and ``InstanceNumber`` lie often). Mixed slice sizes raise :class:`ImageFileError`.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not files:
        raise ImageFileError(f"{folder}: no DICOM files found")
    slices = [(p, *read_dicom_slice(p)) for p in files]
    shapes = {s[1].shape for s in slices}
    if len(shapes) != 1:
        raise ImageFileError(f"{folder}: slices have different sizes {sorted(shapes)}; not one series")
    first_tags = slices[0][2]
    orient = np.asarray(first_tags.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), dtype=np.float64)
    row_dir, col_dir = orient[:3], orient[3:]
    normal = np.cross(row_dir, col_dir)

    def position(tags):
        return float(np.dot(normal, tags.get("ImagePositionPatient", [0.0, 0.0, 0.0])))

    slices.sort(key=lambda s: position(s[2]))
    array = np.stack([s[1] for s in slices]).astype(np.float32)
    dy, dx = (float(v) for v in first_tags.get("PixelSpacing", [1.0, 1.0]))
    if len(slices) > 1:
        dz = abs(position(slices[1][2]) - position(slices[0][2])) or float(first_tags.get("SliceThickness", 1.0))
    else:
        dz = float(first_tags.get("SliceThickness", 1.0) or 1.0)
    origin = np.asarray(first_tags.get("ImagePositionPatient", [0.0, 0.0, 0.0]), dtype=np.float64)
    affine = np.eye(4)
    # Array axes are (slice, row, col): col steps along row_dir by dx, row along col_dir by dy.
    affine[:3, 0] = normal * dz
    affine[:3, 1] = col_dir * dy
    affine[:3, 2] = row_dir * dx
    affine[:3, 3] = origin
    meta = {k: v for k, v in first_tags.items() if k not in ("ImagePositionPatient",)}
    meta.update(format="dicom", n_slices=len(slices))
    return Volume(array=_check_voxels(array, folder), affine=affine, spacing=(dz, dy, dx), path=str(folder), meta=meta)
