"""Loading the pixels a manifest record points to, in one orientation for every source.

CT/PET volumes come back as float32 ``(D, H, W)`` = (z: head→feet, y: front→back, x: patient right→left), the
world's orientation, whatever the file's voxel order or affine (NIfTI with any orientation, DICOM series in LPS).
That is the radiological display: ``imshow(vol[k])`` shows anterior up and the patient's right on the left.
X-ray images come back as float32 ``(H, W)`` in [0, 1], bright = dense (MONOCHROME1 DICOMs are inverted).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import ImageFileError, Volume, load_nifti, read_dicom_series, read_dicom_slice
from .manifest import ImageRef

#: Target axis codes of the (x, y, z) array before it is transposed to (z, y, x): Left, Posterior, Inferior.
CANONICAL_XYZ = ("L", "P", "I")


def reorient(array: np.ndarray, affine_ras: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Any 3-D array + its voxel→RAS affine → ((D, H, W) array in the world orientation, (sz, sy, sx) mm).

    Uses the affine's closest axis directions (oblique scans are not resampled, only flipped/permuted).
    """
    import nibabel as nib

    affine_ras = np.asarray(affine_ras, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine_ras)
    target = nib.orientations.axcodes2ornt(CANONICAL_XYZ)
    transform = nib.orientations.ornt_transform(ornt, target)
    out = nib.orientations.apply_orientation(array, transform)
    zooms = np.sqrt((affine_ras[:3, :3] ** 2).sum(axis=0))
    spacing_xyz = np.zeros(3)
    for i in range(3):
        spacing_xyz[int(transform[i, 0])] = zooms[i]
    return (np.ascontiguousarray(np.transpose(out, (2, 1, 0))).astype(np.float32),
            (float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0])))


def dicom_volume_to_ras(vol: Volume) -> np.ndarray:
    """A DICOM series' affine is voxel→LPS; flip x and y to get voxel→RAS."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine


def _has_own_scaling(vol: Volume) -> bool:
    """True when the file itself carried a rescale that the reader already applied (DICOM always does)."""
    return bool(vol.meta.get("scaled")) or vol.meta.get("format") == "dicom"


def _rescale(array: np.ndarray, meta: dict, path: str, already_scaled: bool = False) -> np.ndarray:
    """Apply a rescale given by dataset metadata (e.g. CT-RATE's metadata CSV) when the file is not in HU yet.

    The rescale is applied at most once, and only to raw storage:

    - a file that carried its own scaling (NIfTI ``scl_slope``/``scl_inter``, DICOM ``RescaleSlope``/``Intercept``)
      was already rescaled by its reader;
    - raw (unsigned) storage has no negative values, while any HU volume has some (air −1000, fat −100), so an
      array with a negative value is taken as HU already — also a cropped soft-tissue volume whose minimum is
      −150, which an earlier "minimum below −200" rule rescaled a second time.
    """
    slope = meta.get("rescale_slope")
    intercept = meta.get("rescale_intercept")
    if slope is None and intercept is None:
        return array
    if already_scaled or array.size == 0 or array.min() < 0:   # already HU
        return array
    return array * float(1.0 if slope is None else slope) + float(0.0 if intercept is None else intercept)


def _check_path(path) -> Path:
    if path is None or not str(path).strip():
        # Path("") is "." — without this check an empty manifest entry would read the current folder
        raise ImageFileError("image path is empty (the manifest entry has no file for this image; it was probably "
                             "converted with --no-image-check): convert again with the image files present")
    return Path(path)


def load_volume(ref: ImageRef | str, meta: dict | None = None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A CT or PET volume (NIfTI file or DICOM series folder) → ((D, H, W) float32, (sz, sy, sx) mm)."""
    if isinstance(ref, ImageRef):
        path, meta = ref.path, {**ref.meta, **(meta or {})}
    else:
        path, meta = str(ref), dict(meta or {})
    p = _check_path(path)
    if p.is_dir():
        vol = read_dicom_series(p)
        array, spacing = reorient(vol.array, dicom_volume_to_ras(vol))
    elif p.suffix in (".dcm",):
        raise ImageFileError(f"{p}: a single DICOM file is not a volume; give the series folder")
    else:
        vol = load_nifti(p)
        array, spacing = reorient(vol.array, vol.affine)
    array = _rescale(array, meta, path, already_scaled=_has_own_scaling(vol))
    if not np.isfinite(array).all():
        raise ImageFileError(f"{path}: volume has NaN or infinite values after rescaling")
    return array, spacing


def load_mask(path: str | Path) -> np.ndarray:
    """A binary mask NIfTI → bool (D, H, W) in the world orientation."""
    vol = load_nifti(_check_path(path))
    array, _ = reorient(vol.array, vol.affine)
    return array > 0.5


def load_xray(ref: ImageRef | str) -> np.ndarray:
    """A radiograph (PNG, JPEG or DICOM) → float32 (H, W) in [0, 1], bright = dense."""
    path = _check_path(ref.path if isinstance(ref, ImageRef) else ref)
    if not path.exists():
        raise ImageFileError(f"{path}: image file not found")
    if path.suffix.lower() in (".dcm", ".dicom"):
        arr, tags = read_dicom_slice(path)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / max(hi - lo, 1e-6)
        if str(tags.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            arr = 1.0 - arr
        return arr.astype(np.float32)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                arr = arr / (65535.0 if arr.max() > 255 else 255.0)
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageFileError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ImageFileError(f"{path}: expected a 2-D grayscale image, got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)
