"""Writers and readers: the world's files in the real layouts, read back; stand-ins of real files; bad input."""
import copy
import gzip
import hashlib
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rrg_lite.data.formats.amosmm import read_amosmm
from rrg_lite.data.formats.ctrate import parse_volume_name, read_ctrate, read_radgenome
from rrg_lite.data.formats.mimic import attach_annotations, parse_report, read_mimic
from rrg_lite.data.formats.petct import read_petct
from rrg_lite.data.images import load_mask, load_volume, load_xray, reorient
from rrg_lite.data.io import ImageFileError
from rrg_lite.data.manifest import DataFormatError, StudyRecord, read_manifest, write_manifest
from rrg_lite.world.build import build_datasets
from rrg_lite.world.config import WorldConfig
from rrg_lite.world.ct import generate_ct_cohort, generate_petct_cohort
from rrg_lite.world.vocab import CHEXPERT_LABELS, CT_RATE_LABELS
from rrg_lite.world.writers import write_amosmm, write_ctrate, write_mimic, write_petct
from rrg_lite.world.xray import generate_xray_cohort


@pytest.fixture(scope="module")
def cts():
    return generate_ct_cohort(4, seed=3, cfg=WorldConfig(scan_range="chest"))


def _tree_hash(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    build_datasets(tmp_path / "a", n_ct=3, n_xray=4, n_amos=2, n_petct=1, seed=11, workers=1)
    build_datasets(tmp_path / "b", n_ct=3, n_xray=4, n_amos=2, n_petct=1, seed=11, workers=2)
    ha, hb = _tree_hash(tmp_path / "a"), _tree_hash(tmp_path / "b")
    assert len(ha) > 50 and ha == hb
    build_datasets(tmp_path / "c", n_ct=3, n_xray=4, seed=12, workers=1)
    hc = _tree_hash(tmp_path / "c")
    assert hc["ct-rate/radiology_text_reports/train_reports.csv"] != ha["ct-rate/radiology_text_reports/train_reports.csv"]


def test_ctrate_and_radgenome_round_trip(tmp_path, cts):
    write_ctrate(cts, tmp_path, "train")
    recs = read_radgenome(tmp_path, "train", read_ctrate(tmp_path, "train"))
    assert [r.study_id for r in recs] == [f"train_{i}_a_1" for i in range(1, 5)]
    for r, s in zip(recs, cts):
        assert r.label_vector(CT_RATE_LABELS) == [float(v) for v in s.labels]
        assert r.findings == s.report.findings and r.impression == s.report.impression
        assert r.region_reports == s.report.region_reports
        ct, spacing = load_volume(r.images[0])          # raw + metadata rescale → HU, reoriented
        assert np.array_equal(ct, np.clip(np.rint(s.ct), -1024, 3071))
        assert np.allclose(spacing, s.spacing, atol=1e-3)
        assert np.array_equal(load_mask(r.masks["lung"]), s.region_masks["lung"])
        assert set(r.masks) == {k for k, m in s.region_masks.items() if m.any()}
        assert r.boxes and r.qa   # world annotations merged


def test_ctrate_hu_stored_volumes_are_not_rescaled_twice(tmp_path, cts):
    write_ctrate(cts[:1], tmp_path, "valid", raw_offset=False)
    meta = pd.read_csv(tmp_path / "metadata" / "validation_metadata.csv")
    meta["RescaleIntercept"] = -1024   # metadata says "rescale", file already holds HU (CT-RATE v2 situation)
    meta.to_csv(tmp_path / "metadata" / "validation_metadata.csv", index=False)
    rec = read_ctrate(tmp_path, "valid")[0]
    ct, _ = load_volume(rec.images[0])
    assert ct.min() < -900 and np.array_equal(ct, np.clip(np.rint(cts[0].ct), -1024, 3071))


def test_amosmm_and_petct_round_trip(tmp_path, cts):
    write_amosmm({"train": cts[:3], "validation": cts[3:]}, tmp_path / "amos")
    recs = read_amosmm(tmp_path / "amos", "train")
    assert len(recs) == 3 and len(read_amosmm(tmp_path / "amos", "validation")) == 1
    assert recs[0].body_part_reports == {k: v for k, v in cts[0].report.body_parts.items() if v}
    assert recs[0].qa and recs[0].qa[0]["question"] == cts[0].qa[0]["question"]
    pets = generate_petct_cohort(2, seed=1)
    write_petct(pets, tmp_path / "petct")
    pr = read_petct(tmp_path / "petct")
    assert pr[0].pet_ct_parts == pets[0].report.pet_ct_parts
    pet, _ = load_volume(pr[0].images_of("PET")[0])
    assert np.allclose(pet, pets[0].pet)


def test_mimic_round_trip_with_priors_and_labels(tmp_path):
    studies = generate_xray_cohort(6, seed=2, cfg=WorldConfig(p_prior_xray=1.0))
    write_mimic(studies, tmp_path, "train", fmt="png")
    recs = read_mimic(tmp_path, "train")
    attach_annotations(recs, tmp_path)
    assert len(recs) == 12
    by_id = {r.study_id: r for r in recs}
    with_prior = [r for r in recs if r.prior_study_id]
    assert len(with_prior) == 6
    for r in with_prior:
        assert by_id[r.prior_study_id].meta["order"] < r.meta["order"]
        assert r.prior_report == by_id[r.prior_study_id].report
    # labels: blanks are None, values are the world's
    cur = [r for r in recs if r.prior_study_id]
    for r, s in zip(cur, studies):
        got = np.array(r.label_vector(CHEXPERT_LABELS))
        assert np.array_equal(np.nan_to_num(got, nan=9), np.nan_to_num(s.labels, nan=9))
        assert r.findings == s.report.findings and r.impression == s.report.impression
        img = load_xray(r.images[0])
        assert r.images[0].is_frontal and np.abs(img - s.frontal).max() <= 1 / 255 + 1e-6
        assert r.boxes == s.boxes


def test_manifest_json_round_trip(tmp_path, cts):
    write_ctrate(cts, tmp_path, "train")
    recs = read_ctrate(tmp_path, "train")
    write_manifest(recs, tmp_path / "m.jsonl")
    back = read_manifest(tmp_path / "m.jsonl")
    assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]
    (tmp_path / "bad.jsonl").write_text('{"study_id": "x", "dataset": "y"}\n{not json\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2"):
        read_manifest(tmp_path / "bad.jsonl")


# --------------------------------------------------------------------------------------------------------------
# Stand-ins of real files
# --------------------------------------------------------------------------------------------------------------


def _asym_volume():
    """(D, H, W) with a distinct value per voxel, so any flip or transpose is caught."""
    return np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7) - 1000.0


