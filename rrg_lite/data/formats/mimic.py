"""MIMIC-CXR / MIMIC-CXR-JPG reader.

Layout::

    files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg   (.dcm in MIMIC-CXR)
    files/p10/p10000032/s50414267.txt                                                free-text report
    mimic-cxr-2.0.0-metadata.csv   dicom_id, subject_id, study_id, ViewPosition, StudyDate, StudyTime, ...
    mimic-cxr-2.0.0-split.csv      dicom_id, study_id, subject_id, split
    mimic-cxr-2.0.0-chexpert.csv   subject_id, study_id + 14 labels (1.0, 0.0, -1.0, blank)

The CSVs may be gzipped (``.csv.gz``), as in the PhysioNet release. Reports can live in another root (MIMIC-CXR-JPG
has no reports; they come from MIMIC-CXR): pass ``reports_root``. Studies of a subject are ordered by
StudyDate/StudyTime, and each study's ``prior_study_id`` is the previous one.
"""
from __future__ import annotations

import re
from pathlib import Path

from rrg_lite.world.vocab import CHEXPERT_LABELS

from ..manifest import DataFormatError, ImageRef, StudyRecord, link_priors
from .common import Problems, log, number, read_csv, text

_HEADER = re.compile(r"^\s*([A-Z][A-Z &/()-]*[A-Z)])\s*:", re.MULTILINE)
_KNOWN = {"FINDINGS": "findings", "IMPRESSION": "impression", "INDICATION": "indication",
          "COMPARISON": "comparison", "TECHNIQUE": "technique", "HISTORY": "indication",
          "CLINICAL HISTORY": "indication", "EXAMINATION": "examination", "REASON FOR EXAM": "indication",
          "REASON FOR EXAMINATION": "indication", "NOTIFICATION": "notification", "RECOMMENDATION(S)": "recommendation",
          "RECOMMENDATIONS": "recommendation", "CONCLUSION": "impression"}


def parse_report(raw: str) -> dict[str, str]:
    """Free-text report → sections by their upper-case headers (``FINDINGS:``, ``IMPRESSION:`` ...).

    Text before the first known header goes to ``"preamble"``; unknown headers keep their lower-cased name.
    """
    raw = raw.replace("\r\n", "\n")
    out: dict[str, str] = {}
    matches = list(_HEADER.finditer(raw))
    starts = [(m.start(), m.end(), m.group(1).strip()) for m in matches]
    pre_end = starts[0][0] if starts else len(raw)
    pre = " ".join(raw[:pre_end].replace("FINAL REPORT", " ").split())
    if pre:
        out["preamble"] = pre
    for k, (s, e, head) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(raw)
        key = _KNOWN.get(head, head.lower())
        body = " ".join(raw[e:end].split())
        out[key] = (out.get(key, "") + " " + body).strip() if key in out else body
    return out


def _csv(root: Path, name: str, required, what):
    for cand in (root / name, root / f"{name}.gz"):
        if cand.exists():
            return read_csv(cand, required, what), cand
    raise DataFormatError(f"{root / name}: {what} not found (also tried .gz)")


def image_path(root: Path, subject: str, study: str, dicom: str) -> Path | None:
    folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
    for ext in (".jpg", ".png", ".dcm"):
        if (folder / f"{dicom}{ext}").exists():
            return folder / f"{dicom}{ext}"
    return None


