"""Readers, writers and converters that never fail silently (issue 13 §2): each case failed on the old code.

Every bad input becomes an error naming the file and the problem, or a counted, reported skip; outputs are
written atomically and never over (or inside) the inputs.
"""
import gzip
import json
import logging
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rrg_lite.data.formats.amosmm import read_amosmm
from rrg_lite.data.formats.ctrate import read_ctrate
from rrg_lite.data.formats.mimic import read_mimic
from rrg_lite.data.formats.petct import read_petct
from rrg_lite.data.images import load_volume, load_xray
from rrg_lite.data.io import ImageFileError, load_nifti, save_nifti
from rrg_lite.data.manifest import DataFormatError, ImageRef, StudyRecord, read_manifest, write_manifest
from rrg_lite.world.config import WorldConfig
from rrg_lite.world.ct import generate_ct_cohort, generate_petct_cohort
from rrg_lite.world.writers import write_ctrate, write_mimic, write_petct
from rrg_lite.world.xray import generate_xray_cohort
from helpers import data_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "data_scripts"


@pytest.fixture(scope="module")
def cts():
    return generate_ct_cohort(3, seed=5, cfg=WorldConfig(scan_range="chest"))


# ------------------------------------------------------------------------------------------ atomic outputs
def test_manifest_write_is_atomic_a_crash_keeps_the_old_file(tmp_path):
    out = tmp_path / "m.jsonl"
    good = [StudyRecord(study_id=f"s{i}", dataset="x") for i in range(3)]
    write_manifest(good, out)
    before = out.read_bytes()

    def dying():   # a run killed (here: an exception) after two records
        yield good[0]
        yield good[1]
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        write_manifest(dying(), out)
    assert out.read_bytes() == before                      # not a silently partial manifest
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]   # no temporary file left behind


def test_atomic_helper_and_save_nifti(tmp_path):
    from rrg_lite.data.atomic import atomic_path, write_text_atomic

    write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert (tmp_path / "a.txt").read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    save_nifti(np.zeros((2, 3, 4), np.int16), tmp_path / "v.nii.gz", dtype=np.int16)
    assert load_nifti(tmp_path / "v.nii.gz").shape == (2, 3, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "v.nii.gz"]
    assert (tmp_path / "v.nii.gz").stat().st_mode & 0o044   # normal permissions, not mkstemp's 0600


def test_save_nifti_refuses_int16_overflow(tmp_path):
    hu = np.zeros((2, 2, 2), np.float32)
    hu[0, 0, 0] = 40000.0           # metal streaks / bad rescale: far above int16
    with pytest.raises(ImageFileError, match=r"v.nii.gz: values 0\.\.40000 do not fit int16"):
        save_nifti(hu, tmp_path / "v.nii.gz", dtype=np.int16)
    assert not (tmp_path / "v.nii.gz").exists()
    nan = np.full((2, 2, 2), np.nan, np.float32)
    with pytest.raises(ImageFileError, match="NaN"):
        save_nifti(nan, tmp_path / "n.nii.gz", dtype=np.int16)