@pytest.mark.parametrize("codes", [("L", "P", "I"), ("R", "A", "S"), ("L", "A", "S"), ("S", "R", "A"), ("A", "I", "L")])
def test_nifti_in_any_orientation_reads_the_same(tmp_path, codes):
    """A volume stored with other axis orders/flips (and a matching affine) comes back identical."""
    vol = _asym_volume()                         # world orientation: (z I, y P, x L)
    spacing = (3.0, 0.8, 0.7)
    xyz = np.transpose(vol, (2, 1, 0))           # (x L, y P, z I)
    base = nib.orientations.axcodes2ornt(("L", "P", "I"))
    target = nib.orientations.axcodes2ornt(codes)
    tr = nib.orientations.ornt_transform(base, target)
    data = nib.orientations.apply_orientation(xyz, tr)
    aff0 = np.diag([-0.7, -0.8, -3.0, 1.0])
    aff0[:3, 3] = [10.0, -20.0, 30.0]
    affine = aff0 @ nib.orientations.inv_ornt_aff(tr, xyz.shape)
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "v.nii.gz"))
    out, sp = load_volume(str(tmp_path / "v.nii.gz"))
    assert np.array_equal(out, vol)
    assert np.allclose(sp, spacing)


def _dicom_series(folder: Path, n: int = 4, shuffle=True):
    """A CT series made from pydicom's real CT_small.dcm: n slices 5 mm apart, files in scrambled order."""
    import pydicom
    from pydicom.data import get_testdata_file

    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    order = [2, 0, 3, 1] if shuffle and n == 4 else list(range(n))
    arrays = []
    for k in range(n):
        ds = copy.deepcopy(src)   # Dataset.copy() is shallow: edits would leak into src and the next slice
        pix = (src.pixel_array.astype(np.int16) + 10 * k).astype(src.pixel_array.dtype)
        ds.PixelData = pix.tobytes()
        pos = list(map(float, src.ImagePositionPatient))
        pos[2] = pos[2] + 5.0 * k
        ds.ImagePositionPatient = pos
        ds.InstanceNumber = n - k   # deliberately misleading
        ds.save_as(folder / f"IM{order[k]:04d}.dcm")
        arrays.append(pix.astype(np.float32) * float(src.RescaleSlope) + float(src.RescaleIntercept))
    return src, arrays