def read_mimic(root: str | Path, split: str | None = "train", reports_root: str | Path | None = None,
               require_images: bool = True, require_report: bool = True, skip_bad: bool = False,
               views: tuple[str, ...] | None = None, require_labels: bool = True) -> list[StudyRecord]:
    """One record per study of ``split`` ("train", "validate", "test"; None = all) with its images and priors.

    Errors (or counted skips with ``skip_bad``): an image of the metadata CSV that the split CSV does not list (its
    split is unknown, so it is never silently left out or put in the wrong split), a study without a row in the
    CheXpert CSV (unless ``require_labels=False``: it is kept with empty labels and counted in a warning), a
    missing image or report file.
    """
    root = Path(root)
    reports_root = Path(reports_root) if reports_root else root
    problems = Problems(skip_bad)
    meta, meta_path = _csv(root, "mimic-cxr-2.0.0-metadata.csv", ("dicom_id", "subject_id", "study_id",
                                                                   "ViewPosition"), "MIMIC metadata CSV")
    splits, split_path = _csv(root, "mimic-cxr-2.0.0-split.csv", ("dicom_id", "study_id", "subject_id", "split"),
                              "MIMIC split CSV")
    chex, chex_path = _csv(root, "mimic-cxr-2.0.0-chexpert.csv", ("subject_id", "study_id", *CHEXPERT_LABELS),
                           "MIMIC CheXpert CSV")
    split_of = dict(zip(splits["dicom_id"], splits["split"]))
    labels = {}
    for _, row in chex.iterrows():
        vals = {}
        for lab in CHEXPERT_LABELS:
            v = number(row[lab])
            if v is not None and v not in (1.0, 0.0, -1.0):
                raise DataFormatError(f"{chex_path}: study {row['study_id']}: {lab!r} must be 1, 0, -1 or blank, got {row[lab]!r}")
            vals[lab] = v
        labels[str(row["study_id"])] = vals
    studies: dict[str, dict] = {}
    for i, row in meta.iterrows():
        dicom, subject, study = str(row["dicom_id"]), str(row["subject_id"]), str(row["study_id"])
        if dicom not in split_of:
            problems(f"{meta_path}:{i + 2}", f"dicom_id {dicom} (study {study}) is not in {split_path.name}, so its "
                                             f"split is unknown; use the split file of the same release")
            continue
        if split is not None and split_of[dicom] != split:
            continue
        view = text(row.get("ViewPosition")) or None
        if views is not None and view not in views:
            continue
        s = studies.setdefault(study, {"subject": subject, "images": [],
                                       "order": (number(row.get("StudyDate")) or 0, number(row.get("StudyTime")) or 0)})
        path = image_path(root, subject, study, dicom)
        if path is None and require_images:
            problems(f"{meta_path}:{i + 2}", f"image for dicom_id {dicom} not found under {root / 'files'}")
            continue
        s["images"].append(ImageRef(str(path) if path else "", "XR", view=view,
                                    meta={"dicom_id": dicom, "rows": number(row.get("Rows")),
                                          "columns": number(row.get("Columns"))}))
    records = []
    unlabelled = 0
    for study, s in studies.items():
        if not s["images"]:
            continue
        subject = s["subject"]
        rpath = reports_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        report = {}
        if rpath.exists():
            report = parse_report(rpath.read_text(encoding="utf-8", errors="replace"))
            if not (report.get("findings") or report.get("impression")):
                problems(rpath, "report has neither a FINDINGS nor an IMPRESSION section")
                continue
        elif require_report:
            problems(rpath, "report file not found")
            continue
        # frontal views first (PA before AP), then laterals: the order LLM-RG4 and M4CXR pick from
        if study not in labels:
            if require_labels:
                problems(chex_path, f"study {study} (subject {subject}) has no row, so its labels are unknown; pass "
                                    f"require_labels=False to keep such studies with empty labels")
                continue
            unlabelled += 1
        rank = {"PA": 0, "AP": 1, "LATERAL": 2, "LL": 3}
        s["images"].sort(key=lambda im: (rank.get(im.view, 9), im.meta["dicom_id"]))
        records.append(StudyRecord(study_id=study, dataset="mimic-cxr", split=split or "all", patient_id=subject,
                                   images=s["images"], report=report, labels=labels.get(study, {}),
                                   label_space="chexpert", meta={"order": list(s["order"])}))
    problems.summary(str(meta_path))
    if unlabelled:
        log.warning("%s: %d studies have no CheXpert row; kept with empty labels (require_labels=False)",
                    chex_path, unlabelled)
    if not records:
        raise DataFormatError(f"{meta_path}: no usable studies for split {split!r}")
    # priors: order all of a subject's studies (across splits) by date and time
    link_priors(records, order_key=lambda r: tuple(r.meta["order"]))
    return records


def attach_annotations(records: list[StudyRecord], root: str | Path) -> list[StudyRecord]:
    """Merge the world's ``world_annotations.jsonl`` (boxes, QA, findings) into MIMIC-style records. In place."""
    from .common import read_annotations

    ann = read_annotations(Path(root) / "world_annotations.jsonl")
    for r in records:
        a = ann.get(f"s{r.study_id}")
        if a:
            r.boxes, r.qa = a["boxes"], a["qa"]
            r.meta["world_findings"] = a["findings"]
    return records
