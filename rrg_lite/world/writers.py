"""Write world cohorts to disk in the real datasets' layouts, so one set of readers serves both.

=================  =====================================================================================
``write_ctrate``   CT-RATE: ``dataset/{train,valid}/<split>_<n>/<split>_<n>_a/<split>_<n>_a_1.nii.gz``,
                   ``radiology_text_reports/{train,validation}_reports.csv``,
                   ``multi_abnormality_labels/{train,valid}_predicted_labels.csv``,
                   ``metadata/{train,validation}_metadata.csv``; with ``radgenome=True`` also RadGenome-ChestCT's
                   ``radgenome/{train,validation}_region_report.csv`` and
                   ``radgenome/{train,validation}_region_mask/seg_<stem>/<region>.nii.gz``
``write_amosmm``   AMOS-MM: ``imagesTr/``, ``imagesVa/`` NIfTI and ``dataset.json`` with per-body-part findings + VQA
``write_mimic``    MIMIC-CXR(-JPG): ``files/p1x/p<subject>/s<study>/<dicom_id>.jpg`` (or .png), the
                   ``mimic-cxr-2.0.0-{metadata,split,chexpert}.csv`` files and ``files/p1x/p<subject>/s<study>.txt``
``write_petct``    PET/CT: ``<study>/CT.nii.gz``, ``<study>/PET.nii.gz`` (SUV) and ``<study>/report.json``
=================  =====================================================================================

Every writer also writes ``world_annotations.jsonl``: the ground truth that real datasets lack (findings, boxes,
questions, sentence tags), keyed by the dataset's own study name. Files are byte-reproducible: volumes are stored as
int16 (HU) / uint8 (masks) / float32 (SUV), gzip headers carry no time stamp (nibabel), CSV/JSON keys are ordered.
Writers stream: give them an iterator of studies and memory stays flat. Every file is written atomically
(:mod:`rrg_lite.data.atomic`): a killed or failing writer leaves the previous file or none, never half a file.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

from ..data.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from .vocab import CHEXPERT_LABELS, CT_RATE_LABELS

ANNOTATIONS = "world_annotations.jsonl"
CT_RAW_OFFSET = 1024  # CT-RATE-style raw storage: stored = HU + 1024, metadata RescaleIntercept = -1024


def _split_names(split: str) -> tuple[str, str]:
    """(prefix used in file and volume names, word used in report CSV names): train→(train, train), valid."""
    if split in ("train",):
        return "train", "train"
    if split in ("valid", "validation", "val"):
        return "valid", "validation"
    raise ValueError(f"unknown split {split!r}; use 'train' or 'valid'")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` atomically: copy, append to the copy, replace (a crash keeps the old rows)."""
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with open(tmp, "a", encoding="utf-8", newline="") as fh:
            fh.write(text)


def _save_volume(array_dhw: np.ndarray, path: Path, affine: np.ndarray, dtype) -> None:
    """(D, H, W) → a ``.nii.gz`` holding the (x, y, z)-transposed array with ``affine``.

    Serialised in one piece (header + data, then one gzip call with a zero time stamp): the same bytes as
    :func:`rrg_lite.data.io.save_nifti` would hold, several times faster for many small files, and reproducible.
    """
    import gzip

    import nibabel as nib

    data = np.asarray(np.transpose(array_dhw, (2, 1, 0)), dtype=dtype)
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    write_bytes_atomic(path, gzip.compress(img.to_bytes(), compresslevel=1, mtime=0))


def _annotation(name: str, study, extra: dict | None = None) -> dict:
    rec = {"name": name, "study_id": study.study_id, "findings": [f.to_dict() for f in study.findings],
           "boxes": study.boxes, "qa": study.qa, "sentences": study.report.to_dict()["sentences"]}
    if extra:
        rec.update(extra)
    return rec


def _hu_to_int16(ct: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(ct), -1024, 3071).astype(np.int16)


# ---------------------------------------------------------------------------------------------------------------
# CT-RATE (+ RadGenome-ChestCT)
# ---------------------------------------------------------------------------------------------------------------