# -------------------------------------------------------------------------------- converter path checks
def _petct_inputs(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_data_formats_scripts import _ct_series, _pet_series

    _ct_series(tmp_path / "dicom" / "study1" / "CT")
    _pet_series(tmp_path / "dicom" / "study1" / "PET")
    report = {"regions": {"chest": {"pet": "Hypermetabolic nodule.", "ct": "A 12 mm nodule."}},
              "findings": "A 12 mm nodule.", "impression": "Suspicious nodule."}
    (tmp_path / "reports.json").write_text(json.dumps({"study1": report}))
    return report


def test_converter_refuses_out_equal_to_its_input(tmp_path, capsys):
    _petct_inputs(tmp_path)
    before = (tmp_path / "reports.json").read_bytes()
    with pytest.raises(SystemExit) as info:
        data_script("convert_petct").main(["--dicom-root", str(tmp_path / "dicom"), "--reports",
                                       str(tmp_path / "reports.json"), "--out-root", str(tmp_path / "nii"),
                                       "--out", str(tmp_path / "reports.json")])
    assert info.value.code == 2
    assert (tmp_path / "reports.json").read_bytes() == before       # the input is untouched
    assert "same path as the input --reports" in capsys.readouterr().err
    (tmp_path / "amos").mkdir()
    (tmp_path / "amos" / "dataset.json").write_text('{"train": []}')
    with pytest.raises(SystemExit):
        data_script("convert_amosmm").main(["--root", str(tmp_path / "amos"), "--out",
                                        str(tmp_path / "amos" / "dataset.json")])
    assert (tmp_path / "amos" / "dataset.json").read_text() == '{"train": []}'


def test_converter_refuses_an_output_folder_inside_its_input(tmp_path, capsys):
    _petct_inputs(tmp_path)
    with pytest.raises(SystemExit) as info:
        data_script("convert_petct").main(["--dicom-root", str(tmp_path / "dicom"), "--reports",
                                       str(tmp_path / "reports.json"), "--out-root", str(tmp_path / "dicom" / "nii"),
                                       "--out", str(tmp_path / "m.jsonl")])
    assert info.value.code == 2 and "inside the input folder --dicom-root" in capsys.readouterr().err
    assert not (tmp_path / "dicom" / "nii").exists() and not (tmp_path / "m.jsonl").exists()


# -------------------------------------------------------------------------------- PET/CT manifest scope
def test_petct_manifest_lists_only_what_this_run_wrote(tmp_path):
    _petct_inputs(tmp_path)
    stale = generate_petct_cohort(1, seed=2)
    write_petct(stale, tmp_path / "nii")                     # a study left by an earlier run
    (tmp_path / "nii" / "truncated").mkdir()
    for name in ("CT.nii.gz", "PET.nii.gz"):                 # a study cut short by a kill
        (tmp_path / "nii" / "truncated" / name).write_bytes(gzip.compress(b"\x00" * 10)[:12])
    (tmp_path / "nii" / "truncated" / "report.json").write_text('{"findings": "x"}')
    recs = data_script("convert_petct").main(["--dicom-root", str(tmp_path / "dicom"), "--reports",
                                          str(tmp_path / "reports.json"), "--out-root", str(tmp_path / "nii"),
                                          "--out", str(tmp_path / "m.jsonl")])
    assert [r.study_id for r in recs] == ["study1"]
    assert [r.study_id for r in read_manifest(tmp_path / "m.jsonl")] == ["study1"]


# ------------------------------------------------------------------------------------------ CT-RATE rows
def test_ctrate_duplicate_volume_name_is_an_error_or_a_counted_skip(tmp_path, cts, caplog):
    write_ctrate(cts[:2], tmp_path, "train")
    p = tmp_path / "radiology_text_reports" / "train_reports.csv"
    df = pd.read_csv(p)
    pd.concat([df, df.iloc[[0]]]).to_csv(p, index=False)       # train_1_a_1 twice
    with pytest.raises(DataFormatError, match=r"train_reports\.csv:4: train_1_a_1\.nii\.gz: duplicate VolumeName "
                                              r"\(first on line 2\)"):
        read_ctrate(tmp_path, "train")
    with caplog.at_level(logging.INFO, logger="rrg_lite.data"):
        recs = read_ctrate(tmp_path, "train", skip_bad=True)
    assert [r.study_id for r in recs] == ["train_1_a_1", "train_2_a_1"]
    assert "skipped 1 bad entries" in caplog.text and "skipped: " in caplog.text


def test_ctrate_conflicting_duplicate_label_rows(tmp_path, cts):
    write_ctrate(cts[:2], tmp_path, "train")
    p = tmp_path / "multi_abnormality_labels" / "train_predicted_labels.csv"
    df = pd.read_csv(p)
    extra = df.iloc[[1]].copy()
    extra["Cardiomegaly"] = 1 - extra["Cardiomegaly"]
    pd.concat([df, extra]).to_csv(p, index=False)
    with pytest.raises(DataFormatError, match=r"train_2_a_1\.nii\.gz: duplicate VolumeName with different labels"):
        read_ctrate(tmp_path, "train")
    assert [r.study_id for r in read_ctrate(tmp_path, "train", skip_bad=True)] == ["train_1_a_1"]


# ------------------------------------------------------------------------------------------ MIMIC rows
@pytest.fixture
def mimic_dir(tmp_path):
    write_mimic(generate_xray_cohort(3, seed=4), tmp_path, "train")
    return tmp_path


def test_mimic_image_missing_from_split_csv(mimic_dir):
    p = mimic_dir / "mimic-cxr-2.0.0-split.csv"
    df = pd.read_csv(p)
    gone = df.iloc[0]["dicom_id"]
    df.iloc[1:].to_csv(p, index=False)
    with pytest.raises(DataFormatError, match=rf"dicom_id {gone} .*is not in mimic-cxr-2.0.0-split.csv"):
        read_mimic(mimic_dir, "train")
    with pytest.raises(DataFormatError, match="is not in"):
        read_mimic(mimic_dir, None)      # "all splits" must not take it either
    recs = read_mimic(mimic_dir, "train", skip_bad=True)
    assert gone not in {im.meta["dicom_id"] for r in recs for im in r.images}


def test_mimic_study_missing_from_chexpert_csv(mimic_dir, caplog):
    p = mimic_dir / "mimic-cxr-2.0.0-chexpert.csv"
    df = pd.read_csv(p, dtype=str)
    gone = df.iloc[0]["study_id"]
    df.iloc[1:].to_csv(p, index=False)
    with pytest.raises(DataFormatError, match=rf"chexpert.csv: study {gone} .*has no row"):
        read_mimic(mimic_dir, "train")
    assert gone not in {r.study_id for r in read_mimic(mimic_dir, "train", skip_bad=True)}
    with caplog.at_level(logging.WARNING):
        kept = {r.study_id: r for r in read_mimic(mimic_dir, "train", require_labels=False)}
    assert kept[gone].labels == {} and "1 studies have no CheXpert row" in caplog.text


# ------------------------------------------------------------------------------------- image paths, HU
def test_empty_image_path_is_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for loader in (load_volume, load_xray):
        with pytest.raises(ImageFileError, match="image path is empty"):
            loader("")
        with pytest.raises(ImageFileError, match="image path is empty"):
            loader(ImageRef("", "CT"))
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"train": [{"image": "", "report": {"findings": "Normal.", "impression": "Normal."}}]}))
    with pytest.raises(DataFormatError, match=r"\[train\]\[0\]: 'image' must be a non-empty path"):
        read_amosmm(tmp_path)


