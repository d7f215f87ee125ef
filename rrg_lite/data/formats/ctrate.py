"""CT-RATE and RadGenome-ChestCT readers.

CT-RATE layout (the Hugging Face release)::

    dataset/train/train_1/train_1_a/train_1_a_1.nii.gz        (valid_… for the validation split)
    radiology_text_reports/train_reports.csv                  VolumeName, ClinicalInformation_EN, Technique_EN,
                                                              Findings_EN, Impressions_EN
    multi_abnormality_labels/train_predicted_labels.csv       VolumeName + the 18 labels
    metadata/train_metadata.csv                               VolumeName, RescaleSlope, RescaleIntercept,
                                                              XYSpacing, ZSpacing, ...

RadGenome-ChestCT adds ``train_region_report.csv`` (Volumename, Anatomy, Sentence; empty Anatomy = whole report)
and region masks ``train_region_mask/seg_<volume stem>/<region>.nii.gz``.
"""
from __future__ import annotations

import re
from pathlib import Path

from rrg_lite.world.vocab import CT_RATE_LABELS, REGIONS

from ..manifest import DataFormatError, ImageRef, StudyRecord
from .common import Problems, number, read_annotations, read_csv, text

_NAME = re.compile(r"^(?P<split>[a-z]+)_(?P<patient>\d+)_(?P<scan>[a-z]+)_(?P<recon>\d+)(?:\.nii(?:\.gz)?)?$")


def split_words(split: str) -> tuple[str, str]:
    """CT-RATE uses two words per split: (file/volume prefix, CSV word) = train→(train, train), valid→(valid, validation)."""
    if split == "train":
        return "train", "train"
    if split in ("valid", "validation", "val"):
        return "valid", "validation"
    raise ValueError(f"unknown CT-RATE split {split!r}; use 'train' or 'valid'")


def parse_volume_name(name: str) -> dict:
    """``train_12_a_2.nii.gz`` → {split, patient, scan, recon, stem}; DataFormatError if it does not match."""
    m = _NAME.match(name.strip())
    if not m:
        raise DataFormatError(f"volume name {name!r} does not follow CT-RATE's <split>_<patient>_<scan>_<recon>")
    d = m.groupdict()
    d["stem"] = f"{d['split']}_{d['patient']}_{d['scan']}_{d['recon']}"
    return d


def volume_path(root: Path, name: str) -> Path | None:
    """Where CT-RATE keeps ``name``: tries ``dataset/<split>/...``, ``<split>/...`` and a flat folder."""
    p = parse_volume_name(name)
    rel = Path(f"{p['split']}_{p['patient']}") / f"{p['split']}_{p['patient']}_{p['scan']}" / f"{p['stem']}.nii.gz"
    for base in (root / "dataset" / p["split"], root / p["split"], root / "dataset", root):
        for cand in (base / rel, base / f"{p['stem']}.nii.gz"):
            if cand.exists():
                return cand
    return None


def _xy_spacing(value) -> list[float] | None:
    if value is None or (isinstance(value, float)):
        return None
    nums = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", str(value))
    return [float(v) for v in nums] or None


class _OneRowPerVolume:
    """Rows of a per-volume CSV keyed by ``VolumeName``: the first row is kept and an identical repeat is harmless;
    a repeat with other values makes the volume ambiguous (reported to ``problems``, added to ``ambiguous``)."""

    def __init__(self, path: Path, what: str, problems: Problems, ambiguous: set[str]):
        self.path, self.what, self.problems, self.ambiguous = path, what, problems, ambiguous
        self.values: dict[str, dict] = {}
        self.lines: dict[str, int] = {}

    def add(self, vname: str, value: dict, line: int) -> None:
        if vname in self.values and self.values[vname] != value:
            self.problems(f"{self.path}:{line}", f"{vname}: duplicate VolumeName with different {self.what} than on "
                                                 f"line {self.lines[vname]}; keep one row per volume")
            self.ambiguous.add(vname)
            return
        self.values.setdefault(vname, value)
        self.lines.setdefault(vname, line)