def ctrate_files(st, root: str | Path, split: str, n: int, radgenome: bool = True, raw_offset: bool = True) -> dict:
    """Write one study's CT-RATE (and RadGenome mask) files as volume ``<split>_<n>_a_1``; return its CSV rows."""
    root = Path(root)
    prefix, word = _split_names(split)
    stem = f"{prefix}_{n}_a_1"
    name = f"{stem}.nii.gz"
    path = root / "dataset" / prefix / f"{prefix}_{n}" / f"{prefix}_{n}_a" / name
    stored = _hu_to_int16(st.ct).astype(np.int32) + (CT_RAW_OFFSET if raw_offset else 0)
    _save_volume(stored.astype(np.int16), path, st.affine, np.int16)
    rep = st.report
    sz, sy, sx = st.spacing
    rows = {
        "report": [name, f"{st.age} year old {'female' if st.sex == 'F' else 'male'} patient.",
                   "Non-contrast chest CT.", rep.findings, rep.impression],
        "labels": [name] + [int(v) for v in st.labels],
        "meta": [name, st.patient_id, 1, -CT_RAW_OFFSET if raw_offset else 0, f"[{sy:.4f}, {sx:.4f}]", f"{sz:.4f}",
                 st.ct.shape[1], st.ct.shape[2], st.ct.shape[0], st.age, st.sex],
        "regions": [],
        "annotation": json.dumps(_annotation(name, st), sort_keys=True),
    }
    if radgenome:
        rows["regions"].append([name, "", rep.findings])
        for region, text in rep.region_reports.items():
            rows["regions"].append([name, region, text])
        for region, m in st.region_masks.items():
            if m.any():   # RadGenome drops regions with empty masks
                _save_volume(m.astype(np.uint8), root / "radgenome" / f"{word}_region_mask" / f"seg_{stem}" /
                             f"{region}.nii.gz", st.affine, np.uint8)
    return rows


def ctrate_tables(rows: Iterable[dict], root: str | Path, split: str, radgenome: bool = True) -> list[str]:
    """Write the CT-RATE CSVs (reports, labels, metadata; RadGenome region reports) from :func:`ctrate_files` rows."""
    root = Path(root)
    prefix, word = _split_names(split)
    rows = list(rows)
    _write_csv(root / "radiology_text_reports" / f"{word}_reports.csv",
               ["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN"],
               [r["report"] for r in rows])
    _write_csv(root / "multi_abnormality_labels" / f"{prefix}_predicted_labels.csv",
               ["VolumeName", *CT_RATE_LABELS], [r["labels"] for r in rows])
    _write_csv(root / "metadata" / f"{word}_metadata.csv",
               ["VolumeName", "PatientID", "RescaleSlope", "RescaleIntercept", "XYSpacing", "ZSpacing", "Rows",
                "Columns", "NumberofSlices", "PatientAge", "PatientSex"], [r["meta"] for r in rows])
    if radgenome:
        _write_csv(root / "radgenome" / f"{word}_region_report.csv", ["Volumename", "Anatomy", "Sentence"],
                   [x for r in rows for x in r["regions"]])
    write_text_atomic(root / f"{prefix}_{ANNOTATIONS}", "\n".join(r["annotation"] for r in rows) + "\n")
    return [r["report"][0] for r in rows]


def write_ctrate(studies: Iterable, root: str | Path, split: str = "train", radgenome: bool = True,
                 raw_offset: bool = True) -> list[str]:
    """Write CT studies as a CT-RATE split; returns the volume names (``train_1_a_1.nii.gz`` ...).

    ``raw_offset``: store HU + 1024 with the rescale in the metadata CSV, as in CT-RATE's first release, so readers
    must apply it; False stores HU directly.
    """
    rows = [ctrate_files(st, root, split, n, radgenome, raw_offset) for n, st in enumerate(studies, start=1)]
    return ctrate_tables(rows, root, split, radgenome)


# ---------------------------------------------------------------------------------------------------------------
# AMOS-MM
# ---------------------------------------------------------------------------------------------------------------