def test_hu_rescale_is_never_applied_twice(tmp_path):
    # a cropped soft-tissue CT already in HU (min −150 > −200): the old rule rescaled it a second time
    hu = np.linspace(-150, 400, 4 * 5 * 6).reshape(4, 5, 6).astype(np.int16)
    save_nifti(hu, tmp_path / "hu.nii.gz", dtype=np.int16)
    ref = ImageRef(str(tmp_path / "hu.nii.gz"), "CT", meta={"rescale_slope": 1.0, "rescale_intercept": -1024.0})
    vol, _ = load_volume(ref)
    assert vol.min() == -150 and vol.max() == 400
    # a file whose own header carries the rescale (scl_inter) is HU after reading, even with no negative value
    img = nib.Nifti1Image(np.full((3, 3, 3), 1100, np.int16), np.eye(4))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, tmp_path / "scaled.nii.gz")
    vol, _ = load_volume(ImageRef(str(tmp_path / "scaled.nii.gz"), "CT", meta={"rescale_intercept": -1024.0}))
    assert np.all(vol == 76.0)
    # raw unsigned storage still gets the metadata rescale
    raw = np.full((3, 3, 3), 24, np.int16)
    save_nifti(raw, tmp_path / "raw.nii.gz", dtype=np.int16)
    vol, _ = load_volume(ImageRef(str(tmp_path / "raw.nii.gz"), "CT", meta={"rescale_intercept": -1024.0}))
    assert np.all(vol == -1000.0)


