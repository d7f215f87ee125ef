"""NIfTI and DICOM reading on real files: pydicom's bundled CT slice and NIfTI files in several orientations."""
import gzip

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from rrg_lite.data.io import ImageFileError, as_canonical, load_nifti, read_dicom_series, read_dicom_slice, save_nifti

CT_SMALL = get_testdata_file("CT_small.dcm")  # a real CT slice shipped with pydicom (no download)


def test_real_ct_dicom_becomes_hounsfield_units():
    hu, tags = read_dicom_slice(CT_SMALL)
    raw = pydicom.dcmread(CT_SMALL).pixel_array
    # RescaleIntercept −1024, slope 1 in this file: HU = raw − 1024.
    assert tags["RescaleIntercept"] == -1024.0 and tags["RescaleSlope"] == 1.0
    np.testing.assert_array_equal(hu, raw.astype(np.float32) - 1024.0)
    assert hu.shape == (128, 128) and tags["Rows"] == 128
    assert -1100 < hu.min() < -800 and hu.max() > 500  # air around the body, bone inside


def test_dicom_reader_keeps_no_patient_identifiers():
    _, tags = read_dicom_slice(CT_SMALL)
    ds = pydicom.dcmread(CT_SMALL)
    assert str(ds.PatientName)  # the file has a name...
    for phi in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "StudyDate", "ReferringPhysicianName"):
        assert phi not in tags  # ...that never leaves the reader


def test_dicom_series_is_sorted_by_position_not_by_file_name(tmp_path):
    ds = pydicom.dcmread(CT_SMALL)
    z0 = float(ds.ImagePositionPatient[2])
    # Three slices written in scrambled name order; slice i carries pixel offset i so we can see the order.
    for name, i in (("c.dcm", 0), ("a.dcm", 2), ("b.dcm", 1)):
        s = pydicom.dcmread(CT_SMALL)
        s.ImagePositionPatient = [s.ImagePositionPatient[0], s.ImagePositionPatient[1], z0 + 5.0 * i]
        arr = s.pixel_array.copy()
        arr[0, 0] = 3000 + i
        s.PixelData = arr.tobytes()
        s.save_as(tmp_path / name)
    vol = read_dicom_series(tmp_path)
    assert vol.shape == (3, 128, 128)
    assert [vol.array[i, 0, 0] for i in range(3)] == [3000 - 1024 + i for i in range(3)]
    assert vol.spacing[0] == pytest.approx(5.0)
    assert vol.spacing[1:] == pytest.approx((0.661468, 0.661468))


def test_nifti_round_trip_keeps_geometry(tmp_path):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1000, size=(6, 5, 4)).astype(np.int16)
    affine = np.array([[-0.7, 0, 0, 90], [0, 0.7, 0, -100], [0, 0, 2.5, -50], [0, 0, 0, 1.0]])
    path = save_nifti(hu, tmp_path / "ct.nii.gz", affine=affine)
    vol = load_nifti(path)
    np.testing.assert_array_equal(vol.array, hu.astype(np.float32))
    np.testing.assert_allclose(vol.affine, affine)
    assert vol.spacing == pytest.approx((0.7, 0.7, 2.5))
    assert vol.meta["orientation"] == "LAS"


def test_nifti_scaling_is_applied(tmp_path):
    img = nib.Nifti1Image(np.full((3, 3, 3), 100, dtype=np.int16), np.eye(4))
    img.header.set_slope_inter(2.0, -1024.0)
    nib.save(img, tmp_path / "scaled.nii.gz")
    assert load_nifti(tmp_path / "scaled.nii.gz").array[0, 0, 0] == pytest.approx(100 * 2.0 - 1024.0)


def test_canonical_reorientation_of_a_flipped_and_permuted_volume(tmp_path):
    """A volume stored as (S, P, L) axes comes back in RAS with the same voxel at the same world position."""
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    affine = np.array([[0, 0, -1.0, 10], [0, -2.0, 0, 20], [3.0, 0, 0, 30], [0, 0, 0, 1]])
    save_nifti(data, tmp_path / "odd.nii", affine=affine)
    vol = load_nifti(tmp_path / "odd.nii")
    assert vol.meta["orientation"] == "SPL"
    canon = as_canonical(vol)
    assert canon.meta["orientation"] == "RAS" and canon.shape == (4, 3, 2)
    assert canon.spacing == pytest.approx((1.0, 2.0, 3.0))
    # voxel (i, j, k) of the original and its canonical twin map to the same millimetres
    for ijk in [(0, 0, 0), (1, 2, 3), (1, 0, 2)]:
        world = vol.affine @ np.array([*ijk, 1.0])
        canon_ijk = np.linalg.solve(canon.affine, world).round().astype(int)[:3]
        assert canon.array[tuple(canon_ijk)] == vol.array[ijk]


def test_missing_corrupt_and_wrong_shape_files_name_the_file(tmp_path):
    with pytest.raises(ImageFileError, match="nope.nii.gz: file not found"):
        load_nifti(tmp_path / "nope.nii.gz")
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(gzip.compress(b"this is not a nifti header"))
    with pytest.raises(ImageFileError, match="corrupt.nii.gz: not a readable NIfTI"):
        load_nifti(bad)
    nib.save(nib.Nifti1Image(np.zeros((4, 4), dtype=np.float32), np.eye(4)), tmp_path / "flat.nii.gz")
    with pytest.raises(ImageFileError, match="flat.nii.gz: expected a 3-D volume, got 2-D"):
        load_nifti(tmp_path / "flat.nii.gz")
    nan = np.zeros((3, 3, 3), dtype=np.float32)
    nan[1, 1, 1] = np.nan
    save_nifti(nan, tmp_path / "nan.nii.gz")
    with pytest.raises(ImageFileError, match="nan.nii.gz: 1 voxels are NaN"):
        load_nifti(tmp_path / "nan.nii.gz")
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 200)
    with pytest.raises(ImageFileError, match="junk.dcm: not a readable DICOM"):
        read_dicom_slice(tmp_path / "junk.dcm")
    with pytest.raises(ImageFileError, match="no DICOM files"):
        read_dicom_series(tmp_path / "empty_dir_that_does_not_exist")


def test_dicom_radiograph_is_scaled_and_monochrome1_inverted(tmp_path):
    from rrg_lite.data.images import load_xray

    plain = load_xray(CT_SMALL)
    assert plain.min() == 0.0 and plain.max() == 1.0
    ds = pydicom.dcmread(CT_SMALL)
    ds.PhotometricInterpretation = "MONOCHROME1"  # bright = air: must be flipped to bright = dense
    ds.save_as(tmp_path / "mono1.dcm")
    np.testing.assert_allclose(load_xray(tmp_path / "mono1.dcm"), 1.0 - plain)