def write_amosmm(studies_by_split: dict[str, Iterable], root: str | Path) -> Path:
    """AMOS-MM-like: ``imagesTr/amos_XXXX.nii.gz`` (+ ``imagesVa``), ``dataset.json`` with findings by body part."""
    root = Path(root)
    data: dict[str, list] = {}
    ann = []
    n = 0
    for split, studies in studies_by_split.items():
        folder = {"train": "imagesTr", "validation": "imagesVa", "valid": "imagesVa", "test": "imagesTs"}[split]
        key = "validation" if split == "valid" else split
        data[key] = []
        for st in studies:
            n += 1
            rel = f"{folder}/amos_{n:04d}.nii.gz"
            _save_volume(_hu_to_int16(st.ct), root / rel, st.affine, np.int16)
            parts = st.report.body_parts
            data[key].append({
                "image": rel,
                "labels": {
                    "report": {"findings": {p: parts.get(p, "") for p in ("chest", "abdomen", "pelvis")},
                               "impression": st.report.impression},
                    "qa": [{"question": q["question"], "answer": q["answer"], "type": q["type"]} for q in st.qa],
                },
            })
            ann.append(json.dumps(_annotation(rel, st), sort_keys=True))
    meta = {"name": "AMOS-MM (synthetic world)", "modality": {"0": "CT"}, **data}
    write_text_atomic(root / "dataset.json", json.dumps(meta, indent=1, sort_keys=False) + "\n")
    write_text_atomic(root / ANNOTATIONS, "\n".join(ann) + "\n")
    return root / "dataset.json"


# ---------------------------------------------------------------------------------------------------------------
# MIMIC-CXR(-JPG)
# ---------------------------------------------------------------------------------------------------------------
_MIMIC_HEADERS = ("INDICATION", "COMPARISON", "FINDINGS", "IMPRESSION")


def mimic_report_text(report, view_words: str) -> str:
    """A MIMIC-CXR free-text report: ``FINAL REPORT``, EXAMINATION, then the upper-case sections."""
    lines = ["                                 FINAL REPORT", f" EXAMINATION:  CHEST ({view_words})", ""]
    for name in ("indication", "comparison", "findings", "impression"):
        body = report.section(name)
        if not body:
            continue
        if name in ("findings", "impression"):
            lines += [f" {name.upper()}: ", " ", " " + body, " "]
        else:
            lines += [f" {name.upper()}:  {body}", " "]
    return "\n".join(lines) + "\n"


def _ids(i: int, k: int) -> tuple[int, int, str]:
    """Deterministic MIMIC-looking ids for study ``i``'s image ``k``: subject, study, dicom_id."""
    subject = 10_000_000 + i * 7 + 3
    study = 50_000_000 + i * 13 + 5
    h = np.random.default_rng([i, k]).integers(0, 16, size=40)
    hexs = "".join("0123456789abcdef"[v] for v in h)
    dicom = "-".join((hexs[0:8], hexs[8:16], hexs[16:24], hexs[24:32], hexs[32:40]))
    return subject, study, dicom


def _save_image(img: np.ndarray, path: Path, fmt: str) -> None:
    from PIL import Image

    arr = np.clip(np.rint(np.asarray(img) * 255.0), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, mode="L")
    with atomic_path(path) as tmp:   # the format is given, so PIL need not guess it from the temporary name
        if fmt == "jpg":
            im.save(tmp, format="JPEG", quality=95)
        else:
            im.save(tmp, format="PNG", optimize=False)


