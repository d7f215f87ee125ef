"""DICOM series built from pydicom's real CT slice: sorting, origin, and every way a series folder can be wrong.

Each bad folder (a missing slice, a duplicate position, a coronal reformat among axial slices, two series
interleaved) used to come back as a volume with a wrong spacing; now it raises an error naming the folder, the
series and example files, and a documented option reads one series (or all) of a mixed folder.
"""
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from rrg_lite.data.io import ImageFileError, read_dicom_series

CT_SMALL = get_testdata_file("CT_small.dcm")
STEP = 2.0


def write_series(folder: Path, n: int = 20, step: float = STEP, skip=(), dup=(), uid=None, names=None,
                 orient=None, name_fmt="{:03d}.dcm"):
    """n slices of CT_small at z0 + step·k; returns (z positions written, source dataset).

    Files are named in *reverse* position order, so the first file by name is the most superior slice.
    ``dup``: slice indices written twice (second copy at the same position); ``orient``: {k: IOP} overrides.
    """
    src = pydicom.dcmread(CT_SMALL)
    folder.mkdir(parents=True, exist_ok=True)
    z0 = float(src.ImagePositionPatient[2])
    written = []
    for k in range(n):
        if k in skip:
            continue
        for copy in range(2 if k in dup else 1):
            ds = pydicom.dcmread(CT_SMALL)
            x, y, _ = (float(v) for v in src.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z0 + step * k]
            ds.InstanceNumber = k + 1
            if uid is not None:
                ds.SeriesInstanceUID = uid
            if orient and k in orient:
                ds.ImageOrientationPatient = orient[k]
            arr = ds.pixel_array.copy()
            arr[0, 0] = 2000 + k          # the slice index, readable after HU rescale (−1024)
            ds.PixelData = arr.tobytes()
            name = (names or name_fmt).format(n - 1 - k) if copy == 0 else f"dup_{k:03d}.dcm"
            ds.save_as(folder / name)
            written.append(z0 + step * k)
    return written, src


def test_origin_is_the_first_slice_after_sorting(tmp_path):
    """20 slices, 2 mm apart, files named in reverse order: the origin used to be 38 mm off."""
    zs, src = write_series(tmp_path / "s")
    vol = read_dicom_series(tmp_path / "s")
    assert vol.shape == (20, 128, 128)
    assert [int(vol.array[i, 0, 0]) for i in range(20)] == [2000 - 1024 + k for k in range(20)]
    x, y, _ = (float(v) for v in src.ImagePositionPatient)
    np.testing.assert_allclose(vol.affine[:3, 3], [x, y, min(zs)], atol=1e-6)
    # every slice's voxel (k, 0, 0) maps to that slice's ImagePositionPatient
    for k in (0, 7, 19):
        np.testing.assert_allclose((vol.affine @ [k, 0, 0, 1])[:3], [x, y, zs[k]], atol=1e-6)
    assert vol.spacing[0] == pytest.approx(STEP)


def test_missing_slice_is_reported(tmp_path):
    write_series(tmp_path / "s", n=10, skip=(4,))
    with pytest.raises(ImageFileError, match=r"s \(series-.*\): about 1 slice\(s\) missing: 4\.00 mm between"):
        read_dicom_series(tmp_path / "s")


def test_duplicate_positions_are_reported(tmp_path):
    write_series(tmp_path / "s", n=6, dup=(2,))
    with pytest.raises(ImageFileError, match=r"duplicate slice position.*dup_002\.dcm"):
        read_dicom_series(tmp_path / "s")


def test_mixed_orientations_are_reported(tmp_path):
    coronal = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    write_series(tmp_path / "s", n=6, orient={3: coronal})
    with pytest.raises(ImageFileError, match=r"different orientations .*ImageOrientationPatient"):
        read_dicom_series(tmp_path / "s")


def test_interleaved_series_are_reported_and_can_be_split(tmp_path):
    from rrg_lite.data.io import series_key, split_dicom_series

    a, b = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    write_series(tmp_path / "s", n=8, uid=a, name_fmt="a{:03d}.dcm")
    write_series(tmp_path / "s", n=5, step=3.0, uid=b, name_fmt="b{:03d}.dcm")
    with pytest.raises(ImageFileError, match=r"holds 2 DICOM series mixed together.*series_uid=") as info:
        read_dicom_series(tmp_path / "s")
    assert a not in str(info.value) and series_key(a) in str(info.value)   # the UID itself is never printed
    one = read_dicom_series(tmp_path / "s", series_uid=a)
    assert one.shape[0] == 8 and one.spacing[0] == pytest.approx(2.0)
    assert read_dicom_series(tmp_path / "s", series_uid=series_key(b)).spacing[0] == pytest.approx(3.0)
    both = split_dicom_series(tmp_path / "s")
    assert {k: v.shape[0] for k, v in both.items()} == {series_key(a): 8, series_key(b): 5}
    with pytest.raises(ImageFileError, match="no series 'nope'"):
        read_dicom_series(tmp_path / "s", series_uid="nope")


def test_meta_names_no_series_uid(tmp_path):
    write_series(tmp_path / "s", n=3, uid="1.2.3.4.5")
    vol = read_dicom_series(tmp_path / "s")
    assert "1.2.3.4.5" not in repr(vol.meta) and vol.meta["n_slices"] == 3