def read_ctrate(root: str | Path, split: str = "train", require_images: bool = True, skip_bad: bool = False,
                labels_required: bool = True) -> list[StudyRecord]:
    """CT-RATE split → one record per volume (report sections, 18 labels, rescale hints from the metadata CSV).

    Errors (or counted skips with ``skip_bad``): a missing CSV, a missing label column, a volume without a report
    (empty findings and impression), a volume file that is not there (when ``require_images``), a ``VolumeName``
    listed twice in the reports CSV (the later row is skipped), or twice with different values in the labels or
    metadata CSV (the volume is skipped: which row is right cannot be known).
    """
    root = Path(root)
    prefix, word = split_words(split)
    problems = Problems(skip_bad)
    rep_path = root / "radiology_text_reports" / f"{word}_reports.csv"
    reports = read_csv(rep_path, ("VolumeName", "Findings_EN", "Impressions_EN"), "CT-RATE reports")
    lab_path = root / "multi_abnormality_labels" / f"{prefix}_predicted_labels.csv"
    labels = {}
    # Duplicate VolumeName rows: identical duplicates are harmless; differing ones make the volume ambiguous
    # (which labels / rescale are right?), so it is an error, or a counted skip of that volume.
    ambiguous: set[str] = set()
    if lab_path.exists() or labels_required:
        lab = read_csv(lab_path, ("VolumeName", *CT_RATE_LABELS), "CT-RATE labels")
        label_rows = _OneRowPerVolume(lab_path, "labels", problems, ambiguous)
        for i, row in lab.iterrows():
            vals = {}
            for name in CT_RATE_LABELS:
                v = number(row[name])
                if v is None or v not in (0.0, 1.0):
                    raise DataFormatError(f"{lab_path}: {row['VolumeName']}: label {name!r} must be 0 or 1, got {row[name]!r}")
                vals[name] = v
            label_rows.add(text(row["VolumeName"]), vals, i + 2)
        labels = label_rows.values
    meta_path = root / "metadata" / f"{word}_metadata.csv"
    meta = {}
    if meta_path.exists():
        md = read_csv(meta_path, ("VolumeName",), "CT-RATE metadata")
        meta_rows = _OneRowPerVolume(meta_path, "rescale/spacing", problems, ambiguous)
        for i, row in md.iterrows():
            m = {"rescale_slope": number(row.get("RescaleSlope")),
                 "rescale_intercept": number(row.get("RescaleIntercept")),
                 "xy_spacing": _xy_spacing(row.get("XYSpacing")), "z_spacing": number(row.get("ZSpacing"))}
            meta_rows.add(text(row["VolumeName"]), m, i + 2)
        meta = meta_rows.values
    ann = read_annotations(root / f"{prefix}_world_annotations.jsonl")
    records = []
    report_line: dict[str, int] = {}
    for i, row in reports.iterrows():
        name = text(row["VolumeName"])
        where = f"{rep_path}:{i + 2}"
        if name in report_line:
            problems(where, f"{name}: duplicate VolumeName (first on line {report_line[name]}); one report row per "
                            f"volume — the later row is not used")
            continue
        report_line[name] = i + 2
        if name in ambiguous:
            continue   # already reported (and counted) above
        try:
            parsed = parse_volume_name(name)
        except DataFormatError as exc:
            problems(where, str(exc))
            continue
        findings, impression = text(row["Findings_EN"]), text(row["Impressions_EN"])
        if not findings and not impression:
            problems(where, f"{name}: empty report (no findings and no impression)")
            continue
        if labels and name not in labels:
            problems(lab_path, f"{name}: no labels row")
            continue
        path = volume_path(root, name)
        if path is None and require_images:
            problems(where, f"{name}: volume file not found under {root}")
            continue
        m = meta.get(name, {})
        img_meta = {k: v for k, v in m.items() if v is not None}
        rec = StudyRecord(
            study_id=parsed["stem"], dataset="ct-rate", split=prefix, patient_id=f"{parsed['split']}_{parsed['patient']}",
            images=[ImageRef(str(path) if path else "", "CT", meta=img_meta)],
            report={"findings": findings, "impression": impression,
                    "clinical_information": text(row.get("ClinicalInformation_EN")),
                    "technique": text(row.get("Technique_EN"))},
            labels=labels.get(name, {}), label_space="ct-rate", meta={"volume_name": name})
        if name in ann:
            rec.boxes, rec.qa = ann[name]["boxes"], ann[name]["qa"]
            rec.meta["world_findings"] = ann[name]["findings"]
        records.append(rec)
    problems.summary(str(rep_path))
    if not records:
        raise DataFormatError(f"{rep_path}: no usable studies")
    return records