def mimic_files(st, root: str | Path, split: str, i: int, fmt: str = "jpg") -> dict:
    """Write study ``i`` (and its prior, as the subject's earlier study) as MIMIC-CXR-JPG files; return CSV rows."""
    if fmt not in ("jpg", "png"):
        raise ValueError(f"fmt must be 'jpg' or 'png', got {fmt!r}")
    root = Path(root)
    rows = {"meta": [], "split": [], "chexpert": [], "annotation": []}
    alpha = sorted(CHEXPERT_LABELS)   # MIMIC's chexpert CSV has its columns in alphabetical order
    chain = [st.prior, st] if st.prior is not None else [st]
    subject, _, _ = _ids(i, 0)
    folder = root / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
    for j, s in enumerate(chain):
        idx = 2 * i + j
        study = 50_000_000 + idx * 13 + 5
        view_words = " AND ".join("PA" if v == "PA" else ("LAT" if k == "lateral" else "AP")
                                  for k, v in s.views.items())
        # MIMIC shifts dates into the 22nd century; the prior gets the earlier day
        d = datetime.date(2150, 1, 1) + datetime.timedelta(days=int(s.days))
        date = d.year * 10000 + d.month * 100 + d.day
        for k, (view, img) in enumerate(s.images.items()):
            _, _, dicom = _ids(idx, k)
            _save_image(img, folder / f"s{study}" / f"{dicom}.{fmt}", fmt)
            code = s.views[view]
            rows["meta"].append([dicom, subject, study, f"CHEST ({view_words})", code, img.shape[0], img.shape[1],
                                 date, f"{100000 + 3600 * j:.3f}", f"CHEST ({view_words})",
                                 {"PA": "postero-anterior", "AP": "antero-posterior"}.get(code, "lateral"), "Erect"])
            rows["split"].append([dicom, study, subject, split])
        write_text_atomic(folder / f"s{study}.txt", mimic_report_text(s.report, view_words))
        rows["chexpert"].append([subject, study] + ["" if np.isnan(s.labels[CHEXPERT_LABELS.index(l)])
                                                    else f"{s.labels[CHEXPERT_LABELS.index(l)]:.1f}" for l in alpha])
        rows["annotation"].append(json.dumps(_annotation(f"s{study}", s, {"subject_id": subject}), sort_keys=True))
    return rows


def mimic_tables(rows: Iterable[dict], root: str | Path, append: bool = False) -> None:
    """Write (or append to) the three MIMIC CSVs and the annotation sidecar from :func:`mimic_files` rows."""
    root = Path(root)
    rows = list(rows)
    files = [(root / "mimic-cxr-2.0.0-metadata.csv",
              ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
               "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
               "PatientOrientationCodeSequence_CodeMeaning"], [x for r in rows for x in r["meta"]]),
             (root / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"],
              [x for r in rows for x in r["split"]]),
             (root / "mimic-cxr-2.0.0-chexpert.csv", ["subject_id", "study_id", *sorted(CHEXPERT_LABELS)],
              [x for r in rows for x in r["chexpert"]])]
    for path, header, data in files:
        if append and path.exists():
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(data)
            _append_text(path, buf.getvalue())
        else:
            _write_csv(path, header, data)
    ann = root / ANNOTATIONS
    lines = "".join(a + "\n" for r in rows for a in r["annotation"])
    if append and ann.exists():
        _append_text(ann, lines)
    else:
        write_text_atomic(ann, lines)


def write_mimic(studies: Iterable, root: str | Path, split: str = "train", fmt: str = "jpg",
                start_index: int = 0, append: bool = False) -> None:
    """MIMIC-CXR-JPG-like layout with metadata/split/chexpert CSVs and reports; priors become earlier studies.

    ``append`` adds rows to existing CSVs (to write train and test in two calls; give a ``start_index`` past the
    first call's studies so ids do not collide).
    """
    rows = [mimic_files(st, root, split, i, fmt) for i, st in enumerate(studies, start=start_index)]
    mimic_tables(rows, root, append)


# ---------------------------------------------------------------------------------------------------------------
# PET/CT
# ---------------------------------------------------------------------------------------------------------------


def write_petct(studies: Iterable, root: str | Path) -> list[str]:
    """``<root>/<study>/CT.nii.gz`` (int16 HU), ``PET.nii.gz`` (float32 SUV), ``report.json`` (PET and CT parts)."""
    root = Path(root)
    names, ann = [], []
    for st in studies:
        if st.pet is None:
            raise ValueError(f"study {st.study_id} has no PET; generate with WorldConfig(pet=True)")
        d = root / st.study_id
        _save_volume(_hu_to_int16(st.ct), d / "CT.nii.gz", st.affine, np.int16)
        _save_volume(st.pet.astype(np.float32), d / "PET.nii.gz", st.affine, np.float32)
        rep = {"study_id": st.study_id, "age": st.age, "sex": st.sex, "tracer": "18F-FDG",
               "regions": st.report.pet_ct_parts, "findings": st.report.findings,
               "impression": st.report.impression}
        write_text_atomic(d / "report.json", json.dumps(rep, indent=1) + "\n")
        ann.append(json.dumps(_annotation(st.study_id, st), sort_keys=True))
        names.append(st.study_id)
    write_text_atomic(root / ANNOTATIONS, "\n".join(ann) + "\n")
    return names
