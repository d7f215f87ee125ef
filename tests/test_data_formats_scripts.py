"""data_scripts/: conversions of the real layouts (here small stand-ins) into manifests; PET DICOM → SUV by hand."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from rrg_lite.data.io import ImageFileError
from rrg_lite.data.manifest import read_manifest
from rrg_lite.data.petct import read_pet_suv, resample_like, suv_factor
from rrg_lite.world.build import build_datasets

from helpers import data_script


@pytest.fixture(scope="module")
def world_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_datasets(root, n_ct=4, n_xray=4, n_amos=3, n_petct=0, seed=1, workers=1)
    return root


def test_convert_ctrate_radgenome_mimic_amos(world_root, tmp_path):
    recs = data_script("convert_ctrate").main(
        ["--root", str(world_root / "ct-rate"), "--split", "train", "--out", str(tmp_path / "ct.jsonl"),
         "--radgenome-csv", str(world_root / "ct-rate" / "radgenome" / "train_region_report.csv")])
    back = read_manifest(tmp_path / "ct.jsonl")
    assert len(back) == len(recs) == 3 and back[0].region_reports and back[0].masks
    recs = data_script("convert_mimic").main(["--root", str(world_root / "mimic-cxr"), "--split", "all",
                                          "--out", str(tmp_path / "cxr.jsonl")])
    assert any(r.prior_study_id for r in recs)
    recs = data_script("convert_amosmm").main(["--root", str(world_root / "amos-mm"), "--out", str(tmp_path / "a.jsonl")])
    assert recs[0].body_part_reports


def _pet_series(folder: Path, n=3, weight=70.0, dose=370e6, half_life=6586.2, slope=2.0):
    """A PET series made from pydicom's real CT_small.dcm with the PET tags SUV conversion needs."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True)
    raw = []
    for k in range(n):
        ds = copy.deepcopy(src)   # Dataset.copy() is shallow: edits would leak into src and the next slice
        ds.Modality = "PT"
        ds.Units = "BQML"
        ds.PatientWeight = weight
        ds.DecayCorrection = "START"
        ds.SeriesTime = "110000"
        ds.AcquisitionTime = "110500"
        info = Dataset()
        info.RadionuclideTotalDose = dose
        info.RadionuclideHalfLife = half_life
        info.RadiopharmaceuticalStartTime = "100000"
        ds.RadiopharmaceuticalInformationSequence = Sequence([info])
        ds.RescaleSlope = slope
        ds.RescaleIntercept = 0
        pix = np.clip(src.pixel_array.astype(np.int32) - src.pixel_array.min() + 10 * k, 0, 30000).astype(np.uint16)
        ds.PixelRepresentation = 0
        ds.PixelData = pix.tobytes()
        pos = list(map(float, src.ImagePositionPatient))
        pos[2] += 4.0 * k
        ds.ImagePositionPatient = pos
        ds.save_as(folder / f"{k}.dcm")
        raw.append(pix.astype(np.float64) * slope)
    return src, raw


def test_suv_from_pet_dicom_tags_by_hand(tmp_path):
    _, raw = _pet_series(tmp_path / "PET")
    vol = read_pet_suv(tmp_path / "PET")
    # 1 h between injection (10:00) and series start (11:00): dose decays by 2^(-3600/6586.2)
    factor = 70_000.0 / (370e6 * 2 ** (-3600 / 6586.2))
    assert vol.meta["suv_factor"] == pytest.approx(factor, rel=1e-9)
    assert np.allclose(vol.array[0], raw[0] * factor, rtol=1e-5)
    assert vol.meta["units"] == "SUVbw"


def test_suv_errors_name_the_missing_tag(tmp_path):
    import pydicom

    _pet_series(tmp_path / "PET", n=1)
    ds = pydicom.dcmread(tmp_path / "PET" / "0.dcm")
    del ds.PatientWeight
    with pytest.raises(ImageFileError, match="PatientWeight"):
        suv_factor(ds, "x.dcm")
    ds.PatientWeight = 70
    ds.Units = "CNTS"
    with pytest.raises(ImageFileError, match="Units is 'CNTS'"):
        suv_factor(ds, "x.dcm")


def test_resample_like_identity_and_shift():
    from rrg_lite.data.io import Volume

    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    ref = Volume(a, np.eye(4), (1, 1, 1))
    assert np.allclose(resample_like(ref, ref), a)
    shifted = np.eye(4)
    shifted[0, 3] = 1.0    # moving voxel i sits at world i + 1
    out = resample_like(Volume(a, shifted, (1, 1, 1)), ref)
    assert np.allclose(out[1:], a[:-1]) and np.all(out[0] == 0)


def _ct_series(folder: Path, n=3):
    import pydicom
    from pydicom.data import get_testdata_file

    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True)
    for k in range(n):
        ds = copy.deepcopy(src)   # Dataset.copy() is shallow: edits would leak into src and the next slice
        pos = list(map(float, src.ImagePositionPatient))
        pos[2] += 4.0 * k
        ds.ImagePositionPatient = pos
        ds.save_as(folder / f"{k}.dcm")
    return src


def test_convert_petctdata_script(tmp_path):
    src = _ct_series(tmp_path / "dicom" / "study1" / "CT")
    _pet_series(tmp_path / "dicom" / "study1" / "PET")
    report = {"regions": {"chest": {"pet": "Hypermetabolic nodule.", "ct": "A 12 mm nodule."}},
              "findings": "A 12 mm nodule. Hypermetabolic nodule.", "impression": "Suspicious nodule."}
    (tmp_path / "reports.json").write_text(json.dumps({"study1": report}))
    recs = data_script("convert_petct").main(["--dicom-root", str(tmp_path / "dicom"), "--reports",
                                          str(tmp_path / "reports.json"), "--out-root", str(tmp_path / "nii"),
                                          "--out", str(tmp_path / "pet.jsonl")])
    assert len(recs) == 1 and recs[0].pet_ct_parts["chest"]["pet"] == "Hypermetabolic nodule."
    from rrg_lite.data.images import load_volume

    ct, _ = load_volume(recs[0].images_of("CT")[0])
    pet, _ = load_volume(recs[0].images_of("PET")[0])
    assert ct.shape == pet.shape == (3, 128, 128) and pet.min() >= 0 and pet.max() > 0
    # no identifying header value travels into the outputs
    name = str(src.PatientName)
    for p in (tmp_path / "nii").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            import gzip
            if p.suffix == ".gz":
                data = gzip.decompress(data)
            assert name.encode() not in data and str(src.PatientID).encode() not in data
    assert name not in (tmp_path / "pet.jsonl").read_text()