def _region_name(value: str) -> str:
    v = " ".join(value.lower().split())
    return {"trachea and bronchi": "trachea and bronchie", "bones": "bone", "breasts": "breast",
            "lungs": "lung"}.get(v, v)


def read_radgenome(root: str | Path, split: str = "train", records: list[StudyRecord] | None = None,
                   csv_path: str | Path | None = None, mask_dir: str | Path | None = None,
                   skip_bad: bool = False) -> list[StudyRecord]:
    """Add RadGenome-ChestCT region reports and region masks to CT-RATE records (or build records from the CSV).

    ``csv_path`` defaults to ``<root>/radgenome/<word>_region_report.csv`` (or ``<root>/<word>_region_report.csv``);
    ``mask_dir`` to ``<word>_region_mask`` next to it. Unknown region names raise (or are skipped and counted).
    """
    root = Path(root)
    prefix, word = split_words(split)
    problems = Problems(skip_bad)
    if csv_path is None:
        cands = [root / "radgenome" / f"{word}_region_report.csv", root / f"{word}_region_report.csv"]
        csv_path = next((c for c in cands if c.exists()), cands[0])
    csv_path = Path(csv_path)
    df = read_csv(csv_path, ("Volumename", "Anatomy", "Sentence"), "RadGenome region report")
    mask_dir = Path(mask_dir) if mask_dir is not None else csv_path.parent / f"{word}_region_mask"
    per_volume: dict[str, dict] = {}
    for i, row in df.iterrows():
        name = text(row["Volumename"])
        anatomy, sentence = text(row["Anatomy"]), text(row["Sentence"])
        entry = per_volume.setdefault(name, {"whole": "", "regions": {}})
        if not anatomy:
            entry["whole"] = sentence
            continue
        region = _region_name(anatomy)
        if region not in REGIONS:
            problems(f"{csv_path}:{i + 2}", f"unknown region {anatomy!r}; RadGenome regions are {list(REGIONS)}")
            continue
        prev = entry["regions"].get(region, "")
        entry["regions"][region] = (prev + " " + sentence).strip()
    if records is None:
        records = []
        for name, entry in per_volume.items():
            parsed = parse_volume_name(name)
            path = volume_path(root, name)
            records.append(StudyRecord(study_id=parsed["stem"], dataset="radgenome", split=prefix,
                                       patient_id=f"{parsed['split']}_{parsed['patient']}",
                                       images=[ImageRef(str(path) if path else "", "CT")],
                                       report={"findings": entry["whole"]}, meta={"volume_name": name}))
    for rec in records:
        name = rec.meta.get("volume_name", rec.study_id + ".nii.gz")
        entry = per_volume.get(name)
        if entry is None:
            continue
        rec.region_reports = dict(entry["regions"])
        if entry["whole"] and not rec.report.get("findings"):
            rec.report["findings"] = entry["whole"]
        seg = mask_dir / f"seg_{rec.study_id}"
        if seg.is_dir():
            for f in sorted(seg.glob("*.nii*")):
                region = _region_name(f.name.split(".nii")[0])
                if region in REGIONS:
                    rec.masks[region] = str(f)
    problems.summary(str(csv_path))
    return records