def test_real_dicom_ct_series(tmp_path):
    src, arrays = _dicom_series(tmp_path / "series")
    vol, spacing = load_volume(str(tmp_path / "series"))
    assert vol.shape == (4, *arrays[0].shape)
    # canonical z runs head → feet: the most superior slice (largest z in LPS) comes first
    assert np.array_equal(vol[0], arrays[3]) and np.array_equal(vol[-1], arrays[0])
    assert spacing[0] == pytest.approx(5.0)
    assert spacing[1:] == pytest.approx(tuple(map(float, src.PixelSpacing)))
    assert np.isfinite(vol).all()


MIMIC_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough  // ?pna

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  ___

 FINDINGS:

 The lungs are clear without focal consolidation.  No pleural effusion or
 pneumothorax is seen. The cardiac and mediastinal silhouettes are
 unremarkable.

 IMPRESSION:

 No acute cardiopulmonary process.
"""


def test_parse_mimic_report_sections():
    sec = parse_report(MIMIC_REPORT)
    assert sec["findings"].startswith("The lungs are clear without focal consolidation.")
    assert "pneumothorax is seen" in sec["findings"]
    assert sec["impression"] == "No acute cardiopulmonary process."
    assert sec["indication"] == "___F with cough // ?pna"
    assert sec["technique"] == "Chest PA and lateral" and sec["examination"] == "CHEST (PA AND LAT)"
    assert parse_report("IMPRESSION: Small effusion.") == {"impression": "Small effusion."}


def test_mimic_stand_in_with_gz_csvs_blank_labels_and_dates(tmp_path):
    from PIL import Image

    subj, studies = "10000032", ["50414267", "53189527"]
    dicoms = ["02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962",
              "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab"]
    files = tmp_path / "files" / "p10" / f"p{subj}"
    for study, dicom in ((studies[0], dicoms[0]), (studies[1], dicoms[1]), (studies[1], dicoms[2])):
        (files / f"s{study}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 40), 128, np.uint8)).save(files / f"s{study}" / f"{dicom}.jpg")
    (files / f"s{studies[0]}.txt").write_text(MIMIC_REPORT)
    (files / f"s{studies[1]}.txt").write_text(MIMIC_REPORT.replace("No acute", "Mild vascular congestion. No acute"))
    meta = pd.DataFrame({"dicom_id": dicoms, "subject_id": [subj] * 3, "study_id": [studies[0], studies[1], studies[1]],
                         "ViewPosition": ["PA", "LATERAL", "AP"], "Rows": [32] * 3, "Columns": [40] * 3,
                         "StudyDate": [21800506, 21800626, 21800626], "StudyTime": [213014.531, 165500.312, 165500.312]})
    split = pd.DataFrame({"dicom_id": dicoms, "study_id": meta.study_id, "subject_id": [subj] * 3,
                          "split": ["train"] * 3})
    chex = pd.DataFrame({"subject_id": [subj] * 2, "study_id": studies})
    for lab in sorted(CHEXPERT_LABELS):
        chex[lab] = [np.nan, np.nan]
    chex.loc[0, "No Finding"] = 1.0
    chex.loc[1, "Edema"] = -1.0
    chex.loc[1, "Pneumothorax"] = 0.0
    for df, name in ((meta, "metadata"), (split, "split"), (chex, "chexpert")):
        with gzip.open(tmp_path / f"mimic-cxr-2.0.0-{name}.csv.gz", "wt") as fh:
            df.to_csv(fh, index=False)
    recs = read_mimic(tmp_path, "train")
    assert [r.study_id for r in recs] == studies
    second = recs[1]
    assert second.prior_study_id == studies[0]
    assert [im.view for im in second.images] == ["AP", "LATERAL"]      # frontal first
    assert second.labels["Edema"] == -1.0 and second.labels["Pneumothorax"] == 0.0 and second.labels["Cardiomegaly"] is None
    assert second.impression.startswith("Mild vascular congestion")
    assert load_xray(second.images[0]).shape == (32, 40)


def test_parse_ctrate_names():
    assert parse_volume_name("train_1_a_1.nii.gz")["stem"] == "train_1_a_1"
    assert parse_volume_name("valid_1234_b_2.nii.gz")["patient"] == "1234"
    with pytest.raises(DataFormatError, match="does not follow"):
        parse_volume_name("scan1.nii.gz")


# --------------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def ctrate_dir(tmp_path, cts):
    write_ctrate(cts[:2], tmp_path, "train")
    return tmp_path


def test_missing_reports_csv_is_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"train_reports\.csv: CT-RATE reports file not found"):
        read_ctrate(tmp_path, "train")


def test_missing_label_column_is_named(ctrate_dir):
    p = ctrate_dir / "multi_abnormality_labels" / "train_predicted_labels.csv"
    pd.read_csv(p).drop(columns=["Emphysema"]).to_csv(p, index=False)
    with pytest.raises(DataFormatError, match=r"train_predicted_labels\.csv: missing column\(s\) \['Emphysema'\]"):
        read_ctrate(ctrate_dir, "train")


def test_empty_report_raises_or_is_counted(ctrate_dir, caplog):
    p = ctrate_dir / "radiology_text_reports" / "train_reports.csv"
    df = pd.read_csv(p)
    df.loc[0, ["Findings_EN", "Impressions_EN"]] = ""
    df.to_csv(p, index=False)
    with pytest.raises(DataFormatError, match=r"train_reports\.csv:2: train_1_a_1\.nii\.gz: empty report"):
        read_ctrate(ctrate_dir, "train")
    recs = read_ctrate(ctrate_dir, "train", skip_bad=True)
    assert [r.study_id for r in recs] == ["train_2_a_1"]
    assert "skipped 1 bad entries" in caplog.text


def test_missing_volume_is_named(ctrate_dir):
    (ctrate_dir / "dataset" / "train" / "train_2" / "train_2_a" / "train_2_a_1.nii.gz").unlink()
    with pytest.raises(DataFormatError, match=r"train_2_a_1\.nii\.gz: volume file not found"):
        read_ctrate(ctrate_dir, "train")


def test_bad_label_value_is_named(ctrate_dir):
    p = ctrate_dir / "multi_abnormality_labels" / "train_predicted_labels.csv"
    df = pd.read_csv(p)
    df.loc[1, "Cardiomegaly"] = 3
    df.to_csv(p, index=False)
    with pytest.raises(DataFormatError, match=r"train_2_a_1.*Cardiomegaly.*0 or 1"):
        read_ctrate(ctrate_dir, "train")


def test_corrupt_2d_and_nan_volumes_are_named(tmp_path):
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"this is not a nifti file")
    with pytest.raises(ImageFileError, match="corrupt.nii.gz: not a readable NIfTI"):
        load_volume(str(bad))
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(ImageFileError, match=r"flat.nii.gz: expected a 3-D volume, got 2-D"):
        load_volume(str(tmp_path / "flat.nii.gz"))
    arr = np.zeros((4, 4, 4), np.float32)
    arr[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(ImageFileError, match=r"nan.nii.gz: 1 voxels are NaN"):
        load_volume(str(tmp_path / "nan.nii.gz"))
    with pytest.raises(ImageFileError, match="missing.nii.gz: file not found"):
        load_volume(str(tmp_path / "missing.nii.gz"))


def test_corrupt_and_missing_images_are_named(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(ImageFileError, match="x.jpg: not a readable image"):
        load_xray(str(tmp_path / "x.jpg"))
    with pytest.raises(ImageFileError, match="nope.png: image file not found"):
        load_xray(str(tmp_path / "nope.png"))


def test_amosmm_bad_cases(tmp_path):
    with pytest.raises(DataFormatError, match="dataset.json not found"):
        read_amosmm(tmp_path)
    (tmp_path / "dataset.json").write_text('{"train": [{"image": "imagesTr/a.nii.gz", "labels": {"report": {}}}]}')
    with pytest.raises(DataFormatError, match=r"\[train\]\[0\]: image .* not found"):
        read_amosmm(tmp_path)
    with pytest.raises(DataFormatError, match=r"empty report"):
        read_amosmm(tmp_path, require_images=False)
    (tmp_path / "dataset.json").write_text("{broken")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        read_amosmm(tmp_path)


def test_mimic_missing_label_column_is_named(tmp_path):
    studies = generate_xray_cohort(2, seed=4)
    write_mimic(studies, tmp_path, "train")
    p = tmp_path / "mimic-cxr-2.0.0-chexpert.csv"
    pd.read_csv(p).drop(columns=["Edema"]).to_csv(p, index=False)
    with pytest.raises(DataFormatError, match=r"chexpert.csv: missing column\(s\) \['Edema'\]"):
        read_mimic(tmp_path, "train")