# ----------------------------------------------------------------------------------------- malformed JSON
BAD_AMOS_CASES = [
    {"image": "a.nii.gz", "labels": "not an object"},
    {"image": "a.nii.gz", "report": ["findings", "impression"]},
    {"image": "a.nii.gz", "report": {"findings": {"chest": 3}}},
    {"image": "a.nii.gz", "report": {"findings": "x"}, "qa": "not a list"},
    {"image": None, "report": {"findings": "x"}},
]


@pytest.mark.parametrize("case", BAD_AMOS_CASES)
def test_malformed_amos_json_is_named_or_skipped(tmp_path, case):
    (tmp_path / "a.nii.gz").write_bytes(b"")
    good = {"image": "a.nii.gz", "report": {"findings": "Normal liver.", "impression": "Normal."}}
    (tmp_path / "dataset.json").write_text(json.dumps({"train": [case, good]}))
    with pytest.raises(DataFormatError, match=r"dataset\.json\[train\]\[0\]: "):
        read_amosmm(tmp_path)
    assert len(read_amosmm(tmp_path, skip_bad=True)) == 1


@pytest.mark.parametrize("report", [["a list"], {"regions": "chest"}, {"regions": {"chest": "text"}},
                                    {"findings": {"x": 1}}])
def test_malformed_petct_report_json_is_named_or_skipped(tmp_path, report):
    write_petct(generate_petct_cohort(2, seed=1), tmp_path)
    bad = sorted(p for p in tmp_path.iterdir() if p.is_dir())[0]
    (bad / "report.json").write_text(json.dumps(report))
    with pytest.raises(DataFormatError, match=rf"{bad.name}/report\.json: "):
        read_petct(tmp_path)
    assert len(read_petct(tmp_path, skip_bad=True)) == 1


def test_convert_petct_malformed_reports_file_and_skip_bad(tmp_path, capsys, caplog):
    _petct_inputs(tmp_path)
    args = ["--dicom-root", str(tmp_path / "dicom"), "--reports", str(tmp_path / "reports.json"),
            "--out-root", str(tmp_path / "nii"), "--out", str(tmp_path / "m.jsonl")]
    (tmp_path / "reports.json").write_text("{broken")
    with pytest.raises(SystemExit) as info:
        data_script("convert_petct").main(args + ["--skip-bad"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "reports.json: not valid JSON" in err and "What to do" in err
    (tmp_path / "reports.json").write_text(json.dumps({"study1": "just a string"}))
    with caplog.at_level(logging.INFO, logger="rrg_lite.data"), pytest.raises(SystemExit):
        data_script("convert_petct").main(args + ["--skip-bad"])
    assert "report of 'study1' is str, not an object" in caplog.text   # the skipped line
    assert "no study converted" in capsys.readouterr().err


# -------------------------------------------------------------------------------------- one line, no trace
def test_converter_cli_prints_one_clear_line_not_a_traceback(tmp_path, cts):
    missing = subprocess.run([sys.executable, str(SCRIPTS / "convert_ctrate.py"), "--root", str(tmp_path / "nope"),
                              "--out", str(tmp_path / "m.jsonl")], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "train_reports.csv" in lines[0]
    assert "What to do: check that --root points at the dataset folder" in lines[0]
    # a bad entry: the line says which file and row, what is wrong, and about --skip-bad
    write_ctrate(cts[:2], tmp_path / "ct", "train")
    p = tmp_path / "ct" / "radiology_text_reports" / "train_reports.csv"
    df = pd.read_csv(p)
    df.loc[0, ["Findings_EN", "Impressions_EN"]] = ""
    df.to_csv(p, index=False)
    cmd = [sys.executable, str(SCRIPTS / "convert_ctrate.py"), "--root", str(tmp_path / "ct"), "--out",
           str(tmp_path / "m.jsonl")]
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"error: {p}:2: train_1_a_1.nii.gz: empty report (no findings and no impression). What to do: fix or remove "
        f"this entry, or rerun with --skip-bad (skip_bad=True) to skip such entries (they are counted)"]
    skipped = subprocess.run(cmd + ["--skip-bad"], capture_output=True, text=True, cwd=ROOT)
    assert skipped.returncode == 0
    assert f"skipped: {p}:2: train_1_a_1.nii.gz: empty report" in skipped.stderr
    assert "skipped 1 bad entries" in skipped.stderr
