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
    "read_dicom_slice", "read_dicom_series", "split_dicom_series", "series_key", "DICOM_KEPT_TAGS",
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
    # nibabel moves the header's scaling onto the data proxy when it loads a file
    slope, inter = getattr(img.dataobj, "slope", None), getattr(img.dataobj, "inter", None)
    # "scaled": the header's own scl_slope/scl_inter changed the values (so a dataset's rescale must not be re-applied)
    scaled = (slope is not None and slope != 1.0) or (inter is not None and inter != 0.0)
    return Volume(array=data, affine=np.asarray(img.affine, dtype=np.float64), spacing=zooms, path=str(path),
                  meta={"format": "nifti", "orientation": "".join(nib.aff2axcodes(img.affine)), "scaled": bool(scaled)})


def save_nifti(array: np.ndarray, path: str | Path, affine: np.ndarray | None = None,
               spacing: Sequence[float] | None = None, dtype: Any = None) -> Path:
    """Write ``array`` (X, Y, Z) to ``path``. Give ``affine``, or ``spacing`` for a diagonal (RAS) affine.

    Integer dtypes (e.g. ``np.int16`` for HU, ``np.uint8`` for masks) keep files small and byte-reproducible.
    Values that do not fit the integer ``dtype`` (HU above 32767 in int16, NaN in any integer type) raise
    :class:`ImageFileError` instead of wrapping around; clip first or choose a wider dtype. The file is written
    atomically (temporary file, then rename), so a killed run never leaves a truncated volume under ``path``.
    """
    import nibabel as nib

    from .atomic import atomic_path

    array = np.asarray(array)
    if array.ndim != 3:
        raise ImageFileError(f"{path}: can only write 3-D volumes, got shape {array.shape}")
    if affine is None:
        affine = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
    if dtype is not None:
        array = _cast_checked(array, np.dtype(dtype), path)
    img = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    path = Path(path)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


def _cast_checked(array: np.ndarray, dtype: np.dtype, path) -> np.ndarray:
    """``array.astype(dtype)``, refusing integer overflow (numpy wraps silently: 40000 → −25536 in int16)."""
    if np.issubdtype(dtype, np.integer) and array.size and not np.issubdtype(array.dtype, np.bool_):
        if not np.issubdtype(array.dtype, np.integer) and not np.isfinite(array).all():
            raise ImageFileError(f"{path}: {int((~np.isfinite(array)).sum())} NaN/infinite values cannot be stored "
                                 f"as {dtype}; fill them or save as float32")
        info = np.iinfo(dtype)
        lo, hi = array.min(), array.max()
        if lo < info.min or hi > info.max:
            raise ImageFileError(f"{path}: values {lo:g}..{hi:g} do not fit {dtype} ({info.min}..{info.max}) and "
                                 f"would wrap around; clip them first (e.g. np.clip(ct, -1024, 3071)) or pass a wider "
                                 f"dtype")
    return array.astype(dtype)


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


def _dicom_slice(path: Path):
    """One DICOM image → (HU array, kept tags, series UID or "", InstanceNumber or None)."""
    import pydicom

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
    uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
    series_number = getattr(ds, "SeriesNumber", None)
    return pixels * slope + intercept, tags, uid, series_number


def read_dicom_slice(path: str | Path):
    """One DICOM image → (float32 array (rows, cols) after rescale, dict of non-identifying tags)."""
    pixels, tags, _, _ = _dicom_slice(Path(path))
    return pixels, tags


def series_key(uid: str) -> str:
    """A short, non-reversible name for a SeriesInstanceUID, safe to print in errors and logs.

    UIDs can carry an institution's root and a date, so they are never logged; ``series_uid=`` accepts either the
    UID or this key.
    """
    import hashlib

    return "series-" + hashlib.sha256(uid.encode()).hexdigest()[:10] if uid else "series-without-uid"


def _group_by_series(folder: Path, pattern: str) -> dict[str, list]:
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ImageFileError(f"{folder}: no DICOM files found")
    groups: dict[str, list] = {}
    for p in files:
        pixels, tags, uid, number = _dicom_slice(p)
        groups.setdefault(uid, []).append((p, pixels, tags, number))
    return groups


def _describe(uid: str, slices: list) -> str:
    number = slices[0][3]
    num = f"SeriesNumber {number}, " if number is not None else ""
    return f"{series_key(uid)} ({num}{len(slices)} files, e.g. {slices[0][0].name})"


def read_dicom_series(folder: str | Path, pattern: str = "*", series_uid: str | None = None,
                      tolerance: float = 0.1) -> Volume:
    """All DICOM slices of one series in ``folder`` → a (Z, Y, X) volume in HU, sorted along the slice normal.

    Slices are ordered by their ``ImagePositionPatient`` projected on the normal of ``ImageOrientationPatient``
    (the robust rule; file names and ``InstanceNumber`` lie often), and the affine's origin is the position of
    the *first slice after sorting*. The reader refuses, with an :class:`ImageFileError` naming the folder, the
    series and example files:

    - several series in one folder (different ``SeriesInstanceUID``): pass ``series_uid=`` (the UID, or the short
      key the error prints) to read one, or :func:`split_dicom_series` to read them all;
    - slices with different orientations, sizes or pixel spacings;
    - missing positions (a series of more than one slice needs ``ImagePositionPatient``);
    - duplicate positions (two files at the same place along the normal);
    - gaps and uneven spacing: every step must equal the median step within ``tolerance`` × step (a missing
      slice shows up as a step twice as long), because one spacing in the affine would misplace the rest.
    """
    folder = Path(folder)
    groups = _group_by_series(folder, pattern)
    if series_uid is not None:
        chosen = [u for u in groups if u == series_uid or series_key(u) == series_uid]
        if not chosen:
            raise ImageFileError(f"{folder}: no series {series_uid!r} here; found "
                                 f"{', '.join(_describe(u, s) for u, s in groups.items())}")
        return _series_volume(folder, chosen[0], groups[chosen[0]], tolerance)
    if len(groups) > 1:
        raise ImageFileError(
            f"{folder}: holds {len(groups)} DICOM series mixed together "
            f"({'; '.join(_describe(u, s) for u, s in groups.items())}); read one with "
            f"read_dicom_series(folder, series_uid=<key>) or all with split_dicom_series(folder)")
    uid, slices = next(iter(groups.items()))
    return _series_volume(folder, uid, slices, tolerance)


def split_dicom_series(folder: str | Path, pattern: str = "*", tolerance: float = 0.1) -> dict[str, Volume]:
    """Every series in ``folder`` (grouped by ``SeriesInstanceUID``) → {:func:`series_key`: Volume}.

    Each series is checked as :func:`read_dicom_series` checks one; the first bad series raises.
    """
    folder = Path(folder)
    groups = _group_by_series(folder, pattern)
    return {series_key(u): _series_volume(folder, u, s, tolerance) for u, s in groups.items()}


def _series_volume(folder: Path, uid: str, slices: list, tolerance: float) -> Volume:
    where = f"{folder} ({series_key(uid)})"
    shapes = {s[1].shape for s in slices}
    if len(shapes) != 1:
        raise ImageFileError(f"{where}: slices have different sizes {sorted(shapes)}; not one series")
    default_orient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    orients = [np.asarray(s[2].get("ImageOrientationPatient", default_orient), dtype=np.float64) for s in slices]
    for (p, *_), o in zip(slices, orients):
        if o.shape != (6,) or not np.allclose(o, orients[0], atol=1e-4):
            raise ImageFileError(f"{where}: slices have different orientations (ImageOrientationPatient "
                                 f"{np.round(orients[0], 4).tolist()} in {slices[0][0].name}, "
                                 f"{np.round(o, 4).tolist()} in {p.name}); a folder must hold one orientation, "
                                 f"e.g. not an axial and a coronal reformat together")
    spacings = {tuple(np.round(s[2].get("PixelSpacing", [1.0, 1.0]), 6)) for s in slices}
    if len(spacings) != 1:
        raise ImageFileError(f"{where}: slices have different PixelSpacing {sorted(spacings)}; not one series")
    row_dir, col_dir = orients[0][:3], orients[0][3:]
    normal = np.cross(row_dir, col_dir)
    if len(slices) > 1:
        no_pos = [s[0].name for s in slices if "ImagePositionPatient" not in s[2]]
        if no_pos:
            raise ImageFileError(f"{where}: {len(no_pos)} files have no ImagePositionPatient (e.g. {no_pos[0]}); "
                                 f"their order and spacing cannot be known")

    def position(tags):
        return float(np.dot(normal, tags.get("ImagePositionPatient", [0.0, 0.0, 0.0])))

    slices = sorted(slices, key=lambda s: position(s[2]))   # sort FIRST: origin and spacing come from this order
    first_tags = slices[0][2]
    pos = np.array([position(s[2]) for s in slices])
    if len(slices) > 1:
        steps = np.diff(pos)
        dup = np.flatnonzero(steps < 1e-3)
        if dup.size:
            k = int(dup[0])
            raise ImageFileError(f"{where}: {dup.size} duplicate slice position(s): {slices[k][0].name} and "
                                 f"{slices[k + 1][0].name} both lie at {pos[k]:.2f} mm along the slice normal; "
                                 f"remove the duplicates (or split the acquisitions into separate folders)")
        step = float(np.median(steps))
        bad = np.flatnonzero(np.abs(steps - step) > tolerance * step)
        if bad.size:
            k = int(bad[0])
            ratio = steps[k] / step
            what = (f"about {round(ratio) - 1} slice(s) missing" if ratio > 1.5 else "uneven slice spacing")
            raise ImageFileError(f"{where}: {what}: {steps[k]:.2f} mm between {slices[k][0].name} and "
                                 f"{slices[k + 1][0].name}, the usual step is {step:.2f} mm ({bad.size} irregular "
                                 f"step(s)); a volume needs evenly spaced slices: restore the missing files or "
                                 f"resample the series")
        dz = float((pos[-1] - pos[0]) / (len(slices) - 1))
    else:
        dz = float(first_tags.get("SliceThickness", 1.0) or 1.0)
    array = np.stack([s[1] for s in slices]).astype(np.float32)
    dy, dx = (float(v) for v in first_tags.get("PixelSpacing", [1.0, 1.0]))
    origin = np.asarray(first_tags.get("ImagePositionPatient", [0.0, 0.0, 0.0]), dtype=np.float64)
    affine = np.eye(4)
    # Array axes are (slice, row, col): col steps along row_dir by dx, row along col_dir by dy.
    affine[:3, 0] = normal * dz
    affine[:3, 1] = col_dir * dy
    affine[:3, 2] = row_dir * dx
    affine[:3, 3] = origin
    meta = {k: v for k, v in first_tags.items() if k not in ("ImagePositionPatient",)}
    meta.update(format="dicom", n_slices=len(slices), series=series_key(uid))
    return Volume(array=_check_voxels(array, folder), affine=affine, spacing=(dz, dy, dx), path=str(folder), meta=meta)
